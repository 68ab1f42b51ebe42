//! Raw SM2 signatures against OpenSSL 3 (`openssl pkeyutl -rawin -digest sm3 -pkeyopt distid:…`)
//! and the independent gmssl checker, both directions, including two-party signatures
//! (issue #2: "… and, in the interop suite, with OpenSSL").

use medsign_crypto::{
    KeyAlg, PrivateKey, SignatureScheme,
    sm2::{DEFAULT_ID, Sm2Signature},
    twoparty::{ClientKeyGen, SeenQ1Memory, ServerKeyGen},
};
use std::process::Command;

fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
    let o = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed (scripts/test)");
    o.status.success()
}

fn pkeyutl_verify(dir: &std::path::Path, pubf: &str, msg: &str, sig: &str, id: &str) -> bool {
    let opt = format!("distid:{id}");
    openssl(
        dir,
        &[
            "pkeyutl", "-verify", "-pubin", "-inkey", pubf, "-rawin", "-digest", "sm3", "-in", msg, "-sigfile", sig,
            "-pkeyopt", &opt,
        ],
    )
}

#[test]
fn openssl_verifies_our_raw_sm2_signatures_and_we_verify_openssls() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
    std::fs::write(p.join("pub.pem"), key.public_key().to_pem()).unwrap();
    std::fs::write(p.join("key.pem"), key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(p.join("msg"), "电子病历 #1".as_bytes()).unwrap();
    let sig = key.sign(SignatureScheme::Sm2Sm3, "电子病历 #1".as_bytes(), None).unwrap();
    std::fs::write(p.join("sig"), &sig).unwrap();
    assert!(pkeyutl_verify(p, "pub.pem", "msg", "sig", "1234567812345678"), "OpenSSL rejects our SM2 signature");
    assert!(!pkeyutl_verify(p, "pub.pem", "msg", "sig", "other-id"), "OpenSSL accepted a wrong ID");
    std::fs::write(p.join("msg2"), "电子病历 #2".as_bytes()).unwrap();
    assert!(!pkeyutl_verify(p, "pub.pem", "msg2", "sig", "1234567812345678"), "OpenSSL accepted a changed message");

    // OpenSSL signs with our key file; we verify, and reject a flipped byte
    assert!(openssl(
        p,
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            "key.pem",
            "-rawin",
            "-digest",
            "sm3",
            "-in",
            "msg",
            "-out",
            "osig",
            "-pkeyopt",
            "distid:1234567812345678"
        ]
    ));
    let osig = std::fs::read(p.join("osig")).unwrap();
    key.public_key().verify(SignatureScheme::Sm2Sm3, "电子病历 #1".as_bytes(), &osig, None).unwrap();
    let mut bad = osig.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(key.public_key().verify(SignatureScheme::Sm2Sm3, "电子病历 #1".as_bytes(), &bad, None).is_err());
    // OpenSSL's empty default ID: verifies only with the empty ID
    assert!(openssl(
        p,
        &["pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-digest", "sm3", "-in", "msg", "-out", "esig"]
    ));
    let esig = std::fs::read(p.join("esig")).unwrap();
    assert!(key.public_key().verify(SignatureScheme::Sm2Sm3, "电子病历 #1".as_bytes(), &esig, None).is_err());
    key.public_key().verify(SignatureScheme::Sm2Sm3, "电子病历 #1".as_bytes(), &esig, Some(b"")).unwrap();
}

#[test]
fn openssl_verifies_two_party_signatures() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let (c, req) = ClientKeyGen::start(b"user=1").unwrap();
    let (server, resp) = ServerKeyGen::respond(&req, b"user=1").unwrap();
    let client = c.finish(&resp).unwrap();
    let public = medsign_crypto::PublicKey::Sm2(*client.public_key());
    std::fs::write(p.join("pub.pem"), public.to_pem()).unwrap();
    let mut seen = SeenQ1Memory::default();
    for i in 0..20 {
        let msg = format!("协同签名 {i}");
        let (sess, sreq) = client.begin_sign_message(DEFAULT_ID, msg.as_bytes()).unwrap();
        let e = client.public_key().e(DEFAULT_ID, msg.as_bytes()).unwrap();
        let sig: Sm2Signature = sess.finish(&server.sign(&sreq, &e, &mut seen).unwrap()).unwrap();
        std::fs::write(p.join("msg"), msg.as_bytes()).unwrap();
        std::fs::write(p.join("sig"), sig.to_der()).unwrap();
        assert!(
            pkeyutl_verify(p, "pub.pem", "msg", "sig", "1234567812345678"),
            "OpenSSL rejects two-party signature {i}"
        );
    }
}
