-- The hash-chained journal of every action and every read, its signed checkpoints, and the
-- signatures of receipts and decision notices.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor_id UUID,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    organisation TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target);

-- The head of the chain: one row, locked by every append so that entries form a single line.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL
);

ALTER TABLE referrals ADD COLUMN receipt_signature TEXT;
ALTER TABLE referrals ADD COLUMN notice_signature TEXT;
