//! End-to-end tests of the real kiosk app in its real webview (WebKitGTK),
//! through tauri-driver under Xvfb. One binary with modules; each test
//! starts its own app on its own directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crashes;
mod harness;

use chrono::TimeDelta;
use harness::{Kiosk, Screen, oathtool_code, read_qr};
use tapkiosk_core::Email;
use tapkiosk_core::directory::{AdminName, IssueRequest};
use tapkiosk_core::user::NewUser;
use thirtyfour::prelude::*;

/// Runs a test body once in English and once in French: `name::en`,
/// `name::fr`. The French run takes the French screenshots.
macro_rules! in_english_and_french {
    ($body:ident) => {
        mod $body {
            #[tokio::test]
            async fn en() {
                super::$body("en").await;
            }

            #[tokio::test]
            async fn fr() {
                super::$body("fr").await;
            }
        }
    };
}

/// Signs in at the kiosk up to "choose".
async fn sign_in(kiosk: &Kiosk, email: &str, pass: &str) {
    kiosk
        .click(&format!("button[data-language='{}']", kiosk.language))
        .await;
    kiosk.wait_for_step("email").await;
    kiosk.enter("email", email).await;
    kiosk.wait_for_step("pass").await;
    kiosk.enter("pass", pass).await;
    kiosk.wait_for_step("choose").await;
}

/// Signs Ada in and chooses the authenticator app: returns the QR code's
/// secret.
async fn to_the_qr_code(kiosk: &Kiosk, pass: &str) -> String {
    sign_in(kiosk, "ada@example.com", pass).await;
    kiosk.click("#choose-authenticator").await;
    kiosk.wait_for_step("authenticator_setup").await;
    secret_from_qr(kiosk).await
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

async fn onboarding_ends_with_a_verified_authenticator_app(language: &'static str) {
    let mut kiosk = Kiosk::start_with(language, Screen::Small).await;
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", true)
        .await;
    kiosk.screenshot("welcome").await;
    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.wait_for_step("email").await;
    kiosk.screenshot("email").await;
    kiosk.enter("email", "Ada@Example.com").await;
    kiosk.wait_for_step("pass").await;
    kiosk.screenshot("pass").await;
    kiosk
        .enter("pass", &pass.to_lowercase().replace('-', " "))
        .await;
    kiosk.wait_for_step("choose").await;
    kiosk.screenshot("choose").await;
    kiosk.click("#choose-authenticator").await;
    kiosk.wait_for_step("authenticator_setup").await;
    kiosk.screenshot("authenticator").await;

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
    kiosk.screenshot("wrong-code").await;

    let first_code = oathtool_code(&secret, kiosk.now());
    kiosk.enter("code", &first_code).await;
    kiosk.wait_for_step("authenticator_test").await;
    kiosk.screenshot("test").await;
    kiosk.advance(TimeDelta::seconds(30));
    let test_code = oathtool_code(&secret, kiosk.now());
    kiosk.enter("code", &test_code).await;
    kiosk.wait_for_step("done").await;
    kiosk.screenshot("done").await;
    let methods = kiosk.driver.find_all(By::Css(".methods li")).await.unwrap();
    assert_eq!(methods.len(), 1);
    kiosk.click("#finish").await;
    kiosk.wait_for_step("welcome").await;
    // Nothing the person typed or was shown reached the log, at debug.
    kiosk.assert_log_holds_none(&[&pass, &secret, &first_code, &test_code]);
    kiosk.stop().await;
}

in_english_and_french!(onboarding_ends_with_a_verified_authenticator_app);

/// The words of `key` in every language of the UI.
fn in_every_language(key: &str) -> Vec<String> {
    ["en", "fr"]
        .iter()
        .map(|language| {
            let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../ui/i18n/{language}.json"));
            let catalogue: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let words = key.split('.').fold(&catalogue, |node, part| &node[part]);
            words.as_str().unwrap().to_string()
        })
        .collect()
}

/// The directory's PostgreSQL is down as the kiosk starts: the kiosk says it
/// is out of service, in both languages, and opens its directory by itself
/// once it answers. It crashes again as a new hire's first code is checked:
/// out of service again, then back on the same step with the same QR code,
/// where the same person carries on. No restart of the kiosk.
async fn an_outage_puts_the_kiosk_out_of_service_until_the_directory_answers(
    language: &'static str,
) {
    let server = tapkiosk_tests::PrivatePostgres::start();
    server.create_database("directory");
    let kiosk =
        Kiosk::start_on_postgres(language, server.url("directory"), |_| server.crash()).await;
    let said = kiosk.wait_for_out_of_service().await;
    for words in in_every_language("out_of_service.body") {
        assert!(said.contains(&words), "{said}");
    }
    kiosk.wait_for_log("the kiosk is out of service until the directory answers");
    server.resume();
    kiosk.wait_for_step("welcome").await;
    kiosk.wait_for_log("the directory answers: the kiosk is in service");

    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", true)
        .await;
    let secret = to_the_qr_code(&kiosk, &pass).await;
    server.crash();
    kiosk
        .enter("code", &oathtool_code(&secret, kiosk.now()))
        .await;
    let said = kiosk.wait_for_out_of_service().await;
    assert!(
        said.starts_with(&kiosk.words("out_of_service.title")),
        "{said}"
    );
    kiosk.screenshot("out-of-service").await;
    server.resume();
    kiosk.wait_for_service().await;
    kiosk.wait_for_log("the directory answers again: the kiosk is back in service");
    kiosk.wait_for_step("authenticator_setup").await;
    assert_eq!(secret_from_qr(&kiosk).await, secret);
    kiosk
        .enter("code", &oathtool_code(&secret, kiosk.now()))
        .await;
    kiosk.wait_for_step("authenticator_test").await;
    kiosk.stop().await;
}

in_english_and_french!(an_outage_puts_the_kiosk_out_of_service_until_the_directory_answers);

in_english_and_french!(a_wrong_pass_is_refused_and_guessing_locks_out);

async fn a_wrong_pass_is_refused_and_guessing_locks_out(language: &'static str) {
    let kiosk = Kiosk::start_with(language, Screen::Small).await;
    kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", true)
        .await;
    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.enter("email", "ada@example.com").await;
    kiosk.wait_for_step("pass").await;
    for _ in 0..4 {
        kiosk.enter("pass", "WRONG-PASS-0000").await;
        let text = kiosk.wait_for_notice("invalid_credentials").await;
        kiosk.assert_says(&text, "notice.invalid_credentials");
        kiosk.screenshot("wrong-pass").await;
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
    kiosk.assert_says(&text, "notice.locked_out");
    kiosk.screenshot("locked-out").await;
    kiosk.stop().await;
}

in_english_and_french!(expired_not_yet_valid_and_disabled_passes_say_so);

async fn expired_not_yet_valid_and_disabled_passes_say_so(language: &'static str) {
    let kiosk = Kiosk::start_with(language, Screen::Small).await;
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

    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.enter("email", "ada@example.com").await;
    kiosk.enter("pass", &expired).await;
    let text = kiosk.wait_for_notice("expired").await;
    kiosk.assert_says(&text, "notice.expired");
    kiosk.screenshot("expired").await;
    kiosk.click("#back").await;
    kiosk.wait_for_step("email").await;
    kiosk.enter("email", "bob@example.com").await;
    kiosk.enter("pass", &not_yet).await;
    let text = kiosk.wait_for_notice("not_yet_valid").await;
    kiosk.assert_says(&text, "notice.not_yet_valid");
    kiosk.screenshot("not-yet-valid").await;

    // IT turns passes off: a pass that would work says so, not "wrong pass".
    let carol = kiosk
        .person_with_pass("carol@example.com", "Carol", false)
        .await;
    let mut policy = kiosk.directory.policy().await.unwrap();
    policy.enabled = false;
    kiosk.directory.set_policy(&policy).await.unwrap();
    kiosk.click("#back").await;
    kiosk.wait_for_step("email").await;
    kiosk.enter("email", "carol@example.com").await;
    kiosk.enter("pass", &carol).await;
    let text = kiosk.wait_for_notice("disabled_by_policy").await;
    kiosk.assert_says(&text, "notice.disabled_by_policy");
    kiosk.screenshot("disabled-by-policy").await;
    kiosk.stop().await;
}

in_english_and_french!(an_idle_kiosk_resets_and_forgets_the_session);

async fn an_idle_kiosk_resets_and_forgets_the_session(language: &'static str) {
    let mut kiosk = Kiosk::start_with(language, Screen::Small).await;
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", true)
        .await;
    sign_in(&kiosk, "ada@example.com", &pass).await;
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
    kiosk.screenshot("idle-countdown").await;
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
    sign_in(&kiosk, "ada@example.com", &pass).await;
    kiosk.stop().await;
}

in_english_and_french!(security_info_removes_a_lost_method);

async fn security_info_removes_a_lost_method(language: &'static str) {
    let kiosk = Kiosk::start_with(language, Screen::Small).await;
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", false)
        .await;
    // Ada set up an app earlier (multi-use pass: she can come back with it).
    let secret = to_the_qr_code(&kiosk, &pass).await;
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
    sign_in(&kiosk, "ada@example.com", &pass).await;
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
    kiosk.screenshot("security-info").await;
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

/// A kiosk whose directory has Ada (no pass yet).
async fn kiosk_knowing_ada(language: &'static str) -> Kiosk {
    let kiosk = Kiosk::start_with(language, Screen::Small).await;
    let ada = Email::parse("ada@example.com").unwrap();
    kiosk
        .directory
        .add_user(&NewUser::new(ada, Some("Ada Lovelace"), &[]).unwrap())
        .await
        .unwrap();
    add_admin(&kiosk).await;
    kiosk
}

/// Adds the admin `it` with their PIN, as `tapctl admin add` and
/// `tapctl admin set-pin` would.
async fn add_admin(kiosk: &Kiosk) {
    let admin = AdminName::parse(ADMIN).unwrap();
    kiosk.directory.add_admin(&admin).await.unwrap();
    kiosk
        .directory
        .set_admin_pin(&admin, ADMIN_PIN)
        .await
        .unwrap();
}

/// Opens the admin window and switches to it; returns the kiosk window.
async fn open_admin(kiosk: &Kiosk) -> thirtyfour::WindowHandle {
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
    kiosk_window
}

/// The admin that `kiosk_knowing_ada` adds (as `tapctl admin add` and
/// `tapctl admin set-pin` would), and their PIN.
const ADMIN: &str = "it";
const ADMIN_PIN: &str = "246813";

/// Types into the fields with these ids, in order.
async fn type_into(kiosk: &Kiosk, fields: &[(&str, &str)]) {
    for (id, text) in fields {
        let field = kiosk.wait_for(By::Id(*id)).await;
        field.send_keys(*text).await.unwrap();
    }
}

/// A kiosk that knows Ada, with the admin pane open and `it` signed in;
/// also returns the kiosk's window.
async fn unlocked_admin_pane(language: &'static str) -> (Kiosk, thirtyfour::WindowHandle) {
    let kiosk = kiosk_knowing_ada(language).await;
    let kiosk_window = unlock_admin_pane(&kiosk).await;
    (kiosk, kiosk_window)
}

/// Opens the admin pane and signs `it` in; returns the kiosk's window.
async fn unlock_admin_pane(kiosk: &Kiosk) -> thirtyfour::WindowHandle {
    let kiosk_window = open_admin(kiosk).await;
    type_into(kiosk, &[("admin-name", ADMIN), ("pin", ADMIN_PIN)]).await;
    kiosk.click("#unlock").await;
    kiosk_window
}

/// Issues a pass from the (unlocked) admin pane; returns its value.
async fn issue_in_admin_pane(kiosk: &Kiosk, email: &str) -> String {
    kiosk.click("button[data-tab='issue']").await;
    kiosk.enter("issue-email", email).await;
    let pass = kiosk.wait_for(By::Id("issued-pass")).await;
    pass.text().await.unwrap()
}

in_english_and_french!(the_admin_pane_issues_a_pass_that_works_at_the_kiosk);

async fn the_admin_pane_issues_a_pass_that_works_at_the_kiosk(language: &'static str) {
    let kiosk = kiosk_knowing_ada(language).await;
    let kiosk_window = open_admin(&kiosk).await;
    let heading = kiosk.wait_for(By::Css("h1")).await;
    assert_eq!(
        heading.text().await.unwrap(),
        kiosk.words("admin.pin_title"),
        "the admin pane speaks the first configured language"
    );
    // A new admin, added with tapctl, chooses their PIN with the code it
    // printed (typed loosely).
    let grace = AdminName::parse("grace").unwrap();
    let code = kiosk.directory.add_admin(&grace).await.unwrap().code;
    kiosk.click("#enrol-instead").await;
    let typed = code.grouped().to_lowercase();
    let fields = [
        ("admin-name", "Grace"),
        ("enrol-code", typed.as_str()),
        ("pin", "135792"),
        ("pin-again", "135729"),
    ];
    type_into(&kiosk, &fields).await;
    kiosk.click("#enrol").await;
    let said = kiosk.wait_for(By::Css("#notice.error")).await;
    assert_eq!(
        said.text().await.unwrap(),
        kiosk.words("error.admin_pins_differ")
    );
    let again = kiosk.wait_for(By::Id("pin-again")).await;
    again.clear().await.unwrap();
    again.send_keys("135792").await.unwrap();
    kiosk.screenshot("admin-enrol").await;
    kiosk.click("#enrol").await;

    // A lifetime the backend cannot read is said to be one, in IT's words;
    // one tapctl takes (1h 30m) is taken here too.
    kiosk.click("button[data-tab='policy']").await;
    kiosk.enter("policy-default", "an hour").await;
    let said = kiosk.wait_for(By::Css("#notice.error")).await;
    let rule = kiosk.words("error.bad_lifetime");
    assert_eq!(
        said.text().await.unwrap(),
        rule.replace("{value}", "an hour")
    );
    kiosk.enter("policy-default", "1h 30m").await;
    let saved = kiosk.words("admin.policy.saved");
    let saved = By::XPath(format!("//*[@id='notice' and text()='{saved}']"));
    kiosk.wait_for(saved.clone()).await;
    assert_eq!(
        kiosk
            .directory
            .policy()
            .await
            .unwrap()
            .default_lifetime
            .minutes(),
        90
    );
    kiosk.enter("policy-default", "1h").await;
    kiosk.wait_for(saved.clone()).await;

    // The policy's key allow-list: a typo is refused, a model is saved.
    kiosk.enter("policy-keys", "not-a-model").await;
    kiosk.wait_for(By::Css("#notice.error")).await;
    let yubikey = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
    kiosk.enter("policy-keys", yubikey).await;
    kiosk.wait_for(saved).await;
    kiosk.screenshot("admin-policy").await;
    let keys = kiosk.directory.policy().await.unwrap().keys;
    assert_eq!(
        keys,
        tapkiosk_core::policy::KeyRestriction::AllowList([yubikey.parse().unwrap()].into())
    );
    let pass = issue_in_admin_pane(&kiosk, "ada@example.com").await;
    kiosk.screenshot("admin-letter").await;
    assert_eq!(pass.len(), 14, "{pass}");

    // The people list and the person's details say the pass's state in words.
    kiosk.click("button[data-tab='people']").await;
    let state = kiosk.words("admin.pass_state.usable");
    let cell = format!("//td[text()='{state}']");
    kiosk.wait_for(By::XPath(&cell)).await;
    kiosk.screenshot("admin-people").await;
    kiosk.click("tbody button").await;
    kiosk.click("#revoke").await;
    let revoked = kiosk.words("admin.pass_state.revoked");
    let line = format!("//li[starts-with(text(), '{revoked}')]");
    kiosk.wait_for(By::XPath(&line)).await;
    kiosk.screenshot("admin-person").await;
    // 150 people imported since: the revocation is on the log's second page.
    let people: Vec<_> = (0..150)
        .map(|i| {
            let email = Email::parse(&format!("hire{i}@example.com")).unwrap();
            (i + 2, NewUser::new(email, None, &[]).unwrap())
        })
        .collect();
    kiosk.directory.import_users(&people).await.unwrap();
    kiosk.click("button[data-tab='audit']").await;
    kiosk.wait_for(By::Id("audit-older")).await;
    let shown = kiosk
        .driver
        .find_all(By::Css("#audit-rows tr"))
        .await
        .unwrap();
    assert_eq!(shown.len(), 100);
    kiosk.screenshot("admin-audit").await;
    kiosk.click("#audit-older").await;
    let event = kiosk.words("admin.audit.kind.pass_revoked");
    let cell = format!("//td[text()=\"{event}\"]");
    kiosk.wait_for(By::XPath(&cell)).await;
    let pass = issue_in_admin_pane(&kiosk, "ada@example.com").await;

    kiosk.driver.switch_to_window(kiosk_window).await.unwrap();
    sign_in(&kiosk, "ada@example.com", &pass).await;
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

/// What the README's security model says of the kiosk window: it never
/// leaves the app, its content security policy holds, and a second start
/// of the app ends at once. (Devtools are absent from release builds only:
/// scripts/test checks that no build enables tauri's `devtools` feature.)
#[tokio::test]
async fn the_kiosk_stays_in_the_app_under_its_policy_and_alone() {
    let kiosk = Kiosk::start().await;
    let driver = &kiosk.driver;
    let link = "window.stillHere = true; const a = document.createElement('a'); \
        a.href = 'https://example.org/'; document.body.append(a); a.click(); \
        window.open('https://example.net/');";
    driver.execute(link, vec![]).await.unwrap();
    kiosk.wait_for_log("refused to navigate to https://example.org");
    let here = driver
        .execute("return [window.stillHere, location.protocol];", vec![])
        .await
        .unwrap();
    assert_eq!(here.json(), &serde_json::json!([true, "tauri:"]));
    kiosk.wait_for_step("welcome").await;

    // The policy runs no inline script and no eval.
    let policy = "const s = document.createElement('script'); \
        s.textContent = 'window.inlineRan = true'; document.body.append(s); \
        let evalRan; try { evalRan = eval('true'); } catch (e) { evalRan = e.name; } \
        return [window.inlineRan === true, evalRan];";
    let answer = driver.execute(policy, vec![]).await.unwrap();
    assert_eq!(answer.json(), &serde_json::json!([false, "EvalError"]));

    let (status, said) = kiosk.start_again();
    assert!(!status.success(), "a second kiosk started: {said}");
    assert!(said.contains("the kiosk is already running"), "{said}");
    kiosk.wait_for_step("welcome").await;
    // window.open, long before, opened nothing.
    assert_eq!(driver.windows().await.unwrap().len(), 1);
    kiosk.stop().await;
}

in_english_and_french!(the_kiosk_fills_and_reads_well_on_a_full_hd_screen);

async fn the_kiosk_fills_and_reads_well_on_a_full_hd_screen(language: &'static str) {
    let kiosk = Kiosk::start_with(language, Screen::FullHd).await;
    let size = kiosk
        .driver
        .execute("return [innerWidth, innerHeight];", vec![])
        .await
        .unwrap();
    assert_eq!(size.json(), &serde_json::json!([1920, 1080]), "fullscreen");
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", true)
        .await;
    kiosk.screenshot("welcome").await;
    sign_in(&kiosk, "ada@example.com", &pass).await;
    kiosk.screenshot("choose").await;
    kiosk.click("#choose-authenticator").await;
    kiosk.wait_for_step("authenticator_setup").await;
    kiosk.screenshot("authenticator").await;
    kiosk.stop().await;
}

/// Waits for the key step's phase `phase` (`data-key-phase` on the body).
async fn wait_for_key(kiosk: &Kiosk, stage: &str, phase: &str) {
    let selector = format!("body[data-key-stage='{stage}'][data-key-phase='{phase}']");
    kiosk.wait_for(By::Css(&selector)).await;
}

/// From Choose or Security info: registers the software key and tests it.
async fn enrol_key(kiosk: &Kiosk, button: &str, name: &str, new_pin: bool) {
    register_key(kiosk, button, name, new_pin).await;
    kiosk.enter("key-pin", KEY_PIN).await;
    kiosk.wait_for_step("done").await;
}

/// Gives a key without a PIN its new PIN, typed twice.
async fn set_new_pin(kiosk: &Kiosk) {
    kiosk
        .wait_for(By::Id("new-pin"))
        .await
        .send_keys(KEY_PIN)
        .await
        .unwrap();
    kiosk.enter("new-pin-again", KEY_PIN).await;
}

/// From Choose or Security info: registers the software key, up to the
/// PIN prompt of its test sign-in.
async fn register_key(kiosk: &Kiosk, button: &str, name: &str, new_pin: bool) {
    kiosk.click(button).await;
    kiosk.wait_for_step("key_setup").await;
    if new_pin {
        wait_for_key(kiosk, "setup", "set_pin").await;
        kiosk.screenshot("key-set-pin").await;
        set_new_pin(kiosk).await;
    }
    wait_for_key(kiosk, "setup", "enter_pin").await;
    kiosk.screenshot("key-pin").await;
    kiosk.enter("key-pin", KEY_PIN).await;
    kiosk.wait_for_step("key_name").await;
    kiosk.screenshot("key-name").await;
    kiosk.enter("key-name", name).await;
    wait_for_key(kiosk, "test", "enter_pin").await;
    kiosk.screenshot("key-test").await;
}

/// A kiosk where Ada has registered a new key ("Blue key") and is asked for
/// its PIN again, for the test sign-in.
async fn at_the_key_test(language: &'static str) -> Kiosk {
    let kiosk = Kiosk::start_with(language, Screen::Small).await;
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", false)
        .await;
    sign_in(&kiosk, "ada@example.com", &pass).await;
    register_key(&kiosk, "#choose-security-key", "Blue key", true).await;
    kiosk
}

in_english_and_french!(a_key_blocked_at_its_test_sign_in_can_be_left_there);

async fn a_key_blocked_at_its_test_sign_in_can_be_left_there(language: &'static str) {
    let kiosk = at_the_key_test(language).await;
    // Eight wrong PINs in a row block the software key.
    for left in (2..=7).rev() {
        kiosk.enter("key-pin", "999999").await;
        let said = format!("//p[@id='wrong-pin' and contains(., '{left}')]");
        kiosk.wait_for(By::XPath(&said)).await;
    }
    kiosk.enter("key-pin", "999999").await;
    // The last try left is said without a number.
    let said = "//p[@id='wrong-pin' and not(contains(., '2'))]";
    let last = kiosk.wait_for(By::XPath(said)).await;
    kiosk.assert_says(&last.text().await.unwrap(), "key.wrong_pin_last");
    kiosk.enter("key-pin", "999999").await;
    wait_for_key(&kiosk, "test", "pin_blocked").await;
    kiosk.screenshot("key-test-blocked").await;
    // The key is saved: the person can stop here.
    kiosk.click("#finish").await;
    kiosk.wait_for_step("welcome").await;
    let ada = Email::parse("ada@example.com").unwrap();
    let (_, keys) = kiosk.directory.keys_of(&ada).await.unwrap().unwrap();
    assert_eq!(keys.len(), 1);
    kiosk.stop().await;
}

in_english_and_french!(a_directory_failure_at_the_key_test_is_said_on_welcome);

async fn a_directory_failure_at_the_key_test_is_said_on_welcome(language: &'static str) {
    use sqlx::Executor;
    let kiosk = at_the_key_test(language).await;
    // The directory refuses to record the test sign-in.
    let broken =
        "CREATE TRIGGER broken BEFORE UPDATE ON methods BEGIN SELECT RAISE(ABORT, 'broken'); END";
    kiosk.raw_directory().await.execute(broken).await.unwrap();
    kiosk.enter("key-pin", KEY_PIN).await;
    let said = kiosk.wait_for_notice("session_failed").await;
    kiosk.assert_says(&said, "notice.session_failed");
    kiosk.wait_for_step("welcome").await;
    kiosk.screenshot("key-session-failed").await;
    kiosk.stop().await;
}

const KEY_PIN: &str = "246813";

/// Types a wrong PIN into `field`; the note `said` gives the tries the key
/// still takes (8 on the software key, one used now), in the `words` of the
/// catalogue ("key" to its owner, "admin.stage" to IT).
async fn type_a_wrong_pin(kiosk: &Kiosk, field: &str, said: &str, words: &str) {
    kiosk.enter(field, "999999").await;
    let note = format!("//p[@id='{said}' and contains(., '7')]");
    let wrong = kiosk.wait_for(By::XPath(&note)).await;
    let wrong_pin_left = format!("{words}.wrong_pin_left");
    kiosk.assert_says(&wrong.text().await.unwrap(), &wrong_pin_left);
}

in_english_and_french!(a_security_key_is_enrolled_tested_removed_and_replaced);

async fn a_security_key_is_enrolled_tested_removed_and_replaced(language: &'static str) {
    let kiosk = Kiosk::start_with(language, Screen::Small).await;
    let pass = kiosk
        .person_with_pass("ada@example.com", "Ada Lovelace", false)
        .await;
    sign_in(&kiosk, "ada@example.com", &pass).await;
    enrol_key(&kiosk, "#choose-security-key", "Blue key", true).await;
    let methods = kiosk.driver.find_all(By::Css(".methods li")).await.unwrap();
    assert_eq!(methods.len(), 1);
    assert!(methods[0].text().await.unwrap().contains("Blue key"));
    kiosk.screenshot("key-done").await;

    kiosk.click("#finish").await;
    kiosk.wait_for_step("welcome").await;

    // "Test my key" from Welcome, without a pass. A mistyped email gets the
    // answer any key not registered to it gets; Back to fix it.
    kiosk.click("#test-my-key").await;
    kiosk.wait_for_step("key_check_email").await;
    kiosk.enter("email", "ada@exmaple.com").await;
    wait_for_key(&kiosk, "check", "enter_pin").await;
    kiosk.enter("key-pin", KEY_PIN).await;
    wait_for_key(&kiosk, "check", "not_registered").await;
    let said = kiosk.wait_for(By::Css("#key-status .lead")).await;
    kiosk.assert_says(&said.text().await.unwrap(), "key.check_not_registered");
    kiosk.screenshot("key-check-not-registered").await;
    kiosk.click("#back").await;
    kiosk.wait_for_step("key_check_email").await;
    kiosk.enter("email", "ada@example.com").await;
    wait_for_key(&kiosk, "check", "enter_pin").await;
    // A wrong PIN: said, with the tries the key still takes.
    type_a_wrong_pin(&kiosk, "key-pin", "wrong-pin", "key").await;
    kiosk.screenshot("key-wrong-pin").await;
    kiosk.enter("key-pin", KEY_PIN).await;
    kiosk.wait_for_step("key_check_passed").await;
    let said = kiosk.wait_for(By::Id("key-check-passed")).await;
    assert!(said.text().await.unwrap().contains("Blue key"));
    kiosk.screenshot("key-check-passed").await;
    kiosk.click("#finish").await;
    kiosk.wait_for_step("welcome").await;

    // Later: the key is lost. Remove it in Security info, enrol a new one.
    sign_in(&kiosk, "ada@example.com", &pass).await;
    kiosk.click("#choose-security-info").await;
    kiosk.wait_for_step("security_info").await;
    kiosk.click("button[data-method]").await;
    kiosk.wait_for_notice("method_removed").await;
    enrol_key(&kiosk, "#add-security-key", "Spare key", false).await;
    let methods = kiosk.driver.find_all(By::Css(".methods li")).await.unwrap();
    assert_eq!(methods.len(), 1);
    assert!(methods[0].text().await.unwrap().contains("Spare key"));
    kiosk.stop().await;
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // the pane polls in real time
async fn a_staging_left_on_screen_does_not_keep_the_admin_pane_open() {
    let (mut kiosk, _) = unlocked_admin_pane("en").await;
    kiosk.click("tbody button").await;
    kiosk.click("#stage-key").await;
    kiosk
        .wait_for(By::Css("body[data-stage-phase='set_pin']"))
        .await;
    // Six minutes go by, a minute at a time, while the pane polls the key:
    // the admin session (five minutes from what IT last did) ends all the
    // same, and the pane asks for the PIN.
    for _ in 0..6 {
        kiosk.advance(TimeDelta::minutes(1));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    kiosk.wait_for(By::Id("unlock")).await;
    kiosk.stop().await;
}

#[tokio::test]
async fn a_pane_left_alone_hides_the_pass_it_issued_when_its_session_ends() {
    let (mut kiosk, _) = unlocked_admin_pane("en").await;
    issue_in_admin_pane(&kiosk, "ada@example.com").await;
    // IT walks away from the welcome letter; six minutes later (the admin
    // session lasts five from what IT last did) the pass is off the screen
    // and the pane asks for the PIN, though nobody touched it.
    kiosk.advance(TimeDelta::minutes(6));
    kiosk.wait_for(By::Id("unlock")).await;
    let letters = kiosk.driver.find_all(By::Id("issued-pass")).await.unwrap();
    assert!(letters.is_empty(), "the pass is still on screen");
    kiosk.stop().await;
}

#[tokio::test]
async fn a_double_click_on_issue_issues_one_pass() {
    let (kiosk, _) = unlocked_admin_pane("en").await;
    kiosk.click("button[data-tab='issue']").await;
    let email = kiosk.wait_for(By::Id("issue-email")).await;
    email.send_keys("ada@example.com").await.unwrap();
    kiosk.click("#issue-replace").await;
    // Two submits before the first answer: with Replace ticked, a second
    // pass would revoke the one on the letter.
    let twice = "const f = document.querySelector('form'); f.requestSubmit(); f.requestSubmit();";
    kiosk.driver.execute(twice, vec![]).await.unwrap();
    let shown = kiosk.wait_for(By::Id("issued-pass")).await;
    let shown = shown.text().await.unwrap();
    let ada = Email::parse("ada@example.com").unwrap();
    let passes = kiosk.directory.passes(&ada).await.unwrap();
    assert_eq!(passes.len(), 1, "one pass, not two");
    let works = kiosk.directory.redeem("ada@example.com", &shown).await;
    assert!(works.is_ok(), "the pass on the letter works: {works:?}");
    kiosk.stop().await;
}

#[tokio::test]
async fn a_policy_changed_elsewhere_is_not_undone_by_the_pane() {
    use tapkiosk_core::policy::{Lifetime, OneTime};
    let (kiosk, _) = unlocked_admin_pane("en").await;
    kiosk.click("button[data-tab='policy']").await;
    kiosk.wait_for(By::Id("policy-default")).await;
    // While the tab is open, another administrator lets passes be
    // multi-use (with tapctl, say).
    let one_time = |p: &mut tapkiosk_core::policy::Policy| {
        p.one_time = OneTime::Optional;
        Ok(())
    };
    kiosk.directory.update_policy(one_time).await.unwrap();
    kiosk.enter("policy-default", "2h").await;
    let said = kiosk.wait_for(By::Css("#notice.error")).await;
    assert_eq!(
        said.text().await.unwrap(),
        kiosk.words("error.policy_moved")
    );
    let policy = kiosk.directory.policy().await.unwrap();
    assert_eq!(policy.one_time, OneTime::Optional, "not undone");
    assert_eq!(policy.default_lifetime, Lifetime::from_minutes(60).unwrap());
    // The pane now shows the policy as it is: saving again keeps both.
    kiosk.enter("policy-default", "2h").await;
    let saved = kiosk.words("admin.policy.saved");
    kiosk
        .wait_for(By::XPath(format!("//*[@id='notice' and text()='{saved}']")))
        .await;
    let policy = kiosk.directory.policy().await.unwrap();
    assert_eq!(policy.one_time, OneTime::Optional);
    assert_eq!(
        policy.default_lifetime,
        Lifetime::from_minutes(120).unwrap()
    );
    kiosk.stop().await;
}

#[tokio::test]
async fn closing_the_admin_pane_locks_it() {
    let (kiosk, kiosk_window) = unlocked_admin_pane("en").await;
    // The People tab, drawn once the pane is unlocked.
    kiosk.wait_for(By::Id("new-email")).await;
    kiosk.click_to_close("#close").await;
    kiosk.driver.switch_to_window(kiosk_window).await.unwrap();
    wait_for_windows(&kiosk, 1).await;
    // The next person to press the control gets the PIN prompt, not the
    // pane IT left a moment ago.
    open_admin(&kiosk).await;
    let heading = kiosk.wait_for(By::Css("h1")).await;
    assert_eq!(
        heading.text().await.unwrap(),
        kiosk.words("admin.pin_title")
    );
    kiosk.stop().await;
}

#[tokio::test]
async fn admins_are_added_and_removed_in_the_pane_under_their_own_name() {
    let (kiosk, _) = unlocked_admin_pane("en").await;
    kiosk.click("button[data-tab='admins']").await;
    kiosk.enter("new-admin", "bob").await;
    let shown = kiosk.wait_for(By::Id("enrol-code-value")).await;
    let code = shown.text().await.unwrap();
    kiosk.screenshot("admin-admins").await;
    // The code shown once is the one that works.
    let bob = AdminName::parse("bob").unwrap();
    kiosk
        .directory
        .enrol_admin(&bob, &code, "975310")
        .await
        .unwrap();
    // Remove asks to be pressed twice.
    let remove = "tr[data-admin='bob'] button[data-action='remove']";
    kiosk.click(remove).await;
    assert_eq!(kiosk.directory.admins().await.unwrap().len(), 2);
    kiosk.click(remove).await;
    let deadline = std::time::Instant::now() + harness::PATIENCE;
    while kiosk.directory.admins().await.unwrap().len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "bob was never removed"
        );
    }
    let by_it: Vec<(String, String)> = kiosk
        .directory
        .audit_log(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == "admin:it")
        .map(|e| (e.kind, e.detail["admin"].as_str().unwrap_or("").to_string()))
        .collect();
    let expected = [("admin_added", "bob"), ("admin_removed", "bob")]
        .map(|(kind, name)| (kind.to_string(), name.to_string()));
    assert_eq!(by_it, expected);
    kiosk.stop().await;
}

#[tokio::test]
async fn it_lifts_a_lockout_from_the_pane() {
    use tapkiosk_core::redeem::RedeemError;
    let (kiosk, _) = unlocked_admin_pane("en").await;
    let code = kiosk
        .person_with_pass("grace@example.com", "Grace Hopper", true)
        .await;
    for _ in 0..5 {
        let _ = kiosk
            .directory
            .redeem("grace@example.com", "ZZZZ-ZZZZ-ZZZZ")
            .await;
    }
    assert!(matches!(
        kiosk.directory.redeem("grace@example.com", &code).await,
        Err(RedeemError::LockedOut { .. })
    ));
    kiosk.click("button[data-tab='people']").await;
    kiosk.click("tbody tr:nth-child(2) button").await;
    kiosk.click("#lift-lockout").await;
    let lifted = kiosk
        .words("admin.people.lockout_lifted")
        .replace("{email}", "grace@example.com");
    kiosk
        .wait_for(By::XPath(format!(
            "//*[@id='notice' and text()='{lifted}']"
        )))
        .await;
    kiosk
        .directory
        .redeem("grace@example.com", &code)
        .await
        .unwrap();
    kiosk.stop().await;
}

#[tokio::test]
async fn the_pane_warns_that_an_allow_list_without_roots_trusts_each_key() {
    use tapkiosk_core::policy::KeyRestriction;
    let (kiosk, _) = unlocked_admin_pane("en").await;
    kiosk.click("button[data-tab='policy']").await;
    kiosk.wait_for(By::Id("policy-keys")).await;
    let shown = kiosk
        .driver
        .find_all(By::Id("keys-unproven"))
        .await
        .unwrap();
    assert!(shown.is_empty(), "no warning while any key is allowed");
    let yubikey = "cb69481e-8ff7-4039-93ec-0a2729a154a8".parse().unwrap();
    kiosk
        .directory
        .update_policy(|p| {
            p.keys = KeyRestriction::AllowList([yubikey].into());
            Ok(())
        })
        .await
        .unwrap();
    kiosk.click("button[data-tab='people']").await;
    kiosk.click("button[data-tab='policy']").await;
    let warning = kiosk.wait_for(By::Id("keys-unproven")).await;
    assert_eq!(
        warning.text().await.unwrap(),
        kiosk.words("admin.policy.keys_unproven")
    );
    kiosk.stop().await;
}

#[tokio::test]
async fn the_kiosk_writes_audit_checkpoints_outside_the_directory() {
    use tapkiosk_core::checkpoint::Checkpoint;
    let kiosk = kiosk_knowing_ada("en").await;
    let checkpoint = Checkpoint::parse(&kiosk.first_checkpoint()).unwrap();
    assert_eq!(
        kiosk
            .directory
            .check_audit_checkpoint(&checkpoint)
            .await
            .unwrap(),
        None
    );
    kiosk.stop().await;
}

#[tokio::test]
async fn an_admin_quits_the_kiosk_from_the_pane_and_only_so() {
    let (kiosk, _) = unlocked_admin_pane("en").await;
    // Pressed once, it only asks to be pressed again.
    kiosk.click("#quit").await;
    let asked = kiosk.wait_for(By::Id("quit")).await.text().await.unwrap();
    let again = kiosk
        .words("admin.admins.confirm")
        .replace("{action}", &kiosk.words("admin.quit"));
    assert_eq!(asked, again);
    kiosk.click_to_quit("#quit").await;
    harness::wait_for_app_exit();
    let quits: Vec<String> = kiosk
        .directory
        .audit_log(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "kiosk_quit")
        .map(|e| e.actor)
        .collect();
    assert_eq!(quits, ["admin:it"]);
    kiosk.stop().await;
}

/// Waits until the app has `count` windows.
async fn wait_for_windows(kiosk: &Kiosk, count: usize) {
    let deadline = std::time::Instant::now() + harness::PATIENCE;
    while kiosk.driver.windows().await.unwrap().len() != count {
        assert!(
            std::time::Instant::now() < deadline,
            "the app never had {count} windows"
        );
    }
}

in_english_and_french!(it_stages_a_key_that_then_works_at_the_kiosk);

async fn it_stages_a_key_that_then_works_at_the_kiosk(language: &'static str) {
    let (kiosk, kiosk_window) = unlocked_admin_pane(language).await;
    kiosk.click("tbody button").await;
    kiosk.click("#stage-key").await;
    let stage = |phase: &str| format!("body[data-stage-phase='{phase}']");
    kiosk.wait_for(By::Css(stage("set_pin"))).await;
    let pin = kiosk.wait_for(By::Id("stage-pin")).await;
    pin.send_keys(KEY_PIN).await.unwrap();
    kiosk.enter("stage-pin-again", KEY_PIN).await;
    kiosk.wait_for(By::Css(stage("enter_pin"))).await;
    type_a_wrong_pin(&kiosk, "stage-pin", "stage-wrong-pin", "admin.stage").await;
    kiosk.screenshot("admin-stage-wrong-pin").await;
    kiosk.enter("stage-pin", KEY_PIN).await;
    kiosk.wait_for(By::Css(stage("name"))).await;
    kiosk.screenshot("admin-stage-name").await;
    // An empty name is said to be one, in the pane's language.
    kiosk.enter("stage-name", "").await;
    let said = kiosk.wait_for(By::Css("#notice.error")).await;
    let rule = kiosk.words("error.key_name_rules").replace("{max}", "64");
    assert_eq!(said.text().await.unwrap(), rule);
    kiosk.enter("stage-name", "Ada's key").await;
    kiosk.wait_for(By::Id("stage-done")).await;
    kiosk.screenshot("admin-stage-done").await;

    // IT starts on a second key and locks the pane while the key waits for
    // its PIN: the staging goes with the admin session, so the key is free
    // for the kiosk at once, not when the PIN prompt gives up (2 minutes).
    kiosk.click("#stage-done + button").await;
    kiosk.click("#stage-key").await;
    kiosk.wait_for(By::Css(stage("enter_pin"))).await;
    kiosk.click("#lock").await;
    kiosk.wait_for(By::Id("unlock")).await;

    // On her first day, Ada checks the key at the kiosk: it is hers.
    kiosk.driver.switch_to_window(kiosk_window).await.unwrap();
    kiosk.click("#test-my-key").await;
    kiosk.enter("email", "ada@example.com").await;
    wait_for_key(&kiosk, "check", "enter_pin").await;
    kiosk.enter("key-pin", KEY_PIN).await;
    let said = kiosk.wait_for(By::Id("key-check-passed")).await;
    assert!(said.text().await.unwrap().contains("Ada's key"));
    kiosk.stop().await;
}

in_english_and_french!(an_admin_adds_their_own_key_and_signs_in_with_it);

async fn an_admin_adds_their_own_key_and_signs_in_with_it(language: &'static str) {
    let (kiosk, _) = unlocked_admin_pane(language).await;
    kiosk.click("button[data-tab='admins']").await;
    kiosk.click("#add-my-key").await;
    let stage = |phase: &str| format!("body[data-stage-phase='{phase}']");
    kiosk.wait_for(By::Css(stage("set_pin"))).await;
    type_into(&kiosk, &[("stage-pin", KEY_PIN)]).await;
    kiosk.enter("stage-pin-again", KEY_PIN).await;
    kiosk.wait_for(By::Css(stage("enter_pin"))).await;
    kiosk.enter("stage-pin", KEY_PIN).await;
    kiosk.wait_for(By::Css(stage("name"))).await;
    kiosk.enter("stage-name", "IT key").await;
    kiosk.wait_for(By::Id("stage-done")).await;
    kiosk.click("#stage-done + button").await;
    kiosk
        .wait_for(By::Css("#my-keys li[data-key='IT key']"))
        .await;
    kiosk.screenshot("admin-own-keys").await;

    // Locked, the pane opens again with the key and its PIN, no admin PIN.
    kiosk.click("#lock").await;
    type_into(&kiosk, &[("admin-name", ADMIN)]).await;
    kiosk.click("#key-sign-in").await;
    kiosk
        .wait_for(By::Css("body[data-key-sign-in='enter_pin']"))
        .await;
    kiosk.screenshot("admin-key-sign-in").await;
    kiosk.enter("key-pin", KEY_PIN).await;
    kiosk
        .wait_for(By::Css("button[data-tab='people'][aria-current='page']"))
        .await;
    let log = kiosk
        .directory
        .audit_log(&Default::default())
        .await
        .unwrap();
    let signed_in = log.iter().rfind(|e| e.kind == "admin_signed_in").unwrap();
    assert_eq!(signed_in.detail["method"], "security_key");
    assert_eq!(signed_in.detail["admin"], ADMIN);

    // The same key for a name it is not registered to: after its PIN, the
    // key says so, exactly as for a name that does not exist.
    kiosk.click("#lock").await;
    type_into(&kiosk, &[("admin-name", "nobody")]).await;
    kiosk.click("#key-sign-in").await;
    kiosk
        .wait_for(By::Css("body[data-key-sign-in='enter_pin']"))
        .await;
    kiosk.enter("key-pin", KEY_PIN).await;
    kiosk
        .wait_for(By::Css("body[data-key-sign-in='not_registered']"))
        .await;
    let said = kiosk.wait_for(By::Id("key-sign-in-phase")).await;
    let said = said.text().await.unwrap();
    kiosk.assert_says(&said, "admin.key_sign_in.phase.not_registered");
    kiosk.stop().await;
}

use tapkiosk_tests::entra::ENTRA_APP;
const ADA_UPN: &str = "ada@contoso.onmicrosoft.com";

/// Types `pass` on the tenant's sign-in page shown in the kiosk window.
async fn type_on_the_sign_in_page(kiosk: &Kiosk, pass: &str) {
    kiosk.enter("pass", pass).await;
}

/// Issues Ada a one-time pass in the tenant.
async fn one_time_entra_pass(graph: &tapkiosk_entra::Graph) -> String {
    let request = tapkiosk_entra::passes::PassRequest {
        one_time: Some(true),
        ..Default::default()
    };
    let issued = tapkiosk_entra::passes::issue(graph, ADA_UPN, &request)
        .await
        .unwrap();
    issued.value.unwrap().to_string()
}

/// A kiosk on the fake tenant where Ada has signed in with a one-time
/// Entra pass and opened Security info.
async fn entra_security_info(
    language: &'static str,
    fake: &tapkiosk_fake_entra::FakeEntra,
    graph: &tapkiosk_entra::Graph,
) -> Kiosk {
    let pass = one_time_entra_pass(graph).await;
    let kiosk = Kiosk::start_on_tenant(language, &fake.url, ENTRA_APP).await;
    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.enter("email", ADA_UPN).await;
    kiosk.wait_for(By::Css("#tapkiosk-cancel")).await;
    type_on_the_sign_in_page(&kiosk, &pass).await;
    kiosk.wait_for_step("tenant_choose").await;
    kiosk.click("#choose-security-info").await;
    kiosk.wait_for_step("tenant_security_info").await;
    kiosk
}

/// From the tenant's key setup: a new PIN, the PIN, the key's name, until
/// the tenant has it.
async fn key_into_entra(kiosk: &Kiosk, name: &str) {
    kiosk.wait_for_step("key_setup").await;
    wait_for_key(kiosk, "setup", "set_pin").await;
    set_new_pin(kiosk).await;
    wait_for_key(kiosk, "setup", "enter_pin").await;
    kiosk.enter("key-pin", KEY_PIN).await;
    kiosk.wait_for_step("key_name").await;
    kiosk.enter("key-name", name).await;
    kiosk.wait_for_step("tenant_key_registered").await;
}

/// A new hire at a kiosk on Entra: the email, Microsoft's page (the fake's)
/// in the locked kiosk window with its Cancel bar, the Entra pass there,
/// then a security key registered into the tenant.
async fn a_new_hire_registers_a_key_into_entra_with_an_entra_pass(language: &'static str) {
    let (fake, graph) = tapkiosk_tests::entra::fake_tenant();
    let pass = one_time_entra_pass(&graph).await;
    let mut kiosk = Kiosk::start_on_tenant(language, &fake.url, ENTRA_APP).await;
    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.wait_for_step("email").await;
    kiosk.enter("email", "nobody@contoso.onmicrosoft.com").await;
    kiosk.wait_for_notice("account_not_found").await;
    kiosk.enter("email", ADA_UPN).await;

    // The tenant's page, with the kiosk's way back laid over it.
    let cancel = kiosk.wait_for(By::Css("#tapkiosk-cancel a")).await;
    kiosk.screenshot_of_page("entra-sign-in").await;
    // The page gets no Tauri command, and cannot take the kiosk to the web.
    let ipc = "const done = arguments[arguments.length - 1]; \
        const ipc = window.__TAURI_INTERNALS__; \
        if (!ipc) { done('no ipc'); return; } \
        ipc.invoke('screen').then(() => done('answered'), (e) => done('refused: ' + e));";
    let asked = kiosk.driver.execute_async(ipc, vec![]).await.unwrap();
    let asked = asked.json().as_str().unwrap().to_string();
    assert_ne!(asked, "answered", "the tenant's page called the kiosk");
    let away = "location.href = 'https://example.org/';";
    kiosk.driver.execute(away, vec![]).await.unwrap();
    kiosk.wait_for_log("refused to navigate to https://example.org");
    cancel.click().await.unwrap();
    kiosk.wait_for_step("email").await;
    let typed = kiosk.wait_for(By::Id("email")).await;
    assert_eq!(typed.value().await.unwrap().as_deref(), Some(ADA_UPN));

    // Left on the tenant's page, the kiosk still resets when idle.
    kiosk.enter("email", ADA_UPN).await;
    kiosk.wait_for(By::Css("#tapkiosk-cancel")).await;
    kiosk.advance(TimeDelta::minutes(10));
    kiosk.wait_for_step("welcome").await;
    kiosk.wait_for_notice("idle_reset").await;

    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.enter("email", ADA_UPN).await;
    kiosk.wait_for(By::Css("#tapkiosk-cancel")).await;
    type_on_the_sign_in_page(&kiosk, "not the pass").await;
    // The page the form posts to says why (the first page has the same
    // paragraph, empty: waiting for it could catch the page going away).
    kiosk
        .wait_for(By::XPath("//p[@id='error' and normalize-space()]"))
        .await;
    type_on_the_sign_in_page(&kiosk, &pass).await;

    // Back in the kiosk: the key's usual screens.
    kiosk.wait_for_step("tenant_choose").await;
    kiosk.screenshot("entra-choose").await;
    kiosk.click("#choose-security-key").await;
    key_into_entra(&kiosk, "Ada's key").await;
    let model = kiosk.wait_for(By::Id("key-model")).await;
    assert!(model.text().await.unwrap().contains("Software key (test)"));
    kiosk.screenshot("entra-key-registered").await;

    let keys = graph
        .get("/users/ada@contoso.onmicrosoft.com/authentication/fido2Methods")
        .await
        .unwrap();
    assert_eq!(keys["value"][0]["displayName"], "Ada's key");

    // "Test my key" from Welcome, without a pass: the key keeps Ada's
    // passkey for Microsoft's sign-in; for Grace it holds none.
    kiosk.click("#finish").await;
    kiosk.wait_for_step("welcome").await;
    kiosk.click("#test-my-key").await;
    kiosk.wait_for_step("key_check_email").await;
    kiosk.enter("email", "grace@contoso.onmicrosoft.com").await;
    wait_for_key(&kiosk, "check", "enter_pin").await;
    kiosk.enter("key-pin", KEY_PIN).await;
    kiosk.wait_for_notice("key_not_for_account").await;
    kiosk.screenshot("entra-key-check-not-for-account").await;
    kiosk.enter("email", ADA_UPN).await;
    wait_for_key(&kiosk, "check", "enter_pin").await;
    kiosk.enter("key-pin", KEY_PIN).await;
    kiosk.wait_for_step("tenant_key_check_passed").await;
    let said = kiosk.wait_for(By::Id("key-check-passed")).await;
    assert!(said.text().await.unwrap().contains(ADA_UPN));
    kiosk.screenshot("entra-key-check-passed").await;
    // Nor the sign-in's code, PKCE verifier, ID token or access token.
    let signed_in = fake.sign_in_secrets();
    assert_eq!(signed_in.len(), 4, "one sign-in redeemed");
    let mut secrets: Vec<&str> = signed_in.iter().map(String::as_str).collect();
    secrets.extend([pass.as_str(), KEY_PIN]);
    kiosk.assert_log_holds_none(&secrets);
    kiosk.stop().await;
}

in_english_and_french!(a_new_hire_registers_a_key_into_entra_with_an_entra_pass);

/// Someone who lost their key, at a kiosk on Entra: Security info lists
/// what they have in the tenant (their phone's Authenticator too), the lost
/// key goes, and a new one is registered.
async fn a_person_removes_a_lost_key_in_entra_and_adds_another(language: &'static str) {
    let (fake, graph) = tapkiosk_tests::entra::fake_tenant();
    let lost = tapkiosk_tests::entra::ask_key(&graph, &tapkiosk_tests::entra::soft_key())
        .await
        .unwrap();
    tapkiosk_entra::keys::register_key(&graph, ADA_UPN, "Blue key", &lost)
        .await
        .unwrap();
    fake.change(|tenant| {
        let phone = serde_json::json!({
            "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "id": "6e7f8a90-0000-4000-8000-00000000a0a0",
            "displayName": "iPhone 15",
            "createdDateTime": "2026-01-05T09:00:00Z",
        });
        let ada = tenant.users[0].id.clone();
        tenant.other_methods.insert(ada, vec![phone]);
    });
    let kiosk = entra_security_info(language, &fake, &graph).await;
    let remove = kiosk.wait_for(By::Css("button[data-method]")).await;
    assert_eq!(
        kiosk
            .driver
            .find_all(By::Css("button[data-method]"))
            .await
            .unwrap()
            .len(),
        1,
        "only the key can be removed here"
    );
    kiosk.screenshot("entra-security-info").await;
    remove.click().await.unwrap();
    kiosk.wait_for_notice("method_removed").await;
    assert!(
        kiosk
            .driver
            .find_all(By::Css("button[data-method]"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tapkiosk_entra::keys::list(&graph, ADA_UPN)
            .await
            .unwrap()
            .is_empty()
    );
    kiosk.click("#add-security-key").await;
    key_into_entra(&kiosk, "Green key").await;
    let names: Vec<_> = tapkiosk_entra::keys::list(&graph, ADA_UPN)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.display_name)
        .collect();
    assert_eq!(names, ["Green key"]);
    kiosk.stop().await;
}

in_english_and_french!(a_person_removes_a_lost_key_in_entra_and_adds_another);

/// Microsoft Authenticator cannot be registered through Graph: the person
/// adds it on the tenant's own Security info page (the fake's), opened
/// signed in inside the kiosk window, and the list shows it on return.
/// Once the kiosk is back on Welcome, the window has forgotten the
/// person's session at the tenant.
async fn a_person_adds_microsoft_authenticator_on_the_tenants_own_page(language: &'static str) {
    let (fake, graph) = tapkiosk_tests::entra::fake_tenant();
    let kiosk = entra_security_info(language, &fake, &graph).await;
    kiosk.screenshot("entra-security-info-before").await;
    kiosk.click("#add-microsoft-authenticator").await;

    // Microsoft's page, signed in with the sign-in's session, with the
    // kiosk's way back laid over it.
    let signed_in = kiosk.wait_for(By::Id("signed-in-as")).await;
    assert_eq!(signed_in.text().await.unwrap(), ADA_UPN);
    let back = kiosk.wait_for(By::Id("tapkiosk-back")).await;
    assert_eq!(
        back.text().await.unwrap(),
        "Back to the kiosk · Retour au kiosque"
    );
    kiosk.click("#add-authenticator").await;
    kiosk
        .wait_for(By::XPath(
            "//li[text()='#microsoft.graph.microsoftAuthenticatorAuthenticationMethod']",
        ))
        .await;
    kiosk.screenshot_of_page("entra-security-page").await;
    kiosk.click("#tapkiosk-back").await;

    // Back in the kiosk, the list is read anew.
    kiosk.wait_for_step("tenant_security_info").await;
    let authenticator = kiosk.words("tenant.kind.authenticator");
    let listed = kiosk.wait_for(By::Id("method-list")).await;
    let listed = listed.text().await.unwrap();
    assert!(listed.contains(&authenticator), "{listed}");
    kiosk.screenshot("entra-security-info-after").await;

    // Finished: the next sign-in page opens with no session.
    kiosk.click("#finish").await;
    kiosk.wait_for_step("welcome").await;
    kiosk
        .click(&format!("button[data-language='{language}']"))
        .await;
    kiosk.enter("email", ADA_UPN).await;
    kiosk.wait_for(By::Css("#tapkiosk-cancel")).await;
    assert_eq!(fake.sign_in_pages_opened_signed_in(), [false, false]);
    kiosk.stop().await;
}

in_english_and_french!(a_person_adds_microsoft_authenticator_on_the_tenants_own_page);

/// IT at a kiosk on Entra: the pane's Entra tab shows a person's pass in
/// the tenant, issues one with its welcome letter (a lifetime outside the
/// tenant's policy said in plain words first), and revokes it; each change
/// is in the local audit log under the admin's name.
async fn the_admin_pane_issues_and_revokes_entra_passes(language: &'static str) {
    let (fake, graph) = tapkiosk_tests::entra::fake_tenant();
    let kiosk = Kiosk::start_on_tenant(language, &fake.url, ENTRA_APP).await;
    add_admin(&kiosk).await;
    unlock_admin_pane(&kiosk).await;
    kiosk.click("button[data-tab='entra']").await;
    kiosk.enter("entra-user", ADA_UPN).await;
    let state = kiosk.wait_for(By::Id("entra-pass-state")).await;
    assert!(state.text().await.unwrap().contains(ADA_UPN));
    assert!(
        kiosk
            .driver
            .find_all(By::Id("entra-revoke"))
            .await
            .unwrap()
            .is_empty()
    );

    type_into(
        &kiosk,
        &[("entra-issue-user", ADA_UPN), ("entra-lifetime", "30m")],
    )
    .await;
    kiosk.click("#entra-issue").await;
    let said = kiosk.wait_for(By::Css("#notice.error")).await;
    assert!(
        said.text().await.unwrap().contains("30 min"),
        "the policy's bounds"
    );
    kiosk.enter("entra-lifetime", "2h").await;
    let pass = kiosk
        .wait_for(By::Id("issued-pass"))
        .await
        .text()
        .await
        .unwrap();
    let letter = kiosk.wait_for(By::Id("welcome-letter")).await;
    let letter = letter.text().await.unwrap();
    assert!(letter.contains(&kiosk.words("admin.issue.letter_steps_entra")));
    kiosk.screenshot("admin-entra-letter").await;
    let listed = tapkiosk_entra::passes::list(&graph, ADA_UPN).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].lifetime_minutes, 120);
    assert!(!pass.is_empty());

    kiosk.enter("entra-user", ADA_UPN).await;
    kiosk.click("#entra-revoke").await;
    kiosk
        .wait_for(By::Css("#entra-pass-state:not(:has(+ #entra-revoke))"))
        .await;
    assert!(
        tapkiosk_entra::passes::list(&graph, ADA_UPN)
            .await
            .unwrap()
            .is_empty()
    );
    let log = kiosk
        .directory
        .audit_log(&Default::default())
        .await
        .unwrap();
    let changes: Vec<_> = log
        .iter()
        .filter(|r| r.kind.starts_with("entra_pass"))
        .map(|r| (r.kind.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("entra_pass_issued", "admin:it"),
            ("entra_pass_revoked", "admin:it")
        ]
    );
    // Each with Graph's request id, for Microsoft's support.
    for event in log.iter().filter(|r| r.kind.starts_with("entra_pass")) {
        let request_id = event.detail["request_id"].as_str().unwrap_or_default();
        assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{event:?}");
    }
    kiosk.assert_log_holds_none(&[&pass]);
    kiosk.stop().await;
}

in_english_and_french!(the_admin_pane_issues_and_revokes_entra_passes);

/// The texts of the elements `css` finds.
async fn texts_of(kiosk: &Kiosk, css: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for found in kiosk.driver.find_all(By::Css(css)).await.unwrap() {
        texts.push(found.text().await.unwrap());
    }
    texts
}

/// Scrolls the pane to the element `id` (its top at the window's), for a
/// screenshot.
async fn scroll_to_top(kiosk: &Kiosk, id: &str) {
    kiosk
        .driver
        .execute(
            "document.getElementById(arguments[0]).scrollIntoView(true)",
            vec![serde_json::json!(id)],
        )
        .await
        .unwrap();
}

/// The states of the batch's rows, counted.
async fn batch_states(kiosk: &Kiosk) -> std::collections::BTreeMap<String, usize> {
    let mut states = std::collections::BTreeMap::new();
    for row in kiosk
        .driver
        .find_all(By::Css("#batch-rows tbody tr"))
        .await
        .unwrap()
    {
        let state = row.attr("data-state").await.unwrap().unwrap_or_default();
        *states.entry(state).or_default() += 1;
    }
    states
}

/// IT issues Entra passes for an HR file from the pane. Entra stops
/// answering part-way: what was issued is kept, with its letters, and the
/// same file issued again goes on where it stopped without a second pass
/// for anyone; once printed, the letters' passes are forgotten.
async fn the_admin_pane_runs_an_interrupted_entra_batch_twice(language: &'static str) {
    let (fake, graph) = tapkiosk_tests::entra::fake_tenant();
    fake.change(|t| t.add_people(22));
    let kiosk = Kiosk::start_on_tenant(language, &fake.url, ENTRA_APP).await;
    add_admin(&kiosk).await;
    unlock_admin_pane(&kiosk).await;
    kiosk.click("button[data-tab='entra']").await;
    let mut people = vec![ADA_UPN.to_string(), "grace@contoso.onmicrosoft.com".into()];
    people.extend((0..22).map(|n| format!("person{n}@contoso.onmicrosoft.com")));
    let file = kiosk.wait_for(By::Id("batch-file")).await;
    let rows = people
        .iter()
        .map(|p| format!("{p},,2h,yes"))
        .chain(["nobody@contoso.onmicrosoft.com,,,".to_string()]);
    for line in std::iter::once("email,start,lifetime,one_time".to_string()).chain(rows) {
        // WebKitWebDriver drops a "\n" typed: the Enter key makes the line.
        file.send_keys(&line).await.unwrap();
        file.send_keys(thirtyfour::Key::Enter).await.unwrap();
    }

    // The policy and the first 20 rows' calls (two look-ups, one issue)
    // go through; the next fails until the client gives up.
    let down = vec![(503, Some(0)); 5];
    fake.change(|t| t.failures = [vec![(200, None); 4], down].concat().into());
    kiosk.click("#batch-run").await;
    kiosk
        .wait_for(By::Css("body[data-entra-batch='stopped']"))
        .await;
    let stopped = kiosk.wait_for(By::Id("batch-stopped")).await;
    assert!(
        stopped.text().await.unwrap().contains(": 5."),
        "{:?}",
        stopped.text().await
    );
    let states = batch_states(&kiosk).await;
    assert_eq!(states.get("issued"), Some(&20));
    assert_eq!(states.get("not_sent"), Some(&5));
    let first = texts_of(&kiosk, "#batch-letters .letter-pass").await;
    assert_eq!(first.len(), 20);
    scroll_to_top(&kiosk, "entra-batch").await;
    kiosk.screenshot("admin-entra-batch-stopped").await;

    // The same file again, throttled by Entra: the rest is issued.
    fake.change(|t| {
        t.throttle_every = 3;
        t.throttle_retry_after = 0;
    });
    kiosk.click("#batch-run").await;
    kiosk
        .wait_for(By::Css("body[data-entra-batch='done']"))
        .await;
    let states = batch_states(&kiosk).await;
    assert_eq!(states.get("issued_earlier"), Some(&20));
    assert_eq!(states.get("issued"), Some(&4));
    assert_eq!(states.get("unknown_account"), Some(&1));
    let letters = texts_of(&kiosk, "#batch-letters .letter-pass").await;
    assert_eq!(letters.len(), 24);
    assert_eq!(
        &letters[..20],
        &first[..],
        "the earlier run's passes, not new ones"
    );
    let unique: std::collections::BTreeSet<_> = letters.iter().collect();
    assert_eq!(unique.len(), 24);
    scroll_to_top(&kiosk, "entra-batch").await;
    kiosk.screenshot("admin-entra-batch-done").await;
    scroll_to_top(&kiosk, "batch-rows").await;
    kiosk
        .driver
        .execute(
            "window.scrollBy(0, document.getElementById('batch-rows').offsetHeight - 300)",
            vec![],
        )
        .await
        .unwrap();
    kiosk.screenshot("admin-entra-batch-letters").await;
    for person in &people {
        let passes = tapkiosk_entra::passes::list(&graph, person).await.unwrap();
        assert_eq!(passes.len(), 1, "{person}");
    }
    let log = kiosk
        .directory
        .audit_log(&Default::default())
        .await
        .unwrap();
    let issued: Vec<_> = log
        .iter()
        .filter(|r| r.kind == "entra_pass_issued")
        .map(|r| r.actor.as_str())
        .collect();
    assert_eq!(issued, ["admin:it"; 24]);

    // Printed: the passes are forgotten (the button asks to be sure).
    kiosk.click("[data-action='forget-letters']").await;
    kiosk.click("[data-action='forget-letters']").await;
    let said = kiosk.wait_for(By::Css("#notice.visible")).await;
    assert!(said.text().await.unwrap().contains("24"));
    assert!(
        kiosk
            .driver
            .find_all(By::Id("batch-letters"))
            .await
            .unwrap()
            .is_empty()
    );
    // Neither the letters' passes nor the app's secret or tokens are in
    // the app's log.
    let tokens = fake.access_tokens();
    assert!(!tokens.is_empty());
    let mut secrets: Vec<&str> = letters.iter().map(String::as_str).collect();
    secrets.extend(tokens.iter().map(String::as_str));
    secrets.push("s3cret");
    kiosk.assert_log_holds_none(&secrets);
    kiosk.stop().await;
}

in_english_and_french!(the_admin_pane_runs_an_interrupted_entra_batch_twice);

/// The states of the staging list's rows, in order.
async fn staging_rows(kiosk: &Kiosk) -> Vec<String> {
    let mut states = Vec::new();
    for row in kiosk
        .driver
        .find_all(By::Css("#staging-rows tr"))
        .await
        .unwrap()
    {
        states.push(row.attr("data-state").await.unwrap().unwrap_or_default());
    }
    states
}

/// The names of the security keys `upn` has in the fake tenant.
async fn keys_in_tenant(graph: &tapkiosk_entra::Graph, upn: &str) -> Vec<String> {
    tapkiosk_entra::methods::list(graph, upn)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == "security_key")
        .filter_map(|m| m.name)
        .collect()
}

/// Scrolls the pane down to the element `id` (its bottom at the window's),
/// for a screenshot.
async fn scroll_to(kiosk: &Kiosk, id: &str) {
    kiosk
        .driver
        .execute(
            "document.getElementById(arguments[0]).scrollIntoView(false)",
            vec![serde_json::json!(id)],
        )
        .await
        .unwrap();
}

async fn it_stages_keys_into_entra_from_a_queue(language: &'static str) {
    let (fake, graph) = tapkiosk_tests::entra::fake_tenant();
    let kiosk = Kiosk::start_on_tenant(language, &fake.url, ENTRA_APP).await;
    add_admin(&kiosk).await;
    unlock_admin_pane(&kiosk).await;
    kiosk.click("button[data-tab='entra']").await;
    let people = kiosk.wait_for(By::Id("staging-file")).await;
    for line in [
        "email,label",
        &format!("{ADA_UPN},YK-0001"),
        "nobody@contoso.onmicrosoft.com,X",
        "grace@contoso.onmicrosoft.com,YK-0002",
    ] {
        // WebKitWebDriver drops a "\n" typed: the Enter key makes the line.
        people.send_keys(line).await.unwrap();
        people.send_keys(thirtyfour::Key::Enter).await.unwrap();
    }
    kiosk.click("#staging-start").await;

    // Ada's key (CTAP 2.0) gets a random PIN; it cannot be made to ask for
    // a new one, which IT is told.
    kiosk
        .wait_for(By::Css("body[data-entra-stage='letter']"))
        .await;
    let pin = kiosk
        .wait_for(By::Id("staged-pin"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        pin.len() == 8 && pin.chars().all(|c| c.is_ascii_digit()),
        "{pin}"
    );
    let warning = kiosk.wait_for(By::Id("staging-pin-policy")).await;
    assert_eq!(
        warning.text().await.unwrap(),
        kiosk.words("admin.entra_stage.policy_not_supported")
    );

    // Nobody has the second address; Grace's key is the same one, with its
    // PIN now: IT types it, and it goes on her letter.
    kiosk.click("#staging-next").await;
    kiosk
        .wait_for(By::Css("body[data-entra-stage='enter_pin']"))
        .await;
    kiosk.enter("staging-key-pin", &pin).await;
    kiosk
        .wait_for(By::Css("body[data-entra-stage='letter']"))
        .await;
    let again = kiosk.wait_for(By::Id("staged-pin")).await;
    assert_eq!(again.text().await.unwrap(), pin);
    kiosk.wait_for(By::Id("staging-finished")).await;
    assert_eq!(staging_rows(&kiosk).await, ["staged", "failed", "staged"]);
    // The unknown person in the pane's own words, in its language.
    let nobody = texts_of(&kiosk, "#staging-rows tr[data-state='failed'] td").await;
    assert_eq!(
        nobody.last().map(String::as_str),
        Some(
            kiosk
                .words("admin.entra_stage.row.unknown_account")
                .as_str()
        )
    );
    scroll_to(&kiosk, "staging-rows").await;
    kiosk.screenshot("admin-entra-staging").await;

    assert_eq!(
        keys_in_tenant(&graph, ADA_UPN).await,
        ["Software key (test) · YK-0001"]
    );
    assert_eq!(
        keys_in_tenant(&graph, "grace@contoso.onmicrosoft.com").await,
        ["Software key (test) · YK-0002"]
    );
    let log = kiosk
        .directory
        .audit_log(&Default::default())
        .await
        .unwrap();
    let staged: Vec<_> = log
        .iter()
        .filter(|r| r.kind == "entra_key_staged")
        .map(|r| r.actor.as_str())
        .collect();
    assert_eq!(staged, ["admin:it", "admin:it"]);
    kiosk.assert_log_holds_none(&[&pin]);
    kiosk.stop().await;
}

in_english_and_french!(it_stages_keys_into_entra_from_a_queue);

async fn a_key_staged_into_entra_asks_for_a_new_pin_at_first_use(language: &'static str) {
    let (fake, graph) = tapkiosk_tests::entra::fake_tenant();
    let kiosk = Kiosk::start_on_tenant_with_key(language, &fake.url, ENTRA_APP, "2.1").await;
    add_admin(&kiosk).await;
    unlock_admin_pane(&kiosk).await;
    kiosk.click("button[data-tab='entra']").await;
    // A minimum out of CTAP's range is refused before anything happens.
    type_into(&kiosk, &[("staging-file", &format!("{ADA_UPN},YK-0042"))]).await;
    let min = kiosk.wait_for(By::Id("staging-min-pin")).await;
    min.clear().await.unwrap();
    min.send_keys("3").await.unwrap();
    kiosk.click("#staging-start").await;
    let said = kiosk.wait_for(By::Css("#notice.error")).await;
    assert_eq!(
        said.text().await.unwrap(),
        kiosk.words("error.min_pin_length")
    );
    min.clear().await.unwrap();
    min.send_keys("8").await.unwrap();
    type_into(&kiosk, &[("staging-pin", "73916482")]).await;
    kiosk.click("#staging-start").await;

    kiosk
        .wait_for(By::Css("body[data-entra-stage='letter']"))
        .await;
    let change = kiosk.wait_for(By::Id("letter-pin-change")).await;
    assert_eq!(
        change.text().await.unwrap(),
        kiosk
            .words("admin.entra_stage.letter_change")
            .replace("{min}", "8")
    );
    assert_eq!(
        kiosk
            .wait_for(By::Id("staged-pin"))
            .await
            .text()
            .await
            .unwrap(),
        "73916482"
    );
    assert!(
        kiosk
            .driver
            .find_all(By::Id("staging-pin-policy"))
            .await
            .unwrap()
            .is_empty()
    );
    scroll_to(&kiosk, "pin-letter").await;
    kiosk.screenshot("admin-entra-staging-letter").await;
    assert_eq!(
        keys_in_tenant(&graph, ADA_UPN).await,
        ["Software key (test) · YK-0042"]
    );
    kiosk.assert_log_holds_none(&["73916482"]);
    kiosk.stop().await;
}

in_english_and_french!(a_key_staged_into_entra_asks_for_a_new_pin_at_first_use);
