//! System tests of the directory, each run on SQLite and on PostgreSQL.
//! One binary with modules: every extra test binary is another slow link.

// Test bodies are plain async fns called by the generated #[test]s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_keys;
mod admins;
mod audit;
mod catalogues;
mod claims;
mod entra;
mod entra_batch;
mod entra_http;
mod entra_kiosk;
mod entra_sign_in;
mod entra_staging;
mod kiosk;
mod outages;
mod parallel;
mod passes;
mod processes;
mod redeem;
mod roles;
mod security_keys;
mod storage;
mod tampering;
mod users;

use tapkiosk_core::Email;
use tapkiosk_core::user::NewUser;
use tapkiosk_tests::TestDirectory;

pub use tapkiosk_tests::entra::{ENTRA_APP, fake_tenant, fake_tenant_at};

/// Adds `email` with no groups.
pub async fn add(t: &TestDirectory, email: &str) -> Email {
    let email = Email::parse(email).unwrap();
    t.directory
        .add_user(&NewUser::new(email.clone(), None, &[]).unwrap())
        .await
        .unwrap();
    email
}

/// The kinds of the audit events so far.
pub async fn audit_kinds(t: &TestDirectory) -> Vec<String> {
    t.directory
        .audit_log(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect()
}

/// Takes the methods table away (`true`) or puts it back (`false`), as a
/// lost server or a broken upgrade would.
pub async fn hide_methods(t: &TestDirectory, hidden: bool) {
    use sqlx::Executor;
    let statement = if hidden {
        "ALTER TABLE methods RENAME TO methods_away"
    } else {
        "ALTER TABLE methods_away RENAME TO methods"
    };
    t.raw().await.execute(statement).await.unwrap();
}

/// Runs the python-fido2 check `script` (in tests/system) on `input` and
/// asserts that it verified.
/// Checks every key registration the fake took with python-fido2 against
/// the challenge it handed out and Entra's relying party: what the kiosk
/// posted is what another implementation accepts too.
pub fn crosscheck_registrations(fake: &tapkiosk_fake_entra::FakeEntra) {
    let posted = fake.key_registrations();
    assert!(!posted.is_empty(), "no registration to check");
    for registration in posted {
        let input = serde_json::json!({
            "rp_id": tapkiosk_fake_entra::RP_ID,
            "challenge": registration.challenge,
            "body": registration.body,
        });
        python_fido2("entra_crosscheck.py", &input);
    }
}

pub fn python_fido2(script: &str, input: &serde_json::Value) {
    let python = std::env::var("TAPKIOSK_TEST_PYTHON")
        .expect("TAPKIOSK_TEST_PYTHON (a Python with fido2) is not set: run scripts/test");
    let script = format!("{}/system/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut check = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut check.stdin.take().unwrap(),
        input.to_string().as_bytes(),
    )
    .unwrap();
    let output = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.contains("verified by python-fido2"), "{said}");
}
