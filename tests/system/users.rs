use crate::{add, audit_kinds};
use tapkiosk_core::directory::{DirectoryError, IssueRequest};
use tapkiosk_core::user::NewUser;
use tapkiosk_core::{Email, PassStatus, import};
use tapkiosk_tests::{TestDirectory, on_both_backends};

on_both_backends!(
    users_are_added_listed_and_shown,
    emails_are_unique_whatever_their_case,
    disabling_and_removing_users,
    imports_apply_every_row_or_none,
);

async fn users_are_added_listed_and_shown(t: TestDirectory) {
    let email = Email::parse("Ada@Example.com").unwrap();
    let groups = vec!["staff".to_string(), "new-hires".to_string()];
    t.directory
        .add_user(&NewUser::new(email.clone(), Some("Ada Lovelace"), &groups).unwrap())
        .await
        .unwrap();
    add(&t, "bob@example.com").await;

    let users = t.directory.list_users().await.unwrap();
    let emails: Vec<&str> = users.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(emails, ["ada@example.com", "bob@example.com"]);
    assert_eq!(users[0].groups, ["new-hires", "staff"]);
    assert_eq!(users[0].pass_status, None);

    t.directory
        .issue_pass(&IssueRequest::new(email.clone()))
        .await
        .unwrap();
    let shown = t.directory.show_user(&email).await.unwrap();
    assert_eq!(shown.summary.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(shown.summary.pass_status, Some(PassStatus::Usable));
    assert_eq!(shown.passes.len(), 1);
    assert!(shown.methods.is_empty());
    assert_eq!(
        audit_kinds(&t).await,
        [
            "directory_initialised",
            "policy_changed",
            "user_added",
            "user_added",
            "pass_issued"
        ]
    );
}

async fn emails_are_unique_whatever_their_case(t: TestDirectory) {
    add(&t, "ada@example.com").await;
    let again = NewUser::new(Email::parse("ADA@EXAMPLE.COM").unwrap(), None, &[]).unwrap();
    assert!(matches!(
        t.directory.add_user(&again).await,
        Err(DirectoryError::UserExists(_))
    ));
    assert_eq!(t.directory.list_users().await.unwrap().len(), 1);
}

async fn disabling_and_removing_users(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    t.directory.set_user_enabled(&ada, false).await.unwrap();
    assert!(!t.directory.show_user(&ada).await.unwrap().summary.enabled);
    assert!(matches!(
        t.directory
            .issue_pass(&IssueRequest::new(ada.clone()))
            .await,
        Err(DirectoryError::UserDisabled(_))
    ));
    t.directory.set_user_enabled(&ada, true).await.unwrap();
    t.directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();

    t.directory.remove_user(&ada).await.unwrap();
    assert!(matches!(
        t.directory.show_user(&ada).await,
        Err(DirectoryError::UserNotFound(_))
    ));
    assert!(matches!(
        t.directory.remove_user(&ada).await,
        Err(DirectoryError::UserNotFound(_))
    ));
    let kinds = audit_kinds(&t).await;
    assert_eq!(kinds.iter().filter(|k| *k == "user_changed").count(), 2);
    assert_eq!(kinds.last().map(String::as_str), Some("user_removed"));
}

async fn imports_apply_every_row_or_none(t: TestDirectory) {
    add(&t, "carol@example.com").await;
    let clash = "email,display_name,groups\nada@example.com,Ada,staff\ncarol@example.com,Carol,\n";
    let rows = import::parse_users(clash).unwrap();
    match t.directory.import_users(&rows).await {
        Err(DirectoryError::Rows(errors)) => {
            assert_eq!(errors.0.len(), 1);
            assert_eq!(errors.0[0].line, 3);
        }
        other => panic!("expected row errors, got {other:?}"),
    }
    assert_eq!(
        t.directory.list_users().await.unwrap().len(),
        1,
        "a failed import added someone"
    );

    let good = "ada@example.com,Ada,staff\nbob@example.com,Bob,staff;new-hires\n";
    assert_eq!(
        t.directory
            .import_users(&import::parse_users(good).unwrap())
            .await
            .unwrap(),
        2
    );
    assert_eq!(t.directory.list_users().await.unwrap().len(), 3);
}
