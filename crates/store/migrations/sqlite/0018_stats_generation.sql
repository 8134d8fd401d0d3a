-- Raised by every rewrite of a month's cells, in the rewrite's transaction: the statistics
-- pages keep what they merged from the cells until it changes, whichever process refreshed.
CREATE TABLE stats_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO stats_generation (id, value) VALUES (1, 0);
