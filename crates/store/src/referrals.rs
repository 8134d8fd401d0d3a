//! Referrals, their parties, offences, attachments, timeline and messages.

use crate::{
    on_batched_writer, on_pool, on_writer, ActorInfo, Attachment, Event, ListOrder, Message,
    NewEvent, Organisation, Party, Referral, ReferralContent, ReferralFilter, ReferralRow,
    ReferralSummary, ReferralUpdate, Store, StoreError, StoreResult,
};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

const REFERRAL_COLUMNS: &str = "id, reference, status, kind, urgency, title, facts, administration_reference, \
    facts_started_on, facts_ended_on, commune_insee, address, administration_id, author_id, parquet_id, competence, \
    competence_reason, assigned_to, parquet_number, limitation_date, decision, judgement, status_before_complement, \
    verification_code, created_at, updated_at, submitted_at, acknowledged_at, registered_at, decided_at, receipt_signature, notice_signature";

pub(crate) const ATTACHMENT_COLUMNS: &str =
    "id, referral_id, filename, media_type, size, sha256, kind, storage_key, uploaded_by, uploaded_at, wrapped_key";

/// A referral's row, both organisations and the parquet's deadlines in one statement: every
/// request that touches a referral reads it, several times. Built once.
static REFERRAL_WITH_ORGANISATIONS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns = REFERRAL_COLUMNS
        .split(',')
        .map(|column| format!("r.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}, \
         a.kind AS administration_kind, a.name AS administration_name, a.siret AS administration_siret, \
         a.court_code AS administration_court_code, a.departement AS administration_departement, \
         a.requires_validation AS administration_requires_validation, a.created_at AS administration_created_at, \
         p.kind AS parquet_kind, p.name AS parquet_name, p.siret AS parquet_siret, \
         p.court_code AS parquet_court_code, p.departement AS parquet_departement, \
         p.requires_validation AS parquet_requires_validation, p.created_at AS parquet_created_at, \
         s.immediate_acknowledge_minutes, s.urgent_acknowledge_hours, s.normal_register_working_days \
         FROM referrals r JOIN organisations a ON a.id = r.administration_id \
         LEFT JOIN organisations p ON p.id = r.parquet_id \
         LEFT JOIN parquet_settings s ON s.parquet_id = r.parquet_id \
         WHERE r.id = $1"
    )
});

/// On SQLite, a referral with its offences, parties and documents in one query of four
/// statements (one round trip to a connection's thread instead of four); each row says which
/// part it belongs to.
static WHOLE_REFERRAL_SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}; \
         SELECT 'offence' AS part, code FROM referral_offences WHERE referral_id = $1 ORDER BY code; \
         SELECT 'party' AS part, {PARTY_COLUMNS} FROM parties WHERE referral_id = $1 ORDER BY position; \
         SELECT 'attachment' AS part, {ATTACHMENT_COLUMNS} FROM attachments WHERE referral_id = $1 ORDER BY uploaded_at, id",
        REFERRAL_WITH_ORGANISATIONS.replacen("SELECT ", "SELECT 'referral' AS part, ", 1)
    )
});

/// On PostgreSQL, the same in one statement: the offences, parties and documents come as JSON
/// arrays beside the referral's row (one round trip instead of four).
static WHOLE_REFERRAL_POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    REFERRAL_WITH_ORGANISATIONS.replacen(
        " FROM referrals r ",
        &format!(
            ", (SELECT coalesce(json_agg(o.code ORDER BY o.code), '[]') \
                FROM referral_offences o WHERE o.referral_id = r.id) AS offence_codes, \
             (SELECT coalesce(json_agg(x ORDER BY x.position), '[]') \
                FROM (SELECT position, {PARTY_COLUMNS} FROM parties WHERE referral_id = r.id) x) AS parties, \
             (SELECT coalesce(json_agg(x ORDER BY x.uploaded_at, x.id), '[]') \
                FROM (SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE referral_id = r.id) x) AS attachments \
             FROM referrals r "
        ),
        1,
    )
});

const PARTY_COLUMNS: &str =
    "role, kind, last_name, first_names, birth_date, name, siren, siret, address";

/// A referral row with its organisations and its parquet's settings, as `referral` reads them.
#[derive(sqlx::FromRow)]
struct JoinedReferral {
    #[sqlx(flatten)]
    row: ReferralRow,
    administration_kind: String,
    administration_name: String,
    administration_siret: Option<String>,
    administration_court_code: Option<String>,
    administration_departement: Option<String>,
    administration_requires_validation: bool,
    administration_created_at: DateTime<Utc>,
    parquet_kind: Option<String>,
    parquet_name: Option<String>,
    parquet_siret: Option<String>,
    parquet_court_code: Option<String>,
    parquet_departement: Option<String>,
    parquet_requires_validation: Option<bool>,
    parquet_created_at: Option<DateTime<Utc>>,
    immediate_acknowledge_minutes: Option<i64>,
    urgent_acknowledge_hours: Option<i64>,
    normal_register_working_days: Option<i64>,
}

impl JoinedReferral {
    fn into_parts(
        self,
    ) -> (
        ReferralRow,
        Organisation,
        Option<Organisation>,
        domain::calendar::DeadlinePolicy,
    ) {
        let administration = Organisation {
            id: self.row.administration_id,
            kind: self.administration_kind,
            name: self.administration_name,
            siret: self.administration_siret,
            court_code: self.administration_court_code,
            departement: self.administration_departement,
            requires_validation: self.administration_requires_validation,
            created_at: self.administration_created_at,
        };
        let parquet = match (
            self.row.parquet_id,
            self.parquet_kind,
            self.parquet_name,
            self.parquet_created_at,
        ) {
            (Some(id), Some(kind), Some(name), Some(created_at)) => Some(Organisation {
                id,
                kind,
                name,
                siret: self.parquet_siret,
                court_code: self.parquet_court_code,
                departement: self.parquet_departement,
                requires_validation: self.parquet_requires_validation.unwrap_or(false),
                created_at,
            }),
            _ => None,
        };
        let deadline_policy = match &parquet {
            Some(_) => crate::ParquetSettings::joined(
                self.immediate_acknowledge_minutes,
                self.urgent_acknowledge_hours,
                self.normal_register_working_days,
            )
            .deadline_policy(),
            None => domain::calendar::DeadlinePolicy::default(),
        };
        (self.row, administration, parquet, deadline_policy)
    }
}

/// Writes the content's offences and parties; with `$replacing`, removes earlier ones first
/// (a draft's update; a new referral has none). The caller writes the search document.
macro_rules! write_children {
    ($tx:expr, $id:expr, $content:expr, $replacing:expr) => {{
        if $replacing {
            sqlx::query("DELETE FROM referral_offences WHERE referral_id = $1").bind($id).execute(&mut *$tx).await?;
            sqlx::query("DELETE FROM parties WHERE referral_id = $1").bind($id).execute(&mut *$tx).await?;
        }
        let mut codes = $content.offence_codes.clone();
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            sqlx::query("INSERT INTO referral_offences (referral_id, code) VALUES ($1, $2)")
                .bind($id)
                .bind(code)
                .execute(&mut *$tx)
                .await?;
        }
        for (position, party) in $content.parties.iter().enumerate() {
            sqlx::query(
                "INSERT INTO parties (id, referral_id, position, role, kind, last_name, first_names, birth_date, name, siren, siret, address) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(Uuid::now_v7())
            .bind($id)
            .bind(position as i64)
            .bind(&party.role)
            .bind(&party.kind)
            .bind(&party.last_name)
            .bind(&party.first_names)
            .bind(party.birth_date)
            .bind(&party.name)
            .bind(&party.siren)
            .bind(&party.siret)
            .bind(&party.address)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// What `write_event!` sends: the entry, the indicators' change and the read of the webhooks
/// to notify, in one round trip. Statements in a list on SQLite (`[0]`), data-modifying CTEs
/// on PostgreSQL (`[1]`, see `postgres_entry_sql`).
static ENTRY_SQL: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
    let hooks = crate::integrations::WEBHOOKS_OF_REFERRAL;
    [
        format!("{ENTRY_EVENT}; {ENTRY_STATS_CHANGE}; {hooks}"),
        postgres_entry_sql("", hooks),
    ]
});

const ENTRY_EVENT: &str = "INSERT INTO events (id, referral_id, at, type, audience, actor_id, actor_name, actor_role, actor_organisation, summary) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const ENTRY_STATS_CHANGE: &str = "INSERT INTO stats_changes (referral_id) VALUES ($2)";

/// A timeline entry on PostgreSQL, in one statement: after the caller's `leading` CTEs (each
/// ending with `, `; their parameters from `$14`), the event, the indicators' change and the
/// journal's entry (bound as `$11`–`$13`; see `AuditPlaceholders::postgres_append_ctes`), then
/// `hooks`, the read of the webhooks to notify. The journal's head, which every writer queues
/// for, is already locked: each of the writer's batches takes it first (`group_commit`).
pub(crate) fn postgres_entry_sql(leading: &str, hooks: &str) -> String {
    format!("WITH {leading}{} {hooks}", postgres_entry_ctes())
}

/// The CTEs of `postgres_entry_sql`, from the event to the journal's head.
fn postgres_entry_ctes() -> String {
    let audit = crate::audit::AuditPlaceholders {
        at: "$11",
        actor_id: "$6",
        actor: "$7",
        role: "$8",
        organisation: "$9",
        action: "$12",
        target: "$13",
        detail: "$10",
    }
    .postgres_append_ctes();
    let move_head = crate::audit::POSTGRES_MOVE_HEAD;
    format!(
        "entry AS ({ENTRY_EVENT}), change AS ({ENTRY_STATS_CHANGE}), {audit}, head AS ({move_head})"
    )
}

/// On PostgreSQL, a sending's update and its entry in one statement: the entry's CTEs (`$1`–
/// `$13`), then the update as `changed` (its parameters from `$14`, appended by the caller
/// with its `RETURNING` and `WEBHOOKS_OF_CHANGED`).
static UPDATE_WITH_ENTRY_POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH {}, changed AS (UPDATE referrals SET updated_at = ",
        postgres_entry_ctes()
    )
});

/// What closes `UPDATE_WITH_ENTRY_POSTGRES`: the webhooks of the referral as the update left
/// it (a statement does not see its own CTEs' changes in the table).
static WEBHOOKS_OF_CHANGED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        " RETURNING id, reference, status, administration_id, parquet_id) {}",
        crate::integrations::WEBHOOKS_OF_REFERRAL.replacen(
            "FROM referrals r ",
            "FROM changed r ",
            1
        )
    )
});

/// The thirteen parameters of a PostgreSQL timeline entry (`postgres_entry_sql`), as arguments
/// a statement or a query builder continues from. Evaluates to `Result<_, sqlx::Error>`.
macro_rules! entry_arguments {
    ($db:ty, $id:expr, $at:expr, $actor:expr, $event:expr) => {{
        use sqlx::Arguments as _;
        let (id, at, actor, event): (Uuid, DateTime<Utc>, &ActorInfo, &NewEvent) =
            ($id, $at, $actor, $event);
        (|| -> Result<_, sqlx::error::BoxDynError> {
            let mut arguments = <$db as sqlx::Database>::Arguments::default();
            arguments.add(Uuid::now_v7())?;
            arguments.add(id)?;
            arguments.add(at)?;
            arguments.add(event.event_type.clone())?;
            arguments.add(event.audience.clone())?;
            arguments.add(actor.user_id)?;
            arguments.add(actor.name.clone())?;
            arguments.add(actor.role.clone())?;
            arguments.add(actor.organisation.clone())?;
            arguments.add(event.summary.clone())?;
            arguments.add(::domain::integrity::canonical_instant(at))?;
            arguments.add(format!("referral.{}", event.event_type))?;
            arguments.add(format!("referral:{id}"))?;
            Ok(arguments)
        })()
        .map_err(sqlx::Error::Encode)
    }};
}
pub(crate) use entry_arguments;

/// Appends a timeline entry and its journal entry inside the current transaction.
macro_rules! write_event {
    ($tx:expr, $id:expr, $at:expr, $actor:expr, $event:expr) => {{
        let statement_lists = $crate::runs_statement_lists(&*$tx);
        let audit = $crate::audit::AuditInput {
            at: $at,
            actor: $actor.clone(),
            action: format!("referral.{}", $event.event_type),
            target: format!("referral:{}", $id),
            detail: $event.summary.clone(),
        };
        let mut query = sqlx::query_as(&ENTRY_SQL[usize::from(!statement_lists)])
            .bind(Uuid::now_v7())
            .bind($id)
            .bind($at)
            .bind(&$event.event_type)
            .bind(&$event.audience)
            .bind($actor.user_id)
            .bind(&$actor.name)
            .bind(&$actor.role)
            .bind(&$actor.organisation)
            .bind(&$event.summary);
        if !statement_lists {
            query = query
                .bind(::domain::integrity::canonical_instant(audit.at))
                .bind(&audit.action)
                .bind(&audit.target);
        }
        let hooks: Vec<$crate::integrations::WebhookOfReferral> =
            query.fetch_all(&mut *$tx).await?;
        $crate::integrations::enqueue_webhooks!($tx, hooks, $id, $at, $event);
        if statement_lists {
            $crate::audit::append_audit!($tx, &audit);
        }
    }};
}

/// The columns a new referral is given from its content, after its id (`create_referral`).
pub(crate) const REFERRAL_CREATED_COLUMNS: [&str; 16] = [
    "status",
    "kind",
    "urgency",
    "title",
    "facts",
    "administration_reference",
    "facts_started_on",
    "facts_ended_on",
    "commune_insee",
    "address",
    "administration_id",
    "author_id",
    "parquet_id",
    "competence",
    "competence_reason",
    "limitation_date",
];

/// A new referral's row on SQLite, whose search document is written apart: its id, the
/// content's columns, then its creation instant (`$18`). PostgreSQL writes the row with its
/// children and entry in one statement (`postgres_writes`).
static INSERT_REFERRAL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns = REFERRAL_CREATED_COLUMNS.join(", ");
    let created_at = 2 + REFERRAL_CREATED_COLUMNS.len();
    let values = (2..created_at)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO referrals (id, {columns}, created_at, updated_at) \
         VALUES ($1, {values}, ${created_at}, ${created_at})"
    )
});

/// Allocates the next human reference number of a year (bound as `$1`) on SQLite.
const NEXT_REFERENCE_NUMBER: &str = "INSERT INTO reference_counters (year, last_value) VALUES ($1, 1) \
     ON CONFLICT (year) DO UPDATE SET last_value = reference_counters.last_value + 1 RETURNING last_value";

/// On PostgreSQL, a sending's `LOCKED_DOCUMENT_SOURCES` (`$1`, `$2`) and the next reference
/// number of the year `$3`, in one statement: the counter is incremented only when the
/// referral was found in its status and locked (so a lost race still takes no number).
static LOCKED_SOURCES_AND_NUMBER_POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(
    || {
        let sources = <sqlx::Postgres as crate::search::SearchDialect>::LOCKED_DOCUMENT_SOURCES;
        format!(
            "WITH sources AS ({sources}), \
             number AS (INSERT INTO reference_counters (year, last_value) SELECT $3, 1 FROM sources \
             ON CONFLICT (year) DO UPDATE SET last_value = reference_counters.last_value + 1 RETURNING last_value) \
             SELECT sources.*, number.last_value AS number FROM sources, number"
        )
    },
);

/// A row of `LOCKED_SOURCES_AND_NUMBER_POSTGRES`.
#[derive(sqlx::FromRow)]
struct NumberedSources {
    #[sqlx(flatten)]
    sources: crate::search::SearchSources,
    number: i64,
}

/// The change a write applies: given whole, or built from the reference number it allocates.
enum Change<'a, F> {
    Given(&'a ReferralUpdate, &'a NewEvent),
    Numbered(i32, F),
}

/// The WHERE clauses of a referral filter, shared by lists and counts.
macro_rules! push_filter {
    ($q:expr, $filter:expr, $db:ty) => {
        push_filter!($q, $filter, $db, crate::search::MatchPlan::FromMatches)
    };
    ($q:expr, $filter:expr, $db:ty, $plan:expr) => {{
        let filter = $filter;
        if let Some(id) = filter.administration_id {
            $q.push(" AND r.administration_id = ").push_bind(id);
        }
        if let Some(id) = filter.author_id {
            $q.push(" AND r.author_id = ").push_bind(id);
        }
        if let Some(id) = filter.parquet_id {
            $q.push(" AND r.parquet_id = ").push_bind(id);
        }
        if filter.sent_only {
            $q.push(" AND r.status NOT IN ('draft', 'awaiting_validation')");
        }
        if let Some(id) = filter.assigned_to {
            $q.push(" AND r.assigned_to = ").push_bind(id);
        }
        if let Some(status) = &filter.status {
            $q.push(" AND r.status = ").push_bind(status.clone());
        }
        if !filter.statuses.is_empty() {
            $q.push(" AND r.status IN (");
            let mut separated = $q.separated(", ");
            for status in &filter.statuses {
                separated.push_bind(status.clone());
            }
            $q.push(")");
        }
        if let Some(urgency) = &filter.urgency {
            $q.push(" AND r.urgency = ").push_bind(urgency.clone());
        }
        if filter.urgent_only {
            $q.push(" AND r.urgency IN ('urgent', 'immediate')");
        }
        if let Some(text) = filter.query.as_deref() {
            let mut scope = Vec::new();
            scope.extend(filter.parquet_id.map(::domain::text::parquet_word));
            scope.extend(filter.administration_id.map(::domain::text::administration_word));
            <$db as crate::search::SearchDialect>::push_match(&mut $q, text, &scope, $plan);
        }
        if let Some(gravity) = &filter.gravity {
            let pattern = match gravity.as_str() {
                "crime" => "crime%",
                "delit" => "d_lit%",
                _ => "contravention%",
            };
            $q.push(" AND EXISTS (SELECT 1 FROM referral_offences ro JOIN offences o ON o.code = ro.code WHERE ro.referral_id = r.id AND LOWER(o.nature) LIKE ")
                .push_bind(pattern);
            $q.push(")");
        }
        if let Some(day) = filter.limitation_before {
            $q.push(" AND r.limitation_date <= ").push_bind(day);
        }
        if let Some(from) = filter.from {
            $q.push(" AND COALESCE(r.submitted_at, r.created_at) >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            $q.push(" AND COALESCE(r.submitted_at, r.created_at) < ").push_bind(to);
        }
        if let Some((created_at, id)) = filter.before {
            $q.push(" AND (r.created_at < ").push_bind(created_at);
            $q.push(" OR (r.created_at = ").push_bind(created_at);
            $q.push(" AND r.id < ").push_bind(id);
            $q.push("))");
        }
    }};
}

/// The list query of `list_referrals` for a filter and a search plan; with `since`, only the
/// referrals created at or after that instant (see `Store::search_newest_on_sqlite`).
macro_rules! list_query {
    ($filter:expr, $db:ty, $plan:expr) => {
        list_query!($filter, $db, $plan, None::<DateTime<Utc>>)
    };
    ($filter:expr, $db:ty, $plan:expr, $since:expr) => {{
        let filter: &ReferralFilter = $filter;
        let plan: crate::search::MatchPlan = $plan;
        let since: Option<DateTime<Utc>> = $since;
        let mut q = sqlx::QueryBuilder::<$db>::new(
            "SELECT r.id, r.reference, r.status, r.kind, r.urgency, r.title, r.administration_id, a.name AS administration_name, \
             r.parquet_id, p.name AS parquet_name, r.created_at, r.submitted_at, r.acknowledged_at, r.registered_at, r.limitation_date, \
             r.assigned_to, p.departement AS parquet_departement, \
             s.immediate_acknowledge_minutes, s.urgent_acknowledge_hours, s.normal_register_working_days, \
             (SELECT e.summary FROM events e WHERE e.referral_id = r.id AND e.audience <> ",
        );
        // The last event the viewer may see: parquets never see sender-only entries and
        // senders never see parquet-internal ones.
        q.push_bind(if filter.sent_only { "sender" } else { "parquet" });
        // The page's ids first, then their details: SQLite computes every selected column of
        // every row it sorts, so sorting the full rows ran the last-event subquery and the joins
        // for each of a parquet's waiting referrals rather than for the fifty shown.
        q.push(
            " ORDER BY e.at DESC, e.id DESC LIMIT 1) AS last_event \
             FROM (SELECT r.id FROM referrals r WHERE 1 = 1",
        );
        push_filter!(q, filter, $db, plan);
        if let Some(since) = since {
            q.push(" AND r.created_at >= ").push_bind(since);
        }
        let order = match filter.order {
            ListOrder::Newest => " ORDER BY r.created_at DESC, r.id DESC",
            ListOrder::Inbox => " ORDER BY CASE r.urgency WHEN 'immediate' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END, r.submitted_at, r.id",
        };
        q.push(order);
        q.push(" LIMIT ").push_bind(filter.limit.clamp(1, 1000));
        if filter.offset > 0 {
            q.push(" OFFSET ").push_bind(filter.offset);
        }
        q.push(
            ") page JOIN referrals r ON r.id = page.id JOIN organisations a ON a.id = r.administration_id \
             LEFT JOIN organisations p ON p.id = r.parquet_id LEFT JOIN parquet_settings s ON s.parquet_id = r.parquet_id",
        );
        q.push(order);
        q
    }};
}

/// A search on PostgreSQL with the plan chosen here rather than by the planner, which cannot
/// tell how many referrals a search matches: its estimate for the busiest parquet and a common
/// word was 923 against 11 535, so it read every match and sorted them (580 ms at 1.2 million),
/// and once a prepared statement's plan goes generic it no longer sees the words at all, and
/// walked a whole parquet for a word found nowhere (1.1 s).
/// - `FromScope` walks the scope newest first and tests each referral: a page of a common word
///   is found in a few hundred rows (3 ms). For a rare word that walk would read the whole
///   scope, so it gets a time budget; `None` when the budget runs out.
/// - `FromMatches` reads the matches (the GIN index) and sorts them.
///
/// Planner settings last for this transaction only (`set_config(…, true)`), set in one round trip.
async fn search_on_postgres(
    pool: &sqlx::PgPool,
    filter: &ReferralFilter,
    plan: crate::search::MatchPlan,
) -> StoreResult<Option<Vec<ReferralSummary>>> {
    use crate::search::MatchPlan;
    let mut tx = pool.begin().await?;
    let settings = match plan {
        // Without bitmap scans the matches cannot be read first; when the planner expects very
        // few it prefers a parallel sequential scan, which outlasts the budget. (JIT, whose
        // compilation alone outlasted it, is off on every connection: `Store::connect_with`.)
        MatchPlan::FromScope => {
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), \
             set_config('max_parallel_workers_per_gather', '0', true), set_config('enable_bitmapscan', 'off', true), \
             set_config('enable_seqscan', 'off', true), set_config('statement_timeout', $1, true)"
        }
        MatchPlan::FromMatches => {
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), \
             set_config('max_parallel_workers_per_gather', '0', true), set_config('enable_indexscan', 'off', true), \
             set_config('enable_seqscan', 'off', true)"
        }
    };
    let mut settings = sqlx::query(settings);
    if plan == MatchPlan::FromScope {
        settings = settings.bind(crate::search::SCOPE_WALK_BUDGET_MS.to_string());
    }
    settings.execute(&mut *tx).await?;
    let mut q = list_query!(filter, sqlx::Postgres, plan);
    match q.build_query_as().fetch_all(&mut *tx).await {
        Ok(page) => {
            tx.commit().await?;
            Ok(Some(page))
        }
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some(QUERY_CANCELED) => {
            tx.rollback().await?;
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// What walking a scope's newest referrals found (`Store::search_newest_on_sqlite`).
enum NewestWalk {
    /// The search's page.
    Page(Vec<ReferralSummary>),
    /// Fewer matches than a page among the newest: the matches are sparse.
    Sparse,
    /// Not a newest-first search on SQLite.
    NotTried,
}

/// The scope a newest-first walk is bounded in, as its condition and id: the column of an index
/// on (scope, created_at). `None` for a search over every referral.
fn walk_scope(filter: &ReferralFilter) -> Option<(&'static str, Uuid)> {
    if let Some(id) = filter.parquet_id {
        Some((" AND r.parquet_id = ", id))
    } else if let Some(id) = filter.administration_id {
        Some((" AND r.administration_id = ", id))
    } else {
        filter.author_id.map(|id| (" AND r.author_id = ", id))
    }
}

/// PostgreSQL's SQLSTATE for a statement cancelled by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

impl Store {
    /// Creates a referral (a draft, or, for seeding and imports, in any status) with its first
    /// timeline entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_referral(
        &self,
        id: Uuid,
        administration_id: Uuid,
        author_id: Uuid,
        status: &str,
        content: &ReferralContent,
        now: DateTime<Utc>,
        actor: &ActorInfo,
        event: &NewEvent,
    ) -> StoreResult<()> {
        let document = crate::search::SearchSources::of_new(content, administration_id).document();
        if let crate::Writer::Postgres(_, writer) = &self.writer {
            return crate::on_postgres_batch!(writer, |conn| {
                crate::postgres_writes::create_referral(
                    conn,
                    id,
                    administration_id,
                    author_id,
                    status,
                    content,
                    document,
                    now,
                    actor,
                    event,
                )
                .await
            });
        }
        // SQLite from here (PostgreSQL returned above): a statement each, on its writer.
        on_batched_writer!(self, |conn, Db| {
            let mut tx = conn.begin_body().await?;
            // The content's columns in the order of REFERRAL_CREATED_COLUMNS.
            sqlx::query(&INSERT_REFERRAL)
                .bind(id)
                .bind(status)
                .bind(&content.kind)
                .bind(&content.urgency)
                .bind(&content.title)
                .bind(&content.facts)
                .bind(&content.administration_reference)
                .bind(content.facts_started_on)
                .bind(content.facts_ended_on)
                .bind(&content.commune_insee)
                .bind(&content.address)
                .bind(administration_id)
                .bind(author_id)
                .bind(content.parquet_id)
                .bind(&content.competence)
                .bind(&content.competence_reason)
                .bind(content.limitation_date)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            write_children!(tx, id, content, false);
            <Db as crate::search::SearchDialect>::write_document(&mut *tx, id, &document).await?;
            write_event!(tx, id, now, actor, event);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Replaces the sender's content of a referral that is still a draft. Returns false when the
    /// referral is no longer a draft (the caller answers 409), so a concurrent submit never sees
    /// its content change underneath it.
    pub async fn update_draft(
        &self,
        id: Uuid,
        content: &ReferralContent,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let sql = "UPDATE referrals SET kind = $2, urgency = $3, title = $4, facts = $5, administration_reference = $6, \
            facts_started_on = $7, facts_ended_on = $8, commune_insee = $9, address = $10, parquet_id = $11, competence = $12, \
            competence_reason = $13, limitation_date = $14, updated_at = $15 WHERE id = $1 AND status = 'draft'";
        let updated = on_batched_writer!(self, |conn, Db| {
            let mut tx = conn.begin_body().await?;
            let result = sqlx::query(sql)
                .bind(id)
                .bind(&content.kind)
                .bind(&content.urgency)
                .bind(&content.title)
                .bind(&content.facts)
                .bind(&content.administration_reference)
                .bind(content.facts_started_on)
                .bind(content.facts_ended_on)
                .bind(&content.commune_insee)
                .bind(&content.address)
                .bind(content.parquet_id)
                .bind(&content.competence)
                .bind(&content.competence_reason)
                .bind(content.limitation_date)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if result.rows_affected() == 0 {
                return Ok(false);
            }
            write_children!(tx, id, content, true);
            // Read back, not built from the content: the reference, the parquet and its number
            // are columns of the row the content does not carry.
            crate::search::refresh_search!(tx, id, Db);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })?;
        Ok(updated)
    }

    /// The few columns that decide access to a referral and the actions on it (see
    /// `ReferralAccess`): one row by its key and its administration's by its key, where the whole
    /// referral also aggregates its offences, parties and documents.
    pub async fn referral_access(&self, id: Uuid) -> StoreResult<Option<crate::ReferralAccess>> {
        let sql = "SELECT r.id, r.status, r.administration_id, r.author_id, r.parquet_id, r.status_before_complement, \
                   a.requires_validation AS administration_requires_validation \
                   FROM referrals r JOIN organisations a ON a.id = r.administration_id WHERE r.id = $1";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// A referral with its organisations, offences, parties and attachments.
    pub async fn referral(&self, id: Uuid) -> StoreResult<Option<Referral>> {
        use sqlx::{FromRow, Row};
        let (joined, offence_codes, parties, attachments) = match &self.pool {
            crate::Pool::Sqlite(pool) => {
                let rows = sqlx::query(WHOLE_REFERRAL_SQLITE.as_str())
                    .bind(id)
                    .fetch_all(pool)
                    .await?;
                let mut joined = None;
                let (mut codes, mut parties, mut attachments) =
                    (Vec::new(), Vec::new(), Vec::new());
                for row in &rows {
                    match row.try_get::<&str, _>("part")? {
                        "referral" => joined = Some(JoinedReferral::from_row(row)?),
                        "offence" => codes.push(row.try_get::<i64, _>("code")?),
                        "party" => parties.push(Party::from_row(row)?),
                        "attachment" => attachments.push(Attachment::from_row(row)?),
                        other => {
                            return Err(StoreError::Database(sqlx::Error::Protocol(format!(
                                "unexpected part of a referral: {other}"
                            ))))
                        }
                    }
                }
                (joined, codes, parties, attachments)
            }
            crate::Pool::Postgres(pool) => {
                let Some(row) = sqlx::query(WHOLE_REFERRAL_POSTGRES.as_str())
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
                else {
                    return Ok(None); // an unknown or forged id
                };
                let Json(codes) = row.try_get::<Json<Vec<i64>>, _>("offence_codes")?;
                let Json(parties) = row.try_get::<Json<Vec<Party>>, _>("parties")?;
                let Json(attachments) = row.try_get::<Json<Vec<Attachment>>, _>("attachments")?;
                (
                    Some(JoinedReferral::from_row(&row)?),
                    codes,
                    parties,
                    attachments,
                )
            }
        };
        let Some(joined) = joined else {
            return Ok(None);
        };
        let (row, administration, parquet, deadline_policy) = joined.into_parts();
        Ok(Some(Referral {
            row,
            administration,
            parquet,
            offence_codes,
            parties,
            attachments,
            deadline_policy,
        }))
    }

    pub async fn referral_by_verification_code(&self, code: &str) -> StoreResult<Option<Referral>> {
        let id: Option<Uuid> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT id FROM referrals WHERE verification_code = $1"
        )
        .bind(code)
        .fetch_optional(pool)
        .await)?;
        match id {
            Some(id) => self.referral(id).await,
            None => Ok(None),
        }
    }

    /// Referrals within the filter's scope, in the filter's order.
    pub async fn list_referrals(
        &self,
        filter: &ReferralFilter,
    ) -> StoreResult<Vec<ReferralSummary>> {
        use crate::search::MatchPlan;
        let plan = match self.search_newest_on_sqlite(filter).await? {
            NewestWalk::Page(page) => return Ok(page),
            // Within a scope, matches that are sparse among the newest are few enough to be
            // read and sorted (a parquet holds at most about 100 000 referrals in ten years).
            NewestWalk::Sparse if walk_scope(filter).is_some() => MatchPlan::FromMatches,
            NewestWalk::Sparse | NewestWalk::NotTried => self.match_plan(filter).await?,
        };
        if let (crate::Pool::Postgres(pool), MatchPlan::FromScope) = (&self.pool, plan) {
            if let Some(page) = search_on_postgres(pool, filter, MatchPlan::FromScope).await? {
                return Ok(page);
            }
            if let Some(page) = search_on_postgres(pool, filter, MatchPlan::FromMatches).await? {
                return Ok(page);
            }
        }
        self.list_with_plan(filter, plan).await
    }

    /// `list_referrals` with the matches driving every search, whatever the plan would be:
    /// only for tests that check both plans give the same page.
    #[doc(hidden)]
    pub async fn list_referrals_from_matches_for_tests(
        &self,
        filter: &ReferralFilter,
    ) -> StoreResult<Vec<ReferralSummary>> {
        use crate::search::MatchPlan;
        if let crate::Pool::Postgres(pool) = &self.pool {
            return search_on_postgres(pool, filter, MatchPlan::FromMatches)
                .await?
                .ok_or(StoreError::Reference("search cancelled".into()));
        }
        self.list_with_plan(filter, MatchPlan::FromMatches).await
    }

    async fn list_with_plan(
        &self,
        filter: &ReferralFilter,
        plan: crate::search::MatchPlan,
    ) -> StoreResult<Vec<ReferralSummary>> {
        on_pool!(self, |pool, Db| {
            let mut q = list_query!(filter, Db, plan);
            Ok::<_, sqlx::Error>(q.build_query_as().fetch_all(pool).await?)
        })
        .map_err(StoreError::from)
    }

    /// A newest-first search on SQLite that tries the scope's `NEWEST_WALK` newest referrals
    /// first (walking them newest first, as `MatchPlan::FromScope` does). When they hold a
    /// full page of matches, that page is the search's page, since every other referral comes
    /// after it; when the scope has no more referrals than that, whatever was found is the
    /// whole answer. Either way the full-text query was evaluated once: choosing a plan from
    /// the bounded count evaluated it a second time (14 ms of 47 at the p50 of a common word
    /// at 1.2 million).
    async fn search_newest_on_sqlite(&self, filter: &ReferralFilter) -> StoreResult<NewestWalk> {
        let (crate::Pool::Sqlite(pool), Some(_), crate::ListOrder::Newest) =
            (&self.pool, filter.query.as_deref(), filter.order)
        else {
            return Ok(NewestWalk::NotTried);
        };
        // The creation instant of the scope's NEWEST_WALK-th newest referral, read from the
        // scope's index on (scope, created_at) alone; the other filters only narrow the walk.
        let mut bound = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT r.created_at FROM referrals r WHERE 1 = 1",
        );
        if let Some((column, id)) = walk_scope(filter) {
            bound.push(column).push_bind(id);
        }
        bound
            .push(" ORDER BY r.created_at DESC LIMIT 1 OFFSET ")
            .push_bind(crate::search::NEWEST_WALK - 1);
        let since: Option<DateTime<Utc>> = bound.build_query_scalar().fetch_optional(pool).await?;
        let mut q = list_query!(
            filter,
            sqlx::Sqlite,
            crate::search::MatchPlan::FromScope,
            since
        );
        let page: Vec<ReferralSummary> = q.build_query_as().fetch_all(pool).await?;
        let full = i64::try_from(page.len()).unwrap_or(i64::MAX) >= filter.limit.clamp(1, 1000);
        Ok(if full || since.is_none() {
            NewestWalk::Page(page)
        } else {
            NewestWalk::Sparse
        })
    }

    /// Which side should drive a search (see `MatchPlan`): the scope's index, newest first,
    /// when the newest-first list has many matches to choose from; the matches otherwise.
    async fn match_plan(&self, filter: &ReferralFilter) -> StoreResult<crate::search::MatchPlan> {
        use crate::search::MatchPlan;
        let (Some(text), crate::ListOrder::Newest) = (filter.query.as_deref(), filter.order) else {
            return Ok(MatchPlan::FromMatches);
        };
        let crate::Pool::Sqlite(pool) = &self.pool else {
            // PostgreSQL tries the scope first, within a time budget (`search_on_postgres`).
            return Ok(MatchPlan::FromScope);
        };
        let mut scope = Vec::new();
        scope.extend(filter.parquet_id.map(domain::text::parquet_word));
        scope.extend(
            filter
                .administration_id
                .map(domain::text::administration_word),
        );
        let Some(expression) = crate::search::fts5_expression(text, &scope) else {
            return Ok(MatchPlan::FromMatches);
        };
        // Counting stops at the threshold: this costs at most a few thousand postings.
        let matches: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM referral_search WHERE referral_search MATCH $1 LIMIT $2)",
        )
        .bind(expression)
        .bind(crate::search::FEW_MATCHES + 1)
        .fetch_one(pool)
        .await?;
        Ok(if matches > crate::search::FEW_MATCHES {
            MatchPlan::FromScope
        } else {
            MatchPlan::FromMatches
        })
    }

    /// How many referrals match the filter (paging and limits ignored).
    pub async fn count_matching(&self, filter: &ReferralFilter) -> StoreResult<i64> {
        on_pool!(self, |pool, Db| {
            let mut q =
                sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) FROM referrals r WHERE 1 = 1");
            push_filter!(q, filter, Db);
            Ok::<_, sqlx::Error>(q.build_query_scalar().fetch_one(pool).await?)
        })
        .map_err(StoreError::from)
    }

    /// Applies a state change and journals it, atomically. `expected_status` guards against a
    /// concurrent change: when the referral is no longer in that status nothing is written and
    /// `false` is returned.
    pub async fn apply_update(
        &self,
        id: Uuid,
        expected_status: &str,
        update: &ReferralUpdate,
        now: DateTime<Utc>,
        actor: &ActorInfo,
        event: &NewEvent,
    ) -> StoreResult<bool> {
        self.apply_change(
            id,
            expected_status,
            Change::<fn(i64) -> (ReferralUpdate, NewEvent)>::Given(update, event),
            now,
            actor,
        )
        .await
    }

    /// Sends a referral: allocates the next reference number of `year` and applies the change
    /// `sending` makes of it (reference, signed receipt, messages), in one transaction. So a
    /// sending that loses a race with another change (`false`) leaves no gap in the numbering,
    /// and the number costs no write of its own.
    pub async fn apply_numbered_update<F>(
        &self,
        id: Uuid,
        expected_status: &str,
        year: i32,
        now: DateTime<Utc>,
        actor: &ActorInfo,
        sending: F,
    ) -> StoreResult<bool>
    where
        F: FnOnce(i64) -> (ReferralUpdate, NewEvent) + Send,
    {
        self.apply_change(
            id,
            expected_status,
            Change::Numbered(year, sending),
            now,
            actor,
        )
        .await
    }

    async fn apply_change<F>(
        &self,
        id: Uuid,
        expected_status: &str,
        change: Change<'_, F>,
        now: DateTime<Utc>,
        actor: &ActorInfo,
    ) -> StoreResult<bool>
    where
        F: FnOnce(i64) -> (ReferralUpdate, NewEvent) + Send,
    {
        let applied = on_batched_writer!(self, |conn, Db| {
            let mut tx = conn.begin_body().await?;
            let numbered;
            // The search document's sources when read (and the row locked) before the change.
            let mut sources: Option<crate::search::SearchSources> = None;
            let (update, event) = match change {
                Change::Given(update, event) => (update, event),
                Change::Numbered(year, sending) => {
                    // Every sending queues for the counter's row, locked from its increment to
                    // the commit: whatever does not need the number comes before it. The
                    // referral is locked and checked first (a lost race takes no number), and
                    // its search sources read, so that its document is written with the update.
                    let number = if crate::is_postgres::<Db>() {
                        // Both in one statement: the counter is taken only if the referral is.
                        let Some(locked) = sqlx::query_as::<_, NumberedSources>(
                            &LOCKED_SOURCES_AND_NUMBER_POSTGRES,
                        )
                        .bind(id)
                        .bind(expected_status)
                        .bind(i64::from(year))
                        .fetch_optional(&mut *tx)
                        .await?
                        else {
                            return Ok(false);
                        };
                        sources = Some(locked.sources);
                        locked.number
                    } else {
                        let Some(before) = sqlx::query_as::<_, crate::search::SearchSources>(
                            <Db as crate::search::SearchDialect>::LOCKED_DOCUMENT_SOURCES,
                        )
                        .bind(id)
                        .bind(expected_status)
                        .fetch_optional(&mut *tx)
                        .await?
                        else {
                            return Ok(false);
                        };
                        sources = Some(before);
                        sqlx::query_scalar(NEXT_REFERENCE_NUMBER)
                            .bind(i64::from(year))
                            .fetch_one(&mut *tx)
                            .await?
                    };
                    numbered = sending(number);
                    (&numbered.0, &numbered.1)
                }
            };
            // On PostgreSQL a sending's update goes with its entry, in one statement: its row
            // is locked and was found in its status (`LOCKED_SOURCES_AND_NUMBER_POSTGRES`), so
            // the update cannot miss. Its outbox comes first, as below.
            let with_entry = crate::is_postgres::<Db>() && sources.is_some();
            let mut q = if with_entry {
                crate::outbox::write_outbox!(tx, &update.outbox, now);
                sqlx::QueryBuilder::<Db>::with_arguments(
                    UPDATE_WITH_ENTRY_POSTGRES.as_str(),
                    entry_arguments!(Db, id, now, actor, event)?,
                )
            } else {
                sqlx::QueryBuilder::<Db>::new("UPDATE referrals SET updated_at = ")
            };
            q.push_bind(now);
            macro_rules! set {
                ($column:literal, $value:expr) => {
                    if let Some(value) = $value {
                        q.push(concat!(", ", $column, " = ")).push_bind(value);
                    }
                };
            }
            set!("status", update.status.clone());
            set!("reference", update.reference.clone());
            set!("verification_code", update.verification_code.clone());
            set!("submitted_at", update.submitted_at);
            set!("acknowledged_at", update.acknowledged_at);
            set!("registered_at", update.registered_at);
            set!("decided_at", update.decided_at);
            set!("parquet_number", update.parquet_number.clone());
            set!("parquet_id", update.parquet_id);
            set!("competence", update.competence.clone());
            set!("assigned_to", update.assigned_to);
            set!("decision", update.decision.clone().map(Json));
            set!("judgement", update.judgement.clone().map(Json));
            set!("receipt_signature", update.receipt_signature.clone());
            set!("notice_signature", update.notice_signature.clone());
            if let Some(before) = &update.status_before_complement {
                q.push(", status_before_complement = ")
                    .push_bind(before.clone());
            }
            if let Some(at) = update.escalated_at {
                q.push(", escalation_count = escalation_count + 1, escalated_at = ")
                    .push_bind(at);
            }
            if update.clear_parquet_progress {
                q.push(", acknowledged_at = NULL, registered_at = NULL, parquet_number = NULL, assigned_to = NULL");
            }
            // The document as the update leaves it, written by the update where the backend
            // allows, else just after it.
            let prepared_document = sources.is_some();
            let document_left = sources.take().and_then(|mut sources| {
                sources.apply(update);
                <Db as crate::search::SearchDialect>::push_document(&mut q, sources.document())
            });
            q.push(" WHERE id = ").push_bind(id);
            if update.escalated_at.is_some() {
                // An acknowledgement that lands first stops the escalation.
                q.push(" AND acknowledged_at IS NULL");
            }
            q.push(" AND status = ")
                .push_bind(expected_status.to_string());
            if with_entry {
                q.push(WEBHOOKS_OF_CHANGED.as_str());
                let hooks: Vec<crate::integrations::WebhookOfReferral> = q
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| StoreError::from_write(e, "ce numéro parquet"))?;
                crate::integrations::enqueue_webhooks!(tx, hooks, id, now, event);
                tx.commit().await?;
                return Ok(true);
            }
            let result = q
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_write(e, "ce numéro parquet"))?;
            if result.rows_affected() == 0 {
                return Ok(false);
            }
            if let Some(document) = document_left {
                <Db as crate::search::SearchDialect>::write_document(&mut *tx, id, &document)
                    .await?;
            } else if !prepared_document
                && (update.reference.is_some()
                    || update.parquet_number.is_some()
                    || update.parquet_id.is_some()
                    || update.clear_parquet_progress)
            {
                crate::search::refresh_search!(tx, id, Db);
            }
            // The outbox first: the journal's head, locked by the event, is then held only
            // until the commit (on PostgreSQL every writer queues for it).
            crate::outbox::write_outbox!(tx, &update.outbox, now);
            write_event!(tx, id, now, actor, event);
            tx.commit().await?;
            Ok::<_, StoreError>(true)
        })?;
        Ok(applied)
    }

    pub async fn add_attachment(
        &self,
        attachment: &Attachment,
        actor: &ActorInfo,
        event: &NewEvent,
    ) -> StoreResult<()> {
        if let (crate::Writer::Postgres(_, writer), false) =
            (&self.writer, attachment.kind == "draft")
        {
            return crate::on_postgres_batch!(writer, |conn| {
                crate::postgres_writes::add_attachment(conn, attachment, actor, event).await
            });
        }
        let sql = format!("INSERT INTO attachments ({ATTACHMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
        on_batched_writer!(self, |conn| {
            let mut tx = conn.begin_body().await?;
            sqlx::query(&sql)
                .bind(attachment.id)
                .bind(attachment.referral_id)
                .bind(&attachment.filename)
                .bind(&attachment.media_type)
                .bind(attachment.size)
                .bind(&attachment.sha256)
                .bind(&attachment.kind)
                .bind(&attachment.storage_key)
                .bind(attachment.uploaded_by)
                .bind(attachment.uploaded_at)
                .bind(&attachment.wrapped_key)
                .execute(&mut *tx)
                .await?;
            if attachment.kind != "draft" {
                write_event!(
                    tx,
                    attachment.referral_id,
                    attachment.uploaded_at,
                    actor,
                    event
                );
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    pub async fn attachment(
        &self,
        referral_id: Uuid,
        attachment_id: Uuid,
    ) -> StoreResult<Option<Attachment>> {
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE referral_id = $1 AND id = $2"
        );
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(referral_id)
            .bind(attachment_id)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn add_event(
        &self,
        referral_id: Uuid,
        now: DateTime<Utc>,
        actor: &ActorInfo,
        event: &NewEvent,
    ) -> StoreResult<()> {
        on_batched_writer!(self, |conn| {
            let mut tx = conn.begin_body().await?;
            write_event!(tx, referral_id, now, actor, event);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    pub async fn events(&self, referral_id: Uuid) -> StoreResult<Vec<Event>> {
        let sql = "SELECT id, referral_id, at, type, audience, actor_id, actor_name, actor_role, actor_organisation, summary \
                   FROM events WHERE referral_id = $1 ORDER BY at, id";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(referral_id)
            .fetch_all(pool)
            .await)?)
    }

    /// A message (or, when `internal`, a parquet's internal note) and its timeline entry.
    pub async fn add_message(
        &self,
        message: &Message,
        event: &NewEvent,
        outbox: &[crate::OutboxMessage],
    ) -> StoreResult<()> {
        let actor = ActorInfo {
            user_id: Some(message.author_id),
            name: message.author_name.clone(),
            role: message.author_role.clone(),
            organisation: message.author_organisation.clone(),
        };
        on_batched_writer!(self, |conn| {
            let mut tx = conn.begin_body().await?;
            sqlx::query(
                "INSERT INTO messages (id, referral_id, internal, author_id, author_name, author_role, author_organisation, body, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(message.id)
            .bind(message.referral_id)
            .bind(message.internal)
            .bind(message.author_id)
            .bind(&message.author_name)
            .bind(&message.author_role)
            .bind(&message.author_organisation)
            .bind(&message.body)
            .bind(message.at)
            .execute(&mut *tx)
            .await?;
            crate::outbox::write_outbox!(tx, outbox, message.at);
            write_event!(tx, message.referral_id, message.at, actor, event);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    pub async fn messages(
        &self,
        referral_id: Uuid,
        include_internal: bool,
    ) -> StoreResult<Vec<Message>> {
        let sql = "SELECT id, referral_id, internal, author_id, author_name, author_role, author_organisation, body, at \
                   FROM messages WHERE referral_id = $1 AND (internal = $2 OR internal = FALSE) ORDER BY at, id";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(referral_id)
            .bind(include_internal)
            .fetch_all(pool)
            .await)?)
    }
}

impl Store {
    /// Sealed attachments whose key is not wrapped by the master key `current_key_id`.
    pub async fn attachment_keys_to_rewrap(
        &self,
        current_key_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<(Uuid, String)>> {
        let pattern = format!("v1:{current_key_id}:%");
        Ok(on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, wrapped_key FROM attachments WHERE wrapped_key IS NOT NULL AND wrapped_key NOT LIKE $1 ORDER BY id LIMIT $2"
        )
        .bind(pattern)
        .bind(limit)
        .fetch_all(pool)
        .await
        })?)
    }

    /// Replaces an attachment's wrapped key, if it is still the one that was rewrapped.
    pub async fn rewrap_attachment_key(
        &self,
        id: Uuid,
        previous: &str,
        rewrapped: &str,
    ) -> StoreResult<bool> {
        let changed = on_writer!(self, |conn| sqlx::query(
            "UPDATE attachments SET wrapped_key = $3 WHERE id = $1 AND wrapped_key = $2"
        )
        .bind(id)
        .bind(previous)
        .bind(rewrapped)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }
}

impl Store {
    /// The administrations that have sent referrals to a parquet (for the inbox's filter).
    pub async fn administrations_of_parquet(
        &self,
        parquet_id: Uuid,
    ) -> StoreResult<Vec<(Uuid, String)>> {
        let sql = "SELECT DISTINCT a.id, a.name FROM referrals r JOIN organisations a ON a.id = r.administration_id \
                   WHERE r.parquet_id = $1 AND r.status NOT IN ('draft', 'awaiting_validation') ORDER BY a.name";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(parquet_id)
            .fetch_all(pool)
            .await)?)
    }

    /// The parquets an administration has addressed referrals to (for "Mes saisines"' filter).
    pub async fn parquets_of_administration(
        &self,
        administration_id: Uuid,
    ) -> StoreResult<Vec<(Uuid, String)>> {
        let sql = "SELECT DISTINCT p.id, p.name FROM referrals r JOIN organisations p ON p.id = r.parquet_id \
                   WHERE r.administration_id = $1 ORDER BY p.name";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(administration_id)
            .fetch_all(pool)
            .await)?)
    }
}
