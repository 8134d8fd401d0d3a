//! The writes of a submission on PostgreSQL, each in one statement with its timeline entry.
//!
//! Why: on PostgreSQL a submission's cost is mostly per statement (a round trip, a portal, an
//! executor started and finished, in the server and in the database), not in what each
//! statement does; the profile of the thirteenth session showed no single hot spot.
//! Data-modifying CTEs let a new referral with its offences, parties and first entry, or a
//! document with its entry, go in one statement. SQLite has no data-modifying CTEs and keeps
//! a statement each on its writer (`referrals.rs`).

use crate::group_commit::InBatch;
use crate::integrations::{enqueue_webhooks, WebhookOfReferral, WEBHOOKS_OF_REFERRAL};
use crate::referrals::{postgres_entry_sql, ATTACHMENT_COLUMNS, REFERRAL_CREATED_COLUMNS};
use crate::{ActorInfo, Attachment, NewEvent, ReferralContent};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::QueryAs;
use uuid::Uuid;

/// `$1, $2, …` for `count` parameters from `$first`.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first parameter after a timeline entry's thirteen (see `postgres_entry_sql`).
const AFTER_ENTRY: usize = 14;

/// A new referral, its offences, its parties and its first entry. The row's id is the entry's
/// `$2` and its creation instant the entry's `$3`; the webhooks are read from the inserted row
/// (a statement does not see its own CTEs' rows in the table).
static CREATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let first = AFTER_ENTRY;
    let content = REFERRAL_CREATED_COLUMNS.len();
    let document = first + content;
    let codes = document + 1;
    let parties = codes + 1;
    let columns = REFERRAL_CREATED_COLUMNS.join(", ");
    let values = placeholders(first, content);
    let party_arrays = format!(
        "${}::uuid[], ${}::bigint[], ${}::text[], ${}::text[], ${}::text[], ${}::text[], ${}::date[], \
         ${}::text[], ${}::text[], ${}::text[], ${}::text[]",
        parties,
        parties + 1,
        parties + 2,
        parties + 3,
        parties + 4,
        parties + 5,
        parties + 6,
        parties + 7,
        parties + 8,
        parties + 9,
        parties + 10
    );
    let leading = format!(
        "created AS (INSERT INTO referrals (id, {columns}, created_at, updated_at, search_vector) \
         VALUES ($2, {values}, $3, $3, to_tsvector('french', ${document})) \
         RETURNING id, reference, status, administration_id, parquet_id), \
         offences AS (INSERT INTO referral_offences (referral_id, code) \
         SELECT $2, code FROM unnest(${codes}::bigint[]) AS code), \
         parties AS (INSERT INTO parties (id, referral_id, position, role, kind, last_name, first_names, birth_date, name, siren, siret, address) \
         SELECT p.id, $2, p.position, p.role, p.kind, p.last_name, p.first_names, p.birth_date, p.name, p.siren, p.siret, p.address \
         FROM unnest({party_arrays}) AS p(id, position, role, kind, last_name, first_names, birth_date, name, siren, siret, address)), "
    );
    postgres_entry_sql(
        &leading,
        &WEBHOOKS_OF_REFERRAL.replacen("FROM referrals r ", "FROM created r ", 1),
    )
});

/// A document and its entry.
static ATTACH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let values = placeholders(AFTER_ENTRY, ATTACHMENT_COLUMNS.split(',').count());
    postgres_entry_sql(
        &format!(
            "attached AS (INSERT INTO attachments ({ATTACHMENT_COLUMNS}) VALUES ({values})), "
        ),
        WEBHOOKS_OF_REFERRAL,
    )
});

type EntryQuery<'q> = QueryAs<'q, Postgres, WebhookOfReferral, PgArguments>;

/// A statement of `postgres_entry_sql` with its entry's thirteen parameters bound.
fn entry_query<'q>(
    sql: &'q str,
    referral_id: Uuid,
    at: DateTime<Utc>,
    actor: &ActorInfo,
    event: &NewEvent,
) -> Result<EntryQuery<'q>, sqlx::Error> {
    let arguments = crate::referrals::entry_arguments!(Postgres, referral_id, at, actor, event)?;
    Ok(sqlx::query_as_with(sql, arguments))
}

/// Runs an entry's statement and queues its webhooks, inside the savepoint the writer took
/// for the body (see `group_commit`): usually one round trip.
async fn write_with_entry(
    conn: &mut InBatch<'_>,
    query: EntryQuery<'_>,
    referral_id: Uuid,
    at: DateTime<Utc>,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let conn: &mut sqlx::PgConnection = conn;
    let hooks: Vec<WebhookOfReferral> = query.fetch_all(&mut *conn).await?;
    enqueue_webhooks!(conn, hooks, referral_id, at, event);
    Ok(())
}

/// `Store::create_referral` on PostgreSQL.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create_referral(
    conn: &mut InBatch<'_>,
    id: Uuid,
    administration_id: Uuid,
    author_id: Uuid,
    status: &str,
    content: &ReferralContent,
    document: String,
    now: DateTime<Utc>,
    actor: &ActorInfo,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let mut codes = content.offence_codes.clone();
    codes.sort_unstable();
    codes.dedup();
    let parties = &content.parties;
    let column = |f: fn(&crate::Party) -> Option<String>| parties.iter().map(f).collect::<Vec<_>>();
    // In the order of REFERRAL_CREATED_COLUMNS.
    let query = entry_query(&CREATE, id, now, actor, event)?
        .bind(status.to_string())
        .bind(content.kind.clone())
        .bind(content.urgency.clone())
        .bind(content.title.clone())
        .bind(content.facts.clone())
        .bind(content.administration_reference.clone())
        .bind(content.facts_started_on)
        .bind(content.facts_ended_on)
        .bind(content.commune_insee.clone())
        .bind(content.address.clone())
        .bind(administration_id)
        .bind(author_id)
        .bind(content.parquet_id)
        .bind(content.competence.clone())
        .bind(content.competence_reason.clone())
        .bind(content.limitation_date)
        .bind(document)
        .bind(codes)
        .bind(parties.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
        .bind((0..parties.len() as i64).collect::<Vec<_>>())
        .bind(parties.iter().map(|p| p.role.clone()).collect::<Vec<_>>())
        .bind(parties.iter().map(|p| p.kind.clone()).collect::<Vec<_>>())
        .bind(column(|p| p.last_name.clone()))
        .bind(column(|p| p.first_names.clone()))
        .bind(parties.iter().map(|p| p.birth_date).collect::<Vec<_>>())
        .bind(column(|p| p.name.clone()))
        .bind(column(|p| p.siren.clone()))
        .bind(column(|p| p.siret.clone()))
        .bind(column(|p| p.address.clone()));
    write_with_entry(conn, query, id, now, event).await
}

/// `Store::add_attachment` on PostgreSQL, for a document the timeline records.
pub(crate) async fn add_attachment(
    conn: &mut InBatch<'_>,
    attachment: &Attachment,
    actor: &ActorInfo,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    // In the order of ATTACHMENT_COLUMNS.
    let query = entry_query(
        &ATTACH,
        attachment.referral_id,
        attachment.uploaded_at,
        actor,
        event,
    )?
    .bind(attachment.id)
    .bind(attachment.referral_id)
    .bind(attachment.filename.clone())
    .bind(attachment.media_type.clone())
    .bind(attachment.size)
    .bind(attachment.sha256.clone())
    .bind(attachment.kind.clone())
    .bind(attachment.storage_key.clone())
    .bind(attachment.uploaded_by)
    .bind(attachment.uploaded_at)
    .bind(attachment.wrapped_key.clone());
    write_with_entry(
        conn,
        query,
        attachment.referral_id,
        attachment.uploaded_at,
        event,
    )
    .await
}
