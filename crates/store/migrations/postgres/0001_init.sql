-- Info Parquet schema (PostgreSQL). The SQLite migration mirrors it type for type.

CREATE TABLE organisations (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('administration', 'parquet', 'platform')),
    name TEXT NOT NULL,
    siret TEXT UNIQUE,
    court_code TEXT UNIQUE,
    departement TEXT,
    requires_validation BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id UUID PRIMARY KEY,
    organisation_id UUID NOT NULL REFERENCES organisations(id),
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('agent', 'referent', 'clerk', 'prosecutor', 'admin')),
    password_hash TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_organisation ON users (organisation_id);

CREATE TABLE api_tokens (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL
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
    population BIGINT
);
CREATE INDEX communes_search_name ON communes (search_name);
CREATE INDEX communes_postal_codes ON communes (postal_codes);

CREATE TABLE competences (
    insee TEXT PRIMARY KEY,
    parquet_id UUID NOT NULL REFERENCES organisations(id),
    source TEXT NOT NULL CHECK (source IN ('official', 'estimated'))
);

CREATE TABLE offences (
    code BIGINT PRIMARY KEY,
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
    year BIGINT PRIMARY KEY,
    last_value BIGINT NOT NULL
);

CREATE TABLE referrals (
    id UUID PRIMARY KEY,
    reference TEXT UNIQUE,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    urgency TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    facts TEXT NOT NULL DEFAULT '',
    administration_reference TEXT,
    facts_started_on DATE,
    facts_ended_on DATE,
    commune_insee TEXT,
    address TEXT,
    administration_id UUID NOT NULL REFERENCES organisations(id),
    author_id UUID NOT NULL REFERENCES users(id),
    parquet_id UUID REFERENCES organisations(id),
    competence TEXT,
    competence_reason TEXT,
    assigned_to UUID REFERENCES users(id),
    parquet_number TEXT,
    limitation_date DATE,
    decision JSONB,
    judgement JSONB,
    status_before_complement TEXT,
    verification_code TEXT UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    submitted_at TIMESTAMPTZ,
    acknowledged_at TIMESTAMPTZ,
    registered_at TIMESTAMPTZ,
    decided_at TIMESTAMPTZ,
    UNIQUE (parquet_id, parquet_number)
);
CREATE INDEX referrals_parquet_inbox ON referrals (parquet_id, status, submitted_at);
CREATE INDEX referrals_administration ON referrals (administration_id, created_at);
CREATE INDEX referrals_author ON referrals (author_id, created_at);

CREATE TABLE referral_offences (
    referral_id UUID NOT NULL REFERENCES referrals(id),
    code BIGINT NOT NULL,
    PRIMARY KEY (referral_id, code)
);

CREATE TABLE parties (
    id UUID PRIMARY KEY,
    referral_id UUID NOT NULL REFERENCES referrals(id),
    position BIGINT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('suspect', 'victim', 'witness')),
    kind TEXT NOT NULL CHECK (kind IN ('person', 'organisation')),
    last_name TEXT,
    first_names TEXT,
    birth_date DATE,
    name TEXT,
    siren TEXT,
    siret TEXT,
    address TEXT
);
CREATE INDEX parties_referral ON parties (referral_id, position);

CREATE TABLE attachments (
    id UUID PRIMARY KEY,
    referral_id UUID NOT NULL REFERENCES referrals(id),
    filename TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    uploaded_by UUID NOT NULL REFERENCES users(id),
    uploaded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX attachments_referral ON attachments (referral_id, uploaded_at);

CREATE TABLE events (
    id UUID PRIMARY KEY,
    referral_id UUID NOT NULL REFERENCES referrals(id),
    at TIMESTAMPTZ NOT NULL,
    type TEXT NOT NULL,
    audience TEXT NOT NULL CHECK (audience IN ('everyone', 'sender', 'parquet')),
    actor_id UUID REFERENCES users(id),
    actor_name TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    actor_organisation TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX events_referral ON events (referral_id, at);

CREATE TABLE messages (
    id UUID PRIMARY KEY,
    referral_id UUID NOT NULL REFERENCES referrals(id),
    internal BOOLEAN NOT NULL,
    author_id UUID NOT NULL REFERENCES users(id),
    author_name TEXT NOT NULL,
    author_role TEXT NOT NULL,
    author_organisation TEXT NOT NULL,
    body TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_referral ON messages (referral_id, at);
