//! Handlers of the CA (R1.2, R5): certificates and their lifecycle, enrolment, CA channels, seals, and
//! the public PKI endpoints (CA certificates, CRL, OCSP).

use crate::extract::StrictQuery;
use crate::{
    ApiError,
    error::{ErrorBody, envelope},
    extract::{Caller, StrictJson},
    extract::{Scoped, scope},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Body of `POST /api/v1/users/{employee_no}/certificates`: a CSR, or a bare SM2 public key with
/// a proof of possession.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    /// PKCS#10 request, PEM (SM2 with the standard or the empty ID, RSA, P-256)
    csr: Option<String>,
    /// a bare SM2 public key (SPKI PEM, base64 SPKI DER, or the 130-hex-digit uncompressed point)
    public_key: Option<String>,
    /// base64 SM3withSM2 signature (standard ID) by that key over
    /// `"medsign-pop/v1\n" + employee_no + "\n" + hex(SPKI DER)`
    proof: Option<String>,
}

/// Body of `POST /api/v1/certificates/{serial}/revoke`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// `unspecified` | `key_compromise` | `affiliation_changed` | `superseded` | `cessation_of_operation`
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/users/{employee_no}/certificates", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    request_body(content = IssueRequest, examples(("csr" = (value = json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\n…"}))), ("bare SM2 key" = (value = json!({"public_key": "04a1b2…(130 hex digits)", "proof": "MEUCIQ…"}))))),
    responses((status = 201, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "employee_no": "1001", "alg": "sm2", "profile": "signer", "status": "active", "not_before": "2026-11-27T08:00:00Z", "not_after": "2027-11-27T08:00:00Z", "revoked_at": null, "reason": null, "subject": "CN=张三,OU=XNK,O=某县人民医院,C=CN,SERIALNUMBER=…", "certificate_pem": "-----BEGIN CERTIFICATE-----\n…"})),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
/// `POST /api/v1/users/{employee_no}/certificates`: a one-year staff signing certificate from a CSR
/// or from a bare SM2 public key with a proof of possession.
async fn issue_certificate(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Certs>,
    Path(no): Path<String>,
    StrictJson(body): StrictJson<IssueRequest>,
) -> Result<Response, ApiError> {
    let issuer = s.issuer();
    let rec = match (&body.csr, &body.public_key, &body.proof) {
        (Some(csr), None, None) => {
            medsign_ca::certs::issue_for_user(&s.db, &s.kek, issuer, &caller.ctx, &no, csr).await
        }
        (None, Some(k), Some(p)) => {
            medsign_ca::certs::issue_for_key(&s.db, &s.kek, issuer, &caller.ctx, &no, k, p).await
        }
        _ => Err(medsign_store::Error::Invalid(
            "须提供 csr，或 public_key 加 proof（二者择一）/ send either csr, or public_key with proof".into(),
        )),
    }?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[utoipa::path(get, path = "/api/v1/certificates/{serial}", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    responses((status = 200, body = medsign_ca::certs::CertRecord), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "证书 X 不存在 / no certificate X", "request_id": "…"}))))]
/// `GET /api/v1/certificates/{serial}`.
async fn get_certificate(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::Certs>,
    Path(serial): Path<String>,
) -> Result<Json<medsign_ca::certs::CertRecord>, ApiError> {
    Ok(Json(medsign_ca::certs::get(&s.db, &serial).await?))
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/revoke", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    request_body(content = RevokeRequest, example = json!({"reason": "key_compromise"})),
    responses((status = 200, body = medsign_ca::certs::CertRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "证书 X 已吊销 / already revoked", "request_id": "…"}))))]
/// `POST /api/v1/certificates/{serial}/revoke`.
async fn revoke_certificate(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::CertsOrCaEnroll>,
    Path(serial): Path<String>,
    StrictJson(body): StrictJson<RevokeRequest>,
) -> Result<Json<medsign_ca::certs::CertRecord>, ApiError> {
    medsign_ca::certs::authorize_change(&s.db, &caller.app, &serial).await?;
    let rec = medsign_ca::certs::revoke(&s.db, &s.cas, Some((&s.kek, &s.channels)), &caller.ctx, &serial, &body.reason)
        .await?;
    s.tsa.refresh_certificates(&s.db).await?;
    Ok(Json(rec))
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/hold", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    responses((status = 200, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "status": "on_hold", "reason": "certificate_hold"})), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "证书 X 已冻结 / already on hold", "request_id": "…"}))))]
/// `POST /api/v1/certificates/{serial}/hold`: suspend (certificateHold) until released.
async fn hold_certificate(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::CertsOrCaEnroll>,
    Path(serial): Path<String>,
) -> Result<Json<medsign_ca::certs::CertRecord>, ApiError> {
    medsign_ca::certs::authorize_change(&s.db, &caller.app, &serial).await?;
    let rec = medsign_ca::certs::hold(&s.db, &s.cas, &caller.ctx, &serial).await?;
    s.tsa.refresh_certificates(&s.db).await?;
    Ok(Json(rec))
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/release", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    responses((status = 200, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "status": "active", "reason": null})), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "证书 X 未冻结，无需解冻 / not on hold", "request_id": "…"}))))]
/// `POST /api/v1/certificates/{serial}/release`: lift a hold.
async fn release_certificate(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::CertsOrCaEnroll>,
    Path(serial): Path<String>,
) -> Result<Json<medsign_ca::certs::CertRecord>, ApiError> {
    medsign_ca::certs::authorize_change(&s.db, &caller.app, &serial).await?;
    let rec = medsign_ca::certs::release(&s.db, &s.cas, &caller.ctx, &serial).await?;
    s.tsa.refresh_certificates(&s.db).await?;
    Ok(Json(rec))
}

/// `?days=N` of `GET /api/v1/certificates/expiring`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExpiringQuery {
    /// window in days, 1–3650 (default `ca.expiry_warn_days`, 30)
    days: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/certificates/expiring", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(ExpiringQuery),
    responses((status = 200, body = Object, example = json!({"days": 30, "items": [{"serial": "2BE1F2E0030AEBA4B6203402274DC478", "employee_no": "1001", "not_after": "2026-12-20T08:00:00Z"}]})), (status = 400, body = ErrorBody)))]
/// `GET /api/v1/certificates/expiring?days=N`: active or held certificates that end within N days.
async fn expiring_certificates(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::Certs>,
    query: Result<Query<ExpiringQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let days = match query {
        Ok(Query(ExpiringQuery { days: None })) => s.ca_config.expiry_warn_days,
        Ok(Query(ExpiringQuery { days: Some(d) })) if (1..=3650).contains(&d) => d,
        _ => return Err(medsign_store::Error::Invalid("days 须为 1–3650 / days must be 1-3650".into()).into()),
    };
    let items = medsign_ca::certs::expiring(&s.db, days).await?;
    Ok(Json(serde_json::json!({"days": days, "items": items})))
}

/// Body of `POST /api/v1/certificates/{serial}/renew`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RenewRequest {
    /// a new PKCS#10 request of the same algorithm; absent = keep the key
    csr: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/renew", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    request_body(content = RenewRequest, example = json!({})),
    responses((status = 201, body = medsign_ca::certs::CertRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "证书 X 已吊销，不能续期 / revoked certificates cannot be renewed", "request_id": "…"}))))]
/// `POST /api/v1/certificates/{serial}/renew`: same key, or a new CSR; the old certificate is superseded.
async fn renew_certificate(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Certs>,
    Path(serial): Path<String>,
    StrictJson(body): StrictJson<RenewRequest>,
) -> Result<Response, ApiError> {
    let issuer = s.issuer();
    let rec = medsign_ca::certs::renew(&s.db, &s.kek, issuer, &caller.ctx, &serial, body.csr.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(medsign_ca::certs::ListQuery),
    responses((status = 200, body = Object, example = json!({"items": [], "total": 0})), (status = 400, body = ErrorBody)))]
/// `GET /api/v1/certificates?employee_no=&status=&alg=&page=&page_size=`.
async fn list_certificates(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::Certs>,
    StrictQuery(q): StrictQuery<medsign_ca::certs::ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (items, total) = medsign_ca::certs::list(&s.db, &q).await?;
    Ok(Json(serde_json::json!({"items": items, "total": total})))
}

#[utoipa::path(post, path = "/api/v1/ca/enroll", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = medsign_ca::channels::RaEnrollment, example = json!({"employee_no": "1001", "subject": "CN=张三,OU=心内科,O=某县人民医院,C=CN,SERIALNUMBER=3F2A…", "public_key": "-----BEGIN PUBLIC KEY-----\n…", "csr": null})),
    responses((status = 201, body = medsign_ca::channels::RaIssued, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "certificate_pem": "-----BEGIN CERTIFICATE-----\n…", "chain_pem": "-----BEGIN CERTIFICATE-----\n…"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "须提供由该密钥签名的证书请求（csr）/ a certificate request signed by the key (csr) is required", "request_id": "…"})),
        (status = 403, body = ErrorBody, example = json!({"code": "forbidden", "message": "应用 app_… 没有 ca:enroll 权限 / app app_… lacks scope ca:enroll", "request_id": "…"}))))]
/// `POST /api/v1/ca/enroll`: this node's CA issues for another medsign acting as registration
/// authority (its `medsign` CA channel), app scope `ca:enroll` only: the key proves possession
/// (a signed CSR) and the subject's organisation (O) is the name the RA app was registered under.
async fn ra_enroll(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::CaEnroll>,
    StrictJson(body): StrictJson<medsign_ca::channels::RaEnrollment>,
) -> Result<Response, ApiError> {
    let ra = caller.app.name.as_str();
    let out = medsign_ca::certs::ra_enroll(&s.db, &s.cas, &s.public_url, &caller.ctx, ra, &body).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/ca-channels", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<medsign_ca::channels::ChannelRecord>, example = json!([{"id": "builtin", "name": "内置 CA / built-in CA", "kind": "builtin", "profile": "signer", "priority": 0, "enabled": true, "active": true, "config": {}, "health": "ok", "health_at": null, "health_error": null}]))))]
/// `GET /admin/v1/ca-channels`.
async fn list_channels(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
) -> Result<Json<Vec<medsign_ca::channels::ChannelRecord>>, ApiError> {
    Ok(Json(medsign_ca::channels::list(&s.db).await?))
}

#[utoipa::path(post, path = "/admin/v1/ca-channels", tag = "admin", security(("bearer" = [])),
    request_body(content = medsign_ca::channels::NewChannel, examples(
        ("EST, HTTP Basic" = (value = json!({"name": "省级 CA (EST)", "kind": "est", "priority": 10, "config": {"url": "https://ca.example/.well-known/est", "username": "hospital-01"}, "secret": "password"}))),
        ("another medsign" = (value = json!({"name": "区域平台", "kind": "medsign", "priority": 20, "config": {"url": "https://regional.example"}, "secret": "app_1a2b….secret"}))))),
    responses((status = 201, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "name": "省级 CA (EST)", "kind": "est", "profile": "signer", "priority": 10, "enabled": true, "active": false, "config": {"url": "https://ca.example/.well-known/est", "username": "hospital-01"}, "health": "unknown", "health_at": null, "health_error": null})),
        (status = 400, body = ErrorBody)))]
/// `POST /admin/v1/ca-channels`: add an EST or medsign channel (enabled, not active).
async fn create_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<medsign_ca::channels::NewChannel>,
) -> Result<Response, ApiError> {
    let c = medsign_ca::channels::create(&s.db, &s.kek, &caller.ctx, &body).await?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

#[utoipa::path(post, path = "/admin/v1/ca-channels/{id}/activate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "ch_3f2a9c1b7d4e")),
    responses((status = 200, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "active": true})), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "CA 通道 x 不存在 / no CA channel x", "request_id": "…"}))))]
/// `POST /admin/v1/ca-channels/{id}/activate`: switch online; the next issuance on every node uses it.
async fn activate_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_ca::channels::ChannelRecord>, ApiError> {
    Ok(Json(medsign_ca::channels::activate(&s.db, &caller.ctx, &id).await?))
}

#[utoipa::path(post, path = "/admin/v1/ca-channels/{id}/enable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "ch_3f2a9c1b7d4e")),
    responses((status = 200, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "enabled": true})), (status = 404, body = ErrorBody)))]
/// `POST /admin/v1/ca-channels/{id}/enable`: may take part in failover again.
async fn enable_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_ca::channels::ChannelRecord>, ApiError> {
    Ok(Json(medsign_ca::channels::set_enabled(&s.db, &caller.ctx, &id, true).await?))
}

#[utoipa::path(post, path = "/admin/v1/ca-channels/{id}/disable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "ch_3f2a9c1b7d4e")),
    responses((status = 200, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "enabled": false})), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "通道 x 正在使用，请先启用另一个通道 / channel x is active; activate another one first", "request_id": "…"}))))]
/// `POST /admin/v1/ca-channels/{id}/disable`.
async fn disable_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_ca::channels::ChannelRecord>, ApiError> {
    Ok(Json(medsign_ca::channels::set_enabled(&s.db, &caller.ctx, &id, false).await?))
}

#[utoipa::path(post, path = "/admin/v1/ca-channels/{id}/check", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "ch_3f2a9c1b7d4e")),
    responses((status = 200, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "health": "down", "health_error": "CA 通道 https://ca.example 不可用 / CA channel unavailable: connection refused"})), (status = 404, body = ErrorBody)))]
/// `POST /admin/v1/ca-channels/{id}/check`: run the health check now.
async fn check_channel(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_ca::channels::ChannelRecord>, ApiError> {
    Ok(Json(medsign_ca::channels::check(&s.db, &s.kek, &s.channels, &id).await?))
}

#[utoipa::path(get, path = "/admin/v1/trust", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<medsign_ca::trust::TrustRecord>, example = json!([{"fingerprint": "5c1e…", "subject": "CN=区域平台 根CA,O=区域卫健委,C=CN", "issuer": "CN=区域平台 根CA,O=区域卫健委,C=CN", "anchor": true, "not_after": "2036-01-01T00:00:00+00:00", "crl_url": "https://regional.example/pki/crl?ca=rsa&issuer=root", "crl_at": "2026-12-04T08:00:00.000Z", "crl_error": null, "note": "区域平台 CA 通道", "pem": "-----BEGIN CERTIFICATE-----\n…"}]))))]
/// `GET /admin/v1/trust`: the trust list — CA certificates trusted besides the built-in roots.
async fn list_trust(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
) -> Result<Json<Vec<medsign_ca::trust::TrustRecord>>, ApiError> {
    Ok(Json(medsign_ca::trust::list(&s.db).await?))
}

#[utoipa::path(post, path = "/admin/v1/trust", tag = "admin", security(("bearer" = [])),
    request_body(content = medsign_ca::trust::NewTrust, example = json!({"pem": "-----BEGIN CERTIFICATE-----\n…", "crl_url": "https://regional.example/pki/crl?ca=rsa", "note": "区域平台签发 CA"})),
    responses((status = 201, body = Vec<medsign_ca::trust::TrustRecord>),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "CN=张三 不是 CA 证书（basicConstraints cA）/ is not a CA certificate: only CAs go on the trust list", "request_id": "…"}))))]
/// `POST /admin/v1/trust`: trust these CA certificates (a self-signed one as an anchor, others as
/// intermediates or cross-certificates) in every verification; with `crl_url`, fetch its CRL now
/// and every hour. Compare the fingerprints with what the CA publishes before relying on them.
async fn add_trust(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<medsign_ca::trust::NewTrust>,
) -> Result<Response, ApiError> {
    let added = medsign_ca::trust::add(&s.db, &caller.ctx, &body).await?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

#[utoipa::path(delete, path = "/admin/v1/trust/{fingerprint}", tag = "admin", security(("bearer" = [])),
    params(("fingerprint" = String, Path, example = "5c1e…")),
    responses((status = 204, description = "no longer trusted"), (status = 404, body = ErrorBody)))]
/// `DELETE /admin/v1/trust/{fingerprint}`: no longer trust it.
async fn remove_trust(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(fingerprint): Path<String>,
) -> Result<StatusCode, ApiError> {
    medsign_ca::trust::remove(&s.db, &caller.ctx, &fingerprint).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/trust/refresh", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<medsign_ca::trust::TrustRecord>)))]
/// `POST /admin/v1/trust/refresh`: fetch every listed CRL now (otherwise hourly).
async fn refresh_trust(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
) -> Result<Json<Vec<medsign_ca::trust::TrustRecord>>, ApiError> {
    medsign_ca::trust::refresh_crls(&s.db).await?;
    Ok(Json(medsign_ca::trust::list(&s.db).await?))
}

#[utoipa::path(get, path = "/admin/v1/ca/profile", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = medsign_ca::ca::StaffProfile, example = json!({"version": "staff-signer/3f2a9c1b7d4e5a60", "policies": [], "validity_days": 365, "subject": "CN=姓名 name, OU=科室 department, O=医院 hospital, C=CN, SERIALNUMBER=…", "key_usage": "digitalSignature, nonRepudiation", "extensions": "SKI, AKI, CRL distribution point, AIA (OCSP, caIssuers), certificatePolicies"}))))]
/// `GET /admin/v1/ca/profile`: the staff certificate profile in force and its version.
async fn ca_profile(State(s): State<Arc<AppState>>) -> Json<medsign_ca::ca::StaffProfile> {
    Json(s.cas.staff.clone())
}

#[utoipa::path(get, path = "/admin/v1/ca/revocation", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<medsign_ca::certs::RevocationState>, example = json!([{"ca": "sm2", "issuer": "CN=某县人民医院 SM2 签发CA,O=某县人民医院,C=CN", "crl_number": 42, "crl_this_update": "2026-12-04T08:00:00Z", "crl_next_update": "2026-12-05T08:00:00Z", "crl_entries": 3, "on_hold": 1, "crl_signature_valid": true, "ocsp_responder_not_after": "2027-12-01T00:00:00Z"}]))))]
/// `GET /admin/v1/ca/revocation`: the built-in CAs' CRLs as served now (number, dates, entries,
/// signature checked) and their OCSP responders' certificates.
async fn ca_revocation(
    State(s): State<Arc<AppState>>,
) -> Result<Json<Vec<medsign_ca::certs::RevocationState>>, ApiError> {
    let hours = s.ca_config.crl_refresh_hours;
    let mut out = Vec::with_capacity(2);
    for h in [&s.cas.sm2, &s.cas.rsa] {
        out.push(medsign_ca::certs::revocation_state(&s.db, h, hours).await?);
    }
    Ok(Json(out))
}

/// Body of `POST /admin/v1/seals`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SealRequest {
    /// a department code; absent: the hospital's seal
    department: Option<String>,
    /// `sm2` (default) | `rsa`
    alg: Option<String>,
}

#[utoipa::path(post, path = "/admin/v1/seals", tag = "admin", security(("bearer" = [])),
    request_body(content = SealRequest, example = json!({"department": "YJK", "alg": "sm2"})),
    responses((status = 201, body = medsign_ca::certs::CertRecord, example = json!({"serial": "5A1F…", "employee_no": "org:seal-dept-YJK-sm2", "alg": "sm2", "profile": "seal", "channel": "builtin", "status": "active", "subject": "CN=某县人民医院 药剂科,OU=药剂科,O=某县人民医院,C=CN"})),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "科室 X 不存在 / no department X", "request_id": "…"}))))]
/// `POST /admin/v1/seals`: the hospital's or a department's seal certificate (R1.6), key in server
/// custody; returns the existing one while it is valid.
async fn create_seal(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<SealRequest>,
) -> Result<Response, ApiError> {
    let rec = medsign_ca::certs::organisation_seal(
        &s.db,
        &s.kek,
        &s.cas,
        &s.organization,
        &caller.ctx,
        body.department.as_deref(),
        body.alg.as_deref().unwrap_or("sm2"),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/seals", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Object, example = json!({"items": [{"serial": "5A1F…", "profile": "seal", "status": "active"}], "total": 1}))))]
/// `GET /admin/v1/seals`: the organisation seal certificates.
async fn list_seals(State(s): State<Arc<AppState>>, _caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let q = medsign_ca::certs::ListQuery { profile: Some("seal".into()), page_size: Some(500), ..Default::default() };
    let (items, total) = medsign_ca::certs::list(&s.db, &q).await?;
    Ok(Json(serde_json::json!({"items": items, "total": total})))
}

/// `?ca=rsa` selects the RSA issuing CA's CRL.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CrlQuery {
    /// `sm2` (default) or `rsa`
    ca: Option<String>,
    /// `issuing` (default: the CRL of staff, seal and TSA certificates) or `root` (the root's
    /// CRL, named by the issuing CA certificate)
    issuer: Option<String>,
}

#[utoipa::path(get, path = "/pki/crl", tag = "pki", params(CrlQuery),
    responses((status = 200, description = "CRL v2 (DER) of the SM2 or RSA issuing CA, valid 24 h", content_type = "application/pkix-crl", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 400, body = ErrorBody)))]
/// `GET /pki/crl[?ca=rsa][&issuer=root]`: the issuing CA's current CRL (re-signed on every status
/// change and every `ca.crl_refresh_hours`), or the root's (a week, no entries).
async fn crl(State(s): State<Arc<AppState>>, Query(q): Query<CrlQuery>) -> Result<Response, ApiError> {
    let h = match q.ca.as_deref() {
        None | Some("sm2") => &s.cas.sm2,
        Some("rsa") => &s.cas.rsa,
        Some(other) => {
            return Err(ApiError::invalid(format!("未知 CA '{other}'（sm2 或 rsa）/ unknown ca (sm2 or rsa)")));
        }
    };
    let der = match q.issuer.as_deref() {
        None | Some("issuing") => medsign_ca::certs::crl(&s.db, h, s.ca_config.crl_refresh_hours).await?,
        Some("root") => h.root_crl()?,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "未知签发者 '{other}'（issuing 或 root）/ unknown issuer (issuing or root)"
            )));
        }
    };
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-crl"), (header::CACHE_CONTROL, "public, max-age=300, no-transform")],
        der,
    )
        .into_response())
}

/// The largest OCSP request accepted (32 CertIDs fit in well under 4 KiB).
const OCSP_MAX_REQUEST: usize = 16 * 1024;

fn ocsp_reply(a: medsign_ca::ocsp::Answer, cache: bool) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "application/ocsp-response")], a.der.clone()).into_response();
    let h = r.headers_mut();
    match (cache && a.cacheable, a.this_update, a.next_update) {
        (true, Some(this), Some(next)) => {
            // RFC 5019 § 6.2: cacheable until nextUpdate, revalidated after
            let max_age = (next - chrono::Utc::now()).num_seconds().clamp(0, 600);
            let http_date = |t: chrono::DateTime<chrono::Utc>| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            let etag = format!("\"{}\"", hex::encode(&medsign_crypto::hash::sm3(&a.der)[..16]));
            for (k, v) in [
                (header::CACHE_CONTROL, format!("max-age={max_age}, public, no-transform, must-revalidate")),
                (header::LAST_MODIFIED, http_date(this)),
                (header::EXPIRES, http_date(next)),
                (header::ETAG, etag),
            ] {
                if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
        }
        _ => {
            h.insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache, no-store"));
        }
    }
    r
}

#[utoipa::path(post, path = "/pki/ocsp", tag = "pki",
    request_body(content = Vec<u8>, content_type = "application/ocsp-request", description = "DER OCSPRequest (RFC 6960 § 4.1)", example = json!("(binary DER)")),
    responses((status = 200, description = "DER OCSPResponse: good / revoked (time, reason) / unknown, signed by the delegated responder; malformedRequest for garbage, unauthorized for another CA's certificates", content_type = "application/ocsp-response", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 413, body = ErrorBody, example = json!({"code": "too_large", "message": "OCSP 请求过大 / OCSP request too large", "request_id": "…"})),
        (status = 415, body = ErrorBody, example = json!({"code": "unsupported_media_type", "message": "Content-Type 须为 application/ocsp-request", "request_id": "…"}))))]
/// `POST /pki/ocsp`: the OCSP responder (RFC 6960 appendix A.1).
async fn ocsp_post(
    State(s): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.trim().eq_ignore_ascii_case("application/ocsp-request") {
        return envelope(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type 须为 application/ocsp-request / Content-Type must be application/ocsp-request",
        );
    }
    if body.len() > OCSP_MAX_REQUEST {
        return envelope(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "OCSP 请求过大 / OCSP request too large");
    }
    ocsp_reply(s.ocsp.respond(&s.db, &body).await, false)
}

#[utoipa::path(get, path = "/pki/ocsp/{request}", tag = "pki",
    params(("request" = String, Path, description = "URL-encoded base64 of the DER OCSPRequest (RFC 6960 appendix A.1, RFC 5019 § 5)", example = "MEIwQDA%2BMDwwOjAJBgUrDgMCGgUABBQ…")),
    responses((status = 200, description = "DER OCSPResponse, with Cache-Control / ETag / Expires per RFC 5019 when the request has no nonce", content_type = "application/ocsp-response", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 413, body = ErrorBody, example = json!({"code": "too_large", "message": "OCSP 请求过大 / OCSP request too large", "request_id": "…"}))))]
/// `GET /pki/ocsp/{base64}`: the cacheable form.
pub(crate) async fn ocsp_get(State(s): State<Arc<AppState>>, Path(request): Path<String>) -> Response {
    use base64::Engine;
    if request.len() > OCSP_MAX_REQUEST * 4 / 3 + 4 {
        return envelope(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "OCSP 请求过大 / OCSP request too large");
    }
    let text: String = request.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim_start_matches('/'))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text.trim_start_matches('/')))
        .unwrap_or_default();
    // undecodable base64 is a malformed OCSP request, answered in the protocol
    ocsp_reply(s.ocsp.respond(&s.db, &der).await, true)
}

fn pem(body: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/x-pem-file")], body).into_response()
}

#[utoipa::path(get, path = "/pki/ca.pem", tag = "pki", responses((status = 200, description = "every CA certificate (SM2 root, SM2 issuing, RSA root, RSA issuing), PEM", content_type = "application/x-pem-file", example = json!("-----BEGIN CERTIFICATE-----\n…"))))]
/// `GET /pki/ca.pem`: every built-in CA certificate.
async fn ca_all(State(s): State<Arc<AppState>>) -> Response {
    pem(format!("{}{}", s.cas.sm2.pem(), s.cas.rsa.pem()))
}

#[utoipa::path(get, path = "/pki/sm2/ca.pem", tag = "pki", responses((status = 200, description = "SM2 root + issuing CA, PEM", content_type = "application/x-pem-file", example = json!("-----BEGIN CERTIFICATE-----\n…"))))]
/// `GET /pki/sm2/ca.pem`.
async fn ca_sm2(State(s): State<Arc<AppState>>) -> Response {
    pem(s.cas.sm2.pem())
}

#[utoipa::path(get, path = "/pki/rsa/ca.pem", tag = "pki", responses((status = 200, description = "RSA root + issuing CA, PEM", content_type = "application/x-pem-file", example = json!("-----BEGIN CERTIFICATE-----\n…"))))]
/// `GET /pki/rsa/ca.pem`.
async fn ca_rsa(State(s): State<Arc<AppState>>) -> Response {
    pem(s.cas.rsa.pem())
}

/// Its routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(issue_certificate))
        .routes(routes!(list_certificates))
        .routes(routes!(get_certificate))
        .routes(routes!(renew_certificate))
        .routes(routes!(revoke_certificate))
        .routes(routes!(hold_certificate))
        .routes(routes!(release_certificate))
        .routes(routes!(expiring_certificates))
        .routes(routes!(ra_enroll))
        .routes(routes!(crl))
        .routes(routes!(ocsp_post))
        .routes(routes!(ca_all))
        .routes(routes!(ca_sm2))
        .routes(routes!(ca_rsa))
}

/// Its `/admin/v1` routes (the admin scope is required by the caller).
pub(crate) fn admin_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(activate_channel))
        .routes(routes!(enable_channel))
        .routes(routes!(disable_channel))
        .routes(routes!(check_channel))
        .routes(routes!(list_trust, add_trust))
        .routes(routes!(remove_trust))
        .routes(routes!(refresh_trust))
        .routes(routes!(create_seal, list_seals))
        .routes(routes!(ca_profile))
        .routes(routes!(ca_revocation))
}
