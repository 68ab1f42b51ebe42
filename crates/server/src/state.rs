//! What the handlers share, assembled once at start.

use medsign_crypto::wrap::Kek;
use medsign_directory::apps::Authenticator;
use medsign_store::db::Db;
use std::sync::Arc;

/// Everything the handlers share.
pub struct AppState {
    /// database
    pub db: Db,
    /// key-encryption key
    pub kek: Kek,
    /// app token checks
    pub auth: Authenticator,
    /// largest accepted request body, bytes
    pub max_body_bytes: usize,
    /// Prometheus metrics
    pub metrics: crate::Metrics,
    /// the built-in certification authorities
    pub cas: medsign_ca::ca::BuiltinCas,
    /// the hospital's name in issued certificates
    pub organization: String,
    /// the URL CRL/OCSP links in certificates point to
    pub public_url: String,
    /// where links and QR codes lead phones into the H5 app, ending in `/` (`server.app_url`, or
    /// `<public_url>/m/`)
    pub app_url: String,
    /// the OCSP responder
    pub ocsp: medsign_ca::ocsp::Responder,
    /// `[ca]` settings (CRL refresh, expiry window)
    pub ca_config: medsign_config::config::CaConfig,
    /// the configuration in effect, as the console's settings page shows it (no secret)
    pub settings: Vec<medsign_config::config::Setting>,
    /// the CA channels
    pub channels: medsign_ca::channels::Channels,
    /// the face verifier of real-name checks (`[realname]`; none: checked in person)
    pub realname: Option<medsign_phone::realname::FaceVerifier>,
    /// the WeChat client that verifies fingerprint approvals (SOTER); none without a mini program
    pub soter: Option<Arc<medsign_phone::realname::Wechat>>,
    /// the WeCom client that reads the mini program's `wx.qy.login` codes; none without WeCom
    pub wecom: Option<Arc<medsign_phone::realname::Wechat>>,
    /// binding a phone takes the employee's own WeCom login (`[realname] wecom_required`)
    pub wecom_required: bool,
    /// the PAdES level of PDF flows that do not name one (`[sign] pades_level`)
    pub pades_level: medsign_signing::model::PadesLevel,
    /// the longest session grant (hours, `[sign] grant_max_hours`)
    pub grant_max_hours: u32,
    /// per-device rate limits of the phone's PIN and scan endpoints
    pub limits: crate::ratelimit::RateLimits,
    /// the timestamp authority (and its clock)
    pub tsa: Arc<medsign_tsa::tsa::Tsa>,
    /// reverse proxies whose `X-Forwarded-For` is believed (`server.trusted_proxies`)
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// per-address limit of the public TSA endpoints (`server.public_rate_per_minute`)
    pub public_rate: Option<crate::ratelimit::Limit>,
    /// the phone ↔ server end-to-end channel's key
    pub channel: crate::e2e::ChannelKey,
    /// the phone may read a document's text before signing (`sign.phone_view = "content"`)
    pub phone_view: bool,
}

impl AppState {
    /// Where revocations of destroyed keys go (the outside CA told through its channel).
    pub fn revoker(&self) -> medsign_ca::certs::Revoker<'_> {
        medsign_ca::certs::Revoker { cas: &self.cas, remote: Some((&self.kek, &self.channels)) }
    }

    /// What certificate issuance needs.
    pub fn issuer(&self) -> medsign_ca::certs::Issuer<'_> {
        medsign_ca::certs::Issuer {
            cas: &self.cas,
            organization: &self.organization,
            public_url: &self.public_url,
            channels: Some(&self.channels),
        }
    }

    /// What signing needs, with the phone context's session grants wired into its seam.
    pub fn signing(&self) -> medsign_signing::flows::Signing<'_> {
        medsign_signing::flows::Signing {
            db: &self.db,
            kek: &self.kek,
            cas: &self.cas,
            organization: &self.organization,
            tsa: &self.tsa,
            grants: &medsign_phone::grants::Grants,
            pades_level: self.pades_level,
        }
    }
}
