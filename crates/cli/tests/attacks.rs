//! Issue #15: the red team. Each test attacks the real `medsign serve` as a thief or a hostile
//! party would — a stolen device session token, a copy of the data directory with `kek.key`, a
//! malicious integration app, a flood from one address — and asserts what holds. The claims in
//! docs/security.md cite these tests (and the unit tests they name).

mod common;
use common::*;
use medsign_crypto::twoparty::{ClientKeyGen, ClientKeyShare};

/// The doctor's PIN verifier (what the phone sends; the PIN itself never leaves the phone).
const PIN: &str = "3535353535353535353535353535353535353535353535353535353535353535";

/// The hospital's system and a server with a synchronised clock.
fn hospital(d: &Dir, extra: &[(&str, &str)]) -> (Server, Chrony, String, String) {
    let ntp = Chrony::start(d, "ntp", None, false);
    let src = ntp.source();
    let mut env = vec![("MEDSIGN_TIME_SOURCES", src.as_str()), ("MEDSIGN_TIME_POLL_SECONDS", "1")];
    env.extend_from_slice(extra);
    let s = Server::start(d, &env);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let scopes = r#"{"name":"HIS","scopes":["sign","verify","users:read","users:write","certs"]}"#;
    let (st, v) = s.json("POST", "/admin/v1/apps", Some(&admin), scopes);
    assert_eq!(st, 201, "{v}");
    let his = v["token"].as_str().unwrap().to_string();
    (s, ntp, admin, his)
}

/// Register `no` and bind a phone with a fresh activation code; the device session token.
fn bind(s: &Server, his: &str, no: &str) -> String {
    let user = serde_json::json!({"employee_no": no, "name": format!("医生{no}")}).to_string();
    let st = s.json("POST", "/api/v1/users", Some(his), &user).0;
    assert!(st == 201 || st == 409, "{st}");
    let (st, code) = s.json("POST", &format!("/api/v1/users/{no}/activation-codes"), Some(his), "");
    assert_eq!(st, 201, "{code}");
    let body = serde_json::json!({"employee_no": no, "code": code["code"], "device_name": "测试手机"}).to_string();
    let (st, act) = s.json("POST", "/mobile/v1/activate", None, &body);
    assert_eq!(st, 201, "{act}");
    act["token"].as_str().unwrap().to_string()
}

/// Answer a key generation with a fresh phone half: (status, body, the phone's share).
fn keygen(s: &Server, token: &str) -> (u16, serde_json::Value, Option<ClientKeyShare>) {
    let (st, start) = s.json("POST", "/mobile/v1/keys", Some(token), "");
    if st != 201 {
        return (st, start, None);
    }
    let (kg, req) = ClientKeyGen::start(start["context"].as_str().unwrap().as_bytes()).unwrap();
    let path = format!("/mobile/v1/keys/{}", start["key_id"].as_str().unwrap());
    let (st, done) = s.json("POST", &path, Some(token), &serde_json::json!({"request": req}).to_string());
    let share = (st == 201).then(|| kg.finish(&serde_json::from_value(done["response"].clone()).unwrap()).unwrap());
    (st, done, share)
}

/// A bound, keyed phone with its PIN set: (session token, the phone's share).
fn phone(s: &Server, his: &str, no: &str) -> (String, ClientKeyShare) {
    let token = bind(s, his, no);
    let (st, v, share) = keygen(s, &token);
    assert_eq!(st, 201, "{v}");
    let body = serde_json::json!({ "verifier": PIN }).to_string();
    assert_eq!(s.json("POST", "/mobile/v1/pin", Some(&token), &body).0, 200);
    (token, share.unwrap())
}

/// The doctor enters the PIN (`verifier`) approving `digest`.
fn unlock(s: &Server, token: &str, verifier: &str, digest: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "verifier": verifier, "approve": digest }).to_string();
    s.json("POST", "/mobile/v1/unlock", Some(token), &body)
}

/// The phone's answers to `rounds` (its half of each signature).
fn answers(share: &ClientKeyShare, rounds: &[serde_json::Value]) -> String {
    let a: Vec<serde_json::Value> = rounds
        .iter()
        .map(|r| {
            let e: [u8; 32] = hex::decode(r["e"].as_str().unwrap()).unwrap().try_into().unwrap();
            serde_json::json!({"round_id": r["round_id"], "request": share.begin_sign(&e).unwrap().1})
        })
        .collect();
    serde_json::json!({ "answers": a }).to_string()
}

fn rounds_digest(rounds: &[serde_json::Value]) -> String {
    medsign_phone::approvals::sign_digest(&rounds.iter().map(|r| r["e"].as_str().unwrap()).collect::<Vec<_>>())
}

fn scan_flow(s: &Server, his: &str, no: &str, title: &str) -> String {
    let flow = serde_json::json!({"kind": "data", "title": title, "content": format!("{title}：阿莫西林 0.5g tid"),
        "signers": [{"employee_no": no, "mode": "scan"}]});
    let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(his), &flow.to_string());
    assert_eq!(st, 201, "{f}");
    f["id"].as_str().unwrap().to_string()
}

/// Art. 13 sole control: whoever holds only the device session token (and even the phone's
/// share, without the PIN) answers no signing round, activates no grant, renews no certificate
/// and cannot give the doctor a new key; the PIN's approval is bound to what it approves; a
/// locked PIN stops everything.
#[test]
fn a_stolen_session_token_signs_nothing_and_replaces_nothing() {
    let d = Dir::new();
    let (s, _ntp, _admin, his) = hospital(&d, &[]);
    let (token, share) = phone(&s, &his, "1001");
    let flow = scan_flow(&s, &his, "1001", "门诊处方 A");
    let target = serde_json::json!({"targets": [{"flow_id": flow}]}).to_string();
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds", Some(&token), &target);
    assert_eq!(st, 201, "{v}");
    let rounds = v["rounds"].as_array().unwrap().clone();
    // the token alone: no answer, no grant, no renewal, no new key
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds/answers", Some(&token), &answers(&share, &rounds));
    assert_eq!((st, v["code"].as_str()), (403, Some("approval_required")), "{v}");
    let (_, systems) = s.json("GET", "/mobile/v1/systems", Some(&token), "");
    let app_id = systems["items"][0]["app_id"].as_str().unwrap().to_string();
    let (st, g) = s.json(
        "POST",
        "/mobile/v1/grants",
        Some(&token),
        &serde_json::json!({"app_id": app_id, "hours": 2}).to_string(),
    );
    assert_eq!(st, 201, "{g}");
    let gk =
        medsign_crypto::sm2::Sm2PublicKey::from_sec1(&hex::decode(g["public_key"].as_str().unwrap()).unwrap()).unwrap();
    let sealed = medsign_crypto::seal::seal(&gk, &share.to_bytes(), g["context"].as_str().unwrap().as_bytes()).unwrap();
    let share_path = format!("/mobile/v1/grants/{}/share", g["grant_id"].as_str().unwrap());
    let sealed_body = serde_json::json!({"sealed": hex::encode(&sealed)}).to_string();
    let (st, v) = s.json("POST", &share_path, Some(&token), &sealed_body);
    assert_eq!((st, v["code"].as_str()), (403, Some("approval_required")), "{v}");
    let (st, v) = s.json("POST", "/mobile/v1/certificate/renew", Some(&token), "");
    assert_eq!((st, v["code"].as_str()), (403, Some("approval_required")), "{v}");
    let (st, v, _) = keygen(&s, &token);
    assert_eq!((st, v["code"].as_str()), (409, Some("rekey_needs_activation")), "{v}");
    // an approval is bound to what it approves: approving the grant does not answer the round
    let grant_digest =
        medsign_phone::approvals::digest(medsign_phone::approvals::Purpose::Grant, g["context"].as_str().unwrap());
    assert_eq!(unlock(&s, &token, PIN, &grant_digest).0, 200);
    let (st, _) = s.json("POST", "/mobile/v1/sign-rounds/answers", Some(&token), &answers(&share, &rounds));
    assert_eq!(st, 403, "a grant approval signs nothing");
    assert_eq!(s.json("POST", &share_path, Some(&token), &sealed_body).0, 200, "it activates that grant, once");
    // the doctor's PIN on these digests: answered, once
    assert_eq!(unlock(&s, &token, PIN, &rounds_digest(&rounds)).0, 200);
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds/answers", Some(&token), &answers(&share, &rounds));
    assert_eq!(st, 200, "{v}");
    // five wrong PINs lock it: then even the right PIN approves nothing
    let flow = scan_flow(&s, &his, "1001", "门诊处方 B");
    let target = serde_json::json!({"targets": [{"flow_id": flow}]}).to_string();
    let rounds =
        s.json("POST", "/mobile/v1/sign-rounds", Some(&token), &target).1["rounds"].as_array().unwrap().clone();
    let digest = rounds_digest(&rounds);
    for i in 0..5 {
        let (st, v) = unlock(&s, &token, &format!("{i:064}"), &digest);
        assert_eq!(st, if i < 4 { 401 } else { 403 }, "{v}");
    }
    assert_eq!(unlock(&s, &token, PIN, &digest).0, 403, "locked");
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds/answers", Some(&token), &answers(&share, &rounds));
    assert_eq!(st, 403, "the locked PIN stops the answer too: {v}");
}

/// Counters and single-use steps under concurrency: twenty wrong PINs at once compare at most
/// five times (the rest are refused before any comparison); four key-generation answers of one
/// phone at once leave exactly one key and one active certificate.
#[test]
fn parallel_guesses_and_parallel_key_generations_are_counted_once() {
    let d = Dir::new();
    let (s, _ntp, admin, his) = hospital(&d, &[]);
    let (token, _) = phone(&s, &his, "2001");
    let digest = medsign_phone::approvals::digest(medsign_phone::approvals::Purpose::Renew, "x");
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let (s, token, digest) = (&s, &token, &digest);
                sc.spawn(move || unlock(s, token, &format!("{:064}", 7000 + i), digest).0)
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong = statuses.iter().filter(|&&st| st == 401).count();
    assert!(wrong <= 4, "{wrong} comparisons answered 'wrong PIN, n left': {statuses:?}");
    assert!(statuses.iter().all(|st| [401, 403, 429].contains(st)), "{statuses:?}");
    let (_, audit) = s.json("GET", "/admin/v1/audit?action=pin.verify", Some(&admin), "");
    assert!(audit["total"].as_i64().unwrap() <= 5, "compared more than five times: {audit}");
    assert!([403, 429].contains(&unlock(&s, &token, PIN, &digest).0), "locked (or still limited)");

    let fresh = bind(&s, &his, "2002");
    let starts: Vec<serde_json::Value> =
        (0..4).map(|_| s.json("POST", "/mobile/v1/keys", Some(&fresh), "").1).collect();
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = starts
            .iter()
            .map(|st| {
                sc.spawn(|| {
                    let (_kg, req) = ClientKeyGen::start(st["context"].as_str().unwrap().as_bytes()).unwrap();
                    let path = format!("/mobile/v1/keys/{}", st["key_id"].as_str().unwrap());
                    s.json("POST", &path, Some(&fresh), &serde_json::json!({"request": req}).to_string()).0
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|&&st| st == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|st| [201, 409].contains(st)), "{statuses:?}");
    let (_, certs) = s.json("GET", "/api/v1/certificates?employee_no=2002&status=active", Some(&his), "");
    assert_eq!(certs["total"], 1, "{certs}");
}

/// A copy of the data directory with `kek.key`, taken while a grant is signing for the doctor,
/// holds `d2` (under the KEK) and `d1` sealed to the grant key — but not the grant key, which
/// only the running process has: `d1` does not come out. After the grant is cancelled its
/// sealed share is in neither the database file nor its write-ahead log.
#[test]
fn a_copy_of_the_data_directory_does_not_yield_the_doctors_key() {
    let d = Dir::new();
    let (s, _ntp, _admin, his) = hospital(&d, &[]);
    let (token, share) = phone(&s, &his, "3001");
    let (_, systems) = s.json("GET", "/mobile/v1/systems", Some(&token), "");
    let app_id = systems["items"].as_array().unwrap().iter().find(|a| a["name"] == "HIS").unwrap()["app_id"].clone();
    let (_, g) = s.json(
        "POST",
        "/mobile/v1/grants",
        Some(&token),
        &serde_json::json!({"app_id": app_id, "hours": 2}).to_string(),
    );
    let context = g["context"].as_str().unwrap();
    let gk =
        medsign_crypto::sm2::Sm2PublicKey::from_sec1(&hex::decode(g["public_key"].as_str().unwrap()).unwrap()).unwrap();
    let sealed = medsign_crypto::seal::seal(&gk, &share.to_bytes(), context.as_bytes()).unwrap();
    let digest = medsign_phone::approvals::digest(medsign_phone::approvals::Purpose::Grant, context);
    assert_eq!(unlock(&s, &token, PIN, &digest).0, 200);
    let share_path = format!("/mobile/v1/grants/{}/share", g["grant_id"].as_str().unwrap());
    let (st, v) =
        s.json("POST", &share_path, Some(&token), &serde_json::json!({"sealed": hex::encode(&sealed)}).to_string());
    assert_eq!(st, 200, "{v}");
    let auto = serde_json::json!({"kind": "data", "title": "医嘱", "content": "NS 250ml ivgtt qd",
        "signers": [{"employee_no": "3001"}]});
    let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &auto.to_string());
    assert_eq!((st, f["signers"][0]["custody"].as_str()), (201, Some("grant")), "{f}");

    // the thief copies the data directory now, KEK included, and tries
    let copy = Dir::new();
    for f in std::fs::read_dir(d.path("data")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, copy.path(f.file_name().unwrap().to_str().unwrap())).unwrap();
        }
    }
    let kek = medsign_crypto::wrap::Kek::from_bytes(
        &hex::decode(String::from_utf8(copy.read("kek.key")).unwrap().trim()).unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let recovered = rt.block_on(async {
        let url = format!("sqlite://{}?mode=rw", copy.path("medsign.db").display());
        let db = medsign_store::db::Db::open(&url).await.unwrap();
        let rows: Vec<(String, String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT id, context, grant_key_wrapped, share_sealed FROM grants")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert!(rows.iter().any(|r| r.3.is_some()), "the copy holds the sealed share");
        // the way the design before issue #15 opened it: the grant key under the KEK
        rows.iter().find_map(|(id, context, key, sealed)| {
            let raw = kek.unwrap(&hex::decode(key.as_ref()?).ok()?, id.as_bytes()).ok()?;
            let gk = medsign_crypto::sm2::Sm2SecretKey::from_bytes(&raw).ok()?;
            medsign_crypto::seal::open(&gk, &hex::decode(sealed.as_ref()?).ok()?, context.as_bytes()).ok()
        })
    });
    assert!(recovered.is_none(), "d1 came out of a copy of the data directory");

    // cancelled: the sealed share leaves the files too
    let (st, _) = s.json("DELETE", &format!("/mobile/v1/grants/{}", g["grant_id"].as_str().unwrap()), Some(&token), "");
    assert_eq!(st, 200);
    let needle = hex::encode(&sealed[..32]);
    for f in std::fs::read_dir(d.path("data")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            assert!(!text.contains(&needle), "{} still holds the cancelled grant's sealed share", f.display());
        }
    }
}

/// A malicious integration app cannot have the hospital CA certify its own key in a doctor's
/// name: `certs` does not reach the RA endpoint, and an RA must prove possession (a CSR signed
/// by the key) and may only name its own registered organisation.
#[test]
fn an_integration_app_cannot_get_a_certificate_in_a_doctors_name() {
    let d = Dir::new();
    let s = Server::start(&d, &[]);
    let admin = s.token().unwrap();
    let app = |name: &str, scope: &str| {
        let b = serde_json::json!({"name": name, "scopes": [scope]}).to_string();
        s.json("POST", "/admin/v1/apps", Some(&admin), &b).1["token"].as_str().unwrap().to_string()
    };
    let (his, ra) = (app("HIS", "certs"), app("某县人民医院", "ca:enroll"));
    assert_ok(
        &d.openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &d.p("k")]),
        "key",
    );
    assert_ok(&d.openssl(&["pkey", "-in", &d.p("k"), "-pubout", "-out", &d.p("k.pub")]), "pub");
    assert_ok(&d.openssl(&["req", "-new", "-key", &d.p("k"), "-subj", "/CN=x", "-out", &d.p("k.csr")]), "csr");
    let (spki, csr) = (String::from_utf8(d.read("k.pub")).unwrap(), String::from_utf8(d.read("k.csr")).unwrap());
    let enrol = |token: &str, o: &str, csr: Option<&str>| {
        let b = serde_json::json!({"employee_no": "1001", "subject": format!("CN=张三,O={o},C=CN"),
            "public_key": spki, "csr": csr});
        s.json("POST", "/api/v1/ca/enroll", Some(token), &b.to_string())
    };
    assert_eq!(enrol(&his, "某县人民医院", Some(&csr)).0, 403, "an app with `certs`");
    assert_eq!(enrol(&ra, "某县人民医院", None).0, 400, "no proof of possession");
    assert_eq!(enrol(&ra, "另一家医院", Some(&csr)).0, 403, "another organisation");
    let (st, v) = enrol(&ra, "某县人民医院", Some(&csr));
    assert_eq!(st, 201, "{v}");
    // the HIS cannot revoke or hold what the RA holds, nor the hospital's TSA certificate
    let serial = v["serial"].as_str().unwrap();
    assert_eq!(s.json("POST", &format!("/api/v1/certificates/{serial}/hold"), Some(&his), "").0, 403);
    let (_, tsa) = s.json("GET", "/api/v1/certificates?profile=tsa", Some(&admin), "");
    let tsa_serial = tsa["items"][0]["serial"].as_str().unwrap();
    let body = r#"{"reason":"key_compromise"}"#;
    assert_eq!(s.json("POST", &format!("/api/v1/certificates/{tsa_serial}/revoke"), Some(&his), body).0, 403);
}

/// Floods from one address: wrong app tokens are refused with 429 after a burst (before the
/// Argon2 work) and audited, while a known app goes on; the public TSA is limited per address;
/// `X-Forwarded-For` counts only from a configured trusted proxy.
#[test]
fn floods_are_bounded_per_address_and_a_forged_forwarded_header_is_ignored() {
    let d = Dir::new();
    let (s, _ntp, admin, his) = hospital(&d, &[("MEDSIGN_SERVER_PUBLIC_RATE_PER_MINUTE", "60")]);
    assert_eq!(s.json("GET", "/api/v1/users?page_size=1", Some(&his), "").0, 200);
    let statuses: Vec<u16> =
        (0..25).map(|i| s.json("GET", "/api/v1/users", Some(&format!("app_guess.secret{i}")), "").0).collect();
    // 20 at once per address (less what the hospital's own first checks took), then 429
    let checked = statuses.iter().take_while(|&&st| st == 401).count();
    assert!((15..=20).contains(&checked), "{statuses:?}");
    assert!(statuses[checked..].iter().all(|&st| st == 429), "{statuses:?}");
    assert_eq!(s.json("GET", "/api/v1/users?page_size=1", Some(&his), "").0, 200, "the hospital's app goes on");
    let (_, audit) = s.json("GET", "/admin/v1/audit?action=app.authenticate", Some(&admin), "");
    assert_eq!(audit["total"], checked, "every checked failure is audited");

    assert_ok(&d.openssl(&["ts", "-query", "-digest", &"ab".repeat(32), "-sha256", "-out", &d.p("q.tsq")]), "q");
    let tsq = d.read("q.tsq");
    let stamp = |xff: Option<&str>| {
        let mut h = vec![("Content-Type", "application/timestamp-query")];
        if let Some(x) = xff {
            h.push(("X-Forwarded-For", x));
        }
        s.with_headers("POST", "/tsa/rsa", &h, &tsq).0
    };
    let statuses: Vec<u16> = (0..10).map(|i| stamp(Some(&format!("192.0.2.{i}")))).collect();
    assert!(statuses.iter().all(|&st| st == 200), "{statuses:?}");
    assert_eq!(stamp(Some("192.0.2.200")), 429, "a forged X-Forwarded-For does not open a new bucket");

    // behind a trusted proxy the forwarded address is the client's: its own limit, its own audit
    let d2 = Dir::new();
    let (s2, _ntp2, admin2, _) = hospital(
        &d2,
        &[("MEDSIGN_SERVER_PUBLIC_RATE_PER_MINUTE", "60"), ("MEDSIGN_SERVER_TRUSTED_PROXIES", "127.0.0.1")],
    );
    let stamp2 = |xff: &str| {
        s2.with_headers(
            "POST",
            "/tsa/rsa",
            &[("Content-Type", "application/timestamp-query"), ("X-Forwarded-For", xff)],
            &tsq,
        )
        .0
    };
    for _ in 0..10 {
        assert_eq!(stamp2("192.0.2.1"), 200);
    }
    assert_eq!(stamp2("192.0.2.1"), 429);
    assert_eq!(stamp2("198.51.100.1, 192.0.2.2"), 200, "the last hop before the proxy counts");
    let body = r#"{"employee_no":"9","code":"AAAA-BBBB-CCCC","device_name":"x"}"#;
    let h = [("Content-Type", "application/json"), ("X-Forwarded-For", "192.0.2.77")];
    assert_eq!(s2.with_headers("POST", "/mobile/v1/activate", &h, body.as_bytes()).0, 401);
    let (_, audit) = s2.json("GET", "/admin/v1/audit?action=device.activate", Some(&admin2), "");
    assert_eq!(audit["items"][0]["ip"], "192.0.2.77", "{audit}");
}

/// Someone with write access to the database cuts the audit log back and deletes the anchors
/// that covered the cut entries: `medsign audit verify` on the database alone cannot tell, the
/// witness file every anchor was also written to (`[audit] witness_file`) can.
#[test]
fn cutting_the_audit_log_and_its_anchors_together_is_caught_by_the_witness() {
    let d = Dir::new();
    let witness = d.p("witness.jsonl");
    let env = [("MEDSIGN_AUDIT_WITNESS_FILE", witness.as_str()), ("MEDSIGN_AUDIT_ANCHOR_MINUTES", "0")];
    let s = Server::start(&d, &env);
    let admin = s.token().unwrap();
    for i in 0..3 {
        let b = serde_json::json!({"name": format!("系统{i}"), "scopes": ["verify"]}).to_string();
        assert_eq!(s.json("POST", "/admin/v1/apps", Some(&admin), &b).0, 201);
    }
    assert_eq!(s.stop(), 0);
    let s = Server::start(&d, &env);
    assert_eq!(s.stop(), 0, "stopped the moment it listens: still graceful, one more anchor");
    let data = d.p("data");
    let verify = |with_witness: bool| {
        let mut args = vec!["audit", "verify", "--data-dir", data.as_str()];
        if with_witness {
            args.extend(["--witness", witness.as_str()]);
        }
        d.medsign(&args)
    };
    assert_eq!(verify(true).status.code(), Some(0), "{}", text(&verify(true).stdout));
    let anchors = String::from_utf8(d.read("witness.jsonl")).unwrap().lines().count();
    assert!(anchors >= 2, "start and stop anchors are witnessed: {anchors}");
    // cut back both the log and the anchors to the first anchor
    let db = d.p("data/medsign.db");
    let cut = format!(
        "import sqlite3; c = sqlite3.connect('{db}'); s = c.execute('SELECT seq FROM audit_anchors WHERE id = 1').fetchone()[0]; \
         c.execute('DELETE FROM audit_anchors WHERE id > 1'); c.execute('DELETE FROM audit_log WHERE seq > ?', (s,)); c.commit()"
    );
    assert_ok(&d.run("python3", &["-c", &cut]), "cut the log");
    assert_eq!(verify(false).status.code(), Some(0), "the database alone looks whole");
    let o = verify(true);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("not in the database"), "{}", text(&o.stdout));
    // a missing or garbled witness file is a clear error, not a pass
    let o = d.medsign(&["audit", "verify", "--data-dir", &data, "--witness", &d.p("nope.jsonl")]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("witness"), "{}", text(&o.stderr));
    d.write("garbled.jsonl", b"{\"id\": 1}\n");
    let o = d.medsign(&["audit", "verify", "--data-dir", &data, "--witness", &d.p("garbled.jsonl")]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("witness line 1"), "{}", text(&o.stderr));
}

/// A hostile uploader against the real server: a 4.8 KB spreadsheet naming a cell at XFD1048576
/// (it used to abort the process asking for ~512 GiB) is a 400 and the server goes on; a client
/// that sends half a request header is disconnected after `server.header_timeout_seconds`; an
/// unauthenticated request's oversized fields reach the audit log clipped.
#[test]
fn a_hostile_uploader_gets_a_clear_error_and_the_server_goes_on() {
    let d = Dir::new();
    let s = Server::start(&d, &[("MEDSIGN_SERVER_HEADER_TIMEOUT_SECONDS", "1")]);
    let admin = s.token().unwrap();
    let (_, v) =
        s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"HIS","scopes":["users:write","users:read"]}"#);
    let his = v["token"].as_str().unwrap().to_string();
    // the sparse workbook, built with Python's zipfile: one cell at the last column and row
    let make = format!(
        r#"import zipfile
z = zipfile.ZipFile('{}', 'w', zipfile.ZIP_DEFLATED)
z.writestr('[Content_Types].xml', '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
z.writestr('_rels/.rels', '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
z.writestr('xl/workbook.xml', '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
z.writestr('xl/_rels/workbook.xml.rels', '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
z.writestr('xl/worksheets/sheet1.xml', '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>工号</t></is></c></row><row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData></worksheet>')
z.close()"#,
        d.p("sparse.xlsx")
    );
    assert_ok(&d.run("python3", &["-c", &make]), "make the sparse workbook");
    let xlsx = d.read("sparse.xlsx");
    assert!(xlsx.len() < 8192, "{} bytes", xlsx.len());
    let boundary = "medsignboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"sparse.xlsx\"\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&xlsx);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let (st, _, v) = s.req("POST", "/api/v1/users/import", Some(&his), Some(&ctype), &body);
    assert_eq!(st, 400, "{v}");
    assert_envelope(&v, "invalid_request");
    assert_eq!(s.json("GET", "/readyz", None, "").0, 200, "still serving");

    // half a header, then nothing: the server hangs up after the header timeout (1 s here)
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).unwrap_or(0);
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "held open {:?}", started.elapsed());
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"), "{}", String::from_utf8_lossy(&buf[..n]));

    // an anonymous request with a 20 KB staff number: audited, every field clipped
    let no = "9".repeat(20_000);
    let body = serde_json::json!({"employee_no": no, "code": "AAAA-BBBB-CCCC", "device_name": "x"}).to_string();
    assert_eq!(s.json("POST", "/mobile/v1/activate", None, &body).0, 401);
    let (_, audit) = s.json("GET", "/admin/v1/audit?action=device.activate", Some(&admin), "");
    let e = &audit["items"][0];
    let longest = ["actor", "target"].iter().map(|k| e[k].as_str().unwrap_or_default().len()).max().unwrap();
    assert!((1..=300).contains(&longest), "stored {longest} bytes: {e}");
}
