//! Entra numbers against the fake tenant (prints them; `scripts/bench-entra`):
//! a batch of 1,000 Entra passes with Graph throttling some of its
//! requests, and the time from a security key's answer to "registered"
//! with Graph answering after 100 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};
use tapkiosk_entra::graph::BATCH_SIZE;
use tapkiosk_entra::keys;
use tapkiosk_entra::passes::{self, PassRequest};
use tapkiosk_tests::entra::{ask_key, fake_tenant, soft_key};

const PASSES: usize = 1_000;
/// One request in this many inside a `$batch` call is answered 429.
const THROTTLE_EVERY: usize = 40;

#[tokio::main]
async fn main() {
    batch_of_passes(0).await;
    batch_of_passes(THROTTLE_EVERY).await;
    key_to_registered().await;
}

#[allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
async fn batch_of_passes(throttle_every: usize) {
    let (fake, graph) = fake_tenant();
    fake.change(|tenant| {
        tenant.add_people(PASSES);
        tenant.throttle_every = throttle_every;
        tenant.throttle_retry_after = 1;
    });
    let rows: Vec<(String, PassRequest)> = (0..PASSES)
        .map(|n| {
            let request = PassRequest {
                one_time: Some(true),
                ..PassRequest::default()
            };
            (format!("person{n}@contoso.onmicrosoft.com"), request)
        })
        .collect();
    // The token first, so that the batch's time is the batch's.
    passes::list(&graph, "ada@contoso.onmicrosoft.com")
        .await
        .unwrap();
    let before = fake.graph_requests();
    let started = Instant::now();
    let mut issued = 0;
    for chunk in rows.chunks(BATCH_SIZE) {
        let answers = passes::issue_batch(&graph, chunk).await.unwrap();
        issued += answers.iter().filter(|a| a.is_ok()).count();
    }
    let took = started.elapsed();
    let calls = fake.graph_requests() - before;
    let minimum = PASSES.div_ceil(BATCH_SIZE);
    let throttled = match throttle_every {
        0 => "none throttled".to_string(),
        n => format!("1 request in {n} throttled (Retry-After: 1 s)"),
    };
    println!(
        "batch of {PASSES} Entra passes, {throttled}: {issued} issued in {:.1} s; \
         {calls} Graph calls (minimum with $batch: {minimum}; one by one: {PASSES})",
        took.as_secs_f64()
    );
}

#[allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
async fn key_to_registered() {
    const RUNS: usize = 20;
    let (fake, graph) = fake_tenant();
    fake.change(|tenant| tenant.latency = Duration::from_millis(100));
    let mut times = Vec::new();
    for run in 0..RUNS {
        let answer = ask_key(&graph, &soft_key()).await.unwrap();
        let answered = Instant::now();
        keys::register_key(
            &graph,
            "ada@contoso.onmicrosoft.com",
            &format!("Key {run}"),
            &answer,
        )
        .await
        .unwrap();
        times.push(answered.elapsed());
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "key's answer to registered in Entra, Graph answering after 100 ms: median {} ms, worst {} ms ({RUNS} runs)",
        median.as_millis(),
        times[RUNS - 1].as_millis()
    );
}
