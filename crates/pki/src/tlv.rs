//! DER written by hand, for the few structures whose bytes are put together rather than
//! encoded from a type (a timestamp token from its template, a TimeStampResp around a token):
//! tags, the shortest definite length, and a SET OF's order.

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const OCTET_STRING: u8 = 0x04;
/// `[0]`, constructed (EXPLICIT content, IMPLICIT SET OF)
pub(crate) const CONTEXT_0: u8 = 0xA0;

/// The encoded length of a TLV whose value is `len` bytes long (definite form).
pub(crate) fn tlv_len(len: usize) -> usize {
    1 + header_len_octets(len) + len
}

fn header_len_octets(len: usize) -> usize {
    if len < 0x80 { 1 } else { 1 + (usize::BITS as usize / 8 - len.leading_zeros() as usize / 8) }
}

/// `tag` and the shortest definite form of `len` (X.690 § 10.1).
pub(crate) fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = len.leading_zeros() as usize / 8;
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A TLV of `tag` whose value is `parts` one after another.
pub(crate) fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(tlv_len(len));
    push_header(&mut out, tag, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// A SET OF's elements in DER order (X.690 § 11.6: their encodings compared as octet strings,
/// the shorter padded with zero octets at its end). For whole DER encodings, none of which is a
/// prefix of another, that is the plain byte order.
pub(crate) fn set_order(items: &mut [&[u8]]) {
    items.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn lengths_are_written_in_the_shortest_form() {
        for (len, want) in [
            (0usize, &[0x30, 0x00][..]),
            (0x7f, &[0x30, 0x7f]),
            (0x80, &[0x30, 0x81, 0x80]),
            (0xff, &[0x30, 0x81, 0xff]),
            (0x100, &[0x30, 0x82, 0x01, 0x00]),
            (0x1_0000, &[0x30, 0x83, 0x01, 0x00, 0x00]),
        ] {
            let mut out = Vec::new();
            push_header(&mut out, SEQUENCE, len);
            assert_eq!(out, want, "{len}");
            assert_eq!(tlv_len(len), out.len() + len, "{len}");
            let h = der::Header::new(der::Tag::Sequence, der::Length::try_from(len).unwrap());
            assert_eq!(h.to_der().unwrap(), want, "{len}: as the der crate writes it");
        }
    }

    /// The plain byte order is X.690's padded comparison for whole encodings, which differ in
    /// tag, in length or in value.
    #[test]
    fn set_order_is_x690s_for_whole_encodings() {
        let x690 = |a: &[u8], b: &[u8]| {
            let n = a.len().max(b.len());
            (0..n).map(|i| a.get(i).copied().unwrap_or(0)).cmp((0..n).map(|i| b.get(i).copied().unwrap_or(0)))
        };
        let items: [&[u8]; 6] = [
            &[0x31, 0x00],
            &[0x30, 0x02, 0x05, 0x00],
            &[0x30, 0x01, 0x00],
            &[0x30, 0x81, 0x80],
            &[0x04, 0x01, 0xff],
            &[0x30, 0x02, 0x04, 0x00],
        ];
        let mut mine = items;
        set_order(&mut mine);
        let mut want = items;
        want.sort_by(|a, b| x690(a, b));
        assert_eq!(mine, want);
    }
}
