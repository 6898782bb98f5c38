//! A security key into Entra: Graph's creation options for a person, the
//! kiosk's own CTAP2 conversation with the key (`fido::ceremony`, run by
//! the caller with what this module returns), and the key's answer
//! registered with Graph. Everything Entra's options say is used as it
//! says it: relying party, user, challenge, algorithms, excluded keys,
//! authenticator selection, timeout; the client data's origin is
//! `https://` + the relying party's id.

use crate::graph::{EntraError, Graph};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tapkiosk_core::fido::{CreationChallengeResponse, RegisterPublicKeyCredential, Url};
use tapkiosk_core::tenant::KeyOptions;

/// A key Entra registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraKey {
    /// The method's id in Entra.
    pub id: String,
    /// Its name.
    pub display_name: String,
    /// The model Entra recognised, when it did.
    pub model: Option<String>,
    /// The key's AAGUID, as Entra read it.
    pub aaguid: Option<String>,
    /// Graph's id of the request that registered it.
    pub request_id: Option<String>,
}

fn path_of(user: &str) -> String {
    format!(
        "/users/{}/authentication/fido2Methods",
        crate::check::url_path(user)
    )
}

/// Graph's creation options for `user` (object id or user principal name).
pub async fn creation_options(graph: &Graph, user: &str) -> Result<KeyOptions, EntraError> {
    let path = format!("{}/creationOptions", path_of(user));
    let answer = graph.get(&path).await?;
    let unexpected = |reason: String| EntraError::Unexpected {
        url: path.clone(),
        reason,
    };
    let expires_at = answer
        .get("challengeTimeoutDateTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .ok_or_else(|| unexpected("no challengeTimeoutDateTime".into()))?
        .with_timezone(&Utc);
    let mut public_key = answer
        .get("publicKey")
        .cloned()
        .ok_or_else(|| unexpected("no publicKey".into()))?;
    strip_odata(&mut public_key);
    // Graph's extensions object holds only its type; the key is asked for none.
    if let Value::Object(fields) = &mut public_key {
        fields.remove("extensions");
    }
    let rp_id = public_key
        .pointer("/rp/id")
        .and_then(Value::as_str)
        .ok_or_else(|| unexpected("no publicKey.rp.id".into()))?
        .to_string();
    let request: CreationChallengeResponse =
        serde_json::from_value(json!({ "publicKey": public_key }))
            .map_err(|e| unexpected(e.to_string()))?;
    let origin = Url::parse(&format!("https://{rp_id}"))
        .map_err(|e| unexpected(format!("rp id {rp_id}: {e}")))?;
    Ok(KeyOptions {
        request,
        origin,
        expires_at,
    })
}

/// Registers the key's `answer` to `user` under `name`.
pub async fn register_key(
    graph: &Graph,
    user: &str,
    name: &str,
    answer: &RegisterPublicKeyCredential,
) -> Result<EntraKey, EntraError> {
    let encode = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let body = json!({
        "displayName": name,
        "publicKeyCredential": {
            "id": encode(answer.raw_id.as_ref()),
            "response": {
                "clientDataJSON": encode(answer.response.client_data_json.as_ref()),
                "attestationObject": encode(answer.response.attestation_object.as_ref()),
            },
            "clientExtensionResults": {},
        },
    });
    let path = path_of(user);
    let answer = graph.post(&path, &body).await?;
    let mut key = read_key(&answer.body).ok_or_else(|| EntraError::Unexpected {
        url: path.clone(),
        reason: "no id".into(),
    })?;
    key.request_id = answer.request_id;
    Ok(key)
}

/// Removes the key `id` of `user` (a lost key): Graph's id of the request.
pub async fn remove(graph: &Graph, user: &str, id: &str) -> Result<Option<String>, EntraError> {
    let path = format!("{}/{}", path_of(user), crate::check::url_path(id));
    Ok(graph.delete(&path).await?.request_id)
}

/// The security keys registered to `user`, from every page Graph gives.
pub async fn list(graph: &Graph, user: &str) -> Result<Vec<EntraKey>, EntraError> {
    let items = graph.get_all(&path_of(user)).await?;
    Ok(items.iter().filter_map(read_key).collect())
}

/// A `fido2AuthenticationMethod`; `None` without an id.
fn read_key(method: &Value) -> Option<EntraKey> {
    let text = |field: &str| method.get(field).and_then(Value::as_str).map(String::from);
    Some(EntraKey {
        id: text("id")?,
        display_name: text("displayName").unwrap_or_default(),
        model: text("model").filter(|m| !m.is_empty()),
        aaguid: text("aaGuid"),
        request_id: None,
    })
}

/// Drops Graph's `@odata.*` annotations, which WebAuthn's types do not
/// have.
fn strip_odata(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|name, _| !name.starts_with("@odata"));
            fields.values_mut().for_each(strip_odata);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_odata),
        _ => {}
    }
}
