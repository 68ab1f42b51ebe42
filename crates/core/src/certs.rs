//! Staff certificates from the built-in CAs (issue #4, second slice): issue from a PKCS#10
//! request (SM2 with the standard or the empty ID, RSA, P-256), read, revoke with a reason, and
//! the CRL of each issuing CA. A user holds at most one active signing certificate per algorithm.

use crate::{
    Error, Result,
    audit::{self, Context, Kind},
    ca::{BuiltinCas, Hierarchy},
    custody,
    db::Db,
    users,
};
use chrono::{DateTime, Duration, Utc};
use medsign_crypto::{PublicKey, signer::KeySigner, wrap::Kek};
use medsign_pki::{
    alg::Sm2IdPolicy,
    cert::{Cert, CertTemplate, Profile, issue},
    crl::{self, Revoked},
    csr,
    name::parse_dn,
    x509_cert::ext::pkix::CrlReason,
};
use serde::Serialize;
use sqlx::Row;

/// A certificate record as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertRecord {
    /// serial, upper-case hex
    pub serial: String,
    /// owner
    pub employee_no: String,
    /// `sm2` | `rsa` | `p256`
    pub alg: String,
    /// `signer`
    pub profile: String,
    /// `active` | `revoked`
    pub status: String,
    /// validity start
    pub not_before: String,
    /// validity end
    pub not_after: String,
    /// revocation time
    pub revoked_at: Option<String>,
    /// revocation reason
    pub reason: Option<String>,
    /// subject (RFC 4514)
    pub subject: String,
    /// the certificate, PEM
    pub certificate_pem: String,
}

fn family(k: &PublicKey) -> &'static str {
    match k {
        PublicKey::Sm2(_) => "sm2",
        PublicKey::P256 { .. } => "p256",
        PublicKey::Rsa { .. } => "rsa",
    }
}

/// Which hierarchy issues for a key: SM2 keys under the SM2 CA, everything else under RSA.
fn hierarchy<'a>(cas: &'a BuiltinCas, k: &PublicKey) -> (&'a Hierarchy, &'static str) {
    match k {
        PublicKey::Sm2(_) => (&cas.sm2, "ca-sm2-issuing"),
        _ => (&cas.rsa, "ca-rsa-issuing"),
    }
}

/// The staff identity attribute: a keyed hash of the employee number — never an ID-card number.
fn staff_serial_number(kek: &Kek, employee_no: &str) -> String {
    let k = medsign_crypto::hash::hmac_sm3(kek.as_bytes(), &[b"medsign/staff-serial/v1"]);
    hex::encode_upper(&medsign_crypto::hash::hmac_sm3(&k, &[employee_no.as_bytes()])[..10])
}

fn record(r: &sqlx::any::AnyRow) -> Result<CertRecord> {
    let pem: String = r.try_get("cert_pem")?;
    let subject = Cert::load_all(pem.as_bytes())
        .ok()
        .and_then(|c| c.into_iter().next())
        .map(|c| c.subject_display())
        .unwrap_or_default();
    Ok(CertRecord {
        serial: r.try_get("serial")?,
        employee_no: r.try_get("employee_no")?,
        alg: r.try_get("alg")?,
        profile: r.try_get("profile")?,
        status: r.try_get("status")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        revoked_at: r.try_get("revoked_at")?,
        reason: r.try_get("reason")?,
        subject,
        certificate_pem: pem,
    })
}

/// What issuance needs to know about the CA and the installation.
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    /// the built-in CAs
    pub cas: &'a BuiltinCas,
    /// the hospital's name (O=)
    pub organization: &'a str,
    /// base of the CRL and OCSP URLs
    pub public_url: &'a str,
}

/// Issue a one-year staff signing certificate for `employee_no` from a PKCS#10 request.
pub async fn issue_for_user(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    employee_no: &str,
    csr_pem: &str,
) -> Result<CertRecord> {
    let req = parse_csr(csr_pem)?;
    issue_key(db, kek, issuer, ctx, employee_no, &req.public_key, None).await
}

fn parse_csr(pem: &str) -> Result<csr::Csr> {
    csr::parse(pem.as_bytes(), Sm2IdPolicy::AllowEmpty)
        .map_err(|e| Error::Invalid(format!("证书请求无效 / invalid certificate request: {e}")))
}

/// Renew an active certificate: a new one-year certificate for the same user, with the same key
/// (no `csr`) or the key of a new request of the same algorithm; the old one is revoked as
/// superseded in the same transaction.
pub async fn renew(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    serial: &str,
    csr_pem: Option<&str>,
) -> Result<CertRecord> {
    let old = get(db, serial).await?;
    if old.status != "active" {
        return Err(Error::Conflict(format!(
            "证书 {} 已吊销，不能续期 / revoked certificates cannot be renewed",
            old.serial
        )));
    }
    let key = match csr_pem {
        Some(p) => parse_csr(p)?.public_key,
        None => Cert::load_all(old.certificate_pem.as_bytes())
            .map_err(|e| Error::Config(e.to_string()))?
            .remove(0)
            .public_key()
            .map_err(|e| Error::Config(e.to_string()))?
            .clone(),
    };
    if family(&key) != old.alg {
        return Err(Error::Invalid(format!(
            "续期须使用同一算法（{}）/ renewal must keep the algorithm ({})",
            old.alg, old.alg
        )));
    }
    issue_key(db, kek, issuer, ctx, &old.employee_no.clone(), &key, Some(&old)).await
}

async fn issue_key(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    employee_no: &str,
    public_key: &PublicKey,
    replaces: Option<&CertRecord>,
) -> Result<CertRecord> {
    let Issuer { cas, organization, public_url } = issuer;
    let user = users::get(db, kek, employee_no).await?;
    if user.status != "active" {
        return Err(Error::Invalid(format!("用户 {employee_no} 已停用 / user {employee_no} is disabled")));
    }
    let alg = family(public_key);
    let active =
        sqlx::query("SELECT serial FROM certificates WHERE employee_no = $1 AND alg = $2 AND status = 'active'")
            .bind(employee_no)
            .bind(alg)
            .fetch_optional(&db.pool)
            .await?;
    if let Some(r) = active {
        let s: String = r.try_get("serial")?;
        if replaces.map(|o| o.serial.as_str()) != Some(s.as_str()) {
            return Err(Error::Conflict(format!(
                "用户已有有效的 {alg} 签名证书 {s}，请先吊销或续期 / the user already has an active {alg} signing certificate {s}"
            )));
        }
    }
    let (h, key_name) = hierarchy(cas, public_key);
    let ca_key = KeySigner::new(
        custody::ensure_key(db, kek, key_name, h.issuing.public_key().map_err(|e| Error::Config(e.to_string()))?.alg())
            .await?,
    );
    let esc = |v: &str| v.replace(',', "\\,");
    let mut dn = format!("CN={}", esc(&user.name));
    if let Some(dep) = &user.department {
        dn += &format!(",OU={}", esc(dep));
    }
    dn += &format!(",O={},C=CN,SERIALNUMBER={}", esc(organization), staff_serial_number(kek, employee_no));
    let subject = parse_dn(&dn).map_err(|e| Error::Invalid(e.to_string()))?;
    let now = Utc::now();
    let mut t = CertTemplate::new(
        subject,
        public_key.clone(),
        Profile::Signer,
        now - Duration::minutes(5),
        now + Duration::days(365),
    );
    if t.not_after > h.issuing.not_after() {
        t.not_after = h.issuing.not_after();
    }
    let base = public_url.trim_end_matches('/');
    t.crl_url = Some(format!("{base}/pki/crl{}", if alg == "sm2" { "" } else { "?ca=rsa" }));
    t.ocsp_url = Some(format!("{base}/pki/ocsp"));
    let cert = issue(&t, Some(&h.issuing), &ca_key).map_err(|e| Error::Config(format!("issuance failed: {e}")))?;
    let text = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    if let Some(old) = replaces {
        sqlx::query(
            "UPDATE certificates SET status = 'revoked', revoked_at = $1, reason = 'superseded' WHERE serial = $2",
        )
        .bind(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .bind(&old.serial)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO certificates (serial, employee_no, alg, profile, status, not_before, not_after, cert_pem, created_at) \
         VALUES ($1, $2, $3, 'signer', 'active', $4, $5, $6, $7)",
    )
    .bind(cert.serial_hex())
    .bind(employee_no)
    .bind(alg)
    .bind(text(cert.not_before()))
    .bind(text(cert.not_after()))
    .bind(cert.to_pem())
    .bind(crate::now_text())
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::DataMaintenance,
        if replaces.is_some() { "certificate.renew" } else { "certificate.issue" },
        &format!("certificate:{}", cert.serial_hex()),
        serde_json::json!({"employee_no": employee_no, "alg": alg, "subject": cert.subject_display(), "replaces": replaces.map(|o| &o.serial)}),
    )
    .await?;
    tx.commit().await?;
    get(db, &cert.serial_hex()).await
}

/// Filters of [`list`].
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// owner
    pub employee_no: Option<String>,
    /// `active` | `revoked`
    pub status: Option<String>,
    /// `sm2` | `rsa` | `p256`
    pub alg: Option<String>,
    /// page, from 1
    pub page: Option<i64>,
    /// page size, 1–500 (default 50)
    pub page_size: Option<i64>,
}

/// Certificates matching the filters, newest first, and how many match in all.
pub async fn list(db: &Db, q: &ListQuery) -> Result<(Vec<CertRecord>, i64)> {
    let (limit, offset) = crate::paging(q.page, q.page_size, 50, 500)?;
    let filter = "($1 IS NULL OR employee_no = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR alg = $3)";
    let total: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM certificates WHERE {filter}")))
            .bind(&q.employee_no)
            .bind(&q.status)
            .bind(&q.alg)
            .fetch_one(&db.pool)
            .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM certificates WHERE {filter} ORDER BY created_at DESC, serial LIMIT $4 OFFSET $5"
    )))
    .bind(&q.employee_no)
    .bind(&q.status)
    .bind(&q.alg)
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    Ok((rows.iter().map(record).collect::<Result<_>>()?, total))
}

/// One certificate by serial (hex, any case).
pub async fn get(db: &Db, serial: &str) -> Result<CertRecord> {
    let r = sqlx::query("SELECT * FROM certificates WHERE serial = $1")
        .bind(serial.to_ascii_uppercase())
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("证书 {serial} 不存在 / no certificate {serial}")))?;
    record(&r)
}

fn reason(name: &str) -> Option<CrlReason> {
    Some(match name {
        "unspecified" => CrlReason::Unspecified,
        "key_compromise" => CrlReason::KeyCompromise,
        "affiliation_changed" => CrlReason::AffiliationChanged,
        "superseded" => CrlReason::Superseded,
        "cessation_of_operation" => CrlReason::CessationOfOperation,
        _ => return None,
    })
}

/// Revoke with a reason (`unspecified`, `key_compromise`, `affiliation_changed`, `superseded`,
/// `cessation_of_operation`). Revoking twice is an error.
pub async fn revoke(db: &Db, ctx: &Context, serial: &str, reason_name: &str) -> Result<CertRecord> {
    if reason(reason_name).is_none() {
        return Err(Error::Invalid(format!(
            "未知吊销原因 '{reason_name}' / unknown reason (unspecified, key_compromise, affiliation_changed, superseded, cessation_of_operation)"
        )));
    }
    let cur = get(db, serial).await?;
    if cur.status == "revoked" {
        return Err(Error::Conflict(format!("证书 {} 已吊销 / already revoked", cur.serial)));
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE certificates SET status = 'revoked', revoked_at = $1, reason = $2 WHERE serial = $3")
        .bind(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .bind(reason_name)
        .bind(&cur.serial)
        .execute(&mut *tx)
        .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::DataMaintenance,
        "certificate.revoke",
        &format!("certificate:{}", cur.serial),
        serde_json::json!({"reason": reason_name}),
    )
    .await?;
    tx.commit().await?;
    get(db, &cur.serial).await
}

/// A fresh CRL (DER) of the SM2 or RSA issuing CA, valid for 24 hours.
pub async fn crl(db: &Db, kek: &Kek, cas: &BuiltinCas, rsa: bool) -> Result<Vec<u8>> {
    let (h, key_name, algs): (&Hierarchy, &str, &[&str]) =
        if rsa { (&cas.rsa, "ca-rsa-issuing", &["rsa", "p256"]) } else { (&cas.sm2, "ca-sm2-issuing", &["sm2"]) };
    let rows = sqlx::query(
        "SELECT serial, alg, revoked_at, reason FROM certificates WHERE status = 'revoked' ORDER BY serial",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut revoked = Vec::new();
    for r in &rows {
        let alg: String = r.try_get("alg")?;
        if !algs.contains(&alg.as_str()) {
            continue;
        }
        let serial: String = r.try_get("serial")?;
        let at: Option<String> = r.try_get("revoked_at")?;
        let why: Option<String> = r.try_get("reason")?;
        revoked.push(Revoked {
            serial: hex::decode(&serial).map_err(|_| Error::Config("stored serial is not hex".into()))?,
            time: at
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(Utc::now),
            reason: why.as_deref().and_then(reason),
        });
    }
    let key = KeySigner::new(
        custody::ensure_key(db, kek, key_name, h.issuing.public_key().map_err(|e| Error::Config(e.to_string()))?.alg())
            .await?,
    );
    let now = Utc::now();
    let number = now.timestamp() as u64;
    crl::build(&h.issuing, &key, now, now + Duration::hours(24), number, &revoked)
        .map_err(|e| Error::Config(format!("CRL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::backends;
    use medsign_crypto::{KeyAlg, PrivateKey};
    use medsign_pki::{crl::Crl, path};

    #[tokio::test]
    async fn issue_revoke_crl() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = crate::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let issuer = Issuer { cas: &cas, organization: "某县人民医院", public_url: "http://127.0.0.1:7080" };
            let dep =
                crate::departments::NewDepartment { code: "XNK".into(), name: "心内科".into(), parent_code: None };
            crate::departments::create_many(&db, &ctx, &[dep]).await.unwrap();
            let u = users::NewUser {
                employee_no: "1001".into(),
                name: "张三".into(),
                department: Some("XNK".into()),
                title: None,
                phone: None,
                id_card: None,
                role: users::Role::Doctor,
            };
            users::create_many(&db, &kek, &ctx, &[u]).await.unwrap();
            let key = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
            let req = csr::build(&parse_dn("CN=whatever").unwrap(), &key).unwrap();
            let rec = issue_for_user(&db, &kek, issuer, &ctx, "1001", &req).await.unwrap();
            assert_eq!((rec.alg.as_str(), rec.status.as_str()), ("sm2", "active"));
            assert!(rec.subject.starts_with("CN=张三,OU=XNK,O=某县人民医院,C=CN,SERIALNUMBER="), "{}", rec.subject);
            let cert = Cert::load_all(rec.certificate_pem.as_bytes()).unwrap().remove(0);
            path::validate(
                &cert,
                std::slice::from_ref(&cas.sm2.issuing),
                std::slice::from_ref(&cas.sm2.root),
                &path::PathOptions::at(Utc::now()),
            )
            .unwrap();
            // one active certificate per algorithm
            assert!(matches!(issue_for_user(&db, &kek, issuer, &ctx, "1001", &req).await, Err(Error::Conflict(_))));
            assert!(matches!(issue_for_user(&db, &kek, issuer, &ctx, "9999", &req).await, Err(Error::NotFound(_))));
            assert!(matches!(issue_for_user(&db, &kek, issuer, &ctx, "1001", "junk").await, Err(Error::Invalid(_))));
            // revoke → in the CRL; twice → conflict; bad reason → invalid
            assert!(revoke(&db, &ctx, &rec.serial, "because").await.is_err());
            let r = revoke(&db, &ctx, &rec.serial.to_lowercase(), "key_compromise").await.unwrap();
            assert_eq!(r.status, "revoked");
            assert!(matches!(revoke(&db, &ctx, &rec.serial, "key_compromise").await, Err(Error::Conflict(_))));
            let c = Crl::from_bytes(&crl(&db, &kek, &cas, false).await.unwrap()).unwrap();
            c.verify(&cas.sm2.issuing, Sm2IdPolicy::Standard).unwrap();
            assert_eq!(c.find(cert.serial()).unwrap().reason, Some(CrlReason::KeyCompromise));
            let rsa_crl = Crl::from_bytes(&crl(&db, &kek, &cas, true).await.unwrap()).unwrap();
            assert!(rsa_crl.find(cert.serial()).is_none());
            // after revocation a new one may be issued; renew it with the same key (the old one is
            // superseded), then with a new CSR; the list shows the history
            let fresh = issue_for_user(&db, &kek, issuer, &ctx, "1001", &req).await.unwrap();
            let renewed = renew(&db, &kek, issuer, &ctx, &fresh.serial, None).await.unwrap();
            assert_ne!(renewed.serial, fresh.serial);
            assert_eq!(get(&db, &fresh.serial).await.unwrap().reason.as_deref(), Some("superseded"));
            let new_key = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
            let req2 = csr::build(&parse_dn("CN=y").unwrap(), &new_key).unwrap();
            let rekeyed = renew(&db, &kek, issuer, &ctx, &renewed.serial, Some(&req2)).await.unwrap();
            let rsa_key = KeySigner::new(PrivateKey::generate(KeyAlg::Rsa2048).unwrap());
            let rsa_req = csr::build(&parse_dn("CN=z").unwrap(), &rsa_key).unwrap();
            assert!(matches!(
                renew(&db, &kek, issuer, &ctx, &rekeyed.serial, Some(&rsa_req)).await,
                Err(Error::Invalid(_))
            ));
            assert!(matches!(renew(&db, &kek, issuer, &ctx, &fresh.serial, None).await, Err(Error::Conflict(_))));
            let (mine, total) =
                list(&db, &ListQuery { employee_no: Some("1001".into()), ..Default::default() }).await.unwrap();
            assert_eq!((total, mine.len()), (4, 4));
            let (active, n) =
                list(&db, &ListQuery { status: Some("active".into()), ..Default::default() }).await.unwrap();
            assert_eq!((n, active[0].serial.as_str()), (1, rekeyed.serial.as_str()));
            assert!(list(&db, &ListQuery { page: Some(0), ..Default::default() }).await.is_err());
            assert!(matches!(get(&db, "ABCDEF").await, Err(Error::NotFound(_))));
        }
    }
}
