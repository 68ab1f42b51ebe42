//! Real-name checks before a phone's certificate is issued (issue #7; R2.2, R3.2, R5.5, R7.4.3).
//! A [`FaceVerifier`] proves that the person holding the phone is the staff member on record
//! (name + ID-card number from the user register):
//!
//! - [`Wechat`] — WeChat's current face-verification server flow for hospital mini programs
//!   (as WeChat documents it): the mini program's `wx.login` code becomes an openid
//!   (`/sns/jscode2session`); `POST /cityservice/face/identify/getverifyid` with the identity gives a
//!   `verify_id`; the phone runs `wx.requestFacialVerify({verifyId})`; then
//!   `POST /cityservice/face/identify/queryverifyinfo` with `cert_hash` passes iff `errcode = 0` and
//!   `verify_ret = 10000`. The access token comes from `/cgi-bin/token` and is cached.
//!   Tested against `fake`, a local stand-in written from that documentation (tests only).
//! - `dev` — a DEMO provider: only when configured, logged loudly at start, passes everyone and marks
//!   the user `verified-demo`, never `verified`.
//!
//! The same WeChat client verifies fingerprint approvals ([`Wechat::soter_verify`], see
//! [`crate::soter`]) whenever the AppID and secret are configured.
//!
//! Inside WeCom (企业微信) the mini program's `wx.qy.login` code is WeCom's: [`Wechat::wecom`] is a
//! client of WeCom's server API (token from `/cgi-bin/gettoken` with the corp ID and the
//! application's secret; `/cgi-bin/miniprogram/jscode2session` gives the corp and user ID), and
//! binding a phone can take the employee's own WeCom login besides the activation code
//! (`[realname] wecom_required`).
//!
//! With a provider configured, `POST /mobile/v1/keys/{key_id}` refuses to certify a user who has not
//! passed; with none, the hospital checks identity in person when it hands out the activation code.

use crate::mobile::Session;
use base64::Engine;
use chrono::{Duration, Utc};
use medsign_config::config::RealnameConfig;
use medsign_crypto::wrap::Kek;
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
    error::Refusal,
};
use serde::Serialize;
use sqlx::Row;
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `cert_hash` of queryverifyinfo: hex SHA-256 of `cert_type=<b64>&cert_name=<b64>&cert_no=<b64>`.
pub fn cert_hash(name: &str, id_no: &str) -> String {
    let s = Zeroizing::new(format!(
        "cert_type={}&cert_name={}&cert_no={}",
        B64.encode("IDENTITY_CARD"),
        B64.encode(name),
        B64.encode(id_no)
    ));
    hex::encode(medsign_crypto::hash::sha256(s.as_bytes()))
}

/// The WeChat face-verification client.
pub struct Wechat {
    base: String,
    /// WeCom's API rather than WeChat's (`appid` is then the corp ID)
    wecom: bool,
    appid: String,
    secret: Zeroizing<String>,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<(Zeroizing<String>, std::time::Instant)>>,
}

fn upstream(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("微信接口不可用（{what}）/ the WeChat API is unavailable ({what}): {e}"))
}

/// [`upstream`] for a failed call: without its URL, which carries the secret or the access token.
fn failed(what: &str, e: reqwest::Error) -> Error {
    upstream(what, e.without_url())
}

/// `errcode`s that say the access token is no longer good (invalid, revoked by a new one, expired).
const TOKEN_GONE: [i64; 3] = [40001, 40014, 42001];

/// `errcode`s that are the phone's doing: a login code that is invalid or already used (400); every
/// other one is the API's or the configuration's (503: the hospital's IT, not the user, must act).
const USER_CODES: [i64; 2] = [40029, 40163];

/// WeChat answers HTTP 200 with `errcode` for errors.
fn errcode(v: &serde_json::Value, what: &str, wecom: bool) -> Result<()> {
    let (zh, en) = if wecom { ("企业微信", "WeCom") } else { ("微信", "WeChat") };
    let code = v["errcode"].as_i64().unwrap_or(0);
    if code == 0 {
        return Ok(());
    }
    let msg = v["errmsg"].as_str().unwrap_or("");
    let text = format!("{zh}{what}失败（{code} {msg}）/ {en} {what} failed ({code} {msg})");
    match USER_CODES.contains(&code) {
        true => Err(Error::Invalid(text)),
        false => Err(Error::Unavailable(text)),
    }
}

impl Wechat {
    /// A client of `base` (https://api.weixin.qq.com, or a local fake in tests).
    pub fn new(base: &str, appid: &str, secret: &str) -> Result<Self> {
        let http = medsign_ca::egress::client_builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal_from("realname::new", e))?;
        Ok(Self {
            base: base.trim_end_matches('/').into(),
            wecom: false,
            appid: appid.into(),
            secret: Zeroizing::new(secret.into()),
            http,
            token: Default::default(),
        })
    }

    async fn get(&self, path: &str, query: &[(&str, &str)], what: &str) -> Result<serde_json::Value> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}{path}", self.base), query).map_err(|e| upstream(what, e))?;
        let r = self.http.get(url).send().await.map_err(|e| failed(what, e))?;
        let v: serde_json::Value = r.json().await.map_err(|e| failed(what, e))?;
        self.check(&v, what).await?;
        Ok(v)
    }

    /// The answer's `errcode`; an access token the API no longer takes is forgotten, so the next
    /// call fetches a new one instead of failing until the cached one would have expired.
    async fn check(&self, v: &serde_json::Value, what: &str) -> Result<()> {
        if v["errcode"].as_i64().is_some_and(|c| TOKEN_GONE.contains(&c)) {
            *self.token.lock().await = None;
        }
        errcode(v, what, self.wecom)
    }

    async fn access_token(&self) -> Result<Zeroizing<String>> {
        let mut t = self.token.lock().await;
        if let Some((tok, until)) = t.as_ref()
            && *until > std::time::Instant::now()
        {
            return Ok(tok.clone());
        }
        let v = match self.wecom {
            true => {
                let q = [("corpid", self.appid.as_str()), ("corpsecret", self.secret.as_str())];
                self.get("/cgi-bin/gettoken", &q, "access_token").await?
            }
            false => {
                let q = [
                    ("grant_type", "client_credential"),
                    ("appid", self.appid.as_str()),
                    ("secret", self.secret.as_str()),
                ];
                self.get("/cgi-bin/token", &q, "access_token").await?
            }
        };
        let tok =
            Zeroizing::new(v["access_token"].as_str().ok_or_else(|| upstream("access_token", "no token"))?.to_string());
        let life = v["expires_in"].as_u64().unwrap_or(7200).saturating_sub(300).max(60);
        *t = Some((tok.clone(), std::time::Instant::now() + std::time::Duration::from_secs(life)));
        Ok(tok)
    }

    async fn post(&self, path: &str, body: serde_json::Value, what: &str) -> Result<serde_json::Value> {
        let token = self.access_token().await?;
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), &[("access_token", token.as_str())])
            .map_err(|e| upstream(what, e))?;
        let r = self.http.post(url).json(&body).send().await.map_err(|e| failed(what, e))?;
        let v: serde_json::Value = r.json().await.map_err(|e| failed(what, e))?;
        self.check(&v, what).await?;
        Ok(v)
    }

    /// A client of WeCom's server API at `base` (https://qyapi.weixin.qq.com, or a local fake) for
    /// the corp `corpid` and the secret of the application the mini program belongs to.
    pub fn wecom(base: &str, corpid: &str, secret: &str) -> Result<Self> {
        Ok(Self { wecom: true, ..Self::new(base, corpid, secret)? })
    }

    /// The WeCom client `[realname]` configures (corp ID and secret), if any.
    pub fn wecom_from_config(c: &RealnameConfig) -> Result<Option<std::sync::Arc<Self>>> {
        match (&c.wecom_corpid, &c.wecom_secret) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                Ok(Some(std::sync::Arc::new(Self::wecom(&c.wecom_api_base, id, secret)?)))
            }
            _ if c.wecom_required => Err(Error::Config(
                "realname.wecom_required 需要 wecom_corpid 与 wecom_secret / wecom_required needs wecom_corpid and wecom_secret"
                    .into(),
            )),
            _ => Ok(None),
        }
    }

    /// WeCom: the user ID of a mini program `wx.qy.login` code, if it is of this corp
    /// (`/cgi-bin/miniprogram/jscode2session`); `None` for another corp's user.
    pub async fn wecom_user(&self, code: &str) -> Result<Option<String>> {
        if code.is_empty() || code.len() > 256 {
            return Err(Error::Invalid("企业微信登录码无效 / the WeCom login code is not valid".into()));
        }
        let token = self.access_token().await?;
        let q = [("access_token", token.as_str()), ("js_code", code), ("grant_type", "authorization_code")];
        let v = self.get("/cgi-bin/miniprogram/jscode2session", &q, "登录 / login").await?;
        let user = v["userid"].as_str().filter(|u| !u.is_empty());
        Ok(user.filter(|_| v["corpid"].as_str() == Some(self.appid.as_str())).map(str::to_string))
    }

    /// The openid of a mini program `wx.login` code.
    pub async fn openid(&self, code: &str) -> Result<String> {
        let q = [
            ("appid", self.appid.as_str()),
            ("secret", self.secret.as_str()),
            ("js_code", code),
            ("grant_type", "authorization_code"),
        ];
        let v = self.get("/sns/jscode2session", &q, "登录 / login").await?;
        Ok(v["openid"].as_str().ok_or_else(|| upstream("jscode2session", "no openid"))?.to_string())
    }

    /// `getverifyid`: a verification the phone then runs with `wx.requestFacialVerify`.
    pub async fn verify_id(&self, out_seq_no: &str, name: &str, id_no: &str, openid: &str) -> Result<String> {
        let body = serde_json::json!({"out_seq_no": out_seq_no, "openid": openid,
            "cert_info": {"cert_type": "IDENTITY_CARD", "cert_name": name, "cert_no": id_no}});
        let v = self.post("/cityservice/face/identify/getverifyid", body, "人脸核身 / face verification").await?;
        Ok(v["verify_id"].as_str().ok_or_else(|| upstream("getverifyid", "no verify_id"))?.to_string())
    }

    /// `POST /cgi-bin/soter/verify_signature`: whether WeChat accepts `json_signature` (the
    /// SOTER key's signature from `wx.startSoterAuthentication`) over `json_string` (its
    /// `resultJSON`) for the user `openid`.
    pub async fn soter_verify(&self, openid: &str, json_string: &str, json_signature: &str) -> Result<bool> {
        let body = serde_json::json!({"openid": openid, "json_string": json_string, "json_signature": json_signature});
        let v = self.post("/cgi-bin/soter/verify_signature", body, "指纹验证 / fingerprint verification").await?;
        Ok(v["is_ok"].as_bool() == Some(true))
    }

    /// The client of the configured mini program (AppID and secret in `[realname]`), if any.
    pub fn from_config(c: &RealnameConfig) -> Result<Option<std::sync::Arc<Self>>> {
        match (&c.wechat_appid, &c.wechat_secret) {
            (Some(appid), Some(secret)) if !appid.is_empty() && !secret.is_empty() => {
                Ok(Some(std::sync::Arc::new(Wechat::new(&c.wechat_api_base, appid, secret)?)))
            }
            _ => Ok(None),
        }
    }

    /// `queryverifyinfo`: whether that verification passed for this identity.
    pub async fn passed(
        &self,
        verify_id: &str,
        out_seq_no: &str,
        name: &str,
        id_no: &str,
        openid: &str,
    ) -> Result<bool> {
        let body = serde_json::json!({"verify_id": verify_id, "out_seq_no": out_seq_no,
            "cert_hash": cert_hash(name, id_no), "openid": openid});
        let v = self.post("/cityservice/face/identify/queryverifyinfo", body, "核身结果 / verification result").await?;
        Ok(v["verify_ret"].as_i64() == Some(10000))
    }
}

/// Binding a phone inside WeCom (`wecom`: the client and `[realname] wecom_required`): the
/// `wx.qy.login` code must be of this corp and of the staff member being bound — checked before the
/// activation code is spent, so the right person can still use it. A server without WeCom set up
/// ignores the code (the activation code alone binds there anyway). A refusal is audited like a
/// refused activation code.
pub async fn wecom_binding(
    db: &Db,
    ctx: &Context,
    (wecom, required): (Option<&Wechat>, bool),
    employee_no: &str,
    code: Option<&str>,
) -> Result<()> {
    let verdict = match (code, wecom) {
        (Some(code), Some(wecom)) => match wecom.wecom_user(code).await {
            Ok(Some(user)) if user == employee_no => Ok(()),
            Ok(_) => Err(Error::coded(
                Refusal::Forbidden,
                "wecom_mismatch",
                "企业微信账号不是该工号本人 / the WeCom account is not this staff member's",
            )),
            Err(e) => Err(e),
        },
        _ if required => Err(Error::coded(
            Refusal::Forbidden,
            "wecom_required",
            "本院要求在企业微信中用本人账号绑定手机 / this hospital binds phones only inside WeCom, with the staff member's own account",
        )),
        _ => Ok(()),
    };
    if let Err(e) = &verdict {
        let ev = audit::Event {
            kind: Kind::Login,
            action: "device.activate",
            target: &format!("user:{employee_no}"),
            outcome: "refused",
            details: serde_json::json!({"error": e.to_string(), "wecom": code.is_some()}),
        };
        audit::record(db, ctx, &ev).await?;
    }
    verdict
}

/// The configured face verifier.
pub enum FaceVerifier {
    /// WeChat face verification
    Wechat(std::sync::Arc<Wechat>),
    /// DEMO: passes everyone, marks the result as demo
    Dev,
}

impl FaceVerifier {
    /// From `[realname]`: `None` for `none`.
    pub fn from_config(c: &RealnameConfig) -> Result<Option<Self>> {
        match c.provider.as_str() {
            "none" | "" => Ok(None),
            "dev" => {
                tracing::warn!(
                    "!!! 实名认证使用演示提供方 dev：任何人都会通过，结果标记为演示，切勿用于生产 / realname provider 'dev' is a DEMO: everyone passes, results are marked demo — never in production"
                );
                Ok(Some(FaceVerifier::Dev))
            }
            "wechat" => match Wechat::from_config(c)? {
                Some(w) => Ok(Some(FaceVerifier::Wechat(w))),
                None => Err(Error::Config(
                    "实名认证 wechat 需要 wechat_appid 与 wechat_secret / realname 'wechat' needs wechat_appid and wechat_secret".into(),
                )),
            },
            other => Err(Error::Config(format!(
                "实名认证提供方须为 none、wechat 或 dev / realname provider must be none, wechat or dev, got '{other}'"
            ))),
        }
    }

    /// The WeChat client for fingerprint approval: the face verifier's own when it is WeChat (one
    /// access token per AppID — a second client fetching its own would invalidate the first's),
    /// otherwise one from the configured AppID and secret; `None` without them.
    pub fn soter_client(face: Option<&FaceVerifier>, c: &RealnameConfig) -> Result<Option<std::sync::Arc<Wechat>>> {
        match face {
            Some(FaceVerifier::Wechat(w)) => Ok(Some(w.clone())),
            _ => Wechat::from_config(c),
        }
    }

    /// `wechat` | `dev`
    pub fn name(&self) -> &'static str {
        match self {
            FaceVerifier::Wechat(_) => "wechat",
            FaceVerifier::Dev => "dev",
        }
    }
}

/// A started check: what the phone runs next.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// this check
    pub check_id: String,
    /// `wechat` | `dev`
    pub provider: String,
    /// for `wx.requestFacialVerify({verifyId})` (wechat)
    pub verify_id: String,
    /// true for the dev provider: the result will be marked demo
    pub demo: bool,
    /// RFC 3339
    pub expires_at: String,
}

/// The outcome of a check.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RealnameOutcome))]
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// this check
    pub check_id: String,
    /// `verified` | `failed`
    pub state: String,
    /// the user's status now: `verified`, `verified-demo` or `none`
    pub realname_status: String,
    /// marked demo (dev provider)
    pub demo: bool,
}

/// Start a check for the session's user (`wx_code` from `wx.login` for wechat).
pub async fn start(db: &Db, kek: &Kek, fv: &FaceVerifier, s: &Session, wx_code: Option<&str>) -> Result<Started> {
    let (name, id_no) = medsign_directory::users::identity(db, kek, &s.employee_no).await?;
    let id_no = id_no.ok_or_else(|| {
        Error::Conflict(
            "人员档案中没有身份证号，请联系信息科登记 / no ID-card number on record: ask the IT department".into(),
        )
    })?;
    let check_id = format!("rn_{}", hex::encode(medsign_crypto::rng::bytes::<12>()?));
    let (verify_id, openid) = match fv {
        FaceVerifier::Wechat(w) => {
            let code = wx_code.ok_or_else(|| {
                Error::coded(
                    Refusal::Invalid,
                    "wx_code_required",
                    "微信人脸核身需要 wx_code（wx.login）/ WeChat face verification needs wx_code (wx.login)",
                )
            })?;
            let openid = w.openid(code).await?;
            (w.verify_id(&check_id, &name, &id_no, &openid).await?, Some(openid))
        }
        FaceVerifier::Dev => (format!("demo-{}", hex::encode(medsign_crypto::rng::bytes::<8>()?)), None),
    };
    let expires = medsign_store::secs_text(Utc::now() + Duration::hours(1));
    let _w = db.write_lock.lock().await;
    sqlx::query(
        "INSERT INTO realname_checks (id, employee_no, device_id, provider, verify_id, openid, state, demo, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'started', $7, $8, $9)",
    )
    .bind(&check_id)
    .bind(&s.employee_no)
    .bind(&s.device_id)
    .bind(fv.name())
    .bind(&verify_id)
    .bind(&openid)
    .bind(matches!(fv, FaceVerifier::Dev) as i64)
    .bind(&expires)
    .bind(medsign_store::now_text())
    .execute(&db.pool)
    .await?;
    Ok(Started {
        check_id,
        provider: fv.name().into(),
        verify_id,
        demo: matches!(fv, FaceVerifier::Dev),
        expires_at: expires,
    })
}

/// Ask the provider how check `check_id` ended and record it on the user (audited).
pub async fn finish(
    db: &Db,
    kek: &Kek,
    fv: &FaceVerifier,
    ctx: &Context,
    s: &Session,
    check_id: &str,
) -> Result<Outcome> {
    let r = sqlx::query("SELECT * FROM realname_checks WHERE id = $1 AND device_id = $2")
        .bind(check_id)
        .bind(&s.device_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("实名核验 {check_id} 不存在 / no real-name check {check_id}")))?;
    if r.try_get::<String, _>("state")? != "started" {
        return Err(Error::Conflict(format!("实名核验 {check_id} 已有结果 / check {check_id} is finished")));
    }
    let expires: String = r.try_get("expires_at")?;
    if medsign_store::is_past(&expires) {
        return Err(Error::Invalid(format!(
            "实名核验 {check_id} 已过期，请重新开始 / check {check_id} expired; start again"
        )));
    }
    if r.try_get::<String, _>("provider")? != fv.name() {
        return Err(Error::Conflict("实名认证提供方已更换，请重新开始 / the provider changed; start again".into()));
    }
    let demo = matches!(fv, FaceVerifier::Dev);
    let passed = match fv {
        FaceVerifier::Wechat(w) => {
            let (name, id_no) = medsign_directory::users::identity(db, kek, &s.employee_no).await?;
            let id_no =
                id_no.ok_or_else(|| Error::Conflict("人员档案中没有身份证号 / no ID-card number on record".into()))?;
            let openid: Option<String> = r.try_get("openid")?;
            w.passed(&r.try_get::<String, _>("verify_id")?, check_id, &name, &id_no, &openid.unwrap_or_default())
                .await?
        }
        FaceVerifier::Dev => true,
    };
    let state = if passed { "verified" } else { "failed" };
    let status = match (passed, demo) {
        (true, false) => Some("verified"),
        (true, true) => Some("verified-demo"),
        (false, _) => None,
    };
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // the check ends once, whichever request (or instance) gets here first
    let ended =
        sqlx::query("UPDATE realname_checks SET state = $1, finished_at = $2 WHERE id = $3 AND state = 'started'")
            .bind(state)
            .bind(&now)
            .bind(check_id)
            .execute(&mut *tx)
            .await?;
    if ended.rows_affected() != 1 {
        return Err(Error::Conflict(format!("实名核验 {check_id} 已有结果 / check {check_id} is finished")));
    }
    if let Some(st) = status {
        sqlx::query("UPDATE users SET realname_status = $1, realname_at = $2 WHERE employee_no = $3")
            .bind(st)
            .bind(&now)
            .bind(&s.employee_no)
            .execute(&mut *tx)
            .await?;
        // what hospital systems asked for (R7.4.3) is done with it
        let result = serde_json::json!({"realname_status": st, "provider": fv.name()});
        medsign_directory::tasks::complete(
            &mut tx,
            &s.employee_no,
            medsign_directory::tasks::TaskKind::Realname,
            result,
        )
        .await?;
    }
    let target = format!("user:{}", s.employee_no);
    let ev = audit::Event {
        kind: Kind::Login,
        action: "realname.verify",
        target: &target,
        outcome: if passed { "ok" } else { "refused" },
        details: serde_json::json!({"provider": fv.name(), "demo": demo, "check": check_id}),
    };
    audit::append(&mut tx, ctx, &ev).await?;
    tx.commit().await?;
    let current: Option<String> = sqlx::query_scalar("SELECT realname_status FROM users WHERE employee_no = $1")
        .bind(&s.employee_no)
        .fetch_one(&db.pool)
        .await?;
    Ok(Outcome {
        check_id: check_id.into(),
        state: state.into(),
        realname_status: current.unwrap_or_else(|| "none".into()),
        demo,
    })
}

/// With a provider configured, certificates are issued only after a passed check.
pub async fn require(db: &Db, fv: Option<&FaceVerifier>, employee_no: &str) -> Result<()> {
    let Some(fv) = fv else { return Ok(()) };
    let status: Option<String> = sqlx::query_scalar("SELECT realname_status FROM users WHERE employee_no = $1")
        .bind(employee_no)
        .fetch_optional(&db.pool)
        .await?
        .flatten();
    let ok = match fv {
        FaceVerifier::Dev => matches!(status.as_deref(), Some("verified" | "verified-demo")),
        FaceVerifier::Wechat(_) => status.as_deref() == Some("verified"),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::coded(
            Refusal::Conflict,
            "realname_required",
            "请先完成实名认证（人脸核身）再生成签名证书 / pass the real-name check (face verification) before the certificate is issued",
        ))
    }
}

/// A local FAKE of WeChat's documented server API (tests only; named as a fake): `/cgi-bin/token`,
/// `/sns/jscode2session`, `/cityservice/face/identify/getverifyid` and `queryverifyinfo`, and
/// `/cgi-bin/soter/verify_signature`. It checks what the documentation requires (credentials,
/// access token, identity fields, `cert_hash`; for SOTER an RSASSA-PSS SHA-256 signature with a
/// 20-byte salt by the key the user's phone registered) and lets a test decide whether the face
/// matched. [`fake::SoterPhone`] plays the phone's TEE: it answers `wx.startSoterAuthentication`.
#[cfg(any(test, feature = "fake"))]
pub mod fake {
    use axum::{Json, Router, extract::Query, routing::get, routing::post};
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };

    /// State the test can see and steer.
    #[derive(Default)]
    pub struct Fake {
        /// verify_id → (out_seq_no, cert_hash expected, openid)
        pub issued: Mutex<HashMap<String, (String, String, String)>>,
        /// whether the next face matches
        pub face_matches: Mutex<bool>,
        /// requests seen: (path, body)
        pub seen: Mutex<Vec<(String, serde_json::Value)>>,
        /// openid → the SOTER authentication key WeChat knows for that user's phone
        pub soter_keys: Mutex<HashMap<String, rsa::PublicKey>>,
    }

    /// A phone's SOTER TEE (fake): a fingerprint key (RSA 2048) that signs `resultJSON`.
    pub struct SoterPhone {
        key: rsa::PrivateKey,
        /// the `cpu_id` its results carry
        pub cpu_id: String,
        counter: std::sync::atomic::AtomicU64,
    }

    impl SoterPhone {
        /// A phone whose fingerprint key WeChat knows for `openid` (registered with `fake`).
        pub fn register(fake: &Fake, openid: &str, cpu_id: &str) -> Self {
            use rsa::Generate;
            let key = rsa::PrivateKey::generate();
            fake.soter_keys.lock().unwrap().insert(openid.into(), key.to_public_key());
            Self { key, cpu_id: cpu_id.into(), counter: Default::default() }
        }

        /// What `wx.startSoterAuthentication({challenge})` returns after a matching fingerprint:
        /// `(resultJSON, resultJSONSignature)` — the JSON the TEE assembles and its signature
        /// (SHA256 with RSA/PSS, saltlen = 20, base64).
        pub fn authenticate(&self, challenge: &str) -> (String, String) {
            use rsa::signature::{SignatureEncoding, Signer};
            let counter = self.counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let json = serde_json::json!({"raw": challenge, "fid": "2", "counter": counter, "tee_n": "FAKE TEE",
                "tee_v": "1.0", "fp_n": "FAKE FPC", "fp_v": "1.0", "cpu_id": self.cpu_id, "uid": "21"})
            .to_string();
            let sk = rsa::pss::SigningKey::<rsa::sha2::Sha256>::new_with_salt_len(self.key.clone(), 20);
            let sig = sk.sign(json.as_bytes());
            (json, base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig.to_bytes()))
        }
    }

    fn soter_ok(f: &Fake, openid: &str, json: &str, sig_b64: &str) -> bool {
        use rsa::signature::Verifier;
        let Some(pk) = f.soter_keys.lock().unwrap().get(openid).cloned() else { return false };
        let Ok(sig) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig_b64) else {
            return false;
        };
        let Ok(sig) = rsa::pss::Signature::try_from(sig.as_slice()) else { return false };
        rsa::pss::VerifyingKey::<rsa::sha2::Sha256>::new_with_salt_len(pk, 20).verify(json.as_bytes(), &sig).is_ok()
    }

    /// Start the fake on loopback; returns its base URL and state. AppID `wx_test`, secret `s3cret`,
    /// login code `code-<openid>`.
    pub async fn start() -> (String, Arc<Fake>) {
        let (app, f) = app();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (format!("http://{addr}"), f)
    }

    /// The fake's routes and state, to serve as the test likes (over TLS, for one).
    pub fn app() -> (Router, Arc<Fake>) {
        let f = Arc::new(Fake { face_matches: Mutex::new(true), ..Default::default() });
        let token = "AT_fake_token";
        let ok_creds = |q: &HashMap<String, String>| {
            q.get("appid").map(String::as_str) == Some("wx_test")
                && q.get("secret").map(String::as_str) == Some("s3cret")
        };
        let app = Router::new()
            .route(
                "/cgi-bin/token",
                get(move |Query(q): Query<HashMap<String, String>>| async move {
                    if ok_creds(&q) && q.get("grant_type").map(String::as_str) == Some("client_credential") {
                        Json(serde_json::json!({"access_token": token, "expires_in": 7200}))
                    } else {
                        Json(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}))
                    }
                }),
            )
            .route(
                "/sns/jscode2session",
                get(move |Query(q): Query<HashMap<String, String>>| async move {
                    match q.get("js_code").and_then(|c| c.strip_prefix("code-")) {
                        _ if !ok_creds(&q) => {
                            Json(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}))
                        }
                        Some(openid) => Json(serde_json::json!({"openid": openid, "session_key": "sk"})),
                        None => Json(serde_json::json!({"errcode": 40029, "errmsg": "invalid code"})),
                    }
                }),
            )
            .route(
                "/cityservice/face/identify/getverifyid",
                post({
                    let f = f.clone();
                    move |Query(q): Query<HashMap<String, String>>, Json(b): Json<serde_json::Value>| async move {
                        f.seen.lock().unwrap().push(("getverifyid".into(), b.clone()));
                        if q.get("access_token").map(String::as_str) != Some(token) {
                            return Json(serde_json::json!({"errcode": 40001, "errmsg": "invalid credential"}));
                        }
                        let ci = &b["cert_info"];
                        let (Some(name), Some(no), Some("IDENTITY_CARD"), Some(seq), Some(openid)) = (
                            ci["cert_name"].as_str(),
                            ci["cert_no"].as_str(),
                            ci["cert_type"].as_str(),
                            b["out_seq_no"].as_str(),
                            b["openid"].as_str(),
                        ) else {
                            return Json(serde_json::json!({"errcode": 47001, "errmsg": "data format error"}));
                        };
                        let id = format!("vid_{}", f.issued.lock().unwrap().len() + 1);
                        f.issued
                            .lock()
                            .unwrap()
                            .insert(id.clone(), (seq.into(), super::cert_hash(name, no), openid.into()));
                        Json(serde_json::json!({"errcode": 0, "errmsg": "ok", "verify_id": id, "expires_in": 3600}))
                    }
                }),
            )
            .route(
                "/cityservice/face/identify/queryverifyinfo",
                post({
                    let f = f.clone();
                    move |Query(q): Query<HashMap<String, String>>, Json(b): Json<serde_json::Value>| async move {
                        f.seen.lock().unwrap().push(("queryverifyinfo".into(), b.clone()));
                        if q.get("access_token").map(String::as_str) != Some(token) {
                            return Json(serde_json::json!({"errcode": 40001, "errmsg": "invalid credential"}));
                        }
                        let issued = f.issued.lock().unwrap().get(b["verify_id"].as_str().unwrap_or("")).cloned();
                        match issued {
                            Some((seq, hash, openid))
                                if b["out_seq_no"] == seq.as_str()
                                    && b["cert_hash"] == hash.as_str()
                                    && b["openid"] == openid.as_str() =>
                            {
                                let ret = if *f.face_matches.lock().unwrap() { 10000 } else { 10002 };
                                Json(serde_json::json!({"errcode": 0, "errmsg": "ok", "verify_ret": ret}))
                            }
                            Some(_) => Json(
                                serde_json::json!({"errcode": 47001, "errmsg": "cert_hash or out_seq_no mismatch"}),
                            ),
                            None => Json(serde_json::json!({"errcode": 40003, "errmsg": "invalid verify_id"})),
                        }
                    }
                }),
            );
        let app = app.route(
            "/cgi-bin/soter/verify_signature",
            post({
                let f = f.clone();
                move |Query(q): Query<HashMap<String, String>>, Json(b): Json<serde_json::Value>| async move {
                    f.seen.lock().unwrap().push(("soter".into(), b.clone()));
                    if q.get("access_token").map(String::as_str) != Some(token) {
                        return Json(serde_json::json!({"errcode": 40001, "errmsg": "invalid credential"}));
                    }
                    let (Some(openid), Some(json), Some(sig)) =
                        (b["openid"].as_str(), b["json_string"].as_str(), b["json_signature"].as_str())
                    else {
                        return Json(serde_json::json!({"errcode": 47001, "errmsg": "data format error"}));
                    };
                    Json(serde_json::json!({"errcode": 0, "errmsg": "ok", "is_ok": soter_ok(&f, openid, json, sig)}))
                }
            }),
        );
        (app, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_directory::users::NewUser;
    use medsign_testkit::{
        db::backends,
        hospital::{World, add_staff, staff, world},
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wechat_face_verification_against_the_fake_and_the_demo_provider() {
        let (base, fake) = fake::start().await;
        for (_d, db) in backends().await {
            let World { kek, ctx, cas, .. } = world(&db).await;
            let with_id = NewUser { id_card: Some("11010519491231002X".into()), ..staff("5001", "孙医生") };
            add_staff(&db, &kek, &[with_id, staff("5002", "孙医生")]).await;
            let bind = |no: &'static str| {
                let (db, kek, cas, ctx) = (db.clone(), &kek, &cas, ctx.clone());
                async move {
                    let a = crate::mobile::activation_code(&db, kek, &ctx, no).await.unwrap();
                    crate::mobile::activate(&db, cas, &ctx, no, &a.code, "iPhone").await.unwrap()
                }
            };
            let me = bind("5001").await;
            let cfg = |provider: &str, secret: &str| RealnameConfig {
                provider: provider.into(),
                wechat_appid: Some("wx_test".into()),
                wechat_secret: Some(secret.into()),
                wechat_api_base: base.clone(),
                ..Default::default()
            };
            let fv = FaceVerifier::from_config(&cfg("wechat", "s3cret")).unwrap().unwrap();
            // not yet verified: no certificate
            assert_eq!(require(&db, Some(&fv), "5001").await.unwrap_err().code(), "realname_required");
            assert!(require(&db, None, "5001").await.is_ok(), "no provider: checked in person");
            // a face that does not match
            *fake.face_matches.lock().unwrap() = false;
            let st = start(&db, &kek, &fv, &me, Some("code-oOPENID1")).await.unwrap();
            assert!(!st.demo && st.verify_id.starts_with("vid_"));
            let out = finish(&db, &kek, &fv, &ctx, &me, &st.check_id).await.unwrap();
            assert_eq!((out.state.as_str(), out.realname_status.as_str()), ("failed", "none"));
            assert!(matches!(finish(&db, &kek, &fv, &ctx, &me, &st.check_id).await, Err(Error::Conflict(_))));
            // it matches: verified; the request carried the documented identity fields
            *fake.face_matches.lock().unwrap() = true;
            let st = start(&db, &kek, &fv, &me, Some("code-oOPENID1")).await.unwrap();
            let out = finish(&db, &kek, &fv, &ctx, &me, &st.check_id).await.unwrap();
            assert_eq!((out.state.as_str(), out.realname_status.as_str()), ("verified", "verified"));
            require(&db, Some(&fv), "5001").await.unwrap();
            let seen = fake.seen.lock().unwrap().clone();
            let (_, first) = seen.iter().find(|(p, _)| p == "getverifyid").unwrap();
            assert_eq!(first["cert_info"]["cert_no"], "11010519491231002X");
            let (_, q) = seen.iter().rev().find(|(p, _)| p == "queryverifyinfo").unwrap();
            assert_eq!(q["cert_hash"], cert_hash("孙医生", "11010519491231002X"));
            assert_eq!(medsign_directory::users::get(&db, &kek, "5001").await.unwrap().realname_status, "verified");
            // bad input: no wx_code, a bad code, wrong app secret, no ID card on record
            assert_eq!(start(&db, &kek, &fv, &me, None).await.unwrap_err().code(), "wx_code_required");
            let e = start(&db, &kek, &fv, &me, Some("nonsense")).await.unwrap_err();
            assert!(e.to_string().contains("40029") && matches!(e, Error::Invalid(_)), "the phone's doing: {e}");
            let wrong = FaceVerifier::from_config(&cfg("wechat", "wrong")).unwrap().unwrap();
            let e = start(&db, &kek, &wrong, &me, Some("code-x")).await.unwrap_err();
            assert!(e.to_string().contains("40125") && matches!(e, Error::Unavailable(_)), "the hospital's: {e}");
            let other = bind("5002").await;
            assert!(matches!(start(&db, &kek, &fv, &other, Some("code-x")).await, Err(Error::Conflict(_))));
            assert!(
                FaceVerifier::from_config(&RealnameConfig { provider: "wechat".into(), ..Default::default() }).is_err()
            );
            assert!(FaceVerifier::from_config(&cfg("face++", "")).is_err());
            // the DEMO provider: passes, but only ever as verified-demo, which wechat does not accept
            let dev = FaceVerifier::from_config(&cfg("dev", "")).unwrap().unwrap();
            assert!(matches!(start(&db, &kek, &dev, &other, None).await, Err(Error::Conflict(_))), "no ID card");
            let st = start(&db, &kek, &dev, &me, None).await.unwrap();
            assert!(st.demo);
            let out = finish(&db, &kek, &dev, &ctx, &me, &st.check_id).await.unwrap();
            assert_eq!(out.realname_status, "verified-demo");
            assert!(require(&db, Some(&dev), "5001").await.is_ok());
            assert!(require(&db, Some(&fv), "5001").await.is_err(), "a demo result never counts for wechat");
        }
    }
}
