-- /metrics counts waiting and failed jobs at every scrape: by index, not by scanning every job
-- ever done.
CREATE INDEX jobs_status ON jobs (status);

-- Search within one organisation's referrals is answered by the full-text index alone: each
-- document also holds words naming its administration and parquet (domain::text::scope_words).
UPDATE referral_search SET body = body || ' ' || (
    SELECT 'za' || lower(hex(r.administration_id)) || COALESCE(' zp' || lower(hex(r.parquet_id)), '')
    FROM referrals r WHERE r.id = referral_search.referral_id
) WHERE referral_id IN (SELECT id FROM referrals);
-- The national list newest first, walked in index order.
CREATE INDEX referrals_created ON referrals (created_at);
