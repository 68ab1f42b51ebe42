//! Long-term validation (PAdES B-LT and B-LTA, ETSI EN 319 142-1 § 5.4 and 5.5; ISO 32000-2
//! 12.8.4.3): two more kinds of incremental update after the signatures.
//!
//! - [`add_dss`] adds to the catalog's Document Security Store (`/DSS`) the certificates, OCSP
//!   answers and CRLs a verifier needs, so a signature verifies years later without reaching the
//!   hospital's OCSP responder (B-LT); each signature gets a `/VRI` entry keyed by the uppercase
//!   hex SHA-1 of its `/Contents` value. What the store holds already is kept, and the same
//!   bytes are never stored twice.
//! - [`prepare_doc_timestamp`] reserves a document timestamp (`/Type /DocTimeStamp`, `/SubFilter
//!   /ETSI.RFC3161`); the caller asks a TSA for a token over [`Prepared::covered`] and writes it
//!   with [`Prepared::finish`] (B-LTA). A later DSS + document timestamp over the whole file is an
//!   archive timestamp: it keeps everything before it verifiable after the previous TSA
//!   certificate expires.
//!
//! Both are written like every other update of this crate: the objects, a classic
//! cross-reference section with `/Prev`, earlier bytes untouched.

use crate::{
    Error, Prepared, Result, SignOptions, append_update, form_fields, invalid, load, prepare_as, resolve, write_obj,
};
use lopdf::{Dictionary, Object, ObjectId, Stream};
use std::collections::HashMap;

/// Most items one [`add_dss`] call may add, and their total size.
pub const MAX_ITEMS: usize = 2_000;
/// See [`MAX_ITEMS`].
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// Validation material: DER certificates, OCSPResponses and CRLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationData {
    /// X.509 certificates (DER)
    pub certs: Vec<Vec<u8>>,
    /// OCSPResponse (DER, the whole response as the responder sent it)
    pub ocsps: Vec<Vec<u8>>,
    /// CertificateList (DER)
    pub crls: Vec<Vec<u8>>,
}

impl ValidationData {
    fn count(&self) -> usize {
        self.certs.len() + self.ocsps.len() + self.crls.len()
    }

    fn bytes(&self) -> usize {
        self.certs.iter().chain(&self.ocsps).chain(&self.crls).map(Vec::len).sum()
    }
}

/// What one signature needs: its `/Contents` (the CMS or timestamp token DER as written, without
/// the zero padding — as [`crate::FoundSignature::cms`]) and its validation material (its `/VRI`
/// entry).
#[derive(Debug, Clone)]
pub struct SignatureData {
    /// the signature's DER, to find it in the document
    pub signature: Vec<u8>,
    /// its certificates, OCSP answers, CRLs
    pub data: ValidationData,
}

/// A signature value in the document: its `/SubFilter`, where its byte range ends, and the raw
/// `/Contents` bytes (with the padding).
struct SigValue {
    sub_filter: Vec<u8>,
    end: usize,
    contents: Vec<u8>,
}

fn signature_values(doc: &lopdf::Document) -> Vec<SigValue> {
    form_fields(doc)
        .into_iter()
        .filter_map(|(_, f)| {
            let v = resolve(doc, f.get(b"V").ok()?).ok()?.as_dict().ok()?;
            let contents = v.get(b"Contents").ok()?.as_str().ok()?.to_vec();
            let br = v.get(b"ByteRange").ok()?.as_array().ok()?;
            let n: Vec<i64> = br.iter().filter_map(|x| x.as_i64().ok()).collect();
            let end = match n.as_slice() {
                [_, _, c, d] => usize::try_from(c.checked_add(*d)?).ok()?,
                _ => return None,
            };
            let sub_filter = v.get(b"SubFilter").ok().and_then(|s| s.as_name().ok()).unwrap_or_default().to_vec();
            Some(SigValue { sub_filter, end, contents })
        })
        .collect()
}

/// The `/VRI` key of a signature: uppercase hex SHA-1 of its `/Contents` bytes.
pub fn vri_key(contents: &[u8]) -> String {
    hex::encode_upper(medsign_crypto::hash::sha1_legacy(contents))
}

/// The newest document timestamp's token (DER, padding removed), if the document has one: the
/// one whose byte range ends last.
pub fn newest_document_timestamp(pdf: &[u8]) -> Result<Option<Vec<u8>>> {
    let doc = load(pdf)?;
    Ok(signature_values(&doc)
        .into_iter()
        .filter(|s| s.sub_filter == b"ETSI.RFC3161")
        .max_by_key(|s| s.end)
        .map(|s| trim_der(&s.contents)))
}

/// The signature values (DER, padding removed) of every signature and document timestamp of the
/// document, in file order.
pub fn signature_ders(pdf: &[u8]) -> Result<Vec<Vec<u8>>> {
    let doc = load(pdf)?;
    let mut v = signature_values(&doc);
    v.sort_by_key(|s| s.end);
    Ok(v.into_iter().map(|s| trim_der(&s.contents)).collect())
}

fn trim_der(b: &[u8]) -> Vec<u8> {
    let n = crate::der_len(b).unwrap_or(b.len()).min(b.len());
    b[..n].to_vec()
}

/// Whether the document has a DSS already.
pub fn has_dss(pdf: &[u8]) -> Result<bool> {
    let doc = load(pdf)?;
    Ok(doc.catalog().map_err(invalid)?.has(b"DSS"))
}

/// Append an incremental update that adds `shared` and every signature's data to the document's
/// DSS (made when there is none, kept and extended when there is), with a `/VRI` entry per
/// signature, and registers the ESIC developer extension in the catalog as pyHanko does.
pub fn add_dss(pdf: &[u8], shared: &ValidationData, signatures: &[SignatureData]) -> Result<Vec<u8>> {
    let items = shared.count() + signatures.iter().map(|s| s.data.count()).sum::<usize>();
    let bytes = shared.bytes() + signatures.iter().map(|s| s.data.bytes()).sum::<usize>();
    if items > MAX_ITEMS || bytes > MAX_BYTES {
        return Err(invalid(format!(
            "长期验证数据过多（{items} 项，{bytes} 字节）/ too much validation data ({items} items, {bytes} bytes)"
        )));
    }
    let doc = load(pdf)?;
    let root_id =
        doc.trailer.get(b"Root").and_then(|r| r.as_reference()).map_err(|_| invalid("trailer has no /Root"))?;
    let mut catalog = doc.get_object(root_id).and_then(|o| o.as_dict()).map_err(invalid)?.clone();
    let values = signature_values(&doc);
    let mut next = doc.max_id + 1;
    let mut objects: Vec<(ObjectId, Vec<u8>)> = Vec::new();
    let mut catalog_changed = false;

    let (dss_id, mut dss) = match catalog.get(b"DSS").ok().cloned() {
        Some(Object::Reference(id)) => (id, doc.get_object(id).and_then(|o| o.as_dict()).map_err(invalid)?.clone()),
        other => {
            let id = (next, 0u16);
            next += 1;
            let d = match other {
                Some(Object::Dictionary(d)) => d,
                _ => {
                    let mut d = Dictionary::new();
                    d.set("Type", Object::Name(b"DSS".to_vec()));
                    d
                }
            };
            catalog.set("DSS", Object::Reference(id));
            catalog_changed = true;
            (id, d)
        }
    };

    // the store's arrays as they are, and what they hold already (by content)
    const KINDS: [&[u8]; 3] = [b"Certs", b"OCSPs", b"CRLs"];
    let mut arrays: Vec<Vec<Object>> = Vec::new();
    let mut known: HashMap<(usize, [u8; 32]), ObjectId> = HashMap::new();
    for (k, name) in KINDS.iter().enumerate() {
        let arr = match dss.get(name) {
            Ok(o) => resolve(&doc, o)?.as_array().map_err(invalid)?.clone(),
            Err(_) => vec![],
        };
        for o in &arr {
            if let Ok(id) = o.as_reference()
                && let Ok(Object::Stream(s)) = doc.get_object(id)
            {
                let content = s.decompressed_content_with_limit(MAX_BYTES).unwrap_or_else(|_| s.content.clone());
                known.insert((k, medsign_crypto::hash::sha256(&content)), id);
            }
        }
        arrays.push(arr);
    }
    let mut add = |k: usize, der: &[u8], objects: &mut Vec<(ObjectId, Vec<u8>)>| -> ObjectId {
        let h = medsign_crypto::hash::sha256(der);
        if let Some(id) = known.get(&(k, h)) {
            return *id;
        }
        let id = (next, 0u16);
        next += 1;
        let mut body = Vec::new();
        write_obj(&mut body, &Object::Stream(Stream::new(Dictionary::new(), der.to_vec())));
        objects.push((id, body));
        arrays[k].push(Object::Reference(id));
        known.insert((k, h), id);
        id
    };
    let mut add_all = |v: &ValidationData, objects: &mut Vec<(ObjectId, Vec<u8>)>| -> [Vec<Object>; 3] {
        let mut refs: [Vec<Object>; 3] = Default::default();
        for (k, list) in [&v.certs, &v.ocsps, &v.crls].into_iter().enumerate() {
            for der in list {
                let id = add(k, der, objects);
                let r = Object::Reference(id);
                if !refs[k].contains(&r) {
                    refs[k].push(r);
                }
            }
        }
        refs
    };
    add_all(shared, &mut objects);
    let mut vri = match dss.get(b"VRI") {
        Ok(o) => resolve(&doc, o)?.as_dict().map_err(invalid)?.clone(),
        Err(_) => Dictionary::new(),
    };
    for s in signatures {
        let Some(found) = values.iter().find(|v| !s.signature.is_empty() && v.contents.starts_with(&s.signature))
        else {
            return Err(invalid("文档中没有这个签名 / the signature is not in the document"));
        };
        let refs = add_all(&s.data, &mut objects);
        let key = vri_key(&found.contents);
        let mut entry = match vri.get(key.as_bytes()) {
            Ok(o) => resolve(&doc, o)?.as_dict().map_err(invalid)?.clone(),
            Err(_) => Dictionary::new(),
        };
        for (name, new) in [b"Cert".as_slice(), b"OCSP".as_slice(), b"CRL".as_slice()].into_iter().zip(refs) {
            let mut arr = match entry.get(name) {
                Ok(o) => resolve(&doc, o)?.as_array().map_err(invalid)?.clone(),
                Err(_) => vec![],
            };
            for r in new {
                if !arr.contains(&r) {
                    arr.push(r);
                }
            }
            if !arr.is_empty() {
                entry.set(name, Object::Array(arr));
            }
        }
        vri.set(key.into_bytes(), Object::Dictionary(entry));
    }
    for (name, arr) in KINDS.iter().zip(arrays) {
        if !arr.is_empty() {
            dss.set(*name, Object::Array(arr));
        }
    }
    if !vri.is_empty() {
        dss.set("VRI", Object::Dictionary(vri));
    }
    let mut body = Vec::new();
    write_obj(&mut body, &Object::Dictionary(dss));
    objects.push((dss_id, body));

    // the ESIC developer extension (PAdES on PDF 1.7), as pyHanko registers it
    let mut ext = match catalog.get(b"Extensions") {
        Ok(o) => resolve(&doc, o)?.as_dict().map_err(invalid)?.clone(),
        Err(_) => Dictionary::new(),
    };
    if !ext.has(b"ESIC") {
        let mut esic = Dictionary::new();
        esic.set("Type", Object::Name(b"DeveloperExtensions".to_vec()));
        esic.set("BaseVersion", Object::Name(b"1.7".to_vec()));
        esic.set("ExtensionLevel", Object::Integer(1));
        ext.set("ESIC", Object::Dictionary(esic));
        catalog.set("Extensions", Object::Dictionary(ext));
        catalog_changed = true;
    }
    if catalog_changed {
        let mut body = Vec::new();
        write_obj(&mut body, &Object::Dictionary(catalog));
        objects.push((root_id, body));
    }
    let (out, _) = append_update(pdf, &doc, root_id, &objects, next)?;
    Ok(out)
}

/// Reserve a document timestamp in a new invisible signature field `field_name` (`reserve`
/// bytes for the token). The TSA's imprint goes over [`Prepared::covered`].
pub fn prepare_doc_timestamp(pdf: &[u8], field_name: &str, reserve: usize) -> Result<Prepared> {
    if !(1024..=256 * 1024).contains(&reserve) {
        return Err(Error::Invalid(format!("保留空间须为 1–256 KiB / reserve 1-256 KiB, got {reserve}")));
    }
    let opts = SignOptions { field_name: field_name.to_string(), reserve, ..Default::default() };
    prepare_as(pdf, &opts, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{blank_pdf, prepare, signatures};

    /// A DER SEQUENCE standing in for a CMS (this module never parses it).
    fn fake_der(tag: u8, n: usize) -> Vec<u8> {
        let mut v = vec![0x30, 0x82, (n >> 8) as u8, n as u8];
        v.extend(std::iter::repeat_n(tag, n));
        v
    }

    fn signed() -> (Vec<u8>, Vec<u8>) {
        let p = prepare(&blank_pdf(595, 842), &SignOptions { reserve: 2048, ..Default::default() }).unwrap();
        let cms = fake_der(0xAB, 300);
        (p.finish(&cms).unwrap(), cms)
    }

    fn dss(doc: &lopdf::Document) -> Dictionary {
        let d = doc.catalog().unwrap().get(b"DSS").unwrap().as_reference().unwrap();
        doc.get_object(d).unwrap().as_dict().unwrap().clone()
    }

    fn stream_contents(doc: &lopdf::Document, arr: &Object) -> Vec<Vec<u8>> {
        arr.as_array()
            .unwrap()
            .iter()
            .map(|r| doc.get_object(r.as_reference().unwrap()).unwrap().as_stream().unwrap().content.clone())
            .collect()
    }

    #[test]
    fn dss_is_added_with_vri_and_extended_without_duplicates() {
        let (pdf, cms) = signed();
        let data = ValidationData {
            certs: vec![b"cert-a".to_vec(), b"cert-b".to_vec()],
            ocsps: vec![b"ocsp-a".to_vec()],
            crls: vec![b"crl-a".to_vec()],
        };
        let shared = ValidationData { certs: vec![b"root".to_vec()], ..Default::default() };
        let out = add_dss(&pdf, &shared, &[SignatureData { signature: cms.clone(), data: data.clone() }]).unwrap();
        // an incremental update: the signed file is untouched, the signature still covers it
        assert!(out.starts_with(&pdf));
        assert!(out.ends_with(b"%%EOF\n"));
        let doc = load(&out).unwrap();
        let d = dss(&doc);
        assert_eq!(
            stream_contents(&doc, d.get(b"Certs").unwrap()),
            vec![b"root".to_vec(), b"cert-a".to_vec(), b"cert-b".to_vec()]
        );
        assert_eq!(stream_contents(&doc, d.get(b"OCSPs").unwrap()), vec![b"ocsp-a".to_vec()]);
        assert_eq!(stream_contents(&doc, d.get(b"CRLs").unwrap()), vec![b"crl-a".to_vec()]);
        // the VRI key: SHA-1 of the whole /Contents value (with its zero padding)
        let raw = signature_values(&doc).remove(0).contents;
        assert_eq!(raw.len(), 2048);
        let vri = d.get(b"VRI").unwrap().as_dict().unwrap();
        let entry = vri.get(vri_key(&raw).as_bytes()).unwrap().as_dict().unwrap();
        assert_eq!(stream_contents(&doc, entry.get(b"Cert").unwrap()), vec![b"cert-a".to_vec(), b"cert-b".to_vec()]);
        assert_eq!(stream_contents(&doc, entry.get(b"OCSP").unwrap()), vec![b"ocsp-a".to_vec()]);
        let esic = doc.catalog().unwrap().get(b"Extensions").unwrap().as_dict().unwrap().get(b"ESIC").unwrap();
        assert_eq!(esic.as_dict().unwrap().get(b"ExtensionLevel").unwrap().as_i64().unwrap(), 1);
        // the signature still verifies over the same bytes
        let s = signatures(&out).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].cms, cms);
        assert_eq!(s[0].covered, signatures(&pdf).unwrap()[0].covered);

        // a second update keeps the store: one new certificate, the known ones not stored twice
        let more = ValidationData { certs: vec![b"cert-b".to_vec(), b"cert-c".to_vec()], ..Default::default() };
        let again = add_dss(&out, &more, &[SignatureData { signature: cms.clone(), data: more.clone() }]).unwrap();
        assert!(again.starts_with(&out));
        let doc2 = load(&again).unwrap();
        let d2 = dss(&doc2);
        assert_eq!(
            stream_contents(&doc2, d2.get(b"Certs").unwrap()),
            vec![b"root".to_vec(), b"cert-a".to_vec(), b"cert-b".to_vec(), b"cert-c".to_vec()]
        );
        assert_eq!(stream_contents(&doc2, d2.get(b"CRLs").unwrap()), vec![b"crl-a".to_vec()]);
        let vri = d2.get(b"VRI").unwrap().as_dict().unwrap();
        let entry = vri.get(vri_key(&raw).as_bytes()).unwrap().as_dict().unwrap();
        assert_eq!(
            stream_contents(&doc2, entry.get(b"Cert").unwrap()),
            vec![b"cert-a".to_vec(), b"cert-b".to_vec(), b"cert-c".to_vec()]
        );
        // only the new certificate became a new object
        let stream_count = |b: &[u8]| b.windows(7).filter(|w| w == b"\nstream").count();
        assert_eq!(stream_count(&again) - stream_count(&out), 1);
    }

    #[test]
    fn dss_refuses_unknown_signatures_and_too_much() {
        let (pdf, _) = signed();
        let other = SignatureData { signature: fake_der(0x11, 10), data: ValidationData::default() };
        assert!(
            add_dss(&pdf, &ValidationData::default(), &[other])
                .unwrap_err()
                .to_string()
                .contains("not in the document")
        );
        let big = ValidationData { certs: vec![vec![0u8; 10]; MAX_ITEMS + 1], ..Default::default() };
        assert!(add_dss(&pdf, &big, &[]).unwrap_err().to_string().contains("too much"));
        assert!(add_dss(b"not a pdf", &ValidationData::default(), &[]).is_err());
    }

    #[test]
    fn document_timestamp_covers_everything_before_it() {
        let (pdf, _) = signed();
        let with_dss =
            add_dss(&pdf, &ValidationData { certs: vec![b"c".to_vec()], ..Default::default() }, &[]).unwrap();
        let p = prepare_doc_timestamp(&with_dss, "medsign-doc-ts-1", 4096).unwrap();
        let covered = p.covered();
        assert!(covered.starts_with(&with_dss));
        let [a, b, c, d] = p.byte_range();
        assert_eq!((a, c + d), (0, p.clone().into_parts().0.len()));
        assert!(b < c);
        let token = fake_der(0x5A, 1000);
        let out = p.finish(&token).unwrap();
        let sigs = signatures(&out).unwrap();
        assert_eq!(sigs.len(), 2);
        let ts = &sigs[1];
        assert_eq!(
            (ts.sub_filter.as_str(), ts.field.as_str(), ts.whole_file),
            ("ETSI.RFC3161", "medsign-doc-ts-1", true)
        );
        assert_eq!(ts.cms, token);
        assert_eq!(ts.covered, covered);
        assert_eq!(newest_document_timestamp(&out).unwrap(), Some(token.clone()));
        assert_eq!(newest_document_timestamp(&pdf).unwrap(), None);
        assert_eq!(signature_ders(&out).unwrap().len(), 2);
        // the dictionary is a DocTimeStamp, without /M /Name /Reason
        let doc = load(&out).unwrap();
        let text = String::from_utf8_lossy(&out[with_dss.len()..]).into_owned();
        assert!(text.contains("/Type/DocTimeStamp/Filter/Adobe.PPKLite/SubFilter/ETSI.RFC3161"), "{text}");
        assert!(!text.contains("/Reason") && !text.contains("/M<"));
        assert!(doc.catalog().unwrap().has(b"DSS"));
        // a second one (an archive timestamp) after another DSS update
        let more = add_dss(&out, &ValidationData { crls: vec![b"crl".to_vec()], ..Default::default() }, &[]).unwrap();
        let p2 = prepare_doc_timestamp(&more, "medsign-doc-ts-2", 4096).unwrap();
        let token2 = fake_der(0x77, 900);
        let out2 = p2.finish(&token2).unwrap();
        assert_eq!(newest_document_timestamp(&out2).unwrap(), Some(token2));
        assert!(prepare_doc_timestamp(&out2, "medsign-doc-ts-2", 4096).is_err(), "the field is signed already");
        assert!(prepare_doc_timestamp(&out2, "x", 10).is_err());
    }

    #[test]
    fn document_timestamp_is_allowed_on_a_locked_certified_document() {
        let opts = SignOptions { certify: Some(1), reserve: 2048, ..Default::default() };
        let pdf = prepare(&blank_pdf(595, 842), &opts).unwrap().finish(&fake_der(1, 100)).unwrap();
        assert!(prepare(&pdf, &SignOptions { field_name: "S2".into(), ..Default::default() }).is_err());
        let with_dss =
            add_dss(&pdf, &ValidationData { certs: vec![b"c".to_vec()], ..Default::default() }, &[]).unwrap();
        assert!(prepare_doc_timestamp(&with_dss, "ts", 2048).is_ok());
    }
}
