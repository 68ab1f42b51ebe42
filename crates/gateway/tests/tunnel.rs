//! The tunnel in one process: a gateway, a stand-in server (a small axum router behind
//! [`tunnel::dial`]) and a phone speaking HTTP/1.1 to the gateway's public side — all on
//! loopback, with a test CA made here (RSA root and issuing CA, like the hospital's).

use axum::{Json, Router, extract::State, http::HeaderMap, routing::get, routing::post};
use chrono::{Duration as Days, Utc};
use medsign_config::config::GatewayConfig;
use medsign_crypto::{KeyAlg, PrivateKey, Signer, signer::KeySigner};
use medsign_gateway::{Gateway, tls, tunnel};
use medsign_pki::{
    cert::{Cert, CertTemplate, Profile, issue},
    name::parse_dn,
};
use std::{
    io::{Read, Write},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

struct Ca {
    dir: tempfile::TempDir,
    cert: Cert,
    key: KeySigner,
    root_pem: PathBuf,
}

/// A CA: an RSA root and an issuing CA below it; `root_pem` is what both ends trust.
fn ca(name: &str) -> Ca {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let root_key = KeySigner::new(PrivateKey::generate(KeyAlg::Rsa2048).unwrap());
    let mut t = CertTemplate::new(
        parse_dn(&format!("CN={name} 根CA,O=某县人民医院")).unwrap(),
        root_key.public_key().clone(),
        Profile::Ca { path_len: Some(1) },
        now - Days::hours(1),
        now + Days::days(3650),
    );
    let root = issue(&t, None, &root_key).unwrap();
    let key = KeySigner::new(PrivateKey::generate(KeyAlg::Rsa2048).unwrap());
    t.subject = parse_dn(&format!("CN={name} 签发CA,O=某县人民医院")).unwrap();
    t.public_key = key.public_key().clone();
    t.profile = Profile::Ca { path_len: Some(0) };
    let cert = issue(&t, Some(&root), &root_key).unwrap();
    let root_pem = dir.path().join("root.pem");
    std::fs::write(&root_pem, root.to_pem()).unwrap();
    Ca { dir, cert, key, root_pem }
}

/// A P-256 end-entity certificate of `profile` for `names`: (chain file, key file).
fn leaf(ca: &Ca, profile: Profile, names: &[&str], file: &str) -> (PathBuf, PathBuf) {
    let key = PrivateKey::generate(KeyAlg::P256).unwrap();
    let now = Utc::now();
    let mut t = CertTemplate::new(
        parse_dn(&format!("CN={},O=某县人民医院", names[0])).unwrap(),
        key.public_key(),
        profile,
        now - Days::hours(1),
        now + Days::days(30),
    );
    if matches!(profile, Profile::TlsServer | Profile::TlsClient) {
        t.alt_names = names.iter().map(|n| n.to_string()).collect();
    }
    let c = issue(&t, Some(&ca.cert), &ca.key).unwrap();
    let (cp, kp) = (ca.dir.path().join(format!("{file}.pem")), ca.dir.path().join(format!("{file}.key")));
    std::fs::write(&cp, format!("{}{}", c.to_pem(), ca.cert.to_pem())).unwrap();
    std::fs::write(&kp, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    (cp, kp)
}

/// What the stand-in server received: (path, header names).
type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;

fn stand_in(seen: Seen) -> Router {
    stand_in_publishing(seen, Publish::Nothing)
}

/// What a stand-in answers the gateway at `/pki/crl`.
#[derive(Clone)]
enum Publish {
    /// 404
    Nothing,
    /// this CRL, as `medsign serve` does
    Crl(Arc<Mutex<Vec<u8>>>),
    /// never an answer (a hostile server holding the fetch)
    Stall,
}

/// [`stand_in`] that answers `/pki/crl` as `publish` says. The gateway's own CRL fetches are not
/// counted in `seen`.
fn stand_in_publishing(seen: Seen, publish: Publish) -> Router {
    // what the sealed call's `kid` asks the stand-in to answer
    async fn sealed(State(seen): State<Seen>, headers: HeaderMap, body: String) -> axum::response::Response {
        use axum::response::IntoResponse;
        let names = headers.keys().map(|k| k.as_str().to_string()).collect();
        seen.lock().unwrap().push(("/mobile/v1/sealed".into(), names));
        let call: serde_json::Value = serde_json::from_str(&body).unwrap();
        match call["kid"].as_str().unwrap() {
            // a field the allow-list does not have: the answer must not reach the phone
            "1111111111111111" => {
                Json(serde_json::json!({"v": 1, "blob": "AAAA", "document": "病历全文"})).into_response()
            }
            // a refusal that is not the envelope, labelled HTML: never shown to the phone as HTML
            "2222222222222222" => {
                (axum::http::StatusCode::CONFLICT, [("content-type", "text/html")], "<script>alert(1)</script>")
                    .into_response()
            }
            // a slow answer: the call stays in flight at the gateway meanwhile
            "3333333333333333" => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Json(serde_json::json!({"v": 1, "blob": "q83vEjRWeJA="})).into_response()
            }
            _ => Json(serde_json::json!({"v": 1, "blob": "q83vEjRWeJA="})).into_response(),
        }
    }
    async fn channel(State(seen): State<Seen>) -> Json<serde_json::Value> {
        seen.lock().unwrap().push(("/mobile/v1/channel".into(), vec![]));
        Json(serde_json::json!({"kid": "0123456789abcdef", "public_key": format!("04{}", "ab".repeat(64)),
            "fingerprint": "cd".repeat(32), "server_time_ms": 1_764_835_200_000_i64,
            "history": [{"generation": 1, "public_key": format!("04{}", "ab".repeat(64)), "endorsement": null}]}))
    }
    async fn anything(State(seen): State<Seen>, uri: axum::http::Uri) -> &'static str {
        seen.lock().unwrap().push((uri.path().to_string(), vec![]));
        "reached"
    }
    let published = move || {
        let publish = publish.clone();
        async move {
            use axum::response::IntoResponse;
            match publish {
                Publish::Crl(c) => {
                    let der = c.lock().unwrap().clone();
                    ([("content-type", "application/pkix-crl")], der).into_response()
                }
                Publish::Nothing => axum::http::StatusCode::NOT_FOUND.into_response(),
                Publish::Stall => std::future::pending().await,
            }
        }
    };
    Router::new()
        .route("/pki/crl", get(published))
        .route("/mobile/v1/sealed", post(sealed))
        .route("/mobile/v1/channel", get(channel))
        .fallback(anything)
        .with_state(seen)
}

/// A sealed call's envelope (the gateway checks its form, never its content).
fn envelope(kid: &str) -> String {
    serde_json::json!({"v": 1, "kid": kid, "blob": "BP3kq83vEjRWeJA="}).to_string()
}

struct Running {
    public: String,
    tunnel: String,
    tunnels: Arc<tunnel::Tunnels>,
    rt: tokio::runtime::Runtime,
    /// the NTP relay's address, when it has one
    ntp: Option<std::net::SocketAddr>,
}

/// A gateway in its own runtime (dropping it ends every connection, like a killed process).
fn gateway(ca: &Ca, tunnel_listen: &str) -> Running {
    gateway_for(ca, tunnel_listen, vec![])
}

/// [`gateway`] that lets only servers with these common names open tunnels.
fn gateway_for(ca: &Ca, tunnel_listen: &str, tunnel_peers: Vec<String>) -> Running {
    gateway_with(ca, GatewayConfig { tunnel_listen: tunnel_listen.into(), tunnel_peers, ..GatewayConfig::default() })
}

/// A gateway of `cfg` with the test CA's certificates, on loopback (trusting the test CA's root
/// unless `cfg` names other roots).
fn gateway_with(ca: &Ca, cfg: GatewayConfig) -> Running {
    let (cert, key) = leaf(ca, Profile::TlsServer, &["127.0.0.1"], "gateway");
    let cfg = GatewayConfig {
        listen: "127.0.0.1:0".into(),
        tunnel_cert: Some(cert),
        tunnel_key: Some(key),
        tunnel_ca: cfg.tunnel_ca.clone().or(Some(ca.root_pem.clone())),
        heartbeat_seconds: 1,
        request_timeout_seconds: 5,
        ..cfg
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gw = rt.block_on(Gateway::bind(&cfg, None)).unwrap();
    let public = gw.public.local_addr().unwrap().to_string();
    let tunnel = gw.tunnel.local_addr().unwrap().to_string();
    let tunnels = gw.tunnels();
    let ntp = gw.ntp.as_ref().map(|r| r.local_addr().unwrap());
    rt.spawn(gw.run(axum_server::Handle::new()));
    Running { public, tunnel, tunnels, rt, ntp }
}

/// A stand-in server dialing `gateway` with `files`, in its own runtime; `stop` ends it.
fn server(
    rt: &tokio::runtime::Runtime,
    gateway: &str,
    files: tls::Files,
    app: Router,
) -> tokio::sync::watch::Sender<bool> {
    server_checking(rt, gateway, files, app, None)
}

/// [`server`], asking `revoked` about the gateway's certificate.
fn server_checking(
    rt: &tokio::runtime::Runtime,
    gateway: &str,
    files: tls::Files,
    app: Router,
    revoked: Option<tunnel::RevocationCheck>,
) -> tokio::sync::watch::Sender<bool> {
    let (stop, watch) = tokio::sync::watch::channel(false);
    let d = tunnel::Dial {
        gateway: gateway.to_string(),
        tls: tls::connector(&files).unwrap(),
        heartbeat: Duration::from_secs(1),
        revoked,
    };
    rt.spawn(tunnel::dial(d, app, watch));
    stop
}

fn wait_for(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request with extra headers; (status, body as JSON or null).
fn call(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, serde_json::Value) {
    let (st, _, v) = call_head(addr, method, path, headers, body);
    (st, v)
}

/// [`call`], with the answer's head too.
fn call_head(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String, serde_json::Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        head += &format!("{h}\r\n");
    }
    s.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut r = Vec::new();
    s.read_to_end(&mut r).unwrap();
    let split = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let status = String::from_utf8_lossy(&r[9..12]).parse().unwrap();
    let head = String::from_utf8_lossy(&r[..split]).to_ascii_lowercase();
    (status, head, serde_json::from_slice(&r[split..]).unwrap_or(serde_json::Value::Null))
}

#[test]
fn messages_travel_the_tunnel_only_as_the_allow_list_has_them() {
    let ca = ca("测试");
    let gw = gateway(&ca, "127.0.0.1:0");
    assert_eq!(call(&gw.public, "GET", "/readyz", &[], "").0, 503, "no tunnel yet: not ready");
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "server");
    let seen: Seen = Arc::default();
    let _stop =
        server(&gw.rt, &gw.tunnel, tls::Files { cert: &cert, key: &key, ca: &ca.root_pem }, stand_in(seen.clone()));
    wait_for("the tunnel", 10, || gw.tunnels.count() == 1);
    assert_eq!(call(&gw.public, "GET", "/readyz", &[], "").0, 200);

    // an allowed message, with headers the gateway must not pass on
    let hdrs =
        ["Authorization: Bearer mt_x", "Cookie: session=steal-me", "X-App-Id: his", "Content-Type: application/json"];
    let (st, v) = call(&gw.public, "POST", "/mobile/v1/sealed", &hdrs, &envelope("0123456789abcdef"));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["blob"], "q83vEjRWeJA=");
    let (_, names) = seen.lock().unwrap().last().cloned().unwrap();
    assert!(names.contains(&"x-forwarded-for".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n == "cookie" || n == "x-app-id"), "{names:?}");

    let before = seen.lock().unwrap().len();
    let json = ["Content-Type: application/json"];
    // an unknown field, a field over its cap, a wrong type, not JSON: refused before the tunnel
    for bad in [
        serde_json::json!({"v": 1, "kid": "0123456789abcdef", "blob": "AAAA", "pdf": "JVBERi0xLjc="}).to_string(),
        serde_json::json!({"v": 1, "kid": "0123456789abcdef0", "blob": "AAAA"}).to_string(),
        serde_json::json!({"v": "1", "kid": "0123456789abcdef", "blob": "AAAA"}).to_string(),
        serde_json::json!({"v": 1, "kid": "0123456789abcdef", "blob": "病历"}).to_string(),
        "{not json".to_string(),
    ] {
        let (st, v) = call(&gw.public, "POST", "/mobile/v1/sealed", &json, &bad);
        assert_eq!((st, v["code"].as_str()), (400, Some("gateway_refused")), "{bad}: {v}");
    }
    // paths of the HIS API, the console, documents — and the phone API in the clear: not
    // forwarded at all (the phone API passes only sealed)
    for path in [
        "/api/v1/users",
        "/admin/v1/apps",
        "/api/v1/sign-flows/sf_1/file",
        "/m/../Cargo.toml",
        "/metrics",
        "/mobile/v1/pending",
        "/mobile/v1/records",
    ] {
        let (st, v) = call(&gw.public, "GET", path, &[], "");
        assert_eq!((st, v["code"].as_str()), (404, Some("not_found")), "{path}: {v}");
    }
    let plain = serde_json::json!({"verifier": "cd".repeat(32), "approve": "ef".repeat(32)}).to_string();
    // (a body for a route the gateway does not have is over its cap of nothing: 413)
    assert_eq!(call(&gw.public, "POST", "/mobile/v1/unlock", &json, &plain).0, 413);
    // a body over the route's cap (5 MiB) is refused while it arrives
    let big = serde_json::json!({"v": 1, "kid": "0123456789abcdef", "blob": "A".repeat(5 << 20)}).to_string();
    assert_eq!(call(&gw.public, "POST", "/mobile/v1/sealed", &json, &big).0, 413);
    // a body where the route has none
    assert_eq!(call(&gw.public, "GET", "/mobile/v1/channel", &[], "{\"x\":1}").0, 413);
    assert_eq!(seen.lock().unwrap().len(), before, "nothing refused reached the server");

    // the server's answer is held to the allow-list too
    let (st, v) = call(&gw.public, "POST", "/mobile/v1/sealed", &json, &envelope("1111111111111111"));
    assert_eq!((st, v["code"].as_str()), (502, Some("gateway_refused")), "{v}");
    assert!(!v.to_string().contains("病历"), "{v}");
    assert_eq!(call(&gw.public, "GET", "/mobile/v1/channel?x=1", &[], "").0, 400, "a query the route does not take");
    let (st, v) = call(&gw.public, "GET", "/mobile/v1/channel", &[], "");
    assert_eq!((st, v["kid"].as_str()), (200, Some("0123456789abcdef")), "{v}");
    // a refusal in HTML reaches the phone as the gateway's JSON envelope, never as HTML
    let (st, head, v) = call_head(&gw.public, "POST", "/mobile/v1/sealed", &json, &envelope("2222222222222222"));
    assert_eq!((st, v["code"].as_str()), (409, Some("refused")), "{v}");
    assert!(head.contains("content-type: application/json") && head.contains("nosniff"), "{head}");
    assert!(!v.to_string().contains("script"));
}

#[test]
fn only_tunnel_certificates_of_the_hospital_ca_open_a_tunnel() {
    let ca = ca("医院");
    let other = ca_other();
    let gw = gateway(&ca, "127.0.0.1:0");
    let seen: Seen = Arc::default();
    let tries = [
        ("a gateway's certificate as a client", leaf(&ca, Profile::TlsServer, &["x"], "as-client"), &ca.root_pem),
        ("a staff signing certificate (no extKeyUsage)", leaf(&ca, Profile::Signer, &["张三"], "staff"), &ca.root_pem),
        ("a tunnel certificate of another CA", leaf(&other, Profile::TlsClient, &["x"], "foreign"), &ca.root_pem),
    ];
    for (what, (cert, key), trust) in &tries {
        opens_no_tunnel(&gw, &gw, tls::Files { cert, key, ca: trust }, &seen, what);
    }
    // a gateway that lists its servers lets no other one in
    let listed = gateway_for(&ca, "127.0.0.1:0", vec!["medsign-server-1".into()]);
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-9"], "unlisted");
    let files = tls::Files { cert: &cert, key: &key, ca: &ca.root_pem };
    opens_no_tunnel(&gw, &listed, files, &seen, "a server not in tunnel_peers");
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "listed");
    let stop =
        server(&gw.rt, &listed.tunnel, tls::Files { cert: &cert, key: &key, ca: &ca.root_pem }, stand_in(seen.clone()));
    wait_for("the listed server's tunnel", 10, || listed.tunnels.count() == 1);
    stop.send(true).unwrap();
    // and a server does not talk to a "gateway" whose certificate is another CA's
    let impostor = gateway(&other, "127.0.0.1:0");
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "server");
    let files = tls::Files { cert: &cert, key: &key, ca: &ca.root_pem };
    opens_no_tunnel(&gw, &impostor, files, &seen, "a server dialing an impostor");
    assert!(seen.lock().unwrap().is_empty());
}

/// A server (run in `rt`'s runtime) dialing gateway `to` with `files` has no tunnel there after
/// 1.5 s; then it stops.
fn opens_no_tunnel(rt: &Running, to: &Running, files: tls::Files, seen: &Seen, what: &str) {
    let stop = server(&rt.rt, &to.tunnel, files, stand_in(seen.clone()));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(to.tunnels.count(), 0, "{what} opened a tunnel");
    stop.send(true).unwrap();
}

fn ca_other() -> Ca {
    ca("别处")
}

/// [`ca`], where a local `ca` hides it.
fn ca_named(name: &str) -> Ca {
    ca(name)
}

#[test]
fn a_lost_gateway_is_dialled_again_and_a_stopped_server_says_goodbye() {
    let ca = ca("测试");
    let gw = gateway(&ca, "127.0.0.1:0");
    let port = gw.tunnel.clone();
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "server");
    let seen: Seen = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let stop = server(&rt, &port, tls::Files { cert: &cert, key: &key, ca: &ca.root_pem }, stand_in(seen.clone()));
    wait_for("the tunnel", 10, || gw.tunnels.count() == 1);
    // the gateway dies (every socket closed at once) and comes back on the same address
    drop(gw);
    let t = Instant::now();
    let again = gateway(&ca, &port);
    wait_for("the tunnel again", 20, || again.tunnels.count() == 1);
    eprintln!("tunnel reopened {:?} after the gateway came back", t.elapsed());
    assert_eq!(call(&again.public, "GET", "/mobile/v1/channel", &[], "").0, 200);
    // the server stops: it closes the tunnel (GOAWAY) and the gateway is no longer ready
    stop.send(true).unwrap();
    wait_for("the tunnel to close", 10, || again.tunnels.count() == 0);
    let (st, v) = call(&again.public, "GET", "/mobile/v1/channel", &[], "");
    assert_eq!((st, v["code"].as_str()), (503, Some("no_tunnel")), "{v}");
}

#[test]
fn two_servers_share_a_gateway_and_one_stopping_loses_no_request() {
    let ca = ca("测试");
    let gw = gateway(&ca, "127.0.0.1:0");
    let (seen_a, seen_b): (Seen, Seen) = (Arc::default(), Arc::default());
    let (ca_cert, ca_key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "a");
    let (cb_cert, cb_key) = leaf(&ca, Profile::TlsClient, &["medsign-server-2"], "b");
    let stop_a = server(
        &gw.rt,
        &gw.tunnel,
        tls::Files { cert: &ca_cert, key: &ca_key, ca: &ca.root_pem },
        stand_in(seen_a.clone()),
    );
    let _stop_b = server(
        &gw.rt,
        &gw.tunnel,
        tls::Files { cert: &cb_cert, key: &cb_key, ca: &ca.root_pem },
        stand_in(seen_b.clone()),
    );
    wait_for("both tunnels", 10, || gw.tunnels.count() == 2);
    for _ in 0..10 {
        assert_eq!(call(&gw.public, "GET", "/mobile/v1/channel", &[], "").0, 200);
    }
    let (a, b) = (seen_a.lock().unwrap().len(), seen_b.lock().unwrap().len());
    assert!(a > 0 && b > 0 && a + b == 10, "requests go to both servers in turn: {a} + {b}");
    // one server stops (GOAWAY) while phones keep calling: every request still gets its answer
    let public = gw.public.clone();
    let phones: Vec<_> = (0..4)
        .map(|_| {
            let public = public.clone();
            std::thread::spawn(move || {
                (0..25).map(|_| call(&public, "GET", "/mobile/v1/channel", &[], "").0).collect::<Vec<_>>()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(5));
    stop_a.send(true).unwrap();
    for p in phones {
        let statuses = p.join().unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    wait_for("one tunnel", 10, || gw.tunnels.count() == 1);
    // requests under way when it stopped were still answered by it; after that, nothing more
    let after = seen_a.lock().unwrap().len();
    for _ in 0..5 {
        assert_eq!(call(&gw.public, "GET", "/mobile/v1/channel", &[], "").0, 200);
    }
    assert_eq!(seen_a.lock().unwrap().len(), after, "a stopped server gets nothing more");
}

/// A hostile client — or one flooding — cannot take the gateway's every slot from the other
/// phones: beyond `per_address_in_flight` its calls are refused at once (429 `address_busy`),
/// another phone is served meanwhile, addresses of one IPv6 /64 count together, and the count comes
/// back as the slow calls end.
#[test]
fn one_address_cannot_hold_every_slot() {
    let ca = ca("测试");
    let gw = gateway_with(
        &ca,
        GatewayConfig {
            tunnel_listen: "127.0.0.1:0".into(),
            trusted_proxies: vec!["127.0.0.1".into()],
            per_address_in_flight: 3,
            ..GatewayConfig::default()
        },
    );
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "server");
    let seen: Seen = Arc::default();
    let _stop =
        server(&gw.rt, &gw.tunnel, tls::Files { cert: &cert, key: &key, ca: &ca.root_pem }, stand_in(seen.clone()));
    wait_for("the tunnel", 10, || gw.tunnels.count() == 1);
    let sealed = |from: &str, kid: &str| {
        let xff = format!("X-Forwarded-For: {from}");
        call(&gw.public, "POST", "/mobile/v1/sealed", &["Content-Type: application/json", &xff], &envelope(kid))
    };
    for (hog, neighbour, other) in
        [("203.0.113.7", "203.0.113.7", "203.0.113.8"), ("2001:db8::1", "2001:db8::2", "2001:db8:0:1::1")]
    {
        let slow: Vec<_> = (0..5)
            .map(|_| {
                let public = gw.public.clone();
                let hog = hog.to_string();
                std::thread::spawn(move || {
                    let xff = format!("X-Forwarded-For: {hog}");
                    let headers = ["Content-Type: application/json", xff.as_str()];
                    call(&public, "POST", "/mobile/v1/sealed", &headers, &envelope("3333333333333333")).0
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let (st, v) = sealed(neighbour, "0123456789abcdef");
        assert_eq!((st, v["code"].as_str()), (429, Some("address_busy")), "{hog} holds its 3: {v}");
        assert_eq!(sealed(other, "0123456789abcdef").0, 200, "another address is served meanwhile");
        let mut statuses: Vec<u16> = slow.into_iter().map(|t| t.join().unwrap()).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 200, 200, 429, 429], "{hog}");
        assert_eq!(sealed(hog, "0123456789abcdef").0, 200, "the count came back");
    }
}

/// A server's egress connection to the gateway's tunnel port (no ALPN `h2`), sending `head`;
/// the answer's status line and the stream, or the error that ended it.
async fn egress(
    gw: &Running,
    files: tls::Files<'_>,
    head: &str,
) -> Result<(String, tokio_rustls::client::TlsStream<tokio::net::TcpStream>), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cfg = (*tls::connector(&files).unwrap()).clone();
    cfg.alpn_protocols.clear();
    let tcp = tokio::net::TcpStream::connect(&gw.tunnel).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    s.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => got.push(b[0]),
            Ok(_) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&got))),
            Err(e) => return Err(e.to_string()),
        }
    }
    let status = String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_string();
    Ok((status, s))
}

#[test]
fn servers_reach_only_listed_destinations_and_time_through_the_gateway() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = ca("测试");
    // a destination on the internet (an echo service), and one that is not on the list
    let rt = tokio::runtime::Runtime::new().unwrap();
    let echo = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let far = echo.local_addr().unwrap().to_string();
    rt.spawn(async move {
        loop {
            let (mut c, _) = echo.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = c.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    // an NTP server upstream (a FAKE: mode 4, echoing the transmit timestamp)
    let upstream = rt.block_on(tokio::net::UdpSocket::bind("127.0.0.1:0")).unwrap();
    let ntp_up = upstream.local_addr().unwrap().to_string();
    rt.spawn(async move {
        let mut b = [0u8; 600];
        loop {
            let (n, from) = upstream.recv_from(&mut b).await.unwrap();
            let mut r = vec![0u8; 48];
            r[0] = 0x24; // version 4, mode 4
            r[1] = 2;
            r[24..32].copy_from_slice(&b[40..48]);
            r[40..48].copy_from_slice(b"SERVERTX");
            let _ = (n, upstream.send_to(&r, from).await);
        }
    });
    // a CA's CRL, published over plain HTTP
    let crl = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let crl_at = crl.local_addr().unwrap().to_string();
    let seen_headers: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = seen_headers.clone();
    let crl_app = Router::new().route(
        "/ca.crl",
        get(move |headers: HeaderMap| async move {
            seen.lock().unwrap().extend(headers.keys().map(|k| k.to_string()));
            ([("content-type", "application/pkix-crl")], "CRL BYTES")
        }),
    );
    rt.spawn(async move { axum::serve(crl, crl_app).await });
    let gw = gateway_with(
        &ca,
        GatewayConfig {
            tunnel_listen: "127.0.0.1:0".into(),
            egress_allow: vec![far.clone(), crl_at.clone()],
            ntp_listen: Some("127.0.0.1:0".into()),
            ntp_upstreams: vec![ntp_up],
            ntp_clients: vec!["127.0.0.1".into()],
            ..GatewayConfig::default()
        },
    );
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "server");
    let files = tls::Files { cert: &cert, key: &key, ca: &ca.root_pem };
    gw.rt.block_on(async {
        // a listed destination: CONNECT, then the bytes go both ways untouched
        let (st, mut s) =
            egress(&gw, files.clone(), &format!("CONNECT {far} HTTP/1.1\r\nHost: {far}\r\n\r\n")).await.unwrap();
        assert!(st.starts_with("HTTP/1.1 200"), "{st}");
        let inner = b"\x16\x03\x01 the server's own TLS to WeChat";
        s.write_all(inner).await.unwrap();
        let mut back = vec![0u8; inner.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back[..], &inner[..]);
        // a CRL by plain GET to a listed destination: forwarded without the server's headers
        let head = format!("GET http://{crl_at}/ca.crl HTTP/1.1\r\nHost: {crl_at}\r\nCookie: x=1\r\n\r\n");
        let (st, mut s) = egress(&gw, files.clone(), &head).await.unwrap();
        assert!(st.starts_with("HTTP/1.1 200"), "{st}");
        let mut body = [0u8; 9];
        s.read_exact(&mut body).await.unwrap();
        assert_eq!(&body, b"CRL BYTES");
        assert_eq!(*seen_headers.lock().unwrap(), ["host"], "only Host goes out");
        // not on the list, another port of a listed host, another host on a listed port, a
        // GET elsewhere, another method, a request that is no proxy request
        let (port, other_port) = (far.rsplit_once(':').unwrap().1, crl_at.rsplit_once(':').unwrap().1);
        for (head, want) in [
            ("CONNECT api.weixin.qq.com.invalid:443 HTTP/1.1\r\nHost: x\r\n\r\n".to_string(), "403"),
            ("CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n".to_string(), "403"),
            (format!("CONNECT 127.0.0.2:{port} HTTP/1.1\r\nHost: x\r\n\r\n"), "403"),
            (format!("GET http://127.0.0.2:{other_port}/ca.crl HTTP/1.1\r\nHost: x\r\n\r\n"), "403"),
            ("GET http://127.0.0.1/ca.crl HTTP/1.1\r\nHost: x\r\n\r\n".to_string(), "403"),
            (format!("POST http://{crl_at}/ca.crl HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), "405"),
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_string(), "405"),
        ] {
            let (st, _) = egress(&gw, files.clone(), &head).await.unwrap();
            assert!(st.contains(want), "{head:?}: {st}");
        }
        // a certificate without clientAuth (a gateway's) cannot use the egress
        let (gcert, gkey) = leaf(&ca, Profile::TlsServer, &["127.0.0.1"], "other-gateway");
        let wrong = tls::Files { cert: &gcert, key: &gkey, ca: &ca.root_pem };
        let head = format!("CONNECT {far} HTTP/1.1\r\nHost: {far}\r\n\r\n");
        assert!(egress(&gw, wrong, &head).await.is_err(), "a serverAuth certificate used the egress");
        // nor a certificate without any extKeyUsage (a doctor's signing certificate of the CA)
        let (scert, skey) = leaf(&ca, Profile::Signer, &["张三"], "staff");
        let staff = tls::Files { cert: &scert, key: &skey, ca: &ca.root_pem };
        assert!(egress(&gw, staff, &head).await.is_err(), "a staff certificate used the egress");
        // a certificate of another CA cannot either
        let other = self::ca("别家");
        let (ocert, okey) = leaf(&other, Profile::TlsClient, &["medsign-server-1"], "stranger");
        let stranger = tls::Files { cert: &ocert, key: &okey, ca: &ca.root_pem };
        assert!(egress(&gw, stranger, &head).await.is_err(), "another CA's certificate used the egress");
    });
    // without gateway.egress_allow a server's non-HTTP/2 connection is closed
    let closed = gateway(&ca, "127.0.0.1:0");
    let head = format!("CONNECT {far} HTTP/1.1\r\nHost: {far}\r\n\r\n");
    assert!(closed.rt.block_on(egress(&closed, files.clone(), &head)).is_err(), "egress without egress_allow");

    // the NTP relay: a client request comes back answered by the upstream; a control query
    // (mode 6), a private one (mode 7) and a short packet get nothing
    let relay = gw.ntp.unwrap();
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut req = [0u8; 48];
    req[0] = 0x23;
    req[40..48].copy_from_slice(b"CLIENTTX");
    c.send_to(&req, relay).unwrap();
    let mut b = [0u8; 600];
    let (n, from) = c.recv_from(&mut b).unwrap();
    assert_eq!((n, from), (48, relay));
    assert_eq!((b[0] & 7, &b[24..32], &b[40..48]), (4, &b"CLIENTTX"[..], &b"SERVERTX"[..]));
    // (versions 4 and 3: refused for their mode, not their version)
    for bad in [&[0x26u8, 2, 0, 1][..], &[0x27u8, 0, 3, 42][..], &[0x1eu8, 2, 0, 1][..], &req[..40]] {
        let mut p = bad.to_vec();
        p.resize(if bad.len() == 40 { 40 } else { 48 }, 0);
        c.send_to(&p, relay).unwrap();
        assert!(c.recv_from(&mut b).is_err(), "the relay answered {p:?}");
    }
    // a client request from an address that is no server of ours (no tunnel, not in ntp_clients)
    let stranger = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    stranger.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    stranger.send_to(&req, relay).unwrap();
    assert!(stranger.recv_from(&mut b).is_err(), "the relay answered a stranger");
    c.send_to(&req, relay).unwrap();
    assert!(c.recv_from(&mut b).is_ok(), "the relay stopped answering its client");
}

/// The serial number of the leaf certificate in `chain`.
fn serial_of(chain: &std::path::Path) -> Vec<u8> {
    Cert::from_der(&tls::load_certs(chain).unwrap()[0]).unwrap().serial().to_vec()
}

/// A CRL of `ca` numbered `number` listing `serials`.
fn crl_of(ca: &Ca, number: u64, serials: &[&[u8]]) -> Vec<u8> {
    let now = Utc::now();
    let revoked: Vec<_> =
        serials.iter().map(|s| medsign_pki::crl::Revoked { serial: s.to_vec(), time: now, reason: None }).collect();
    medsign_pki::crl::build(&ca.cert, &ca.key, now - Days::minutes(1), now + Days::days(1), number, &revoked).unwrap()
}

#[test]
fn a_revoked_server_certificate_is_refused_and_its_open_tunnel_closed() {
    let ca = ca("测试");
    let gw = gateway_with(
        &ca,
        GatewayConfig { tunnel_listen: "127.0.0.1:0".into(), crl_refresh_seconds: 1, ..GatewayConfig::default() },
    );
    let (a_cert, a_key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "a");
    let (b_cert, b_key) = leaf(&ca, Profile::TlsClient, &["medsign-server-2"], "b");
    let (a, b) = (serial_of(&a_cert), serial_of(&b_cert));
    let crl = Arc::new(Mutex::new(crl_of(&ca, 1, &[])));
    let seen: Seen = Arc::default();
    let _a = server(
        &gw.rt,
        &gw.tunnel,
        tls::Files { cert: &a_cert, key: &a_key, ca: &ca.root_pem },
        stand_in_publishing(seen.clone(), Publish::Crl(crl.clone())),
    );
    let _b = server(
        &gw.rt,
        &gw.tunnel,
        tls::Files { cert: &b_cert, key: &b_key, ca: &ca.root_pem },
        stand_in_publishing(seen.clone(), Publish::Crl(crl.clone())),
    );
    // a third server holds every CRL fetch without answering: the others' lists still arrive
    let (c_cert, c_key) = leaf(&ca, Profile::TlsClient, &["medsign-server-3"], "c");
    let _c = server(
        &gw.rt,
        &gw.tunnel,
        tls::Files { cert: &c_cert, key: &c_key, ca: &ca.root_pem },
        stand_in_publishing(seen.clone(), Publish::Stall),
    );
    wait_for("three tunnels", 10, || gw.tunnels.count() == 3);
    wait_for("the first CRL", 10, || gw.tunnels.crl_number() == Some(1));

    // server A's certificate is revoked: its open tunnel is closed, and it cannot open another
    *crl.lock().unwrap() = crl_of(&ca, 2, &[&a]);
    wait_for("CRL 2", 10, || gw.tunnels.crl_number() == Some(2));
    wait_for("A's tunnel closed", 10, || gw.tunnels.count() == 2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(gw.tunnels.count(), 2, "A dials again (backoff 0.5 s, 1 s): refused each time");
    assert!(gw.tunnels.peers().iter().all(|p| !p.contains("medsign-server-1")), "{:?}", gw.tunnels.peers());

    // what B might serve instead: a CRL of another CA of the same name (listing B), and an older
    // one (listing nobody) — neither is taken
    let forger = ca_named("测试");
    *crl.lock().unwrap() = crl_of(&forger, 3, &[&b]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((gw.tunnels.crl_number(), gw.tunnels.count()), (Some(2), 2), "a forged CRL is refused");
    *crl.lock().unwrap() = crl_of(&ca, 1, &[]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((gw.tunnels.crl_number(), gw.tunnels.count()), (Some(2), 2), "an older CRL does not bring A back");
}

#[test]
fn a_server_refuses_and_leaves_a_gateway_whose_certificate_is_revoked() {
    let ca = ca("测试");
    let gw = gateway(&ca, "127.0.0.1:0");
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "server");
    let revoked = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let asked = Arc::new(Mutex::new(Vec::<String>::new()));
    let (r, q) = (revoked.clone(), asked.clone());
    let check: tunnel::RevocationCheck = Arc::new(move |serial: String| {
        q.lock().unwrap().push(serial);
        let now = r.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { now })
    });
    let seen: Seen = Arc::default();
    let _s = server_checking(
        &gw.rt,
        &gw.tunnel,
        tls::Files { cert: &cert, key: &key, ca: &ca.root_pem },
        stand_in(seen),
        Some(check),
    );
    // revoked from the start: the server checks (the gateway's serial) and opens nothing
    wait_for("a check", 10, || !asked.lock().unwrap().is_empty());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gw.tunnels.count(), 0);
    let gateway_serial = hex::encode_upper(serial_of(&ca.dir.path().join("gateway.pem")));
    assert!(
        asked.lock().unwrap().iter().all(|s| *s == gateway_serial),
        "{:?} vs {gateway_serial}",
        asked.lock().unwrap()
    );
    // in good standing: the tunnel opens; revoked again: it is closed at the next heartbeat
    revoked.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for("the tunnel", 15, || gw.tunnels.count() == 1);
    revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_for("the tunnel closed", 10, || gw.tunnels.count() == 0);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gw.tunnels.count(), 0);
}

#[test]
fn a_server_certificate_of_a_ca_whose_crl_the_gateway_cannot_check_is_refused() {
    // the gateway trusts two roots, but checks the CRL of its own issuing CA only
    let (ca, other) = (ca("医院"), ca_other());
    let both = ca.dir.path().join("both.pem");
    let roots = std::fs::read_to_string(&ca.root_pem).unwrap() + &std::fs::read_to_string(&other.root_pem).unwrap();
    std::fs::write(&both, roots).unwrap();
    let gw = gateway_with(
        &ca,
        GatewayConfig {
            tunnel_listen: "127.0.0.1:0".into(),
            tunnel_ca: Some(both.clone()),
            ..GatewayConfig::default()
        },
    );
    let seen: Seen = Arc::default();
    let (cert, key) = leaf(&other, Profile::TlsClient, &["medsign-server-9"], "other");
    let files = tls::Files { cert: &cert, key: &key, ca: &ca.root_pem };
    opens_no_tunnel(&gw, &gw, files, &seen, "a server certificate of the other CA");
    let (cert, key) = leaf(&ca, Profile::TlsClient, &["medsign-server-1"], "own");
    let _stop = server(&gw.rt, &gw.tunnel, tls::Files { cert: &cert, key: &key, ca: &ca.root_pem }, stand_in(seen));
    wait_for("a tunnel of the gateway's own CA", 10, || gw.tunnels.count() == 1);
}
