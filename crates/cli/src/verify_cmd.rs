//! `medsign verify`: signed PDFs (every signature and document timestamp, with the modification
//! analysis — the same engine as `POST /api/v1/verify/file`), CMS signatures, timestamp tokens and
//! replies, certificates; offline, trusting `--trust` (e.g. the server's `/pki/ca.pem`). A
//! readable report (Chinese, then English) or `--json`. Exit 0 only when valid, 1 when invalid or
//! indeterminate, 2 on errors.

use crate::{
    files::{self, CliError},
    report,
};
use chrono::Utc;
use clap::Args;
use medsign_pki::der::Decode;
use medsign_pki::{
    alg::Sm2IdPolicy,
    cert::Cert,
    cms::{self, VerifyOptions},
    crl::Crl,
    path::{PathOptions, validate},
    time::parse_instant,
};
use std::path::PathBuf;

#[derive(Args)]
pub struct VerifyArgs {
    /// 待验文件：签名的 PDF（含证据报告）、CMS 签名、时间戳或证书 / the file: a signed PDF (evidence
    /// reports too), a CMS signature (.p7s, DER or PEM), a timestamp token or reply (.tsr), or a
    /// certificate
    file: PathBuf,
    /// 原文（分离式签名）/ the signed content, for detached signatures
    #[arg(long)]
    content: Option<PathBuf>,
    /// 信任的根证书（可多次；可用服务器的 /pki/ca.pem）/ trusted root certificates (PEM bundles,
    /// repeatable; the server's /pki/ca.pem will do)
    #[arg(long, required = true)]
    trust: Vec<PathBuf>,
    /// 额外的中间证书 / extra intermediate certificates
    #[arg(long)]
    certs: Vec<PathBuf>,
    /// 吊销列表 / CRLs to consult
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// 验证时刻（无时间戳时）/ validate at this instant when there is no timestamp (RFC 3339)
    #[arg(long)]
    at: Option<String>,
    /// 接受空 SM2 用户标识（OpenSSL 默认）/ accept SM2 signatures made with the empty ID
    #[arg(long)]
    allow_sm2_empty_id: bool,
    /// 吊销状态无法检查时仍可判定有效（报告仍注明未检查）/ accept a certificate whose revocation
    /// could not be checked (the report still says so); default: INDETERMINATE
    #[arg(long)]
    soft_revocation: bool,
    /// 机器可读输出 / JSON output
    #[arg(long)]
    json: bool,
}

pub fn verify(a: VerifyArgs) -> Result<i32, CliError> {
    let data = files::read(&a.file)?;
    let mut trust = Vec::new();
    for t in &a.trust {
        trust.extend(files::certs(t)?);
    }
    let mut extra = Vec::new();
    for c in &a.certs {
        extra.extend(files::certs(c)?);
    }
    let mut crls = Vec::new();
    for c in &a.crl {
        crls.push(Crl::from_bytes(&files::read(c)?).map_err(|e| CliError::file(c, "不是吊销列表", e))?);
    }
    let at = match &a.at {
        Some(s) => Some(parse_instant(s).map_err(|e| CliError::usage("--at 时间格式无效", &e.to_string()))?),
        None => None,
    };
    let sm2_ids = if a.allow_sm2_empty_id { Sm2IdPolicy::AllowEmpty } else { Sm2IdPolicy::Standard };

    // a certificate?
    if let Ok(certs) = Cert::load_all(&data) {
        let leaf = &certs[0];
        let mut pool: Vec<Cert> = certs[1..].to_vec();
        pool.extend(extra);
        let mut o = PathOptions::at(at.unwrap_or_else(Utc::now));
        o.sm2_ids = sm2_ids;
        let result = validate(leaf, &pool, &trust, &o);
        return Ok(report::print_cert(leaf, &result, a.json));
    }
    let content = match &a.content {
        Some(p) => Some(files::read(p)?),
        None => None,
    };
    let opts = VerifyOptions {
        trust,
        tsa_trust: vec![],
        extra_certs: extra,
        crls,
        ocsps: vec![],
        at,
        sm2_ids,
        soft_revocation: a.soft_revocation,
    };
    if data.starts_with(b"%PDF-") {
        let rep = medsign_pdf::verify::verify(&data, &opts)
            .map_err(|e| CliError::file(&a.file, "无法验证", format!("cannot verify: {e}")))?;
        return Ok(report::print_pdf(&rep, a.json));
    }
    // a timestamp reply (.tsr) or a bare token
    let token = match medsign_pki::tsp::TimeStampResp::from_der(&data) {
        Ok(r) => r.time_stamp_token.and_then(|t| medsign_pki::der::Encode::to_der(&t).ok()),
        Err(_) => None,
    }
    .or_else(|| {
        let p = cms::Parsed::from_bytes(&data).ok()?;
        (p.signed_data.encap_content_info.econtent_type == medsign_pki::oid::ID_CT_TST_INFO).then(|| data.clone())
    });
    if let Some(token) = token {
        let stamped = match &content {
            Some(c) => cms::Stamped::Data(c),
            None => cms::Stamped::Unchecked,
        };
        let (rep, _) = cms::verify_timestamp_token(&token, stamped, &opts);
        return Ok(report::print_timestamp(&rep, content.is_some(), a.json));
    }
    let rep = cms::verify(&data, content.as_deref(), &opts)
        .map_err(|e| CliError::file(&a.file, "无法验证", format!("cannot verify: {e}")))?;
    Ok(report::print_cms(&rep, a.json))
}
