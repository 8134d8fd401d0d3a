//! Rows as the rest of the platform sees them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Organisation {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub siret: Option<String>,
    pub court_code: Option<String>,
    pub departement: Option<String>,
    pub requires_validation: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// A user with the organisation it acts for, as authentication finds them.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub user: User,
    pub organisation: Organisation,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParquetRef {
    pub id: Uuid,
    pub name: String,
    pub competence: String,
}

/// A commune that exists, and the parquet competent for it when the competences say.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownCommune {
    pub name: String,
    pub competent: Option<ParquetRef>,
    /// The same parquet as a referral shows it.
    pub parquet: Option<ReferralParquet>,
}

/// A parquet as a referral shows it (`Referral::parquet`, `Referral::deadline_policy`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReferralParquet {
    pub organisation: Organisation,
    pub deadline_policy: domain::calendar::DeadlinePolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommuneHit {
    pub insee: String,
    pub name: String,
    pub departement: String,
    pub postal_codes: Vec<String>,
    pub parquet: Option<ParquetRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Offence {
    pub code: i64,
    pub nature: String,
    pub label: String,
    pub defined_by: String,
    pub punished_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DismissalReason {
    pub code: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ParquetSummary {
    pub id: Uuid,
    pub name: String,
    pub court_code: Option<String>,
    pub departement: Option<String>,
}

/// A person or organisation named in a referral.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct Party {
    pub role: String,
    pub kind: String,
    pub last_name: Option<String>,
    pub first_names: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub name: Option<String>,
    pub siren: Option<String>,
    pub siret: Option<String>,
    pub address: Option<String>,
}

/// Deserialized only from the store's own rows (PostgreSQL's whole-referral read), hence every
/// column read back; the API's JSON leaves the storage key and the wrapped key out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Attachment {
    pub id: Uuid,
    pub referral_id: Uuid,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub kind: String,
    #[serde(skip_serializing)]
    pub storage_key: String,
    pub uploaded_by: Uuid,
    pub uploaded_at: DateTime<Utc>,
    /// The file's key wrapped by the master key; `None` for a file stored in clear.
    #[serde(skip_serializing)]
    pub wrapped_key: Option<String>,
}

/// The fields a sender writes; everything else is set by the platform.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReferralContent {
    pub kind: String,
    pub urgency: String,
    pub title: String,
    pub facts: String,
    pub administration_reference: Option<String>,
    pub facts_started_on: Option<NaiveDate>,
    pub facts_ended_on: Option<NaiveDate>,
    pub commune_insee: Option<String>,
    pub address: Option<String>,
    pub parquet_id: Option<Uuid>,
    pub competence: Option<String>,
    pub competence_reason: Option<String>,
    pub limitation_date: Option<NaiveDate>,
    pub offence_codes: Vec<i64>,
    pub parties: Vec<Party>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: String,
    pub reason_code: Option<String>,
    pub measure: Option<String>,
    pub mode: Option<String>,
    pub comment: Option<String>,
    pub hearing_date: Option<NaiveDate>,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub date: NaiveDate,
    pub outcome: String,
    pub summary: Option<String>,
    pub appeal: bool,
}

/// The referral row itself.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReferralRow {
    pub id: Uuid,
    pub reference: Option<String>,
    pub status: String,
    pub kind: String,
    pub urgency: String,
    pub title: String,
    pub facts: String,
    pub administration_reference: Option<String>,
    pub facts_started_on: Option<NaiveDate>,
    pub facts_ended_on: Option<NaiveDate>,
    pub commune_insee: Option<String>,
    pub address: Option<String>,
    pub administration_id: Uuid,
    pub author_id: Uuid,
    pub parquet_id: Option<Uuid>,
    pub competence: Option<String>,
    pub competence_reason: Option<String>,
    pub assigned_to: Option<Uuid>,
    pub parquet_number: Option<String>,
    pub limitation_date: Option<NaiveDate>,
    pub decision: Option<Json<Decision>>,
    pub judgement: Option<Json<Judgement>>,
    pub status_before_complement: Option<String>,
    pub verification_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub receipt_signature: Option<String>,
    pub notice_signature: Option<String>,
}

/// What decides who may act on a referral and how (`Store::referral_access`): its status, its
/// sender and parquet, and whether its administration validates before sending. A request
/// that only needs to check an action (a document's upload) reads this, not the whole referral.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReferralAccess {
    pub id: Uuid,
    pub status: String,
    pub administration_id: Uuid,
    pub author_id: Uuid,
    pub parquet_id: Option<Uuid>,
    pub status_before_complement: Option<String>,
    pub administration_requires_validation: bool,
}

impl ReferralAccess {
    /// The same facts, from a referral already read whole.
    pub fn of(referral: &Referral) -> ReferralAccess {
        ReferralAccess {
            id: referral.row.id,
            status: referral.row.status.clone(),
            administration_id: referral.row.administration_id,
            author_id: referral.row.author_id,
            parquet_id: referral.row.parquet_id,
            status_before_complement: referral.row.status_before_complement.clone(),
            administration_requires_validation: referral.administration.requires_validation,
        }
    }
}

/// A referral with everything attached to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Referral {
    pub row: ReferralRow,
    pub administration: Organisation,
    pub parquet: Option<Organisation>,
    pub offence_codes: Vec<i64>,
    pub parties: Vec<Party>,
    pub attachments: Vec<Attachment>,
    /// The deadlines of its parquet (the defaults when it has none of its own).
    pub deadline_policy: domain::calendar::DeadlinePolicy,
}

/// One line of a list of referrals.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ReferralSummary {
    pub id: Uuid,
    pub reference: Option<String>,
    pub status: String,
    pub kind: String,
    pub urgency: String,
    pub title: String,
    pub administration_id: Uuid,
    pub administration_name: String,
    pub parquet_id: Option<Uuid>,
    pub parquet_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub limitation_date: Option<NaiveDate>,
    pub assigned_to: Option<Uuid>,
    pub parquet_departement: Option<String>,
    /// The latest timeline entry the viewer may see.
    pub last_event: Option<String>,
    /// The parquet's own deadline settings, when it has set them.
    pub immediate_acknowledge_minutes: Option<i64>,
    pub urgent_acknowledge_hours: Option<i64>,
    pub normal_register_working_days: Option<i64>,
}

impl ReferralSummary {
    /// The deadlines of the referral's parquet.
    pub fn deadline_policy(&self) -> domain::calendar::DeadlinePolicy {
        crate::ParquetSettings::joined(
            self.immediate_acknowledge_minutes,
            self.urgent_acknowledge_hours,
            self.normal_register_working_days,
        )
        .deadline_policy()
    }
}

/// Which referrals a list may contain (the caller's scope) and which it should (the filters).
#[derive(Debug, Clone, Default)]
pub struct ReferralFilter {
    pub administration_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    pub parquet_id: Option<Uuid>,
    /// Parquets never see drafts nor referrals awaiting the référent's validation.
    pub sent_only: bool,
    pub assigned_to: Option<Uuid>,
    pub status: Option<String>,
    /// Any of these statuses (tabs of the inbox).
    pub statuses: Vec<String>,
    pub urgency: Option<String>,
    /// Only urgent and immediate referrals.
    pub urgent_only: bool,
    pub query: Option<String>,
    /// Offence gravity: "crime", "delit" or "contravention" (any offence of the referral).
    pub gravity: Option<String>,
    /// Only referrals whose limitation date falls on or before this day.
    pub limitation_before: Option<NaiveDate>,
    /// Sent (or, for drafts, created) within this period.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Keyset pagination: only referrals created strictly before this (created_at, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub order: ListOrder,
    /// Offset paging, for pages whose order is not the creation order.
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Newest first (the sender's list, the API).
    #[default]
    Newest,
    /// The parquet's inbox: immediate, then urgent, then oldest sent first.
    Inbox,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Event {
    pub id: Uuid,
    pub referral_id: Uuid,
    pub at: DateTime<Utc>,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub audience: String,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub actor_role: String,
    pub actor_organisation: String,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Message {
    pub id: Uuid,
    pub referral_id: Uuid,
    pub internal: bool,
    pub author_id: Uuid,
    pub author_name: String,
    pub author_role: String,
    pub author_organisation: String,
    pub body: String,
    pub at: DateTime<Utc>,
}

/// The person behind an action, as written into the journal.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActorInfo {
    pub user_id: Option<Uuid>,
    pub name: String,
    pub role: String,
    pub organisation: String,
}

/// What a state change writes to the referral. Fields left `None` are not touched.
#[derive(Debug, Clone, Default)]
pub struct ReferralUpdate {
    pub status: Option<String>,
    pub reference: Option<String>,
    pub verification_code: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub parquet_number: Option<String>,
    pub parquet_id: Option<Uuid>,
    pub competence: Option<String>,
    pub assigned_to: Option<Uuid>,
    pub decision: Option<Decision>,
    pub judgement: Option<Judgement>,
    pub status_before_complement: Option<Option<String>>,
    pub receipt_signature: Option<String>,
    pub notice_signature: Option<String>,
    /// A transfer starts the receiving parquet's clock afresh.
    pub clear_parquet_progress: bool,
    /// An escalation: its instant (the count is incremented).
    pub escalated_at: Option<DateTime<Utc>>,
    /// Notifications and e-mails caused by the change, written in the same transaction.
    pub outbox: Vec<crate::OutboxMessage>,
}

/// An entry for the timeline, written in the same transaction as the change it describes.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub audience: String,
    pub summary: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's JSON never shows where a document is stored nor its wrapped key, though the
    /// store reads both back from JSON.
    #[test]
    fn attachments_keep_their_keys_out_of_serialized_json_but_read_them_back() {
        let attachment = Attachment {
            id: Uuid::nil(),
            referral_id: Uuid::nil(),
            filename: "constat.pdf".into(),
            media_type: "application/pdf".into(),
            size: 3,
            sha256: "00".into(),
            kind: "attachment".into(),
            storage_key: "ab/cd".into(),
            uploaded_by: Uuid::nil(),
            uploaded_at: DateTime::<Utc>::UNIX_EPOCH,
            wrapped_key: Some("v1:key".into()),
        };
        let json = serde_json::to_value(&attachment).expect("json");
        assert!(json.get("storage_key").is_none() && json.get("wrapped_key").is_none());
        assert!(json.get("sha256").is_some());
        let mut stored = json;
        stored["storage_key"] = "ab/cd".into();
        stored["wrapped_key"] = "v1:key".into();
        assert_eq!(
            serde_json::from_value::<Attachment>(stored).expect("read back"),
            attachment
        );
    }
}
