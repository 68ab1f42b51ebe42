//! The tunnel: HTTP/2 with the roles reversed, over mutual TLS.
//!
//! The intranet never accepts a connection from the DMZ. Each `medsign serve` instance *opens* a
//! TCP + TLS connection to each gateway ([`dial`]) and then acts as the HTTP/2 **server** on it;
//! the gateway, having accepted the connection ([`Tunnels::listen`]), is the HTTP/2 **client**
//! and sends the phones' requests down it as ordinary HTTP/2 streams. Nothing here frames bytes
//! by itself: streams, flow control, GOAWAY and PING are HTTP/2's (RFC 9113), carried by hyper.
//!
//! - **Heartbeats:** both ends send HTTP/2 PINGs every `heartbeat`; a PING not answered within it
//!   closes the connection (a dead NAT entry or a pulled cable is noticed in seconds, not at the
//!   next request).
//! - **Reconnect:** [`dial`] opens the tunnel again after it closes, with a backoff from 0.5 s
//!   doubling to 30 s (with jitter, so a restarted gateway is not hit by every server at once),
//!   back to 0.5 s after a tunnel that stayed up a minute.
//! - **Several servers, several gateways:** a gateway sends each request to its open tunnels in
//!   turn. A request that could not be handed to a tunnel (it closed meanwhile) goes to the next
//!   one; a request that was handed over and then lost is answered 502 — the phone's retry is
//!   safe, every mobile step being single-use on the server.
//! - **Stopping:** on shutdown a server sends GOAWAY and lets the requests under way finish.
//! - **Revocation:** the gateway refuses, and closes, tunnels of server certificates on the CRL it
//!   fetches through the tunnels ([`crate::revocation`]); a server checks the gateway's
//!   certificate against its CA's records when it opens a tunnel and at every heartbeat
//!   ([`Dial::revoked`]).

use crate::tls::{Purpose, require_purpose};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, client::conn::http2::SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::net::{TcpListener, TcpStream};

/// The body of a request the gateway sends down a tunnel (checked and complete).
pub type Body = Full<Bytes>;

/// How long a TLS handshake may take on either end.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Handshakes a gateway runs at once (more connections wait to be accepted): a flood of
/// connections to the tunnel port cannot take all the CPU or every descriptor.
const HANDSHAKES: usize = 16;
/// Tunnels a gateway keeps open at most (two per server instance is the usual).
const MAX_TUNNELS: usize = 64;

struct Open {
    id: u64,
    peer: String,
    ip: std::net::IpAddr,
    /// the server certificate's serial number
    serial: Vec<u8>,
    /// closes the tunnel (its certificate was revoked)
    close: Arc<tokio::sync::Notify>,
    send: SendRequest<Body>,
}

/// The gateway's open tunnels.
#[derive(Default)]
pub struct Tunnels {
    open: Mutex<Vec<Open>>,
    next: AtomicUsize,
    ids: AtomicU64,
    /// when not empty, the common names a server's certificate must have (`gateway.tunnel_peers`)
    peers_allowed: Vec<String>,
    /// a server's connection without ALPN `h2` is egress, when allowed ([`crate::egress`])
    egress: Option<Arc<crate::egress::Egress>>,
    /// the revoked server certificates, when the gateway can check a CRL
    revocations: Option<crate::revocation::Revocations>,
    /// a tunnel opened (its server is asked for the CRL at once)
    opened: tokio::sync::Notify,
}

/// Why a request could not be forwarded.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// no server has a tunnel open to this gateway
    NoTunnel,
    /// the request was handed to a tunnel that failed before it answered
    Lost,
}

impl Tunnels {
    /// No tunnel yet; any server certificate of the hospital CA that names clientAuth may open one.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// No tunnel yet; only servers whose certificate's common name is in `names` may open one
    /// (a tunnel key that leaked from a server taken out of service is shut out by removing it, or
    /// by revoking its certificate when `revocations` is given); the same servers may use `egress`.
    pub fn only(
        names: Vec<String>,
        egress: Option<Arc<crate::egress::Egress>>,
        revocations: Option<crate::revocation::Revocations>,
    ) -> Arc<Self> {
        Arc::new(Tunnels { peers_allowed: names, egress, revocations, ..Tunnels::default() })
    }

    /// The cRLNumber of the CRL the gateway holds, if any.
    pub fn crl_number(&self) -> Option<u64> {
        self.revocations.as_ref().and_then(|r| r.number())
    }

    /// Keep the CRL fresh for ever: ask every open tunnel's server when one opens and every
    /// `every`; take a newer CRL of the tunnel CA and close the tunnels of certificates on it.
    /// Returns at once when the gateway cannot check CRLs.
    pub async fn watch_revocations(self: Arc<Self>, every: Duration) {
        let Some(rev) = &self.revocations else { return };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.opened.notified() => {}
            }
            // every open tunnel is asked at once, within one deadline: one server that stalls, or
            // hands over an old list, cannot keep the others' newer one away or hold the round up
            let within = crate::revocation::FETCH_TIMEOUT.min(every);
            let mut asked = tokio::task::JoinSet::new();
            for (id, peer, send) in
                self.open.lock().expect("tunnels").iter().map(|o| (o.id, o.peer.clone(), o.send.clone()))
            {
                asked.spawn(async move {
                    let got =
                        tokio::time::timeout(within, fetch_crl(send)).await.unwrap_or_else(|_| Err("timed out".into()));
                    (id, peer, got)
                });
            }
            while let Some(done) = asked.join_next().await {
                let Ok((id, peer, fetched)) = done else { continue };
                match fetched.and_then(|der| rev.offer(&der)) {
                    Ok(true) => {
                        tracing::info!(crl_number = ?rev.number(), "吊销列表已更新 / CRL updated");
                        // acted on at once, not when the slowest server has answered
                        self.close_revoked(rev);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(tunnel = id, peer = %peer, error = %e, "无法从此隧道取得吊销列表 / cannot take the CRL from this tunnel")
                    }
                }
            }
            // every tunnel is held to the list, also one that opened while it was changing
            self.close_revoked(rev);
        }
    }

    /// Close the open tunnels whose certificate is on the CRL held.
    fn close_revoked(&self, rev: &crate::revocation::Revocations) {
        let revoked: Vec<(u64, String, Arc<tokio::sync::Notify>)> = {
            let open = self.open.lock().expect("tunnels");
            open.iter().filter(|o| rev.revoked(&o.serial)).map(|o| (o.id, o.peer.clone(), o.close.clone())).collect()
        };
        for (id, peer, close) in revoked {
            tracing::warn!(tunnel = id, peer = %peer, "证书已吊销，关闭隧道 / certificate revoked, closing the tunnel");
            self.remove(id);
            close.notify_one();
        }
    }

    /// How many tunnels are open.
    pub fn count(&self) -> usize {
        self.open.lock().expect("tunnels").len()
    }

    /// The subjects of the servers whose tunnels are open (for `/readyz`).
    pub fn peers(&self) -> Vec<String> {
        self.open.lock().expect("tunnels").iter().map(|o| o.peer.clone()).collect()
    }

    /// Whether a server with a tunnel open connects from `ip` (the NTP relay answers only them
    /// and `gateway.ntp_clients`).
    pub fn has_peer(&self, ip: std::net::IpAddr) -> bool {
        self.open.lock().expect("tunnels").iter().any(|o| o.ip == ip)
    }

    fn remove(&self, id: u64) {
        self.open.lock().expect("tunnels").retain(|o| o.id != id);
    }

    /// Accept tunnels on `listener` for ever: TLS with a client certificate from the hospital CA
    /// naming clientAuth, then HTTP/2 with this side as the client.
    pub async fn listen(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        heartbeat: Duration,
    ) -> std::io::Result<()> {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
        loop {
            let permit = handshakes.clone().acquire_owned().await.expect("never closed");
            let (tcp, addr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // out of descriptors and the like: wait, do not spin
                    tracing::warn!(error = %e, "tunnel accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (me, acceptor) = (self.clone(), acceptor.clone());
            tokio::spawn(async move {
                if let Err(e) = me.adopt(tcp, addr, acceptor, heartbeat, permit).await {
                    tracing::warn!(peer = %addr, error = %e, "隧道被拒绝 / tunnel refused");
                }
            });
        }
    }

    async fn adopt(
        self: Arc<Self>,
        tcp: TcpStream,
        addr: SocketAddr,
        acceptor: tokio_rustls::TlsAcceptor,
        heartbeat: Duration,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), String> {
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS: {e}"))?;
        drop(permit);
        let cert = require_purpose(tls.get_ref().1.peer_certificates(), Purpose::Server).map_err(|e| e.0)?;
        if let Some(rev) = &self.revocations {
            if !rev.covers(&cert) {
                return Err(format!(
                    "证书 {0} 不是本网关检查吊销列表的 CA 签发的 / certificate {0} is not from the CA whose CRL this gateway checks",
                    cert.subject_display()
                ));
            }
            if rev.revoked(cert.serial()) {
                return Err(format!(
                    "证书已吊销 / certificate {} (serial {}) is revoked",
                    cert.subject_display(),
                    cert.serial_hex()
                ));
            }
        }
        let cn = medsign_pki::name::common_name_or_dn(cert.subject());
        if !self.peers_allowed.is_empty() && !self.peers_allowed.contains(&cn) {
            return Err(format!("'{cn}' is not in gateway.tunnel_peers"));
        }
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            let Some(egress) = self.egress.clone() else {
                return Err("not HTTP/2, and gateway.egress_allow is empty (no egress)".into());
            };
            egress.serve(tls, format!("{} ({addr})", cert.subject_display())).await;
            return Ok(());
        }
        if self.count() >= MAX_TUNNELS {
            return Err(format!("already {MAX_TUNNELS} tunnels open"));
        }
        let subject = cert.subject_display();
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(heartbeat)
            .keep_alive_timeout(heartbeat)
            .keep_alive_while_idle(true)
            .handshake::<_, Body>(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP/2: {e}"))?;
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let peer = format!("{subject} ({addr})");
        tracing::info!(tunnel = id, peer = %peer, "隧道已建立 / tunnel open");
        let close = Arc::new(tokio::sync::Notify::new());
        let serial = cert.serial().to_vec();
        self.open.lock().expect("tunnels").push(Open {
            id,
            peer: peer.clone(),
            ip: addr.ip(),
            serial,
            close: close.clone(),
            send,
        });
        self.opened.notify_one();
        // dropping the connection ends it (hyper's own task finishes the streams under way)
        let end = tokio::select! {
            end = conn => end.err().map(|e| e.to_string()),
            _ = close.notified() => Some("certificate revoked".to_string()),
        };
        self.remove(id);
        tracing::warn!(tunnel = id, peer = %peer, reason = ?end, "隧道已关闭 / tunnel closed");
        Ok(())
    }

    /// Send `req` down one of the open tunnels, in turn. A tunnel that closed before taking the
    /// request, or that refused it unprocessed (a server going away answers GOAWAY, RFC 9113
    /// § 8.7: such a stream was not processed and may be retried), is dropped and the next one
    /// tried.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<Incoming>, SendError> {
        let tries = self.count();
        for _ in 0..tries {
            let picked = {
                let open = self.open.lock().expect("tunnels");
                if open.is_empty() {
                    break;
                }
                let o = &open[self.next.fetch_add(1, Ordering::Relaxed) % open.len()];
                (o.id, o.send.clone())
            };
            let (id, mut send) = picked;
            if send.ready().await.is_err() {
                self.remove(id);
                continue;
            }
            let again = copy(&req);
            match send.try_send_request(req).await {
                Ok(r) => return Ok(r),
                Err(mut e) => match e.take_message() {
                    Some(back) => {
                        self.remove(id);
                        req = back;
                    }
                    None => {
                        let e = e.into_error();
                        if !unprocessed(&e) {
                            tracing::warn!(tunnel = id, error = %e, "request lost in the tunnel");
                            return Err(SendError::Lost);
                        }
                        self.remove(id);
                        req = again;
                    }
                },
            }
        }
        Err(SendError::NoTunnel)
    }
}

/// The CRL from the server at the other end of `send`.
async fn fetch_crl(mut send: SendRequest<Body>) -> Result<bytes::Bytes, String> {
    send.ready().await.map_err(|e| e.to_string())?;
    let res = send.send_request(crate::revocation::request()).await.map_err(|e| e.to_string())?;
    crate::revocation::body(res).await
}

/// The same request again (the body is shared bytes; extensions are not used on this side).
fn copy(r: &Request<Body>) -> Request<Body> {
    let mut c = Request::new(r.body().clone());
    *c.method_mut() = r.method().clone();
    *c.uri_mut() = r.uri().clone();
    *c.headers_mut() = r.headers().clone();
    c
}

/// Whether the server never processed the stream: refused (REFUSED_STREAM) or cut by its GOAWAY.
fn unprocessed(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.is_go_away() || h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = s.source();
    }
    false
}

/// Whether the certificate with this serial number (hex) is revoked or on hold: the server asks
/// its CA's records.
pub type RevocationCheck =
    Arc<dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync>;

/// A server's end of one tunnel.
pub struct Dial {
    /// the gateway's `host:port`; the host is the name its certificate must carry
    pub gateway: String,
    /// the client TLS set-up ([`crate::tls::connector`])
    pub tls: Arc<rustls::ClientConfig>,
    /// HTTP/2 PING interval and timeout
    pub heartbeat: Duration,
    /// asked for the gateway's certificate when the tunnel opens and at every heartbeat: a
    /// revoked gateway gets no tunnel, and an open one is closed
    pub revoked: Option<RevocationCheck>,
}

fn server_name(gateway: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    let host = gateway.rsplit_once(':').map(|(h, _)| h).unwrap_or(gateway);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("'{host}': {e}"))
}

/// Keep a tunnel to `d.gateway` open until `stop` turns true, serving `app` (HTTP/2 server side)
/// on it. Returns after a graceful close.
pub async fn dial(d: Dial, app: axum::Router, mut stop: tokio::sync::watch::Receiver<bool>) {
    let connector = tokio_rustls::TlsConnector::from(d.tls.clone());
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        match open(&d, &connector).await {
            Ok((tls, serial)) => {
                tracing::info!(gateway = %d.gateway, "隧道已连接 / tunnel connected");
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .keep_alive_interval(d.heartbeat)
                    .keep_alive_timeout(d.heartbeat)
                    .serve_connection(TokioIo::new(tls), service);
                tokio::pin!(conn);
                let mut recheck = tokio::time::interval(d.heartbeat);
                recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                recheck.tick().await;
                // the check runs beside the connection, which is served meanwhile
                let mut checking: Option<std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>> = None;
                let end = loop {
                    tokio::select! {
                        end = conn.as_mut() => break end.err().map(|e| e.to_string()),
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(30), conn.as_mut()).await;
                            return;
                        }
                        _ = recheck.tick(), if d.revoked.is_some() && checking.is_none() => {
                            checking = Some(Box::pin(gateway_revoked(&d, serial.clone())));
                        }
                        revoked = async { checking.as_mut().expect("a check under way").await }, if checking.is_some() => {
                            checking = None;
                            if revoked {
                                conn.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(Duration::from_secs(30), conn.as_mut()).await;
                                break Some("the gateway's certificate was revoked".to_string());
                            }
                        }
                    }
                };
                tracing::warn!(gateway = %d.gateway, reason = ?end, "隧道断开，将重连 / tunnel closed, reconnecting");
            }
            Err(e) => {
                tracing::warn!(gateway = %d.gateway, error = %e, "隧道无法建立，将重试 / cannot open the tunnel, retrying")
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        // ±20 % jitter from the clock's low bits (no need for a random generator here)
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let wait = backoff.mul_f64(0.8 + 0.4 * f64::from(nanos % 1000) / 1000.0);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Whether [`Dial::revoked`] says the gateway's certificate (`serial`, hex) is revoked; an answer
/// that does not come within a heartbeat counts as not revoked (the server's records decide,
/// and they keep their last word when the database does not answer).
fn gateway_revoked(d: &Dial, serial: String) -> impl std::future::Future<Output = bool> + Send + 'static {
    let check = d.revoked.as_ref().map(|c| c(serial));
    let within = d.heartbeat;
    async move {
        match check {
            Some(f) => tokio::time::timeout(within, f).await.unwrap_or(false),
            None => false,
        }
    }
}

/// Open the TLS connection and check the gateway's certificate; returns it with the
/// certificate's serial (hex).
async fn open(
    d: &Dial,
    connector: &tokio_rustls::TlsConnector,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, String), String> {
    let name = server_name(&d.gateway)?;
    let tcp = tokio::time::timeout(HANDSHAKE, TcpStream::connect(&d.gateway))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(HANDSHAKE, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS: {e}"))?;
    let cert = require_purpose(tls.get_ref().1.peer_certificates(), Purpose::Gateway).map_err(|e| e.0)?;
    let serial = cert.serial_hex();
    if gateway_revoked(d, serial.clone()).await {
        return Err(format!(
            "网关证书已吊销 / the gateway's certificate {} (serial {serial}) is revoked",
            cert.subject_display()
        ));
    }
    Ok((tls, serial))
}
