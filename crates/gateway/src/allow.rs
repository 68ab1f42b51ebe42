//! The allow-list: every message the gateway forwards, typed.
//!
//! Two lists. [`FORWARDED`] is what the gateway itself passes: the H5 app's files, the
//! end-to-end channel's key and sealed calls (issue #17 item 3, `medsign_crypto::e2e`), whose
//! content it cannot read. [`ROUTES`] types every message of the phone API — what a sealed call
//! may carry; the server holds each call it opens, and its answer, to these types (the same
//! rules, applied where the plaintext is). What follows holds for both.
//!
//! A phone's request is forwarded only when its method and path name a [`Route`] here, its query
//! keys are the route's, and its JSON body is exactly the route's request [`Ty`]: no field the
//! type does not name, every string within its cap, numbers where numbers are expected. The
//! server's answer is held to the route's response type (2xx) or to the error envelope (4xx,
//! 5xx) the same way. What does not fit is dropped and logged (route, direction, the field's
//! path and the rule it broke — never the value), and the phone gets a 502 with the error
//! envelope.
//!
//! The gateway forwards the JSON it parsed and checked, written out again — not the bytes it
//! received — so what reaches the other side is exactly what was checked (a duplicated key, for
//! one, cannot smuggle a second value past the check).
//!
//! The types carry identities, digests, signature shares, certificates and what the doctor is
//! shown (titles, document numbers, sizes) — and one message with a document's text
//! (`sign_rounds.view`, R2.4), which exists only inside the end-to-end channel: the gateway
//! forwards nothing of [`ROUTES`] in the clear (R4.3). The list is
//! compared with the server's OpenAPI document by a test (`crates/cli/tests/gateway.rs`), so a
//! field added to the mobile API without a decision here fails the build's tests instead of
//! being silently dropped in production.

use serde_json::Value;
use std::fmt;

/// What a JSON value must be.
#[derive(Debug)]
pub enum Ty {
    /// a UTF-8 string of at most this many bytes (names, titles, messages)
    Text(usize),
    /// a string of ASCII letters, digits and `_-.:+`, at most this many (ids, states, times)
    Token(usize),
    /// hexadecimal digits, at most this many (digests, points, shares, signatures)
    Hex(usize),
    /// standard or URL-safe base64, at most this many characters (the handwriting PNG)
    Base64(usize),
    /// PEM text (base64, line breaks, `-----BEGIN …-----` lines), at most this many bytes
    Pem(usize),
    /// an integer
    Int,
    /// true or false
    Bool,
    /// an object with exactly these fields (closed: any other field is refused)
    Obj(&'static [Field]),
    /// an array of at most this many items of one type
    List(&'static Ty, usize),
    /// an object of at most this many entries whose names are tokens (≤ 64) and whose values are
    /// scalars (strings ≤ 256 bytes, numbers, booleans, null): an audit record's details
    Details(usize),
}

/// A field of an [`Ty::Obj`].
#[derive(Debug)]
pub struct Field {
    /// its JSON name
    pub name: &'static str,
    /// its type
    pub ty: Ty,
    /// must be present (and not null)
    pub required: bool,
}

/// A required field.
pub const fn req(name: &'static str, ty: Ty) -> Field {
    Field { name, ty, required: true }
}

/// An optional field, which may also be `null`.
pub const fn opt(name: &'static str, ty: Ty) -> Field {
    Field { name, ty, required: false }
}

/// The body of a message.
#[derive(Debug)]
pub enum Body {
    /// none (a GET, a DELETE, a POST without body, a 204)
    Empty,
    /// JSON of this type
    Json(Ty),
    /// one of the H5 app's own files (`/m/…`): HTML, JavaScript, CSS or WebAssembly, at most
    /// [`ASSET_MAX`] bytes
    Asset,
}

/// One forwardable exchange.
#[derive(Debug)]
pub struct Route {
    /// a name for logs and metrics (`sign_rounds.start`)
    pub name: &'static str,
    /// `GET`, `POST` or `DELETE`
    pub method: &'static str,
    /// the path; `{x}` is one segment of 1–128 ASCII letters, digits, `_` and `-`
    pub path: &'static str,
    /// query keys and what their values must be
    pub query: &'static [(&'static str, Ty)],
    /// what the phone sends
    pub request: Body,
    /// what the server answers with a 2xx status
    pub response: Body,
    /// the largest request body (bytes), checked while it arrives, before any parsing
    pub request_max: usize,
    /// the largest answer (bytes), checked while it arrives
    pub response_max: usize,
}

/// The largest H5 app file (the WebAssembly phone half is ~0.7 MB).
pub const ASSET_MAX: usize = 4 << 20;
/// The largest answer from the server (JSON); a pending list of 1,000 documents is ~0.5 MB.
pub const JSON_MAX: usize = 2 << 20;
/// The largest request of a phone (JSON), but for the handwriting image.
pub const REQUEST_MAX: usize = 64 << 10;
/// The handwriting request: a PNG of at most 2 MiB, base64.
const HANDWRITING_MAX: usize = 3 << 20;
/// The largest end-to-end sealed request: the handwriting request inside the channel's JSON,
/// encrypted (+ 93 bytes) and base64 again (× 4/3).
pub const SEALED_REQUEST_MAX: usize = 5 << 20;
/// The largest sealed answer: an answer of [`JSON_MAX`], encrypted and base64.
pub const SEALED_ANSWER_MAX: usize = 3 << 20;

const ID: Ty = Ty::Token(128);
const TIME: Ty = Ty::Token(40);
const WORD: Ty = Ty::Token(32);
const NAME: Ty = Ty::Text(256);
const TITLE: Ty = Ty::Text(512);
const DOC_NO: Ty = Ty::Text(128);
const EMPLOYEE_NO: Ty = Ty::Text(64);
/// SM3 digest, hex
const DIGEST: Ty = Ty::Hex(64);
/// an SM2 point, hex (compressed 66, uncompressed 130)
const POINT: Ty = Ty::Hex(130);
/// a 32-byte scalar or secret, hex
const SCALAR: Ty = Ty::Hex(64);
/// PIN verifiers, unlock and fingerprint secrets, hex
const SECRET: Ty = Ty::Hex(128);

/// The error envelope of every 4xx/5xx answer. `errors` (rows of an import) has no use on the
/// phone's side: at most a few rows pass.
pub const ERROR: Ty = Ty::Obj(&[
    req("code", Ty::Token(64)),
    req("message", Ty::Text(1024)),
    req("request_id", Ty::Token(64)),
    opt("errors", Ty::List(&Ty::Obj(&[req("row", Ty::Int), req("field", Ty::Token(64)), req("message", TITLE)]), 10)),
]);

const PROOF: Ty = Ty::Obj(&[req("commitment", POINT), req("response", SCALAR)]);

const CERT: Ty = Ty::Obj(&[
    req("serial", ID),
    req("employee_no", EMPLOYEE_NO),
    req("alg", WORD),
    req("profile", WORD),
    opt("profile_version", Ty::Text(128)),
    req("channel", NAME),
    req("status", WORD),
    opt("reason", NAME),
    opt("revoked_at", TIME),
    req("not_before", TIME),
    req("not_after", TIME),
    req("subject", Ty::Text(1024)),
    req("certificate_pem", Ty::Pem(16 << 10)),
]);

/// What the doctor is shown before confirming: identity and digest of the document, never it.
const SUMMARY: Ty = Ty::Obj(&[
    req("flow_id", ID),
    req("doc_no", DOC_NO),
    req("title", TITLE),
    req("kind", WORD),
    req("content_sm3", DIGEST),
    req("bytes", Ty::Int),
    opt("pages", Ty::Int),
    opt("template_id", ID),
    req("signer_index", Ty::Int),
    req("signers", Ty::Int),
    req("app_id", ID),
    req("created_at", TIME),
    req("expires_at", TIME),
]);

const ROUND: Ty = Ty::Obj(&[
    req("round_id", ID),
    req("e", DIGEST),
    req("key_id", ID),
    req("cert_serial", ID),
    req("expires_at", TIME),
    req("summary", SUMMARY),
]);

const GRANT: Ty = Ty::Obj(&[
    req("grant_id", ID),
    req("app_id", ID),
    req("state", WORD),
    req("hours", Ty::Int),
    opt("max_count", Ty::Int),
    req("used_count", Ty::Int),
    req("expires_at", TIME),
    req("created_at", TIME),
    opt("ended_at", TIME),
]);

/// A real-name check or handwritten signature a hospital system asked the doctor for.
const TASK: Ty = Ty::Obj(&[
    req("task_id", ID),
    req("kind", WORD),
    req("employee_no", EMPLOYEE_NO),
    req("state", WORD),
    req("app_id", ID),
    req("system", NAME),
    req("created_at", TIME),
    req("expires_at", TIME),
    opt("done_at", TIME),
    opt("result", Ty::Details(8)),
]);

/// The phone's first signing message, and the server half's answer (`medsign_crypto::twoparty`).
const SIGN_REQUEST: Ty = Ty::Obj(&[req("version", Ty::Int), req("e", DIGEST), req("q1", POINT)]);
const SIGN_RESPONSE: Ty = Ty::Obj(&[req("version", Ty::Int), req("r", SCALAR), req("s2", SCALAR), req("s3", SCALAR)]);

const UNLOCK: Ty =
    Ty::Obj(&[req("unlock_secret", SECRET), req("pin_expires_at", TIME), opt("previous_unlock_secret", SECRET)]);

const SIGN_OUTCOME: Ty =
    Ty::Obj(&[req("round_id", ID), req("flow_id", ID), opt("state", WORD), opt("error", Ty::Text(1024))]);

const fn post(name: &'static str, path: &'static str, request: Body, response: Body) -> Route {
    let request_max = if matches!(request, Body::Json(_)) { REQUEST_MAX } else { 0 };
    Route { name, method: "POST", path, query: &[], request, response, request_max, response_max: JSON_MAX }
}

const fn get(name: &'static str, path: &'static str, response: Body) -> Route {
    let response_max = if matches!(response, Body::Asset) { ASSET_MAX } else { JSON_MAX };
    Route { name, method: "GET", path, query: &[], request: Body::Empty, response, request_max: 0, response_max }
}

const fn delete(name: &'static str, path: &'static str, response: Body) -> Route {
    Route {
        name,
        method: "DELETE",
        path,
        query: &[],
        request: Body::Empty,
        response,
        request_max: 0,
        response_max: JSON_MAX,
    }
}

use Body::{Empty, Json};

/// One key of the channel's succession: its point and the previous key's signature over it.
const SUCCESSION: Ty =
    Ty::Obj(&[req("generation", Ty::Int), req("public_key", POINT), opt("endorsement", Ty::Hex(128))]);

/// What the gateway forwards: the H5 app's files, the end-to-end channel's key, and sealed calls
/// — whose content, a message of [`ROUTES`], only the two ends read (the server holds it to the
/// same types after opening it).
pub static FORWARDED: &[Route] = &[
    // the H5 app itself (its pages, scripts and the WebAssembly phone half)
    get("app.root", "/m", Empty),
    get("app.index", "/m/", Body::Asset),
    get("app.file", "/m/{*file}", Body::Asset),
    get(
        "e2e.channel",
        "/mobile/v1/channel",
        Json(Ty::Obj(&[
            req("kid", Ty::Hex(16)),
            req("public_key", POINT),
            req("fingerprint", DIGEST),
            req("server_time_ms", Ty::Int),
            opt("history", Ty::List(&SUCCESSION, 16)),
        ])),
    ),
    Route {
        name: "e2e.sealed",
        method: "POST",
        path: "/mobile/v1/sealed",
        query: &[],
        request: Json(Ty::Obj(&[
            req("v", Ty::Int),
            req("kid", Ty::Hex(16)),
            req("blob", Ty::Base64(SEALED_REQUEST_MAX)),
        ])),
        response: Json(Ty::Obj(&[req("v", Ty::Int), req("blob", Ty::Base64(SEALED_ANSWER_MAX))])),
        request_max: SEALED_REQUEST_MAX,
        response_max: SEALED_ANSWER_MAX,
    },
];

/// Every message of the phone API, typed: what a sealed call may carry, and its answer.
pub static ROUTES: &[Route] = &[
    // activation and keys
    post(
        "device.activate",
        "/mobile/v1/activate",
        Json(Ty::Obj(&[
            req("employee_no", EMPLOYEE_NO),
            req("code", Ty::Text(64)),
            req("device_name", NAME),
            opt("wecom_code", Ty::Text(256)),
        ])),
        Json(Ty::Obj(&[
            req("device_id", ID),
            req("employee_no", EMPLOYEE_NO),
            req("expires_at", TIME),
            opt("token", Ty::Token(256)),
        ])),
    ),
    post("keys.start", "/mobile/v1/keys", Empty, Json(Ty::Obj(&[req("key_id", ID), req("context", Ty::Text(1024))]))),
    post(
        "keys.finish",
        "/mobile/v1/keys/{key_id}",
        Json(Ty::Obj(&[req("request", Ty::Obj(&[req("version", Ty::Int), req("p1", POINT), req("proof", PROOF)]))])),
        Json(Ty::Obj(&[
            req(
                "response",
                Ty::Obj(&[
                    req("version", Ty::Int),
                    req("p2", POINT),
                    req("proof", PROOF),
                    req("public_key", Ty::Hex(130)),
                ]),
            ),
            opt("certificate", CERT),
            req("csr_required", Ty::Bool),
        ])),
    ),
    post("certificate.renew", "/mobile/v1/certificate/renew", Empty, Json(CERT)),
    // the key's own certification request, signed by phone and server together (outside CAs)
    post(
        "certificate.csr",
        "/mobile/v1/certificate/csr",
        Empty,
        Json(Ty::Obj(&[
            req("key_id", ID),
            req("info", Ty::Hex(8192)),
            req("subject", Ty::Text(1024)),
            opt("renewal", ID),
        ])),
    ),
    post(
        "certificate.csr.answer",
        "/mobile/v1/certificate/csr/answer",
        Json(Ty::Obj(&[req("request", SIGN_REQUEST)])),
        Json(SIGN_RESPONSE),
    ),
    post(
        "certificate.csr.finish",
        "/mobile/v1/certificate/csr/finish",
        Json(Ty::Obj(&[req("signature", Ty::Hex(160))])),
        Json(CERT),
    ),
    delete("device.unbind", "/mobile/v1/device", Empty),
    // what hospital systems asked of the doctor (R7.4.3, R7.4.4)
    get("tasks", "/mobile/v1/tasks", Json(Ty::Obj(&[req("tasks", Ty::List(&TASK, 50))]))),
    // PIN
    post(
        "pin.set",
        "/mobile/v1/pin",
        Json(Ty::Obj(&[req("verifier", SECRET), opt("current_verifier", SECRET)])),
        Json(UNLOCK),
    ),
    post(
        "pin.unlock",
        "/mobile/v1/unlock",
        Json(Ty::Obj(&[req("verifier", SECRET), req("approve", DIGEST)])),
        Json(UNLOCK),
    ),
    // signing
    get("pending", "/mobile/v1/pending", Json(Ty::Obj(&[req("items", Ty::List(&SUMMARY, 1000))]))),
    post(
        "sign_rounds.start",
        "/mobile/v1/sign-rounds",
        Json(Ty::Obj(&[req("targets", Ty::List(&Ty::Obj(&[opt("ticket", ID), opt("flow_id", ID)]), 200))])),
        Json(Ty::Obj(&[req("rounds", Ty::List(&ROUND, 200))])),
    ),
    post(
        "sign_rounds.answers",
        "/mobile/v1/sign-rounds/answers",
        Json(Ty::Obj(&[req("answers", Ty::List(&Ty::Obj(&[req("round_id", ID), req("request", SIGN_REQUEST)]), 200))])),
        Json(Ty::Obj(&[req("responses", Ty::List(&SIGN_RESPONSE, 200))])),
    ),
    post(
        "sign_rounds.signatures",
        "/mobile/v1/sign-rounds/signatures",
        Json(Ty::Obj(&[req(
            "signatures",
            Ty::List(&Ty::Obj(&[req("round_id", ID), req("signature", Ty::Hex(160))]), 200),
        )])),
        Json(Ty::Obj(&[req("results", Ty::List(&SIGN_OUTCOME, 200))])),
    ),
    // the document as text before signing (R2.4): only ever inside the end-to-end channel — this
    // list is the server's check of opened calls; the gateway never forwards it (not in FORWARDED)
    get(
        "sign_rounds.view",
        "/mobile/v1/sign-rounds/{round_id}/view",
        Json(Ty::Obj(&[
            req("round_id", ID),
            req("flow_id", ID),
            req("kind", WORD),
            opt("text", Ty::Text(256 << 10)),
            opt("pages", Ty::List(&Ty::Text(32_000), 20)),
            req("truncated", Ty::Bool),
        ])),
    ),
    // handwriting (the doctor's signature image, drawn on the phone)
    Route {
        request_max: HANDWRITING_MAX,
        ..post(
            "handwriting",
            "/mobile/v1/handwriting",
            Json(Ty::Obj(&[opt("image_base64", Ty::Base64(HANDWRITING_MAX))])),
            Json(Ty::Obj(&[
                req("owner", NAME),
                req("source", WORD),
                req("sm3", DIGEST),
                req("size", Ty::List(&Ty::Int, 2)),
                req("updated_by", NAME),
                req("updated_at", TIME),
            ])),
        )
    },
    // grants
    get(
        "systems",
        "/mobile/v1/systems",
        Json(Ty::Obj(&[
            req("items", Ty::List(&Ty::Obj(&[req("app_id", ID), req("name", NAME)]), 500)),
            req("grant_max_hours", Ty::Int),
        ])),
    ),
    post(
        "grants.start",
        "/mobile/v1/grants",
        Json(Ty::Obj(&[req("app_id", ID), req("hours", Ty::Int), opt("max_count", Ty::Int)])),
        Json(Ty::Obj(&[
            req("grant_id", ID),
            req("public_key", Ty::Hex(130)),
            req("context", Ty::Text(1024)),
            req("app_id", ID),
            req("app_name", NAME),
            req("hours", Ty::Int),
        ])),
    ),
    post(
        "grants.share",
        "/mobile/v1/grants/{grant_id}/share",
        Json(Ty::Obj(&[req("sealed", Ty::Hex(4096))])),
        Json(GRANT),
    ),
    get("grants.list", "/mobile/v1/grants", Json(Ty::Obj(&[req("items", Ty::List(&GRANT, 1000))]))),
    delete("grants.cancel", "/mobile/v1/grants/{grant_id}", Json(GRANT)),
    // records (R3.7)
    Route {
        name: "records",
        method: "GET",
        path: "/mobile/v1/records",
        query: &[("limit", Ty::Int)],
        request: Empty,
        request_max: 0,
        response_max: JSON_MAX,
        response: Json(Ty::Obj(&[
            req(
                "signatures",
                Ty::List(
                    &Ty::Obj(&[
                        req("flow_id", ID),
                        req("doc_no", DOC_NO),
                        req("title", TITLE),
                        req("kind", WORD),
                        opt("signed_at", TIME),
                        opt("custody", WORD),
                        opt("grant_id", ID),
                        opt("cert_serial", ID),
                        req("flow_state", WORD),
                    ]),
                    1000,
                ),
            ),
            req(
                "logins",
                Ty::List(
                    &Ty::Obj(&[
                        req("at", TIME),
                        req("action", Ty::Token(64)),
                        req("outcome", WORD),
                        req("ip", Ty::Token(64)),
                        req("details", Ty::Details(32)),
                    ]),
                    1000,
                ),
            ),
        ])),
    },
    // real-name check (WeChat face verification)
    post(
        "realname.start",
        "/mobile/v1/realname",
        Json(Ty::Obj(&[opt("wx_code", Ty::Text(256))])),
        Json(Ty::Obj(&[
            req("check_id", ID),
            req("provider", WORD),
            req("verify_id", Ty::Text(512)),
            req("demo", Ty::Bool),
            req("expires_at", TIME),
        ])),
    ),
    post(
        "realname.finish",
        "/mobile/v1/realname/{check_id}",
        Empty,
        Json(Ty::Obj(&[req("check_id", ID), req("state", WORD), req("realname_status", WORD), req("demo", Ty::Bool)])),
    ),
    // scan-to-login
    post(
        "login.scan",
        "/mobile/v1/login-tickets/{ticket_id}/scan",
        Empty,
        Json(Ty::Obj(&[
            req("system", NAME),
            req("challenge", Ty::Text(256)),
            req("expires_at", TIME),
            req("round", ROUND),
        ])),
    ),
    post("login.refuse", "/mobile/v1/login-tickets/{ticket_id}/refuse", Empty, Empty),
    // fingerprint (WeChat SOTER)
    get(
        "soter.status",
        "/mobile/v1/soter",
        Json(Ty::Obj(&[req("available", Ty::Bool), req("enabled", Ty::Bool), opt("enabled_at", TIME)])),
    ),
    post(
        "soter.challenge",
        "/mobile/v1/soter/challenges",
        Json(Ty::Obj(&[req("purpose", WORD), opt("approve", DIGEST)])),
        Json(Ty::Obj(&[req("challenge", Ty::Text(256)), req("expires_at", TIME)])),
    ),
    post(
        "soter.enrol",
        "/mobile/v1/soter",
        Json(Ty::Obj(&[
            req("current_verifier", SECRET),
            req("wx_code", Ty::Text(256)),
            req("json_string", Ty::Text(4096)),
            req("json_signature", Ty::Text(2048)),
        ])),
        Json(Ty::Obj(&[req("fingerprint_secret", SECRET), req("unlock_secret", SECRET), req("enabled_at", TIME)])),
    ),
    post(
        "soter.unlock",
        "/mobile/v1/soter/unlock",
        Json(Ty::Obj(&[req("json_string", Ty::Text(4096)), req("json_signature", Ty::Text(2048))])),
        Json(UNLOCK),
    ),
    delete("soter.off", "/mobile/v1/soter", Empty),
];

/// Why a message was dropped. Names the place and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// no route has this method and path
    UnknownRoute,
    /// a query key the route does not take, or a value of the wrong form
    Query(String),
    /// the body is not JSON (or not the route's kind of body)
    NotJson,
    /// a field the type does not name
    UnknownField(String),
    /// a required field is missing or null
    Missing(String),
    /// a value of the wrong type (what was expected)
    WrongType(String, &'static str),
    /// a string or list over its cap
    TooLong(String, usize),
    /// a body over the route's cap
    TooLarge(usize),
    /// an answer the route does not have (status, content type)
    Answer(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownRoute => f.write_str("unknown route"),
            Refusal::Query(k) => write!(f, "query parameter '{k}' not allowed"),
            Refusal::NotJson => f.write_str("body is not the expected JSON"),
            Refusal::UnknownField(p) => write!(f, "unknown field {p}"),
            Refusal::Missing(p) => write!(f, "missing field {p}"),
            Refusal::WrongType(p, t) => write!(f, "{p} is not {t}"),
            Refusal::TooLong(p, n) => write!(f, "{p} is over its cap of {n}"),
            Refusal::TooLarge(n) => write!(f, "body over {n} bytes"),
            Refusal::Answer(w) => write!(f, "answer not allowed: {w}"),
        }
    }
}

/// The message of the phone API for `method` and `path` (`path` without the query).
pub fn route(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.method == method && matches_path(r.path, path))
}

/// What the gateway forwards for `method` and `path` (`path` without the query).
pub fn forwarded(method: &str, path: &str) -> Option<&'static Route> {
    FORWARDED.iter().find(|r| r.method == method && matches_path(r.path, path))
}

fn segment_ok(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// An H5 app file name: `a-z0-9_-` segments, one dot before a known extension, no `..`.
fn asset_ok(rest: &str) -> bool {
    let known = [".html", ".js", ".css", ".wasm"];
    rest.len() <= 128
        && known.iter().any(|e| rest.ends_with(e))
        && rest.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.".contains(&c))
        })
        && !rest.contains("..")
}

fn matches_path(template: &str, path: &str) -> bool {
    if let Some(prefix) = template.strip_suffix("{*file}") {
        return path.strip_prefix(prefix).is_some_and(asset_ok);
    }
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with('{') => {
                if !segment_ok(ps) {
                    return false;
                }
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

/// Check a query string (without `?`) against the route's keys. Values are taken as they are
/// written (no percent-decoding): a form that needs escaping is not one the phone sends.
pub fn check_query(r: &Route, query: Option<&str>) -> Result<(), Refusal> {
    let Some(q) = query.filter(|q| !q.is_empty()) else { return Ok(()) };
    if q.len() > 256 {
        return Err(Refusal::Query("(too long)".into()));
    }
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Some((_, ty)) = r.query.iter().find(|(name, _)| *name == k) else {
            return Err(Refusal::Query(k.chars().take(32).collect()));
        };
        let ok = match ty {
            Ty::Int => (1..=10).contains(&v.len()) && v.bytes().all(|c| c.is_ascii_digit()),
            _ => token(v, 64),
        };
        if !ok {
            return Err(Refusal::Query(k.to_string()));
        }
    }
    Ok(())
}

fn token(s: &str, max: usize) -> bool {
    s.len() <= max && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"_-.:+".contains(&c))
}

/// Check `v` against `ty`; `at` is the JSON path so far (`$.answers[3].request`).
pub fn check(ty: &Ty, v: &Value, at: &str) -> Result<(), Refusal> {
    let wrong = |what| Err(Refusal::WrongType(at.to_string(), what));
    let long = |n| Err(Refusal::TooLong(at.to_string(), n));
    match ty {
        Ty::Text(n) => match v.as_str() {
            Some(s) if s.len() <= *n => Ok(()),
            Some(_) => long(*n),
            None => wrong("a string"),
        },
        Ty::Token(n) => match v.as_str() {
            Some(s) if s.len() > *n => long(*n),
            Some(s) if token(s, *n) => Ok(()),
            _ => wrong("a token"),
        },
        Ty::Hex(n) => match v.as_str() {
            Some(s) if s.len() > *n => long(*n),
            Some(s) if s.bytes().all(|c| c.is_ascii_hexdigit()) => Ok(()),
            _ => wrong("hex"),
        },
        Ty::Base64(n) => match v.as_str() {
            Some(s) if s.len() > *n => long(*n),
            Some(s) if s.bytes().all(|c| c.is_ascii_alphanumeric() || b"+/=-_".contains(&c)) => Ok(()),
            _ => wrong("base64"),
        },
        Ty::Pem(n) => match v.as_str() {
            Some(s) if s.len() > *n => long(*n),
            Some(s) if s.bytes().all(|c| c.is_ascii_alphanumeric() || b"+/=- \r\n".contains(&c)) => Ok(()),
            _ => wrong("PEM"),
        },
        Ty::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
            _ => wrong("an integer"),
        },
        Ty::Bool => match v {
            Value::Bool(_) => Ok(()),
            _ => wrong("a boolean"),
        },
        Ty::List(item, n) => match v.as_array() {
            Some(a) if a.len() > *n => long(*n),
            Some(a) => a.iter().enumerate().try_for_each(|(i, x)| check(item, x, &format!("{at}[{i}]"))),
            None => wrong("an array"),
        },
        Ty::Details(n) => match v.as_object() {
            Some(o) if o.len() > *n => long(*n),
            Some(o) => o.iter().try_for_each(|(k, x)| {
                if !token(k, 64) {
                    return Err(Refusal::UnknownField(format!("{at}.(name)")));
                }
                match x {
                    Value::String(s) if s.len() > 256 => Err(Refusal::TooLong(format!("{at}.{k}"), 256)),
                    Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => Ok(()),
                    _ => Err(Refusal::WrongType(format!("{at}.{k}"), "a scalar")),
                }
            }),
            None => wrong("an object"),
        },
        Ty::Obj(fields) => {
            let Some(o) = v.as_object() else { return wrong("an object") };
            if let Some(k) = o.keys().find(|k| !fields.iter().any(|f| f.name == k.as_str())) {
                // the name of an unknown field is shown only when it is a plain word (never content)
                let shown = if token(k, 64) { k.as_str() } else { "(name)" };
                return Err(Refusal::UnknownField(format!("{at}.{shown}")));
            }
            for f in fields.iter() {
                let here = format!("{at}.{}", f.name);
                match o.get(f.name) {
                    None | Some(Value::Null) if f.required => return Err(Refusal::Missing(here)),
                    None | Some(Value::Null) => {}
                    Some(x) => check(&f.ty, x, &here)?,
                }
            }
            Ok(())
        }
    }
}

/// Parse `body` as JSON of `ty` and return it written out again (the bytes to forward). The
/// caller has bounded `body` (the route's request cap, or [`JSON_MAX`] for answers).
pub fn check_json(ty: &Ty, body: &[u8]) -> Result<Vec<u8>, Refusal> {
    if body.len() > SEALED_REQUEST_MAX {
        return Err(Refusal::TooLarge(SEALED_REQUEST_MAX));
    }
    shape_ok(body)?;
    let v: Value = serde_json::from_slice(body).map_err(|_| Refusal::NotJson)?;
    check(ty, &v, "$")?;
    Ok(serde_json::to_vec(&v).expect("a parsed value is written out"))
}

/// The most values (objects, arrays, elements) a checked JSON body may hold. The largest message
/// (200 sign rounds, a records page) has a few thousand; a 5 MiB body of `[0,0,…]` would have
/// millions, each tens of bytes once parsed.
pub const MAX_JSON_VALUES: usize = 65_536;

/// Refuse JSON whose shape would parse into far more memory than its size: counted on the bytes
/// (commas and brackets outside strings), before any parsing.
pub fn shape_ok(body: &[u8]) -> Result<(), Refusal> {
    let (mut values, mut in_string, mut escaped) = (0usize, false, false);
    for &c in body {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b',' | b'[' | b'{' => {
                values += 1;
                if values > MAX_JSON_VALUES {
                    return Err(Refusal::TooLong("$".into(), MAX_JSON_VALUES));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The content type of an H5 app file, from its name (`/m/` is the page).
pub fn asset_type(path: &str) -> Option<&'static str> {
    let ext = if path.ends_with('/') { "html" } else { path.rsplit_once('.')?.1 };
    match ext {
        "html" => Some("text/html; charset=utf-8"),
        "js" => Some("text/javascript; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        "wasm" => Some("application/wasm"),
        _ => None,
    }
}

/// Whether the server's content type for the app file at `path` is the one its name implies.
pub fn asset_type_ok(content_type: &str, path: &str) -> bool {
    let base = |t: &str| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    asset_type(path).is_some_and(|want| base(want) == base(content_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_match_their_paths_only() {
        assert_eq!(route("POST", "/mobile/v1/keys/k_1-2").unwrap().name, "keys.finish");
        assert_eq!(route("POST", "/mobile/v1/keys").unwrap().name, "keys.start");
        assert_eq!(route("GET", "/mobile/v1/pending").unwrap().name, "pending");
        assert!(route("GET", "/mobile/v1/keys").is_none(), "method is part of the route");
        assert!(route("POST", "/mobile/v1/keys/a/b").is_none());
        assert!(route("POST", "/mobile/v1/keys/a.b").is_none(), "a parameter is one plain segment");
        assert!(route("GET", "/api/v1/users").is_none(), "the HIS API is not reachable");
        assert!(route("GET", "/admin/v1/apps").is_none());
        assert!(route("GET", "/api/v1/sign-flows/sf_1/file").is_none(), "documents are not reachable");
        assert!(forwarded("GET", "/m/pkg/medsign_wasm_bg.wasm").is_some());
        assert!(forwarded("GET", "/m/app.js").is_some());
        assert!(route("GET", "/m/app.js").is_none(), "app files are not messages of the phone API");
        for bad in
            ["/m/../Cargo.toml", "/m/.env", "/m/a/../../x.js", "/m/app.js.map", "/m/x.pdf", "/m//x.js", "/m/X.js"]
        {
            assert!(forwarded("GET", bad).is_none(), "{bad}");
        }
        // the gateway forwards the phone API only sealed: no plain message passes it
        assert_eq!(forwarded("POST", "/mobile/v1/sealed").unwrap().name, "e2e.sealed");
        assert_eq!(forwarded("GET", "/mobile/v1/channel").unwrap().name, "e2e.channel");
        for r in ROUTES {
            assert!(forwarded(r.method, r.path).is_none(), "{} is forwarded plain", r.name);
        }
        assert!(route("POST", "/mobile/v1/sealed").is_none(), "a sealed call cannot carry another");
    }

    #[test]
    fn a_message_is_exactly_its_type() {
        let unlock = &route("POST", "/mobile/v1/unlock").unwrap().request;
        let Body::Json(ty) = unlock else { panic!() };
        let ok = json!({"verifier": "ab".repeat(32), "approve": "cd".repeat(32)});
        assert!(check_json(ty, ok.to_string().as_bytes()).is_ok());
        let extra = json!({"verifier": "ab", "approve": "cd", "document": "病历全文"});
        assert_eq!(check(ty, &extra, "$"), Err(Refusal::UnknownField("$.document".into())));
        let long = json!({"verifier": "a".repeat(129), "approve": "cd"});
        assert_eq!(check(ty, &long, "$"), Err(Refusal::TooLong("$.verifier".into(), 128)));
        let text = json!({"verifier": "not hex", "approve": "cd"});
        assert_eq!(check(ty, &text, "$"), Err(Refusal::WrongType("$.verifier".into(), "hex")));
        assert_eq!(check(ty, &json!({"verifier": "ab"}), "$"), Err(Refusal::Missing("$.approve".into())));
        assert_eq!(
            check(ty, &json!({"verifier": "ab", "approve": null}), "$"),
            Err(Refusal::Missing("$.approve".into()))
        );
        assert_eq!(check_json(ty, b"{\"verifier\": "), Err(Refusal::NotJson));
        // a field name that is itself content is not repeated in the log
        let named = json!({"verifier": "ab", "approve": "cd", "患者 张三": 1});
        assert_eq!(check(ty, &named, "$"), Err(Refusal::UnknownField("$.(name)".into())));
    }

    #[test]
    fn nested_lists_are_checked_item_by_item() {
        let Body::Json(ty) = &route("POST", "/mobile/v1/sign-rounds/answers").unwrap().request else { panic!() };
        let answer = |q1: Value| json!({"round_id": "sr_1", "request": {"version": 1, "e": "00".repeat(32), "q1": q1}});
        let good = json!({"answers": [answer(json!("02".repeat(33)))]});
        assert!(check(ty, &good, "$").is_ok());
        let bad = json!({"answers": [answer(json!("02".repeat(33))), answer(json!({"pdf": "JVBERi0"}))]});
        assert_eq!(check(ty, &bad, "$"), Err(Refusal::WrongType("$.answers[1].request.q1".into(), "hex")));
        let many = json!({"answers": vec![answer(json!("02")); 201]});
        assert_eq!(check(ty, &many, "$"), Err(Refusal::TooLong("$.answers".into(), 200)));
    }

    #[test]
    fn a_body_that_would_parse_into_far_more_than_its_size_is_refused_unparsed() {
        let many = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES));
        assert!(shape_ok(many.as_bytes()).is_err());
        assert!(check_json(&Ty::List(&Ty::Int, 10), many.as_bytes()).is_err());
        // commas and brackets inside strings are text, not values
        let text = format!("{{\"blob\":\"{}\"}}", ",[{\\\"".repeat(100_000));
        assert!(shape_ok(text.as_bytes()).is_ok(), "inside a string");
        assert!(shape_ok(format!("[{}0]", "0,".repeat(1000)).as_bytes()).is_ok());
    }

    #[test]
    fn duplicated_keys_are_forwarded_once() {
        let Body::Json(ty) = &route("POST", "/mobile/v1/grants/g1/share").unwrap().request else { panic!() };
        let out = check_json(ty, br#"{"sealed": "aa", "sealed": "bb"}"#).unwrap();
        assert_eq!(out, br#"{"sealed":"bb"}"#, "what is forwarded is what was checked");
    }

    #[test]
    fn queries_and_details() {
        let r = route("GET", "/mobile/v1/records").unwrap();
        assert!(check_query(r, Some("limit=50")).is_ok());
        assert!(check_query(r, None).is_ok());
        assert_eq!(check_query(r, Some("limit=5&x=1")), Err(Refusal::Query("x".into())));
        assert_eq!(check_query(r, Some("limit=abc")), Err(Refusal::Query("limit".into())));
        assert!(check_query(route("GET", "/mobile/v1/pending").unwrap(), Some("limit=1")).is_err());
        let d = Ty::Details(2);
        assert!(check(&d, &json!({"device": "dev_1", "n": 3}), "$").is_ok());
        assert!(check(&d, &json!({"device": {"nested": 1}}), "$").is_err());
        assert!(check(&d, &json!({"a": 1, "b": 2, "c": 3}), "$").is_err());
        assert!(check(&d, &json!({"a": "x".repeat(257)}), "$").is_err());
    }

    #[test]
    fn every_route_is_unique_and_every_template_is_sane() {
        let all: Vec<&Route> = ROUTES.iter().chain(FORWARDED).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(["GET", "POST", "DELETE"].contains(&a.method), "{}", a.name);
            assert!(a.path == "/m" || a.path.starts_with("/m/") || a.path.starts_with("/mobile/v1/"), "{}", a.path);
            for b in &all[i + 1..] {
                assert!(a.name != b.name && (a.method, a.path) != (b.method, b.path), "{} / {}", a.name, b.name);
            }
        }
        assert!(
            check(&ERROR, &json!({"code": "conflict", "message": "已签 / signed", "request_id": "r-1"}), "$").is_ok()
        );
    }
}
