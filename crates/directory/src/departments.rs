//! Departments (科室) as a tree: each has a code, a name and optionally a parent. Users refer to a
//! department by code, and an unknown code is refused.

use medsign_store::{
    Error, Result, RowError,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A department to create.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDepartment {
    /// code, 1–32 characters without commas or control characters (e.g. `XNK`, `心内科`)
    pub code: String,
    /// display name
    pub name: String,
    /// parent department code
    #[serde(default)]
    pub parent_code: Option<String>,
}

/// A stored department.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Department {
    /// code
    pub code: String,
    /// name
    pub name: String,
    /// parent code
    pub parent_code: Option<String>,
}

fn code_ok(c: &str) -> bool {
    let n = c.chars().count();
    (1..=32).contains(&n) && !c.chars().any(|ch| ch.is_control() || ch == ',' || ch.is_whitespace())
}

/// Create departments (parents may come earlier in the same batch), all or nothing.
pub async fn create_many(db: &Db, ctx: &Context, items: &[NewDepartment]) -> Result<Vec<Department>> {
    if items.is_empty() || items.len() > 10_000 {
        return Err(Error::Invalid("一次创建 1–10000 个科室 / create 1-10000 departments per call".into()));
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let mut errs = Vec::new();
    let mut batch: Vec<&str> = Vec::new();
    for (i, d) in items.iter().enumerate() {
        let mut err = |field: &str, m: String| errs.push(RowError { row: i, field: field.into(), message: m });
        if !code_ok(&d.code) {
            err(
                "code",
                "科室代码须为 1–32 个字符，不含空白和逗号 / code must be 1-32 characters without spaces or commas"
                    .into(),
            );
        }
        if d.name.trim().is_empty() || d.name.chars().count() > 64 {
            err("name", "科室名称须为 1–64 个字符 / name must be 1-64 characters".into());
        }
        let exists =
            sqlx::query("SELECT code FROM departments WHERE code = $1").bind(&d.code).fetch_optional(&mut *tx).await?;
        if exists.is_some() || batch.contains(&d.code.as_str()) {
            err("code", format!("科室代码 {} 已存在 / already exists", d.code));
        }
        if let Some(p) = &d.parent_code {
            let known = batch.contains(&p.as_str())
                || sqlx::query("SELECT code FROM departments WHERE code = $1")
                    .bind(p)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            if !known {
                err("parent_code", format!("上级科室 {p} 不存在 / unknown parent department"));
            }
        }
        batch.push(&d.code);
    }
    if !errs.is_empty() {
        return Err(Error::InvalidRows(errs));
    }
    let now = medsign_store::now_text();
    for d in items {
        sqlx::query("INSERT INTO departments (code, name, parent_code, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&d.code)
            .bind(d.name.trim())
            .bind(&d.parent_code)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        audit::ok(
            &mut tx,
            ctx,
            Kind::DataMaintenance,
            "department.create",
            &format!("department:{}", d.code),
            serde_json::json!({"name": d.name.trim(), "parent_code": d.parent_code}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(items
        .iter()
        .map(|d| Department { code: d.code.clone(), name: d.name.trim().into(), parent_code: d.parent_code.clone() })
        .collect())
}

/// All departments, by code.
pub async fn list(db: &Db) -> Result<Vec<Department>> {
    let rows = sqlx::query("SELECT code, name, parent_code FROM departments ORDER BY code").fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            Ok(Department {
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                parent_code: r.try_get("parent_code")?,
            })
        })
        .collect()
}

/// Whether `code` exists (inside a transaction).
pub async fn exists(conn: &mut sqlx::AnyConnection, code: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT code FROM departments WHERE code = $1").bind(code).fetch_optional(conn).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_testkit::db::backends;

    fn d(code: &str, parent: Option<&str>) -> NewDepartment {
        NewDepartment { code: code.into(), name: format!("{code} 科"), parent_code: parent.map(Into::into) }
    }

    #[tokio::test]
    async fn tree_with_checked_parents() {
        for (_d, db) in backends().await {
            let ctx = Context::cli();
            create_many(&db, &ctx, &[d("NK", None), d("XNK", Some("NK")), d("心内一病区", Some("XNK"))]).await.unwrap();
            let all = list(&db).await.unwrap();
            assert_eq!(all.len(), 3);
            let Err(Error::InvalidRows(r)) =
                create_many(&db, &ctx, &[d("WK", Some("nope")), d("NK", None), d("a b", None)]).await
            else {
                panic!("expected row errors")
            };
            let fields: Vec<(usize, &str)> = r.iter().map(|e| (e.row, e.field.as_str())).collect();
            assert_eq!(fields, vec![(0, "parent_code"), (1, "code"), (2, "code")]);
            assert_eq!(list(&db).await.unwrap().len(), 3, "nothing written");
        }
    }
}
