//! Egress: the servers' calls to the internet — WeChat's API, an outside CA's EST or medsign
//! service — leave through the gateway, so the intranet needs no route out.
//!
//! A server opens the same mutual-TLS connection as for a tunnel, to the same port, but without
//! ALPN `h2` (or with `http/1.1`); on it the gateway speaks HTTP/1.1 and accepts only `CONNECT
//! host:port` (RFC 9110 § 9.3.6) to a destination in `gateway.egress_allow`. It then splices the
//! bytes: the server's TLS to WeChat or the CA runs *through* the gateway, end to end, so the
//! gateway sees the destination's name and the sizes, never the AppSecret, a token or a
//! certificate request, and cannot alter them. One more thing passes: a plain `GET http://…` to
//! a listed destination (a CA's CRL, published over HTTP and signed), forwarded without the
//! server's headers. Anything else — another method, a destination not on the list — is refused
//! and logged. At most [`SLOTS`] connections at once, each for at most [`LIFETIME`].
//!
//! The client side is `reqwest`'s HTTPS proxy support: `tunnel.egress = true` on a server makes
//! every outbound client use the gateways as proxies (`medsign_ca::egress`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{sync::Arc, time::Duration};
use tokio::io::{AsyncRead, AsyncWrite};

/// Egress connections open at once; more are answered 503.
pub const SLOTS: usize = 64;
/// How long one spliced connection may stay open.
pub const LIFETIME: Duration = Duration::from_secs(300);
/// How long reaching the destination may take.
const CONNECT: Duration = Duration::from_secs(10);

/// The destinations servers may reach, and the slots.
pub struct Egress {
    allow: Vec<String>,
    slots: Arc<tokio::sync::Semaphore>,
}

fn answer(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

impl Egress {
    /// Egress to `allow` (`host:port`, compared without case); `None` when the list is empty.
    pub fn new(allow: &[String]) -> Option<Arc<Self>> {
        if allow.is_empty() {
            return None;
        }
        Some(Arc::new(Self {
            allow: allow.iter().map(|a| a.to_ascii_lowercase()).collect(),
            slots: Arc::new(tokio::sync::Semaphore::new(SLOTS)),
        }))
    }

    /// Whether `authority` (`host:port` as the CONNECT names it) is on the list.
    pub fn allowed(&self, authority: &str) -> bool {
        let a = authority.to_ascii_lowercase();
        self.allow.contains(&a)
    }

    /// Serve one server's egress connection (TLS done, its certificate checked): HTTP/1.1,
    /// `CONNECT` only.
    pub async fn serve<IO>(self: Arc<Self>, io: IO, peer: String)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (me, peer) = (self.clone(), peer.clone());
            async move { Ok::<_, std::convert::Infallible>(me.connect(req, &peer).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .max_buf_size(16 * 1024)
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "egress connection ended");
        }
    }

    async fn connect(&self, req: Request<Incoming>, peer: &str) -> Response<Full<Bytes>> {
        if req.method() == Method::GET && req.uri().scheme_str() == Some("http") {
            return self.forward_get(req, peer).await;
        }
        if req.method() != Method::CONNECT {
            tracing::warn!(peer, method = %req.method(), "出站只接受 CONNECT / egress refused a method other than CONNECT");
            return answer(StatusCode::METHOD_NOT_ALLOWED, "只接受 CONNECT / CONNECT only");
        }
        let Some(to) = req.uri().authority().map(|a| a.as_str().to_string()) else {
            return answer(StatusCode::BAD_REQUEST, "CONNECT 须为 主机:端口 / CONNECT needs host:port");
        };
        if !self.allowed(&to) {
            tracing::warn!(peer, to, "出站目的地不在 gateway.egress_allow 中，已拒绝 / egress destination not allowed");
            return answer(StatusCode::FORBIDDEN, "目的地不在允许列表中 / destination not in gateway.egress_allow");
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return answer(StatusCode::SERVICE_UNAVAILABLE, "出站连接已满 / too many egress connections");
        };
        let mut far = match tokio::time::timeout(CONNECT, tokio::net::TcpStream::connect(&to)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(peer, to, error = %e, "egress destination unreachable");
                return answer(StatusCode::BAD_GATEWAY, &format!("无法连接 {to} / cannot reach {to}: {e}"));
            }
            Err(_) => return answer(StatusCode::GATEWAY_TIMEOUT, &format!("连接 {to} 超时 / {to} timed out")),
        };
        let _ = far.set_nodelay(true);
        tracing::info!(peer, to, "出站连接 / egress connection");
        tokio::spawn(async move {
            let _slot = slot;
            match hyper::upgrade::on(req).await {
                Ok(up) => {
                    let mut near = TokioIo::new(up);
                    let _ = tokio::time::timeout(LIFETIME, tokio::io::copy_bidirectional(&mut near, &mut far)).await;
                }
                Err(e) => tracing::debug!(error = %e, "egress upgrade failed"),
            }
        });
        Response::new(Full::new(Bytes::new()))
    }
}

impl Egress {
    /// A plain `GET http://host[:port]/path` to a listed destination — what CRLs are published
    /// over (they are signed; TLS adds nothing a checker needs). Only the path and a `Host` header
    /// go out; the answer comes back whole, at most [`MAX_GET`] bytes, within [`GET_TIME`].
    async fn forward_get(&self, req: Request<Incoming>, peer: &str) -> Response<Full<Bytes>> {
        let uri = req.uri();
        let (Some(host), Some(path)) = (uri.host(), uri.path_and_query()) else {
            return answer(StatusCode::BAD_REQUEST, "须为 http://主机/路径 / need http://host/path");
        };
        let to = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        if !self.allowed(&to) {
            tracing::warn!(peer, to, "出站目的地不在 gateway.egress_allow 中，已拒绝 / egress destination not allowed");
            return answer(StatusCode::FORBIDDEN, "目的地不在允许列表中 / destination not in gateway.egress_allow");
        }
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            return answer(StatusCode::SERVICE_UNAVAILABLE, "出站连接已满 / too many egress connections");
        };
        let (host, path) = (host.to_string(), path.to_string());
        let fetched = tokio::time::timeout(GET_TIME, async {
            let tcp = tokio::net::TcpStream::connect(&to).await.map_err(|e| e.to_string())?;
            let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let out = Request::get(path)
                .header(hyper::header::HOST, host)
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let resp = send.send_request(out).await.map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_GET))
                .await
                .map_err(|e| format!("answer over {MAX_GET} bytes or cut: {e}"))?
                .to_bytes();
            Ok::<_, String>((parts, body))
        })
        .await;
        match fetched {
            Ok(Ok((parts, body))) => {
                tracing::info!(peer, to, status = %parts.status, bytes = body.len(), "出站 GET / egress GET");
                let mut r = Response::new(Full::new(body));
                *r.status_mut() = parts.status;
                if let Some(t) = parts.headers.get(hyper::header::CONTENT_TYPE) {
                    r.headers_mut().insert(hyper::header::CONTENT_TYPE, t.clone());
                }
                r
            }
            Ok(Err(e)) => {
                tracing::warn!(peer, to, error = %e, "egress GET failed");
                answer(StatusCode::BAD_GATEWAY, &format!("无法从 {to} 取得 / cannot fetch from {to}: {e}"))
            }
            Err(_) => answer(StatusCode::GATEWAY_TIMEOUT, &format!("{to} 超时 / {to} timed out")),
        }
    }
}

/// The largest answer a forwarded `GET` may have (a CRL of a large CA).
pub const MAX_GET: usize = 20 * 1024 * 1024;
/// How long a forwarded `GET` may take.
const GET_TIME: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    #[test]
    fn only_listed_destinations() {
        assert!(super::Egress::new(&[]).is_none());
        let e = super::Egress::new(&["API.weixin.qq.com:443".into(), "[::1]:8443".into()]).unwrap();
        assert!(e.allowed("api.weixin.qq.com:443"));
        assert!(e.allowed("[::1]:8443"));
        for no in
            ["api.weixin.qq.com:80", "api.weixin.qq.com", "evil.example:443", "api.weixin.qq.com.evil.example:443"]
        {
            assert!(!e.allowed(no), "{no}");
        }
    }
}
