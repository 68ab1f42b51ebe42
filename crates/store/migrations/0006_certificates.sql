-- Certificates issued by the built-in CAs (issue #4): lifecycle state and revocation data.
CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,
    employee_no TEXT NOT NULL,
    alg         TEXT NOT NULL,
    profile     TEXT NOT NULL,
    status      TEXT NOT NULL,
    not_before  TEXT NOT NULL,
    not_after   TEXT NOT NULL,
    revoked_at  TEXT,
    reason      TEXT,
    cert_pem    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX certificates_user ON certificates (employee_no, alg, status);
