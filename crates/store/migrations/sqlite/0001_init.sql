-- Info Parquet schema (SQLite). Mirrors the PostgreSQL migration: BLOBs as 16-byte BLOBs,
-- instants and dates as ISO-8601 TEXT (as sqlx encodes them), JSON as TEXT.

CREATE TABLE organisations (
    id BLOB PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('administration', 'parquet', 'platform')),
    name TEXT NOT NULL,
    siret TEXT UNIQUE,
    court_code TEXT UNIQUE,
    departement TEXT,
    requires_validation INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    id BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL REFERENCES organisations(id),
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('agent', 'referent', 'clerk', 'prosecutor', 'admin')),
    password_hash TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE INDEX users_organisation ON users (organisation_id);

CREATE TABLE api_tokens (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);

CREATE TABLE communes (
    insee TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    search_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent_insee TEXT,
    departement TEXT NOT NULL,
    arrondissement TEXT NOT NULL,
    postal_codes TEXT NOT NULL,
    population INTEGER
);
CREATE INDEX communes_search_name ON communes (search_name);
CREATE INDEX communes_postal_codes ON communes (postal_codes);

CREATE TABLE competences (
    insee TEXT PRIMARY KEY,
    parquet_id BLOB NOT NULL REFERENCES organisations(id),
    source TEXT NOT NULL CHECK (source IN ('official', 'estimated'))
);

CREATE TABLE offences (
    code INTEGER PRIMARY KEY,
    nature TEXT NOT NULL,
    label TEXT NOT NULL,
    search_label TEXT NOT NULL,
    defined_by TEXT NOT NULL,
    punished_by TEXT NOT NULL
);

CREATE TABLE dismissal_reasons (
    code TEXT PRIMARY KEY,
    label TEXT NOT NULL
);

CREATE TABLE reference_counters (
    year INTEGER PRIMARY KEY,
    last_value INTEGER NOT NULL
);

CREATE TABLE referrals (
    id BLOB PRIMARY KEY,
    reference TEXT UNIQUE,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    urgency TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    facts TEXT NOT NULL DEFAULT '',
    administration_reference TEXT,
    facts_started_on TEXT,
    facts_ended_on TEXT,
    commune_insee TEXT,
    address TEXT,
    administration_id BLOB NOT NULL REFERENCES organisations(id),
    author_id BLOB NOT NULL REFERENCES users(id),
    parquet_id BLOB REFERENCES organisations(id),
    competence TEXT,
    competence_reason TEXT,
    assigned_to BLOB REFERENCES users(id),
    parquet_number TEXT,
    limitation_date TEXT,
    decision TEXT,
    judgement TEXT,
    status_before_complement TEXT,
    verification_code TEXT UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    submitted_at TEXT,
    acknowledged_at TEXT,
    registered_at TEXT,
    decided_at TEXT,
    UNIQUE (parquet_id, parquet_number)
);
CREATE INDEX referrals_parquet_inbox ON referrals (parquet_id, status, submitted_at);
CREATE INDEX referrals_administration ON referrals (administration_id, created_at);
CREATE INDEX referrals_author ON referrals (author_id, created_at);

CREATE TABLE referral_offences (
    referral_id BLOB NOT NULL REFERENCES referrals(id),
    code INTEGER NOT NULL,
    PRIMARY KEY (referral_id, code)
);

CREATE TABLE parties (
    id BLOB PRIMARY KEY,
    referral_id BLOB NOT NULL REFERENCES referrals(id),
    position INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('suspect', 'victim', 'witness')),
    kind TEXT NOT NULL CHECK (kind IN ('person', 'organisation')),
    last_name TEXT,
    first_names TEXT,
    birth_date TEXT,
    name TEXT,
    siren TEXT,
    siret TEXT,
    address TEXT
);
CREATE INDEX parties_referral ON parties (referral_id, position);

CREATE TABLE attachments (
    id BLOB PRIMARY KEY,
    referral_id BLOB NOT NULL REFERENCES referrals(id),
    filename TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    uploaded_by BLOB NOT NULL REFERENCES users(id),
    uploaded_at TEXT NOT NULL
);
CREATE INDEX attachments_referral ON attachments (referral_id, uploaded_at);

CREATE TABLE events (
    id BLOB PRIMARY KEY,
    referral_id BLOB NOT NULL REFERENCES referrals(id),
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    audience TEXT NOT NULL CHECK (audience IN ('everyone', 'sender', 'parquet')),
    actor_id BLOB REFERENCES users(id),
    actor_name TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    actor_organisation TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX events_referral ON events (referral_id, at);

CREATE TABLE messages (
    id BLOB PRIMARY KEY,
    referral_id BLOB NOT NULL REFERENCES referrals(id),
    internal INTEGER NOT NULL,
    author_id BLOB NOT NULL REFERENCES users(id),
    author_name TEXT NOT NULL,
    author_role TEXT NOT NULL,
    author_organisation TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX messages_referral ON messages (referral_id, at);
