//! The revisions of a PDF, read from its cross-reference structure.
//!
//! A PDF grows by incremental updates: each appends objects, a cross-reference section (a classic
//! `xref` table with a `trailer`, or a cross-reference stream) and `startxref N %%EOF`. A signature
//! covers the file up to the end of one revision, so a verifier must know exactly where each
//! revision ends. They are found the way a reader finds them — the last `startxref`, then each
//! section's `/Prev` (and `/XRefStm`) — never by searching for `%%EOF` alone, which an attacker
//! can leave out or plant inside a stream.
//!
//! What does not fit is reported, not skipped: bytes after the last revision, a revision without
//! its `%%EOF`, a `/Prev` chain that loops or points outside the file.

/// At most this many cross-reference sections are followed (a chain longer than any real
/// document's history is refused before the work).
pub const MAX_SECTIONS: usize = 512;

/// One revision: the bytes `start..end` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// first byte
    pub start: usize,
    /// one past the last byte (after `%%EOF` and its line end, when present)
    pub end: usize,
    /// offsets of its cross-reference sections
    pub xref_offsets: Vec<usize>,
    /// `table`, `stream` or `hybrid`
    pub xref_kind: &'static str,
    /// ends with `startxref` pointing at its section and `%%EOF`
    pub complete: bool,
}

/// The file as revisions.
#[derive(Debug, Clone, Default)]
pub struct Structure {
    /// oldest first
    pub revisions: Vec<Revision>,
    /// bytes after the last revision that are not white space or NUL
    pub trailing_bytes: usize,
    /// structural problems (Chinese / English), each a reason the file was altered or damaged
    pub problems: Vec<String>,
}

/// Why the structure could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    loop {
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] == b'%' && !b[i..].starts_with(b"%%EOF") {
            while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                i += 1;
            }
            continue;
        }
        return i;
    }
}

fn is_delim(c: u8) -> bool {
    is_ws(c) || matches!(c, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

/// An unsigned integer at `i` (after white space): its value and the index after it.
fn uint(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let i = skip_ws(b, i);
    let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 15 || b.get(i + n).is_some_and(|&c| !is_delim(c)) {
        return None;
    }
    let v = std::str::from_utf8(&b[i..i + n]).ok()?.parse().ok()?;
    Some((v, i + n))
}

/// Skip one object at `i`; returns the index after it. Nesting is bounded.
fn skip_value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > 64 {
        return None;
    }
    let i = skip_ws(b, i);
    let c = *b.get(i)?;
    match c {
        b'<' if b.get(i + 1) == Some(&b'<') => {
            let mut j = i + 2;
            loop {
                j = skip_ws(b, j);
                if b[j..].starts_with(b">>") {
                    return Some(j + 2);
                }
                j = skip_value(b, j, depth + 1)?;
            }
        }
        b'<' => Some(i + 1 + b[i + 1..].iter().position(|&c| c == b'>')? + 1),
        b'[' => {
            let mut j = i + 1;
            loop {
                j = skip_ws(b, j);
                if *b.get(j)? == b']' {
                    return Some(j + 1);
                }
                j = skip_value(b, j, depth + 1)?;
            }
        }
        b'(' => {
            let (mut j, mut level) = (i + 1, 1usize);
            while level > 0 {
                match *b.get(j)? {
                    b'\\' => j += 1,
                    b'(' => level += 1,
                    b')' => level -= 1,
                    _ => {}
                }
                j += 1;
            }
            Some(j)
        }
        b'/' => Some(i + 1 + b[i + 1..].iter().take_while(|&&c| !is_delim(c)).count()),
        _ => {
            // a number, a keyword, or `n g R`
            let n = b[i..].iter().take_while(|&&c| !is_delim(c)).count();
            if n == 0 {
                return None;
            }
            if let (Some((_, a)), true) = (uint(b, i), c.is_ascii_digit())
                && let Some((_, g)) = uint(b, a)
            {
                let r = skip_ws(b, g);
                if b.get(r) == Some(&b'R') && b.get(r + 1).is_none_or(|&c| is_delim(c)) {
                    return Some(r + 1);
                }
            }
            Some(i + n)
        }
    }
}

/// The top-level integer values of `keys` in the dictionary starting at `i`, and the index after
/// the dictionary.
fn dict_ints<const N: usize>(b: &[u8], i: usize, keys: [&[u8]; N]) -> Option<([Option<usize>; N], usize)> {
    let mut j = skip_ws(b, i);
    if !b[j..].starts_with(b"<<") {
        return None;
    }
    j += 2;
    let mut out = [None; N];
    loop {
        j = skip_ws(b, j);
        if b[j..].starts_with(b">>") {
            return Some((out, j + 2));
        }
        if *b.get(j)? != b'/' {
            return None;
        }
        let key_end = skip_value(b, j, 0)?;
        let key = &b[j + 1..key_end];
        let value_end = skip_value(b, key_end, 0)?;
        if let Some(k) = keys.iter().position(|k| *k == key) {
            out[k] = uint(b, key_end).filter(|&(_, e)| e == value_end).map(|(v, _)| v);
        }
        j = value_end;
    }
}

/// A cross-reference section at `offset`: its kind, `/Prev`, `/XRefStm`.
fn section(b: &[u8], offset: usize) -> Result<(&'static str, Option<usize>, Option<usize>), String> {
    let at = skip_ws(b, offset);
    if b[at..].starts_with(b"xref") {
        // subsections of fixed-width entries, then `trailer`
        let mut i = at + 4;
        loop {
            i = skip_ws(b, i);
            if b[i..].starts_with(b"trailer") {
                break;
            }
            let (_, a) = uint(b, i).ok_or("交叉引用表格式错误 / malformed xref table")?;
            let (count, c) = uint(b, a).ok_or("交叉引用表格式错误 / malformed xref table")?;
            let mut j = c;
            for _ in 0..count {
                j = skip_ws(b, j);
                if j + 18 > b.len() || !b[j..j + 10].iter().all(u8::is_ascii_digit) {
                    return Err("交叉引用表条目错误 / malformed xref entry".into());
                }
                j += 18;
            }
            i = j;
        }
        let ([prev, stm], _) =
            dict_ints(b, i + 7, [b"Prev", b"XRefStm"]).ok_or("trailer 字典无法解析 / unreadable trailer")?;
        Ok((if stm.is_some() { "hybrid" } else { "table" }, prev, stm))
    } else {
        let (_, a) = uint(b, at).ok_or("不是交叉引用段 / not a cross-reference section")?;
        let (_, g) = uint(b, a).ok_or("不是交叉引用段 / not a cross-reference section")?;
        let o = skip_ws(b, g);
        if !b[o..].starts_with(b"obj") {
            return Err("不是交叉引用段 / not a cross-reference section".into());
        }
        let ([prev], _) = dict_ints(b, o + 3, [b"Prev"]).ok_or("交叉引用流字典无法解析 / unreadable xref stream")?;
        Ok(("stream", prev, None))
    }
}

/// Where the revision of the section at `offset` ends: the first `startxref` after it that names
/// it, then `%%EOF`. `(end, complete)`.
fn revision_end(b: &[u8], startxrefs: &[usize], offset: usize) -> Option<(usize, bool)> {
    let first = startxrefs.partition_point(|&p| p < offset);
    for &p in &startxrefs[first..] {
        let Some((n, after)) = uint(b, p + 9) else { continue };
        if n != offset {
            continue;
        }
        let e = skip_ws(b, after);
        if b[e..].starts_with(b"%%EOF") {
            let mut end = e + 5;
            if b[end..].starts_with(b"\r\n") {
                end += 2;
            } else if end < b.len() && (b[end] == b'\n' || b[end] == b'\r') {
                end += 1;
            }
            return Some((end, true));
        }
        return Some((after, false));
    }
    None
}

/// Read the revisions of `b`.
pub fn structure(b: &[u8]) -> Result<Structure, Unreadable> {
    let startxrefs: Vec<usize> = memfind_all(b, b"startxref");
    let Some(&last) = startxrefs.last() else {
        return Err(Unreadable("找不到 startxref，不是完整的 PDF / no startxref: not a complete PDF".into()));
    };
    let (newest, _) = uint(b, last + 9)
        .filter(|&(o, _)| o < b.len())
        .ok_or_else(|| Unreadable("startxref 的偏移量无效 / startxref points outside the file".into()))?;
    let mut problems = Vec::new();
    // follow /Prev from the newest section; a section without its own end joins the revision that
    // points at it (a linearized file's first-page section)
    // (section offsets, kind, where the revision ends and whether with %%EOF)
    type Group = (Vec<usize>, &'static str, Option<(usize, bool)>);
    let mut groups: Vec<Group> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut next = Some(newest);
    while let Some(off) = next {
        if !seen.insert(off) {
            problems.push(format!("交叉引用链循环（偏移 {off}）/ the /Prev chain loops at offset {off}"));
            break;
        }
        if seen.len() > MAX_SECTIONS {
            return Err(Unreadable(format!(
                "修订版本过多（超过 {MAX_SECTIONS}）/ more than {MAX_SECTIONS} cross-reference sections"
            )));
        }
        if off >= b.len() {
            problems.push(format!("/Prev 指向文件之外（{off}）/ /Prev points outside the file ({off})"));
            break;
        }
        let (kind, prev, stm) =
            section(b, off).map_err(|e| Unreadable(format!("{e}（偏移 {off} / at offset {off}）")))?;
        let end = revision_end(b, &startxrefs, off);
        match (end, groups.last_mut()) {
            (None, Some(g)) => {
                g.0.push(off);
            }
            (end, _) => groups.push((vec![off], kind, end)),
        }
        if let Some(s) = stm {
            groups.last_mut().expect("pushed").0.push(s);
        }
        next = prev;
    }
    groups.reverse();
    let mut revisions = Vec::new();
    let mut start = 0;
    for (offsets, kind, end) in groups {
        let Some((end, complete)) = end else {
            problems.push(format!(
                "交叉引用段（偏移 {}）没有对应的 startxref / the section at offset {} has no startxref of its own",
                offsets[0], offsets[0]
            ));
            continue;
        };
        if end <= start {
            problems.push(format!(
                "修订版本次序错乱（结束于 {end}）/ revisions out of order (one ends at {end}, before the previous)"
            ));
            continue;
        }
        if !complete {
            problems.push(format!(
                "第 {} 个修订版本缺少 %%EOF（不完整的增量更新）/ revision {} has no %%EOF (an incomplete incremental update)",
                revisions.len() + 1,
                revisions.len() + 1
            ));
        }
        if revisions.is_empty() && offsets.iter().any(|&o| o >= end) {
            // a linearized file's main section may lie after its first-page trailer: allowed
        } else if let Some(&o) = offsets.iter().find(|&&o| o < start || o >= end) {
            problems.push(format!(
                "交叉引用段（偏移 {o}）不在其修订版本内 / the section at offset {o} lies outside its revision"
            ));
        }
        revisions.push(Revision { start, end, xref_offsets: offsets, xref_kind: kind, complete });
        start = end;
    }
    let trailing_bytes = b[start.min(b.len())..].iter().filter(|&&c| !is_ws(c)).count();
    if trailing_bytes > 0 {
        problems.push(format!(
            "最后一个修订版本之后还有 {trailing_bytes} 字节不属于任何修订版本（文件被截断或追加了数据）/ {trailing_bytes} \
             bytes after the last revision belong to no revision (the file was cut or data appended)"
        ));
    }
    Ok(Structure { revisions, trailing_bytes, problems })
}

/// Every offset of `needle` in `hay`.
fn memfind_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = hay[i..].windows(needle.len()).position(|w| w == needle) {
        out.push(i + p);
        i += p + needle.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(base: &[u8], body: &str, eof: bool) -> Vec<u8> {
        let prev = *memfind_all(base, b"startxref").last().unwrap();
        let (prev, _) = uint(base, prev + 9).unwrap();
        let mut out = base.to_vec();
        let obj_at = out.len();
        out.extend_from_slice(format!("4 0 obj\n{body}\nendobj\n").as_bytes());
        let xref = out.len();
        out.extend_from_slice(
            format!(
                "xref\n4 1\n{obj_at:010} 00000 n \ntrailer\n<< /Size 5 /Root 1 0 R /Prev {prev} /Info << /Prev 7 >> >>\n\
                 startxref\n{xref}\n"
            )
            .as_bytes(),
        );
        if eof {
            out.extend_from_slice(b"%%EOF\n");
        }
        out
    }

    #[test]
    fn revisions_follow_prev_not_eof_markers() {
        let base = crate::blank_pdf(100, 100);
        let s = structure(&base).unwrap();
        assert_eq!(s.revisions.len(), 1);
        assert_eq!((s.revisions[0].start, s.revisions[0].end), (0, base.len()));
        assert!(s.problems.is_empty() && s.revisions[0].complete);

        let two = update(&base, "<< /A (%%EOF inside a string) >>", true);
        let s = structure(&two).unwrap();
        assert_eq!(s.revisions.iter().map(|r| r.end).collect::<Vec<_>>(), vec![base.len(), two.len()]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);

        // an update without %%EOF is still a revision, and reported
        let sneaky = update(&base, "<< /B 1 >>", false);
        let s = structure(&sneaky).unwrap();
        assert_eq!(s.revisions.len(), 2);
        assert!(!s.revisions[1].complete);
        assert!(s.problems.iter().any(|p| p.contains("%%EOF")), "{:?}", s.problems);

        // a cut inside the second revision: its bytes belong to no revision
        let cut = &two[..two.len() - 20];
        let s = structure(cut).unwrap();
        assert_eq!(s.revisions.len(), 1);
        assert!(s.trailing_bytes > 0 && !s.problems.is_empty());

        // white space and NUL padding at the end are not data
        let mut padded = base.clone();
        padded.extend_from_slice(b"\n\0\0 \r\n");
        assert!(structure(&padded).unwrap().problems.is_empty());
        // garbage is
        let mut garbage = base.clone();
        garbage.extend_from_slice(b"1 0 obj << >> endobj");
        assert_eq!(structure(&garbage).unwrap().trailing_bytes, 15);
    }

    #[test]
    fn broken_chains_are_reported_or_refused() {
        let base = crate::blank_pdf(100, 100);
        // startxref pointing at nothing sensible
        let mut bad = base.clone();
        bad.extend_from_slice(b"startxref\n5\n%%EOF\n");
        assert!(structure(&bad).is_err());
        // /Prev pointing at itself
        let xref = base.len();
        let mut looped = base.clone();
        looped.extend_from_slice(
            format!("xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 4 /Prev {xref} >>\nstartxref\n{xref}\n%%EOF\n")
                .as_bytes(),
        );
        let s = structure(&looped).unwrap();
        assert!(s.problems.iter().any(|p| p.contains("loops")), "{:?}", s.problems);
        assert!(structure(b"%PDF-1.7\nno xref").is_err());
    }

    #[test]
    fn dictionary_values_are_skipped_whole() {
        let d = b"<< /Info << /Prev 7 >> /ID [<ab> <cd>] /S (a \\) >> b) /Root 1 0 R /Prev 42 /XRefStm 9 >>";
        let (v, end) = dict_ints(d, 0, [b"Prev", b"XRefStm", b"Root"]).unwrap();
        assert_eq!(v, [Some(42), Some(9), None]);
        assert_eq!(end, d.len());
    }
}
