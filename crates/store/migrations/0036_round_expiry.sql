-- The sweep of expired rounds (every minute, under the write lock) finds them by `expires_at`.
-- Without an index SQLite read every row, and with it every overflow page of each round's prepared
-- PDF, which the row stores before `expires_at`.
CREATE INDEX sign_rounds_expiry ON sign_rounds (expires_at);
