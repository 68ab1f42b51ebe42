-- Issue #15: sole control. Every use of the phone's key needs a fresh approval: the PIN (counted)
-- or a verified fingerprint, for one device, used once, bound to the SM3 digest of what it approves
-- (the signing digests, the grant, the certificate). Rows are kept for the audit trail until swept.
CREATE TABLE approvals (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    via        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX approvals_device ON approvals (device_id, digest);
-- At most one live key per device, whatever the number of instances racing to certify one.
CREATE UNIQUE INDEX split_keys_live ON split_keys (device_id) WHERE status IN ('generating', 'active');
