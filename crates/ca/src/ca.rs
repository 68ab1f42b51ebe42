//! The built-in certification authorities (issue #4, first slice): on first start, two
//! hierarchies — SM2 (root + issuing CA, SM3withSM2) for Chinese signatures, and RSA (root +
//! issuing CA) for PDF readers that do not know SM2 — with keys in server custody — and a
//! delegated OCSP responder certificate under each issuing CA (id-kp-OCSPSigning, ocsp-nocheck,
//! one year, re-issued at start when less than 30 days remain).

use chrono::{Duration, Utc};
use medsign_crypto::{KeyAlg, signer::KeySigner, wrap::Kek};
use medsign_pki::{
    cert::{Cert, CertTemplate, Profile, issue},
    name::parse_dn,
};
use medsign_store::{Error, Result, custody, db::Db};
use sqlx::Row;
use std::sync::Arc;

/// One hierarchy: root and issuing CA (with its key, unwrapped once at start), and the delegated
/// OCSP responder.
#[derive(Clone)]
pub struct Hierarchy {
    /// `sm2` | `rsa`
    pub name: &'static str,
    /// self-signed root
    pub root: Cert,
    /// issuing CA under the root
    pub issuing: Cert,
    /// the issuing CA's key
    pub issuing_key: Arc<KeySigner>,
    /// delegated OCSP responder certificate, issued by `issuing`
    pub ocsp: Cert,
    /// its key
    pub ocsp_key: Arc<KeySigner>,
    /// the root's key (it signs only the root's CRL once the issuing CA exists)
    pub root_key: Arc<KeySigner>,
    /// the URL the revocation links in certificates point to (none: certificates carry none)
    pub public_url: Option<String>,
}

impl std::fmt::Debug for Hierarchy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hierarchy")
            .field("name", &self.name)
            .field("issuing", &self.issuing.subject_display())
            .finish_non_exhaustive()
    }
}

/// Where a relying party finds a certificate's revocation status and issuer (RFC 5280 CRL
/// distribution point, AIA OCSP and caIssuers), under medsign's public URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// the issuing CA's CRL
    pub crl: String,
    /// the OCSP responder
    pub ocsp: String,
    /// the CA certificates
    pub ca_issuers: String,
}

impl Links {
    /// The links of certificates issued by hierarchy `ca` (`sm2` | `rsa`) of the medsign at `base`.
    pub fn new(base: &str, ca: &str) -> Links {
        let base = base.trim_end_matches('/');
        Links {
            crl: format!("{base}/pki/crl{}", if ca == "sm2" { "" } else { "?ca=rsa" }),
            ocsp: format!("{base}/pki/ocsp"),
            ca_issuers: format!("{base}/pki/{ca}/ca.pem"),
        }
    }

    /// Put them into a template.
    pub fn apply(&self, t: &mut CertTemplate) {
        t.crl_url = Some(self.crl.clone());
        t.ocsp_url = Some(self.ocsp.clone());
        t.ca_issuers_url = Some(self.ca_issuers.clone());
    }

    /// Whether `c` carries these links (a certificate made before, or under another URL, does not).
    pub fn in_cert(&self, c: &Cert) -> bool {
        [&self.crl, &self.ocsp].iter().all(|u| names(c, u))
    }
}

/// Whether certificate `c` names `url` (a CRL distribution point or an AIA location).
fn names(c: &Cert, url: &str) -> bool {
    c.der().windows(url.len()).any(|w| w == url.as_bytes())
}

/// The URL of the root CA's CRL (it lists revoked issuing CAs) of hierarchy `ca` at `base`.
pub fn root_crl_url(base: &str, ca: &str) -> String {
    format!("{}/pki/crl?ca={ca}&issuer=root", base.trim_end_matches('/'))
}

impl Hierarchy {
    /// The links certificates issued here carry, when the public URL is known.
    pub fn links(&self) -> Option<Links> {
        self.public_url.as_deref().map(|u| Links::new(u, self.name))
    }

    /// The root's CRL: signed now, valid a week, listing no issuing CA (medsign never revokes its
    /// own issuing CA; a compromise means a new installation).
    pub fn root_crl(&self) -> Result<Vec<u8>> {
        let now = Utc::now();
        medsign_pki::crl::build(
            &self.root,
            self.root_key.as_ref(),
            now - Duration::minutes(5),
            now + Duration::days(7),
            now.timestamp().max(1) as u64,
            &[],
        )
        .map_err(|e| Error::internal_from("root CRL", e))
    }

    /// Root then issuing CA, PEM.
    pub fn pem(&self) -> String {
        format!("{}{}", self.root.to_pem(), self.issuing.to_pem())
    }
}

/// Both built-in hierarchies.
#[derive(Debug, Clone)]
pub struct BuiltinCas {
    /// SM2 / SM3
    pub sm2: Hierarchy,
    /// RSA / SHA-256
    pub rsa: Hierarchy,
    /// the staff signing certificate profile in force
    pub staff: StaffProfile,
}

/// The staff signing certificate profile (health-sector format): what goes into every staff
/// certificate the built-in CA issues. Its `version` is a digest of the definition, recorded with
/// every certificate, so a verifier years later knows which profile a certificate followed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, serde::Serialize)]
pub struct StaffProfile {
    /// `staff-signer/` + 16 hex digits of SM3 over the definition below
    pub version: String,
    /// certificatePolicies OIDs (`ca.policy_oids`)
    pub policies: Vec<String>,
    /// validity (`ca.staff_validity_days`, never beyond the issuing CA)
    pub validity_days: u32,
    /// subject attributes, in order
    pub subject: &'static str,
    /// keyUsage (critical)
    pub key_usage: &'static str,
    /// extensions besides keyUsage and basicConstraints
    pub extensions: &'static str,
    #[serde(skip)]
    oids: Vec<medsign_pki::der::asn1::ObjectIdentifier>,
}

impl StaffProfile {
    /// The profile from `[ca]` settings.
    pub fn from_config(cfg: &medsign_config::config::CaConfig) -> Result<Self> {
        let oids = cfg
            .policy_oids
            .iter()
            .map(|o| {
                o.trim().parse().map_err(|_| {
                    Error::Config(format!("ca.policy_oids: '{o}' 不是合法的 OID / is not an object identifier"))
                })
            })
            .collect::<Result<Vec<medsign_pki::der::asn1::ObjectIdentifier>>>()?;
        if !(1..=3650).contains(&cfg.staff_validity_days) {
            return Err(Error::Config("ca.staff_validity_days 须为 1–3650 / must be 1-3650".into()));
        }
        let mut p = StaffProfile {
            version: String::new(),
            policies: oids.iter().map(|o| o.to_string()).collect(),
            validity_days: cfg.staff_validity_days,
            subject: "CN=姓名 name, OU=科室 department, O=医院 hospital, C=CN, SERIALNUMBER=HMAC-SM3(员工号) keyed staff id",
            key_usage: "digitalSignature, nonRepudiation",
            extensions: "SKI, AKI, CRL distribution point, AIA (OCSP, caIssuers), certificatePolicies",
            oids,
        };
        let def = serde_json::to_vec(&p).map_err(|e| Error::internal_from("ca::from_config", e))?;
        p.version = format!("staff-signer/{}", hex::encode(&medsign_crypto::hash::sm3(&def)[..8]));
        Ok(p)
    }

    /// The policy OIDs.
    pub fn oids(&self) -> &[medsign_pki::der::asn1::ObjectIdentifier] {
        &self.oids
    }
}

async fn load(db: &Db, name: &str) -> Result<Option<Cert>> {
    let row = sqlx::query("SELECT cert_pem FROM ca_certs WHERE name = $1").bind(name).fetch_optional(&db.pool).await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let pem: String = r.try_get("cert_pem")?;
            let certs = Cert::load_all(pem.as_bytes())
                .map_err(|e| Error::internal_from(format!("stored CA certificate {name}"), e))?;
            Ok(certs.into_iter().next())
        }
    }
}

async fn store(db: &Db, name: &str, cert: &Cert) -> Result<()> {
    let _w = db.write_lock.lock().await;
    // one statement: a reader on another instance never sees the name without a certificate
    sqlx::query(
        "INSERT INTO ca_certs (name, cert_pem, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET cert_pem = excluded.cert_pem, created_at = excluded.created_at",
    )
    .bind(name)
    .bind(cert.to_pem())
    .bind(medsign_store::now_text())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A server-held organisation certificate issued by `h`'s issuing CA (the delegated OCSP
/// responder, a TSA, a seal) for a key of `alg` (default: the issuing CA's own algorithm; the RSA
/// CA certifies the P-256 timestamp key): loaded, or issued when missing, for another key, or
/// within 30 days of its end. Stored as CA certificate `name` with its key in custody under the
/// same name.
#[allow(clippy::too_many_arguments)]
pub async fn org_cert(
    db: &Db,
    kek: &Kek,
    name: &str,
    alg: Option<KeyAlg>,
    profile: Profile,
    subject: &str,
    issuing: &Cert,
    ca_key: &KeySigner,
    links: Option<&Links>,
) -> Result<(Cert, KeySigner)> {
    let alg = match alg {
        Some(a) => a,
        None => issuing.public_key().map_err(|e| Error::internal_from("ca::org_cert", e))?.alg(),
    };
    let key = KeySigner::new(custody::ensure_key(db, kek, name, alg).await?);
    let now = Utc::now();
    if let Some(c) = load(db, name).await?
        && usable(&c, &key, links)
    {
        return Ok((c, key));
    }
    let mut t = CertTemplate::new(
        parse_dn(subject).map_err(|e| Error::internal_from("ca::org_cert", e))?,
        medsign_crypto::Signer::public_key(&key).clone(),
        profile,
        now - Duration::minutes(5),
        (now + Duration::days(365)).min(issuing.not_after()),
    );
    if let Some(l) = links {
        l.apply(&mut t);
    }
    let c = issue(&t, Some(issuing), ca_key).map_err(|e| Error::internal_from(name.to_string(), e))?;
    store(db, name, &c).await?;
    Ok((c, key))
}

/// Whether the stored certificate `c` of an organisation key is still the one to sign with: more
/// than 30 days left, issued for `key`, naming the CA's current links.
pub(crate) fn usable(c: &Cert, key: &KeySigner, links: Option<&Links>) -> bool {
    c.not_after() - Utc::now() > Duration::days(30)
        && c.public_key().ok() == Some(medsign_crypto::Signer::public_key(key))
        && links.is_none_or(|l| l.in_cert(c))
}

#[allow(clippy::too_many_arguments)]
async fn hierarchy(
    db: &Db,
    kek: &Kek,
    org: &str,
    prefix: &str,
    root_alg: KeyAlg,
    issuing_alg: KeyAlg,
    label: &str,
    public_url: Option<&str>,
) -> Result<Hierarchy> {
    let root_name = format!("ca-{prefix}-root");
    let issuing_name = format!("ca-{prefix}-issuing");
    let now = Utc::now();
    let root_key = KeySigner::new(custody::ensure_key(db, kek, &root_name, root_alg).await?);
    let root = match load(db, &root_name).await? {
        Some(c) => c,
        None => {
            let subject = parse_dn(&format!("CN={org} {label} 根证书,O={org},C=CN"))
                .map_err(|e| Error::internal_from("ca::hierarchy", e))?;
            let t = CertTemplate::new(
                subject,
                medsign_crypto::Signer::public_key(&root_key).clone(),
                Profile::Ca { path_len: Some(1) },
                now - Duration::minutes(5),
                now + Duration::days(365 * 20),
            );
            let c = issue(&t, None, &root_key).map_err(|e| Error::internal_from("root CA", e))?;
            store(db, &root_name, &c).await?;
            c
        }
    };
    let issuing_key = KeySigner::new(custody::ensure_key(db, kek, &issuing_name, issuing_alg).await?);
    let ca = if prefix == "sm2" { "sm2" } else { "rsa" };
    // the issuing CA names the root's CRL (so a validator that trusts only the root finds
    // revocation information for every certificate of the path); one made before, or under
    // another URL, is issued again with the same key, subject and end of validity
    let root_crl = public_url.map(|u| root_crl_url(u, ca));
    let issuing = match load(db, &issuing_name).await? {
        Some(c) if root_crl.as_ref().is_none_or(|u| names(&c, u)) => c,
        stored => {
            let subject = parse_dn(&format!("CN={org} {label} 签发证书,O={org},C=CN"))
                .map_err(|e| Error::internal_from("ca::hierarchy", e))?;
            let mut t = CertTemplate::new(
                stored.as_ref().map_or(subject, |c| c.subject().clone()),
                medsign_crypto::Signer::public_key(&issuing_key).clone(),
                Profile::Ca { path_len: Some(0) },
                now - Duration::minutes(5),
                stored.as_ref().map_or(now + Duration::days(365 * 10), Cert::not_after),
            );
            t.crl_url = root_crl;
            let c = issue(&t, Some(&root), &root_key).map_err(|e| Error::internal_from("issuing CA", e))?;
            store(db, &issuing_name, &c).await?;
            c
        }
    };
    let (ocsp, ocsp_key) = org_cert(
        db,
        kek,
        &format!("ocsp-{prefix}"),
        None,
        Profile::Ocsp,
        &format!("CN={org} {label} OCSP 响应服务,O={org},C=CN"),
        &issuing,
        &issuing_key,
        None,
    )
    .await?;
    Ok(Hierarchy {
        name: ca,
        root,
        issuing,
        issuing_key: Arc::new(issuing_key),
        ocsp,
        ocsp_key: Arc::new(ocsp_key),
        root_key: Arc::new(root_key),
        public_url: public_url.map(str::to_string),
    })
}

/// Create the hierarchies on first start; load them afterwards (no public URL: the
/// organisation's certificates carry no revocation links — for tests and tools).
pub async fn ensure(db: &Db, kek: &Kek, organization: &str) -> Result<BuiltinCas> {
    ensure_at(db, kek, organization, None).await
}

/// [`ensure`] for a server at `public_url`: the issuing CAs name the root's CRL, and the
/// organisation's certificates made from here on (TSA, seals) carry CRL and OCSP links.
pub async fn ensure_at(db: &Db, kek: &Kek, organization: &str, public_url: Option<&str>) -> Result<BuiltinCas> {
    let org = organization.replace(',', " ");
    Ok(BuiltinCas {
        sm2: hierarchy(db, kek, &org, "sm2", KeyAlg::Sm2, KeyAlg::Sm2, "SM2", public_url).await?,
        rsa: hierarchy(db, kek, &org, "rsa", KeyAlg::Rsa3072, KeyAlg::Rsa2048, "RSA", public_url).await?,
        staff: StaffProfile::from_config(&Default::default())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_pki::path::{PathOptions, validate};
    use medsign_testkit::db::backends;

    #[tokio::test]
    async fn hierarchies_are_created_once_and_chain() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let a = ensure(&db, &kek, "某县人民医院").await.unwrap();
            let b = ensure(&db, &kek, "ignored on reload").await.unwrap();
            assert_eq!(a.sm2.root, b.sm2.root);
            assert_eq!(a.rsa.issuing, b.rsa.issuing);
            assert_eq!(a.sm2.ocsp, b.sm2.ocsp);
            for h in [&a.sm2, &a.rsa] {
                h.ocsp.verify_signed_by(&h.issuing, medsign_pki::alg::Sm2IdPolicy::Standard).unwrap();
                let (_, ekus) = h.ocsp.ext_key_usage().unwrap().unwrap();
                assert_eq!(ekus, vec![medsign_pki::oid::KP_OCSP_SIGNING]);
            }
            for h in [&a.sm2, &a.rsa] {
                let ok =
                    validate(&h.issuing, &[], std::slice::from_ref(&h.root), &PathOptions::at(Utc::now())).unwrap();
                assert_eq!(ok.chain.len(), 2);
                assert!(h.issuing.is_ca() && h.root.is_ca());
                assert_eq!(Cert::load_all(h.pem().as_bytes()).unwrap().len(), 2);
            }
            assert!(a.sm2.root.subject_display().contains("某县人民医院"));
            assert_eq!(a.sm2.root.public_key().unwrap().alg(), KeyAlg::Sm2);
            assert_eq!(a.rsa.root.public_key().unwrap().alg(), KeyAlg::Rsa3072);
        }
    }
}
