//! `medsign backup` and the restore drill (issue #17 § 6): a backup taken while the real
//! `medsign serve` runs and keeps signing, restored into a fresh data directory with the same KEK,
//! serves the same users and flows, its signatures verify and its audit chain is intact. A backup
//! never overwrites a file, is private (0600), and PostgreSQL is pointed to pg_dump.

mod common;
use common::*;

const KEK: &str = "00112233445566778899aabbccddeeff";

fn env(time: &str) -> Vec<(&str, &str)> {
    vec![
        ("MEDSIGN_KEK", KEK),
        ("MEDSIGN_SERVER_PUBLIC_URL", "https://sign.example"),
        ("MEDSIGN_TIME_SOURCES", time),
        ("MEDSIGN_TIME_POLL_SECONDS", "1"),
    ]
}

/// A seal flow over the HIS app: its id.
fn seal_flow(s: &Server, his: &str, i: usize) -> String {
    let body =
        format!(r#"{{"kind":"data","title":"检验报告 {i}","content":"WBC {i}","signers":[{{"seal":"hospital"}}]}}"#);
    let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(his), &body);
    assert_eq!((st, v["state"].as_str()), (201, Some("completed")), "{v}");
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn a_backup_taken_while_signing_restores_into_a_working_server() {
    let (d, r) = (Dir::new(), Dir::new());
    let ntp = Chrony::start(&d, "ntp", None, false);
    let time = ntp.source();
    let s = Server::start(&d, &env(&time));
    let root = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let his = his_app(&s, &root);
    let (st, v) = s.json("POST", "/api/v1/users", Some(&his), r#"{"employee_no":"1001","name":"张三"}"#);
    assert_eq!(st, 201, "{v}");
    let before: Vec<String> = (0..5).map(|i| seal_flow(&s, &his, i)).collect();

    // the backup, while another client keeps signing
    let out = d.p("medsign-backup.db");
    let (o, signed) = std::thread::scope(|t| {
        let signing = t.spawn(|| (0..20).map(|i| seal_flow(&s, &his, 100 + i)).collect::<Vec<_>>().len());
        let o = d.medsign(&["backup", "--data-dir", &d.p("data"), "--out", &out]);
        (o, signing.join().unwrap())
    });
    assert_ok(&o, "backup");
    assert!(text(&o.stdout).contains("audit chain intact"), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("kek.key"), "the KEK reminder: {}", text(&o.stdout));
    assert_eq!(signed, 20, "signing went on during the backup");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup is private");
    }
    // never over an existing file (the one just written is kept as it is)
    let size = std::fs::metadata(&out).unwrap().len();
    let again = d.medsign(&["backup", "--data-dir", &d.p("data"), "--out", &out]);
    assert_fails(&again, "backup onto an existing file");
    assert!(text(&again.stderr).contains("cannot create the backup file"), "{}", text(&again.stderr));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    assert_eq!(s.stop(), 0);

    // the drill: a fresh data directory, the backup as its database, the same KEK
    std::fs::create_dir_all(r.path("data")).unwrap();
    std::fs::copy(&out, r.path("data").join("medsign.db")).unwrap();
    let restored = Server::start(&r, &env(&time));
    assert!(restored.token().is_none(), "a restored installation has its apps already");
    let (st, v) = restored.json("GET", "/api/v1/users/1001", Some(&his), "");
    assert_eq!((st, v["name"].as_str()), (200, Some("张三")), "{v}");
    for id in &before {
        let (st, v) = restored.json("GET", &format!("/api/v1/sign-flows/{id}"), Some(&his), "");
        assert_eq!((st, v["state"].as_str()), (200, Some("completed")), "{v}");
        let (st, _, _) =
            restored.req("GET", &format!("/api/v1/sign-flows/{id}/file?signature=p7s"), Some(&his), None, b"");
        assert_eq!(st, 200, "the signature of {id} is there");
    }
    // and it signs: the seal key came back with the KEK
    seal_flow(&restored, &his, 999);
    assert_eq!(restored.stop(), 0);
    let o = r.medsign(&["audit", "verify", "--data-dir", &r.p("data")]);
    assert_ok(&o, "audit verify of the restored database");
    assert!(text(&o.stdout).contains("intact"), "{}", text(&o.stdout));

    // without the KEK the restored keys are of no use: the server refuses to start
    let wrong = [("MEDSIGN_KEK", "ffeeddccbbaa99887766554433221100")];
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_medsign"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &r.p("data")])
        .envs(wrong)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("wrong KEK"), "{}", text(&o.stderr));
}

#[test]
fn postgresql_and_a_missing_database_get_clear_errors() {
    let d = Dir::new();
    let o = d.medsign(&["backup", "--database-url", "postgres://medsign@127.0.0.1:1/medsign", "--out", &d.p("x.db")]);
    assert_fails(&o, "backup of PostgreSQL");
    assert!(text(&o.stderr).contains("pg_dump"), "{}", text(&o.stderr));
    let o = d.medsign(&["backup", "--data-dir", &d.p("nothing-here"), "--out", &d.p("x.db")]);
    assert_fails(&o, "backup of a data directory without a database");
    assert!(text(&o.stderr).contains("no database here"), "{}", text(&o.stderr));
    assert!(!d.path("x.db").exists());
}

/// Debian's PostgreSQL programs (the newest installed), or `None` outside CI without them.
fn pg_bin() -> Option<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| p.to_string_lossy().split('/').nth(4).and_then(|v| v.parse::<u32>().ok()));
    if found.is_empty() {
        assert!(std::env::var("CI").is_err(), "CI must run the standby drill: scripts/test installs PostgreSQL");
        eprintln!("note: the standby drill needs PostgreSQL (Debian package postgresql)");
    }
    found.pop()
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A PostgreSQL program, as `postgres` when the test runs as root (the server refuses root).
fn pg(bin: &std::path::Path, prog: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(prog);
    let mut c = if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        std::process::Command::new(&exe)
    };
    c.args(args).output().unwrap_or_else(|e| panic!("{prog}: {e}"))
}

/// Stops the drill's PostgreSQL servers however the test ends.
struct PgServers(std::path::PathBuf, Vec<std::path::PathBuf>);

impl Drop for PgServers {
    fn drop(&mut self) {
        for data in &self.1 {
            let _ = pg(&self.0, "pg_ctl", &["-D", &data.to_string_lossy(), "-m", "immediate", "stop"]);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_pg(bin: &std::path::Path, data: &std::path::Path, port: u16) {
    let dir = data.parent().unwrap().to_string_lossy().to_string();
    let opts = format!("-p {port} -k {dir} -c listen_addresses=127.0.0.1");
    let log = format!("{}.log", data.to_string_lossy());
    let o = pg(bin, "pg_ctl", &["-D", &data.to_string_lossy(), "-l", &log, "-w", "-o", &opts, "start"]);
    assert!(
        o.status.success(),
        "pg_ctl start: {}{}",
        text(&o.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn psql_one(d: &Dir, url: &str, sql: &str) -> String {
    let o = d.run("psql", &[url, "-Atq", "-c", sql]);
    assert_ok(&o, sql);
    text(&o.stdout).trim().to_string()
}

/// Issue #17 § 6, the PostgreSQL standby drill (docs/deploy.md): medsign on a primary with a
/// synchronous streaming standby (`pg_basebackup -R`); the primary is killed (-9) while a client
/// keeps signing; the standby is promoted and medsign started on it: every signature the client
/// was told of is there and verifies, the audit chain is intact, and signing goes on.
#[test]
fn a_postgresql_standby_takes_over_when_the_primary_dies() {
    let Some(bin) = pg_bin() else { return };
    let d = Dir::new();
    let base = tempfile::tempdir().unwrap();
    if is_root() {
        assert_ok(&d.run("chown", &["postgres", &base.path().to_string_lossy()]), "chown");
    }
    let (primary, standby) = (base.path().join("primary"), base.path().join("standby"));
    let _servers = PgServers(bin.clone(), vec![primary.clone(), standby.clone()]);
    let o = pg(&bin, "initdb", &["-D", &primary.to_string_lossy(), "-U", "medsign", "--auth=trust", "-E", "UTF8"]);
    assert!(o.status.success(), "initdb: {}", text(&o.stderr));
    let (p1, p2) = (free_port(), free_port());
    start_pg(&bin, &primary, p1);
    let url1 = format!("postgres://medsign@127.0.0.1:{p1}/postgres");

    let ntp = Chrony::start(&d, "ntp", None, false);
    let time = ntp.source();
    let on = |url: &str| {
        let mut e: Vec<(String, String)> = env(&time).into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        e.push(("MEDSIGN_DATABASE_URL".into(), url.into()));
        e
    };
    let env1 = on(&url1);
    let s = Server::start(&d, &env1.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>());
    let root = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let his = his_app(&s, &root);
    let (st, v) = s.json("POST", "/api/v1/users", Some(&his), r#"{"employee_no":"1001","name":"张三"}"#);
    assert_eq!(st, 201, "{v}");
    let mut signed: Vec<String> = (0..3).map(|i| seal_flow(&s, &his, i)).collect();

    // the standby: a base backup of the running primary, then streaming; synchronous, so a
    // signature is acknowledged only once the standby has it
    let o = pg(
        &bin,
        "pg_basebackup",
        &[
            "-D",
            &standby.to_string_lossy(),
            "-h",
            "127.0.0.1",
            "-p",
            &p1.to_string(),
            "-U",
            "medsign",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ],
    );
    assert!(o.status.success(), "pg_basebackup: {}", text(&o.stderr));
    start_pg(&bin, &standby, p2);
    psql_one(&d, &url1, "ALTER SYSTEM SET synchronous_standby_names = '*'");
    psql_one(&d, &url1, "SELECT pg_reload_conf()");
    let t = std::time::Instant::now();
    while psql_one(&d, &url1, "SELECT string_agg(sync_state, ',') FROM pg_stat_replication") != "sync" {
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "the standby never became synchronous");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // a client keeps signing; the primary's host dies under it (PostgreSQL and medsign, kill -9)
    let postmaster = std::fs::read_to_string(primary.join("postmaster.pid")).unwrap();
    let postmaster = postmaster.lines().next().unwrap().trim().to_string();
    let acknowledged = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|t| {
        // the request cut by the kill ends this thread with a panic; what was acknowledged is kept
        let client = t.spawn(|| {
            for i in 0..400 {
                let body = format!(
                    r#"{{"kind":"data","title":"检验报告 {i}","content":"WBC {i}","signers":[{{"seal":"hospital"}}]}}"#
                );
                let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(&his), &body);
                match (st, v["state"].as_str()) {
                    (201, Some("completed")) => {
                        acknowledged.lock().unwrap().push(v["id"].as_str().unwrap().to_string())
                    }
                    _ => break,
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(800));
        assert_ok(&d.run("kill", &["-KILL", &postmaster, &s.child.id().to_string()]), "kill -9 the primary's host");
        let _ = client.join();
    });
    drop(s);
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(!acknowledged.is_empty() && acknowledged.len() < 400, "the primary died mid-run ({})", acknowledged.len());
    signed.extend(acknowledged);
    // the standby is promoted; medsign starts on it (in production: the address moves to it)
    let o = pg(&bin, "pg_ctl", &["-D", &standby.to_string_lossy(), "-w", "promote"]);
    assert!(o.status.success(), "promote: {}", text(&o.stderr));

    let url2 = format!("postgres://medsign@127.0.0.1:{p2}/postgres");
    let env2 = on(&url2);
    let s = Server::start(&d, &env2.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>());
    wait_clock(&s, "INSYNC");
    for id in &signed {
        let (st, v) = s.json("GET", &format!("/api/v1/sign-flows/{id}"), Some(&his), "");
        assert_eq!((st, v["state"].as_str()), (200, Some("completed")), "{id} after the failover: {v}");
    }
    let last = signed.last().unwrap();
    let (st, _, p7s) = s.raw("GET", &format!("/api/v1/sign-flows/{last}/file?signature=p7s"), Some(&his), None, b"");
    assert_eq!((st, p7s.is_empty()), (200, false), "the last acknowledged signature is there");
    seal_flow(&s, &his, 9999);
    assert_eq!(s.stop(), 0);
    let o = d.medsign(&["audit", "verify", "--data-dir", &d.p("data"), "--database-url", &url2]);
    assert_ok(&o, "audit verify after the failover");
    assert!(text(&o.stdout).contains("intact"), "{}", text(&o.stdout));
}
