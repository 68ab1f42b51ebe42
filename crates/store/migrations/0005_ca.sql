-- The built-in certification authorities (issue #4): their certificates; keys are server keys
-- (server_keys, wrapped under the KEK) of the same name.
CREATE TABLE ca_certs (
    name       TEXT PRIMARY KEY,
    cert_pem   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
