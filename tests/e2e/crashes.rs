//! The app itself (the Tauri binary the kiosk ships as, started by
//! tauri-driver) killed with SIGKILL in the middle of each write a person
//! or IT makes at it, on both backends: nothing half-written stays, no
//! one-time pass is burned (it works again once its lease ends), and the
//! audit chain verifies.

use crate::harness::Kiosk;
use crate::{add_admin, secret_from_qr, set_new_pin, sign_in, unlock_admin_pane, wait_for_key};
use chrono::TimeDelta;
use tapkiosk_core::Email;
use tapkiosk_core::redeem::RedeemError;
use tapkiosk_tests::Backend;
use thirtyfour::prelude::*;

macro_rules! on_both_backends {
    ($body:ident) => {
        mod $body {
            use tapkiosk_tests::Backend;

            #[tokio::test]
            async fn sqlite() {
                super::$body(Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$body(Backend::Postgres).await;
            }
        }
    };
}

on_both_backends!(the_app_killed_after_its_claim_burns_no_pass);
on_both_backends!(the_app_killed_while_it_stores_an_app_leaves_no_method);
on_both_backends!(the_app_killed_while_it_stores_a_key_leaves_no_key);
on_both_backends!(the_app_killed_in_the_middle_of_an_import_adds_no_one);

const ADA: &str = "ada@example.com";

/// A kiosk told to stop at `point`, and a one-time pass for Ada, signed in
/// up to "choose" unless the point is the claim itself.
async fn ada_at_a_kiosk_that_crashes(backend: Backend, point: &'static str) -> (Kiosk, String) {
    let kiosk = Kiosk::start_to_crash(backend, point).await;
    let pass = kiosk.person_with_pass(ADA, "Ada Lovelace", true).await;
    (kiosk, pass)
}

/// What the directory holds after the kill: no method of Ada's, a pass in
/// use until its lease ends and usable after it, and a chain that holds.
async fn nothing_was_lost(kiosk: &Kiosk, pass: &str) {
    let now = kiosk.directory_at(kiosk.now()).await;
    let ada = Email::parse(ADA).unwrap();
    let person = now.show_user(&ada).await.unwrap();
    assert!(person.methods.is_empty(), "{:?}", person.methods);
    let kinds: Vec<String> = now
        .audit_log(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.kind)
        .collect();
    assert!(
        !kinds.iter().any(|kind| kind == "method_added"),
        "{kinds:?}"
    );
    assert!(matches!(
        now.redeem(ADA, pass).await,
        Err(RedeemError::InUse { .. })
    ));
    let later = kiosk
        .directory_at(kiosk.now() + TimeDelta::minutes(16))
        .await;
    let session = later.redeem(ADA, pass).await.unwrap();
    later.commit_session(&session).await.unwrap();
    chain_holds(kiosk).await;
}

async fn chain_holds(kiosk: &Kiosk) {
    let verification = kiosk.directory.verify_audit().await.unwrap();
    assert_eq!(verification.broken, None);
    assert!(verification.events > 0);
}

async fn the_app_killed_after_its_claim_burns_no_pass(backend: Backend) {
    let (kiosk, pass) = ada_at_a_kiosk_that_crashes(backend, "claimed").await;
    kiosk.click("button[data-language='en']").await;
    kiosk.enter("email", ADA).await;
    kiosk.wait_for_step("pass").await;
    kiosk.enter("pass", &pass).await;
    kiosk.kill_at("claimed");
    nothing_was_lost(&kiosk, &pass).await;
}

async fn the_app_killed_while_it_stores_an_app_leaves_no_method(backend: Backend) {
    let (kiosk, pass) = ada_at_a_kiosk_that_crashes(backend, "storing_app").await;
    sign_in(&kiosk, ADA, &pass).await;
    kiosk.click("#choose-authenticator").await;
    kiosk.wait_for_step("authenticator_setup").await;
    let secret = secret_from_qr(&kiosk).await;
    let code = crate::oathtool_code(&secret, kiosk.now());
    kiosk.enter("code", &code).await;
    kiosk.kill_at("storing_app");
    nothing_was_lost(&kiosk, &pass).await;
}

async fn the_app_killed_while_it_stores_a_key_leaves_no_key(backend: Backend) {
    let (kiosk, pass) = ada_at_a_kiosk_that_crashes(backend, "storing_key").await;
    sign_in(&kiosk, ADA, &pass).await;
    kiosk.click("#choose-security-key").await;
    wait_for_key(&kiosk, "setup", "set_pin").await;
    set_new_pin(&kiosk).await;
    wait_for_key(&kiosk, "setup", "enter_pin").await;
    kiosk.enter("key-pin", crate::KEY_PIN).await;
    kiosk.wait_for_step("key_name").await;
    kiosk.enter("key-name", "Blue key").await;
    kiosk.kill_at("storing_key");
    nothing_was_lost(&kiosk, &pass).await;
}

/// IT imports 300 people from the admin pane; the app dies before the
/// import commits: no one of them is in the directory, the people there
/// before are, and the chain holds.
async fn the_app_killed_in_the_middle_of_an_import_adds_no_one(backend: Backend) {
    let (kiosk, pass) = ada_at_a_kiosk_that_crashes(backend, "importing").await;
    add_admin(&kiosk).await;
    unlock_admin_pane(&kiosk).await;
    kiosk.click("button[data-tab='people']").await;
    let csv: String = std::iter::once("email,name".to_string())
        .chain((0..300).map(|i| format!("person{i}@example.com,Person {i}")))
        .collect::<Vec<_>>()
        .join("\n");
    let field = kiosk.wait_for(By::Id("csv")).await;
    kiosk
        .driver
        .execute(
            "arguments[0].value = arguments[1]",
            vec![field.to_json().unwrap(), serde_json::json!(csv)],
        )
        .await
        .unwrap();
    kiosk.click("#import-users").await;
    kiosk.kill_at("importing");
    let now = kiosk.directory_at(kiosk.now()).await;
    let people: Vec<String> = now
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|user| user.email.to_string())
        .collect();
    assert_eq!(people, [ADA]);
    // Ada's pass was never touched: it signs her in at once.
    let session = now.redeem(ADA, &pass).await.unwrap();
    now.commit_session(&session).await.unwrap();
    chain_holds(&kiosk).await;
}
