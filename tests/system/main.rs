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
mod entra_sign_in;
mod kiosk;
mod passes;
mod redeem;
mod roles;
mod security_keys;
mod storage;
mod tampering;
mod users;

use tapkiosk_core::Email;
use tapkiosk_core::user::NewUser;
use tapkiosk_tests::TestDirectory;

/// The app registration the Entra tests use.
pub const ENTRA_APP: &str = "11111111-2222-3333-4444-555555555555";

/// A fake Contoso tenant (with Ada, and Grace), and the kiosk's app signed
/// in to it with a client secret.
pub fn fake_tenant() -> (tapkiosk_fake_entra::FakeEntra, tapkiosk_entra::Graph) {
    fake_tenant_at(std::sync::Arc::new(tapkiosk_core::SystemClock))
}

/// As [`fake_tenant`], the app reading time from `clock`.
pub fn fake_tenant_at(
    clock: std::sync::Arc<dyn tapkiosk_core::Clock>,
) -> (tapkiosk_fake_entra::FakeEntra, tapkiosk_entra::Graph) {
    use tapkiosk_core::config::{EntraCredential, EntraSettings};
    let mut contoso = tapkiosk_fake_entra::Tenant::contoso(ENTRA_APP);
    contoso.secret = Some("s3cret".into());
    contoso.users.push(tapkiosk_fake_entra::User {
        id: "b2f1a9c3-0000-4000-8000-000000000001".into(),
        upn: "grace@contoso.onmicrosoft.com".into(),
        display_name: "Grace Hopper".into(),
        enabled: true,
    });
    let fake = tapkiosk_fake_entra::FakeEntra::start(contoso);
    let url = tapkiosk_core::fido::Url::parse(&fake.url).unwrap();
    let settings = EntraSettings {
        tenant: "contoso.onmicrosoft.com".into(),
        client_id: ENTRA_APP.into(),
        authority: url.clone(),
        graph: url,
        credential: EntraCredential::SecretInOsStore,
    };
    let credential = tapkiosk_entra::Credential::Secret("s3cret".to_string().into());
    let graph = tapkiosk_entra::Graph::new(settings, credential, clock).unwrap();
    (fake, graph)
}

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
