//! Entra's own Temporary Access Passes, issued by IT through Graph:
//! `POST /users/{id}/authentication/temporaryAccessPassMethods` (the value
//! comes back once, in that answer), list, and `DELETE`. A user has at most
//! one; the policy's bounds and one-time rule are Entra's to enforce.

use crate::graph::{BatchRequest, EntraError, Graph};
use crate::targets::Targets;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// A pass as Graph shows it (the kiosk's `TenantPass`, whose `Debug`
/// hides the value a new one carries).
pub use tapkiosk_core::tenant::TenantPass as EntraPass;

/// What IT asks for (the kiosk's `PassTerms`); Entra's policy fills what
/// is left out.
pub use tapkiosk_core::tenant::PassTerms as PassRequest;

pub(crate) fn path_of(user: &str) -> String {
    format!(
        "/users/{}/authentication/temporaryAccessPassMethods",
        crate::check::url_path(user)
    )
}

pub(crate) fn read(value: &Value) -> EntraPass {
    let text = |field: &str| value.get(field).and_then(Value::as_str);
    EntraPass {
        id: text("id").unwrap_or_default().to_string(),
        value: text("temporaryAccessPass").map(|v| Zeroizing::new(v.to_string())),
        start: text("startDateTime")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        lifetime_minutes: value
            .get("lifetimeInMinutes")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
        one_time: value.get("isUsableOnce").and_then(Value::as_bool) == Some(true),
        usable: value.get("isUsable").and_then(Value::as_bool) == Some(true),
        reason: text("methodUsabilityReason")
            .unwrap_or_default()
            .to_string(),
        request_id: None,
    }
}

/// The passes of `user` (at most one).
pub async fn list(graph: &Graph, user: &str) -> Result<Vec<EntraPass>, EntraError> {
    let answer = graph.get(&path_of(user)).await?;
    Ok(answer
        .get("value")
        .and_then(Value::as_array)
        .map(|passes| passes.iter().map(read).collect())
        .unwrap_or_default())
}

/// Issues a pass to `user`.
pub async fn issue(
    graph: &Graph,
    user: &str,
    request: &PassRequest,
) -> Result<EntraPass, EntraError> {
    let created = graph.post(&path_of(user), &body_of(request)).await?;
    Ok(EntraPass {
        request_id: created.request_id,
        ..read(&created.body)
    })
}

/// Issues passes to up to [`crate::graph::BATCH_SIZE`] people in one `$batch` call:
/// each one's pass or Graph's refusal, in the order asked. Graph has no
/// transaction: some may be issued and others refused.
pub async fn issue_batch(
    graph: &Graph,
    rows: &[(String, PassRequest)],
) -> Result<Vec<Result<EntraPass, EntraError>>, EntraError> {
    let requests: Vec<BatchRequest> = rows
        .iter()
        .map(|(user, request)| BatchRequest {
            method: "POST",
            path: path_of(user),
            body: Some(body_of(request)),
        })
        .collect();
    let answers = graph.batch(&requests).await?;
    Ok(answers
        .into_iter()
        .map(|answer| {
            answer.map(|created| EntraPass {
                request_id: created.request_id,
                ..read(&created.body)
            })
        })
        .collect())
}

/// The body of `POST …/temporaryAccessPassMethods`.
fn body_of(request: &PassRequest) -> Value {
    let mut body = json!({});
    if let Some(start) = request.start {
        body["startDateTime"] = start
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into();
    }
    if let Some(minutes) = request.lifetime_minutes {
        body["lifetimeInMinutes"] = minutes.into();
    }
    if let Some(once) = request.one_time {
        body["isUsableOnce"] = once.into();
    }
    body
}

/// Removes the pass `id` of `user`: Graph's id of the request.
pub async fn revoke(graph: &Graph, user: &str, id: &str) -> Result<Option<String>, EntraError> {
    let path = format!("{}/{}", path_of(user), crate::check::url_path(id));
    Ok(graph.delete(&path).await?.request_id)
}

/// The tenant's Temporary Access Pass policy, as far as a request can be
/// checked against it before Graph is asked: so that IT reads the reason
/// in plain words, and a batch is checked whole before any pass is issued.
/// Whom it is for is checked per person ([`crate::screen`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPolicy {
    /// Whether passes are on.
    pub enabled: bool,
    /// The shortest lifetime, in minutes.
    pub minimum_minutes: i64,
    /// The longest lifetime, in minutes.
    pub maximum_minutes: i64,
    /// Whether every pass is one-time.
    pub one_time_only: bool,
    /// Whom passes work for.
    pub targets: Targets,
}

impl TapPolicy {
    /// Reads the tenant's policy.
    pub async fn read(graph: &Graph) -> Result<Self, EntraError> {
        let policy = graph.get(crate::check::TAP_POLICY).await?;
        let minutes = |field: &str, default: i64| {
            policy.get(field).and_then(Value::as_i64).unwrap_or(default)
        };
        Ok(Self {
            enabled: policy.get("state").and_then(Value::as_str) == Some("enabled"),
            // Microsoft's documented bounds, when the policy does not say.
            minimum_minutes: minutes("minimumLifetimeInMinutes", 10),
            maximum_minutes: minutes("maximumLifetimeInMinutes", 43_200),
            one_time_only: policy.get("isUsableOnce").and_then(Value::as_bool) == Some(true),
            targets: Targets::of(&policy),
        })
    }

    /// Why the policy would refuse `request`, in plain words.
    pub fn refusal(&self, request: &PassRequest) -> Option<String> {
        if !self.enabled {
            return Some(
                "Temporary Access Passes are off in the tenant (Authentication methods → Temporary Access Pass)".into(),
            );
        }
        if let Some(minutes) = request.lifetime_minutes
            && !(self.minimum_minutes..=self.maximum_minutes).contains(&minutes)
        {
            return Some(format!(
                "a lifetime of {minutes} min is outside the tenant's {} to {} min",
                self.minimum_minutes, self.maximum_minutes
            ));
        }
        if self.one_time_only && request.one_time == Some(false) {
            return Some("the tenant's policy makes every pass one-time".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{PassRequest, TapPolicy, Targets};

    #[test]
    fn a_request_is_checked_against_the_tenants_policy() {
        let policy = TapPolicy {
            enabled: true,
            minimum_minutes: 60,
            maximum_minutes: 480,
            one_time_only: true,
            targets: Targets::everyone(),
        };
        let asking = |lifetime_minutes, one_time| PassRequest {
            start: None,
            lifetime_minutes,
            one_time,
        };
        assert_eq!(policy.refusal(&asking(None, None)), None);
        assert_eq!(policy.refusal(&asking(Some(60), Some(true))), None);
        let short = policy.refusal(&asking(Some(30), None)).unwrap();
        assert!(
            short.contains("30 min is outside the tenant's 60 to 480 min"),
            "{short}"
        );
        assert!(policy.refusal(&asking(Some(481), None)).is_some());
        assert!(
            policy
                .refusal(&asking(None, Some(false)))
                .unwrap()
                .contains("one-time")
        );
        let off = TapPolicy {
            enabled: false,
            ..policy
        };
        assert!(off.refusal(&asking(None, None)).unwrap().contains("off"));
    }
}
