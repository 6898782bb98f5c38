//! Entra's own Temporary Access Passes, issued by IT through Graph:
//! `POST /users/{id}/authentication/temporaryAccessPassMethods` (the value
//! comes back once, in that answer), list, and `DELETE`. A user has at most
//! one; the policy's bounds and one-time rule are Entra's to enforce.

use crate::graph::{EntraError, Graph};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// A pass as Graph shows it.
#[derive(Debug, Clone)]
pub struct EntraPass {
    /// The method's id.
    pub id: String,
    /// The pass itself: only in the answer that created it.
    pub value: Option<Zeroizing<String>>,
    /// When it starts working.
    pub start: Option<DateTime<Utc>>,
    /// How long it works.
    pub lifetime_minutes: i64,
    /// Whether it works once.
    pub one_time: bool,
    /// Whether it works now, and why (Graph's `methodUsabilityReason`).
    pub usable: bool,
    /// `EnabledByPolicy`, `DisabledByPolicy`, `Expired`, `NotYetValid`,
    /// `OneTimeUsed`.
    pub reason: String,
    /// Graph's id of the request that issued it (only from `issue`).
    pub request_id: Option<String>,
}

/// What IT asks for; Entra's policy fills what is left out.
#[derive(Debug, Clone, Default)]
pub struct PassRequest {
    /// When it starts; now if `None`.
    pub start: Option<DateTime<Utc>>,
    /// Minutes it works; the policy's default if `None`.
    pub lifetime_minutes: Option<i64>,
    /// One-time or not; the policy's rule if `None`.
    pub one_time: Option<bool>,
}

fn path_of(user: &str) -> String {
    format!(
        "/users/{}/authentication/temporaryAccessPassMethods",
        crate::check::url_path(user)
    )
}

fn read(value: &Value) -> EntraPass {
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
    let created = graph.post(&path_of(user), &body).await?;
    Ok(EntraPass {
        request_id: created.request_id,
        ..read(&created.body)
    })
}

/// Removes the pass `id` of `user`: Graph's id of the request.
pub async fn revoke(graph: &Graph, user: &str, id: &str) -> Result<Option<String>, EntraError> {
    let path = format!("{}/{}", path_of(user), crate::check::url_path(id));
    Ok(graph.delete(&path).await?.request_id)
}
