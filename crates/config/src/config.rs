//! Configuration: `medsign.toml` (path by `--config`) with every key overridable by the
//! environment as `MEDSIGN_<SECTION>_<KEY>` (docs/configuration.md), then command-line flags.

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
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// address:port to listen on
    pub listen: String,
    /// URL that QR codes, CRL/OCSP/AIA and callbacks use
    pub public_url: Option<String>,
    /// where phones load the H5 app when it is not served by the gateways: an origin of its own
    /// holding `medsign h5 export`'s files (docs/gateway.md); activation links and QR codes point
    /// there. Unset: `<public_url>/m/`
    pub app_url: Option<String>,
    /// largest accepted request body, bytes
    pub max_body_bytes: usize,
    /// TLS certificate chain (PEM); with `tls_key`, medsign serves HTTPS itself
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8 / SEC1 / PKCS#1)
    pub tls_key: Option<PathBuf>,
    /// addresses of reverse proxies whose `X-Forwarded-For` names the client (audit, rate
    /// limits); from anyone else the header is ignored
    pub trusted_proxies: Vec<String>,
    /// requests per minute one client address may make to the public TSA and to phone
    /// activation (0: no limit, e.g. for benchmarks behind a proxy that limits)
    pub public_rate_per_minute: u64,
    /// seconds a client may take to send a request's headers, and an idle connection is kept
    /// (slow clients cannot hold connections open)
    pub header_timeout_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7080".into(),
            public_url: None,
            app_url: None,
            max_body_bytes: 20 * 1024 * 1024,
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            public_rate_per_minute: 6000,
            header_timeout_seconds: 20,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; default: `medsign.db` in the data directory
    pub url: Option<String>,
}

/// `[time]`
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignConfig {
    /// a batch item `running` longer than this belongs to a crashed process and is retried (seconds)
    pub batch_reclaim_seconds: u64,
    /// batch items one instance works on at once (rendering and signing overlap the database's
    /// and the TSA's waits); 0: twice the number of CPU cores, at most 8
    pub batch_workers: u64,
    /// a full CJK font (TTF/OTF) for PDF text instead of the shipped GB2312 subset — for names
    /// with rarer characters
    pub font_file: Option<std::path::PathBuf>,
    /// the longest session grant a doctor may give a business system, 1–12 hours (R3.5)
    pub grant_max_hours: u32,
    /// the PAdES level of PDF flows that do not name one: `B-T` (signature timestamps), `B-LT`
    /// (plus certificates, OCSP answers and CRLs in the document's DSS) or `B-LTA` (plus a
    /// document timestamp, renewed before its TSA certificate expires)
    pub pades_level: String,
    /// the archive-timestamp job re-stamps a B-LTA document when the TSA certificate of its newest
    /// document timestamp ends within this many days
    pub archive_timestamp_days: u32,
    /// what the doctor's phone may show of a document before signing (R2.4): `content` (a data
    /// flow's content, a PDF's text page by page — only ever inside the end-to-end channel) or
    /// `summary` (title, number, pages and digest only)
    pub phone_view: String,
}

/// The PAdES levels a PDF flow may produce.
pub const PADES_LEVELS: &[&str] = &["B-T", "B-LT", "B-LTA"];

impl Default for SignConfig {
    fn default() -> Self {
        Self {
            batch_reclaim_seconds: 30,
            batch_workers: 0,
            font_file: None,
            grant_max_hours: GRANT_MAX_HOURS,
            pades_level: "B-T".into(),
            archive_timestamp_days: 180,
            phone_view: "content".into(),
        }
    }
}

/// `[tsa]`
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// sign the chain head every this many minutes (0 = only at start and stop)
    pub anchor_minutes: u64,
    /// append every anchor to this file too (a witness outside the database, e.g. another disk)
    pub witness_file: Option<PathBuf>,
    /// send every anchor to the local syslog too
    pub witness_syslog: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { anchor_minutes: 10, witness_file: None, witness_syslog: false }
    }
}

/// `[ca]`
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Clone, Deserialize, Serialize)]
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
    /// the hospital's WeCom (企业微信) corp ID, for the mini program inside WeCom
    pub wecom_corpid: Option<String>,
    /// the secret of the WeCom application the mini program is associated with (better from the
    /// environment, MEDSIGN_REALNAME_WECOM_SECRET)
    pub wecom_secret: Option<String>,
    /// the WeCom API (tests point it at a local fake)
    pub wecom_api_base: String,
    /// binding a phone also takes the employee's own WeCom login (the WeCom user ID must be the
    /// staff number): an activation code alone binds nothing
    pub wecom_required: bool,
}

impl Default for RealnameConfig {
    fn default() -> Self {
        Self {
            provider: "none".into(),
            wechat_appid: None,
            wechat_secret: None,
            wechat_api_base: "https://api.weixin.qq.com".into(),
            wecom_corpid: None,
            wecom_secret: None,
            wecom_api_base: "https://qyapi.weixin.qq.com".into(),
            wecom_required: false,
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
            .field("wecom_corpid", &self.wecom_corpid)
            .field("wecom_secret", &self.wecom_secret.as_ref().map(|_| "(set)"))
            .field("wecom_api_base", &self.wecom_api_base)
            .field("wecom_required", &self.wecom_required)
            .finish()
    }
}

/// `[tunnel]` — `medsign serve`'s side of the DMZ exchange: the gateways it opens its
/// connection out to (docs/gateway.md). Empty `gateways`: no tunnel.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TunnelConfig {
    /// `host:port` of every gateway's tunnel listener; the host is also the name its certificate
    /// must carry
    pub gateways: Vec<String>,
    /// this instance's client certificate chain (PEM), issued by the hospital CA
    /// (`medsign gateway cert --role server`)
    pub cert: Option<PathBuf>,
    /// its private key (PEM)
    pub key: Option<PathBuf>,
    /// the CA certificate(s) the gateway's certificate must chain to (PEM; the hospital's RSA root)
    pub ca: Option<PathBuf>,
    /// seconds between HTTP/2 pings on an idle tunnel; a ping not answered within it closes the
    /// tunnel, which is then opened again
    pub heartbeat_seconds: u64,
    /// the calls this instance makes to the internet (WeChat, outside CAs) leave through the
    /// gateways (HTTP CONNECT on their tunnel port, same certificates), not directly
    pub egress: bool,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        Self { gateways: vec![], cert: None, key: None, ca: None, heartbeat_seconds: 10, egress: false }
    }
}

/// `[gateway]` — `medsign gateway`, the DMZ front exchange (docs/gateway.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// where phones (or the load balancer in front of the gateways) connect
    pub listen: String,
    /// TLS certificate chain for `listen` (PEM); without it the gateway speaks plain HTTP there
    /// (a load balancer terminates TLS)
    pub tls_cert: Option<PathBuf>,
    /// its private key (PEM)
    pub tls_key: Option<PathBuf>,
    /// where `medsign serve` instances open their tunnels (mutual TLS)
    pub tunnel_listen: String,
    /// the tunnel listener's certificate chain (PEM), issued by the hospital CA
    /// (`medsign gateway cert --role gateway`)
    pub tunnel_cert: Option<PathBuf>,
    /// its private key (PEM)
    pub tunnel_key: Option<PathBuf>,
    /// the CA certificate(s) a server's client certificate must chain to (PEM)
    pub tunnel_ca: Option<PathBuf>,
    /// when set, only servers whose tunnel certificate has one of these common names (the first
    /// `--name` of `medsign gateway cert --role server`) may open a tunnel
    pub tunnel_peers: Vec<String>,
    /// addresses of load balancers whose `X-Forwarded-For` names the phone
    pub trusted_proxies: Vec<String>,
    /// seconds a phone may take to send a request's headers (and an idle connection is kept)
    pub header_timeout_seconds: u64,
    /// seconds a forwarded request may take inside the hospital before the phone gets a 504
    pub request_timeout_seconds: u64,
    /// requests one phone address (an IPv6 /64) may have in flight at once; beyond it, 429
    pub per_address_in_flight: usize,
    /// seconds between HTTP/2 pings on a tunnel
    pub heartbeat_seconds: u64,
    /// seconds between two fetches of the tunnel CA's CRL through a tunnel (also fetched when a
    /// tunnel opens); servers whose certificate is on it are shut out
    pub crl_refresh_seconds: u64,
    /// `host:port` the servers may reach through this gateway (HTTP CONNECT on the tunnel port,
    /// e.g. `api.weixin.qq.com:443`); empty: no egress
    pub egress_allow: Vec<String>,
    /// UDP address of the NTP relay the servers sync through (e.g. `0.0.0.0:123`); unset: none
    pub ntp_listen: Option<String>,
    /// the NTP servers the relay asks, `host[:port]`, in turn
    pub ntp_upstreams: Vec<String>,
    /// addresses the relay answers besides the servers with a tunnel open (IP addresses)
    pub ntp_clients: Vec<String>,
    /// origins (`https://host[:port]`) the H5 app is served from when not from the gateways
    /// (`server.app_url`): they may call the channel and sealed calls across origins, and the
    /// gateway then serves no app files at all
    pub app_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8443".into(),
            tls_cert: None,
            tls_key: None,
            tunnel_listen: "0.0.0.0:7443".into(),
            tunnel_cert: None,
            tunnel_key: None,
            tunnel_ca: None,
            tunnel_peers: vec![],
            trusted_proxies: vec![],
            header_timeout_seconds: 20,
            request_timeout_seconds: 60,
            per_address_in_flight: 16,
            heartbeat_seconds: 10,
            crl_refresh_seconds: 60,
            egress_allow: vec![],
            ntp_listen: None,
            ntp_upstreams: vec![],
            ntp_clients: vec![],
            app_origins: vec![],
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
    /// `[tunnel]`
    pub tunnel: TunnelConfig,
    /// `[gateway]`
    pub gateway: GatewayConfig,
}

/// What a variable's text becomes in the configuration.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Flag,
    /// comma-separated, blanks dropped
    List,
}

/// Every key the environment may set, as `MEDSIGN_<SECTION>_<KEY>` names it.
const ENV_KEYS: &[(&str, &str, Kind)] = &[
    ("MEDSIGN_DATA_DIR", "data_dir", Kind::Text),
    ("MEDSIGN_SERVER_LISTEN", "server.listen", Kind::Text),
    ("MEDSIGN_SERVER_PUBLIC_URL", "server.public_url", Kind::Text),
    ("MEDSIGN_SERVER_APP_URL", "server.app_url", Kind::Text),
    ("MEDSIGN_SERVER_MAX_BODY_BYTES", "server.max_body_bytes", Kind::Number),
    ("MEDSIGN_SERVER_TLS_CERT", "server.tls_cert", Kind::Text),
    ("MEDSIGN_SERVER_TLS_KEY", "server.tls_key", Kind::Text),
    ("MEDSIGN_SERVER_TRUSTED_PROXIES", "server.trusted_proxies", Kind::List),
    ("MEDSIGN_SERVER_PUBLIC_RATE_PER_MINUTE", "server.public_rate_per_minute", Kind::Number),
    ("MEDSIGN_SERVER_HEADER_TIMEOUT_SECONDS", "server.header_timeout_seconds", Kind::Number),
    ("MEDSIGN_DATABASE_URL", "database.url", Kind::Text),
    ("MEDSIGN_TIME_SOURCES", "time.sources", Kind::List),
    ("MEDSIGN_TIME_MAX_OFFSET_MS", "time.max_offset_ms", Kind::Number),
    ("MEDSIGN_TIME_POLL_SECONDS", "time.poll_seconds", Kind::Number),
    ("MEDSIGN_TIME_HOLDOVER_SECONDS", "time.holdover_seconds", Kind::Number),
    ("MEDSIGN_SIGN_BATCH_RECLAIM_SECONDS", "sign.batch_reclaim_seconds", Kind::Number),
    ("MEDSIGN_SIGN_BATCH_WORKERS", "sign.batch_workers", Kind::Number),
    ("MEDSIGN_SIGN_FONT_FILE", "sign.font_file", Kind::Text),
    ("MEDSIGN_SIGN_GRANT_MAX_HOURS", "sign.grant_max_hours", Kind::Number),
    ("MEDSIGN_SIGN_PADES_LEVEL", "sign.pades_level", Kind::Text),
    ("MEDSIGN_SIGN_PHONE_VIEW", "sign.phone_view", Kind::Text),
    ("MEDSIGN_SIGN_ARCHIVE_TIMESTAMP_DAYS", "sign.archive_timestamp_days", Kind::Number),
    ("MEDSIGN_REALNAME_PROVIDER", "realname.provider", Kind::Text),
    ("MEDSIGN_REALNAME_WECHAT_APPID", "realname.wechat_appid", Kind::Text),
    ("MEDSIGN_REALNAME_WECHAT_SECRET", "realname.wechat_secret", Kind::Text),
    ("MEDSIGN_REALNAME_WECHAT_API_BASE", "realname.wechat_api_base", Kind::Text),
    ("MEDSIGN_REALNAME_WECOM_CORPID", "realname.wecom_corpid", Kind::Text),
    ("MEDSIGN_REALNAME_WECOM_SECRET", "realname.wecom_secret", Kind::Text),
    ("MEDSIGN_REALNAME_WECOM_API_BASE", "realname.wecom_api_base", Kind::Text),
    ("MEDSIGN_REALNAME_WECOM_REQUIRED", "realname.wecom_required", Kind::Flag),
    ("MEDSIGN_TSA_DEFAULT_PROFILE", "tsa.default_profile", Kind::Text),
    ("MEDSIGN_TSA_POLICY_OID", "tsa.policy_oid", Kind::Text),
    ("MEDSIGN_TSA_ACCEPTED_POLICIES", "tsa.accepted_policies", Kind::List),
    ("MEDSIGN_CA_ORGANIZATION", "ca.organization", Kind::Text),
    ("MEDSIGN_CA_CRL_REFRESH_HOURS", "ca.crl_refresh_hours", Kind::Number),
    ("MEDSIGN_CA_OCSP_VALIDITY_MINUTES", "ca.ocsp_validity_minutes", Kind::Number),
    ("MEDSIGN_CA_EXPIRY_WARN_DAYS", "ca.expiry_warn_days", Kind::Number),
    ("MEDSIGN_CA_POLICY_OIDS", "ca.policy_oids", Kind::List),
    ("MEDSIGN_CA_STAFF_VALIDITY_DAYS", "ca.staff_validity_days", Kind::Number),
    ("MEDSIGN_CA_AUTO_RENEW", "ca.auto_renew", Kind::Flag),
    ("MEDSIGN_AUDIT_ANCHOR_MINUTES", "audit.anchor_minutes", Kind::Number),
    ("MEDSIGN_AUDIT_WITNESS_FILE", "audit.witness_file", Kind::Text),
    ("MEDSIGN_AUDIT_WITNESS_SYSLOG", "audit.witness_syslog", Kind::Flag),
    ("MEDSIGN_TUNNEL_GATEWAYS", "tunnel.gateways", Kind::List),
    ("MEDSIGN_TUNNEL_EGRESS", "tunnel.egress", Kind::Flag),
    ("MEDSIGN_TUNNEL_CERT", "tunnel.cert", Kind::Text),
    ("MEDSIGN_TUNNEL_KEY", "tunnel.key", Kind::Text),
    ("MEDSIGN_TUNNEL_CA", "tunnel.ca", Kind::Text),
    ("MEDSIGN_TUNNEL_HEARTBEAT_SECONDS", "tunnel.heartbeat_seconds", Kind::Number),
    ("MEDSIGN_GATEWAY_LISTEN", "gateway.listen", Kind::Text),
    ("MEDSIGN_GATEWAY_TLS_CERT", "gateway.tls_cert", Kind::Text),
    ("MEDSIGN_GATEWAY_TLS_KEY", "gateway.tls_key", Kind::Text),
    ("MEDSIGN_GATEWAY_TUNNEL_LISTEN", "gateway.tunnel_listen", Kind::Text),
    ("MEDSIGN_GATEWAY_TUNNEL_CERT", "gateway.tunnel_cert", Kind::Text),
    ("MEDSIGN_GATEWAY_TUNNEL_KEY", "gateway.tunnel_key", Kind::Text),
    ("MEDSIGN_GATEWAY_TUNNEL_CA", "gateway.tunnel_ca", Kind::Text),
    ("MEDSIGN_GATEWAY_TUNNEL_PEERS", "gateway.tunnel_peers", Kind::List),
    ("MEDSIGN_GATEWAY_TRUSTED_PROXIES", "gateway.trusted_proxies", Kind::List),
    ("MEDSIGN_GATEWAY_HEADER_TIMEOUT_SECONDS", "gateway.header_timeout_seconds", Kind::Number),
    ("MEDSIGN_GATEWAY_REQUEST_TIMEOUT_SECONDS", "gateway.request_timeout_seconds", Kind::Number),
    ("MEDSIGN_GATEWAY_HEARTBEAT_SECONDS", "gateway.heartbeat_seconds", Kind::Number),
    ("MEDSIGN_GATEWAY_CRL_REFRESH_SECONDS", "gateway.crl_refresh_seconds", Kind::Number),
    ("MEDSIGN_GATEWAY_PER_ADDRESS_IN_FLIGHT", "gateway.per_address_in_flight", Kind::Number),
    ("MEDSIGN_GATEWAY_EGRESS_ALLOW", "gateway.egress_allow", Kind::List),
    ("MEDSIGN_GATEWAY_NTP_LISTEN", "gateway.ntp_listen", Kind::Text),
    ("MEDSIGN_GATEWAY_NTP_UPSTREAMS", "gateway.ntp_upstreams", Kind::List),
    ("MEDSIGN_GATEWAY_NTP_CLIENTS", "gateway.ntp_clients", Kind::List),
    ("MEDSIGN_GATEWAY_APP_ORIGINS", "gateway.app_origins", Kind::List),
];

/// `MEDSIGN_*` variables that are not configuration keys: secrets the commands read themselves
/// (`MEDSIGN_KEK`, `MEDSIGN_KEY_PASSPHRASE`), the log filter, and the test and benchmark tools'
/// own settings (`MEDSIGN_TEST_*`, …), which reach medsign when a test starts it.
const NOT_CONFIG: &[&str] = &[
    "MEDSIGN_KEK",
    "MEDSIGN_KEY_PASSPHRASE",
    "MEDSIGN_LOG",
    "MEDSIGN_BIN",
    "MEDSIGN_TOOLS_DIR",
    "MEDSIGN_PLAYWRIGHT",
    "MEDSIGN_CHROMIUM",
    "MEDSIGN_SERVER_HALF",
];

/// The ranges every origin is held to: (key, lowest, highest).
const RANGES: &[(&str, u64, u64)] = &[
    ("server.max_body_bytes", 1024, 1 << 30),
    ("server.public_rate_per_minute", 0, 10_000_000),
    ("server.header_timeout_seconds", 1, 300),
    ("time.max_offset_ms", 1, 3_600_000),
    ("time.poll_seconds", 1, 3600),
    ("time.holdover_seconds", 1, 7 * 86_400),
    ("sign.batch_reclaim_seconds", 1, 3600),
    ("sign.batch_workers", 0, 64),
    ("sign.grant_max_hours", 1, GRANT_MAX_HOURS as u64),
    ("sign.archive_timestamp_days", 1, 3650),
    ("ca.crl_refresh_hours", 1, 24),
    ("ca.ocsp_validity_minutes", 1, 7 * 1440),
    ("ca.staff_validity_days", 1, 3650),
    ("tunnel.heartbeat_seconds", 1, 300),
    ("gateway.header_timeout_seconds", 1, 300),
    ("gateway.request_timeout_seconds", 1, 600),
    ("gateway.heartbeat_seconds", 1, 300),
    ("gateway.crl_refresh_seconds", 1, 3600),
    ("gateway.per_address_in_flight", 1, 256),
];

/// The variable that sets `key`, for messages.
fn variable_of(key: &str) -> &'static str {
    ENV_KEYS.iter().find(|(_, k, _)| *k == key).map(|(v, _, _)| *v).unwrap_or("")
}

impl Config {
    /// Read `file` (if given), then apply `MEDSIGN_*` variables from `env`; both are held to the
    /// same types and ranges, and an unknown `MEDSIGN_*` variable is refused (a typo would
    /// otherwise be silently ignored).
    pub fn load(file: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> Result<Self> {
        let mut table: toml::Table = match file {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    Error(format!("无法读取配置文件 {} / cannot read the configuration file: {e}", f.display()))
                })?;
                // the file's own types and names first, with the line and column of a mistake
                let bad = |e: toml::de::Error| {
                    Error(format!("配置文件 {} 有误 / invalid configuration file: {e}", f.display()))
                };
                toml::from_str::<Config>(&text).map_err(bad)?;
                text.parse().map_err(bad)?
            }
            None => toml::Table::new(),
        };
        let mut env: Vec<(String, String)> = env.filter(|(k, _)| k.starts_with("MEDSIGN_")).collect();
        env.sort();
        for (var, text) in env {
            if NOT_CONFIG.contains(&var.as_str()) || var.starts_with("MEDSIGN_TEST_") {
                continue;
            }
            let Some((_, key, kind)) = ENV_KEYS.iter().find(|(v, _, _)| *v == var) else {
                return Err(Error(format!(
                    "未知的环境变量 {var}（配置变量为 MEDSIGN_<节>_<键>，见 docs/configuration.md）/ unknown variable {var} (configuration variables are MEDSIGN_<SECTION>_<KEY>; see docs/configuration.md)"
                )));
            };
            let bad = |what: &str| Error(format!("环境变量 {var} 的值无效 / invalid value of {var} ({key}): {what}"));
            let value = match kind {
                Kind::Text => toml::Value::String(text),
                Kind::Number => toml::Value::Integer(text.trim().parse().map_err(|_| bad("须为整数 / not a number"))?),
                Kind::Flag => {
                    toml::Value::Boolean(text.trim().parse().map_err(|_| bad("须为 true 或 false / true or false"))?)
                }
                Kind::List => toml::Value::Array(
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.into()))
                        .collect(),
                ),
            };
            let (section, name) = match key.split_once('.') {
                Some((s, n)) => (Some(s), n),
                None => (None, *key),
            };
            let target = match section {
                Some(s) => table
                    .entry(s)
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or_else(|| Error(format!("配置文件中 [{s}] 不是表 / [{s}] in the file is not a table")))?,
                None => &mut table,
            };
            target.insert(name.to_string(), value);
            // the same type check as the file's, naming the variable
            toml::Value::Table(table.clone()).try_into::<Config>().map_err(|e| bad(&e.to_string()))?;
        }
        let c: Config = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| Error(format!("配置有误 / invalid configuration: {e}")))?;
        for (key, lo, hi) in RANGES {
            let (s, n) = key.split_once('.').expect("section.key");
            let v = table.get(s).and_then(|t| t.get(n)).and_then(|v| v.as_integer());
            if let Some(v) = v.filter(|v| !(*lo as i64..=*hi as i64).contains(v)) {
                let var = variable_of(key);
                return Err(Error(format!(
                    "配置项 {key}（环境变量 {var}）须为 {lo}–{hi}，实为 {v} / {key} ({var}) must be {lo}-{hi}, not {v}"
                )));
            }
        }
        if !PADES_LEVELS.contains(&c.sign.pades_level.as_str()) {
            let var = variable_of("sign.pades_level");
            return Err(Error(format!(
                "配置项 sign.pades_level（环境变量 {var}）须为 B-T、B-LT 或 B-LTA，实为 '{}' / sign.pades_level ({var}) must be B-T, B-LT or B-LTA, not '{}'",
                c.sign.pades_level, c.sign.pades_level
            )));
        }
        if !["content", "summary"].contains(&c.sign.phone_view.as_str()) {
            let var = variable_of("sign.phone_view");
            return Err(Error(format!(
                "配置项 sign.phone_view（环境变量 {var}）须为 content 或 summary，实为 '{}' / sign.phone_view ({var}) must be content or summary, not '{}'",
                c.sign.phone_view, c.sign.phone_view
            )));
        }
        for (key, list) in [
            ("server.trusted_proxies", &c.server.trusted_proxies),
            ("gateway.trusted_proxies", &c.gateway.trusted_proxies),
            ("gateway.ntp_clients", &c.gateway.ntp_clients),
        ] {
            for p in list {
                if p.parse::<std::net::IpAddr>().is_err() {
                    let var = variable_of(key);
                    return Err(Error(format!(
                        "配置项 {key}（环境变量 {var}）中的 '{p}' 不是 IP 地址 / '{p}' in {key} ({var}) is not an IP address"
                    )));
                }
            }
        }
        if let Some(u) = &c.server.app_url
            && !web_url(u, true)
        {
            let var = variable_of("server.app_url");
            return Err(Error(format!(
                "配置项 server.app_url（环境变量 {var}）须为 https:// 网址（http:// 仅限本机），主机名小写，不含 ?、#、&、引号等，至多 200 字节，实为 '{u}' / server.app_url ({var}) must be an https:// URL (http:// on loopback only), its host in lower case, without ?, #, &, quotes and the like, at most 200 bytes, not '{u}'"
            )));
        }
        for o in &c.gateway.app_origins {
            if !web_url(o, false) {
                let var = variable_of("gateway.app_origins");
                return Err(Error(format!(
                    "配置项 gateway.app_origins（环境变量 {var}）中的 '{o}' 须为 https://主机[:端口]（不带路径，主机名小写；http:// 仅限本机）/ '{o}' in gateway.app_origins ({var}) must be https://host[:port], without a path, the host in lower case (http:// on loopback only)"
                )));
            }
        }
        if !c.tunnel.gateways.is_empty() && (c.tunnel.cert.is_none() || c.tunnel.key.is_none() || c.tunnel.ca.is_none())
        {
            return Err(Error(
                "tunnel.gateways 已设置，须同时设置 tunnel.cert、tunnel.key 与 tunnel.ca（双向 TLS）/ with tunnel.gateways set, tunnel.cert, tunnel.key and tunnel.ca are needed too (mutual TLS)".into(),
            ));
        }
        for (key, list) in [("tunnel.gateways", &c.tunnel.gateways), ("gateway.egress_allow", &c.gateway.egress_allow)]
        {
            for g in list {
                if g.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
                    let var = variable_of(key);
                    return Err(Error(format!(
                        "配置项 {key}（环境变量 {var}）中的 '{g}' 须为 主机:端口 / '{g}' in {key} ({var}) must be host:port"
                    )));
                }
            }
        }
        if c.tunnel.egress && c.tunnel.gateways.is_empty() {
            return Err(Error(
                "tunnel.egress 须与 tunnel.gateways 一起设置 / tunnel.egress needs tunnel.gateways (the egress leaves through them)".into(),
            ));
        }
        Ok(c)
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

    /// Every key as it is in effect, in the order of the environment's variables, for the
    /// console's settings page (read-only: settings change in `medsign.toml` or the environment,
    /// then a restart). Secrets show only that they are set; a database URL without its password.
    pub fn settings(&self) -> Vec<Setting> {
        let tree = toml::Value::try_from(self).unwrap_or(toml::Value::Table(Default::default()));
        ENV_KEYS
            .iter()
            .map(|(env, key, _)| {
                let mut v = Some(&tree);
                for part in key.split('.') {
                    v = v.and_then(|t| t.get(part));
                }
                let text = v.map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => other.to_string(),
                });
                let secret = key.ends_with("secret");
                let value = match (secret, text) {
                    (true, Some(_)) => Some("（已设置 / set）".to_string()),
                    (_, Some(t)) if *key == "database.url" => Some(without_password(&t)),
                    (_, t) => t,
                };
                Setting { key: key.to_string(), env: env.to_string(), value, secret }
            })
            .collect()
    }

    /// The public URL (default `http(s)://<listen>`).
    pub fn public_url(&self) -> String {
        let scheme = if self.server.tls_cert.is_some() { "https" } else { "http" };
        self.server.public_url.clone().unwrap_or_else(|| format!("{scheme}://{}", self.server.listen))
    }
}

/// The base of the H5 app's links, ending in `/`: `app_url`, or `<public_url>/m/`.
pub fn app_base(app_url: Option<&str>, public_url: &str) -> String {
    match app_url {
        Some(u) => format!("{}/", u.trim_end_matches('/')),
        None => format!("{}/m/", public_url.trim_end_matches('/')),
    }
}

/// An `https://` URL (`http://` only on loopback: tests, a proxy on the same host) of at most 200
/// bytes of printable ASCII without `?`, `#`, quotes, `<`, `>`, `&`, `;`, `,`, `@` or backslashes,
/// its host in lower case; with `path` false, an origin (nothing after the host and port).
pub fn web_url(u: &str, path: bool) -> bool {
    let (rest, plain) = match (u.strip_prefix("https://"), u.strip_prefix("http://")) {
        (Some(r), _) => (r, false),
        (None, Some(r)) => (r, true),
        _ => return false,
    };
    let (host, tail) = rest.split_once('/').map_or((rest, ""), |(h, t)| (h, t));
    let name = host.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(host, |(h, _)| h);
    let loopback = name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    !host.is_empty()
        && u.len() <= 200
        && (!plain || loopback)
        && (path || tail.is_empty())
        && !host.bytes().any(|b| b.is_ascii_uppercase())
        && u.bytes().all(|b| b.is_ascii_graphic() && !b"?#\"'<>&;,@\\`".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings page shows every key in effect, and no secret: not the WeChat AppSecret, not
    /// the database password.
    #[test]
    fn settings_show_every_key_and_no_secret() {
        let mut c = Config::default();
        c.realname.wechat_secret = Some("s3cr3t-app-secret".into());
        c.database.url = Some("postgres://medsign:pa55word@db.hospital.example:5432/medsign".into());
        c.time.sources = vec!["ntp1.example".into(), "ntp2.example".into()];
        let all = c.settings();
        assert_eq!(all.len(), ENV_KEYS.len());
        let text = format!("{all:?}");
        assert!(!text.contains("s3cr3t") && !text.contains("pa55word"), "{text}");
        let get = |k: &str| all.iter().find(|s| s.key == k).unwrap().clone();
        assert_eq!(
            get("database.url").value.as_deref(),
            Some("postgres://medsign:***@db.hospital.example:5432/medsign")
        );
        assert!(get("realname.wechat_secret").secret);
        assert_eq!(get("time.sources").value.as_deref(), Some("ntp1.example, ntp2.example"));
        assert_eq!(get("time.sources").env, "MEDSIGN_TIME_SOURCES");
        assert_eq!(get("server.max_body_bytes").value, Some(c.server.max_body_bytes.to_string()));
        assert_eq!(without_password("sqlite:///x.db?mode=rwc"), "sqlite:///x.db?mode=rwc");
    }

    #[test]
    fn a_tunnel_needs_its_certificates_and_host_ports() {
        let env = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
        };
        let e = Config::load(None, env(&[("MEDSIGN_TUNNEL_GATEWAYS", "gw.example:7443")])).unwrap_err().to_string();
        assert!(e.contains("tunnel.cert") && e.contains("mutual TLS"), "{e}");
        let files =
            [("MEDSIGN_TUNNEL_CERT", "s.pem"), ("MEDSIGN_TUNNEL_KEY", "s.key"), ("MEDSIGN_TUNNEL_CA", "ca.pem")];
        for bad in ["gw.example", "gw.example:port", ":7443", "gw.example:70000"] {
            let mut v = files.to_vec();
            v.push(("MEDSIGN_TUNNEL_GATEWAYS", bad));
            let e = Config::load(None, env(&v)).unwrap_err().to_string();
            assert!(e.contains("MEDSIGN_TUNNEL_GATEWAYS") && e.contains("host:port"), "{bad}: {e}");
        }
        let mut v = files.to_vec();
        v.push(("MEDSIGN_TUNNEL_GATEWAYS", "gw1.example:7443, [::1]:7443"));
        assert_eq!(Config::load(None, env(&v)).unwrap().tunnel.gateways, ["gw1.example:7443", "[::1]:7443"]);
        let e = Config::load(None, env(&[("MEDSIGN_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/24")])).unwrap_err().to_string();
        assert!(e.contains("gateway.trusted_proxies"), "{e}");
        let e = Config::load(None, env(&[("MEDSIGN_GATEWAY_HEARTBEAT_SECONDS", "0")])).unwrap_err().to_string();
        assert!(e.contains("gateway.heartbeat_seconds"), "{e}");
        // the egress and the NTP relay: host:port destinations, addresses of clients, no egress
        // without gateways to leave through
        let e =
            Config::load(None, env(&[("MEDSIGN_GATEWAY_EGRESS_ALLOW", "api.weixin.qq.com")])).unwrap_err().to_string();
        assert!(e.contains("MEDSIGN_GATEWAY_EGRESS_ALLOW") && e.contains("host:port"), "{e}");
        let e = Config::load(None, env(&[("MEDSIGN_GATEWAY_NTP_CLIENTS", "srv1.example")])).unwrap_err().to_string();
        assert!(e.contains("gateway.ntp_clients"), "{e}");
        let e = Config::load(None, env(&[("MEDSIGN_TUNNEL_EGRESS", "true")])).unwrap_err().to_string();
        assert!(e.contains("tunnel.egress") && e.contains("tunnel.gateways"), "{e}");
        let mut v = files.to_vec();
        v.extend([("MEDSIGN_TUNNEL_GATEWAYS", "gw1.example:7443"), ("MEDSIGN_TUNNEL_EGRESS", "true")]);
        v.push(("MEDSIGN_GATEWAY_EGRESS_ALLOW", "api.weixin.qq.com:443,est.ca.example:443"));
        let c = Config::load(None, env(&v)).unwrap();
        assert!(c.tunnel.egress && c.gateway.egress_allow.len() == 2);
    }

    #[test]
    fn trusted_proxies_must_be_addresses() {
        let env = |v: &str| vec![("MEDSIGN_SERVER_TRUSTED_PROXIES".to_string(), v.to_string())].into_iter();
        let c = Config::load(None, env("127.0.0.1, ::1")).unwrap();
        assert_eq!(c.server.trusted_proxies, ["127.0.0.1", "::1"]);
        let e = Config::load(None, env("127.0.0.1, proxy.example")).unwrap_err().to_string();
        assert!(e.contains("proxy.example") && e.contains("MEDSIGN_SERVER_TRUSTED_PROXIES"), "{e}");
    }

    #[test]
    fn the_app_url_and_its_origins_are_web_addresses() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())].into_iter();
        let c = Config::load(None, env("MEDSIGN_SERVER_APP_URL", "https://app.hospital.example/doctor")).unwrap();
        assert_eq!(
            app_base(c.server.app_url.as_deref(), "https://sign.example"),
            "https://app.hospital.example/doctor/"
        );
        assert_eq!(app_base(None, "https://sign.example/"), "https://sign.example/m/");
        for bad in [
            "app.hospital.example",
            "https://app.example/#/x",
            "https://app.example/?a",
            "https://a\"b.example/",
            "http://app.example/",
            "https://App.example/",
            "https://app.example/&Tab;*",
            "https://user@app.example/",
        ] {
            let e = Config::load(None, env("MEDSIGN_SERVER_APP_URL", bad)).unwrap_err().to_string();
            assert!(e.contains("MEDSIGN_SERVER_APP_URL"), "{bad}: {e}");
        }
        let c = Config::load(None, env("MEDSIGN_GATEWAY_APP_ORIGINS", "https://app.example, http://127.0.0.1:8080"))
            .unwrap();
        assert_eq!(c.gateway.app_origins.len(), 2);
        let e =
            Config::load(None, env("MEDSIGN_GATEWAY_APP_ORIGINS", "https://app.example/m/")).unwrap_err().to_string();
        assert!(e.contains("gateway.app_origins"), "a path is not an origin: {e}");
    }

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
    fn phone_view_is_content_or_summary() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())].into_iter();
        assert_eq!(Config::load(None, std::iter::empty()).unwrap().sign.phone_view, "content");
        assert_eq!(Config::load(None, env("MEDSIGN_SIGN_PHONE_VIEW", "summary")).unwrap().sign.phone_view, "summary");
        let e = Config::load(None, env("MEDSIGN_SIGN_PHONE_VIEW", "pages")).unwrap_err().to_string();
        assert!(e.contains("MEDSIGN_SIGN_PHONE_VIEW") && e.contains("content or summary"), "{e}");
    }

    #[test]
    fn pades_level_is_b_t_b_lt_or_b_lta() {
        let c = Config::load(None, std::iter::empty()).unwrap();
        assert_eq!((c.sign.pades_level.as_str(), c.sign.archive_timestamp_days), ("B-T", 180));
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())].into_iter();
        assert_eq!(Config::load(None, env("MEDSIGN_SIGN_PADES_LEVEL", "B-LTA")).unwrap().sign.pades_level, "B-LTA");
        let e = Config::load(None, env("MEDSIGN_SIGN_PADES_LEVEL", "LTV")).unwrap_err().to_string();
        assert!(e.contains("MEDSIGN_SIGN_PADES_LEVEL") && e.contains("B-LTA") && e.contains("须为"), "{e}");
        let e = Config::load(None, env("MEDSIGN_SIGN_ARCHIVE_TIMESTAMP_DAYS", "0")).unwrap_err().to_string();
        assert!(e.contains("1-3650"), "{e}");
    }

    #[test]
    fn the_grant_limit_is_1_to_12_hours() {
        assert_eq!(Config::load(None, std::iter::empty()).unwrap().sign.grant_max_hours, 12);
        let env = |v: &str| vec![("MEDSIGN_SIGN_GRANT_MAX_HOURS".to_string(), v.to_string())].into_iter();
        assert_eq!(Config::load(None, env("4")).unwrap().sign.grant_max_hours, 4);
        for bad in ["0", "13"] {
            assert!(Config::load(None, env(bad)).unwrap_err().to_string().contains("1-12"), "{bad}");
        }
        assert!(Config::load(None, env("four")).unwrap_err().to_string().contains("MEDSIGN_SIGN_GRANT_MAX_HOURS"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("medsign.toml");
        std::fs::write(&f, "[sign]\ngrant_max_hours = 24\n").unwrap();
        assert!(Config::load(Some(&f), std::iter::empty()).is_err(), "also from the file");
    }

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn an_unknown_medsign_variable_is_refused_by_name() {
        let e = Config::load(None, vars(&[("MEDSIGN_TIME_POLL_SECOND", "60")])).unwrap_err();
        assert!(e.0.contains("MEDSIGN_TIME_POLL_SECOND") && e.0.contains("unknown variable"), "{e}");
        // secrets the commands read, and the test tools' own variables, are not configuration
        let ok = vars(&[("MEDSIGN_KEK", "x"), ("MEDSIGN_TEST_PYTHON", "/x"), ("MEDSIGN_LOG", "debug"), ("OTHER", "1")]);
        assert!(Config::load(None, ok).is_ok());
    }

    #[test]
    fn file_and_environment_are_held_to_the_same_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("medsign.toml");
        for (file, var, value) in [
            ("[time]\npoll_seconds = 0\n", "MEDSIGN_TIME_POLL_SECONDS", "0"),
            ("[ca]\ncrl_refresh_hours = 48\n", "MEDSIGN_CA_CRL_REFRESH_HOURS", "48"),
            ("[server]\nmax_body_bytes = 10\n", "MEDSIGN_SERVER_MAX_BODY_BYTES", "10"),
            ("[sign]\nbatch_reclaim_seconds = 0\n", "MEDSIGN_SIGN_BATCH_RECLAIM_SECONDS", "0"),
        ] {
            std::fs::write(&f, file).unwrap();
            let from_file = Config::load(Some(&f), std::iter::empty()).unwrap_err().0;
            let from_env = Config::load(None, vars(&[(var, value)])).unwrap_err().0;
            assert_eq!(from_file, from_env, "one check for both origins");
            assert!(from_env.contains(var), "names the variable: {from_env}");
        }
        // a wrong type in the environment names the variable, in the file it names the key
        let e = Config::load(None, vars(&[("MEDSIGN_CA_AUTO_RENEW", "yes")])).unwrap_err().0;
        assert!(e.contains("MEDSIGN_CA_AUTO_RENEW"), "{e}");
        let e = Config::load(None, vars(&[("MEDSIGN_TIME_MAX_OFFSET_MS", "-5")])).unwrap_err().0;
        assert!(e.contains("MEDSIGN_TIME_MAX_OFFSET_MS"), "{e}");
        std::fs::write(&f, "[ca]\nauto_renew = \"yes\"\n").unwrap();
        let e = Config::load(Some(&f), std::iter::empty()).unwrap_err().0;
        assert!(e.contains("auto_renew") && e.contains("line 2"), "names the key and where: {e}");
        // the environment still overrides the file
        std::fs::write(&f, "[time]\npoll_seconds = 5\n").unwrap();
        let c = Config::load(Some(&f), vars(&[("MEDSIGN_TIME_POLL_SECONDS", "7")])).unwrap();
        assert_eq!(c.time.poll_seconds, 7);
    }
}

/// One configuration key as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// `section.key` in medsign.toml
    pub key: String,
    /// the environment variable that overrides it
    pub env: String,
    /// the value in effect (None: not set); secrets only say that they are set
    pub value: Option<String>,
    /// a secret (never shown)
    pub secret: bool,
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (auth, host) = match rest.split_once('@') {
        Some((a, h)) if !a.contains('/') => (a, h),
        _ => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}
