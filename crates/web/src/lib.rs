#![recursion_limit = "256"]
//! The web application: DSFR pages for people, a JSON API for systems, both over the same
//! rules (`service`), with failures mapped to HTTP in `error`.

pub mod api;
mod assets;
pub mod auth;
pub mod error;
pub mod export;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod pages;
mod security;
pub mod service;
pub mod totp;
pub mod views;
pub mod webhooks;

use axum::Router;
use chrono::{DateTime, DurationRound, Utc};
use files::FileStore;
use std::sync::Arc;
use store::Store;

/// Settings the web layer needs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The address people use to reach the service, e.g. "https://infoparquet.justice.fr".
    pub public_url: String,
    /// Whether cookies carry the `Secure` flag (true behind HTTPS).
    pub secure_cookies: bool,
    /// Requests a single API token may make per minute (bursts of a sixth of it allowed).
    pub api_requests_per_minute: u32,
    /// Whether webhooks may target plain-HTTP URLs (tests, closed networks); HTTPS otherwise.
    pub webhooks_allow_http: bool,
    /// Login through ProConnect, when the platform is registered with it.
    pub proconnect: Option<pages::proconnect::ProConnectSettings>,
}

/// Per-token request budget of the API.
pub type ApiRateLimiter = governor::RateLimiter<
    uuid::Uuid,
    governor::state::keyed::HashMapStateStore<uuid::Uuid>,
    governor::clock::DefaultClock,
>;

fn api_rate_limiter(per_minute: u32) -> ApiRateLimiter {
    let rate = std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    let burst =
        std::num::NonZeroU32::new((per_minute / 6).max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::hashmap(governor::Quota::per_minute(rate).allow_burst(burst))
}

/// The platform's notion of "now": the system clock, or a clock that tests and the demo seeder
/// move by hand (deadlines and escalations are then reproducible).
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(Arc<std::sync::Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(std::sync::Mutex::new(start)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            // Microseconds: the precision both database backends keep.
            Clock::System => {
                let now = Utc::now();
                now.duration_trunc(chrono::Duration::microseconds(1))
                    .unwrap_or(now)
            }
            Clock::Manual(at) => at
                .lock()
                .map(|at| *at)
                .unwrap_or_else(|poisoned| *poisoned.into_inner()),
        }
    }

    /// Moves a manual clock; the system clock ignores it.
    pub fn set(&self, to: DateTime<Utc>) {
        if let Clock::Manual(at) = self {
            match at.lock() {
                Ok(mut at) => *at = to,
                Err(poisoned) => *poisoned.into_inner() = to,
            }
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub files: FileStore,
    pub config: Arc<WebConfig>,
    pub clock: Clock,
    /// Signs receipts, decision notices and journal checkpoints.
    pub signer: Arc<domain::integrity::Signer>,
    pub api_limiter: Arc<ApiRateLimiter>,
    pub proconnect: pages::proconnect::ProConnect,
    pub metrics: Arc<metrics::Metrics>,
    /// The statistics pages' merged cells, until the worker refreshes them.
    pub stats_cache: Arc<pages::stats::MergedCache>,
}

impl AppState {
    pub fn new(
        store: Store,
        files: FileStore,
        config: WebConfig,
        signer: domain::integrity::Signer,
    ) -> AppState {
        AppState {
            store,
            files,
            api_limiter: Arc::new(api_rate_limiter(config.api_requests_per_minute)),
            config: Arc::new(config),
            clock: Clock::System,
            signer: Arc::new(signer),
            proconnect: pages::proconnect::ProConnect::default(),
            metrics: Arc::new(metrics::Metrics::default()),
            stats_cache: Arc::default(),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> AppState {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(assets::routes())
        .route("/metrics", axum::routing::get(metrics::scrape))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(pages::legal::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::idempotency::idempotency,
        ))
        .layer(axum::middleware::from_fn(security::headers))
        .with_state(state)
}

/// Serves until `shutdown` resolves, finishing requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
