use super::*;

fn doc(objs: &[(u32, &str)]) -> Document {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (n, body) in objs {
        offsets.push((*n, out.len()));
        out.extend_from_slice(format!("{n} 0 obj\n{body}\nendobj\n").as_bytes());
    }
    let size = objs.iter().map(|(n, _)| n + 1).max().unwrap();
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {size}\n").as_bytes());
    for i in 0..size {
        match offsets.iter().find(|(n, _)| *n == i) {
            Some((_, o)) => out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes()),
            None => out.extend_from_slice(b"0000000000 65535 f \n"),
        }
    }
    out.extend_from_slice(format!("trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes());
    Document::load_mem(&out).unwrap()
}

const CATALOG: (u32, &str) = (1, "<< /Type /Catalog /Pages 2 0 R >>");
const PAGES: (u32, &str) = (2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
const PAGE: (u32, &str) = (3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>");
const CONTENT: (u32, &str) = (4, "<< /Length 8 >>\nstream\nBT ET q\nendstream");

fn codes(c: &[Change]) -> Vec<(&'static str, bool)> {
    c.iter().map(|c| (c.code, c.allowed)).collect()
}

#[test]
fn nothing_changed_is_no_change() {
    let a = doc(&[CATALOG, PAGES, PAGE, CONTENT]);
    assert!(analyse(&a, &a, None).is_empty());
}

#[test]
fn page_content_is_never_allowed() {
    let a = doc(&[CATALOG, PAGES, PAGE, CONTENT]);
    let b = doc(&[CATALOG, PAGES, PAGE, (4, "<< /Length 8 >>\nstream\nBT XX q\nendstream")]);
    let c = analyse(&a, &b, None);
    assert_eq!(codes(&c), vec![("OBJECT_CHANGED", false)]);
    assert_eq!(c[0].page, Some(1));
    assert_eq!(c[0].object, "4 0 R");
}

#[test]
fn an_object_appearing_under_an_unchanged_reference_is_a_hidden_change() {
    // the page already points at 5 0 R, which does not exist when signed (the "hide" shadow)
    let page = (3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents [4 0 R 5 0 R] >>");
    let a = doc(&[CATALOG, PAGES, page, CONTENT]);
    let b = doc(&[CATALOG, PAGES, page, CONTENT, (5, "<< /Length 3 >>\nstream\nq Q\nendstream")]);
    let c = analyse(&a, &b, None);
    assert_eq!(codes(&c), vec![("OBJECT_ADDED", false)], "{c:?}");
    // deleting what the page draws is caught too
    let c = analyse(&b, &a, None);
    assert_eq!(codes(&c), vec![("OBJECT_DELETED", false)], "{c:?}");
}

#[test]
fn annotations_follow_the_certification_level() {
    let a = doc(&[CATALOG, PAGES, PAGE, CONTENT]);
    let annotated = doc(&[
        CATALOG,
        PAGES,
        (3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots [5 0 R] >>"),
        CONTENT,
        (5, "<< /Type /Annot /Subtype /FreeText /Rect [0 0 100 100] /Contents (10x dose) >>"),
    ]);
    let ok = analyse(&a, &annotated, Some(3));
    assert!(ok.iter().all(|c| c.allowed), "{ok:?}");
    assert!(ok.iter().any(|c| c.code == "ANNOTATION_ADDED" && c.page == Some(1)));
    for level in [None, Some(1), Some(2)] {
        let c = analyse(&a, &annotated, level);
        assert!(c.iter().any(|c| c.code == "ANNOTATION_ADDED" && !c.allowed), "{level:?}: {c:?}");
    }
}

#[test]
fn signature_fields_and_dss_are_allowed_catalog_keys_are_not() {
    let a = doc(&[CATALOG, PAGES, PAGE, CONTENT]);
    let signed_later = doc(&[
        (1, "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] /SigFlags 3 >> /DSS 7 0 R >>"),
        PAGES,
        (3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots [5 0 R] >>"),
        CONTENT,
        (5, "<< /FT /Sig /T (B) /Type /Annot /Subtype /Widget /Rect [0 0 0 0] /P 3 0 R /V 6 0 R >>"),
        (6, "<< /Type /Sig /Filter /Adobe.PPKLite /Contents <00> /ByteRange [0 1 2 3] >>"),
        (7, "<< /Certs [] >>"),
    ]);
    for level in [None, Some(2), Some(3)] {
        let c = analyse(&a, &signed_later, level);
        assert!(c.iter().all(|c| c.allowed), "{level:?}: {c:?}");
        assert!(c.iter().any(|c| c.code == "SIGNATURE_ADDED"));
    }
    // P=1: no new signature
    assert!(analyse(&a, &signed_later, Some(1)).iter().any(|c| !c.allowed));
    // an open action is not an allowed catalog change
    let b = doc(&[(1, "<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>"), PAGES, PAGE, CONTENT]);
    assert_eq!(codes(&analyse(&a, &b, None)), vec![("CATALOG_CHANGED", false)]);
}

#[test]
fn a_visible_signature_after_certification_is_the_sneaky_signature() {
    let a = doc(&[CATALOG, PAGES, PAGE, CONTENT]);
    let b = doc(&[
        (1, "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] >> >>"),
        PAGES,
        (3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots [5 0 R] >>"),
        CONTENT,
        (5, "<< /FT /Sig /T (B) /Type /Annot /Subtype /Widget /Rect [0 0 500 800] /P 3 0 R >>"),
    ]);
    assert!(analyse(&a, &b, None).iter().all(|c| c.allowed));
    assert!(analyse(&a, &b, Some(2)).iter().any(|c| c.code == "SIGNATURE_FIELD_ADDED" && !c.allowed));
}

#[test]
fn a_signed_field_cannot_change_its_appearance() {
    let signed = |ap: &str| {
        doc(&[
            (1, "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] >> >>"),
            PAGES,
            (3, "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots [5 0 R] >>"),
            CONTENT,
            (5, "<< /FT /Sig /T (A) /Subtype /Widget /Rect [0 0 50 50] /P 3 0 R /V 6 0 R /AP << /N 7 0 R >> >>"),
            (6, "<< /Type /Sig /Contents <00> /ByteRange [0 1 2 3] >>"),
            (7, ap),
        ])
    };
    let a = signed("<< /Length 3 >>\nstream\nq Q\nendstream");
    let b = signed("<< /Length 3 >>\nstream\nX Q\nendstream");
    let c = analyse(&a, &b, None);
    assert_eq!(codes(&c), vec![("OBJECT_CHANGED", false)], "{c:?}");
}
