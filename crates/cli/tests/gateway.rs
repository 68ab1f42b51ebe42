//! Issue #17 items 2 and 3: the real `medsign serve` opens its tunnel to a gateway (certificates
//! from the hospital CA by `medsign gateway cert`), and a phone that talks only to the gateway —
//! every call sealed to the servers' channel key — binds, enrols and signs random documents.
//! What the gateway saw — every byte from either side, before any check — is recorded, and no
//! piece of any document is in it: not the data a flow signs, not a template's field values, not
//! the signed PDF, in plain text, hex or base64; nor the titles the doctor is shown, nor the
//! session token.
//!
//! Also here: the allow-list is compared with the server's OpenAPI document, so a change to the
//! phone's API cannot silently diverge from what the gateway forwards.

mod common;
use base64::Engine;
use common::*;
use medsign_gateway::allow::{self, Body, Ty};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift); the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Text a record might hold: Chinese and ASCII words, with a unique marker.
    fn text(&mut self, words: usize) -> String {
        const ZH: &[&str] =
            &["患者", "诊断", "血常规", "阿莫西林", "高血压", "复查", "口服", "每日三次", "住院", "手术"];
        let mut s = format!("M{:016x} ", self.next());
        for _ in 0..words {
            if self.below(2) == 0 {
                s += ZH[self.below(ZH.len() as u64) as usize];
            } else {
                s += &format!("w{:x} ", self.next() & 0xffffff);
            }
        }
        s
    }
}

/// `doc` with every occurrence of what the phone is shown on purpose (the certificate serial the
/// signature appearance prints, the document number, the title) blanked out.
fn scrub(doc: &[u8], known: &HashSet<String>) -> Vec<u8> {
    let mut out = doc.to_vec();
    for k in known.iter().filter(|k| k.len() >= 8) {
        let k = k.as_bytes();
        let mut i = 0;
        while i + k.len() <= out.len() {
            if &out[i..i + k.len()] == k {
                out[i..i + k.len()].fill(0);
                i += k.len();
            } else {
                i += 1;
            }
        }
    }
    out
}

/// What a round shows the phone by design.
fn shown(known: &mut HashSet<String>, rounds: &serde_json::Value) {
    for r in rounds.as_array().unwrap() {
        for v in [&r["cert_serial"], &r["summary"]["doc_no"], &r["summary"]["title"], &r["summary"]["flow_id"]] {
            known.insert(v.as_str().unwrap().to_string());
        }
    }
}

/// A flow's title with a unique marker, remembered.
fn title(titles: &mut Vec<String>, rng: &mut Rng, what: &str) -> String {
    let t = format!("{what} T{:016x}", rng.next());
    titles.push(t.clone());
    t
}

/// Every 16-byte window of what the gateway saw.
fn windows(seen: &[u8]) -> HashSet<[u8; 16]> {
    seen.windows(16).map(|w| w.try_into().unwrap()).collect()
}

fn distinct(w: &[u8]) -> usize {
    w.iter().collect::<HashSet<_>>().len()
}

/// The 16-byte windows of `doc`, as it is and hex- and base64-encoded (at each alignment), that
/// appear in `seen`. Left out: windows with a zero byte (blanked by [`scrub`], or a run of them)
/// and windows of fewer than six different bytes (`0000…`, `AAAA…`: padding, not content).
fn leaked(seen: &HashSet<[u8; 16]>, doc: &[u8]) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![doc.to_vec(), hex::encode(doc).into_bytes(), hex::encode_upper(doc).into_bytes()];
    for skip in 0..3.min(doc.len()) {
        let e = b64.encode(&doc[skip..]);
        // the last four characters depend on what follows the slice
        forms.push(e.as_bytes()[..e.len().saturating_sub(4)].to_vec());
    }
    let mut hits = Vec::new();
    for f in &forms {
        for w in f.windows(16).filter(|w| !w.contains(&0) && distinct(w) >= 6) {
            if seen.contains(<&[u8; 16]>::try_from(w).unwrap()) {
                hits.push(String::from_utf8_lossy(w).into_owned());
            }
        }
    }
    hits
}

/// The bytes a signed PDF's signatures cover, without the signature values themselves (those
/// carry the phone's own signature, which the phone sent through the gateway on purpose).
fn covered(pdf: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = pdf;
    // every `/Contents <hex>` (any white space before the `<`) of a signature dictionary is cut out
    while let Some(i) = rest.windows(9).position(|w| w == b"/Contents") {
        let after = &rest[i + 9..];
        let skip = after.iter().take_while(|c| c.is_ascii_whitespace()).count();
        out.extend_from_slice(&rest[..i + 9]);
        if after.get(skip) == Some(&b'<') {
            let end = after.iter().position(|c| *c == b'>').unwrap_or(after.len());
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out.extend_from_slice(rest);
    out
}

/// Issue a tunnel certificate into `d` (`out`.pem/.key, the CA too when `ca`); returns its serial.
fn gateway_cert(d: &Dir, role: &str, name: &str, out: &str, ca: bool) -> String {
    let (cert, key, ca_file) = (d.p(&format!("{out}.pem")), d.p(&format!("{out}.key")), d.p("tunnel-ca.pem"));
    let data = d.p("data");
    let mut args = vec!["gateway", "cert", "--data-dir", &data, "--role", role, "--name", name];
    args.extend(["--out-cert", &cert, "--out-key", &key]);
    if ca {
        args.extend(["--out-ca", &ca_file]);
    }
    let o = d.medsign(&args);
    assert_ok(&o, "medsign gateway cert");
    let said = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let at = said.find("serial ").unwrap_or_else(|| panic!("no serial in: {said}")) + 7;
    said[at..].chars().take_while(char::is_ascii_hexdigit).collect()
}

/// A gateway on loopback with the tunnel certificates [`gateway_cert`] wrote into `d`.
fn gateway_config(d: &Dir) -> medsign_config::config::GatewayConfig {
    medsign_config::config::GatewayConfig {
        listen: "127.0.0.1:0".into(),
        tunnel_listen: "127.0.0.1:0".into(),
        tunnel_cert: Some(d.path("gateway.pem")),
        tunnel_key: Some(d.path("gateway.key")),
        tunnel_ca: Some(d.path("tunnel-ca.pem")),
        ..Default::default()
    }
}

/// The environment of a server whose tunnel goes to `tunnel`, time from `time`.
fn tunnel_env(d: &Dir, tunnel: &str, time: &str) -> Vec<(String, String)> {
    [
        ("MEDSIGN_TIME_SOURCES", time),
        ("MEDSIGN_TIME_POLL_SECONDS", "1"),
        ("MEDSIGN_TUNNEL_GATEWAYS", tunnel),
        ("MEDSIGN_TUNNEL_CERT", &d.p("server.pem")),
        ("MEDSIGN_TUNNEL_KEY", &d.p("server.key")),
        ("MEDSIGN_TUNNEL_CA", &d.p("tunnel-ca.pem")),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `env` as [`Server::start`] takes it.
fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Compare the allow-list type `ty` with the OpenAPI `schema`: the same field names, object by
/// object (an object the document leaves open, like the two-party protocol messages, is the
/// allow-list's to close).
fn compare(doc: &serde_json::Value, schema: &serde_json::Value, ty: &Ty, at: &str, out: &mut Vec<String>) {
    let mut schema = schema;
    while let Some(r) = schema["$ref"].as_str() {
        schema = &doc["components"]["schemas"][r.rsplit('/').next().unwrap()];
    }
    if let Some(one) = schema["oneOf"].as_array()
        && let Some(s) = one.iter().find(|s| s["type"] != "null")
    {
        return compare(doc, s, ty, at, out);
    }
    match ty {
        Ty::Obj(fields) => {
            let Some(props) = schema["properties"].as_object() else { return };
            let mine: HashSet<&str> = fields.iter().map(|f| f.name).collect();
            let theirs: HashSet<&str> = props.keys().map(String::as_str).collect();
            if mine != theirs {
                out.push(format!("{at}: allow-list {:?} vs API {:?}", sorted(&mine), sorted(&theirs)));
            }
            for f in fields.iter() {
                if let Some(p) = props.get(f.name) {
                    compare(doc, p, &f.ty, &format!("{at}.{}", f.name), out);
                }
            }
        }
        Ty::List(item, _) => compare(doc, &schema["items"], item, &format!("{at}[]"), out),
        _ => {}
    }
}

fn sorted<'a>(s: &HashSet<&'a str>) -> Vec<&'a str> {
    let mut v: Vec<_> = s.iter().copied().collect();
    v.sort();
    v
}

#[test]
fn the_allow_list_is_the_phone_api_of_the_openapi_document() {
    let d = Dir::new();
    let s = Server::start(&d, &[]);
    let (st, _, doc) = s.req("GET", "/api/openapi.json", None, None, b"");
    assert_eq!(st, 200);
    let mut problems = Vec::new();
    let mut covered_ops = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/mobile/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let m = method.to_uppercase();
            // the allow-list names its parameters differently: compare with plain segments
            let concrete: String =
                path.split('/').map(|s| if s.starts_with('{') { "p" } else { s }).collect::<Vec<_>>().join("/");
            let Some(route) = allow::route(&m, &concrete).or_else(|| allow::forwarded(&m, &concrete)) else {
                problems.push(format!("{m} {path}: in the API, not in the gateway's allow-list"));
                continue;
            };
            covered_ops += 1;
            let request = &op["requestBody"]["content"]["application/json"]["schema"];
            match (&route.request, request.is_null()) {
                (Body::Json(ty), false) => compare(&doc, request, ty, &format!("{m} {path} request"), &mut problems),
                (Body::Empty, true) => {}
                _ => problems.push(format!("{m} {path}: the request body differs")),
            }
            let ok = op["responses"].as_object().unwrap().iter().find(|(c, _)| c.starts_with('2'));
            let response =
                ok.map(|(_, r)| &r["content"]["application/json"]["schema"]).unwrap_or(&serde_json::Value::Null);
            match (&route.response, response.is_null()) {
                (Body::Json(ty), false) => compare(&doc, response, ty, &format!("{m} {path} answer"), &mut problems),
                (Body::Empty, true) => {}
                _ => problems.push(format!("{m} {path}: the answer differs")),
            }
        }
    }
    compare(&doc, &doc["components"]["schemas"]["ErrorBody"], &allow::ERROR, "error envelope", &mut problems);
    // and every /mobile/v1 route of the allow-list is one the server has
    let listed = allow::ROUTES.iter().chain(allow::FORWARDED).filter(|r| r.path.starts_with("/mobile/v1/")).count();
    assert!(problems.is_empty(), "the allow-list and the phone's API differ:\n{}", problems.join("\n"));
    assert_eq!(covered_ops, listed, "the allow-list has routes the API does not");
}

#[test]
fn a_phone_behind_the_gateway_signs_and_no_document_passes_through_it() {
    let d = Dir::new();
    // the hospital CA exists once medsign has started; then the tunnel certificates
    let first = Server::start(&d, &[]);
    let admin = first.token().unwrap();
    let his = his_app(&first, &admin);
    let refused = d.medsign(&[
        "gateway",
        "cert",
        "--data-dir",
        &d.p("fresh"),
        "--role",
        "server",
        "--name",
        "x",
        "--out-cert",
        &d.p("x.pem"),
        "--out-key",
        &d.p("x.key"),
    ]);
    assert_fails(&refused, "a certificate before medsign was ever started");
    assert!(text(&refused.stderr).contains("medsign serve"), "{}", text(&refused.stderr));
    // the H5 app's export: a bad gateway URL or a directory in use is refused, nothing written
    std::fs::create_dir(d.path("empty")).unwrap();
    for (api, out) in [
        ("gw.example", "h5a"),
        ("https://gw.example/\"><script>", "h5a"),
        ("https://gw.example", "data"),
        ("https://gw.example", "empty"),
    ] {
        let o = d.medsign(&["h5", "export", "--out", &d.p(out), "--api", api]);
        assert_fails(&o, "a bad export");
        assert!(!d.path("h5a").exists());
    }
    let o = d.medsign(&["h5", "export", "--out", &d.p("h5a"), "--api", "https://gw.example"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(std::fs::read_to_string(d.path("h5a/index.html")).unwrap().contains("https://gw.example/"));
    assert!(d.path("h5a/pkg/medsign_wasm_bg.wasm").exists());
    // nor is a channel key rotated there (it would make a KEK of its own)
    let refused = d.medsign(&["channel", "rotate", "--data-dir", &d.p("fresh")]);
    assert_fails(&refused, "a channel key before medsign was ever started");
    assert!(text(&refused.stderr).contains("medsign serve") && !d.path("fresh/kek.key").exists());
    // a wrong role, a name that is no host: refused with the reason, nothing written
    for (args, says) in
        [(["--role", "client", "--name", "x"], "--role"), (["--role", "server", "--name", "张三 医生"], "host name")]
    {
        let o = d.medsign(
            &[
                &["gateway", "cert", "--data-dir", &d.p("data")][..],
                &args[..],
                &["--out-cert", &d.p("bad.pem"), "--out-key", &d.p("bad.key")][..],
            ]
            .concat(),
        );
        assert_fails(&o, "a bad tunnel certificate request");
        assert!(text(&o.stderr).contains(says), "{}", text(&o.stderr));
        assert!(!d.path("bad.key").exists() && !d.path("bad.pem").exists());
    }
    gateway_cert(&d, "gateway", "127.0.0.1", "gateway", true);
    // an existing file is never overwritten (the key above stays the one issued)
    let again = d.medsign(&[
        "gateway",
        "cert",
        "--data-dir",
        &d.p("data"),
        "--role",
        "gateway",
        "--name",
        "127.0.0.1",
        "--out-cert",
        &d.p("other.pem"),
        "--out-key",
        &d.p("gateway.key"),
    ]);
    assert_fails(&again, "overwriting a tunnel key");
    gateway_cert(&d, "server", "medsign-server-1", "server", false);
    first.stop();

    // the gateway, in this process (its log in the test's output), with a tap on everything it receives
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("medsign_gateway=info").try_init();
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let tap_into = seen.clone();
    let tap: medsign_gateway::front::Tap = Arc::new(move |b: &[u8]| tap_into.lock().unwrap().extend_from_slice(b));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gw = rt.block_on(medsign_gateway::Gateway::bind(&gateway_config(&d), Some(tap))).unwrap();
    let (public, tunnel) = (gw.public.local_addr().unwrap().to_string(), gw.tunnel.local_addr().unwrap().to_string());
    let tunnels = gw.tunnels();
    rt.spawn(gw.run(axum_server::Handle::new()));

    let ntp = Chrony::start(&d, "ntp", None, false);
    let s = Server::start(&d, &pairs(&tunnel_env(&d, &tunnel, &ntp.source())));
    let t = Instant::now();
    while tunnels.count() == 0 {
        assert!(t.elapsed() < Duration::from_secs(20), "no tunnel: {:#?}", s.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_clock(&s, "INSYNC");
    // the phone pins the channel key the hospital's activation code names (issue #17 item 3)
    let (phone, pinned) = Endpoint::sealed(&public);
    // the H5 app itself comes through the gateway; the HIS API and the documents do not
    let (st, h, page) = request(&public, "GET", "/m/", &[], b"");
    assert_eq!(st, 200, "{h}");
    assert!(String::from_utf8_lossy(&page).contains("<html"), "the H5 app's page");
    assert_eq!(request(&public, "GET", "/m/pkg/medsign_wasm_bg.wasm", &[], b"").2[..4], *b"\0asm");
    assert_eq!(phone.json("GET", "/api/v1/users", Some(&his), "").0, 404);
    assert_eq!(phone.json("GET", "/healthz", None, "").0, 200, "the gateway's own");

    let users = r#"[{"employee_no":"1001","name":"张三"},{"employee_no":"1002","name":"李四"}]"#;
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), users).0, 201);
    let (st, code) = s.json("POST", "/api/v1/users/1002/activation-codes", Some(&his), "");
    assert_eq!((st, code["channel_fingerprint"].as_str()), (201, Some(pinned.as_str())), "{code}");
    let (me, share) = phone_enrol(&s, &phone, &his, "1001");
    // the phone API is not forwarded plain, not even with a valid session
    let bearer = format!("Bearer {me}");
    assert_eq!(request(&public, "GET", "/mobile/v1/pending", &[("Authorization", &bearer)], b"").0, 404);
    // the audit log names the phone's address as the gateway saw it, not the gateway's
    let (_, recs) = phone.json("GET", "/mobile/v1/records?limit=5", Some(&me), "");
    assert!(recs["logins"].as_array().unwrap().iter().all(|l| l["ip"] == "127.0.0.1"), "{recs}");

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    // documents: (what must not pass, flow id)
    let mut docs: Vec<(Vec<u8>, String)> = Vec::new();
    let mut pdf_flows = Vec::new();
    let mut titles = Vec::new();
    let mut known = HashSet::new();
    // what the doctor must be able to read of each flow before signing (R2.4), through the channel
    let mut readable: std::collections::HashMap<String, String> = Default::default();
    let read_views = |rounds: &serde_json::Value, readable: &std::collections::HashMap<String, String>| {
        for r in rounds.as_array().unwrap() {
            let (st, v) = phone.json(
                "GET",
                &format!("/mobile/v1/sign-rounds/{}/view", r["round_id"].as_str().unwrap()),
                Some(&me),
                "",
            );
            assert_eq!(st, 200, "{v}");
            let want = &readable[r["summary"]["flow_id"].as_str().unwrap()];
            match v["kind"].as_str().unwrap() {
                "data" => {
                    let text = v["text"].as_str().unwrap();
                    assert_eq!(text, want);
                    let sm3 = hex::encode(medsign_crypto::hash::sm3(text.as_bytes()));
                    assert_eq!(sm3, r["summary"]["content_sm3"].as_str().unwrap(), "the phone can check what it reads");
                }
                _ => {
                    // the words as laid out (a long value wraps): compared without white space
                    let bare = |t: &str| t.chars().filter(|c| !c.is_whitespace()).collect::<String>();
                    let page = bare(v["pages"][0].as_str().unwrap());
                    assert!(page.contains(&bare(want)), "{want} in {page}");
                }
            }
        }
    };
    for _ in 0..12 {
        let file = rng.below(3) == 0;
        let expect;
        let flow = if file {
            let data = serde_json::json!({
                "hospital": "某县人民医院", "category": "普通", "fee_type": "医保", "department": "内科",
                "outpatient_no": format!("MZ{:08}", rng.below(99_999_999)), "patient_name": rng.text(1),
                "gender": "男", "age": "45岁", "diagnosis": rng.text(4), "amount": "¥56.80",
                "items": [{"drug": rng.text(2), "dosage": "0.5g", "usage": "口服 每日三次", "quantity": "2盒"}]
            });
            for v in [&data["patient_name"], &data["diagnosis"], &data["items"][0]["drug"]] {
                docs.push((v.as_str().unwrap().as_bytes().to_vec(), String::new()));
            }
            expect = data["diagnosis"].as_str().unwrap().to_string();
            serde_json::json!({"kind": "file", "title": title(&mut titles, &mut rng, "门诊处方笺"), "template_id": "outpatient-prescription",
                "data": data, "signers": [{"employee_no": "1001", "mode": "scan", "field": "doctor"}]})
        } else {
            let words = 20 + rng.below(300) as usize;
            let content = rng.text(words);
            docs.push((content.clone().into_bytes(), String::new()));
            expect = content.clone();
            serde_json::json!({"kind": "data", "title": title(&mut titles, &mut rng, "检验报告"), "content": content,
                "signers": [{"employee_no": "1001", "mode": "scan"}]})
        };
        let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &flow.to_string());
        assert_eq!(st, 201, "{f}");
        let id = f["id"].as_str().unwrap().to_string();
        readable.insert(id.clone(), expect);
        if file {
            pdf_flows.push(id.clone());
        }
        // half are scanned one by one, the rest wait in the pending list
        if rng.below(2) == 0 {
            let ticket = f["ticket"]["deep_link"].as_str().unwrap().rsplit("t=").next().unwrap().to_string();
            let (st, v) = phone.json(
                "POST",
                "/mobile/v1/sign-rounds",
                Some(&me),
                &serde_json::json!({"targets": [{"ticket": ticket}]}).to_string(),
            );
            assert_eq!(st, 201, "{v}");
            shown(&mut known, &v["rounds"]);
            read_views(&v["rounds"], &readable);
            let out = co_sign(&phone, &me, &share, v["rounds"].as_array().unwrap());
            assert_eq!(out["results"][0]["state"], "completed", "{out}");
        }
    }
    // the pending ones as one batch
    let (st, pending) = phone.json("GET", "/mobile/v1/pending", Some(&me), "");
    assert_eq!(st, 200, "{pending}");
    let targets: Vec<_> =
        pending["items"].as_array().unwrap().iter().map(|p| serde_json::json!({"flow_id": p["flow_id"]})).collect();
    if !targets.is_empty() {
        let (st, v) = phone.json(
            "POST",
            "/mobile/v1/sign-rounds",
            Some(&me),
            &serde_json::json!({"targets": targets}).to_string(),
        );
        assert_eq!(st, 201, "{v}");
        shown(&mut known, &v["rounds"]);
        read_views(&v["rounds"], &readable);
        let out = co_sign(&phone, &me, &share, v["rounds"].as_array().unwrap());
        assert!(out["results"].as_array().unwrap().iter().all(|r| r["state"] == "completed"), "{out}");
    }
    // a hostile phone tries to get a document through: refused by the server's check of the
    // opened call (the gateway cannot read it to check)
    let (st, v) =
        phone.json("POST", "/mobile/v1/sign-rounds", Some(&me), r#"{"targets": [], "content_base64": "JVBERi0xLjc="}"#);
    assert_eq!((st, v["code"].as_str()), (400, Some("e2e_invalid")), "{v}");

    // the signed PDFs (fetched by the HIS from the server itself)
    for id in &pdf_flows {
        let (st, _, pdf) = s.raw("GET", &format!("/api/v1/sign-flows/{id}/file"), Some(&his), None, b"");
        assert_eq!(st, 200);
        assert!(pdf.starts_with(b"%PDF"));
        docs.push((scrub(&covered(&pdf), &known), id.clone()));
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() > 10_000, "the tap saw the traffic ({} bytes)", seen.len());
    let set = windows(&seen);
    for (doc, id) in &docs {
        let hits = leaked(&set, doc);
        if let Some(h) = hits.first() {
            let around = |hay: &[u8]| {
                let i = hay.windows(16).position(|w| w == h.as_bytes()).unwrap_or(0);
                String::from_utf8_lossy(&hay[i.saturating_sub(60)..(i + 76).min(hay.len())]).into_owned()
            };
            panic!(
                "seed {seed}: the gateway saw part of a document {id}: {hits:?}\nin what it saw: {:?}\nin the document: {:?}",
                around(&seen),
                around(doc)
            );
        }
    }
    // nor what the doctor is shown (the titles: patients' names), nor the session token: the
    // phone's business crosses the gateway sealed. The control: the channel's fingerprint, which
    // the gateway does forward in the clear, is found the same way.
    for t in &titles {
        assert!(leaked(&set, t.as_bytes()).is_empty(), "the tap saw the title {t}");
    }
    assert!(leaked(&set, me.as_bytes()).is_empty(), "the tap saw the session token");
    assert!(!leaked(&set, pinned.as_bytes()).is_empty(), "the control: the tap saw the channel's fingerprint");
    drop(rt);
}

/// Issue #17 item 4: a server whose only way out is the gateway — WeChat (a local FAKE, over TLS)
/// through the gateway's egress, time from an NTP server (chrony) through the gateway's relay —
/// checks a doctor's face and issues timestamps. The fake WeChat's certificate comes from the
/// tunnel CA, which only the egress client trusts: a direct call would fail.
#[test]
fn the_server_reaches_wechat_and_time_only_through_the_gateway() {
    let d = Dir::new();
    let first = Server::start(&d, &[]);
    let admin = first.token().unwrap();
    let his = his_app(&first, &admin);
    gateway_cert(&d, "gateway", "127.0.0.1", "gateway", true);
    gateway_cert(&d, "server", "medsign-server-1", "server", false);
    gateway_cert(&d, "gateway", "127.0.0.1", "wechat", false);
    first.stop();

    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("medsign_gateway=info").try_init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // the FAKE WeChat API over TLS, at an address only the gateway is told to reach
    let (app, wechat) = medsign_phone::realname::fake::app();
    let tls = rt
        .block_on(axum_server::tls_rustls::RustlsConfig::from_pem_file(d.path("wechat.pem"), d.path("wechat.key")))
        .unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let wechat_at = l.local_addr().unwrap().to_string();
    let serving = rt.block_on(async { axum_server::from_tcp_rustls(l, tls) }).unwrap();
    rt.spawn(serving.serve(app.into_make_service()));
    // an outside CA, its CRL published over plain HTTP (served here)
    let (ca_pem, crl_der) = {
        use medsign_crypto::{KeyAlg, PrivateKey, Signer, signer::KeySigner};
        use medsign_pki::cert::{CertTemplate, Profile, issue};
        let now = chrono::Utc::now();
        let key = KeySigner::new(PrivateKey::generate(KeyAlg::P256).unwrap());
        let dn = medsign_pki::name::parse_dn("CN=区域平台 根CA,O=区域卫健委,C=CN").unwrap();
        let t = CertTemplate::new(
            dn,
            key.public_key().clone(),
            Profile::Ca { path_len: Some(0) },
            now - chrono::Duration::hours(1),
            now + chrono::Duration::days(365),
        );
        let root = issue(&t, None, &key).unwrap();
        let crl = medsign_pki::crl::build(
            &root,
            &key,
            now - chrono::Duration::minutes(1),
            now + chrono::Duration::days(1),
            1,
            &[],
        )
        .unwrap();
        (root.to_pem(), crl)
    };
    let crl_app = axum::Router::new().route("/ca.crl", axum::routing::get(move || async move { crl_der.clone() }));
    let crl_listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let crl_at = crl_listener.local_addr().unwrap().to_string();
    rt.spawn(async move { axum::serve(crl_listener, crl_app).await });
    let ntp = Chrony::start(&d, "ntp", None, false);
    let cfg = medsign_config::config::GatewayConfig {
        egress_allow: vec![wechat_at.clone(), crl_at.clone()],
        ntp_listen: Some("127.0.0.1:0".into()),
        ntp_upstreams: vec![ntp.source()],
        ..gateway_config(&d)
    };
    let gw = rt.block_on(medsign_gateway::Gateway::bind(&cfg, None)).unwrap();
    let (public, tunnel) = (gw.public.local_addr().unwrap().to_string(), gw.tunnel.local_addr().unwrap().to_string());
    let relay = gw.ntp.as_ref().unwrap().local_addr().unwrap().to_string();
    rt.spawn(gw.run(axum_server::Handle::new()));

    let wechat_env = [
        ("MEDSIGN_REALNAME_PROVIDER", "wechat".to_string()),
        ("MEDSIGN_REALNAME_WECHAT_APPID", "wx_test".into()),
        ("MEDSIGN_REALNAME_WECHAT_SECRET", "s3cret".into()),
        ("MEDSIGN_REALNAME_WECHAT_API_BASE", format!("https://{wechat_at}")),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let mut env = tunnel_env(&d, &tunnel, &relay);
    env.push(("MEDSIGN_TUNNEL_EGRESS".into(), "true".into()));
    env.extend(wechat_env.iter().cloned());
    let s = Server::start(&d, &pairs(&env));
    // time through the relay: the clock synchronises and the TSA issues
    let ready = wait_clock(&s, "INSYNC");
    assert_eq!(ready["clock"]["source"], relay.as_str(), "{ready}");
    let user = r#"{"employee_no":"6001","name":"孙医生","id_card":"11010519491231002X"}"#;
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), user).0, 201);
    let (phone, _) = Endpoint::sealed(&public);
    let t = Instant::now();
    let token = loop {
        let (st, code) = s.json("POST", "/api/v1/users/6001/activation-codes", Some(&his), "");
        assert_eq!(st, 201, "{code}");
        let body = serde_json::json!({"employee_no": "6001", "code": code["code"], "device_name": "测试手机"});
        let (st, act) = phone.json("POST", "/mobile/v1/activate", None, &body.to_string());
        if st == 201 {
            break act["token"].as_str().unwrap().to_string();
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no tunnel: {st} {act}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // the face check: the server asks WeChat through the gateway, end to end over TLS
    let (st, started) = phone.json("POST", "/mobile/v1/realname", Some(&token), r#"{"wx_code":"code-oDOCTOR6001"}"#);
    assert_eq!(st, 201, "{started}\n{:#?}", s.log.lock().unwrap());
    assert!(started["verify_id"].as_str().unwrap().starts_with("vid_"), "{started}");
    let path = format!("/mobile/v1/realname/{}", started["check_id"].as_str().unwrap());
    let (st, done) = phone.json("POST", &path, Some(&token), "");
    assert_eq!((st, done["realname_status"].as_str()), (200, Some("verified")), "{done}");
    let seen = wechat.seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|(p, _)| p == "getverifyid" || p == "queryverifyinfo").count(), 2, "{seen:?}");
    assert_eq!(seen[0].1["cert_info"]["cert_no"], "11010519491231002X");
    // the certificate is issued now that the face matched
    phone_keys(&phone, &token);
    // an outside CA on the trust list: its CRL comes over plain HTTP through the gateway — from a
    // listed address; an unlisted one is refused by the gateway
    let trust = |url: String| {
        let b = serde_json::json!({"pem": ca_pem, "crl_url": url}).to_string();
        let (st, v) = s.json("POST", "/admin/v1/trust", Some(&admin), &b);
        assert_eq!(st, 201, "{v}");
        v[0].clone()
    };
    let port = crl_at.rsplit_once(':').unwrap().1;
    let refused = trust(format!("http://127.0.0.2:{port}/ca.crl"));
    assert!(refused["crl_error"].as_str().unwrap_or("").contains("403"), "not through the gateway? {refused}");
    assert_eq!(
        s.req(
            "DELETE",
            &format!("/admin/v1/trust/{}", refused["fingerprint"].as_str().unwrap()),
            Some(&admin),
            None,
            b""
        )
        .0,
        204
    );
    let fetched = trust(format!("http://{crl_at}/ca.crl"));
    assert!(fetched["crl_at"].is_string() && fetched["crl_error"].is_null(), "{fetched}");
    s.stop();

    // the same server without the egress cannot reach that WeChat: its certificate is the
    // tunnel CA's, which a direct client does not trust (so the call above did go through the
    // gateway)
    let mut env = wechat_env.to_vec();
    env.push(("MEDSIGN_TIME_SOURCES".into(), relay.clone()));
    let direct = Server::start(&d, &pairs(&env));
    let phone = direct.endpoint();
    let token = phone_bind(&direct, &phone, &his, "6001");
    let (st, v) = phone.json("POST", "/mobile/v1/realname", Some(&token), r#"{"wx_code":"code-oDOCTOR6001"}"#);
    assert_eq!(st, 503, "{v}");
    assert_eq!(wechat.seen.lock().unwrap().len(), seen.len(), "nothing reached WeChat directly");
}

#[test]
fn a_revoked_tunnel_certificate_shuts_its_holder_out() {
    let d = Dir::new();
    let first = Server::start(&d, &[]);
    let gateway_serial = gateway_cert(&d, "gateway", "127.0.0.1", "gateway", true);
    let server_serial = gateway_cert(&d, "server", "medsign-server-1", "server", false);
    first.stop();
    let data = d.p("data");
    // only tunnel certificates are revoked here; an unknown serial is an error
    let o = d.medsign(&["gateway", "revoke", "--data-dir", &data, "--serial", "0BADC0DE"]);
    assert!(!o.status.success(), "an unknown serial: {o:?}");
    // neither or both of --serial and --cert, or an unknown reason: usage errors, nothing revoked
    let server_pem = d.p("server.pem");
    for args in [
        vec!["gateway", "revoke", "--data-dir", &data],
        vec!["gateway", "revoke", "--data-dir", &data, "--serial", &server_serial, "--cert", &server_pem],
        vec!["gateway", "revoke", "--data-dir", &data, "--serial", &server_serial, "--reason", "bored"],
    ] {
        let o = d.medsign(&args);
        assert!(!o.status.success(), "{args:?}: {o:?}");
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg =
        medsign_config::config::GatewayConfig { crl_refresh_seconds: 1, heartbeat_seconds: 1, ..gateway_config(&d) };
    let gw = rt.block_on(medsign_gateway::Gateway::bind(&cfg, None)).unwrap();
    let tunnel = gw.tunnel.local_addr().unwrap().to_string();
    let tunnels = gw.tunnels();
    rt.spawn(gw.run(axum_server::Handle::new()));
    let mut env = tunnel_env(&d, &tunnel, "127.0.0.1:9");
    env.push(("MEDSIGN_TUNNEL_HEARTBEAT_SECONDS".into(), "1".into()));
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !cond() {
            assert!(t.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let s = Server::start(&d, &pairs(&env));
    wait("the tunnel and the CRL through it", &|| tunnels.count() == 1 && tunnels.crl_number().is_some());

    // the server's tunnel certificate is revoked on the intranet: the gateway closes its tunnel
    // at its next CRL fetch and refuses it from then on
    let o = d.medsign(&["gateway", "revoke", "--data-dir", &data, "--serial", &server_serial]);
    assert_ok(&o, "medsign gateway revoke");
    wait("the tunnel closed", &|| tunnels.count() == 0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(tunnels.count(), 0, "the revoked server dials again and is refused");
    let o = d.medsign(&["gateway", "revoke", "--data-dir", &data, "--serial", &server_serial]);
    assert!(!o.status.success(), "revoked twice: {o:?}");
    s.stop();

    // a new server certificate opens the tunnel again; then the gateway's certificate is revoked:
    // the server leaves it at its next heartbeat and does not come back
    std::fs::remove_file(d.path("server.pem")).unwrap();
    std::fs::remove_file(d.path("server.key")).unwrap();
    gateway_cert(&d, "server", "medsign-server-1", "server", false);
    let s = Server::start(&d, &pairs(&env));
    wait("a tunnel with the new certificate", &|| tunnels.count() == 1);
    let o = d.medsign(&["gateway", "revoke", "--data-dir", &data, "--serial", &gateway_serial]);
    assert_ok(&o, "medsign gateway revoke (the gateway's)");
    wait("the server left the revoked gateway", &|| tunnels.count() == 0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(tunnels.count(), 0, "the server does not dial the revoked gateway back in");
    s.stop();

    // a tunnel certificate from before they were recorded (its row removed here): unknown by its
    // serial, revoked from its file; a file of another issuer is refused
    let old = gateway_cert(&d, "server", "medsign-server-2", "legacy", false);
    let forget = format!(
        "import sqlite3; c = sqlite3.connect('{}'); c.execute(\"DELETE FROM certificates WHERE serial = '{old}'\"); c.commit()",
        d.p("data/medsign.db")
    );
    let o = std::process::Command::new("python3").args(["-c", &forget]).output().unwrap();
    assert_ok(&o, "forget the certificate");
    let o = d.medsign(&["gateway", "revoke", "--data-dir", &data, "--serial", &old]);
    assert!(!o.status.success(), "an unrecorded serial: {o:?}");
    let o = d.medsign(&["gateway", "revoke", "--data-dir", &data, "--cert", &d.p("tunnel-ca.pem")]);
    assert!(!o.status.success(), "the root is no tunnel certificate of the issuing CA: {o:?}");
    let o = d.medsign(&["gateway", "revoke", "--data-dir", &data, "--cert", &d.p("legacy.pem")]);
    assert_ok(&o, "medsign gateway revoke --cert");
    let o = d.medsign(&["gateway", "revoke", "--data-dir", &data, "--serial", &old]);
    assert!(!o.status.success(), "now recorded, and revoked already: {o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("已吊销") || String::from_utf8_lossy(&o.stdout).contains("已吊销"),
        "{o:?}"
    );
}
