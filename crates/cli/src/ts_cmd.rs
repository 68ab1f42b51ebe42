//! `medsign ts`: an RFC 3161 client. `query` sends a TimeStampReq (random nonce, certReq) to a
//! TSA over HTTP and checks the answer (status, nonce echo, imprint) before writing it; `verify`
//! checks a reply or token against a file and trusted roots. Exit 0 only when valid.

use crate::files::{self, CliError};
use clap::{Args, Subcommand};
use medsign_crypto::HashAlg;
use medsign_pki::{
    cms::{self, Stamped, VerifyOptions},
    der::{Decode, Encode, asn1::Int},
    time::display_cst,
    tsp::{self, MessageImprint, TimeStampReq, TimeStampResp},
};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum TsCommand {
    /// 向时间戳服务申请时间戳 / ask a TSA for a timestamp (RFC 3161 over HTTP)
    Query(QueryArgs),
    /// 验证时间戳 / verify a timestamp reply or token against the stamped file
    Verify(TsVerifyArgs),
}

#[derive(Args)]
pub struct QueryArgs {
    /// 时间戳服务地址 / TSA URL, e.g. http://127.0.0.1:7080/tsa/sm2
    #[arg(long)]
    url: String,
    /// 要加时间戳的文件 / the file to stamp
    #[arg(long = "in")]
    input: PathBuf,
    /// 摘要算法 / digest: sm3 | sha256 | sha384 | sha512
    #[arg(long, default_value = "sm3")]
    alg: String,
    /// 要求的策略 OID / request this policy
    #[arg(long)]
    policy: Option<String>,
    /// 不要求返回证书 / do not ask for the TSA certificate (certReq false)
    #[arg(long)]
    no_cert: bool,
    /// 输出（TimeStampResp，DER）/ where to write the reply (DER TimeStampResp, like openssl ts -reply)
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct TsVerifyArgs {
    /// 时间戳回复或令牌 / the reply (.tsr) or token (DER)
    file: PathBuf,
    /// 被加时间戳的文件 / the stamped file
    #[arg(long = "in")]
    input: PathBuf,
    /// 信任的根证书 / trusted roots (PEM, repeatable)
    #[arg(long, required = true)]
    trust: Vec<PathBuf>,
    /// 额外证书（令牌不含证书时需要 TSA 证书）/ extra certificates (the TSA's, when the token has none)
    #[arg(long)]
    certs: Vec<PathBuf>,
    /// 机器可读输出 / JSON output
    #[arg(long)]
    json: bool,
}

pub fn ts(c: TsCommand) -> Result<i32, CliError> {
    match c {
        TsCommand::Query(a) => query(a),
        TsCommand::Verify(a) => verify(a),
    }
}

fn query(a: QueryArgs) -> Result<i32, CliError> {
    let h = HashAlg::from_name(&a.alg).ok_or_else(|| {
        CliError::usage("--alg 须为 sm3、sha256、sha384 或 sha512", "--alg must be sm3, sha256, sha384 or sha512")
    })?;
    let data = files::read(&a.input)?;
    let mut nonce = medsign_crypto::rng::bytes::<8>().map_err(|e| CliError(e.to_string()))?.to_vec();
    nonce[0] = (nonce[0] & 0x7f) | 0x01;
    let policy = match &a.policy {
        Some(p) => Some(p.parse().map_err(|_| CliError::usage("--policy 不是 OID", "--policy is not an OID"))?),
        None => None,
    };
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint::of(h, &data),
        req_policy: policy,
        nonce: Some(Int::new(&nonce).expect("positive")),
        cert_req: !a.no_cert,
        extensions: None,
    };
    let body = req.to_der().map_err(|e| CliError(e.to_string()))?;
    let url = a.url.clone();
    let resp = crate::server_cmd::runtime()?.block_on(async move {
        let r = reqwest::Client::new()
            .post(&url)
            .header("Content-Type", "application/timestamp-query")
            .body(body)
            .send()
            .await
            .map_err(|e| CliError(format!("无法连接时间戳服务 / cannot reach the TSA {url}: {e}")))?;
        let status = r.status();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let bytes = r.bytes().await.map_err(|e| CliError(format!("读取回复失败 / reading the reply: {e}")))?;
        if !status.is_success() || !ct.starts_with("application/timestamp-reply") {
            return Err(CliError(format!(
                "时间戳服务返回 HTTP {status}（{ct}）/ the TSA answered HTTP {status} ({ct}): {}",
                String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>()
            )));
        }
        Ok(bytes.to_vec())
    })?;
    let r = TimeStampResp::from_der(&resp)
        .map_err(|e| CliError(format!("回复不是 TimeStampResp / not a TimeStampResp: {e}")))?;
    if r.status.status > 1 {
        eprintln!(
            "时间戳被拒绝 / refused: status {} {}",
            r.status.status,
            r.status.status_string.clone().unwrap_or_default().join(" ")
        );
        return Ok(1);
    }
    let token = r.time_stamp_token.ok_or_else(|| CliError("回复里没有令牌 / the reply has no token".into()))?;
    let parsed = cms::Parsed::from_bytes(&token.to_der().map_err(|e| CliError(e.to_string()))?)
        .map_err(|e| CliError(e.to_string()))?;
    let info = parsed
        .content()
        .ok()
        .flatten()
        .and_then(|c| tsp::TstInfo::from_der(&c).ok())
        .ok_or_else(|| CliError("令牌不含 TSTInfo / the token has no TSTInfo".into()))?;
    if info.nonce != req.nonce || info.message_imprint != req.message_imprint {
        return Err(CliError(
            "回复与请求不符（随机数或摘要）/ the reply does not match the request (nonce or imprint)".into(),
        ));
    }
    files::write(&a.out, &resp, false)?;
    println!(
        "时间 / time: {}  精度 / accuracy: {} µs  序列号 / serial: {}  → {}",
        display_cst(info.gen_time.0),
        info.accuracy.map(|x| x.to_micros()).unwrap_or(0),
        hex::encode_upper(info.serial_number.as_bytes()),
        a.out.display()
    );
    Ok(0)
}

fn verify(a: TsVerifyArgs) -> Result<i32, CliError> {
    let raw = files::read(&a.file)?;
    let token = match TimeStampResp::from_der(&raw) {
        Ok(r) => match r.time_stamp_token {
            Some(t) => t.to_der().map_err(|e| CliError(e.to_string()))?,
            None => {
                eprintln!("该回复没有令牌（被拒绝）/ the reply carries no token (refused): status {}", r.status.status);
                return Ok(1);
            }
        },
        Err(_) => raw,
    };
    let data = files::read(&a.input)?;
    let mut trust = Vec::new();
    for t in &a.trust {
        trust.extend(files::certs(t)?);
    }
    let mut extra = Vec::new();
    for c in &a.certs {
        extra.extend(files::certs(c)?);
    }
    let opts = VerifyOptions { trust, extra_certs: extra, ..Default::default() };
    let (rep, info) = cms::verify_timestamp_token(&token, Stamped::Data(&data), &opts);
    let Some(info) = info else {
        return Err(CliError::file(&a.file, "不是时间戳", &rep.integrity.detail));
    };
    let ok = rep.ok();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "valid": ok,
                "time": rep.time,
                "accuracy_us": rep.accuracy_us,
                "serial": hex::encode_upper(info.serial_number.as_bytes()),
                "policy": info.policy.to_string(),
                "tsa": rep.tsa,
                "integrity": rep.integrity,
                "chain": rep.chain,
            })
        );
    } else {
        println!("{}", if ok { "时间戳有效 / timestamp VALID" } else { "时间戳无效 / timestamp INVALID" });
        if let Some(t) = rep.time {
            println!("  时间 / time: {}  ({})", display_cst(t), t.to_rfc3339());
        }
        println!("  精度 / accuracy: {} µs", rep.accuracy_us.unwrap_or(0));
        println!("  序列号 / serial: {}", hex::encode_upper(info.serial_number.as_bytes()));
        println!("  策略 / policy: {}", info.policy);
        println!("  时间戳服务 / TSA: {}", rep.tsa.clone().unwrap_or_default());
        println!("  完整性 / integrity: {} {}", if rep.integrity.ok { "✔" } else { "✘" }, rep.integrity.detail);
        println!("  证书链 / chain: {} {}", if rep.chain.ok { "✔" } else { "✘" }, rep.chain.detail);
    }
    Ok(if ok { 0 } else { 1 })
}
