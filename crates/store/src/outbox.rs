//! Notifications (in-app), the outbox of e-mails (a jobs table claimed by workers), the on-call
//! rota, escalation contacts and per-parquet deadlines.

use crate::{on_pool, on_writer, Store, StoreResult, User};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Something to tell someone, written in the same transaction as its cause: an in-app
/// notification for a user, and an e-mail when an address is given.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub referral_id: Option<Uuid>,
    pub kind: String,
    /// Short, with the reference, never confidential content.
    pub title: String,
    pub link: String,
    pub email_body: Option<EmailPayload>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailPayload {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub referral_id: Option<Uuid>,
    pub kind: String,
    pub title: String,
    pub link: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OnCallShift {
    pub id: Uuid,
    pub parquet_id: Uuid,
    pub user_id: Uuid,
    pub user_name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EscalationContact {
    pub id: Uuid,
    pub parquet_id: Uuid,
    pub name: String,
    pub function: String,
    pub email: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ParquetSettings {
    pub immediate_acknowledge_minutes: i64,
    pub urgent_acknowledge_hours: i64,
    pub normal_register_working_days: i64,
    pub escalation_interval_minutes: i64,
}

impl Default for ParquetSettings {
    fn default() -> Self {
        ParquetSettings {
            immediate_acknowledge_minutes: 60,
            urgent_acknowledge_hours: 24,
            normal_register_working_days: 10,
            escalation_interval_minutes: 30,
        }
    }
}

impl ParquetSettings {
    /// Settings read through an outer join: the defaults for whatever the parquet has not set.
    pub(crate) fn joined(
        immediate_acknowledge_minutes: Option<i64>,
        urgent_acknowledge_hours: Option<i64>,
        normal_register_working_days: Option<i64>,
    ) -> ParquetSettings {
        let defaults = ParquetSettings::default();
        ParquetSettings {
            immediate_acknowledge_minutes: immediate_acknowledge_minutes
                .unwrap_or(defaults.immediate_acknowledge_minutes),
            urgent_acknowledge_hours: urgent_acknowledge_hours
                .unwrap_or(defaults.urgent_acknowledge_hours),
            normal_register_working_days: normal_register_working_days
                .unwrap_or(defaults.normal_register_working_days),
            ..defaults
        }
    }

    /// The deadlines these settings give; out-of-range values fall back to safe bounds.
    pub fn deadline_policy(&self) -> domain::calendar::DeadlinePolicy {
        domain::calendar::DeadlinePolicy {
            immediate_acknowledge_minutes: self.immediate_acknowledge_minutes.max(1),
            urgent_acknowledge_hours: self.urgent_acknowledge_hours.max(1),
            normal_register_working_days: u32::try_from(self.normal_register_working_days)
                .unwrap_or(10)
                .max(1),
        }
    }
}

/// A referral overdue for acknowledgement, as the escalation worker sees it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AcknowledgementDue {
    pub id: Uuid,
    pub reference: Option<String>,
    pub urgency: String,
    pub parquet_id: Uuid,
    pub submitted_at: DateTime<Utc>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub escalation_count: i64,
}

/// Writes outbox messages inside the caller's transaction.
macro_rules! write_outbox {
    ($tx:expr, $messages:expr, $now:expr) => {{
        for message in $messages {
            let message: &$crate::outbox::OutboxMessage = message;
            if let Some(user_id) = message.user_id {
                sqlx::query("INSERT INTO notifications (id, user_id, referral_id, kind, title, link, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(uuid::Uuid::now_v7())
                    .bind(user_id)
                    .bind(message.referral_id)
                    .bind(&message.kind)
                    .bind(&message.title)
                    .bind(&message.link)
                    .bind($now)
                    .execute(&mut *$tx)
                    .await?;
            }
            if let Some(email) = &message.email_body {
                let payload = serde_json::to_string(email).unwrap_or_default();
                sqlx::query("INSERT INTO jobs (id, kind, payload, status, attempts, run_at, created_at) VALUES ($1, 'email', $2, 'pending', 0, $3, $3)")
                    .bind(uuid::Uuid::now_v7())
                    .bind(payload)
                    .bind($now)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}
pub(crate) use write_outbox;

impl Store {
    /// Writes outbox messages on their own (when no other change goes with them).
    pub async fn enqueue(&self, messages: &[OutboxMessage], now: DateTime<Utc>) -> StoreResult<()> {
        on_writer!(self, |conn| {
            let mut tx = conn.begin().await?;
            write_outbox!(tx, messages, now);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Claims up to `limit` due jobs for `lease`: a claimed job is invisible to other workers
    /// until the lease ends. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several instances claim
    /// side by side without waiting or double-claiming; SQLite has a single writer.
    pub async fn claim_jobs(
        &self,
        kind: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> StoreResult<Vec<Job>> {
        let until = now + lease;
        // PostgreSQL workers may run side by side: each claims rows the others have not
        // locked. SQLite has one writer.
        let jobs = on_writer!(self, |conn, Db| {
            let skip_locked = if crate::is_postgres::<Db>() {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            };
            sqlx::query_as(&format!(
                "UPDATE jobs SET locked_until = $1, attempts = attempts + 1 WHERE id IN ( \
                   SELECT id FROM jobs WHERE kind = $4 AND status = 'pending' AND run_at <= $2 AND (locked_until IS NULL OR locked_until <= $2) \
                   ORDER BY run_at LIMIT $3{skip_locked}) \
                 RETURNING id, kind, payload, attempts, run_at, created_at"
            ))
            .bind(until)
            .bind(now)
            .bind(limit)
            .bind(kind)
            .fetch_all(conn)
            .await
        })?;
        Ok(jobs)
    }

    pub async fn complete_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        on_writer!(self, |conn| {
            sqlx::query("UPDATE jobs SET status = 'done', done_at = $2, locked_until = NULL, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Puts a job back for a later attempt, or gives up on it (`give_up`).
    pub async fn retry_job(
        &self,
        id: Uuid,
        run_at: DateTime<Utc>,
        error: &str,
        give_up: bool,
    ) -> StoreResult<()> {
        let status = if give_up { "failed" } else { "pending" };
        on_writer!(self, |conn| {
            sqlx::query("UPDATE jobs SET status = $2, run_at = $3, locked_until = NULL, last_error = $4 WHERE id = $1")
            .bind(id)
            .bind(status)
            .bind(run_at)
            .bind(error)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Jobs by status: (pending, done, failed).
    pub async fn job_counts(&self) -> StoreResult<(i64, i64, i64)> {
        let sql = "SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'pending'), (SELECT COUNT(*) FROM jobs WHERE status = 'done'), \
                   (SELECT COUNT(*) FROM jobs WHERE status = 'failed')";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_one(pool)
            .await)?)
    }

    /// Jobs waiting and jobs given up: (pending, failed). Read from the `jobs_status` index.
    pub async fn job_backlog(&self) -> StoreResult<(i64, i64)> {
        let sql = "SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'pending'), \
                   (SELECT COUNT(*) FROM jobs WHERE status = 'failed')";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_one(pool)
            .await)?)
    }

    pub async fn notifications(&self, user_id: Uuid, limit: i64) -> StoreResult<Vec<Notification>> {
        let sql = "SELECT id, user_id, referral_id, kind, title, link, created_at, read_at FROM notifications \
                   WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn unread_notifications(&self, user_id: Uuid) -> StoreResult<i64> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL"
        )
        .bind(user_id)
        .fetch_one(pool)
        .await)?)
    }

    pub async fn mark_notifications_read(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "UPDATE notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL"
        )
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn set_email_notifications(&self, user_id: Uuid, enabled: bool) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "UPDATE users SET email_notifications = $2 WHERE id = $1"
        )
        .bind(user_id)
        .bind(enabled)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn email_notifications_enabled(&self, user_id: Uuid) -> StoreResult<bool> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT email_notifications FROM users WHERE id = $1"
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await)?
        .unwrap_or(false))
    }

    /// Which of `user_ids` want e-mails, in one query (a parquet may have dozens of clerks to
    /// tell of each referral).
    pub async fn wanting_email(
        &self,
        user_ids: &[Uuid],
    ) -> StoreResult<std::collections::HashSet<Uuid>> {
        if user_ids.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let wanting: Vec<Uuid> = on_pool!(self, |pool, Db| {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "SELECT id FROM users WHERE email_notifications AND id IN (",
            );
            let mut list = q.separated(", ");
            for id in user_ids {
                list.push_bind(*id);
            }
            q.push(")");
            q.build_query_scalar().fetch_all(pool).await
        })?;
        Ok(wanting.into_iter().collect())
    }

    pub async fn add_shift(&self, shift: &OnCallShift, now: DateTime<Utc>) -> StoreResult<()> {
        on_writer!(self, |conn| {
            sqlx::query(
            "INSERT INTO on_call_shifts (id, parquet_id, user_id, starts_at, ends_at, phone, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(shift.id)
        .bind(shift.parquet_id)
        .bind(shift.user_id)
        .bind(shift.starts_at)
        .bind(shift.ends_at)
        .bind(&shift.phone)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn delete_shift(&self, parquet_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let deleted = on_writer!(self, |conn| sqlx::query(
            "DELETE FROM on_call_shifts WHERE id = $1 AND parquet_id = $2"
        )
        .bind(id)
        .bind(parquet_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(deleted > 0)
    }

    /// Shifts of a parquet that end after `after`, soonest first.
    pub async fn shifts(
        &self,
        parquet_id: Uuid,
        after: DateTime<Utc>,
    ) -> StoreResult<Vec<OnCallShift>> {
        let sql = "SELECT s.id, s.parquet_id, s.user_id, u.display_name AS user_name, s.starts_at, s.ends_at, s.phone \
                   FROM on_call_shifts s JOIN users u ON u.id = s.user_id WHERE s.parquet_id = $1 AND s.ends_at > $2 ORDER BY s.starts_at";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(parquet_id)
            .bind(after)
            .fetch_all(pool)
            .await)?)
    }

    /// Who is on call at `now`, with their account.
    pub async fn on_call_now(
        &self,
        parquet_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(OnCallShift, User)>> {
        let mut result = Vec::new();
        for shift in self
            .shifts(parquet_id, now)
            .await?
            .into_iter()
            .filter(|s| s.starts_at <= now)
        {
            if let Some(user) = self.user(shift.user_id).await? {
                result.push((shift, user));
            }
        }
        Ok(result)
    }

    pub async fn add_escalation_contact(
        &self,
        contact: &EscalationContact,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_writer!(self, |conn| {
            sqlx::query(
            "INSERT INTO escalation_contacts (id, parquet_id, name, function, email, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(contact.id)
        .bind(contact.parquet_id)
        .bind(&contact.name)
        .bind(&contact.function)
        .bind(&contact.email)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn delete_escalation_contact(&self, parquet_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let deleted = on_writer!(self, |conn| sqlx::query(
            "DELETE FROM escalation_contacts WHERE id = $1 AND parquet_id = $2"
        )
        .bind(id)
        .bind(parquet_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(deleted > 0)
    }

    pub async fn escalation_contacts(
        &self,
        parquet_id: Uuid,
    ) -> StoreResult<Vec<EscalationContact>> {
        let sql = "SELECT id, parquet_id, name, function, email FROM escalation_contacts WHERE parquet_id = $1 ORDER BY name";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(parquet_id)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn parquet_settings(&self, parquet_id: Uuid) -> StoreResult<ParquetSettings> {
        let sql = "SELECT immediate_acknowledge_minutes, urgent_acknowledge_hours, normal_register_working_days, escalation_interval_minutes \
                   FROM parquet_settings WHERE parquet_id = $1";
        let found: Option<ParquetSettings> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(parquet_id)
            .fetch_optional(pool)
            .await)?;
        Ok(found.unwrap_or_default())
    }

    pub async fn set_parquet_settings(
        &self,
        parquet_id: Uuid,
        settings: &ParquetSettings,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO parquet_settings (parquet_id, immediate_acknowledge_minutes, urgent_acknowledge_hours, normal_register_working_days, escalation_interval_minutes) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (parquet_id) DO UPDATE SET immediate_acknowledge_minutes = excluded.immediate_acknowledge_minutes, \
                   urgent_acknowledge_hours = excluded.urgent_acknowledge_hours, normal_register_working_days = excluded.normal_register_working_days, \
                   escalation_interval_minutes = excluded.escalation_interval_minutes";
        on_writer!(self, |conn| sqlx::query(sql)
            .bind(parquet_id)
            .bind(settings.immediate_acknowledge_minutes)
            .bind(settings.urgent_acknowledge_hours)
            .bind(settings.normal_register_working_days)
            .bind(settings.escalation_interval_minutes)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Urgent and immediate referrals sent before `sent_before` and still unacknowledged: the
    /// candidates for escalation (the caller applies each parquet's exact deadline).
    pub async fn unacknowledged_urgent(
        &self,
        sent_before: DateTime<Utc>,
    ) -> StoreResult<Vec<AcknowledgementDue>> {
        let sql = "SELECT id, reference, urgency, parquet_id, submitted_at, escalated_at, escalation_count FROM referrals \
                   WHERE status = 'submitted' AND acknowledged_at IS NULL AND urgency IN ('immediate', 'urgent') \
                   AND parquet_id IS NOT NULL AND submitted_at < $1 ORDER BY submitted_at";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(sent_before)
            .fetch_all(pool)
            .await)?)
    }
}

impl Store {
    /// Registered referrals still without a decision, registered before `registered_before`,
    /// and not reminded since `not_reminded_since`: the parquet is reminded of them.
    pub async fn undecided_for_reminder(
        &self,
        registered_before: DateTime<Utc>,
        not_reminded_since: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, String)>> {
        // NOT IN over the recent reminders, not a correlated NOT EXISTS: PostgreSQL then hashes
        // the reminders once. With NOT EXISTS, an estimate of one recent reminder (statistics
        // taken before a round wrote 95 000 of them) gave a nested loop comparing every open
        // referral with every reminder: more than nine minutes at 1.2 million referrals, during
        // which the worker sent no escalation. `referral_id` is never null, so NOT IN is exact.
        let sql = "SELECT r.id, r.status FROM referrals r WHERE r.status IN ('registered', 'under_investigation') \
                   AND r.decided_at IS NULL AND r.registered_at <= $1 \
                   AND r.id NOT IN (SELECT e.referral_id FROM events e WHERE e.type = 'decision_reminder' AND e.at >= $2) \
                   ORDER BY r.registered_at";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(registered_before)
            .bind(not_reminded_since)
            .fetch_all(pool)
            .await)?)
    }
}
