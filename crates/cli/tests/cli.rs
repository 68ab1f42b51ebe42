//! The CLI's behaviour on bad input: a one-line error naming the file and the problem, exit 2
//! (issue #2 § 4); verification failures exit 1; JSON output is machine-readable.

mod common;
use common::*;

fn err_line(o: &std::process::Output) -> String {
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stdout: {} stderr: {e}", text(&o.stdout));
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[test]
fn bad_arguments_and_files_exit_2_with_the_file_named() {
    let d = Dir::new();
    d.make_pki("sm2");
    d.write("junk.pem", b"this is not a key");
    d.write("junk.p7s", b"\x30\x03\x02\x01\x01");
    let sign = "sign --key leaf.key --cert leaf.pem --in leaf.pem --out s.p7s";
    let issue = "cert issue --ca ca.pem --ca-key ca.key --key-pub leaf.key --out x.pem";
    // (command line, words the one-line error must contain)
    let cases: Vec<(String, &[&str])> = vec![
        ("keygen --alg dsa --out x.pem".into(), &["--alg"]),
        (sign.replace("leaf.key", "missing.key"), &["missing.key", "无法读取"]),
        (sign.replace("leaf.key", "junk.pem"), &["junk.pem", "不是可用的私钥"]),
        (sign.replace("--cert leaf.pem", "--cert leaf.key"), &["leaf.key", "不是证书"]),
        (sign.replace("leaf.key", "ca.key"), &["不匹配"]),
        (format!("{sign} --oids x"), &["--oids"]),
        (issue.replace("--ca ca.pem", "--ca leaf.pem") + " --subject CN=x", &["不匹配"]),
        (format!("{issue} --subject CN"), &["--subject"]),
        (format!("{issue} --subject CN=x --profile boss"), &["--profile"]),
        (issue.replace("--key-pub leaf.key ", "") + " --subject CN=x", &["--csr"]),
        ("cert new-ca --key root.key --subject CN=x --days 0 --out x.pem".into(), &["--days"]),
        ("verify junk.p7s --trust root.pem".into(), &["junk.p7s"]),
        ("verify root.pem --trust root.pem --at tomorrow".into(), &["--at"]),
    ];
    for (cmd, words) in cases {
        let args: Vec<&str> = cmd.split(' ').collect();
        let e = err_line(&d.medsign(&args));
        assert_eq!(e.trim().lines().count(), 1, "{cmd}: not one line: {e}");
        for w in words {
            assert!(e.contains(w), "{cmd}: error lacks '{w}': {e}");
        }
    }
    // clap's own usage errors are exit 2 as well
    assert_eq!(d.medsign(&["verify", "x.p7s"]).status.code(), Some(2));
    assert_eq!(d.medsign(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn private_keys_are_written_0600() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    d.ok(&["keygen", "--alg", "sm2", "--out", "k.pem"]);
    assert_eq!(std::fs::metadata(d.path("k.pem")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn verify_reports_json_and_time_and_chain_problems() {
    let d = Dir::new();
    d.make_pki("sm2");
    d.write("doc.txt", b"x");
    d.ok(&[
        "sign", "--key", "leaf.key", "--cert", "leaf.pem", "--chain", "ca.pem", "--in", "doc.txt", "--out", "s.p7s",
    ]);
    // offline with no CRL: the revocation was not checked, so not valid (ETSI: TRY_LATER) ...
    let o = d.medsign(&["verify", "s.p7s", "--trust", "root.pem", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (j["indication"].as_str(), j["signers"][0]["sub_indication"].as_str()),
        (Some("INDETERMINATE"), Some("TRY_LATER"))
    );
    assert_eq!(j["signers"][0]["revocation"]["ok"], false, "{j}");
    // ... unless the caller accepts that (and the report still says it was not checked)
    let j: serde_json::Value =
        serde_json::from_str(&d.ok(&["verify", "s.p7s", "--trust", "root.pem", "--soft-revocation", "--json"]))
            .unwrap();
    assert_eq!(j["indication"], "TOTAL_PASSED");
    assert!(j["signers"][0]["revocation"]["detail"].as_str().unwrap().contains("not checked"), "{j}");
    assert_eq!(j["signers"][0]["subject"], "CN=张三,OU=心内科,O=某县人民医院,C=CN");
    assert_eq!(j["signers"][0]["sm2_id"], "1234567812345678");
    // validated in two years: the leaf has expired
    let o = d.medsign(&["verify", "s.p7s", "--trust", "root.pem", "--at", "2099-01-01", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["indication"], "INDETERMINATE");
    assert!(j["signers"][0]["chain"]["detail"].as_str().unwrap().contains("过期"), "{j}");
    // an unrelated trust anchor
    d.ok(&["keygen", "--alg", "sm2", "--out", "other.key"]);
    d.ok(&["cert", "new-ca", "--key", "other.key", "--subject", "CN=Other,C=CN", "--out", "other.pem"]);
    let o = d.medsign(&["verify", "s.p7s", "--trust", "other.pem"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("INDETERMINATE"));
    // certificates: the chain from a bundle file, and a readable failure
    let mut bundle = d.read("leaf.pem");
    bundle.extend(d.read("ca.pem"));
    d.write("bundle.pem", &bundle);
    let out = d.ok(&["verify", "bundle.pem", "--trust", "root.pem"]);
    assert!(out.contains("→ CN=某县人民医院签发CA") && out.contains("→ CN=某县人民医院根CA"), "chain printed: {out}");
    let o = d.medsign(&["verify", "leaf.pem", "--trust", "root.pem"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("找不到签发者"), "{}", text(&o.stdout));
}
