//! PDF templates (R1.8): a page size or a base PDF, fixed decoration, and fields filled from data —
//! text, multi-line text, date, checkbox, image, table rows — plus signature boxes, which become
//! empty signature fields so later signatures (even after a certification signature) fill a field
//! placed in advance instead of adding one. Chinese text uses the shipped font ([`crate::draw`]).
//!
//! Coordinates are PDF points from the lower-left corner of the page, as everywhere in medsign's
//! API (`rect: [x1, y1, x2, y2]`).

use crate::draw::{self, image_size};
use crate::{Result, invalid};
use base64::Engine as _;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Rect, Size, Transform};
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use lopdf::{Dictionary, Object};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A template definition (stored as JSON, versioned by the caller).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// display name, e.g. 门诊处方笺
    pub name: String,
    /// page size in points (ignored with `base_pdf`)
    #[serde(default)]
    pub page: Option<PageSize>,
    /// base PDF (base64): its pages are drawn first, fields on top
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_pdf: Option<String>,
    /// fixed decoration: headings, labels, lines
    #[serde(default)]
    pub decorations: Vec<Decoration>,
    /// fields filled from data
    pub fields: Vec<Field>,
}

/// Page size in points (A4: 595 × 842; A5: 420 × 595).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSize {
    /// width
    pub width: f32,
    /// height
    pub height: f32,
}

/// Something drawn on every rendering.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decoration {
    /// a fixed text; `x`, `y` are the baseline start (or centre with `align: center`)
    Text {
        /// page, from 1
        #[serde(default = "one")]
        page: u32,
        /// text
        text: String,
        /// x
        x: f32,
        /// y (baseline)
        y: f32,
        /// font size (default 10.5)
        #[serde(default)]
        size: Option<f32>,
        /// left | center | right
        #[serde(default)]
        align: Align,
    },
    /// a straight line
    Line {
        /// page, from 1
        #[serde(default = "one")]
        page: u32,
        /// x1, y1, x2, y2
        points: [f32; 4],
        /// width (default 0.8)
        #[serde(default)]
        width: Option<f32>,
    },
    /// a rectangle outline
    Rect {
        /// page, from 1
        #[serde(default = "one")]
        page: u32,
        /// x1, y1, x2, y2
        rect: [f32; 4],
        /// width (default 0.8)
        #[serde(default)]
        width: Option<f32>,
    },
}

fn one() -> u32 {
    1
}

/// Horizontal alignment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    /// from the left edge
    #[default]
    Left,
    /// centred
    Center,
    /// to the right edge
    Right,
}

/// A field filled from data (key = `name`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// data key (and signature field name for `signature`)
    pub name: String,
    /// what it holds
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// page, from 1
    #[serde(default = "one")]
    pub page: u32,
    /// x1, y1, x2, y2 in points
    pub rect: [f32; 4],
    /// data must provide it
    #[serde(default)]
    pub required: bool,
    /// font size (default 10.5)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<f32>,
    /// alignment of text
    #[serde(default)]
    pub align: Align,
    /// table columns (`table` only)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<Column>,
    /// row height of a table (default 18)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_height: Option<f32>,
    /// a date field without data shows today's date (Asia/Shanghai)
    #[serde(default)]
    pub default_today: bool,
}

/// Field types.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// one line of text (shrunk to fit)
    Text,
    /// wrapped text
    Multiline,
    /// a date (`YYYY-MM-DD` or RFC 3339), shown as 2026年11月27日
    Date,
    /// a box, ticked when the value is true
    Checkbox,
    /// a PNG (base64), fitted into the box
    Image,
    /// rows of objects, one column per key
    Table,
    /// a signature box: an empty signature field a signer fills later
    Signature,
}

/// A table column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// key in each row object
    pub key: String,
    /// header text
    pub title: String,
    /// width in points
    pub width: f32,
}

/// A signature box of a rendered template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignatureBox {
    /// field name
    pub name: String,
    /// page, from 1
    pub page: u32,
    /// x1, y1, x2, y2
    pub rect: [f32; 4],
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Font sizes a template may ask for, in points.
const FONT_SIZES: std::ops::RangeInclusive<f32> = 4.0..=72.0;
/// Most fields, decorations and table columns in one template.
const MAX_FIELDS: usize = 300;
const MAX_DECORATIONS: usize = 1000;
const MAX_COLUMNS: usize = 20;
/// Longest text of one field's value, in characters.
const MAX_TEXT: usize = 20_000;
const INK: [u8; 3] = [0, 0, 0];

impl Template {
    /// Parse and check a definition.
    pub fn from_json(s: &str) -> Result<Template> {
        let t: Template =
            serde_json::from_str(s).map_err(|e| invalid(format!("模板定义无效 / invalid template definition: {e}")))?;
        t.check()?;
        Ok(t)
    }

    /// Check a definition: names unique and ASCII, boxes on their pages, a page size or base PDF,
    /// and every size bounded (how much work rendering it can be: font sizes, row heights, how
    /// many fields, columns and decorations).
    pub fn check(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            return Err(invalid("模板名称须为 1–100 字 / the template name must have 1-100 characters"));
        }
        if self.fields.len() > MAX_FIELDS || self.decorations.len() > MAX_DECORATIONS {
            return Err(invalid(format!(
                "模板最多 {MAX_FIELDS} 个字段、{MAX_DECORATIONS} 个装饰 / a template has at most {MAX_FIELDS} fields and {MAX_DECORATIONS} decorations"
            )));
        }
        let font = |what: &str, size: Option<f32>| match size {
            Some(v) if !(FONT_SIZES.contains(&v)) => Err(invalid(format!(
                "{what} 的字号须在 {}–{} 之间 / {what}: font size must be {}-{}",
                FONT_SIZES.start(),
                FONT_SIZES.end(),
                FONT_SIZES.start(),
                FONT_SIZES.end()
            ))),
            _ => Ok(()),
        };
        for d in &self.decorations {
            match d {
                Decoration::Text { text, size, .. } => {
                    font("装饰文字 / decoration", *size)?;
                    if text.chars().count() > 500 {
                        return Err(invalid("装饰文字最多 500 字 / a decoration text has at most 500 characters"));
                    }
                }
                Decoration::Line { width, .. } | Decoration::Rect { width, .. } => {
                    if width.is_some_and(|w| !(0.0..=20.0).contains(&w)) {
                        return Err(invalid("线宽须在 0–20 之间 / line width must be 0-20"));
                    }
                }
            }
        }
        for f in &self.fields {
            font(&f.name, f.size)?;
            if f.row_height.is_some_and(|h| !(6.0..=200.0).contains(&h)) {
                return Err(invalid(format!(
                    "字段 {} 的行高须在 6–200 之间 / field {}: row height must be 6-200",
                    f.name, f.name
                )));
            }
            if f.columns.len() > MAX_COLUMNS || f.columns.iter().any(|c| !(c.width > 0.0 && c.width <= 2000.0)) {
                return Err(invalid(format!(
                    "字段 {} 最多 {MAX_COLUMNS} 列，列宽须在 0–2000 之间 / field {}: at most {MAX_COLUMNS} columns, each 0-2000 wide",
                    f.name, f.name
                )));
            }
        }
        let sizes = self.page_sizes()?;
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if f.name.is_empty()
                || f.name.len() > 64
                || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid(format!(
                    "字段名须为 1–64 个字母、数字、_ 或 - / field name '{}' must be 1-64 of A-Z a-z 0-9 _ -",
                    f.name
                )));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(invalid(format!("字段名重复 / duplicate field '{}'", f.name)));
            }
            let [x1, y1, x2, y2] = f.rect;
            let Some(&(w, h)) = sizes.get(f.page as usize - 1).filter(|_| f.page >= 1) else {
                return Err(invalid(format!(
                    "字段 {} 的页码 {} 不存在 / field {}: no page {}",
                    f.name, f.page, f.name, f.page
                )));
            };
            if !(x2 > x1 && y2 > y1 && x1 >= 0.0 && y1 >= 0.0 && x2 <= w && y2 <= h) {
                return Err(invalid(format!(
                    "字段 {} 的位置超出页面 / field {}: rect {:?} is not inside the {w}×{h} page",
                    f.name, f.name, f.rect
                )));
            }
            if (f.kind == FieldKind::Table) == f.columns.is_empty() {
                return Err(invalid(format!(
                    "只有表格字段有 columns，且表格必须有 / field {}: columns belong to (and are required by) tables",
                    f.name
                )));
            }
        }
        Ok(())
    }

    fn base(&self) -> Result<Option<Vec<u8>>> {
        self.base_pdf
            .as_ref()
            .map(|b| {
                let bytes =
                    B64.decode(b.trim()).map_err(|_| invalid("base_pdf 不是 base64 / base_pdf is not base64"))?;
                crate::load(&bytes)?;
                Ok(bytes)
            })
            .transpose()
    }

    /// Width and height of every page.
    fn page_sizes(&self) -> Result<Vec<(f32, f32)>> {
        match self.base()? {
            Some(bytes) => {
                let doc = crate::load(&bytes)?;
                Ok(doc
                    .get_pages()
                    .values()
                    .map(|id| {
                        let mb = crate::media_box(&doc, *id).unwrap_or([0.0, 0.0, 595.0, 842.0]);
                        ((mb[2] - mb[0]) as f32, (mb[3] - mb[1]) as f32)
                    })
                    .collect())
            }
            None => {
                let p = self
                    .page
                    .ok_or_else(|| invalid("模板须有 page 或 base_pdf / a template needs page or base_pdf"))?;
                if !(50.0..=5000.0).contains(&p.width) || !(50.0..=5000.0).contains(&p.height) {
                    return Err(invalid("页面尺寸须在 50–5000 点之间 / page size must be 50-5000 points"));
                }
                Ok(vec![(p.width, p.height)])
            }
        }
    }

    /// The signature boxes.
    pub fn signature_boxes(&self) -> Vec<SignatureBox> {
        self.fields
            .iter()
            .filter(|f| f.kind == FieldKind::Signature)
            .map(|f| SignatureBox { name: f.name.clone(), page: f.page, rect: f.rect })
            .collect()
    }

    /// Check `data` against the fields: an object, every required field present, no unknown key,
    /// values of the right type. Errors list every problem at once.
    pub fn check_data(&self, data: &Value) -> Result<()> {
        let obj = data.as_object().ok_or_else(|| invalid("data 须为 JSON 对象 / data must be a JSON object"))?;
        let mut problems = Vec::new();
        for k in obj.keys() {
            if !self.fields.iter().any(|f| &f.name == k && f.kind != FieldKind::Signature) {
                problems.push(format!("未知字段 / unknown field '{k}'"));
            }
        }
        for f in &self.fields {
            let v = obj.get(&f.name).filter(|v| !v.is_null());
            match (v, f.kind) {
                (_, FieldKind::Signature) => {}
                (None, _) if f.required && !(f.kind == FieldKind::Date && f.default_today) => {
                    problems.push(format!("缺少必填字段 / missing required field '{}'", f.name))
                }
                (None, _) => {}
                (Some(v), FieldKind::Text | FieldKind::Multiline) if !(v.is_string() || v.is_number()) => {
                    problems.push(format!("字段 {} 须为文本 / field '{}' must be text", f.name, f.name))
                }
                (Some(v), FieldKind::Text | FieldKind::Multiline)
                    if v.as_str().is_some_and(|t| t.chars().count() > MAX_TEXT) =>
                {
                    problems.push(format!(
                        "字段 {} 最多 {MAX_TEXT} 字 / field '{}' has at most {MAX_TEXT} characters",
                        f.name, f.name
                    ))
                }
                (Some(v), FieldKind::Date) if parse_date(v).is_none() => problems.push(format!(
                    "字段 {} 须为日期 YYYY-MM-DD / field '{}' must be a date YYYY-MM-DD",
                    f.name, f.name
                )),
                (Some(v), FieldKind::Checkbox) if !v.is_boolean() => {
                    problems.push(format!("字段 {} 须为 true/false / field '{}' must be true or false", f.name, f.name))
                }
                (Some(v), FieldKind::Image)
                    if v.as_str()
                        .and_then(|s| B64.decode(s).ok())
                        .map(|b| image_size(&b))
                        .is_none_or(|r| r.is_err()) =>
                {
                    problems.push(format!("字段 {} 须为 base64 PNG / field '{}' must be a base64 PNG", f.name, f.name))
                }
                (Some(v), FieldKind::Table) => match v.as_array() {
                    None => {
                        problems.push(format!("字段 {} 须为数组 / field '{}' must be an array of rows", f.name, f.name))
                    }
                    Some(rows) => {
                        let cap = self.table_capacity(f);
                        if rows.len() > cap {
                            problems.push(format!(
                                "表格 {} 最多 {cap} 行，给了 {} 行 / table '{}' holds {cap} rows, got {}",
                                f.name,
                                rows.len(),
                                f.name,
                                rows.len()
                            ));
                        }
                        if rows.iter().any(|r| !r.is_object()) {
                            problems
                                .push(format!("表格 {} 的行须为对象 / rows of '{}' must be objects", f.name, f.name));
                        }
                    }
                },
                _ => {}
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(invalid(problems.join("；"))) }
    }

    fn table_capacity(&self, f: &Field) -> usize {
        let rh = f.row_height.unwrap_or(18.0);
        (((f.rect[3] - f.rect[1]) / rh) as usize).saturating_sub(1)
    }

    /// Render with `data` (checked first): a PDF whose signature boxes are empty signature fields.
    pub fn render(&self, data: &Value) -> Result<Vec<u8>> {
        self.check()?;
        self.check_data(data)?;
        let sizes = self.page_sizes()?;
        let base = self.base()?;
        let base_doc = match &base {
            Some(b) => Some(krilla::pdf::PdfDocument::new(std::sync::Arc::new(
                krilla::pdf::Pdf::new(b.clone()).map_err(|e| invalid(format!("base_pdf: {e:?}")))?,
            ))),
            None => None,
        };
        let mut doc = krilla::Document::new();
        for (i, &(w, h)) in sizes.iter().enumerate() {
            let page_no = i as u32 + 1;
            let mut page = doc.start_page_with(PageSettings::from_wh(w, h).ok_or_else(|| invalid("page size"))?);
            let mut s = page.surface();
            if let Some(b) = &base_doc {
                s.draw_pdf_page(b, Size::from_wh(w, h).ok_or_else(|| invalid("page size"))?, i);
            }
            for d in &self.decorations {
                draw_decoration(&mut s, d, page_no, h);
            }
            for f in self.fields.iter().filter(|f| f.page == page_no) {
                draw_field(&mut s, f, data.get(&f.name).filter(|v| !v.is_null()), h)?;
            }
            s.finish();
            page.finish();
        }
        let pdf = doc.finish()?;
        add_signature_fields(&pdf, &self.signature_boxes())
    }
}

fn parse_date(v: &Value) -> Option<chrono::NaiveDate> {
    let s = v.as_str()?;
    chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

fn stroke(s: &mut krilla::surface::Surface, width: f32) {
    s.set_fill(None);
    s.set_stroke(Some(Stroke { paint: rgb::Color::new(0, 0, 0).into(), width, ..Default::default() }));
}

fn line(s: &mut krilla::surface::Surface, h: f32, [x1, y1, x2, y2]: [f32; 4], width: f32) {
    let mut pb = PathBuilder::new();
    pb.move_to(x1, h - y1);
    pb.line_to(x2, h - y2);
    if let Some(p) = pb.finish() {
        stroke(s, width);
        s.draw_path(&p);
        s.set_stroke(None);
    }
}

fn rect(s: &mut krilla::surface::Surface, h: f32, [x1, y1, x2, y2]: [f32; 4], width: f32) {
    let mut pb = PathBuilder::new();
    if let Some(r) = Rect::from_ltrb(x1, h - y2, x2, h - y1) {
        pb.push_rect(r);
    }
    if let Some(p) = pb.finish() {
        stroke(s, width);
        s.draw_path(&p);
        s.set_stroke(None);
    }
}

fn aligned_x(align: Align, left: f32, right: f32, width: f32) -> f32 {
    match align {
        Align::Left => left,
        Align::Center => (left + right - width) / 2.0,
        Align::Right => right - width,
    }
}

fn draw_decoration(s: &mut krilla::surface::Surface, d: &Decoration, page_no: u32, h: f32) {
    match d {
        Decoration::Text { page, text, x, y, size, align } if *page == page_no => {
            let size = size.unwrap_or(10.5);
            let w = draw::text_width(text, size);
            let x = aligned_x(*align, *x, *x, w);
            draw::text(s, (x, h - y), size, text, INK);
        }
        Decoration::Line { page, points, width } if *page == page_no => line(s, h, *points, width.unwrap_or(0.8)),
        Decoration::Rect { page, rect: r, width } if *page == page_no => rect(s, h, *r, width.unwrap_or(0.8)),
        _ => {}
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One line in a box, shrunk to fit its width, vertically centred.
fn fit_line(s: &mut krilla::surface::Surface, f: &Field, text: &str, left: f32, right: f32, y_mid: f32, h: f32) {
    let mut size = f.size.unwrap_or(10.5);
    let w = draw::text_width(text, size);
    if w > right - left && w > 0.0 {
        size *= (right - left) / w;
    }
    let w = draw::text_width(text, size);
    let x = aligned_x(f.align, left, right, w);
    draw::text(s, (x, h - (y_mid - size * 0.35)), size, text, INK);
}

fn draw_field(s: &mut krilla::surface::Surface, f: &Field, v: Option<&Value>, h: f32) -> Result<()> {
    let [x1, y1, x2, y2] = f.rect;
    match f.kind {
        FieldKind::Text => {
            if let Some(v) = v {
                fit_line(s, f, &value_text(v), x1 + 1.0, x2 - 1.0, (y1 + y2) / 2.0, h);
            }
        }
        FieldKind::Multiline => {
            if let Some(v) = v {
                let size = f.size.unwrap_or(10.5);
                let lh = size * 1.4;
                let mut y = y2 - size;
                for line in wrap(&value_text(v), x2 - x1 - 2.0, size) {
                    if y < y1 {
                        break; // what does not fit is cut at the box, never drawn over other fields
                    }
                    draw::text(s, (x1 + 1.0, h - y), size, &line, INK);
                    y -= lh;
                }
            }
        }
        FieldKind::Date => {
            let d = match v {
                Some(v) => parse_date(v),
                None if f.default_today => Some((chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()),
                None => None,
            };
            if let Some(d) = d {
                fit_line(s, f, &d.format("%Y年%m月%d日").to_string(), x1 + 1.0, x2 - 1.0, (y1 + y2) / 2.0, h);
            }
        }
        FieldKind::Checkbox => {
            let side = (x2 - x1).min(y2 - y1);
            rect(s, h, [x1, y1, x1 + side, y1 + side], 0.8);
            if v.and_then(|v| v.as_bool()) == Some(true) {
                let mut pb = PathBuilder::new();
                pb.move_to(x1 + side * 0.2, h - (y1 + side * 0.5));
                pb.line_to(x1 + side * 0.42, h - (y1 + side * 0.22));
                pb.line_to(x1 + side * 0.82, h - (y1 + side * 0.82));
                if let Some(p) = pb.finish() {
                    stroke(s, (side * 0.12).max(0.8));
                    s.draw_path(&p);
                    s.set_stroke(None);
                }
            }
        }
        FieldKind::Image => {
            if let Some(b) = v.and_then(|v| v.as_str()).and_then(|b| B64.decode(b).ok()) {
                let (iw, ih) = image_size(&b)?;
                let scale = ((x2 - x1) / iw as f32).min((y2 - y1) / ih as f32);
                let (dw, dh) = (iw as f32 * scale, ih as f32 * scale);
                let img = krilla::image::Image::from_png(b.into(), true).map_err(invalid)?;
                s.push_transform(&Transform::from_translate(x1 + (x2 - x1 - dw) / 2.0, h - y2 + (y2 - y1 - dh) / 2.0));
                s.draw_image(img, Size::from_wh(dw, dh).ok_or_else(|| invalid("image box"))?);
                s.pop();
            }
        }
        FieldKind::Table => {
            let rh = f.row_height.unwrap_or(18.0);
            let size = f.size.unwrap_or(9.5);
            let mut x = x1;
            let mut y = y2;
            for c in &f.columns {
                let cf = Field { size: Some(size), align: Align::Left, ..f.clone() };
                fit_line(s, &cf, &c.title, x + 2.0, x + c.width - 2.0, y - rh / 2.0, h);
                x += c.width;
            }
            line(s, h, [x1, y - rh, x2, y - rh], 0.6);
            y -= rh;
            for row in v.and_then(|v| v.as_array()).into_iter().flatten() {
                let mut x = x1;
                for c in &f.columns {
                    let cf = Field { size: Some(size), align: Align::Left, ..f.clone() };
                    let t = row.get(&c.key).map(value_text).unwrap_or_default();
                    fit_line(s, &cf, &t, x + 2.0, x + c.width - 2.0, y - rh / 2.0, h);
                    x += c.width;
                }
                y -= rh;
            }
        }
        FieldKind::Signature => {}
    }
    Ok(())
}

/// Break text into lines no wider than `width` (per character: Chinese has no spaces to break at).
fn wrap(text: &str, width: f32, size: f32) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    for para in text.split('\n') {
        // the line's width is kept as characters are added (advances add up): linear, not
        // quadratic, in the text's length
        let (mut cur, mut w) = (String::new(), 0.0f32);
        for c in para.chars() {
            let cw = draw::text_width(c.encode_utf8(&mut buf), size);
            if w + cw > width && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                w = 0.0;
            }
            cur.push(c);
            w += cw;
        }
        out.push(cur);
    }
    out
}

/// Add an AcroForm with an empty signature field per box (the file is not signed yet, so it is
/// rewritten whole).
fn add_signature_fields(pdf: &[u8], boxes: &[SignatureBox]) -> Result<Vec<u8>> {
    let mut doc = crate::inflate::load_mem(pdf).map_err(invalid)?;
    if !boxes.is_empty() {
        let pages = doc.get_pages();
        let mut fields = Vec::new();
        for b in boxes {
            let page_id = *pages.get(&b.page).ok_or_else(|| invalid("signature box page"))?;
            let mut w = Dictionary::new();
            w.set("Type", Object::Name(b"Annot".to_vec()));
            w.set("Subtype", Object::Name(b"Widget".to_vec()));
            w.set("FT", Object::Name(b"Sig".to_vec()));
            w.set("T", Object::String(b.name.as_bytes().to_vec(), lopdf::StringFormat::Literal));
            w.set("F", Object::Integer(4)); // Print
            w.set("P", Object::Reference(page_id));
            w.set("Rect", Object::Array(b.rect.iter().map(|v| Object::Real(*v)).collect()));
            let id = doc.add_object(Object::Dictionary(w));
            fields.push(Object::Reference(id));
            let page = doc.get_object_mut(page_id).and_then(|o| o.as_dict_mut()).map_err(invalid)?;
            let mut annots = page.get(b"Annots").ok().and_then(|a| a.as_array().ok()).cloned().unwrap_or_default();
            annots.push(Object::Reference(id));
            page.set("Annots", Object::Array(annots));
        }
        let mut form = Dictionary::new();
        form.set("Fields", Object::Array(fields));
        let form_id = doc.add_object(Object::Dictionary(form));
        doc.catalog_mut().map_err(invalid)?.set("AcroForm", Object::Reference(form_id));
    }
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(invalid)?;
    Ok(out)
}

/// The two templates medsign ships: 门诊处方笺 and 检验报告单 (id, definition).
pub fn builtin() -> [(&'static str, &'static str); 2] {
    [
        ("outpatient-prescription", include_str!("../templates/outpatient-prescription.json")),
        ("lab-report", include_str!("../templates/lab-report.json")),
    ]
}
