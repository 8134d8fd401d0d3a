//! Server-rendered DSFR pages. Every essential action is a plain HTML form: JavaScript is never
//! required.

mod actions;
pub mod documents;
mod draft;
mod integrations;
pub mod legal;
pub mod proconnect;
mod referral;
mod second_factor;
pub mod stats;
mod urgency;

use crate::auth::{self, MaybeSessionUser, SessionUser};
use crate::error::PageError;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/connexion", get(login_page).post(login))
        .route("/deconnexion", post(logout))
        .route("/verify", get(verify))
        .merge(referral::routes())
        .merge(actions::routes())
        .merge(draft::routes())
        .merge(urgency::routes())
        .merge(stats::routes())
        .merge(legal::routes())
        .merge(integrations::routes())
        .merge(second_factor::routes())
        .merge(proconnect::routes())
}

/// Renders a template; a template failure is an internal error page.
pub fn render<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Erreur interne").into_response()
        }
    }
}

/// What the layout shows about the logged-in person.
pub struct SessionInfo {
    pub user_name: String,
    pub organisation: String,
    pub csrf: String,
    pub is_sender: bool,
    pub is_admin: bool,
    pub manages_integrations: bool,
    pub unread: i64,
}

pub struct Layout {
    pub session: Option<SessionInfo>,
    pub section: &'static str,
}

impl Layout {
    pub fn anonymous() -> Layout {
        Layout {
            session: None,
            section: "",
        }
    }

    pub fn of(user: &SessionUser, section: &'static str) -> Layout {
        Layout {
            session: Some(SessionInfo {
                user_name: user.current.user.display_name.clone(),
                organisation: user.current.organisation.name.clone(),
                csrf: user.csrf_token.clone(),
                is_sender: user.current.role.is_sender(),
                unread: user.unread,
                is_admin: user.current.role == domain::Role::Admin,
                manages_integrations: user.current.role.manages_integrations(),
            }),
            section,
        }
    }

    pub fn maybe(user: &Option<SessionUser>, section: &'static str) -> Layout {
        match user {
            Some(user) => Layout::of(user, section),
            None => Layout {
                session: None,
                section,
            },
        }
    }
}

pub fn paris_date(at: DateTime<Utc>) -> String {
    at.with_timezone(&Paris).format("%d/%m/%Y").to_string()
}

pub fn paris_datetime(at: DateTime<Utc>) -> String {
    at.with_timezone(&Paris)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub title: &'static str,
    pub detail: String,
    pub status: u16,
}

/// Each role's home: the sender's list, the parquet's inbox, the national figures for
/// platform administrators (who read no referral).
async fn home(MaybeSessionUser(user): MaybeSessionUser) -> Redirect {
    match user {
        Some(user) if user.current.role == domain::Role::Admin => Redirect::to("/statistiques"),
        Some(_) => Redirect::to("/saisines"),
        None => Redirect::to("/connexion"),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    error: Option<String>,
    email: String,
    /// Whether the ProConnect button is offered.
    proconnect: bool,
}

async fn login_page(
    State(state): State<AppState>,
    MaybeSessionUser(user): MaybeSessionUser,
) -> Response {
    if user.is_some() {
        return Redirect::to("/saisines").into_response();
    }
    render(&LoginPage {
        layout: Layout::anonymous(),
        error: None,
        email: String::new(),
        proconnect: state.config.proconnect.is_some(),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(state): State<AppState>,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let email = form.email.trim().to_lowercase();
    // Progressive lockout: after repeated failures the account refuses every attempt for a
    // while, even with the right password.
    if let Some(until) = state.store.login_locked_until(&email, state.now()).await? {
        let page = LoginPage {
            layout: Layout::anonymous(),
            error: Some(format!(
                "Trop de tentatives de connexion pour ce compte. Réessayez après {} (heure de Paris).",
                until.with_timezone(&Paris).format("%H:%M")
            )),
            email: form.email,
            proconnect: state.config.proconnect.is_some(),
        };
        return Ok((StatusCode::TOO_MANY_REQUESTS, render(&page)).into_response());
    }
    let user = state
        .store
        .user_by_email(&email)
        .await?
        .filter(|u| u.active);
    let verified = match user.as_ref().and_then(|u| u.password_hash.clone()) {
        Some(hash) => tokio::task::spawn_blocking({
            let password = form.password.clone();
            move || auth::verify_password(&password, &hash)
        })
        .await
        .unwrap_or(false),
        None => false,
    };
    let journal_actor =
        |name: String, role: String, organisation: String, user_id| store::ActorInfo {
            user_id,
            name,
            role,
            organisation,
        };
    let Some(user) = user.filter(|_| verified) else {
        // Failed attempts are journaled too (the e-mail tried, never the password).
        let attempt = store::AuditInput {
            at: state.now(),
            actor: journal_actor(
                form.email.chars().take(120).collect(),
                "anonymous".into(),
                String::new(),
                None,
            ),
            action: "auth.login_failed".into(),
            target: "auth".into(),
            detail: String::new(),
        };
        state.store.audit(&attempt).await?;
        let locked = state
            .store
            .record_login_failure(&email, state.now())
            .await?;
        let message = match locked {
            Some(until) => format!(
                "Adresse électronique ou mot de passe incorrect. Trop de tentatives : ce compte est bloqué jusqu'à {} (heure de Paris).",
                until.with_timezone(&Paris).format("%H:%M")
            ),
            None => "Adresse électronique ou mot de passe incorrect.".into(),
        };
        let page = LoginPage {
            layout: Layout::anonymous(),
            error: Some(message),
            email: form.email,
            proconnect: state.config.proconnect.is_some(),
        };
        return Ok((StatusCode::UNAUTHORIZED, render(&page)).into_response());
    };
    if state.store.totp_state(user.id).await?.secret.is_some() {
        return second_factor::challenge(&state, &user).await;
    }
    open_session(&state, &user, "mot de passe", None).await
}

/// Logs a person in: journal, lockout counter reset, and a fresh session id (a fixed id planted
/// before login is useless).
pub(crate) async fn open_session(
    state: &AppState,
    user: &store::User,
    how: &str,
    id_token: Option<&str>,
) -> Result<Response, PageError> {
    let login = store::AuditInput {
        at: state.now(),
        actor: store::ActorInfo {
            user_id: Some(user.id),
            name: user.display_name.clone(),
            role: user.role.clone(),
            organisation: String::new(),
        },
        action: "auth.login".into(),
        target: format!("user:{}", user.id),
        detail: how.into(),
    };
    state.store.audit(&login).await?;
    state.store.reset_login_failures(&user.email).await?;
    let session = auth::random_secret();
    state
        .store
        .create_session(
            &auth::sha256_hex(&session),
            user.id,
            &auth::random_secret(),
            Utc::now(),
        )
        .await?;
    if let Some(id_token) = id_token {
        state
            .store
            .set_session_id_token(&auth::sha256_hex(&session), id_token)
            .await?;
    }
    let cookie = auth::session_cookie_header(
        &session,
        state.config.secure_cookies,
        auth::SESSION_ABSOLUTE_HOURS * 3600,
    );
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf_token: String,
}

async fn logout(
    State(state): State<AppState>,
    user: SessionUser,
    headers: axum::http::HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf_token)?;
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == auth::SESSION_COOKIE)
        .map(|c| c.value().to_string());
    let mut next = "/connexion".to_string();
    if let Some(session) = cookie {
        let id_hash = auth::sha256_hex(&session);
        // A ProConnect session also ends at the provider.
        if let Some(id_token) = state.store.session_id_token(&id_hash).await? {
            if let Some(url) = proconnect::logout_url(&state, &id_token).await {
                next = url;
            }
        }
        state.store.delete_session(&id_hash).await?;
    }
    let expired = auth::session_cookie_header("", state.config.secure_cookies, 0);
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, expired), (header::LOCATION, next)],
    )
        .into_response())
}

pub struct VerifiedAttachment {
    pub size: i64,
    pub sha256: String,
}

pub struct VerifiedReceipt {
    pub genuine: bool,
    pub reference: String,
    pub submitted_at: String,
    pub parquet: String,
    pub attachments: Vec<VerifiedAttachment>,
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    layout: Layout,
    code: String,
    searched: bool,
    receipt: Option<VerifiedReceipt>,
}

#[derive(Deserialize)]
struct VerifyQuery {
    code: Option<String>,
}

/// Public: confirms a receipt without any personal data (no names, no filenames).
async fn verify(
    State(state): State<AppState>,
    MaybeSessionUser(user): MaybeSessionUser,
    Query(query): Query<VerifyQuery>,
) -> Result<Response, PageError> {
    let code = query.code.unwrap_or_default().trim().to_ascii_uppercase();
    let searched = !code.is_empty();
    let receipt = if searched && code.len() <= 32 {
        let public_key = state.signer.public_key();
        state
            .store
            .referral_by_verification_code(&code)
            .await?
            .as_ref()
            .and_then(|referral| {
                let genuine = crate::views::receipt_signature_valid(referral, &public_key);
                crate::views::ReceiptView::of(referral).map(|r| (r, genuine))
            })
            .map(|(r, genuine)| VerifiedReceipt {
                genuine,
                reference: r.reference,
                submitted_at: paris_datetime(r.submitted_at),
                parquet: r.parquet.name,
                attachments: r
                    .attachments
                    .into_iter()
                    .map(|a| VerifiedAttachment {
                        size: a.size,
                        sha256: a.sha256,
                    })
                    .collect(),
            })
    } else {
        None
    };
    let status = match &receipt {
        None if searched => StatusCode::NOT_FOUND,
        Some(r) if !r.genuine => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    Ok((
        status,
        render(&VerifyPage {
            layout: Layout::maybe(&user, "verify"),
            code,
            searched,
            receipt,
        }),
    )
        .into_response())
}
