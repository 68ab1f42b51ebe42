//! The security headers of every response. Serving (plain HTTP or HTTPS through one hyper set-up,
//! with a header-read timeout against slow clients) is `medsign_gateway::http`, shared with the
//! gateway's public listener, and re-exported here.

use axum::{
    http::{HeaderValue, header},
    response::Response,
};

/// The pages' Content-Security-Policy (the H5 app, the demo HIS page, Swagger UI at `/api/docs`):
/// only our own scripts, styles and WebAssembly, no inline script; inline styles (Swagger UI sets
/// them); images from data:/blob: (QR, handwriting); the camera stream as blob:; a frame only of
/// a blob: the page made itself (the console's template preview PDF); never framed itself.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
                       img-src 'self' data: blob:; media-src 'self' blob:; frame-src blob:; connect-src 'self'; object-src 'none'; \
                       base-uri 'self'; frame-ancestors 'none'";

/// Headers every response gets: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, and
/// on HTML the [`CSP`] (unless the handler set its own).
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    let html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/html"));
    if html {
        h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CSP));
    }
    r
}

pub use medsign_gateway::http::{HSTS, hsts, serve};

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use std::io::{Read, Write};
    use std::time::Instant;
    use std::{net::SocketAddr, time::Duration};

    fn hello() -> Router {
        Router::new()
            .route("/", axum::routing::get(|| async { axum::response::Html("<p>hi</p>") }))
            .layer(axum::middleware::map_response(security_headers))
    }

    /// Start [`serve`] with a one-second header timeout; returns the address.
    fn start(app: Router) -> (SocketAddr, axum_server::Handle<SocketAddr>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        tokio::spawn(async move { serve(l, app, None, Duration::from_secs(1), h).await.unwrap() });
        (addr, handle)
    }

    /// Read until the server closes the connection; how long that took (None: still open after 10 s).
    fn closed_after(mut s: std::net::TcpStream) -> Option<Duration> {
        let t = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Some(t.elapsed()),
                Ok(_) => continue, // e.g. a 408 before the close
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return None;
                }
                Err(_) => return Some(t.elapsed()), // reset
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_and_idle_clients_are_disconnected() {
        let (addr, handle) = start(hello());
        let (slow, idle, ok) = tokio::task::spawn_blocking(move || {
            // slowloris: half a request line and one header, then nothing
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
            let slow = closed_after(s);
            // connected, never a byte
            let idle = closed_after(std::net::TcpStream::connect(addr).unwrap());
            // a whole request is answered
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut resp = String::new();
            s.read_to_string(&mut resp).unwrap();
            (slow, idle, resp)
        })
        .await
        .unwrap();
        for (what, t) in [("slow headers", slow), ("idle", idle)] {
            let t = t.unwrap_or_else(|| panic!("{what}: still open after 10 s"));
            assert!(t >= Duration::from_millis(500) && t < Duration::from_secs(4), "{what}: closed after {t:?}");
        }
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let lower = ok.to_lowercase();
        assert!(lower.contains("x-frame-options: deny") && lower.contains("x-content-type-options: nosniff"), "{ok}");
        assert!(lower.contains("content-security-policy: default-src 'self'"), "{ok}");
        assert!(!lower.contains("strict-transport-security"), "no HSTS over plain HTTP");
        handle.shutdown();
    }

    #[tokio::test]
    async fn hsts_is_added_for_https() {
        let r = hsts(Response::new(axum::body::Body::empty())).await;
        assert_eq!(r.headers()[header::STRICT_TRANSPORT_SECURITY], HSTS);
        let r = security_headers(Response::new(axum::body::Body::empty())).await;
        assert!(r.headers().get(header::CONTENT_SECURITY_POLICY).is_none(), "CSP on HTML only");
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
