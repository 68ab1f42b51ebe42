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
