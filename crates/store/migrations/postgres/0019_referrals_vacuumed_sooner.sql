-- The statistics pages count the open referrals with an index-only scan, which stays one only
-- while the table's visibility map is current, i.e. while vacuum keeps up. By default
-- autovacuum waits until a fifth of the table has changed. At 1.2 million referrals, a
-- monthly decision-reminder round touched 95 000 of them; then the count made 44 000 heap
-- fetches (320 ms instead of ~10 ms) and stayed that slow until 240 000 rows had changed. So
-- the referrals are vacuumed after about 1 % of them changed or were added.
ALTER TABLE referrals SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);
