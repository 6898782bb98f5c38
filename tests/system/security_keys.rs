//! Security keys on both backends, through the kiosk's real CTAP2 client
//! (`CtapAuthenticator`, as for a USB key) talking to a software key that
//! has a PIN, and webauthn-rs as the relying party.

use crate::add;
use std::sync::Mutex;
use tapkiosk_core::Directory;
use tapkiosk_core::config::WebAuthnSettings;
use tapkiosk_core::directory::{DirectoryError, IssueRequest};
use tapkiosk_core::fido::ceremony::{KeySource, Phase, PinProblem};
use tapkiosk_core::fido::enrolment::Enrolment;
use tapkiosk_core::fido::soft::SoftCtapToken;
use tapkiosk_core::fido::{KeyError, NewKey, RelyingParty, Url, Uuid};
use tapkiosk_core::key_staging::{KeyStaging, KeyStagingError, KeyStagingView};
use tapkiosk_core::kiosk::{Kiosk, KioskSettings, Language, Notice, Screen, StepView};
use tapkiosk_core::policy::KeyRestriction;
use tapkiosk_core::redeem::KioskSession;
use tapkiosk_tests::{TestDirectory, on_both_backends};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::ctap2::CtapAuthenticator;
use webauthn_authenticator_rs::types::{CableRequestType, CableState, EnrollSampleStatus};
use webauthn_authenticator_rs::ui::UiCallback;

on_both_backends!(
    the_staging_flow_says_each_step_and_registers_the_persons_key,
    a_key_is_registered_and_signs_in,
    a_key_already_registered_is_excluded,
    a_cloned_key_is_refused,
    answers_for_another_ceremony_are_refused,
    the_allow_list_refuses_other_models_and_audits_it,
    a_registration_without_the_pin_fails,
    the_key_and_its_assertion_verify_with_python_fido2,
    the_kiosk_walks_a_person_through_a_new_key,
    a_directory_failure_while_a_key_is_checked_gives_the_pass_back,
    a_directory_failure_during_test_my_key_is_said,
    a_key_removed_while_it_signs_in_is_refused_and_audited,
    test_my_key_says_whether_a_key_works_without_a_pass,
    it_stages_a_key_for_someone_without_a_pass,
    a_key_that_does_not_verify_its_user_is_refused,
    a_replayed_sign_in_is_refused,
    with_roots_an_allowed_model_must_prove_itself,
    a_key_restricted_after_registration_no_longer_signs_in,
    a_restriction_set_during_a_registration_still_applies,
);

/// IT starts staging a key for Ada.
fn enrol_ada(rp: &RelyingParty, source: &KeySource) -> Enrolment {
    let person = (Uuid::new_v4(), "ada@example.com", "Ada");
    Enrolment::start(rp, source, person, &[], None).unwrap()
}

/// Gives a key without a PIN its first one, `PIN`, and waits until the key
/// asks for it.
fn set_first_pin(enrolment: &Enrolment) {
    wait_for_phase(enrolment, |p| *p == Phase::SetPin);
    enrolment.give_pin(PIN, Some(PIN)).unwrap();
    wait_for_phase(enrolment, |p| matches!(p, Phase::EnterPin { .. }));
}

#[tokio::test]
async fn a_key_talks_to_one_ceremony_at_a_time() {
    let rp = RelyingParty::new(&settings()).unwrap();
    let (token, _) = SoftCtapToken::generate().unwrap();
    let source = KeySource::Soft(std::sync::Arc::new(token));
    // The first has the key and waits for its PIN...
    let first = enrol_ada(&rp, &source);
    set_first_pin(&first);
    // ...so a second one (Back, then again) waits for the key while the
    // first goes on...
    let second = enrol_ada(&rp, &source);
    first.give_pin("999999", None).unwrap();
    wait_for_phase(&first, |p| matches!(p, Phase::EnterPin { wrong: true, .. }));
    assert_eq!(second.phase(), Phase::Searching);
    // ...and has it once the first is gone (the PIN set then stays).
    drop(first);
    wait_for_phase(&second, |p| matches!(p, Phase::EnterPin { .. }));
}

/// The policy a key is checked against is read in the transaction that
/// stores the key: an allow-list that another administrator commits while
/// the key is being stored still applies to it. (PostgreSQL, where writes
/// about different people run at once and the key's write waits only on
/// the policy row; SQLite's writes take turns.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restriction_committed_while_a_key_is_stored_applies() {
    use sqlx::Executor;
    let t = tapkiosk_tests::spawn(tapkiosk_tests::Backend::Postgres).await;
    let mut k = at_kiosk(&t, Some(PIN)).await;
    let key = register(&k.rp, &t.directory, &k.ada, &mut k.client)
        .await
        .unwrap();
    let mut policy = t.directory.policy().await.unwrap();
    policy.keys = only(another_model());
    let restricted = serde_json::to_string(&policy).unwrap();

    // The other administrator's change, not yet committed, holds the
    // policy row.
    let mut admin = t.raw().await;
    admin.execute("BEGIN").await.unwrap();
    let mac = t.key().record_mac("policy", &[restricted.as_bytes()]);
    sqlx::query("UPDATE policy SET settings = $1, mac = $2 WHERE id = 1")
        .bind(restricted)
        .bind(mac.to_vec())
        .execute(&mut admin)
        .await
        .unwrap();
    let (directory, ada) = (t.directory.clone(), k.ada.clone());
    let adding = tokio::spawn(async move { directory.add_security_key(&ada, "Key", &key).await });
    wait_for_a_blocked_write(&t).await;
    admin.execute("COMMIT").await.unwrap();

    let added = adding.await.unwrap();
    assert!(
        matches!(added, Err(DirectoryError::KeyNotAllowed { .. })),
        "{added:?}"
    );
    assert_eq!(key_count(&t, &k.ada.user_id).await, 0);
}

/// Waits until a write to the PostgreSQL directory waits for a lock.
#[allow(clippy::disallowed_methods)] // waiting for another connection
async fn wait_for_a_blocked_write(t: &TestDirectory) {
    let mut conn = t.raw().await;
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no write waited for the lock");
}

#[tokio::test]
async fn wrong_pins_count_down_until_the_key_blocks() {
    let rp = RelyingParty::new(&settings()).unwrap();
    let (token, _) = SoftCtapToken::generate().unwrap();
    let key = token.same_key();
    let source = KeySource::Soft(std::sync::Arc::new(token));
    let mut enrolment = enrol_ada(&rp, &source);
    wait_for_phase(&enrolment, |p| *p == Phase::SetPin);
    enrolment.give_pin(PIN, Some(PIN)).unwrap();
    // The key's own count, as it reports it, before each prompt.
    let asks = |wrong, left| Phase::EnterPin {
        wrong,
        tries_left: Some(left),
    };
    wait_for_phase(&enrolment, |p| *p == asks(false, 8));
    // A PIN that cannot be right is not passed on, so it costs no try.
    assert_eq!(
        enrolment.give_pin("", None),
        Err(PinProblem::PinRules { min: 4 })
    );
    // Enter pressed twice while the key is slow: the PIN is sent once, and
    // costs one try, not two.
    let busy = key.hold();
    enrolment.give_pin("999999", None).unwrap();
    assert_eq!(enrolment.phase(), Phase::Checking);
    assert_eq!(
        enrolment.give_pin("999999", None),
        Err(PinProblem::NotAsked)
    );
    drop(busy);
    wait_for_phase(&enrolment, |p| *p == asks(true, 7));
    for left in (1..=6).rev() {
        enrolment.give_pin("999999", None).unwrap();
        wait_for_phase(&enrolment, |p| *p == asks(true, left));
    }
    // The eighth wrong PIN blocks it; nothing more is asked.
    enrolment.give_pin("999999", None).unwrap();
    wait_for_phase(&enrolment, |p| *p == Phase::PinBlocked);
    assert!(enrolment.finish(&rp).is_none());
}

const PIN: &str = "246813";

/// The person at the kiosk: answers PIN prompts, counts touches.
#[derive(Debug)]
struct Person {
    pin: Option<String>,
    touches: Mutex<usize>,
}

impl Person {
    fn with_pin(pin: Option<&str>) -> Self {
        Self {
            pin: pin.map(str::to_string),
            touches: Mutex::new(0),
        }
    }
}

impl UiCallback for Person {
    fn request_pin(&self) -> Option<String> {
        self.pin.clone()
    }
    fn request_touch(&self) {
        *self.touches.lock().unwrap() += 1;
    }
    fn processing(&self) {}
    fn fingerprint_enrollment_feedback(&self, _: u32, _: Option<EnrollSampleStatus>) {}
    fn cable_qr_code(&self, _: CableRequestType, _: String) {}
    fn dismiss_qr_code(&self) {}
    fn cable_status_update(&self, _: CableState) {}
}

type Client<'a> = WebauthnAuthenticator<CtapAuthenticator<'a, SoftCtapToken, Person>>;

/// A person who answers PIN prompts with `pin`. Leaked: the client borrows
/// it for the rest of the test.
fn person(pin: Option<&str>) -> &'static Person {
    Box::leak(Box::new(Person::with_pin(pin)))
}

/// Ada at the kiosk with a fresh key (its PIN is `PIN`) plugged in.
struct AtKiosk {
    rp: RelyingParty,
    ada: KioskSession,
    client: Client<'static>,
    person: &'static Person,
    /// Another handle on the key in the client.
    device: SoftCtapToken,
}

async fn key_count(t: &TestDirectory, user_id: &str) -> usize {
    t.directory.security_keys(user_id).await.unwrap().len()
}

async fn audited(t: &TestDirectory, kind: &str) -> bool {
    crate::audit_kinds(t).await.iter().any(|k| k == kind)
}

/// Ada at the kiosk with a key registered to her, named "Key".
async fn with_a_key(t: &TestDirectory) -> (AtKiosk, NewKey) {
    let mut k = at_kiosk(t, Some(PIN)).await;
    let key = register(&k.rp, &t.directory, &k.ada, &mut k.client)
        .await
        .unwrap();
    t.directory
        .add_security_key(&k.ada, "Key", &key)
        .await
        .unwrap();
    (k, key)
}

async fn at_kiosk(t: &TestDirectory, pin: Option<&str>) -> AtKiosk {
    let (token, _) = SoftCtapToken::generate().unwrap();
    let device = token.same_key();
    let person = person(pin);
    AtKiosk {
        rp: RelyingParty::new(&settings()).unwrap(),
        ada: session(t, "ada@example.com").await,
        client: plug_in(token, person).await,
        person,
        device,
    }
}

/// A key with `PIN` set, plugged in, as the kiosk's client sees it.
async fn plug_in(token: SoftCtapToken, person: &Person) -> Client<'_> {
    let mut key = CtapAuthenticator::new(token, person)
        .await
        .expect("the software key speaks CTAP2");
    if key.get_info().get_option("clientPin") != Some(true) {
        key.set_new_pin(PIN).await.unwrap();
    }
    WebauthnAuthenticator::new(key)
}

fn settings() -> WebAuthnSettings {
    WebAuthnSettings {
        rp_id: "example.com".into(),
        rp_name: "Example Ltd".into(),
        origin: "https://kiosk.example.com".into(),
        attestation_roots: None,
    }
}

fn origin() -> Url {
    Url::parse("https://kiosk.example.com").unwrap()
}

/// Another model than the software key's (a YubiKey 5).
fn another_model() -> Uuid {
    Uuid::parse_str("cb69481e-8ff7-4039-93ec-0a2729a154a8").unwrap()
}

/// Only keys of the model `aaguid`.
fn only(aaguid: Uuid) -> KeyRestriction {
    KeyRestriction::AllowList([aaguid].into())
}

/// IT sets which key models may be used.
async fn set_keys(t: &TestDirectory, keys: KeyRestriction) {
    let mut policy = t.directory.policy().await.unwrap();
    policy.keys = keys;
    t.directory.set_policy(&policy).await.unwrap();
}

/// A relying party that trusts `root` for attestation.
fn rp_trusting(root: &openssl::x509::X509) -> RelyingParty {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("roots.pem");
    std::fs::write(&path, root.to_pem().unwrap()).unwrap();
    // The roots are read here, so the folder may go afterwards.
    RelyingParty::new(&WebAuthnSettings {
        attestation_roots: Some(path),
        ..settings()
    })
    .unwrap()
}

/// Stores `key` for the session's person, expecting a refusal.
async fn refused_key(t: &TestDirectory, session: &KioskSession, key: &NewKey) -> DirectoryError {
    t.directory
        .add_security_key(session, "Key", key)
        .await
        .unwrap_err()
}

/// A session for `email` opened with a fresh multi-use pass.
async fn session(t: &TestDirectory, email: &str) -> KioskSession {
    let email = add(t, email).await;
    let request = IssueRequest {
        one_time: Some(false),
        ..IssueRequest::new(email.clone())
    };
    let pass = t.directory.issue_pass(&request).await.unwrap();
    t.directory
        .redeem(email.as_str(), &pass.code.grouped())
        .await
        .unwrap()
}

async fn register(
    rp: &RelyingParty,
    directory: &Directory,
    session: &KioskSession,
    client: &mut Client<'_>,
) -> Result<NewKey, KeyError> {
    let registered: Vec<_> = directory
        .security_keys(&session.user_id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.passkey)
        .collect();
    let handle = Uuid::parse_str(&session.user_id).unwrap();
    let (challenge, state) = rp
        .start_registration(handle, session.email.as_str(), "Ada", &registered, None)
        .unwrap();
    let answer = client
        .do_registration(origin(), challenge)
        .map_err(|e| KeyError::Settings(format!("client: {e:?}")))?;
    rp.finish_registration(&answer, state)
}

/// A new software key with a PIN, registered in `session` as the kiosk
/// registers one, ready to be stored.
pub(crate) async fn a_new_key(directory: &Directory, session: &KioskSession) -> NewKey {
    let (token, _) = SoftCtapToken::generate().unwrap();
    let mut client = plug_in(token, person(Some(PIN))).await;
    let rp = RelyingParty::new(&settings()).unwrap();
    register(&rp, directory, session, &mut client)
        .await
        .unwrap()
}

/// Signs in with the person's keys; returns the result as the directory
/// recorded it.
async fn sign_in(
    rp: &RelyingParty,
    t: &TestDirectory,
    user_id: &str,
    client: &mut Client<'_>,
) -> Result<u32, String> {
    let keys: Vec<_> = t
        .directory
        .security_keys(user_id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.passkey)
        .collect();
    let (challenge, state) = rp.start_authentication(&keys).unwrap();
    let answer = client
        .do_authentication(origin(), challenge)
        .map_err(|e| format!("client: {e:?}"))?;
    let result = rp
        .finish_authentication(&answer, state)
        .map_err(|e| e.to_string())?;
    assert!(result.user_verified(), "the PIN was required");
    t.directory
        .record_key_sign_in(
            user_id,
            &tapkiosk_core::Email::parse("ada@example.com").unwrap(),
            &result,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(result.counter())
}

async fn a_key_is_registered_and_signs_in(t: TestDirectory) {
    let AtKiosk {
        rp,
        ada,
        mut client,
        person,
        ..
    } = at_kiosk(&t, Some(PIN)).await;

    let key = register(&rp, &t.directory, &ada, &mut client)
        .await
        .unwrap();
    assert_eq!(
        key.aaguid,
        Some(webauthn_authenticator_rs::softtoken::AAGUID)
    );
    let method = t
        .directory
        .add_security_key(&ada, "My key", &key)
        .await
        .unwrap();
    assert_eq!(method.kind, "fido2");
    assert!(
        *person.touches.lock().unwrap() >= 1,
        "the key asked for a touch"
    );

    let stored = t.directory.security_keys(&ada.user_id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].method.label, "My key");
    assert_eq!(stored[0].passkey.cred_id(), key.passkey.cred_id());
    assert!(stored[0].method.last_used_at.is_none());

    let first = sign_in(&rp, &t, &ada.user_id, &mut client).await.unwrap();
    let second = sign_in(&rp, &t, &ada.user_id, &mut client).await.unwrap();
    assert!(
        second > first,
        "the counter moves on: {first} then {second}"
    );
    let stored = t.directory.security_keys(&ada.user_id).await.unwrap();
    assert_eq!(tapkiosk_core::fido::counter(&stored[0].passkey), second);
    assert!(stored[0].method.last_used_at.is_some());

    // Another person's keys are not Ada's.
    let bob = session(&t, "bob@example.com").await;
    assert!(key_count(&t, &bob.user_id).await == 0);
    assert!(audited(&t, "method_added").await);
}

async fn a_key_removed_while_it_signs_in_is_refused_and_audited(t: TestDirectory) {
    let (mut k, key) = with_a_key(&t).await;
    let (challenge, state) =
        k.rp.start_authentication(std::slice::from_ref(&key.passkey))
            .unwrap();
    let answer = k.client.do_authentication(origin(), challenge).unwrap();
    let result = k.rp.finish_authentication(&answer, state).unwrap();
    // IT removes the key while the person touches it.
    let stored = t.directory.security_keys(&k.ada.user_id).await.unwrap();
    t.directory
        .remove_method_of(&k.ada.email, &stored[0].method.id)
        .await
        .unwrap();
    let refused = t
        .directory
        .record_key_sign_in(&k.ada.user_id, &k.ada.email, &result)
        .await
        .unwrap_err();
    assert!(matches!(refused, DirectoryError::Invalid(_)), "{refused}");
    assert!(audited(&t, "key_refused").await);
}

async fn a_key_already_registered_is_excluded(t: TestDirectory) {
    let (
        AtKiosk {
            rp,
            ada,
            mut client,
            ..
        },
        key,
    ) = with_a_key(&t).await;

    // The key itself refuses: it holds a credential on the exclude list.
    let again = register(&rp, &t.directory, &ada, &mut client)
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("Ctap2CredentialExcluded"),
        "{again}"
    );
    // And the directory would not store the same credential twice.
    let twice = refused_key(&t, &ada, &key).await;
    assert!(matches!(twice, DirectoryError::KeyRegistered), "{twice}");
    assert!(audited(&t, "key_refused").await);
    assert_eq!(key_count(&t, &ada.user_id).await, 1);
}

async fn a_cloned_key_is_refused(t: TestDirectory) {
    let (
        AtKiosk {
            rp,
            ada,
            mut client,
            person,
            device,
        },
        _,
    ) = with_a_key(&t).await;
    sign_in(&rp, &t, &ada.user_id, &mut client).await.unwrap();

    // Someone copies the key; the real one is then used twice more.
    let copy = device.copy_key().unwrap();
    sign_in(&rp, &t, &ada.user_id, &mut client).await.unwrap();
    sign_in(&rp, &t, &ada.user_id, &mut client).await.unwrap();
    let mut cloned = plug_in(copy, person).await;
    let refused = sign_in(&rp, &t, &ada.user_id, &mut cloned)
        .await
        .unwrap_err();
    assert!(refused.contains("cloned"), "{refused}");
    // The real key still works.
    sign_in(&rp, &t, &ada.user_id, &mut client).await.unwrap();
}

async fn answers_for_another_ceremony_are_refused(t: TestDirectory) {
    let (
        AtKiosk {
            rp,
            ada,
            mut client,
            ..
        },
        key,
    ) = with_a_key(&t).await;
    let keys = vec![key.passkey.clone()];

    // An answer to one session's challenge, checked against another's.
    let (first, _first_state) = rp.start_authentication(&keys).unwrap();
    let (_second, second_state) = rp.start_authentication(&keys).unwrap();
    let answer = client.do_authentication(origin(), first).unwrap();
    let refused = rp.finish_authentication(&answer, second_state).unwrap_err();
    assert!(refused.to_string().contains("challenge"), "{refused}");

    // A relying party for another origin of the same RP ID.
    let elsewhere = RelyingParty::new(&WebAuthnSettings {
        origin: "https://other.example.com".into(),
        ..settings()
    })
    .unwrap();
    let (challenge, state) = elsewhere.start_authentication(&keys).unwrap();
    let answer = client.do_authentication(origin(), challenge).unwrap();
    let refused = elsewhere.finish_authentication(&answer, state).unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("origin"),
        "{refused}"
    );

    // Our challenge, signed by the key for another RP ID.
    let (mut challenge, state) = rp.start_authentication(&keys).unwrap();
    challenge.public_key.rp_id = "kiosk.example.com".into();
    let answer = client.do_authentication(origin(), challenge).unwrap();
    let refused = rp.finish_authentication(&answer, state).unwrap_err();
    assert!(
        refused.to_string().contains("relying party id"),
        "{refused}"
    );

    // Nothing refused was recorded: the key signs in as before.
    sign_in(&rp, &t, &ada.user_id, &mut client).await.unwrap();
}

async fn the_allow_list_refuses_other_models_and_audits_it(t: TestDirectory) {
    let rp = RelyingParty::new(&settings()).unwrap();
    set_keys(&t, only(another_model())).await;

    let AtKiosk {
        ada, mut client, ..
    } = at_kiosk(&t, Some(PIN)).await;
    let key = register(&rp, &t.directory, &ada, &mut client)
        .await
        .unwrap();
    let refused = refused_key(&t, &ada, &key).await;
    assert!(
        matches!(refused, DirectoryError::KeyNotAllowed { aaguid: Some(a) } if a == webauthn_authenticator_rs::softtoken::AAGUID),
        "{refused}"
    );
    assert!(key_count(&t, &ada.user_id).await == 0);
    assert!(audited(&t, "key_refused").await);

    // Allowing the model lets the same key in.
    set_keys(&t, only(webauthn_authenticator_rs::softtoken::AAGUID)).await;
    t.directory
        .add_security_key(&ada, "Key", &key)
        .await
        .unwrap();
    // An empty allow-list is a mistake, not "no keys".
    let mut policy = t.directory.policy().await.unwrap();
    policy.keys = KeyRestriction::AllowList(Default::default());
    assert!(t.directory.set_policy(&policy).await.is_err());
}

async fn a_registration_without_the_pin_fails(t: TestDirectory) {
    // The person does not give the PIN.
    let mut k = at_kiosk(&t, None).await;
    let failed = register(&k.rp, &t.directory, &k.ada, &mut k.client)
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("Cancelled"), "{failed}");

    // A wrong PIN: the key says so.
    let (token, _) = SoftCtapToken::generate().unwrap();
    let mut client = plug_in(token, person(Some("111111"))).await;
    let failed = register(&k.rp, &t.directory, &k.ada, &mut client)
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("Ctap2PinInvalid"), "{failed}");
    assert!(key_count(&t, &k.ada.user_id).await == 0);
}

/// The COSE encoding of an EC2 public key (webauthn-rs keeps keys parsed).
fn cose(key: &webauthn_rs::prelude::COSEKey) -> Vec<u8> {
    use serde_cbor_2::Value;
    use webauthn_rs::prelude::{COSEKeyType, ECDSACurve};
    let COSEKeyType::EC_EC2(ec) = &key.key else {
        panic!("the software key makes EC2 keys: {key:?}");
    };
    let curve = match ec.curve {
        ECDSACurve::SECP256R1 => 1,
        ECDSACurve::SECP384R1 => 2,
        ECDSACurve::SECP521R1 => 3,
    };
    let map = [
        (1, Value::Integer(2)),
        (3, Value::Integer(key.type_ as i32 as i128)),
        (-1, Value::Integer(curve)),
        (-2, Value::Bytes(ec.x.to_vec())),
        (-3, Value::Bytes(ec.y.to_vec())),
    ]
    .into_iter()
    .map(|(k, v)| (Value::Integer(k), v))
    .collect();
    serde_cbor_2::to_vec(&Value::Map(map)).unwrap()
}

async fn the_key_and_its_assertion_verify_with_python_fido2(t: TestDirectory) {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let AtKiosk {
        rp,
        ada,
        mut client,
        ..
    } = at_kiosk(&t, Some(PIN)).await;
    let handle = Uuid::parse_str(&ada.user_id).unwrap();
    let (challenge, state) = rp
        .start_registration(handle, ada.email.as_str(), "Ada", &[], None)
        .unwrap();
    let registration = client.do_registration(origin(), challenge).unwrap();
    let key = rp.finish_registration(&registration, state).unwrap();
    t.directory
        .add_security_key(&ada, "Key", &key)
        .await
        .unwrap();
    // The key as the directory gives it back (sealed, stored, opened).
    let stored = t.directory.security_keys(&ada.user_id).await.unwrap()[0]
        .passkey
        .clone();
    let (challenge, state) = rp
        .start_authentication(std::slice::from_ref(&stored))
        .unwrap();
    let assertion = client.do_authentication(origin(), challenge).unwrap();
    rp.finish_authentication(&assertion, state).unwrap();
    let client_data: serde_json::Value =
        serde_json::from_slice(assertion.response.client_data_json.as_slice()).unwrap();
    let export = serde_json::json!({
        "rp_id": "example.com",
        "cose_public_key": b64(&cose(stored.get_public_key())),
        "credential_id": b64(stored.cred_id().as_slice()),
        "attestation_object": b64(registration.response.attestation_object.as_slice()),
        "authenticator_data": b64(assertion.response.authenticator_data.as_slice()),
        "client_data_json": b64(assertion.response.client_data_json.as_slice()),
        "signature": b64(assertion.response.signature.as_slice()),
        "challenge": client_data["challenge"],
    });
    crate::python_fido2("webauthn_crosscheck.py", &export);
}

/// Asks the kiosk for its screen until `wanted` holds; the key works on a
/// thread of its own, so there is no clock to move.
#[allow(clippy::disallowed_methods)] // waiting for the key's worker thread
pub(crate) async fn wait_until(kiosk: &mut Kiosk, wanted: impl Fn(&StepView) -> bool) -> Screen {
    for _ in 0..500 {
        let screen = kiosk.tick().await.unwrap();
        if wanted(&screen.step) {
            return screen;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the kiosk never got there: {:?}", kiosk.screen().step);
}

/// A kiosk whose key source is `key`.
fn kiosk_with(t: &TestDirectory, key: SoftCtapToken) -> Kiosk {
    kiosk_on(t, key, RelyingParty::new(&settings()).unwrap())
}

/// A kiosk whose key source is `key`, for the relying party `rp`.
fn kiosk_on(t: &TestDirectory, key: SoftCtapToken, rp: RelyingParty) -> Kiosk {
    let settings = KioskSettings {
        organisation: "Example Ltd".into(),
        languages: vec![Language::En],
        idle_timeout: chrono::TimeDelta::seconds(120),
        relying_party: Some(std::sync::Arc::new(rp)),
        keys: KeySource::Soft(std::sync::Arc::new(key)),
        tenant: None,
    };
    Kiosk::new(t.directory.clone(), settings)
}

pub(crate) fn key_phase(step: &StepView) -> Option<Phase> {
    match step {
        StepView::KeySetup { key, .. } | StepView::KeyTest { key } | StepView::KeyCheck { key } => {
            Some(key.clone())
        }
        _ => None,
    }
}

async fn the_kiosk_walks_a_person_through_a_new_key(t: TestDirectory) {
    let (token, _) = SoftCtapToken::generate().unwrap();
    let mut kiosk = kiosk_with(&t, token);
    let email = add(&t, "ada@example.com").await;
    let request = IssueRequest {
        one_time: Some(true),
        ..IssueRequest::new(email.clone())
    };
    let pass = t.directory.issue_pass(&request).await.unwrap();
    kiosk.start(Language::En).await.unwrap();
    kiosk.submit_email("ada@example.com").await.unwrap();
    kiosk.submit_pass(&pass.code.grouped()).await.unwrap();
    kiosk.add_security_key().await.unwrap();

    // A key without a PIN: the kiosk helps set one, typed twice.
    let set_pin = |s: &StepView| key_phase(s) == Some(Phase::SetPin);
    wait_until(&mut kiosk, set_pin).await;
    let differ = kiosk.key_pin(PIN, Some("135792")).await.unwrap();
    assert_eq!(differ.notice, Some(Notice::PinsDiffer));
    let short = kiosk.key_pin("12", Some("12")).await.unwrap();
    assert!(matches!(short.notice, Some(Notice::PinRules { min: 4 })));
    kiosk.key_pin(PIN, Some(PIN)).await.unwrap();

    // Then the PIN for the registration: a wrong one is said, and retried.
    let enter_pin = |s: &StepView| matches!(key_phase(s), Some(Phase::EnterPin { .. }));
    wait_until(&mut kiosk, enter_pin).await;
    kiosk.key_pin("999999", None).await.unwrap();
    let wrong = |s: &StepView| {
        key_phase(s)
            == Some(Phase::EnterPin {
                wrong: true,
                tries_left: Some(7),
            })
    };
    wait_until(&mut kiosk, wrong).await;
    kiosk.key_pin(PIN, None).await.unwrap();
    let named = wait_until(&mut kiosk, |s| matches!(s, StepView::KeyName { .. })).await;
    assert_eq!(
        named.step,
        StepView::KeyName {
            suggested: "Software key (test)".into()
        }
    );
    // A name left empty is a name to fix, not a key that failed.
    let unnamed = kiosk.name_key("  ").await.unwrap();
    assert_eq!(unnamed.notice, Some(Notice::KeyNameRules { max: 64 }));
    assert!(matches!(unnamed.step, StepView::KeyName { .. }));
    kiosk.name_key("Ada's key").await.unwrap();

    // The test sign-in asks for the PIN again, then Done lists the key.
    wait_until(&mut kiosk, enter_pin).await;
    kiosk.key_pin(PIN, None).await.unwrap();
    let done = wait_until(&mut kiosk, |s| matches!(s, StepView::Done { .. })).await;
    let StepView::Done { methods, .. } = done.step else {
        unreachable!()
    };
    assert_eq!(methods.len(), 1);
    assert_eq!(methods[0].kind, "fido2");
    assert_eq!(methods[0].label, "Ada's key");
    assert!(
        methods[0].last_used_at.is_some(),
        "the test sign-in is recorded"
    );
    // The one-time pass was used by the registration.
    let again = t
        .directory
        .redeem("ada@example.com", &pass.code.grouped())
        .await;
    assert!(again.is_err(), "a used one-time pass opens nothing");
}

async fn a_directory_failure_while_a_key_is_checked_gives_the_pass_back(t: TestDirectory) {
    // A key that cannot prove its model, so that its answer is refused and
    // the kiosk must read the person's methods again to go back to Choose.
    let (token, _) = SoftCtapToken::generate().unwrap();
    let (_, stranger) = SoftCtapToken::generate().unwrap();
    let key = token.same_key();
    plug_in(token, person(None)).await;
    set_keys(&t, only(webauthn_authenticator_rs::softtoken::AAGUID)).await;
    let mut kiosk = kiosk_on(&t, key, rp_trusting(&stranger));
    let email = add(&t, "ada@example.com").await;
    let request = IssueRequest {
        one_time: Some(true),
        ..IssueRequest::new(email)
    };
    let pass = t.directory.issue_pass(&request).await.unwrap();
    kiosk.start(Language::En).await.unwrap();
    kiosk.submit_email("ada@example.com").await.unwrap();
    kiosk.submit_pass(&pass.code.grouped()).await.unwrap();
    kiosk.add_security_key().await.unwrap();
    answer_with_the_directory_broken(&t, &mut kiosk).await;
    crate::hide_methods(&t, false).await;
    // The one-time pass was not used, and no claim holds it any more.
    let again = t
        .directory
        .redeem("ada@example.com", &pass.code.grouped())
        .await;
    assert!(again.is_ok(), "the pass is free again: {again:?}");
}

async fn a_directory_failure_during_test_my_key_is_said(t: TestDirectory) {
    let (at, _) = with_a_key(&t).await;
    let mut kiosk = kiosk_with(&t, at.device.same_key());
    kiosk.start_key_check(Language::En).await.unwrap();
    kiosk.check_key_email("ada@example.com").await.unwrap();
    answer_with_the_directory_broken(&t, &mut kiosk).await;
}

/// Types the PIN the key asks for while the methods table is away: the
/// kiosk goes back to Welcome and says what happened (an error alone would
/// be gone at the next tick).
async fn answer_with_the_directory_broken(t: &TestDirectory, kiosk: &mut Kiosk) {
    let enter_pin = |s: &StepView| matches!(key_phase(s), Some(Phase::EnterPin { .. }));
    wait_until(kiosk, enter_pin).await;
    crate::hide_methods(t, true).await;
    kiosk.key_pin(PIN, None).await.unwrap();
    let welcome = wait_until(kiosk, |s| matches!(s, StepView::Welcome { .. })).await;
    assert_eq!(welcome.notice, Some(Notice::SessionFailed));
}

async fn test_my_key_says_whether_a_key_works_without_a_pass(t: TestDirectory) {
    // Ada has a key; at the kiosk she checks it without a pass.
    let (mut at, _) = with_a_key(&t).await;
    let copy = at.device.copy_key().unwrap();
    let enter_pin = |s: &StepView| matches!(key_phase(s), Some(Phase::EnterPin { .. }));
    // An email with no key, or unknown: the key is asked all the same and
    // finds nothing, as for someone else's account; nobody learns who has
    // keys.
    add(&t, "bob@example.com").await;
    let trail = crate::audit_kinds(&t).await;
    for nobody in ["bob@example.com", "nobody@example.com"] {
        let mut kiosk = kiosk_with(&t, at.device.same_key());
        kiosk.start_key_check(Language::En).await.unwrap();
        let asked = kiosk.check_key_email(nobody).await.unwrap();
        assert_eq!(asked.notice, None, "{nobody}");
        wait_until(&mut kiosk, enter_pin).await;
        kiosk.key_pin(PIN, None).await.unwrap();
        let not_hers = |s: &StepView| key_phase(s) == Some(Phase::NotRegistered);
        wait_until(&mut kiosk, not_hers).await;
    }
    assert_eq!(
        crate::audit_kinds(&t).await,
        trail,
        "the same trail, or none, for an email with no keys and an unknown one"
    );
    let mut kiosk = kiosk_with(&t, at.device.same_key());
    kiosk.start_key_check(Language::En).await.unwrap();
    kiosk.check_key_email("ada@example.com").await.unwrap();
    wait_until(&mut kiosk, enter_pin).await;
    kiosk.key_pin(PIN, None).await.unwrap();
    let passed = wait_until(&mut kiosk, |s| matches!(s, StepView::KeyCheckPassed { .. })).await;
    assert_eq!(
        passed.step,
        StepView::KeyCheckPassed {
            email: "ada@example.com".into(),
            label: "Key".into()
        }
    );
    assert!(audited(&t, "key_used").await);
    // A check changes nothing else: Ada's key still signs in as before.
    sign_in(&at.rp, &t, &at.ada.user_id, &mut at.client)
        .await
        .unwrap();

    // A copy made before those sign-ins is behind on the counter: the
    // check says so, and IT finds it in the audit log.
    let mut elsewhere = kiosk_with(&t, copy);
    elsewhere.start_key_check(Language::En).await.unwrap();
    elsewhere.check_key_email("ada@example.com").await.unwrap();
    wait_until(&mut elsewhere, enter_pin).await;
    elsewhere.key_pin(PIN, None).await.unwrap();
    let refused = wait_until(&mut elsewhere, |s| {
        matches!(s, StepView::KeyCheckEmail { .. })
    })
    .await;
    assert_eq!(refused.notice, Some(Notice::KeyCloned));
    assert!(audited(&t, "key_clone_suspected").await);
}

/// Waits for the worker thread of an enrolment to reach `wanted`.
#[allow(clippy::disallowed_methods)] // waiting for the key's worker thread
fn wait_for_phase(enrolment: &Enrolment, wanted: impl Fn(&Phase) -> bool) {
    for _ in 0..500 {
        if wanted(&enrolment.phase()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the key never got there: {:?}", enrolment.phase());
}

/// Polls the staging until its view is `wanted`.
#[allow(clippy::disallowed_methods)] // waiting for the key's worker thread
async fn poll_until(
    staging: &mut KeyStaging,
    t: &TestDirectory,
    rp: &RelyingParty,
    wanted: impl Fn(&KeyStagingView) -> bool,
) -> KeyStagingView {
    for _ in 0..500 {
        let view = staging.poll(&t.directory, rp).await.unwrap();
        if wanted(&view) {
            return view;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the staging never got there: {:?}", staging.view());
}

/// The admin pane's staging, as the core state machine it renders.
async fn the_staging_flow_says_each_step_and_registers_the_persons_key(t: TestDirectory) {
    let rp = RelyingParty::new(&settings()).unwrap();
    let ada = add(&t, "ada@example.com").await;
    let (token, _) = SoftCtapToken::generate().unwrap();
    let source = KeySource::Soft(std::sync::Arc::new(token));
    t.directory.set_user_enabled(&ada, false).await.unwrap();
    let refused = KeyStaging::for_person(&t.directory, &rp, &source, &ada).await;
    assert!(
        matches!(refused, Err(KeyStagingError::Disabled(_))),
        "{refused:?}"
    );
    t.directory.set_user_enabled(&ada, true).await.unwrap();

    let mut staging = KeyStaging::for_person(&t.directory, &rp, &source, &ada)
        .await
        .unwrap();
    assert_eq!(staging.view().owner, "ada@example.com");
    let early = staging.name(&t.directory, "Ada's key").await;
    assert!(
        matches!(early, Err(KeyStagingError::NotRunning)),
        "not answered yet"
    );
    poll_until(&mut staging, &t, &rp, |v| v.key == Phase::SetPin).await;
    assert_eq!(
        staging.give_pin(PIN, Some("000000")),
        Err(PinProblem::PinsDiffer)
    );
    staging.give_pin(PIN, Some(PIN)).unwrap();
    poll_until(&mut staging, &t, &rp, |v| {
        matches!(v.key, Phase::EnterPin { .. })
    })
    .await;
    staging.give_pin(PIN, None).unwrap();
    let answered = poll_until(&mut staging, &t, &rp, |v| v.suggested.is_some()).await;
    assert_eq!(answered.done, None);

    let unnamed = staging.name(&t.directory, " ").await;
    assert!(
        matches!(unnamed, Err(KeyStagingError::LabelRules { max: 64 })),
        "{unnamed:?}"
    );
    let added = staging.name(&t.directory, "Ada's key").await.unwrap();
    // Saved twice (a double click): the one key.
    let again = staging.name(&t.directory, "Ada's key").await.unwrap();
    assert_eq!(added.id, again.id);
    assert_eq!(staging.view().done.map(|m| m.id), Some(added.id));
    let (_, keys) = t.directory.keys_of(&ada).await.unwrap().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].method.label, "Ada's key");
}

async fn it_stages_a_key_for_someone_without_a_pass(t: TestDirectory) {
    let rp = RelyingParty::new(&settings()).unwrap();
    let ada = add(&t, "ada@example.com").await;
    let (token, _) = SoftCtapToken::generate().unwrap();
    let source = KeySource::Soft(std::sync::Arc::new(token));
    let mut enrolment = Enrolment::start(
        &rp,
        &source,
        (Uuid::new_v4(), ada.as_str(), "Ada"),
        &[],
        None,
    )
    .unwrap();
    wait_for_phase(&enrolment, |p| *p == Phase::SetPin);
    assert_eq!(
        enrolment.give_pin(PIN, Some("000000")),
        Err(PinProblem::PinsDiffer)
    );
    enrolment.give_pin(PIN, Some(PIN)).unwrap();
    wait_for_phase(&enrolment, |p| matches!(p, Phase::EnterPin { .. }));
    enrolment.give_pin(PIN, None).unwrap();
    wait_for_phase(&enrolment, |p| *p == Phase::Answered);
    let key = enrolment.finish(&rp).unwrap().unwrap();
    assert!(enrolment.finish(&rp).is_none(), "an answer is checked once");
    // Only for the very person it was set up for, while enabled.
    let (ada_id, _) = t.directory.keys_of(&ada).await.unwrap().unwrap();
    let stranger = Uuid::new_v4().to_string();
    let gone = t
        .directory
        .add_security_key_for((&stranger, &ada), "Key", &key);
    assert!(matches!(gone.await, Err(DirectoryError::UserNotFound(_))));
    t.directory.set_user_enabled(&ada, false).await.unwrap();
    let off = t
        .directory
        .add_security_key_for((&ada_id, &ada), "Key", &key);
    assert!(matches!(off.await, Err(DirectoryError::UserDisabled(_))));
    t.directory.set_user_enabled(&ada, true).await.unwrap();
    t.directory
        .add_security_key_for((&ada_id, &ada), "Ada's key", &key)
        .await
        .unwrap();
    let (_, keys) = t.directory.keys_of(&ada).await.unwrap().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].method.label, "Ada's key");
    assert!(audited(&t, "method_added").await);
    // No pass was issued or used.
    assert!(t.directory.show_user(&ada).await.unwrap().passes.is_empty());
}

async fn a_key_that_does_not_verify_its_user_is_refused(t: TestDirectory) {
    use webauthn_authenticator_rs::softtoken::SoftToken;
    use webauthn_rs_proto::UserVerificationPolicy;
    let rp = RelyingParty::new(&settings()).unwrap();
    let ada = session(&t, "ada@example.com").await;
    // A key that does no user verification, and a request altered on its
    // way to say it is not needed: the relying party still requires it.
    let mut key = WebauthnAuthenticator::new(SoftToken::new(false).unwrap().0);
    let handle = Uuid::parse_str(&ada.user_id).unwrap();
    let (mut challenge, state) = rp
        .start_registration(handle, ada.email.as_str(), "Ada", &[], None)
        .unwrap();
    let selection = challenge
        .public_key
        .authenticator_selection
        .as_mut()
        .unwrap();
    selection.user_verification = UserVerificationPolicy::Discouraged_DO_NOT_USE;
    let answer = key.do_registration(origin(), challenge).unwrap();
    let refused = rp.finish_registration(&answer, state).unwrap_err();
    assert!(matches!(refused, KeyError::UserNotVerified), "{refused}");
    assert_eq!(key_count(&t, &ada.user_id).await, 0);
}

async fn a_replayed_sign_in_is_refused(t: TestDirectory) {
    let (
        AtKiosk {
            rp,
            ada,
            mut client,
            ..
        },
        key,
    ) = with_a_key(&t).await;
    let (challenge, state) = rp
        .start_authentication(std::slice::from_ref(&key.passkey))
        .unwrap();
    let answer = client.do_authentication(origin(), challenge).unwrap();
    let result = rp.finish_authentication(&answer, state).unwrap();
    t.directory
        .record_key_sign_in(&ada.user_id, &ada.email, &result)
        .await
        .unwrap();
    // The same answer again: its state is gone (consumed above), and under
    // a new challenge it does not verify...
    let (_, fresh_state) = rp
        .start_authentication(std::slice::from_ref(&key.passkey))
        .unwrap();
    let again = rp.finish_authentication(&answer, fresh_state).unwrap_err();
    assert!(again.to_string().contains("challenge"), "{again}");
    // ...and the directory would not take the same counter twice.
    let twice = t
        .directory
        .record_key_sign_in(&ada.user_id, &ada.email, &result)
        .await
        .unwrap_err();
    assert!(matches!(twice, DirectoryError::KeyCloned), "{twice}");
    assert!(audited(&t, "key_clone_suspected").await);
}

async fn with_roots_an_allowed_model_must_prove_itself(t: TestDirectory) {
    let ada = session(&t, "ada@example.com").await;
    let (token, root) = SoftCtapToken::generate().unwrap();
    let (_, stranger) = SoftCtapToken::generate().unwrap();
    let mut client = plug_in(token, person(Some(PIN))).await;
    let allowed = [webauthn_authenticator_rs::softtoken::AAGUID].into();
    let handle = Uuid::parse_str(&ada.user_id).unwrap();
    // The key's own vendor root: the attestation chains, the model is allowed.
    // Another vendor's root only: the same key cannot prove its model.
    for (name, roots, accepted) in [("ours", &root, true), ("theirs", &stranger, false)] {
        let rp = rp_trusting(roots);
        let (challenge, state) = rp
            .start_registration(handle, ada.email.as_str(), "Ada", &[], Some(&allowed))
            .unwrap();
        let answer = client.do_registration(origin(), challenge).unwrap();
        let checked = rp.finish_registration(&answer, state);
        match (accepted, checked) {
            (true, Ok(key)) => assert_eq!(
                key.aaguid,
                Some(webauthn_authenticator_rs::softtoken::AAGUID)
            ),
            // Refused, and the model it claimed is named for the record.
            (false, Err(KeyError::Unproven { aaguid })) => {
                assert_eq!(aaguid, Some(webauthn_authenticator_rs::softtoken::AAGUID))
            }
            (_, other) => panic!("{name}: {other:?}"),
        }
    }
}

async fn a_key_restricted_after_registration_no_longer_signs_in(t: TestDirectory) {
    let (at, _) = with_a_key(&t).await;
    let mut client = at.client;
    sign_in(&at.rp, &t, &at.ada.user_id, &mut client)
        .await
        .unwrap();
    // IT now allows only another model: the key is refused at sign-in too,
    // and the refusal is audited.
    set_keys(&t, only(another_model())).await;
    let refused = sign_in(&at.rp, &t, &at.ada.user_id, &mut client)
        .await
        .unwrap_err();
    assert!(refused.contains("does not allow"), "{refused}");
    assert!(audited(&t, "key_refused").await);
    // Allowed again, it signs in again.
    set_keys(&t, KeyRestriction::AnyKey).await;
    sign_in(&at.rp, &t, &at.ada.user_id, &mut client)
        .await
        .unwrap();
}

async fn a_restriction_set_during_a_registration_still_applies(t: TestDirectory) {
    let ada = session(&t, "ada@example.com").await;
    let (token, root) = SoftCtapToken::generate().unwrap();
    let mut client = plug_in(token, person(Some(PIN))).await;
    let rp = rp_trusting(&root);
    // The registration starts while any key is allowed, so no proof of the
    // model is asked for...
    let key = register(&rp, &t.directory, &ada, &mut client)
        .await
        .unwrap();
    assert_eq!(key.policy_model, None, "the model was not proven");
    // ...then IT allows only this model: the unproven key is refused.
    set_keys(&t, only(webauthn_authenticator_rs::softtoken::AAGUID)).await;
    let refused = refused_key(&t, &ada, &key).await;
    assert!(
        matches!(refused, DirectoryError::KeyNotAllowed { .. }),
        "{refused}"
    );
    assert_eq!(key_count(&t, &ada.user_id).await, 0);
    // Stored while any key is allowed, it signs in; once the allow-list is
    // back it does not, though it claims an allowed model: it never proved it.
    set_keys(&t, KeyRestriction::AnyKey).await;
    t.directory
        .add_security_key(&ada, "Key", &key)
        .await
        .unwrap();
    sign_in(&rp, &t, &ada.user_id, &mut client).await.unwrap();
    set_keys(&t, only(webauthn_authenticator_rs::softtoken::AAGUID)).await;
    let refused = sign_in(&rp, &t, &ada.user_id, &mut client)
        .await
        .unwrap_err();
    assert!(refused.contains("does not allow"), "{refused}");
}
