-- The cells of one scope and month (migration 0013) are now stored together, as two encoded
-- lists: the cells every page reads, and those broken down by parquet or administration (nine
-- in ten nationally, never shown publicly). Over ten years the national page read 28 000 rows,
-- and the driver spent 250 ms handing them over one by one; it now reads 120.
DROP TABLE stats_cells;
CREATE TABLE stats_months (
    scope SMALLINT NOT NULL,
    scope_id UUID NOT NULL,
    month INTEGER NOT NULL,
    cells BYTEA NOT NULL,
    organisation_cells BYTEA NOT NULL,
    PRIMARY KEY (scope, scope_id, month)
);
CREATE INDEX stats_months_month ON stats_months (month);
-- Kept uncompressed: the national lists weigh 22 MB over ten years, and decompressing them
-- took more time than reading them.
ALTER TABLE stats_months ALTER COLUMN cells SET STORAGE EXTERNAL,
    ALTER COLUMN organisation_cells SET STORAGE EXTERNAL;

-- The cells are derived data: the worker rebuilds them all.
DELETE FROM stats_changes;
INSERT INTO stats_changes (referral_id) SELECT id FROM referrals WHERE submitted_at IS NOT NULL;
