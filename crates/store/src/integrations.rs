//! What organisations plug into the platform: API tokens (listed and revoked per organisation)
//! and webhooks, whose deliveries are jobs of kind `webhook` in the outbox, written in the same
//! transaction as the timeline entry they announce.

use crate::{on_pool, on_writer, ApiToken, Store, StoreResult};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A token with the name of the person it acts as.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OrganisationToken {
    #[sqlx(flatten)]
    pub token: ApiToken,
    pub owner_name: String,
}

/// A URL an organisation asked to be called on its referrals' events.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub url: String,
    /// Space-separated event types (`referral.registered`…), or `*` for all.
    pub event_types: String,
    /// `whsec_` followed by the base64 key (the Standard Webhooks format).
    #[serde(skip)]
    pub secret: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// Whether a webhook subscribed to `event_types` (space-separated, or `*`) receives `event_type`.
pub fn wants_event(event_types: &str, event_type: &str) -> bool {
    event_types
        .split_whitespace()
        .any(|t| t == "*" || t == event_type)
}

/// What a webhook job carries: the exact body, so that a retry or a replay sends the same bytes
/// under the same message id.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WebhookMessage {
    pub webhook_id: Uuid,
    pub message_id: String,
    pub event_type: String,
    pub body: String,
}

/// One delivery of a webhook, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

impl WebhookDelivery {
    pub fn message(&self) -> Option<WebhookMessage> {
        serde_json::from_str(&self.payload).ok()
    }
}

/// The referral (bound as `$2`) and its organisations' active webhooks, as
/// `enqueue_webhooks!` takes them: usually none. Read by the statement that writes each
/// timeline entry, in the same round trip.
pub(crate) const WEBHOOKS_OF_REFERRAL: &str =
    "SELECT r.reference, r.status, r.administration_id, r.parquet_id, w.id, w.organisation_id, w.event_types \
     FROM referrals r JOIN webhooks w ON w.disabled_at IS NULL \
     AND (w.organisation_id = r.administration_id OR w.organisation_id = r.parquet_id) \
     WHERE r.id = $2 ORDER BY w.created_at, w.id";

/// A row of `WEBHOOKS_OF_REFERRAL`.
pub(crate) type WebhookOfReferral = (
    Option<String>,
    String,
    uuid::Uuid,
    Option<uuid::Uuid>,
    uuid::Uuid,
    uuid::Uuid,
    String,
);

/// Queues a delivery for every active webhook (`hooks`, rows of `WEBHOOKS_OF_REFERRAL`) of
/// the organisations that may see this timeline entry (the sender's administration, the
/// parquet), inside the caller's transaction.
macro_rules! enqueue_webhooks {
    ($tx:expr, $hooks:expr, $referral_id:expr, $at:expr, $event:expr) => {{
        let hooks: Vec<$crate::integrations::WebhookOfReferral> = $hooks;
        let audience: &str = &$event.audience;
        let event_type = format!("referral.{}", $event.event_type);
        for (reference, status, administration_id, parquet_id, webhook_id, organisation_id, event_types) in hooks {
            let sent = status != "draft" && status != "awaiting_validation";
            let for_sender = organisation_id == administration_id
                && (audience == "everyone" || audience == "sender");
            let for_parquet = sent
                && Some(organisation_id) == parquet_id
                && (audience == "everyone" || audience == "parquet");
            if !(for_sender || for_parquet) || !$crate::integrations::wants_event(&event_types, &event_type) {
                continue;
            }
            let message_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
            // Identifiers and status only: the receiver reads the rest through the API,
            // under its own token's rights.
            let body = serde_json::json!({
                "type": event_type,
                "timestamp": domain::integrity::canonical_instant($at),
                "data": {
                    "referral_id": $referral_id,
                    "reference": reference,
                    "status": status,
                }
            })
            .to_string();
            let message = $crate::integrations::WebhookMessage {
                webhook_id,
                message_id,
                event_type: event_type.clone(),
                body,
            };
            sqlx::query(
                "INSERT INTO jobs (id, kind, payload, status, attempts, run_at, created_at, webhook_id) \
                 VALUES ($1, 'webhook', $2, 'pending', 0, $3, $3, $4)",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(serde_json::to_string(&message).unwrap_or_default())
            .bind($at)
            .bind(webhook_id)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(crate) use enqueue_webhooks;

const WEBHOOK_COLUMNS: &str =
    "id, organisation_id, url, event_types, secret, created_by, created_at, disabled_at";

impl Store {
    /// Every token acting as a member of the organisation, newest first.
    pub async fn api_tokens_of_organisation(
        &self,
        organisation_id: Uuid,
    ) -> StoreResult<Vec<OrganisationToken>> {
        let sql = "SELECT t.id, t.user_id, t.name, t.scope, t.created_at, t.expires_at, t.revoked_at, t.last_used_at, \
                   u.display_name AS owner_name FROM api_tokens t JOIN users u ON u.id = t.user_id \
                   WHERE u.organisation_id = $1 ORDER BY t.created_at DESC";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(organisation_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Revokes a token of the organisation; false when there is no such active token there.
    pub async fn revoke_api_token(
        &self,
        organisation_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let sql = "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND revoked_at IS NULL \
                   AND user_id IN (SELECT id FROM users WHERE organisation_id = $2)";
        let changed = on_writer!(self, |conn| sqlx::query(sql)
            .bind(id)
            .bind(organisation_id)
            .bind(now)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    pub async fn create_webhook(&self, hook: &Webhook) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        on_writer!(self, |conn| sqlx::query(&sql)
            .bind(hook.id)
            .bind(hook.organisation_id)
            .bind(&hook.url)
            .bind(&hook.event_types)
            .bind(&hook.secret)
            .bind(hook.created_by)
            .bind(hook.created_at)
            .bind(hook.disabled_at)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn webhooks_of_organisation(
        &self,
        organisation_id: Uuid,
    ) -> StoreResult<Vec<Webhook>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organisation_id = $1 ORDER BY created_at DESC"
        );
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(organisation_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Any webhook by id (for the worker, which signs with its secret).
    pub async fn webhook(&self, id: Uuid) -> StoreResult<Option<Webhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1");
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Stops a webhook: nothing more is queued for it and its pending deliveries give up.
    pub async fn disable_webhook(
        &self,
        organisation_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let sql = "UPDATE webhooks SET disabled_at = $3 WHERE id = $1 AND organisation_id = $2 AND disabled_at IS NULL";
        let changed = on_writer!(self, |conn| sqlx::query(sql)
            .bind(id)
            .bind(organisation_id)
            .bind(now)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// The latest deliveries of a webhook.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: Uuid,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let sql = "SELECT id, payload, status, attempts, run_at, last_error, created_at, done_at FROM jobs \
                   WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(webhook_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Queues a delivery again, same body and message id (receivers deduplicate on it), for a
    /// webhook of the organisation that is still active. False when there is no such delivery.
    pub async fn replay_webhook_delivery(
        &self,
        organisation_id: Uuid,
        delivery_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let sql = "INSERT INTO jobs (id, kind, payload, status, attempts, run_at, created_at, webhook_id) \
                   SELECT $1, j.kind, j.payload, 'pending', 0, $2, $2, j.webhook_id FROM jobs j JOIN webhooks w ON w.id = j.webhook_id \
                   WHERE j.id = $3 AND w.organisation_id = $4 AND w.disabled_at IS NULL";
        let inserted = on_writer!(self, |conn| sqlx::query(sql)
            .bind(Uuid::now_v7())
            .bind(now)
            .bind(delivery_id)
            .bind(organisation_id)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(inserted == 1)
    }
}
