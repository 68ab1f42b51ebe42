//! Conversions between `chrono` UTC instants and ASN.1 times.

use crate::{Error, Result};
use chrono::{DateTime, TimeZone, Utc};
use der::asn1::{GeneralizedTime, UtcTime};
use std::time::Duration;
use x509_cert::time::Time;

/// Seconds-precision DER time of an instant (negative instants are refused).
fn der_dt(t: DateTime<Utc>) -> Result<der::DateTime> {
    let secs = u64::try_from(t.timestamp()).map_err(|_| Error::Invalid("time before 1970".into()))?;
    der::DateTime::from_unix_duration(Duration::from_secs(secs))
        .map_err(|e| Error::Invalid(format!("time out of range: {e}")))
}

/// RFC 5280 § 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
pub fn to_x509_time(t: DateTime<Utc>) -> Result<Time> {
    let dt = der_dt(t)?;
    Ok(if dt.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(dt).map_err(|e| Error::Invalid(e.to_string()))?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

/// GeneralizedTime of an instant (seconds precision).
pub fn to_generalized(t: DateTime<Utc>) -> Result<GeneralizedTime> {
    Ok(GeneralizedTime::from_date_time(der_dt(t)?))
}

/// An X.509 time as a UTC instant.
pub fn from_x509_time(t: &Time) -> DateTime<Utc> {
    from_unix(t.to_unix_duration())
}

/// A GeneralizedTime as a UTC instant (sub-second precision kept when present).
pub fn from_generalized(t: &GeneralizedTime) -> DateTime<Utc> {
    from_unix(t.to_unix_duration())
}

fn from_unix(d: Duration) -> DateTime<Utc> {
    Utc.timestamp_opt(d.as_secs() as i64, d.subsec_nanos()).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A GeneralizedTime with fractional seconds, as RFC 3161 § 2.4.2 allows for genTime
/// (`YYYYMMDDHHMMSS[.f*]Z`, no trailing zeros, no fraction when it is zero). The `der` crate's
/// type follows the RFC 5280 profile, which forbids fractions; this one encodes milliseconds and
/// reads any number of fraction digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PreciseTime(pub DateTime<Utc>);

impl PreciseTime {
    /// The text, written digit by digit into a fixed buffer: the `der` crate asks for it at
    /// least twice per token, and `chrono`'s format strings made it about 1 % of the TSA's CPU
    /// per token (issue #20). A year outside 0–9999 has no GeneralizedTime and is an error; an
    /// instant inside a leap second (which `Utc::now` never returns) is written as its
    /// second's last millisecond, `…59.999Z`.
    fn text(&self) -> der::Result<TimeText> {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return Err(der::ErrorKind::DateTime.into());
        }
        let mut out = TimeText { buf: [0; 19], len: 0 };
        out.digits(year as u32, 4);
        for v in [t.month(), t.day(), t.hour(), t.minute(), t.second()] {
            out.digits(v, 2);
        }
        let ms = t.timestamp_subsec_millis().min(999);
        if ms > 0 {
            // no trailing zeros (X.690 § 11.7.3)
            let (mut v, mut n) = (ms, 3);
            while v % 10 == 0 {
                v /= 10;
                n -= 1;
            }
            out.push(b'.');
            out.digits(v, n);
        }
        out.push(b'Z');
        Ok(out)
    }
}

/// [`PreciseTime`]'s text, without an allocation.
struct TimeText {
    /// `YYYYMMDDHHMMSS.fffZ` at most
    buf: [u8; 19],
    len: usize,
}

impl TimeText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `v` in `n` decimal digits, zero-padded
    fn digits(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.push(b'0' + (v / 10u32.pow(i) % 10) as u8);
        }
    }
}

impl der::FixedTag for PreciseTime {
    const TAG: der::Tag = der::Tag::GeneralizedTime;
}

impl der::EncodeValue for PreciseTime {
    fn value_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.text()?.len)
    }
    fn encode_value(&self, w: &mut impl der::Writer) -> der::Result<()> {
        w.write(self.text()?.as_bytes())
    }
}

impl<'a> der::DecodeValue<'a> for PreciseTime {
    type Error = der::Error;
    fn decode_value<R: der::Reader<'a>>(r: &mut R, header: der::Header) -> der::Result<Self> {
        let len = usize::try_from(header.length())?;
        let mut buf = vec![0u8; len];
        r.read_into(&mut buf)?;
        let bad = || der::Error::from(der::ErrorKind::DateTime);
        let text = core::str::from_utf8(&buf).map_err(|_| bad())?;
        let body = text.strip_suffix('Z').ok_or_else(bad)?;
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        if frac.ends_with('0') || (body.contains('.') && frac.is_empty()) {
            return Err(bad()); // DER: no trailing zeros, no empty fraction
        }
        let naive = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").map_err(|_| bad())?;
        let nanos: u32 = if frac.is_empty() {
            0
        } else {
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            digits.parse().map_err(|_| bad())?
        };
        let t = naive.and_utc() + chrono::Duration::nanoseconds(nanos as i64);
        Ok(PreciseTime(t))
    }
}

/// Parse an instant given on the command line: RFC 3339 (`2026-11-27T08:00:00Z`) or a date
/// (`2026-11-27`, midnight UTC).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    Err(Error::Invalid(format!("'{s}' is not a time: use RFC 3339 (2026-11-27T08:00:00Z) or a date (2026-11-27)")))
}

/// Display an instant in China Standard Time (UTC+8), as reports show it.
pub fn display_cst(t: DateTime<Utc>) -> String {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    t.with_timezone(&cst).format("%Y-%m-%d %H:%M:%S (UTC+8)").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `PreciseTime` wrote before issue #20's change, through `chrono`'s format strings.
    fn chrono_text(t: DateTime<Utc>) -> String {
        let ms = t.timestamp_subsec_millis();
        let mut s = t.format("%Y%m%d%H%M%S").to_string();
        if ms > 0 {
            let f = format!("{ms:03}");
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
        }
        s.push('Z');
        s
    }

    fn text_of(t: DateTime<Utc>) -> der::Result<String> {
        Ok(String::from_utf8(PreciseTime(t).text()?.as_bytes().to_vec()).unwrap())
    }

    /// The text written digit by digit is what `chrono` formatted, at every millisecond of a
    /// second, under a millisecond, at the ends of the years it covers and at 2,000 instants
    /// from a fixed seed; a year it cannot write is an error, and a leap second is written as
    /// its second's last millisecond.
    #[test]
    fn precise_time_text_is_what_chrono_formatted() {
        let base = parse_instant("2026-12-06T09:30:59Z").unwrap();
        let mut instants: Vec<DateTime<Utc>> = (0..1000).map(|ms| base + chrono::Duration::milliseconds(ms)).collect();
        for s in
            ["0000-01-01T00:00:00Z", "1970-01-01T00:00:00.001Z", "2049-12-31T23:59:59.999Z", "9999-12-31T23:59:59.5Z"]
        {
            instants.push(parse_instant(s).unwrap());
        }
        instants.push(base + chrono::Duration::nanoseconds(999_999));
        let mut x = 0x2545_f491_4f6c_dd1du64; // xorshift64, a fixed seed
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            instants.push(Utc.timestamp_millis_opt((x % 253_402_300_800_000) as i64).unwrap());
        }
        for t in instants {
            assert_eq!(text_of(t).unwrap(), chrono_text(t), "{t:?}");
        }
        assert!(text_of(Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap()).is_err());
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc();
        assert_eq!(text_of(leap).unwrap(), "20161231235959.999Z");
    }

    #[test]
    fn precise_generalized_time() {
        use der::{Decode, Encode};
        let t = parse_instant("2026-11-27T08:00:01.250Z").unwrap();
        let der = PreciseTime(t).to_der().unwrap();
        assert_eq!(&der[2..], b"20261127080001.25Z");
        assert_eq!(PreciseTime::from_der(&der).unwrap().0, t);
        let whole = PreciseTime(parse_instant("2026-11-27T08:00:01Z").unwrap()).to_der().unwrap();
        assert_eq!(&whole[2..], b"20261127080001Z");
        // what der's strict type writes is read too; trailing zeros and junk are refused
        let g = to_generalized(t).unwrap().to_der().unwrap();
        assert_eq!(PreciseTime::from_der(&g).unwrap().0.timestamp(), t.timestamp());
        for bad in [&b"\x18\x0f20261127080001.0Z"[..], b"\x18\x0e20261127080001Z", b"\x18\x0f2026112708000.1Z"] {
            assert!(PreciseTime::from_der(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn utc_before_2050_generalized_after() {
        let t = parse_instant("2049-12-31T23:59:59Z").unwrap();
        assert!(matches!(to_x509_time(t).unwrap(), Time::UtcTime(_)));
        assert_eq!(from_x509_time(&to_x509_time(t).unwrap()), t);
        let t = parse_instant("2050-01-01").unwrap();
        assert!(matches!(to_x509_time(t).unwrap(), Time::GeneralTime(_)));
        assert_eq!(from_x509_time(&to_x509_time(t).unwrap()), t);
        assert!(parse_instant("yesterday").is_err());
        assert_eq!(display_cst(parse_instant("2026-11-27T00:00:00Z").unwrap()), "2026-11-27 08:00:00 (UTC+8)");
    }
}
