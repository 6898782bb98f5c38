//! A fake Microsoft Entra tenant on 127.0.0.1, for tests: the v2.0 token
//! endpoint (client credentials, with a secret or a PS256 client assertion
//! it verifies against the app's certificate) and the Microsoft Graph
//! endpoints tapkiosk calls. Answers and errors take the shapes Microsoft's
//! documents show (identity platform: client credentials flow and AADSTS
//! error reference; Graph v1.0: authentication methods policy, users,
//! checkMemberGroups, the Graph error body), not what tapkiosk happens to
//! send. The tenant can be changed while it runs.

// Test support: a fake that cannot bind or start should stop the test.
#![allow(clippy::expect_used)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::x509::X509;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

mod device_code;
mod fido2;
pub use fido2::{Accepted, RP_ID};
mod passes;
mod signin;

/// A person in the tenant.
#[derive(Debug, Clone)]
pub struct User {
    /// Object id.
    pub id: String,
    /// User principal name (their sign-in email).
    pub upn: String,
    /// Display name.
    pub display_name: String,
    /// Their email, when it is not their user principal name.
    pub mail: Option<String>,
    /// Whether they may sign in.
    pub enabled: bool,
    /// A guest (`userType` `Guest`), whose home is another tenant.
    pub guest: bool,
}

/// The tenant as the fake serves it.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Its domain.
    pub domain: String,
    /// The kiosk's app registration.
    pub client_id: String,
    /// The app's client secret, if it has one.
    pub secret: Option<String>,
    /// The app's certificate, if it has one.
    pub certificate: Option<X509>,
    /// The application permissions consented to (the token's `roles`).
    pub roles: Vec<String>,
    /// `GET …/authenticationMethodConfigurations/TemporaryAccessPass`.
    pub tap_policy: Value,
    /// `GET …/authenticationMethodConfigurations/Fido2`.
    pub fido2_policy: Value,
    /// The people.
    pub users: Vec<User>,
    /// Group id → member object ids.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// Seconds the tenant's clock runs ahead of the wall clock (to let a
    /// challenge expire without waiting).
    pub clock_ahead: i64,
    /// Claims to put in the next ID tokens over the right ones, and whether
    /// to sign them with a key the tenant does not publish: an attacker's
    /// or a broken token, for the kiosk's checks.
    pub id_token_tampering: (serde_json::Map<String, Value>, bool),
    /// What the next Graph requests are answered, whatever they ask: a
    /// status (429, 503, 504…) and the `Retry-After` seconds, if any; 200
    /// lets that request through.
    pub failures: VecDeque<(u16, Option<u64>)>,
    /// The most items a page of a collection holds; more are behind
    /// `@odata.nextLink`.
    pub page_size: usize,
    /// Every this many requests inside `$batch` calls is answered 429 with
    /// `Retry-After: throttle_retry_after` (0: never), as Graph throttles
    /// the requests of a batch one by one.
    pub throttle_every: usize,
    /// The `Retry-After` seconds of those answers.
    pub throttle_retry_after: u64,
    /// After this many more Graph calls, every access token issued so far
    /// expires, as a token's hour running out in the middle of a batch
    /// would (the call after is answered 401).
    pub expire_tokens_after: Option<usize>,
    /// How long Graph takes to answer each call (for benchmarks).
    pub latency: std::time::Duration,
    /// Methods registered elsewhere (Microsoft Authenticator, a phone…),
    /// by object id, as `GET …/authentication/methods` lists them.
    pub other_methods: BTreeMap<String, Vec<Value>>,
    /// Whether the app allows public client flows (the device code); off
    /// by default, as in Entra.
    pub public_client_flows: bool,
    /// The people with the Authentication Administrator role, by user
    /// principal name: a token they sign in for acts with the app's
    /// permissions.
    pub authentication_administrators: BTreeSet<String>,
}

/// Every permission tapkiosk asks for.
pub const ALL_ROLES: [&str; 3] = [
    "Policy.Read.AuthenticationMethod",
    "User.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];

impl Tenant {
    /// Contoso, with the policies of Microsoft's examples (the pass policy
    /// on for all users; FIDO2 on, self-service allowed), every permission
    /// consented, and Ada.
    pub fn contoso(client_id: &str) -> Self {
        Self {
            id: "aaaabbbb-0000-cccc-1111-dddd2222eeee".into(),
            domain: "contoso.onmicrosoft.com".into(),
            client_id: client_id.into(),
            secret: None,
            certificate: None,
            roles: ALL_ROLES.map(String::from).to_vec(),
            tap_policy: json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#authenticationMethodConfigurations/$entity",
                "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration",
                "id": "TemporaryAccessPass",
                "state": "enabled",
                "defaultLifetimeInMinutes": 60,
                "defaultLength": 8,
                "minimumLifetimeInMinutes": 60,
                "maximumLifetimeInMinutes": 480,
                "isUsableOnce": false,
                "includeTargets": [{ "targetType": "group", "id": "all_users", "isRegistrationRequired": false }],
                "excludeTargets": []
            }),
            fido2_policy: json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#authenticationMethodConfigurations/$entity",
                "@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration",
                "id": "Fido2",
                "state": "enabled",
                "isSelfServiceRegistrationAllowed": true,
                "isAttestationEnforced": true,
                "keyRestrictions": { "isEnforced": false, "enforcementType": "block", "aaGuids": [] },
                "includeTargets": [{ "targetType": "group", "id": "all_users", "isRegistrationRequired": false }],
                "excludeTargets": []
            }),
            users: vec![User {
                id: "071cc716-8147-4397-a5ba-b2105951cc0b".into(),
                upn: "ada@contoso.onmicrosoft.com".into(),
                display_name: "Ada Lovelace".into(),
                mail: None,
                enabled: true,
                guest: false,
            }],
            groups: BTreeMap::new(),
            clock_ahead: 0,
            id_token_tampering: Default::default(),
            failures: VecDeque::new(),
            page_size: 100,
            other_methods: BTreeMap::new(),
            throttle_every: 0,
            throttle_retry_after: 1,
            expire_tokens_after: None,
            latency: std::time::Duration::ZERO,
            public_client_flows: false,
            authentication_administrators: BTreeSet::new(),
        }
    }

    /// Adds `count` people, `person{n}@{domain}` (n from 0), for batches.
    pub fn add_people(&mut self, count: usize) {
        for n in 0..count {
            self.users.push(User {
                id: format!("00000000-0000-4000-8000-{n:012}"),
                upn: format!("person{n}@{}", self.domain),
                display_name: format!("Person {n}"),
                mail: None,
                enabled: true,
                guest: false,
            });
        }
    }

    /// Whether `user` is within the pass policy's targets: Graph issues a
    /// pass to anyone, but only those can sign in with it.
    pub fn pass_policy_targets(&self, user: &User) -> bool {
        let ids = |field: &str| -> Vec<String> {
            self.tap_policy[field]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t["id"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let member = |group: &String| {
            group == "all_users" || self.groups.get(group).is_some_and(|m| m.contains(&user.id))
        };
        ids("includeTargets").iter().any(member)
            && !ids("excludeTargets")
                .iter()
                .any(|g| g != "all_users" && member(g))
    }

    /// The tenant's time, in seconds since 1970.
    #[allow(clippy::disallowed_methods)] // a stand-in for Entra, which has its own clock
    pub fn now(&self) -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        wall + self.clock_ahead
    }
}

pub(crate) struct Shared {
    pub(crate) tenant: Tenant,
    /// Access tokens issued, with their roles.
    tokens: BTreeMap<String, Vec<String>>,
    /// Access tokens that have expired (see [`FakeEntra::expire_tokens`]).
    expired: BTreeSet<String>,
    /// Graph requests answered (a `$batch` call is one).
    graph_requests: usize,
    /// Requests inside `$batch` calls answered.
    batched: usize,
    /// Whether the request being answered is inside a `$batch` call.
    in_batch: bool,
    pub(crate) base: String,
    /// Security keys: creation options waiting for their answer, and keys
    /// registered.
    keys: fido2::Keys,
    /// Temporary Access Passes.
    pub(crate) passes: passes::Passes,
    /// The sign-in page's codes and the ID tokens' signing key.
    pub(crate) sign_ins: signin::SignIns,
    /// Device codes handed out.
    device_codes: device_code::DeviceCodes,
}

impl Shared {
    /// Whether `tenant` (from a path) names this tenant.
    fn knows(&self, tenant: &str) -> bool {
        tenant == self.tenant.id || tenant == self.tenant.domain
    }

    /// Ends every access token issued so far: Graph answers them 401.
    fn expire_tokens(&mut self) {
        let ended = std::mem::take(&mut self.tokens);
        self.expired.extend(ended.into_keys());
    }
}

/// A running fake tenant; it stops when dropped.
pub struct FakeEntra {
    /// `http://127.0.0.1:PORT`: both the authority and Graph.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeEntra {
    /// Serves `tenant` on a port of its own, from a thread of its own (so
    /// that synchronous tests, such as those running `tapctl`, can use it).
    pub fn start(tenant: Tenant) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let shared = Arc::new(Mutex::new(Shared {
            tenant,
            tokens: BTreeMap::new(),
            expired: BTreeSet::new(),
            graph_requests: 0,
            batched: 0,
            in_batch: false,
            base: url.clone(),
            keys: fido2::Keys::default(),
            passes: passes::Passes::default(),
            sign_ins: signin::SignIns::default(),
            device_codes: device_code::DeviceCodes::default(),
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                let app = axum::Router::new().fallback(handle).with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Self {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Every access token the token endpoint has issued (for tests that
    /// check none reaches a log).
    pub fn access_tokens(&self) -> Vec<String> {
        let shared = self.lock();
        shared
            .tokens
            .keys()
            .chain(shared.expired.iter())
            .cloned()
            .collect()
    }

    /// Every code, PKCE verifier, ID token and access token of the
    /// people's sign-ins redeemed so far.
    pub fn sign_in_secrets(&self) -> Vec<String> {
        self.lock().sign_ins.secrets.clone()
    }

    /// How many access tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        let shared = self.lock();
        shared.tokens.len() + shared.expired.len()
    }

    /// Ends every access token issued so far, as their hour running out
    /// would: Graph answers them 401.
    pub fn expire_tokens(&self) {
        self.lock().expire_tokens();
    }

    /// How many Graph requests the fake has answered.
    pub fn graph_requests(&self) -> usize {
        self.lock().graph_requests
    }

    /// Every key registration the fake took, as posted.
    pub fn key_registrations(&self) -> Vec<Accepted> {
        self.lock().keys.accepted()
    }

    /// Someone signs in on the verification page with `user_code`, as
    /// `upn`; `None` declines. False if no such code is waiting.
    pub fn answer_device_code(&self, user_code: &str, upn: Option<&str>) -> bool {
        self.lock().device_codes.answer(user_code, upn)
    }

    /// For each sign-in page opened so far, whether the browser came with
    /// the session of someone who had signed in before (a kiosk that
    /// forgets each person's session sends none).
    pub fn sign_in_pages_opened_signed_in(&self) -> Vec<bool> {
        self.lock().sign_ins.pages_opened_signed_in.clone()
    }

    /// Changes the tenant while the fake runs.
    pub fn change(&self, change: impl FnOnce(&mut Tenant)) {
        change(&mut self.lock().tenant);
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FakeEntra {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type State = axum::extract::State<Arc<Mutex<Shared>>>;

/// Every answer carries a `request-id`, as Graph's do.
async fn handle(
    state: State,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut shared = state
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut response = answer(&mut shared, method, uri, headers, body);
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(id) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", id);
    }
    response
}

fn answer(
    shared: &mut Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => token(shared, tenant, &body),
        ("POST", [tenant, "oauth2", "v2.0", "devicecode"]) if shared.knows(tenant) => {
            device_code::start(shared, &url_form(&body))
        }
        ("GET", [tenant, "v2.0", ".well-known", "openid-configuration"])
            if shared.knows(tenant) =>
        {
            signin::discovery(shared, tenant)
        }
        ("GET", [tenant, "discovery", "v2.0", "keys"]) if shared.knows(tenant) => {
            signin::keys(shared)
        }
        (_, [tenant, "oauth2", "v2.0", "authorize"]) if shared.knows(tenant) => {
            let posted = (method == Method::POST).then_some(&body[..]);
            let session = signin::session_of(&headers);
            signin::authorize(
                shared,
                uri.query().unwrap_or_default(),
                posted,
                session.as_deref(),
            )
        }
        (_, ["security-info"]) => {
            let session = signin::session_of(&headers);
            signin::security_info(shared, session.as_deref(), method == Method::POST)
        }
        (_, ["v1.0", rest @ ..]) => {
            if !shared.in_batch {
                shared.graph_requests += 1;
                match shared.tenant.expire_tokens_after {
                    Some(0) => {
                        shared.tenant.expire_tokens_after = None;
                        shared.expire_tokens();
                    }
                    Some(n) => shared.tenant.expire_tokens_after = Some(n - 1),
                    None => {}
                }
                slow_down(shared.tenant.latency);
                if let Some((status, retry_after)) = shared.tenant.failures.pop_front()
                    && status != 200
                {
                    return injected(status, retry_after);
                }
            }
            let token = bearer(&headers);
            if token.as_ref().is_some_and(|t| shared.expired.contains(t)) {
                return graph_error(
                    StatusCode::UNAUTHORIZED,
                    "InvalidAuthenticationToken",
                    "Lifetime validation failed, the token is expired.",
                );
            }
            let signed_in = token.as_deref().and_then(signed_in_upn);
            let roles = match token.and_then(|t| shared.tokens.get(&t).cloned()) {
                Some(roles) => roles,
                None => {
                    return graph_error(
                        StatusCode::UNAUTHORIZED,
                        "InvalidAuthenticationToken",
                        "Access token is empty.",
                    );
                }
            };
            match (method.as_str(), rest) {
                ("POST", ["$batch"]) if !shared.in_batch => batch(shared, &headers, &body),
                ("GET", ["users"]) => users_by_mail(shared, &roles, uri.query()),
                ("GET", ["me"]) => me(shared, signed_in.as_deref()),
                ("GET", ["users", who, "authentication", "methods"]) => {
                    let who = url_decode(who);
                    let Some(user) = find(&shared.tenant, &who).cloned() else {
                        return not_found(&who);
                    };
                    let readers = [
                        "UserAuthenticationMethod.Read.All",
                        "UserAuthenticationMethod.ReadWrite.All",
                    ];
                    if !allowed(&roles, &readers) {
                        return denied();
                    }
                    let methods = all_methods(shared, &user);
                    page(shared, &path, uri.query(), methods)
                }
                ("GET", ["users", who, "authentication", "fido2Methods"]) => {
                    let who = url_decode(who);
                    let Some(user) = find(&shared.tenant, &who).cloned() else {
                        return not_found(&who);
                    };
                    if !allowed(&roles, &fido2::READERS) {
                        return denied();
                    }
                    let keys = shared.keys.of(&user.id);
                    page(shared, &path, uri.query(), keys)
                }
                (_, ["users", who, "authentication", "fido2Methods", more @ ..]) => {
                    let who = url_decode(who);
                    let Some(user) = find(&shared.tenant, &who).cloned() else {
                        return not_found(&who);
                    };
                    let Shared { tenant, keys, .. } = shared;
                    fido2::handle(keys, tenant, &roles, method.as_str(), &user, more, &body)
                }
                (
                    _,
                    [
                        "users",
                        who,
                        "authentication",
                        "temporaryAccessPassMethods",
                        more @ ..,
                    ],
                ) => {
                    let who = url_decode(who);
                    let Some(user) = find(&shared.tenant, &who).cloned() else {
                        return not_found(&who);
                    };
                    let Shared { tenant, passes, .. } = shared;
                    passes::handle(passes, tenant, &roles, method.as_str(), &user, more, &body)
                }
                _ => graph(&shared.tenant, &roles, method.as_str(), rest, &body),
            }
        }
        _ => graph_error(StatusCode::NOT_FOUND, "UnknownError", "Unknown path."),
    }
}

/// `POST /$batch`: up to 20 requests, each answered as on its own (with
/// its status, headers and body), some throttled as the tenant says.
fn batch(shared: &mut Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let asked: Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(requests) = asked["requests"].as_array() else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid batch payload.",
        );
    };
    if requests.len() > 20 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The number of requests in a batch exceeds 20.",
        );
    }
    shared.in_batch = true;
    let responses: Vec<Value> = requests
        .iter()
        .map(|request| batched(shared, headers, request))
        .collect();
    shared.in_batch = false;
    axum::Json(json!({ "responses": responses })).into_response()
}

/// One request of a `$batch` call, answered.
fn batched(shared: &mut Shared, headers: &HeaderMap, request: &Value) -> Value {
    shared.batched += 1;
    let id = request["id"].clone();
    let every = shared.tenant.throttle_every;
    if every > 0 && shared.batched.is_multiple_of(every) {
        let seconds = shared.tenant.throttle_retry_after;
        return json!({
            "id": id,
            "status": 429,
            "headers": { "Retry-After": seconds.to_string(), "Content-Type": "application/json" },
            "body": { "error": { "code": "TooManyRequests", "message": "Too many requests." } },
        });
    }
    let method = Method::from_bytes(request["method"].as_str().unwrap_or("GET").as_bytes())
        .unwrap_or(Method::GET);
    let url = format!("/v1.0{}", request["url"].as_str().unwrap_or_default());
    let uri: Uri = url.parse().unwrap_or_default();
    let body = match request.get("body") {
        Some(body) => Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
        None => Bytes::new(),
    };
    let response = answer(shared, method, uri, headers.clone(), body);
    let status = response.status().as_u16();
    let bytes = futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    json!({
        "id": id,
        "status": status,
        "headers": { "Content-Type": "application/json" },
        "body": body,
    })
}

/// `GET /users?$filter=mail eq '…'`: the people with that email.
fn users_by_mail(shared: &Shared, roles: &[String], query: Option<&str>) -> Response {
    if !allowed(roles, &["User.Read.All", "Directory.Read.All"]) {
        return denied();
    }
    let filter = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "$filter")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let Some(mail) = filter
        .strip_prefix("mail eq '")
        .and_then(|rest| rest.strip_suffix('\''))
        .map(|quoted| quoted.replace("''", "'"))
    else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unsupported or invalid query filter clause specified.",
        );
    };
    let found: Vec<Value> = shared
        .tenant
        .users
        .iter()
        .filter(|u| {
            u.mail
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(&mail))
        })
        .map(user_json)
        .collect();
    axum::Json(json!({ "value": found })).into_response()
}

/// A user as `$select=id,userPrincipalName,mail,displayName` gives it.
fn user_json(user: &User) -> Value {
    json!({ "id": user.id, "userPrincipalName": user.upn, "mail": user.mail, "displayName": user.display_name })
}

/// The `upn` claim of an access token the fake issued: only a person's
/// (delegated) token has one.
fn signed_in_upn(token: &str) -> Option<String> {
    let claims = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: Value = serde_json::from_slice(&claims).ok()?;
    claims.get("upn")?.as_str().map(String::from)
}

/// `GET /me`: the person who signed in. Any delegated token may read its
/// own user (User.Read, which the delegated permissions include); an app's
/// token has nobody to read, as Graph says.
fn me(shared: &Shared, upn: Option<&str>) -> Response {
    let Some(upn) = upn else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        );
    };
    match find(&shared.tenant, upn) {
        Some(user) => axum::Json(user_json(user)).into_response(),
        None => not_found(upn),
    }
}

/// Every method of `user`, as `GET …/authentication/methods` lists them:
/// the password, their pass, their keys and what else they registered.
pub(crate) fn all_methods(shared: &Shared, user: &User) -> Vec<Value> {
    let password = json!({
        "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
        "id": "28c10230-6103-485e-b985-444c60001490",
        "password": null,
        "createdDateTime": "2025-09-01T08:00:00Z",
    });
    let mut methods = vec![password];
    methods.extend(shared.passes.of(&shared.tenant, &user.id));
    methods.extend(shared.keys.of(&user.id));
    if let Some(others) = shared.tenant.other_methods.get(&user.id) {
        methods.extend(others.iter().cloned());
    }
    methods
}

/// Answers as late as a distant Graph would (one call at a time: the fake
/// serves from one thread).
#[allow(
    clippy::disallowed_methods,
    reason = "a stand-in for the network's latency, for benchmarks"
)]
fn slow_down(latency: std::time::Duration) {
    if !latency.is_zero() {
        std::thread::sleep(latency);
    }
}

/// An injected failure, with Graph's error body and `Retry-After`.
fn injected(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (code, message) = match status.as_u16() {
        429 => ("TooManyRequests", "Too many requests."),
        503 => (
            "serviceNotAvailable",
            "The service is temporarily unavailable.",
        ),
        504 => ("UnknownError", "Gateway timeout."),
        _ => ("generalException", "An injected failure."),
    };
    let mut response = graph_error(status, code, message);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from(seconds));
    }
    response
}

/// One page of `items`: from the `$skiptoken` the query names, at most the
/// tenant's page size, with `@odata.nextLink` to the rest.
fn page(shared: &Shared, path: &str, query: Option<&str>, items: Vec<Value>) -> Response {
    let skip: usize = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("$skiptoken="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let size = shared.tenant.page_size.max(1);
    let shown: Vec<Value> = items.iter().skip(skip).take(size).cloned().collect();
    let mut body = json!({ "value": shown });
    if skip + size < items.len() {
        body["@odata.nextLink"] =
            format!("{}{path}?$skiptoken={}", shared.base, skip + size).into();
    }
    axum::Json(body).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(String::from)
}

/// The v2.0 token endpoint's error body.
pub(crate) fn sign_in_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2026-01-09 02:02:12Z"),
        "error_codes": [code],
        "timestamp": "2026-01-09 02:02:12Z",
        "trace_id": "255d1aef-8c98-452f-ac51-23d051240864",
        "correlation_id": "fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

/// Graph's 400 with its error body: a request the tenant refuses.
pub(crate) fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "badRequest", message)
}

/// Graph's error body.
pub(crate) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "2026-01-09T02:02:12",
                "request-id": "b9a1c6f0-4c4e-4e4a-9c6a-3f0c1a2b3c4d",
                "client-request-id": "b9a1c6f0-4c4e-4e4a-9c6a-3f0c1a2b3c4d"
            }
        }
    });
    (status, axum::Json(body)).into_response()
}

fn token(shared: &mut Shared, tenant_in_path: &str, body: &[u8]) -> Response {
    let form: BTreeMap<String, String> = url_form(body);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let tenant = &shared.tenant;
    if tenant_in_path != tenant.id && tenant_in_path != tenant.domain {
        let text = format!(
            "Tenant '{tenant_in_path}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        );
        return sign_in_error(StatusCode::BAD_REQUEST, "invalid_request", 90002, &text);
    }
    let grant = field("grant_type");
    if grant == "urn:ietf:params:oauth:grant-type:device_code" {
        return device_code::redeem(shared, &form);
    }
    if grant != "client_credentials" && grant != "authorization_code" {
        return sign_in_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != tenant.client_id {
        let text = format!(
            "Application with identifier '{}' was not found in the directory '{}'.",
            field("client_id"),
            tenant.domain
        );
        return sign_in_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &text,
        );
    }
    if grant == "client_credentials" && field("scope") != format!("{}/.default", shared.base) {
        let text = format!(
            "The provided value for the input parameter 'scope' is not valid. The scope {} is not valid.",
            field("scope")
        );
        return sign_in_error(StatusCode::BAD_REQUEST, "invalid_scope", 70011, &text);
    }
    let endpoint = format!("{}/{tenant_in_path}/oauth2/v2.0/token", shared.base);
    let authenticated = match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), _) => {
            if tenant.secret.as_deref() != Some(secret.as_str()) {
                return sign_in_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                );
            }
            true
        }
        (None, Some(assertion)) => {
            field("client_assertion_type")
                == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                && tenant
                    .certificate
                    .as_ref()
                    .is_some_and(|c| assertion_valid(assertion, c, &tenant.client_id, &endpoint))
        }
        (None, None) => {
            return sign_in_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        }
    };
    if !authenticated {
        return sign_in_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        );
    }
    if grant == "authorization_code" {
        return signin::redeem(shared, &form);
    }
    let roles = tenant.roles.clone();
    access_token(shared, json!({ "roles": roles }), roles)
}

/// A new access token with `claims` (beside the tenant's and app's),
/// acting with `roles`.
pub(crate) fn access_token(shared: &mut Shared, mut claims: Value, roles: Vec<String>) -> Response {
    let tenant = &shared.tenant;
    claims["aud"] = shared.base.clone().into();
    claims["tid"] = tenant.id.clone().into();
    claims["appid"] = tenant.client_id.clone().into();
    let access_token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(json!({ "typ": "JWT", "alg": "RS256" }).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes()),
    );
    shared.tokens.insert(access_token.clone(), roles);
    axum::Json(json!({ "token_type": "Bearer", "expires_in": 3599, "access_token": access_token }))
        .into_response()
}

fn url_form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Checks a client assertion as the identity platform documents it.
#[allow(clippy::disallowed_methods)] // a stand-in for Entra, which checks against its own clock
fn assertion_valid(assertion: &str, certificate: &X509, client_id: &str, endpoint: &str) -> bool {
    let check = || -> Option<bool> {
        let mut parts = assertion.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
        let header: Value = serde_json::from_slice(&decode(header)?).ok()?;
        let claims: Value = serde_json::from_slice(&decode(claims)?).ok()?;
        let thumbprint = certificate
            .digest(openssl::hash::MessageDigest::sha256())
            .ok()?;
        let named =
            header["alg"] == "PS256" && header["x5t#S256"] == URL_SAFE_NO_PAD.encode(thumbprint);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64;
        let timely = claims["exp"].as_i64()? > now && claims["nbf"].as_i64()? <= now + 300;
        let addressed =
            claims["aud"] == endpoint && claims["iss"] == client_id && claims["sub"] == client_id;
        let key = certificate.public_key().ok()?;
        let mut verifier =
            openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).ok()?;
        verifier
            .set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)
            .ok()?;
        verifier
            .set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
            .ok()?;
        let signed = &assertion[..assertion.rfind('.')?];
        verifier.update(signed.as_bytes()).ok()?;
        let verified = verifier.verify(&decode(signature)?).ok()?;
        Some(named && timely && addressed && verified)
    };
    check().unwrap_or(false)
}

pub(crate) fn allowed(roles: &[String], any_of: &[&str]) -> bool {
    roles.iter().any(|r| any_of.contains(&r.as_str()))
}

pub(crate) fn denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn graph(tenant: &Tenant, roles: &[String], method: &str, path: &[&str], body: &[u8]) -> Response {
    const POLICY_READERS: [&str; 3] = [
        "Policy.Read.AuthenticationMethod",
        "Policy.ReadWrite.AuthenticationMethod",
        "Policy.Read.All",
    ];
    const USER_READERS: [&str; 2] = ["User.Read.All", "Directory.Read.All"];
    match (method, path) {
        (
            "GET",
            [
                "policies",
                "authenticationMethodsPolicy",
                "authenticationMethodConfigurations",
                which,
            ],
        ) => {
            if !allowed(roles, &POLICY_READERS) {
                return denied();
            }
            match which.to_ascii_lowercase().as_str() {
                "temporaryaccesspass" => axum::Json(tenant.tap_policy.clone()).into_response(),
                "fido2" => axum::Json(tenant.fido2_policy.clone()).into_response(),
                _ => graph_error(
                    StatusCode::NOT_FOUND,
                    "Request_ResourceNotFound",
                    "Resource not found.",
                ),
            }
        }
        ("GET", ["users", who]) => {
            if !allowed(roles, &USER_READERS) {
                return denied();
            }
            let who = url_decode(who);
            match find(tenant, &who) {
                Some(user) => axum::Json(json!({
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(id,displayName,userPrincipalName,accountEnabled)/$entity",
                    "id": user.id,
                    "displayName": user.display_name,
                    "userPrincipalName": user.upn,
                    "accountEnabled": user.enabled,
                    "userType": if user.guest { "Guest" } else { "Member" },
                }))
                .into_response(),
                None => not_found(&who),
            }
        }
        ("POST", ["users", who, "checkMemberGroups"]) => {
            if !allowed(
                roles,
                &[
                    "User.Read.All",
                    "GroupMember.Read.All",
                    "Directory.Read.All",
                ],
            ) {
                return denied();
            }
            let who = url_decode(who);
            let Some(user) = find(tenant, &who) else {
                return not_found(&who);
            };
            let asked: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(ids) = asked.get("groupIds").and_then(Value::as_array) else {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "Invalid request: groupIds is required.",
                );
            };
            let member: Vec<&Value> = ids
                .iter()
                .filter(|g| {
                    g.as_str()
                        .and_then(|g| tenant.groups.get(g))
                        .is_some_and(|m| m.contains(&user.id))
                })
                .collect();
            axum::Json(json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)", "value": member })).into_response()
        }
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unsupported request.",
        ),
    }
}

pub(crate) fn find<'a>(tenant: &'a Tenant, who: &str) -> Option<&'a User> {
    tenant
        .users
        .iter()
        .find(|u| u.id == who || u.upn.eq_ignore_ascii_case(who))
}

pub(crate) fn not_found(who: &str) -> Response {
    let message = format!(
        "Resource '{who}' does not exist or one of its queried reference-property objects are not present."
    );
    graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &message)
}

pub(crate) fn url_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
