//! JSON shapes of the API (names fixed by API.md).

use chrono::{DateTime, NaiveDate, Utc};
use domain::calendar::{is_alsace_moselle, DeadlineKind, DeadlinePolicy};
use domain::{Role, Status, Urgency};
use serde::Serialize;
use store::{Decision, Party, Referral};
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct PlaceView {
    pub commune_insee: String,
    pub address: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OrganisationView {
    pub id: Uuid,
    pub name: String,
    pub siret: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ParquetView {
    pub id: Uuid,
    pub name: String,
    pub competence: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AttachmentView {
    pub id: Uuid,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub kind: String,
    pub uploaded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct DeadlineView {
    pub kind: DeadlineKind,
    pub due_at: DateTime<Utc>,
    pub overdue: bool,
}

#[derive(Debug, Serialize)]
pub struct ReferralView {
    pub id: Uuid,
    pub reference: Option<String>,
    pub status: String,
    pub kind: String,
    pub urgency: String,
    pub title: String,
    pub facts: String,
    pub administration_reference: Option<String>,
    pub facts_started_on: Option<NaiveDate>,
    pub facts_ended_on: Option<NaiveDate>,
    pub place: Option<PlaceView>,
    pub offence_codes: Vec<i64>,
    pub parties: Vec<Party>,
    pub administration: OrganisationView,
    pub parquet: Option<ParquetView>,
    pub attachments: Vec<AttachmentView>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub parquet_number: Option<String>,
    pub limitation_date: Option<NaiveDate>,
    pub decision: Option<Decision>,
    pub deadline: Option<DeadlineView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub competence_reason: Option<String>,
}

/// What a deadline is computed from, whether the referral was loaded whole or as a list row.
struct DeadlineFacts<'a> {
    status: &'a str,
    urgency: &'a str,
    submitted_at: Option<DateTime<Utc>>,
    acknowledged_at: Option<DateTime<Utc>>,
    registered_at: Option<DateTime<Utc>>,
    parquet_departement: Option<&'a str>,
    policy: DeadlinePolicy,
}

impl DeadlineFacts<'_> {
    /// The deadline in force under the parquet's own policy, if any.
    fn deadline(&self, now: DateTime<Utc>) -> Option<DeadlineView> {
        let status = Status::parse(self.status)?;
        if !matches!(
            status,
            Status::Submitted | Status::Registered | Status::UnderInvestigation
        ) {
            return None;
        }
        let urgency = Urgency::parse(self.urgency).unwrap_or(Urgency::Normal);
        let deadline = self.policy.current_deadline(
            urgency,
            self.submitted_at?,
            self.acknowledged_at,
            self.registered_at,
            status.is_decided(),
            self.parquet_departement.is_some_and(is_alsace_moselle),
        )?;
        Some(DeadlineView {
            kind: deadline.kind,
            due_at: deadline.due_at,
            overdue: deadline.due_at < now,
        })
    }
}

/// The deadline in force for a referral, if any.
pub fn deadline_of(referral: &Referral, now: DateTime<Utc>) -> Option<DeadlineView> {
    let row = &referral.row;
    DeadlineFacts {
        status: &row.status,
        urgency: &row.urgency,
        submitted_at: row.submitted_at,
        acknowledged_at: row.acknowledged_at,
        registered_at: row.registered_at,
        parquet_departement: referral
            .parquet
            .as_ref()
            .and_then(|p| p.departement.as_deref()),
        policy: referral.deadline_policy,
    }
    .deadline(now)
}

/// The deadline in force for a line of a list, computed exactly as for the whole referral.
pub fn summary_deadline(
    summary: &store::ReferralSummary,
    now: DateTime<Utc>,
) -> Option<DeadlineView> {
    DeadlineFacts {
        status: &summary.status,
        urgency: &summary.urgency,
        submitted_at: summary.submitted_at,
        acknowledged_at: summary.acknowledged_at,
        registered_at: summary.registered_at,
        parquet_departement: summary.parquet_departement.as_deref(),
        policy: summary.deadline_policy(),
    }
    .deadline(now)
}

impl ReferralView {
    pub fn new(referral: &Referral, viewer: Role, now: DateTime<Utc>) -> ReferralView {
        let row = &referral.row;
        ReferralView {
            id: row.id,
            reference: row.reference.clone(),
            status: row.status.clone(),
            kind: row.kind.clone(),
            urgency: row.urgency.clone(),
            title: row.title.clone(),
            facts: row.facts.clone(),
            administration_reference: row.administration_reference.clone(),
            facts_started_on: row.facts_started_on,
            facts_ended_on: row.facts_ended_on,
            place: row.commune_insee.clone().map(|commune_insee| PlaceView {
                commune_insee,
                address: row.address.clone(),
            }),
            offence_codes: referral.offence_codes.clone(),
            parties: referral.parties.clone(),
            administration: OrganisationView {
                id: referral.administration.id,
                name: referral.administration.name.clone(),
                siret: referral.administration.siret.clone(),
            },
            parquet: referral.parquet.as_ref().map(|p| ParquetView {
                id: p.id,
                name: p.name.clone(),
                competence: row.competence.clone(),
            }),
            attachments: referral
                .attachments
                .iter()
                .map(|a| AttachmentView {
                    id: a.id,
                    filename: a.filename.clone(),
                    media_type: a.media_type.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                    kind: a.kind.clone(),
                    uploaded_at: a.uploaded_at,
                })
                .collect(),
            created_at: row.created_at,
            submitted_at: row.submitted_at,
            acknowledged_at: row.acknowledged_at,
            registered_at: row.registered_at,
            parquet_number: row.parquet_number.clone(),
            limitation_date: row.limitation_date,
            decision: row.decision.as_ref().map(|d| d.0.clone()),
            deadline: deadline_of(referral, now),
            assigned_to: if viewer.is_parquet() {
                row.assigned_to
            } else {
                None
            },
            competence_reason: row.competence_reason.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReceiptAttachmentView {
    pub filename: String,
    pub size: i64,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct ReceiptView {
    pub reference: String,
    pub submitted_at: DateTime<Utc>,
    pub parquet: ParquetView,
    pub attachments: Vec<ReceiptAttachmentView>,
    pub verification_code: String,
}

impl ReceiptView {
    /// The receipt of a sent referral; `None` before sending.
    pub fn of(referral: &Referral) -> Option<ReceiptView> {
        let row = &referral.row;
        let parquet = referral.parquet.as_ref()?;
        Some(ReceiptView {
            reference: row.reference.clone()?,
            submitted_at: row.submitted_at?,
            parquet: ParquetView {
                id: parquet.id,
                name: parquet.name.clone(),
                competence: row.competence.clone(),
            },
            attachments: referral
                .attachments
                .iter()
                .filter(|a| a.uploaded_at <= row.submitted_at.unwrap_or(a.uploaded_at))
                .map(|a| ReceiptAttachmentView {
                    filename: a.filename.clone(),
                    size: a.size,
                    sha256: a.sha256.clone(),
                })
                .collect(),
            verification_code: row.verification_code.clone()?,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct ListView<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The canonical content a referral's receipt certifies (what its signature covers).
pub fn receipt_content(referral: &Referral) -> Option<domain::integrity::ReceiptContent> {
    let row = &referral.row;
    let parquet = referral.parquet.as_ref()?;
    let submitted_at = row.submitted_at?;
    Some(domain::integrity::ReceiptContent {
        format: "infoparquet-receipt-v1",
        reference: row.reference.clone()?,
        submitted_at: domain::integrity::canonical_instant(submitted_at),
        sender_siret: referral.administration.siret.clone(),
        parquet_id: parquet.id,
        parquet: parquet.name.clone(),
        documents: referral
            .attachments
            .iter()
            .filter(|a| a.uploaded_at <= submitted_at)
            .map(|a| domain::integrity::CertifiedDocument {
                filename: a.filename.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
            })
            .collect(),
        verification_code: row.verification_code.clone()?,
    })
}

/// The canonical content of a decision notice.
pub fn notice_content(referral: &Referral) -> Option<domain::integrity::NoticeContent> {
    let row = &referral.row;
    let decision = &row.decision.as_ref()?.0;
    Some(domain::integrity::NoticeContent {
        format: "infoparquet-notice-v1",
        reference: row.reference.clone()?,
        parquet_number: row.parquet_number.clone(),
        kind: decision.kind.clone(),
        reason_code: decision.reason_code.clone(),
        measure: decision.measure.clone(),
        mode: decision.mode.clone(),
        comment: decision.comment.clone(),
        decided_at: domain::integrity::canonical_instant(decision.decided_at),
    })
}

/// Whether the stored receipt signature still matches what the database holds.
pub fn receipt_signature_valid(referral: &Referral, public_key: &str) -> bool {
    match (
        receipt_content(referral),
        referral.row.receipt_signature.as_deref(),
    ) {
        (Some(content), Some(signature)) => domain::integrity::verify_signature(
            public_key,
            &domain::integrity::canonical_bytes(&content),
            signature,
        ),
        _ => false,
    }
}
