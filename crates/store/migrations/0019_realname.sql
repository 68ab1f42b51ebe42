-- Issue #7: real-name checks (R2.2, R3.2, R7.4.3). One row per face verification; the user's
-- status is kept on the user ('verified', or 'verified-demo' from the dev provider).
CREATE TABLE realname_checks (
    id          TEXT PRIMARY KEY,
    employee_no TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    provider    TEXT NOT NULL,
    verify_id   TEXT NOT NULL,
    openid      TEXT,
    state       TEXT NOT NULL,
    demo        BIGINT NOT NULL,
    detail      TEXT,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    finished_at TEXT
);
ALTER TABLE users ADD COLUMN realname_status TEXT;
ALTER TABLE users ADD COLUMN realname_at TEXT;
