//! Configuration: `medsign.toml` (path by `--config`) with every key overridable by the
//! environment as `MEDSIGN_<SECTION>_<KEY>` (API.md "Configuration"), then command-line flags.

use std::fmt;

/// A configuration that cannot be used: the file cannot be read or parsed, a variable is unknown,
/// or a key (from the file or the environment) is out of range. The message names the key and,
/// where it came from the environment, the variable; Chinese first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Result with the configuration [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// The longest session grant a hospital may allow, hours (R3.5: "1–12 h").
pub const GRANT_MAX_HOURS: u32 = 12;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// address:port to listen on
    pub listen: String,
    /// URL that QR codes, CRL/OCSP/AIA and callbacks use
    pub public_url: Option<String>,
    /// largest accepted request body, bytes
    pub max_body_bytes: usize,
    /// TLS certificate chain (PEM); with `tls_key`, medsign serves HTTPS itself
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8 / SEC1 / PKCS#1)
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7080".into(),
            public_url: None,
            max_body_bytes: 20 * 1024 * 1024,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; default: `medsign.db` in the data directory
    pub url: Option<String>,
}

/// `[time]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeConfig {
    /// NTP servers `host[:port]`
    pub sources: Vec<String>,
    /// the TSA refuses when the clock's bound exceeds this
    pub max_offset_ms: u64,
    /// seconds between polls while in sync (a quarter of it while not)
    pub poll_seconds: u64,
    /// how long the last good sample may be trusted (seconds)
    pub holdover_seconds: u64,
}

impl Default for TimeConfig {
    fn default() -> Self {
        Self { sources: vec!["ntp.ntsc.ac.cn".into()], max_offset_ms: 1000, poll_seconds: 64, holdover_seconds: 900 }
    }
}

/// `[sign]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignConfig {
    /// a batch item `running` longer than this belongs to a crashed process and is retried (seconds)
    pub batch_reclaim_seconds: u64,
    /// a full CJK font (TTF/OTF) for PDF text instead of the shipped GB2312 subset — for names
    /// with rarer characters
    pub font_file: Option<std::path::PathBuf>,
    /// the longest session grant a doctor may give a business system, 1–12 hours (R3.5)
    pub grant_max_hours: u32,
}

impl Default for SignConfig {
    fn default() -> Self {
        Self { batch_reclaim_seconds: 30, font_file: None, grant_max_hours: GRANT_MAX_HOURS }
    }
}

/// `[tsa]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TsaConfig {
    /// profile of `POST /tsa`: `sm2` or `rsa`
    pub default_profile: String,
    /// TSA policy OID put in every token (set the hospital's own)
    pub policy_oid: String,
    /// further policies a request may name
    pub accepted_policies: Vec<String>,
}

impl Default for TsaConfig {
    fn default() -> Self {
        // ETSI EN 319 421 best-practices-ts-policy until the hospital sets its own
        Self { default_profile: "sm2".into(), policy_oid: "0.4.0.2023.1.1".into(), accepted_policies: vec![] }
    }
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// sign the chain head every this many minutes (0 = only at start and stop)
    pub anchor_minutes: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { anchor_minutes: 10 }
    }
}

/// `[ca]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaConfig {
    /// the hospital's name in the built-in CA certificates (set before the first start)
    pub organization: String,
    /// the CRLs are re-signed this often even without revocations (hours; they are valid 24 h)
    pub crl_refresh_hours: u64,
    /// OCSP answers are valid (nextUpdate) and cacheable this long (minutes)
    pub ocsp_validity_minutes: u64,
    /// the daily expiry job lists certificates that end within this many days
    pub expiry_warn_days: u64,
    /// and renews them (same key) when true
    pub auto_renew: bool,
    /// certificatePolicies OIDs put into staff certificates (the hospital's or its CA's policy)
    pub policy_oids: Vec<String>,
    /// validity of staff certificates, days
    pub staff_validity_days: u32,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            organization: "medsign".into(),
            crl_refresh_hours: 6,
            ocsp_validity_minutes: 60,
            expiry_warn_days: 30,
            auto_renew: false,
            policy_oids: vec![],
            staff_validity_days: 365,
        }
    }
}

/// `[realname]` — face verification before a phone's certificate is issued (R2.2, R3.2, R7.4.3).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealnameConfig {
    /// `none` (identity checked in person when the activation code is handed over), `wechat`
    /// (WeChat face verification of the mini program), or `dev` (a DEMO provider that passes
    /// everyone and marks every result as demo — never for production)
    pub provider: String,
    /// the mini program's AppID (wechat)
    pub wechat_appid: Option<String>,
    /// its AppSecret (wechat; better from the environment, MEDSIGN_REALNAME_WECHAT_SECRET)
    pub wechat_secret: Option<String>,
    /// the WeChat API (tests point it at a local fake)
    pub wechat_api_base: String,
}

impl Default for RealnameConfig {
    fn default() -> Self {
        Self {
            provider: "none".into(),
            wechat_appid: None,
            wechat_secret: None,
            wechat_api_base: "https://api.weixin.qq.com".into(),
        }
    }
}

impl std::fmt::Debug for RealnameConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealnameConfig")
            .field("provider", &self.provider)
            .field("wechat_appid", &self.wechat_appid)
            .field("wechat_secret", &self.wechat_secret.as_ref().map(|_| "(set)"))
            .field("wechat_api_base", &self.wechat_api_base)
            .finish()
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// data directory (database, key files)
    pub data_dir: Option<PathBuf>,
    /// `[server]`
    pub server: ServerConfig,
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[time]`
    pub time: TimeConfig,
    /// `[audit]`
    pub audit: AuditConfig,
    /// `[ca]`
    pub ca: CaConfig,
    /// `[tsa]`
    pub tsa: TsaConfig,
    /// `[sign]`
    pub sign: SignConfig,
    /// `[realname]`
    pub realname: RealnameConfig,
}

impl Config {
    /// Read `file` (if given), then apply `MEDSIGN_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> Result<Self> {
        let mut c: Config = match file {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    Error(format!("无法读取配置文件 {} / cannot read the configuration file: {e}", f.display()))
                })?;
                toml::from_str(&text)
                    .map_err(|e| Error(format!("配置文件 {} 有误 / invalid configuration file: {e}", f.display())))?
            }
            None => Config::default(),
        };
        for (k, v) in env {
            c.apply_env(&k, &v)?;
        }
        if !(1..=GRANT_MAX_HOURS).contains(&c.sign.grant_max_hours) {
            return Err(Error(format!(
                "sign.grant_max_hours 须为 1–{m} / sign.grant_max_hours must be 1-{m}",
                m = GRANT_MAX_HOURS
            )));
        }
        Ok(c)
    }

    fn apply_env(&mut self, key: &str, v: &str) -> Result<()> {
        let bad = |what: &str| Error(format!("环境变量 {key} 的值无效 / invalid value of {key}: {what}"));
        match key {
            "MEDSIGN_DATA_DIR" => self.data_dir = Some(v.into()),
            "MEDSIGN_SERVER_LISTEN" => self.server.listen = v.into(),
            "MEDSIGN_SERVER_PUBLIC_URL" => self.server.public_url = Some(v.into()),
            "MEDSIGN_SERVER_MAX_BODY_BYTES" => {
                self.server.max_body_bytes = v.parse().map_err(|_| bad("not a number"))?
            }
            "MEDSIGN_SERVER_TLS_CERT" => self.server.tls_cert = Some(v.into()),
            "MEDSIGN_SERVER_TLS_KEY" => self.server.tls_key = Some(v.into()),
            "MEDSIGN_DATABASE_URL" => self.database.url = Some(v.into()),
            "MEDSIGN_TIME_SOURCES" => {
                self.time.sources = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
            }
            "MEDSIGN_TIME_MAX_OFFSET_MS" => self.time.max_offset_ms = v.parse().map_err(|_| bad("not a number"))?,
            "MEDSIGN_TIME_POLL_SECONDS" => {
                self.time.poll_seconds =
                    v.parse().ok().filter(|s| (1..=3600).contains(s)).ok_or_else(|| bad("1-3600"))?
            }
            "MEDSIGN_TIME_HOLDOVER_SECONDS" => {
                self.time.holdover_seconds = v.parse().ok().filter(|s| *s >= 1).ok_or_else(|| bad("≥ 1"))?
            }
            "MEDSIGN_SIGN_BATCH_RECLAIM_SECONDS" => {
                self.sign.batch_reclaim_seconds =
                    v.parse().ok().filter(|s| (1..=3600).contains(s)).ok_or_else(|| bad("1-3600"))?
            }
            "MEDSIGN_SIGN_FONT_FILE" => self.sign.font_file = Some(v.into()),
            "MEDSIGN_SIGN_GRANT_MAX_HOURS" => {
                self.sign.grant_max_hours = v.parse().map_err(|_| bad("1-12"))?;
            }
            "MEDSIGN_REALNAME_PROVIDER" => self.realname.provider = v.into(),
            "MEDSIGN_REALNAME_WECHAT_APPID" => self.realname.wechat_appid = Some(v.into()),
            "MEDSIGN_REALNAME_WECHAT_SECRET" => self.realname.wechat_secret = Some(v.into()),
            "MEDSIGN_REALNAME_WECHAT_API_BASE" => self.realname.wechat_api_base = v.into(),
            "MEDSIGN_TSA_DEFAULT_PROFILE" => self.tsa.default_profile = v.into(),
            "MEDSIGN_TSA_POLICY_OID" => self.tsa.policy_oid = v.into(),
            "MEDSIGN_TSA_ACCEPTED_POLICIES" => {
                self.tsa.accepted_policies =
                    v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
            }
            "MEDSIGN_CA_ORGANIZATION" => self.ca.organization = v.into(),
            "MEDSIGN_CA_CRL_REFRESH_HOURS" => {
                self.ca.crl_refresh_hours =
                    v.parse().ok().filter(|h| (1..=24).contains(h)).ok_or_else(|| bad("1-24"))?
            }
            "MEDSIGN_CA_OCSP_VALIDITY_MINUTES" => {
                self.ca.ocsp_validity_minutes = v.parse().ok().filter(|m| *m >= 1).ok_or_else(|| bad("≥ 1"))?
            }
            "MEDSIGN_CA_EXPIRY_WARN_DAYS" => self.ca.expiry_warn_days = v.parse().map_err(|_| bad("not a number"))?,
            "MEDSIGN_CA_POLICY_OIDS" => {
                self.ca.policy_oids = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
            }
            "MEDSIGN_CA_STAFF_VALIDITY_DAYS" => {
                self.ca.staff_validity_days = v.parse().map_err(|_| bad("not a number"))?
            }
            "MEDSIGN_CA_AUTO_RENEW" => self.ca.auto_renew = v.parse().map_err(|_| bad("true or false"))?,
            "MEDSIGN_AUDIT_ANCHOR_MINUTES" => self.audit.anchor_minutes = v.parse().map_err(|_| bad("not a number"))?,
            _ => {}
        }
        Ok(())
    }

    /// The data directory (default `./medsign-data`).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("medsign-data"))
    }

    /// The database URL (default: SQLite file in the data directory).
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir().join("medsign.db").display()),
        }
    }

    /// The public URL (default `http(s)://<listen>`).
    pub fn public_url(&self) -> String {
        let scheme = if self.server.tls_cert.is_some() { "https" } else { "http" };
        self.server.public_url.clone().unwrap_or_else(|| format!("{scheme}://{}", self.server.listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("medsign.toml");
        std::fs::write(&f, "[server]\nlisten = \"0.0.0.0:9000\"\n[time]\nmax_offset_ms = 50\n").unwrap();
        let env = vec![("MEDSIGN_TIME_SOURCES".to_string(), "a:123, b".to_string()), ("PATH".into(), "x".into())];
        let c = Config::load(Some(&f), env.into_iter()).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        assert_eq!(c.time.max_offset_ms, 50);
        assert_eq!(c.time.sources, vec!["a:123", "b"]);
        assert!(c.database_url().starts_with("sqlite://"));
        std::fs::write(&f, "[server]\nlisen = \"x\"\n").unwrap();
        assert!(Config::load(Some(&f), std::iter::empty()).unwrap_err().to_string().contains("lisen"));
        let env = vec![("MEDSIGN_TIME_MAX_OFFSET_MS".to_string(), "soon".to_string())];
        assert!(Config::load(None, env.into_iter()).is_err());
    }

    #[test]
    fn the_grant_limit_is_1_to_12_hours() {
        assert_eq!(Config::load(None, std::iter::empty()).unwrap().sign.grant_max_hours, 12);
        let env = |v: &str| vec![("MEDSIGN_SIGN_GRANT_MAX_HOURS".to_string(), v.to_string())].into_iter();
        assert_eq!(Config::load(None, env("4")).unwrap().sign.grant_max_hours, 4);
        for bad in ["0", "13", "four"] {
            assert!(Config::load(None, env(bad)).unwrap_err().to_string().contains("1-12"), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("medsign.toml");
        std::fs::write(&f, "[sign]\ngrant_max_hours = 24\n").unwrap();
        assert!(Config::load(Some(&f), std::iter::empty()).is_err(), "also from the file");
    }
}
