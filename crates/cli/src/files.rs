//! Reading and writing the files the commands name, with errors that say which file and why.

use medsign_crypto::PrivateKey;
use medsign_pki::cert::Cert;
use std::{fmt, path::Path};

/// A command-line failure: one line, Chinese first, then English. Exit code 2.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl CliError {
    /// `错误 / error` about a named file.
    pub fn file(path: &Path, zh: &str, en: impl fmt::Display) -> Self {
        CliError(format!("{}: {zh} / {en}", path.display()))
    }
    /// A usage error.
    pub fn usage(zh: &str, en: &str) -> Self {
        CliError(format!("{zh} / {en}"))
    }
}

/// Read a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::file(path, "无法读取文件", format!("cannot read: {e}")))
}

/// Write a file; private keys are created with mode 0600.
pub fn write(path: &Path, data: &[u8], secret: bool) -> Result<(), CliError> {
    let err = |e: std::io::Error| CliError::file(path, "无法写入文件", format!("cannot write: {e}"));
    #[cfg(unix)]
    if secret {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(err)?;
        return f.write_all(data).map_err(err);
    }
    let _ = secret;
    std::fs::write(path, data).map_err(err)
}

/// The passphrase from `--passphrase-file` or the `MEDSIGN_KEY_PASSPHRASE` environment variable
/// (never from the command line, where `ps` would show it).
pub fn passphrase(file: Option<&Path>) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, CliError> {
    if let Some(f) = file {
        let mut b = read(f)?;
        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            b.pop();
        }
        return Ok(Some(zeroize::Zeroizing::new(b)));
    }
    Ok(std::env::var("MEDSIGN_KEY_PASSPHRASE").ok().map(|s| zeroize::Zeroizing::new(s.into_bytes())))
}

/// Read a private key (PEM or DER; encrypted PKCS#8 with the passphrase).
pub fn private_key(path: &Path, pass: Option<&[u8]>) -> Result<PrivateKey, CliError> {
    let b = zeroize::Zeroizing::new(read(path)?);
    PrivateKey::from_bytes(&b, pass).map_err(|e| CliError::file(path, "不是可用的私钥", e))
}

/// Read one or more certificates (PEM or DER).
pub fn certs(path: &Path) -> Result<Vec<Cert>, CliError> {
    Cert::load_all(&read(path)?).map_err(|e| CliError::file(path, "不是证书文件", e))
}

/// Read exactly the first certificate of a file.
pub fn cert(path: &Path) -> Result<Cert, CliError> {
    Ok(certs(path)?.remove(0))
}
