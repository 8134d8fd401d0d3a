-- Filters a user saved on the list of referrals (the parquet's inbox, the sender's list).
CREATE TABLE saved_filters (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX saved_filters_user ON saved_filters (user_id, name);
