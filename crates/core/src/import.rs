//! CSV files for bulk work: users to import (`email,display_name,groups`)
//! and passes to issue (`email,start,lifetime,one_time`). Every row is
//! checked before anything is applied, and every bad row is reported with
//! its line number.

use crate::clock::parse_time;
use crate::directory::DirectoryError;
use crate::email::Email;
use crate::policy::Lifetime;
use crate::user::NewUser;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fmt;
use thiserror::Error;

/// One bad row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Line in the file, from 1.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// All the bad rows of a file; nothing from it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ImportErrors(pub Vec<RowError>);

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} row{} with problems; nothing was applied",
            if n == 1 { "" } else { "s" }
        )?;
        for row in &self.0 {
            write!(f, "\n  line {}: {}", row.line, row.message)?;
        }
        Ok(())
    }
}

/// A row of a pass batch.
#[derive(Debug, Clone)]
pub struct BatchRow {
    /// Whom to issue to.
    pub email: Email,
    /// When the pass starts (now if empty).
    pub start: Option<DateTime<Utc>>,
    /// Its lifetime (the policy default if empty).
    pub lifetime: Option<Lifetime>,
    /// One-time or not (the policy default if empty).
    pub one_time: Option<bool>,
}

/// The file's rows as fields, with the rows that are not even CSV.
type Records = (Vec<(u64, Vec<String>)>, Vec<RowError>);

impl BatchRow {
    /// The issue request this row asks for.
    pub fn into_request(self, replace: bool) -> crate::directory::IssueRequest {
        crate::directory::IssueRequest {
            email: self.email,
            start: self.start,
            lifetime: self.lifetime,
            one_time: self.one_time,
            replace,
        }
    }
}

/// Other names a header may give a column (what HR exports call them).
const ALIASES: &[(&str, &[&str])] = &[
    (
        "email",
        &[
            "mail",
            "e_mail",
            "email_address",
            "upn",
            "userprincipalname",
            "user_principal_name",
        ],
    ),
    ("display_name", &["name", "displayname", "full_name"]),
    ("one_time", &["onetime", "once"]),
];

/// A header cell as a column name: lower case, spaces and dashes as `_`.
fn column_name(cell: &str) -> String {
    cell.trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect()
}

/// The column of `columns` that the header cell `cell` names.
fn column_of(cell: &str, columns: &[&str]) -> Option<usize> {
    let name = column_name(cell);
    let canonical = ALIASES
        .iter()
        .find(|(_, aliases)| aliases.contains(&name.as_str()))
        .map_or(name.as_str(), |(column, _)| column);
    columns.iter().position(|c| *c == canonical)
}

/// The separator of the file: `,`, or `;` (Excel's in most of Europe) or a
/// tab, whichever the first line has most of outside quotes.
fn separator_of(text: &str) -> u8 {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut counts = [(b',', 0), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for byte in first.bytes() {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(count) = counts.iter_mut().find(|(sep, _)| *sep == byte) {
            count.1 += 1;
        }
    }
    counts
        .iter()
        .copied()
        .fold(
            (b',', 0),
            |best, next| if next.1 > best.1 { next } else { best },
        )
        .0
}

/// Where each expected column is in the file's rows: by the header's
/// names if the first row is one, else in order.
enum Layout {
    InOrder,
    /// For each column of the file, the expected column it is.
    Named(Vec<usize>),
}

/// Reads a header row: each cell must name a column, and `email` must be
/// there.
fn header_layout(cells: &[String], columns: &[&str]) -> Result<Layout, String> {
    let mut places = Vec::new();
    for cell in cells {
        match column_of(cell, columns) {
            Some(place) if places.contains(&place) => {
                return Err(format!("the column `{}` is named twice", columns[place]));
            }
            Some(place) => places.push(place),
            None => {
                return Err(format!(
                    "`{}` is not a column of this file (its columns are {})",
                    cell.trim(),
                    columns.join(", ")
                ));
            }
        }
    }
    if !places.contains(&0) {
        return Err(format!("the header has no `{}` column", columns[0]));
    }
    Ok(Layout::Named(places))
}

/// Whether the first row is a header: no cell is an address, and one
/// names a column.
fn is_header(cells: &[String], columns: &[&str]) -> bool {
    !cells.iter().any(|c| c.contains('@')) && cells.iter().any(|c| column_of(c, columns).is_some())
}

/// The file's records, as text: a byte-order mark dropped and Windows line
/// ends read as one (so that lines are counted as an editor counts them).
fn normalised(text: &str) -> String {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n")
}

/// The line (from 1) of the record that starts at byte `offset` of `text`.
/// The reader's own count, and its offset, include the blank lines it
/// skipped before the record.
fn line_at(text: &str, offset: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut end = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    while bytes.get(end) == Some(&b'\n') {
        end += 1;
    }
    let newlines = bytes[..end].iter().filter(|b| **b == b'\n').count();
    newlines as u64 + 1
}

fn records(text: &str, header: &str) -> Records {
    let columns: Vec<&str> = header.split(',').collect();
    let text = normalised(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(separator_of(&text))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut layout = None;
    for (index, record) in reader.records().enumerate() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e
                    .position()
                    .map_or(index as u64 + 1, |p| line_at(&text, p.byte()));
                errors.push(RowError {
                    line,
                    message: format!("not valid CSV: {e}"),
                });
                continue;
            }
        };
        let line = record
            .position()
            .map_or(index as u64 + 1, |p| line_at(&text, p.byte()));
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        if fields.iter().all(String::is_empty) {
            continue;
        }
        if layout.is_none() {
            if is_header(&fields, &columns) {
                match header_layout(&fields, &columns) {
                    Ok(named) => layout = Some(named),
                    // Without its columns, no row can be read.
                    Err(message) => {
                        errors.push(RowError { line, message });
                        return (rows, errors);
                    }
                }
                continue;
            }
            layout = Some(Layout::InOrder);
        }
        match in_columns(
            fields,
            layout.as_ref().unwrap_or(&Layout::InOrder),
            &columns,
        ) {
            Ok(fields) => rows.push((line, fields)),
            Err(message) => errors.push(RowError { line, message }),
        }
    }
    (rows, errors)
}

/// A row's cells in the order of `columns`.
fn in_columns(
    fields: Vec<String>,
    layout: &Layout,
    columns: &[&str],
) -> Result<Vec<String>, String> {
    let width = match layout {
        Layout::InOrder => columns.len(),
        Layout::Named(places) => places.len(),
    };
    if fields.len() > width {
        let named = match layout {
            Layout::InOrder => columns.join(","),
            Layout::Named(_) => "as many as the header".to_string(),
        };
        return Err(format!(
            "expected at most {width} columns ({named}), found {}",
            fields.len()
        ));
    }
    match layout {
        Layout::InOrder => Ok(fields),
        Layout::Named(places) => {
            let mut ordered = vec![String::new(); columns.len()];
            for (cell, place) in fields.into_iter().zip(places) {
                ordered[*place] = cell;
            }
            Ok(ordered)
        }
    }
}

fn field(fields: &[String], index: usize) -> Option<&str> {
    fields
        .get(index)
        .map(String::as_str)
        .filter(|f| !f.is_empty())
}

/// Rejects a second row for the same person.
fn check_duplicates(emails: &[(u64, Email)], errors: &mut Vec<RowError>) {
    let mut first: HashMap<&Email, u64> = HashMap::new();
    for (line, email) in emails {
        if let Some(earlier) = first.get(email) {
            errors.push(RowError {
                line: *line,
                message: format!("{email} is already on line {earlier}"),
            });
        } else {
            first.insert(email, *line);
        }
    }
}

fn finish<T>(
    rows: Vec<(u64, T)>,
    mut errors: Vec<RowError>,
) -> Result<Vec<(u64, T)>, ImportErrors> {
    errors.sort_by_key(|e| e.line);
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(ImportErrors(errors))
    }
}

/// Reads a user import: `email,display_name,groups`, groups separated by
/// `;` (or `,` inside quotes). A header row is optional.
pub fn parse_users(text: &str) -> Result<Vec<(u64, NewUser)>, ImportErrors> {
    parse_rows(text, "email,display_name,groups", user_row, |u| &u.email)
}

fn user_row(fields: &[String]) -> Result<NewUser, String> {
    let groups: Vec<String> = field(fields, 2)
        .unwrap_or_default()
        .split([';', ','])
        .map(str::to_string)
        .collect();
    Email::parse(field(fields, 0).unwrap_or_default())
        .map_err(DirectoryError::from)
        .and_then(|email| NewUser::new(email, field(fields, 1), &groups))
        .map_err(|e| e.to_string())
}

/// Reads a pass batch: `email,start,lifetime,one_time`. Empty cells take
/// the defaults (now, the policy's lifetime and one-time rule).
pub fn parse_batch(text: &str) -> Result<Vec<(u64, BatchRow)>, ImportErrors> {
    parse_rows(text, "email,start,lifetime,one_time", batch_row, |r| {
        &r.email
    })
}

/// Reads the rows of a file with `header`'s columns, each by `row`, with
/// each email (`email_of`) at most once.
fn parse_rows<T>(
    text: &str,
    header: &str,
    row: fn(&[String]) -> Result<T, String>,
    email_of: fn(&T) -> &Email,
) -> Result<Vec<(u64, T)>, ImportErrors> {
    let mut rows = Vec::new();
    let (records, mut errors) = records(text, header);
    for (line, fields) in records {
        match row(&fields) {
            Ok(parsed) => rows.push((line, parsed)),
            Err(message) => errors.push(RowError { line, message }),
        }
    }
    let emails: Vec<(u64, Email)> = rows
        .iter()
        .map(|(line, r)| (*line, email_of(r).clone()))
        .collect();
    check_duplicates(&emails, &mut errors);
    finish(rows, errors)
}

fn batch_row(fields: &[String]) -> Result<BatchRow, String> {
    let email = Email::parse(field(fields, 0).unwrap_or_default()).map_err(|e| e.to_string())?;
    let start = field(fields, 1)
        .map(parse_time)
        .transpose()
        .map_err(|e| e.to_string())?;
    let lifetime = field(fields, 2)
        .map(Lifetime::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let one_time = field(fields, 3).map(parse_flag).transpose()?;
    Ok(BatchRow {
        email,
        start,
        lifetime,
        one_time,
    })
}

/// A row of a staging queue: whose key, and IT's label for it (a serial
/// number or an asset tag, which goes into the key's name in the tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingRow {
    /// Whose key it is.
    pub email: Email,
    /// IT's label, if the row has one.
    pub label: Option<String>,
}

/// The most characters of IT's label on a staged key: with the model's
/// name it still fits a key's name.
pub const MAX_STAGING_LABEL_CHARS: usize = 32;

/// Reads a staging queue: `email,label`, a header optional; the same person
/// twice is refused.
pub fn parse_staging(text: &str) -> Result<Vec<(u64, StagingRow)>, ImportErrors> {
    parse_rows(text, "email,label", staging_row, |r| &r.email)
}

fn staging_row(fields: &[String]) -> Result<StagingRow, String> {
    let email = Email::parse(field(fields, 0).unwrap_or_default()).map_err(|e| e.to_string())?;
    let label = field(fields, 1).map(str::to_string);
    if let Some(label) = &label
        && (label.chars().count() > MAX_STAGING_LABEL_CHARS || label.chars().any(char::is_control))
    {
        return Err(format!(
            "the label must be at most {MAX_STAGING_LABEL_CHARS} characters, without control characters"
        ));
    }
    Ok(StagingRow { email, label })
}

/// Reads yes/no, true/false, 1/0.
pub fn parse_flag(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Ok(true),
        "false" | "no" | "n" | "0" => Ok(false),
        other => Err(format!("`{other}` is not yes/no, true/false or 1/0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_read_with_or_without_header() {
        let text = "email,display_name,groups\nada@example.com,Ada Lovelace,staff;new-hires\n\nbob@example.com,,\n";
        let users = parse_users(text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].0, 2);
        assert_eq!(
            users[0].1.groups,
            vec!["new-hires".to_string(), "staff".to_string()]
        );
        assert_eq!(users[1].1.display_name, None);
        assert_eq!(
            parse_users("ada@example.com,Ada,\"a,b\"").unwrap()[0]
                .1
                .groups
                .len(),
            2
        );
    }

    #[test]
    fn files_as_excel_writes_them_are_read() {
        // A byte-order mark, `;` (Excel in most of Europe) and CRLF.
        let text = "\u{feff}email;display_name;groups\r\nada@example.com;Ada Lovelace;staff\r\n\r\nnot-an-email;X;\r\n";
        let errors = parse_users(text).unwrap_err().0;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 4, "the line an editor shows");
        let users = parse_users(&text.replace("not-an-email", "bob@example.com")).unwrap();
        assert_eq!(users[0].1.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(users[1].0, 4);
        // Tabs, and a group list in quotes with the separator inside.
        let tabbed = parse_users("email\tname\tgroups\nada@example.com\tAda\t\"a;b\"\n").unwrap();
        assert_eq!(tabbed[0].1.groups.len(), 2);
        // CRLF errors name the right line without a header too.
        let errors = parse_batch("ada@example.com,,2h,\r\nbob@example.com,,forever,\r\n")
            .unwrap_err()
            .0;
        assert_eq!(errors[0].line, 2);
    }

    #[test]
    fn a_header_is_read_by_its_names() {
        let users = parse_users("Mail,Name\nada@example.com,Ada\n").unwrap();
        assert_eq!(users[0].1.email.as_str(), "ada@example.com");
        assert_eq!(users[0].1.display_name.as_deref(), Some("Ada"));
        let batch = parse_batch("lifetime,EMAIL,one-time\n2h,ada@example.com,yes\n").unwrap();
        assert_eq!(batch[0].1.lifetime.map(Lifetime::minutes), Some(120));
        assert_eq!(batch[0].1.one_time, Some(true));
        let unknown = parse_users("email,name,department\nada@example.com,Ada,R&D\n")
            .unwrap_err()
            .0;
        assert_eq!(unknown[0].line, 1);
        assert!(
            unknown[0].message.contains("`department` is not a column of this file (its columns are email, display_name, groups)"),
            "{}",
            unknown[0].message
        );
        let missing = parse_batch("start,lifetime\n,2h\n").unwrap_err().0;
        assert!(
            missing[0].message.contains("no `email` column"),
            "{}",
            missing[0].message
        );
        let twice = parse_users("email,mail\n").unwrap_err().0;
        assert!(
            twice[0].message.contains("named twice"),
            "{}",
            twice[0].message
        );
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let text = "email,display_name,groups\nnot-an-email,X,\nada@example.com,Ada,bad/group\nbob@example.com,Bob,\nBOB@example.com,Bob again,\nc@example.com,a,b,c,d\n";
        let errors = parse_users(text).unwrap_err().0;
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 5, 6]);
        assert!(errors[2].message.contains("already on line 4"));
    }

    #[test]
    fn batch_rows_take_defaults_from_empty_cells() {
        let text = "email,start,lifetime,one_time\nada@example.com,2030-01-06T09:00:00+01:00,8h,yes\nbob@example.com,,,\n";
        let rows = parse_batch(text).unwrap();
        assert_eq!(
            rows[0].1.start.unwrap().to_rfc3339(),
            "2030-01-06T08:00:00+00:00"
        );
        assert_eq!(rows[0].1.lifetime.unwrap().minutes(), 480);
        assert_eq!(rows[0].1.one_time, Some(true));
        assert!(
            rows[1].1.start.is_none()
                && rows[1].1.lifetime.is_none()
                && rows[1].1.one_time.is_none()
        );
        let errors = parse_batch(
            "ada@example.com,tomorrow,8h,yes\nbob@example.com,,5m,\ncy@example.com,,,maybe\n",
        )
        .unwrap_err();
        assert_eq!(errors.0.len(), 3);
    }

    #[test]
    fn a_staging_queue_names_its_bad_rows() {
        let text = "email,label\nada@example.com,YK-0042\nbob@example.com\nnot-an-email,x\nADA@example.com,again\ncy@example.com,a,b\ndee@example.com,0123456789012345678901234567890123\n";
        let errors = parse_staging(text).unwrap_err().0;
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7]);
        assert!(
            errors[1].message.contains("already on line 2"),
            "{errors:?}"
        );
        assert!(errors[3].message.contains("at most 32"), "{errors:?}");
        let rows = parse_staging("ada@example.com,YK-0042\nbob@example.com,\n").unwrap();
        assert_eq!(rows[0].1.label.as_deref(), Some("YK-0042"));
        assert_eq!((rows[1].0, rows[1].1.label.clone()), (2, None));
    }
}
