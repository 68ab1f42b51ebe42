//! `medsign-client` (issue #19), and the Python and Java clients (`clients/`), against the real binary: HMAC-SM3 signed and Bearer requests,
//! typed users and flows, the error envelope, downloads by document number, verification, a
//! webhook checked with the client's function, and a flow whose answer was lost on the way —
//! retried with its idempotency key and made once.

mod common;
use common::*;
use medsign_client::{Client, Error, NewFlow, webhook_is_signed};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// One HTTP/1.1 message (head and Content-Length body) from `s`.
fn read_message(s: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let (mut out, mut len) = (Vec::new(), 0usize);
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        out.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    out.extend_from_slice(&body);
    Some(out)
}

/// A hop in front of `upstream` (tests only) that carries the first request to the server and
/// then drops the connection before the answer reaches the client — the server did the work, the
/// client never heard; every later request goes through whole.
fn lossy_hop(upstream: String) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(client) = conn else { continue };
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let mut from_client = BufReader::new(client.try_clone().unwrap());
                let mut client = client;
                while let Some(req) = read_message(&mut from_client) {
                    let server = TcpStream::connect(&upstream).unwrap();
                    (&server).write_all(&req).unwrap();
                    let answer = read_message(&mut BufReader::new(server));
                    if n == 0 {
                        return; // the answer is lost: the connection closes without it
                    }
                    if client.write_all(&answer.unwrap_or_default()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_signs_retries_downloads_and_verifies() {
    let d = Dir::new();
    let (_ntp, s, admin) = synced_server(&d);
    let token = his_app(&s, &admin);
    let base = format!("http://{}", s.addr);
    let c = Client::signed(&base, &token).unwrap();

    // users: created, then read typed; the error envelope of an unknown one
    let made = c.create_users(&serde_json::json!([{"employee_no": "7101", "name": "冯医生"}])).await.unwrap();
    assert_eq!(made["users"].as_array().map(|a| a.len()), Some(1), "{made}");
    let u = c.user("7101").await.unwrap();
    assert_eq!((u.name.as_str(), u.certificate.is_none()), ("冯医生", true));
    match c.user("nobody").await {
        Err(Error::Api { status: 404, code, request_id, .. }) => assert!(code == "not_found" && !request_id.is_empty()),
        other => panic!("{other:?}"),
    }
    // a query typed unescaped is signed as it is sent
    let page: serde_json::Value = c.call("GET", "/api/v1/users?q=冯&page_size=5", None).await.unwrap();
    assert_eq!(page["total"], 1, "{page}");
    // a wrong secret signs nothing the server accepts
    let wrong = Client::signed(&base, &format!("{}.{}", token.split('.').next().unwrap(), "0".repeat(64))).unwrap();
    assert!(matches!(wrong.user("7101").await, Err(Error::Api { status: 401, .. })));

    // a data flow sealed at once, with a webhook; read back by its document number; its CMS
    // downloaded and verified over the content
    let (hook, hooks) = receiver();
    let f = c.create_flow(&NewFlow::data("检验报告 S7101", "WBC 6.1").seal("hospital").callback(&hook)).await.unwrap();
    assert_eq!(f.state, "completed");
    assert_eq!(c.flow(&f.doc_no).await.unwrap().id, f.id);
    let mut cms = Vec::new();
    let n = c.download(&f.doc_no, Some("p7s"), &mut cms).await.unwrap();
    assert!(n > 500 && n as usize == cms.len());
    assert_eq!(c.verify_data(&cms, b"WBC 6.1").await.unwrap()["indication"], "TOTAL_PASSED");
    assert_ne!(c.verify_data(&cms, b"WBC 9.9").await.unwrap()["indication"], "TOTAL_PASSED");
    let (head, body) = hooks.recv_timeout(std::time::Duration::from_secs(30)).expect("a webhook");
    assert!(webhook_is_signed(
        &token,
        header(&head, "x-medsign-timestamp"),
        &body,
        header(&head, "x-medsign-signature")
    ));
    assert!(!webhook_is_signed(
        &token,
        header(&head, "x-medsign-timestamp"),
        &body.replace("completed", "revoked"),
        header(&head, "x-medsign-signature")
    ));

    // a lab report from the template, with the Bearer client; the PDF verifies
    let bearer = Client::bearer(&base, &token).unwrap();
    let lab = serde_json::json!({"hospital": "某县人民医院", "patient_name": "王小明", "gender": "男", "age": "45岁",
        "patient_id": "P7101", "sample_no": "S7101", "department": "内科", "specimen": "血清",
        "items": [{"code": "GLU", "name": "葡萄糖", "result": "5.1", "unit": "mmol/L", "reference": "3.9–6.1"}]});
    let f =
        bearer.create_flow(&NewFlow::template("检验报告单 S7101", "lab-report", lab).seal("hospital")).await.unwrap();
    let mut pdf = Vec::new();
    bearer.download(&f.id, None, &mut pdf).await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(bearer.verify_file(&pdf).await.unwrap()["indication"], "TOTAL_PASSED");

    // the answer of a creation lost on the way: the retry carries the same Idempotency-Key and
    // gets the flow the first attempt made — one flow, not two
    let hop = lossy_hop(s.addr.clone());
    let through = Client::signed(&hop, &token).unwrap();
    let f = through.create_flow(&NewFlow::data("住院病历 ZY7101", "病程记录").scan("7101", None)).await.unwrap();
    assert_eq!(f.state, "signing");
    assert!(f.ticket.is_some(), "the scan signer's ticket");
    let (st, page) = s.json("GET", "/admin/v1/sign-flows?q=ZY7101", Some(&admin), "");
    assert_eq!((st, page["total"].as_i64()), (200, Some(1)), "made once: {page}");
    assert_eq!(c.revoke(&f.doc_no, "示例 / example").await.unwrap().state, "revoked");

    // a prescription scan-signed (R7.4.8): the doctor's phone (played here) scans the ticket while
    // the client polls; then the PDF is downloaded and verifies with both signatures
    let phone = s.endpoint();
    let (session, share) = phone_enrol(&s, &phone, &token, "7101");
    let f = c
        .create_flow(
            &NewFlow::template("门诊处方笺 MZ7101", "outpatient-prescription", prescription())
                .scan("7101", Some("doctor"))
                .seal("hospital"),
        )
        .await
        .unwrap();
    let link = f.ticket.as_ref().and_then(|t| t["deep_link"].as_str()).expect("the ticket's link").to_string();
    let doctor = std::thread::spawn(move || scan_and_sign(&phone, &session, &share, &link));
    let mut state = f.state.clone();
    for _ in 0..240 {
        state = c.flow(&f.id).await.unwrap().state;
        if state != "signing" && state != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    doctor.join().unwrap();
    assert_eq!(state, "completed");
    let mut pdf = Vec::new();
    c.download(&f.doc_no, None, &mut pdf).await.unwrap();
    let v = c.verify_file(&pdf).await.unwrap();
    assert_eq!(v["indication"], "TOTAL_PASSED", "{v}");
    // a path that would walk elsewhere is refused before anything is sent
    assert!(matches!(c.user("..").await, Err(Error::Config(_))));
}

/// A prescription's data (the shipped `outpatient-prescription` template).
fn prescription() -> serde_json::Value {
    serde_json::json!({"hospital": "某县人民医院", "category": "普通", "fee_type": "医保", "department": "内科",
        "outpatient_no": "MZ7101", "patient_name": "王小明", "gender": "男", "age": "45岁", "diagnosis": "上呼吸道感染",
        "amount": "¥56.80", "items": [{"drug": "阿莫西林胶囊 0.25g×24粒", "dosage": "0.5g", "usage": "口服 每日三次", "quantity": "2盒"}]})
}

/// Run a client's example against a fresh server (clock synchronised) with its app token and a
/// doctor whose phone this test plays (`MEDSIGN_DOCTOR`): when the example prints `scan: <link>`,
/// the phone scans that ticket and co-signs. It must scan-sign once and end with "ok: QM-…".
fn run_example(d: &Dir, mut cmd: std::process::Command, what: &str) {
    use std::io::BufRead;
    let (_ntp, s, admin) = synced_server(d);
    let token = his_app(&s, &admin);
    let (st, v) = s.json("POST", "/api/v1/users", Some(&token), r#"{"employee_no":"8199","name":"扫码医生"}"#);
    assert_eq!(st, 201, "{v}");
    let phone = s.endpoint();
    let (session, share) = phone_enrol(&s, &phone, &token, "8199");
    let mut child = cmd
        .env("MEDSIGN_URL", format!("http://{}", s.addr))
        .env("MEDSIGN_TOKEN", &token)
        .env("MEDSIGN_DOCTOR", "8199")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(link) = line.strip_prefix("scan: ") {
            scan_and_sign(&phone, &session, &share, link.trim());
        }
        lines.push(line);
    }
    let status = child.wait().unwrap();
    let out = lines.join("\n");
    assert!(status.success(), "{what}: {status}\n{out}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("scan: ")).count(), 1, "{what} scan-signs once: {out}");
    assert!(lines.last().is_some_and(|l| l.starts_with("ok: QM-")), "{what}: {out}");
}

/// The Python client (`clients/python`, PyPI-style) runs its example against the real binary.
#[test]
fn the_python_clients_example_runs_against_a_live_server() {
    let d = Dir::new();
    let mut cmd = std::process::Command::new(python());
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../clients/python/example.py"));
    run_example(&d, cmd, "clients/python/example.py");
}

/// The Java client (`clients/java`: JDK HttpClient, SM3 from Debian's BouncyCastle) compiles and
/// runs its example against the real binary.
#[test]
fn the_java_clients_example_runs_against_a_live_server() {
    let d = Dir::new();
    let bc = "/usr/share/java/bcprov.jar";
    assert!(
        std::path::Path::new(bc).exists(),
        "BouncyCastle is needed (Debian libbcprov-java; scripts/test installs it)"
    );
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../../clients/java");
    let out = d.p("classes");
    let mut javac = std::process::Command::new("javac");
    javac.args(["-encoding", "UTF-8", "-cp", bc, "-d", &out]);
    for f in std::fs::read_dir(format!("{src}/src/medsign/client")).unwrap() {
        javac.arg(f.unwrap().path());
    }
    assert_ok(&javac.arg(format!("{src}/Example.java")).output().unwrap(), "javac clients/java");
    let mut cmd = std::process::Command::new("java");
    cmd.args(["-cp", &format!("{out}:{bc}"), "Example"]);
    run_example(&d, cmd, "clients/java Example");
}
