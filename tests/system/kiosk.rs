//! The kiosk flow, command by command, on both backends.

use crate::add;
use chrono::TimeDelta;
use tapkiosk_core::directory::IssueRequest;
use tapkiosk_core::kiosk::{Kiosk, KioskError, KioskSettings, Language, Notice, Screen, StepView};
use tapkiosk_core::redeem::RedeemError;
use tapkiosk_core::totp::TotpSecret;
use tapkiosk_tests::{TestDirectory, on_both_backends};

on_both_backends!(
    a_new_hire_enrols_an_authenticator_app_and_proves_it,
    a_wrong_code_keeps_the_same_qr_code,
    refused_passes_stay_on_the_pass_step_with_a_notice,
    an_idle_kiosk_resets_and_gives_the_pass_back,
    done_resets_by_itself,
    the_session_ends_with_its_time,
    security_info_removes_a_lost_method_and_adds_another,
    commands_off_their_step_are_refused,
    back_goes_where_it_makes_sense,
    a_directory_failure_after_the_pass_gives_it_back,
);

pub(crate) fn kiosk(t: &TestDirectory) -> Kiosk {
    let settings = KioskSettings {
        organisation: "Example Ltd".into(),
        languages: vec![Language::En, Language::Fr],
        idle_timeout: TimeDelta::seconds(120),
        relying_party: None,
        keys: tapkiosk_core::fido::ceremony::KeySource::Nowhere,
        tenant: None,
    };
    Kiosk::new(t.directory.clone(), settings)
}

pub(crate) async fn pass_for(t: &TestDirectory, email: &str, one_time: bool) -> String {
    let email = add(t, email).await;
    let request = IssueRequest {
        one_time: Some(one_time),
        ..IssueRequest::new(email)
    };
    t.directory
        .issue_pass(&request)
        .await
        .unwrap()
        .code
        .grouped()
}

async fn a_directory_failure_after_the_pass_gives_it_back(t: TestDirectory) {
    let pass = pass_for(&t, "ada@example.com", true).await;
    let mut kiosk = kiosk(&t);
    kiosk.start(Language::En).await.unwrap();
    kiosk.submit_email("ada@example.com").await.unwrap();
    // The pass is right, but the person's methods cannot be read.
    crate::hide_methods(&t, true).await;
    assert!(kiosk.submit_pass(&pass).await.is_err());
    crate::hide_methods(&t, false).await;
    // Typed again at once, the one-time pass works: no claim holds it
    // for the lease.
    let screen = kiosk.submit_pass(&pass).await.unwrap();
    assert!(matches!(screen.step, StepView::Choose { .. }), "{screen:?}");
}

/// Signs in up to Choose.
async fn signed_in(t: &TestDirectory, kiosk: &mut Kiosk, pass: &str) -> Screen {
    kiosk.start(Language::En).await.unwrap();
    kiosk.submit_email("Ada@Example.com").await.unwrap();
    let screen = kiosk.submit_pass(pass).await.unwrap();
    assert!(matches!(screen.step, StepView::Choose { .. }), "{screen:?}");
    assert_eq!(
        screen.session_ends_at,
        Some(t.clock.now_plus(TimeDelta::minutes(15)))
    );
    screen
}

pub(crate) fn secret_of(screen: &Screen) -> TotpSecret {
    let StepView::AuthenticatorSetup { secret, .. } = &screen.step else {
        panic!("not on setup: {screen:?}")
    };
    TotpSecret::from_base32(secret.reveal()).unwrap()
}

pub(crate) fn code(t: &TestDirectory, secret: &TotpSecret) -> String {
    secret
        .code_at(t.clock.now_plus(TimeDelta::zero()).timestamp())
        .unwrap()
}

async fn a_new_hire_enrols_an_authenticator_app_and_proves_it(t: TestDirectory) {
    let pass = pass_for(&t, "ada@example.com", true).await;
    let mut kiosk = kiosk(&t);
    let welcome = kiosk.screen();
    let languages = vec![Language::En, Language::Fr];
    assert_eq!(
        welcome.step,
        StepView::Welcome {
            organisation: "Example Ltd".into(),
            languages,
            security_keys: false,
        }
    );
    assert_eq!(
        kiosk.start(Language::Fr).await.unwrap().language,
        Language::Fr
    );
    kiosk.submit_email("ada@example.com").await.unwrap();
    let choose = kiosk.submit_pass(&pass.to_lowercase()).await.unwrap();
    assert_eq!(choose.progress, Some((3, 5)));

    let setup = kiosk.add_authenticator().await.unwrap();
    let StepView::AuthenticatorSetup {
        qr_svg,
        issuer,
        account,
        ..
    } = &setup.step
    else {
        panic!()
    };
    assert!(qr_svg.reveal().contains("<svg"));
    assert_eq!(
        (issuer.as_str(), account.as_str()),
        ("Example Ltd", "ada@example.com")
    );
    let secret = secret_of(&setup);
    // A screen printed (a log line, a failed test) does not carry it.
    let printed = format!("{setup:?}");
    assert!(!printed.contains(secret.base32().as_str()) && !printed.contains("<svg"));
    assert!(!printed.contains(&secret.grouped()[..9]));

    let test = kiosk
        .confirm_authenticator(&code(&t, &secret))
        .await
        .unwrap();
    assert_eq!(test.step, StepView::AuthenticatorTest);
    // The pass is used up by the first change.
    assert!(matches!(
        t.directory.redeem("ada@example.com", &pass).await,
        Err(RedeemError::Used)
    ));

    // The same code again is refused: the test sign-in needs a fresh one.
    let again = kiosk.test_authenticator(&code(&t, &secret)).await.unwrap();
    assert_eq!(again.notice, Some(Notice::ReusedCode));
    t.clock.advance(TimeDelta::seconds(30));
    let done = kiosk.test_authenticator(&code(&t, &secret)).await.unwrap();
    let StepView::Done { methods, .. } = &done.step else {
        panic!("{done:?}")
    };
    assert_eq!(methods.len(), 1);
    assert_eq!(methods[0].label, "Application d'authentification");
    let kinds = crate::audit_kinds(&t).await;
    assert!(kinds.contains(&"method_added".to_string()));
}

async fn a_wrong_code_keeps_the_same_qr_code(t: TestDirectory) {
    let pass = pass_for(&t, "ada@example.com", true).await;
    let mut kiosk = kiosk(&t);
    signed_in(&t, &mut kiosk, &pass).await;
    let setup = kiosk.add_authenticator().await.unwrap();
    let wrong = kiosk.confirm_authenticator("000000").await.unwrap();
    assert_eq!(wrong.notice, Some(Notice::WrongCode));
    assert_eq!(
        wrong.step, setup.step,
        "a wrong code must not change the QR code"
    );
    // Nothing was written, so the pass is still only claimed.
    assert!(
        t.directory
            .methods(&user_id(&t).await)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn user_id(t: &TestDirectory) -> String {
    let email = tapkiosk_core::Email::parse("ada@example.com").unwrap();
    let detail = t.directory.show_user(&email).await.unwrap();
    detail.passes[0].0.user_id.clone()
}

async fn refused_passes_stay_on_the_pass_step_with_a_notice(t: TestDirectory) {
    let ada = add(&t, "ada@example.com").await;
    let later = t.clock.now_plus(TimeDelta::days(2));
    let request = IssueRequest {
        start: Some(later),
        ..IssueRequest::new(ada)
    };
    let pass = t
        .directory
        .issue_pass(&request)
        .await
        .unwrap()
        .code
        .grouped();
    let mut kiosk = kiosk(&t);
    kiosk.start(Language::En).await.unwrap();
    let bad_email = kiosk.submit_email("ada at example").await.unwrap();
    assert_eq!(bad_email.notice, Some(Notice::InvalidEmail));
    assert_eq!(
        bad_email.step,
        StepView::Email {
            email: "ada at example".into()
        }
    );
    kiosk.submit_email("ada@example.com").await.unwrap();

    let early = kiosk.submit_pass(&pass).await.unwrap();
    assert_eq!(early.notice, Some(Notice::NotYetValid { starts: later }));
    assert!(matches!(early.step, StepView::Pass { .. }));
    for _ in 0..4 {
        assert_eq!(
            kiosk.submit_pass("WRONG-PASS-0000").await.unwrap().notice,
            Some(Notice::InvalidCredentials)
        );
    }
    let locked = kiosk.submit_pass("WRONG-PASS-0000").await.unwrap();
    assert_eq!(
        locked.notice,
        Some(Notice::LockedOut {
            until: t.clock.now_plus(TimeDelta::minutes(5))
        })
    );

    t.clock.set(later + TimeDelta::hours(2));
    assert_eq!(kiosk.tick().await.unwrap().notice, Some(Notice::IdleReset));
    kiosk.start(Language::En).await.unwrap();
    kiosk.submit_email("ada@example.com").await.unwrap();
    assert_eq!(
        kiosk.submit_pass(&pass).await.unwrap().notice,
        Some(Notice::Expired)
    );
}

async fn an_idle_kiosk_resets_and_gives_the_pass_back(t: TestDirectory) {
    let pass = pass_for(&t, "ada@example.com", true).await;
    let mut kiosk = kiosk(&t);
    signed_in(&t, &mut kiosk, &pass).await;
    let setup = kiosk.add_authenticator().await.unwrap();
    assert_eq!(
        setup.resets_at,
        Some(t.clock.now_plus(TimeDelta::seconds(120)))
    );
    t.clock.advance(TimeDelta::seconds(119));
    assert!(matches!(
        kiosk.tick().await.unwrap().step,
        StepView::AuthenticatorSetup { .. }
    ));
    t.clock.advance(TimeDelta::seconds(1));
    let reset = kiosk.tick().await.unwrap();
    assert!(matches!(reset.step, StepView::Welcome { .. }));
    assert_eq!(reset.notice, Some(Notice::IdleReset));
    assert_eq!(reset.session_ends_at, None);
    // The claim was released at once: the person can start again.
    let mut again = self::kiosk(&t);
    signed_in(&t, &mut again, &pass).await;
}

async fn done_resets_by_itself(t: TestDirectory) {
    let pass = pass_for(&t, "ada@example.com", false).await;
    let mut kiosk = kiosk(&t);
    signed_in(&t, &mut kiosk, &pass).await;
    let secret = secret_of(&kiosk.add_authenticator().await.unwrap());
    kiosk
        .confirm_authenticator(&code(&t, &secret))
        .await
        .unwrap();
    t.clock.advance(TimeDelta::seconds(30));
    let done = kiosk.test_authenticator(&code(&t, &secret)).await.unwrap();
    assert_eq!(
        done.resets_at,
        Some(t.clock.now_plus(TimeDelta::seconds(15)))
    );
    t.clock.advance(TimeDelta::seconds(15));
    let reset = kiosk.tick().await.unwrap();
    assert!(matches!(reset.step, StepView::Welcome { .. }));
    assert_eq!(reset.notice, None);
}

async fn the_session_ends_with_its_time(t: TestDirectory) {
    let pass = pass_for(&t, "ada@example.com", false).await;
    let mut kiosk = kiosk(&t);
    signed_in(&t, &mut kiosk, &pass).await;
    for _ in 0..14 {
        t.clock.advance(TimeDelta::minutes(1));
        kiosk.open_security_info().await.unwrap();
        kiosk.back().await.unwrap();
    }
    t.clock.advance(TimeDelta::minutes(1));
    let ended = kiosk.tick().await.unwrap();
    assert_eq!(ended.notice, Some(Notice::SessionEnded));
    assert!(matches!(ended.step, StepView::Welcome { .. }));
}

async fn security_info_removes_a_lost_method_and_adds_another(t: TestDirectory) {
    let pass = pass_for(&t, "ada@example.com", false).await;
    let mut kiosk = kiosk(&t);
    signed_in(&t, &mut kiosk, &pass).await;
    let secret = secret_of(&kiosk.add_authenticator().await.unwrap());
    kiosk
        .confirm_authenticator(&code(&t, &secret))
        .await
        .unwrap();
    kiosk.reset().await.unwrap();

    // Later, the phone is lost.
    t.clock.advance(TimeDelta::minutes(5));
    let choose = signed_in(&t, &mut kiosk, &pass).await;
    let StepView::Choose { methods, .. } = &choose.step else {
        panic!()
    };
    assert_eq!(methods.len(), 1);
    let info = kiosk.open_security_info().await.unwrap();
    let StepView::SecurityInfo { methods, .. } = &info.step else {
        panic!()
    };
    let removed = kiosk.remove_method(&methods[0].id).await.unwrap();
    assert_eq!(removed.notice, Some(Notice::MethodRemoved));
    assert_eq!(
        removed.step,
        StepView::SecurityInfo {
            methods: vec![],
            security_keys: false
        }
    );
    let setup = kiosk.add_authenticator().await.unwrap();
    let secret = secret_of(&setup);
    kiosk
        .confirm_authenticator(&code(&t, &secret))
        .await
        .unwrap();
    let kinds = crate::audit_kinds(&t).await;
    assert_eq!(kinds.iter().filter(|k| *k == "method_removed").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "method_added").count(), 2);
}

async fn commands_off_their_step_are_refused(t: TestDirectory) {
    let mut kiosk = kiosk(&t);
    assert!(matches!(
        kiosk.submit_pass("ABCD-EFGH-JKMN").await,
        Err(KioskError::WrongStep { .. })
    ));
    assert!(matches!(
        kiosk.add_authenticator().await,
        Err(KioskError::WrongStep { .. })
    ));
    assert!(matches!(
        kiosk.back().await,
        Err(KioskError::WrongStep { .. })
    ));
    kiosk.start(Language::En).await.unwrap();
    assert!(matches!(
        kiosk.start(Language::En).await,
        Err(KioskError::WrongStep { .. })
    ));
    assert!(matches!(
        kiosk.remove_method("x").await,
        Err(KioskError::WrongStep { .. })
    ));
}

async fn back_goes_where_it_makes_sense(t: TestDirectory) {
    let pass = pass_for(&t, "ada@example.com", true).await;
    let mut kiosk = kiosk(&t);
    kiosk.start(Language::En).await.unwrap();
    kiosk.submit_email("ada@example.com").await.unwrap();
    assert_eq!(
        kiosk.back().await.unwrap().step,
        StepView::Email {
            email: "ada@example.com".into()
        }
    );
    assert!(matches!(
        kiosk.back().await.unwrap().step,
        StepView::Welcome { .. }
    ));
    signed_in(&t, &mut kiosk, &pass).await;
    assert!(
        matches!(kiosk.back().await, Err(KioskError::WrongStep { .. })),
        "no way back past sign-in"
    );
    kiosk.add_authenticator().await.unwrap();
    assert!(matches!(
        kiosk.back().await.unwrap().step,
        StepView::Choose { .. }
    ));
}
