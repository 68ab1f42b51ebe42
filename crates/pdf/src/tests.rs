use super::*;
use std::sync::Arc;

fn tiny_pdf() -> Vec<u8> {
    blank_pdf(595, 842)
}

#[test]
fn prepare_and_finish_keep_the_original_and_cover_everything_but_contents() {
    let pdf = tiny_pdf();
    let opts = SignOptions {
        placement: Some(Placement { page: 1, rect: [350.0, 50.0, 550.0, 120.0] }),
        appearance: Appearance { lines: vec!["Signed by Zhang San".into(), "张三 主治医师".into()], image: None },
        name: Some("张三".into()),
        reserve: 64,
        ..Default::default()
    };
    let p = prepare(&pdf, &opts).unwrap();
    let br = p.byte_range();
    assert_eq!(br[0], 0);
    assert_eq!(br[1] + (64 * 2 + 2), br[2]);
    assert_eq!(br[2] + br[3], p.bytes.len());
    assert_eq!(p.covered().len(), br[1] + br[3]);
    assert!(p.bytes.starts_with(&pdf), "the original bytes are untouched");
    let text = String::from_utf8_lossy(&p.bytes);
    assert!(text.contains(&format!("/ByteRange[0 {:010} {:010} {:010}]", br[1], br[2], br[3])), "{text}");
    // kept as parts between two requests, the document comes back the same; bad offsets are refused
    let (bytes, hole) = p.clone().into_parts();
    assert_eq!(Prepared::from_parts(bytes.clone(), hole).unwrap().covered(), p.covered());
    assert!(Prepared::from_parts(bytes.clone(), (hole.0 + 1, hole.1)).is_err());
    assert!(Prepared::from_parts(bytes.clone(), (hole.0, bytes.len() + 1)).is_err());
    assert!(Prepared::from_parts(bytes[..hole.1 - 1].to_vec(), hole).is_err());
    let signed = p.clone().finish(&[0xAB; 60]).unwrap();
    assert!(String::from_utf8_lossy(&signed).contains(&format!("<{}{}>", "AB".repeat(60), "0".repeat(8))));
    assert!(matches!(p.finish(&[0u8; 65]), Err(Error::TooLarge(65, 64))));
    // lopdf reads the update: a widget on the page, an AcroForm with the field and SigFlags 3
    let doc = Document::load_mem(&signed).unwrap();
    let cat = doc.catalog().unwrap();
    let form = doc.get_object(cat.get(b"AcroForm").unwrap().as_reference().unwrap()).unwrap().as_dict().unwrap();
    assert_eq!(form.get(b"SigFlags").unwrap().as_i64().unwrap(), 3);
    assert_eq!(form.get(b"Fields").unwrap().as_array().unwrap().len(), 1);
    // a second signature keeps the first one's bytes and adds a second field
    let p2 =
        prepare(&signed, &SignOptions { field_name: "Signature2".into(), reserve: 64, ..Default::default() }).unwrap();
    assert!(p2.bytes.starts_with(&signed));
    let twice = p2.finish(&[1u8; 10]).unwrap();
    let doc = Document::load_mem(&twice).unwrap();
    let form_id = doc.catalog().unwrap().get(b"AcroForm").unwrap().as_reference().unwrap();
    assert_eq!(
        doc.get_object(form_id).unwrap().as_dict().unwrap().get(b"Fields").unwrap().as_array().unwrap().len(),
        2
    );
    // certification must come first, with P 1–3
    assert!(prepare(&signed, &SignOptions { field_name: "C".into(), certify: Some(2), ..Default::default() }).is_err());
    assert!(prepare(&pdf, &SignOptions { certify: Some(4), ..Default::default() }).is_err());
    // the same field name twice is refused
    assert!(prepare(&twice, &SignOptions { field_name: "Signature2".into(), ..Default::default() }).is_err());
}

#[test]
fn bad_input_is_refused_with_reasons() {
    let pdf = tiny_pdf();
    let e = |r: Result<Prepared>| r.unwrap_err().to_string();
    assert!(e(prepare(b"hello", &SignOptions::default())).contains("not a PDF"));
    let mut broken = pdf.clone();
    broken.truncate(pdf.len() / 2);
    assert!(prepare(&broken, &SignOptions::default()).is_err());
    let off_page =
        SignOptions { placement: Some(Placement { page: 1, rect: [500.0, 50.0, 700.0, 100.0] }), ..Default::default() };
    assert!(e(prepare(&pdf, &off_page)).contains("not inside page"));
    let no_page =
        SignOptions { placement: Some(Placement { page: 3, rect: [0.0, 0.0, 10.0, 10.0] }), ..Default::default() };
    assert!(e(prepare(&pdf, &no_page)).contains("no page 3"));
    let mut enc = pdf.clone();
    let t = String::from_utf8_lossy(&enc).replace("/Root 1 0 R", "/Root 1 0 R /Encrypt << /Filter /Standard >>");
    enc = t.into_bytes();
    assert!(prepare(&enc, &SignOptions::default()).is_err());
}

#[test]
fn signatures_are_found_with_coverage_and_later_updates() {
    let pdf = tiny_pdf();
    let fake_cms = |n: u8| {
        let mut v = vec![0x30, 0x03, 0x02, 0x01, n];
        v.truncate(5);
        v
    };
    let one = prepare(&pdf, &SignOptions { field_name: "A".into(), reserve: 32, ..Default::default() })
        .unwrap()
        .finish(&fake_cms(1))
        .unwrap();
    let two = prepare(&one, &SignOptions { field_name: "B".into(), reserve: 32, ..Default::default() })
        .unwrap()
        .finish(&fake_cms(2))
        .unwrap();
    let found = signatures(&two).unwrap();
    assert_eq!(found.iter().map(|s| s.field.as_str()).collect::<Vec<_>>(), vec!["A", "B"]);
    assert_eq!(found[0].cms, fake_cms(1), "padding removed");
    assert!(!found[0].whole_file && found[1].whole_file);
    assert_eq!((found[0].unsigned_updates_after, found[1].unsigned_updates_after), (0, 0));
    // an appended update that is not a signature is flagged for both
    let mut forged = two.clone();
    let prev = last_startxref(&two).unwrap();
    let form = Document::load_mem(&two).unwrap().catalog().unwrap().get(b"AcroForm").unwrap().as_reference().unwrap().0;
    let obj = format!("1 0 obj\n<< /Type /Catalog /Pages 2 0 R /AcroForm {form} 0 R >>\nendobj\n");
    let xref_at = two.len() + obj.len();
    forged.extend_from_slice(obj.as_bytes());
    forged.extend_from_slice(
        format!("xref\n1 1\n{:010} 00000 n \ntrailer\n<< /Size 20 /Root 1 0 R /Prev {prev} >>\nstartxref\n{xref_at}\n%%EOF\n", two.len())
            .as_bytes(),
    );
    let found = signatures(&forged).unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|s| s.unsigned_updates_after == 1 && !s.whole_file), "{found:?}");
    assert!(signatures(&pdf).unwrap().is_empty());
}

#[test]
fn round_seal_is_red_on_transparent_with_ring_star_and_text() {
    let png = round_seal_png("县人民医院电子签章", Some("电子签章专用"), 300).unwrap();
    let img = image::load_from_memory(&png).unwrap().to_rgba8();
    assert_eq!((img.width(), img.height()), (300, 300));
    assert_eq!(img.get_pixel(2, 2)[3], 0, "corners are transparent");
    assert_eq!(img.get_pixel(150, 150)[3], 255, "the star's centre is solid");
    assert_eq!(img.get_pixel(150, 150)[0], SEAL_RED[0]);
    // the ring: solid on the horizontal radius near the edge
    assert!((140..150).any(|x| img.get_pixel(300 - 1 - (150 - x) / 10 - 4, 150)[3] > 200));
    // rim text above the star: ink between the ring and the star on the vertical axis
    let ink = (20..100).filter(|&y| img.get_pixel(150, y)[3] > 128).count();
    assert!(ink > 5, "rim text at the top ({ink} inked pixels)");
    // the bottom text has ink below the star
    let ink =
        (200..240).flat_map(|y| (100..200).map(move |x| (x, y))).filter(|&(x, y)| img.get_pixel(x, y)[3] > 128).count();
    assert!(ink > 50, "bottom text ({ink})");
    assert!(round_seal_png("", None, 300).is_err());
    assert!(round_seal_png("医院", None, 10).is_err());
}

#[test]
fn images_are_normalised_to_trimmed_transparent_png() {
    // a scan: white paper with a dark stroke
    let mut img = image::RgbaImage::from_pixel(100, 60, image::Rgba([255, 255, 255, 255]));
    for x in 20..70 {
        img.put_pixel(x, 30, image::Rgba([10, 10, 10, 255]));
        img.put_pixel(x, 31, image::Rgba([10, 10, 10, 255]));
    }
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let out = normalize_image(png.get_ref()).unwrap();
    let n = image::load_from_memory(&out).unwrap().to_rgba8();
    assert_eq!((n.width(), n.height()), (50, 2), "trimmed to the ink");
    assert_eq!(n.get_pixel(0, 0)[3], 255);
    let blank = {
        let mut c = std::io::Cursor::new(Vec::new());
        image::RgbaImage::from_pixel(20, 20, image::Rgba([255, 255, 255, 255]))
            .write_to(&mut c, image::ImageFormat::Png)
            .unwrap();
        c.into_inner()
    };
    assert!(normalize_image(&blank).unwrap_err().to_string().contains("blank"));
    assert!(normalize_image(b"not an image").is_err());
}

/// A PNG that is only a header claiming `w` × `h` RGBA pixels (its image data is empty).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let chunk = |out: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]); // zlib of nothing
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn image_dimensions_are_checked_from_the_header_before_decoding() {
    // 60000 × 60000 RGBA would be 13.4 GiB decoded
    let huge = png_header_only(60_000, 60_000);
    assert!(huge.len() < 100);
    for e in [image_size(&huge).unwrap_err(), normalize_image(&huge).unwrap_err()] {
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("exceeds 4096×4096"), "{e}");
    }
    let wide = png_header_only(MAX_IMAGE_SIDE + 1, 8);
    assert!(image_size(&wide).unwrap_err().to_string().contains("exceeds"));
    // the size comes from the header alone: nothing is decoded to learn it
    assert_eq!(image_size(&png_header_only(4000, 3000)).unwrap(), (4000, 3000));
    // an allowed header with no pixel data behind it is still refused when decoded
    let e = normalize_image(&png_header_only(4000, 3000)).unwrap_err().to_string();
    assert!(e.contains("cannot be read"), "{e}");
}

#[test]
fn an_appearance_drawn_again_is_reused_and_any_changed_input_draws_anew() {
    let seal = round_seal_png("复用测试医院", None, 120).unwrap();
    let look =
        |line: &str, image: Option<Vec<u8>>| Appearance { image, lines: vec!["复用测试".into(), line.into()] };
    let a = look("签署时间 2026-12-05 12:00:00", Some(seal.clone()));
    // (other tests draw in parallel and may push it out between two calls: a few tries)
    let first = (0..5)
        .map(|_| draw::appearance_doc(&a, 160.0, 100.0).unwrap())
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| Arc::ptr_eq(&w[0], &w[1]))
        .map(|w| w[1].clone())
        .expect("kept and reused");
    // every input is part of the key: the lines, the image, the box
    let other_time = draw::appearance_doc(&look("签署时间 2026-12-05 12:00:01", Some(seal.clone())), 160.0, 100.0);
    let no_image = draw::appearance_doc(&look("签署时间 2026-12-05 12:00:00", None), 160.0, 100.0);
    let other_image = round_seal_png("复用测试医院二", None, 120).unwrap();
    let other_seal = draw::appearance_doc(&look("签署时间 2026-12-05 12:00:00", Some(other_image)), 160.0, 100.0);
    let other_box = draw::appearance_doc(&a, 161.0, 100.0);
    for d in [other_time, no_image, other_seal, other_box] {
        assert!(!Arc::ptr_eq(&first, &d.unwrap()), "a changed input was answered with a kept drawing");
    }
    // two documents signed with the kept drawing each carry all of it
    let opts = SignOptions {
        placement: Some(Placement { page: 1, rect: [300.0, 50.0, 460.0, 150.0] }),
        appearance: a,
        reserve: 64,
        ..Default::default()
    };
    for _ in 0..2 {
        let signed = prepare(&tiny_pdf(), &opts).unwrap().finish(&[1u8; 10]).unwrap();
        let doc = Document::load_mem(&signed).unwrap();
        let images = doc
            .objects
            .values()
            .filter_map(|o| o.as_stream().ok())
            .filter(|s| s.dict.get(b"Subtype").ok().and_then(|s| s.as_name().ok()) == Some(b"Image".as_slice()))
            .count();
        assert!(images >= 1, "the seal image is in every signed copy");
    }
}

#[test]
fn appearance_embeds_a_cjk_font_subset_and_the_image() {
    let seal = round_seal_png("测试医院", None, 200).unwrap();
    let opts = SignOptions {
        placement: Some(Placement { page: 1, rect: [300.0, 50.0, 560.0, 150.0] }),
        appearance: Appearance {
            image: Some(seal),
            lines: vec!["测试医院（电子签章）".into(), "2026-11-27 20:30:00 北京时间".into(), "证书 0A1B".into()],
        },
        reserve: 64,
        ..Default::default()
    };
    let signed = prepare(&tiny_pdf(), &opts).unwrap().finish(&[1u8; 10]).unwrap();
    let doc = Document::load_mem(&signed).unwrap();
    let mut font_files = 0;
    let mut images = 0;
    for o in doc.objects.values() {
        if let Ok(d) = o.as_dict().or_else(|_| o.as_stream().map(|s| &s.dict)) {
            if d.has(b"FontFile3") || d.has(b"FontFile2") {
                font_files += 1;
            }
            if d.get(b"Subtype").ok().and_then(|s| s.as_name().ok()) == Some(b"Image".as_slice()) {
                images += 1;
            }
        }
    }
    assert_eq!(font_files, 1, "one embedded font subset");
    assert!(images >= 1, "the seal image (and its soft mask)");
    assert!(signed.len() < tiny_pdf().len() + 120_000, "a subset, not the whole font: {} bytes", signed.len());
    assert!(missing_chars("张三").is_empty());
    assert_eq!(missing_chars("𠀀"), vec!['𠀀']);
}

#[test]
fn a_field_placed_in_advance_is_signed_in_place() {
    let t = template::Template::from_json(
        r#"{"name":"t","page":{"width":595,"height":842},
            "fields":[{"name":"doctor","type":"signature","page":1,"rect":[100,100,250,160]}]}"#,
    )
    .unwrap();
    let pdf = t.render(&serde_json::json!({})).unwrap();
    let opts = SignOptions { field_name: "doctor".into(), reserve: 64, ..Default::default() };
    let signed = prepare(&pdf, &opts).unwrap().finish(&[1u8; 10]).unwrap();
    let found = signatures(&signed).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "doctor");
    let doc = Document::load_mem(&signed).unwrap();
    let form = doc.get_object(doc.catalog().unwrap().get(b"AcroForm").unwrap().as_reference().unwrap()).unwrap();
    assert_eq!(form.as_dict().unwrap().get(b"Fields").unwrap().as_array().unwrap().len(), 1, "no second field");
    assert!(prepare(&signed, &opts).unwrap_err().to_string().contains("signed already"));
}

fn prescription_data() -> serde_json::Value {
    serde_json::json!({
        "hospital": "某某县人民医院", "category": "普通", "fee_type": "医保", "department": "内科",
        "outpatient_no": "MZ20261127001", "patient_name": "王小明", "gender": "男", "age": "45岁",
        "diagnosis": "上呼吸道感染；高血压病 2 级",
        "items": [
            {"drug": "阿莫西林胶囊 0.25g×24粒", "dosage": "0.5g", "usage": "口服 每日三次", "quantity": "2盒"},
            {"drug": "硝苯地平控释片 30mg×7片", "dosage": "30mg", "usage": "口服 每日一次", "quantity": "1盒"}
        ],
        "amount": "¥56.80"
    })
}

#[test]
fn builtin_templates_render_with_chinese_text_and_signature_fields() {
    for (id, def) in template::builtin() {
        let t = template::Template::from_json(def).unwrap();
        assert!(!t.signature_boxes().is_empty(), "{id}");
        // required fields are named in the error, all at once
        let e = t.render(&serde_json::json!({})).unwrap_err().to_string();
        assert!(e.contains("patient_name") && e.contains("hospital"), "{e}");
    }
    let t = template::Template::from_json(template::builtin()[0].1).unwrap();
    let pdf = t.render(&prescription_data()).unwrap();
    let doc = load(&pdf).unwrap();
    assert_eq!(doc.get_pages().len(), 1);
    let form = doc.get_object(doc.catalog().unwrap().get(b"AcroForm").unwrap().as_reference().unwrap()).unwrap();
    assert_eq!(
        form.as_dict().unwrap().get(b"Fields").unwrap().as_array().unwrap().len(),
        3,
        "doctor, pharmacist, hospital seal"
    );
    // bad data: unknown key, wrong types, too many rows
    let mut bad = prescription_data();
    bad["colour"] = "red".into();
    bad["date"] = "yesterday".into();
    bad["items"] = serde_json::Value::Array(vec![serde_json::json!({"drug": "x"}); 30]);
    let e = t.render(&bad).unwrap_err().to_string();
    assert!(e.contains("colour") && e.contains("'date'") && e.contains("holds 8 rows"), "{e}");
    // definitions are checked
    assert!(template::Template::from_json(r#"{"name":"x","page":{"width":100,"height":100},"fields":[{"name":"a","type":"text","rect":[0,0,200,10]}]}"#).is_err());
    assert!(template::Template::from_json(r#"{"name":"x","fields":[]}"#).is_err());
}
