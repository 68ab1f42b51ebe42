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
//! lasts [`SESSION_HOURS`] and ends at logout, when the person is disabled, or at a password change.

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
    /// locked after wrong passwords or codes, until
    pub locked_until: Option<String>,
    /// created by (`app:…` for the bootstrap token, `person:…`)
    pub created_by: String,
    /// created
    pub created_at: String,
    /// last successful login
    pub last_login_at: Option<String>,
}

fn person(r: &sqlx::any::AnyRow) -> Result<Person> {
    Ok(Person {
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        role: Role::parse(&r.try_get::<String, _>("role")?)?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        locked_until: r.try_get("locked_until")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        last_login_at: r.try_get("last_login_at")?,
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
    /// 10–128 characters, not one character repeated
    pub password: String,
}

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

/// Create a person (the bootstrap token creates the first; then administrators). Returns the TOTP
/// secret once.
pub async fn create(db: &Db, kek: &Kek, ctx: &Context, organization: &str, n: &NewPerson) -> Result<Enrolled> {
    let username = n.username.trim();
    if !(3..=32).contains(&username.len())
        || !username.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
    {
        return Err(Error::Invalid(
            "用户名须为 3–32 个小写字母、数字或 . _ - / the username must be 3-32 of a-z 0-9 . _ -".into(),
        ));
    }
    let display = n.display_name.trim();
    if display.is_empty() || display.chars().count() > 64 {
        return Err(Error::Invalid("姓名须为 1–64 个字符 / the name must be 1-64 characters".into()));
    }
    check_password(&n.password)?;
    let password_hash = {
        let p = Zeroizing::new(n.password.clone().into_bytes());
        tokio::task::spawn_blocking(move || hash_secret(&p))
            .await
            .map_err(|e| Error::internal_from("people::create", e))??
    };
    let secret = Zeroizing::new(rng::bytes::<20>()?.to_vec());
    let wrapped = hex::encode(kek.wrap(&secret, &totp_aad(username))?);
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO console_people (username, display_name, role, password_hash, totp_wrapped, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(username)
    .bind(display)
    .bind(n.role.as_str())
    .bind(&password_hash)
    .bind(&wrapped)
    .bind(&ctx.actor)
    .bind(&now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(Error::Conflict(format!("用户名 {username} 已存在 / username {username} is taken")));
        }
        other => other?,
    };
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "console.person.create",
        &format!("person:{username}"),
        serde_json::json!({"display_name": display, "role": n.role.as_str()}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    let b32 = base32(&secret);
    let label = |v: &str| v.replace(['%', ':', '/', '?', '&', '#', ' '], "_");
    let otpauth_uri = format!(
        "otpauth://totp/medsign:{}?secret={b32}&issuer=medsign%20{}&algorithm=SHA1&digits=6&period=30",
        label(username),
        label(organization)
    );
    Ok(Enrolled { person: get(db, username).await?, totp_secret: b32, otpauth_uri })
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
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM console_people WHERE disabled = 0").fetch_one(&db.pool).await?)
}

/// A well-formed hash no password matches, checked for unknown usernames.
const DUMMY_HASH: &str = "argon2id$19456$2$1$00000000000000000000000000000000$0000000000000000000000000000000000000000000000000000000000000000";

fn session_hash(token: &str) -> String {
    hex::encode(hash::sm3(token.as_bytes()))
}

/// Log in with the password and a current code; returns the session token (the cookie) and the
/// person. Every outcome is audited; wrong ones count towards the lock.
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
    let refused =
        |why: &str| Error::Unauthorized(format!("用户名、密码或动态码不正确 / wrong username, password or code{why}"));
    let row =
        sqlx::query("SELECT * FROM console_people WHERE username = $1").bind(username).fetch_optional(&db.pool).await?;
    let Some(row) = row else {
        // the same work as for a real account, so the answer's timing does not tell who exists
        auth.matches(DUMMY_HASH, password.as_bytes()).await?;
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, refused("")).await);
    };
    let p = person(&row)?;
    if p.disabled {
        let e = Error::Unauthorized("此账号已停用 / this account is disabled".into());
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, e).await);
    }
    if let Some(until) = &p.locked_until
        && !medsign_store::is_past(until)
    {
        let e = Error::Unauthorized(format!(
            "错误次数过多，账号已锁定至 {until} / too many wrong attempts: locked until {until}"
        ));
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, e).await);
    }
    let stored: String = row.try_get("password_hash")?;
    let password_ok = auth.matches(&stored, password.as_bytes()).await?;
    let wrapped: String = row.try_get("totp_wrapped")?;
    let secret = kek.unwrap(
        &hex::decode(wrapped).map_err(|_| Error::internal("stored TOTP secret is corrupt"))?,
        &totp_aad(username),
    )?;
    let now_step = (Utc::now().timestamp() / 30) as u64;
    let step = code
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|_| code.trim().len() == 6)
        .and_then(|c| [now_step - 1, now_step, now_step + 1].into_iter().find(|s| hash::totp(&secret, *s) == c));
    let last: i64 = row.try_get("last_step")?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let fresh = step.filter(|s| *s as i64 > last);
    let (Some(step), true) = (fresh, password_ok) else {
        // count it (and lock at the limit) in one statement: parallel wrong guesses all count
        let lock_at = (Utc::now() + Duration::minutes(LOCK_MINUTES)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        sqlx::query(
            "UPDATE console_people SET failures = failures + 1, \
             locked_until = CASE WHEN failures + 1 >= $1 THEN $2 ELSE locked_until END WHERE username = $3",
        )
        .bind(MAX_FAILURES)
        .bind(&lock_at)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        drop(_w);
        let why =
            if password_ok && step.is_some() { "（动态码已用过 / the code was used already）" } else { "" };
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, refused(why)).await);
    };
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
        return Err(audit::refused(db, ctx, Kind::Login, "console.login", &target, refused("")).await);
    }
    let token = Zeroizing::new(format!("cs_{}", hex::encode(rng::bytes::<32>()?)));
    let expires = (Utc::now() + Duration::hours(SESSION_HOURS)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sqlx::query("INSERT INTO console_sessions (token_hash, username, expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(session_hash(&token))
        .bind(username)
        .bind(&expires)
        .bind(medsign_store::now_text())
        .execute(&mut *tx)
        .await?;
    let ctx = Context { actor: target.clone(), ..ctx.clone() };
    audit::ok(&mut tx, &ctx, Kind::Login, "console.login", &target, serde_json::json!({"role": p.role.as_str()}))
        .await?;
    tx.commit().await?;
    Ok((token, Person { last_login_at: Some(medsign_store::now_text()), locked_until: None, ..p }))
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
            "SELECT COUNT(*) FROM console_people WHERE role = 'administrator' AND disabled = 0 AND username <> $1",
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
    sqlx::query("UPDATE console_people SET disabled = $1 WHERE username = $2")
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

    /// A person logs in with password and code only, each code once; wrong attempts lock the
    /// account; a session ends at logout or when the person is disabled; the last administrator
    /// stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_and_code_once_then_locked_out() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let auth = Authenticator::default();
            let ctx = Context::cli();
            let n = NewPerson {
                username: "wang.it".into(),
                display_name: "王工".into(),
                role: Role::Administrator,
                password: "correct horse battery".into(),
            };
            let e = create(&db, &kek, &ctx, "某县人民医院", &n).await.unwrap();
            assert!(e.otpauth_uri.starts_with("otpauth://totp/medsign:wang.it?secret="), "{}", e.otpauth_uri);
            assert!(matches!(create(&db, &kek, &ctx, "x", &n).await, Err(Error::Conflict(_))));
            for bad in
                [("Ab", "王", "correct horse battery"), ("ok.name", "王", "short"), ("ok.name", "王", "aaaaaaaaaaaa")]
            {
                let p = NewPerson {
                    username: bad.0.into(),
                    display_name: bad.1.into(),
                    role: Role::Operator,
                    password: bad.2.into(),
                };
                assert!(matches!(create(&db, &kek, &ctx, "x", &p).await, Err(Error::Invalid(_))), "{bad:?}");
            }
            let step = (Utc::now().timestamp() / 30) as u64;
            let now_code = code(&e.totp_secret, step);
            // wrong password with the right code, right password with a wrong code: refused
            assert!(login(&db, &kek, &auth, &ctx, "wang.it", "wrong password!", &now_code).await.is_err());
            assert!(
                login(&db, &kek, &auth, &ctx, "wang.it", "correct horse battery", "000000").await.is_err()
                    || now_code == "000000"
            );
            assert!(login(&db, &kek, &auth, &ctx, "nobody", "correct horse battery", &now_code).await.is_err());
            let (token, p) =
                login(&db, &kek, &auth, &ctx, "wang.it", "correct horse battery", &now_code).await.unwrap();
            assert_eq!(p.role, Role::Administrator);
            assert_eq!(session(&db, &token).await.unwrap().username, "wang.it");
            // the same code again: refused (replay), however right the password
            let again = login(&db, &kek, &auth, &ctx, "wang.it", "correct horse battery", &now_code).await.unwrap_err();
            assert!(again.to_string().contains("used already"), "{again}");
            logout(&db, &ctx, &token).await.unwrap();
            assert!(session(&db, &token).await.is_err());
            assert!(session(&db, "cs_forged").await.is_err());
            // five wrong in a row lock the account, even for the right password and a new code
            let next = code(&e.totp_secret, step + 1);
            for _ in 0..MAX_FAILURES {
                assert!(login(&db, &kek, &auth, &ctx, "wang.it", "wrong password!", &next).await.is_err());
            }
            let locked = login(&db, &kek, &auth, &ctx, "wang.it", "correct horse battery", &next).await.unwrap_err();
            assert!(locked.to_string().contains("locked"), "{locked}");
            // the last administrator stays enabled; another can be disabled, and their session ends
            assert!(matches!(set_disabled(&db, &ctx, "wang.it", true).await, Err(Error::Conflict(_))));
            let o = NewPerson {
                username: "li.ops".into(),
                display_name: "李".into(),
                role: Role::Operator,
                password: "another good pass".into(),
            };
            let oe = create(&db, &kek, &ctx, "x", &o).await.unwrap();
            let (t2, _) = login(&db, &kek, &auth, &ctx, "li.ops", "another good pass", &code(&oe.totp_secret, step))
                .await
                .unwrap();
            set_disabled(&db, &ctx, "li.ops", true).await.unwrap();
            assert!(session(&db, &t2).await.is_err());
            assert_eq!(count(&db).await.unwrap(), 1);
            let actions: Vec<String> = sqlx::query_scalar(
                "SELECT action || ':' || outcome FROM audit_log WHERE action LIKE 'console.%' ORDER BY seq",
            )
            .fetch_all(&db.pool)
            .await
            .unwrap();
            assert!(actions.contains(&"console.login:ok".to_string()), "{actions:?}");
            assert!(actions.iter().filter(|a| a.starts_with("console.login:refused")).count() >= 7, "{actions:?}");
        }
    }
}
