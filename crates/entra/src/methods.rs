//! A person's authentication methods in Entra, as Graph lists them
//! (`GET /users/{id}/authentication/methods`), each with a kind the kiosk
//! words for people.

use crate::graph::{EntraError, Graph};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tapkiosk_core::tenant::TenantMethod;

/// Graph's method types and the kiosk's names for them.
const KINDS: [(&str, &str); 9] = [
    ("fido2AuthenticationMethod", "security_key"),
    (
        "microsoftAuthenticatorAuthenticationMethod",
        "authenticator",
    ),
    ("passwordAuthenticationMethod", "password"),
    (
        "temporaryAccessPassAuthenticationMethod",
        "temporary_access_pass",
    ),
    ("phoneAuthenticationMethod", "phone"),
    ("emailAuthenticationMethod", "email"),
    ("softwareOathAuthenticationMethod", "software_oath"),
    (
        "windowsHelloForBusinessAuthenticationMethod",
        "windows_hello",
    ),
    (
        "platformCredentialAuthenticationMethod",
        "platform_credential",
    ),
];

/// Every method of `user`, from every page.
pub async fn list(graph: &Graph, user: &str) -> Result<Vec<TenantMethod>, EntraError> {
    let path = format!(
        "/users/{}/authentication/methods",
        crate::check::url_path(user)
    );
    let items = graph.get_all(&path).await?;
    Ok(items.iter().filter_map(read).collect())
}

fn read(method: &Value) -> Option<TenantMethod> {
    let text = |field: &str| method.get(field).and_then(Value::as_str);
    let odata = text("@odata.type").unwrap_or_default();
    let kind = KINDS
        .iter()
        .find(|(graph_type, _)| odata.strip_prefix("#microsoft.graph.") == Some(graph_type))
        .map_or("other", |(_, kind)| kind);
    // FIDO2 methods once said `creationDateTime`; the others say `createdDateTime`.
    let created = text("createdDateTime").or_else(|| text("creationDateTime"));
    Some(TenantMethod {
        id: text("id")?.to_string(),
        kind: kind.to_string(),
        name: text("displayName").map(String::from),
        created_at: created
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    })
}

#[cfg(test)]
mod tests {
    use super::read;
    use serde_json::json;

    #[test]
    fn graphs_method_types_become_the_kiosks_kinds() {
        let key = json!({
            "@odata.type": "#microsoft.graph.fido2AuthenticationMethod",
            "id": "-2_GRUg2-HYz6_1YG4YRAQ2",
            "displayName": "Red key",
            "creationDateTime": "2020-08-10T06:44:09Z",
        });
        let key = read(&key).unwrap();
        assert_eq!(
            (key.kind.as_str(), key.name.as_deref()),
            ("security_key", Some("Red key"))
        );
        assert_eq!(
            key.created_at.unwrap().to_rfc3339(),
            "2020-08-10T06:44:09+00:00"
        );
        let hello = json!({
            "@odata.type": "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
            "id": "b5e01f81-1f81-b5e0-811f-e0b5811fe0b5",
            "createdDateTime": "2020-11-27T23:12:49Z",
        });
        assert_eq!(read(&hello).unwrap().kind, "windows_hello");
        let future = json!({ "@odata.type": "#microsoft.graph.somethingNew", "id": "x" });
        assert_eq!(read(&future).unwrap().kind, "other");
        assert!(
            read(&json!({ "@odata.type": "#microsoft.graph.fido2AuthenticationMethod" })).is_none()
        );
    }
}
