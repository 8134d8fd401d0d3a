-- A parquet's inbox (most urgent first, then oldest) read in index order, without sorting
-- every referral of the status: the expression is the list query's ORDER BY, word for word.
CREATE INDEX referrals_inbox_order ON referrals (
    parquet_id,
    status,
    (CASE urgency WHEN 'immediate' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END),
    submitted_at,
    id
);
