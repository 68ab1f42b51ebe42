//! Fingerprint approval through WeChat SOTER (issue #7; R3.9): where the phone supports it, the
//! doctor approves with a fingerprint instead of typing the PIN. SOTER exists only inside the
//! WeChat mini program (`wx.startSoterAuthentication`); its fingerprint key lives in the phone's
//! TEE and WeChat verifies its signatures (`/cgi-bin/soter/verify_signature`).
//!
//! Custody stays as with the PIN (see `medsign_crypto::wrap`): enrolling (with the current PIN,
//! counted like any PIN entry, and a first SOTER approval) gives the phone a per-device
//! *fingerprint secret*; the phone keeps a second wrapping of its share under
//! `biometric_kek(device secret, fingerprint secret)`. To sign, the phone asks for a one-time
//! challenge — `medsign-soter-v1:<purpose>:<nonce>:<SM3 of what is approved, or ->` — the TEE signs
//! it after a matching fingerprint, and the server releases the fingerprint secret only when the
//! result carries that unused, unexpired challenge, comes from the enrolled device (`cpu_id`) and
//! WeChat accepts the signature for the enrolled user's openid. Wrong results are counted; after
//! [`MAX_FAILURES`] fingerprint approval is switched off until the PIN enrols it again. A locked or
//! expired PIN also stops the fingerprint: it stands in for the PIN, never outlives it.

use crate::{
    mobile::{self, Session},
    realname::Wechat,
};
use chrono::{Duration, Utc};
use medsign_crypto::wrap::Kek;
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use zeroize::Zeroizing;

/// A challenge must be answered within this many minutes.
pub const CHALLENGE_MINUTES: i64 = 5;
/// Failed fingerprint approvals in a row before fingerprint approval is switched off.
pub const MAX_FAILURES: i64 = 5;
const PREFIX: &str = "medsign-soter-v1";

/// What a challenge is for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// switching fingerprint approval on (with the PIN)
    Enrol,
    /// approving instead of the PIN
    Unlock,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Enrol => "enrol",
            Purpose::Unlock => "unlock",
        }
    }
}

/// A one-time challenge for `wx.startSoterAuthentication({challenge})`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Challenge {
    /// pass unchanged as `challenge`
    pub challenge: String,
    /// RFC 3339
    pub expires_at: String,
}

/// Whether this phone approves with its fingerprint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// the server can verify SOTER (a WeChat mini program is configured)
    pub available: bool,
    /// fingerprint approval is on for this phone
    pub enabled: bool,
    /// since when (RFC 3339)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled_at: Option<String>,
}

/// Fingerprint approval switched on: the secret the phone wraps its fingerprint copy under, and
/// (the PIN having matched) the PIN's unlock secret, to open the share for that copy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    /// hex; `KeyShare.wrapFingerprint(deviceSecret, fingerprintSecret)` on the phone
    pub fingerprint_secret: String,
    /// hex; the PIN's unlock secret (as `POST /mobile/v1/unlock` returns it)
    pub unlock_secret: String,
    /// RFC 3339
    pub enabled_at: String,
}

/// A SOTER result as `wx.startSoterAuthentication` returned it (body of `POST /mobile/v1/soter/unlock`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SoterAnswer))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// `resultJSON`, unchanged
    pub json_string: String,
    /// `resultJSONSignature`
    pub json_signature: String,
}

/// Switching fingerprint approval on (body of `POST /mobile/v1/soter`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// the current PIN's verifier (counted like an unlock)
    pub current_verifier: String,
    /// the mini program's `wx.login` code (gives the openid WeChat verifies for)
    pub wx_code: String,
    /// `resultJSON` of `wx.startSoterAuthentication` over an `enrol` challenge
    pub json_string: String,
    /// its `resultJSONSignature`
    pub json_signature: String,
}

fn secret_aad(device_id: &str) -> Vec<u8> {
    format!("soter|{device_id}").into_bytes()
}

/// A new one-time challenge; `approve` is the SM3 (hex) of what the approval is for, when known
/// (it is written to the audit log with the approval).
pub async fn challenge(db: &Db, s: &Session, purpose: Purpose, approve: Option<&str>) -> Result<Challenge> {
    let approve = approve.map(crate::approvals::checked).transpose()?;
    if purpose == Purpose::Unlock {
        if enrolment(db, s).await?.is_none() {
            return Err(not_enrolled());
        }
        if approve.is_none() {
            return Err(Error::Invalid(
                "指纹确认须给出所确认内容的摘要（approve）/ a fingerprint approval needs the digest of what it approves (approve)"
                    .into(),
            ));
        }
    }
    let nonce = hex::encode(medsign_crypto::rng::bytes::<16>()?);
    let now = Utc::now();
    let expires = now + Duration::minutes(CHALLENGE_MINUTES);
    let stored_expiry = expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM soter_challenges WHERE device_id = $1 AND (used_at IS NOT NULL OR expires_at <= $2)")
        .bind(&s.device_id)
        .bind(medsign_store::now_text())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO soter_challenges (id, device_id, purpose, approve, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&nonce)
    .bind(&s.device_id)
    .bind(purpose.as_str())
    .bind(&approve)
    .bind(&stored_expiry)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Challenge {
        challenge: format!("{PREFIX}:{}:{nonce}:{}", purpose.as_str(), approve.as_deref().unwrap_or("-")),
        expires_at: medsign_store::secs_text(expires),
    })
}

fn not_enrolled() -> Error {
    Error::Conflict(
        "本机尚未开通指纹验证，请先用 PIN 开通 / fingerprint approval is not on for this phone: enrol it with the PIN"
            .into(),
    )
}

fn bad_result(why: &str) -> Error {
    Error::Invalid(format!("指纹验证结果无效：{why} / invalid fingerprint result: {why}"))
}

/// `raw` and `cpu_id` of a SOTER `resultJSON`.
fn parse_result(json_string: &str) -> Result<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(json_string).map_err(|_| bad_result("not JSON"))?;
    let field = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| bad_result(&format!("no {k}")));
    Ok((field("raw")?, field("cpu_id")?))
}

/// Use up the challenge a result answers: it must be this device's, for `purpose`, unused and
/// unexpired, and read exactly as issued. Returns what it approves.
async fn take_challenge(db: &Db, s: &Session, raw: &str, purpose: Purpose) -> Result<Option<String>> {
    let stale = || {
        Error::Invalid(
            "指纹验证的挑战无效、已使用或已过期，请重试 / the fingerprint challenge is unknown, used or expired; try again"
                .into(),
        )
    };
    let mut parts = raw.split(':');
    let (Some(PREFIX), Some(p), Some(nonce), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(stale());
    };
    if p != purpose.as_str() {
        return Err(stale());
    }
    let r = sqlx::query("SELECT approve FROM soter_challenges WHERE id = $1 AND device_id = $2 AND purpose = $3")
        .bind(nonce)
        .bind(&s.device_id)
        .bind(purpose.as_str())
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(stale)?;
    let approve: Option<String> = r.try_get("approve")?;
    if raw != format!("{PREFIX}:{}:{nonce}:{}", purpose.as_str(), approve.as_deref().unwrap_or("-")) {
        return Err(stale());
    }
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let n = sqlx::query(
        "UPDATE soter_challenges SET used_at = $1 WHERE id = $2 AND device_id = $3 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(&now)
    .bind(nonce)
    .bind(&s.device_id)
    .execute(&db.pool)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(stale());
    }
    Ok(approve)
}

/// The device's enrolment: (openid, cpu_id, wrapped secret, failures, enabled_at).
async fn enrolment(db: &Db, s: &Session) -> Result<Option<(String, String, String, i64, String)>> {
    let r = sqlx::query("SELECT * FROM device_soter WHERE device_id = $1")
        .bind(&s.device_id)
        .fetch_optional(&db.pool)
        .await?;
    r.map(|r| {
        Ok((
            r.try_get("openid")?,
            r.try_get("cpu_id")?,
            r.try_get("secret_wrapped")?,
            r.try_get("failures")?,
            r.try_get("enabled_at")?,
        ))
    })
    .transpose()
}

/// Whether fingerprint approval is on for the session's phone.
pub async fn status(db: &Db, s: &Session, available: bool) -> Result<Status> {
    let e = enrolment(db, s).await?;
    Ok(Status { available, enabled: e.is_some(), enabled_at: e.map(|e| e.4) })
}

/// Switch fingerprint approval on: the current PIN's verifier (counted like an unlock), the mini
/// program's `wx.login` code (the openid WeChat verifies for) and a SOTER result over an `enrol`
/// challenge. Replaces an earlier enrolment of this phone.
pub async fn enrol(db: &Db, kek: &Kek, wx: &Wechat, ctx: &Context, s: &Session, r: &EnrolRequest) -> Result<Enrolled> {
    let verifier = mobile::verifier_bytes(&r.current_verifier)?;
    let (raw, cpu_id) = parse_result(&r.json_string)?;
    let (pin_secret, _) = mobile::check_pin(db, kek, ctx, s, &verifier).await?;
    mobile::usable_pin(db, s).await?;
    take_challenge(db, s, &raw, Purpose::Enrol).await?;
    let openid = wx.openid(&r.wx_code).await?;
    if !wx.soter_verify(&openid, &r.json_string, &r.json_signature).await? {
        let e = Error::Unauthorized("微信未确认此次指纹验证 / WeChat did not confirm this fingerprint".into());
        return Err(audit::refused(db, ctx, Kind::Login, "soter.enrol", &format!("user:{}", s.employee_no), e).await);
    }
    let secret = Zeroizing::new(medsign_crypto::rng::bytes::<32>()?);
    let wrapped = kek.wrap(secret.as_ref(), &secret_aad(&s.device_id))?;
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM device_soter WHERE device_id = $1").bind(&s.device_id).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO device_soter (device_id, employee_no, openid, cpu_id, secret_wrapped, failures, enabled_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
    )
    .bind(&s.device_id)
    .bind(&s.employee_no)
    .bind(&openid)
    .bind(&cpu_id)
    .bind(hex::encode(wrapped))
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Login,
        "soter.enrol",
        &format!("user:{}", s.employee_no),
        serde_json::json!({"device": s.device_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(Enrolled {
        fingerprint_secret: hex::encode(secret.as_ref()),
        unlock_secret: hex::encode(pin_secret.as_slice()),
        enabled_at: now,
    })
}

/// Approve with the fingerprint: a SOTER result over an `unlock` challenge from the enrolled phone,
/// which WeChat accepts, releases the fingerprint secret (as `unlock_secret`, the same shape as a
/// PIN unlock). Wrong results are counted; at [`MAX_FAILURES`] fingerprint approval is switched off.
pub async fn unlock(db: &Db, kek: &Kek, wx: &Wechat, ctx: &Context, s: &Session, a: &Answer) -> Result<mobile::Unlock> {
    let (openid, cpu_id, wrapped, _, _) = enrolment(db, s).await?.ok_or_else(not_enrolled)?;
    let pin_expires = mobile::usable_pin(db, s).await?;
    let (raw, result_cpu) = parse_result(&a.json_string)?;
    let approve = take_challenge(db, s, &raw, Purpose::Unlock).await?;
    let target = format!("user:{}", s.employee_no);
    if result_cpu != cpu_id {
        let e = Error::Forbidden(
            "指纹结果不是来自开通时的手机（系统升级后请用 PIN 重新开通指纹）/ the fingerprint result is not from the phone that enrolled it (after a system update, enrol again with the PIN)".into(),
        );
        return Err(audit::refused(db, ctx, Kind::Login, "soter.unlock", &target, e).await);
    }
    // reserve the attempt before WeChat is asked (as for the PIN): parallel results are checked at
    // most MAX_FAILURES times before fingerprint approval is switched off
    let sql = "UPDATE device_soter SET failures = failures + 1, updated_at = $1 WHERE device_id = $2 AND failures < $3";
    if !mobile::reserve_attempt(db, sql, &s.device_id, MAX_FAILURES).await? {
        return Err(not_enrolled());
    }
    let ok = wx.soter_verify(&openid, &a.json_string, &a.json_signature).await?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    if !ok {
        let failures: i64 = sqlx::query_scalar("SELECT failures FROM device_soter WHERE device_id = $1")
            .bind(&s.device_id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(MAX_FAILURES);
        let off = failures >= MAX_FAILURES;
        if off {
            sqlx::query("DELETE FROM device_soter WHERE device_id = $1").bind(&s.device_id).execute(&mut *tx).await?;
        }
        let ev = audit::Event {
            kind: Kind::Login,
            action: "soter.unlock",
            target: &target,
            outcome: "refused",
            details: serde_json::json!({"device": s.device_id, "failures": failures, "switched_off": off}),
        };
        audit::append(&mut tx, ctx, &ev).await?;
        tx.commit().await?;
        return Err(if off {
            Error::Forbidden(format!(
                "指纹验证连续 {MAX_FAILURES} 次未通过，已关闭，请用 PIN / fingerprint approval failed {MAX_FAILURES} times and is off: use the PIN"
            ))
        } else {
            let left = MAX_FAILURES - failures;
            Error::Unauthorized(format!(
                "微信未确认此次指纹验证，还可尝试 {left} 次 / WeChat did not confirm this fingerprint, {left} attempts left"
            ))
        });
    }
    sqlx::query("UPDATE device_soter SET failures = 0, updated_at = $1 WHERE device_id = $2")
        .bind(medsign_store::now_text())
        .bind(&s.device_id)
        .execute(&mut *tx)
        .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Login,
        "soter.unlock",
        &target,
        serde_json::json!({"device": s.device_id, "approve": approve}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    if let Some(approve) = &approve {
        crate::approvals::record(db, s, approve, "fingerprint").await?;
    }
    let wrapped = hex::decode(wrapped).map_err(|_| Error::internal("stored fingerprint secret is corrupt"))?;
    let secret = kek.unwrap(&wrapped, &secret_aad(&s.device_id))?;
    Ok(mobile::Unlock {
        unlock_secret: hex::encode(secret.as_slice()),
        previous_unlock_secret: None,
        pin_expires_at: medsign_store::secs_text(pin_expires),
    })
}

/// Switch fingerprint approval off for the session's phone (its secret is erased at once).
pub async fn disable(db: &Db, ctx: &Context, s: &Session) -> Result<bool> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let n = sqlx::query("DELETE FROM device_soter WHERE device_id = $1")
        .bind(&s.device_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM soter_challenges WHERE device_id = $1").bind(&s.device_id).execute(&mut *tx).await?;
    if n > 0 {
        audit::ok(
            &mut tx,
            ctx,
            Kind::Login,
            "soter.disable",
            &format!("user:{}", s.employee_no),
            serde_json::json!({"device": s.device_id}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realname::fake::{self, SoterPhone};
    use medsign_testkit::{
        db::backends,
        hospital::{add_staff, staff},
    };

    fn req(pin: &str, code: &str, json: &str, sig: &str) -> EnrolRequest {
        let (current_verifier, wx_code) = (pin.to_string(), code.to_string());
        EnrolRequest { current_verifier, wx_code, json_string: json.into(), json_signature: sig.into() }
    }

    fn answer(json: &str, sig: &str) -> Answer {
        Answer { json_string: json.into(), json_signature: sig.into() }
    }

    async fn count(db: &Db, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&db.pool).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fingerprint_approval_releases_its_secret_only_for_a_fresh_verified_result_from_the_enrolled_phone() {
        let (base, wechat) = fake::start().await;
        let wx = Wechat::new(&base, "wx_test", "s3cret").unwrap();
        for (_d, db) in backends().await {
            wechat.seen.lock().unwrap().clear();
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = medsign_ca::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            add_staff(&db, &kek, &[staff("2201", "周医生")]).await;
            let a = mobile::activation_code(&db, &kek, &ctx, "2201").await.unwrap();
            let s = mobile::activate(&db, &cas, &ctx, "2201", &a.code, "Android").await.unwrap();
            let (pin, wrong_pin) = (hex::encode([1u8; 32]), hex::encode([9u8; 32]));
            mobile::set_pin(&db, &kek, &ctx, &s, &pin, None).await.unwrap();
            assert!(!status(&db, &s, true).await.unwrap().enabled);
            assert!(matches!(challenge(&db, &s, Purpose::Unlock, None).await, Err(Error::Conflict(_))), "not enrolled");
            assert!(matches!(challenge(&db, &s, Purpose::Enrol, Some("xyz")).await, Err(Error::Invalid(_))));

            // enrol: the PIN (counted) and a verified SOTER result over an enrol challenge
            let phone = SoterPhone::register(&wechat, "oFP2201", "cpu-A");
            let c = challenge(&db, &s, Purpose::Enrol, None).await.unwrap();
            assert!(c.challenge.starts_with("medsign-soter-v1:enrol:") && c.challenge.ends_with(":-"));
            let (j, sig) = phone.authenticate(&c.challenge);
            let e = enrol(&db, &kek, &wx, &ctx, &s, &req(&wrong_pin, "code-oFP2201", &j, &sig)).await.unwrap_err();
            assert!(matches!(e, Error::Unauthorized(_)), "{e}");
            let bad = enrol(&db, &kek, &wx, &ctx, &s, &req(&pin, "code-oFP2201", "not json", &sig)).await.unwrap_err();
            assert!(matches!(bad, Error::Invalid(_)), "{bad}");
            let on = enrol(&db, &kek, &wx, &ctx, &s, &req(&pin, "code-oFP2201", &j, &sig)).await.unwrap();
            let pin_unlock =
                crate::approvals::unlock(&db, &kek, &ctx, &s, &pin, crate::approvals::tests::ANY).await.unwrap();
            assert_eq!(on.unlock_secret, pin_unlock.unlock_secret, "the PIN's secret, to open the share once");
            assert_ne!(on.fingerprint_secret, on.unlock_secret);
            let again = enrol(&db, &kek, &wx, &ctx, &s, &req(&pin, "code-oFP2201", &j, &sig)).await.unwrap_err();
            assert!(matches!(again, Error::Invalid(_)), "a challenge is used once: {again}");
            assert!(status(&db, &s, true).await.unwrap().enabled);
            let seen = wechat.seen.lock().unwrap().iter().filter(|(p, _)| p == "soter").count();
            assert_eq!(seen, 1, "WeChat is asked only after the PIN and the challenge passed");

            // the phone keeps a fingerprint copy of its share under the device secret + this secret
            let device_secret = [3u8; 32];
            let fp = hex::decode(&on.fingerprint_secret).unwrap();
            let copy = medsign_crypto::wrap::biometric_kek(&device_secret, &fp).unwrap().wrap(b"d1", b"").unwrap();

            // approve: a fresh challenge naming what is approved → the same secret opens the copy
            let what = hex::encode(medsign_crypto::hash::sm3(b"round rd_1"));
            let e = challenge(&db, &s, Purpose::Unlock, None).await.unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "a fingerprint approval names what it approves: {e}");
            let c = challenge(&db, &s, Purpose::Unlock, Some(&what)).await.unwrap();
            assert!(c.challenge.ends_with(&what));
            let (j, sig) = phone.authenticate(&c.challenge);
            let u = unlock(&db, &kek, &wx, &ctx, &s, &answer(&j, &sig)).await.unwrap();
            let released = hex::decode(&u.unlock_secret).unwrap();
            let kek2 = medsign_crypto::wrap::biometric_kek(&device_secret, &released).unwrap();
            assert_eq!(kek2.unwrap(&copy, b"").unwrap().as_slice(), b"d1");
            // the verified fingerprint approves `what` once, for this phone (issue #15)
            crate::approvals::consume(&db, &ctx, &s, &what, "test", "test").await.unwrap();
            let again = crate::approvals::consume(&db, &ctx, &s, &what, "test", "test").await.unwrap_err();
            assert_eq!(again.code(), "approval_required");
            let approved = count(
                &db,
                &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'soter.unlock' AND outcome = 'ok' AND details LIKE '%{what}%'"),
            )
            .await;
            assert_eq!(approved, 1, "the audit names what the fingerprint approved");

            // replayed, re-purposed, rewritten and foreign results are refused before WeChat is asked
            let replay = unlock(&db, &kek, &wx, &ctx, &s, &answer(&j, &sig)).await.unwrap_err();
            assert!(matches!(replay, Error::Invalid(_)), "{replay}");
            let ce = challenge(&db, &s, Purpose::Enrol, None).await.unwrap();
            let (je, se) = phone.authenticate(&ce.challenge);
            assert!(
                matches!(unlock(&db, &kek, &wx, &ctx, &s, &answer(&je, &se)).await, Err(Error::Invalid(_))),
                "enrol ≠ unlock"
            );
            let c = challenge(&db, &s, Purpose::Unlock, Some(&what)).await.unwrap();
            let rewritten = c.challenge.replace(&what, &hex::encode([0u8; 32]));
            let (jr, sr) = phone.authenticate(&rewritten);
            assert!(matches!(unlock(&db, &kek, &wx, &ctx, &s, &answer(&jr, &sr)).await, Err(Error::Invalid(_))));
            let other_phone = SoterPhone::register(&wechat, "oOTHER", "cpu-B");
            let c = challenge(&db, &s, Purpose::Unlock, Some(crate::approvals::tests::ANY)).await.unwrap();
            let (jo, so) = other_phone.authenticate(&c.challenge);
            assert!(
                matches!(unlock(&db, &kek, &wx, &ctx, &s, &answer(&jo, &so)).await, Err(Error::Forbidden(_))),
                "cpu_id"
            );
            assert_eq!(wechat.seen.lock().unwrap().iter().filter(|(p, _)| p == "soter").count(), 2);

            // results WeChat does not accept (another key claiming this phone, an edited result) are
            // counted; the fifth switches fingerprint approval off
            let spoof = SoterPhone::register(&wechat, "oSPOOF", "cpu-A");
            for i in 1..=MAX_FAILURES {
                let c = challenge(&db, &s, Purpose::Unlock, Some(crate::approvals::tests::ANY)).await.unwrap();
                let (j, sig) = if i == 1 {
                    let (j, sig) = phone.authenticate(&c.challenge);
                    (j.replace("\"fid\":\"2\"", "\"fid\":\"3\""), sig)
                } else {
                    spoof.authenticate(&c.challenge)
                };
                let e = unlock(&db, &kek, &wx, &ctx, &s, &answer(&j, &sig)).await.unwrap_err();
                if i < MAX_FAILURES {
                    assert!(
                        matches!(e, Error::Unauthorized(_)) && e.to_string().contains(&(MAX_FAILURES - i).to_string())
                    );
                } else {
                    assert!(matches!(e, Error::Forbidden(_)), "{e}");
                }
            }
            assert!(!status(&db, &s, true).await.unwrap().enabled);
            assert!(matches!(challenge(&db, &s, Purpose::Unlock, None).await, Err(Error::Conflict(_))));

            // enrolled again: a locked PIN stops the fingerprint too
            let c = challenge(&db, &s, Purpose::Enrol, None).await.unwrap();
            let (j, sig) = phone.authenticate(&c.challenge);
            let on2 = enrol(&db, &kek, &wx, &ctx, &s, &req(&pin, "code-oFP2201", &j, &sig)).await.unwrap();
            assert_ne!(on2.fingerprint_secret, on.fingerprint_secret, "a new enrolment, a new secret");
            for _ in 0..mobile::MAX_PIN_FAILURES {
                let _ = crate::approvals::unlock(&db, &kek, &ctx, &s, &wrong_pin, crate::approvals::tests::ANY).await;
            }
            let c = challenge(&db, &s, Purpose::Unlock, Some(crate::approvals::tests::ANY)).await.unwrap();
            let (j, sig) = phone.authenticate(&c.challenge);
            let e = unlock(&db, &kek, &wx, &ctx, &s, &answer(&j, &sig)).await.unwrap_err();
            assert!(matches!(e, Error::Forbidden(_)) && e.to_string().contains("PIN"), "{e}");

            // off from the phone, and unbinding erases it
            assert!(disable(&db, &ctx, &s).await.unwrap());
            assert!(!disable(&db, &ctx, &s).await.unwrap());
            let a = mobile::activation_code(&db, &kek, &ctx, "2201").await.unwrap();
            let s2 = mobile::activate(&db, &cas, &ctx, "2201", &a.code, "Android").await.unwrap();
            mobile::set_pin(&db, &kek, &ctx, &s2, &pin, None).await.unwrap();
            let c = challenge(&db, &s2, Purpose::Enrol, None).await.unwrap();
            let (j, sig) = phone.authenticate(&c.challenge);
            enrol(&db, &kek, &wx, &ctx, &s2, &req(&pin, "code-oFP2201", &j, &sig)).await.unwrap();
            mobile::unbind(&db, &cas, &ctx, &s2).await.unwrap();
            assert_eq!(count(&db, "SELECT COUNT(*) FROM device_soter").await, 0);
            let refusals =
                count(&db, "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'soter.%' AND outcome = 'refused'").await;
            assert_eq!(refusals, 1 + MAX_FAILURES, "other device + five unconfirmed results, audited");
        }
    }

    /// Issue #15, item 4: twenty spoofed fingerprint results sent at once are checked with WeChat
    /// at most [`MAX_FAILURES`] times (each attempt is reserved before WeChat is asked); then
    /// fingerprint approval is off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_spoofed_fingerprints_are_checked_at_most_the_limit() {
        let (base, wechat) = fake::start().await;
        let wx = std::sync::Arc::new(Wechat::new(&base, "wx_test", "s3cret").unwrap());
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = medsign_ca::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            add_staff(&db, &kek, &[staff("2301", "吴医生")]).await;
            let a = mobile::activation_code(&db, &kek, &ctx, "2301").await.unwrap();
            let s = mobile::activate(&db, &cas, &ctx, "2301", &a.code, "Android").await.unwrap();
            let pin = hex::encode([1u8; 32]);
            mobile::set_pin(&db, &kek, &ctx, &s, &pin, None).await.unwrap();
            let phone = SoterPhone::register(&wechat, "oFP2301", "cpu-P");
            let c = challenge(&db, &s, Purpose::Enrol, None).await.unwrap();
            let (j, sig) = phone.authenticate(&c.challenge);
            enrol(&db, &kek, &wx, &ctx, &s, &req(&pin, "code-oFP2301", &j, &sig)).await.unwrap();
            let spoof = SoterPhone::register(&wechat, "oSPOOF2301", "cpu-P");
            let mut results = Vec::new();
            for _ in 0..20 {
                let c = challenge(&db, &s, Purpose::Unlock, Some(crate::approvals::tests::ANY)).await.unwrap();
                results.push(spoof.authenticate(&c.challenge));
            }
            let asked = || wechat.seen.lock().unwrap().iter().filter(|(p, _)| p == "soter").count();
            let before = asked();
            let tasks: Vec<_> = results
                .into_iter()
                .map(|(j, sig)| {
                    let (db, kek, wx, ctx, s) = (db.clone(), kek.clone(), wx.clone(), ctx.clone(), s.clone());
                    tokio::spawn(async move { unlock(&db, &kek, &wx, &ctx, &s, &answer(&j, &sig)).await })
                })
                .collect();
            for t in tasks {
                assert!(t.await.unwrap().is_err());
            }
            let checked = asked() - before;
            assert!((1..=MAX_FAILURES as usize).contains(&checked), "WeChat asked {checked} times");
            assert!(!status(&db, &s, true).await.unwrap().enabled);
        }
    }
}
