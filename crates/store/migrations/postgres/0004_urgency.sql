-- Urgency circuits: on-call rota, escalation contacts, per-parquet deadlines, notifications
-- and the outbox of e-mails, written in the same transaction as their cause.
CREATE TABLE on_call_shifts (
    id UUID PRIMARY KEY,
    parquet_id UUID NOT NULL REFERENCES organisations(id),
    user_id UUID NOT NULL REFERENCES users(id),
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    phone TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX on_call_shifts_parquet ON on_call_shifts (parquet_id, ends_at);

CREATE TABLE escalation_contacts (
    id UUID PRIMARY KEY,
    parquet_id UUID NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    function TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX escalation_contacts_parquet ON escalation_contacts (parquet_id);

CREATE TABLE parquet_settings (
    parquet_id UUID PRIMARY KEY REFERENCES organisations(id),
    immediate_acknowledge_minutes BIGINT NOT NULL,
    urgent_acknowledge_hours BIGINT NOT NULL,
    normal_register_working_days BIGINT NOT NULL,
    escalation_interval_minutes BIGINT NOT NULL
);

CREATE TABLE notifications (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    referral_id UUID REFERENCES referrals(id),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    link TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    read_at TIMESTAMPTZ
);
CREATE INDEX notifications_user ON notifications (user_id, created_at);

CREATE TABLE jobs (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    run_at TIMESTAMPTZ NOT NULL,
    locked_until TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    done_at TIMESTAMPTZ
);
CREATE INDEX jobs_due ON jobs (status, run_at);

ALTER TABLE referrals ADD COLUMN escalated_at TIMESTAMPTZ;
ALTER TABLE referrals ADD COLUMN escalation_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN email_notifications BOOLEAN NOT NULL DEFAULT TRUE;
