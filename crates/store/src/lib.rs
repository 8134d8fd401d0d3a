//! Storage of Info Parquet. One `Store` type speaks to SQLite (the embedded default) or
//! PostgreSQL (production). Queries are written once: the `on_pool!` macro expands each body for
//! both backends, so both stay in step and the compiler checks each expansion.

mod accounts;
pub mod audit;
mod colocate;
mod group_commit;
pub mod integrations;
pub use accounts::{IdempotentResponse, SavedFilter};
mod models;
pub mod outbox;
mod postgres_writes;
mod reference;
mod referrals;
mod scale;
mod search;
mod second_factor;
mod stats;
pub use scale::{ScaleReferral, StoredDocument};
pub use second_factor::TotpState;

pub use audit::{AuditCheckpoint, AuditEntry, AuditInput};
pub use integrations::{OrganisationToken, Webhook, WebhookDelivery, WebhookMessage};
pub use models::*;
pub use outbox::{
    AcknowledgementDue, EmailPayload, EscalationContact, Job, Notification, OnCallShift,
    OutboxMessage, ParquetSettings,
};
pub use reference::{
    decode_legacy_text, parquet_id_for_court, parse_offences, CompetenceImportError, ImportFailure,
    ReferenceCounts,
};
pub use sqlx::types::Json;
pub use stats::StatsFilter;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL (expected sqlite:… or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("reference data: {0}")]
    Reference(String),
}

impl StoreError {
    /// The database could not be reached (restarting, failing over, network): worth retrying.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            )
        )
    }

    /// Maps unique-constraint violations to `Conflict`, so that callers can answer 409/422
    /// instead of 500.
    fn from_write(error: sqlx::Error, what: &'static str) -> StoreError {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::Database(error),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Where writes go.
#[derive(Debug, Clone)]
pub(crate) enum Writer {
    /// A SQLite file: its one writer connection, kept out of any pool and taken in turns, in
    /// arrival order; queued writers share commits (see `group_commit`). SQLite lets one writer
    /// at a time, and writers racing for the file lock sleep in its busy handler (up to 100 ms
    /// a try, newcomers first): at 16 concurrent clients that made submissions 58 per second
    /// with a p99 near a second. It was a pool of one connection until the eighth session, but
    /// a pool hands a connection back through a spawned task that first pings it (a round trip
    /// to the connection's thread), and only then wakes the next writer. On a busy machine that
    /// task waited for a runtime thread while every writer waited for it: 13 of 16 submitting
    /// clients were queued for the writer at any moment, and taking the connection out of the
    /// pool made submissions ~25 % faster (BENCHMARKS.md).
    Sqlite(std::sync::Arc<group_commit::GroupWriter>),
    /// An in-memory SQLite database: the readers' pool (another connection would be another
    /// database).
    SqliteShared(SqlitePool),
    /// PostgreSQL: the pool, and one connection of its own where the requests' writes take
    /// turns and share commits as on SQLite (`group_commit`).
    Postgres(
        PgPool,
        std::sync::Arc<group_commit::GroupWriter<sqlx::Postgres>>,
    ),
}

/// The storage of the whole platform. Cheap to clone (it holds connection pools).
#[derive(Clone, Debug)]
pub struct Store {
    /// For reads (and, on PostgreSQL, everything).
    pub(crate) pool: Pool,
    /// For writes: on SQLite one connection taken in turns (see `Writer`); on PostgreSQL the
    /// same pool as `pool`, and one connection of its own for the requests' writes.
    pub(crate) writer: Writer,
    /// On SQLite, the CPU the writer connection's thread is pinned to, where write
    /// transactions are driven from (see `colocate`).
    pub(crate) writer_cpu: Option<usize>,
}

/// What the writer connection did since the start (`Store::writer_counts`).
#[derive(Clone, Copy, Debug)]
pub struct WriterCounts {
    /// Commits made; writes that queued share one.
    pub commits: u64,
    /// Writes those commits held.
    pub writes: u64,
    /// How long writes held the connection, their commits included. Every request's write
    /// waits for this one connection: held most of the time, it limits the writes per second.
    pub held: std::time::Duration,
}

/// Runs `$body` once per backend, with `$pool` bound to the concrete pool and `$db` naming the
/// concrete sqlx database type.
macro_rules! on_pool {
    (@match $pools:expr, |$pool:ident, $db:ident| $body:expr) => {
        match $pools {
            $crate::Pool::Sqlite($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            $crate::Pool::Postgres($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
    ($store:expr, |$pool:ident, $db:ident| $body:expr) => {
        on_pool!(@match &$store.pool, |$pool, $db| $body)
    };
    ($store:expr, |$pool:ident| $body:expr) => {
        on_pool!(@match &$store.pool, |$pool, _Db| $body)
    };
}
pub(crate) use on_pool;

/// `on_pool!` for statements that write: runs `$body` with `$conn` bound to a connection of
/// the writer (`&mut SqliteConnection` or `&mut PgConnection`; `$conn.begin()` starts a
/// transaction) and `$db` naming the concrete sqlx database type. A body must not call
/// another writing method of the store (on SQLite it would wait for its own connection).
macro_rules! on_writer {
    ($store:expr, |$conn:ident, $db:ident| $body:expr) => {
        match &$store.writer {
            $crate::Writer::Sqlite(writer) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $crate::colocate::drive($store.writer_cpu, async {
                    let mut state = writer.turn().await?;
                    let $conn: &mut sqlx::SqliteConnection = state.connection()?;
                    #[allow(unused_imports)]
                    use sqlx::Connection as _;
                    $body
                })
                .await
            }
            $crate::Writer::SqliteShared(pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                async {
                    let mut connection = pool.acquire().await?;
                    #[allow(unused_imports)]
                    use sqlx::Connection as _;
                    let $conn: &mut sqlx::SqliteConnection = &mut connection;
                    $body
                }
                .await
            }
            $crate::Writer::Postgres(pool, _) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                async {
                    let mut connection = pool.acquire().await?;
                    #[allow(unused_imports)]
                    use sqlx::Connection as _;
                    let $conn: &mut sqlx::PgConnection = &mut connection;
                    $body
                }
                .await
            }
        }
    };
    ($store:expr, |$conn:ident| $body:expr) => {
        on_writer!($store, |$conn, _Db| $body)
    };
}
pub(crate) use on_writer;

/// `on_writer!` for the writes of the requests (referrals, events, messages, the journal): on a
/// SQLite file, writers that queue share one commit (see `group_commit`), and each returns once
/// the commit holding its work is on disk; PostgreSQL's writes go the same way. Evaluates to
/// `StoreResult<T>`. A body begins its transaction with `$conn.begin_body()` (see
/// `group_commit::BodyConnection`). A body must pass on every error it meets (`?`): a failed
/// statement may have cost the whole shared transaction, and the batch learns it from the
/// body's error.
macro_rules! on_batched_writer {
    ($store:expr, |$conn:ident, $db:ident| $body:expr) => {
        match &$store.writer {
            $crate::Writer::Sqlite(writer) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                async {
                    let (result, ticket) = $crate::colocate::drive($store.writer_cpu, async {
                        let mut state = writer.batched_turn().await?;
                        let result = async {
                            let $conn =
                                &mut $crate::group_commit::BodyConnection(state.connection()?);
                            $body
                        }
                        .await;
                        let ticket = writer.end_body(state, result.is_ok()).await;
                        Ok::<_, sqlx::Error>((result, ticket))
                    })
                    .await?;
                    let settled = writer.settle(ticket).await;
                    let value = result?;
                    settled?;
                    Ok::<_, $crate::StoreError>(value)
                }
                .await
            }
            $crate::Writer::Postgres(_, writer) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $crate::on_postgres_batch!(writer, |$conn| $body)
            }
            $crate::Writer::SqliteShared(pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                async {
                    let mut connection = pool.acquire().await?;
                    let $conn = &mut $crate::group_commit::BodyConnection(&mut connection);
                    $body
                }
                .await
                .map_err($crate::StoreError::from)
            }
        }
    };
    ($store:expr, |$conn:ident| $body:expr) => {
        on_batched_writer!($store, |$conn, _Db| $body)
    };
}
pub(crate) use on_batched_writer;

/// The PostgreSQL arm of `on_batched_writer!`: `$body` in the open batch of `$writer` (a
/// `GroupWriter<Postgres>`), with `$conn` a `&mut InBatch` (a `PgConnection`, inside the
/// savepoint the writer took for the body). Evaluates to `StoreResult<T>`.
macro_rules! on_postgres_batch {
    ($writer:expr, |$conn:ident| $body:expr) => {
        async {
            let writer: &$crate::group_commit::GroupWriter<sqlx::Postgres> = $writer;
            let mut state = writer.batched_turn_until_ended().await?;
            // The body's result, and whether it dropped its transaction uncommitted.
            let result = async {
                let mut batch = $crate::group_commit::InBatch::new(state.connection()?);
                let result = async {
                    let $conn = &mut batch;
                    $body
                }
                .await;
                Ok::<_, sqlx::Error>((result, batch.undo()))
            }
            .await;
            let body_ok = matches!(result, Ok((Ok(_), false)));
            let ticket = writer.end_body(state, body_ok).await;
            let settled = writer.settle(ticket).await;
            let value = result?.0?;
            settled?;
            Ok::<_, $crate::StoreError>(value)
        }
        .await
    };
}
pub(crate) use on_postgres_batch;

/// Whether the concrete database of a generic body is PostgreSQL.
pub(crate) fn is_postgres<DB: sqlx::Database>() -> bool {
    DB::NAME == <sqlx::Postgres as sqlx::Database>::NAME
}

/// Whether `connection` runs a query of several statements in one call. SQLite does, in one
/// round trip to the connection's thread (what a write transaction mostly waits for); a
/// PostgreSQL prepared statement holds one statement.
pub(crate) fn runs_statement_lists<C: sqlx::Connection>(_connection: &C) -> bool {
    <C::Database as sqlx::Database>::NAME == <sqlx::Sqlite as sqlx::Database>::NAME
}

impl Store {
    /// Opens the database at `url`: `sqlite:PATH` (created if missing) or `postgres://…`.
    /// A bare path is taken as SQLite.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        Store::connect_with(url, None).await
    }

    /// The PostgreSQL pool's default size: four connections per CPU of this process, at least
    /// four. More connections than the database's CPUs can serve only queue there, switching
    /// between backends: on the 2-CPU benchmark machine, 16 submitting clients sent ~15 % more
    /// per second through 8–10 connections than through 16, with PostgreSQL using less CPU per
    /// submission and a p99 halved (BENCHMARKS.md, thirteenth session).
    pub fn default_postgres_connections() -> u32 {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        u32::try_from(cpus.saturating_mul(4))
            .unwrap_or(u32::MAX)
            .max(4)
    }

    /// `connect`, with the PostgreSQL pool's size (`None`: `default_postgres_connections`).
    /// SQLite ignores it (one writer, eight readers).
    pub async fn connect_with(url: &str, postgres_connections: Option<u32>) -> StoreResult<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No JIT compilation: PostgreSQL compiles a query whose estimated cost passes
            // `jit_above_cost`, and this service's largest queries (a month's indicators, the
            // reminders' round, the first statistics) take less time to run than to compile.
            // Recounting a month of 44 000 referrals took 852 ms, 347 of them compiling, and
            // 495 ms without (BENCHMARKS.md, seventeenth session). Set at connection, so that
            // every connection, the writer's too, has it.
            let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(
                    postgres_connections
                        .unwrap_or_else(Store::default_postgres_connections)
                        .max(1),
                )
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await?;
            let connection = sqlx::ConnectOptions::connect(&options).await?;
            let group = group_commit::GroupWriter::new(
                connection,
                options,
                None,
                Some(group_commit::postgres_simple_query),
            );
            Ok(Store {
                pool: Pool::Postgres(pool.clone()),
                writer: Writer::Postgres(pool, std::sync::Arc::new(group)),
                writer_cpu: None,
            })
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.to_string()));
            }
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a receipt is only given for what is on disk.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            // No test before handing out a connection: an embedded database has no network to
            // lose, and the test was one more round trip to the connection's thread per use.
            let readers = SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await?;
            // Each connection to an in-memory database is a database of its own.
            let in_memory = path.contains(":memory:") || path.contains("mode=memory");
            let mut writer_cpu = None;
            let writer = if in_memory {
                Writer::SqliteShared(readers.clone())
            } else {
                let thread_name = colocate::writer_thread_name();
                let writer_options = options
                    .clone()
                    .thread_name({
                        let thread_name = thread_name.clone();
                        move |_| thread_name.clone()
                    })
                    // Each write in a shared commit is a savepoint, whose journal (the pages'
                    // content before it) SQLite spills to a temporary file past 64 KiB: in
                    // memory it costs no system calls.
                    .pragma("temp_store", "memory");
                let connection = sqlx::ConnectOptions::connect(&writer_options).await?;
                writer_cpu = colocate::pin_named_thread(&thread_name);
                Writer::Sqlite(std::sync::Arc::new(group_commit::GroupWriter::new(
                    connection,
                    writer_options,
                    Some(thread_name),
                    None,
                )))
            };
            Ok(Store {
                pool: Pool::Sqlite(readers),
                writer,
                writer_cpu,
            })
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgresql",
        }
    }

    /// Applies the pending migrations of the backend. Safe to run at every start.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.writer {
            Writer::Sqlite(writer) => {
                let mut state = writer.turn().await?;
                sqlx::migrate!("migrations/sqlite")
                    .run(state.connection()?)
                    .await?;
            }
            Writer::SqliteShared(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Writer::Postgres(pool, _) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Whether the database answers (for `/readyz`).
    ///
    /// The SQLite writer is asked too: it is one connection that nothing replaces, so a writer
    /// that stopped answering must make the instance unready (and restarted). Elsewhere the
    /// writer is the readers' pool, already asked.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        if let Writer::Sqlite(_) = &self.writer {
            on_writer!(self, |conn| sqlx::query("SELECT 1")
                .execute(conn)
                .await
                .map(|_| ()))?;
        }
        Ok(())
    }

    /// On a SQLite file and on PostgreSQL, what the writer connection did since the start (see
    /// `group_commit`); `None` for an in-memory SQLite database.
    pub fn writer_counts(&self) -> Option<WriterCounts> {
        let ((commits, writes), held) = match &self.writer {
            Writer::Sqlite(writer) => (writer.commit_counts(), writer.held()),
            Writer::Postgres(_, writer) => (writer.commit_counts(), writer.held()),
            Writer::SqliteShared(_) => return None,
        };
        Some(WriterCounts {
            commits,
            writes,
            held,
        })
    }

    /// Folds SQLite's write-ahead log into the database file, so that the file alone is a
    /// complete copy (backups, test templates). Nothing to do on PostgreSQL.
    pub async fn checkpoint(&self) -> StoreResult<()> {
        if let Writer::Sqlite(_) | Writer::SqliteShared(_) = &self.writer {
            on_writer!(self, |conn| sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(conn)
                .await
                .map(|_| ()))?;
        }
        Ok(())
    }

    /// Runs raw SQL: only for tests that tamper with the database on purpose.
    #[doc(hidden)]
    pub async fn execute_raw_for_tests(&self, sql: &str) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::raw_sql(sql)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Counts a table's rows: only for tests that look at what the store keeps.
    #[doc(hidden)]
    pub async fn count_rows_for_tests(&self, table: &str) -> StoreResult<i64> {
        let sql = format!("SELECT count(*) FROM {table}");
        Ok(on_pool!(self, |pool| sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(pool)
            .await)?)
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
        match &self.writer {
            Writer::Sqlite(writer) => writer.close().await,
            Writer::SqliteShared(pool) => pool.close().await,
            Writer::Postgres(pool, group) => {
                group.close().await;
                pool.close().await
            }
        }
    }
}

/// Helpers for tests that need a fresh database on either backend.
pub mod testing {
    use super::{Store, StoreResult};
    use sqlx::Connection;

    /// Polls `future` at most `polls` times (once at least), then drops it: a request
    /// cancelled at its `polls`-th await point. Tests cut writes this way rather than with a
    /// timeout, whose 1 ms ticks are longer than some writes and shorter than others on a
    /// loaded machine.
    pub async fn cut_after<F: std::future::Future>(polls: usize, future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut left = polls;
        std::future::poll_fn(|cx| {
            left = left.saturating_sub(1);
            match future.as_mut().poll(cx) {
                std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
                std::task::Poll::Pending if left == 0 => std::task::Poll::Ready(None),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
        .await
    }

    /// The PostgreSQL server tests may use, from `INFOPARQUET_TEST_POSTGRES_URL`. When
    /// `INFOPARQUET_TEST_REQUIRE_SERVICES=1` (as in CI), a missing server is a failure, not a skip.
    pub fn postgres_admin_url() -> Option<String> {
        let url = std::env::var("INFOPARQUET_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.trim().is_empty());
        if url.is_none()
            && std::env::var("INFOPARQUET_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
        {
            panic!(
                "INFOPARQUET_TEST_REQUIRE_SERVICES=1 but INFOPARQUET_TEST_POSTGRES_URL is not set"
            );
        }
        url
    }

    /// `postgres://u@h:5432/postgres?x=y` with the database name replaced.
    fn with_database(url: &str, database: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (url, String::new()),
        };
        let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
        let root = match base[authority_start..].find('/') {
            Some(slash) => &base[..authority_start + slash],
            None => base,
        };
        format!("{root}/{database}{query}")
    }

    /// Creates an empty, migrated PostgreSQL database with a unique name.
    pub async fn fresh_postgres(admin_url: &str) -> StoreResult<(Store, String)> {
        let url = empty_postgres(admin_url).await?;
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        Ok((store, url))
    }

    /// Creates a PostgreSQL database with nothing in it (not migrated), as `restore` expects.
    pub async fn empty_postgres(admin_url: &str) -> StoreResult<String> {
        let name = format!("ip_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(with_database(admin_url, &name))
    }

    /// Creates an empty, migrated SQLite database in `directory`.
    pub async fn fresh_sqlite(directory: &std::path::Path) -> StoreResult<(Store, String)> {
        let url = format!(
            "sqlite:{}",
            directory
                .join(format!("{}.db", uuid::Uuid::new_v4().simple()))
                .display()
        );
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        Ok((store, url))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn replaces_the_database_name() {
            assert_eq!(
                super::with_database("postgres://u@h:5432/postgres", "x"),
                "postgres://u@h:5432/x"
            );
            assert_eq!(
                super::with_database("postgres://u@h/postgres?sslmode=disable", "x"),
                "postgres://u@h/x?sslmode=disable"
            );
            assert_eq!(
                super::with_database("postgres://u@h", "x"),
                "postgres://u@h/x"
            );
        }
    }
}

#[cfg(test)]
mod writer_tests {
    use crate::{ActorInfo, AuditInput, Store};

    fn entry(n: usize) -> AuditInput {
        AuditInput {
            at: chrono::Utc::now(),
            actor: ActorInfo {
                user_id: None,
                name: "Essai".into(),
                role: "system".into(),
                organisation: "Info Parquet".into(),
            },
            action: "test.write".into(),
            target: format!("write:{n}"),
            detail: String::new(),
        }
    }

    async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite:{}", dir.path().join("writer.db").display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// Writers from many tasks take the one connection in turns: every write lands, once, and
    /// the journal they extend stays whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_take_turns_and_all_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite_store(&dir).await;
        let writes: Vec<_> = (0..64)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.audit(&entry(n)).await })
            })
            .collect();
        for write in writes {
            write.await.expect("task").expect("write");
        }
        let entries = store.audit_entries(0, 1000).await.expect("entries");
        let mut targets: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "test.write")
            .map(|e| e.target.clone())
            .collect();
        targets.sort();
        targets.dedup();
        assert_eq!(targets.len(), 64);
        assert!(store.verify_audit_chain().await.expect("verify").is_ok());
        // Writers that queued shared commits.
        let counts = store.writer_counts().expect("a SQLite file");
        assert_eq!(counts.writes, 64);
        assert!(
            counts.commits < 64,
            "{} commits for 64 queued writes",
            counts.commits
        );
        assert!(!counts.held.is_zero(), "the writes held the connection");
    }

    /// A write abandoned halfway (its request cancelled) leaves no transaction open on the
    /// shared connection: the writes after it are committed and visible to the readers.
    #[tokio::test(flavor = "current_thread")]
    async fn an_abandoned_write_leaves_the_connection_usable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite_store(&dir).await;
        let mut abandoned = 0;
        // A single-threaded runtime awaits the write (it cannot block on the writer's CPU),
        // so the write can be cut at any of its await points.
        for n in 0..60 {
            if crate::testing::cut_after(n + 1, store.audit(&entry(n)))
                .await
                .is_none()
            {
                abandoned += 1;
            }
        }
        assert!(abandoned > 0, "no write was cut short");
        assert!(abandoned < 60, "every write was cut short");
        store.audit(&entry(1000)).await.expect("write after");
        // Read through the readers' pool: only committed rows are visible there.
        let entries = store.audit_entries(0, 1000).await.expect("entries");
        assert!(entries.iter().any(|e| e.target == "write:1000"));
        assert!(store.verify_audit_chain().await.expect("verify").is_ok());
        store.ping().await.expect("ready");
    }

    /// Every PostgreSQL connection of the store, the pool's and the writer's, runs without
    /// JIT compilation (see `Store::connect_with`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_connections_run_without_jit() {
        let Some(admin) = crate::testing::postgres_admin_url() else {
            eprintln!("NOTICE: INFOPARQUET_TEST_POSTGRES_URL is not set: JIT test skipped");
            return;
        };
        let (store, _) = crate::testing::fresh_postgres(&admin)
            .await
            .expect("postgres");
        let crate::Writer::Postgres(pool, writer) = &store.writer else {
            panic!("a PostgreSQL store has a PostgreSQL writer");
        };
        let show_jit = "SELECT current_setting('jit')";
        let pooled: String = sqlx::query_scalar(show_jit)
            .fetch_one(pool)
            .await
            .expect("pool");
        let mut state = writer.turn().await.expect("writer");
        let written: String = sqlx::query_scalar(show_jit)
            .fetch_one(state.connection().expect("connection"))
            .await
            .expect("writer");
        assert_eq!((pooled.as_str(), written.as_str()), ("off", "off"));
    }

    /// Once the store is closed, a write fails at once instead of waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_after_close_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite_store(&dir).await;
        store.audit(&entry(1)).await.expect("before close");
        store.close().await;
        assert!(store.audit(&entry(2)).await.is_err());
    }
}
