//! The notification centre, and the parquet's on-call rota, escalation contacts and deadlines.

use super::{paris_datetime, render, CsrfForm, Layout};
use crate::auth::SessionUser;
use crate::error::{AppError, PageError};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Europe::Paris;
use domain::Role;
use std::collections::HashMap;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(notifications))
        .route("/notifications/lues", post(mark_read))
        .route("/notifications/preferences", post(preferences))
        .route("/permanence", get(on_call))
        .route("/permanence/gardes", post(add_shift))
        .route("/permanence/gardes/{id}/supprimer", post(delete_shift))
        .route("/permanence/contacts", post(add_contact))
        .route("/permanence/contacts/{id}/supprimer", post(delete_contact))
        .route("/permanence/delais", post(save_settings))
}

pub struct NotificationLine {
    title: String,
    link: String,
    at: String,
    unread: bool,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    layout: Layout,
    csrf: String,
    lines: Vec<NotificationLine>,
    email_enabled: bool,
}

async fn notifications(
    State(state): State<AppState>,
    user: SessionUser,
) -> Result<Response, PageError> {
    let lines = state
        .store
        .notifications(user.current.user.id, 100)
        .await?
        .into_iter()
        .map(|n| NotificationLine {
            title: n.title,
            // Links are the platform's own pages: keep only the path.
            link: n
                .link
                .find("/saisines/")
                .map(|i| n.link[i..].to_string())
                .unwrap_or_else(|| "/saisines".into()),
            at: paris_datetime(n.created_at),
            unread: n.read_at.is_none(),
        })
        .collect();
    let email_enabled = state
        .store
        .email_notifications_enabled(user.current.user.id)
        .await?;
    Ok(render(&NotificationsPage {
        layout: Layout::of(&user, "notifications"),
        csrf: user.csrf_token.clone(),
        lines,
        email_enabled,
    }))
}

async fn mark_read(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf_token)?;
    state
        .store
        .mark_notifications_read(user.current.user.id, state.now())
        .await?;
    Ok(Redirect::to("/notifications").into_response())
}

async fn preferences(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    user.check_csrf(form.get("csrf_token").map(String::as_str).unwrap_or(""))?;
    state
        .store
        .set_email_notifications(user.current.user.id, form.contains_key("email"))
        .await?;
    Ok(Redirect::to("/notifications").into_response())
}

pub struct ShiftLine {
    id: Uuid,
    name: String,
    from: String,
    to: String,
    phone: String,
    now: bool,
}

#[derive(Template)]
#[template(path = "permanence.html")]
struct OnCallPage {
    layout: Layout,
    csrf: String,
    can_manage: bool,
    shifts: Vec<ShiftLine>,
    prosecutors: Vec<(Uuid, String)>,
    contacts: Vec<store::EscalationContact>,
    settings: store::ParquetSettings,
    error: Option<String>,
}

fn parquet_only(user: &SessionUser) -> Result<Uuid, AppError> {
    if user.current.role.is_parquet() {
        Ok(user.current.organisation.id)
    } else {
        Err(AppError::Forbidden(
            "La permanence est gérée par les parquets.".into(),
        ))
    }
}

fn clerk_only(user: &SessionUser) -> Result<Uuid, AppError> {
    if user.current.role == Role::Clerk {
        Ok(user.current.organisation.id)
    } else {
        Err(AppError::Forbidden(
            "Seul le bureau d'ordre modifie la permanence.".into(),
        ))
    }
}

async fn on_call_page(
    state: &AppState,
    user: &SessionUser,
    error: Option<&AppError>,
) -> Result<Response, PageError> {
    let parquet = parquet_only(user)?;
    let now = state.now();
    let shifts = state
        .store
        .shifts(parquet, now - chrono::Duration::hours(1))
        .await?
        .into_iter()
        .filter(|s| s.ends_at > now)
        .map(|s| ShiftLine {
            id: s.id,
            now: s.starts_at <= now,
            name: s.user_name,
            from: paris_datetime(s.starts_at),
            to: paris_datetime(s.ends_at),
            phone: s.phone,
        })
        .collect();
    let prosecutors = state
        .store
        .users_of_organisation(parquet)
        .await?
        .into_iter()
        .filter(|u| u.role == "prosecutor" && u.active)
        .map(|u| (u.id, u.display_name))
        .collect();
    let page = OnCallPage {
        layout: Layout::of(user, "oncall"),
        csrf: user.csrf_token.clone(),
        can_manage: user.current.role == Role::Clerk,
        shifts,
        prosecutors,
        contacts: state.store.escalation_contacts(parquet).await?,
        settings: state.store.parquet_settings(parquet).await?,
        error: error.map(AppError::message_fr),
    };
    let status = error
        .map(AppError::status)
        .unwrap_or(axum::http::StatusCode::OK);
    Ok((status, render(&page)).into_response())
}

async fn on_call(State(state): State<AppState>, user: SessionUser) -> Result<Response, PageError> {
    on_call_page(&state, &user, None).await
}

fn field(form: &HashMap<String, String>, name: &str) -> String {
    form.get(name)
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// A date and time typed in Paris time (datetime-local input).
fn paris_instant(text: &str, name: &str) -> Result<chrono::DateTime<chrono::Utc>, AppError> {
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .map_err(|_| AppError::invalid(name, "Date et heure invalides."))?;
    Paris
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok_or_else(|| AppError::invalid(name, "Cette heure n'existe pas (changement d'heure)."))
}

async fn with_form<F>(
    state: &AppState,
    user: &SessionUser,
    form: &HashMap<String, String>,
    action: F,
) -> Result<Response, PageError>
where
    F: std::future::Future<Output = Result<(), AppError>>,
{
    user.check_csrf(&field(form, "csrf_token"))?;
    match action.await {
        Ok(()) => Ok(Redirect::to("/permanence").into_response()),
        Err(error @ (AppError::Invalid(_) | AppError::Forbidden(_))) => {
            on_call_page(state, user, Some(&error)).await
        }
        Err(other) => Err(other.into()),
    }
}

async fn add_shift(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let action = async {
        let parquet = clerk_only(&user)?;
        let user_id: Uuid = field(&form, "user_id")
            .parse()
            .map_err(|_| AppError::invalid("user_id", "Choisissez le magistrat de permanence."))?;
        let prosecutor = state
            .store
            .user(user_id)
            .await?
            .filter(|u| u.organisation_id == parquet && u.role == "prosecutor")
            .ok_or_else(|| {
                AppError::invalid("user_id", "Choisissez un magistrat de ce parquet.")
            })?;
        let starts_at = paris_instant(&field(&form, "starts_at"), "starts_at")?;
        let ends_at = paris_instant(&field(&form, "ends_at"), "ends_at")?;
        if ends_at <= starts_at {
            return Err(AppError::invalid(
                "ends_at",
                "La fin de la permanence doit suivre son début.",
            ));
        }
        let phone = field(&form, "phone");
        if phone.chars().filter(char::is_ascii_digit).count() < 10 {
            return Err(AppError::invalid(
                "phone",
                "Indiquez un numéro de téléphone joignable (10 chiffres au moins).",
            ));
        }
        let shift = store::OnCallShift {
            id: Uuid::now_v7(),
            parquet_id: parquet,
            user_id: prosecutor.id,
            user_name: prosecutor.display_name,
            starts_at,
            ends_at,
            phone,
        };
        state.store.add_shift(&shift, state.now()).await?;
        Ok(())
    };
    with_form(&state, &user, &form, action).await
}

async fn delete_shift(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let action = async {
        let parquet = clerk_only(&user)?;
        let id = id.parse().map_err(|_| AppError::NotFound)?;
        if !state.store.delete_shift(parquet, id).await? {
            return Err(AppError::NotFound);
        }
        Ok(())
    };
    with_form(&state, &user, &form, action).await
}

async fn add_contact(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let action = async {
        let parquet = clerk_only(&user)?;
        let email = field(&form, "email");
        let name = field(&form, "name");
        if name.is_empty() || !email.contains('@') || email.parse::<lettre::Address>().is_err() {
            return Err(AppError::invalid(
                "email",
                "Indiquez le nom et une adresse électronique valide.",
            ));
        }
        let contact = store::EscalationContact {
            id: Uuid::now_v7(),
            parquet_id: parquet,
            name,
            function: field(&form, "function"),
            email,
        };
        state
            .store
            .add_escalation_contact(&contact, state.now())
            .await?;
        Ok(())
    };
    with_form(&state, &user, &form, action).await
}

async fn delete_contact(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let action = async {
        let parquet = clerk_only(&user)?;
        let id = id.parse().map_err(|_| AppError::NotFound)?;
        if !state.store.delete_escalation_contact(parquet, id).await? {
            return Err(AppError::NotFound);
        }
        Ok(())
    };
    with_form(&state, &user, &form, action).await
}

async fn save_settings(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let action = async {
        let parquet = clerk_only(&user)?;
        let number = |name: &str, min: i64, max: i64| -> Result<i64, AppError> {
            field(&form, name)
                .parse::<i64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| {
                    AppError::invalid(name, format!("Valeur attendue entre {min} et {max}."))
                })
        };
        let settings = store::ParquetSettings {
            immediate_acknowledge_minutes: number("immediate_acknowledge_minutes", 5, 240)?,
            urgent_acknowledge_hours: number("urgent_acknowledge_hours", 1, 72)?,
            normal_register_working_days: number("normal_register_working_days", 1, 30)?,
            escalation_interval_minutes: number("escalation_interval_minutes", 5, 240)?,
        };
        state.store.set_parquet_settings(parquet, &settings).await?;
        Ok(())
    };
    with_form(&state, &user, &form, action).await
}
