-- Webhooks: URLs an organisation asks to be called on its referrals' events. Deliveries are
-- jobs of kind 'webhook', tied to their webhook for listing and replay.
CREATE TABLE webhooks (
    id UUID PRIMARY KEY,
    organisation_id UUID NOT NULL REFERENCES organisations(id),
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_by UUID REFERENCES users(id),
    created_at TIMESTAMPTZ NOT NULL,
    disabled_at TIMESTAMPTZ
);
CREATE INDEX webhooks_organisation ON webhooks (organisation_id);

ALTER TABLE jobs ADD COLUMN webhook_id UUID REFERENCES webhooks(id);
CREATE INDEX jobs_webhook ON jobs (webhook_id, created_at);
CREATE INDEX jobs_kind_due ON jobs (kind, status, run_at);
