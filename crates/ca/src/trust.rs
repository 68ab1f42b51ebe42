//! The hospital's trust list (issue #17 item 5): the CA certificates, besides the built-in roots,
//! that every verification path trusts — an outside CA a channel certifies through (EST, a
//! regional medsign), its intermediates, cross-certificates. A self-signed CA certificate becomes a
//! trust anchor; any other CA certificate is an intermediate a chain may pass through (it does not
//! make anything trusted by itself).
//!
//! An entry may name the URL where its CA publishes its CRL; the CRL is fetched when the entry is
//! added and every hour (through the gateways' egress when set), checked against the entry's
//! certificate, and stored, so every instance of a cluster verifies with the same data. Nothing
//! here is added by a channel on its own: an administrator adds what was checked out of band (the
//! fingerprint is shown), since a certificate on this list vouches for every signature under it.

use crate::egress;
use base64::Engine;
use medsign_pki::{alg::Sm2IdPolicy, cert::Cert, crl::Crl};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The largest PEM text one request may add.
pub const MAX_PEM: usize = 256 * 1024;
/// Certificates one request may add.
pub const MAX_CERTS: usize = 16;
/// The largest CRL fetched.
pub const MAX_CRL: usize = 20 * 1024 * 1024;

/// Body of `POST /admin/v1/trust`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTrust {
    /// one or more CA certificates, PEM
    pub pem: String,
    /// where the CA of the (single) certificate publishes its CRL, `http(s)://`
    pub crl_url: Option<String>,
    /// what it is, for the administrators (≤ 200 characters)
    #[serde(default)]
    pub note: String,
}

/// One certificate of the trust list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct TrustRecord {
    /// SHA-256 of the certificate (DER), hex — compare it with what the CA publishes
    pub fingerprint: String,
    /// subject
    pub subject: String,
    /// issuer
    pub issuer: String,
    /// a trust anchor (self-signed root), or an intermediate / cross-certificate
    pub anchor: bool,
    /// end of validity
    pub not_after: String,
    /// the CA's CRL URL
    pub crl_url: Option<String>,
    /// when its CRL was last fetched
    pub crl_at: Option<String>,
    /// why the last fetch failed
    pub crl_error: Option<String>,
    /// the administrators' note
    pub note: String,
    /// the certificate, PEM
    pub pem: String,
}

/// What verification uses: anchors, intermediates and the fetched CRLs.
#[derive(Debug, Clone, Default)]
pub struct TrustSet {
    /// trust anchors besides the built-in roots
    pub anchors: Vec<Cert>,
    /// intermediates and cross-certificates
    pub intermediates: Vec<Cert>,
    /// the CRLs last fetched
    pub crls: Vec<Crl>,
}

fn record(r: &sqlx::any::AnyRow) -> Result<TrustRecord> {
    let der = B64.decode(r.try_get::<String, _>("der")?).map_err(|e| Error::internal_from("trust::record", e))?;
    let cert = Cert::from_der(&der).map_err(|e| Error::internal_from("trust::record", e))?;
    Ok(TrustRecord {
        fingerprint: r.try_get("fingerprint")?,
        subject: cert.subject_display(),
        issuer: cert.issuer_display(),
        anchor: r.try_get::<i64, _>("anchor")? == 1,
        not_after: cert.not_after().to_rfc3339(),
        crl_url: r.try_get("crl_url")?,
        crl_at: r.try_get("crl_at")?,
        crl_error: r.try_get("crl_error")?,
        note: r.try_get("note")?,
        pem: cert.to_pem(),
    })
}

/// Whether `c` is its own issuer (a root): self-issued and signed by its own key.
fn self_signed(c: &Cert) -> bool {
    c.subject() == c.issuer() && c.verify_signed_by(c, Sm2IdPolicy::default()).is_ok()
}

/// Every entry.
pub async fn list(db: &Db) -> Result<Vec<TrustRecord>> {
    let rows = sqlx::query("SELECT * FROM trust_certs ORDER BY anchor DESC, created_at, fingerprint")
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(record).collect()
}

/// Add CA certificates to the trust list (one that is there already is kept as it is); fetches
/// the CRL when a URL is given. Returns the entries of `n`.
pub async fn add(db: &Db, ctx: &Context, n: &NewTrust) -> Result<Vec<TrustRecord>> {
    if n.pem.len() > MAX_PEM {
        return Err(Error::Invalid(format!("pem 超过 {MAX_PEM} 字节 / pem is over {MAX_PEM} bytes")));
    }
    if n.note.chars().count() > 200 {
        return Err(Error::Invalid("note 最多 200 个字符 / note: at most 200 characters".into()));
    }
    let certs = Cert::load_all(n.pem.as_bytes())
        .map_err(|e| Error::Invalid(format!("pem 中的证书无法读取 / cannot read the certificates in pem: {e}")))?;
    if certs.is_empty() || certs.len() > MAX_CERTS {
        return Err(Error::Invalid(format!(
            "pem 须含 1–{MAX_CERTS} 张 CA 证书 / pem must hold 1-{MAX_CERTS} CA certificates"
        )));
    }
    if let Some(c) = certs.iter().find(|c| !c.is_ca()) {
        return Err(Error::Invalid(format!(
            "{} 不是 CA 证书（basicConstraints cA）/ is not a CA certificate: only CAs go on the trust list",
            c.subject_display()
        )));
    }
    if let Some(u) = &n.crl_url {
        if certs.len() != 1 {
            return Err(Error::Invalid(
                "crl_url 只能与一张证书一起给出 / crl_url goes with exactly one certificate".into(),
            ));
        }
        if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2000 {
            return Err(Error::Invalid("crl_url 须为 http(s):// 地址 / crl_url must be an http(s):// URL".into()));
        }
    }
    let now = medsign_store::now_text();
    let mut fingerprints = Vec::new();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    for c in &certs {
        let fp = hex::encode(medsign_crypto::hash::sha256(c.der()));
        let anchor = self_signed(c);
        let added = sqlx::query(
            "INSERT INTO trust_certs (fingerprint, der, anchor, crl_url, note, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (fingerprint) DO NOTHING",
        )
        .bind(&fp)
        .bind(B64.encode(c.der()))
        .bind(anchor as i64)
        .bind(&n.crl_url)
        .bind(n.note.trim())
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 1 {
            audit::ok(
                &mut tx,
                ctx,
                Kind::Admin,
                "trust.add",
                &format!("trust:{fp}"),
                serde_json::json!({"subject": c.subject_display(), "anchor": anchor, "crl_url": n.crl_url}),
            )
            .await?;
        }
        fingerprints.push(fp);
    }
    tx.commit().await?;
    drop(_w);
    if n.crl_url.is_some() {
        fetch_crls(db, Some(&fingerprints)).await?;
    }
    let all = list(db).await?;
    Ok(all.into_iter().filter(|r| fingerprints.contains(&r.fingerprint)).collect())
}

/// Take a certificate off the trust list: signatures under it are no longer trusted.
pub async fn remove(db: &Db, ctx: &Context, fingerprint: &str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let gone = sqlx::query("DELETE FROM trust_certs WHERE fingerprint = $1")
        .bind(fingerprint.to_ascii_lowercase())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(Error::NotFound(format!("信任列表中没有 {fingerprint} / {fingerprint} is not on the trust list")));
    }
    audit::ok(&mut tx, ctx, Kind::Admin, "trust.remove", &format!("trust:{fingerprint}"), serde_json::json!({}))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The list as last parsed, and what the table looked like then (the pool, the row count, the
/// newest entry, the newest CRL): every verification asks, and parsing large CRLs each time would
/// let any caller of a verify endpoint spend the server's CPU.
type Parsed = (String, TrustSet);
static PARSED: std::sync::Mutex<Option<Parsed>> = std::sync::Mutex::new(None);

/// What verification trusts besides the built-in roots.
pub async fn load(db: &Db) -> Result<TrustSet> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n, COALESCE(MAX(created_at), '') AS made, COALESCE(MAX(crl_at), '') AS fetched          FROM trust_certs",
    )
    .fetch_one(&db.pool)
    .await?;
    let stamp = format!(
        "{:p}|{}|{}|{}",
        &db.pool,
        r.try_get::<i64, _>("n")?,
        r.try_get::<String, _>("made")?,
        r.try_get::<String, _>("fetched")?
    );
    let cached = PARSED.lock().expect("trust list cache").as_ref().filter(|(s, _)| *s == stamp).map(|(_, t)| t.clone());
    let mut set = match cached {
        Some(set) => set,
        None => {
            let set = parse_all(db).await?;
            *PARSED.lock().expect("trust list cache") = Some((stamp, set.clone()));
            set
        }
    };
    // a CRL past its nextUpdate is no revocation data: the signature is INDETERMINATE, not
    // passed on old news
    let now = chrono::Utc::now();
    set.crls.retain(|c| c.next_update().is_none_or(|n| n > now));
    Ok(set)
}

async fn parse_all(db: &Db) -> Result<TrustSet> {
    let rows = sqlx::query("SELECT der, anchor, crl FROM trust_certs").fetch_all(&db.pool).await?;
    let mut set = TrustSet::default();
    for r in rows {
        let der = B64.decode(r.try_get::<String, _>("der")?).map_err(|e| Error::internal_from("trust::load", e))?;
        let cert = Cert::from_der(&der).map_err(|e| Error::internal_from("trust::load", e))?;
        if let Some(crl) = r.try_get::<Option<String>, _>("crl")?
            && let Ok(crl) = B64.decode(crl)
            && let Ok(crl) = Crl::from_bytes(&crl)
        {
            set.crls.push(crl);
        }
        if r.try_get::<i64, _>("anchor")? == 1 {
            set.anchors.push(cert);
        } else {
            set.intermediates.push(cert);
        }
    }
    Ok(set)
}

/// Fetch `url`'s CRL, signed by `issuer` and not older than `held` (the one stored: a replayed
/// older CRL would hide a revocation).
async fn fetch_crl(url: &str, issuer: &Cert, held: Option<&Crl>) -> std::result::Result<Vec<u8>, String> {
    let client = egress::client_builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut r = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    let mut der = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        if der.len() + chunk.len() > MAX_CRL {
            return Err(format!("over {MAX_CRL} bytes"));
        }
        der.extend_from_slice(&chunk);
    }
    let crl = Crl::from_bytes(&der).map_err(|e| format!("not a CRL: {e}"))?;
    crl.verify(issuer, Sm2IdPolicy::default()).map_err(|e| format!("not signed by this CA: {e}"))?;
    if let Some(h) = held
        && crl.this_update() < h.this_update()
    {
        return Err(format!(
            "older than the CRL held ({} < {}): refused",
            crl.this_update().to_rfc3339(),
            h.this_update().to_rfc3339()
        ));
    }
    Ok(der)
}

/// Fetch the CRL of every entry with a URL; a failure is recorded on the entry (and the CRL
/// fetched before is kept). Returns how many were fetched.
pub async fn refresh_crls(db: &Db) -> Result<usize> {
    fetch_crls(db, None).await
}

/// [`refresh_crls`] of the entries `only` names (all: `None`).
async fn fetch_crls(db: &Db, only: Option<&[String]>) -> Result<usize> {
    let rows = sqlx::query("SELECT fingerprint, der, crl_url, crl FROM trust_certs WHERE crl_url IS NOT NULL")
        .fetch_all(&db.pool)
        .await?;
    let mut fetched = 0;
    for r in rows {
        let (fp, url): (String, String) = (r.try_get("fingerprint")?, r.try_get("crl_url")?);
        if only.is_some_and(|o| !o.contains(&fp)) {
            continue;
        }
        let der = B64.decode(r.try_get::<String, _>("der")?).map_err(|e| Error::internal_from("trust::refresh", e))?;
        let cert = Cert::from_der(&der).map_err(|e| Error::internal_from("trust::refresh", e))?;
        let held = r
            .try_get::<Option<String>, _>("crl")?
            .and_then(|c| B64.decode(c).ok())
            .and_then(|c| Crl::from_bytes(&c).ok());
        let got = fetch_crl(&url, &cert, held.as_ref()).await;
        let now = medsign_store::now_text();
        let _w = db.write_lock.lock().await;
        match got {
            Ok(crl) => {
                sqlx::query("UPDATE trust_certs SET crl = $1, crl_at = $2, crl_error = NULL WHERE fingerprint = $3")
                    .bind(B64.encode(crl))
                    .bind(&now)
                    .bind(&fp)
                    .execute(&db.pool)
                    .await?;
                fetched += 1;
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "trust list: CRL fetch failed");
                sqlx::query("UPDATE trust_certs SET crl_error = $1 WHERE fingerprint = $2")
                    .bind(format!("{now}: {e}"))
                    .bind(&fp)
                    .execute(&db.pool)
                    .await?;
            }
        }
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_crypto::wrap::Kek;
    use medsign_testkit::db::backends;
    use std::sync::{Arc, Mutex};

    /// A CA's CRL distribution point on loopback, serving what the test puts in `crl`.
    async fn serve_crl(crl: Arc<Mutex<Vec<u8>>>) -> std::net::SocketAddr {
        let app = axum::Router::new().route(
            "/crl",
            axum::routing::get(move || {
                let crl = crl.clone();
                async move { crl.lock().unwrap().clone() }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        at
    }

    /// On SQLite and PostgreSQL: a root becomes an anchor, its issuing CA an intermediate; adding
    /// again changes nothing (one audit entry each); an unreachable CRL is recorded on the entry;
    /// removal is audited and a second removal is 404.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn anchors_intermediates_and_removal() {
        for (_d, db) in backends().await {
            let ctx = Context::cli();
            // another hospital's CAs stand for an outside CA
            let (_o, other) = backends().await.remove(0);
            let outside = crate::ca::ensure(&other, &Kek::generate().unwrap(), "区域平台").await.unwrap();
            let pem = format!("{}{}", outside.rsa.root.to_pem(), outside.rsa.issuing.to_pem());
            let n = NewTrust { pem: pem.clone(), crl_url: None, note: "区域平台".into() };
            let added = add(&db, &ctx, &n).await.unwrap();
            assert_eq!(added.iter().map(|r| r.anchor).collect::<Vec<_>>(), [true, false]);
            assert_eq!(add(&db, &ctx, &n).await.unwrap().len(), 2);
            let set = load(&db).await.unwrap();
            assert_eq!((set.anchors.len(), set.intermediates.len(), set.crls.len()), (1, 1, 0));
            assert_eq!(set.anchors[0], outside.rsa.root);
            let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'trust.add'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(audited, 2, "adding again is not a change");
            // a CRL URL nobody answers: the entry says why, nothing else changes
            let sm2 = NewTrust {
                pem: outside.sm2.root.to_pem(),
                crl_url: Some("http://127.0.0.1:9/crl".into()),
                note: String::new(),
            };
            let r = add(&db, &ctx, &sm2).await.unwrap();
            assert!(r[0].crl_at.is_none() && r[0].crl_error.is_some(), "{r:?}");
            let (sm2_fp, sm2_error) = (r[0].fingerprint.clone(), r[0].crl_error.clone());
            for bad in [
                NewTrust { pem: "x".repeat(MAX_PEM + 1), ..sm2.clone() },
                NewTrust { note: "注".repeat(201), ..sm2.clone() },
            ] {
                assert!(matches!(add(&db, &ctx, &bad).await, Err(Error::Invalid(_))));
            }
            // the CRL: an older one (a replay hiding a revocation) is refused, a stale one is kept
            // but not used
            let served: Arc<Mutex<Vec<u8>>> = Arc::default();
            let at = serve_crl(served.clone()).await;
            let root = &outside.rsa;
            let crl = |this: i64, next: i64| {
                let now = chrono::Utc::now();
                let (t, n) = (now + chrono::Duration::minutes(this), now + chrono::Duration::minutes(next));
                medsign_pki::crl::build(&root.root, root.root_key.as_ref(), t, n, (this + 1000) as u64, &[]).unwrap()
            };
            *served.lock().unwrap() = crl(-60, 60 * 24);
            let rsa =
                NewTrust { pem: root.root.to_pem(), crl_url: Some(format!("http://{at}/crl")), note: String::new() };
            remove(&db, &ctx, &added[0].fingerprint).await.unwrap();
            let r = add(&db, &ctx, &rsa).await.unwrap();
            assert!(r[0].crl_error.is_none() && r[0].crl_at.is_some(), "{r:?}");
            // adding one entry fetches its CRL only, not every listed one
            let sm2_now = list(&db).await.unwrap().into_iter().find(|x| x.fingerprint == sm2_fp).unwrap();
            assert_eq!(sm2_now.crl_error, sm2_error, "the other entry's CRL was fetched again");
            // a hostile CRL server: an answer over the cap is refused, the CRL held is kept
            *served.lock().unwrap() = vec![0x30; MAX_CRL + 1];
            assert_eq!(refresh_crls(&db).await.unwrap(), 0);
            let big = list(&db).await.unwrap().into_iter().find(|x| x.fingerprint == r[0].fingerprint).unwrap();
            assert!(big.crl_error.as_deref().unwrap_or("").contains("over"), "{big:?}");
            assert_eq!(load(&db).await.unwrap().crls.len(), 1, "the CRL held is kept");
            *served.lock().unwrap() = crl(-120, 60 * 24);
            refresh_crls(&db).await.unwrap();
            let r = list(&db)
                .await
                .unwrap()
                .into_iter()
                .find(|x| x.crl_url.is_some() && x.anchor && x.subject == r[0].subject)
                .unwrap();
            assert!(r.crl_error.as_deref().unwrap_or("").contains("older"), "a replayed older CRL: {r:?}");
            assert_eq!(load(&db).await.unwrap().crls.len(), 1, "the newer CRL is kept");
            *served.lock().unwrap() = crl(-59, -1);
            assert_eq!(refresh_crls(&db).await.unwrap(), 1);
            assert_eq!(load(&db).await.unwrap().crls.len(), 0, "a CRL past its nextUpdate is no revocation data");
            remove(&db, &ctx, &r.fingerprint).await.unwrap();
            add(&db, &ctx, &n).await.unwrap();
            remove(&db, &ctx, &added[0].fingerprint).await.unwrap();
            assert!(matches!(remove(&db, &ctx, &added[0].fingerprint).await, Err(Error::NotFound(_))));
            assert_eq!(load(&db).await.unwrap().anchors.len(), 1, "the SM2 root is left");
        }
    }
}
