//! Bulk loading of synthetic referrals for performance work (`infoparquet seed-scale`): many
//! rows per statement, large transactions, the search index written alongside. Not a path real
//! data ever takes: real referrals go through the service and its journal.

use crate::search::SearchDialect;
use crate::{on_pool, on_writer, Store, StoreResult};
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// One synthetic referral with its children.
#[derive(Debug, Clone)]
pub struct ScaleReferral {
    pub id: Uuid,
    pub reference: String,
    pub status: String,
    pub kind: String,
    pub urgency: String,
    pub title: String,
    pub facts: String,
    pub commune_insee: String,
    pub administration_id: Uuid,
    pub author_id: Uuid,
    pub parquet_id: Uuid,
    pub parquet_number: Option<String>,
    pub limitation_date: Option<NaiveDate>,
    pub decision: Option<crate::Decision>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub offence_code: i64,
    pub party_name: String,
    pub party_siret: String,
    pub author_name: String,
    pub administration_name: String,
}

/// Rows per INSERT statement: well under both backends' bind-parameter limits.
const ROWS_PER_STATEMENT: usize = 400;

impl Store {
    /// Inserts a batch of synthetic referrals (each with two timeline entries, one party, one
    /// offence and its search document) in one transaction.
    pub async fn insert_scale_batch(&self, batch: &[ScaleReferral]) -> StoreResult<()> {
        on_writer!(self, |conn, Db| {
            let mut tx = conn.begin().await?;
            for chunk in batch.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO referrals (id, reference, status, kind, urgency, title, facts, commune_insee, administration_id, \
                     author_id, parquet_id, competence, parquet_number, limitation_date, decision, verification_code, created_at, \
                     updated_at, submitted_at, acknowledged_at, registered_at, decided_at) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(r.id)
                        .push_bind(&r.reference)
                        .push_bind(&r.status)
                        .push_bind(&r.kind)
                        .push_bind(&r.urgency)
                        .push_bind(&r.title)
                        .push_bind(&r.facts)
                        .push_bind(&r.commune_insee)
                        .push_bind(r.administration_id)
                        .push_bind(r.author_id)
                        .push_bind(r.parquet_id)
                        .push_bind("official")
                        .push_bind(&r.parquet_number)
                        .push_bind(r.limitation_date)
                        .push_bind(r.decision.clone().map(sqlx::types::Json))
                        .push_bind(format!("S{}", r.id.simple()))
                        .push_bind(r.created_at)
                        .push_bind(r.submitted_at)
                        .push_bind(r.submitted_at)
                        .push_bind(r.acknowledged_at)
                        .push_bind(r.registered_at)
                        .push_bind(r.decided_at);
                });
                q.build().execute(&mut *tx).await?;

                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO events (id, referral_id, at, type, audience, actor_id, actor_name, actor_role, actor_organisation, summary) ",
                );
                q.push_values(
                    chunk.iter().flat_map(|r| [(r, true), (r, false)]),
                    |mut row, (r, first)| {
                        row.push_bind(Uuid::now_v7())
                            .push_bind(r.id)
                            .push_bind(if first { r.created_at } else { r.submitted_at })
                            .push_bind(if first { "created" } else { "submitted" })
                            .push_bind(if first { "sender" } else { "everyone" })
                            .push_bind(r.author_id)
                            .push_bind(&r.author_name)
                            .push_bind("agent")
                            .push_bind(&r.administration_name)
                            .push_bind(if first {
                                "Brouillon créé".to_string()
                            } else {
                                format!("Saisine {} transmise", r.reference)
                            });
                    },
                );
                q.build().execute(&mut *tx).await?;

                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO parties (id, referral_id, position, role, kind, name, siret) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(Uuid::now_v7())
                        .push_bind(r.id)
                        .push_bind(0i64)
                        .push_bind("suspect")
                        .push_bind("organisation")
                        .push_bind(&r.party_name)
                        .push_bind(&r.party_siret);
                });
                q.build().execute(&mut *tx).await?;

                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO referral_offences (referral_id, code) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(r.id).push_bind(r.offence_code);
                });
                q.build().execute(&mut *tx).await?;

                for r in chunk {
                    let document = format!(
                        "{} {}",
                        domain::text::search_key(&format!(
                            "{} {} {} {} {}",
                            r.title,
                            r.facts,
                            r.reference,
                            r.parquet_number.as_deref().unwrap_or_default(),
                            r.party_name
                        )),
                        domain::text::scope_words(Some(r.parquet_id), r.administration_id)
                    );
                    <Db as SearchDialect>::write_document(&mut *tx, r.id, &document).await?;
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Refreshes the planner's statistics after a bulk load. On PostgreSQL also marks the
    /// loaded pages all-visible (`VACUUM`), without which index-only scans still read the
    /// table: counting open referrals over 1.2 million took 1.85 s before, 0.13 s after.
    ///
    /// On SQLite only the per-index averages (`sqlite_stat1`) are kept. The bundled SQLite is
    /// built with STAT4, whose samples let the planner weigh a query's bound values: every
    /// statement whose plan looked at them is compiled again each time a value is bound to
    /// it. Under 16 submitting clients that recompiling took a tenth of the server's CPU.
    pub async fn analyze(&self) -> StoreResult<()> {
        let sql = match self.writer {
            crate::Writer::Sqlite(_) | crate::Writer::SqliteShared(_) => {
                // `ANALYZE sqlite_schema` reloads the statistics on this connection.
                "ANALYZE; DELETE FROM sqlite_stat4; ANALYZE sqlite_schema;"
            }
            crate::Writer::Postgres(..) => "VACUUM (ANALYZE)",
        };
        // Sent as a simple query, not prepared: VACUUM must run outside any transaction block.
        on_writer!(self, |conn| sqlx::raw_sql(sql)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// What `infoparquet restore` checks of each stored document.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredDocument {
    pub storage_key: String,
    pub wrapped_key: Option<String>,
    pub sha256: String,
}

impl Store {
    /// A consistent copy of an SQLite database, taken while it serves (`VACUUM INTO`).
    /// PostgreSQL is copied with `pg_dump` instead: `None` there.
    pub async fn sqlite_snapshot_into(&self, path: &std::path::Path) -> StoreResult<Option<()>> {
        match &self.pool {
            crate::Pool::Sqlite(pool) => {
                sqlx::query("VACUUM INTO $1")
                    .bind(path.to_string_lossy().to_string())
                    .execute(pool)
                    .await?;
                Ok(Some(()))
            }
            crate::Pool::Postgres(_) => Ok(None),
        }
    }

    /// Every stored document with its recorded hash, for checking a restored copy.
    pub async fn stored_documents(&self) -> StoreResult<Vec<StoredDocument>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT storage_key, wrapped_key, sha256 FROM attachments ORDER BY id")
                .fetch_all(pool)
                .await
        })?)
    }

    /// How many tables the database has (PostgreSQL's public schema, SQLite's main one): a
    /// restore goes only into a database that has none.
    pub async fn table_count(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |pool, Db| {
            sqlx::query_scalar(if self.backend_name() == "sqlite" {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
            } else {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
            })
            .fetch_one(pool)
            .await
        })?)
    }

    /// How many referrals (drafts included) the database holds.
    pub async fn referral_count(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM referrals")
                .fetch_one(pool)
                .await
        })?)
    }
}
