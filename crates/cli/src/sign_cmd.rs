//! `medsign sign`: CMS / PKCS#7 SignedData.

use crate::files::{self, CliError};
use clap::Args;
use medsign_crypto::{SignatureScheme, signer::KeySigner};
use medsign_pki::cms::{CmsSigner, OidStyle, SignOptions, sign as cms_sign};
use std::path::PathBuf;

#[derive(Args)]
pub struct SignArgs {
    /// 签名私钥 / signing key
    #[arg(long)]
    key: PathBuf,
    /// 签名证书 / signer certificate
    #[arg(long)]
    cert: PathBuf,
    /// 附带的中间证书 / intermediate certificates to include
    #[arg(long)]
    chain: Option<PathBuf>,
    /// 待签文件 / file to sign
    #[arg(long = "in")]
    input: PathBuf,
    /// 输出签名 / output signature (DER .p7s)
    #[arg(long)]
    out: PathBuf,
    /// 分离式签名（不含原文）/ detached (content not embedded)
    #[arg(long)]
    detached: bool,
    /// OID 风格 / OID style: rfc5652 | gmt0010
    #[arg(long, default_value = "rfc5652")]
    oids: String,
    /// SM2 用户标识 / SM2 distinguishing ID
    #[arg(long, default_value = "1234567812345678")]
    sm2_id: String,
    /// RSA 使用 PSS 填充 / RSA-PSS instead of PKCS#1 v1.5
    #[arg(long)]
    pss: bool,
    /// 输出 PEM 而非 DER / write PEM instead of DER
    #[arg(long)]
    pem: bool,
    /// 私钥口令文件 / passphrase file for an encrypted key
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

pub fn sign(a: SignArgs) -> Result<i32, CliError> {
    let style = OidStyle::from_name(&a.oids)
        .ok_or_else(|| CliError::usage("未知 OID 风格", "--oids must be rfc5652 or gmt0010"))?;
    let pass = files::passphrase(a.passphrase_file.as_deref())?;
    let key = files::private_key(&a.key, pass.as_deref().map(|v| v.as_slice()))?;
    let mut signer = KeySigner::new(key).with_sm2_id(a.sm2_id.as_bytes());
    if a.pss {
        signer = signer
            .with_scheme(SignatureScheme::RsaPssSha256)
            .map_err(|_| CliError::usage("--pss 仅用于 RSA 密钥", "--pss needs an RSA key"))?;
    }
    let cert = files::cert(&a.cert)?;
    if cert.public_key().ok() != Some(medsign_crypto::Signer::public_key(&signer)) {
        return Err(CliError::file(&a.key, "与证书不匹配", format!("the key does not belong to {}", a.cert.display())));
    }
    let chain = match &a.chain {
        Some(p) => files::certs(p)?,
        None => vec![],
    };
    let content = files::read(&a.input)?;
    let der = cms_sign(
        &content,
        &[CmsSigner { signer: &signer, cert: &cert, chain: &chain }],
        &SignOptions { detached: a.detached, oid_style: style, ..Default::default() },
    )
    .map_err(|e| CliError(format!("签名失败 / signing failed: {e}")))?;
    if a.pem {
        files::write(&a.out, medsign_crypto::keys::pem_encode("CMS", &der).as_bytes(), false)?;
    } else {
        files::write(&a.out, &der, false)?;
    }
    eprintln!("已签名 / signed: {}", a.out.display());
    Ok(0)
}
