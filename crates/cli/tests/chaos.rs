//! Issue #17, "done when": the hospital's layout on one machine — two `medsign serve` on one
//! PostgreSQL, two `medsign gateway` processes, phones that reach only the gateways (every call
//! sealed end to end), an HIS that reaches only the servers — runs 1,000 scan-sign flows and a
//! timestamp load, and in the middle one server and then one gateway are killed with SIGKILL.
//! Clients retry as the real ones do (the HIS with its Idempotency-Key on the other server, the
//! phone on the other gateway, a signing round started again when its answer was lost). At the
//! end: every flow completed, each with exactly one signature (one finished round, one
//! SignerInfo), no flow made twice, the audit chain intact.
//!
//! The hosts live in network namespaces of their own (`common::netns`: phones, two gateways, two
//! servers, the HIS, a database-and-time host, joined by bridges as a hospital's firewalls
//! would): a phone can reach only the gateways, the HIS only the servers, and the test shows it
//! by trying the other ways. Where namespaces cannot be made (not root), distinct loopback
//! addresses stand in, and the test says so.
//! PostgreSQL only (scripts/test starts one; CI without it fails).

mod common;
use common::netns::{Host, Net, Relay};
use common::*;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const FLOWS: usize = 1000;
const DOCTORS: usize = 100;
const PHONES: usize = 10;
/// Kill a server after this many flows, a gateway after this many.
const KILL_SERVER_AT: usize = 300;
const KILL_GATEWAY_AT: usize = 600;

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A gateway: its public address, the channel key it forwards to (key, kid).
#[derive(Clone)]
struct Gw {
    addr: String,
    key: medsign_crypto::sm2::Sm2PublicKey,
    kid: String,
}

/// What the clients went through.
#[derive(Default)]
struct Tally {
    /// retries by reason
    retries: Mutex<BTreeMap<String, usize>>,
    /// answers that are no client's fault and not a crash's (5xx other than 502–504 from a dead
    /// peer), with where
    faults: Mutex<Vec<String>>,
}

impl Tally {
    fn retry(&self, why: impl Into<String>) {
        *self.retries.lock().unwrap().entry(why.into()).or_default() += 1;
    }
}

/// Whether an answer means "try again, maybe elsewhere": no answer, the gateway had no live
/// tunnel or lost the request (502/503/504), a rate limit (429).
fn transient(st: u16) -> bool {
    matches!(st, 429 | 502 | 503 | 504)
}

/// A sealed phone-API call through the gateways, starting at `first`, moving to the next on no
/// answer or a transient one; (status, inner body).
fn phone(
    gws: &[Gw],
    doc: &Doctor,
    first: usize,
    tally: &Tally,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    for attempt in 0..120 {
        let g = &gws[(first + attempt) % gws.len()];
        let (env, opener) = seal_call(&g.key, &g.kid, method, path, Some(&doc.token), body);
        let json = [("Content-Type", "application/json")];
        let got = try_request_from(Some(doc.ip), &g.addr, "POST", "/mobile/v1/sealed", &json, env.as_bytes());
        let why = match got {
            Err(e) => format!("phone: no answer from a gateway ({:?})", e.kind()),
            Ok((200, _, b)) => {
                let outer: serde_json::Value = serde_json::from_slice(&b).unwrap();
                let inner =
                    opener.open(&b64.decode(outer["blob"].as_str().unwrap()).unwrap()).expect("the answer opens");
                let inner: serde_json::Value = serde_json::from_slice(&inner).unwrap();
                let st = inner["status"].as_u64().unwrap() as u16;
                if !transient(st) {
                    return (st, inner["body"].clone());
                }
                format!("phone: {st} inside the envelope ({path})")
            }
            Ok((st, _, _)) if transient(st) => format!("phone: {st} from the gateway"),
            Ok((st, _, b)) => return (st, serde_json::from_slice(&b).unwrap_or_default()),
        };
        tally.retry(why);
        std::thread::sleep(Duration::from_millis(50 * (attempt as u64 + 1).min(10)));
    }
    panic!("{method} {path}: no gateway answered for two minutes");
}

/// An HIS call to the servers, starting at `first`, moving on as [`phone`] does; `key` is the
/// Idempotency-Key of a creation (so a retry on the other server finds the first's result).
/// The HIS's side: the servers, its app token, the tally of retries.
struct His<'a> {
    servers: &'a [String],
    token: &'a str,
    tally: &'a Tally,
}

fn his(h: &His, first: usize, method: &str, path: &str, body: &str, key: Option<&str>) -> (u16, serde_json::Value) {
    let (servers, tally) = (h.servers, h.tally);
    let auth = format!("Bearer {}", h.token);
    let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    if let Some(k) = key {
        headers.push(("Idempotency-Key", k));
    }
    // a creation whose first attempt died with its instance waits for the reservation to be
    // taken over (RUNNING_SECS): three minutes in all
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut attempt = 0;
    while Instant::now() < deadline {
        let addr = &servers[(first + attempt) % servers.len()];
        match try_request_from(None, addr, method, path, &headers, body.as_bytes()) {
            Ok((st, _, b)) if !transient(st) => {
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
                if st == 409 && v["code"] == "idempotency_in_progress" {
                    tally.retry("HIS: 409 idempotency_in_progress (the first attempt's instance died)");
                    std::thread::sleep(Duration::from_secs(2));
                    continue;
                }
                if st >= 500 {
                    tally.faults.lock().unwrap().push(format!("HIS {method} {path} on {addr}: {st} {v}"));
                }
                return (st, v);
            }
            Ok((st, _, _)) => tally.retry(format!("HIS: {st}")),
            Err(e) => tally.retry(format!("HIS: no answer from a server ({:?})", e.kind())),
        }
        attempt += 1;
        std::thread::sleep(Duration::from_millis(50 * (attempt as u64).min(10)));
    }
    panic!("{method} {path}: no server answered for three minutes");
}

/// Counts a phone client out when it ends, by returning or by a failed assertion.
struct Leaving<'a>(&'a AtomicUsize);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Where the hosts are: network namespaces when this machine can make them, distinct loopback
/// addresses otherwise.
struct Layout {
    net: Option<Net>,
}

impl Layout {
    fn new() -> Layout {
        match Net::try_new(2, 2, DOCTORS) {
            Ok(net) => {
                eprintln!("layout: network namespaces (phones | gateways | servers | HIS, database host)");
                Layout { net: Some(net) }
            }
            // as root the namespaces must be made: a test that quietly lost its isolation would still pass
            Err(why) if is_root() => panic!("network namespaces could not be made as root: {why}"),
            Err(why) => {
                eprintln!("layout: distinct loopback addresses — no network namespaces here ({why})");
                Layout { net: None }
            }
        }
    }

    /// Doctor `i`'s phone's address: each phone on its own, as on its own network.
    fn phone_ip(&self, i: usize) -> std::net::IpAddr {
        match &self.net {
            Some(net) => net.phone(i).into(),
            None => std::net::Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8).into(),
        }
    }

    /// `cmd` run on host `h`.
    fn on(&self, h: Host, cmd: std::process::Command) -> std::process::Command {
        match &self.net {
            Some(net) => net.command(h, &cmd),
            None => cmd,
        }
    }

    /// Server `i`'s listening address (its HIS side).
    fn server_listen(&self, i: usize) -> String {
        self.net.as_ref().map_or("127.0.0.1:0".into(), |n| format!("{}:0", n.server_api(i)))
    }

    /// Gateway `j`'s addresses: for the phones, for the tunnels.
    fn gateway_listen(&self, j: usize) -> (String, String) {
        match &self.net {
            Some(n) => (format!("{}:0", n.gateway_public(j)), format!("{}:7443", n.gateway_dmz(j))),
            None => ("127.0.0.1:0".into(), free_port()),
        }
    }

    /// The names in the gateways' tunnel certificate.
    fn gateway_names(&self) -> Vec<String> {
        match &self.net {
            Some(n) => (0..n.gateways).map(|j| n.gateway_dmz(j).to_string()).collect(),
            None => vec!["127.0.0.1".into()],
        }
    }
}

/// One doctor's phone: its session and key share.
struct Doctor {
    ip: std::net::IpAddr,
    no: String,
    token: String,
    share: medsign_crypto::twoparty::ClientKeyShare,
}

#[test]
fn servers_and_gateways_killed_during_a_thousand_scan_signs_lose_nothing() {
    let Some(admin) = std::env::var("MEDSIGN_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(std::env::var("CI").is_err(), "CI must test PostgreSQL: run scripts/test");
        eprintln!("note: this test needs PostgreSQL (MEDSIGN_TEST_POSTGRES_URL unset; scripts/test sets it)");
        return;
    };
    let t0 = Instant::now();
    let (d, da, db) = (Dir::new(), Dir::new(), Dir::new());
    let layout = Layout::new();
    let url = fresh_database(&d, "chaos");
    // the servers reach PostgreSQL on the database host (a relay to where scripts/test runs it)
    let (ntp, served_url, _relay) = match &layout.net {
        Some(net) => {
            let (at, rest) = url.rsplit_once('@').unwrap();
            let (upstream, name) = rest.split_once('/').unwrap();
            let listen = std::net::SocketAddr::new(net.db().into(), 5432);
            let relay = Relay::start(net, Host::Db, listen, upstream.parse().unwrap()).unwrap();
            (Chrony::start_in(&d, "ntp", net), format!("{at}@{listen}/{name}"), Some(relay))
        }
        None => (Chrony::start(&d, "ntp", None, false), url.clone(), None),
    };
    let kek = random_kek();
    let time = ntp.source();
    let base: Vec<(&str, &str)> = vec![
        ("MEDSIGN_DATABASE_URL", &url),
        ("MEDSIGN_KEK", &kek),
        ("MEDSIGN_SERVER_PUBLIC_URL", "https://sign.example"),
        ("NO_COLOR", "1"),
    ];
    // the hospital CA exists once medsign has run; then the tunnel certificates from it
    let first = Server::start(&da, &base);
    let root = first.token().unwrap();
    for (role, names, out, ca) in [
        ("gateway", layout.gateway_names(), "gateway", true),
        ("server", vec!["medsign-server".into()], "server", false),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_medsign"));
        cmd.args(["gateway", "cert", "--role", role, "--out-cert", &d.p(&format!("{out}.pem"))]);
        for name in &names {
            cmd.args(["--name", name]);
        }
        cmd.args(["--out-key", &d.p(&format!("{out}.key"))]);
        if ca {
            cmd.args(["--out-ca", &d.p("tunnel-ca.pem")]);
        }
        let o = cmd.envs(base.iter().copied()).output().unwrap();
        assert_ok(&o, "medsign gateway cert");
    }
    assert_eq!(first.stop(), 0);

    // two gateways (processes, so they can be killed), each with its own tunnel port
    let gateway = |j: usize| {
        let (public, tunnel) = layout.gateway_listen(j);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_medsign"));
        cmd.arg("gateway")
            .envs([
                ("MEDSIGN_GATEWAY_LISTEN", public.as_str()),
                ("MEDSIGN_GATEWAY_TUNNEL_LISTEN", &tunnel),
                ("MEDSIGN_GATEWAY_TUNNEL_CERT", &d.p("gateway.pem")),
                ("MEDSIGN_GATEWAY_TUNNEL_KEY", &d.p("gateway.key")),
                ("MEDSIGN_GATEWAY_TUNNEL_CA", &d.p("tunnel-ca.pem")),
                ("MEDSIGN_GATEWAY_HEARTBEAT_SECONDS", "1"),
                ("MEDSIGN_GATEWAY_REQUEST_TIMEOUT_SECONDS", "30"),
                ("NO_COLOR", "1"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        (Server::spawn(layout.on(Host::Gateway(j), cmd)), tunnel)
    };
    let ((g1, t1), (g2, t2)) = (gateway(0), gateway(1));
    let tunnels = format!("{t1},{t2}");
    let (cert, key, ca) = (d.p("server.pem"), d.p("server.key"), d.p("tunnel-ca.pem"));
    let mut env = base.clone();
    env.retain(|(k, _)| *k != "MEDSIGN_DATABASE_URL");
    env.extend([
        ("MEDSIGN_DATABASE_URL", served_url.as_str()),
        // (only the servers ask the clock: the database host is not reachable from here)
        ("MEDSIGN_TIME_SOURCES", &time),
        ("MEDSIGN_TIME_POLL_SECONDS", "1"),
        ("MEDSIGN_TUNNEL_GATEWAYS", tunnels.as_str()),
        ("MEDSIGN_TUNNEL_CERT", &cert),
        ("MEDSIGN_TUNNEL_KEY", &key),
        ("MEDSIGN_TUNNEL_CA", &ca),
        ("MEDSIGN_TUNNEL_HEARTBEAT_SECONDS", "1"),
    ]);
    let serve = |i: usize, dir: &Dir| {
        Server::spawn(layout.on(Host::Server(i), Server::command_on(dir, &env, &layout.server_listen(i))))
    };
    let (a, b) = (serve(0, &da), serve(1, &db));
    wait_clock(&a, "INSYNC");
    wait_clock(&b, "INSYNC");
    let servers = [a.addr.clone(), b.addr.clone()];
    let (st, app) = a.json(
        "POST",
        "/admin/v1/apps",
        Some(&root),
        r#"{"name":"HIS","scopes":["sign","verify","users:read","users:write","timestamps"]}"#,
    );
    assert_eq!(st, 201, "{app}");
    let token = app["token"].as_str().unwrap().to_string();
    // both gateways serve the phones once both servers' tunnels are up
    let gws: Vec<Gw> = [&g1, &g2]
        .iter()
        .map(|g| {
            let t = Instant::now();
            loop {
                let (_, _, r) = request(&g.addr, "GET", "/readyz", &[], b"");
                let ready: serde_json::Value = serde_json::from_slice(&r).unwrap_or_default();
                if ready["tunnels"] == 2 {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(30), "gateway {} never saw both tunnels: {ready}", g.addr);
                std::thread::sleep(Duration::from_millis(100));
            }
            let (key, kid, _) = channel_of(&g.addr);
            Gw { addr: g.addr.clone(), key, kid }
        })
        .collect();

    // the doctors, and their phones bound and enrolled through the gateways
    let users: Vec<_> = (0..DOCTORS)
        .map(|i| serde_json::json!({"employee_no": format!("D{i:03}"), "name": format!("医生{i}")}))
        .collect();
    let (st, v) = a.json("POST", "/api/v1/users", Some(&token), &serde_json::Value::Array(users).to_string());
    assert_eq!(st, 201, "{v}");
    let next = AtomicUsize::new(0);
    let doctors: Vec<Doctor> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..PHONES)
            .map(|p| {
                let (gws, a, token, next, layout) = (&gws, &a, &token, &next, &layout);
                sc.spawn(move || {
                    let mut mine = Vec::new();
                    while let Some(i) = Some(next.fetch_add(1, Ordering::SeqCst)).filter(|i| *i < DOCTORS) {
                        let no = format!("D{i:03}");
                        let g = &gws[p % 2];
                        let mut phone = Endpoint::sealed(&g.addr).0;
                        phone.from = Some(layout.phone_ip(i));
                        let (token, share) = phone_enrol(a, &phone, token, &no);
                        mine.push(Doctor { ip: layout.phone_ip(i), no, token, share });
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(doctors.len(), DOCTORS);
    eprintln!("set up in {:?}: 2 servers, 2 gateways, {DOCTORS} phones", t0.elapsed());
    if let Some(net) = &layout.net {
        the_layout_holds(net, &a.addr, &gws[0].addr, &t1);
    }

    // the run: PHONES clients, each with its doctors, flows created by the HIS and scanned by
    // the phone; two timestamp clients; the killer
    let tally = Tally::default();
    let done = AtomicUsize::new(0);
    let started = AtomicUsize::new(0);
    // phone clients that have ended, however: the others stop waiting when all have
    let ended = AtomicUsize::new(0);
    let stop_ts = AtomicBool::new(false);
    let stamps = AtomicUsize::new(0);
    let (b, g2) = (Mutex::new(Some(b)), Mutex::new(Some(g2)));
    let kills = Mutex::new(Vec::new());
    let flows: Mutex<Vec<String>> = Mutex::default();
    let t_run = Instant::now();
    let hh = His { servers: &servers, token: &token, tally: &tally };
    std::thread::scope(|sc| {
        for p in 0..PHONES {
            let (doctors, gws, hh, done, started, flows, ended) =
                (&doctors, &gws, &hh, &done, &started, &flows, &ended);
            sc.spawn(move || {
                let _leaving = Leaving(ended);
                let mine: Vec<&Doctor> = doctors.iter().skip(p).step_by(PHONES).collect();
                while let Some(n) = Some(started.fetch_add(1, Ordering::SeqCst)).filter(|n| *n < FLOWS) {
                    let doc = mine[n % mine.len()];
                    // the HIS makes the flow (retry-safe: its Idempotency-Key)
                    let body = serde_json::json!({"kind": "data", "title": format!("检验报告 No.{n}"),
                        "content": format!("WBC {n} x10^9/L"), "signers": [{"employee_no": doc.no, "mode": "scan"}]});
                    let key = format!("chaos-flow-{n}");
                    let (st, f) = his(hh, n, "POST", "/api/v1/sign-flows", &body.to_string(), Some(&key));
                    assert_eq!(st, 201, "flow {n}: {f}");
                    let id = f["id"].as_str().unwrap().to_string();
                    flows.lock().unwrap().push(id.clone());
                    let ticket = f["ticket"]["deep_link"].as_str().unwrap().rsplit("t=").next().unwrap().to_string();
                    sign_one(gws, hh, n, doc, &id, &ticket);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        for t in 0..2 {
            let (hh, stop_ts, stamps) = (&hh, &stop_ts, &stamps);
            sc.spawn(move || {
                let mut i = t;
                while !stop_ts.load(Ordering::SeqCst) {
                    let digest = hex::encode(medsign_crypto::hash::sm3(format!("stamp {i}").as_bytes()));
                    let body = serde_json::json!({"digest": digest, "algorithm": "sm3"}).to_string();
                    let (st, v) = his(hh, i, "POST", "/api/v1/timestamps", &body, None);
                    assert_eq!(st, 201, "timestamp {i}: {v}");
                    stamps.fetch_add(1, Ordering::SeqCst);
                    i += 2;
                }
            });
        }
        // the killer: SIGKILL one server, later one gateway, while everything runs
        let (done, b, g2, kills, stop_ts, ended) = (&done, &b, &g2, &kills, &stop_ts, &ended);
        sc.spawn(move || {
            let wait_for = |n: usize| {
                while done.load(Ordering::SeqCst) < n && ended.load(Ordering::SeqCst) < PHONES {
                    std::thread::sleep(Duration::from_millis(10));
                }
            };
            wait_for(KILL_SERVER_AT);
            b.lock().unwrap().as_mut().unwrap().kill9();
            kills.lock().unwrap().push(format!("server B killed at {} flows", done.load(Ordering::SeqCst)));
            wait_for(KILL_GATEWAY_AT);
            g2.lock().unwrap().as_mut().unwrap().kill9();
            kills.lock().unwrap().push(format!("gateway 2 killed at {} flows", done.load(Ordering::SeqCst)));
            wait_for(FLOWS);
            while ended.load(Ordering::SeqCst) < PHONES {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop_ts.store(true, Ordering::SeqCst);
        });
    });
    let run = t_run.elapsed();
    let retries = tally.retries.lock().unwrap().clone();
    eprintln!(
        "{FLOWS} flows and {} timestamps in {run:?}; {:?}; retries: {retries:#?}",
        stamps.load(Ordering::SeqCst),
        kills.lock().unwrap()
    );
    let tokens_answered = stamps.load(Ordering::SeqCst);

    // what the database holds
    let q = |sql: &str| psql(&d, &url, sql);
    let mut problems = tally.faults.lock().unwrap().clone();
    let flows = flows.into_inner().unwrap();
    let mut ids = flows.clone();
    ids.sort();
    ids.dedup();
    if ids.len() != FLOWS {
        problems.push(format!("{} distinct flows for {FLOWS} creations", ids.len()));
    }
    let made = q("SELECT COUNT(*) FROM sign_flows");
    if made != [FLOWS.to_string()] {
        problems.push(format!("{made:?} flows in the database, not {FLOWS}: a retried creation made a second one"));
    }
    let states = q("SELECT state, COUNT(*) FROM sign_flows GROUP BY state ORDER BY state");
    if states != [format!("completed|{FLOWS}")] {
        problems.push(format!("flows by state: {states:?}"));
    }
    let twice =
        q("SELECT flow_id, COUNT(*) FROM sign_rounds WHERE state = 'done' GROUP BY flow_id HAVING COUNT(*) <> 1");
    if !twice.is_empty() {
        problems.push(format!("flows with other than one finished round: {twice:?}"));
    }
    // every token a client got is on record (and each flow's signature has one too)
    let tokens: usize = q("SELECT COUNT(*) FROM timestamps")[0].parse().unwrap();
    let answered = tokens_answered;
    if tokens < answered + FLOWS {
        problems.push(format!("{tokens} timestamps on record for {answered} answered and {FLOWS} flows"));
    }
    let unsigned = q("SELECT COUNT(*) FROM flow_signers WHERE state <> 'signed'");
    if unsigned != ["0"] {
        problems.push(format!("{unsigned:?} signers not signed"));
    }
    // each signature: one SignerInfo, by the doctor the flow named
    for row in q("SELECT id, signature_b64 FROM sign_flows") {
        let (id, sig) = row.split_once('|').unwrap();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig).unwrap();
        let n = medsign_pki::cms::Parsed::from_bytes(&der).unwrap().signer_infos().len();
        if n != 1 {
            problems.push(format!("flow {id}: {n} signatures"));
        }
    }
    let logged_a: Vec<String> =
        a.log.lock().unwrap().iter().filter(|l| l.contains("ERROR") || l.contains("panicked")).cloned().collect();
    if !logged_a.is_empty() {
        problems.push(format!("server A logged errors: {:#?}", &logged_a[..logged_a.len().min(20)]));
    }
    assert_eq!(a.stop(), 0);
    let o = d.medsign(&["audit", "verify", "--database-url", &url]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    if !(o.status.success() && out.contains("intact")) {
        problems.push(format!("medsign audit verify: {out}"));
    }
    drop(g1);
    drop_database(&d, &admin, &url);
    assert!(problems.is_empty(), "after the kills:\n- {}", problems.join("\n- "));
    // the kills fell inside the run, and the clients felt them
    let kills = kills.into_inner().unwrap();
    let at: Vec<usize> = kills.iter().filter_map(|k| k.split(" at ").nth(1)?.split(' ').next()?.parse().ok()).collect();
    assert!(at.len() == 2 && at.iter().all(|n| *n < FLOWS), "the kills missed the run: {kills:?}");
    let felt = |who: &str| retries.iter().filter(|(k, _)| k.starts_with(who) && k.contains("no answer")).count();
    assert!(felt("HIS") > 0 && felt("phone") > 0, "no client met a dead peer: {retries:?}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
}

/// Each client host reaches its own side and nothing else: phones only the gateways' public side,
/// the HIS only the servers, a gateway neither a server's listener nor the database.
fn the_layout_holds(net: &Net, api: &str, public: &str, tunnel: &str) {
    let port = |addr: &str| addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let at = |ip: std::net::Ipv4Addr, p: u16| std::net::SocketAddr::new(ip.into(), p);
    let (api, public, tunnel) = (port(api), port(public), port(tunnel));
    // each host is entered and reaches what it should (the other gateway's tunnel port for a gateway)
    for (h, to) in [
        (Host::Phones, at(net.gateway_public(0), public)),
        (Host::His, at(net.server_api(0), api)),
        (Host::Gateway(0), at(net.gateway_dmz(1), tunnel)),
    ] {
        net.probe(h, to).unwrap_or_else(|e| panic!("{h:?} cannot reach {to}: {e}"));
    }
    // and has no route to the rest: unreachable, not merely refused (nothing listening would say
    // nothing about the layout); a gateway's way to a server's DMZ address is the tunnel's own
    for (h, to) in [
        (Host::Phones, at(net.server_api(0), api)),
        (Host::Phones, at(net.server_dmz(0), api)),
        (Host::Phones, at(net.gateway_dmz(0), tunnel)),
        (Host::Phones, at(net.db(), 5432)),
        (Host::His, at(net.gateway_public(0), public)),
        (Host::His, at(net.gateway_dmz(0), tunnel)),
        (Host::His, at(net.db(), 5432)),
        (Host::Gateway(0), at(net.server_api(0), api)),
        (Host::Gateway(0), at(net.db(), 5432)),
    ] {
        use std::io::ErrorKind::{HostUnreachable, NetworkUnreachable, TimedOut};
        match net.probe(h, to) {
            Ok(()) => panic!("{h:?} reached {to}: the layout leaks"),
            Err(e) => assert!(matches!(e.kind(), NetworkUnreachable | HostUnreachable | TimedOut), "{h:?} → {to}: {e}"),
        }
    }
}

/// The doctor scans `ticket` and signs, as the app does on trouble: a call without an answer is
/// made again through the other gateway; a round whose answer was lost is begun again (the flow,
/// not the used ticket); a flow found completed is done.
fn sign_one(gws: &[Gw], hh: &His, n: usize, doc: &Doctor, id: &str, ticket: &str) {
    let tally = hh.tally;
    let completed = || {
        let (st, f) = his(hh, n, "GET", &format!("/api/v1/sign-flows/{id}"), "", None);
        assert_eq!(st, 200, "{f}");
        f["state"] == "completed"
    };
    for attempt in 0..20 {
        let target =
            if attempt == 0 { serde_json::json!({"ticket": ticket}) } else { serde_json::json!({"flow_id": id}) };
        let body = serde_json::json!({"targets": [target]}).to_string();
        let (st, v) = phone(gws, doc, n + attempt, tally, "POST", "/mobile/v1/sign-rounds", &body);
        if st == 409 && completed() {
            return;
        }
        if st != 201 {
            tally.retry(format!("phone: sign-rounds {st} {}", v["code"]));
            continue;
        }
        let rounds = v["rounds"].as_array().unwrap().clone();
        let mut sessions = Vec::new();
        let mut answers = Vec::new();
        for r in &rounds {
            let e: [u8; 32] = hex::decode(r["e"].as_str().unwrap()).unwrap().try_into().unwrap();
            let (session, req) = doc.share.begin_sign(&e).unwrap();
            sessions.push(session);
            answers.push(serde_json::json!({"round_id": r["round_id"], "request": req}));
        }
        let unlock = serde_json::json!({"verifier": PIN, "approve": rounds_digest(&rounds)}).to_string();
        let (st, v) = phone(gws, doc, n + attempt, tally, "POST", "/mobile/v1/unlock", &unlock);
        if st != 200 {
            tally.retry(format!("phone: unlock {st} {}", v["code"]));
            continue;
        }
        let body = serde_json::json!({ "answers": answers }).to_string();
        let (st, v) = phone(gws, doc, n + attempt, tally, "POST", "/mobile/v1/sign-rounds/answers", &body);
        if st != 200 {
            tally.retry(format!("phone: answers {st} {}", v["code"]));
            continue;
        }
        let signatures: Vec<serde_json::Value> = sessions
            .into_iter()
            .zip(v["responses"].as_array().unwrap())
            .zip(&rounds)
            .map(|((session, resp), r)| {
                let resp: medsign_crypto::twoparty::SignResponse = serde_json::from_value(resp.clone()).unwrap();
                serde_json::json!({"round_id": r["round_id"], "signature": hex::encode(session.finish(&resp).unwrap().to_der())})
            })
            .collect();
        let body = serde_json::json!({ "signatures": signatures }).to_string();
        let (st, v) = phone(gws, doc, n + attempt, tally, "POST", "/mobile/v1/sign-rounds/signatures", &body);
        if st == 200 && v["results"][0]["state"] == "completed" {
            return;
        }
        if completed() {
            tally.retry("phone: signatures answer lost, the flow was completed");
            return;
        }
        tally.retry(format!("phone: signatures {st} {}", v["code"]));
    }
    panic!("flow {id} ({n}) was never signed");
}
