//! Session authorization (issue #7; R3.5; custody mode 2). From the phone, a user
//! grants one business system (an app) a window of 1–[`MAX_HOURS`] hours, optionally limited to a
//! number of signatures. The server makes a fresh SM2 grant key; the phone seals its share `d1` to
//! it ([`medsign_crypto::seal`]) bound to the grant's context, after the doctor approved this grant
//! with the PIN or fingerprint ([`crate::approvals`]). While the grant is active, that system's
//! `auto` flows naming the user sign with the two-party key without the phone: a grant worker
//! opens `d1` for the one signature, runs the phone's half against the ordinary server half with
//! `d2`, and drops it — `d` is never formed. Every such signature cites the grant (flow signer,
//! audit). Cancel (phone) or expiry (checked on every use and swept every minute) ends it.
//!
//! Custody (issue #15): the grant key never reaches the database in the clear. It is held in the
//! memory of the medsign process that started the grant ([`HELD`]), and — so that every instance
//! of a cluster can use the grant (issue #17) — sealed to the ephemeral key of each other instance
//! seen lately ([`instance`], table `grant_keys_sealed`), a key that exists only in that process's
//! memory. A copy of the data directory — even with `kek.key`, which opens `d2` — therefore holds
//! `d1` only sealed to keys that are not in it. An instance started after the grant receives its
//! copy within a minute from one holding the key ([`reseal`]); the grant ends when every instance
//! that could open it has restarted.

use crate::mobile::Session;
use chrono::{DateTime, Duration, Utc};
use medsign_crypto::{
    PublicKey, Signer,
    signer::SignatureScheme,
    sm2::{Sm2PublicKey, Sm2SecretKey},
    twoparty::{ClientKeyShare, SeenQ1Memory, ServerKeyShare},
    wrap::Kek,
};
use medsign_pki::cert::Cert;
use medsign_signing::seams::{BoxFuture, GrantSigners, GrantedKey};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use medsign_store::{is_past, secs_text};
use serde::Serialize;
use sqlx::Row;
use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
};

/// Grant keys of this process, by grant id — the only place they exist (see the module docs).
static HELD: LazyLock<Mutex<HashMap<String, Arc<Sm2SecretKey>>>> = LazyLock::new(Default::default);
/// Most grant keys one process holds (pending and active); beyond, new grants wait.
const MAX_HELD: usize = 100_000;
/// Most grants one phone may have waiting for its sealed share.
const MAX_PENDING_PER_DEVICE: i64 = 5;

fn held() -> std::sync::MutexGuard<'static, HashMap<String, Arc<Sm2SecretKey>>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process among a cluster's instances: an id and an ephemeral SM2 key that never leaves
/// memory; its public half is published in `instance_keys` ([`announce`]).
pub struct Instance {
    id: String,
    key: Sm2SecretKey,
}

static INSTANCE: std::sync::OnceLock<Instance> = std::sync::OnceLock::new();

/// This process's [`Instance`] (made on first use).
fn instance() -> Result<&'static Instance> {
    if let Some(i) = INSTANCE.get() {
        return Ok(i);
    }
    let made = Instance {
        id: format!("in_{}", hex::encode(medsign_crypto::rng::bytes::<8>()?)),
        key: Sm2SecretKey::generate()?,
    };
    Ok(INSTANCE.get_or_init(|| made))
}

/// How long an instance counts as live after it last announced itself (every minute).
const INSTANCE_LIVE_MINUTES: i64 = 5;

/// What an instance's public key is attested under: the KEK binds it to the instance's id and to
/// the moment it was announced (re-attested every minute), so an old row put back is not live.
fn attestation_aad(instance_id: &str, seen_at: &str) -> Vec<u8> {
    format!("medsign/instance-key/v1|{instance_id}|{seen_at}").into_bytes()
}

/// Say that this instance lives (its public key, attested under the KEK, and now): grants started
/// elsewhere from now on are sealed to it too. Run at start and every minute ([`expire_due`]);
/// instances silent for a day are forgotten with what was sealed to them.
pub async fn announce(db: &Db, kek: &Kek) -> Result<()> {
    let me = instance()?;
    let public = me.key.public_key().to_sec1_uncompressed();
    let seen = secs_text(Utc::now());
    let attestation = hex::encode(kek.wrap(&public, &attestation_aad(&me.id, &seen))?);
    let _w = db.write_lock.lock().await;
    sqlx::query(
        "INSERT INTO instance_keys (instance_id, public_key, attestation, seen_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (instance_id) DO UPDATE SET public_key = excluded.public_key, \
         attestation = excluded.attestation, seen_at = excluded.seen_at",
    )
    .bind(&me.id)
    .bind(hex::encode(public))
    .bind(attestation)
    .bind(&seen)
    .execute(&db.pool)
    .await?;
    let day_ago = secs_text(Utc::now() - Duration::days(1));
    sqlx::query(
        "DELETE FROM grant_keys_sealed WHERE instance_id IN (SELECT instance_id FROM instance_keys WHERE seen_at < $1) \
         OR grant_id IN (SELECT id FROM grants WHERE state NOT IN ('pending', 'active'))",
    )
    .bind(&day_ago)
    .execute(&db.pool)
    .await?;
    sqlx::query("DELETE FROM instance_keys WHERE seen_at < $1").bind(&day_ago).execute(&db.pool).await?;
    Ok(())
}

/// The other instances live now whose public keys the KEK attests (a key that is not attested —
/// put there by someone who can write the database but has not the KEK — gets nothing, loudly).
async fn live_peers(db: &Db, kek: &Kek) -> Result<Vec<(String, Sm2PublicKey)>> {
    let me = instance()?;
    let now = Utc::now();
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT instance_id, public_key, attestation, seen_at FROM instance_keys WHERE seen_at >= $1 AND instance_id <> $2",
    )
    .bind(secs_text(now - Duration::minutes(INSTANCE_LIVE_MINUTES)))
    .bind(&me.id)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, public, attestation, seen) in rows {
        let public = hex::decode(&public).unwrap_or_default();
        let attested = hex::decode(&attestation)
            .ok()
            .and_then(|b| kek.unwrap(&b, &attestation_aad(&id, &seen)).ok())
            .is_some_and(|p| p[..] == public[..]);
        // live means announced in the last minutes, by a clock not ahead of ours (a time ahead, or
        // none, would keep a row live for ever)
        let live = DateTime::parse_from_rfc3339(&seen).is_ok_and(|t| {
            let t = t.with_timezone(&Utc);
            t >= now - Duration::minutes(INSTANCE_LIVE_MINUTES) && t <= now + Duration::minutes(1)
        });
        match Sm2PublicKey::from_sec1(&public) {
            Ok(key) if attested && live => out.push((id, key)),
            _ if !live => {
                tracing::warn!(instance = %id, seen_at = %seen, "an instance announced itself at a time not within the last minutes of ours: no grant key is sealed to it")
            }
            _ => {
                tracing::warn!(instance = %id, "an instance's key is not attested under the KEK: no grant key is sealed to it")
            }
        }
    }
    Ok(out)
}

/// `key` (of grant `id`) sealed to each of `peers`, bound to the grant.
fn sealed_to(key: &Sm2SecretKey, id: &str, peers: &[(String, Sm2PublicKey)]) -> Result<Vec<(String, String)>> {
    peers
        .iter()
        .map(|(peer, to)| {
            Ok((peer.clone(), hex::encode(medsign_crypto::seal::seal(to, &key.to_bytes()[..], id.as_bytes())?)))
        })
        .collect()
}

/// The peers this instance has already sealed every held key to: the sweep works only when one
/// appears that is not here.
static SERVED: LazyLock<Mutex<std::collections::HashSet<String>>> = LazyLock::new(Default::default);

/// Seal the grant keys this instance holds, of grants still pending or active, to the live
/// instances that have no copy yet (started after the grant): a rolling restart keeps the grants
/// usable while one instance holding each stays up. Does nothing unless a peer appeared since the
/// last time. Returns how many copies were made.
async fn reseal(db: &Db, kek: &Kek) -> Result<usize> {
    let peers = live_peers(db, kek).await?;
    let new: Vec<_> = {
        let served = SERVED.lock().unwrap_or_else(|p| p.into_inner());
        peers.into_iter().filter(|(p, _)| !served.contains(p)).collect()
    };
    if new.is_empty() {
        return Ok(0);
    }
    let held: Vec<(String, Arc<Sm2SecretKey>)> = held().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut n = 0;
    for (id, key) in held {
        let _w = db.write_lock.lock().await;
        for (peer, blob) in sealed_to(&key, &id, &new)? {
            // only while the grant lasts, checked by the insert itself: a grant ended meanwhile gets
            // no copy (and the minute's sweep erases any a race still left)
            n += sqlx::query(
                "INSERT INTO grant_keys_sealed (grant_id, instance_id, sealed) SELECT $1, $2, $3 \
                 WHERE EXISTS (SELECT 1 FROM grants WHERE id = $1 AND state IN ('pending', 'active')) \
                 ON CONFLICT (grant_id, instance_id) DO NOTHING",
            )
            .bind(&id)
            .bind(&peer)
            .bind(blob)
            .execute(&db.pool)
            .await?
            .rows_affected() as usize;
        }
    }
    SERVED.lock().unwrap_or_else(|p| p.into_inner()).extend(new.into_iter().map(|(p, _)| p));
    Ok(n)
}

fn not_held(id: &str) -> Error {
    Error::Conflict(format!(
        "授权 {id} 的密钥不在本服务器内存中：本实例在授权之后启动时，一分钟内会收到；若所有实例都已重启，请在手机上重新授权 / the key of grant {id} is not held by this server: an instance started after the grant receives it within a minute; if every instance has restarted since, grant again from the phone"
    ))
}

/// The grant key of `id`: held in this process's memory, or opened from what the instance that
/// started the grant sealed to this instance's key (then held too).
async fn grant_key(db: &Db, id: &str) -> Result<Arc<Sm2SecretKey>> {
    if let Some(k) = held().get(id).cloned() {
        return Ok(k);
    }
    let me = instance()?;
    let sealed: Option<String> =
        sqlx::query_scalar("SELECT sealed FROM grant_keys_sealed WHERE grant_id = $1 AND instance_id = $2")
            .bind(id)
            .bind(&me.id)
            .fetch_optional(&db.pool)
            .await?;
    let Some(sealed) = sealed else { return Err(not_held(id)) };
    let blob = hex::decode(sealed).map_err(|_| Error::internal("stored grant key is corrupt"))?;
    let plain = medsign_crypto::seal::open(&me.key, &blob, id.as_bytes())?;
    let key = Arc::new(Sm2SecretKey::from_bytes(&plain[..])?);
    let mut h = held();
    if h.len() < MAX_HELD {
        h.insert(id.to_string(), key.clone());
    }
    Ok(key)
}

/// Erase the grant keys of `ids` from memory (their material in the database is already gone).
fn forget(ids: &[String]) {
    let mut h = held();
    for id in ids {
        h.remove(id);
    }
}

/// Longest grant.
pub const MAX_HOURS: u32 = medsign_config::config::GRANT_MAX_HOURS;
/// How long a started grant waits for the phone's sealed share.
const PENDING_MINUTES: i64 = 10;

/// A grant waiting for the phone's sealed share.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct GrantStart {
    /// grant id
    pub grant_id: String,
    /// the grant key, SEC1 hex: seal the share to it (`KeyShare.sealTo`)
    pub public_key: String,
    /// the context the seal is bound to
    pub context: String,
    /// the business system
    pub app_id: String,
    /// its name
    pub app_name: String,
    /// the window asked for
    pub hours: u32,
}

/// A grant as the phone lists it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    /// grant id
    pub grant_id: String,
    /// the business system
    pub app_id: String,
    /// `pending` | `active` | `cancelled` | `expired`
    pub state: String,
    /// window
    pub hours: i64,
    /// most signatures (none: no limit)
    pub max_count: Option<i64>,
    /// signatures made under it
    pub used_count: i64,
    /// RFC 3339
    pub expires_at: String,
    /// RFC 3339
    pub created_at: String,
    /// when it was cancelled or expired
    pub ended_at: Option<String>,
}

fn view(r: &sqlx::any::AnyRow) -> Result<GrantView> {
    let mut state: String = r.try_get("state")?;
    let expires: String = r.try_get("expires_at")?;
    if (state == "active" || state == "pending") && is_past(&expires) {
        state = "expired".into();
    }
    Ok(GrantView {
        grant_id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        state,
        hours: r.try_get("hours")?,
        max_count: r.try_get("max_count")?,
        used_count: r.try_get("used_count")?,
        expires_at: expires,
        created_at: r.try_get("created_at")?,
        ended_at: r.try_get("ended_at")?,
    })
}

/// What a grant may be: `max_hours` is the hospital's limit (`[sign] grant_max_hours`, at most
/// [`MAX_HOURS`]); `hours` and `max_count` are what the doctor asked for.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// hours asked for
    pub hours: u32,
    /// the hospital's limit
    pub max_hours: u32,
    /// optional limit on the number of signatures
    pub max_count: Option<u32>,
}

/// Start a grant for business system `app_id` (the phone then seals its share to the answer).
pub async fn start(db: &Db, kek: &Kek, s: &Session, app_id: &str, w: Window) -> Result<GrantStart> {
    let (hours, max_count) = (w.hours, w.max_count);
    let max = w.max_hours.clamp(1, MAX_HOURS);
    if !(1..=max).contains(&hours) {
        return Err(Error::Invalid(format!(
            "授权时长须为 1–{max} 小时（本院上限）/ hours must be 1-{max} (this hospital's limit)"
        )));
    }
    if max_count.is_some_and(|c| !(1..=100_000).contains(&c)) {
        return Err(Error::Invalid("max_count 须为 1–100000 / max_count must be 1-100000".into()));
    }
    let app = medsign_directory::apps::list(db)
        .await?
        .into_iter()
        .find(|a| a.app_id == app_id && !a.disabled)
        .ok_or_else(|| Error::NotFound(format!("业务系统 {app_id} 不存在 / no business system {app_id}")))?;
    let key = crate::cosign::active_key(db, s).await?;
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM grants WHERE device_id = $1 AND state = 'pending' AND expires_at > $2",
    )
    .bind(&s.device_id)
    .bind(medsign_store::now_text())
    .fetch_one(&db.pool)
    .await?;
    if waiting >= MAX_PENDING_PER_DEVICE || held().len() >= MAX_HELD {
        return Err(Error::TooManyRequests(
            "待完成的授权过多，请稍后再试 / too many grants are waiting for the phone; try again later".into(),
        ));
    }
    let id = format!("gr_{}", hex::encode(medsign_crypto::rng::bytes::<12>()?));
    let context = format!("medsign/grant/v1|grant={id}|user={}|app={app_id}|key={}", s.employee_no, key.id);
    let grant_key = Arc::new(Sm2SecretKey::generate()?);
    let public_key = hex::encode(grant_key.public_key().to_sec1_uncompressed());
    // the other live instances' keys: each gets the grant key sealed to it (bound to the grant)
    let sealed = sealed_to(&grant_key, &id, &live_peers(db, kek).await?)?;
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    for (peer, blob) in &sealed {
        sqlx::query("INSERT INTO grant_keys_sealed (grant_id, instance_id, sealed) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(peer)
            .bind(blob)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO grants (id, employee_no, device_id, key_id, app_id, state, hours, max_count, used_count, context, \
         grant_key_wrapped, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, 0, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(&s.employee_no)
    .bind(&s.device_id)
    .bind(&key.id)
    .bind(app_id)
    .bind(i64::from(hours))
    .bind(max_count.map(i64::from))
    .bind(&context)
    .bind(None::<String>)
    .bind(secs_text(Utc::now() + Duration::minutes(PENDING_MINUTES)))
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // held once the grant exists: a request dropped before the commit leaves no key behind
    held().insert(id.clone(), grant_key);
    Ok(GrantStart { grant_id: id, public_key, context, app_id: app.app_id, app_name: app.name, hours })
}

/// The phone's sealed share: checked (it must be the share of this user's key) and kept sealed;
/// the window starts now.
pub async fn activate(db: &Db, ctx: &Context, s: &Session, id: &str, sealed_hex: &str) -> Result<GrantView> {
    let r = sqlx::query("SELECT * FROM grants WHERE id = $1 AND device_id = $2")
        .bind(id)
        .bind(&s.device_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("授权 {id} 不存在 / no grant {id}")))?;
    let v = view(&r)?;
    if v.state != "pending" {
        return Err(Error::Conflict(format!("授权 {id} 状态为 {} / grant {id} is {}", v.state, v.state)));
    }
    let context: String = r.try_get("context")?;
    // the key first: on an instance that cannot use the grant, the doctor's approval is not spent
    let gk = grant_key(db, id).await?;
    let digest = crate::approvals::digest(crate::approvals::Purpose::Grant, &context);
    crate::approvals::consume(db, ctx, s, &digest, "grant.create", &format!("user:{}", s.employee_no)).await?;
    let bad = || Error::Invalid("授权密钥份额无效 / the sealed share is not valid for this grant".into());
    let sealed = hex::decode(sealed_hex.trim()).map_err(|_| bad())?;
    let plain = medsign_crypto::seal::open(&gk, &sealed, context.as_bytes()).map_err(|_| bad())?;
    let share = ClientKeyShare::from_bytes(&plain).map_err(|_| bad())?;
    let key_id: String = r.try_get("key_id")?;
    let public: Option<String> =
        sqlx::query_scalar("SELECT public_key FROM split_keys WHERE id = $1 AND status = 'active'")
            .bind(&key_id)
            .fetch_optional(&db.pool)
            .await?
            .flatten();
    if public.as_deref() != Some(hex::encode(share.public_key().to_sec1_uncompressed()).as_str()) {
        return Err(bad());
    }
    drop(share);
    let hours: i64 = r.try_get("hours")?;
    let expires = secs_text(Utc::now() + Duration::hours(hours));
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let done = sqlx::query(
        "UPDATE grants SET state = 'active', share_sealed = $1, expires_at = $2 WHERE id = $3 AND state = 'pending'",
    )
    .bind(hex::encode(&sealed))
    .bind(&expires)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(Error::Conflict(format!("授权 {id} 状态已改变 / grant {id} changed meanwhile")));
    }
    audit::ok(
        &mut tx,
        ctx,
        Kind::Signing,
        "grant.create",
        &format!("user:{}", s.employee_no),
        serde_json::json!({"grant": id, "app": v.app_id, "hours": hours, "max_count": v.max_count, "expires_at": expires}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    get(db, s, id).await
}

async fn get(db: &Db, s: &Session, id: &str) -> Result<GrantView> {
    let r = sqlx::query("SELECT * FROM grants WHERE id = $1 AND employee_no = $2")
        .bind(id)
        .bind(&s.employee_no)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("授权 {id} 不存在 / no grant {id}")))?;
    view(&r)
}

/// This user's grants, newest first (the last 50).
pub async fn list(db: &Db, s: &Session) -> Result<Vec<GrantView>> {
    sqlx::query("SELECT * FROM grants WHERE employee_no = $1 AND state <> 'pending' ORDER BY created_at DESC LIMIT 50")
        .bind(&s.employee_no)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(view)
        .collect()
}

/// Cancel a grant: its key and the sealed share are erased at once.
pub async fn cancel(db: &Db, ctx: &Context, s: &Session, id: &str) -> Result<GrantView> {
    let now = medsign_store::now_text();
    {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE grants SET state = 'cancelled', grant_key_wrapped = NULL, share_sealed = NULL, ended_at = $1 \
             WHERE id = $2 AND employee_no = $3 AND state IN ('pending', 'active')",
        )
        .bind(&now)
        .bind(id)
        .bind(&s.employee_no)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM grant_keys_sealed WHERE grant_id = $1").bind(id).execute(&mut *tx).await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            drop(_w);
            let v = get(db, s, id).await?;
            return Err(Error::Conflict(format!("授权 {id} 状态为 {} / grant {id} is {}", v.state, v.state)));
        }
        audit::ok(
            &mut tx,
            ctx,
            Kind::Signing,
            "grant.cancel",
            &format!("user:{}", s.employee_no),
            serde_json::json!({"grant": id}),
        )
        .await?;
        tx.commit().await?;
    }
    forget(&[id.to_string()]);
    db.erase_checkpoint().await?;
    get(db, s, id).await
}

/// End grants whose window has passed (erasing their material); returns how many.
pub async fn expire_due(db: &Db, kek: &Kek) -> Result<usize> {
    // this instance lives (and what was sealed for ended grants or long-gone instances goes);
    // instances started since a grant get their copies of the keys held here
    if let Err(e) = announce(db, kek).await {
        tracing::warn!(error = %e, "announcing this instance failed");
    }
    if let Err(e) = reseal(db, kek).await {
        tracing::warn!(error = %e, "sealing grant keys to new instances failed");
    }
    let rows = sqlx::query("SELECT id, expires_at FROM grants WHERE state IN ('pending', 'active')")
        .fetch_all(&db.pool)
        .await?;
    let mut n = 0;
    for r in rows {
        let (id, expires): (String, String) = (r.try_get("id")?, r.try_get("expires_at")?);
        if is_past(&expires) {
            let _w = db.write_lock.lock().await;
            n += sqlx::query(
                "UPDATE grants SET state = 'expired', grant_key_wrapped = NULL, share_sealed = NULL, ended_at = $1 \
                 WHERE id = $2 AND state IN ('pending', 'active')",
            )
            .bind(medsign_store::now_text())
            .bind(&id)
            .execute(&db.pool)
            .await?
            .rows_affected() as usize;
            sqlx::query("DELETE FROM grant_keys_sealed WHERE grant_id = $1").bind(&id).execute(&db.pool).await?;
        }
    }
    // drop the keys of grants that ended any way (expired, cancelled, unbound) from memory
    let ids: Vec<String> = held().keys().cloned().collect();
    let mut ended = Vec::new();
    for id in ids {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM grants WHERE id = $1").bind(&id).fetch_optional(&db.pool).await?;
        // (rows are never deleted: a key whose grant is not in this database belongs to another
        // database this process also serves — only the unit tests do that — and is left alone)
        if state.as_deref().is_some_and(|st| !matches!(st, "pending" | "active")) {
            ended.push(id);
        }
    }
    forget(&ended);
    if n > 0 {
        db.erase_checkpoint().await?;
    }
    Ok(n)
}

/// The grant worker's signer: the phone's half (opened for this signer only) and the server half
/// of one two-party key, in one [`Signer`].
pub(crate) struct GrantSigner {
    client: ClientKeyShare,
    server: ServerKeyShare,
    public: PublicKey,
    /// the grant
    pub grant_id: String,
    /// the two-party key
    pub key_id: String,
    /// its certificate
    pub cert: Cert,
}

impl Signer for GrantSigner {
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::Sm2Sm3
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> medsign_crypto::Result<Vec<u8>> {
        let e = self.client.public_key().e(medsign_crypto::sm2::DEFAULT_ID, msg)?;
        let (session, req) = self.client.begin_sign(&e)?;
        let resp = self.server.sign(&req, &e, &mut SeenQ1Memory::default())?;
        Ok(session.finish(&resp)?.to_der())
    }
}

/// Session grants as the signing context sees them ([`GrantSigners`]): wired by the server.
pub struct Grants;

impl GrantSigners for Grants {
    fn signer<'a>(
        &'a self,
        db: &'a Db,
        kek: &'a Kek,
        employee_no: &'a str,
        app_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<GrantedKey>>> {
        Box::pin(async move {
            Ok(signer(db, kek, employee_no, app_id).await?.map(|g| GrantedKey {
                grant_id: g.grant_id.clone(),
                key_id: g.key_id.clone(),
                cert: g.cert.clone(),
                signer: Box::new(g),
            }))
        })
    }
}

/// The signer of `employee_no`'s active grant to `app_id`, if any; counts one use. An active grant
/// whose key another instance holds (it started the grant) is a 409 naming that, not the
/// "no grant" of none at all: the caller then knows to reach that instance (docs/cluster.md).
pub(crate) async fn signer(db: &Db, kek: &Kek, employee_no: &str, app_id: &str) -> Result<Option<GrantSigner>> {
    let rows = sqlx::query(
        "SELECT * FROM grants WHERE employee_no = $1 AND app_id = $2 AND state = 'active' ORDER BY created_at DESC",
    )
    .bind(employee_no)
    .bind(app_id)
    .fetch_all(&db.pool)
    .await?;
    let mut elsewhere = None;
    for r in rows {
        let v = view(&r)?;
        if v.state != "active" || v.max_count.is_some_and(|m| v.used_count >= m) {
            continue;
        }
        // not held here (restarted, or started on another instance)
        let gk = match grant_key(db, &v.grant_id).await {
            Ok(gk) => gk,
            Err(e) => {
                elsewhere.get_or_insert(e);
                continue;
            }
        };
        {
            let _w = db.write_lock.lock().await;
            // one use counted per signature; two flows at once under one grant both sign while
            // uses remain (the count, not the value read before the lock, decides)
            let done = sqlx::query(
                "UPDATE grants SET used_count = used_count + 1 \
                 WHERE id = $1 AND state = 'active' AND (max_count IS NULL OR used_count < max_count)",
            )
            .bind(&v.grant_id)
            .execute(&db.pool)
            .await?;
            if done.rows_affected() != 1 {
                continue;
            }
        }
        let context: String = r.try_get("context")?;
        let sealed: Option<String> = r.try_get("share_sealed")?;
        let sealed = hex::decode(sealed.unwrap_or_default()).map_err(|_| Error::internal("stored share is corrupt"))?;
        let client = ClientKeyShare::from_bytes(&medsign_crypto::seal::open(&gk, &sealed, context.as_bytes())?)?;
        let key_id: String = r.try_get("key_id")?;
        let server = crate::cosign::server_share(db, kek, &key_id).await?;
        let serial: Option<String> = sqlx::query_scalar("SELECT cert_serial FROM split_keys WHERE id = $1")
            .bind(&key_id)
            .fetch_one(&db.pool)
            .await?;
        let rec = medsign_ca::certs::get(db, &serial.unwrap_or_default()).await?;
        if rec.status != "active" {
            continue;
        }
        let cert = rec.cert()?;
        let public = PublicKey::Sm2(*client.public_key());
        return Ok(Some(GrantSigner { client, server, public, grant_id: v.grant_id, key_id, cert }));
    }
    match elsewhere {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::tests::phone;
    use base64::Engine;
    use medsign_signing::flows::{self, Signing};
    use medsign_testkit::{
        db::backends,
        hospital::{ORG, World, add_staff, sign_app, staff, world},
    };

    fn win(hours: u32, max_count: Option<u32>) -> Window {
        Window { hours, max_hours: MAX_HOURS, max_count }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_lets_one_system_sign_without_the_phone_until_cancelled_or_expired() {
        for (_d, db) in backends().await {
            let World { kek, ctx, cas, tsa } = world(&db).await;
            let org = ORG;
            let (his, _) = sign_app(&db, &kek, "HIS").await;
            let (lis, _) = sign_app(&db, &kek, "LIS").await;
            add_staff(&db, &kek, &[staff("4001", "医生4001"), staff("4002", "医生4002")]).await;
            let (me, share) = phone(&db, &kek, &cas, "4001").await;
            let (_other, other_share) = phone(&db, &kek, &cas, "4002").await;
            let auto = |title: &str| -> flows::NewFlow {
                serde_json::from_value(
                    serde_json::json!({"kind": "data", "title": title, "content": format!("{title}：医嘱内容"),
                    "signers": [{"employee_no": "4001"}]}),
                )
                .unwrap()
            };
            let sign = |app: String, title: &'static str| {
                let (db, kek, cas, tsa, ctx) = (db.clone(), &kek, &cas, &tsa, ctx.clone());
                async move {
                    flows::create(
                        &Signing {
                            db: &db,
                            kek,
                            cas,
                            organization: org,
                            tsa,
                            grants: &Grants,
                            pades_level: Default::default(),
                        },
                        &ctx,
                        &app,
                        &auto(title),
                        1 << 20,
                    )
                    .await
                }
            };
            // no custody, no grant: an auto flow is refused
            let e = sign(his.app_id.clone(), "before").await.unwrap_err();
            assert!(e.to_string().contains("session grant"), "{e}");
            // bad requests
            assert!(matches!(start(&db, &kek, &me, &his.app_id, win(0, None)).await, Err(Error::Invalid(_))));
            assert!(matches!(start(&db, &kek, &me, &his.app_id, win(13, None)).await, Err(Error::Invalid(_))));
            // the hospital's own limit (`[sign] grant_max_hours`) is below the protocol's 12 h
            let four = Window { hours: 5, max_hours: 4, max_count: None };
            let e = start(&db, &kek, &me, &his.app_id, four).await.unwrap_err();
            assert!(matches!(&e, Error::Invalid(m) if m.contains("1-4")), "{e}");
            assert!(matches!(start(&db, &kek, &me, "app_nope", win(2, None)).await, Err(Error::NotFound(_))));
            // the grant: sealed to the grant key, bound to its context; a wrong seal is refused
            let g = start(&db, &kek, &me, &his.app_id, win(2, Some(3))).await.unwrap();
            let grant_key = medsign_crypto::sm2::Sm2PublicKey::from_sec1(&hex::decode(&g.public_key).unwrap()).unwrap();
            let wrong_ctx = medsign_crypto::seal::seal(&grant_key, &share.to_bytes(), b"other").unwrap();
            // the device session alone activates nothing (issue #15): the doctor approves this grant
            let sealed = medsign_crypto::seal::seal(&grant_key, &share.to_bytes(), g.context.as_bytes()).unwrap();
            let e = activate(&db, &ctx, &me, &g.grant_id, &hex::encode(&sealed)).await.unwrap_err();
            assert_eq!(e.code(), "approval_required", "{e}");
            let approve_grant = |g: &GrantStart| {
                let digest = crate::approvals::digest(crate::approvals::Purpose::Grant, &g.context);
                let (db, kek, me) = (db.clone(), kek.clone(), me.clone());
                async move { crate::approvals::tests::approve(&db, &kek, &me, &digest).await }
            };
            approve_grant(&g).await;
            let e = activate(&db, &ctx, &me, &g.grant_id, &hex::encode(wrong_ctx)).await.unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{e}");
            approve_grant(&g).await;
            let not_mine =
                medsign_crypto::seal::seal(&grant_key, &other_share.to_bytes(), g.context.as_bytes()).unwrap();
            assert!(matches!(
                activate(&db, &ctx, &me, &g.grant_id, &hex::encode(not_mine)).await,
                Err(Error::Invalid(_))
            ));
            approve_grant(&g).await;
            let v = activate(&db, &ctx, &me, &g.grant_id, &hex::encode(&sealed)).await.unwrap();
            assert_eq!((v.state.as_str(), v.hours, v.max_count), ("active", 2, Some(3)));
            assert!(matches!(
                activate(&db, &ctx, &me, &g.grant_id, &hex::encode(&sealed)).await,
                Err(Error::Conflict(_))
            ));
            // HIS's auto flows now sign with the two-party key, citing the grant; LIS's do not
            let f = sign(his.app_id.clone(), "医嘱 1").await.unwrap();
            assert_eq!(f.state, medsign_signing::model::FlowState::Completed);
            assert_eq!(
                (f.signers[0].custody.map(|c| c.as_str()), f.signers[0].grant_id.as_deref()),
                (Some("grant"), Some(g.grant_id.as_str()))
            );
            let sig = flows::signature_bytes(&db, None, &f.id).await.unwrap();
            let rep = flows::verify_data(&db, &cas, &sig, Some("医嘱 1：医嘱内容".as_bytes())).await.unwrap();
            assert!(rep.is_valid(), "{rep:#?}");
            assert!(sign(lis.app_id.clone(), "LIS").await.is_err(), "a grant is for one system");
            // a PDF with the doctor's visible signature under the grant
            let nf: flows::NewFlow = serde_json::from_value(serde_json::json!({"kind": "file", "title": "处方",
                "content_base64": base64::engine::general_purpose::STANDARD.encode(medsign_pdf::blank_pdf(595, 842)),
                "signers": [{"employee_no": "4001", "placement": {"page": 1, "rect": [300, 60, 540, 130]}}]}))
            .unwrap();
            let p = flows::create(
                &Signing {
                    db: &db,
                    kek: &kek,
                    cas: &cas,
                    organization: org,
                    tsa: &tsa,
                    grants: &Grants,
                    pades_level: Default::default(),
                },
                &ctx,
                &his.app_id,
                &nf,
                1 << 22,
            )
            .await
            .unwrap();
            let pdf = flows::signature_bytes(&db, None, &p.id).await.unwrap();
            assert_eq!(
                flows::verify_file(&db, &cas, &pdf).await.unwrap().indication,
                medsign_pki::cms::Indication::TotalPassed
            );
            // the count limit: the third signature is the last
            sign(his.app_id.clone(), "医嘱 3").await.unwrap();
            assert!(sign(his.app_id.clone(), "医嘱 4").await.is_err(), "max_count 3 reached");
            let audited: String = sqlx::query_scalar(
                "SELECT details FROM audit_log WHERE action = 'flow.sign' ORDER BY seq DESC LIMIT 1",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert!(audited.contains(&g.grant_id), "{audited}");
            // cancel erases the material at once
            let g2 = start(&db, &kek, &me, &his.app_id, win(1, None)).await.unwrap();
            let k2 = medsign_crypto::sm2::Sm2PublicKey::from_sec1(&hex::decode(&g2.public_key).unwrap()).unwrap();
            let s2 = medsign_crypto::seal::seal(&k2, &share.to_bytes(), g2.context.as_bytes()).unwrap();
            approve_grant(&g2).await;
            activate(&db, &ctx, &me, &g2.grant_id, &hex::encode(s2)).await.unwrap();
            sign(his.app_id.clone(), "医嘱 5").await.unwrap();
            assert_eq!(cancel(&db, &ctx, &me, &g2.grant_id).await.unwrap().state, "cancelled");
            assert!(matches!(cancel(&db, &ctx, &me, &g2.grant_id).await, Err(Error::Conflict(_))));
            let (k, sh): (Option<String>, Option<String>) =
                sqlx::query_as("SELECT grant_key_wrapped, share_sealed FROM grants WHERE id = $1")
                    .bind(&g2.grant_id)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            assert!(k.is_none() && sh.is_none(), "grant material erased");
            assert!(sign(his.app_id.clone(), "医嘱 6").await.is_err());
            // expiry: swept, erased, refused
            let g3 = start(&db, &kek, &me, &his.app_id, win(1, None)).await.unwrap();
            let k3 = medsign_crypto::sm2::Sm2PublicKey::from_sec1(&hex::decode(&g3.public_key).unwrap()).unwrap();
            let s3 = medsign_crypto::seal::seal(&k3, &share.to_bytes(), g3.context.as_bytes()).unwrap();
            approve_grant(&g3).await;
            activate(&db, &ctx, &me, &g3.grant_id, &hex::encode(s3)).await.unwrap();
            sqlx::query("UPDATE grants SET expires_at = '2020-01-01T00:00:00Z' WHERE id = $1")
                .bind(&g3.grant_id)
                .execute(&db.pool)
                .await
                .unwrap();
            assert!(sign(his.app_id.clone(), "医嘱 7").await.is_err(), "expired is refused even before the sweep");
            assert_eq!(expire_due(&db, &kek).await.unwrap(), 1);
            let states: Vec<String> = list(&db, &me).await.unwrap().into_iter().map(|g| g.state).collect();
            assert_eq!(
                states,
                ["expired", "cancelled", "active"],
                "newest first (the first one is used up but active)"
            );
        }
    }

    /// What a thief with a copy of the data directory and `kek.key` can try: every grant's key
    /// and sealed share as stored, the key unwrapped under the KEK as the grant's design before
    /// issue #15 kept it. Returns the phone's share `d1` if it falls out (with `d2`, also under the
    /// KEK, that is the doctor's key).
    async fn recover_d1(db: &Db, kek: &Kek) -> Option<Vec<u8>> {
        let rows = sqlx::query("SELECT * FROM grants").fetch_all(&db.pool).await.unwrap();
        for r in rows {
            let id: String = r.try_get("id").unwrap();
            let context: String = r.try_get("context").unwrap();
            let (Some(k), Some(sealed)) = (
                r.try_get::<Option<String>, _>("grant_key_wrapped").unwrap(),
                r.try_get::<Option<String>, _>("share_sealed").unwrap(),
            ) else {
                continue;
            };
            let Ok(raw) = kek.unwrap(&hex::decode(k).unwrap(), id.as_bytes()) else { continue };
            let Ok(gk) = Sm2SecretKey::from_bytes(&raw) else { continue };
            if let Ok(d1) = medsign_crypto::seal::open(&gk, &hex::decode(sealed).unwrap(), context.as_bytes()) {
                return Some(d1.to_vec());
            }
        }
        None
    }

    /// An instance's row as its `announce` would write it, its key attested under `by`; returns
    /// (public key, attestation, seen_at) as written.
    async fn add_instance(
        db: &Db,
        id: &str,
        k: &Sm2SecretKey,
        by: &Kek,
        seen: chrono::DateTime<Utc>,
    ) -> (String, String, String) {
        let public = k.public_key().to_sec1_uncompressed();
        let seen = secs_text(seen);
        let att = hex::encode(by.wrap(&public, &attestation_aad(id, &seen)).unwrap());
        add_row(db, id, &hex::encode(&public), &att, &seen).await;
        (hex::encode(&public), att, seen)
    }

    async fn add_row(db: &Db, id: &str, public: &str, attestation: &str, seen: &str) {
        sqlx::query(
            "INSERT INTO instance_keys (instance_id, public_key, attestation, seen_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(public)
        .bind(attestation)
        .bind(seen)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    /// Issue #17: a grant started on one instance is usable on every instance live at the time —
    /// the grant key sealed to each one's in-memory key — and on no other; what is stored opens
    /// with none of the keys a copy of the database holds; a cancel erases it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_started_on_one_instance_signs_on_another() {
        for (_d, db) in backends().await {
            let World { kek, ctx, cas, .. } = world(&db).await;
            let (his, _) = sign_app(&db, &kek, "HIS").await;
            add_staff(&db, &kek, &[staff("4201", "吴医生")]).await;
            let (me, share) = phone(&db, &kek, &cas, "4201").await;
            announce(&db, &kek).await.unwrap();
            // another live instance (its private key here plays its memory), one silent too long,
            // and one whose key someone wrote without the KEK (attested under another)
            let (peer, stale, forged) = (
                Sm2SecretKey::generate().unwrap(),
                Sm2SecretKey::generate().unwrap(),
                Sm2SecretKey::generate().unwrap(),
            );
            let other_kek = Kek::generate().unwrap();
            // instance ids are random in life; here, fresh per backend (this process remembers the
            // peers it served)
            let tag = hex::encode(medsign_crypto::rng::bytes::<4>().unwrap());
            let name = |n: &str| format!("in_{n}_{tag}");
            let (_, peer_att, peer_seen) = add_instance(&db, &name("peer"), &peer, &kek, Utc::now()).await;
            add_instance(&db, &name("stale"), &stale, &kek, Utc::now() - Duration::hours(1)).await;
            add_instance(&db, &name("forged"), &forged, &other_kek, Utc::now()).await;
            // a writer without the KEK: the peer's real attestation beside a key of their own, or
            // copied under another id
            let forged_public = hex::encode(forged.public_key().to_sec1_uncompressed());
            add_row(&db, &name("swapped"), &forged_public, &peer_att, &peer_seen).await;
            let peer_public = hex::encode(peer.public_key().to_sec1_uncompressed());
            add_row(&db, &name("copied"), &peer_public, &peer_att, &peer_seen).await;
            let g = start(&db, &kek, &me, &his.app_id, win(2, None)).await.unwrap();
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT instance_id, sealed FROM grant_keys_sealed WHERE grant_id = $1")
                    .bind(&g.grant_id)
                    .fetch_all(&db.pool)
                    .await
                    .unwrap();
            assert_eq!(
                rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
                [name("peer")],
                "sealed to the live peer only"
            );
            // the peer opens it: the grant's own key (its public half is the one the phone sealed to)
            let opened =
                medsign_crypto::seal::open(&peer, &hex::decode(&rows[0].1).unwrap(), g.grant_id.as_bytes()).unwrap();
            let gk = Sm2SecretKey::from_bytes(&opened[..]).unwrap();
            assert_eq!(hex::encode(gk.public_key().to_sec1_uncompressed()), g.public_key);
            // nothing a copy holds opens it: not the KEK-wrapped keys, not another instance's key
            assert!(
                medsign_crypto::seal::open(&stale, &hex::decode(&rows[0].1).unwrap(), g.grant_id.as_bytes()).is_err()
            );
            // this instance as the peer would be: the key not in memory, only sealed to this
            // instance's key — the phone's share and then the signing still work
            forget(std::slice::from_ref(&g.grant_id));
            let mine = medsign_crypto::seal::seal(
                instance().unwrap().key.public_key(),
                &gk.to_bytes()[..],
                g.grant_id.as_bytes(),
            )
            .unwrap();
            sqlx::query("INSERT INTO grant_keys_sealed (grant_id, instance_id, sealed) VALUES ($1, $2, $3)")
                .bind(&g.grant_id)
                .bind(&instance().unwrap().id)
                .bind(hex::encode(mine))
                .execute(&db.pool)
                .await
                .unwrap();
            let pk = medsign_crypto::sm2::Sm2PublicKey::from_sec1(&hex::decode(&g.public_key).unwrap()).unwrap();
            let sealed = medsign_crypto::seal::seal(&pk, &share.to_bytes(), g.context.as_bytes()).unwrap();
            let digest = crate::approvals::digest(crate::approvals::Purpose::Grant, &g.context);
            crate::approvals::tests::approve(&db, &kek, &me, &digest).await;
            activate(&db, &ctx, &me, &g.grant_id, &hex::encode(&sealed)).await.unwrap();
            forget(std::slice::from_ref(&g.grant_id));
            assert!(signer(&db, &kek, "4201", &his.app_id).await.unwrap().is_some(), "opened from the sealed copy");
            // an instance started after the grant gets its copy at the next minute's sweep from
            // an instance holding the key; a key not attested under the KEK gets nothing
            let late = Sm2SecretKey::generate().unwrap();
            add_instance(&db, &name("late"), &late, &kek, Utc::now()).await;
            expire_due(&db, &kek).await.unwrap();
            let copy: String =
                sqlx::query_scalar("SELECT sealed FROM grant_keys_sealed WHERE grant_id = $1 AND instance_id = $2")
                    .bind(&g.grant_id)
                    .bind(name("late"))
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            let opened = medsign_crypto::seal::open(&late, &hex::decode(copy).unwrap(), g.grant_id.as_bytes()).unwrap();
            assert_eq!(Sm2SecretKey::from_bytes(&opened[..]).unwrap().to_bytes(), gk.to_bytes());
            let forged_copies: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM grant_keys_sealed WHERE instance_id IN ($1, $2, $3)")
                    .bind(name("forged"))
                    .bind(name("swapped"))
                    .bind(name("copied"))
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            assert_eq!(forged_copies, 0);
            // a cancel erases every sealed copy
            cancel(&db, &ctx, &me, &g.grant_id).await.unwrap();
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM grant_keys_sealed WHERE grant_id = $1")
                .bind(&g.grant_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(left, 0);
            // the live peer's row with its key swapped, its attestation kept: the next grant is
            // not sealed to it
            sqlx::query("UPDATE instance_keys SET public_key = $1 WHERE instance_id = $2")
                .bind(&forged_public)
                .bind(name("peer"))
                .execute(&db.pool)
                .await
                .unwrap();
            let g2 = start(&db, &kek, &me, &his.app_id, win(1, None)).await.unwrap();
            let to_peer: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM grant_keys_sealed WHERE grant_id = $1 AND instance_id = $2")
                    .bind(&g2.grant_id)
                    .bind(name("peer"))
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            assert_eq!(to_peer, 0, "a swapped key gets nothing");
        }
    }

    /// Issue #15, item 3: a copy of the data directory with `kek.key`, taken while a grant is
    /// active or after it was cancelled, does not yield the doctor's share `d1` — the grant key
    /// is only in this process's memory — and on SQLite the cancelled grant's sealed share is in
    /// neither the database file nor its write-ahead log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_of_the_data_directory_does_not_yield_the_doctors_key() {
        for (dir, db) in backends().await {
            let World { kek, ctx, cas, .. } = world(&db).await;
            let (his, _) = sign_app(&db, &kek, "HIS").await;
            add_staff(&db, &kek, &[staff("4101", "周医生")]).await;
            let (me, share) = phone(&db, &kek, &cas, "4101").await;
            let g = start(&db, &kek, &me, &his.app_id, win(2, None)).await.unwrap();
            let gk = medsign_crypto::sm2::Sm2PublicKey::from_sec1(&hex::decode(&g.public_key).unwrap()).unwrap();
            let sealed = medsign_crypto::seal::seal(&gk, &share.to_bytes(), g.context.as_bytes()).unwrap();
            let digest = crate::approvals::digest(crate::approvals::Purpose::Grant, &g.context);
            crate::approvals::tests::approve(&db, &kek, &me, &digest).await;
            activate(&db, &ctx, &me, &g.grant_id, &hex::encode(&sealed)).await.unwrap();
            // the server itself can use the grant…
            assert!(signer(&db, &kek, "4101", &his.app_id).await.unwrap().is_some());
            // …a copy taken now cannot: nothing in it opens the sealed share
            assert!(recover_d1(&db, &kek).await.is_none(), "d1 recovered from a copy during the grant");
            let stored: Option<String> = sqlx::query_scalar("SELECT grant_key_wrapped FROM grants WHERE id = $1")
                .bind(&g.grant_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert!(stored.is_none(), "no grant key in the database");
            // a restart (this process's keys gone), or another instance, cannot use the grant:
            // it says so (409), rather than that there is no grant
            forget(std::slice::from_ref(&g.grant_id));
            let e = signer(&db, &kek, "4101", &his.app_id).await.err().expect("the grant is not usable here");
            assert!(matches!(&e, Error::Conflict(m) if m.contains("not held by this server")), "{e}");
            // after cancel: the sealed share is erased from the files too (SQLite)
            cancel(&db, &ctx, &me, &g.grant_id).await.unwrap();
            assert!(recover_d1(&db, &kek).await.is_none());
            if let Some(dir) = &dir {
                let needle = hex::encode(&sealed);
                for f in std::fs::read_dir(dir.path()).unwrap() {
                    let f = f.unwrap().path();
                    let bytes = std::fs::read(&f).unwrap();
                    let text = String::from_utf8_lossy(&bytes);
                    assert!(!text.contains(&needle[..64]), "{} still holds the sealed share", f.display());
                }
            }
        }
    }
}
