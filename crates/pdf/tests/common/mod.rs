//! Shared by the PDF integration tests: a throw-away PKI (root, issuing CA, TSA), PAdES B-T
//! signing with it, and the third-party tools.
#![allow(dead_code)]

use chrono::{Duration, Utc};
use medsign_crypto::{HashAlg, KeyAlg, PrivateKey, Signer, signer::KeySigner};
use medsign_pdf::{SignOptions, prepare};
use medsign_pki::{
    cert::{Cert, CertTemplate, Profile, issue},
    cms::{self, CmsSigner, Parsed},
    der::asn1::{Int, ObjectIdentifier as Oid},
    name::parse_dn,
    time::PreciseTime,
    tsp::{Accuracy, MessageImprint, TstInfo},
};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pki {
    pub root: Cert,
    pub root_key: KeySigner,
    pub issuing: Cert,
    pub issuing_key: KeySigner,
    pub tsa: Cert,
    pub tsa_key: KeySigner,
}

pub fn cert(subject: &str, key: &KeySigner, profile: Profile, issuer: Option<(&Cert, &KeySigner)>) -> Cert {
    let now = Utc::now();
    let t = CertTemplate::new(
        parse_dn(subject).unwrap(),
        key.public_key().clone(),
        profile,
        now - Duration::hours(1),
        now + Duration::days(30),
    );
    match issuer {
        Some((c, k)) => issue(&t, Some(c), k).unwrap(),
        None => issue(&t, None, key).unwrap(),
    }
}

pub fn pki() -> Pki {
    pki_of(KeyAlg::Rsa2048)
}

/// A PKI whose keys are all of `alg`.
pub fn pki_of(alg: KeyAlg) -> Pki {
    let root_key = KeySigner::new(PrivateKey::generate(alg).unwrap());
    let root = cert("CN=测试根 CA,O=某县人民医院,C=CN", &root_key, Profile::Ca { path_len: Some(1) }, None);
    let issuing_key = KeySigner::new(PrivateKey::generate(alg).unwrap());
    let issuing = cert(
        "CN=测试签发 CA,O=某县人民医院,C=CN",
        &issuing_key,
        Profile::Ca { path_len: Some(0) },
        Some((&root, &root_key)),
    );
    let tsa_key = KeySigner::new(PrivateKey::generate(alg).unwrap());
    let tsa = cert("CN=测试时间戳,O=某县人民医院,C=CN", &tsa_key, Profile::Tsa, Some((&issuing, &issuing_key)));
    Pki { root, root_key, issuing, issuing_key, tsa, tsa_key }
}

/// Sign `pdf` as `signer` (PAdES B-T).
pub fn sign(pdf: &[u8], p: &Pki, key: &KeySigner, signer: &Cert, opts: &SignOptions) -> Vec<u8> {
    let prepared = prepare(pdf, opts).unwrap();
    let chain = [p.issuing.clone()];
    let der = cms::sign(
        &prepared.covered(),
        &[CmsSigner { signer: key, cert: signer, chain: &chain }],
        &cms::SignOptions { detached: true, omit_signing_time: true, ..Default::default() },
    )
    .unwrap();
    let mut parsed = Parsed::from_bytes(&der).unwrap();
    let info = TstInfo {
        version: 1,
        policy: Oid::new_unwrap("0.4.0.2023.1.1"),
        message_imprint: MessageImprint::of(HashAlg::Sha256, &parsed.signature_value(0).unwrap()),
        serial_number: Int::new(&[0x01, 0x02]).unwrap(),
        gen_time: PreciseTime(Utc::now()),
        accuracy: Some(Accuracy::from_micros(2000)),
        ordering: false,
        nonce: None,
        tsa: None,
        extensions: None,
    };
    let token = cms::sign_timestamp_token(&info, &p.tsa_key, &p.tsa, std::slice::from_ref(&p.issuing), true).unwrap();
    let der = parsed.add_timestamp(0, &token).unwrap();
    prepared.finish(&der).unwrap()
}

pub fn python() -> PathBuf {
    std::env::var("MEDSIGN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dirs_home().join(".cache/medsign-test-tools/venv/bin/python3"))
}

pub fn dirs_home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}

pub fn run(prog: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} is needed (scripts/test installs it): {e}", prog.display()));
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}
