//! Where text is on a page, for placing a signature next to a keyword (R7.4.7: "医师签名：").
//!
//! A small content-stream interpreter: the text state (`Tf Tm Td TD T* TL Tc Tw Tz TJ Tj ' "`),
//! the graphics state (`cm q Q`) and Form XObjects (`Do`, with their `/Matrix`). Characters come
//! from the font's `/ToUnicode` map (two-byte codes for Type0 fonts), or Latin-1 for simple fonts
//! without one; advances from `/Widths` or `/W` (`/DW`, else 1000). Good enough to find a label in
//! a hospital form, not a layout engine: rotated or clipped text is placed by its origin only.

use crate::inflate::{Budget, decode, page_content};
use crate::{Error, Result, invalid, resolve};
use lopdf::{Dictionary, Document, Object, ObjectId, content::Content};
use std::collections::HashMap;

/// A character placed on the page (PDF user space of the page).
#[derive(Debug, Clone, Copy)]
struct Glyph {
    ch: char,
    x: f64,
    y: f64,
    advance: f64,
    size: f64,
}

/// Where a keyword was found: page (from 1) and its box `[x1, y1, x2, y2]` (y1 = baseline −
/// descent, y2 = baseline + ascent, roughly).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// page, from 1
    pub page: u32,
    /// the keyword's box in points
    pub rect: [f64; 4],
}

struct FontInfo {
    two_byte: bool,
    to_unicode: HashMap<u32, String>,
    widths: HashMap<u32, f64>,
    default_width: f64,
}

type Matrix = [f64; 6];

fn mul(a: &Matrix, b: &Matrix) -> Matrix {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]
}

const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

fn num(o: &Object) -> f64 {
    match o {
        Object::Integer(i) => *i as f64,
        Object::Real(r) => f64::from(*r),
        _ => 0.0,
    }
}

fn dict<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Dictionary> {
    match resolve(doc, o).ok()? {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

/// Code-to-text and code-to-width entries made at most per font: a hostile `/ToUnicode` or `/W`
/// of many wide ranges would otherwise take gigabytes (each range may span 65536 codes).
const MAX_FONT_ENTRIES: usize = 1 << 18;

fn parse_cmap(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    let mut made = 0usize;
    let hex = |s: &str| u32::from_str_radix(s.trim_matches(|c| c == '<' || c == '>'), 16).ok();
    let utf16 = |s: &str| {
        let h = s.trim_matches(|c| c == '<' || c == '>');
        let units: Vec<u16> =
            (0..h.len() / 4).filter_map(|i| u16::from_str_radix(h.get(i * 4..i * 4 + 4)?, 16).ok()).collect();
        String::from_utf16_lossy(&units)
    };
    let mut rest = text;
    while let Some(i) = rest.find("beginbf") {
        rest = &rest[i..];
        let is_range = rest.starts_with("beginbfrange");
        let end = rest.find(if is_range { "endbfrange" } else { "endbfchar" }).unwrap_or(rest.len());
        let body = &rest[rest.find('\n').unwrap_or(0)..end];
        let toks: Vec<&str> = body
            .split(|c: char| c.is_whitespace())
            .flat_map(|t| t.split_inclusive('>'))
            .flat_map(|t| t.split_inclusive(']'))
            .map(|t| t.trim_start_matches('['))
            .filter(|t| !t.is_empty() && *t != "]")
            .collect();
        if is_range {
            let mut i = 0;
            while i + 2 < toks.len() {
                let (Some(lo), Some(hi)) = (hex(toks[i]), hex(toks[i + 1])) else { break };
                let dst = toks[i + 2];
                let array = body.split(toks[i + 1]).nth(1).is_some_and(|t| t.trim_start().starts_with('['));
                if array {
                    for (k, code) in (lo..=hi.min(lo.saturating_add(0xFFFF))).enumerate() {
                        made += 1;
                        if made > MAX_FONT_ENTRIES {
                            return map;
                        }
                        if let Some(d) = toks.get(i + 2 + k) {
                            map.insert(code, utf16(d.trim_end_matches(']')));
                        }
                    }
                    i += 3 + hi.saturating_sub(lo) as usize;
                } else {
                    let base = utf16(dst);
                    let mut units: Vec<u16> = base.encode_utf16().collect();
                    for code in lo..=hi.min(lo.saturating_add(0xFFFF)) {
                        made += 1;
                        if made > MAX_FONT_ENTRIES {
                            return map;
                        }
                        map.insert(code, String::from_utf16_lossy(&units));
                        if let Some(last) = units.last_mut() {
                            *last = last.wrapping_add(1);
                        }
                    }
                    i += 3;
                }
            }
        } else {
            for pair in toks.chunks(2) {
                if let [src, dst] = pair
                    && let Some(code) = hex(src)
                {
                    map.insert(code, utf16(dst));
                }
            }
        }
        rest = &rest[end..];
        if rest.len() <= 10 {
            break;
        }
        rest = &rest[10..];
    }
    map
}

fn font_info(doc: &Document, font: &Dictionary, budget: &mut Budget) -> Result<FontInfo> {
    let two_byte = font.get(b"Subtype").ok().and_then(|s| s.as_name().ok()) == Some(b"Type0".as_slice());
    let to_unicode =
        match font.get(b"ToUnicode").ok().and_then(|t| resolve(doc, t).ok()).and_then(|t| t.as_stream().ok()) {
            Some(s) => parse_cmap(&String::from_utf8_lossy(&decode(s, budget)?)),
            None => HashMap::new(),
        };
    let mut widths = HashMap::new();
    let mut default_width = 1000.0;
    if two_byte {
        let desc = font
            .get(b"DescendantFonts")
            .ok()
            .and_then(|d| resolve(doc, d).ok())
            .and_then(|d| d.as_array().ok())
            .and_then(|a| a.first())
            .and_then(|d| dict(doc, d));
        if let Some(d) = desc {
            default_width = d.get(b"DW").map(num).unwrap_or(1000.0);
            if let Some(w) = d.get(b"W").ok().and_then(|w| resolve(doc, w).ok()).and_then(|w| w.as_array().ok()) {
                let (mut i, mut made) = (0, 0usize);
                while i < w.len() && made < MAX_FONT_ENTRIES {
                    let first = num(&w[i]) as u32;
                    match w.get(i + 1).and_then(|x| resolve(doc, x).ok()) {
                        Some(Object::Array(list)) => {
                            for (k, v) in list.iter().enumerate().take(MAX_FONT_ENTRIES.saturating_sub(made)) {
                                widths.insert(first.saturating_add(k as u32), num(v));
                                made += 1;
                            }
                            i += 2;
                        }
                        Some(last) => {
                            let (last, wv) = (num(last) as u32, w.get(i + 2).map(num).unwrap_or(default_width));
                            for c in (first..=last.min(first.saturating_add(0xFFFF)))
                                .take(MAX_FONT_ENTRIES.saturating_sub(made))
                            {
                                widths.insert(c, wv);
                                made += 1;
                            }
                            i += 3;
                        }
                        None => break,
                    }
                }
            }
        }
    } else {
        let first = font.get(b"FirstChar").map(num).unwrap_or(0.0) as u32;
        if let Some(w) = font.get(b"Widths").ok().and_then(|w| resolve(doc, w).ok()).and_then(|w| w.as_array().ok()) {
            for (k, v) in w.iter().enumerate().take(MAX_FONT_ENTRIES) {
                widths.insert(first.saturating_add(k as u32), num(resolve(doc, v).unwrap_or(v)));
            }
        }
        default_width = 500.0;
    }
    Ok(FontInfo { two_byte, to_unicode, widths, default_width })
}

struct State {
    ctm: Matrix,
    font: Option<std::rc::Rc<FontInfo>>,
    size: f64,
    char_spacing: f64,
    word_spacing: f64,
    scale: f64,
    leading: f64,
}

impl Clone for State {
    fn clone(&self) -> Self {
        State {
            ctm: self.ctm,
            font: self.font.clone(),
            size: self.size,
            char_spacing: self.char_spacing,
            word_spacing: self.word_spacing,
            scale: self.scale,
            leading: self.leading,
        }
    }
}

/// Glyphs collected at most per page (a form drawn again and again multiplies them).
const MAX_GLYPHS: usize = 1 << 20;

struct Walker<'a> {
    doc: &'a Document,
    fonts: HashMap<ObjectId, std::rc::Rc<FontInfo>>,
    out: Vec<Glyph>,
    /// what is left to decode in this search
    budget: &'a mut Budget,
    /// the first limit hit; the walk stops there
    error: Option<Error>,
}

impl Walker<'_> {
    fn font(&mut self, resources: Option<&Dictionary>, name: &Object) -> Option<std::rc::Rc<FontInfo>> {
        let doc = self.doc;
        let font_dict = resources.and_then(|r| r.get(b"Font").ok()).and_then(|f| dict(doc, f));
        let r = font_dict?.get(name.as_name().ok()?).ok()?;
        let id = r.as_reference().unwrap_or((0, 0));
        if let Some(f) = self.fonts.get(&id).filter(|_| id != (0, 0)) {
            return Some(f.clone());
        }
        let info = match font_info(doc, dict(doc, r)?, self.budget) {
            Ok(i) => std::rc::Rc::new(i),
            Err(e) => {
                self.error.get_or_insert(e);
                return None;
            }
        };
        if id != (0, 0) {
            self.fonts.insert(id, info.clone());
        }
        Some(info)
    }

    fn run(&mut self, content: &[u8], resources: Option<&Dictionary>, ctm: Matrix, depth: u32) {
        if self.error.is_some() {
            return;
        }
        let Ok(ops) = Content::decode(content) else { return };
        let doc = self.doc;
        let xobjects = resources.and_then(|r| r.get(b"XObject").ok()).and_then(|f| dict(doc, f));
        let mut st =
            State { ctm, font: None, size: 0.0, char_spacing: 0.0, word_spacing: 0.0, scale: 1.0, leading: 0.0 };
        let mut stack: Vec<State> = Vec::new();
        let (mut tm, mut tlm) = (IDENTITY, IDENTITY);
        for op in ops.operations {
            if self.error.is_some() {
                return;
            }
            if self.out.len() > MAX_GLYPHS {
                self.error = Some(invalid(format!(
                    "页面文字过多（超过 {MAX_GLYPHS} 个字符）/ the page draws too many characters (over {MAX_GLYPHS})"
                )));
                return;
            }
            let a = &op.operands;
            match op.operator.as_str() {
                "q" => stack.push(st.clone()),
                "Q" => {
                    if let Some(s) = stack.pop() {
                        st = s;
                    }
                }
                "cm" if a.len() == 6 => {
                    let m = [num(&a[0]), num(&a[1]), num(&a[2]), num(&a[3]), num(&a[4]), num(&a[5])];
                    st.ctm = mul(&m, &st.ctm);
                }
                "BT" => {
                    tm = IDENTITY;
                    tlm = IDENTITY;
                }
                "Tf" if a.len() == 2 => {
                    st.size = num(&a[1]);
                    st.font = self.font(resources, &a[0]);
                }
                "Tc" if a.len() == 1 => st.char_spacing = num(&a[0]),
                "Tw" if a.len() == 1 => st.word_spacing = num(&a[0]),
                "Tz" if a.len() == 1 => st.scale = num(&a[0]) / 100.0,
                "TL" if a.len() == 1 => st.leading = num(&a[0]),
                "Tm" if a.len() == 6 => {
                    tm = [num(&a[0]), num(&a[1]), num(&a[2]), num(&a[3]), num(&a[4]), num(&a[5])];
                    tlm = tm;
                }
                "Td" | "TD" if a.len() == 2 => {
                    if op.operator == "TD" {
                        st.leading = -num(&a[1]);
                    }
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, num(&a[0]), num(&a[1])], &tlm);
                    tm = tlm;
                }
                "T*" => {
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -st.leading], &tlm);
                    tm = tlm;
                }
                "Tj" | "'" | "\"" => {
                    if op.operator != "Tj" {
                        if op.operator == "\"" && a.len() == 3 {
                            st.word_spacing = num(&a[0]);
                            st.char_spacing = num(&a[1]);
                        }
                        tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -st.leading], &tlm);
                        tm = tlm;
                    }
                    if let Some(Object::String(s, _)) = a.last() {
                        self.show(&st, &mut tm, s);
                    }
                }
                "TJ" => {
                    for item in a.first().and_then(|x| x.as_array().ok()).into_iter().flatten() {
                        match item {
                            Object::String(s, _) => self.show(&st, &mut tm, s),
                            n => {
                                let dx = -num(n) / 1000.0 * st.size * st.scale;
                                tm = mul(&[1.0, 0.0, 0.0, 1.0, dx, 0.0], &tm);
                            }
                        }
                    }
                }
                "Do" if depth < 8 => {
                    let Some(form) = a
                        .first()
                        .and_then(|n| n.as_name().ok())
                        .and_then(|n| xobjects?.get(n).ok())
                        .and_then(|x| resolve(doc, x).ok())
                        .and_then(|x| x.as_stream().ok())
                    else {
                        continue;
                    };
                    if form.dict.get(b"Subtype").ok().and_then(|s| s.as_name().ok()) != Some(b"Form".as_slice()) {
                        continue;
                    }
                    let m = match form.dict.get(b"Matrix").ok().and_then(|m| m.as_array().ok()) {
                        Some(m) if m.len() == 6 => {
                            [num(&m[0]), num(&m[1]), num(&m[2]), num(&m[3]), num(&m[4]), num(&m[5])]
                        }
                        _ => IDENTITY,
                    };
                    let res = form.dict.get(b"Resources").ok().and_then(|r| dict(doc, r)).or(resources);
                    let body = match decode(form, self.budget) {
                        Ok(b) => b,
                        Err(e) => {
                            self.error = Some(e);
                            return;
                        }
                    };
                    self.run(&body, res, mul(&m, &st.ctm), depth + 1);
                }
                _ => {}
            }
        }
    }

    fn show(&mut self, st: &State, tm: &mut Matrix, s: &[u8]) {
        let Some(font) = st.font.clone() else { return };
        let step = if font.two_byte { 2 } else { 1 };
        for code in s.chunks(step) {
            let c = code.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            let text = font
                .to_unicode
                .get(&c)
                .cloned()
                .unwrap_or_else(|| if font.two_byte { String::new() } else { char::from(c as u8).to_string() });
            let w = font.widths.get(&c).copied().unwrap_or(font.default_width) / 1000.0;
            let trm = mul(&[st.size * st.scale, 0.0, 0.0, st.size, 0.0, 0.0], &mul(tm, &st.ctm));
            let advance_text =
                w * st.size + st.char_spacing + if c == 32 && !font.two_byte { st.word_spacing } else { 0.0 };
            let dx = advance_text * st.scale;
            // the advance in page space, along the baseline
            let page_scale = (trm[0] * trm[0] + trm[1] * trm[1]).sqrt() / st.size.abs().max(1e-9);
            let size = (trm[2] * trm[2] + trm[3] * trm[3]).sqrt();
            let n = text.chars().count().max(1) as f64;
            for (k, ch) in text.chars().enumerate() {
                self.out.push(Glyph {
                    ch,
                    x: trm[4] + dx * page_scale * (k as f64 / n),
                    y: trm[5],
                    advance: dx * page_scale / n,
                    size,
                });
            }
            *tm = mul(&[1.0, 0.0, 0.0, 1.0, dx, 0.0], tm);
        }
    }
}

/// The characters of a page with their positions; every stream read is charged to `budget`.
fn page_glyphs(doc: &Document, page: ObjectId, budget: &mut Budget) -> Result<Vec<Glyph>> {
    let content = page_content(doc, page, budget)?;
    let mut w = Walker { doc, fonts: HashMap::new(), out: Vec::new(), budget, error: None };
    let (res, ids) = doc.get_page_resources(page).unwrap_or((None, vec![]));
    let res = res.cloned().or_else(|| ids.iter().find_map(|id| doc.get_dictionary(*id).ok().cloned()));
    w.run(&content, res.as_ref(), IDENTITY, 0);
    match w.error {
        Some(e) => Err(e),
        None => Ok(w.out),
    }
}

/// The text of the first `max_pages` pages, for a person to read (R2.4: what the doctor's phone
/// shows before signing): each page's characters in lines as laid out — top to bottom, left to
/// right, whatever order the content stream drew them in (a template draws its labels, then the
/// values) — with a space where a gap opens. At most `max_chars` characters a page; the flag
/// says whether anything was left out (pages or characters).
pub fn page_texts(bytes: &[u8], max_pages: usize, max_chars: usize) -> Result<(Vec<String>, bool)> {
    let doc = crate::load(bytes)?;
    let pages = doc.get_pages();
    let mut budget = Budget::default();
    let mut out = Vec::new();
    let mut cut = pages.len() > max_pages;
    for (_, id) in pages.into_iter().take(max_pages) {
        let mut glyphs: Vec<Glyph> =
            page_glyphs(&doc, id, &mut budget)?.into_iter().filter(|g| g.y.is_finite() && g.x.is_finite()).collect();
        glyphs.sort_by(|a, b| b.y.total_cmp(&a.y));
        // lines: a glyph joins the line whose baseline is within half its size
        let mut lines: Vec<(f64, Vec<Glyph>)> = Vec::new();
        for g in glyphs {
            match lines.last_mut() {
                Some((y, line)) if (*y - g.y).abs() <= g.size.max(1.0) * 0.5 => line.push(g),
                _ => lines.push((g.y, vec![g])),
            }
        }
        let mut text = String::new();
        let mut n = 0;
        'page: for (i, (_, mut line)) in lines.into_iter().enumerate() {
            line.sort_by(|a, b| a.x.total_cmp(&b.x));
            if i > 0 {
                text.push('\n');
            }
            let mut last: Option<&Glyph> = None;
            for g in &line {
                if n == max_chars {
                    cut = true;
                    break 'page;
                }
                if let Some(p) = last
                    && g.x - (p.x + p.advance) > p.size.max(g.size) * 0.25
                    && !g.ch.is_whitespace()
                {
                    text.push(' ');
                }
                text.push(g.ch);
                n += 1;
                last = Some(g);
            }
        }
        out.push(text);
    }
    Ok((out, cut))
}

/// Find `keyword` in the document (on `page` only when given): the first occurrence, in content
/// order. Spaces in the page text and the keyword are ignored when matching.
pub fn find_text(bytes: &[u8], keyword: &str, page: Option<u32>) -> Result<Option<Found>> {
    let doc = crate::load(bytes)?;
    let want: Vec<char> = keyword.chars().filter(|c| !c.is_whitespace()).collect();
    if want.is_empty() {
        return Err(invalid("关键字为空 / the keyword is empty"));
    }
    let mut budget = Budget::default();
    for (no, id) in doc.get_pages() {
        if page.is_some_and(|p| p != no) {
            continue;
        }
        let glyphs: Vec<Glyph> =
            page_glyphs(&doc, id, &mut budget)?.into_iter().filter(|g| !g.ch.is_whitespace()).collect();
        let chars: Vec<char> = glyphs.iter().map(|g| g.ch).collect();
        if let Some(start) = chars.windows(want.len()).position(|w| w == want.as_slice()) {
            let hit = &glyphs[start..start + want.len()];
            let x1 = hit.iter().map(|g| g.x).fold(f64::MAX, f64::min);
            let x2 = hit.iter().map(|g| g.x + g.advance).fold(f64::MIN, f64::max);
            let y = hit[0].y;
            let size = hit.iter().map(|g| g.size).fold(0.0, f64::max);
            return Ok(Some(Found { page: no, rect: [x1, y - size * 0.2, x2, y + size * 0.8] }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmaps_with_chars_ranges_and_arrays() {
        let m = parse_cmap(
            "1 beginbfchar\n<0003> <5F20>\nendbfchar\n2 beginbfrange\n<0010> <0012> <0041>\n<0020> <0021> [<4E09> <0032>]\nendbfrange\n",
        );
        assert_eq!(m.get(&3).map(String::as_str), Some("张"));
        assert_eq!(m.get(&0x11).map(String::as_str), Some("B"));
        assert_eq!(m.get(&0x20).map(String::as_str), Some("三"));
        assert_eq!(m.get(&0x21).map(String::as_str), Some("2"));
    }

    #[test]
    fn keywords_are_found_in_krilla_text_and_in_simple_fonts() {
        let t = crate::template::Template::from_json(crate::template::builtin()[0].1).unwrap();
        let data = serde_json::json!({
            "hospital": "某某县人民医院", "department": "内科", "outpatient_no": "MZ1", "patient_name": "王小明",
            "gender": "男", "age": "45岁", "diagnosis": "上呼吸道感染",
            "items": [{"drug": "阿莫西林胶囊", "dosage": "0.5g", "usage": "口服", "quantity": "2盒"}]
        });
        let pdf = t.render(&data).unwrap();
        // the label "医师：" is a decoration at x = 20, baseline y = 108, 10.5 pt
        let f = find_text(&pdf, "医师：", None).unwrap().expect("found");
        assert_eq!(f.page, 1);
        assert!((f.rect[0] - 20.0).abs() < 0.5 && (f.rect[1] - (108.0 - 2.1)).abs() < 0.5, "{f:?}");
        assert!((f.rect[2] - f.rect[0] - 31.5).abs() < 1.0, "three full-width characters: {f:?}");
        assert!(find_text(&pdf, "王 小明", Some(1)).unwrap().is_some(), "spaces are ignored");
        // the page as text for the doctor's phone: every value, in lines
        let (pages, cut) = page_texts(&pdf, 20, 100_000).unwrap();
        assert_eq!((pages.len(), cut), (1, false));
        for v in ["王小明", "上呼吸道感染", "阿莫西林胶囊", "0.5g", "某某县人民医院"] {
            assert!(pages[0].replace(' ', "").contains(v), "{v} in {:?}", pages[0]);
        }
        assert!(pages[0].lines().count() > 5, "{:?}", pages[0]);
        // laid out: a label and its value on one line, in reading order
        assert!(
            pages[0].lines().any(|l| {
                let l = l.replace(' ', "");
                l.contains("姓名：王小明")
            }),
            "{:?}",
            pages[0]
        );
        let mixed = serde_json::json!({
            "hospital": "某县人民医院", "department": "内科", "outpatient_no": "MZ1", "patient_name": "wda227c 患者",
            "gender": "男", "age": "45岁", "diagnosis": "M2992220cef 诊断w6bd5a2",
            "items": [{"drug": "阿莫西林胶囊", "dosage": "0.5g", "usage": "口服", "quantity": "2盒"}]
        });
        let (p2, _) = page_texts(&t.render(&mixed).unwrap(), 20, 100_000).unwrap();
        assert!(p2[0].replace(' ', "").contains("M2992220cef诊断w6bd5a2"), "{:?}", p2[0]);
        let (short, cut) = page_texts(&pdf, 20, 10).unwrap();
        assert!(cut && short[0].chars().filter(|c| !c.is_whitespace()).count() == 10, "{short:?}");
        let (none, cut) = page_texts(&pdf, 0, 100).unwrap();
        assert!(none.is_empty() && cut);
        assert!(find_text(&pdf, "王小明", Some(2)).unwrap().is_none());
        assert!(find_text(&pdf, "不存在的字", None).unwrap().is_none());
        assert!(find_text(&pdf, "  ", None).is_err());
        // Helvetica with WinAnsi, no ToUnicode: Latin-1 codes
        let simple = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<</Font<</F1 5 0 R>>>>/Contents 4 0 R>>endobj\n4 0 obj<</Length 44>>stream\nBT /F1 12 Tf 100 700 Td (Doctor: ) Tj ET\nendstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";
        let f = find_text(simple, "Doctor:", None).unwrap().expect("found");
        assert!((f.rect[0] - 100.0).abs() < 0.01 && (f.rect[1] - 697.6).abs() < 0.01, "{f:?}");
    }

    #[test]
    fn hostile_cmaps_are_bounded() {
        // a reversed range used to underflow (a panic in debug builds)
        let m = parse_cmap("1 beginbfrange\n<0010> <0001> [<0041>]\nendbfrange\n");
        assert!(m.len() <= 1);
        // thousands of full-width ranges stop at the entry cap
        let mut cmap = String::from("4000 beginbfrange\n");
        for k in 0..4000u32 {
            cmap.push_str(&format!("<{:08X}> <{:08X}> <0041>\n", k << 16, (k << 16) | 0xFFFF));
        }
        cmap.push_str("endbfrange\n");
        assert_eq!(parse_cmap(&cmap).len(), MAX_FONT_ENTRIES);
    }

    /// A one-page PDF whose content stream is `content`, with `filter`.
    fn pdf_with_content(content: Vec<u8>, filter: Option<&str>) -> Vec<u8> {
        use lopdf::{Stream, dictionary};
        let mut doc = Document::with_version("1.7");
        let pages = doc.new_object_id();
        let mut d = dictionary! {};
        if let Some(f) = filter {
            d.set("Filter", Object::Name(f.as_bytes().to_vec()));
        }
        let mut st = Stream::new(d, content);
        st.allows_compression = false;
        let c = doc.add_object(st);
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages, "Contents" => c,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        });
        doc.objects.insert(
            pages,
            Object::Dictionary(dictionary! {"Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1}),
        );
        let cat = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages});
        doc.trailer.set("Root", cat);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn a_zip_bomb_page_is_refused_by_the_text_search() {
        // 50 MB of zeros in a ~50 KB deflate stream: today's search inflated it whole
        let mut s = lopdf::Stream::new(lopdf::dictionary! {}, vec![0u8; 50_000_000]);
        s.compress().unwrap();
        let pdf = pdf_with_content(s.content, Some("FlateDecode"));
        assert!(pdf.len() < 100_000, "{}", pdf.len());
        let e = find_text(&pdf, "医师", None).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("inflates too large"), "{e}");
        // the same structure with a real page is searched
        let pdf = pdf_with_content(b"BT /F1 12 Tf 100 700 Td (Doctor) Tj ET".to_vec(), None);
        assert!(find_text(&pdf, "Doctor", None).unwrap().is_none(), "no font resource: no glyphs, no error");
    }
}
