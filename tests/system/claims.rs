use crate::add;
use chrono::TimeDelta;
use std::sync::Arc;
use tapkiosk_core::Directory;
use tapkiosk_core::Email;
use tapkiosk_core::config::SessionSettings;
use tapkiosk_core::directory::{DirectoryError, IssueRequest, Settings};
use tapkiosk_core::fido::ceremony::KeySource;
use tapkiosk_core::kiosk::{Kiosk, KioskSettings, Language, Notice, SESSION_CHECK, StepView};
use tapkiosk_core::redeem::RedeemError;
use tapkiosk_tests::{Backend, TestDirectory, on_both_backends};

on_both_backends!(
    thirty_two_kiosks_race_for_one_one_time_pass,
    a_dead_session_gives_its_pass_back_after_the_lease,
    a_committed_session_uses_the_pass_up,
    a_released_session_gives_the_pass_back_at_once,
    a_revoked_pass_cannot_be_committed,
    a_session_cannot_commit_once_its_pass_or_holder_stops_working,
    a_kiosk_session_longer_than_the_lease_keeps_its_pass,
    a_kiosk_session_goes_on_after_it_used_its_pass,
    a_renewal_that_fails_is_tried_again_shortly,
    revoking_a_used_pass_ends_the_session_it_opened,
    revoking_or_disabling_ends_any_session_within_seconds,
);

async fn one_time_pass(t: &TestDirectory) -> String {
    let ada = add(t, "ada@example.com").await;
    let request = IssueRequest {
        one_time: Some(true),
        ..IssueRequest::new(ada)
    };
    t.directory
        .issue_pass(&request)
        .await
        .unwrap()
        .code
        .expose()
        .to_string()
}

async fn thirty_two_kiosks_race_for_one_one_time_pass(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    let attempts: Vec<_> = (0..32)
        .map(|_| {
            let directory = t.directory.clone();
            let code = code.clone();
            tokio::spawn(async move { directory.redeem("ada@example.com", &code).await })
        })
        .collect();
    let mut sessions = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => sessions += 1,
            Err(RedeemError::InUse { .. }) => {}
            Err(other) => panic!("unexpected outcome: {other:?}"),
        }
    }
    assert_eq!(
        sessions, 1,
        "exactly one kiosk may sign in with a one-time pass"
    );
}

async fn a_dead_session_gives_its_pass_back_after_the_lease(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    let crashed = t.directory.redeem("ada@example.com", &code).await.unwrap();
    drop(crashed); // the kiosk lost power: no commit, no release
    match t.directory.redeem("ada@example.com", &code).await {
        Err(RedeemError::InUse { until }) => {
            assert_eq!(until, t.clock.now_plus(TimeDelta::minutes(15)))
        }
        other => panic!("expected the pass to be in use, got {other:?}"),
    }
    t.clock.advance(TimeDelta::minutes(15));
    let session = t.directory.redeem("ada@example.com", &code).await.unwrap();
    t.directory.commit_session(&session).await.unwrap();
}

/// Ada signed in at a kiosk whose sessions last up to 30 minutes on claims
/// of 5, with her one-time pass `code`.
async fn in_a_long_session(t: &TestDirectory, code: &str) -> Kiosk {
    let settings = Settings {
        session: SessionSettings {
            limit: TimeDelta::minutes(30),
            claim_lease: TimeDelta::minutes(5),
        },
        ..Settings::default()
    };
    let directory = Directory::open(&t.location, t.key(), Arc::new(t.clock.clone()), settings)
        .await
        .unwrap();
    let mut kiosk = Kiosk::new(
        directory,
        KioskSettings {
            organisation: "Example Ltd".into(),
            languages: vec![Language::En],
            idle_timeout: TimeDelta::hours(1),
            relying_party: None,
            keys: KeySource::Nowhere,
            tenant: None,
        },
    );
    kiosk.start(Language::En).await.unwrap();
    kiosk.submit_email("ada@example.com").await.unwrap();
    kiosk.submit_pass(code).await.unwrap();
    kiosk
}

/// Twelve minutes at the kiosk, the clock ticking.
async fn twelve_minutes(t: &TestDirectory, kiosk: &mut Kiosk) {
    for _ in 0..12 {
        t.clock.advance(TimeDelta::minutes(1));
        kiosk.tick().await.unwrap();
    }
}

async fn a_kiosk_session_longer_than_the_lease_keeps_its_pass(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    let mut kiosk = in_a_long_session(&t, &code).await;
    // Twelve minutes at the kiosk: the claim is renewed as it goes, so no
    // other kiosk can take the pass meanwhile.
    twelve_minutes(&t, &mut kiosk).await;
    assert!(matches!(kiosk.screen().step, StepView::Choose { .. }));
    assert!(matches!(
        t.directory.redeem("ada@example.com", &code).await,
        Err(RedeemError::InUse { .. })
    ));
    // Revoked meanwhile: the next renewal finds out and ends the session.
    t.directory
        .revoke_pass(&Email::parse("ada@example.com").unwrap())
        .await
        .unwrap();
    t.clock.advance(TimeDelta::minutes(3));
    let ended = kiosk.tick().await.unwrap();
    assert!(matches!(ended.step, StepView::Welcome { .. }));
    assert_eq!(ended.notice, Some(Notice::SessionEnded));
}

/// Registers an authenticator app: the first change uses the pass up.
async fn use_the_pass(t: &TestDirectory, kiosk: &mut Kiosk) {
    let setup = kiosk.add_authenticator().await.unwrap();
    let secret = crate::kiosk::secret_of(&setup);
    let code = crate::kiosk::code(t, &secret);
    kiosk.confirm_authenticator(&code).await.unwrap();
}

async fn a_kiosk_session_goes_on_after_it_used_its_pass(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    let mut kiosk = in_a_long_session(&t, &code).await;
    use_the_pass(&t, &mut kiosk).await;
    twelve_minutes(&t, &mut kiosk).await;
    assert_eq!(kiosk.screen().step, StepView::AuthenticatorTest);
}

async fn revoking_a_used_pass_ends_the_session_it_opened(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    let mut kiosk = in_a_long_session(&t, &code).await;
    use_the_pass(&t, &mut kiosk).await;
    // The pass is used up, but its session goes on: IT learns that the
    // wrong person typed it, and revokes it.
    let ada = Email::parse("ada@example.com").unwrap();
    t.directory.revoke_pass(&ada).await.unwrap();
    assert!(
        t.directory.revoke_pass(&ada).await.is_err(),
        "revoked twice"
    );
    // The session ends at its next claim renewal (half a lease).
    for _ in 0..3 {
        t.clock.advance(TimeDelta::minutes(1));
        kiosk.tick().await.unwrap();
    }
    let screen = kiosk.screen();
    assert!(
        matches!(screen.step, StepView::Welcome { .. }),
        "{screen:?}"
    );
    assert_eq!(screen.notice, Some(Notice::SessionEnded));
}

/// Makes every change to a pass fail in the database itself (`true`), or
/// stops that (`false`).
async fn refuse_pass_changes(t: &TestDirectory, refuse: bool) {
    use sqlx::Executor;
    let statements: &[&'static str] = match (t.backend, refuse) {
        (Backend::Sqlite, true) => &[
            "CREATE TRIGGER broken BEFORE UPDATE ON passes BEGIN SELECT RAISE(ABORT, 'broken'); END",
        ],
        (Backend::Sqlite, false) => &["DROP TRIGGER broken"],
        (Backend::Postgres, true) => &[
            "CREATE FUNCTION broken() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'broken'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER broken BEFORE UPDATE ON passes FOR EACH ROW EXECUTE FUNCTION broken()",
        ],
        (Backend::Postgres, false) => &["DROP TRIGGER broken ON passes"],
    };
    let mut conn = t.raw().await;
    for statement in statements {
        conn.execute(*statement).await.unwrap();
    }
}

async fn a_renewal_that_fails_is_tried_again_shortly(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    let mut kiosk = in_a_long_session(&t, &code).await;
    // Halfway through the lease the directory refuses the renewal: the
    // session goes on.
    refuse_pass_changes(&t, true).await;
    t.clock.advance(TimeDelta::seconds(150));
    let screen = kiosk.tick().await.unwrap();
    assert!(matches!(screen.step, StepView::Choose { .. }));
    refuse_pass_changes(&t, false).await;
    t.clock.advance(TimeDelta::seconds(20));
    kiosk.tick().await.unwrap();
    // Thirty seconds after the failure it tries again, and keeps the pass
    // past the first lease's end.
    t.clock.advance(TimeDelta::seconds(15));
    kiosk.tick().await.unwrap();
    t.clock.advance(TimeDelta::seconds(120));
    assert!(matches!(
        t.directory.redeem("ada@example.com", &code).await,
        Err(RedeemError::InUse { .. })
    ));
}

async fn a_committed_session_uses_the_pass_up(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    // A kiosk whose claims last 2 minutes unless renewed.
    let session_settings = SessionSettings {
        claim_lease: TimeDelta::minutes(2),
        ..SessionSettings::default()
    };
    let settings = Settings {
        session: session_settings,
        ..Settings::default()
    };
    let kiosk = Directory::open(&t.location, t.key(), Arc::new(t.clock.clone()), settings)
        .await
        .unwrap();
    let session = kiosk.redeem("ada@example.com", &code).await.unwrap();
    t.clock.advance(TimeDelta::seconds(90));
    kiosk.renew_claim(&session).await.unwrap();
    t.clock.advance(TimeDelta::seconds(90));
    kiosk.commit_session(&session).await.unwrap();
    assert!(matches!(
        kiosk.redeem("ada@example.com", &code).await,
        Err(RedeemError::Used)
    ));
    // The same session may go on making changes until it ends, and its
    // kiosk keeping the claim finds nothing left to keep.
    kiosk.commit_session(&session).await.unwrap();
    t.clock.advance(TimeDelta::seconds(90));
    kiosk.renew_claim(&session).await.unwrap();
    t.clock.set(session.ends_at);
    assert!(matches!(
        kiosk.commit_session(&session).await,
        Err(DirectoryError::ClaimLost)
    ));
}

async fn a_released_session_gives_the_pass_back_at_once(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    let first = t.directory.redeem("ada@example.com", &code).await.unwrap();
    t.directory.release_session(&first).await.unwrap();
    let second = t.directory.redeem("ada@example.com", &code).await.unwrap();
    // The first session's lease lapsed into another claim: it cannot commit.
    assert!(matches!(
        t.directory.commit_session(&first).await,
        Err(DirectoryError::ClaimLost)
    ));
    t.directory.commit_session(&second).await.unwrap();
}

async fn a_revoked_pass_cannot_be_committed(t: TestDirectory) {
    let code = one_time_pass(&t).await;
    let session = t.directory.redeem("ada@example.com", &code).await.unwrap();
    t.directory.revoke_pass(&session.email).await.unwrap();
    assert!(matches!(
        t.directory.commit_session(&session).await,
        Err(DirectoryError::ClaimLost)
    ));
    assert!(matches!(
        t.directory.renew_claim(&session).await,
        Err(DirectoryError::ClaimLost)
    ));
}

async fn a_session_cannot_commit_once_its_pass_or_holder_stops_working(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let multi = IssueRequest {
        one_time: Some(false),
        ..IssueRequest::new(ada.clone())
    };
    let code = t.directory.issue_pass(&multi).await.unwrap().code;
    let session = t
        .directory
        .redeem("ada@example.com", code.expose())
        .await
        .unwrap();
    t.directory.set_user_enabled(&ada, false).await.unwrap();
    assert!(matches!(
        t.directory.commit_session(&session).await,
        Err(DirectoryError::ClaimLost)
    ));
    t.directory.set_user_enabled(&ada, true).await.unwrap();
    t.directory.commit_session(&session).await.unwrap();
    t.directory.revoke_pass(&ada).await.unwrap();
    assert!(matches!(
        t.directory.commit_session(&session).await,
        Err(DirectoryError::ClaimLost)
    ));

    let one_time = IssueRequest {
        one_time: Some(true),
        ..IssueRequest::new(ada.clone())
    };
    let code = t.directory.issue_pass(&one_time).await.unwrap().code;
    let session = t
        .directory
        .redeem("ada@example.com", code.expose())
        .await
        .unwrap();
    t.clock.advance(TimeDelta::minutes(10));
    t.directory.renew_claim(&session).await.unwrap();
    // The pass (1 hour) ends while the claim is still leased.
    t.clock.advance(TimeDelta::minutes(51));
    assert!(matches!(
        t.directory.commit_session(&session).await,
        Err(DirectoryError::ClaimLost)
    ));
}

async fn revoking_or_disabling_ends_any_session_within_seconds(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let multi_use = |replace| IssueRequest {
        one_time: Some(false),
        replace,
        ..IssueRequest::new(ada.clone())
    };
    for (what, replace) in [("revoke", false), ("disable", true)] {
        let code = t
            .directory
            .issue_pass(&multi_use(replace))
            .await
            .unwrap()
            .code;
        let mut kiosk = in_a_long_session(&t, code.expose()).await;
        t.clock.advance(SESSION_CHECK);
        kiosk.tick().await.unwrap();
        assert!(
            matches!(kiosk.screen().step, StepView::Choose { .. }),
            "{what}"
        );
        match what {
            "revoke" => t.directory.revoke_pass(&ada).await.map(drop).unwrap(),
            _ => t
                .directory
                .set_user_enabled(&ada, false)
                .await
                .map(drop)
                .unwrap(),
        }
        t.clock.advance(SESSION_CHECK);
        let ended = kiosk.tick().await.unwrap();
        assert!(
            matches!(ended.step, StepView::Welcome { .. }),
            "{what}: {ended:?}"
        );
        assert_eq!(ended.notice, Some(Notice::SessionEnded), "{what}");
    }
}
