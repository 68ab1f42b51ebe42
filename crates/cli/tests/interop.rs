//! Interop with independent tools (issue #2 § 5): OpenSSL 3 and the gmssl/asn1crypto checker
//! verify what the `medsign` CLI makes; our verifier accepts what OpenSSL makes; tampering is
//! rejected by both sides.

mod common;
use common::*;

/// `openssl cms -verify` of `sig` (DER) against root.pem, with detached `content` if given.
fn openssl_cms_verify(d: &Dir, sig: &str, content: Option<&str>, out: &str) -> std::process::Output {
    let mut args = vec!["cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-CAfile", "root.pem", "-out", out];
    if let Some(c) = content {
        args.extend(["-content", c]);
    }
    d.openssl(&args)
}

/// OpenSSL's CA (root.pem/root.key) signs leaf.csr into `out` as a signing end entity.
fn openssl_issue(d: &Dir, out: &str, alg_args: &[&str]) {
    d.write("ext.cnf", b"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n");
    let mut args = vec!["x509", "-req", "-in", "leaf.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial"];
    args.extend(["-days", "10", "-extfile", "ext.cnf", "-out", out]);
    args.extend_from_slice(alg_args);
    assert_ok(&d.openssl(&args), &format!("openssl x509 -req {out}"));
}

#[test]
fn openssl_reads_our_keys_and_we_use_openssls() {
    let d = Dir::new();
    for alg in ["sm2", "p256", "rsa2048"] {
        d.ok(&["keygen", "--alg", alg, "--out", "k.pem", "--pub-out", "k.pub"]);
        let o = d.openssl(&["pkey", "-in", "k.pem", "-noout", "-text"]);
        assert_ok(&o, &format!("openssl pkey reads our {alg} key"));
        if alg == "sm2" {
            assert!(text(&o.stdout).contains("SM2"), "{}", text(&o.stdout));
        }
        assert_ok(&d.openssl(&["pkey", "-pubin", "-in", "k.pub", "-noout"]), "openssl reads our public key");
    }
    // encrypted PKCS#8 both ways
    d.write("pass.txt", b"correct horse battery\n");
    let mut env_cmd = std::process::Command::new(env!("CARGO_BIN_EXE_medsign"));
    let o = env_cmd
        .args(["keygen", "--alg", "sm2", "--out", &d.p("enc.pem"), "--encrypt", "--passphrase-file", &d.p("pass.txt")])
        .output()
        .unwrap();
    assert_ok(&o, "keygen --encrypt");
    assert!(text(&d.read("enc.pem")).contains("ENCRYPTED PRIVATE KEY"));
    assert_ok(
        &d.openssl(&["pkey", "-in", "enc.pem", "-passin", "pass:correct horse battery", "-noout"]),
        "openssl decrypts our key",
    );
    assert_fails(
        &d.openssl(&["pkey", "-in", "enc.pem", "-passin", "pass:wrong", "-noout"]),
        "openssl with a wrong passphrase",
    );
    // OpenSSL's keys work in our CLI
    for (name, args) in [
        ("o-sm2.key", vec!["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", "o-sm2.key"]),
        (
            "o-p256.key",
            vec!["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "o-p256.key"],
        ),
        ("o-rsa.key", vec!["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "o-rsa.key"]),
    ] {
        assert_ok(&d.openssl(&args), "openssl genpkey");
        d.ok(&["cert", "new-ca", "--key", name, "--subject", "CN=从OpenSSL密钥,C=CN", "--out", "o-ca.pem"]);
    }
    assert_ok(&d.openssl(&["ec", "-in", "o-p256.key", "-out", "o-p256-sec1.key"]), "openssl ec (SEC1)");
    d.ok(&["cert", "new-ca", "--key", "o-p256-sec1.key", "--subject", "CN=SEC1,C=CN", "--out", "o-ca.pem"]);
    assert_ok(
        &d.openssl(&["rsa", "-in", "o-rsa.key", "-traditional", "-out", "o-rsa-pkcs1.key"]),
        "openssl rsa (PKCS#1)",
    );
    d.ok(&["cert", "new-ca", "--key", "o-rsa-pkcs1.key", "--subject", "CN=PKCS1,C=CN", "--out", "o-ca.pem"]);
}

#[test]
fn openssl_verifies_our_rsa_and_p256_chains_and_cms() {
    for alg in ["rsa2048", "p256"] {
        let d = Dir::new();
        d.make_pki(alg);
        assert_ok(
            &d.openssl(&["verify", "-x509_strict", "-CAfile", "root.pem", "-untrusted", "ca.pem", "leaf.pem"]),
            "openssl verify",
        );
        let o = d.openssl(&["x509", "-in", "leaf.pem", "-noout", "-text"]);
        let t = text(&o.stdout);
        assert!(
            t.contains("Digital Signature, Non Repudiation") && t.contains("CA:FALSE") && t.contains("OCSP - URI"),
            "{t}"
        );
        d.write("doc.txt", "门诊处方：阿莫西林 0.5g tid".as_bytes());
        d.ok(&[
            "sign", "--key", "leaf.key", "--cert", "leaf.pem", "--chain", "ca.pem", "--in", "doc.txt", "--out",
            "att.p7s",
        ]);
        d.ok(&[
            "sign",
            "--key",
            "leaf.key",
            "--cert",
            "leaf.pem",
            "--chain",
            "ca.pem",
            "--in",
            "doc.txt",
            "--out",
            "det.p7s",
            "--detached",
        ]);
        assert_ok(&openssl_cms_verify(&d, "att.p7s", None, "out.txt"), "openssl cms attached");
        assert_eq!(d.read("out.txt"), d.read("doc.txt"));
        assert_ok(&openssl_cms_verify(&d, "det.p7s", Some("doc.txt"), "/dev/null"), "openssl cms detached");
        if alg == "rsa2048" {
            d.ok(&[
                "sign", "--key", "leaf.key", "--cert", "leaf.pem", "--chain", "ca.pem", "--in", "doc.txt", "--out",
                "pss.p7s", "--pss",
            ]);
            assert_ok(&openssl_cms_verify(&d, "pss.p7s", None, "/dev/null"), "openssl cms RSA-PSS");
            d.ok(&["verify", "pss.p7s", "--trust", "root.pem", "--soft-revocation"]);
        }
        // tampering: both OpenSSL and we reject
        d.write("bad.txt", "门诊处方：阿莫西林 5g tid".as_bytes());
        assert_fails(&openssl_cms_verify(&d, "det.p7s", Some("bad.txt"), "/dev/null"), "openssl with changed content");
        let o = d.medsign(&["verify", "det.p7s", "--content", "bad.txt", "--trust", "root.pem"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
        assert!(text(&o.stdout).contains("TOTAL_FAILED"));
    }
}

#[test]
fn openssl_verifies_our_sm2_certificates_and_raw_signatures() {
    let d = Dir::new();
    d.make_pki("sm2");
    // OpenSSL 3.0 applies -vfyopt distid to the leaf only: verify each link as a leaf.
    let id = "distid:1234567812345678";
    assert_ok(&d.openssl(&["verify", "-vfyopt", id, "-CAfile", "root.pem", "ca.pem"]), "openssl verify SM2 issuing CA");
    assert_ok(
        &d.openssl(&["verify", "-vfyopt", id, "-partial_chain", "-CAfile", "ca.pem", "leaf.pem"]),
        "openssl verify SM2 leaf",
    );
    assert_fails(
        &d.openssl(&["verify", "-partial_chain", "-CAfile", "ca.pem", "leaf.pem"]),
        "openssl with the empty ID",
    );
    let o = d.openssl(&["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(text(&o.stdout).contains("SM2-with-SM3") || text(&o.stdout).contains("SM2"), "{}", text(&o.stdout));
    // the independent checker agrees
    assert_ok(&d.sm2_check(&["cert", "leaf.pem", "--ca", "ca.pem"]), "the independent SM2 checker on our leaf");
    assert_ok(&d.sm2_check(&["cert", "ca.pem", "--ca", "root.pem"]), "the independent SM2 checker on our CA");
    assert_fails(
        &d.sm2_check(&["cert", "leaf.pem", "--ca", "root.pem"]),
        "the independent SM2 checker with the wrong issuer",
    );
}

#[test]
fn independent_checker_verifies_our_sm2_cms_in_both_oid_styles() {
    let d = Dir::new();
    d.make_pki("sm2");
    d.write("doc.txt", "检验报告单：血常规 WBC 6.2".as_bytes());
    for style in ["rfc5652", "gmt0010"] {
        for detached in [false, true] {
            let out = format!("{style}-{detached}.p7s");
            let mut args = vec![
                "sign", "--key", "leaf.key", "--cert", "leaf.pem", "--chain", "ca.pem", "--in", "doc.txt", "--out",
                &out, "--oids", style,
            ];
            if detached {
                args.push("--detached");
            }
            d.ok(&args);
            let mut check = vec!["cms", out.as_str(), "--ca", "root.pem"];
            let mut ours = vec!["verify", out.as_str(), "--trust", "root.pem", "--soft-revocation"];
            if detached {
                check.extend(["--content", "doc.txt"]);
                ours.extend(["--content", "doc.txt"]);
            }
            let o = d.sm2_check(&check);
            assert_ok(&o, &format!("independent SM2 checker on {out}"));
            assert!(text(&o.stdout).contains("0 failed"));
            let v = d.ok(&ours);
            assert!(v.contains("TOTAL_PASSED"), "{v}");
            if detached {
                d.write("bad.txt", "检验报告单：血常规 WBC 9.2".as_bytes());
                assert_fails(
                    &d.sm2_check(&["cms", &out, "--ca", "root.pem", "--content", "bad.txt"]),
                    "checker on changed content",
                );
                assert_eq!(
                    d.medsign(&["verify", &out, "--trust", "root.pem", "--content", "bad.txt"]).status.code(),
                    Some(1)
                );
            }
        }
    }
    // a flipped signature byte (last byte of the last signer's signature value is near the end)
    let mut sig = d.read("rfc5652-false.p7s");
    let n = sig.len();
    sig[n - 2] ^= 0x01;
    d.write("flipped.p7s", &sig);
    assert_fails(&d.sm2_check(&["cms", "flipped.p7s", "--ca", "root.pem"]), "checker on a flipped signature");
    assert_ne!(d.medsign(&["verify", "flipped.p7s", "--trust", "root.pem"]).status.code(), Some(0));
}

#[test]
fn we_verify_certificates_and_cms_made_by_openssl() {
    for (alg, genargs) in [
        ("rsa", vec!["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        ("p256", vec!["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
    ] {
        let d = Dir::new();
        for who in ["root", "leaf"] {
            let mut a = genargs.clone();
            let out = format!("{who}.key");
            a.extend(["-out", &out]);
            assert_ok(&d.openssl(&a), "genpkey");
        }
        assert_ok(
            &d.openssl(&[
                "req",
                "-x509",
                "-new",
                "-key",
                "root.key",
                "-sha256",
                "-subj",
                "/C=CN/O=Test/CN=OpenSSL Root",
                "-days",
                "30",
                "-out",
                "root.pem",
            ]),
            "req -x509",
        );
        assert_ok(
            &d.openssl(&["req", "-new", "-key", "leaf.key", "-subj", "/C=CN/CN=OpenSSL Signer", "-out", "leaf.csr"]),
            "req",
        );
        openssl_issue(&d, "leaf.pem", &["-sha256"]);
        assert!(d.ok(&["verify", "leaf.pem", "--trust", "root.pem"]).contains("VALID"), "{alg} certificate");
        // the same certificate with one bit of its signature flipped is refused
        let mut der = d.openssl(&["x509", "-in", "leaf.pem", "-outform", "DER"]).stdout;
        let n = der.len();
        der[n - 3] ^= 0x01;
        d.write("tampered.der", &der);
        let o = d.medsign(&["verify", "tampered.der", "--trust", "root.pem"]);
        assert_eq!(o.status.code(), Some(1), "{alg}: {}", text(&o.stdout));
        assert!(text(&o.stdout).contains("签名无效"), "{}", text(&o.stdout));
        // our CLI issues from OpenSSL's CSR too
        d.ok(&[
            "cert",
            "issue",
            "--ca",
            "root.pem",
            "--ca-key",
            "root.key",
            "--csr",
            "leaf.csr",
            "--profile",
            "signer",
            "--days",
            "5",
            "--out",
            "ours.pem",
        ]);
        d.write("doc.txt", b"lab report 42");
        for (extra, out) in [(&[][..], "o-det.p7s"), (&["-nodetach"][..], "o-att.p7s")] {
            let mut a = vec!["cms", "-sign", "-binary", "-in", "doc.txt", "-signer", "leaf.pem", "-inkey", "leaf.key"];
            a.extend(["-md", "sha256", "-outform", "DER", "-out", out]);
            a.extend_from_slice(extra);
            assert_ok(&d.openssl(&a), "openssl cms -sign");
            let mut v = vec!["verify", out, "--trust", "root.pem", "--soft-revocation"];
            if extra.is_empty() {
                v.extend(["--content", "doc.txt"]);
            }
            let report = d.ok(&v);
            assert!(report.contains("TOTAL_PASSED"), "{alg} {out}: {report}");
        }
        // OpenSSL's detached signature over changed content: rejected (exit 1, HASH_FAILURE)
        d.write("doc2.txt", b"lab report 43");
        let o = d.medsign(&["verify", "o-det.p7s", "--trust", "root.pem", "--content", "doc2.txt"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
        assert!(text(&o.stdout).contains("HASH_FAILURE") || text(&o.stdout).contains("TOTAL_FAILED"));
        // attached content that differs from --content: an error, exit 2
        assert_eq!(
            d.medsign(&["verify", "o-att.p7s", "--trust", "root.pem", "--content", "doc2.txt"]).status.code(),
            Some(2)
        );
    }
}

#[test]
fn we_verify_openssl_sm2_certificates_with_standard_and_empty_id() {
    let d = Dir::new();
    assert_ok(
        &d.openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", "root.key"]),
        "genpkey sm2",
    );
    assert_ok(
        &d.openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", "leaf.key"]),
        "genpkey sm2",
    );
    assert_ok(
        &d.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-sm3",
            "-sigopt",
            "distid:1234567812345678",
            "-subj",
            "/C=CN/CN=OpenSSL SM2 Root",
            "-days",
            "30",
            "-out",
            "root.pem",
        ]),
        "SM2 root",
    );
    assert_ok(
        &d.openssl(&[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-sm3",
            "-subj",
            "/C=CN/CN=SM2 leaf",
            "-out",
            "leaf.csr",
            "-sigopt",
            "distid:1234567812345678",
        ]),
        "SM2 csr",
    );
    // standard ID
    openssl_issue(&d, "std.pem", &["-sm3", "-sigopt", "distid:1234567812345678", "-vfyopt", "distid:1234567812345678"]);
    assert!(d.ok(&["verify", "std.pem", "--trust", "root.pem"]).contains("VALID"));
    // empty ID (OpenSSL's default): refused by default, accepted when allowed
    openssl_issue(&d, "empty.pem", &["-sm3", "-vfyopt", "distid:1234567812345678"]);
    assert_eq!(d.medsign(&["verify", "empty.pem", "--trust", "root.pem"]).status.code(), Some(1));
    assert!(d.ok(&["verify", "empty.pem", "--trust", "root.pem", "--allow-sm2-empty-id"]).contains("VALID"));
    // our CLI issues from OpenSSL's SM2 CSR
    d.ok(&[
        "cert", "issue", "--ca", "root.pem", "--ca-key", "root.key", "--csr", "leaf.csr", "--days", "5", "--out",
        "ours.pem",
    ]);
    assert_ok(
        &d.openssl(&["verify", "-vfyopt", "distid:1234567812345678", "-CAfile", "root.pem", "ours.pem"]),
        "openssl verifies what we issued from its CSR",
    );
}
