//! Someone with write access to the database, but not the directory key,
//! edits rows directly: each edit is refused rather than trusted.

use crate::add;
use sqlx::Executor;
use std::sync::Arc;
use tapkiosk_core::directory::{DirectoryError, IssueRequest, IssuedPass};
use tapkiosk_core::redeem::RedeemError;
use tapkiosk_core::{Directory, Email, PassCode};
use tapkiosk_tests::{TestDirectory, on_both_backends};

on_both_backends!(
    a_pass_mac_copied_onto_another_person_opens_nothing,
    a_stretched_or_reshaped_pass_opens_nothing,
    a_used_or_revoked_pass_edited_back_to_live_is_refused,
    an_edited_policy_is_refused,
    a_directory_from_before_bound_records_keeps_its_passes,
);

async fn issue(t: &TestDirectory, email: &Email, one_time: bool) -> IssuedPass {
    let request = IssueRequest {
        one_time: Some(one_time),
        replace: true,
        ..IssueRequest::new(email.clone())
    };
    t.directory.issue_pass(&request).await.unwrap()
}

async fn run(t: &TestDirectory, statement: &str) {
    let mut raw = t.raw().await;
    raw.execute(sqlx::AssertSqlSafe(statement.to_string()))
        .await
        .unwrap();
}

/// What redeeming `code` as `email` answers; it must be a refusal.
async fn refusal(t: &TestDirectory, email: &str, code: &PassCode) -> RedeemError {
    t.directory.redeem(email, code.expose()).await.unwrap_err()
}

async fn a_pass_mac_copied_onto_another_person_opens_nothing(t: TestDirectory) {
    let mallory = add(&t, "mallory@example.com").await;
    let ada = add(&t, "ada@example.com").await;
    let known = issue(&t, &mallory, false).await;
    let target = issue(&t, &ada, false).await;
    // What was tried against the MAC of the value alone: Mallory's MAC onto
    // Ada's row, then Mallory's pass typed with Ada's email.
    run(
        &t,
        &format!(
            "UPDATE passes SET value_mac = (SELECT value_mac FROM passes WHERE id = '{}') WHERE id = '{}'",
            known.pass.id, target.pass.id
        ),
    )
    .await;
    let refused = refusal(&t, "ada@example.com", &known.code).await;
    assert!(
        matches!(refused, RedeemError::InvalidCredentials),
        "{refused:?}"
    );
    // Moving the row itself to Ada does not work either.
    run(
        &t,
        &format!(
            "UPDATE passes SET user_id = (SELECT id FROM users WHERE email = 'ada@example.com') WHERE id = '{}'",
            known.pass.id
        ),
    )
    .await;
    let refused = refusal(&t, "ada@example.com", &known.code).await;
    assert!(
        matches!(refused, RedeemError::InvalidCredentials),
        "{refused:?}"
    );
}

async fn a_stretched_or_reshaped_pass_opens_nothing(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    for edit in [
        "lifetime_minutes = lifetime_minutes * 24",
        "start_at = start_at + 60",
        "one_time = 0",
    ] {
        let issued = IssueRequest {
            one_time: Some(true),
            replace: true,
            ..IssueRequest::new(ada.clone())
        };
        let issued = t.directory.issue_pass(&issued).await.unwrap();
        run(
            &t,
            &format!("UPDATE passes SET {edit} WHERE id = '{}'", issued.pass.id),
        )
        .await;
        let refused = refusal(&t, "ada@example.com", &issued.code).await;
        assert!(
            matches!(refused, RedeemError::InvalidCredentials),
            "{edit}: {refused:?}"
        );
    }
}

async fn a_used_or_revoked_pass_edited_back_to_live_is_refused(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let used = issue(&t, &ada, true).await;
    let session = t
        .directory
        .redeem("ada@example.com", used.code.expose())
        .await
        .unwrap();
    t.directory.commit_session(&session).await.unwrap();
    t.directory.release_session(&session).await.unwrap();
    run(
        &t,
        &format!(
            "UPDATE passes SET used_at = NULL, used_by = NULL WHERE id = '{}'",
            used.pass.id
        ),
    )
    .await;
    let refused = refusal(&t, "ada@example.com", &used.code).await;
    assert!(matches!(refused, RedeemError::Revoked), "{refused:?}");

    let revoked = issue(&t, &ada, false).await;
    t.directory.revoke_pass(&ada).await.unwrap();
    run(
        &t,
        &format!(
            "UPDATE passes SET revoked_at = NULL WHERE id = '{}'",
            revoked.pass.id
        ),
    )
    .await;
    let refused = refusal(&t, "ada@example.com", &revoked.code).await;
    assert!(matches!(refused, RedeemError::Revoked), "{refused:?}");
    let reasons: Vec<String> = t
        .directory
        .audit_log(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "sign_in_failed")
        .map(|e| e.detail.to_string())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|d| d.contains("pass_tampered"))
            .count(),
        2,
        "{reasons:?}"
    );
}

async fn an_edited_policy_is_refused(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let issued = issue(&t, &ada, false).await;
    // Stretch the longest lifetime to a year, as someone who wants a
    // long-lived pass would.
    let policy = t.directory.policy().await.unwrap();
    let mut json = serde_json::to_value(&policy).unwrap();
    json["max_lifetime"] = serde_json::json!(525_600);
    run(
        &t,
        &format!("UPDATE policy SET settings = '{json}' WHERE id = 1"),
    )
    .await;
    let tampered = |e: &DirectoryError| matches!(e, DirectoryError::Tampered(_));
    assert!(tampered(&t.directory.policy().await.unwrap_err()));
    let issue_error = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap_err();
    assert!(tampered(&issue_error), "{issue_error:?}");
    let redeem_error = t
        .directory
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap_err();
    assert!(
        matches!(&redeem_error, RedeemError::Directory(e) if tampered(e)),
        "{redeem_error:?}"
    );
    // Setting the policy again with tapkiosk mends it.
    t.directory.set_policy(&policy).await.unwrap();
    t.directory
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
}

/// Rows written before passes were bound to their row: the MAC of the value
/// alone, no policy MAC. Opening the directory with its key binds them once.
async fn a_directory_from_before_bound_records_keeps_its_passes(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let issued = issue(&t, &ada, false).await;
    let legacy: String = t
        .key()
        .pass_mac(&issued.code)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let blob = match t.backend {
        tapkiosk_tests::Backend::Sqlite => format!("X'{legacy}'"),
        tapkiosk_tests::Backend::Postgres => format!("'\\x{legacy}'::bytea"),
    };
    run(
        &t,
        &format!(
            "UPDATE passes SET value_mac = {blob} WHERE id = '{}'",
            issued.pass.id
        ),
    )
    .await;
    run(&t, "UPDATE policy SET mac = NULL").await;
    run(&t, "UPDATE directory_meta SET records_sealed = 0").await;
    t.directory.close().await;
    let clock = Arc::new(t.clock.clone());
    let settings = t.directory.settings().clone();
    // A kiosk does not upgrade the directory: it says who must.
    let refused = Directory::open(&t.location, t.key(), clock.clone(), settings.clone()).await;
    assert!(
        matches!(refused, Err(DirectoryError::SchemaOutdated(_))),
        "{:?}",
        refused.map(drop)
    );
    let reopened = Directory::migrate(&t.location, t.key(), clock, settings)
        .await
        .unwrap();
    reopened.policy().await.unwrap();
    reopened
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
}
