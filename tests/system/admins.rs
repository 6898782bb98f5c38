//! IT's admin credentials: created with a one-time code, a PIN per person,
//! a lockout per person, and rows that a database copy or write access
//! cannot use.

use chrono::TimeDelta;
use sqlx::Executor;
use tapkiosk_core::directory::admins::ENROL_LIFETIME;
use tapkiosk_core::directory::{AdminError, AdminName, DirectoryError};
use tapkiosk_tests::{TestDirectory, on_both_backends};

on_both_backends!(
    an_admin_enrols_once_with_the_code_from_tapctl,
    wrong_pins_lock_out_that_admin_only_until_reset,
    a_database_copy_or_write_access_opens_no_pane,
    admins_are_added_and_removed_but_never_the_last,
);

const PIN: &str = "246813";

fn name(text: &str) -> AdminName {
    AdminName::parse(text).unwrap()
}

fn wrong(result: Result<(), AdminError>) -> bool {
    matches!(result, Err(AdminError::Wrong))
}

/// `alice`, enrolled with [`PIN`].
async fn alice(t: &TestDirectory) -> AdminName {
    let alice = name("Alice");
    let code = t.directory.add_admin(&alice).await.unwrap().code;
    t.directory
        .enrol_admin(&alice, code.expose(), PIN)
        .await
        .unwrap();
    alice
}

async fn an_admin_enrols_once_with_the_code_from_tapctl(t: TestDirectory) {
    let alice = name(" alice ");
    assert_eq!(alice.as_str(), "alice");
    assert!(matches!(
        AdminName::parse("alice smith"),
        Err(AdminError::BadName)
    ));
    let code = t.directory.add_admin(&alice).await.unwrap().code;
    assert!(matches!(
        t.directory.add_admin(&alice).await,
        Err(AdminError::Exists(_))
    ));
    // No PIN before enrolling: nothing opens the pane.
    assert!(wrong(t.directory.sign_in_admin(&alice, "").await));
    assert!(wrong(t.directory.sign_in_admin(&alice, PIN).await));
    assert!(wrong(
        t.directory
            .enrol_admin(&alice, "ABCD-EFGH-JKMN-PQRS", PIN)
            .await
    ));
    assert!(matches!(
        t.directory
            .enrol_admin(&alice, code.expose(), "12345")
            .await,
        Err(AdminError::Format)
    ));
    // Typed loosely, as from a letter.
    let typed = code.grouped().to_lowercase();
    t.directory.enrol_admin(&alice, &typed, PIN).await.unwrap();
    assert!(wrong(
        t.directory
            .enrol_admin(&alice, code.expose(), "135792")
            .await
    ));
    t.directory.sign_in_admin(&alice, PIN).await.unwrap();
    assert!(wrong(t.directory.sign_in_admin(&name("bob"), PIN).await));

    // A code not used within its lifetime stops working.
    let bob = name("bob");
    let late = t.directory.add_admin(&bob).await.unwrap().code;
    t.clock.advance(ENROL_LIFETIME);
    assert!(wrong(
        t.directory.enrol_admin(&bob, late.expose(), PIN).await
    ));
    let listed = t.directory.admins().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|a| (a.name.as_str(), a.enrolled))
            .collect::<Vec<_>>(),
        [("alice", true), ("bob", false)]
    );
}

async fn wrong_pins_lock_out_that_admin_only_until_reset(t: TestDirectory) {
    let alice = alice(&t).await;
    let bob = name("bob");
    let code = t.directory.add_admin(&bob).await.unwrap().code;
    t.directory
        .enrol_admin(&bob, code.expose(), "135792")
        .await
        .unwrap();
    for _ in 0..4 {
        assert!(wrong(t.directory.sign_in_admin(&alice, "000000").await));
    }
    let locked = |r: Result<(), AdminError>| matches!(r, Err(AdminError::LockedOut { .. }));
    assert!(locked(t.directory.sign_in_admin(&alice, "000000").await));
    assert!(locked(t.directory.sign_in_admin(&alice, PIN).await));
    // A passer-by guessing Alice's PIN does not lock Bob out.
    t.directory.sign_in_admin(&bob, "135792").await.unwrap();
    // IT lifts the lockout at once with a reset; the old PIN goes with it.
    let code = t.directory.reset_admin(&alice).await.unwrap().code;
    assert!(wrong(t.directory.sign_in_admin(&alice, PIN).await));
    t.directory
        .enrol_admin(&alice, code.expose(), "864213")
        .await
        .unwrap();
    t.directory.sign_in_admin(&alice, "864213").await.unwrap();
    // Or the lockout ends by itself.
    for _ in 0..5 {
        let _ = t.directory.sign_in_admin(&bob, "000000").await;
    }
    assert!(locked(t.directory.sign_in_admin(&bob, "135792").await));
    t.clock.advance(TimeDelta::minutes(5));
    t.directory.sign_in_admin(&bob, "135792").await.unwrap();
}

async fn a_database_copy_or_write_access_opens_no_pane(t: TestDirectory) {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    let alice = alice(&t).await;
    let bob = name("bob");
    t.directory.add_admin(&bob).await.unwrap();
    let mut raw = t.raw().await;
    let stored: String = sqlx::query_scalar("SELECT pin_hash FROM admins WHERE name = 'alice'")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    // The PIN is keyed before Argon2: the right PIN does not verify against
    // the copied hash without the directory key.
    let hash = PasswordHash::new(&stored).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(PIN.as_bytes(), &hash)
            .is_err()
    );
    // Write access: Alice's hash and MAC copied onto Bob's row, then a
    // PIN hash of the writer's own making planted on Alice's.
    raw.execute(sqlx::AssertSqlSafe(
        "UPDATE admins SET pin_hash = (SELECT pin_hash FROM admins WHERE name = 'alice'), \
         mac = (SELECT mac FROM admins WHERE name = 'alice') WHERE name = 'bob'",
    ))
    .await
    .unwrap();
    let tampered = |r: Result<(), AdminError>| {
        matches!(r, Err(AdminError::Directory(DirectoryError::Tampered(_))))
    };
    assert!(tampered(t.directory.sign_in_admin(&bob, PIN).await));
    let planted = argon2::Argon2::default()
        .hash_password(b"111111", &SaltString::generate(&mut rand::rngs::OsRng))
        .unwrap()
        .to_string();
    sqlx::query("UPDATE admins SET pin_hash = $1 WHERE name = 'alice'")
        .bind(planted)
        .execute(&mut raw)
        .await
        .unwrap();
    assert!(tampered(t.directory.sign_in_admin(&alice, "111111").await));
    assert!(tampered(t.directory.sign_in_admin(&alice, PIN).await));
}

async fn admins_are_added_and_removed_but_never_the_last(t: TestDirectory) {
    let alice = alice(&t).await;
    assert!(matches!(
        t.directory.remove_admin(&alice).await,
        Err(AdminError::LastAdmin(_))
    ));
    let as_alice = t.directory.acting_as(format!("admin:{alice}"));
    let bob = name("bob");
    as_alice.add_admin(&bob).await.unwrap();
    as_alice.remove_admin(&bob).await.unwrap();
    assert!(matches!(
        as_alice.remove_admin(&bob).await,
        Err(AdminError::NotFound(_))
    ));
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let by_alice: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e.actor == "admin:alice")
        .map(|e| (e.kind.as_str(), e.detail["admin"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(by_alice, [("admin_added", "bob"), ("admin_removed", "bob")]);
}
