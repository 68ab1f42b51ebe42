//! Issue #18: the complete examples of `docs/integration.md` — the blocks fenced as `sh run`,
//! `python run` and `java run` — run as they stand against the real `medsign serve` (curl, the
//! test venv's Python with requests, the JDK's single-file launcher), so the guide cannot drift
//! from the API. Each must exit 0; they check their own answers.

mod common;
use common::*;

/// The fenced blocks of `md` whose info string is `<lang> run`: (lang, code).
fn runnable(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = md.lines();
    while let Some(l) = lines.next() {
        let Some(info) = l.strip_prefix("```") else { continue };
        let Some(lang) = info.trim().strip_suffix(" run") else { continue };
        let code: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        out.push((lang.to_string(), code.join("\n") + "\n"));
    }
    out
}

#[test]
fn the_integration_guides_examples_run_against_a_live_server() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/integration.md")).unwrap();
    let blocks = runnable(&guide);
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(langs, ["sh", "python", "java"], "the guide's runnable examples");

    let d = Dir::new();
    // a synchronised clock, so the file flows are timestamped as in a hospital
    let (_ntp, s, admin) = synced_server(&d);
    let body = r#"{"name":"HIS 示例","scopes":["users:read","users:write","sign","verify"]}"#;
    let (st, app) = s.json("POST", "/admin/v1/apps", Some(&admin), body);
    assert_eq!(st, 201, "{app}");
    let token = app["token"].as_str().unwrap().to_string();
    let url = format!("http://{}", s.addr);
    for (lang, code) in &blocks {
        let (file, mut cmd) = match lang.as_str() {
            "sh" => ("guide.sh", std::process::Command::new("sh")),
            "python" => ("guide.py", std::process::Command::new(python())),
            "java" => ("Guide.java", std::process::Command::new("java")),
            other => panic!("no runner for {other}"),
        };
        d.write(file, code.as_bytes());
        let o = cmd.arg(d.p(file)).env("MEDSIGN_URL", &url).env("MEDSIGN_TOKEN", &token).output().unwrap();
        assert_ok(&o, &format!("the {lang} example of docs/integration.md"));
        assert!(text(&o.stdout).contains("ok"), "{lang}: {}", text(&o.stdout));
    }
    // what they did is on record, done by the app
    let (_, u) = s.json("GET", "/api/v1/users?page_size=10", Some(&token), "");
    assert_eq!(u["total"], 4, "{u}");
}

/// The guide's error table lists every code the server answers with: the generic ones and every
/// specific one of `medsign_store::error::CODES`.
#[test]
fn the_integration_guide_lists_every_error_code() {
    use medsign_store::Error;
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/integration.md")).unwrap();
    let generic = [
        Error::Invalid(String::new()),
        Error::NotFound(String::new()),
        Error::Conflict(String::new()),
        Error::Unauthorized(String::new()),
        Error::Forbidden(String::new()),
        Error::Db(sqlx::Error::PoolTimedOut),
        Error::Config(String::new()),
        Error::internal("x"),
        Error::Crypto(medsign_crypto::Error::InvalidInput(String::new())),
        Error::Unavailable(String::new()),
        Error::TooManyRequests(String::new()),
    ];
    let codes = generic.iter().map(|e| e.code()).chain(medsign_store::error::CODES.iter().map(|(c, _)| *c));
    let extra = ["invalid_rows", "payload_too_large", "unsupported_media_type"];
    for code in codes.chain(extra) {
        assert!(guide.contains(&format!("| `{code}` |")), "docs/integration.md does not list `{code}`");
    }
}
