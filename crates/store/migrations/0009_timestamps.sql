-- Every timestamp token issued (issue #5, R6): serial (time-ordered 128-bit), profile, imprint,
-- time, policy, accuracy — written before the token is handed out.
CREATE TABLE timestamps (
    serial      TEXT PRIMARY KEY,
    profile     TEXT NOT NULL,
    hash_alg    TEXT NOT NULL,
    imprint_hex TEXT NOT NULL,
    gen_time    TEXT NOT NULL,
    policy      TEXT NOT NULL,
    accuracy_us BIGINT NOT NULL,
    nonce_hex   TEXT,
    requester   TEXT NOT NULL
);
CREATE INDEX timestamps_time ON timestamps (gen_time);
CREATE INDEX timestamps_imprint ON timestamps (imprint_hex);
