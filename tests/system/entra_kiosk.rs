//! The kiosk flow on an Entra tenant (the fake, to Microsoft's contract):
//! the email, the tenant's own sign-in page with its pass, then a key
//! registered into the tenant with the screens of a local key.

use crate::entra_sign_in::{issue_pass, type_pass_on_the_page};
use crate::security_keys::{key_phase, wait_until};
use std::sync::Arc;
use tapkiosk_core::fido::Url;
use tapkiosk_core::fido::ceremony::{KeySource, Phase};
use tapkiosk_core::fido::soft::SoftCtapToken;
use tapkiosk_core::kiosk::{CANCEL_QUERY, Kiosk, KioskSettings, Language, Notice, StepView};
use tapkiosk_core::{Clock as _, SystemClock};
use tapkiosk_entra::{EntraTenant, Graph};
use tapkiosk_fake_entra::FakeEntra;
use tapkiosk_tests::TestDirectory;

const ADA: &str = "ada@contoso.onmicrosoft.com";
const ADA_ID: &str = "071cc716-8147-4397-a5ba-b2105951cc0b";
const GRACE_ID: &str = "b2f1a9c3-0000-4000-8000-000000000001";
const PIN: &str = "2468";

/// A kiosk on the fake tenant with a software key, the directory's clock
/// set to the wall clock the fake reads.
fn kiosk_on_tenant(t: &TestDirectory) -> (FakeEntra, Arc<Graph>, Kiosk) {
    t.clock.set(SystemClock.now());
    let (fake, graph) = crate::fake_tenant_at(Arc::new(t.clock.clone()));
    let graph = Arc::new(graph);
    let (key, _) = SoftCtapToken::generate().unwrap();
    let settings = KioskSettings {
        organisation: "Contoso".into(),
        languages: vec![Language::En, Language::Fr],
        idle_timeout: chrono::TimeDelta::seconds(120),
        relying_party: None,
        keys: KeySource::Soft(Arc::new(key)),
        tenant: Some(Arc::new(EntraTenant::new(graph.clone()))),
    };
    (fake, graph, Kiosk::new(t.directory.clone(), settings))
}

/// Ada types her email and, on the tenant's page, her pass: the address
/// the page sends the window to.
async fn sign_in_on_the_page(kiosk: &mut Kiosk, pass: &str) -> Url {
    sign_in_as(kiosk, ADA, pass).await
}

/// As [`sign_in_on_the_page`], for `email`.
async fn sign_in_as(kiosk: &mut Kiosk, email: &str, pass: &str) -> Url {
    let page = kiosk.submit_email(email).await.unwrap();
    assert_eq!(
        page.step,
        StepView::TenantSignIn {
            email: email.into()
        }
    );
    let url = kiosk.sign_in_page().unwrap().clone();
    type_pass_on_the_page(&url, pass).await.unwrap()
}

/// Gives the key its PIN (setting it first) until it answers.
async fn answer_with_the_key(kiosk: &mut Kiosk) -> StepView {
    loop {
        let screen = wait_until(kiosk, |s| {
            matches!(key_phase(s), Some(Phase::SetPin | Phase::EnterPin { .. }))
                || matches!(s, StepView::KeyName { .. })
        })
        .await;
        match key_phase(&screen.step) {
            Some(Phase::SetPin) => kiosk.key_pin(PIN, Some(PIN)).await.unwrap(),
            Some(_) => kiosk.key_pin(PIN, None).await.unwrap(),
            None => return screen.step,
        };
    }
}

async fn a_new_hire_signs_in_with_an_entra_pass_and_registers_a_key_into_entra(t: TestDirectory) {
    let (fake, graph, mut kiosk) = kiosk_on_tenant(&t);
    let StepView::Welcome { security_keys, .. } = kiosk.screen().step else {
        panic!("not on Welcome");
    };
    assert!(security_keys, "Test my key checks the tenant's passkeys");
    kiosk.start(Language::Fr).await.unwrap();

    // An email the tenant does not know is said on Email.
    let unknown = kiosk
        .submit_email("nobody@contoso.onmicrosoft.com")
        .await
        .unwrap();
    assert_eq!(unknown.notice, Some(Notice::AccountNotFound));
    assert!(kiosk.sign_in_page().is_none());

    // Cancel on the tenant's page comes back to Email, the email kept.
    let pass = issue_pass(&graph, ADA, true).await;
    kiosk.submit_email(ADA).await.unwrap();
    let page = kiosk.sign_in_page().unwrap().clone();
    let asked: std::collections::BTreeMap<_, _> = page.query_pairs().into_owned().collect();
    assert_eq!(asked["login_hint"], ADA);
    let mut cancel = Url::parse(tapkiosk_core::config::ENTRA_REDIRECT_URI).unwrap();
    cancel.set_query(Some(CANCEL_QUERY));
    let cancelled = kiosk.finish_sign_in(&cancel).await.unwrap();
    assert_eq!(cancelled.step, StepView::Email { email: ADA.into() });
    assert_eq!(cancelled.language, Language::Fr);

    // The pass on the page, then the key with the usual screens.
    let back = sign_in_on_the_page(&mut kiosk, &pass).await;
    let choose = kiosk.finish_sign_in(&back).await.unwrap();
    let StepView::TenantChoose { name, methods } = choose.step else {
        panic!("{choose:?}");
    };
    assert_eq!(name, "Ada Lovelace");
    let kinds: Vec<_> = methods.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["password"], "the one-time pass is used up");
    let setup = kiosk.add_security_key().await.unwrap();
    assert!(matches!(setup.step, StepView::KeySetup { .. }), "{setup:?}");
    assert_eq!(setup.progress, Some((4, 5)));
    let named = answer_with_the_key(&mut kiosk).await;
    assert_eq!(
        named,
        StepView::KeyName {
            suggested: "Software key (test)".into()
        }
    );
    let empty = kiosk.name_key(" ").await.unwrap();
    assert_eq!(empty.notice, Some(Notice::KeyNameRules { max: 64 }));
    let done = kiosk.name_key("Clé d'Ada").await.unwrap();
    assert_eq!(
        done.step,
        StepView::TenantKeyRegistered {
            name: "Ada Lovelace".into(),
            key_name: "Clé d'Ada".into(),
            model: Some("Software key (test)".into()),
        }
    );

    // The tenant has the key; the local log says who registered it.
    let keys = graph
        .get("/users/ada@contoso.onmicrosoft.com/authentication/fido2Methods")
        .await
        .unwrap();
    let names: Vec<_> = keys["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["displayName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Clé d'Ada"]);
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let registered = log
        .iter()
        .find(|r| r.kind == "entra_key_registered")
        .unwrap();
    assert_eq!(registered.detail["entra_user"], ADA);
    let request_id = registered.detail["request_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
    crate::crosscheck_registrations(&fake);
    t.clock.advance(tapkiosk_core::kiosk::DONE_RESET);
    let reset = kiosk.tick().await.unwrap();
    assert!(matches!(reset.step, StepView::Welcome { .. }));
}

async fn an_answer_after_entras_deadline_is_asked_for_again(t: TestDirectory) {
    let (fake, graph, mut kiosk) = kiosk_on_tenant(&t);
    let pass = issue_pass(&graph, ADA, false).await;
    kiosk.start(Language::En).await.unwrap();
    let back = sign_in_on_the_page(&mut kiosk, &pass).await;
    kiosk.finish_sign_in(&back).await.unwrap();
    kiosk.add_security_key().await.unwrap();
    answer_with_the_key(&mut kiosk).await;
    // Entra's challenge lasts 5 minutes.
    t.clock.advance(chrono::TimeDelta::minutes(6));
    fake.change(|tenant| tenant.clock_ahead = 6 * 60);
    let late = kiosk.name_key("Ada's key").await.unwrap();
    assert_eq!(late.notice, Some(Notice::KeyTooLate));
    assert!(matches!(late.step, StepView::KeySetup { .. }));
    answer_with_the_key(&mut kiosk).await;
    let done = kiosk.name_key("Ada's key").await.unwrap();
    assert!(
        matches!(done.step, StepView::TenantKeyRegistered { .. }),
        "{done:?}"
    );
}

async fn a_sign_in_that_fails_its_checks_starts_over_at_email(t: TestDirectory) {
    let (fake, graph, mut kiosk) = kiosk_on_tenant(&t);
    let pass = issue_pass(&graph, ADA, false).await;
    kiosk.start(Language::En).await.unwrap();

    // A forged answer (not this sign-in's state).
    kiosk.submit_email(ADA).await.unwrap();
    let mut forged = Url::parse(tapkiosk_core::config::ENTRA_REDIRECT_URI).unwrap();
    forged.set_query(Some("code=stolen&state=guessed"));
    let refused = kiosk.finish_sign_in(&forged).await.unwrap();
    assert_eq!(refused.notice, Some(Notice::SignInRefused));
    assert_eq!(refused.step, StepView::Email { email: ADA.into() });

    // A token for someone else than the email typed.
    fake.change(|tenant| {
        let mut claims = serde_json::Map::new();
        claims.insert("oid".into(), GRACE_ID.into());
        tenant.id_token_tampering = (claims, false);
    });
    let back = sign_in_on_the_page(&mut kiosk, &pass).await;
    let other = kiosk.finish_sign_in(&back).await.unwrap();
    assert_eq!(other.notice, Some(Notice::SignInRefused));
    assert!(kiosk.sign_in_page().is_none());

    // A tenant that cannot be reached is said as such.
    drop(fake);
    let away = kiosk.submit_email(ADA).await.unwrap();
    assert_eq!(away.notice, Some(Notice::TenantUnavailable));
}

async fn a_person_removes_a_lost_key_and_adds_another(t: TestDirectory) {
    let (fake, graph, mut kiosk) = kiosk_on_tenant(&t);
    let lost = crate::entra::ask_key(&graph, &crate::entra::soft_key())
        .await
        .unwrap();
    let lost = tapkiosk_entra::keys::register_key(&graph, ADA, "Lost key", &lost)
        .await
        .unwrap();
    fake.change(|tenant| {
        let authenticator = serde_json::json!({
            "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "id": "6e7f8a90-0000-4000-8000-00000000a0a0",
            "displayName": "Ada's phone",
            "createdDateTime": "2026-01-05T09:00:00Z",
        });
        tenant
            .other_methods
            .insert(ADA_ID.into(), vec![authenticator]);
    });
    let pass = issue_pass(&graph, ADA, true).await;
    kiosk.start(Language::En).await.unwrap();
    let back = sign_in_on_the_page(&mut kiosk, &pass).await;
    kiosk.finish_sign_in(&back).await.unwrap();
    let info = kiosk.open_security_info().await.unwrap();
    let StepView::TenantSecurityInfo { methods } = info.step else {
        panic!("{info:?}");
    };
    let listed: Vec<_> = methods
        .iter()
        .map(|m| (m.kind.as_str(), m.name.as_deref()))
        .collect();
    assert_eq!(
        listed,
        [
            ("password", None),
            ("security_key", Some("Lost key")),
            ("authenticator", Some("Ada's phone")),
        ]
    );
    // Only keys are the kiosk's to remove.
    assert!(kiosk.remove_method(&methods[0].id).await.is_err());
    let removed = kiosk.remove_method(&lost.id).await.unwrap();
    assert_eq!(removed.notice, Some(Notice::MethodRemoved));
    let StepView::TenantSecurityInfo { methods } = removed.step else {
        panic!("{removed:?}");
    };
    assert!(methods.iter().all(|m| m.kind != "security_key"));
    assert!(
        tapkiosk_entra::keys::list(&graph, ADA)
            .await
            .unwrap()
            .is_empty()
    );
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let event = log.iter().find(|r| r.kind == "entra_key_removed").unwrap();
    assert_eq!(event.detail["method"], lost.id.as_str());
    assert!(event.detail["request_id"].is_string());

    // Back to Choose, then a new key.
    let choose = kiosk.back().await.unwrap();
    assert!(matches!(choose.step, StepView::TenantChoose { .. }));
    kiosk.open_security_info().await.unwrap();
    kiosk.add_security_key().await.unwrap();
    answer_with_the_key(&mut kiosk).await;
    let done = kiosk.name_key("New key").await.unwrap();
    assert!(matches!(done.step, StepView::TenantKeyRegistered { .. }));
}

async fn an_email_that_is_not_the_user_name_finds_the_account_by_its_mail(t: TestDirectory) {
    let (fake, graph, mut kiosk) = kiosk_on_tenant(&t);
    tapkiosk_tests::entra::add_mary(&fake);
    let pass = issue_pass(&graph, "m.obrien@contoso.onmicrosoft.com", true).await;
    kiosk.start(Language::En).await.unwrap();
    kiosk
        .submit_email("Mary.O'Brien@contoso.com")
        .await
        .unwrap();
    let page = kiosk.sign_in_page().unwrap().clone();
    let asked: std::collections::BTreeMap<_, _> = page.query_pairs().into_owned().collect();
    assert_eq!(asked["login_hint"], "m.obrien@contoso.onmicrosoft.com");
    let back = type_pass_on_the_page(&page, &pass).await.unwrap();
    let choose = kiosk.finish_sign_in(&back).await.unwrap();
    let StepView::TenantChoose { name, .. } = choose.step else {
        panic!("{choose:?}");
    };
    assert_eq!(name, "Mary O'Brien");
}

async fn the_tenants_security_info_page_opens_signed_in_and_its_changes_are_listed_on_return(
    t: TestDirectory,
) {
    let (fake, graph, mut kiosk) = kiosk_on_tenant(&t);
    let pass = issue_pass(&graph, ADA, true).await;
    kiosk.start(Language::En).await.unwrap();
    // Not before the person has signed in.
    assert!(kiosk.open_tenant_security_page().await.is_err());
    let back = sign_in_on_the_page(&mut kiosk, &pass).await;
    kiosk.finish_sign_in(&back).await.unwrap();
    kiosk.open_security_info().await.unwrap();
    assert!(kiosk.security_info_page().is_none());
    let away = kiosk.open_tenant_security_page().await.unwrap();
    assert_eq!(away.step, StepView::TenantSecurityPage);
    assert!(!away.can_go_back, "the way back is the page's own bar");
    let page = kiosk.security_info_page().unwrap();
    assert_eq!(page.as_str(), format!("{}/security-info", fake.url));
    assert!(kiosk.sign_in_page().is_none());

    // The kiosk sees no touch there: it waits longer than its idle time
    // before it resets, but not for ever.
    t.clock.advance(chrono::TimeDelta::minutes(9));
    assert_eq!(
        kiosk.tick().await.unwrap().step,
        StepView::TenantSecurityPage
    );

    // What the person added there is listed on return.
    fake.change(|tenant| {
        let authenticator = serde_json::json!({
            "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "id": "6e7f8a90-0000-4000-8000-00000000b0b0",
            "displayName": "Pixel 8",
        });
        tenant
            .other_methods
            .insert(ADA_ID.into(), vec![authenticator]);
    });
    let returned = kiosk.finish_security_info_page().await.unwrap();
    let StepView::TenantSecurityInfo { methods } = returned.step else {
        panic!("{returned:?}");
    };
    let kinds: Vec<_> = methods.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["password", "authenticator"]);
    assert!(kiosk.finish_security_info_page().await.is_err());

    // Left there past the allowance, the kiosk starts over.
    kiosk.open_tenant_security_page().await.unwrap();
    t.clock
        .advance(tapkiosk_core::kiosk::SECURITY_PAGE_IDLE + chrono::TimeDelta::seconds(1));
    let reset = kiosk.tick().await.unwrap();
    assert!(matches!(reset.step, StepView::Welcome { .. }), "{reset:?}");
    assert_eq!(reset.notice, Some(Notice::IdleReset));
    assert!(kiosk.security_info_page().is_none());
}

/// Runs "Test my key" for `email` until the key answers (or fails).
async fn test_my_key(kiosk: &mut Kiosk, email: &str) -> tapkiosk_core::kiosk::Screen {
    kiosk.start_key_check(Language::En).await.unwrap();
    let asked = kiosk.check_key_email(email).await.unwrap();
    assert!(matches!(asked.step, StepView::KeyCheck { .. }), "{asked:?}");
    loop {
        let screen = wait_until(kiosk, |s| {
            !matches!(
                key_phase(s),
                Some(Phase::Searching | Phase::Touch | Phase::Checking | Phase::Answered)
            )
        })
        .await;
        match key_phase(&screen.step) {
            Some(Phase::SetPin) => kiosk.key_pin(PIN, Some(PIN)).await.unwrap(),
            Some(Phase::EnterPin { .. }) => kiosk.key_pin(PIN, None).await.unwrap(),
            _ => return screen,
        };
    }
}

async fn test_my_key_finds_the_persons_passkey_for_the_tenant_on_the_key(t: TestDirectory) {
    let (_fake, graph, mut kiosk) = kiosk_on_tenant(&t);
    // A key with no passkey for the tenant says so.
    let fresh = test_my_key(&mut kiosk, ADA).await;
    assert_eq!(
        key_phase(&fresh.step),
        Some(Phase::NotRegistered),
        "{fresh:?}"
    );
    kiosk.reset().await.unwrap();

    // Ada registers the key at the kiosk, as a new hire would.
    let pass = issue_pass(&graph, ADA, true).await;
    kiosk.start(Language::En).await.unwrap();
    let back = sign_in_on_the_page(&mut kiosk, &pass).await;
    kiosk.finish_sign_in(&back).await.unwrap();
    kiosk.add_security_key().await.unwrap();
    answer_with_the_key(&mut kiosk).await;
    kiosk.name_key("Ada's key").await.unwrap();
    kiosk.reset().await.unwrap();

    // The key keeps that passkey (the kiosk asked for one the key keeps,
    // as Entra's options do), and it names Ada's account.
    let passed = test_my_key(&mut kiosk, ADA).await;
    assert_eq!(
        passed.step,
        StepView::TenantKeyCheckPassed { email: ADA.into() }
    );
    kiosk.reset().await.unwrap();

    // Another person's email, or one that names nobody: not theirs.
    for other in [
        "grace@contoso.onmicrosoft.com",
        "nobody@contoso.onmicrosoft.com",
    ] {
        let refused = test_my_key(&mut kiosk, other).await;
        assert_eq!(refused.notice, Some(Notice::KeyNotForAccount), "{other}");
        assert_eq!(
            refused.step,
            StepView::KeyCheckEmail {
                email: other.into()
            }
        );
        kiosk.reset().await.unwrap();
    }

    // Grace registers the same key too: it keeps a passkey per account,
    // Grace's the newest, and each of them finds their own on it.
    let grace = "grace@contoso.onmicrosoft.com";
    let pass = issue_pass(&graph, grace, true).await;
    kiosk.start(Language::En).await.unwrap();
    let back = sign_in_as(&mut kiosk, grace, &pass).await;
    kiosk.finish_sign_in(&back).await.unwrap();
    kiosk.add_security_key().await.unwrap();
    answer_with_the_key(&mut kiosk).await;
    kiosk.name_key("Grace's key").await.unwrap();
    kiosk.reset().await.unwrap();
    for email in [ADA, grace] {
        let passed = test_my_key(&mut kiosk, email).await;
        assert_eq!(
            passed.step,
            StepView::TenantKeyCheckPassed {
                email: email.into()
            },
            "{email}"
        );
        kiosk.reset().await.unwrap();
    }
}

tapkiosk_tests::on_both_backends!(
    test_my_key_finds_the_persons_passkey_for_the_tenant_on_the_key,
    the_tenants_security_info_page_opens_signed_in_and_its_changes_are_listed_on_return,
    an_email_that_is_not_the_user_name_finds_the_account_by_its_mail,
    a_person_removes_a_lost_key_and_adds_another,
    a_new_hire_signs_in_with_an_entra_pass_and_registers_a_key_into_entra,
    an_answer_after_entras_deadline_is_asked_for_again,
    a_sign_in_that_fails_its_checks_starts_over_at_email,
);
