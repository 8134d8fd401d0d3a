-- Filters a user saved on the list of referrals (the parquet's inbox, the sender's list).
CREATE TABLE saved_filters (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX saved_filters_user ON saved_filters (user_id, name);
