//! Time for tests: a FAKE SNTP server on loopback, and a clock synchronised to it.

use medsign_config::config::TimeConfig;
use medsign_tsa::clock::{Clock, SAMPLES};
use std::{
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

/// Seconds from 1900 (NTP era 0) to 1970.
const NTP_UNIX: f64 = 2_208_988_800.0;

/// Seconds since 1970 → an NTP timestamp (era 0; valid until 2036).
fn ntp(unix: f64) -> [u8; 8] {
    let secs = unix.floor();
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&((secs + NTP_UNIX) as u64 as u32).to_be_bytes());
    b[4..].copy_from_slice(&(((unix - secs) * 4_294_967_296.0) as u64 as u32).to_be_bytes());
    b
}

/// A FAKE SNTP server on loopback (tests only): answers client requests (RFC 4330) as a
/// synchronised stratum-1 server whose clock is `offset` seconds ahead of this machine's, root
/// delay and root dispersion 1 ms each. It sends `answers` replies, then stays silent (`None`:
/// it answers for as long as the test's runtime runs). Returns its address (`host:port`).
pub async fn fake_ntp(offset: f64, answers: Option<usize>) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind a loopback UDP port");
    let addr = sock.local_addr().expect("its address");
    tokio::spawn(async move {
        let mut buf = [0u8; 128];
        let mut left = answers;
        while left != Some(0) {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else { return };
            if n < 48 || buf[0] & 7 != 3 {
                continue; // not a client request
            }
            let mut r = [0u8; 48];
            r[0] = (4 << 3) | 4; // LI 0, version 4, mode 4 (server)
            r[1] = 1; // stratum 1
            r[4..8].copy_from_slice(&66u32.to_be_bytes()); // root delay ≈ 1 ms (16.16 seconds)
            r[8..12].copy_from_slice(&66u32.to_be_bytes()); // root dispersion ≈ 1 ms
            r[12..16].copy_from_slice(b"GPS\0");
            r[24..32].copy_from_slice(&buf[40..48]); // originate: the client's transmit timestamp
            let now = ntp(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() + offset);
            r[16..24].copy_from_slice(&now); // reference
            r[32..40].copy_from_slice(&now); // receive
            r[40..48].copy_from_slice(&now); // transmit
            if sock.send_to(&r, peer).await.is_err() {
                return;
            }
            left = left.map(|n| n - 1);
        }
    });
    addr
}

/// A clock that believes one sample (tests of code that needs a synchronised TSA): the default
/// `[time]` settings with a [`fake_ntp`] server on time as the only source, polled once.
pub async fn synchronised() -> Clock {
    let source = fake_ntp(0.0, Some(SAMPLES)).await;
    let clock = Clock::new(&TimeConfig { sources: vec![source.to_string()], ..Default::default() });
    clock.poll_once().await;
    assert!(clock.for_issuance().is_ok(), "the test clock did not synchronise: {:?}", clock.status());
    clock
}
