//! How this server reaches the internet: every outbound client (the CA channels, WeChat) is made
//! by [`client_builder`]. By default it connects directly. With `tunnel.egress = true` the
//! process [`install`]s the gateways as HTTPS proxies: the client opens mutual TLS to a gateway's
//! tunnel port with the tunnel certificate, asks `CONNECT host:port`, and runs its own TLS to the
//! destination through it — the gateway sees the name, never the content (see
//! `medsign_gateway::egress`). Gateways are used in turn, one per new connection.
//!
//! A plain `http://` call (a CRL) goes to the gateway as a forward-proxy `GET`, which the
//! gateway passes on to a listed destination.
//!
//! Limits: the hospital CA that issued the tunnel certificates is added to the roots (the
//! proxy's certificate chains to it), and for every destination — a gateway cannot mint a
//! certificate from it (its key stays in the intranet), but whoever can run `medsign gateway
//! cert` could issue one for any name. reqwest holds one client certificate per client, so an
//! EST channel that authenticates with a client certificate cannot leave through the gateways
//! (it is refused when configured; Basic authentication works), and the tunnel certificate is
//! shown to a destination that asks for one. Every call goes through the gateways, an intranet
//! CA channel too.

use std::{
    path::Path,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

struct Egress {
    proxies: Vec<String>,
    next: Arc<AtomicUsize>,
    roots: Vec<reqwest::Certificate>,
    identity: reqwest::Identity,
}

static EGRESS: OnceLock<Egress> = OnceLock::new();

/// Send every outbound call of this process through `gateways` (`host:port` of their tunnel
/// ports), authenticated by the tunnel certificate `cert`/`key`, the gateways' certificates
/// chaining to `ca`. Once per process; bilingual error when a file cannot be used.
pub fn install(gateways: &[String], cert: &Path, key: &Path, ca: &Path) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("无法读取 {0} / cannot read {0}: {e}", p.display()));
    let mut pem = read(cert)?;
    pem.push(b'\n');
    pem.extend(read(key)?);
    let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
        format!("出站用的隧道证书或私钥不可用 / the tunnel certificate or key cannot be used for egress: {e}")
    })?;
    let roots = reqwest::Certificate::from_pem_bundle(&read(ca)?)
        .map_err(|e| format!("隧道 CA 证书不可用 / the tunnel CA certificate cannot be used: {e}"))?;
    let proxies = gateways.iter().map(|g| format!("https://{g}")).collect::<Vec<_>>();
    if proxies.is_empty() {
        return Err("出站需要至少一个网关 / egress needs at least one gateway".into());
    }
    EGRESS
        .set(Egress { proxies, next: Arc::default(), roots, identity })
        .map_err(|_| "出站已设置 / egress is already set".to_string())
}

/// Whether outbound calls leave through the gateways.
pub fn through_gateways() -> bool {
    EGRESS.get().is_some()
}

/// A client builder for a call to the internet: direct, or through the gateways.
pub fn client_builder() -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder().user_agent(concat!("medsign/", env!("CARGO_PKG_VERSION")));
    let Some(e) = EGRESS.get() else { return b };
    let (proxies, next) = (e.proxies.clone(), e.next.clone());
    let proxy = reqwest::Proxy::custom(move |_| {
        let i = next.fetch_add(1, Ordering::Relaxed) % proxies.len();
        Some(proxies[i].clone())
    });
    // no pooled connection outlives the gateway's splice limit: each call its own CONNECT
    let b = b.proxy(proxy).identity(e.identity.clone()).pool_max_idle_per_host(0);
    e.roots.iter().cloned().fold(b, |b, c| b.add_root_certificate(c))
}
