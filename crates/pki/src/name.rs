//! Distinguished names: parse the RFC 4514 form the CLI and APIs take
//! (`CN=张三,OU=内科,O=某县人民医院,C=CN`) and display names for people.
//!
//! Values are UTF8String (RFC 5280 § 4.1.2.4: "MUST use UTF8String" for new certificates) except
//! countryName (PrintableString, 2 letters) and emailAddress (IA5String), so Chinese names are
//! carried as they are.

use crate::{Error, Result, oid};
use der::{
    Any, Decode, Encode, Tag, Tagged,
    asn1::{Ia5StringRef, ObjectIdentifier as Oid, PrintableStringRef, Utf8StringRef},
};
use x509_cert::{
    attr::AttributeTypeAndValue,
    name::{Name, RdnSequence, RelativeDistinguishedName},
};

const KEYS: &[(&str, Oid)] = &[
    ("CN", oid::AT_COMMON_NAME),
    ("O", oid::AT_ORGANIZATION),
    ("OU", oid::AT_ORG_UNIT),
    ("C", oid::AT_COUNTRY),
    ("L", oid::AT_LOCALITY),
    ("ST", oid::AT_STATE),
    ("SERIALNUMBER", oid::AT_SERIAL_NUMBER),
    ("T", oid::AT_TITLE),
    ("TITLE", oid::AT_TITLE),
    ("SN", oid::AT_SURNAME),
    ("GN", oid::AT_GIVEN_NAME),
    ("E", oid::AT_EMAIL),
    ("EMAILADDRESS", oid::AT_EMAIL),
];

fn key_name(o: &Oid) -> String {
    match KEYS.iter().find(|(_, k)| k == o) {
        Some((n, _)) => (*n).to_string(),
        None => o.to_string(),
    }
}

fn split_unescaped(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("non-empty").push(n);
                }
            }
            ',' | ';' => out.push(String::new()),
            c => out.last_mut().expect("non-empty").push(c),
        }
    }
    out
}

/// Parse `CN=…,OU=…,O=…,C=CN` (RFC 4514: most specific first; `\,` escapes a comma).
/// Keys: CN, O, OU, C, L, ST, SERIALNUMBER, T/TITLE, SN, GN, E/EMAILADDRESS, or a dotted OID.
pub fn parse_dn(s: &str) -> Result<Name> {
    let mut rdns = Vec::new();
    for part in split_unescaped(s) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("name component '{part}' has no '=' (expected e.g. CN=张三)")))?;
        let (k, v) = (k.trim(), v.trim());
        if v.is_empty() {
            return Err(Error::Invalid(format!("name component '{k}' is empty")));
        }
        let o = match KEYS.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
            Some((_, o)) => *o,
            None => Oid::new(k).map_err(|_| Error::Invalid(format!("unknown name attribute '{k}'")))?,
        };
        let value = match o {
            oid::AT_COUNTRY => {
                if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(Error::Invalid(format!("country must be two capital letters (e.g. CN), got '{v}'")));
                }
                Any::encode_from(&PrintableStringRef::new(v).map_err(|e| Error::Invalid(e.to_string()))?)
            }
            oid::AT_EMAIL => Any::encode_from(
                &Ia5StringRef::new(v).map_err(|_| Error::Invalid(format!("e-mail '{v}' is not ASCII")))?,
            ),
            _ => Any::encode_from(&Utf8StringRef::new(v).map_err(|e| Error::Invalid(e.to_string()))?),
        }
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut rdn = RelativeDistinguishedName::default();
        rdn.insert(AttributeTypeAndValue { oid: o, value }).map_err(|e| Error::Invalid(e.to_string()))?;
        rdns.push(rdn);
    }
    if rdns.is_empty() {
        return Err(Error::Invalid("the name is empty (expected e.g. CN=张三,O=某县人民医院,C=CN)".into()));
    }
    let mut seq = RdnSequence::default();
    for rdn in rdns.into_iter().rev() {
        seq.push(rdn);
    }
    // via DER: Name's own constructor is behind x509-cert's `hazmat` feature
    from_der(&seq.to_der().map_err(|e| Error::Invalid(e.to_string()))?)
}

/// The text of a directory-string value (UTF8, Printable, IA5, Teletex as Latin-1, BMP).
pub fn value_text(v: &Any) -> String {
    let b = v.value();
    match v.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            String::from_utf8_lossy(b).into_owned()
        }
        Tag::TeletexString => b.iter().map(|&c| c as char).collect(),
        Tag::BmpString => {
            let units: Vec<u16> = b.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect();
            String::from_utf16_lossy(&units)
        }
        _ => format!("#{}", hex::encode(v.to_der().unwrap_or_default())),
    }
}

/// RFC 4514 display (most specific first): `CN=张三,OU=内科,O=某县人民医院,C=CN`.
pub fn display(n: &Name) -> String {
    let mut parts: Vec<String> = n
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| format!("{}={}", key_name(&atv.oid), value_text(&atv.value).replace(',', "\\,")))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

/// The first value of attribute `o`.
pub fn attribute(n: &Name, o: Oid) -> Option<String> {
    n.iter().find(|atv| atv.oid == o).map(|atv| value_text(&atv.value))
}

/// The common name, or the whole name when there is none.
pub fn common_name_or_dn(n: &Name) -> String {
    attribute(n, oid::AT_COMMON_NAME).unwrap_or_else(|| display(n))
}

/// Names compare by their DER encoding (RFC 5280 § 7.1 simplified: we issue names
/// byte-identically, and chains from others almost always do the same).
pub fn same(a: &Name, b: &Name) -> bool {
    a.to_der().ok() == b.to_der().ok()
}

/// Parse a DER Name.
pub fn from_der(b: &[u8]) -> Result<Name> {
    Name::from_der(b).map_err(|e| Error::malformed("name", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_names_round_trip_in_rfc4514_order() {
        let n = parse_dn("CN=张三,OU=心内科,O=某县人民医院,C=CN").unwrap();
        assert_eq!(display(&n), "CN=张三,OU=心内科,O=某县人民医院,C=CN");
        // encoded order: C first (RFC 4514 reverses)
        assert_eq!(n.iter_rdn().next().unwrap().iter().next().unwrap().oid, oid::AT_COUNTRY);
        assert_eq!(attribute(&n, oid::AT_COMMON_NAME).as_deref(), Some("张三"));
        let cn = n.iter().find(|a| a.oid == oid::AT_COMMON_NAME).unwrap();
        assert_eq!(cn.value.tag(), Tag::Utf8String);
        assert!(same(&n, &from_der(&n.to_der().unwrap()).unwrap()));
    }

    #[test]
    fn bad_names_are_refused_with_reasons() {
        for bad in ["", "CN", "CN=", "XX=1", "C=China", "C=cn", "E=张@x"] {
            assert!(parse_dn(bad).is_err(), "{bad}");
        }
        let n = parse_dn(r"CN=Li\, Si,O=A;C=CN").unwrap();
        assert_eq!(attribute(&n, oid::AT_COMMON_NAME).as_deref(), Some("Li, Si"));
        assert!(parse_dn("2.5.4.97=VATCN-1").is_ok());
    }
}
