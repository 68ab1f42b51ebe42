//! Drawing: the CJK font medsign ships, signature appearances, seal images, and bringing a drawn
//! page into a document as a Form XObject.
//!
//! A fresh hospital machine has no Chinese font, so a subset of Noto Sans CJK SC (SIL OFL 1.1,
//! every GB2312 character plus ASCII and medical symbols; `assets/OFL.txt`) is compiled into the
//! binary. [`use_font_file`] swaps in a full font (config `pdf.font_file`) for rarer characters.
//! krilla lays out the text and embeds only the glyphs used, with a ToUnicode map, so `pdftotext`
//! and screen readers get the Chinese text back.

use crate::{Error, Result, invalid};
use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _, point};
use krilla::color::rgb;
use krilla::geom::{Point, Size};
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::text::{Font, TextDirection};
use lopdf::{Dictionary, Document, Object, ObjectId};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The font compiled into medsign (subset of Noto Sans CJK SC Regular).
pub static EMBEDDED_FONT: &[u8] = include_bytes!("../assets/NotoSansSC-medsign.otf");

static FONT_FILE: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
static FONTS: OnceLock<(Font, FontRef<'static>)> = OnceLock::new();

/// Use a full font file instead of the embedded subset (once, before anything is drawn).
pub fn use_font_file(bytes: Vec<u8>) -> Result<()> {
    FontRef::try_from_slice(&bytes)
        .map_err(|e| invalid(format!("字体文件无法读取 / the font file cannot be read: {e}")))?;
    Font::new(bytes.clone().into(), 0).ok_or_else(|| invalid("字体文件无法读取 / the font file cannot be read"))?;
    FONT_FILE.set(Arc::new(bytes)).map_err(|_| invalid("字体已在使用 / a font is in use already"))
}

fn fonts() -> &'static (Font, FontRef<'static>) {
    FONTS.get_or_init(|| {
        let bytes: &'static [u8] = match FONT_FILE.get() {
            Some(b) => b.as_slice(),
            None => EMBEDDED_FONT,
        };
        let k = Font::new(krilla::Data::from(bytes), 0).expect("font checked when chosen");
        let a = FontRef::try_from_slice(bytes).expect("font checked when chosen");
        (k, a)
    })
}

/// Characters of `text` the font has no glyph for (drawn as empty boxes).
pub fn missing_chars(text: &str) -> Vec<char> {
    let f = &fonts().1;
    let mut v: Vec<char> = text.chars().filter(|c| !c.is_control() && f.glyph_id(*c).0 == 0).collect();
    v.dedup();
    v
}

/// Advance width of `text` at `size` points.
pub fn text_width(text: &str, size: f32) -> f32 {
    let f = fonts().1.as_scaled(PxScale::from(1.0));
    let upem = fonts().1.units_per_em().unwrap_or(1000.0);
    text.chars().map(|c| fonts().1.h_advance_unscaled(f.glyph_id(c))).sum::<f32>() / upem * size
}

/// Text drawn with the shipped font. `at` is the left end of the baseline, y measured from the top.
pub(crate) fn text(surface: &mut krilla::surface::Surface, at: (f32, f32), size: f32, s: &str, color: [u8; 3]) {
    surface.set_fill(Some(Fill { paint: rgb::Color::new(color[0], color[1], color[2]).into(), ..Default::default() }));
    surface.draw_text(Point::from_xy(at.0, at.1), fonts().0.clone(), size, s, false, TextDirection::Auto);
}

/// Widest and tallest image accepted, in pixels: uploads, template image fields, appearances.
pub const MAX_IMAGE_SIDE: u32 = 4096;

fn unreadable(e: impl std::fmt::Display) -> Error {
    invalid(format!("图片无法读取（须为 PNG）/ the image cannot be read (PNG expected): {e}"))
}

/// A reader of `bytes` that refuses, while decoding, more than [`MAX_IMAGE_SIDE`] either way or
/// more memory than such an image needs.
fn bounded_reader(bytes: &[u8]) -> Result<image::ImageReader<std::io::Cursor<&[u8]>>> {
    let mut r = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(unreadable)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    // RGBA, 16 bits a channel, and a converted copy
    limits.max_alloc = Some(u64::from(MAX_IMAGE_SIDE) * u64::from(MAX_IMAGE_SIDE) * 8 * 2);
    r.limits(limits);
    Ok(r)
}

/// Check a PNG and return its pixel size, read from its header only: nothing is decoded, and an
/// image over [`MAX_IMAGE_SIDE`] either way is refused.
pub fn image_size(bytes: &[u8]) -> Result<(u32, u32)> {
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(unreadable)?
        .into_dimensions()
        .map_err(unreadable)?;
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(invalid(format!(
            "图片尺寸 {w}×{h} 超过 {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} 像素 / image size {w}×{h} exceeds \
             {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} pixels"
        )));
    }
    Ok((w, h))
}

/// Normalise an uploaded handwriting or seal image: a transparent PNG trimmed to its ink. A scan
/// without transparency gets its near-white background made transparent. The size is read from
/// the header and checked before any pixel is decoded.
pub fn normalize_image(bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.len() > 4 << 20 {
        return Err(invalid("图片超过 4 MB / the image exceeds 4 MB"));
    }
    let (w, h) = image_size(bytes)?;
    if w < 8 || h < 8 {
        return Err(invalid(format!("图片尺寸须在 8–4096 像素之间 / image size {w}×{h} must be within 8–4096 pixels")));
    }
    let mut img = bounded_reader(bytes)?.decode().map_err(unreadable)?.to_rgba8();
    if img.pixels().all(|p| p[3] == 255) {
        for p in img.pixels_mut() {
            let l = (u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000;
            // ink stays, paper goes; a soft edge in between
            p[3] = if l >= 235 {
                0
            } else if l <= 175 {
                255
            } else {
                ((235 - l) * 255 / 60) as u8
            };
        }
    }
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p[3] > 8 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if x0 == u32::MAX {
        return Err(invalid("图片是空白的 / the image is blank"));
    }
    let cropped = image::imageops::crop_imm(&img, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    png(&cropped)
}

fn png(img: &image::RgbaImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).map_err(invalid)?;
    Ok(out.into_inner())
}

/// Seal red (GB/T 38540 leaves the hue to the issuer; this is the usual vermilion).
pub const SEAL_RED: [u8; 3] = [220, 30, 30];

/// The familiar round red seal as a transparent PNG of `px`×`px`: `rim` along the upper rim,
/// a five-pointed star in the centre, `bottom` (a department, "电子签章专用", …) straight below it.
pub fn round_seal_png(rim: &str, bottom: Option<&str>, px: u32) -> Result<Vec<u8>> {
    let n = rim.chars().count();
    if n == 0 || n > 40 {
        return Err(invalid("印章名称须为 1–40 个字 / the seal name must have 1–40 characters"));
    }
    if !(64..=2048).contains(&px) {
        return Err(invalid("印章尺寸须在 64–2048 像素之间 / seal size must be 64–2048 pixels"));
    }
    let missing = missing_chars(&format!("{rim}{}", bottom.unwrap_or("")));
    if !missing.is_empty() {
        return Err(invalid(format!(
            "字体缺少这些字：{} / the font has no glyph for: {}（可配置 pdf.font_file 使用完整字体 / set pdf.font_file to a full font）",
            missing.iter().collect::<String>(),
            missing.iter().collect::<String>()
        )));
    }
    let s = px as f32;
    let (cx, cy) = (s / 2.0, s / 2.0);
    let mut cov = vec![0f32; (px * px) as usize];
    let mut put = |x: i64, y: i64, c: f32| {
        if x >= 0 && y >= 0 && x < i64::from(px) && y < i64::from(px) {
            let i = (y as u32 * px + x as u32) as usize;
            cov[i] = cov[i].max(c.clamp(0.0, 1.0));
        }
    };
    // the ring
    let r_out = s / 2.0 - s * 0.01;
    let ring = s * 0.035;
    for y in 0..px {
        for x in 0..px {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            put(x.into(), y.into(), ((d - (r_out - ring)).min(r_out - d) + 0.5).min(1.0));
        }
    }
    // the star, 4×4 supersampled
    let (big, small) = (s * 0.16, s * 0.16 * 0.382);
    let star: Vec<(f32, f32)> = (0..10)
        .map(|k| {
            let a = std::f32::consts::PI / 5.0 * k as f32;
            let r = if k % 2 == 0 { big } else { small };
            (cx + r * a.sin(), cy - r * a.cos())
        })
        .collect();
    let inside = |px_: f32, py: f32| {
        let mut c = false;
        let mut j = star.len() - 1;
        for i in 0..star.len() {
            let (xi, yi) = star[i];
            let (xj, yj) = star[j];
            if (yi > py) != (yj > py) && px_ < (xj - xi) * (py - yi) / (yj - yi) + xi {
                c = !c;
            }
            j = i;
        }
        c
    };
    for y in (cy - big) as i64..=(cy + big) as i64 + 1 {
        for x in (cx - big) as i64..=(cx + big) as i64 + 1 {
            let mut hits = 0;
            for sy in 0..4 {
                for sx in 0..4 {
                    if inside(x as f32 + (sx as f32 + 0.5) / 4.0, y as f32 + (sy as f32 + 0.5) / 4.0) {
                        hits += 1;
                    }
                }
            }
            put(x, y, hits as f32 / 16.0);
        }
    }
    // the rim text: each character upright, then turned to face outward
    let font = &fonts().1;
    let r_text_outer = r_out - ring - s * 0.03;
    let max_span = 250f32.to_radians();
    let mut glyph_px = s * 0.15;
    let step = |g: f32| g * 1.08 / (r_text_outer - g / 2.0);
    if step(glyph_px) * n as f32 > max_span {
        while step(glyph_px) * n as f32 > max_span && glyph_px > 4.0 {
            glyph_px *= 0.97;
        }
    }
    let r_c = r_text_outer - glyph_px / 2.0;
    let span = step(glyph_px) * n as f32;
    for (i, ch) in rim.chars().enumerate() {
        let a = -span / 2.0 + step(glyph_px) * (i as f32 + 0.5);
        let (gcx, gcy) = (cx + r_c * a.sin(), cy - r_c * a.cos());
        if let Some((buf, w, h)) = raster_glyph(font, ch, glyph_px) {
            let (hw, hh) = (w as f32 / 2.0, h as f32 / 2.0);
            let reach = (hw * hw + hh * hh).sqrt().ceil() as i64 + 1;
            let (sin, cos) = a.sin_cos();
            for y in gcy as i64 - reach..=gcy as i64 + reach {
                for x in gcx as i64 - reach..=gcx as i64 + reach {
                    let (vx, vy) = (x as f32 + 0.5 - gcx, y as f32 + 0.5 - gcy);
                    // rotate back by a (clockwise on screen) into the upright glyph
                    let (lx, ly) = (vx * cos + vy * sin + hw, -vx * sin + vy * cos + hh);
                    put(x, y, sample(&buf, w, h, lx, ly));
                }
            }
        }
    }
    // the straight bottom line
    if let Some(b) = bottom.filter(|b| !b.is_empty()) {
        let bn = b.chars().count() as f32;
        let size = (s * 0.1).min((r_out * 1.2) / (bn * 1.05));
        let mut x = cx - bn * size * 1.02 / 2.0;
        let yc = cy + big + s * 0.1;
        for ch in b.chars() {
            if let Some((buf, w, h)) = raster_glyph(font, ch, size) {
                let (ox, oy) = ((x + size * 1.02 / 2.0 - w as f32 / 2.0) as i64, (yc - h as f32 / 2.0) as i64);
                for gy in 0..h {
                    for gx in 0..w {
                        put(ox + gx as i64, oy + gy as i64, buf[gy * w + gx]);
                    }
                }
            }
            x += size * 1.02;
        }
    }
    let mut img = image::RgbaImage::new(px, px);
    for (i, p) in img.pixels_mut().enumerate() {
        *p = image::Rgba([SEAL_RED[0], SEAL_RED[1], SEAL_RED[2], (cov[i] * 255.0).round() as u8]);
    }
    png(&img)
}

/// Coverage bitmap of one character, tightly cropped (`None` for a blank glyph such as a space).
fn raster_glyph(font: &FontRef<'static>, ch: char, px: f32) -> Option<(Vec<f32>, usize, usize)> {
    let g = font.glyph_id(ch).with_scale_and_position(PxScale::from(px * 1.15), point(0.0, 0.0));
    let og = font.outline_glyph(g)?;
    let b = og.px_bounds();
    let (w, h) = (b.width() as usize, b.height() as usize);
    if w == 0 || h == 0 {
        return None;
    }
    let mut buf = vec![0f32; w * h];
    og.draw(|x, y, c| {
        if (x as usize) < w && (y as usize) < h {
            buf[y as usize * w + x as usize] = c;
        }
    });
    Some((buf, w, h))
}

/// Bilinear sample of a coverage bitmap at a pixel-centre position.
fn sample(buf: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let (x, y) = (x - 0.5, y - 0.5);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xx: f32, yy: f32| {
        if xx < 0.0 || yy < 0.0 || xx >= w as f32 || yy >= h as f32 { 0.0 } else { buf[yy as usize * w + xx as usize] }
    };
    at(x0, y0) * (1.0 - fx) * (1.0 - fy)
        + at(x0 + 1.0, y0) * fx * (1.0 - fy)
        + at(x0, y0 + 1.0) * (1.0 - fx) * fy
        + at(x0 + 1.0, y0 + 1.0) * fx * fy
}

/// What a visible signature shows.
#[derive(Debug, Clone, Default)]
pub struct Appearance {
    /// handwriting or seal (PNG, transparent background)
    pub image: Option<Vec<u8>>,
    /// text lines beside the image (name, time, certificate serial …), Chinese welcome
    pub lines: Vec<String>,
}

const INK: [u8; 3] = [20, 30, 60];

/// Draw the appearance of a `w`×`h` point signature box as a one-page PDF (krilla).
pub fn appearance_pdf(a: &Appearance, w: f32, h: f32) -> Result<Vec<u8>> {
    let mut doc = krilla::Document::new();
    let settings = PageSettings::from_wh(w, h).ok_or_else(|| invalid("签名框尺寸无效 / invalid box size"))?;
    let mut page = doc.start_page_with(settings);
    let mut surface = page.surface();
    let pad = (h * 0.04).clamp(1.0, 4.0);
    let mut text_x = pad;
    // a wide box: image on the left, text on the right; a squarish one (a seal box): the image
    // fills it and the text runs across its lower part, as stamped seals overlap text on paper
    let side_by_side = w >= 1.6 * h;
    if let Some(img) = &a.image {
        let (iw, ih) = image_size(img)?;
        let image = krilla::image::Image::from_png(img.clone().into(), true).map_err(invalid)?;
        let room_w = if a.lines.is_empty() || !side_by_side { w - 2.0 * pad } else { (w * 0.45).min(h * 1.6) };
        let scale = (room_w / iw as f32).min((h - 2.0 * pad) / ih as f32);
        let (dw, dh) = (iw as f32 * scale, ih as f32 * scale);
        let (x, y) = (pad + (room_w - dw) / 2.0, (h - dh) / 2.0);
        surface.push_transform(&krilla::geom::Transform::from_translate(x, y));
        surface.draw_image(image, Size::from_wh(dw, dh).ok_or_else(|| invalid("image too small"))?);
        surface.pop();
        if side_by_side {
            text_x = pad + room_w + pad;
        }
    }
    let text_h = if a.image.is_some() && !side_by_side { h * 0.3 } else { h };
    if !a.lines.is_empty() {
        let avail = (w - text_x - pad).max(1.0);
        let mut size = ((text_h - 2.0 * pad) / (a.lines.len() as f32 * 1.3)).min(12.0);
        for l in &a.lines {
            let lw = text_width(l, size);
            if lw > avail {
                size = size * avail / lw;
            }
        }
        let size = size.max(2.5);
        let block = size * 1.3 * a.lines.len() as f32;
        let top = if text_h < h { h - pad - block } else { (h - block) / 2.0 };
        for (i, l) in a.lines.iter().enumerate() {
            let baseline = top + size * 1.3 * (i as f32 + 1.0) - size * 0.3;
            text(&mut surface, (text_x, baseline), size, l, INK);
        }
    }
    surface.finish();
    page.finish();
    doc.finish().map_err(|e| invalid(format!("绘制签名外观失败 / drawing the appearance failed: {e:?}")))
}

/// An appearance drawn lately, parsed, with everything its drawing depended on.
struct Drawn {
    image: Option<Vec<u8>>,
    lines: Vec<String>,
    size: (u32, u32),
    doc: Arc<Document>,
}

/// How many drawn appearances are kept, and the largest kept (the drawing and its image).
const DRAWN_KEEP: usize = 8;
const DRAWN_MAX_BYTES: usize = 1 << 20;

static DRAWN: std::sync::Mutex<std::collections::VecDeque<Drawn>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// [`appearance_pdf`], parsed — from the last few drawn when the same appearance comes again.
/// A batch seals a hundred documents a second with one seal image and the same lines (the time
/// is shown to the second), and drawing one — the image decoded and compressed again, the font
/// subset — cost more than the rest of the signature's PDF work. The key is every input of the
/// drawing, compared in full; the entries are few and bounded.
pub(crate) fn appearance_doc(a: &Appearance, w: f32, h: f32) -> Result<Arc<Document>> {
    let size = (w.to_bits(), h.to_bits());
    let kept = || DRAWN.lock().unwrap_or_else(|e| e.into_inner());
    let same = |d: &&Drawn| d.size == size && d.lines == a.lines && d.image == a.image;
    if let Some(d) = kept().iter().find(same) {
        return Ok(d.doc.clone());
    }
    let pdf = appearance_pdf(a, w, h)?;
    let doc = Arc::new(crate::inflate::load_mem(&pdf).map_err(invalid)?);
    if pdf.len() + a.image.as_ref().map_or(0, Vec::len) <= DRAWN_MAX_BYTES {
        let mut k = kept();
        // several workers may have drawn the same one meanwhile (a new second): kept once
        if let Some(d) = k.iter().find(same) {
            return Ok(d.doc.clone());
        }
        if k.len() == DRAWN_KEEP {
            k.pop_front();
        }
        k.push_back(Drawn { image: a.image.clone(), lines: a.lines.clone(), size, doc: doc.clone() });
    }
    Ok(doc)
}

/// Bring page 1 of `doc` (a PDF made by krilla) into another document as a Form XObject: every
/// object it needs is copied under new numbers from `alloc`. Returns the form's id and the objects.
pub(crate) fn page_as_form(
    doc: &Document,
    alloc: &mut dyn FnMut() -> ObjectId,
) -> Result<(ObjectId, Vec<(ObjectId, Object)>)> {
    let page_id = *doc.get_pages().get(&1).ok_or_else(|| invalid("appearance has no page"))?;
    let page = doc.get_object(page_id).and_then(|o| o.as_dict()).map_err(invalid)?;
    let bbox = crate::media_box(doc, page_id).ok_or_else(|| invalid("appearance has no MediaBox"))?;
    let content = crate::inflate::page_content(doc, page_id, &mut crate::inflate::Budget::default())?;
    let mut map = HashMap::new();
    let mut out = Vec::new();
    let resources = match page.get(b"Resources") {
        Ok(r) => copy_object(doc, r, &mut map, alloc, &mut out),
        Err(_) => Object::Dictionary(Dictionary::new()),
    };
    let mut d = Dictionary::new();
    d.set("Type", Object::Name(b"XObject".to_vec()));
    d.set("Subtype", Object::Name(b"Form".to_vec()));
    d.set("BBox", Object::Array(bbox.iter().map(|v| Object::Real(*v as f32)).collect()));
    d.set("Resources", resources);
    if let Ok(g) = page.get(b"Group") {
        let g = copy_object(doc, g, &mut map, alloc, &mut out);
        d.set("Group", g);
    }
    let id = alloc();
    out.push((id, Object::Stream(lopdf::Stream::new(d, content))));
    Ok((id, out))
}

fn copy_object(
    doc: &Document,
    o: &Object,
    map: &mut HashMap<ObjectId, ObjectId>,
    alloc: &mut dyn FnMut() -> ObjectId,
    out: &mut Vec<(ObjectId, Object)>,
) -> Object {
    match o {
        Object::Reference(id) => {
            if let Some(n) = map.get(id) {
                return Object::Reference(*n);
            }
            let n = alloc();
            map.insert(*id, n);
            let target = doc.get_object(*id).cloned().unwrap_or(Object::Null);
            let copied = copy_object(doc, &target, map, alloc, out);
            out.push((n, copied));
            Object::Reference(n)
        }
        Object::Array(a) => Object::Array(a.iter().map(|x| copy_object(doc, x, map, alloc, out)).collect()),
        Object::Dictionary(d) => Object::Dictionary(copy_dict(doc, d, map, alloc, out)),
        Object::Stream(s) => {
            let d = copy_dict(doc, &s.dict, map, alloc, out);
            let mut st = lopdf::Stream::new(d, s.content.clone());
            st.allows_compression = false;
            Object::Stream(st)
        }
        x => x.clone(),
    }
}

fn copy_dict(
    doc: &Document,
    d: &Dictionary,
    map: &mut HashMap<ObjectId, ObjectId>,
    alloc: &mut dyn FnMut() -> ObjectId,
    out: &mut Vec<(ObjectId, Object)>,
) -> Dictionary {
    let mut n = Dictionary::new();
    for (k, v) in d.iter() {
        if k.as_slice() != b"Length" {
            n.set(k.clone(), copy_object(doc, v, map, alloc, out));
        }
    }
    n
}

impl From<krilla::error::KrillaError> for Error {
    fn from(e: krilla::error::KrillaError) -> Self {
        invalid(format!("{e:?}"))
    }
}
