//! Verification speed beside pyHanko (bench/pdf-verify.sh runs it): a 3-signature prescription
//! and a 100-page report (RSA, PAdES B-T), verified in this process by `medsign_pdf::verify` and
//! by pyHanko's `validate_pdf_signature` in a Python process (its start not counted), in
//! interleaved rounds; prints files/s per round, the medians and their ratio.
//! Usage: verify_bench [ROUNDS=5] [SECONDS_PER_ROUND=3]

#[path = "../tests/common/mod.rs"]
mod common;
use common::*;

use chrono::{Duration, Utc};
use medsign_crypto::{KeyAlg, PrivateKey, signer::KeySigner};
use medsign_pdf::{Appearance, Placement, SignOptions};
use medsign_pki::{cert::Profile, cms::VerifyOptions, crl::Crl};
use std::time::Instant;

fn hundred_pages() -> Vec<u8> {
    let n = 100;
    let mut objs: Vec<String> = vec!["<< /Type /Catalog /Pages 2 0 R >>".into()];
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objs.push(format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")));
    objs.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into());
    for i in 0..n {
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        let text: String = (0..40)
            .map(|l| {
                format!("BT /F1 10 Tf 50 {} Td (Lab result line {l} of page {i}: WBC 6.{l}) Tj ET\n", 800 - 18 * l)
            })
            .collect();
        objs.push(format!("<< /Length {} >>\nstream\n{text}endstream", text.len()));
    }
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offs = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offs.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let x = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offs {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{x}\n%%EOF\n", objs.len() + 1).as_bytes(),
    );
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let p = pki();
    let key = || KeySigner::new(PrivateKey::generate(KeyAlg::Rsa2048).unwrap());
    let people: Vec<(KeySigner, _)> =
        ["CN=张三,O=某县人民医院,C=CN", "CN=李四,O=某县人民医院,C=CN", "CN=某县人民医院,O=某县人民医院,C=CN"]
            .iter()
            .map(|s| {
                let k = key();
                let c = cert(s, &k, Profile::Signer, Some((&p.issuing, &p.issuing_key)));
                (k, c)
            })
            .collect();
    let mut rx = medsign_pdf::blank_pdf(595, 842);
    for (i, (k, c)) in people.iter().enumerate() {
        let opts = SignOptions {
            field_name: format!("signer{i}"),
            placement: Some(Placement {
                page: 1,
                rect: [40.0 + 180.0 * i as f64, 60.0, 200.0 + 180.0 * i as f64, 130.0],
            }),
            appearance: Appearance { image: None, lines: vec![format!("签名 {i}")] },
            ..Default::default()
        };
        rx = sign(&rx, &p, k, c, &opts);
    }
    let report = sign(
        &hundred_pages(),
        &p,
        &people[2].0,
        &people[2].1,
        &SignOptions { field_name: "seal".into(), ..Default::default() },
    );
    let now = Utc::now();
    let crl = medsign_pki::crl::build(&p.issuing, &p.issuing_key, now, now + Duration::days(1), 1, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    std::fs::write(path("rx.pdf"), &rx).unwrap();
    std::fs::write(path("report.pdf"), &report).unwrap();
    std::fs::write(path("root.pem"), p.root.to_pem()).unwrap();
    std::fs::write(path("chain.pem"), format!("{}{}", p.issuing.to_pem(), p.root.to_pem())).unwrap();
    std::fs::write(path("issuing.crl"), &crl).unwrap();
    let opts =
        VerifyOptions { trust: vec![p.root.clone()], crls: vec![Crl::from_bytes(&crl).unwrap()], ..Default::default() };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/pyhanko-validate.py");
    println!("rx.pdf: 3 signatures, {} bytes; report.pdf: 100 pages, 1 signature, {} bytes", rx.len(), report.len());
    for (name, bytes) in [("rx.pdf", &rx), ("report.pdf", &report)] {
        let r = medsign_pdf::verify::verify(bytes, &opts).unwrap();
        assert_eq!(r.indication, medsign_pki::cms::Indication::TotalPassed, "{name}");
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let t = Instant::now();
            let mut n = 0u32;
            while t.elapsed().as_secs_f64() < secs {
                std::hint::black_box(medsign_pdf::verify::verify(bytes, &opts).unwrap());
                n += 1;
            }
            let ours_fps = n as f64 / t.elapsed().as_secs_f64();
            let (ok, out) = run(
                &python(),
                &[script, &path(name), &path("root.pem"), &path("chain.pem"), &path("issuing.crl"), &secs.to_string()],
            );
            assert!(ok, "pyHanko: {out}");
            let theirs_fps: f64 = out.lines().last().unwrap().trim().parse().unwrap_or_else(|_| panic!("{out}"));
            println!("{name} round {}: medsign {ours_fps:.1} files/s, pyHanko {theirs_fps:.2} files/s", round + 1);
            ours.push(ours_fps);
            theirs.push(theirs_fps);
        }
        let (a, b) = (median(ours), median(theirs));
        println!("{name}: median medsign {a:.1} files/s, pyHanko {b:.2} files/s, ratio {:.1}×", a / b);
    }
}
