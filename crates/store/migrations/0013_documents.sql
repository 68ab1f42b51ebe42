-- Issue #6: seal and handwriting images, versioned PDF templates, the template a flow was rendered
-- from, and one-time QR tickets of scan-mode signers.
CREATE TABLE images (
    owner      TEXT PRIMARY KEY,
    png_b64    TEXT NOT NULL,
    source     TEXT NOT NULL,
    sm3        TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE templates (
    id          TEXT NOT NULL,
    version     BIGINT NOT NULL,
    name        TEXT NOT NULL,
    definition  TEXT NOT NULL,
    enabled     BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
ALTER TABLE sign_flows ADD COLUMN template_id TEXT;
ALTER TABLE sign_flows ADD COLUMN template_version BIGINT;
CREATE TABLE sign_tickets (
    id          TEXT PRIMARY KEY,
    flow_id     TEXT NOT NULL,
    signer_idx  BIGINT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX sign_tickets_flow ON sign_tickets (flow_id);
