//! The second factor of local accounts: the code asked after a correct password, and the
//! account page where a person enrols (QR code, then a code to confirm, then recovery codes
//! shown once) or switches it off.

use super::{open_session, render, CsrfForm, Layout};
use crate::auth::{random_secret, sha256_hex, SessionUser};
use crate::error::{AppError, PageError};
use crate::{totp, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Duration;
use serde::Deserialize;

const CHALLENGE_COOKIE: &str = "ip_2fa";
const CHALLENGE_MINUTES: i64 = 5;
const CHALLENGE_ATTEMPTS: i64 = 5;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/connexion/code", get(code_page).post(check_code))
        .route("/compte/securite", get(security_page))
        .route("/compte/securite/totp/commencer", post(start_enrolment))
        .route("/compte/securite/totp/confirmer", post(confirm_enrolment))
        .route("/compte/securite/totp/desactiver", post(disable))
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct CodePage {
    layout: Layout,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "account_security.html")]
struct SecurityPage {
    layout: Layout,
    csrf: String,
    enabled: bool,
    unused_recovery_codes: i64,
    /// During enrolment: the QR code (inline SVG) and the secret for manual entry.
    enrolment: Option<(String, String)>,
    /// Just after enrolment: the recovery codes, shown this once.
    recovery_codes: Vec<String>,
    error: Option<String>,
    confirmation: Option<&'static str>,
}

fn challenge_cookie(value: &str, secure: bool, max_age: i64) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{CHALLENGE_COOKIE}={value}; Path=/connexion; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

fn challenge_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == CHALLENGE_COOKIE)
        .map(|c| c.value().to_string())
}

/// After a correct password, for an account with a second factor: no session yet, only a
/// short-lived challenge, answered on the code page.
pub(crate) async fn challenge(state: &AppState, user: &store::User) -> Result<Response, PageError> {
    let value = random_secret();
    state
        .store
        .create_second_factor_challenge(&sha256_hex(&value), user.id, state.now())
        .await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                challenge_cookie(&value, state.config.secure_cookies, CHALLENGE_MINUTES * 60),
            ),
            (header::LOCATION, "/connexion/code".to_string()),
        ],
    )
        .into_response())
}

async fn live_challenge(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, store::User)>, AppError> {
    let Some(value) = challenge_of(headers) else {
        return Ok(None);
    };
    let hash = sha256_hex(&value);
    let Some(user_id) = state
        .store
        .second_factor_challenge(
            &hash,
            state.now() - Duration::minutes(CHALLENGE_MINUTES),
            CHALLENGE_ATTEMPTS,
        )
        .await?
    else {
        return Ok(None);
    };
    let user = state.store.user(user_id).await?.filter(|u| u.active);
    Ok(user.map(|u| (hash, u)))
}

async fn code_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if live_challenge(&state, &headers).await?.is_none() {
        return Ok(Redirect::to("/connexion").into_response());
    }
    Ok(render(&CodePage {
        layout: Layout::anonymous(),
        error: None,
    }))
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn check_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    let Some((hash, user)) = live_challenge(&state, &headers).await? else {
        return Ok(Redirect::to("/connexion").into_response());
    };
    let now = state.now();
    if let Some(factor) = second_factor_accepted(&state, user.id, &form.code).await? {
        state.store.delete_second_factor_challenge(&hash).await?;
        let how = match factor {
            Factor::App => "mot de passe + code TOTP",
            Factor::RecoveryCode => "mot de passe + code de secours",
        };
        let mut response = open_session(&state, &user, how, None).await?;
        if let Ok(expired) =
            HeaderValue::from_str(&challenge_cookie("", state.config.secure_cookies, 0))
        {
            response.headers_mut().append(header::SET_COOKIE, expired);
        }
        return Ok(response);
    }
    state.store.second_factor_failed(&hash).await?;
    state
        .store
        .audit(&store::AuditInput {
            at: now,
            actor: store::ActorInfo {
                user_id: Some(user.id),
                name: user.display_name.clone(),
                role: user.role.clone(),
                organisation: String::new(),
            },
            action: "auth.second_factor_failed".into(),
            target: format!("user:{}", user.id),
            detail: String::new(),
        })
        .await?;
    // Wrong codes count towards the account's lockout like wrong passwords.
    state.store.record_login_failure(&user.email, now).await?;
    let page = CodePage {
        layout: Layout::anonymous(),
        error: Some("Code incorrect ou déjà utilisé. Saisissez le code affiché maintenant par votre application, ou un code de secours.".into()),
    };
    Ok((StatusCode::UNAUTHORIZED, render(&page)).into_response())
}

/// Which proof of the second factor was given.
enum Factor {
    App,
    RecoveryCode,
}

/// Checks a typed code: the authenticator's code for a time step not used yet, or an unused
/// recovery code (spent by this check). `None` when neither.
async fn second_factor_accepted(
    state: &AppState,
    user_id: uuid::Uuid,
    code: &str,
) -> Result<Option<Factor>, AppError> {
    let now = state.now();
    let secret = state.store.totp_state(user_id).await?.secret;
    if let Some(step) = secret
        .as_deref()
        .and_then(|s| totp::matching_step(s, code, now.timestamp()))
    {
        if state.store.accept_totp_step(user_id, step).await? {
            return Ok(Some(Factor::App));
        }
    }
    if state
        .store
        .use_recovery_code(user_id, &totp::recovery_hash(code), now)
        .await?
    {
        return Ok(Some(Factor::RecoveryCode));
    }
    Ok(None)
}

async fn security(
    state: &AppState,
    user: &SessionUser,
    enrolment: Option<(String, String)>,
    recovery_codes: Vec<String>,
    error: Option<String>,
    confirmation: Option<&'static str>,
) -> Result<Response, PageError> {
    let id = user.current.user.id;
    let enabled = state.store.totp_state(id).await?.secret.is_some();
    let page = SecurityPage {
        layout: Layout::of(user, "security"),
        csrf: user.csrf_token.clone(),
        enabled,
        unused_recovery_codes: state.store.unused_recovery_codes(id).await?,
        enrolment,
        recovery_codes,
        error: error.clone(),
        confirmation,
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut response = (status, render(&page)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn security_page(
    State(state): State<AppState>,
    user: SessionUser,
) -> Result<Response, PageError> {
    security(&state, &user, None, Vec::new(), None, None).await
}

fn enrolment_material(secret: &str, user: &SessionUser) -> Result<(String, String), AppError> {
    let url = totp::provisioning_url(secret, &user.current.user.email)
        .ok_or_else(|| AppError::Internal("TOTP secret unusable".into()))?;
    let svg =
        totp::qr_svg(&url).ok_or_else(|| AppError::Internal("QR code not drawable".into()))?;
    Ok((svg, secret.to_string()))
}

async fn start_enrolment(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf_token)?;
    let secret = totp::new_secret();
    state
        .store
        .set_totp_pending(user.current.user.id, &secret)
        .await?;
    let material = enrolment_material(&secret, &user)?;
    security(&state, &user, Some(material), Vec::new(), None, None).await
}

#[derive(Deserialize)]
struct CodeWithCsrf {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

async fn confirm_enrolment(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<CodeWithCsrf>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf_token)?;
    let id = user.current.user.id;
    let Some(pending) = state.store.totp_state(id).await?.pending_secret else {
        return Ok(Redirect::to("/compte/securite").into_response());
    };
    let Some(step) = totp::matching_step(&pending, &form.code, state.now().timestamp()) else {
        let material = enrolment_material(&pending, &user)?;
        return security(
            &state,
            &user,
            Some(material),
            Vec::new(),
            Some("Ce code ne correspond pas. Vérifiez l'heure de votre téléphone et saisissez le code affiché maintenant.".into()),
            None,
        )
        .await;
    };
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_hash(c)).collect();
    if !state.store.enable_totp(id, &pending, step, &hashes).await? {
        return Ok(Redirect::to("/compte/securite").into_response());
    }
    journal(&state, &user, "auth.second_factor_enabled").await?;
    security(
        &state,
        &user,
        None,
        codes,
        None,
        Some("La double authentification est activée."),
    )
    .await
}

async fn disable(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<CodeWithCsrf>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf_token)?;
    let id = user.current.user.id;
    if state.store.totp_state(id).await?.secret.is_none() {
        return Ok(Redirect::to("/compte/securite").into_response());
    }
    // Switching it off takes the second factor itself, not just an open session.
    if second_factor_accepted(&state, id, &form.code)
        .await?
        .is_none()
    {
        return security(
            &state,
            &user,
            None,
            Vec::new(),
            Some("Code incorrect : la double authentification reste activée.".into()),
            None,
        )
        .await;
    }
    state.store.disable_totp(id).await?;
    journal(&state, &user, "auth.second_factor_disabled").await?;
    security(
        &state,
        &user,
        None,
        Vec::new(),
        None,
        Some("La double authentification est désactivée."),
    )
    .await
}

async fn journal(state: &AppState, user: &SessionUser, action: &str) -> Result<(), AppError> {
    state
        .store
        .audit(&store::AuditInput {
            at: state.now(),
            actor: user.current.actor_info(),
            action: action.into(),
            target: format!("user:{}", user.current.user.id),
            detail: String::new(),
        })
        .await?;
    Ok(())
}
