//! CA channels (issue #4; R1.2, R4.5): where staff certificates are issued. A [`CaChannel`] is the
//! built-in CA, an EST server (RFC 7030: `cacerts`, `simpleenroll`, `simplereenroll`; HTTP Basic
//! or TLS client authentication) or another medsign's CA API (`POST /api/v1/ca/enroll`, e.g. a
//! regional node). Channels live in the database, one active per profile; an admin switches
//! online (every node reads the table on each issuance, so no restart and no cluster message);
//! when the active channel fails, the next enabled one (by priority) is tried and, when it
//! succeeds, takes over — every failure, switch and failover is an audit entry. A health check per
//! channel runs on demand and every minute in `medsign serve`.

use crate::ca::BuiltinCas;
use base64::Engine;
use chrono::{Duration, Utc};
use medsign_crypto::{PublicKey, wrap::Kek};
use medsign_pki::x509_cert::name::Name;
use medsign_pki::{
    cert::{Cert, CertTemplate, Profile, issue},
    cms,
};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};
use zeroize::Zeroizing;

/// A boxed future, so that channels can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What to certify.
#[derive(Debug, Clone)]
pub struct Enrollment<'a> {
    /// the staff member
    pub employee_no: &'a str,
    /// the subject DN the hospital wants (RFC 4514 text)
    pub subject: &'a str,
    /// parsed subject
    pub subject_name: &'a Name,
    /// the key
    pub public_key: &'a PublicKey,
    /// the requester's own PKCS#10 (DER), when there is one — EST needs it
    pub csr_der: Option<&'a [u8]>,
    /// a renewal (EST `simplereenroll`)
    pub renewal: bool,
}

/// A certificate a channel issued, with the chain it came with.
#[derive(Debug, Clone)]
pub struct Issued {
    /// the certificate
    pub cert: Cert,
    /// CA certificates that came with it
    pub chain: Vec<Cert>,
}

/// A way to get certificates issued.
pub trait CaChannel: Send + Sync {
    /// Issue for `e`. `Error::Invalid` means this channel cannot serve this request (no CSR for
    /// EST, refused by the CA) — the next channel is tried but this one stays healthy; any other
    /// error marks the channel down.
    fn issue<'a>(&'a self, e: &'a Enrollment<'a>) -> BoxFuture<'a, Result<Issued>>;
    /// Is the channel reachable and answering?
    fn health(&self) -> BoxFuture<'_, Result<()>>;
    /// Tell the issuing CA that `serial` is revoked. `Ok(false)`: the protocol has no revocation
    /// (EST) — revoke at the CA operator.
    fn revoke<'a>(&'a self, _serial: &'a str, _reason: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async { Ok(false) })
    }
}

/// The built-in CA as a channel.
pub struct Builtin<'a> {
    /// the CAs
    pub cas: &'a BuiltinCas,
    /// base of the CRL and OCSP URLs
    pub public_url: &'a str,
}

impl Builtin<'_> {
    /// Issue a one-year staff signing certificate (never beyond the issuing CA).
    pub fn issue_now(&self, subject: &Name, key: &PublicKey) -> Result<Issued> {
        let h = match key {
            PublicKey::Sm2(_) => &self.cas.sm2,
            _ => &self.cas.rsa,
        };
        let now = Utc::now();
        let mut t = CertTemplate::new(
            subject.clone(),
            key.clone(),
            Profile::Signer,
            now - Duration::minutes(5),
            now + Duration::days(365),
        );
        t.not_after = t.not_after.min(h.issuing.not_after());
        crate::ca::Links::new(self.public_url, h.name).apply(&mut t);
        t.policies = self.cas.staff.oids().to_vec();
        let cert = issue(&t, Some(&h.issuing), h.issuing_key.as_ref())
            .map_err(|e| Error::internal_from("issuance failed", e))?;
        Ok(Issued { cert, chain: vec![h.issuing.clone(), h.root.clone()] })
    }
}

impl CaChannel for Builtin<'_> {
    fn issue<'a>(&'a self, e: &'a Enrollment<'a>) -> BoxFuture<'a, Result<Issued>> {
        Box::pin(async move { self.issue_now(e.subject_name, e.public_key) })
    }
    fn health(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(text: &[u8]) -> Option<Vec<u8>> {
    let clean: Vec<u8> = text.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}

/// Map a transport failure to a "channel down" error.
fn down(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("CA 通道 {what} 不可用 / CA channel {what} unavailable: {e}"))
}

/// An EST client (RFC 7030).
pub struct Est {
    /// `https://host[:port]/.well-known/est[/label]`
    pub base: String,
    client: reqwest::Client,
    basic: Option<(String, Zeroizing<String>)>,
}

impl Est {
    fn url(&self, op: &str) -> String {
        format!("{}/{op}", self.base.trim_end_matches('/'))
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.basic {
            Some((u, p)) => r.basic_auth(u, Some(p.as_str())),
            None => r,
        }
    }

    /// `GET /cacerts` (§ 4.1): the CA certificates.
    pub async fn cacerts(&self) -> Result<Vec<Cert>> {
        let r = self.client.get(self.url("cacerts")).send().await.map_err(|e| down(&self.base, e))?;
        if !r.status().is_success() {
            return Err(down(&self.base, format!("cacerts HTTP {}", r.status())));
        }
        let body = r.bytes().await.map_err(|e| down(&self.base, e))?;
        let der = unb64(&body).ok_or_else(|| down(&self.base, "cacerts is not base64"))?;
        let certs = cms::Parsed::from_bytes(&der).map_err(|e| down(&self.base, e))?.certificates();
        if certs.is_empty() {
            return Err(down(&self.base, "cacerts is empty"));
        }
        Ok(certs)
    }
}

impl CaChannel for Est {
    fn issue<'a>(&'a self, e: &'a Enrollment<'a>) -> BoxFuture<'a, Result<Issued>> {
        Box::pin(async move {
            let csr = e.csr_der.ok_or_else(|| {
                Error::Invalid(
                    "EST 通道需要申请者自己的证书请求（CSR）/ the EST channel needs the requester's own CSR".into(),
                )
            })?;
            let op = if e.renewal { "simplereenroll" } else { "simpleenroll" };
            let r = self
                .auth(self.client.post(self.url(op)))
                .header("Content-Type", "application/pkcs10")
                .header("Content-Transfer-Encoding", "base64")
                .body(b64(csr))
                .send()
                .await
                .map_err(|err| down(&self.base, err))?;
            let status = r.status();
            let body = r.bytes().await.map_err(|err| down(&self.base, err))?;
            match status.as_u16() {
                200 => {}
                202 => return Err(down(&self.base, "the request is pending manual approval (HTTP 202)")),
                401 | 403 => return Err(down(&self.base, format!("authentication refused (HTTP {status})"))),
                400..=499 => {
                    return Err(Error::Invalid(format!(
                        "EST 服务器拒绝了请求 / the EST server refused the request (HTTP {status}): {}",
                        String::from_utf8_lossy(&body).chars().take(200).collect::<String>()
                    )));
                }
                _ => return Err(down(&self.base, format!("HTTP {status}"))),
            }
            let der = unb64(&body).ok_or_else(|| down(&self.base, "the enrolment answer is not base64"))?;
            let mut certs = cms::Parsed::from_bytes(&der).map_err(|err| down(&self.base, err))?.certificates();
            let i = certs
                .iter()
                .position(|c| c.public_key().ok() == Some(e.public_key))
                .ok_or_else(|| down(&self.base, "the answer holds no certificate for the requested key"))?;
            let cert = certs.remove(i);
            Ok(Issued { cert, chain: certs })
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.cacerts().await.map(|_| ()) })
    }
}

/// Another medsign's CA API (`POST /api/v1/ca/enroll`, app token with the `certs` scope).
pub struct Remote {
    /// `https://regional.example/`
    pub base: String,
    client: reqwest::Client,
    token: Zeroizing<String>,
}

/// Body of `POST /api/v1/ca/enroll`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaEnrollment {
    /// the staff member at the requesting hospital
    pub employee_no: String,
    /// subject DN (RFC 4514), as the requesting hospital's profile built it
    pub subject: String,
    /// the key, SPKI PEM
    pub public_key: String,
    /// the requester's PKCS#10 (PEM), when there is one
    pub csr: Option<String>,
}

/// Answer of `POST /api/v1/ca/enroll`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaIssued {
    /// serial, upper-case hex
    pub serial: String,
    /// the certificate, PEM
    pub certificate_pem: String,
    /// issuing CA and root, PEM
    pub chain_pem: String,
}

impl CaChannel for Remote {
    fn issue<'a>(&'a self, e: &'a Enrollment<'a>) -> BoxFuture<'a, Result<Issued>> {
        Box::pin(async move {
            let body = RaEnrollment {
                employee_no: e.employee_no.into(),
                subject: e.subject.into(),
                public_key: e.public_key.to_pem(),
                csr: e.csr_der.map(|d| medsign_crypto::keys::pem_encode("CERTIFICATE REQUEST", d)),
            };
            let r = self
                .client
                .post(format!("{}/api/v1/ca/enroll", self.base.trim_end_matches('/')))
                .bearer_auth(self.token.as_str())
                .json(&body)
                .send()
                .await
                .map_err(|err| down(&self.base, err))?;
            let status = r.status();
            if status.is_client_error() && status.as_u16() != 401 && status.as_u16() != 403 {
                let text = r.text().await.unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "远程 CA 拒绝了请求 / the remote CA refused the request (HTTP {status}): {}",
                    text.chars().take(300).collect::<String>()
                )));
            }
            if !status.is_success() {
                return Err(down(&self.base, format!("HTTP {status}")));
            }
            let a: RaIssued = r.json().await.map_err(|err| down(&self.base, err))?;
            let cert = Cert::load_all(a.certificate_pem.as_bytes())
                .ok()
                .and_then(|v| v.into_iter().next())
                .ok_or_else(|| down(&self.base, "the answer holds no certificate"))?;
            if cert.public_key().ok() != Some(e.public_key) {
                return Err(down(&self.base, "the certificate is for another key"));
            }
            Ok(Issued { cert, chain: Cert::load_all(a.chain_pem.as_bytes()).unwrap_or_default() })
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let r = self
                .client
                .get(format!("{}/readyz", self.base.trim_end_matches('/')))
                .send()
                .await
                .map_err(|e| down(&self.base, e))?;
            if r.status().is_success() { Ok(()) } else { Err(down(&self.base, format!("readyz HTTP {}", r.status()))) }
        })
    }

    fn revoke<'a>(&'a self, serial: &'a str, reason: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let r = self
                .client
                .post(format!("{}/api/v1/certificates/{serial}/revoke", self.base.trim_end_matches('/')))
                .bearer_auth(self.token.as_str())
                .json(&serde_json::json!({"reason": reason}))
                .send()
                .await
                .map_err(|e| down(&self.base, e))?;
            match r.status().as_u16() {
                200 | 409 => Ok(true), // 409: already revoked there
                s => Err(down(&self.base, format!("revoke HTTP {s}"))),
            }
        })
    }
}

/// How a channel is configured (stored as JSON; secrets apart, wrapped).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// EST: `https://host/.well-known/est[/label]`; medsign: the other node's base URL
    pub url: String,
    /// EST HTTP Basic user name
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// extra trust anchors for the server's TLS certificate (PEM)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_trust_pem: Option<String>,
    /// TLS client certificate (PEM) for EST client authentication (its key goes in the secret)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
}

/// A channel as the admin API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ChannelRecord {
    /// id
    pub id: String,
    /// display name
    pub name: String,
    /// `builtin` | `est` | `medsign`
    pub kind: String,
    /// the profile it issues (`signer`)
    pub profile: String,
    /// failover order, lower first
    pub priority: i64,
    /// may be used
    pub enabled: bool,
    /// the one used first
    pub active: bool,
    /// configuration (no secrets)
    pub config: serde_json::Value,
    /// `ok` | `down` | `unknown`
    pub health: String,
    /// last health change
    pub health_at: Option<String>,
    /// why it is down
    pub health_error: Option<String>,
}

fn channel_record(r: &sqlx::any::AnyRow) -> Result<ChannelRecord> {
    let config: String = r.try_get("config")?;
    Ok(ChannelRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        profile: r.try_get("profile")?,
        priority: r.try_get("priority")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        active: r.try_get::<i64, _>("active")? != 0,
        config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
        health: r.try_get("health")?,
        health_at: r.try_get("health_at")?,
        health_error: r.try_get("health_error")?,
    })
}

/// A new channel (admin API).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// display name
    pub name: String,
    /// `est` | `medsign`
    pub kind: String,
    /// failover order, lower first (built-in is 0)
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// connection settings
    pub config: ChannelConfig,
    /// EST: Basic password, or the PEM key of `client_cert_pem`; medsign: the app token. Stored
    /// wrapped under the KEK, never shown again.
    pub secret: Option<String>,
}

fn default_priority() -> i64 {
    10
}

fn secret_aad(id: &str) -> Vec<u8> {
    format!("medsign/ca-channel/{id}").into_bytes()
}

fn build(kind: &str, cfg: &ChannelConfig, secret: Option<Zeroizing<String>>) -> Result<Arc<dyn CaChannel>> {
    let bad = |e: String| Error::Invalid(format!("CA 通道配置无效 / invalid CA channel configuration: {e}"));
    if !(cfg.url.starts_with("https://") || cfg.url.starts_with("http://")) {
        return Err(bad(format!("url '{}' must start with http:// or https://", cfg.url)));
    }
    let mut b = crate::egress::client_builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(20));
    if let Some(pem) = &cfg.tls_trust_pem {
        for c in reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| bad(e.to_string()))? {
            b = b.add_root_certificate(c);
        }
    }
    let mut basic = None;
    match (kind, &cfg.client_cert_pem, &secret) {
        ("est", Some(_), Some(_)) if crate::egress::through_gateways() => {
            return Err(bad("经网关出站时 EST 通道不能用客户端证书认证，请改用用户名口令 / through the gateways' egress an EST channel cannot authenticate with a client certificate; use a username and password".into()));
        }
        ("est", Some(cert), Some(key)) => {
            let id = reqwest::Identity::from_pem(format!("{cert}\n{}", key.as_str()).as_bytes())
                .map_err(|e| bad(format!("client certificate/key: {e}")))?;
            b = b.identity(id);
        }
        ("est", None, Some(pw)) => {
            let user = cfg.username.clone().ok_or_else(|| bad("EST Basic authentication needs a username".into()))?;
            basic = Some((user, pw.clone()));
        }
        _ => {}
    }
    let client = b.build().map_err(|e| bad(e.to_string()))?;
    Ok(match kind {
        "est" => Arc::new(Est { base: cfg.url.clone(), client, basic }),
        "medsign" => Arc::new(Remote {
            base: cfg.url.clone(),
            client,
            token: secret.ok_or_else(|| bad("a medsign channel needs the app token as secret".into()))?,
        }),
        other => return Err(bad(format!("unknown kind '{other}' (est, medsign)"))),
    })
}

/// Built clients by channel id, with the `updated_at` they were built from.
type ClientCache = HashMap<String, (String, Arc<dyn CaChannel>)>;

/// The channels: built clients cached by id and version (`updated_at`).
#[derive(Default)]
pub struct Channels {
    cache: std::sync::Mutex<ClientCache>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels").finish_non_exhaustive()
    }
}

/// Row data needed to use a channel.
struct ChannelRow {
    id: String,
    kind: String,
    active: bool,
    config: String,
    secret: Option<String>,
    updated_at: String,
}

impl ChannelRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<Self> {
        Ok(ChannelRow {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            active: r.try_get::<i64, _>("active")? != 0,
            config: r.try_get("config")?,
            secret: r.try_get("secret")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    /// The row of channel `id`, if any.
    async fn load(db: &Db, id: &str) -> Result<Option<Self>> {
        let r = sqlx::query("SELECT id, kind, active, config, secret, updated_at FROM ca_channels WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?;
        r.as_ref().map(Self::from_row).transpose()
    }
}

impl Channels {
    fn instance(&self, kek: &Kek, r: &ChannelRow) -> Result<Arc<dyn CaChannel>> {
        if let Some((v, c)) = self.cache.lock().expect("channel cache").get(&r.id)
            && v == &r.updated_at
        {
            return Ok(c.clone());
        }
        let cfg: ChannelConfig =
            serde_json::from_str(&r.config).map_err(|e| Error::internal_from(format!("channel {}", r.id), e))?;
        let secret = match &r.secret {
            Some(h) => {
                let blob =
                    hex::decode(h).map_err(|_| Error::internal(format!("channel {} secret is corrupt", r.id)))?;
                let plain = kek.unwrap(&blob, &secret_aad(&r.id))?;
                Some(Zeroizing::new(String::from_utf8_lossy(&plain).into_owned()))
            }
            None => None,
        };
        let c = build(&r.kind, &cfg, secret)?;
        self.cache.lock().expect("channel cache").insert(r.id.clone(), (r.updated_at.clone(), c.clone()));
        Ok(c)
    }

    async fn rows(db: &Db, profile: &str) -> Result<Vec<ChannelRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, active, config, secret, updated_at FROM ca_channels \
             WHERE profile = $1 AND enabled = 1 ORDER BY active DESC, priority, id",
        )
        .bind(profile)
        .fetch_all(&db.pool)
        .await?;
        rows.iter().map(ChannelRow::from_row).collect()
    }

    /// Issue through the active channel, failing over in priority order. Returns the certificate
    /// and the id of the channel that issued it.
    pub async fn issue(
        &self,
        db: &Db,
        kek: &Kek,
        builtin: &Builtin<'_>,
        ctx: &Context,
        e: &Enrollment<'_>,
    ) -> Result<(Issued, String)> {
        let rows = Self::rows(db, "signer").await?;
        if rows.is_empty() {
            return Err(Error::Unavailable(
                "没有启用的 CA 通道 / no CA channel is enabled (admin: /admin/v1/ca-channels)".into(),
            ));
        }
        let mut errors = Vec::new();
        let mut active_down = false;
        for (i, r) in rows.iter().enumerate() {
            let result = if r.kind == "builtin" {
                builtin.issue(e).await
            } else {
                match self.instance(kek, r) {
                    Ok(c) => c.issue(e).await,
                    Err(err) => Err(err),
                }
            };
            match result {
                Ok(issued) => {
                    if i > 0 && active_down {
                        // the first healthy one behind a failed active channel takes over
                        let from = rows.iter().find(|x| x.active).map(|x| x.id.clone());
                        set_active(
                            db,
                            ctx,
                            &r.id,
                            "ca.channel.failover",
                            serde_json::json!({"from": from, "errors": errors}),
                        )
                        .await?;
                    }
                    if r.kind != "builtin" {
                        set_health(db, &r.id, None).await?;
                    }
                    return Ok((issued, r.id.clone()));
                }
                Err(Error::Invalid(msg)) => errors.push(format!("{}: {msg}", r.id)),
                Err(err) => {
                    tracing::warn!(channel = %r.id, error = %err, "CA channel failed; trying the next");
                    set_health(db, &r.id, Some(&err.to_string())).await?;
                    let target = format!("ca_channel:{}", r.id);
                    let ev = audit::Event {
                        kind: Kind::Admin,
                        action: "ca.channel.error",
                        target: &target,
                        outcome: "failed:unavailable",
                        details: serde_json::json!({"error": err.to_string(), "employee_no": e.employee_no}),
                    };
                    audit::record(db, ctx, &ev).await?;
                    if r.active {
                        active_down = true;
                    }
                    errors.push(format!("{}: {err}", r.id));
                }
            }
        }
        if errors.iter().all(|m| !m.contains("unavailable")) && !active_down {
            return Err(Error::Invalid(format!(
                "没有能处理此请求的 CA 通道 / no CA channel can serve this request: {}",
                errors.join("; ")
            )));
        }
        Err(Error::Unavailable(format!("所有 CA 通道均不可用 / every CA channel failed: {}", errors.join("; "))))
    }
}

/// Does the channel issuance tries first (the active one) take only the requester's own PKCS#10
/// (EST)? Then a key without one would be served by the next channel instead — for a phone's
/// two-party key the hospital wants the active CA, so phone and server sign a request first.
pub async fn active_needs_request(db: &Db) -> Result<bool> {
    Ok(Channels::rows(db, "signer").await?.first().is_some_and(|r| r.kind == "est"))
}

async fn set_health(db: &Db, id: &str, error: Option<&str>) -> Result<()> {
    let health = if error.is_some() { "down" } else { "ok" };
    // only write when it changes: this runs on every issuance
    sqlx::query(
        "UPDATE ca_channels SET health = $1, health_at = $2, health_error = $3 \
         WHERE id = $4 AND (health <> $1 OR COALESCE(health_error, '') <> COALESCE($3, ''))",
    )
    .bind(health)
    .bind(medsign_store::now_text())
    .bind(error)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

async fn set_active(db: &Db, ctx: &Context, id: &str, action: &str, details: serde_json::Value) -> Result<()> {
    // a channel's profile never changes: read it before the transaction, so the transaction's
    // first statement writes — on SQLite a transaction that read first cannot write after another
    // connection's commit (health updates run beside it) and fails at once with "database is locked"
    let profile: Option<String> =
        sqlx::query_scalar("SELECT profile FROM ca_channels WHERE id = $1").bind(id).fetch_optional(&db.pool).await?;
    let profile = profile.ok_or_else(|| Error::NotFound(format!("CA 通道 {id} 不存在 / no CA channel {id}")))?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // one switch per profile at a time on every instance: two failovers to different channels
    // would otherwise each leave theirs active
    db.serialise(&mut tx, medsign_store::db::lock_key("ca_channel", &profile)).await?;
    let now = medsign_store::now_text();
    sqlx::query("UPDATE ca_channels SET active = 0, updated_at = $2 WHERE profile = $1 AND active = 1 AND id <> $3")
        .bind(&profile)
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE ca_channels SET active = 1, enabled = 1, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    audit::ok(&mut tx, ctx, Kind::Admin, action, &format!("ca_channel:{id}"), details).await?;
    tx.commit().await?;
    Ok(())
}

/// Propagate a revocation to the channel that issued `serial`. `Ok(false)` when the channel's
/// protocol cannot (EST); an unreachable CA is an error and nothing is revoked locally either.
pub async fn propagate_revoke(
    db: &Db,
    kek: &Kek,
    channels: &Channels,
    channel: &str,
    serial: &str,
    reason: &str,
) -> Result<bool> {
    if channel == "builtin" {
        return Ok(true);
    }
    let row = ChannelRow::load(db, channel)
        .await?
        .ok_or_else(|| Error::internal(format!("certificate {serial} names unknown CA channel {channel}")))?;
    channels.instance(kek, &row)?.revoke(serial, reason).await
}

/// Every channel.
pub async fn list(db: &Db) -> Result<Vec<ChannelRecord>> {
    let rows = sqlx::query("SELECT * FROM ca_channels ORDER BY profile, active DESC, priority, id")
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(channel_record).collect()
}

/// One channel.
pub async fn get(db: &Db, id: &str) -> Result<ChannelRecord> {
    let r = sqlx::query("SELECT * FROM ca_channels WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("CA 通道 {id} 不存在 / no CA channel {id}")))?;
    channel_record(&r)
}

/// Add a channel (enabled, not active). The configuration is checked by building its client.
pub async fn create(db: &Db, kek: &Kek, ctx: &Context, n: &NewChannel) -> Result<ChannelRecord> {
    if n.name.trim().is_empty() || n.name.chars().count() > 100 {
        return Err(Error::Invalid("name 须为 1–100 个字符 / name must be 1-100 characters".into()));
    }
    build(&n.kind, &n.config, n.secret.clone().map(Zeroizing::new))?;
    let id = format!("ch_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let secret = match &n.secret {
        Some(s) => Some(hex::encode(kek.wrap(s.as_bytes(), &secret_aad(&id))?)),
        None => None,
    };
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO ca_channels (id, name, kind, profile, priority, enabled, active, config, secret, health, updated_at, created_at) \
         VALUES ($1, $2, $3, 'signer', $4, 1, 0, $5, $6, 'unknown', $7, $7)",
    )
    .bind(&id)
    .bind(n.name.trim())
    .bind(&n.kind)
    .bind(n.priority)
    .bind(serde_json::to_string(&n.config).map_err(|e| Error::internal_from("channels::create", e))?)
    .bind(secret)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "ca.channel.create",
        &format!("ca_channel:{id}"),
        serde_json::json!({"name": n.name, "kind": n.kind, "url": n.config.url, "priority": n.priority}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    get(db, &id).await
}

/// Make `id` the active channel of its profile (online: the next issuance on every node uses it).
pub async fn activate(db: &Db, ctx: &Context, id: &str) -> Result<ChannelRecord> {
    let before = get(db, id).await?;
    let from: Option<String> = sqlx::query_scalar("SELECT id FROM ca_channels WHERE profile = $1 AND active = 1")
        .bind(&before.profile)
        .fetch_optional(&db.pool)
        .await?;
    set_active(db, ctx, id, "ca.channel.activate", serde_json::json!({"from": from})).await?;
    get(db, id).await
}

/// Enable or disable a channel; the active one cannot be disabled (activate another first).
pub async fn set_enabled(db: &Db, ctx: &Context, id: &str, enabled: bool) -> Result<ChannelRecord> {
    let c = get(db, id).await?;
    if !enabled && c.active {
        return Err(Error::Conflict(format!(
            "通道 {id} 正在使用，请先启用另一个通道 / channel {id} is active; activate another one first"
        )));
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE ca_channels SET enabled = $1, updated_at = $2 WHERE id = $3")
        .bind(enabled as i64)
        .bind(medsign_store::now_text())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        if enabled { "ca.channel.enable" } else { "ca.channel.disable" },
        &format!("ca_channel:{id}"),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    get(db, id).await
}

/// Check one channel now and store the result.
pub async fn check(db: &Db, kek: &Kek, channels: &Channels, id: &str) -> Result<ChannelRecord> {
    let r = ChannelRow::load(db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("CA 通道 {id} 不存在 / no CA channel {id}")))?;
    if r.kind != "builtin" {
        let result = match channels.instance(kek, &r) {
            Ok(c) => c.health().await,
            Err(e) => Err(e),
        };
        set_health(db, &r.id, result.err().map(|e| e.to_string()).as_deref()).await?;
    }
    get(db, id).await
}

/// Check every enabled channel (the background task).
pub async fn check_all(db: &Db, kek: &Kek, channels: &Channels) -> Result<()> {
    for c in list(db).await? {
        if c.enabled {
            check(db, kek, channels, &c.id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{certs, est_fake::EstFake};
    use medsign_crypto::{KeyAlg, PrivateKey, signer::KeySigner};
    use medsign_pki::{csr, name::parse_dn};
    use medsign_testkit::{
        db::backends,
        hospital::{add_staff, staff},
    };
    use std::sync::atomic::Ordering;

    async fn audit_actions(db: &Db) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq").fetch_all(&db.pool).await.unwrap()
    }

    /// Built-in + the FAKE EST server: issuance through EST, a bare key falling back to the
    /// built-in CA, health, failover with audit, switching under concurrent issuance, revocation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn est_builtin_switch_and_failover() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = crate::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let channels = Arc::new(Channels::default());
            let issuer = certs::Issuer {
                cas: &cas,
                organization: "某县人民医院",
                public_url: "http://127.0.0.1:7080",
                channels: Some(&channels),
            };
            let people: Vec<_> = (0..60).map(|i| staff(&format!("U{i:03}"), &format!("医生{i}"))).collect();
            add_staff(&db, &kek, &people).await;
            let key = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
            let req = csr::build(&parse_dn("CN=张三").unwrap(), &key).unwrap();

            let (fake, url) = EstFake::start().await;
            // bad configurations are refused before anything is stored
            let bad = NewChannel {
                name: "x".into(),
                kind: "est".into(),
                priority: 10,
                config: ChannelConfig { url: "ftp://nope".into(), ..Default::default() },
                secret: None,
            };
            assert!(matches!(create(&db, &kek, &ctx, &bad).await, Err(Error::Invalid(_))));
            let est = create(
                &db,
                &kek,
                &ctx,
                &NewChannel {
                    name: "省 CA (EST)".into(),
                    kind: "est".into(),
                    priority: 10,
                    config: ChannelConfig { url: url.clone(), username: Some(fake.user.clone()), ..Default::default() },
                    secret: Some(fake.password.clone()),
                },
            )
            .await
            .unwrap();
            assert!(!est.active && est.health == "unknown");
            assert_eq!(check(&db, &kek, &channels, &est.id).await.unwrap().health, "ok");
            activate(&db, &ctx, &est.id).await.unwrap();
            assert!(matches!(set_enabled(&db, &ctx, &est.id, false).await, Err(Error::Conflict(_))));

            // through EST: issued by the fake's CA
            let rec = certs::issue_for_user(&db, &kek, issuer, &ctx, "U000", &req).await.unwrap();
            assert_eq!(rec.channel, est.id);
            let cert = Cert::load_all(rec.certificate_pem.as_bytes()).unwrap().remove(0);
            cert.verify_signed_by(&fake.ca, medsign_pki::alg::Sm2IdPolicy::Standard).unwrap();
            assert_eq!(fake.enrolled.load(Ordering::SeqCst), 1);
            // a bare key cannot go through EST: the built-in CA serves it, EST stays active
            let k2 = PrivateKey::generate(KeyAlg::Sm2).unwrap();
            let pop = k2
                .sign(medsign_crypto::SignatureScheme::Sm2Sm3, &certs::pop_message("U001", &k2.public_key()), None)
                .unwrap();
            let proof = base64::engine::general_purpose::STANDARD.encode(pop);
            let rec2 =
                certs::issue_for_key(&db, &kek, issuer, &ctx, "U001", &k2.public_key().to_pem(), &proof).await.unwrap();
            assert_eq!(rec2.channel, "builtin");
            assert!(get(&db, &est.id).await.unwrap().active);
            // revoking an EST certificate: EST has no revocation; the local record is revoked
            certs::revoke(&db, &cas, Some((&kek, &channels)), &ctx, &rec.serial, "key_compromise").await.unwrap();
            assert_eq!(certs::hold(&db, &cas, &ctx, &rec2.serial).await.unwrap().status, "on_hold");

            // the EST server goes down: health says so; issuance fails over to the built-in CA,
            // which takes over; the audit log shows the error and the failover
            fake.down.store(true, Ordering::SeqCst);
            let h = check(&db, &kek, &channels, &est.id).await.unwrap();
            assert_eq!(h.health, "down");
            assert!(h.health_error.unwrap().contains("503"));
            let rec3 = certs::issue_for_user(&db, &kek, issuer, &ctx, "U002", &req).await.unwrap();
            assert_eq!(rec3.channel, "builtin");
            assert!(get(&db, "builtin").await.unwrap().active && !get(&db, &est.id).await.unwrap().active);
            let actions = audit_actions(&db).await;
            assert!(
                actions.contains(&"ca.channel.error".to_string())
                    && actions.contains(&"ca.channel.failover".to_string()),
                "{actions:?}"
            );

            // back up; switch back and forth while 40 issuances run: none is lost
            fake.down.store(false, Ordering::SeqCst);
            let before = fake.enrolled.load(Ordering::SeqCst);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 10..50 {
                let (db, kek, req, cas, channels) =
                    (db.clone(), kek.clone(), req.clone(), cas.clone(), channels.clone());
                tasks.spawn(async move {
                    let issuer = certs::Issuer {
                        cas: &cas,
                        organization: "某县人民医院",
                        public_url: "http://x",
                        channels: Some(&channels),
                    };
                    certs::issue_for_user(&db, &kek, issuer, &Context::cli(), &format!("U{i:03}"), &req).await
                });
            }
            for n in 0..10 {
                let target = if n % 2 == 0 { est.id.as_str() } else { "builtin" };
                activate(&db, &ctx, target).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let mut by = HashMap::<String, usize>::new();
            while let Some(r) = tasks.join_next().await {
                let rec = r.unwrap().expect("no issuance lost during switching");
                *by.entry(rec.channel).or_default() += 1;
            }
            assert_eq!(by.values().sum::<usize>(), 40, "{by:?}");
            assert_eq!(by.get(&est.id).copied().unwrap_or(0), fake.enrolled.load(Ordering::SeqCst) - before);
            let active: Vec<_> = list(&db).await.unwrap().into_iter().filter(|c| c.active).collect();
            assert_eq!(active.len(), 1, "exactly one active channel");

            // wrong credentials: the channel is down, the built-in CA serves
            sqlx::query("UPDATE ca_channels SET secret = $1, updated_at = 'x' WHERE id = $2")
                .bind(hex::encode(kek.wrap(b"wrong", &secret_aad(&est.id)).unwrap()))
                .bind(&est.id)
                .execute(&db.pool)
                .await
                .unwrap();
            activate(&db, &ctx, &est.id).await.unwrap();
            let rec4 = certs::issue_for_user(&db, &kek, issuer, &ctx, "U003", &req).await.unwrap();
            assert_eq!(rec4.channel, "builtin");
            assert!(get(&db, &est.id).await.unwrap().health_error.unwrap().contains("401"));
            // nothing enabled at all → 503-style error
            sqlx::query("UPDATE ca_channels SET enabled = 0").execute(&db.pool).await.unwrap();
            assert!(matches!(
                certs::issue_for_user(&db, &kek, issuer, &ctx, "U004", &req).await,
                Err(Error::Unavailable(_))
            ));
        }
    }
}
