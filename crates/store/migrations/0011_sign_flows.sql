-- Signing flows (issue #6, first slice: data flows with server-custody signers), the per-user
-- authorization for server custody of a staff key, and webhook deliveries (persisted, retried).
CREATE TABLE staff_custody (
    employee_no TEXT PRIMARY KEY,
    granted_by  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE TABLE sign_flows (
    id           TEXT PRIMARY KEY,
    doc_no       TEXT NOT NULL UNIQUE,
    app_id       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    title        TEXT NOT NULL,
    state        TEXT NOT NULL,
    alg          TEXT NOT NULL,
    detached     BIGINT NOT NULL,
    content_b64  TEXT NOT NULL,
    content_sm3  TEXT NOT NULL,
    timestamp_mode TEXT NOT NULL,
    ts_pending   BIGINT NOT NULL,
    signature_b64 TEXT,
    callback_url TEXT,
    expires_at   TEXT NOT NULL,
    reason       TEXT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX sign_flows_app ON sign_flows (app_id, created_at);
CREATE INDEX sign_flows_ts ON sign_flows (ts_pending);
CREATE TABLE flow_signers (
    flow_id     TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    mode        TEXT NOT NULL,
    state       TEXT NOT NULL,
    cert_serial TEXT,
    signed_at   TEXT,
    timestamp_at TEXT,
    error       TEXT,
    PRIMARY KEY (flow_id, idx)
);
CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL,
    flow_id      TEXT NOT NULL,
    event        TEXT NOT NULL,
    url          TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_at      TEXT NOT NULL,
    last_status  BIGINT,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX webhook_due ON webhook_deliveries (state, next_at);
