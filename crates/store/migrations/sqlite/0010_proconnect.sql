-- ProConnect (OpenID Connect) logins in progress: state (by its hash), nonce and PKCE verifier,
-- single use and short-lived. Sessions opened through ProConnect keep their ID token for the
-- provider's logout (id_token_hint).
CREATE TABLE oidc_logins (
    state_hash TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at TEXT NOT NULL
);
ALTER TABLE sessions ADD COLUMN id_token TEXT;
