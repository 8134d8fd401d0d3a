//! Background work, all derived from the database so that a restart loses nothing: sending the
//! outbox's e-mails (with retries and exponential backoff), and escalating urgent referrals
//! left unacknowledged past their deadline.

use crate::notify::{self, Notice};
use crate::AppState;
use chrono::{DateTime, Duration, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::collections::HashMap;
use store::{ActorInfo, EmailPayload, NewEvent, ReferralUpdate};
use uuid::Uuid;

/// How long a claimed job stays invisible to other workers.
const LEASE_SECONDS: i64 = 120;
/// After this many attempts (about two days of backoff) a job is marked failed.
const MAX_ATTEMPTS: i64 = 40;

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub from: String,
}

/// Sends e-mails through an SMTP relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A plain SMTP relay (the local MTA or the ministry's smarthost, which handles TLS
    /// onwards).
    pub fn new(settings: &SmtpSettings) -> Result<Mailer, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("invalid sender address: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        Ok(Mailer { transport, from })
    }

    pub async fn send(&self, email: &EmailPayload) -> Result<(), String> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|e| format!("invalid recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Exponential backoff: 30 s, 1 min, 2 min… capped at one hour.
pub fn backoff(attempts: i64) -> Duration {
    let exponent = attempts.clamp(1, 8) - 1;
    Duration::seconds((30 * (1i64 << exponent)).min(3600))
}

/// Sends what is due; returns how many e-mails were sent.
pub async fn process_due_jobs(
    state: &AppState,
    mailer: &Mailer,
) -> Result<usize, store::StoreError> {
    let mut sent = 0;
    loop {
        let now = state.now();
        let jobs = state
            .store
            .claim_jobs("email", now, Duration::seconds(LEASE_SECONDS), 20)
            .await?;
        if jobs.is_empty() {
            return Ok(sent);
        }
        for job in jobs {
            let outcome = match serde_json::from_str::<EmailPayload>(&job.payload) {
                Ok(email) if job.kind == "email" => mailer.send(&email).await,
                Ok(_) => Err(format!("unknown job kind {}", job.kind)),
                Err(e) => Err(format!("unreadable payload: {e}")),
            };
            match outcome {
                Ok(()) => {
                    state.store.complete_job(job.id, state.now()).await?;
                    sent += 1;
                }
                Err(error) => {
                    tracing::warn!(job = %job.id, attempts = job.attempts, %error, "e-mail not sent; will retry");
                    let give_up = job.attempts >= MAX_ATTEMPTS;
                    state
                        .store
                        .retry_job(job.id, state.now() + backoff(job.attempts), &error, give_up)
                        .await?;
                    // The relay is probably down: leave the rest for the next round.
                    return Ok(sent);
                }
            }
        }
    }
}

fn platform_actor() -> ActorInfo {
    ActorInfo {
        user_id: None,
        name: "Info Parquet (automate)".into(),
        role: "system".into(),
        organisation: "Plateforme Info Parquet".into(),
    }
}

/// Escalates every urgent or immediate referral whose acknowledgement deadline has passed, and
/// again every escalation interval until it is acknowledged. Returns how many were escalated.
pub async fn escalate_overdue(state: &AppState) -> Result<usize, store::StoreError> {
    let now = state.now();
    let mut escalated = 0;
    // Read once per parquet and round: hundreds of referrals may wait on the same parquet.
    let mut settings_of: HashMap<Uuid, store::ParquetSettings> = HashMap::new();
    // The shortest configurable deadline is a few minutes: look at everything sent before now.
    for due in state.store.unacknowledged_urgent(now).await? {
        let settings = match settings_of.get(&due.parquet_id) {
            Some(settings) => *settings,
            None => {
                let settings = state.store.parquet_settings(due.parquet_id).await?;
                settings_of.insert(due.parquet_id, settings);
                settings
            }
        };
        let urgency = domain::referral::Urgency::parse(&due.urgency)
            .unwrap_or(domain::referral::Urgency::Urgent);
        // Acknowledgement deadlines run on the clock, not on working days: the calendar is
        // irrelevant here.
        let deadline = settings
            .deadline_policy()
            .first_deadline(urgency, due.submitted_at, false)
            .due_at;
        if now < deadline {
            continue;
        }
        let interval = Duration::minutes(settings.escalation_interval_minutes.max(1));
        if due
            .escalated_at
            .is_some_and(|last: DateTime<Utc>| now < last + interval)
        {
            continue;
        }
        let Some(referral) = state.store.referral(due.id).await? else {
            continue;
        };
        let mut outbox = notify::escalation_emails(state, &referral).await?;
        let recipients = notify::parquet_recipients(state, &referral, now, true).await?;
        outbox.extend(notify::for_users(state, &recipients, &referral, Notice::Escalation).await?);
        let late = now - due.submitted_at;
        let summary = format!(
            "Alerte n° {} : aucun accusé de réception {} h {:02} min après l'envoi — procureur et secrétariat alertés",
            due.escalation_count + 1,
            late.num_hours(),
            late.num_minutes() % 60
        );
        let update = ReferralUpdate {
            escalated_at: Some(now),
            outbox,
            ..Default::default()
        };
        let event = NewEvent {
            event_type: "escalated".into(),
            audience: "parquet".into(),
            summary,
        };
        if state
            .store
            .apply_update(due.id, "submitted", &update, now, &platform_actor(), &event)
            .await?
        {
            escalated += 1;
        }
    }
    Ok(escalated)
}

/// Reminds the parquet of registered referrals without a decision three months after their
/// registration, then every month until a decision is taken. Returns how many were reminded.
pub async fn remind_undecided(state: &AppState) -> Result<usize, store::StoreError> {
    let now = state.now();
    let registered_before = now
        .checked_sub_months(chrono::Months::new(
            domain::calendar::DECISION_REMINDER_MONTHS,
        ))
        .unwrap_or(now);
    let not_reminded_since = now
        .checked_sub_months(chrono::Months::new(1))
        .unwrap_or(now);
    let mut reminded = 0;
    for (id, status) in state
        .store
        .undecided_for_reminder(registered_before, not_reminded_since)
        .await?
    {
        let Some(referral) = state.store.referral(id).await? else {
            continue;
        };
        let recipients = notify::parquet_recipients(state, &referral, now, false).await?;
        let outbox =
            notify::for_users(state, &recipients, &referral, Notice::DecisionReminder).await?;
        let update = ReferralUpdate {
            outbox,
            ..Default::default()
        };
        let event = NewEvent {
            event_type: "decision_reminder".into(),
            audience: "parquet".into(),
            summary: "Rappel : aucune décision trois mois après l'enregistrement".into(),
        };
        if state
            .store
            .apply_update(id, &status, &update, now, &platform_actor(), &event)
            .await?
        {
            reminded += 1;
        }
    }
    Ok(reminded)
}

/// How often the worker looks for referrals to remind the parquet of.
const REMINDER_ROUND_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// How many times its own last duration the indicators' refresh then waits, at least.
///
/// A refresh's cost grows with the referrals queued since the last one, and with the size of a
/// month it counts afresh (one with 5 000 queued referrals or more). Waiting nine times as long
/// keeps refreshes to a tenth of one CPU whatever they cost, while a refresh of a few hundred
/// changes, which takes milliseconds, still runs every round.
const REFRESH_PAUSE_FACTOR: u32 = 9;

/// The longest wait after a refresh: counting ten years afresh after a migration takes a minute
/// or more, and the figures must not then stay stale for ten times as long; the next refreshes
/// are small.
const REFRESH_PAUSE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(60);

/// When the next indicators' refresh may start, given when the last one started and ended.
fn next_refresh_at(
    started: tokio::time::Instant,
    ended: tokio::time::Instant,
) -> tokio::time::Instant {
    ended + ((ended - started) * REFRESH_PAUSE_FACTOR).min(REFRESH_PAUSE_AT_MOST)
}

/// The worker loop: e-mails, escalations, webhooks and the indicators' cells, every few
/// seconds, until `shutdown`.
pub async fn run_worker(
    state: AppState,
    mailer: Option<Mailer>,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let webhook_client = match crate::webhooks::http_client() {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::error!(%error, "no HTTP client: webhooks wait in the outbox");
            None
        }
    };
    // Reminders run beside this loop: a long round (a backlog of months, a slow disk) must
    // never hold back an urgent referral's escalation.
    let reminders = tokio::spawn(run_reminder_rounds(state.clone(), every, shutdown.clone()));
    let mut refresh_at = tokio::time::Instant::now();
    loop {
        if let Err(error) = escalate_overdue(&state).await {
            tracing::warn!(%error, "escalation round failed; will retry");
        }
        if let Some(mailer) = &mailer {
            if let Err(error) = process_due_jobs(&state, mailer).await {
                tracing::warn!(%error, "outbox round failed; will retry");
            }
        }
        if let Some(client) = &webhook_client {
            if let Err(error) = crate::webhooks::deliver_due_webhooks(&state, client).await {
                tracing::warn!(%error, "webhook round failed; will retry");
            }
        }
        if let Err(error) = state.store.merge_pending_search_entries().await {
            tracing::warn!(%error, "merging the search index's pending entries failed; will retry");
        }
        if tokio::time::Instant::now() >= refresh_at {
            let started = tokio::time::Instant::now();
            match state.store.refresh_stats().await {
                Ok(0) => {}
                Ok(months) => tracing::debug!(
                    months,
                    milliseconds = started.elapsed().as_millis(),
                    "indicators refreshed"
                ),
                Err(error) => tracing::warn!(%error, "indicators refresh failed; will retry"),
            }
            refresh_at = next_refresh_at(started, tokio::time::Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {
                // Each reminder is its own transaction: stopping mid-round loses nothing (a
                // dropped transaction rolls back) and the next start reminds the rest.
                reminders.abort();
                let _ = reminders.await;
                return;
            }
        }
    }
}

/// Reminders are monthly: an hourly round is on time, and spares reading every registered
/// referral every few seconds. A failed round is retried after `retry`.
async fn run_reminder_rounds(
    state: AppState,
    retry: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let pause = match remind_undecided(&state).await {
            Ok(_) => REMINDER_ROUND_EVERY,
            Err(error) => {
                tracing::warn!(%error, "reminder round failed; will retry");
                retry
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff, next_refresh_at};
    use std::time::Duration;

    #[test]
    fn a_long_refresh_waits_nine_times_its_duration_up_to_a_minute_and_a_short_one_hardly_at_all() {
        let started = tokio::time::Instant::now();
        let long = started + Duration::from_secs(3);
        assert_eq!(
            next_refresh_at(started, long) - long,
            Duration::from_secs(27)
        );
        let short = started + Duration::from_millis(20);
        assert_eq!(
            next_refresh_at(started, short) - short,
            Duration::from_millis(180)
        );
        let after_a_migration = started + Duration::from_secs(65);
        assert_eq!(
            next_refresh_at(started, after_a_migration) - after_a_migration,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn backoff_grows_then_caps() {
        assert_eq!(backoff(1).num_seconds(), 30);
        assert_eq!(backoff(2).num_seconds(), 60);
        assert_eq!(backoff(5).num_seconds(), 480);
        assert_eq!(backoff(30).num_seconds(), 3600);
    }
}
