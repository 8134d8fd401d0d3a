//! Impact indicators: each organisation sees its own figures, platform administrators the
//! national view, and the public national aggregates with small cells suppressed. Every chart
//! is an accessible SVG with its data table beside it; every table downloads as CSV.

use super::{render, Layout};
use crate::auth::{MaybeSessionUser, SessionUser};
use crate::error::PageError;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{Datelike, NaiveDate, Utc};
use chrono_tz::Europe::Paris;
use domain::stats::{indicators, suppress_small, Indicators, BACKLOG_LABELS};
use domain::Role;
use serde::Deserialize;
use store::StatsFilter;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/statistiques", get(page))
        .route("/statistiques.csv", get(csv))
        .route("/statistiques/publiques", get(public_page))
}

#[derive(Deserialize, Default)]
pub struct Period {
    from: Option<String>,
    to: Option<String>,
}

fn day(text: Option<&str>) -> Option<chrono::DateTime<Utc>> {
    NaiveDate::parse_from_str(text?.trim(), "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
}

/// One line of a table: label and value (already formatted).
pub struct Line {
    pub label: String,
    pub value: String,
}

pub struct Bar {
    pub label: String,
    pub count: usize,
    pub x: usize,
    pub y: usize,
    pub height: usize,
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    layout: Layout,
    heading: String,
    public: bool,
    from: String,
    to: String,
    summary: Vec<Line>,
    backlog: Vec<Line>,
    reasons: Vec<Line>,
    bars: Vec<Bar>,
    chart_height: usize,
}

fn hours(value: Option<f64>) -> String {
    match value {
        Some(h) if h < 48.0 => format!("{h:.1} h"),
        Some(h) => format!("{:.1} j", h / 24.0),
        None => "—".into(),
    }
}

fn percent(value: Option<f64>) -> String {
    value
        .map(|v| format!("{:.0} %", v * 100.0))
        .unwrap_or_else(|| "—".into())
}

fn count(value: usize, public: bool) -> String {
    if public {
        suppress_small(value)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "< 5".into())
    } else {
        value.to_string()
    }
}

fn summary_lines(i: &Indicators, public: bool) -> Vec<Line> {
    let line = |label: &str, value: String| Line {
        label: label.into(),
        value,
    };
    vec![
        line("Saisines reçues", count(i.received, public)),
        line(
            "Délai médian jusqu'à l'accusé de réception",
            hours(i.to_acknowledgement.median_hours),
        ),
        line(
            "Délai au 90e centile jusqu'à l'accusé de réception",
            hours(i.to_acknowledgement.p90_hours),
        ),
        line(
            "Délai médian jusqu'à l'enregistrement",
            hours(i.to_registration.median_hours),
        ),
        line(
            "Délai au 90e centile jusqu'à l'enregistrement",
            hours(i.to_registration.p90_hours),
        ),
        line(
            "Délai médian jusqu'à la décision",
            hours(i.to_decision.median_hours),
        ),
        line(
            "Délai au 90e centile jusqu'à la décision",
            hours(i.to_decision.p90_hours),
        ),
        line(
            "Part des saisines dont la décision (avis 40-2) est parvenue à l'expéditeur",
            percent(i.decided_share),
        ),
        line(
            "Part des saisines urgentes et immédiates prises en compte dans le délai",
            percent(i.urgent_in_time_share),
        ),
        line(
            "Taux de classement sans suite (parmi les décisions)",
            percent(i.dismissal_rate),
        ),
        line(
            "Saisines en cours proches de la prescription (moins de 6 mois)",
            count(i.nearing_limitation, public),
        ),
    ]
}

/// Received referrals per month (Paris time), oldest first.
fn monthly(facts: &[domain::stats::ReferralFacts]) -> Vec<(String, usize)> {
    let mut months: std::collections::BTreeMap<(i32, u32), usize> =
        std::collections::BTreeMap::new();
    for f in facts {
        let local = f.submitted_at.with_timezone(&Paris);
        *months.entry((local.year(), local.month())).or_default() += 1;
    }
    months
        .into_iter()
        .map(|((y, m), n)| (format!("{m:02}/{y}"), n))
        .collect()
}

const CHART_HEIGHT: usize = 160;

fn bars(months: &[(String, usize)], public: bool) -> Vec<Bar> {
    let max = months.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    months
        .iter()
        .enumerate()
        .map(|(index, (label, n))| {
            // A suppressed cell is drawn as empty.
            let shown = if public {
                suppress_small(*n).unwrap_or(0)
            } else {
                *n
            };
            let height = shown * CHART_HEIGHT / max;
            Bar {
                label: label.clone(),
                count: shown,
                x: 10 + index * 44,
                y: CHART_HEIGHT + 10 - height,
                height,
            }
        })
        .collect()
}

async fn compute(
    state: &AppState,
    filter: &StatsFilter,
) -> Result<(Indicators, Vec<(String, usize)>), PageError> {
    let facts = state.store.referral_facts(filter).await?;
    let settings = match filter.parquet_id {
        Some(parquet) => state.store.parquet_settings(parquet).await?,
        None => store::ParquetSettings::default(),
    };
    let computed = indicators(
        &facts,
        state.now(),
        settings.immediate_acknowledge_minutes,
        settings.urgent_acknowledge_hours,
    );
    Ok((computed, monthly(&facts)))
}

fn scope(user: &SessionUser, period: &Period) -> (StatsFilter, String) {
    let mut filter = StatsFilter {
        from: day(period.from.as_deref()),
        to: day(period.to.as_deref()).map(|d| d + chrono::Duration::days(1)),
        ..Default::default()
    };
    let heading = match user.current.role {
        Role::Agent | Role::Referent => {
            filter.administration_id = Some(user.current.organisation.id);
            format!("Indicateurs — {}", user.current.organisation.name)
        }
        Role::Clerk | Role::Prosecutor => {
            filter.parquet_id = Some(user.current.organisation.id);
            format!("Indicateurs — {}", user.current.organisation.name)
        }
        Role::Admin => "Indicateurs nationaux".to_string(),
    };
    (filter, heading)
}

fn build_page(
    layout: Layout,
    heading: String,
    public: bool,
    period: &Period,
    computed: &Indicators,
    months: &[(String, usize)],
) -> StatsPage {
    StatsPage {
        layout,
        heading,
        public,
        from: period.from.clone().unwrap_or_default(),
        to: period.to.clone().unwrap_or_default(),
        summary: summary_lines(computed, public),
        backlog: BACKLOG_LABELS
            .iter()
            .zip(computed.backlog_by_age)
            .map(|(label, n)| Line {
                label: (*label).into(),
                value: count(n, public),
            })
            .collect(),
        reasons: computed
            .dismissals_by_reason
            .iter()
            .map(|(code, n)| Line {
                label: format!("Motif {code}"),
                value: count(*n, public),
            })
            .collect(),
        bars: bars(months, public),
        chart_height: CHART_HEIGHT + 40,
    }
}

async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let (filter, heading) = scope(&user, &period);
    let (computed, months) = compute(&state, &filter).await?;
    Ok(render(&build_page(
        Layout::of(&user, "stats"),
        heading,
        false,
        &period,
        &computed,
        &months,
    )))
}

async fn public_page(
    State(state): State<AppState>,
    MaybeSessionUser(user): MaybeSessionUser,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let filter = StatsFilter {
        from: day(period.from.as_deref()),
        to: day(period.to.as_deref()).map(|d| d + chrono::Duration::days(1)),
        ..Default::default()
    };
    let (computed, months) = compute(&state, &filter).await?;
    let page = build_page(
        Layout::maybe(&user, "public-stats"),
        "Info Parquet en chiffres".into(),
        true,
        &period,
        &computed,
        &months,
    );
    Ok(render(&page))
}

/// The same tables as CSV (semicolon-separated, as French spreadsheets expect).
async fn csv(
    State(state): State<AppState>,
    user: SessionUser,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let (filter, _) = scope(&user, &period);
    let (computed, months) = compute(&state, &filter).await?;
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let mut out = String::from("tableau;libellé;valeur\n");
    for line in summary_lines(&computed, false) {
        out.push_str(&format!(
            "indicateurs;{};{}\n",
            quote(&line.label),
            quote(&line.value)
        ));
    }
    for (label, n) in BACKLOG_LABELS.iter().zip(computed.backlog_by_age) {
        out.push_str(&format!("stock par ancienneté;{};{n}\n", quote(label)));
    }
    for (code, n) in &computed.dismissals_by_reason {
        out.push_str(&format!("classements par motif;{};{n}\n", quote(code)));
    }
    for (month, n) in &months {
        out.push_str(&format!("saisines reçues par mois;{};{n}\n", quote(month)));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"indicateurs-info-parquet.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}
