-- Issue #7: phones bound to staff (activation codes, devices, sessions) and two-party SM2 keys
-- whose server share d2 is kept wrapped under the KEK.
CREATE TABLE activation_codes (
    code_hash   TEXT PRIMARY KEY,
    employee_no TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    employee_no TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    unbound_at  TEXT
);
CREATE INDEX devices_user ON devices (employee_no, status);
CREATE TABLE mobile_sessions (
    token_hash  TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    employee_no TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE split_keys (
    id           TEXT PRIMARY KEY,
    employee_no  TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    status       TEXT NOT NULL,
    context      TEXT NOT NULL,
    share_wrapped TEXT,
    public_key   TEXT,
    cert_serial  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX split_keys_user ON split_keys (employee_no, status);
