//! Verification of what flows produced: CMS signatures over data and signed PDFs.

use super::*;

pub(super) async fn verify_options(db: &Db, cas: &BuiltinCas) -> Result<cms::VerifyOptions> {
    let mut crls = Vec::new();
    for h in [&cas.sm2, &cas.rsa] {
        if let Ok(c) = medsign_pki::crl::Crl::from_bytes(&certs::crl(db, h, 6).await?) {
            crls.push(c);
        }
    }
    Ok(cms::VerifyOptions {
        trust: vec![cas.sm2.root.clone(), cas.rsa.root.clone()],
        extra_certs: vec![cas.sm2.issuing.clone(), cas.rsa.issuing.clone()],
        crls,
        ..Default::default()
    })
}

/// One signature of a verified PDF.
#[derive(Debug, Clone, Serialize)]
pub struct FileSignature {
    /// field name
    pub field: String,
    /// `/SubFilter`
    pub sub_filter: String,
    /// covers the whole file as it is
    pub whole_file: bool,
    /// updates after it that are not later signatures (anything > 0 is a modification)
    pub unsigned_updates_after: usize,
    /// `TOTAL_PASSED` | `INDETERMINATE` | `TOTAL_FAILED`
    pub indication: cms::Indication,
    /// why, when not passed
    pub sub_indication: Option<String>,
    /// the CMS verification (integrity, signer, chain, revocation, timestamp)
    pub report: cms::CmsReport,
}

/// What `POST /api/v1/verify/file` answers.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// worst of the signatures
    pub indication: cms::Indication,
    /// per signature, in signing order
    pub signatures: Vec<FileSignature>,
}

/// Verify every signature of a PDF (R7.4.12): the CMS over its byte range, coverage, and whether
/// the file was changed after it other than by later signatures.
pub async fn verify_file(db: &Db, cas: &BuiltinCas, pdf: &[u8]) -> Result<FileReport> {
    let found = medsign_pdf::signatures(pdf).map_err(|e| Error::Invalid(e.to_string()))?;
    if found.is_empty() {
        return Err(Error::Invalid("该 PDF 没有签名 / the PDF has no signatures".into()));
    }
    let opts = verify_options(db, cas).await?;
    let mut out = Vec::new();
    for s in found {
        let report = cms::verify(&s.cms, Some(&s.covered), &opts).map_err(|e| {
            Error::Invalid(format!("签名 {} 无法解析 / signature {} unreadable: {e}", s.field, s.field))
        })?;
        let (indication, sub) = if s.unsigned_updates_after > 0 {
            (
                cms::Indication::TotalFailed,
                Some("签名后文件被修改 / the file was modified after this signature".to_string()),
            )
        } else {
            (report.indication, None)
        };
        out.push(FileSignature {
            field: s.field,
            sub_filter: s.sub_filter,
            whole_file: s.whole_file,
            unsigned_updates_after: s.unsigned_updates_after,
            indication,
            sub_indication: sub,
            report,
        });
    }
    let worst = if out.iter().any(|s| s.indication == cms::Indication::TotalFailed) {
        cms::Indication::TotalFailed
    } else if out.iter().any(|s| s.indication == cms::Indication::Indeterminate) {
        cms::Indication::Indeterminate
    } else {
        cms::Indication::TotalPassed
    };
    Ok(FileReport { indication: worst, signatures: out })
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

/// Verify a CMS signature (R7.4.11) against the built-in roots, with the CAs' current CRLs.
pub async fn verify_data(db: &Db, cas: &BuiltinCas, signature: &[u8], data: Option<&[u8]>) -> Result<cms::CmsReport> {
    let opts = verify_options(db, cas).await?;
    cms::verify(signature, data, &opts)
        .map_err(|e| Error::Invalid(format!("签名无法解析 / the signature cannot be read: {e}")))
}
