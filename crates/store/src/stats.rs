//! Storage of the indicators' monthly cells (see `domain::stats`). Every timeline entry queues
//! its referral in `stats_changes` within its own transaction, so no change can be missed. The
//! worker then reads what each queued referral counts as now, takes what it was last counted as
//! (`stats_counted`) out of its month's cells and adds the new one; a month with many queued
//! referrals (after a bulk load) is counted afresh, whole. The cells of one scope and month are
//! stored in one row (`stats_months`), encoded, so that a page over ten years reads 120 rows,
//! not 28 000.

use crate::{on_pool, on_writer, Store, StoreResult};
use chrono::{DateTime, NaiveDate, Utc};
use domain::stats::{
    Axis, Cell, CellSet, Contribution, Counts, OpenReferrals, ReferralFacts, Scope,
};
use futures_util::TryStreamExt;
use sqlx::types::Json;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Which cells an indicators page reads: one scope, months from and to (yyyymm, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatsFilter {
    pub scope: Scope,
    pub from_month: Option<i32>,
    pub to_month: Option<i32>,
}

impl StatsFilter {
    /// The period as instants: [start of the first month, start of the month after the last).
    fn instants(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (
            self.from_month.and_then(domain::stats::month_start),
            self.to_month
                .map(domain::stats::next_month)
                .and_then(domain::stats::month_start),
        )
    }
}

#[derive(sqlx::FromRow)]
struct FactsRow {
    id: Uuid,
    kind: String,
    gravity: Option<i64>,
    administration_id: Uuid,
    parquet_id: Option<Uuid>,
    urgency: String,
    status: String,
    submitted_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    registered_at: Option<DateTime<Utc>>,
    decided_at: Option<DateTime<Utc>>,
    decision: Option<Json<crate::Decision>>,
    immediate_acknowledge_minutes: Option<i64>,
    urgent_acknowledge_hours: Option<i64>,
}

/// One cell as stored in a month's encoded list (postcard). The scope and month are the row's.
/// The lists are derived data: a change of this layout is a migration that requeues every
/// referral (as 0016 does), never a conversion.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredCell<'a> {
    axis: i16,
    #[serde(borrow)]
    value: Cow<'a, str>,
    received: i64,
    decided: i64,
    dismissed: i64,
    urgent: i64,
    urgent_in_time: i64,
    #[serde(borrow, with = "serde_bytes")]
    to_acknowledgement: Cow<'a, [u8]>,
    #[serde(borrow, with = "serde_bytes")]
    to_registration: Cow<'a, [u8]>,
    #[serde(borrow, with = "serde_bytes")]
    to_decision: Cow<'a, [u8]>,
}

impl<'a> StoredCell<'a> {
    fn of(cell: &'a Cell) -> Self {
        StoredCell {
            axis: cell.axis.code(),
            value: Cow::Borrowed(&cell.value),
            received: cell.counts.received,
            decided: cell.counts.decided,
            dismissed: cell.counts.dismissed,
            urgent: cell.counts.urgent,
            urgent_in_time: cell.counts.urgent_in_time,
            to_acknowledgement: Cow::Borrowed(&cell.to_acknowledgement),
            to_registration: Cow::Borrowed(&cell.to_registration),
            to_decision: Cow::Borrowed(&cell.to_decision),
        }
    }

    fn into_cell(self, scope: Scope, month: i32) -> Option<Cell> {
        Some(Cell {
            month,
            scope,
            axis: Axis::from_code(self.axis)?,
            value: self.value.into_owned(),
            counts: Counts {
                received: self.received,
                decided: self.decided,
                dismissed: self.dismissed,
                urgent: self.urgent,
                urgent_in_time: self.urgent_in_time,
            },
            to_acknowledgement: self.to_acknowledgement.into_owned(),
            to_registration: self.to_registration.into_owned(),
            to_decision: self.to_decision.into_owned(),
        })
    }
}

/// The row of one scope and month: its cells, split in two encoded lists (see 0016).
struct MonthRow {
    scope: Scope,
    month: i32,
    cells: Vec<u8>,
    organisation_cells: Vec<u8>,
}

/// Groups a month's cells by scope and encodes each group's two lists.
fn month_rows(month: i32, cells: &[Cell]) -> Result<Vec<MonthRow>, postcard::Error> {
    type Lists<'a> = (Vec<StoredCell<'a>>, Vec<StoredCell<'a>>);
    let mut by_scope: BTreeMap<Scope, Lists<'_>> = BTreeMap::new();
    for cell in cells {
        let (common, per_organisation) = by_scope.entry(cell.scope).or_default();
        if is_per_organisation(cell.axis) {
            per_organisation.push(StoredCell::of(cell));
        } else {
            common.push(StoredCell::of(cell));
        }
    }
    by_scope
        .into_iter()
        .map(|(scope, (cells, organisation_cells))| {
            Ok(MonthRow {
                scope,
                month,
                cells: postcard::to_allocvec(&cells)?,
                organisation_cells: postcard::to_allocvec(&organisation_cells)?,
            })
        })
        .collect()
}

fn is_per_organisation(axis: Axis) -> bool {
    matches!(axis, Axis::Parquet | Axis::Administration)
}

/// Decodes a month's list; a list that does not decode is reported as a database error, since
/// it can only come from damaged storage.
fn decode_cells(
    encoded: &[u8],
    scope: Scope,
    month: i32,
    into: &mut Vec<Cell>,
) -> Result<(), sqlx::Error> {
    let stored: Vec<StoredCell<'_>> =
        postcard::from_bytes(encoded).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    into.extend(stored.into_iter().filter_map(|c| c.into_cell(scope, month)));
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    id: i64,
    referral_id: Uuid,
    submitted_at: Option<DateTime<Utc>>,
}

impl FactsRow {
    fn into_facts(self, defaults: &crate::ParquetSettings) -> (Uuid, ReferralFacts) {
        let acknowledge_within = match self.urgency.as_str() {
            "immediate" => Some(chrono::Duration::minutes(
                self.immediate_acknowledge_minutes
                    .unwrap_or(defaults.immediate_acknowledge_minutes)
                    .max(1),
            )),
            "urgent" => Some(chrono::Duration::hours(
                self.urgent_acknowledge_hours
                    .unwrap_or(defaults.urgent_acknowledge_hours)
                    .max(1),
            )),
            _ => None,
        };
        let facts = ReferralFacts {
            kind: self.kind,
            gravity: self.gravity,
            administration_id: self.administration_id,
            parquet_id: self.parquet_id,
            urgency: self.urgency,
            status: self.status,
            submitted_at: self.submitted_at,
            acknowledged_at: self.acknowledged_at,
            registered_at: self.registered_at,
            decided_at: self.decided_at,
            decision_kind: self.decision.as_ref().map(|d| d.0.kind.clone()),
            reason_code: self.decision.and_then(|d| d.0.reason_code),
            acknowledge_within,
        };
        (self.id, facts)
    }
}

/// The facts of referrals, then the condition saying which.
const FACTS_OF_REFERRALS: &str = "SELECT r.id, r.kind, r.urgency, r.status, r.submitted_at, r.acknowledged_at, \
     r.registered_at, r.decided_at, r.decision, r.administration_id, r.parquet_id, \
     CAST(s.immediate_acknowledge_minutes AS BIGINT) AS immediate_acknowledge_minutes, \
     CAST(s.urgent_acknowledge_hours AS BIGINT) AS urgent_acknowledge_hours, \
     CAST((SELECT MIN(CASE WHEN LOWER(o.nature) LIKE 'crime%' THEN 1 WHEN LOWER(o.nature) LIKE 'd_lit%' THEN 2 ELSE 3 END) \
        FROM referral_offences ro JOIN offences o ON o.code = ro.code WHERE ro.referral_id = r.id) AS BIGINT) AS gravity \
     FROM referrals r LEFT JOIN parquet_settings s ON s.parquet_id = r.parquet_id WHERE ";

/// A month with at least this many queued referrals is counted afresh, whole: after a bulk
/// load, reading the month once is cheaper than taking each referral out and back in. The
/// worker's rounds (every few seconds) stay far under it.
const RECOUNT_MONTH_FROM: usize = 5_000;

fn encode_contribution(contribution: &Contribution) -> Result<Vec<u8>, sqlx::Error> {
    postcard::to_allocvec(contribution).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// A stored contribution that does not decode can only come from damaged storage.
fn decode_contribution(encoded: &[u8]) -> Result<Contribution, sqlx::Error> {
    postcard::from_bytes(encoded).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// What one writing step of a refresh replaces, in one transaction.
struct CellsWrite {
    month: i32,
    /// `None`: the whole month, its rows and its referrals' contributions. Otherwise, the rows
    /// of these scopes (by id) in that month, and the contributions of `referrals`.
    scope_ids: Option<Vec<Uuid>>,
    referrals: Vec<Uuid>,
    rows: Vec<MonthRow>,
    /// The referrals' new contributions, encoded.
    counted: Vec<(Uuid, Vec<u8>)>,
}

impl CellsWrite {
    /// Encodes a month's cells and the contributions they now hold.
    fn new(
        month: i32,
        cells: CellSet,
        scope_ids: Option<Vec<Uuid>>,
        referrals: Vec<Uuid>,
        counted: &[(Uuid, Contribution)],
    ) -> Result<CellsWrite, sqlx::Error> {
        Ok(CellsWrite {
            month,
            rows: month_rows(month, &cells.into_cells())
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
            scope_ids,
            referrals,
            counted: counted
                .iter()
                .map(|(id, contribution)| Ok((*id, encode_contribution(contribution)?)))
                .collect::<Result<_, sqlx::Error>>()?,
        })
    }
}

/// The referrals of one month whose contribution changed: what to take out, what to add.
#[derive(Default)]
struct MonthChanges {
    removed: Vec<(Uuid, Contribution)>,
    added: Vec<(Uuid, Contribution)>,
}

impl MonthChanges {
    fn all(&self) -> impl Iterator<Item = &(Uuid, Contribution)> {
        self.removed.iter().chain(&self.added)
    }

    /// The scopes whose rows change (by id: the national one is the nil id).
    fn scope_ids(&self) -> Vec<Uuid> {
        let scopes: BTreeSet<Uuid> = self
            .all()
            .flat_map(|(_, c)| c.scopes())
            .map(Scope::id)
            .collect();
        scopes.into_iter().collect()
    }

    /// Takes the changes out of and into the month's stored cells (those of `scope_ids`).
    fn into_write(
        self,
        month: i32,
        stored: Vec<Cell>,
        scope_ids: Vec<Uuid>,
    ) -> Result<CellsWrite, sqlx::Error> {
        let mut cells = CellSet::from_cells(stored);
        for (_, contribution) in &self.removed {
            cells.remove(contribution);
        }
        for (_, contribution) in &self.added {
            cells.add(contribution);
        }
        let referrals: BTreeSet<Uuid> = self.all().map(|(id, _)| *id).collect();
        CellsWrite::new(
            month,
            cells,
            Some(scope_ids),
            referrals.into_iter().collect(),
            &self.added,
        )
    }
}

/// Runs counting, CPU work that grows with a month (55 ms for 10 000 referrals and 220 ms for
/// 36 000 on the benchmark machine), on a blocking thread. On a runtime worker (one of two
/// there), the tasks queued on that worker would wait until the other one steals them, the
/// writer's among them; on a blocking thread it only takes a CPU.
async fn counted_off_the_runtime(
    count: impl FnOnce() -> Result<CellsWrite, sqlx::Error> + Send + 'static,
) -> Result<CellsWrite, sqlx::Error> {
    tokio::task::spawn_blocking(count)
        .await
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
}

#[derive(sqlx::FromRow)]
struct OpenRow {
    under_1: Option<i64>,
    under_3: Option<i64>,
    under_6: Option<i64>,
    under_12: Option<i64>,
    older: Option<i64>,
    nearing: Option<i64>,
}

/// Rows (or listed ids) per statement: a month row binds 5 parameters, under SQLite's 32 766.
const ROWS_PER_STATEMENT: usize = 1_000;

/// Appends the items as bound parameters, separated by commas, then closes the list's
/// parenthesis (the caller's SQL ends with `IN (`).
fn push_list<'args, Db, T>(q: &mut sqlx::QueryBuilder<'args, Db>, items: &[T])
where
    Db: sqlx::Database,
    T: Copy + 'args + sqlx::Encode<'args, Db> + sqlx::Type<Db>,
{
    let mut list = q.separated(", ");
    for item in items {
        list.push_bind(*item);
    }
    q.push(")");
}

impl Store {
    /// The facts of the referrals sent in [from, to).
    async fn facts_sent_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, ReferralFacts)>> {
        let rows: Vec<FactsRow> = on_pool!(self, |pool, Db| {
            let mut q = sqlx::QueryBuilder::<Db>::new(FACTS_OF_REFERRALS);
            q.push("r.submitted_at >= ")
                .push_bind(from)
                .push(" AND r.submitted_at < ")
                .push_bind(to);
            q.build_query_as().fetch_all(pool).await
        })?;
        let defaults = crate::ParquetSettings::default();
        Ok(rows.into_iter().map(|r| r.into_facts(&defaults)).collect())
    }

    /// The facts of those of these referrals that are sent.
    async fn facts_of(&self, ids: &[Uuid]) -> StoreResult<Vec<(Uuid, ReferralFacts)>> {
        let defaults = crate::ParquetSettings::default();
        let mut facts = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<FactsRow> = on_pool!(self, |pool, Db| {
                let mut q = sqlx::QueryBuilder::<Db>::new(FACTS_OF_REFERRALS);
                q.push("r.submitted_at IS NOT NULL AND r.id IN (");
                push_list(&mut q, chunk);
                q.build_query_as().fetch_all(pool).await
            })?;
            facts.extend(rows.into_iter().map(|r| r.into_facts(&defaults)));
        }
        Ok(facts)
    }

    /// What these referrals were last counted as, for those counted.
    async fn counted(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Contribution>> {
        let mut counted = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(Uuid, Vec<u8>)> = on_pool!(self, |pool, Db| {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "SELECT referral_id, contribution FROM stats_counted WHERE referral_id IN (",
                );
                push_list(&mut q, chunk);
                q.build_query_as().fetch_all(pool).await
            })?;
            for (id, encoded) in rows {
                counted.insert(id, decode_contribution(&encoded)?);
            }
        }
        Ok(counted)
    }

    /// The stored cells of these scopes (by id) in one month.
    async fn month_cells(&self, month: i32, scope_ids: &[Uuid]) -> StoreResult<Vec<Cell>> {
        let mut cells = Vec::new();
        for chunk in scope_ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(i16, Uuid, Vec<u8>, Vec<u8>)> = on_pool!(self, |pool, Db| {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "SELECT scope, scope_id, cells, organisation_cells FROM stats_months WHERE month = ",
                );
                q.push_bind(month).push(" AND scope_id IN (");
                push_list(&mut q, chunk);
                q.build_query_as().fetch_all(pool).await
            })?;
            for (code, id, encoded, organisation_encoded) in rows {
                let scope = Scope::from_parts(code, id).ok_or_else(|| {
                    sqlx::Error::Decode(format!("unknown indicators scope {code}").into())
                })?;
                decode_cells(&encoded, scope, month, &mut cells)?;
                decode_cells(&organisation_encoded, scope, month, &mut cells)?;
            }
        }
        Ok(cells)
    }

    /// Brings the cells up to date with every queued change, then forgets those changes.
    /// Returns how many months' cells changed. Changes committed meanwhile stay queued.
    ///
    /// Several processes may refresh at once (PostgreSQL): each write checks that no other
    /// refresh rewrote cells since this one began; if one did, what this one read may be stale,
    /// so it stops and leaves its changes queued for the next round.
    pub async fn refresh_stats(&self) -> StoreResult<usize> {
        // Read first: everything read after it is at least as new as any refresh it counts.
        let mut generation = self.stats_generation().await?;
        // Streamed, and kept as little as possible: after a bulk load, a million changes.
        let mut change_ids: Vec<i64> = Vec::new();
        // The referrals changed, by the month they were sent in.
        let mut sent: Vec<(i32, Uuid)> = Vec::new();
        // Drafts count nowhere; a referral that is gone is taken out of what it was counted in.
        let mut unsent: Vec<Uuid> = Vec::new();
        on_pool!(self, |pool| {
            let mut rows = sqlx::query_as::<_, ChangeRow>(
                "SELECT c.id, c.referral_id, r.submitted_at FROM stats_changes c \
                 LEFT JOIN referrals r ON r.id = c.referral_id",
            )
            .fetch(pool);
            while let Some(change) = rows.try_next().await? {
                change_ids.push(change.id);
                match change.submitted_at {
                    Some(at) => sent.push((domain::stats::month_of(at), change.referral_id)),
                    None => unsent.push(change.referral_id),
                }
            }
            Ok::<_, sqlx::Error>(())
        })?;
        if change_ids.is_empty() {
            return Ok(0);
        }
        sent.sort_unstable();
        sent.dedup();
        unsent.sort_unstable();
        unsent.dedup();
        let mut changed_months = BTreeSet::new();
        let mut one_by_one = unsent;
        for same_month in sent.chunk_by(|a, b| a.0 == b.0) {
            let month = same_month[0].0;
            if same_month.len() < RECOUNT_MONTH_FROM {
                one_by_one.extend(same_month.iter().map(|(_, id)| *id));
                continue;
            }
            let Some(write) = self.recount_month(month).await? else {
                continue;
            };
            if !self.write_cells(write, generation).await? {
                return Ok(0);
            }
            generation += 1;
            changed_months.insert(month);
        }
        // Freed before the contributions are read (a million pairs after a bulk load).
        drop(sent);
        for (month, changes) in self.changed_contributions(&one_by_one).await? {
            let scope_ids = changes.scope_ids();
            let cells = self.month_cells(month, &scope_ids).await?;
            let write =
                counted_off_the_runtime(move || changes.into_write(month, cells, scope_ids))
                    .await?;
            if !self.write_cells(write, generation).await? {
                return Ok(0);
            }
            generation += 1;
            changed_months.insert(month);
        }
        for chunk in change_ids.chunks(ROWS_PER_STATEMENT) {
            on_writer!(self, |conn, Db| {
                let mut q =
                    sqlx::QueryBuilder::<Db>::new("DELETE FROM stats_changes WHERE id IN (");
                push_list(&mut q, chunk);
                q.build().execute(conn).await.map(|_| ())
            })?;
        }
        Ok(changed_months.len())
    }

    /// Of these referrals, those that count differently from what they were last counted as,
    /// by month.
    async fn changed_contributions(
        &self,
        ids: &[Uuid],
    ) -> StoreResult<BTreeMap<i32, MonthChanges>> {
        let mut by_month: BTreeMap<i32, MonthChanges> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(by_month);
        }
        let mut before = self.counted(ids).await?;
        for (id, facts) in self.facts_of(ids).await? {
            let now = Contribution::of(&facts);
            let old = before.remove(&id);
            if old.as_ref() == Some(&now) {
                continue;
            }
            if let Some(old) = old {
                by_month
                    .entry(old.month)
                    .or_default()
                    .removed
                    .push((id, old));
            }
            by_month.entry(now.month).or_default().added.push((id, now));
        }
        // Counted before, no longer sent (or gone): taken out.
        for (id, old) in before {
            by_month
                .entry(old.month)
                .or_default()
                .removed
                .push((id, old));
        }
        Ok(by_month)
    }

    /// Counts every month afresh, from the first sent referral's to the last's: after a bulk
    /// load that bypassed the timeline (such as `seed-scale`), or to check the cells.
    pub async fn recount_stats(&self) -> StoreResult<()> {
        let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            on_pool!(self, |pool| {
                sqlx::query_as("SELECT MIN(submitted_at), MAX(submitted_at) FROM referrals")
                    .fetch_one(pool)
                    .await
            })?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(());
        };
        let last = domain::stats::month_of(last);
        let mut month = domain::stats::month_of(first);
        while month <= last {
            // Another refresh writing meanwhile makes this month's count stale: count it again.
            let mut attempts = 0;
            loop {
                let generation = self.stats_generation().await?;
                let Some(write) = self.recount_month(month).await? else {
                    break;
                };
                if self.write_cells(write, generation).await? {
                    break;
                }
                attempts += 1;
                if attempts == 10 {
                    return Err(sqlx::Error::Protocol(
                        "the indicators kept changing while they were recounted".into(),
                    )
                    .into());
                }
            }
            month = domain::stats::next_month(month);
        }
        Ok(())
    }

    /// Counts a month afresh: its cells and what each of its referrals counts as.
    async fn recount_month(&self, month: i32) -> StoreResult<Option<CellsWrite>> {
        let (Some(from), Some(to)) = (
            domain::stats::month_start(month),
            domain::stats::month_start(domain::stats::next_month(month)),
        ) else {
            return Ok(None);
        };
        let facts = self.facts_sent_between(from, to).await?;
        let write = counted_off_the_runtime(move || {
            let contributions: Vec<(Uuid, Contribution)> = facts
                .iter()
                .map(|(id, facts)| (*id, Contribution::of(facts)))
                .collect();
            let mut cells = CellSet::default();
            for (_, contribution) in &contributions {
                cells.add(contribution);
            }
            CellsWrite::new(month, cells, None, Vec::new(), &contributions)
        })
        .await?;
        Ok(Some(write))
    }

    /// Replaces cells and contributions in one transaction, unless the generation is no
    /// longer `generation` (another refresh wrote meanwhile): then nothing is written and this
    /// returns false.
    async fn write_cells(&self, write: CellsWrite, generation: i64) -> StoreResult<bool> {
        let written = on_writer!(self, |conn, Db| {
            let mut tx = conn.begin().await?;
            // First: a concurrent refresh waits here for this one's commit, then finds the
            // generation moved and writes nothing.
            let claimed = sqlx::query(
                "UPDATE stats_generation SET value = value + 1 WHERE id = 1 AND value = $1",
            )
            .bind(generation)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !claimed {
                return Ok(false);
            }
            match &write.scope_ids {
                None => {
                    for table in ["stats_months", "stats_counted"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE month = $1"))
                            .bind(write.month)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                Some(scope_ids) => {
                    for chunk in scope_ids.chunks(ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "DELETE FROM stats_months WHERE month = ",
                        );
                        q.push_bind(write.month).push(" AND scope_id IN (");
                        push_list(&mut q, chunk);
                        q.build().execute(&mut *tx).await?;
                    }
                    for chunk in write.referrals.chunks(ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "DELETE FROM stats_counted WHERE referral_id IN (",
                        );
                        push_list(&mut q, chunk);
                        q.build().execute(&mut *tx).await?;
                    }
                }
            }
            for chunk in write.rows.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO stats_months (scope, scope_id, month, cells, organisation_cells) ",
                );
                q.push_values(chunk, |mut row, month_row| {
                    row.push_bind(month_row.scope.code())
                        .push_bind(month_row.scope.id())
                        .push_bind(month_row.month)
                        .push_bind(month_row.cells.as_slice())
                        .push_bind(month_row.organisation_cells.as_slice());
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in write.counted.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO stats_counted (referral_id, month, contribution) ",
                );
                q.push_values(chunk, |mut row, (id, encoded)| {
                    row.push_bind(*id)
                        .push_bind(write.month)
                        .push_bind(encoded.as_slice());
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await.map(|_| true)
        })?;
        if !written {
            tracing::info!("another refresh rewrote the indicators meanwhile; retrying later");
        }
        Ok(written)
    }

    /// A number that changes whenever any month's cells are rewritten, by this process or
    /// another: what was merged from the cells stays true until it changes.
    pub async fn stats_generation(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT value FROM stats_generation WHERE id = 1")
                .fetch_one(pool)
                .await
        })?)
    }

    /// The cells of a scope over a period. Without `per_organisation`, the cells broken down by
    /// parquet and by administration are left out: nationally they are nine in ten of the
    /// cells, and the public page never shows them.
    pub async fn stats_cells(
        &self,
        filter: &StatsFilter,
        per_organisation: bool,
    ) -> StoreResult<Vec<Cell>> {
        let rows: Vec<(i32, Vec<u8>, Option<Vec<u8>>)> = on_pool!(self, |pool, Db| {
            let mut q = sqlx::QueryBuilder::<Db>::new("SELECT month, cells, ");
            // Without the breakdowns by organisation, their list is not even read.
            q.push(if per_organisation {
                "organisation_cells"
            } else {
                "NULL"
            })
            .push(" FROM stats_months WHERE scope = ")
            .push_bind(filter.scope.code())
            .push(" AND scope_id = ")
            .push_bind(filter.scope.id());
            if let Some(from) = filter.from_month {
                q.push(" AND month >= ").push_bind(from);
            }
            if let Some(to) = filter.to_month {
                q.push(" AND month <= ").push_bind(to);
            }
            q.build_query_as().fetch_all(pool).await
        })?;
        let mut cells = Vec::new();
        for (month, encoded, organisation_encoded) in rows {
            decode_cells(&encoded, filter.scope, month, &mut cells)?;
            if let Some(encoded) = organisation_encoded {
                decode_cells(&encoded, filter.scope, month, &mut cells)?;
            }
        }
        Ok(cells)
    }

    /// The referrals of a scope sent in the period and still waiting for a decision, by age at
    /// `now`, and those whose limitation date is near. Counted live from a partial index.
    pub async fn open_referrals(
        &self,
        filter: &StatsFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<OpenReferrals> {
        let [month, three, six, year] = domain::stats::backlog_cutoffs(now);
        let horizon: NaiveDate = domain::stats::limitation_horizon(now);
        let (from, to) = filter.instants();
        let row: OpenRow = on_pool!(self, |pool, Db| {
            let mut q = sqlx::QueryBuilder::<Db>::new("SELECT SUM(CASE WHEN r.submitted_at >= ");
            q.push_bind(month)
                .push(" THEN 1 ELSE 0 END) AS under_1, SUM(CASE WHEN r.submitted_at < ")
                .push_bind(month)
                .push(" AND r.submitted_at >= ")
                .push_bind(three)
                .push(" THEN 1 ELSE 0 END) AS under_3, SUM(CASE WHEN r.submitted_at < ")
                .push_bind(three)
                .push(" AND r.submitted_at >= ")
                .push_bind(six)
                .push(" THEN 1 ELSE 0 END) AS under_6, SUM(CASE WHEN r.submitted_at < ")
                .push_bind(six)
                .push(" AND r.submitted_at >= ")
                .push_bind(year)
                .push(" THEN 1 ELSE 0 END) AS under_12, SUM(CASE WHEN r.submitted_at < ")
                .push_bind(year)
                .push(" THEN 1 ELSE 0 END) AS older, SUM(CASE WHEN r.submitted_at IS NOT NULL AND r.limitation_date <= ")
                .push_bind(horizon)
                // The WHERE clause is the open-referrals indexes' own, word for word: any other
                // condition (such as `submitted_at IS NOT NULL`) lets SQLite prefer another
                // index and read every referral (10 s at 1.2 million instead of 0.1 s).
                .push(
                    " THEN 1 ELSE 0 END) AS nearing FROM referrals r \
                     WHERE r.decided_at IS NULL AND r.status NOT IN ('draft', 'withdrawn', 'closed')",
                );
            match filter.scope {
                Scope::National => {}
                Scope::Parquet(id) => {
                    q.push(" AND r.parquet_id = ").push_bind(id);
                }
                Scope::Administration(id) => {
                    q.push(" AND r.administration_id = ").push_bind(id);
                }
            }
            if let Some(from) = from {
                q.push(" AND r.submitted_at >= ").push_bind(from);
            }
            if let Some(to) = to {
                q.push(" AND r.submitted_at < ").push_bind(to);
            }
            q.build_query_as().fetch_one(pool).await
        })?;
        let n = |v: Option<i64>| usize::try_from(v.unwrap_or(0)).unwrap_or(0);
        Ok(OpenReferrals {
            backlog_by_age: [
                n(row.under_1),
                n(row.under_3),
                n(row.under_6),
                n(row.under_12),
                n(row.older),
            ],
            nearing_limitation: n(row.nearing),
        })
    }

    /// The names of organisations, for labelling breakdowns by parquet or administration.
    pub async fn organisation_names(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, String>> {
        let mut names = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(Uuid, String)> = on_pool!(self, |pool, Db| {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "SELECT id, name FROM organisations WHERE id IN (",
                );
                push_list(&mut q, chunk);
                q.build_query_as().fetch_all(pool).await
            })?;
            names.extend(rows);
        }
        Ok(names)
    }

    /// How many changes wait to be counted (shown on the page as "figures being updated").
    pub async fn pending_stats_changes(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM stats_changes")
                .fetch_one(pool)
                .await
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(scope: Scope, axis: Axis, value: &str, received: i64) -> Cell {
        Cell {
            month: 202603,
            scope,
            axis,
            value: value.into(),
            counts: Counts {
                received,
                ..Counts::default()
            },
            to_acknowledgement: vec![1, 0, 2, 0, 0, 0],
            to_registration: Vec::new(),
            to_decision: vec![9; 12],
        }
    }

    #[test]
    fn a_month_is_stored_per_scope_with_organisation_cells_apart() {
        let parquet = Scope::Parquet(Uuid::from_u128(7));
        let cells = vec![
            cell(Scope::National, Axis::Total, "", 3),
            cell(Scope::National, Axis::Parquet, "p", 2),
            cell(parquet, Axis::Total, "", 2),
            cell(Scope::National, Axis::Kind, "labour", 1),
        ];
        let rows = month_rows(202603, &cells).expect("encoded");
        assert_eq!(rows.len(), 2, "one row per scope");
        let national = rows
            .iter()
            .find(|r| r.scope == Scope::National)
            .expect("national row");
        let mut decoded = Vec::new();
        decode_cells(&national.cells, Scope::National, 202603, &mut decoded).expect("decoded");
        assert_eq!(decoded, vec![cells[0].clone(), cells[3].clone()]);
        decoded.clear();
        decode_cells(
            &national.organisation_cells,
            Scope::National,
            202603,
            &mut decoded,
        )
        .expect("decoded");
        assert_eq!(decoded, vec![cells[1].clone()]);
    }

    #[test]
    fn a_damaged_list_is_an_error_not_an_empty_month() {
        let rows =
            month_rows(202603, &[cell(Scope::National, Axis::Total, "", 3)]).expect("encoded");
        let damaged = &rows[0].cells[..rows[0].cells.len() - 3];
        assert!(decode_cells(damaged, Scope::National, 202603, &mut Vec::new()).is_err());
    }
}
