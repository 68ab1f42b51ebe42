//! Phones of staff (issue #7, R3.*, R5.5): binding a device with a one-time activation code,
//! device sessions, and two-party SM2 keys — the phone keeps `d1` (wrapped under its PIN and
//! device secret, never sent), the server keeps `d2` wrapped under the KEK, and the certificate is
//! issued for the joint key through the CA channels. Binding a new device unbinds the old one:
//! its server shares are destroyed and their certificates revoked (superseded), so a lost phone
//! cannot sign again.
//!
//! Secrets at rest are hashes (activation codes, session tokens: SM3) or wrapped (d2).

use chrono::{DateTime, Duration, Utc};
use medsign_ca::certs::{self, CertRecord, Issuer};
use medsign_crypto::{
    PublicKey,
    twoparty::{KeyGenRequest, KeyGenResponse, ServerKeyGen},
    wrap::Kek,
};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
    error::Refusal,
};
use medsign_store::{is_past, secs_text};
use serde::Serialize;
use sqlx::Row;

const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Lifetime of an activation code.
pub const ACTIVATION_HOURS: i64 = 72;
/// Lifetime of a device session.
pub const SESSION_DAYS: i64 = 30;

fn hash(secret: &str) -> String {
    hex::encode(medsign_crypto::hash::sm3(secret.as_bytes()))
}

/// A one-time activation code for a user's phone (shown once).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    /// the code, e.g. `7K3F-9Q2A-XM4P`
    pub code: String,
    /// for whom
    pub employee_no: String,
    /// RFC 3339
    pub expires_at: String,
    /// SM3 of the server's end-to-end channel key (hex): put it in the activation QR code
    /// (`#/activate?k=…`) so the phone pins the real key even behind a hostile gateway
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_fingerprint: Option<String>,
    /// the activation link (`…/m/#/activate?no=…&code=…&k=…`): scanned with the phone's camera or
    /// WeChat, it opens the phone app with the form filled and the server's key pinned
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// the link as a QR code (PNG, base64), to show the staff member in person
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_png_base64: Option<String>,
}

impl Activation {
    /// Add the link into the phone app at `app_base` (ending in `/`) and its QR code, pinning the server's channel
    /// key `fingerprint`. The staff number is `[A-Za-z0-9_-]` and the code `[A-Z0-9-]`, so
    /// neither needs escaping. The code is already stored: a QR code that cannot be drawn is left
    /// out (the code and the link still reach the person) rather than failing the call.
    pub fn with_link(mut self, app_base: &str, fingerprint: &str) -> Self {
        let link = format!("{app_base}#/activate?no={}&code={}&k={fingerprint}", self.employee_no, self.code);
        match medsign_signing::tickets::qr(&link) {
            Ok((png, _)) => self.qr_png_base64 = Some(png),
            Err(e) => tracing::warn!(error = %e, "activation QR code not drawn"),
        }
        self.channel_fingerprint = Some(fingerprint.into());
        self.link = Some(link);
        self
    }
}

/// Issue an activation code for `employee_no` (replacing unused ones).
pub async fn activation_code(db: &Db, kek: &Kek, ctx: &Context, employee_no: &str) -> Result<Activation> {
    let user = medsign_directory::users::get(db, kek, employee_no).await?;
    if user.status != "active" {
        return Err(Error::Invalid(format!("用户 {employee_no} 已停用 / user {employee_no} is disabled")));
    }
    let r = medsign_crypto::rng::bytes::<12>()?;
    let raw: String = r.iter().map(|b| CODE_ALPHABET[(*b as usize) % CODE_ALPHABET.len()] as char).collect();
    let code = format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12]);
    let expires = secs_text(Utc::now() + Duration::hours(ACTIVATION_HOURS));
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // one new code per user at a time on every instance: the one issued last replaces the others
    db.serialise(&mut tx, medsign_store::db::lock_key("activation", employee_no)).await?;
    sqlx::query("DELETE FROM activation_codes WHERE employee_no = $1 AND used_at IS NULL")
        .bind(employee_no)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO activation_codes (code_hash, employee_no, expires_at, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash(&code))
    .bind(employee_no)
    .bind(&expires)
    .bind(&ctx.actor)
    .bind(medsign_store::now_text())
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "device.activation_code",
        &format!("user:{employee_no}"),
        serde_json::json!({"expires_at": expires}),
    )
    .await?;
    tx.commit().await?;
    Ok(Activation {
        code,
        employee_no: employee_no.into(),
        expires_at: expires,
        channel_fingerprint: None,
        link: None,
        qr_png_base64: None,
    })
}

/// A device session (the token is shown once, at activation).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// bearer token for `/mobile/v1` (only in the activation answer)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// the bound device
    pub device_id: String,
    /// its user
    pub employee_no: String,
    /// RFC 3339
    pub expires_at: String,
}

/// Bind a phone: the activation code (one-time, unexpired, for this user) gives a device and a
/// session; devices bound before are unbound and their keys invalidated.
#[allow(clippy::too_many_arguments)]
pub async fn activate<'a>(
    db: &Db,
    revoker: impl Into<certs::Revoker<'a>>,
    ctx: &Context,
    employee_no: &str,
    code: &str,
    device_name: &str,
) -> Result<Session> {
    let name = device_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Invalid("设备名称须为 1–100 字 / device name must have 1-100 characters".into()));
    }
    let normalized = code.trim().to_ascii_uppercase();
    let row = sqlx::query("SELECT * FROM activation_codes WHERE code_hash = $1 AND employee_no = $2")
        .bind(hash(&normalized))
        .bind(employee_no)
        .fetch_optional(&db.pool)
        .await?;
    let refused =
        |why: &str| Error::Unauthorized(format!("激活码无效（{why}）/ the activation code is not valid ({why})"));
    let verdict = match &row {
        None => Err(refused("unknown")),
        Some(r) if r.try_get::<Option<String>, _>("used_at")?.is_some() => Err(refused("already used")),
        Some(r) if is_past(&r.try_get::<String, _>("expires_at")?) => Err(refused("expired")),
        Some(_) => Ok(()),
    };
    if let Err(e) = verdict {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let ev = audit::Event {
            kind: Kind::Login,
            action: "device.activate",
            target: &format!("user:{employee_no}"),
            outcome: "refused",
            details: serde_json::json!({"error": e.to_string()}),
        };
        audit::append(&mut tx, ctx, &ev).await?;
        tx.commit().await?;
        return Err(e);
    }
    let device_id = format!("dev_{}", hex::encode(medsign_crypto::rng::bytes::<8>()?));
    let token = format!("mt_{}", hex::encode(medsign_crypto::rng::bytes::<24>()?));
    let expires = secs_text(Utc::now() + Duration::days(SESSION_DAYS));
    let now = medsign_store::now_text();
    let superseded: Vec<String>;
    {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let done = sqlx::query("UPDATE activation_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL")
            .bind(&now)
            .bind(hash(&normalized))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Err(refused("already used"));
        }
        // the old phone stops working: its sessions end, its server shares are destroyed
        superseded = unbind_in(&mut tx, employee_no, &now).await?;
        sqlx::query(
            "INSERT INTO devices (id, employee_no, name, status, created_at) VALUES ($1, $2, $3, 'active', $4)",
        )
        .bind(&device_id)
        .bind(employee_no)
        .bind(name)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO mobile_sessions (token_hash, device_id, employee_no, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash(&token))
        .bind(&device_id)
        .bind(employee_no)
        .bind(&expires)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        audit::ok(
            &mut tx,
            ctx,
            Kind::Login,
            "device.activate",
            &format!("user:{employee_no}"),
            serde_json::json!({"device": device_id, "name": name, "keys_destroyed": superseded.len()}),
        )
        .await?;
        tx.commit().await?;
    }
    db.erase_checkpoint().await?;
    let r: certs::Revoker<'_> = revoker.into();
    for serial in superseded {
        certs::retire(db, r.cas, r.remote, ctx, &serial, "superseded").await?;
    }
    Ok(Session { token: Some(token), device_id, employee_no: employee_no.into(), expires_at: expires })
}

/// A bound (or formerly bound) phone as the console lists it: nothing secret, only states.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// device id
    pub device_id: String,
    /// whose
    pub employee_no: String,
    /// the name given at activation, e.g. "iPhone 15"
    pub name: String,
    /// `active` | `unbound`
    pub status: String,
    /// bound at (RFC 3339)
    pub bound_at: String,
    /// unbound at, for a former phone
    pub unbound_at: Option<String>,
    /// a PIN is set on it
    pub pin: bool,
    /// its PIN is locked after too many wrong tries
    pub pin_locked: bool,
    /// fingerprint approval (WeChat SOTER) is on
    pub fingerprint: bool,
    /// its split key's state: `active`, `pending`, `destroyed` — none before one is made
    pub key: Option<String>,
    /// the certificate of its split key
    pub cert_serial: Option<String>,
}

/// Most phones one list shows.
pub const MAX_DEVICES: i64 = 5000;

/// Phones, newest binding first: of one staff member with their former phones (`Some`), or
/// every bound phone (`None`; at most [`MAX_DEVICES`]).
pub async fn devices(db: &Db, employee_no: Option<&str>) -> Result<Vec<DeviceView>> {
    let rows = sqlx::query(
        "SELECT d.id, d.employee_no, d.name, d.status, d.created_at, d.unbound_at, \
                p.locked_at AS pin_locked_at, p.device_id AS pin_device, s.device_id AS soter_device, \
                (SELECT k.status FROM split_keys k WHERE k.device_id = d.id ORDER BY k.created_at DESC, k.id LIMIT 1) AS key_status, \
                (SELECT k.cert_serial FROM split_keys k WHERE k.device_id = d.id ORDER BY k.created_at DESC, k.id LIMIT 1) AS key_cert \
         FROM devices d LEFT JOIN device_pins p ON p.device_id = d.id LEFT JOIN device_soter s ON s.device_id = d.id \
         WHERE ($1 IS NULL AND d.status = 'active') OR d.employee_no = $1 \
         ORDER BY d.created_at DESC, d.id LIMIT $2",
    )
    .bind(employee_no)
    .bind(MAX_DEVICES)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeviceView {
                device_id: r.try_get("id")?,
                employee_no: r.try_get("employee_no")?,
                name: r.try_get("name")?,
                status: r.try_get("status")?,
                bound_at: r.try_get("created_at")?,
                unbound_at: r.try_get("unbound_at")?,
                pin: r.try_get::<Option<String>, _>("pin_device")?.is_some(),
                pin_locked: r.try_get::<Option<String>, _>("pin_locked_at")?.is_some(),
                fingerprint: r.try_get::<Option<String>, _>("soter_device")?.is_some(),
                key: r.try_get("key_status")?,
                cert_serial: r.try_get("key_cert")?,
            })
        })
        .collect()
}

/// Unbind the user's active devices inside a transaction: sessions end, PINs and fingerprint
/// approvals go, session grants end, server shares are destroyed. Returns the certificates of the
/// destroyed keys (to revoke).
async fn unbind_in(tx: &mut sqlx::AnyConnection, employee_no: &str, now: &str) -> Result<Vec<String>> {
    for sql in [
        "DELETE FROM mobile_sessions WHERE device_id IN (SELECT id FROM devices WHERE employee_no = $1 AND status = 'active')",
        "DELETE FROM device_pins WHERE device_id IN (SELECT id FROM devices WHERE employee_no = $1 AND status = 'active')",
        "DELETE FROM device_soter WHERE device_id IN (SELECT id FROM devices WHERE employee_no = $1 AND status = 'active')",
        "DELETE FROM soter_challenges WHERE device_id IN (SELECT id FROM devices WHERE employee_no = $1 AND status = 'active')",
    ] {
        sqlx::query(sql).bind(employee_no).execute(&mut *tx).await?;
    }
    sqlx::query(
        "DELETE FROM grant_keys_sealed WHERE grant_id IN \
         (SELECT id FROM grants WHERE employee_no = $1 AND state IN ('pending', 'active'))",
    )
    .bind(employee_no)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE grants SET state = 'cancelled', grant_key_wrapped = NULL, share_sealed = NULL, ended_at = $1 \
         WHERE employee_no = $2 AND state IN ('pending', 'active')",
    )
    .bind(now)
    .bind(employee_no)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE devices SET status = 'unbound', unbound_at = $1 WHERE employee_no = $2 AND status = 'active'")
        .bind(now)
        .bind(employee_no)
        .execute(&mut *tx)
        .await?;
    let serials: Vec<String> = sqlx::query_scalar(
        "SELECT cert_serial FROM split_keys WHERE employee_no = $1 AND status = 'active' AND cert_serial IS NOT NULL",
    )
    .bind(employee_no)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE split_keys SET status = 'destroyed', share_wrapped = NULL, updated_at = $1 WHERE employee_no = $2 AND status IN ('active', 'pending', 'generating')",
    )
    .bind(now)
    .bind(employee_no)
    .execute(&mut *tx)
    .await?;
    Ok(serials)
}

/// The phone unbinds itself (settings → 解绑): as a new binding would, it ends the session, erases
/// the PIN verifier, session grants and server share, and revokes the certificate.
pub async fn unbind<'a>(db: &Db, revoker: impl Into<certs::Revoker<'a>>, ctx: &Context, s: &Session) -> Result<()> {
    unbind_staff(db, revoker, ctx, &s.employee_no, serde_json::json!({"device": s.device_id})).await
}

/// The hospital unbinds a staff member's phone (lost, stolen, handed back): the same as the phone
/// unbinding itself — sessions, PIN, fingerprint, grants and the server share end, the
/// certificate is revoked. A staff member without a bound phone is not found.
pub async fn unbind_by_hospital<'a>(
    db: &Db,
    revoker: impl Into<certs::Revoker<'a>>,
    ctx: &Context,
    employee_no: &str,
) -> Result<()> {
    let bound: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE employee_no = $1 AND status = 'active'")
        .bind(employee_no)
        .fetch_one(&db.pool)
        .await?;
    if bound == 0 {
        return Err(Error::NotFound(format!("{employee_no} 没有已绑定的手机 / {employee_no} has no bound phone")));
    }
    unbind_staff(db, revoker, ctx, employee_no, serde_json::json!({"by": "hospital"})).await
}

async fn unbind_staff<'a>(
    db: &Db,
    revoker: impl Into<certs::Revoker<'a>>,
    ctx: &Context,
    employee_no: &str,
    details: serde_json::Value,
) -> Result<()> {
    let revoker: certs::Revoker<'_> = revoker.into();
    let now = medsign_store::now_text();
    let serials = {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let serials = unbind_in(&mut tx, employee_no, &now).await?;
        let mut details = details;
        details["keys_destroyed"] = serials.len().into();
        audit::ok(&mut tx, ctx, Kind::Login, "device.unbind", &format!("user:{employee_no}"), details).await?;
        tx.commit().await?;
        serials
    };
    db.erase_checkpoint().await?;
    for serial in serials {
        certs::retire(db, revoker.cas, revoker.remote, ctx, &serial, "cessation_of_operation").await?;
    }
    Ok(())
}

/// The session of a bearer token (a bound device, unexpired).
pub async fn session(db: &Db, token: &str) -> Result<Session> {
    let unauthorized = || {
        Error::coded(
            Refusal::Unauthorized,
            "session_invalid",
            "设备会话无效，请重新激活 / the device session is not valid; activate again",
        )
    };
    let token_hash = hash(token);
    // on SQLite in a file, read on this thread when the reader is free (no hand-off), else the pool
    let direct = db.direct.as_ref().and_then(|d| {
        d.try_read(|c| {
            use medsign_store::rusqlite::OptionalExtension;
            c.prepare_cached(SESSION)?.query_row([&token_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()
        })
    });
    let found: Option<(String, String, String)> = match direct {
        Some(read) => read?,
        None => sqlx::query_as(SESSION).bind(&token_hash).fetch_optional(&db.pool).await?,
    };
    let (device_id, employee_no, expires_at) = found.ok_or_else(unauthorized)?;
    if is_past(&expires_at) {
        return Err(unauthorized());
    }
    Ok(Session { token: None, device_id, employee_no, expires_at })
}

/// The live session of a token: its device, its user and its expiry.
const SESSION: &str = "SELECT s.device_id, s.employee_no, s.expires_at FROM mobile_sessions s \
    JOIN devices d ON d.id = s.device_id WHERE s.token_hash = $1 AND d.status = 'active'";

/// Wrong PIN attempts in a row before the PIN locks (R3.9); a new activation code unlocks.
pub const MAX_PIN_FAILURES: i64 = 5;
/// A PIN must be changed after this many days (R3.9).
pub const PIN_MAX_DAYS: i64 = 180;

/// What the server releases for a matching PIN verifier.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Unlock {
    /// the device's unlock secret, hex: with the PIN it opens the stored share
    pub unlock_secret: String,
    /// on a PIN change: the secret the old PIN's share was wrapped with (to re-wrap it)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_unlock_secret: Option<String>,
    /// when the PIN must be changed (RFC 3339)
    pub pin_expires_at: String,
}

pub(crate) fn verifier_bytes(hex_v: &str) -> Result<[u8; 32]> {
    hex::decode(hex_v.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Invalid("verifier 须为 32 字节十六进制 / verifier must be 32 bytes of hex".into()))
}

pub(crate) fn pin_expiry(set_at: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(set_at)
        .map_err(|e| Error::internal_from("mobile::pin_expiry", e))?
        .with_timezone(&Utc)
        + Duration::days(PIN_MAX_DAYS))
}

fn pin_locked() -> Error {
    Error::Forbidden(format!(
        "PIN 已锁定（连续错误 {MAX_PIN_FAILURES} 次），请联系管理员获取新的激活码 / the PIN is locked after {MAX_PIN_FAILURES} wrong attempts; ask for a new activation code"
    ))
}

/// An expired PIN must be changed before the phone signs again (R3.9).
pub(crate) fn refuse_expired(expires: DateTime<Utc>) -> Result<()> {
    if expires <= Utc::now() {
        return Err(Error::Conflict(format!(
            "PIN 已超过 {PIN_MAX_DAYS} 天，请修改 PIN / the PIN is older than {PIN_MAX_DAYS} days: change it"
        )));
    }
    Ok(())
}

/// The device's PIN row; refused when it has no PIN or the PIN is locked.
async fn pin_row(db: &Db, s: &Session) -> Result<sqlx::any::AnyRow> {
    let r = sqlx::query("SELECT * FROM device_pins WHERE device_id = $1")
        .bind(&s.device_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::Conflict("尚未设置 PIN / no PIN is set on this phone yet".into()))?;
    if r.try_get::<Option<String>, _>("locked_at")?.is_some() {
        return Err(pin_locked());
    }
    Ok(r)
}

/// When the device's PIN expires — refused when it has none, it is locked or it expired: a
/// fingerprint stands in for the PIN only while the PIN itself may be used.
pub(crate) async fn usable_pin(db: &Db, s: &Session) -> Result<DateTime<Utc>> {
    let r = pin_row(db, s).await?;
    let expires = pin_expiry(&r.try_get::<String, _>("set_at")?)?;
    refuse_expired(expires)?;
    Ok(expires)
}

/// Count one attempt before it is checked, with `sql`: an `UPDATE … SET failures = failures + 1
/// … WHERE device_id = $2 AND failures < $3` (and whatever else must hold), `$1` the time. One
/// conditional statement, so parallel attempts — on one instance or several — are checked at
/// most `max` times. Whether the attempt may go ahead.
pub(crate) async fn reserve_attempt(db: &Db, sql: &'static str, device_id: &str, max: i64) -> Result<bool> {
    let _w = db.write_lock.lock().await;
    let n = sqlx::query(sql)
        .bind(medsign_store::now_text())
        .bind(device_id)
        .bind(max)
        .execute(&db.pool)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Compare `verifier` with the device's stored one, counting failures (audited; locks at
/// [`MAX_PIN_FAILURES`]). Returns the stored row's unlock secret and PIN set time.
///
/// An attempt is reserved (the failure counter raised in one conditional update) *before* the
/// comparison and given back on a match, so N parallel guesses — on one instance or several —
/// compare at most [`MAX_PIN_FAILURES`] times before the PIN locks.
pub(crate) async fn check_pin(
    db: &Db,
    kek: &Kek,
    ctx: &Context,
    s: &Session,
    verifier: &[u8; 32],
) -> Result<(zeroize::Zeroizing<Vec<u8>>, String)> {
    let r = pin_row(db, s).await?;
    let stored =
        hex::decode(r.try_get::<String, _>("verifier")?).map_err(|_| Error::internal("stored verifier is corrupt"))?;
    let target = format!("user:{}", s.employee_no);
    let sql = "UPDATE device_pins SET failures = failures + 1, updated_at = $1 \
               WHERE device_id = $2 AND locked_at IS NULL AND failures < $3";
    if !reserve_attempt(db, sql, &s.device_id, MAX_PIN_FAILURES).await? {
        return Err(pin_locked());
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    if !medsign_crypto::hash::ct_eq(&stored, verifier) {
        let failures: i64 = sqlx::query_scalar("SELECT failures FROM device_pins WHERE device_id = $1")
            .bind(&s.device_id)
            .fetch_one(&mut *tx)
            .await?;
        let lock = failures >= MAX_PIN_FAILURES;
        if lock {
            sqlx::query("UPDATE device_pins SET locked_at = $1 WHERE device_id = $2 AND locked_at IS NULL")
                .bind(medsign_store::now_text())
                .bind(&s.device_id)
                .execute(&mut *tx)
                .await?;
        }
        let e = if lock {
            pin_locked()
        } else {
            let left = MAX_PIN_FAILURES - failures;
            Error::Unauthorized(format!("PIN 错误，还可尝试 {left} 次 / wrong PIN, {left} attempts left"))
        };
        let ev = audit::Event {
            kind: Kind::Login,
            action: "pin.verify",
            target: &target,
            outcome: "refused",
            details: serde_json::json!({"device": s.device_id, "failures": failures, "locked": lock}),
        };
        audit::append(&mut tx, ctx, &ev).await?;
        tx.commit().await?;
        return Err(e);
    }
    sqlx::query("UPDATE device_pins SET failures = 0, updated_at = $1 WHERE device_id = $2 AND locked_at IS NULL")
        .bind(medsign_store::now_text())
        .bind(&s.device_id)
        .execute(&mut *tx)
        .await?;
    audit::ok(&mut tx, ctx, Kind::Login, "pin.verify", &target, serde_json::json!({"device": s.device_id})).await?;
    tx.commit().await?;
    let wrapped = hex::decode(r.try_get::<String, _>("unlock_wrapped")?)
        .map_err(|_| Error::internal("stored secret is corrupt"))?;
    Ok((kek.unwrap(&wrapped, s.device_id.as_bytes())?, r.try_get("set_at")?))
}

/// Set or change the PIN (its verifier): a new unlock secret is made; a change needs the current
/// PIN's verifier (counted like an unlock) and returns the previous secret for re-wrapping.
pub async fn set_pin(
    db: &Db,
    kek: &Kek,
    ctx: &Context,
    s: &Session,
    verifier: &str,
    current: Option<&str>,
) -> Result<Unlock> {
    let new = verifier_bytes(verifier)?;
    let exists: Option<String> = sqlx::query_scalar("SELECT device_id FROM device_pins WHERE device_id = $1")
        .bind(&s.device_id)
        .fetch_optional(&db.pool)
        .await?;
    let previous = match (exists, current) {
        (Some(_), Some(c)) => Some(check_pin(db, kek, ctx, s, &verifier_bytes(c)?).await?.0),
        (Some(_), None) => {
            return Err(Error::Invalid(
                "修改 PIN 须提供当前 PIN（current_verifier）/ changing the PIN needs the current one (current_verifier)".into(),
            ));
        }
        (None, _) => None,
    };
    let secret = zeroize::Zeroizing::new(medsign_crypto::rng::bytes::<32>()?);
    let wrapped = kek.wrap(secret.as_ref(), s.device_id.as_bytes())?;
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM device_pins WHERE device_id = $1").bind(&s.device_id).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO device_pins (device_id, employee_no, verifier, unlock_wrapped, failures, set_at, updated_at)          VALUES ($1, $2, $3, $4, 0, $5, $5)",
    )
    .bind(&s.device_id)
    .bind(&s.employee_no)
    .bind(hex::encode(new))
    .bind(hex::encode(wrapped))
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Login,
        if previous.is_some() { "pin.change" } else { "pin.set" },
        &format!("user:{}", s.employee_no),
        serde_json::json!({"device": s.device_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(Unlock {
        unlock_secret: hex::encode(secret.as_ref()),
        previous_unlock_secret: previous.map(|p| hex::encode(p.as_slice())),
        pin_expires_at: secs_text(pin_expiry(&now)?),
    })
}

/// One signature of the user's (R3.7).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct SignRecord {
    /// flow
    pub flow_id: String,
    /// document number
    pub doc_no: String,
    /// title
    pub title: String,
    /// `data` | `file`
    pub kind: String,
    /// RFC 3339
    pub signed_at: Option<String>,
    /// `two-party` (on the phone), `grant` (under a session grant) or `server` (custody)
    pub custody: Option<String>,
    /// the grant, for `grant`
    pub grant_id: Option<String>,
    /// certificate used
    pub cert_serial: Option<String>,
    /// the flow's state now
    pub flow_state: String,
}

/// One login event of the user's (R3.7): phone binding, PIN checks, scan-to-login.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct LoginRecord {
    /// RFC 3339
    pub at: String,
    /// `device.activate`, `pin.verify`, `pin.set`, `pin.change`, `login.qr`, …
    pub action: String,
    /// `ok` | `refused`
    pub outcome: String,
    /// client address
    pub ip: String,
    /// details (the login signature itself is left out)
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
}

/// The user's own records (R3.7), newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Records {
    /// signatures
    pub signatures: Vec<SignRecord>,
    /// logins
    pub logins: Vec<LoginRecord>,
}

/// The last `limit` (1–200) signatures and login events of the session's user.
pub async fn records(db: &Db, s: &Session, limit: i64) -> Result<Records> {
    if !(1..=200).contains(&limit) {
        return Err(Error::Invalid("limit 须为 1–200 / limit must be 1-200".into()));
    }
    let signatures = sqlx::query(
        "SELECT f.id, f.doc_no, f.title, f.kind, f.state, s.signed_at, s.custody, s.grant_id, s.cert_serial \
         FROM flow_signers s JOIN sign_flows f ON f.id = s.flow_id \
         WHERE s.kind = 'staff' AND s.subject_ref = $1 AND s.state = 'signed' ORDER BY s.signed_at DESC LIMIT $2",
    )
    .bind(&s.employee_no)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(SignRecord {
            flow_id: r.try_get("id")?,
            doc_no: r.try_get("doc_no")?,
            title: r.try_get("title")?,
            kind: r.try_get("kind")?,
            signed_at: r.try_get("signed_at")?,
            custody: r.try_get("custody")?,
            grant_id: r.try_get("grant_id")?,
            cert_serial: r.try_get("cert_serial")?,
            flow_state: r.try_get("state")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let f = audit::Filter {
        kind: Some("login".into()),
        actor: Some(format!("user:{}", s.employee_no)),
        page_size: Some(limit),
        ..Default::default()
    };
    let (entries, _) = audit::query(db, &f).await?;
    let logins = entries
        .into_iter()
        .map(|e| {
            let mut details: serde_json::Value = serde_json::from_str(&e.details).unwrap_or_default();
            if let Some(d) = details.as_object_mut() {
                d.remove("signature");
                // details the audit log stored cut (over its size cap) keep only their length:
                // the cut text is a fragment of the JSON — with the login signature in it
                d.remove("start");
            }
            LoginRecord { at: e.at, action: e.action, outcome: e.outcome, ip: e.ip, details }
        })
        .collect();
    Ok(Records { signatures, logins })
}

/// A key generation the phone may answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct KeyGenStart {
    /// key id
    pub key_id: String,
    /// the bytes both proofs are bound to (pass to `new KeyGen(context)`)
    pub context: String,
}

/// Refused when the session's device has, or had, a key: a phone is keyed once per activation;
/// re-keying needs a new activation code from the hospital (issue #15).
async fn refuse_rekey(db: &Db, s: &Session) -> Result<()> {
    let had: Option<String> = sqlx::query_scalar(
        "SELECT id FROM split_keys WHERE device_id = $1 AND status IN ('generating', 'active', 'destroyed') LIMIT 1",
    )
    .bind(&s.device_id)
    .fetch_optional(&db.pool)
    .await?;
    match had {
        None => Ok(()),
        Some(_) => Err(Error::coded(
            Refusal::Conflict,
            "rekey_needs_activation",
            "此手机已生成过签名密钥；更换密钥须向信息科申请新的激活码重新激活 / this phone has a key already; a new key needs a new activation code from the hospital",
        )),
    }
}

/// Start a two-party key generation for the session's device (only for a freshly activated phone:
/// the one-time activation code is the approval of the new key).
pub async fn keygen_start(db: &Db, s: &Session) -> Result<KeyGenStart> {
    refuse_rekey(db, s).await?;
    let key_id = format!("sk_{}", hex::encode(medsign_crypto::rng::bytes::<8>()?));
    let context = format!("medsign/keygen/v1|user={}|device={}|key={key_id}", s.employee_no, s.device_id);
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    sqlx::query(
        "INSERT INTO split_keys (id, employee_no, device_id, status, context, created_at, updated_at) VALUES ($1, $2, $3, 'pending', $4, $5, $5)",
    )
    .bind(&key_id)
    .bind(&s.employee_no)
    .bind(&s.device_id)
    .bind(&context)
    .bind(&now)
    .execute(&db.pool)
    .await?;
    Ok(KeyGenStart { key_id, context })
}

/// The server's answer to a key generation, and the certificate of the joint key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct KeyGenDone {
    /// the protocol answer for the phone (its proof and the joint public key)
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub response: KeyGenResponse,
    /// the staff signing certificate of the joint key; `null` when the active CA takes only the
    /// key's own certification request (`csr_required`)
    pub certificate: Option<CertRecord>,
    /// the phone must now sign the key's certification request with the server
    /// (`POST /mobile/v1/certificate/csr`, [`crate::certify`]) to get its certificate
    pub csr_required: bool,
}

/// Answer the phone's key generation request: check its proof, pick `d2`, keep it wrapped, and
/// certify the joint key (replacing an earlier two-party certificate of this user).
pub async fn keygen_finish(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    s: &Session,
    key_id: &str,
    req: &KeyGenRequest,
) -> Result<KeyGenDone> {
    let row = sqlx::query("SELECT context, status FROM split_keys WHERE id = $1 AND device_id = $2")
        .bind(key_id)
        .bind(&s.device_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("密钥 {key_id} 不存在 / no key {key_id} for this device")))?;
    if row.try_get::<String, _>("status")? != "pending" {
        return Err(Error::Conflict(format!("密钥 {key_id} 已生成 / key {key_id} was generated already")));
    }
    refuse_rekey(db, s).await?;
    let context: String = row.try_get("context")?;
    let (share, response) = ServerKeyGen::respond(req, context.as_bytes())
        .map_err(|e| Error::Invalid(format!("密钥生成请求无效 / invalid key generation request: {e}")))?;
    // claim the device's one live key first: of parallel answers (on any instance) exactly one
    // passes the unique index `split_keys_live`, the others are refused before any certificate
    let claimed = {
        let _w = db.write_lock.lock().await;
        sqlx::query("UPDATE split_keys SET status = 'generating', updated_at = $1 WHERE id = $2 AND status = 'pending'")
            .bind(medsign_store::now_text())
            .bind(key_id)
            .execute(&db.pool)
            .await
    };
    match claimed {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return Err(Error::Conflict(format!("密钥 {key_id} 已生成 / key {key_id} was generated already"))),
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(refuse_rekey(db, s).await.err().unwrap_or_else(|| {
                Error::Conflict("此手机正在生成另一把密钥 / another key is being generated for this phone".into())
            }));
        }
        Err(e) => return Err(e.into()),
    }
    let wrapped = kek.wrap(&share.to_bytes(), key_id.as_bytes())?;
    let public = PublicKey::Sm2(*share.public_key());
    let csr_required = certs::needs_request(db, issuer).await?;
    let issued = match csr_required {
        // what issuance would refuse, refused now: a key that could never be certified is not made
        true => match certs::staff_subject(db, kek, issuer.organization, &s.employee_no).await {
            Ok(_) => certs::two_party_blocked(db, &s.employee_no).await.map(|_| None),
            Err(e) => Err(e),
        },
        false => certs::issue_for_two_party(db, kek, issuer, ctx, &s.employee_no, &public, None, None).await.map(Some),
    };
    let certificate = match issued {
        Ok(c) => c,
        Err(e) => {
            let _w = db.write_lock.lock().await;
            sqlx::query("UPDATE split_keys SET status = 'failed', updated_at = $1 WHERE id = $2")
                .bind(medsign_store::now_text())
                .bind(key_id)
                .execute(&db.pool)
                .await?;
            return Err(e);
        }
    };
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let live = sqlx::query(
        "UPDATE split_keys SET status = 'active', share_wrapped = $1, public_key = $2, cert_serial = $3, updated_at = $4 \
         WHERE id = $5 AND status = 'generating'",
    )
    .bind(hex::encode(wrapped))
    .bind(hex::encode(share.public_key().to_sec1_uncompressed()))
    .bind(certificate.as_ref().map(|c| c.serial.clone()))
    .bind(&now)
    .bind(key_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !live {
        // the phone was unbound meanwhile: the new certificate must not outlive its key
        tx.rollback().await?;
        drop(_w);
        if let Some(c) = &certificate {
            let remote = issuer.channels.map(|c| (kek, c));
            certs::retire(db, issuer.cas, remote, ctx, &c.serial, "cessation_of_operation").await?;
        }
        return Err(Error::Conflict("此手机已解绑 / this phone was unbound meanwhile".into()));
    }
    sqlx::query(
        "UPDATE split_keys SET status = 'destroyed', share_wrapped = NULL, updated_at = $1 \
         WHERE employee_no = $2 AND status = 'active' AND id <> $3",
    )
    .bind(&now)
    .bind(&s.employee_no)
    .bind(key_id)
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "key.two_party.generate",
        &format!("user:{}", s.employee_no),
        serde_json::json!({"key": key_id, "device": s.device_id, "certificate": certificate.as_ref().map(|c| &c.serial), "csr_required": csr_required}),
    )
    .await?;
    tx.commit().await?;
    Ok(KeyGenDone { response, certificate, csr_required })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_crypto::twoparty::ClientKeyGen;
    use medsign_testkit::{
        db::backends,
        hospital::{add_staff, staff},
    };

    #[tokio::test]
    async fn bind_generate_certify_and_rebind() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = medsign_ca::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let issuer =
                Issuer {
                    cas: &cas, organization: "某县人民医院", public_url: "http://127.0.0.1:7080", channels: None
                };
            add_staff(&db, &kek, &[staff("2001", "王医生")]).await;
            let a = activation_code(&db, &kek, &ctx, "2001").await.unwrap();
            assert_eq!(a.code.len(), 14);
            // wrong code, wrong user, then the right one (lower case accepted) — once
            assert!(matches!(
                activate(&db, &cas, &ctx, "2001", "AAAA-BBBB-CCCC", "iPhone").await,
                Err(Error::Unauthorized(_))
            ));
            assert!(activate(&db, &cas, &ctx, "2002", &a.code, "iPhone").await.is_err());
            let s = activate(&db, &cas, &ctx, "2001", &a.code.to_lowercase(), "iPhone 15").await.unwrap();
            let e = activate(&db, &cas, &ctx, "2001", &a.code, "iPhone").await.unwrap_err();
            assert!(e.to_string().contains("already used"), "{e}");
            let token = s.token.clone().unwrap();
            assert_eq!(session(&db, &token).await.unwrap().device_id, s.device_id);
            assert_eq!(session(&db, "mt_nope").await.unwrap_err().code(), "session_invalid");
            // two-party key generation: the certificate holds the joint key the phone derived
            let start = keygen_start(&db, &s).await.unwrap();
            let (client, req) = ClientKeyGen::start(start.context.as_bytes()).unwrap();
            let done = keygen_finish(&db, &kek, issuer, &ctx, &s, &start.key_id, &req).await.unwrap();
            let share = client.finish(&done.response).unwrap();
            let cert = medsign_pki::cert::Cert::load_all(done.certificate.as_ref().unwrap().certificate_pem.as_bytes())
                .unwrap()
                .remove(0);
            assert_eq!(cert.public_key().unwrap(), &PublicKey::Sm2(*share.public_key()));
            assert!(cert.subject_display().contains("CN=王医生"));
            assert!(matches!(
                keygen_finish(&db, &kek, issuer, &ctx, &s, &start.key_id, &req).await,
                Err(Error::Conflict(_))
            ));
            // online renewal needs the doctor's approval of this certificate (issue #15): the
            // device session alone is refused, so is an approval of something else
            let e = crate::cosign::renew_certificate(&db, &kek, issuer, &ctx, &s).await.unwrap_err();
            assert_eq!(e.code(), "conflict", "no PIN yet: {e}");
            set_pin(&db, &kek, &ctx, &s, crate::approvals::tests::PIN, None).await.unwrap();
            crate::approvals::tests::approve(&db, &kek, &s, crate::approvals::tests::ANY).await;
            let e = crate::cosign::renew_certificate(&db, &kek, issuer, &ctx, &s).await.unwrap_err();
            assert_eq!(e.code(), "approval_required", "{e}");
            let digest =
                crate::approvals::digest(crate::approvals::Purpose::Renew, &done.certificate.as_ref().unwrap().serial);
            crate::approvals::tests::approve(&db, &kek, &s, &digest).await;
            // online renewal: same key, the key record follows, the old certificate is superseded
            let renewed = crate::cosign::renew_certificate(&db, &kek, issuer, &ctx, &s).await.unwrap();
            assert_eq!(
                crate::cosign::renew_certificate(&db, &kek, issuer, &ctx, &s).await.unwrap_err().code(),
                "approval_required"
            );
            let rcert = medsign_pki::cert::Cert::load_all(renewed.certificate_pem.as_bytes()).unwrap().remove(0);
            assert_eq!(rcert.public_key().unwrap(), &PublicKey::Sm2(*share.public_key()));
            assert_eq!(certs::get(&db, &done.certificate.as_ref().unwrap().serial).await.unwrap().status, "revoked");
            let now_serial: Option<String> = sqlx::query_scalar("SELECT cert_serial FROM split_keys WHERE id = $1")
                .bind(&start.key_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(now_serial.as_deref(), Some(renewed.serial.as_str()));
            // a two-party key's certificate is never re-keyed by a CSR (the phone would be left
            // holding a share of a key that no longer has a certificate)
            let other_key = medsign_crypto::signer::KeySigner::new(
                medsign_crypto::PrivateKey::generate(medsign_crypto::KeyAlg::Sm2).unwrap(),
            );
            let csr = medsign_pki::csr::build(&medsign_pki::name::parse_dn("CN=王医生").unwrap(), &other_key).unwrap();
            let e = certs::renew(&db, &kek, issuer, &ctx, &renewed.serial, Some(&csr)).await.unwrap_err();
            assert!(matches!(&e, Error::Invalid(m) if m.contains("two-party")), "{e}");
            assert_eq!(certs::get(&db, &renewed.serial).await.unwrap().status, "active", "nothing changed");
            let done = KeyGenDone { certificate: Some(renewed), ..done };
            // the bound phone cannot make itself a new key (a stolen session token would replace
            // the doctor's key): re-keying needs a new activation code (issue #15)
            assert_eq!(keygen_start(&db, &s).await.unwrap_err().code(), "rekey_needs_activation");
            // the console's view of the phone: bound, its key active and certified
            let d = devices(&db, None).await.unwrap();
            assert_eq!(d.len(), 1);
            assert_eq!(
                (d[0].name.as_str(), d[0].status.as_str(), d[0].key.as_deref()),
                ("iPhone 15", "active", Some("active"))
            );
            assert_eq!(d[0].cert_serial.as_deref(), Some(done.certificate.as_ref().unwrap().serial.as_str()));
            // a new phone: the old session ends, the old share is destroyed, its certificate revoked
            let a2 = activation_code(&db, &kek, &ctx, "2001").await.unwrap();
            let s2 = activate(&db, &cas, &ctx, "2001", &a2.code, "Huawei Mate").await.unwrap();
            let d = devices(&db, Some("2001")).await.unwrap();
            assert_eq!(
                d.iter().map(|x| (x.name.as_str(), x.status.as_str())).collect::<Vec<_>>(),
                [("Huawei Mate", "active"), ("iPhone 15", "unbound")]
            );
            assert_eq!((d[0].key.as_deref(), d[1].key.as_deref()), (None, Some("destroyed")));
            assert_eq!(devices(&db, None).await.unwrap().len(), 1, "only bound phones in the list of all");
            assert_eq!(session(&db, &token).await.unwrap_err().code(), "session_invalid");
            assert_eq!(certs::get(&db, &done.certificate.as_ref().unwrap().serial).await.unwrap().status, "revoked");
            let left: Option<String> = sqlx::query_scalar("SELECT share_wrapped FROM split_keys WHERE id = $1")
                .bind(&start.key_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert!(left.is_none(), "the old server share is gone");
            // the new phone enrols a new key and gets a certificate again
            let st = keygen_start(&db, &s2).await.unwrap();
            let (_c, req) = ClientKeyGen::start(st.context.as_bytes()).unwrap();
            keygen_finish(&db, &kek, issuer, &ctx, &s2, &st.key_id, &req).await.unwrap();
            let refused: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'device.activate' AND outcome = 'refused'",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(refused, 3);
        }
    }

    /// A freshly activated phone and its user, for the race tests.
    async fn bound(db: &Db, kek: &Kek, cas: &medsign_ca::ca::BuiltinCas, no: &str) -> Session {
        let ctx = Context::cli();
        add_staff(db, kek, &[staff(no, "孙医生")]).await;
        let a = activation_code(db, kek, &ctx, no).await.unwrap();
        activate(db, cas, &ctx, no, &a.code, "iPhone").await.unwrap()
    }

    /// Issue #15, item 4: twenty wrong PINs sent at once compare at most MAX_PIN_FAILURES times;
    /// then the PIN is locked and even the right one is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_wrong_pins_compare_at_most_the_limit() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let cas = medsign_ca::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let s = bound(&db, &kek, &cas, "2201").await;
            let right = hex::encode([3u8; 32]);
            set_pin(&db, &kek, &Context::cli(), &s, &right, None).await.unwrap();
            let tries = (0..20u8).map(|i| {
                let (db, kek, s) = (db.clone(), kek.clone(), s.clone());
                tokio::spawn(async move {
                    let wrong = hex::encode([0x40 + i; 32]);
                    crate::approvals::unlock(&db, &kek, &Context::cli(), &s, &wrong, crate::approvals::tests::ANY).await
                })
            });
            let mut wrong_pin = 0;
            for t in tries.collect::<Vec<_>>() {
                match t.await.unwrap() {
                    Err(Error::Unauthorized(_)) => wrong_pin += 1,
                    Err(Error::Forbidden(_)) => {}
                    other => panic!("{other:?}"),
                }
            }
            let compared: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'pin.verify' AND outcome = 'refused'",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert!(compared <= MAX_PIN_FAILURES, "{compared} comparisons");
            assert!(wrong_pin < MAX_PIN_FAILURES, "{wrong_pin} answered 'wrong PIN, n left'");
            let e = crate::approvals::unlock(&db, &kek, &Context::cli(), &s, &right, crate::approvals::tests::ANY)
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Forbidden(_)), "locked: {e}");
        }
    }

    /// Issue #15, item 4: two key generations of one phone answered at the same time leave
    /// exactly one active key and one active certificate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_key_generation_answers_leave_one_key() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let cas = medsign_ca::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let s = bound(&db, &kek, &cas, "2202").await;
            let mut started = Vec::new();
            for _ in 0..4 {
                let st = keygen_start(&db, &s).await.unwrap();
                let (_kg, req) = ClientKeyGen::start(st.context.as_bytes()).unwrap();
                started.push((st, req));
            }
            let mut runs = Vec::new();
            for (st, req) in started {
                let (db, kek, cas, s) = (db.clone(), kek.clone(), cas.clone(), s.clone());
                runs.push(tokio::spawn(async move {
                    let issuer =
                        Issuer {
                            cas: &cas, organization: "某县人民医院", public_url: "http://x", channels: None
                        };
                    keygen_finish(&db, &kek, issuer, &Context::cli(), &s, &st.key_id, &req).await
                }));
            }
            let mut ok = 0;
            for r in runs {
                match r.await.unwrap() {
                    Ok(_) => ok += 1,
                    Err(e) => assert!(matches!(e, Error::Conflict(_) | Error::Coded { .. }), "{e}"),
                }
            }
            assert_eq!(ok, 1);
            let keys: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM split_keys WHERE device_id = $1 AND status = 'active'")
                    .bind(&s.device_id)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            let certs: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM certificates WHERE employee_no = $1 AND status = 'active'")
                    .bind("2202")
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            assert_eq!((keys, certs), (1, 1));
        }
    }

    #[tokio::test]
    async fn pin_verifiers_are_counted_locked_changed_and_expire() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = medsign_ca::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            add_staff(&db, &kek, &[staff("2101", "钱医生")]).await;
            let a = activation_code(&db, &kek, &ctx, "2101").await.unwrap();
            let s = activate(&db, &cas, &ctx, "2101", &a.code, "iPhone").await.unwrap();
            let (v1, v2, wrong) = (hex::encode([1u8; 32]), hex::encode([2u8; 32]), hex::encode([9u8; 32]));
            assert!(
                matches!(
                    crate::approvals::unlock(&db, &kek, &ctx, &s, &v1, crate::approvals::tests::ANY).await,
                    Err(Error::Conflict(_))
                ),
                "no PIN yet"
            );
            assert!(matches!(set_pin(&db, &kek, &ctx, &s, "abc", None).await, Err(Error::Invalid(_))));
            let first = set_pin(&db, &kek, &ctx, &s, &v1, None).await.unwrap();
            assert_eq!(first.unlock_secret.len(), 64);
            assert_eq!(
                crate::approvals::unlock(&db, &kek, &ctx, &s, &v1, crate::approvals::tests::ANY)
                    .await
                    .unwrap()
                    .unlock_secret,
                first.unlock_secret
            );
            // a change needs the current PIN and hands back the old secret for re-wrapping
            assert!(matches!(set_pin(&db, &kek, &ctx, &s, &v2, None).await, Err(Error::Invalid(_))));
            let changed = set_pin(&db, &kek, &ctx, &s, &v2, Some(&v1)).await.unwrap();
            assert_eq!(changed.previous_unlock_secret.as_deref(), Some(first.unlock_secret.as_str()));
            assert_ne!(changed.unlock_secret, first.unlock_secret);
            assert!(
                matches!(
                    crate::approvals::unlock(&db, &kek, &ctx, &s, &v1, crate::approvals::tests::ANY).await,
                    Err(Error::Unauthorized(_))
                ),
                "old PIN"
            );
            // a right PIN resets the count; five wrong ones in a row lock it, even for the right PIN
            crate::approvals::unlock(&db, &kek, &ctx, &s, &v2, crate::approvals::tests::ANY).await.unwrap();
            for left in (1..MAX_PIN_FAILURES).rev() {
                let e = crate::approvals::unlock(&db, &kek, &ctx, &s, &wrong, crate::approvals::tests::ANY)
                    .await
                    .unwrap_err();
                assert!(e.to_string().contains(&format!("{left} attempts left")), "{e}");
            }
            assert!(matches!(
                crate::approvals::unlock(&db, &kek, &ctx, &s, &wrong, crate::approvals::tests::ANY).await,
                Err(Error::Forbidden(_))
            ));
            assert!(
                matches!(
                    crate::approvals::unlock(&db, &kek, &ctx, &s, &v2, crate::approvals::tests::ANY).await,
                    Err(Error::Forbidden(_))
                ),
                "locked"
            );
            assert!(matches!(set_pin(&db, &kek, &ctx, &s, &v1, Some(&v2)).await, Err(Error::Forbidden(_))));
            let refused: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'pin.verify' AND outcome = 'refused'",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(refused, 6, "the old PIN and five wrong ones");
            // a new activation code binds the phone again with no PIN (and no lock)
            let a2 = activation_code(&db, &kek, &ctx, "2101").await.unwrap();
            let s2 = activate(&db, &cas, &ctx, "2101", &a2.code, "iPhone").await.unwrap();
            set_pin(&db, &kek, &ctx, &s2, &v1, None).await.unwrap();
            // the phone unbinds itself: session, PIN, key and certificate go
            let st = keygen_start(&db, &s2).await.unwrap();
            let (_kg, req) = medsign_crypto::twoparty::ClientKeyGen::start(st.context.as_bytes()).unwrap();
            let issuer =
                Issuer { cas: &cas, organization: "某县人民医院", public_url: "http://x", channels: None };
            let done = keygen_finish(&db, &kek, issuer, &ctx, &s2, &st.key_id, &req).await.unwrap();
            unbind(&db, &cas, &ctx, &s2).await.unwrap();
            assert_eq!(session(&db, s2.token.as_deref().unwrap()).await.unwrap_err().code(), "session_invalid");
            let rec = certs::get(&db, &done.certificate.as_ref().unwrap().serial).await.unwrap();
            assert_eq!((rec.status.as_str(), rec.reason.as_deref()), ("revoked", Some("cessation_of_operation")));
            let pins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM device_pins WHERE device_id = $1")
                .bind(&s2.device_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(pins, 0);
            let a3 = activation_code(&db, &kek, &ctx, "2101").await.unwrap();
            let s2 = activate(&db, &cas, &ctx, "2101", &a3.code, "iPhone").await.unwrap();
            set_pin(&db, &kek, &ctx, &s2, &v1, None).await.unwrap();
            // an expired PIN must be changed (the change itself still works)
            sqlx::query("UPDATE device_pins SET set_at = '2020-01-01T00:00:00Z' WHERE device_id = $1")
                .bind(&s2.device_id)
                .execute(&db.pool)
                .await
                .unwrap();
            let e =
                crate::approvals::unlock(&db, &kek, &ctx, &s2, &v1, crate::approvals::tests::ANY).await.unwrap_err();
            assert!(matches!(e, Error::Conflict(_)) && e.to_string().contains("change it"), "{e}");
            set_pin(&db, &kek, &ctx, &s2, &v2, Some(&v1)).await.unwrap();
            crate::approvals::unlock(&db, &kek, &ctx, &s2, &v2, crate::approvals::tests::ANY).await.unwrap();
        }
    }
}
