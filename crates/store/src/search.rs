//! Full-text search over referrals: FTS5 on SQLite, a `tsvector` with the 'french' configuration
//! on PostgreSQL. Both index one document per referral (title, facts, references, parties),
//! rewritten in the transaction that changes any of them, so the index is never behind the data.
//!
//! Documents and queries both go through `search_key` (lower case, accents and punctuation
//! removed), so "Société" finds "societe" and "IP-2026-000012" finds the reference on either
//! backend. Every word of a query must match, as a prefix: "dupo fraud" finds "Dupont" and
//! "fraudes".

use domain::text::search_key;
use sqlx::QueryBuilder;
use uuid::Uuid;

/// The statement behind `DOCUMENT_SOURCES`, given the backend's string aggregate and what
/// follows `WHERE id = $1`.
macro_rules! document_sources {
    ($aggregate:literal, $tail:literal) => {
        concat!(
            "SELECT title, facts, reference, administration_reference, parquet_number, parquet_id, administration_id, \
             (SELECT ", $aggregate, "(concat_ws(' ', last_name, first_names, name, siren, siret), ' ' ORDER BY position) \
              FROM parties WHERE referral_id = $1) AS party_words \
             FROM referrals WHERE id = $1",
            $tail
        )
    };
}

/// What a referral's search document is built from (`SearchDialect::DOCUMENT_SOURCES`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SearchSources {
    pub title: String,
    pub facts: String,
    pub reference: Option<String>,
    pub administration_reference: Option<String>,
    pub parquet_number: Option<String>,
    pub parquet_id: Option<Uuid>,
    pub administration_id: Uuid,
    pub party_words: Option<String>,
}

impl SearchSources {
    /// The sources of a referral about to be created from `content`: no reference or parquet
    /// number yet, so nothing needs reading back. Parties' words as `DOCUMENT_SOURCES` joins
    /// them (`search_key` makes the spacing irrelevant).
    pub(crate) fn of_new(content: &crate::ReferralContent, administration_id: Uuid) -> Self {
        let party_words: Vec<String> = content
            .parties
            .iter()
            .map(|party| {
                [
                    &party.last_name,
                    &party.first_names,
                    &party.name,
                    &party.siren,
                    &party.siret,
                ]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" ")
            })
            .collect();
        SearchSources {
            title: content.title.clone(),
            facts: content.facts.clone(),
            reference: None,
            administration_reference: content.administration_reference.clone(),
            parquet_number: None,
            parquet_id: content.parquet_id,
            administration_id,
            party_words: (!party_words.is_empty()).then(|| party_words.join(" ")),
        }
    }

    /// The sources once `update` is applied to the referral.
    pub(crate) fn apply(&mut self, update: &crate::ReferralUpdate) {
        if update.clear_parquet_progress {
            self.parquet_number = None;
        }
        if let Some(reference) = &update.reference {
            self.reference = Some(reference.clone());
        }
        if let Some(number) = &update.parquet_number {
            self.parquet_number = Some(number.clone());
        }
        if let Some(parquet) = update.parquet_id {
            self.parquet_id = Some(parquet);
        }
    }

    /// The indexed document: the words of the text, then the scope words searches filter on.
    pub(crate) fn document(&self) -> String {
        let mut text = format!("{} {}", self.title, self.facts);
        for part in [
            &self.reference,
            &self.administration_reference,
            &self.parquet_number,
            &self.party_words,
        ]
        .into_iter()
        .flatten()
        {
            text.push(' ');
            text.push_str(part);
        }
        let mut document = search_key(&text);
        document.push(' ');
        document.push_str(&domain::text::scope_words(
            self.parquet_id,
            self.administration_id,
        ));
        document
    }
}

/// What differs between the backends' full-text engines.
pub(crate) trait SearchDialect: sqlx::Database + Sized {
    /// Appends ` AND <referral r matches text>` to a query over `referrals r`. `scope` holds
    /// the scope words (see `domain::text::scope_words`) the documents must also contain;
    /// `plan` says which side drives the query.
    fn push_match(q: &mut QueryBuilder<'_, Self>, text: &str, scope: &[String], plan: MatchPlan);

    /// The referral's indexed columns and its parties' words (one string, in their order), by
    /// id: what a search document is built from, in one statement (`SearchSources`).
    const DOCUMENT_SOURCES: &'static str;

    /// `DOCUMENT_SOURCES` of a referral (`$1`) still in the status `$2`, whose row stays locked
    /// against other writers until the commit (on SQLite the single writer already is).
    const LOCKED_DOCUMENT_SOURCES: &'static str;

    /// Adds `, <search document> = document` to an `UPDATE referrals SET …` when this backend
    /// keeps the document in the referral's row (PostgreSQL); otherwise gives it back, to be
    /// written apart (SQLite's FTS5 table, `write_document`).
    fn push_document(q: &mut QueryBuilder<'_, Self>, document: String) -> Option<String>;

    /// Replaces the indexed document of a referral.
    async fn write_document(
        conn: &mut <Self as sqlx::Database>::Connection,
        id: Uuid,
        document: &str,
    ) -> Result<(), sqlx::Error>;
}

/// How a search within a scope is answered. Few matches: read them and fetch their referrals.
/// Many: walk the scope's referrals newest first (by index) and keep those that match, which
/// stops after one page. SQLite chooses from a bounded count of the matches; PostgreSQL walks
/// the scope within `SCOPE_WALK_BUDGET_MS` and reads the matches when that runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchPlan {
    FromMatches,
    FromScope,
}

/// Beyond this many matches, walking the scope is cheaper than fetching every match.
pub(crate) const FEW_MATCHES: i64 = 2_000;

/// How many of a scope's newest referrals SQLite looks at first for a page of matches: a word
/// in one referral in forty fills a page of fifty from them. The walk stops at the page, so a
/// common word reads a few hundred; a rare one reads them all (each a row: ~10 ms cold).
pub(crate) const NEWEST_WALK: i64 = 2_000;

/// How long PostgreSQL may walk a scope looking for a page of matches (a few thousand
/// referrals) before the search reads the matches instead.
pub(crate) const SCOPE_WALK_BUDGET_MS: u32 = 25;

/// The FTS5 expression of a query: each word a quoted prefix, each scope word exact. Words only
/// hold letters and digits, so the quoting cannot be escaped and no user input reaches FTS5's
/// query syntax. `None` when nothing searchable is left.
pub(crate) fn fts5_expression(text: &str, scope: &[String]) -> Option<String> {
    let words = query_words(text);
    if words.is_empty() {
        return None;
    }
    let mut terms: Vec<String> = words.iter().map(|word| format!("\"{word}\"*")).collect();
    terms.extend(scope.iter().map(|word| format!("\"{word}\"")));
    Some(terms.join(" "))
}

/// The words of a query, normalised like the documents; empty when nothing searchable is left.
fn query_words(text: &str) -> Vec<String> {
    search_key(text)
        .split_whitespace()
        .take(16)
        .map(str::to_string)
        .collect()
}

impl SearchDialect for sqlx::Sqlite {
    const DOCUMENT_SOURCES: &'static str = document_sources!("group_concat", "");
    const LOCKED_DOCUMENT_SOURCES: &'static str =
        document_sources!("group_concat", " AND status = $2");

    fn push_document(_q: &mut QueryBuilder<'_, Self>, document: String) -> Option<String> {
        Some(document)
    }

    fn push_match(q: &mut QueryBuilder<'_, Self>, text: &str, scope: &[String], plan: MatchPlan) {
        let Some(expression) = fts5_expression(text, scope) else {
            return;
        };
        // Matches are taken as FTS rowids (read from the index alone: asking FTS5 for its
        // referral_id column would read every matching document) and mapped through
        // referral_search_rows. FromScope walks the scope's index and tests each referral's
        // rowid against the match set; FromMatches fetches the matching referrals.
        match plan {
            MatchPlan::FromMatches => q.push(
                " AND r.id IN (SELECT sr.referral_id FROM referral_search_rows sr WHERE sr.rowid IN \
                 (SELECT rowid FROM referral_search WHERE referral_search MATCH ",
            ),
            MatchPlan::FromScope => q.push(
                " AND (SELECT sr.rowid FROM referral_search_rows sr WHERE sr.referral_id = r.id) IN \
                 (SELECT rowid FROM referral_search WHERE referral_search MATCH ",
            ),
        }
        .push_bind(expression)
        .push(match plan {
            MatchPlan::FromMatches => "))",
            MatchPlan::FromScope => ")",
        });
    }

    async fn write_document(
        conn: &mut sqlx::SqliteConnection,
        id: Uuid,
        document: &str,
    ) -> Result<(), sqlx::Error> {
        // The referral's own FTS rowid, created on first use: every step is by key. Three
        // statements in one query: one round trip to the connection's thread (see `colocate`).
        sqlx::query(
            "INSERT INTO referral_search_rows (referral_id) VALUES ($1) ON CONFLICT (referral_id) DO NOTHING; \
             DELETE FROM referral_search WHERE rowid = (SELECT rowid FROM referral_search_rows WHERE referral_id = $1); \
             INSERT INTO referral_search (rowid, referral_id, body) \
             SELECT rowid, $1, $2 FROM referral_search_rows WHERE referral_id = $1",
        )
        .bind(id)
        .bind(document)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

impl SearchDialect for sqlx::Postgres {
    const DOCUMENT_SOURCES: &'static str = document_sources!("string_agg", "");
    // NO KEY: the lock an UPDATE of the row takes, which lets other transactions still add
    // rows that refer to the referral (a message, a document).
    const LOCKED_DOCUMENT_SOURCES: &'static str =
        document_sources!("string_agg", " AND status = $2 FOR NO KEY UPDATE");

    fn push_document(q: &mut QueryBuilder<'_, Self>, document: String) -> Option<String> {
        q.push(", search_vector = to_tsvector('french', ")
            .push_bind(document)
            .push(")");
        None
    }

    fn push_match(q: &mut QueryBuilder<'_, Self>, text: &str, scope: &[String], _plan: MatchPlan) {
        let words = query_words(text);
        if words.is_empty() {
            return;
        }
        // Letters and digits only, so to_tsquery's operators cannot be injected.
        let expression = words
            .iter()
            .map(|word| format!("{word}:*"))
            .chain(scope.iter().cloned())
            .collect::<Vec<_>>()
            .join(" & ");
        q.push(" AND r.search_vector @@ to_tsquery('french', ")
            .push_bind(expression)
            .push(")");
    }

    async fn write_document(
        conn: &mut sqlx::PgConnection,
        id: Uuid,
        document: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE referrals SET search_vector = to_tsvector('french', $2) WHERE id = $1")
            .bind(id)
            .bind(document)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// PostgreSQL's SQLSTATE for a function the role may not run.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

impl crate::Store {
    /// Merges the entries PostgreSQL's search index keeps pending into the index itself;
    /// returns how many pages of them were merged (always 0 on SQLite, whose full-text index
    /// needs no such step). The worker calls it every round.
    ///
    /// Why: a GIN index takes new entries into a pending list, merged by autovacuum, or by the
    /// insert that takes the list past `gin_pending_list_limit` (4 MB, about 7 500
    /// submissions here). That insert is the writer's, and every write queued behind it waited
    /// for the merge: 120 ms for 239 pages, measured on the 1.2-million database. Merged here,
    /// it runs on a pool connection beside the writer. Every search also reads the whole
    /// pending list, so a short list keeps searches fast.
    pub async fn merge_pending_search_entries(&self) -> crate::StoreResult<i64> {
        match &self.pool {
            crate::Pool::Postgres(pool) => {
                let merged = sqlx::query_scalar(
                    "SELECT gin_clean_pending_list('referrals_search'::regclass)",
                )
                .fetch_one(pool)
                .await;
                match merged {
                    // Only the index's owner may merge: a deployment whose tables belong to
                    // another role leaves it to PostgreSQL, as before (autovacuum, or the
                    // insert that fills the list).
                    Err(sqlx::Error::Database(error))
                        if error.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE) =>
                    {
                        Ok(0)
                    }
                    merged => Ok(merged?),
                }
            }
            crate::Pool::Sqlite(_) => Ok(0),
        }
    }
}

/// Rebuilds the search document of one referral from its current rows, inside the caller's
/// transaction.
macro_rules! refresh_search {
    ($tx:expr, $id:expr, $db:ty) => {{
        let sources: $crate::search::SearchSources =
            sqlx::query_as(<$db as $crate::search::SearchDialect>::DOCUMENT_SOURCES)
                .bind($id)
                .fetch_one(&mut *$tx)
                .await?;
        <$db as $crate::search::SearchDialect>::write_document(&mut *$tx, $id, &sources.document())
            .await?;
    }};
}
pub(crate) use refresh_search;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_keep_only_letters_and_digits() {
        assert_eq!(
            query_words("  Société \"DUPONT\" OR* (IP-2026-000012) "),
            ["societe", "dupont", "or", "ip", "2026", "000012"]
        );
        assert!(query_words("\"*()&|!:'").is_empty());
    }
}
