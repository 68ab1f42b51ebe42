//! PDF signatures judged by independent tools (issue #6): a PAdES B-T signature (RSA, SHA-256,
//! ETSI.CAdES.detached, signingCertificateV2, signature timestamp) made with `prepare` + CMS +
//! `finish` validates in pyHanko (`INTACT:TRUSTED`, `TIMESTAMP_TOKEN<INTACT:TRUSTED>`) and in
//! poppler's `pdfsig` (NSS trust store); a second signature keeps the first valid; a changed byte
//! is caught; `pdftoppm` renders the page with the visible box.

use medsign_crypto::{KeyAlg, PrivateKey, signer::KeySigner};
use medsign_pdf::{Appearance, Placement, SignOptions, prepare};
use medsign_pki::cert::Profile;
use std::path::Path;

mod common;
use common::*;

#[test]
fn pades_bt_validates_in_pyhanko_and_pdfsig() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    let p = pki();
    let doctor_key = KeySigner::new(PrivateKey::generate(KeyAlg::Rsa2048).unwrap());
    let doctor =
        cert("CN=张三,OU=心内科,O=某县人民医院,C=CN", &doctor_key, Profile::Signer, Some((&p.issuing, &p.issuing_key)));
    let seal_key = KeySigner::new(PrivateKey::generate(KeyAlg::Rsa2048).unwrap());
    let seal =
        cert("CN=某县人民医院,O=某县人民医院,C=CN", &seal_key, Profile::Seal, Some((&p.issuing, &p.issuing_key)));
    std::fs::write(path("root.pem"), p.root.to_pem()).unwrap();
    let original = medsign_pdf::blank_pdf(595, 842);
    let opts = SignOptions {
        field_name: "Doctor".into(),
        placement: Some(Placement { page: 1, rect: [330.0, 60.0, 560.0, 130.0] }),
        appearance: Appearance {
            image: None,
            lines: vec!["张三 主治医师".into(), format!("证书 {}", doctor.serial_hex())],
        },
        name: Some("张三".into()),
        reason: Some("门诊处方".into()),
        ..Default::default()
    };
    let once = sign(&original, &p, &doctor_key, &doctor, &opts);
    std::fs::write(path("once.pdf"), &once).unwrap();
    let seal_opts = SignOptions {
        field_name: "Seal".into(),
        placement: Some(Placement { page: 1, rect: [40.0, 60.0, 200.0, 130.0] }),
        appearance: Appearance {
            image: Some(medsign_pdf::round_seal_png("某县人民医院", None, 200).unwrap()),
            lines: vec!["某县人民医院（电子签章）".into()],
        },
        ..Default::default()
    };
    let twice = sign(&once, &p, &seal_key, &seal, &seal_opts);
    std::fs::write(path("twice.pdf"), &twice).unwrap();

    let pyhanko = python().with_file_name("pyhanko");
    let validate = |pdf: &str| {
        let (root, file) = (path("root.pem"), path(pdf));
        let args = ["sign", "validate", "--trust", root.to_str().unwrap(), "--trust-replace", file.to_str().unwrap()];
        run(&pyhanko, &args)
    };
    let (ok, out) = validate("once.pdf");
    assert!(
        ok && out.contains("INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,UNTOUCHED"),
        "pyHanko on one signature: {out}"
    );
    let (ok, out) = validate("twice.pdf");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(":INTACT")).collect();
    assert!(ok && lines.len() == 2, "pyHanko on two signatures: {out}");
    assert!(lines.iter().all(|l| l.contains("INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>")), "{out}");
    assert!(
        lines.iter().any(|l| l.starts_with("Doctor:") && !l.ends_with("UNTOUCHED")),
        "the first signature sees a later update: {out}"
    );

    // certification (DocMDP P=2) by the doctor, then the seal as an invisible approval signature:
    // acceptable; a new *visible* field after certifying is what pyHanko calls illegal (visible
    // signatures after certification need fields placed beforehand — the template issue)
    let certified = sign(&original, &p, &doctor_key, &doctor, &SignOptions { certify: Some(2), ..opts.clone() });
    let approved = sign(&certified, &p, &seal_key, &seal, &SignOptions { placement: None, ..seal_opts.clone() });
    std::fs::write(path("certified.pdf"), &approved).unwrap();
    let (ok, out) = validate("certified.pdf");
    assert!(
        ok && !out.contains("ILLEGAL") && out.matches("INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>").count() == 2,
        "{out}"
    );
    let visible_after = sign(&certified, &p, &seal_key, &seal, &seal_opts);
    std::fs::write(path("visible-after.pdf"), &visible_after).unwrap();
    let (_, out) = validate("visible-after.pdf");
    assert!(out.contains("ILLEGAL_MODIFICATIONS"), "{out}");
    // P=1: no further signature at all
    let locked = sign(&original, &p, &doctor_key, &doctor, &SignOptions { certify: Some(1), ..opts.clone() });
    assert!(prepare(&locked, &SignOptions { field_name: "Late".into(), ..Default::default() }).is_err());

    // pdfsig (poppler) with a throw-away NSS database that trusts the root
    let nss = path("nss");
    std::fs::create_dir(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    assert!(run(Path::new("certutil"), &["-N", "-d", &db, "--empty-password"]).0);
    assert!(
        run(
            Path::new("certutil"),
            &["-A", "-d", &db, "-n", "root", "-t", "CT,C,C", "-a", "-i", path("root.pem").to_str().unwrap()]
        )
        .0
    );
    let (_, out) = run(Path::new("pdfsig"), &["-nssdir", &db, path("twice.pdf").to_str().unwrap()]);
    assert_eq!(out.matches("Signature is Valid.").count(), 2, "{out}");
    assert_eq!(out.matches("Certificate is Trusted.").count(), 2, "{out}");

    // a changed byte inside the first signature's range is caught by both
    let mut bad = once.clone();
    let i = original.len() - 20;
    bad[i] ^= 0x01;
    std::fs::write(path("bad.pdf"), &bad).unwrap();
    let (_, out) = run(Path::new("pdfsig"), &["-nssdir", &db, path("bad.pdf").to_str().unwrap()]);
    assert!(!out.contains("Signature is Valid."), "{out}");

    // the page renders: the seal's red in the seal box, the doctor's text in theirs, the middle blank
    let (ok, out) = run(
        Path::new("pdftoppm"),
        &["-r", "72", "-f", "1", "-l", "1", path("twice.pdf").to_str().unwrap(), path("page").to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let ppm_path = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "ppm"))
        .unwrap();
    let ppm = std::fs::read(ppm_path).unwrap();
    let (w, h, px) = parse_ppm(&ppm);
    let red = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        px[i] > 150 && px[i + 1] < 90 && px[i + 2] < 90
    };
    let dark = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        px[i] < 100 && px[i + 1] < 100 && px[i + 2] < 140
    };
    // PDF y grows upwards; the boxes are [40 60 200 130] and [330 60 560 130] at 72 dpi
    let (top, bottom) = (h - 130, h - 60);
    let reds = (40..200).flat_map(|x| (top..bottom).map(move |y| (x, y))).filter(|&(x, y)| red(x, y)).count();
    assert!(reds > 300, "the seal box is blank ({reds} red pixels)");
    let ink = (330..560).flat_map(|x| (top..bottom).map(move |y| (x, y))).filter(|&(x, y)| dark(x, y)).count();
    assert!(ink > 100, "the doctor's box is blank ({ink} dark pixels)");
    let centre = (200..400).flat_map(|x| (300..500).map(move |y| (x, y))).filter(|&(x, y)| red(x, y)).count();
    assert_eq!(centre, 0);
}

/// A binary PPM (P6, maxval 255): width, height, RGB bytes.
fn parse_ppm(b: &[u8]) -> (usize, usize, &[u8]) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !b[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&b[start..i]).into_owned());
    }
    assert_eq!(fields[0], "P6");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, &b[i + 1..])
}
