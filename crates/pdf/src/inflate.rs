//! Bounded stream decoding. A PDF stream is filtered (usually `FlateDecode`), and a few kilobytes
//! of deflate can stand for gigabytes of zeros: every stream of an untrusted PDF is decoded here,
//! against a ratio cap, an absolute cap per stream, and a budget per document walk, so that a
//! "zip bomb" is refused with [`crate::Error::Invalid`] instead of taking the memory.

use crate::{Error, Result};
use lopdf::{Document, Object, ObjectId, Stream};

/// Decoded bytes one stream may have, whatever its encoded size.
pub const MAX_STREAM_BYTES: usize = 32 * 1024 * 1024;
/// How many times its encoded size a stream may grow when decoded (above [`RATIO_FLOOR`]).
pub const MAX_STREAM_RATIO: usize = 200;
/// Decoded bytes a stream may always have, whatever its ratio (small streams of repeated
/// operators compress very well and are harmless).
pub const RATIO_FLOOR: usize = 1024 * 1024;
/// Decoded bytes of all the streams one operation (a text search, a page copy) reads.
pub const MAX_WALK_BYTES: usize = 128 * 1024 * 1024;

/// The decoded size allowed to a stream of `encoded` bytes.
pub fn stream_limit(encoded: usize) -> usize {
    encoded.saturating_mul(MAX_STREAM_RATIO).clamp(RATIO_FLOOR, MAX_STREAM_BYTES)
}

fn too_large(limit: usize) -> Error {
    Error::Invalid(format!(
        "PDF 数据流解压后过大（超过 {limit} 字节或 {MAX_STREAM_RATIO} 倍压缩比）/ a PDF stream inflates too large \
         (over {limit} bytes or a {MAX_STREAM_RATIO}:1 ratio)"
    ))
}

/// Load a PDF with the decoding of its object and cross-reference streams bounded.
pub fn load_mem(bytes: &[u8]) -> lopdf::Result<Document> {
    let opts = lopdf::LoadOptions { max_decompressed_size: Some(MAX_STREAM_BYTES), ..Default::default() };
    Document::load_mem_with_options(bytes, opts)
}

/// What is left to decode in one operation.
#[derive(Debug)]
pub struct Budget(usize);

impl Default for Budget {
    fn default() -> Self {
        Budget(MAX_WALK_BYTES)
    }
}

impl Budget {
    /// Charge `n` decoded bytes.
    fn charge(&mut self, n: usize) -> Result<()> {
        self.0 = self.0.checked_sub(n).ok_or_else(|| too_large(MAX_WALK_BYTES))?;
        Ok(())
    }
}

/// The decoded content of `stream`, bounded by [`stream_limit`] and the budget. A stream whose
/// filter cannot be decoded (unsupported or corrupt) gives its raw bytes, as lopdf does; a stream
/// over the limits is an error.
pub fn decode(stream: &Stream, budget: &mut Budget) -> Result<Vec<u8>> {
    let limit = stream_limit(stream.content.len()).min(budget.0);
    let data = match stream.decompressed_content_with_limit(limit) {
        Ok(d) => d,
        Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. })) => {
            return Err(too_large(limit));
        }
        Err(_) => stream.content.clone(),
    };
    budget.charge(data.len())?;
    Ok(data)
}

/// The content of a page: its content streams decoded and joined by newlines.
pub fn page_content(doc: &Document, page: ObjectId, budget: &mut Budget) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for id in doc.get_page_contents(page) {
        let Ok(s) = doc.get_object(id).and_then(Object::as_stream) else { continue };
        out.extend_from_slice(&decode(s, budget)?);
        out.push(b'\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::dictionary;

    /// `n` zeros, deflated (zlib).
    fn zeros_deflated(n: usize) -> Vec<u8> {
        let mut s = Stream::new(dictionary! {}, vec![0u8; n]);
        s.compress().unwrap();
        assert_eq!(s.filters().unwrap(), vec![b"FlateDecode".as_slice()]);
        s.content
    }

    #[test]
    fn limits() {
        assert_eq!(stream_limit(0), RATIO_FLOOR);
        assert_eq!(stream_limit(100 * 1024), 100 * 1024 * MAX_STREAM_RATIO);
        assert_eq!(stream_limit(usize::MAX), MAX_STREAM_BYTES);
    }

    #[test]
    fn a_zip_bomb_stream_is_refused_and_ordinary_streams_decode() {
        // 50 MB of zeros deflate to about 50 KB: a thousandfold
        let bomb = Stream::new(dictionary! {"Filter" => "FlateDecode"}, zeros_deflated(50_000_000));
        assert!(bomb.content.len() < 100_000, "{}", bomb.content.len());
        let e = decode(&bomb, &mut Budget::default()).unwrap_err().to_string();
        assert!(e.contains("inflates too large"), "{e}");
        // an honest stream, and one without a filter
        let mut ok = Stream::new(dictionary! {}, b"BT /F1 12 Tf (hello) Tj ET".repeat(1000));
        ok.compress().unwrap();
        assert_eq!(decode(&ok, &mut Budget::default()).unwrap().len(), 26_000);
        let raw = Stream::new(dictionary! {}, b"q Q".to_vec());
        assert_eq!(decode(&raw, &mut Budget::default()).unwrap(), b"q Q");
        // the budget runs out across streams
        let mut b = Budget(30_000);
        decode(&ok, &mut b).unwrap();
        assert!(decode(&ok, &mut b).is_err());
    }
}
