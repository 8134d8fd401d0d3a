//! The TOTP second factor of local accounts: secrets, recovery codes (hashed) and the
//! challenges that sit between a correct password and a correct code.

use crate::{on_pool, on_writer, Store, StoreResult};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where a user stands with the second factor.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct TotpState {
    /// The confirmed secret (base32): when present, every login asks for a code.
    pub secret: Option<String>,
    /// A secret shown for enrolment, not confirmed yet.
    pub pending_secret: Option<String>,
}

impl Store {
    pub async fn totp_state(&self, user_id: Uuid) -> StoreResult<TotpState> {
        let sql = "SELECT totp_secret AS secret, totp_pending_secret AS pending_secret FROM users WHERE id = $1";
        let found: Option<TotpState> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .fetch_optional(pool)
            .await)?;
        Ok(found.unwrap_or_default())
    }

    pub async fn set_totp_pending(&self, user_id: Uuid, secret: &str) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "UPDATE users SET totp_pending_secret = $2 WHERE id = $1"
        )
        .bind(user_id)
        .bind(secret)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Confirms enrolment: the pending secret becomes the secret (only if it is still the one
    /// the code was checked against), and the recovery codes replace any earlier ones.
    pub async fn enable_totp(
        &self,
        user_id: Uuid,
        secret: &str,
        step: i64,
        recovery_hashes: &[String],
    ) -> StoreResult<bool> {
        let enabled = on_writer!(self, |conn| {
            let mut tx = conn.begin().await?;
            let changed = sqlx::query(
                "UPDATE users SET totp_secret = $2, totp_pending_secret = NULL, totp_last_step = $3 \
                 WHERE id = $1 AND totp_pending_secret = $2",
            )
            .bind(user_id)
            .bind(secret)
            .bind(step)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            for hash in recovery_hashes {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(user_id)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })?;
        Ok(enabled)
    }

    pub async fn disable_totp(&self, user_id: Uuid) -> StoreResult<()> {
        on_writer!(self, |conn| {
            let mut tx = conn.begin().await?;
            sqlx::query(
                "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, totp_last_step = NULL WHERE id = $1",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Records a time step as used; false when it (or a later one) already was, so that a code
    /// seen over someone's shoulder cannot be replayed.
    pub async fn accept_totp_step(&self, user_id: Uuid, step: i64) -> StoreResult<bool> {
        let changed = on_writer!(self, |conn| {
            sqlx::query(
            "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)"
        )
        .bind(user_id)
        .bind(step)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Spends a recovery code; false when unknown or already used.
    pub async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let changed = on_writer!(self, |conn| {
            sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL"
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(changed == 1)
    }

    pub async fn unused_recovery_codes(&self, user_id: Uuid) -> StoreResult<i64> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL"
        )
        .bind(user_id)
        .fetch_one(pool)
        .await)?)
    }

    pub async fn create_second_factor_challenge(
        &self,
        id_hash: &str,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_writer!(self, |conn| {
            sqlx::query(
            "INSERT INTO second_factor_challenges (id_hash, user_id, created_at, attempts) VALUES ($1, $2, $3, 0)"
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The user behind a live challenge (created after `created_after`, fewer than
    /// `max_attempts` wrong codes).
    pub async fn second_factor_challenge(
        &self,
        id_hash: &str,
        created_after: DateTime<Utc>,
        max_attempts: i64,
    ) -> StoreResult<Option<Uuid>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar(
            "SELECT user_id FROM second_factor_challenges WHERE id_hash = $1 AND created_at > $2 AND attempts < $3"
        )
        .bind(id_hash)
        .bind(created_after)
        .bind(max_attempts)
        .fetch_optional(pool)
        .await
        })?)
    }

    pub async fn second_factor_failed(&self, id_hash: &str) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "UPDATE second_factor_challenges SET attempts = attempts + 1 WHERE id_hash = $1"
        )
        .bind(id_hash)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_second_factor_challenge(&self, id_hash: &str) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "DELETE FROM second_factor_challenges WHERE id_hash = $1"
        )
        .bind(id_hash)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

impl Store {
    /// Remembers an OpenID Connect login in progress.
    pub async fn create_oidc_login(
        &self,
        state_hash: &str,
        nonce: &str,
        pkce_verifier: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_writer!(self, |conn| {
            sqlx::query(
            "INSERT INTO oidc_logins (state_hash, nonce, pkce_verifier, created_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(state_hash)
        .bind(nonce)
        .bind(pkce_verifier)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Takes (and forgets) a login in progress started after `created_after`: each state is
    /// good for one callback only. Returns its nonce and PKCE verifier.
    pub async fn take_oidc_login(
        &self,
        state_hash: &str,
        created_after: DateTime<Utc>,
    ) -> StoreResult<Option<(String, String)>> {
        let found = on_writer!(self, |conn| {
            let mut tx = conn.begin().await?;
            let found: Option<(String, String)> = sqlx::query_as(
                "SELECT nonce, pkce_verifier FROM oidc_logins WHERE state_hash = $1 AND created_at > $2",
            )
            .bind(state_hash)
            .bind(created_after)
            .fetch_optional(&mut *tx)
            .await?;
            let deleted = sqlx::query("DELETE FROM oidc_logins WHERE state_hash = $1")
                .bind(state_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            // Two concurrent callbacks with one state: only the one that deleted it proceeds.
            Ok::<_, sqlx::Error>(found.filter(|_| deleted == 1))
        })?;
        Ok(found)
    }

    pub async fn set_session_id_token(&self, id_hash: &str, id_token: &str) -> StoreResult<()> {
        on_writer!(self, |conn| sqlx::query(
            "UPDATE sessions SET id_token = $2 WHERE id_hash = $1"
        )
        .bind(id_hash)
        .bind(id_token)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn session_id_token(&self, id_hash: &str) -> StoreResult<Option<String>> {
        let found: Option<Option<String>> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT id_token FROM sessions WHERE id_hash = $1"
        )
        .bind(id_hash)
        .fetch_optional(pool)
        .await)?;
        Ok(found.flatten())
    }
}
