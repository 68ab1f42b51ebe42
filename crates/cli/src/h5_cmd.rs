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
    /// 输出目录（须不存在；先写到旁边的临时目录，写完再改名）/ output directory (must not exist;
    /// written beside it first, then renamed into place)
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
            "--api 须为 https:// 网址（http:// 仅限本机），主机名小写，不含 ?、#、&、引号、尖括号等",
            "--api must be an https:// URL (http:// on loopback only), its host in lower case, without ?, #, &, quotes, angle brackets and the like",
        )
    })?;
    if a.out.symlink_metadata().is_ok() {
        return Err(CliError::file(
            &a.out,
            "已存在，不会覆盖（导出到新目录后再切换）",
            "exists; nothing written (export to a new directory, then switch)",
        ));
    }
    // a directory of our own making (create_dir fails if anything is there), renamed into place
    // once whole: a half-written export is never served, and no link planted in advance is followed
    let name = a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = a.out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    std::fs::create_dir(&partial)
        .map_err(|e| CliError::file(&partial, "无法创建目录", format!("cannot create: {e}")))?;
    let written = (|| {
        for (path, bytes) in &files {
            let to = partial.join(path);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| CliError::file(dir, "无法创建目录", format!("cannot create: {e}")))?;
            }
            files::write(&to, bytes, false)?;
        }
        std::fs::rename(&partial, &a.out)
            .map_err(|e| CliError::file(&a.out, "无法改名到位", format!("cannot rename into place: {e}")))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    written?;
    say!(
        "已导出 H5 应用 {} 个文件到 / exported the H5 app's {} files to {}：放到独立站点，把该站点的来源加入 gateway.app_origins，网址设为 server.app_url / serve them from a host of their own, add its origin to gateway.app_origins and its URL as server.app_url",
        files.len(),
        files.len(),
        a.out.display()
    );
    Ok(0)
}
