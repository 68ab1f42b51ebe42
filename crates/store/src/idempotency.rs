//! `Idempotency-Key` on creating calls: a retry with the same key and the same request gets the
//! first answer again instead of creating twice; the same key with a different request is refused.
//! Answers are kept for 24 hours. The key is reserved before the request runs, so a retry that
//! arrives meanwhile (on this instance or another) is told to wait instead of running it again.

use crate::{Error, Result, db::Db};
use sqlx::Row;

/// How long an answer is kept, seconds.
pub const KEEP_SECS: i64 = 24 * 3600;

/// What the store knows about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// not seen: process the request, then [`store`] or [`release`] with this attempt's token
    New {
        /// names this attempt's reservation: only it can store or release it
        attempt: String,
    },
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

/// How long a reservation whose request never finished (its instance died) blocks retries, seconds.
pub const RUNNING_SECS: i64 = 120;

/// Reserve `key` for this request before it runs, so that it runs once even when a client's retry
/// reaches another instance (issue #17) while the first attempt is still running: `New` when this
/// call holds the reservation (run the request, then [`store`] or [`release`]), `Replay` when an
/// earlier attempt finished, a 409 when the key belongs to a different request or an attempt is
/// still running. A reservation left by an instance that died is taken over after
/// [`RUNNING_SECS`]. One insert that only one caller can win, on any number of instances.
pub async fn reserve(db: &Db, app_id: &str, key: &str, request_hash: &str) -> Result<Lookup> {
    let now = chrono::Utc::now().timestamp();
    let _w = db.write_lock.lock().await;
    // an answer kept past its time, or a reservation abandoned, no longer counts
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE app_id = $1 AND idem_key = $2 \
         AND (created_at < $3 OR (status = 0 AND created_at < $4))",
    )
    .bind(app_id)
    .bind(key)
    .bind(now - KEEP_SECS)
    .bind(now - RUNNING_SECS)
    .execute(&db.pool)
    .await?;
    let attempt = hex::encode(medsign_crypto::rng::bytes::<16>()?);
    let won = sqlx::query(
        "INSERT INTO idempotency_keys (app_id, idem_key, request_hash, status, response, created_at) \
         VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (app_id, idem_key) DO NOTHING",
    )
    .bind(app_id)
    .bind(key)
    .bind(request_hash)
    .bind(&attempt)
    .bind(now)
    .execute(&db.pool)
    .await?;
    if won.rows_affected() == 1 {
        return Ok(Lookup::New { attempt });
    }
    let row =
        sqlx::query("SELECT request_hash, status, response FROM idempotency_keys WHERE app_id = $1 AND idem_key = $2")
            .bind(app_id)
            .bind(key)
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(in_progress)?;
    if row.try_get::<String, _>("request_hash")? != request_hash {
        return Err(Error::Conflict(
            "Idempotency-Key 已用于另一个不同的请求 / this Idempotency-Key was used for a different request".into(),
        ));
    }
    match row.try_get::<i64, _>("status")? {
        0 => Err(in_progress()),
        status => Ok(Lookup::Replay { status: status as u16, body: row.try_get("response")? }),
    }
}

/// An earlier attempt with the key still runs — or ran on an instance that died, whose
/// reservation is taken over after [`RUNNING_SECS`]: the client retries (`idempotency_in_progress`).
fn in_progress() -> Error {
    Error::coded(
        crate::error::Refusal::Conflict,
        "idempotency_in_progress",
        "使用同一 Idempotency-Key 的请求仍在处理，请稍后重试 / a request with this Idempotency-Key is still running; retry shortly",
    )
}

/// Keep the answer of the attempt [`reserve`] let run (an attempt whose reservation was taken over
/// stores nothing: the retry's answer is the one kept).
pub async fn store(db: &Db, app_id: &str, key: &str, attempt: &str, status: u16, body: &str) -> Result<()> {
    let now = chrono::Utc::now().timestamp();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(now - KEEP_SECS).execute(&mut *tx).await?;
    sqlx::query(
        "UPDATE idempotency_keys SET status = $1, response = $2 \
         WHERE app_id = $3 AND idem_key = $4 AND status = 0 AND response = $5",
    )
    .bind(status as i64)
    .bind(body)
    .bind(app_id)
    .bind(key)
    .bind(attempt)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Give a reservation up: the request failed before it had an answer to keep, so a retry runs it.
pub async fn release(db: &Db, app_id: &str, key: &str, attempt: &str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    sqlx::query("DELETE FROM idempotency_keys WHERE app_id = $1 AND idem_key = $2 AND status = 0 AND response = $3")
        .bind(app_id)
        .bind(key)
        .bind(attempt)
        .execute(&db.pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::backends;

    fn attempt(l: Result<Lookup>) -> String {
        match l {
            Ok(Lookup::New { attempt }) => attempt,
            other => panic!("expected to run, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn replay_same_refuse_different() {
        for (_d, db) in backends().await {
            let first = attempt(reserve(&db, "app_1", "k-1", "h1").await);
            // a retry while the first attempt runs: refused, not run twice
            assert!(
                matches!(reserve(&db, "app_1", "k-1", "h1").await, Err(e) if e.code() == "idempotency_in_progress")
            );
            store(&db, "app_1", "k-1", &first, 201, "{\"ok\":1}").await.unwrap();
            store(&db, "app_1", "k-1", &first, 201, "{\"ok\":2}").await.unwrap(); // late duplicate: first wins
            assert_eq!(
                reserve(&db, "app_1", "k-1", "h1").await.unwrap(),
                Lookup::Replay { status: 201, body: "{\"ok\":1}".into() }
            );
            assert!(matches!(reserve(&db, "app_1", "k-1", "h2").await, Err(Error::Conflict(_))));
            let other = attempt(reserve(&db, "app_2", "k-1", "h2").await);
            // a failed attempt gives the key back; a retry runs
            release(&db, "app_2", "k-1", &other).await.unwrap();
            let slow = attempt(reserve(&db, "app_2", "k-1", "h2").await);
            // an attempt whose instance died (or that runs too long) is taken over once its
            // reservation is old; the old attempt can then neither store nor release
            sqlx::query("UPDATE idempotency_keys SET created_at = created_at - $1 WHERE app_id = 'app_2'")
                .bind(RUNNING_SECS + 1)
                .execute(&db.pool)
                .await
                .unwrap();
            let retry = attempt(reserve(&db, "app_2", "k-1", "h2").await);
            release(&db, "app_2", "k-1", &slow).await.unwrap();
            store(&db, "app_2", "k-1", &slow, 201, "{\"slow\":1}").await.unwrap();
            store(&db, "app_2", "k-1", &retry, 201, "{\"retry\":1}").await.unwrap();
            assert_eq!(
                reserve(&db, "app_2", "k-1", "h2").await.unwrap(),
                Lookup::Replay { status: 201, body: "{\"retry\":1}".into() }
            );
            assert!(validate_key("").is_err() && validate_key("with space").is_err() && validate_key("ok-123").is_ok());
        }
    }

    /// Ten attempts with one key at once (as retries through a load balancer would come): one
    /// runs, the others are told it is running.
    #[tokio::test]
    async fn one_of_concurrent_attempts_runs() {
        for (_d, db) in backends().await {
            let tries: Vec<_> = (0..10)
                .map(|_| {
                    let db = db.clone();
                    tokio::spawn(async move { reserve(&db, "app_1", "same", "h").await })
                })
                .collect();
            let mut results = Vec::new();
            for t in tries {
                results.push(t.await.unwrap());
            }
            let ran = results.iter().filter(|r| matches!(r, Ok(Lookup::New { .. }))).count();
            let refused =
                results.iter().filter(|r| matches!(r, Err(e) if e.code() == "idempotency_in_progress")).count();
            assert_eq!((ran, refused), (1, 9), "{results:?}");
        }
    }
}
