-- TOTP second factor for local accounts: the confirmed secret, the one being enrolled, and the
-- last accepted time step (a code is accepted once). Recovery codes are kept hashed.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_pending_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;

CREATE TABLE recovery_codes (
    user_id BLOB NOT NULL REFERENCES users(id),
    code_hash TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (user_id, code_hash)
);

-- Between the password and the code: a short-lived challenge, by the hash of its cookie.
CREATE TABLE second_factor_challenges (
    id_hash TEXT PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
