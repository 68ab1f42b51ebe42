//! Seen-once values within a time window: the `X-Nonce` of HMAC-signed requests (per app) and the
//! fresh point of every end-to-end sealed phone request (scope `e2e`). The primary key makes the
//! check hold across instances on one database: of two racing inserts of one value, one fails.

use crate::{Error, Result, db::Db};
use std::sync::atomic::{AtomicU64, Ordering};

static INSERTS: AtomicU64 = AtomicU64::new(0);

/// Record `nonce` in `scope` until `expires_at` (Unix seconds). `Ok(false)`: already recorded (a
/// replay). Every thousandth insert also drops what expired before `now`.
pub async fn record(db: &Db, scope: &str, nonce: &str, expires_at: i64, now: i64) -> Result<bool> {
    let _w = db.write_lock.lock().await;
    let ins = sqlx::query("INSERT INTO api_nonces (app_id, nonce, expires_at) VALUES ($1, $2, $3)")
        .bind(scope)
        .bind(nonce)
        .bind(expires_at)
        .execute(&db.pool)
        .await;
    match ins {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
        Err(e) => return Err(Error::from(e)),
    }
    if INSERTS.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
        sqlx::query("DELETE FROM api_nonces WHERE expires_at < $1").bind(now).execute(&db.pool).await?;
    }
    Ok(true)
}
