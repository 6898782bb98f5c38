//! Microsoft's sign-in page and OpenID Connect, as the identity platform
//! documents them for the authorization code flow with PKCE: discovery,
//! signing keys, `/authorize` (a page where the person types their
//! Temporary Access Pass; a right one redirects with a code and the
//! state), and the code's redemption for an ID token signed RS256. The
//! pass is checked against the passes Graph issued, and a one-time pass is
//! used up.

use crate::{Shared, sign_in_error};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::pkey::{PKey, Private};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The key ID tokens are signed with.
const KID: &str = "fake-entra-1";

/// The cookie that keeps a person signed in to the tenant's own pages
/// after a sign-in (Entra's is ESTSAUTH).
const SESSION_COOKIE: &str = "fake_estsauth";

/// Signing key, codes waiting to be redeemed, and the browser sessions of
/// people who signed in.
pub struct SignIns {
    key: PKey<Private>,
    codes: BTreeMap<String, Code>,
    /// Session cookie value → the user's object id.
    sessions: BTreeMap<String, String>,
    /// For each sign-in page opened, whether the browser came with the
    /// session of someone who had signed in before.
    pub(crate) pages_opened_signed_in: Vec<bool>,
    /// Every code, PKCE verifier, ID token and access token the sign-ins
    /// carried, for tests that check none reaches a log.
    pub(crate) secrets: Vec<String>,
}

struct Code {
    user: String,
    nonce: String,
    challenge: String,
    redirect_uri: String,
    expires: i64,
}

impl Default for SignIns {
    fn default() -> Self {
        let rsa = openssl::rsa::Rsa::generate(2048).expect("an RSA key");
        Self {
            key: PKey::from_rsa(rsa).expect("a key"),
            codes: BTreeMap::new(),
            sessions: BTreeMap::new(),
            pages_opened_signed_in: Vec::new(),
            secrets: Vec::new(),
        }
    }
}

/// The session cookie's value in a request's `cookie` header.
pub fn session_of(headers: &axum::http::HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|cookie| {
        let (name, value) = cookie.trim().split_once('=')?;
        (name == SESSION_COOKIE).then(|| value.to_string())
    })
}

/// The tenant's Security info page (mysignins) for whoever is signed in in
/// this browser: their methods, and a button that adds Microsoft
/// Authenticator as its own page would once the app is set up.
pub fn security_info(shared: &mut Shared, session: Option<&str>, posted: bool) -> Response {
    let user = session
        .and_then(|s| shared.sign_ins.sessions.get(s))
        .cloned();
    let Some(user) = user.and_then(|id| shared.tenant.users.iter().find(|u| u.id == id).cloned())
    else {
        return Html(
            "<!doctype html><title>Security info</title><p id=\"not-signed-in\">Sign in to see your security info.</p>",
        )
        .into_response();
    };
    if posted {
        let authenticator = serde_json::json!({
            "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "id": uuid::Uuid::new_v4().to_string(),
            "displayName": "Pixel 8",
            "createdDateTime": chrono::DateTime::from_timestamp(shared.tenant.now(), 0)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        });
        shared
            .tenant
            .other_methods
            .entry(user.id.clone())
            .or_default()
            .push(authenticator);
    }
    let listed: String = crate::all_methods(shared, &user)
        .iter()
        .map(|m| format!("<li>{}</li>", m["@odata.type"].as_str().unwrap_or_default()))
        .collect();
    Html(format!(
        "<!doctype html><title>My Sign-Ins | Security Info</title><h1 id=\"security-info\">Security info</h1>\
         <p id=\"signed-in-as\">{}</p><ul id=\"methods\">{listed}</ul>\
         <form method=\"post\"><button id=\"add-authenticator\">Add sign-in method: Microsoft Authenticator</button></form>",
        user.upn
    ))
    .into_response()
}

impl SignIns {
    /// Signs `claims` as the tenant's ID token would be.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "typ": "JWT", "alg": "RS256", "kid": KID });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.key)
                .expect("a signer");
        signer.update(signed.as_bytes()).expect("signed");
        let signature = signer.sign_to_vec().expect("a signature");
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

pub fn discovery(shared: &Shared, tenant: &str) -> Response {
    let base = &shared.base;
    axum::Json(json!({
        "issuer": issuer(shared),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo"
    }))
    .into_response()
}

pub fn issuer(shared: &Shared) -> String {
    format!("{}/{}/v2.0", shared.base, shared.tenant.id)
}

pub fn keys(shared: &Shared) -> Response {
    let rsa = shared.sign_ins.key.rsa().expect("an RSA key");
    let encode = |n: &openssl::bn::BigNumRef| URL_SAFE_NO_PAD.encode(n.to_vec());
    axum::Json(json!({ "keys": [{
        "kty": "RSA", "use": "sig", "kid": KID, "x5t": KID,
        "n": encode(rsa.n()), "e": encode(rsa.e()),
        "issuer": issuer(shared)
    }]}))
    .into_response()
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// `GET /authorize`: the sign-in page, with the request's parameters kept
/// in the form; `POST` (the form) checks the pass.
pub fn authorize(
    shared: &mut Shared,
    query: &str,
    body: Option<&[u8]>,
    session: Option<&str>,
) -> Response {
    if body.is_none() {
        let known = session.is_some_and(|s| shared.sign_ins.sessions.contains_key(s));
        shared.sign_ins.pages_opened_signed_in.push(known);
    }
    let asked = match body {
        Some(body) => form(body),
        None => form(query.as_bytes()),
    };
    let field = |name: &str| asked.get(name).cloned().unwrap_or_default();
    if field("client_id") != shared.tenant.client_id || field("response_type") != "code" {
        return page(
            "AADSTS700016: Application not found, or not asking for a code.",
            &asked,
        );
    }
    if field("code_challenge_method") != "S256" || field("code_challenge").is_empty() {
        return page("AADSTS50148: the code challenge must be S256.", &asked);
    }
    let Some(pass) = body.map(|_| field("pass")) else {
        return page("", &asked);
    };
    let hint = field("login_hint");
    let Some(user) = crate::find(&shared.tenant, &hint).cloned() else {
        return page("This account doesn't exist.", &asked);
    };
    if !shared.passes.use_up(&shared.tenant, &user.id, &pass) {
        return page(
            "The Temporary Access Pass is incorrect, used or expired.",
            &asked,
        );
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    shared.sign_ins.codes.insert(
        code.clone(),
        Code {
            user: user.id.clone(),
            nonce: field("nonce"),
            challenge: field("code_challenge"),
            redirect_uri: field("redirect_uri"),
            expires: shared.tenant.now() + 600,
        },
    );
    let session = uuid::Uuid::new_v4().simple().to_string();
    shared.sign_ins.sessions.insert(session.clone(), user.id);
    let mut to = url::Url::parse(&field("redirect_uri")).expect("a redirect URI");
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"));
    let cookie = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly");
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, to.to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// The sign-in page: the parameters ride along in hidden fields.
fn page(said: &str, asked: &BTreeMap<String, String>) -> Response {
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    let hidden: String = asked
        .iter()
        .filter(|(k, _)| k.as_str() != "pass")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><title>Sign in to your account</title><form method=\"post\">{hidden}\
         <p id=\"error\">{}</p><label>Temporary Access Pass <input id=\"pass\" name=\"pass\" type=\"password\"></label>\
         <button id=\"sign-in\">Sign in</button></form>",
        escape(said)
    ))
    .into_response()
}

/// Redeems a code (`grant_type=authorization_code`) once the app has
/// authenticated: an ID token for the person who typed their pass.
pub fn redeem(shared: &mut Shared, fields: &BTreeMap<String, String>) -> Response {
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let invalid = |text: &str| sign_in_error(StatusCode::BAD_REQUEST, "invalid_grant", 70008, text);
    let Some(code) = shared.sign_ins.codes.remove(field("code")) else {
        return invalid(
            "The provided authorization code or refresh token has expired or was already used.",
        );
    };
    if code.expires < shared.tenant.now() || code.redirect_uri != field("redirect_uri") {
        return invalid("The authorization code has expired, or the redirect URI differs.");
    }
    let verified = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(field("code_verifier").as_bytes()));
    if verified != code.challenge {
        return sign_in_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        );
    }
    let Some(user) = shared.tenant.users.iter().find(|u| u.id == code.user) else {
        return invalid("The user is gone.");
    };
    let now = shared.tenant.now();
    let mut claims = json!({
        "ver": "2.0", "iss": issuer(shared), "sub": URL_SAFE_NO_PAD.encode(user.id.as_bytes()),
        "aud": shared.tenant.client_id, "exp": now + 3600, "iat": now, "nbf": now,
        "name": user.display_name, "preferred_username": user.upn, "oid": user.id,
        "tid": shared.tenant.id, "nonce": code.nonce
    });
    let (overrides, foreign_key) = &shared.tenant.id_token_tampering;
    for (name, value) in overrides {
        claims[name] = value.clone();
    }
    let id_token = if *foreign_key {
        SignIns::default().sign(&claims)
    } else {
        shared.sign_ins.sign(&claims)
    };
    let access_token = uuid::Uuid::new_v4().to_string();
    shared.sign_ins.secrets.extend([
        field("code").to_string(),
        field("code_verifier").to_string(),
        id_token.clone(),
        access_token.clone(),
    ]);
    axum::Json(json!({
        "token_type": "Bearer", "expires_in": 3599, "scope": "openid profile",
        "access_token": access_token, "id_token": id_token
    }))
    .into_response()
}
