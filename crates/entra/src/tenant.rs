//! The kiosk's [`Tenant`] on Microsoft Entra ID: the person's account
//! found by the email typed (their user principal name), Microsoft's own
//! sign-in page for their Entra pass, and their new key registered through
//! Graph.

use crate::graph::{BATCH_SIZE, EntraError, Graph};
use crate::passes::{self, TapPolicy};
use crate::screen::{ACCOUNT_FIELDS, Account, Failed, Screened, account, screen};
use crate::signin::{SignIn, SignInError};
use crate::targets::Targets;
use async_trait::async_trait;
use std::sync::Arc;
use tapkiosk_core::Email;
use tapkiosk_core::fido::{RegisterPublicKeyCredential, Url};
use tapkiosk_core::tenant::{
    IssuedTenantPass, KeyOptions, PassTerms, RevokedTenantPass, Tenant, TenantError, TenantKey,
    TenantMethod, TenantPass, TenantPerson, TenantSignIn,
};

/// An Entra tenant, through the kiosk's app.
#[derive(Debug)]
pub struct EntraTenant {
    graph: Arc<Graph>,
    redirect_uri: Url,
    security_info: Url,
    hosts: Vec<String>,
    targets: std::sync::Mutex<Option<Targets>>,
}

impl EntraTenant {
    /// The tenant `graph` signs in to; its sign-in window may show the
    /// authority's host and the configured federation hosts.
    pub fn new(graph: Arc<Graph>) -> Self {
        let settings = graph.settings();
        let mut hosts = settings.sign_in_hosts.clone();
        hosts.extend(settings.authority.host_str().map(str::to_ascii_lowercase));
        Self {
            redirect_uri: settings.redirect_uri.clone(),
            security_info: settings.security_info.clone(),
            graph,
            hosts,
            targets: std::sync::Mutex::default(),
        }
    }
}

/// An unknown account, Graph's refusal in its words, or an unreachable
/// tenant.
fn account_or(error: EntraError) -> TenantError {
    match error {
        EntraError::Graph { status: 404, .. } => TenantError::UnknownAccount,
        EntraError::Graph {
            status, message, ..
        } if (400..500).contains(&status) && status != 429 => TenantError::Refused(message),
        other => unavailable(other),
    }
}

/// A refusal of a pass request, in plain words when the app lacks the
/// permission (Graph says only "Insufficient privileges").
fn pass_refused(error: EntraError) -> TenantError {
    match error {
        EntraError::Graph { status: 403, .. } => TenantError::Refused(PASS_PERMISSION.into()),
        other => account_or(other),
    }
}

/// The tenant's pass policy, or why it cannot be read, in plain words
/// when the app lacks the permission.
async fn tap_policy(graph: &Graph) -> Result<TapPolicy, TenantError> {
    TapPolicy::read(graph).await.map_err(|error| match error {
        EntraError::Graph { status: 403, .. } => TenantError::Refused(POLICY_PERMISSION.into()),
        other => unavailable(other),
    })
}

/// What IT reads when the app may not read the pass policy.
const POLICY_PERMISSION: &str = "the kiosk's app may not read the authentication methods policy: grant it Policy.Read.AuthenticationMethod with admin consent; `tapctl entra check` lists what is missing";

/// What IT reads when the app may not manage passes.
const PASS_PERMISSION: &str = "the kiosk's app may not manage Temporary Access Passes: grant it UserAuthMethod-TAP.ReadWrite.All (or UserAuthenticationMethod.ReadWrite.All) with admin consent; `tapctl entra check` lists what is missing";

/// A refused look-up of a person, by the question refused.
fn screen_refused(failed: Failed) -> TenantError {
    match failed {
        Failed::Account(error) | Failed::Groups(error) => account_or(error),
        Failed::Passes(error) => pass_refused(error),
    }
}

/// The object id to send a batch's pass to, or why the row is not sent:
/// the pass would not sign the person in, or Graph's POST would silently
/// replace the live pass they have (perhaps in a letter already).
fn batch_refusal(email: &Email, person: Screened) -> Result<String, TenantError> {
    if let Some(refusal) = person.refusal(email.as_str()) {
        return Err(TenantError::Refused(refusal));
    }
    if person.live_pass.is_some() {
        return Err(TenantError::Refused(format!(
            "{email} already has a pass in the tenant, and a batch never replaces one: revoke it first, or issue theirs on its own"
        )));
    }
    Ok(person.account.id)
}

fn unavailable(error: EntraError) -> TenantError {
    TenantError::Unavailable(error.to_string())
}

/// Refusals of a request the person's own key or account caused, told
/// apart from an unreachable tenant.
fn refused(error: EntraError) -> TenantError {
    match error {
        EntraError::Graph { status, .. } if (400..500).contains(&status) && status != 429 => {
            TenantError::KeyRefused(error.to_string())
        }
        other => unavailable(other),
    }
}

/// The account the typed email names: the one whose user principal name
/// it is, else the one whose `mail` it is (organisations whose sign-in
/// names differ from their addresses); `None` for no account, or several
/// (ambiguous). Its object id and user principal name (the sign-in page's
/// `login_hint`), and their name.
async fn find_account(graph: &Graph, email: &Email) -> Result<Option<Account>, EntraError> {
    let by_name = format!(
        "/users/{}?$select={ACCOUNT_FIELDS}",
        crate::check::url_path(email.as_str())
    );
    match graph.get(&by_name).await {
        Ok(found) => account(&found, &by_name).map(Some),
        Err(EntraError::Graph { status: 404, .. }) => find_by_mail(graph, email).await,
        Err(error) => Err(error),
    }
}

/// The one account whose `mail` is `email`.
async fn find_by_mail(graph: &Graph, email: &Email) -> Result<Option<Account>, EntraError> {
    // OData writes a quote inside a string as two.
    let quoted = email.as_str().replace('\'', "''");
    let filter: String =
        url::form_urlencoded::byte_serialize(format!("mail eq '{quoted}'").as_bytes()).collect();
    let by_mail = format!("/users?$filter={filter}&$select={ACCOUNT_FIELDS}");
    let listed = graph.get(&by_mail).await?;
    match listed["value"].as_array().map(Vec::as_slice) {
        Some([one]) => account(one, &by_mail).map(Some),
        _ => Ok(None),
    }
}

/// The user principal name of the account `email` names (see
/// [`find_account`]), with Graph's own errors: for `tapctl`, which says
/// them in plain words.
pub async fn user_principal_name(
    graph: &Graph,
    email: &Email,
) -> Result<Option<String>, EntraError> {
    Ok(find_account(graph, email)
        .await?
        .map(|account| account.user_name))
}

impl EntraTenant {
    /// The pass policy, read now; its targets are kept for the batch's
    /// calls that follow.
    async fn tap_policy(&self) -> Result<TapPolicy, TenantError> {
        let policy = tap_policy(&self.graph).await?;
        *self.targets.lock().unwrap_or_else(|e| e.into_inner()) = Some(policy.targets.clone());
        Ok(policy)
    }

    /// The pass policy's targets as last read (a batch reads the policy
    /// before its first call), else read now.
    async fn targets(&self) -> Result<Targets, TenantError> {
        let kept = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match kept {
            Some(targets) => Ok(targets),
            None => Ok(self.tap_policy().await?.targets),
        }
    }

    async fn account_of(&self, email: &Email) -> Result<Account, TenantError> {
        find_account(&self.graph, email)
            .await
            .map_err(unavailable)?
            .ok_or(TenantError::UnknownAccount)
    }
    async fn user_principal_name(&self, email: &Email) -> Result<String, TenantError> {
        Ok(self.account_of(email).await?.user_name)
    }

    async fn pass_of_user_name(&self, user_name: &str) -> Result<Option<TenantPass>, TenantError> {
        let listed = passes::list(&self.graph, user_name)
            .await
            .map_err(pass_refused)?;
        Ok(listed.into_iter().next())
    }

    /// The person `email` names (by user principal name, else by mail),
    /// as [`screen`] finds them.
    async fn screened(&self, email: &Email, targets: &Targets) -> Result<Screened, TenantError> {
        let found = screen(&self.graph, targets, &[email.to_string()])
            .await
            .map_err(unavailable)?;
        match found.into_iter().next() {
            Some(Err(Failed::Account(EntraError::Graph { status: 404, .. }))) => {
                self.screened_by_mail(email, targets).await
            }
            Some(answer) => answer.map_err(screen_refused),
            None => Err(TenantError::Unavailable("Graph answered no look-up".into())),
        }
    }

    /// The one account whose mail `email` is, as [`screen`] finds it.
    async fn screened_by_mail(
        &self,
        email: &Email,
        targets: &Targets,
    ) -> Result<Screened, TenantError> {
        let account = find_by_mail(&self.graph, email)
            .await
            .map_err(unavailable)?
            .ok_or(TenantError::UnknownAccount)?;
        let found = screen(&self.graph, targets, &[account.id])
            .await
            .map_err(unavailable)?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| TenantError::Unavailable("Graph answered no look-up".into()))?
            .map_err(screen_refused)
    }

    /// Passes for one `$batch` call's rows: each person looked up first,
    /// and only those a pass would sign in, who have no live one, sent.
    async fn issue_chunk(
        &self,
        targets: &Targets,
        chunk: &[(Email, PassTerms)],
    ) -> Result<Vec<Result<TenantPass, TenantError>>, TenantError> {
        let users: Vec<String> = chunk.iter().map(|(email, _)| email.to_string()).collect();
        let found = screen(&self.graph, targets, &users)
            .await
            .map_err(unavailable)?;
        // A row sent is answered after the call; the others now.
        let mut answers: Vec<Option<Result<TenantPass, TenantError>>> = Vec::new();
        let mut sending: Vec<(String, PassTerms)> = Vec::new();
        for ((email, terms), found) in chunk.iter().zip(found) {
            let found = match found {
                Err(Failed::Account(EntraError::Graph { status: 404, .. })) => {
                    self.screened_by_mail(email, targets).await
                }
                found => found.map_err(screen_refused),
            };
            match found.and_then(|person| batch_refusal(email, person)) {
                Ok(id) => {
                    sending.push((id, terms.clone()));
                    answers.push(None);
                }
                Err(refused) => answers.push(Some(Err(refused))),
            }
        }
        let mut issued = if sending.is_empty() {
            Vec::new()
        } else {
            passes::issue_batch(&self.graph, &sending)
                .await
                .map_err(unavailable)?
        }
        .into_iter();
        Ok(answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| match issued.next() {
                    Some(answer) => answer.map_err(pass_refused),
                    None => Err(TenantError::Unavailable("Graph answered no request".into())),
                })
            })
            .collect())
    }
}

#[async_trait]
impl Tenant for EntraTenant {
    fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    fn security_info_page(&self) -> &Url {
        &self.security_info
    }

    fn allows_host(&self, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    async fn find(&self, email: &Email) -> Result<TenantPerson, TenantError> {
        let account = self.account_of(email).await?;
        Ok(TenantPerson {
            id: account.id,
            email: email.clone(),
            name: account.name,
        })
    }

    async fn start_sign_in(&self, email: &Email) -> Result<TenantSignIn, TenantError> {
        let account = self.account_of(email).await?;
        let sign_in = self
            .graph
            .start_sign_in(&account.id, &account.user_name, self.redirect_uri.as_str())
            .await
            .map_err(unavailable)?;
        Ok(TenantSignIn {
            url: sign_in.url.clone(),
            pending: Box::new(sign_in),
        })
    }

    async fn finish_sign_in(
        &self,
        sign_in: TenantSignIn,
        email: &Email,
        redirect: &Url,
    ) -> Result<TenantPerson, TenantError> {
        let Ok(sign_in) = sign_in.pending.downcast::<SignIn>() else {
            return Err(TenantError::SignInRefused("not an Entra sign-in".into()));
        };
        match self.graph.finish_sign_in(*sign_in, redirect).await {
            Ok(signed_in) => Ok(TenantPerson {
                id: signed_in.id,
                email: email.clone(),
                name: signed_in.name,
            }),
            Err(SignInError::Entra(error)) => Err(unavailable(error)),
            Err(refused) => Err(TenantError::SignInRefused(refused.to_string())),
        }
    }

    async fn methods(&self, person: &TenantPerson) -> Result<Vec<TenantMethod>, TenantError> {
        crate::methods::list(&self.graph, &person.id)
            .await
            .map_err(unavailable)
    }

    async fn remove_key(
        &self,
        person: &TenantPerson,
        id: &str,
    ) -> Result<Option<String>, TenantError> {
        crate::keys::remove(&self.graph, &person.id, id)
            .await
            .map_err(refused)
    }

    async fn pass_of(&self, user: &Email) -> Result<Option<TenantPass>, TenantError> {
        let user_name = self.user_principal_name(user).await?;
        self.pass_of_user_name(&user_name).await
    }

    async fn issue_pass(
        &self,
        user: &Email,
        terms: &PassTerms,
        replace: bool,
    ) -> Result<IssuedTenantPass, TenantError> {
        let policy = self.tap_policy().await?;
        if let Some(refusal) = policy.refusal(terms) {
            return Err(TenantError::Refused(refusal));
        }
        let person = self.screened(user, &policy.targets).await?;
        if let Some(refusal) = person.refusal(user.as_str()) {
            return Err(TenantError::Refused(refusal));
        }
        // One pass per person: a new one replaces the old in the same
        // request, so a refused request leaves the old one.
        if person.live_pass.is_some() && !replace {
            return Err(TenantError::Refused(format!(
                "{user} already has a pass in the tenant: replace it, or revoke it first"
            )));
        }
        let issued = passes::issue(&self.graph, &person.account.id, terms)
            .await
            .map_err(pass_refused)?;
        Ok(IssuedTenantPass {
            pass: issued,
            replaced: person.live_pass.map(|old| old.id),
        })
    }

    async fn pass_refusals(&self, terms: &[PassTerms]) -> Result<Vec<Option<String>>, TenantError> {
        let policy = self.tap_policy().await?;
        Ok(terms.iter().map(|terms| policy.refusal(terms)).collect())
    }

    async fn issue_passes(
        &self,
        asked: &[(Email, PassTerms)],
    ) -> Result<Vec<Result<TenantPass, TenantError>>, TenantError> {
        let targets = self.targets().await?;
        let mut answers = Vec::with_capacity(asked.len());
        for chunk in asked.chunks(BATCH_SIZE) {
            answers.extend(self.issue_chunk(&targets, chunk).await?);
        }
        Ok(answers)
    }

    async fn revoke_pass(&self, user: &Email) -> Result<RevokedTenantPass, TenantError> {
        let user_name = self.user_principal_name(user).await?;
        let Some(pass) = self.pass_of_user_name(&user_name).await? else {
            return Err(TenantError::Refused(format!(
                "{user} has no pass in the tenant"
            )));
        };
        let request_id = passes::revoke(&self.graph, &user_name, &pass.id)
            .await
            .map_err(pass_refused)?;
        Ok(RevokedTenantPass {
            id: pass.id,
            request_id,
        })
    }

    async fn key_options(&self, person: &TenantPerson) -> Result<KeyOptions, TenantError> {
        crate::keys::creation_options(&self.graph, &person.id)
            .await
            .map_err(refused)
    }

    async fn register_key(
        &self,
        person: &TenantPerson,
        name: &str,
        answer: &RegisterPublicKeyCredential,
    ) -> Result<TenantKey, TenantError> {
        let key = crate::keys::register_key(&self.graph, &person.id, name, answer)
            .await
            .map_err(refused)?;
        Ok(TenantKey {
            id: key.id,
            name: key.display_name,
            model: key.model,
            request_id: key.request_id,
        })
    }
}
