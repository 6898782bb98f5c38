//! End-to-end tests of the real kiosk app in its real webview (WebKitGTK),
//! through tauri-driver under Xvfb. One binary with modules; each test
//! starts its own app on its own directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use chrono::TimeDelta;
use harness::{Kiosk, oathtool_code, read_qr};
use tapkiosk_core::Email;
use tapkiosk_core::directory::IssueRequest;
use tapkiosk_core::user::NewUser;
use thirtyfour::prelude::*;

/// Signs in at the kiosk up to "choose".
async fn sign_in(kiosk: &Kiosk, language: &str, email: &str, pass: &str) {
    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.wait_for_step("email").await;
    kiosk.enter("email", email).await;
    kiosk.wait_for_step("pass").await;
    kiosk.enter("pass", pass).await;
    kiosk.wait_for_step("choose").await;
}

/// The secret from the QR code's otpauth URI.
async fn secret_from_qr(kiosk: &Kiosk) -> String {
    let uri = url::Url::parse(&read_qr(kiosk).await).unwrap();
    assert_eq!(uri.scheme(), "otpauth");
    assert_eq!(uri.host_str(), Some("totp"));
    let issuer = uri
        .query_pairs()
        .find(|(k, _)| k == "issuer")
        .map(|(_, v)| v.into_owned());
    assert_eq!(issuer.as_deref(), Some("Example Ltd"));
    assert!(uri.path().contains("ada%40example.com"), "{uri}");
    uri.query_pairs()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

async fn onboarding(language: &str) {
    let mut kiosk = Kiosk::start().await;
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", true)
        .await;
    kiosk.screenshot(&format!("{language}-welcome")).await;
    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.wait_for_step("email").await;
    kiosk.screenshot(&format!("{language}-email")).await;
    kiosk.enter("email", "Ada@Example.com").await;
    kiosk.wait_for_step("pass").await;
    kiosk.screenshot(&format!("{language}-pass")).await;
    kiosk
        .enter("pass", &pass.to_lowercase().replace('-', " "))
        .await;
    kiosk.wait_for_step("choose").await;
    kiosk.screenshot(&format!("{language}-choose")).await;
    kiosk.click("#choose-authenticator").await;
    kiosk.wait_for_step("authenticator_setup").await;
    kiosk.screenshot(&format!("{language}-authenticator")).await;

    let secret = secret_from_qr(&kiosk).await;
    let shown = kiosk
        .driver
        .find(By::Id("secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        shown.replace(' ', ""),
        secret,
        "the key for typing matches the QR code"
    );
    kiosk.enter("code", "000000").await;
    kiosk.wait_for_notice("wrong_code").await;
    assert_eq!(
        secret_from_qr(&kiosk).await,
        secret,
        "a wrong code keeps the same QR code"
    );
    kiosk.screenshot(&format!("{language}-wrong-code")).await;

    kiosk
        .enter("code", &oathtool_code(&secret, kiosk.now()))
        .await;
    kiosk.wait_for_step("authenticator_test").await;
    kiosk.screenshot(&format!("{language}-test")).await;
    kiosk.advance(TimeDelta::seconds(30));
    kiosk
        .enter("code", &oathtool_code(&secret, kiosk.now()))
        .await;
    kiosk.wait_for_step("done").await;
    kiosk.screenshot(&format!("{language}-done")).await;
    let methods = kiosk.driver.find_all(By::Css(".methods li")).await.unwrap();
    assert_eq!(methods.len(), 1);
    kiosk.click("#finish").await;
    kiosk.wait_for_step("welcome").await;
    kiosk.stop().await;
}

#[tokio::test]
async fn onboarding_in_english_ends_with_a_verified_authenticator_app() {
    onboarding("en").await;
}

#[tokio::test]
async fn onboarding_in_french_ends_with_a_verified_authenticator_app() {
    onboarding("fr").await;
}

#[tokio::test]
async fn a_wrong_pass_is_refused_and_guessing_locks_out() {
    let kiosk = Kiosk::start().await;
    kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", true)
        .await;
    kiosk.click("button[data-language='en']").await;
    kiosk.enter("email", "ada@example.com").await;
    kiosk.wait_for_step("pass").await;
    for _ in 0..4 {
        kiosk.enter("pass", "WRONG-PASS-0000").await;
        let text = kiosk.wait_for_notice("invalid_credentials").await;
        assert!(text.contains("isn't right"), "{text}");
        kiosk.screenshot("en-wrong-pass").await;
        // The next attempt must produce the notice again.
        kiosk
            .driver
            .execute(
                "document.getElementById('notice').removeAttribute('data-code')",
                vec![],
            )
            .await
            .unwrap();
    }
    kiosk.enter("pass", "WRONG-PASS-0000").await;
    let text = kiosk.wait_for_notice("locked_out").await;
    assert!(text.contains("Too many tries"), "{text}");
    kiosk.screenshot("en-locked-out").await;
    kiosk.stop().await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_passes_say_so() {
    let kiosk = Kiosk::start().await;
    let ada = Email::parse("ada@example.com").unwrap();
    kiosk
        .directory
        .add_user(&NewUser::new(ada.clone(), Some("Ada"), &[]).unwrap())
        .await
        .unwrap();
    let past = kiosk.directory_at(kiosk.now() - TimeDelta::hours(3)).await;
    let expired = past
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap()
        .code
        .grouped();
    let bob = Email::parse("bob@example.com").unwrap();
    kiosk
        .directory
        .add_user(&NewUser::new(bob.clone(), Some("Bob"), &[]).unwrap())
        .await
        .unwrap();
    let monday = kiosk.now() + TimeDelta::days(5);
    let later = IssueRequest {
        start: Some(monday),
        ..IssueRequest::new(bob)
    };
    let not_yet = kiosk
        .directory
        .issue_pass(&later)
        .await
        .unwrap()
        .code
        .grouped();

    kiosk.click("button[data-language='en']").await;
    kiosk.enter("email", "ada@example.com").await;
    kiosk.enter("pass", &expired).await;
    assert!(kiosk.wait_for_notice("expired").await.contains("expired"));
    kiosk.screenshot("en-expired").await;
    kiosk.click("#back").await;
    kiosk.wait_for_step("email").await;
    kiosk.enter("email", "bob@example.com").await;
    kiosk.enter("pass", &not_yet).await;
    let text = kiosk.wait_for_notice("not_yet_valid").await;
    assert!(text.contains("starts working on"), "{text}");
    kiosk.screenshot("en-not-yet-valid").await;
    kiosk.stop().await;
}

#[tokio::test]
async fn an_idle_kiosk_resets_and_forgets_the_session() {
    let mut kiosk = Kiosk::start().await;
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", true)
        .await;
    sign_in(&kiosk, "en", "ada@example.com", &pass).await;
    kiosk.click("#choose-authenticator").await;
    kiosk.wait_for_step("authenticator_setup").await;
    kiosk.advance(TimeDelta::seconds(110));
    kiosk
        .driver
        .query(By::Id("countdown"))
        .and_displayed()
        .wait(harness::PATIENCE, std::time::Duration::from_millis(100))
        .first()
        .await
        .unwrap();
    kiosk.screenshot("en-idle-countdown").await;
    kiosk.advance(TimeDelta::seconds(10));
    kiosk.wait_for_step("welcome").await;
    kiosk.wait_for_notice("idle_reset").await;
    assert!(
        kiosk
            .driver
            .find_all(By::Id("qr"))
            .await
            .unwrap()
            .is_empty(),
        "the QR code is gone"
    );
    // The one-time pass was given back: the person can start again.
    sign_in(&kiosk, "en", "ada@example.com", &pass).await;
    kiosk.stop().await;
}

#[tokio::test]
async fn security_info_removes_a_lost_method() {
    let kiosk = Kiosk::start().await;
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", false)
        .await;
    // Ada set up an app earlier (multi-use pass: she can come back with it).
    sign_in(&kiosk, "en", "ada@example.com", &pass).await;
    kiosk.click("#choose-authenticator").await;
    kiosk.wait_for_step("authenticator_setup").await;
    let secret = secret_from_qr(&kiosk).await;
    kiosk
        .enter("code", &oathtool_code(&secret, kiosk.now()))
        .await;
    kiosk.wait_for_step("authenticator_test").await;

    // Back at the kiosk after losing her phone.
    kiosk
        .driver
        .execute(
            "window.__TAURI__.core.invoke('reset').then(() => location.reload())",
            vec![],
        )
        .await
        .unwrap();
    kiosk.wait_for_step("welcome").await;
    sign_in(&kiosk, "en", "ada@example.com", &pass).await;
    kiosk.click("#choose-security-info").await;
    kiosk.wait_for_step("security_info").await;
    assert_eq!(
        kiosk
            .driver
            .find_all(By::Css(".methods li"))
            .await
            .unwrap()
            .len(),
        1
    );
    kiosk.screenshot("en-security-info").await;
    kiosk.click("button[data-method]").await;
    kiosk.wait_for_notice("method_removed").await;
    assert!(
        kiosk
            .driver
            .find_all(By::Css(".methods li"))
            .await
            .unwrap()
            .is_empty()
    );
    kiosk.stop().await;
}

#[tokio::test]
async fn the_admin_pane_issues_a_pass_that_works_at_the_kiosk() {
    let kiosk = Kiosk::start().await;
    let ada = Email::parse("ada@example.com").unwrap();
    kiosk
        .directory
        .add_user(&NewUser::new(ada, Some("Ada Lovelace"), &[]).unwrap())
        .await
        .unwrap();
    let kiosk_window = kiosk.driver.window().await.unwrap();
    kiosk.click("#open-admin").await;
    let deadline = std::time::Instant::now() + harness::PATIENCE;
    let admin_window = loop {
        let windows = kiosk.driver.windows().await.unwrap();
        if let Some(window) = windows.into_iter().find(|w| *w != kiosk_window) {
            break window;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the admin window never opened"
        );
    };
    kiosk.driver.switch_to_window(admin_window).await.unwrap();
    kiosk.enter("pin-again", "246813").await;
    kiosk
        .driver
        .find(By::Id("pin"))
        .await
        .unwrap()
        .send_keys("246813")
        .await
        .unwrap();
    kiosk.screenshot("en-admin-pin").await;
    kiosk.click("#unlock").await;
    kiosk.click("button[data-tab='issue']").await;
    kiosk.enter("issue-email", "ada@example.com").await;
    let pass = kiosk
        .driver
        .query(By::Id("issued-pass"))
        .wait(harness::PATIENCE, std::time::Duration::from_millis(100))
        .first()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    kiosk.screenshot("en-admin-letter").await;
    assert_eq!(pass.len(), 14, "{pass}");

    kiosk.driver.switch_to_window(kiosk_window).await.unwrap();
    sign_in(&kiosk, "en", "ada@example.com", &pass).await;
    kiosk.stop().await;
}

#[tokio::test]
async fn the_kiosk_window_cannot_call_admin_commands() {
    let kiosk = Kiosk::start().await;
    let script = "const done = arguments[arguments.length - 1];\
        window.__TAURI__.core.invoke(arguments[0]).then(() => done('allowed'), (e) => done(String(e)));";
    for command in [
        "admin_status",
        "admin_users",
        "admin_issue_pass",
        "admin_set_policy",
    ] {
        let answer = kiosk
            .driver
            .execute_async(script, vec![serde_json::json!(command)])
            .await
            .unwrap();
        let text = answer.json().as_str().unwrap_or_default().to_string();
        assert_ne!(text, "allowed", "{command} was allowed in the kiosk window");
        assert!(text.contains("not allowed"), "{command}: {text}");
    }
    // The kiosk's own commands work.
    let answer = kiosk
        .driver
        .execute_async(script, vec![serde_json::json!("screen")])
        .await
        .unwrap();
    assert_eq!(answer.json().as_str(), Some("allowed"));
    kiosk.stop().await;
}
