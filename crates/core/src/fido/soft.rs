//! A software security key that speaks CTAP2: a `Token` (the transport
//! trait USB HID and NFC keys implement) around webauthn-authenticator-rs's
//! `SoftToken`, so that the kiosk's client code (`CtapAuthenticator`) runs
//! exactly as with a USB key. It adds what `SoftToken` lacks and a real key
//! has: a PIN (clientPIN, PIN/UV auth protocol 1, with retries and
//! blocking) and the exclude and allow lists. Tests only (feature
//! `softtoken`).
use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use base64urlsafedata::Base64UrlSafeData;
use openssl::{bn, derive::Deriver, ec, hash, nid::Nid, pkey, rand::rand_bytes, sign, symm};
use serde_cbor_2::Value;
use sha2::{Digest, Sha256};
use webauthn_authenticator_rs::AuthenticatorBackendHashedClientData;
use webauthn_authenticator_rs::ctap2::CBORResponse;
use webauthn_authenticator_rs::ctap2::commands::{
    GetAssertionRequest, GetAssertionResponse, MakeCredentialRequest, MakeCredentialResponse,
};
use webauthn_authenticator_rs::error::{CtapError, WebauthnCError};
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::transport::Token;
use webauthn_authenticator_rs::ui::UiCallback;
use webauthn_rs_proto::{
    AuthenticatorSelectionCriteria, AuthenticatorTransport, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialDescriptor, PublicKeyCredentialRequestOptions, UserVerificationPolicy,
};

type R<T> = Result<T, WebauthnCError>;
fn ctap(e: CtapError) -> WebauthnCError {
    WebauthnCError::Ctap(e)
}

/// PIN tries before the key blocks its PIN, as on real keys.
const MAX_RETRIES: u32 = 8;

/// The key's insides.
struct SoftState {
    inner: SoftToken, // must be SoftToken::new(true) so it can set the UV flag when we say so
    pin_hash: Option<Vec<u8>>,
    retries: u32,
    ka: pkey::PKey<pkey::Private>,
    pin_token: Vec<u8>,
    known: HashSet<Vec<u8>>,
}

impl std::fmt::Debug for SoftState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftCtapToken(pin_set={})", self.pin_hash.is_some())
    }
}

fn p256() -> R<ec::EcGroup> {
    Ok(ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?)
}
fn new_ka() -> R<pkey::PKey<pkey::Private>> {
    Ok(pkey::PKey::from_ec_key(ec::EcKey::generate(&*p256()?)?)?)
}
fn hmac16(key: &[u8], msg: &[u8]) -> R<Vec<u8>> {
    let k = pkey::PKey::hmac(key)?;
    let mut s = sign::Signer::new(hash::MessageDigest::sha256(), &k)?;
    s.update(msg)?;
    let mut o = s.sign_to_vec()?;
    o.truncate(16);
    Ok(o)
}
fn aes(mode: symm::Mode, key: &[u8], data: &[u8]) -> R<Vec<u8>> {
    let c = symm::Cipher::aes_256_cbc();
    let mut cr = symm::Crypter::new(c, mode, key, Some(&[0u8; 16]))?;
    cr.pad(false);
    let mut out = vec![0; data.len() + 16];
    let n = cr.update(data, &mut out)?;
    let m = cr.finalize(&mut out[n..])?;
    out.truncate(n + m);
    Ok(out)
}
/// The crate's authenticator-side parsers (MakeCredentialRequest / GetAssertionRequest
/// `CBORResponse::try_from`) drop pinUvAuthParam, so read it from the raw map.
fn raw_pin_param(body: &[u8], key: i128) -> R<Option<Vec<u8>>> {
    let Value::Map(m) = serde_cbor_2::from_slice(body).map_err(|_| WebauthnCError::Cbor)? else {
        return Err(ctap(CtapError::Ctap2InvalidCBOR));
    };
    Ok(match m.get(&Value::Integer(key)) {
        Some(Value::Bytes(b)) => Some(b.clone()),
        _ => None,
    })
}
fn bytes(v: Option<&Value>) -> R<Vec<u8>> {
    match v {
        Some(Value::Bytes(b)) => Ok(b.clone()),
        _ => Err(ctap(CtapError::Ctap2MissingParameter)),
    }
}

impl SoftState {
    fn generate() -> R<(Self, openssl::x509::X509)> {
        // `true`: the inner token sets the UV flag when told to; this
        // wrapper tells it to only after a correct PIN.
        let (inner, ca) = SoftToken::new(true)?;
        let mut pin_token = vec![0; 32];
        rand_bytes(&mut pin_token)?;
        let key = Self {
            inner,
            pin_hash: None,
            retries: MAX_RETRIES,
            ka: new_ka()?,
            pin_token,
            known: HashSet::new(),
        };
        Ok((key, ca))
    }

    fn copy(&self) -> R<Self> {
        let cbor = self.inner.to_cbor()?;
        Ok(Self {
            inner: SoftToken::from_cbor(&cbor)?,
            pin_hash: self.pin_hash.clone(),
            retries: self.retries,
            ka: new_ka()?,
            pin_token: self.pin_token.clone(),
            known: self.known.clone(),
        })
    }

    fn cose_ka_pub(&self) -> R<Value> {
        let ec = self.ka.ec_key()?;
        let mut ctx = bn::BigNumContext::new()?;
        let (mut x, mut y) = (bn::BigNum::new()?, bn::BigNum::new()?);
        ec.public_key()
            .affine_coordinates(&*p256()?, &mut x, &mut y, &mut ctx)?;
        Ok(Value::Map(BTreeMap::from([
            (Value::Integer(1), Value::Integer(2)),
            (Value::Integer(3), Value::Integer(-25)),
            (Value::Integer(-1), Value::Integer(1)),
            (Value::Integer(-2), Value::Bytes(x.to_vec_padded(32)?)),
            (Value::Integer(-3), Value::Bytes(y.to_vec_padded(32)?)),
        ])))
    }

    /// PIN/UV protocol 1: shared = SHA-256(ECDH(ka, platform_key).x)
    fn shared(&self, platform_key: Option<&Value>) -> R<Vec<u8>> {
        let Some(Value::Map(m)) = platform_key else {
            return Err(ctap(CtapError::Ctap2MissingParameter));
        };
        let x = bytes(m.get(&Value::Integer(-2)))?;
        let y = bytes(m.get(&Value::Integer(-3)))?;
        let (bx, by) = (bn::BigNum::from_slice(&x)?, bn::BigNum::from_slice(&y)?);
        let peer = ec::EcKey::from_public_key_affine_coordinates(&*p256()?, &bx, &by)?;
        let peer = pkey::PKey::from_ec_key(peer)?;
        let mut d = Deriver::new(&self.ka)?;
        d.set_peer(&peer)?;
        Ok(Sha256::digest(d.derive_to_vec()?).to_vec())
    }

    /// Returns whether the request is user-verified (valid pinUvAuthParam).
    fn check_pin_uv(
        &self,
        cdh: &[u8],
        param: &Option<Vec<u8>>,
        opts: &Option<BTreeMap<String, bool>>,
    ) -> R<bool> {
        if opts
            .as_ref()
            .and_then(|o| o.get("uv"))
            .copied()
            .unwrap_or(false)
        {
            return Err(ctap(CtapError::Ctap2UnsupportedOption)); // no built-in UV
        }
        match (&self.pin_hash, param) {
            (Some(_), Some(p)) if *p == hmac16(&self.pin_token, cdh)? => Ok(true),
            (Some(_), Some(_)) => Err(ctap(CtapError::Ctap2PinAuthInvalid)),
            (Some(_), None) => Err(ctap(CtapError::Ctap2PUATRequired)),
            (None, Some(_)) => Err(ctap(CtapError::Ctap2PinNotSet)),
            (None, None) => Ok(false),
        }
    }

    fn handle<U: UiCallback>(&mut self, cbor: &[u8], ui: &U) -> R<Vec<u8>> {
        let (cmd, body) = cbor
            .split_first()
            .ok_or(ctap(CtapError::Ctap1InvalidLength))?;
        let out: BTreeMap<u32, Value> = match *cmd {
            0x04 => {
                // authenticatorGetInfo
                let mut info = self.inner.get_info();
                info.options = Some(BTreeMap::from([
                    ("rk".to_string(), false),
                    ("up".to_string(), true),
                    ("plat".to_string(), false),
                    ("clientPin".to_string(), self.pin_hash.is_some()),
                ]));
                info.pin_protocols = Some(vec![1]);
                info.transports = Some(vec!["usb".into()]);
                info.into()
            }
            0x01 => {
                // authenticatorMakeCredential
                let req = <MakeCredentialRequest as CBORResponse>::try_from(body)?;
                let param = raw_pin_param(body, 0x08)?;
                let uv = self.check_pin_uv(&req.client_data_hash, &param, &req.options)?;
                ui.request_touch();
                if req
                    .exclude_list
                    .iter()
                    .any(|d| self.known.contains(d.id.as_slice()))
                {
                    return Err(ctap(CtapError::Ctap2CredentialExcluded));
                }
                let options = PublicKeyCredentialCreationOptions {
                    rp: req.rp,
                    user: req.user,
                    challenge: Base64UrlSafeData::new(),
                    pub_key_cred_params: req.pub_key_cred_params,
                    timeout: Some(30_000),
                    exclude_credentials: None,
                    authenticator_selection: Some(AuthenticatorSelectionCriteria {
                        authenticator_attachment: None,
                        resident_key: None,
                        require_resident_key: false,
                        user_verification: if uv {
                            UserVerificationPolicy::Required
                        } else {
                            UserVerificationPolicy::Discouraged_DO_NOT_USE
                        },
                    }),
                    hints: None,
                    attestation: None,
                    attestation_formats: None,
                    extensions: None,
                };
                let cred = AuthenticatorBackendHashedClientData::perform_register(
                    &mut self.inner,
                    req.client_data_hash,
                    options,
                    30_000,
                )?;
                self.known.insert(cred.raw_id.to_vec());
                let resp: MakeCredentialResponse =
                    serde_cbor_2::from_slice(cred.response.attestation_object.as_slice())
                        .map_err(|_| WebauthnCError::Cbor)?;
                resp.into()
            }
            0x02 => {
                // authenticatorGetAssertion
                let req = <GetAssertionRequest as CBORResponse>::try_from(body)?;
                let param = raw_pin_param(body, 0x06)?;
                let uv = self.check_pin_uv(&req.client_data_hash, &param, &req.options)?;
                if !req
                    .allow_list
                    .iter()
                    .any(|c| self.known.contains(c.id.as_slice()))
                {
                    return Err(ctap(CtapError::Ctap2NoCredentials));
                }
                ui.request_touch();
                let options = PublicKeyCredentialRequestOptions {
                    challenge: Base64UrlSafeData::new(),
                    timeout: Some(30_000),
                    rp_id: req.rp_id,
                    allow_credentials: req.allow_list,
                    user_verification: if uv {
                        UserVerificationPolicy::Required
                    } else {
                        UserVerificationPolicy::Discouraged_DO_NOT_USE
                    },
                    hints: None,
                    extensions: None,
                };
                let a = AuthenticatorBackendHashedClientData::perform_auth(
                    &mut self.inner,
                    req.client_data_hash,
                    options,
                    30_000,
                )?;
                GetAssertionResponse {
                    credential: Some(PublicKeyCredentialDescriptor {
                        type_: a.type_,
                        id: a.raw_id,
                        transports: None,
                    }),
                    auth_data: Some(a.response.authenticator_data.into()),
                    signature: Some(a.response.signature.into()),
                    number_of_credentials: None,
                    user_selected: None,
                    large_blob_key: None,
                }
                .into()
            }
            0x06 => self.client_pin(body)?,
            _ => return Err(ctap(CtapError::Ctap1InvalidCommand)),
        };
        if out.is_empty() {
            return Ok(vec![]);
        }
        serde_cbor_2::to_vec(&out).map_err(|_| WebauthnCError::Cbor)
    }

    fn client_pin(&mut self, body: &[u8]) -> R<BTreeMap<u32, Value>> {
        let Value::Map(m) = serde_cbor_2::from_slice(body).map_err(|_| WebauthnCError::Cbor)?
        else {
            return Err(ctap(CtapError::Ctap2InvalidCBOR));
        };
        let get = |k: i128| m.get(&Value::Integer(k));
        let Some(Value::Integer(sub)) = get(2) else {
            return Err(ctap(CtapError::Ctap2MissingParameter));
        };
        match *sub {
            0x01 => Ok(BTreeMap::from([(3, Value::Integer(self.retries.into()))])),
            0x02 => Ok(BTreeMap::from([(1, self.cose_ka_pub()?)])),
            0x03 => {
                // setPIN
                if self.pin_hash.is_some() {
                    return Err(ctap(CtapError::Ctap2NotAllowed));
                }
                let shared = self.shared(get(3))?;
                let enc = bytes(get(5))?;
                if bytes(get(4))? != hmac16(&shared, &enc)? {
                    return Err(ctap(CtapError::Ctap2PinAuthInvalid));
                }
                let padded = aes(symm::Mode::Decrypt, &shared, &enc)?;
                let pin: Vec<u8> = padded.into_iter().take_while(|b| *b != 0).collect();
                if pin.len() < 4 {
                    return Err(ctap(CtapError::Ctap2PinPolicyViolation));
                }
                self.pin_hash = Some(Sha256::digest(&pin)[..16].to_vec());
                Ok(BTreeMap::new())
            }
            0x05 => {
                // getPinToken (CTAP 2.0)
                let Some(expected) = self.pin_hash.clone() else {
                    return Err(ctap(CtapError::Ctap2PinNotSet));
                };
                if self.retries == 0 {
                    return Err(ctap(CtapError::Ctap2PinBlocked));
                }
                let shared = self.shared(get(3))?;
                let got = aes(symm::Mode::Decrypt, &shared, &bytes(get(6))?)?;
                if got != expected {
                    self.retries -= 1;
                    self.ka = new_ka()?;
                    return Err(ctap(CtapError::Ctap2PinInvalid));
                }
                self.retries = MAX_RETRIES;
                Ok(BTreeMap::from([(
                    2,
                    Value::Bytes(aes(symm::Mode::Encrypt, &shared, &self.pin_token)?),
                )]))
            }
            _ => Err(ctap(CtapError::Ctap2InvalidSubcommand)),
        }
    }
}

/// The software key. Handles made with [`SoftCtapToken::same_key`] reach
/// the same key (the test holds one while the client owns another).
#[derive(Debug)]
pub struct SoftCtapToken(std::sync::Arc<std::sync::Mutex<SoftState>>, Turn);

/// The key's turn: one kiosk conversation with it at a time.
type Turn = std::sync::Arc<tokio::sync::Mutex<()>>;

impl SoftCtapToken {
    /// A new key with no PIN, and the root of its attestation certificate
    /// (valid for a day).
    pub fn generate() -> R<(Self, openssl::x509::X509)> {
        let (state, ca) = SoftState::generate()?;
        Ok((Self::holding(state), ca))
    }

    /// Another handle on this key.
    pub fn same_key(&self) -> Self {
        Self(
            std::sync::Arc::clone(&self.0),
            std::sync::Arc::clone(&self.1),
        )
    }

    fn holding(state: SoftState) -> Self {
        Self(
            std::sync::Arc::new(std::sync::Mutex::new(state)),
            Turn::default(),
        )
    }

    /// See [`Turn`].
    pub(crate) fn turn(&self) -> Turn {
        std::sync::Arc::clone(&self.1)
    }

    /// An independent copy of the key as it is now, credentials, PIN and
    /// signature counter included: a cloned key.
    pub fn copy_key(&self) -> R<Self> {
        let state = self.lock()?.copy()?;
        Ok(Self::holding(state))
    }

    /// Keeps the key busy until the guard is dropped: a key that is slow
    /// to answer, so that a test can act while a command is in flight.
    pub fn hold(&self) -> impl Drop + '_ {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> R<std::sync::MutexGuard<'_, SoftState>> {
        self.0.lock().map_err(|_| WebauthnCError::Internal)
    }
}

#[async_trait]
impl Token for SoftCtapToken {
    type Id = ();
    fn get_transport(&self) -> AuthenticatorTransport {
        AuthenticatorTransport::Usb
    }
    async fn transmit_raw<U>(&mut self, cbor: &[u8], ui: &U) -> Result<Vec<u8>, WebauthnCError>
    where
        U: UiCallback,
    {
        self.lock()?.handle(cbor, ui)
    }
    async fn cancel(&mut self) -> R<()> {
        Ok(())
    }
    async fn init(&mut self) -> R<()> {
        Ok(())
    }
    async fn close(&mut self) -> R<()> {
        Ok(())
    }
}
