//! The fake Entra tenant the system and end-to-end tests share.

use std::sync::Arc;
use tapkiosk_core::config::{ENTRA_REDIRECT_URI, EntraCredential, EntraSettings};
use tapkiosk_core::fido::RegisterPublicKeyCredential;
use tapkiosk_core::fido::ceremony::{Ceremony, KeySource, Phase};
use tapkiosk_core::fido::soft::SoftCtapToken;
use tapkiosk_core::{Clock, SystemClock};
use tapkiosk_fake_entra::{FakeEntra, Tenant, User};

const ADA: &str = "ada@contoso.onmicrosoft.com";
const PIN: &str = "2468";

/// The app registration the Entra tests use.
pub const ENTRA_APP: &str = "11111111-2222-3333-4444-555555555555";

/// A fake Contoso tenant (with Ada, and Grace), and the kiosk's app signed
/// in to it with a client secret.
pub fn fake_tenant() -> (FakeEntra, tapkiosk_entra::Graph) {
    fake_tenant_at(Arc::new(SystemClock))
}

/// As [`fake_tenant`], the app reading time from `clock`.
pub fn fake_tenant_at(clock: Arc<dyn Clock>) -> (FakeEntra, tapkiosk_entra::Graph) {
    let mut contoso = Tenant::contoso(ENTRA_APP);
    contoso.secret = Some("s3cret".into());
    contoso.users.push(User {
        id: "b2f1a9c3-0000-4000-8000-000000000001".into(),
        upn: "grace@contoso.onmicrosoft.com".into(),
        display_name: "Grace Hopper".into(),
        mail: None,
        enabled: true,
        guest: false,
    });
    let fake = FakeEntra::start(contoso);
    let url = url::Url::parse(&fake.url).unwrap();
    let redirect_uri = url::Url::parse(ENTRA_REDIRECT_URI).unwrap();
    let settings = EntraSettings {
        tenant: "contoso.onmicrosoft.com".into(),
        client_id: ENTRA_APP.into(),
        authority: url.clone(),
        graph: url.clone(),
        credential: EntraCredential::SecretInOsStore,
        redirect_uri,
        sign_in_hosts: Vec::new(),
        security_info: url.join("/security-info").unwrap(),
    };
    let credential = tapkiosk_entra::Credential::Secret("s3cret".to_string().into());
    let graph = tapkiosk_entra::Graph::new(settings, credential, clock).unwrap();
    (fake, graph)
}

/// Mary O'Brien's user principal name, and the mail she is known by.
pub const MARY: (&str, &str) = (
    "m.obrien@contoso.onmicrosoft.com",
    "mary.o'brien@contoso.com",
);

/// Adds Mary, whose sign-in name is not her mail, to the fake tenant.
pub fn add_mary(fake: &FakeEntra) {
    fake.change(|tenant| {
        tenant.users.push(User {
            id: "c3d4e5f6-0000-4000-8000-000000000002".into(),
            upn: MARY.0.into(),
            display_name: "Mary O'Brien".into(),
            mail: Some(MARY.1.into()),
            enabled: true,
            guest: false,
        });
    });
}

/// Waits for the key's worker thread to reach `wanted`.
#[allow(clippy::disallowed_methods)] // waiting for the key's worker thread
fn wait_for(ceremony: &Ceremony, wanted: impl Fn(&Phase) -> bool) -> Phase {
    for _ in 0..500 {
        let phase = ceremony.phase();
        if wanted(&phase) {
            return phase;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the key never got there: {:?}", ceremony.phase());
}

/// Asks `key` for a credential for Ada with Entra's options, giving its PIN
/// (setting it first if it has none); the answer, or where the key stopped.
pub async fn ask_key(
    graph: &tapkiosk_entra::Graph,
    key: &KeySource,
) -> Result<RegisterPublicKeyCredential, Phase> {
    let options = tapkiosk_entra::keys::creation_options(graph, ADA)
        .await
        .unwrap();
    assert_eq!(options.origin.as_str(), "https://login.microsoft.com/");
    let ceremony = Ceremony::register(key, options.origin, options.request);
    loop {
        let phase = wait_for(&ceremony, |p| {
            matches!(p, Phase::SetPin | Phase::EnterPin { .. } | Phase::Answered) || p.failed()
        });
        match phase {
            Phase::SetPin => ceremony.give_pin(PIN, Some(PIN)).unwrap(),
            Phase::EnterPin { .. } => ceremony.give_pin(PIN, None).unwrap(),
            Phase::Answered => return ceremony.take_registration().ok_or(phase),
            failed => return Err(failed),
        }
    }
}

/// A new software key, without a PIN.
pub fn soft_key() -> KeySource {
    let (token, _) = SoftCtapToken::generate().unwrap();
    KeySource::Soft(Arc::new(token))
}
