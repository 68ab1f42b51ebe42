//! Integration apps (R7): hospital systems authenticate as an app with `app_id.secret`. The
//! secret is shown once and stored as an Argon2id hash; successful checks are cached in memory
//! (keyed by SM3 of the token) so the hash cost is paid once per app and process, not per request.
//!
//! Or they sign each request with HMAC-SM3 (docs/integration.md) under the key
//! `K = HMAC-SM3(secret, "medsign/api-hmac/v1")`, which the server keeps wrapped under the KEK
//! (so the database never holds anything that works as a bearer token):
//! ```text
//! X-Signature = hex(HMAC-SM3(K, METHOD "\n" PATH "\n" QUERY "\n" X-Timestamp "\n" X-Nonce "\n" hex(SM3(body))))
//! ```
//! with `X-Timestamp` in Unix seconds within ±300 s of the server's clock and `X-Nonce` (8–64 of
//! `A-Z a-z 0-9 _ -`) never repeated by the app within that window.

use medsign_crypto::wrap::Kek;
use medsign_crypto::{hash, rng};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::Serialize;
use sqlx::Row;
use std::{collections::HashMap, sync::Mutex, time::Instant};
use zeroize::Zeroizing;

/// What an app may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Scope {
    /// read users
    #[serde(rename = "users:read")]
    UsersRead,
    /// create and change users
    #[serde(rename = "users:write")]
    UsersWrite,
    /// certificates
    #[serde(rename = "certs")]
    Certs,
    /// start and manage signings
    #[serde(rename = "sign")]
    Sign,
    /// verify signatures
    #[serde(rename = "verify")]
    Verify,
    /// timestamps
    #[serde(rename = "timestamps")]
    Timestamps,
    /// have this node's CA certify keys for another medsign acting as registration authority
    /// (`POST /api/v1/ca/enroll`); never implied by `certs`
    #[serde(rename = "ca:enroll")]
    CaEnroll,
    /// everything, including administration
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// All scopes.
    pub const ALL: [Scope; 8] = [
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::Certs,
        Scope::Sign,
        Scope::Verify,
        Scope::Timestamps,
        Scope::CaEnroll,
        Scope::Admin,
    ];

    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
            Scope::Certs => "certs",
            Scope::Sign => "sign",
            Scope::Verify => "verify",
            Scope::Timestamps => "timestamps",
            Scope::CaEnroll => "ca:enroll",
            Scope::Admin => "admin",
        }
    }

    /// Parse a wire name.
    pub fn from_name(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.name() == s.trim())
    }

    /// Parse `a,b,c`; every name must be known.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>> {
        s.split(',')
            .filter(|x| !x.trim().is_empty())
            .map(|x| {
                Scope::from_name(x).ok_or_else(|| {
                    Error::Invalid(format!(
                        "未知权限 '{}' / unknown scope (known: {})",
                        x.trim(),
                        Scope::ALL.map(|s| s.name()).join(", ")
                    ))
                })
            })
            .collect()
    }
}

/// An authenticated app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct App {
    /// id
    pub app_id: String,
    /// display name
    pub name: String,
    /// granted scopes
    pub scopes: Vec<Scope>,
}

impl App {
    /// Whether the app has `s` (admin has everything).
    pub fn allows(&self, s: Scope) -> bool {
        self.scopes.contains(&s) || self.scopes.contains(&Scope::Admin)
    }

    /// Require `s`.
    pub fn require(&self, s: Scope) -> Result<()> {
        if self.allows(s) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "应用 {} 没有 {} 权限 / app {} lacks scope {}",
                self.app_id,
                s.name(),
                self.app_id,
                s.name()
            )))
        }
    }
}

const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;

/// `argon2id$m$t$p$salt$hash` of `secret` (a fresh salt): how app secrets and console passwords
/// are stored.
pub(crate) fn hash_secret(secret: &[u8]) -> Result<String> {
    let salt = rng::bytes::<16>()?;
    Ok(format!("argon2id${M_COST}${T_COST}$1${}${}", hex::encode(salt), hex::encode(argon(secret, &salt)?)))
}

/// Does `secret` match what [`hash_secret`] stored? (Argon2id: call it off the async workers.)
pub(crate) fn matches_hash(stored: &str, secret: &[u8]) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    match (
        parts.len() == 6 && parts[0] == "argon2id",
        hex::decode(parts.get(4).unwrap_or(&"")),
        hex::decode(parts.get(5).unwrap_or(&"")),
    ) {
        (true, Ok(salt), Ok(expect)) => argon(secret, &salt).map(|h| hash::ct_eq(&h, &expect)).unwrap_or(false),
        _ => false,
    }
}

fn argon(secret: &[u8], salt: &[u8]) -> Result<[u8; 32]> {
    let p = argon2::Params::new(M_COST, T_COST, 1, Some(32)).map_err(|e| Error::internal_from("apps::argon", e))?;
    let mut out = [0u8; 32];
    let hashed = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p)
        .hash_password_into(secret, salt, &mut out)
        .map_err(|e| Error::internal_from("apps::argon", e));
    // its 19 MiB of blocks are free again: hand them back now (see `release_memory_after_hashing`)
    if let Some(release) = RELEASE_FREE_MEMORY.get() {
        release();
    }
    hashed.map(|_| out)
}

static RELEASE_FREE_MEMORY: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// What the binary calls to give the allocator's free memory back to the kernel; called once
/// every Argon2id hash has freed its 19 MiB of blocks (the first start's bootstrap credential, a
/// console login or password). Without it the allocator keeps those pages resident for its purge
/// delay, and the small allocations that land in them meanwhile keep them resident for good: an
/// idle server after its first start held 11 MB of anonymous memory instead of 6.5 (issue #20,
/// goal 5). Set once; later calls are ignored.
pub fn release_memory_after_hashing(release: fn()) {
    let _ = RELEASE_FREE_MEMORY.set(release);
}

/// The request-signing key an app derives from its secret ([`medsign_crypto::api::request_key`]).
pub use medsign_crypto::api::request_key as hmac_key;

fn hmac_aad(app_id: &str) -> Vec<u8> {
    format!("medsign/app-hmac/{app_id}").into_bytes()
}

/// An app's HMAC-SM3 key (the one it signs requests with: [`hmac_key`] of its secret), unwrapped;
/// medsign signs the app's webhooks with it.
pub async fn hmac_key_of(db: &Db, kek: &Kek, app_id: &str) -> Result<Zeroizing<[u8; 32]>> {
    let wrapped: Option<Option<String>> = sqlx::query_scalar("SELECT hmac_key_wrapped FROM apps WHERE app_id = $1")
        .bind(app_id)
        .fetch_optional(&db.pool)
        .await?;
    let blob = wrapped
        .flatten()
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| Error::NotFound(format!("应用 {app_id} 没有签名密钥 / app {app_id} has no signing key")))?;
    let key: [u8; 32] = kek
        .unwrap(&blob, &hmac_aad(app_id))?
        .as_slice()
        .try_into()
        .map_err(|_| Error::internal("stored HMAC key is corrupt"))?;
    Ok(Zeroizing::new(key))
}

/// Create an app; returns it and the token `app_id.secret` (shown once, never stored).
pub async fn create(
    db: &Db,
    kek: &Kek,
    ctx: &Context,
    name: &str,
    scopes: &[Scope],
) -> Result<(App, Zeroizing<String>)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Error::Invalid("应用名称须为 1–64 个字符 / the app name must be 1-64 characters".into()));
    }
    let scopes: Vec<Scope> = if scopes.is_empty() { Scope::ALL[..6].to_vec() } else { scopes.to_vec() };
    let app_id = format!("app_{}", hex::encode(rng::bytes::<8>()?));
    let secret = Zeroizing::new(hex::encode(rng::bytes::<32>()?));
    let stored = hash_secret(secret.as_bytes())?;
    let scope_text = scopes.iter().map(|s| s.name()).collect::<Vec<_>>().join(",");
    let key = Zeroizing::new(hmac_key(&secret));
    let wrapped_hmac = hex::encode(kek.wrap(key.as_slice(), &hmac_aad(&app_id))?);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO apps (app_id, name, secret_hash, scopes, disabled, created_at, hmac_key_wrapped) \
         VALUES ($1, $2, $3, $4, 0, $5, $6)",
    )
    .bind(&app_id)
    .bind(name)
    .bind(&stored)
    .bind(&scope_text)
    .bind(medsign_store::now_text())
    .bind(&wrapped_hmac)
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "app.create",
        &format!("app:{app_id}"),
        serde_json::json!({"name": name, "scopes": scope_text}),
    )
    .await?;
    tx.commit().await?;
    let token = Zeroizing::new(format!("{app_id}.{}", secret.as_str()));
    Ok((App { app_id, name: name.into(), scopes }, token))
}

/// An app as administrators see it (never the secret).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    /// id
    pub app_id: String,
    /// name
    pub name: String,
    /// scopes
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub scopes: Vec<Scope>,
    /// disabled apps cannot authenticate
    pub disabled: bool,
    /// created
    pub created_at: String,
}

/// All apps, by creation time.
pub async fn list(db: &Db) -> Result<Vec<AppInfo>> {
    let rows = sqlx::query("SELECT app_id, name, scopes, disabled, created_at FROM apps ORDER BY created_at, app_id")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AppInfo {
                app_id: r.try_get("app_id")?,
                name: r.try_get("name")?,
                scopes: r.try_get::<String, _>("scopes")?.split(',').filter_map(Scope::from_name).collect(),
                disabled: r.try_get::<i64, _>("disabled")? != 0,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// The advisory lock key under which app credentials are disabled (one at a time, cluster-wide).
const ADMIN_CHANGE_LOCK: i64 = 0x6d65_6473_6170_7073;

/// Disable or enable an app (audited). A disabled app's cached checks are dropped at once.
pub async fn set_disabled(db: &Db, auth: &Authenticator, ctx: &Context, app_id: &str, disabled: bool) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    db.serialise(&mut tx, ADMIN_CHANGE_LOCK).await?;
    let n = sqlx::query("UPDATE apps SET disabled = $1 WHERE app_id = $2")
        .bind(disabled as i64)
        .bind(app_id)
        .execute(&mut *tx)
        .await?;
    if n.rows_affected() == 0 {
        return Err(Error::NotFound(format!("应用 {app_id} 不存在 / no app {app_id}")));
    }
    // the last enabled admin credential stays: without it nobody could administer medsign
    // (checked inside the transaction, after the update, so two parallel disables cannot both pass)
    let admins: Vec<String> =
        sqlx::query_scalar("SELECT scopes FROM apps WHERE disabled = 0").fetch_all(&mut *tx).await?;
    // an administrator of the console who can log in counts too: then the bootstrap token may go
    let people: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_people WHERE role = 'administrator' AND disabled = 0 AND password_hash IS NOT NULL",
    )
    .fetch_one(&mut *tx)
    .await?;
    if disabled && people == 0 && !admins.iter().any(|s| s.split(',').any(|x| x.trim() == Scope::Admin.name())) {
        return Err(Error::Conflict(
            "不能停用最后一个管理员凭据 / the last enabled admin credential cannot be disabled".into(),
        ));
    }
    let action = if disabled { "app.disable" } else { "app.enable" };
    audit::ok(&mut tx, ctx, Kind::Admin, action, &format!("app:{app_id}"), serde_json::json!({})).await?;
    tx.commit().await?;
    auth.cache.lock().expect("cache lock").retain(|_, (app, _, _)| app.app_id != app_id);
    Ok(())
}

/// A new secret for an app (audited): the token `app_id.secret` is returned once; the old secret
/// and the request-signing key derived from it stop working at once, on every instance (their
/// caches check the stored hash), and webhooks are signed with the new key from now on.
pub async fn rotate(
    db: &Db,
    kek: &Kek,
    auth: &Authenticator,
    ctx: &Context,
    app_id: &str,
) -> Result<Zeroizing<String>> {
    let secret = Zeroizing::new(hex::encode(rng::bytes::<32>()?));
    let stored = hash_secret(secret.as_bytes())?;
    let key = Zeroizing::new(hmac_key(&secret));
    let wrapped_hmac = hex::encode(kek.wrap(key.as_slice(), &hmac_aad(app_id))?);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let n = sqlx::query("UPDATE apps SET secret_hash = $1, hmac_key_wrapped = $2 WHERE app_id = $3")
        .bind(&stored)
        .bind(&wrapped_hmac)
        .bind(app_id)
        .execute(&mut *tx)
        .await?;
    if n.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(Error::NotFound(format!("应用 {app_id} 不存在 / no app {app_id}")));
    }
    audit::ok(&mut tx, ctx, Kind::Admin, "app.rotate_secret", &format!("app:{app_id}"), serde_json::json!({})).await?;
    tx.commit().await?;
    auth.cache.lock().expect("cache lock").retain(|_, (app, _, _)| app.app_id != app_id);
    Ok(Zeroizing::new(format!("{app_id}.{}", secret.as_str())))
}

/// How many apps exist (the first start creates the bootstrap admin app when there are none).
pub async fn count(db: &Db) -> Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM apps").fetch_one(&db.pool).await?)
}

/// Checks tokens, with an in-memory cache of successful checks.
pub struct Authenticator {
    /// the app, the secret hash it was checked against, when
    cache: Mutex<HashMap<[u8; 32], (App, String, Instant)>>,
    /// Argon2 checks run on the blocking pool, at most this many at once (19 MiB each): a flood
    /// of wrong tokens waits here instead of stalling the async workers
    hashing: tokio::sync::Semaphore,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self { cache: Default::default(), hashing: tokio::sync::Semaphore::new(2) }
    }
}

/// How long a successful check is remembered.
const CACHE_SECS: u64 = 300;

impl Authenticator {
    /// The app of `token` when a check of it succeeded in the last five minutes (no hashing). It
    /// still reads the app's row (one primary-key lookup): an app disabled, re-scoped or given a
    /// new secret on another instance (issue #17) is refused or changed here at once.
    pub async fn remembered(&self, db: &Db, token: &str) -> Result<Option<App>> {
        let key = hash::sm3(token.as_bytes());
        let hit = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(&key).filter(|(_, _, at)| at.elapsed().as_secs() < CACHE_SECS).cloned()
        };
        let Some((app, secret_hash, _)) = hit else { return Ok(None) };
        let row = sqlx::query("SELECT scopes, disabled, secret_hash FROM apps WHERE app_id = $1")
            .bind(&app.app_id)
            .fetch_optional(&db.pool)
            .await?;
        if let Some(r) = row
            && r.try_get::<i64, _>("disabled")? == 0
            && r.try_get::<String, _>("secret_hash")? == secret_hash
        {
            let scopes: String = r.try_get("scopes")?;
            return Ok(Some(App { scopes: scopes.split(',').filter_map(Scope::from_name).collect(), ..app }));
        }
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        Ok(None)
    }

    /// [`matches_hash`] on the blocking pool, at most two at once.
    pub async fn matches(&self, stored: &str, secret: &[u8]) -> Result<bool> {
        let _permit = self.hashing.acquire().await.map_err(|_| Error::Unavailable("shutting down".into()))?;
        let (stored, secret) = (stored.to_string(), Zeroizing::new(secret.to_vec()));
        Ok(tokio::task::spawn_blocking(move || matches_hash(&stored, &secret)).await.unwrap_or(false))
    }

    /// Check `app_id.secret`.
    pub async fn check(&self, db: &Db, token: &str) -> Result<App> {
        let key = hash::sm3(token.as_bytes());
        if let Some(app) = self.remembered(db, token).await? {
            return Ok(app);
        }
        let bad = || Error::Unauthorized("应用凭据无效 / invalid app credentials".into());
        let (app_id, secret) = token.split_once('.').ok_or_else(bad)?;
        let row = sqlx::query("SELECT name, secret_hash, scopes, disabled FROM apps WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(bad)?;
        let stored: String = row.try_get("secret_hash")?;
        let ok = self.matches(&stored, secret.as_bytes()).await?;
        if !ok {
            return Err(bad());
        }
        if row.try_get::<i64, _>("disabled")? != 0 {
            return Err(Error::Unauthorized("应用已停用 / the app is disabled".into()));
        }
        let scopes: String = row.try_get("scopes")?;
        let app = App {
            app_id: app_id.to_string(),
            name: row.try_get("name")?,
            scopes: scopes.split(',').filter_map(Scope::from_name).collect(),
        };
        self.cache.lock().expect("cache lock").insert(key, (app.clone(), stored, Instant::now()));
        Ok(app)
    }
}

/// The parts of a signed request (HMAC-SM3, see the module docs).
#[derive(Debug, Clone)]
pub struct SignedRequest<'a> {
    /// `X-App-Id`
    pub app_id: &'a str,
    /// `X-Timestamp`, Unix seconds
    pub timestamp: &'a str,
    /// `X-Nonce`
    pub nonce: &'a str,
    /// `X-Signature`, hex
    pub signature: &'a str,
    /// HTTP method
    pub method: &'a str,
    /// path
    pub path: &'a str,
    /// raw query string (without `?`), empty when none
    pub query: &'a str,
    /// the body
    pub body: &'a [u8],
}

/// Allowed clock difference for signed requests, seconds.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

/// The signature a client computes ([`medsign_crypto::api::sign_request`], which SDKs use too).
pub use medsign_crypto::api::sign_request;

impl Authenticator {
    /// Check an HMAC-SM3 signed request: signature, time window, fresh nonce (recorded).
    pub async fn check_signed(&self, db: &Db, kek: &Kek, r: &SignedRequest<'_>) -> Result<App> {
        let bad = |why: &str| Error::Unauthorized(format!("请求签名无效：{why} / invalid request signature: {why}"));
        let ts: i64 = r.timestamp.parse().map_err(|_| bad("X-Timestamp"))?;
        let now = chrono::Utc::now().timestamp();
        if (now - ts).abs() > SIGNATURE_WINDOW_SECS {
            return Err(bad("X-Timestamp 超出 ±300 秒 / outside ±300 s"));
        }
        if !(8..=64).contains(&r.nonce.len())
            || !r.nonce.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            return Err(bad("X-Nonce"));
        }
        let row = sqlx::query("SELECT name, scopes, disabled, hmac_key_wrapped FROM apps WHERE app_id = $1")
            .bind(r.app_id)
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(|| bad("X-App-Id"))?;
        let wrapped: Option<String> = row.try_get("hmac_key_wrapped")?;
        let blob = hex::decode(wrapped.ok_or_else(|| bad("X-App-Id"))?).map_err(|_| bad("X-App-Id"))?;
        let key: [u8; 32] = kek
            .unwrap(&blob, &hmac_aad(r.app_id))?
            .as_slice()
            .try_into()
            .map_err(|_| Error::internal("stored HMAC key is corrupt"))?;
        let key = Zeroizing::new(key);
        let expect = sign_request(&key, r.method, r.path, r.query, r.timestamp, r.nonce, r.body);
        if !hash::ct_eq(expect.as_bytes(), r.signature.to_ascii_lowercase().as_bytes()) {
            return Err(bad("X-Signature"));
        }
        if row.try_get::<i64, _>("disabled")? != 0 {
            return Err(Error::Unauthorized("应用已停用 / the app is disabled".into()));
        }
        // the nonce is recorded only for requests whose signature verified
        if !medsign_store::nonces::record(
            db,
            r.app_id,
            r.nonce,
            ts + SIGNATURE_WINDOW_SECS,
            now - SIGNATURE_WINDOW_SECS,
        )
        .await?
        {
            return Err(bad("X-Nonce 已使用（重放）/ nonce reused (replay)"));
        }
        let scopes: String = row.try_get("scopes")?;
        Ok(App {
            app_id: r.app_id.to_string(),
            name: row.try_get("name")?,
            scopes: scopes.split(',').filter_map(Scope::from_name).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_testkit::db::backends;

    #[test]
    fn every_hash_gives_its_memory_back_through_the_binarys_hook() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        release_memory_after_hashing(|| {
            CALLS.fetch_add(1, Ordering::SeqCst);
        });
        let before = CALLS.load(Ordering::SeqCst);
        let stored = hash_secret(b"a console password").unwrap();
        assert!(matches_hash(&stored, b"a console password"));
        assert!(!matches_hash(&stored, b"another password"));
        // other tests of this binary hash too, once the hook is set: at least these three
        assert!(CALLS.load(Ordering::SeqCst) >= before + 3);
    }

    #[tokio::test]
    async fn create_check_and_refuse() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let (app, token) =
                create(&db, &kek, &Context::cli(), "HIS 门诊", &Scope::parse_list("users:read,sign").unwrap())
                    .await
                    .unwrap();
            assert!(token.starts_with(&app.app_id));
            let auth = Authenticator::default();
            let got = auth.check(&db, &token).await.unwrap();
            assert_eq!(got, app);
            assert!(got.allows(Scope::Sign) && !got.allows(Scope::UsersWrite));
            assert!(got.require(Scope::Admin).is_err());
            let wrong = format!("{}.{}", app.app_id, "0".repeat(64));
            assert!(matches!(auth.check(&db, &wrong).await, Err(Error::Unauthorized(_))));
            assert!(matches!(auth.check(&db, "nodot").await, Err(Error::Unauthorized(_))));
            assert!(matches!(auth.check(&db, "app_x.y").await, Err(Error::Unauthorized(_))));
            // the secret is not stored
            let all: Vec<String> =
                sqlx::query_scalar("SELECT secret_hash FROM apps").fetch_all(&db.pool).await.unwrap();
            assert!(!all[0].contains(token.split_once('.').unwrap().1));
            assert!(Scope::parse_list("users:read,root").is_err());
            assert!(create(&db, &kek, &Context::cli(), " ", &[]).await.is_err());
            // signed requests
            let key = hmac_key(token.split_once('.').unwrap().1);
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = sign_request(&key, "POST", "/api/v1/users", "", &ts, "nonce-0001", b"{}");
            let req = SignedRequest {
                app_id: &app.app_id,
                timestamp: &ts,
                nonce: "nonce-0001",
                signature: &sig,
                method: "POST",
                path: "/api/v1/users",
                query: "",
                body: b"{}",
            };
            assert_eq!(auth.check_signed(&db, &kek, &req).await.unwrap(), app);
            assert!(auth.check_signed(&db, &kek, &req).await.is_err(), "replayed nonce accepted");
            let other = SignedRequest { nonce: "nonce-0002", body: b"{ }", ..req.clone() };
            assert!(auth.check_signed(&db, &kek, &other).await.is_err(), "changed body accepted");
            let old = (chrono::Utc::now().timestamp() - 600).to_string();
            let sig_old = sign_request(&key, "POST", "/api/v1/users", "", &old, "nonce-0003", b"{}");
            let stale = SignedRequest { timestamp: &old, nonce: "nonce-0003", signature: &sig_old, ..req.clone() };
            assert!(auth.check_signed(&db, &kek, &stale).await.is_err(), "stale timestamp accepted");
            let wrong_kek = Kek::generate().unwrap();
            let fresh = SignedRequest {
                nonce: "nonce-0004",
                signature: &sign_request(&key, "POST", "/api/v1/users", "", &ts, "nonce-0004", b"{}"),
                ..req.clone()
            };
            assert!(auth.check_signed(&db, &wrong_kek, &fresh).await.is_err());
            // recorded in the audit log
            assert_eq!(medsign_store::audit::recent(&db, 1).await.unwrap()[0].action, "app.create");
        }
    }

    /// A rotated secret: the new token works, the old one stops at once — also on another
    /// instance that had it cached — and so does the request-signing key derived from it.
    #[tokio::test]
    async fn a_rotated_secret_replaces_the_old_one_everywhere_at_once() {
        for (_d, db) in backends().await {
            let (kek, ctx) = (Kek::generate().unwrap(), Context::cli());
            let (app, old) = create(&db, &kek, &ctx, "HIS", &[Scope::Sign]).await.unwrap();
            let (here, there) = (Authenticator::default(), Authenticator::default());
            here.check(&db, &old).await.unwrap();
            there.check(&db, &old).await.unwrap();
            let new = rotate(&db, &kek, &here, &ctx, &app.app_id).await.unwrap();
            assert_ne!(new.as_str(), old.as_str());
            assert!(new.starts_with(&format!("{}.", app.app_id)));
            for auth in [&here, &there] {
                assert!(matches!(auth.check(&db, &old).await, Err(Error::Unauthorized(_))), "old token accepted");
                assert_eq!(auth.check(&db, &new).await.unwrap(), app);
            }
            let stored = hmac_key_of(&db, &kek, &app.app_id).await.unwrap();
            assert_eq!(*stored, hmac_key(new.split_once('.').unwrap().1));
            assert_ne!(*stored, hmac_key(old.split_once('.').unwrap().1));
            assert!(matches!(rotate(&db, &kek, &here, &ctx, "app_none").await, Err(Error::NotFound(_))));
            assert_eq!(medsign_store::audit::recent(&db, 1).await.unwrap()[0].action, "app.rotate_secret");
        }
    }

    /// Issue #15: the last enabled admin credential cannot be disabled (nobody could administer
    /// medsign any more); other apps can, and so can an admin while another one is enabled.
    #[tokio::test]
    async fn the_last_admin_credential_stays_enabled() {
        for (_d, db) in backends().await {
            let (kek, ctx, auth) = (Kek::generate().unwrap(), Context::cli(), Authenticator::default());
            let (a, _) = create(&db, &kek, &ctx, "bootstrap-admin", &[Scope::Admin]).await.unwrap();
            let (b, _) = create(&db, &kek, &ctx, "信息科", &[Scope::Admin, Scope::Certs]).await.unwrap();
            let (his, _) = create(&db, &kek, &ctx, "HIS", &[Scope::Sign]).await.unwrap();
            set_disabled(&db, &auth, &ctx, &his.app_id, true).await.unwrap();
            set_disabled(&db, &auth, &ctx, &a.app_id, true).await.unwrap();
            let e = set_disabled(&db, &auth, &ctx, &b.app_id, true).await.unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            set_disabled(&db, &auth, &ctx, &a.app_id, false).await.unwrap();
            set_disabled(&db, &auth, &ctx, &b.app_id, true).await.unwrap();
        }
    }
}
