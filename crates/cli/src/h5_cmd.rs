//! `medsign h5 export`: the doctor's H5 app as static files for an origin of its own, so that no
//! DMZ gateway delivers its code (docs/gateway.md, "H5 应用代码的完整性 / the H5 app's own code").

use crate::files::{self, CliError};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum H5Command {
    /// 导出 H5 应用的静态文件，放到网关以外的站点 / write the H5 app's files, to serve from a host
    /// other than the gateways
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// 输出目录（须不存在或为空）/ output directory (must not exist, or be empty)
    #[arg(long)]
    out: PathBuf,
    /// 手机访问的网关地址，如 https://gw.hospital.example / the gateways' URL as phones reach
    /// them (the load balancer in front of them), e.g. https://gw.hospital.example
    #[arg(long)]
    api: String,
}

pub fn h5(c: H5Command) -> Result<i32, CliError> {
    let H5Command::Export(a) = c;
    let files = medsign_server::assets::mobile_export(&a.api).ok_or_else(|| {
        CliError::usage(
            "--api 须为 http(s):// 开头、不含引号、尖括号、? 与 # 的网址",
            "--api must be an http(s):// URL without quotes, angle brackets, ? or #",
        )
    })?;
    if a.out.exists() && std::fs::read_dir(&a.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(CliError::file(&a.out, "目录已存在且不为空，不会覆盖", "exists and is not empty; nothing written"));
    }
    for (path, bytes) in &files {
        let to = a.out.join(path);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::file(dir, "无法创建目录", format!("cannot create: {e}")))?;
        }
        files::write(&to, bytes, false)?;
    }
    say!(
        "已导出 H5 应用 {} 个文件到 / exported the H5 app's {} files to {}：放到独立站点，把该站点的来源加入 gateway.app_origins，网址设为 server.app_url / serve them from a host of their own, add its origin to gateway.app_origins and its URL as server.app_url",
        files.len(),
        files.len(),
        a.out.display()
    );
    Ok(0)
}
