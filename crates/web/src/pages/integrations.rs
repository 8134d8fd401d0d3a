//! "Accès API": an organisation's API tokens and webhooks, managed by its référent (an
//! administration) or its bureau d'ordre (a parquet). Secrets are shown once, at creation.

use super::{paris_datetime, render, Layout};
use crate::auth::{new_api_token, sha256_hex, SessionUser};
use crate::error::{AppError, PageError};
use crate::webhooks;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Duration, Utc};
use store::AuditInput;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/acces-api", get(overview))
        .route("/acces-api/jetons", post(create_token))
        .route("/acces-api/jetons/{id}/revoquer", post(revoke_token))
        .route("/acces-api/webhooks", post(create_webhook))
        .route("/acces-api/webhooks/{id}", get(webhook_page))
        .route("/acces-api/webhooks/{id}/desactiver", post(disable_webhook))
        .route("/acces-api/livraisons/{id}/rejouer", post(replay_delivery))
}

/// The events a webhook may subscribe to, with what they mean to the person choosing.
pub const WEBHOOK_EVENTS: [(&str, &str); 12] = [
    ("referral.submitted", "Saisine transmise au parquet"),
    (
        "referral.acknowledged",
        "Accusé de réception par le parquet",
    ),
    ("referral.registered", "Enregistrement (numéro parquet)"),
    ("referral.complement_requested", "Demande de complément"),
    ("referral.complement_answered", "Complément apporté"),
    ("referral.message", "Message"),
    ("referral.attachment_added", "Pièce ajoutée"),
    ("referral.transferred", "Transfert à un autre parquet"),
    ("referral.decided", "Décision (article 40-2)"),
    ("referral.judged", "Jugement"),
    ("referral.withdrawn", "Retrait par l'administration"),
    ("referral.escalated", "Alerte de dépassement de délai"),
];

struct TokenLine {
    id: Uuid,
    name: String,
    owner: String,
    scope: &'static str,
    created: String,
    expires: String,
    last_used: String,
    state: &'static str,
    active: bool,
}

struct WebhookLine {
    id: Uuid,
    url: String,
    events: String,
    created: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct IntegrationsPage {
    layout: Layout,
    csrf: String,
    tokens: Vec<TokenLine>,
    webhooks: Vec<WebhookLine>,
    events: Vec<(&'static str, &'static str)>,
    /// A secret just created, shown this once: (what, value).
    revealed: Option<(&'static str, String)>,
    error: Option<String>,
}

struct DeliveryLine {
    id: Uuid,
    event: String,
    message_id: String,
    created: String,
    state: &'static str,
    attempts: i64,
    next_attempt: String,
    last_error: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    layout: Layout,
    csrf: String,
    webhook: WebhookLine,
    deliveries: Vec<DeliveryLine>,
}

/// Only the référent of an administration and the bureau d'ordre of a parquet manage access.
fn manager_organisation(user: &SessionUser) -> Result<Uuid, AppError> {
    if user.current.role.manages_integrations() {
        Ok(user.current.organisation.id)
    } else {
        Err(AppError::Forbidden(
            "L'accès API est géré par le référent du service ou le bureau d'ordre.".into(),
        ))
    }
}

fn field(form: &[(String, String)], name: &str) -> String {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

fn optional_datetime(at: Option<DateTime<Utc>>, none: &str) -> String {
    at.map(paris_datetime).unwrap_or_else(|| none.to_string())
}

fn webhook_line(hook: store::Webhook) -> WebhookLine {
    let events = if hook.event_types.trim() == "*" {
        "Tous les événements".to_string()
    } else {
        hook.event_types
            .split_whitespace()
            .map(|t| {
                WEBHOOK_EVENTS
                    .iter()
                    .find(|(slug, _)| *slug == t)
                    .map(|(_, label)| label.to_string())
                    .unwrap_or_else(|| t.to_string())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    WebhookLine {
        id: hook.id,
        url: hook.url,
        events,
        created: paris_datetime(hook.created_at),
        active: hook.disabled_at.is_none(),
    }
}

async fn page(
    state: &AppState,
    user: &SessionUser,
    revealed: Option<(&'static str, String)>,
    error: Option<&AppError>,
) -> Result<Response, PageError> {
    let organisation = manager_organisation(user)?;
    let now = state.now();
    let tokens = state
        .store
        .api_tokens_of_organisation(organisation)
        .await?
        .into_iter()
        .map(|t| {
            let expired = t.token.expires_at.is_some_and(|at| at <= now);
            let revoked = t.token.revoked_at.is_some();
            TokenLine {
                id: t.token.id,
                name: t.token.name,
                owner: t.owner_name,
                scope: if t.token.scope == "write" {
                    "Lecture et écriture"
                } else {
                    "Lecture seule"
                },
                created: paris_datetime(t.token.created_at),
                expires: optional_datetime(t.token.expires_at, "Jamais"),
                last_used: optional_datetime(t.token.last_used_at, "Jamais utilisé"),
                state: match (revoked, expired) {
                    (true, _) => "Révoqué",
                    (false, true) => "Expiré",
                    _ => "Actif",
                },
                active: !revoked && !expired,
            }
        })
        .collect();
    let webhooks = state
        .store
        .webhooks_of_organisation(organisation)
        .await?
        .into_iter()
        .map(webhook_line)
        .collect();
    let page = IntegrationsPage {
        layout: Layout::of(user, "integrations"),
        csrf: user.csrf_token.clone(),
        tokens,
        webhooks,
        events: WEBHOOK_EVENTS.to_vec(),
        revealed,
        error: error.map(AppError::message_fr),
    };
    let status = error
        .map(AppError::status)
        .unwrap_or(axum::http::StatusCode::OK);
    let mut response = (status, render(&page)).into_response();
    // A page that may show a secret is never cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn overview(State(state): State<AppState>, user: SessionUser) -> Result<Response, PageError> {
    page(&state, &user, None, None).await
}

async fn journal(
    state: &AppState,
    user: &SessionUser,
    action: &str,
    target: String,
    detail: String,
) -> Result<(), AppError> {
    state
        .store
        .audit(&AuditInput {
            at: state.now(),
            actor: user.current.actor_info(),
            action: action.into(),
            target,
            detail,
        })
        .await?;
    Ok(())
}

/// Runs a change submitted from the page: CSRF first; a refused change shows the page again
/// with its reason.
async fn submitted<F>(
    state: &AppState,
    user: &SessionUser,
    form: &[(String, String)],
    action: F,
) -> Result<Response, PageError>
where
    F: std::future::Future<Output = Result<Option<(&'static str, String)>, AppError>>,
{
    user.check_csrf(&field(form, "csrf_token"))?;
    match action.await {
        Ok(None) => Ok(Redirect::to("/acces-api").into_response()),
        Ok(Some(revealed)) => page(state, user, Some(revealed), None).await,
        Err(error @ (AppError::Invalid(_) | AppError::Forbidden(_))) => {
            page(state, user, None, Some(&error)).await
        }
        Err(other) => Err(other.into()),
    }
}

async fn create_token(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let action = async {
        manager_organisation(&user)?;
        let name = field(&form, "name");
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AppError::invalid(
                "name",
                "Donnez au jeton un nom de 1 à 100 caractères (par exemple le logiciel qui l'utilise).",
            ));
        }
        let scope = match field(&form, "scope").as_str() {
            "read" => "read",
            "write" => "write",
            _ => {
                return Err(AppError::invalid(
                    "scope",
                    "Choisissez les droits du jeton.",
                ))
            }
        };
        let days: i64 = field(&form, "days")
            .parse()
            .ok()
            .filter(|d| [30, 90, 365].contains(d))
            .ok_or_else(|| AppError::invalid("days", "Choisissez une durée de validité."))?;
        let now = state.now();
        let token = new_api_token();
        let record = store::ApiToken {
            id: Uuid::now_v7(),
            user_id: user.current.user.id,
            name: name.clone(),
            scope: scope.into(),
            created_at: now,
            expires_at: Some(now + Duration::days(days)),
            revoked_at: None,
            last_used_at: None,
        };
        state
            .store
            .create_api_token(&record, &sha256_hex(&token))
            .await?;
        journal(
            &state,
            &user,
            "api_token.created",
            format!("api_token:{}", record.id),
            format!("{name} ({scope}, {days} jours)"),
        )
        .await?;
        Ok(Some(("le jeton", token)))
    };
    submitted(&state, &user, &form, action).await
}

async fn revoke_token(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let action = async {
        let organisation = manager_organisation(&user)?;
        let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
        if !state
            .store
            .revoke_api_token(organisation, id, state.now())
            .await?
        {
            return Err(AppError::NotFound);
        }
        journal(
            &state,
            &user,
            "api_token.revoked",
            format!("api_token:{id}"),
            String::new(),
        )
        .await?;
        Ok(None)
    };
    submitted(&state, &user, &form, action).await
}

async fn create_webhook(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let action = async {
        let organisation = manager_organisation(&user)?;
        let url = field(&form, "url");
        if url.len() > 500 || !webhooks::acceptable_url(&url, state.config.webhooks_allow_http) {
            return Err(AppError::invalid(
                "url",
                "Indiquez une adresse complète en https:// (par exemple https://logiciel.service.gouv.fr/infoparquet).",
            ));
        }
        let chosen: Vec<&str> = form
            .iter()
            .filter(|(k, _)| k == "events")
            .map(|(_, v)| v.as_str())
            .collect();
        let event_types = if chosen.contains(&"*") {
            "*".to_string()
        } else {
            let known: Vec<&str> = WEBHOOK_EVENTS
                .iter()
                .map(|(slug, _)| *slug)
                .filter(|slug| chosen.contains(slug))
                .collect();
            if known.is_empty() {
                return Err(AppError::invalid(
                    "events",
                    "Choisissez au moins un événement.",
                ));
            }
            known.join(" ")
        };
        let secret = webhooks::new_secret();
        let hook = store::Webhook {
            id: Uuid::now_v7(),
            organisation_id: organisation,
            url: url.clone(),
            event_types: event_types.clone(),
            secret: secret.clone(),
            created_by: Some(user.current.user.id),
            created_at: state.now(),
            disabled_at: None,
        };
        state.store.create_webhook(&hook).await?;
        journal(
            &state,
            &user,
            "webhook.created",
            format!("webhook:{}", hook.id),
            format!("{url} ({event_types})"),
        )
        .await?;
        Ok(Some(("le secret de signature du webhook", secret)))
    };
    submitted(&state, &user, &form, action).await
}

async fn disable_webhook(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let action = async {
        let organisation = manager_organisation(&user)?;
        let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
        if !state
            .store
            .disable_webhook(organisation, id, state.now())
            .await?
        {
            return Err(AppError::NotFound);
        }
        journal(
            &state,
            &user,
            "webhook.disabled",
            format!("webhook:{id}"),
            String::new(),
        )
        .await?;
        Ok(None)
    };
    submitted(&state, &user, &form, action).await
}

/// The webhook of the caller's organisation, or 404 (another organisation's is never revealed).
async fn own_webhook(
    state: &AppState,
    user: &SessionUser,
    id: &str,
) -> Result<store::Webhook, AppError> {
    let organisation = manager_organisation(user)?;
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    state
        .store
        .webhook(id)
        .await?
        .filter(|h| h.organisation_id == organisation)
        .ok_or(AppError::NotFound)
}

async fn webhook_page(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let hook = own_webhook(&state, &user, &id).await?;
    let deliveries = state
        .store
        .webhook_deliveries(hook.id, 100)
        .await?
        .into_iter()
        .map(|d| {
            let message = d.message();
            DeliveryLine {
                id: d.id,
                event: message
                    .as_ref()
                    .map(|m| m.event_type.clone())
                    .unwrap_or_default(),
                message_id: message.map(|m| m.message_id).unwrap_or_default(),
                created: paris_datetime(d.created_at),
                state: match d.status.as_str() {
                    "done" => "Livrée",
                    "failed" => "Abandonnée",
                    _ if d.attempts == 0 => "En attente",
                    _ => "Nouvel essai prévu",
                },
                attempts: d.attempts,
                next_attempt: if d.status == "pending" {
                    paris_datetime(d.run_at)
                } else {
                    optional_datetime(d.done_at, "—")
                },
                last_error: d.last_error.unwrap_or_default(),
            }
        })
        .collect();
    Ok(render(&WebhookPage {
        layout: Layout::of(&user, "integrations"),
        csrf: user.csrf_token.clone(),
        webhook: webhook_line(hook),
        deliveries,
    }))
}

async fn replay_delivery(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    user.check_csrf(&field(&form, "csrf_token"))?;
    let organisation = manager_organisation(&user)?;
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let webhook_id = field(&form, "webhook_id");
    if !state
        .store
        .replay_webhook_delivery(organisation, id, state.now())
        .await?
    {
        return Err(AppError::NotFound.into());
    }
    journal(
        &state,
        &user,
        "webhook.replayed",
        format!("job:{id}"),
        String::new(),
    )
    .await?;
    let back = match webhook_id.parse::<Uuid>() {
        Ok(hook) => format!("/acces-api/webhooks/{hook}"),
        Err(_) => "/acces-api".into(),
    };
    Ok(Redirect::to(&back).into_response())
}
