//! Laying out a text report on A4 pages — the evidence report (R1.3) and anything like it: headings,
//! label/value rows whose values wrap, coloured banners, a QR code drawn as vector squares, and
//! thumbnails of another PDF's pages (embedded as vector forms by krilla, nothing rasterised).
//!
//! Layout and drawing are separate: [`Layout`] places everything first (so pages can be counted and
//! each footer says "page i of N"), then [`Layout::finish`] draws with krilla and the shipped CJK
//! font ([`crate::EMBEDDED_FONT`]), so `pdftotext` gets the Chinese text back.

use crate::{Result, draw, invalid};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Rect, Size, Transform};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use std::sync::Arc;

/// A4 in points.
pub const A4: (f32, f32) = (595.0, 842.0);
/// Left, right and top margin; the bottom keeps room for the footer.
pub const MARGIN: f32 = 48.0;
const BOTTOM: f32 = 60.0;
const LINE: f32 = 1.4;

/// Ink colours.
pub mod ink {
    /// body text
    pub const TEXT: [u8; 3] = [25, 30, 45];
    /// labels, captions
    pub const MUTED: [u8; 3] = [100, 108, 125];
    /// headings
    pub const HEAD: [u8; 3] = [20, 60, 120];
    /// passed
    pub const GREEN: [u8; 3] = [20, 120, 60];
    /// failed
    pub const RED: [u8; 3] = [190, 30, 30];
    /// indeterminate
    pub const AMBER: [u8; 3] = [190, 120, 0];
    /// rules, frames
    pub const RULE: [u8; 3] = [200, 205, 215];
    /// white
    pub const WHITE: [u8; 3] = [255, 255, 255];
}

/// One thing drawn on a page; y is measured from the top of the page (text: its baseline).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// a line of text
    Text {
        /// left end of the baseline
        x: f32,
        /// baseline, from the top
        y: f32,
        /// font size
        size: f32,
        /// the text (one line)
        text: String,
        /// colour
        color: [u8; 3],
    },
    /// a filled rectangle (top-left corner, width, height)
    Rect {
        /// left
        x: f32,
        /// top
        y: f32,
        /// width
        w: f32,
        /// height
        h: f32,
        /// colour
        color: [u8; 3],
    },
    /// a rectangle's outline
    Frame {
        /// left
        x: f32,
        /// top
        y: f32,
        /// width
        w: f32,
        /// height
        h: f32,
    },
    /// page `index` (from 0) of the embedded PDF, scaled into the box
    Thumb {
        /// page index, from 0
        index: usize,
        /// left
        x: f32,
        /// top
        y: f32,
        /// width
        w: f32,
        /// height
        h: f32,
    },
}

/// Text split into lines no wider than `width` at `size` points: breaks at spaces, between CJK
/// characters, and inside a word only when the word alone is wider than a line. `\n` starts a new line.
pub fn wrap(text: &str, size: f32, width: f32) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut w = 0.0;
        for unit in units(para) {
            let uw = draw::text_width(&unit, size);
            if w + uw > width && !line.trim().is_empty() {
                out.push(line.trim_end().to_string());
                line.clear();
                w = 0.0;
                if unit == " " {
                    continue;
                }
            }
            if uw > width {
                for c in unit.chars() {
                    let cw = draw::text_width(c.encode_utf8(&mut [0; 4]), size);
                    if w + cw > width && !line.is_empty() {
                        out.push(std::mem::take(&mut line));
                        w = 0.0;
                    }
                    line.push(c);
                    w += cw;
                }
            } else {
                line.push_str(&unit);
                w += uw;
            }
        }
        out.push(line.trim_end().to_string());
    }
    out
}

/// Break units: a space, a run of non-space Latin characters (a word, a hash, a path), or one
/// character of any other script (CJK lines may break between any two characters).
fn units(s: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if c == ' ' || !(c.is_ascii() || is_latin_punct(c)) {
            if !word.is_empty() {
                v.push(std::mem::take(&mut word));
            }
            v.push(c.to_string());
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        v.push(word);
    }
    v
}

fn is_latin_punct(c: char) -> bool {
    matches!(c, '’' | '‘' | '“' | '”' | '…' | '–' | '×' | 'µ')
}

/// A report being laid out on A4 pages.
#[derive(Debug, Clone)]
pub struct Layout {
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    /// An empty report with one page.
    pub fn new() -> Self {
        Layout { pages: vec![Vec::new()], y: MARGIN }
    }

    /// Width between the margins.
    pub fn width() -> f32 {
        A4.0 - 2.0 * MARGIN
    }

    /// The pages laid out so far.
    pub fn pages(&self) -> &[Vec<Op>] {
        &self.pages
    }

    /// Where the next thing goes (from the top of the current page).
    pub fn y(&self) -> f32 {
        self.y
    }

    /// Move down by `h` points.
    pub fn gap(&mut self, h: f32) {
        self.y += h;
    }

    /// Start a new page.
    pub fn page_break(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    /// Make sure `h` points fit on this page, else start a new one.
    pub fn need(&mut self, h: f32) {
        if self.y + h > A4.1 - BOTTOM && self.y > MARGIN {
            self.page_break();
        }
    }

    fn push(&mut self, op: Op) {
        self.pages.last_mut().expect("a page").push(op);
    }

    /// Put `op` on the current page without moving (a QR code beside the text, say).
    pub fn place(&mut self, op: Op) {
        self.push(op);
    }

    /// Wrapped text from `x` (relative to the left margin) in `width`.
    pub fn text_in(&mut self, x: f32, width: f32, text: &str, size: f32, color: [u8; 3]) {
        for l in wrap(text, size, width) {
            self.need(size * LINE);
            self.y += size * LINE;
            self.push(Op::Text { x: MARGIN + x, y: self.y - size * 0.35, size, text: l, color });
        }
    }

    /// A wrapped paragraph across the full width.
    pub fn paragraph(&mut self, text: &str, size: f32, color: [u8; 3]) {
        self.text_in(0.0, Self::width(), text, size, color);
    }

    /// The report's title.
    pub fn title(&mut self, text: &str, subtitle: &str) {
        self.paragraph(text, 19.0, ink::HEAD);
        self.gap(2.0);
        self.paragraph(subtitle, 10.0, ink::MUTED);
        self.gap(6.0);
    }

    /// A section heading with a rule under it, kept on a page with the start of what follows.
    pub fn heading(&mut self, text: &str) {
        self.need(14.0 * LINE + 50.0);
        self.gap(10.0);
        self.paragraph(text, 13.0, ink::HEAD);
        self.gap(3.0);
        let y = self.y;
        self.push(Op::Rect { x: MARGIN, y, w: Self::width(), h: 0.8, color: ink::RULE });
        self.gap(5.0);
    }

    /// A label (left column, muted) and its value (wrapped in the right column).
    pub fn field(&mut self, label: &str, value: &str) {
        self.field_colored(label, value, ink::TEXT);
    }

    /// [`Layout::field`] with the value in `color`.
    pub fn field_colored(&mut self, label: &str, value: &str, color: [u8; 3]) {
        const LABEL_W: f32 = 150.0;
        let (ls, vs) = (8.5, 9.0);
        let labels = wrap(label, ls, LABEL_W - 8.0);
        let values = wrap(if value.is_empty() { "—" } else { value }, vs, Self::width() - LABEL_W);
        let rows = labels.len().max(values.len());
        // a short row stays on one page; a long one may continue on the next
        self.need((rows.min(4) as f32) * vs * LINE + 2.0);
        for i in 0..rows {
            self.need(vs * LINE);
            self.y += vs * LINE;
            let base = self.y - vs * 0.35;
            if let Some(l) = labels.get(i) {
                self.push(Op::Text { x: MARGIN, y: base, size: ls, text: l.clone(), color: ink::MUTED });
            }
            if let Some(v) = values.get(i) {
                self.push(Op::Text { x: MARGIN + LABEL_W, y: base, size: vs, text: v.clone(), color });
            }
        }
        self.gap(2.0);
    }

    /// A coloured band with a large line and a smaller one under it, white on `color`, `width` wide.
    pub fn banner(&mut self, big: &str, small: &str, color: [u8; 3], width: f32) {
        let bl = wrap(big, 17.0, width - 20.0);
        let sl = wrap(small, 9.5, width - 20.0);
        let h = 14.0 + bl.len() as f32 * 17.0 * LINE + sl.len() as f32 * 9.5 * LINE;
        self.need(h + 4.0);
        let top = self.y;
        self.push(Op::Rect { x: MARGIN, y: top, w: width, h, color });
        let mut y = top + 6.0;
        for l in bl {
            y += 17.0 * LINE;
            self.push(Op::Text { x: MARGIN + 10.0, y: y - 17.0 * 0.35, size: 17.0, text: l, color: ink::WHITE });
        }
        for l in sl {
            y += 9.5 * LINE;
            self.push(Op::Text { x: MARGIN + 10.0, y: y - 9.5 * 0.35, size: 9.5, text: l, color: ink::WHITE });
        }
        self.y = top + h + 6.0;
    }

    /// A QR code (`modules` row by row, `n` a side) as black squares in a `side`-point box whose
    /// top-left corner is (`x`, `y`) on the current page; the cursor does not move.
    pub fn qr_at(&mut self, x: f32, y: f32, side: f32, modules: &[bool], n: usize) {
        if n == 0 || modules.len() != n * n {
            return;
        }
        // a quiet zone of 2 modules each side
        let m = side / (n as f32 + 4.0);
        self.push(Op::Rect { x, y, w: side, h: side, color: ink::WHITE });
        for (i, dark) in modules.iter().enumerate() {
            if *dark {
                let (r, c) = (i / n, i % n);
                // a hair wider, so neighbouring squares leave no seams when rendered
                self.push(Op::Rect {
                    x: x + (c as f32 + 2.0) * m,
                    y: y + (r as f32 + 2.0) * m,
                    w: m + 0.05,
                    h: m + 0.05,
                    color: [0, 0, 0],
                });
            }
        }
    }

    /// Thumbnails of pages of the embedded PDF, `sizes[i]` being page i's width and height in
    /// points, `per_row` to a row, each captioned with its number and size.
    pub fn thumbnails(&mut self, sizes: &[(f32, f32)], per_row: usize) {
        let per_row = per_row.max(1);
        let gapx = 12.0;
        let w = (Self::width() - gapx * (per_row as f32 - 1.0)) / per_row as f32;
        for row in sizes.chunks(per_row).enumerate() {
            let (r, pages) = row;
            let h = pages.iter().map(|(pw, ph)| w * ph / pw.max(1.0)).fold(0.0f32, f32::max).min(w * 1.6);
            self.need(h + 20.0);
            let top = self.y;
            for (k, (pw, ph)) in pages.iter().enumerate() {
                let index = r * per_row + k;
                let scale = (w / pw.max(1.0)).min(h / ph.max(1.0));
                let (tw, th) = (pw * scale, ph * scale);
                let x = MARGIN + k as f32 * (w + gapx) + (w - tw) / 2.0;
                self.push(Op::Rect { x, y: top, w: tw, h: th, color: ink::WHITE });
                self.push(Op::Thumb { index, x, y: top, w: tw, h: th });
                self.push(Op::Frame { x, y: top, w: tw, h: th });
                self.push(Op::Text {
                    x: MARGIN + k as f32 * (w + gapx),
                    y: top + h + 11.0,
                    size: 7.5,
                    text: format!("第 {} 页 / p. {}  {:.0}×{:.0} pt", index + 1, index + 1, pw, ph),
                    color: ink::MUTED,
                });
            }
            self.y = top + h + 18.0;
        }
    }

    /// Leave out the thumbnails (their frames and captions stay, as an empty box per page).
    pub fn drop_thumbnails(&mut self) {
        for ops in &mut self.pages {
            ops.retain(|o| !matches!(o, Op::Thumb { .. }));
        }
    }

    /// Draw the report: `footer` and "第 i / N 页" at the foot of every page, document title
    /// `title` (metadata, language zh-CN); `embed` is the PDF whose pages [`Op::Thumb`] shows (with
    /// none, thumbnails are left out).
    pub fn finish(&self, title: &str, footer: &str, embed: Option<&[u8]>) -> Result<Vec<u8>> {
        let source = match embed {
            Some(b) => Some(krilla::pdf::PdfDocument::new(Arc::new(
                krilla::pdf::Pdf::new(b.to_vec())
                    .map_err(|e| invalid(format!("PDF 无法读取 / the PDF cannot be read: {e:?}")))?,
            ))),
            None => None,
        };
        let mut doc = krilla::Document::new();
        doc.set_metadata(
            krilla::metadata::Metadata::new()
                .title(title.to_string())
                .language("zh-CN".to_string())
                .creator("medsign".to_string()),
        );
        let total = self.pages.len();
        for (i, ops) in self.pages.iter().enumerate() {
            let settings = PageSettings::from_wh(A4.0, A4.1).ok_or_else(|| invalid("page size"))?;
            let mut page = doc.start_page_with(settings);
            let mut s = page.surface();
            for op in ops {
                draw_op(&mut s, op, source.as_ref());
            }
            let foot = format!("{footer}    第 {} / {total} 页 / page {} of {total}", i + 1, i + 1);
            let y = A4.1 - 30.0;
            s.set_fill(Some(fill(ink::RULE)));
            if let Some(p) = rect_path(MARGIN, y - 12.0, Self::width(), 0.6) {
                s.draw_path(&p);
            }
            for (k, l) in wrap(&foot, 7.5, Self::width()).iter().take(2).enumerate() {
                draw::text(&mut s, (MARGIN, y + k as f32 * 10.0), 7.5, l, ink::MUTED);
            }
            s.finish();
            page.finish();
        }
        doc.finish().map_err(|e| invalid(format!("生成报告失败 / rendering the report failed: {e:?}")))
    }
}

/// Width and height in points of every page of `pdf` (its MediaBox, inherited or not).
pub fn page_sizes(pdf: &[u8]) -> Result<Vec<(f32, f32)>> {
    let doc = crate::load(pdf)?;
    Ok(doc
        .get_pages()
        .values()
        .map(|id| {
            crate::media_box(&doc, *id)
                .map(|b| (((b[2] - b[0]).abs()) as f32, ((b[3] - b[1]).abs()) as f32))
                .filter(|(w, h)| *w >= 1.0 && *h >= 1.0)
                .unwrap_or(A4)
        })
        .collect())
}

fn fill(c: [u8; 3]) -> Fill {
    Fill { paint: rgb::Color::new(c[0], c[1], c[2]).into(), ..Default::default() }
}

fn rect_path(x: f32, y: f32, w: f32, h: f32) -> Option<krilla::geom::Path> {
    let mut pb = PathBuilder::new();
    pb.push_rect(Rect::from_xywh(x, y, w, h)?);
    pb.finish()
}

fn draw_op(s: &mut krilla::surface::Surface<'_>, op: &Op, source: Option<&krilla::pdf::PdfDocument>) {
    match op {
        Op::Text { x, y, size, text, color } => draw::text(s, (*x, *y), *size, text, *color),
        Op::Rect { x, y, w, h, color } => {
            if let Some(p) = rect_path(*x, *y, *w, *h) {
                s.set_fill(Some(fill(*color)));
                s.draw_path(&p);
            }
        }
        Op::Frame { x, y, w, h } => {
            if let Some(p) = rect_path(*x, *y, *w, *h) {
                s.set_fill(None);
                s.set_stroke(Some(Stroke {
                    paint: rgb::Color::new(ink::MUTED[0], ink::MUTED[1], ink::MUTED[2]).into(),
                    width: 0.6,
                    ..Default::default()
                }));
                s.draw_path(&p);
                s.set_stroke(None);
            }
        }
        Op::Thumb { index, x, y, w, h } => {
            if let (Some(src), Some(size)) = (source, Size::from_wh(*w, *h)) {
                s.push_transform(&Transform::from_translate(*x, *y));
                s.draw_pdf_page(src, size, *index);
                s.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_and_breaks_cjk_anywhere() {
        let w = Layout::width() - 150.0;
        let hash = "a".repeat(64);
        assert_eq!(wrap(&hash, 9.0, w), vec![hash.clone()], "a SHA-256 hex fits one value line");
        let long = "签名".repeat(60);
        let lines = wrap(&long, 9.0, 200.0);
        assert!(lines.len() > 3, "{lines:?}");
        assert!(lines.iter().all(|l| draw::text_width(l, 9.0) <= 200.0 + 0.01), "{lines:?}");
        assert_eq!(lines.concat(), long, "nothing lost");
        let en = "the quick brown fox jumps over the lazy dog ".repeat(8);
        for l in wrap(&en, 9.0, 150.0) {
            assert!(draw::text_width(&l, 9.0) <= 150.0 + 0.01, "{l}");
            assert!(!l.starts_with(' ') && !l.ends_with(' '), "'{l}'");
            for word in l.split(' ') {
                assert!(["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"].contains(&word), "{word}");
            }
        }
        // a word wider than the line is cut, not lost
        let url = format!("https://example.invalid/{}", "x".repeat(200));
        let lines = wrap(&url, 9.0, 120.0);
        assert!(lines.len() > 1 && lines.concat() == url, "{lines:?}");
        assert_eq!(wrap("一\n二", 9.0, 100.0), vec!["一", "二"]);
    }

    #[test]
    fn long_content_paginates_within_the_margins() {
        let mut l = Layout::new();
        l.title("电子签名验证报告", "Evidence report");
        for i in 0..300 {
            l.field(&format!("第 {i} 项 / item {i}"), &"很长的值 long value ".repeat(i % 7 + 1));
        }
        assert!(l.pages().len() > 5, "{}", l.pages().len());
        for ops in l.pages() {
            for op in ops {
                if let Op::Text { x, y, size, text, .. } = op {
                    assert!(*y > MARGIN - 1.0 && *y <= A4.1 - BOTTOM, "{y} {text}");
                    assert!(*x + draw::text_width(text, *size) <= A4.0 - MARGIN + 0.5, "{text}");
                }
            }
        }
        let pdf = l.finish("t", "footer", None).unwrap();
        let doc = lopdf::Document::load_mem(&pdf).unwrap();
        assert_eq!(doc.get_pages().len(), l.pages().len());
    }

    #[test]
    fn qr_modules_become_squares_and_thumbnails_embed_pages() {
        let mut l = Layout::new();
        let n = 21;
        let modules: Vec<bool> = (0..n * n).map(|i| i % 3 == 0).collect();
        l.qr_at(400.0, 50.0, 100.0, &modules, n);
        let squares = l.pages()[0].iter().filter(|o| matches!(o, Op::Rect { color: [0, 0, 0], .. })).count();
        assert_eq!(squares, modules.iter().filter(|m| **m).count());
        l.qr_at(400.0, 50.0, 100.0, &modules[1..], n); // wrong size: ignored
        let src = crate::blank_pdf(595, 842);
        l.thumbnails(&page_sizes(&src).unwrap(), 4);
        let pdf = l.finish("t", "f", Some(&src)).unwrap();
        let doc = lopdf::Document::load_mem(&pdf).unwrap();
        assert_eq!(doc.get_pages().len(), 1);
        assert!(l.finish("t", "f", Some(b"not a pdf")).is_err());
    }

    #[test]
    fn labels_are_in_the_font() {
        for s in [
            "电子签名验证报告",
            "有效",
            "无效",
            "无法确定",
            "签署人",
            "证书链",
            "吊销状态",
            "时间戳",
            "审计链",
            "第 1 / 2 页",
        ] {
            assert!(draw::missing_chars(s).is_empty(), "{s}");
        }
    }
}
