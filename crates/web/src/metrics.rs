//! Prometheus `/metrics` (OpenMetrics text): requests and their durations per route template
//! (never per identifier, so the series stay few and say nothing of a case), and the backlog
//! of the worker (outbox jobs, uncounted indicator changes), read when scraped.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    jobs_pending: Gauge,
    jobs_failed: Gauge,
    stats_changes_pending: Gauge,
    database_up: Gauge,
    shared_commits: Gauge,
    shared_commit_writes: Gauge,
    writer_held_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

fn duration_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("infoparquet");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let (jobs_pending, jobs_failed, stats_changes_pending, database_up) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route template",
            durations.clone(),
        );
        registry.register(
            "jobs_pending",
            "Outbox jobs (e-mails, webhooks) waiting to be done",
            jobs_pending.clone(),
        );
        registry.register(
            "jobs_failed",
            "Outbox jobs given up after their retries",
            jobs_failed.clone(),
        );
        registry.register(
            "stats_changes_pending",
            "Referral changes not yet counted in the indicators",
            stats_changes_pending.clone(),
        );
        registry.register(
            "database_up",
            "1 when the database answered the scrape, 0 otherwise",
            database_up.clone(),
        );
        let (shared_commits, shared_commit_writes) = (Gauge::default(), Gauge::default());
        registry.register(
            "writer_commits",
            "Commits of the writer connection (SQLite, PostgreSQL) since the start; writes that queued share one",
            shared_commits.clone(),
        );
        registry.register(
            "writer_committed_writes",
            "Writes those commits held since the start",
            shared_commit_writes.clone(),
        );
        let writer_held_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "writer_held_seconds",
            "Time writes held the writer connection since the start, commits included: its rate near 1 means writes queue for it",
            writer_held_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            jobs_pending,
            jobs_failed,
            stats_changes_pending,
            database_up,
            shared_commits,
            shared_commit_writes,
            writer_held_seconds,
        }
    }
}

/// Counts and times every routed request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .durations
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}

pub async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let counts = state.store.job_backlog().await;
    let pending_changes = state.store.pending_stats_changes().await;
    match (counts, pending_changes) {
        (Ok((pending, failed)), Ok(changes)) => {
            metrics.jobs_pending.set(pending);
            metrics.jobs_failed.set(failed);
            metrics.stats_changes_pending.set(changes);
            metrics.database_up.set(1);
        }
        _ => {
            metrics.database_up.set(0);
        }
    }
    if let Some(counts) = state.store.writer_counts() {
        metrics
            .shared_commits
            .set(i64::try_from(counts.commits).unwrap_or(i64::MAX));
        metrics
            .shared_commit_writes
            .set(i64::try_from(counts.writes).unwrap_or(i64::MAX));
        metrics.writer_held_seconds.set(counts.held.as_secs_f64());
    }
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        tracing::error!(%error, "metrics encoding failed");
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
