//! The people who run the console (issue #18, R1): they log in as themselves, not with a token —
//! a password (Argon2id, as app secrets) and a TOTP second factor (RFC 6238; the secret, shown once
//! as an `otpauth://` link for an authenticator app, is kept wrapped under the KEK) — and act in a
//! role: `administrator` (everything), `operator` (day-to-day: users, departments, certificates,
//! seals, templates, flows — not apps, CA channels, the trust list, custody or people), `auditor`
//! (reads logs and evidence). Every action they take is audited as `person:<username>`.
//!
//! Wrong passwords or codes count per person: after [`MAX_FAILURES`] in a row the account locks for
//! [`LOCK_MINUTES`]. A code is accepted once (its 30-second step must be newer than the last one
//! used), one step of clock drift either way. A session is an opaque cookie whose SM3 is stored; it
//! lasts [`SESSION_HOURS`] and ends at logout, when the person is disabled or reset. Only the first
//! administrator is made with the bootstrap token (while there is no enabled administrator); the
//! others are invited — a one-time code with which they set their own password and TOTP — so no
//! administrator ever knows another person's factors; a reset (lost phone, forgotten password,
//! lock-out) invites again.

use crate::apps::{Authenticator, hash_secret};
use chrono::{Duration, Utc};
use medsign_crypto::{hash, rng, wrap::Kek};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use zeroize::Zeroizing;

/// Wrong passwords or codes in a row before the account locks.
pub const MAX_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_MINUTES: i64 = 15;
/// How long a console session lasts.
pub const SESSION_HOURS: i64 = 8;

/// What a person may do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// everything, including apps, CA channels, the trust list and people
    Administrator,
    /// day-to-day administration
    Operator,
    /// reads logs and evidence
    Auditor,
}

impl Role {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }

    fn parse(s: &str) -> Result<Role> {
        match s {
            "administrator" => Ok(Role::Administrator),
            "operator" => Ok(Role::Operator),
            "auditor" => Ok(Role::Auditor),
            other => Err(Error::internal(format!("unknown console role {other}"))),
        }
    }
}

/// A person as the console shows them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Person {
    /// login name
    pub username: String,
    /// name shown (and in the audit log's details)
    pub display_name: String,
    /// role
    pub role: Role,
    /// cannot log in
    pub disabled: bool,
    /// invited: has not set a password and TOTP yet
    pub invited: bool,
    /// locked after wrong passwords or codes, until
    pub locked_until: Option<String>,
    /// created by (`app:…` for the bootstrap token, `person:…`)
    pub created_by: String,
    /// created
    pub created_at: String,
    /// last successful login
    pub last_login_at: Option<String>,
    /// the staff member whose medsign phone app may log this person in by scanning (linked by
    /// an administrator)
    pub employee_no: Option<String>,
}

fn person(r: &sqlx::any::AnyRow) -> Result<Person> {
    Ok(Person {
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        role: Role::parse(&r.try_get::<String, _>("role")?)?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        invited: r.try_get::<Option<String>, _>("password_hash")?.is_none(),
        locked_until: r.try_get("locked_until")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        last_login_at: r.try_get("last_login_at")?,
        employee_no: r.try_get("employee_no")?,
    })
}

/// A new person.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// 3–32 of `a-z 0-9 . _ -`
    pub username: String,
    /// 1–64 characters
    pub display_name: String,
    /// role
    pub role: Role,
    /// only for the first administrator, made with the bootstrap token (10–128 characters, not
    /// one character repeated); everyone else is invited and sets their own
    pub password: Option<String>,
}

/// An invitation: the one-time code with which the person sets their own password and TOTP
/// (`POST /console/v1/enrol`); the administrator never sees either.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Invited {
    /// the person
    pub person: Person,
    /// the one-time code (shown once)
    pub invite_code: String,
    /// valid until
    pub expires_at: String,
}

/// How long an invitation is valid.
pub const INVITE_HOURS: i64 = 72;

/// A new person, with the TOTP secret to put into an authenticator app (shown once).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    /// the person
    pub person: Person,
    /// the TOTP secret, base32 (RFC 4648, no padding)
    pub totp_secret: String,
    /// `otpauth://totp/…` for a QR code
    pub otpauth_uri: String,
}

/// RFC 4648 base32 without padding (what `otpauth://` secrets are written in).
fn base32(b: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in b.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        for i in 0..(chunk.len() * 8).div_ceil(5) {
            out.push(A[((n >> (35 - 5 * i)) & 31) as usize] as char);
        }
    }
    out
}

fn totp_aad(username: &str) -> Vec<u8> {
    format!("medsign/console-totp/{username}").into_bytes()
}

fn check_password(p: &str) -> Result<()> {
    let n = p.chars().count();
    if !(10..=128).contains(&n) || p.chars().all(|c| p.starts_with(c)) {
        return Err(Error::Invalid(
            "密码须为 10–128 个字符，且不能是同一字符重复 / the password must be 10-128 characters, not one character repeated"
                .into(),
        ));
    }
    Ok(())
}

fn check_names(username: &str, display: &str) -> Result<()> {
    if !(3..=32).contains(&username.len())
        || !username.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
    {
        return Err(Error::Invalid(
            "用户名须为 3–32 个小写字母、数字或 . _ - / the username must be 3-32 of a-z 0-9 . _ -".into(),
        ));
    }
    if display.is_empty() || display.chars().count() > 64 {
        return Err(Error::Invalid("姓名须为 1–64 个字符 / the name must be 1-64 characters".into()));
    }
    Ok(())
}

/// A password hash and a fresh TOTP secret (wrapped under the KEK) for `username`.
async fn factors(kek: &Kek, username: &str, password: &str) -> Result<(String, String, Zeroizing<Vec<u8>>)> {
    check_password(password)?;
    let password_hash = {
        let p = Zeroizing::new(password.as_bytes().to_vec());
        tokio::task::spawn_blocking(move || hash_secret(&p)).await.map_err(|e| Error::internal_from("people", e))??
    };
    let secret = Zeroizing::new(rng::bytes::<20>()?.to_vec());
    let wrapped = hex::encode(kek.wrap(&secret, &totp_aad(username))?);
    Ok((password_hash, wrapped, secret))
}

fn enrolled(person: Person, organization: &str, secret: &[u8]) -> Enrolled {
    let b32 = base32(secret);
    let label = |v: &str| v.replace(['%', ':', '/', '?', '&', '#', ' '], "_");
    let issuer = format!("medsign-{}", label(organization));
    let otpauth_uri = format!(
        "otpauth://totp/{issuer}:{}?secret={b32}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
        label(&person.username)
    );
    Enrolled { person, totp_secret: b32, otpauth_uri }
}

/// How many enabled administrators there are.
pub async fn administrators(db: &Db) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_people WHERE role = 'administrator' AND disabled = 0 AND password_hash IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await?)
}

/// The first administrator, made with the bootstrap token (or any admin-scope app) while there is
/// no enabled administrator: they choose their password here and get their TOTP secret once.
pub async fn create_first(db: &Db, kek: &Kek, ctx: &Context, organization: &str, n: &NewPerson) -> Result<Enrolled> {
    let username = n.username.trim();
    let display = n.display_name.trim();
    check_names(username, display)?;
    if n.role != Role::Administrator {
        return Err(Error::Invalid("首个账号须为管理员 / the first account must be an administrator".into()));
    }
    let password = n.password.as_deref().ok_or_else(|| Error::Invalid("请设置密码 / give a password".into()))?;
    let (password_hash, wrapped, secret) = factors(kek, username, password).await?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    db.serialise(&mut tx, medsign_store::db::lock_key("console_people", "administrators")).await?;
    let admins: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_people WHERE role = 'administrator' AND disabled = 0 AND password_hash IS NOT NULL",
    )
    .fetch_one(&mut *tx)
    .await?;
    if admins > 0 {
        return Err(Error::Forbidden(
            "已有管理员：其他账号由管理员在控制台邀请 / there is an administrator already: others are invited from the console"
                .into(),
        ));
    }
    insert(&mut tx, ctx, username, display, n.role, Some((&password_hash, &wrapped)), None).await?;
    tx.commit().await?;
    drop(_w);
    Ok(enrolled(get(db, username).await?, organization, &secret))
}

async fn insert(
    tx: &mut sqlx::AnyConnection,
    ctx: &Context,
    username: &str,
    display: &str,
    role: Role,
    factors: Option<(&str, &str)>,
    invite: Option<(&str, &str)>,
) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO console_people (username, display_name, role, password_hash, totp_wrapped, invite_hash, invite_expires, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(username)
    .bind(display)
    .bind(role.as_str())
    .bind(factors.map(|f| f.0))
    .bind(factors.map(|f| f.1))
    .bind(invite.map(|i| i.0))
    .bind(invite.map(|i| i.1))
    .bind(&ctx.actor)
    .bind(medsign_store::now_text())
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(Error::Conflict(format!("用户名 {username} 已存在 / username {username} is taken")));
        }
        other => other?,
    };
    audit::ok(
        tx,
        ctx,
        Kind::Admin,
        if factors.is_some() { "console.person.create" } else { "console.person.invite" },
        &format!("person:{username}"),
        serde_json::json!({"display_name": display, "role": role.as_str()}),
    )
    .await?;
    Ok(())
}

fn new_invite() -> Result<(Zeroizing<String>, String, String)> {
    let code = Zeroizing::new(hex::encode(rng::bytes::<16>()?));
    let expires = (Utc::now() + Duration::hours(INVITE_HOURS)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let hash = session_hash(&code);
    Ok((code, hash, expires))
}

/// Invite a person: no password, no TOTP yet — the one-time code lets them set both themselves.
pub async fn invite(db: &Db, ctx: &Context, n: &NewPerson) -> Result<Invited> {
    let username = n.username.trim();
    let display = n.display_name.trim();
    check_names(username, display)?;
    if n.password.is_some() {
        return Err(Error::Invalid(
            "受邀者自己设置密码，请不要代为设置 / the invited person sets their own password: leave it out".into(),
        ));
    }
    let (code, hash, expires) = new_invite()?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    insert(&mut tx, ctx, username, display, n.role, None, Some((&hash, &expires))).await?;
    tx.commit().await?;
    drop(_w);
    Ok(Invited { person: get(db, username).await?, invite_code: code.to_string(), expires_at: expires })
}

/// Reset a person (a lost phone, a forgotten password, a lock-out): their password, TOTP and
/// sessions end, and a new invitation lets them set both again.
pub async fn reset(db: &Db, ctx: &Context, username: &str) -> Result<Invited> {
    let (code, hash, expires) = new_invite()?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let n = sqlx::query(
        "UPDATE console_people SET password_hash = NULL, totp_wrapped = NULL, invite_hash = $1, invite_expires = $2, \
         failures = 0, locked_until = NULL, employee_no = NULL, device_id = NULL WHERE username = $3",
    )
    .bind(&hash)
    .bind(&expires)
    .bind(username)
    .execute(&mut *tx)
    .await?;
    if n.rows_affected() != 1 {
        return Err(Error::NotFound(format!("用户 {username} 不存在 / no console user {username}")));
    }
    sqlx::query("DELETE FROM console_sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
    audit::ok(&mut tx, ctx, Kind::Admin, "console.person.reset", &format!("person:{username}"), serde_json::json!({}))
        .await?;
    tx.commit().await?;
    drop(_w);
    Ok(Invited { person: get(db, username).await?, invite_code: code.to_string(), expires_at: expires })
}

/// The invited person sets their password with the one-time code and gets their TOTP secret
/// (once). A wrong or expired code changes nothing.
pub async fn enrol(
    db: &Db,
    kek: &Kek,
    ctx: &Context,
    organization: &str,
    username: &str,
    code: &str,
    password: &str,
) -> Result<Enrolled> {
    let target = format!("person:{}", username.chars().take(32).collect::<String>());
    let bad = || Error::Unauthorized("邀请码无效或已过期 / the invitation code is not valid or has expired".into());
    // a wrong or expired code costs no Argon2 work (checked again, atomically, below)
    let open: Option<String> = sqlx::query_scalar(
        "SELECT username FROM console_people WHERE username = $1 AND invite_hash = $2 AND invite_expires > $3 AND disabled = 0",
    )
    .bind(username)
    .bind(session_hash(code.trim()))
    .bind(medsign_store::secs_text(Utc::now()))
    .fetch_optional(&db.pool)
    .await?;
    if open.is_none() {
        return Err(audit::refused(db, ctx, Kind::Login, "console.enrol", &target, bad()).await);
    }
    let (password_hash, wrapped, secret) = factors(kek, username, password).await?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // the code is used once, on any instance: the update is the check
    let n = sqlx::query(
        "UPDATE console_people SET password_hash = $1, totp_wrapped = $2, invite_hash = NULL, invite_expires = NULL, last_step = 0 \
         WHERE username = $3 AND invite_hash = $4 AND invite_expires > $5 AND disabled = 0",
    )
    .bind(&password_hash)
    .bind(&wrapped)
    .bind(username)
    .bind(session_hash(code.trim()))
    .bind(medsign_store::secs_text(Utc::now()))
    .execute(&mut *tx)
    .await?;
    if n.rows_affected() != 1 {
        tx.rollback().await?;
        drop(_w);
        return Err(audit::refused(db, ctx, Kind::Login, "console.enrol", &target, bad()).await);
    }
    let ctx = Context { actor: target.clone(), ..ctx.clone() };
    audit::ok(&mut tx, &ctx, Kind::Login, "console.enrol", &target, serde_json::json!({})).await?;
    tx.commit().await?;
    drop(_w);
    Ok(enrolled(get(db, username).await?, organization, &secret))
}

/// One person.
pub async fn get(db: &Db, username: &str) -> Result<Person> {
    let r = sqlx::query("SELECT * FROM console_people WHERE username = $1")
        .bind(username)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("用户 {username} 不存在 / no console user {username}")))?;
    person(&r)
}

/// Everyone, by username.
pub async fn list(db: &Db) -> Result<Vec<Person>> {
    let rows = sqlx::query("SELECT * FROM console_people ORDER BY username").fetch_all(&db.pool).await?;
    rows.iter().map(person).collect()
}

/// How many people can log in (none: the console asks for the bootstrap token).
pub async fn count(db: &Db) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM console_people WHERE disabled = 0 AND password_hash IS NOT NULL")
        .fetch_one(&db.pool)
        .await?)
}

/// A well-formed hash no password matches, checked for unknown usernames.
const DUMMY_HASH: &str = "argon2id$19456$2$1$00000000000000000000000000000000$0000000000000000000000000000000000000000000000000000000000000000";

fn session_hash(token: &str) -> String {
    hex::encode(hash::sm3(token.as_bytes()))
}

/// Log in with the password and a current code; returns the session token (the cookie) and the
/// person. Every outcome is audited and answered alike (nothing tells whether the name exists,
/// is locked or disabled, or which factor was wrong); an attempt is counted before any work, so
/// parallel guesses on any instance all count.
pub async fn login(
    db: &Db,
    kek: &Kek,
    auth: &Authenticator,
    ctx: &Context,
    username: &str,
    password: &str,
    code: &str,
) -> Result<(Zeroizing<String>, Person)> {
    let target = format!("person:{}", username.chars().take(32).collect::<String>());
    let refused = || {
        Error::Unauthorized(
            "用户名、密码或动态码不正确，或账号已锁定 / wrong username, password or code, or the account is locked"
                .into(),
        )
    };
    let now = medsign_store::secs_text(Utc::now());
    let lock_at = (Utc::now() + Duration::minutes(LOCK_MINUTES)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // reserve the attempt: counted (a lock that ran out starts a new count), refused when locked;
    // the attempt that reaches the limit sets the lock itself, so an attempt that never finishes
    // (a dropped connection) cannot leave the count at the limit without a lock that runs out —
    // a right answer clears it again
    let reserved = {
        let _w = db.write_lock.lock().await;
        sqlx::query(
            "UPDATE console_people SET \
               failures = CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failures + 1 END, \
               locked_until = CASE WHEN locked_until IS NULL AND failures + 1 >= $3 THEN $4 ELSE NULL END \
             WHERE username = $1 AND disabled = 0 AND password_hash IS NOT NULL \
               AND (locked_until IS NULL OR locked_until <= $2) AND (locked_until IS NOT NULL OR failures < $3)",
        )
        .bind(username)
        .bind(&now)
        .bind(MAX_FAILURES)
        .bind(&lock_at)
        .execute(&db.pool)
        .await?
        .rows_affected()
            == 1
    };
    let row = match reserved {
        true => {
            sqlx::query("SELECT * FROM console_people WHERE username = $1")
                .bind(username)
                .fetch_optional(&db.pool)
                .await?
        }
        false => None,
    };
    let Some(row) = row else {
        // the same work as for a real account, so the answer's timing does not tell who exists
        auth.matches(DUMMY_HASH, password.as_bytes()).await?;
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, refused()).await);
    };
    let p = person(&row)?;
    let stored: Option<String> = row.try_get("password_hash")?;
    let password_ok = auth.matches(stored.as_deref().unwrap_or(DUMMY_HASH), password.as_bytes()).await?;
    let wrapped: Option<String> = row.try_get("totp_wrapped")?;
    let secret = match wrapped {
        Some(w) => kek.unwrap(
            &hex::decode(w).map_err(|_| Error::internal("stored TOTP secret is corrupt"))?,
            &totp_aad(username),
        )?,
        None => Zeroizing::new(Vec::new()),
    };
    let now_step = (Utc::now().timestamp() / 30) as u64;
    let last: i64 = row.try_get("last_step")?;
    let step = code
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|_| code.trim().len() == 6 && !secret.is_empty())
        .and_then(|c| [now_step - 1, now_step, now_step + 1].into_iter().find(|s| hash::totp(&secret, *s) == c))
        .filter(|s| *s as i64 > last);
    let Some(step) = step.filter(|_| password_ok) else {
        // the attempt stays counted (and at the limit the reservation locked the account)
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, refused()).await);
    };
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // the code's step is claimed here: the same code cannot log in twice, on any instance
    let claimed = sqlx::query(
        "UPDATE console_people SET last_step = $1, failures = 0, locked_until = NULL, last_login_at = $2 \
         WHERE username = $3 AND last_step < $1 AND disabled = 0",
    )
    .bind(step as i64)
    .bind(medsign_store::now_text())
    .bind(username)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        tx.rollback().await?;
        drop(_w);
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, refused()).await);
    }
    let token = open_session(&mut tx, ctx, &p, serde_json::json!({"role": p.role.as_str()})).await?;
    tx.commit().await?;
    Ok((token, Person { last_login_at: Some(medsign_store::now_text()), locked_until: None, ..p }))
}

/// A new session for `p` in `tx` (the cookie's token), and its audit entry.
async fn open_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ctx: &Context,
    p: &Person,
    details: serde_json::Value,
) -> Result<Zeroizing<String>> {
    let token = Zeroizing::new(format!("cs_{}", hex::encode(rng::bytes::<32>()?)));
    let expires = (Utc::now() + Duration::hours(SESSION_HOURS)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let now = medsign_store::secs_text(Utc::now());
    sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1").bind(&now).execute(&mut **tx).await?;
    sqlx::query("INSERT INTO console_sessions (token_hash, username, expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(session_hash(&token))
        .bind(&p.username)
        .bind(&expires)
        .bind(medsign_store::now_text())
        .execute(&mut **tx)
        .await?;
    let target = format!("person:{}", p.username);
    let ctx = Context { actor: target.clone(), ..ctx.clone() };
    audit::ok(tx, &ctx, Kind::Login, "console.login", &target, details).await?;
    Ok(token)
}

/// Link a person to a staff member (whose phone may then log them in by scanning), or unlink
/// (None). A staff member logs in as one person at most. Audited.
pub async fn link_staff(db: &Db, ctx: &Context, username: &str, employee_no: Option<&str>) -> Result<Person> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let mut device: Option<String> = None;
    if let Some(no) = employee_no {
        let staff: Option<String> =
            sqlx::query_scalar("SELECT employee_no FROM users WHERE employee_no = $1 AND deleted_at IS NULL")
                .bind(no)
                .fetch_optional(&mut *tx)
                .await?;
        let other: Option<String> =
            sqlx::query_scalar("SELECT username FROM console_people WHERE employee_no = $1 AND username <> $2")
                .bind(no)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
        device = sqlx::query_scalar(
            "SELECT id FROM devices WHERE employee_no = $1 AND status = 'active' ORDER BY created_at DESC LIMIT 1",
        )
        .bind(no)
        .fetch_optional(&mut *tx)
        .await?;
        let refusal = match (staff, other, &device) {
            (None, _, _) => Some(Error::NotFound(format!("工号 {no} 不存在 / no staff member {no}"))),
            (_, Some(o), _) => Some(Error::Conflict(format!(
                "工号 {no} 已关联控制台账号 {o} / staff member {no} already logs in as {o}"
            ))),
            (_, _, None) => Some(Error::Conflict(format!(
                "工号 {no} 尚未绑定手机，请先绑定 / staff member {no} has no bound phone: bind it first"
            ))),
            _ => None,
        };
        if let Some(e) = refusal {
            tx.rollback().await?;
            return Err(e);
        }
    }
    // the phone bound now is the one that may log in: another phone bound to this staff number
    // later (an activation code, which apps and operators can issue) does not inherit it
    let n = sqlx::query("UPDATE console_people SET employee_no = $1, device_id = $2 WHERE username = $3")
        .bind(employee_no)
        .bind(&device)
        .bind(username)
        .execute(&mut *tx)
        .await?;
    if n.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(Error::NotFound(format!("用户 {username} 不存在 / no console user {username}")));
    }
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "console.person.link",
        &format!("person:{username}"),
        serde_json::json!({"employee_no": employee_no, "device": device}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    get(db, username).await
}

/// Remember which browser asked for console login ticket `ticket_id`: the SM3 of its secret
/// (kept in an HttpOnly cookie), needed to collect the session.
pub async fn qr_login_started(db: &Db, ticket_id: &str, browser_secret: &str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let hour_ago = medsign_store::secs_text(Utc::now() - Duration::hours(1));
    sqlx::query("DELETE FROM console_qr_logins WHERE created_at < $1").bind(&hour_ago).execute(&db.pool).await?;
    // console login tickets nobody scanned (they hold nothing; a scanned one keeps its signed flow)
    sqlx::query("DELETE FROM login_tickets WHERE app_id = 'console' AND state = 'waiting' AND expires_at < $1")
        .bind(&hour_ago)
        .execute(&db.pool)
        .await?;
    // the cap is counted and the login recorded under one lock on every instance: requests
    // arriving together cannot all see room for one more
    let mut tx = db.pool.begin().await?;
    db.serialise(&mut tx, medsign_store::db::lock_key("console-qr", "waiting")).await?;
    if waiting_in(&mut tx).await? >= MAX_WAITING_QR_LOGINS {
        return Err(too_many_qr_logins());
    }
    sqlx::query("INSERT INTO console_qr_logins (ticket_id, browser_hash, used, created_at) VALUES ($1, $2, 0, $3)")
        .bind(ticket_id)
        .bind(session_hash(browser_secret))
        .bind(medsign_store::secs_text(Utc::now()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// QR logins waiting (asked for in the last two minutes, a ticket's life) beyond which more are
/// refused: nobody logged in yet asks for them.
pub const MAX_WAITING_QR_LOGINS: i64 = 20;

/// The refusal when [`MAX_WAITING_QR_LOGINS`] wait.
pub fn too_many_qr_logins() -> Error {
    Error::TooManyRequests(
        "扫码登录请求过多，请稍后再试或用密码登录 / too many QR logins waiting: try again shortly, or log in with the password"
            .into(),
    )
}

async fn waiting_in(c: &mut sqlx::AnyConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM console_qr_logins WHERE created_at >= $1 AND used = 0")
        .bind(medsign_store::secs_text(Utc::now() - Duration::seconds(120)))
        .fetch_one(&mut *c)
        .await?)
}

/// QR logins asked for in the last two minutes (how long a console login ticket lives).
pub async fn qr_logins_waiting(db: &Db) -> Result<i64> {
    waiting_in(&mut *db.pool.acquire().await?).await
}

/// Is `browser_secret` the one that asked for `ticket_id`?
pub async fn qr_login_asked_by(db: &Db, ticket_id: &str, browser_secret: &str) -> Result<bool> {
    let stored: Option<String> = sqlx::query_scalar("SELECT browser_hash FROM console_qr_logins WHERE ticket_id = $1")
        .bind(ticket_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(stored.is_some_and(|h| hash::ct_eq(h.as_bytes(), session_hash(browser_secret).as_bytes())))
}

/// The phone of `employee_no` confirmed console login ticket `ticket_id` (checked by the caller):
/// open a session for the person linked to that staff member, once per ticket, only for the
/// browser that asked. Refusals are audited.
pub async fn qr_login_finish(
    db: &Db,
    ctx: &Context,
    ticket_id: &str,
    browser_secret: &str,
    employee_no: &str,
    device_id: &str,
) -> Result<(Zeroizing<String>, Person)> {
    let target = format!("user:{employee_no}");
    let refuse = |m: &str| Error::Forbidden(m.to_string());
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let claimed =
        sqlx::query("UPDATE console_qr_logins SET used = 1 WHERE ticket_id = $1 AND browser_hash = $2 AND used = 0")
            .bind(ticket_id)
            .bind(session_hash(browser_secret))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    // the linked person, enrolled, enabled, not locked out; the phone that scanned is the one
    // bound when the link was made, still bound; the staff member not deleted
    let row = match claimed {
        true => {
            sqlx::query(
                "SELECT p.* FROM console_people p \
                 JOIN devices d ON d.id = p.device_id AND d.status = 'active' AND d.employee_no = p.employee_no \
                 JOIN users u ON u.employee_no = p.employee_no AND u.deleted_at IS NULL \
                 WHERE p.employee_no = $1 AND p.device_id = $2 AND p.disabled = 0 AND p.password_hash IS NOT NULL \
                   AND (p.locked_until IS NULL OR p.locked_until <= $3)",
            )
            .bind(employee_no)
            .bind(device_id)
            .bind(medsign_store::secs_text(Utc::now()))
            .fetch_optional(&mut *tx)
            .await?
        }
        false => None,
    };
    let Some(row) = row else {
        tx.rollback().await?;
        drop(_w);
        let e = match claimed {
            false => refuse(
                "此二维码登录已使用或不属于此浏览器 / this QR login was used, or was not asked for by this browser",
            ),
            true => refuse(
                "此手机没有可用的控制台账号（未关联、换过手机或账号停用），请管理员在“控制台账号”中关联 / this phone has no usable console account (not linked, rebound since, or the account is disabled): an administrator links it under Console accounts",
            ),
        };
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, e).await);
    };
    let p = person(&row)?;
    sqlx::query("UPDATE console_people SET last_login_at = $1 WHERE username = $2")
        .bind(medsign_store::now_text())
        .bind(&p.username)
        .execute(&mut *tx)
        .await?;
    let token = open_session(
        &mut tx,
        ctx,
        &p,
        serde_json::json!({"role": p.role.as_str(), "via": "phone", "employee_no": employee_no, "ticket": &ticket_id[..ticket_id.len().min(11)]}),
    )
    .await?;
    tx.commit().await?;
    Ok((token, Person { last_login_at: Some(medsign_store::now_text()), ..p }))
}

/// The person of a session cookie (unexpired, not disabled).
pub async fn session(db: &Db, token: &str) -> Result<Person> {
    let bad = || Error::Unauthorized("请重新登录 / please log in again".into());
    if !token.starts_with("cs_") || token.len() != 67 {
        return Err(bad());
    }
    let r = sqlx::query(
        "SELECT p.*, s.expires_at AS session_expires FROM console_sessions s JOIN console_people p ON p.username = s.username \
         WHERE s.token_hash = $1",
    )
    .bind(session_hash(token))
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(bad)?;
    let p = person(&r)?;
    if p.disabled || medsign_store::is_past(&r.try_get::<String, _>("session_expires")?) {
        return Err(bad());
    }
    Ok(p)
}

/// End a session.
pub async fn logout(db: &Db, ctx: &Context, token: &str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
        .bind(session_hash(token))
        .execute(&mut *tx)
        .await?;
    audit::ok(&mut tx, ctx, Kind::Login, "console.logout", &ctx.actor, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Disable or enable a person; disabling ends their sessions. The last enabled administrator
/// stays enabled.
pub async fn set_disabled(db: &Db, ctx: &Context, username: &str, disabled: bool) -> Result<Person> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    db.serialise(&mut tx, medsign_store::db::lock_key("console_people", "administrators")).await?;
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM console_people WHERE username = $1")
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
    let role = role.ok_or_else(|| Error::NotFound(format!("用户 {username} 不存在 / no console user {username}")))?;
    if disabled && role == "administrator" {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM console_people WHERE role = 'administrator' AND disabled = 0 AND password_hash IS NOT NULL AND username <> $1",
        )
        .bind(username)
        .fetch_one(&mut *tx)
        .await?;
        if others == 0 {
            return Err(Error::Conflict(
                "不能停用最后一位管理员 / the last enabled administrator cannot be disabled".into(),
            ));
        }
    }
    // disabling also ends the phone link: enabling again needs an administrator to link anew
    sqlx::query(
        "UPDATE console_people SET disabled = $1, \
         employee_no = CASE WHEN $1 = 1 THEN NULL ELSE employee_no END, device_id = CASE WHEN $1 = 1 THEN NULL ELSE device_id END \
         WHERE username = $2",
    )
    .bind(disabled as i64)
        .bind(username)
        .execute(&mut *tx)
        .await?;
    if disabled {
        sqlx::query("DELETE FROM console_sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
    }
    let action = if disabled { "console.person.disable" } else { "console.person.enable" };
    audit::ok(&mut tx, ctx, Kind::Admin, action, &format!("person:{username}"), serde_json::json!({})).await?;
    tx.commit().await?;
    drop(_w);
    get(db, username).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_testkit::db::backends;

    fn code(secret_b32: &str, step: u64) -> String {
        let mut bits = 0u64;
        let mut n = 0;
        let mut bytes = Vec::new();
        for c in secret_b32.bytes() {
            let v = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".iter().position(|x| *x == c).unwrap() as u64;
            bits = (bits << 5) | v;
            n += 5;
            if n >= 8 {
                bytes.push((bits >> (n - 8)) as u8);
                n -= 8;
            }
        }
        format!("{:06}", hash::totp(&bytes, step))
    }

    #[test]
    fn base32_is_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(&[0xff; 20]).len(), 32);
    }

    /// The first administrator from the bootstrap token (and no second one that way); others are
    /// invited and set their own factors with a one-time code; a person logs in with password and
    /// code, each code once; wrong attempts — parallel ones too — lock the account, and every
    /// refusal reads alike; a reset invites again; the last administrator stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_and_code_once_then_locked_out() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let auth = Authenticator::default();
            let ctx = Context::cli();
            let first = |u: &str, pw: Option<&str>| NewPerson {
                username: u.into(),
                display_name: "王工".into(),
                role: Role::Administrator,
                password: pw.map(str::to_string),
            };
            let e = create_first(&db, &kek, &ctx, "某县人民医院", &first("wang.it", Some("correct horse battery")))
                .await
                .unwrap();
            assert!(e.otpauth_uri.starts_with("otpauth://totp/medsign-"), "{}", e.otpauth_uri);
            let again = create_first(&db, &kek, &ctx, "x", &first("second.admin", Some("correct horse battery"))).await;
            assert!(
                matches!(again, Err(Error::Forbidden(_))),
                "the bootstrap token makes the first administrator only"
            );
            for (u, pw) in [("Ab", "correct horse battery"), ("ok.name", "short"), ("ok.name", "aaaaaaaaaaaa")] {
                assert!(matches!(
                    create_first(&db, &kek, &ctx, "x", &first(u, Some(pw))).await,
                    Err(Error::Invalid(_) | Error::Forbidden(_))
                ));
            }
            let step = (Utc::now().timestamp() / 30) as u64;
            let now_code = code(&e.totp_secret, step);
            // every refusal reads the same
            let msgs: Vec<String> = futures_refusals(
                &db,
                &kek,
                &auth,
                &ctx,
                &[
                    ("wang.it", "wrong password!", now_code.as_str()),
                    ("nobody", "correct horse battery", now_code.as_str()),
                ],
            )
            .await;
            assert!(msgs.iter().all(|m| m == &msgs[0]), "{msgs:?}");
            let (token, p) =
                login(&db, &kek, &auth, &ctx, "wang.it", "correct horse battery", &now_code).await.unwrap();
            assert_eq!(p.role, Role::Administrator);
            assert_eq!(session(&db, &token).await.unwrap().username, "wang.it");
            // the same code again: refused (replay), however right the password
            assert!(login(&db, &kek, &auth, &ctx, "wang.it", "correct horse battery", &now_code).await.is_err());
            logout(&db, &ctx, &token).await.unwrap();
            assert!(session(&db, &token).await.is_err());
            assert!(session(&db, "cs_forged").await.is_err());

            // an invited operator sets their own factors once, with the code
            let o = NewPerson {
                username: "li.ops".into(),
                display_name: "李".into(),
                role: Role::Operator,
                password: None,
            };
            let inv = invite(&db, &ctx, &o).await.unwrap();
            assert!(inv.person.invited);
            assert!(matches!(
                invite(&db, &ctx, &NewPerson { password: Some("x".repeat(12)), ..o.clone() }).await,
                Err(Error::Invalid(_))
            ));
            assert!(login(&db, &kek, &auth, &ctx, "li.ops", "", "000000").await.is_err(), "no login before enrolment");
            assert!(enrol(&db, &kek, &ctx, "x", "li.ops", "00", "another good pass").await.is_err());
            let oe = enrol(&db, &kek, &ctx, "x", "li.ops", &inv.invite_code, "another good pass").await.unwrap();
            assert!(
                enrol(&db, &kek, &ctx, "x", "li.ops", &inv.invite_code, "a third good pass").await.is_err(),
                "once"
            );
            // eight wrong guesses at once: the account locks, and no more than the limit were tried
            let next = code(&oe.totp_secret, step + 1);
            let guesses: Vec<_> =
                (0..8).map(|_| login(&db, &kek, &auth, &ctx, "li.ops", "wrong password!", &next)).collect();
            for r in futures_util::future::join_all(guesses).await {
                assert!(r.is_err());
            }
            let failures: i64 = sqlx::query_scalar("SELECT failures FROM console_people WHERE username = 'li.ops'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(failures, MAX_FAILURES, "every guess counted before its work, none past the limit");
            assert!(
                get(&db, "li.ops").await.unwrap().locked_until.is_some(),
                "locked by the attempt that reached the limit"
            );
            assert!(login(&db, &kek, &auth, &ctx, "li.ops", "another good pass", &next).await.is_err(), "locked");
            // when the lock has run out, the count starts again and the right answer logs in
            sqlx::query("UPDATE console_people SET locked_until = '2000-01-01T00:00:00Z' WHERE username = 'li.ops'")
                .execute(&db.pool)
                .await
                .unwrap();
            login(&db, &kek, &auth, &ctx, "li.ops", "another good pass", &next).await.unwrap();
            let p = get(&db, "li.ops").await.unwrap();
            assert!(p.locked_until.is_none());
            // an invited administrator who cannot log in yet does not count as one
            let ghost = NewPerson {
                username: "ghost.admin".into(),
                display_name: "G".into(),
                role: Role::Administrator,
                password: None,
            };
            invite(&db, &ctx, &ghost).await.unwrap();
            assert_eq!(administrators(&db).await.unwrap(), 1);
            // a reset unlocks and invites again (the old password no longer works)
            let again = reset(&db, &ctx, "li.ops").await.unwrap();
            let oe2 = enrol(&db, &kek, &ctx, "x", "li.ops", &again.invite_code, "a brand new pass").await.unwrap();
            let (t2, _) = login(&db, &kek, &auth, &ctx, "li.ops", "a brand new pass", &code(&oe2.totp_secret, step))
                .await
                .unwrap();
            // the last administrator stays enabled; the operator can be disabled, their session ends
            assert!(matches!(set_disabled(&db, &ctx, "wang.it", true).await, Err(Error::Conflict(_))));
            set_disabled(&db, &ctx, "li.ops", true).await.unwrap();
            assert!(session(&db, &t2).await.is_err());
            assert_eq!(count(&db).await.unwrap(), 1);
            let actions: Vec<String> = sqlx::query_scalar(
                "SELECT action || ':' || outcome FROM audit_log WHERE action LIKE 'console.%' ORDER BY seq",
            )
            .fetch_all(&db.pool)
            .await
            .unwrap();
            for a in ["console.login:ok", "console.person.invite:ok", "console.enrol:ok", "console.person.reset:ok"] {
                assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
            }
        }
    }

    async fn futures_refusals(
        db: &Db,
        kek: &Kek,
        auth: &Authenticator,
        ctx: &Context,
        tries: &[(&str, &str, &str)],
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (u, p, c) in tries {
            out.push(login(db, kek, auth, ctx, u, p, c).await.err().unwrap().to_string());
        }
        out
    }

    /// Scan-to-login: only a staff member an administrator linked (one account each, an
    /// existing staff member) logs in, only through the browser that asked, once per ticket; a
    /// disabled or not yet enrolled person does not. Audited with how.
    #[tokio::test]
    async fn a_linked_phone_logs_in_once_for_the_browser_that_asked() {
        for (_d, db) in backends().await {
            let (kek, ctx) = (Kek::generate().unwrap(), Context::cli());
            let first = NewPerson {
                username: "wang.it".into(),
                display_name: "王工".into(),
                role: Role::Administrator,
                password: Some("correct horse battery".into()),
            };
            create_first(&db, &kek, &ctx, "某县人民医院", &first).await.unwrap();
            let staff = |no: &str| -> crate::users::NewUser {
                serde_json::from_value(serde_json::json!({"employee_no": no, "name": format!("医生{no}")})).unwrap()
            };
            crate::users::create_many(&db, &kek, &ctx, &[staff("1001"), staff("1002")]).await.unwrap();
            let bind = |id: &'static str, no: &'static str| {
                let db = db.clone();
                async move {
                    sqlx::query("UPDATE devices SET status = 'unbound' WHERE employee_no = $1")
                        .bind(no)
                        .execute(&db.pool)
                        .await
                        .unwrap();
                    sqlx::query("INSERT INTO devices (id, employee_no, name, status, created_at) VALUES ($1, $2, 'phone', 'active', $3)")
                        .bind(id)
                        .bind(no)
                        .bind(medsign_store::now_text())
                        .execute(&db.pool)
                        .await
                        .unwrap();
                }
            };
            assert!(
                matches!(link_staff(&db, &ctx, "wang.it", Some("1001")).await, Err(Error::Conflict(_))),
                "no phone yet"
            );
            bind("dev_a", "1001").await;
            bind("dev_b", "1002").await;
            assert!(matches!(link_staff(&db, &ctx, "wang.it", Some("9999")).await, Err(Error::NotFound(_))));
            assert!(matches!(link_staff(&db, &ctx, "nobody", Some("1001")).await, Err(Error::NotFound(_))));
            assert_eq!(
                link_staff(&db, &ctx, "wang.it", Some("1001")).await.unwrap().employee_no.as_deref(),
                Some("1001")
            );
            invite(
                &db,
                &ctx,
                &NewPerson {
                    username: "li.ops".into(),
                    display_name: "李工".into(),
                    role: Role::Operator,
                    password: None,
                },
            )
            .await
            .unwrap();
            assert!(
                matches!(link_staff(&db, &ctx, "li.ops", Some("1001")).await, Err(Error::Conflict(_))),
                "one account each"
            );
            link_staff(&db, &ctx, "li.ops", Some("1002")).await.unwrap();
            let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));

            qr_login_started(&db, "lt_a", &a).await.unwrap();
            assert_eq!(qr_logins_waiting(&db).await.unwrap(), 1);
            assert!(qr_login_asked_by(&db, "lt_a", &a).await.unwrap());
            assert!(!qr_login_asked_by(&db, "lt_a", &b).await.unwrap());
            assert!(!qr_login_asked_by(&db, "lt_x", &a).await.unwrap());
            // another browser's secret collects nothing; nor does another phone of 1001
            assert!(matches!(qr_login_finish(&db, &ctx, "lt_a", &b, "1001", "dev_a").await, Err(Error::Forbidden(_))));
            qr_login_started(&db, "lt_w", &c).await.unwrap();
            assert!(matches!(
                qr_login_finish(&db, &ctx, "lt_w", &c, "1001", "dev_other").await,
                Err(Error::Forbidden(_))
            ));
            let (token, p) = qr_login_finish(&db, &ctx, "lt_a", &a, "1001", "dev_a").await.unwrap();
            assert_eq!(p.username, "wang.it");
            assert_eq!(session(&db, &token).await.unwrap().username, "wang.it");
            let last = audit::recent(&db, 1).await.unwrap().remove(0);
            assert_eq!((last.action.as_str(), last.actor.as_str()), ("console.login", "person:wang.it"));
            assert!(last.details.contains("\"via\":\"phone\""), "{}", last.details);
            // once per ticket
            assert!(matches!(qr_login_finish(&db, &ctx, "lt_a", &a, "1001", "dev_a").await, Err(Error::Forbidden(_))));
            // invited, not enrolled: no session
            qr_login_started(&db, "lt_b", &b).await.unwrap();
            assert!(matches!(qr_login_finish(&db, &ctx, "lt_b", &b, "1002", "dev_b").await, Err(Error::Forbidden(_))));
            // someone binds another phone to 1001 (an activation code): it does not log in, nor
            // does the old one, now unbound
            bind("dev_thief", "1001").await;
            for (t, dev) in [("lt_t1", "dev_thief"), ("lt_t2", "dev_a")] {
                qr_login_started(&db, t, &a).await.unwrap();
                assert!(
                    matches!(qr_login_finish(&db, &ctx, t, &a, "1001", dev).await, Err(Error::Forbidden(_))),
                    "{dev}"
                );
            }
            // linked again (to the phone bound now), that phone logs in; a reset ends the link
            link_staff(&db, &ctx, "wang.it", Some("1001")).await.unwrap();
            assert!(session(&db, &token).await.is_ok());
            qr_login_started(&db, "lt_c", &c).await.unwrap();
            qr_login_finish(&db, &ctx, "lt_c", &c, "1001", "dev_thief").await.unwrap();
            assert!(reset(&db, &ctx, "wang.it").await.unwrap().person.employee_no.is_none(), "a reset unlinks");
            // the cap holds for logins asked at the same moment: counted and recorded under one lock
            let waiting = qr_logins_waiting(&db).await.unwrap();
            let asks = (0..2 * MAX_WAITING_QR_LOGINS).map(|i| {
                let db = db.clone();
                tokio::spawn(async move { qr_login_started(&db, &format!("lt_p{i}"), &"d".repeat(64)).await })
            });
            let mut refused = 0;
            for a in asks.collect::<Vec<_>>() {
                match a.await.unwrap() {
                    Ok(()) => {}
                    Err(Error::TooManyRequests(_)) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(qr_logins_waiting(&db).await.unwrap(), MAX_WAITING_QR_LOGINS);
            assert_eq!(refused, MAX_WAITING_QR_LOGINS + waiting);
        }
    }
}
