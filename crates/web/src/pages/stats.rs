//! Impact indicators: each organisation sees its own figures, platform administrators the
//! national view, and the public national aggregates with small cells suppressed. Every chart
//! is an accessible SVG with its data table beside it; every table downloads as CSV and XLSX.

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
use domain::stats::{breakdown, indicators, suppress_small, Dimension, Indicators, BACKLOG_LABELS};
use domain::Role;
use serde::Deserialize;
use store::StatsFilter;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/statistiques", get(page))
        .route("/statistiques.csv", get(csv))
        .route("/statistiques.xlsx", get(xlsx))
        .route("/statistiques/publiques", get(public_page))
        .route("/statistiques/publiques.csv", get(public_csv))
        .route("/statistiques/publiques.xlsx", get(public_xlsx))
}

/// A table as shown and as downloaded.
pub struct Table {
    pub title: String,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
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
    breakdowns: Vec<Table>,
    /// Where the downloads are ("/statistiques" or "/statistiques/publiques").
    base: &'static str,
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

/// Everything the page and its downloads show.
struct Computed {
    indicators: Indicators,
    months: Vec<(String, usize)>,
    breakdowns: Vec<(Dimension, Vec<(String, Indicators)>)>,
}

/// The breakdowns that make sense for a scope: an administration compares its parquets, a
/// parquet its administrations; everyone sees kinds and offence natures.
fn dimensions(filter: &StatsFilter, public: bool) -> Vec<Dimension> {
    let mut dimensions = vec![Dimension::Kind, Dimension::OffenceNature];
    if !public && filter.parquet_id.is_none() {
        dimensions.push(Dimension::Parquet);
    }
    if !public && filter.administration_id.is_none() {
        dimensions.push(Dimension::Administration);
    }
    dimensions
}

async fn compute(
    state: &AppState,
    filter: &StatsFilter,
    public: bool,
) -> Result<Computed, PageError> {
    let facts = state.store.referral_facts(filter).await?;
    let settings = match filter.parquet_id {
        Some(parquet) => state.store.parquet_settings(parquet).await?,
        None => store::ParquetSettings::default(),
    };
    let now = state.now();
    let (minutes, hours) = (
        settings.immediate_acknowledge_minutes,
        settings.urgent_acknowledge_hours,
    );
    Ok(Computed {
        indicators: indicators(&facts, now, minutes, hours),
        months: monthly(&facts),
        breakdowns: dimensions(filter, public)
            .into_iter()
            .map(|d| (d, breakdown(&facts, d, now, minutes, hours)))
            .collect(),
    })
}

fn breakdown_table(dimension: Dimension, groups: &[(String, Indicators)], public: bool) -> Table {
    Table {
        title: format!("Par {}", dimension.label_fr().to_lowercase()),
        headers: vec![
            dimension.label_fr(),
            "Saisines reçues",
            "Délai médian jusqu'à l'enregistrement",
            "Délai médian jusqu'à la décision",
            "Décision parvenue à l'expéditeur",
            "Urgentes prises en compte dans le délai",
        ],
        rows: groups
            .iter()
            .map(|(group, i)| {
                // A small group's delays and shares could point at one case: hidden with it.
                let hidden = public && suppress_small(i.received).is_none();
                let or_hidden = |text: String| if hidden { "—".to_string() } else { text };
                vec![
                    group.clone(),
                    count(i.received, public),
                    or_hidden(hours(i.to_registration.median_hours)),
                    or_hidden(hours(i.to_decision.median_hours)),
                    or_hidden(percent(i.decided_share)),
                    or_hidden(percent(i.urgent_in_time_share)),
                ]
            })
            .collect(),
    }
}

/// Every table of the page, as downloaded.
fn tables(computed: &Computed, public: bool) -> Vec<Table> {
    let two =
        |title: &str, first: &'static str, second: &'static str, rows: Vec<Vec<String>>| Table {
            title: title.into(),
            headers: vec![first, second],
            rows,
        };
    let mut all = vec![
        two(
            "Indicateurs",
            "Indicateur",
            "Valeur",
            summary_lines(&computed.indicators, public)
                .into_iter()
                .map(|l| vec![l.label, l.value])
                .collect(),
        ),
        two(
            "Saisines reçues par mois",
            "Mois",
            "Saisines",
            computed
                .months
                .iter()
                .map(|(m, n)| vec![m.clone(), count(*n, public)])
                .collect(),
        ),
        two(
            "Stock par ancienneté",
            "Ancienneté",
            "Saisines",
            BACKLOG_LABELS
                .iter()
                .zip(computed.indicators.backlog_by_age)
                .map(|(label, n)| vec![(*label).to_string(), count(n, public)])
                .collect(),
        ),
        two(
            "Classements par motif",
            "Motif",
            "Classements",
            computed
                .indicators
                .dismissals_by_reason
                .iter()
                .map(|(code, n)| vec![code.clone(), count(*n, public)])
                .collect(),
        ),
    ];
    all.extend(
        computed
            .breakdowns
            .iter()
            .map(|(d, groups)| breakdown_table(*d, groups, public)),
    );
    all
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
    everything: &Computed,
) -> StatsPage {
    let computed = &everything.indicators;
    let months = &everything.months;
    StatsPage {
        breakdowns: everything
            .breakdowns
            .iter()
            .map(|(d, groups)| breakdown_table(*d, groups, public))
            .collect(),
        base: if public {
            "/statistiques/publiques"
        } else {
            "/statistiques"
        },
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
    let computed = compute(&state, &filter, false).await?;
    Ok(render(&build_page(
        Layout::of(&user, "stats"),
        heading,
        false,
        &period,
        &computed,
    )))
}

async fn public_page(
    State(state): State<AppState>,
    MaybeSessionUser(user): MaybeSessionUser,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let computed = compute(&state, &public_filter(&period), true).await?;
    let page = build_page(
        Layout::maybe(&user, "public-stats"),
        "Info Parquet en chiffres".into(),
        true,
        &period,
        &computed,
    );
    Ok(render(&page))
}

fn public_filter(period: &Period) -> StatsFilter {
    StatsFilter {
        from: day(period.from.as_deref()),
        to: day(period.to.as_deref()).map(|d| d + chrono::Duration::days(1)),
        ..Default::default()
    }
}

/// The tables as CSV (semicolon-separated, as French spreadsheets expect): one line per cell
/// row, the table's title first.
fn csv_of(tables: &[Table]) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let mut out = String::from("tableau;libellé;valeur;colonnes suivantes\n");
    for table in tables {
        for row in &table.rows {
            let cells: Vec<String> = row.iter().map(|c| quote(c)).collect();
            out.push_str(&format!(
                "{};{}\n",
                table.title.to_lowercase(),
                cells.join(";")
            ));
        }
    }
    out
}

fn csv_response(tables: &[Table], name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        csv_of(tables),
    )
        .into_response()
}

/// The tables as an XLSX workbook, one worksheet per table, numbers as numbers.
fn xlsx_response(tables: &[Table], name: &str) -> Result<Response, PageError> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let failed = |e: rust_xlsxwriter::XlsxError| crate::error::AppError::Internal(e.to_string());
    for table in tables {
        let sheet = workbook.add_worksheet();
        // Sheet names: at most 31 characters, none of []:*?/\
        let name: String = table
            .title
            .chars()
            .filter(|c| !"[]:*?/\\".contains(*c))
            .take(31)
            .collect();
        sheet.set_name(name).map_err(failed)?;
        for (column, title) in table.headers.iter().enumerate() {
            let column = u16::try_from(column).unwrap_or(u16::MAX);
            sheet
                .write_string_with_format(0, column, *title, &bold)
                .map_err(failed)?;
            sheet
                .set_column_width(column, if column == 0 { 48 } else { 22 })
                .map_err(failed)?;
        }
        for (index, row) in table.rows.iter().enumerate() {
            let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
            for (column, cell) in row.iter().enumerate() {
                let column = u16::try_from(column).unwrap_or(u16::MAX);
                match cell.parse::<f64>() {
                    Ok(number) => sheet.write_number(line, column, number),
                    Err(_) => sheet.write_string(line, column, cell),
                }
                .map_err(failed)?;
            }
        }
    }
    let bytes = workbook.save_to_buffer().map_err(failed)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.xlsx\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn csv(
    State(state): State<AppState>,
    user: SessionUser,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let (filter, _) = scope(&user, &period);
    let computed = compute(&state, &filter, false).await?;
    Ok(csv_response(
        &tables(&computed, false),
        "indicateurs-info-parquet",
    ))
}

async fn xlsx(
    State(state): State<AppState>,
    user: SessionUser,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let (filter, _) = scope(&user, &period);
    let computed = compute(&state, &filter, false).await?;
    xlsx_response(&tables(&computed, false), "indicateurs-info-parquet")
}

async fn public_csv(
    State(state): State<AppState>,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let computed = compute(&state, &public_filter(&period), true).await?;
    Ok(csv_response(
        &tables(&computed, true),
        "info-parquet-en-chiffres",
    ))
}

async fn public_xlsx(
    State(state): State<AppState>,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let computed = compute(&state, &public_filter(&period), true).await?;
    xlsx_response(&tables(&computed, true), "info-parquet-en-chiffres")
}
