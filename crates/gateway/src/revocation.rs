//! Revoked tunnel certificates, as the gateway learns of them.
//!
//! The gateway stores nothing and cannot reach the intranet, so it asks the servers: through the
//! open tunnels it fetches the issuing CA's CRL (`GET /pki/crl?ca=rsa`, the list `medsign serve`
//! publishes and re-signs on every revocation), at once when a tunnel opens and then every
//! `gateway.crl_refresh_seconds`. A CRL is taken only when it is signed by the CA that issued the
//! gateway's own tunnel certificate (the certificate in `gateway.tunnel_cert` whose key signed the
//! gateway's; it issues the servers' tunnel certificates too) and is newer than the one held (its
//! cRLNumber), so a server cannot replace it with an older one or a forged one. Every open tunnel
//! is asked at once, within [`FETCH_TIMEOUT`] (or the refresh interval, if shorter), so one server
//! that stalls or hands over an old list cannot keep the others' newer one away or hold it up. Then:
//!
//! - a server whose certificate is on it cannot open a tunnel;
//! - open tunnels of certificates on it are closed;
//! - a server certificate of another CA is refused (its revocation could not be checked).
//!
//! Before the first CRL arrives (a gateway just started), nothing is known to be revoked: the
//! first tunnels are accepted and asked at once. A gateway whose certificate file carries no
//! issuing CA cannot check a CRL and says so at start.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use medsign_pki::{cert::Cert, crl::Crl};
use std::sync::Mutex;

/// The largest CRL taken (700 staff over ten years of renewals stay far below).
pub const MAX_CRL: usize = 8 << 20;
/// Where a server publishes the RSA issuing CA's CRL (the CA of the tunnel certificates).
pub const CRL_PATH: &str = "/pki/crl?ca=rsa";
/// How long one server may take to hand over the CRL (at most `gateway.crl_refresh_seconds`).
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The newest CRL checked against the tunnel certificates' issuing CA.
pub struct Revocations {
    issuer: Cert,
    held: Mutex<Option<Crl>>,
}

impl Revocations {
    /// Nothing known yet; CRLs must be signed by `issuer`.
    pub fn new(issuer: Cert) -> Self {
        Revocations { issuer, held: Mutex::new(None) }
    }

    /// Whether the certificate with this serial is on the CRL held.
    pub fn revoked(&self, serial: &[u8]) -> bool {
        self.held.lock().expect("crl").as_ref().is_some_and(|c| c.find(serial).is_some())
    }

    /// Whether `cert` was issued by the CA whose CRLs are checked (name and signature).
    pub fn covers(&self, cert: &Cert) -> bool {
        issued_by(cert, &self.issuer)
    }

    /// The cRLNumber of the CRL held.
    pub fn number(&self) -> Option<u64> {
        self.held.lock().expect("crl").as_ref().and_then(Crl::number)
    }

    /// Take `der` when it is a CRL of the issuing CA, correctly signed, and newer than the one
    /// held; returns whether it was taken (an equal number is not news), or why it was refused.
    pub fn offer(&self, der: &[u8]) -> Result<bool, String> {
        let crl = Crl::from_bytes(der).map_err(|e| format!("not a CRL: {e}"))?;
        crl.verify(&self.issuer, Default::default()).map_err(|e| format!("not the tunnel CA's CRL: {e}"))?;
        let Some(n) = crl.number() else { return Err("the CRL has no cRLNumber".into()) };
        let mut held = self.held.lock().expect("crl");
        match held.as_ref().and_then(Crl::number) {
            Some(have) if have == n => Ok(false),
            // a database restored from an older backup numbers its CRLs below what this gateway
            // saw: said, so that it is noticed (restart the gateways to take the restored list)
            Some(have) if have > n => Err(format!("CRL number {n} is older than the one held ({have})")),
            _ => {
                *held = Some(crl);
                Ok(true)
            }
        }
    }
}

/// Whether `ca` issued `cert`: its name, and its key's signature.
pub fn issued_by(cert: &Cert, ca: &Cert) -> bool {
    medsign_pki::name::same(cert.issuer(), ca.subject()) && cert.verify_signed_by(ca, Default::default()).is_ok()
}

/// The CA that issued the first certificate of `chain` — the one whose key signed it — if the
/// chain carries it.
pub fn issuer_of(chain: &[rustls::pki_types::CertificateDer<'_>]) -> Option<Cert> {
    let leaf = Cert::from_der(chain.first()?).ok()?;
    chain.iter().skip(1).filter_map(|c| Cert::from_der(c).ok()).find(|c| issued_by(&leaf, c))
}

/// Read a CRL answer's body, bounded.
pub async fn body(res: hyper::Response<hyper::body::Incoming>) -> Result<Bytes, String> {
    if !res.status().is_success() {
        return Err(format!("HTTP {}", res.status()));
    }
    Limited::new(res.into_body(), MAX_CRL)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading the CRL: {e}"))
}

/// The request for the CRL, sent down a tunnel.
pub fn request() -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(CRL_PATH).body(Full::new(Bytes::new())).expect("a fixed request")
}
