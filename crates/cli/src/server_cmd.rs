//! `medsign serve`, `medsign app create`, `medsign audit verify`.

use crate::files::CliError;
use clap::{Args, Subcommand};
use medsign_config::config::Config;
use medsign_directory::apps::{self, Scope};
use medsign_store::{
    audit::{self, Context},
    custody::{self, KekSource},
    db::Db,
};
use std::path::PathBuf;

/// Where the data lives (shared by every command that opens the database).
#[derive(Args, Clone)]
pub struct Place {
    /// 配置文件 / configuration file (medsign.toml)
    #[arg(long)]
    config: Option<PathBuf>,
    /// 数据目录 / data directory (default ./medsign-data)
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// 数据库地址 / database URL (sqlite://… or postgres://…)
    #[arg(long)]
    database_url: Option<String>,
}

impl Place {
    pub fn config(&self) -> Result<Config, CliError> {
        let mut c = Config::load(self.config.as_deref(), std::env::vars()).map_err(|e| CliError(e.to_string()))?;
        if let Some(d) = &self.data_dir {
            c.data_dir = Some(d.clone());
        }
        if let Some(u) = &self.database_url {
            c.database.url = Some(u.clone());
        }
        Ok(c)
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    place: Place,
    /// 监听地址 / listen address (default 127.0.0.1:7080)
    #[arg(long)]
    listen: Option<String>,
    /// 日志格式 / log format: text | json
    #[arg(long, default_value = "text")]
    log_format: String,
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("无法启动运行时 / cannot start the runtime: {e}")))
}

fn core_err(e: medsign_store::Error) -> CliError {
    CliError(e.to_string())
}

pub fn serve(a: ServeArgs) -> Result<i32, CliError> {
    let mut cfg = a.place.config()?;
    if let Some(l) = &a.listen {
        cfg.server.listen = l.clone();
    }
    init_logging(&a.log_format)?;
    medsign_directory::apps::release_memory_after_hashing(crate::alloc::release_free_memory);
    runtime()?.block_on(serve_async(cfg))
}

/// Log to stderr as `text` or `json`, filtered by `MEDSIGN_LOG` (default `info`).
pub fn init_logging(format: &str) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDSIGN_LOG").unwrap_or_else(|_| "info".into());
    match format {
        "json" => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .init(),
        "text" => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .init(),
        _ => return Err(CliError::usage("--log-format 须为 text 或 json", "--log-format must be text or json")),
    }
    Ok(())
}

async fn serve_async(cfg: Config) -> Result<i32, CliError> {
    let data_dir = cfg.data_dir();
    if let (true, Some(cert), Some(key), Some(ca)) =
        (cfg.tunnel.egress, &cfg.tunnel.cert, &cfg.tunnel.key, &cfg.tunnel.ca)
    {
        medsign_ca::egress::install(&cfg.tunnel.gateways, cert, key, ca).map_err(CliError)?;
        say!(
            "  出站 / egress → {}（微信、外部 CA 经网关 / WeChat and outside CAs through the gateways）",
            cfg.tunnel.gateways.join(", ")
        );
    }
    let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(c), Some(k)) => Some(axum_server::tls_rustls::RustlsConfig::from_pem_file(c, k).await.map_err(|e| {
            CliError(format!(
                "TLS 证书或私钥无法加载 / cannot load the TLS certificate or key ({}, {}): {e}",
                c.display(),
                k.display()
            ))
        })?),
        (None, None) => None,
        _ => {
            return Err(CliError::usage(
                "server.tls_cert 与 server.tls_key 须同时设置",
                "set both server.tls_cert and server.tls_key (or neither)",
            ));
        }
    };
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen).await.map_err(|e| {
        CliError(format!("无法监听 {} / cannot listen on {}: {e}", cfg.server.listen, cfg.server.listen))
    })?;
    let addr = listener.local_addr().map_err(|e| CliError(e.to_string()))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // opened after binding, so that the URL certificates link to is the one being served
    let mut opened = medsign_server::services::open(&cfg, &format!("{scheme}://{addr}")).await.map_err(core_err)?;
    let state = opened.state(&cfg).expect("state is made once");
    let app = medsign_server::router(state.clone());
    say!("medsign 已启动 / medsign is running");
    say!("  数据目录 / data directory: {}", data_dir.display());
    say!("  数据库 / database: {}", medsign_store::db::redact(&cfg.database_url()));
    if matches!(state.realname, Some(medsign_phone::realname::FaceVerifier::Dev)) {
        say!(
            "  !!! 实名认证使用演示提供方 dev：任何人都会通过（结果标记为 verified-demo），切勿用于生产 / realname provider 'dev' is a DEMO: everyone passes (marked verified-demo) — never in production"
        );
    }
    match &opened.kek_source {
        KekSource::Environment => say!("  密钥加密密钥 / KEK: MEDSIGN_KEK"),
        KekSource::File(p) => say!("  密钥加密密钥 / KEK: {p}"),
        KekSource::Generated(p) => {
            say!(
                "  !!! 已生成密钥加密密钥文件 {p}（权限 0600）。请立即备份并妥善保管；生产环境建议改用 MEDSIGN_KEK 环境变量。"
            );
            say!(
                "  !!! Generated the key-encryption key file {p} (mode 0600). Back it up now; in production prefer the MEDSIGN_KEK environment variable."
            );
        }
    }
    if let Some(t) = &opened.first_token {
        say!("  首次启动：管理员引导凭据（仅显示这一次）/ first start: admin bootstrap token (shown once):");
        say!("    {}", t.as_str());
    }
    let st = opened.clock.status();
    match st.state {
        medsign_tsa::clock::SyncState::Insync | medsign_tsa::clock::SyncState::SoonOutOfSync => say!(
            "  时钟 / clock: {} ({}，偏差 / offset {:.1} ms ± {:.1} ms) — 时间戳服务可用 / timestamps available",
            st.state.name(),
            st.source.clone().unwrap_or_default(),
            st.offset_ms.unwrap_or(0.0),
            st.uncertainty_ms.unwrap_or(0.0)
        ),
        _ => {
            say!(
                "  !!! 时钟 / clock: {} — 时间源 {} 不可用或不可信：时间戳服务拒绝签发，直到同步成功。",
                st.state.name(),
                st.sources.join(", ")
            );
            say!(
                "  !!! the time source(s) {} cannot be used ({}): the TSA refuses to issue until the clock synchronises.",
                st.sources.join(", "),
                st.errors.join("; ")
            );
            say!(
                "      配置时间源 / configure a source: MEDSIGN_TIME_SOURCES=ntp.example:123 (或 / or medsign.toml [time] sources = [\"host:port\"])"
            );
        }
    }
    say!("  从这里开始 / start here: {scheme}://{addr}/api/docs （接口文档 / API documentation）");
    say!(
        "  接口 / API: {scheme}://{addr}/api/v1   管理 / admin: {scheme}://{addr}/admin/v1   健康 / health: {scheme}://{addr}/healthz   指标 / metrics: {scheme}://{addr}/metrics"
    );
    let stop = shutdown();
    let tunnels = dial_gateways(&cfg, &state)?;
    say!("listening on {addr}");
    let jobs = medsign_server::services::spawn_jobs(&state, &opened, &cfg);
    // what this thread built and dropped while starting (the OpenAPI document, the keys, the CAs)
    // and the arenas' free space go back to the kernel now, not whenever the allocator is next
    // busy (issue #20, goal 5)
    crate::alloc::release_free_memory();
    let failed = |e: std::io::Error| CliError(format!("服务异常退出 / the server failed: {e}"));
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        stop.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
    });
    let std_listener = listener.into_std().map_err(failed)?;
    let header_timeout = std::time::Duration::from_secs(cfg.server.header_timeout_seconds);
    medsign_server::http::serve(std_listener, app, tls, header_timeout, handle).await.map_err(failed)?;
    tunnels.close().await;
    if let Err(e) = jobs.stop().await {
        say!("审计锚点写入失败 / could not write the final audit anchor: {e}");
    }
    drop(opened);
    say!("medsign 已停止 / medsign stopped");
    Ok(0)
}

/// The tunnels this instance keeps open to the DMZ gateways (`[tunnel] gateways`).
struct Tunnels {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Tunnels {
    /// Close every tunnel gracefully (GOAWAY; requests under way finish).
    async fn close(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Open a tunnel to every configured gateway (intranet → DMZ); each serves only the phone's API,
/// the H5 app and the tunnel CA's CRL ([`medsign_server::tunnel_router`]).
fn dial_gateways(cfg: &Config, state: &std::sync::Arc<medsign_server::AppState>) -> Result<Tunnels, CliError> {
    let (stop, watch) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let t = &cfg.tunnel;
    if let (false, Some(cert), Some(key), Some(ca)) = (t.gateways.is_empty(), &t.cert, &t.key, &t.ca) {
        let tls = medsign_gateway::tls::connector(&medsign_gateway::tls::Files { cert, key, ca })
            .map_err(|e| CliError(e.0))?;
        let app = medsign_server::tunnel_router(state.clone());
        // a gateway's certificate revoked (or on hold) at the hospital CA gets no tunnel
        let st = state.clone();
        // (the last answer is kept for when the database does not answer)
        let known = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<String, bool>::new()));
        let revoked: medsign_gateway::tunnel::RevocationCheck = std::sync::Arc::new(move |serial: String| {
            let (st, known) = (st.clone(), known.clone());
            Box::pin(async move {
                match medsign_ca::certs::status_of(&st.db, &st.cas.rsa, &serial).await {
                    Ok(status) => {
                        let revoked = matches!(status, Some(Some(_)));
                        known.lock().expect("verdicts").insert(serial, revoked);
                        revoked
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "无法查询网关证书状态 / cannot read the gateway certificate's status");
                        known.lock().expect("verdicts").get(&serial).copied().unwrap_or(false)
                    }
                }
            })
        });
        for gateway in &t.gateways {
            say!("  隧道 / tunnel → {gateway}（内网主动连出，双向 TLS / opened from the intranet, mutual TLS）");
            let dial = medsign_gateway::tunnel::Dial {
                gateway: gateway.clone(),
                tls: tls.clone(),
                heartbeat: std::time::Duration::from_secs(t.heartbeat_seconds),
                revoked: Some(revoked.clone()),
            };
            tasks.push(tokio::spawn(medsign_gateway::tunnel::dial(dial, app.clone(), watch.clone())));
        }
    }
    Ok(Tunnels { stop, tasks })
}

/// SIGTERM, registered now — before `listening on` is printed, so a stop sent the moment the
/// server is up is a graceful one — and Ctrl-C, awaited by the returned future.
pub fn shutdown() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        say!("正在停止，等待进行中的请求完成 / shutting down, finishing in-flight requests");
    }
}

#[derive(Subcommand)]
pub enum AppCommand {
    /// 创建集成应用 / create an integration app; prints app_id.secret on the last line
    Create(AppCreateArgs),
}

#[derive(Args)]
pub struct AppCreateArgs {
    #[command(flatten)]
    place: Place,
    /// 应用名称 / app name
    #[arg(long)]
    name: String,
    /// 权限 / scopes: users:read,users:write,certs,sign,verify,timestamps,admin
    #[arg(long, default_value = "")]
    scopes: String,
}

pub fn app(c: AppCommand) -> Result<i32, CliError> {
    match c {
        AppCommand::Create(a) => {
            let cfg = a.place.config()?;
            let scopes = Scope::parse_list(&a.scopes).map_err(|e| CliError::usage("--scopes 有误", &e.to_string()))?;
            runtime()?.block_on(async {
                medsign_store::db::create_private_dir(&cfg.data_dir())
                    .map_err(|e| CliError(format!("{}: {e}", cfg.data_dir().display())))?;
                let (kek, _) =
                    custody::load_kek(&cfg.data_dir(), std::env::var("MEDSIGN_KEK").ok()).map_err(core_err)?;
                let db = Db::open(&cfg.database_url()).await.map_err(core_err)?;
                let (app, token) =
                    apps::create(&db, &kek, &Context::cli(), &a.name, &scopes).await.map_err(core_err)?;
                say!(
                    "已创建应用 {}（{}），权限 / scopes: {}。凭据只显示这一次 / the secret is shown only once:",
                    app.app_id,
                    app.name,
                    app.scopes.iter().map(|s| s.name()).collect::<Vec<_>>().join(",")
                );
                println!("{}", token.as_str());
                Ok(0)
            })
        }
    }
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// 校验审计日志哈希链 / verify the audit chain; exit 1 at the first broken link
    Verify(AuditVerifyArgs),
}

#[derive(Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    place: Place,
    /// 机器可读输出 / JSON output
    #[arg(long)]
    json: bool,
    /// 与见证文件核对（[audit] witness_file 写出的锚点）/ also compare with a witness file of
    /// anchors ([audit] witness_file): catches a log and anchors cut back or emptied together
    #[arg(long, value_name = "FILE")]
    witness: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    place: Place,
    /// 备份文件（不得已存在）/ the backup file to write (must not exist)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `medsign backup`: a consistent copy of the SQLite database while `medsign serve` keeps running,
/// checked before it is called done (it opens, every migration is there, the audit chain verifies).
pub fn backup(a: BackupArgs) -> Result<i32, CliError> {
    let cfg = a.place.config()?;
    let url = cfg.database_url();
    if !url.starts_with("sqlite:") {
        return Err(CliError::usage(
            "PostgreSQL 请用 pg_dump -Fc 备份、pg_restore 恢复（见 docs/cluster.md）",
            "back PostgreSQL up with pg_dump -Fc and restore with pg_restore (docs/cluster.md)",
        ));
    }
    let source = url.trim_start_matches("sqlite://").split('?').next().unwrap_or_default().to_string();
    if !std::path::Path::new(&source).exists() {
        return Err(CliError::file(
            std::path::Path::new(&source),
            "数据库不存在，请检查 --data-dir 或 --database-url",
            "no database here; check --data-dir or --database-url",
        ));
    }
    runtime()?.block_on(async {
        let db = Db::open(&url).await.map_err(core_err)?;
        db.backup_to(&a.out).await.map_err(core_err)?;
        // the copy, checked as a restore would use it
        let copy = Db::open(&format!("sqlite://{}", a.out.display())).await.map_err(core_err)?;
        let r = audit::verify_chain(&copy).await.map_err(core_err)?;
        let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
        if let Some((seq, why)) = &r.broken {
            println!("备份已写出，但其审计日志在第 {seq} 条断裂 / the backup was written, but its audit chain is broken at entry {seq}: {why}");
            return Ok(1);
        }
        println!(
            "备份完成 / backup written: {} ({size} 字节 / bytes), 审计日志完整 / audit chain intact: {} 条记录 / entries, head {}",
            a.out.display(),
            r.entries,
            r.head
        );
        println!(
            "注意：备份不含密钥加密密钥（数据目录中的 kek.key 或 MEDSIGN_KEK），请另行安全保存；没有它，备份中的密钥无法使用。/ \
             The backup does not hold the key-encryption key (kek.key in the data directory, or MEDSIGN_KEK): keep it \
             separately and safe; without it the keys in the backup cannot be used."
        );
        Ok(0)
    })
}

pub fn audit_cmd(c: AuditCommand) -> Result<i32, CliError> {
    match c {
        AuditCommand::Verify(a) => {
            let cfg = a.place.config()?;
            runtime()?.block_on(async {
                let db = Db::open(&cfg.database_url()).await.map_err(core_err)?;
                let mut r = audit::verify_chain(&db).await.map_err(core_err)?;
                let mut witnessed = None;
                if let Some(w) = &a.witness {
                    let text = std::fs::read_to_string(w).map_err(|e| {
                        CliError::file(w, "无法读取见证文件", format!("cannot read the witness file: {e}"))
                    })?;
                    let (n, problem) = audit::verify_witness(&db, &text).await.map_err(core_err)?;
                    witnessed = Some(n);
                    if r.broken.is_none() {
                        r.broken = problem;
                    }
                }
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                } else {
                    match &r.broken {
                        None => println!(
                            "审计日志完整 / audit chain intact: {} 条记录 / entries, {} 个锚点 / anchors{}, head {}",
                            r.entries,
                            r.anchors,
                            witnessed.map(|n| format!("（见证 {n} 个 / {n} witnessed）")).unwrap_or_default(),
                            r.head
                        ),
                        Some((seq, why)) => {
                            println!("审计日志在第 {seq} 条断裂 / audit chain broken at entry {seq}: {why}")
                        }
                    }
                }
                Ok(if r.broken.is_none() { 0 } else { 1 })
            })
        }
    }
}
