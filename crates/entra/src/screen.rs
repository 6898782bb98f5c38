//! The people passes are asked for, looked up before any is issued:
//! Graph issues a pass to a guest account, or to someone outside the pass
//! policy's targets, and answers success, but the pass would never sign
//! them in (a guest signs in with a pass from their home organisation;
//! "only users included in the policy can sign-in with it"). And Graph's
//! POST silently replaces a person's pass, so a batch must know who has
//! one. Asked in `$batch` calls: two requests per person (the account,
//! its passes), and one more when the policy's targets name groups.

use crate::graph::{BATCH_SIZE, BatchRequest, EntraError, Graph};
use crate::passes::{self, EntraPass};
use crate::targets::Targets;
use serde_json::Value;

/// An account of the tenant.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub id: String,
    pub user_name: String,
    pub name: Option<String>,
}

/// What the account's own fields say, as asked with [`ACCOUNT_FIELDS`].
pub(crate) fn account(found: &Value, url: &str) -> Result<Account, EntraError> {
    let text = |field: &str| found.get(field).and_then(Value::as_str).map(String::from);
    match (text("id"), text("userPrincipalName")) {
        (Some(id), Some(user_name)) => Ok(Account {
            id,
            user_name,
            name: text("displayName"),
        }),
        _ => Err(crate::graph::unexpected(
            url,
            "the account has no id or user principal name".into(),
        )),
    }
}

/// The `$select` of an account look-up.
pub(crate) const ACCOUNT_FIELDS: &str = "id,userPrincipalName,displayName,userType";

/// A person a pass is asked for, as the tenant knows them.
#[derive(Debug)]
pub(crate) struct Screened {
    pub account: Account,
    /// A guest (`userType` `Guest`): their home tenant issues their passes.
    pub guest: bool,
    /// Their pass, if it can still sign them in (valid, or not yet).
    pub live_pass: Option<EntraPass>,
    /// Within the pass policy's targets.
    pub targeted: bool,
}

impl Screened {
    /// Why a pass for this person (`who`, as IT typed them) would not
    /// sign them in, in plain words.
    pub fn refusal(&self, who: &str) -> Option<String> {
        if self.guest {
            return Some(format!(
                "{who} is a guest account in this tenant: a guest signs in with a pass from their own organisation, not one issued here"
            ));
        }
        if !self.targeted {
            return Some(format!(
                "{who} is outside the targets of the tenant's Temporary Access Pass policy: Entra would issue the pass, but its sign-in page would not take it. Add them (or one of their groups) to the policy in Entra"
            ));
        }
        None
    }
}

/// Which question about a person Graph refused.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The account's look-up (404: no such account).
    Account(EntraError),
    /// The list of their passes.
    Passes(EntraError),
    /// Their groups.
    Groups(EntraError),
}

/// Looks up `users` (user principal names or object ids): each one as the
/// tenant knows them, or the question Graph refused. Fails whole only when
/// Graph answers no call.
pub(crate) async fn screen(
    graph: &Graph,
    targets: &Targets,
    users: &[String],
) -> Result<Vec<Result<Screened, Failed>>, EntraError> {
    let requests: Vec<BatchRequest> = users
        .iter()
        .flat_map(|user| {
            let account = format!(
                "/users/{}?$select={ACCOUNT_FIELDS}",
                crate::check::url_path(user)
            );
            [get(account), get(passes::path_of(user))]
        })
        .collect();
    let mut answers = send(graph, &requests).await?.into_iter();
    let mut screened = Vec::with_capacity(users.len());
    while let (Some(found), Some(listed)) = (answers.next(), answers.next()) {
        screened.push(read(found, listed));
    }
    if targets.names_groups() {
        check_groups(graph, targets, &mut screened).await?;
    }
    Ok(screened)
}

fn get(path: String) -> BatchRequest {
    BatchRequest {
        method: "GET",
        path,
        body: None,
    }
}

/// `requests` in as many `$batch` calls as they need.
async fn send(
    graph: &Graph,
    requests: &[BatchRequest],
) -> Result<Vec<Result<crate::graph::Answer, EntraError>>, EntraError> {
    let mut answers = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(BATCH_SIZE) {
        answers.extend(graph.batch(chunk).await?);
    }
    Ok(answers)
}

type Answered = Result<crate::graph::Answer, EntraError>;

fn read(found: Answered, listed: Answered) -> Result<Screened, Failed> {
    let found = found.map_err(Failed::Account)?.body;
    let account = account(&found, "/users").map_err(Failed::Account)?;
    let live_pass = listed
        .map_err(Failed::Passes)?
        .body
        .get("value")
        .and_then(Value::as_array)
        .and_then(|passes| passes.first())
        .map(passes::read)
        .filter(|pass| !matches!(pass.reason.as_str(), "Expired" | "OneTimeUsed"));
    Ok(Screened {
        account,
        guest: found.get("userType").and_then(Value::as_str) == Some("Guest"),
        live_pass,
        targeted: true,
    })
}

/// Asks which of the policy's groups each found person is in; a refused
/// question is that person's alone.
async fn check_groups(
    graph: &Graph,
    targets: &Targets,
    screened: &mut [Result<Screened, Failed>],
) -> Result<(), EntraError> {
    let (found, requests): (Vec<usize>, Vec<BatchRequest>) = screened
        .iter()
        .enumerate()
        .filter_map(|(index, s)| {
            let id = &s.as_ref().ok()?.account.id;
            let path = format!("/users/{}/checkMemberGroups", crate::check::url_path(id));
            Some((
                index,
                BatchRequest {
                    method: "POST",
                    path,
                    body: Some(targets.member_groups_request()),
                },
            ))
        })
        .unzip();
    let answers = send(graph, &requests).await?;
    for (index, answer) in found.into_iter().zip(answers) {
        match (answer, &mut screened[index]) {
            (Ok(answer), Ok(person)) => person.targeted = targets.admits(&answer.body),
            (Err(error), slot) => *slot = Err(Failed::Groups(error)),
            (Ok(_), Err(_)) => {}
        }
    }
    Ok(())
}
