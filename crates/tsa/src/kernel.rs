//! The time source `kernel`: the host's own clock, as the daemon that disciplines it (chrony or
//! ntpd, with a GPS/PPS reference on real hardware) has told the kernel. `adjtimex(2)` with no
//! mode bits set only *reads* that state: whether the clock is synchronised (`STA_UNSYNC`, the
//! `TIME_ERROR` return), the maximum error `maxerror` (µs; the daemon sets it at each update and
//! the kernel adds 500 µs every second after), the estimated error, and a leap second announced.
//! medsign never sets the clock.
//!
//! The sample's error bound is `maxerror` — the kernel's own bound, not a guess — aged with
//! [`crate::clock::PHI`] like any sample. With chrony and a PPS reference updating every second
//! it stays in the tens of microseconds, the way to R6.6's 0.5–3 ms; what `/readyz` shows is that
//! number, whatever it is.
//!
//! **Reviewed `unsafe`** (one of medsign's two; the other is `crates/cli/src/alloc.rs`): one
//! zero-initialised `libc::timex` (plain integers, all-zero is a valid value and means "read,
//! change nothing") and one call to `libc::adjtimex` with a pointer to it, alive for the call.
//! Nothing else is done unsafely.

/// What the kernel says about the system clock.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelClock {
    /// `STA_UNSYNC` clear and not `TIME_ERROR`
    pub synchronised: bool,
    /// maximum error, seconds
    pub max_error: f64,
    /// estimated error, seconds
    pub est_error: f64,
    /// leap indicator as NTP has it: 1 a second will be inserted, 2 deleted, 0 none
    pub leap: u8,
}

const STA_INS: i32 = 0x0010;
const STA_DEL: i32 = 0x0020;
const STA_UNSYNC: i32 = 0x0040;
const TIME_ERROR: i32 = 5;

/// The state of the kernel's answer: `ret` of `adjtimex`, `status` bits, errors in µs.
pub fn interpret(ret: i32, status: i32, maxerror_us: i64, esterror_us: i64) -> KernelClock {
    KernelClock {
        synchronised: ret != TIME_ERROR && status & STA_UNSYNC == 0,
        max_error: maxerror_us.max(0) as f64 / 1e6,
        est_error: esterror_us.max(0) as f64 / 1e6,
        leap: if status & STA_INS != 0 {
            1
        } else if status & STA_DEL != 0 {
            2
        } else {
            0
        },
    }
}

/// Read the kernel's clock state (`adjtimex`, read only).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn read() -> Result<KernelClock, String> {
    // SAFETY: `timex` is a C struct of integers (and padding); all-zero is a valid value, and
    // `modes = 0` asks the kernel to change nothing.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed `timex` for the duration of the call; the
    // kernel writes only within it.
    let ret = unsafe { libc::adjtimex(&mut tx) };
    if ret < 0 {
        return Err(format!("adjtimex: {}", std::io::Error::last_os_error()));
    }
    Ok(interpret(ret, tx.status, tx.maxerror as i64, tx.esterror as i64))
}

/// Read the kernel's clock state: not on this platform.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn read() -> Result<KernelClock, String> {
    Err("adjtimex is available on Linux only".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_state_is_read_as_it_is() {
        let ok = interpret(0, 0x2001, 250, 12);
        assert_eq!(ok, KernelClock { synchronised: true, max_error: 0.000250, est_error: 0.000012, leap: 0 });
        assert!(!interpret(0, STA_UNSYNC | 1, 16_000_000, 0).synchronised, "STA_UNSYNC");
        assert!(!interpret(TIME_ERROR, 1, 100, 0).synchronised, "TIME_ERROR");
        assert_eq!(interpret(1, STA_INS, 100, 0).leap, 1);
        assert_eq!(interpret(2, STA_DEL, 100, 0).leap, 2);
        assert_eq!(interpret(0, 0, -5, -5).max_error, 0.0);
    }

    /// The real call on this machine: it answers, and what it answers is a state (in a container
    /// usually unsynchronised with a 16 s maximum error — it is not a test of the host's time).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_kernel_answers() {
        let k = read().unwrap();
        assert!(k.max_error >= 0.0 && k.max_error < 1e6, "{k:?}");
        assert!(k.leap <= 2);
    }
}
