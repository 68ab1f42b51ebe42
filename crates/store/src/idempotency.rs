//! `Idempotency-Key` on creating calls: a retry with the same key and the same request gets the
//! first answer again instead of creating twice; the same key with a different request is refused.
//! Successful answers are kept for 24 hours.

use crate::{Error, Result, db::Db};
use sqlx::Row;

/// How long an answer is kept, seconds.
pub const KEEP_SECS: i64 = 24 * 3600;

/// What the store knows about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// not seen: process the request
    New,
    /// seen with the same request: replay this answer
    Replay {
        /// HTTP status
        status: u16,
        /// JSON body
        body: String,
    },
}

/// Check a key: 1–128 printable ASCII characters.
pub fn validate_key(k: &str) -> Result<()> {
    if k.is_empty() || k.len() > 128 || !k.bytes().all(|c| (0x21..0x7f).contains(&c)) {
        return Err(Error::Invalid(
            "Idempotency-Key 须为 1–128 个可见 ASCII 字符 / Idempotency-Key must be 1-128 printable ASCII characters"
                .into(),
        ));
    }
    Ok(())
}

/// Look a key up for this app and request.
pub async fn lookup(db: &Db, app_id: &str, key: &str, request_hash: &str) -> Result<Lookup> {
    let now = chrono::Utc::now().timestamp();
    let row = sqlx::query(
        "SELECT request_hash, status, response, created_at FROM idempotency_keys WHERE app_id = $1 AND idem_key = $2",
    )
    .bind(app_id)
    .bind(key)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(Lookup::New) };
    if r.try_get::<i64, _>("created_at")? + KEEP_SECS < now {
        return Ok(Lookup::New);
    }
    if r.try_get::<String, _>("request_hash")? != request_hash {
        return Err(Error::Conflict(
            "Idempotency-Key 已用于另一个不同的请求 / this Idempotency-Key was used for a different request".into(),
        ));
    }
    Ok(Lookup::Replay { status: r.try_get::<i64, _>("status")? as u16, body: r.try_get("response")? })
}

/// Keep a successful answer (a concurrent duplicate that stored first wins).
pub async fn store(db: &Db, app_id: &str, key: &str, request_hash: &str, status: u16, body: &str) -> Result<()> {
    let now = chrono::Utc::now().timestamp();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(now - KEEP_SECS).execute(&mut *tx).await?;
    let r = sqlx::query(
        "INSERT INTO idempotency_keys (app_id, idem_key, request_hash, status, response, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(app_id)
    .bind(key)
    .bind(request_hash)
    .bind(status as i64)
    .bind(body)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match r {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::backends;

    #[tokio::test]
    async fn replay_same_refuse_different() {
        for (_d, db) in backends().await {
            assert_eq!(lookup(&db, "app_1", "k-1", "h1").await.unwrap(), Lookup::New);
            store(&db, "app_1", "k-1", "h1", 201, "{\"ok\":1}").await.unwrap();
            store(&db, "app_1", "k-1", "h1", 201, "{\"ok\":2}").await.unwrap(); // duplicate: first wins
            assert_eq!(
                lookup(&db, "app_1", "k-1", "h1").await.unwrap(),
                Lookup::Replay { status: 201, body: "{\"ok\":1}".into() }
            );
            assert!(matches!(lookup(&db, "app_1", "k-1", "h2").await, Err(Error::Conflict(_))));
            assert_eq!(lookup(&db, "app_2", "k-1", "h2").await.unwrap(), Lookup::New, "keys are per app");
            assert!(validate_key("").is_err() && validate_key("with space").is_err() && validate_key("ok-123").is_ok());
        }
    }
}
