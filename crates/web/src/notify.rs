//! Who is told what: the recipients of each event and the French messages they receive. An
//! e-mail carries the reference and a link, never confidential content.

use crate::AppState;
use chrono::{DateTime, Utc};
use store::{EmailPayload, OutboxMessage, Referral, StoreResult, User};
use uuid::Uuid;

/// What happened, from the recipient's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    NewReferral,
    UrgentReferral,
    ImmediateReferral,
    AwaitingValidation,
    Acknowledged,
    Registered,
    ComplementRequested,
    ComplementAnswered,
    MessageFromParquet,
    MessageFromSender,
    Decision,
    Judgement,
    Escalation,
    DecisionReminder,
    NewsRequested,
}

impl Notice {
    fn kind(self) -> &'static str {
        match self {
            Notice::NewReferral => "new_referral",
            Notice::UrgentReferral => "urgent_referral",
            Notice::ImmediateReferral => "immediate_referral",
            Notice::AwaitingValidation => "awaiting_validation",
            Notice::Acknowledged => "acknowledged",
            Notice::Registered => "registered",
            Notice::ComplementRequested => "complement_requested",
            Notice::ComplementAnswered => "complement_answered",
            Notice::MessageFromParquet | Notice::MessageFromSender => "message",
            Notice::Decision => "decision",
            Notice::Judgement => "judgement",
            Notice::Escalation => "escalation",
            Notice::DecisionReminder => "reminder",
            Notice::NewsRequested => "news_request",
        }
    }

    /// The short title, with the reference.
    fn title(self, reference: &str) -> String {
        match self {
            Notice::NewReferral => format!("Nouvelle saisine {reference}"),
            Notice::UrgentReferral => {
                format!("Saisine URGENTE {reference} : accusé de réception attendu sous 24 heures")
            }
            Notice::ImmediateReferral => {
                format!("Saisine IMMÉDIATE {reference} : accusé de réception attendu dans l'heure")
            }
            Notice::AwaitingValidation => format!("Saisine {reference} à valider"),
            Notice::Acknowledged => {
                format!("Réception de la saisine {reference} accusée par le parquet")
            }
            Notice::Registered => format!("Saisine {reference} enregistrée par le parquet"),
            Notice::ComplementRequested => {
                format!("Le parquet demande un complément sur la saisine {reference}")
            }
            Notice::ComplementAnswered => format!("Complément reçu sur la saisine {reference}"),
            Notice::MessageFromParquet => {
                format!("Nouveau message du parquet sur la saisine {reference}")
            }
            Notice::MessageFromSender => {
                format!("Nouveau message de l'expéditeur sur la saisine {reference}")
            }
            Notice::Decision => {
                format!("Décision du parquet sur la saisine {reference} (avis de l'article 40-2)")
            }
            Notice::Judgement => format!("Jugement rendu dans l'affaire de la saisine {reference}"),
            Notice::Escalation => {
                format!("ALERTE : saisine {reference} non prise en compte dans le délai")
            }
            Notice::DecisionReminder => {
                format!("Rappel : saisine {reference} sans décision depuis trois mois")
            }
            Notice::NewsRequested => {
                format!("L'expéditeur demande des nouvelles de la saisine {reference}")
            }
        }
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The e-mail for a notice: plain text and HTML parts, reference and link only.
pub fn email(to: &str, notice: Notice, reference: &str, link: &str) -> EmailPayload {
    let title = notice.title(reference);
    let text = format!(
        "Bonjour,\n\n{title}.\n\nRéférence : {reference}\nPour consulter la saisine, connectez-vous à Info Parquet : {link}\n\n\
         Ce message ne contient aucune information confidentielle. Vous pouvez choisir de ne plus recevoir ces courriels depuis la page « Notifications ».\n\n\
         — Info Parquet, plateforme des saisines du procureur de la République"
    );
    let html = format!(
        "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{t}</title></head><body>\
         <p>Bonjour,</p><p><strong>{t}.</strong></p><p>Référence : {r}</p>\
         <p><a href=\"{l}\">Consulter la saisine sur Info Parquet</a></p>\
         <p>Ce message ne contient aucune information confidentielle.</p><p>— Info Parquet</p></body></html>",
        t = escape_html(&title),
        r = escape_html(reference),
        l = escape_html(link)
    );
    EmailPayload {
        to: to.to_string(),
        subject: format!("[Info Parquet] {title}"),
        text,
        html,
    }
}

pub fn link(state: &AppState, referral_id: Uuid) -> String {
    format!(
        "{}/saisines/{referral_id}",
        state.config.public_url.trim_end_matches('/')
    )
}

/// A notification for each user (and an e-mail for those who want them).
pub async fn for_users(
    state: &AppState,
    users: &[User],
    referral: &Referral,
    notice: Notice,
) -> StoreResult<Vec<OutboxMessage>> {
    let recipients = recipients(state, users).await?;
    Ok(messages(state, &recipients, referral, notice))
}

/// Someone to tell, and whether by e-mail too.
pub struct Recipient {
    user_id: Uuid,
    email: Option<String>,
}

/// The active users among `users`, once each, with their choice about e-mails: what the
/// messages need from the database, so that they can be written later, inside a transaction.
pub async fn recipients(state: &AppState, users: &[User]) -> StoreResult<Vec<Recipient>> {
    let mut seen = std::collections::HashSet::new();
    let active: Vec<&User> = users
        .iter()
        .filter(|u| u.active && seen.insert(u.id))
        .collect();
    let ids: Vec<Uuid> = active.iter().map(|u| u.id).collect();
    let wanting_email = state.store.wanting_email(&ids).await?;
    Ok(active
        .into_iter()
        .map(|user| Recipient {
            user_id: user.id,
            email: wanting_email.contains(&user.id).then(|| user.email.clone()),
        })
        .collect())
}

/// A notification for each recipient, naming the referral by its reference.
pub fn messages(
    state: &AppState,
    recipients: &[Recipient],
    referral: &Referral,
    notice: Notice,
) -> Vec<OutboxMessage> {
    let reference = referral
        .row
        .reference
        .clone()
        .unwrap_or_else(|| "(brouillon)".into());
    let link = link(state, referral.row.id);
    recipients
        .iter()
        .map(|recipient| OutboxMessage {
            user_id: Some(recipient.user_id),
            email: recipient.email.clone(),
            referral_id: Some(referral.row.id),
            kind: notice.kind().into(),
            title: notice.title(&reference),
            link: link.clone(),
            email_body: recipient
                .email
                .as_deref()
                .map(|to| email(to, notice, &reference, &link)),
        })
        .collect()
}

/// The parquet's people to tell: its clerks, the assigned prosecutor, and for urgent matters
/// whoever is on call now.
pub async fn parquet_recipients(
    state: &AppState,
    referral: &Referral,
    now: DateTime<Utc>,
    include_on_call: bool,
) -> StoreResult<Vec<User>> {
    let Some(parquet_id) = referral.row.parquet_id else {
        return Ok(Vec::new());
    };
    let staff = state.store.users_of_organisation(parquet_id).await?;
    let mut users: Vec<User> = staff
        .iter()
        .filter(|u| u.role == "clerk")
        .cloned()
        .collect();
    if let Some(assigned) = referral.row.assigned_to {
        users.extend(staff.iter().filter(|u| u.id == assigned).cloned());
    }
    if include_on_call {
        users.extend(
            state
                .store
                .on_call_now(parquet_id, now)
                .await?
                .into_iter()
                .map(|(_, user)| user),
        );
    }
    Ok(users)
}

/// The sender's people to tell: the author.
pub async fn sender_recipients(state: &AppState, referral: &Referral) -> StoreResult<Vec<User>> {
    Ok(state
        .store
        .user(referral.row.author_id)
        .await?
        .into_iter()
        .collect())
}

/// The référents of the sending service (validation requests).
pub async fn referents(state: &AppState, referral: &Referral) -> StoreResult<Vec<User>> {
    Ok(state
        .store
        .users_of_organisation(referral.row.administration_id)
        .await?
        .into_iter()
        .filter(|u| u.role == "referent")
        .collect())
}

/// E-mails to the parquet's escalation contacts (procureur, secrétariat…), who may have no
/// account.
pub async fn escalation_emails(
    state: &AppState,
    referral: &Referral,
) -> StoreResult<Vec<OutboxMessage>> {
    let Some(parquet_id) = referral.row.parquet_id else {
        return Ok(Vec::new());
    };
    let reference = referral.row.reference.clone().unwrap_or_default();
    let link = link(state, referral.row.id);
    Ok(state
        .store
        .escalation_contacts(parquet_id)
        .await?
        .into_iter()
        .map(|contact| OutboxMessage {
            user_id: None,
            email: Some(contact.email.clone()),
            referral_id: Some(referral.row.id),
            kind: Notice::Escalation.kind().into(),
            title: Notice::Escalation.title(&reference),
            link: link.clone(),
            email_body: Some(email(&contact.email, Notice::Escalation, &reference, &link)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_carry_reference_and_link_only() {
        let mail = email(
            "a@b.fr",
            Notice::ImmediateReferral,
            "IP-2026-000001",
            "https://x/saisines/1",
        );
        assert!(mail.subject.contains("IP-2026-000001") && mail.subject.contains("IMMÉDIATE"));
        assert!(
            mail.text.contains("https://x/saisines/1")
                && mail.html.contains("href=\"https://x/saisines/1\"")
        );
        let escaped = email("a@b.fr", Notice::NewReferral, "<script>", "l");
        assert!(!escaped.html.contains("<script>"));
    }
}
