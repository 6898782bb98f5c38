use crate::add;
use rand::rngs::OsRng;
use std::sync::Arc;
use tapkiosk_core::config::DatabaseTimeouts;
use tapkiosk_core::directory::{DirectoryError, IssueRequest, Settings};
use tapkiosk_core::user::NewUser;
use tapkiosk_core::{Directory, DirectoryKey, Email, ManualClock, PassCode};
use tapkiosk_tests::{Backend, TestDirectory, new_location, on_both_backends, start_time};

on_both_backends!(
    stored_bytes_never_contain_a_pass_value,
    a_directory_opens_only_with_its_key
);

/// Everything the database holds, as bytes: the SQLite file and its WAL, or
/// a `pg_dump` of the PostgreSQL database.
async fn stored_bytes(t: &TestDirectory) -> Vec<u8> {
    t.directory.close().await;
    match t.backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(t.folder.path()).unwrap() {
                bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
            bytes
        }
        Backend::Postgres => {
            let bin = std::env::var("TAPKIOSK_TEST_PG_BIN")
                .expect("TAPKIOSK_TEST_PG_BIN names PostgreSQL's bin folder");
            let output = std::process::Command::new(format!("{bin}/pg_dump"))
                .arg("--dbname")
                .arg(t.location.connection_url())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.stdout
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

async fn stored_bytes_never_contain_a_pass_value(t: TestDirectory) {
    let mut codes: Vec<PassCode> = Vec::new();
    for i in 0..20 {
        let email = add(&t, &format!("person{i}@example.com")).await;
        let issued = t
            .directory
            .issue_pass(&IssueRequest::new(email))
            .await
            .unwrap();
        t.directory
            .redeem(&format!("person{i}@example.com"), &issued.code.grouped())
            .await
            .unwrap();
        codes.push(issued.code);
    }
    // People type their pass into the email field.
    let swapped = &codes[0];
    t.directory
        .redeem(&swapped.grouped(), "ada@example.com")
        .await
        .unwrap_err();
    t.directory
        .redeem(swapped.expose(), "ada@example.com")
        .await
        .unwrap_err();
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    assert!(
        log.last()
            .unwrap()
            .user
            .as_deref()
            .unwrap()
            .starts_with("not-an-email:")
    );
    let bytes = stored_bytes(&t).await;
    assert!(
        contains(&bytes, "person7@example.com"),
        "the check must be able to see stored text"
    );
    for code in &codes {
        assert!(
            !contains(&bytes, code.expose()),
            "a pass value is stored in clear"
        );
        assert!(
            !contains(&bytes, &code.grouped()),
            "a grouped pass value is stored in clear"
        );
    }
}

async fn a_directory_opens_only_with_its_key(t: TestDirectory) {
    let clock = Arc::new(ManualClock::new(start_time()));
    let stranger = DirectoryKey::generate(&mut OsRng);
    let wrong = Directory::open(&t.location, stranger, clock.clone(), Settings::default()).await;
    assert!(
        matches!(wrong, Err(DirectoryError::WrongKey(_))),
        "{wrong:?}"
    );
    let reopened = Directory::open(&t.location, t.key(), clock.clone(), Settings::default())
        .await
        .unwrap();
    add(
        &TestDirectory {
            directory: reopened,
            ..t
        },
        "ada@example.com",
    )
    .await;

    let folder = tempfile::tempdir().unwrap();
    let empty = new_location(Backend::Sqlite, &folder).await;
    let key = DirectoryKey::generate(&mut OsRng);
    assert!(matches!(
        Directory::open(&empty, key, clock, Settings::default()).await,
        Err(DirectoryError::NotInitialised(_))
    ));
}

/// Another connection holds the lock a write needs (the SQLite file's
/// write lock; on PostgreSQL the lock on the person's email, as a kiosk cut
/// off mid-sign-in would): the write gives up after the configured lock
/// timeout, says so, and loses nothing; once the lock is gone it goes
/// through.
async fn a_write_held_up_by_a_lock_gives_up_after_the_lock_timeout(backend: Backend) {
    let settings = Settings {
        database: DatabaseTimeouts {
            lock: chrono::TimeDelta::seconds(1),
            ..DatabaseTimeouts::default()
        },
        ..Settings::default()
    };
    let t = tapkiosk_tests::spawn_with(backend, settings).await;
    let mut holder = t.raw().await;
    match backend {
        Backend::Sqlite => {
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut holder)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(t.key().lock_number("ada@example.com"))
                .execute(&mut holder)
                .await
                .unwrap();
        }
    }
    let ada = NewUser::new(Email::parse("ada@example.com").unwrap(), None, &[]).unwrap();
    #[allow(clippy::disallowed_methods)] // how long the write waited, for real
    let asked = std::time::Instant::now();
    let Err(DirectoryError::Database(error)) = t.directory.add_user(&ada).await else {
        panic!("the write went through a held lock");
    };
    // After the 1 s configured, not sqlx's 5 s (SQLite) or never
    // (PostgreSQL's default).
    let waited = asked.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(4), "{waited:?}");
    let said = error.to_string();
    let expected = match backend {
        Backend::Sqlite => "database is locked",
        Backend::Postgres => "lock timeout",
    };
    assert!(said.contains(expected), "{said}");
    assert!(t.directory.list_users().await.unwrap().is_empty());
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    t.directory.add_user(&ada).await.unwrap();
    assert_eq!(t.directory.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_write_held_up_by_a_lock_gives_up_after_the_lock_timeout_sqlite() {
    a_write_held_up_by_a_lock_gives_up_after_the_lock_timeout(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_write_held_up_by_a_lock_gives_up_after_the_lock_timeout_postgres() {
    a_write_held_up_by_a_lock_gives_up_after_the_lock_timeout(Backend::Postgres).await;
}
