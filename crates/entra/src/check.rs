//! `tapctl entra check`: takes a token, reads the tenant's Temporary
//! Access Pass and FIDO2 policies (and a person, when named), and says in
//! plain words what is missing before the kiosk can work on the tenant.

use crate::graph::{EntraError, Graph};
use crate::targets::Targets;
use serde_json::Value;

/// One thing checked: fine, or what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether it is as the kiosk needs.
    pub ok: bool,
    /// What was found, in plain words.
    pub text: String,
}

impl Finding {
    fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
        }
    }

    fn missing(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
        }
    }
}

/// The application permissions the kiosk uses, each with what it is for
/// and the permissions that grant it, least privileged first: the
/// per-method permissions (`UserAuthMethod-Passkey…`, `UserAuthMethod-TAP…`)
/// reach only keys or passes, where `UserAuthenticationMethod.ReadWrite.All`
/// would also let the app change anyone's phone and password methods.
pub const PERMISSIONS: [(&str, &[&str]); 5] = [
    (
        "read the pass and FIDO2 policies",
        &[
            "Policy.Read.AuthenticationMethod",
            "Policy.ReadWrite.AuthenticationMethod",
            "Policy.Read.All",
        ],
    ),
    (
        "find people and their groups",
        &["User.Read.All", "Directory.Read.All"],
    ),
    (
        "register and remove security keys",
        &[
            "UserAuthMethod-Passkey.ReadWrite.All",
            "UserAuthenticationMethod.ReadWrite.All",
        ],
    ),
    (
        "issue, read and revoke passes",
        &[
            "UserAuthMethod-TAP.ReadWrite.All",
            "UserAuthenticationMethod.ReadWrite.All",
        ],
    ),
    (
        "list people's sign-in methods",
        &[
            "UserAuthenticationMethod.Read.All",
            "UserAuthenticationMethod.ReadWrite.All",
        ],
    ),
];

pub(crate) const TAP_POLICY: &str =
    "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass";
const FIDO2_POLICY: &str =
    "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2";

/// Checks the tenant, and `user` (an email or user principal name) when
/// given. A failure to sign in at all is the only error: everything else
/// is a finding.
pub async fn check(graph: &Graph, user: Option<&str>) -> Result<Vec<Finding>, EntraError> {
    let mut findings = vec![Finding::ok(format!(
        "the app signed in to the tenant ({})",
        graph.token_endpoint()
    ))];
    findings.extend(permissions(graph.roles().await?));
    let tap = policy(graph, TAP_POLICY, &mut findings).await;
    if let Some(tap) = &tap {
        findings.push(tap_policy(tap));
    }
    let fido2 = policy(graph, FIDO2_POLICY, &mut findings).await;
    if let Some(fido2) = &fido2 {
        findings.extend(fido2_policy(fido2));
    }
    if let Some(user) = user {
        findings.extend(person(graph, user, tap.as_ref(), fido2.as_ref()).await);
    }
    Ok(findings)
}

/// What the token's roles grant; without readable roles, nothing is said
/// here and the refusals below tell.
fn permissions(roles: Option<Vec<String>>) -> Vec<Finding> {
    let Some(roles) = roles else {
        return Vec::new();
    };
    PERMISSIONS
        .iter()
        .map(|(purpose, grants)| {
            match grants.iter().find(|g| roles.iter().any(|r| r == *g)) {
                Some(granted) => Finding::ok(format!("the app may {purpose} ({granted})")),
                None => Finding::missing(format!(
                    "the app may not {purpose}: add the application permission {} in the app registration and grant admin consent",
                    grants[0]
                )),
            }
        })
        .collect()
}

async fn policy(graph: &Graph, path: &str, findings: &mut Vec<Finding>) -> Option<Value> {
    match graph.get(path).await {
        Ok(policy) => Some(policy),
        Err(error) => {
            findings.push(refused("read a policy", &error));
            None
        }
    }
}

/// A refusal in words: a 403 is a missing permission or consent.
fn refused(what: &str, error: &EntraError) -> Finding {
    match error {
        EntraError::Graph { status: 403, .. } => Finding::missing(format!(
            "Graph would not let the app {what}: grant admin consent for its application permissions ({error})"
        )),
        other => Finding::missing(format!("cannot {what}: {other}")),
    }
}

fn enabled(policy: &Value) -> bool {
    policy.get("state").and_then(Value::as_str) == Some("enabled")
}

fn tap_policy(policy: &Value) -> Finding {
    if !enabled(policy) {
        return Finding::missing(
            "the Temporary Access Pass policy is off: turn it on in Entra (Authentication methods → Temporary Access Pass)",
        );
    }
    let once = policy.get("isUsableOnce").and_then(Value::as_bool) == Some(true);
    Finding::ok(format!(
        "the Temporary Access Pass policy is on ({}, {}–{} min)",
        if once {
            "one-time passes"
        } else {
            "one-time or multi-use"
        },
        number(policy, "minimumLifetimeInMinutes"),
        number(policy, "maximumLifetimeInMinutes"),
    ))
}

fn fido2_policy(policy: &Value) -> Vec<Finding> {
    if !enabled(policy) {
        return vec![Finding::missing(
            "the FIDO2 security key policy is off: turn it on in Entra (Authentication methods → Passkey (FIDO2))",
        )];
    }
    let mut findings = vec![Finding::ok("the FIDO2 security key policy is on")];
    if policy
        .get("isSelfServiceRegistrationAllowed")
        .and_then(Value::as_bool)
        != Some(true)
    {
        findings.push(Finding::missing(
            "FIDO2 \"Allow self-service set up\" is off, so keys cannot be registered: turn it on in the Passkey (FIDO2) policy",
        ));
    }
    findings.push(key_restrictions(policy));
    findings
}

/// The policy's key restrictions, said so that IT can match the kiosk's
/// own allow-list (a key Entra refuses fails only at its registration).
fn key_restrictions(policy: &Value) -> Finding {
    let restrictions = &policy["keyRestrictions"];
    let models = restrictions["aaGuids"].as_array().map_or(0, Vec::len);
    if restrictions["isEnforced"] != true {
        return Finding::ok("FIDO2 key restrictions are off: keys of any model may be registered");
    }
    match restrictions["enforcementType"].as_str() {
        Some("allow") => Finding::ok(format!(
            "FIDO2 key restrictions allow only {models} key model(s) (by AAGUID): Entra refuses keys of other models, so set the same models in the kiosk's policy tab"
        )),
        _ => Finding::ok(format!(
            "FIDO2 key restrictions block {models} key model(s) (by AAGUID): Entra refuses keys of those models"
        )),
    }
}

fn number(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_i64)
        .map_or_else(|| "?".into(), |n| n.to_string())
}

async fn person(
    graph: &Graph,
    user: &str,
    tap: Option<&Value>,
    fido2: Option<&Value>,
) -> Vec<Finding> {
    let path = format!(
        "/users/{}?$select=id,displayName,userPrincipalName,accountEnabled,userType",
        url_path(user)
    );
    let found = match graph.get(&path).await {
        Ok(found) => found,
        Err(EntraError::Graph { status: 404, .. }) => {
            return vec![Finding::missing(format!(
                "there is no user {user} in the tenant"
            ))];
        }
        Err(error) => return vec![refused(&format!("look up {user}"), &error)],
    };
    let id = found
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut findings = Vec::new();
    if found.get("accountEnabled").and_then(Value::as_bool) == Some(false) {
        findings.push(Finding::missing(format!(
            "{user}'s account is disabled in the tenant"
        )));
    } else if found.get("userType").and_then(Value::as_str) == Some("Guest") {
        findings.push(Finding::missing(format!(
            "{user} is a guest account in this tenant: a guest signs in with a pass from their own organisation"
        )));
    } else {
        findings.push(Finding::ok(format!("{user} is in the tenant")));
    }
    for (name, policy) in [("Temporary Access Pass", tap), ("FIDO2", fido2)] {
        if let Some(policy) = policy {
            findings.push(targeted(graph, user, &id, name, policy).await);
        }
    }
    findings
}

/// Whether `user` is among the policy's targets: all users, or one of the
/// groups it names (asked with checkMemberGroups), and in no excluded one.
async fn targeted(graph: &Graph, user: &str, id: &str, name: &str, policy: &Value) -> Finding {
    let targets = Targets::of(policy);
    let member_of = if targets.names_groups() {
        let path = format!("/users/{}/checkMemberGroups", url_path(id));
        match graph.post(&path, &targets.member_groups_request()).await {
            Ok(answer) => answer.body,
            Err(error) => return refused(&format!("check {user}'s groups"), &error),
        }
    } else {
        Value::Null
    };
    if targets.admits(&member_of) {
        Finding::ok(format!("{user} is within the {name} policy's targets"))
    } else {
        Finding::missing(format!(
            "{user} is outside the {name} policy's targets: add them (or one of their groups) to the policy in Entra"
        ))
    }
}

/// `text` as one path segment.
pub(crate) fn url_path(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::key_restrictions;
    use serde_json::json;

    #[test]
    fn key_restrictions_are_said_as_the_policy_sets_them() {
        let off = json!({ "keyRestrictions": { "isEnforced": false, "enforcementType": "block", "aaGuids": [] } });
        assert!(key_restrictions(&off).text.contains("off"));
        let allow = json!({ "keyRestrictions": {
            "isEnforced": true, "enforcementType": "allow",
            "aaGuids": ["cb69481e-8ff7-4039-93ec-0a2729a154a8", "ee882879-721c-4913-9775-3dfcce97072a"]
        } });
        let said = key_restrictions(&allow).text;
        assert!(said.contains("allow only 2 key model(s)"), "{said}");
        assert!(said.contains("policy tab"), "{said}");
        let block = json!({ "keyRestrictions": { "isEnforced": true, "enforcementType": "block", "aaGuids": ["x"] } });
        assert!(
            key_restrictions(&block)
                .text
                .contains("block 1 key model(s)")
        );
    }
}
