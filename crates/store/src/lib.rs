//! # medsign-store — 存储 (storage)
//!
//! medsign storage: SQLite / PostgreSQL, migrations, the hash-chained audit log, key custody (KEK), idempotency.
//! No business rule lives here: the contexts above own those.

#![forbid(unsafe_code)]

pub mod audit;
pub mod custody;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod nonces;
pub mod webhook;

pub use error::{Error, Result, RowError};
/// for the writers of [`db::Direct`]
pub use rusqlite;

/// One CSV field, quoted, for files a person opens in Excel or WPS: every CSV medsign writes goes
/// through here. A value starting with `=`, `+`, `-`, `@`, a tab or a carriage return would be
/// taken as a formula (CSV injection: `=HYPERLINK(...)`, `=cmd|...`), so it gets a leading `'`,
/// which the spreadsheet shows as text and does not display.
pub fn csv_field(v: &str) -> String {
    let guard = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { "'" } else { "" };
    format!("\"{guard}{}\"", v.replace('"', "\"\""))
}

/// Check `page` (from 1, default 1) and `page_size` (1..=`max`, default `default`); returns
/// (limit, offset) for SQL. A page whose offset does not fit in an i64 is refused, not wrapped.
pub fn paging(page: Option<i64>, page_size: Option<i64>, default: i64, max: i64) -> Result<(i64, i64)> {
    let (page, size) = (page.unwrap_or(1), page_size.unwrap_or(default));
    if page < 1 || !(1..=max).contains(&size) {
        return Err(Error::Invalid(format!(
            "page 须 ≥ 1，page_size 须在 1–{max} 之间 / page must be ≥ 1 and page_size 1-{max}"
        )));
    }
    let offset = (page - 1)
        .checked_mul(size)
        .ok_or_else(|| Error::Invalid(format!("page 过大：{page} / page {page} is too large")))?;
    Ok((size, offset))
}

/// Another app's record is "not found" (its existence is not disclosed); `app_id` None: an admin
/// sees everything.
pub fn check_owner(app_id: Option<&str>, owner: &str, not_found: impl FnOnce() -> Error) -> Result<()> {
    if app_id.is_some_and(|a| a != owner) { Err(not_found()) } else { Ok(()) }
}

/// Whether a stored RFC 3339 instant has passed (an unreadable one counts as passed).
pub fn is_past(t: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&chrono::Utc) <= chrono::Utc::now()).unwrap_or(true)
}

/// An instant as RFC 3339 UTC with whole seconds (expiry times shown to clients).
pub fn secs_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A query's instant parameter (`from`, `to`, …) in the stored form, so text comparison orders it
/// correctly; anything but RFC 3339 is a 400 naming the parameter.
pub fn instant_param(v: Option<&str>, name: &str) -> Result<Option<String>> {
    v.map(|v| {
        chrono::DateTime::parse_from_rfc3339(v)
            .map(|d| d.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .map_err(|_| Error::Invalid(format!("{name} 须为 RFC 3339 时间 / {name} must be an RFC 3339 instant")))
    })
    .transpose()
}

/// A "contains" `LIKE` pattern (used with `ESCAPE '\'`) for what a person typed: their `%`, `_`
/// and `\` match themselves. None for nothing typed.
pub fn contains_pattern(typed: Option<&str>) -> Option<String> {
    typed
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")))
}

/// Now, as RFC 3339 UTC with milliseconds (the form every instant is stored in).
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("张三"), "\"张三\"");
        assert_eq!(csv_field("say \"hi\", bye"), "\"say \"\"hi\"\", bye\"");
        assert_eq!(csv_field(""), "\"\"");
        for bad in ["=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\",\"y\")"] {
            let f = csv_field(bad);
            assert!(f.starts_with("\"'"), "{bad:?} -> {f}");
        }
        // harmless look-alikes are left alone
        assert_eq!(csv_field("a=1"), "\"a=1\"");
        assert_eq!(csv_field(" =1"), "\" =1\"");
        assert_eq!(csv_field("{\"k\":1}"), "\"{\"\"k\"\":1}\"");
    }

    #[test]
    fn paging_refuses_an_offset_past_i64() {
        assert_eq!(super::paging(Some(3), Some(50), 50, 500).unwrap(), (50, 100));
        assert_eq!(super::paging(None, None, 50, 500).unwrap(), (50, 0));
        assert!(super::paging(Some(0), None, 50, 500).is_err());
        // found by scripts/api-fuzz: this page overflowed `(page - 1) * size` (a panic in debug)
        let e = super::paging(Some(i64::MAX - 1), Some(50), 50, 500).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
        assert_eq!(super::paging(Some(i64::MAX), Some(1), 50, 500).unwrap(), (1, i64::MAX - 1));
    }
}
