//! `medsign keygen` and `medsign cert new-ca | issue`.

use crate::files::{self, CliError};
use chrono::{Duration, Utc};
use clap::{Args, Subcommand};
use medsign_crypto::{KeyAlg, PrivateKey, PublicKey, signer::KeySigner};
use medsign_pki::{
    alg::Sm2IdPolicy,
    cert::{CertTemplate, Profile, issue},
    csr,
    der::asn1::ObjectIdentifier,
    name::parse_dn,
};
use std::path::PathBuf;

#[derive(Args)]
pub struct KeygenArgs {
    /// 算法 / algorithm: sm2 | p256 | rsa2048 | rsa3072 | rsa4096
    #[arg(long, default_value = "sm2")]
    alg: String,
    /// 输出私钥文件 / output private key (PKCS#8 PEM, mode 0600)
    #[arg(long)]
    out: PathBuf,
    /// 同时写出公钥 / also write the public key (SPKI PEM)
    #[arg(long)]
    pub_out: Option<PathBuf>,
    /// 用口令加密私钥（口令取自此文件或 MEDSIGN_KEY_PASSPHRASE）/ encrypt with a passphrase from this file (or MEDSIGN_KEY_PASSPHRASE)
    #[arg(long)]
    encrypt: bool,
    /// 口令文件 / passphrase file
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

pub fn keygen(a: KeygenArgs) -> Result<i32, CliError> {
    let alg = KeyAlg::from_name(&a.alg).ok_or_else(|| {
        CliError::usage(
            &format!("不支持的算法 '{}'", a.alg),
            "unsupported --alg (sm2, p256, rsa2048, rsa3072, rsa4096)",
        )
    })?;
    let key = PrivateKey::generate(alg).map_err(|e| CliError(format!("密钥生成失败 / key generation failed: {e}")))?;
    let pem = if a.encrypt {
        let pass = files::passphrase(a.passphrase_file.as_deref())?.ok_or_else(|| {
            CliError::usage("--encrypt 需要口令", "--encrypt needs --passphrase-file or MEDSIGN_KEY_PASSPHRASE")
        })?;
        key.to_encrypted_pkcs8_pem(&pass)
    } else {
        key.to_pkcs8_pem()
    }
    .map_err(|e| CliError(format!("密钥编码失败 / key encoding failed: {e}")))?;
    files::write(&a.out, pem.as_bytes(), true)?;
    if let Some(p) = &a.pub_out {
        files::write(p, key.public_key().to_pem().as_bytes(), false)?;
    }
    eprintln!("已生成 {} 私钥 / generated {} key: {}", alg.name(), alg.name(), a.out.display());
    Ok(0)
}

#[derive(Subcommand)]
pub enum CertCommand {
    /// 自签名根 CA 证书 / self-signed root CA certificate
    NewCa(NewCaArgs),
    /// 签发证书 / issue a certificate with a CA
    Issue(IssueArgs),
}

#[derive(Args)]
pub struct NewCaArgs {
    /// CA 私钥 / the CA's private key
    #[arg(long)]
    key: PathBuf,
    /// 主体名 / subject, e.g. "CN=某县人民医院根CA,O=某县人民医院,C=CN"
    #[arg(long)]
    subject: String,
    /// 有效天数 / validity in days
    #[arg(long, default_value_t = 3650)]
    days: u32,
    /// 路径长度限制 / pathLenConstraint (omit for none)
    #[arg(long)]
    path_len: Option<u8>,
    /// 输出证书 / output certificate (PEM)
    #[arg(long)]
    out: PathBuf,
    /// 私钥口令文件 / passphrase file for an encrypted key
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct IssueArgs {
    /// 签发 CA 证书 / issuing CA certificate
    #[arg(long)]
    ca: PathBuf,
    /// 签发 CA 私钥 / issuing CA private key
    #[arg(long)]
    ca_key: PathBuf,
    /// 被签发者公钥（公钥或私钥 PEM）/ subject key (public or private key PEM)
    #[arg(long, conflicts_with = "csr")]
    key_pub: Option<PathBuf>,
    /// 证书请求 / PKCS#10 request (PEM or DER)
    #[arg(long)]
    csr: Option<PathBuf>,
    /// 主体名（使用 CSR 时可省略）/ subject (optional with --csr)
    #[arg(long)]
    subject: Option<String>,
    /// 证书类型 / profile: signer | seal | tsa | ocsp | ca
    #[arg(long, default_value = "signer")]
    profile: String,
    /// 有效天数 / validity in days
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// CRL 分发点 / CRL distribution point URL
    #[arg(long)]
    crl_url: Option<String>,
    /// OCSP 地址 / OCSP responder URL
    #[arg(long)]
    ocsp_url: Option<String>,
    /// 证书策略 OID（可多次）/ certificatePolicies OID (repeatable)
    #[arg(long)]
    policy: Vec<String>,
    /// 输出证书 / output certificate (PEM)
    #[arg(long)]
    out: PathBuf,
    /// CA 私钥口令文件 / passphrase file for an encrypted CA key
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

fn dn(s: &str) -> Result<medsign_pki::x509_cert::name::Name, CliError> {
    parse_dn(s).map_err(|e| CliError::usage("主体名无效", &format!("invalid --subject: {e}")))
}

pub fn cert(c: CertCommand) -> Result<i32, CliError> {
    match c {
        CertCommand::NewCa(a) => new_ca(a),
        CertCommand::Issue(a) => issue_cert(a),
    }
}

fn days(n: u32) -> Result<Duration, CliError> {
    if n == 0 || n > 36_500 {
        return Err(CliError::usage("有效天数须在 1 至 36500 之间", "--days must be between 1 and 36500"));
    }
    Ok(Duration::days(n as i64))
}

fn new_ca(a: NewCaArgs) -> Result<i32, CliError> {
    let pass = files::passphrase(a.passphrase_file.as_deref())?;
    let key = files::private_key(&a.key, pass.as_deref().map(|v| v.as_slice()))?;
    let signer = KeySigner::new(key);
    let now = Utc::now();
    let t = CertTemplate::new(
        dn(&a.subject)?,
        medsign_crypto::Signer::public_key(&signer).clone(),
        Profile::Ca { path_len: a.path_len },
        now - Duration::minutes(5),
        now + days(a.days)?,
    );
    let cert =
        issue(&t, None, &signer).map_err(|e| CliError(format!("证书生成失败 / cannot create the certificate: {e}")))?;
    files::write(&a.out, cert.to_pem().as_bytes(), false)?;
    eprintln!("已生成根 CA 证书 / root CA certificate written: {} (serial {})", a.out.display(), cert.serial_hex());
    Ok(0)
}

fn subject_key(path: &std::path::Path) -> Result<PublicKey, CliError> {
    let b = zeroize::Zeroizing::new(files::read(path)?);
    if let Ok(k) = PublicKey::from_bytes(&b) {
        return Ok(k);
    }
    PrivateKey::from_bytes(&b, None)
        .map(|k| k.public_key())
        .map_err(|e| CliError::file(path, "不是公钥或私钥", format!("not a public or private key: {e}")))
}

fn issue_cert(a: IssueArgs) -> Result<i32, CliError> {
    let profile = Profile::from_name(&a.profile).ok_or_else(|| {
        CliError::usage(&format!("未知证书类型 '{}'", a.profile), "unknown --profile (signer, seal, tsa, ocsp, ca)")
    })?;
    let ca = files::cert(&a.ca)?;
    let pass = files::passphrase(a.passphrase_file.as_deref())?;
    let ca_key = KeySigner::new(files::private_key(&a.ca_key, pass.as_deref().map(|v| v.as_slice()))?);
    if ca.public_key().ok() != Some(medsign_crypto::Signer::public_key(&ca_key)) {
        return Err(CliError::file(&a.ca_key, "与 CA 证书不匹配", "the key does not belong to the CA certificate"));
    }
    let (public_key, subject) = match (&a.key_pub, &a.csr) {
        (Some(p), None) => {
            let s = a
                .subject
                .as_deref()
                .ok_or_else(|| CliError::usage("需要 --subject", "--subject is required with --key-pub"))?;
            (subject_key(p)?, dn(s)?)
        }
        (None, Some(p)) => {
            let req = csr::parse(&files::read(p)?, Sm2IdPolicy::AllowEmpty)
                .map_err(|e| CliError::file(p, "证书请求无效", e))?;
            let subject = match &a.subject {
                Some(s) => dn(s)?,
                None => req.subject,
            };
            (req.public_key, subject)
        }
        _ => return Err(CliError::usage("需要 --key-pub 或 --csr 之一", "give exactly one of --key-pub or --csr")),
    };
    let now = Utc::now();
    let mut t = CertTemplate::new(subject, public_key, profile, now - Duration::minutes(5), now + days(a.days)?);
    if t.not_after > ca.not_after() {
        t.not_after = ca.not_after();
        eprintln!(
            "注意：有效期截至 CA 证书到期日 / note: validity capped at the CA certificate's end {}",
            ca.not_after()
        );
    }
    t.crl_url = a.crl_url;
    t.ocsp_url = a.ocsp_url;
    t.policies = a
        .policy
        .iter()
        .map(|p| {
            ObjectIdentifier::new(p)
                .map_err(|_| CliError::usage(&format!("策略 OID 无效 '{p}'"), "invalid --policy OID"))
        })
        .collect::<Result<_, _>>()?;
    let cert = issue(&t, Some(&ca), &ca_key).map_err(|e| CliError(format!("签发失败 / issuance failed: {e}")))?;
    files::write(&a.out, cert.to_pem().as_bytes(), false)?;
    eprintln!("已签发证书 / certificate issued: {} (serial {})", a.out.display(), cert.serial_hex());
    Ok(0)
}
