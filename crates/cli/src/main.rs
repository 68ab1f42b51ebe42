//! `medsign` — the command line (API.md "Command line"). This crate only parses arguments,
//! reads and writes files and prints reports; the work is done by the library crates.

mod files;
mod keys_cmd;
mod report;
mod sign_cmd;
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
    /// 生成私钥 / generate a private key (PKCS#8 PEM)
    Keygen(keys_cmd::KeygenArgs),
    /// 证书：离线根 CA 与证书签发 / certificates: offline root CA and issuance
    #[command(subcommand)]
    Cert(keys_cmd::CertCommand),
    /// CMS/PKCS#7 签名 / make a CMS (PKCS#7) signature
    Sign(sign_cmd::SignArgs),
    /// 验证签名或证书 / verify a CMS signature or a certificate; exit 0 only if valid
    Verify(verify_cmd::VerifyArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<i32, CliError> = match cli.command {
        Command::Keygen(a) => keys_cmd::keygen(a),
        Command::Cert(c) => keys_cmd::cert(c),
        Command::Sign(a) => sign_cmd::sign(a),
        Command::Verify(a) => verify_cmd::verify(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("medsign: {e}");
            std::process::exit(2);
        }
    }
}
