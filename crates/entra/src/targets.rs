//! Whom an authentication method policy is for: all users, or the groups
//! it includes, minus the groups it excludes. Microsoft lets IT issue a
//! pass to anyone, but "only users included in the policy can sign-in
//! with it", so the kiosk asks before issuing one that would not work.

use serde_json::{Value, json};

/// The group id Entra uses for "all users" in a policy's targets.
const ALL_USERS: &str = "all_users";

/// A policy's `includeTargets` and `excludeTargets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    everyone: bool,
    included: Vec<String>,
    excluded: Vec<String>,
}

impl Targets {
    /// The targets `policy` names.
    pub fn of(policy: &Value) -> Self {
        let groups = |field: &str| -> Vec<String> {
            policy
                .get(field)
                .and_then(Value::as_array)
                .map(|targets| {
                    targets
                        .iter()
                        .filter_map(|t| t.get("id").and_then(Value::as_str).map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut included = groups("includeTargets");
        let everyone = included.iter().any(|g| g == ALL_USERS);
        included.retain(|g| g != ALL_USERS);
        Self {
            everyone,
            included,
            excluded: groups("excludeTargets"),
        }
    }

    /// A policy for all users, excluding nobody.
    pub fn everyone() -> Self {
        Self {
            everyone: true,
            ..Self::default()
        }
    }

    /// Whether a person's groups decide (else the policy is for everyone
    /// or no one, whoever they are).
    pub fn names_groups(&self) -> bool {
        !self.included.is_empty() || !self.excluded.is_empty()
    }

    /// The body of `POST /users/{id}/checkMemberGroups` for the groups
    /// named.
    pub fn member_groups_request(&self) -> Value {
        let asked: Vec<&String> = self.included.iter().chain(&self.excluded).collect();
        json!({ "groupIds": asked })
    }

    /// Whether someone in the groups `member_of` (checkMemberGroups'
    /// answer) is targeted.
    pub fn admits(&self, member_of: &Value) -> bool {
        let groups: Vec<&str> = member_of
            .get("value")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let inside = self.everyone || self.included.iter().any(|g| groups.contains(&g.as_str()));
        inside && !self.excluded.iter().any(|g| groups.contains(&g.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::Targets;
    use serde_json::json;

    fn policy(include: &[&str], exclude: &[&str]) -> Targets {
        let targets = |ids: &[&str]| -> Vec<serde_json::Value> {
            ids.iter()
                .map(|id| json!({ "targetType": "group", "id": id }))
                .collect()
        };
        Targets::of(&json!({
            "includeTargets": targets(include),
            "excludeTargets": targets(exclude),
        }))
    }

    fn member_of(groups: &[&str]) -> serde_json::Value {
        json!({ "value": groups })
    }

    #[test]
    fn all_users_minus_the_excluded_groups() {
        let all = policy(&["all_users"], &[]);
        assert!(!all.names_groups());
        assert!(all.admits(&member_of(&[])));
        let but_contractors = policy(&["all_users"], &["contractors"]);
        assert!(but_contractors.names_groups());
        assert!(but_contractors.admits(&member_of(&["staff"])));
        assert!(!but_contractors.admits(&member_of(&["staff", "contractors"])));
        assert_eq!(
            but_contractors.member_groups_request(),
            json!({ "groupIds": ["contractors"] })
        );
    }

    #[test]
    fn named_groups_only() {
        let new_hires = policy(&["new-hires"], &["interns"]);
        assert!(new_hires.admits(&member_of(&["new-hires"])));
        assert!(!new_hires.admits(&member_of(&[])));
        assert!(!new_hires.admits(&member_of(&["new-hires", "interns"])));
        assert_eq!(
            new_hires.member_groups_request(),
            json!({ "groupIds": ["new-hires", "interns"] })
        );
        assert!(
            !policy(&[], &[]).admits(&member_of(&[])),
            "a policy for no one"
        );
    }
}
