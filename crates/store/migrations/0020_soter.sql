-- Issue #7: fingerprint approval through WeChat SOTER (R3.9), instead of the PIN where the phone
-- supports it. Per bound device: the openid WeChat verifies SOTER signatures for, the device the
-- fingerprint key lives in (cpu_id of the SOTER result), and a second unlock secret (under the KEK)
-- that opens a device-only wrapping of the phone's share. Challenges are one-time server nonces.
CREATE TABLE device_soter (
    device_id      TEXT PRIMARY KEY,
    employee_no    TEXT NOT NULL,
    openid         TEXT NOT NULL,
    cpu_id         TEXT NOT NULL,
    secret_wrapped TEXT NOT NULL,
    failures       BIGINT NOT NULL,
    enabled_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE TABLE soter_challenges (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    approve    TEXT,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX soter_challenges_device ON soter_challenges (device_id);
