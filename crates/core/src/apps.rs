//! Integration apps (R7): hospital systems authenticate as an app with `app_id.secret`. The
//! secret is shown once and stored as an Argon2id hash; successful checks are cached in memory
//! (keyed by SM3 of the token) so the hash cost is paid once per app and process, not per request.

use crate::{
    Error, Result,
    audit::{self, Context, Event, Kind},
    db::Db,
};
use medsign_crypto::{hash, rng};
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
    /// everything, including administration
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// All scopes.
    pub const ALL: [Scope; 7] = [
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::Certs,
        Scope::Sign,
        Scope::Verify,
        Scope::Timestamps,
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

fn argon(secret: &[u8], salt: &[u8]) -> Result<[u8; 32]> {
    let p = argon2::Params::new(M_COST, T_COST, 1, Some(32)).map_err(|e| Error::Config(e.to_string()))?;
    let mut out = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p)
        .hash_password_into(secret, salt, &mut out)
        .map_err(|e| Error::Config(e.to_string()))?;
    Ok(out)
}

/// Create an app; returns it and the token `app_id.secret` (shown once, never stored).
pub async fn create(db: &Db, ctx: &Context, name: &str, scopes: &[Scope]) -> Result<(App, Zeroizing<String>)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Error::Invalid("应用名称须为 1–64 个字符 / the app name must be 1-64 characters".into()));
    }
    let scopes: Vec<Scope> = if scopes.is_empty() { Scope::ALL[..6].to_vec() } else { scopes.to_vec() };
    let app_id = format!("app_{}", hex::encode(rng::bytes::<8>()?));
    let secret = Zeroizing::new(hex::encode(rng::bytes::<32>()?));
    let salt = rng::bytes::<16>()?;
    let stored =
        format!("argon2id${M_COST}${T_COST}$1${}${}", hex::encode(salt), hex::encode(argon(secret.as_bytes(), &salt)?));
    let scope_text = scopes.iter().map(|s| s.name()).collect::<Vec<_>>().join(",");
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO apps (app_id, name, secret_hash, scopes, disabled, created_at) VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(&app_id)
    .bind(name)
    .bind(&stored)
    .bind(&scope_text)
    .bind(crate::now_text())
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        ctx,
        &Event {
            kind: Kind::Admin,
            action: "app.create",
            target: &format!("app:{app_id}"),
            outcome: "ok",
            details: serde_json::json!({"name": name, "scopes": scope_text}),
        },
    )
    .await?;
    tx.commit().await?;
    let token = Zeroizing::new(format!("{app_id}.{}", secret.as_str()));
    Ok((App { app_id, name: name.into(), scopes }, token))
}

/// How many apps exist (the first start creates the bootstrap admin app when there are none).
pub async fn count(db: &Db) -> Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM apps").fetch_one(&db.pool).await?)
}

/// Checks tokens, with an in-memory cache of successful checks.
#[derive(Default)]
pub struct Authenticator {
    cache: Mutex<HashMap<[u8; 32], (App, Instant)>>,
}

/// How long a successful check is remembered.
const CACHE_SECS: u64 = 300;

impl Authenticator {
    /// Check `app_id.secret`.
    pub async fn check(&self, db: &Db, token: &str) -> Result<App> {
        let key = hash::sm3(token.as_bytes());
        if let Some((app, at)) = self.cache.lock().expect("cache lock").get(&key)
            && at.elapsed().as_secs() < CACHE_SECS
        {
            return Ok(app.clone());
        }
        let bad = || Error::Unauthorized("应用凭据无效 / invalid app credentials".into());
        let (app_id, secret) = token.split_once('.').ok_or_else(bad)?;
        let row = sqlx::query("SELECT name, secret_hash, scopes, disabled FROM apps WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(bad)?;
        let stored: String = row.try_get("secret_hash")?;
        let parts: Vec<&str> = stored.split('$').collect();
        let ok = parts.len() == 6
            && parts[0] == "argon2id"
            && match (hex::decode(parts[4]), hex::decode(parts[5])) {
                (Ok(salt), Ok(expect)) => {
                    argon(secret.as_bytes(), &salt).map(|h| hash::ct_eq(&h, &expect)).unwrap_or(false)
                }
                _ => false,
            };
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
        self.cache.lock().expect("cache lock").insert(key, (app.clone(), Instant::now()));
        Ok(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::backends;

    #[tokio::test]
    async fn create_check_and_refuse() {
        for (_d, db) in backends().await {
            let (app, token) =
                create(&db, &Context::cli(), "HIS 门诊", &Scope::parse_list("users:read,sign").unwrap()).await.unwrap();
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
            assert!(create(&db, &Context::cli(), " ", &[]).await.is_err());
            // recorded in the audit log
            assert_eq!(crate::audit::recent(&db, 1).await.unwrap()[0].action, "app.create");
        }
    }
}
