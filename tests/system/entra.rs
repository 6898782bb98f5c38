//! A security key into Microsoft Entra: Graph's creation options (from the
//! fake tenant, which checks answers with webauthn-rs as Entra would), the
//! kiosk's real CTAP2 client talking to a software key with a PIN, and the
//! answer registered with Graph.

use std::sync::Arc;
use tapkiosk_core::fido::ceremony::Phase;
use tapkiosk_entra::EntraError;
use tapkiosk_entra::keys::{creation_options, register_key};
pub(crate) use tapkiosk_tests::entra::{ask_key, soft_key};

const ADA: &str = "ada@contoso.onmicrosoft.com";

use crate::fake_tenant as tenant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_registered_into_entra_with_the_options_entra_gave() {
    let (fake, graph) = tenant();
    let key = soft_key();
    let answer = ask_key(&graph, &key).await.unwrap();
    let registered = register_key(&graph, ADA, "Ada's key", &answer)
        .await
        .unwrap();
    assert_eq!(registered.display_name, "Ada's key");
    assert_eq!(registered.model.as_deref(), Some("Software key (test)"));
    crate::crosscheck_registrations(&fake);
    drop(fake);
    // The fake checked the answer with webauthn-rs against its challenge and
    // login.microsoft.com as the relying party; a second registration of
    // the same key is excluded by the key itself.
    let (fake, graph) = tenant();
    let first = ask_key(&graph, &key).await.unwrap();
    register_key(&graph, ADA, "Key", &first).await.unwrap();
    assert_eq!(
        ask_key(&graph, &key).await.unwrap_err(),
        Phase::AlreadyRegistered
    );
    drop(fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_token_is_kept_until_five_minutes_before_it_expires() {
    let clock = Arc::new(tapkiosk_core::ManualClock::new(tapkiosk_tests::start_time()));
    let (fake, graph) = crate::fake_tenant_at(clock.clone());
    for _ in 0..3 {
        creation_options(&graph, ADA).await.unwrap();
    }
    assert_eq!(fake.tokens_issued(), 1);
    // The fake's tokens last 3,599 s: at 54 min it is kept, at 55 renewed.
    clock.advance(chrono::TimeDelta::minutes(54));
    creation_options(&graph, ADA).await.unwrap();
    assert_eq!(fake.tokens_issued(), 1);
    clock.advance(chrono::TimeDelta::minutes(1));
    creation_options(&graph, ADA).await.unwrap();
    assert_eq!(fake.tokens_issued(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_after_the_challenge_expired_or_replayed_is_refused() {
    let (fake, graph) = tenant();
    let key = soft_key();
    let answer = ask_key(&graph, &key).await.unwrap();
    fake.change(|t| t.clock_ahead = 6 * 60);
    let late = register_key(&graph, ADA, "Key", &answer).await.unwrap_err();
    assert!(
        matches!(&late, EntraError::Graph { status: 400, message, .. } if message.contains("expired")),
        "{late}"
    );
    // Fresh options, a fresh answer: registered; the same answer again is not.
    let answer = ask_key(&graph, &key).await.unwrap();
    register_key(&graph, ADA, "Key", &answer).await.unwrap();
    let replayed = register_key(&graph, ADA, "Key", &answer).await.unwrap_err();
    assert!(
        matches!(replayed, EntraError::Graph { status: 400, .. }),
        "{replayed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_self_service_or_the_permission_graph_refuses_the_options() {
    let (fake, graph) = tenant();
    fake.change(|t| t.fido2_policy["isSelfServiceRegistrationAllowed"] = false.into());
    let refused = creation_options(&graph, ADA).await.unwrap_err();
    assert!(refused.to_string().contains("self-service"), "{refused}");
    let (fake, graph) = tenant();
    fake.change(|t| {
        t.roles
            .retain(|r| r != "UserAuthenticationMethod.ReadWrite.All")
    });
    let refused = creation_options(&graph, ADA).await.unwrap_err();
    assert!(
        matches!(&refused, EntraError::Graph { status: 403, code, .. } if code == "Authorization_RequestDenied"),
        "{refused}"
    );
    let unknown = creation_options(&graph, "nobody@contoso.onmicrosoft.com").await;
    assert!(matches!(
        unknown,
        Err(EntraError::Graph { status: 404, .. })
    ));
}
