//! The kiosk flow: a state machine the app drives and the UI renders.
//!
//! `Welcome → Email → Pass → Choose → {Authenticator: Setup → Test} → Done`,
//! plus `SecurityInfo` (see and remove methods, add another). Each step
//! holds exactly the data it needs; secrets and the signed-in session never
//! leave the backend: the UI receives a [`Screen`], a serialisable
//! projection with a `kind` to render and, when the person made a mistake,
//! a [`Notice`] with a stable code and the parameters a message needs.
//! Mistakes are states, not errors: a wrong code keeps the same QR code.
//! Security keys (`KeySetup → KeyName → KeyTest`) are in [`keys`].

mod keys;
mod tenant;

pub use tenant::{BACK_QUERY, CANCEL_QUERY, SECURITY_PAGE_IDLE};

use crate::directory::methods::TotpCheck;
use crate::directory::{Directory, DirectoryError};
use crate::email::Email;
use crate::fido::ceremony::{Ceremony, KeySource, Phase};
use crate::fido::{
    Authentication, CreationChallengeResponse, NewKey, RegisterPublicKeyCredential, Registration,
};
use crate::fido::{RelyingParty, RequestChallengeResponse, Url};
use crate::redeem::{KioskSession, RedeemError};
use crate::tenant::{KeyOptions, Tenant, TenantKey, TenantMethod, TenantPerson, TenantSignIn};
use crate::totp::{CodeRejected, TotpSecret, qr_svg};
use crate::user::MethodSummary;
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use thiserror::Error;

/// How long the Done screen stays before the kiosk resets by itself.
pub const DONE_RESET: TimeDelta = TimeDelta::seconds(15);
/// How soon a claim renewal that failed is tried again.
const CLAIM_RETRY: TimeDelta = TimeDelta::seconds(30);
/// How often a running session checks that its pass and holder still work,
/// so that revoking a pass or disabling a person ends the session within
/// seconds, whatever kind of pass opened it.
pub const SESSION_CHECK: TimeDelta = TimeDelta::seconds(5);

/// A language the kiosk speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    #[default]
    En,
    /// French.
    Fr,
}

/// Something the person can put right, shown on the current step. The UI
/// words it from `code` in the kiosk's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Notice {
    /// The email typed is not an email address.
    InvalidEmail,
    /// Unknown email or wrong pass (never told apart).
    InvalidCredentials,
    /// Too many wrong passes.
    LockedOut {
        /// When the person may try again.
        until: DateTime<Utc>,
    },
    /// The pass starts later.
    NotYetValid {
        /// When.
        starts: DateTime<Utc>,
    },
    /// The pass has expired.
    Expired,
    /// The one-time pass was used.
    Used,
    /// The pass was revoked.
    Revoked,
    /// Passes are off for this person.
    DisabledByPolicy,
    /// The account is disabled.
    AccountDisabled,
    /// The pass is in use at another kiosk.
    InUse {
        /// When that claim lapses.
        until: DateTime<Utc>,
    },
    /// The authenticator code is wrong.
    WrongCode,
    /// The code was already used: wait for the next.
    ReusedCode,
    /// The session ended (its time is up, or its pass stopped working).
    SessionEnded,
    /// The kiosk reset after a while without activity.
    IdleReset,
    /// The session ended because the directory failed (what was already
    /// saved stays; an unused one-time pass was given back).
    SessionFailed,
    /// A method was removed.
    MethodRemoved,
    /// The two new key PINs differ.
    PinsDiffer,
    /// A new key PIN breaks the rules.
    PinRules {
        /// The fewest characters.
        min: usize,
    },
    /// The key's answer was refused (details in the log).
    KeyRefused,
    /// "Test my key" on a tenant: the key holds a passkey for the tenant,
    /// but for another account (or the email names nobody).
    KeyNotForAccount,
    /// The name given to a key breaks the rules (1 to `max` characters).
    KeyNameRules {
        /// The longest name.
        max: usize,
    },
    /// The policy does not allow this model of key.
    KeyNotAllowed,
    /// This key is registered already.
    KeyRegistered,
    /// The key may have been cloned.
    KeyCloned,
    /// No account of the tenant has the email typed.
    AccountNotFound,
    /// The tenant's sign-in did not sign this person in.
    SignInRefused,
    /// The tenant cannot be reached.
    TenantUnavailable,
    /// The key's answer came after the tenant's deadline: touch it again.
    KeyTooLate,
}

/// What the UI draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Screen {
    /// The kiosk's language.
    pub language: Language,
    /// The step, with what it shows.
    pub step: StepView,
    /// A mistake to put right, or news.
    pub notice: Option<Notice>,
    /// Whether Back is offered.
    pub can_go_back: bool,
    /// Progress through the sign-in: (step, of).
    pub progress: Option<(u8, u8)>,
    /// When the kiosk resets if nobody touches it.
    pub resets_at: Option<DateTime<Utc>>,
    /// When the signed-in session ends.
    pub session_ends_at: Option<DateTime<Utc>>,
    /// The kiosk's time now, so that countdowns do not depend on the
    /// webview's clock.
    pub now: DateTime<Utc>,
}

/// A secret the screen must show (the authenticator app's secret and its
/// QR code): serialised as it is, but never printed by `Debug`, so that a
/// screen in a log line or a test failure does not carry it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Shown(String);

impl Shown {
    /// The secret, to draw.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<shown on screen only>")
    }
}

/// A step as the UI sees it: no secrets but the ones it must show.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepView {
    /// Pick a language and start.
    Welcome {
        /// The organisation the kiosk signs people in to.
        organisation: String,
        /// The configured languages.
        languages: Vec<Language>,
        /// Whether "Test my key" is offered.
        security_keys: bool,
    },
    /// Type the work email.
    Email {
        /// What was typed before (after Back or a mistake).
        email: String,
    },
    /// Type the pass.
    Pass {
        /// The email it is for.
        email: String,
    },
    /// Choose a way to sign in, or Security info.
    Choose {
        /// The person's name or email.
        name: String,
        /// Methods already registered.
        methods: Vec<MethodSummary>,
        /// Whether security keys can be set up here.
        security_keys: bool,
    },
    /// Scan the QR code, then type the code the app shows.
    AuthenticatorSetup {
        /// The QR code of the `otpauth://` URI, as SVG.
        qr_svg: Shown,
        /// The secret in groups, for typing by hand.
        secret: Shown,
        /// The issuer shown in the app.
        issuer: String,
        /// The account shown in the app.
        account: String,
    },
    /// Sign in once with a fresh code, to prove the app works.
    AuthenticatorTest,
    /// Talk to a new security key: plug in, PIN, touch.
    KeySetup {
        /// Where the conversation with the key is.
        key: Phase,
        /// The fewest characters a new PIN has.
        pin_min: usize,
    },
    /// Name the new key.
    KeyName {
        /// The key's model when known, else a plain name.
        suggested: String,
    },
    /// Sign in once with the new key.
    KeyTest {
        /// Where the conversation with the key is.
        key: Phase,
    },
    /// "Test my key": the email the key is for.
    KeyCheckEmail {
        /// What was typed before.
        email: String,
    },
    /// "Test my key": the key signs in.
    KeyCheck {
        /// Where the conversation with the key is.
        key: Phase,
    },
    /// "Test my key": the key works for this account.
    KeyCheckPassed {
        /// The account.
        email: String,
        /// The key's name.
        label: String,
    },
    /// "Test my key" on a tenant: the key holds this account's passkey.
    TenantKeyCheckPassed {
        /// The account.
        email: String,
    },
    /// The person's methods: remove one, add another.
    SecurityInfo {
        /// Registered methods.
        methods: Vec<MethodSummary>,
        /// Whether security keys can be set up here.
        security_keys: bool,
    },
    /// Signing in on the tenant's own page, shown in the kiosk window.
    TenantSignIn {
        /// The account.
        email: String,
    },
    /// Signed in at the tenant: set up a key, or see Security info.
    TenantChoose {
        /// The person's name or email.
        name: String,
        /// Their methods in the tenant.
        methods: Vec<TenantMethod>,
    },
    /// The person's methods in the tenant: remove a lost key, add one.
    TenantSecurityInfo {
        /// Their methods in the tenant.
        methods: Vec<TenantMethod>,
    },
    /// The tenant's own Security info page, shown in the kiosk window.
    TenantSecurityPage,
    /// The key is registered in the tenant.
    TenantKeyRegistered {
        /// The person's name or email.
        name: String,
        /// The key's name, as the tenant keeps it.
        key_name: String,
        /// The model the tenant recognised, when it did.
        model: Option<String>,
    },
    /// All done.
    Done {
        /// The person's name or email.
        name: String,
        /// What is registered now.
        methods: Vec<MethodSummary>,
    },
}

/// A command the current step does not take (a UI bug or a stale window).
#[derive(Debug, Error)]
pub enum KioskError {
    /// Not possible on this step.
    #[error("`{command}` is not possible on the {step} step")]
    WrongStep {
        /// The command.
        command: &'static str,
        /// The step.
        step: &'static str,
    },
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// The kiosk's state: one step, with exactly its data.
enum Step {
    Welcome,
    Email {
        typed: String,
    },
    Pass {
        email: Email,
    },
    Choose {
        session: KioskSession,
        methods: Vec<MethodSummary>,
    },
    AuthenticatorSetup {
        session: KioskSession,
        secret: TotpSecret,
        // Drawn once: the UI asks for the screen every second.
        qr_svg: String,
    },
    AuthenticatorTest {
        session: KioskSession,
        method: MethodSummary,
    },
    KeySetup {
        session: KioskSession,
        challenge: CreationChallengeResponse,
        registration: Registration,
        ceremony: Ceremony,
    },
    KeyName {
        session: KioskSession,
        key: Box<NewKey>,
        suggested: String,
    },
    KeyTest {
        session: KioskSession,
        challenge: RequestChallengeResponse,
        authentication: Authentication,
        ceremony: Ceremony,
    },
    KeyCheckEmail {
        typed: String,
    },
    KeyCheck {
        email: Email,
        /// The person and the sign-in to check; `None` for an email with no
        /// keys, asked to a key with a decoy request.
        check: Option<(String, Authentication)>,
        challenge: RequestChallengeResponse,
        ceremony: Ceremony,
    },
    KeyCheckPassed {
        email: Email,
        label: String,
    },
    SecurityInfo {
        session: KioskSession,
        methods: Vec<MethodSummary>,
    },
    TenantKeyCheck {
        email: Email,
        /// The account's user handle at the tenant; `None` for an email
        /// that names nobody.
        expected: Option<Vec<u8>>,
        challenge: RequestChallengeResponse,
        origin: Url,
        ceremony: Ceremony,
    },
    TenantKeyCheckPassed {
        email: Email,
    },
    TenantSignIn {
        email: Email,
        sign_in: TenantSignIn,
    },
    TenantChoose {
        person: TenantPerson,
        methods: Vec<TenantMethod>,
    },
    TenantSecurityInfo {
        person: TenantPerson,
        methods: Vec<TenantMethod>,
    },
    TenantSecurityPage {
        person: TenantPerson,
    },
    TenantKeySetup {
        person: TenantPerson,
        options: KeyOptions,
        ceremony: Ceremony,
    },
    TenantKeyName {
        person: TenantPerson,
        answer: Box<RegisterPublicKeyCredential>,
        expires_at: DateTime<Utc>,
        suggested: String,
    },
    TenantDone {
        person: TenantPerson,
        key: TenantKey,
    },
    Done {
        name: String,
        methods: Vec<MethodSummary>,
    },
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::Email { .. } => "email",
            Self::Pass { .. } => "pass",
            Self::Choose { .. } => "choose",
            Self::AuthenticatorSetup { .. } => "authenticator_setup",
            Self::AuthenticatorTest { .. } => "authenticator_test",
            Self::KeySetup { .. } => "key_setup",
            Self::KeyName { .. } => "key_name",
            Self::KeyTest { .. } => "key_test",
            Self::KeyCheckEmail { .. } => "key_check_email",
            Self::KeyCheck { .. } => "key_check",
            Self::KeyCheckPassed { .. } => "key_check_passed",
            Self::SecurityInfo { .. } => "security_info",
            Self::TenantKeyCheck { .. } => "tenant_key_check",
            Self::TenantKeyCheckPassed { .. } => "tenant_key_check_passed",
            Self::TenantSignIn { .. } => "tenant_sign_in",
            Self::TenantChoose { .. } => "tenant_choose",
            Self::TenantSecurityInfo { .. } => "tenant_security_info",
            Self::TenantSecurityPage { .. } => "tenant_security_page",
            Self::TenantKeySetup { .. } => "tenant_key_setup",
            Self::TenantKeyName { .. } => "tenant_key_name",
            Self::TenantDone { .. } => "tenant_done",
            Self::Done { .. } => "done",
        }
    }

    fn session(&self) -> Option<&KioskSession> {
        match self {
            Self::Choose { session, .. }
            | Self::AuthenticatorSetup { session, .. }
            | Self::AuthenticatorTest { session, .. }
            | Self::KeySetup { session, .. }
            | Self::KeyName { session, .. }
            | Self::KeyTest { session, .. }
            | Self::SecurityInfo { session, .. } => Some(session),
            _ => None,
        }
    }
}

/// Settings the kiosk flow needs from the configuration.
#[derive(Debug, Clone)]
pub struct KioskSettings {
    /// The organisation, the issuer in authenticator apps.
    pub organisation: String,
    /// Languages offered on Welcome.
    pub languages: Vec<Language>,
    /// Idle time before a reset.
    pub idle_timeout: TimeDelta,
    /// The relying party for security keys; `None`: no keys at this kiosk.
    pub relying_party: Option<Arc<RelyingParty>>,
    /// Where security keys are found.
    pub keys: KeySource,
    /// The tenant people sign in to with its own pass; `None`: this
    /// directory's passes.
    pub tenant: Option<Arc<dyn Tenant>>,
}

/// One kiosk window's flow. Not `Clone`: one session per window.
pub struct Kiosk {
    directory: Directory,
    settings: KioskSettings,
    step: Step,
    language: Language,
    notice: Option<Notice>,
    last_activity: DateTime<Utc>,
    /// The session whose claim on its one-time pass was renewed, and when
    /// to renew it next.
    next_renewal: Option<(String, DateTime<Utc>)>,
    /// The session last checked, and when to check it next.
    next_check: Option<(String, DateTime<Utc>)>,
}

/// The name of the authenticator app method, in the person's language.
fn authenticator_label(language: Language) -> &'static str {
    match language {
        Language::En => "Authenticator app",
        Language::Fr => "Application d'authentification",
    }
}

impl Kiosk {
    /// A kiosk on Welcome.
    pub fn new(directory: Directory, settings: KioskSettings) -> Self {
        let now = directory.now();
        let language = settings.languages.first().copied().unwrap_or_default();
        Self {
            directory,
            settings,
            step: Step::Welcome,
            language,
            notice: None,
            last_activity: now,
            next_renewal: None,
            next_check: None,
        }
    }

    /// What to draw now.
    pub fn screen(&self) -> Screen {
        let session = self.step.session();
        let (can_go_back, progress) = match &self.step {
            Step::Welcome => (false, None),
            Step::Email { .. } => (true, Some((1, 5))),
            Step::Pass { .. } => (true, Some((2, 5))),
            Step::Choose { .. } => (false, Some((3, 5))),
            Step::AuthenticatorSetup { .. } => (true, Some((4, 5))),
            Step::AuthenticatorTest { .. } => (false, Some((5, 5))),
            Step::KeySetup { .. } => (true, Some((4, 5))),
            Step::KeyName { .. } => (false, Some((4, 5))),
            Step::KeyTest { .. } => (false, Some((5, 5))),
            Step::KeyCheckEmail { .. } | Step::KeyCheck { .. } | Step::TenantKeyCheck { .. } => {
                (true, None)
            }
            Step::KeyCheckPassed { .. } | Step::TenantKeyCheckPassed { .. } => (false, None),
            Step::SecurityInfo { .. } => (true, Some((3, 5))),
            Step::TenantSignIn { .. } => (true, Some((2, 5))),
            Step::TenantChoose { .. } => (false, Some((3, 5))),
            Step::TenantSecurityInfo { .. } => (true, Some((3, 5))),
            Step::TenantSecurityPage { .. } => (false, Some((3, 5))),
            Step::TenantKeySetup { .. } => (true, Some((4, 5))),
            Step::TenantKeyName { .. } => (false, Some((5, 5))),
            Step::TenantDone { .. } | Step::Done { .. } => (false, None),
        };
        Screen {
            language: self.language,
            step: self.view(),
            notice: self.notice.clone(),
            can_go_back,
            progress,
            resets_at: self.resets_at(),
            session_ends_at: session.map(|s| s.ends_at),
            now: self.directory.now(),
        }
    }

    fn view(&self) -> StepView {
        match &self.step {
            Step::Welcome => StepView::Welcome {
                organisation: self.settings.organisation.clone(),
                languages: self.settings.languages.clone(),
                // "Test my key": this directory's keys, or the tenant's.
                security_keys: self.settings.relying_party.is_some()
                    || self.settings.tenant.is_some(),
            },
            Step::Email { typed } => StepView::Email {
                email: typed.clone(),
            },
            Step::Pass { email } => StepView::Pass {
                email: email.to_string(),
            },
            Step::Choose { session, methods } => StepView::Choose {
                name: name_of(session),
                methods: methods.clone(),
                security_keys: self.settings.relying_party.is_some(),
            },
            Step::AuthenticatorSetup {
                session,
                secret,
                qr_svg,
            } => StepView::AuthenticatorSetup {
                qr_svg: Shown(qr_svg.clone()),
                secret: Shown(secret.grouped().to_string()),
                issuer: self.settings.organisation.clone(),
                account: session.email.to_string(),
            },
            Step::AuthenticatorTest { .. } => StepView::AuthenticatorTest,
            Step::KeySetup { ceremony, .. } => StepView::KeySetup {
                key: ceremony.phase(),
                pin_min: crate::fido::ceremony::PIN_MIN_CHARS,
            },
            Step::KeyName { suggested, .. } => StepView::KeyName {
                suggested: suggested.clone(),
            },
            Step::KeyTest { ceremony, .. } => StepView::KeyTest {
                key: ceremony.phase(),
            },
            Step::KeyCheckEmail { typed } => StepView::KeyCheckEmail {
                email: typed.clone(),
            },
            Step::TenantKeyCheck { ceremony, .. } => StepView::KeyCheck {
                key: ceremony.phase(),
            },
            Step::TenantKeyCheckPassed { email } => StepView::TenantKeyCheckPassed {
                email: email.to_string(),
            },
            Step::KeyCheck { ceremony, .. } => StepView::KeyCheck {
                key: ceremony.phase(),
            },
            Step::KeyCheckPassed { email, label } => StepView::KeyCheckPassed {
                email: email.to_string(),
                label: label.clone(),
            },
            Step::SecurityInfo { methods, .. } => StepView::SecurityInfo {
                methods: methods.clone(),
                security_keys: self.settings.relying_party.is_some(),
            },
            Step::Done { name, methods } => StepView::Done {
                name: name.clone(),
                methods: methods.clone(),
            },
            Step::TenantSignIn { email, .. } => StepView::TenantSignIn {
                email: email.to_string(),
            },
            Step::TenantChoose { person, methods } => StepView::TenantChoose {
                name: person
                    .name
                    .clone()
                    .unwrap_or_else(|| person.email.to_string()),
                methods: methods.clone(),
            },
            Step::TenantSecurityInfo { methods, .. } => StepView::TenantSecurityInfo {
                methods: methods.clone(),
            },
            Step::TenantSecurityPage { .. } => StepView::TenantSecurityPage,
            Step::TenantKeySetup { ceremony, .. } => StepView::KeySetup {
                key: ceremony.phase(),
                pin_min: crate::fido::ceremony::PIN_MIN_CHARS,
            },
            Step::TenantKeyName { suggested, .. } => StepView::KeyName {
                suggested: suggested.clone(),
            },
            Step::TenantDone { person, key } => StepView::TenantKeyRegistered {
                name: person
                    .name
                    .clone()
                    .unwrap_or_else(|| person.email.to_string()),
                key_name: key.name.clone(),
                model: key.model.clone(),
            },
        }
    }

    /// Choose, with the person's methods read once.
    async fn choose(&self, session: KioskSession) -> Result<Step, KioskError> {
        let methods = self.directory.methods(&session.user_id).await?;
        Ok(Step::Choose { session, methods })
    }

    /// Choose for a session just opened. If it cannot be shown, the
    /// session is given up at once, so that its one-time pass can be typed
    /// again rather than being held for the claim's lease.
    async fn choose_or_release(&self, session: KioskSession) -> Result<Step, KioskError> {
        match self.choose(session.clone()).await {
            Err(e) => {
                if let Err(release) = self.directory.release_session(&session).await {
                    tracing::warn!(%release, "cannot give the pass back");
                }
                Err(e)
            }
            chosen => chosen,
        }
    }

    /// When the kiosk resets by itself: after the idle timeout, or shortly
    /// after Done. Nothing to reset on an untouched Welcome.
    pub fn resets_at(&self) -> Option<DateTime<Utc>> {
        match self.step {
            Step::Welcome => None,
            Step::Done { .. }
            | Step::KeyCheckPassed { .. }
            | Step::TenantKeyCheckPassed { .. }
            | Step::TenantDone { .. } => Some(self.last_activity + DONE_RESET),
            // The kiosk sees no touch on the tenant's page, and adding an
            // authenticator app there (install it, scan, approve) takes
            // minutes: the page gets a longer allowance.
            Step::TenantSecurityPage { .. } => Some(
                self.last_activity + self.settings.idle_timeout.max(tenant::SECURITY_PAGE_IDLE),
            ),
            _ => {
                let idle = self.last_activity + self.settings.idle_timeout;
                Some(self.step.session().map_or(idle, |s| idle.min(s.ends_at)))
            }
        }
    }

    fn touch(&mut self) {
        self.last_activity = self.directory.now();
        self.notice = None;
    }

    fn wrong_step(&self, command: &'static str) -> KioskError {
        KioskError::WrongStep {
            command,
            step: self.step.name(),
        }
    }

    /// Welcome: picks the language and asks for the email.
    pub async fn start(&mut self, language: Language) -> Result<Screen, KioskError> {
        let email = Step::Email {
            typed: String::new(),
        };
        self.leave_welcome("start", language, email)
    }

    /// Leaves Welcome for `next`, in `language` if the kiosk speaks it.
    fn leave_welcome(
        &mut self,
        command: &'static str,
        language: Language,
        next: Step,
    ) -> Result<Screen, KioskError> {
        if !matches!(self.step, Step::Welcome) {
            return Err(self.wrong_step(command));
        }
        self.touch();
        if self.settings.languages.contains(&language) {
            self.language = language;
        }
        self.step = next;
        Ok(self.screen())
    }

    /// Email: checks the address's form (not whether it exists) and asks
    /// for the pass.
    pub async fn submit_email(&mut self, typed: &str) -> Result<Screen, KioskError> {
        if !matches!(self.step, Step::Email { .. }) {
            return Err(self.wrong_step("submit_email"));
        }
        self.touch();
        match Email::parse(typed) {
            Ok(email) => match self.settings.tenant.clone() {
                Some(tenant) => return self.start_tenant_sign_in(&*tenant, email).await,
                None => self.step = Step::Pass { email },
            },
            Err(_) => {
                self.step = Step::Email {
                    typed: typed.trim().chars().take(254).collect(),
                };
                self.notice = Some(Notice::InvalidEmail);
            }
        }
        Ok(self.screen())
    }

    /// Pass: signs in. Mistakes stay on this step with a notice.
    pub async fn submit_pass(&mut self, typed: &str) -> Result<Screen, KioskError> {
        let Step::Pass { email } = &self.step else {
            return Err(self.wrong_step("submit_pass"));
        };
        let email = email.clone();
        self.touch();
        match self.directory.redeem(email.as_str(), typed).await {
            Ok(session) => self.step = self.choose_or_release(session).await?,
            Err(RedeemError::Directory(e)) => return Err(e.into()),
            Err(refused) => self.notice = Some(notice_for(refused)),
        }
        Ok(self.screen())
    }

    /// Choose or Security info: starts an authenticator app with a new
    /// secret.
    pub async fn add_authenticator(&mut self) -> Result<Screen, KioskError> {
        let session = match &self.step {
            Step::Choose { session, .. } | Step::SecurityInfo { session, .. } => session.clone(),
            _ => return Err(self.wrong_step("add_authenticator")),
        };
        self.touch();
        let secret = TotpSecret::generate(&mut OsRng);
        let uri = secret.uri(&self.settings.organisation, session.email.as_str());
        let qr_svg = uri
            .ok()
            .and_then(|uri| qr_svg(&uri).ok())
            .unwrap_or_default();
        self.step = Step::AuthenticatorSetup {
            session,
            secret,
            qr_svg,
        };
        Ok(self.screen())
    }

    /// Authenticator setup: the first code from the app. Right: the app is
    /// registered (and a one-time pass used up). Wrong: same QR code, a
    /// notice.
    pub async fn confirm_authenticator(&mut self, code: &str) -> Result<Screen, KioskError> {
        let Step::AuthenticatorSetup {
            session, secret, ..
        } = &self.step
        else {
            return Err(self.wrong_step("confirm_authenticator"));
        };
        let (session, secret) = (session.clone(), secret.clone());
        self.touch();
        let now = self.directory.now().timestamp();
        let step = match secret.check(code, now, None) {
            Ok(step) => step,
            Err(rejected) => {
                self.notice = Some(code_notice(rejected));
                return Ok(self.screen());
            }
        };
        let label = authenticator_label(self.language);
        match self
            .directory
            .add_totp_method(&session, label, &secret, step)
            .await
        {
            Ok(method) => self.step = Step::AuthenticatorTest { session, method },
            Err(DirectoryError::ClaimLost) => return self.end_session(Notice::SessionEnded).await,
            Err(e) => return Err(e.into()),
        }
        Ok(self.screen())
    }

    /// Authenticator test: a fresh code signs in once. Right: Done.
    pub async fn test_authenticator(&mut self, code: &str) -> Result<Screen, KioskError> {
        let Step::AuthenticatorTest { session, method } = &self.step else {
            return Err(self.wrong_step("test_authenticator"));
        };
        let (session, method) = (session.clone(), method.clone());
        self.touch();
        match self
            .directory
            .check_totp(&session.user_id, &method.id, code)
            .await
        {
            Ok(()) => {
                let methods = self.directory.methods(&session.user_id).await?;
                self.step = Step::Done {
                    name: name_of(&session),
                    methods,
                };
                // The change is committed: nothing is left to release.
            }
            Err(TotpCheck::Rejected(rejected)) => self.notice = Some(code_notice(rejected)),
            Err(TotpCheck::NoSuchMethod) => return self.end_session(Notice::SessionEnded).await,
            Err(TotpCheck::Directory(e)) => return Err(e.into()),
        }
        Ok(self.screen())
    }

    /// Choose: opens Security info.
    pub async fn open_security_info(&mut self) -> Result<Screen, KioskError> {
        if let Step::TenantChoose { person, methods } = &self.step {
            let (person, methods) = (person.clone(), methods.clone());
            self.touch();
            self.step = Step::TenantSecurityInfo { person, methods };
            return Ok(self.screen());
        }
        let Step::Choose { session, methods } = &self.step else {
            return Err(self.wrong_step("open_security_info"));
        };
        let (session, methods) = (session.clone(), methods.clone());
        self.touch();
        self.step = Step::SecurityInfo { session, methods };
        Ok(self.screen())
    }

    /// Security info: removes one of the person's methods.
    pub async fn remove_method(&mut self, method_id: &str) -> Result<Screen, KioskError> {
        if let Step::TenantSecurityInfo { .. } = self.step {
            return self.remove_tenant_key(method_id).await;
        }
        let Step::SecurityInfo { session, .. } = &self.step else {
            return Err(self.wrong_step("remove_method"));
        };
        let session = session.clone();
        self.touch();
        match self.directory.remove_method(&session, method_id).await {
            Ok(()) => {
                let methods = self.directory.methods(&session.user_id).await?;
                self.step = Step::SecurityInfo { session, methods };
                self.notice = Some(Notice::MethodRemoved);
            }
            Err(DirectoryError::ClaimLost) => return self.end_session(Notice::SessionEnded).await,
            Err(e) => return Err(e.into()),
        }
        Ok(self.screen())
    }

    /// "I'm still here": resets the idle countdown.
    pub async fn keep_alive(&mut self) -> Result<Screen, KioskError> {
        let notice = self.notice.take();
        self.touch();
        self.notice = notice;
        Ok(self.screen())
    }

    /// Back, where it makes sense.
    pub async fn back(&mut self) -> Result<Screen, KioskError> {
        if let Step::TenantSecurityInfo { person, .. } | Step::TenantKeySetup { person, .. } =
            &self.step
        {
            let person = person.clone();
            self.touch();
            return self.tenant_choose(person).await;
        }
        let previous = match &self.step {
            Step::Email { .. } | Step::KeyCheckEmail { .. } => Step::Welcome,
            Step::KeyCheck { email, .. } | Step::TenantKeyCheck { email, .. } => {
                Step::KeyCheckEmail {
                    typed: email.to_string(),
                }
            }
            Step::Pass { email } | Step::TenantSignIn { email, .. } => Step::Email {
                typed: email.to_string(),
            },
            Step::AuthenticatorSetup { session, .. }
            | Step::KeySetup { session, .. }
            | Step::SecurityInfo { session, .. } => self.choose(session.clone()).await?,
            _ => return Err(self.wrong_step("back")),
        };
        self.touch();
        self.step = previous;
        Ok(self.screen())
    }

    /// Finishes (Done, or "I'm finished" while signed in) or abandons the
    /// flow: the session ends, a one-time pass that was not used is given
    /// back, and everything the session held is dropped.
    pub async fn reset(&mut self) -> Result<Screen, KioskError> {
        self.end_session_quietly().await?;
        self.notice = None;
        self.last_activity = self.directory.now();
        Ok(self.screen())
    }

    /// Called every second or so: resets when the kiosk was left idle, the
    /// session's time is up, or Done has been shown long enough.
    pub async fn tick(&mut self) -> Result<Screen, KioskError> {
        let now = self.directory.now();
        if self.resets_at().is_some_and(|at| now >= at) {
            let notice = match self.step {
                Step::Done { .. }
                | Step::KeyCheckPassed { .. }
                | Step::TenantKeyCheckPassed { .. }
                | Step::TenantDone { .. } => None,
                _ if self.step.session().is_some_and(|s| now >= s.ends_at) => {
                    Some(Notice::SessionEnded)
                }
                _ => Some(Notice::IdleReset),
            };
            self.end_session_quietly().await?;
            self.notice = notice;
            self.last_activity = now;
        }
        if !self.keep_claim(now).await || !self.session_still_works(now).await {
            return self.end_session(Notice::SessionEnded).await;
        }
        self.collect_key_answer().await?;
        Ok(self.screen())
    }

    /// Renews the session's claim on its one-time pass halfway through each
    /// lease, so that a session longer than the lease keeps its pass; the
    /// lease only ends the claim of a kiosk that stopped answering. False
    /// when the claim was lost (the pass was revoked, or the kiosk was
    /// away longer than the lease).
    async fn keep_claim(&mut self, now: DateTime<Utc>) -> bool {
        let Some(session) = self.step.session().filter(|s| s.one_time) else {
            return true;
        };
        let half_lease = self.directory.settings().session.claim_lease / 2;
        let due = match &self.next_renewal {
            Some((id, at)) if *id == session.id => *at,
            _ => session.started_at + half_lease,
        };
        if now < due {
            return true;
        }
        let next = match self.directory.renew_claim(session).await {
            Ok(()) => now + half_lease,
            Err(DirectoryError::ClaimLost) => return false,
            // Half the lease is still left: try again in a while rather
            // than on every tick, and go on with the session meanwhile.
            Err(e) => {
                tracing::warn!(%e, "cannot renew the session's claim; trying again shortly");
                now + CLAIM_RETRY
            }
        };
        self.next_renewal = Some((session.id.clone(), next));
        true
    }

    /// Checks every [`SESSION_CHECK`] that the session's pass and holder
    /// still work (not revoked, disabled, removed or outside the policy).
    /// False when they do not; a directory that cannot be asked is asked
    /// again at the next check, and the session goes on meanwhile.
    async fn session_still_works(&mut self, now: DateTime<Utc>) -> bool {
        let Some(session) = self.step.session() else {
            return true;
        };
        let due = match &self.next_check {
            Some((id, at)) if *id == session.id => *at,
            _ => session.started_at + SESSION_CHECK,
        };
        if now < due {
            return true;
        }
        let works = match self.directory.check_session(session).await {
            Ok(()) => true,
            Err(DirectoryError::ClaimLost) => false,
            Err(e) => {
                tracing::warn!(%e, "cannot check the session's pass; trying again shortly");
                true
            }
        };
        self.next_check = Some((session.id.clone(), now + SESSION_CHECK));
        works
    }

    async fn end_session(&mut self, notice: Notice) -> Result<Screen, KioskError> {
        self.end_session_quietly().await?;
        self.notice = Some(notice);
        Ok(self.screen())
    }

    async fn end_session_quietly(&mut self) -> Result<(), KioskError> {
        let step = std::mem::replace(&mut self.step, Step::Welcome);
        if let Some(session) = step.session() {
            self.directory.release_session(session).await?;
        }
        self.language = self.settings.languages.first().copied().unwrap_or_default();
        Ok(())
    }
}

fn name_of(session: &KioskSession) -> String {
    session
        .display_name
        .clone()
        .unwrap_or_else(|| session.email.to_string())
}

fn code_notice(rejected: CodeRejected) -> Notice {
    match rejected {
        CodeRejected::Wrong => Notice::WrongCode,
        CodeRejected::Reused => Notice::ReusedCode,
    }
}

/// The notice for a refused sign-in (directory failures are errors).
fn notice_for(error: RedeemError) -> Notice {
    match error {
        RedeemError::InvalidCredentials | RedeemError::Directory(_) => Notice::InvalidCredentials,
        RedeemError::LockedOut { until } => Notice::LockedOut { until },
        RedeemError::NotYetValid { starts } => Notice::NotYetValid { starts },
        RedeemError::Expired => Notice::Expired,
        RedeemError::Used => Notice::Used,
        RedeemError::Revoked => Notice::Revoked,
        RedeemError::DisabledByPolicy => Notice::DisabledByPolicy,
        RedeemError::AccountDisabled => Notice::AccountDisabled,
        RedeemError::InUse { until } => Notice::InUse { until },
    }
}
