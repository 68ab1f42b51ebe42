-- Issue #7: PIN policy (R3.9). The server never sees the PIN: it keeps, per bound device, the PIN
-- verifier the phone derived (PIN + device secret, Argon2id), counts failed comparisons, locks after
-- too many, and releases the per-device unlock secret (kept under the KEK) without which the phone
-- cannot unwrap its share.
CREATE TABLE device_pins (
    device_id      TEXT PRIMARY KEY,
    employee_no    TEXT NOT NULL,
    verifier       TEXT NOT NULL,
    unlock_wrapped TEXT NOT NULL,
    failures       BIGINT NOT NULL,
    locked_at      TEXT,
    set_at         TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
