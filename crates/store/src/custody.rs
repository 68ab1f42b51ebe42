//! Key custody for server-held keys (custody mode 3: the key held by the server under the hospital's authorization): a key-encryption key
//! (KEK) from `MEDSIGN_KEK` or a 0600 key file in the data directory, and keys wrapped under it
//! with SM4-GCM, bound to their name. The platform key (evidence, audit anchors) is created on
//! first start.

use crate::{Error, Result, db::Db};
use medsign_crypto::{KeyAlg, PrivateKey, PublicKey, wrap::Kek};
use sqlx::Row;
use std::path::Path;

/// Where the KEK came from (the start-up banner says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// `MEDSIGN_KEK`
    Environment,
    /// an existing key file
    File(String),
    /// a key file generated now
    Generated(String),
}

/// The KEK: `MEDSIGN_KEK` (32 hex digits), else `<data dir>/kek.key` (created with mode 0600).
pub fn load_kek(data_dir: &Path, env_value: Option<String>) -> Result<(Kek, KekSource)> {
    if let Some(v) = env_value {
        let b = hex::decode(v.trim())
            .map_err(|_| Error::Config("MEDSIGN_KEK 须为 32 位十六进制 / MEDSIGN_KEK must be 32 hex digits".into()))?;
        let k = Kek::from_bytes(&b)
            .map_err(|_| Error::Config("MEDSIGN_KEK 须为 32 位十六进制 / MEDSIGN_KEK must be 32 hex digits".into()))?;
        return Ok((k, KekSource::Environment));
    }
    let path = data_dir.join("kek.key");
    let shown = path.display().to_string();
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(format!("无法读取 {shown} / cannot read the KEK file: {e}")))?;
        let b = hex::decode(text.trim())
            .map_err(|_| Error::Config(format!("{shown} 内容无效 / the KEK file is corrupt")))?;
        return Ok((
            Kek::from_bytes(&b).map_err(|_| Error::Config(format!("{shown} 内容无效 / the KEK file is corrupt")))?,
            KekSource::File(shown),
        ));
    }
    let k = Kek::generate()?;
    write_secret(&path, hex::encode(k.as_bytes()).as_bytes())?;
    Ok((k, KekSource::Generated(shown)))
}

/// Write a secret file with mode 0600.
pub fn write_secret(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path).map_err(|e| Error::Config(format!("无法写入 {} / cannot write: {e}", path.display())))?;
    f.write_all(data).map_err(|e| Error::Config(format!("无法写入 {} / cannot write: {e}", path.display())))?;
    f.sync_all().map_err(|e| Error::Config(format!("无法写入 {} / cannot write: {e}", path.display())))
}

fn aad(name: &str) -> Vec<u8> {
    format!("medsign/server-key/{name}").into_bytes()
}

/// Load the server key `name`, creating it (SM2) on first use. Returns the key.
pub async fn ensure_key(db: &Db, kek: &Kek, name: &str, alg: KeyAlg) -> Result<PrivateKey> {
    // the common case (the key exists) needs no write lock
    let row =
        sqlx::query("SELECT wrapped_key FROM server_keys WHERE name = $1").bind(name).fetch_optional(&db.pool).await?;
    let _w = if row.is_none() { Some(db.write_lock.lock().await) } else { None };
    let row = match row {
        Some(r) => Some(r),
        None => {
            sqlx::query("SELECT wrapped_key FROM server_keys WHERE name = $1")
                .bind(name)
                .fetch_optional(&db.pool)
                .await?
        }
    };
    if let Some(r) = row {
        return unwrap_stored(kek, name, &r.try_get::<String, _>("wrapped_key")?);
    }
    let key = PrivateKey::generate(alg)?;
    let wrapped = kek.wrap(&key.to_pkcs8_der()?, &aad(name))?;
    let made = sqlx::query(
        "INSERT INTO server_keys (name, alg, wrapped_key, public_key, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(alg.name())
    .bind(hex::encode(wrapped))
    .bind(key.public_key().to_pem())
    .bind(crate::now_text())
    .execute(&db.pool)
    .await?;
    if made.rows_affected() == 0 {
        // another instance made it first (issue #17): everyone uses that one
        let wrapped: String = sqlx::query_scalar("SELECT wrapped_key FROM server_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&db.pool)
            .await?;
        return unwrap_stored(kek, name, &wrapped);
    }
    Ok(key)
}

/// The key `name` from its stored text (`server_keys.wrapped_key`), unwrapped with the KEK.
pub fn unwrap_stored(kek: &Kek, name: &str, wrapped: &str) -> Result<PrivateKey> {
    let blob = hex::decode(wrapped).map_err(|_| Error::Config(format!("server key {name} is corrupt")))?;
    let der = kek.unwrap(&blob, &aad(name)).map_err(|_| {
        Error::Config(format!(
            "无法解开服务器密钥 {name}：密钥加密密钥（KEK）不对 / cannot unwrap server key {name}: wrong KEK (MEDSIGN_KEK or kek.key)"
        ))
    })?;
    Ok(PrivateKey::from_pkcs8_der(&der)?)
}

/// The server key `name`, which must exist (never made here).
pub async fn existing_key(db: &Db, kek: &Kek, name: &str) -> Result<PrivateKey> {
    let wrapped: Option<String> = sqlx::query_scalar("SELECT wrapped_key FROM server_keys WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    let wrapped =
        wrapped.ok_or_else(|| Error::Config(format!("服务器密钥 {name} 不存在 / server key {name} is missing")))?;
    unwrap_stored(kek, name, &wrapped)
}

/// The public part of a stored server key.
pub async fn public_key(db: &Db, name: &str) -> Result<PublicKey> {
    let r = sqlx::query("SELECT public_key FROM server_keys WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("server key {name}")))?;
    let pem: String = r.try_get("public_key")?;
    Ok(PublicKey::from_bytes(pem.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;

    #[tokio::test]
    async fn kek_file_is_created_0600_and_reused_and_keys_survive() {
        let (dir, db) = temp_db().await;
        let (k1, src) = load_kek(dir.path(), None).unwrap();
        assert!(matches!(src, KekSource::Generated(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(dir.path().join("kek.key")).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (k2, src) = load_kek(dir.path(), None).unwrap();
        assert!(matches!(src, KekSource::File(_)));
        assert_eq!(k1.as_bytes(), k2.as_bytes());
        let a = ensure_key(&db, &k1, "platform", KeyAlg::Sm2).await.unwrap();
        let b = ensure_key(&db, &k2, "platform", KeyAlg::Sm2).await.unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(public_key(&db, "platform").await.unwrap(), a.public_key());
        // a wrong KEK is a clear start-up error, not a new key
        let wrong = Kek::generate().unwrap();
        assert!(
            matches!(ensure_key(&db, &wrong, "platform", KeyAlg::Sm2).await, Err(Error::Config(m)) if m.contains("KEK"))
        );
        assert!(load_kek(dir.path(), Some("zz".into())).is_err());
        assert!(matches!(
            load_kek(dir.path(), Some("00112233445566778899aabbccddeeff".into())).unwrap().1,
            KekSource::Environment
        ));
    }
}
