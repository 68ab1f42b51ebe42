//! The TSA's clock (issue #5; R6.4, R6.6): an SNTP client (RFC 4330, NTPv4 packets) polls the
//! configured sources, filters samples and tracks the offset of the system clock with a bound on
//! its error. It never sets the system clock. The TSA issues only while the state allows it
//! (ETSI EN 319 421: a TSA refuses when its time is not trustworthy).
//!
//! Per poll, each source is asked `SAMPLES` times; a reply is refused when it is not a server
//! reply, does not echo our transmit timestamp, carries leap indicator 3 (unsynchronised),
//! stratum 0 (kiss-of-death, code logged) or ≥ 16, or a synchronisation distance over 16 s. Of
//! the good replies the one with the lowest round-trip delay wins (the NTP clock filter's idea);
//! across sources the sample with the smallest error bound wins.
//!
//! Error bound of a sample at age `a`: `δ/2 + root_delay/2 + root_dispersion + PHI·a`, with
//! `PHI` = 15 ppm (RFC 5905's frequency tolerance). States: `UNKNOWN` (no good sample yet),
//! `INSYNC`, `SOON_OUT_OF_SYNC` (bound over ¾ of `time.max_offset_ms`, or the sample older than
//! ¾ of the holdover — still issuing), `OUT_OF_SYNC` (bound ≥ `max_offset_ms` or sample older
//! than `time.holdover_seconds`). Around a leap second announced by the source (LI 1 or 2) the
//! TSA refuses from 23:59:58 to 00:00:02 UTC at the end of the month.

use chrono::{DateTime, Datelike, Duration as CDuration, Utc};
use serde::Serialize;
use std::{
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Frequency tolerance of an undisciplined clock (RFC 5905 § 7.2), seconds per second.
pub const PHI: f64 = 15e-6;
/// Samples per source per poll.
pub const SAMPLES: usize = 4;
/// Seconds from 1900 (NTP era 0) to 1970.
const NTP_UNIX: f64 = 2_208_988_800.0;

/// Clock synchronisation state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncState {
    /// within bounds
    Insync,
    /// still within bounds, but close to the limit or to the end of the holdover
    SoonOutOfSync,
    /// not trustworthy: the TSA refuses
    OutOfSync,
    /// no good sample yet: the TSA refuses
    Unknown,
}

impl SyncState {
    /// As in `/readyz` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            SyncState::Insync => "INSYNC",
            SyncState::SoonOutOfSync => "SOON_OUT_OF_SYNC",
            SyncState::OutOfSync => "OUT_OF_SYNC",
            SyncState::Unknown => "UNKNOWN",
        }
    }
}

/// One accepted measurement.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `host:port`
    pub source: String,
    /// server time − system time, seconds
    pub offset: f64,
    /// round-trip delay, seconds
    pub delay: f64,
    /// root delay / 2 + root dispersion of the server, seconds
    pub root_distance: f64,
    /// server stratum
    pub stratum: u8,
    /// leap indicator
    pub leap: u8,
    /// when it was taken (monotonic)
    pub taken: Instant,
    /// when it was taken (wall clock)
    pub at: DateTime<Utc>,
}

impl Sample {
    /// The error bound of the system clock `age` after this sample, seconds.
    pub fn uncertainty(&self, age: Duration) -> f64 {
        self.delay / 2.0 + self.root_distance + PHI * age.as_secs_f64()
    }
}

/// Why a reply was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SntpError {
    /// network
    #[error("network: {0}")]
    Io(String),
    /// no answer in time
    #[error("no answer")]
    Timeout,
    /// not a valid server reply
    #[error("bad reply: {0}")]
    Bad(String),
    /// stratum 0 kiss-of-death (RATE, DENY, RSTR, …)
    #[error("kiss-of-death {0}")]
    Kiss(String),
    /// leap indicator 3 or stratum ≥ 16
    #[error("the server is not synchronised")]
    Unsynchronised,
}

fn to_ntp(t: SystemTime) -> [u8; 8] {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = (d.as_secs() as f64 + NTP_UNIX) as u64 as u32;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&secs.to_be_bytes());
    b[4..].copy_from_slice(&(frac as u32).to_be_bytes());
    b
}

/// NTP timestamp → seconds since 1970 (era 0; valid until 2036).
fn from_ntp(b: &[u8]) -> f64 {
    let secs = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64;
    let frac = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as f64 / 4_294_967_296.0;
    secs + frac - NTP_UNIX
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Check a server reply to the request whose transmit timestamp was `sent` (bytes), received
/// at `t4`; `t1` is when it was sent. Returns (offset, delay, root distance, stratum, leap).
pub fn parse_reply(reply: &[u8], sent: &[u8; 8], t1: f64, t4: f64) -> Result<(f64, f64, f64, u8, u8), SntpError> {
    if reply.len() < 48 {
        return Err(SntpError::Bad(format!("{} bytes", reply.len())));
    }
    let leap = reply[0] >> 6;
    let version = (reply[0] >> 3) & 7;
    let mode = reply[0] & 7;
    let stratum = reply[1];
    if mode != 4 || !(3..=4).contains(&version) {
        return Err(SntpError::Bad(format!("mode {mode} version {version}")));
    }
    if reply[24..32] != sent[..] {
        return Err(SntpError::Bad("originate timestamp does not echo our request".into()));
    }
    if stratum == 0 {
        // a kiss code is four ASCII letters in the reference id (RFC 4330 § 8); an unsynchronised
        // server (chrony without a reference) sends stratum 0 with an empty reference id
        if reply[12..16].iter().all(|c| c.is_ascii_uppercase()) {
            return Err(SntpError::Kiss(String::from_utf8_lossy(&reply[12..16]).into_owned()));
        }
        return Err(SntpError::Unsynchronised);
    }
    if leap == 3 || stratum >= 16 {
        return Err(SntpError::Unsynchronised);
    }
    if reply[40..48].iter().all(|&b| b == 0) {
        return Err(SntpError::Bad("zero transmit timestamp".into()));
    }
    let short = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64 / 65536.0;
    let (root_delay, root_disp) = (short(&reply[4..8]), short(&reply[8..12]));
    let (t2, t3) = (from_ntp(&reply[32..40]), from_ntp(&reply[40..48]));
    let offset = ((t2 - t1) + (t3 - t4)) / 2.0;
    let delay = ((t4 - t1) - (t3 - t2)).max(0.0);
    let distance = root_delay / 2.0 + root_disp;
    if distance + delay / 2.0 > 16.0 {
        return Err(SntpError::Bad(format!("synchronisation distance {distance:.3} s")));
    }
    Ok((offset, delay, distance, stratum, leap))
}

/// Resolve `host[:port]` (default port 123).
pub async fn resolve(source: &str) -> Result<SocketAddr, SntpError> {
    let with_port =
        if source.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok() && !h.ends_with(':'))
        {
            source.to_string()
        } else {
            format!("{source}:123")
        };
    tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| SntpError::Io(format!("{source}: {e}")))?
        .next()
        .ok_or_else(|| SntpError::Io(format!("{source}: no address")))
}

/// One SNTP exchange with `addr`.
pub async fn query(addr: SocketAddr, timeout: Duration) -> Result<(f64, f64, f64, u8, u8), SntpError> {
    let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(|e| SntpError::Io(e.to_string()))?;
    sock.connect(addr).await.map_err(|e| SntpError::Io(e.to_string()))?;
    let mut pkt = [0u8; 48];
    pkt[0] = 0x23; // LI 0, version 4, mode 3 (client)
    let now = SystemTime::now();
    let sent = to_ntp(now);
    pkt[40..48].copy_from_slice(&sent);
    let t1 = unix(now);
    sock.send(&pkt).await.map_err(|e| SntpError::Io(e.to_string()))?;
    let mut buf = [0u8; 128];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Err(SntpError::Timeout),
            Ok(Err(e)) => return Err(SntpError::Io(e.to_string())),
            Ok(Ok(n)) => n,
        };
        let t4 = unix(SystemTime::now());
        match parse_reply(&buf[..n], &sent, t1, t4) {
            // a stray or spoofed datagram: keep waiting for ours
            Err(SntpError::Bad(m)) if m.starts_with("originate") => continue,
            r => return r,
        }
    }
}

/// The source name that reads the host's own disciplined clock ([`crate::kernel`]).
pub const KERNEL: &str = "kernel";

/// A sample of the kernel's clock state: offset 0 (it *is* the system clock), error bound the
/// kernel's maximum error; refused while the kernel says it is not synchronised.
fn kernel_sample() -> Result<Sample, String> {
    let k = crate::kernel::read()?;
    if !k.synchronised {
        return Err(format!(
            "内核时钟未同步（STA_UNSYNC）/ the host's clock is not synchronised by its NTP daemon (maxerror {:.0} ms)",
            k.max_error * 1000.0
        ));
    }
    Ok(Sample {
        source: KERNEL.into(),
        offset: 0.0,
        delay: 0.0,
        root_distance: k.max_error,
        stratum: 0,
        leap: k.leap,
        taken: Instant::now(),
        at: Utc::now(),
    })
}

/// What `/readyz`, `/metrics` and the admin API show.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ClockStatus {
    /// state
    pub state: SyncState,
    /// offset of the system clock (server − system), milliseconds
    pub offset_ms: Option<f64>,
    /// error bound now, milliseconds
    pub uncertainty_ms: Option<f64>,
    /// round-trip delay of the sample, milliseconds
    pub delay_ms: Option<f64>,
    /// when the sample was taken
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_sync: Option<DateTime<Utc>>,
    /// the source of the sample
    pub source: Option<String>,
    /// its stratum
    pub stratum: Option<u8>,
    /// its leap indicator
    pub leap: Option<u8>,
    /// the refusal limit, milliseconds
    pub max_offset_ms: u64,
    /// the holdover, seconds
    pub holdover_seconds: u64,
    /// the configured sources
    pub sources: Vec<String>,
    /// the last problem per source, when any
    pub errors: Vec<String>,
}

struct Inner {
    best: Option<Sample>,
    errors: Vec<String>,
    /// the state after each poll, oldest first, at most [`HISTORY`] points
    history: std::collections::VecDeque<ClockPoint>,
}

/// How many polls [`Clock::history`] remembers (a day at the default 64 s poll).
pub const HISTORY: usize = 1440;

/// The clock after one poll, for "offset and uncertainty over time" (kept in this instance's
/// memory: a restart starts it again).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ClockPoint {
    /// when the poll ended
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub at: DateTime<Utc>,
    /// the synchronisation state then (as `/readyz` names it)
    pub state: SyncState,
    /// estimated offset of the system clock, ms
    pub offset_ms: Option<f64>,
    /// bound on the error, ms
    pub uncertainty_ms: Option<f64>,
    /// the source of the sample used
    pub source: Option<String>,
}

/// The disciplined view of the system clock.
pub struct Clock {
    sources: Vec<String>,
    max_offset: f64,
    holdover: Duration,
    poll: Duration,
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("sources", &self.sources).finish_non_exhaustive()
    }
}

impl Clock {
    /// A clock for `[time]`.
    pub fn new(cfg: &medsign_config::config::TimeConfig) -> Self {
        Self {
            sources: cfg.sources.clone(),
            max_offset: cfg.max_offset_ms as f64 / 1000.0,
            holdover: Duration::from_secs(cfg.holdover_seconds.max(1)),
            poll: Duration::from_secs(cfg.poll_seconds.max(1)),
            inner: RwLock::new(Inner { best: None, errors: vec![], history: Default::default() }),
        }
    }

    /// Poll every source once (`SAMPLES` exchanges each); keep the best sample.
    pub async fn poll_once(&self) {
        let mut best: Option<Sample> = None;
        let mut errors = Vec::new();
        for source in &self.sources {
            if source == KERNEL {
                match kernel_sample() {
                    Ok(s)
                        if best
                            .as_ref()
                            .is_none_or(|b| s.uncertainty(Duration::ZERO) < b.uncertainty(Duration::ZERO)) =>
                    {
                        best = Some(s)
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(format!("{KERNEL}: {e}")),
                }
                continue;
            }
            let addr = match resolve(source).await {
                Ok(a) => a,
                Err(e) => {
                    errors.push(format!("{source}: {e}"));
                    continue;
                }
            };
            let mut mine: Option<Sample> = None;
            let mut last_err = None;
            for i in 0..SAMPLES {
                match query(addr, Duration::from_secs(2)).await {
                    Ok((offset, delay, root_distance, stratum, leap)) => {
                        let s = Sample {
                            source: source.clone(),
                            offset,
                            delay,
                            root_distance,
                            stratum,
                            leap,
                            taken: Instant::now(),
                            at: Utc::now(),
                        };
                        if mine.as_ref().is_none_or(|m| s.delay < m.delay) {
                            mine = Some(s);
                        }
                    }
                    Err(e) => {
                        let stop = matches!(&e, SntpError::Kiss(k) if k != "RATE")
                            || matches!(e, SntpError::Timeout | SntpError::Io(_));
                        last_err = Some(e);
                        if stop {
                            break;
                        }
                    }
                }
                if i + 1 < SAMPLES {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            match mine {
                Some(s) => {
                    if best.as_ref().is_none_or(|b| s.uncertainty(Duration::ZERO) < b.uncertainty(Duration::ZERO)) {
                        best = Some(s);
                    }
                }
                None => errors.push(format!("{source}: {}", last_err.map(|e| e.to_string()).unwrap_or_default())),
            }
        }
        let mut g = self.inner.write().expect("clock lock");
        g.errors = errors;
        if let Some(b) = best {
            tracing::debug!(source = %b.source, offset = b.offset, delay = b.delay, "clock sample");
            g.best = Some(b);
        } else if let Some(b) = &g.best {
            // no fresh sample: the previous one ages (holdover); a source that now reports
            // unsynchronised or wildly off does not replace it, but the errors are shown
            tracing::warn!(errors = ?g.errors, age = ?b.taken.elapsed(), "no usable time sample this poll");
        }
        drop(g);
        let st = self.status();
        let point = ClockPoint {
            at: Utc::now(),
            state: st.state,
            offset_ms: st.offset_ms,
            uncertainty_ms: st.uncertainty_ms,
            source: st.source,
        };
        let mut g = self.inner.write().expect("clock lock");
        if g.history.len() == HISTORY {
            g.history.pop_front();
        }
        g.history.push_back(point);
    }

    /// The state after each of the last polls, oldest first (at most [`HISTORY`]).
    pub fn history(&self) -> Vec<ClockPoint> {
        self.inner.read().expect("clock lock").history.iter().cloned().collect()
    }

    /// The state and numbers now.
    pub fn status(&self) -> ClockStatus {
        let g = self.inner.read().expect("clock lock");
        let mut st = ClockStatus {
            state: SyncState::Unknown,
            offset_ms: None,
            uncertainty_ms: None,
            delay_ms: None,
            last_sync: None,
            source: None,
            stratum: None,
            leap: None,
            max_offset_ms: (self.max_offset * 1000.0) as u64,
            holdover_seconds: self.holdover.as_secs(),
            sources: self.sources.clone(),
            errors: g.errors.clone(),
        };
        if let Some(s) = &g.best {
            let age = s.taken.elapsed();
            let unc = s.uncertainty(age);
            st.state = classify(s.offset.abs() + unc, age, self.max_offset, self.holdover);
            st.offset_ms = Some(s.offset * 1000.0);
            st.uncertainty_ms = Some(unc * 1000.0);
            st.delay_ms = Some(s.delay * 1000.0);
            st.last_sync = Some(s.at);
            st.source = Some(s.source.clone());
            // the kernel source has no stratum (0 would read as a kiss-of-death)
            st.stratum = (s.source != KERNEL).then_some(s.stratum);
            st.leap = Some(s.leap);
        }
        st
    }

    /// May a timestamp be issued now? `Ok(bound in microseconds)` for the token's accuracy, or
    /// why not (Chinese / English).
    pub fn for_issuance(&self) -> Result<u64, String> {
        let st = self.status();
        match st.state {
            SyncState::Insync | SyncState::SoonOutOfSync => {}
            SyncState::Unknown => {
                return Err(format!(
                    "时钟尚未与时间源同步，拒绝签发 / the clock has not synchronised with a time source yet ({})",
                    if st.errors.is_empty() { st.sources.join(", ") } else { st.errors.join("; ") }
                ));
            }
            SyncState::OutOfSync => {
                return Err(format!(
                    "时钟失去同步，拒绝签发 / the clock is out of sync: offset {:.1} ms ± {:.1} ms, limit {} ms, last sample {}",
                    st.offset_ms.unwrap_or(0.0),
                    st.uncertainty_ms.unwrap_or(0.0),
                    st.max_offset_ms,
                    st.last_sync.map(|t| t.to_rfc3339()).unwrap_or_default()
                ));
            }
        }
        if st.leap.is_some_and(|l| l == 1 || l == 2) && near_leap(Utc::now()) {
            return Err("闰秒调整前后暂停签发 / paused around the announced leap second".into());
        }
        let bound = st.offset_ms.unwrap_or(0.0).abs() + st.uncertainty_ms.unwrap_or(0.0);
        Ok((bound * 1000.0).ceil().max(1.0) as u64)
    }

    /// Poll now, then every `time.poll_seconds` (a quarter of that while not in sync).
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.poll_once().await;
                let st = self.status().state;
                let wait = if matches!(st, SyncState::Insync) {
                    self.poll
                } else {
                    (self.poll / 4).max(Duration::from_secs(1))
                };
                tokio::time::sleep(wait).await;
            }
        })
    }
}

/// The state for an error bound `bound` (s) of a sample `age` old.
pub fn classify(bound: f64, age: Duration, max_offset: f64, holdover: Duration) -> SyncState {
    if bound >= max_offset || age > holdover {
        SyncState::OutOfSync
    } else if bound >= 0.75 * max_offset || age.as_secs_f64() > 0.75 * holdover.as_secs_f64() {
        SyncState::SoonOutOfSync
    } else {
        SyncState::Insync
    }
}

/// Within 2 s of a month boundary (where leap seconds are inserted or deleted).
fn near_leap(now: DateTime<Utc>) -> bool {
    (now + CDuration::seconds(2)).month() != now.month() || (now - CDuration::seconds(2)).month() != now.month()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every poll leaves a point, the oldest go first beyond [`HISTORY`]; no source, no sample:
    /// the state is shown as unknown, not invented.
    #[tokio::test]
    async fn each_poll_leaves_a_point_and_a_day_is_kept() {
        let cfg = medsign_config::config::TimeConfig { sources: vec![], ..Default::default() };
        let c = Clock::new(&cfg);
        assert!(c.history().is_empty());
        for _ in 0..HISTORY + 5 {
            c.poll_once().await;
        }
        let h = c.history();
        assert_eq!(h.len(), HISTORY);
        assert!(h.iter().all(|p| p.state == SyncState::Unknown && p.offset_ms.is_none()));
        assert!(h.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
    }

    /// A clock that believes one sample (tests of code that needs a synchronised TSA). The crates
    /// above use `medsign_testkit::clock::synchronised`, whose `Clock` is not this test build's.
    pub(crate) fn synchronised() -> Clock {
        let c = Clock::new(&medsign_config::config::TimeConfig::default());
        c.inner.write().unwrap().best = Some(Sample {
            source: "test".into(),
            offset: 0.0,
            delay: 0.001,
            root_distance: 0.001,
            stratum: 2,
            leap: 0,
            taken: Instant::now(),
            at: Utc::now(),
        });
        c
    }

    fn reply(leap: u8, stratum: u8, sent: &[u8; 8], server_time: f64) -> Vec<u8> {
        let mut r = vec![0u8; 48];
        r[0] = (leap << 6) | (4 << 3) | 4;
        r[1] = stratum;
        r[4..8].copy_from_slice(&(655u32).to_be_bytes()); // root delay 10 ms
        r[8..12].copy_from_slice(&(327u32).to_be_bytes()); // root dispersion 5 ms
        if stratum == 0 {
            r[12..16].copy_from_slice(b"DENY");
        }
        r[24..32].copy_from_slice(sent);
        let t = to_ntp(UNIX_EPOCH + Duration::from_secs_f64(server_time));
        r[32..40].copy_from_slice(&t);
        r[40..48].copy_from_slice(&t);
        r
    }

    #[test]
    fn replies_are_filtered_and_measured() {
        let now = unix(SystemTime::now());
        let sent = to_ntp(SystemTime::now());
        // a server one hour ahead, 20 ms round trip
        let (off, delay, dist, stratum, _) =
            parse_reply(&reply(0, 2, &sent, now + 3600.01), &sent, now, now + 0.02).unwrap();
        assert!((off - 3600.0).abs() < 0.001, "{off}");
        assert!((delay - 0.02).abs() < 0.001, "{delay}");
        assert!((dist - 0.01).abs() < 0.001, "{dist}");
        assert_eq!(stratum, 2);
        assert_eq!(parse_reply(&reply(3, 2, &sent, now), &sent, now, now), Err(SntpError::Unsynchronised));
        assert_eq!(parse_reply(&reply(0, 16, &sent, now), &sent, now, now), Err(SntpError::Unsynchronised));
        assert_eq!(parse_reply(&reply(0, 0, &sent, now), &sent, now, now), Err(SntpError::Kiss("DENY".into())));
        let mut no_reference = reply(3, 0, &sent, now);
        no_reference[12..16].copy_from_slice(&[0; 4]);
        assert_eq!(parse_reply(&no_reference, &sent, now, now), Err(SntpError::Unsynchronised));
        let other = to_ntp(SystemTime::now() + Duration::from_secs(1));
        assert!(matches!(parse_reply(&reply(0, 2, &other, now), &sent, now, now), Err(SntpError::Bad(_))));
        assert!(matches!(parse_reply(&[0u8; 20], &sent, now, now), Err(SntpError::Bad(_))));
        let mut client_mode = reply(0, 2, &sent, now);
        client_mode[0] = 0x23;
        assert!(matches!(parse_reply(&client_mode, &sent, now, now), Err(SntpError::Bad(_))));
    }

    #[test]
    fn states_follow_bound_and_age() {
        let h = Duration::from_secs(900);
        assert_eq!(classify(0.01, Duration::from_secs(10), 1.0, h), SyncState::Insync);
        assert_eq!(classify(0.8, Duration::from_secs(10), 1.0, h), SyncState::SoonOutOfSync);
        assert_eq!(classify(0.01, Duration::from_secs(700), 1.0, h), SyncState::SoonOutOfSync);
        assert_eq!(classify(1.0, Duration::from_secs(10), 1.0, h), SyncState::OutOfSync);
        assert_eq!(classify(3600.0, Duration::ZERO, 1.0, h), SyncState::OutOfSync);
        assert_eq!(classify(0.01, Duration::from_secs(901), 1.0, h), SyncState::OutOfSync);
        let c = Clock::new(&medsign_config::config::TimeConfig::default());
        assert_eq!(c.status().state, SyncState::Unknown);
        assert!(c.for_issuance().unwrap_err().contains("尚未"));
        let ok = synchronised();
        assert_eq!(ok.status().state, SyncState::Insync);
        let us = ok.for_issuance().unwrap();
        assert!((1_000..3_000).contains(&us), "{us}");
    }

    #[test]
    fn leap_window() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert!(near_leap(t("2026-12-31T23:59:59Z")));
        assert!(near_leap(t("2027-01-01T00:00:01Z")));
        assert!(!near_leap(t("2026-12-31T23:59:50Z")));
        assert!(!near_leap(t("2026-12-15T23:59:59Z")));
    }

    #[test]
    fn ntp_timestamps_round_trip() {
        let now = SystemTime::now();
        assert!((from_ntp(&to_ntp(now)) - unix(now)).abs() < 1e-6);
    }

    /// The `kernel` source follows what the kernel says of this machine's clock: synchronised,
    /// the clock is in sync with the kernel's maximum error as its bound; not, no sample.
    #[tokio::test]
    async fn the_kernel_source_takes_the_kernel_at_its_word() {
        let cfg = medsign_config::config::TimeConfig { sources: vec![KERNEL.into()], ..Default::default() };
        let c = Clock::new(&cfg);
        c.poll_once().await;
        let st = c.status();
        match crate::kernel::read() {
            Ok(k) if k.synchronised => {
                assert_eq!(st.source.as_deref(), Some(KERNEL), "{st:?}");
                let bound = st.uncertainty_ms.unwrap();
                assert!(bound >= k.max_error * 1000.0 - 1.0, "{st:?} {k:?}");
            }
            _ => {
                assert_eq!(st.state, SyncState::Unknown, "{st:?}");
                assert!(st.errors[0].starts_with("kernel: "), "{st:?}");
            }
        }
    }

    /// A FAKE SNTP server on loopback (tests only) answering with a chosen offset, twice.
    #[tokio::test]
    async fn query_against_a_fake_server() {
        let addr = medsign_testkit::clock::fake_ntp(0.25, Some(2)).await;
        let (off, delay, _, stratum, _) = query(addr, Duration::from_secs(1)).await.unwrap();
        assert!((off - 0.25).abs() < 0.05, "{off}");
        assert!(delay < 0.05 && stratum == 1);
        let cfg = medsign_config::config::TimeConfig { sources: vec![addr.to_string()], ..Default::default() };
        let c = Clock::new(&cfg);
        // the fake answers once more then goes silent: a timeout is reported, the good sample kept
        c.poll_once().await;
        let st = c.status();
        assert_eq!(st.state, SyncState::Insync, "{st:?}");
        assert!((st.offset_ms.unwrap() - 250.0).abs() < 50.0);
        assert!(resolve("127.0.0.1").await.unwrap().port() == 123);
        assert!(resolve("nonexistent.invalid:123").await.is_err());
    }
}
