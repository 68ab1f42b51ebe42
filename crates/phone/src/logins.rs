//! Scan-to-login (issue #7; R2.5, R3.3). A hospital system asks for a login
//! ticket and shows its QR (`<public_url>/m/#/login?t=<ticket>`); a bound phone scans it and sees
//! which system asks; on confirmation the phone co-signs a login assertion — the ticket, system,
//! the system's challenge, the user and the time, as canonical JSON — through the ordinary two-party
//! signing rounds (it is a one-signer data flow owned by the system, so it is timestamped and
//! verifiable with `POST /api/v1/verify/data`). The ticket then carries the assertion, and the audit
//! log gets a login entry holding the signature. One scan per ticket; refusals are audited.
//!
//! States: `waiting → scanned → confirmed`, or `refused` (the user declined) / `expired`.

use crate::{
    cosign::{self, Round, Target},
    mobile::Session,
};
use base64::Engine;
use chrono::{Duration, Utc};
use medsign_ca::ca::BuiltinCas;
use medsign_crypto::wrap::Kek;
use medsign_signing::flows;
use medsign_signing::{
    flows::Signing,
    seams::{BoxFuture, FlowEvents, NoGrants},
};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use medsign_store::{is_past, secs_text};
use medsign_tsa::tsa::Tsa;
use serde::Serialize;
use sqlx::Row;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Default lifetime of a login ticket.
pub const DEFAULT_TTL_SECONDS: u32 = 120;

/// The deep link a login ticket's QR code holds: into the H5 app at `app_base` (ending in `/`).
pub fn deep_link(app_base: &str, id: &str) -> String {
    format!("{app_base}#/login?t={id}")
}

/// The signed login assertion.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Assertion {
    /// who logged in
    pub employee_no: String,
    /// the certificate that verifies the signature
    pub cert_serial: String,
    /// when the phone confirmed (RFC 3339)
    pub signed_at: String,
    /// the signed bytes (canonical JSON: type, ticket, system, challenge, employee_no, time), base64
    pub data_base64: String,
    /// CMS SignedData (detached, SM2 two-party, timestamped), base64 — check it with
    /// `POST /api/v1/verify/data {signature, data}`
    pub signature_base64: String,
    /// the signing flow that holds it
    pub flow_id: String,
}

/// A login ticket as the hospital system sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct LoginView {
    /// ticket id
    pub ticket_id: String,
    /// `waiting` | `scanned` | `confirmed` | `refused` | `expired`
    pub state: String,
    /// the system name the phone shows
    pub system: String,
    /// the system's challenge, signed into the assertion
    pub challenge: String,
    /// RFC 3339
    pub expires_at: String,
    /// who scanned it
    pub employee_no: Option<String>,
    /// when confirmed
    pub assertion: Option<Assertion>,
    /// what the QR code holds (on creation)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deep_link: Option<String>,
    /// the QR code as PNG, base64 (on creation)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_png_base64: Option<String>,
    /// the QR code as SVG (on creation)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
}

impl LoginView {
    /// No further change will come.
    pub fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "confirmed" | "refused" | "expired")
    }
}

/// Open a login ticket for `app_id` (the system name shown on the phone defaults to the app's
/// name; the challenge, if not given, is 128 random bits).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &Db,
    ctx: &Context,
    app_base: &str,
    app_id: &str,
    system: &str,
    challenge: Option<&str>,
    ttl_seconds: Option<u32>,
) -> Result<LoginView> {
    let ttl = ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(30..=600).contains(&ttl) {
        return Err(Error::Invalid("ttl_seconds 须为 30–600 / ttl_seconds must be 30-600".into()));
    }
    let system = system.trim();
    if system.is_empty() || system.chars().count() > 100 {
        return Err(Error::Invalid("system 须为 1–100 字 / system must have 1-100 characters".into()));
    }
    let challenge = match challenge {
        Some(c) if c.is_empty() || c.len() > 256 || c.chars().any(char::is_control) => {
            return Err(Error::Invalid(
                "challenge 须为 1–256 个可见字符 / challenge must be 1-256 printable characters".into(),
            ));
        }
        Some(c) => c.to_string(),
        None => hex::encode(medsign_crypto::rng::bytes::<16>()?),
    };
    let id = format!("lt_{}", hex::encode(medsign_crypto::rng::bytes::<16>()?));
    let expires = secs_text(Utc::now() + Duration::seconds(ttl.into()));
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO login_tickets (id, app_id, system, challenge, state, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'waiting', $5, $6, $6)",
    )
    .bind(&id)
    .bind(app_id)
    .bind(system)
    .bind(&challenge)
    .bind(&expires)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Login,
        "login.ticket",
        &format!("login:{}", &id[..11]),
        serde_json::json!({"system": system}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    let link = deep_link(app_base, &id);
    let (png, svg) = medsign_signing::tickets::qr(&link)?;
    Ok(LoginView {
        ticket_id: id,
        state: "waiting".into(),
        system: system.into(),
        challenge,
        expires_at: expires,
        employee_no: None,
        assertion: None,
        deep_link: Some(link),
        qr_png_base64: Some(png),
        qr_svg: Some(svg),
    })
}

/// A login ticket of `app_id` (another app's: not found).
pub async fn get(db: &Db, app_id: Option<&str>, id: &str) -> Result<LoginView> {
    let not_found = || Error::NotFound(format!("登录票据 {id} 不存在 / no login ticket {id}"));
    let r = sqlx::query("SELECT * FROM login_tickets WHERE id = $1").bind(id).fetch_optional(&db.pool).await?;
    let r = r.ok_or_else(not_found)?;
    medsign_store::check_owner(app_id, &r.try_get::<String, _>("app_id")?, not_found)?;
    let mut state: String = r.try_get("state")?;
    let expires: String = r.try_get("expires_at")?;
    if (state == "waiting" || state == "scanned") && is_past(&expires) {
        state = "expired".into();
    }
    let flow_id: Option<String> = r.try_get("flow_id")?;
    let employee_no: Option<String> = r.try_get("employee_no")?;
    let assertion = match (state.as_str(), &flow_id, &employee_no) {
        ("confirmed", Some(f), Some(no)) => {
            let flow = flows::get(db, None, f).await?;
            let signature = flows::signature_bytes(db, None, f).await?;
            let data: String = sqlx::query_scalar("SELECT content_b64 FROM sign_flows WHERE id = $1")
                .bind(f)
                .fetch_one(&db.pool)
                .await?;
            let signer = flow.signers.first();
            Some(Assertion {
                employee_no: no.clone(),
                cert_serial: signer.and_then(|s| s.cert_serial.clone()).unwrap_or_default(),
                signed_at: signer.and_then(|s| s.signed_at.clone()).unwrap_or_default(),
                data_base64: data,
                signature_base64: B64.encode(signature),
                flow_id: f.clone(),
            })
        }
        _ => None,
    };
    Ok(LoginView {
        ticket_id: r.try_get("id")?,
        state,
        system: r.try_get("system")?,
        challenge: r.try_get("challenge")?,
        expires_at: expires,
        employee_no,
        assertion,
        deep_link: None,
        qr_png_base64: None,
        qr_svg: None,
    })
}

/// The phone that scanned login ticket `id` (its device id), if one did.
pub async fn scanned_by(db: &Db, id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar::<_, Option<String>>("SELECT device_id FROM login_tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .flatten())
}

/// What the phone shows after scanning, with the signing round for the assertion.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Scanned {
    /// which system asks
    pub system: String,
    /// its challenge
    pub challenge: String,
    /// RFC 3339
    pub expires_at: String,
    /// sign it (answers + signatures) to confirm the login
    pub round: Round,
}

/// The bytes a login assertion signs: fixed-order JSON.
fn assertion_bytes(ticket: &str, system: &str, challenge: &str, employee_no: &str, time: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct A<'a> {
        r#type: &'a str,
        ticket: &'a str,
        system: &'a str,
        challenge: &'a str,
        employee_no: &'a str,
        time: &'a str,
    }
    serde_json::to_vec(&A { r#type: "medsign.login.v1", ticket, system, challenge, employee_no, time })
        .unwrap_or_default()
}

async fn refused(db: &Db, ctx: &Context, id: &str, e: Error) -> Error {
    let target = format!("login:{}", id.chars().take(11).collect::<String>());
    audit::refused(db, ctx, Kind::Login, "login.scan", &target, e).await
}

/// The phone scanned login ticket `id`: once, before it expires, by a phone with a signing key.
#[allow(clippy::too_many_arguments)]
pub async fn scan(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    organization: &str,
    tsa: &Tsa,
    ctx: &Context,
    s: &Session,
    id: &str,
) -> Result<Scanned> {
    let row = sqlx::query("SELECT * FROM login_tickets WHERE id = $1").bind(id).fetch_optional(&db.pool).await?;
    let invalid =
        |why: &str| Error::Invalid(format!("登录二维码无效（{why}）/ the login QR code is not valid ({why})"));
    let Some(row) = row else {
        return Err(refused(db, ctx, id, invalid("unknown")).await);
    };
    let state: String = row.try_get("state")?;
    let expires: String = row.try_get("expires_at")?;
    if state != "waiting" {
        return Err(refused(db, ctx, id, invalid("already used")).await);
    }
    if is_past(&expires) {
        return Err(refused(db, ctx, id, invalid("expired")).await);
    }
    cosign::active_key(db, s).await?;
    let now = medsign_store::now_text();
    {
        let _w = db.write_lock.lock().await;
        let done = sqlx::query(
            "UPDATE login_tickets SET state = 'scanned', employee_no = $1, device_id = $2, updated_at = $3 WHERE id = $4 AND state = 'waiting'",
        )
        .bind(&s.employee_no)
        .bind(&s.device_id)
        .bind(&now)
        .bind(id)
        .execute(&db.pool)
        .await?;
        if done.rows_affected() != 1 {
            drop(_w);
            return Err(refused(db, ctx, id, invalid("already used")).await);
        }
    }
    let app_id: String = row.try_get("app_id")?;
    let system: String = row.try_get("system")?;
    let challenge: String = row.try_get("challenge")?;
    let data = assertion_bytes(id, &system, &challenge, &s.employee_no, &now);
    let nf: flows::NewFlow = serde_json::from_value(serde_json::json!({
        "kind": "data", "title": format!("扫码登录 {system}"), "content_base64": B64.encode(&data),
        "signers": [{"employee_no": s.employee_no, "mode": "scan"}], "expires_in_minutes": 10,
    }))
    .map_err(|e| Error::internal_from("logins::scan", e))?;
    let flow = flows::create(
        &Signing { db, kek, cas, organization, tsa, grants: &NoGrants, pades_level: Default::default() },
        ctx,
        &app_id,
        &nf,
        4096,
    )
    .await?;
    sqlx::query("UPDATE login_tickets SET flow_id = $1 WHERE id = $2")
        .bind(&flow.id)
        .bind(id)
        .execute(&db.pool)
        .await?;
    let mut rounds = cosign::start(db, kek, ctx, s, &[Target { ticket: None, flow_id: Some(flow.id) }]).await?;
    Ok(Scanned { system, challenge, expires_at: expires, round: rounds.remove(0) })
}

/// The user declined the login on the phone.
pub async fn refuse(db: &Db, ctx: &Context, s: &Session, id: &str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let done = sqlx::query(
        "UPDATE login_tickets SET state = 'refused', updated_at = $1 WHERE id = $2 AND device_id = $3 AND state = 'scanned'",
    )
    .bind(medsign_store::now_text())
    .bind(id)
    .bind(&s.device_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(Error::Conflict("没有待确认的登录 / no login of this phone is waiting for confirmation".into()));
    }
    let target = format!("login:{}", id.chars().take(11).collect::<String>());
    let ev = audit::Event {
        kind: Kind::Login,
        action: "login.qr",
        target: &target,
        outcome: "refused",
        details: serde_json::json!({"user": s.employee_no, "by": "user"}),
    };
    audit::append(&mut tx, ctx, &ev).await?;
    tx.commit().await?;
    Ok(())
}

/// Scan-to-login listening to flow events ([`FlowEvents`]): wired by the server.
pub struct LoginEvents;

impl FlowEvents for LoginEvents {
    fn completed<'a>(&'a self, db: &'a Db, ctx: &'a Context, flow_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(on_flow_completed(db, ctx, flow_id))
    }
}

/// Called when a flow completes: if it is a login assertion, the ticket is confirmed and the
/// login is logged with its signature.
async fn on_flow_completed(db: &Db, ctx: &Context, flow_id: &str) -> Result<()> {
    let row = sqlx::query("SELECT id, employee_no, system FROM login_tickets WHERE flow_id = $1 AND state = 'scanned'")
        .bind(flow_id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(()) };
    let id: String = row.try_get("id")?;
    let signature = flows::signature_bytes(db, None, flow_id).await?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE login_tickets SET state = 'confirmed', updated_at = $1 WHERE id = $2 AND state = 'scanned'")
        .bind(medsign_store::now_text())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Login,
        "login.qr",
        &format!("login:{}", &id[..11]),
        serde_json::json!({
            "user": row.try_get::<Option<String>, _>("employee_no")?,
            "system": row.try_get::<String, _>("system")?,
            "flow": flow_id,
            "signature_sm3": hex::encode(medsign_crypto::hash::sm3(&signature)),
            "signature": B64.encode(&signature),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::{
        Answer, Finish,
        tests::{e_of, phone},
    };
    use medsign_testkit::{
        db::backends,
        hospital::{ORG, World, add_staff, sign_app, staff, world},
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_phone_scans_confirms_and_the_system_gets_a_signed_assertion() {
        for (_d, db) in backends().await {
            let World { kek, ctx, cas, tsa } = world(&db).await;
            let org = ORG;
            let (app, _) = sign_app(&db, &kek, "HIS").await;
            add_staff(&db, &kek, &[staff("3001", "赵医生")]).await;
            let (me, share) = phone(&db, &kek, &cas, "3001").await;
            let t = create(&db, &ctx, "https://his.example/m/", &app.app_id, "门诊医生站", Some("nonce-42"), None)
                .await
                .unwrap();
            assert!(t.deep_link.as_deref().unwrap().starts_with("https://his.example/m/#/login?t=lt_"));
            assert!(t.qr_svg.as_deref().unwrap().contains("<svg"));
            assert_eq!(get(&db, Some(&app.app_id), &t.ticket_id).await.unwrap().state, "waiting");
            assert!(matches!(get(&db, Some("app_other"), &t.ticket_id).await, Err(Error::NotFound(_))));
            let sc = scan(&db, &kek, &cas, org, &tsa, &ctx, &me, &t.ticket_id).await.unwrap();
            assert_eq!((sc.system.as_str(), sc.challenge.as_str()), ("门诊医生站", "nonce-42"));
            // a second scan (another phone, or a replay) is refused
            let again = scan(&db, &kek, &cas, org, &tsa, &ctx, &me, &t.ticket_id).await.unwrap_err();
            assert!(again.to_string().contains("already used"), "{again}");
            let v = get(&db, Some(&app.app_id), &t.ticket_id).await.unwrap();
            assert_eq!((v.state.as_str(), v.employee_no.as_deref()), ("scanned", Some("3001")));
            // the phone confirms: the assertion is co-signed like any document
            let (session, req) = share.begin_sign(&e_of(&sc.round)).unwrap();
            let a = Answer { round_id: sc.round.round_id.clone(), request: req };
            crate::approvals::tests::approve_rounds(&db, &kek, &me, &[&sc.round]).await;
            let resp = cosign::answer(&db, &kek, &ctx, &me, &[a]).await.unwrap();
            let sig = session.finish(&resp[0]).unwrap();
            let fin = Finish { round_id: sc.round.round_id.clone(), signature: hex::encode(sig.to_der()) };
            cosign::finish(
                &Signing {
                    db: &db,
                    kek: &kek,
                    cas: &cas,
                    organization: org,
                    tsa: &tsa,
                    grants: &crate::grants::Grants,
                    pades_level: Default::default(),
                },
                &LoginEvents,
                &ctx,
                &me,
                &[fin],
            )
            .await
            .unwrap();
            let v = get(&db, Some(&app.app_id), &t.ticket_id).await.unwrap();
            assert_eq!(v.state, "confirmed");
            let a = v.assertion.unwrap();
            let data = B64.decode(&a.data_base64).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(json["type"], "medsign.login.v1");
            assert_eq!((json["employee_no"].as_str(), json["challenge"].as_str()), (Some("3001"), Some("nonce-42")));
            let rep =
                flows::verify_data(&db, &cas, &B64.decode(&a.signature_base64).unwrap(), Some(&data)).await.unwrap();
            assert!(rep.is_valid(), "{rep:#?}");
            assert!(rep.signers[0].timestamp.as_ref().is_some_and(|t| t.ok()));
            let logged: String = sqlx::query_scalar(
                "SELECT details FROM audit_log WHERE action = 'login.qr' AND outcome = 'ok' ORDER BY seq DESC LIMIT 1",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert!(logged.contains(&a.signature_base64[..40]), "the login log carries the signature");
            // declined on the phone; an expired ticket; an unknown one
            let t2 = create(&db, &ctx, "https://his.example/m/", &app.app_id, "LIS", None, Some(60)).await.unwrap();
            assert_eq!(t2.challenge.len(), 32);
            scan(&db, &kek, &cas, org, &tsa, &ctx, &me, &t2.ticket_id).await.unwrap();
            refuse(&db, &ctx, &me, &t2.ticket_id).await.unwrap();
            assert_eq!(get(&db, None, &t2.ticket_id).await.unwrap().state, "refused");
            assert!(matches!(refuse(&db, &ctx, &me, &t2.ticket_id).await, Err(Error::Conflict(_))));
            let t3 = create(&db, &ctx, "https://his.example/m/", &app.app_id, "PACS", None, None).await.unwrap();
            sqlx::query("UPDATE login_tickets SET expires_at = '2020-01-01T00:00:00Z' WHERE id = $1")
                .bind(&t3.ticket_id)
                .execute(&db.pool)
                .await
                .unwrap();
            assert_eq!(get(&db, None, &t3.ticket_id).await.unwrap().state, "expired");
            let e = scan(&db, &kek, &cas, org, &tsa, &ctx, &me, &t3.ticket_id).await.unwrap_err();
            assert!(e.to_string().contains("expired"), "{e}");
            let e = scan(&db, &kek, &cas, org, &tsa, &ctx, &me, "lt_nope").await.unwrap_err();
            assert!(e.to_string().contains("unknown"), "{e}");
            // bad input
            assert!(create(&db, &ctx, "x", &app.app_id, "", None, None).await.is_err());
            assert!(create(&db, &ctx, "x", &app.app_id, "HIS", Some(""), None).await.is_err());
            assert!(create(&db, &ctx, "x", &app.app_id, "HIS", None, Some(5)).await.is_err());
            let refusals: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'login.scan' AND outcome = 'refused'",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(refusals, 3);
        }
    }
}
