-- FTS5 finds its rows fast by rowid only (referral_id is an unindexed column there): a
-- referral's search document is kept under a stable rowid of its own, so rewriting it never
-- scans the index.
CREATE TABLE referral_search_rows (
    rowid INTEGER PRIMARY KEY,
    referral_id BLOB NOT NULL UNIQUE
);
INSERT INTO referral_search_rows (rowid, referral_id) SELECT rowid, referral_id FROM referral_search;
