-- Issue #7: phones co-sign scan-mode signers. Where each signer's visible signature goes is kept
-- with the signer (a phone signs later, in another request); a signing round holds what the phone
-- is asked to sign (e) and, for PDFs, the prepared incremental update; twoparty_q1 remembers every
-- Q1 the server half has answered so a replayed round message is refused.
ALTER TABLE flow_signers ADD COLUMN field TEXT;
ALTER TABLE flow_signers ADD COLUMN placement TEXT;
ALTER TABLE flow_signers ADD COLUMN custody TEXT;
ALTER TABLE sign_flows ADD COLUMN certify BIGINT;
ALTER TABLE sign_flows ADD COLUMN ticket_ttl BIGINT;
CREATE TABLE sign_rounds (
    id           TEXT PRIMARY KEY,
    flow_id      TEXT NOT NULL,
    signer_idx   BIGINT NOT NULL,
    employee_no  TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    cert_serial  TEXT NOT NULL,
    e_hex        TEXT NOT NULL,
    state        TEXT NOT NULL,
    signing_time TEXT NOT NULL,
    prepared_b64 TEXT,
    hole_start   BIGINT,
    hole_end     BIGINT,
    expires_at   TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX sign_rounds_flow ON sign_rounds (flow_id, state);
CREATE TABLE twoparty_q1 (
    key_id     TEXT NOT NULL,
    q1         TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (key_id, q1)
);
