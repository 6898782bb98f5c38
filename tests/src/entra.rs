//! The fake Entra tenant the system and end-to-end tests share.

use std::sync::Arc;
use tapkiosk_core::config::{ENTRA_REDIRECT_URI, EntraCredential, EntraSettings};
use tapkiosk_core::{Clock, SystemClock};
use tapkiosk_fake_entra::{FakeEntra, Tenant, User};

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
        enabled: true,
    });
    let fake = FakeEntra::start(contoso);
    let url = url::Url::parse(&fake.url).unwrap();
    let redirect_uri = url::Url::parse(ENTRA_REDIRECT_URI).unwrap();
    let settings = EntraSettings {
        tenant: "contoso.onmicrosoft.com".into(),
        client_id: ENTRA_APP.into(),
        authority: url.clone(),
        graph: url,
        credential: EntraCredential::SecretInOsStore,
        redirect_uri,
        sign_in_hosts: Vec::new(),
    };
    let credential = tapkiosk_entra::Credential::Secret("s3cret".to_string().into());
    let graph = tapkiosk_entra::Graph::new(settings, credential, clock).unwrap();
    (fake, graph)
}
