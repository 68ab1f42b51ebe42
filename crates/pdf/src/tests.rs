use super::*;

fn tiny_pdf() -> Vec<u8> {
    blank_pdf(595, 842)
}

#[test]
fn prepare_and_finish_keep_the_original_and_cover_everything_but_contents() {
    let pdf = tiny_pdf();
    let opts = SignOptions {
        placement: Some(Placement { page: 1, rect: [350.0, 50.0, 550.0, 120.0] }),
        lines: vec!["Signed by Zhang San".into(), "张三".into()],
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
