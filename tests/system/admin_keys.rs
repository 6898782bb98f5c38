//! Admins' own security keys: registered at the pane, they sign in in
//! place of the PIN, under the same per-admin lockout, and a key row moved
//! to another admin or a replayed answer opens nothing. The key is
//! webauthn-authenticator-rs's software key, the relying party webauthn-rs.

use sqlx::Executor;
use tapkiosk_core::config::WebAuthnSettings;
use tapkiosk_core::directory::{AdminError, AdminName, DirectoryError};
use tapkiosk_core::fido::{AuthenticationResult, KeyError, NewKey, RelyingParty, Uuid};
use tapkiosk_tests::{TestDirectory, on_both_backends};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softtoken::SoftToken;

on_both_backends!(
    an_admin_signs_in_with_their_own_key,
    another_admins_key_a_replay_or_a_refused_answer_counts_as_wrong,
    a_key_row_moved_to_another_admin_does_not_open,
    a_reset_forgets_the_admins_keys,
);

type Key = WebauthnAuthenticator<SoftToken>;

fn relying_party() -> RelyingParty {
    RelyingParty::new(&WebAuthnSettings {
        rp_id: "example.com".into(),
        rp_name: "Example Ltd".into(),
        origin: "https://kiosk.example.com".into(),
        attestation_roots: None,
    })
    .unwrap()
}

fn new_key() -> Key {
    WebauthnAuthenticator::new(SoftToken::new(true).unwrap().0)
}

/// An admin `name` with a PIN, and a key registered to them.
async fn admin_with_key(t: &TestDirectory, rp: &RelyingParty, name: &str) -> (AdminName, Key) {
    let admin = AdminName::parse(name).unwrap();
    t.directory.add_admin(&admin).await.unwrap();
    t.directory.set_admin_pin(&admin, "246813").await.unwrap();
    let mut key = new_key();
    let registered = register(rp, &mut key, name);
    t.directory
        .add_admin_key(&admin, "My key", &registered)
        .await
        .unwrap();
    (admin, key)
}

fn register(rp: &RelyingParty, key: &mut Key, name: &str) -> NewKey {
    let (challenge, state) = rp
        .start_registration(Uuid::new_v4(), name, name, &[], None)
        .unwrap();
    let answer = key.do_registration(rp.origin().clone(), challenge).unwrap();
    rp.finish_registration(&answer, state).unwrap()
}

/// `key` signs in for the credentials registered to `owner`: the checked
/// answer, as the pane passes it on.
async fn answer(
    t: &TestDirectory,
    rp: &RelyingParty,
    key: &mut Key,
    owner: &AdminName,
) -> Result<AuthenticationResult, KeyError> {
    let passkeys = t.directory.admin_passkeys(owner).await.unwrap();
    let (challenge, state) = rp.start_authentication(&passkeys).unwrap();
    let answer = key
        .do_authentication(rp.origin().clone(), challenge)
        .unwrap();
    rp.finish_authentication(&answer, state)
}

async fn an_admin_signs_in_with_their_own_key(t: TestDirectory) {
    let rp = relying_party();
    let (it, mut key) = admin_with_key(&t, &rp, "it").await;
    let checked = answer(&t, &rp, &mut key, &it).await;
    t.directory
        .sign_in_admin_with_key(&it, checked)
        .await
        .unwrap();
    let listed = t.directory.admin_keys(&it).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label, "My key");
    assert!(listed[0].last_used_at.is_some());
    let admins = t.directory.admins().await.unwrap();
    assert_eq!(admins[0].keys, 1);
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let signed_in = log.iter().rfind(|e| e.kind == "admin_signed_in").unwrap();
    assert_eq!(signed_in.detail["method"], "security_key");
    assert_eq!(signed_in.detail["admin"], "it");
    // An unknown name has no credentials: the pane asks with a decoy.
    let nobody = AdminName::parse("nobody").unwrap();
    assert!(
        t.directory
            .admin_passkeys(&nobody)
            .await
            .unwrap()
            .is_empty()
    );
    // The key comes off.
    t.directory
        .remove_admin_key(&it, &listed[0].id)
        .await
        .unwrap();
    assert!(t.directory.admin_passkeys(&it).await.unwrap().is_empty());
}

async fn another_admins_key_a_replay_or_a_refused_answer_counts_as_wrong(t: TestDirectory) {
    let rp = relying_party();
    let (it, _) = admin_with_key(&t, &rp, "it").await;
    let (bob, mut bobs_key) = admin_with_key(&t, &rp, "bob").await;
    let bobs_answer = answer(&t, &rp, &mut bobs_key, &bob).await.unwrap();
    let wrong = |r: Result<(), AdminError>| matches!(r, Err(AdminError::Wrong));
    // Bob's genuine answer does not sign "it" in.
    let as_it = t
        .directory
        .sign_in_admin_with_key(&it, Ok(bobs_answer.clone()));
    assert!(wrong(as_it.await));
    t.directory
        .sign_in_admin_with_key(&bob, Ok(bobs_answer.clone()))
        .await
        .unwrap();
    // The same answer again: its counter has not moved on.
    let replayed = t.directory.sign_in_admin_with_key(&bob, Ok(bobs_answer));
    assert!(wrong(replayed.await));
    assert!(
        crate::audit_kinds(&t)
            .await
            .iter()
            .any(|k| k == "key_clone_suspected")
    );
    // Refused answers lock "it" out as wrong PINs do, and only "it".
    let refused = || Err(KeyError::Settings("a bad signature".into()));
    let mut last = Ok(());
    for _ in 0..5 {
        last = t.directory.sign_in_admin_with_key(&it, refused()).await;
    }
    assert!(
        matches!(last, Err(AdminError::LockedOut { .. })),
        "{last:?}"
    );
    let mut bobs_key_again = bobs_key;
    let checked = answer(&t, &rp, &mut bobs_key_again, &bob).await;
    t.directory
        .sign_in_admin_with_key(&bob, checked)
        .await
        .unwrap();
}

async fn a_key_row_moved_to_another_admin_does_not_open(t: TestDirectory) {
    let rp = relying_party();
    let (it, _) = admin_with_key(&t, &rp, "it").await;
    let (bob, _) = admin_with_key(&t, &rp, "bob").await;
    t.raw()
        .await
        .execute("UPDATE admin_keys SET admin_id = (SELECT id FROM admins WHERE name = 'it')")
        .await
        .unwrap();
    let opened = t.directory.admin_passkeys(&it).await;
    assert!(
        matches!(
            opened,
            Err(AdminError::Directory(DirectoryError::Tampered(_)))
        ),
        "{opened:?}"
    );
    assert!(t.directory.admin_passkeys(&bob).await.unwrap().is_empty());
}

async fn a_reset_forgets_the_admins_keys(t: TestDirectory) {
    let rp = relying_party();
    let (it, mut key) = admin_with_key(&t, &rp, "it").await;
    let before = answer(&t, &rp, &mut key, &it).await;
    t.directory.reset_admin(&it).await.unwrap();
    assert!(t.directory.admin_passkeys(&it).await.unwrap().is_empty());
    t.directory.set_admin_pin(&it, "135792").await.unwrap();
    // An answer the key gave before the reset signs nobody in.
    let after = t.directory.sign_in_admin_with_key(&it, before).await;
    assert!(matches!(after, Err(AdminError::Wrong)), "{after:?}");
}
