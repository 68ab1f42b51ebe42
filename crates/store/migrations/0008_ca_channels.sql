-- CA channels (issue #4, R1.2, R4.5): where staff certificates are issued — the built-in CA, an
-- EST server (RFC 7030) or another medsign. One active per profile; the others take over when
-- the active one fails. Secrets (passwords, tokens, client keys) are wrapped under the KEK.
CREATE TABLE ca_channels (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    profile      TEXT NOT NULL,
    priority     BIGINT NOT NULL,
    enabled      BIGINT NOT NULL,
    active       BIGINT NOT NULL,
    config       TEXT NOT NULL,
    secret       TEXT,
    health       TEXT NOT NULL,
    health_at    TEXT,
    health_error TEXT,
    updated_at   TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
INSERT INTO ca_channels (id, name, kind, profile, priority, enabled, active, config, secret, health, health_at, health_error, updated_at, created_at)
VALUES ('builtin', '内置 CA / built-in CA', 'builtin', 'signer', 0, 1, 1, '{}', NULL, 'ok', NULL, NULL, '1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.000Z');
-- which channel issued each certificate; CRL and OCSP answer for the built-in CA's only
ALTER TABLE certificates ADD COLUMN channel TEXT NOT NULL DEFAULT 'builtin';
