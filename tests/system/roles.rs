//! A kiosk on PostgreSQL runs as a role that can change rows but not the
//! schema, and can only add to the audit log.

use sqlx::{Connection, Executor};
use std::sync::Arc;
use tapkiosk_core::directory::IssueRequest;
use tapkiosk_core::totp::TotpSecret;
use tapkiosk_core::user::NewUser;
use tapkiosk_core::{Directory, Email, Location};
use tapkiosk_tests::{Backend, TestDirectory, spawn};

/// The directory's URL with `role` as the user.
fn as_role(t: &TestDirectory, role: &str) -> String {
    let Location::Postgres(url) = &t.location else {
        panic!("a PostgreSQL directory")
    };
    let mut url = url::Url::parse(url).unwrap();
    url.set_username(role).unwrap();
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kiosk_role_changes_rows_but_not_the_schema_or_the_log() {
    let t = spawn(Backend::Postgres).await;
    let role = format!("kiosk_{}", uuid::Uuid::new_v4().simple());
    let mut owner = t.raw().await;
    owner
        .execute(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
        .await
        .unwrap();
    t.directory.grant_kiosk_role(&role).await.unwrap();
    let location = Location::Postgres(as_role(&t, &role));
    let clock = Arc::new(t.clock.clone());
    let settings = t.directory.settings().clone();
    let kiosk = Directory::open(&location, t.key(), clock, settings)
        .await
        .unwrap();

    // What a kiosk and its admin pane do: add a person, issue a pass, sign
    // in with it, register an authenticator app (using the pass up), lock
    // out a guesser, set the policy.
    let ada = Email::parse("ada@example.com").unwrap();
    kiosk
        .add_user(&NewUser::new(ada.clone(), None, &[]).unwrap())
        .await
        .unwrap();
    let issued = kiosk.issue_pass(&IssueRequest::new(ada)).await.unwrap();
    let session = kiosk
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
    let secret = TotpSecret::generate(&mut rand::rngs::OsRng);
    kiosk
        .add_totp_method(&session, "Phone", &secret, 1)
        .await
        .unwrap();
    for _ in 0..5 {
        let _ = kiosk.redeem("bob@example.com", "ZZZZ-ZZZZ-ZZZZ").await;
    }
    kiosk
        .set_policy(&kiosk.policy().await.unwrap())
        .await
        .unwrap();
    assert_eq!(kiosk.verify_audit().await.unwrap().broken, None);

    // The schema and the log's past are out of its reach.
    let mut conn = sqlx::AnyConnection::connect(&as_role(&t, &role))
        .await
        .unwrap();
    for statement in [
        "UPDATE audit_events SET kind = 'nothing'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "DROP TRIGGER audit_events_no_change ON audit_events",
        "ALTER TABLE users ADD COLUMN note TEXT",
        "CREATE TABLE notes (id INT)",
        "DROP TABLE lockouts",
    ] {
        let error = conn.execute(statement).await.unwrap_err();
        let code = error
            .as_database_error()
            .and_then(|e| e.code().map(|c| c.into_owned()));
        // insufficient_privilege
        assert_eq!(code.as_deref(), Some("42501"), "{statement}: {error}");
    }
}
