//! Reads and writes of many rows in few statements, for batches: a
//! 10,000-row batch is a few dozen statements instead of tens of
//! thousands, so that it holds the directory's write turn for as short a
//! time as the rows take to write. The statements' texts are built from
//! placeholders ([`Marks`]) alone, never from data, which is what their
//! `AssertSqlSafe` asserts.

use super::{Tx, UserRow, pass_from_row, select_passes};
use crate::pass::Pass;
use crate::{DirectoryError, Email};
use sqlx::Row as _;
use std::collections::HashMap;

/// Rows to a statement: far below SQLite's 32,766 and PostgreSQL's 65,535
/// bound values at the widest row written here (10 columns).
pub(crate) const ROWS: usize = 1000;

/// How a statement's placeholders are written for its backend: `$n` on
/// PostgreSQL; `?` on SQLite, which takes `$n` as a *named* parameter and
/// looks each name up among the statement's earlier ones, a cost that grows
/// with the square of their number (a 10,000-value statement took 0.15 s).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marks {
    numbered: bool,
}

impl Marks {
    /// The marks of `conn`'s backend.
    pub(crate) fn of(conn: &sqlx::AnyConnection) -> Self {
        Self {
            numbered: conn.backend_name() != "SQLite",
        }
    }

    /// Marks for `count` values, the first being value `first` of the
    /// statement; values are bound in the order they are written.
    pub(crate) fn list(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| {
                if self.numbered {
                    format!("${n}")
                } else {
                    "?".to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What locks the rows a `SELECT` reads until the transaction ends:
    /// `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose one writer
    /// holds every row already.
    pub(crate) fn row_lock(self) -> &'static str {
        if self.numbered { " FOR UPDATE" } else { "" }
    }

    /// `(…), (…)` for `rows` rows of `columns` values, from value 1.
    pub(crate) fn rows(self, columns: usize, rows: usize) -> String {
        (0..rows)
            .map(|row| format!("({})", self.list(row * columns + 1, columns)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs `statement` over `ids` in chunks of [`ROWS`], with `{ids}` in it
/// written as a chunk's marks and `{now}`, if there, as the mark of `now`
/// (bound first); returns the rows it changed in all.
pub(crate) async fn for_ids(
    tx: &mut Tx,
    statement: &'static str,
    now: Option<i64>,
    ids: &[&str],
) -> Result<u64, DirectoryError> {
    let marks = Marks::of(tx);
    let first = 1 + usize::from(now.is_some());
    let mut changed = 0;
    for chunk in ids.chunks(ROWS) {
        let sql = statement
            .replace("{now}", &marks.list(1, 1))
            .replace("{ids}", &marks.list(first, chunk.len()));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(now) = now {
            query = query.bind(now);
        }
        for id in chunk {
            query = query.bind(*id);
        }
        changed += query.execute(&mut **tx).await?.rows_affected();
    }
    Ok(changed)
}

/// The people `emails` name, with their groups, by email.
pub(crate) async fn users_by_email(
    tx: &mut Tx,
    emails: &[Email],
) -> Result<HashMap<Email, UserRow>, DirectoryError> {
    let marks = Marks::of(tx);
    // Locked in one order (the emails', chunk after chunk), so that two
    // batches naming some of the same people wait rather than deadlock.
    let mut emails: Vec<&Email> = emails.iter().collect();
    emails.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    emails.dedup();
    let mut users = HashMap::with_capacity(emails.len());
    for chunk in emails.chunks(ROWS) {
        let sql = format!(
            "SELECT id, email, display_name, enabled, created_at FROM users WHERE email IN ({}) \
             ORDER BY email{}",
            marks.list(1, chunk.len()),
            marks.row_lock()
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for email in chunk {
            query = query.bind(email.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            let email: String = row.try_get("email")?;
            let Ok(email) = Email::parse(&email) else {
                continue;
            };
            let user = UserRow {
                id: row.try_get("id")?,
                email: email.clone(),
                display_name: row.try_get("display_name")?,
                enabled: row.try_get::<i64, _>("enabled")? != 0,
                created_at: crate::clock::from_seconds(row.try_get("created_at")?),
                groups: Vec::new(),
            };
            users.insert(email, user);
        }
    }
    let mut by_id: HashMap<String, &mut UserRow> =
        users.values_mut().map(|u| (u.id.clone(), u)).collect();
    let ids: Vec<String> = by_id.keys().cloned().collect();
    for chunk in ids.chunks(ROWS) {
        let sql = format!(
            "SELECT user_id, group_name FROM user_groups WHERE user_id IN ({}) \
             ORDER BY user_id, group_name",
            marks.list(1, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let id: String = row.try_get("user_id")?;
            if let Some(user) = by_id.get_mut(&id) {
                user.groups.push(row.try_get("group_name")?);
            }
        }
    }
    Ok(users)
}

/// The passes of the people `user_ids` that are neither revoked nor used
/// (live, or not yet started, or ended by time), by person.
pub(crate) async fn open_passes(
    tx: &mut Tx,
    user_ids: &[String],
    now: i64,
) -> Result<HashMap<String, Vec<Pass>>, DirectoryError> {
    let marks = Marks::of(tx);
    let mut open: HashMap<String, Vec<Pass>> = HashMap::new();
    for chunk in user_ids.chunks(ROWS) {
        // A pass still being shown counts, so that two issuers do not both
        // give the person one; one left behind by a crash stops counting.
        let sql = format!(
            "{}{}) AND user_id IN ({})",
            select_passes!(
                "WHERE revoked_at IS NULL AND used_at IS NULL AND (pending_until IS NULL OR pending_until > "
            ),
            marks.list(1, 1),
            marks.list(2, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let pass = pass_from_row(&row)?;
            open.entry(pass.user_id.clone()).or_default().push(pass);
        }
    }
    Ok(open)
}
