//! A person signs in with their Entra pass on the tenant's own page (the
//! fake's, to Microsoft's contract): the kiosk's authorization code flow
//! with PKCE, and its checks of the answer and the ID token.

use tapkiosk_core::fido::Url;
use tapkiosk_entra::Graph;
use tapkiosk_entra::passes::{self, PassRequest};
use tapkiosk_entra::signin::SignInError;

const ADA: &str = "ada@contoso.onmicrosoft.com";
const ADA_ID: &str = "071cc716-8147-4397-a5ba-b2105951cc0b";
const REDIRECT: &str = "http://localhost/tapkiosk/signed-in";

use crate::fake_tenant as tenant;

/// What the person does on the sign-in page: opens it, types `pass`, and
/// is sent on (the window's next address), or stays on the page.
pub(crate) async fn type_pass_on_the_page(page: &Url, pass: &str) -> Result<Url, String> {
    tapkiosk_tests::install_tls_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let shown = http
        .get(page.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut fields: Vec<(String, String)> = hidden_fields(&shown);
    fields.push(("pass".into(), pass.into()));
    let sent = http.post(page.clone()).form(&fields).send().await.unwrap();
    match sent.headers().get("location") {
        Some(to) => Ok(Url::parse(to.to_str().unwrap()).unwrap()),
        None => Err(sent.text().await.unwrap()),
    }
}

fn hidden_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|tag| {
            let attr = |name: &str| {
                let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let end = start + tag[start..].find('"').unwrap();
                tag[start..end]
                    .replace("&quot;", "\"")
                    .replace("&lt;", "<")
                    .replace("&amp;", "&")
            };
            (attr("name"), attr("value"))
        })
        .collect()
}

pub(crate) async fn issue_pass(graph: &Graph, user: &str, one_time: bool) -> String {
    let request = PassRequest {
        one_time: Some(one_time),
        ..PassRequest::default()
    };
    let issued = passes::issue(graph, user, &request).await.unwrap();
    issued.value.unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_their_entra_pass_once() {
    let (_fake, graph) = tenant();
    let pass = issue_pass(&graph, ADA, true).await;
    let sign_in = graph.start_sign_in(ADA_ID, ADA, REDIRECT).await.unwrap();
    let asked: std::collections::BTreeMap<_, _> = sign_in.url.query_pairs().into_owned().collect();
    assert_eq!(asked["login_hint"], ADA);
    assert_eq!(asked["prompt"], "login");
    assert_eq!(asked["code_challenge_method"], "S256");
    let wrong = type_pass_on_the_page(&sign_in.url, "not the pass")
        .await
        .unwrap_err();
    assert!(wrong.contains("incorrect"), "{wrong}");
    let back = type_pass_on_the_page(&sign_in.url, &pass).await.unwrap();
    let person = graph.finish_sign_in(sign_in, &back).await.unwrap();
    assert_eq!(person.id, ADA_ID);
    assert_eq!(person.name.as_deref(), Some("Ada Lovelace"));
    // Entra used the one-time pass up.
    let again = graph.start_sign_in(ADA_ID, ADA, REDIRECT).await.unwrap();
    assert!(type_pass_on_the_page(&again.url, &pass).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_stale_answer_or_another_persons_sign_in_is_refused() {
    let (_fake, graph) = tenant();
    let pass = issue_pass(&graph, ADA, false).await;
    // The answer of another sign-in: its state differs.
    let first = graph.start_sign_in(ADA_ID, ADA, REDIRECT).await.unwrap();
    let second = graph.start_sign_in(ADA_ID, ADA, REDIRECT).await.unwrap();
    let back = type_pass_on_the_page(&first.url, &pass).await.unwrap();
    let crossed = graph.finish_sign_in(second, &back).await;
    assert!(
        matches!(crossed, Err(SignInError::StateMismatch)),
        "{crossed:?}"
    );
    // Sent elsewhere than the redirect URI.
    let third = graph.start_sign_in(ADA_ID, ADA, REDIRECT).await.unwrap();
    let mut elsewhere = type_pass_on_the_page(&third.url, &pass).await.unwrap();
    elsewhere.set_path("/somewhere-else");
    assert!(matches!(
        graph.finish_sign_in(third, &elsewhere).await,
        Err(SignInError::StateMismatch)
    ));
    // The person cancelled on Microsoft's page.
    let fourth = graph.start_sign_in(ADA_ID, ADA, REDIRECT).await.unwrap();
    let state: String = fourth
        .url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let cancelled = Url::parse(&format!(
        "{REDIRECT}?error=access_denied&error_description=cancelled&state={state}"
    ))
    .unwrap();
    assert!(matches!(
        graph.finish_sign_in(fourth, &cancelled).await,
        Err(SignInError::Refused { .. })
    ));
    // Grace's pass typed after Ada's email: the token names Grace.
    let graces = issue_pass(&graph, "grace@contoso.onmicrosoft.com", false).await;
    let fifth = graph
        .start_sign_in(ADA_ID, "grace@contoso.onmicrosoft.com", REDIRECT)
        .await
        .unwrap();
    let back = type_pass_on_the_page(&fifth.url, &graces).await.unwrap();
    assert!(matches!(
        graph.finish_sign_in(fifth, &back).await,
        Err(SignInError::OtherPerson)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_that_fails_a_check_is_refused() {
    let (fake, graph) = tenant();
    let pass = issue_pass(&graph, ADA, false).await;
    let cases: [(&str, serde_json::Value, bool, &str); 6] = [
        (
            "aud",
            serde_json::json!("99999999-2222-3333-4444-555555555555"),
            false,
            "for another app",
        ),
        ("nonce", serde_json::json!("another"), false, "nonce"),
        ("exp", serde_json::json!(1_000_000_000), false, "expired"),
        (
            "iss",
            serde_json::json!(
                "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
            ),
            false,
            "issuer",
        ),
        (
            "tid",
            serde_json::json!("9188040d-6c67-4c5b-b112-36a304b66dad"),
            false,
            "issuer or tenant",
        ),
        (
            "name",
            serde_json::json!("Ada Lovelace"),
            true,
            "signature does not verify",
        ),
    ];
    for (claim, value, foreign_key, said) in cases {
        fake.change(|t| {
            t.id_token_tampering = (
                [(claim.to_string(), value.clone())].into_iter().collect(),
                foreign_key,
            );
        });
        let sign_in = graph.start_sign_in(ADA_ID, ADA, REDIRECT).await.unwrap();
        let back = type_pass_on_the_page(&sign_in.url, &pass).await.unwrap();
        match graph.finish_sign_in(sign_in, &back).await {
            Err(SignInError::BadToken(reason)) => {
                assert!(reason.contains(said), "{claim}: {reason}")
            }
            other => panic!("{claim}: {other:?}"),
        }
    }
    // Untampered, the same steps sign Ada in.
    fake.change(|t| t.id_token_tampering = Default::default());
    let sign_in = graph.start_sign_in(ADA_ID, ADA, REDIRECT).await.unwrap();
    let back = type_pass_on_the_page(&sign_in.url, &pass).await.unwrap();
    assert_eq!(
        graph.finish_sign_in(sign_in, &back).await.unwrap().id,
        ADA_ID
    );
}
