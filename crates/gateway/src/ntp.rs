//! The NTP relay: the servers' clocks sync through the DMZ (R6.4), the intranet needing no route
//! to the internet's time servers. A server's `time.sources` names the relay; each client packet
//! (NTPv3/v4, mode 3) is sent on, as it is, from a fresh socket to one of `gateway.ntp_upstreams`
//! in turn, and the upstream's reply (mode 4, echoing the request's transmit timestamp) is sent
//! back. Nothing is kept between packets. It answers only the servers: an address with a tunnel
//! open to this gateway, or one listed in `gateway.ntp_clients` — a packet from anywhere else
//! (the internet, should the port be reachable; a spoofed source) is dropped unanswered.
//!
//! The relay's own delay counts in the round trip the server measures, so the server's error
//! bound (half the round trip plus the upstream's root distance) still holds. The relay refuses
//! what NTP amplification abuses: control (mode 6) and private (mode 7) queries, broadcast and
//! symmetric modes are dropped; a reply is never larger than the request's 48 bytes plus what the
//! upstream added to the same exchange, and only [`IN_FLIGHT`] exchanges run at once.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::net::UdpSocket;

/// Exchanges relayed at once; more packets are dropped (a client retries).
pub const IN_FLIGHT: usize = 256;
/// How long the upstream may take.
const WAIT: Duration = Duration::from_secs(2);
/// The largest packet relayed either way (48 bytes plus extension fields).
const MAX_PACKET: usize = 512;

fn mode(p: &[u8]) -> u8 {
    p[0] & 7
}

fn version(p: &[u8]) -> u8 {
    (p[0] >> 3) & 7
}

/// Whether `p` is a client request (mode 3, version 3 or 4, 48 bytes or more).
pub fn is_request(p: &[u8]) -> bool {
    (48..=MAX_PACKET).contains(&p.len()) && mode(p) == 3 && (3..=4).contains(&version(p))
}

/// Whether `reply` answers `request`: mode 4, version 3 or 4, its originate timestamp the
/// request's transmit timestamp.
pub fn answers(reply: &[u8], request: &[u8]) -> bool {
    (48..=MAX_PACKET).contains(&reply.len())
        && mode(reply) == 4
        && (3..=4).contains(&version(reply))
        && reply[24..32] == request[40..48]
}

/// The relay, bound and ready.
pub struct Relay {
    socket: Arc<UdpSocket>,
    upstreams: Vec<String>,
    next: AtomicUsize,
    /// who may ask: the addresses of `gateway.ntp_clients`, and the servers with a tunnel open
    clients: Vec<std::net::IpAddr>,
    tunnels: Arc<crate::tunnel::Tunnels>,
}

impl Relay {
    /// Bind `listen` (UDP) to relay to `upstreams` (`host[:port]`, port 123 by default), for
    /// `clients` and the servers with a tunnel open in `tunnels`.
    pub async fn bind(
        listen: &str,
        upstreams: &[String],
        clients: Vec<std::net::IpAddr>,
        tunnels: Arc<crate::tunnel::Tunnels>,
    ) -> Result<Arc<Self>, crate::StartError> {
        if upstreams.is_empty() {
            return Err(crate::StartError(
                "gateway.ntp_listen 已设置，须同时设置 gateway.ntp_upstreams / with gateway.ntp_listen set, gateway.ntp_upstreams is needed".into(),
            ));
        }
        let socket = UdpSocket::bind(listen).await.map_err(|e| {
            crate::StartError(format!("无法监听 {listen}（NTP 中继）/ cannot listen on {listen} (NTP relay): {e}"))
        })?;
        let upstreams = upstreams
            .iter()
            .map(|u| {
                if u.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok())
                {
                    u.clone()
                } else {
                    format!("{u}:123")
                }
            })
            .collect();
        Ok(Arc::new(Self { socket: Arc::new(socket), upstreams, next: AtomicUsize::new(0), clients, tunnels }))
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Relay for ever.
    pub async fn run(self: Arc<Self>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut buf = vec![0u8; MAX_PACKET + 1];
        loop {
            let (n, client) = match self.socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "NTP relay receive failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !self.clients.contains(&client.ip()) && !self.tunnels.has_peer(client.ip()) {
                tracing::debug!(%client, "NTP relay dropped a packet from an address that is no server of ours");
                continue;
            }
            if !is_request(&buf[..n]) {
                tracing::debug!(%client, bytes = n, "NTP relay dropped a packet that is not a client request");
                continue;
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
            let request = buf[..n].to_vec();
            let upstream = self.upstreams[self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len()].clone();
            let me = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                match exchange(&upstream, &request).await {
                    Ok(reply) => {
                        let _ = me.socket.send_to(&reply, client).await;
                    }
                    Err(e) => tracing::warn!(%client, upstream, error = %e, "NTP relay: no answer from upstream"),
                }
            });
        }
    }
}

async fn exchange(upstream: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let to = tokio::net::lookup_host(upstream)
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_string())?;
    let bind: SocketAddr =
        if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(to).await.map_err(|e| e.to_string())?;
    sock.send(request).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if answers(&buf[..n], request) {
            return Ok(buf[..n].to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(mode: u8, version: u8, len: usize) -> Vec<u8> {
        // (version 4 unless the case is about the version)
        let mut p = vec![0u8; len];
        p[0] = (version << 3) | mode;
        p[40..48].copy_from_slice(b"TRANSMIT");
        p
    }

    #[tokio::test]
    async fn a_relay_needs_an_upstream() {
        let e = Relay::bind("127.0.0.1:0", &[], vec![], crate::tunnel::Tunnels::new()).await.err().unwrap();
        assert!(e.0.contains("gateway.ntp_upstreams"), "{}", e.0);
    }

    #[test]
    fn only_client_requests_and_their_answers() {
        assert!(is_request(&packet(3, 4, 48)));
        assert!(is_request(&packet(3, 3, 48)));
        for (m, v, n) in
            [(6, 2, 48), (7, 2, 48), (4, 4, 48), (1, 4, 48), (5, 4, 48), (3, 1, 48), (3, 4, 40), (3, 4, 600)]
        {
            let p = packet(m, v, n.max(48));
            assert!(!is_request(&p[..n]), "mode {m} version {v} {n} bytes");
        }
        let req = packet(3, 4, 48);
        let mut reply = packet(4, 4, 48);
        reply[24..32].copy_from_slice(b"TRANSMIT");
        assert!(answers(&reply, &req));
        reply[24] ^= 1;
        assert!(!answers(&reply, &req), "another request's answer");
        let mut wrong_mode = packet(3, 4, 48);
        wrong_mode[24..32].copy_from_slice(b"TRANSMIT");
        assert!(!answers(&wrong_mode, &req));
    }
}
