-- Issue #7: session authorization (R3.5). A user grants a business system (app) a window in which
-- its auto flows sign with the user's two-party key without the phone: the phone seals its share
-- d1 to a fresh grant key; the grant key is kept wrapped under the KEK; cancel or expiry erases both.
CREATE TABLE grants (
    id                TEXT PRIMARY KEY,
    employee_no       TEXT NOT NULL,
    device_id         TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    app_id            TEXT NOT NULL,
    state             TEXT NOT NULL,
    hours             BIGINT NOT NULL,
    max_count         BIGINT,
    used_count        BIGINT NOT NULL,
    context           TEXT NOT NULL,
    grant_key_wrapped TEXT,
    share_sealed      TEXT,
    expires_at        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    ended_at          TEXT
);
CREATE INDEX grants_user ON grants (employee_no, app_id, state);
ALTER TABLE flow_signers ADD COLUMN grant_id TEXT;
