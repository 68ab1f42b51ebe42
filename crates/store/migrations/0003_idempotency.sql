-- Idempotency-Key (DESIGN.md conventions): the first successful answer to a creating call is kept
-- for 24 hours and replayed to a retry with the same key and the same request.
CREATE TABLE idempotency_keys (
    app_id       TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (app_id, idem_key)
);
