//! Mutual TLS of the tunnel: both ends hold certificates from the hospital's CA (issued by
//! `medsign gateway cert`), and each checks the other's.
//!
//! rustls (through webpki) checks the chain, the validity and the name of the gateway. webpki
//! accepts a certificate *without* an extKeyUsage extension for any purpose, and the hospital's
//! RSA CA also issues staff and seal certificates, which have none. So after the handshake each
//! end also insists on the purpose: a server's certificate must name clientAuth, a gateway's
//! serverAuth ([`require_purpose`]). A doctor's signing certificate therefore cannot open a
//! tunnel, and a server's certificate cannot pose as a gateway.

use medsign_pki::{cert::Cert, oid};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::{path::Path, sync::Arc};

/// A certificate, key or CA file that cannot be used; the message names the file, Chinese first.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates of a PEM file (a chain: the leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad =
        |e: String| TlsError(format!("证书文件 {0} 无法读取 / cannot read certificates from {0}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("没有证书 / no certificate in it".into()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TlsError(format!("私钥文件 {0} 无法读取 / cannot read the private key from {0}: {e}", path.display()))
    })
}

fn roots(path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for c in load_certs(path)? {
        store.add(c).map_err(|e| {
            TlsError(format!("CA 证书 {0} 不可用 / the CA certificate in {0} cannot be used: {e}", path.display()))
        })?;
    }
    Ok(Arc::new(store))
}

/// Where a tunnel end's certificate, key and CA come from.
#[derive(Debug, Clone)]
pub struct Files<'a> {
    /// this end's certificate chain
    pub cert: &'a Path,
    /// its key
    pub key: &'a Path,
    /// the CA the other end's certificate must chain to
    pub ca: &'a Path,
}

/// The gateway's tunnel listener: TLS 1.2/1.3, a client certificate from the hospital CA
/// required; HTTP/2 (a tunnel) or, for a server's egress, HTTP/1.1 ([`crate::egress`]).
pub fn acceptor(f: &Files) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(f.ca)?, crypto())
        .build()
        .map_err(|e| TlsError(format!("客户端证书校验无法建立 / cannot set up client verification: {e}")))?;
    let mut c = rustls::ServerConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(f.cert)?, load_key(f.key)?)
        .map_err(|e| TlsError(format!("隧道证书与私钥不匹配 / the tunnel certificate and key do not fit: {e}")))?;
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// A server's side: its client certificate, the gateway's checked against the hospital CA.
pub fn connector(f: &Files) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut c = rustls::ClientConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_root_certificates(roots(f.ca)?)
        .with_client_auth_cert(load_certs(f.cert)?, load_key(f.key)?)
        .map_err(|e| TlsError(format!("隧道证书与私钥不匹配 / the tunnel certificate and key do not fit: {e}")))?;
    c.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(c))
}

/// What the other end of a tunnel must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// a `medsign serve` instance (extKeyUsage clientAuth)
    Server,
    /// a gateway (extKeyUsage serverAuth)
    Gateway,
}

/// Refuse a peer whose leaf certificate does not name `purpose` in its extKeyUsage; returns the
/// certificate (its subject for the log, its common name for `gateway.tunnel_peers`).
pub fn require_purpose(peer: Option<&[CertificateDer<'_>]>, purpose: Purpose) -> Result<Cert, TlsError> {
    let leaf = peer
        .and_then(|c| c.first())
        .ok_or_else(|| TlsError("对端未出示证书 / the peer showed no certificate".into()))?;
    let cert =
        Cert::from_der(leaf).map_err(|e| TlsError(format!("对端证书无法解析 / unreadable peer certificate: {e}")))?;
    let want = match purpose {
        Purpose::Server => oid::KP_CLIENT_AUTH,
        Purpose::Gateway => oid::KP_SERVER_AUTH,
    };
    match cert.ext_key_usage() {
        Ok(Some((_, ekus))) if ekus.contains(&want) => Ok(cert),
        _ => Err(TlsError(format!(
            "对端证书 {} 不是隧道证书（缺少扩展密钥用途 {want}）/ the peer's certificate is not a tunnel certificate (extKeyUsage {want} missing)",
            cert.subject_display()
        ))),
    }
}
