//! The audit log (R1.7): append-only, and every entry carries `hash = SM3(prev_hash ‖ canonical
//! encoding of the entry)`, written in the same transaction as the change it records. Editing,
//! deleting or inserting a row breaks the chain at that row; `medsign audit verify` finds it.
//! (Signed, timestamped anchors of the chain head — which also catch truncation — come with the
//! TSA issue.)

use crate::{Error, Result, db::Db};
use medsign_crypto::hash::sm3_parts;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What kind of event (R1.7: login, signing, data maintenance; plus administration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// logins and scan-to-login
    Login,
    /// signatures and sign flows
    Signing,
    /// changes to users, departments, certificates, templates
    DataMaintenance,
    /// configuration, apps, keys
    Admin,
}

impl Kind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::Signing => "signing",
            Kind::DataMaintenance => "data_maintenance",
            Kind::Admin => "admin",
        }
    }
}

/// Who did it and from where (filled by the server from the request).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `app:<id>`, `user:<employee_no>`, `cli`, `system`
    pub actor: String,
    /// client address
    pub ip: String,
    /// client user agent
    pub user_agent: String,
    /// request id
    pub request_id: String,
}

impl Context {
    /// A context for command-line actions.
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Context {
            actor: format!("cli:{user}"),
            ip: "local".into(),
            user_agent: "medsign-cli".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// kind
    pub kind: Kind,
    /// e.g. `user.create`
    pub action: &'a str,
    /// e.g. `user:1001`
    pub target: &'a str,
    /// `ok` or `failed:<code>`
    pub outcome: &'a str,
    /// free-form details (no secrets)
    pub details: serde_json::Value,
}

/// The stored row.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// position in the chain, from 1
    pub seq: i64,
    /// instant, RFC 3339 UTC
    pub at: String,
    /// kind
    pub kind: String,
    /// actor
    pub actor: String,
    /// action
    pub action: String,
    /// target
    pub target: String,
    /// outcome
    pub outcome: String,
    /// client address
    pub ip: String,
    /// user agent
    pub user_agent: String,
    /// request id
    pub request_id: String,
    /// details (JSON text)
    pub details: String,
    /// hash of the previous entry (hex)
    pub prev_hash: String,
    /// this entry's hash (hex)
    pub hash: String,
}

impl Entry {
    /// `SM3(prev_hash ‖ len‖field ‖ …)`: every field length-prefixed, so no two different
    /// entries encode alike.
    pub fn compute_hash(&self) -> String {
        let prev = hex::decode(&self.prev_hash).unwrap_or_default();
        let seq = self.seq.to_be_bytes();
        let fields: [&[u8]; 11] = [
            &seq,
            self.at.as_bytes(),
            self.kind.as_bytes(),
            self.actor.as_bytes(),
            self.action.as_bytes(),
            self.target.as_bytes(),
            self.outcome.as_bytes(),
            self.ip.as_bytes(),
            self.user_agent.as_bytes(),
            self.request_id.as_bytes(),
            self.details.as_bytes(),
        ];
        let lens: Vec<[u8; 4]> = fields.iter().map(|f| (f.len() as u32).to_be_bytes()).collect();
        let mut parts: Vec<&[u8]> = vec![b"medsign/audit/v1", &prev];
        for (l, f) in lens.iter().zip(fields.iter()) {
            parts.push(l);
            parts.push(f);
        }
        hex::encode(sm3_parts(&parts))
    }
}

fn entry_from_row(r: &sqlx::any::AnyRow) -> Result<Entry> {
    Ok(Entry {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        kind: r.try_get("kind")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        outcome: r.try_get("outcome")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        request_id: r.try_get("request_id")?,
        details: r.try_get("details")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// Bytes kept of each short field of an entry (actor, action, target, outcome, ip, request id).
pub const MAX_FIELD_BYTES: usize = 256;
/// Bytes kept of the user agent.
pub const MAX_USER_AGENT_BYTES: usize = 512;
/// Bytes kept of the details (JSON); longer details are replaced by `{"truncated": …}`.
pub const MAX_DETAILS_BYTES: usize = 4096;

/// `s` cut to at most `max` bytes on a character boundary, `…` marking a cut. Several fields come
/// from unauthenticated requests (user agent, request id, login names): the log must not grow
/// by what a client chooses to send.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let end = s.floor_char_boundary(max.saturating_sub('…'.len_utf8()));
    format!("{}…", &s[..end])
}

/// The details as stored: their JSON text, or, past [`MAX_DETAILS_BYTES`], a JSON object with
/// the cut text and the original length (so the column stays JSON).
fn clip_details(details: &serde_json::Value) -> String {
    let text = details.to_string();
    if text.len() <= MAX_DETAILS_BYTES {
        return text;
    }
    // the wrapper's own keys and escaping stay well under the 1/4 reserved for them
    let cut = clip(&text, MAX_DETAILS_BYTES / 2);
    serde_json::json!({"truncated": true, "bytes": text.len(), "start": cut}).to_string()
}

/// The PostgreSQL advisory lock every audit append takes ("medsaudt" in ASCII, as a number).
pub const AUDIT_LOCK: i64 = 0x6d65_6473_6175_6474;

/// Append an event inside the caller's transaction (hold `Db::write_lock` around it). Returns
/// the stored entry.
///
/// Several instances may write to one PostgreSQL database (issue #17): there the transaction
/// first takes the audit advisory lock, held until it commits or rolls back, so the head each
/// instance reads is the last committed one and entries commit in `seq` order — the chain stays
/// gap-free and linear without any process knowing of the others. The lock is a statement of its
/// own so the head is read with a snapshot taken after the wait (transactions run at READ
/// COMMITTED, set per connection in `Db::open`). Later appends of the same transaction take it
/// again at no cost. On SQLite the database file has one writer at a time and the process lock
/// serialises ours.
pub async fn append(conn: &mut AnyConnection, ctx: &Context, ev: &Event<'_>) -> Result<Entry> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK).execute(&mut *conn).await?;
    }
    let head =
        sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *conn).await?;
    let (seq, prev_hash) = match head {
        Some(r) => (r.try_get::<i64, _>("seq")? + 1, r.try_get::<String, _>("hash")?),
        None => (1, GENESIS.to_string()),
    };
    let mut e = Entry {
        seq,
        at: crate::now_text(),
        kind: ev.kind.as_str().into(),
        // every entry is written here: the single place where lengths are bounded
        actor: clip(&ctx.actor, MAX_FIELD_BYTES),
        action: clip(ev.action, MAX_FIELD_BYTES),
        target: clip(ev.target, MAX_FIELD_BYTES),
        outcome: clip(ev.outcome, MAX_FIELD_BYTES),
        ip: clip(&ctx.ip, MAX_FIELD_BYTES),
        user_agent: clip(&ctx.user_agent, MAX_USER_AGENT_BYTES),
        request_id: clip(&ctx.request_id, MAX_FIELD_BYTES),
        details: clip_details(&ev.details),
        prev_hash,
        hash: String::new(),
    };
    e.hash = e.compute_hash();
    sqlx::query(
        "INSERT INTO audit_log (seq, at, kind, actor, action, target, outcome, ip, user_agent, request_id, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(e.seq)
    .bind(&e.at)
    .bind(&e.kind)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.outcome)
    .bind(&e.ip)
    .bind(&e.user_agent)
    .bind(&e.request_id)
    .bind(&e.details)
    .bind(&e.prev_hash)
    .bind(&e.hash)
    .execute(&mut *conn)
    .await?;
    Ok(e)
}

/// Record that `err` refused an action (in its own transaction) and hand the error back; if the
/// audit write itself fails, that failure is returned instead (nothing is refused silently).
pub async fn refused(
    db: &crate::db::Db,
    ctx: &Context,
    kind: Kind,
    action: &str,
    target: &str,
    err: crate::Error,
) -> crate::Error {
    let write = async {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let ev =
            Event { kind, action, target, outcome: "refused", details: serde_json::json!({"error": err.to_string()}) };
        append(&mut tx, ctx, &ev).await?;
        tx.commit().await?;
        Ok::<_, crate::Error>(())
    };
    match write.await {
        Ok(()) => err,
        Err(a) => a,
    }
}

/// Append a successful event of `kind` (the common case of [`append`]).
pub async fn ok(
    conn: &mut AnyConnection,
    ctx: &Context,
    kind: Kind,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> Result<Entry> {
    append(conn, ctx, &Event { kind, action, target, outcome: "ok", details }).await
}

/// Record one event in its own transaction (for events with no other change, e.g. a failed login).
pub async fn record(db: &Db, ctx: &Context, ev: &Event<'_>) -> Result<Entry> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let e = append(&mut tx, ctx, ev).await?;
    tx.commit().await?;
    Ok(e)
}

fn anchor_message(seq: i64, head_hash: &str, at: &str) -> Vec<u8> {
    format!("medsign/audit-anchor/v1|{seq}|{head_hash}|{at}").into_bytes()
}

/// One signed anchor of the chain head, as stored and as exported to a witness.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Anchor {
    /// 1, 2, … without gaps
    pub id: i64,
    /// when it was signed (RFC 3339)
    pub at: String,
    /// the entry it covers
    pub seq: i64,
    /// that entry's hash
    pub head_hash: String,
    /// the platform key's signature over [`Anchor::message`], hex
    pub signature: String,
    /// [`Anchor::digest`] of the anchor before (`GENESIS` for the first); none for anchors written
    /// before anchors were chained
    pub prev: Option<String>,
}

impl Anchor {
    /// The signed text: v2 (chained) names the id and the previous anchor.
    pub fn message(&self) -> Vec<u8> {
        match &self.prev {
            None => anchor_message(self.seq, &self.head_hash, &self.at),
            Some(p) => format!("medsign/audit-anchor/v2|{}|{}|{}|{}|{p}", self.id, self.seq, self.head_hash, self.at)
                .into_bytes(),
        }
    }

    /// Whether the signature over [`Anchor::message`] verifies with the platform key.
    pub fn signed_by(&self, platform: &medsign_crypto::PublicKey) -> bool {
        hex::decode(&self.signature)
            .is_ok_and(|s| platform.verify(platform.default_scheme(), &self.message(), &s, None).is_ok())
    }

    /// What the next anchor names: SM3 of the signed text and the signature, hex.
    pub fn digest(&self) -> String {
        hex::encode(medsign_crypto::hash::sm3(&[self.message(), self.signature.as_bytes().to_vec()].concat()))
    }

    fn from_row(r: &sqlx::any::AnyRow) -> Result<Anchor> {
        Ok(Anchor {
            id: r.try_get("id")?,
            at: r.try_get("at")?,
            seq: r.try_get("seq")?,
            head_hash: r.try_get("head_hash")?,
            signature: r.try_get("signature")?,
            prev: r.try_get("prev")?,
        })
    }
}

/// Where anchors are also sent as they are written (`[audit] witness_file`, `witness_syslog`): a
/// record outside the database that `medsign audit verify --witness` compares the database with.
#[derive(Debug, Clone, Default)]
pub struct Witness {
    /// JSON lines appended to this file (on another disk or host)
    pub file: Option<std::path::PathBuf>,
    /// also to the local syslog (`/dev/log`, facility auth)
    pub syslog: bool,
}

impl Witness {
    fn send(&self, a: &Anchor) -> Result<()> {
        let line = serde_json::to_string(a).map_err(|e| Error::internal_from("audit::send", e))?;
        if let Some(f) = &self.file {
            use std::io::Write;
            let mut o = std::fs::OpenOptions::new().create(true).append(true).open(f).map_err(|e| {
                Error::Config(format!(
                    "无法写入审计见证文件 {} / cannot write the audit witness file: {e}",
                    f.display()
                ))
            })?;
            writeln!(o, "{line}").and_then(|_| o.sync_data()).map_err(|e| {
                Error::Config(format!(
                    "无法写入审计见证文件 {} / cannot write the audit witness file: {e}",
                    f.display()
                ))
            })?;
        }
        #[cfg(unix)]
        if self.syslog {
            // RFC 3164 to the local syslog socket: facility auth (4), severity notice (5)
            let msg = format!("<37>medsign-audit: {line}");
            let sock = std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.send_to(msg.as_bytes(), "/dev/log").map(|_| ()));
            if let Err(e) = sock {
                tracing::warn!(error = %e, "audit anchor not sent to syslog");
            }
        }
        Ok(())
    }
}

/// Sign the current chain head with the platform key (skipped when nothing was appended since
/// the last anchor), chained to the previous anchor, and send it to the `witness`. Returns the
/// anchored sequence number, if an anchor was written.
pub async fn anchor(db: &Db, signer: &dyn medsign_crypto::Signer, witness: &Witness) -> Result<Option<i64>> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // one anchor writer at a time across instances (the chain of anchors is linear)
    db.serialise(&mut tx, ANCHOR_LOCK).await?;
    let head =
        sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
    let Some(head) = head else { return Ok(None) };
    let (seq, hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    let last = sqlx::query("SELECT * FROM audit_anchors ORDER BY id DESC LIMIT 1").fetch_optional(&mut *tx).await?;
    let last = last.as_ref().map(Anchor::from_row).transpose()?;
    if last.as_ref().is_some_and(|l| l.seq == seq) {
        return Ok(None);
    }
    let mut a = Anchor {
        id: last.as_ref().map_or(1, |l| l.id + 1),
        at: crate::now_text(),
        seq,
        head_hash: hash,
        signature: String::new(),
        prev: Some(last.as_ref().map_or_else(|| GENESIS.to_string(), Anchor::digest)),
    };
    a.signature = hex::encode(signer.sign(&a.message())?);
    sqlx::query("INSERT INTO audit_anchors (id, at, seq, head_hash, signature, prev) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(a.id)
        .bind(&a.at)
        .bind(a.seq)
        .bind(&a.head_hash)
        .bind(&a.signature)
        .bind(&a.prev)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    witness.send(&a)?;
    Ok(Some(seq))
}

/// The advisory lock key anchors are written under.
const ANCHOR_LOCK: i64 = 0x6d65_6473_616e_6368;

/// Check every anchor against the chain and against the anchor before it: signature by
/// `platform`, no gap in the ids, each chained anchor naming its predecessor, and the entry it
/// covers. Returns how many passed and the first problem as (seq, reason).
async fn check_anchors(
    db: &Db,
    platform: &medsign_crypto::PublicKey,
    entries: i64,
) -> Result<(i64, Option<(i64, String)>)> {
    let rows = sqlx::query("SELECT * FROM audit_anchors ORDER BY id").fetch_all(&db.pool).await?;
    let mut n = 0;
    let mut before: Option<Anchor> = None;
    for r in &rows {
        let a = Anchor::from_row(r)?;
        if let Some(problem) = check_anchor(db, platform, entries, &a, before.as_ref()).await? {
            return Ok((n, Some(problem)));
        }
        before = Some(a);
        n += 1;
    }
    Ok((n, None))
}

/// One anchor: its signature, its place in the chain of anchors (after `before`, or first) and
/// the entry it covers.
async fn check_anchor(
    db: &Db,
    platform: &medsign_crypto::PublicKey,
    entries: i64,
    a: &Anchor,
    before: Option<&Anchor>,
) -> Result<Option<(i64, String)>> {
    if !a.signed_by(platform) {
        return Ok(Some((a.seq, "锚点签名无效 / the anchor's signature does not verify".into())));
    }
    let expected_id = before.map_or(1, |b| b.id + 1);
    if a.id != expected_id {
        return Ok(Some((
            a.seq,
            format!(
                "缺少第 {expected_id} 个锚点（锚点连同日志被删除）/ anchor {expected_id} is missing (anchors were deleted with entries)"
            ),
        )));
    }
    if let Some(p) = &a.prev {
        let want = before.map_or_else(|| GENESIS.to_string(), Anchor::digest);
        if *p != want {
            return Ok(Some((
                a.seq,
                format!("第 {} 个锚点与前一个锚点不衔接 / anchor {} does not follow the one before", a.id, a.id),
            )));
        }
    }
    if a.seq > entries {
        return Ok(Some((
            entries + 1,
            format!("日志被截断：锚点记录到第 {} 条 / the log was truncated: an anchor covers entry {}", a.seq, a.seq),
        )));
    }
    let stored: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1").bind(a.seq).fetch_optional(&db.pool).await?;
    if stored.as_deref() != Some(a.head_hash.as_str()) {
        return Ok(Some((a.seq, "与已签名的锚点不符 / differs from the signed anchor".into())));
    }
    Ok(None)
}

/// Compare the database with the anchors a witness recorded (JSON lines, see [`Witness`]): every
/// witnessed anchor must verify, be in the database unchanged, and cover an entry that is still
/// there with the same hash. Catches what the database alone cannot: its log and anchors emptied,
/// or cut back together. Returns the first problem as (seq, reason), and how many were checked.
pub async fn verify_witness(db: &Db, witness: &str) -> Result<(i64, Option<(i64, String)>)> {
    let platform = crate::custody::public_key(db, "platform").await?;
    let r = walk_chain(db).await?;
    let mut n = 0;
    for (i, line) in witness.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let a: Anchor = serde_json::from_str(line).map_err(|e| {
            Error::Invalid(format!("见证文件第 {} 行无效 / witness line {} is not an anchor: {e}", i + 1, i + 1))
        })?;
        if !a.signed_by(&platform) {
            return Ok((
                n,
                Some((a.seq, format!("见证第 {} 行的签名无效 / witness line {}: bad signature", i + 1, i + 1))),
            ));
        }
        let stored =
            sqlx::query("SELECT * FROM audit_anchors WHERE id = $1").bind(a.id).fetch_optional(&db.pool).await?;
        if stored.as_ref().map(Anchor::from_row).transpose()?.as_ref() != Some(&a) {
            return Ok((
                n,
                Some((
                    a.seq,
                    format!(
                        "数据库中缺少见证过的第 {} 个锚点 / witnessed anchor {} is not in the database",
                        a.id, a.id
                    ),
                )),
            ));
        }
        if a.seq > r.entries {
            return Ok((
                n,
                Some((
                    r.entries + 1,
                    format!(
                        "日志被截断：见证的锚点记录到第 {} 条 / the log was cut: a witnessed anchor covers entry {}",
                        a.seq, a.seq
                    ),
                )),
            ));
        }
        n += 1;
    }
    Ok((n, None))
}

/// Result of walking the chain.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// entries checked
    pub entries: i64,
    /// hash of the last entry
    pub head: String,
    /// the first broken link: (seq, reason)
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub broken: Option<(i64, String)>,
    /// signed anchors checked
    pub anchors: i64,
}

/// Walk the whole chain in order and name the first broken link; then check the signed anchors
/// (which also catch a truncated log).
pub async fn verify_chain(db: &Db) -> Result<ChainReport> {
    let mut r = walk_chain(db).await?;
    if r.broken.is_none()
        && let Ok(platform) = crate::custody::public_key(db, "platform").await
    {
        let (n, problem) = check_anchors(db, &platform, r.entries).await?;
        r.anchors = n;
        r.broken = problem;
    }
    Ok(r)
}

async fn walk_chain(db: &Db) -> Result<ChainReport> {
    let mut prev = GENESIS.to_string();
    let mut expect = 1i64;
    let mut last = 0i64;
    loop {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000")
            .bind(last)
            .fetch_all(&db.pool)
            .await?;
        if rows.is_empty() {
            return Ok(ChainReport { entries: expect - 1, head: prev, broken: None, anchors: 0 });
        }
        for r in &rows {
            let e = entry_from_row(r)?;
            let fail = |why: String| {
                Ok(ChainReport { entries: expect - 1, head: prev.clone(), broken: Some((e.seq, why)), anchors: 0 })
            };
            if e.seq != expect {
                return fail(format!("缺少第 {expect} 条记录 / entry {expect} is missing (found {})", e.seq));
            }
            if e.prev_hash != prev {
                return fail("与前一条记录的哈希不衔接 / prev_hash does not match the previous entry".into());
            }
            if e.compute_hash() != e.hash {
                return fail("记录内容被改动 / the entry was altered (hash mismatch)".into());
            }
            prev = e.hash.clone();
            expect += 1;
            last = e.seq;
        }
    }
}

/// Filters of [`query`] (all optional; instants RFC 3339).
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `login` | `signing` | `data_maintenance` | `admin`
    pub kind: Option<String>,
    /// exact actor, e.g. `app:app_…`
    pub actor: Option<String>,
    /// exact action, e.g. `user.create`
    pub action: Option<String>,
    /// exact target, e.g. `user:1001`
    pub target: Option<String>,
    /// from this instant (inclusive)
    pub from: Option<String>,
    /// before this instant (exclusive)
    pub to: Option<String>,
    /// page, from 1
    pub page: Option<i64>,
    /// page size, 1–1000 (default 100)
    pub page_size: Option<i64>,
}

/// The WHERE clause of a [`Filter`]: its six values are bound as `$1`–`$6` by [`bind_filter`].
const FILTER_SQL: &str = "($1 IS NULL OR kind = $1) AND ($2 IS NULL OR actor = $2) AND ($3 IS NULL OR action = $3) \
                          AND ($4 IS NULL OR target = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6)";

/// A filter checked, its instants normalised: the six values of [`FILTER_SQL`].
struct Bound {
    f: Filter,
    from: Option<String>,
    to: Option<String>,
}

impl Bound {
    fn new(f: &Filter) -> Result<Self> {
        let (from, to) =
            (crate::instant_param(f.from.as_deref(), "from")?, crate::instant_param(f.to.as_deref(), "to")?);
        if let Some(k) = &f.kind
            && !["login", "signing", "data_maintenance", "admin"].contains(&k.as_str())
        {
            return Err(crate::Error::Invalid(format!(
                "未知类别 '{k}' / unknown kind (login, signing, data_maintenance, admin)"
            )));
        }
        Ok(Bound { f: f.clone(), from, to })
    }

    fn bind<'q>(&'q self, sql: String) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        let q = sqlx::query(sqlx::AssertSqlSafe(sql));
        q.bind(&self.f.kind)
            .bind(&self.f.actor)
            .bind(&self.f.action)
            .bind(&self.f.target)
            .bind(&self.from)
            .bind(&self.to)
    }
}

/// Entries matching `f`, newest first, and how many match in all.
pub async fn query(db: &Db, f: &Filter) -> Result<(Vec<Entry>, i64)> {
    let (size, offset) = crate::paging(f.page, f.page_size, 100, 1000)?;
    let b = Bound::new(f)?;
    let total: i64 = b
        .bind(format!("SELECT COUNT(*) AS n FROM audit_log WHERE {FILTER_SQL}"))
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    let rows = b
        .bind(format!("SELECT * FROM audit_log WHERE {FILTER_SQL} ORDER BY seq DESC LIMIT $7 OFFSET $8"))
        .bind(size)
        .bind(offset)
        .fetch_all(&db.pool)
        .await?;
    Ok((rows.iter().map(entry_from_row).collect::<Result<_>>()?, total))
}

/// Filters of an export: those of [`Filter`], without paging (an export holds every match).
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFilter {
    /// `login` | `signing` | `data_maintenance` | `admin`
    pub kind: Option<String>,
    /// exact actor, e.g. `app:app_…`
    pub actor: Option<String>,
    /// exact action, e.g. `user.create`
    pub action: Option<String>,
    /// exact target, e.g. `user:1001`
    pub target: Option<String>,
    /// from this instant (inclusive)
    pub from: Option<String>,
    /// before this instant (exclusive)
    pub to: Option<String>,
}

impl From<ExportFilter> for Filter {
    fn from(e: ExportFilter) -> Self {
        Filter {
            kind: e.kind,
            actor: e.actor,
            action: e.action,
            target: e.target,
            from: e.from,
            to: e.to,
            ..Default::default()
        }
    }
}

/// The sequence number of the newest entry (0 for an empty log): an export reads up to it, so
/// what is written while it runs is not half in it.
pub async fn head_seq(db: &Db) -> Result<i64> {
    let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log").fetch_one(&db.pool).await?;
    Ok(head.unwrap_or(0))
}

/// Entries matching `f`'s filters (its paging aside) with `after < seq <= upto`, oldest first, at
/// most `limit`: an export walks the log in chain order this way, a chunk at a time.
pub async fn chunk_after(db: &Db, f: &Filter, after: i64, upto: i64, limit: i64) -> Result<Vec<Entry>> {
    let b = Bound::new(f)?;
    let rows = b
        .bind(format!("SELECT * FROM audit_log WHERE {FILTER_SQL} AND seq > $7 AND seq <= $8 ORDER BY seq LIMIT $9"))
        .bind(after)
        .bind(upto)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(entry_from_row).collect()
}

/// The first line of a CSV export: a UTF-8 byte-order mark (for Excel) and the column names.
pub const CSV_HEADER: &str =
    "\u{feff}seq,at,kind,actor,action,target,outcome,ip,user_agent,request_id,details,hash\r\n";

/// CSV lines of entries, without the header.
pub fn csv_rows(entries: &[Entry]) -> String {
    let mut out = String::new();
    let q = crate::csv_field;
    for e in entries {
        let cells = [
            e.seq.to_string(),
            q(&e.at),
            q(&e.kind),
            q(&e.actor),
            q(&e.action),
            q(&e.target),
            q(&e.outcome),
            q(&e.ip),
            q(&e.user_agent),
            q(&e.request_id),
            q(&e.details),
            q(&e.hash),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// CSV (UTF-8 with BOM, for Excel) of entries.
pub fn to_csv(entries: &[Entry]) -> String {
    format!("{CSV_HEADER}{}", csv_rows(entries))
}

/// The newest entries (for tests and the admin API).
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<Entry>> {
    let rows =
        sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT $1").bind(limit).fetch_all(&db.pool).await?;
    rows.iter().map(entry_from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::backends;

    #[tokio::test]
    async fn anchors_are_signed_and_catch_truncation() {
        for (_d, db) in backends().await {
            let kek = medsign_crypto::wrap::Kek::generate().unwrap();
            let key = crate::custody::ensure_key(&db, &kek, "platform", medsign_crypto::KeyAlg::Sm2).await.unwrap();
            let signer = medsign_crypto::signer::KeySigner::new(key);
            assert_eq!(anchor(&db, &signer, &Witness::default()).await.unwrap(), None, "empty log");
            let ctx = Context::cli();
            for i in 0..6 {
                let t = format!("x:{i}");
                record(
                    &db,
                    &ctx,
                    &Event {
                        kind: Kind::Admin,
                        action: "t",
                        target: &t,
                        outcome: "ok",
                        details: serde_json::json!({}),
                    },
                )
                .await
                .unwrap();
                if i == 3 {
                    assert_eq!(anchor(&db, &signer, &Witness::default()).await.unwrap(), Some(4));
                }
            }
            assert_eq!(anchor(&db, &signer, &Witness::default()).await.unwrap(), Some(6));
            assert_eq!(anchor(&db, &signer, &Witness::default()).await.unwrap(), None, "nothing new");
            let r = verify_chain(&db).await.unwrap();
            assert_eq!((r.entries, r.anchors, r.broken.clone()), (6, 2, None));
            // cut the tail: the chain alone is still consistent, the anchor is not
            sqlx::query("DELETE FROM audit_log WHERE seq >= 5").execute(&db.pool).await.unwrap();
            let r = verify_chain(&db).await.unwrap();
            assert_eq!(r.broken.as_ref().map(|b| b.0), Some(5), "{r:?}");
            assert!(r.broken.unwrap().1.contains("truncated"));
            // a forged anchor signature
            sqlx::query("DELETE FROM audit_anchors WHERE seq = 6").execute(&db.pool).await.unwrap();
            assert!(verify_chain(&db).await.unwrap().broken.is_none());
            sqlx::query("UPDATE audit_anchors SET signature = '3006020101020101' WHERE seq = 4")
                .execute(&db.pool)
                .await
                .unwrap();
            assert!(verify_chain(&db).await.unwrap().broken.unwrap().1.contains("signature"));
        }
    }

    async fn entries(db: &Db, n: usize) {
        for i in 0..n {
            let t = format!("x:{i}");
            let ev =
                Event { kind: Kind::Admin, action: "t", target: &t, outcome: "ok", details: serde_json::json!({}) };
            record(db, &Context::cli(), &ev).await.unwrap();
        }
    }

    /// Issue #15: anchors are chained, so deleting the entries after an anchor *and* that anchor
    /// (while a later one remains) is caught; deleting the tail of both — or emptying the log and
    /// the anchors — is caught against the witness file every anchor was also written to.
    #[tokio::test]
    async fn anchors_are_chained_and_a_witness_catches_a_cut_of_both() {
        for (d, db) in backends().await {
            let dir = d.unwrap_or_else(|| tempfile::tempdir().unwrap());
            let witness = Witness { file: Some(dir.path().join("witness.jsonl")), syslog: false };
            let kek = medsign_crypto::wrap::Kek::generate().unwrap();
            let key = crate::custody::ensure_key(&db, &kek, "platform", medsign_crypto::KeyAlg::Sm2).await.unwrap();
            let signer = medsign_crypto::signer::KeySigner::new(key);
            for _ in 0..3 {
                entries(&db, 2).await;
                anchor(&db, &signer, &witness).await.unwrap().unwrap();
            }
            let seen = std::fs::read_to_string(witness.file.as_ref().unwrap()).unwrap();
            assert_eq!(seen.lines().count(), 3);
            assert_eq!(verify_witness(&db, &seen).await.unwrap(), (3, None));
            assert_eq!(verify_chain(&db).await.unwrap().anchors, 3);
            // an anchor deleted while a later one remains: the chain of anchors shows the gap
            sqlx::query("DELETE FROM audit_anchors WHERE id = 2").execute(&db.pool).await.unwrap();
            let r = verify_chain(&db).await.unwrap();
            assert!(r.broken.as_ref().unwrap().1.contains("anchor 2 is missing"), "{r:?}");
            // the tail of both: the database alone looks whole, the witness does not
            sqlx::query("DELETE FROM audit_anchors WHERE id >= 2").execute(&db.pool).await.unwrap();
            sqlx::query("DELETE FROM audit_log WHERE seq > 2").execute(&db.pool).await.unwrap();
            assert_eq!(verify_chain(&db).await.unwrap().broken, None);
            let (_, problem) = verify_witness(&db, &seen).await.unwrap();
            assert!(problem.unwrap().1.contains("anchor 2 is not in the database"));
            // everything emptied
            sqlx::query("DELETE FROM audit_anchors").execute(&db.pool).await.unwrap();
            sqlx::query("DELETE FROM audit_log").execute(&db.pool).await.unwrap();
            assert_eq!(verify_chain(&db).await.unwrap().broken, None, "an empty database looks new");
            assert!(verify_witness(&db, &seen).await.unwrap().1.is_some());
            // a forged witness line is refused, not believed
            let forged = seen.lines().next().unwrap().replace("\"seq\":2", "\"seq\":9");
            assert!(verify_witness(&db, &forged).await.unwrap().1.unwrap().1.contains("bad signature"));
        }
    }

    #[tokio::test]
    async fn chain_verifies_and_any_edit_breaks_it_at_that_row() {
        for (_d, db) in backends().await {
            let ctx = Context { actor: "app:test".into(), ..Default::default() };
            for i in 0..25 {
                let target = format!("user:{i}");
                record(
                    &db,
                    &ctx,
                    &Event {
                        kind: Kind::DataMaintenance,
                        action: "user.create",
                        target: &target,
                        outcome: "ok",
                        details: serde_json::json!({"i": i}),
                    },
                )
                .await
                .unwrap();
            }
            let r = verify_chain(&db).await.unwrap();
            assert_eq!((r.entries, r.broken.clone()), (25, None));
            // edit row 13
            sqlx::query("UPDATE audit_log SET target = 'user:999' WHERE seq = 13").execute(&db.pool).await.unwrap();
            let r = verify_chain(&db).await.unwrap();
            assert_eq!(r.broken.as_ref().unwrap().0, 13);
            assert_eq!(r.entries, 12);
            // restore it, delete row 20
            sqlx::query("UPDATE audit_log SET target = 'user:12' WHERE seq = 13").execute(&db.pool).await.unwrap();
            assert_eq!(verify_chain(&db).await.unwrap().broken, None);
            sqlx::query("DELETE FROM audit_log WHERE seq = 20").execute(&db.pool).await.unwrap();
            assert_eq!(verify_chain(&db).await.unwrap().broken.unwrap().0, 21);
            // query with filters and paging; CSV export
            let (hits, total) =
                query(&db, &Filter { target: Some("user:7".into()), ..Default::default() }).await.unwrap();
            assert_eq!((hits.len(), total, hits[0].seq), (1, 1, 8));
            let (page, total) =
                query(&db, &Filter { page: Some(2), page_size: Some(10), ..Default::default() }).await.unwrap();
            assert_eq!((page.len(), total, page[0].seq), (10, 24, 14)); // seq 20 was deleted above
            let future = Filter { from: Some("2999-01-01T00:00:00Z".into()), ..Default::default() };
            assert_eq!(query(&db, &future).await.unwrap().1, 0);
            assert!(query(&db, &Filter { kind: Some("gossip".into()), ..Default::default() }).await.is_err());
            assert!(query(&db, &Filter { from: Some("yesterday".into()), ..Default::default() }).await.is_err());
            let csv = to_csv(&hits);
            assert!(csv.starts_with("\u{feff}seq,at,kind") && csv.contains("\"user:7\""), "{csv}");
            // an export walks every match oldest first, a chunk at a time: nothing skipped or repeated
            let (mut walked, mut after) = (Vec::new(), 0);
            assert_eq!(head_seq(&db).await.unwrap(), 25);
            loop {
                let chunk = chunk_after(&db, &Filter::default(), after, 25, 7).await.unwrap();
                let Some(last) = chunk.last() else { break };
                after = last.seq;
                walked.extend(chunk.iter().map(|e| e.seq));
            }
            assert_eq!(walked, (1..=25).filter(|s| *s != 20).collect::<Vec<_>>());
            let mine = chunk_after(&db, &Filter { target: Some("user:7".into()), ..Default::default() }, 0, 25, 7)
                .await
                .unwrap();
            assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [8]);
            // what is written after the export began is not in it
            assert_eq!(chunk_after(&db, &Filter::default(), 0, 5, 7).await.unwrap().len(), 5);
            assert!(
                chunk_after(&db, &Filter { kind: Some("gossip".into()), ..Default::default() }, 0, 25, 7)
                    .await
                    .is_err()
            );
        }
    }

    #[test]
    fn csv_export_neutralises_formulas_from_any_field() {
        // user agents and targets come from unauthenticated requests
        let e = Entry {
            seq: 1,
            at: "2026-01-01T00:00:00.000Z".into(),
            kind: "auth".into(),
            actor: "-".into(),
            action: "login".into(),
            target: "@SUM(1+1)*cmd|' /C calc'!A0".into(),
            outcome: "error".into(),
            ip: "127.0.0.1".into(),
            user_agent: "=HYPERLINK(\"http://evil.invalid\",\"x\")".into(),
            request_id: "+1".into(),
            details: "\t=1".into(),
            prev_hash: String::new(),
            hash: "00".into(),
        };
        let csv = to_csv(&[e]);
        let row = csv.lines().nth(1).unwrap();
        for cell in ["\"'-\"", "\"'@SUM", "\"'=HYPERLINK", "\"'+1\"", "\"'\t=1\""] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        assert!(!row.contains(",\"=") && !row.contains(",\"@") && !row.contains(",\"+"), "{row}");
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcdef", 5), "ab…");
        for n in 0..12 {
            let c = clip("张三李四王五", n);
            assert!(c.len() <= n.max('…'.len_utf8()), "{n}: {c}");
        }
        assert_eq!(clip("张三李四王五", 9), "张三…");
        assert_eq!(clip("张三李四王五", 8), "张…");
    }

    #[tokio::test]
    async fn oversized_fields_are_clipped_where_entries_are_written() {
        for (_d, db) in backends().await {
            // what an unauthenticated client controls: user agent, request id, a login name
            let ctx = Context {
                actor: format!("user:{}", "张".repeat(100_000)),
                ip: "10.0.0.1".into(),
                user_agent: "Mozilla/5.0 ".repeat(50_000),
                request_id: "r".repeat(70_000),
            };
            let target = "目".repeat(100_000);
            let details = serde_json::json!({"error": "错".repeat(1_000_000)});
            let e = record(
                &db,
                &ctx,
                &Event { kind: Kind::Login, action: "login", target: &target, outcome: "refused", details },
            )
            .await
            .unwrap();
            assert!(e.actor.len() <= MAX_FIELD_BYTES && e.actor.ends_with('…'), "{}", e.actor.len());
            assert!(e.target.len() <= MAX_FIELD_BYTES && e.target.starts_with('目'));
            assert!(e.request_id.len() <= MAX_FIELD_BYTES);
            assert!(e.user_agent.len() <= MAX_USER_AGENT_BYTES && e.user_agent.starts_with("Mozilla/5.0"));
            assert!(e.details.len() <= MAX_DETAILS_BYTES, "{}", e.details.len());
            let d: serde_json::Value = serde_json::from_str(&e.details).expect("still JSON");
            assert_eq!(d["truncated"], true);
            // what is stored is what was hashed
            let stored = recent(&db, 1).await.unwrap().remove(0);
            assert_eq!(stored, e);
            assert_eq!(verify_chain(&db).await.unwrap().broken, None);
        }
    }
}
