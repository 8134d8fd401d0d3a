//! The export for the Justice chain: a self-describing zip — `manifest.json` (versioned schema,
//! documented in docs/export.md), every document, the receipt and the decision notice, and a
//! `SHA256SUMS` file that `sha256sum -c` checks.

use crate::error::AppError;
use crate::AppState;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use store::{Event, Offence, Referral};

pub const SCHEMA: &str = "infoparquet-export-v1";

#[derive(Serialize)]
struct Manifest<'a> {
    schema: &'static str,
    exported_at: String,
    referral: ManifestReferral<'a>,
    administration: ManifestOrganisation<'a>,
    parquet: Option<ManifestOrganisation<'a>>,
    offences: &'a [Offence],
    parties: &'a [store::Party],
    documents: Vec<ManifestDocument>,
    events: Vec<ManifestEvent<'a>>,
    decision: Option<&'a store::Decision>,
    judgement: Option<&'a store::Judgement>,
    receipt: Option<ManifestSignature<'a>>,
    decision_notice: Option<ManifestSignature<'a>>,
}

#[derive(Serialize)]
struct ManifestReferral<'a> {
    id: uuid::Uuid,
    reference: Option<&'a str>,
    parquet_number: Option<&'a str>,
    status: &'a str,
    kind: &'a str,
    urgency: &'a str,
    title: &'a str,
    facts: &'a str,
    administration_reference: Option<&'a str>,
    facts_started_on: Option<chrono::NaiveDate>,
    facts_ended_on: Option<chrono::NaiveDate>,
    commune_insee: Option<&'a str>,
    address: Option<&'a str>,
    limitation_date: Option<chrono::NaiveDate>,
    submitted_at: Option<chrono::DateTime<chrono::Utc>>,
    acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
    registered_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Serialize)]
struct ManifestOrganisation<'a> {
    id: uuid::Uuid,
    name: &'a str,
    siret: Option<&'a str>,
    court_code: Option<&'a str>,
}

#[derive(Serialize)]
struct ManifestDocument {
    path: String,
    filename: String,
    media_type: String,
    size: i64,
    sha256: String,
    uploaded_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
struct ManifestEvent<'a> {
    at: chrono::DateTime<chrono::Utc>,
    #[serde(rename = "type")]
    event_type: &'a str,
    actor: &'a str,
    role: &'a str,
    organisation: &'a str,
    summary: &'a str,
}

#[derive(Serialize)]
struct ManifestSignature<'a> {
    path: &'static str,
    algorithm: &'static str,
    public_key: String,
    signature: &'a str,
}

/// Builds the package into a temporary file and returns it (rewound).
pub async fn build(
    state: &AppState,
    referral: &Referral,
    events: &[Event],
) -> Result<std::fs::File, AppError> {
    let offences = state
        .store
        .offences_by_codes(&referral.offence_codes)
        .await?;
    let receipt = if referral.row.verification_code.is_some() {
        Some(crate::pages::documents::receipt(state, referral).await?.0)
    } else {
        None
    };
    let notice = if referral.row.decision.is_some() {
        Some(
            crate::pages::documents::decision_notice(state, referral)
                .await?
                .0,
        )
    } else {
        None
    };
    let public_key = state.signer.public_key();
    let row = &referral.row;
    let mut documents = Vec::new();
    let mut sources = Vec::new();
    for (index, attachment) in referral.attachments.iter().enumerate() {
        let path = format!(
            "documents/{:02}-{}",
            index + 1,
            attachment.filename.replace(['/', '\\'], "_")
        );
        // Read (and unsealed) while the zip is written: never held whole in memory.
        sources.push((
            path.clone(),
            state
                .files
                .reader(&attachment.storage_key, attachment.wrapped_key.as_deref())
                .map_err(AppError::from)?,
        ));
        documents.push(ManifestDocument {
            path,
            filename: attachment.filename.clone(),
            media_type: attachment.media_type.clone(),
            size: attachment.size,
            sha256: attachment.sha256.clone(),
            uploaded_at: attachment.uploaded_at,
        });
    }
    let manifest = Manifest {
        schema: SCHEMA,
        exported_at: domain::integrity::canonical_instant(state.now()),
        referral: ManifestReferral {
            id: row.id,
            reference: row.reference.as_deref(),
            parquet_number: row.parquet_number.as_deref(),
            status: &row.status,
            kind: &row.kind,
            urgency: &row.urgency,
            title: &row.title,
            facts: &row.facts,
            administration_reference: row.administration_reference.as_deref(),
            facts_started_on: row.facts_started_on,
            facts_ended_on: row.facts_ended_on,
            commune_insee: row.commune_insee.as_deref(),
            address: row.address.as_deref(),
            limitation_date: row.limitation_date,
            submitted_at: row.submitted_at,
            acknowledged_at: row.acknowledged_at,
            registered_at: row.registered_at,
        },
        administration: ManifestOrganisation {
            id: referral.administration.id,
            name: &referral.administration.name,
            siret: referral.administration.siret.as_deref(),
            court_code: None,
        },
        parquet: referral.parquet.as_ref().map(|p| ManifestOrganisation {
            id: p.id,
            name: &p.name,
            siret: None,
            court_code: p.court_code.as_deref(),
        }),
        offences: &offences,
        parties: &referral.parties,
        documents,
        events: events
            .iter()
            .map(|e| ManifestEvent {
                at: e.at,
                event_type: &e.event_type,
                actor: &e.actor_name,
                role: &e.actor_role,
                organisation: &e.actor_organisation,
                summary: &e.summary,
            })
            .collect(),
        decision: row.decision.as_ref().map(|d| &d.0),
        judgement: row.judgement.as_ref().map(|j| &j.0),
        receipt: row
            .receipt_signature
            .as_deref()
            .map(|signature| ManifestSignature {
                path: "receipt.pdf",
                algorithm: "Ed25519",
                public_key: public_key.clone(),
                signature,
            }),
        decision_notice: row
            .notice_signature
            .as_deref()
            .map(|signature| ManifestSignature {
                path: "decision-notice.pdf",
                algorithm: "Ed25519",
                public_key: public_key.clone(),
                signature,
            }),
    };
    let manifest =
        serde_json::to_vec_pretty(&manifest).map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || write_zip(manifest, sources, receipt, notice))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(format!("export: {e}")))
}

fn write_zip(
    manifest: Vec<u8>,
    sources: Vec<(String, Box<dyn std::io::Read + Send>)>,
    receipt: Option<Vec<u8>>,
    notice: Option<Vec<u8>>,
) -> std::io::Result<std::fs::File> {
    let file = tempfile::tempfile()?;
    let mut zip = zip::ZipWriter::new(file);
    // Documents are stored as they are (PDFs and images are compressed already).
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut sums = String::new();
    let mut add = |zip: &mut zip::ZipWriter<std::fs::File>,
                   name: &str,
                   reader: &mut dyn Read|
     -> std::io::Result<()> {
        zip.start_file(name, options)
            .map_err(std::io::Error::other)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            zip.write_all(&buffer[..read])?;
        }
        sums.push_str(&format!("{}  {name}\n", hex::encode(hasher.finalize())));
        Ok(())
    };
    add(&mut zip, "manifest.json", &mut manifest.as_slice())?;
    for (name, mut reader) in sources {
        add(&mut zip, &name, &mut reader)?;
    }
    if let Some(receipt) = &receipt {
        add(&mut zip, "receipt.pdf", &mut receipt.as_slice())?;
    }
    if let Some(notice) = &notice {
        add(&mut zip, "decision-notice.pdf", &mut notice.as_slice())?;
    }
    zip.start_file("SHA256SUMS", options)
        .map_err(std::io::Error::other)?;
    zip.write_all(sums.as_bytes())?;
    let mut file = zip.finish().map_err(std::io::Error::other)?;
    std::io::Seek::rewind(&mut file)?;
    Ok(file)
}
