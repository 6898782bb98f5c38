//! Microsoft Graph as the kiosk's app: an app-only token from the tenant's
//! token endpoint (client credentials), kept until shortly before it
//! expires, and Graph requests with Graph's error shape read back.

use crate::credential::Credential;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use std::sync::Arc;
use tapkiosk_core::Clock;
use tapkiosk_core::config::EntraSettings;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// A token is fetched again this long before it expires.
const TOKEN_MARGIN: i64 = 5 * 60;

/// What went wrong talking to Entra or Graph.
#[derive(Debug, thiserror::Error)]
pub enum EntraError {
    /// The network or TLS failed (the host is unreachable, say).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The token endpoint refused the app.
    #[error("{}", explain_sign_in(.codes, .description))]
    SignIn {
        /// OAuth's error, e.g. `invalid_client`.
        error: String,
        /// Entra's AADSTS numbers.
        codes: Vec<u32>,
        /// Entra's description (first line).
        description: String,
    },
    /// Graph answered with an error.
    #[error("Microsoft Graph refused {what} ({status} {code}): {message}")]
    Graph {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// Graph's error code, e.g. `Authorization_RequestDenied`.
        code: String,
        /// Graph's message.
        message: String,
    },
    /// An answer that does not have the documented shape.
    #[error("unexpected answer from {url}: {reason}")]
    Unexpected {
        /// What was asked.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The credential could not be used.
    #[error("{0}")]
    Credential(String),
}

/// Plain words for the sign-in errors IT meets while setting up the app
/// (from Microsoft's AADSTS error reference).
fn explain_sign_in(codes: &[u32], description: &str) -> String {
    let said = match codes.first() {
        Some(7_000_215) => {
            "the client secret is wrong: copy the secret's value (not its id) from the app registration"
        }
        Some(7_000_222) => {
            "the client secret has expired: create a new one in the app registration"
        }
        Some(700_016 | 700_011) => {
            "no app with this entra.client_id in the tenant: check the client id and entra.tenant"
        }
        Some(90_002) => {
            "the tenant does not exist: check entra.tenant (and entra.authority for national clouds)"
        }
        Some(700_027) => {
            "the certificate's signature was refused: upload this certificate to the app registration"
        }
        Some(90_038) => {
            "the tenant is in a national cloud: set entra.authority and entra.graph to that cloud's"
        }
        _ => "Entra refused the app's sign-in",
    };
    format!("{said} ({description})")
}

/// Graph's error body: `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorDetail,
}

#[derive(Deserialize)]
struct GraphErrorDetail {
    code: String,
    message: String,
}

/// The token endpoint's error body.
#[derive(Deserialize)]
struct SignInErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    expires_in: i64,
}

/// An app-only access token.
struct AppToken {
    value: Zeroizing<String>,
    expires_at: i64,
}

/// The kiosk's app in one tenant.
pub struct Graph {
    http: reqwest::Client,
    settings: EntraSettings,
    credential: Credential,
    token: Mutex<Option<AppToken>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Graph({})", self.settings.tenant)
    }
}

impl Graph {
    /// The app of `settings`, signing in with `credential`.
    pub fn new(
        settings: EntraSettings,
        credential: Credential,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EntraError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| EntraError::Credential(e.to_string()))?;
        Ok(Self {
            http,
            settings,
            credential,
            token: Mutex::new(None),
            clock,
        })
    }

    /// The tenant and app.
    pub fn settings(&self) -> &EntraSettings {
        &self.settings
    }

    /// The time, in seconds since 1970.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// `GET url` without a token (the authority's public documents).
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, EntraError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unreachable(url, &e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| unreachable(url, &e))?;
        if !status.is_success() {
            return Err(unexpected(url, format!("{status}")));
        }
        serde_json::from_str(&body).map_err(|e| unexpected(url, e.to_string()))
    }

    /// Redeems an authorization code at `token_endpoint` as the app, with
    /// the PKCE verifier: the ID token.
    pub(crate) async fn redeem_code(
        &self,
        token_endpoint: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, EntraError> {
        let now = self.now();
        let mut form: Vec<(&str, Zeroizing<String>)> = vec![
            ("client_id", Zeroizing::new(self.settings.client_id.clone())),
            ("grant_type", Zeroizing::new("authorization_code".into())),
            ("code", Zeroizing::new(code.to_string())),
            ("redirect_uri", Zeroizing::new(redirect_uri.to_string())),
            ("code_verifier", Zeroizing::new(verifier.to_string())),
            ("scope", Zeroizing::new("openid profile".into())),
        ];
        let fields = self
            .credential
            .form_fields(&self.settings.client_id, token_endpoint, now)
            .map_err(|e| EntraError::Credential(e.to_string()))?;
        form.extend(fields);
        let body = self.token_request(token_endpoint, &form).await?;
        let id_token = body
            .get("id_token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| unexpected(token_endpoint, "no id_token".into()))?;
        Ok(id_token.to_string())
    }

    /// Posts a token request; the answer, or Entra's refusal.
    async fn token_request(
        &self,
        url: &str,
        form: &[(&str, Zeroizing<String>)],
    ) -> Result<serde_json::Value, EntraError> {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = self
            .http
            .post(url)
            .form(&pairs)
            .send()
            .await
            .map_err(|e| unreachable(url, &e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| unreachable(url, &e))?;
        if !status.is_success() {
            let refused: SignInErrorBody = serde_json::from_str(&body)
                .map_err(|_| unexpected(url, format!("{status} without an OAuth error body")))?;
            return Err(EntraError::SignIn {
                error: refused.error,
                codes: refused.error_codes,
                description: refused
                    .error_description
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        serde_json::from_str(&body).map_err(|e| unexpected(url, e.to_string()))
    }

    /// The tenant's token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.settings.authority.as_str().trim_end_matches('/'),
            self.settings.tenant
        )
    }

    fn graph_url(&self, path: &str) -> String {
        format!(
            "{}/v1.0{path}",
            self.settings.graph.as_str().trim_end_matches('/')
        )
    }

    /// The application permissions the token carries (its `roles`), when
    /// the token is a JWT that says; `None` when it cannot be read (Graph
    /// tokens are opaque by contract: the refusals then tell).
    pub async fn roles(&self) -> Result<Option<Vec<String>>, EntraError> {
        let token = self.token().await?;
        Ok(roles_of(&token))
    }

    async fn token(&self) -> Result<Zeroizing<String>, EntraError> {
        let now = self.clock.now().timestamp();
        let mut cached = self.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|t| t.expires_at - TOKEN_MARGIN > now)
        {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch_token(now).await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    async fn fetch_token(&self, now: i64) -> Result<AppToken, EntraError> {
        let url = self.token_endpoint();
        let scope = format!(
            "{}/.default",
            self.settings.graph.as_str().trim_end_matches('/')
        );
        let mut form: Vec<(&str, Zeroizing<String>)> = vec![
            ("client_id", Zeroizing::new(self.settings.client_id.clone())),
            ("scope", Zeroizing::new(scope)),
            ("grant_type", Zeroizing::new("client_credentials".into())),
        ];
        let fields = self
            .credential
            .form_fields(&self.settings.client_id, &url, now)
            .map_err(|e| EntraError::Credential(e.to_string()))?;
        form.extend(fields);
        let body = self.token_request(&url, &form).await?;
        let token: TokenBody =
            serde_json::from_value(body).map_err(|e| unexpected(&url, e.to_string()))?;
        Ok(AppToken {
            value: Zeroizing::new(token.access_token),
            expires_at: now + token.expires_in,
        })
    }

    /// `GET {graph}/v1.0{path}`: the JSON answer.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value, EntraError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `DELETE {graph}/v1.0{path}`.
    pub async fn delete(&self, path: &str) -> Result<(), EntraError> {
        self.call(reqwest::Method::DELETE, path, None)
            .await
            .map(drop)
    }

    /// `POST {graph}/v1.0{path}` with a JSON body: the JSON answer.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, EntraError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A Graph request as the app: the JSON answer (`null` for none).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, EntraError> {
        let url = self.graph_url(path);
        let token = self.token().await?;
        let mut request = self.http.request(method, &url).bearer_auth(token.as_str());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| unreachable(&url, &e))?;
        read_answer(path, &url, response).await
    }
}

async fn read_answer(
    path: &str,
    url: &str,
    response: reqwest::Response,
) -> Result<serde_json::Value, EntraError> {
    let status = response.status();
    let body = response.text().await.map_err(|e| unreachable(url, &e))?;
    if status.is_success() {
        if body.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        return serde_json::from_str(&body).map_err(|e| unexpected(url, e.to_string()));
    }
    let refused: GraphErrorBody = serde_json::from_str(&body)
        .map_err(|_| unexpected(url, format!("{status} without a Graph error body")))?;
    Err(EntraError::Graph {
        what: path.to_string(),
        status: status.as_u16(),
        code: refused.error.code,
        message: refused.error.message,
    })
}

fn unreachable(url: &str, error: &reqwest::Error) -> EntraError {
    EntraError::Unreachable {
        url: url.to_string(),
        reason: error.to_string(),
    }
}

fn unexpected(url: &str, reason: String) -> EntraError {
    EntraError::Unexpected {
        url: url.to_string(),
        reason,
    }
}

/// The `roles` claim of a JWT's payload, read without checking it: the
/// token is only shown, never trusted, here.
fn roles_of(token: &str) -> Option<Vec<String>> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some(
        claims
            .get("roles")
            .and_then(|r| r.as_array())
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    )
}
