//! Assembling a running medsign from its configuration: the data directory, the key-encryption
//! key, the database, the CAs, the TSA and its clock, the phone context's providers — and the
//! background jobs that keep them (audit anchors, certificate expiry, webhooks, pending timestamps,
//! expiry sweeps, CA channel health, the batch queue). The CLI only binds the listener, prints and
//! serves; tests and a future gateway build the same thing.

use crate::state::AppState;
use medsign_config::config::Config;
use medsign_crypto::{signer::KeySigner, wrap::Kek};
use medsign_directory::apps::{self, Scope};
use medsign_store::{
    Result,
    audit::{self, Context},
    custody::{self, KekSource},
    db::{DataDirLock, Db},
};
use std::{sync::Arc, time::Duration};

/// Everything opened before the server listens.
pub struct Opened {
    /// the data directory, locked against a second instance for as long as this lives
    pub lock: DataDirLock,
    /// where the key-encryption key came from (the banner says so)
    pub kek_source: KekSource,
    /// the admin bootstrap token, on the first start only (shown once)
    pub first_token: Option<zeroize::Zeroizing<String>>,
    /// the platform key that signs audit anchors
    pub platform: Arc<KeySigner>,
    /// the TSA's clock (polled once already)
    pub clock: Arc<medsign_tsa::clock::Clock>,
    /// what becomes the handlers' state
    parts: Option<Parts>,
}

struct Parts {
    db: Db,
    kek: Kek,
    cas: medsign_ca::ca::BuiltinCas,
    tsa: Arc<medsign_tsa::tsa::Tsa>,
    realname: Option<medsign_phone::realname::FaceVerifier>,
    soter: Option<Arc<medsign_phone::realname::Wechat>>,
    wecom: Option<Arc<medsign_phone::realname::Wechat>>,
    public_url: String,
    channel: crate::e2e::ChannelKey,
}

/// Open everything `cfg` names, for a server reached at `listening` (`http(s)://address:port` it
/// listens on; `server.public_url` wins when set — the URL QR codes, CRL/OCSP links and callbacks
/// use). Fails with a clear error on a bad font file, real-name provider, a locked data
/// directory, an unreadable key, an unreachable database.
pub async fn open(cfg: &Config, listening: &str) -> Result<Opened> {
    let public_url = cfg.server.public_url.clone().unwrap_or_else(|| listening.to_string());
    use medsign_store::Error;
    if let Some(f) = &cfg.sign.font_file {
        let bytes = std::fs::read(f).map_err(|e| {
            Error::Config(format!("字体文件无法读取 / cannot read sign.font_file {}: {e}", f.display()))
        })?;
        medsign_pdf::use_font_file(bytes).map_err(|e| Error::Config(format!("sign.font_file {}: {e}", f.display())))?;
    }
    let data_dir = cfg.data_dir();
    // real-name provider: a bad [realname] stops the start (the dev DEMO provider warns loudly)
    let realname = medsign_phone::realname::FaceVerifier::from_config(&cfg.realname)?;
    // fingerprint approval (SOTER) whenever the mini program's AppID and secret are configured
    let soter = medsign_phone::realname::FaceVerifier::soter_client(realname.as_ref(), &cfg.realname)?;
    // the mini program inside WeCom (企业微信): its login codes are WeCom's
    let wecom = medsign_phone::realname::Wechat::wecom_from_config(&cfg.realname)?;
    let lock = DataDirLock::acquire(&data_dir)?;
    let (kek, kek_source) = custody::load_kek(&data_dir, std::env::var("MEDSIGN_KEK").ok())?;
    let db = Db::open(&cfg.database_url()).await?;
    if db.backend == medsign_store::db::Backend::Postgres && cfg.server.public_url.is_none() {
        tracing::warn!(
            "PostgreSQL 上未设置 server.public_url：多个实例的地址不同会在每次启动时重新签发 CA 与 TSA 证书 / server.public_url is not set on PostgreSQL: instances with different addresses re-issue the CA and TSA certificates at every start; give every instance the same public URL"
        );
    }
    // the TSA clock: one poll before serving, so the banner can say whether timestamps work
    let clock = Arc::new(medsign_tsa::clock::Clock::new(&cfg.time));
    let _ = tokio::time::timeout(Duration::from_secs(5), clock.poll_once()).await;
    // instances starting together on one database provision the shared state one after another
    let provisioning = db.exclusive(medsign_store::db::PROVISIONING_LOCK).await?;
    let platform =
        Arc::new(KeySigner::new(custody::ensure_key(&db, &kek, "platform", medsign_crypto::KeyAlg::Sm2).await?));
    let mut cas = medsign_ca::ca::ensure_at(&db, &kek, &cfg.ca.organization, Some(&public_url)).await?;
    cas.staff = medsign_ca::ca::StaffProfile::from_config(&cfg.ca)?;
    let first_token = bootstrap(&db, &kek).await?;
    let channel = crate::e2e::ChannelKey::new(medsign_phone::channel::open(&db, &kek).await?);
    let tsa = medsign_tsa::tsa::Tsa::start(&db, &kek, &cas, &cfg.ca.organization, &cfg.tsa, clock.clone()).await?;
    provisioning.release().await?;
    let parts = Some(Parts { db, kek, cas, tsa, realname, soter, wecom, public_url, channel });
    Ok(Opened { lock, kek_source, first_token, platform, clock, parts })
}

impl Opened {
    /// The handlers' state (once).
    pub fn state(&mut self, cfg: &Config) -> Option<Arc<AppState>> {
        let p = self.parts.take()?;
        Some(Arc::new(AppState {
            db: p.db,
            kek: p.kek,
            auth: Default::default(),
            max_body_bytes: cfg.server.max_body_bytes,
            metrics: Default::default(),
            ocsp: medsign_ca::ocsp::Responder::new(p.cas.clone(), cfg.ca.ocsp_validity_minutes),
            cas: p.cas,
            organization: cfg.ca.organization.clone(),
            app_url: medsign_config::config::app_base(cfg.server.app_url.as_deref(), &p.public_url),
            public_url: p.public_url,
            ca_config: cfg.ca.clone(),
            settings: cfg.settings(),
            channels: Default::default(),
            tsa: p.tsa,
            realname: p.realname,
            soter: p.soter,
            wecom: p.wecom,
            wecom_required: cfg.realname.wecom_required,
            grant_max_hours: cfg.sign.grant_max_hours,
            // checked when the configuration was loaded (B-T, B-LT or B-LTA)
            pades_level: cfg.sign.pades_level.parse().unwrap_or_default(),
            limits: Default::default(),
            trusted_proxies: cfg.server.trusted_proxies.iter().filter_map(|p| p.parse().ok()).collect(),
            public_rate: crate::ratelimit::public(cfg.server.public_rate_per_minute),
            channel: p.channel,
            phone_view: cfg.sign.phone_view == "content",
        }))
    }
}

/// On first start (no app yet) create the bootstrap admin app and return its token.
async fn bootstrap(db: &Db, kek: &Kek) -> Result<Option<zeroize::Zeroizing<String>>> {
    if apps::count(db).await? > 0 {
        return Ok(None);
    }
    let ctx = system("bootstrap");
    let (_app, token) = apps::create(db, kek, &ctx, "bootstrap-admin", &[Scope::Admin]).await?;
    Ok(Some(token))
}

/// The audit context of work the server does by itself.
fn system(request_id: &str) -> Context {
    Context {
        actor: "system".into(),
        ip: "local".into(),
        user_agent: "medsign-serve".into(),
        request_id: request_id.into(),
    }
}

/// The background jobs of one instance; [`Jobs::stop`] ends them and writes the final anchor.
pub struct Jobs {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    db: Db,
    platform: Arc<KeySigner>,
    witness: audit::Witness,
}

/// Start the background jobs.
pub fn spawn_jobs(state: &Arc<AppState>, opened: &Opened, cfg: &Config) -> Jobs {
    let mut tasks = Vec::new();
    // this instance's name in the job leases: jobs that must run once per period on the whole
    // cluster (issue #17) take a lease in the database first
    let holder: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
    // audit anchors: the chain head signed by the platform key at start, every N minutes, and at stop
    let (db, key, minutes) = (state.db.clone(), opened.platform.clone(), cfg.audit.anchor_minutes);
    let witness = audit::Witness { file: cfg.audit.witness_file.clone(), syslog: cfg.audit.witness_syslog };
    let w = witness.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60 * minutes.max(1)));
        loop {
            tick.tick().await;
            if let Err(e) = audit::anchor(&db, key.as_ref(), &w).await {
                tracing::error!(error = %e, "audit anchor failed");
            }
            if minutes == 0 {
                break;
            }
        }
    }));
    // the daily certificate expiry job: a minute after start, then every 24 h
    let (s, me) = (state.clone(), holder.clone());
    tasks.push(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut tick = tokio::time::interval(Duration::from_secs(24 * 3600));
        loop {
            tick.tick().await;
            match s.db.lease("certificate-expiry", &me, chrono::Duration::hours(23)).await {
                Ok(true) => {}
                Ok(false) => continue, // another instance ran it today
                Err(e) => {
                    tracing::warn!(error = %e, "certificate expiry job: lease failed");
                    continue;
                }
            }
            let days = s.ca_config.expiry_warn_days;
            let ctx = system("expiry-job");
            match medsign_ca::certs::expiry_job(&s.db, &s.kek, s.issuer(), &ctx, days, s.ca_config.auto_renew).await {
                Ok(r) => tracing::info!(
                    expiring = r.expiring.len(),
                    renewed = r.renewed.len(),
                    failed = r.failed.len(),
                    days,
                    "certificate expiry job"
                ),
                Err(e) => tracing::error!(error = %e, "certificate expiry job failed"),
            }
        }
    }));
    // the trust list's CRLs (issue #17): hourly, once per period on the cluster
    let (s, me) = (state.clone(), holder.clone());
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match s.db.lease("trust-crls", &me, chrono::Duration::minutes(55)).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "trust list CRL job: lease failed");
                    continue;
                }
            }
            if let Err(e) = medsign_ca::trust::refresh_crls(&s.db).await {
                tracing::warn!(error = %e, "trust list CRL job failed");
            }
        }
    }));
    // archive timestamps of B-LTA documents (issue #16): a few minutes after start, then hourly
    let (s, days) = (state.clone(), cfg.sign.archive_timestamp_days);
    tasks.push(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(180)).await;
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match medsign_signing::flows::archive_timestamps(&s.signing(), days, chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(documents = n, "archive timestamps added"),
                Err(e) => tracing::warn!(error = %e, "archive timestamp job failed"),
            }
        }
    }));
    tasks.push(opened.clock.clone().spawn());
    // webhooks every 2 s; every minute: timestamps of `timestamp: "later"` flows, flow expiry,
    // grant expiry, expired signing rounds
    let (s, me) = (state.clone(), holder.clone());
    tasks.push(tokio::spawn(async move {
        // this instance is live from the start: grants started elsewhere are sealed to it too
        // (then every minute with the grant expiry)
        if let Err(e) = medsign_phone::grants::announce(&s.db, &s.kek).await {
            tracing::warn!(error = %e, "announcing this instance failed");
        }
        let client = medsign_signing::flows::webhook_client();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            if let Err(e) = medsign_signing::flows::deliver_due(&s.db, &s.kek, &client).await {
                tracing::warn!(error = %e, "webhook delivery failed");
            }
            // a TSA certificate held or revoked on another instance stops issuance here too
            if n.is_multiple_of(5)
                && let Err(e) = s.tsa.refresh_certificates(&s.db).await
            {
                tracing::warn!(error = %e, "TSA certificate status check failed");
            }
            if n.is_multiple_of(30) {
                // one instance at a time stamps the pending flows (each flow is also compare-and-set)
                let mine = s.db.lease("pending-timestamps", &me, chrono::Duration::seconds(50)).await.unwrap_or(false);
                if mine && let Err(e) = medsign_signing::flows::complete_pending_timestamps(&s.db, &s.tsa).await {
                    tracing::warn!(error = %e, "pending timestamps failed");
                }
                if let Err(e) = medsign_signing::flows::expire_due(&s.db).await {
                    tracing::warn!(error = %e, "flow expiry failed");
                }
                if let Err(e) = medsign_phone::grants::expire_due(&s.db, &s.kek).await {
                    tracing::warn!(error = %e, "grant expiry failed");
                }
                if let Err(e) = medsign_phone::cosign::sweep(&s.db).await {
                    tracing::warn!(error = %e, "signing round sweep failed");
                }
            }
        }
    }));
    // the SQLite write-ahead log copied into the database while commits come (every 10 ms, slowing
    // to once a second while nothing is written), so that no request's commit does it
    let s = state.clone();
    tasks.push(tokio::spawn(async move {
        let (mut last, mut pause) = (medsign_store::db::WalState::default(), Duration::from_secs(1));
        loop {
            pause = match s.db.checkpoint().await {
                Ok(now) => medsign_store::db::Db::checkpoint_pause(std::mem::replace(&mut last, now), now, pause),
                Err(e) => {
                    tracing::warn!(error = %e, "database checkpoint failed");
                    Duration::from_secs(1)
                }
            };
            tokio::time::sleep(pause).await;
        }
    }));
    // CA channel health, every minute
    let s = state.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = medsign_ca::channels::check_all(&s.db, &s.kek, &s.channels).await {
                tracing::warn!(error = %e, "CA channel health check failed");
            }
        }
    }));
    // the batch queue: `sign.batch_workers` workers per node (items claimed by compare-and-set,
    // so they share the queue with each other and with the other instances'); several, so that
    // one renders and signs while another waits for the database or the TSA's group commit
    let workers = match cfg.sign.batch_workers {
        0 => (2 * std::thread::available_parallelism().map_or(1, |n| n.get())).min(8),
        n => n as usize,
    };
    for _ in 0..workers {
        let (s, reclaim) = (state.clone(), cfg.sign.batch_reclaim_seconds);
        tasks.push(tokio::spawn(async move {
            let max = s.max_body_bytes.min(8 << 20);
            loop {
                match medsign_signing::batches::run_one(&s.signing(), max, reclaim).await {
                    Ok(true) => {}
                    Ok(false) => tokio::time::sleep(Duration::from_millis(300)).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "batch worker");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }));
    }
    Jobs { tasks, db: state.db.clone(), platform: opened.platform.clone(), witness }
}

impl Jobs {
    /// End every job and sign the audit chain's head once more.
    pub async fn stop(self) -> Result<()> {
        for t in &self.tasks {
            t.abort();
        }
        audit::anchor(&self.db, self.platform.as_ref(), &self.witness).await.map(|_| ())
    }
}
