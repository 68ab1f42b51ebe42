//! The audit log (R1.7): append-only, and every entry carries `hash = SM3(prev_hash ‖ canonical
//! encoding of the entry)`, written in the same transaction as the change it records. Editing,
//! deleting or inserting a row breaks the chain at that row; `medsign audit verify` finds it.
//! (Signed, timestamped anchors of the chain head — which also catch truncation — come with the
//! TSA issue.)

use crate::{Result, db::Db};
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

/// Append an event inside the caller's transaction (hold `Db::write_lock` around it). Returns
/// the stored entry.
pub async fn append(conn: &mut AnyConnection, ctx: &Context, ev: &Event<'_>) -> Result<Entry> {
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
        actor: ctx.actor.clone(),
        action: ev.action.into(),
        target: ev.target.into(),
        outcome: ev.outcome.into(),
        ip: ctx.ip.clone(),
        user_agent: ctx.user_agent.clone(),
        request_id: ctx.request_id.clone(),
        details: ev.details.to_string(),
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

/// Sign the current chain head with the platform key (skipped when nothing was appended since
/// the last anchor). Returns the anchored sequence number, if an anchor was written.
pub async fn anchor(db: &Db, signer: &dyn medsign_crypto::Signer) -> Result<Option<i64>> {
    let _w = db.write_lock.lock().await;
    let head =
        sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&db.pool).await?;
    let Some(head) = head else { return Ok(None) };
    let (seq, hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_anchors").fetch_one(&db.pool).await?;
    if last == Some(seq) {
        return Ok(None);
    }
    let id: i64 = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM audit_anchors")
        .fetch_one(&db.pool)
        .await?
        .unwrap_or(0)
        + 1;
    let at = crate::now_text();
    let sig = signer.sign(&anchor_message(seq, &hash, &at))?;
    sqlx::query("INSERT INTO audit_anchors (id, at, seq, head_hash, signature) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(&at)
        .bind(seq)
        .bind(&hash)
        .bind(hex::encode(sig))
        .execute(&db.pool)
        .await?;
    Ok(Some(seq))
}

/// Check every anchor against the chain: signature by `platform` and the entry it names.
/// Returns the first problem as (seq, reason).
async fn check_anchors(
    db: &Db,
    platform: &medsign_crypto::PublicKey,
    entries: i64,
) -> Result<(i64, Option<(i64, String)>)> {
    let rows =
        sqlx::query("SELECT seq, head_hash, at, signature FROM audit_anchors ORDER BY id").fetch_all(&db.pool).await?;
    let mut n = 0;
    for r in &rows {
        let (seq, head, at, sig): (i64, String, String, String) =
            (r.try_get("seq")?, r.try_get("head_hash")?, r.try_get("at")?, r.try_get("signature")?);
        let sig_ok = hex::decode(&sig)
            .ok()
            .map(|s| platform.verify(platform.default_scheme(), &anchor_message(seq, &head, &at), &s, None).is_ok())
            .unwrap_or(false);
        if !sig_ok {
            return Ok((n, Some((seq, "锚点签名无效 / the anchor's signature does not verify".into()))));
        }
        if seq > entries {
            return Ok((
                n,
                Some((
                    entries + 1,
                    format!("日志被截断：锚点记录到第 {seq} 条 / the log was truncated: an anchor covers entry {seq}"),
                )),
            ));
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1").bind(seq).fetch_optional(&db.pool).await?;
        if stored.as_deref() != Some(head.as_str()) {
            return Ok((n, Some((seq, "与已签名的锚点不符 / differs from the signed anchor".into()))));
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

/// Entries matching `f`, newest first, and how many match in all.
pub async fn query(db: &Db, f: &Filter) -> Result<(Vec<Entry>, i64)> {
    let (size, offset) = crate::paging(f.page, f.page_size, 100, 1000)?;
    let norm = |t: &Option<String>, name: &str| -> Result<Option<String>> {
        t.as_deref()
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|d| d.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .map_err(|_| {
                        crate::Error::Invalid(format!("{name} 须为 RFC 3339 时间 / {name} must be an RFC 3339 instant"))
                    })
            })
            .transpose()
    };
    let (from, to) = (norm(&f.from, "from")?, norm(&f.to, "to")?);
    if let Some(k) = &f.kind
        && !["login", "signing", "data_maintenance", "admin"].contains(&k.as_str())
    {
        return Err(crate::Error::Invalid(format!(
            "未知类别 '{k}' / unknown kind (login, signing, data_maintenance, admin)"
        )));
    }
    let filter = "($1 IS NULL OR kind = $1) AND ($2 IS NULL OR actor = $2) AND ($3 IS NULL OR action = $3) \
                  AND ($4 IS NULL OR target = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM audit_log WHERE {filter}")))
        .bind(&f.kind)
        .bind(&f.actor)
        .bind(&f.action)
        .bind(&f.target)
        .bind(&from)
        .bind(&to)
        .fetch_one(&db.pool)
        .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM audit_log WHERE {filter} ORDER BY seq DESC LIMIT $7 OFFSET $8"
    )))
    .bind(&f.kind)
    .bind(&f.actor)
    .bind(&f.action)
    .bind(&f.target)
    .bind(&from)
    .bind(&to)
    .bind(size)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    Ok((rows.iter().map(entry_from_row).collect::<Result<_>>()?, total))
}

/// CSV (UTF-8 with BOM, for Excel) of entries.
pub fn to_csv(entries: &[Entry]) -> String {
    let mut out =
        String::from("\u{feff}seq,at,kind,actor,action,target,outcome,ip,user_agent,request_id,details,hash\r\n");
    let q = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
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
            assert_eq!(anchor(&db, &signer).await.unwrap(), None, "empty log");
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
                    assert_eq!(anchor(&db, &signer).await.unwrap(), Some(4));
                }
            }
            assert_eq!(anchor(&db, &signer).await.unwrap(), Some(6));
            assert_eq!(anchor(&db, &signer).await.unwrap(), None, "nothing new");
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
        }
    }
}
