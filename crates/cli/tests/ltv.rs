//! End-to-end for long-term validation (issue #16) through the HTTP API of the real `medsign
//! serve` (time from chronyd on loopback): the hospital's default `[sign] pades_level = "B-LTA"`
//! and a per-flow `B-LT`, the PDFs judged by pyHanko's LTV validation (RSA, no fetching) and the
//! independent SM2 checker (tests/interop/ltv_check.py); a bad level is a 400 in both languages.

mod common;
use base64::Engine;
use common::*;
use std::path::Path;

fn ltv_check(d: &Dir, args: &[&str]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/ltv_check.py");
    let mut all = vec![script.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = d.run(&python(), &all);
    (o.status.success(), format!("{}{}", text(&o.stdout), text(&o.stderr)))
}

#[test]
fn pdf_flows_at_b_lt_and_b_lta_are_ltv_enabled() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "ntp", None, false);
    let s = Server::start(
        &d,
        &[
            ("MEDSIGN_TIME_SOURCES", &ntp.source()),
            ("MEDSIGN_TIME_POLL_SECONDS", "1"),
            ("MEDSIGN_SIGN_PADES_LEVEL", "B-LTA"),
        ],
    );
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let (_, v) =
        s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"HIS","scopes":["sign","verify","users:write"]}"#);
    let his = v["token"].as_str().unwrap().to_string();
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), r#"{"employee_no":"1001","name":"张三"}"#).0, 201);
    for alg in ["sm2", "rsa"] {
        let body = format!(r#"{{"reason":"处方托管签名","alg":"{alg}"}}"#);
        let (st, v) = s.json("POST", "/admin/v1/users/1001/custody", Some(&admin), &body);
        assert_eq!(st, 201, "{v}");
        let (_, _, chain) = s.raw("GET", &format!("/pki/{alg}/ca.pem"), None, None, b"");
        let chain = String::from_utf8(chain).unwrap();
        let end = "-----END CERTIFICATE-----";
        d.write(&format!("{alg}-root.pem"), &chain.as_bytes()[..chain.find(end).unwrap() + end.len()]);
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let pdf = medsign_pdf::blank_pdf(595, 842);
    let signed = |alg: &str, level: Option<&str>| {
        let mut f = serde_json::json!({"kind": "file", "title": "出院小结 No.2026-000123", "alg": alg, "content_base64": b64(&pdf),
            "signers": [{"employee_no": "1001", "placement": {"page": 1, "rect": [330, 60, 560, 130]}}, {"seal": "hospital"}]});
        if let Some(l) = level {
            f["pades_level"] = l.into();
        }
        let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &f.to_string());
        assert_eq!((st, f["state"].as_str()), (201, Some("completed")), "{f}");
        assert_eq!(f["pades_level"].as_str(), Some(level.unwrap_or("B-LTA")), "{f}");
        let (st, _, bytes) =
            s.raw("GET", &format!("/api/v1/sign-flows/{}/file", f["id"].as_str().unwrap()), Some(&his), None, b"");
        assert_eq!(st, 200);
        bytes
    };
    // the hospital's default, B-LTA, and a flow asking for B-LT
    d.write("lta.pdf", &signed("rsa", None));
    d.write("lt.pdf", &signed("rsa", Some("B-LT")));
    for (file, level) in [("lta.pdf", "lta"), ("lt.pdf", "lt")] {
        let (ok, out) = ltv_check(&d, &["pyhanko", &d.p(file), "--trust", &d.p("rsa-root.pem"), "--level", level]);
        println!("{out}");
        assert!(ok && out.contains(" 0 failed"), "pyHanko LTV {file}: {out}");
    }
    // the ordinary validation still trusts both signatures and the timestamps
    let (ok, out) = d.pyhanko_validate("rsa-root.pem", "lta.pdf");
    assert!(ok && out.matches(":INTACT:TRUSTED").count() >= 2, "{out}");
    // SM2: the independent checker
    d.write("sm2.pdf", &signed("sm2", None));
    let (ok, out) = ltv_check(&d, &["sm2", &d.p("sm2.pdf"), "--ca", &d.p("sm2-root.pem")]);
    println!("{out}");
    assert!(ok, "SM2 LTV checker: {out}");
    // a level that does not exist
    let bad = serde_json::json!({"kind": "file", "title": "t", "content_base64": b64(&pdf), "pades_level": "LTV",
        "signers": [{"seal": "hospital"}]});
    let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(&his), &bad.to_string());
    assert!(st == 400 && v["message"].as_str().unwrap().contains("B-T、B-LT 或 B-LTA"), "{v}");
    assert_envelope(&v, "invalid_request");
    assert_eq!(s.stop(), 0);
}
