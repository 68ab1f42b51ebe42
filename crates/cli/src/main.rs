//! `medsign` — the command line (`medsign --help`; crates/cli/README.md). This crate only parses arguments,
//! reads and writes files and prints reports; the work is done by the library crates.

#![deny(unsafe_code)]

/// `eprintln!` that never panics: a server whose stderr has gone away (the supervisor or pipe
/// that read it ended) must still serve, and still stop gracefully on SIGTERM.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod alloc;
mod channel_cmd;
mod files;
mod gateway_cmd;
mod h5_cmd;
mod keys_cmd;
mod report;
mod server_cmd;
mod sign_cmd;
mod ts_cmd;
mod verify_cmd;

use clap::{Parser, Subcommand};
use files::CliError;

/// medsign — 医院电子签名平台 / hospital electronic-signature platform
#[derive(Parser)]
#[command(name = "medsign", version, about = "medsign — 医院电子签名平台 / hospital electronic-signature platform", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// 启动服务 / run the platform (first start initialises everything)
    Serve(server_cmd::ServeArgs),
    /// 集成应用 / integration apps
    #[command(subcommand)]
    App(server_cmd::AppCommand),
    /// 审计日志 / audit log
    #[command(subcommand)]
    Audit(server_cmd::AuditCommand),
    /// 生成私钥 / generate a private key (PKCS#8 PEM)
    Keygen(keys_cmd::KeygenArgs),
    /// 证书：离线根 CA 与证书签发 / certificates: offline root CA and issuance
    #[command(subcommand)]
    Cert(keys_cmd::CertCommand),
    /// CMS/PKCS#7 签名 / make a CMS (PKCS#7) signature
    Sign(sign_cmd::SignArgs),
    /// 验证签名或证书 / verify a CMS signature or a certificate; exit 0 only if valid
    Verify(verify_cmd::VerifyArgs),
    /// 在线备份 SQLite 数据库（服务可继续运行）/ back up the SQLite database while medsign runs
    Backup(server_cmd::BackupArgs),
    /// DMZ 前置交换网关；`gateway cert` 签发隧道证书 / the DMZ front exchange; `gateway cert` issues tunnel certificates
    Gateway(gateway_cmd::GatewayArgs),
    /// 时间戳（RFC 3161 客户端）/ timestamps: RFC 3161 client
    #[command(subcommand)]
    Ts(ts_cmd::TsCommand),
    /// 手机端到端通道的密钥 / the phones' end-to-end channel key
    #[command(subcommand)]
    Channel(channel_cmd::ChannelCommand),
    /// 医生手机 H5 应用：导出静态文件 / the doctors' H5 app: export its files
    #[command(subcommand)]
    H5(h5_cmd::H5Command),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<i32, CliError> = match cli.command {
        Command::Serve(a) => server_cmd::serve(a),
        Command::App(c) => server_cmd::app(c),
        Command::Audit(c) => server_cmd::audit_cmd(c),
        Command::Backup(a) => server_cmd::backup(a),
        Command::Keygen(a) => keys_cmd::keygen(a),
        Command::Cert(c) => keys_cmd::cert(c),
        Command::Sign(a) => sign_cmd::sign(a),
        Command::Verify(a) => verify_cmd::verify(a),
        Command::Ts(c) => ts_cmd::ts(c),
        Command::Gateway(a) => gateway_cmd::gateway(a),
        Command::Channel(c) => channel_cmd::channel(c),
        Command::H5(c) => h5_cmd::h5(c),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("medsign: {e}");
            std::process::exit(2);
        }
    }
}
