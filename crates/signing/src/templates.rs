//! PDF templates (R1.8), versioned: saving a template under an existing id adds a version, older
//! versions stay readable (a flow records the version it was rendered from, so a signed document
//! can always be traced to its exact layout). medsign ships two: `outpatient-prescription`
//! (门诊处方笺) and `lab-report` (检验报告单), stored as version 1 on first use.

use medsign_pdf::template::{FieldKind, SignatureBox, Template};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::Serialize;
use sqlx::Row;

/// A field as listed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct FieldInfo {
    /// data key
    pub name: String,
    /// text | multiline | date | checkbox | image | table | signature
    #[serde(rename = "type")]
    pub kind: String,
    /// required in data
    pub required: bool,
}

/// A template version as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct TemplateInfo {
    /// id
    pub id: String,
    /// version, from 1
    pub version: i64,
    /// display name
    pub name: String,
    /// usable for new documents
    pub enabled: bool,
    /// fields (data keys)
    pub fields: Vec<FieldInfo>,
    /// signature boxes: signers name them with `field`
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub signature_boxes: Vec<SignatureBox>,
    /// who saved it
    pub created_by: String,
    /// when
    pub created_at: String,
}

fn info(r: &sqlx::any::AnyRow) -> Result<(TemplateInfo, Template)> {
    let def: String = r.try_get("definition")?;
    let t: Template = serde_json::from_str(&def).map_err(|e| Error::internal_from("stored template", e))?;
    let fields = t
        .fields
        .iter()
        .map(|f| FieldInfo {
            name: f.name.clone(),
            kind: serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            required: f.required && f.kind != FieldKind::Signature,
        })
        .collect();
    Ok((
        TemplateInfo {
            id: r.try_get("id")?,
            version: r.try_get("version")?,
            name: r.try_get("name")?,
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            fields,
            signature_boxes: t.signature_boxes(),
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
        },
        t,
    ))
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::Invalid(format!(
            "模板 id 须为 1–64 个字母、数字、- 或 _ / template id '{id}' must be 1-64 of A-Z a-z 0-9 - _"
        )));
    }
    Ok(())
}

/// Store the shipped templates as version 1 where missing.
async fn ensure_builtin(db: &Db) -> Result<()> {
    for (id, def) in medsign_pdf::template::builtin() {
        let have: Option<i64> = sqlx::query_scalar("SELECT version FROM templates WHERE id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?;
        if have.is_none() {
            let t = Template::from_json(def).map_err(|e| Error::internal_from("templates::ensure_builtin", e))?;
            let _w = db.write_lock.lock().await;
            // ON CONFLICT: another node may store it at the same moment
            sqlx::query(
                "INSERT INTO templates (id, version, name, definition, enabled, created_by, created_at) \
                 VALUES ($1, 1, $2, $3, 1, 'medsign', $4) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(&t.name)
            .bind(def)
            .bind(medsign_store::now_text())
            .execute(&db.pool)
            .await?;
        }
    }
    Ok(())
}

/// The latest version of every template.
pub async fn list(db: &Db) -> Result<Vec<TemplateInfo>> {
    ensure_builtin(db).await?;
    let rows = sqlx::query(
        "SELECT t.* FROM templates t WHERE t.version = (SELECT MAX(version) FROM templates u WHERE u.id = t.id) ORDER BY t.id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| info(r).map(|(i, _)| i)).collect()
}

/// One version (the latest when `version` is `None`).
pub async fn get(db: &Db, id: &str, version: Option<i64>) -> Result<(TemplateInfo, Template)> {
    let read = || {
        sqlx::query(
            "SELECT * FROM templates WHERE id = $1 AND ($2 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(&db.pool)
    };
    // the shipped templates are stored on first use: looked for only when the one asked is missing
    // (a batch renders a template a thousand times; each used to check every shipped one first)
    let r = match read().await? {
        Some(r) => Some(r),
        None => {
            ensure_builtin(db).await?;
            read().await?
        }
    };
    let r = r.ok_or_else(|| {
        Error::NotFound(match version {
            Some(v) => format!("模板 {id} 没有版本 {v} / template {id} has no version {v}"),
            None => format!("模板 {id} 不存在 / no template {id}"),
        })
    })?;
    info(&r)
}

/// A definition as stored (its JSON text, at most 8 MB) and checked.
fn parse(definition: &serde_json::Value) -> Result<(String, Template)> {
    let text = serde_json::to_string(definition).map_err(|e| Error::Invalid(e.to_string()))?;
    if text.len() > 8 << 20 {
        return Err(Error::Invalid("模板定义超过 8 MB / the definition exceeds 8 MB".into()));
    }
    let t = Template::from_json(&text).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((text, t))
}

/// Render a definition that need not be saved (the console's preview of an edited template)
/// with sample data. Nothing is stored.
pub fn preview(definition: &serde_json::Value, data: &serde_json::Value) -> Result<Vec<u8>> {
    let (_, t) = parse(definition)?;
    t.render(data).map_err(|e| Error::Invalid(e.to_string()))
}

/// Save `definition` (JSON) as the next version of `id` (version 1 for a new id).
pub async fn save(db: &Db, ctx: &Context, id: &str, definition: &serde_json::Value) -> Result<TemplateInfo> {
    check_id(id)?;
    ensure_builtin(db).await?;
    let (text, t) = parse(definition)?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // versions of one template are numbered one save at a time, on every instance
    db.serialise(&mut tx, medsign_store::db::lock_key("template", id)).await?;
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM templates WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
    let version = last.unwrap_or(0) + 1;
    sqlx::query(
        "INSERT INTO templates (id, version, name, definition, enabled, created_by, created_at) VALUES ($1, $2, $3, $4, 1, $5, $6)",
    )
    .bind(id)
    .bind(version)
    .bind(&t.name)
    .bind(&text)
    .bind(&ctx.actor)
    .bind(medsign_store::now_text())
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "template.save",
        &format!("template:{id}"),
        serde_json::json!({"version": version, "name": t.name, "sm3": hex::encode(medsign_crypto::hash::sm3(text.as_bytes()))}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    Ok(get(db, id, Some(version)).await?.0)
}

/// Enable or disable a template (every version): disabled ones render nothing new.
pub async fn set_enabled(db: &Db, ctx: &Context, id: &str, enabled: bool) -> Result<TemplateInfo> {
    get(db, id, None).await?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE templates SET enabled = $1 WHERE id = $2")
        .bind(enabled as i64)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let action = if enabled { "template.enable" } else { "template.disable" };
    audit::ok(&mut tx, ctx, Kind::Admin, action, &format!("template:{id}"), serde_json::json!({})).await?;
    tx.commit().await?;
    drop(_w);
    Ok(get(db, id, None).await?.0)
}

/// Render `data` with a template version: the PDF and the version used.
pub async fn render(
    db: &Db,
    id: &str,
    version: Option<i64>,
    data: &serde_json::Value,
) -> Result<(Vec<u8>, TemplateInfo)> {
    let (info, t) = get(db, id, version).await?;
    if !info.enabled {
        return Err(Error::Invalid(format!("模板 {id} 已停用 / template {id} is disabled")));
    }
    let pdf = t.render(data).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((pdf, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn templates_are_versioned_and_builtin_ones_render() {
        for (_d, db) in medsign_testkit::db::backends().await {
            let ctx = Context::cli();
            let all = list(&db).await.unwrap();
            assert_eq!(
                all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
                ["lab-report", "outpatient-prescription"]
            );
            let rx = &all[1];
            assert_eq!((rx.version, rx.name.as_str()), (1, "门诊处方笺"));
            assert!(rx.signature_boxes.iter().any(|b| b.name == "doctor"));
            // a new version of a shipped template; the old one stays readable
            let (_, mut t) = get(&db, "outpatient-prescription", None).await.unwrap();
            t.name = "门诊处方笺（儿科）".into();
            let v2 = save(&db, &ctx, "outpatient-prescription", &serde_json::to_value(&t).unwrap()).await.unwrap();
            assert_eq!(v2.version, 2);
            assert_eq!(get(&db, "outpatient-prescription", Some(1)).await.unwrap().0.name, "门诊处方笺");
            assert_eq!(list(&db).await.unwrap()[1].version, 2);
            // rendering checks the data; a disabled template renders nothing
            let e = render(&db, "lab-report", None, &serde_json::json!({"patient_name": "李华"})).await.unwrap_err();
            assert!(matches!(&e, Error::Invalid(m) if m.contains("hospital")), "{e}");
            set_enabled(&db, &ctx, "lab-report", false).await.unwrap();
            assert!(
                matches!(render(&db, "lab-report", None, &serde_json::json!({})).await, Err(Error::Invalid(m)) if m.contains("disabled"))
            );
            // bad definitions and ids
            assert!(matches!(save(&db, &ctx, "x", &serde_json::json!({"name": "x"})).await, Err(Error::Invalid(_))));
            assert!(matches!(
                save(&db, &ctx, "bad id", &serde_json::to_value(&t).unwrap()).await,
                Err(Error::Invalid(_))
            ));
            assert!(matches!(get(&db, "nope", None).await, Err(Error::NotFound(_))));
            assert!(matches!(get(&db, "lab-report", Some(9)).await, Err(Error::NotFound(_))));
        }
    }

    /// The editor's preview renders an unsaved definition (it has no database to store into); a
    /// bad definition or data missing a required field is refused, naming it.
    #[test]
    fn an_edited_definition_previews_without_being_saved() {
        let def = serde_json::json!({"name": "出院小结", "page": {"width": 595, "height": 842},
            "fields": [{"name": "patient_name", "type": "text", "rect": [60, 750, 200, 770], "required": true},
                       {"name": "doctor", "type": "signature", "rect": [400, 60, 540, 110]}]});
        let pdf = preview(&def, &serde_json::json!({"patient_name": "王小明"})).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(matches!(preview(&def, &serde_json::json!({})), Err(Error::Invalid(m)) if m.contains("patient_name")));
        let outside = serde_json::json!({"name": "x", "page": {"width": 100, "height": 100}, "fields": [{"name": "a", "type": "text", "rect": [50, 50, 300, 60]}]});
        assert!(matches!(preview(&outside, &serde_json::json!({"a": "1"})), Err(Error::Invalid(_))));
        assert!(matches!(
            preview(&serde_json::json!({"name": "x", "fields": [], "extra": 1}), &serde_json::json!({})),
            Err(Error::Invalid(_))
        ));
        // what would make rendering slow is bounded: font size, row height, columns, text length
        let with = |field: serde_json::Value| serde_json::json!({"name": "x", "page": {"width": 595, "height": 842}, "fields": [field]});
        for bad in [
            serde_json::json!({"name": "m", "type": "multiline", "rect": [0, 0, 595, 842], "size": 0.000001}),
            serde_json::json!({"name": "t", "type": "table", "rect": [0, 0, 595, 842], "row_height": 0.01, "columns": [{"key": "a", "title": "a", "width": 10}]}),
            serde_json::json!({"name": "t", "type": "table", "rect": [0, 0, 595, 842],
                "columns": (0..21).map(|i| serde_json::json!({"key": format!("c{i}"), "title": "c", "width": 10})).collect::<Vec<_>>()}),
        ] {
            assert!(matches!(preview(&with(bad.clone()), &serde_json::json!({})), Err(Error::Invalid(_))), "{bad}");
        }
        let long = with(serde_json::json!({"name": "m", "type": "multiline", "rect": [0, 0, 595, 842], "size": 4}));
        assert!(
            matches!(preview(&long, &serde_json::json!({"m": "字".repeat(20_001)})), Err(Error::Invalid(m)) if m.contains("20000"))
        );
        // the most text a field takes wraps in linear time (the whole box fills, the rest is cut)
        let t = std::time::Instant::now();
        assert!(preview(&long, &serde_json::json!({"m": "字".repeat(20_000)})).unwrap().starts_with(b"%PDF-"));
        eprintln!("a 20,000-character field rendered in {:?}", t.elapsed());
    }
}
