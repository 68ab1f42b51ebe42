//! End-to-end: the real `medsign serve` on a free loopback port with SQLite (issue #3 slice):
//! first start, bootstrap token, health, users API and its error envelope, data-dir lock,
//! restart, audit chain verification and tampering, graceful shutdown.
//!
//! Most tests share one server ([`shared`]): each makes the users it needs under employee
//! numbers of its own and counts only what it made, so they may run in any order, at once.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;

/// The server the tests of this file share, and what they need from it.
struct Shared {
    d: Dir,
    s: Server,
    /// the bootstrap token (every scope)
    token: String,
    /// the token of LIS, an app with `users:read` only
    ro_token: String,
}

/// The shared server: started by the first test that asks (a first start, bodies limited to
/// 64 KiB), with the departments 内科 > 心内科 and the read-only app LIS; stopped when the test
/// process exits.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let d = Dir::new();
        let s = Server::start_until_exit(&d, &[("MEDSIGN_SERVER_MAX_BODY_BYTES", "65536")]);
        let token = s.token().expect("first start prints the bootstrap token");
        // departments first (users refer to them)
        let (st, v) = s.json(
            "POST",
            "/admin/v1/departments",
            Some(&token),
            r#"[{"code":"NK","name":"内科"},{"code":"心内科","name":"心血管内科","parent_code":"NK"}]"#,
        );
        assert_eq!(st, 201, "{v}");
        let ro = d.ok(&["app", "create", "--data-dir", &d.p("data"), "--name", "LIS", "--scopes", "users:read"]);
        let ro_token = ro.trim().lines().last().unwrap().to_string();
        Shared { d, s, token, ro_token }
    })
}

/// Add users through the API (a test's set-up; `body` is one JSON object or an array).
fn add_users(s: &Server, token: &str, body: &str) {
    let (st, v) = s.json("POST", "/api/v1/users", Some(token), body);
    assert_eq!(st, 201, "{body}: {v}");
}

/// The body of `GET path` as text (PEM, CRL).
fn get_raw(s: &Server, path: &str) -> Vec<u8> {
    let mut st = TcpStream::connect(&s.addr).unwrap();
    st.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    st.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    raw[split..].to_vec()
}

/// The smoke scenario: a first start prints the bootstrap token and the KEK warning and is
/// healthy; after a graceful shutdown and a restart the users are still there and no second
/// token is made; the audit chain (with the start and stop anchors) verifies, and editing a row
/// breaks it at that row.
#[test]
fn a_restart_keeps_users_and_the_audit_chain() {
    let d = Dir::new();
    let s = Server::start(&d, &[]);
    let token = s.token().expect("first start prints the bootstrap token");
    assert!(s.stderr_lines.iter().any(|l| l.contains("kek.key")), "KEK warning missing");
    assert_eq!(s.req("GET", "/healthz", None, None, b"").0, 200);
    let (st, _, v) = s.req("GET", "/readyz", None, None, b"");
    assert_eq!((st, v["status"].as_str()), (200, Some("ready")));
    add_users(
        &s,
        &token,
        r#"[{"employee_no":"1002","name":"李四","role":"nurse"},{"employee_no":"1003","name":"王五"}]"#,
    );
    assert_eq!(s.stop(), 0, "graceful shutdown exits 0");

    // restart: everything kept, no new bootstrap token
    let s = Server::start(&d, &[]);
    assert!(s.token().is_none());
    assert_eq!(s.req("GET", "/api/v1/users/1003", Some(&token), None, b"").0, 200);
    assert_eq!(s.stop(), 0);

    // the audit chain verifies; editing a row breaks it at that row
    let out = d.ok(&["audit", "verify", "--data-dir", &d.p("data"), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["broken"].is_null() && v["anchors"].as_i64().unwrap() >= 2, "start/stop anchors: {v}");
    let db = d.p("data/medsign.db");
    let edit = format!(
        "import sqlite3; c = sqlite3.connect('{db}'); c.execute(\"UPDATE audit_log SET target = 'user:9999' WHERE seq = 3\"); c.commit()"
    );
    assert_ok(&d.run("python3", &["-c", &edit]), "edit the audit log");
    let o = d.medsign(&["audit", "verify", "--data-dir", &d.p("data"), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["broken"][0], 3, "{v}");
}

/// A server whose stderr nobody reads any more (the supervisor or pipe that read it went away)
/// still stops on SIGTERM, gracefully (exit 0), instead of panicking on its farewell line and
/// serving on until killed.
#[test]
fn a_server_whose_stderr_reader_is_gone_still_stops_gracefully() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let d = Dir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_medsign"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &d.p("data")])
        .env_remove("MEDSIGN_KEK")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut l = String::new();
        while !l.contains("listening on") {
            l.clear();
            assert_ne!(reader.read_line(&mut l).unwrap(), 0, "the server exited before listening");
        }
    } // the reader is dropped: the pipe has no reader from here on
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not stop on SIGTERM within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// An idle server does not keep a password hash's memory: Argon2id takes 19 MiB for each check
/// (here the bootstrap token's, on its first use), and before the release after each hash, an
/// idle server kept all of it resident, 19 MB more than before the request, until it was next
/// busy (issue #20, goal 5).
#[cfg(target_os = "linux")]
#[test]
fn an_idle_server_gives_back_the_memory_a_password_hash_took() {
    let rss_kb = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().to_string();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let d = Dir::new();
    let s = Server::start(&d, &[]);
    let token = s.token().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let before = rss_kb(s.child.id());
    let (st, v) = s.json("GET", "/admin/v1/apps", Some(&token), "");
    assert_eq!(st, 200, "{v}");
    // longer than the allocator's purge delay (1 s), which an idle server never reaches anyway
    std::thread::sleep(std::time::Duration::from_secs(3));
    let after = rss_kb(s.child.id());
    assert!(after < before + 10 * 1024, "resident {before} kB before the request, {after} kB 3 s after it");
    assert_eq!(s.stop(), 0);
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let Shared { d, .. } = shared();
    let o = d.medsign(&["serve", "--listen", "127.0.0.1:0", "--data-dir", &d.p("data")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("另一个 medsign 进程"), "{}", text(&o.stderr));
}

/// Departments nest (内科 > 心内科, made by the shared set-up); an unknown parent, and a user in
/// an unknown department, are refused.
#[test]
fn departments_nest_and_unknown_ones_are_refused() {
    let Shared { s, token, .. } = shared();
    let (st, v) =
        s.json("POST", "/admin/v1/departments", Some(token), r#"{"code":"X","name":"x","parent_code":"nope"}"#);
    assert_eq!(st, 422, "{v}");
    let (st, _, v) = s.req("GET", "/admin/v1/departments", Some(token), None, b"");
    assert_eq!((st, v["departments"].as_array().map(Vec::len)), (200, Some(2)), "{v}");
    let (st, v) =
        s.json("POST", "/api/v1/users", Some(token), r#"{"employee_no":"0999","name":"某","department":"外星科"}"#);
    assert_eq!((st, v["errors"][0]["field"].as_str()), (422, Some("department")), "{v}");
}

#[test]
fn users_are_created_one_or_many_read_back_and_searched() {
    let Shared { s, token, .. } = shared();
    let (st, v) = s.json(
        "POST",
        "/api/v1/users",
        Some(token),
        r#"{"employee_no":"1001","name":"张三","department":"心内科","id_card":"11010519491231002X"}"#,
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["id_card_masked"], "110105**********2X");
    let (st, v) = s.json(
        "POST",
        "/api/v1/users",
        Some(token),
        r#"[{"employee_no":"1002","name":"李四","role":"nurse"},{"employee_no":"1003","name":"王五"}]"#,
    );
    assert_eq!((st, v["users"].as_array().map(Vec::len)), (201, Some(2)), "{v}");
    let (st, _, v) = s.req("GET", "/api/v1/users/1002", Some(token), None, b"");
    assert_eq!((st, v["name"].as_str(), v["role"].as_str()), (200, Some("李四"), Some("nurse")));

    // (no other test of this file names a user 李…)
    let (st, _, v) = s.req("GET", "/api/v1/users?q=%E6%9D%8E&page_size=10", Some(token), None, b"");
    assert_eq!((st, v["total"].as_i64()), (200, Some(1)), "{v}");
    assert_eq!(v["items"][0]["employee_no"], "1002");
    let (st, _, v) = s.req("GET", "/api/v1/users?page=0", Some(token), None, b"");
    assert_eq!(st, 400);
    assert_envelope(&v, "invalid_request");
    let (st, _, v) = s.req("GET", "/api/v1/users?page=abc&color=red", Some(token), None, b"");
    assert_eq!(st, 400, "{v}");
}

/// Every class of bad input gets the envelope with a precise status.
#[test]
fn bad_requests_get_the_envelope_with_a_precise_status() {
    let Shared { s, token, .. } = shared();
    add_users(s, token, r#"{"employee_no":"2100","name":"赵一"}"#);
    let (st, _, v) = s.req("GET", "/api/v1/users/2100", None, None, b"");
    assert_eq!(st, 401);
    assert_envelope(&v, "unauthorized");
    let (st, _, v) = s.req("GET", "/api/v1/users/2100", Some("app_x.nope"), None, b"");
    assert_eq!(st, 401);
    assert_envelope(&v, "unauthorized");
    let (st, v) = s.json("POST", "/api/v1/users", Some(token), r#"{"employee_no":"#);
    assert_eq!(st, 400);
    assert_envelope(&v, "invalid_request");
    assert!(v["message"].as_str().unwrap().contains("line 1"), "{v}");
    let (st, v) = s.json("POST", "/api/v1/users", Some(token), r#"{"employee_no":"2001","name":"x","salary":1}"#);
    assert_eq!(st, 400);
    assert!(v["message"].as_str().unwrap().contains("salary"), "{v}");
    let (st, v) = s.json("POST", "/api/v1/users", Some(token), r#"{"employee_no":2001,"name":"x"}"#);
    assert_eq!(st, 400, "{v}");
    // a bad ID card, an employee number that exists, one twice in the batch: every row reported
    let (st, v) = s.json(
        "POST",
        "/api/v1/users",
        Some(token),
        r#"[{"employee_no":"2001","name":"a","id_card":"110105194912310021"},{"employee_no":"2100","name":"b"},{"employee_no":"2001","name":"c"}]"#,
    );
    assert_eq!(st, 422, "{v}");
    assert_envelope(&v, "invalid_rows");
    let rows: Vec<(u64, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(rows, vec![(0, "id_card".into()), (1, "employee_no".into()), (2, "employee_no".into())]);
    assert_eq!(s.req("GET", "/api/v1/users/2001", Some(token), None, b"").0, 404, "batch was not all-or-nothing");
    let (st, _, v) = s.req("POST", "/api/v1/users", Some(token), Some("text/csv"), b"a,b");
    assert_eq!(st, 415);
    assert_envelope(&v, "unsupported_media_type");
    let big = format!(r#"{{"employee_no":"3001","name":"{}"}}"#, "x".repeat(70_000));
    let (st, v) = s.json("POST", "/api/v1/users", Some(token), &big);
    assert_eq!(st, 413, "{v}");
    assert_envelope(&v, "payload_too_large");
    let (st, _, v) = s.req("GET", "/api/v1/nothing", Some(token), None, b"");
    assert_eq!(st, 404);
    assert_envelope(&v, "not_found");
}

#[test]
fn a_read_only_app_reads_users_but_cannot_write() {
    let Shared { s, token, ro_token, .. } = shared();
    add_users(s, token, r#"{"employee_no":"4100","name":"钱二"}"#);
    let (st, v) = s.json("POST", "/api/v1/users", Some(ro_token), r#"{"employee_no":"4001","name":"x"}"#);
    assert_eq!(st, 403);
    assert_envelope(&v, "forbidden");
    assert_eq!(s.req("GET", "/api/v1/users/4100", Some(ro_token), None, b"").0, 200);
}

/// HMAC-SM3 signed requests (docs/integration.md): accepted once, replay / stale / altered refused.
#[test]
fn a_signed_request_is_accepted_once_and_replayed_stale_or_altered_ones_are_refused() {
    let Shared { s, token, .. } = shared();
    let (app_id, secret) = token.split_once('.').unwrap();
    let key = medsign_directory::apps::hmac_key(secret);
    let signed = |method: &str, path: &str, query: &str, body: &str, nonce: &str, ts: i64, tamper: bool| {
        let ts = ts.to_string();
        let sig = medsign_directory::apps::sign_request(&key, method, path, query, &ts, nonce, body.as_bytes());
        let sent = if tamper { body.replace("x", "y") } else { body.to_string() };
        let full = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
        let mut st = TcpStream::connect(&s.addr).unwrap();
        let head = format!(
            "{method} {full} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             X-App-Id: {app_id}\r\nX-Timestamp: {ts}\r\nX-Nonce: {nonce}\r\nX-Signature: {sig}\r\n\r\n{sent}",
            sent.len()
        );
        st.write_all(head.as_bytes()).unwrap();
        let mut resp = String::new();
        st.read_to_string(&mut resp).unwrap();
        let code: u16 = resp.split(' ').nth(1).unwrap().parse().unwrap();
        let body: serde_json::Value =
            resp.split_once("\r\n\r\n").map(|(_, b)| serde_json::from_str(b).unwrap_or_default()).unwrap_or_default();
        (code, body)
    };
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"employee_no":"5001","name":"x 签名"}"#;
    assert_eq!(signed("POST", "/api/v1/users", "", body, "n-00000001", now, false).0, 201);
    let (st, v) = signed("POST", "/api/v1/users", "", body, "n-00000001", now, false);
    assert_eq!(st, 401, "replay: {v}");
    assert!(v["message"].as_str().unwrap().contains("replay"), "{v}");
    assert_eq!(signed("POST", "/api/v1/users", "", body, "n-00000002", now - 900, false).0, 401, "stale");
    assert_eq!(signed("POST", "/api/v1/users", "", body, "n-00000003", now, true).0, 401, "altered body");
    let (st, v) = signed("GET", "/api/v1/users", "q=5001&page=1", "", "n-00000004", now, false);
    assert_eq!((st, v["total"].as_i64()), (200, Some(1)), "{v}");
}

/// Spreadsheet import: GBK CSV accepted; a preview (`?dry_run=true`) checks every row and writes
/// nothing; a bad line refuses the whole file, reported by line.
#[test]
fn a_spreadsheet_import_takes_gbk_csv_and_refuses_a_bad_file_whole() {
    let Shared { s, token, .. } = shared();
    let multipart = |content: &[u8]| {
        let mut b = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.csv\"\r\nContent-Type: text/csv\r\n\r\n".to_vec();
        b.extend_from_slice(content);
        b.extend_from_slice(b"\r\n--XyZ--\r\n");
        b
    };
    let gbk: Vec<u8> = b"\xb9\xa4\xba\xc5,\xd0\xd5\xc3\xfb\n".to_vec(); // "工号,姓名" in GBK
    let mut csv = gbk.clone();
    csv.extend_from_slice(b"6001,");
    csv.extend_from_slice(&[0xd5, 0xc5, 0xc8, 0xfd, b'\n']); // 张三
    // the preview checks and shows, writes nothing (not the ID card number itself)
    let mp = Some("multipart/form-data; boundary=XyZ");
    let with_id = "工号,姓名,身份证号,备注\n6010,丙,11010519491231002X,x\n".as_bytes();
    let (st, _, v) = s.req("POST", "/api/v1/users/import?dry_run=true", Some(token), mp, &multipart(with_id));
    assert_eq!(
        (st, v["would_import"].as_i64(), &v["rows"][0]["id_card"]),
        (200, Some(1), &serde_json::json!(true)),
        "{v}"
    );
    assert_eq!((v["rows"][0]["line"].as_i64(), &v["ignored_columns"]), (Some(2), &serde_json::json!(["备注"])), "{v}");
    assert!(!v.to_string().contains("11010519491231002X"), "{v}");
    assert_eq!(s.req("GET", "/api/v1/users/6010", Some(token), None, b"").0, 404, "a preview wrote");
    assert_eq!(s.req("POST", "/api/v1/users/import?dry_run=yes", Some(token), mp, &multipart(with_id)).0, 400);
    let (st, _, v) = s.req("POST", "/api/v1/users/import?dry_run=true", Some(token), mp, &multipart(&csv));
    assert_eq!((st, v["rows"][0]["name"].as_str()), (200, Some("张三")), "{v}");
    let (st, _, v) =
        s.req("POST", "/api/v1/users/import", Some(token), Some("multipart/form-data; boundary=XyZ"), &multipart(&csv));
    assert_eq!((st, v["imported"].as_i64()), (201, Some(1)), "{v}");
    // the same file previewed again: the staff number exists now, by line
    let (st, _, v) = s.req("POST", "/api/v1/users/import?dry_run=true", Some(token), mp, &multipart(&csv));
    assert_eq!((st, v["errors"][0]["row"].as_i64()), (422, Some(2)), "{v}");
    let (_, _, v) = s.req("GET", "/api/v1/users/6001", Some(token), None, b"");
    assert_eq!(v["name"], "张三");
    let bad = "工号,姓名,身份证号\n6002,甲,\n6003,乙,110105194912310021\n".as_bytes();
    let (st, _, v) =
        s.req("POST", "/api/v1/users/import", Some(token), Some("multipart/form-data; boundary=XyZ"), &multipart(bad));
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["errors"][0]["row"], 3, "spreadsheet line: {v}");
    assert_eq!(s.req("GET", "/api/v1/users/6002", Some(token), None, b"").0, 404);
    let (st, _, v) = s.req(
        "POST",
        "/api/v1/users/import",
        Some(token),
        Some("multipart/form-data; boundary=XyZ"),
        &multipart(b"PK\x03\x04broken"),
    );
    assert_eq!(st, 400);
    assert!(v["message"].as_str().unwrap().contains("XLSX"), "{v}");
    let (st, _, _) = s.req("POST", "/api/v1/users/import", Some(token), Some("application/json"), b"{}");
    assert_eq!(st, 400);
    let (st, headers, _) = s.req("GET", "/api/v1/users/import/template.csv", Some(token), None, b"");
    assert!(st == 200 && headers.contains("text/csv"), "{headers}");
}

/// Idempotency-Key: a retry replays the first answer, another request with the key is a 409.
#[test]
fn a_retry_with_the_same_idempotency_key_replays_the_first_answer() {
    let Shared { s, token, .. } = shared();
    let idem = |key: &str, body: &str| {
        let mut st = TcpStream::connect(&s.addr).unwrap();
        let req = format!(
            "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        st.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        st.read_to_string(&mut resp).unwrap();
        let code: u16 = resp.split(' ').nth(1).unwrap().parse().unwrap();
        (code, resp.to_lowercase().contains("idempotent-replayed: true"))
    };
    let one = r#"{"employee_no":"7001","name":"重试"}"#;
    assert_eq!(idem("order-42", one), (201, false));
    assert_eq!(idem("order-42", one), (201, true), "retry not replayed");
    assert_eq!(idem("order-42", r#"{"employee_no":"7002","name":"别的"}"#).0, 409);
    assert_eq!(idem("bad key", one).0, 400);
}

#[test]
fn users_are_edited_disabled_and_deleted() {
    let Shared { s, token, .. } = shared();
    add_users(s, token, r#"[{"employee_no":"8001","name":"孙三"},{"employee_no":"8002","name":"周四"}]"#);
    let (st, v) = s.json("PATCH", "/api/v1/users/8001", Some(token), r#"{"title":"主治医师","status":"disabled"}"#);
    assert_eq!((st, v["status"].as_str(), v["title"].as_str()), (200, Some("disabled"), Some("主治医师")), "{v}");
    let (st, v) = s.json("PATCH", "/api/v1/users/8001", Some(token), r#"{"status":"retired"}"#);
    assert_eq!(st, 400, "{v}");
    assert_eq!(s.req("DELETE", "/api/v1/users/8002", Some(token), None, b"").0, 204);
    assert_eq!(s.req("GET", "/api/v1/users/8002", Some(token), None, b"").0, 404);
    assert_eq!(s.req("DELETE", "/api/v1/users/8002", Some(token), None, b"").0, 404);
}

/// Apps through the admin API: create (token once), list (no secrets), disable takes effect at once.
#[test]
fn apps_are_listed_without_secrets_and_a_disabled_one_is_refused_at_once() {
    let Shared { s, token, .. } = shared();
    add_users(s, token, r#"{"employee_no":"9100","name":"吴五"}"#);
    let (st, v) = s.json("POST", "/admin/v1/apps", Some(token), r#"{"name":"EMR","scopes":["users:read"]}"#);
    assert_eq!(st, 201, "{v}");
    let emr = v["token"].as_str().unwrap().to_string();
    assert_eq!(s.req("GET", "/api/v1/users/9100", Some(&emr), None, b"").0, 200);
    // the bootstrap app, LIS, EMR
    let (_, _, list) = s.req("GET", "/admin/v1/apps", Some(token), None, b"");
    assert!(list["apps"].as_array().unwrap().len() >= 3 && !list.to_string().contains(emr.split_once('.').unwrap().1));
    let emr_id = v["app_id"].as_str().unwrap();
    assert_eq!(s.req("POST", &format!("/admin/v1/apps/{emr_id}/disable"), Some(token), None, b"").0, 204);
    assert_eq!(s.req("GET", "/api/v1/users/9100", Some(&emr), None, b"").0, 401, "disabled app still authenticated");
    assert_eq!(s.req("POST", &format!("/admin/v1/apps/{emr_id}/enable"), Some(token), None, b"").0, 204);
    assert_eq!(s.req("GET", "/api/v1/users/9100", Some(&emr), None, b"").0, 200);
    assert_eq!(s.req("POST", "/admin/v1/apps/app_nope/disable", Some(token), None, b"").0, 404);
    let (st, _) = s.json("POST", "/admin/v1/apps", Some(token), r#"{"name":"x","scopes":["root"]}"#);
    assert_eq!(st, 400);
}

/// The admin audit API: query, CSV, chain check; only with the admin scope.
#[test]
fn the_audit_log_is_queried_exported_and_verified_with_the_admin_scope_only() {
    let Shared { s, token, ro_token, .. } = shared();
    for no in ["9201", "9202", "9203", "9204", "9205"] {
        add_users(s, token, &format!(r#"{{"employee_no":"{no}","name":"郑六"}}"#));
    }
    let (st, _, v) = s.req("GET", "/admin/v1/audit?action=user.create&page_size=5", Some(token), None, b"");
    assert_eq!(st, 200, "{v}");
    assert!(v["total"].as_i64().unwrap() >= 5 && v["items"].as_array().unwrap().len() == 5, "{v}");
    assert_eq!(v["items"][0]["action"], "user.create");
    let (st, headers, _) = s.req("GET", "/admin/v1/audit.csv?target=user:9201", Some(token), None, b"");
    assert!(st == 200 && headers.contains("text/csv"), "{headers}");
    // the export is the whole log, oldest first, streamed in chunks of 1,000: as many rows as
    // entries, each once (other tests write meanwhile: rows are counted up to the head read before
    // the export). 1,100 more users make sure the log spans more than one chunk.
    for part in 0..2 {
        let many: Vec<String> =
            (0..550).map(|i| format!(r#"{{"employee_no":"93{part}{i:03}","name":"归档"}}"#)).collect();
        add_users(s, token, &format!("[{}]", many.join(",")));
    }
    let (_, _, v) = s.req("GET", "/admin/v1/audit?page_size=1", Some(token), None, b"");
    let head = v["items"][0]["seq"].as_i64().unwrap();
    let (st, _, csv) = s.raw("GET", "/admin/v1/audit.csv", Some(token), None, b"");
    assert_eq!(st, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("\u{feff}seq,at,kind"), "{}", &csv[..80.min(csv.len())]);
    let seqs: Vec<i64> = csv.lines().skip(1).filter_map(|l| l.split(',').next()?.parse().ok()).collect();
    assert!(head > 1000, "{head}");
    assert_eq!(seqs.iter().copied().filter(|q| *q <= head).collect::<Vec<_>>(), (1..=head).collect::<Vec<_>>());
    let (st, _, v) = s.req("GET", "/admin/v1/audit.csv?page=2", Some(token), None, b"");
    assert_eq!(st, 400, "the export is not paged: {v}");
    assert!(v["message"].as_str().unwrap().contains("page"), "{v}");
    assert_eq!(s.req("GET", "/admin/v1/audit.csv?kind=gossip", Some(token), None, b"").0, 400);
    // the console's other new reads refuse what is wrong in the envelope
    for (path, want) in [
        ("/admin/v1/batches?limit=0", 400),
        ("/admin/v1/batches?limit=201", 400),
        ("/admin/v1/batches?limit=x", 400),
        ("/admin/v1/batches?size=5", 400),
        ("/admin/v1/batches/bj_nope", 404),
        ("/api/v1/users/nobody/devices", 404),
        ("/api/v1/users/9201/devices", 200),
    ] {
        let (st, _, v) = s.req("GET", path, Some(token), None, b"");
        assert_eq!(st, want, "{path}: {v}");
        if want != 200 {
            assert!(v["code"].is_string() && v["message"].is_string(), "{path}: {v}");
        }
    }
    let (st, _, v) = s.req("GET", "/admin/v1/audit/verify", Some(token), None, b"");
    assert_eq!((st, v["broken"].is_null()), (200, true), "{v}");
    assert_eq!(s.req("GET", "/admin/v1/audit", Some(ro_token), None, b"").0, 403);
    assert_eq!(s.req("GET", "/admin/v1/users/9201", Some(ro_token), None, b"").0, 403, "admin mirror needs admin");
    assert_eq!(s.req("GET", "/admin/v1/users/9201", Some(token), None, b"").0, 200);
    assert_eq!(s.req("GET", "/admin/v1/audit?from=yesterday", Some(token), None, b"").0, 400);
}

/// The built-in CAs: two hierarchies, chains that validate (ours; OpenSSL for RSA).
#[test]
fn the_built_in_cas_are_two_hierarchies_whose_chains_validate() {
    let Shared { s, .. } = shared();
    let w = Dir::new();
    let all = medsign_pki::cert::Cert::load_all(&get_raw(s, "/pki/ca.pem")).unwrap();
    assert_eq!(all.len(), 4);
    for path in ["/pki/sm2/ca.pem", "/pki/rsa/ca.pem"] {
        let h = medsign_pki::cert::Cert::load_all(&get_raw(s, path)).unwrap();
        assert_eq!(h.len(), 2, "{path}");
        let opts = medsign_pki::path::PathOptions::at(chrono::Utc::now());
        assert!(medsign_pki::path::validate(&h[1], &[], &h[..1], &opts).is_ok(), "{path}");
    }
    let rsa = medsign_pki::cert::Cert::load_all(&get_raw(s, "/pki/rsa/ca.pem")).unwrap();
    w.write("rsa-root.pem", rsa[0].to_pem().as_bytes());
    w.write("rsa-issuing.pem", rsa[1].to_pem().as_bytes());
    assert_ok(
        &w.openssl(&["verify", "-x509_strict", "-CAfile", "rsa-root.pem", "rsa-issuing.pem"]),
        "OpenSSL on the RSA issuing CA",
    );
}

/// A staff certificate from a CSR (SM2), read back, revoked, listed in the CRL, renewed; OpenSSL
/// checks the leaf and reads the CRL.
#[test]
fn a_staff_certificate_is_issued_revoked_listed_in_the_crl_and_renewed() {
    let Shared { s, token, ro_token, .. } = shared();
    let w = Dir::new();
    add_users(s, token, r#"{"employee_no":"1101","name":"张三","department":"心内科"}"#);
    w.ok(&["keygen", "--alg", "sm2", "--out", "staff.key"]);
    let staff = medsign_crypto::signer::KeySigner::new(
        medsign_crypto::PrivateKey::from_bytes(&w.read("staff.key"), None).unwrap(),
    );
    let csr = medsign_pki::csr::build(&medsign_pki::name::parse_dn("CN=x").unwrap(), &staff).unwrap();
    let body = serde_json::json!({"csr": csr}).to_string();
    let (st, v) = s.json("POST", "/api/v1/users/1101/certificates", Some(token), &body);
    assert_eq!(st, 201, "{v}");
    assert!(v["subject"].as_str().unwrap().starts_with("CN=张三,OU=心内科"), "{v}");
    let serial = v["serial"].as_str().unwrap().to_string();
    w.write("staff.pem", v["certificate_pem"].as_str().unwrap().as_bytes());
    let sm2 = medsign_pki::cert::Cert::load_all(&get_raw(s, "/pki/sm2/ca.pem")).unwrap();
    w.write("sm2-issuing.pem", sm2[1].to_pem().as_bytes());
    assert_ok(
        &w.openssl(&[
            "verify",
            "-vfyopt",
            "distid:1234567812345678",
            "-partial_chain",
            "-CAfile",
            "sm2-issuing.pem",
            "staff.pem",
        ]),
        "OpenSSL on the issued SM2 staff certificate",
    );
    assert_eq!(
        s.json("POST", "/api/v1/users/1101/certificates", Some(token), &body).0,
        409,
        "second active SM2 certificate"
    );
    assert_eq!(s.json("POST", "/api/v1/users/nobody/certificates", Some(token), &body).0, 404);
    assert_eq!(s.json("POST", "/api/v1/users/1101/certificates", Some(token), r#"{"csr":"junk"}"#).0, 400);
    assert_eq!(s.req("GET", &format!("/api/v1/certificates/{serial}"), Some(token), None, b"").0, 200);
    assert_eq!(
        s.req("GET", &format!("/api/v1/certificates/{serial}"), Some(ro_token), None, b"").0,
        403,
        "certs scope"
    );
    let (st, v) =
        s.json("POST", &format!("/api/v1/certificates/{serial}/revoke"), Some(token), r#"{"reason":"key_compromise"}"#);
    assert_eq!((st, v["status"].as_str()), (200, Some("revoked")), "{v}");
    assert_eq!(
        s.json("POST", &format!("/api/v1/certificates/{serial}/revoke"), Some(token), r#"{"reason":"key_compromise"}"#)
            .0,
        409
    );
    w.write("sm2.crl", &get_raw(s, "/pki/crl"));
    let o = w.openssl(&["crl", "-inform", "DER", "-in", "sm2.crl", "-noout", "-text"]);
    assert_ok(&o, "openssl crl");
    assert!(text(&o.stdout).contains(&serial) && text(&o.stdout).contains("Key Compromise"), "{}", text(&o.stdout));
    assert_eq!(s.req("GET", "/pki/crl?ca=dsa", None, None, b"").0, 400);
    // a new certificate, renewed with the same key; the list shows both, one active
    let (st, v) = s.json("POST", "/api/v1/users/1101/certificates", Some(token), &body);
    assert_eq!(st, 201, "{v}");
    let (st, r) =
        s.json("POST", &format!("/api/v1/certificates/{}/renew", v["serial"].as_str().unwrap()), Some(token), "{}");
    assert_eq!(st, 201, "{r}");
    let (st, _, l) = s.req("GET", "/api/v1/certificates?employee_no=1101&status=active", Some(token), None, b"");
    assert_eq!(
        (st, l["total"].as_i64(), l["items"][0]["serial"].as_str()),
        (200, Some(1), r["serial"].as_str()),
        "{l}"
    );
    assert_eq!(
        s.json("POST", &format!("/api/v1/certificates/{serial}/renew"), Some(token), "{}").0,
        409,
        "renewing a revoked certificate"
    );
}

/// OpenAPI 3.1 generated from the code, an example for every call; Swagger UI served locally.
#[test]
fn the_openapi_document_has_an_example_for_every_call_and_swagger_ui_is_served() {
    let Shared { s, .. } = shared();
    let (st, _, api) = s.req("GET", "/api/openapi.json", None, None, b"");
    assert_eq!(st, 200);
    assert!(api["openapi"].as_str().unwrap().starts_with("3.1"), "{}", api["openapi"]);
    for (path, method) in [
        ("/api/v1/users", "post"),
        ("/api/v1/users", "get"),
        ("/api/v1/users/{employee_no}", "get"),
        ("/api/v1/users/{employee_no}", "patch"),
        ("/api/v1/users/{employee_no}", "delete"),
        ("/api/v1/users/import", "post"),
        ("/admin/v1/departments", "post"),
        ("/admin/v1/audit", "get"),
        ("/healthz", "get"),
        ("/api/v1/users/{employee_no}/certificates", "post"),
        ("/api/v1/certificates/{serial}/hold", "post"),
        ("/api/v1/certificates/expiring", "get"),
        ("/api/v1/ca/enroll", "post"),
        ("/pki/ocsp", "post"),
        ("/pki/ocsp/{request}", "get"),
        ("/tsa/{profile}", "post"),
        ("/api/v1/timestamps", "post"),
        ("/api/v1/timestamps/verify", "post"),
        ("/api/v1/sign-flows", "post"),
        ("/api/v1/sign-flows/{flow_id}", "get"),
        ("/api/v1/sign-flows/{flow_id}/revoke", "post"),
        ("/api/v1/sign-flows/{flow_id}/file", "get"),
        ("/api/v1/verify/data", "post"),
        ("/api/v1/verify/file", "post"),
        ("/api/v1/batches", "post"),
        ("/api/v1/batches/{batch_id}", "get"),
        ("/admin/v1/ca-channels", "post"),
        ("/admin/v1/ca-channels/{id}/activate", "post"),
        ("/admin/v1/time", "get"),
        ("/admin/v1/timestamps", "get"),
        ("/admin/v1/seals", "post"),
        ("/admin/v1/users/{employee_no}/custody", "post"),
        ("/admin/v1/webhooks", "get"),
        ("/api/v1/documents/from-template", "post"),
        ("/api/v1/templates", "get"),
        ("/api/v1/sign-flows/{flow_id}/tickets", "post"),
        ("/api/v1/users/{employee_no}/handwriting", "post"),
        ("/api/v1/users/{employee_no}/handwriting.png", "get"),
        ("/admin/v1/templates/{id}", "put"),
        ("/admin/v1/templates/{id}", "get"),
        ("/admin/v1/seals/{seal}/image", "put"),
        ("/admin/v1/seals/{seal}/image.png", "get"),
        ("/api/v1/users/{employee_no}/activation-codes", "post"),
        ("/mobile/v1/activate", "post"),
        ("/mobile/v1/keys", "post"),
        ("/mobile/v1/keys/{key_id}", "post"),
        ("/mobile/v1/pending", "get"),
        ("/mobile/v1/sign-rounds", "post"),
        ("/mobile/v1/sign-rounds/answers", "post"),
        ("/mobile/v1/sign-rounds/signatures", "post"),
        ("/api/v1/login-tickets", "post"),
        ("/api/v1/login-tickets/{ticket_id}", "get"),
        ("/api/v1/login-tickets/{ticket_id}/events", "get"),
        ("/mobile/v1/login-tickets/{ticket_id}/scan", "post"),
        ("/mobile/v1/login-tickets/{ticket_id}/refuse", "post"),
        ("/mobile/v1/systems", "get"),
        ("/mobile/v1/grants", "post"),
        ("/mobile/v1/grants", "get"),
        ("/mobile/v1/grants/{grant_id}", "delete"),
        ("/mobile/v1/grants/{grant_id}/share", "post"),
        ("/mobile/v1/pin", "post"),
        ("/mobile/v1/unlock", "post"),
        ("/mobile/v1/records", "get"),
        ("/mobile/v1/device", "delete"),
        ("/mobile/v1/handwriting", "post"),
        ("/api/v1/sign-tickets/{ticket_id}/events", "get"),
        ("/mobile/v1/realname", "post"),
        ("/mobile/v1/realname/{check_id}", "post"),
        ("/api/v1/users/{employee_no}/realname", "get"),
        ("/mobile/v1/certificate/renew", "post"),
        ("/mobile/v1/certificate/csr", "post"),
        ("/mobile/v1/certificate/csr/answer", "post"),
        ("/mobile/v1/certificate/csr/finish", "post"),
        ("/api/v1/sign-flows/{flow_id}/evidence.pdf", "get"),
        ("/api/v1/evidence", "post"),
    ] {
        let op = &api["paths"][path][method];
        assert!(op.is_object(), "{method} {path} not documented");
        let text = op.to_string();
        assert!(
            text.contains("\"example\"") || text.contains("\"examples\""),
            "{method} {path} has no example: {text}"
        );
    }
    assert!(api["components"]["securitySchemes"]["bearer"].is_object());
    let (st, headers, _) = s.req("GET", "/api/docs/", None, None, b"");
    assert!(st == 200 && headers.contains("text/html"), "{st} {headers}");
    // Swagger UI is given the spec (it showed "no API definition provided"); Chromium counts the
    // operations it shows in web/e2e/console.test.mjs
    let (st, _, init) = s.raw("GET", "/api/docs/swagger-initializer.js", None, None, b"");
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&init).contains("/api/openapi.json"), "{}", String::from_utf8_lossy(&init));
    // the landing page: what this is and where to go, Chinese first
    let (st, headers, page) = s.raw("GET", "/", None, None, b"");
    let page = String::from_utf8(page).unwrap();
    assert!(st == 200 && headers.contains("text/html") && headers.contains("default-src 'self'"), "{st} {headers}");
    for link in ["href=\"/api/docs/\"", "/m/\"", "href=\"/verify\"", "href=\"/readyz\"", "接口文档", "API docs"] {
        assert!(page.contains(link), "{link} missing: {page}");
    }
    assert!(!page.contains("{{"), "a placeholder left: {page}");
}

/// Prometheus metrics count requests by route and status.
#[test]
fn metrics_count_requests_by_route_and_status() {
    let Shared { s, token, .. } = shared();
    add_users(s, token, r#"{"employee_no":"9301","name":"冯七"}"#);
    assert_eq!(s.req("GET", "/api/v1/users/9301", Some(token), None, b"").0, 200);
    let mut st = TcpStream::connect(&s.addr).unwrap();
    st.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut m = String::new();
    st.read_to_string(&mut m).unwrap();
    assert!(m.contains("text/plain; version=0.0.4"), "{m}");
    assert!(
        m.contains(r#"medsign_http_requests_total{method="GET",route="/api/v1/users/{employee_no}",status="200"}"#),
        "{m}"
    );
    assert!(m.contains(r#"medsign_http_request_duration_seconds_count{route="/api/v1/users"}"#), "{m}");
    assert!(m.contains("medsign_db_pool_connections{state=\"open\"}"), "{m}");
}

#[test]
fn the_request_id_of_an_error_comes_back_in_the_header() {
    let Shared { s, token, .. } = shared();
    let (_, headers, v) = s.req("GET", "/api/v1/users/nobody", Some(token), None, b"");
    assert!(headers.to_lowercase().contains(&format!("x-request-id: {}", v["request_id"].as_str().unwrap())));
}

/// HTTPS served by medsign itself (optional; nginx in front is the documented default).
#[test]
fn serve_over_tls() {
    let d = Dir::new();
    d.ok(&["keygen", "--alg", "p256", "--out", "tls.key"]);
    d.ok(&["cert", "new-ca", "--key", "tls.key", "--subject", "CN=127.0.0.1,O=某县人民医院,C=CN", "--out", "tls.pem"]);
    let (cert, key) = (d.p("tls.pem"), d.p("tls.key"));
    let s = Server::start(&d, &[("MEDSIGN_SERVER_TLS_CERT", cert.as_str()), ("MEDSIGN_SERVER_TLS_KEY", key.as_str())]);
    assert!(s.stderr_lines.iter().any(|l| l.contains("https://")), "{:#?}", s.stderr_lines);
    let url = format!("https://{}/healthz", s.addr);
    let o = d.run("curl", &["-sk", "--max-time", "10", &url]);
    assert_ok(&o, "curl over TLS");
    assert!(text(&o.stdout).contains("\"ok\""), "{}", text(&o.stdout));
    let plain = d.run("curl", &["-s", "--max-time", "5", &format!("http://{}/healthz", s.addr)]);
    assert!(!text(&plain.stdout).contains("\"ok\""), "plain HTTP answered on the TLS port");
    assert_eq!(s.stop(), 0);
    // only one of the two: refused with a clear message
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_medsign"));
    let o = c
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &d.p("data3")])
        .env("MEDSIGN_SERVER_TLS_CERT", &cert)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("tls_key"), "{}", text(&o.stderr));
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let d = Dir::new();
    d.write("bad.toml", b"[server]\nlisen = 1\n");
    let o = d.medsign(&["serve", "--config", "bad.toml", "--data-dir", &d.p("data")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("lisen"), "{}", text(&o.stderr));
    let o = d.medsign(&["serve", "--data-dir", &d.p("data"), "--database-url", "mysql://x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("sqlite://"), "{}", text(&o.stderr));
    let o = d.medsign(&["app", "create", "--data-dir", &d.p("data"), "--name", "x", "--scopes", "root"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("root"), "{}", text(&o.stderr));
    // a font file that is not a font: refused at start, not at the first signature
    d.write("not-a-font.otf", b"hello");
    d.write("font.toml", format!("[sign]\nfont_file = \"{}\"\n", d.p("not-a-font.otf")).as_bytes());
    let o = d.medsign(&["serve", "--config", &d.p("font.toml"), "--data-dir", &d.p("data")]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("font_file"), "{}", text(&o.stderr));
}

/// The same server on PostgreSQL (R4.7 clusters share one database): users, restart, audit.
#[test]
fn serve_on_postgresql() {
    let Some(admin) = std::env::var("MEDSIGN_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(std::env::var("CI").is_err(), "CI must test PostgreSQL: run scripts/test");
        eprintln!("note: PostgreSQL not tested (MEDSIGN_TEST_POSTGRES_URL unset; scripts/test sets it)");
        return;
    };
    let d = Dir::new();
    let name = format!("medsign_e2e_{}", std::process::id());
    assert_ok(&d.run("psql", &[&admin, "-q", "-c", &format!("DROP DATABASE IF EXISTS {name}")]), "psql drop");
    assert_ok(&d.run("psql", &[&admin, "-q", "-c", &format!("CREATE DATABASE {name}")]), "psql create");
    let url = format!("{}/{name}", &admin[..admin.rfind('/').unwrap()]);
    let s = Server::start(&d, &[("MEDSIGN_DATABASE_URL", url.as_str())]);
    assert!(s.stderr_lines.iter().any(|l| l.contains("postgres://")), "{:#?}", s.stderr_lines);
    let token = s.token().expect("bootstrap token");
    let (st, v) = s.json(
        "POST",
        "/api/v1/users",
        Some(&token),
        r#"[{"employee_no":"P1","name":"赵六"},{"employee_no":"P2","name":"钱七"}]"#,
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) = s.json("POST", "/api/v1/users", Some(&token), r#"{"employee_no":"P1","name":"again"}"#);
    assert_eq!(st, 422, "{v}");
    assert_eq!(s.req("GET", "/readyz", None, None, b"").0, 200);
    assert_eq!(s.stop(), 0);
    let s = Server::start(&d, &[("MEDSIGN_DATABASE_URL", url.as_str())]);
    assert!(s.token().is_none(), "restart made a second bootstrap token");
    let (st, _, v) = s.req("GET", "/api/v1/users/P2", Some(&token), None, b"");
    assert_eq!((st, v["name"].as_str()), (200, Some("钱七")));
    assert_eq!(s.stop(), 0);
    let out = d.ok(&["audit", "verify", "--database-url", &url]);
    // bootstrap app, the users, the three TSA certificates (SM2, RSA, P-256) recorded at first
    // start, and three new ones after the restart on another port (their CRL/OCSP links name the
    // URL served)
    assert!(out.contains("intact") && out.contains("9 条"), "{out}");
    assert_ok(&d.run("psql", &[&admin, "-q", "-c", &format!("DROP DATABASE {name}")]), "psql drop");
}

/// Console scan-to-login is asked for by people not logged in yet: at most 20 wait at once, from
/// whatever addresses (each address also has its own rate limit, which this test stays under).
#[test]
fn no_more_than_twenty_console_qr_logins_wait_at_once() {
    let Shared { s, .. } = shared();
    let ask = |host: u8| {
        let from = std::net::IpAddr::from([127, 0, 2, host]);
        try_request_from(Some(from), &s.addr, "POST", "/console/v1/qr-login", &[], b"").unwrap()
    };
    for host in 1..=20 {
        let (st, headers, body) = ask(host);
        assert_eq!(st, 201, "{host}: {}", String::from_utf8_lossy(&body));
        assert!(headers.to_ascii_lowercase().contains("set-cookie: medsign_console_qr="), "{headers}");
    }
    let (st, _, body) = ask(21);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("too many QR logins waiting"), "the cap, not the address's rate limit: {body}");
}
