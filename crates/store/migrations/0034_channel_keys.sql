-- The end-to-end channel's keys in succession (issue #17): generation 1 is the custody key
-- `mobile-channel`, each later one `mobile-channel.<generation>`, endorsed by the key before it
-- (an SM2 signature, hex r‖s; NULL after a compromise, which breaks the chain). The servers open
-- sealed calls under the keys still `accepted` (the newest and the one before it) and publish the
-- chain so that a phone pinned to an older key can follow it.
CREATE TABLE channel_keys (
    generation  BIGINT PRIMARY KEY,
    key_name    TEXT NOT NULL UNIQUE,
    public_key  TEXT NOT NULL,
    endorsement TEXT,
    accepted    BIGINT NOT NULL,
    created_at  TEXT NOT NULL
);
