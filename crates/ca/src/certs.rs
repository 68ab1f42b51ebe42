//! Staff certificates from the built-in CAs (issue #4): issue from a PKCS#10 request (SM2 with the
//! standard or the empty ID, RSA, P-256) or from a bare SM2 public key with a proof of possession
//! (the two-party key), renew, revoke with a reason, hold and release (certificateHold), list
//! what expires soon, and the CRL of each issuing CA — stored, re-signed on every status change
//! and every `ca.crl_refresh_hours`. A user holds at most one active (or held) signing certificate
//! per algorithm.

use crate::{
    ca::{BuiltinCas, Hierarchy, Links},
    channels::{Builtin, Channels, Enrollment},
};
use chrono::{DateTime, Duration, Utc};
use medsign_crypto::{PublicKey, signer::KeySigner, wrap::Kek};
use medsign_directory::users;
use medsign_pki::{
    alg::Sm2IdPolicy,
    cert::Cert,
    crl::{self, Revoked},
    csr,
    name::parse_dn,
    x509_cert::{ext::pkix::CrlReason, name::Name},
};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::Serialize;
use sqlx::Row;
use std::{collections::BTreeMap, sync::Arc};

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
    /// the CA channel that issued it (`builtin`, or a channel id)
    pub channel: String,
    /// the staff profile version it followed (built-in CA; see `GET /admin/v1/ca/profile`)
    pub profile_version: Option<String>,
    /// `active` | `on_hold` | `revoked`
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

/// The algorithms (`certificates.alg`) each hierarchy issues.
pub fn hierarchy_algs(h: &Hierarchy) -> &'static [&'static str] {
    if h.name == "sm2" { &["sm2"] } else { &["rsa", "p256"] }
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
        channel: r.try_get("channel")?,
        profile_version: r.try_get("profile_version")?,
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
    /// the CA channels (None: the built-in CA only)
    pub channels: Option<&'a Channels>,
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
    let der = medsign_crypto::keys::pem_decode(csr_pem).map(|(_, d)| d).ok();
    issue_key(db, kek, issuer, ctx, employee_no, &req.public_key, der.as_deref(), None, None).await
}

/// The message a bare-key request signs to prove possession of the key (SM3withSM2, standard
/// ID): `medsign-pop/v1`, the employee number and the hex SPKI, each on its own line. It binds the
/// key to this user; the phone makes it with the two-party protocol (the full key never exists).
pub fn pop_message(employee_no: &str, key: &PublicKey) -> Vec<u8> {
    format!("medsign-pop/v1\n{employee_no}\n{}", hex::encode(key.to_spki_der())).into_bytes()
}

/// Parse a bare public key: SPKI PEM, base64 SPKI DER, or hex of the uncompressed SM2 point.
pub fn parse_public_key(text: &str) -> Result<PublicKey> {
    use base64::Engine;
    let t = text.trim();
    let bad = |e: String| Error::Invalid(format!("公钥无效 / invalid public key: {e}"));
    if t.contains("-----BEGIN") {
        return PublicKey::from_bytes(t.as_bytes()).map_err(|e| bad(e.to_string()));
    }
    if t.len() == 130 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let point = hex::decode(t).map_err(|e| bad(e.to_string()))?;
        return PublicKey::from_sec1_point(medsign_crypto::KeyAlg::Sm2, &point).map_err(|e| bad(e.to_string()));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(t)
        .map_err(|_| bad("expected SPKI PEM, base64 SPKI or a 130-hex-digit SM2 point".into()))?;
    PublicKey::from_spki_der(&der).map_err(|e| bad(e.to_string()))
}

/// Issue a staff signing certificate for a bare SM2 public key (the two-party key of the mobile
/// enrolment), given `proof`: the key's signature (DER or 64-byte r‖s, base64) over
/// [`pop_message`].
pub async fn issue_for_key(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    employee_no: &str,
    public_key: &str,
    proof: &str,
) -> Result<CertRecord> {
    use base64::Engine;
    let key = parse_public_key(public_key)?;
    if !matches!(key, PublicKey::Sm2(_)) {
        return Err(Error::Invalid(
            "公钥加持有证明只用于 SM2 密钥；其它算法请提交证书请求（CSR）/ a bare key with proof is for SM2 keys; send a CSR for other algorithms".into(),
        ));
    }
    let sig = base64::engine::general_purpose::STANDARD
        .decode(proof.trim())
        .map_err(|_| Error::Invalid("持有证明不是 base64 / proof is not base64".into()))?;
    key.verify(
        medsign_crypto::SignatureScheme::Sm2Sm3,
        &pop_message(employee_no, &key),
        &sig,
        Some(medsign_crypto::sm2::DEFAULT_ID),
    )
    .map_err(|_| {
        Error::Invalid("持有证明验证失败：签名与公钥或工号不符 / proof of possession failed: the signature does not match the key and employee number".into())
    })?;
    issue_key(db, kek, issuer, ctx, employee_no, &key, None, None, None).await
}

impl CertRecord {
    /// The certificate itself.
    pub fn cert(&self) -> Result<Cert> {
        Cert::load_all(self.certificate_pem.as_bytes())
            .map_err(|e| Error::internal_from("certs::cert", e))?
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal(format!("certificate record {} is empty", self.serial)))
    }
}

/// Issue a staff signing certificate for a two-party SM2 key the server helped generate (its
/// proofs were checked, so no proof of possession is asked). An earlier two-party certificate of
/// the user is superseded; a server-custody one must be revoked first. `csr_der` is the key's own
/// request when phone and server signed one (an EST CA needs it); `link` the key's id, to link the
/// certificate to it in the same transaction (see [`store`]).
#[allow(clippy::too_many_arguments)]
pub async fn issue_for_two_party(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    employee_no: &str,
    key: &PublicKey,
    csr_der: Option<&[u8]>,
    link: Option<&str>,
) -> Result<CertRecord> {
    let earlier: Option<String> = sqlx::query_scalar(
        "SELECT c.serial FROM certificates c JOIN split_keys k ON k.cert_serial = c.serial \
         WHERE c.employee_no = $1 AND c.alg = 'sm2' AND c.status <> 'revoked'",
    )
    .bind(employee_no)
    .fetch_optional(&db.pool)
    .await?;
    let replaces = match earlier {
        Some(serial) => Some(get(db, &serial).await?),
        None => None,
    };
    issue_key(db, kek, issuer, ctx, employee_no, key, csr_der, replaces.as_ref(), link).await
}

/// Who holds the key of certificate `rec`: `phone` (a two-party key: phone and server),
/// `server` (the staff member's server-custody key), or `external` (a key the requester keeps).
pub async fn key_holder(db: &Db, rec: &CertRecord) -> Result<&'static str> {
    if two_party_key_of(db, &rec.serial).await?.is_some() {
        return Ok("phone");
    }
    let name = format!("staff-{}-{}", rec.employee_no, rec.alg);
    let held = medsign_store::custody::public_key(db, &name).await.ok();
    let cert = rec.cert()?;
    Ok(match (held, cert.public_key()) {
        (Some(k), Ok(c)) if &k == c => "server",
        _ => "external",
    })
}

/// The two-party key (phone + server) certificate `serial` certifies, if it is one's.
pub async fn two_party_key_of(db: &Db, serial: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT id FROM split_keys WHERE cert_serial = $1")
        .bind(serial)
        .fetch_optional(&db.pool)
        .await?)
}

/// Refused when `employee_no` holds an SM2 signing certificate that is not a two-party key's (a
/// server-held key's): a phone's key could never be certified beside it, so none is made.
pub async fn two_party_blocked(db: &Db, employee_no: &str) -> Result<()> {
    let other: Option<String> = sqlx::query_scalar(
        "SELECT c.serial FROM certificates c WHERE c.employee_no = $1 AND c.alg = 'sm2' AND c.status <> 'revoked' \
         AND NOT EXISTS (SELECT 1 FROM split_keys k WHERE k.cert_serial = c.serial)",
    )
    .bind(employee_no)
    .fetch_optional(&db.pool)
    .await?;
    match other {
        None => Ok(()),
        Some(s) => Err(Error::Conflict(format!(
            "用户已有另一把密钥的 SM2 证书 {s}，请先吊销 / the user holds an SM2 certificate {s} for another key; revoke it first"
        ))),
    }
}

/// The subject DN (RFC 4514 text, and parsed) a staff certificate of `employee_no` carries: name,
/// department, the hospital, and a serial number derived from the staff number under the KEK (so
/// the staff number itself is not published).
pub async fn staff_subject(db: &Db, kek: &Kek, organization: &str, employee_no: &str) -> Result<(String, Name)> {
    let user = users::get(db, kek, employee_no).await?;
    if user.status != "active" {
        return Err(Error::Invalid(format!("用户 {employee_no} 已停用 / user {employee_no} is disabled")));
    }
    let esc = |v: &str| v.replace(',', "\\,");
    let mut dn = format!("CN={}", esc(&user.name));
    if let Some(dep) = &user.department {
        dn += &format!(",OU={}", esc(dep));
    }
    dn += &format!(",O={},C=CN,SERIALNUMBER={}", esc(organization), staff_serial_number(kek, employee_no));
    let subject = parse_dn(&dn).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((dn, subject))
}

/// Does the active CA channel need the requester's own PKCS#10 (EST)? A two-party key then gets
/// its certificate only after phone and server have signed its request together.
pub async fn needs_request(db: &Db, issuer: Issuer<'_>) -> Result<bool> {
    match issuer.channels {
        Some(_) => crate::channels::active_needs_request(db).await,
        None => Ok(false),
    }
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
            .map_err(|e| Error::internal_from("certs::renew", e))?
            .remove(0)
            .public_key()
            .map_err(|e| Error::internal_from("certs::renew", e))?
            .clone(),
    };
    if family(&key) != old.alg {
        return Err(Error::Invalid(format!(
            "续期须使用同一算法（{}）/ renewal must keep the algorithm ({})",
            old.alg, old.alg
        )));
    }
    // a two-party key (phone + server) renews with the same key only (`store` moves its record on)
    let split = two_party_key_of(db, &old.serial).await?;
    if split.is_some() && csr_pem.is_some() && Some(&key) != old.cert()?.public_key().ok() {
        return Err(Error::Invalid(
            "两方协同密钥的证书只能同钥续期（换钥请在手机上重新生成密钥）/ a two-party key's certificate renews with the same key (a new key is made on the phone)".into(),
        ));
    }
    let der = csr_pem.and_then(|p| medsign_crypto::keys::pem_decode(p).map(|(_, d)| d).ok());
    issue_key(db, kek, issuer, ctx, &old.employee_no.clone(), &key, der.as_deref(), Some(&old), None).await
}

#[allow(clippy::too_many_arguments)]
async fn issue_key(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    employee_no: &str,
    public_key: &PublicKey,
    csr_der: Option<&[u8]>,
    replaces: Option<&CertRecord>,
    link: Option<&str>,
) -> Result<CertRecord> {
    let Issuer { cas, organization, public_url, channels } = issuer;
    let (dn, subject) = staff_subject(db, kek, organization, employee_no).await?;
    let alg = family(public_key);
    let active =
        sqlx::query("SELECT serial FROM certificates WHERE employee_no = $1 AND alg = $2 AND status <> 'revoked'")
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
    let enrollment = Enrollment {
        employee_no,
        subject: &dn,
        subject_name: &subject,
        public_key,
        csr_der,
        renewal: replaces.is_some(),
    };
    let builtin = Builtin { cas, public_url };
    let (issued, channel) = match channels {
        Some(c) => c.issue(db, kek, &builtin, ctx, &enrollment).await?,
        None => (builtin.issue_now(&subject, public_key)?, "builtin".to_string()),
    };
    let version = (channel == "builtin").then_some(cas.staff.version.as_str());
    store(db, ctx, employee_no, &issued.cert, &channel, version, replaces, link).await
}

/// Record an issued certificate (and supersede the one it replaces) in one transaction with its
/// audit entry. When the new certificate is for the same key as the one it replaces, a two-party
/// key's record follows it in that transaction (the phone never points at a revoked certificate,
/// not even after a crash between the two writes); `link` names a two-party key getting its first
/// certificate, linked in the same way. A replaced certificate that is revoked meanwhile (a
/// parallel renewal) makes this a conflict and nothing is kept; a two-party key that was destroyed
/// meanwhile (the phone unbound) gets its certificate recorded as revoked, never active.
#[allow(clippy::too_many_arguments)]
async fn store(
    db: &Db,
    ctx: &Context,
    employee_no: &str,
    cert: &Cert,
    channel: &str,
    profile_version: Option<&str>,
    replaces: Option<&CertRecord>,
    link: Option<&str>,
) -> Result<CertRecord> {
    let alg = family(cert.public_key().map_err(|e| Error::internal_from("certs::store", e))?);
    let text = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let mut key_gone = false;
    if let Some(old) = replaces {
        let superseded = sqlx::query(
            "UPDATE certificates SET status = 'revoked', revoked_at = $1, reason = 'superseded' WHERE serial = $2 AND status <> 'revoked'",
        )
        .bind(&now)
        .bind(&old.serial)
        .execute(&mut *tx)
        .await?;
        if superseded.rows_affected() != 1 {
            return Err(Error::Conflict(format!(
                "证书 {} 已被吊销或替换 / certificate {} was revoked or replaced meanwhile",
                old.serial, old.serial
            )));
        }
        sqlx::query("UPDATE crls SET stale = 1").execute(&mut *tx).await?;
        let old_cert = old.cert()?;
        if matches!((old_cert.public_key(), cert.public_key()), (Ok(a), Ok(b)) if a == b) {
            let split: Option<String> = sqlx::query_scalar("SELECT id FROM split_keys WHERE cert_serial = $1")
                .bind(&old.serial)
                .fetch_optional(&mut *tx)
                .await?;
            let moved = sqlx::query(
                "UPDATE split_keys SET cert_serial = $1, updated_at = $2 WHERE cert_serial = $3 AND status = 'active'",
            )
            .bind(cert.serial_hex())
            .bind(medsign_store::now_text())
            .bind(&old.serial)
            .execute(&mut *tx)
            .await?;
            key_gone = split.is_some() && moved.rows_affected() == 0;
        }
    }
    if let Some(key) = link {
        let linked = sqlx::query(
            "UPDATE split_keys SET cert_serial = $1, updated_at = $2 WHERE id = $3 AND status = 'active' AND cert_serial IS NULL",
        )
        .bind(cert.serial_hex())
        .bind(medsign_store::now_text())
        .bind(key)
        .execute(&mut *tx)
        .await?;
        key_gone = linked.rows_affected() != 1;
    }
    let (status, revoked_at, reason) = match key_gone {
        true => ("revoked", Some(now.clone()), Some("cessation_of_operation")),
        false => ("active", None, None),
    };
    sqlx::query(
        "INSERT INTO certificates (serial, employee_no, alg, profile, status, not_before, not_after, cert_pem, created_at, channel, profile_version, revoked_at, reason) \
         VALUES ($1, $2, $3, 'signer', $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(cert.serial_hex())
    .bind(employee_no)
    .bind(alg)
    .bind(status)
    .bind(text(cert.not_before()))
    .bind(text(cert.not_after()))
    .bind(cert.to_pem())
    .bind(medsign_store::now_text())
    .bind(channel)
    .bind(profile_version)
    .bind(revoked_at)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    if key_gone {
        sqlx::query("UPDATE crls SET stale = 1").execute(&mut *tx).await?;
        tracing::warn!(serial = %cert.serial_hex(), channel, "the key was destroyed while it was certified: recorded as revoked");
    }
    audit::ok(
        &mut tx,
        ctx,
        Kind::DataMaintenance,
        if replaces.is_some() { "certificate.renew" } else { "certificate.issue" },
        &format!("certificate:{}", cert.serial_hex()),
        serde_json::json!({"employee_no": employee_no, "alg": alg, "subject": cert.subject_display(), "channel": channel,
            "replaces": replaces.map(|o| &o.serial), "key": link, "revoked_at_once": key_gone}),
    )
    .await?;
    tx.commit().await?;
    get(db, &cert.serial_hex()).await
}

/// `POST /api/v1/ca/enroll`: this node's built-in CA issues for another medsign acting as a
/// registration authority (its `medsign` CA channel). The calling app vouches for identity and
/// possession (it holds the `certs` scope); a CSR, when sent, must still verify.
pub async fn ra_enroll(
    db: &Db,
    cas: &BuiltinCas,
    public_url: &str,
    ctx: &Context,
    ra_name: &str,
    req: &crate::channels::RaEnrollment,
) -> Result<crate::channels::RaIssued> {
    // proof of possession: a request the key itself signed (checked by `parse_csr`)
    let pem = req.csr.as_deref().ok_or_else(|| {
        Error::Invalid(
            "须提供由该密钥签名的证书请求（csr）/ a certificate request signed by the key (csr) is required".into(),
        )
    })?;
    let key = parse_csr(pem)?.public_key;
    if !req.public_key.trim().is_empty() && parse_public_key(&req.public_key)? != key {
        return Err(Error::Invalid("CSR 与 public_key 不是同一把密钥 / the CSR is for another key".into()));
    }
    if req.employee_no.trim().is_empty() || req.employee_no.len() > 64 {
        return Err(Error::Invalid("employee_no 须为 1–64 个字符 / employee_no must be 1-64 characters".into()));
    }
    let subject = parse_dn(&req.subject).map_err(|e| Error::Invalid(format!("subject: {e}")))?;
    // the subject is bound to the identity the RA was registered under: its organisation is the
    // RA app's name, so no app can get a certificate naming this hospital's staff (or anyone
    // else's) for its own key
    let orgs: Vec<String> = subject
        .iter()
        .filter(|atv| atv.oid == medsign_pki::oid::AT_ORGANIZATION)
        .map(|atv| medsign_pki::name::value_text(&atv.value))
        .collect();
    if ra_name.is_empty() || orgs.len() != 1 || orgs[0] != ra_name {
        let e = Error::Forbidden(format!(
            "证书主体的机构（O）须为本应用登记的名称“{ra_name}” / the subject's organisation (O) must be this app's registered name '{ra_name}'"
        ));
        return Err(audit::refused(
            db,
            ctx,
            Kind::Admin,
            "ca.enroll",
            &format!("ra:{}:{}", ctx.actor, req.employee_no),
            e,
        )
        .await);
    }
    let issued = Builtin { cas, public_url }.issue_now(&subject, &key)?;
    let owner = format!("ra:{}:{}", ctx.actor, req.employee_no);
    let rec = store(db, ctx, &owner, &issued.cert, "builtin", Some(&cas.staff.version), None, None).await?;
    Ok(crate::channels::RaIssued {
        serial: rec.serial,
        certificate_pem: rec.certificate_pem,
        chain_pem: issued.chain.iter().map(Cert::to_pem).collect(),
    })
}

/// Whether `app` may revoke, hold or release certificate `serial` (issue #15): the hospital's own
/// certificates (seal, TSA: owner `org:…`) only an admin; certificates issued to a registration
/// authority (`ra:app:<id>:…`) that RA or an admin; staff certificates any app with `certs`.
pub async fn authorize_change(db: &Db, app: &medsign_directory::apps::App, serial: &str) -> Result<()> {
    use medsign_directory::apps::Scope;
    let owner: Option<String> = sqlx::query_scalar("SELECT employee_no FROM certificates WHERE serial = $1")
        .bind(serial.trim().to_ascii_uppercase())
        .fetch_optional(&db.pool)
        .await?;
    let Some(owner) = owner else {
        // unknown: the operation itself answers 404 (to apps allowed to manage certificates)
        return app.require(Scope::Certs);
    };
    if owner.starts_with("org:") {
        app.require(Scope::Admin)
    } else if let Some(rest) = owner.strip_prefix("ra:") {
        if rest.starts_with(&format!("app:{}:", app.app_id)) { Ok(()) } else { app.require(Scope::Admin) }
    } else {
        app.require(Scope::Certs)
    }
}

/// Record a server-held organisation certificate (TSA, seal, tunnel: profile `tunnel_*`) among
/// the CA's certificates so that OCSP and the CRL answer for it; an earlier seal certificate of
/// the same owner is superseded (an earlier TSA or tunnel certificate runs out instead, or is
/// revoked by hand). Returns whether it was new.
pub async fn record_org(db: &Db, ctx: &Context, owner: &str, profile: &str, cert: &Cert) -> Result<bool> {
    let serial = cert.serial_hex();
    let known: Option<String> = sqlx::query_scalar("SELECT serial FROM certificates WHERE serial = $1")
        .bind(&serial)
        .fetch_optional(&db.pool)
        .await?;
    if known.is_some() {
        return Ok(false);
    }
    let alg = family(cert.public_key().map_err(|e| Error::internal_from("certs::record_org", e))?);
    let text = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // a renewed TSA certificate (same key) does not revoke the one before: every token it issued
    // would then verify as revoked, and the archive timestamps of PAdES B-LTA documents (issue
    // #16), added once the renewed certificate exists, could no longer rescue them. The old
    // certificate simply runs out.
    // Nor does a new tunnel certificate revoke the one still deployed on a gateway or server: the
    // tunnel would drop before the new one is installed.
    if profile != "tsa" && !profile.starts_with("tunnel_") {
        sqlx::query(
            "UPDATE certificates SET status = 'revoked', revoked_at = $1, reason = 'superseded' \
             WHERE employee_no = $2 AND status <> 'revoked'",
        )
        .bind(text(Utc::now()))
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO certificates (serial, employee_no, alg, profile, status, not_before, not_after, cert_pem, created_at, channel) \
         VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, 'builtin')",
    )
    .bind(&serial)
    .bind(owner)
    .bind(alg)
    .bind(profile)
    .bind(text(cert.not_before()))
    .bind(text(cert.not_after()))
    .bind(cert.to_pem())
    .bind(medsign_store::now_text())
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE crls SET stale = 1").execute(&mut *tx).await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "certificate.org.issue",
        &format!("certificate:{serial}"),
        serde_json::json!({"owner": owner, "profile": profile, "subject": cert.subject_display()}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The custody name of a seal key: `seal-hospital-sm2`, `seal-dept-<code>-rsa`, …
pub fn seal_key_name(department: Option<&str>, alg: &str) -> String {
    match department {
        None => format!("seal-hospital-{alg}"),
        Some(code) => format!("seal-dept-{code}-{alg}"),
    }
}

/// The organisation seal certificate (R1.6) of the hospital (`department` None) or of a department,
/// for `alg` (`sm2` | `rsa`), with its key in server custody: loaded, or issued when missing or
/// within 30 days of its end. Signing flows sign with these keys.
pub async fn organisation_seal(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    organization: &str,
    ctx: &Context,
    department: Option<&str>,
    alg: &str,
) -> Result<CertRecord> {
    let (cert, _) = seal_signer(db, kek, cas, organization, ctx, department, alg).await?;
    get(db, &cert.serial_hex()).await
}

/// [`organisation_seal`]'s certificate with its key, for signing.
pub async fn seal_signer(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    organization: &str,
    ctx: &Context,
    department: Option<&str>,
    alg: &str,
) -> Result<(Cert, Arc<KeySigner>)> {
    let h = match alg {
        "sm2" => &cas.sm2,
        "rsa" => &cas.rsa,
        other => return Err(Error::Invalid(format!("alg 须为 sm2 或 rsa / alg must be sm2 or rsa, got '{other}'"))),
    };
    let org = organization.replace(',', " ");
    let subject = match department {
        None => format!("CN={org},O={org},C=CN"),
        Some(code) => {
            let dep = medsign_directory::departments::list(db)
                .await?
                .into_iter()
                .find(|d| d.code == code)
                .ok_or_else(|| Error::NotFound(format!("科室 {code} 不存在 / no department {code}")))?;
            let name = dep.name.replace(',', " ");
            format!("CN={org} {name},OU={name},O={org},C=CN")
        }
    };
    let key_name = seal_key_name(department, alg);
    let links = h.links();
    if let Some(kept) = kept_seal(db, kek, &key_name, links.as_ref()).await? {
        return Ok(kept);
    }
    // the first signings of a fresh installation arrive together, on one instance or several:
    // one of them issues the seal certificate (and makes its key), the others then load it —
    // never two certificates where the second supersedes the first after it has signed
    let _local = SEAL_ISSUANCE.lock().await;
    let exclusive = db.exclusive(medsign_store::db::lock_key("seal", &key_name)).await?;
    let (cert, key) = crate::ca::org_cert(
        db,
        kek,
        &key_name,
        None,
        medsign_pki::cert::Profile::Seal,
        &subject,
        &h.issuing,
        h.issuing_key.as_ref(),
        links.as_ref(),
    )
    .await?;
    record_org(db, ctx, &format!("org:{key_name}"), "seal", &cert).await?;
    exclusive.release().await?;
    let key = Arc::new(key);
    keep_seal(db, kek, &key_name, &cert, &key).await?;
    Ok((cert, key))
}

/// Seal certificates are loaded or issued one at a time in this process ([`seal_signer`]).
static SEAL_ISSUANCE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The stored texts of a seal: its wrapped key, the key's public half and its certificate.
#[derive(PartialEq, Eq)]
struct SealTexts {
    wrapped_key: String,
    public_key: String,
    cert_pem: String,
}

/// A seal signer with the stored texts it was loaded from, and the KEK that opened them ([`kek_tag`]).
struct LoadedSeal {
    texts: SealTexts,
    kek: [u8; 32],
    cert: Cert,
    key: Arc<KeySigner>,
}

/// The seal signers loaded in this process, by custody name (one per seal and algorithm).
static LOADED_SEALS: std::sync::Mutex<BTreeMap<String, Arc<LoadedSeal>>> = std::sync::Mutex::new(BTreeMap::new());

fn loaded_seals() -> std::sync::MutexGuard<'static, BTreeMap<String, Arc<LoadedSeal>>> {
    LOADED_SEALS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which KEK opened a kept seal: a keyed hash under its own label, never the KEK itself.
fn kek_tag(kek: &Kek) -> [u8; 32] {
    medsign_crypto::hash::hmac_sm3(kek.as_bytes(), &[b"medsign/kept-seal/v1"])
}

/// The stored texts of seal `name`, when both its key and its certificate exist (one read).
async fn seal_texts(db: &Db, name: &str) -> Result<Option<SealTexts>> {
    let row = sqlx::query(
        "SELECT k.wrapped_key, k.public_key, c.cert_pem FROM server_keys k JOIN ca_certs c ON c.name = k.name \
         WHERE k.name = $1",
    )
    .bind(name)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(SealTexts {
            wrapped_key: r.try_get("wrapped_key")?,
            public_key: r.try_get("public_key")?,
            cert_pem: r.try_get("cert_pem")?,
        })
    })
    .transpose()
}

/// The signer of seal `name` loaded before, if the stored key and certificate are still the very
/// texts it was loaded from and its certificate is still the one to sign with. A batch seals a
/// hundred documents a second, and each used to read three rows, unwrap the key and parse it again
/// (an RSA key's checks cost about as much as a signature). Whatever changes a seal — a renewal,
/// another instance's issuance, a new key — changes these texts; the 30-day and link checks run
/// on every use.
async fn kept_seal(db: &Db, kek: &Kek, name: &str, links: Option<&Links>) -> Result<Option<(Cert, Arc<KeySigner>)>> {
    let Some(texts) = seal_texts(db, name).await? else { return Ok(None) };
    let kek = kek_tag(kek);
    let kept = {
        let mut loaded = loaded_seals();
        let kept = loaded.get(name).filter(|s| s.texts == texts && s.kek == kek).cloned();
        if kept.is_none() {
            loaded.remove(name); // replaced: its key is not kept in memory any longer
        }
        kept
    };
    Ok(kept.filter(|s| crate::ca::usable(&s.cert, &s.key, links)).map(|s| (s.cert.clone(), s.key.clone())))
}

/// Keep the seal signer just loaded (or issued) for the next signatures — if the stored texts
/// read now are those of this certificate and this key: another instance may have replaced them,
/// so the wrapped key is opened with this KEK once more and must be this very key.
async fn keep_seal(db: &Db, kek: &Kek, name: &str, cert: &Cert, key: &Arc<KeySigner>) -> Result<()> {
    let Some(texts) = seal_texts(db, name).await? else { return Ok(()) };
    let public = medsign_crypto::Signer::public_key(&**key);
    let stored = medsign_store::custody::unwrap_stored(kek, name, &texts.wrapped_key)?;
    if texts.cert_pem == cert.to_pem() && texts.public_key == public.to_pem() && stored.public_key() == *public {
        let loaded = LoadedSeal { texts, kek: kek_tag(kek), cert: cert.clone(), key: key.clone() };
        loaded_seals().insert(name.to_string(), Arc::new(loaded));
    }
    Ok(())
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
    /// `signer` | `seal` | `tsa`
    pub profile: Option<String>,
    /// page, from 1
    pub page: Option<i64>,
    /// page size, 1–500 (default 50)
    pub page_size: Option<i64>,
}

/// Certificates matching the filters, newest first, and how many match in all.
pub async fn list(db: &Db, q: &ListQuery) -> Result<(Vec<CertRecord>, i64)> {
    let (limit, offset) = medsign_store::paging(q.page, q.page_size, 50, 500)?;
    let filter = "($1 IS NULL OR employee_no = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR alg = $3) \
                  AND ($4 IS NULL OR profile = $4)";
    let total: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM certificates WHERE {filter}")))
            .bind(&q.employee_no)
            .bind(&q.status)
            .bind(&q.alg)
            .bind(&q.profile)
            .fetch_one(&db.pool)
            .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM certificates WHERE {filter} ORDER BY created_at DESC, serial LIMIT $5 OFFSET $6"
    )))
    .bind(&q.employee_no)
    .bind(&q.status)
    .bind(&q.alg)
    .bind(&q.profile)
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

/// The RFC 5280 reason of a stored reason name.
pub fn reason(name: &str) -> Option<CrlReason> {
    Some(match name {
        "unspecified" => CrlReason::Unspecified,
        "key_compromise" => CrlReason::KeyCompromise,
        "affiliation_changed" => CrlReason::AffiliationChanged,
        "superseded" => CrlReason::Superseded,
        "cessation_of_operation" => CrlReason::CessationOfOperation,
        "certificate_hold" => CrlReason::CertificateHold,
        _ => return None,
    })
}

/// A status change: revoke (from active or on hold), hold (from active), release (from on hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change<'a> {
    Revoke(&'a str),
    Hold,
    Release,
}

async fn change(db: &Db, cas: &BuiltinCas, ctx: &Context, serial: &str, c: Change<'_>) -> Result<CertRecord> {
    let cur = get(db, serial).await?;
    let (from, to, why, action): (&[&str], &str, Option<&str>, &str) = match c {
        Change::Revoke(r) => (&["active", "on_hold"], "revoked", Some(r), "certificate.revoke"),
        Change::Hold => (&["active"], "on_hold", Some("certificate_hold"), "certificate.hold"),
        Change::Release => (&["on_hold"], "active", None, "certificate.release"),
    };
    if cur.channel != "builtin" && !matches!(c, Change::Revoke(_)) {
        return Err(Error::Invalid(format!(
            "证书 {} 由外部 CA 通道 {} 签发，不能冻结或解冻 / certificates from an external CA channel cannot be held or released",
            cur.serial, cur.channel
        )));
    }
    if !from.contains(&cur.status.as_str()) {
        let msg = match (c, cur.status.as_str()) {
            (_, "revoked") => format!("证书 {} 已吊销 / already revoked", cur.serial),
            (Change::Hold, _) => format!("证书 {} 已冻结 / already on hold", cur.serial),
            _ => format!("证书 {} 未冻结，无需解冻 / not on hold", cur.serial),
        };
        return Err(Error::Conflict(msg));
    }
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // compare-and-set on the status read above: a concurrent change wins once, never twice
    let done = sqlx::query(
        "UPDATE certificates SET status = $1, revoked_at = $2, reason = $3 WHERE serial = $4 AND status = $5",
    )
    .bind(to)
    .bind(why.map(|_| now.clone()))
    .bind(why)
    .bind(&cur.serial)
    .bind(&cur.status)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "证书 {} 的状态刚被修改，请重试 / status changed concurrently, retry",
            cur.serial
        )));
    }
    sqlx::query("UPDATE crls SET stale = 1").execute(&mut *tx).await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::DataMaintenance,
        action,
        &format!("certificate:{}", cur.serial),
        serde_json::json!({"reason": why, "from": cur.status}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    // publish at once; if this fails the stale flag makes the next CRL request re-sign it
    for h in [&cas.sm2, &cas.rsa] {
        if let Err(e) = crl(db, h, 24).await {
            tracing::warn!(ca = h.name, error = %e, "CRL regeneration failed; retried on the next request");
        }
    }
    get(db, &cur.serial).await
}

/// Revoke with a reason (`unspecified`, `key_compromise`, `affiliation_changed`, `superseded`,
/// `cessation_of_operation`), from active or on hold. Revoking twice is an error. The CRLs are
/// re-signed at once.
/// A certificate from a remote channel is revoked there first (`remote`: the KEK and channels).
pub async fn revoke(
    db: &Db,
    cas: &BuiltinCas,
    remote: Option<(&Kek, &Channels)>,
    ctx: &Context,
    serial: &str,
    reason_name: &str,
) -> Result<CertRecord> {
    if reason(reason_name).is_none() || reason_name == "certificate_hold" {
        return Err(Error::Invalid(format!(
            "未知吊销原因 '{reason_name}' / unknown reason (unspecified, key_compromise, affiliation_changed, superseded, cessation_of_operation); 冻结请用 hold / use hold for certificate_hold"
        )));
    }
    let cur = get(db, serial).await?;
    if cur.channel != "builtin" && cur.status != "revoked" {
        let (kek, channels) = remote.ok_or_else(|| Error::internal("remote revocation needs the CA channels"))?;
        let told = crate::channels::propagate_revoke(db, kek, channels, &cur.channel, &cur.serial, reason_name).await?;
        if !told {
            tracing::warn!(serial = %cur.serial, channel = %cur.channel, "the channel cannot revoke (EST): revoke at the issuing CA too");
        }
    }
    change(db, cas, ctx, serial, Change::Revoke(reason_name)).await
}

/// Where the revocations of destroyed keys go: the built-in CAs, and the channels that tell an
/// outside CA (`None`: it is not told; an audit entry says so).
#[derive(Clone, Copy)]
pub struct Revoker<'a> {
    /// the built-in CAs
    pub cas: &'a BuiltinCas,
    /// the KEK and the CA channels
    pub remote: Option<(&'a Kek, &'a Channels)>,
}

impl<'a> From<&'a BuiltinCas> for Revoker<'a> {
    fn from(cas: &'a BuiltinCas) -> Self {
        Revoker { cas, remote: None }
    }
}

/// Revoke a certificate whose key is gone (a phone unbound or replaced): here first, whatever the
/// issuing CA answers, then the issuing CA is told when its channel can be reached and can revoke
/// (`remote`); a failure there is logged and audited for the administrators, never an error of
/// the unbinding that caused it.
pub async fn retire(
    db: &Db,
    cas: &BuiltinCas,
    remote: Option<(&Kek, &Channels)>,
    ctx: &Context,
    serial: &str,
    reason_name: &str,
) -> Result<()> {
    let cur = get(db, serial).await?;
    if cur.status == "revoked" {
        return Ok(());
    }
    if let Err(e) = change(db, cas, ctx, serial, Change::Revoke(reason_name)).await {
        // revoked meanwhile (an administrator, another instance): done, not an error of the unbind
        if get(db, serial).await?.status != "revoked" {
            return Err(e);
        }
        return Ok(());
    }
    if cur.channel == "builtin" {
        return Ok(());
    }
    let told = match remote {
        Some((kek, channels)) => {
            crate::channels::propagate_revoke(db, kek, channels, &cur.channel, serial, reason_name).await
        }
        None => Ok(false),
    };
    if !matches!(told, Ok(true)) {
        let error = told.err().map(|e| e.to_string());
        tracing::warn!(serial, channel = %cur.channel, ?error, "revoked here; revoke it at the issuing CA too");
        let target = format!("certificate:{serial}");
        let ev = audit::Event {
            kind: Kind::DataMaintenance,
            action: "certificate.revoke.not_propagated",
            target: &target,
            outcome: "failed:unavailable",
            details: serde_json::json!({"channel": cur.channel, "error": error,
                "todo": "请在签发 CA 处吊销 / revoke it at the issuing CA"}),
        };
        audit::record(db, ctx, &ev).await?;
    }
    Ok(())
}

/// Put an active certificate on hold (RFC 5280 certificateHold): it appears as revoked in CRL
/// and OCSP until released.
pub async fn hold(db: &Db, cas: &BuiltinCas, ctx: &Context, serial: &str) -> Result<CertRecord> {
    change(db, cas, ctx, serial, Change::Hold).await
}

/// Release a held certificate: active again, gone from the next CRL, `good` in OCSP.
pub async fn release(db: &Db, cas: &BuiltinCas, ctx: &Context, serial: &str) -> Result<CertRecord> {
    change(db, cas, ctx, serial, Change::Release).await
}

/// The revocation state of one certificate of hierarchy `h` as CRL and OCSP report it: `None`
/// when not issued by `h` (unknown); `Some(None)` when good; `Some(Some(entry))` when revoked or
/// on hold.
pub async fn status_of(db: &Db, h: &Hierarchy, serial_hex: &str) -> Result<Option<Option<Revoked>>> {
    let row = sqlx::query(
        "SELECT serial, alg, status, revoked_at, reason FROM certificates WHERE serial = $1 AND channel = 'builtin'",
    )
    .bind(serial_hex)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let alg: String = r.try_get("alg")?;
    if !hierarchy_algs(h).contains(&alg.as_str()) {
        return Ok(None);
    }
    revoked_entry(&r).map(Some)
}

fn revoked_entry(r: &sqlx::any::AnyRow) -> Result<Option<Revoked>> {
    let status: String = r.try_get("status")?;
    if status == "active" {
        return Ok(None);
    }
    let serial: String = r.try_get("serial")?;
    let at: Option<String> = r.try_get("revoked_at")?;
    let why: Option<String> = r.try_get("reason")?;
    Ok(Some(Revoked {
        serial: hex::decode(&serial).map_err(|_| Error::internal("stored serial is not hex"))?,
        time: at
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::UNIX_EPOCH),
        reason: why.as_deref().and_then(reason),
    }))
}

/// The CRL (DER) of hierarchy `h`'s issuing CA, valid 24 hours: the stored one, or a newly signed
/// one when there is none, it is stale (a status changed) or older than `refresh_hours`.
pub async fn crl(db: &Db, h: &Hierarchy, refresh_hours: u64) -> Result<Vec<u8>> {
    let row = sqlx::query("SELECT number, der_hex, this_update, stale FROM crls WHERE ca = $1")
        .bind(h.name)
        .fetch_optional(&db.pool)
        .await?;
    let now = Utc::now();
    let mut prev = 0i64;
    if let Some(r) = &row {
        prev = r.try_get("number")?;
        let stale: i64 = r.try_get("stale")?;
        let this: String = r.try_get("this_update")?;
        let fresh = DateTime::parse_from_rfc3339(&this)
            .is_ok_and(|t| now - t.with_timezone(&Utc) < Duration::hours(refresh_hours.clamp(1, 24) as i64));
        if stale == 0 && fresh {
            let der: String = r.try_get("der_hex")?;
            return hex::decode(der).map_err(|_| Error::internal("stored CRL is corrupt"));
        }
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // one CRL is signed at a time per CA on every instance (issue #17): each number is used once;
    // an instance that waited finds the CRL the other just signed
    db.serialise(&mut tx, medsign_store::db::lock_key("crl", h.name)).await?;
    if let Some(r) = sqlx::query("SELECT number, der_hex, this_update, stale FROM crls WHERE ca = $1")
        .bind(h.name)
        .fetch_optional(&mut *tx)
        .await?
    {
        prev = r.try_get("number")?;
        let stale: i64 = r.try_get("stale")?;
        let this: String = r.try_get("this_update")?;
        if stale == 0 && row.as_ref().is_none_or(|old| old.try_get::<String, _>("this_update").ok() != Some(this)) {
            let der: String = r.try_get("der_hex")?;
            return hex::decode(der).map_err(|_| Error::internal("stored CRL is corrupt"));
        }
    }
    // clear the flag first: a change committed while we sign sets it again
    sqlx::query("UPDATE crls SET stale = 0 WHERE ca = $1").bind(h.name).execute(&mut *tx).await?;
    let rows = sqlx::query(
        "SELECT serial, alg, status, revoked_at, reason FROM certificates \
         WHERE status <> 'active' AND channel = 'builtin' ORDER BY serial",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut revoked = Vec::new();
    for r in &rows {
        let alg: String = r.try_get("alg")?;
        if hierarchy_algs(h).contains(&alg.as_str())
            && let Some(e) = revoked_entry(r)?
        {
            revoked.push(e);
        }
    }
    let number = prev + 1;
    let der = crl::build(&h.issuing, h.issuing_key.as_ref(), now, now + Duration::hours(24), number as u64, &revoked)
        .map_err(|e| Error::internal_from("CRL", e))?;
    let text = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // update in place (a concurrent status change then marks the new row stale), insert the first
    let updated =
        sqlx::query("UPDATE crls SET number = $2, der_hex = $3, this_update = $4, next_update = $5 WHERE ca = $1")
            .bind(h.name)
            .bind(number)
            .bind(hex::encode(&der))
            .bind(text(now))
            .bind(text(now + Duration::hours(24)))
            .execute(&mut *tx)
            .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO crls (ca, number, der_hex, this_update, next_update, stale) VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(h.name)
        .bind(number)
        .bind(hex::encode(&der))
        .bind(text(now))
        .bind(text(now + Duration::hours(24)))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(der)
}

/// One built-in CA's revocation services as a relying party finds them now (the console's
/// certificates page): the CRL served at `/pki/crl` and the OCSP responder's certificate.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct RevocationState {
    /// `sm2` | `rsa`
    pub ca: String,
    /// the issuing CA (the CRL's and the OCSP responder's issuer)
    pub issuer: String,
    /// the number of the CRL served now
    pub crl_number: u64,
    /// when it was signed (RFC 3339)
    pub crl_this_update: String,
    /// when relying parties fetch the next one at the latest (RFC 3339)
    pub crl_next_update: Option<String>,
    /// certificates it lists (revoked or on hold)
    pub crl_entries: usize,
    /// of which on hold (reason certificateHold)
    pub on_hold: usize,
    /// its signature checks against the issuing CA's certificate
    pub crl_signature_valid: bool,
    /// the OCSP responder's certificate ends (RFC 3339); `medsign serve` renews it at start
    /// when 30 days remain
    pub ocsp_responder_not_after: String,
}

/// The revocation state of hierarchy `h`: the CRL it serves now (signing a new one first, as
/// `GET /pki/crl` would, when the stored one is stale), read back and checked as a relying party
/// would.
pub async fn revocation_state(db: &Db, h: &Hierarchy, refresh_hours: u64) -> Result<RevocationState> {
    let der = crl(db, h, refresh_hours).await?;
    let list = crl::Crl::from_bytes(&der).map_err(|e| Error::internal_from("CRL", e))?;
    let entries = list.entries();
    let text = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(RevocationState {
        ca: h.name.into(),
        issuer: h.issuing.subject_display(),
        crl_number: list.number().unwrap_or(0),
        crl_this_update: text(list.this_update()),
        crl_next_update: list.next_update().map(text),
        crl_entries: entries.len(),
        on_hold: entries.iter().filter(|e| e.reason == Some(CrlReason::CertificateHold)).count(),
        crl_signature_valid: list.verify(&h.issuing, Sm2IdPolicy::Standard).is_ok(),
        ocsp_responder_not_after: text(h.ocsp.not_after()),
    })
}

/// Staff certificates that end within `days` (active or on hold), soonest first. (Organisation
/// certificates — TSA, OCSP — are re-issued by `medsign serve` at start when 30 days remain.)
pub async fn expiring(db: &Db, days: u64) -> Result<Vec<CertRecord>> {
    let until = (Utc::now() + Duration::days(days as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rows = sqlx::query(
        "SELECT serial FROM certificates WHERE profile = 'signer' AND status <> 'revoked' AND not_after <= $1 ORDER BY not_after, serial",
    )
    .bind(until)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let serial: String = r.try_get("serial")?;
        out.push(get(db, &serial).await?);
    }
    Ok(out)
}

/// What the daily expiry job did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExpiryReport {
    /// certificates that end within the window
    pub expiring: Vec<String>,
    /// serial → new serial, for those renewed
    pub renewed: Vec<(String, String)>,
    /// serial → why renewal failed
    pub failed: Vec<(String, String)>,
}

/// The daily job: list what ends within `days`, write an audit entry for each, and renew active
/// ones with the same key when `auto_renew` (hospital policy).
pub async fn expiry_job(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    days: u64,
    auto_renew: bool,
) -> Result<ExpiryReport> {
    let mut report = ExpiryReport::default();
    for c in expiring(db, days).await? {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        audit::ok(
            &mut tx,
            ctx,
            Kind::DataMaintenance,
            "certificate.expiring",
            &format!("certificate:{}", c.serial),
            serde_json::json!({"employee_no": c.employee_no, "not_after": c.not_after, "status": c.status}),
        )
        .await?;
        tx.commit().await?;
        drop(_w);
        report.expiring.push(c.serial.clone());
        if auto_renew && c.status == "active" {
            match renew(db, kek, issuer, ctx, &c.serial, None).await {
                Ok(n) => report.renewed.push((c.serial.clone(), n.serial)),
                Err(e) => report.failed.push((c.serial.clone(), e.to_string())),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_crypto::{KeyAlg, PrivateKey, signer::KeySigner};
    use medsign_pki::{crl::Crl, path};
    use medsign_testkit::{
        db::backends,
        hospital::{add_staff, staff},
    };

    #[tokio::test]
    async fn issue_revoke_crl() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = crate::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let issuer =
                Issuer {
                    cas: &cas, organization: "某县人民医院", public_url: "http://127.0.0.1:7080", channels: None
                };
            let dep = medsign_directory::departments::NewDepartment {
                code: "XNK".into(),
                name: "心内科".into(),
                parent_code: None,
            };
            medsign_directory::departments::create_many(&db, &ctx, &[dep]).await.unwrap();
            add_staff(&db, &kek, &[users::NewUser { department: Some("XNK".into()), ..staff("1001", "张三") }]).await;
            let key = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
            let req = csr::build(&parse_dn("CN=whatever").unwrap(), &key).unwrap();
            let rec = issue_for_user(&db, &kek, issuer, &ctx, "1001", &req).await.unwrap();
            assert_eq!((rec.alg.as_str(), rec.status.as_str()), ("sm2", "active"));
            assert_eq!(rec.profile_version.as_deref(), Some(cas.staff.version.as_str()));
            assert!(cas.staff.version.starts_with("staff-signer/"));
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
            let c0 = Crl::from_bytes(&crl(&db, &cas.sm2, 6).await.unwrap()).unwrap();
            assert!(c0.find(cert.serial()).is_none());
            // hold → in the CRL as certificateHold, twice → conflict; release → gone, number grows
            let held = hold(&db, &cas, &ctx, &rec.serial).await.unwrap();
            assert_eq!(held.status, "on_hold");
            assert!(matches!(hold(&db, &cas, &ctx, &rec.serial).await, Err(Error::Conflict(_))));
            let c1 = Crl::from_bytes(&crl(&db, &cas.sm2, 6).await.unwrap()).unwrap();
            assert_eq!(c1.find(cert.serial()).unwrap().reason, Some(CrlReason::CertificateHold));
            assert!(c1.number() > c0.number());
            // the console's view of it: the CRL served now, read back and checked
            let st = revocation_state(&db, &cas.sm2, 6).await.unwrap();
            assert_eq!((st.crl_number, st.crl_entries, st.on_hold), (c1.number().unwrap(), 1, 1));
            assert!(st.crl_signature_valid);
            assert!(st.issuer.contains("CN="), "{}", st.issuer);
            assert_eq!(revocation_state(&db, &cas.rsa, 6).await.unwrap().on_hold, 0);
            // a user with a held certificate still has one: no second issuance
            assert!(matches!(issue_for_user(&db, &kek, issuer, &ctx, "1001", &req).await, Err(Error::Conflict(_))));
            assert_eq!(release(&db, &cas, &ctx, &rec.serial).await.unwrap().status, "active");
            assert!(matches!(release(&db, &cas, &ctx, &rec.serial).await, Err(Error::Conflict(_))));
            let c2 = Crl::from_bytes(&crl(&db, &cas.sm2, 6).await.unwrap()).unwrap();
            assert!(c2.find(cert.serial()).is_none());
            // the stored CRL is served until something changes
            assert_eq!(crl(&db, &cas.sm2, 6).await.unwrap(), c2.der());
            assert!(revoke(&db, &cas, None, &ctx, &rec.serial, "because").await.is_err());
            assert!(revoke(&db, &cas, None, &ctx, &rec.serial, "certificate_hold").await.is_err());
            let r = revoke(&db, &cas, None, &ctx, &rec.serial.to_lowercase(), "key_compromise").await.unwrap();
            assert_eq!(r.status, "revoked");
            assert!(matches!(
                revoke(&db, &cas, None, &ctx, &rec.serial, "key_compromise").await,
                Err(Error::Conflict(_))
            ));
            assert!(matches!(hold(&db, &cas, &ctx, &rec.serial).await, Err(Error::Conflict(_))));
            let c = Crl::from_bytes(&crl(&db, &cas.sm2, 6).await.unwrap()).unwrap();
            c.verify(&cas.sm2.issuing, Sm2IdPolicy::Standard).unwrap();
            assert_eq!(c.find(cert.serial()).unwrap().reason, Some(CrlReason::KeyCompromise));
            let rsa_crl = Crl::from_bytes(&crl(&db, &cas.rsa, 6).await.unwrap()).unwrap();
            rsa_crl.verify(&cas.rsa.issuing, Sm2IdPolicy::Standard).unwrap();
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
            // the expiry job: nothing within 30 days; everything within 400, renewed by policy
            assert!(expiry_job(&db, &kek, issuer, &ctx, 30, true).await.unwrap().expiring.is_empty());
            let rep = expiry_job(&db, &kek, issuer, &ctx, 400, true).await.unwrap();
            assert_eq!(rep.expiring, vec![rekeyed.serial.clone()]);
            assert_eq!(rep.renewed.len(), 1);
            assert_eq!(get(&db, &rekeyed.serial).await.unwrap().reason.as_deref(), Some("superseded"));
        }
    }

    #[tokio::test]
    async fn organisation_seals() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = crate::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let dep = medsign_directory::departments::NewDepartment {
                code: "YJK".into(),
                name: "药剂科".into(),
                parent_code: None,
            };
            medsign_directory::departments::create_many(&db, &ctx, &[dep]).await.unwrap();
            let h = organisation_seal(&db, &kek, &cas, "某县人民医院", &ctx, None, "sm2").await.unwrap();
            assert!(h.subject.starts_with("CN=某县人民医院,O=某县人民医院"), "{}", h.subject);
            let again = organisation_seal(&db, &kek, &cas, "某县人民医院", &ctx, None, "sm2").await.unwrap();
            assert_eq!(again.serial, h.serial, "loaded, not re-issued");
            let d = organisation_seal(&db, &kek, &cas, "某县人民医院", &ctx, Some("YJK"), "rsa").await.unwrap();
            assert!(d.subject.contains("OU=药剂科") && d.alg == "rsa", "{}", d.subject);
            let c = Cert::load_all(d.certificate_pem.as_bytes()).unwrap().remove(0);
            c.verify_signed_by(&cas.rsa.issuing, Sm2IdPolicy::Standard).unwrap();
            assert!(matches!(
                organisation_seal(&db, &kek, &cas, "某县人民医院", &ctx, Some("NOPE"), "sm2").await,
                Err(Error::NotFound(_))
            ));
            assert!(organisation_seal(&db, &kek, &cas, "x", &ctx, None, "dsa").await.is_err());
            let (seals, n) =
                list(&db, &ListQuery { profile: Some("seal".into()), ..Default::default() }).await.unwrap();
            assert_eq!((n, seals.len()), (2, 2));
            // OCSP answers for them
            assert_eq!(status_of(&db, &cas.sm2, &h.serial).await.unwrap(), Some(None));
        }
    }

    /// A seal's signer is parsed once and used again while its stored key and certificate stay as
    /// they were; a new certificate or a new key is never answered with the signer parsed before,
    /// and a removed department's seal is refused although its signer was kept.
    #[tokio::test]
    async fn a_kept_seal_signer_follows_every_change_of_the_stored_seal() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let org = "某县人民医院";
            let cas = crate::ca::ensure(&db, &kek, org).await.unwrap();
            let seal = || seal_signer(&db, &kek, &cas, org, &ctx, None, "rsa");
            let (c1, k1) = seal().await.unwrap();
            let (c2, k2) = seal().await.unwrap();
            let (c3, k3) = seal().await.unwrap();
            assert_eq!((c2.serial_hex(), c3.serial_hex()), (c1.serial_hex(), c1.serial_hex()));
            assert!(Arc::ptr_eq(&k2, &k3), "parsed once, then kept");
            let pair =
                |c: &Cert, k: &Arc<KeySigner>| c.public_key().ok() == Some(medsign_crypto::Signer::public_key(k));
            assert!(pair(&c1, &k1) && pair(&c3, &k3));
            // the same texts under another KEK (a copied database): refused as without the cache
            let other = Kek::generate().unwrap();
            let e = seal_signer(&db, &other, &cas, org, &ctx, None, "rsa").await.err().expect("refused");
            assert!(e.to_string().contains("wrong KEK"), "{e}");
            // a new certificate (renewed elsewhere: here, a row another instance replaced)
            sqlx::query("DELETE FROM ca_certs WHERE name = 'seal-hospital-rsa'").execute(&db.pool).await.unwrap();
            let (c4, k4) = seal().await.unwrap();
            assert_ne!(c4.serial_hex(), c1.serial_hex(), "issued anew");
            let (c5, k5) = seal().await.unwrap();
            assert_eq!(c5.serial_hex(), c4.serial_hex());
            assert!(!Arc::ptr_eq(&k5, &k3), "the new certificate's texts are parsed anew");
            assert!(pair(&c4, &k4) && pair(&c5, &k5));
            // a new key: the kept signer (old key) is not used; the certificate follows the key
            sqlx::query("DELETE FROM server_keys WHERE name = 'seal-hospital-rsa'").execute(&db.pool).await.unwrap();
            let (c6, k6) = seal().await.unwrap();
            assert!(pair(&c6, &k6), "certificate and key belong together");
            assert_ne!(medsign_crypto::Signer::public_key(&k6), medsign_crypto::Signer::public_key(&k5));
            let (c7, k7) = seal().await.unwrap();
            assert!(pair(&c7, &k7) && c7.serial_hex() == c6.serial_hex());
            // a department's seal whose department is gone: refused, though its signer was kept
            let dep = medsign_directory::departments::NewDepartment {
                code: "JYK".into(),
                name: "检验科".into(),
                parent_code: None,
            };
            medsign_directory::departments::create_many(&db, &ctx, &[dep]).await.unwrap();
            seal_signer(&db, &kek, &cas, org, &ctx, Some("JYK"), "rsa").await.unwrap();
            sqlx::query("DELETE FROM departments WHERE code = 'JYK'").execute(&db.pool).await.unwrap();
            assert!(matches!(
                seal_signer(&db, &kek, &cas, org, &ctx, Some("JYK"), "rsa").await,
                Err(Error::NotFound(_))
            ));
        }
    }

    #[tokio::test]
    async fn bare_key_with_proof_of_possession() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = crate::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let issuer =
                Issuer {
                    cas: &cas, organization: "某县人民医院", public_url: "http://127.0.0.1:7080", channels: None
                };
            add_staff(&db, &kek, &[users::NewUser { role: users::Role::Nurse, ..staff("2002", "李四") }]).await;
            let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
            let public = key.public_key();
            let b64 = |b: &[u8]| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(b)
            };
            let sign = |no: &str| {
                b64(&key.sign(medsign_crypto::SignatureScheme::Sm2Sm3, &pop_message(no, &public), None).unwrap())
            };
            // a proof for another employee number, garbage, or a non-SM2 key is refused
            for (pk, proof) in [
                (public.to_pem(), sign("9999")),
                (public.to_pem(), "***".to_string()),
                ("not a key".to_string(), sign("2002")),
                (PrivateKey::generate(KeyAlg::P256).unwrap().public_key().to_pem(), sign("2002")),
            ] {
                let e = issue_for_key(&db, &kek, issuer, &ctx, "2002", &pk, &proof).await.unwrap_err();
                assert!(matches!(e, Error::Invalid(_)), "{e}");
            }
            // the point in hex works as well as PEM
            let point = hex::encode(public.as_sm2().unwrap().to_sec1_uncompressed());
            assert_eq!(parse_public_key(&point).unwrap(), public);
            let rec = issue_for_key(&db, &kek, issuer, &ctx, "2002", &point, &sign("2002")).await.unwrap();
            let cert = Cert::load_all(rec.certificate_pem.as_bytes()).unwrap().remove(0);
            assert_eq!(cert.public_key().unwrap(), &public);
        }
    }
}
