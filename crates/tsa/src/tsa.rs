//! The timestamp authority (issue #5; R6.1–R6.7): RFC 3161 + RFC 5816 tokens in two profiles —
//! `sm2` (SM3withSM2, the hospital's SM2 hierarchy, GM/T 0033 style) and `rsa` (SHA-256 with
//! RSA, for PDF readers) — signed by TSA certificates the built-in CA issues (EKU timeStamping,
//! critical), with ESSCertIDv2, the request's nonce, the TSA name, `ordering` false and an
//! accuracy taken from the clock's measured bound. Fail-closed: no token while the clock is not
//! trustworthy ([`Clock::for_issuance`]).
//!
//! Choices (documented in docs/tsa.md):
//! - serial numbers are 128-bit and time-ordered: 8 octets of Unix milliseconds, 4 octets of a
//!   random per-process node id, 4 octets of a per-process counter — unique across restarts and
//!   cluster nodes (the table's primary key would refuse a duplicate) and increasing with time;
//! - accepted imprints: SM3, SHA-256, SHA-384, SHA-512 (others: `badAlg`); the digest length must
//!   match (`badDataFormat`); request extensions are not supported (`unacceptedExtension`);
//! - policy: `tsa.policy_oid` (default ETSI EN 319 421 best-practices-ts-policy until the hospital
//!   sets its own) plus `tsa.accepted_policies`; another requested policy: `unacceptedPolicy`;
//! - certificates are included only when the request sets certReq;
//! - every token is written to `timestamps` (group commit) before it is handed out; if that
//!   fails the answer is `systemFailure`.

use crate::clock::Clock;
use chrono::{DateTime, Utc};
use medsign_ca::ca::{BuiltinCas, Hierarchy, org_cert};
use medsign_crypto::{HashAlg, KeyAlg, signer::KeySigner, wrap::Kek};
use medsign_pki::{
    alg::hash_from_digest_algorithm,
    cert::{Cert, Profile},
    der::{
        Decode,
        asn1::{Int, ObjectIdentifier as Oid},
    },
    tsp::{self, Accuracy, MessageImprint, TimeStampReq, TstInfo, fail_info},
};
use medsign_store::{Error, Result, db::Db};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// One signing profile.
pub struct TsaProfile {
    /// `sm2` | `rsa` | `p256`
    pub name: &'static str,
    /// the TSA certificate
    pub cert: Cert,
    /// issuing CA and root
    pub chain: Vec<Cert>,
    key: Arc<KeySigner>,
    /// the constant parts of this profile's tokens, encoded once
    template: medsign_pki::cms::TokenTemplate,
    /// false while the certificate is on hold or revoked (issue #15): no token is issued
    usable: std::sync::atomic::AtomicBool,
}

/// A token and what it says.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Token {
    /// the TimeStampToken (DER ContentInfo), base64 in JSON
    #[serde(serialize_with = "b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token: Vec<u8>,
    /// serial, hex
    pub serial: String,
    /// genTime
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub time: DateTime<Utc>,
    /// accuracy, microseconds
    pub accuracy_us: u64,
    /// policy OID
    pub policy: String,
    /// `sm2` | `rsa`
    pub profile: String,
}

fn b64<S: serde::Serializer>(v: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    use base64::Engine;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
}

/// Why no token: a PKIFailureInfo bit and a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// [`fail_info`] bit
    pub bit: usize,
    /// Chinese / English
    pub text: String,
}

impl Refusal {
    fn new(bit: usize, text: impl Into<String>) -> Self {
        Self { bit, text: text.into() }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        match r.bit {
            fail_info::TIME_NOT_AVAILABLE | fail_info::SYSTEM_FAILURE => Error::Unavailable(r.text),
            _ => Error::Invalid(r.text),
        }
    }
}

struct Record {
    serial: String,
    profile: &'static str,
    hash_alg: &'static str,
    imprint_hex: String,
    gen_time: String,
    policy: String,
    accuracy_us: i64,
    nonce_hex: Option<String>,
    requester: String,
}

struct Job {
    rec: Record,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

impl Job {
    /// `first` and the jobs queued behind it, at most 500 (one transaction).
    fn batch(first: Job, rx: &mut mpsc::Receiver<Job>) -> Vec<Job> {
        let mut batch = vec![first];
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        batch
    }

    /// Tell each waiting request whether its batch was recorded.
    fn answer(batch: Vec<Job>, r: Result<()>) {
        let r = r.map_err(|e| e.to_string());
        for j in batch {
            let _ = j.done.send(r.clone());
        }
    }
}

/// The TSA.
pub struct Tsa {
    profiles: Vec<TsaProfile>,
    default: usize,
    policy: Oid,
    /// `policy` in dotted form, written once: every token's record and answer carry it
    policy_text: String,
    accepted: Vec<Oid>,
    /// the clock it trusts
    pub clock: Arc<Clock>,
    node: [u8; 4],
    serial_state: Mutex<(u64, u32)>,
    recorder: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Tsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsa").field("policy", &self.policy).finish_non_exhaustive()
    }
}

fn parse_oid(s: &str, key: &str) -> Result<Oid> {
    s.trim().parse().map_err(|_| Error::Config(format!("{key}: '{s}' 不是合法的 OID / is not an object identifier")))
}

/// The profile `name` (`sm2`, `rsa`, `p256`): a key of `alg` (default: the CA's own algorithm)
/// certified by the CA `h` ([`org_cert`]).
async fn profile(
    db: &Db,
    kek: &Kek,
    h: &Hierarchy,
    name: &'static str,
    alg: Option<KeyAlg>,
    org: &str,
) -> Result<TsaProfile> {
    let label = match name {
        "sm2" => "SM2",
        "rsa" => "RSA",
        _ => "P-256",
    };
    let (cert, key) = org_cert(
        db,
        kek,
        &format!("tsa-{name}"),
        alg,
        Profile::Tsa,
        &format!("CN={org} 时间戳服务 {label},O={org},C=CN"),
        &h.issuing,
        h.issuing_key.as_ref(),
        h.links().as_ref(),
    )
    .await?;
    // recorded like any certificate of the CA, so that OCSP and the CRL answer for it
    medsign_ca::certs::record_org(db, &medsign_store::audit::Context::cli(), &format!("org:tsa-{name}"), "tsa", &cert)
        .await?;
    // a token sends along the TSA certificate and its issuing CA, not the root (certReq)
    let template = medsign_pki::cms::TokenTemplate::new(&key, &cert, std::slice::from_ref(&h.issuing))
        .map_err(|e| Error::internal_from("tsa::profile (token template)", e))?;
    Ok(TsaProfile {
        name,
        cert,
        chain: vec![h.issuing.clone(), h.root.clone()],
        key: Arc::new(key),
        template,
        usable: std::sync::atomic::AtomicBool::new(true),
    })
}

impl Tsa {
    /// Load (or issue) the TSA certificates and start the recorder.
    pub async fn start(
        db: &Db,
        kek: &Kek,
        cas: &BuiltinCas,
        organization: &str,
        cfg: &medsign_config::config::TsaConfig,
        clock: Arc<Clock>,
    ) -> Result<Arc<Self>> {
        let org = organization.replace(',', " ");
        let profiles = vec![
            profile(db, kek, &cas.sm2, "sm2", None, &org).await?,
            profile(db, kek, &cas.rsa, "rsa", None, &org).await?,
            // ECDSA P-256 with SHA-256, certified by the RSA CA: for clients that take no SM2 and
            // want a faster signature than RSA's
            profile(db, kek, &cas.rsa, "p256", Some(KeyAlg::P256), &org).await?,
        ];
        let default = match cfg.default_profile.as_str() {
            "sm2" => 0,
            "rsa" => 1,
            "p256" => 2,
            other => return Err(Error::Config(format!("tsa.default_profile: '{other}' (sm2, rsa or p256)"))),
        };
        let policy = parse_oid(&cfg.policy_oid, "tsa.policy_oid")?;
        let accepted =
            cfg.accepted_policies.iter().map(|p| parse_oid(p, "tsa.accepted_policies")).collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel(8192);
        // SQLite in a file: a thread of its own; PostgreSQL (and SQLite in memory): a Tokio task
        match db.direct.clone() {
            Some(direct) => {
                std::thread::Builder::new()
                    .name("tsa-recorder".into())
                    .spawn(move || record_directly(&direct, rx))
                    .map_err(|e| Error::internal_from("tsa::start (recorder thread)", e))?;
            }
            None => {
                tokio::spawn(recorder(db.clone(), rx));
            }
        }
        let tsa = Arc::new(Self {
            profiles,
            default,
            policy,
            policy_text: policy.to_string(),
            accepted,
            clock,
            node: medsign_crypto::rng::bytes::<4>()?,
            serial_state: Mutex::new((0, 0)),
            recorder: tx,
        });
        tsa.refresh_certificates(db).await?;
        Ok(tsa)
    }

    /// A profile by name (`None`: the default).
    pub fn profile(&self, name: Option<&str>) -> Option<&TsaProfile> {
        match name {
            None => Some(&self.profiles[self.default]),
            Some(n) => self.profiles.iter().find(|p| p.name == n),
        }
    }

    /// The TSA certificates, each with its chain.
    pub fn profiles(&self) -> &[TsaProfile] {
        &self.profiles
    }

    /// Read the status of the TSA certificates from the CA's records: a certificate on hold or
    /// revoked stops issuance with it until it is active again. Run at start, by the server
    /// right after any hold, release or revocation on this instance, and every few seconds for
    /// changes made on other instances. Returns the profiles that may issue.
    pub async fn refresh_certificates(&self, db: &Db) -> Result<Vec<&'static str>> {
        let mut usable = Vec::new();
        for p in &self.profiles {
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM certificates WHERE serial = $1")
                .bind(p.cert.serial_hex())
                .fetch_optional(&db.pool)
                .await?;
            let ok = status.as_deref() == Some("active");
            let was = p.usable.swap(ok, std::sync::atomic::Ordering::SeqCst);
            if was != ok {
                tracing::warn!(profile = p.name, usable = ok, "TSA certificate status changed");
            }
            if ok {
                usable.push(p.name);
            }
        }
        Ok(usable)
    }

    fn next_serial(&self) -> [u8; 16] {
        let ms = Utc::now().timestamp_millis().max(0) as u64;
        let (ms, n) = {
            let mut g = self.serial_state.lock().expect("serial lock");
            if ms > g.0 {
                *g = (ms, 0);
            } else {
                g.1 = g.1.wrapping_add(1);
                if g.1 == 0 {
                    g.0 += 1; // 2^32 tokens in one millisecond: borrow the next one
                }
            }
            *g
        };
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&ms.to_be_bytes());
        s[8..12].copy_from_slice(&self.node);
        s[12..].copy_from_slice(&n.to_be_bytes());
        s
    }

    /// Issue a token over `imprint`.
    pub async fn stamp(
        &self,
        profile: Option<&str>,
        imprint: &MessageImprint,
        nonce: Option<&Int>,
        cert_req: bool,
        policy: Option<&Oid>,
        requester: &str,
    ) -> std::result::Result<Token, Refusal> {
        let p = self.profile(profile).ok_or_else(|| {
            Refusal::new(
                fail_info::BAD_REQUEST,
                "未知的时间戳配置，须为 sm2、rsa 或 p256 / unknown profile (sm2, rsa, p256)",
            )
        })?;
        let h = hash_from_digest_algorithm(&imprint.hash_algorithm).map_err(|_| {
            Refusal::new(
                fail_info::BAD_ALG,
                format!(
                    "不支持的摘要算法 {} / unsupported hash algorithm (SM3, SHA-256, SHA-384, SHA-512)",
                    imprint.hash_algorithm.oid
                ),
            )
        })?;
        if imprint.hashed_message.as_bytes().len() != h.output_len() {
            return Err(Refusal::new(
                fail_info::BAD_DATA_FORMAT,
                format!("摘要长度与 {} 不符 / the digest length does not match {}", h.name(), h.name()),
            ));
        }
        let policy = match policy {
            None => self.policy,
            Some(p) if *p == self.policy || self.accepted.contains(p) => *p,
            Some(p) => {
                return Err(Refusal::new(
                    fail_info::UNACCEPTED_POLICY,
                    format!("不接受的策略 {p} / policy not accepted"),
                ));
            }
        };
        if !p.usable.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Refusal::new(
                fail_info::SYSTEM_FAILURE,
                "时间戳证书已冻结或吊销，暂停签发 / the TSA certificate is on hold or revoked: no tokens are issued",
            ));
        }
        // the clock's bound, plus the millisecond genTime is truncated to
        let accuracy_us =
            self.clock.for_issuance().map_err(|why| Refusal::new(fail_info::TIME_NOT_AVAILABLE, why))? + 1000;
        let serial = self.next_serial();
        let start = serial.iter().position(|&b| b != 0).unwrap_or(15);
        let mut minimal = serial[start..].to_vec();
        if minimal[0] & 0x80 != 0 {
            minimal.insert(0, 0);
        }
        let now = Utc::now();
        let gen_time = medsign_pki::time::PreciseTime(now);
        let info = TstInfo {
            version: 1,
            policy,
            message_imprint: imprint.clone(),
            serial_number: Int::new(&minimal).map_err(|e| Refusal::new(fail_info::SYSTEM_FAILURE, e.to_string()))?,
            gen_time,
            accuracy: Some(Accuracy::from_micros(accuracy_us)),
            ordering: false,
            nonce: nonce.cloned(),
            // written by the template: the TSA certificate's subject
            tsa: None,
            extensions: None,
        };
        let token = p
            .template
            .sign(&info, p.key.as_ref(), cert_req)
            .map_err(|e| Refusal::new(fail_info::SYSTEM_FAILURE, format!("签名失败 / signing failed: {e}")))?;
        let serial_hex = hex::encode_upper(serial);
        let policy_text = if policy == self.policy { self.policy_text.clone() } else { policy.to_string() };
        let rec = Record {
            serial: serial_hex.clone(),
            profile: p.name,
            hash_alg: h.name(),
            imprint_hex: hex::encode(imprint.hashed_message.as_bytes()),
            gen_time: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            policy: policy_text.clone(),
            accuracy_us: accuracy_us as i64,
            nonce_hex: nonce.map(|n| hex::encode(n.as_bytes())),
            requester: requester.to_string(),
        };
        let (done, wait) = oneshot::channel();
        let unrecorded =
            || Refusal::new(fail_info::SYSTEM_FAILURE, "签发记录无法写入 / the issuance could not be recorded");
        if self.recorder.send(Job { rec, done }).await.is_err() {
            tracing::error!("the timestamp recorder has stopped: no token can be recorded");
            return Err(unrecorded());
        }
        match wait.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "timestamp record failed");
                return Err(unrecorded());
            }
            Err(_) => return Err(unrecorded()),
        }
        Ok(Token {
            token,
            serial: serial_hex,
            time: now,
            accuracy_us,
            policy: policy_text,
            profile: p.name.to_string(),
        })
    }

    /// Answer a DER TimeStampReq with a DER TimeStampResp (never an HTTP error: RFC 3161 § 2.4.2).
    pub async fn respond(&self, profile: Option<&str>, request: &[u8], requester: &str) -> Vec<u8> {
        let req = match TimeStampReq::from_der(request) {
            Ok(r) => r,
            Err(e) => {
                return tsp::rejected(
                    fail_info::BAD_DATA_FORMAT,
                    &format!("请求格式错误 / malformed TimeStampReq: {e}"),
                );
            }
        };
        if req.version != 1 {
            return tsp::rejected(fail_info::BAD_REQUEST, "只支持 v1 请求 / only version 1 requests");
        }
        if req.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return tsp::rejected(
                fail_info::UNACCEPTED_EXTENSION,
                "不支持请求扩展 / request extensions are not supported",
            );
        }
        match self
            .stamp(profile, &req.message_imprint, req.nonce.as_ref(), req.cert_req, req.req_policy.as_ref(), requester)
            .await
        {
            Ok(t) => tsp::granted(&t.token),
            Err(r) => tsp::rejected(r.bit, &r.text),
        }
    }

    /// The JSON API: stamp a hex digest.
    pub async fn stamp_digest(
        &self,
        profile: Option<&str>,
        algorithm: &str,
        digest_hex: &str,
        requester: &str,
    ) -> Result<Token> {
        let h = HashAlg::from_name(algorithm).ok_or_else(|| {
            Error::Invalid(format!(
                "不支持的摘要算法 '{algorithm}' / unsupported algorithm (sm3, sha256, sha384, sha512)"
            ))
        })?;
        let digest = hex::decode(digest_hex.trim())
            .map_err(|_| Error::Invalid("digest 须为十六进制 / digest must be hex".into()))?;
        if digest.len() != h.output_len() {
            return Err(Error::Invalid(format!(
                "{} 摘要应为 {} 字节，收到 {} 字节 / a {} digest is {} bytes, got {}",
                h.name(),
                h.output_len(),
                digest.len(),
                h.name(),
                h.output_len(),
                digest.len()
            )));
        }
        let imprint = MessageImprint {
            hash_algorithm: medsign_pki::alg::digest_algorithm(h),
            hashed_message: medsign_pki::der::asn1::OctetString::new(digest).expect("octets"),
        };
        // a fresh random nonce ties the token to this call
        let nonce = Int::new(&{
            let mut n = medsign_crypto::rng::bytes::<8>()?.to_vec();
            n[0] &= 0x7f;
            n[0] |= 0x01;
            n
        })
        .map_err(|e| Error::internal_from("tsa::stamp_digest", e))?;
        Ok(self.stamp(profile, &imprint, Some(&nonce), true, None, requester).await?)
    }
}

async fn recorder(db: Db, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        // let the requests already woken on this worker sign and queue their tokens first: a
        // larger batch per INSERT (measured on SQLite through the pool, before the recorder
        // there had a thread of its own — issue #20: +10-14 % tokens/s at 32 connections)
        tokio::task::yield_now().await;
        let batch = Job::batch(first, &mut rx);
        let r = insert(&db, &batch).await;
        Job::answer(batch, r);
    }
}

/// The record of a token, less its values: a macro, so that each recorder's statement is a
/// literal built at compile time, not a string formatted for every batch.
macro_rules! insert_record {
    () => {
        "INSERT INTO timestamps (serial, profile, hash_alg, imprint_hex, gen_time, policy, accuracy_us, nonce_hex, requester) VALUES"
    };
}

/// The recorder on SQLite in a file: a thread of its own writes each batch through the
/// database's [`Direct`](medsign_store::db::Direct) connection, one prepared INSERT per token in
/// one transaction, without the two thread switches per statement of the pool. A commit that
/// waits for the disk holds this thread, not a Tokio worker.
fn record_directly(direct: &medsign_store::db::Direct, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let batch = Job::batch(first, &mut rx);
        let r = direct.write(|tx| {
            let mut insert = tx.prepare_cached(concat!(insert_record!(), " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"))?;
            for j in &batch {
                let r = &j.rec;
                insert.execute(medsign_store::rusqlite::params![
                    r.serial,
                    r.profile,
                    r.hash_alg,
                    r.imprint_hex,
                    r.gen_time,
                    r.policy,
                    r.accuracy_us,
                    r.nonce_hex,
                    r.requester
                ])?;
            }
            Ok(())
        });
        Job::answer(batch, r);
    }
}

async fn insert(db: &Db, batch: &[Job]) -> Result<()> {
    let mut sql = String::from(concat!(insert_record!(), " "));
    for i in 0..batch.len() {
        let b = i * 9;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
            b + 9
        ));
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for j in batch {
        let r = &j.rec;
        q = q
            .bind(r.serial.clone())
            .bind(r.profile)
            .bind(r.hash_alg)
            .bind(r.imprint_hex.clone())
            .bind(r.gen_time.clone())
            .bind(r.policy.clone())
            .bind(r.accuracy_us)
            .bind(r.nonce_hex.clone())
            .bind(r.requester.clone());
    }
    let _w = db.write_lock.lock().await;
    q.execute(&db.pool).await?;
    Ok(())
}

/// One recorded issuance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct IssuedRecord {
    /// serial, hex
    pub serial: String,
    /// `sm2` | `rsa`
    pub profile: String,
    /// imprint hash
    pub hash_alg: String,
    /// imprint, hex
    pub imprint_hex: String,
    /// genTime
    pub gen_time: String,
    /// policy
    pub policy: String,
    /// accuracy, µs
    pub accuracy_us: i64,
    /// who asked (app id, or `tsa:<ip>` for the open RFC 3161 endpoint)
    pub requester: String,
}

/// Filters of [`list`].
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// from (RFC 3339, inclusive)
    pub from: Option<String>,
    /// to (RFC 3339, exclusive)
    pub to: Option<String>,
    /// imprint, hex
    pub imprint: Option<String>,
    /// page, from 1
    pub page: Option<i64>,
    /// 1–500 (default 100)
    pub page_size: Option<i64>,
}

/// The `WHERE` of the list with only the conditions given (`$1`, `$2`, … in the order of the
/// values returned), so that the database searches the imprint's or the time's index: for the
/// former `($1 IS NULL OR imprint_hex = $1)` SQLite read every token ever issued for each page
/// of the list, and so did PostgreSQL outside the custom plans of a statement's first
/// executions (issue #20).
fn list_filter<'a>(
    from: &'a Option<String>,
    to: &'a Option<String>,
    imprint: &'a Option<String>,
) -> (String, Vec<&'a String>) {
    let mut filter = String::from("TRUE");
    let mut values = Vec::new();
    for (cond, v) in [("gen_time >=", from), ("gen_time <", to), ("imprint_hex =", imprint)] {
        if let Some(v) = v {
            values.push(v);
            filter.push_str(&format!(" AND {cond} ${}", values.len()));
        }
    }
    (filter, values)
}

/// The list's count and page statements for `filter` with `n` values (LIMIT and OFFSET follow
/// them).
fn list_statements(filter: &str, n: usize) -> (String, String) {
    (
        format!("SELECT COUNT(*) FROM timestamps WHERE {filter}"),
        format!("SELECT * FROM timestamps WHERE {filter} ORDER BY serial DESC LIMIT ${} OFFSET ${}", n + 1, n + 2),
    )
}

/// Recorded issuances, newest first, and how many match.
pub async fn list(db: &Db, q: &ListQuery) -> Result<(Vec<IssuedRecord>, i64)> {
    let (limit, offset) = medsign_store::paging(q.page, q.page_size, 100, 500)?;
    let norm = |t: &Option<String>| -> Result<Option<String>> {
        t.as_ref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|d| d.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    .map_err(|_| Error::Invalid(format!("时间格式应为 RFC 3339 / not an RFC 3339 time: {s}")))
            })
            .transpose()
    };
    let (from, to) = (norm(&q.from)?, norm(&q.to)?);
    let imprint = q.imprint.as_ref().map(|s| s.to_ascii_lowercase());
    let (filter, given) = list_filter(&from, &to, &imprint);
    let (count_sql, page_sql) = list_statements(&filter, given.len());
    let (mut count, mut page) =
        (sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)), sqlx::query(sqlx::AssertSqlSafe(page_sql)));
    for v in given {
        count = count.bind(v);
        page = page.bind(v);
    }
    let total: i64 = count.fetch_one(&db.pool).await?;
    let rows = page.bind(limit).bind(offset).fetch_all(&db.pool).await?;
    use sqlx::Row;
    let items = rows
        .iter()
        .map(|r| {
            Ok(IssuedRecord {
                serial: r.try_get("serial")?,
                profile: r.try_get("profile")?,
                hash_alg: r.try_get("hash_alg")?,
                imprint_hex: r.try_get("imprint_hex")?,
                gen_time: r.try_get("gen_time")?,
                policy: r.try_get("policy")?,
                accuracy_us: r.try_get("accuracy_us")?,
                requester: r.try_get("requester")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((items, total))
}

/// What `POST /api/v1/timestamps/verify` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// `TOTAL_PASSED` | `INDETERMINATE` (chain not trusted) | `TOTAL_FAILED` (signature or imprint)
    pub status: &'static str,
    /// genTime
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub time: Option<DateTime<Utc>>,
    /// accuracy, µs
    pub accuracy_us: Option<u64>,
    /// serial, hex
    pub serial: String,
    /// policy OID
    pub policy: String,
    /// TSA certificate subject
    pub tsa: Option<String>,
    /// signature and imprint
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub integrity: medsign_pki::cms::Check,
    /// TSA certificate chain to the built-in roots, EKU timeStamping
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub chain: medsign_pki::cms::Check,
}

/// Verify a token (TimeStampToken or a whole TimeStampResp, DER) against the built-in roots and
/// the trust list `listed` (an outside TSA's CA), over `digest` or `data` (exactly one).
pub fn verify(
    cas: &BuiltinCas,
    listed: &medsign_ca::trust::TrustSet,
    token: &[u8],
    digest: Option<&[u8]>,
    data: Option<&[u8]>,
) -> Result<VerifyReport> {
    use medsign_pki::{cms, der::Encode};
    let mut token = token.to_vec();
    if let Ok(resp) = tsp::TimeStampResp::from_der(&token)
        && let Some(t) = resp.time_stamp_token
    {
        token = t.to_der().map_err(|e| Error::Invalid(e.to_string()))?;
    }
    let stamped = match (digest, data) {
        (Some(d), None) => cms::Stamped::Digest(d),
        (None, Some(d)) => cms::Stamped::Data(d),
        _ => return Err(Error::Invalid("须提供 digest 或 data 之一 / send either digest or data".into())),
    };
    let mut opts = cms::VerifyOptions {
        trust: vec![cas.sm2.root.clone(), cas.rsa.root.clone()],
        extra_certs: vec![cas.sm2.issuing.clone(), cas.rsa.issuing.clone()],
        ..Default::default()
    };
    opts.trust.extend(listed.anchors.iter().cloned());
    opts.extra_certs.extend(listed.intermediates.iter().cloned());
    let (rep, info) = cms::verify_timestamp_token(&token, stamped, &opts);
    let info = info
        .ok_or_else(|| Error::Invalid(format!("不是时间戳令牌 / not a timestamp token: {}", rep.integrity.detail)))?;
    Ok(VerifyReport {
        status: if !rep.integrity.ok {
            "TOTAL_FAILED"
        } else if !rep.chain.ok {
            "INDETERMINATE"
        } else {
            "TOTAL_PASSED"
        },
        time: rep.time,
        accuracy_us: rep.accuracy_us,
        // the same fixed-width form as the records (medsign serials are 16 octets)
        serial: format!("{:0>32}", hex::encode_upper(info.serial_number.as_bytes())),
        policy: info.policy.to_string(),
        tsa: rep.tsa,
        integrity: rep.integrity,
        chain: rep.chain,
    })
}

/// The seam signing flows use to get a timestamp (R6.7). When the TSA cannot issue (clock out of
/// sync) it returns `Error::Unavailable`; the caller then either waits and retries, or signs
/// without a timestamp and adds one later (CMS: `cms::Parsed::add_timestamp`; PDF: a document
/// timestamp) — the flow records which.
pub trait Timestamper: Send + Sync {
    /// A token over `imprint` (certificates included).
    fn timestamp<'a>(&'a self, imprint: &'a MessageImprint) -> medsign_ca::channels::BoxFuture<'a, Result<Vec<u8>>>;
}

/// The local TSA as a [`Timestamper`] with a chosen profile.
pub struct LocalTimestamper {
    /// the TSA
    pub tsa: Arc<Tsa>,
    /// `sm2` | `rsa`
    pub profile: &'static str,
}

impl Timestamper for LocalTimestamper {
    fn timestamp<'a>(&'a self, imprint: &'a MessageImprint) -> medsign_ca::channels::BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(async move {
            let nonce = Int::new(&[0x01, medsign_crypto::rng::bytes::<1>()?[0]])
                .map_err(|e| Error::internal_from("tsa::timestamp", e))?;
            let t = self.tsa.stamp(Some(self.profile), imprint, Some(&nonce), true, None, "medsign").await?;
            Ok(t.token)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::tests::synchronised;
    use medsign_pki::{
        cms::{Stamped, VerifyOptions, verify_timestamp_token},
        der::Encode,
        tsp::TimeStampResp,
    };
    use medsign_testkit::db::backends;

    /// A KEK, the built-in CAs and a TSA on `db` with a synchronised clock.
    async fn started(db: &Db) -> (Kek, medsign_ca::ca::BuiltinCas, Arc<Tsa>) {
        let kek = Kek::generate().unwrap();
        let cas = medsign_ca::ca::ensure(db, &kek, "某县人民医院").await.unwrap();
        let tsa =
            Tsa::start(db, &kek, &cas, "某县人民医院", &Default::default(), Arc::new(synchronised())).await.unwrap();
        (kek, cas, tsa)
    }

    #[tokio::test]
    async fn tokens_refusals_and_records() {
        for (_d, db) in backends().await {
            let (kek, cas, tsa) = started(&db).await;
            let opts = VerifyOptions { trust: vec![cas.sm2.root.clone(), cas.rsa.root.clone()], ..Default::default() };
            let mut serials = Vec::new();
            for (profile, h) in [(Some("sm2"), HashAlg::Sm3), (Some("rsa"), HashAlg::Sha256), (None, HashAlg::Sha512)] {
                let imprint = MessageImprint::of(h, b"prescription");
                let req = TimeStampReq {
                    version: 1,
                    message_imprint: imprint.clone(),
                    req_policy: None,
                    nonce: Some(Int::new(&[0x12, 0x34]).unwrap()),
                    cert_req: true,
                    extensions: None,
                };
                let resp = tsa.respond(profile, &tsp::encode("req", &req).unwrap(), "test").await;
                let r = TimeStampResp::from_der(&resp).unwrap();
                assert_eq!(r.status.status, 0, "{:?}", r.status);
                let token = r.time_stamp_token.unwrap().to_der().unwrap();
                let (rep, info) = verify_timestamp_token(&token, Stamped::Data(b"prescription"), &opts);
                assert!(rep.ok(), "{rep:?}");
                let info = info.unwrap();
                assert_eq!(info.nonce, req.nonce);
                assert!(info.accuracy.unwrap().to_micros() >= 2000);
                assert!(info.tsa.is_some() && !info.ordering);
                assert_eq!(info.policy.to_string(), "0.4.0.2023.1.1");
                serials.push(info.serial_number.as_bytes().to_vec());
                // another document does not match
                let (bad, _) = verify_timestamp_token(&token, Stamped::Data(b"other"), &opts);
                assert!(!bad.integrity.ok);
            }
            // serials are unique and increasing
            assert!(serials.windows(2).all(|w| w[0] < w[1]), "{serials:?}");
            // refusals: garbage, an unknown hash, a wrong digest length, a foreign policy, no certReq
            let rejected = |der: &[u8], bit: usize| {
                let r = TimeStampResp::from_der(der).unwrap();
                assert_eq!(r.status.status, 2);
                assert!(r.status.has_failure(bit), "{:?}", r.status);
            };
            rejected(&tsa.respond(None, b"garbage", "t").await, fail_info::BAD_DATA_FORMAT);
            let mut req = TimeStampReq {
                version: 1,
                message_imprint: MessageImprint::of(HashAlg::Sm3, b"x"),
                req_policy: Some(Oid::new_unwrap("1.2.3.4")),
                nonce: None,
                cert_req: false,
                extensions: None,
            };
            rejected(&tsa.respond(None, &tsp::encode("r", &req).unwrap(), "t").await, fail_info::UNACCEPTED_POLICY);
            req.req_policy = None;
            req.message_imprint.hash_algorithm.oid = Oid::new_unwrap("1.2.840.113549.2.5"); // MD5
            rejected(&tsa.respond(None, &tsp::encode("r", &req).unwrap(), "t").await, fail_info::BAD_ALG);
            req.message_imprint = MessageImprint::of(HashAlg::Sm3, b"x");
            req.message_imprint.hashed_message = medsign_pki::der::asn1::OctetString::new(vec![1u8; 20]).unwrap();
            rejected(&tsa.respond(None, &tsp::encode("r", &req).unwrap(), "t").await, fail_info::BAD_DATA_FORMAT);
            req.message_imprint = MessageImprint::of(HashAlg::Sm3, b"x");
            let r = TimeStampResp::from_der(&tsa.respond(None, &tsp::encode("r", &req).unwrap(), "t").await).unwrap();
            let parsed = medsign_pki::cms::Parsed::from_bytes(&r.time_stamp_token.unwrap().to_der().unwrap()).unwrap();
            assert!(parsed.certificates().is_empty(), "no certReq: no certificates");
            // the JSON path; every issuance recorded
            let t = tsa
                .stamp_digest(Some("rsa"), "sha256", &hex::encode(HashAlg::Sha256.digest(b"d")), "app_x")
                .await
                .unwrap();
            assert_eq!(t.profile, "rsa");
            assert!(tsa.stamp_digest(None, "md5", "00", "app").await.is_err());
            assert!(matches!(tsa.stamp_digest(None, "sm3", "abcd", "app").await, Err(Error::Invalid(_))));
            let (items, total) = list(&db, &ListQuery::default()).await.unwrap();
            assert_eq!(total, 5);
            assert_eq!(items[0].serial, t.serial);
            assert_eq!(items[0].requester, "app_x");
            let (_, n) = list(&db, &ListQuery { imprint: Some(items[0].imprint_hex.clone()), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(n, 1);
            // by time: from the last token's time (inclusive), to it (exclusive), and both with the imprint
            let at = Some(items[0].gen_time.clone());
            let by = |from: Option<String>, to: Option<String>, imprint: Option<String>| {
                let q = ListQuery { from, to, imprint, ..Default::default() };
                let db = db.clone();
                async move { list(&db, &q).await.unwrap() }
            };
            let (since, n) = by(at.clone(), None, None).await;
            assert_eq!((n, since[0].serial.as_str()), (1, t.serial.as_str()));
            assert_eq!(by(None, at.clone(), None).await.1, 4);
            assert_eq!(by(at.clone(), None, Some(items[0].imprint_hex.to_uppercase())).await.1, 1);
            assert_eq!(by(None, at.clone(), Some(items[0].imprint_hex.clone())).await.1, 0);
            assert_eq!(by(at.clone(), at.clone(), None).await.1, 0, "an empty range");
            // what an administrator's client may send: a filter is a value, never SQL; a time must be RFC 3339
            assert_eq!(by(None, None, Some("x' OR '1'='1".into())).await.1, 0);
            assert_eq!(by(None, None, Some("') OR TRUE --".into())).await.1, 0);
            for bad in ["yesterday", "", "2026-13-01T00:00:00Z"] {
                let q = ListQuery { from: Some(bad.into()), ..Default::default() };
                assert!(matches!(list(&db, &q).await, Err(Error::Invalid(_))), "{bad:?}");
                let q = ListQuery { to: Some(bad.into()), ..Default::default() };
                assert!(matches!(list(&db, &q).await, Err(Error::Invalid(_))), "{bad:?}");
            }
            // all three filters, then LIMIT and OFFSET after them: one match, on page 1 only
            for (page, shown) in [(1, 1), (2, 0)] {
                let q = ListQuery {
                    from: Some("2000-01-01T00:00:00Z".into()),
                    to: Some("2100-01-01T00:00:00Z".into()),
                    imprint: Some(items[0].imprint_hex.clone()),
                    page: Some(page),
                    page_size: Some(1),
                };
                let (got, n) = list(&db, &q).await.unwrap();
                assert_eq!((got.len(), n), (shown, 1), "page {page}");
            }
            // an unsynchronised clock: timeNotAvailable
            let cold = Tsa::start(
                &db,
                &kek,
                &cas,
                "某县人民医院",
                &Default::default(),
                Arc::new(Clock::new(&Default::default())),
            )
            .await
            .unwrap();
            req.cert_req = true;
            rejected(&cold.respond(None, &tsp::encode("r", &req).unwrap(), "t").await, fail_info::TIME_NOT_AVAILABLE);
            assert!(matches!(
                cold.stamp_digest(None, "sm3", &hex::encode(HashAlg::Sm3.digest(b"d")), "a").await,
                Err(Error::Unavailable(_))
            ));
        }
    }

    /// The list searches the imprint's index for an imprint and the time's for a time range
    /// (SQLite's plan): it used to read every token ever issued for each page.
    #[tokio::test]
    async fn the_list_searches_an_index_for_an_imprint_or_a_time() {
        let (_d, db) = medsign_testkit::db::temp_db().await;
        // the count's plan and the page's, as `list` runs them
        let plan = |from: Option<&str>, to: Option<&str>, imprint: Option<&str>| {
            let (from, to, imprint) = (from.map(String::from), to.map(String::from), imprint.map(String::from));
            let (filter, values) = list_filter(&from, &to, &imprint);
            let mut values: Vec<&str> = values.into_iter().map(String::as_str).collect();
            let (count, page) = list_statements(&filter, values.len());
            let count = medsign_testkit::db::query_plan(&db, &count, &values);
            values.extend(["100", "0"]);
            (count, medsign_testkit::db::query_plan(&db, &page, &values))
        };
        let t = "2026-12-06T10:00:00.000000Z";
        let (count, page) = plan(None, None, Some("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"));
        for p in [count, page] {
            assert!(p.contains("INDEX timestamps_imprint (imprint_hex=?)"), "{p}");
        }
        let (count, page) = plan(Some(t), Some(t), None);
        for p in [count, page] {
            assert!(p.contains("INDEX timestamps_time (gen_time>? AND gen_time<?)"), "{p}");
        }
        // a lower bound alone: the count searches the index; the page, newest first, may walk back
        let (count, _) = plan(Some(t), None, None);
        assert!(count.contains("INDEX timestamps_time (gen_time>?)"), "{count}");
    }

    /// On SQLite the recorder is a thread writing through its own connection, on PostgreSQL a
    /// task writing through the pool: on both, a token is answered only once its record is
    /// written, and a failed write refuses the tokens of its batch without stopping the recorder.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_whose_record_fails_is_refused_and_the_recorder_goes_on() {
        for (_d, db) in backends().await {
            let (_, _, tsa) = started(&db).await;
            let digest = hex::encode(HashAlg::Sm3.digest(b"lab report"));
            let stamp = || tsa.stamp_digest(Some("sm2"), "sm3", &digest, "app_x");
            let first = stamp().await.unwrap();
            sqlx::raw_sql("ALTER TABLE timestamps RENAME TO timestamps_away").execute(&db.pool).await.unwrap();
            let (a, b, c) = tokio::join!(stamp(), stamp(), stamp());
            for r in [a, b, c] {
                assert!(matches!(&r, Err(Error::Unavailable(m)) if m.contains("could not be recorded")), "{r:?}");
            }
            let req = TimeStampReq {
                version: 1,
                message_imprint: MessageImprint::of(HashAlg::Sm3, b"lab report"),
                req_policy: None,
                nonce: None,
                cert_req: true,
                extensions: None,
            };
            let resp =
                TimeStampResp::from_der(&tsa.respond(None, &tsp::encode("r", &req).unwrap(), "t").await).unwrap();
            assert!(resp.time_stamp_token.is_none(), "a token left without its record");
            sqlx::raw_sql("ALTER TABLE timestamps_away RENAME TO timestamps").execute(&db.pool).await.unwrap();
            let last = stamp().await.unwrap();
            let serials: Vec<String> =
                sqlx::query_scalar("SELECT serial FROM timestamps ORDER BY serial").fetch_all(&db.pool).await.unwrap();
            let mut expected = vec![first.serial, last.serial];
            expected.sort();
            assert_eq!(serials, expected);
        }
    }
}
