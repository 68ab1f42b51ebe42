//! `medsign channel rotate`: replace the end-to-end channel key phones seal their calls to
//! (`medsign_phone::channel`, docs/gateway.md).

use crate::files::CliError;
use crate::server_cmd::{Place, runtime};
use clap::{Args, Subcommand};
use medsign_store::audit::Context;

#[derive(Subcommand)]
pub enum ChannelCommand {
    /// 更换通道密钥：旧密钥为新密钥背书，已绑定的手机自动改用新密钥 / rotate the channel key: the
    /// old key endorses the new one and bound phones move to it by themselves
    Rotate(RotateArgs),
}

#[derive(Args)]
pub struct RotateArgs {
    #[command(flatten)]
    place: Place,
    /// 旧密钥已泄露：不背书、立即停用旧密钥；所有手机须重新激活 / the old key is compromised: no
    /// endorsement, the old key stops at once, and every phone must be activated again
    #[arg(long)]
    compromised: bool,
}

pub fn channel(c: ChannelCommand) -> Result<i32, CliError> {
    let ChannelCommand::Rotate(a) = c;
    runtime()?.block_on(async move {
        let (db, kek) = crate::gateway_cmd::started(&a.place).await?;
        let r = medsign_phone::channel::rotate(&db, &kek, &Context::cli(), a.compromised)
            .await
            .map_err(|e| CliError(e.to_string()))?;
        say!(
            "已生成第 {} 代通道密钥 / made channel key generation {}, fingerprint {}",
            r.generation,
            r.generation,
            r.fingerprint
        );
        if a.compromised {
            say!(
                "旧密钥已停用，已结束 {} 个手机会话：每部手机都须用新的激活链接重新绑定，并在手机上确认改用新的服务器密钥 / the old key no longer opens calls and {} phone sessions ended: every phone binds again from a new activation link, confirming the new server key on the phone",
                r.sessions_ended,
                r.sessions_ended
            );
        } else {
            say!(
                "运行中的服务器在 {} 秒内认得它，{} 秒后开始告诉手机；上一代密钥仍可用，手机验证背书后改用新密钥 / running servers know it within {} s and name it to phones after {} s; the previous key still opens calls, and phones move to the new one after checking its endorsement",
                medsign_phone::channel::REFRESH.as_secs(),
                medsign_phone::channel::ADVERTISE_AFTER.as_secs(),
                medsign_phone::channel::REFRESH.as_secs(),
                medsign_phone::channel::ADVERTISE_AFTER.as_secs()
            );
        }
        Ok(0)
    })
}
