-- Issue #18: people who run the console log in as themselves — a password (Argon2id) and a TOTP
-- second factor (its secret wrapped under the KEK) — with a role; their sessions are cookies
-- whose SM3 is stored. The bootstrap token only creates the first administrator; everyone else is
-- invited: a one-time code (SM3 stored) with which the person sets their own password and TOTP.
CREATE TABLE console_people (
    username       TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT,
    totp_wrapped   TEXT,
    invite_hash    TEXT,
    invite_expires TEXT,
    last_step      BIGINT NOT NULL DEFAULT 0,
    failures       BIGINT NOT NULL DEFAULT 0,
    locked_until   TEXT,
    disabled       BIGINT NOT NULL DEFAULT 0,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_login_at  TEXT
);
CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (username);
