-- Urgency circuits: on-call rota, escalation contacts, per-parquet deadlines, notifications
-- and the outbox of e-mails, written in the same transaction as their cause.
CREATE TABLE on_call_shifts (
    id BLOB PRIMARY KEY,
    parquet_id BLOB NOT NULL REFERENCES organisations(id),
    user_id BLOB NOT NULL REFERENCES users(id),
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    phone TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX on_call_shifts_parquet ON on_call_shifts (parquet_id, ends_at);

CREATE TABLE escalation_contacts (
    id BLOB PRIMARY KEY,
    parquet_id BLOB NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    function TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX escalation_contacts_parquet ON escalation_contacts (parquet_id);

CREATE TABLE parquet_settings (
    parquet_id BLOB PRIMARY KEY REFERENCES organisations(id),
    immediate_acknowledge_minutes INTEGER NOT NULL,
    urgent_acknowledge_hours INTEGER NOT NULL,
    normal_register_working_days INTEGER NOT NULL,
    escalation_interval_minutes INTEGER NOT NULL
);

CREATE TABLE notifications (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users(id),
    referral_id BLOB REFERENCES referrals(id),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    link TEXT NOT NULL,
    created_at TEXT NOT NULL,
    read_at TEXT
);
CREATE INDEX notifications_user ON notifications (user_id, created_at);

CREATE TABLE jobs (
    id BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at TEXT NOT NULL,
    locked_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX jobs_due ON jobs (status, run_at);

ALTER TABLE referrals ADD COLUMN escalated_at TEXT;
ALTER TABLE referrals ADD COLUMN escalation_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN email_notifications INTEGER NOT NULL DEFAULT 1;
