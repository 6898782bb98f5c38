//! Graph's Temporary Access Pass methods, as the v1.0 reference documents
//! them: create (the value is in that answer only; at most one per user,
//! a new one replaces the old), list (no value), delete (204). What Graph
//! answers when the policy refuses is not documented: the fake answers 400
//! with Graph's error body.

use crate::{Tenant, User, allowed, bad_request, denied, graph_error};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const WRITERS: [&str; 2] = [
    "UserAuthMethod-TAP.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const READERS: [&str; 4] = [
    "UserAuthMethod-TAP.Read.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthMethod-TAP.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
];

/// Each person's pass, as stored (with its value, shown once).
#[derive(Default)]
pub struct Passes(BTreeMap<String, Value>);

pub fn handle(
    passes: &mut Passes,
    tenant: &Tenant,
    roles: &[String],
    method: &str,
    user: &User,
    rest: &[&str],
    body: &[u8],
) -> Response {
    let needed: &[&str] = if method == "GET" { &READERS } else { &WRITERS };
    if !allowed(roles, needed) {
        return denied();
    }
    match (method, rest) {
        ("POST", []) => create(passes, tenant, user, body),
        ("GET", []) => {
            let listed: Vec<Value> = passes
                .0
                .get(&user.id)
                .map(|pass| shown(tenant, &user.id, pass))
                .into_iter()
                .collect();
            axum::Json(json!({ "value": listed })).into_response()
        }
        ("DELETE", [id]) => match passes.0.get(&user.id) {
            Some(pass) if pass["id"] == *id => {
                passes.0.remove(&user.id);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The temporary access pass was not found.",
            ),
        },
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unsupported request.",
        ),
    }
}

impl Passes {
    /// `user`'s pass as Graph lists it, if they have one.
    pub fn of(&self, tenant: &Tenant, user: &str) -> Option<Value> {
        self.0.get(user).map(|pass| shown(tenant, user, pass))
    }

    /// Signs in with `value` if it is `user`'s usable pass; a one-time pass
    /// is used up.
    pub fn use_up(&mut self, tenant: &Tenant, user: &str, value: &str) -> bool {
        let Some(pass) = self.0.get(user) else {
            return false;
        };
        if pass["temporaryAccessPass"] != value || shown(tenant, user, pass)["isUsable"] != true {
            return false;
        }
        if pass["isUsableOnce"] == true {
            self.0.remove(user);
        }
        true
    }
}

fn create(passes: &mut Passes, tenant: &Tenant, user: &User, body: &[u8]) -> Response {
    let policy = &tenant.tap_policy;
    if policy["state"] != "enabled" {
        return bad_request(
            "Temporary Access Pass is disabled by the authentication methods policy.",
        );
    }
    let asked: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let number = |v: &Value| v.as_i64();
    let (min, max) = (
        number(&policy["minimumLifetimeInMinutes"]).unwrap_or(60),
        number(&policy["maximumLifetimeInMinutes"]).unwrap_or(480),
    );
    let lifetime = number(&asked["lifetimeInMinutes"])
        .or(number(&policy["defaultLifetimeInMinutes"]))
        .unwrap_or(60);
    if !(min..=max).contains(&lifetime) {
        return bad_request(&format!(
            "lifetimeInMinutes must be between {min} and {max}."
        ));
    }
    let policy_once = policy["isUsableOnce"] == true;
    let once = asked["isUsableOnce"].as_bool().unwrap_or(policy_once);
    if policy_once && !once {
        return bad_request("The policy requires one-time passes (isUsableOnce).");
    }
    let now = tenant.now();
    let start = match asked["startDateTime"].as_str() {
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(start) => start.timestamp(),
            Err(_) => return bad_request("startDateTime is not a date and time."),
        },
        None => now,
    };
    let length = number(&policy["defaultLength"]).unwrap_or(8).clamp(8, 48) as usize;
    let value: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .chain(uuid::Uuid::new_v4().simple().to_string().chars())
        .take(length)
        .collect();
    let pass = json!({
        "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
        "id": uuid::Uuid::new_v4().to_string(),
        "temporaryAccessPass": value,
        "createdDateTime": crate::fido2::rfc3339(now),
        "startDateTime": crate::fido2::rfc3339(start),
        "lifetimeInMinutes": lifetime,
        "isUsableOnce": once,
    });
    passes.0.insert(user.id.clone(), pass.clone());
    let mut answer = shown(tenant, &user.id, &pass);
    answer["temporaryAccessPass"] = pass["temporaryAccessPass"].clone();
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// A stored pass of the user with object id `user` as Graph shows it: no
/// value, and whether it works now.
fn shown(tenant: &Tenant, user: &str, pass: &Value) -> Value {
    let targeted = crate::find(tenant, user).is_some_and(|u| tenant.pass_policy_targets(u));
    let now = tenant.now();
    let start = pass["startDateTime"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(now, |t| t.timestamp());
    let end = start + pass["lifetimeInMinutes"].as_i64().unwrap_or(0) * 60;
    let reason = if tenant.tap_policy["state"] != "enabled" || !targeted {
        "DisabledByPolicy"
    } else if now < start {
        "NotYetValid"
    } else if now >= end {
        "Expired"
    } else {
        "EnabledByPolicy"
    };
    let mut shown = pass.clone();
    shown["temporaryAccessPass"] = Value::Null;
    shown["isUsable"] = (reason == "EnabledByPolicy").into();
    shown["methodUsabilityReason"] = reason.into();
    shown
}
