-- (SQLite only: its full-text index gets stable row ids. Nothing to do on PostgreSQL, whose
-- search vector is a column of the referral.)
SELECT 1;
