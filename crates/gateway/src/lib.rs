//! # medsign-gateway
//!
//! The DMZ front exchange (R4). Doctors' phones are on the internet; the signing servers are on
//! the hospital's intranet, which nothing outside may reach. The gateway stands between them:
//!
//! - The **servers open the connection**, out to the gateway ([`tunnel`]): intranet → DMZ only,
//!   mutual TLS with certificates from the hospital CA ([`tls`]), HTTP/2 with the roles reversed.
//! - Phones talk to the gateway's public side ([`front`]), which forwards **only the typed
//!   messages of its allow-list** ([`allow`]): activation, keys and certificates, PIN and
//!   fingerprint approval, signing rounds, grants, records, real-name checks, login tickets, and
//!   the H5 app's own files. Anything else — another path, an unknown field, a field over its cap
//!   — is dropped and logged, both ways.
//! - It **stores nothing** and holds no key of the hospital's: it can run as several instances
//!   behind a load balancer, and losing one loses nothing (the phone retries on another).
//!
//! It never uses the database or the signing code (the crate does not depend on them).
//! See docs/gateway.md.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod allow;
pub mod egress;
pub mod front;
pub mod http;
pub mod ntp;
pub mod revocation;
pub mod tls;
pub mod tunnel;

use std::{sync::Arc, time::Duration};

/// A gateway that cannot start; the message is bilingual.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Everything `medsign gateway` runs, bound and ready.
pub struct Gateway {
    /// the public side's listener
    pub public: std::net::TcpListener,
    /// the tunnel listener
    pub tunnel: tokio::net::TcpListener,
    /// the public side's TLS, when it terminates TLS itself
    pub public_tls: Option<axum_server::tls_rustls::RustlsConfig>,
    tunnel_tls: Arc<rustls::ServerConfig>,
    front: Arc<front::Front>,
    /// the NTP relay, when `gateway.ntp_listen` is set
    pub ntp: Option<Arc<ntp::Relay>>,
    header_timeout: Duration,
    heartbeat: Duration,
    crl_refresh: Duration,
}

impl Gateway {
    /// Bind both listeners from `[gateway]` and load the certificates; `tap` sees every byte that
    /// arrives (tests).
    pub async fn bind(
        cfg: &medsign_config::config::GatewayConfig,
        tap: Option<front::Tap>,
    ) -> Result<Self, StartError> {
        let need = |v: &Option<std::path::PathBuf>, key: &str| {
            v.clone().ok_or_else(|| {
                StartError(format!(
                    "须设置 gateway.{key}（隧道双向 TLS）/ gateway.{key} must be set (the tunnel's mutual TLS)"
                ))
            })
        };
        let (cert, key, ca) = (
            need(&cfg.tunnel_cert, "tunnel_cert")?,
            need(&cfg.tunnel_key, "tunnel_key")?,
            need(&cfg.tunnel_ca, "tunnel_ca")?,
        );
        let tunnel_tls = tls::acceptor(&tls::Files { cert: &cert, key: &key, ca: &ca }).map_err(|e| StartError(e.0))?;
        // the servers' certificates come from the CA that issued this one: its CRL is checked
        let revocations = match revocation::issuer_of(&tls::load_certs(&cert).map_err(|e| StartError(e.0))?) {
            Some(issuer) => Some(revocation::Revocations::new(issuer)),
            None => {
                tracing::warn!(
                    file = %cert.display(),
                    "隧道证书文件不含签发 CA，无法检查吊销 / the tunnel certificate file carries no issuing CA: revoked server certificates cannot be refused"
                );
                None
            }
        };
        let public_tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => Some(axum_server::tls_rustls::RustlsConfig::from_pem_file(c, k).await.map_err(|e| {
                StartError(format!("公网 TLS 证书或私钥无法加载 / cannot load the public TLS certificate or key: {e}"))
            })?),
            (None, None) => None,
            _ => return Err(StartError("gateway.tls_cert 与 gateway.tls_key 须同时设置 / set both gateway.tls_cert and gateway.tls_key (or neither)".into())),
        };
        let bind_err = |what: &str, addr: &str, e: std::io::Error| {
            StartError(format!("无法监听 {addr}（{what}）/ cannot listen on {addr} ({what}): {e}"))
        };
        let public = std::net::TcpListener::bind(&cfg.listen).map_err(|e| bind_err("public", &cfg.listen, e))?;
        public.set_nonblocking(true).map_err(|e| bind_err("public", &cfg.listen, e))?;
        let tunnel = tokio::net::TcpListener::bind(&cfg.tunnel_listen)
            .await
            .map_err(|e| bind_err("tunnel", &cfg.tunnel_listen, e))?;
        let trusted_proxies = cfg.trusted_proxies.iter().filter_map(|p| p.parse().ok()).collect();
        let front = Arc::new(front::Front {
            tunnels: tunnel::Tunnels::only(
                cfg.tunnel_peers.clone(),
                egress::Egress::new(&cfg.egress_allow),
                revocations,
            ),
            trusted_proxies,
            request_timeout: Duration::from_secs(cfg.request_timeout_seconds),
            tap,
            in_flight: Arc::new(tokio::sync::Semaphore::new(front::IN_FLIGHT)),
            per_address: front::PerAddress::new(cfg.per_address_in_flight),
            app_origins: cfg.app_origins.iter().map(|o| o.trim_end_matches('/').to_string()).collect(),
        });
        let ntp = match &cfg.ntp_listen {
            Some(listen) => {
                let clients = cfg.ntp_clients.iter().filter_map(|p| p.parse().ok()).collect();
                Some(ntp::Relay::bind(listen, &cfg.ntp_upstreams, clients, front.tunnels.clone()).await?)
            }
            None => None,
        };
        Ok(Gateway {
            public,
            tunnel,
            public_tls,
            tunnel_tls,
            front,
            ntp,
            header_timeout: Duration::from_secs(cfg.header_timeout_seconds),
            heartbeat: Duration::from_secs(cfg.heartbeat_seconds),
            crl_refresh: Duration::from_secs(cfg.crl_refresh_seconds),
        })
    }

    /// The open tunnels.
    pub fn tunnels(&self) -> Arc<tunnel::Tunnels> {
        self.front.tunnels.clone()
    }

    /// Serve until `handle` shuts the public side down.
    pub async fn run(self, handle: axum_server::Handle<std::net::SocketAddr>) -> std::io::Result<()> {
        let tunnels = self.front.tunnels.clone().listen(self.tunnel, self.tunnel_tls, self.heartbeat);
        let accept = tokio::spawn(tunnels);
        let crl = tokio::spawn(self.front.tunnels.clone().watch_revocations(self.crl_refresh));
        let relay = self.ntp.map(|r| tokio::spawn(r.run()));
        let app = front::router(self.front);
        let served = http::serve(self.public, app, self.public_tls, self.header_timeout, handle).await;
        accept.abort();
        crl.abort();
        if let Some(r) = relay {
            r.abort();
        }
        served
    }
}
