//! A typed Rust client of medsign's hospital-system API (`/api/v1`, R7; docs/integration.md).
//!
//! ```no_run
//! # async fn demo() -> Result<(), medsign_client::Error> {
//! use medsign_client::{Client, NewFlow};
//! // the app token `app_id.secret` from the console; HMAC-SM3 signing keeps the secret off the wire
//! let c = Client::signed("https://sign.hospital.example", "app_1a2b3c4d5e6f7a8b.9f86…")?;
//! let user = c.user("1001").await?;
//! let flow = c.create_flow(&NewFlow::data("检验报告 S0001", "WBC 6.1").seal("hospital")).await?;
//! let mut cms = Vec::new();
//! c.download(&flow.doc_no, Some("p7s"), &mut cms).await?;
//! # Ok(()) }
//! ```
//!
//! - **Authentication:** [`Client::bearer`] sends the token; [`Client::signed`] signs every
//!   request with HMAC-SM3 (`X-App-Id`, `X-Timestamp`, `X-Nonce`, `X-Signature`) and never sends
//!   the secret.
//! - **Retries:** the creating calls the server deduplicates (users, imports, flows) carry an
//!   `Idempotency-Key`; a connection failure, a 5xx or a 409 `idempotency_in_progress` is retried
//!   with the same key (backoff 0.5 s · 2ⁿ, at most 16 s), so a retried flow is made once. GETs are
//!   retried too; other calls are not (they could take effect twice).
//! - **Errors:** [`Error::Api`] carries the server's envelope (`code`, `message`, `request_id`).
//! - **Webhooks:** [`webhook_is_signed`] checks `X-Medsign-Signature`.
//! - **Files:** [`Client::download`] writes the signed file as it arrives.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

/// What can go wrong.
#[derive(Debug)]
pub enum Error {
    /// the server answered with its error envelope
    Api {
        /// HTTP status
        status: u16,
        /// machine code, e.g. `not_found` (docs/integration.md lists them)
        code: String,
        /// Chinese, then English
        message: String,
        /// quote it to the hospital's IT
        request_id: String,
    },
    /// the server could not be reached, or answered something that is not the API
    Transport(String),
    /// the token or base URL given to the client is not usable
    Config(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Api { status, code, message, request_id } => {
                write!(f, "{status} {code}: {message} (request {request_id})")
            }
            Error::Transport(m) | Error::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// Result with the client's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// How requests are authenticated.
enum Auth {
    Bearer(Zeroizing<String>),
    Signed { app_id: String, key: Zeroizing<[u8; 32]> },
}

/// A client of one medsign server.
pub struct Client {
    base: String,
    auth: Auth,
    http: reqwest::Client,
    retries: u32,
}

/// A staff user as the API shows one (fields the API adds later are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// staff number
    pub employee_no: String,
    /// name
    pub name: String,
    /// department code
    #[serde(default)]
    pub department: Option<String>,
    /// `none` | `pending` | `verified` | …
    #[serde(default)]
    pub realname_status: Option<String>,
    /// the signing certificate, when there is one
    #[serde(default)]
    pub certificate: Option<Value>,
    /// the handwritten signature's link, when there is one
    #[serde(default)]
    pub signature_image: Option<Value>,
}

/// One signer of a flow, as the API shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Signer {
    /// position, from 0
    pub index: i64,
    /// staff number or seal name
    #[serde(rename = "ref")]
    pub subject_ref: String,
    /// `auto` | `scan`
    pub mode: String,
    /// `pending` | `signed` | `failed`
    pub state: String,
    /// the certificate that signed
    #[serde(default)]
    pub cert_serial: Option<String>,
}

/// A signing flow (R7.4.9).
#[derive(Debug, Clone, Deserialize)]
pub struct Flow {
    /// id (`sf_…`)
    pub id: String,
    /// document number (`QM-…`), also accepted where the id is
    pub doc_no: String,
    /// `pending` | `signing` | `completed` | `revoked` | `expired` | `failed`
    pub state: String,
    /// the signers in order
    pub signers: Vec<Signer>,
    /// the open QR ticket of a scan signer's turn (`deep_link`, `qr_png_base64`, `qr_svg`)
    #[serde(default)]
    pub ticket: Option<Value>,
}

/// A new flow: data or a template/PDF file, and its signers (build with [`NewFlow::data`] or
/// [`NewFlow::template`], then [`NewFlow::staff`], [`NewFlow::scan`], [`NewFlow::seal`]).
#[derive(Debug, Clone, Serialize)]
pub struct NewFlow {
    kind: &'static str,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    signers: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<String>,
}

impl NewFlow {
    /// A data flow over `content` (R7.4.5, R7.4.6): one CMS signature with every signer.
    pub fn data(title: &str, content: &str) -> Self {
        Self::new("data", title, Some(content.to_string()), None, None)
    }

    /// A PDF rendered from template `template_id` with `data` (R7.4.7, R7.4.8).
    pub fn template(title: &str, template_id: &str, data: Value) -> Self {
        let mut f = Self::new("file", title, None, None, Some(data));
        f.template_id = Some(template_id.to_string());
        f
    }

    /// A PDF of the hospital system's own (R7.4.7, R7.4.8).
    pub fn pdf(title: &str, pdf: &[u8]) -> Self {
        use base64::Engine as _;
        Self::new("file", title, None, Some(base64::engine::general_purpose::STANDARD.encode(pdf)), None)
    }

    fn new(kind: &'static str, title: &str, content: Option<String>, b64: Option<String>, data: Option<Value>) -> Self {
        Self {
            kind,
            title: title.to_string(),
            content,
            content_base64: b64,
            template_id: None,
            data,
            signers: vec![],
            callback_url: None,
        }
    }

    /// A staff member whose key the hospital holds (server custody) signs at once.
    pub fn staff(mut self, employee_no: &str) -> Self {
        self.signers.push(serde_json::json!({"employee_no": employee_no, "mode": "auto"}));
        self
    }

    /// A staff member signs by scanning the flow's QR code with the phone app (in `field`, the
    /// template's signature box, for files).
    pub fn scan(mut self, employee_no: &str, field: Option<&str>) -> Self {
        let mut s = serde_json::json!({"employee_no": employee_no, "mode": "scan"});
        if let Some(f) = field {
            s["field"] = f.into();
        }
        self.signers.push(s);
        self
    }

    /// An organisation seal (`hospital` or a department code).
    pub fn seal(mut self, seal: &str) -> Self {
        self.signers.push(serde_json::json!({"seal": seal}));
        self
    }

    /// Where state changes are POSTed (check them with [`webhook_is_signed`]).
    pub fn callback(mut self, url: &str) -> Self {
        self.callback_url = Some(url.to_string());
        self
    }
}

/// Is a webhook genuine? `secret_token` is the app's token (`app_id.secret`) or its secret;
/// `timestamp` and `signature` are the `X-Medsign-Timestamp` and `X-Medsign-Signature` headers,
/// `body` the raw body. Reject old timestamps yourself (replays) as your policy says.
pub fn webhook_is_signed(secret_token: &str, timestamp: &str, body: &str, signature: &str) -> bool {
    let secret = secret_token.split_once('.').map_or(secret_token, |(_, s)| s);
    let key = Zeroizing::new(medsign_crypto::api::request_key(secret));
    medsign_crypto::api::webhook_is_signed(key.as_slice(), timestamp, body, signature)
}

/// The creating calls the server answers once per `Idempotency-Key` (so they are retried with it).
const IDEMPOTENT: &[&str] = &["/api/v1/users", "/api/v1/users/import", "/api/v1/sign-flows"];

fn random_hex<const N: usize>() -> Result<String> {
    medsign_crypto::rng::bytes::<N>().map(hex::encode).map_err(|e| Error::Transport(format!("randomness: {e}")))
}

impl Client {
    /// A client that sends the token as `Authorization: Bearer` (use HTTPS).
    pub fn bearer(base_url: &str, token: &str) -> Result<Client> {
        Self::new(base_url, Auth::Bearer(Zeroizing::new(token.to_string())), token)
    }

    /// A client that signs every request with the key derived from the token's secret (HMAC-SM3);
    /// the secret never leaves this process.
    pub fn signed(base_url: &str, token: &str) -> Result<Client> {
        let (app_id, secret) = token
            .split_once('.')
            .ok_or_else(|| Error::Config("令牌应为 app_id.secret / the token must be app_id.secret".into()))?;
        let key = Zeroizing::new(medsign_crypto::api::request_key(secret));
        Self::new(base_url, Auth::Signed { app_id: app_id.to_string(), key }, token)
    }

    fn new(base_url: &str, auth: Auth, token: &str) -> Result<Client> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "服务地址须以 http(s):// 开头 / the base URL must start with http(s)://: {base}"
            )));
        }
        if token.split_once('.').is_none_or(|(a, s)| a.is_empty() || s.is_empty()) {
            return Err(Error::Config("令牌应为 app_id.secret / the token must be app_id.secret".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client { base, auth, http, retries: 4 })
    }

    /// How often a failed attempt is tried again (default 4).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Any call: `path_and_query` like `/api/v1/users?q=张` (escaped as sent, and signed so), a JSON
    /// body or none.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<T> {
        let res = self.send(method, path_and_query, body).await?;
        res.json::<T>().await.map_err(|e| Error::Transport(format!("unexpected answer: {e}")))
    }

    /// The request, retried as the module says; a success's response (the body unread).
    async fn send(&self, method: &str, path_and_query: &str, body: Option<&Value>) -> Result<reqwest::Response> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| Error::Config(e.to_string()))?;
        let bytes = match body {
            Some(v) => serde_json::to_vec(v).map_err(|e| Error::Config(e.to_string()))?,
            None => vec![],
        };
        // the path and query as they will be sent (the URL parser escapes what the caller did not),
        // which is what the server checks the signature over
        let url =
            reqwest::Url::parse(&format!("{}{path_and_query}", self.base)).map_err(|e| Error::Config(e.to_string()))?;
        let (path, query) = (url.path().to_string(), url.query().unwrap_or("").to_string());
        // only creating calls the server deduplicates by Idempotency-Key are retried
        let idempotency = match m == reqwest::Method::POST && IDEMPOTENT.contains(&path.as_str()) {
            true => Some(random_hex::<16>()?),
            false => None,
        };
        let mut attempt = 0;
        loop {
            let mut req = self.http.request(m.clone(), url.clone());
            if !bytes.is_empty() {
                req = req.header("Content-Type", "application/json").body(bytes.clone());
            }
            if let Some(k) = &idempotency {
                req = req.header("Idempotency-Key", k);
            }
            req = match &self.auth {
                Auth::Bearer(t) => req.bearer_auth(t.as_str()),
                Auth::Signed { app_id, key } => {
                    let ts = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs().to_string())
                        .unwrap_or_default();
                    let nonce = random_hex::<12>()?;
                    let sig = medsign_crypto::api::sign_request(key, m.as_str(), &path, &query, &ts, &nonce, &bytes);
                    req.header("X-App-Id", app_id)
                        .header("X-Timestamp", ts)
                        .header("X-Nonce", nonce)
                        .header("X-Signature", sig)
                }
            };
            let outcome = match req.send().await {
                Ok(res) if res.status().is_success() => return Ok(res),
                Ok(res) => {
                    let status = res.status().as_u16();
                    let v: Value = res.json().await.unwrap_or(Value::Null);
                    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                    let e = Error::Api {
                        status,
                        code: text("code"),
                        message: text("message"),
                        request_id: text("request_id"),
                    };
                    // worth another attempt: the server's trouble, or the same request still running
                    let again = status >= 500 || (status == 409 && text("code") == "idempotency_in_progress");
                    (e, again)
                }
                Err(e) => (Error::Transport(format!("{} {path}: {e}", m.as_str())), true),
            };
            let (e, again) = outcome;
            if !again || attempt >= self.retries || (idempotency.is_none() && m != reqwest::Method::GET) {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(500 << attempt.min(5))).await;
            attempt += 1;
        }
    }

    /// Create users, all or nothing (R7.4.1).
    pub async fn create_users(&self, users: &Value) -> Result<Value> {
        self.call("POST", "/api/v1/users", Some(users)).await
    }

    /// One user with certificate and signature image (R7.4.2).
    pub async fn user(&self, employee_no: &str) -> Result<User> {
        self.call("GET", &format!("/api/v1/users/{}", path_segment(employee_no)?), None).await
    }

    /// Start a flow (R7.4.5–R7.4.8); retried safely.
    pub async fn create_flow(&self, flow: &NewFlow) -> Result<Flow> {
        let body = serde_json::to_value(flow).map_err(|e| Error::Config(e.to_string()))?;
        self.call("POST", "/api/v1/sign-flows", Some(&body)).await
    }

    /// A flow by id or document number (R7.4.9).
    pub async fn flow(&self, id_or_doc_no: &str) -> Result<Flow> {
        self.call("GET", &format!("/api/v1/sign-flows/{}", path_segment(id_or_doc_no)?), None).await
    }

    /// Revoke a flow that has not completed (R7.4.10).
    pub async fn revoke(&self, id_or_doc_no: &str, reason: &str) -> Result<Flow> {
        let body = serde_json::json!({"reason": reason});
        self.call("POST", &format!("/api/v1/sign-flows/{}/revoke", path_segment(id_or_doc_no)?), Some(&body)).await
    }

    /// Verify a data signature (CMS, DER) over `data` (R7.4.11); the report (`indication`).
    pub async fn verify_data(&self, cms: &[u8], data: &[u8]) -> Result<Value> {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD;
        let body = serde_json::json!({"signature": b.encode(cms), "data": b.encode(data)});
        self.call("POST", "/api/v1/verify/data", Some(&body)).await
    }

    /// Verify a signed PDF (R7.4.12); the report (`indication`).
    pub async fn verify_file(&self, pdf: &[u8]) -> Result<Value> {
        use base64::Engine as _;
        let body = serde_json::json!({"file": base64::engine::general_purpose::STANDARD.encode(pdf)});
        self.call("POST", "/api/v1/verify/file", Some(&body)).await
    }

    /// Write a completed flow's signed file to `out` as it arrives (R7.4.13): the PDF, or with
    /// `signature = Some("p7s")` a data flow's CMS. Returns the bytes written.
    pub async fn download(
        &self,
        id_or_doc_no: &str,
        signature: Option<&str>,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64> {
        let mut path = format!("/api/v1/sign-flows/{}/file", path_segment(id_or_doc_no)?);
        if let Some(s) = signature {
            path = format!("{path}?signature={}", path_segment(s)?);
        }
        let mut res = self.send("GET", &path, None).await?;
        let mut n = 0u64;
        while let Some(chunk) = res.chunk().await.map_err(|e| Error::Transport(e.to_string()))? {
            out.write_all(&chunk).await.map_err(|e| Error::Transport(e.to_string()))?;
            n += chunk.len() as u64;
        }
        out.flush().await.map_err(|e| Error::Transport(e.to_string()))?;
        Ok(n)
    }
}

/// A path segment with what could end or change the path escaped; empty, `.` and `..` refused
/// (URL parsers resolve those, even escaped, and the request would reach another route).
fn path_segment(s: &str) -> Result<String> {
    if s.is_empty() || s == "." || s == ".." {
        return Err(Error::Config(format!("不能用作路径的值 / not usable in a path: '{s}'")));
    }
    Ok(s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tokens_and_urls_are_refused_before_anything_is_sent() {
        assert!(matches!(Client::signed("https://x.example", "nodot"), Err(Error::Config(_))));
        assert!(matches!(Client::bearer("https://x.example", "app_1."), Err(Error::Config(_))));
        assert!(matches!(Client::bearer("ftp://x.example", "app_1.s"), Err(Error::Config(_))));
        assert!(Client::signed("https://x.example/", "app_1.s").is_ok());
    }

    #[test]
    fn path_segments_cannot_walk_the_path() {
        assert_eq!(path_segment("1001").unwrap(), "1001");
        assert_eq!(path_segment("../admin").unwrap(), "..%2Fadmin");
        assert_eq!(path_segment("张").unwrap(), "%E5%BC%A0");
        assert_eq!(path_segment("a?b#c").unwrap(), "a%3Fb%23c");
        for bad in ["", ".", ".."] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_webhook_is_checked_with_the_token_or_the_secret() {
        let key = medsign_crypto::api::request_key("s3cret");
        let sig = medsign_crypto::api::webhook_signature(&key, "1700000000", "{}");
        assert!(webhook_is_signed("app_1.s3cret", "1700000000", "{}", &sig));
        assert!(webhook_is_signed("s3cret", "1700000000", "{}", &sig));
        assert!(!webhook_is_signed("app_1.other", "1700000000", "{}", &sig));
    }
}
