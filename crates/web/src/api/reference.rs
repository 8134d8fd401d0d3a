//! Reference data for any authenticated caller.

use crate::auth::ApiUser;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use store::{CommuneHit, DismissalReason, Offence, ParquetSummary};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reference/communes", get(communes))
        .route("/api/v1/reference/offences", get(offences))
        .route("/api/v1/reference/parquets", get(parquets))
        .route(
            "/api/v1/reference/dismissal-reasons",
            get(dismissal_reasons),
        )
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    limit: Option<i64>,
}

async fn communes(
    State(state): State<AppState>,
    _user: ApiUser,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<CommuneHit>>, ApiError> {
    Ok(Json(
        state
            .store
            .search_communes(&query.q, query.limit.unwrap_or(20).clamp(1, 100))
            .await?,
    ))
}

async fn offences(
    State(state): State<AppState>,
    _user: ApiUser,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<Offence>>, ApiError> {
    Ok(Json(
        state
            .store
            .search_offences(&query.q, query.limit.unwrap_or(50).clamp(1, 200))
            .await?,
    ))
}

async fn parquets(
    State(state): State<AppState>,
    _user: ApiUser,
) -> Result<Json<Vec<ParquetSummary>>, ApiError> {
    Ok(Json(state.store.parquets().await?))
}

async fn dismissal_reasons(
    State(state): State<AppState>,
    _user: ApiUser,
) -> Result<Json<Vec<DismissalReason>>, ApiError> {
    Ok(Json(state.store.dismissal_reasons().await?))
}
