//! Microsoft Graph as the kiosk's app: an app-only token from the tenant's
//! token endpoint (client credentials), kept until shortly before it
//! expires, and Graph requests with Graph's error shape read back. As
//! Microsoft's throttling guidance asks, a 429, 503 or 504 is tried again
//! after the `Retry-After` Graph gave (else after a doubling back-off), a
//! few times; a token Graph no longer takes is renewed once; every answer's
//! `request-id` is kept for support and the audit log.

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
/// Tries of one Graph request that Graph throttles or cannot serve.
pub const GRAPH_TRIES: u32 = 5;
/// The longest wait before trying again, whatever `Retry-After` says.
const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// How the client waits before trying again: the runtime's timer, or in
/// tests a recorder, so that a test checks the waits without taking them.
#[async_trait::async_trait]
pub trait Pause: Send + Sync {
    /// Waits `how_long`.
    async fn pause(&self, how_long: std::time::Duration);
}

/// The runtime's timer.
#[derive(Debug)]
pub struct Timer;

#[async_trait::async_trait]
impl Pause for Timer {
    #[allow(
        clippy::disallowed_methods,
        reason = "Graph's Retry-After is a real wait; tests inject a recorder"
    )]
    async fn pause(&self, how_long: std::time::Duration) {
        tokio::time::sleep(how_long).await;
    }
}

/// The most requests Graph takes in one `$batch` call.
pub const BATCH_SIZE: usize = 20;

/// A request of a `$batch` call.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// `GET`, `POST`, `DELETE`…
    pub method: &'static str,
    /// The path under `/v1.0`, e.g. `/users/{id}/authentication/…`.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<serde_json::Value>,
}

/// One request's answer inside a `$batch` call.
struct Batched {
    /// The request's place in the batch.
    index: usize,
    status: u16,
    retry_after: Option<std::time::Duration>,
    answer: Result<Answer, EntraError>,
}

/// A Graph answer, with the id Graph gave the request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The JSON body (`null` for none).
    pub body: serde_json::Value,
    /// Graph's `request-id`, for support and the audit log.
    pub request_id: Option<String>,
}

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
    #[error("Microsoft Graph refused {what} ({status} {code}): {message}{}", shown_id(.request_id))]
    Graph {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// Graph's error code, e.g. `Authorization_RequestDenied`.
        code: String,
        /// Graph's message.
        message: String,
        /// Graph's `request-id`, for Microsoft's support.
        request_id: Option<String>,
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

fn shown_id(request_id: &Option<String>) -> String {
    request_id
        .as_ref()
        .map(|id| format!(" [request-id {id}]"))
        .unwrap_or_default()
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
        Some(7_000_218) => {
            "the app takes no sign-in without its secret: for tapctl's --device-code, turn on \"Allow public client flows\" under Authentication in the app registration"
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

fn app_token(url: &str, body: serde_json::Value, now: i64) -> Result<AppToken, EntraError> {
    let token: TokenBody =
        serde_json::from_value(body).map_err(|e| unexpected(url, e.to_string()))?;
    Ok(AppToken {
        value: Zeroizing::new(token.access_token),
        expires_at: now + token.expires_in,
    })
}

/// rustls with the ring provider, for this client only, checking certificates
/// against the system's trust store (so a company's own root CA, installed
/// there, is honoured).
fn tls_config() -> Result<rustls::ClientConfig, EntraError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map(|builder| builder.with_no_client_auth())
        .map_err(|e| EntraError::Credential(format!("TLS set-up: {e}")))
}

/// The kiosk's app in one tenant.
pub struct Graph {
    http: reqwest::Client,
    settings: EntraSettings,
    credential: Credential,
    token: Mutex<Option<AppToken>>,
    clock: Arc<dyn Clock>,
    pause: Arc<dyn Pause>,
}

/// How long a connection to the tenant's hosts may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
            .tls_backend_preconfigured(tls_config()?)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| EntraError::Credential(e.to_string()))?;
        Ok(Self {
            http,
            settings,
            credential,
            token: Mutex::new(None),
            clock,
            pause: Arc::new(Timer),
        })
    }

    /// The same client, waiting with `pause` before it tries again.
    pub fn pausing_with(mut self, pause: Arc<dyn Pause>) -> Self {
        self.pause = pause;
        self
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
        let (status, body) = exchange(self.http.get(url), url).await?;
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
        let grant = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("scope", "openid profile"),
        ];
        let body = self
            .token_request(token_endpoint, &grant, self.now())
            .await?;
        let id_token = body
            .get("id_token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| unexpected(token_endpoint, "no id_token".into()))?;
        Ok(id_token.to_string())
    }

    /// Posts a token request as the app (its id and credential, then
    /// `grant`); the answer, or Entra's refusal.
    pub(crate) async fn token_request(
        &self,
        url: &str,
        grant: &[(&str, &str)],
        now: i64,
    ) -> Result<serde_json::Value, EntraError> {
        let credential = self
            .credential
            .form_fields(&self.settings.client_id, url, now)
            .map_err(|e| EntraError::Credential(e.to_string()))?;
        let mut pairs: Vec<(&str, &str)> = vec![("client_id", &self.settings.client_id)];
        pairs.extend(grant);
        pairs.extend(credential.iter().map(|(k, v)| (*k, v.as_str())));
        let (status, body) = exchange(self.http.post(url).form(&pairs), url).await?;
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
        self.oauth_endpoint("token")
    }

    /// The tenant's OAuth 2.0 endpoint `name` (`token`, `devicecode`).
    pub(crate) fn oauth_endpoint(&self, name: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/{name}",
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

    /// Graph's permissions as configured in the app registration.
    pub(crate) fn graph_scope(&self) -> String {
        format!(
            "{}/.default",
            self.settings.graph.as_str().trim_end_matches('/')
        )
    }

    async fn fetch_token(&self, now: i64) -> Result<AppToken, EntraError> {
        if let Credential::Delegated = self.credential {
            return Err(EntraError::Credential(
                "the administrator's sign-in has ended: run the command again".into(),
            ));
        }
        let url = self.token_endpoint();
        let scope = self.graph_scope();
        let grant = [
            ("scope", scope.as_str()),
            ("grant_type", "client_credentials"),
        ];
        let body = self.token_request(&url, &grant, now).await?;
        app_token(&url, body, now)
    }

    /// Keeps the token of a token endpoint's answer `body` for the requests
    /// to come.
    pub(crate) async fn keep_token(
        &self,
        url: &str,
        body: serde_json::Value,
    ) -> Result<(), EntraError> {
        let token = app_token(url, body, self.now())?;
        *self.token.lock().await = Some(token);
        Ok(())
    }

    /// Waits `how_long` (the runtime's timer, or a test's recorder).
    pub(crate) async fn pause_for(&self, how_long: std::time::Duration) {
        self.pause.pause(how_long).await;
    }

    /// `GET {graph}/v1.0{path}`: the JSON answer.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value, EntraError> {
        let url = self.graph_url(path);
        Ok(self
            .call(reqwest::Method::GET, path, &url, None)
            .await?
            .body)
    }

    /// `GET {graph}/v1.0{path}` of a collection: every page's `value`,
    /// following `@odata.nextLink` (only to this Graph: a link elsewhere
    /// would be sent the app's token).
    pub async fn get_all(&self, path: &str) -> Result<Vec<serde_json::Value>, EntraError> {
        let mut url = self.graph_url(path);
        let mut items = Vec::new();
        loop {
            let page = self
                .call(reqwest::Method::GET, path, &url, None)
                .await?
                .body;
            if let Some(value) = page.get("value").and_then(serde_json::Value::as_array) {
                items.extend(value.iter().cloned());
            }
            match page
                .get("@odata.nextLink")
                .and_then(serde_json::Value::as_str)
            {
                None => return Ok(items),
                Some(next) if self.is_graph(next) => url = next.to_string(),
                Some(next) => {
                    return Err(unexpected(
                        path,
                        format!("a next page outside Graph: {}", host_of(next)),
                    ));
                }
            }
        }
    }

    /// Whether `link` is on this client's Graph (scheme, host and port).
    fn is_graph(&self, link: &str) -> bool {
        let graph = &self.settings.graph;
        url::Url::parse(link).is_ok_and(|link| {
            link.scheme() == graph.scheme()
                && link.host() == graph.host()
                && link.port_or_known_default() == graph.port_or_known_default()
        })
    }

    /// `DELETE {graph}/v1.0{path}`: Graph's request id.
    pub async fn delete(&self, path: &str) -> Result<Answer, EntraError> {
        let url = self.graph_url(path);
        self.call(reqwest::Method::DELETE, path, &url, None).await
    }

    /// `POST {graph}/v1.0{path}` with a JSON body: the answer and its
    /// request id.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Answer, EntraError> {
        let url = self.graph_url(path);
        self.call(reqwest::Method::POST, path, &url, Some(body))
            .await
    }

    /// Sends up to [`BATCH_SIZE`] requests in one `$batch` call: each
    /// one's answer or Graph's refusal of it, in the order asked. Requests
    /// Graph throttles or cannot serve (429, 503, 504) are sent again in a
    /// further call after the longest `Retry-After` among them, five tries
    /// at most, as for a request on its own.
    pub async fn batch(
        &self,
        requests: &[BatchRequest],
    ) -> Result<Vec<Result<Answer, EntraError>>, EntraError> {
        if requests.len() > BATCH_SIZE {
            return Err(unexpected(
                "$batch",
                format!("{} requests, more than {BATCH_SIZE}", requests.len()),
            ));
        }
        let mut answers: Vec<Option<Result<Answer, EntraError>>> = std::iter::repeat_with(|| None)
            .take(requests.len())
            .collect();
        let mut pending: Vec<usize> = (0..requests.len()).collect();
        for tries in 1..=GRAPH_TRIES {
            let sent = self.send_batch(requests, &pending).await?;
            let mut again = Vec::new();
            let mut wait = None;
            for Batched {
                index,
                status,
                retry_after,
                answer,
            } in sent
            {
                if matches!(status, 429 | 503 | 504) && tries < GRAPH_TRIES {
                    again.push(index);
                    wait = wait.max(Some(retry_after.unwrap_or_else(|| back_off(tries))));
                } else {
                    answers[index] = Some(answer);
                }
            }
            if again.is_empty() {
                break;
            }
            let wait = wait.unwrap_or_else(|| back_off(tries)).min(LONGEST_WAIT);
            tracing::warn!(
                throttled = again.len(),
                ?wait,
                "Graph asks to send part of a batch later"
            );
            self.pause.pause(wait).await;
            pending = again;
        }
        Ok(answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Err(unexpected("$batch", "no answer".into()))))
            .collect())
    }

    /// One `$batch` call with the requests at `indexes`: for each, its
    /// index, status, `Retry-After` and answer.
    async fn send_batch(
        &self,
        requests: &[BatchRequest],
        indexes: &[usize],
    ) -> Result<Vec<Batched>, EntraError> {
        let asked: Vec<serde_json::Value> = indexes
            .iter()
            .map(|&index| {
                let request = &requests[index];
                let mut asked = serde_json::json!({
                    "id": index.to_string(),
                    "method": request.method,
                    "url": request.path,
                });
                if let Some(body) = &request.body {
                    asked["body"] = body.clone();
                    asked["headers"] = serde_json::json!({ "Content-Type": "application/json" });
                }
                asked
            })
            .collect();
        let body = serde_json::json!({ "requests": asked });
        let answer = self.post("/$batch", &body).await?;
        let responses = answer.body["responses"]
            .as_array()
            .ok_or_else(|| unexpected("$batch", "no responses".into()))?;
        let mut sent = Vec::new();
        for response in responses {
            let index: usize = response["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .filter(|index| indexes.contains(index))
                .ok_or_else(|| {
                    unexpected(
                        "$batch",
                        format!("an answer to no request: {}", response["id"]),
                    )
                })?;
            let status = response["status"].as_u64().unwrap_or(0) as u16;
            let header = |name: &str| {
                response["headers"]
                    .as_object()
                    .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                    .and_then(|(_, v)| v.as_str())
                    .map(String::from)
            };
            let retry_after = header("Retry-After").and_then(|s| seconds(&s));
            let request_id = header("request-id").or_else(|| answer.request_id.clone());
            let body = response["body"].clone();
            let result = if (200..300).contains(&status) {
                Ok(Answer { body, request_id })
            } else {
                Err(EntraError::Graph {
                    what: requests[index].path.clone(),
                    status,
                    code: body["error"]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    message: body["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    request_id,
                })
            };
            sent.push(Batched {
                index,
                status,
                retry_after,
                answer: result,
            });
        }
        Ok(sent)
    }

    /// A Graph request as the app, tried again as Graph's throttling
    /// guidance says, with a fresh token once if Graph refuses the kept one.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, EntraError> {
        let mut renewed = false;
        let mut tries = 0;
        loop {
            tries += 1;
            let token = self.token().await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.as_str());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| unreachable(url, e))?;
            let status = response.status().as_u16();
            let wait = retry_after(&response);
            match read_answer(path, url, response).await {
                Err(EntraError::Graph { status: 401, .. }) if !renewed => {
                    tracing::info!(path, "Graph refused the app's token; renewing it");
                    renewed = true;
                    *self.token.lock().await = None;
                }
                Err(error) if matches!(status, 429 | 503 | 504) && tries < GRAPH_TRIES => {
                    let wait = wait.unwrap_or_else(|| back_off(tries)).min(LONGEST_WAIT);
                    tracing::warn!(path, status, ?wait, %error, "Graph asks to try again later");
                    self.pause.pause(wait).await;
                }
                answer => return answer,
            }
        }
    }
}

/// The wait before try `tries + 1` when Graph does not say: 1, 2, 4, 8 s.
fn back_off(tries: u32) -> std::time::Duration {
    std::time::Duration::from_secs(1 << (tries - 1).min(6))
}

/// Graph's `Retry-After`, in seconds.
fn retry_after(response: &reqwest::Response) -> Option<std::time::Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    seconds(value.to_str().ok()?)
}

/// A `Retry-After` value in seconds (Graph gives no dates).
fn seconds(text: &str) -> Option<std::time::Duration> {
    text.trim().parse().ok().map(std::time::Duration::from_secs)
}

/// Sends `request` to `url`: its status and body.
async fn exchange(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<(reqwest::StatusCode, String), EntraError> {
    let response = request.send().await.map_err(|e| unreachable(url, e))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| unreachable(url, e))?;
    Ok((status, body))
}

fn host_of(link: &str) -> String {
    url::Url::parse(link)
        .ok()
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_else(|| "an address that does not parse".into())
}

async fn read_answer(
    path: &str,
    url: &str,
    response: reqwest::Response,
) -> Result<Answer, EntraError> {
    let status = response.status();
    let request_id = response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = response.text().await.map_err(|e| unreachable(url, e))?;
    if status.is_success() {
        let body = if body.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&body).map_err(|e| unexpected(url, e.to_string()))?
        };
        return Ok(Answer { body, request_id });
    }
    let refused: GraphErrorBody = serde_json::from_str(&body)
        .map_err(|_| unexpected(url, format!("{status} without a Graph error body")))?;
    Err(EntraError::Graph {
        what: path.to_string(),
        status: status.as_u16(),
        code: refused.error.code,
        message: refused.error.message,
        request_id,
    })
}

/// reqwest's own message is "error sending request"; the reason (a
/// certificate the system does not trust, a refused connection) is down its
/// chain of sources, and IT needs it.
fn unreachable(url: &str, error: reqwest::Error) -> EntraError {
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    // The connect timeout says "operation timed out" (reqwest's) or
    // "deadline has elapsed" (tokio's, inside hyper), whichever fires first.
    if error.is_connect() && (error.is_timeout() || reason.contains("deadline has elapsed")) {
        reason = format!(
            "no connection within {} s (a firewall or a proxy in the way?): {reason}",
            CONNECT_TIMEOUT.as_secs()
        );
    }
    EntraError::Unreachable {
        url: url.to_string(),
        reason,
    }
}

pub(crate) fn unexpected(url: &str, reason: String) -> EntraError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tapkiosk_core::config::{EntraCredential, EntraSettings};

    fn graph_at(base: &str) -> Graph {
        let url = url::Url::parse(base).unwrap();
        let settings = EntraSettings {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            authority: url.clone(),
            graph: url,
            credential: EntraCredential::SecretInOsStore,
            redirect_uri: url::Url::parse("http://localhost/signed-in").unwrap(),
            sign_in_hosts: Vec::new(),
            security_info: url::Url::parse(tapkiosk_core::config::ENTRA_SECURITY_INFO).unwrap(),
        };
        let credential = Credential::Secret(Zeroizing::new("s".into()));
        Graph::new(settings, credential, Arc::new(tapkiosk_core::SystemClock)).unwrap()
    }

    #[test]
    fn a_next_page_is_followed_only_on_this_graph() {
        let graph = graph_at("https://graph.microsoft.com");
        assert!(graph.is_graph("https://graph.microsoft.com/v1.0/users?$skiptoken=X"));
        assert!(graph.is_graph("https://graph.microsoft.com:443/v1.0/users"));
        for elsewhere in [
            "https://graph.microsoft.com.evil.example/v1.0/users",
            "http://graph.microsoft.com/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
            "not a link",
        ] {
            assert!(!graph.is_graph(elsewhere), "{elsewhere}");
        }
    }

    #[test]
    fn the_back_off_doubles_and_stops_growing() {
        let seconds: Vec<u64> = (1..=9).map(|n| back_off(n).as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
    }
}
