//! The gateway's public side: what phones (through the hospital's load balancer) reach.
//!
//! Every request is held to the allow-list ([`crate::allow`]) before it goes down a tunnel, and
//! every answer after it comes back; only listed headers pass either way (no cookies, no
//! hop-by-hop headers, nothing the phone's browser adds on its own). `/healthz` and `/readyz`
//! are the gateway's own (for the load balancer): ready while at least one server has a tunnel
//! open.

use crate::{
    allow::{self, Body, Refusal, Route},
    tunnel::{SendError, Tunnels},
};
use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

/// How many phone requests one gateway handles at once; beyond it, 503 `busy` with `Retry-After`.
pub const IN_FLIGHT: usize = 256;

/// How many requests one phone address may have in flight at once (`gateway.per_address_in_flight`),
/// counted before the gateway's [`IN_FLIGHT`], so that one address — a hostile client sending its
/// bodies slowly, a flood — cannot take every slot from the others. IPv6 addresses count by their
/// /64 (one subscriber's network); IPv4 addresses one by one (a hospital Wi-Fi behind one NAT
/// address shares its count: raise the setting there).
pub struct PerAddress {
    cap: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One request's place in its address's count; given back when dropped.
pub struct AddressSlot {
    owner: Arc<PerAddress>,
    at: IpAddr,
}

impl PerAddress {
    /// At most `cap` requests in flight per address.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self { cap, held: Mutex::new(HashMap::new()) })
    }

    /// A slot for a request from `addr`, or `None` when its address has `cap` in flight already.
    pub fn take(self: &Arc<Self>, addr: IpAddr) -> Option<AddressSlot> {
        let at = match addr.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            v4 => v4,
        };
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.get(&at).copied().unwrap_or(0);
        if n >= self.cap {
            return None;
        }
        held.insert(at, n + 1);
        Some(AddressSlot { owner: self.clone(), at })
    }

    /// How many addresses have a request in flight (the map holds nothing else).
    pub fn addresses(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.at) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.at);
            }
        }
    }
}

/// Sees every byte the gateway receives from either side, before any check (tests use it to
/// show that no document passes through).
pub type Tap = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// The gateway's public side.
pub struct Front {
    /// the open tunnels
    pub tunnels: Arc<Tunnels>,
    /// addresses whose `X-Forwarded-For` names the phone (the load balancers)
    pub trusted_proxies: Vec<IpAddr>,
    /// how long a forwarded request may take
    pub request_timeout: Duration,
    /// see [`Tap`]
    pub tap: Option<Tap>,
    /// [`IN_FLIGHT`] permits
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// the requests in flight per phone address
    pub per_address: Arc<PerAddress>,
    /// origins the H5 app is served from instead of this gateway (`gateway.app_origins`, without
    /// a trailing `/`): they may call the channel and sealed calls across origins; when there
    /// are any, this gateway serves no app file
    pub app_origins: Vec<String>,
}

/// The two paths an H5 app on an origin of its own calls across origins.
const CROSS_ORIGIN: [&str; 2] = ["/mobile/v1/channel", "/mobile/v1/sealed"];

/// Request headers a phone's request keeps, with their caps (others are dropped): the device
/// session, what it accepts, the request id. `Content-Type` is set by the gateway itself.
const REQUEST_HEADERS: &[(&str, usize)] =
    &[("authorization", 512), ("accept", 256), ("accept-language", 128), ("x-request-id", 64)];

/// Answer headers that pass back, each at most 512 bytes (others are dropped; `Content-Type` is
/// the gateway's own, from what it checked).
const RESPONSE_HEADERS: &[&str] = &[
    "cache-control",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "retry-after",
    "x-request-id",
];

/// The JSON error envelope, as the server writes it (code, bilingual message, request id).
pub fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    let id = uuid_like();
    let body = serde_json::json!({"code": code, "message": message, "request_id": id});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random source");
    format!("gw-{}", hex::encode(b))
}

/// The public router: `/healthz`, `/readyz`, and everything else through [`forward`].
pub fn router(front: Arc<Front>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", axum::routing::get(readyz))
        .fallback(forward)
        .layer(axum::middleware::from_fn_with_state(front.clone(), cross_origin))
        .layer(axum::middleware::map_response(nosniff))
        .with_state(front)
}

/// The H5 app on an origin of its own (`gateway.app_origins`): its preflight for the channel and
/// sealed calls is answered here, and their answers carry `Access-Control-Allow-Origin` for that
/// origin only — no credentials (a sealed call carries its session inside). Any other origin
/// gets no CORS header, so its page cannot read an answer; its preflight is refused.
async fn cross_origin(State(f): State<Arc<Front>>, req: Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| CROSS_ORIGIN.contains(&path) && f.app_origins.iter().any(|a| a == o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let mut r = if req.method() == Method::OPTIONS {
        if origin.is_none() {
            return envelope(
                StatusCode::FORBIDDEN,
                "origin_refused",
                "此来源不可跨域调用 / this origin may not call across origins",
            );
        }
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, x-request-id"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        r
    } else {
        next.run(req).await
    };
    if let Some(o) = origin {
        r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    r.headers_mut().append(header::VARY, HeaderValue::from_static("origin"));
    r
}

async fn nosniff(mut r: Response) -> Response {
    r.headers_mut().entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    r
}

async fn readyz(State(f): State<Arc<Front>>) -> Response {
    let n = f.tunnels.count();
    if n == 0 {
        return envelope(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_tunnel",
            "没有签名服务器连到本网关 / no signing server has a tunnel to this gateway",
        );
    }
    axum::Json(serde_json::json!({"status": "ready", "tunnels": n})).into_response()
}

fn refused(route: &str, direction: &str, why: &Refusal) -> Response {
    tracing::warn!(route, direction, reason = %why, "消息不在白名单内，已丢弃 / message outside the allow-list dropped");
    let (status, code, message) = match (direction, why) {
        ("request", Refusal::UnknownRoute) => {
            (StatusCode::NOT_FOUND, "not_found", "网关不转发这个地址 / the gateway does not forward this path")
        }
        ("request", Refusal::TooLarge(_)) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "请求体过大 / the request body is too large")
        }
        ("request", _) => (
            StatusCode::BAD_REQUEST,
            "gateway_refused",
            "网关拒绝转发：消息不符合白名单 / the gateway refused the request: it is not an allowed message",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "gateway_refused",
            "网关拒绝转发服务器的应答：不符合白名单 / the gateway refused the server's answer: it is not an allowed message",
        ),
    };
    envelope(status, code, message)
}

/// The client's address: the peer's, or — when the peer is a trusted proxy — the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy. When any entry does not parse
/// (`1.2.3.4:5678`, `unknown`), the header is not believed at all and the peer's address is
/// used: otherwise a phone could put its own entry where an unparseable one was skipped. The
/// server (audit records, rate limits) decides the same way, with this function.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Option<Vec<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<_>>>()
        .and_then(|vs| vs.iter().flat_map(|v| v.split(',')).map(|a| a.trim().parse::<IpAddr>().ok()).collect());
    hops.and_then(|h| h.into_iter().rev().map(|a| a.to_canonical()).find(|a| !trusted.contains(a))).unwrap_or(peer)
}

async fn read(body: axum::body::Body, cap: usize) -> Result<Bytes, Refusal> {
    Limited::new(body, cap).collect().await.map(|c| c.to_bytes()).map_err(|_| Refusal::TooLarge(cap))
}

/// Check a phone's request, send it down a tunnel, check the answer — all within
/// `request_timeout` (a phone that sends its body slowly holds nothing longer than that), at most
/// [`PerAddress`]'s cap at once from one address (beyond: 429 `address_busy`) and [`IN_FLIGHT`] in
/// all (the gateway's memory stays bounded: each holds at most its route's request cap and one
/// answer).
pub async fn forward(
    State(f): State<Arc<Front>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let phone = client_ip(peer.ip(), req.headers(), &f.trusted_proxies);
    // a refusal the phone may retry in a second
    let later = |status, code, message| {
        let mut r = envelope(status, code, message);
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    };
    let Some(_slot) = f.per_address.take(phone) else {
        // a flood would flood the log too: one line a second at most
        static LOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if LOGGED.swap(second, std::sync::atomic::Ordering::Relaxed) != second {
            tracing::warn!(%phone, "一个地址同时请求过多 / too many requests in flight from one address");
        }
        return later(
            StatusCode::TOO_MANY_REQUESTS,
            "address_busy",
            "来自此地址的请求同时过多，请稍后重试 / too many requests at once from this address; please retry",
        );
    };
    let Ok(_permit) = f.in_flight.clone().try_acquire_owned() else {
        return later(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "网关繁忙，请稍后重试 / the gateway is busy; please retry",
        );
    };
    match tokio::time::timeout(f.request_timeout, exchange(&f, phone, req)).await {
        Ok(r) => r,
        Err(_) => envelope(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
            "请求或应答超时，请重试 / the request or its answer took too long; please retry",
        ),
    }
}

async fn exchange(f: &Front, phone: IpAddr, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let cap = allow::forwarded(parts.method.as_str(), &path).map_or(0, |r| r.request_max);
    let bytes = match read(body, cap).await {
        Ok(b) => b,
        Err(e) => return refused(route_name(&parts.method, &path), "request", &e),
    };
    if let Some(tap) = &f.tap {
        tap(parts.uri.to_string().as_bytes());
        tap(&bytes);
    }
    let Some(route) = allow::forwarded(parts.method.as_str(), &path) else {
        return refused("(none)", "request", &Refusal::UnknownRoute);
    };
    // the app is served from its own origin: nothing of it comes from here
    if !f.app_origins.is_empty() && route.name.starts_with("app.") {
        return refused(route.name, "request", &Refusal::UnknownRoute);
    }
    if let Err(e) = allow::check_query(route, query.as_deref()) {
        return refused(route.name, "request", &e);
    }
    let forwarded = match &route.request {
        Body::Json(ty) => match allow::check_json(ty, &bytes) {
            Ok(b) => b,
            Err(e) => return refused(route.name, "request", &e),
        },
        _ if !bytes.is_empty() => return refused(route.name, "request", &Refusal::NotJson),
        _ => Vec::new(),
    };
    let mut out = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    for (name, max) in REQUEST_HEADERS {
        if let Some(v) = parts.headers.get(*name).filter(|v| v.len() <= *max) {
            out = out.header(*name, v);
        }
    }
    if !forwarded.is_empty() {
        out = out.header(header::CONTENT_TYPE, "application/json");
    }
    out = out.header("x-forwarded-for", phone.to_string());
    let out = match out.body(Full::new(Bytes::from(forwarded))) {
        Ok(r) => r,
        Err(_) => return refused(route.name, "request", &Refusal::NotJson),
    };
    let answer = match f.tunnels.send(out).await {
        Ok(a) => a,
        Err(SendError::NoTunnel) => {
            return envelope(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_tunnel",
                "医院内网签名服务暂未连接，请稍后重试 / the hospital's signing service is not connected; try again shortly",
            );
        }
        Err(SendError::Lost) => {
            return envelope(
                StatusCode::BAD_GATEWAY,
                "tunnel_lost",
                "与医院内网的连接中断，请重试 / the connection to the hospital was lost; please retry",
            );
        }
    };
    let (head, body) = answer.into_parts();
    let cap = route.response_max;
    let bytes = match Limited::new(body, cap).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return refused(route.name, "answer", &Refusal::TooLarge(cap)),
    };
    if let Some(tap) = &f.tap {
        for (n, v) in &head.headers {
            tap(n.as_str().as_bytes());
            tap(v.as_bytes());
        }
        tap(&bytes);
    }
    let failed = head.status.is_client_error() || head.status.is_server_error();
    let json = head.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if failed && (matches!(route.response, Body::Asset) || !json || bytes.is_empty()) {
        // a refusal without the envelope (an app file not found, a framework's plain-text
        // rejection): the phone gets the gateway's own envelope with the same status
        return envelope(head.status, "refused", "医院内网服务拒绝了请求 / the hospital's service refused the request");
    }
    match check_answer(route, &path, head.status, &head.headers, &bytes) {
        Ok((body, location)) => {
            let mut r = Response::new(axum::body::Body::from(body));
            *r.status_mut() = head.status;
            for name in RESPONSE_HEADERS {
                if let Some(v) = head.headers.get(*name).filter(|v| v.len() <= 512) {
                    r.headers_mut().insert(HeaderName::from_static(name), v.clone());
                }
            }
            // the gateway says what the body is, from what it checked (never the server's word)
            let ctype = match &route.response {
                _ if failed => Some("application/json"),
                Body::Json(_) => Some("application/json"),
                Body::Asset => allow::asset_type(&path),
                Body::Empty => None,
            };
            if let Some(c) = ctype {
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(c));
            }
            if let Some(l) = location {
                r.headers_mut().insert(header::LOCATION, l);
            }
            r
        }
        Err(e) => refused(route.name, "answer", &e),
    }
}

fn route_name(method: &Method, path: &str) -> &'static str {
    allow::forwarded(method.as_str(), path).map_or("(none)", |r| r.name)
}

/// The answer's body to pass on (written out again when JSON), and a `Location` for the one
/// redirect there is (`/m` → `/m/`).
fn check_answer(
    route: &Route,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Vec<u8>, Option<HeaderValue>), Refusal> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if status.is_redirection() {
        let loc = headers.get(header::LOCATION).filter(|l| route.name == "app.root" && l.as_bytes() == b"/m/");
        return match loc {
            Some(l) => Ok((Vec::new(), Some(l.clone()))),
            None => Err(Refusal::Answer(format!("redirect {status}"))),
        };
    }
    if status.is_client_error() || status.is_server_error() {
        return allow::check_json(&allow::ERROR, body).map(|b| (b, None));
    }
    if !status.is_success() {
        return Err(Refusal::Answer(format!("status {status}")));
    }
    match &route.response {
        Body::Empty if body.is_empty() => Ok((Vec::new(), None)),
        Body::Empty => Err(Refusal::Answer("a body where none is expected".into())),
        Body::Json(ty) if ctype.starts_with("application/json") => allow::check_json(ty, body).map(|b| (b, None)),
        Body::Json(_) => Err(Refusal::Answer("not JSON".into())),
        Body::Asset if allow::asset_type_ok(ctype, path) => Ok((body.to_vec(), None)),
        Body::Asset => Err(Refusal::Answer("not an app file".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for x in v {
            h.append("x-forwarded-for", HeaderValue::from_str(x).unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_added() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let lb = [ip("192.0.2.10")];
        // not from the load balancer: the header is the phone's own claim, ignored
        assert_eq!(client_ip(ip("198.51.100.7"), &xff(&["203.0.113.1"]), &lb), ip("198.51.100.7"));
        // from the load balancer: the address it appended (the phone's forged one is to its left)
        assert_eq!(client_ip(ip("192.0.2.10"), &xff(&["10.9.9.9, 203.0.113.5"]), &lb), ip("203.0.113.5"));
        assert_eq!(client_ip(ip("192.0.2.10"), &xff(&["10.9.9.9", "203.0.113.5, 192.0.2.10"]), &lb), ip("203.0.113.5"));
        // an entry that does not parse: nothing in the header is believed
        assert_eq!(client_ip(ip("192.0.2.10"), &xff(&["10.9.9.9, 203.0.113.5:443"]), &lb), ip("192.0.2.10"));
        assert_eq!(client_ip(ip("192.0.2.10"), &xff(&["10.9.9.9, unknown"]), &lb), ip("192.0.2.10"));
        // an IPv4 peer seen on a dual-stack socket is still the trusted proxy
        assert_eq!(client_ip(ip("::ffff:192.0.2.10"), &xff(&["203.0.113.5"]), &lb), ip("203.0.113.5"));
    }

    #[test]
    fn an_address_holds_at_most_its_cap_and_keeps_nothing_after() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let per = PerAddress::new(2);
        let a = [per.take(ip("203.0.113.7")).unwrap(), per.take(ip("::ffff:203.0.113.7")).unwrap()];
        assert!(per.take(ip("203.0.113.7")).is_none(), "an IPv4-mapped address is the same phone");
        assert!(per.take(ip("203.0.113.8")).is_some());
        let b = [per.take(ip("2001:db8::1")).unwrap(), per.take(ip("2001:db8::ffff:1")).unwrap()];
        assert!(per.take(ip("2001:db8::2")).is_none(), "one /64");
        assert!(per.take(ip("2001:db8:0:1::2")).is_some(), "another /64");
        assert_eq!(per.addresses(), 2);
        drop(a);
        assert!(per.take(ip("203.0.113.7")).is_some());
        drop(b);
        assert_eq!(per.addresses(), 0, "nothing is kept for an address with nothing in flight");
    }
}
