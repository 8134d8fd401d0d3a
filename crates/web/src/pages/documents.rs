//! PDF documents of a referral, shared by the API and the pages.

use crate::error::AppError;
use crate::AppState;
use documents::{DecisionNoticeData, ReceiptAttachment, ReceiptData};
use domain::referral::{AlternativeMeasureKind, ProsecutionMode};
use domain::DecisionKind;
use store::Referral;

pub async fn receipt(state: &AppState, referral: &Referral) -> Result<(Vec<u8>, String), AppError> {
    let receipt = crate::views::ReceiptView::of(referral).ok_or_else(|| {
        AppError::Conflict(
            "Cette saisine n'a pas encore été transmise : pas d'accusé de réception.".into(),
        )
    })?;
    let author = state
        .store
        .user(referral.row.author_id)
        .await?
        .map(|u| u.display_name)
        .unwrap_or_default();
    let data = ReceiptData {
        reference: receipt.reference.clone(),
        submitted_at: receipt.submitted_at,
        sender_organisation: referral.administration.name.clone(),
        sender_siret: referral.administration.siret.clone(),
        sender_agent: author,
        parquet: receipt.parquet.name.clone(),
        title: referral.row.title.clone(),
        attachments: receipt
            .attachments
            .iter()
            .map(|a| ReceiptAttachment {
                filename: a.filename.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
            })
            .collect(),
        verification_code: receipt.verification_code.clone(),
        verification_url: format!("{}/verify", state.config.public_url.trim_end_matches('/')),
        signature: referral.row.receipt_signature.clone(),
    };
    Ok((
        documents::receipt_pdf(&data),
        format!("accuse-reception-{}.pdf", receipt.reference),
    ))
}

pub async fn decision_notice(
    state: &AppState,
    referral: &Referral,
) -> Result<(Vec<u8>, String), AppError> {
    let decision = referral
        .row
        .decision
        .as_ref()
        .map(|d| d.0.clone())
        .ok_or_else(|| {
            AppError::Conflict("Aucune décision n'a encore été prise sur cette saisine.".into())
        })?;
    let kind = DecisionKind::parse(&decision.kind)
        .ok_or_else(|| AppError::Internal("unknown decision kind".into()))?;
    let reason = match &decision.reason_code {
        Some(code) => {
            let reasons = state.store.dismissal_reasons().await?;
            Some(
                reasons
                    .iter()
                    .find(|r| &r.code == code)
                    .map(|r| format!("{} — {}", r.code, r.label))
                    .unwrap_or_else(|| code.clone()),
            )
        }
        None => None,
    };
    let (notice_title, text) = match kind {
        DecisionKind::Dismissal => (
            "Avis de classement sans suite",
            "le classement sans suite de la procédure".to_string(),
        ),
        DecisionKind::AlternativeMeasure => (
            "Avis de mesure alternative aux poursuites",
            format!(
                "une mesure alternative aux poursuites ({})",
                decision
                    .measure
                    .as_deref()
                    .and_then(AlternativeMeasureKind::parse)
                    .map(|m| m.label_fr())
                    .unwrap_or("mesure")
            ),
        ),
        DecisionKind::Prosecution => (
            "Avis de poursuites",
            format!(
                "l'engagement de poursuites ({}){}",
                decision
                    .mode
                    .as_deref()
                    .and_then(ProsecutionMode::parse)
                    .map(|m| m.label_fr())
                    .unwrap_or("poursuites"),
                decision
                    .hearing_date
                    .map(|d| format!(", audience fixée au {}", d.format("%d/%m/%Y")))
                    .unwrap_or_default()
            ),
        ),
        DecisionKind::JudicialInvestigation => (
            "Avis d'ouverture d'une information judiciaire",
            "l'ouverture d'une information judiciaire".to_string(),
        ),
        DecisionKind::Joined => (
            "Avis de jonction",
            "la jonction de la saisine à une procédure existante".to_string(),
        ),
    };
    let reference = referral.row.reference.clone().unwrap_or_default();
    let data = DecisionNoticeData {
        reference: reference.clone(),
        parquet_number: referral.row.parquet_number.clone(),
        parquet: referral
            .parquet
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        sender_organisation: referral.administration.name.clone(),
        title: referral.row.title.clone(),
        decided_at: decision.decided_at,
        notice_title: notice_title.into(),
        decision: text,
        reason,
        comment: decision.comment.clone(),
        is_dismissal: kind == DecisionKind::Dismissal,
        signature: referral.row.notice_signature.clone(),
    };
    Ok((
        documents::decision_notice_pdf(&data),
        format!("avis-40-2-{reference}.pdf"),
    ))
}
