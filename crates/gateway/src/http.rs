//! Serving a router: plain HTTP or HTTPS (rustls) through one hyper set-up, with a header-read
//! timeout against slow clients (slowloris). `medsign serve` and the gateway's public listener
//! both serve this way.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::Response,
};
use axum_server::accept::NoDelayAcceptor;
use std::{net::SocketAddr, time::Duration};

/// `Strict-Transport-Security` when medsign serves HTTPS itself (one year).
pub const HSTS: &str = "max-age=31536000";

/// Add [`HSTS`] to every response (HTTPS only).
pub async fn hsts(mut r: Response) -> Response {
    r.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    r
}

/// Serve `app` on `listener` until `handle` shuts it down: HTTPS when `tls` is given (with
/// [`HSTS`]), else HTTP. A client that has not sent a request's complete headers within
/// `header_timeout` — a new connection that sends nothing, an idle keep-alive connection — is
/// disconnected (the TLS handshake has axum-server's own 10 s bound); HTTP/2 connections
/// are pinged at that interval and dropped when a ping is not answered within it.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    header_timeout: Duration,
    handle: axum_server::Handle<SocketAddr>,
) -> std::io::Result<()> {
    match tls {
        None => {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            // before the protocol is known (no byte yet) only first_request_timeout applies
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(NoDelayAcceptor)
                .handle(handle)
                .first_request_timeout(header_timeout);
            // axum_server installs hyper's timer, which the timeouts need
            server.http_builder().http1().header_read_timeout(header_timeout);
            server.http_builder().http2().keep_alive_interval(header_timeout).keep_alive_timeout(header_timeout);
            server.serve(service).await
        }
        Some(tls) => {
            let app = app.layer(axum::middleware::map_response(hsts));
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            let mut server = axum_server::from_tcp_rustls(listener, tls)?
                .map(|tls| tls.acceptor(NoDelayAcceptor))
                .handle(handle)
                .first_request_timeout(header_timeout);
            server.http_builder().http1().header_read_timeout(header_timeout);
            server.http_builder().http2().keep_alive_interval(header_timeout).keep_alive_timeout(header_timeout);
            server.serve(service).await
        }
    }
}
