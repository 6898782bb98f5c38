//! The directory's PostgreSQL crashes in the middle of a kiosk session and
//! comes back: the step that met the outage fails as "unavailable" and
//! changes nothing, the session goes on from where it was without a restart,
//! nothing committed is lost, and no pass is burned.

use crate::kiosk::{code, kiosk, pass_for, secret_of};
use tapkiosk_core::config::DatabaseTimeouts;
use tapkiosk_core::directory::Settings;
use tapkiosk_core::kiosk::{KioskError, StepView};
use tapkiosk_core::{DirectoryError, Location};
use tapkiosk_tests::{Backend, PrivatePostgres, TestDirectory};

async fn on_a_server_of_its_own() -> (PrivatePostgres, TestDirectory) {
    let server = PrivatePostgres::start();
    server.create_database("directory");
    let location = Location::Postgres(server.url("directory"));
    let folder = tempfile::tempdir().unwrap();
    // A step that meets the outage waits for a connection this long.
    let settings = Settings {
        database: DatabaseTimeouts {
            connect: chrono::TimeDelta::seconds(1),
            ..DatabaseTimeouts::default()
        },
        ..Settings::default()
    };
    let t = tapkiosk_tests::spawn_at(location, Backend::Postgres, folder, settings).await;
    (server, t)
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, KioskError>) -> DirectoryError {
    match result {
        Err(KioskError::Directory(error)) if error.is_unavailable() => error,
        other => panic!("not an outage: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_mid_session_loses_nothing_and_burns_no_pass() {
    let (server, t) = on_a_server_of_its_own().await;
    let pass = pass_for(&t, "ada@example.com", true).await;
    let mut kiosk = kiosk(&t);
    kiosk
        .start(tapkiosk_core::kiosk::Language::En)
        .await
        .unwrap();
    kiosk.submit_email("ada@example.com").await.unwrap();

    // Down as the pass is typed: the claim never happens.
    server.crash();
    let said = unavailable(kiosk.submit_pass(&pass).await).to_string();
    assert!(!said.contains("at line"), "{said}");
    assert!(matches!(kiosk.screen().step, StepView::Pass { .. }));
    server.resume();
    let choose = kiosk.submit_pass(&pass).await.unwrap();
    assert!(matches!(choose.step, StepView::Choose { .. }), "{choose:?}");

    // Down as the app's first code is checked: no method, the pass unused,
    // the same QR code on screen.
    let setup = kiosk.add_authenticator().await.unwrap();
    let secret = secret_of(&setup);
    server.crash();
    unavailable(kiosk.confirm_authenticator(&code(&t, &secret)).await);
    assert_eq!(secret_of(&kiosk.screen()).base32(), secret.base32());
    server.resume();
    let ada = tapkiosk_core::Email::parse("ada@example.com").unwrap();
    let before = t.directory.show_user(&ada).await.unwrap();
    assert!(before.methods.is_empty(), "{before:?}");
    let test = kiosk
        .confirm_authenticator(&code(&t, &secret))
        .await
        .unwrap();
    assert_eq!(test.step, StepView::AuthenticatorTest);

    // Committed before the next crash: still there after it.
    server.crash();
    server.resume();
    let after = t.directory.show_user(&ada).await.unwrap();
    assert_eq!(after.methods.len(), 1);
    let verification = t.directory.verify_audit().await.unwrap();
    assert_eq!(verification.broken, None);
    assert!(verification.events >= 4, "{verification:?}");
}
