//! Approvals (issue #15; 《电子签名法》 art. 13, sole control): every use of the phone's key —
//! answering signing rounds, activating a session grant, renewing the key's certificate — needs
//! a fresh approval by the doctor. An approval is made only when the PIN matches
//! ([`unlock`], counted and locking) or a fingerprint result verifies
//! ([`crate::soter::unlock`]); it belongs to one device, is used once, expires after
//! [`APPROVAL_MINUTES`], and is bound to the SM3 [`digest`] of what it approves: the phone sends
//! the digest with the PIN, the server recomputes it from the request it is about to serve. A
//! device session token alone therefore signs nothing, and a locked or expired PIN stops every
//! use (checked again when the approval is used).
//!
//! The digest is `SM3("medsign-approve-v1|" ‖ purpose ‖ "|" ‖ what)`, hex, with `what`:
//! - `sign`: the rounds' `e` values (hex) in the order they are answered, joined by `,`;
//! - `grant`: the grant's `context` as `POST /mobile/v1/grants` returned it (names the grant, the
//!   user, the business system and the key);
//! - `renew`: the serial of the certificate to renew.

use crate::mobile::{self, Session};
use chrono::{Duration, Utc};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
    error::Refusal,
};

/// An approval must be used within this many minutes.
pub const APPROVAL_MINUTES: i64 = 5;
const DOMAIN: &str = "medsign-approve-v1";

/// What an approval is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// answering signing rounds (their digests)
    Sign,
    /// activating a session grant (its context)
    Grant,
    /// renewing the key's certificate (its serial)
    Renew,
    /// setting the handwritten signature drawn on the phone (the PNG's SM3, hex)
    Handwriting,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Sign => "sign",
            Purpose::Grant => "grant",
            Purpose::Renew => "renew",
            Purpose::Handwriting => "handwriting",
        }
    }
}

/// The digest (SM3, hex) an approval of `what` for `purpose` is bound to.
pub fn digest(purpose: Purpose, what: &str) -> String {
    hex::encode(medsign_crypto::hash::sm3(format!("{DOMAIN}|{}|{what}", purpose.as_str()).as_bytes()))
}

/// The digest of answering rounds with these `e` values (hex), in order.
pub fn sign_digest<S: AsRef<str>>(es: &[S]) -> String {
    digest(Purpose::Sign, &es.iter().map(|e| e.as_ref().to_ascii_lowercase()).collect::<Vec<_>>().join(","))
}

/// `approve` as sent by the phone: 64 hex digits (lower-cased).
pub(crate) fn checked(approve: &str) -> Result<String> {
    if approve.len() == 64 && approve.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(approve.to_ascii_lowercase())
    } else {
        Err(Error::Invalid(
            "approve 须为 SM3 摘要（64 位十六进制）/ approve must be an SM3 digest (64 hex digits)".into(),
        ))
    }
}

/// Record an approval of `digest` for the session's device, made by `via` (`pin`, `fingerprint`)
/// that has just matched.
pub(crate) async fn record(db: &Db, s: &Session, digest: &str, via: &str) -> Result<()> {
    let id = format!("ap_{}", hex::encode(medsign_crypto::rng::bytes::<12>()?));
    let now = Utc::now();
    let _w = db.write_lock.lock().await;
    sqlx::query(
        "INSERT INTO approvals (id, device_id, digest, via, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&s.device_id)
    .bind(digest)
    .bind(via)
    .bind(medsign_store::now_text())
    .bind(medsign_store::secs_text(now + Duration::minutes(APPROVAL_MINUTES)))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The PIN as the phone entered it (its verifier), approving `approve` (the SM3 digest of what the
/// doctor is about to do, see the module docs): on a match the unlock secret, and a one-time
/// approval of that digest for this device; wrong attempts are counted and lock the PIN; an
/// expired PIN must be changed first.
pub async fn unlock(
    db: &Db,
    kek: &medsign_crypto::wrap::Kek,
    ctx: &Context,
    s: &Session,
    verifier: &str,
    approve: &str,
) -> Result<mobile::Unlock> {
    let approve = checked(approve)?;
    let (secret, set_at) = mobile::check_pin(db, kek, ctx, s, &mobile::verifier_bytes(verifier)?).await?;
    let expires = mobile::pin_expiry(&set_at)?;
    mobile::refuse_expired(expires)?;
    record(db, s, &approve, "pin").await?;
    Ok(mobile::Unlock {
        unlock_secret: hex::encode(secret.as_slice()),
        previous_unlock_secret: None,
        pin_expires_at: medsign_store::secs_text(expires),
    })
}

/// The refusal when no usable approval matches.
pub fn required() -> Error {
    Error::coded(
        Refusal::Forbidden,
        "approval_required",
        "此操作须在手机上输入 PIN 或验证指纹确认 / this needs a fresh approval on the phone (PIN or fingerprint)",
    )
}

/// Use up an approval of `digest` by the session's device: unused, unexpired, while the PIN may
/// be used (not locked, not expired). Exactly one caller wins a race for it. A refusal is audited
/// as `action` on `target`.
pub async fn consume(db: &Db, ctx: &Context, s: &Session, digest: &str, action: &str, target: &str) -> Result<()> {
    let taken = {
        let _w = db.write_lock.lock().await;
        let mut conn = db.pool.acquire().await?;
        take(&mut conn, s, digest).await?
    };
    if !taken {
        return Err(refusal(db, ctx, s, action, target).await);
    }
    Ok(())
}

/// [`consume`]'s one statement, inside the caller's transaction (which holds the write lock), so
/// that the signing path commits once: whether the oldest matching approval was taken, only while
/// the device's PIN is neither locked nor older than `PIN_MAX_DAYS`. On `false` the caller rolls
/// back and answers [`refusal`].
pub(crate) async fn take(conn: &mut sqlx::AnyConnection, s: &Session, digest: &str) -> Result<bool> {
    let (now, oldest_pin) = take_times();
    let done = sqlx::query(TAKE).bind(now).bind(&s.device_id).bind(digest).bind(oldest_pin).execute(&mut *conn).await?;
    Ok(done.rows_affected() == 1)
}

/// [`take`] in a transaction on the SQLite file's own connection ([`medsign_store::db::Direct`]).
pub(crate) fn take_directly(
    tx: &medsign_store::rusqlite::Transaction<'_>,
    s: &Session,
    digest: &str,
) -> medsign_store::rusqlite::Result<bool> {
    let (now, oldest_pin) = take_times();
    Ok(tx.prepare_cached(TAKE)?.execute(medsign_store::rusqlite::params![now, s.device_id, digest, oldest_pin])? == 1)
}

/// Spend the oldest unspent approval of `$3` by device `$2` that has not expired at `$1`, if the
/// device's PIN is not locked and was set after `$4`. The parameters first appear in the order
/// `$1`…`$4`, which SQLite numbers them by: [`take_directly`] binds them by position.
const TAKE: &str = "UPDATE approvals SET used_at = $1 WHERE used_at IS NULL AND id = ( \
       SELECT a.id FROM approvals a WHERE a.device_id = $2 AND a.digest = $3 AND a.used_at IS NULL \
       AND a.expires_at > $1 ORDER BY a.created_at LIMIT 1) \
     AND EXISTS (SELECT 1 FROM device_pins p WHERE p.device_id = $2 AND p.locked_at IS NULL AND p.set_at > $4)";

/// Now, and the oldest time a PIN still in use may have been set.
fn take_times() -> (String, String) {
    (medsign_store::now_text(), medsign_store::secs_text(Utc::now() - Duration::days(mobile::PIN_MAX_DAYS)))
}

/// Why no approval could be taken (the PIN's state, else [`required`]), audited as `action` on
/// `target`; looked up only on a refusal.
pub(crate) async fn refusal(db: &Db, ctx: &Context, s: &Session, action: &str, target: &str) -> Error {
    let e = match mobile::usable_pin(db, s).await {
        Err(e) => e,
        Ok(_) => required(),
    };
    audit::refused(db, ctx, Kind::Signing, action, target, e).await
}

/// Forget approvals past their expiry (with the round sweep); returns how many.
pub async fn sweep(db: &Db) -> Result<usize> {
    let now = medsign_store::secs_text(Utc::now());
    let _w = db.write_lock.lock().await;
    let done = sqlx::query("DELETE FROM approvals WHERE expires_at < $1").bind(now).execute(&db.pool).await?;
    Ok(done.rows_affected() as usize)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use medsign_crypto::wrap::Kek;

    /// The PIN verifier the test phones set (`cosign::tests::phone`).
    pub(crate) const PIN: &str = "0707070707070707070707070707070707070707070707070707070707070707";
    /// A digest approved where what is approved does not matter to the test.
    pub(crate) const ANY: &str = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0";

    /// The doctor approves `digest` with the test PIN (as `POST /mobile/v1/unlock` does).
    pub(crate) async fn approve(db: &Db, kek: &Kek, s: &Session, digest: &str) {
        unlock(db, kek, &Context::cli(), s, PIN, digest).await.unwrap();
    }

    /// The doctor approves answering `rounds` (their `e`, in order).
    pub(crate) async fn approve_rounds(db: &Db, kek: &Kek, s: &Session, rounds: &[&crate::cosign::Round]) {
        approve(db, kek, s, &sign_digest(&rounds.iter().map(|r| r.e.as_str()).collect::<Vec<_>>())).await;
    }

    #[test]
    fn digests_separate_purposes_and_order() {
        assert_ne!(digest(Purpose::Sign, "x"), digest(Purpose::Grant, "x"));
        assert_ne!(sign_digest(&["aa", "bb"]), sign_digest(&["bb", "aa"]));
        assert_eq!(sign_digest(&["AA"]), sign_digest(&["aa"]));
        assert_eq!(digest(Purpose::Renew, "1").len(), 64);
        assert!(checked(&digest(Purpose::Renew, "1").to_uppercase()).is_ok());
        assert!(checked("zz").is_err());
    }
}
