//! The accusé de réception and the art. 40-2 notice.

use crate::{PdfDocument, Style};
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;

const HEADER: &str = "RÉPUBLIQUE FRANÇAISE — Ministère de la Justice — Info Parquet";

#[derive(Debug, Clone)]
pub struct ReceiptAttachment {
    pub filename: String,
    pub size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct ReceiptData {
    pub reference: String,
    pub submitted_at: DateTime<Utc>,
    pub sender_organisation: String,
    pub sender_siret: Option<String>,
    pub sender_agent: String,
    pub parquet: String,
    pub title: String,
    pub attachments: Vec<ReceiptAttachment>,
    pub verification_code: String,
    pub verification_url: String,
    /// The platform's Ed25519 signature of the receipt's canonical content (base64).
    pub signature: Option<String>,
}

fn paris_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Paris)
        .format("%d/%m/%Y à %H:%M:%S (heure de Paris)")
        .to_string()
}

fn human_size(bytes: i64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} Mo", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} ko", b as f64 / f64::from(1 << 10)),
        b => format!("{b} octets"),
    }
}

pub fn receipt_pdf(data: &ReceiptData) -> Vec<u8> {
    let mut doc = PdfDocument::new(format!("Accusé de réception {}", data.reference), HEADER);
    doc.push(
        Style::Title,
        format!("Accusé de réception de la saisine {}", data.reference),
    );
    doc.push(
        Style::Body,
        format!(
            "La plateforme Info Parquet certifie avoir reçu le {} la saisine ci-dessous et l'avoir transmise au {}.",
            paris_time(data.submitted_at),
            data.parquet
        ),
    );
    doc.push(Style::Heading, "Expéditeur");
    let siret = data
        .sender_siret
        .as_deref()
        .map(|s| format!(" (SIRET {s})"))
        .unwrap_or_default();
    doc.push(Style::Body, format!("{}{siret}", data.sender_organisation));
    doc.push(
        Style::Body,
        format!("Transmise par : {}", data.sender_agent),
    );
    doc.push(Style::Heading, "Destinataire");
    doc.push(Style::Body, data.parquet.clone());
    doc.push(Style::Heading, "Objet");
    doc.push(Style::Body, data.title.clone());
    doc.push(
        Style::Heading,
        format!("Pièces jointes ({})", data.attachments.len()),
    );
    if data.attachments.is_empty() {
        doc.push(Style::Body, "Aucune pièce jointe.");
    }
    for (index, attachment) in data.attachments.iter().enumerate() {
        doc.push(
            Style::Body,
            format!(
                "{}. {} — {}",
                index + 1,
                attachment.filename,
                human_size(attachment.size)
            ),
        );
        doc.push(Style::Mono, format!("SHA-256 : {}", attachment.sha256));
    }
    doc.push(Style::Heading, "Vérification");
    doc.push(
        Style::Body,
        format!("Code de vérification : {}", data.verification_code),
    );
    doc.push(
        Style::Body,
        format!(
            "Toute personne peut vérifier l'authenticité de cet accusé de réception, sans accéder au contenu de la saisine, à l'adresse {} en saisissant ce code.",
            data.verification_url
        ),
    );
    if let Some(signature) = &data.signature {
        doc.push(
            Style::Body,
            "Signature électronique de la plateforme (Ed25519) :",
        );
        doc.push(Style::Mono, signature.clone());
    }
    doc.push(
        Style::Small,
        "L'empreinte SHA-256 de chaque pièce permet de prouver qu'un document est identique, à l'octet près, à celui qui a été transmis.",
    );
    doc.render()
}

#[derive(Debug, Clone)]
pub struct DecisionNoticeData {
    pub reference: String,
    pub parquet_number: Option<String>,
    pub parquet: String,
    pub sender_organisation: String,
    pub title: String,
    pub decided_at: DateTime<Utc>,
    /// "Avis de classement sans suite", "Avis de poursuites"…
    pub notice_title: String,
    /// The decision in plain words.
    pub decision: String,
    /// For a dismissal: the reason from the grid ("21 — Infraction insuffisamment caractérisée").
    pub reason: Option<String>,
    pub comment: Option<String>,
    pub is_dismissal: bool,
    pub signature: Option<String>,
}

pub fn decision_notice_pdf(data: &DecisionNoticeData) -> Vec<u8> {
    let mut doc = PdfDocument::new(
        format!("{} — {}", data.notice_title, data.reference),
        HEADER,
    );
    doc.push(Style::Title, data.notice_title.clone());
    doc.push(
        Style::Body,
        format!(
            "Article 40-2 du code de procédure pénale — {}",
            data.parquet
        ),
    );
    doc.push(Style::Heading, "Saisine concernée");
    doc.push(
        Style::Body,
        format!("Référence Info Parquet : {}", data.reference),
    );
    if let Some(number) = &data.parquet_number {
        doc.push(Style::Body, format!("Numéro parquet : {number}"));
    }
    doc.push(
        Style::Body,
        format!("Expéditeur : {}", data.sender_organisation),
    );
    doc.push(Style::Body, format!("Objet : {}", data.title));
    doc.push(Style::Heading, "Décision");
    doc.push(
        Style::Body,
        format!(
            "Le {}, le procureur de la République a décidé : {}.",
            paris_time(data.decided_at),
            data.decision
        ),
    );
    if let Some(reason) = &data.reason {
        doc.push(Style::Body, format!("Motif : {reason}"));
    }
    if let Some(comment) = data.comment.as_deref().filter(|c| !c.trim().is_empty()) {
        doc.push(Style::Body, format!("Observations : {comment}"));
    }
    if let Some(signature) = &data.signature {
        doc.push(
            Style::Small,
            "Avis signé électroniquement par la plateforme (Ed25519) :",
        );
        doc.push(Style::Mono, signature.clone());
    }
    if data.is_dismissal {
        doc.push(Style::Heading, "Voie de recours");
        doc.push(
            Style::Body,
            "En application de l'article 40-3 du code de procédure pénale, toute personne ayant dénoncé des faits au procureur de la République peut former un recours auprès du procureur général contre la décision de classement sans suite prise à la suite de cette dénonciation.",
        );
    }
    doc.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_lists_every_hash() {
        let data = ReceiptData {
            reference: "IP-2026-000001".into(),
            submitted_at: Utc::now(),
            sender_organisation: "DDPP de Loir-et-Cher".into(),
            sender_siret: Some("13002526500013".into()),
            sender_agent: "Claire Martin".into(),
            parquet: "Parquet du tribunal judiciaire de Blois".into(),
            title: "Tromperie".into(),
            attachments: vec![ReceiptAttachment {
                filename: "pv.pdf".into(),
                size: 2048,
                sha256: "ab".repeat(32),
            }],
            verification_code: "ABCD-EFGH-JKLM".into(),
            verification_url: "http://127.0.0.1:8080/verify".into(),
            signature: Some("c2lnbmF0dXJl".into()),
        };
        let text = crate::layout::tests::extract_text(&receipt_pdf(&data));
        assert!(
            text.contains(&"ab".repeat(32)),
            "hash printed whole: {text}"
        );
        assert!(
            text.contains("Code de vérification : ABCD-EFGH-JKLM"),
            "{text}"
        );
        assert!(
            text.contains("DDPP de Loir-et-Cher (SIRET 13002526500013)"),
            "{text}"
        );
        assert!(text.contains("1. pv.pdf — 2.0 ko"), "{text}");
    }

    #[test]
    fn dismissal_notice_states_reason_and_appeal() {
        let data = DecisionNoticeData {
            reference: "IP-2026-000001".into(),
            parquet_number: Some("26109000001".into()),
            parquet: "Parquet du tribunal judiciaire de Blois".into(),
            sender_organisation: "DDPP".into(),
            title: "Tromperie".into(),
            decided_at: Utc::now(),
            notice_title: "Avis de classement sans suite".into(),
            decision: "le classement sans suite de la procédure".into(),
            reason: Some("21 — Infraction insuffisamment caractérisée".into()),
            comment: None,
            is_dismissal: true,
            signature: None,
        };
        let text = crate::layout::tests::extract_text(&decision_notice_pdf(&data));
        assert!(
            text.contains("Motif : 21 — Infraction insuffisamment caractérisée"),
            "{text}"
        );
        assert!(text.contains("article 40-3"), "{text}");
    }
}
