//! Staff users (R1.4, R7.4.1, R7.4.2). The ID-card number is validated (GB 11643 check digit),
//! stored only wrapped under the KEK, and searchable only through a keyed hash.

use medsign_crypto::{hash, wrap::Kek};
use medsign_store::{
    Error, Result, RowError,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// Largest batch accepted by one call.
pub const MAX_BATCH: usize = 10_000;

/// Roles (issue #3).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 医生
    Doctor,
    /// 护士
    Nurse,
    /// 药师
    Pharmacist,
    /// 技师
    Technician,
    /// 管理员
    Admin,
    /// 审计员
    Auditor,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::Nurse => "nurse",
            Role::Pharmacist => "pharmacist",
            Role::Technician => "technician",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }
    fn parse(s: &str) -> Role {
        match s {
            "nurse" => Role::Nurse,
            "pharmacist" => Role::Pharmacist,
            "technician" => Role::Technician,
            "admin" => Role::Admin,
            "auditor" => Role::Auditor,
            _ => Role::Doctor,
        }
    }
}

/// A user to create (the API's request body).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 工号, unique: 1–32 of `A-Z a-z 0-9 _ -`
    pub employee_no: String,
    /// 姓名
    pub name: String,
    /// 科室 (department code)
    #[serde(default)]
    pub department: Option<String>,
    /// 职称
    #[serde(default)]
    pub title: Option<String>,
    /// 手机
    #[serde(default)]
    pub phone: Option<String>,
    /// 身份证号 (18 characters, GB 11643)
    #[serde(default)]
    pub id_card: Option<String>,
    /// role (default doctor)
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::Doctor
}

/// A stored user as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// 工号
    pub employee_no: String,
    /// 姓名
    pub name: String,
    /// 科室
    pub department: Option<String>,
    /// 职称
    pub title: Option<String>,
    /// 手机
    pub phone: Option<String>,
    /// masked ID-card number (`110101**********1X`)
    pub id_card_masked: Option<String>,
    /// role
    pub role: Role,
    /// `active` | `disabled`
    pub status: String,
    /// real-name status (`none` until the mobile issue)
    pub realname_status: String,
    /// the signing certificate (single-user query only): serial, alg, status, issuer, subject,
    /// validity, `valid_now`, channel, `key` (`phone`: the two-party key; `server`: held by the
    /// server; `external`: a key the requester keeps), certificate_pem
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub certificate: Option<serde_json::Value>,
    /// link to the handwritten signature (PNG; single-user query only)
    pub signature_image: Option<String>,
    /// the handwritten signature itself, PNG base64 (`?image=base64`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_image_base64: Option<String>,
    /// created
    pub created_at: String,
    /// updated
    pub updated_at: String,
}

/// GB 11643-1999 check digit of an 18-character resident ID number.
pub fn id_card_valid(id: &str) -> bool {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17].iter().zip(W).map(|(c, w)| (c - b'0') as u32 * w).sum();
    b[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

fn mask(id: &str) -> String {
    format!("{}{}{}", &id[..6], "*".repeat(10), &id[16..])
}

/// Keyed hash of an ID-card number, so it can be searched without being stored in clear.
pub fn id_card_search_hash(kek: &Kek, id: &str) -> String {
    let k = hash::hmac_sm3(kek.as_bytes(), &[b"medsign/id-card-search/v1"]);
    hex::encode(hash::hmac_sm3(&k, &[id.to_ascii_uppercase().as_bytes()]))
}

fn check(i: usize, u: &NewUser, errs: &mut Vec<RowError>) {
    let mut err =
        |field: &str, message: &str| errs.push(RowError { row: i, field: field.into(), message: message.into() });
    let e = &u.employee_no;
    if e.is_empty() || e.len() > 32 || !e.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
        err(
            "employee_no",
            "工号须为 1–32 位字母、数字、下划线或连字符 / employee_no must be 1-32 letters, digits, _ or -",
        );
    }
    let n = u.name.trim().chars().count();
    if n == 0 || n > 64 {
        err("name", "姓名须为 1–64 个字符 / name must be 1-64 characters");
    }
    if let Some(id) = &u.id_card
        && !id_card_valid(id)
    {
        err(
            "id_card",
            "身份证号无效（长度或校验位不符 GB 11643）/ invalid ID-card number (length or GB 11643 check digit)",
        );
    }
    if let Some(p) = &u.phone
        && (p.len() > 20 || !p.bytes().all(|c| c.is_ascii_digit() || c == b'+' || c == b'-'))
    {
        err("phone", "手机号格式无效 / invalid phone number");
    }
    for (field, v) in [("department", &u.department), ("title", &u.title)] {
        if v.as_ref().is_some_and(|v| v.chars().count() > 64) {
            err(field, "不能超过 64 个字符 / at most 64 characters");
        }
    }
}

/// Every row of a batch checked against the rules and the database (departments exist, staff
/// numbers are new), all errors at once; nothing is written.
async fn check_many(tx: &mut sqlx::Transaction<'_, sqlx::Any>, users: &[NewUser]) -> Result<()> {
    if users.is_empty() {
        return Err(Error::Invalid("没有要创建的用户 / no users given".into()));
    }
    if users.len() > MAX_BATCH {
        return Err(Error::Invalid(format!("一次最多 {MAX_BATCH} 个用户 / at most {MAX_BATCH} users per call")));
    }
    let mut errs = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, u) in users.iter().enumerate() {
        check(i, u, &mut errs);
        if let Some(first) = seen.insert(u.employee_no.as_str(), i) {
            errs.push(RowError {
                row: i,
                field: "employee_no".into(),
                message: format!("工号与第 {first} 行重复 / duplicate of row {first}"),
            });
        }
    }
    let mut known_departments = std::collections::HashSet::new();
    for (i, u) in users.iter().enumerate() {
        if let Some(dep) = &u.department
            && !known_departments.contains(dep.as_str())
        {
            if crate::departments::exists(tx, dep).await? {
                known_departments.insert(dep.as_str());
            } else {
                errs.push(RowError {
                    row: i,
                    field: "department".into(),
                    message: format!(
                        "科室 {dep} 不存在，请先在科室管理中创建 / unknown department {dep}: create it first"
                    ),
                });
            }
        }
        let exists = sqlx::query("SELECT employee_no FROM users WHERE employee_no = $1")
            .bind(&u.employee_no)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_some() {
            errs.push(RowError {
                row: i,
                field: "employee_no".into(),
                message: format!("工号 {} 已存在 / already exists", u.employee_no),
            });
        }
    }
    if !errs.is_empty() {
        errs.sort_by_key(|e| e.row);
        return Err(Error::InvalidRows(errs));
    }
    Ok(())
}

/// What an import would do (the console's preview): every row checked as [`create_many`] checks
/// it, errors by row; nothing is written.
pub async fn check_import(db: &Db, users: &[NewUser]) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    let r = check_many(&mut tx, users).await;
    tx.rollback().await?;
    r
}

/// Create users, all or nothing: every row is checked first; any invalid row, duplicate in the
/// batch or existing employee number rejects the whole batch with per-row errors.
pub async fn create_many(db: &Db, kek: &Kek, ctx: &Context, users: &[NewUser]) -> Result<Vec<User>> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    if let Err(e) = check_many(&mut tx, users).await {
        tx.rollback().await?;
        return Err(e);
    }
    let now = medsign_store::now_text();
    for u in users {
        let (wrapped, search) = match &u.id_card {
            Some(id) => {
                let aad = format!("medsign/id-card/{}", u.employee_no);
                (
                    Some(hex::encode(kek.wrap(id.to_ascii_uppercase().as_bytes(), aad.as_bytes())?)),
                    Some(id_card_search_hash(kek, id)),
                )
            }
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO users (employee_no, name, department_code, title, phone, id_card_wrapped, id_card_hash, role, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $9)",
        )
        .bind(&u.employee_no)
        .bind(u.name.trim())
        .bind(&u.department)
        .bind(&u.title)
        .bind(&u.phone)
        .bind(&wrapped)
        .bind(&search)
        .bind(u.role.as_str())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        audit::ok(
            &mut tx,
            ctx,
            Kind::DataMaintenance,
            "user.create",
            &format!("user:{}", u.employee_no),
            serde_json::json!({"name": u.name.trim(), "department": u.department, "role": u.role.as_str()}),
        )
        .await?;
    }
    tx.commit().await?;
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        out.push(get(db, kek, &u.employee_no).await?);
    }
    Ok(out)
}

/// A change to a user (absent fields stay as they are; `null` clears an optional field).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// 姓名
    pub name: Option<String>,
    /// 科室
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable))]
    pub department: Option<Option<String>>,
    /// 职称
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable))]
    pub title: Option<Option<String>>,
    /// 手机
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable))]
    pub phone: Option<Option<String>>,
    /// role
    pub role: Option<Role>,
    /// `active` | `disabled`
    pub status: Option<String>,
}

/// `Option<Option<T>>` that tells "absent" (outer None) from `null` (Some(None)).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Apply `p` to user `employee_no` (audited with the fields changed).
pub async fn update(db: &Db, kek: &Kek, ctx: &Context, employee_no: &str, p: &UserPatch) -> Result<User> {
    let cur = get(db, kek, employee_no).await?;
    let next = NewUser {
        employee_no: cur.employee_no.clone(),
        name: p.name.clone().unwrap_or(cur.name.clone()),
        department: p.department.clone().unwrap_or(cur.department.clone()),
        title: p.title.clone().unwrap_or(cur.title.clone()),
        phone: p.phone.clone().unwrap_or(cur.phone.clone()),
        id_card: None,
        role: p.role.unwrap_or(cur.role),
    };
    let mut errs = Vec::new();
    check(0, &next, &mut errs);
    let status = p.status.clone().unwrap_or(cur.status.clone());
    if status != "active" && status != "disabled" {
        errs.push(RowError {
            row: 0,
            field: "status".into(),
            message: "status 须为 active 或 disabled / status must be active or disabled".into(),
        });
    }
    if let Some(e) = errs.into_iter().next() {
        return Err(Error::Invalid(format!("{}: {}", e.field, e.message)));
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    if let Some(dep) = &next.department
        && !crate::departments::exists(&mut tx, dep).await?
    {
        return Err(Error::Invalid(format!("科室 {dep} 不存在 / unknown department {dep}")));
    }
    sqlx::query(
        "UPDATE users SET name = $1, department_code = $2, title = $3, phone = $4, role = $5, status = $6, updated_at = $7 \
         WHERE employee_no = $8 AND deleted_at IS NULL",
    )
    .bind(next.name.trim())
    .bind(&next.department)
    .bind(&next.title)
    .bind(&next.phone)
    .bind(next.role.as_str())
    .bind(&status)
    .bind(medsign_store::now_text())
    .bind(employee_no)
    .execute(&mut *tx)
    .await?;
    let details = serde_json::json!({
        "before": {"name": cur.name, "department": cur.department, "title": cur.title, "phone": cur.phone, "role": cur.role.as_str(), "status": cur.status},
        "after": {"name": next.name.trim(), "department": next.department, "title": next.title, "phone": next.phone, "role": next.role.as_str(), "status": status},
    });
    let action = if status != cur.status {
        if status == "disabled" { "user.disable" } else { "user.enable" }
    } else {
        "user.update"
    };
    audit::ok(&mut tx, ctx, Kind::DataMaintenance, action, &format!("user:{employee_no}"), details).await?;
    tx.commit().await?;
    get(db, kek, employee_no).await
}

/// Soft-delete: the row stays (for the audit trail and old signatures) but the user is gone from
/// queries; the employee number stays taken.
pub async fn delete(db: &Db, kek: &Kek, ctx: &Context, employee_no: &str) -> Result<()> {
    let cur = get(db, kek, employee_no).await?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let now = medsign_store::now_text();
    sqlx::query("UPDATE users SET deleted_at = $1, status = 'disabled', updated_at = $1 WHERE employee_no = $2 AND deleted_at IS NULL")
        .bind(&now)
        .bind(employee_no)
        .execute(&mut *tx)
        .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::DataMaintenance,
        "user.delete",
        &format!("user:{employee_no}"),
        serde_json::json!({"name": cur.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Filters and paging of [`list`].
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// department code, exact
    pub department: Option<String>,
    /// substring of the name or employee number
    pub q: Option<String>,
    /// page, from 1
    pub page: Option<i64>,
    /// page size, 1–500 (default 50)
    pub page_size: Option<i64>,
}

/// A page of users.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// users on this page, by employee number
    pub items: Vec<User>,
    /// page number
    pub page: i64,
    /// page size
    pub page_size: i64,
    /// matching users in all
    pub total: i64,
}

/// Users matching the filters, ordered by employee number.
pub async fn list(db: &Db, kek: &Kek, q: &ListQuery) -> Result<Page> {
    let (page_size, offset) = medsign_store::paging(q.page, q.page_size, 50, 500)?;
    let page = q.page.unwrap_or(1);
    // `LIKE` patterns: escape the wildcards the caller typed
    let pattern = medsign_store::contains_pattern(q.q.as_deref());
    let filter = "deleted_at IS NULL AND ($1 IS NULL OR department_code = $1) \
                  AND ($2 IS NULL OR name LIKE $2 ESCAPE '\\' OR employee_no LIKE $2 ESCAPE '\\')";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM users WHERE {filter}")))
        .bind(&q.department)
        .bind(&pattern)
        .fetch_one(&db.pool)
        .await?;
    let nos: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT employee_no FROM users WHERE {filter} ORDER BY employee_no LIMIT $3 OFFSET $4"
    )))
    .bind(&q.department)
    .bind(&pattern)
    .bind(page_size)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    let mut items = Vec::with_capacity(nos.len());
    for no in nos {
        items.push(get(db, kek, &no).await?);
    }
    Ok(Page { items, page, page_size, total })
}

/// The stored row of a user (deleted users are not found).
async fn user_row(db: &Db, employee_no: &str) -> Result<sqlx::any::AnyRow> {
    sqlx::query("SELECT * FROM users WHERE employee_no = $1 AND deleted_at IS NULL")
        .bind(employee_no)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!("工号 {employee_no} 的用户不存在 / no user with employee_no {employee_no}"))
        })
}

/// A user's name and full ID-card number (for a real-name check; never shown).
pub async fn identity(db: &Db, kek: &Kek, employee_no: &str) -> Result<(String, Option<zeroize::Zeroizing<String>>)> {
    let r = user_row(db, employee_no).await?;
    Ok((r.try_get("name")?, id_card(kek, employee_no, r.try_get("id_card_wrapped")?)?))
}

/// The ID-card number stored wrapped under the KEK (bound to the employee number).
fn id_card(kek: &Kek, employee_no: &str, wrapped: Option<String>) -> Result<Option<zeroize::Zeroizing<String>>> {
    let Some(w) = wrapped else { return Ok(None) };
    let blob = hex::decode(w).map_err(|_| Error::internal("stored ID-card value is corrupt"))?;
    let plain = kek.unwrap(&blob, format!("medsign/id-card/{employee_no}").as_bytes())?;
    Ok(Some(zeroize::Zeroizing::new(String::from_utf8_lossy(&plain).into_owned())))
}

/// One user by employee number (deleted users are not found).
pub async fn get(db: &Db, kek: &Kek, employee_no: &str) -> Result<User> {
    let r = user_row(db, employee_no).await?;
    let masked = id_card(kek, employee_no, r.try_get("id_card_wrapped")?)?.map(|id| mask(&id));
    Ok(User {
        employee_no: r.try_get("employee_no")?,
        name: r.try_get("name")?,
        department: r.try_get("department_code")?,
        title: r.try_get("title")?,
        phone: r.try_get("phone")?,
        id_card_masked: masked,
        role: Role::parse(&r.try_get::<String, _>("role")?),
        status: r.try_get("status")?,
        realname_status: r.try_get::<Option<String>, _>("realname_status")?.unwrap_or_else(|| "none".into()),
        certificate: None,
        signature_image_base64: None,
        signature_image: None,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_testkit::db::backends;

    fn u(no: &str) -> NewUser {
        NewUser {
            employee_no: no.into(),
            name: "张三".into(),
            department: Some("XNK".into()),
            title: None,
            phone: None,
            id_card: None,
            role: Role::Doctor,
        }
    }

    #[test]
    fn gb11643_check_digit() {
        assert!(id_card_valid("11010519491231002X"));
        assert!(id_card_valid("11010519491231002x"));
        assert!(!id_card_valid("110105194912310021"));
        assert!(!id_card_valid("1101051949123100"));
        assert!(!id_card_valid("11010519491231002Y"));
    }

    #[tokio::test]
    async fn batch_is_all_or_nothing_with_row_errors() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let dep = |c: &str| crate::departments::NewDepartment { code: c.into(), name: c.into(), parent_code: None };
            crate::departments::create_many(&db, &ctx, &[dep("XNK"), dep("JZK")]).await.unwrap();
            let mut unknown = u("0999");
            unknown.department = Some("NOPE".into());
            let Err(Error::InvalidRows(r)) = create_many(&db, &kek, &ctx, &[unknown]).await else {
                panic!("unknown department accepted")
            };
            assert_eq!(r[0].field, "department");
            let mut a = u("1001");
            a.id_card = Some("11010519491231002X".into());
            let made = create_many(&db, &kek, &ctx, &[a, u("1002")]).await.unwrap();
            assert_eq!(made[0].id_card_masked.as_deref(), Some("110105**********2X"));
            let stored: Option<String> =
                sqlx::query_scalar("SELECT id_card_wrapped FROM users WHERE employee_no = '1001'")
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            assert!(!stored.unwrap().contains("11010519491231002X"), "ID card stored in clear");
            // a batch with one duplicate, one bad ID card, one existing: nothing written
            let mut bad = u("2002");
            bad.id_card = Some("110105194912310021".into());
            let err = create_many(&db, &kek, &ctx, &[u("2001"), bad, u("2001"), u("1001")]).await.unwrap_err();
            let Error::InvalidRows(rows) = err else { panic!("expected row errors") };
            let described: Vec<(usize, &str)> = rows.iter().map(|r| (r.row, r.field.as_str())).collect();
            assert_eq!(described, vec![(1, "id_card"), (2, "employee_no"), (3, "employee_no")]);
            assert!(matches!(get(&db, &kek, "2001").await, Err(Error::NotFound(_))), "partial write");
            assert!(create_many(&db, &kek, &ctx, &[]).await.is_err());
            assert_eq!(medsign_store::audit::verify_chain(&db).await.unwrap().entries, 4); // 2 departments + 2 users
            // list: filters, paging, wildcard escaping
            let mut more: Vec<NewUser> = (0..7).map(|i| u(&format!("30{i:02}"))).collect();
            more[3].department = Some("JZK".into());
            more[4].name = "100%_李".into();
            create_many(&db, &kek, &ctx, &more).await.unwrap();
            let all = list(&db, &kek, &ListQuery::default()).await.unwrap();
            assert_eq!((all.total, all.items.len()), (9, 9));
            let p2 =
                list(&db, &kek, &ListQuery { page: Some(2), page_size: Some(4), ..Default::default() }).await.unwrap();
            assert_eq!(
                p2.items.iter().map(|u| u.employee_no.as_str()).collect::<Vec<_>>(),
                ["3002", "3003", "3004", "3005"]
            );
            let jzk =
                list(&db, &kek, &ListQuery { department: Some("JZK".into()), ..Default::default() }).await.unwrap();
            assert_eq!(jzk.total, 1);
            let pct = list(&db, &kek, &ListQuery { q: Some("%_".into()), ..Default::default() }).await.unwrap();
            assert_eq!(pct.items.iter().map(|u| u.employee_no.as_str()).collect::<Vec<_>>(), ["3004"]);
            assert_eq!(
                list(&db, &kek, &ListQuery { q: Some("100".into()), ..Default::default() }).await.unwrap().total,
                3
            );
            assert!(list(&db, &kek, &ListQuery { page_size: Some(0), ..Default::default() }).await.is_err());
            // edit, disable, clear a field, delete (soft)
            let patch: UserPatch =
                serde_json::from_str(r#"{"title":"主任医师","department":null,"status":"disabled"}"#).unwrap();
            let u2 = update(&db, &kek, &ctx, "1001", &patch).await.unwrap();
            assert_eq!(
                (u2.title.as_deref(), u2.department.as_deref(), u2.status.as_str()),
                (Some("主任医师"), None, "disabled")
            );
            assert_eq!(u2.name, "张三", "untouched field kept");
            assert!(
                update(&db, &kek, &ctx, "1001", &serde_json::from_str(r#"{"status":"gone"}"#).unwrap()).await.is_err()
            );
            assert!(update(&db, &kek, &ctx, "1001", &serde_json::from_str(r#"{"name":""}"#).unwrap()).await.is_err());
            assert!(serde_json::from_str::<UserPatch>(r#"{"id_card":"x"}"#).is_err(), "unknown field accepted");
            delete(&db, &kek, &ctx, "1002").await.unwrap();
            assert!(matches!(get(&db, &kek, "1002").await, Err(Error::NotFound(_))));
            assert!(matches!(delete(&db, &kek, &ctx, "1002").await, Err(Error::NotFound(_))));
            let again = create_many(&db, &kek, &ctx, &[u("1002")]).await;
            assert!(matches!(again, Err(Error::InvalidRows(_))), "a deleted employee number is reused");
            let actions: Vec<String> =
                medsign_store::audit::recent(&db, 2).await.unwrap().into_iter().map(|e| e.action).collect();
            assert_eq!(actions, ["user.delete", "user.disable"]);
            assert!(medsign_store::audit::verify_chain(&db).await.unwrap().broken.is_none());
        }
    }
}
