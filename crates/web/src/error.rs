//! The one place where failures become HTTP responses: problem+json (RFC 9457) for the API,
//! a French DSFR page for people.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::referral::TransitionError;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("Authentification requise ou jeton invalide.")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    /// Unknown, or not visible to the caller: the two are never told apart.
    #[error("Ressource introuvable.")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("Certains champs sont invalides.")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("Le fichier dépasse la taille maximale autorisée ({0} octets).")]
    TooLarge(u64),
    #[error("Type de contenu non accepté : {0}")]
    UnsupportedMediaType(String),
    #[error("Trop de requêtes ; réessayez dans {0} secondes.")]
    RateLimited(u64),
    /// The disk holding the documents is full: nothing of this upload was kept, nothing
    /// already stored is touched.
    #[error("L'espace de stockage des documents est plein : ce document n'a pas été enregistré et rien de ce qui l'était déjà n'est perdu. Réessayez plus tard ; l'incident a été signalé.")]
    StorageFull(String),
    /// The database cannot be reached for now (restarting, failing over): retry shortly.
    #[error("Le service est momentanément indisponible ; réessayez dans quelques instants (avec la même clé Idempotency-Key, une demande déjà prise en compte ne l'est pas deux fois).")]
    Unavailable(String),
    #[error("Erreur interne ; l'incident a été journalisé.")]
    Internal(String),
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid(vec![FieldError::new(field, message)])
    }

    /// What a page shows of a refused change: the fields' own messages when there are some.
    pub fn message_fr(&self) -> String {
        match self {
            AppError::Invalid(errors) => errors
                .iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound => "not-found",
            AppError::Conflict(_) => "conflict",
            AppError::Invalid(_) => "invalid-fields",
            AppError::BadRequest(_) => "bad-request",
            AppError::TooLarge(_) => "too-large",
            AppError::UnsupportedMediaType(_) => "unsupported-media-type",
            AppError::RateLimited(_) => "rate-limited",
            AppError::StorageFull(_) => "storage-full",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// The short French title of the problem.
    pub fn title(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "Authentification requise",
            AppError::Forbidden(_) => "Action non autorisée",
            AppError::NotFound => "Introuvable",
            AppError::Conflict(_) => "Action impossible dans l'état actuel",
            AppError::Invalid(_) => "Données invalides",
            AppError::BadRequest(_) => "Requête mal formée",
            AppError::TooLarge(_) => "Contenu trop volumineux",
            AppError::UnsupportedMediaType(_) => "Type de contenu non accepté",
            AppError::RateLimited(_) => "Trop de requêtes",
            AppError::StorageFull(_) => "Espace de stockage plein",
            AppError::Unavailable(_) => "Service momentanément indisponible",
            AppError::Internal(_) => "Erreur interne",
        }
    }

    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            AppError::Invalid(errors) => errors,
            _ => &[],
        }
    }

    fn log(&self) {
        match self {
            AppError::Internal(detail) => tracing::error!(%detail, "internal error"),
            AppError::StorageFull(detail) => tracing::error!(%detail, "document storage full"),
            AppError::Unavailable(detail) => tracing::warn!(%detail, "database unavailable"),
            _ => {}
        }
    }
}

impl From<store::StoreError> for AppError {
    fn from(error: store::StoreError) -> AppError {
        match error {
            store::StoreError::Conflict(what) => AppError::Conflict(format!("{what} existe déjà.")),
            unavailable if unavailable.is_unavailable() => {
                AppError::Unavailable(unavailable.to_string())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<TransitionError> for AppError {
    fn from(error: TransitionError) -> AppError {
        match error {
            TransitionError::RoleNotAllowed(_) => {
                AppError::Forbidden(capitalise(&error.to_string()))
            }
            TransitionError::NotAllowedInStatus { .. } => {
                AppError::Conflict(capitalise(&error.to_string()))
            }
        }
    }
}

impl From<files::FileError> for AppError {
    fn from(error: files::FileError) -> AppError {
        match error {
            files::FileError::TooLarge { limit } => AppError::TooLarge(limit),
            files::FileError::Empty => AppError::invalid("file", "Le fichier est vide."),
            files::FileError::Body(detail) => {
                AppError::BadRequest(format!("Envoi du fichier interrompu : {detail}"))
            }
            files::FileError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                AppError::StorageFull(io.to_string())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

/// An error answered as `application/problem+json`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(error: E) -> ApiError {
        ApiError(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        error.log();
        let status = error.status();
        let problem = Problem {
            type_uri: format!("/api/problems/{}", error.slug()),
            title: error.title(),
            status: status.as_u16(),
            detail: error.to_string(),
            errors: error.field_errors(),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let AppError::Unauthenticated = error {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let AppError::RateLimited(seconds) = error {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// An error answered as a French page; an anonymous visitor is sent to the login page.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(error: E) -> PageError {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let error = self.0;
        error.log();
        if let AppError::Unauthenticated = error {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, "/connexion")]).into_response();
        }
        let status = error.status();
        let page = crate::pages::ErrorPage {
            layout: crate::pages::Layout::anonymous(),
            title: error.title(),
            detail: error.to_string(),
            status: status.as_u16(),
        };
        (status, crate::pages::render(&page)).into_response()
    }
}
