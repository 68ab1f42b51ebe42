//! Per-device rate limits on the phone's sensitive endpoints (issue #7: "rate limits on PIN and
//! ticket endpoints"): a token bucket per (class, device) in this process. PIN attempts are also
//! counted and locked in the database (`approvals::unlock`); this bounds how fast anyone can try.

use medsign_store::Error;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// One class of requests: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// bucket size
    pub burst: f64,
    /// tokens per minute
    pub per_minute: f64,
}

/// PIN checks (unlock, PIN set/change) per device.
pub const PIN: Limit = Limit { burst: 10.0, per_minute: 20.0 };
/// Scans (sign rounds, login tickets) per device: a doctor's busy clinic, not a brute force.
pub const SCAN: Limit = Limit { burst: 30.0, per_minute: 60.0 };

/// Sealed calls per phone address (before they are opened: each costs a key agreement and a
/// write): a flood guard, generous because a hospital's Wi-Fi puts many phones behind one address.
pub const SEALED: Limit = Limit { burst: 600.0, per_minute: 3000.0 };

/// App credential checks that miss the cache (each an Argon2 hash), per client address and per
/// app id: a hospital system authenticates once per five minutes, a guesser is stopped here.
pub const AUTH: Limit = Limit { burst: 20.0, per_minute: 30.0 };

/// The per-address limit of the public endpoints (RFC 3161 TSA, phone activation) for
/// `server.public_rate_per_minute` (0: none): ten seconds' worth at once.
pub fn public(per_minute: u64) -> Option<Limit> {
    (per_minute > 0).then(|| Limit { burst: (per_minute as f64 / 6.0).max(10.0), per_minute: per_minute as f64 })
}

/// (class, key) → (tokens left, last refill)
type Buckets = HashMap<(&'static str, String), (f64, Instant)>;

/// The buckets.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<Buckets>,
}

impl RateLimits {
    /// Take one token for `key` of class `class`; 429 when the bucket is empty.
    pub fn take(&self, class: &'static str, limit: Limit, key: &str) -> Result<(), Error> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if b.len() > 100_000 {
            // forget idle devices rather than grow without bound
            b.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(600));
        }
        let (tokens, at) = b.entry((class, key.to_string())).or_insert((limit.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * limit.per_minute / 60.0).min(limit.burst);
        *at = now;
        if *tokens < 1.0 {
            let wait = ((1.0 - *tokens) * 60.0 / limit.per_minute).ceil();
            return Err(Error::TooManyRequests(format!(
                "操作过于频繁，请 {wait} 秒后再试 / too many attempts; try again in {wait} s"
            )));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_then_refill() {
        let r = RateLimits::default();
        let fast = Limit { burst: 3.0, per_minute: 600.0 };
        for _ in 0..3 {
            r.take("pin", fast, "dev_a").unwrap();
        }
        let e = r.take("pin", fast, "dev_a").unwrap_err();
        assert!(matches!(e, Error::TooManyRequests(_)) && e.to_string().contains("try again"), "{e}");
        r.take("pin", fast, "dev_b").unwrap();
        r.take("scan", fast, "dev_a").unwrap();
        std::thread::sleep(Duration::from_millis(120));
        r.take("pin", fast, "dev_a").unwrap();
    }
}
