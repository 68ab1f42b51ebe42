//! # medsign-pdf — PDF signatures
//!
//! Signing is two-phase, so this crate never holds a key and never waits for a network
//! (the phone's two-party signature plugs in through the same seam):
//! 1. [`prepare`] appends an incremental update to the untouched original — a signature field and
//!    widget (visible or not), the `/Sig` dictionary (`/SubFilter /ETSI.CAdES.detached`, PAdES) with
//!    a fixed-width `/ByteRange` and a reserved `/Contents` — and returns the bytes the CMS must
//!    cover ([`Prepared::covered`]);
//! 2. the caller makes a detached CMS over them (signingCertificateV2, no signingTime as PAdES
//!    requires, plus a signature timestamp for B-T) and [`Prepared::finish`] writes it into
//!    `/Contents`.
//!
//! Earlier signatures stay valid: their bytes are never touched. The update uses a classic
//! cross-reference section with `/Prev`.

#![forbid(unsafe_code)]

use chrono::{DateTime, Utc};
use lopdf::{Dictionary, Document, Object, ObjectId};

pub mod changes;
mod draw;
pub mod inflate;
pub mod ltv;
pub mod report;
pub mod revisions;
pub mod template;
mod text;
pub mod verify;
pub use draw::{
    Appearance, EMBEDDED_FONT, MAX_IMAGE_SIDE, SEAL_RED, appearance_pdf, image_size, missing_chars, normalize_image,
    round_seal_png, text_width, use_font_file,
};
pub use text::{Found, find_text, page_texts};

/// What can go wrong, in words a person understands (Chinese / English).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// not a PDF, broken, encrypted, or a placement that does not fit
    #[error("{0}")]
    Invalid(String),
    /// the signature does not fit the reserved space
    #[error("签名数据过大 / the signature ({0} bytes) does not fit the reserved space ({1} bytes)")]
    TooLarge(usize, usize),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

/// Where a visible signature goes: a page (from 1) and a rectangle in PDF points (x1, y1, x2, y2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// page number, from 1
    pub page: u32,
    /// lower-left x, lower-left y, upper-right x, upper-right y
    pub rect: [f64; 4],
}

/// Options of [`prepare`].
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// the field name (unique in the document)
    pub field_name: String,
    /// visible placement; `None`: invisible signature on page 1
    pub placement: Option<Placement>,
    /// what a visible signature shows: image (handwriting or seal) and text lines, drawn with the
    /// shipped CJK font
    pub appearance: Appearance,
    /// `/Name` of the signer
    pub name: Option<String>,
    /// `/Reason`
    pub reason: Option<String>,
    /// `/M`, the signing time claimed in the dictionary
    pub time: DateTime<Utc>,
    /// bytes reserved for the CMS (hex doubles it in the file)
    pub reserve: usize,
    /// make this the certification signature with DocMDP permissions P (1: no changes, 2: form
    /// filling and signing, 3: also annotations) — only as the document's first signature
    pub certify: Option<u8>,
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            field_name: "Signature1".into(),
            placement: None,
            appearance: Appearance::default(),
            name: None,
            reason: None,
            time: Utc::now(),
            reserve: 16 * 1024,
            certify: None,
        }
    }
}

/// A document with its signature space reserved.
#[derive(Debug, Clone)]
pub struct Prepared {
    bytes: Vec<u8>,
    /// offset of `<` of /Contents and of the byte after `>`
    hole: (usize, usize),
}

impl Prepared {
    /// The bytes the signature covers: everything but the `/Contents` value.
    pub fn covered(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.bytes.len());
        v.extend_from_slice(&self.bytes[..self.hole.0]);
        v.extend_from_slice(&self.bytes[self.hole.1..]);
        v
    }

    /// The prepared bytes and the `/Contents` hole, to keep while a signature is made elsewhere
    /// (a phone co-signs between two requests).
    pub fn into_parts(self) -> (Vec<u8>, (usize, usize)) {
        (self.bytes, self.hole)
    }

    /// Inverse of [`Prepared::into_parts`]; checks the hole is an empty `/Contents` value.
    pub fn from_parts(bytes: Vec<u8>, hole: (usize, usize)) -> Result<Self> {
        let (a, b) = hole;
        let ok = a + 2 <= b
            && b <= bytes.len()
            && bytes[a] == b'<'
            && bytes[b - 1] == b'>'
            && bytes[a + 1..b - 1].iter().all(|c| *c == b'0');
        if !ok {
            return Err(Error::Invalid("prepared document: no empty /Contents at the given offsets".into()));
        }
        Ok(Self { bytes, hole })
    }

    /// `/ByteRange` values.
    pub fn byte_range(&self) -> [usize; 4] {
        [0, self.hole.0, self.hole.1, self.bytes.len() - self.hole.1]
    }

    /// Write the CMS (DER) into `/Contents`.
    pub fn finish(mut self, cms: &[u8]) -> Result<Vec<u8>> {
        let room = (self.hole.1 - self.hole.0 - 2) / 2;
        if cms.len() > room {
            return Err(Error::TooLarge(cms.len(), room));
        }
        let hex = hex::encode_upper(cms);
        self.bytes[self.hole.0 + 1..self.hole.0 + 1 + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.bytes)
    }
}

/// Serialize a PDF object (strings as hex, names escaped).
fn write_obj(out: &mut Vec<u8>, o: &Object) {
    match o {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Object::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Object::Real(r) => {
            let s = format!("{r:.4}");
            out.extend_from_slice(s.trim_end_matches('0').trim_end_matches('.').as_bytes())
        }
        Object::Name(n) => write_name(out, n),
        Object::String(s, _) => {
            out.push(b'<');
            out.extend_from_slice(hex::encode_upper(s).as_bytes());
            out.push(b'>');
        }
        Object::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_obj(out, x);
            }
            out.push(b']');
        }
        Object::Dictionary(d) => write_dict(out, d),
        Object::Stream(s) => {
            let mut d = s.dict.clone();
            d.set("Length", Object::Integer(s.content.len() as i64));
            write_dict(out, &d);
            out.extend_from_slice(b"\nstream\n");
            out.extend_from_slice(&s.content);
            out.extend_from_slice(b"\nendstream");
        }
        Object::Reference((id, g)) => out.extend_from_slice(format!("{id} {g} R").as_bytes()),
    }
}

fn write_name(out: &mut Vec<u8>, n: &[u8]) {
    out.push(b'/');
    for &c in n {
        if c.is_ascii_alphanumeric() || b"-_.+".contains(&c) {
            out.push(c);
        } else {
            out.extend_from_slice(format!("#{c:02X}").as_bytes());
        }
    }
}

fn write_dict(out: &mut Vec<u8>, d: &Dictionary) {
    out.extend_from_slice(b"<<");
    for (k, v) in d.iter() {
        write_name(out, k);
        out.push(b' ');
        write_obj(out, v);
    }
    out.extend_from_slice(b">>");
}

/// The byte offset after the last `startxref` of a file.
fn last_startxref(b: &[u8]) -> Result<usize> {
    let pos = b
        .windows(9)
        .rposition(|w| w == b"startxref")
        .ok_or_else(|| invalid("找不到 startxref，不是完整的 PDF / no startxref: not a complete PDF"))?;
    let tail = String::from_utf8_lossy(&b[pos + 9..(pos + 40).min(b.len())]).into_owned();
    tail.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| invalid("startxref 后不是数字 / startxref is not followed by a number"))
}

fn pdf_date(t: DateTime<Utc>) -> String {
    t.format("D:%Y%m%d%H%M%SZ").to_string()
}

/// PDF text string: ASCII as is, otherwise UTF-16BE with a BOM.
fn text_string(s: &str) -> Object {
    if s.is_ascii() {
        Object::String(s.as_bytes().to_vec(), lopdf::StringFormat::Literal)
    } else {
        let mut v = vec![0xFE, 0xFF];
        for u in s.encode_utf16() {
            v.extend_from_slice(&u.to_be_bytes());
        }
        Object::String(v, lopdf::StringFormat::Hexadecimal)
    }
}

fn resolve<'a>(doc: &'a Document, o: &'a Object) -> Result<&'a Object> {
    match o {
        Object::Reference(id) => doc.get_object(*id).map_err(invalid),
        x => Ok(x),
    }
}

fn media_box(doc: &Document, page: ObjectId) -> Option<[f64; 4]> {
    let mut cur = Some(page);
    for _ in 0..32 {
        let d = doc.get_object(cur?).ok()?.as_dict().ok()?;
        if let Ok(mb) = d.get(b"MediaBox") {
            let arr = resolve(doc, mb).ok()?.as_array().ok()?;
            let n: Vec<f64> = arr
                .iter()
                .filter_map(|x| match resolve(doc, x).ok()? {
                    Object::Integer(i) => Some(*i as f64),
                    Object::Real(r) => Some(*r as f64),
                    _ => None,
                })
                .collect();
            return (n.len() == 4).then(|| [n[0], n[1], n[2], n[3]]);
        }
        cur = d.get(b"Parent").ok().and_then(|p| p.as_reference().ok());
    }
    None
}

/// The DocMDP permissions (P) of a certified document.
fn docmdp_permissions(doc: &Document) -> Option<i64> {
    verify::certification(doc).map(|(_, p)| p)
}

/// An unsigned signature field placed in advance.
struct EmptyField {
    id: ObjectId,
    dict: Dictionary,
    page: u32,
    rect: [f64; 4],
}

/// The AcroForm's top-level fields: their object id (`None` for a field written inline) and
/// dictionary.
fn form_fields(doc: &Document) -> Vec<(Option<ObjectId>, &Dictionary)> {
    let fields = doc
        .catalog()
        .ok()
        .and_then(|c| c.get(b"AcroForm").ok())
        .and_then(|f| resolve(doc, f).ok())
        .and_then(|f| f.as_dict().ok())
        .and_then(|d| d.get(b"Fields").ok())
        .and_then(|f| resolve(doc, f).ok())
        .and_then(|f| f.as_array().ok());
    fields
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f.as_reference().ok(), resolve(doc, f).ok()?.as_dict().ok()?)))
        .collect()
}

fn field_name(d: &Dictionary) -> Option<&[u8]> {
    d.get(b"T").ok().and_then(|t| t.as_str().ok())
}

fn is_signature_field(d: &Dictionary) -> bool {
    d.get(b"FT").ok().and_then(|t| t.as_name().ok()) == Some(b"Sig".as_slice())
}

/// The signature field named `name`, if the document has one: `None` when there is none, an
/// error when it is signed already or is not a signature field we can sign in place.
fn signature_field(doc: &Document, name: &str) -> Result<Option<EmptyField>> {
    for (id, d) in form_fields(doc) {
        if field_name(d) != Some(name.as_bytes()) {
            continue;
        }
        let Some(id) = id.filter(|_| is_signature_field(d) && !d.has(b"Kids")) else {
            return Err(invalid(format!(
                "字段 {name} 不是签名域 / the field {name} is not a (single-widget) signature field"
            )));
        };
        if d.has(b"V") {
            return Err(invalid(format!("签名域 {name} 已经签过 / the signature field {name} is signed already")));
        }
        let rect: Vec<f64> = d
            .get(b"Rect")
            .ok()
            .and_then(|r| resolve(doc, r).ok())
            .and_then(|r| r.as_array().ok())
            .map(|a| a.iter().filter_map(|x| x.as_float().ok().map(f64::from)).collect())
            .unwrap_or_default();
        let page_ref = d.get(b"P").ok().and_then(|p| p.as_reference().ok());
        let page = doc.get_pages().into_iter().find(|(_, pid)| Some(*pid) == page_ref).map(|(n, _)| n).unwrap_or(1);
        let rect = if rect.len() == 4 {
            [rect[0].min(rect[2]), rect[1].min(rect[3]), rect[0].max(rect[2]), rect[1].max(rect[3])]
        } else {
            [0.0; 4]
        };
        return Ok(Some(EmptyField { id, dict: d.clone(), page, rect }));
    }
    Ok(None)
}

/// Names of the document's signature fields that are not signed yet (placed in advance).
pub fn empty_signature_fields(bytes: &[u8]) -> Result<Vec<String>> {
    let doc = load(bytes)?;
    Ok(form_fields(&doc)
        .into_iter()
        .filter(|(_, d)| is_signature_field(d) && !d.has(b"V"))
        .filter_map(|(_, d)| Some(String::from_utf8_lossy(field_name(d)?).into_owned()))
        .collect())
}

/// Check that `bytes` is a PDF we can sign: parseable, not encrypted, with pages.
pub fn load(bytes: &[u8]) -> Result<Document> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(invalid("不是 PDF 文件（缺少 %PDF- 文件头）/ not a PDF file (no %PDF- header)"));
    }
    let doc = inflate::load_mem(bytes)
        .map_err(|e| invalid(format!("PDF 结构损坏，无法读取 / the PDF is damaged and cannot be read: {e}")))?;
    if doc.is_encrypted() || doc.trailer.has(b"Encrypt") {
        return Err(invalid("PDF 已加密，不能签署 / the PDF is encrypted and cannot be signed"));
    }
    let pages = doc.get_pages().len();
    if pages == 0 || pages > 10_000 {
        return Err(invalid(format!("页数异常（{pages}）/ absurd page count ({pages})")));
    }
    Ok(doc)
}

/// Append the signature field, widget, appearance and `/Sig` with its reserved space.
pub fn prepare(original: &[u8], opts: &SignOptions) -> Result<Prepared> {
    prepare_as(original, opts, false)
}

/// [`prepare`], or with `doc_timestamp` a document timestamp's field and `/DocTimeStamp`
/// dictionary (`/SubFilter /ETSI.RFC3161`, no `/M`, `/Name`, `/Reason`: the token says it all).
pub(crate) fn prepare_as(original: &[u8], opts: &SignOptions, doc_timestamp: bool) -> Result<Prepared> {
    let doc = load(original)?;
    let pages = doc.get_pages();
    if opts.field_name.is_empty() || !opts.field_name.is_ascii() {
        return Err(invalid("字段名须为 ASCII / the field name must be ASCII"));
    }
    // a signature field placed in advance (a template's signature box) is signed where it is
    let existing = signature_field(&doc, &opts.field_name)?;
    let placement = match (&existing, opts.placement) {
        (Some(f), _) => Some(Placement { page: f.page, rect: f.rect }),
        (None, p) => p,
    };
    let visible = placement.is_some_and(|p| p.rect[2] > p.rect[0] && p.rect[3] > p.rect[1]);
    let placement = placement.unwrap_or(Placement { page: 1, rect: [0.0; 4] });
    let page_id = *pages.get(&placement.page).ok_or_else(|| {
        invalid(format!(
            "没有第 {} 页（共 {} 页）/ no page {} (the document has {})",
            placement.page,
            pages.len(),
            placement.page,
            pages.len()
        ))
    })?;
    let [x1, y1, x2, y2] = placement.rect;
    if opts.placement.is_some() && existing.is_none() {
        let mb = media_box(&doc, page_id).unwrap_or([0.0, 0.0, 595.0, 842.0]);
        if !(x2 > x1 && y2 > y1 && x1 >= mb[0] && y1 >= mb[1] && x2 <= mb[2] && y2 <= mb[3]) {
            return Err(invalid(format!(
                "签名位置超出页面 / the signature rectangle [{x1} {y1} {x2} {y2}] is not inside page {} [{} {} {} {}]",
                placement.page, mb[0], mb[1], mb[2], mb[3]
            )));
        }
    }
    if let Some(p) = opts.certify {
        if !(1..=3).contains(&p) {
            return Err(invalid("DocMDP 权限须为 1、2 或 3 / DocMDP permissions must be 1, 2 or 3"));
        }
        if !signatures(original)?.is_empty() {
            return Err(invalid(
                "文档已有签名，不能再做认证签名（DocMDP 只能是第一个签名）/ the document is signed already: a certification (DocMDP) signature must be the first",
            ));
        }
    }
    // DSS and document timestamps are allowed even then (PAdES, ISO 32000-2 12.8.2.2)
    if docmdp_permissions(&doc) == Some(1) && !doc_timestamp {
        return Err(invalid(
            "文档已被认证签名锁定（DocMDP P=1），不允许任何修改 / the document is certified with no changes allowed (DocMDP P=1)",
        ));
    }
    let root_id =
        doc.trailer.get(b"Root").and_then(|r| r.as_reference()).map_err(|_| invalid("trailer has no /Root"))?;
    let mut catalog = doc.get_object(root_id).and_then(|o| o.as_dict()).map_err(invalid)?.clone();
    let mut next = doc.max_id + 1;
    let mut alloc = || {
        let id = (next, 0u16);
        next += 1;
        id
    };
    let sig_id = alloc();
    let widget_id = existing.as_ref().map(|f| f.id).unwrap_or_else(&mut alloc);
    let mut objects: Vec<(ObjectId, Vec<u8>)> = Vec::new();
    let push = |objects: &mut Vec<(ObjectId, Vec<u8>)>, id: ObjectId, o: &Object| {
        let mut body = Vec::new();
        write_obj(&mut body, o);
        objects.push((id, body));
    };

    // appearance: drawn by krilla (CJK text, images), brought in as a Form XObject
    let ap_id = if visible {
        let drawn = draw::appearance_doc(&opts.appearance, (x2 - x1) as f32, (y2 - y1) as f32)?;
        let (form, objs) = draw::page_as_form(&drawn, &mut alloc)?;
        for (id, o) in &objs {
            push(&mut objects, *id, o);
        }
        Some(form)
    } else {
        None
    };

    // widget + field (merged), new or the existing empty field
    let mut widget = match &existing {
        Some(f) => f.dict.clone(),
        None => {
            let mut w = Dictionary::new();
            w.set("Type", Object::Name(b"Annot".to_vec()));
            w.set("Subtype", Object::Name(b"Widget".to_vec()));
            w.set("FT", Object::Name(b"Sig".to_vec()));
            w.set("T", Object::String(opts.field_name.as_bytes().to_vec(), lopdf::StringFormat::Literal));
            w.set("F", Object::Integer(132)); // Print + Locked
            w.set("P", Object::Reference(page_id));
            w.set(
                "Rect",
                Object::Array(vec![
                    Object::Real(x1 as f32),
                    Object::Real(y1 as f32),
                    Object::Real(x2 as f32),
                    Object::Real(y2 as f32),
                ]),
            );
            w
        }
    };
    widget.set("V", Object::Reference(sig_id));
    if let Some(ap) = ap_id {
        let mut apd = Dictionary::new();
        apd.set("N", Object::Reference(ap));
        widget.set("AP", Object::Dictionary(apd));
    }
    push(&mut objects, widget_id, &Object::Dictionary(widget));

    let (form_id, mut form) = match catalog.get(b"AcroForm").ok().cloned() {
        Some(Object::Reference(id)) => (id, doc.get_object(id).and_then(|o| o.as_dict()).map_err(invalid)?.clone()),
        Some(Object::Dictionary(d)) => (alloc(), d),
        _ => (alloc(), Dictionary::new()),
    };
    if existing.is_none() {
        // page: add the widget to /Annots (rewriting the array object when /Annots is a reference)
        let mut page = doc.get_object(page_id).and_then(|o| o.as_dict()).map_err(invalid)?.clone();
        match page.get(b"Annots").ok().cloned() {
            Some(Object::Reference(arr_id)) => {
                let mut arr = doc.get_object(arr_id).and_then(|o| o.as_array()).map_err(invalid)?.clone();
                arr.push(Object::Reference(widget_id));
                push(&mut objects, arr_id, &Object::Array(arr));
            }
            Some(Object::Array(mut arr)) => {
                arr.push(Object::Reference(widget_id));
                page.set("Annots", Object::Array(arr));
            }
            _ => page.set("Annots", Object::Array(vec![Object::Reference(widget_id)])),
        }
        push(&mut objects, page_id, &Object::Dictionary(page));
        // AcroForm: append the field
        let mut fields = match form.get(b"Fields").ok() {
            Some(f) => resolve(&doc, f)?.as_array().map_err(invalid)?.clone(),
            None => vec![],
        };
        // (a field of the same name was found, or refused, by signature_field above)
        fields.push(Object::Reference(widget_id));
        form.set("Fields", Object::Array(fields));
    }
    // SigFlags 3: signatures exist, append only
    if form.get(b"SigFlags").ok().and_then(|f| f.as_i64().ok()) != Some(3) || existing.is_none() {
        form.set("SigFlags", Object::Integer(3));
        push(&mut objects, form_id, &Object::Dictionary(form));
    }
    let mut catalog_changed = false;
    if opts.certify.is_some() {
        let mut perms = Dictionary::new();
        perms.set("DocMDP", Object::Reference(sig_id));
        catalog.set("Perms", Object::Dictionary(perms));
        catalog_changed = true;
    }
    if catalog_changed || catalog.get(b"AcroForm").ok().and_then(|o| o.as_reference().ok()) != Some(form_id) {
        catalog.set("AcroForm", Object::Reference(form_id));
        push(&mut objects, root_id, &Object::Dictionary(catalog));
    }

    // the signature dictionary, written by hand for the fixed-width placeholders
    let mut sig = String::from(if doc_timestamp {
        "<</Type/DocTimeStamp/Filter/Adobe.PPKLite/SubFilter/ETSI.RFC3161"
    } else {
        "<</Type/Sig/Filter/Adobe.PPKLite/SubFilter/ETSI.CAdES.detached"
    });
    sig.push_str("/ByteRange[0 0000000000 0000000000 0000000000]");
    sig.push_str("/Contents<");
    let contents_at = sig.len() - 1;
    sig.push_str(&"0".repeat(opts.reserve * 2));
    sig.push('>');
    if let Some(p) = opts.certify {
        sig.push_str(&format!(
            "/Reference[<</Type/SigRef/TransformMethod/DocMDP/TransformParams<</Type/TransformParams/P {p}/V/1.2>>>>]"
        ));
    }
    let mut tail = Vec::new();
    if !doc_timestamp {
        write_name(&mut tail, b"M");
        write_obj(&mut tail, &text_string(&pdf_date(opts.time)));
        if let Some(n) = &opts.name {
            write_name(&mut tail, b"Name");
            write_obj(&mut tail, &text_string(n));
        }
        if let Some(r) = &opts.reason {
            write_name(&mut tail, b"Reason");
            write_obj(&mut tail, &text_string(r));
        }
    }
    let mut sig_body = sig.into_bytes();
    sig_body.extend_from_slice(&tail);
    sig_body.extend_from_slice(b">>");

    // assemble: original, then the objects (the signature first), then xref + trailer
    objects.insert(0, (sig_id, sig_body));
    let (mut out, at) = append_update(original, &doc, root_id, &objects, next)?;
    let sig_body_at = at[0];

    // the hole and the byte range
    let hole_start = sig_body_at + contents_at;
    let hole_end = hole_start + opts.reserve * 2 + 2;
    let br = format!("{:010} {:010} {:010}", hole_start, hole_end, out.len() - hole_end);
    let br_at =
        sig_body_at + out[sig_body_at..].windows(10).position(|w| w == b"ByteRange[").expect("placeholder") + 12;
    out[br_at..br_at + br.len()].copy_from_slice(br.as_bytes());
    Ok(Prepared { bytes: out, hole: (hole_start, hole_end) })
}

/// Append an incremental update to `original` (parsed as `doc`): the objects (id, serialized
/// body), then a classic cross-reference section and a trailer with `/Prev`; `size` is the
/// trailer's `/Size`. Returns the new file and where each object's body starts.
pub(crate) fn append_update(
    original: &[u8],
    doc: &Document,
    root_id: ObjectId,
    objects: &[(ObjectId, Vec<u8>)],
    size: u32,
) -> Result<(Vec<u8>, Vec<usize>)> {
    let mut out = original.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let mut offsets: Vec<(u32, usize)> = Vec::new();
    let mut bodies = Vec::with_capacity(objects.len());
    for (id, body) in objects {
        offsets.push((id.0, out.len()));
        out.extend_from_slice(format!("{} {} obj\n", id.0, id.1).as_bytes());
        bodies.push(out.len());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    offsets.sort();
    let xref_at = out.len();
    out.extend_from_slice(b"xref\n");
    // one subsection per run of consecutive ids
    let mut i = 0;
    while i < offsets.len() {
        let mut j = i;
        while j + 1 < offsets.len() && offsets[j + 1].0 == offsets[j].0 + 1 {
            j += 1;
        }
        out.extend_from_slice(format!("{} {}\n", offsets[i].0, j - i + 1).as_bytes());
        for (_, off) in &offsets[i..=j] {
            out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
        }
        i = j + 1;
    }
    let mut trailer = Dictionary::new();
    trailer.set("Size", Object::Integer(size as i64));
    trailer.set("Root", Object::Reference(root_id));
    if let Ok(info) = doc.trailer.get(b"Info") {
        trailer.set("Info", info.clone());
    }
    if let Ok(id) = doc.trailer.get(b"ID") {
        trailer.set("ID", id.clone());
    }
    trailer.set("Prev", Object::Integer(last_startxref(original)? as i64));
    out.extend_from_slice(b"trailer\n");
    write_dict(&mut out, &trailer);
    out.extend_from_slice(format!("\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    Ok((out, bodies))
}

/// One signature found in a PDF, with what it covers.
#[derive(Debug, Clone)]
pub struct FoundSignature {
    /// field name
    pub field: String,
    /// `/SubFilter`
    pub sub_filter: String,
    /// `/ByteRange`
    pub byte_range: [usize; 4],
    /// the CMS (DER, the zero padding removed)
    pub cms: Vec<u8>,
    /// the bytes the signature covers
    pub covered: Vec<u8>,
    /// the signature covers the whole file as it is now
    pub whole_file: bool,
    /// revisions appended after this signature that are not themselves a later signature's
    /// revision (0 = only later signatures, or none)
    pub unsigned_updates_after: usize,
}

/// DER length of a TLV at the start of `b` (to cut the zero padding of `/Contents`).
pub(crate) fn der_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    if first & 0x80 == 0 {
        return Some(2 + first as usize);
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let len = b.get(2..2 + n)?.iter().fold(0usize, |a, &x| (a << 8) | x as usize);
    Some(2 + n + len)
}

/// Every signature of a PDF (signature fields with a value, through `/Kids`), in signing order,
/// with the bytes each covers. This only reads; [`verify::verify`] judges.
pub fn signatures(bytes: &[u8]) -> Result<Vec<FoundSignature>> {
    let doc = load(bytes)?;
    // a file whose cross-reference offsets are off (lopdf repairs them, and signing appends to it)
    // still lists its signatures; only the verifier insists on the structure as written
    let ends: Vec<usize> =
        revisions::structure(bytes).map(|s| s.revisions.iter().map(|r| r.end).collect()).unwrap_or_default();
    let mut out = Vec::new();
    for f in verify::found_signatures(&doc) {
        let field = f.field;
        let [a, b, c, d] = verify::byte_range(&f.sig)
            .ok_or_else(|| invalid(format!("签名 {field} 的 /ByteRange 无效 / invalid /ByteRange")))?;
        if a != 0 || b >= c || c.checked_add(d).is_none_or(|e| e > bytes.len()) {
            return Err(invalid(format!("签名 {field} 的 /ByteRange 越界 / /ByteRange out of the file")));
        }
        let (cms, covered) = verify::signed_parts(bytes, [a, b, c, d]).ok_or_else(|| invalid("no /Contents"))?;
        let sub_filter = f
            .sig
            .get(b"SubFilter")
            .ok()
            .and_then(|x| x.as_name().ok())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        out.push(FoundSignature {
            field,
            sub_filter,
            byte_range: [a, b, c, d],
            cms,
            covered,
            whole_file: c + d == bytes.len(),
            unsigned_updates_after: 0,
        });
    }
    // revisions after each signature that no later signature accounts for
    let signed_ends: Vec<usize> = out.iter().map(|s| s.byte_range[2] + s.byte_range[3]).collect();
    for s in &mut out {
        let mine = s.byte_range[2] + s.byte_range[3];
        s.unsigned_updates_after = ends.iter().filter(|&&e| e > mine && !signed_ends.contains(&e)).count();
    }
    out.sort_by_key(|s| s.byte_range[2] + s.byte_range[3]);
    Ok(out)
}

/// A blank one-page PDF of `width` × `height` points (A4 is 595 × 842), classic cross-reference
/// table: the base of page-size templates, and the document tests sign.
pub fn blank_pdf(width: u32, height: u32) -> Vec<u8> {
    let page = format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] >>");
    let objs: [&[u8]; 3] =
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page.as_bytes()];
    let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests;
