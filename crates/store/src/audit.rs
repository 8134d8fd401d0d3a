//! The journal: an append-only log whose entries are chained by SHA-256, written in the same
//! transaction as the change they record, and checkpoints signed with Ed25519.

use crate::{on_batched_writer, on_pool, on_writer, ActorInfo, Store, StoreResult};
use chrono::{DateTime, Utc};
use domain::integrity::{canonical_instant, AuditRecord, ChainFault, ChainVerifier, Signer};
use uuid::Uuid;

/// What to journal.
#[derive(Debug, Clone)]
pub struct AuditInput {
    pub at: DateTime<Utc>,
    pub actor: ActorInfo,
    /// e.g. "referral.read", "attachment.download", "auth.login", "referral.submitted".
    pub action: String,
    /// What the action was on, e.g. "referral:0193…".
    pub target: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<Uuid>,
    pub actor: String,
    pub role: String,
    pub organisation: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    pub fn record(&self) -> AuditRecord {
        AuditRecord {
            seq: self.seq,
            at: self.at.clone(),
            actor_id: self.actor_id,
            actor: self.actor.clone(),
            role: self.role.clone(),
            organisation: self.organisation.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            detail: self.detail.clone(),
            prev_hash: self.prev_hash.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AuditCheckpoint {
    pub seq: i64,
    pub hash: String,
    pub at: String,
    pub public_key: String,
    pub signature: String,
}

impl AuditCheckpoint {
    /// The bytes a checkpoint's signature covers.
    pub fn signed_message(seq: i64, hash: &str, at: &str) -> Vec<u8> {
        format!("infoparquet-audit-checkpoint-v1\n{seq}\n{hash}\n{at}").into_bytes()
    }
}

/// The common table expressions that append a journal entry on PostgreSQL in the statement
/// that holds them, given the SQL placeholders of the entry's fields. They lock and read the
/// head, compute the entry's hash with `sha256()` over the canonical JSON that
/// `AuditRecord::hash` hashes (same fields in the same order, same escaping: `to_json` escapes
/// as serde_json does), and insert the entry as `audit_entry`. The caller moves the head
/// (`POSTGRES_MOVE_HEAD`).
///
/// Why in SQL: the head stays locked from its read until the commit, and every writer queues
/// for it. Hashing in Rust needs the head's hash first, a round trip more under the lock (and a
/// statement more per write). `audit verify` recomputes every hash in Rust, and the conformance
/// suite checks both agree on awkward text (quotes, backslashes, control characters, emoji).
pub(crate) struct AuditPlaceholders {
    pub at: &'static str,
    pub actor_id: &'static str,
    pub actor: &'static str,
    pub role: &'static str,
    pub organisation: &'static str,
    pub action: &'static str,
    pub target: &'static str,
    pub detail: &'static str,
}

impl AuditPlaceholders {
    pub(crate) fn postgres_append_ctes(&self) -> String {
        let AuditPlaceholders {
            at,
            actor_id,
            actor,
            role,
            organisation,
            action,
            target,
            detail,
        } = self;
        format!(
            "audit_prev AS (SELECT seq + 1 AS seq, hash AS prev_hash FROM audit_head WHERE id = 1 FOR UPDATE), \
             audit_record AS (SELECT seq, prev_hash, encode(sha256(convert_to(concat(\
             '{{\"seq\":', seq, \
             ',\"at\":', to_json({at}::text), \
             ',\"actor_id\":', COALESCE(to_json({actor_id}::uuid)::text, 'null'), \
             ',\"actor\":', to_json({actor}::text), \
             ',\"role\":', to_json({role}::text), \
             ',\"organisation\":', to_json({organisation}::text), \
             ',\"action\":', to_json({action}::text), \
             ',\"target\":', to_json({target}::text), \
             ',\"detail\":', to_json({detail}::text), \
             ',\"prev_hash\":', to_json(prev_hash), '}}'), 'UTF8')), 'hex') AS hash FROM audit_prev), \
             audit_entry AS (INSERT INTO audit_log (seq, at, actor_id, actor, role, organisation, action, target, detail, prev_hash, hash) \
             SELECT seq, {at}, {actor_id}, {actor}, {role}, {organisation}, {action}, {target}, {detail}, prev_hash, hash \
             FROM audit_record RETURNING seq, hash)"
        )
    }
}

/// Locks the journal's head on PostgreSQL. Every batch of the writer takes it first (see
/// `group_commit`).
pub(crate) const POSTGRES_LOCK_HEAD: &str = "SELECT FROM audit_head WHERE id = 1 FOR UPDATE";

/// Moves the journal's head to the entry `postgres_append_ctes` inserted.
pub(crate) const POSTGRES_MOVE_HEAD: &str =
    "UPDATE audit_head SET seq = audit_entry.seq, hash = audit_entry.hash FROM audit_entry WHERE audit_head.id = 1";

/// A journal entry on its own, in one statement on PostgreSQL (see `postgres_append_ctes`).
pub(crate) static POSTGRES_APPEND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let ctes = AuditPlaceholders {
        at: "$1",
        actor_id: "$2",
        actor: "$3",
        role: "$4",
        organisation: "$5",
        action: "$6",
        target: "$7",
        detail: "$8",
    }
    .postgres_append_ctes();
    format!("WITH {ctes} {POSTGRES_MOVE_HEAD}")
});

/// Appends an entry inside the caller's transaction. Locking the head row first makes appends
/// take turns, on SQLite (the write lock) as on PostgreSQL (the row lock). On PostgreSQL in one
/// statement (`POSTGRES_APPEND`); on SQLite, which has no SHA-256 function, the hash is computed
/// here between reading the head and writing the entry (two calls on the writer's connection).
macro_rules! append_audit {
    ($tx:expr, $input:expr) => {{
        let input: &$crate::audit::AuditInput = $input;
        if $crate::runs_statement_lists(&*$tx) {
            // One statement takes the lock and reads the head.
            let (last_seq, last_hash): (i64, String) = sqlx::query_as("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash").fetch_one(&mut *$tx).await?;
            let record = domain::integrity::AuditRecord {
                seq: last_seq + 1,
                at: domain::integrity::canonical_instant(input.at),
                actor_id: input.actor.user_id,
                actor: input.actor.name.clone(),
                role: input.actor.role.clone(),
                organisation: input.actor.organisation.clone(),
                action: input.action.clone(),
                target: input.target.clone(),
                detail: input.detail.clone(),
                prev_hash: last_hash,
            };
            let hash = record.hash();
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor_id, actor, role, organisation, action, target, detail, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11); \
                 UPDATE audit_head SET seq = $1, hash = $11 WHERE id = 1",
            )
            .bind(record.seq)
            .bind(&record.at)
            .bind(record.actor_id)
            .bind(&record.actor)
            .bind(&record.role)
            .bind(&record.organisation)
            .bind(&record.action)
            .bind(&record.target)
            .bind(&record.detail)
            .bind(&record.prev_hash)
            .bind(&hash)
            .execute(&mut *$tx)
            .await?;
        } else {
            sqlx::query(&$crate::audit::POSTGRES_APPEND)
                .bind(domain::integrity::canonical_instant(input.at))
                .bind(input.actor.user_id)
                .bind(&input.actor.name)
                .bind(&input.actor.role)
                .bind(&input.actor.organisation)
                .bind(&input.action)
                .bind(&input.target)
                .bind(&input.detail)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use append_audit;

const BATCH: i64 = 5_000;

impl Store {
    /// Journals an action that changes nothing else (a read, a download, a login).
    pub async fn audit(&self, input: &AuditInput) -> StoreResult<()> {
        on_batched_writer!(self, |conn| {
            let mut tx = conn.begin_body().await?;
            append_audit!(tx, input);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    pub async fn audit_entries(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let sql = "SELECT seq, at, actor_id, actor, role, organisation, action, target, detail, prev_hash, hash \
                   FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn audit_entries_for(&self, target: &str) -> StoreResult<Vec<AuditEntry>> {
        let sql = "SELECT seq, at, actor_id, actor, role, organisation, action, target, detail, prev_hash, hash \
                   FROM audit_log WHERE target = $1 ORDER BY seq";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(target)
            .fetch_all(pool)
            .await)?)
    }

    /// Checks the whole chain, in batches; names the first fault. Also checks that the head
    /// and every signed checkpoint agree with the entries (a truncated tail is caught too).
    pub async fn verify_audit_chain(&self) -> StoreResult<Result<u64, ChainFault>> {
        let mut verifier = ChainVerifier::default();
        let checkpoints = self.audit_checkpoints().await?;
        let mut after = 0;
        loop {
            let entries = self.audit_entries(after, BATCH).await?;
            let Some(last) = entries.last() else { break };
            after = last.seq;
            for entry in &entries {
                if let Err(fault) = verifier.check(&entry.record(), &entry.hash) {
                    return Ok(Err(fault));
                }
                if let Some(checkpoint) = checkpoints.iter().find(|c| c.seq == entry.seq) {
                    if checkpoint.hash != entry.hash {
                        return Ok(Err(ChainFault::Altered { seq: entry.seq }));
                    }
                }
            }
        }
        let (head_seq, head_hash): (i64, String) = on_pool!(self, |pool| sqlx::query_as(
            "SELECT seq, hash FROM audit_head WHERE id = 1"
        )
        .fetch_one(pool)
        .await)?;
        if head_seq != verifier.last_seq() || head_hash != verifier.last_hash() {
            return Ok(Err(ChainFault::Missing {
                after: verifier.last_seq(),
                found: head_seq,
            }));
        }
        if let Some(beyond) = checkpoints.iter().find(|c| c.seq > verifier.last_seq()) {
            return Ok(Err(ChainFault::Missing {
                after: verifier.last_seq(),
                found: beyond.seq,
            }));
        }
        Ok(Ok(verifier.checked))
    }

    /// Signs the current head of the chain, so that an outside party can later hold the
    /// platform to it. Returns `None` when nothing was journaled since the last checkpoint.
    pub async fn create_audit_checkpoint(
        &self,
        signer: &Signer,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuditCheckpoint>> {
        let (seq, hash): (i64, String) = on_pool!(self, |pool| sqlx::query_as(
            "SELECT seq, hash FROM audit_head WHERE id = 1"
        )
        .fetch_one(pool)
        .await)?;
        if seq == 0 || self.audit_checkpoints().await?.iter().any(|c| c.seq == seq) {
            return Ok(None);
        }
        let at = canonical_instant(now);
        let checkpoint = AuditCheckpoint {
            seq,
            signature: signer.sign(&AuditCheckpoint::signed_message(seq, &hash, &at)),
            hash,
            at,
            public_key: signer.public_key(),
        };
        on_writer!(self, |conn| {
            sqlx::query("INSERT INTO audit_checkpoints (seq, hash, at, public_key, signature) VALUES ($1, $2, $3, $4, $5)")
            .bind(checkpoint.seq)
            .bind(&checkpoint.hash)
            .bind(&checkpoint.at)
            .bind(&checkpoint.public_key)
            .bind(&checkpoint.signature)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(Some(checkpoint))
    }

    pub async fn audit_checkpoints(&self) -> StoreResult<Vec<AuditCheckpoint>> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT seq, hash, at, public_key, signature FROM audit_checkpoints ORDER BY seq"
        )
        .fetch_all(pool)
        .await)?)
    }
}
