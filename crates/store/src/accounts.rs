//! Organisations, users, API tokens and browser sessions.

use crate::{
    on_pool, on_writer, ApiToken, Member, Organisation, ParquetSummary, Store, StoreError,
    StoreResult, User,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

const ORGANISATION_COLUMNS: &str =
    "id, kind, name, siret, court_code, departement, requires_validation, created_at";
const USER_COLUMNS: &str =
    "id, organisation_id, email, display_name, role, password_hash, active, created_at";

/// How stale a token's last use or a session's last activity may be before it is written again.
/// Writing it at every request made every read (an inbox, a search) a durable write waiting its
/// turn behind submissions; a minute is well inside the session's idle timeout.
const LAST_USE_GRANULARITY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A user's columns (alias `u`) and its organisation's (alias `o`), read with a token or a
/// session in one statement: authentication runs on every request.
const MEMBER_COLUMNS: &str = "u.id, u.organisation_id, u.email, u.display_name, u.role, u.password_hash, \
    u.active, u.created_at, o.kind AS organisation_kind, o.name AS organisation_name, \
    o.siret AS organisation_siret, o.court_code AS organisation_court_code, \
    o.departement AS organisation_departement, o.requires_validation AS organisation_requires_validation, \
    o.created_at AS organisation_created_at";

#[derive(sqlx::FromRow)]
struct MemberRow {
    #[sqlx(flatten)]
    user: User,
    organisation_kind: String,
    organisation_name: String,
    organisation_siret: Option<String>,
    organisation_court_code: Option<String>,
    organisation_departement: Option<String>,
    organisation_requires_validation: bool,
    organisation_created_at: DateTime<Utc>,
}

impl From<MemberRow> for Member {
    fn from(row: MemberRow) -> Member {
        let organisation = Organisation {
            id: row.user.organisation_id,
            kind: row.organisation_kind,
            name: row.organisation_name,
            siret: row.organisation_siret,
            court_code: row.organisation_court_code,
            departement: row.organisation_departement,
            requires_validation: row.organisation_requires_validation,
            created_at: row.organisation_created_at,
        };
        Member {
            user: row.user,
            organisation,
        }
    }
}

#[derive(sqlx::FromRow)]
struct TokenMemberRow {
    #[sqlx(flatten)]
    member: MemberRow,
    token_id: Uuid,
    token_name: String,
    token_scope: String,
    token_created_at: DateTime<Utc>,
    token_expires_at: Option<DateTime<Utc>>,
    token_revoked_at: Option<DateTime<Utc>>,
    token_last_used_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct SessionMemberRow {
    #[sqlx(flatten)]
    member: MemberRow,
    csrf_token: String,
    last_seen_at: DateTime<Utc>,
}

impl Store {
    /// Inserts an organisation, or returns the existing one with the same SIRET (administrations)
    /// or court code (parquets), so that seeding twice is harmless.
    pub async fn upsert_organisation(
        &self,
        organisation: &Organisation,
    ) -> StoreResult<Organisation> {
        let existing = match (&organisation.siret, &organisation.court_code) {
            (Some(siret), _) => self.organisation_by_siret(siret).await?,
            (None, Some(code)) => self.organisation_by_court_code(code).await?,
            (None, None) => self.organisation(organisation.id).await?,
        };
        if let Some(existing) = existing {
            return Ok(existing);
        }
        let sql = format!(
            "INSERT INTO organisations ({ORGANISATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        on_writer!(self, |conn| sqlx::query(&sql)
            .bind(organisation.id)
            .bind(&organisation.kind)
            .bind(&organisation.name)
            .bind(&organisation.siret)
            .bind(&organisation.court_code)
            .bind(&organisation.departement)
            .bind(organisation.requires_validation)
            .bind(organisation.created_at)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| StoreError::from_write(e, "organisation"))?;
        Ok(organisation.clone())
    }

    pub async fn organisation(&self, id: Uuid) -> StoreResult<Option<Organisation>> {
        let sql = format!("SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE id = $1");
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn organisation_by_siret(&self, siret: &str) -> StoreResult<Option<Organisation>> {
        let sql = format!("SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE siret = $1");
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(siret)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn organisation_by_court_code(
        &self,
        code: &str,
    ) -> StoreResult<Option<Organisation>> {
        let sql = format!("SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE court_code = $1");
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(code)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn organisations_of_kind(&self, kind: &str) -> StoreResult<Vec<Organisation>> {
        let sql = format!(
            "SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE kind = $1 ORDER BY name"
        );
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(kind)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn parquets(&self) -> StoreResult<Vec<ParquetSummary>> {
        let sql = "SELECT id, name, court_code, departement FROM organisations WHERE kind = 'parquet' ORDER BY name";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn create_user(&self, user: &User) -> StoreResult<()> {
        let sql =
            format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        on_writer!(self, |conn| sqlx::query(&sql)
            .bind(user.id)
            .bind(user.organisation_id)
            .bind(user.email.to_lowercase())
            .bind(&user.display_name)
            .bind(&user.role)
            .bind(&user.password_hash)
            .bind(user.active)
            .bind(user.created_at)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| StoreError::from_write(e, "un utilisateur avec cette adresse"))?;
        Ok(())
    }

    pub async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(email.trim().to_lowercase())
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn users_of_organisation(&self, organisation_id: Uuid) -> StoreResult<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE organisation_id = $1 ORDER BY display_name"
        );
        Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(organisation_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Stores a token by its hash only: the token itself is shown once and never kept.
    pub async fn create_api_token(&self, token: &ApiToken, token_hash: &str) -> StoreResult<()> {
        let sql = "INSERT INTO api_tokens (id, user_id, name, token_hash, scope, created_at, expires_at, revoked_at, last_used_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        on_writer!(self, |conn| sqlx::query(sql)
            .bind(token.id)
            .bind(token.user_id)
            .bind(&token.name)
            .bind(token_hash)
            .bind(&token.scope)
            .bind(token.created_at)
            .bind(token.expires_at)
            .bind(token.revoked_at)
            .bind(token.last_used_at)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The active user and token behind a token hash, if the token is valid at `now`; records
    /// its use.
    pub async fn authenticate_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Member, ApiToken)>> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS}, t.id AS token_id, t.name AS token_name, t.scope AS token_scope, \
             t.created_at AS token_created_at, t.expires_at AS token_expires_at, \
             t.revoked_at AS token_revoked_at, t.last_used_at AS token_last_used_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN organisations o ON o.id = u.organisation_id \
             WHERE t.token_hash = $1"
        );
        let found: Option<TokenMemberRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await)?;
        let Some(found) = found else { return Ok(None) };
        let token = ApiToken {
            id: found.token_id,
            user_id: found.member.user.id,
            name: found.token_name,
            scope: found.token_scope,
            created_at: found.token_created_at,
            expires_at: found.token_expires_at,
            revoked_at: found.token_revoked_at,
            last_used_at: found.token_last_used_at,
        };
        if token.revoked_at.is_some()
            || token.expires_at.is_some_and(|at| at <= now)
            || !found.member.user.active
        {
            return Ok(None);
        }
        let member = Member::from(found.member);
        if token
            .last_used_at
            .is_some_and(|at| now - at < LAST_USE_GRANULARITY)
        {
            return Ok(Some((member, token)));
        }
        on_writer!(self, |conn| sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2"
        )
        .bind(now)
        .bind(token.id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(Some((member, token)))
    }

    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: Uuid,
        csrf_token: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)";
        on_writer!(self, |conn| sqlx::query(sql)
            .bind(id_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(now)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The session's user and CSRF token, if the session exists, was created after
    /// `created_after` and was seen after `seen_after` (absolute and idle timeouts).
    pub async fn session(
        &self,
        id_hash: &str,
        created_after: DateTime<Utc>,
        seen_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Member, String)>> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS}, s.csrf_token, s.last_seen_at FROM sessions s \
             JOIN users u ON u.id = s.user_id JOIN organisations o ON o.id = u.organisation_id \
             WHERE s.id_hash = $1 AND s.created_at > $2 AND s.last_seen_at > $3"
        );
        let found: Option<SessionMemberRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id_hash)
            .bind(created_after)
            .bind(seen_after)
            .fetch_optional(pool)
            .await)?;
        let Some(found) = found else {
            return Ok(None);
        };
        if !found.member.user.active {
            return Ok(None);
        }
        if now - found.last_seen_at >= LAST_USE_GRANULARITY {
            self.touch_session(id_hash, now).await?;
        }
        Ok(Some((Member::from(found.member), found.csrf_token)))
    }

    async fn touch_session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2"
        )
        .bind(now)
        .bind(id_hash)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "DELETE FROM sessions WHERE id_hash = $1"
        )
        .bind(id_hash)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// A list filter saved by a user under a name.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct SavedFilter {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub query: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    pub async fn save_filter(&self, filter: &SavedFilter) -> StoreResult<()> {
        let sql = "INSERT INTO saved_filters (id, user_id, name, query, created_at) VALUES ($1, $2, $3, $4, $5)";
        on_writer!(self, |conn| sqlx::query(sql)
            .bind(filter.id)
            .bind(filter.user_id)
            .bind(&filter.name)
            .bind(&filter.query)
            .bind(filter.created_at)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn saved_filters(&self, user_id: Uuid) -> StoreResult<Vec<SavedFilter>> {
        let sql = "SELECT id, user_id, name, query, created_at FROM saved_filters WHERE user_id = $1 ORDER BY name";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Deletes one of the user's own filters; another user's id deletes nothing.
    pub async fn delete_saved_filter(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let deleted = on_writer!(self, |conn| sqlx::query(
            "DELETE FROM saved_filters WHERE id = $1 AND user_id = $2"
        )
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(deleted > 0)
    }
}

/// A response remembered for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IdempotentResponse {
    pub request_hash: String,
    pub status: i64,
    pub response: String,
}

impl Store {
    /// The instant until which logins to this account are refused, if any.
    pub async fn login_locked_until(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let locked: Option<Option<DateTime<Utc>>> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT locked_until FROM login_attempts WHERE email = $1"
        )
        .bind(email.trim().to_lowercase())
        .fetch_optional(pool)
        .await)?;
        Ok(locked.flatten().filter(|until| *until > now))
    }

    /// Records a failed login; from the fifth failure in a row the account is locked for a
    /// duration that doubles with each further failure (1 min, 2 min, 4 min… up to a day).
    pub async fn record_login_failure(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let email = email.trim().to_lowercase();
        let failures: i64 = on_writer!(self, |conn| {
            sqlx::query_scalar(
            "INSERT INTO login_attempts (email, failures, last_failure_at) VALUES ($1, 1, $2) \
             ON CONFLICT (email) DO UPDATE SET failures = login_attempts.failures + 1, last_failure_at = $2 RETURNING failures"
        )
        .bind(&email)
        .bind(now)
        .fetch_one(conn)
        .await
        })?;
        if failures < 5 {
            return Ok(None);
        }
        let minutes = 1i64 << (failures - 5).min(11);
        let until = now + chrono::Duration::minutes(minutes.min(24 * 60));
        on_writer!(self, |conn| sqlx::query(
            "UPDATE login_attempts SET locked_until = $2 WHERE email = $1"
        )
        .bind(&email)
        .bind(until)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(Some(until))
    }

    pub async fn reset_login_failures(&self, email: &str) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "DELETE FROM login_attempts WHERE email = $1"
        )
        .bind(email.trim().to_lowercase())
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn idempotent_response(
        &self,
        user_id: Uuid,
        key: &str,
    ) -> StoreResult<Option<IdempotentResponse>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT request_hash, status, response FROM idempotency_keys WHERE user_id = $1 AND key = $2")
            .bind(user_id)
            .bind(key)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// Remembers a response; a concurrent request with the same key that finished first wins.
    pub async fn remember_response(
        &self,
        user_id: Uuid,
        key: &str,
        request_hash: &str,
        status: i64,
        response: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_writer!(self, |conn| {
            sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id, key) DO NOTHING"
        )
        .bind(user_id)
        .bind(key)
        .bind(request_hash)
        .bind(status)
        .bind(response)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
