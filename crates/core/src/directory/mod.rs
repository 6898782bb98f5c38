//! The directory: people, passes, methods, policy, lockouts and the audit
//! log, in an embedded SQLite file or a shared PostgreSQL database.
//!
//! One code path serves both through `sqlx::Any`; each backend has its own
//! migrations. Every write runs in a transaction that first takes the
//! directory's write turn (see [`Directory::write`]), so a crash at any point
//! leaves either all of an operation or none of it.

pub mod admin_keys;
pub mod admins;
pub(crate) mod bulk;
pub mod entra;
pub mod entra_batches;
mod health;
pub mod methods;
mod passes;
mod policy;
pub mod roles;
pub mod security_keys;
mod users;

pub use admins::{AdminError, AdminName};
pub use passes::{IssueRequest, IssuedPass, PENDING_LEASE};

use crate::audit::Event;
use crate::clock::Clock;
use crate::config::{DatabaseTimeouts, SessionSettings};
use crate::email::{Email, EmailError};
use crate::import::ImportErrors;
use crate::keys::DirectoryKey;
use crate::lockout::LockoutSettings;
use crate::policy::PolicyError;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Where the directory lives. Its `Debug` and `Display` hide a PostgreSQL
/// password.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A shared PostgreSQL database, by URL.
    Postgres(String),
}

/// A directory location that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{0}` is neither a file path nor a postgres:// URL")]
pub struct LocationError(String);

impl Location {
    /// Reads a `postgres://` / `postgresql://` URL, an `sqlite:` URL or a path.
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        let text = text.trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            url::Url::parse(text).map_err(|_| LocationError(redact(text)))?;
            Ok(Self::Postgres(text.to_string()))
        } else if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            Ok(Self::Sqlite(expand_home(path)))
        } else if text.is_empty() || text.contains("://") {
            Err(LocationError(redact(text)))
        } else {
            Ok(Self::Sqlite(expand_home(text)))
        }
    }

    /// The URL sqlx connects to (with the password, if any: do not print it).
    pub fn connection_url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}?mode=rwc", encode_path(path)),
            Self::Postgres(url) => url.clone(),
        }
    }
}

/// `~/…` as the home folder, as people write it in a config file.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), directories::BaseDirs::new()) {
        (Some(rest), Some(dirs)) => dirs.home_dir().join(rest),
        _ => PathBuf::from(path),
    }
}

/// Escapes the characters that sqlx's SQLite URL would read as syntax.
fn encode_path(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    text.replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23")
}

/// Hides the password of a URL, in its user part or a `password=` parameter.
fn redact(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        // Unparseable: hide everything between the scheme and the host.
        return match (text.find("://"), text.rfind('@')) {
            (Some(start), Some(end)) if end > start => {
                format!("{}***{}", &text[..start + 3], &text[end..])
            }
            _ => text.to_string(),
        };
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if query.iter().any(|(k, _)| k == "password") {
        let hidden = query.iter().map(|(k, v)| {
            let v = if k == "password" { "***" } else { v.as_str() };
            (k.as_str(), v)
        });
        url.query_pairs_mut().clear().extend_pairs(hidden);
    }
    url.to_string()
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// What can go wrong in the directory. Each variant is a fact the caller
/// can act on.
#[derive(Debug, Error)]
pub enum DirectoryError {
    /// The database failed or could not be reached. No `source`: the words
    /// already say all of it, and a chain would repeat them.
    #[error("{}", health::database_words(.0))]
    Database(sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("directory schema upgrade failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `tapctl init` has not been run for this directory.
    #[error("the directory {0} is not initialised: run `tapctl init`")]
    NotInitialised(String),
    /// The schema is older than this program's.
    #[error("the directory {0} was made by an older tapkiosk: run `tapctl migrate` to upgrade it")]
    SchemaOutdated(String),
    /// The key in this kiosk's store is not the directory's key.
    #[error(
        "the directory key held here does not belong to the directory {0}: import the directory's key with `tapctl key import`"
    )]
    WrongKey(String),
    /// An email address that is not one.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// A value the user gave that breaks a rule (display name, group…).
    #[error("{0}")]
    Invalid(String),
    /// Adding someone already there.
    #[error("{0} is already in the directory")]
    UserExists(Email),
    /// Nobody with that email.
    #[error("{0} is not in the directory")]
    UserNotFound(Email),
    /// Issuing a pass to someone who is disabled.
    #[error("{0} is disabled: enable them before issuing a pass")]
    UserDisabled(Email),
    /// Issuing a second live pass without asking to replace the first.
    #[error("{email} already has a {status} pass: add --replace to revoke it and issue a new one")]
    LivePassExists {
        /// The person.
        email: Email,
        /// The live pass's state.
        status: &'static str,
    },
    /// A policy saved over one that changed since it was read.
    #[error("the policy was changed by someone else since it was read")]
    PolicyChanged,
    /// Revoking when there is nothing to revoke.
    #[error("{0} has no live pass to revoke")]
    NoLivePass(Email),
    /// The policy is off or does not target the person.
    #[error("the policy does not let {0} use passes: it is turned off, or it targets other groups")]
    NotTargeted(Email),
    /// A start time already past.
    #[error("the start time {0} is in the past")]
    StartInPast(String),
    /// Against the policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Rows of an import or batch that cannot be applied; nothing was.
    #[error(transparent)]
    Rows(#[from] ImportErrors),
    /// A kiosk session's pass no longer works: the claim on a one-time pass
    /// lapsed and another kiosk took it, or the pass was revoked, expired or
    /// disabled, or its holder was disabled or removed.
    #[error("this session's pass no longer works")]
    ClaimLost,
    /// The policy does not allow this model of security key.
    #[error("the policy does not allow this model of security key ({})", aaguid.map_or("it reported none".to_string(), |a| a.to_string()))]
    KeyNotAllowed {
        /// The model (AAGUID) the key reported.
        aaguid: Option<uuid::Uuid>,
    },
    /// The key could not prove its model against the attestation roots.
    #[error("this security key could not prove its model ({})", aaguid.map_or("it reported none".to_string(), |a| a.to_string()))]
    KeyUnproven {
        /// The model (AAGUID) the key claimed.
        aaguid: Option<uuid::Uuid>,
    },
    /// This key credential is already registered.
    #[error("this security key is already registered")]
    KeyRegistered,
    /// A record that only tapkiosk writes no longer matches its MAC: someone
    /// changed the database directly.
    #[error(
        "{0} in the directory was changed outside tapkiosk (its MAC does not match): restore it from a backup, or set it again with tapctl"
    )]
    Tampered(&'static str),
    /// A key's signature counter did not move forward: it may be cloned.
    #[error("this security key's signature counter went backwards: it may have been cloned")]
    KeyCloned,
}

impl From<sqlx::Error> for DirectoryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

impl DirectoryError {
    /// Whether the database could not be reached or stopped answering
    /// (rather than refusing what was asked): worth trying again later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => {
                // PostgreSQL shutting down, starting, or out of connections.
                matches!(
                    e.code().as_deref(),
                    Some("57P01" | "57P02" | "57P03" | "53300")
                )
            }
            // Not `Protocol`: a message the driver cannot read is a fault of
            // ours or of the server's that waiting does not mend. `Tls` is
            // kept: a certificate that fails today is mended on the server.
            Self::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

/// Settings the directory applies, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who acts, as written in the audit log (e.g. `tapctl:alice`).
    pub actor: String,
    /// This kiosk's name.
    pub kiosk: String,
    /// Guessing rules.
    pub lockout: LockoutSettings,
    /// Session rules.
    pub session: SessionSettings,
    /// How long the database may keep a caller waiting.
    pub database: DatabaseTimeouts,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            actor: "system".into(),
            kiosk: "kiosk".into(),
            lockout: LockoutSettings::default(),
            session: SessionSettings::default(),
            database: DatabaseTimeouts::default(),
        }
    }
}

/// An open directory. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Directory {
    pub(crate) pool: AnyPool,
    pub(crate) location: Location,
    pub(crate) key: Arc<DirectoryKey>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
}

/// A write transaction that holds the directory's write turn.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The groups of the user with id `user_id`, by name.
pub(crate) async fn groups_of(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> Result<Vec<String>, DirectoryError> {
    let rows =
        sqlx::query("SELECT group_name FROM user_groups WHERE user_id = $1 ORDER BY group_name")
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>("group_name"))
        .collect::<Result<Vec<_>, _>>()?)
}

async fn connect(
    location: &Location,
    timeouts: DatabaseTimeouts,
) -> Result<AnyPool, DirectoryError> {
    sqlx::any::install_default_drivers();
    if let Location::Sqlite(path) = location {
        prepare_sqlite_file(path).map_err(|e| DirectoryError::Database(sqlx::Error::Io(e)))?;
    }
    let sqlite = matches!(location, Location::Sqlite(_));
    let session = session_settings(sqlite, timeouts);
    let options = AnyPoolOptions::new()
        .max_connections(if sqlite { 4 } else { 8 })
        .acquire_timeout(std_duration(timeouts.connect))
        .after_connect(move |conn, _| {
            let session = session.clone();
            Box::pin(async move {
                for statement in session {
                    sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        });
    let url = location.connection_url();
    if !sqlite {
        reachable(&url, timeouts.connect).await?;
    }
    let pool = options.connect(&url).await?;
    if sqlite {
        // WAL lets kiosk reads go on during a write and survives power loss
        // as well as the default journal; the setting is kept in the file.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    Ok(pool)
}

/// One plain connection first: the pool retries a refused connection
/// until its timeout and then says only that it timed out, where this
/// says at once why (refused, no such host, a wrong password).
async fn reachable(url: &str, timeout: chrono::TimeDelta) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let attempt = sqlx::AnyConnection::connect(url);
    match tokio::time::timeout(std_duration(timeout), attempt).await {
        Ok(connection) => connection?.close().await,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

/// What each new connection is told first. The texts hold only numbers
/// of milliseconds from the configuration.
fn session_settings(sqlite: bool, timeouts: DatabaseTimeouts) -> Vec<String> {
    let ms = |span: chrono::TimeDelta| span.num_milliseconds();
    if sqlite {
        vec![
            // 64 MiB of page cache (the default is 2 MiB): a batch's rows go
            // into indexes keyed by random ids, which miss a small cache on
            // nearly every row once the log is large.
            "PRAGMA cache_size = -65536".into(),
            format!("PRAGMA busy_timeout = {}", ms(timeouts.lock)),
        ]
    } else {
        vec![
            format!("SET statement_timeout = {}", ms(timeouts.statement)),
            format!("SET lock_timeout = {}", ms(timeouts.lock)),
            format!(
                "SET idle_in_transaction_session_timeout = {}",
                ms(timeouts.idle_in_transaction)
            ),
            // The server's side of the connection: sqlx sets no keepalive
            // on the kiosk's side, so it is the server that notices a kiosk
            // gone silent and frees what it held.
            format!(
                "SET tcp_keepalives_idle = {}",
                timeouts.keepalive.num_seconds()
            ),
            format!(
                "SET tcp_keepalives_interval = {}",
                (timeouts.keepalive.num_seconds() / 3).max(1)
            ),
            "SET tcp_keepalives_count = 3".into(),
            // Data the kiosk never acknowledges (a send into a cut network)
            // ends the connection too, instead of retransmitting for ~15 min.
            format!("SET tcp_user_timeout = {}", ms(timeouts.keepalive) * 2),
        ]
    }
}

fn std_duration(span: chrono::TimeDelta) -> std::time::Duration {
    span.to_std().unwrap_or(std::time::Duration::from_secs(10))
}

/// Creates the SQLite file's folder and the file itself readable only by
/// its owner: it holds pass HMACs and the audit log.
fn prepare_sqlite_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

impl Directory {
    /// Creates the directory at `location` if it is new (schema, default
    /// policy, the key's check value) and opens it. On an existing
    /// directory it upgrades the schema and checks the key. Returns whether
    /// the directory was new.
    pub async fn init(
        location: &Location,
        key: DirectoryKey,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<(Self, bool), DirectoryError> {
        let directory = Self::connect(location, key, clock, settings).await?;
        migrator(location).run(&directory.pool).await?;
        let created = directory.create_meta().await?;
        directory.check_key().await?;
        directory.seal_records().await?;
        Ok((directory, created))
    }

    /// Opens an initialised directory whose schema is up to date. Kiosks
    /// never change the schema: they may run as a database role that cannot
    /// (see [`Directory::grant_kiosk_role`]); `tapctl migrate` upgrades it.
    pub async fn open(
        location: &Location,
        key: DirectoryKey,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, DirectoryError> {
        let directory = Self::connect(location, key, clock, settings).await?;
        directory.check_key().await?;
        directory.check_schema().await?;
        Ok(directory)
    }

    /// Opens an initialised directory as its owner, upgrading its schema
    /// (and binding older records to the key) if needed.
    pub async fn migrate(
        location: &Location,
        key: DirectoryKey,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, DirectoryError> {
        let directory = Self::connect(location, key, clock, settings).await?;
        directory.check_key().await?;
        migrator(location).run(&directory.pool).await?;
        directory.seal_records().await?;
        Ok(directory)
    }

    /// Refuses a schema older than this program's, or records not yet
    /// bound to the key: `tapctl migrate` brings both up to date.
    async fn check_schema(&self) -> Result<(), DirectoryError> {
        let latest = migrator(&self.location)
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?
                .try_get("v")?;
        let sealed: i64 = sqlx::query("SELECT records_sealed FROM directory_meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_or(Ok(0), |row| row.try_get("records_sealed"))?;
        if applied.unwrap_or(0) < latest || sealed == 0 {
            return Err(DirectoryError::SchemaOutdated(self.location.to_string()));
        }
        Ok(())
    }

    async fn connect(
        location: &Location,
        key: DirectoryKey,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, DirectoryError> {
        let pool = connect(location, settings.database).await?;
        Ok(Self {
            pool,
            location: location.clone(),
            key: Arc::new(key),
            clock,
            settings,
        })
    }

    /// Where the directory is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current time on the directory's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_meta(&self) -> Result<bool, DirectoryError> {
        let mut tx = self.pool.begin().await?;
        let now = self.now().timestamp();
        // Two kiosks initialising at once: one inserts, the other finds the
        // row taken and then fails the key check with a clear message.
        let inserted = sqlx::query(
            "INSERT INTO directory_meta \
             (id, key_check, write_turn, audit_head_seq, audit_head_mac, audit_head_tag, created_at, records_sealed) \
             VALUES (1, $1, 0, 0, $2, $3, $4, 1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(self.key.check_value().to_vec())
        .bind(vec![0u8; 32])
        .bind(self.key.audit_head_tag(0, &[0u8; 32]).to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        let policy = serde_json::to_string(&crate::policy::Policy::default())
            .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        sqlx::query("INSERT INTO policy (id, settings, mac, updated_at) VALUES (1, $1, $2, $3)")
            .bind(&policy)
            .bind(self.policy_mac(&policy))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        self.audit(&mut tx, Event::new("directory_initialised"))
            .await?;
        self.commit(tx).await?;
        Ok(true)
    }

    async fn check_key(&self) -> Result<(), DirectoryError> {
        let not_initialised = || DirectoryError::NotInitialised(self.location.to_string());
        let query = sqlx::query("SELECT key_check FROM directory_meta WHERE id = 1");
        let row = match query.fetch_optional(&self.pool).await {
            Ok(row) => row.ok_or_else(not_initialised)?,
            Err(e) if is_missing_table(&e) => return Err(not_initialised()),
            Err(e) => return Err(e.into()),
        };
        let stored: Vec<u8> = row.try_get("key_check")?;
        if self.key.matches_check(&stored) {
            Ok(())
        } else {
            Err(DirectoryError::WrongKey(self.location.to_string()))
        }
    }

    /// Binds the rows written before records carried MACs (a directory
    /// created by an older tapkiosk): each pass's MAC to its row, and the
    /// policy to its MAC. Done once; the flag says so.
    async fn seal_records(&self) -> Result<(), DirectoryError> {
        let sealed: i64 = sqlx::query("SELECT records_sealed FROM directory_meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get("records_sealed")?;
        if sealed != 0 {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let rows = sqlx::query(select_passes!("")).fetch_all(&mut *tx).await?;
        for row in &rows {
            let pass = pass_from_row(row)?;
            let value_mac: Vec<u8> = row.try_get("value_mac")?;
            sqlx::query("UPDATE passes SET value_mac = $1 WHERE id = $2")
                .bind(self.key.bind_pass(&pass.binding(), &value_mac).to_vec())
                .bind(&pass.id)
                .execute(&mut *tx)
                .await?;
        }
        let settings: String = sqlx::query("SELECT settings FROM policy WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("settings")?;
        sqlx::query("UPDATE policy SET mac = $1 WHERE id = 1")
            .bind(self.policy_mac(&settings))
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE directory_meta SET records_sealed = 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let event = Event::new("records_sealed").with("passes", rows.len());
        self.audit(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Whether the directory is shared by a fleet (PostgreSQL), where
    /// writers run side by side, or one kiosk's file (SQLite), which has
    /// one writer at a time.
    pub(crate) fn shared(&self) -> bool {
        matches!(self.location, Location::Postgres(_))
    }

    /// Begins a write that changes what the whole directory shares (the
    /// policy, administrators, Entra batches): such writes take turns on
    /// both backends, on one row of `directory_meta`. They are rare, and
    /// the checks they make (the last administrator, say) span many rows.
    ///
    /// The first statement is a write so that SQLite takes its write lock at
    /// once (a read-then-write transaction can fail to upgrade under
    /// contention).
    pub(crate) async fn write(&self) -> Result<Tx, DirectoryError> {
        let mut tx = self.pool.begin().await?;
        take_turn(&mut tx).await?;
        Ok(tx)
    }

    /// Begins a write about people (a sign-in, a pass, a method). SQLite
    /// takes its one write lock, as [`write`](Self::write) does. On
    /// PostgreSQL it takes nothing: the writer locks the rows of the people
    /// it changes, first thing ([`lock_user`](Self::lock_user),
    /// [`bulk::users_by_email`]), so that writes about one person go one at
    /// a time, as their checks need, and writes about others do not wait.
    pub(crate) async fn write_people(&self) -> Result<Tx, DirectoryError> {
        let mut tx = self.pool.begin().await?;
        if !self.shared() {
            take_turn(&mut tx).await?;
        }
        Ok(tx)
    }

    /// [`write_people`](Self::write_people) about the person with id
    /// `user_id`, their row locked.
    pub(crate) async fn write_person(&self, user_id: &str) -> Result<Tx, DirectoryError> {
        let mut tx = self.write_people().await?;
        if self.shared() {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// [`write_people`](Self::write_people) about the person with `email`:
    /// the email locked as a sign-in there locks it, then their row (if
    /// they exist), so that two writes adding the same person also take
    /// turns.
    pub(crate) async fn write_person_by_email(&self, email: &Email) -> Result<Tx, DirectoryError> {
        let mut tx = self.write_people().await?;
        self.lock_key(&mut tx, email.as_str()).await?;
        self.lock_user(&mut tx, email).await?;
        Ok(tx)
    }

    /// Locks, until `tx` ends, whatever is counted under `key` in the
    /// lockout tables: wrong guesses at one email are counted one at a
    /// time, whether or not the email is anyone's (so there is no row to
    /// lock). A PostgreSQL advisory lock, on a keyed hash of `key`.
    pub(crate) async fn lock_key(&self, tx: &mut Tx, key: &str) -> Result<(), DirectoryError> {
        if self.shared() {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(self.key.lock_number(key))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Commits `tx`, then chains the audit events it left waiting (on
    /// PostgreSQL). The change is made once the commit returns: a chaining
    /// that fails (the database gone just then) is logged and done by the
    /// next write or read of the log, by this kiosk or another.
    pub(crate) async fn commit(&self, tx: Tx) -> Result<(), DirectoryError> {
        tx.commit().await?;
        crate::crash::point("committed_before_chaining");
        if let Err(error) = self.seal_audit(false).await {
            tracing::warn!(%error, "audit events wait to be chained");
        }
        Ok(())
    }

    /// Finds a user's id, enabled flag and display name by email.
    pub(crate) async fn find_user(
        &self,
        conn: &mut sqlx::AnyConnection,
        email: &Email,
    ) -> Result<Option<UserRow>, DirectoryError> {
        self.user_by_email(conn, email, "").await
    }

    /// [`find_user`](Self::find_user), the row locked until `tx` ends (on
    /// PostgreSQL; SQLite's one writer holds everything already).
    pub(crate) async fn lock_user(
        &self,
        tx: &mut Tx,
        email: &Email,
    ) -> Result<Option<UserRow>, DirectoryError> {
        let lock = bulk::Marks::of(tx).row_lock();
        self.user_by_email(tx, email, lock).await
    }

    async fn user_by_email(
        &self,
        conn: &mut sqlx::AnyConnection,
        email: &Email,
        lock: &'static str,
    ) -> Result<Option<UserRow>, DirectoryError> {
        let sql = format!(
            "SELECT id, display_name, enabled, created_at FROM users WHERE email = $1{lock}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let groups = groups_of(conn, &id).await?;
        Ok(Some(UserRow {
            id,
            email: email.clone(),
            display_name: row.try_get("display_name")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at: crate::clock::from_seconds(row.try_get("created_at")?),
            groups,
        }))
    }

    pub(crate) async fn require_user(
        &self,
        conn: &mut sqlx::AnyConnection,
        email: &Email,
    ) -> Result<UserRow, DirectoryError> {
        self.find_user(conn, email)
            .await?
            .ok_or_else(|| DirectoryError::UserNotFound(email.clone()))
    }
}

/// Takes the directory's write turn: a write to the one `directory_meta`
/// row, held until the transaction ends.
async fn take_turn(tx: &mut Tx) -> Result<(), DirectoryError> {
    sqlx::query("UPDATE directory_meta SET write_turn = write_turn + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether the error says the table does not exist (SQLite's message,
/// PostgreSQL's `undefined_table`): the directory was never initialised.
fn is_missing_table(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| {
        e.code().as_deref() == Some("42P01") || e.message().contains("no such table")
    })
}

fn migrator(location: &Location) -> &'static sqlx::migrate::Migrator {
    match location {
        Location::Sqlite(_) => &SQLITE_MIGRATIONS,
        Location::Postgres(_) => &POSTGRES_MIGRATIONS,
    }
}

/// The parts of a user row most operations need.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: Email,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub groups: Vec<String>,
}

/// Reads a pass row (all columns of `passes`).
pub(crate) fn pass_from_row(row: &AnyRow) -> Result<crate::pass::Pass, sqlx::Error> {
    use crate::clock::from_seconds;
    Ok(crate::pass::Pass {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        created_at: from_seconds(row.try_get("created_at")?),
        start_at: from_seconds(row.try_get("start_at")?),
        lifetime_minutes: row.try_get("lifetime_minutes")?,
        one_time: row.try_get::<i64, _>("one_time")? != 0,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_seconds),
        used_at: row.try_get::<Option<i64>, _>("used_at")?.map(from_seconds),
    })
}

/// `SELECT` of every column [`pass_from_row`] reads, followed by `$rest`.
macro_rules! select_passes {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, value_mac, created_at, start_at, lifetime_minutes, one_time, revoked_at, used_at, ",
            "claimed_by, claim_until, used_by FROM passes ",
            $rest
        )
    };
}
pub(crate) use select_passes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_from_paths_and_urls() {
        assert_eq!(
            Location::parse("/srv/dir.sqlite3"),
            Ok(Location::Sqlite("/srv/dir.sqlite3".into()))
        );
        assert_eq!(
            Location::parse("sqlite:///srv/d.db"),
            Ok(Location::Sqlite("/srv/d.db".into()))
        );
        assert!(matches!(
            Location::parse("postgresql://db/tap"),
            Ok(Location::Postgres(_))
        ));
        assert!(Location::parse("mysql://db/tap").is_err());
        assert!(Location::parse("").is_err());
    }

    #[test]
    fn passwords_never_show() {
        for url in [
            "postgres://tap:s3cret@db.example.com/tapkiosk",
            "postgres://tap@db.example.com/tapkiosk?sslmode=require&password=s3cret",
        ] {
            let location = Location::parse(url).unwrap();
            assert!(!location.to_string().contains("s3cret"), "{location}");
            assert!(!format!("{location:?}").contains("s3cret"));
        }
        assert!(!redact("postgres://tap:ab/c[d@db/x").contains("ab/c"));
    }

    #[test]
    fn odd_file_names_reach_sqlite_unchanged() {
        let url = Location::Sqlite("/srv/a?b#c%d/dir.sqlite3".into()).connection_url();
        assert_eq!(url, "sqlite:///srv/a%3Fb%23c%25d/dir.sqlite3?mode=rwc");
    }
}
