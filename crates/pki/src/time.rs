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
