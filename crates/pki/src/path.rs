//! Certification path validation (RFC 5280 § 6, the subset a hospital PKI needs): build a chain
//! from the end entity to a trust anchor, then check each certificate's signature, validity at
//! the given instant, basicConstraints / pathLenConstraint, keyUsage and name chaining. A failure
//! names the certificate (by position and subject) and the reason.

use crate::{Result, alg::Sm2IdPolicy, cert::Cert, name};
use chrono::{DateTime, Utc};

/// Longest chain we follow (end entity + CAs).
pub const MAX_DEPTH: usize = 8;

/// What to check besides the chain itself.
#[derive(Debug, Clone)]
pub struct PathOptions {
    /// The instant at which every certificate must be valid (signing time, or now).
    pub at: DateTime<Utc>,
    /// Accept SM2 certificate signatures made with the empty ID (OpenSSL 3.0 default).
    pub sm2_ids: Sm2IdPolicy,
    /// Extended key usage the end entity must carry (e.g. timeStamping for a TSA).
    pub required_eku: Option<der::asn1::ObjectIdentifier>,
}

impl PathOptions {
    /// Validate at `at` with the standard SM2 ID and no EKU requirement.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self { at, sm2_ids: Sm2IdPolicy::Standard, required_eku: None }
    }
}

/// Why a certificate failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No certificate in the pool or among the anchors issued it.
    IssuerNotFound,
    /// The signature does not verify with the issuer's key.
    BadSignature,
    /// Not yet valid at the instant.
    NotYetValid(DateTime<Utc>),
    /// Expired at the instant.
    Expired(DateTime<Utc>),
    /// An issuing certificate is not a CA (basicConstraints).
    NotCa,
    /// keyUsage of an issuing certificate lacks keyCertSign.
    NoKeyCertSign,
    /// pathLenConstraint exceeded.
    PathLenExceeded,
    /// The end entity lacks a required extended key usage.
    MissingEku(String),
    /// The chain is longer than [`MAX_DEPTH`] or loops.
    TooLong,
    /// A certificate could not be read or uses an unsupported algorithm.
    Unreadable(String),
}

impl Failure {
    /// Chinese and English explanation.
    pub fn explain(&self) -> String {
        match self {
            Failure::IssuerNotFound => {
                "找不到签发者证书，或签发者不受信任 / issuer not found among the trusted certificates".into()
            }
            Failure::BadSignature => "证书签名无效 / certificate signature does not verify".into(),
            Failure::NotYetValid(t) => format!("证书尚未生效（生效时间 {t}）/ not yet valid (from {t})"),
            Failure::Expired(t) => format!("证书已过期（失效时间 {t}）/ expired (at {t})"),
            Failure::NotCa => "签发者不是 CA 证书 / issuer is not a CA (basicConstraints)".into(),
            Failure::NoKeyCertSign => "签发者密钥用法不含证书签名 / issuer keyUsage lacks keyCertSign".into(),
            Failure::PathLenExceeded => "超出路径长度限制 / pathLenConstraint exceeded".into(),
            Failure::MissingEku(e) => format!("缺少扩展密钥用法 {e} / missing extended key usage {e}"),
            Failure::TooLong => "证书链过长或成环 / chain too long or looping".into(),
            Failure::Unreadable(e) => format!("证书无法解析 / unreadable certificate: {e}"),
        }
    }
}

/// A validation failure: which certificate (0 = end entity), its subject, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate #{index} ({subject}): {}", reason.explain())]
pub struct PathError {
    /// position in the chain, 0 = end entity
    pub index: usize,
    /// subject of that certificate
    pub subject: String,
    /// reason
    pub reason: Failure,
}

/// A validated chain: end entity first, trust anchor last.
#[derive(Debug, Clone)]
pub struct ValidPath {
    /// the certificates, end entity first
    pub chain: Vec<Cert>,
}

fn fail(index: usize, c: &Cert, reason: Failure) -> PathError {
    PathError { index, subject: c.subject_display(), reason }
}

fn issued(child: &Cert, parent: &Cert) -> bool {
    if !name::same(child.issuer(), parent.subject()) {
        return false;
    }
    match (child.authority_key_id(), parent.subject_key_id()) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}

/// Validate `leaf` up to one of `anchors`, using `pool` for intermediates.
pub fn validate(leaf: &Cert, pool: &[Cert], anchors: &[Cert], opts: &PathOptions) -> Result<ValidPath, PathError> {
    let mut chain = vec![leaf.clone()];
    // build: follow issuers whose signature verifies; anchors first
    loop {
        let cur = chain.last().expect("non-empty");
        let idx = chain.len() - 1;
        if anchors.contains(cur) {
            break;
        }
        if chain.len() > MAX_DEPTH {
            return Err(fail(idx, cur, Failure::TooLong));
        }
        let mut found = None;
        let mut any_name_match = false;
        for cand in anchors.iter().chain(pool.iter()) {
            if !issued(cur, cand) || (cand == cur && !anchors.contains(cand)) {
                continue;
            }
            any_name_match = true;
            if cur.verify_signed_by(cand, opts.sm2_ids).is_ok() {
                found = Some(cand.clone());
                break;
            }
        }
        match found {
            Some(c) if chain.contains(&c) => return Err(fail(idx, cur, Failure::TooLong)),
            Some(c) => chain.push(c),
            None if any_name_match => return Err(fail(idx, cur, Failure::BadSignature)),
            None => return Err(fail(idx, cur, Failure::IssuerNotFound)),
        }
    }
    // check: validity of every certificate, CA constraints of every issuer
    for (i, c) in chain.iter().enumerate() {
        c.public_key().map_err(|e| fail(i, c, Failure::Unreadable(e.to_string())))?;
        if opts.at < c.not_before() {
            return Err(fail(i, c, Failure::NotYetValid(c.not_before())));
        }
        if opts.at > c.not_after() {
            return Err(fail(i, c, Failure::Expired(c.not_after())));
        }
        if i == 0 {
            continue;
        }
        match c.basic_constraints() {
            Ok(Some((true, path_len))) => {
                // CAs strictly between this one and the end entity, not counting self-issued
                let below = chain[1..i].len();
                if let Some(max) = path_len
                    && below > max as usize
                {
                    return Err(fail(i, c, Failure::PathLenExceeded));
                }
            }
            Ok(_) => return Err(fail(i, c, Failure::NotCa)),
            Err(e) => return Err(fail(i, c, Failure::Unreadable(e.to_string()))),
        }
        match c.key_usage() {
            Ok(Some(ku)) if !ku.key_cert_sign() => return Err(fail(i, c, Failure::NoKeyCertSign)),
            Ok(_) => {}
            Err(e) => return Err(fail(i, c, Failure::Unreadable(e.to_string()))),
        }
    }
    if let Some(eku) = opts.required_eku {
        let has = matches!(leaf.ext_key_usage(), Ok(Some((_, ref v))) if v.contains(&eku));
        if !has {
            return Err(fail(0, leaf, Failure::MissingEku(eku.to_string())));
        }
    }
    Ok(ValidPath { chain })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{CertTemplate, Profile, issue, tests::test_pki};
    use crate::name::parse_dn;
    use chrono::Duration;
    use medsign_crypto::{KeyAlg, PrivateKey, Signer, signer::KeySigner};

    #[test]
    fn valid_chain_and_each_failure_named() {
        let p = test_pki(KeyAlg::Sm2);
        let now = Utc::now();
        let ok = validate(&p.leaf, std::slice::from_ref(&p.ca), std::slice::from_ref(&p.root), &PathOptions::at(now))
            .unwrap();
        assert_eq!(ok.chain.len(), 3);
        // missing intermediate
        let e = validate(&p.leaf, &[], std::slice::from_ref(&p.root), &PathOptions::at(now)).unwrap_err();
        assert_eq!((e.index, e.reason), (0, Failure::IssuerNotFound));
        // expired / not yet valid, with the certificate named
        let e = validate(
            &p.leaf,
            std::slice::from_ref(&p.ca),
            std::slice::from_ref(&p.root),
            &PathOptions::at(now + Duration::days(400)),
        )
        .unwrap_err();
        assert_eq!(e.index, 0);
        assert!(matches!(e.reason, Failure::Expired(_)));
        assert!(e.to_string().contains("张三"), "{e}");
        let e = validate(
            &p.leaf,
            std::slice::from_ref(&p.ca),
            std::slice::from_ref(&p.root),
            &PathOptions::at(now - Duration::days(2)),
        )
        .unwrap_err();
        assert!(matches!(e.reason, Failure::NotYetValid(_)));
        // untrusted root
        let other = test_pki(KeyAlg::Sm2);
        let e =
            validate(&p.leaf, std::slice::from_ref(&p.ca), std::slice::from_ref(&other.root), &PathOptions::at(now))
                .unwrap_err();
        assert_eq!((e.index, e.reason), (1, Failure::IssuerNotFound));
        // EKU requirement
        let mut o = PathOptions::at(now);
        o.required_eku = Some(crate::oid::KP_TIME_STAMPING);
        assert!(matches!(
            validate(&p.leaf, std::slice::from_ref(&p.ca), std::slice::from_ref(&p.root), &o).unwrap_err().reason,
            Failure::MissingEku(_)
        ));
    }

    #[test]
    fn end_entity_cannot_issue_and_path_len_holds() {
        let p = test_pki(KeyAlg::P256);
        let now = Utc::now();
        // a certificate "issued" by the leaf (the leaf is not a CA): build it by hand via a fake CA
        // certificate with the leaf's name and key, then present the real leaf as its issuer.
        let k = KeySigner::new(PrivateKey::generate(KeyAlg::P256).unwrap());
        let fake_ca_tpl = CertTemplate::new(
            p.leaf.subject().clone(),
            p.leaf_key.public_key().clone(),
            Profile::Ca { path_len: None },
            now - Duration::hours(1),
            now + Duration::days(1),
        );
        let fake_ca = issue(&fake_ca_tpl, None, &p.leaf_key).unwrap();
        let t = CertTemplate::new(
            parse_dn("CN=mallory").unwrap(),
            k.public_key().clone(),
            Profile::Signer,
            now - Duration::hours(1),
            now + Duration::days(1),
        );
        let child = issue(&t, Some(&fake_ca), &p.leaf_key).unwrap();
        let e = validate(&child, &[p.leaf.clone(), p.ca.clone()], std::slice::from_ref(&p.root), &PathOptions::at(now))
            .unwrap_err();
        assert!(matches!(e.reason, Failure::NotCa | Failure::IssuerNotFound), "{e}");

        // pathLen: the issuing CA has pathLen 0, so a CA below it must not validate a leaf.
        let sub_key = KeySigner::new(PrivateKey::generate(KeyAlg::P256).unwrap());
        let t = CertTemplate::new(
            parse_dn("CN=sub-sub CA").unwrap(),
            sub_key.public_key().clone(),
            Profile::Ca { path_len: None },
            now - Duration::hours(1),
            now + Duration::days(1),
        );
        let subsub = issue(&t, Some(&p.ca), &p.ca_key).unwrap();
        let t = CertTemplate::new(
            parse_dn("CN=deep leaf").unwrap(),
            k.public_key().clone(),
            Profile::Signer,
            now - Duration::hours(1),
            now + Duration::days(1),
        );
        let deep = issue(&t, Some(&subsub), &sub_key).unwrap();
        let e = validate(&deep, &[subsub.clone(), p.ca.clone()], std::slice::from_ref(&p.root), &PathOptions::at(now))
            .unwrap_err();
        assert_eq!((e.index, e.reason), (2, Failure::PathLenExceeded));
    }

    #[test]
    fn tampered_certificate_signature_is_reported() {
        let p = test_pki(KeyAlg::Sm2);
        let mut der = p.leaf.der().to_vec();
        let n = der.len();
        der[n - 5] ^= 0x01;
        let bad = Cert::from_der(&der).unwrap();
        let e =
            validate(&bad, std::slice::from_ref(&p.ca), std::slice::from_ref(&p.root), &PathOptions::at(Utc::now()))
                .unwrap_err();
        assert_eq!((e.index, e.reason), (0, Failure::BadSignature));
    }
}
