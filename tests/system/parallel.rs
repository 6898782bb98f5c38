//! Writes on a shared PostgreSQL directory that run at once: writers about
//! different people do not wait on each other, and the audit log they all
//! append to stays one chain.

use crate::{add, audit_kinds};
use std::sync::Arc;
use tapkiosk_core::config::DatabaseTimeouts;
use tapkiosk_core::directory::{DirectoryError, IssueRequest, Settings};
use tapkiosk_core::redeem::RedeemError;
use tapkiosk_core::{Directory, Email};
use tapkiosk_tests::{Backend, TestDirectory};

/// A PostgreSQL directory whose writes give up after a second's wait for
/// a lock: a write that should not wait at all fails instead of hanging.
async fn impatient() -> TestDirectory {
    let settings = Settings {
        database: DatabaseTimeouts {
            lock: chrono::TimeDelta::seconds(1),
            ..DatabaseTimeouts::default()
        },
        ..Settings::default()
    };
    tapkiosk_tests::spawn_with(Backend::Postgres, settings).await
}

async fn count(conn: &mut sqlx::AnyConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(conn)
        .await
        .unwrap()
}

fn lock_timed_out(result: Result<impl std::fmt::Debug, RedeemError>) {
    match result {
        Err(RedeemError::Directory(DirectoryError::Database(e))) => {
            assert!(e.to_string().contains("lock timeout"), "{e}");
        }
        other => panic!("expected a lock timeout, got {other:?}"),
    }
}

/// One kiosk is cut off in the middle of a write about Ada, her row held:
/// Bob signs in, and gets a pass, as if nothing were held; only Ada's own
/// sign-in waits, and goes through once the row is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_about_one_person_does_not_hold_up_another() {
    let t = impatient().await;
    let ada = add(&t, "ada@example.com").await;
    let bob = add(&t, "bob@example.com").await;
    let ada_pass = t
        .directory
        .issue_pass(&IssueRequest::new(ada))
        .await
        .unwrap();
    let mut holder = t.raw().await;
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT id FROM users WHERE email = 'ada@example.com' FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let bob_pass = t
        .directory
        .issue_pass(&IssueRequest::new(bob.clone()))
        .await
        .unwrap();
    let session = t
        .directory
        .redeem(bob.as_str(), bob_pass.code.expose())
        .await
        .unwrap();
    assert_eq!(session.email, bob);
    lock_timed_out(
        t.directory
            .redeem("ada@example.com", ada_pass.code.expose())
            .await,
    );

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    t.directory
        .redeem("ada@example.com", ada_pass.code.expose())
        .await
        .unwrap();
}

/// Wrong passes typed at one email are counted one at a time, whether or
/// not the email is anyone's: a write holding that count holds up guesses
/// at it, not at another email.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_at_one_email_wait_on_each_other_only() {
    let t = impatient().await;
    let mut holder = t.raw().await;
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(t.key().lock_number("nobody@example.com"))
        .execute(&mut holder)
        .await
        .unwrap();
    assert!(matches!(
        t.directory
            .redeem("someone@example.com", "WRONG-PASS")
            .await,
        Err(RedeemError::InvalidCredentials)
    ));
    lock_timed_out(t.directory.redeem("nobody@example.com", "WRONG-PASS").await);
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
}

/// While another connection holds the audit head (a kiosk chaining, or
/// cut off while it chains), writes go on and their events wait; they are
/// chained, in order, once the head is free, and the log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_written_while_the_head_is_held_are_chained_after() {
    let t = impatient().await;
    let mut holder = t.raw().await;
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT id FROM directory_meta WHERE id = 1 FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let ada = add(&t, "ada@example.com").await;
    t.directory
        .issue_pass(&IssueRequest::new(ada))
        .await
        .unwrap();
    let mut looking = t.raw().await;
    assert_eq!(
        count(&mut looking, "SELECT COUNT(*) FROM audit_pending").await,
        2
    );

    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let verified = t.directory.verify_audit().await.unwrap();
    assert_eq!(verified.broken, None);
    assert_eq!(
        count(&mut looking, "SELECT COUNT(*) FROM audit_pending").await,
        0
    );
    let kinds = audit_kinds(&t).await;
    assert_eq!(kinds[kinds.len() - 2..], ["user_added", "pass_issued"]);
}

/// A row put among the waiting events by someone without the directory
/// key (write access to the database is enough to insert one) is not
/// chained as what it claims to be: the chain records that it was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_waiting_event_is_chained_as_refused() {
    let t = impatient().await;
    add(&t, "ada@example.com").await;
    let mut forger = t.raw().await;
    sqlx::query(
        "INSERT INTO audit_pending (at, actor, kiosk, kind, user_email, pass_id, detail, mac) \
         VALUES (0, 'admin', 'kiosk-1', 'user_removed', 'ada@example.com', NULL, '{}', $1)",
    )
    .bind(vec![0u8; 32])
    .execute(&mut forger)
    .await
    .unwrap();

    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let refused = log.last().unwrap();
    assert_eq!(refused.kind, "audit_entry_rejected");
    assert_eq!(refused.user, None);
    assert_eq!(refused.detail["claimed_kind"], "user_removed");
    assert!(!log.iter().any(|r| r.kind == "user_removed"));
    assert_eq!(t.directory.verify_audit().await.unwrap().broken, None);
}

/// Eight kiosks, each with its own pool, add, issue and sign in different
/// people at once: every event is chained exactly once, none is left
/// waiting, and the log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kiosks_writing_at_once_leave_one_chain() {
    const KIOSKS: usize = 8;
    let t = tapkiosk_tests::spawn(Backend::Postgres).await;
    let before = audit_kinds(&t).await.len();
    let mut kiosks = Vec::new();
    for n in 0..KIOSKS {
        let settings = Settings {
            kiosk: format!("kiosk-{n}"),
            ..Settings::default()
        };
        let directory = Directory::open(&t.location, t.key(), Arc::new(t.clock.clone()), settings)
            .await
            .unwrap();
        kiosks.push(tokio::spawn(sign_in_three(directory, n)));
    }
    for kiosk in kiosks {
        kiosk.await.unwrap();
    }

    let mut looking = t.raw().await;
    let verified = t.directory.verify_audit().await.unwrap();
    assert_eq!(verified.broken, None);
    assert_eq!(
        count(&mut looking, "SELECT COUNT(*) FROM audit_pending").await,
        0
    );
    let events = audit_kinds(&t).await.len() - before;
    // Each of the 3 people a kiosk: added, a pass issued, signed in.
    assert_eq!(events, KIOSKS * 3 * 3);
    assert_eq!(
        count(&mut looking, "SELECT COUNT(DISTINCT seq) FROM audit_events").await,
        count(&mut looking, "SELECT MAX(seq) FROM audit_events").await
    );
}

async fn sign_in_three(directory: Directory, kiosk: usize) {
    for person in 0..3 {
        let email = Email::parse(&format!("p{kiosk}-{person}@example.com")).unwrap();
        let user = tapkiosk_core::user::NewUser::new(email.clone(), None, &[]).unwrap();
        directory.add_user(&user).await.unwrap();
        let pass = directory
            .issue_pass(&IssueRequest::new(email.clone()))
            .await
            .unwrap();
        directory
            .redeem(email.as_str(), pass.code.expose())
            .await
            .unwrap();
    }
}
