//! Login through ProConnect, the State's identity federation for public agents (OpenID Connect
//! authorization code flow with PKCE; state and nonce of 43 random characters; ID token and
//! signed userinfo JWT verified against the provider's keys). The agent is attached to the
//! administration whose SIRET ProConnect gives, or told plainly that its service is not
//! registered yet.

use super::{open_session, render, Layout};
use crate::auth::{random_secret, sha256_hex};
use crate::error::{AppError, PageError};
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::Duration;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, AuthenticationFlow, AuthorizationCode, ClientId,
    ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const STATE_COOKIE: &str = "ip_oidc";
const LOGIN_MINUTES: i64 = 10;
pub const CALLBACK_PATH: &str = "/connexion/proconnect/retour";

/// How the platform is registered with ProConnect.
#[derive(Debug, Clone)]
pub struct ProConnectSettings {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
struct LogoutMetadata {
    end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for LogoutMetadata {}

type Metadata = ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// ProConnect's claims beyond the standard ones.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct AgentClaims {
    usual_name: Option<String>,
    uid: Option<String>,
    siret: Option<String>,
}
impl AdditionalClaims for AgentClaims {}

/// The provider's discovered metadata, fetched on first use (the provider may start after the
/// platform) and kept.
#[derive(Clone, Default)]
pub struct ProConnect {
    metadata: std::sync::Arc<tokio::sync::OnceCell<Metadata>>,
}

fn http_client() -> Result<reqwest::Client, AppError> {
    reqwest::Client::builder()
        // Following redirects would let a provider response steer the server elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| AppError::Internal(format!("HTTP client: {e}")))
}

fn unavailable(error: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("ProConnect: {error}"))
}

impl ProConnect {
    async fn metadata(&self, settings: &ProConnectSettings) -> Result<Metadata, AppError> {
        let http = http_client()?;
        let metadata = self
            .metadata
            .get_or_try_init(|| async {
                let issuer = IssuerUrl::new(settings.issuer_url.clone()).map_err(unavailable)?;
                Metadata::discover_async(issuer, &http)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        Ok(metadata.clone())
    }
}

fn settings(state: &AppState) -> Result<&ProConnectSettings, AppError> {
    state.config.proconnect.as_ref().ok_or(AppError::NotFound)
}

fn redirect_url(state: &AppState) -> Result<RedirectUrl, AppError> {
    RedirectUrl::new(format!(
        "{}{CALLBACK_PATH}",
        state.config.public_url.trim_end_matches('/')
    ))
    .map_err(unavailable)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/connexion/proconnect", get(start))
        .route(CALLBACK_PATH, get(callback))
}

async fn start(State(state): State<AppState>) -> Result<Response, PageError> {
    let settings = settings(&state)?;
    let metadata = state.proconnect.metadata(settings).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    )
    .set_redirect_uri(redirect_url(&state)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    // 256-bit random values: 43 characters, above ProConnect's minimum of 32.
    let state_value = random_secret();
    let nonce = random_secret();
    let (url, _, _) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            {
                let state_value = state_value.clone();
                move || CsrfToken::new(state_value)
            },
            {
                let nonce = nonce.clone();
                move || Nonce::new(nonce)
            },
        )
        .add_scopes(
            ["email", "given_name", "usual_name", "uid", "siret"]
                .into_iter()
                .map(|s| Scope::new(s.into())),
        )
        .set_pkce_challenge(challenge)
        .url();
    state
        .store
        .create_oidc_login(
            &sha256_hex(&state_value),
            &nonce,
            verifier.secret(),
            state.now(),
        )
        .await?;
    // The state is also bound to this browser: a callback started elsewhere is refused.
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={state_value}; Path=/connexion/proconnect; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        LOGIN_MINUTES * 60
    );
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, url.to_string()),
        ],
    )
        .into_response())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "proconnect_refused.html")]
struct RefusedPage {
    layout: Layout,
    title: &'static str,
    detail: String,
}

fn refused(status: StatusCode, title: &'static str, detail: String) -> Response {
    (
        status,
        render(&RefusedPage {
            layout: Layout::anonymous(),
            title,
            detail,
        }),
    )
        .into_response()
}

fn state_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == STATE_COOKIE)
        .map(|c| c.value().to_string())
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let settings = settings(&state)?;
    if query.error.is_some() {
        return Ok(Redirect::to("/connexion").into_response());
    }
    let (Some(code), Some(returned_state)) = (query.code, query.state) else {
        return Err(AppError::BadRequest("Réponse de ProConnect incomplète.".into()).into());
    };
    let cookie_matches = state_cookie(&headers).is_some_and(|c| {
        c.len() == returned_state.len()
            && c.bytes()
                .zip(returned_state.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    let pending = state
        .store
        .take_oidc_login(
            &sha256_hex(&returned_state),
            state.now() - Duration::minutes(LOGIN_MINUTES),
        )
        .await?;
    let Some((nonce, verifier)) = pending.filter(|_| cookie_matches) else {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "Connexion expirée",
            "Cette connexion par ProConnect a expiré ou a déjà servi. Recommencez depuis la page de connexion.".into(),
        ));
    };
    let metadata = state.proconnect.metadata(settings).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    )
    .set_redirect_uri(redirect_url(&state)?);
    let http = http_client()?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(unavailable)?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&http)
        .await
        .map_err(unavailable)?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| unavailable("no ID token"))?;
    let id_claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce))
        .map_err(unavailable)?;
    let userinfo: UserInfoClaims<AgentClaims, CoreGenderClaim> = client
        .user_info(
            tokens.access_token().clone(),
            Some(id_claims.subject().clone()),
        )
        .map_err(unavailable)?
        .require_signed_response(true)
        .request_async(&http)
        .await
        .map_err(unavailable)?;

    let extra = userinfo.additional_claims();
    let email = userinfo
        .email()
        .map(|e| e.as_str().trim().to_lowercase())
        .unwrap_or_default();
    let siret = extra.siret.clone().unwrap_or_default();
    let given_name = userinfo
        .given_name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string())
        .unwrap_or_default();
    let display_name = format!(
        "{given_name} {}",
        extra.usual_name.clone().unwrap_or_default()
    )
    .trim()
    .to_string();
    if email.is_empty() || siret.is_empty() {
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "Informations manquantes",
            "ProConnect n'a pas transmis votre adresse électronique et le SIRET de votre service ; Info Parquet ne peut pas vous rattacher.".into(),
        ));
    }
    let Some(organisation) = state
        .store
        .organisation_by_siret(&siret)
        .await?
        .filter(|o| o.kind == "administration")
    else {
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "Votre service n'est pas encore inscrit",
            format!(
                "Votre service (SIRET {siret}) n'est pas encore inscrit sur Info Parquet. Son référent, ou la plateforme, peut demander son inscription ; en attendant, les saisines se transmettent par les voies habituelles."
            ),
        ));
    };
    let user = match state.store.user_by_email(&email).await? {
        Some(user) if user.organisation_id != organisation.id => {
            return Ok(refused(
                StatusCode::FORBIDDEN,
                "Compte rattaché à un autre service",
                format!("L'adresse {email} est déjà rattachée à un autre service sur Info Parquet. Demandez au référent de votre service de corriger votre rattachement."),
            ));
        }
        Some(user) if !user.active => {
            return Ok(refused(
                StatusCode::FORBIDDEN,
                "Compte désactivé",
                "Votre compte Info Parquet est désactivé. Adressez-vous au référent de votre service.".into(),
            ));
        }
        Some(user) => user,
        None => {
            // First visit: an agent account of the service, with no local password.
            let user = store::User {
                id: Uuid::now_v7(),
                organisation_id: organisation.id,
                email: email.clone(),
                display_name: if display_name.is_empty() {
                    email.clone()
                } else {
                    display_name
                },
                role: "agent".into(),
                password_hash: None,
                active: true,
                created_at: state.now(),
            };
            state.store.create_user(&user).await?;
            state
                .store
                .audit(&store::AuditInput {
                    at: state.now(),
                    actor: store::ActorInfo {
                        user_id: Some(user.id),
                        name: user.display_name.clone(),
                        role: user.role.clone(),
                        organisation: organisation.name.clone(),
                    },
                    action: "user.created".into(),
                    target: format!("user:{}", user.id),
                    detail: format!(
                        "ProConnect, SIRET {siret}, uid {}",
                        extra.uid.clone().unwrap_or_default()
                    ),
                })
                .await?;
            user
        }
    };
    let mut response =
        open_session(&state, &user, "ProConnect", Some(&id_token.to_string())).await?;
    if let Ok(expired) = axum::http::HeaderValue::from_str(&format!(
        "{STATE_COOKIE}=; Path=/connexion/proconnect; HttpOnly; SameSite=Lax; Max-Age=0"
    )) {
        response.headers_mut().append(header::SET_COOKIE, expired);
    }
    Ok(response)
}

/// Where to send a person leaving a ProConnect session: the provider's logout, with the ID
/// token as hint, back to the login page.
pub async fn logout_url(state: &AppState, id_token: &str) -> Option<String> {
    let settings = state.config.proconnect.as_ref()?;
    let metadata = state.proconnect.metadata(settings).await.ok()?;
    let endpoint = metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()?;
    let mut url = reqwest::Url::parse(&endpoint).ok()?;
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair(
            "post_logout_redirect_uri",
            &format!(
                "{}/connexion",
                state.config.public_url.trim_end_matches('/')
            ),
        )
        .append_pair("state", &random_secret());
    Some(url.to_string())
}
