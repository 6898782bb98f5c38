//! One conversation with a security key: the kiosk, as WebAuthn client,
//! asks the key (over CTAP2) to register or to sign in. It runs on a worker
//! thread because the key takes its time (the person types the PIN, touches
//! the key); the kiosk reads its phase on each tick and passes the PIN in.
//! Dropping the ceremony ends it: the worker's next wait gives up.
//!
//! A command the key is already working on (waiting for a touch) is not
//! cancelled: the key answers a CTAPHID_CANCEL, and that answer must be
//! read, but webauthn-authenticator-rs's USB token reads only after it
//! sends. Left unread, it would reach the next conversation's INIT, which
//! then fails (or panics on a stale nonce). So the key times out by itself
//! (about 30 s) and the next ceremony waits its turn.

use super::{CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential};
use super::{RequestChallengeResponse, Url};
use serde::Serialize;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::ctap2::commands::ClientPinResponse;
use webauthn_authenticator_rs::ctap2::{CBORResponse, CtapAuthenticator};
use webauthn_authenticator_rs::error::{CtapError, WebauthnCError};
use webauthn_authenticator_rs::transport::Token;
use webauthn_authenticator_rs::types::{CableRequestType, CableState, EnrollSampleStatus};
use webauthn_authenticator_rs::ui::UiCallback;
use webauthn_rs_proto::AuthenticatorTransport;
use zeroize::Zeroizing;

/// How long the key waits for a PIN before giving up.
const PIN_WAIT: Duration = Duration::from_secs(120);

/// The PIN rules of CTAP2: 4 to 63 bytes.
pub const PIN_MIN_CHARS: usize = 4;
/// See [`PIN_MIN_CHARS`].
pub const PIN_MAX_BYTES: usize = 63;

/// Why a new PIN was not passed to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum PinProblem {
    /// The two PINs typed differ.
    PinsDiffer,
    /// The PIN breaks CTAP's rules.
    PinRules {
        /// The fewest characters.
        min: usize,
    },
    /// No PIN is asked for now: the key is busy, or this PIN was already
    /// sent (a second press of Enter). It is dropped, so that it cannot
    /// answer a later prompt and cost a try.
    NotAsked,
}

/// Checks a new PIN typed twice against CTAP's rules.
fn check_new_pin(pin: &str, again: Option<&str>) -> Result<(), PinProblem> {
    if again != Some(pin) {
        Err(PinProblem::PinsDiffer)
    } else {
        check_pin_length(pin)
    }
}

fn check_pin_length(pin: &str) -> Result<(), PinProblem> {
    if pin.chars().count() < PIN_MIN_CHARS || pin.len() > PIN_MAX_BYTES {
        Err(PinProblem::PinRules { min: PIN_MIN_CHARS })
    } else {
        Ok(())
    }
}

/// Where the kiosk looks for keys.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// No key transport in this build.
    Nowhere,
    /// Keys plugged in over USB, and on NFC readers when built with `nfc`.
    #[cfg(any(feature = "usb", feature = "nfc"))]
    Hardware,
    /// The software key (tests only).
    #[cfg(feature = "softtoken")]
    Soft(Arc<super::soft::SoftCtapToken>),
}

impl KeySource {
    /// The keys this build reaches: USB keys (and NFC with `nfc`). With
    /// the `softtoken` feature (tests only) and `soft_key` given, one
    /// software key instead: a CTAP 2.1 key if it says `2.1`, none plugged
    /// in if it says `none`, else a 2.0 one. The binary decides whether to
    /// hand `soft_key` on at all.
    pub fn of_build(soft_key: Option<&str>) -> Self {
        #[cfg(feature = "softtoken")]
        if let Some(version) = soft_key {
            use super::soft::SoftCtapToken;
            if version == "none" {
                return Self::Nowhere;
            }
            let made = if version == "2.1" {
                SoftCtapToken::generate_ctap21()
            } else {
                SoftCtapToken::generate()
            };
            return match made {
                Ok((key, _)) => Self::Soft(Arc::new(key)),
                Err(e) => {
                    tracing::error!(?e, "cannot make the software key");
                    Self::Nowhere
                }
            };
        }
        let _ = soft_key;
        #[cfg(any(feature = "usb", feature = "nfc"))]
        return Self::Hardware;
        #[cfg(not(any(feature = "usb", feature = "nfc")))]
        Self::Nowhere
    }

    /// One conversation at a time with the keys of a source (the kiosk's
    /// and the admin window's alike): a ceremony dropped while its key waits
    /// for a touch keeps the key until the key gives up, and the next one
    /// waits for it rather than fail.
    pub(crate) fn turn(&self) -> Option<Arc<tokio::sync::Mutex<()>>> {
        match self {
            Self::Nowhere => None,
            #[cfg(any(feature = "usb", feature = "nfc"))]
            Self::Hardware => Some(Arc::clone(&HARDWARE_TURN)),
            #[cfg(feature = "softtoken")]
            Self::Soft(token) => Some(token.turn()),
        }
    }
}

#[cfg(any(feature = "usb", feature = "nfc"))]
static HARDWARE_TURN: std::sync::LazyLock<Arc<tokio::sync::Mutex<()>>> =
    std::sync::LazyLock::new(Arc::default);

/// Where a ceremony is, as the person needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Looking for a key.
    Searching,
    /// No key is plugged in.
    NoKey,
    /// More than one key is plugged in.
    SeveralKeys,
    /// The key does not speak FIDO2.
    NotSupported,
    /// The key has no PIN yet: choose one.
    SetPin,
    /// Type the key's PIN.
    EnterPin {
        /// The last PIN was wrong.
        wrong: bool,
        /// Wrong PINs the key still takes before it blocks, as it reports.
        tries_left: Option<u32>,
    },
    /// A PIN is on its way to the key.
    Checking,
    /// Too many wrong PINs: the key's PIN is blocked.
    PinBlocked,
    /// Too many wrong PINs for now: take the key out and put it back.
    ReinsertKey,
    /// Touch the key.
    Touch,
    /// The key already holds a credential for this person.
    AlreadyRegistered,
    /// The key holds no credential for this person.
    NotRegistered,
    /// Nobody touched the key, or no PIN came, in time.
    TimedOut,
    /// Something else went wrong (details in the log).
    Failed,
    /// The key answered.
    Answered,
}

impl Phase {
    /// Whether the ceremony is over without an answer (the person may try
    /// again).
    pub fn failed(&self) -> bool {
        matches!(
            self,
            Self::NoKey
                | Self::SeveralKeys
                | Self::NotSupported
                | Self::PinBlocked
                | Self::ReinsertKey
                | Self::AlreadyRegistered
                | Self::NotRegistered
                | Self::TimedOut
                | Self::Failed
        )
    }
}

/// What the key answered.
#[derive(Debug)]
enum Answer {
    Registration(Box<RegisterPublicKeyCredential>),
    Assertion(Box<PublicKeyCredential>),
}

#[derive(Debug)]
struct Shared {
    phase: Phase,
    answer: Option<Answer>,
    /// What the key last said about its PIN tries (see [`Watched`]).
    pin_retries: Option<u32>,
    /// The key refused the last PIN; said at the next prompt.
    last_pin_wrong: bool,
    /// The accounts (user handles) the key's last assertion named: the
    /// one it answered with, then those of its other passkeys for the
    /// relying party (getNextAssertion).
    user_handles: Vec<Vec<u8>>,
}

/// A running conversation with a key.
#[derive(Debug)]
pub struct Ceremony {
    shared: Arc<Mutex<Shared>>,
    pins: Sender<Zeroizing<String>>,
}

/// What the worker asks of the key.
enum Request {
    Register(CreationChallengeResponse),
    Authenticate(RequestChallengeResponse),
}

impl Ceremony {
    /// Asks a key to register (see `RelyingParty::start_registration`).
    pub fn register(source: &KeySource, origin: Url, challenge: CreationChallengeResponse) -> Self {
        Self::start(source, origin, Request::Register(challenge))
    }

    /// Asks a key to sign in (see `RelyingParty::start_authentication`).
    pub fn authenticate(
        source: &KeySource,
        origin: Url,
        challenge: RequestChallengeResponse,
    ) -> Self {
        Self::start(source, origin, Request::Authenticate(challenge))
    }

    fn start(source: &KeySource, origin: Url, request: Request) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            phase: Phase::Searching,
            answer: None,
            pin_retries: None,
            last_pin_wrong: false,
            user_handles: Vec::new(),
        }));
        let (pins, pin_queue) = channel();
        let prompts = Prompts {
            shared: Arc::clone(&shared),
            pins: Mutex::new(pin_queue),
        };
        let source = source.clone();
        // The key's client blocks, so it gets a thread of its own; USB I/O
        // needs the tokio runtime around it.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                std::thread::spawn(move || {
                    let phase = runtime.block_on(run(source, origin, request, &prompts));
                    prompts.set(phase);
                });
            }
            Err(e) => {
                tracing::error!(%e, "a key ceremony needs the tokio runtime");
                prompts.set(Phase::Failed);
            }
        }
        Self { shared, pins }
    }

    /// Where the ceremony is.
    pub fn phase(&self) -> Phase {
        self.shared
            .lock()
            .map(|s| s.phase.clone())
            .unwrap_or(Phase::Failed)
    }

    /// Passes the key's PIN on, or (when the key has none) a new one typed
    /// twice; only while the key asks for it, once.
    pub fn give_pin(&self, pin: &str, again: Option<&str>) -> Result<(), PinProblem> {
        // Checked and sent under the lock, so that the worker cannot open a
        // new prompt in between: a PIN always answers the prompt it saw.
        let mut shared = self.shared.lock().map_err(|_| PinProblem::NotAsked)?;
        match shared.phase {
            Phase::SetPin => check_new_pin(pin, again)?,
            // A PIN that cannot be right would still cost a try.
            Phase::EnterPin { .. } => check_pin_length(pin)?,
            _ => return Err(PinProblem::NotAsked),
        }
        // The worker may have finished; then the PIN is not needed.
        let _ = self.pins.send(Zeroizing::new(pin.to_string()));
        shared.phase = Phase::Checking;
        Ok(())
    }

    /// The key's answer to a registration, once.
    pub fn take_registration(&self) -> Option<RegisterPublicKeyCredential> {
        match self.take()? {
            Answer::Registration(answer) => Some(*answer),
            Answer::Assertion(_) => None,
        }
    }

    /// The key's answer to a sign-in, once.
    pub fn take_assertion(&self) -> Option<PublicKeyCredential> {
        match self.take()? {
            Answer::Assertion(answer) => Some(*answer),
            Answer::Registration(_) => None,
        }
    }

    /// Every account the key's passkeys for the relying party name, when
    /// it signed in without a list of credentials: the answer's first.
    pub fn accounts_named(&self) -> Vec<Vec<u8>> {
        self.shared
            .lock()
            .map(|s| s.user_handles.clone())
            .unwrap_or_default()
    }

    fn take(&self) -> Option<Answer> {
        self.shared.lock().ok()?.answer.take()
    }
}

/// The key's prompts, passed on to the kiosk.
#[derive(Debug)]
struct Prompts {
    shared: Arc<Mutex<Shared>>,
    pins: Mutex<Receiver<Zeroizing<String>>>,
}

impl Prompts {
    fn pin_retries(&self) -> Option<u32> {
        self.shared.lock().ok().and_then(|s| s.pin_retries)
    }

    fn pin_was_wrong(&self) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.last_pin_wrong = true;
            shared.phase = Phase::Checking;
        }
    }

    fn set(&self, phase: Phase) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.phase = phase;
        }
    }

    /// The assertion with the user handle the key named, which the client
    /// leaves out.
    fn with_user_handle(&self, mut assertion: PublicKeyCredential) -> PublicKeyCredential {
        let handle = self
            .shared
            .lock()
            .ok()
            .and_then(|s| s.user_handles.first().cloned());
        if assertion.response.user_handle.is_none() {
            assertion.response.user_handle = handle.map(Into::into);
        }
        assertion
    }

    fn answer(&self, answer: Answer) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.answer = Some(answer);
            shared.phase = Phase::Answered;
        }
    }

    /// Waits for the person's PIN; `None` when it does not come in time or
    /// the ceremony was dropped.
    fn wait_for_pin(&self, phase: Phase) -> Option<Zeroizing<String>> {
        let pins = self.pins.lock().ok()?;
        {
            let mut shared = self.shared.lock().ok()?;
            // Whatever is queued was sent for an earlier prompt.
            while pins.try_recv().is_ok() {}
            shared.phase = phase;
        }
        // Timed out, or the ceremony was dropped.
        pins.recv_timeout(PIN_WAIT).ok()
    }
}

impl UiCallback for Prompts {
    fn request_pin(&self) -> Option<String> {
        let (wrong, tries_left) = match self.shared.lock() {
            Ok(mut s) => (std::mem::take(&mut s.last_pin_wrong), s.pin_retries),
            Err(_) => (false, None),
        };
        if tries_left == Some(0) {
            // The client asks anyway; a PIN now would only be refused. The
            // worker ends on PinBlocked (see `with_tokens`).
            return None;
        }
        // The client takes a plain String: the one copy we cannot zero.
        self.wait_for_pin(Phase::EnterPin { wrong, tries_left })
            .map(|pin| pin.to_string())
    }

    fn request_touch(&self) {
        self.set(Phase::Touch);
    }

    fn processing(&self) {}
    fn fingerprint_enrollment_feedback(&self, _: u32, _: Option<EnrollSampleStatus>) {}
    fn cable_qr_code(&self, _: CableRequestType, _: String) {}
    fn dismiss_qr_code(&self) {}
    fn cable_status_update(&self, _: CableState) {}
}

/// The whole conversation; returns the phase it ends in.
async fn run(source: KeySource, origin: Url, request: Request, prompts: &Prompts) -> Phase {
    let _turn = match source.turn() {
        Some(turn) => Some(turn.lock_owned().await),
        None => None,
    };
    // Dropped while it waited: the kiosk holds the other handle on `shared`.
    if Arc::strong_count(&prompts.shared) == 1 {
        return Phase::TimedOut;
    }
    match source {
        KeySource::Nowhere => {
            let _unused = (origin, request, prompts);
            Phase::NoKey
        }
        #[cfg(any(feature = "usb", feature = "nfc"))]
        KeySource::Hardware => {
            use webauthn_authenticator_rs::transport::{AnyTransport, Transport as _};
            let tokens = match AnyTransport::new().await {
                Ok(transport) => transport.tokens().await,
                Err(e) => Err(e),
            };
            match tokens {
                Ok(tokens) => with_tokens(tokens, origin, request, prompts).await,
                Err(e) => {
                    tracing::warn!(?e, "cannot list security keys");
                    Phase::NoKey
                }
            }
        }
        #[cfg(feature = "softtoken")]
        KeySource::Soft(token) => {
            with_tokens(vec![token.same_key()], origin, request, prompts).await
        }
    }
}

#[cfg_attr(
    not(any(feature = "usb", feature = "nfc", feature = "softtoken")),
    allow(dead_code, reason = "no key transport in this build")
)]
async fn with_tokens<T: Token>(
    mut tokens: Vec<T>,
    origin: Url,
    request: Request,
    prompts: &Prompts,
) -> Phase {
    let token = match (tokens.pop(), tokens.is_empty()) {
        (None, _) => return Phase::NoKey,
        (Some(_), false) => return Phase::SeveralKeys,
        (Some(token), true) => token,
    };
    let token = Watched {
        inner: token,
        shared: Arc::clone(&prompts.shared),
        resident: matches!(&request, Request::Register(c) if wants_resident_key(c)),
    };
    let Some(mut key) = CtapAuthenticator::new(token, prompts).await else {
        return Phase::NotSupported;
    };
    if key.get_info().get_option("clientPin") != Some(true) {
        let Some(pin) = prompts.wait_for_pin(Phase::SetPin) else {
            return Phase::TimedOut;
        };
        if let Err(e) = key.set_new_pin(&pin).await {
            return failure(e);
        }
    }
    let mut client = WebauthnAuthenticator::new(key);
    loop {
        let outcome = match &request {
            Request::Register(challenge) => client
                .do_registration(origin.clone(), challenge.clone())
                .map(|a| Answer::Registration(Box::new(super::with_credential_id(a)))),
            Request::Authenticate(challenge) => client
                .do_authentication(origin.clone(), challenge.clone())
                .map(|a| Answer::Assertion(Box::new(prompts.with_user_handle(a)))),
        };
        match outcome {
            Ok(answer) => {
                prompts.answer(answer);
                return Phase::Answered;
            }
            // Ask again; the key counts the tries.
            // Until the key is asked again, no prompt is open.
            Err(WebauthnCError::Ctap(CtapError::Ctap2PinInvalid)) => prompts.pin_was_wrong(),
            Err(WebauthnCError::Cancelled) if prompts.pin_retries() == Some(0) => {
                return Phase::PinBlocked;
            }
            Err(e) => return failure(e),
        }
    }
}

fn failure(error: WebauthnCError) -> Phase {
    use CtapError as C;
    match error {
        WebauthnCError::Ctap(C::Ctap2PinBlocked) => Phase::PinBlocked,
        WebauthnCError::Ctap(C::Ctap2PinAuthBlocked) => Phase::ReinsertKey,
        WebauthnCError::Ctap(C::Ctap2CredentialExcluded) => Phase::AlreadyRegistered,
        WebauthnCError::Ctap(C::Ctap2NoCredentials) => Phase::NotRegistered,
        WebauthnCError::Ctap(
            C::Ctap2UserActionTimeout | C::Ctap2ActionTimeout | C::Ctap2OperationDenied,
        )
        | WebauthnCError::Cancelled => Phase::TimedOut,
        other => {
            tracing::warn!(error = ?other, "the security key failed");
            Phase::Failed
        }
    }
}

/// The CTAP2 command byte of authenticatorClientPIN.
const CLIENT_PIN: u8 = 0x06;
/// The CTAP2 command byte of authenticatorMakeCredential.
const MAKE_CREDENTIAL: u8 = 0x01;
/// The CTAP2 command byte of authenticatorGetAssertion.
const GET_ASSERTION: u8 = 0x02;
/// The CTAP2 command byte of authenticatorGetNextAssertion.
const GET_NEXT_ASSERTION: u8 = 0x08;

/// Whether the relying party asks for a passkey the key keeps
/// (discoverable): Entra does, so that its sign-in finds it without a
/// user name.
fn wants_resident_key(challenge: &CreationChallengeResponse) -> bool {
    use webauthn_rs_proto::ResidentKeyRequirement as R;
    challenge
        .public_key
        .authenticator_selection
        .as_ref()
        .is_some_and(|s| s.require_resident_key || s.resident_key == Some(R::Required))
}

/// makeCredential with the `rk` option set. The client leaves it out
/// whatever the relying party asked, so a key would make a credential it
/// does not keep, which a sign-in without a user name cannot find. The
/// PIN's proof covers the client data hash only, so it still holds.
fn with_resident_key(cbor: &[u8]) -> Option<Vec<u8>> {
    use serde_cbor_2::Value;
    let (command, body) = cbor.split_first()?;
    let Value::Map(mut request) = serde_cbor_2::from_slice(body).ok()? else {
        return None;
    };
    let options = request
        .entry(Value::Integer(7))
        .or_insert_with(|| Value::Map(Default::default()));
    let Value::Map(options) = options else {
        return None;
    };
    options.insert(Value::Text("rk".into()), Value::Bool(true));
    let mut rewritten = vec![*command];
    rewritten.extend(serde_cbor_2::to_vec(&Value::Map(request)).ok()?);
    Some(rewritten)
}

/// The user handle (`user.id`, field 4) of a getAssertion answer, which
/// the client parses but drops, and how many passkeys for the relying
/// party the key holds (`numberOfCredentials`, field 5; one if absent).
fn user_handle_of(answer: &[u8]) -> (Option<Vec<u8>>, u64) {
    use serde_cbor_2::Value;
    let Ok(Value::Map(answer)) = serde_cbor_2::from_slice(answer) else {
        return (None, 1);
    };
    let count = match answer.get(&Value::Integer(5)) {
        Some(Value::Integer(n)) => u64::try_from(*n).unwrap_or(1),
        _ => 1,
    };
    let handle = match answer.get(&Value::Integer(4)) {
        Some(Value::Map(user)) => match user.get(&Value::Text("id".into())) {
            Some(Value::Bytes(id)) => Some(id.clone()),
            _ => None,
        },
        _ => None,
    };
    (handle, count)
}

/// A key, watched: the client asks the key how many PIN tries are left
/// before each PIN prompt but keeps the answer to itself, so the kiosk reads
/// it on the way past and can tell the person.
#[derive(Debug)]
struct Watched<T> {
    inner: T,
    shared: Arc<Mutex<Shared>>,
    /// Make credentials the key keeps (see [`with_resident_key`]).
    resident: bool,
}

impl<T: Token> Watched<T> {
    /// The accounts a getAssertion `answer` names: its own, then, when the
    /// key holds several passkeys for the relying party, each next one's
    /// (the key answers getNextAssertion without another touch). A key
    /// that refuses the next is taken at what it said.
    async fn accounts_of<U: UiCallback>(&mut self, answer: &[u8], ui: &U) -> Vec<Vec<u8>> {
        let (first, count) = user_handle_of(answer);
        let mut handles: Vec<Vec<u8>> = first.into_iter().collect();
        // CTAP caps what a key keeps; a count beyond that is not believed.
        for _ in 1..count.min(64) {
            let Ok(next) = self.inner.transmit_raw(&[GET_NEXT_ASSERTION], ui).await else {
                break;
            };
            handles.extend(user_handle_of(&next).0);
        }
        handles
    }
}

#[async_trait::async_trait]
impl<T: Token> Token for Watched<T> {
    type Id = T::Id;

    fn has_button(&self) -> bool {
        self.inner.has_button()
    }

    fn get_transport(&self) -> AuthenticatorTransport {
        self.inner.get_transport()
    }

    async fn transmit_raw<U>(&mut self, cbor: &[u8], ui: &U) -> Result<Vec<u8>, WebauthnCError>
    where
        U: UiCallback,
    {
        let rewritten = match cbor.first() {
            Some(&MAKE_CREDENTIAL) if self.resident => with_resident_key(cbor),
            _ => None,
        };
        let answer = self
            .inner
            .transmit_raw(rewritten.as_deref().unwrap_or(cbor), ui)
            .await?;
        if cbor.first() == Some(&GET_ASSERTION) {
            let handles = self.accounts_of(&answer, ui).await;
            if let Ok(mut shared) = self.shared.lock() {
                shared.user_handles = handles;
            }
        }
        if cbor.first() == Some(&CLIENT_PIN) {
            // Only the getPinRetries answer carries pinRetries.
            let retries = <ClientPinResponse as CBORResponse>::try_from(answer.as_slice())
                .ok()
                .and_then(|r| r.pin_retries);
            if let (Some(retries), Ok(mut shared)) = (retries, self.shared.lock()) {
                shared.pin_retries = Some(retries);
            }
        }
        Ok(answer)
    }

    async fn cancel(&mut self) -> Result<(), WebauthnCError> {
        self.inner.cancel().await
    }

    async fn init(&mut self) -> Result<(), WebauthnCError> {
        self.inner.init().await
    }

    async fn close(&mut self) -> Result<(), WebauthnCError> {
        self.inner.close().await
    }
}
