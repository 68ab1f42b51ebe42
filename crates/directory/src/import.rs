//! Batch user import from a spreadsheet (R1.4, R7.4.1): CSV in UTF-8 (with or without BOM) or
//! GBK/GB18030 — what hospital HIS exports usually are — and XLSX. Column headers in Chinese or
//! English; every problem is reported with its spreadsheet line, and the whole file is refused
//! when any line is bad (the import then goes through [`crate::users::create_many`], all or
//! nothing).

use crate::users::{NewUser, Role};
use medsign_store::{Error, Result, RowError};
use std::io::Cursor;

/// The downloadable template (UTF-8 with BOM so that Excel opens it in Chinese).
pub const TEMPLATE_CSV: &str = "\u{feff}工号,姓名,科室,职称,手机,身份证号,角色\r\n1001,张三,心内科,主治医师,13800000000,11010519491231002X,医生\r\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Col {
    EmployeeNo,
    Name,
    Department,
    Title,
    Phone,
    IdCard,
    Role,
}

fn column(header: &str) -> Option<Col> {
    let h = header.trim().trim_start_matches('\u{feff}').to_lowercase();
    Some(match h.as_str() {
        "工号" | "职工号" | "员工号" | "employee_no" => Col::EmployeeNo,
        "姓名" | "name" => Col::Name,
        "科室" | "部门" | "department" => Col::Department,
        "职称" | "title" => Col::Title,
        "手机" | "手机号" | "电话" | "phone" => Col::Phone,
        "身份证号" | "身份证" | "身份证号码" | "id_card" => Col::IdCard,
        "角色" | "role" => Col::Role,
        _ => return None,
    })
}

fn role(v: &str) -> Option<Role> {
    Some(match v.trim().to_lowercase().as_str() {
        "" | "医生" | "医师" | "doctor" => Role::Doctor,
        "护士" | "nurse" => Role::Nurse,
        "药师" | "pharmacist" => Role::Pharmacist,
        "技师" | "technician" => Role::Technician,
        "管理员" | "admin" => Role::Admin,
        "审计员" | "auditor" => Role::Auditor,
        _ => return None,
    })
}

/// What was read: the users, their spreadsheet lines, and the columns that were ignored.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// users in file order
    pub users: Vec<NewUser>,
    /// spreadsheet line of each user (header = line 1)
    pub lines: Vec<usize>,
    /// headers that are not user fields
    pub ignored_columns: Vec<String>,
}

/// Parse a CSV or XLSX file (detected from its bytes).
pub fn parse(bytes: &[u8]) -> Result<Parsed> {
    if bytes.is_empty() {
        return Err(Error::Invalid("文件为空 / the file is empty".into()));
    }
    let table = if bytes.starts_with(b"PK\x03\x04") { xlsx_rows(bytes)? } else { csv_rows(bytes)? };
    rows_to_users(table)
}

/// (line, cells)
type Table = Vec<(usize, Vec<String>)>;

fn decode_text(bytes: &[u8]) -> Result<String> {
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return String::from_utf8(rest.to_vec()).map_err(|_| {
            Error::Invalid("文件声明为 UTF-8 但内容不是 UTF-8 / the file has a UTF-8 BOM but is not UTF-8".into())
        });
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_string());
    }
    let (text, _, had_errors) = encoding_rs::GB18030.decode(bytes);
    if had_errors {
        return Err(Error::Invalid(
            "无法识别文件编码（支持 UTF-8 和 GBK）/ unknown text encoding (UTF-8 and GBK are supported)".into(),
        ));
    }
    Ok(text.into_owned())
}

fn csv_rows(bytes: &[u8]) -> Result<Table> {
    let text = decode_text(bytes)?;
    if text.contains('\0') {
        return Err(Error::Invalid("不是文本文件（CSV）或 XLSX / not a CSV text file or an XLSX workbook".into()));
    }
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(false).from_reader(text.as_bytes());
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            Error::Invalid(format!("CSV 第 {line} 行格式错误 / malformed CSV at line {line}: {e}"))
        })?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(out.len() + 1);
        out.push((line, rec.iter().map(str::to_string).collect()));
    }
    Ok(out)
}

fn xlsx_rows(bytes: &[u8]) -> Result<Table> {
    use calamine::{Data, Reader, Xlsx};
    let bad = |e: String| Error::Invalid(format!("XLSX 文件无法读取 / cannot read the XLSX workbook: {e}"));
    let mut wb: Xlsx<Cursor<Vec<u8>>> = calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec()))
        .map_err(|e: calamine::XlsxError| bad(e.to_string()))?;
    let range = wb
        .worksheet_range_at(0)
        .ok_or_else(|| bad("没有工作表 / no worksheet".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let first_row = range.start().map(|(r, _)| r as usize).unwrap_or(0);
    let mut out = Vec::new();
    for (i, row) in range.rows().enumerate() {
        let line = first_row + i + 1;
        let cells = row
            .iter()
            .map(|c| match c {
                Data::String(s) => Ok(s.clone()),
                Data::Int(v) => Ok(v.to_string()),
                Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(format!("{f:.0}")),
                Data::Float(f) => Ok(f.to_string()),
                Data::Bool(b) => Ok(b.to_string()),
                Data::Empty => Ok(String::new()),
                Data::DateTimeIso(s) | Data::DurationIso(s) => Ok(s.clone()),
                Data::DateTime(d) => Ok(d.to_string()),
                Data::Error(e) => {
                    Err(Error::Invalid(format!("XLSX 第 {line} 行有错误单元格 {e} / error cell at line {line}")))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        out.push((line, cells));
    }
    Ok(out)
}

fn rows_to_users(table: Table) -> Result<Parsed> {
    let mut rows = table.into_iter().filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()));
    let (_, header) = rows.next().ok_or_else(|| Error::Invalid("文件没有表头 / the file has no header row".into()))?;
    let cols: Vec<Option<Col>> = header.iter().map(|h| column(h)).collect();
    let ignored_columns =
        header.iter().zip(&cols).filter(|(_, c)| c.is_none()).map(|(h, _)| h.trim().to_string()).collect();
    for (need, label) in [(Col::EmployeeNo, "工号/employee_no"), (Col::Name, "姓名/name")] {
        if !cols.contains(&Some(need)) {
            return Err(Error::Invalid(format!("缺少必需的列 {label} / missing the required column {label}")));
        }
    }
    let mut users = Vec::new();
    let mut lines = Vec::new();
    let mut errs = Vec::new();
    for (line, cells) in rows {
        let get = |c: Col| -> String {
            cols.iter()
                .position(|x| *x == Some(c))
                .and_then(|i| cells.get(i))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let opt = |c: Col| Some(get(c)).filter(|s| !s.is_empty());
        let r = match role(&get(Col::Role)) {
            Some(r) => r,
            None => {
                errs.push(RowError {
                    row: line,
                    field: "role".into(),
                    message: format!(
                        "未知角色 '{}'（医生、护士、药师、技师、管理员、审计员）/ unknown role",
                        get(Col::Role)
                    ),
                });
                Role::Doctor
            }
        };
        users.push(NewUser {
            employee_no: get(Col::EmployeeNo),
            name: get(Col::Name),
            department: opt(Col::Department),
            title: opt(Col::Title),
            phone: opt(Col::Phone),
            id_card: opt(Col::IdCard),
            role: r,
        });
        lines.push(line);
    }
    if !errs.is_empty() {
        return Err(Error::InvalidRows(errs));
    }
    if users.is_empty() {
        return Err(Error::Invalid("文件中没有用户数据 / the file has no user rows".into()));
    }
    Ok(Parsed { users, lines, ignored_columns })
}

/// Map batch row indexes (from 0) of [`crate::users::create_many`] errors to spreadsheet lines.
pub fn to_lines(e: Error, lines: &[usize]) -> Error {
    match e {
        Error::InvalidRows(rows) => Error::InvalidRows(
            rows.into_iter().map(|r| RowError { row: lines.get(r.row).copied().unwrap_or(r.row), ..r }).collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_gbk_and_bom_csv() {
        let csv = "工号,姓名,科室,角色,备注\n1001,张三,心内科,医生,x\n1002,李四,,护士,\n";
        let p = parse(csv.as_bytes()).unwrap();
        assert_eq!(p.users.len(), 2);
        assert_eq!(p.users[1].role, Role::Nurse);
        assert_eq!(p.users[1].department, None);
        assert_eq!(p.lines, vec![2, 3]);
        assert_eq!(p.ignored_columns, vec!["备注"]);
        let (gbk, _, _) = encoding_rs::GBK.encode(csv);
        assert!(std::str::from_utf8(&gbk).is_err(), "really GBK");
        let p = parse(&gbk).unwrap();
        assert_eq!(p.users[0].name, "张三");
        let p = parse(TEMPLATE_CSV.as_bytes()).unwrap();
        assert_eq!(p.users[0].id_card.as_deref(), Some("11010519491231002X"));
    }

    #[test]
    fn broken_files_are_refused_with_reasons() {
        let e = parse(b"").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = parse("姓名\n张三\n".as_bytes()).unwrap_err().to_string();
        assert!(e.contains("employee_no"), "{e}");
        let e = parse("工号,姓名\n1,a\n2,b,c\n".as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 3") || e.contains("第 3 行"), "{e}");
        let e = parse(&[0xff, 0xfe, 0xfd, 0x81, 0x30]).unwrap_err().to_string();
        assert!(e.contains("encoding") || e.contains("header"), "{e}");
        let e = parse(b"PK\x03\x04garbage").unwrap_err().to_string();
        assert!(e.contains("XLSX"), "{e}");
        let Error::InvalidRows(r) = parse("工号,姓名,角色\n1,a,院长\n".as_bytes()).unwrap_err() else {
            panic!()
        };
        assert_eq!((r[0].row, r[0].field.as_str()), (2, "role"));
        assert!(parse("工号,姓名\n".as_bytes()).is_err(), "no rows");
    }

    #[test]
    fn xlsx_with_numbers_and_text() {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        for (c, h) in ["工号", "姓名", "身份证号", "手机"].iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        ws.write_number(1, 0, 1001.0).unwrap();
        ws.write_string(1, 1, "张三").unwrap();
        ws.write_string(1, 2, "11010519491231002X").unwrap();
        ws.write_number(1, 3, 13800000000.0).unwrap();
        ws.write_string(3, 0, "1003").unwrap(); // a blank line 3 in between
        ws.write_string(3, 1, "王五").unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        let p = parse(&bytes).unwrap();
        assert_eq!(p.users.len(), 2);
        assert_eq!(p.users[0].employee_no, "1001");
        assert_eq!(p.users[0].phone.as_deref(), Some("13800000000"));
        assert_eq!(p.lines, vec![2, 4]);
        // mapping batch errors back to lines
        let e = to_lines(
            Error::InvalidRows(vec![RowError { row: 1, field: "name".into(), message: "m".into() }]),
            &p.lines,
        );
        let Error::InvalidRows(r) = e else { panic!() };
        assert_eq!(r[0].row, 4);
    }
}
