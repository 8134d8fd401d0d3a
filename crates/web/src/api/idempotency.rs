//! `Idempotency-Key` on creating POSTs: a retry with the same key and the same request returns
//! the first response and creates nothing new; the same key with another request is refused.
//!
//! Uploads are streamed to storage and never held in memory, so for them "the same request" is
//! the same path, query, media type and length; the first response carries the SHA-256 of what
//! was stored, which the client compares with its own.

use crate::auth::sha256_hex;
use crate::error::{ApiError, AppError};
use crate::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// JSON bodies of creating requests are small; documents go through the upload route.
const MAX_BODY: usize = 4 << 20;

pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .map(str::to_string);
    let applies = request.method() == Method::POST && request.uri().path().starts_with("/api/v1/");
    let streamed = request.uri().path().ends_with("/attachments");
    let Some(key) = key.filter(|_| applies) else {
        return next.run(request).await;
    };
    if key.is_empty() || key.len() > 200 {
        return ApiError(AppError::invalid(
            "Idempotency-Key",
            "La clé d'idempotence doit comporter de 1 à 200 caractères.",
        ))
        .into_response();
    }
    // The caller: without a valid token the handler answers 401 itself.
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_string);
    let user = match token {
        Some(token) => match state
            .store
            .authenticate_token(&sha256_hex(&token), state.now())
            .await
        {
            Ok(found) => found.map(|(member, _)| member.user),
            Err(error) => return ApiError(error.into()).into_response(),
        },
        None => None,
    };
    let Some(user) = user else {
        return next.run(request).await;
    };

    let (parts, body) = request.into_parts();
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(parts.uri.path().as_bytes());
    let body = if streamed {
        hasher.update(parts.uri.query().unwrap_or_default().as_bytes());
        for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
            hasher.update(b"\n");
            hasher.update(
                parts
                    .headers
                    .get(&name)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default(),
            );
        }
        body
    } else {
        let bytes = match to_bytes(body, MAX_BODY).await {
            Ok(bytes) => bytes,
            Err(_) => return ApiError(AppError::TooLarge(MAX_BODY as u64)).into_response(),
        };
        hasher.update(&bytes);
        Body::from(bytes)
    };
    let request_hash = hex::encode(hasher.finalize());

    match state.store.idempotent_response(user.id, &key).await {
        Ok(Some(previous)) if previous.request_hash == request_hash => {
            return replay(previous.status, previous.response)
        }
        Ok(Some(_)) => {
            return ApiError(AppError::Conflict(
                "Cette clé d'idempotence a déjà servi pour une autre requête.".into(),
            ))
            .into_response();
        }
        Ok(None) => {}
        Err(error) => return ApiError(error.into()).into_response(),
    }
    let response = next.run(Request::from_parts(parts, body)).await;
    let (response_parts, response_body) = response.into_parts();
    let Ok(response_bytes) = to_bytes(response_body, MAX_BODY).await else {
        return ApiError(AppError::Internal("response too large to remember".into()))
            .into_response();
    };
    // Server errors are not remembered: the retry deserves another chance.
    if !response_parts.status.is_server_error() {
        let text = String::from_utf8_lossy(&response_bytes).to_string();
        if let Err(error) = state
            .store
            .remember_response(
                user.id,
                &key,
                &request_hash,
                i64::from(response_parts.status.as_u16()),
                &text,
                state.now(),
            )
            .await
        {
            tracing::warn!(%error, "could not remember an idempotent response");
        }
    }
    Response::from_parts(response_parts, Body::from(response_bytes))
}

fn replay(status: i64, body: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
