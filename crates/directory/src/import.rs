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
        if out.len() >= MAX_ROWS {
            return Err(too_big(&format!("超过 {MAX_ROWS} 行 / more than {MAX_ROWS} lines")));
        }
        if rec.len() > MAX_COLUMNS {
            return Err(too_big(&format!("第 {line} 行有 {} 列 / line {line} has {} columns", rec.len(), rec.len())));
        }
        out.push((line, rec.iter().map(str::to_string).collect()));
    }
    Ok(out)
}

/// Spreadsheet lines read at most: the header and [`crate::users::MAX_BATCH`] users.
pub const MAX_ROWS: usize = crate::users::MAX_BATCH + 1;
/// Columns read at most (the template has 7).
pub const MAX_COLUMNS: usize = 64;
/// Non-empty cells read at most.
pub const MAX_CELLS: usize = 200_000;
/// Entries an XLSX (a zip archive) may hold.
pub const MAX_ZIP_ENTRIES: usize = 256;
/// Uncompressed bytes of one entry of an XLSX.
pub const MAX_ZIP_ENTRY_BYTES: u64 = 32 * 1024 * 1024;
/// Uncompressed bytes of all the entries of an XLSX together.
pub const MAX_ZIP_TOTAL_BYTES: u64 = 64 * 1024 * 1024;

fn too_big(what: &str) -> Error {
    Error::Invalid(format!(
        "表格过大：{what}（最多 {MAX_ROWS} 行、{MAX_COLUMNS} 列、{MAX_CELLS} 个单元格）/ the spreadsheet is too large: {what} \
         (at most {MAX_ROWS} lines, {MAX_COLUMNS} columns, {MAX_CELLS} cells)"
    ))
}

/// Check a (0-based) cell position against [`MAX_ROWS`] and [`MAX_COLUMNS`].
fn check_position(row: u32, col: u32) -> Result<()> {
    if row as usize >= MAX_ROWS {
        return Err(too_big(&format!("第 {} 行 / line {}", row as u64 + 1, row as u64 + 1)));
    }
    if col as usize >= MAX_COLUMNS {
        return Err(too_big(&format!("第 {} 列 / column {}", col as u64 + 1, col as u64 + 1)));
    }
    Ok(())
}

/// Walk every entry of the archive, inflating it into nothing, so that the real uncompressed sizes
/// (not the declared ones) are known to be bounded before calamine reads anything into memory.
fn check_zip(bytes: &[u8]) -> Result<()> {
    use std::io::Read;
    let bad = |e: String| Error::Invalid(format!("XLSX 文件无法读取 / cannot read the XLSX workbook: {e}"));
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(e.to_string()))?;
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(Error::Invalid(format!(
            "XLSX 包含 {} 个文件，最多 {MAX_ZIP_ENTRIES} 个 / the XLSX holds {} entries, at most {MAX_ZIP_ENTRIES}",
            zip.len(),
            zip.len()
        )));
    }
    let mut total = 0u64;
    let mut sink = [0u8; 16 * 1024];
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let name = entry.name().map(|n| n.chars().take(100).collect::<String>()).unwrap_or_default();
        let over = || {
            Error::Invalid(format!(
                "XLSX 解压后过大（{name}；单个文件最多 {MAX_ZIP_ENTRY_BYTES} 字节，合计最多 {MAX_ZIP_TOTAL_BYTES} 字节）/ \
                 the XLSX inflates too large ({name}; at most {MAX_ZIP_ENTRY_BYTES} bytes per entry, \
                 {MAX_ZIP_TOTAL_BYTES} in all)"
            ))
        };
        if entry.size() > MAX_ZIP_ENTRY_BYTES || total.saturating_add(entry.size()) > MAX_ZIP_TOTAL_BYTES {
            return Err(over());
        }
        // the declared size may lie: count what really comes out, one byte past the cap at most
        let mut limited = entry.take(MAX_ZIP_ENTRY_BYTES + 1);
        let mut n = 0u64;
        loop {
            let k = limited.read(&mut sink).map_err(|e| bad(e.to_string()))?;
            if k == 0 {
                break;
            }
            n += k as u64;
            if n > MAX_ZIP_ENTRY_BYTES || total + n > MAX_ZIP_TOTAL_BYTES {
                return Err(over());
            }
        }
        total += n;
    }
    Ok(())
}

fn xlsx_rows(bytes: &[u8]) -> Result<Table> {
    use calamine::{Data, Reader, Xlsx};
    let bad = |e: String| Error::Invalid(format!("XLSX 文件无法读取 / cannot read the XLSX workbook: {e}"));
    check_zip(bytes)?;
    let mut wb: Xlsx<Cursor<&[u8]>> =
        calamine::open_workbook_from_rs(Cursor::new(bytes)).map_err(|e: calamine::XlsxError| bad(e.to_string()))?;
    let sheet = wb.sheet_names().into_iter().next().ok_or_else(|| bad("没有工作表 / no worksheet".into()))?;
    let mut reader = wb.worksheet_cells_reader(&sheet).map_err(|e| bad(e.to_string()))?;
    // the declared extent first, then every cell's own reference: a far cell would otherwise make
    // the table as large as the sheet can be (16384 × 1048576 cells)
    let dim = reader.dimensions();
    check_position(dim.end.0, dim.end.1)?;
    let mut cells: Vec<calamine::Cell<Data>> = Vec::new();
    while let Some(cell) = reader.next_cell().map_err(|e| bad(e.to_string()))? {
        let (row, col) = cell.get_position();
        check_position(row, col)?;
        if matches!(cell.get_value(), calamine::DataRef::Empty) {
            continue;
        }
        if cells.len() >= MAX_CELLS {
            return Err(too_big(&format!("超过 {MAX_CELLS} 个单元格 / more than {MAX_CELLS} cells")));
        }
        cells.push(calamine::Cell::new((row, col), Data::from(cell.get_value().clone())));
    }
    // at most MAX_ROWS × MAX_COLUMNS now
    let range = calamine::Range::from_sparse(cells);
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

    /// A small valid workbook: header and one user.
    fn small_xlsx() -> rust_xlsxwriter::Workbook {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "工号").unwrap();
        ws.write_string(0, 1, "姓名").unwrap();
        ws.write_string(1, 0, "1001").unwrap();
        ws.write_string(1, 1, "张三").unwrap();
        wb
    }

    /// Copy the entries of `xlsx` into a new archive, editing them with `edit`, then let `extra`
    /// add entries.
    fn rezip(
        xlsx: &[u8],
        edit: impl Fn(&str, Vec<u8>) -> Vec<u8>,
        extra: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>),
    ) -> Vec<u8> {
        use std::io::{Read, Write};
        let mut src = zip::ZipArchive::new(Cursor::new(xlsx)).unwrap();
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for i in 0..src.len() {
            let mut f = src.by_index(i).unwrap();
            let name = f.name().unwrap().to_string();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            out.start_file(name.as_str(), opts).unwrap();
            out.write_all(&edit(&name, data)).unwrap();
        }
        extra(&mut out);
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn xlsx_far_cell_is_refused_before_allocating() {
        // 1048576 × 16384 cells would be 512 GiB: today's reader aborted the process here
        let mut wb = small_xlsx();
        wb.worksheet_from_index(0).unwrap().write_string(1_048_575, 16_383, "x").unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        assert!(bytes.len() < 16 * 1024, "a sparse file: {} bytes", bytes.len());
        let e = parse(&bytes).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("too large"), "{e}");
        // a far column alone, or a far row alone
        let mut wb = small_xlsx();
        wb.worksheet_from_index(0).unwrap().write_string(2, MAX_COLUMNS as u16, "x").unwrap();
        assert!(parse(&wb.save_to_buffer().unwrap()).unwrap_err().to_string().contains("column"));
        let mut wb = small_xlsx();
        wb.worksheet_from_index(0).unwrap().write_string(MAX_ROWS as u32, 0, "x").unwrap();
        assert!(parse(&wb.save_to_buffer().unwrap()).unwrap_err().to_string().contains("line"));
        // the largest allowed extent is still read
        let mut wb = small_xlsx();
        wb.worksheet_from_index(0).unwrap().write_string(MAX_ROWS as u32 - 1, 0, "1002").unwrap();
        wb.worksheet_from_index(0).unwrap().write_string(MAX_ROWS as u32 - 1, 1, "李四").unwrap();
        let p = parse(&wb.save_to_buffer().unwrap()).unwrap();
        assert_eq!(p.lines, vec![2, MAX_ROWS]);
    }

    #[test]
    fn xlsx_declared_dimension_is_checked() {
        let xlsx = small_xlsx().save_to_buffer().unwrap();
        let lying = rezip(
            &xlsx,
            |name, data| {
                if name != "xl/worksheets/sheet1.xml" {
                    return data;
                }
                let xml = String::from_utf8(data).unwrap();
                assert!(xml.contains(r#"<dimension ref="A1:B2"/>"#), "{xml}");
                xml.replace(r#"<dimension ref="A1:B2"/>"#, r#"<dimension ref="A1:XFD1048576"/>"#).into_bytes()
            },
            |_| {},
        );
        let e = parse(&lying).unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
        // the same archive with the true dimension is fine
        assert_eq!(parse(&rezip(&xlsx, |_, d| d, |_| {})).unwrap().users.len(), 1);
    }

    #[test]
    fn xlsx_zip_bomb_and_entry_count_are_refused() {
        use std::io::Write;
        let xlsx = small_xlsx().save_to_buffer().unwrap();
        // 40 MiB of zeros deflate to a few dozen KiB
        let bomb = rezip(
            &xlsx,
            |_, d| d,
            |z| {
                z.start_file("xl/media/bomb.bin", zip::write::SimpleFileOptions::default()).unwrap();
                let mib = vec![0u8; 1024 * 1024];
                for _ in 0..40 {
                    z.write_all(&mib).unwrap();
                }
            },
        );
        assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
        let e = parse(&bomb).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("inflates too large"), "{e}");
        // many small entries
        let many = rezip(
            &xlsx,
            |_, d| d,
            |z| {
                for i in 0..MAX_ZIP_ENTRIES {
                    z.start_file(format!("x/{i}.txt"), zip::write::SimpleFileOptions::default()).unwrap();
                }
            },
        );
        let e = parse(&many).unwrap_err().to_string();
        assert!(e.contains("entries"), "{e}");
    }

    #[test]
    fn csv_rows_and_columns_are_bounded() {
        let wide = format!("工号,姓名{}\n1,a{}\n", ",x".repeat(MAX_COLUMNS), ",".repeat(MAX_COLUMNS));
        assert!(parse(wide.as_bytes()).unwrap_err().to_string().contains("columns"));
        let mut long = String::from("工号,姓名\n");
        for i in 0..MAX_ROWS {
            long.push_str(&format!("{i},n\n"));
        }
        assert!(parse(long.as_bytes()).unwrap_err().to_string().contains("lines"));
    }
}
