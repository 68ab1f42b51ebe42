//! Helpers for the CLI's integration and interop tests: run the real `medsign` binary, OpenSSL
//! and the independent Python SM2 checker (tests/interop/sm2_check.py) in a temporary folder.
#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct Dir(pub tempfile::TempDir);

impl Dir {
    pub fn new() -> Self {
        Dir(tempfile::tempdir().expect("temp dir"))
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    pub fn p(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
    pub fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.path(name), data).unwrap();
        self.p(name)
    }
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
    /// Run a program in this folder.
    pub fn run(&self, prog: &str, args: &[&str]) -> Output {
        Command::new(prog)
            .args(args)
            .current_dir(self.0.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {prog}: {e} (scripts/test installs the test tools)"))
    }
    pub fn medsign(&self, args: &[&str]) -> Output {
        self.run(env!("CARGO_BIN_EXE_medsign"), args)
    }
    /// Run medsign and require success.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.medsign(args);
        assert!(o.status.success(), "medsign {args:?} failed: {}{}", text(&o.stdout), text(&o.stderr));
        text(&o.stdout)
    }
    pub fn openssl(&self, args: &[&str]) -> Output {
        self.run("openssl", args)
    }
    /// Run the independent SM2 checker.
    pub fn sm2_check(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/sm2_check.py");
        let mut all = vec![script.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run(&python(), &all)
    }

    /// root CA → issuing CA → staff signer, all made by the medsign CLI; returns nothing,
    /// files are root.pem/key, ca.pem/key, leaf.pem/key.
    pub fn make_pki(&self, alg: &str) {
        self.ok(&["keygen", "--alg", alg, "--out", "root.key"]);
        self.ok(&[
            "cert",
            "new-ca",
            "--key",
            "root.key",
            "--subject",
            "CN=某县人民医院根CA,O=某县人民医院,C=CN",
            "--days",
            "3650",
            "--path-len",
            "1",
            "--out",
            "root.pem",
        ]);
        self.ok(&["keygen", "--alg", alg, "--out", "ca.key"]);
        self.ok(&[
            "cert",
            "issue",
            "--ca",
            "root.pem",
            "--ca-key",
            "root.key",
            "--key-pub",
            "ca.key",
            "--subject",
            "CN=某县人民医院签发CA,O=某县人民医院,C=CN",
            "--profile",
            "ca",
            "--days",
            "1825",
            "--out",
            "ca.pem",
        ]);
        self.ok(&["keygen", "--alg", alg, "--out", "leaf.key"]);
        self.ok(&[
            "cert",
            "issue",
            "--ca",
            "ca.pem",
            "--ca-key",
            "ca.key",
            "--key-pub",
            "leaf.key",
            "--subject",
            "CN=张三,OU=心内科,O=某县人民医院,C=CN",
            "--profile",
            "signer",
            "--days",
            "365",
            "--out",
            "leaf.pem",
            "--crl-url",
            "http://127.0.0.1:7080/pki/crl",
            "--ocsp-url",
            "http://127.0.0.1:7080/pki/ocsp",
        ]);
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The Python with gmssl + asn1crypto: `MEDSIGN_TEST_PYTHON`, else the venv scripts/test makes.
pub fn python() -> String {
    if let Ok(p) = std::env::var("MEDSIGN_TEST_PYTHON") {
        return p;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let p = format!("{home}/.cache/medsign-test-tools/venv/bin/python3");
    assert!(
        Path::new(&p).exists(),
        "the interop tests need Python with gmssl and asn1crypto: run scripts/test (it installs them)"
    );
    p
}

pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed:\n{}{}", text(&o.stdout), text(&o.stderr));
}

pub fn assert_fails(o: &Output, what: &str) {
    assert!(!o.status.success(), "{what} should have failed:\n{}{}", text(&o.stdout), text(&o.stderr));
}

/// The real `medsign serve` on a free loopback port, with a raw HTTP/1.1 client.
pub struct Server {
    pub addr: String,
    pub child: Child,
    pub stderr_lines: Vec<String>,
    /// what the server wrote to stderr after `listening on` (its log)
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(d: &Dir, extra_env: &[(&str, &str)]) -> Server {
        Self::spawn(Self::command(d, extra_env))
    }

    /// [`Server::start`] for a server the tests of a file share (kept in a `static`, so never
    /// dropped). A watchdog shell holds it: the server logs to `serve.log` in `d` (the shell
    /// passes the lines up to `listening on`), and once the test process has exited — however it
    /// ended — and so closed the shell's stdin, the shell stops the server (SIGTERM) and removes
    /// `d`.
    pub fn start_until_exit(d: &Dir, extra_env: &[(&str, &str)]) -> Server {
        let serve = Self::command(d, extra_env);
        let watchdog = r#"dir=$1; shift; log="$dir/serve.log"
"$@" </dev/null 2>"$log" & pid=$!
until grep -q "listening on" "$log" 2>/dev/null || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
cat "$log" >&2; exec 2>/dev/null
cat >/dev/null; kill -TERM $pid; wait $pid; rm -rf "$dir""#;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", watchdog, "sh"])
            .arg(d.0.path())
            .arg(serve.get_program())
            .args(serve.get_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in serve.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        Self::spawn(cmd)
    }

    fn command(d: &Dir, extra_env: &[(&str, &str)]) -> Command {
        Self::command_on(d, extra_env, "127.0.0.1:0")
    }

    /// The `medsign serve` command [`Server::start`] runs, listening on `listen`.
    pub fn command_on(d: &Dir, extra_env: &[(&str, &str)], listen: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medsign"));
        cmd.args(["serve", "--listen", listen, "--data-dir", &d.p("data")])
            .env_remove("MEDSIGN_KEK")
            // tests reach loopback only: no clock source unless a test gives one (the default is a
            // public NTP server); nothing answers on the discard port
            .env("MEDSIGN_TIME_SOURCES", "127.0.0.1:9")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Spawn `cmd` (a `medsign serve` or `medsign gateway`) and read its stderr up to `listening on`.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd.spawn().unwrap();
        let mut lines = Vec::new();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let addr = loop {
            let mut l = String::new();
            if reader.read_line(&mut l).unwrap() == 0 {
                panic!("server exited before listening: {lines:#?}");
            }
            lines.push(l.trim_end().to_string());
            if let Some(a) = l.trim().strip_prefix("listening on ") {
                break a.to_string();
            }
        };
        // keep draining stderr so the server never blocks on a full pipe, and keep the log
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for l in reader.lines() {
                let Ok(l) = l else { continue };
                keep.lock().unwrap().push(l);
            }
        });
        Server { child, addr, stderr_lines: lines, log }
    }

    pub fn token(&self) -> Option<String> {
        let i = self.stderr_lines.iter().position(|l| l.contains("bootstrap token"))?;
        Some(self.stderr_lines[i + 1].trim().to_string())
    }

    /// One HTTP/1.1 request; returns (status, headers, body as JSON or null).
    pub fn req(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        body: &[u8],
    ) -> (u16, String, serde_json::Value) {
        let (st, h, b) = self.raw(method, path, token, ctype, body);
        (st, h, serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null))
    }

    /// One HTTP/1.1 request; returns (status, headers, body bytes).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        if let Some(c) = ctype {
            headers.push(("Content-Type", c));
        }
        self.with_headers(method, path, &headers, body)
    }

    /// One HTTP/1.1 request with these headers; returns (status, headers, body bytes).
    pub fn with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        request(&self.addr, method, path, headers, body)
    }

    /// The same server as a plain [`Endpoint`] (for helpers that may also go through a gateway).
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::direct(&self.addr)
    }

    pub fn json(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let (s, _, v) = self.req(method, path, token, Some("application/json"), body.as_bytes());
        (s, v)
    }

    /// `kill -9`: no graceful anything, as a crash or a pulled plug.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stop(mut self) -> i32 {
        // SIGTERM: graceful shutdown
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

/// A test that fails half-way must not leave its server running.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `MEDSIGN_DATABASE_URL` of a fresh PostgreSQL database `medsign_<name>_<pid>` when the test
/// server is there (always in CI: scripts/test starts it); nothing (SQLite) otherwise.
/// One HTTP/1.1 request to `addr` with these headers; returns (status, headers, body bytes).
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    try_request_from(None, addr, method, path, headers, body).unwrap()
}

/// A connection to `addr`, from the loopback address `from` when given (phones on distinct
/// addresses, as behind distinct networks).
fn connect(from: Option<std::net::IpAddr>, addr: &str) -> std::io::Result<TcpStream> {
    let to: std::net::SocketAddr = match (addr.parse(), from) {
        (Ok(to), _) => to,
        (Err(_), None) => return TcpStream::connect(addr),
        (Err(e), Some(_)) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))),
    };
    // from the host of the network layout this connection belongs to, if a test made one
    let _inside = netns::enter_for(from, &to)?;
    let Some(ip) = from else { return TcpStream::connect(to) };
    let sock = socket2::Socket::new(socket2::Domain::for_address(to), socket2::Type::STREAM, None)?;
    sock.bind(&std::net::SocketAddr::new(ip, 0).into())?;
    sock.connect(&to.into())?;
    Ok(sock.into())
}

/// [`request`] from the loopback address `from` (default: any), or why no answer came (refused,
/// cut, 60 s without an answer).
pub fn try_request_from(
    from: Option<std::net::IpAddr>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = connect(from, addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: medsign-e2e\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |i| i + 4);
    let h = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status: u16 = h.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("no HTTP answer: {:?}", &h[..h.len().min(80)]))
    })?;
    let body = match h.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        true => dechunk(&resp[split..])?,
        false => resp[split..].to_vec(),
    };
    Ok((status, h.trim_end().to_string(), body))
}

/// The body of a chunked HTTP/1.1 answer (RFC 9112 § 7.1), without its framing.
fn dechunk(mut raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("chunked body: {why}"));
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad("no size line"))?;
        let size_text = std::str::from_utf8(&raw[..eol]).map_err(|_| bad("size line"))?;
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad("size"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err(bad("cut short"));
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// An HTTP address the phone talks to: the server itself, or a gateway in front of it — there
/// every call of the phone API is sealed to the servers' channel key (docs/gateway.md), as the
/// H5 app does.
pub struct Endpoint {
    pub addr: String,
    /// the channel key and its id, for a phone behind a gateway
    channel: Option<(medsign_crypto::sm2::Sm2PublicKey, String)>,
    /// the phone's own (loopback) address, when not the default
    pub from: Option<std::net::IpAddr>,
}

impl Endpoint {
    /// The server itself: plain calls.
    pub fn direct(addr: &str) -> Self {
        Endpoint { addr: addr.to_string(), channel: None, from: None }
    }

    /// A gateway: `/mobile/v1/…` calls sealed to the key `GET /mobile/v1/channel` names (its
    /// fingerprint is returned to compare with the pin).
    pub fn sealed(addr: &str) -> (Self, String) {
        let (key, kid, fingerprint) = channel_of(addr);
        (Endpoint { addr: addr.to_string(), channel: Some((key, kid)), from: None }, fingerprint)
    }

    /// A JSON request (an empty `body` sends none); returns (status, body as JSON or null) — of
    /// the call inside the envelope when sealed, of the envelope when that was refused.
    pub fn json(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let parse = |b: &[u8]| serde_json::from_slice(b).unwrap_or(serde_json::Value::Null);
        let Some((key, kid)) = self.channel.as_ref().filter(|_| path.starts_with("/mobile/v1/")) else {
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            let (st, _, b) = try_request_from(self.from, &self.addr, method, path, &headers, body.as_bytes()).unwrap();
            return (st, parse(&b));
        };
        let (env, opener) = seal_call(key, kid, method, path, token, body);
        let json = [("Content-Type", "application/json")];
        let (st, _, b) =
            try_request_from(self.from, &self.addr, "POST", "/mobile/v1/sealed", &json, env.as_bytes()).unwrap();
        let outer = parse(&b);
        if st != 200 {
            return (st, outer);
        }
        let answer = opener.open(&b64.decode(outer["blob"].as_str().unwrap()).unwrap()).expect("the answer opens");
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        (answer["status"].as_u64().unwrap() as u16, answer["body"].clone())
    }
}

/// One phone-API call sealed to the channel key `key` (`kid`): the body of `POST
/// /mobile/v1/sealed`, and the opener of its answer.
pub fn seal_call(
    key: &medsign_crypto::sm2::Sm2PublicKey,
    kid: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (String, medsign_crypto::e2e::Opener) {
    use base64::Engine;
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let inner = serde_json::json!({"ts": ts, "method": method, "path": path, "auth": token,
        "body": if body.is_empty() { serde_json::Value::Null } else { serde_json::from_str(body).unwrap() }});
    let (blob, opener) = medsign_crypto::e2e::seal_request(key, inner.to_string().as_bytes()).unwrap();
    let env = serde_json::json!({"v": 1, "kid": kid, "blob": base64::engine::general_purpose::STANDARD.encode(blob)});
    (env.to_string(), opener)
}

/// The channel key a server names at `GET /mobile/v1/channel`: (key, kid, fingerprint hex).
pub fn channel_of(addr: &str) -> (medsign_crypto::sm2::Sm2PublicKey, String, String) {
    let (st, _, b) = request(addr, "GET", "/mobile/v1/channel", &[], b"");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    let ch: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let point = hex::decode(ch["public_key"].as_str().unwrap()).unwrap();
    let key = medsign_crypto::sm2::Sm2PublicKey::from_sec1(&point).unwrap();
    let fingerprint = hex::encode(medsign_crypto::e2e::fingerprint(&key));
    (key, ch["kid"].as_str().unwrap().to_string(), fingerprint)
}

/// The test phones' PIN verifier (what `PinKey.verifier` sends; the PIN itself never leaves a phone).
pub const PIN: &str = "2424242424242424242424242424242424242424242424242424242424242424";

/// Bind a phone for `no` (the activation code from the HIS API of `s`, everything else through
/// `phone`) and enrol a two-party key; returns the session token and the phone's share.
pub fn phone_enrol(
    s: &Server,
    phone: &Endpoint,
    his: &str,
    no: &str,
) -> (String, medsign_crypto::twoparty::ClientKeyShare) {
    let token = phone_bind(s, phone, his, no);
    let share = phone_keys(phone, &token);
    (token, share)
}

/// Activate a phone for `no`: the activation code from the HIS API of `s`, the activation
/// through `phone`. Returns the session token.
pub fn phone_bind(s: &Server, phone: &Endpoint, his: &str, no: &str) -> String {
    let (st, code) = s.json("POST", &format!("/api/v1/users/{no}/activation-codes"), Some(his), "");
    assert_eq!(st, 201, "{code}");
    let body = serde_json::json!({"employee_no": no, "code": code["code"], "device_name": "测试手机"}).to_string();
    let (st, act) = phone.json("POST", "/mobile/v1/activate", None, &body);
    assert_eq!(st, 201, "{act}");
    act["token"].as_str().unwrap().to_string()
}

/// The bound phone generates its two-party key with the server and sets its PIN; returns its share.
pub fn phone_keys(phone: &Endpoint, token: &str) -> medsign_crypto::twoparty::ClientKeyShare {
    let (st, start) = phone.json("POST", "/mobile/v1/keys", Some(token), "");
    assert_eq!(st, 201, "{start}");
    let (kg, req) =
        medsign_crypto::twoparty::ClientKeyGen::start(start["context"].as_str().unwrap().as_bytes()).unwrap();
    let path = format!("/mobile/v1/keys/{}", start["key_id"].as_str().unwrap());
    let (st, done) = phone.json("POST", &path, Some(token), &serde_json::json!({"request": req}).to_string());
    assert_eq!(st, 201, "{done}");
    let share = kg.finish(&serde_json::from_value(done["response"].clone()).unwrap()).unwrap();
    let body = serde_json::json!({ "verifier": PIN }).to_string();
    assert_eq!(phone.json("POST", "/mobile/v1/pin", Some(token), &body).0, 200);
    share
}

/// The phone and the server sign the key's own certification request (issue #17: an outside CA
/// certifies the key from it); the phone checks nothing here (the wasm build does, tested under
/// Node) but computes the digest itself. Returns the finish answer: (status, body).
pub fn phone_certify(
    phone: &Endpoint,
    token: &str,
    share: &medsign_crypto::twoparty::ClientKeyShare,
) -> (u16, serde_json::Value) {
    let (st, r) = phone.json("POST", "/mobile/v1/certificate/csr", Some(token), "");
    assert_eq!(st, 201, "{r}");
    let info = hex::decode(r["info"].as_str().unwrap()).unwrap();
    let (session, req) = share.begin_sign_message(medsign_crypto::sm2::DEFAULT_ID, &info).unwrap();
    let body = serde_json::json!({ "request": req }).to_string();
    let (st, resp) = phone.json("POST", "/mobile/v1/certificate/csr/answer", Some(token), &body);
    if st != 200 {
        return (st, resp);
    }
    let sig = session.finish(&serde_json::from_value(resp).unwrap()).unwrap();
    let body = serde_json::json!({ "signature": hex::encode(sig.to_der()) }).to_string();
    phone.json("POST", "/mobile/v1/certificate/csr/finish", Some(token), &body)
}

/// The doctor enters the PIN to approve `digest` (`POST /mobile/v1/unlock`). PIN entries are
/// rate limited per device: after a 429 the phone waits and tries again, as the app does.
pub fn approve(phone: &Endpoint, token: &str, digest: &str) {
    let body = serde_json::json!({ "verifier": PIN, "approve": digest }).to_string();
    for _ in 0..10 {
        let (st, v) = phone.json("POST", "/mobile/v1/unlock", Some(token), &body);
        if st != 429 {
            assert_eq!(st, 200, "{v}");
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("the PIN stayed rate limited");
}

/// The approval of answering `rounds`, in order.
pub fn rounds_digest(rounds: &[serde_json::Value]) -> String {
    medsign_phone::approvals::sign_digest(&rounds.iter().map(|r| r["e"].as_str().unwrap()).collect::<Vec<_>>())
}

/// The phone signs `rounds` with one unlock: one answers request, then one signatures request.
pub fn co_sign(
    phone: &Endpoint,
    token: &str,
    share: &medsign_crypto::twoparty::ClientKeyShare,
    rounds: &[serde_json::Value],
) -> serde_json::Value {
    let mut sessions = Vec::new();
    let mut answers = Vec::new();
    for r in rounds {
        let e: [u8; 32] = hex::decode(r["e"].as_str().unwrap()).unwrap().try_into().unwrap();
        let (session, req) = share.begin_sign(&e).unwrap();
        sessions.push(session);
        answers.push(serde_json::json!({"round_id": r["round_id"], "request": req}));
    }
    let body = serde_json::json!({ "answers": answers }).to_string();
    approve(phone, token, &rounds_digest(rounds));
    let (st, v) = phone.json("POST", "/mobile/v1/sign-rounds/answers", Some(token), &body);
    assert_eq!(st, 200, "{v}");
    let signatures: Vec<serde_json::Value> = sessions
        .into_iter()
        .zip(v["responses"].as_array().unwrap())
        .zip(rounds)
        .map(|((session, resp), r)| {
            let resp: medsign_crypto::twoparty::SignResponse = serde_json::from_value(resp.clone()).unwrap();
            serde_json::json!({"round_id": r["round_id"], "signature": hex::encode(session.finish(&resp).unwrap().to_der())})
        })
        .collect();
    let body = serde_json::json!({ "signatures": signatures }).to_string();
    let (st, v) = phone.json("POST", "/mobile/v1/sign-rounds/signatures", Some(token), &body);
    assert_eq!(st, 200, "{v}");
    v
}

/// The doctor scans a QR ticket (`ticket`: its deep link or its id) and co-signs what it opens,
/// approving with the PIN: what the phone app does after the camera reads the PC screen.
pub fn scan_and_sign(
    phone: &Endpoint,
    token: &str,
    share: &medsign_crypto::twoparty::ClientKeyShare,
    ticket: &str,
) -> serde_json::Value {
    let id = ticket.rsplit("t=").next().unwrap_or(ticket);
    let body = serde_json::json!({"targets": [{"ticket": id}]}).to_string();
    let (st, v) = phone.json("POST", "/mobile/v1/sign-rounds", Some(token), &body);
    assert_eq!(st, 201, "{v}");
    co_sign(phone, token, share, v["rounds"].as_array().unwrap())
}

/// A fresh PostgreSQL database (dropped first if a former run left it) and its URL.
pub fn fresh_database(d: &Dir, name: &str) -> String {
    let env = postgres_env(d, name);
    env.into_iter().find(|(k, _)| k == "MEDSIGN_DATABASE_URL").expect("PostgreSQL URL").1
}

/// Drop the database of `url`, through the server's `admin` URL.
pub fn drop_database(d: &Dir, admin: &str, url: &str) {
    let name = &url[url.rfind('/').unwrap() + 1..];
    let _ = d.run("psql", &[admin, "-q", "-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")]);
}

/// One query's rows, `|`-separated columns.
pub fn psql(d: &Dir, url: &str, sql: &str) -> Vec<String> {
    let o = d.run("psql", &[url, "-tAq", "-c", sql]);
    assert_ok(&o, sql);
    text(&o.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// A random KEK shared by a cluster's instances: 16 bytes, as the 32 hex digits `MEDSIGN_KEK` takes.
pub fn random_kek() -> String {
    let mut b = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut b).unwrap();
    hex::encode(b)
}

pub fn postgres_env(d: &Dir, name: &str) -> Vec<(String, String)> {
    match std::env::var("MEDSIGN_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        Some(admin) => {
            let name = format!("medsign_{name}_{}", std::process::id());
            assert_ok(&d.run("psql", &[&admin, "-q", "-c", &format!("DROP DATABASE IF EXISTS {name}")]), "drop");
            assert_ok(&d.run("psql", &[&admin, "-q", "-c", &format!("CREATE DATABASE {name}")]), "create");
            vec![("MEDSIGN_DATABASE_URL".into(), format!("{}/{name}", &admin[..admin.rfind('/').unwrap()]))]
        }
        None => {
            assert!(std::env::var("CI").is_err(), "CI must test PostgreSQL: run scripts/test");
            vec![]
        }
    }
}

pub fn assert_envelope(v: &serde_json::Value, code: &str) {
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["request_id"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

/// A real NTP server on loopback for clock tests: Debian's chronyd with `-x` (never touches the
/// system clock), serving its own clock at `local stratum 3`; `offset` (e.g. "+3600s") runs it
/// under libfaketime; `unsync` leaves out `local stratum` so it answers "not synchronised".
pub struct Chrony {
    pub port: u16,
    bind: String,
    pid_file: PathBuf,
}

impl Chrony {
    pub fn start(dir: &Dir, name: &str, offset: Option<&str>, unsync: bool) -> Chrony {
        Self::start_at(dir, name, offset, unsync, None)
    }

    /// [`Chrony::start`] on the database host of a network layout (answering its subnets).
    pub fn start_in(dir: &Dir, name: &str, net: &netns::Net) -> Chrony {
        Self::start_at(dir, name, None, false, Some(net))
    }

    fn start_at(dir: &Dir, name: &str, offset: Option<&str>, unsync: bool, net: Option<&netns::Net>) -> Chrony {
        let chronyd = ["/usr/sbin/chronyd", "/sbin/chronyd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chronyd is needed for the clock tests (Debian package chrony; scripts/test installs it)");
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pid_file = dir.path(&format!("{name}.pid"));
        let conf = dir.path(&format!("{name}.conf"));
        let (bind, allow) = match net {
            Some(net) => (net.db().to_string(), "198.18.0.0/15"),
            None => ("127.0.0.1".to_string(), "127.0.0.1"),
        };
        let mut text =
            format!("port {port}\nbindaddress {bind}\nallow {allow}\ncmdport 0\npidfile {}\n", pid_file.display());
        if !unsync {
            text += "local stratum 3\n";
        }
        std::fs::write(&conf, text).unwrap();
        let mut cmd = match offset {
            Some(o) => {
                let mut c = Command::new("faketime");
                c.env("FAKETIME_DONT_RESET", "1").args(["-f", o, chronyd]);
                c
            }
            None => Command::new(chronyd),
        };
        let log = dir.path(&format!("{name}.log"));
        cmd.args(["-x", "-u", "root", "-f", conf.to_str().unwrap(), "-L", "0", "-l", log.to_str().unwrap()]);
        if let Some(net) = net {
            cmd = net.command(netns::Host::Db, &cmd);
            cmd.stderr(Stdio::inherit());
        }
        let st = cmd.status().expect("run chronyd (faketime from Debian package faketime for offsets)");
        assert!(st.success(), "chronyd failed: {}", std::fs::read_to_string(&log).unwrap_or_default());
        for _ in 0..50 {
            if std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Chrony { port, bind, pid_file }
    }

    pub fn source(&self) -> String {
        format!("{}:{}", self.bind, self.port)
    }
}

impl Drop for Chrony {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// A server whose clock syncs with a local chronyd (returned too: it stops when dropped), ready
/// once INSYNC — timestamps are issued as in a hospital; and its bootstrap admin token.
pub fn synced_server(d: &Dir) -> (Chrony, Server, String) {
    let ntp = Chrony::start(d, "ntp", None, false);
    let source = ntp.source();
    let s = Server::start(d, &[("MEDSIGN_TIME_SOURCES", source.as_str()), ("MEDSIGN_TIME_POLL_SECONDS", "1")]);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    (ntp, s, admin)
}

/// Poll `GET /readyz` until the clock reaches `state` (or fail after 20 s).
pub fn wait_clock(s: &Server, state: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, _, v) = s.req("GET", "/readyz", None, None, b"");
        if v["clock"]["state"] == state {
            return v;
        }
        last = v;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("clock never reached {state}: {last}");
}

/// A local HTTP receiver (tests only): answers 204 and hands each (headers, body) to the channel.
pub fn receiver() -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    receiver_after(std::time::Duration::ZERO)
}

/// [`receiver`] like a hospital system's: each request on its own thread, answered after `delay`
/// (its own work). A slow receiver keeps a delivery in flight across another instance's tick.
pub fn receiver_after(delay: std::time::Duration) -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(c.try_clone().unwrap());
                let (mut head, mut len) = (String::new(), 0usize);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                std::thread::sleep(delay);
                let _ = c.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = tx.send((head, String::from_utf8_lossy(&body).into_owned()));
            });
        }
    });
    (url, rx)
}

/// The hospital system's app (`sign`, `verify`, `users:read`, `users:write`), created with the
/// admin token `admin`; its token.
pub fn his_app(s: &Server, admin: &str) -> String {
    let (st, v) = s.json(
        "POST",
        "/admin/v1/apps",
        Some(admin),
        r#"{"name":"HIS","scopes":["sign","verify","users:read","users:write"]}"#,
    );
    assert_eq!(st, 201, "{v}");
    v["token"].as_str().unwrap().to_string()
}

pub fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or("")
}

impl Dir {
    /// `pyhanko sign validate` of `pdf` (a file in the folder) against the chain in `chain`:
    /// (success, stdout + stderr).
    pub fn pyhanko_validate(&self, chain: &str, pdf: &str) -> (bool, String) {
        self.pyhanko_validate_with(chain, pdf, &[])
    }

    /// [`Dir::pyhanko_validate`] with more options (e.g. `--force-revinfo`).
    pub fn pyhanko_validate_with(&self, chain: &str, pdf: &str, extra: &[&str]) -> (bool, String) {
        let pyhanko = Path::new(&python()).with_file_name("pyhanko");
        let (trust, file) = (self.p(chain), self.p(pdf));
        let mut args = vec!["sign", "validate", "--trust", &trust, "--trust-replace"];
        args.extend_from_slice(extra);
        args.push(&file);
        let o = self.run(pyhanko.to_str().unwrap(), &args);
        (o.status.success(), format!("{}{}", text(&o.stdout), text(&o.stderr)))
    }

    /// poppler `pdfsig` of `pdf` with the first certificate of `chain` (PEM) trusted in an NSS
    /// store made on first use: (valid signatures, trusted certificates, output).
    pub fn pdfsig(&self, chain: &str, pdf: &str) -> (usize, usize, String) {
        let nss = format!("sql:{}", self.p("nss"));
        if !self.path("nss").exists() {
            std::fs::create_dir(self.path("nss")).unwrap();
            assert_ok(&self.run("certutil", &["-N", "-d", &nss, "--empty-password"]), "certutil -N");
            let root = medsign_pki::cert::Cert::load_all(&self.read(chain)).unwrap().remove(0);
            self.write("nss-root.pem", root.to_pem().as_bytes());
            let add = ["-A", "-d", &nss, "-n", "root", "-t", "CT,C,C", "-a", "-i", &self.p("nss-root.pem")];
            assert_ok(&self.run("certutil", &add), "certutil -A");
        }
        let o = self.run("pdfsig", &["-nssdir", &nss, &self.p(pdf)]);
        let out = text(&o.stdout);
        (out.matches("Signature is Valid.").count(), out.matches("Certificate is Trusted.").count(), out)
    }
}
