//! Whether the directory's database answers, what it enforces on this
//! program's connections, and its failures in words IT can act on.

use super::Location;
use super::{Directory, DirectoryError};
use sqlx::Row;

/// What the database reports for each connection's limits (PostgreSQL),
/// or for the file's (SQLite).
const POSTGRES_SETTINGS: [&str; 8] = [
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "tcp_user_timeout",
    "server_version",
];
const SQLITE_SETTINGS: [&str; 3] = ["busy_timeout", "cache_size", "journal_mode"];

impl Directory {
    /// Asks the database a trivial question: `Ok` once it answers.
    pub async fn ping(&self) -> Result<(), DirectoryError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The limits in force on one of this directory's connections, as the
    /// database itself reports them: (name, value).
    pub async fn session_report(&self) -> Result<Vec<(String, String)>, DirectoryError> {
        let mut conn = self.pool.acquire().await?;
        let sqlite = matches!(self.location, Location::Sqlite(_));
        let names: &[&str] = if sqlite {
            &SQLITE_SETTINGS
        } else {
            &POSTGRES_SETTINGS
        };
        let mut report = Vec::with_capacity(names.len());
        for name in names {
            let statement = if sqlite {
                format!("PRAGMA {name}")
            } else {
                format!("SHOW {name}")
            };
            let row = sqlx::query(sqlx::AssertSqlSafe(statement))
                .fetch_one(&mut *conn)
                .await?;
            let value = row
                .try_get::<String, _>(0)
                .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))?;
            report.push(((*name).to_string(), value));
        }
        Ok(report)
    }
}

/// A database failure in words that say what to check. sqlx's own text
/// names its internals ("pool timed out", the server's C source line).
pub(crate) fn database_words(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "the database refused the connection ({e}): is it running, and are the host and port of the `directory` setting right?"
        ),
        sqlx::Error::Io(e) => format!("cannot reach the database: {e}"),
        sqlx::Error::PoolTimedOut => {
            "no connection to the database within database.connect_timeout: it is down, unreachable or refusing connections".into()
        }
        sqlx::Error::PoolClosed => "the directory was closed".into(),
        sqlx::Error::Tls(e) => format!("TLS with the database failed: {e}"),
        sqlx::Error::Database(e) => {
            let message = e.message();
            match e.code().as_deref() {
                Some("3D000") => format!(
                    "{message}: create it, or fix the database name in the `directory` setting"
                ),
                Some("28P01" | "28000") => format!(
                    "{message}: check the role and password in the `directory` setting"
                ),
                Some("57P01" | "57P02" | "57P03") => {
                    format!("{message}: the database is stopping or starting")
                }
                Some("57014") => format!("{message} (database.statement_timeout)"),
                Some("55P03") => format!("{message} (database.lock_timeout)"),
                _ => message.to_string(),
            }
        }
        other => format!("the database failed: {other}"),
    }
}
