//! Two `medsign serve` on one PostgreSQL database (R4.7: instances behind a load balancer share
//! the database). The bug report this reproduces: "two instances — 22 % of 160 parallel user
//! creations and 50 % of 40 parallel signing flows answered 503, 5 flows stayed in `signing`
//! (duplicate key … audit_log_pkey); one instance alone had no failures". Each instance has its
//! own data directory; both share the database, the KEK (`MEDSIGN_KEK`) and the public URL, as a
//! cluster is configured. PostgreSQL only (scripts/test starts one; CI without it fails).

mod common;
use common::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What both instances are reached at (the load balancer's URL): CRL/OCSP links, QR codes.
const PUBLIC_URL: &str = "https://sign.example";

/// The admin URL of the test PostgreSQL server, or `None` (skip) outside CI.
fn postgres_or_skip() -> Option<String> {
    let Some(admin) = std::env::var("MEDSIGN_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(std::env::var("CI").is_err(), "CI must test PostgreSQL: run scripts/test");
        eprintln!("note: the cluster tests need PostgreSQL (MEDSIGN_TEST_POSTGRES_URL unset; scripts/test sets it)");
        return None;
    };
    Some(admin)
}

fn count(d: &Dir, url: &str, sql: &str) -> usize {
    psql(d, url, sql).first().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The environment of one instance of the cluster.
fn instance_env<'a>(url: &'a str, kek: &'a str, time: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MEDSIGN_DATABASE_URL", url),
        ("MEDSIGN_KEK", kek),
        ("MEDSIGN_SERVER_PUBLIC_URL", PUBLIC_URL),
        ("MEDSIGN_TIME_SOURCES", time),
        ("MEDSIGN_TIME_POLL_SECONDS", "1"),
        ("NO_COLOR", "1"),
    ]
}

/// The errors the server logged (the database's own words, panics), by text, with counts.
fn log_errors(s: &Server) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in s.log.lock().unwrap().iter() {
        // drop colour codes: ESC [ … letter
        let mut plain = String::new();
        let mut it = line.chars();
        while let Some(c) = it.next() {
            if c == '\u{1b}' {
                it.by_ref().find(|c| c.is_ascii_alphabetic());
            } else {
                plain.push(c);
            }
        }
        let what = match plain.split_once(" error=") {
            Some((_, e)) => e.split(" request_id=").next().unwrap_or(e).to_string(),
            None if plain.contains("panicked") => plain,
            None => continue,
        };
        *out.entry(what).or_default() += 1;
    }
    out
}

/// `medsign audit verify` on the database: (intact, output).
fn audit_verify(d: &Dir, url: &str) -> (bool, String) {
    let o = d.medsign(&["audit", "verify", "--database-url", url]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    (o.status.success() && out.contains("intact"), out)
}

/// One request of the burst: what, to which instance, the answer.
struct Answer {
    what: &'static str,
    instance: char,
    status: u16,
    body: serde_json::Value,
}

#[test]
fn two_instances_on_one_postgresql_take_parallel_writes() {
    let Some(admin) = postgres_or_skip() else { return };
    let (da, db) = (Dir::new(), Dir::new());
    let ntp = Chrony::start(&da, "ntp", None, false);
    let url = fresh_database(&da, "cluster");
    let kek = random_kek();
    let time = ntp.source();
    let env = instance_env(&url, &kek, &time);
    let a = Server::start(&da, &env);
    let root = a.token().expect("bootstrap token of the first instance");
    let b = Server::start(&db, &env);
    assert!(b.token().is_none(), "the second instance made a second bootstrap token: {:#?}", b.stderr_lines);
    wait_clock(&a, "INSYNC");
    wait_clock(&b, "INSYNC");
    let his = his_app(&a, &root);
    // before the burst, one at a time: each instance checks the app token once (Argon2; the
    // burst is about writes, not about the credential cache's rate limit). The hospital seal's
    // certificate is not made beforehand: the burst's first flows race to make it, on both
    // instances
    for s in [&a, &b] {
        let (st, _, v) = s.req("GET", "/api/v1/users/warm-up", Some(&his), None, b"");
        assert_eq!(st, 404, "{v}");
    }

    // the burst: 160 user creations and 40 flows signed by the hospital seal, interleaved,
    // alternating the instances, 16 clients at once
    let (hook, hooks) = receiver_after(Duration::from_millis(300));
    let jobs: Vec<(&'static str, usize)> = (0..200).map(|i| (if i % 5 == 4 { "flow" } else { "user" }, i)).collect();
    let next = AtomicUsize::new(0);
    let answers = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..16 {
            sc.spawn(|| {
                while let Some(&(what, i)) = jobs.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let (s, instance) = if i % 2 == 0 { (&a, 'A') } else { (&b, 'B') };
                    let (path, body) = match what {
                        "user" => (
                            "/api/v1/users",
                            serde_json::json!({"employee_no": format!("C{i:04}"), "name": format!("测试{i}")}),
                        ),
                        _ => (
                            "/api/v1/sign-flows",
                            serde_json::json!({"kind": "data", "title": format!("检验报告 No.{i}"),
                                "content": format!("WBC {i} x10^9/L"), "signers": [{"seal": "hospital"}],
                                "callback_url": hook}),
                        ),
                    };
                    let (status, body) = s.json("POST", path, Some(&his), &body.to_string());
                    answers.lock().unwrap().push(Answer { what, instance, status, body });
                }
            });
        }
    });
    let answers = answers.into_inner().unwrap();
    assert_eq!(answers.len(), 200);

    let mut problems = Vec::new();
    // every request answered 2xx
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    for x in answers.iter().filter(|x| !(200..300).contains(&x.status)) {
        let mut body = x.body.clone();
        body.as_object_mut().map(|o| o.remove("request_id"));
        *refused.entry(format!("{} on {}: {} {body}", x.what, x.instance, x.status)).or_default() += 1;
    }
    if !refused.is_empty() {
        let n = |w: &str| answers.iter().filter(|x| x.what == w && !(200..300).contains(&x.status)).count();
        problems.push(format!(
            "{} of 160 user creations and {} of 40 flows were not answered 2xx (answers by request, instance, status and body): {refused:#?}",
            n("user"),
            n("flow")
        ));
    }
    let created: Vec<String> = answers
        .iter()
        .filter(|x| x.what == "flow" && x.status == 201)
        .filter_map(|x| x.body["id"].as_str().map(str::to_string))
        .collect();

    // no flow left half-done: a flow is `signing` only while its request runs
    let deadline = Instant::now() + Duration::from_secs(10);
    let by_state = "SELECT state, COUNT(*) FROM sign_flows WHERE title <> '预热' GROUP BY state ORDER BY state";
    let mut states = psql(&da, &url, by_state);
    while states.iter().any(|l| l.starts_with("signing|")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        states = psql(&da, &url, by_state);
    }
    let stuck = psql(&da, &url, "SELECT id FROM sign_flows WHERE state = 'signing' ORDER BY id");
    if !stuck.is_empty() {
        problems.push(format!("{} flows stayed in `signing` (flows by state: {states:?}): {stuck:?}", stuck.len()));
    }
    let completed =
        psql(&da, &url, "SELECT id FROM sign_flows WHERE state = 'completed' AND title <> '预热' ORDER BY id");
    if completed.len() != 40 {
        problems.push(format!("{} of 40 flows completed (flows by state: {states:?})", completed.len()));
    }
    let users = count(&da, &url, "SELECT COUNT(*) FROM users WHERE employee_no LIKE 'C%'");
    if users != 160 {
        problems.push(format!("{users} of 160 users are in the database"));
    }

    // every webhook delivered exactly once, although both instances run the delivery job
    // (every 2 s): wait until the database has them all delivered, then a few more ticks
    let mut received: HashMap<String, Vec<String>> = HashMap::new();
    let take = |wait: Duration, received: &mut HashMap<String, Vec<String>>| {
        while let Ok((head, body)) = hooks.recv_timeout(wait) {
            let ev: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let what = format!("{}:{}", ev["event"].as_str().unwrap_or("?"), ev["flow_id"].as_str().unwrap_or("?"));
            received.entry(header(&head, "x-medsign-delivery").to_string()).or_default().push(what);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && count(&da, &url, "SELECT COUNT(*) FROM webhook_deliveries WHERE state <> 'delivered'") > 0
    {
        take(Duration::from_millis(500), &mut received);
    }
    take(Duration::from_secs(5), &mut received);
    let pending =
        psql(&da, &url, "SELECT id, state, attempts, last_error FROM webhook_deliveries WHERE state <> 'delivered'");
    if !pending.is_empty() {
        problems.push(format!("{} webhook deliveries not delivered: {pending:?}", pending.len()));
    }
    let twice: BTreeMap<&String, &Vec<String>> = received.iter().filter(|(_, v)| v.len() > 1).collect();
    if !twice.is_empty() {
        let extra: usize = twice.values().map(|v| v.len() - 1).sum();
        let some: Vec<_> = twice.iter().take(3).collect();
        problems.push(format!(
            "{} of {} webhook deliveries arrived more than once ({extra} duplicate requests), e.g. {some:?}",
            twice.len(),
            received.len()
        ));
    }
    let mut completed_events: Vec<&str> =
        received.values().filter_map(|v| v[0].strip_prefix("flow.completed:")).collect();
    completed_events.sort();
    let completed_ids: Vec<&str> = completed.iter().map(String::as_str).collect();
    if completed_events != completed_ids {
        problems.push(format!(
            "the flow.completed webhooks received ({}) are not those of the completed flows ({})",
            completed_events.len(),
            completed_ids.len()
        ));
    }
    let mut answered: Vec<&str> = created.iter().map(String::as_str).collect();
    answered.sort();
    if answered.iter().any(|id| !completed_ids.contains(id)) {
        problems.push(format!("flows answered 201 are not completed in the database: {answered:?}"));
    }

    // the phones' end-to-end channel: one key for the cluster, and an envelope sent to both
    // instances at once (a gateway replaying it to the other) is carried out by one only
    let (key, kid, fp_a) = channel_of(&a.addr);
    assert_eq!(channel_of(&b.addr).2, fp_a, "one channel key for the cluster");
    for i in 0..20 {
        let (env, _) = seal_call(&key, &kid, "GET", "/mobile/v1/records", Some("mt_x"), "");
        let statuses = std::thread::scope(|t| {
            let sent = [&a, &b].map(|s| {
                let env = &env;
                t.spawn(move || {
                    request(
                        &s.addr,
                        "POST",
                        "/mobile/v1/sealed",
                        &[("Content-Type", "application/json")],
                        env.as_bytes(),
                    )
                    .0
                })
            });
            let mut st = sent.map(|h| h.join().unwrap());
            st.sort();
            st
        });
        if statuses != [200, 409] {
            problems.push(format!("envelope {i} raced to both instances: {statuses:?}, not one 200 and one 409"));
        }
    }

    // diagnostics: what the instances logged, and the hospital seal certificates made
    let seals = psql(
        &da,
        &url,
        "SELECT employee_no, status, reason FROM certificates WHERE employee_no LIKE 'org:seal%' ORDER BY created_at",
    );
    let logged = [('A', log_errors(&a)), ('B', log_errors(&b))];
    if seals.len() != 1 || !seals[0].ends_with("|active|") {
        problems.push(format!("one hospital seal certificate was to be issued, and stay active: {seals:?}"));
    }

    for (name, s) in [('A', a), ('B', b)] {
        let code = s.stop();
        if code != 0 {
            problems.push(format!("instance {name} exited with {code}"));
        }
    }
    // the audit chain: gap-free and linked, whoever wrote it
    let (intact, out) = audit_verify(&da, &url);
    if !intact {
        problems.push(format!("medsign audit verify: {out}"));
    }
    let user_entries = count(&da, &url, "SELECT COUNT(*) FROM audit_log WHERE action = 'user.create'");
    if user_entries != 160 {
        problems.push(format!("{user_entries} user.create audit entries, not 160"));
    }
    drop_database(&da, &admin, &url);
    assert!(
        problems.is_empty(),
        "two instances on one PostgreSQL database:\n- {}\n\nerrors the instances logged: {logged:#?}\nhospital seal certificates: {seals:?}",
        problems.join("\n- ")
    );
}

#[test]
fn instances_starting_together_on_an_empty_database_both_come_up() {
    let Some(admin) = postgres_or_skip() else { return };
    let (da, db) = (Dir::new(), Dir::new());
    let url = fresh_database(&da, "cluster_start");
    let kek = random_kek();
    // no clock is needed to start (an unreachable source: the TSA refuses, the rest works)
    let env = instance_env(&url, &kek, "127.0.0.1:9");
    let go = std::sync::Barrier::new(2);
    // a start that fails is an answer (with the server's output), not a panic of the thread
    let start = |d: &Dir| {
        go.wait();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Server::start(d, &env))).map_err(|p| {
            p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        })
    };
    let (ra, rb) = std::thread::scope(|sc| {
        let a = sc.spawn(|| start(&da));
        let b = sc.spawn(|| start(&db));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut problems = Vec::new();
    let mut tokens = 0;
    let mut up = Vec::new();
    for (name, r) in [('A', ra), ('B', rb)] {
        match r {
            Ok(s) => {
                tokens += usize::from(s.token().is_some());
                let (st, _, v) = s.req("GET", "/readyz", None, None, b"");
                if st != 200 {
                    problems.push(format!("instance {name} is not ready: {st} {v}"));
                }
                up.push((name, s));
            }
            Err(why) => {
                // the server's output up to its exit, without the migration log
                let why: Vec<&str> =
                    why.as_deref().unwrap_or_default().lines().filter(|l| !l.contains("migration applied")).collect();
                let why = why.join("\n");
                tokens += usize::from(why.contains("bootstrap token"));
                problems.push(format!("instance {name} did not start: {why}"));
            }
        }
    }
    if tokens != 1 {
        problems.push(format!("{tokens} bootstrap tokens printed, not exactly one"));
    }
    let token = up.iter().find_map(|(_, s)| s.token());
    // both serve the one CA the database holds, and the one bootstrap token works on both
    let chains: Vec<Vec<u8>> = up.iter().map(|(_, s)| s.raw("GET", "/pki/sm2/ca.pem", None, None, b"").2).collect();
    if chains.len() == 2 && chains[0] != chains[1] {
        problems.push("the instances serve different CA certificates".to_string());
    }
    if let Some(t) = &token {
        for (name, s) in &up {
            let (st, _, v) = s.req("GET", "/admin/v1/apps", Some(t), None, b"");
            if st != 200 {
                problems.push(format!("the bootstrap token is refused by instance {name}: {st} {v}"));
            }
        }
    }
    for (name, s) in up {
        let log = log_errors(&s);
        let code = s.stop();
        if code != 0 {
            problems.push(format!("instance {name} exited with {code}: {log:#?}"));
        }
    }
    let (intact, out) = audit_verify(&da, &url);
    if !intact {
        problems.push(format!("medsign audit verify: {out}"));
    }
    let apps = psql(&da, &url, "SELECT name FROM apps ORDER BY created_at");
    eprintln!("apps: {apps:?}; audit: {out}");
    drop_database(&da, &admin, &url);
    assert!(problems.is_empty(), "two instances starting together:\n- {}", problems.join("\n- "));
}
