//! Impact indicators: each organisation sees its own figures, platform administrators the
//! national view, and the public national aggregates with small cells suppressed. Every chart
//! is an accessible SVG with its data table beside it; every table downloads as CSV and XLSX.
//! Figures are merged from monthly cells (`domain::stats`), so a page reads a few thousand
//! small rows whatever the number of referrals; the period is chosen by month.

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
use chrono::NaiveDate;
use domain::stats::{
    breakdown, by_month, indicators, kind_label, month_label, month_of, offence_nature_label,
    suppress_small, Dimension, Indicators, OpenReferrals, Scope, BACKLOG_LABELS,
};
use domain::Role;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
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

/// The period asked for, as months ("2026-03"; a full date is taken for its month). Absent,
/// the last twelve months; left empty, no bound.
#[derive(Deserialize, Default)]
pub struct Period {
    from: Option<String>,
    to: Option<String>,
}

/// A month typed by the user: `Ok(None)` when empty, `Err` when it is not a month.
fn month_field(text: Option<&str>) -> Result<Option<i32>, ()> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let day = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d"))
        .map_err(|_| ())?;
    Ok(Some(month_of(
        day.and_hms_opt(12, 0, 0).ok_or(())?.and_utc(),
    )))
}

/// The months a period covers, what the form shows back, and a French error for a field that
/// is not a month (then that bound is left open).
struct Months {
    from: Option<i32>,
    to: Option<i32>,
    error: Option<String>,
}

impl Period {
    fn months(&self, now: chrono::DateTime<chrono::Utc>) -> Months {
        let mut error = None;
        let mut read = |text: Option<&str>, what: &str| {
            month_field(text).unwrap_or_else(|()| {
                error = Some(format!(
                    "Le mois « {what} » n'est pas un mois valide : indiquez-le sous la forme AAAA-MM (par exemple 2026-03)."
                ));
                None
            })
        };
        let from = match &self.from {
            // By default, the last twelve months.
            None if self.to.is_none() => {
                let current = month_of(now);
                Some(if current % 100 == 12 {
                    current - 11
                } else {
                    current - 100 + 1
                })
            }
            other => read(other.as_deref(), "depuis"),
        };
        let to = read(self.to.as_deref(), "jusqu'à");
        Months { from, to, error }
    }
}

fn month_input(month: Option<i32>) -> String {
    month
        .map(|m| format!("{}-{:02}", m / 100, m % 100))
        .unwrap_or_default()
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
    period_error: Option<String>,
    /// Changes not yet counted (the worker counts them within seconds).
    pending: bool,
    summary: Vec<Line>,
    backlog: Vec<Line>,
    reasons: Vec<Line>,
    bars: Vec<Bar>,
    chart_width: usize,
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

const CHART_HEIGHT: usize = 160;
const BAR_STEP: usize = 44;

fn bars(months: &[(String, Indicators)], public: bool) -> Vec<Bar> {
    let max = months
        .iter()
        .map(|(_, i)| i.received)
        .max()
        .unwrap_or(1)
        .max(1);
    months
        .iter()
        .enumerate()
        .map(|(index, (label, i))| {
            // A suppressed cell is drawn as empty.
            let shown = if public {
                suppress_small(i.received).unwrap_or(0)
            } else {
                i.received
            };
            let height = shown * CHART_HEIGHT / max;
            Bar {
                label: label.clone(),
                count: shown,
                x: 10 + index * BAR_STEP,
                y: CHART_HEIGHT + 10 - height,
                height,
            }
        })
        .collect()
}

/// Everything the page and its downloads show.
struct Computed {
    indicators: Indicators,
    /// By month ("03/2026"), oldest first.
    months: Vec<(String, Indicators)>,
    /// Each breakdown's groups, labelled.
    breakdowns: Vec<(Dimension, Vec<(String, Indicators)>)>,
}

/// The breakdowns that make sense for a scope: an administration compares its parquets, a
/// parquet its administrations; everyone sees kinds and offence natures.
fn dimensions(scope: Scope, public: bool) -> Vec<Dimension> {
    let mut dimensions = vec![Dimension::Kind, Dimension::OffenceNature];
    if !public && !matches!(scope, Scope::Parquet(_)) {
        dimensions.push(Dimension::Parquet);
    }
    if !public && !matches!(scope, Scope::Administration(_)) {
        dimensions.push(Dimension::Administration);
    }
    dimensions
}

/// What a page merges from the cells: everything but the open referrals (counted live) and the
/// organisations' names (looked up live). Breakdowns by organisation hold ids.
struct Merged {
    indicators: Indicators,
    months: Vec<(String, Indicators)>,
    breakdowns: Vec<(Dimension, Vec<(String, Indicators)>)>,
}

fn merge(cells: &[domain::stats::Cell], scope: Scope, public: bool) -> Merged {
    let breakdowns = dimensions(scope, public)
        .into_iter()
        .map(|dimension| {
            let groups = breakdown(cells, dimension);
            let labelled = match dimension {
                Dimension::Kind => groups
                    .into_iter()
                    .map(|(code, i)| (kind_label(&code), i))
                    .collect(),
                Dimension::OffenceNature => groups
                    .into_iter()
                    .map(|(code, i)| (offence_nature_label(&code).to_string(), i))
                    .collect(),
                Dimension::Parquet | Dimension::Administration => groups,
            };
            (dimension, labelled)
        })
        .collect();
    Merged {
        indicators: indicators(cells, OpenReferrals::default()),
        months: by_month(cells)
            .into_iter()
            .map(|(month, i)| (month_label(month), i))
            .collect(),
        breakdowns,
    }
}

/// Scopes and periods kept at most. Each organisation has its own scope and anyone may ask for
/// any period, so the least recently used is forgotten rather than letting requests grow the
/// cache.
const MERGED_KEPT: usize = 64;

/// Rows of indicators (groups of a breakdown, months) kept at most, ~200 bytes each: a national
/// breakdown by administration may have tens of thousands of them.
const MERGED_ROWS_KEPT: usize = 100_000;

impl Merged {
    fn rows(&self) -> usize {
        self.months.len()
            + self
                .breakdowns
                .iter()
                .map(|(_, groups)| groups.len())
                .sum::<usize>()
    }
}

/// The merged cells of recent requests, until the cells change. Merging every month's cells,
/// with those per organisation, is most of the national page's time over all time (~90 of
/// 145 ms at 1.2 million referrals); the cells change only when the worker refreshes them.
#[derive(Default)]
pub struct MergedCache {
    entries: std::sync::Mutex<MergedEntries>,
}

#[derive(Default)]
struct MergedEntries {
    uses: u64,
    by_key: HashMap<(StatsFilter, bool), MergedEntry>,
}

impl MergedEntries {
    fn rows(&self) -> usize {
        self.by_key.values().map(|entry| entry.merged.rows()).sum()
    }
}

struct MergedEntry {
    generation: i64,
    last_use: u64,
    merged: Arc<Merged>,
}

impl MergedCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, MergedEntries> {
        // A panic while holding the lock leaves at worst an entry to recompute.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: (StatsFilter, bool), generation: i64) -> Option<Arc<Merged>> {
        let mut entries = self.entries();
        entries.uses += 1;
        let now = entries.uses;
        let entry = entries.by_key.get_mut(&key)?;
        if entry.generation != generation {
            return None;
        }
        entry.last_use = now;
        Some(entry.merged.clone())
    }

    fn put(&self, key: (StatsFilter, bool), generation: i64, merged: Arc<Merged>) {
        let rows = merged.rows();
        if rows > MERGED_ROWS_KEPT {
            return;
        }
        let mut entries = self.entries();
        entries.by_key.remove(&key);
        while entries.by_key.len() >= MERGED_KEPT || entries.rows() + rows > MERGED_ROWS_KEPT {
            let Some(oldest) = entries
                .by_key
                .iter()
                .min_by_key(|(_, entry)| entry.last_use)
                .map(|(key, _)| *key)
            else {
                break;
            };
            entries.by_key.remove(&oldest);
        }
        entries.uses += 1;
        let last_use = entries.uses;
        entries.by_key.insert(
            key,
            MergedEntry {
                generation,
                last_use,
                merged,
            },
        );
    }
}

async fn merged(
    state: &AppState,
    filter: &StatsFilter,
    public: bool,
) -> Result<Arc<Merged>, PageError> {
    // Read before the cells: a refresh in between is then seen by the next request, whereas
    // the other order could keep cells older than the generation they are filed under.
    let generation = state.store.stats_generation().await?;
    let key = (*filter, public);
    if let Some(merged) = state.stats_cache.get(key, generation) {
        return Ok(merged);
    }
    let cells = state.store.stats_cells(filter, !public).await?;
    let merged = Arc::new(merge(&cells, filter.scope, public));
    state.stats_cache.put(key, generation, merged.clone());
    Ok(merged)
}

async fn compute(
    state: &AppState,
    filter: &StatsFilter,
    public: bool,
) -> Result<Computed, PageError> {
    let merged = merged(state, filter, public).await?;
    let open = state.store.open_referrals(filter, state.now()).await?;
    let mut breakdowns = Vec::new();
    for (dimension, groups) in &merged.breakdowns {
        let labelled = match dimension {
            Dimension::Parquet | Dimension::Administration => {
                let ids: Vec<uuid::Uuid> = groups
                    .iter()
                    .filter_map(|(id, _)| id.parse().ok())
                    .collect();
                let names = state.store.organisation_names(&ids).await?;
                groups
                    .iter()
                    .map(|(id, i)| {
                        let name = id
                            .parse()
                            .ok()
                            .and_then(|id| names.get(&id).cloned())
                            .unwrap_or_else(|| "Organisation inconnue".into());
                        (name, i.clone())
                    })
                    .collect()
            }
            Dimension::Kind | Dimension::OffenceNature => groups.clone(),
        };
        breakdowns.push((*dimension, labelled));
    }
    Ok(Computed {
        indicators: merged.indicators.clone().with_open(open),
        months: merged.months.clone(),
        breakdowns,
    })
}

fn indicators_table(
    title: String,
    first: &'static str,
    groups: &[(String, Indicators)],
    public: bool,
) -> Table {
    Table {
        title,
        headers: vec![
            first,
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

/// The tables shown under the chart: by month, then each breakdown.
fn breakdown_tables(computed: &Computed, public: bool) -> Vec<Table> {
    let mut tables = vec![indicators_table(
        "Par mois".into(),
        "Mois d'envoi",
        &computed.months,
        public,
    )];
    tables.extend(computed.breakdowns.iter().map(|(d, groups)| {
        indicators_table(
            format!("Par {}", d.label_fr().to_lowercase()),
            d.label_fr(),
            groups,
            public,
        )
    }));
    tables
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
    all.extend(breakdown_tables(computed, public));
    all
}

/// Whose figures a signed-in user sees, and the page's heading.
fn scope_of(user: &SessionUser) -> (Scope, String) {
    let own = format!("Indicateurs — {}", user.current.organisation.name);
    match user.current.role {
        Role::Agent | Role::Referent => (Scope::Administration(user.current.organisation.id), own),
        Role::Clerk | Role::Prosecutor => (Scope::Parquet(user.current.organisation.id), own),
        Role::Admin => (Scope::National, "Indicateurs nationaux".to_string()),
    }
}

fn filter_of(scope: Scope, months: &Months) -> StatsFilter {
    StatsFilter {
        scope,
        from_month: months.from,
        to_month: months.to,
    }
}

struct Shown {
    layout: Layout,
    heading: String,
    public: bool,
    months: Months,
    pending: bool,
}

fn build_page(shown: Shown, everything: &Computed) -> StatsPage {
    let computed = &everything.indicators;
    let public = shown.public;
    let bars = bars(&everything.months, public);
    StatsPage {
        breakdowns: breakdown_tables(everything, public),
        base: if public {
            "/statistiques/publiques"
        } else {
            "/statistiques"
        },
        layout: shown.layout,
        heading: shown.heading,
        public,
        from: month_input(shown.months.from),
        to: month_input(shown.months.to),
        period_error: shown.months.error,
        pending: shown.pending,
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
        chart_width: bars.len() * BAR_STEP + 20,
        bars,
        chart_height: CHART_HEIGHT + 40,
    }
}

async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let (scope, heading) = scope_of(&user);
    let months = period.months(state.now());
    let computed = compute(&state, &filter_of(scope, &months), false).await?;
    let pending = state.store.pending_stats_changes().await? > 0;
    let shown = Shown {
        layout: Layout::of(&user, "stats"),
        heading,
        public: false,
        months,
        pending,
    };
    Ok(render(&build_page(shown, &computed)))
}

async fn public_page(
    State(state): State<AppState>,
    MaybeSessionUser(user): MaybeSessionUser,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let months = period.months(state.now());
    let computed = compute(&state, &filter_of(Scope::National, &months), true).await?;
    let pending = state.store.pending_stats_changes().await? > 0;
    let shown = Shown {
        layout: Layout::maybe(&user, "public-stats"),
        heading: "Info Parquet en chiffres".into(),
        public: true,
        months,
        pending,
    };
    Ok(render(&build_page(shown, &computed)))
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
    let filter = filter_of(scope_of(&user).0, &period.months(state.now()));
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
    let filter = filter_of(scope_of(&user).0, &period.months(state.now()));
    let computed = compute(&state, &filter, false).await?;
    xlsx_response(&tables(&computed, false), "indicateurs-info-parquet")
}

async fn public_csv(
    State(state): State<AppState>,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let filter = filter_of(Scope::National, &period.months(state.now()));
    let computed = compute(&state, &filter, true).await?;
    Ok(csv_response(
        &tables(&computed, true),
        "info-parquet-en-chiffres",
    ))
}

async fn public_xlsx(
    State(state): State<AppState>,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let filter = filter_of(Scope::National, &period.months(state.now()));
    let computed = compute(&state, &filter, true).await?;
    xlsx_response(&tables(&computed, true), "info-parquet-en-chiffres")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn periods_are_read_as_months() {
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
            .single()
            .expect("instant");
        let default = Period::default().months(now);
        assert_eq!((default.from, default.to), (Some(202512), None));
        let december = chrono::Utc
            .with_ymd_and_hms(2026, 12, 15, 12, 0, 0)
            .single()
            .expect("instant");
        assert_eq!(Period::default().months(december).from, Some(202601));
        let asked = Period {
            from: Some("2025-03".into()),
            to: Some("2025-06-30".into()),
        }
        .months(now);
        assert_eq!(
            (asked.from, asked.to, asked.error),
            (Some(202503), Some(202506), None)
        );
        let everything = Period {
            from: Some(String::new()),
            to: None,
        }
        .months(now);
        assert_eq!((everything.from, everything.to), (None, None));
        let wrong = Period {
            from: Some("mars".into()),
            to: None,
        }
        .months(now);
        assert_eq!(wrong.from, None);
        assert!(wrong.error.is_some_and(|e| e.contains("AAAA-MM")));
    }

    fn merged_with(groups: usize) -> Arc<Merged> {
        let none = indicators(&[], OpenReferrals::default());
        Arc::new(Merged {
            indicators: none.clone(),
            months: Vec::new(),
            breakdowns: vec![(
                Dimension::Administration,
                (0..groups).map(|g| (g.to_string(), none.clone())).collect(),
            )],
        })
    }

    fn key(from_month: i32) -> (StatsFilter, bool) {
        let filter = StatsFilter {
            scope: Scope::National,
            from_month: Some(from_month),
            to_month: None,
        };
        (filter, false)
    }

    #[test]
    fn merged_cells_are_kept_per_generation_within_bounds() {
        let cache = MergedCache::default();
        cache.put(key(0), 7, merged_with(3));
        assert!(cache.get(key(0), 7).is_some());
        assert!(cache.get(key(0), 8).is_none(), "the cells were refreshed");
        assert!(cache.get(key(1), 7).is_none(), "another period");

        // Past the number of entries, the least recently used goes.
        for k in 1..=MERGED_KEPT as i32 {
            cache.put(key(k), 7, merged_with(1));
            assert!(cache.get(key(0), 7).is_some(), "used at every turn");
        }
        assert!(cache.get(key(1), 7).is_none(), "the oldest was forgotten");
        assert!(cache.get(key(MERGED_KEPT as i32), 7).is_some());
        assert!(cache.entries().by_key.len() <= MERGED_KEPT);

        // Past the number of rows, as many as needed go; a result larger than the whole
        // cache is not kept at all.
        cache.put(key(-1), 7, merged_with(MERGED_ROWS_KEPT - 10));
        assert!(cache.get(key(-1), 7).is_some());
        assert!(cache.entries().rows() <= MERGED_ROWS_KEPT);
        cache.put(key(-2), 7, merged_with(MERGED_ROWS_KEPT + 1));
        assert!(cache.get(key(-2), 7).is_none());
        assert!(cache.get(key(-1), 7).is_some(), "nothing evicted for it");
    }
}
