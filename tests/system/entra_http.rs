//! Graph as Microsoft's throttling guidance asks (against the fake tenant
//! with injected failures): 429, 503 and 504 tried again after the
//! `Retry-After` given, else a doubling back-off, five tries at most; a
//! refusal never tried again; an expired token renewed once; every page of
//! a collection read; Graph's request id kept in errors.

use crate::entra::{ask_key, soft_key};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tapkiosk_entra::graph::{GRAPH_TRIES, Pause};
use tapkiosk_entra::{EntraError, Graph, keys, passes};
use tapkiosk_fake_entra::FakeEntra;

const ADA: &str = "ada@contoso.onmicrosoft.com";

/// The waits the client asked for, not taken.
#[derive(Default)]
struct Waits(Mutex<Vec<Duration>>);

#[async_trait::async_trait]
impl Pause for Waits {
    async fn pause(&self, how_long: Duration) {
        self.0.lock().unwrap().push(how_long);
    }
}

impl Waits {
    fn seconds(&self) -> Vec<u64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_secs)
            .collect()
    }
}

fn tenant_with_waits() -> (FakeEntra, Graph, Arc<Waits>) {
    let (fake, graph) = crate::fake_tenant();
    let waits = Arc::new(Waits::default());
    (fake, graph.pausing_with(waits.clone()), waits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_or_unavailable_requests_are_tried_again_as_graph_says() {
    let (fake, graph, waits) = tenant_with_waits();
    fake.change(|t| t.failures = [(429, Some(7)), (503, None), (504, Some(2))].into());
    assert!(passes::list(&graph, ADA).await.unwrap().is_empty());
    assert_eq!(waits.seconds(), [7, 2, 2], "Retry-After, else 1, 2, 4… s");
    assert_eq!(fake.graph_requests(), 4);
}

/// A Graph that does not answer is given up (after the client's 30 s, a
/// real wait: the fake answers after 31), said as such and not tried
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_that_does_not_answer_is_given_up_after_thirty_seconds() {
    let (fake, graph, waits) = tenant_with_waits();
    // The token first; then every Graph call takes 31 s.
    passes::list(&graph, ADA).await.unwrap();
    fake.change(|t| t.latency = Duration::from_secs(31));
    let error = passes::list(&graph, ADA).await.unwrap_err();
    assert!(matches!(error, EntraError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(waits.seconds().is_empty(), "not tried again");
}

/// A host of the tenant that takes no connection (its queue is full, so its
/// kernel drops the client's SYN, as a firewall would) is given up after
/// the client's 10 s connect timeout (a real wait), said as a connection
/// that timed out, and not tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_takes_no_connection_is_given_up_after_ten_seconds() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    // Never accepted: the first connection fills the queue of a backlog
    // of 0; the next SYN is dropped.
    let _queued = std::net::TcpStream::connect(address).unwrap();
    let (_fake, graph) = crate::fake_tenant();
    let mut settings = graph.settings().clone();
    // The sign-in's host (the token endpoint, on the same client as Graph).
    settings.authority = url::Url::parse(&format!("http://{address}")).unwrap();
    let waits = Arc::new(Waits::default());
    let secret = tapkiosk_entra::Credential::Secret("s3cret".to_string().into());
    let graph = Graph::new(settings, secret, Arc::new(tapkiosk_core::SystemClock))
        .unwrap()
        .pausing_with(waits.clone());
    let error = passes::list(&graph, ADA).await.unwrap_err();
    let EntraError::Unreachable { reason, .. } = &error else {
        panic!("{error}");
    };
    assert!(reason.starts_with("no connection within 10 s"), "{reason}");
    assert!(waits.seconds().is_empty(), "not tried again");
    drop(listener);
}

/// A `Retry-After` of an hour is not waited out: two minutes at most,
/// then the request is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_after_is_waited_two_minutes_at_most() {
    let (fake, graph, waits) = tenant_with_waits();
    fake.change(|t| t.failures = [(429, Some(3600))].into());
    assert!(passes::list(&graph, ADA).await.unwrap().is_empty());
    assert_eq!(waits.seconds(), [120]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_is_given_up_after_five_tries_and_its_request_id_is_said() {
    let (fake, graph, waits) = tenant_with_waits();
    fake.change(|t| t.failures = vec![(503, None); 6].into());
    let error = passes::list(&graph, ADA).await.unwrap_err();
    let EntraError::Graph {
        status, request_id, ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(*status, 503);
    let request_id = request_id.as_deref().unwrap();
    assert!(error.to_string().contains(request_id), "{error}");
    assert_eq!(waits.seconds(), [1, 2, 4, 8]);
    assert_eq!(fake.graph_requests(), GRAPH_TRIES as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_not_tried_again() {
    let (fake, graph, waits) = tenant_with_waits();
    fake.change(|t| t.failures = [(400, Some(1))].into());
    let error = passes::list(&graph, ADA).await.unwrap_err();
    assert!(matches!(error, EntraError::Graph { status: 400, .. }));
    assert!(waits.seconds().is_empty());
    assert_eq!(fake.graph_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_mid_batch_is_renewed_once() {
    let (fake, graph, _waits) = tenant_with_waits();
    passes::list(&graph, ADA).await.unwrap();
    assert_eq!(fake.tokens_issued(), 1);
    fake.expire_tokens();
    passes::list(&graph, ADA).await.unwrap();
    assert_eq!(fake.tokens_issued(), 2);
    assert_eq!(fake.graph_requests(), 3, "the refused request, once more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_a_collection_is_read() {
    let (fake, graph, _waits) = tenant_with_waits();
    for name in ["Blue", "Green", "Spare"] {
        let answer = ask_key(&graph, &soft_key()).await.unwrap();
        keys::register_key(&graph, ADA, name, &answer)
            .await
            .unwrap();
    }
    fake.change(|t| t.page_size = 2);
    let before = fake.graph_requests();
    let names: Vec<_> = keys::list(&graph, ADA)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.display_name)
        .collect();
    assert_eq!(names, ["Blue", "Green", "Spare"]);
    assert_eq!(fake.graph_requests() - before, 2, "two pages");
}
