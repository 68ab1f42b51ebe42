use super::*;
use crate::seams::NoGrants;
use medsign_directory::apps::App;
use medsign_testkit::{
    db::backends,
    hospital::{ORG, World, add_staff, issuer, sign_app, staff, world},
};
use medsign_tsa::clock::Clock;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A local HTTP receiver for webhooks (tests only): records (headers, body); answers 500 to
/// the first `fail_first` requests.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail_first {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                seen.lock().unwrap().push((h, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// The content of the data flows here.
const RX: &str = "Rp: 阿莫西林 0.5g tid";

/// A data flow over [`RX`] for `signers`, with the fields of `extra` over it.
fn flow(signers: Value, extra: Value) -> NewFlow {
    let mut v = json!({"kind": "data", "title": "门诊处方 No.1", "content": RX, "signers": signers});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

/// A [`World`] with the app HIS (sign scope, returned with its token) and the doctors 1001 and
/// 1002; the server holds an SM2 key for 1001 (custody authorized), none for 1002.
async fn hospital(db: &Db) -> (World, App, String) {
    let w = world(db).await;
    let (app, token) = sign_app(db, &w.kek, "HIS").await;
    add_staff(db, &w.kek, &[staff("1001", "医生1001"), staff("1002", "医生1002")]).await;
    authorize_custody(db, &w.kek, issuer(&w.cas), &w.ctx, "1001", "院长办公会决议 2026-11", "sm2").await.unwrap();
    (w, app, token.to_string())
}

/// How `w` signs (no phone grants); the other modules' tests use it too.
pub(crate) fn signing<'a>(db: &'a Db, w: &'a World) -> Signing<'a> {
    Signing {
        db,
        kek: &w.kek,
        cas: &w.cas,
        organization: ORG,
        tsa: &w.tsa,
        grants: &NoGrants,
        pades_level: Default::default(),
    }
}

/// A TSA of `w`'s CAs whose clock never synchronised: it issues nothing.
async fn cold_tsa(db: &Db, w: &World) -> Arc<Tsa> {
    Tsa::start(db, &w.kek, &w.cas, "x", &Default::default(), Arc::new(Clock::new(&Default::default()))).await.unwrap()
}

/// The smoke scenario: a doctor (key in server custody) and the hospital seal sign a data flow in
/// one CMS, each signature with its own timestamp; it verifies over its content, not over another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_and_the_seal_sign_a_data_flow_that_verifies() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        let nf = flow(json!([{"employee_no": "1001"}, {"seal": "hospital"}]), json!({}));
        let f = create(&signing(&db, &w), &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert_eq!(f.state, FlowState::Completed);
        assert!(f.doc_no.starts_with("QM-"), "{}", f.doc_no);
        assert!(
            f.signers.iter().all(|s| s.state == SignerState::Signed && s.timestamp_at.is_some()),
            "{:?}",
            f.signers
        );
        let sig = signature_bytes(&db, Some(&app.app_id), &f.id).await.unwrap();
        let rep = verify_data(&db, &w.cas, &sig, Some(RX.as_bytes())).await.unwrap();
        assert!(rep.is_valid(), "{rep:?}");
        assert_eq!(rep.signers.len(), 2);
        assert!(rep.signers.iter().all(|s| s.timestamp.as_ref().is_some_and(|t| t.ok())), "{rep:?}");
        times_are_each_signers_own(&f, &rep);
        let tampered = verify_data(&db, &w.cas, &sig, Some(b"Rp: something else")).await.unwrap();
        assert!(!tampered.is_valid());
        // written once, signed: the creation and each signer's use of its key, in order, with custody
        let audit: Vec<(String, String)> =
            sqlx::query_as("SELECT action, details FROM audit_log WHERE target = $1 ORDER BY seq")
                .bind(format!("flow:{}", f.id))
                .fetch_all(&db.pool)
                .await
                .unwrap();
        let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(actions, ["flow.create", "flow.sign", "seal.use"]);
        assert!(
            audit[1].1.contains("\"custody\":\"server\"")
                && audit[2].1.contains(f.signers[1].cert_serial.as_deref().unwrap())
        );
    }
}

/// Server custody of a doctor's key needs a reason on record; authorizing again keeps the key
/// and certificate, RSA may be added. Once revoked the server signs nothing for the doctor (a
/// second revocation finds nothing) until custody is authorized again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_needs_a_reason_and_once_revoked_signs_nothing_until_authorized_again() {
    for (_d, db) in backends().await {
        let w = world(&db).await;
        let (app, _) = sign_app(&db, &w.kek, "HIS").await;
        add_staff(&db, &w.kek, &[staff("1001", "医生1001")]).await;
        let (kek, ctx, issuer) = (&w.kek, &w.ctx, issuer(&w.cas));
        assert!(authorize_custody(&db, kek, issuer, ctx, "1001", "", "sm2").await.is_err());
        let c = authorize_custody(&db, kek, issuer, ctx, "1001", "院长办公会决议 2026-11", "sm2").await.unwrap();
        assert_eq!(c.employee_no, "1001");
        authorize_custody(&db, kek, issuer, ctx, "1001", "again: same key, same certificate", "sm2").await.unwrap();
        authorize_custody(&db, kek, issuer, ctx, "1001", "RSA too", "rsa").await.unwrap();
        revoke_custody(&db, ctx, "1001").await.unwrap();
        let nf = flow(json!([{"employee_no": "1001"}]), json!({}));
        assert!(create(&signing(&db, &w), ctx, &app.app_id, &nf, 1 << 20).await.is_err());
        assert!(matches!(revoke_custody(&db, ctx, "1001").await, Err(Error::NotFound(_))));
        authorize_custody(&db, kek, issuer, ctx, "1001", "授权恢复 / authorized again", "sm2").await.unwrap();
        let f = create(&signing(&db, &w), ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert_eq!(f.state, FlowState::Completed, "signs again once authorized again");
    }
}

/// An RSA flow may carry JSON content, attached in its CMS: it verifies without the content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_flow_carries_its_json_content_attached() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        authorize_custody(&db, &w.kek, issuer(&w.cas), &w.ctx, "1001", "RSA too", "rsa").await.unwrap();
        let nf = flow(
            json!([{"employee_no": "1001"}]),
            json!({"alg": "rsa", "detached": false, "content": null, "content_json": {"b": 1, "a": [1, 2]}}),
        );
        let f2 = create(&signing(&db, &w), &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        let sig2 = signature_bytes(&db, Some(&app.app_id), &f2.id).await.unwrap();
        let rep2 = verify_data(&db, &w.cas, &sig2, None).await.unwrap();
        assert!(rep2.is_valid(), "{rep2:?}");
    }
}

/// Another app does not find a flow; a completed flow cannot be revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_is_hidden_from_other_apps_and_a_completed_one_cannot_be_revoked() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        let nf = flow(json!([{"employee_no": "1001"}, {"seal": "hospital"}]), json!({}));
        let f = create(&signing(&db, &w), &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert!(matches!(get(&db, Some("app_other"), &f.id).await, Err(Error::NotFound(_))));
        assert!(matches!(
            revoke(&db, &w.ctx, Some(&app.app_id), &f.id, "wrong patient").await,
            Err(Error::Conflict(_))
        ));
    }
}

/// Bad input is refused before anything is signed: staff without custody or unknown, an unknown
/// seal, a seal or unknown staff in scan mode, an unknown mode, too short a ticket, a template
/// field in a data flow, a signer that is both, no signers, a file kind without a file, empty or
/// two contents, an unknown algorithm, a callback that is not HTTP or is the metadata address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flow_requests_are_refused_as_invalid() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        for (signers, extra) in [
            (json!([{"employee_no": "1002"}]), json!({})),
            (json!([{"employee_no": "9999"}]), json!({})),
            (json!([{"seal": "NOPE"}]), json!({})),
            (json!([{"seal": "hospital", "mode": "scan"}]), json!({})),
            (json!([{"employee_no": "1001", "mode": "wave"}]), json!({})),
            (json!([{"employee_no": "NOPE", "mode": "scan"}]), json!({})),
            (json!([{"employee_no": "1001", "mode": "scan"}]), json!({"ticket_ttl_seconds": 5})),
            (json!([{"employee_no": "1001", "field": "doctor"}]), json!({})),
            (json!([{"employee_no": "1001", "seal": "hospital"}]), json!({})),
            (json!([]), json!({})),
            (json!([{"employee_no": "1001"}]), json!({"kind": "file"})),
            (json!([{"employee_no": "1001"}]), json!({"content": ""})),
            (json!([{"employee_no": "1001"}]), json!({"content_base64": "AA=="})),
            (json!([{"employee_no": "1001"}]), json!({"alg": "dsa"})),
            (json!([{"employee_no": "1001"}]), json!({"callback_url": "ftp://x"})),
            (json!([{"employee_no": "1001"}]), json!({"callback_url": "http://169.254.169.254/latest/meta-data/"})),
        ] {
            let nf = flow(signers.clone(), extra.clone());
            let e = create(&signing(&db, &w), &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{signers} {extra}: {e}");
        }
    }
}

/// Scan mode (R7.4.6): the seal signs at once, the doctor's turn waits with a one-time QR ticket.
/// A renewal supersedes it; a ticket redeems once, an unknown or expired one never; only the
/// owning app renews, and a completed flow has nothing to scan. Each refused redemption is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_turn_waits_with_a_one_time_ticket() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        let ctx = &w.ctx;
        let nf = flow(json!([{"employee_no": "1001"}, {"seal": "hospital"}]), json!({}));
        let f = create(&signing(&db, &w), ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        let nf = flow(json!([{"seal": "hospital"}, {"employee_no": "1001", "mode": "scan"}]), json!({}));
        let wf = create(&signing(&db, &w), ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert_eq!(wf.state, FlowState::Signing);
        assert_eq!(
            wf.signers.iter().map(|s| (s.mode.as_str(), s.state.as_str())).collect::<Vec<_>>(),
            [("auto", "signed"), ("scan", "pending")]
        );
        let t = crate::tickets::current(&db, &wf.id).await.unwrap().expect("an open ticket");
        assert_eq!(t.signer_index, 1);
        let v = crate::tickets::view("https://sign.example.org/m/", &t).unwrap();
        assert_eq!(v.deep_link, format!("https://sign.example.org/m/#/sign?t={}", t.id));
        assert!(v.qr_svg.contains("<svg") && !v.qr_png_base64.is_empty());
        // a renewal supersedes it; the new one redeems once, then never again
        let t2 = crate::scan::renew(&db, ctx, &app.app_id, &wf.id, Some(120)).await.unwrap();
        let e = crate::tickets::redeem(&db, ctx, &t.id).await.unwrap_err();
        assert!(e.to_string().contains("already used"), "{e}");
        assert_eq!(crate::tickets::redeem(&db, ctx, &t2.id).await.unwrap().flow_id, wf.id);
        assert!(crate::tickets::redeem(&db, ctx, &t2.id).await.unwrap_err().to_string().contains("already used"));
        assert!(crate::tickets::redeem(&db, ctx, "tk_nope").await.unwrap_err().to_string().contains("unknown"));
        // an expired ticket is refused
        let t3 = crate::scan::renew(&db, ctx, &app.app_id, &wf.id, None).await.unwrap();
        sqlx::query("UPDATE sign_tickets SET expires_at = '2000-01-01T00:00:00Z' WHERE id = $1")
            .bind(&t3.id)
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(crate::tickets::redeem(&db, ctx, &t3.id).await.unwrap_err().to_string().contains("expired"));
        // another app cannot renew it; a completed flow has nothing to scan
        assert!(matches!(crate::scan::renew(&db, ctx, "other", &wf.id, None).await, Err(Error::NotFound(_))));
        assert!(matches!(crate::scan::renew(&db, ctx, &app.app_id, &f.id, None).await, Err(Error::Conflict(_))));
        let refused: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'ticket.redeem' AND outcome = 'refused'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(refused, 4);
    }
}

/// Without a synchronised clock a flow that requires its timestamp fails (unavailable); one that
/// takes it `later` is released at once and stamped when the TSA can issue — each signer's time
/// from its own token. The job sets aside a flow whose stored signature is unreadable and stamps
/// the others (one bad row used to stop it for every flow after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_synchronised_clock_required_fails_and_later_is_stamped_afterwards() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        let cold = cold_tsa(&db, &w).await;
        let nf = flow(json!([{"seal": "hospital"}]), json!({}));
        let e =
            create(&Signing { tsa: &cold, ..signing(&db, &w) }, &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e}");
        // the failed flow is on record, named in the answer, with its creation and failure audited
        let id = e.to_string().rsplit("(flow ").next().unwrap().trim_end_matches(')').to_string();
        let failed = get(&db, None, &id).await.unwrap();
        assert_eq!(failed.state, FlowState::Failed, "{failed:?}");
        assert!(failed.signers.iter().all(|s| s.state == SignerState::Pending && s.cert_serial.is_none()));
        let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log WHERE target = $1 ORDER BY seq")
            .bind(format!("flow:{id}"))
            .fetch_all(&db.pool)
            .await
            .unwrap();
        assert_eq!(actions, ["flow.create", "flow.fail"]);
        assert!(signature_bytes(&db, None, &id).await.is_err(), "nothing released");
        let nf = flow(json!([{"employee_no": "1001"}, {"seal": "hospital"}]), json!({"timestamp": "later"}));
        let f3 = create(&Signing { tsa: &cold, ..signing(&db, &w) }, &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert!(f3.timestamp_pending && f3.state == FlowState::Completed);
        sqlx::query(
            "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, timestamp_mode, ts_pending, signature_b64, expires_at, created_at, updated_at) \
             VALUES ('sf_broken', 'QM-BROKEN', $1, 'data', 't', 'completed', 'sm2', 1, '', '', 'later', 1, 'not base64 ~', '2099-01-01T00:00:00Z', '0', '0')",
        )
        .bind(&app.app_id)
        .execute(&db.pool)
        .await
        .unwrap();
        assert_eq!(complete_pending_timestamps(&db, &cold).await.unwrap(), 0);
        assert_eq!(complete_pending_timestamps(&db, &w.tsa).await.unwrap(), 1);
        let broken = get(&db, None, "sf_broken").await.unwrap();
        assert!(broken.timestamp_pending, "still shown as pending");
        assert_eq!(complete_pending_timestamps(&db, &w.tsa).await.unwrap(), 0, "set aside, not retried");
        let f3 = get(&db, None, &f3.id).await.unwrap();
        assert!(!f3.timestamp_pending && f3.signers.iter().all(|s| s.timestamp_at.is_some()), "{f3:?}");
        let rep3 = verify_data(&db, &w.cas, &signature_bytes(&db, None, &f3.id).await.unwrap(), Some(RX.as_bytes()))
            .await
            .unwrap();
        assert!(rep3.is_valid() && rep3.signers.len() == 2, "{rep3:?}");
        // each signer's recorded time is the time of its own token, found by certificate
        times_are_each_signers_own(&f3, &rep3);
    }
}

/// An unfinished flow past its expiry reads as expired at once and is closed by the job, once;
/// it cannot be revoked.
#[tokio::test]
async fn an_unfinished_flow_past_its_expiry_is_closed_once() {
    for (_d, db) in backends().await {
        sqlx::query(
            "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, timestamp_mode, ts_pending, expires_at, created_at, updated_at) \
             VALUES ('sf_old', 'QM-OLD', 'app_x', 'data', 't', 'signing', 'sm2', 1, '', '', 'required', 0, '2020-01-01T00:00:00Z', 'x', 'x')",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        assert_eq!(get(&db, None, "sf_old").await.unwrap().state, FlowState::Expired, "computed on read");
        assert_eq!(expire_due(&db).await.unwrap(), 1);
        assert_eq!(expire_due(&db).await.unwrap(), 0);
        assert!(matches!(revoke(&db, &Context::cli(), None, "sf_old", "late").await, Err(Error::Conflict(_))));
    }
}

/// Every state change is POSTed to the flow's callback URL, signed with the app's HMAC key: a
/// delivery that fails (500) is retried later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_of_every_state_change_are_retried_and_signed_with_the_app_key() {
    for (_d, db) in backends().await {
        let (w, app, token) = hospital(&db).await;
        let (url, got) = receiver(1).await;
        let cb = json!({"callback_url": url});
        let (sg, cold) = (signing(&db, &w), cold_tsa(&db, &w).await);
        // completed; failed (the timestamp required, the TSA out of sync); timestamped later
        let nf = flow(json!([{"employee_no": "1001"}, {"seal": "hospital"}]), cb.clone());
        create(&sg, &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        let nf = flow(json!([{"seal": "hospital"}]), cb.clone());
        create(&Signing { tsa: &cold, ..sg }, &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap_err();
        let nf = flow(json!([{"seal": "hospital"}]), json!({"callback_url": url, "timestamp": "later"}));
        create(&Signing { tsa: &cold, ..sg }, &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert_eq!(complete_pending_timestamps(&db, &w.tsa).await.unwrap(), 1);
        // expired
        sqlx::query(
            "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, timestamp_mode, ts_pending, callback_url, expires_at, created_at, updated_at) \
             VALUES ('sf_old', 'QM-OLD', $1, 'data', 't', 'signing', 'sm2', 1, '', '', 'required', 0, $2, '2020-01-01T00:00:00Z', 'x', 'x')",
        )
        .bind(&app.app_id)
        .bind(&url)
        .execute(&db.pool)
        .await
        .unwrap();
        assert_eq!(expire_due(&db).await.unwrap(), 1);

        // the first attempt fails (500) and is retried later; all signed with the app key
        let client = webhook_client();
        deliver_due(&db, &w.kek, &client).await.unwrap();
        let ds = deliveries(&db, None).await.unwrap();
        assert!(ds.iter().any(|d| d.attempts == 1 && d.state == "pending" && d.last_status == Some(500)), "{ds:?}");
        sqlx::query("UPDATE webhook_deliveries SET next_at = '1970-01-01T00:00:00.000Z' WHERE state = 'pending'")
            .execute(&db.pool)
            .await
            .unwrap();
        deliver_due(&db, &w.kek, &client).await.unwrap();
        let ds = deliveries(&db, None).await.unwrap();
        assert!(ds.iter().all(|d| d.state == "delivered"), "{ds:?}");
        let events: Vec<String> = ds.iter().map(|d| d.event.clone()).collect();
        for e in ["flow.completed", "flow.failed", "flow.timestamped", "flow.expired"] {
            assert!(events.contains(&e.to_string()), "{events:?}");
        }
        let key = medsign_directory::apps::hmac_key(token.split_once('.').unwrap().1);
        for (h, body) in got.lock().unwrap().iter() {
            let ts = h["x-medsign-timestamp"].to_str().unwrap();
            assert_eq!(h["x-medsign-signature"].to_str().unwrap(), webhook_signature(&key, ts, body));
        }
    }
}

/// Each signer's recorded `timestamp_at` is the genTime of the token on its own SignerInfo (found
/// by certificate serial: the SET OF re-sorts, so position proves nothing).
fn times_are_each_signers_own(f: &FlowView, rep: &cms::CmsReport) {
    for s in &f.signers {
        let r = rep.signers.iter().find(|r| r.serial == s.cert_serial).expect("signer in the CMS");
        let token = r.timestamp.as_ref().and_then(|t| t.time).expect("token time");
        let at = chrono::DateTime::parse_from_rfc3339(s.timestamp_at.as_deref().expect("recorded")).unwrap();
        assert_eq!(at.timestamp_millis(), token.timestamp_millis(), "signer #{}", s.index);
    }
}

#[test]
fn callback_urls_refuse_link_local_and_metadata_hosts() {
    for bad in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.0.23/",
        "http://2852039166/latest/meta-data/", // 169.254.169.254 in decimal
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.GOOGLE.INTERNAL./computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
    ] {
        let e = check_callback_url(bad).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e:?}");
        assert!(e.to_string().contains("link-local or cloud metadata"), "{bad}: {e}");
    }
    for good in [
        "http://127.0.0.1:8080/hook",
        "http://localhost:9/x",
        "http://[::1]/x",
        "http://10.1.2.3/his/callback",
        "https://his.example/medsign/callback",
    ] {
        check_callback_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for broken in ["ftp://x", "http://", "http:// x", "https://[::1"] {
        assert!(check_callback_url(broken).is_err(), "{broken}");
    }
}

#[tokio::test]
async fn the_webhook_resolver_drops_link_local_answers() {
    use reqwest::dns::Resolve;
    let r = GuardedResolver;
    let addrs: Vec<_> = r.resolve("127.0.0.1".parse().unwrap()).await.unwrap().collect();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty(), "loopback stays allowed");
    // what a name resolving to the metadata address gets
    let e = r.resolve("169.254.169.254".parse().unwrap()).await.err().expect("refused").to_string();
    assert!(e.contains("link-local"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_never_reach_metadata_and_never_follow_redirects() {
    let stolen = Arc::new(Mutex::new(0usize));
    let seen = stolen.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(|| async {
                (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, "/stolen")])
            }),
        )
        .route(
            "/stolen",
            axum::routing::any(move || {
                let seen = seen.clone();
                async move {
                    *seen.lock().unwrap() += 1;
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    for (_d, db) in backends().await {
        let kek = Kek::generate().unwrap();
        for (id, url) in [
            ("wh_meta", "http://169.254.169.254/latest/meta-data/".to_string()),
            ("wh_redirect", format!("http://{addr}/hook")),
        ] {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, app_id, flow_id, event, url, payload, state, attempts, next_at, created_at) \
                 VALUES ($1, 'app_x', 'sf_x', 'flow.completed', $2, '{}', 'pending', 0, '1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.000Z')",
            )
            .bind(id)
            .bind(url)
            .execute(&db.pool)
            .await
            .unwrap();
        }
        let started = std::time::Instant::now();
        assert_eq!(deliver_due(&db, &kek, &webhook_client()).await.unwrap(), 0);
        assert!(started.elapsed() < std::time::Duration::from_secs(4), "the metadata address was not contacted");
        let ds = deliveries(&db, None).await.unwrap();
        let meta = ds.iter().find(|d| d.id == "wh_meta").unwrap();
        assert_eq!((meta.state.as_str(), meta.last_status), ("failed", None), "{meta:?}");
        assert!(meta.last_error.as_deref().unwrap_or("").contains("link-local"), "{meta:?}");
        let redirect = ds.iter().find(|d| d.id == "wh_redirect").unwrap();
        assert_eq!((redirect.state.as_str(), redirect.last_status), ("pending", Some(302)), "{redirect:?}");
    }
    assert_eq!(*stolen.lock().unwrap(), 0, "the redirect was not followed");
}

/// A request dropped between the flow's creation and the recording of its signatures (a client
/// or load balancer gave up): the guard fails a flow still in `signing`, never one that reached
/// `pending` or `completed`. (The guard is exercised directly: the drop point itself is a race.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_whose_request_is_dropped_is_failed_not_left_signing() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        let mut ids = Vec::new();
        for state in ["signing", "pending", "completed"] {
            let nf = flow(json!([{"seal": "hospital"}]), json!({}));
            let f = create(&signing(&db, &w), &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
            sqlx::query("UPDATE sign_flows SET state = $1 WHERE id = $2")
                .bind(state)
                .bind(&f.id)
                .execute(&db.pool)
                .await
                .unwrap();
            drop(FailIfDropped { db: db.clone(), ctx: w.ctx.clone(), id: Some(f.id.clone()) });
            ids.push((state, f.id));
        }
        let state_of = |id: String| {
            let db = db.clone();
            async move {
                sqlx::query_scalar::<_, String>("SELECT state FROM sign_flows WHERE id = $1")
                    .bind(id)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap()
            }
        };
        let mut failed = false;
        for _ in 0..100 {
            if state_of(ids[0].1.clone()).await == "failed" {
                failed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(failed, "the dropped request's flow was failed");
        assert_eq!(state_of(ids[1].1.clone()).await, "pending");
        assert_eq!(state_of(ids[2].1.clone()).await, "completed");
        let r = medsign_store::audit::verify_chain(&db).await.unwrap();
        assert!(r.broken.is_none(), "{r:?}");
    }
}

/// The console's search finds every app's flows by number or title (wildcards typed are literal),
/// state (an unfinished flow past its expiry is `expired`, not `signing`), staff signer, app and
/// creation time, newest first and paged; an unknown state or a bad instant is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_searches_every_apps_flows() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        let (other, _) = sign_app(&db, &w.kek, "EMR").await;
        let sg = signing(&db, &w);
        let mut ids = Vec::new();
        for (owner, title, signers) in [
            (&app, "门诊处方 A_1", json!([{"employee_no": "1001"}, {"seal": "hospital"}])),
            (&other, "出院小结 B%2", json!([{"seal": "hospital"}])),
            (&app, "检验报告 C", json!([{"employee_no": "1001", "mode": "scan"}])),
        ] {
            let nf = flow(signers, json!({"title": title}));
            ids.push(create(&sg, &w.ctx, &owner.app_id, &nf, 1 << 20).await.unwrap());
        }
        let q = |v: Value| serde_json::from_value::<FlowQuery>(v).unwrap();
        let found = |p: FlowPage| p.items.iter().map(|f| f.title.clone()).collect::<Vec<_>>();
        let all = search(&db, &q(json!({}))).await.unwrap();
        assert_eq!(
            (all.total, found(all.clone())),
            (3, vec!["检验报告 C".into(), "出院小结 B%2".into(), "门诊处方 A_1".into()])
        );
        assert_eq!((all.items[2].signers, all.items[2].signed), (2, 2));
        assert_eq!(found(search(&db, &q(json!({"q": "B%"}))).await.unwrap()), ["出院小结 B%2"]);
        assert_eq!(search(&db, &q(json!({"q": "A%1"}))).await.unwrap().total, 0, "% is literal");
        assert_eq!(search(&db, &q(json!({"q": "_"}))).await.unwrap().total, 1, "_ is literal");
        assert_eq!(found(search(&db, &q(json!({"q": ids[0].doc_no}))).await.unwrap()), ["门诊处方 A_1"]);
        // a document number stands for the flow (R7.4.13), for its own app only
        assert_eq!(resolve(&db, Some(&app.app_id), &ids[0].doc_no).await.unwrap(), ids[0].id);
        assert_eq!(resolve(&db, None, &ids[0].doc_no).await.unwrap(), ids[0].id);
        assert!(matches!(resolve(&db, Some(&other.app_id), &ids[0].doc_no).await, Err(Error::NotFound(_))));
        assert_eq!(resolve(&db, Some(&other.app_id), "sf_anything").await.unwrap(), "sf_anything");
        let typed = ids[0].doc_no.to_lowercase();
        assert_eq!(found(search(&db, &q(json!({"q": typed}))).await.unwrap()), ["门诊处方 A_1"], "any case");
        assert_eq!(found(search(&db, &q(json!({"q": ids[1].id}))).await.unwrap()), ["出院小结 B%2"]);
        assert_eq!(search(&db, &q(json!({"app_id": other.app_id}))).await.unwrap().total, 1);
        assert_eq!(found(search(&db, &q(json!({"signer": "1001"}))).await.unwrap()), ["检验报告 C", "门诊处方 A_1"]);
        assert_eq!(search(&db, &q(json!({"signer": "hospital"}))).await.unwrap().total, 0, "a seal is no staff signer");
        assert_eq!(search(&db, &q(json!({"state": "completed"}))).await.unwrap().total, 2);
        assert_eq!(search(&db, &q(json!({"state": "signing"}))).await.unwrap().total, 1);
        // the scan flow passes its expiry unswept: it is expired, no longer signing
        sqlx::query("UPDATE sign_flows SET expires_at = '2020-01-01T00:00:00.000Z' WHERE id = $1")
            .bind(&ids[2].id)
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(search(&db, &q(json!({"state": "signing"}))).await.unwrap().total, 0);
        let expired = search(&db, &q(json!({"state": "expired"}))).await.unwrap();
        assert_eq!((expired.total, expired.items[0].state), (1, FlowState::Expired));
        assert_eq!(search(&db, &q(json!({"from": "2099-01-01T00:00:00+08:00"}))).await.unwrap().total, 0);
        assert_eq!(search(&db, &q(json!({"to": "2099-01-01T00:00:00Z"}))).await.unwrap().total, 3);
        let p2 = search(&db, &q(json!({"page": 2, "page_size": 2}))).await.unwrap();
        assert_eq!((p2.total, found(p2)), (3, vec!["门诊处方 A_1".to_string()]));
        for bad in
            [json!({"state": "done"}), json!({"from": "yesterday"}), json!({"page_size": 201}), json!({"page": 0})]
        {
            assert!(matches!(search(&db, &q(bad.clone())).await, Err(Error::Invalid(_))), "{bad}");
        }
        // a NUL typed into the search box: nothing found, or a 400 where the database cannot hold it
        match search(&db, &q(json!({"q": "a\u{0}b", "signer": "\u{0}"}))).await {
            Ok(p) => assert_eq!(p.total, 0),
            Err(e) => assert!(matches!(e, Error::Invalid(_)), "{e:?}"),
        }
    }
}

/// Only a failed delivery is sent again by hand, once, at once; a delivered or pending one is a
/// conflict and an unknown id not found. The retry is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_webhook_is_retried_once_by_hand() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        let (url, got) = receiver(0).await;
        let nf = flow(json!([{"seal": "hospital"}]), json!({"callback_url": url}));
        create(&signing(&db, &w), &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        let id = deliveries(&db, None).await.unwrap()[0].id.clone();
        assert!(matches!(retry_delivery(&db, &w.ctx, &id).await, Err(Error::Conflict(_))), "pending");
        // given up after its attempts
        sqlx::query("UPDATE webhook_deliveries SET state = 'failed', attempts = $1, next_at = '2099-01-01T00:00:00.000Z' WHERE id = $2")
            .bind(WEBHOOK_MAX_ATTEMPTS)
            .bind(&id)
            .execute(&db.pool)
            .await
            .unwrap();
        let client = webhook_client();
        assert_eq!(deliver_due(&db, &w.kek, &client).await.unwrap(), 0, "a failed delivery is not sent");
        let d = retry_delivery(&db, &w.ctx, &id).await.unwrap();
        assert_eq!(d.state, "pending");
        assert!(matches!(retry_delivery(&db, &w.ctx, &id).await, Err(Error::Conflict(_))), "already queued");
        assert_eq!(deliver_due(&db, &w.kek, &client).await.unwrap(), 1);
        assert_eq!(got.lock().unwrap().len(), 1);
        assert!(matches!(retry_delivery(&db, &w.ctx, &id).await, Err(Error::Conflict(_))), "delivered");
        assert!(matches!(retry_delivery(&db, &w.ctx, "wh_none").await, Err(Error::NotFound(_))));
        let f = audit::Filter { action: Some("webhook.retry".into()), ..Default::default() };
        assert_eq!(audit::query(&db, &f).await.unwrap().1, 1);
    }
}

/// The dashboard's days: flows and signatures counted on the day the hospital (UTC+8) lives
/// them — a flow a minute before local midnight is yesterday's — and the queues now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_counts_days_as_the_hospital_does() {
    for (_d, db) in backends().await {
        let (w, app, _) = hospital(&db).await;
        let sg = signing(&db, &w);
        let done = create(
            &sg,
            &w.ctx,
            &app.app_id,
            &flow(json!([{"employee_no": "1001"}, {"seal": "hospital"}]), json!({})),
            1 << 20,
        )
        .await
        .unwrap();
        create(&sg, &w.ctx, &app.app_id, &flow(json!([{"employee_no": "1001", "mode": "scan"}]), json!({})), 1 << 20)
            .await
            .unwrap();
        let a = activity(&db, 3).await.unwrap();
        assert_eq!(a.days.len(), 3);
        let today = a.days.last().unwrap().clone();
        assert_eq!((today.flows, today.completed, today.signatures, a.pending_flows), (2, 1, 2, 1), "{a:?}");
        // one minute before this morning's local midnight, in UTC: yesterday
        let cst = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let midnight =
            Utc::now().with_timezone(&cst).date_naive().and_hms_opt(0, 0, 0).unwrap().and_local_timezone(cst).unwrap();
        let before =
            (midnight - Duration::minutes(1)).with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query("UPDATE sign_flows SET created_at = $1 WHERE id = $2")
            .bind(&before)
            .bind(&done.id)
            .execute(&db.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE flow_signers SET signed_at = $1 WHERE flow_id = $2")
            .bind(&before)
            .bind(&done.id)
            .execute(&db.pool)
            .await
            .unwrap();
        let a = activity(&db, 3).await.unwrap();
        let (y, t) = (&a.days[1], &a.days[2]);
        assert_eq!((y.flows, y.completed, y.signatures, t.flows, t.signatures), (1, 1, 2, 1, 0), "{a:?}");
        assert_eq!(activity(&db, 1).await.unwrap().days[0].flows, 1, "yesterday is outside one day");
        // a scan-to-login confirmation is a one-signer flow too, but no document's signature
        let login = create(&sg, &w.ctx, &app.app_id, &flow(json!([{"employee_no": "1001"}]), json!({})), 1 << 20)
            .await
            .unwrap();
        sqlx::query("INSERT INTO login_tickets (id, app_id, system, challenge, state, expires_at, created_at, updated_at, flow_id) \
                     VALUES ('lt_x', $1, 's', 'c', 'confirmed', 'x', 'x', 'x', $2)")
            .bind(&app.app_id)
            .bind(&login.id)
            .execute(&db.pool)
            .await
            .unwrap();
        let t = activity(&db, 1).await.unwrap().days[0].clone();
        assert_eq!((t.flows, t.signatures), (1, 0), "{t:?}");
        for bad in [0, 91] {
            assert!(matches!(activity(&db, bad).await, Err(Error::Invalid(_))));
        }
    }
}
