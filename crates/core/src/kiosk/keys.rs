//! The security-key steps of the kiosk flow: `KeySetup` (plug in, set or
//! type the PIN, touch) → `KeyName` → `KeyTest` (a fresh sign-in) → Done.
//! The key's conversation runs in a [`Ceremony`]; `tick` collects its
//! answer. The registration and sign-in states stay in the step and are
//! consumed when the answer is checked.

use super::{Kiosk, KioskError, Language, Notice, Screen, Step, name_of};
use crate::directory::DirectoryError;
use crate::directory::methods::{MAX_LABEL_CHARS, check_label};
use crate::email::Email;
use crate::fido::ceremony::{Ceremony, Phase, PinProblem};
use crate::fido::{KeyError, NewKey, RelyingParty, Uuid};
use crate::redeem::KioskSession;
use std::sync::Arc;

/// The name a new key is offered under.
pub(super) fn suggested_name(aaguid: Option<Uuid>, language: Language) -> String {
    let model = aaguid.and_then(crate::fido::model_name);
    model.map(str::to_string).unwrap_or_else(|| match language {
        Language::En => "Security key".into(),
        Language::Fr => "Clé de sécurité".into(),
    })
}

impl Kiosk {
    fn relying_party(&self) -> Option<Arc<RelyingParty>> {
        self.settings.relying_party.clone()
    }

    /// Choose or Security info: starts registering a security key (keys the
    /// person has are excluded).
    pub async fn add_security_key(&mut self) -> Result<Screen, KioskError> {
        if let Step::TenantChoose { .. } | Step::TenantSecurityInfo { .. } = self.step {
            return self.add_tenant_key().await;
        }
        let session = match &self.step {
            Step::Choose { session, .. } | Step::SecurityInfo { session, .. } => session.clone(),
            _ => return Err(self.wrong_step("add_security_key")),
        };
        let Some(rp) = self.relying_party() else {
            return Err(self.wrong_step("add_security_key"));
        };
        self.touch();
        let registered: Vec<_> = self
            .directory
            .security_keys(&session.user_id)
            .await?
            .into_iter()
            .map(|k| k.passkey)
            .collect();
        let handle = Uuid::parse_str(&session.user_id).unwrap_or_else(|_| Uuid::new_v4());
        let name = name_of(&session);
        let policy = self.directory.policy().await?;
        let allowed = policy.keys.allow_list();
        let started =
            rp.start_registration(handle, session.email.as_str(), &name, &registered, allowed);
        let (challenge, registration) = match started {
            Ok(started) => started,
            Err(e) => {
                tracing::error!(%e, "cannot start a key registration");
                self.notice = Some(Notice::KeyRefused);
                return Ok(self.screen());
            }
        };
        let ceremony =
            Ceremony::register(&self.settings.keys, rp.origin().clone(), challenge.clone());
        self.step = Step::KeySetup {
            session,
            challenge,
            registration,
            ceremony,
        };
        Ok(self.screen())
    }

    /// Welcome: "Test my key" asks for the email the key is for.
    pub async fn start_key_check(&mut self, language: Language) -> Result<Screen, KioskError> {
        if self.relying_party().is_none() && self.tenant().is_none() {
            return Err(self.wrong_step("start_key_check"));
        }
        let email = Step::KeyCheckEmail {
            typed: String::new(),
        };
        self.leave_welcome("start_key_check", language, email)
    }

    /// "Test my key", email: asks the person's keys to sign in. No pass is
    /// needed; nothing changes but the key's counter and last use.
    pub async fn check_key_email(&mut self, typed: &str) -> Result<Screen, KioskError> {
        if !matches!(self.step, Step::KeyCheckEmail { .. }) {
            return Err(self.wrong_step("check_key_email"));
        }
        let (tenant, rp) = (self.tenant(), self.relying_party());
        if tenant.is_none() && rp.is_none() {
            return Err(self.wrong_step("check_key_email"));
        }
        self.touch();
        let Ok(email) = Email::parse(typed) else {
            self.step = Step::KeyCheckEmail {
                typed: typed.trim().chars().take(254).collect(),
            };
            self.notice = Some(Notice::InvalidEmail);
            return Ok(self.screen());
        };
        if let Some(tenant) = tenant {
            return self.check_tenant_key_email(&*tenant, email).await;
        }
        let Some(rp) = rp else {
            return Err(self.wrong_step("check_key_email"));
        };
        let found = self.directory.keys_of(&email).await?;
        let (challenge, check) = match found.filter(|(_, keys)| !keys.is_empty()) {
            Some((user_id, keys)) => {
                let passkeys: Vec<_> = keys.into_iter().map(|k| k.passkey).collect();
                match rp.start_authentication(&passkeys) {
                    Ok((challenge, authentication)) => (challenge, Some((user_id, authentication))),
                    Err(e) => {
                        tracing::error!(%e, "cannot start a key check");
                        self.notice = Some(Notice::KeyRefused);
                        return Ok(self.screen());
                    }
                }
            }
            // Unknown, or no keys: the key is asked all the same, and finds
            // nothing, as it would for someone else's account.
            None => (rp.decoy_authentication(), None),
        };
        let ceremony =
            Ceremony::authenticate(&self.settings.keys, rp.origin().clone(), challenge.clone());
        self.step = Step::KeyCheck {
            email,
            check,
            challenge,
            ceremony,
        };
        Ok(self.screen())
    }

    /// Key setup or test: the key's PIN, or a new PIN typed twice.
    pub async fn key_pin(&mut self, pin: &str, again: Option<&str>) -> Result<Screen, KioskError> {
        let (Step::KeySetup { ceremony, .. }
        | Step::TenantKeySetup { ceremony, .. }
        | Step::KeyTest { ceremony, .. }
        | Step::KeyCheck { ceremony, .. }
        | Step::TenantKeyCheck { ceremony, .. }) = &self.step
        else {
            return Err(self.wrong_step("key_pin"));
        };
        let notice = match ceremony.give_pin(pin, again) {
            Ok(()) | Err(PinProblem::NotAsked) => None,
            Err(PinProblem::PinsDiffer) => Some(Notice::PinsDiffer),
            Err(PinProblem::PinRules { min }) => Some(Notice::PinRules { min }),
        };
        self.touch();
        self.notice = notice;
        Ok(self.screen())
    }

    /// Key setup or test, after the key failed (no key, timeout…): asks
    /// again with the same challenge.
    pub async fn retry_key(&mut self) -> Result<Screen, KioskError> {
        if let Step::TenantKeySetup { .. } = self.step {
            return self.retry_tenant_key().await;
        }
        if let Step::TenantKeyCheck { .. } = self.step {
            return self.retry_tenant_key_check();
        }
        let source = self.settings.keys.clone();
        let Some(rp) = self.relying_party() else {
            return Err(self.wrong_step("retry_key"));
        };
        let origin = rp.origin().clone();
        match &mut self.step {
            Step::KeySetup {
                challenge,
                ceremony,
                ..
            } if ceremony.phase().failed() => {
                *ceremony = Ceremony::register(&source, origin, challenge.clone());
            }
            Step::KeyTest {
                challenge,
                ceremony,
                ..
            }
            | Step::KeyCheck {
                challenge,
                ceremony,
                ..
            } if ceremony.phase().failed() => {
                *ceremony = Ceremony::authenticate(&source, origin, challenge.clone());
            }
            _ => return Err(self.wrong_step("retry_key")),
        }
        self.touch();
        Ok(self.screen())
    }

    /// Key name: registers the key under `label` (if the policy allows its
    /// model), then asks it to sign in once.
    pub async fn name_key(&mut self, label: &str) -> Result<Screen, KioskError> {
        if let Step::TenantKeyName { .. } = self.step {
            return self.name_tenant_key(label).await;
        }
        let Step::KeyName { session, key, .. } = &self.step else {
            return Err(self.wrong_step("name_key"));
        };
        let (session, key) = (session.clone(), key.clone());
        self.touch();
        // Said as what it is: a name to fix, not a key that failed.
        if check_label(label).is_err() {
            self.notice = Some(Notice::KeyNameRules {
                max: MAX_LABEL_CHARS,
            });
            return Ok(self.screen());
        }
        let added = self.directory.add_security_key(&session, label, &key).await;
        match added {
            Ok(_) => self.start_key_test(session, &key).await,
            Err(DirectoryError::Invalid(_)) => {
                self.notice = Some(Notice::KeyRefused);
                Ok(self.screen())
            }
            Err(refused) => self.back_to_choose(session, refused).await,
        }
    }

    async fn start_key_test(
        &mut self,
        session: KioskSession,
        key: &NewKey,
    ) -> Result<Screen, KioskError> {
        let Some(rp) = self.relying_party() else {
            return Err(self.wrong_step("name_key"));
        };
        let (challenge, authentication) =
            match rp.start_authentication(std::slice::from_ref(&key.passkey)) {
                Ok(started) => started,
                Err(e) => return self.back_to_choose(session, key_failure(e)).await,
            };
        let ceremony =
            Ceremony::authenticate(&self.settings.keys, rp.origin().clone(), challenge.clone());
        self.step = Step::KeyTest {
            session,
            challenge,
            authentication,
            ceremony,
        };
        Ok(self.screen())
    }

    /// Back to Choose with the notice for a refused key.
    async fn back_to_choose(
        &mut self,
        session: KioskSession,
        refused: DirectoryError,
    ) -> Result<Screen, KioskError> {
        let notice = match refused {
            DirectoryError::KeyNotAllowed { .. } | DirectoryError::KeyUnproven { .. } => {
                Notice::KeyNotAllowed
            }
            DirectoryError::KeyRegistered => Notice::KeyRegistered,
            DirectoryError::KeyCloned => Notice::KeyCloned,
            DirectoryError::ClaimLost => return self.end_session(Notice::SessionEnded).await,
            DirectoryError::Invalid(_) => Notice::KeyRefused,
            other => return Err(other.into()),
        };
        self.step = self.choose(session).await?;
        self.notice = Some(notice);
        Ok(self.screen())
    }

    /// Checks the key's answer, if it came: a registration goes on to
    /// naming the key, a sign-in to Done.
    pub(super) async fn collect_key_answer(&mut self) -> Result<(), KioskError> {
        if let Step::TenantKeyCheck { ceremony, .. } = &self.step {
            if ceremony.take_assertion().is_some() {
                let named = ceremony.accounts_named();
                self.touch();
                self.finish_tenant_key_check(&named);
            }
            return Ok(());
        }
        if let Step::TenantKeySetup { ceremony, .. } = &self.step {
            if let Some(answer) = ceremony.take_registration() {
                self.touch();
                let Step::TenantKeySetup {
                    person, options, ..
                } = std::mem::replace(&mut self.step, Step::Welcome)
                else {
                    unreachable!("matched above");
                };
                self.tenant_key_answered(person, options.expires_at, answer);
            }
            return Ok(());
        }
        let Some(rp) = self.relying_party() else {
            return Ok(());
        };
        let answered = match &self.step {
            Step::KeySetup { ceremony, .. }
            | Step::KeyTest { ceremony, .. }
            | Step::KeyCheck { ceremony, .. } => ceremony.phase() == Phase::Answered,
            _ => false,
        };
        if !answered {
            return Ok(());
        }
        self.touch();
        let session = self.step.session().cloned();
        let checked = self.check_key_answer(&rp).await;
        match checked {
            // The step, and the ceremony state in it, went with the error:
            // say so on Welcome (an error alone would be gone at the next
            // tick), and give the pass back now rather than when its claim
            // runs out. Unlike other session ends, the language stays: the
            // person still in front of the kiosk is the one to read this.
            Err(error) if matches!(self.step, Step::Welcome) => {
                tracing::error!(%error, "the kiosk flow ended on a directory error");
                let released = match session {
                    Some(session) => self.directory.release_session(&session).await,
                    None => Ok(()),
                };
                if let Err(e) = released {
                    tracing::warn!(%e, "cannot release the session; its claim runs out on its own");
                }
                self.notice = Some(Notice::SessionFailed);
                Ok(())
            }
            checked => checked,
        }
    }

    /// Takes the answered step: a registration goes on to naming the key,
    /// a sign-in to Done or a refusal. On an error the kiosk is left on
    /// Welcome.
    async fn check_key_answer(&mut self, rp: &RelyingParty) -> Result<(), KioskError> {
        match std::mem::replace(&mut self.step, Step::Welcome) {
            Step::KeySetup {
                session,
                registration,
                ceremony,
                ..
            } => {
                let Some(answer) = ceremony.take_registration() else {
                    return Ok(());
                };
                match rp.finish_registration(&answer, registration) {
                    Ok(key) => {
                        let suggested = suggested_name(key.aaguid, self.language);
                        self.step = Step::KeyName {
                            session,
                            key: Box::new(key),
                            suggested,
                        };
                    }
                    Err(e) => {
                        let refused = self.directory.refuse_key(&session.email, key_failure(e));
                        let refused = refused.await;
                        self.back_to_choose(session, refused).await?;
                    }
                }
            }
            Step::KeyTest {
                session,
                authentication,
                ceremony,
                ..
            } => {
                let Some(answer) = ceremony.take_assertion() else {
                    return Ok(());
                };
                let checked = rp
                    .finish_authentication(&answer, authentication)
                    .map_err(key_failure);
                let recorded = match checked {
                    Ok(result) => {
                        self.directory
                            .record_key_sign_in(&session.user_id, &session.email, &result)
                            .await
                    }
                    Err(e) => Err(self.directory.refuse_key(&session.email, e).await),
                };
                match recorded {
                    Ok(_) => {
                        let methods = self.directory.methods(&session.user_id).await?;
                        self.step = Step::Done {
                            name: name_of(&session),
                            methods,
                        };
                    }
                    Err(refused) => {
                        self.back_to_choose(session, refused).await?;
                    }
                }
            }
            Step::KeyCheck {
                email,
                check,
                ceremony,
                ..
            } => {
                let Some(answer) = ceremony.take_assertion() else {
                    return Ok(());
                };
                self.finish_key_check(rp, email, check, &answer).await?;
            }
            other => self.step = other,
        }
        Ok(())
    }

    async fn finish_key_check(
        &mut self,
        rp: &RelyingParty,
        email: Email,
        check: Option<(String, crate::fido::Authentication)>,
        answer: &crate::fido::PublicKeyCredential,
    ) -> Result<(), KioskError> {
        // A decoy request cannot be answered by a real key.
        let Some((user_id, authentication)) = check else {
            self.step = Step::KeyCheckEmail {
                typed: email.to_string(),
            };
            self.notice = Some(Notice::KeyRefused);
            return Ok(());
        };
        let user_id = user_id.as_str();
        let checked = rp
            .finish_authentication(answer, authentication)
            .map_err(key_failure);
        let recorded = match checked {
            Ok(result) => {
                self.directory
                    .record_key_sign_in(user_id, &email, &result)
                    .await
            }
            Err(e) => Err(self.directory.refuse_key(&email, e).await),
        };
        match recorded {
            Ok(method) => {
                self.step = Step::KeyCheckPassed {
                    email,
                    label: method.label,
                }
            }
            Err(refused) => {
                self.notice = Some(match refused {
                    DirectoryError::KeyCloned => Notice::KeyCloned,
                    DirectoryError::KeyNotAllowed { .. } => Notice::KeyNotAllowed,
                    DirectoryError::Invalid(_) => Notice::KeyRefused,
                    other => return Err(other.into()),
                });
                self.step = Step::KeyCheckEmail {
                    typed: email.to_string(),
                };
            }
        }
        Ok(())
    }
}

/// A refused key answer, in directory terms (details to the log).
fn key_failure(error: KeyError) -> DirectoryError {
    tracing::warn!(%error, "a security key's answer was refused");
    error.into()
}
