-- HMAC-SM3 request signing (API.md): each app's signing key, wrapped under the KEK, and the
-- nonces seen within the ±5 minute window.
ALTER TABLE apps ADD COLUMN hmac_key_wrapped TEXT;
CREATE TABLE api_nonces (
    app_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, nonce)
);
