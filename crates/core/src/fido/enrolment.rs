//! Registering a key outside a kiosk session: IT staging a key for someone
//! (the admin pane). The same conversation as at the kiosk: plug in, set or
//! type the PIN, touch; then the answer is checked and the key named.

use super::ceremony::{Ceremony, KeySource, Phase, PinProblem};
use super::{
    CreationChallengeResponse, KeyError, NewKey, Passkey, Registration, RelyingParty, Uuid,
};
use std::collections::BTreeSet;

/// A key being registered for someone.
#[derive(Debug)]
pub struct Enrolment {
    challenge: CreationChallengeResponse,
    registration: Option<Registration>,
    ceremony: Ceremony,
    source: KeySource,
}

impl Enrolment {
    /// Starts talking to a key for the person `handle`; their `registered`
    /// keys are excluded, and only `allowed` models accepted (when set).
    pub fn start(
        rp: &RelyingParty,
        source: &KeySource,
        (handle, email, name): (Uuid, &str, &str),
        registered: &[Passkey],
        allowed: Option<&BTreeSet<Uuid>>,
    ) -> Result<Self, KeyError> {
        let (challenge, registration) =
            rp.start_registration(handle, email, name, registered, allowed)?;
        let ceremony = Ceremony::register(source, rp.origin().clone(), challenge.clone());
        Ok(Self {
            challenge,
            registration: Some(registration),
            ceremony,
            source: source.clone(),
        })
    }

    /// Where the conversation with the key is.
    pub fn phase(&self) -> Phase {
        self.ceremony.phase()
    }

    /// The key's PIN, or (when the key has none) a new one typed twice.
    pub fn give_pin(&self, pin: &str, again: Option<&str>) -> Result<(), PinProblem> {
        self.ceremony.give_pin(pin, again)
    }

    /// Asks the key again after it failed (none plugged in, timeout…).
    pub fn retry(&mut self, rp: &RelyingParty) -> bool {
        let again = self.phase().failed() && self.registration.is_some();
        if again {
            self.ceremony =
                Ceremony::register(&self.source, rp.origin().clone(), self.challenge.clone());
        }
        again
    }

    /// The checked key, once the key has answered (only once).
    pub fn finish(&mut self, rp: &RelyingParty) -> Option<Result<NewKey, KeyError>> {
        if self.phase() != Phase::Answered {
            return None;
        }
        let answer = self.ceremony.take_registration()?;
        let registration = self.registration.take()?;
        Some(rp.finish_registration(&answer, registration))
    }
}
