//! Verification of what flows produced: CMS signatures over data and signed PDFs.

use super::*;

pub(super) async fn verify_options(db: &Db, cas: &BuiltinCas) -> Result<cms::VerifyOptions> {
    let mut crls = Vec::new();
    for h in [&cas.sm2, &cas.rsa] {
        if let Ok(c) = medsign_pki::crl::Crl::from_bytes(&certs::crl(db, h, 6).await?) {
            crls.push(c);
        }
    }
    // the hospital's trust list: outside CAs' roots, intermediates, cross-certificates and CRLs
    let listed = medsign_ca::trust::load(db).await?;
    crls.extend(listed.crls);
    let mut trust = vec![cas.sm2.root.clone(), cas.rsa.root.clone()];
    trust.extend(listed.anchors);
    let mut extra_certs = vec![cas.sm2.issuing.clone(), cas.rsa.issuing.clone()];
    extra_certs.extend(listed.intermediates);
    Ok(cms::VerifyOptions { trust, extra_certs, crls, ..Default::default() })
}

pub use medsign_pdf::verify::{FileSignature, PdfReport as FileReport};

/// Verify every signature and document timestamp of a PDF (R7.4.12) with the engine of
/// `medsign_pdf::verify`: the revision each signs, its CMS or timestamp token, and every change
/// after it against the DocMDP level — trusting the built-in roots and the trust list, with the
/// CAs' current CRLs and whatever long-term validation data the file carries.
pub async fn verify_file(db: &Db, cas: &BuiltinCas, pdf: &[u8]) -> Result<FileReport> {
    let opts = verify_options(db, cas).await?;
    let pdf = pdf.to_vec();
    // parsing every revision is CPU work: off the async workers
    tokio::task::spawn_blocking(move || medsign_pdf::verify::verify(&pdf, &opts))
        .await
        .map_err(|e| Error::internal_from("verify_file", e))?
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// What `GET …/file` returns for a flow: the signed PDF of a file flow (no `signature` query), or
/// the CMS of a data flow (`signature=p7s`): (content type, file name, bytes).
pub async fn download(
    db: &Db,
    app_id: Option<&str>,
    id: &str,
    signature: Option<&str>,
) -> Result<(&'static str, String, Vec<u8>)> {
    let f = get(db, app_id, id).await?;
    let (ctype, ext, signature_alone) = format_of(f.kind).media_type();
    match (signature_alone, signature) {
        (true, Some(s)) if s == ext => {}
        (false, None) => {}
        (true, _) => {
            return Err(Error::Invalid(format!(
                "数据签署流程请用 ?signature={ext} 下载签名 / data flows: download the signature with ?signature={ext}"
            )));
        }
        (false, Some(_)) => {
            return Err(Error::Invalid(
                "PDF 流程直接下载签署后的 PDF（不带 signature 参数）/ file flows: download the signed PDF without ?signature"
                    .into(),
            ));
        }
    }
    Ok((ctype, format!("{}.{ext}", f.doc_no), result_of(db, &f).await?))
}

/// Verify a CMS signature (R7.4.11) against the built-in roots and the trust list, with the CAs'
/// current CRLs.
pub async fn verify_data(db: &Db, cas: &BuiltinCas, signature: &[u8], data: Option<&[u8]>) -> Result<cms::CmsReport> {
    let opts = verify_options(db, cas).await?;
    cms::verify(signature, data, &opts)
        .map_err(|e| Error::Invalid(format!("签名无法解析 / the signature cannot be read: {e}")))
}
