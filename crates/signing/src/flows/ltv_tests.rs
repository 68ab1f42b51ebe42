//! PDF flows at B-LT and B-LTA judged by pyHanko's LTV validation (RSA) and by the independent
//! SM2 checker (tests/interop/ltv_check.py), and the archive-timestamp job.

use super::*;
use crate::seams::NoGrants;
use medsign_testkit::{
    db::temp_db,
    hospital::{ORG, World, add_staff, issuer, sign_app, staff, world},
};
use std::path::{Path, PathBuf};

fn python() -> PathBuf {
    std::env::var("MEDSIGN_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .join(".cache/medsign-test-tools/venv/bin/python3")
    })
}

/// `tests/interop/ltv_check.py ARGS`: (success, output).
fn ltv_check(args: &[&str]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/ltv_check.py");
    let o = std::process::Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} is needed (scripts/test installs it): {e}", python().display()));
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

async fn hospital(db: &Db) -> (World, String) {
    let w = world(db).await;
    let (app, _) = sign_app(db, &w.kek, "HIS").await;
    add_staff(db, &w.kek, &[staff("1001", "医生1001")]).await;
    for alg in ["sm2", "rsa"] {
        authorize_custody(db, &w.kek, issuer(&w.cas), &w.ctx, "1001", "院长办公会决议 2026-11", alg).await.unwrap();
    }
    (w, app.app_id)
}

fn signing<'a>(db: &'a Db, w: &'a World, tsa: &'a Tsa, level: PadesLevel) -> Signing<'a> {
    Signing { db, kek: &w.kek, cas: &w.cas, organization: ORG, tsa, grants: &NoGrants, pades_level: level }
}

fn pdf_flow(alg: &str, level: Option<&str>) -> NewFlow {
    let pdf = medsign_pdf::blank_pdf(595, 842);
    let mut v = serde_json::json!({"kind": "file", "title": "出院小结 No.9", "alg": alg, "content_base64": B64.encode(pdf),
        "signers": [{"employee_no": "1001", "placement": {"page": 1, "rect": [330, 60, 560, 130]}}, {"seal": "hospital"}]});
    if let Some(l) = level {
        v["pades_level"] = l.into();
    }
    serde_json::from_value(v).unwrap()
}

async fn signed(sg: &Signing<'_>, ctx: &Context, app: &str, nf: &NewFlow) -> (FlowView, Vec<u8>) {
    let f = create(sg, ctx, app, nf, 1 << 20).await.unwrap();
    assert_eq!(f.state, FlowState::Completed, "{f:?}");
    let pdf = signature_bytes(sg.db, Some(app), &f.id).await.unwrap();
    (f, pdf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_lt_and_b_lta_flows_are_ltv_enabled_for_pyhanko_and_the_sm2_checker() {
    let (_d, db) = temp_db().await;
    let (w, app) = hospital(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let root = |h: &medsign_ca::ca::Hierarchy, name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, h.root.to_pem()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (rsa_root, sm2_root) = (root(&w.cas.rsa, "rsa-root.pem"), root(&w.cas.sm2, "sm2-root.pem"));

    // the hospital's default is B-T: nothing is added
    let sg = signing(&db, &w, &w.tsa, PadesLevel::BT);
    let (f, bt) = signed(&sg, &w.ctx, &app, &pdf_flow("rsa", None)).await;
    assert_eq!(f.pades_level, Some(PadesLevel::BT));
    assert!(!medsign_pdf::ltv::has_dss(&bt).unwrap());
    // the judge can fail: a B-T file carries no revocation information, so it is not LTV-enabled
    let file = dir.path().join("B-T.pdf");
    std::fs::write(&file, &bt).unwrap();
    let (ok, out) = ltv_check(&["pyhanko", file.to_str().unwrap(), "--trust", &rsa_root, "--level", "lt"]);
    assert!(!ok && out.contains("FAIL"), "pyHanko called a B-T file LTV-enabled: {out}");

    for (level, arg) in [("B-LT", "lt"), ("B-LTA", "lta")] {
        let (f, pdf) = signed(&sg, &w.ctx, &app, &pdf_flow("rsa", Some(level))).await;
        assert_eq!(f.pades_level.map(|l| l.as_str()), Some(level));
        assert!(medsign_pdf::ltv::has_dss(&pdf).unwrap());
        let ts = medsign_pdf::ltv::newest_document_timestamp(&pdf).unwrap();
        assert_eq!(ts.is_some(), level == "B-LTA");
        let file = dir.path().join(format!("{level}.pdf"));
        std::fs::write(&file, &pdf).unwrap();
        let (ok, out) = ltv_check(&["pyhanko", file.to_str().unwrap(), "--trust", &rsa_root, "--level", arg]);
        println!("{out}");
        assert!(ok, "pyHanko LTV {level}: {out}");
    }
    // the hospital's default applies to flows that do not name a level; SM2 is judged by the
    // independent checker
    let sg = signing(&db, &w, &w.tsa, PadesLevel::BLta);
    let (f, pdf) = signed(&sg, &w.ctx, &app, &pdf_flow("sm2", None)).await;
    assert_eq!(f.pades_level, Some(PadesLevel::BLta));
    let file = dir.path().join("sm2.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let (ok, out) = ltv_check(&["sm2", file.to_str().unwrap(), "--ca", &sm2_root]);
    println!("{out}");
    assert!(ok && out.contains("document timestamp"), "SM2 checker: {out}");
    // ... and can fail: one bit of the issuing CA's CRL in the DSS changed (its SM2 signature no
    // longer verifies, and the document timestamp's imprint no longer matches)
    let crl = medsign_ca::certs::crl(&db, &w.cas.sm2, 6).await.unwrap();
    let at = pdf.windows(crl.len()).position(|x| x == crl.as_slice()).expect("the CRL is in the DSS");
    let mut bad = pdf.clone();
    bad[at + crl.len() - 3] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    let (ok, out) = ltv_check(&["sm2", file.to_str().unwrap(), "--ca", &sm2_root]);
    assert!(!ok && out.contains("FAIL: CRL") && out.contains("FAIL: messageImprint"), "SM2 checker: {out}");

    // bad input: a 400 in both languages, nothing written
    for (nf, want) in [
        (pdf_flow("rsa", Some("LTV")), "B-T、B-LT 或 B-LTA"),
        (
            serde_json::from_value(
                serde_json::json!({"kind": "data", "title": "t", "content": "x", "pades_level": "B-LT",
                "signers": [{"seal": "hospital"}]}),
            )
            .unwrap(),
            "只用于 PDF",
        ),
    ] {
        let e = create(&sg, &w.ctx, &app, &nf, 1 << 20).await.unwrap_err();
        assert!(matches!(&e, Error::Invalid(m) if m.contains("pades_level") && m.contains(want)), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_job_restamps_each_document_once_when_the_tsa_has_a_later_certificate() {
    let (_d, db) = temp_db().await;
    let (w, app) = hospital(&db).await;
    let sg = signing(&db, &w, &w.tsa, PadesLevel::BT);
    let (f, pdf) = signed(&sg, &w.ctx, &app, &pdf_flow("rsa", Some("B-LTA"))).await;
    let (_, lt) = signed(&sg, &w.ctx, &app, &pdf_flow("rsa", Some("B-LT"))).await;
    let due = archive_due(&pdf).unwrap().unwrap();
    let tsa_cert = w.tsa.profile(Some("rsa")).unwrap().cert.clone();
    assert_eq!(due, tsa_cert.not_after());
    // not due yet: the job only remembers when it will be
    assert_eq!(archive_timestamps(&sg, 180, Utc::now()).await.unwrap(), 0);
    let stored: Option<String> = sqlx::query_scalar("SELECT archive_due_at FROM sign_flows WHERE id = $1")
        .bind(&f.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, Some(medsign_store::secs_text(due)));
    // 200 days later (a fake clock): due, but the TSA certificate is still the one that ends
    let later = Utc::now() + Duration::days(200);
    assert_eq!(archive_timestamps(&sg, 180, later).await.unwrap(), 0);
    assert_eq!(signature_bytes(&db, None, &f.id).await.unwrap(), pdf);

    // the TSA gets a new certificate (as `medsign serve` does when 30 days remain); X.509 times
    // are whole seconds, so the renewed one must be made at least a second later to end later
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    sqlx::query("DELETE FROM ca_certs WHERE name = 'tsa-rsa'").execute(&db.pool).await.unwrap();
    let renewed = Tsa::start(&db, &w.kek, &w.cas, ORG, &Default::default(), w.tsa.clock.clone()).await.unwrap();
    let new_cert = renewed.profile(Some("rsa")).unwrap().cert.clone();
    assert!(new_cert.not_after() > tsa_cert.not_after());
    // two instances at once: the document is re-stamped once
    let sg2 = signing(&db, &w, &renewed, PadesLevel::BT);
    let (a, b) = tokio::join!(archive_timestamps(&sg2, 180, later), archive_timestamps(&sg2, 180, later));
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let archived = signature_bytes(&db, None, &f.id).await.unwrap();
    assert!(archived.starts_with(&pdf), "an incremental update: the earlier revisions are kept");
    let stamps: Vec<_> =
        medsign_pdf::signatures(&archived).unwrap().into_iter().filter(|s| s.sub_filter == "ETSI.RFC3161").collect();
    assert_eq!(stamps.len(), 2);
    assert!(stamps[1].whole_file);
    assert_eq!(archive_due(&archived).unwrap(), Some(new_cert.not_after()));
    // the new timestamp is by the new certificate; its DSS has the old timestamp's chain
    let (ok, out) = {
        let dir = tempfile::tempdir().unwrap();
        let (file, root) = (dir.path().join("a.pdf"), dir.path().join("root.pem"));
        std::fs::write(&file, &archived).unwrap();
        std::fs::write(&root, w.cas.rsa.root.to_pem()).unwrap();
        ltv_check(&["pyhanko", file.to_str().unwrap(), "--trust", root.to_str().unwrap(), "--level", "lta"])
    };
    println!("{out}");
    assert!(ok, "pyHanko after the archive timestamp: {out}");
    // nothing more to do: the newest timestamp's certificate is the TSA's current one
    assert_eq!(archive_timestamps(&sg2, 180, later).await.unwrap(), 0);
    // B-LT documents are not re-stamped; the audit log has one entry
    assert!(medsign_pdf::ltv::newest_document_timestamp(&lt).unwrap().is_none());
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'flow.archive_timestamp'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
