-- The decision reminders' round reads every registered referral still undecided after three
-- months, for its id and status: with both in the index, it reads the index alone (see the
-- PostgreSQL migration of the same name). `decided_at`, always null here, is in it too:
-- SQLite takes an index as covering only if it holds every column the query names, even one
-- the index's condition fixes.
DROP INDEX referrals_undecided;
CREATE INDEX referrals_undecided ON referrals (registered_at, id, status, decided_at)
    WHERE status IN ('registered', 'under_investigation') AND decided_at IS NULL;
