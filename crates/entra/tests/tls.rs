//! The Graph client speaks TLS through rustls and checks the server's
//! certificate against the system's trust store: a server whose root the
//! system does not trust is refused before any request is sent, and a
//! company root the system names (here through `SSL_CERT_FILE`, as a TLS
//! inspecting proxy's root would be installed) is trusted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tapkiosk_core::config::{EntraCredential, EntraSettings};
use tapkiosk_entra::{Credential, EntraError, Graph};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

const PORT_VARIABLE: &str = "TAPKIOSK_TLS_TEST_PORT";

/// A root and a certificate for 127.0.0.1 that it signed.
struct Pki {
    root_pem: String,
    leaf: rustls::pki_types::CertificateDer<'static>,
    leaf_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let root_key = rcgen::KeyPair::generate().unwrap();
    let mut root = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    root.distinguished_name
        .push(rcgen::DnType::CommonName, "Contoso inspection root");
    let root = root.self_signed(&root_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &root, &root_key)
        .unwrap();
    Pki {
        root_pem: root.pem(),
        leaf: leaf.der().clone(),
        leaf_key: rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

/// An authority on 127.0.0.1 over TLS that answers every request with its
/// discovery document; counts the requests that got through the handshake.
struct Authority {
    port: u16,
    requests: Arc<AtomicUsize>,
}

async fn authority(pki: &Pki) -> Authority {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.leaf.clone()], pki.leaf_key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut stream) = acceptor.accept(stream).await else {
                continue;
            };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let base = format!("https://127.0.0.1:{port}");
            let body = serde_json::json!({
                "issuer": format!("{base}/contoso/v2.0"),
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "jwks_uri": format!("{base}/keys"),
            })
            .to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    Authority { port, requests }
}

fn graph_at(port: u16) -> Graph {
    let base = url::Url::parse(&format!("https://127.0.0.1:{port}")).unwrap();
    let settings = EntraSettings {
        tenant: "contoso".into(),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        authority: base.clone(),
        graph: base,
        credential: EntraCredential::SecretInOsStore,
        redirect_uri: url::Url::parse("http://localhost/tapkiosk/signed-in").unwrap(),
        sign_in_hosts: Vec::new(),
        security_info: url::Url::parse(tapkiosk_core::config::ENTRA_SECURITY_INFO).unwrap(),
    };
    let credential = Credential::Secret(Zeroizing::new("not sent".into()));
    Graph::new(settings, credential, Arc::new(tapkiosk_core::SystemClock)).unwrap()
}

async fn start_sign_in(graph: &Graph) -> Result<url::Url, EntraError> {
    let sign_in = graph
        .start_sign_in(
            "ada-id",
            "ada@contoso.com",
            "http://localhost/tapkiosk/signed-in",
        )
        .await?;
    Ok(sign_in.url)
}

#[tokio::test]
async fn a_server_whose_root_the_system_does_not_trust_is_refused() {
    let pki = pki();
    let authority = authority(&pki).await;
    let refused = start_sign_in(&graph_at(authority.port)).await.unwrap_err();
    let EntraError::Unreachable { reason, .. } = &refused else {
        panic!("not a TLS refusal: {refused:?}")
    };
    // The reason says what IT must fix, not only "error sending request".
    assert!(reason.contains("certificate"), "{reason}");
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert_eq!(authority.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_root_the_system_names_is_trusted() {
    let pki = pki();
    let authority = authority(&pki).await;
    let folder = tempfile::tempdir().unwrap();
    let root_file = folder.path().join("contoso-root.pem");
    std::fs::write(&root_file, &pki.root_pem).unwrap();
    // A process of its own: the trust store is read from the environment,
    // which this process's other threads must not see change.
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signs_in_through_the_trusted_root", "--ignored"])
        .env("SSL_CERT_FILE", &root_file)
        .env(PORT_VARIABLE, authority.port.to_string())
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "{said}");
    assert!(said.contains("1 passed"), "{said}");
    assert_eq!(authority.requests.load(Ordering::SeqCst), 1);
}

/// Run by `a_root_the_system_names_is_trusted` in a process of its own.
#[tokio::test]
#[ignore = "run by a_root_the_system_names_is_trusted, with the root it names"]
async fn signs_in_through_the_trusted_root() {
    let port: u16 = std::env::var(PORT_VARIABLE).unwrap().parse().unwrap();
    let page = start_sign_in(&graph_at(port)).await.unwrap();
    assert_eq!(
        page.origin().ascii_serialization(),
        format!("https://127.0.0.1:{port}")
    );
    assert_eq!(page.path(), "/authorize");
}
