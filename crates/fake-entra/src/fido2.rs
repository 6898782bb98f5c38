//! Graph's FIDO2 registration, as the v1.0 reference documents it:
//! `GET …/fido2Methods/creationOptions` (a 5-minute challenge for the
//! relying party `login.microsoft.com`) and `POST …/fido2Methods` with the
//! key's answer, base64url without padding. The answer is checked by
//! webauthn-rs, as a relying party would. What Graph answers on a refusal
//! is not documented; the fake answers 400 with Graph's error body.

use crate::{Tenant, User, allowed, bad_request, denied, graph_error};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use webauthn_rs::prelude::{Passkey, PasskeyRegistration, Url, Uuid, WebauthnBuilder};

/// Entra's relying party for security keys.
pub const RP_ID: &str = "login.microsoft.com";
/// The documented challenge lifetime.
const CHALLENGE_SECONDS: i64 = 5 * 60;

/// The permissions that let an app list people's keys.
pub(crate) const READERS: [&str; 4] = [
    "UserAuthMethod-Passkey.Read.All",
    "UserAuthMethod-Passkey.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const WRITERS: [&str; 2] = [
    "UserAuthMethod-Passkey.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
];

/// Model names by AAGUID, as Entra shows them.
const MODELS: [(&str, &str); 2] = [
    (
        "0fb9bcbc-a0d4-4042-bbb0-559bc1631e28",
        "Software key (test)",
    ),
    ("ee882879-721c-4913-9775-3dfcce97072a", "YubiKey 5 NFC"),
];

/// Per person: the options waiting for an answer (with their end and
/// challenge), and registered keys; every registration taken, as posted.
#[derive(Default)]
pub struct Keys {
    pending: BTreeMap<String, (PasskeyRegistration, i64, String)>,
    registered: BTreeMap<String, Vec<(Passkey, Value)>>,
    accepted: Vec<Accepted>,
}

/// A registration the fake took: the request's body and the challenge of
/// the options it answered (base64url), for checks by other tools.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The POST body, as sent.
    pub body: Value,
    /// The challenge the fake handed out.
    pub challenge: String,
}

impl Keys {
    /// The keys registered to the person with object id `user`.
    pub fn of(&self, user: &str) -> Vec<Value> {
        self.registered
            .get(user)
            .map(|keys| keys.iter().map(|(_, method)| method.clone()).collect())
            .unwrap_or_default()
    }

    /// Every registration taken so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.accepted.clone()
    }
}

fn webauthn() -> webauthn_rs::Webauthn {
    let origin = Url::parse(&format!("https://{RP_ID}")).expect("a URL");
    WebauthnBuilder::new(RP_ID, &origin)
        .and_then(|b| b.rp_name("Microsoft").build())
        .expect("a relying party")
}

pub fn handle(
    keys: &mut Keys,
    tenant: &Tenant,
    roles: &[String],
    method: &str,
    user: &User,
    rest: &[&str],
    body: &[u8],
) -> Response {
    if !allowed(roles, &WRITERS) {
        return denied();
    }
    let policy = &tenant.fido2_policy;
    let self_service =
        policy["state"] == "enabled" && policy["isSelfServiceRegistrationAllowed"] == true;
    match (method, rest) {
        ("GET", ["creationOptions"]) => {
            if !self_service {
                return bad_request(
                    "FIDO2 self-service setup is not allowed by the authentication methods policy.",
                );
            }
            creation_options(keys, tenant, user)
        }
        ("POST", []) => register(keys, tenant, user, body),
        ("GET", []) => axum::Json(json!({ "value": keys.of(&user.id) })).into_response(),
        ("DELETE", [id]) => {
            let theirs = keys.registered.entry(user.id.clone()).or_default();
            let before = theirs.len();
            theirs.retain(|(_, method)| method["id"] != *id);
            if theirs.len() == before {
                return graph_error(
                    StatusCode::NOT_FOUND,
                    "itemNotFound",
                    "The FIDO2 method was not found.",
                );
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unsupported request.",
        ),
    }
}

fn creation_options(keys: &mut Keys, tenant: &Tenant, user: &User) -> Response {
    let handle = Uuid::parse_str(&user.id).unwrap_or_else(|_| Uuid::new_v4());
    let exclude = keys
        .registered
        .get(&user.id)
        .map(|keys| keys.iter().map(|(k, _)| k.cred_id().clone()).collect());
    let Ok((challenge, state)) =
        webauthn().start_passkey_registration(handle, &user.upn, &user.display_name, exclude)
    else {
        return bad_request("Cannot create options.");
    };
    let expires = tenant.now() + CHALLENGE_SECONDS;
    let handed_out = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(challenge.public_key.challenge.as_slice())
    };
    keys.pending
        .insert(user.id.clone(), (state, expires, handed_out));
    let mut public_key = serde_json::to_value(&challenge.public_key).unwrap_or(Value::Null);
    // As Entra documents: a resident, user-verified credential.
    public_key["authenticatorSelection"] = json!({
        "@odata.type": "#microsoft.graph.webauthnAuthenticatorSelectionCriteria",
        "authenticatorAttachment": "cross-platform",
        "requireResidentKey": true,
        "userVerification": "required"
    });
    public_key["@odata.type"] =
        "#microsoft.graph.webauthnPublicKeyCredentialCreationOptions".into();
    public_key["extensions"] =
        json!({ "@odata.type": "#microsoft.graph.webauthnAuthenticationExtensionsClientInputs" });
    if let Value::Object(fields) = &mut public_key {
        fields.remove("hints");
        fields.remove("attestationFormats");
    }
    axum::Json(json!({
        "@odata.type": "#microsoft.graph.webauthnCredentialCreationOptions",
        "challengeTimeoutDateTime": rfc3339(expires),
        "publicKey": public_key,
    }))
    .into_response()
}

fn register(keys: &mut Keys, tenant: &Tenant, user: &User, body: &[u8]) -> Response {
    let Ok(asked) = serde_json::from_slice::<Value>(body) else {
        return bad_request("The request body is not JSON.");
    };
    let credential = &asked["publicKeyCredential"];
    let answer = json!({
        "id": credential["id"],
        "rawId": credential["id"],
        "type": "public-key",
        "response": {
            "clientDataJSON": credential["response"]["clientDataJSON"],
            "attestationObject": credential["response"]["attestationObject"],
        },
    });
    let Ok(answer) = serde_json::from_value(answer) else {
        return bad_request("publicKeyCredential is not a WebAuthn credential.");
    };
    let Some((state, expires, challenge)) = keys.pending.remove(&user.id) else {
        return bad_request("No creation options were requested for this user.");
    };
    if tenant.now() > expires {
        return bad_request("The challenge has expired: request new creation options.");
    }
    let passkey = match webauthn().finish_passkey_registration(&answer, &state) {
        Ok(passkey) => passkey,
        Err(e) => return bad_request(&format!("The credential was refused: {e}.")),
    };
    // webauthn-rs reads the attested credential id; a relying party that
    // keeps `id` must see that it is that credential's.
    if credential["id"].as_str() != Some(&URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice())) {
        return bad_request("publicKeyCredential.id is not the attested credential's id.");
    }
    let aaguid = aaguid_of(
        credential["response"]["attestationObject"]
            .as_str()
            .unwrap_or(""),
    );
    let model = MODELS
        .iter()
        .find(|(id, _)| Some(*id) == aaguid.as_deref())
        .map_or("", |(_, name)| name);
    let method = json!({
        "@odata.type": "#microsoft.graph.fido2AuthenticationMethod",
        "id": Uuid::new_v4().to_string(),
        "displayName": asked["displayName"].as_str().unwrap_or("Security key"),
        "createdDateTime": rfc3339(tenant.now()),
        "aaGuid": aaguid.unwrap_or_default(),
        "model": model,
        "attestationCertificates": [],
        "attestationLevel": "notAttested",
        "passkeyType": "deviceBound",
    });
    keys.registered
        .entry(user.id.clone())
        .or_default()
        .push((passkey, method.clone()));
    keys.accepted.push(Accepted {
        body: asked,
        challenge,
    });
    (StatusCode::CREATED, axum::Json(method)).into_response()
}

/// The AAGUID in an attestation object's authenticator data (after the RP
/// id hash, flags and counter).
fn aaguid_of(attestation_object: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(attestation_object).ok()?;
    let object: serde_cbor_2::Value = serde_cbor_2::from_slice(&bytes).ok()?;
    let serde_cbor_2::Value::Map(object) = object else {
        return None;
    };
    let Some(serde_cbor_2::Value::Bytes(data)) =
        object.get(&serde_cbor_2::Value::Text("authData".into()))
    else {
        return None;
    };
    Uuid::from_slice(data.get(37..53)?)
        .ok()
        .map(|u| u.to_string())
}

pub(crate) fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
