//! Who is calling: API callers by bearer token, people by session cookie. Secrets (tokens,
//! session ids) are only ever stored as SHA-256 hashes; passwords as argon2id.

use crate::error::{ApiError, AppError, PageError};
use crate::AppState;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use base64::Engine;
use chrono::{Duration, Utc};
use domain::permissions::Actor;
use domain::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::{ActorInfo, Member, Organisation, User};

pub const SESSION_COOKIE: &str = "infoparquet_session";
/// Idle and absolute session lifetimes.
pub const SESSION_IDLE_MINUTES: i64 = 30;
pub const SESSION_ABSOLUTE_HOURS: i64 = 12;

/// The authenticated user with its organisation.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub organisation: Organisation,
    pub role: Role,
}

impl CurrentUser {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user.id,
            organisation_id: self.organisation.id,
            role: self.role,
        }
    }

    /// How the user appears in the journal.
    pub fn actor_info(&self) -> ActorInfo {
        ActorInfo {
            user_id: Some(self.user.id),
            name: self.user.display_name.clone(),
            role: self.role.as_str().to_string(),
            organisation: self.organisation.name.clone(),
        }
    }

    pub async fn load(state: &AppState, user: User) -> Result<CurrentUser, AppError> {
        let organisation = state
            .store
            .organisation(user.organisation_id)
            .await?
            .ok_or_else(|| AppError::Internal("user without organisation".into()))?;
        CurrentUser::from_member(Member { user, organisation })
    }

    /// The user as authentication found it, with its organisation.
    pub fn from_member(member: Member) -> Result<CurrentUser, AppError> {
        let Member { user, organisation } = member;
        let role = Role::parse(&user.role)
            .ok_or_else(|| AppError::Internal(format!("unknown role {}", user.role)))?;
        Ok(CurrentUser {
            user,
            organisation,
            role,
        })
    }
}

pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random secret: 32 bytes, URL-safe base64.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new API token: recognisable prefix, then a random secret.
pub fn new_api_token() -> String {
    format!("ipk_{}", random_secret())
}

pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AppError::Internal(e.to_string()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// An API caller authenticated by `Authorization: Bearer <token>`.
pub struct ApiUser(pub CurrentUser);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty() && token.len() < 200)
            .ok_or(AppError::Unauthenticated)?;
        let (member, api_token) = state
            .store
            .authenticate_token(&sha256_hex(token), Utc::now())
            .await?
            .ok_or(AppError::Unauthenticated)?;
        if let Err(not_until) = state.api_limiter.check_key(&api_token.id) {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(AppError::RateLimited(wait.as_secs() + 1).into());
        }
        let writes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if writes && api_token.scope != "write" {
            return Err(AppError::Forbidden("Ce jeton est en lecture seule.".into()).into());
        }
        Ok(ApiUser(CurrentUser::from_member(member)?))
    }
}

fn session_cookie_value(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// A person logged in through the pages, with the session's CSRF token.
pub struct SessionUser {
    pub current: CurrentUser,
    pub csrf_token: String,
    /// Unread notifications, shown in the header.
    pub unread: i64,
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = session_cookie_value(parts).ok_or(AppError::Unauthenticated)?;
        let now = Utc::now();
        let (member, csrf_token) = state
            .store
            .session(
                &sha256_hex(&session),
                now - Duration::hours(SESSION_ABSOLUTE_HOURS),
                now - Duration::minutes(SESSION_IDLE_MINUTES),
                now,
            )
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let current = CurrentUser::from_member(member)?;
        let unread = state.store.unread_notifications(current.user.id).await?;
        Ok(SessionUser {
            current,
            csrf_token,
            unread,
        })
    }
}

/// The session, if any: for pages that anonymous visitors may see too.
pub struct MaybeSessionUser(pub Option<SessionUser>);

impl FromRequestParts<AppState> for MaybeSessionUser {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match SessionUser::from_request_parts(parts, state).await {
            Ok(user) => Ok(MaybeSessionUser(Some(user))),
            Err(PageError(AppError::Unauthenticated)) => Ok(MaybeSessionUser(None)),
            Err(other) => Err(other),
        }
    }
}

impl SessionUser {
    /// Every form carries the session's CSRF token; a mismatch is refused.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), AppError> {
        let expected = self.csrf_token.as_bytes();
        let submitted = submitted.as_bytes();
        let same = expected.len() == submitted.len()
            && expected
                .iter()
                .zip(submitted)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "Le formulaire a expiré ; rechargez la page et recommencez.".into(),
            ))
        }
    }
}

pub fn session_cookie_header(value: &str, secure: bool, max_age_seconds: i64) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}")
}
