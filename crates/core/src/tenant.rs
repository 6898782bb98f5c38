//! The port to an outside tenant (Microsoft Entra ID) where people sign in
//! with the tenant's own pass and keep their security keys. The kiosk flow
//! talks to it through [`Tenant`]; the Entra crate implements it over
//! Microsoft Graph, so that this crate has no HTTP in it.

use crate::email::Email;
use crate::fido::{CreationChallengeResponse, RegisterPublicKeyCredential, Url};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::any::Any;
use thiserror::Error;

/// A sign-in started at the tenant: the page to open in the kiosk window,
/// and what the tenant must get back with the answer. Nothing in
/// `pending` reaches the UI; dropped, it forgets the sign-in.
pub struct TenantSignIn {
    /// The tenant's sign-in page.
    pub url: Url,
    /// The state of the sign-in, known to the tenant's implementation.
    pub pending: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for TenantSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantSignIn(<redacted>)")
    }
}

/// Someone the tenant signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPerson {
    /// Their id in the tenant.
    pub id: String,
    /// The email typed at the kiosk.
    pub email: Email,
    /// Their name, when the tenant gave it.
    pub name: Option<String>,
}

/// What a security key is asked to create for a person, and until when the
/// tenant takes the answer.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    /// The request for the key.
    pub request: CreationChallengeResponse,
    /// The origin the key's client data names.
    pub origin: Url,
    /// When the tenant stops taking an answer to this request.
    pub expires_at: DateTime<Utc>,
}

/// A key the tenant registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKey {
    /// Its id in the tenant.
    pub id: String,
    /// Its name, as the tenant keeps it.
    pub name: String,
    /// The model the tenant recognised, when it did.
    pub model: Option<String>,
    /// The tenant's id of the request that registered it, for support.
    pub request_id: Option<String>,
}

/// A way the person signs in to the tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantMethod {
    /// Its id in the tenant.
    pub id: String,
    /// What it is, for the words on screen: `security_key`,
    /// `authenticator`, `password`, `temporary_access_pass`, `phone`,
    /// `email`, `software_oath`, `windows_hello`, `platform_credential`
    /// or `other`.
    pub kind: String,
    /// The name it was given, when it has one.
    pub name: Option<String>,
    /// When it was added, when the tenant says.
    pub created_at: Option<DateTime<Utc>>,
}

/// A person's Temporary Access Pass in the tenant. Its `Debug` never
/// shows the value a new one carries.
pub struct TenantPass {
    /// Its id in the tenant.
    pub id: String,
    /// The pass itself: only when it was just issued.
    pub value: Option<zeroize::Zeroizing<String>>,
    /// When it starts working.
    pub start: Option<DateTime<Utc>>,
    /// How long it works.
    pub lifetime_minutes: i64,
    /// Whether one sign-in uses it up.
    pub one_time: bool,
    /// Whether it works now.
    pub usable: bool,
    /// Why it works or not, in the tenant's words (`EnabledByPolicy`,
    /// `NotYetValid`, `Expired`…).
    pub reason: String,
    /// The tenant's id of the request that issued it.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for TenantPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantPass")
            .field("id", &self.id)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("start", &self.start)
            .field("lifetime_minutes", &self.lifetime_minutes)
            .field("one_time", &self.one_time)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// What a new pass in the tenant is asked to be; the tenant's policy fills
/// what is left out.
#[derive(Debug, Clone, Default)]
pub struct PassTerms {
    /// When it starts; now if `None`.
    pub start: Option<DateTime<Utc>>,
    /// How long it works, in minutes.
    pub lifetime_minutes: Option<i64>,
    /// One-time or not.
    pub one_time: Option<bool>,
}

/// A pass the tenant issued, and the id of the one it replaced.
pub struct IssuedTenantPass {
    /// The new pass, with its value.
    pub pass: TenantPass,
    /// The pass it replaced, if the person had one.
    pub replaced: Option<String>,
}

/// A pass the tenant removed.
#[derive(Debug, Clone)]
pub struct RevokedTenantPass {
    /// Its id in the tenant.
    pub id: String,
    /// The tenant's id of the request that removed it.
    pub request_id: Option<String>,
}

/// What [`TenantError::UnknownAccount`] says: kept as text in a staging
/// list or a batch's rows, where the pane puts its own words instead.
pub const UNKNOWN_ACCOUNT: &str = "no account in the tenant has this email";

/// Why the tenant did not do what was asked. Each has its own words on
/// screen; the details go to the log.
#[derive(Debug, Error)]
pub enum TenantError {
    /// No account of the tenant has this email.
    #[error("{UNKNOWN_ACCOUNT}")]
    UnknownAccount,
    /// The sign-in did not give the person whose email was typed (cancelled,
    /// refused, or an answer that fails its checks).
    #[error("the sign-in was refused: {0}")]
    SignInRefused(String),
    /// The tenant refused the key (policy, a key registered already, an
    /// answer too late).
    #[error("the tenant refused the key: {0}")]
    KeyRefused(String),
    /// The tenant could not be reached or failed.
    #[error("the tenant cannot be reached: {0}")]
    Unavailable(String),
    /// The tenant (or its policy) refused, in its words.
    #[error("{0}")]
    Refused(String),
}

/// How many passes [`Tenant::issue_passes`] takes at once: Graph's
/// `$batch` limit.
pub const PASS_BATCH: usize = 20;

/// A tenant: where people sign in and keep their keys.
#[async_trait]
pub trait Tenant: Send + Sync + std::fmt::Debug {
    /// Where the tenant's sign-in page sends the person back. The kiosk
    /// window never loads it: the app catches the navigation.
    fn redirect_uri(&self) -> &Url;

    /// Whether the kiosk window may show a page of `host` during a sign-in.
    fn allows_host(&self, host: &str) -> bool;

    /// The tenant's own Security info page, for what the kiosk cannot
    /// register itself (Microsoft Authenticator). Shown in the kiosk window
    /// once the person has signed in, with the sign-in's hosts and its own.
    fn security_info_page(&self) -> &Url;

    /// The account of `email`, without a sign-in: for IT, who stage keys
    /// for people who are not there.
    async fn find(&self, email: &Email) -> Result<TenantPerson, TenantError>;

    /// Starts a sign-in for the account of `email`.
    async fn start_sign_in(&self, email: &Email) -> Result<TenantSignIn, TenantError>;

    /// Finishes `sign_in` with the address the page sent the window to.
    async fn finish_sign_in(
        &self,
        sign_in: TenantSignIn,
        email: &Email,
        redirect: &Url,
    ) -> Result<TenantPerson, TenantError>;

    /// The ways `person` signs in.
    async fn methods(&self, person: &TenantPerson) -> Result<Vec<TenantMethod>, TenantError>;

    /// Removes the security key `id` of `person`: the tenant's id of the
    /// request.
    async fn remove_key(
        &self,
        person: &TenantPerson,
        id: &str,
    ) -> Result<Option<String>, TenantError>;

    /// The pass of the account `user`, if it has one.
    async fn pass_of(&self, user: &Email) -> Result<Option<TenantPass>, TenantError>;

    /// Issues `user` a pass; one they have is replaced only if `replace`.
    async fn issue_pass(
        &self,
        user: &Email,
        terms: &PassTerms,
        replace: bool,
    ) -> Result<IssuedTenantPass, TenantError>;

    /// Why the tenant's policy would refuse each of `terms`, read once for
    /// them all: so that a batch is checked whole before any pass is issued.
    async fn pass_refusals(&self, terms: &[PassTerms]) -> Result<Vec<Option<String>>, TenantError>;

    /// Issues passes to up to [`PASS_BATCH`] people in one call: each
    /// one's pass or refusal, in the order asked. The tenant has no
    /// transaction: some may be issued and others refused. `Err` when the
    /// call itself failed, and nobody's result is known.
    async fn issue_passes(
        &self,
        asked: &[(Email, PassTerms)],
    ) -> Result<Vec<Result<TenantPass, TenantError>>, TenantError>;

    /// Removes the pass of `user`.
    async fn revoke_pass(&self, user: &Email) -> Result<RevokedTenantPass, TenantError>;

    /// Fresh options for a new key of `person`.
    async fn key_options(&self, person: &TenantPerson) -> Result<KeyOptions, TenantError>;

    /// Registers the key's `answer` to `person` under `name`.
    async fn register_key(
        &self,
        person: &TenantPerson,
        name: &str,
        answer: &RegisterPublicKeyCredential,
    ) -> Result<TenantKey, TenantError>;
}

#[cfg(test)]
mod tests {
    use super::TenantPass;

    #[test]
    fn a_pass_in_a_log_line_never_shows_its_value() {
        let pass = TenantPass {
            id: "6f1dbb0a".into(),
            value: Some(zeroize::Zeroizing::new("kw9Qx3Tb".into())),
            start: None,
            lifetime_minutes: 60,
            one_time: true,
            usable: true,
            reason: "EnabledByPolicy".into(),
            request_id: None,
        };
        let shown = format!("{pass:?}");
        assert!(!shown.contains("kw9Qx3Tb"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("6f1dbb0a"),
            "{shown}"
        );
    }
}
