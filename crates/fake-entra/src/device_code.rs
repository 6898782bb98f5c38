//! The device authorization grant, as Microsoft's identity platform
//! documents it: `POST /{tenant}/oauth2/v2.0/devicecode` gives a device
//! code and a user code; the token endpoint answers
//! `authorization_pending` until someone signs in on the verification page
//! with the user code (here: a test says who, with
//! [`crate::FakeEntra::answer_device_code`]), `authorization_declined` or
//! `expired_token` otherwise. Only an app that allows public client flows
//! may ask. The token acts for the person who signed in: with the app's
//! permissions if they are an Authentication Administrator, else with none.

use crate::{Shared, sign_in_error};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::BTreeMap;

/// A device code lives this long, as Entra's do.
const LIFETIME: i64 = 15 * 60;
/// The polling interval the fake asks for.
const INTERVAL: i64 = 1;

/// Who answered a user code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Waiting,
    Approved(String),
    Declined,
}

/// The codes handed out, by device code.
#[derive(Default)]
pub struct DeviceCodes {
    codes: BTreeMap<String, (String, i64, Answer)>,
}

impl DeviceCodes {
    /// Answers the user code `user_code`: signed in as `upn`, or declined
    /// (`None`). False if no such code is waiting.
    pub fn answer(&mut self, user_code: &str, upn: Option<&str>) -> bool {
        let Some((_, _, answer)) = self
            .codes
            .values_mut()
            .find(|(code, _, answer)| code == user_code && *answer == Answer::Waiting)
        else {
            return false;
        };
        *answer = upn.map_or(Answer::Declined, |upn| Answer::Approved(upn.to_string()));
        true
    }
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub fn start(shared: &mut Shared, form: &BTreeMap<String, String>) -> Response {
    let tenant = &shared.tenant;
    if form.get("client_id") != Some(&tenant.client_id) {
        return sign_in_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application was not found in the directory.",
        );
    }
    if !tenant.public_client_flows {
        return sign_in_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let device_code = uuid::Uuid::new_v4().simple().to_string();
    let user_code: String = uuid::Uuid::new_v4().simple().to_string()[..9].to_ascii_uppercase();
    let verification_uri = format!("{}/devicelogin", shared.base);
    let expires = tenant.now() + LIFETIME;
    shared.device_codes.codes.insert(
        device_code.clone(),
        (user_code.clone(), expires, Answer::Waiting),
    );
    axum::Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "expires_in": LIFETIME,
        "interval": INTERVAL,
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

/// The token endpoint's `device_code` grant: a token for who signed in,
/// or why not yet.
pub fn redeem(shared: &mut Shared, form: &BTreeMap<String, String>) -> Response {
    if form.get("client_id") != Some(&shared.tenant.client_id) {
        return sign_in_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application was not found in the directory.",
        );
    }
    let code = form.get("device_code").cloned().unwrap_or_default();
    let now = shared.tenant.now();
    let Some((_, expires, answer)) = shared.device_codes.codes.get(&code).cloned() else {
        return sign_in_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "The provided value for the 'device_code' is not valid.",
        );
    };
    let pending = |error: &str, code: u32, text: &str| {
        sign_in_error(StatusCode::BAD_REQUEST, error, code, text)
    };
    if now >= expires {
        return pending(
            "expired_token",
            70020,
            "The provided device code has expired.",
        );
    }
    match answer {
        Answer::Waiting => pending(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        ),
        Answer::Declined => pending(
            "authorization_declined",
            70019,
            "The user declined the authorization request.",
        ),
        Answer::Approved(upn) => {
            shared.device_codes.codes.remove(&code);
            let tenant = &shared.tenant;
            let roles = if tenant.authentication_administrators.contains(&upn) {
                tenant.roles.clone()
            } else {
                Vec::new()
            };
            crate::access_token(shared, json!({ "upn": upn, "scp": roles.join(" ") }), roles)
        }
    }
}
