//! A person signs in with their Entra pass on Microsoft's own page: the
//! authorization code flow with PKCE, started here with the typed email as
//! `login_hint` and `prompt=login`, finished when the kiosk's window is
//! sent to the redirect URI. The kiosk checks the state, redeems the code
//! as its app, and verifies the ID token: its signature by a key the
//! authority's discovery document names, its issuer, audience, tenant,
//! nonce and times, and that it names the person whose email was typed (by
//! object id, as Microsoft advises, not by the mutable user name). Entra
//! itself checks the pass, uses it up and locks out guessers.

use crate::graph::{EntraError, Graph};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::sha::sha256;
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq as _;
use tapkiosk_core::fido::Url;
use zeroize::Zeroizing;

/// Clock skew allowed on an ID token's times.
const SKEW: i64 = 5 * 60;

/// Why a sign-in did not give the person.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The redirect is not an answer to this sign-in (a forged or stale one).
    #[error("the answer does not belong to this sign-in")]
    StateMismatch,
    /// The person cancelled, or Entra refused (`access_denied`…).
    #[error("Entra did not sign the person in: {error} ({description})")]
    Refused {
        /// OAuth's error.
        error: String,
        /// Entra's words.
        description: String,
    },
    /// The ID token failed a check.
    #[error("the ID token was refused: {0}")]
    BadToken(String),
    /// The token is for someone else than the email typed.
    #[error("the sign-in was for another account than the email typed")]
    OtherPerson,
    /// Entra or the network failed.
    #[error(transparent)]
    Entra(#[from] EntraError),
}

/// The authority's discovery document, as far as a sign-in needs it.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// A sign-in under way: what the kiosk must remember until the redirect.
/// Dropped at reset, Done and idle; nothing in it reaches the UI but `url`.
pub struct SignIn {
    /// The page to open in the kiosk's locked window.
    pub url: Url,
    /// The person the email named: their object id.
    person: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    verifier: Zeroizing<String>,
    discovery: Discovery,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignIn(<redacted>)")
    }
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// Their object id (Graph's user id).
    pub id: String,
    /// Their name, when the token says.
    pub name: Option<String>,
}

/// 256 random bits, base64url: a state, nonce or PKCE verifier. A failing
/// random source fails the sign-in rather than give a guessable value.
fn random() -> Result<String, EntraError> {
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| EntraError::Credential(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl Graph {
    async fn discovery(&self) -> Result<Discovery, EntraError> {
        let url = format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            self.settings().authority.as_str().trim_end_matches('/'),
            self.settings().tenant
        );
        self.get_json(&url).await
    }

    /// Starts signing in the person with object id `person` and user name
    /// `login_hint`; the answer comes to `redirect_uri`.
    pub async fn start_sign_in(
        &self,
        person: &str,
        login_hint: &str,
        redirect_uri: &str,
    ) -> Result<SignIn, EntraError> {
        let discovery = self.discovery().await?;
        let (state, nonce, verifier) = (random()?, random()?, Zeroizing::new(random()?));
        let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
        let mut url =
            Url::parse(&discovery.authorization_endpoint).map_err(|e| EntraError::Unexpected {
                url: discovery.authorization_endpoint.clone(),
                reason: e.to_string(),
            })?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings().client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", "openid profile")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("login_hint", login_hint)
            .append_pair("prompt", "login");
        Ok(SignIn {
            url,
            person: person.to_string(),
            redirect_uri: redirect_uri.to_string(),
            state,
            nonce,
            verifier,
            discovery,
        })
    }

    /// Finishes `sign_in` with the URL the window was sent to.
    pub async fn finish_sign_in(
        &self,
        sign_in: SignIn,
        redirect: &Url,
    ) -> Result<SignedIn, SignInError> {
        let query: std::collections::BTreeMap<String, String> =
            redirect.query_pairs().into_owned().collect();
        let answer = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
        let expected = Url::parse(&sign_in.redirect_uri).ok();
        let same_place = expected.as_ref().is_some_and(|e| {
            e.scheme() == redirect.scheme()
                && e.host() == redirect.host()
                && e.port() == redirect.port()
                && e.path() == redirect.path()
        });
        if !same_place || !bool::from(answer("state").as_bytes().ct_eq(sign_in.state.as_bytes())) {
            return Err(SignInError::StateMismatch);
        }
        if let Some(error) = query.get("error") {
            return Err(SignInError::Refused {
                error: error.clone(),
                description: answer("error_description").to_string(),
            });
        }
        let code = Zeroizing::new(answer("code").to_string());
        let id_token = self
            .redeem_code(
                &sign_in.discovery.token_endpoint,
                &code,
                &sign_in.redirect_uri,
                &sign_in.verifier,
            )
            .await?;
        let claims = self
            .verify_id_token(&sign_in.discovery, &id_token, &sign_in.nonce)
            .await?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(String::from);
        if text("oid").as_deref() != Some(sign_in.person.as_str()) {
            return Err(SignInError::OtherPerson);
        }
        Ok(SignedIn {
            id: sign_in.person,
            name: text("name"),
        })
    }

    async fn verify_id_token(
        &self,
        discovery: &Discovery,
        token: &str,
        nonce: &str,
    ) -> Result<Value, SignInError> {
        let bad = |reason: &str| SignInError::BadToken(reason.to_string());
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a signed JWT"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| bad("not base64url"))
        };
        let header: Value =
            serde_json::from_slice(&decode(header)?).map_err(|_| bad("no header"))?;
        let claims: Value =
            serde_json::from_slice(&decode(claims)?).map_err(|_| bad("no claims"))?;
        if header["alg"] != "RS256" {
            return Err(bad("not signed RS256"));
        }
        let kid = header["kid"].as_str().ok_or_else(|| bad("no key id"))?;
        let keys: Value = self.get_json(&discovery.jwks_uri).await?;
        let key = keys["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .ok_or_else(|| bad("signed by a key the authority does not publish"))?;
        let public = rsa_key(key).ok_or_else(|| bad("a published key that is not RSA"))?;
        let signed = &token[..token.rfind('.').unwrap_or(0)];
        let verified = (|| {
            let mut verifier =
                openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &public)
                    .ok()?;
            verifier.update(signed.as_bytes()).ok()?;
            verifier.verify(&decode(signature).ok()?).ok()
        })();
        if verified != Some(true) {
            return Err(bad("its signature does not verify"));
        }
        // The tenant's own discovery document names its issuer with the
        // tenant's id in it; the token must have exactly that issuer and
        // that tenant.
        let tid = claims["tid"].as_str().unwrap_or_default();
        if discovery.issuer.contains("{tenantid}") {
            return Err(bad("the authority named no tenant"));
        }
        if claims["iss"] != discovery.issuer.as_str()
            || tid.is_empty()
            || !discovery.issuer.contains(&format!("/{tid}/"))
        {
            return Err(bad("another issuer or tenant"));
        }
        if claims["aud"] != self.settings().client_id.as_str() {
            return Err(bad("for another app"));
        }
        if !bool::from(
            claims["nonce"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .ct_eq(nonce.as_bytes()),
        ) {
            return Err(bad("another sign-in's nonce"));
        }
        let now = self.now();
        let (exp, nbf) = (
            claims["exp"].as_i64().unwrap_or(0),
            claims["nbf"].as_i64().unwrap_or(0),
        );
        if exp + SKEW < now || nbf - SKEW > now {
            return Err(bad("expired or not yet valid"));
        }
        Ok(claims)
    }
}

/// The RSA public key of a JWKS entry (`n`, `e`).
fn rsa_key(key: &Value) -> Option<openssl::pkey::PKey<openssl::pkey::Public>> {
    if key["kty"] != "RSA" {
        return None;
    }
    let number = |field: &str| {
        let bytes = URL_SAFE_NO_PAD.decode(key[field].as_str()?).ok()?;
        openssl::bn::BigNum::from_slice(&bytes).ok()
    };
    let rsa = openssl::rsa::Rsa::from_public_components(number("n")?, number("e")?).ok()?;
    openssl::pkey::PKey::from_rsa(rsa).ok()
}
