use crate::add;
use chrono::TimeDelta;
use std::collections::BTreeSet;
use tapkiosk_core::directory::IssueRequest;
use tapkiosk_core::policy::{Lifetime, Target};
use tapkiosk_core::redeem::RedeemError;
use tapkiosk_core::{Email, Policy};
use tapkiosk_tests::{TestDirectory, on_both_backends};

on_both_backends!(
    a_correct_pass_opens_a_session,
    unknown_email_and_wrong_pass_look_the_same,
    only_a_correct_pass_tells_why_it_cannot_be_used,
    five_wrong_passes_lock_the_email_with_growing_back_off,
    failures_outside_the_window_do_not_lock,
    unknown_emails_lock_out_like_known_ones,
    multi_use_passes_sign_in_repeatedly_and_each_is_audited,
    the_live_pass_works_after_many_replacements_in_one_second,
    it_lifts_a_lockout_at_once,
    escalation_is_forgotten_after_a_quiet_day,
    a_kiosk_trying_many_emails_is_throttled,
    tries_at_a_locked_email_are_audited_at_powers_of_two,
);

/// What one call did, as its trace events tell: the SQL statements run (as
/// written, without their values) and the number of HMACs taken.
#[derive(Debug, PartialEq, Eq)]
struct Work {
    statements: Vec<String>,
    hmacs: usize,
}

/// What the recorder saw: statements and HMACs, since it was last taken.
type Seen = std::sync::Arc<std::sync::Mutex<(Vec<String>, usize)>>;

/// Installs, for the whole process, a subscriber that records every SQL
/// statement and HMAC. Trace events are per process (SQLite runs its
/// statements on worker threads of its own), so this runs only in a process
/// of its own: see [`unknown_email_and_wrong_pass_take_the_same_statements_and_hmacs`].
fn record_work() -> Seen {
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    struct Recorder(Seen);
    struct Statement<'a>(&'a mut Option<String>);
    impl Visit for Statement<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "db.statement" || (field.name() == "summary" && self.0.is_none()) {
                *self.0 = Some(value.trim().to_string());
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut seen = self.0.lock().unwrap();
            match event.metadata().target() {
                "tapkiosk::hmac" => seen.1 += 1,
                "sqlx::query" => {
                    let mut statement = None;
                    event.record(&mut Statement(&mut statement));
                    seen.0.push(statement.unwrap_or_default());
                }
                _ => {}
            }
        }
    }
    let seen = Seen::default();
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("tapkiosk::hmac", tracing::Level::TRACE)
        .with_target("sqlx::query", tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::registry()
        .with(Recorder(seen.clone()))
        .with(filter);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    seen
}

/// The statements and HMACs of `call`. Statements whose text the trace
/// leaves empty (the transaction's own, and the session settings of a
/// connection the pool may open during either call) are left out.
async fn work_of<T>(seen: &Seen, call: impl std::future::Future<Output = T>) -> Work {
    std::mem::take(&mut *seen.lock().unwrap());
    call.await;
    let (mut statements, hmacs) = std::mem::take(&mut *seen.lock().unwrap());
    statements.retain(|statement| !statement.is_empty());
    Work { statements, hmacs }
}

/// Runs [`counted_in_a_process_of_its_own`] alone in a new process of this
/// test binary: a process-wide recorder in this one would see every other
/// test's statements too, and one per thread misses SQLite's.
#[test]
fn unknown_email_and_wrong_pass_take_the_same_statements_and_hmacs() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "redeem::counted_in_a_process_of_its_own",
            "--ignored",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("1 passed"), "{said}");
}

#[tokio::test]
#[ignore = "run alone, in a process of its own, by unknown_email_and_wrong_pass_take_the_same_statements_and_hmacs"]
async fn counted_in_a_process_of_its_own() {
    let seen = record_work();
    for backend in [
        tapkiosk_tests::Backend::Sqlite,
        tapkiosk_tests::Backend::Postgres,
    ] {
        let t = tapkiosk_tests::spawn(backend).await;
        let ada = add(&t, "ada@example.com").await;
        let replacing = IssueRequest {
            replace: true,
            ..IssueRequest::new(ada.clone())
        };
        for _ in 0..3 {
            t.directory.issue_pass(&replacing).await.unwrap();
        }
        // The kiosk's own count of wrong passes exists from here on for both.
        let _ = t.directory.redeem("first@example.com", WRONG).await;
        let unknown = work_of(&seen, t.directory.redeem("nobody@example.com", WRONG)).await;
        let wrong = work_of(&seen, t.directory.redeem("ada@example.com", WRONG)).await;
        assert!(unknown.statements.len() > 5, "{unknown:?}");
        assert!(unknown.hmacs > 10, "{unknown:?}");
        assert_eq!(unknown, wrong);
        // The recorder sees a difference where there is one.
        let right_pass = t.directory.issue_pass(&replacing).await.unwrap();
        let right = work_of(
            &seen,
            t.directory
                .redeem("ada@example.com", right_pass.code.expose()),
        )
        .await;
        assert_ne!(right, wrong);
    }
}

/// Five wrong passes for `email`: the fifth locks it.
async fn lock_out(t: &TestDirectory, email: &str) -> chrono::DateTime<chrono::Utc> {
    for _ in 0..4 {
        let _ = t.directory.redeem(email, WRONG).await;
    }
    match t.directory.redeem(email, WRONG).await {
        Err(RedeemError::LockedOut { until }) => until,
        other => panic!("expected a lockout, got {other:?}"),
    }
}

/// The counts of refusals during a lockout that the log holds.
async fn refusals_audited(t: &TestDirectory) -> Vec<i64> {
    t.directory
        .audit_log(&Default::default())
        .await
        .unwrap()
        .iter()
        .filter(|r| r.kind == "sign_in_failed" && r.detail["reason"] == "locked_out")
        .map(|r| r.detail["refused_in_lockout"].as_i64().unwrap())
        .collect()
}

/// Someone typing on at a locked email grows the log by the logarithm of
/// their tries, each event with the count so far; the next lockout counts
/// afresh.
async fn tries_at_a_locked_email_are_audited_at_powers_of_two(t: TestDirectory) {
    let until = lock_out(&t, "ada@example.com").await;
    for _ in 0..100 {
        match t.directory.redeem("ada@example.com", WRONG).await {
            Err(RedeemError::LockedOut { until: said }) => assert_eq!(said, until),
            other => panic!("expected the lockout, got {other:?}"),
        }
    }
    assert_eq!(refusals_audited(&t).await, [1, 2, 4, 8, 16, 32, 64]);
    t.clock.set(until);
    lock_out(&t, "ada@example.com").await;
    for _ in 0..3 {
        t.directory
            .redeem("ada@example.com", WRONG)
            .await
            .unwrap_err();
    }
    assert_eq!(
        refusals_audited(&t).await,
        [1, 2, 4, 8, 16, 32, 64, 1, 2],
        "the second lockout counts from one"
    );
    let verification = t.directory.verify_audit().await.unwrap();
    assert_eq!(verification.broken, None);
}

async fn it_lifts_a_lockout_at_once(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();
    lock_out(&t, "ada@example.com").await;
    assert!(t.directory.lift_lockout(&ada).await.unwrap());
    assert!(
        !t.directory.lift_lockout(&ada).await.unwrap(),
        "lifted twice"
    );
    t.directory
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
    let kinds = crate::audit_kinds(&t).await;
    assert!(kinds.iter().any(|k| k == "lockout_lifted"), "{kinds:?}");
}

async fn escalation_is_forgotten_after_a_quiet_day(t: TestDirectory) {
    let first = lock_out(&t, "ada@example.com").await;
    assert_eq!(first, t.clock.now_plus(TimeDelta::minutes(5)));
    t.clock.advance(TimeDelta::minutes(6));
    // Again soon after: the lockout doubles.
    let second = lock_out(&t, "ada@example.com").await;
    assert_eq!(second, t.clock.now_plus(TimeDelta::minutes(10)));
    // A quiet day after it ended: back to the first length.
    t.clock
        .advance(TimeDelta::minutes(10) + TimeDelta::hours(24));
    let later = lock_out(&t, "ada@example.com").await;
    assert_eq!(later, t.clock.now_plus(TimeDelta::minutes(5)));
}

async fn a_kiosk_trying_many_emails_is_throttled(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada))
        .await
        .unwrap();
    // Four guesses on each of five people: no email reaches its lockout,
    // but the kiosk reaches its 20.
    let mut answers = Vec::new();
    for person in 0..5 {
        for _ in 0..4 {
            let email = format!("person{person}@example.com");
            answers.push(t.directory.redeem(&email, WRONG).await.unwrap_err());
        }
    }
    assert!(
        answers[..19]
            .iter()
            .all(|a| matches!(a, RedeemError::InvalidCredentials))
    );
    assert!(
        matches!(answers[19], RedeemError::LockedOut { .. }),
        "{:?}",
        answers[19]
    );
    // Meanwhile even the right pass waits at this kiosk.
    assert!(matches!(
        t.directory
            .redeem("ada@example.com", issued.code.expose())
            .await,
        Err(RedeemError::LockedOut { .. })
    ));
    t.clock.advance(TimeDelta::minutes(5));
    t.directory
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
}

const WRONG: &str = "ZZZZ-ZZZZ-ZZZZ";

async fn a_correct_pass_opens_a_session(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();
    // Typed the way a nervous person types it.
    let typed = issued.code.grouped().to_lowercase().replace('-', " ");
    let session = t
        .directory
        .redeem(" ADA@example.com ", &typed)
        .await
        .unwrap();
    assert_eq!(session.email, ada);
    assert_eq!(session.pass_id, issued.pass.id);
    assert_eq!(
        session.ends_at,
        t.clock.now_plus(TimeDelta::minutes(15)),
        "the session limit applies"
    );

    // A session never outlives its pass.
    t.clock.advance(TimeDelta::minutes(50));
    let late = t
        .directory
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
    assert_eq!(late.ends_at, issued.pass.end_at());
}

async fn unknown_email_and_wrong_pass_look_the_same(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    t.directory
        .issue_pass(&IssueRequest::new(ada))
        .await
        .unwrap();
    let unknown = t
        .directory
        .redeem("nobody@example.com", WRONG)
        .await
        .unwrap_err();
    let wrong = t
        .directory
        .redeem("ada@example.com", WRONG)
        .await
        .unwrap_err();
    let malformed = t
        .directory
        .redeem("ada@example.com", "not a pass!")
        .await
        .unwrap_err();
    for error in [&unknown, &wrong, &malformed] {
        assert!(
            matches!(error, RedeemError::InvalidCredentials),
            "{error:?}"
        );
    }
    assert_eq!(unknown.to_string(), wrong.to_string());
    // The audit log keeps the true reasons.
    let reasons: Vec<String> = t
        .directory
        .audit_log(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "sign_in_failed")
        .map(|r| r.detail["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["unknown_email", "wrong_pass", "malformed_pass"]);
}

async fn only_a_correct_pass_tells_why_it_cannot_be_used(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let start = t.clock.now_plus(TimeDelta::days(6));
    let later = IssueRequest {
        start: Some(start),
        ..IssueRequest::new(ada.clone())
    };
    let issued = t.directory.issue_pass(&later).await.unwrap();
    match t
        .directory
        .redeem("ada@example.com", issued.code.expose())
        .await
    {
        Err(RedeemError::NotYetValid { starts }) => assert_eq!(starts, start),
        other => panic!("expected not yet valid, got {other:?}"),
    }
    assert!(matches!(
        t.directory.redeem("ada@example.com", WRONG).await,
        Err(RedeemError::InvalidCredentials)
    ));

    t.clock.set(start + TimeDelta::hours(1));
    assert!(matches!(
        t.directory
            .redeem("ada@example.com", issued.code.expose())
            .await,
        Err(RedeemError::Expired)
    ));

    let replaced = t
        .directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();
    let newest = t
        .directory
        .issue_pass(&IssueRequest {
            replace: true,
            ..IssueRequest::new(ada.clone())
        })
        .await
        .unwrap();
    assert!(matches!(
        t.directory
            .redeem("ada@example.com", replaced.code.expose())
            .await,
        Err(RedeemError::Revoked)
    ));

    t.directory.set_user_enabled(&ada, false).await.unwrap();
    assert!(matches!(
        t.directory
            .redeem("ada@example.com", newest.code.expose())
            .await,
        Err(RedeemError::AccountDisabled)
    ));
    t.directory.set_user_enabled(&ada, true).await.unwrap();

    let policy = Policy {
        target: Target::Groups(BTreeSet::from(["new-hires".into()])),
        ..Policy::default()
    };
    t.directory.set_policy(&policy).await.unwrap();
    assert!(matches!(
        t.directory
            .redeem("ada@example.com", newest.code.expose())
            .await,
        Err(RedeemError::DisabledByPolicy)
    ));
    t.directory.set_policy(&Policy::default()).await.unwrap();
    t.directory
        .redeem("ada@example.com", newest.code.expose())
        .await
        .unwrap();
}

async fn five_wrong_passes_lock_the_email_with_growing_back_off(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada))
        .await
        .unwrap();
    for _ in 0..4 {
        assert!(matches!(
            t.directory.redeem("ada@example.com", WRONG).await,
            Err(RedeemError::InvalidCredentials)
        ));
    }
    let until = match t.directory.redeem("ada@example.com", WRONG).await {
        Err(RedeemError::LockedOut { until }) => until,
        other => panic!("expected a lockout, got {other:?}"),
    };
    assert_eq!(until, t.clock.now_plus(TimeDelta::minutes(5)));
    // Locked even with the right pass.
    assert!(matches!(
        t.directory
            .redeem("ada@example.com", issued.code.expose())
            .await,
        Err(RedeemError::LockedOut { .. })
    ));

    t.clock.set(until);
    for _ in 0..4 {
        t.directory
            .redeem("ada@example.com", WRONG)
            .await
            .unwrap_err();
    }
    let second = match t.directory.redeem("ada@example.com", WRONG).await {
        Err(RedeemError::LockedOut { until }) => until,
        other => panic!("expected a second lockout, got {other:?}"),
    };
    assert_eq!(
        second,
        t.clock.now_plus(TimeDelta::minutes(10)),
        "the second lockout is twice as long"
    );

    t.clock.set(second);
    t.directory
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
    let kinds = crate::audit_kinds(&t).await;
    assert_eq!(kinds.iter().filter(|k| *k == "locked_out").count(), 2);
}

async fn failures_outside_the_window_do_not_lock(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest {
            lifetime: Some(Lifetime::parse("8h").unwrap()),
            ..IssueRequest::new(ada)
        })
        .await
        .unwrap();
    for _ in 0..8 {
        assert!(matches!(
            t.directory.redeem("ada@example.com", WRONG).await,
            Err(RedeemError::InvalidCredentials)
        ));
        t.clock.advance(TimeDelta::minutes(4));
    }
    t.directory
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
}

async fn unknown_emails_lock_out_like_known_ones(t: TestDirectory) {
    for _ in 0..4 {
        t.directory
            .redeem("Nobody@Example.com", WRONG)
            .await
            .unwrap_err();
    }
    assert!(matches!(
        t.directory.redeem("nobody@example.com", WRONG).await,
        Err(RedeemError::LockedOut { .. })
    ));
}

async fn multi_use_passes_sign_in_repeatedly_and_each_is_audited(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest {
            one_time: Some(false),
            ..IssueRequest::new(ada.clone())
        })
        .await
        .unwrap();
    for _ in 0..3 {
        let session = t
            .directory
            .redeem("ada@example.com", issued.code.expose())
            .await
            .unwrap();
        t.directory.commit_session(&session).await.unwrap();
    }
    let filter = tapkiosk_core::audit::Filter {
        user: Some(Email::parse("ada@example.com").unwrap()),
        since: None,
    };
    let redeemed = t
        .directory
        .audit_log(&filter)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "pass_redeemed")
        .count();
    assert_eq!(redeemed, 3);
}

async fn the_live_pass_works_after_many_replacements_in_one_second(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let replace = IssueRequest {
        replace: true,
        ..IssueRequest::new(ada)
    };
    let mut last = None;
    for _ in 0..15 {
        last = Some(t.directory.issue_pass(&replace).await.unwrap().code);
    }
    t.directory
        .redeem("ada@example.com", last.unwrap().expose())
        .await
        .unwrap();
}
