//! Verification of a signed PDF: one engine for the server (`POST /api/v1/verify/file`), the
//! evidence report and `medsign verify`.
//!
//! For each signature (and document timestamp):
//! 1. the revision it signs, from the cross-reference structure ([`crate::revisions`]): its
//!    `/ByteRange` must end exactly where a revision ends, and the gap must be exactly the
//!    `/Contents` string of its own signature dictionary, which must already be in that revision
//!    (no signature wrapping, no signature that covers bytes it does not live in);
//! 2. the CMS over the covered bytes ([`medsign_pki::cms::verify`]), or for a document timestamp
//!    the RFC 3161 token's imprint over them;
//! 3. what changed after it ([`crate::changes`]) against the DocMDP level in force when it was
//!    made; a change that is not allowed fails the signature and is named with object and page;
//! 4. long-term validation data: certificates, CRLs and OCSP responses in the `/DSS` are used to
//!    build chains and check revocation offline.
//!
//! Indications follow ETSI EN 319 102-1: `TOTAL_PASSED`, `INDETERMINATE` (trust or revocation
//! could not be established) or `TOTAL_FAILED` (the signature or the document is not what was
//! signed), with a sub-indication and, for PDF-level failures, a reason in words.

use crate::{
    Result,
    changes::{self, Change},
    invalid,
    revisions::{self, Structure},
};
use lopdf::{Dictionary, Document, Object, ObjectId};
use medsign_pki::cms::{self, CmsReport, Indication, TimestampReport, VerifyOptions};
use serde::Serialize;

/// More revisions than this are refused before any is parsed (each is parsed once).
pub const MAX_REVISIONS: usize = 64;
/// Each revision is parsed as the file up to its end: at most this many bytes in all.
pub const MAX_PARSED_BYTES: usize = 512 * 1024 * 1024;
/// More signatures than this are refused.
pub const MAX_SIGNATURES: usize = 256;

/// One signature or document timestamp of a verified PDF.
#[derive(Debug, Clone, Serialize)]
pub struct FileSignature {
    /// field name
    pub field: String,
    /// `signature` or `document_timestamp`
    pub kind: &'static str,
    /// `/SubFilter`
    pub sub_filter: String,
    /// the revision it signs (from 1)
    pub revision: usize,
    /// `/ByteRange`
    pub byte_range: [usize; 4],
    /// covers the whole file as it is
    pub whole_file: bool,
    /// later revisions that carry no signature or document timestamp
    pub unsigned_updates_after: usize,
    /// what it covers, in words (Chinese / English)
    pub covers: String,
    /// the DocMDP level (1–3) when this is the certification signature
    pub certification: Option<i64>,
    /// every change after it, allowed or not
    pub changes: Vec<Change>,
    /// `TOTAL_PASSED` | `INDETERMINATE` | `TOTAL_FAILED`
    pub indication: Indication,
    /// ETSI sub-indication when not passed
    pub sub_indication: Option<String>,
    /// why, in words (Chinese / English), when not passed
    pub reason: Option<String>,
    /// the CMS verification (integrity, signer, chain, revocation, timestamp); none for a
    /// document timestamp or an unreadable signature
    pub report: Option<CmsReport>,
    /// a document timestamp's verification
    pub timestamp: Option<TimestampReport>,
}

/// One revision of the file.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionInfo {
    /// bytes `start..end` of the file
    pub start: usize,
    /// one past its last byte
    pub end: usize,
    /// `table`, `stream`, `hybrid`
    pub xref: &'static str,
    /// ends with `%%EOF`
    pub complete: bool,
    /// the fields signed in it
    pub signatures: Vec<String>,
}

/// What the long-term validation data (`/DSS`) holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DssSummary {
    /// certificates
    pub certs: usize,
    /// CRLs
    pub crls: usize,
    /// OCSP responses
    pub ocsps: usize,
    /// per-signature VRI entries
    pub vri: usize,
}

/// The verification of a PDF.
#[derive(Debug, Clone, Serialize)]
pub struct PdfReport {
    /// worst of the signatures and the file's own problems
    pub indication: Indication,
    /// per signature and document timestamp, in signing order
    pub signatures: Vec<FileSignature>,
    /// the revisions, oldest first
    pub revisions: Vec<RevisionInfo>,
    /// problems of the file as a whole (Chinese / English)
    pub problems: Vec<String>,
    /// the long-term validation data, when there is any
    pub dss: Option<DssSummary>,
}

/// A signature as found in one revision's form.
pub(crate) struct Found {
    pub(crate) field: String,
    /// the object that holds the signature dictionary (the field itself when it is inline)
    pub(crate) holder: ObjectId,
    pub(crate) sig: Dictionary,
}

fn text(o: Option<&Object>) -> String {
    match o {
        Some(Object::String(s, _)) => decode_text(s),
        Some(Object::Name(n)) => String::from_utf8_lossy(n).into_owned(),
        _ => String::new(),
    }
}

/// A PDF text string: UTF-16BE with a byte-order mark, else taken as Latin-1 (PDFDocEncoding
/// agrees with it on the characters field names use).
pub(crate) fn decode_text(s: &[u8]) -> String {
    match s.strip_prefix(&[0xFE, 0xFF]) {
        Some(u) => {
            let units: Vec<u16> = u.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        None => s.iter().map(|&c| c as char).collect(),
    }
}

/// Every signature field with a value, through `/Kids`, bounded.
pub(crate) fn found_signatures(doc: &Document) -> Vec<Found> {
    let mut out = Vec::new();
    let Some(fields) = doc
        .catalog()
        .ok()
        .and_then(|c| c.get(b"AcroForm").ok())
        .and_then(|f| crate::resolve(doc, f).ok())
        .and_then(|f| f.as_dict().ok())
        .and_then(|d| d.get(b"Fields").ok())
        .and_then(|f| crate::resolve(doc, f).ok())
        .and_then(|f| f.as_array().ok())
    else {
        return out;
    };
    let mut stack: Vec<(Object, String, Option<Vec<u8>>, usize)> =
        fields.iter().rev().map(|f| (f.clone(), String::new(), None, 0)).collect();
    let mut seen = std::collections::HashSet::new();
    while let Some((f, prefix, inherited_ft, depth)) = stack.pop() {
        if depth > 16 || seen.len() > 100_000 {
            continue;
        }
        let Object::Reference(id) = f else { continue };
        if !seen.insert(id) {
            continue;
        }
        let Ok(d) = doc.get_dictionary(id) else { continue };
        let part = text(d.get(b"T").ok());
        let name = match (prefix.is_empty(), part.is_empty()) {
            (true, _) => part,
            (false, true) => prefix.clone(),
            (false, false) => format!("{prefix}.{part}"),
        };
        let ft = d.get(b"FT").ok().and_then(|t| t.as_name().ok()).map(<[u8]>::to_vec).or(inherited_ft);
        if let Ok(kids) = d.get(b"Kids").map(|k| crate::resolve(doc, k))
            && let Ok(Object::Array(kids)) = kids
        {
            stack.extend(kids.iter().rev().map(|k| (k.clone(), name.clone(), ft.clone(), depth + 1)));
        }
        if ft.as_deref() != Some(b"Sig") {
            continue;
        }
        let (holder, sig) = match d.get(b"V") {
            Ok(Object::Reference(v)) => match doc.get_dictionary(*v) {
                Ok(s) => (*v, s.clone()),
                Err(_) => continue,
            },
            Ok(Object::Dictionary(s)) => (id, s.clone()),
            _ => continue,
        };
        out.push(Found { field: name, holder, sig });
    }
    out
}

/// The byte range of a signature dictionary, if it is four sane integers.
pub(crate) fn byte_range(sig: &Dictionary) -> Option<[usize; 4]> {
    let v: Vec<usize> = sig
        .get(b"ByteRange")
        .ok()?
        .as_array()
        .ok()?
        .iter()
        .map(|x| x.as_i64().ok().and_then(|n| usize::try_from(n).ok()))
        .collect::<Option<_>>()?;
    (v.len() == 4).then(|| [v[0], v[1], v[2], v[3]])
}

/// The DocMDP level of a certified document (`/Perms /DocMDP`) and the certifying signature.
pub(crate) fn certification(doc: &Document) -> Option<(ObjectId, i64)> {
    let cat = doc.catalog().ok()?;
    let perms = crate::resolve(doc, cat.get(b"Perms").ok()?).ok()?.as_dict().ok()?;
    let id = perms.get(b"DocMDP").ok()?.as_reference().ok()?;
    let sig = doc.get_dictionary(id).ok()?;
    let reference = crate::resolve(doc, sig.get(b"Reference").ok()?).ok()?.as_array().ok()?;
    for r in reference {
        let r = crate::resolve(doc, r).ok()?.as_dict().ok()?;
        if r.get(b"TransformMethod").ok().and_then(|m| m.as_name().ok()) == Some(b"DocMDP") {
            let p = r
                .get(b"TransformParams")
                .ok()
                .and_then(|t| crate::resolve(doc, t).ok())
                .and_then(|t| t.as_dict().ok())
                .and_then(|t| t.get(b"P").ok())
                .and_then(|p| p.as_i64().ok())
                .unwrap_or(2);
            return Some((id, p.clamp(1, 3)));
        }
    }
    None
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The bytes of the hex string `<...>` at exactly `b[start..end]`.
pub(crate) fn hex_hole(b: &[u8], start: usize, end: usize) -> Option<Vec<u8>> {
    if end < start + 2 || b[start] != b'<' || b[end - 1] != b'>' {
        return None;
    }
    let digits: Vec<u8> = b[start + 1..end - 1].iter().filter(|c| !c.is_ascii_whitespace()).copied().collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits.chunks(2).map(|p| Some(hex_value(p[0])? << 4 | hex_value(p[1])?)).collect()
}

/// The CMS (zero padding cut) in the gap `b..c` and the bytes `0..b` + `c..c+d` it covers, when
/// the range lies in the file and the gap is a hex string.
pub(crate) fn signed_parts(bytes: &[u8], [a, b, c, d]: [usize; 4]) -> Option<(Vec<u8>, Vec<u8>)> {
    if a != 0 || b >= c || c.checked_add(d)? > bytes.len() {
        return None;
    }
    let mut raw = hex_hole(bytes, b, c)?;
    raw.truncate(crate::der_len(&raw).unwrap_or(raw.len()).min(raw.len()));
    let mut covered = bytes[..b].to_vec();
    covered.extend_from_slice(&bytes[c..c + d]);
    Some((raw, covered))
}

impl FileSignature {
    /// A signature as found, not judged yet.
    fn found(f: &Found) -> Self {
        let kind = match f.sig.get(b"Type").ok().and_then(|t| t.as_name().ok()) {
            Some(b"DocTimeStamp") => "document_timestamp",
            _ => "signature",
        };
        FileSignature {
            field: f.field.clone(),
            kind,
            sub_filter: text(f.sig.get(b"SubFilter").ok()),
            revision: 0,
            byte_range: byte_range(&f.sig).unwrap_or([0; 4]),
            whole_file: false,
            unsigned_updates_after: 0,
            covers: String::new(),
            certification: None,
            changes: vec![],
            indication: Indication::TotalPassed,
            sub_indication: None,
            reason: None,
            report: None,
            timestamp: None,
        }
    }
}

/// Where the indirect object `id` is written in `b` according to `doc`'s cross-reference data:
/// `offset..` up to its `endobj`.
fn object_span(doc: &Document, b: &[u8], id: ObjectId) -> Option<(usize, usize)> {
    match doc.reference_table.get(id.0)? {
        lopdf::xref::XrefEntry::Normal { offset, .. } => {
            let start = *offset as usize;
            let end = start + b.get(start..)?.windows(6).position(|w| w == b"endobj")?;
            Some((start, end))
        }
        _ => None,
    }
}

/// Long-term validation data from the `/DSS`.
fn dss(doc: &Document, opts: &mut VerifyOptions) -> Option<DssSummary> {
    let cat = doc.catalog().ok()?;
    let d = crate::resolve(doc, cat.get(b"DSS").ok()?).ok()?.as_dict().ok()?;
    let mut sum = DssSummary::default();
    let mut budget = crate::inflate::Budget::default();
    let mut streams = |key: &[u8]| -> Vec<Vec<u8>> {
        let arr = d.get(key).ok().and_then(|a| crate::resolve(doc, a).ok()).and_then(|a| a.as_array().ok());
        arr.into_iter()
            .flatten()
            .take(10_000)
            .filter_map(|s| crate::resolve(doc, s).ok()?.as_stream().ok())
            .filter_map(|s| crate::inflate::decode(s, &mut budget).ok())
            .collect()
    };
    for der in streams(b"Certs") {
        if let Ok(c) = medsign_pki::cert::Cert::from_der(&der) {
            opts.extra_certs.push(c);
            sum.certs += 1;
        }
    }
    for der in streams(b"CRLs") {
        if let Ok(c) = medsign_pki::crl::Crl::from_bytes(&der) {
            opts.crls.push(c);
            sum.crls += 1;
        }
    }
    for der in streams(b"OCSPs") {
        opts.ocsps.push(der);
        sum.ocsps += 1;
    }
    sum.vri = d
        .get(b"VRI")
        .ok()
        .and_then(|v| crate::resolve(doc, v).ok())
        .and_then(|v| v.as_dict().ok())
        .map_or(0, |v| v.len());
    Some(sum)
}

fn failed(s: &mut FileSignature, sub: &str, reason: String) {
    s.indication = Indication::TotalFailed;
    s.sub_indication = Some(sub.to_string());
    s.reason = Some(match s.reason.take() {
        Some(r) => format!("{r}；{reason}"),
        None => reason,
    });
}

/// Load one revision (the file up to its end) as it was written; a revision lopdf had to repair
/// is not taken as written.
fn load_revision(b: &[u8]) -> std::result::Result<Document, String> {
    let doc = crate::inflate::load_mem(b).map_err(|e| e.to_string())?;
    if let Some(r) = doc.xref_recovery {
        return Err(format!("交叉引用数据损坏（{r:?}）/ damaged cross-reference data ({r:?})"));
    }
    Ok(doc)
}

/// Verify every signature and document timestamp of a PDF. `Err` only when the file is not a
/// PDF, cannot be read at all, or has no signature.
pub fn verify(bytes: &[u8], opts: &VerifyOptions) -> Result<PdfReport> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(invalid("不是 PDF 文件（缺少 %PDF- 文件头）/ not a PDF file (no %PDF- header)"));
    }
    let Structure { revisions, trailing_bytes, mut problems } = match revisions::structure(bytes) {
        Ok(s) => s,
        Err(e) => return damaged(bytes, opts, e.0),
    };
    if revisions.is_empty() {
        return Err(invalid("找不到完整的修订版本 / no complete revision"));
    }
    if revisions.len() > MAX_REVISIONS {
        return Err(invalid(format!(
            "修订版本过多（{}，上限 {MAX_REVISIONS}）/ too many revisions ({}, at most {MAX_REVISIONS})",
            revisions.len(),
            revisions.len()
        )));
    }
    let parsed: usize = revisions.iter().map(|r| r.end).sum();
    if parsed > MAX_PARSED_BYTES {
        return Err(invalid(format!(
            "修订版本过多过大（需解析 {parsed} 字节）/ too many large revisions ({parsed} bytes to parse, at most {MAX_PARSED_BYTES})"
        )));
    }
    // the document at the end of each revision; `Err` for one that does not parse as written
    let states: Vec<std::result::Result<Document, String>> =
        revisions.iter().map(|r| load_revision(&bytes[..r.end])).collect();
    // the document as a reader shows it: the newest revision that parses (one that does not is
    // reported below and fails every signature before it)
    let Some(last) = states.iter().rposition(|s| s.is_ok()) else {
        let e = states.last().and_then(|s| s.as_ref().err()).cloned().unwrap_or_default();
        return damaged(bytes, opts, e);
    };
    let now = states[last].as_ref().expect("parses");
    // problems that make everything signed before them unreliable: (first revision affected, words)
    let mut later_problems: Vec<(usize, String)> = Vec::new();
    for (i, (r, s)) in revisions.iter().zip(&states).enumerate() {
        if let Err(e) = s {
            later_problems
                .push((i, format!("第 {} 个修订版本无法解析 / revision {} does not parse: {e}", i + 1, i + 1)));
        }
        if !r.complete {
            later_problems.push((
                i,
                format!("第 {} 个修订版本不完整（缺少 %%EOF）/ revision {} is incomplete (no %%EOF)", i + 1, i + 1),
            ));
        }
    }
    if trailing_bytes > 0 {
        later_problems.push((revisions.len(), format!(
            "最后一个修订版本之后有 {trailing_bytes} 字节不属于任何修订版本 / {trailing_bytes} bytes after the last revision belong to no revision"
        )));
    }

    let mut vopts = opts.clone();
    let dss_summary = dss(now, &mut vopts);
    // the signatures of the document as it is, and those of earlier revisions that are gone
    // from it now (a hidden or replaced form is a change, not a file without signatures)
    let mut found = found_signatures(now);
    for (i, st) in states.iter().enumerate().rev() {
        let Ok(d) = st else { continue };
        for f in found_signatures(d) {
            let br = byte_range(&f.sig);
            if br.is_none() || found.iter().any(|g| byte_range(&g.sig) == br) {
                continue;
            }
            let msg = format!(
                "第 {} 个修订版本中的签名 {} 已从文档中移除 / the signature {} of revision {} was removed from the document",
                i + 1,
                f.field,
                f.field,
                i + 1
            );
            problems.push(msg.clone());
            later_problems.push((i + 1, msg));
            found.push(f);
        }
        if found.len() > MAX_SIGNATURES {
            break;
        }
    }
    if found.is_empty() {
        return Err(invalid("该 PDF 没有签名 / the PDF has no signatures"));
    }
    if found.len() > MAX_SIGNATURES {
        return Err(invalid(format!("签名过多（上限 {MAX_SIGNATURES}）/ more than {MAX_SIGNATURES} signatures")));
    }

    let mut out: Vec<FileSignature> = Vec::new();
    let mut analysed: std::collections::HashMap<usize, Vec<Change>> = std::collections::HashMap::new();
    for f in found {
        let mut s = FileSignature::found(&f);
        let (kind, sub_filter) = (s.kind, s.sub_filter.clone());
        let Some(br) = byte_range(&f.sig) else {
            failed(&mut s, "FORMAT_FAILURE", format!("签名 {} 没有有效的 /ByteRange / no valid /ByteRange", f.field));
            s.covers = "无 / nothing".into();
            out.push(s);
            continue;
        };
        let [a, b, c, d] = br;
        let e = c.saturating_add(d);
        if a != 0 || b >= c || e > bytes.len() {
            failed(
                &mut s,
                "FORMAT_FAILURE",
                "/ByteRange 不从文件开头开始或越界 / the /ByteRange does not start at 0 or lies outside the file"
                    .into(),
            );
            s.covers = "无 / nothing".into();
            out.push(s);
            continue;
        }
        // the revision it signs
        let k = revisions
            .iter()
            .position(|r| r.start < e && e <= r.end && bytes[e..r.end].iter().all(|c| c.is_ascii_whitespace()));
        let Some(k) = k else {
            failed(
                &mut s,
                "FORMAT_FAILURE",
                "签名范围没有在某个修订版本的末尾结束 / the signed range does not end where a revision ends".into(),
            );
            s.covers = format!("文件的前 {e} 字节（不是完整的修订版本）/ the first {e} bytes (not a whole revision)");
            out.push(s);
            continue;
        };
        s.revision = k + 1;
        s.whole_file = e == bytes.len() || (k == last && bytes[e..].iter().all(|c| c.is_ascii_whitespace()));
        // the gap is this signature's own /Contents, inside its dictionary, in the signed revision
        let signed_state = match &states[k] {
            Ok(d) => d,
            Err(_) => {
                failed(
                    &mut s,
                    "FORMAT_FAILURE",
                    format!("所签的修订版本 {} 无法解析 / the signed revision {} does not parse", k + 1, k + 1),
                );
                out.push(s);
                continue;
            }
        };
        let parts = signed_parts(bytes, [a, b, c, e - c]);
        let span = object_span(signed_state, bytes, f.holder);
        // the holder must already be in the signed revision, naming the same range
        let in_revision = signed_state.get_dictionary(f.holder).ok().is_some_and(|d| {
            let own = if d.has(b"ByteRange") { Some(d) } else { d.get(b"V").ok().and_then(|v| v.as_dict().ok()) };
            own.and_then(byte_range) == Some(br)
        });
        let Some((der, covered)) = parts.filter(|_| in_revision && span.is_some_and(|(s0, s1)| s0 < b && c <= s1))
        else {
            failed(
                &mut s,
                "FORMAT_FAILURE",
                "签名值不在其签名字典中，或签名字典不在所签的修订版本内（签名包装攻击）/ the signed gap is not this \
                 signature's own /Contents inside the revision it signs (signature wrapping)"
                    .into(),
            );
            out.push(s);
            continue;
        };
        match (kind, sub_filter.as_str()) {
            ("document_timestamp", _) | (_, "ETSI.RFC3161") => {
                s.kind = "document_timestamp";
                let (t, _) = cms::verify_timestamp_token(&der, cms::Stamped::Data(&covered), &vopts);
                if !t.integrity.ok {
                    failed(&mut s, "HASH_FAILURE", t.integrity.detail.clone());
                } else if !t.chain.ok {
                    s.indication = Indication::Indeterminate;
                    s.sub_indication = Some("NO_CERTIFICATE_CHAIN_FOUND".into());
                    s.reason = Some(t.chain.detail.clone());
                }
                s.timestamp = Some(t);
            }
            (_, "adbe.pkcs7.sha1") => {
                failed(
                    &mut s,
                    "FORMAT_FAILURE",
                    "不支持 adbe.pkcs7.sha1（SHA-1 已不安全）/ adbe.pkcs7.sha1 is not supported (SHA-1 is broken)"
                        .into(),
                );
            }
            _ => match cms::verify(&der, Some(&covered), &vopts) {
                Ok(r) => {
                    s.indication = r.indication;
                    if let Some(first) = r.signers.iter().find(|x| x.indication == r.indication) {
                        s.sub_indication = first.sub_indication.clone();
                        if r.indication != Indication::TotalPassed {
                            s.reason = Some(
                                [&first.integrity, &first.chain, &first.revocation]
                                    .into_iter()
                                    .find(|c| !c.ok)
                                    .map(|c| c.detail.clone())
                                    .or_else(|| first.timestamp.as_ref().map(|t| t.chain.detail.clone()))
                                    .unwrap_or_default(),
                            );
                        }
                    }
                    s.report = Some(r);
                }
                Err(e) => failed(&mut s, "FORMAT_FAILURE", format!("签名无法解析 / the signature cannot be read: {e}")),
            },
        }
        // certification and what changed after it
        let cert = certification(signed_state);
        if cert.is_some_and(|(id, _)| id == f.holder) {
            s.certification = cert.map(|(_, p)| p);
        }
        if k < last {
            let changes =
                analysed.entry(k).or_insert_with(|| changes::analyse(signed_state, now, cert.map(|(_, p)| p))).clone();
            let bad: Vec<&Change> = changes.iter().filter(|c| !c.allowed).collect();
            if !bad.is_empty() {
                let list = bad
                    .iter()
                    .take(5)
                    .map(|c| match c.page {
                        Some(p) => {
                            format!("{}（对象 {}，第 {p} 页 / object {}, page {p}）", c.code, c.object, c.object)
                        }
                        None => format!("{}（对象 {} / object {}）", c.code, c.object, c.object),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                failed(
                    &mut s,
                    "FORMAT_FAILURE",
                    format!(
                        "签名后文件有不允许的修改 / the file was changed after signing in ways not allowed: {list}"
                    ),
                );
            }
            s.changes = changes;
        }
        for (at, p) in &later_problems {
            if *at > k || (*at == k && !revisions[k].complete) {
                failed(&mut s, "FORMAT_FAILURE", p.clone());
            }
        }
        out.push(s);
    }
    out.sort_by_key(|s| (s.revision, s.byte_range[2].saturating_add(s.byte_range[3])));
    // a certification must be the first signature
    if let Some(pos) = out.iter().position(|s| s.certification.is_some())
        && out[..pos].iter().any(|s| s.kind == "signature")
    {
        let msg =
            "认证签名（DocMDP）不是第一个签名 / the certification (DocMDP) signature is not the first".to_string();
        failed(&mut out[pos], "FORMAT_FAILURE", msg.clone());
        problems.push(msg);
    }
    let signed_revisions: Vec<usize> = out.iter().map(|s| s.revision).collect();
    for s in &mut out {
        s.unsigned_updates_after = (s.revision + 1..=revisions.len()).filter(|r| !signed_revisions.contains(r)).count();
        let allowed: Vec<&str> = {
            let mut v: Vec<&str> = s.changes.iter().filter(|c| c.allowed).map(|c| c.code).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        s.covers = if s.revision == 0 {
            s.covers.clone()
        } else if s.whole_file {
            "整个文件 / the whole file".into()
        } else if s.indication != Indication::TotalFailed || s.changes.iter().all(|c| c.allowed) {
            format!(
                "第 {} 个修订版本，其后仅有允许的修改（{}）/ revision {} and allowed changes after it ({})",
                s.revision,
                allowed.join(", "),
                s.revision,
                allowed.join(", ")
            )
        } else {
            format!(
                "第 {} 个修订版本；其后有不允许的修改 / revision {}; the changes after it are not allowed",
                s.revision, s.revision
            )
        };
    }
    // data after the last revision fails the file even where no signature precedes it
    let indication = if later_problems.iter().any(|(at, _)| *at >= revisions.len()) {
        Indication::TotalFailed
    } else {
        worst(out.iter().map(|s| s.indication))
    };
    let revisions = revisions
        .iter()
        .enumerate()
        .map(|(i, r)| RevisionInfo {
            start: r.start,
            end: r.end,
            xref: r.xref_kind,
            complete: r.complete,
            signatures: out.iter().filter(|s| s.revision == i + 1).map(|s| s.field.clone()).collect(),
        })
        .collect();
    Ok(PdfReport { indication, signatures: out, revisions, problems, dss: dss_summary })
}

/// A file whose revisions cannot be read as written (a changed byte in a cross-reference table,
/// say): the signatures a lenient reader still finds are checked over their byte ranges and all
/// fail with the reason — a damaged signed file is a changed one, not "no signature". `Err` only
/// when not even that finds a signature.
fn damaged(bytes: &[u8], opts: &VerifyOptions, why: String) -> Result<PdfReport> {
    let doc = crate::inflate::load_mem(bytes)
        .map_err(|e| invalid(format!("PDF 结构损坏，无法读取 / the PDF is damaged and cannot be read: {why}; {e}")))?;
    let found = found_signatures(&doc);
    if found.is_empty() {
        return Err(invalid(format!(
            "PDF 结构损坏，找不到签名 / the PDF is damaged and no signature can be found: {why}"
        )));
    }
    let problem = format!(
        "文件结构损坏，修订版本无法按原样读取 / the file's structure is damaged, its revisions cannot be read as written: {why}"
    );
    let mut out = Vec::new();
    for f in found.into_iter().take(MAX_SIGNATURES) {
        let mut s = FileSignature::found(&f);
        s.covers = "无法确定 / cannot be determined".into();
        if s.kind == "signature"
            && let Some((der, covered)) = signed_parts(bytes, s.byte_range)
            && let Ok(r) = cms::verify(&der, Some(&covered), opts)
        {
            if r.indication == Indication::TotalFailed {
                s.sub_indication = r.signers.first().and_then(|x| x.sub_indication.clone());
            }
            s.report = Some(r);
        }
        let sub = s.sub_indication.clone().unwrap_or_else(|| "FORMAT_FAILURE".into());
        failed(&mut s, &sub, problem.clone());
        out.push(s);
    }
    Ok(PdfReport {
        indication: Indication::TotalFailed,
        signatures: out,
        revisions: vec![],
        problems: vec![problem],
        dss: None,
    })
}

/// The worst of some indications (`TOTAL_PASSED` when there are none).
pub fn worst(it: impl Iterator<Item = Indication>) -> Indication {
    let mut w = Indication::TotalPassed;
    for i in it {
        match (w, i) {
            (_, Indication::TotalFailed) => w = Indication::TotalFailed,
            (Indication::TotalPassed, Indication::Indeterminate) => w = Indication::Indeterminate,
            _ => {}
        }
    }
    w
}
