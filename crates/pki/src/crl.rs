//! CRL v2 (RFC 5280 § 5): build, parse, verify, look up a serial number.

use crate::{
    Error, Result,
    alg::{Sm2IdPolicy, signature_algorithm, verify_signature},
    cert::{Cert, SignedEnvelope, key_identifier, sign_envelope},
    oid,
    time::{from_x509_time, to_x509_time},
};
use chrono::{DateTime, Utc};
use der::{
    Decode, Encode,
    asn1::{OctetString, Uint},
};
use medsign_crypto::Signer;
use x509_cert::{
    certificate::Version,
    crl::{CertificateList, RevokedCert, TbsCertList},
    ext::{
        Extension,
        pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason},
    },
    serial_number::SerialNumber,
};

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// serial number bytes
    pub serial: Vec<u8>,
    /// revocation time
    pub time: DateTime<Utc>,
    /// reason code (RFC 5280 § 5.3.1), when given
    pub reason: Option<CrlReason>,
}

fn ext<T: Encode>(id: der::asn1::ObjectIdentifier, v: &T) -> Result<Extension> {
    Ok(Extension {
        extn_id: id,
        critical: false,
        extn_value: OctetString::new(v.to_der().map_err(|e| Error::malformed("CRL extension", e))?)
            .map_err(|e| Error::malformed("CRL extension", e))?,
    })
}

/// Build and sign a CRL for `issuer`.
pub fn build(
    issuer: &Cert,
    signer: &dyn Signer,
    this_update: DateTime<Utc>,
    next_update: DateTime<Utc>,
    number: u64,
    revoked: &[Revoked],
) -> Result<Vec<u8>> {
    if issuer.public_key()? != signer.public_key() {
        return Err(Error::Invalid("the signing key does not belong to the CRL issuer".into()));
    }
    let entries = revoked
        .iter()
        .map(|r| {
            Ok(RevokedCert::<x509_cert::certificate::Rfc5280> {
                serial_number: SerialNumber::new(&r.serial).map_err(|e| Error::Invalid(format!("serial: {e}")))?,
                revocation_date: to_x509_time(r.time)?,
                crl_entry_extensions: match r.reason {
                    Some(reason) => Some(vec![ext(oid::EXT_CRL_REASON, &reason)?]),
                    None => None,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(
            OctetString::new(issuer.subject_key_id().unwrap_or_else(|| key_identifier(signer.public_key())))
                .expect("octets"),
        ),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let tbs = TbsCertList {
        version: Version::V2,
        signature: signature_algorithm(signer.scheme()),
        issuer: issuer.subject().clone(),
        this_update: to_x509_time(this_update)?,
        next_update: Some(to_x509_time(next_update)?),
        revoked_certificates: if entries.is_empty() { None } else { Some(entries) },
        crl_extensions: Some(vec![
            ext(oid::EXT_AUTHORITY_KEY_ID, &aki)?,
            ext(oid::EXT_CRL_NUMBER, &CrlNumber(Uint::new(&number.to_be_bytes()).expect("uint")))?,
        ]),
    };
    let tbs_der = tbs.to_der().map_err(|e| Error::malformed("TBSCertList", e))?;
    sign_envelope(&tbs_der, signer)
}

/// A parsed CRL.
#[derive(Debug, Clone)]
pub struct Crl {
    der: Vec<u8>,
    inner: CertificateList,
}

impl Crl {
    /// Parse DER (or PEM `X509 CRL`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let der = match core::str::from_utf8(bytes) {
            Ok(t) if t.contains("-----BEGIN") => medsign_crypto::keys::pem_decode(t)?.1,
            _ => bytes.to_vec(),
        };
        let inner = CertificateList::from_der(&der).map_err(|e| Error::malformed("CRL", e))?;
        Ok(Self { der, inner })
    }

    /// DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// thisUpdate.
    pub fn this_update(&self) -> DateTime<Utc> {
        from_x509_time(&self.inner.tbs_cert_list.this_update)
    }

    /// nextUpdate.
    pub fn next_update(&self) -> Option<DateTime<Utc>> {
        self.inner.tbs_cert_list.next_update.as_ref().map(from_x509_time)
    }

    /// cRLNumber.
    pub fn number(&self) -> Option<u64> {
        let exts = self.inner.tbs_cert_list.crl_extensions.as_ref()?;
        let e = exts.iter().find(|e| e.extn_id == oid::EXT_CRL_NUMBER)?;
        let n = CrlNumber::from_der(e.extn_value.as_bytes()).ok()?;
        let b = n.0.as_bytes();
        (b.len() <= 8).then(|| b.iter().fold(0u64, |a, &x| (a << 8) | x as u64))
    }

    /// Verify the CRL's signature with `issuer` and that it names `issuer`.
    pub fn verify(&self, issuer: &Cert, policy: Sm2IdPolicy) -> Result<()> {
        if !crate::name::same(&self.inner.tbs_cert_list.issuer, issuer.subject()) {
            return Err(Error::Invalid("the CRL was issued by another CA".into()));
        }
        let env = SignedEnvelope::from_der(&self.der).map_err(|e| Error::malformed("CRL", e))?;
        let sig = env.signature.as_bytes().ok_or_else(|| Error::malformed("CRL", "signature has unused bits"))?;
        let tbs = env.tbs.to_der().map_err(|e| Error::malformed("CRL", e))?;
        verify_signature(&env.algorithm, None, issuer.public_key()?, &tbs, sig, policy)?;
        Ok(())
    }

    /// The entry for `serial`, if revoked.
    pub fn find(&self, serial: &[u8]) -> Option<Revoked> {
        let list = self.inner.tbs_cert_list.revoked_certificates.as_ref()?;
        let r = list.iter().find(|r| r.serial_number.as_bytes() == serial)?;
        let reason = r
            .crl_entry_extensions
            .as_ref()
            .and_then(|v| v.iter().find(|e| e.extn_id == oid::EXT_CRL_REASON))
            .and_then(|e| CrlReason::from_der(e.extn_value.as_bytes()).ok());
        Some(Revoked { serial: serial.to_vec(), time: from_x509_time(&r.revocation_date), reason })
    }

    /// All entries.
    pub fn entries(&self) -> Vec<Revoked> {
        self.inner
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .filter_map(|r| self.find(r.serial_number.as_bytes()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests::test_pki;
    use chrono::Duration;
    use medsign_crypto::KeyAlg;

    #[test]
    fn build_parse_verify_find() {
        let p = test_pki(KeyAlg::Sm2);
        let now = Utc::now();
        let revoked =
            vec![Revoked { serial: p.leaf.serial().to_vec(), time: now, reason: Some(CrlReason::KeyCompromise) }];
        let der = build(&p.ca, &p.ca_key, now, now + Duration::hours(24), 7, &revoked).unwrap();
        let crl = Crl::from_bytes(&der).unwrap();
        crl.verify(&p.ca, Sm2IdPolicy::Standard).unwrap();
        assert!(crl.verify(&p.root, Sm2IdPolicy::Standard).is_err());
        assert_eq!(crl.number(), Some(7));
        let hit = crl.find(p.leaf.serial()).unwrap();
        assert_eq!(hit.reason, Some(CrlReason::KeyCompromise));
        assert!(crl.find(p.ca.serial()).is_none());
        assert_eq!(crl.entries().len(), 1);
        // empty CRL, and garbage
        let empty = Crl::from_bytes(&build(&p.ca, &p.ca_key, now, now + Duration::hours(1), 8, &[]).unwrap()).unwrap();
        assert!(empty.find(p.leaf.serial()).is_none());
        assert!(Crl::from_bytes(b"not a crl").is_err());
        let mut t = der.clone();
        let n = t.len();
        t[n - 3] ^= 1;
        assert!(Crl::from_bytes(&t).map(|c| c.verify(&p.ca, Sm2IdPolicy::Standard).is_err()).unwrap_or(true));
    }
}
