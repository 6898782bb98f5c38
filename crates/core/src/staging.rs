//! IT staging security keys into a tenant (Microsoft's "passkeys on behalf
//! of users"): a queue of people from a CSV file, one key after another.
//! For each, the person's account is found without a sign-in, the plugged-in
//! key gets a PIN the kiosk sets (random, or IT's) and answers the tenant's
//! creation options, the tenant registers it under its model and IT's
//! label, and then, where the key can (CTAP 2.1), the key is told to ask
//! for a PIN of its owner's own at its first use. A PIN letter is shown
//! once for the person; the next person drops it.
//!
//! The flow is a state machine the admin pane only renders: its view says
//! what to show, and every check (PINs, lengths, deadlines) is made here.

use crate::directory::entra::EntraChange;
use crate::directory::{Directory, DirectoryError};
use crate::email::Email;
use crate::fido::ceremony::{Ceremony, KeySource, PIN_MAX_BYTES, Phase, PinProblem};
use crate::fido::pin_policy::{PinPolicyOutcome, require_pin_change};
use crate::fido::{model_name, reported_model};
use crate::import::{ImportErrors, parse_staging};
use crate::tenant::{KeyOptions, Tenant, TenantError, TenantPerson};
use rand::RngCore;
use serde::Serialize;
use thiserror::Error;
use zeroize::Zeroizing;

/// The minimum PIN length asked of a staged key's owner, unless IT says.
pub const DEFAULT_MIN_PIN_LENGTH: u32 = 6;
/// Digits of a random PIN (more if the minimum asks for more): a PIN the
/// person types once, before the key asks for their own.
const RANDOM_PIN_DIGITS: u32 = 8;
/// The bounds CTAP 2.1 puts on a minimum PIN length.
const MIN_PIN_LENGTH: std::ops::RangeInclusive<u32> = 4..=63;

/// Why a staging was not started or a request was refused.
#[derive(Debug, Error)]
pub enum StagingError {
    /// The minimum PIN length is outside CTAP's 4 to 63.
    #[error("the minimum PIN length must be 4 to 63")]
    MinPinLength,
    /// IT's PIN is shorter than the minimum, or longer than a key takes.
    #[error("the PIN must be {min} to 63 characters")]
    PinRules {
        /// The fewest characters.
        min: u32,
    },
    /// The file has bad rows; nothing was queued.
    #[error(transparent)]
    Rows(ImportErrors),
    /// The file names nobody.
    #[error("the file names nobody")]
    Empty,
    /// The request does not fit where the staging is.
    #[error("no key is waiting for that")]
    NotNow,
    /// The random source failed: no PIN was made.
    #[error("no random PIN could be made: {0}")]
    Random(String),
    /// The directory failed to record a change.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// How the kiosk sets the PINs of the keys it stages.
#[derive(Clone)]
pub enum PinChoice {
    /// A new random PIN for each key.
    Random,
    /// IT's PIN, for every key of the queue.
    Chosen(Zeroizing<String>),
}

/// What the queue asks of every key.
#[derive(Clone)]
pub struct StagingTerms {
    pin: PinChoice,
    min_pin_length: u32,
}

impl std::fmt::Debug for StagingTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pin = match self.pin {
            PinChoice::Random => "random",
            PinChoice::Chosen(_) => "<redacted>",
        };
        f.debug_struct("StagingTerms")
            .field("pin", &pin)
            .field("min_pin_length", &self.min_pin_length)
            .finish()
    }
}

impl StagingTerms {
    /// IT's PIN (random if `None`) and minimum PIN length (the default if
    /// `None`), checked.
    pub fn new(pin: Option<Zeroizing<String>>, min: Option<u32>) -> Result<Self, StagingError> {
        let min_pin_length = min.unwrap_or(DEFAULT_MIN_PIN_LENGTH);
        if !MIN_PIN_LENGTH.contains(&min_pin_length) {
            return Err(StagingError::MinPinLength);
        }
        let pin = match pin {
            None => PinChoice::Random,
            Some(pin) => {
                let chars = pin.chars().count();
                if chars < min_pin_length as usize || pin.len() > PIN_MAX_BYTES {
                    return Err(StagingError::PinRules {
                        min: min_pin_length,
                    });
                }
                PinChoice::Chosen(pin)
            }
        };
        Ok(Self {
            pin,
            min_pin_length,
        })
    }

    /// The PIN for the next key.
    fn next_pin(&self) -> Result<Zeroizing<String>, StagingError> {
        match &self.pin {
            PinChoice::Chosen(pin) => Ok(pin.clone()),
            PinChoice::Random => random_pin(RANDOM_PIN_DIGITS.max(self.min_pin_length)),
        }
    }
}

/// `digits` random decimal digits from the OS's random source.
fn random_pin(digits: u32) -> Result<Zeroizing<String>, StagingError> {
    let mut pin = Zeroizing::new(String::new());
    let mut bytes = Zeroizing::new([0u8; 32]);
    while pin.len() < digits as usize {
        rand::rngs::OsRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|e| StagingError::Random(e.to_string()))?;
        // 250 is the largest multiple of 10 a byte holds: no digit is likelier.
        for byte in bytes.iter().filter(|b| **b < 250) {
            if pin.len() < digits as usize {
                pin.push(char::from(b'0' + byte % 10));
            }
        }
    }
    Ok(pin)
}

/// Whether a staged key asks its owner for a PIN of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PinChange {
    /// At its first use, and of at least `min_pin_length` characters.
    Required {
        /// The fewest characters the key takes from now on.
        min_pin_length: u32,
    },
    /// The key cannot be told (before CTAP 2.1): the PIN letter's PIN stays
    /// until its owner changes it.
    NotSupported,
    /// The key could not be told (details in `reason`); the key is
    /// registered.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// What became of a person of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RowState {
    /// Not yet.
    Waiting,
    /// Their key is in hand.
    Staging,
    /// Their key is registered in the tenant.
    Staged {
        /// The key's name in the tenant.
        key_name: String,
        /// The model the tenant recognised.
        model: Option<String>,
        /// Whether the key asks for a new PIN.
        pin_change: PinChange,
    },
    /// Not staged, and why (in the tenant's words when it refused).
    Failed {
        /// Why.
        reason: String,
    },
    /// IT went on to the next person.
    Skipped,
}

/// A person of the queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueRow {
    /// The line of the file.
    pub line: u64,
    /// Whose key.
    pub email: Email,
    /// IT's label for the key.
    pub label: Option<String>,
    /// What became of it.
    pub state: RowState,
}

/// The PIN letter for a staged key, shown once.
#[derive(Clone, Serialize)]
pub struct PinLetter {
    email: Email,
    name: Option<String>,
    key_name: String,
    pin: Zeroizing<String>,
    pin_change: PinChange,
}

impl PinLetter {
    /// Whose key.
    pub fn email(&self) -> &Email {
        &self.email
    }

    /// Their name in the tenant.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The key's name in the tenant.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The PIN the key was given, to hand over once.
    pub fn pin(&self) -> &str {
        &self.pin
    }

    /// Whether the key asks its owner for a PIN of their own.
    pub fn pin_change(&self) -> &PinChange {
        &self.pin_change
    }
}

impl std::fmt::Debug for PinLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinLetter")
            .field("email", &self.email)
            .field("key_name", &self.key_name)
            .field("pin", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Something to tell IT about the key in hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StagingNotice {
    /// The tenant's options ran out before the key answered: touch it again.
    KeyTooLate,
    /// The tenant cannot be reached: the queue stops here.
    TenantUnavailable,
}

/// The key in hand, and whose it is.
struct Current {
    index: usize,
    person: TenantPerson,
    pin: Zeroizing<String>,
    /// Whether the kiosk set `pin` on the key itself: the key's prompt for
    /// it right after is answered without IT.
    pin_set: bool,
    stage: Stage,
}

enum Stage {
    /// The key answers the tenant's options.
    Key {
        options: Box<KeyOptions>,
        ceremony: Ceremony,
    },
    /// Registered: the letter to print.
    Done(PinLetter),
}

/// The person whose key is in hand, as the pane shows it.
#[derive(Debug, Serialize)]
pub struct CurrentView<'a> {
    /// Whose key.
    pub email: &'a Email,
    /// Their name in the tenant.
    pub name: Option<&'a str>,
    /// Where the key is, until it is registered.
    pub key: Option<Phase>,
    /// The key asks for a PIN only IT knows (it had one before): not the
    /// one the kiosk set, which the queue gives it itself.
    pub pin_wanted: bool,
    /// The PIN letter, once registered.
    pub letter: Option<&'a PinLetter>,
}

/// The whole queue, as the pane shows it.
#[derive(Debug, Serialize)]
pub struct QueueView<'a> {
    /// Every person, in the file's order.
    pub rows: &'a [QueueRow],
    /// The key in hand.
    pub current: Option<CurrentView<'a>>,
    /// What to tell IT.
    pub notice: Option<StagingNotice>,
    /// The minimum PIN length asked of every key.
    pub min_pin_length: u32,
    /// Whether any person is still waiting.
    pub more: bool,
}

/// IT's staging queue.
pub struct StagingQueue {
    rows: Vec<QueueRow>,
    terms: StagingTerms,
    current: Option<Current>,
    notice: Option<StagingNotice>,
}

impl std::fmt::Debug for StagingQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingQueue")
            .field("rows", &self.rows.len())
            .field("terms", &self.terms)
            .finish_non_exhaustive()
    }
}

/// A key's name in the tenant: its model and IT's label.
fn key_name(model: Option<&str>, label: Option<&str>) -> String {
    let model = model.unwrap_or("Security key");
    match label {
        Some(label) => format!("{model} · {label}"),
        None => model.to_string(),
    }
}

/// The words for a tenant's refusal of one person.
/// What a phase that ended without an answer says in the running list.
fn phase_reason(phase: &Phase) -> String {
    let words = match phase {
        Phase::AlreadyRegistered => "the key is registered to this person already",
        Phase::PinBlocked => "the key's PIN is blocked: reset the key",
        Phase::NotSupported => "the key does not speak FIDO2",
        Phase::TimedOut => "nobody touched the key in time",
        Phase::NoKey => "no key was plugged in",
        Phase::SeveralKeys => "more than one key was plugged in",
        Phase::ReinsertKey => "too many wrong PINs: unplug the key and plug it back in",
        _ => "the key failed",
    };
    words.into()
}

impl StagingQueue {
    /// The queue of the CSV `text` (`email,label`), every row checked
    /// before any is queued.
    pub fn new(text: &str, terms: StagingTerms) -> Result<Self, StagingError> {
        let rows: Vec<QueueRow> = parse_staging(text)
            .map_err(StagingError::Rows)?
            .into_iter()
            .map(|(line, row)| QueueRow {
                line,
                email: row.email,
                label: row.label,
                state: RowState::Waiting,
            })
            .collect();
        if rows.is_empty() {
            return Err(StagingError::Empty);
        }
        Ok(Self {
            rows,
            terms,
            current: None,
            notice: None,
        })
    }

    /// What the pane shows.
    pub fn view(&self) -> QueueView<'_> {
        let current = self.current.as_ref().map(|c| CurrentView {
            email: &c.person.email,
            name: c.person.name.as_deref(),
            key: match &c.stage {
                Stage::Key { ceremony, .. } => Some(ceremony.phase()),
                Stage::Done(_) => None,
            },
            pin_wanted: match &c.stage {
                Stage::Key { ceremony, .. } => {
                    matches!(ceremony.phase(), Phase::EnterPin { wrong, .. } if wrong || !c.pin_set)
                }
                Stage::Done(_) => false,
            },
            letter: match &c.stage {
                Stage::Done(letter) => Some(letter),
                Stage::Key { .. } => None,
            },
        });
        QueueView {
            rows: &self.rows,
            current,
            notice: self.notice,
            min_pin_length: self.terms.min_pin_length,
            more: self.rows.iter().any(|r| r.state == RowState::Waiting),
        }
    }

    /// The rows, for tests and the log.
    pub fn rows(&self) -> &[QueueRow] {
        &self.rows
    }

    /// Goes on to the next person who is waiting: drops the letter shown,
    /// finds their account and asks the key to answer the tenant's options.
    /// A person the tenant cannot find or refuses is marked failed and the
    /// next is tried; an unreachable tenant stops the queue there.
    pub async fn next(
        &mut self,
        tenant: &dyn Tenant,
        keys: &KeySource,
    ) -> Result<(), StagingError> {
        if matches!(&self.current, Some(c) if matches!(c.stage, Stage::Key { .. })) {
            return Err(StagingError::NotNow);
        }
        self.current = None;
        self.notice = None;
        while let Some(index) = self.rows.iter().position(|r| r.state == RowState::Waiting) {
            self.rows[index].state = RowState::Staging;
            match self.start(index, tenant, keys).await? {
                Ok(current) => {
                    self.current = Some(current);
                    return Ok(());
                }
                Err(error) => {
                    tracing::info!(%error, line = self.rows[index].line, "a staging was refused");
                    self.rows[index].state = RowState::Failed {
                        reason: error.to_string(),
                    };
                    if let TenantError::Unavailable(_) = error {
                        self.notice = Some(StagingNotice::TenantUnavailable);
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Finds the person of row `index` and starts their key.
    async fn start(
        &self,
        index: usize,
        tenant: &dyn Tenant,
        keys: &KeySource,
    ) -> Result<Result<Current, TenantError>, StagingError> {
        let person = match tenant.find(&self.rows[index].email).await {
            Ok(person) => person,
            Err(error) => return Ok(Err(error)),
        };
        let pin = self.terms.next_pin()?;
        Ok(key_stage(tenant, keys, &person).await.map(|stage| Current {
            index,
            person,
            pin,
            pin_set: false,
            stage,
        }))
    }

    /// The key's PIN, when the key has one already (IT types it); it is
    /// the PIN of the letter then.
    pub fn give_pin(&mut self, pin: Zeroizing<String>) -> Result<(), PinProblem> {
        let Some(Current {
            stage: Stage::Key { ceremony, .. },
            pin: kept,
            ..
        }) = &mut self.current
        else {
            return Err(PinProblem::NotAsked);
        };
        if !matches!(ceremony.phase(), Phase::EnterPin { .. }) {
            return Err(PinProblem::NotAsked);
        }
        ceremony.give_pin(&pin, None)?;
        *kept = pin;
        Ok(())
    }

    /// Moves the key in hand on: gives a new key its PIN, and once the key
    /// answered, registers it in the tenant, records it, and asks the key
    /// for a PIN change at first use. An answer that came after the
    /// tenant's deadline is asked for again with fresh options.
    pub async fn tick(
        &mut self,
        tenant: &dyn Tenant,
        keys: &KeySource,
        directory: &Directory,
    ) -> Result<(), StagingError> {
        let Some((current, options, ceremony)) = self.key_in_hand() else {
            return Ok(());
        };
        match ceremony.phase() {
            Phase::SetPin => {
                // Fails only if the key stopped asking meanwhile.
                if ceremony.give_pin(&current.pin, Some(&current.pin)).is_ok()
                    && let Some(current) = &mut self.current
                {
                    current.pin_set = true;
                }
                Ok(())
            }
            // The key asks for the PIN just set, to sign its answer.
            Phase::EnterPin { wrong: false, .. } if current.pin_set => {
                let _ = ceremony.give_pin(&current.pin, None);
                Ok(())
            }
            Phase::Answered => {
                let expires_at = options.expires_at;
                let Some(answer) = ceremony.take_registration() else {
                    return Ok(());
                };
                if directory.now() >= expires_at {
                    self.notice = Some(StagingNotice::KeyTooLate);
                    return self.restart_key(tenant, keys).await;
                }
                self.notice = None;
                self.register(tenant, keys, directory, &answer).await
            }
            _ => Ok(()),
        }
    }

    /// The key in hand while it answers the tenant's options.
    fn key_in_hand(&self) -> Option<(&Current, &KeyOptions, &Ceremony)> {
        match &self.current {
            Some(
                current @ Current {
                    stage: Stage::Key { options, ceremony },
                    ..
                },
            ) => Some((current, options, ceremony)),
            _ => None,
        }
    }

    /// Asks the key in hand again after it failed, with fresh options if
    /// the tenant's have run out.
    pub async fn retry(
        &mut self,
        tenant: &dyn Tenant,
        keys: &KeySource,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StagingError> {
        let Some(Current {
            stage: Stage::Key { options, ceremony },
            ..
        }) = &mut self.current
        else {
            return Err(StagingError::NotNow);
        };
        if !ceremony.phase().failed() {
            return Err(StagingError::NotNow);
        }
        if now >= options.expires_at {
            return self.restart_key(tenant, keys).await;
        }
        *ceremony = Ceremony::register(keys, options.origin.clone(), options.request.clone());
        Ok(())
    }

    /// Gives up on the key in hand: the person is marked skipped, or
    /// failed with the key's reason when it failed.
    pub fn skip(&mut self) -> Result<(), StagingError> {
        let Some(Current {
            index,
            stage: Stage::Key { ceremony, .. },
            ..
        }) = &self.current
        else {
            return Err(StagingError::NotNow);
        };
        let phase = ceremony.phase();
        self.rows[*index].state = if phase.failed() {
            RowState::Failed {
                reason: phase_reason(&phase),
            }
        } else {
            RowState::Skipped
        };
        self.current = None;
        Ok(())
    }

    /// New options from the tenant for the key in hand.
    async fn restart_key(
        &mut self,
        tenant: &dyn Tenant,
        keys: &KeySource,
    ) -> Result<(), StagingError> {
        let Some(current) = &mut self.current else {
            return Err(StagingError::NotNow);
        };
        match key_stage(tenant, keys, &current.person).await {
            Ok(stage) => current.stage = stage,
            Err(error) => self.fail_current(&error),
        }
        Ok(())
    }

    fn fail_current(&mut self, error: &TenantError) {
        if let Some(current) = self.current.take() {
            tracing::info!(%error, line = self.rows[current.index].line, "a staged key was refused");
            self.rows[current.index].state = RowState::Failed {
                reason: error.to_string(),
            };
            if let TenantError::Unavailable(_) = error {
                self.notice = Some(StagingNotice::TenantUnavailable);
            }
        }
    }

    /// Registers the key's answer in the tenant, then asks the key for a
    /// PIN change at first use.
    async fn register(
        &mut self,
        tenant: &dyn Tenant,
        keys: &KeySource,
        directory: &Directory,
        answer: &crate::fido::RegisterPublicKeyCredential,
    ) -> Result<(), StagingError> {
        let Some(current) = &self.current else {
            return Err(StagingError::NotNow);
        };
        let (index, person, pin) = (current.index, current.person.clone(), current.pin.clone());
        let model = reported_model(answer).and_then(model_name);
        let name = key_name(model, self.rows[index].label.as_deref());
        let key = match tenant.register_key(&person, &name, answer).await {
            Ok(key) => key,
            Err(error) => {
                self.fail_current(&error);
                return Ok(());
            }
        };
        directory
            .record_entra_change(
                EntraChange::KeyStaged,
                person.email.as_str(),
                &key.id,
                key.request_id.as_deref(),
            )
            .await?;
        let pin_change = pin_change(keys, &pin, self.terms.min_pin_length).await;
        let letter = PinLetter {
            email: person.email,
            name: person.name,
            key_name: key.name.clone(),
            pin,
            pin_change: pin_change.clone(),
        };
        self.rows[index].state = RowState::Staged {
            key_name: key.name,
            model: key.model,
            pin_change,
        };
        if let Some(current) = &mut self.current {
            current.stage = Stage::Done(letter);
        }
        Ok(())
    }
}

/// The tenant's options for a key of `person`, and the key asked to
/// answer them.
async fn key_stage(
    tenant: &dyn Tenant,
    keys: &KeySource,
    person: &TenantPerson,
) -> Result<Stage, TenantError> {
    let options = tenant.key_options(person).await?;
    let ceremony = Ceremony::register(keys, options.origin.clone(), options.request.clone());
    Ok(Stage::Key {
        options: Box::new(options),
        ceremony,
    })
}

/// Tells the key to ask for a new PIN of at least `min` characters at its
/// next use.
async fn pin_change(keys: &KeySource, pin: &str, min: u32) -> PinChange {
    match require_pin_change(keys, pin, min).await {
        Ok(PinPolicyOutcome::Set { min_pin_length }) => PinChange::Required { min_pin_length },
        Ok(PinPolicyOutcome::NotSupported) => PinChange::NotSupported,
        Err(error) => {
            tracing::warn!(%error, "a staged key did not take the PIN policy");
            PinChange::Failed {
                reason: error.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_pin_has_the_digits_asked_for() {
        let pin = random_pin(8).unwrap();
        assert_eq!(pin.len(), 8);
        assert!(pin.chars().all(|c| c.is_ascii_digit()), "{}", *pin);
        assert_ne!(*random_pin(12).unwrap(), *random_pin(12).unwrap());
        let terms = StagingTerms::new(None, Some(10)).unwrap();
        assert_eq!(terms.next_pin().unwrap().len(), 10);
    }

    #[test]
    fn terms_are_checked() {
        assert!(matches!(
            StagingTerms::new(None, Some(3)),
            Err(StagingError::MinPinLength)
        ));
        assert!(matches!(
            StagingTerms::new(None, Some(64)),
            Err(StagingError::MinPinLength)
        ));
        let short = Some(Zeroizing::new("12345".to_string()));
        assert!(matches!(
            StagingTerms::new(short, None),
            Err(StagingError::PinRules { min: 6 })
        ));
        let chosen = StagingTerms::new(Some(Zeroizing::new("739164".into())), None).unwrap();
        assert_eq!(*chosen.next_pin().unwrap(), "739164");
        assert!(!format!("{chosen:?}").contains("739164"));
    }

    #[test]
    fn a_key_is_named_by_its_model_and_label() {
        assert_eq!(
            key_name(Some("YubiKey 5 NFC"), Some("YK-0042")),
            "YubiKey 5 NFC · YK-0042"
        );
        assert_eq!(key_name(None, Some("YK-0042")), "Security key · YK-0042");
        assert_eq!(key_name(None, None), "Security key");
    }

    #[test]
    fn an_empty_or_bad_file_queues_nobody() {
        let terms = StagingTerms::new(None, None).unwrap();
        assert!(matches!(
            StagingQueue::new("email,label\n", terms.clone()),
            Err(StagingError::Empty)
        ));
        assert!(matches!(
            StagingQueue::new("ada@example.com\nnope\n", terms.clone()),
            Err(StagingError::Rows(_))
        ));
        let queue = StagingQueue::new("ada@example.com,A1\nbob@example.com\n", terms).unwrap();
        let view = queue.view();
        assert!(view.more && view.current.is_none());
        assert_eq!(view.rows.len(), 2);
    }
}
