-- /metrics counts waiting and failed jobs at every scrape: by index, not by scanning every job
-- ever done.
CREATE INDEX jobs_status ON jobs (status);

-- Search within one organisation's referrals is answered by the full-text index alone: each
-- document also holds words naming its administration and parquet (domain::text::scope_words).
UPDATE referrals SET search_vector = search_vector || to_tsvector('french',
    'za' || replace(administration_id::text, '-', '') || COALESCE(' zp' || replace(parquet_id::text, '-', ''), ''))
WHERE search_vector IS NOT NULL;
-- The national list newest first, walked in index order.
CREATE INDEX referrals_created ON referrals (created_at);
