//! IT staging a security key in this directory, in the admin pane: a key
//! set up for a person before their first day (with its PIN), or the
//! signed-in admin's own key for the pane. One key at a time. The flow is
//! a state machine the pane only renders: it polls [`KeyStaging::poll`]
//! for the view, and every check (the key's answer, the policy's models,
//! the name's rules) is made here.

use crate::directory::methods::{MAX_LABEL_CHARS, check_label};
use crate::directory::{AdminError, AdminName, Directory, DirectoryError};
use crate::email::Email;
use crate::fido::ceremony::{KeySource, Phase, PinProblem};
use crate::fido::enrolment::Enrolment;
use crate::fido::{KeyError, NewKey, RelyingParty, Uuid, model_name};
use crate::user::MethodSummary;
use serde::Serialize;
use thiserror::Error;

/// Whose key is being set up.
#[derive(Debug)]
enum Owner {
    /// A person's, for the kiosk.
    Person { user_id: String, email: Email },
    /// The signed-in admin's own, for the pane.
    Admin(AdminName),
}

/// A key being set up.
#[derive(Debug)]
pub struct KeyStaging {
    owner: Owner,
    enrolment: Enrolment,
    /// Checked and waiting for its name.
    key: Option<NewKey>,
    /// Registered.
    done: Option<MethodSummary>,
}

/// What the pane shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStagingView {
    /// The person's email, or the admin's name.
    pub owner: String,
    /// Where the conversation with the key is.
    pub key: Phase,
    /// Set once the key answered: the name to offer (its model, if known).
    pub suggested: Option<String>,
    /// Set once the key is registered.
    pub done: Option<MethodSummary>,
}

/// Why a key cannot be staged, or no longer is.
#[derive(Debug, Error)]
pub enum KeyStagingError {
    /// The person's account is disabled.
    #[error("{0} is disabled")]
    Disabled(Email),
    /// The conversation could not start, or the key's answer was refused
    /// (details in the log and, for a person, the audit log).
    #[error("the key was refused")]
    KeyRefused,
    /// No key is being set up (or it is not ready for this yet).
    #[error("no key is being set up")]
    NotRunning,
    /// The name breaks the rules.
    #[error("a key's name has 1 to {max} characters")]
    LabelRules {
        /// The longest name.
        max: usize,
    },
    /// The directory refused or failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The admin's record refused or failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

fn cannot_start(error: KeyError) -> KeyStagingError {
    tracing::error!(%error, "cannot start setting up a key");
    KeyStagingError::KeyRefused
}

impl KeyStaging {
    /// Starts setting up a key for the person of `email`; their keys are
    /// excluded, and the policy's key models apply.
    pub async fn for_person(
        directory: &Directory,
        rp: &RelyingParty,
        keys: &KeySource,
        email: &Email,
    ) -> Result<Self, KeyStagingError> {
        let person = directory.show_user(email).await?;
        let (user_id, stored) = directory
            .keys_of(email)
            .await?
            .ok_or_else(|| KeyStagingError::Disabled(email.clone()))?;
        let passkeys: Vec<_> = stored.into_iter().map(|k| k.passkey).collect();
        let handle = Uuid::parse_str(&user_id).unwrap_or_else(|_| Uuid::new_v4());
        let name = person
            .summary
            .display_name
            .unwrap_or_else(|| email.to_string());
        let policy = directory.policy().await?;
        let person = (handle, email.as_str(), name.as_str());
        let enrolment = Enrolment::start(rp, keys, person, &passkeys, policy.keys.allow_list())
            .map_err(cannot_start)?;
        let owner = Owner::Person {
            user_id,
            email: email.clone(),
        };
        Ok(Self::new(owner, enrolment))
    }

    /// Starts setting up a key for the admin `name`, with which they then
    /// sign in to the pane; their keys are excluded.
    pub async fn for_admin(
        directory: &Directory,
        rp: &RelyingParty,
        keys: &KeySource,
        name: &AdminName,
    ) -> Result<Self, KeyStagingError> {
        let passkeys = directory.admin_passkeys(name).await?;
        let policy = directory.policy().await?;
        let admin = (Uuid::new_v4(), name.as_str(), name.as_str());
        let enrolment = Enrolment::start(rp, keys, admin, &passkeys, policy.keys.allow_list())
            .map_err(cannot_start)?;
        Ok(Self::new(Owner::Admin(name.clone()), enrolment))
    }

    fn new(owner: Owner, enrolment: Enrolment) -> Self {
        Self {
            owner,
            enrolment,
            key: None,
            done: None,
        }
    }

    /// What the pane shows now.
    pub fn view(&self) -> KeyStagingView {
        KeyStagingView {
            owner: match &self.owner {
                Owner::Person { email, .. } => email.to_string(),
                Owner::Admin(name) => name.to_string(),
            },
            key: self.enrolment.phase(),
            suggested: self
                .key
                .as_ref()
                .map(|k| k.aaguid.and_then(model_name).unwrap_or("").to_string()),
            done: self.done.clone(),
        }
    }

    /// Checks the key's answer once it came, and says where things are. A
    /// refused answer (a model the policy does not allow, say) is in the
    /// person's audit log; the staging is over then, and the caller drops
    /// it.
    pub async fn poll(
        &mut self,
        directory: &Directory,
        rp: &RelyingParty,
    ) -> Result<KeyStagingView, KeyStagingError> {
        match self.enrolment.finish(rp) {
            None => {}
            Some(Ok(key)) => self.key = Some(key),
            Some(Err(e)) => {
                tracing::warn!(%e, "a staged key's answer was refused");
                let refused = match &self.owner {
                    Owner::Person { email, .. } => directory.refuse_key(email, e.into()).await,
                    Owner::Admin(_) => e.into(),
                };
                return Err(match refused {
                    DirectoryError::Invalid(_) => KeyStagingError::KeyRefused,
                    other => other.into(),
                });
            }
        }
        Ok(self.view())
    }

    /// The key's PIN, or a new one typed twice.
    pub fn give_pin(&self, pin: &str, again: Option<&str>) -> Result<(), PinProblem> {
        self.enrolment.give_pin(pin, again)
    }

    /// Asks the key again after it failed.
    pub fn retry(&mut self, rp: &RelyingParty) -> Result<(), KeyStagingError> {
        if self.enrolment.retry(rp) {
            Ok(())
        } else {
            Err(KeyStagingError::NotRunning)
        }
    }

    /// Registers the checked key under `label`: to the person (the kiosk's
    /// key from now on), or to the admin (the pane's). Asked twice, the
    /// second answer is the first.
    pub async fn name(
        &mut self,
        directory: &Directory,
        label: &str,
    ) -> Result<MethodSummary, KeyStagingError> {
        if let Some(done) = &self.done {
            return Ok(done.clone());
        }
        let key = self.key.as_ref().ok_or(KeyStagingError::NotRunning)?;
        if check_label(label).is_err() {
            return Err(KeyStagingError::LabelRules {
                max: MAX_LABEL_CHARS,
            });
        }
        let method = match &self.owner {
            Owner::Person { user_id, email } => {
                directory
                    .add_security_key_for((user_id, email), label, key)
                    .await?
            }
            Owner::Admin(name) => {
                let added = directory.add_admin_key(name, label, key).await?;
                MethodSummary {
                    id: added.id,
                    kind: "fido2".into(),
                    label: added.label,
                    created_at: added.created_at,
                    last_used_at: None,
                }
            }
        };
        self.done = Some(method.clone());
        Ok(method)
    }
}
