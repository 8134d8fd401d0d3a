-- A parquet's list newest first (API and exports) walked in index order instead of sorted:
-- measured at 100 000 referrals on SQLite, first page p50 145 ms → 10 ms (BENCHMARKS.md).
CREATE INDEX referrals_parquet_created ON referrals (parquet_id, created_at);
