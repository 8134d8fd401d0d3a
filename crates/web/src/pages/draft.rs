//! The new-referral form: six steps, each saved to the draft when it is submitted, so that the
//! agent can leave and resume at any time. Every step works without JavaScript: searches
//! (communes, NATINF) are plain form submissions that show their results as choices.

use super::referral::parse_id;
use super::{paris_datetime, render, Layout};
use crate::auth::SessionUser;
use crate::error::{AppError, FieldError, PageError};
use crate::service::{PlaceInput, ReferralInput, ReferralService};
use crate::AppState;
use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::NaiveDate;
use domain::limitation::only_contraventions;
use domain::referral::Kind;
use domain::{Status, Urgency};
use std::collections::HashMap;
use store::{Party, Referral};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/saisines/nouvelle", get(new_draft).post(create_draft))
        .route(
            "/saisines/{id}/brouillon/{step}",
            get(show_step).post(save_step),
        )
        .route("/saisines/{id}/pieces", post(upload))
        .route("/saisines/{id}/accuse-reception", get(receipt_page))
}

pub const STEPS: [(&str, &str); 6] = [
    ("nature", "Nature et urgence"),
    ("faits", "Les faits"),
    ("qualification", "Qualification"),
    ("parties", "Personnes et organisations"),
    ("pieces", "Pièces jointes"),
    ("recapitulatif", "Récapitulatif et envoi"),
];

fn step_index(step: &str) -> Option<usize> {
    STEPS.iter().position(|(slug, _)| *slug == step)
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

#[derive(Default)]
pub struct Values {
    kind: String,
    urgency: String,
    title: String,
    facts: String,
    administration_reference: String,
    started: String,
    ended: String,
    commune: String,
    address: String,
    parquet_id: String,
    competence_reason: String,
}

pub struct OffenceLine {
    code: i64,
    label: String,
    nature: String,
}

pub struct PartyLine {
    index: usize,
    text: String,
}

#[derive(Template)]
#[template(path = "draft.html")]
struct DraftPage {
    layout: Layout,
    csrf: String,
    id: Option<Uuid>,
    step: &'static str,
    step_number: usize,
    step_title: &'static str,
    next_title: &'static str,
    steps: Vec<(&'static str, &'static str, bool)>,
    values: Values,
    errors: Vec<FieldError>,
    kinds: Vec<Choice>,
    urgencies: Vec<Choice>,
    commune_results: Vec<Choice>,
    commune_label: String,
    proposed_parquet: Option<String>,
    parquets: Vec<Choice>,
    offences: Vec<OffenceLine>,
    offence_results: Vec<OffenceLine>,
    offence_query: String,
    only_contraventions: bool,
    parties: Vec<PartyLine>,
    party: HashMap<String, String>,
    attachments: Vec<(String, String, String)>,
    missing: Vec<FieldError>,
    summary: Vec<(&'static str, String)>,
    max_upload: String,
}

impl DraftPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field || e.field.starts_with(&format!("{field}.")))
            .map(|e| e.message.as_str())
    }
}

const URGENCY_HELP: [(&str, &str); 3] = [
    ("normal", "Normale — le parquet enregistre la saisine dans les 10 jours ouvrés."),
    ("urgent", "Urgente — le parquet doit en accuser réception dans les 24 heures."),
    ("immediate", "Immédiate — le magistrat de permanence est alerté sans délai et doit en accuser réception dans l'heure, de jour comme de nuit ; à défaut, l'alerte est relancée auprès du procureur."),
];

fn date_text(date: Option<NaiveDate>) -> String {
    date.map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn values_of(referral: &Referral) -> Values {
    let row = &referral.row;
    Values {
        kind: row.kind.clone(),
        urgency: row.urgency.clone(),
        title: row.title.clone(),
        facts: row.facts.clone(),
        administration_reference: row.administration_reference.clone().unwrap_or_default(),
        started: date_text(row.facts_started_on),
        ended: date_text(row.facts_ended_on),
        commune: row.commune_insee.clone().unwrap_or_default(),
        address: row.address.clone().unwrap_or_default(),
        parquet_id: if row.competence.as_deref() == Some("chosen") {
            row.parquet_id.map(|p| p.to_string()).unwrap_or_default()
        } else {
            String::new()
        },
        competence_reason: row.competence_reason.clone().unwrap_or_default(),
    }
}

fn party_text(party: &Party) -> String {
    let role = match party.role.as_str() {
        "suspect" => "mis en cause",
        "victim" => "victime",
        _ => "témoin",
    };
    let name = if party.kind == "person" {
        format!(
            "{} {}",
            party.first_names.clone().unwrap_or_default(),
            party.last_name.clone().unwrap_or_default()
        )
    } else {
        format!(
            "{}{}",
            party.name.clone().unwrap_or_default(),
            party
                .siret
                .as_deref()
                .or(party.siren.as_deref())
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        )
    };
    format!("{} — {role}", name.trim())
}

impl DraftPage {
    async fn build(
        state: &AppState,
        user: &SessionUser,
        referral: Option<&Referral>,
        step: &'static str,
    ) -> Result<DraftPage, AppError> {
        let index = step_index(step).unwrap_or(0);
        let values = referral.map(values_of).unwrap_or(Values {
            kind: "article_40".into(),
            urgency: "normal".into(),
            ..Default::default()
        });
        let mut page = DraftPage {
            layout: Layout::of(user, "new"),
            csrf: user.csrf_token.clone(),
            id: referral.map(|r| r.row.id),
            step,
            step_number: index + 1,
            step_title: STEPS[index].1,
            next_title: STEPS.get(index + 1).map(|s| s.1).unwrap_or(""),
            steps: STEPS
                .iter()
                .enumerate()
                .map(|(i, (slug, title))| (*slug, *title, i == index))
                .collect(),
            kinds: Kind::ALL
                .iter()
                .map(|k| Choice {
                    value: k.as_str().into(),
                    label: k.label_fr().into(),
                    checked: k.as_str() == values.kind,
                })
                .collect(),
            urgencies: URGENCY_HELP
                .iter()
                .map(|(value, label)| Choice {
                    value: (*value).into(),
                    label: (*label).into(),
                    checked: *value == values.urgency,
                })
                .collect(),
            values,
            errors: Vec::new(),
            commune_results: Vec::new(),
            commune_label: String::new(),
            proposed_parquet: None,
            parquets: Vec::new(),
            offences: Vec::new(),
            offence_results: Vec::new(),
            offence_query: String::new(),
            only_contraventions: false,
            parties: Vec::new(),
            party: HashMap::new(),
            attachments: Vec::new(),
            missing: Vec::new(),
            summary: Vec::new(),
            max_upload: format!("{} Mo", state.files.max_size() / (1 << 20)),
        };
        let Some(referral) = referral else {
            return Ok(page);
        };
        if let Some(insee) = &referral.row.commune_insee {
            let commune = state.store.known_commune(insee).await?;
            let (name, competent) =
                commune.map_or((String::new(), None), |c| (c.name, c.competent));
            page.commune_label = format!("{name} ({insee})");
            page.proposed_parquet = competent.map(|p| {
                let competence = domain::competence::Competence::parse(&p.competence)
                    .map(|c| c.label_fr())
                    .unwrap_or("");
                format!("{} — {competence}", p.name)
            });
        }
        if step == "faits" {
            page.parquets = state
                .store
                .parquets()
                .await?
                .into_iter()
                .map(|p| Choice {
                    checked: p.id.to_string() == page.values.parquet_id,
                    value: p.id.to_string(),
                    label: p.name,
                })
                .collect();
        }
        let offences = state
            .store
            .offences_by_codes(&referral.offence_codes)
            .await?;
        page.only_contraventions = only_contraventions(
            &offences
                .iter()
                .map(|o| o.nature.as_str())
                .collect::<Vec<_>>(),
        );
        page.offences = offences
            .into_iter()
            .map(|o| OffenceLine {
                code: o.code,
                label: o.label,
                nature: o.nature,
            })
            .collect();
        page.parties = referral
            .parties
            .iter()
            .enumerate()
            .map(|(index, p)| PartyLine {
                index,
                text: party_text(p),
            })
            .collect();
        page.attachments = referral
            .attachments
            .iter()
            .map(|a| {
                (
                    a.filename.clone(),
                    format!("{} octets", a.size),
                    a.sha256.clone(),
                )
            })
            .collect();
        page.missing = ReferralService::missing_for_submission(referral);
        let row = &referral.row;
        page.summary = vec![
            (
                "Nature",
                Kind::parse(&row.kind)
                    .map(Kind::label_fr)
                    .unwrap_or("")
                    .to_string(),
            ),
            (
                "Urgence",
                Urgency::parse(&row.urgency)
                    .map(Urgency::label_fr)
                    .unwrap_or("")
                    .to_string(),
            ),
            ("Intitulé", row.title.clone()),
            (
                "Lieu",
                if page.commune_label.is_empty() {
                    "Non renseigné".into()
                } else {
                    page.commune_label.clone()
                },
            ),
            (
                "Parquet destinataire",
                referral
                    .parquet
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| "À déterminer".into()),
            ),
            (
                "Infractions",
                page.offences
                    .iter()
                    .map(|o| format!("{} {}", o.code, o.label))
                    .collect::<Vec<_>>()
                    .join(" ; "),
            ),
            (
                "Parties",
                page.parties
                    .iter()
                    .map(|p| p.text.clone())
                    .collect::<Vec<_>>()
                    .join(" ; "),
            ),
            ("Pièces", format!("{} document(s)", page.attachments.len())),
            (
                "Prescription estimée",
                row.limitation_date
                    .map(|d| d.format("%d/%m/%Y").to_string())
                    .unwrap_or_else(|| "non calculable".into()),
            ),
        ];
        Ok(page)
    }
}

async fn editable(state: &AppState, user: &SessionUser, id: &str) -> Result<Referral, AppError> {
    let referral = ReferralService::new(state, &user.current)
        .load(parse_id(id)?)
        .await?;
    if referral.row.status != Status::Draft.as_str() {
        return Err(AppError::Conflict(
            "Cette saisine a été transmise : elle ne peut plus être modifiée.".into(),
        ));
    }
    Ok(referral)
}

async fn new_draft(
    State(state): State<AppState>,
    user: SessionUser,
) -> Result<Response, PageError> {
    if !user.current.role.is_sender() {
        return Err(
            AppError::Forbidden("Seules les administrations créent des saisines.".into()).into(),
        );
    }
    Ok(render(
        &DraftPage::build(&state, &user, None, "nature").await?,
    ))
}

fn field(form: &HashMap<String, String>, name: &str) -> String {
    form.get(name)
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn optional(form: &HashMap<String, String>, name: &str) -> Option<String> {
    Some(field(form, name)).filter(|v| !v.is_empty())
}

fn parse_date(
    form: &HashMap<String, String>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Option<NaiveDate>> {
    match optional(form, name) {
        None => Some(None),
        Some(text) => match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(date) => Some(Some(date)),
            Err(_) => {
                errors.push(FieldError::new(name, "Date invalide."));
                None
            }
        },
    }
}

async fn create_draft(
    State(state): State<AppState>,
    user: SessionUser,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    user.check_csrf(&field(&form, "csrf_token"))?;
    let input = ReferralInput {
        kind: optional(&form, "kind"),
        urgency: optional(&form, "urgency"),
        ..Default::default()
    };
    match ReferralService::new(&state, &user.current)
        .create_draft(input)
        .await
    {
        Ok(referral) => Ok(
            Redirect::to(&format!("/saisines/{}/brouillon/faits", referral.row.id)).into_response(),
        ),
        Err(AppError::Invalid(errors)) => {
            let mut page = DraftPage::build(&state, &user, None, "nature").await?;
            page.errors = errors;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

async fn show_step(
    State(state): State<AppState>,
    user: SessionUser,
    Path((id, step)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let step = STEPS
        .get(step_index(&step).ok_or(AppError::NotFound)?)
        .map(|s| s.0)
        .unwrap_or("nature");
    let referral = editable(&state, &user, &id).await?;
    Ok(render(
        &DraftPage::build(&state, &user, Some(&referral), step).await?,
    ))
}

/// Re-renders a step with the agent's input and its errors; what was saved stays saved.
async fn redisplay(
    state: &AppState,
    user: &SessionUser,
    referral: &Referral,
    step: &'static str,
    form: &HashMap<String, String>,
    errors: Vec<FieldError>,
    adjust: impl FnOnce(&mut DraftPage),
) -> Result<Response, PageError> {
    let mut page = DraftPage::build(state, user, Some(referral), step).await?;
    let v = &mut page.values;
    for (name, slot) in [
        ("title", &mut v.title),
        ("facts", &mut v.facts),
        ("administration_reference", &mut v.administration_reference),
        ("facts_started_on", &mut v.started),
        ("facts_ended_on", &mut v.ended),
        ("commune", &mut v.commune),
        ("address", &mut v.address),
        ("parquet_id", &mut v.parquet_id),
        ("competence_reason", &mut v.competence_reason),
    ] {
        if let Some(value) = form.get(name) {
            *slot = value.clone();
        }
    }
    page.party = form
        .iter()
        .filter(|(k, _)| k.starts_with("party_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let status = if errors.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    page.errors = errors;
    adjust(&mut page);
    Ok((status, render(&page)).into_response())
}

async fn save_step(
    State(state): State<AppState>,
    user: SessionUser,
    Path((id, step)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    user.check_csrf(&field(&form, "csrf_token"))?;
    let index = step_index(&step).ok_or(AppError::NotFound)?;
    let step: &'static str = STEPS[index].0;
    let referral = editable(&state, &user, &id).await?;
    let service = ReferralService::new(&state, &user.current);
    let intent = field(&form, "intent");
    let next = format!(
        "/saisines/{}/brouillon/{}",
        referral.row.id,
        STEPS.get(index + 1).map(|s| s.0).unwrap_or("recapitulatif")
    );
    let here = format!("/saisines/{}/brouillon/{step}", referral.row.id);
    let mut errors = Vec::new();
    let input = match step {
        "nature" => ReferralInput {
            kind: optional(&form, "kind"),
            urgency: optional(&form, "urgency"),
            ..Default::default()
        },
        "faits" => {
            let started = parse_date(&form, "facts_started_on", &mut errors);
            let ended = parse_date(&form, "facts_ended_on", &mut errors);
            // The commune: a chosen search result, or a typed INSEE code, or a search.
            let typed = field(&form, "commune");
            let chosen = optional(&form, "commune_insee");
            let mut place = None;
            if let Some(insee) = chosen {
                place = Some(Some(PlaceInput {
                    commune_insee: Some(insee),
                    address: optional(&form, "address"),
                }));
            } else if typed.is_empty() {
                place = Some(None);
            } else if intent != "search_commune"
                && typed.len() == 5
                && state
                    .store
                    .commune_name(&typed.to_ascii_uppercase())
                    .await?
                    .is_some()
            {
                place = Some(Some(PlaceInput {
                    commune_insee: Some(typed.to_ascii_uppercase()),
                    address: optional(&form, "address"),
                }));
            }
            if place.is_none() {
                let results = state.store.search_communes(&typed, 15).await?;
                if results.is_empty() {
                    errors.push(FieldError::new("commune", "Aucune commune ne correspond : saisissez un nom, un code postal ou un code INSEE."));
                } else if intent != "search_commune" {
                    errors.push(FieldError::new(
                        "commune",
                        "Choisissez la commune parmi les résultats.",
                    ));
                }
                let choices = results
                    .into_iter()
                    .map(|c| Choice {
                        label: format!(
                            "{} ({}, {}) — {}",
                            c.name,
                            c.postal_codes.first().cloned().unwrap_or_default(),
                            c.insee,
                            c.parquet
                                .map(|p| format!(
                                    "{} ({})",
                                    p.name,
                                    domain::competence::Competence::parse(&p.competence)
                                        .map(|c| c.label_fr())
                                        .unwrap_or("")
                                ))
                                .unwrap_or_else(|| "parquet inconnu".into())
                        ),
                        value: c.insee,
                        checked: false,
                    })
                    .collect();
                return redisplay(&state, &user, &referral, step, &form, errors, |page| {
                    page.commune_results = choices
                })
                .await;
            }
            let parquet_id = match optional(&form, "parquet_id") {
                None => Some(None),
                Some(text) => match text.parse::<Uuid>() {
                    Ok(id) => Some(Some(id)),
                    Err(_) => {
                        errors.push(FieldError::new("parquet_id", "Parquet inconnu."));
                        None
                    }
                },
            };
            if !errors.is_empty() {
                return redisplay(&state, &user, &referral, step, &form, errors, |_| {}).await;
            }
            ReferralInput {
                title: Some(field(&form, "title")),
                facts: Some(field(&form, "facts")),
                administration_reference: Some(optional(&form, "administration_reference")),
                facts_started_on: started,
                facts_ended_on: ended,
                place,
                parquet_id,
                competence_reason: Some(optional(&form, "competence_reason")),
                ..Default::default()
            }
        }
        "qualification" => {
            let mut codes = referral.offence_codes.clone();
            if let Some(code) = intent
                .strip_prefix("add:")
                .and_then(|c| c.parse::<i64>().ok())
            {
                if !codes.contains(&code) {
                    codes.push(code);
                }
            } else if let Some(code) = intent
                .strip_prefix("remove:")
                .and_then(|c| c.parse::<i64>().ok())
            {
                codes.retain(|c| *c != code);
            } else if intent == "search" {
                let query = field(&form, "q");
                let results = state.store.search_offences(&query, 30).await?;
                if results.is_empty() {
                    errors.push(FieldError::new("q", "Aucune infraction ne correspond : essayez un numéro NATINF ou d'autres mots."));
                }
                let lines = results
                    .into_iter()
                    .map(|o| OffenceLine {
                        code: o.code,
                        label: o.label,
                        nature: o.nature,
                    })
                    .collect();
                return redisplay(&state, &user, &referral, step, &form, errors, |page| {
                    page.offence_results = lines;
                    page.offence_query = query;
                })
                .await;
            }
            let done = !(intent.starts_with("add:") || intent.starts_with("remove:"));
            let input = ReferralInput {
                offence_codes: Some(codes),
                ..Default::default()
            };
            return finish(
                &service,
                &state,
                &user,
                &referral,
                step,
                &form,
                input,
                if done { next } else { here },
            )
            .await;
        }
        "parties" => {
            let mut parties = referral.parties.clone();
            if let Some(index) = intent
                .strip_prefix("remove:")
                .and_then(|i| i.parse::<usize>().ok())
            {
                if index < parties.len() {
                    parties.remove(index);
                }
            } else if intent == "add" {
                let mut birth_errors = Vec::new();
                let birth_date = parse_date(&form, "party_birth_date", &mut birth_errors).flatten();
                if !birth_errors.is_empty() {
                    return redisplay(&state, &user, &referral, step, &form, birth_errors, |_| {})
                        .await;
                }
                parties.push(Party {
                    role: field(&form, "party_role"),
                    kind: field(&form, "party_kind"),
                    last_name: optional(&form, "party_last_name"),
                    first_names: optional(&form, "party_first_names"),
                    birth_date,
                    name: optional(&form, "party_name"),
                    siren: optional(&form, "party_siren"),
                    siret: optional(&form, "party_siret"),
                    address: optional(&form, "party_address"),
                });
            } else {
                return Ok(Redirect::to(&next).into_response());
            }
            let input = ReferralInput {
                parties: Some(parties),
                ..Default::default()
            };
            return finish(&service, &state, &user, &referral, step, &form, input, here).await;
        }
        "pieces" => return Ok(Redirect::to(&next).into_response()),
        _ => {
            // Récapitulatif: send.
            return match service.submit(referral.row.id).await {
                Ok(sent) if sent.row.status == Status::AwaitingValidation.as_str() => Ok(
                    Redirect::to(&format!("/saisines/{}?fait=awaiting", sent.row.id))
                        .into_response(),
                ),
                Ok(sent) => Ok(Redirect::to(&format!(
                    "/saisines/{}/accuse-reception",
                    sent.row.id
                ))
                .into_response()),
                Err(AppError::Invalid(errors)) => {
                    redisplay(&state, &user, &referral, step, &form, errors, |_| {}).await
                }
                Err(other) => Err(other.into()),
            };
        }
    };
    finish(&service, &state, &user, &referral, step, &form, input, next).await
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    service: &ReferralService<'_>,
    state: &AppState,
    user: &SessionUser,
    referral: &Referral,
    step: &'static str,
    form: &HashMap<String, String>,
    input: ReferralInput,
    then: String,
) -> Result<Response, PageError> {
    match service.update_draft(referral.row.id, input).await {
        Ok(_) => Ok(Redirect::to(&then).into_response()),
        Err(AppError::Invalid(errors)) => {
            // Party errors name the new party's fields.
            let errors = errors
                .into_iter()
                .map(|e| match e.field.rsplit_once('.') {
                    Some((prefix, name)) if prefix.starts_with("parties[") => {
                        FieldError::new(format!("party_{name}"), e.message)
                    }
                    _ => e,
                })
                .collect();
            redisplay(state, user, referral, step, form, errors, |_| {}).await
        }
        Err(other) => Err(other.into()),
    }
}

/// Uploads one or more documents (multipart), streamed to storage with their SHA-256.
async fn upload(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let service = ReferralService::new(&state, &user.current);
    let referral = service.can_add_attachment(id).await?;
    let mut csrf_checked = false;
    let mut added = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                return Err(AppError::BadRequest(format!("Envoi interrompu : {error}")).into())
            }
        };
        match field.name() {
            Some("csrf_token") => {
                let token = field
                    .text()
                    .await
                    .map_err(|e| AppError::BadRequest(e.to_string()))?;
                user.check_csrf(&token)?;
                csrf_checked = true;
            }
            Some("files") => {
                // The token comes first in the form, so no byte is stored before it is checked.
                if !csrf_checked {
                    return Err(AppError::Forbidden(
                        "Le formulaire a expiré ; rechargez la page et recommencez.".into(),
                    )
                    .into());
                }
                let filename = field.file_name().map(str::to_string).unwrap_or_default();
                if filename.is_empty() {
                    continue;
                }
                let content_type = field.content_type().map(str::to_string);
                let stored = match state.files.store_stream(field).await {
                    Ok(stored) => stored,
                    Err(files::FileError::Empty) => continue,
                    Err(error) => {
                        let error = AppError::from(error);
                        return if referral.status == Status::Draft.as_str() {
                            // Read whole only here, to show the draft's documents step again.
                            let referral = service.load(id).await?;
                            redisplay(
                                &state,
                                &user,
                                &referral,
                                "pieces",
                                &HashMap::new(),
                                vec![FieldError::new("files", error.to_string())],
                                |_| {},
                            )
                            .await
                        } else {
                            super::referral::referral_page(&state, &user, id, None, Some(&error))
                                .await
                        };
                    }
                };
                service
                    .record_attachment(
                        &referral,
                        stored,
                        &filename,
                        content_type.as_deref(),
                        "document",
                    )
                    .await?;
                added += 1;
            }
            _ => {}
        }
    }
    let _ = added;
    if referral.status == Status::Draft.as_str() {
        Ok(Redirect::to(&format!("/saisines/{id}/brouillon/pieces")).into_response())
    } else {
        Ok(Redirect::to(&format!("/saisines/{id}?fait=pieces")).into_response())
    }
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    layout: Layout,
    id: Uuid,
    reference: String,
    submitted_at: String,
    parquet: String,
    administration: String,
    attachments: Vec<(String, String, String)>,
    code: String,
    verify_url: String,
}

async fn receipt_page(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let referral = ReferralService::new(&state, &user.current)
        .load(parse_id(&id)?)
        .await?;
    let receipt = crate::views::ReceiptView::of(&referral)
        .ok_or_else(|| AppError::Conflict("Cette saisine n'a pas encore été transmise.".into()))?;
    Ok(render(&ReceiptPage {
        layout: Layout::of(&user, "list"),
        id: referral.row.id,
        reference: receipt.reference,
        submitted_at: paris_datetime(receipt.submitted_at),
        parquet: receipt.parquet.name,
        administration: referral.administration.name.clone(),
        attachments: receipt
            .attachments
            .into_iter()
            .map(|a| (a.filename, format!("{} octets", a.size), a.sha256))
            .collect(),
        code: receipt.verification_code.clone(),
        verify_url: format!("/verify?code={}", receipt.verification_code),
    }))
}
