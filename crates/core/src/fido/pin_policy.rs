//! Handing over a staged key. IT sets a PIN on a new key and registers it
//! for someone; then the key is told (CTAP 2.1 authenticatorConfig,
//! setMinPINLength) to require so many characters and to ask for a new PIN
//! at its next use. IT's PIN is then good only for choosing a new one: the
//! person types it once, at first use, and chooses their own. So this comes
//! last, after the registration: until the PIN is changed the key grants no
//! PIN token, for a registration or anything else. A CTAP 2.0 (or 2.1-PRE)
//! key has no such command: that is said, and nothing on it changes.
#![cfg_attr(
    not(any(feature = "usb", feature = "nfc", feature = "softtoken")),
    allow(dead_code, reason = "no key transport in this build")
)]

use super::ceremony::{KeySource, PIN_MAX_BYTES, PIN_MIN_CHARS};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use thiserror::Error;
use webauthn_authenticator_rs::ctap2::CtapAuthenticator;
use webauthn_authenticator_rs::ctap2::commands::GetInfoResponse;
use webauthn_authenticator_rs::error::{CtapError, WebauthnCError};
use webauthn_authenticator_rs::transport::Token;
use webauthn_authenticator_rs::types::{CableRequestType, CableState, EnrollSampleStatus};
use webauthn_authenticator_rs::ui::UiCallback;
use zeroize::Zeroizing;

/// What the key did with the PIN policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PinPolicyOutcome {
    /// The key now requires at least `min_pin_length` characters and asks
    /// for a new PIN at its next use.
    Set {
        /// The fewest characters the new PIN may have.
        min_pin_length: u32,
    },
    /// The key does not support CTAP 2.1 configuration (setMinPINLength):
    /// nothing was changed.
    NotSupported,
}

/// Why the key did not take the PIN policy.
#[derive(Debug, Error)]
pub enum PinPolicyError {
    /// CTAP allows a minimum of 4 to 63 characters.
    #[error("a minimum PIN length must be 4 to 63 characters, not {min}")]
    MinLengthOutOfRange {
        /// The minimum asked for.
        min: u32,
    },
    /// No key is plugged in.
    #[error("no security key is plugged in")]
    NoKey,
    /// More than one key is plugged in.
    #[error("more than one security key is plugged in: leave only the one being set up")]
    SeveralKeys,
    /// The key does not speak FIDO2.
    #[error("this key does not speak FIDO2")]
    NotFido2,
    /// The key has no PIN to check.
    #[error("this key has no PIN yet")]
    NoPin,
    /// The key refused the PIN (it counts the try).
    #[error("the key refused the PIN")]
    WrongPin,
    /// Too many wrong PINs: the key's PIN is blocked.
    #[error("the key's PIN is blocked after too many wrong PINs")]
    PinBlocked,
    /// Too many wrong PINs for now.
    #[error("too many wrong PINs for now: take the key out and put it back")]
    ReinsertKey,
    /// The key already waits for its PIN to be changed, and takes no
    /// configuration until then.
    #[error(
        "the key already asks for a new PIN at its next use: nothing more can be set until then"
    )]
    PinChangePending,
    /// A key's minimum only goes up (until the key is reset).
    #[error(
        "the key already requires at least {current} characters, and its minimum cannot go down"
    )]
    BelowKeyMinimum {
        /// The key's minimum now.
        current: u32,
    },
    /// Anything else the key or its transport said.
    #[error("the security key failed ({0})")]
    Key(#[source] WebauthnCError),
}

/// Sets a minimum PIN length and "change PIN at first use" on the one
/// plugged-in key, whose PIN is `pin`.
pub async fn require_pin_change(
    source: &KeySource,
    pin: &str,
    min_pin_length: u32,
) -> Result<PinPolicyOutcome, PinPolicyError> {
    let min = min_pin_length;
    // Checked before the key is looked for: a minimum no PIN can meet, or
    // below CTAP's own, is a mistake, not something to round.
    if !usize::try_from(min).is_ok_and(|m| (PIN_MIN_CHARS..=PIN_MAX_BYTES).contains(&m)) {
        return Err(PinPolicyError::MinLengthOutOfRange { min });
    }
    // The same turn as the ceremonies: a registration still waiting for a
    // touch keeps the key until it gives up.
    let _turn = match source.turn() {
        Some(turn) => Some(turn.lock_owned().await),
        None => None,
    };
    let ui = OnePin::new(pin);
    match source {
        KeySource::Nowhere => {
            let _unused = (&ui, min);
            Err(PinPolicyError::NoKey)
        }
        #[cfg(any(feature = "usb", feature = "nfc"))]
        KeySource::Hardware => with_tokens(hardware_tokens().await, &ui, min).await,
        #[cfg(feature = "softtoken")]
        KeySource::Soft(token) => with_tokens(vec![token.same_key()], &ui, min).await,
    }
}

/// The keys on USB (and NFC readers); none when they cannot be listed, as
/// for a ceremony.
#[cfg(any(feature = "usb", feature = "nfc"))]
async fn hardware_tokens() -> Vec<webauthn_authenticator_rs::transport::AnyToken> {
    use webauthn_authenticator_rs::transport::{AnyTransport, Transport as _};
    let tokens = match AnyTransport::new().await {
        Ok(transport) => transport.tokens().await,
        Err(e) => Err(e),
    };
    tokens.unwrap_or_else(|e| {
        tracing::warn!(?e, "cannot list security keys");
        Vec::new()
    })
}

async fn with_tokens<T: Token>(
    mut tokens: Vec<T>,
    ui: &OnePin,
    min: u32,
) -> Result<PinPolicyOutcome, PinPolicyError> {
    let token = match (tokens.pop(), tokens.is_empty()) {
        (None, _) => return Err(PinPolicyError::NoKey),
        (Some(_), false) => return Err(PinPolicyError::SeveralKeys),
        (Some(token), true) => token,
    };
    let key = CtapAuthenticator::new(token, ui)
        .await
        .ok_or(PinPolicyError::NotFido2)?;
    let CtapAuthenticator::Fido21(mut key) = key else {
        return Ok(PinPolicyOutcome::NotSupported);
    };
    if !can_set_min_pin_length(key.get_info()) {
        return Ok(PinPolicyOutcome::NotSupported);
    }
    check_key(key.get_info(), min)?;
    key.set_min_pin_length(Some(min), vec![], Some(true))
        .await
        .map_err(|e| key_error(e, ui))?;
    Ok(PinPolicyOutcome::Set {
        min_pin_length: min,
    })
}

/// A 2.1 key may have authenticatorConfig without setMinPINLength (or the
/// reverse, which the library would refuse).
fn can_set_min_pin_length(info: &GetInfoResponse) -> bool {
    info.supports_config() && info.get_option("setMinPINLength") == Some(true)
}

/// What the key would refuse anyway, said in plain words before the PIN
/// is sent.
fn check_key(info: &GetInfoResponse, min: u32) -> Result<(), PinPolicyError> {
    if info.get_option("clientPin") != Some(true) {
        return Err(PinPolicyError::NoPin);
    }
    if info.force_pin_change {
        return Err(PinPolicyError::PinChangePending);
    }
    let current = info.get_min_pin_length();
    if usize::try_from(min).is_ok_and(|min| min < current) {
        let current = u32::try_from(current).unwrap_or(u32::MAX);
        return Err(PinPolicyError::BelowKeyMinimum { current });
    }
    Ok(())
}

fn key_error(error: WebauthnCError, ui: &OnePin) -> PinPolicyError {
    use CtapError as C;
    match error {
        WebauthnCError::Ctap(C::Ctap2PinInvalid) => PinPolicyError::WrongPin,
        WebauthnCError::Cancelled if ui.asked_again() => PinPolicyError::WrongPin,
        WebauthnCError::Ctap(C::Ctap2PinBlocked) => PinPolicyError::PinBlocked,
        WebauthnCError::Ctap(C::Ctap2PinAuthBlocked) => PinPolicyError::ReinsertKey,
        WebauthnCError::Ctap(C::Ctap2PinNotSet) | WebauthnCError::UserVerificationRequired => {
            PinPolicyError::NoPin
        }
        other => PinPolicyError::Key(other),
    }
}

/// Answers the client's PIN prompt with the key's PIN, once: the client
/// asks for a PIN token once per command, so a second prompt can only
/// follow a refused PIN, and answering it would cost the key another try.
struct OnePin {
    pin: Mutex<Option<Zeroizing<String>>>,
    asked_again: AtomicBool,
}

impl OnePin {
    fn new(pin: &str) -> Self {
        Self {
            pin: Mutex::new(Some(Zeroizing::new(pin.to_string()))),
            asked_again: AtomicBool::new(false),
        }
    }

    fn asked_again(&self) -> bool {
        self.asked_again.load(Ordering::Relaxed)
    }
}

/// Without the PIN.
impl std::fmt::Debug for OnePin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnePin").finish_non_exhaustive()
    }
}

impl UiCallback for OnePin {
    fn request_pin(&self) -> Option<String> {
        let pin = self.pin.lock().ok().and_then(|mut pin| pin.take());
        if pin.is_none() {
            self.asked_again.store(true, Ordering::Relaxed);
        }
        // The client takes a plain String: the one copy we cannot zero.
        pin.map(|pin| pin.to_string())
    }

    // authenticatorConfig needs no touch.
    fn request_touch(&self) {}
    fn processing(&self) {}
    fn fingerprint_enrollment_feedback(&self, _: u32, _: Option<EnrollSampleStatus>) {}
    fn cable_qr_code(&self, _: CableRequestType, _: String) {}
    fn dismiss_qr_code(&self) {}
    fn cable_status_update(&self, _: CableState) {}
}

// Two attributes, not `all(test, …)`: clippy allows unwrap only under a
// plain `cfg(test)`.
#[cfg(test)]
#[cfg(feature = "softtoken")]
mod tests {
    use super::*;
    use crate::config::WebAuthnSettings;
    use crate::fido::ceremony::{Ceremony, Phase};
    use crate::fido::soft::SoftCtapToken;
    use crate::fido::{RelyingParty, Url, Uuid};
    use std::sync::Arc;
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    use webauthn_authenticator_rs::ctap2::commands::{
        ClientPinRequest, ClientPinResponse, ClientPinSubCommand,
    };

    /// The PIN IT sets when it stages a key.
    const PIN: &str = "123456";

    /// Answers every PIN prompt with its PIN.
    #[derive(Debug)]
    struct Person(&'static str);

    impl UiCallback for Person {
        fn request_pin(&self) -> Option<String> {
            Some(self.0.to_string())
        }
        fn request_touch(&self) {}
        fn processing(&self) {}
        fn fingerprint_enrollment_feedback(&self, _: u32, _: Option<EnrollSampleStatus>) {}
        fn cable_qr_code(&self, _: CableRequestType, _: String) {}
        fn dismiss_qr_code(&self) {}
        fn cable_status_update(&self, _: CableState) {}
    }

    fn source(key: &SoftCtapToken) -> KeySource {
        KeySource::Soft(Arc::new(key.same_key()))
    }

    /// Sets `PIN` on `key`; returns the client that did it, which keeps
    /// the key's getInfo as it was then.
    async fn set_pin<'a>(
        key: &SoftCtapToken,
        person: &'a Person,
    ) -> CtapAuthenticator<'a, SoftCtapToken, Person> {
        let mut client = CtapAuthenticator::new(key.same_key(), person)
            .await
            .unwrap();
        client.set_new_pin(PIN).await.unwrap();
        client
    }

    /// The key's own count of PIN tries left.
    async fn pin_retries(key: &SoftCtapToken) -> Option<u32> {
        let ask = ClientPinRequest {
            pin_uv_protocol: Some(1),
            sub_command: ClientPinSubCommand::GetPinRetries,
            ..Default::default()
        };
        let answer: ClientPinResponse = key.same_key().transmit(ask, &Person(PIN)).await.unwrap();
        answer.pin_retries
    }

    fn relying_party() -> RelyingParty {
        RelyingParty::new(&WebAuthnSettings {
            rp_id: "example.com".into(),
            rp_name: "Example Ltd".into(),
            origin: "https://kiosk.example.com".into(),
            attestation_roots: None,
        })
        .unwrap()
    }

    fn origin() -> Url {
        Url::parse("https://kiosk.example.com").unwrap()
    }

    /// A registration through the client alone (no ceremony), as `person`.
    async fn register(key: &SoftCtapToken, person: &Person) -> Result<(), WebauthnCError> {
        let rp = relying_party();
        let (challenge, _) = rp
            .start_registration(Uuid::new_v4(), "ada@example.com", "Ada", &[], None)
            .unwrap();
        let client = CtapAuthenticator::new(key.same_key(), person)
            .await
            .unwrap();
        WebauthnAuthenticator::new(client)
            .do_registration(origin(), challenge)
            .map(|_| ())
    }

    #[tokio::test]
    async fn a_2_1_key_asks_for_a_new_pin_of_the_minimum_length() {
        let (key, _) = SoftCtapToken::generate_ctap21().unwrap();
        let person = Person(PIN);
        let mut earlier = set_pin(&key, &person).await;

        let outcome = require_pin_change(&source(&key), PIN, 8).await.unwrap();
        assert_eq!(outcome, PinPolicyOutcome::Set { min_pin_length: 8 });
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (8, true));
        let client = CtapAuthenticator::new(key.same_key(), &person)
            .await
            .unwrap();
        let info = client.get_info();
        assert_eq!(
            (info.min_pin_length, info.force_pin_change),
            (Some(8), true)
        );
        drop(client);

        // No PIN token for a registration until the PIN is changed.
        assert_eq!(
            register(&key, &person).await,
            Err(WebauthnCError::Ctap(CtapError::Ctap2PinPolicyViolation))
        );
        // `earlier` still has the minimum of 4 in its getInfo, so it sends
        // a PIN of 7, and the key itself refuses it. (A client that read
        // the minimum of 8 would refuse even the old PIN, of 6, itself.)
        assert_eq!(
            earlier.change_pin(PIN, "1234567").await,
            Err(WebauthnCError::Ctap(CtapError::Ctap2PinPolicyViolation))
        );
        assert!(key.must_change_pin());
        earlier.change_pin(PIN, "24681357").await.unwrap();
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (8, false));
        register(&key, &Person("24681357")).await.unwrap();
    }

    #[tokio::test]
    async fn a_2_0_key_is_not_supported_and_left_as_it_was() {
        let (key, _) = SoftCtapToken::generate().unwrap();
        let person = Person(PIN);
        set_pin(&key, &person).await;

        let outcome = require_pin_change(&source(&key), PIN, 8).await.unwrap();
        assert_eq!(outcome, PinPolicyOutcome::NotSupported);
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (4, false));
        let client = CtapAuthenticator::new(key.same_key(), &person)
            .await
            .unwrap();
        assert!(matches!(client, CtapAuthenticator::Fido20(_)));
        assert_eq!(client.get_info().min_pin_length, None);
        assert!(!client.get_info().force_pin_change);
        drop(client);
        assert_eq!(pin_retries(&key).await, Some(8));
        register(&key, &person).await.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_pin_is_said_and_costs_one_try() {
        let (key, _) = SoftCtapToken::generate_ctap21().unwrap();
        set_pin(&key, &Person(PIN)).await;

        let refused = require_pin_change(&source(&key), "999999", 8).await;
        assert!(
            matches!(refused, Err(PinPolicyError::WrongPin)),
            "{refused:?}"
        );
        assert_eq!(pin_retries(&key).await, Some(7));
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (4, false));
        // The right PIN then works, and gives the try back.
        let outcome = require_pin_change(&source(&key), PIN, 8).await.unwrap();
        assert_eq!(outcome, PinPolicyOutcome::Set { min_pin_length: 8 });
        assert_eq!(pin_retries(&key).await, Some(8));
    }

    #[tokio::test]
    async fn a_minimum_outside_ctap_s_range_is_refused_before_any_key_is_asked() {
        let (key, _) = SoftCtapToken::generate_ctap21().unwrap();
        set_pin(&key, &Person(PIN)).await;
        for min in [0, 3, 64, 1000] {
            // A wrong PIN: had it reached the key, it would cost a try.
            let refused = require_pin_change(&source(&key), "999999", min).await;
            assert!(
                matches!(refused, Err(PinPolicyError::MinLengthOutOfRange { min: m }) if m == min),
                "{refused:?}"
            );
            let nowhere = require_pin_change(&KeySource::Nowhere, PIN, min).await;
            assert!(matches!(
                nowhere,
                Err(PinPolicyError::MinLengthOutOfRange { .. })
            ));
        }
        assert_eq!(pin_retries(&key).await, Some(8));
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (4, false));
        // 4 and 63 are CTAP's own bounds.
        let outcome = require_pin_change(&source(&key), PIN, 4).await.unwrap();
        assert_eq!(outcome, PinPolicyOutcome::Set { min_pin_length: 4 });
        // The PIN is long enough, and must change all the same.
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (4, true));
        let (long, _) = SoftCtapToken::generate_ctap21().unwrap();
        set_pin(&long, &Person(PIN)).await;
        let outcome = require_pin_change(&source(&long), PIN, 63).await.unwrap();
        assert_eq!(outcome, PinPolicyOutcome::Set { min_pin_length: 63 });
    }

    #[tokio::test]
    async fn the_key_s_minimum_only_goes_up_and_a_pending_change_is_said() {
        let (key, _) = SoftCtapToken::generate_ctap21().unwrap();
        let person = Person(PIN);
        let CtapAuthenticator::Fido21(mut client) = set_pin(&key, &person).await else {
            panic!("the key speaks CTAP 2.1");
        };
        // Without forceChangePin, and PIN long enough: nothing to change.
        client
            .set_min_pin_length(Some(6), vec![], None)
            .await
            .unwrap();
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (6, false));
        assert_eq!(
            client.set_min_pin_length(Some(5), vec![], None).await,
            Err(WebauthnCError::Ctap(CtapError::Ctap2PinPolicyViolation))
        );
        let lower = require_pin_change(&source(&key), PIN, 5).await;
        assert!(
            matches!(lower, Err(PinPolicyError::BelowKeyMinimum { current: 6 })),
            "{lower:?}"
        );
        // A minimum above the PIN's length forces a change by itself.
        client
            .set_min_pin_length(Some(7), vec![], None)
            .await
            .unwrap();
        assert_eq!((key.min_pin_length(), key.must_change_pin()), (7, true));
        let pending = require_pin_change(&source(&key), PIN, 8).await;
        assert!(
            matches!(pending, Err(PinPolicyError::PinChangePending)),
            "{pending:?}"
        );
        assert_eq!(key.min_pin_length(), 7);
    }

    #[tokio::test]
    async fn a_key_without_a_pin_is_said() {
        let (key, _) = SoftCtapToken::generate_ctap21().unwrap();
        let refused = require_pin_change(&source(&key), PIN, 8).await;
        assert!(matches!(refused, Err(PinPolicyError::NoPin)), "{refused:?}");
        assert_eq!(key.min_pin_length(), 4);
    }

    #[tokio::test]
    async fn no_key_is_said() {
        let refused = require_pin_change(&KeySource::Nowhere, PIN, 8).await;
        assert!(matches!(refused, Err(PinPolicyError::NoKey)), "{refused:?}");
    }

    #[test]
    fn the_outcome_is_serialised_for_the_ui() {
        let set = serde_json::to_value(PinPolicyOutcome::Set { min_pin_length: 8 }).unwrap();
        assert_eq!(
            set,
            serde_json::json!({"outcome": "set", "min_pin_length": 8})
        );
        let not = serde_json::to_value(PinPolicyOutcome::NotSupported).unwrap();
        assert_eq!(not, serde_json::json!({"outcome": "not_supported"}));
    }

    /// Staging may run on any of the runtime's threads.
    #[test]
    fn the_conversation_can_move_between_threads() {
        fn is_send<T: Send>(_: &T) {}
        let source = KeySource::Nowhere;
        is_send(&require_pin_change(&source, PIN, 8));
    }

    /// Polls a ceremony on the worker thread it runs on.
    #[allow(
        clippy::disallowed_methods,
        reason = "waiting for the ceremony's thread"
    )]
    fn wait_for(ceremony: &Ceremony, wanted: impl Fn(&Phase) -> bool) {
        for _ in 0..500 {
            if wanted(&ceremony.phase()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the key never got there: {:?}", ceremony.phase());
    }

    /// Types `PIN` (twice when the key has none yet) until the key answers.
    fn answer_with_pin(ceremony: &Ceremony) {
        wait_for(ceremony, |p| {
            matches!(p, Phase::SetPin | Phase::EnterPin { .. })
        });
        if ceremony.phase() == Phase::SetPin {
            ceremony.give_pin(PIN, Some(PIN)).unwrap();
            wait_for(ceremony, |p| matches!(p, Phase::EnterPin { .. }));
        }
        ceremony.give_pin(PIN, None).unwrap();
        wait_for(ceremony, |p| *p == Phase::Answered);
    }

    #[tokio::test]
    async fn a_2_1_key_registers_and_signs_in_through_the_ceremonies_then_is_staged() {
        let (key, _) = SoftCtapToken::generate_ctap21().unwrap();
        let source = source(&key);
        let rp = relying_party();
        let person = (Uuid::new_v4(), "ada@example.com", "Ada");
        let (challenge, state) = rp
            .start_registration(person.0, person.1, person.2, &[], None)
            .unwrap();
        let registration = Ceremony::register(&source, origin(), challenge);
        answer_with_pin(&registration);
        let answer = registration.take_registration().unwrap();
        let new_key = rp.finish_registration(&answer, state).unwrap();

        let (challenge, state) = rp.start_authentication(&[new_key.passkey]).unwrap();
        let sign_in = Ceremony::authenticate(&source, origin(), challenge);
        answer_with_pin(&sign_in);
        let assertion = sign_in.take_assertion().unwrap();
        let result = rp.finish_authentication(&assertion, state).unwrap();
        assert!(result.user_verified());

        let outcome = require_pin_change(&source, PIN, 8).await.unwrap();
        assert_eq!(outcome, PinPolicyOutcome::Set { min_pin_length: 8 });
        assert!(key.must_change_pin());
    }
}
