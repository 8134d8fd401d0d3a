-- Indicators from monthly cells (domain::stats): the figures of the referrals sent in one month,
-- for one scope (national, a parquet, an administration) and one breakdown value, with delay
-- histograms. A request merges the cells of its scope and period instead of reading every
-- referral. Changed referrals are queued in stats_changes, in the transaction of the change;
-- the worker recomputes their months.
CREATE TABLE stats_cells (
    scope SMALLINT NOT NULL,
    scope_id UUID NOT NULL,
    month INTEGER NOT NULL,
    axis SMALLINT NOT NULL,
    value TEXT NOT NULL,
    received BIGINT NOT NULL,
    decided BIGINT NOT NULL,
    dismissed BIGINT NOT NULL,
    urgent BIGINT NOT NULL,
    urgent_in_time BIGINT NOT NULL,
    to_acknowledgement BYTEA NOT NULL,
    to_registration BYTEA NOT NULL,
    to_decision BYTEA NOT NULL
);
CREATE UNIQUE INDEX stats_cells_key ON stats_cells (scope, scope_id, month, axis, value);
CREATE INDEX stats_cells_month ON stats_cells (month);

CREATE TABLE stats_changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    referral_id UUID NOT NULL
);
INSERT INTO stats_changes (referral_id) SELECT id FROM referrals WHERE submitted_at IS NOT NULL;

-- A month's referrals, read when its cells are recomputed.
CREATE INDEX referrals_submitted ON referrals (submitted_at);
-- Open referrals (the backlog and limitation dates), counted live for a parquet or a sender.
CREATE INDEX referrals_open_parquet ON referrals (parquet_id, submitted_at, limitation_date)
    WHERE decided_at IS NULL AND status NOT IN ('draft', 'withdrawn', 'closed');
CREATE INDEX referrals_open_administration ON referrals (administration_id, submitted_at, limitation_date)
    WHERE decided_at IS NULL AND status NOT IN ('draft', 'withdrawn', 'closed');
