-- CRLs as published (issue #4): one row per issuing CA, regenerated on every revocation, hold or
-- release (stale = 1 until then) and every `ca.crl_refresh_hours`. Every node of a cluster
-- serves the same CRL with the same number.
CREATE TABLE crls (
    ca          TEXT PRIMARY KEY,
    number      BIGINT NOT NULL,
    der_hex     TEXT NOT NULL,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    stale       BIGINT NOT NULL
);
-- certificates.status gains 'on_hold' (reason certificate_hold; released back to 'active').
CREATE INDEX certificates_status ON certificates (status, not_after);
