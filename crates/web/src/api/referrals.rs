//! Referral endpoints: the sender's and the parquet's, over `service::ReferralService`.

use crate::auth::ApiUser;
use crate::error::{ApiError, AppError};
use crate::service::{DecisionInput, JudgementInput, ReferralInput, ReferralService};
use crate::views::{self, ListView, ReceiptView, ReferralView};
use crate::AppState;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::Role;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use store::ReferralFilter;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/referrals", get(list).post(create))
        .route("/api/v1/referrals/{id}", get(show).patch(update))
        .route("/api/v1/referrals/{id}/attachments", post(upload))
        .route(
            "/api/v1/referrals/{id}/attachments/{attachment_id}",
            get(download),
        )
        .route("/api/v1/referrals/{id}/submit", post(submit))
        .route("/api/v1/referrals/{id}/validate", post(validate))
        .route("/api/v1/referrals/{id}/return", post(return_to_draft))
        .route("/api/v1/referrals/{id}/withdraw", post(withdraw))
        .route("/api/v1/referrals/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/referrals/{id}/register", post(register))
        .route("/api/v1/referrals/{id}/assign", post(assign))
        .route(
            "/api/v1/referrals/{id}/request-complement",
            post(request_complement),
        )
        .route("/api/v1/referrals/{id}/complement", post(answer_complement))
        .route(
            "/api/v1/referrals/{id}/investigation",
            post(open_investigation),
        )
        .route("/api/v1/referrals/{id}/transfer", post(transfer))
        .route("/api/v1/referrals/{id}/decision", post(decide))
        .route(
            "/api/v1/referrals/{id}/measure-outcome",
            post(measure_outcome),
        )
        .route("/api/v1/referrals/{id}/judgement", post(judgement))
        .route("/api/v1/referrals/{id}/close", post(close))
        .route("/api/v1/referrals/{id}/notes", post(add_note))
        .route(
            "/api/v1/referrals/{id}/messages",
            get(messages).post(post_message),
        )
        .route("/api/v1/referrals/{id}/events", get(events))
        .route("/api/v1/referrals/{id}/receipt.pdf", get(receipt_pdf))
        .route(
            "/api/v1/referrals/{id}/decision-notice.pdf",
            get(decision_notice_pdf),
        )
        .route("/api/v1/referrals/{id}/export.zip", get(export_zip))
        .route("/api/v1/referrals/{id}/news-request", post(request_news))
        .route("/api/v1/receipts/{code}", get(verify_receipt))
        .route("/api/v1/audit/checkpoints", get(checkpoints))
        .route("/.well-known/infoparquet-signing-key", get(signing_key))
}

/// JSON body whose rejections are answered as problem+json.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::UnsupportedMediaType(
                "envoyez du JSON (Content-Type: application/json)".into(),
            )
            .into()),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(AppError::invalid("body", e.body_text()).into())
            }
            Err(e) => {
                Err(AppError::BadRequest(format!("JSON mal formé : {}", e.body_text())).into())
            }
        }
    }
}

/// Parses the path id; a malformed id is as unknown as a missing one.
fn parse_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    urgency: Option<String>,
    q: Option<String>,
    parquet_id: Option<Uuid>,
    administration_id: Option<Uuid>,
    overdue: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
pub struct Named {
    id: Uuid,
    name: String,
}

#[derive(Serialize)]
pub struct ReferralItem {
    id: Uuid,
    reference: Option<String>,
    status: String,
    kind: String,
    urgency: String,
    title: String,
    administration: Named,
    parquet: Option<Named>,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    acknowledged_at: Option<DateTime<Utc>>,
    registered_at: Option<DateTime<Utc>>,
    limitation_date: Option<chrono::NaiveDate>,
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.to_rfc3339()))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), AppError> {
    let invalid = || AppError::invalid("cursor", "Curseur de pagination invalide.");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, id) = text.split_once('|').ok_or_else(invalid)?;
    Ok((
        DateTime::parse_from_rfc3339(at)
            .map_err(|_| invalid())?
            .with_timezone(&Utc),
        id.parse().map_err(|_| invalid())?,
    ))
}

/// The caller's scope: what it may list at all.
pub fn scope_filter(user: &crate::auth::CurrentUser) -> Result<ReferralFilter, AppError> {
    let mut filter = ReferralFilter::default();
    match user.role {
        Role::Agent => {
            filter.administration_id = Some(user.organisation.id);
            filter.author_id = Some(user.user.id);
        }
        Role::Referent => filter.administration_id = Some(user.organisation.id),
        Role::Clerk | Role::Prosecutor => {
            filter.parquet_id = Some(user.organisation.id);
            filter.sent_only = true;
        }
        Role::Admin => {
            return Err(AppError::Forbidden(
                "Les administrateurs de la plateforme n'ont pas accès au contenu des saisines."
                    .into(),
            ))
        }
    }
    Ok(filter)
}

async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<ListView<ReferralItem>>, ApiError> {
    let mut filter = scope_filter(&user)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            "La taille de page doit être comprise entre 1 et 200.",
        )
        .into());
    }
    if let Some(status) = &query.status {
        domain::Status::parse(status)
            .ok_or_else(|| AppError::invalid("status", "Statut inconnu."))?;
    }
    if let Some(urgency) = &query.urgency {
        domain::Urgency::parse(urgency)
            .ok_or_else(|| AppError::invalid("urgency", "Urgence inconnue."))?;
    }
    // Filters narrow the scope; they never widen it.
    if let Some(parquet_id) = query.parquet_id {
        if filter.parquet_id.is_some_and(|own| own != parquet_id) {
            return Ok(Json(ListView {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
        filter.parquet_id = Some(parquet_id);
    }
    if let Some(administration_id) = query.administration_id {
        if filter
            .administration_id
            .is_some_and(|own| own != administration_id)
        {
            return Ok(Json(ListView {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
        filter.administration_id = Some(administration_id);
    }
    filter.status = query.status;
    filter.urgency = query.urgency;
    filter.query = query.q;
    filter.before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    filter.limit = limit + 1;
    let mut rows = state.store.list_referrals(&filter).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(r.created_at, r.id))
    } else {
        None
    };
    let now = state.now();
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        // Deadlines depend on business calendars and the parquet's settings: computed here, on
        // the page's rows (a page may then hold fewer items than `limit`; follow the cursor).
        if query.overdue == Some(true)
            && !views::summary_deadline(&row, now).is_some_and(|d| d.overdue)
        {
            continue;
        }
        items.push(ReferralItem {
            id: row.id,
            reference: row.reference,
            status: row.status,
            kind: row.kind,
            urgency: row.urgency,
            title: row.title,
            administration: Named {
                id: row.administration_id,
                name: row.administration_name,
            },
            parquet: row
                .parquet_id
                .zip(row.parquet_name)
                .map(|(id, name)| Named { id, name }),
            created_at: row.created_at,
            submitted_at: row.submitted_at,
            acknowledged_at: row.acknowledged_at,
            registered_at: row.registered_at,
            limitation_date: row.limitation_date,
        });
    }
    Ok(Json(ListView { items, next_cursor }))
}

fn referral_json(state: &AppState, referral: &store::Referral, role: Role) -> Json<ReferralView> {
    Json(ReferralView::new(referral, role, state.now()))
}

async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(input): ApiJson<ReferralInput>,
) -> Result<Response, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .create_draft(input)
        .await?;
    let location = format!("/api/v1/referrals/{}", referral.row.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        referral_json(&state, &referral, user.role),
    )
        .into_response())
}

async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .read(parse_id(&id)?)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn update(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ReferralInput>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .update_draft(parse_id(&id)?, input)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

#[derive(Deserialize)]
pub struct UploadQuery {
    filename: Option<String>,
    kind: Option<String>,
}

const ATTACHMENT_KINDS: &[&str] = &[
    "report",
    "evidence",
    "photo",
    "complement",
    "other",
    "document",
];

async fn upload(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let service = ReferralService::new(&state, &user);
    let referral = service.can_add_attachment(parse_id(&id)?).await?;
    let filename = query
        .filename
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| {
            AppError::invalid("filename", "Indiquez le nom du fichier (?filename=…).")
        })?;
    let kind = query.kind.unwrap_or_else(|| "document".into());
    if !ATTACHMENT_KINDS.contains(&kind.as_str()) {
        return Err(AppError::invalid(
            "kind",
            format!(
                "Nature de pièce inconnue ; valeurs : {}.",
                ATTACHMENT_KINDS.join(", ")
            ),
        )
        .into());
    }
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > state.files.max_size()) {
        return Err(AppError::TooLarge(state.files.max_size()).into());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let stored = state.files.store_stream(body.into_data_stream()).await?;
    let attachment = service
        .record_attachment(&referral, stored, &filename, content_type.as_deref(), &kind)
        .await?;
    let view = views::AttachmentView {
        id: attachment.id,
        filename: attachment.filename,
        media_type: attachment.media_type,
        size: attachment.size,
        sha256: attachment.sha256,
        kind: attachment.kind,
        uploaded_at: attachment.uploaded_at,
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Streams a document back as an attachment (never rendered inline by the API).
pub async fn stream_attachment(
    state: &AppState,
    attachment: &store::Attachment,
    inline: bool,
) -> Result<Response, AppError> {
    let mut stream = Box::pin(
        state
            .files
            .stream(&attachment.storage_key, attachment.wrapped_key.as_deref())?,
    );
    // The first segment is checked before anything is sent, so a damaged small document is a
    // clear error rather than a cut connection (a later damaged segment cuts the transfer).
    let first = match futures_util::StreamExt::next(&mut stream).await {
        Some(Ok(chunk)) => chunk,
        Some(Err(error)) => {
            return Err(AppError::Internal(format!(
                "attachment {} unreadable: {error}",
                attachment.id
            )))
        }
        None => bytes::Bytes::new(),
    };
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(first)]),
        stream,
    );
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        attachment
            .filename
            .replace(['"', '\\'], "_")
            .chars()
            .filter(char::is_ascii)
            .collect::<String>(),
        urlencoding::encode(&attachment.filename)
    );
    Ok((
        [
            (header::CONTENT_TYPE, attachment.media_type.clone()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, attachment.size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(bytes::Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}

async fn download(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let service = ReferralService::new(&state, &user);
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
    Ok(stream_attachment(&state, &attachment, false).await?)
}

#[derive(Serialize)]
pub struct SubmitResponse {
    referral: ReferralView,
    receipt: Option<ReceiptView>,
}

async fn submit(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<SubmitResponse>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .submit(parse_id(&id)?)
        .await?;
    Ok(Json(SubmitResponse {
        receipt: ReceiptView::of(&referral),
        referral: ReferralView::new(&referral, user.role, state.now()),
    }))
}

async fn validate(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<SubmitResponse>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .validate(parse_id(&id)?)
        .await?;
    Ok(Json(SubmitResponse {
        receipt: ReceiptView::of(&referral),
        referral: ReferralView::new(&referral, user.role, state.now()),
    }))
}

#[derive(Deserialize)]
pub struct CommentBody {
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize)]
pub struct MessageBody {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
pub struct BodyText {
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
pub struct RegisterBody {
    #[serde(default)]
    parquet_number: String,
}

#[derive(Deserialize)]
pub struct AssignBody {
    user_id: Uuid,
}

#[derive(Deserialize)]
pub struct TransferBody {
    parquet_id: Uuid,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub struct MeasureOutcomeBody {
    success: bool,
    mode: Option<String>,
}

async fn return_to_draft(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommentBody>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .return_to_draft(parse_id(&id)?, &body.comment)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn withdraw(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .withdraw(parse_id(&id)?)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn acknowledge(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .acknowledge(parse_id(&id)?)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn register(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .register(parse_id(&id)?, &body.parquet_number)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn assign(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .assign(parse_id(&id)?, body.user_id)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn request_complement(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .request_complement(parse_id(&id)?, &body.message)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn answer_complement(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .answer_complement(parse_id(&id)?, &body.message)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn open_investigation(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .open_investigation(parse_id(&id)?)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn transfer(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .transfer(parse_id(&id)?, body.parquet_id, &body.reason)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn decide(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionInput>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .decide(parse_id(&id)?, body)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn measure_outcome(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MeasureOutcomeBody>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .measure_outcome(parse_id(&id)?, body.success, body.mode)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn judgement(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<JudgementInput>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .judgement(parse_id(&id)?, body)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn close(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .close(parse_id(&id)?)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}

async fn add_note(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BodyText>,
) -> Result<Response, ApiError> {
    let note = ReferralService::new(&state, &user)
        .add_note(parse_id(&id)?, &body.body)
        .await?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

async fn messages(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ListView<store::Message>>, ApiError> {
    let items = ReferralService::new(&state, &user)
        .messages(parse_id(&id)?)
        .await?;
    Ok(Json(ListView {
        items,
        next_cursor: None,
    }))
}

async fn post_message(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BodyText>,
) -> Result<Response, ApiError> {
    let message = ReferralService::new(&state, &user)
        .post_message(parse_id(&id)?, &body.body)
        .await?;
    Ok((StatusCode::CREATED, Json(message)).into_response())
}

#[derive(Serialize)]
pub struct Actor {
    name: String,
    role: String,
    organisation: String,
}

#[derive(Serialize)]
pub struct EventView {
    at: DateTime<Utc>,
    #[serde(rename = "type")]
    event_type: String,
    actor: Actor,
    summary: String,
}

async fn events(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let events = ReferralService::new(&state, &user)
        .events(parse_id(&id)?)
        .await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| EventView {
                at: e.at,
                event_type: e.event_type,
                actor: Actor {
                    name: e.actor_name,
                    role: e.actor_role,
                    organisation: e.actor_organisation,
                },
                summary: e.summary,
            })
            .collect(),
    ))
}

pub fn pdf_response(bytes: Vec<u8>, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn receipt_pdf(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let service = ReferralService::new(&state, &user);
    let referral = service.load(parse_id(&id)?).await?;
    service
        .journal(
            "receipt.download",
            format!("referral:{}", referral.row.id),
            String::new(),
        )
        .await?;
    let (bytes, filename) = crate::pages::documents::receipt(&state, &referral).await?;
    Ok(pdf_response(bytes, &filename))
}

async fn decision_notice_pdf(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let service = ReferralService::new(&state, &user);
    let referral = service.load(parse_id(&id)?).await?;
    service
        .journal(
            "notice.download",
            format!("referral:{}", referral.row.id),
            String::new(),
        )
        .await?;
    let (bytes, filename) = crate::pages::documents::decision_notice(&state, &referral).await?;
    Ok(pdf_response(bytes, &filename))
}

/// A certified document as the public sees it: its size and hash, never its name (filenames
/// often carry personal data).
#[derive(Serialize)]
pub struct CertifiedDocument {
    size: i64,
    sha256: String,
}

#[derive(Serialize)]
pub struct ReceiptCheck {
    /// True when the platform's Ed25519 signature still matches what the receipt certifies.
    genuine: bool,
    signature: Option<String>,
    public_key: String,
    reference: String,
    submitted_at: DateTime<Utc>,
    parquet: String,
    attachments: Vec<CertifiedDocument>,
}

/// Public: whether a receipt is genuine and what it certifies, without personal data.
async fn verify_receipt(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<ReceiptCheck>, ApiError> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() > 32 {
        return Err(AppError::NotFound.into());
    }
    let referral = state
        .store
        .referral_by_verification_code(&code)
        .await?
        .ok_or(AppError::NotFound)?;
    let receipt = ReceiptView::of(&referral).ok_or(AppError::NotFound)?;
    let public_key = state.signer.public_key();
    Ok(Json(ReceiptCheck {
        genuine: views::receipt_signature_valid(&referral, &public_key),
        signature: referral.row.receipt_signature.clone(),
        public_key,
        reference: receipt.reference,
        submitted_at: receipt.submitted_at,
        parquet: receipt.parquet.name,
        attachments: receipt
            .attachments
            .into_iter()
            .map(|a| CertifiedDocument {
                size: a.size,
                sha256: a.sha256,
            })
            .collect(),
    }))
}

/// Public: the platform's signing key, so that anyone can check receipts, notices and journal
/// checkpoints.
async fn signing_key(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "algorithm": "Ed25519",
        "public_key": state.signer.public_key(),
        "encoding": "base64",
        "signs": ["receipts (infoparquet-receipt-v1)", "decision notices (infoparquet-notice-v1)", "journal checkpoints (infoparquet-audit-checkpoint-v1)"]
    }))
}

/// Public: the signed checkpoints of the journal (sequence number, chain hash, instant,
/// signature). They reveal nothing of the entries themselves.
async fn checkpoints(
    State(state): State<AppState>,
) -> Result<Json<Vec<store::AuditCheckpoint>>, ApiError> {
    Ok(Json(state.store.audit_checkpoints().await?))
}

/// The package for the parquet's case-management chain (parquet roles only).
pub async fn export_response(
    state: &AppState,
    user: &crate::auth::CurrentUser,
    id: Uuid,
) -> Result<Response, AppError> {
    if !user.role.is_parquet() {
        return Err(AppError::Forbidden(
            "L'export vers la chaîne pénale est réservé au parquet.".into(),
        ));
    }
    let service = ReferralService::new(state, user);
    let referral = service.load(id).await?;
    let events = state.store.events(id).await?;
    let file = crate::export::build(state, &referral, &events).await?;
    service
        .journal(
            "referral.exported",
            format!("referral:{id}"),
            crate::export::SCHEMA.into(),
        )
        .await?;
    let name = referral
        .row
        .reference
        .clone()
        .unwrap_or_else(|| id.to_string());
    let stream = tokio_util_stream(tokio::fs::File::from_std(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"export-{name}.zip\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn export_zip(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(export_response(&state, &user, parse_id(&id)?).await?)
}

async fn request_news(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<ReferralView>, ApiError> {
    let referral = ReferralService::new(&state, &user)
        .request_news(parse_id(&id)?)
        .await?;
    Ok(referral_json(&state, &referral, user.role))
}
