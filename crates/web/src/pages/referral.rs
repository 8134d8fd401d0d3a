//! Lists of referrals and the referral page.

use super::{paris_datetime, render, Layout};
use crate::api::scope_filter;
use crate::auth::SessionUser;
use crate::error::{AppError, PageError};
use crate::service::ReferralService;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use domain::referral::Kind;
use domain::{Status, Urgency};
use serde::Deserialize;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/saisines", get(list))
        .route("/saisines/filtres", axum::routing::post(save_filter))
        .route(
            "/saisines/filtres/{id}/supprimer",
            axum::routing::post(delete_filter),
        )
        .route("/saisines/{id}", get(show))
        .route("/saisines/{id}/accuse-reception.pdf", get(receipt_pdf))
        .route("/saisines/{id}/avis-40-2.pdf", get(notice_pdf))
        .route("/saisines/{id}/pieces/{attachment_id}", get(download))
        .route("/saisines/{id}/export.zip", get(export))
        .route("/saisines/{id}/pieces/{attachment_id}/apercu", get(preview))
}

pub fn parse_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

pub struct Row {
    id: Uuid,
    reference: String,
    title: String,
    status_label: &'static str,
    status_class: &'static str,
    urgency: String,
    urgency_label: &'static str,
    counterpart: String,
    submitted_at: String,
    received_since: String,
    deadline: String,
    overdue: bool,
    last_event: String,
}

pub struct Tab {
    slug: &'static str,
    label: &'static str,
    count: i64,
    current: bool,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    layout: Layout,
    csrf: String,
    heading: &'static str,
    is_sender: bool,
    tabs: Vec<Tab>,
    tab: String,
    query: String,
    status: String,
    urgency: String,
    administration: String,
    parquet: String,
    prosecutor: String,
    gravity: String,
    limitation_months: String,
    from: String,
    to: String,
    statuses: Vec<(&'static str, &'static str)>,
    administrations: Vec<(Uuid, String)>,
    parquets: Vec<(Uuid, String)>,
    prosecutors: Vec<(Uuid, String)>,
    rows: Vec<Row>,
    total: i64,
    next_page: Option<String>,
    current_query: String,
    saved: Vec<store::SavedFilter>,
    flash: Option<&'static str>,
    /// Who is on call now (parquet side).
    on_call: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    tab: Option<String>,
    q: Option<String>,
    status: Option<String>,
    urgency: Option<String>,
    administration: Option<String>,
    parquet: Option<String>,
    prosecutor: Option<String>,
    gravity: Option<String>,
    limitation_months: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<u32>,
    fait: Option<String>,
}

impl ListQuery {
    /// The query string that reproduces this filter (for saved filters and paging).
    fn to_query_string(&self) -> String {
        let pairs = [
            ("tab", &self.tab),
            ("q", &self.q),
            ("status", &self.status),
            ("urgency", &self.urgency),
            ("administration", &self.administration),
            ("parquet", &self.parquet),
            ("prosecutor", &self.prosecutor),
            ("gravity", &self.gravity),
            ("limitation_months", &self.limitation_months),
            ("from", &self.from),
            ("to", &self.to),
        ];
        pairs
            .iter()
            .filter_map(|(k, v)| {
                v.as_deref()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| format!("{k}={}", urlencoding::encode(v.trim())))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

const PAGE_SIZE: i64 = 50;
const OPEN_STATUSES: [&str; 4] = [
    "submitted",
    "registered",
    "under_investigation",
    "complement_requested",
];
const PARQUET_TABS: [(&str, &str); 5] = [
    ("a_traiter", "À traiter"),
    ("urgentes", "Urgentes"),
    ("complement", "En attente de complément"),
    ("mes_dossiers", "Mes dossiers"),
    ("toutes", "Toutes"),
];

fn apply_tab(filter: &mut store::ReferralFilter, tab: &str, user_id: Uuid) {
    match tab {
        "a_traiter" => filter.statuses = vec!["submitted".into()],
        "urgentes" => {
            filter.urgent_only = true;
            filter.statuses = OPEN_STATUSES.iter().map(|s| s.to_string()).collect();
        }
        "complement" => filter.statuses = vec!["complement_requested".into()],
        "mes_dossiers" => filter.assigned_to = Some(user_id),
        _ => {}
    }
}

fn parse_day(text: Option<&str>) -> Option<chrono::DateTime<Utc>> {
    let day = chrono::NaiveDate::parse_from_str(text?.trim(), "%Y-%m-%d").ok()?;
    day.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
}

fn since(at: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) -> String {
    let elapsed = now - at;
    match elapsed.num_minutes() {
        m if m < 60 => format!("il y a {} min", m.max(0)),
        m if m < 60 * 48 => format!("il y a {} h", m / 60),
        m => format!("il y a {} j", m / (60 * 24)),
    }
}

async fn list(
    State(state): State<AppState>,
    user: SessionUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let scope = scope_filter(&user.current)?;
    let is_sender = user.current.role.is_sender();
    let me = user.current.user.id;
    let tab = match query.tab.as_deref() {
        Some(t) if PARQUET_TABS.iter().any(|(slug, _)| *slug == t) && !is_sender => t.to_string(),
        _ if is_sender => String::new(),
        _ => "a_traiter".to_string(),
    };
    let mut tabs = Vec::new();
    if !is_sender {
        for (slug, label) in PARQUET_TABS {
            let mut counted = scope.clone();
            apply_tab(&mut counted, slug, me);
            tabs.push(Tab {
                slug,
                label,
                count: state.store.count_matching(&counted).await?,
                current: slug == tab,
            });
        }
    }
    let mut filter = scope.clone();
    apply_tab(&mut filter, &tab, me);
    let status = query.status.clone().filter(|s| Status::parse(s).is_some());
    filter.status = status.clone();
    filter.urgency = query
        .urgency
        .clone()
        .filter(|u| Urgency::parse(u).is_some());
    filter.query = query.q.clone();
    if let Some(id) = query
        .administration
        .as_deref()
        .and_then(|a| a.parse::<Uuid>().ok())
    {
        if filter.administration_id.is_none() {
            filter.administration_id = Some(id);
        }
    }
    if let Some(id) = query
        .parquet
        .as_deref()
        .and_then(|p| p.parse::<Uuid>().ok())
    {
        // Senders narrow by parquet; a parquet's own scope is already fixed.
        if filter.parquet_id.is_none() {
            filter.parquet_id = Some(id);
        }
    }
    if let Some(id) = query
        .prosecutor
        .as_deref()
        .and_then(|p| p.parse::<Uuid>().ok())
    {
        filter.assigned_to = Some(id);
    }
    filter.gravity = query
        .gravity
        .clone()
        .filter(|g| ["crime", "delit", "contravention"].contains(&g.as_str()));
    let now = state.now();
    if let Some(months) = query
        .limitation_months
        .as_deref()
        .and_then(|m| m.trim().parse::<u32>().ok())
    {
        filter.limitation_before = now
            .date_naive()
            .checked_add_months(chrono::Months::new(months.min(240)));
    }
    filter.from = parse_day(query.from.as_deref());
    filter.to = parse_day(query.to.as_deref()).map(|d| d + chrono::Duration::days(1));
    if !is_sender {
        filter.order = store::ListOrder::Inbox;
    }
    let total = state.store.count_matching(&filter).await?;
    let page = query.page.unwrap_or(1).clamp(1, 10_000);
    filter.offset = PAGE_SIZE * i64::from(page - 1);
    filter.limit = PAGE_SIZE;
    let summaries = state.store.list_referrals(&filter).await?;
    let rows = summaries
        .into_iter()
        .map(|s| {
            let status = Status::parse(&s.status).unwrap_or(Status::Draft);
            let urgency = Urgency::parse(&s.urgency).unwrap_or(Urgency::Normal);
            let deadline = crate::views::summary_deadline(&s, now);
            Row {
                id: s.id,
                reference: s.reference.unwrap_or_else(|| "Brouillon".into()),
                title: if s.title.is_empty() {
                    "(sans intitulé)".into()
                } else {
                    s.title
                },
                status_label: status.label_fr(),
                status_class: status.badge_class(),
                urgency_label: urgency.label_fr(),
                urgency: s.urgency,
                counterpart: if is_sender {
                    s.parquet_name.unwrap_or_default()
                } else {
                    s.administration_name
                },
                submitted_at: s
                    .submitted_at
                    .map(paris_datetime)
                    .unwrap_or_else(|| "—".into()),
                received_since: s.submitted_at.map(|at| since(at, now)).unwrap_or_default(),
                deadline: deadline
                    .as_ref()
                    .map(|d| paris_datetime(d.due_at))
                    .unwrap_or_else(|| "—".into()),
                last_event: s.last_event.clone().unwrap_or_default(),
                overdue: deadline.is_some_and(|d| d.overdue),
            }
        })
        .collect();
    let current_query = query.to_query_string();
    let next_page = (PAGE_SIZE * i64::from(page) < total)
        .then(|| format!("/saisines?{current_query}&page={}", page + 1));
    let parquets = if is_sender {
        state
            .store
            .parquets_of_administration(user.current.organisation.id)
            .await?
    } else {
        Vec::new()
    };
    let (administrations, prosecutors) = if is_sender {
        (Vec::new(), Vec::new())
    } else {
        let organisation = user.current.organisation.id;
        (
            state.store.administrations_of_parquet(organisation).await?,
            state
                .store
                .users_of_organisation(organisation)
                .await?
                .into_iter()
                .filter(|u| u.role == "prosecutor")
                .map(|u| (u.id, u.display_name))
                .collect(),
        )
    };
    Ok(render(&ListPage {
        layout: Layout::of(&user, "list"),
        csrf: user.csrf_token.clone(),
        heading: if is_sender {
            "Mes saisines"
        } else {
            "Corbeille du parquet"
        },
        is_sender,
        tabs,
        tab,
        query: query.q.clone().unwrap_or_default(),
        status: status.unwrap_or_default(),
        urgency: query.urgency.clone().unwrap_or_default(),
        administration: query.administration.clone().unwrap_or_default(),
        parquet: query.parquet.clone().unwrap_or_default(),
        prosecutor: query.prosecutor.clone().unwrap_or_default(),
        gravity: query.gravity.clone().unwrap_or_default(),
        limitation_months: query.limitation_months.clone().unwrap_or_default(),
        from: query.from.clone().unwrap_or_default(),
        to: query.to.clone().unwrap_or_default(),
        statuses: Status::ALL
            .iter()
            .map(|s| (s.as_str(), s.label_fr()))
            .collect(),
        administrations,
        parquets,
        prosecutors,
        rows,
        total,
        next_page,
        current_query,
        saved: state.store.saved_filters(me).await?,
        on_call: if is_sender {
            Vec::new()
        } else {
            state
                .store
                .on_call_now(user.current.organisation.id, now)
                .await?
                .into_iter()
                .map(|(shift, person)| {
                    format!(
                        "{} — {} (jusqu'au {})",
                        person.display_name,
                        shift.phone,
                        paris_datetime(shift.ends_at)
                    )
                })
                .collect()
        },
        flash: query.fait.as_deref().and_then(super::actions::confirmation),
    }))
}

#[derive(Deserialize)]
struct SaveFilterForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    query: String,
}

async fn save_filter(
    State(state): State<AppState>,
    user: SessionUser,
    axum::Form(form): axum::Form<SaveFilterForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf_token)?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(AppError::invalid(
            "name",
            "Donnez un nom court (80 caractères au plus) à ce filtre.",
        )
        .into());
    }
    // Only a query string of this page is kept: never a URL elsewhere.
    let query = form.query.trim().trim_start_matches('?').to_string();
    if query.len() > 1000 || query.contains("://") {
        return Err(AppError::invalid("query", "Filtre invalide.").into());
    }
    state
        .store
        .save_filter(&store::SavedFilter {
            id: Uuid::now_v7(),
            user_id: user.current.user.id,
            name: name.to_string(),
            query: query.clone(),
            created_at: state.now(),
        })
        .await?;
    Ok(axum::response::Redirect::to(&format!("/saisines?{query}&fait=filter")).into_response())
}

async fn delete_filter(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<super::CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf_token)?;
    if !state
        .store
        .delete_saved_filter(user.current.user.id, parse_id(&id)?)
        .await?
    {
        return Err(AppError::NotFound.into());
    }
    Ok(axum::response::Redirect::to("/saisines").into_response())
}

pub struct AttachmentRow {
    id: Uuid,
    filename: String,
    size: String,
    sha256: String,
    /// PDFs and images can be viewed in the browser.
    viewable: bool,
}

/// Media types shown inline (in a sandbox): PDFs and raster images.
fn viewable(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/pdf" | "image/png" | "image/jpeg" | "image/gif"
    )
}

pub struct ReferralDisplay {
    id: Uuid,
    reference_label: String,
    title: String,
    status_label: &'static str,
    status_class: &'static str,
    urgency_label: &'static str,
    kind_label: &'static str,
    administration: String,
    parquet: String,
    parquet_number: Option<String>,
    place: String,
    period: String,
    limitation: Option<String>,
    /// Set when the limitation date falls within six months.
    limitation_warning: bool,
    deadline: Option<String>,
    facts: String,
    offences: Vec<String>,
    parties: Vec<String>,
    attachments: Vec<AttachmentRow>,
    has_receipt: bool,
    has_decision: bool,
    decision: Option<String>,
}

#[derive(Template)]
#[template(path = "referral.html")]
struct ReferralPage {
    layout: Layout,
    csrf: String,
    is_sender: bool,
    r: ReferralDisplay,
    actions: ActionForms,
    events: Vec<(String, String, String)>,
    messages: Vec<(String, String)>,
    flash: Option<String>,
    error: Option<String>,
    field_errors: Vec<String>,
}

fn human_size(size: i64) -> String {
    match size {
        s if s >= 1 << 20 => format!("{:.1} Mo", s as f64 / f64::from(1 << 20)),
        s if s >= 1 << 10 => format!("{:.1} ko", s as f64 / f64::from(1 << 10)),
        s => format!("{s} o"),
    }
}

async fn display(
    state: &AppState,
    referral: &store::Referral,
) -> Result<ReferralDisplay, AppError> {
    let row = &referral.row;
    let status = Status::parse(&row.status).unwrap_or(Status::Draft);
    let offences = state
        .store
        .offences_by_codes(&referral.offence_codes)
        .await?;
    let place = match &row.commune_insee {
        Some(insee) => {
            let name = state.store.commune_name(insee).await?.unwrap_or_default();
            format!(
                "{name} ({insee}){}",
                row.address
                    .as_deref()
                    .map(|a| format!(" — {a}"))
                    .unwrap_or_default()
            )
        }
        None => "Non renseigné".into(),
    };
    let period = match (row.facts_started_on, row.facts_ended_on) {
        (Some(start), Some(end)) if start != end => format!(
            "du {} au {}",
            start.format("%d/%m/%Y"),
            end.format("%d/%m/%Y")
        ),
        (Some(day), _) | (None, Some(day)) => format!("le {}", day.format("%d/%m/%Y")),
        (None, None) => "Non renseignée".into(),
    };
    let competence = row
        .competence
        .as_deref()
        .and_then(domain::competence::Competence::parse)
        .map(|c| format!(" ({})", c.label_fr()))
        .unwrap_or_default();
    let decision = match &row.decision {
        Some(decision) => {
            let events = state.store.events(row.id).await?;
            events
                .iter()
                .rev()
                .find(|e| e.event_type == "decided")
                .map(|e| e.summary.clone())
                .or_else(|| Some(decision.0.kind.clone()))
        }
        None => None,
    };
    Ok(ReferralDisplay {
        id: row.id,
        reference_label: row.reference.clone().unwrap_or_else(|| "Brouillon".into()),
        title: if row.title.is_empty() {
            "(sans intitulé)".into()
        } else {
            row.title.clone()
        },
        status_label: status.label_fr(),
        status_class: status.badge_class(),
        urgency_label: Urgency::parse(&row.urgency)
            .map(Urgency::label_fr)
            .unwrap_or(""),
        kind_label: Kind::parse(&row.kind).map(Kind::label_fr).unwrap_or(""),
        administration: referral.administration.name.clone(),
        parquet: referral
            .parquet
            .as_ref()
            .map(|p| format!("{}{competence}", p.name))
            .unwrap_or_else(|| "À déterminer".into()),
        parquet_number: row.parquet_number.clone(),
        place,
        period,
        limitation_warning: row.limitation_date.is_some_and(|d| {
            d <= state
                .now()
                .date_naive()
                .checked_add_months(chrono::Months::new(6))
                .unwrap_or(d)
        }) && !status.is_decided(),
        limitation: row
            .limitation_date
            .map(|d| d.format("%d/%m/%Y").to_string()),
        deadline: crate::views::deadline_of(referral, state.now()).map(|d| {
            let what = match d.kind {
                domain::calendar::DeadlineKind::Acknowledge => "accusé de réception",
                domain::calendar::DeadlineKind::Register => "enregistrement",
                domain::calendar::DeadlineKind::Decide => "décision",
            };
            format!(
                "{what} avant le {}{}",
                paris_datetime(d.due_at),
                if d.overdue { " — en retard" } else { "" }
            )
        }),
        facts: row.facts.clone(),
        offences: offences
            .iter()
            .map(|o| format!("{} — {} ({})", o.code, o.label, o.nature))
            .collect(),
        parties: referral
            .parties
            .iter()
            .map(|p| {
                let role = match p.role.as_str() {
                    "suspect" => "mis en cause",
                    "victim" => "victime",
                    _ => "témoin",
                };
                let name = if p.kind == "person" {
                    format!(
                        "{} {}",
                        p.first_names.clone().unwrap_or_default(),
                        p.last_name.clone().unwrap_or_default()
                    )
                } else {
                    format!(
                        "{}{}",
                        p.name.clone().unwrap_or_default(),
                        p.siret
                            .as_deref()
                            .map(|s| format!(" (SIRET {s})"))
                            .unwrap_or_default()
                    )
                };
                format!("{} — {role}", name.trim())
            })
            .collect(),
        attachments: referral
            .attachments
            .iter()
            .map(|a| AttachmentRow {
                id: a.id,
                filename: a.filename.clone(),
                size: human_size(a.size),
                sha256: a.sha256.clone(),
                viewable: viewable(&a.media_type),
            })
            .collect(),
        has_receipt: row.verification_code.is_some(),
        has_decision: row.decision.is_some(),
        decision,
    })
}

/// Which forms the referral page offers: exactly the actions the transition table allows.
#[derive(Default)]
pub struct ActionForms {
    pub acknowledge: bool,
    pub register: bool,
    pub assign: bool,
    pub request_complement: bool,
    pub answer_complement: bool,
    pub open_investigation: bool,
    pub transfer: bool,
    pub decide: bool,
    pub measure_outcome: bool,
    pub judgement: bool,
    pub appeal: bool,
    pub close: bool,
    pub withdraw: bool,
    pub validate: bool,
    pub edit: bool,
    pub add_attachment: bool,
    pub message: bool,
    pub note: bool,
    pub request_news: bool,
    pub prosecutors: Vec<(Uuid, String, bool)>,
    pub parquets: Vec<(Uuid, String)>,
    pub reasons: Vec<(String, String)>,
    pub measures: Vec<(&'static str, &'static str)>,
    pub modes: Vec<(&'static str, &'static str)>,
    pub outcomes: Vec<(&'static str, &'static str)>,
}

async fn action_forms(
    state: &AppState,
    user: &SessionUser,
    referral: &store::Referral,
) -> Result<ActionForms, AppError> {
    use domain::referral::{
        available_actions, AlternativeMeasureKind, JudgementOutcome, ProsecutionMode,
    };
    use domain::Action;
    let status = Status::parse(&referral.row.status).unwrap_or(Status::Draft);
    let role = user.current.role;
    let allowed = available_actions(status, role);
    let can = |action: Action| allowed.contains(&action);
    let mut forms = ActionForms {
        acknowledge: can(Action::Acknowledge) && referral.row.acknowledged_at.is_none(),
        register: can(Action::Register),
        assign: can(Action::Assign),
        request_complement: can(Action::RequestComplement),
        answer_complement: can(Action::AnswerComplement),
        open_investigation: can(Action::OpenInvestigation),
        transfer: can(Action::Transfer),
        decide: can(Action::DecideDismissal),
        measure_outcome: can(Action::RecordMeasureSuccess),
        judgement: can(Action::RecordJudgement),
        appeal: can(Action::RecordAppeal),
        close: can(Action::Close),
        withdraw: can(Action::Withdraw),
        validate: can(Action::Validate),
        edit: can(Action::Edit),
        add_attachment: can(Action::AddAttachment),
        message: can(Action::PostMessage),
        note: can(Action::AddNote),
        request_news: can(Action::RequestNews),
        ..Default::default()
    };
    if forms.assign {
        forms.prosecutors = state
            .store
            .users_of_organisation(user.current.organisation.id)
            .await?
            .into_iter()
            .filter(|u| u.role == "prosecutor" && u.active)
            .map(|u| (u.id, u.display_name, referral.row.assigned_to == Some(u.id)))
            .collect();
    }
    if forms.transfer {
        forms.parquets = state
            .store
            .parquets()
            .await?
            .into_iter()
            .filter(|p| Some(p.id) != referral.row.parquet_id)
            .map(|p| (p.id, p.name))
            .collect();
    }
    if forms.decide {
        forms.reasons = state
            .store
            .dismissal_reasons()
            .await?
            .into_iter()
            .map(|r| (r.code, r.label))
            .collect();
        forms.measures = AlternativeMeasureKind::ALL
            .iter()
            .map(|m| (m.as_str(), m.label_fr()))
            .collect();
    }
    if forms.decide || forms.measure_outcome {
        forms.modes = ProsecutionMode::ALL
            .iter()
            .map(|m| (m.as_str(), m.label_fr()))
            .collect();
    }
    if forms.judgement || forms.appeal {
        forms.outcomes = JudgementOutcome::ALL
            .iter()
            .map(|o| (o.as_str(), o.label_fr()))
            .collect();
    }
    Ok(forms)
}

/// Renders the referral page, with an optional confirmation or error.
pub async fn referral_page(
    state: &AppState,
    user: &SessionUser,
    id: Uuid,
    flash: Option<String>,
    error: Option<&AppError>,
) -> Result<Response, PageError> {
    let service = ReferralService::new(state, &user.current);
    let referral = service.load(id).await?;
    let role = user.current.role;
    let events = service
        .events(id)
        .await?
        .into_iter()
        .map(|e| {
            (
                paris_datetime(e.at),
                e.summary,
                format!("{} — {}", e.actor_name, e.actor_organisation),
            )
        })
        .collect();
    let messages = state
        .store
        .messages(id, role.is_parquet())
        .await?
        .into_iter()
        .map(|m| {
            let label = if m.internal {
                "Note interne"
            } else {
                "Message"
            };
            (
                format!(
                    "{label} — {} ({}), {}",
                    m.author_name,
                    m.author_organisation,
                    paris_datetime(m.at)
                ),
                m.body,
            )
        })
        .collect();
    let page = ReferralPage {
        layout: Layout::of(user, "list"),
        csrf: user.csrf_token.clone(),
        is_sender: role.is_sender(),
        r: display(state, &referral).await?,
        actions: action_forms(state, user, &referral).await?,
        events,
        messages,
        flash,
        error: error.map(|e| e.to_string()),
        field_errors: error
            .map(|e| e.field_errors().iter().map(|f| f.message.clone()).collect())
            .unwrap_or_default(),
    };
    let status = error
        .map(AppError::status)
        .unwrap_or(axum::http::StatusCode::OK);
    Ok((status, render(&page)).into_response())
}

#[derive(Deserialize)]
struct ShowQuery {
    fait: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let flash = query
        .fait
        .as_deref()
        .and_then(super::actions::confirmation)
        .map(str::to_string);
    let id = parse_id(&id)?;
    ReferralService::new(&state, &user.current).read(id).await?;
    referral_page(&state, &user, id, flash, None).await
}

async fn receipt_pdf(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let service = ReferralService::new(&state, &user.current);
    let referral = service.load(parse_id(&id)?).await?;
    service
        .journal(
            "receipt.download",
            format!("referral:{}", referral.row.id),
            String::new(),
        )
        .await?;
    let (bytes, filename) = super::documents::receipt(&state, &referral).await?;
    Ok(crate::api::pdf_response(bytes, &filename))
}

async fn notice_pdf(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let service = ReferralService::new(&state, &user.current);
    let referral = service.load(parse_id(&id)?).await?;
    service
        .journal(
            "notice.download",
            format!("referral:{}", referral.row.id),
            String::new(),
        )
        .await?;
    let (bytes, filename) = super::documents::decision_notice(&state, &referral).await?;
    Ok(crate::api::pdf_response(bytes, &filename))
}

async fn download(
    State(state): State<AppState>,
    user: SessionUser,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let service = ReferralService::new(&state, &user.current);
    let referral = service.load(parse_id(&id)?).await?;
    let attachment = state
        .store
        .attachment(referral.row.id, parse_id(&attachment_id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    service
        .journal(
            "attachment.download",
            format!("referral:{}", referral.row.id),
            format!("{} ({})", attachment.filename, attachment.sha256),
        )
        .await?;
    Ok(crate::api::stream_attachment(&state, &attachment, false).await?)
}

async fn export(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    Ok(crate::api::export_response(&state, &user.current, parse_id(&id)?).await?)
}

/// Shows a PDF or an image in the browser, inside a sandbox (no script, no form, no plugin
/// beyond the viewer); any other type is refused and must be downloaded.
async fn preview(
    State(state): State<AppState>,
    user: SessionUser,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let service = ReferralService::new(&state, &user.current);
    let referral = service.load(parse_id(&id)?).await?;
    let attachment = state
        .store
        .attachment(referral.row.id, parse_id(&attachment_id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    if !viewable(&attachment.media_type) {
        return Err(AppError::UnsupportedMediaType(
            "ce document ne peut qu'être téléchargé".into(),
        )
        .into());
    }
    service
        .journal(
            "attachment.view",
            format!("referral:{}", referral.row.id),
            format!("{} ({})", attachment.filename, attachment.sha256),
        )
        .await?;
    let mut response = crate::api::stream_attachment(&state, &attachment, true).await?;
    // Images in a sandbox; PDFs cannot be (Chrome refuses sandboxed PDFs), but may load
    // nothing else.
    let policy = if attachment.media_type == "application/pdf" {
        "default-src 'none'; object-src 'self'; img-src 'self'; frame-ancestors 'none'"
    } else {
        "sandbox; default-src 'none'; img-src 'self'; frame-ancestors 'none'"
    };
    response.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(policy),
    );
    Ok(response)
}
