//! The gateway's public side: what phones (through the hospital's load balancer) reach.
//!
//! Every request is held to the allow-list ([`crate::allow`]) before it goes down a tunnel, and
//! every answer after it comes back; only listed headers pass either way (no cookies, no
//! hop-by-hop headers, nothing the phone's browser adds on its own). `/healthz` and `/readyz`
//! are the gateway's own (for the load balancer): ready while at least one server has a tunnel
//! open.

use crate::{
    allow::{self, ASSET_MAX, Body, JSON_MAX, Refusal, Route},
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
use std::{net::SocketAddr, sync::Arc, time::Duration};

/// Sees every byte the gateway receives from either side, before any check (tests use it to
/// show that no document passes through).
pub type Tap = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// The gateway's public side.
pub struct Front {
    /// the open tunnels
    pub tunnels: Arc<Tunnels>,
    /// addresses whose `X-Forwarded-For` names the phone (the load balancers)
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// how long a forwarded request may take
    pub request_timeout: Duration,
    /// see [`Tap`]
    pub tap: Option<Tap>,
}

/// Request headers a phone's request keeps, with their caps (others are dropped): the device
/// session, what it accepts, the request id. `Content-Type` is set by the gateway itself.
const REQUEST_HEADERS: &[(&str, usize)] =
    &[("authorization", 512), ("accept", 256), ("accept-language", 128), ("x-request-id", 64)];

/// Answer headers that pass back (others are dropped).
const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
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
        .with_state(front)
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

fn client_ip(f: &Front, peer: SocketAddr, headers: &HeaderMap) -> std::net::IpAddr {
    if !f.trusted_proxies.contains(&peer.ip()) {
        return peer.ip();
    }
    // the nearest address the load balancer appended
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .next_back()
        .unwrap_or(peer.ip())
}

async fn read(body: axum::body::Body, cap: usize) -> Result<Bytes, Refusal> {
    Limited::new(body, cap).collect().await.map(|c| c.to_bytes()).map_err(|_| Refusal::TooLarge(cap))
}

/// Check a phone's request, send it down a tunnel, check the answer.
pub async fn forward(
    State(f): State<Arc<Front>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let cap = match allow::route(parts.method.as_str(), &path) {
        Some(Route { request: Body::Json(_), .. }) => JSON_MAX,
        _ => 0,
    };
    let bytes = match read(body, cap).await {
        Ok(b) => b,
        Err(e) => return refused(route_name(&parts.method, &path), "request", &e),
    };
    if let Some(tap) = &f.tap {
        tap(parts.uri.to_string().as_bytes());
        tap(&bytes);
    }
    let Some(route) = allow::route(parts.method.as_str(), &path) else {
        return refused("(none)", "request", &Refusal::UnknownRoute);
    };
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
    out = out.header("x-forwarded-for", client_ip(&f, peer, &parts.headers).to_string());
    let out = match out.body(Full::new(Bytes::from(forwarded))) {
        Ok(r) => r,
        Err(_) => return refused(route.name, "request", &Refusal::NotJson),
    };
    let answer = match tokio::time::timeout(f.request_timeout, f.tunnels.send(out)).await {
        Ok(Ok(a)) => a,
        Ok(Err(SendError::NoTunnel)) => {
            return envelope(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_tunnel",
                "医院内网签名服务暂未连接，请稍后重试 / the hospital's signing service is not connected; try again shortly",
            );
        }
        Ok(Err(SendError::Lost)) => {
            return envelope(
                StatusCode::BAD_GATEWAY,
                "tunnel_lost",
                "与医院内网的连接中断，请重试 / the connection to the hospital was lost; please retry",
            );
        }
        Err(_) => {
            return envelope(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "医院内网服务应答超时，请重试 / the hospital's service did not answer in time; please retry",
            );
        }
    };
    let (head, body) = answer.into_parts();
    let cap = if matches!(route.response, Body::Asset) { ASSET_MAX } else { JSON_MAX };
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
    if matches!(route.response, Body::Asset) && head.status == StatusCode::NOT_FOUND {
        return envelope(StatusCode::NOT_FOUND, "not_found", "未找到 / not found");
    }
    match check_answer(route, head.status, &head.headers, &bytes) {
        Ok((body, location)) => {
            let mut r = Response::new(axum::body::Body::from(body));
            *r.status_mut() = head.status;
            for name in RESPONSE_HEADERS {
                if let Some(v) = head.headers.get(*name) {
                    r.headers_mut().insert(HeaderName::from_static(name), v.clone());
                }
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
    allow::route(method.as_str(), path).map_or("(none)", |r| r.name)
}

/// The answer's body to pass on (written out again when JSON), and a `Location` for the one
/// redirect there is (`/m` → `/m/`).
fn check_answer(
    route: &Route,
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
        Body::Asset if allow::asset_type_ok(ctype) => Ok((body.to_vec(), None)),
        Body::Asset => Err(Refusal::Answer("not an app file".into())),
    }
}
