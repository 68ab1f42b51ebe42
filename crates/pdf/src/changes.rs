//! What changed in a PDF after a signature, and whether each change is allowed.
//!
//! The document as it was signed (the signed revision) is compared with the document as it is.
//! Every object that differs is judged by the role it plays in the document as it is now, found by
//! walking it from the catalog: a page, an annotation, a form field, a signature value, an
//! appearance, the DSS (long-term validation data), the metadata — or "other", which covers
//! content streams, fonts, images and resources. An object reached in several roles must be
//! allowed in all of them, so a font shared by a page and a new signature's appearance cannot be
//! swapped under cover of the appearance.
//!
//! Allowed after a signature, following ISO 32000-1 §12.8.2.2 (DocMDP) and the practice of
//! pyHanko's difference analysis:
//! - always: long-term validation data (`/DSS`, the ESIC extension), document timestamps,
//!   metadata (`/Info`, XMP);
//! - unless the document is certified with P = 1: new signature fields and their signatures,
//!   filling in form fields (values and appearances);
//! - only when the document is certified with P = 3, which permits it explicitly: adding,
//!   changing or removing annotations other than form widgets. An annotation can paint over
//!   signed content (the "evil annotation" attack), so without that permission it is not
//!   allowed — pyHanko judges the same way.
//!
//! Everything else — page content, resources, fonts, the page tree, a signed field's appearance,
//! a signature dictionary, an object deleted, an object that appears under an unchanged
//! reference (the "shadow" attacks) — is not allowed and named with its object and page.

use lopdf::{Dictionary, Document, Object, ObjectId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// The most objects a walk visits (a bound on hostile files).
const MAX_VISITS: usize = 2_000_000;

/// One change after a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// permitted by the rules above at the document's DocMDP level
    pub allowed: bool,
    /// `SIGNATURE_ADDED`, `SIGNATURE_FIELD_ADDED`, `DOCUMENT_TIMESTAMP_ADDED`, `DSS_UPDATED`,
    /// `METADATA_CHANGED`, `FORM_FILLED`, `ANNOTATION_ADDED`, `ANNOTATION_CHANGED`,
    /// `ANNOTATION_REMOVED`, `PAGE_CHANGED`, `CATALOG_CHANGED`, `FORM_CHANGED`,
    /// `SIGNED_FIELD_CHANGED`, `SIGNATURE_CHANGED`, `OBJECT_CHANGED`, `OBJECT_ADDED`,
    /// `OBJECT_DELETED`, `FIELD_ADDED`
    pub code: &'static str,
    /// the object (`12 0 R`)
    pub object: String,
    /// the page it belongs to (from 1), when it belongs to one
    pub page: Option<u32>,
    /// what changed (Chinese / English)
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    Catalog,
    PageTree,
    Annots,
    Annot,
    FieldList,
    Form,
    Field,
    SigValue,
    Appearance,
    Dss,
    Metadata,
    Other,
}

/// Structural equality: ignores where a stream sits in the file and how a string is written.
pub(crate) fn same(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::String(x, _), Object::String(y, _)) => x == y,
        (Object::Array(x), Object::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Object::Dictionary(x), Object::Dictionary(y)) => same_dict(x, y),
        (Object::Stream(x), Object::Stream(y)) => same_dict(&x.dict, &y.dict) && x.content == y.content,
        (Object::Integer(x), Object::Real(y)) | (Object::Real(y), Object::Integer(x)) => *x as f32 == *y,
        _ => a == b,
    }
}

fn same_dict(x: &Dictionary, y: &Dictionary) -> bool {
    x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_ok_and(|w| same(v, w)))
}

/// The keys whose values differ between two dictionaries (added and removed keys included).
fn changed_keys(old: &Dictionary, new: &Dictionary) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for (k, v) in new.iter() {
        if old.get(k).map_or(true, |w| !same(v, w)) {
            keys.push(k.clone());
        }
    }
    for (k, _) in old.iter() {
        if !new.has(k) {
            keys.push(k.clone());
        }
    }
    keys
}

fn names(keys: &[Vec<u8>]) -> String {
    keys.iter().map(|k| format!("/{}", String::from_utf8_lossy(k))).collect::<Vec<_>>().join(" ")
}

fn deref<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Object> {
    match o {
        Object::Reference(id) => doc.get_object(*id).ok(),
        x => Some(x),
    }
}

fn dict_of<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Dictionary> {
    match deref(doc, o)? {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

fn name_of<'a>(d: &'a Dictionary, key: &[u8]) -> Option<&'a [u8]> {
    d.get(key).ok().and_then(|n| n.as_name().ok())
}

/// The field type, inherited through `/Parent`.
fn field_type<'a>(doc: &'a Document, d: &'a Dictionary) -> Option<&'a [u8]> {
    let mut cur = d;
    for _ in 0..32 {
        if let Some(t) = name_of(cur, b"FT") {
            return Some(t);
        }
        cur = dict_of(doc, cur.get(b"Parent").ok()?)?;
    }
    None
}

/// References of `o` with the key they hang under at the top level (`None` inside arrays).
fn refs(o: &Object, key: Option<&[u8]>, out: &mut Vec<(Option<Vec<u8>>, ObjectId)>, depth: usize) {
    if depth > 64 {
        return;
    }
    match o {
        Object::Reference(id) => out.push((key.map(<[u8]>::to_vec), *id)),
        Object::Array(a) => a.iter().for_each(|x| refs(x, key, out, depth + 1)),
        Object::Dictionary(d) => d.iter().for_each(|(k, v)| refs(v, Some(key.unwrap_or(k)), out, depth + 1)),
        Object::Stream(s) => s.dict.iter().for_each(|(k, v)| refs(v, Some(key.unwrap_or(k)), out, depth + 1)),
        _ => {}
    }
}

/// The elements of an array value, resolved one level.
fn array_refs(doc: &Document, o: Option<&Object>) -> Vec<Object> {
    o.and_then(|o| deref(doc, o)).and_then(|o| o.as_array().ok()).cloned().unwrap_or_default()
}

/// Every element of the old array is still in the new one.
fn superset(old: &[Object], new: &[Object]) -> bool {
    old.iter().all(|o| new.iter().any(|n| same(o, n)))
}

#[derive(Debug, Clone, Copy)]
struct Rules {
    form_fill: bool,
    annotate: bool,
    certified: bool,
}

/// A widget with an area on the page (its own `/Rect` or its kids').
fn visible(doc: &Document, d: &Dictionary) -> bool {
    let area = |d: &Dictionary| {
        let r: Vec<f32> = d
            .get(b"Rect")
            .ok()
            .and_then(|r| deref(doc, r))
            .and_then(|r| r.as_array().ok())
            .map(|a| a.iter().filter_map(|x| x.as_float().ok()).collect())
            .unwrap_or_default();
        r.len() == 4 && (r[2] - r[0]).abs() > 0.0 && (r[3] - r[1]).abs() > 0.0
    };
    area(d) || array_refs(doc, d.get(b"Kids").ok()).iter().any(|k| dict_of(doc, k).is_some_and(area))
}

struct Walk {
    roles: BTreeMap<ObjectId, HashSet<Role>>,
    /// for objects reached as "other": the objects that refer to them
    parents: HashMap<ObjectId, HashSet<ObjectId>>,
}

fn child_role(
    parent: Role,
    d: Option<&Dictionary>,
    key: Option<&[u8]>,
    doc: &Document,
    old_signed: bool,
) -> Option<Role> {
    let key = key.unwrap_or(b"");
    let is_page = d.is_some_and(|d| name_of(d, b"Type") == Some(b"Page") || !d.has(b"Kids"));
    Some(match parent {
        Role::Catalog => match key {
            b"Pages" => Role::PageTree,
            b"AcroForm" => Role::Form,
            b"DSS" => Role::Dss,
            b"Metadata" => Role::Metadata,
            _ => Role::Other,
        },
        Role::PageTree => match key {
            b"Parent" => return None,
            b"Kids" if !is_page => Role::PageTree,
            b"Annots" if is_page => Role::Annots,
            _ => Role::Other,
        },
        Role::Annots => Role::Annot,
        Role::FieldList => Role::Field,
        Role::Form => match key {
            b"Fields" => Role::FieldList,
            b"DR" => Role::Appearance,
            _ => Role::Other,
        },
        Role::Field | Role::Annot => match key {
            b"Parent" | b"P" | b"IRT" => return None,
            b"Kids" => Role::Field,
            b"Popup" => Role::Annot,
            b"AP" if old_signed => Role::Other,
            b"AP" | b"DR" => Role::Appearance,
            b"V" if d.and_then(|d| field_type(doc, d)) == Some(b"Sig") => Role::SigValue,
            _ => Role::Other,
        },
        Role::SigValue => return None,
        Role::Appearance | Role::Dss | Role::Metadata | Role::Other => match key {
            b"Parent" | b"P" => return None,
            _ => parent,
        },
    })
}

/// The role of the elements of an array that plays `role`.
fn element_role(role: Role) -> Role {
    match role {
        Role::Annots => Role::Annot,
        Role::FieldList => Role::Field,
        r => r,
    }
}

struct Walker<'a> {
    new: &'a Document,
    pages: HashSet<ObjectId>,
    queue: VecDeque<(ObjectId, Role)>,
    w: Walk,
}

impl Walker<'_> {
    /// A value found in object `from`, playing `role`.
    fn value(&mut self, from: ObjectId, v: &Object, role: Role, old_signed: bool, depth: usize) {
        if depth > 64 {
            return;
        }
        match v {
            Object::Reference(id) => self.reach(from, *id, role),
            Object::Array(items) => {
                for x in items {
                    self.value(from, x, element_role(role), old_signed, depth + 1);
                }
            }
            Object::Dictionary(d) => self.dict(from, d, role, old_signed, depth + 1),
            Object::Stream(s) => self.dict(from, &s.dict, role, old_signed, depth + 1),
            _ => {}
        }
    }

    fn dict(&mut self, from: ObjectId, d: &Dictionary, role: Role, old_signed: bool, depth: usize) {
        for (k, v) in d.iter() {
            if let Some(r) = child_role(role, Some(d), Some(k), self.new, old_signed) {
                self.value(from, v, r, old_signed, depth);
            }
        }
    }

    fn reach(&mut self, from: ObjectId, id: ObjectId, role: Role) {
        // pages are judged in the page tree, wherever else they are mentioned
        if matches!(role, Role::Other | Role::Appearance | Role::Dss | Role::Metadata) && self.pages.contains(&id) {
            return;
        }
        let target = self.new.get_object(id).ok();
        let role = match (role, target) {
            (Role::Annots | Role::FieldList, Some(o)) if o.as_array().is_err() => element_role(role),
            (r, _) => r,
        };
        if role == Role::Annot
            && target.and_then(|o| dict_of(self.new, o)).is_some_and(|c| c.has(b"FT") || c.has(b"Parent"))
        {
            // a form widget is an annotation and a field
            self.queue.push_back((id, Role::Field));
        }
        if role == Role::Other {
            self.w.parents.entry(id).or_default().insert(from);
        }
        self.queue.push_back((id, role));
    }
}

fn walk(new: &Document, old: &Document) -> Walk {
    let mut k = Walker {
        new,
        pages: new.get_pages().values().copied().collect(),
        queue: VecDeque::new(),
        w: Walk { roles: BTreeMap::new(), parents: HashMap::new() },
    };
    if let Ok(root) = new.trailer.get(b"Root").and_then(|r| r.as_reference()) {
        k.queue.push_back((root, Role::Catalog));
    }
    if let Ok(info) = new.trailer.get(b"Info").and_then(|r| r.as_reference()) {
        k.queue.push_back((info, Role::Metadata));
    }
    let mut visits = 0;
    while let Some((id, role)) = k.queue.pop_front() {
        visits += 1;
        if visits > MAX_VISITS || !k.w.roles.entry(id).or_default().insert(role) {
            continue;
        }
        let Ok(obj) = new.get_object(id) else { continue };
        let old_signed = matches!(role, Role::Field | Role::Annot)
            && old
                .get_object(id)
                .ok()
                .and_then(|o| dict_of(old, o))
                .is_some_and(|od| field_type(old, od) == Some(b"Sig") && od.has(b"V"));
        match obj {
            Object::Array(items) => {
                for x in items {
                    k.value(id, x, element_role(role), old_signed, 0);
                }
            }
            Object::Dictionary(d) => k.dict(id, d, role, old_signed, 0),
            Object::Stream(s) => k.dict(id, &s.dict, role, old_signed, 0),
            _ => {}
        }
    }
    k.w
}

fn page_of(new: &Document) -> HashMap<ObjectId, u32> {
    let mut m = HashMap::new();
    for (n, id) in new.get_pages() {
        m.insert(id, n);
        if let Ok(d) = new.get_dictionary(id) {
            for a in array_refs(new, d.get(b"Annots").ok()) {
                if let Object::Reference(r) = a {
                    m.entry(r).or_insert(n);
                }
            }
            let mut out = Vec::new();
            if let Ok(c) = d.get(b"Contents") {
                refs(c, None, &mut out, 0);
            }
            for (_, r) in out {
                m.entry(r).or_insert(n);
            }
        }
    }
    m
}

/// The DocMDP level that governs the changes: `Some(1..=3)` for a certified document.
pub type Certification = Option<i64>;

/// Compare the document as signed (`old`) with the document now (`new`).
pub fn analyse(old: &Document, new: &Document, certified: Certification) -> Vec<Change> {
    let form_fill = certified.is_none_or(|p| p >= 2);
    // annotations change what a reader sees (the "evil annotation"): only an explicit P = 3
    let annotate = certified == Some(3);
    let rules = Rules { form_fill, annotate, certified: certified.is_some() };
    let w = walk(new, old);
    let pages = page_of(new);
    let old_root = old.trailer.get(b"Root").and_then(|r| r.as_reference()).ok();
    let mut out = Vec::new();
    let mut push = |allowed: bool, code: &'static str, id: ObjectId, detail: String| {
        out.push(Change {
            allowed,
            code,
            object: format!("{} {} R", id.0, id.1),
            page: pages.get(&id).copied(),
            detail,
        });
    };
    for (&id, roles) in &w.roles {
        let now = new.get_object(id).ok();
        let before = match roles.contains(&Role::Catalog) {
            true => old_root.and_then(|r| old.get_object(r).ok()),
            false => old.get_object(id).ok(),
        };
        let (now, before) = match (now, before) {
            (Some(n), Some(b)) if same(n, b) => continue,
            (None, None) => continue,
            (None, Some(_)) => {
                push(
                    false,
                    "OBJECT_DELETED",
                    id,
                    "对象被删除，仍被引用 / the object was deleted but is still referenced".into(),
                );
                continue;
            }
            (Some(n), b) => (n, b),
        };
        let nd = dict_of(new, now);
        let bd = before.and_then(|b| dict_of(old, b));
        // the strictest verdict over every role the object plays
        let mut verdicts: Vec<(bool, &'static str, String)> = Vec::new();
        for role in roles {
            verdicts.push(judge(*role, id, old, new, before, bd, nd, rules, &w));
        }
        verdicts.sort_by_key(|v| v.0);
        let (allowed, code, detail) = verdicts.swap_remove(0);
        push(allowed, code, id, detail);
    }
    // the trailer: a new /Root or /Encrypt replaces the document
    for key in [b"Root".as_slice(), b"Encrypt"] {
        let (a, b) = (old.trailer.get(key).ok(), new.trailer.get(key).ok());
        if a.is_some() != b.is_some() || a.zip(b).is_some_and(|(a, b)| !same(a, b)) {
            let root = new.trailer.get(b"Root").and_then(|r| r.as_reference()).unwrap_or((0, 0));
            let k = String::from_utf8_lossy(key);
            push(false, "CATALOG_CHANGED", root, format!("文件尾 /{k} 被替换 / the trailer's /{k} was replaced"));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn judge(
    role: Role,
    id: ObjectId,
    old: &Document,
    new: &Document,
    before: Option<&Object>,
    bd: Option<&Dictionary>,
    nd: Option<&Dictionary>,
    rules: Rules,
    w: &Walk,
) -> (bool, &'static str, String) {
    let Rules { form_fill, annotate, certified } = rules;
    let allow = |ok: bool, code, zh: &str, en: &str| (ok, code, format!("{zh} / {en}"));
    match role {
        Role::Dss => allow(true, "DSS_UPDATED", "长期验证数据（DSS）", "long-term validation data (DSS)"),
        Role::Metadata => allow(true, "METADATA_CHANGED", "文档元数据", "document metadata"),
        Role::Appearance => allow(true, "APPEARANCE_CHANGED", "表单或签名外观", "a form or signature appearance"),
        Role::SigValue => {
            let ts = nd.and_then(|d| name_of(d, b"Type")) == Some(b"DocTimeStamp");
            match before {
                None if ts => allow(true, "DOCUMENT_TIMESTAMP_ADDED", "新增文档时间戳", "a document timestamp added"),
                None => allow(true, "SIGNATURE_ADDED", "新增签名", "a signature added"),
                Some(_) => allow(
                    false,
                    "SIGNATURE_CHANGED",
                    "已有的签名字典被改动",
                    "an existing signature dictionary was changed",
                ),
            }
        }
        Role::Catalog => {
            let (Some(bd), Some(nd)) = (bd, nd) else {
                return allow(false, "CATALOG_CHANGED", "文档目录被替换", "the catalog was replaced");
            };
            let bad: Vec<_> = changed_keys(bd, nd)
                .into_iter()
                .filter(|k| !matches!(k.as_slice(), b"AcroForm" | b"DSS" | b"Extensions" | b"Metadata"))
                .collect();
            if bad.is_empty() {
                allow(true, "CATALOG_UPDATED", "目录新增表单或长期验证数据", "the catalog gained a form or LTV data")
            } else {
                let k = names(&bad);
                (false, "CATALOG_CHANGED", format!("文档目录的 {k} 被改动 / the catalog's {k} changed"))
            }
        }
        Role::PageTree => {
            let (Some(bd), Some(nd)) = (bd, nd) else {
                return allow(false, "PAGE_CHANGED", "新增或替换了页面", "a page was added or replaced");
            };
            let bad: Vec<_> = changed_keys(bd, nd).into_iter().filter(|k| k != b"Annots").collect();
            if !bad.is_empty() {
                let k = names(&bad);
                return (false, "PAGE_CHANGED", format!("页面的 {k} 被改动 / the page's {k} changed"));
            }
            let (a, b) = (array_refs(old, bd.get(b"Annots").ok()), array_refs(new, nd.get(b"Annots").ok()));
            if superset(&a, &b) {
                allow(true, "ANNOTATIONS_LISTED", "页面的注释列表新增条目", "entries added to the page's annotations")
            } else if annotate {
                allow(true, "ANNOTATION_REMOVED", "删除了注释", "an annotation was removed")
            } else {
                allow(
                    false,
                    "ANNOTATION_REMOVED",
                    "删除了注释（认证级别不允许）",
                    "an annotation was removed (not allowed by the certification)",
                )
            }
        }
        Role::Annots | Role::FieldList => {
            let (a, b) = (
                before.and_then(|b| b.as_array().ok()).cloned().unwrap_or_default(),
                new.get_object(id).ok().and_then(|o| o.as_array().ok()).cloned().unwrap_or_default(),
            );
            if before.is_none() || superset(&a, &b) {
                allow(true, "LIST_EXTENDED", "列表新增条目", "entries added to a list")
            } else {
                allow(
                    false,
                    "LIST_SHRUNK",
                    "注释或表单域列表删除了条目",
                    "entries removed from the annotations or fields",
                )
            }
        }
        Role::Form => {
            let Some(nd) = nd else { return allow(false, "FORM_CHANGED", "表单被替换", "the form was replaced") };
            let empty = Dictionary::new();
            let bd = bd.unwrap_or(&empty);
            let bad: Vec<_> = changed_keys(bd, nd)
                .into_iter()
                .filter(|k| !matches!(k.as_slice(), b"Fields" | b"SigFlags" | b"DR" | b"DA"))
                .collect();
            let fields_kept =
                superset(&array_refs(old, bd.get(b"Fields").ok()), &array_refs(new, nd.get(b"Fields").ok()));
            if !bad.is_empty() {
                let k = names(&bad);
                (false, "FORM_CHANGED", format!("表单的 {k} 被改动 / the form's {k} changed"))
            } else if !fields_kept {
                allow(false, "FORM_CHANGED", "表单域被移除", "form fields were removed")
            } else {
                allow(true, "FORM_UPDATED", "表单新增域", "fields added to the form")
            }
        }
        Role::Field | Role::Annot => {
            let Some(nd) = nd else {
                return allow(false, "OBJECT_CHANGED", "表单域或注释被替换", "a field or annotation was replaced");
            };
            let ft = field_type(new, nd);
            let widget = name_of(nd, b"Subtype") == Some(b"Widget") || ft.is_some();
            let Some(bd) = bd else {
                // new
                return match ft {
                    Some(b"Sig") => {
                        let ts = nd
                            .get(b"V")
                            .ok()
                            .and_then(|v| dict_of(new, v))
                            .is_some_and(|v| name_of(v, b"Type") == Some(b"DocTimeStamp"));
                        let visible = visible(new, nd);
                        if certified && visible && !ts {
                            // the "sneaky signature": a visible field may paint over certified content
                            allow(
                                false,
                                "SIGNATURE_FIELD_ADDED",
                                "认证后新增可见签名域（可覆盖已认证的内容）",
                                "a visible signature field added after certification (it can paint over certified content)",
                            )
                        } else if ts || form_fill {
                            allow(true, "SIGNATURE_FIELD_ADDED", "新增签名域", "a signature field added")
                        } else {
                            allow(
                                false,
                                "SIGNATURE_FIELD_ADDED",
                                "新增签名域（认证级别 P=1 不允许）",
                                "a signature field added (not allowed by certification P=1)",
                            )
                        }
                    }
                    Some(_) => allow(
                        false,
                        "FIELD_ADDED",
                        "新增了非签名的表单域",
                        "a form field other than a signature was added",
                    ),
                    None if widget => allow(
                        false,
                        "FIELD_ADDED",
                        "新增了不属于签名域的表单控件",
                        "a widget that belongs to no signature field was added",
                    ),
                    None => allow(annotate, "ANNOTATION_ADDED", "新增注释", "an annotation added"),
                };
            };
            let keys = changed_keys(bd, nd);
            let signed_before = field_type(old, bd) == Some(b"Sig") && bd.has(b"V");
            if signed_before {
                let k = names(&keys);
                return (
                    false,
                    "SIGNED_FIELD_CHANGED",
                    format!("已签名的签名域的 {k} 被改动 / the signed field's {k} changed"),
                );
            }
            if widget {
                let fill_keys = |k: &Vec<u8>| matches!(k.as_slice(), b"V" | b"AP" | b"AS" | b"Kids");
                let kids_ok = superset(&array_refs(old, bd.get(b"Kids").ok()), &array_refs(new, nd.get(b"Kids").ok()));
                let bad: Vec<_> = keys.iter().filter(|k| !fill_keys(k)).cloned().collect();
                if !bad.is_empty() || !kids_ok {
                    let k = names(&bad);
                    return (false, "FIELD_CHANGED", format!("表单域的 {k} 被改动 / the field's {k} changed"));
                }
                if ft == Some(b"Sig") {
                    (form_fill, "SIGNATURE_FIELD_FILLED", "签名域被签署 / a signature field was signed".into())
                } else {
                    (form_fill, "FORM_FILLED", "填写表单 / form filled in".into())
                }
            } else {
                allow(annotate, "ANNOTATION_CHANGED", "注释被改动", "an annotation changed")
            }
        }
        Role::Other => {
            match before {
                Some(_) => allow(
                    false,
                    "OBJECT_CHANGED",
                    "页面内容、资源或其他对象被改动",
                    "page content, a resource or another object changed",
                ),
                None => {
                    // new: only when everything that refers to it changed (under a judged change);
                    // an unchanged object that gains a target is a hidden change
                    let unchanged_parent =
                        w.parents.get(&id).into_iter().flatten().find(
                            |p| matches!((old.get_object(**p), new.get_object(**p)), (Ok(a), Ok(b)) if same(a, b)),
                        );
                    match unchanged_parent {
                        Some(p) => (
                            false,
                            "OBJECT_ADDED",
                            format!(
                                "新对象出现在未改动的对象 {} {} R 所引用之处 / a new object appeared under an unchanged reference from {} {} R",
                                p.0, p.1, p.0, p.1
                            ),
                        ),
                        None => allow(
                            true,
                            "OBJECT_ADDED",
                            "新增对象（由已判定的修改引用）",
                            "a new object referenced by a judged change",
                        ),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
