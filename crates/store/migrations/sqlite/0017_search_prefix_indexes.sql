-- Every query word is a prefix ("fraud" finds "fraudes"). Without a prefix index FTS5 merges the
-- lists of every indexed word that starts with it, at each search: at 1.2 million referrals that
-- merge was most of a search's time (36 ms for "travail chantier" in the busiest parquet, 20 ms
-- with these indexes). Words of 3 to 9 letters use them; longer ones have few continuations.
-- The index grows by about 70 %.
CREATE VIRTUAL TABLE referral_search_prefixed USING fts5(
    referral_id UNINDEXED,
    body,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '3 4 5 6 7 8 9'
);
INSERT INTO referral_search_prefixed (rowid, referral_id, body)
    SELECT rowid, referral_id, body FROM referral_search;
DROP TABLE referral_search;
ALTER TABLE referral_search_prefixed RENAME TO referral_search;
