//! `medsign gateway`: run the DMZ front exchange; `medsign gateway cert`: issue the tunnel's
//! certificates from the hospital CA.

use crate::files::{self, CliError};
use crate::server_cmd::{Place, init_logging, runtime, shutdown};
use clap::{Args, Subcommand};
use medsign_crypto::{KeyAlg, PrivateKey};
use medsign_pki::{
    cert::{CertTemplate, Profile, issue},
    name,
};
use medsign_store::{
    audit::{self, Context},
    custody,
    db::Db,
};
use std::path::PathBuf;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayArgs {
    #[command(subcommand)]
    command: Option<GatewayCommand>,
    #[command(flatten)]
    place: Place,
    /// 日志格式 / log format: text | json
    #[arg(long, default_value = "text")]
    log_format: String,
}

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// 用医院 CA 签发隧道证书 / issue a tunnel certificate from the hospital CA (run on the intranet)
    Cert(CertArgs),
    /// 吊销隧道证书（网关与服务器随即拒绝它）/ revoke a tunnel certificate (gateways and servers
    /// then refuse it; run on the intranet)
    Revoke(RevokeArgs),
}

#[derive(Args)]
#[group(id = "which", required = true, multiple = false, args = ["serial", "cert"])]
pub struct RevokeArgs {
    #[command(flatten)]
    place: Place,
    /// 证书序列号（十六进制，签发时打印）/ the certificate's serial number (hex, printed when issued)
    #[arg(long)]
    serial: Option<String>,
    /// 或证书文件（PEM；也用于本版本之前签发、未记入证书库的隧道证书）/ or the certificate file
    /// (PEM; also for tunnel certificates issued before they were recorded)
    #[arg(long)]
    cert: Option<PathBuf>,
    /// 吊销原因 / reason: key_compromise | superseded | cessation_of_operation | unspecified | affiliation_changed
    #[arg(long, default_value = "key_compromise")]
    reason: String,
}

#[derive(Args)]
pub struct CertArgs {
    #[command(flatten)]
    place: Place,
    /// gateway：网关的隧道监听证书；server：签名服务器连出用的客户端证书 / gateway: the tunnel
    /// listener's certificate; server: the client certificate a `medsign serve` opens tunnels with
    #[arg(long)]
    role: String,
    /// 证书中的主机名或 IP（可重复；网关须与 tunnel.gateways 中的主机一致）/ host name or IP in
    /// the certificate (repeat for more; a gateway's must match its host in tunnel.gateways)
    #[arg(long = "name", required = true)]
    names: Vec<String>,
    /// 输出证书链 / output certificate chain (PEM: the certificate, then the issuing CA)
    #[arg(long)]
    out_cert: PathBuf,
    /// 输出私钥 / output private key (PEM, mode 0600)
    #[arg(long)]
    out_key: PathBuf,
    /// 输出信任的 CA 证书 / output the CA certificate both ends trust (PEM; for tunnel.ca and gateway.tunnel_ca)
    #[arg(long)]
    out_ca: Option<PathBuf>,
    /// 有效天数 / validity in days
    #[arg(long, default_value_t = 730)]
    days: u32,
}

pub fn gateway(a: GatewayArgs) -> Result<i32, CliError> {
    match a.command {
        Some(GatewayCommand::Cert(c)) => return cert(c),
        Some(GatewayCommand::Revoke(r)) => return revoke(r),
        None => {}
    }
    let cfg = a.place.config()?;
    init_logging(&a.log_format)?;
    runtime()?.block_on(async move {
        let gw = medsign_gateway::Gateway::bind(&cfg.gateway, None).await.map_err(|e| CliError(e.0))?;
        let public = gw.public.local_addr().map_err(|e| CliError(e.to_string()))?;
        let tunnel = gw.tunnel.local_addr().map_err(|e| CliError(e.to_string()))?;
        let scheme = if gw.public_tls.is_some() { "https" } else { "http" };
        say!("medsign 网关已启动 / medsign gateway is running");
        say!("  手机访问 / phones: {scheme}://{public}/m/   隧道 / tunnels (mutual TLS): {tunnel}");
        say!("  只转发白名单内的消息，不存储任何数据 / forwards allow-listed messages only, stores nothing");
        if !cfg.gateway.egress_allow.is_empty() {
            say!("  服务器出站 / servers' egress (CONNECT on {tunnel}): {}", cfg.gateway.egress_allow.join(", "));
        }
        if let Some(r) = &gw.ntp {
            let at = r.local_addr().map_err(|e| CliError(e.to_string()))?;
            say!("  NTP 中继 / NTP relay: udp {at} → {}", cfg.gateway.ntp_upstreams.join(", "));
        }
        let stop = shutdown();
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            stop.await;
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
        });
        say!("listening on {public}");
        gw.run(handle).await.map_err(|e| CliError(format!("网关异常退出 / the gateway failed: {e}")))?;
        say!("medsign 网关已停止 / medsign gateway stopped");
        Ok(0)
    })
}

/// The owner recorded for tunnel certificates: `org:tunnel:<role>:<first name>`.
const TUNNEL_OWNER: &str = "org:tunnel:";

/// The place's KEK and database, refused for a data directory that was never started (it would
/// make a KEK of its own).
pub(crate) async fn started(place: &Place) -> Result<(Db, medsign_crypto::wrap::Kek), CliError> {
    let cfg = place.config()?;
    if std::env::var_os("MEDSIGN_KEK").is_none() && !cfg.data_dir().join("kek.key").exists() {
        return Err(CliError(format!(
            "{} 中还没有医院 CA：请先运行一次 medsign serve / no hospital CA in {} yet: run medsign serve once first",
            cfg.data_dir().display(),
            cfg.data_dir().display()
        )));
    }
    let fail = |e: medsign_store::Error| CliError(e.to_string());
    let (kek, _) = custody::load_kek(&cfg.data_dir(), std::env::var("MEDSIGN_KEK").ok()).map_err(fail)?;
    let db = Db::open(&cfg.database_url()).await.map_err(fail)?;
    Ok((db, kek))
}

/// The place's database and its hospital CA.
async fn hospital_ca(place: &Place) -> Result<(Db, medsign_ca::ca::BuiltinCas), CliError> {
    let cfg = place.config()?;
    let (db, kek) = started(place).await?;
    let cas = medsign_ca::ca::ensure(&db, &kek, &cfg.ca.organization).await.map_err(|e| CliError(e.to_string()))?;
    Ok((db, cas))
}

fn revoke(a: RevokeArgs) -> Result<i32, CliError> {
    runtime()?.block_on(async move {
        let (db, cas) = hospital_ca(&a.place).await?;
        let serial = match (&a.serial, &a.cert) {
            (Some(s), _) => s.trim().to_ascii_uppercase(),
            (None, Some(path)) => record_from_file(&db, &cas, path).await?,
            (None, None) => unreachable!("clap requires --serial or --cert"),
        };
        let rec = medsign_ca::certs::get(&db, &serial).await.map_err(|e| CliError(e.to_string()))?;
        if !rec.employee_no.starts_with(TUNNEL_OWNER) || !rec.profile.starts_with("tunnel_") {
            return Err(CliError::usage(
                &format!("证书 {serial} 不是隧道证书（请在管理台吊销）"),
                &format!("certificate {serial} is not a tunnel certificate (revoke it in the console)"),
            ));
        }
        medsign_ca::certs::revoke(&db, &cas, None, &Context::cli(), &serial, &a.reason)
            .await
            .map_err(|e| CliError(e.to_string()))?;
        say!(
            "已吊销隧道证书 / revoked the tunnel certificate {serial} ({}): 服务器在下次心跳时、网关在下次取吊销列表时断开并拒绝它 / servers leave and refuse it at their next heartbeat, gateways at their next CRL fetch (gateway.crl_refresh_seconds)",
            rec.employee_no.trim_start_matches(TUNNEL_OWNER)
        );
        Ok(0)
    })
}

/// The serial of the tunnel certificate in `path`, recorded among the CA's certificates if it is
/// not yet (one issued before tunnel certificates were recorded): it must be a tunnel certificate
/// (extKeyUsage serverAuth or clientAuth) that the hospital's RSA issuing CA signed.
async fn record_from_file(
    db: &Db,
    cas: &medsign_ca::ca::BuiltinCas,
    path: &std::path::Path,
) -> Result<String, CliError> {
    let chain = medsign_gateway::tls::load_certs(path).map_err(|e| CliError(e.0))?;
    let c = medsign_pki::cert::Cert::from_der(&chain[0])
        .map_err(|e| CliError::file(path, "证书无法解析", format!("unreadable certificate: {e}")))?;
    if !medsign_gateway::revocation::issued_by(&c, &cas.rsa.issuing) {
        return Err(CliError::file(
            path,
            "不是本院 RSA 签发 CA 签发的证书",
            "not issued by the hospital's RSA issuing CA",
        ));
    }
    let role = match c.ext_key_usage() {
        Ok(Some((_, ekus))) if ekus.contains(&medsign_pki::oid::KP_SERVER_AUTH) => "gateway",
        Ok(Some((_, ekus))) if ekus.contains(&medsign_pki::oid::KP_CLIENT_AUTH) => "server",
        _ => {
            return Err(CliError::file(path, "不是隧道证书", "not a tunnel certificate (no serverAuth or clientAuth)"));
        }
    };
    let owner = format!("{TUNNEL_OWNER}{role}:{}", name::common_name_or_dn(c.subject()));
    // known already: recording it again changes nothing
    medsign_ca::certs::record_org(db, &Context::cli(), &owner, &format!("tunnel_{role}"), &c)
        .await
        .map_err(|e| CliError(e.to_string()))?;
    Ok(c.serial_hex())
}

fn cert(a: CertArgs) -> Result<i32, CliError> {
    let profile = match a.role.as_str() {
        "gateway" => Profile::TlsServer,
        "server" => Profile::TlsClient,
        _ => return Err(CliError::usage("--role 须为 gateway 或 server", "--role must be gateway or server")),
    };
    for p in [Some(&a.out_cert), Some(&a.out_key), a.out_ca.as_ref()].into_iter().flatten() {
        if p.exists() {
            return Err(CliError::file(p, "文件已存在，不会覆盖", "exists; not overwritten"));
        }
    }
    let cfg = a.place.config()?;
    runtime()?.block_on(async move {
        let fail = |e: medsign_store::Error| CliError(e.to_string());
        let (db, cas) = hospital_ca(&a.place).await?;
        let rsa = &cas.rsa;
        let key = PrivateKey::generate(KeyAlg::P256).map_err(|e| CliError(e.to_string()))?;
        let role = if profile == Profile::TlsServer { "gateway" } else { "server" };
        let subject = name::parse_dn(&format!("CN={},OU=medsign tunnel {role},O={}", a.names[0], cfg.ca.organization))
            .map_err(|e| CliError::usage("--name 不能用作证书主体", &e.to_string()))?;
        let now = chrono::Utc::now();
        let end = (now + chrono::Duration::days(i64::from(a.days))).min(rsa.issuing.not_after());
        let mut t = CertTemplate::new(subject, key.public_key(), profile, now - chrono::Duration::minutes(5), end);
        t.alt_names = a.names.clone();
        let c = issue(&t, Some(&rsa.issuing), rsa.issuing_key.as_ref())
            .map_err(|e| CliError::usage("无法签发隧道证书", &e.to_string()))?;
        // recorded among the CA's certificates before any file is written, so that no tunnel
        // certificate is ever deployed that `medsign gateway revoke` could not put on the CRL
        let owner = format!("{TUNNEL_OWNER}{role}:{}", a.names[0]);
        medsign_ca::certs::record_org(&db, &Context::cli(), &owner, &format!("tunnel_{role}"), &c)
            .await
            .map_err(|e| CliError(e.to_string()))?;
        let ev = audit::Event {
            kind: audit::Kind::Admin,
            action: "tunnel.cert.issue",
            target: &format!("tunnel:{role}"),
            outcome: "ok",
            details: serde_json::json!({"serial": c.serial_hex(), "names": a.names, "not_after": end.to_rfc3339()}),
        };
        audit::record(&db, &Context::cli(), &ev).await.map_err(fail)?;
        let pem = key.to_pkcs8_pem().map_err(|e| CliError(e.to_string()))?;
        files::write(&a.out_key, pem.as_bytes(), true)?;
        files::write(&a.out_cert, format!("{}{}", c.to_pem(), rsa.issuing.to_pem()).as_bytes(), false)?;
        if let Some(p) = &a.out_ca {
            files::write(p, rsa.root.to_pem().as_bytes(), false)?;
        }
        say!(
            "已签发隧道证书 / issued the tunnel certificate: {} ({role}, serial {}, until {})",
            a.names.join(", "),
            c.serial_hex(),
            end.format("%Y-%m-%d")
        );
        Ok(0)
    })
}
