//! The kiosk flow on a tenant (Microsoft Entra ID): `Email → TenantSignIn`
//! (the tenant's own page checks its pass) `→ KeySetup → KeyName →` the key
//! registered in the tenant. The sign-in is a step of its own; the key
//! steps show the same screens as on the local directory.

use super::{Kiosk, KioskError, Notice, Screen, Step, keys::suggested_name};
use crate::directory::entra::EntraChange;
use crate::directory::methods::{MAX_LABEL_CHARS, check_label};
use crate::email::Email;
use crate::fido::ceremony::Ceremony;
use crate::fido::{RegisterPublicKeyCredential, Url, reported_model};
use crate::tenant::{Tenant, TenantError, TenantMethod, TenantPerson};
use std::sync::Arc;

/// Where the sign-in page's Cancel sends the window: the redirect URI with
/// this query, caught like the real answer.
pub const CANCEL_QUERY: &str = "kiosk=cancel";

/// Where the Security info page's Back sends the window, caught the same
/// way.
pub const BACK_QUERY: &str = "kiosk=back";

/// How long the tenant's Security info page may stay open without the
/// kiosk seeing anyone (it sees no touch there), unless the idle timeout is
/// longer.
pub const SECURITY_PAGE_IDLE: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Entra's passkey relying party (what its key options name), asked when
/// an email names nobody, so that the screens are the same.
const ENTRA_RP_ID: &str = "login.microsoft.com";

/// How long Entra takes an answer to its key options.
const KEY_OPTIONS_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

impl Kiosk {
    pub(super) fn tenant(&self) -> Option<Arc<dyn Tenant>> {
        self.settings.tenant.clone()
    }

    /// The page the kiosk window shows while the person signs in at the
    /// tenant; `None` on other steps.
    pub fn sign_in_page(&self) -> Option<&Url> {
        match &self.step {
            Step::TenantSignIn { sign_in, .. } => Some(&sign_in.url),
            _ => None,
        }
    }

    /// The tenant's Security info page, while the person is on it; `None`
    /// on other steps.
    pub fn security_info_page(&self) -> Option<Url> {
        match &self.step {
            Step::TenantSecurityPage { .. } => {
                self.tenant().map(|t| t.security_info_page().clone())
            }
            _ => None,
        }
    }

    /// Tenant Security info: opens the tenant's own Security info page in
    /// the kiosk window, for what the kiosk cannot register (Microsoft
    /// Authenticator). The person is signed in there already.
    pub async fn open_tenant_security_page(&mut self) -> Result<Screen, KioskError> {
        let Step::TenantSecurityInfo { person, .. } = &self.step else {
            return Err(self.wrong_step("open_tenant_security_page"));
        };
        let person = person.clone();
        self.touch();
        self.step = Step::TenantSecurityPage { person };
        Ok(self.screen())
    }

    /// Back from the tenant's Security info page: the person's methods,
    /// read anew (they may have added some there).
    pub async fn finish_security_info_page(&mut self) -> Result<Screen, KioskError> {
        let Some(tenant) = self.tenant() else {
            return Err(self.wrong_step("finish_security_info_page"));
        };
        let Step::TenantSecurityPage { person } = &self.step else {
            return Err(self.wrong_step("finish_security_info_page"));
        };
        let person = person.clone();
        self.touch();
        self.with_methods(&*tenant, person, |person, methods| {
            Step::TenantSecurityInfo { person, methods }
        })
        .await?;
        Ok(self.screen())
    }

    /// Goes on to `step` with the person's methods read anew. If the tenant
    /// cannot list them, the kiosk goes back to Welcome with the reason.
    async fn with_methods(
        &mut self,
        tenant: &dyn Tenant,
        person: TenantPerson,
        step: fn(TenantPerson, Vec<TenantMethod>) -> Step,
    ) -> Result<(), KioskError> {
        match tenant.methods(&person).await {
            Ok(methods) => self.step = step(person, methods),
            Err(error) => {
                tracing::warn!(%error, "cannot list the person's methods in the tenant");
                self.end_session_quietly().await?;
                self.notice = Some(tenant_notice(&error));
            }
        }
        Ok(())
    }

    /// "Test my key", email, on a tenant: asks the key for the passkey it
    /// keeps for the tenant (no sign-in at the tenant, no pass), to compare
    /// the account it names with the one the email names. The account's
    /// user handle comes from the tenant's key options for it.
    pub(super) async fn check_tenant_key_email(
        &mut self,
        tenant: &dyn Tenant,
        email: Email,
    ) -> Result<Screen, KioskError> {
        let typed_back = || Step::KeyCheckEmail {
            typed: email.to_string(),
        };
        let options = match tenant.find(&email).await {
            Ok(person) => tenant.key_options(&person).await.map(Some),
            // Asked all the same: the key then names someone else, or
            // nobody, as for another person's email.
            Err(TenantError::UnknownAccount) => Ok(None),
            Err(error) => Err(error),
        };
        let options = match options {
            Ok(options) => options,
            Err(error) => {
                self.step = typed_back();
                self.notice = Some(tenant_notice(&error));
                return Ok(self.screen());
            }
        };
        let (rp_id, origin, expected) = match options {
            Some(o) => {
                let user = o.request.public_key.user.id.to_vec();
                (o.request.public_key.rp.id, o.origin, Some(user))
            }
            None => match Url::parse(&format!("https://{ENTRA_RP_ID}")) {
                Ok(origin) => (ENTRA_RP_ID.to_string(), origin, None),
                Err(_) => return Err(self.wrong_step("check_key_email")),
            },
        };
        let challenge = crate::fido::discoverable_request(&rp_id);
        let ceremony =
            Ceremony::authenticate(&self.settings.keys, origin.clone(), challenge.clone());
        self.step = Step::TenantKeyCheck {
            email,
            expected,
            challenge,
            origin,
            ceremony,
        };
        Ok(self.screen())
    }

    /// Tenant "Test my key", after the key failed: asks it again.
    pub(super) fn retry_tenant_key_check(&mut self) -> Result<Screen, KioskError> {
        let keys = self.settings.keys.clone();
        let Step::TenantKeyCheck {
            challenge,
            origin,
            ceremony,
            ..
        } = &mut self.step
        else {
            return Err(self.wrong_step("retry_key"));
        };
        if !ceremony.phase().failed() {
            return Err(self.wrong_step("retry_key"));
        }
        *ceremony = Ceremony::authenticate(&keys, origin.clone(), challenge.clone());
        self.touch();
        Ok(self.screen())
    }

    /// The key answered: one of the accounts its passkeys for the tenant
    /// name (`named`; a key can hold several, one per account) is the
    /// email's, or none is. Only that is checked: the signature is the
    /// tenant's to check when the person signs in.
    pub(super) fn finish_tenant_key_check(&mut self, named: &[Vec<u8>]) {
        let Step::TenantKeyCheck {
            email, expected, ..
        } = std::mem::replace(&mut self.step, Step::Welcome)
        else {
            return;
        };
        if expected
            .as_ref()
            .is_some_and(|wanted| named.contains(wanted))
        {
            self.step = Step::TenantKeyCheckPassed { email };
        } else {
            tracing::info!("the key's passkey for the tenant is another account's");
            self.step = Step::KeyCheckEmail {
                typed: email.to_string(),
            };
            self.notice = Some(Notice::KeyNotForAccount);
        }
    }

    /// Email, on a tenant: starts the tenant's sign-in for that account.
    pub(super) async fn start_tenant_sign_in(
        &mut self,
        tenant: &dyn Tenant,
        email: Email,
    ) -> Result<Screen, KioskError> {
        match tenant.start_sign_in(&email).await {
            Ok(sign_in) => self.step = Step::TenantSignIn { email, sign_in },
            Err(error) => {
                self.step = Step::Email {
                    typed: email.to_string(),
                };
                self.notice = Some(tenant_notice(&error));
            }
        }
        Ok(self.screen())
    }

    /// Tenant sign-in: the address the sign-in page sent the window to.
    /// The person's answer goes on to setting up a key; Cancel goes back
    /// to Email; anything else says the sign-in failed, on Email.
    pub async fn finish_sign_in(&mut self, redirect: &Url) -> Result<Screen, KioskError> {
        let Some(tenant) = self.tenant() else {
            return Err(self.wrong_step("finish_sign_in"));
        };
        let Step::TenantSignIn { .. } = &self.step else {
            return Err(self.wrong_step("finish_sign_in"));
        };
        let Step::TenantSignIn { email, sign_in } =
            std::mem::replace(&mut self.step, Step::Welcome)
        else {
            unreachable!("checked above");
        };
        self.touch();
        let back_to_email = Step::Email {
            typed: email.to_string(),
        };
        if redirect.query() == Some(CANCEL_QUERY) {
            self.step = back_to_email;
            return Ok(self.screen());
        }
        match tenant.finish_sign_in(sign_in, &email, redirect).await {
            Ok(person) => self.tenant_choose(person).await,
            Err(error) => {
                self.step = back_to_email;
                self.notice = Some(tenant_notice(&error));
                Ok(self.screen())
            }
        }
    }

    /// Signed in: what the person can do, with their methods read anew.
    /// If the tenant cannot list them, the kiosk goes back to Welcome with
    /// the reason.
    pub(super) async fn tenant_choose(
        &mut self,
        person: TenantPerson,
    ) -> Result<Screen, KioskError> {
        let Some(tenant) = self.tenant() else {
            return Err(self.wrong_step("choose"));
        };
        self.with_methods(&*tenant, person, |person, methods| Step::TenantChoose {
            person,
            methods,
        })
        .await?;
        Ok(self.screen())
    }

    /// Choose or Security info, on a tenant: starts a new key.
    pub(super) async fn add_tenant_key(&mut self) -> Result<Screen, KioskError> {
        let Some(tenant) = self.tenant() else {
            return Err(self.wrong_step("add_security_key"));
        };
        let (Step::TenantChoose { person, .. } | Step::TenantSecurityInfo { person, .. }) =
            &self.step
        else {
            return Err(self.wrong_step("add_security_key"));
        };
        let person = person.clone();
        self.touch();
        self.start_tenant_key(&*tenant, person).await?;
        Ok(self.screen())
    }

    /// Security info, on a tenant: removes a (lost) security key.
    pub(super) async fn remove_tenant_key(&mut self, id: &str) -> Result<Screen, KioskError> {
        let Some(tenant) = self.tenant() else {
            return Err(self.wrong_step("remove_method"));
        };
        let Step::TenantSecurityInfo { person, methods } = &self.step else {
            return Err(self.wrong_step("remove_method"));
        };
        // Only keys are the kiosk's to remove; the rest is listed only.
        if !methods
            .iter()
            .any(|m| m.id == id && m.kind == "security_key")
        {
            return Err(self.wrong_step("remove_method"));
        }
        let person = person.clone();
        self.touch();
        let removed = tenant.remove_key(&person, id).await;
        let notice = match removed {
            Ok(request_id) => {
                self.directory
                    .record_entra_change(
                        EntraChange::KeyRemoved,
                        person.email.as_str(),
                        id,
                        request_id.as_deref(),
                    )
                    .await?;
                Notice::MethodRemoved
            }
            Err(error) => tenant_notice(&error),
        };
        match tenant.methods(&person).await {
            Ok(methods) => {
                self.step = Step::TenantSecurityInfo { person, methods };
                self.notice = Some(notice);
            }
            Err(error) => {
                self.end_session_quietly().await?;
                self.notice = Some(tenant_notice(&error));
            }
        }
        Ok(self.screen())
    }

    /// Asks the tenant for fresh options and the plugged-in key to answer
    /// them; true when the key is asked. If the tenant fails, the kiosk
    /// goes back to Welcome with the reason: the sign-in is spent.
    async fn start_tenant_key(
        &mut self,
        tenant: &dyn Tenant,
        person: TenantPerson,
    ) -> Result<bool, KioskError> {
        match tenant.key_options(&person).await {
            Ok(mut options) => {
                // Options already past their deadline on this kiosk's clock
                // mean the clock is ahead of the tenant's: keep the
                // tenant's lifetime from now, or the person could never
                // finish. (A clock behind is caught by the tenant, which
                // refuses the late answer.)
                let now = self.directory.now();
                if options.expires_at <= now {
                    tracing::warn!(%now, tenant = %options.expires_at, "this kiosk's clock is ahead of the tenant's");
                    options.expires_at = now + KEY_OPTIONS_LIFETIME;
                }
                let ceremony = Ceremony::register(
                    &self.settings.keys,
                    options.origin.clone(),
                    options.request.clone(),
                );
                self.step = Step::TenantKeySetup {
                    person,
                    options,
                    ceremony,
                };
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start a key for the tenant");
                self.end_session_quietly().await?;
                self.notice = Some(tenant_notice(&error));
                Ok(false)
            }
        }
    }

    /// Tenant key setup, after the key failed: asks again, with fresh
    /// options if the tenant's have run out.
    pub(super) async fn retry_tenant_key(&mut self) -> Result<Screen, KioskError> {
        let Some(tenant) = self.tenant() else {
            return Err(self.wrong_step("retry_key"));
        };
        let now = self.directory.now();
        let (person, expired) = match &self.step {
            Step::TenantKeySetup {
                person,
                options,
                ceremony,
            } if ceremony.phase().failed() => (person.clone(), now >= options.expires_at),
            _ => return Err(self.wrong_step("retry_key")),
        };
        self.touch();
        if expired {
            self.start_tenant_key(&*tenant, person).await?;
        } else if let Step::TenantKeySetup {
            options, ceremony, ..
        } = &mut self.step
        {
            *ceremony = Ceremony::register(
                &self.settings.keys,
                options.origin.clone(),
                options.request.clone(),
            );
        }
        Ok(self.screen())
    }

    /// The key answered: on to naming it.
    pub(super) fn tenant_key_answered(
        &mut self,
        person: TenantPerson,
        expires_at: chrono::DateTime<chrono::Utc>,
        answer: RegisterPublicKeyCredential,
    ) {
        let suggested = suggested_name(reported_model(&answer), self.language);
        self.step = Step::TenantKeyName {
            person,
            answer: Box::new(answer),
            expires_at,
            suggested,
        };
    }

    /// Tenant key name: registers the key in the tenant under `label`. An
    /// answer that waited past the tenant's deadline is asked for again.
    pub(super) async fn name_tenant_key(&mut self, label: &str) -> Result<Screen, KioskError> {
        let Some(tenant) = self.tenant() else {
            return Err(self.wrong_step("name_key"));
        };
        let Step::TenantKeyName {
            person,
            answer,
            expires_at,
            ..
        } = &self.step
        else {
            return Err(self.wrong_step("name_key"));
        };
        let (person, answer, expires_at) = (person.clone(), answer.clone(), *expires_at);
        self.touch();
        if check_label(label).is_err() {
            self.notice = Some(Notice::KeyNameRules {
                max: MAX_LABEL_CHARS,
            });
            return Ok(self.screen());
        }
        if self.directory.now() >= expires_at {
            if self.start_tenant_key(&*tenant, person).await? {
                self.notice = Some(Notice::KeyTooLate);
            }
            return Ok(self.screen());
        }
        match tenant.register_key(&person, label, &answer).await {
            Ok(key) => {
                self.directory
                    .record_entra_change(
                        EntraChange::KeyRegistered,
                        person.email.as_str(),
                        &key.id,
                        key.request_id.as_deref(),
                    )
                    .await?;
                self.step = Step::TenantDone { person, key };
            }
            Err(error) => {
                tracing::warn!(%error, "the tenant did not register the key");
                if self.start_tenant_key(&*tenant, person).await? {
                    self.notice = Some(tenant_notice(&error));
                }
            }
        }
        Ok(self.screen())
    }
}

/// The words for a tenant's refusal (details to the log).
fn tenant_notice(error: &TenantError) -> Notice {
    tracing::info!(%error, "the tenant refused");
    match error {
        TenantError::UnknownAccount => Notice::AccountNotFound,
        TenantError::SignInRefused(_) => Notice::SignInRefused,
        TenantError::KeyRefused(_) | TenantError::Refused(_) => Notice::KeyRefused,
        TenantError::Unavailable(_) => Notice::TenantUnavailable,
    }
}
