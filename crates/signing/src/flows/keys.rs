//! Who signs with which key: server custody of a staff member's key under the hospital's
//! authorization, seals, and — through the [`crate::seams::GrantSigners`] seam — a doctor's
//! two-party key under a session grant.

use super::*;

pub(super) fn key_alg(alg: &str) -> Result<KeyAlg> {
    match alg {
        "sm2" => Ok(KeyAlg::Sm2),
        "rsa" => Ok(KeyAlg::Rsa2048),
        other => Err(Error::Invalid(format!("alg 须为 sm2 或 rsa / alg must be sm2 or rsa, got '{other}'"))),
    }
}

pub(super) fn staff_key_name(employee_no: &str, alg: &str) -> String {
    format!("staff-{employee_no}-{alg}")
}

/// Authorize server custody of `employee_no`'s signing key for `alg` (hospital policy, R3.8):
/// the key is generated and wrapped under the KEK, certified through the CA channels (with a CSR
/// the server makes, so EST works too), and the authorization is recorded and audited. A user
/// who already holds an active certificate for another key of that algorithm must have it revoked
/// first.
pub async fn authorize_custody(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    employee_no: &str,
    reason: &str,
    alg: &str,
) -> Result<CertRecord> {
    let ka = key_alg(alg)?;
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::Invalid("须说明授权依据（1–500 字）/ give the reason (1-500 characters)".into()));
    }
    let user = users::get(db, kek, employee_no).await?;
    if user.status != "active" {
        return Err(Error::Invalid(format!("用户 {employee_no} 已停用 / user {employee_no} is disabled")));
    }
    let key = KeySigner::new(custody::ensure_key(db, kek, &staff_key_name(employee_no, alg), ka).await?);
    let family = alg; // key_alg() above accepted only sm2 | rsa, the certificate families
    let active = active_certs(db, employee_no, family).await?;
    let rec = match active.into_iter().next() {
        Some(c) => {
            let cert = Cert::load_all(c.certificate_pem.as_bytes())
                .map_err(|e| Error::internal_from("flows::keys::authorize_custody", e))?
                .remove(0);
            if cert.public_key().ok() != Some(key.public_key()) {
                return Err(Error::Conflict(format!(
                    "用户已有另一把密钥的 {family} 证书 {}，请先吊销 / the user holds a {family} certificate {} for another key; revoke it first",
                    c.serial, c.serial
                )));
            }
            c
        }
        None => {
            let req = csr::build(
                &parse_dn("CN=medsign server custody")
                    .map_err(|e| Error::internal_from("flows::keys::authorize_custody", e))?,
                &key,
            )
            .map_err(|e| Error::internal_from("flows::keys::authorize_custody", e))?;
            certs::issue_for_user(db, kek, issuer, ctx, employee_no, &req).await?
        }
    };
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM staff_custody WHERE employee_no = $1").bind(employee_no).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO staff_custody (employee_no, granted_by, reason, created_at) VALUES ($1, $2, $3, $4)")
        .bind(employee_no)
        .bind(&ctx.actor)
        .bind(reason.trim())
        .bind(medsign_store::now_text())
        .execute(&mut *tx)
        .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "custody.authorize",
        &format!("user:{employee_no}"),
        serde_json::json!({"alg": alg, "reason": reason.trim(), "certificate": rec.serial}),
    )
    .await?;
    tx.commit().await?;
    Ok(rec)
}

/// The active certificates of `employee_no` for a key family.
pub(super) async fn active_certs(db: &Db, employee_no: &str, family: &str) -> Result<Vec<CertRecord>> {
    let q = certs::ListQuery {
        employee_no: Some(employee_no.into()),
        status: Some("active".into()),
        alg: Some(family.into()),
        ..Default::default()
    };
    Ok(certs::list(db, &q).await?.0)
}

/// End server custody for `employee_no`: auto flows naming them are refused from now on.
pub async fn revoke_custody(db: &Db, ctx: &Context, employee_no: &str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let done = sqlx::query("UPDATE staff_custody SET revoked_at = $1 WHERE employee_no = $2 AND revoked_at IS NULL")
        .bind(medsign_store::now_text())
        .bind(employee_no)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("{employee_no} 没有有效的托管授权 / no active custody authorization")));
    }
    audit::ok(&mut tx, ctx, Kind::Admin, "custody.revoke", &format!("user:{employee_no}"), serde_json::json!({}))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A signer ready to sign: key, certificate, chain.
pub(super) struct Ready {
    pub(super) key: Box<dyn Signer>,
    /// how the key is held, for the record (`{"custody": "server"}`, or the grant it signs under)
    pub(super) custody: serde_json::Value,
    pub(super) cert: Cert,
    pub(super) chain: Vec<Cert>,
    /// who signs, as the visible signature shows it
    pub(super) display: String,
    /// handwriting or seal image (PNG) for the visible signature
    pub(super) image: Option<Vec<u8>>,
}

/// How a visible signature names a staff member: name and title.
pub fn staff_display(user: &users::User) -> String {
    match &user.title {
        Some(t) if !t.is_empty() => format!("{} {t}", user.name),
        _ => user.name.clone(),
    }
}

/// A staff signer who exists and is active.
pub async fn active_user(db: &Db, kek: &Kek, employee_no: &str) -> Result<users::User> {
    let user = users::get(db, kek, employee_no)
        .await
        .map_err(|_| Error::Invalid(format!("签署人 {employee_no} 不存在 / unknown signer {employee_no}")))?;
    if user.status != "active" {
        return Err(Error::Invalid(format!("签署人 {employee_no} 已停用 / signer {employee_no} is disabled")));
    }
    Ok(user)
}

/// A staff signer's key and certificate — the server-custody key under the hospital's
/// authorization, or else the user's two-party key under an active session grant to `app_id`
/// (R3.5); with `pdf`, also the handwriting a visible signature shows (data flows never read it).
pub(super) async fn staff_ready(
    s: &Signing<'_>,
    employee_no: &str,
    alg: &str,
    pdf: bool,
    app_id: &str,
) -> Result<Ready> {
    let Signing { db, kek, cas, grants, .. } = *s;
    let user = active_user(db, kek, employee_no).await?;
    let image = match pdf {
        true => medsign_directory::images::get(db, &format!("user:{employee_no}")).await?.map(|(png, _)| png),
        false => None,
    };
    let granted: Option<String> =
        sqlx::query_scalar("SELECT employee_no FROM staff_custody WHERE employee_no = $1 AND revoked_at IS NULL")
            .bind(employee_no)
            .fetch_optional(&db.pool)
            .await?;
    if granted.is_none() {
        let grant = match alg {
            "sm2" => grants.signer(db, kek, employee_no, app_id).await?,
            _ => None,
        };
        let Some(g) = grant else {
            return Err(Error::Invalid(format!(
                "签署人 {employee_no} 既未授权服务器托管签名，也没有对本系统有效的会话授权（auto 模式需要其一）/ signer {employee_no} has neither a server-custody authorization nor an active session grant for this system (auto mode needs one)"
            )));
        };
        let custody = serde_json::json!({"custody": "grant", "grant": g.grant_id, "key": g.key_id});
        let cert = g.cert.clone();
        return Ok(Ready {
            key: g.signer,
            custody,
            cert,
            chain: vec![cas.sm2.issuing.clone()],
            display: staff_display(&user),
            image,
        });
    }
    let key = KeySigner::new(custody::ensure_key(db, kek, &staff_key_name(employee_no, alg), key_alg(alg)?).await?);
    let family = alg; // key_alg() above accepted only sm2 | rsa, the certificate families
    let active = active_certs(db, employee_no, family).await?;
    let cert = active
        .iter()
        .filter_map(|c| Cert::load_all(c.certificate_pem.as_bytes()).ok()?.into_iter().next())
        .find(|c| c.public_key().ok() == Some(key.public_key()))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "签署人 {employee_no} 没有与托管密钥对应的有效 {family} 证书 / signer {employee_no} has no active {family} certificate for the custody key"
            ))
        })?;
    let h = if alg == "sm2" { &cas.sm2 } else { &cas.rsa };
    Ok(Ready {
        key: Box::new(key),
        custody: serde_json::json!({"custody": "server"}),
        cert,
        chain: vec![h.issuing.clone()],
        display: staff_display(&user),
        image,
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn seal_ready(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    organization: &str,
    ctx: &Context,
    seal: &str,
    alg: &str,
    pdf: bool,
) -> Result<Ready> {
    let department = (seal != "hospital").then_some(seal);
    // one custody read: the certificate and its key together
    let (cert, key) =
        certs::seal_signer(db, kek, cas, organization, ctx, department, alg).await.map_err(|e| match e {
            Error::NotFound(m) => Error::Invalid(m),
            other => other,
        })?;
    let h = if alg == "sm2" { &cas.sm2 } else { &cas.rsa };
    let image = match pdf {
        true => Some(medsign_directory::images::seal_image(db, ctx, organization, seal).await?),
        false => None,
    };
    let display = format!("{}（电子签章）", medsign_pki::name::common_name_or_dn(cert.subject()));
    Ok(Ready {
        key: Box::new(key),
        custody: serde_json::json!({"custody": "server"}),
        cert,
        chain: vec![h.issuing.clone()],
        display,
        image,
    })
}
