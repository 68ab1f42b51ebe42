-- Server-side batch signing (issue #6, R1): a job of up to 1,000 flows run by a durable queue in
-- the database. Each item creates its flow under a request key (job:index:attempt) that is unique
-- in sign_flows, so a crash and a retry never give one item two completed signatures.
ALTER TABLE sign_flows ADD COLUMN request_key TEXT;
CREATE UNIQUE INDEX sign_flows_request_key ON sign_flows (request_key);
CREATE TABLE batch_jobs (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    total      BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE batch_items (
    job_id     TEXT NOT NULL,
    idx        BIGINT NOT NULL,
    spec       TEXT NOT NULL,
    state      TEXT NOT NULL,
    attempt    BIGINT NOT NULL,
    claimed_at TEXT,
    flow_id    TEXT,
    error      TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX batch_items_state ON batch_items (state, job_id, idx);
