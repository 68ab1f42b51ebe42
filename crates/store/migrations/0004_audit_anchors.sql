-- Signed anchors of the audit chain head (R1.7): a truncated or rewritten chain no longer matches
-- the anchors the platform key signed.
CREATE TABLE audit_anchors (
    id         BIGINT PRIMARY KEY,
    at         TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    head_hash  TEXT NOT NULL,
    signature  TEXT NOT NULL
);
