//! The referral page's forms: one route per action, each a plain HTML form with its CSRF token.
//! Success redirects back to the page with a confirmation; failure shows the page again with
//! the error, keeping what was saved.

use super::referral::{parse_id, referral_page};
use crate::auth::SessionUser;
use crate::error::{AppError, PageError};
use crate::service::{DecisionInput, JudgementInput, ReferralService};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use chrono::NaiveDate;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new().route("/saisines/{id}/actions/{action}", post(act))
}

/// The confirmation shown after each action.
pub fn confirmation(action: &str) -> Option<&'static str> {
    Some(match action {
        "acknowledge" => "Réception accusée : l'expéditeur en est informé.",
        "register" => "Saisine enregistrée.",
        "assign" => "Saisine attribuée.",
        "request-complement" => "Demande de complément envoyée à l'expéditeur.",
        "complement" => "Votre réponse a été transmise au parquet.",
        "investigation" => "Enquête ouverte.",
        "transfer" => "Saisine transférée.",
        "decision" => {
            "Décision enregistrée ; l'avis de l'article 40-2 est à la disposition de l'expéditeur."
        }
        "measure-outcome" => "Issue de la mesure enregistrée.",
        "judgement" => "Jugement enregistré.",
        "close" => "Dossier clôturé.",
        "withdraw" => "Saisine retirée.",
        "validate" => "Saisine validée et transmise au parquet.",
        "return" => "Brouillon renvoyé au rédacteur.",
        "message" => "Message envoyé.",
        "note" => "Note interne ajoutée.",
        "news" => "Demande de nouvelles transmise au parquet.",
        "pieces" => "Pièces ajoutées : elles figurent au journal de la saisine.",
        "filter" => "Filtre enregistré.",
        "awaiting" => "Saisine soumise à la validation de votre référent.",
        _ => return None,
    })
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or("").trim()
}

fn optional(form: &HashMap<String, String>, name: &str) -> Option<String> {
    Some(field(form, name).to_string()).filter(|v| !v.is_empty())
}

fn date(form: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, AppError> {
    match optional(form, name) {
        None => Ok(None),
        Some(text) => NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| AppError::invalid(name, "Date invalide (format attendu : jj/mm/aaaa).")),
    }
}

async fn perform(
    service: &ReferralService<'_>,
    id: uuid::Uuid,
    action: &str,
    form: &HashMap<String, String>,
) -> Result<(), AppError> {
    match action {
        "acknowledge" => service.acknowledge(id).await.map(drop),
        "register" => service
            .register(id, field(form, "parquet_number"))
            .await
            .map(drop),
        "assign" => {
            let user_id = field(form, "user_id")
                .parse()
                .map_err(|_| AppError::invalid("user_id", "Choisissez un magistrat."))?;
            service.assign(id, user_id).await.map(drop)
        }
        "request-complement" => service
            .request_complement(id, field(form, "message"))
            .await
            .map(drop),
        "complement" => service
            .answer_complement(id, field(form, "message"))
            .await
            .map(drop),
        "investigation" => service.open_investigation(id).await.map(drop),
        "transfer" => {
            let parquet_id = field(form, "parquet_id").parse().map_err(|_| {
                AppError::invalid("parquet_id", "Choisissez le parquet destinataire.")
            })?;
            service
                .transfer(id, parquet_id, field(form, "reason"))
                .await
                .map(drop)
        }
        "decision" => {
            let input = DecisionInput {
                kind: field(form, "kind").to_string(),
                reason_code: optional(form, "reason_code"),
                measure: optional(form, "measure"),
                mode: optional(form, "mode"),
                comment: optional(form, "comment"),
                hearing_date: date(form, "hearing_date")?,
            };
            service.decide(id, input).await.map(drop)
        }
        "measure-outcome" => service
            .measure_outcome(
                id,
                field(form, "outcome") == "success",
                optional(form, "mode"),
            )
            .await
            .map(drop),
        "judgement" => {
            let input = JudgementInput {
                date: date(form, "date")?
                    .ok_or_else(|| AppError::invalid("date", "Indiquez la date du jugement."))?,
                outcome: field(form, "outcome").to_string(),
                summary: optional(form, "summary"),
                appeal: Some(form.contains_key("appeal")),
            };
            service.judgement(id, input).await.map(drop)
        }
        "close" => service.close(id).await.map(drop),
        "withdraw" => service.withdraw(id).await.map(drop),
        "validate" => service.validate(id).await.map(drop),
        "return" => service
            .return_to_draft(id, field(form, "comment"))
            .await
            .map(drop),
        "message" => service
            .post_message(id, field(form, "body"))
            .await
            .map(drop),
        "news" => service.request_news(id).await.map(drop),
        "note" => service.add_note(id, field(form, "body")).await.map(drop),
        _ => Err(AppError::NotFound),
    }
}

async fn act(
    State(state): State<AppState>,
    user: SessionUser,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    user.check_csrf(field(&form, "csrf_token"))?;
    let id = parse_id(&id)?;
    let service = ReferralService::new(&state, &user.current);
    match perform(&service, id, &action, &form).await {
        Ok(()) => {
            // After a transfer or a withdrawal the page may no longer be visible to the caller.
            let target = match action.as_str() {
                "transfer" => "/saisines?fait=transfer".to_string(),
                _ => format!("/saisines/{id}?fait={action}"),
            };
            Ok(Redirect::to(&target).into_response())
        }
        Err(AppError::NotFound) => Err(AppError::NotFound.into()),
        Err(error) => referral_page(&state, &user, id, None, Some(&error)).await,
    }
}
