//! Support for the system tests: a fresh directory on either backend, on a
//! clock the test moves.
//!
//! PostgreSQL tests need the admin URL of a server in
//! `TAPKIOSK_TEST_POSTGRES`; `scripts/test` starts a throwaway one and sets
//! it. Each test gets a database of its own.

// Test support: a set-up failure should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod entra;
mod postgres;

pub use postgres::PrivatePostgres;

/// Lets a reqwest client that names no TLS set-up of its own (the WebDriver
/// client's, the tests' own) be built. The Entra crate turns on reqwest's
/// rustls without a provider and hands its own client a configuration, so
/// the shipped apps install nothing process-wide; a test process must.
pub fn install_tls_provider() {
    // An error only says a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::OsRng;
use std::sync::Arc;
use tapkiosk_core::directory::Settings;
use tapkiosk_core::{Directory, DirectoryKey, Location, ManualClock};

/// Which directory backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file in a temporary folder.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// A fresh, initialised directory.
pub struct TestDirectory {
    /// The directory, on `clock`.
    pub directory: Directory,
    /// The clock the directory reads; move it to test time rules.
    pub clock: ManualClock,
    /// Which backend.
    pub backend: Backend,
    /// Where it is.
    pub location: Location,
    /// Its key (a copy, for opening it again).
    pub key_export: String,
    /// Holds the SQLite file.
    pub folder: tempfile::TempDir,
}

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("TAPKIOSK_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("TAPKIOSK_TEST_POSTGRES is not set: run the tests with scripts/test, which starts PostgreSQL")
    })
}

/// 1 December 2026, 08:00 UTC: where every test clock starts.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A passphrase for key exports in tests.
pub const PASSPHRASE: &str = "test passphrase, long enough";

/// A new location on `backend` (creating the PostgreSQL database).
pub async fn new_location(backend: Backend, folder: &tempfile::TempDir) -> Location {
    match backend {
        Backend::Sqlite => Location::Sqlite(folder.path().join("directory.sqlite3")),
        Backend::Postgres => {
            let admin = postgres_admin_url();
            sqlx::any::install_default_drivers();
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap();
            sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await
            .unwrap();
            let url = admin
                .rsplit_once('/')
                .map(|(base, _)| format!("{base}/{name}"))
                .unwrap();
            Location::Postgres(url)
        }
    }
}

/// A fresh directory on `backend` with default settings, whose policy lets
/// passes be one-time or multi-use (a new directory requires one-time
/// passes; most tests choose the kind of each pass they issue).
pub async fn spawn(backend: Backend) -> TestDirectory {
    let t = spawn_with(
        backend,
        Settings {
            actor: "test".into(),
            kiosk: "test-kiosk".into(),
            ..Settings::default()
        },
    )
    .await;
    allow_multi_use(&t.directory).await;
    t
}

/// Lets passes be multi-use (a new directory requires one-time passes).
pub async fn allow_multi_use(directory: &Directory) {
    directory
        .update_policy(|policy| {
            policy.one_time = tapkiosk_core::policy::OneTime::Optional;
            Ok(())
        })
        .await
        .unwrap();
}

/// A fresh directory on `backend` with `settings` and a new directory's
/// policy.
pub async fn spawn_with(backend: Backend, settings: Settings) -> TestDirectory {
    let folder = tempfile::tempdir().unwrap();
    let location = new_location(backend, &folder).await;
    spawn_at(location, backend, folder, settings).await
}

/// A fresh directory at `location` (an empty database).
pub async fn spawn_at(
    location: Location,
    backend: Backend,
    folder: tempfile::TempDir,
    settings: Settings,
) -> TestDirectory {
    let key = DirectoryKey::generate(&mut OsRng);
    let key_export = tapkiosk_core::keys::export(&key, PASSPHRASE, &mut OsRng).unwrap();
    let clock = ManualClock::new(start_time());
    let (directory, created) = Directory::init(&location, key, Arc::new(clock.clone()), settings)
        .await
        .unwrap();
    assert!(created);
    TestDirectory {
        directory,
        clock,
        backend,
        location,
        key_export,
        folder,
    }
}

impl TestDirectory {
    /// A raw connection to the directory's database, for looking behind
    /// the API (tampering, dumps).
    pub async fn raw(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        <sqlx::AnyConnection as sqlx::Connection>::connect(&self.location.connection_url())
            .await
            .unwrap()
    }

    /// The directory's key, unwrapped again.
    pub fn key(&self) -> DirectoryKey {
        tapkiosk_core::keys::import(&self.key_export, PASSPHRASE).unwrap()
    }
}

/// Declares tests that run the same body on both backends: for each
/// `name`, an `async fn name(t: TestDirectory)` in scope becomes
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name($crate::spawn($crate::Backend::Sqlite).await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name($crate::spawn($crate::Backend::Postgres).await).await;
                }
            }
        )*
    };
}
