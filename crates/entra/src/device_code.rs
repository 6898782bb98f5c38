//! Delegated sign-in for `tapctl` with the OAuth 2.0 device authorization
//! grant, as Microsoft's identity platform documents it: an IT
//! administrator (an Authentication Administrator, say) signs in on any
//! browser with the code `tapctl` shows, and `tapctl` then acts as them.
//! A staging laptop so holds no app secret; the token lives in memory for
//! one command and no refresh token is asked for.

use crate::graph::{EntraError, Graph};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The wait Microsoft adds when it answers `slow_down`.
const SLOW_DOWN: u64 = 5;

/// What the administrator is asked to do.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    /// The code to type on the verification page.
    pub user_code: String,
    /// The page.
    pub verification_uri: String,
    /// Microsoft's own sentence saying both.
    pub message: String,
    device_code: Zeroizing<String>,
    interval: u64,
    expires_at: i64,
}

#[derive(Deserialize)]
struct DeviceCodeBody {
    device_code: String,
    user_code: String,
    verification_uri: String,
    expires_in: i64,
    #[serde(default = "default_interval")]
    interval: u64,
    #[serde(default)]
    message: String,
}

fn default_interval() -> u64 {
    5
}

impl Graph {
    /// Asks the tenant for a code the administrator types on its page.
    pub async fn start_device_code(&self) -> Result<DeviceCode, EntraError> {
        let url = self.oauth_endpoint("devicecode");
        let scope = self.graph_scope();
        let body = self
            .token_request(&url, &[("scope", &scope)], self.now())
            .await?;
        let code: DeviceCodeBody = serde_json::from_value(body)
            .map_err(|e| crate::graph::unexpected(&url, e.to_string()))?;
        let message = if code.message.is_empty() {
            format!(
                "To sign in, open {} and enter the code {}.",
                code.verification_uri, code.user_code
            )
        } else {
            code.message
        };
        Ok(DeviceCode {
            user_code: code.user_code,
            verification_uri: code.verification_uri,
            message,
            device_code: Zeroizing::new(code.device_code),
            interval: code.interval.max(1),
            expires_at: self.now() + code.expires_in,
        })
    }

    /// The user principal name of whoever signed in with a code: the name
    /// the local audit log gives their changes. Reading one's own user
    /// needs no permission beyond the delegated ones the app has.
    pub async fn signed_in_user(&self) -> Result<String, EntraError> {
        let path = "/me?$select=userPrincipalName";
        let me = self.get(path).await?;
        me.get("userPrincipalName")
            .and_then(serde_json::Value::as_str)
            .map(String::from)
            .ok_or_else(|| crate::graph::unexpected(path, "no userPrincipalName".into()))
    }

    /// Waits, at the interval the tenant asks, until the administrator
    /// signed in with `code`; from then on Graph requests are theirs.
    pub async fn finish_device_code(&self, code: &DeviceCode) -> Result<(), EntraError> {
        let url = self.token_endpoint();
        let mut interval = code.interval;
        let grant = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", code.device_code.as_str()),
        ];
        loop {
            if self.now() >= code.expires_at {
                return Err(EntraError::Credential(
                    "nobody signed in with the code in time: run the command again".into(),
                ));
            }
            self.pause_for(std::time::Duration::from_secs(interval))
                .await;
            match self.token_request(&url, &grant, self.now()).await {
                Ok(body) => return self.keep_token(&url, body).await,
                Err(EntraError::SignIn { error, .. }) if error == "authorization_pending" => {}
                Err(EntraError::SignIn { error, .. }) if error == "slow_down" => {
                    interval += SLOW_DOWN;
                }
                Err(EntraError::SignIn { error, .. }) if error == "authorization_declined" => {
                    return Err(EntraError::Credential(
                        "the sign-in was declined on the verification page".into(),
                    ));
                }
                Err(EntraError::SignIn { error, .. }) if error == "expired_token" => {
                    return Err(EntraError::Credential(
                        "the code expired before anybody signed in: run the command again".into(),
                    ));
                }
                Err(other) => return Err(other),
            }
        }
    }
}
