//! The kiosk's [`Tenant`] on Microsoft Entra ID: the person's account
//! found by the email typed (their user principal name), Microsoft's own
//! sign-in page for their Entra pass, and their new key registered through
//! Graph.

use crate::graph::{BATCH_SIZE, EntraError, Graph};
use crate::passes::{self, TapPolicy};
use crate::signin::{SignIn, SignInError};
use async_trait::async_trait;
use serde_json::Value;
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
        "/users/{}?$select=id,userPrincipalName,displayName",
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
    let by_mail = format!("/users?$filter={filter}&$select=id,userPrincipalName,displayName");
    let listed = graph.get(&by_mail).await?;
    match listed["value"].as_array().map(Vec::as_slice) {
        Some([one]) => account(one, &by_mail).map(Some),
        _ => Ok(None),
    }
}

fn account(found: &Value, url: &str) -> Result<Account, EntraError> {
    let text = |field: &str| found.get(field).and_then(Value::as_str).map(String::from);
    match (text("id"), text("userPrincipalName")) {
        (Some(id), Some(user_name)) => Ok(Account {
            id,
            user_name,
            name: text("displayName"),
        }),
        _ => Err(EntraError::Unexpected {
            url: url.to_string(),
            reason: "the account has no id or user principal name".into(),
        }),
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

    /// A pass for a row of a batch that no user principal name matched:
    /// the account whose mail it is, if there is one. A failure is this
    /// row's alone: the rest of its call has been answered.
    async fn issue_by_mail(
        &self,
        email: &Email,
        terms: &PassTerms,
    ) -> Result<TenantPass, TenantError> {
        let account = find_by_mail(&self.graph, email)
            .await
            .map_err(unavailable)?
            .ok_or(TenantError::UnknownAccount)?;
        passes::issue(&self.graph, &account.user_name, terms)
            .await
            .map_err(pass_refused)
    }
}

/// An account of the tenant.
struct Account {
    id: String,
    user_name: String,
    name: Option<String>,
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
        let policy = tap_policy(&self.graph).await?;
        if let Some(refusal) = policy.refusal(terms) {
            return Err(TenantError::Refused(refusal));
        }
        let user_name = self.user_principal_name(user).await?;
        // One pass per person: a new one replaces the old in the same
        // request, so a refused request leaves the old one.
        let old = self.pass_of_user_name(&user_name).await?;
        if old.is_some() && !replace {
            return Err(TenantError::Refused(format!(
                "{user} already has a pass in the tenant: replace it, or revoke it first"
            )));
        }
        let issued = passes::issue(&self.graph, &user_name, terms)
            .await
            .map_err(pass_refused)?;
        Ok(IssuedTenantPass {
            pass: issued,
            replaced: old.map(|old| old.id),
        })
    }

    async fn pass_refusals(&self, terms: &[PassTerms]) -> Result<Vec<Option<String>>, TenantError> {
        let policy = tap_policy(&self.graph).await?;
        Ok(terms.iter().map(|terms| policy.refusal(terms)).collect())
    }

    async fn issue_passes(
        &self,
        asked: &[(Email, PassTerms)],
    ) -> Result<Vec<Result<TenantPass, TenantError>>, TenantError> {
        let mut answers = Vec::with_capacity(asked.len());
        for chunk in asked.chunks(BATCH_SIZE) {
            let rows: Vec<(String, PassTerms)> = chunk
                .iter()
                .map(|(email, terms)| (email.to_string(), terms.clone()))
                .collect();
            let answered = passes::issue_batch(&self.graph, &rows)
                .await
                .map_err(unavailable)?;
            for ((email, terms), answer) in chunk.iter().zip(answered) {
                let answer = match answer.map_err(pass_refused) {
                    Err(TenantError::UnknownAccount) => self.issue_by_mail(email, terms).await,
                    answer => answer,
                };
                answers.push(answer);
            }
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
