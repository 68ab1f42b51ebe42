//! The phone ↔ server end-to-end channel (issue #17 item 3, docs/gateway.md): a phone behind the
//! DMZ gateway seals every call of the mobile API to the servers' channel key
//! ([`medsign_crypto::e2e`]) and sends it as `POST /mobile/v1/sealed`; the gateway forwards an
//! envelope it cannot read, and sees only its size and time.
//!
//! [`unsealing`] runs before routing: it opens the envelope, refuses a stale or replayed one,
//! holds the inner call to the same typed allow-list the gateway keeps for plain calls
//! ([`medsign_gateway::allow`]), routes it like any request (with the phone's address and the
//! request id of the envelope), holds the answer to the list too, and seals it for the phone that
//! asked. Every outcome of the inner call — a 401, a 429 — travels sealed inside a 200, so even
//! the status stays between the two ends. What the gateway may still see is the channel's own
//! refusals (`e2e_*`), which say nothing about the phone's business.

use crate::{AppState, error::ApiError};
use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, Method, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use medsign_crypto::{e2e, sm2::Sm2SecretKey};
use medsign_gateway::allow::{self, Refusal};
use medsign_phone::channel;
use medsign_store::{Error, error::Refusal as Kind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

/// Where sealed calls arrive.
pub const SEALED_PATH: &str = "/mobile/v1/sealed";
/// Where a phone reads the channel key (the one plain call of the mobile API through a gateway).
pub const CHANNEL_PATH: &str = "/mobile/v1/channel";
/// How far the phone's clock may be from the server's (and how long a request id is kept).
const WINDOW_MS: i64 = 5 * 60 * 1000;
/// The replay records' scope in `api_nonces` (not an app id: those start with `app_`).
const NONCE_SCOPE: &str = "~e2e";
/// A sealed call under a key this instance does not hold makes it look at once, at most this often.
const REFRESH_ON_MISS: Duration = Duration::from_secs(1);

/// One key that opens calls.
struct Opening {
    kid: String,
    key: Sm2SecretKey,
    public_hex: String,
    fingerprint_hex: String,
}

/// The keys of one moment: the keys that open calls and what `GET /mobile/v1/channel` names.
struct KeySet {
    generation: u32,
    made_at: chrono::DateTime<chrono::Utc>,
    /// when this instance loaded them
    loaded: Instant,
    /// the newest first
    opening: Vec<Opening>,
    /// oldest first, ending with the newest
    history: Vec<Succession>,
}

impl KeySet {
    /// The key phones are told to use now. The history published beside it always runs to the
    /// newest key: a phone that already moved to the newest (told so by another instance) finds
    /// its pin there after the key offered, and keeps it.
    fn advertised(&self) -> &Opening {
        let i = channel::advertised(self.made_at, self.loaded.elapsed(), self.opening.len(), chrono::Utc::now());
        &self.opening[i]
    }
}

/// The servers' channel keys ([`medsign_phone::channel`]): the newest, which phones are told to
/// use, and the one before it, which still opens calls; both shared by every instance on the
/// database, and looked for again now and then so that a rotation reaches every instance.
pub struct ChannelKey {
    now: std::sync::RwLock<Arc<KeySet>>,
    checked: std::sync::Mutex<Instant>,
    missed: std::sync::Mutex<Instant>,
    refreshing: tokio::sync::Mutex<()>,
}

impl ChannelKey {
    /// From the recorded keys.
    pub fn new(keys: channel::Keys) -> Self {
        Self {
            now: std::sync::RwLock::new(Arc::new(KeySet::from(keys))),
            checked: std::sync::Mutex::new(Instant::now()),
            missed: std::sync::Mutex::new(Instant::now().checked_sub(REFRESH_ON_MISS).unwrap_or_else(Instant::now)),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn set(&self) -> Arc<KeySet> {
        self.now.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `SM3` of the point of the key phones are told to use, hex: what a phone pins (the
    /// activation code carries it).
    pub async fn fingerprint(&self, db: &medsign_store::db::Db, kek: &medsign_crypto::wrap::Kek) -> String {
        self.refresh(db, kek, channel::REFRESH).await;
        self.set().advertised().fingerprint_hex.clone()
    }

    /// Look for a newer key if the last look is older than `age`; a look under way is not
    /// waited for.
    async fn refresh(&self, db: &medsign_store::db::Db, kek: &medsign_crypto::wrap::Kek, age: Duration) {
        if !Self::due(&self.checked, age) {
            return;
        }
        let Ok(_one) = self.refreshing.try_lock() else { return };
        self.look(db, kek).await;
    }

    /// A sealed call under `kid`, which this instance does not hold: wait for a look under way
    /// (it may bring the key), then look at the database — at most once a second, so that a flood
    /// of made-up ids costs no more than that.
    async fn look_for(&self, db: &medsign_store::db::Db, kek: &medsign_crypto::wrap::Kek, kid: &str) {
        let _one = self.refreshing.lock().await;
        if self.set().opening.iter().any(|o| o.kid == kid) || !Self::due(&self.missed, REFRESH_ON_MISS) {
            return;
        }
        self.look(db, kek).await;
    }

    /// Whether the look timed by `last` is due after `age`; marks it done.
    fn due(last: &std::sync::Mutex<Instant>, age: Duration) -> bool {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < age {
            return false;
        }
        *last = Instant::now();
        true
    }

    /// Load a newer generation if the database has one; keeps what it has when the database
    /// cannot answer, and never goes back to an older generation (a restored backup, a database
    /// writer — until a restart). The caller holds `refreshing`.
    async fn look(&self, db: &medsign_store::db::Db, kek: &medsign_crypto::wrap::Kek) {
        let held = self.set().generation;
        let found = match channel::newest(db).await {
            Ok(Some(g)) if g > held => channel::load(db, kek).await.map(Some),
            Ok(Some(g)) if g < held => {
                tracing::warn!(
                    recorded = g,
                    held,
                    "数据库中的通道密钥比本实例的旧，不回退 / the database holds an older channel key than this instance; not going back"
                );
                Ok(None)
            }
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        match found {
            Ok(Some(keys)) => {
                tracing::info!(generation = keys.generation, "通道密钥已更换 / the channel key was rotated");
                *self.now.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(KeySet::from(keys));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "无法读取通道密钥 / cannot read the channel keys"),
        }
    }
}

impl From<channel::Keys> for KeySet {
    fn from(k: channel::Keys) -> Self {
        let hex_point = |p: &medsign_crypto::sm2::Sm2PublicKey| hex::encode(p.to_sec1_uncompressed());
        let opening = k
            .accepted
            .into_iter()
            .map(|h| {
                let fingerprint_hex = hex::encode(e2e::fingerprint(h.key.public_key()));
                Opening {
                    kid: fingerprint_hex[..16].to_string(),
                    public_hex: hex_point(h.key.public_key()),
                    fingerprint_hex,
                    key: h.key,
                }
            })
            .collect();
        KeySet {
            generation: k.generation,
            made_at: k.made_at,
            loaded: Instant::now(),
            opening,
            history: k
                .steps
                .iter()
                .map(|s| Succession {
                    generation: s.generation,
                    public_key: hex_point(&s.key),
                    endorsement: s.endorsement.map(|e| hex::encode(e.to_raw())),
                })
                .collect(),
        }
    }
}

/// One key of the channel's succession.
#[derive(Serialize, Clone, utoipa::ToSchema)]
pub struct Succession {
    /// 1 for the first key, one more for each after it
    generation: u32,
    /// the SM2 public point, uncompressed, hex
    public_key: String,
    /// the previous generation's SM2 signature (hex `r ‖ s`) over
    /// `"medsign/e2e/v1/succession" ‖ generation (4 bytes, big-endian) ‖ point`; null for a key
    /// made without one (the first, or after a compromise)
    endorsement: Option<String>,
}

/// `GET /mobile/v1/channel`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Channel {
    /// names the key in sealed messages (the fingerprint's first 16 hex digits)
    kid: String,
    /// the SM2 public point, uncompressed, hex
    public_key: String,
    /// SM3 of the point, hex — compare with the pin before the first sealed call
    fingerprint: String,
    /// the server's clock (Unix milliseconds): a phone whose clock is off seals with this time
    server_time_ms: i64,
    /// the keys since the last one made without an endorsement, oldest first, ending with the
    /// newest (at most 16; for a few seconds after a rotation the newest comes after this one): a
    /// phone that pinned an older key follows the endorsements to this one, a phone pinned to a
    /// newer one keeps it
    history: Vec<Succession>,
}

#[utoipa::path(get, path = "/mobile/v1/channel", tag = "mobile",
    responses((status = 200, body = Channel, example = json!({"kid": "3f2a9c1b7d4e5a60", "public_key": "04…", "fingerprint": "3f2a9c1b7d4e5a60…", "server_time_ms": 1764835200000_i64, "history": [{"generation": 1, "public_key": "04…", "endorsement": null}, {"generation": 2, "public_key": "04…", "endorsement": "8d1f…"}]}))))]
/// `GET /mobile/v1/channel`: the end-to-end channel's key and the server's time. Not secret, but
/// a gateway could substitute its own key: the phone compares the fingerprint with the one it
/// pinned (from the activation QR code, or at its first activation) and stops on a difference —
/// unless `history` leads from the pinned key to this one by endorsements (a rotation).
pub async fn channel(State(s): State<Arc<AppState>>) -> Json<Channel> {
    s.channel.refresh(&s.db, &s.kek, channel::REFRESH).await;
    let c = s.channel.set();
    let key = c.advertised();
    Json(Channel {
        kid: key.kid.clone(),
        public_key: key.public_hex.clone(),
        fingerprint: key.fingerprint_hex.clone(),
        server_time_ms: chrono::Utc::now().timestamp_millis(),
        history: c.history.clone(),
    })
}

/// Body of `POST /mobile/v1/sealed`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedCall {
    /// protocol version: 1
    v: u8,
    /// the channel key the call is sealed to (`kid` of `GET /mobile/v1/channel`)
    kid: String,
    /// base64 of `C1 ‖ SM4-GCM(…)`
    blob: String,
}

/// Answer of `POST /mobile/v1/sealed`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SealedAnswer {
    /// protocol version: 1
    v: u8,
    /// base64 of `SM4-GCM(…)`: the call's `{status, body}`, for the phone that sealed it
    blob: String,
}

/// A sealed request's plaintext.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inner {
    /// the phone's clock, Unix milliseconds (checked on the call's head, before it is parsed)
    #[serde(rename = "ts")]
    _ts: i64,
    method: String,
    /// `/mobile/v1/…`, with the query
    path: String,
    /// the device session token, without `Bearer `
    #[serde(default)]
    auth: Option<String>,
    /// the JSON body
    #[serde(default)]
    body: Option<Value>,
}

#[utoipa::path(post, path = "/mobile/v1/sealed", tag = "mobile",
    request_body(content = SealedCall, example = json!({"v": 1, "kid": "3f2a9c1b7d4e5a60", "blob": "BP3k…"})),
    responses((status = 200, body = SealedAnswer, example = json!({"v": 1, "blob": "q83v…"})),
        (status = 400, body = crate::error::ErrorBody, example = json!({"code": "e2e_stale", "message": "手机时间与服务器相差超过 5 分钟 / the phone's clock is more than 5 minutes off", "request_id": "…"})),
        (status = 409, body = crate::error::ErrorBody, example = json!({"code": "e2e_replay", "message": "该加密报文已收到过（重放）/ this sealed message was received before (replay)", "request_id": "…"}))))]
/// `POST /mobile/v1/sealed`: one call of the mobile API, end-to-end encrypted. The plaintext is
/// `{ts, method, path, auth, body}`; the sealed answer is `{status, body}` of that call. Served
/// by the channel before routing ([`unsealing`]); this route only answers a sealed call that
/// names itself.
pub async fn sealed() -> ApiError {
    invalid("加密报文不能装入另一个加密报文 / a sealed call cannot carry another sealed call").into()
}

/// Marks a request that arrived sealed (the tunnel's fence lets only these reach the phone API).
#[derive(Clone, Copy)]
pub struct Unsealed;

/// Where the phone's address comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// the server's own listener: the peer, or `X-Forwarded-For` from `server.trusted_proxies`
    Direct,
    /// a gateway's tunnel: the gateway's `X-Forwarded-For` (the tunnel is mutually authenticated)
    Tunnel,
}

/// `inner` with the channel in front of its routing.
pub fn unsealing(state: Arc<AppState>, inner: Router, listener: Listener) -> Router {
    Router::new().fallback_service(inner).layer(middleware::from_fn_with_state((state, listener), unseal))
}

async fn unseal(State((s, listener)): State<(Arc<AppState>, Listener)>, req: Request, next: Next) -> Response {
    if req.uri().path() != SEALED_PATH || req.method() != Method::POST {
        return next.run(req).await;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let phone = phone_address(&s, &req, listener);
    let answer = crate::error::with_request_scope(id.clone(), exchange(&s, req, next, &id, phone)).await;
    let mut answer = crate::http::security_headers(answer).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        answer.headers_mut().insert("x-request-id", v);
    }
    answer
}

/// The phone's address, decided once from the envelope's request: the inner call carries it as
/// its peer address and no `X-Forwarded-For` of its own.
fn phone_address(s: &AppState, req: &Request, listener: Listener) -> std::net::IpAddr {
    let unspecified = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    match listener {
        Listener::Tunnel => tunnel_phone(req.headers()),
        Listener::Direct => req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(unspecified, |c| medsign_gateway::front::client_ip(c.0.ip(), req.headers(), &s.trusted_proxies)),
    }
}

/// The phone's address on a tunnel: the one `X-Forwarded-For` value the gateway sets (unspecified
/// when it is missing or malformed).
pub(crate) fn tunnel_phone(headers: &axum::http::HeaderMap) -> std::net::IpAddr {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok().and_then(|v| v.trim().parse().ok()))
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

fn invalid(message: &str) -> Error {
    Error::coded(Kind::Invalid, "e2e_invalid", message)
}

async fn exchange(s: &AppState, req: Request, next: Next, id: &str, phone: std::net::IpAddr) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = s.limits.take("sealed", crate::ratelimit::SEALED, &phone.to_string()) {
        return ApiError(e).into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, allow::SEALED_REQUEST_MAX).await else {
        return crate::error::envelope(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "加密报文过大 / the sealed message is too large",
        );
    };
    let (opened, responder) = match open(s, &bytes).await {
        Ok(o) => o,
        Err(e) => {
            // a replay or a bad envelope is what a hostile gateway would cause: worth a line
            tracing::warn!(code = e.code(), phone = %phone, "sealed call refused");
            return ApiError(e).into_response();
        }
    };
    let (status, body) = match opened.and_then(|inner| inner_request(&parts, inner, id, phone)) {
        Ok((inner, route)) => answer(route, next.run(inner).await).await,
        Err(e) => {
            tracing::warn!(code = e.code(), phone = %phone, "sealed call refused inside");
            let r = ApiError(e).into_response();
            let status = r.status().as_u16();
            (status, body_of(r).await.ok().flatten())
        }
    };
    // the server's clock travels with every answer, sealed: the phone corrects its own by it
    // (the channel's plain `server_time_ms` is only for the very first call)
    // and the newest key's id: a phone that sealed to an older one reads the channel again
    let kid = s.channel.set().advertised().kid.clone();
    let answer = serde_json::json!({"status": status, "body": body, "time_ms": chrono::Utc::now().timestamp_millis(), "kid": kid});
    let answer = serde_json::to_vec(&answer).unwrap_or_default();
    match responder.seal(&answer) {
        Ok(blob) => Json(SealedAnswer { v: 1, blob: B64.encode(blob) }).into_response(),
        Err(e) => ApiError(Error::internal_from("sealing an answer", e)).into_response(),
    }
}

/// Open the envelope; refuse one sealed to another key, or seen before. Once it opens, what is
/// wrong with the call inside (stale, too large, malformed) is answered sealed — the phone can
/// tell that refusal from one a gateway made up.
async fn open(s: &AppState, bytes: &[u8]) -> medsign_store::Result<(medsign_store::Result<Inner>, e2e::Responder)> {
    let outer: SealedCall =
        serde_json::from_slice(bytes).map_err(|_| invalid("加密报文格式错误 / the sealed message is malformed"))?;
    if outer.v != 1 {
        return Err(invalid("不支持的加密报文版本 / unsupported version of the sealed message"));
    }
    s.channel.refresh(&s.db, &s.kek, channel::REFRESH).await;
    let mut keys = s.channel.set();
    if !keys.opening.iter().any(|o| o.kid == outer.kid) {
        // a key rotated a moment ago, not seen here yet: look now
        s.channel.look_for(&s.db, &s.kek, &outer.kid).await;
        keys = s.channel.set();
    }
    let Some(opening) = keys.opening.iter().find(|o| o.kid == outer.kid) else {
        return Err(Error::coded(
            Kind::Conflict,
            "e2e_key_changed",
            "服务器没有该通道密钥 / the server has no such channel key",
        ));
    };
    let blob = B64
        .decode(outer.blob.as_bytes())
        .map_err(|_| invalid("加密报文不是 base64 / the sealed message is not base64"))?;
    let (plaintext, responder) = e2e::open_request(&opening.key, &blob)
        .map_err(|_| invalid("加密报文无法打开 / the sealed message cannot be opened"))?;
    // the replay record first: whatever the call turns out to be, this envelope is used up
    let now = chrono::Utc::now().timestamp_millis();
    let id = hex::encode(e2e::request_id(&blob)?);
    // kept a minute beyond the latest moment its `ts` could still be accepted
    let expires = (now + 2 * WINDOW_MS) / 1000 + 60;
    if !medsign_store::nonces::record(&s.db, NONCE_SCOPE, &id, expires, now / 1000 - 60).await? {
        return Err(Error::coded(
            Kind::Conflict,
            "e2e_replay",
            "该加密报文已收到过（重放）/ this sealed message was received before (replay)",
        ));
    }
    Ok((parse_inner(&plaintext, now), responder))
}

/// The sealed call, bounded before it is parsed: its route's cap (64 KiB but for the
/// handwriting) and a bound on the JSON's shape, so a small envelope cannot parse into a large
/// tree.
fn parse_inner(plaintext: &[u8], now: i64) -> medsign_store::Result<Inner> {
    #[derive(Deserialize)]
    struct Head {
        ts: i64,
        method: String,
        path: String,
    }
    let malformed = || invalid("加密报文内容格式错误 / the sealed request is malformed");
    let head: Head = serde_json::from_slice(plaintext).map_err(|_| malformed())?;
    if now.abs_diff(head.ts) > WINDOW_MS as u64 {
        return Err(Error::coded(
            Kind::Invalid,
            "e2e_stale",
            "手机时间与服务器相差超过 5 分钟，请校准后重试 / the phone's clock is more than 5 minutes off; correct it and retry",
        ));
    }
    let path = head.path.split_once('?').map_or(head.path.as_str(), |(p, _)| p);
    let cap = allow::route(&head.method, path).map_or(allow::REQUEST_MAX, |r| r.request_max.max(allow::REQUEST_MAX));
    if plaintext.len() > cap + 4096 {
        return Err(refused(Refusal::TooLarge(cap)));
    }
    allow::shape_ok(plaintext).map_err(refused)?;
    serde_json::from_slice(plaintext).map_err(|_| malformed())
}

fn refused(r: Refusal) -> Error {
    invalid(&format!("加密报文中的请求不在允许清单内 / the sealed call is not on the allow-list: {r}"))
}

/// The inner call as a request of its own, held to the allow-list.
fn inner_request(
    outer: &axum::http::request::Parts,
    inner: Inner,
    id: &str,
    phone: std::net::IpAddr,
) -> medsign_store::Result<(Request, &'static allow::Route)> {
    let (path, query) = match inner.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (inner.path.as_str(), None),
    };
    if !path.starts_with("/mobile/v1/") || path == SEALED_PATH || path == CHANNEL_PATH {
        return Err(refused(Refusal::UnknownRoute));
    }
    let route = allow::route(&inner.method, path).ok_or_else(|| refused(Refusal::UnknownRoute))?;
    allow::check_query(route, query).map_err(refused)?;
    match (&route.request, &inner.body) {
        (allow::Body::Json(ty), Some(v)) => allow::check(ty, v, "$").map_err(refused)?,
        (allow::Body::Empty, None | Some(Value::Null)) => {}
        _ => return Err(refused(Refusal::NotJson)),
    }
    let mut b = Request::builder().method(inner.method.as_str()).uri(inner.path.as_str()).header("x-request-id", id);
    if let Some(token) = &inner.auth {
        let v = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| invalid("会话令牌格式错误 / malformed session token"))?;
        b = b.header(header::AUTHORIZATION, v);
    }
    if let Some(ua) = outer.headers.get(header::USER_AGENT) {
        b = b.header(header::USER_AGENT, ua);
    }
    let body = match &inner.body {
        Some(v) if !v.is_null() => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(v).map_err(|e| Error::internal_from("re-encoding a sealed body", e))?)
        }
        _ => Body::empty(),
    };
    let mut req = b.body(body).map_err(|_| invalid("加密报文中的请求无效 / the sealed call is not a valid request"))?;
    req.extensions_mut().insert(ConnectInfo(SocketAddr::new(phone, 0)));
    req.extensions_mut().insert(Unsealed);
    Ok((req, route))
}

async fn body_of(r: Response) -> Result<Option<Value>, ()> {
    let bytes = axum::body::to_bytes(r.into_body(), allow::JSON_MAX).await.map_err(|_| ())?;
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|_| ())
}

/// The inner call's status and JSON, held to the route's answer type (or the error envelope).
async fn answer(route: &allow::Route, r: Response) -> (u16, Option<Value>) {
    let status = r.status();
    let body = body_of(r).await;
    let checked = match (&body, status.is_success(), &route.response) {
        (Err(()), ..) => Err(Refusal::NotJson),
        (Ok(None), true, allow::Body::Empty) => Ok(()),
        (Ok(Some(v)), true, allow::Body::Json(ty)) => allow::check(ty, v, "$"),
        (Ok(Some(v)), false, _) => allow::check(&allow::ERROR, v, "$"),
        _ => Err(Refusal::Answer(format!("status {status}"))),
    };
    match (checked, body) {
        (Ok(()), Ok(v)) => (status.as_u16(), v),
        (checked, _) => {
            let why = checked.err().unwrap_or(Refusal::NotJson);
            tracing::error!(route = route.name, %why, "an answer of the mobile API is not on the allow-list; withheld");
            let r = ApiError(Error::internal("answer not on the allow-list")).into_response();
            (r.status().as_u16(), body_of(r).await.ok().flatten())
        }
    }
}
