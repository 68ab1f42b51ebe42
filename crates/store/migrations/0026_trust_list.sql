-- Issue #17 item 5: the hospital's trust list. CA certificates every verification path trusts
-- besides the built-in roots: anchors (self-signed roots) and intermediates / cross-certificates,
-- each with the CRL its CA publishes, fetched and stored so every instance verifies alike.
CREATE TABLE trust_certs (
    fingerprint TEXT PRIMARY KEY,
    der         TEXT NOT NULL,
    anchor      BIGINT NOT NULL,
    crl_url     TEXT,
    crl         TEXT,
    crl_at      TEXT,
    crl_error   TEXT,
    note        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
