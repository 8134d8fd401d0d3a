//! Group commit for the writer connection: when writers queue for the one connection, their
//! transactions share one database transaction and one commit. SQLite has one writer anyway;
//! on PostgreSQL the requests' writes (`on_batched_writer!`) go through one connection of
//! their own the same way, where they used to take turns on row locks.
//!
//! Why on PostgreSQL: every write appends to the journal, whose head each transaction holds
//! from its entry to the end of its commit, so commits followed each other, each waiting for
//! its own WAL sync (3.1 syncs per submission, 0.63 ms each, on the benchmark machine), and
//! 16 backends woke each other in turn. Sharing commits cut PostgreSQL's CPU per submission
//! by a fifth to a third (BENCHMARKS.md, fourteenth session).
//!
//! On SQLite, every commit appends each page the transaction changed to the write-ahead log,
//! fsyncs it, and later copies those pages into the database file. A submission makes three
//! transactions, and at 1.2 million referrals they wrote 84.5 pages per submission, most of
//! them the same few: the file header, the journal's head and last page, the last pages of the
//! events and of each index. Read from the log of 300 submissions, eight transactions per
//! commit would have written 28.6 pages per submission, and sixteen 18.9 (BENCHMARKS.md).
//!
//! How a batch runs:
//! - The first writer to take the connection begins the batch's transaction. Each writer's own
//!   transaction (`conn.begin()` in its body) becomes a savepoint inside it, so a body that
//!   fails undoes only its own work.
//! - After its body, a writer hands the connection on without committing when another writer
//!   is queued, and waits for the batch's outcome. The last writer of a batch (nobody queued,
//!   a body that failed, or `MAX_BODIES`) commits and tells the others.
//! - No writer answers before the commit that holds its work is on disk. A commit that fails
//!   fails every writer of the batch: none of them gave a receipt for anything lost.
//!
//! With a single writer nobody is queued, and each transaction commits at once, as before.
//!
//! A body that fails must undo only its own work, so each runs in a savepoint:
//! - On SQLite each body takes its own (`begin_body`, a `conn.begin()`): a savepoint costs no
//!   round trip there.
//! - On PostgreSQL, where a statement that fails aborts the whole transaction unless it ran in
//!   a savepoint, the writer takes it for the body, in the round trips it makes anyway: with
//!   the batch's `BEGIN`, and when a body hands the batch on, by releasing its savepoint and
//!   taking the next body's in one query. A failed body is rolled back to its savepoint before
//!   the commit. Why: each round trip on the one writer connection waited for the request's
//!   task to be scheduled again (a quarter of a millisecond under load, read from
//!   `pg_stat_activity`), and everything else waits for the writer; a savepoint pair of its
//!   own took two of a submission's ten round trips per write (BENCHMARKS.md, fifteenth
//!   session).

use sqlx::{ConnectOptions, Connection, Database, TransactionManager};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex, MutexGuard};

/// At most this many transactions share a commit, so that the first writer of a batch waits a
/// bounded time for its answer. Not tuned: batches of the benchmark's 16 clients held 7–9.
const MAX_BODIES: usize = 16;

/// How long a writer waits for its batch's outcome before committing the batch itself: a
/// writer queued behind it may have been cancelled (its request dropped) and never come.
const OUTCOME_WAIT: Duration = Duration::from_secs(1);

/// How long a write waits for its turn before giving up (as a pool's acquire timeout would).
const TURN_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of a batch: committed, or the reason it was not.
type Outcome = Result<(), String>;

/// How a batch begins on PostgreSQL: it locks the journal's head, then takes its first body's
/// savepoint (see the module's comment), in one round trip. Every batch appends to the
/// journal, and would take the head with its first entry and hold it to the commit, while its
/// later bodies lock other rows (the year's counter, a referral). Taken first, the head orders
/// every other lock after it: the batches of two servers on one database queue for it
/// instead of deadlocking (`two_servers_on_one_postgres_database_write_without_deadlocks`).
static BEGIN_WITH_BODY_SAVEPOINT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "BEGIN; {}; SAVEPOINT batched_body",
        crate::audit::POSTGRES_LOCK_HEAD
    )
});
/// When a body hands the batch on: its savepoint released, the next body's taken.
const NEXT_BODY_SAVEPOINT: &str = "RELEASE SAVEPOINT batched_body; SAVEPOINT batched_body";
/// When the last body of a batch ended well, before the commit. Also how the writer learns
/// that a statement whose error a body did not pass on aborted the transaction: PostgreSQL
/// answers a `COMMIT` of an aborted transaction by rolling it back, without an error.
const RELEASE_BODY_SAVEPOINT: &str = "RELEASE SAVEPOINT batched_body";
/// When a body failed, before the commit of the bodies before it.
const UNDO_BODY: &str = "ROLLBACK TO SAVEPOINT batched_body";

/// The writer connection, taken in turns in arrival order, with the batch it may hold open.
#[derive(Debug)]
pub(crate) struct GroupWriter<DB: Database = sqlx::Sqlite> {
    state: Mutex<State<DB::Connection>>,
    /// Writers waiting for the connection: a writer hands its batch on only to one of them.
    queued: AtomicUsize,
    next_batch: AtomicU64,
    /// Batches committed, and the bodies they held: how much commits are shared.
    commits: AtomicU64,
    committed_bodies: AtomicU64,
    /// Nanoseconds the connection was held by writers since the start. Every write waits for
    /// this one connection, so the share of time it is held says how near it is to its limit.
    held_nanos: AtomicU64,
    /// To open a fresh connection after a failed commit left the old one in doubt.
    options: <DB::Connection as Connection>::Options,
    /// SQLite: the connection thread's name, to pin a fresh connection's thread as the first
    /// one was (see `colocate`).
    thread_name: Option<String>,
    /// PostgreSQL: how the writer takes each body's savepoint (see the module's comment).
    body_savepoints: Option<RunSimple<DB::Connection>>,
}

#[derive(Debug)]
pub(crate) struct State<C> {
    /// `None` once closed, or after a failed commit until the next turn reconnects.
    connection: Option<C>,
    closed: bool,
    batch: Option<Batch>,
    /// Set while the writer's own `BEGIN` or `COMMIT` is under way. A turn cancelled then
    /// (possible where `colocate::drive` cannot block, as in a single-threaded runtime) leaves
    /// it set. The connection is then in doubt: sqlx, having sent a `COMMIT` whose answer
    /// nobody read, ignores the next rollback a body asks for. The next turn starts afresh.
    in_doubt: bool,
}

#[derive(Debug)]
struct Batch {
    id: u64,
    bodies: usize,
    outcome: watch::Sender<Option<Outcome>>,
}

/// What a writer waits for after its body: its batch's outcome.
#[must_use]
pub(crate) enum Ticket {
    Settled(Outcome),
    Pending {
        batch: u64,
        outcome: watch::Receiver<Option<Outcome>>,
    },
}

/// The writer's state while one writer holds it; adds the time held to the writer's count
/// when let go.
pub(crate) struct Held<'a, C> {
    guard: MutexGuard<'a, State<C>>,
    since: Instant,
    held_nanos: &'a AtomicU64,
}

impl<C> std::ops::Deref for Held<'_, C> {
    type Target = State<C>;
    fn deref(&self) -> &State<C> {
        &self.guard
    }
}

impl<C> std::ops::DerefMut for Held<'_, C> {
    fn deref_mut(&mut self) -> &mut State<C> {
        &mut self.guard
    }
}

impl<C> Drop for Held<'_, C> {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.held_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Counts a writer as queued until it holds the connection or gives up.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Queued(counter)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C> State<C> {
    pub(crate) fn connection(&mut self) -> Result<&mut C, sqlx::Error> {
        self.connection.as_mut().ok_or(sqlx::Error::PoolClosed)
    }
}

/// How the writer sends statements of its own without parameters, several in one round trip
/// (a simple query): given on PostgreSQL, where it takes each body's savepoint with them.
pub(crate) type RunSimple<C> =
    for<'c> fn(&'c mut C, &'static str) -> BoxFuture<'c, Result<(), sqlx::Error>>;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// `RunSimple` on PostgreSQL. A function rather than a generic bound on `Executor`: a
/// higher-ranked bound there made the requests' futures fail to prove `Send`.
pub(crate) fn postgres_simple_query<'c>(
    connection: &'c mut sqlx::PgConnection,
    sql: &'static str,
) -> BoxFuture<'c, Result<(), sqlx::Error>> {
    // A `&str` without arguments goes as a simple query.
    Box::pin(async move { sqlx::Executor::execute(connection, sql).await.map(|_| ()) })
}

impl<DB: Database> GroupWriter<DB> {
    /// `options` must name the connection's thread `thread_name` when there is one. With
    /// `body_savepoints` (PostgreSQL), the writer takes each body's savepoint; without
    /// (SQLite), each body takes its own.
    pub(crate) fn new(
        connection: DB::Connection,
        options: <DB::Connection as Connection>::Options,
        thread_name: Option<String>,
        body_savepoints: Option<RunSimple<DB::Connection>>,
    ) -> Self {
        GroupWriter {
            state: Mutex::new(State {
                connection: Some(connection),
                closed: false,
                batch: None,
                in_doubt: false,
            }),
            queued: AtomicUsize::new(0),
            next_batch: AtomicU64::new(1),
            commits: AtomicU64::new(0),
            committed_bodies: AtomicU64::new(0),
            held_nanos: AtomicU64::new(0),
            options,
            thread_name,
            body_savepoints,
        }
    }

    /// Waits for the connection, in arrival order.
    async fn lock(&self) -> Result<Held<'_, DB::Connection>, sqlx::Error> {
        let _queued = Queued::new(&self.queued);
        let guard = tokio::time::timeout(TURN_TIMEOUT, self.state.lock())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        let mut state = Held {
            guard,
            since: Instant::now(),
            held_nanos: &self.held_nanos,
        };
        if state.closed {
            return Err(sqlx::Error::PoolClosed);
        }
        if state.in_doubt {
            let batch = state.batch.take();
            give_up_connection(&mut state).await;
            if let Some(batch) = batch {
                // Its commit may or may not have happened: its writers are told it failed.
                batch.outcome.send_replace(Some(Err(
                    "the commit was cancelled midway and its outcome is unknown".into(),
                )));
            }
        }
        if state.connection.is_none() {
            self.reconnect(&mut state).await?;
        }
        Ok(state)
    }

    async fn reconnect(&self, state: &mut State<DB::Connection>) -> Result<(), sqlx::Error> {
        state.connection = Some(self.options.connect().await?);
        if let Some(thread_name) = &self.thread_name {
            crate::colocate::pin_named_thread(thread_name);
        }
        Ok(())
    }

    /// The connection for a write of its own (outside any batch): the open batch is committed
    /// first, so that the write may run statements no transaction may hold (a checkpoint, a
    /// migration).
    pub(crate) async fn turn(&self) -> Result<Held<'_, DB::Connection>, sqlx::Error> {
        let mut state = self.lock().await?;
        if state.batch.is_some() && self.commit(&mut state).await.is_err() {
            // The batch's writers are told; this write goes on, on a fresh connection.
            drop(state);
            state = self.lock().await?;
        }
        Ok(state)
    }

    /// The connection inside the open batch (begun if none is open), for a write that may share
    /// its commit. Finish with `end_body`.
    pub(crate) async fn batched_turn(&self) -> Result<Held<'_, DB::Connection>, sqlx::Error> {
        let mut state = self.lock().await?;
        if state.batch.is_none() {
            let begin = || {
                self.body_savepoints
                    .map(|_| std::borrow::Cow::Borrowed(BEGIN_WITH_BODY_SAVEPOINT.as_str()))
            };
            state.in_doubt = true;
            if DB::TransactionManager::begin(state.connection()?, begin())
                .await
                .is_err()
            {
                // A connection the server dropped while it was idle (PostgreSQL restarted, an
                // idle timeout) fails its first statement: one fresh connection is tried
                // before the write fails. Nothing was begun, so nothing is lost.
                give_up_connection(&mut state).await;
                self.reconnect(&mut state).await?;
                state.in_doubt = true;
                DB::TransactionManager::begin(state.connection()?, begin()).await?;
            }
            state.in_doubt = false;
            let (outcome, _) = watch::channel(None);
            state.batch = Some(Batch {
                id: self.next_batch.fetch_add(1, Ordering::Relaxed),
                bodies: 0,
                outcome,
            });
        }
        Ok(state)
    }

    /// `batched_turn`, with the connection in doubt until `end_body`: a body cancelled midway
    /// (its request dropped) may leave a statement half-answered and a savepoint the driver
    /// no longer counts. On PostgreSQL, whose writes are not driven to completion as SQLite's
    /// are (`colocate::drive`), the next turn then gives up the connection and fails the batch.
    pub(crate) async fn batched_turn_until_ended(
        &self,
    ) -> Result<Held<'_, DB::Connection>, sqlx::Error> {
        let mut state = self.batched_turn().await?;
        state.in_doubt = true;
        Ok(state)
    }

    /// After a body ran in the batch: hands the batch on to a queued writer, or commits it.
    pub(crate) async fn end_body(
        &self,
        mut state: Held<'_, DB::Connection>,
        body_ok: bool,
    ) -> Ticket {
        state.in_doubt = false;
        let Some(batch) = state.batch.as_mut() else {
            // Not reached: the batch was opened in this turn, and only its holder commits it.
            return Ticket::Settled(Err("no batch was open".into()));
        };
        batch.bodies += 1;
        // A body that failed may have cost the whole transaction (SQLite rolls it back on a full
        // disk or an IO error): committing now tells its batch at once.
        if body_ok && batch.bodies < MAX_BODIES && self.queued.load(Ordering::Acquire) > 0 {
            let ticket = Ticket::Pending {
                batch: batch.id,
                outcome: batch.outcome.subscribe(),
            };
            if let Err(error) = self.close_body(&mut state, NEXT_BODY_SAVEPOINT).await {
                // The transaction is unusable: a commit would roll it back silently.
                return Ticket::Settled(Err(self.fail(&mut state, &error).await));
            }
            drop(state);
            return ticket;
        }
        let close = if body_ok {
            RELEASE_BODY_SAVEPOINT
        } else {
            UNDO_BODY
        };
        if let Err(error) = self.close_body(&mut state, close).await {
            return Ticket::Settled(Err(self.fail(&mut state, &error).await));
        }
        Ticket::Settled(self.commit(&mut state).await.map_err(|e| e.to_string()))
    }

    /// Ends a body's savepoint when the writer took it (see the module's comment); nothing
    /// to do otherwise.
    async fn close_body(
        &self,
        state: &mut State<DB::Connection>,
        sql: &'static str,
    ) -> Result<(), sqlx::Error> {
        let Some(run_simple) = self.body_savepoints else {
            return Ok(());
        };
        state.in_doubt = true;
        let result = run_simple(state.connection()?, sql).await;
        state.in_doubt = false;
        result
    }

    /// Fails the open batch without committing it: its writers are told, and the connection,
    /// whose transaction is unusable, is given up. Returns the reason given.
    async fn fail(&self, state: &mut State<DB::Connection>, error: &sqlx::Error) -> String {
        let reason = error.to_string();
        give_up_connection(state).await;
        if let Some(batch) = state.batch.take() {
            batch.outcome.send_replace(Some(Err(reason.clone())));
        }
        reason
    }

    /// Commits the open batch and tells its writers. After a failure the connection is given
    /// up: whether SQLite kept or rolled back the transaction is uncertain, and the next turn
    /// opens a fresh connection.
    async fn commit(&self, state: &mut State<DB::Connection>) -> Result<(), sqlx::Error> {
        state.in_doubt = true;
        let result = match state.connection.as_mut() {
            Some(conn) => commit_open::<DB>(conn).await,
            None => Err(sqlx::Error::PoolClosed),
        };
        state.in_doubt = false;
        if result.is_err() {
            give_up_connection(state).await;
        }
        if let Some(batch) = state.batch.take() {
            if result.is_ok() {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.committed_bodies
                    .fetch_add(batch.bodies as u64, Ordering::Relaxed);
            }
            batch
                .outcome
                .send_replace(Some(result.as_ref().map(|_| ()).map_err(|e| e.to_string())));
        }
        result
    }

    /// Waits until the batch holding a body's work is committed (or has failed).
    pub(crate) async fn settle(&self, ticket: Ticket) -> Result<(), sqlx::Error> {
        let (batch, mut outcome) = match ticket {
            Ticket::Settled(outcome) => return outcome.map_err(batch_failed),
            Ticket::Pending { batch, outcome } => (batch, outcome),
        };
        loop {
            let waited = tokio::time::timeout(OUTCOME_WAIT, outcome.wait_for(Option::is_some))
                .await
                .map(|settled| settled.map(|settled| settled.clone().unwrap_or(Ok(()))));
            match waited {
                Ok(Ok(settled)) => return settled.map_err(batch_failed),
                Ok(Err(_)) => return Err(batch_failed("the writer was closed".into())),
                Err(_) => {
                    // Nobody came to commit: the writer it was handed to gave up.
                    let mut state = self.lock().await?;
                    if state.batch.as_ref().is_some_and(|open| open.id == batch) {
                        let _ = self.commit(&mut state).await;
                    }
                }
            }
        }
    }

    /// Batches committed so far, and the writes they held.
    pub(crate) fn commit_counts(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.committed_bodies.load(Ordering::Relaxed),
        )
    }

    /// How long writers have held the connection since the start.
    pub(crate) fn held(&self) -> Duration {
        Duration::from_nanos(self.held_nanos.load(Ordering::Relaxed))
    }

    /// Commits the open batch and closes the connection; writes fail from then on.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        if state.batch.is_some() && !state.in_doubt {
            let _ = self.commit(&mut state).await;
        }
        state.closed = true;
        give_up_connection(&mut state).await;
    }
}

/// Closes the connection, which rolls back whatever it still holds open.
async fn give_up_connection<C: Connection>(state: &mut State<C>) {
    state.in_doubt = false;
    if let Some(connection) = state.connection.take() {
        let _ = connection.close().await;
    }
}

/// Commits the batch's transaction, and first the savepoints of bodies whose rollback is still
/// on its way to the connection's thread (the depth read here may not count it yet).
///
/// A batch whose transaction is no longer open fails instead: when a body's savepoint cannot
/// be taken (its connection dropped, PostgreSQL restarted), the driver undoes it at the depth
/// it was at, the batch's own transaction, and every body before it in the batch is gone.
/// Found by the PostgreSQL restart drill: drafts answered 201 and sendings given a receipt
/// were missing after the restart.
async fn commit_open<DB: Database>(conn: &mut DB::Connection) -> Result<(), sqlx::Error> {
    if DB::TransactionManager::get_transaction_depth(conn) == 0 {
        return Err(sqlx::Error::Io(std::io::Error::other(
            "the batch's transaction was rolled back",
        )));
    }
    while DB::TransactionManager::get_transaction_depth(conn) > 0 {
        DB::TransactionManager::commit(conn).await?;
    }
    Ok(())
}

fn batch_failed(reason: String) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the shared commit of this write failed: {reason}"
    )))
}

/// The connection a PostgreSQL body gets in its batch (`on_postgres_batch!`): whatever it
/// runs is already inside the savepoint the writer took for it.
pub(crate) struct InBatch<'a> {
    connection: &'a mut sqlx::PgConnection,
    /// Set when a body's transaction was dropped without being committed: the writer then
    /// undoes the body's work, as dropping a transaction would.
    undo: bool,
}

impl<'a> InBatch<'a> {
    pub(crate) fn new(connection: &'a mut sqlx::PgConnection) -> Self {
        InBatch {
            connection,
            undo: false,
        }
    }

    /// Whether the body's work must be undone although the body did not fail.
    pub(crate) fn undo(&self) -> bool {
        self.undo
    }

    /// A body's transaction (see `BodyConnection::begin_body`): the writer's savepoint.
    pub(crate) async fn begin_body(&mut self) -> Result<WritersSavepoint<'_, 'a>, sqlx::Error> {
        Ok(WritersSavepoint {
            batch: self,
            committed: false,
        })
    }
}

impl std::ops::Deref for InBatch<'_> {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &sqlx::PgConnection {
        self.connection
    }
}

impl std::ops::DerefMut for InBatch<'_> {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        self.connection
    }
}

/// The connection a SQLite body gets in its batch. Every batched body begins its transaction
/// with `begin_body()`, on either backend: its own savepoint on SQLite, the writer's on
/// PostgreSQL (`InBatch`, see the module's comment). It ends with `commit()`; dropped without
/// it, the body's work is undone, as a transaction's would be.
pub(crate) struct BodyConnection<'a>(pub(crate) &'a mut sqlx::SqliteConnection);

impl BodyConnection<'_> {
    pub(crate) async fn begin_body(
        &mut self,
    ) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, sqlx::Error> {
        Connection::begin(&mut *self.0).await
    }
}

/// A PostgreSQL body's transaction: the savepoint the writer took for it, which the writer
/// releases when the body ends well, and rolls back if it fails or drops this uncommitted.
pub(crate) struct WritersSavepoint<'c, 'a> {
    batch: &'c mut InBatch<'a>,
    committed: bool,
}

impl WritersSavepoint<'_, '_> {
    /// Nothing to send: the writer releases the savepoint after the body.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.committed = true;
        Ok(())
    }
}

impl Drop for WritersSavepoint<'_, '_> {
    fn drop(&mut self) {
        if !self.committed {
            self.batch.undo = true;
        }
    }
}

impl std::ops::Deref for WritersSavepoint<'_, '_> {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &sqlx::PgConnection {
        self.batch.connection
    }
}

impl std::ops::DerefMut for WritersSavepoint<'_, '_> {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        self.batch.connection
    }
}
