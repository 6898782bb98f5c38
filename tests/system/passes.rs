use crate::add;
use chrono::TimeDelta;
use std::collections::BTreeSet;
use tapkiosk_core::directory::{DirectoryError, IssueRequest};
use tapkiosk_core::policy::{Lifetime, OneTime, PolicyError, Target};
use tapkiosk_core::user::NewUser;
use tapkiosk_core::{Email, PassCode, PassStatus, Policy, import};
use tapkiosk_tests::{TestDirectory, on_both_backends};

on_both_backends!(
    a_pass_follows_its_start_and_lifetime,
    one_live_pass_per_person_unless_replaced,
    passes_obey_the_policy,
    revoking_ends_the_live_pass,
    policy_changes_are_validated_and_audited,
    batches_issue_every_pass_or_none,
    a_large_batch_is_checked_and_written_as_single_passes_are,
    a_policy_save_does_not_undo_one_made_since_it_was_read,
    no_write_waits_while_a_pass_is_shown,
    a_pass_that_cannot_be_shown_is_not_issued_and_replaces_nothing,
    a_pass_shown_too_slowly_is_not_issued,
);

#[tokio::test]
async fn a_new_directory_issues_one_time_passes_only() {
    let t = tapkiosk_tests::spawn_with(tapkiosk_tests::Backend::Sqlite, Default::default()).await;
    let ada = add(&t, "ada@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();
    assert!(issued.pass.one_time);
    let multi_use = IssueRequest {
        one_time: Some(false),
        replace: true,
        ..IssueRequest::new(ada)
    };
    assert!(matches!(
        t.directory.issue_pass(&multi_use).await,
        Err(DirectoryError::Policy(PolicyError::OneTimeRequired))
    ));
}

async fn a_pass_follows_its_start_and_lifetime(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let start = t.clock.now_plus(TimeDelta::hours(2));
    let request = IssueRequest {
        start: Some(start),
        lifetime: Some(Lifetime::parse("90m").unwrap()),
        ..IssueRequest::new(ada.clone())
    };
    let issued = t.directory.issue_pass(&request).await.unwrap();
    assert_eq!(issued.code.expose().len(), 12);
    assert!(PassCode::parse(&issued.code.grouped()).is_ok());
    assert_eq!(issued.pass.start_at, start);
    assert!(
        !issued.pass.one_time,
        "one-time use is optional by default, as in Entra"
    );

    let status = || async { t.directory.passes(&ada).await.unwrap()[0].1 };
    assert_eq!(status().await, PassStatus::NotYetValid);
    t.clock.advance(TimeDelta::hours(2));
    assert_eq!(status().await, PassStatus::Usable);
    t.clock.advance(TimeDelta::minutes(89));
    assert_eq!(status().await, PassStatus::Usable);
    t.clock.advance(TimeDelta::minutes(1));
    assert_eq!(status().await, PassStatus::Expired);

    let past = IssueRequest {
        start: Some(t.clock.now_plus(TimeDelta::minutes(-5))),
        ..IssueRequest::new(ada)
    };
    assert!(matches!(
        t.directory.issue_pass(&past).await,
        Err(DirectoryError::StartInPast(_))
    ));
}

async fn one_live_pass_per_person_unless_replaced(t: TestDirectory) {
    let (ada, first) = ada_with_a_pass(&t).await;
    let again = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await;
    assert!(
        matches!(again, Err(DirectoryError::LivePassExists { .. })),
        "{again:?}"
    );

    let replace = IssueRequest {
        replace: true,
        ..IssueRequest::new(ada.clone())
    };
    let second = t.directory.issue_pass(&replace).await.unwrap();
    assert_eq!(second.replaced.as_deref(), Some(first.pass.id.as_str()));
    assert_ne!(first.code, second.code);
    let passes = t.directory.passes(&ada).await.unwrap();
    let states: Vec<PassStatus> = passes.iter().map(|(_, s)| *s).collect();
    assert_eq!(states, [PassStatus::Usable, PassStatus::Revoked]);

    // An expired pass is not live: a new one needs no --replace.
    t.clock.advance(TimeDelta::hours(1));
    t.directory
        .issue_pass(&IssueRequest::new(ada))
        .await
        .unwrap();
}

async fn passes_obey_the_policy(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let too_long = IssueRequest {
        lifetime: Some(Lifetime::parse("9h").unwrap()),
        ..IssueRequest::new(ada.clone())
    };
    assert!(matches!(
        t.directory.issue_pass(&too_long).await,
        Err(DirectoryError::Policy(
            PolicyError::LifetimeOutsidePolicy { .. }
        ))
    ));

    let strict = Policy {
        one_time: OneTime::Required,
        length: 20,
        ..Policy::default()
    };
    t.directory.set_policy(&strict).await.unwrap();
    let multi = IssueRequest {
        one_time: Some(false),
        ..IssueRequest::new(ada.clone())
    };
    assert!(matches!(
        t.directory.issue_pass(&multi).await,
        Err(DirectoryError::Policy(PolicyError::OneTimeRequired))
    ));
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();
    assert!(issued.pass.one_time);
    assert_eq!(issued.code.expose().len(), 20);

    let groups = Policy {
        target: Target::Groups(BTreeSet::from(["new-hires".to_string()])),
        ..strict
    };
    t.directory.set_policy(&groups).await.unwrap();
    assert_eq!(
        t.directory.passes(&ada).await.unwrap()[0].1,
        PassStatus::DisabledByPolicy
    );
    let replace = IssueRequest {
        replace: true,
        ..IssueRequest::new(ada)
    };
    assert!(matches!(
        t.directory.issue_pass(&replace).await,
        Err(DirectoryError::NotTargeted(_))
    ));
}

async fn revoking_ends_the_live_pass(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    assert!(matches!(
        t.directory.revoke_pass(&ada).await,
        Err(DirectoryError::NoLivePass(_))
    ));
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();
    assert_eq!(t.directory.revoke_pass(&ada).await.unwrap(), issued.pass.id);
    assert_eq!(
        t.directory.passes(&ada).await.unwrap()[0].1,
        PassStatus::Revoked
    );
    assert!(matches!(
        t.directory.revoke_pass(&ada).await,
        Err(DirectoryError::NoLivePass(_))
    ));
}

async fn policy_changes_are_validated_and_audited(t: TestDirectory) {
    let spawned = Policy {
        one_time: OneTime::Optional,
        ..Policy::default()
    };
    assert_eq!(t.directory.policy().await.unwrap(), spawned);
    let bad = Policy {
        default_lifetime: Lifetime::parse("10h").unwrap(),
        ..Policy::default()
    };
    assert!(matches!(
        t.directory.set_policy(&bad).await,
        Err(DirectoryError::Policy(PolicyError::DefaultOutside { .. }))
    ));
    assert_eq!(t.directory.policy().await.unwrap(), spawned);
    let good = Policy {
        max_lifetime: Lifetime::parse("30d").unwrap(),
        ..Policy::default()
    };
    t.directory.set_policy(&good).await.unwrap();
    assert_eq!(t.directory.policy().await.unwrap(), good);
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let change = log.last().unwrap();
    assert_eq!(change.kind, "policy_changed");
    assert_eq!(change.detail["before"]["max_lifetime"], 480);
    assert_eq!(change.detail["after"]["max_lifetime"], 43_200);
}

async fn batches_issue_every_pass_or_none(t: TestDirectory) {
    for email in ["ada@example.com", "bob@example.com"] {
        add(&t, email).await;
    }
    let to_requests = |text: &str| -> Vec<(u64, IssueRequest)> {
        import::parse_batch(text)
            .unwrap()
            .into_iter()
            .map(|(line, row)| (line, row.into_request(false)))
            .collect()
    };
    let bad = to_requests(
        "email,start,lifetime,one_time\nada@example.com,,2h,yes\nnobody@example.com,,,\nbob@example.com,,9h,\n",
    );
    match t
        .directory
        .issue_batch(&bad, |_| Ok::<(), String>(()))
        .await
    {
        Err(DirectoryError::Rows(errors)) => {
            let lines: Vec<u64> = errors.0.iter().map(|e| e.line).collect();
            assert_eq!(lines, [3, 4]);
        }
        other => panic!("expected row errors, got {other:?}"),
    }
    let good = to_requests("ada@example.com,2026-12-02T09:00:00Z,2h,yes\nbob@example.com,,,\n");
    let refused = t.directory.issue_batch(&good, |_| Err("disk full")).await;
    assert!(refused.is_err());
    let ada = tapkiosk_core::Email::parse("ada@example.com").unwrap();
    assert!(
        t.directory.passes(&ada).await.unwrap().is_empty(),
        "a failed batch issued a pass"
    );

    let mut delivered = Vec::new();
    let issued = t
        .directory
        .issue_batch(&good, |passes| {
            delivered = passes.iter().map(|p| p.code.grouped()).collect();
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    assert_eq!(issued.len(), 2);
    assert_eq!(delivered.len(), 2);
    assert_eq!(issued[0].status, PassStatus::NotYetValid);
    assert!(issued[0].pass.one_time);
}

/// A batch larger than a statement's thousand rows is checked as single
/// passes are (unknown, outside the policy's groups, a live pass without
/// replace), all or nothing, and its passes, replacements and audit events
/// are written whole: every pass signs in, every replaced one no longer
/// does, and the chain verifies.
async fn a_large_batch_is_checked_and_written_as_single_passes_are(t: TestDirectory) {
    const PEOPLE: usize = 2_500;
    let email = |n: usize| Email::parse(&format!("hire{n}@example.com")).unwrap();
    let people: Vec<(u64, NewUser)> = (0..PEOPLE)
        .map(|n| {
            let groups = if n == 1_500 {
                vec![]
            } else {
                vec!["staff".to_string()]
            };
            (n as u64 + 1, NewUser::new(email(n), None, &groups).unwrap())
        })
        .collect();
    assert_eq!(t.directory.import_users(&people).await.unwrap(), PEOPLE);
    let again = t.directory.import_users(&people[999..1_001]).await;
    assert!(
        matches!(again, Err(DirectoryError::Rows(ref e)) if e.0.len() == 2),
        "{again:?}"
    );
    t.directory
        .update_policy(|p| {
            p.target = Target::Groups(["staff".to_string()].into());
            Ok(())
        })
        .await
        .unwrap();
    // Live passes for a few, issued one at a time.
    let mut old = Vec::new();
    for n in [0, 999, 1_000, 2_499] {
        let issued = t
            .directory
            .issue_pass(&IssueRequest::new(email(n)))
            .await
            .unwrap();
        old.push((n, issued.code.grouped()));
    }
    let asked = |replace: bool, people: std::ops::Range<usize>| -> Vec<(u64, IssueRequest)> {
        people
            .map(|n| {
                let request = IssueRequest {
                    replace,
                    ..IssueRequest::new(email(n))
                };
                (n as u64 + 2, request)
            })
            .collect()
    };
    let mut refused = asked(false, 0..PEOPLE);
    refused.push((
        9_999,
        IssueRequest::new(Email::parse("nobody@example.com").unwrap()),
    ));
    let Err(DirectoryError::Rows(errors)) = t
        .directory
        .issue_batch(&refused, |_| Ok::<(), String>(()))
        .await
    else {
        panic!("the batch went through");
    };
    let lines: Vec<u64> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 1_001, 1_002, 1_502, 2_501, 9_999], "{errors:?}");
    assert!(
        errors.0[3].message.contains("hire1500@example.com"),
        "{}",
        errors.0[3].message
    );
    assert!(
        t.directory.passes(&email(1)).await.unwrap().is_empty(),
        "nothing issued"
    );

    let mut replacing = asked(true, 0..1_500);
    replacing.extend(asked(true, 1_501..PEOPLE));
    let issued = t
        .directory
        .issue_batch(&replacing, |_| Ok::<(), String>(()))
        .await
        .unwrap();
    assert_eq!(issued.len(), PEOPLE - 1);
    let replaced: Vec<&str> = issued
        .iter()
        .filter_map(|p| p.replaced.as_deref())
        .collect();
    assert_eq!(replaced.len(), 4);
    for (n, code) in &old {
        assert!(
            t.directory.redeem(email(*n).as_str(), code).await.is_err(),
            "hire{n}'s old pass"
        );
    }
    for pass in [
        &issued[0],
        &issued[999],
        &issued[1_000],
        &issued[PEOPLE - 2],
    ] {
        let session = t
            .directory
            .redeem(pass.email.as_str(), &pass.code.grouped())
            .await;
        assert!(session.is_ok(), "{}: {session:?}", pass.email);
    }
    let verified = t.directory.verify_audit().await.unwrap();
    assert_eq!(verified.broken, None);
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let count = |kind: &str| log.iter().filter(|r| r.kind == kind).count();
    assert_eq!(count("user_added"), PEOPLE);
    assert_eq!(count("pass_issued"), 4 + PEOPLE - 1);
    assert_eq!(count("pass_replaced"), 4);
    let seqs: Vec<i64> = log.iter().map(|r| r.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "one unbroken sequence"
    );
}

async fn a_policy_save_does_not_undo_one_made_since_it_was_read(t: TestDirectory) {
    let read = t.directory.policy().await.unwrap();
    let mine = Policy {
        length: 16,
        ..read.clone()
    };
    // Another administrator requires one-time passes meanwhile.
    let theirs = t
        .directory
        .update_policy(|p| {
            p.one_time = OneTime::Required;
            Ok(())
        })
        .await
        .unwrap();
    let saved = t.directory.replace_policy(&read, &mine).await;
    assert!(
        matches!(saved, Err(DirectoryError::PolicyChanged)),
        "{saved:?}"
    );
    assert_eq!(t.directory.policy().await.unwrap(), theirs);
    // Saved over what is there now, it goes through.
    let mine = Policy {
        length: 16,
        ..theirs.clone()
    };
    t.directory.replace_policy(&theirs, &mine).await.unwrap();
    assert_eq!(t.directory.policy().await.unwrap(), mine);
}

/// Ada, and a pass issued to her with the policy's defaults.
async fn ada_with_a_pass(t: &TestDirectory) -> (Email, tapkiosk_core::directory::IssuedPass) {
    let ada = add(t, "ada@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();
    (ada, issued)
}

/// Runs `write` on the test's runtime from inside a `deliver` closure,
/// which is not async (it prints, or writes letters to a file).
fn meanwhile<T>(write: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(write))
}

/// While a pass's value is being shown (a terminal IT has paused, a slow
/// disk), no transaction is open: another write, even on SQLite's single
/// writer, goes through. The pass itself does not work, nor is it listed,
/// until it has been shown.
async fn no_write_waits_while_a_pass_is_shown(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let bob = add(&t, "bob@example.com").await;
    let issued = t
        .directory
        .issue_pass_and(&IssueRequest::new(ada.clone()), |shown| {
            meanwhile(async {
                t.directory
                    .issue_pass(&IssueRequest::new(bob.clone()))
                    .await
                    .map_err(|e| format!("bob waited: {e}"))?;
                assert!(t.directory.passes(&ada).await.unwrap().is_empty());
                let value = shown.code.grouped();
                let early = t.directory.redeem("ada@example.com", &value).await;
                assert!(early.is_err(), "a pass works before it is shown");
                Ok::<(), String>(())
            })
        })
        .await
        .unwrap();
    assert_eq!(t.directory.passes(&bob).await.unwrap().len(), 1);
    let passes = t.directory.passes(&ada).await.unwrap();
    assert_eq!(passes.len(), 1);
    assert_eq!(passes[0].0.id, issued.pass.id);
    t.directory
        .redeem("ada@example.com", &issued.code.grouped())
        .await
        .unwrap();
    let kinds = crate::audit_kinds(&t).await;
    assert_eq!(kinds.iter().filter(|k| *k == "pass_issued").count(), 2);
}

/// The value could not be shown (a closed pipe, a full disk): the new pass
/// is gone, and the one it was to replace still works.
async fn a_pass_that_cannot_be_shown_is_not_issued_and_replaces_nothing(t: TestDirectory) {
    let (ada, first) = ada_with_a_pass(&t).await;
    let replace = IssueRequest {
        replace: true,
        ..IssueRequest::new(ada.clone())
    };
    let failed = t
        .directory
        .issue_pass_and(&replace, |_| Err("the disk is full"))
        .await
        .unwrap_err();
    assert!(
        failed
            .to_string()
            .contains("nothing was issued: the disk is full"),
        "{failed}"
    );
    let passes = t.directory.passes(&ada).await.unwrap();
    assert_eq!(passes.len(), 1, "{passes:?}");
    assert_eq!(passes[0].0.id, first.pass.id);
    assert!(passes[0].1.is_live());
    let kinds = crate::audit_kinds(&t).await;
    assert!(!kinds.contains(&"pass_replaced".to_string()), "{kinds:?}");
    // Nothing waits for the person either: a new pass can be issued at once.
    t.directory.issue_pass(&replace).await.unwrap();
}

/// Shown after its lease (a terminal paused for minutes), a pass is not
/// issued: its value was printed but does not work, and tapctl says so.
async fn a_pass_shown_too_slowly_is_not_issued(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let late = t
        .directory
        .issue_pass_and(&IssueRequest::new(ada.clone()), |_| {
            t.clock
                .advance(tapkiosk_core::directory::PENDING_LEASE + TimeDelta::seconds(1));
            Ok::<(), String>(())
        })
        .await
        .unwrap_err();
    assert!(
        late.to_string().contains("waited more than 2 minutes"),
        "{late}"
    );
    assert!(t.directory.passes(&ada).await.unwrap().is_empty());
    assert!(
        !crate::audit_kinds(&t)
            .await
            .contains(&"pass_issued".to_string())
    );
    t.directory
        .issue_pass(&IssueRequest::new(ada))
        .await
        .unwrap();
}
