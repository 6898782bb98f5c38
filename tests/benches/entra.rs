//! Entra numbers against the fake tenant (prints them; `scripts/bench-entra`):
//! a batch of 1,000 Entra passes with Graph throttling some of its
//! requests, as the admin pane and tapctl run it (core's `entra_batch`, each
//! call's rows stored in an SQLite directory), and the time from a security
//! key's answer to "registered" with Graph answering after 100 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use tapkiosk_core::entra_batch;
use tapkiosk_core::tenant::PASS_BATCH;
use tapkiosk_entra::passes;
use tapkiosk_entra::{EntraTenant, keys};
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
    let mut file = String::from("email,start,lifetime,one_time\n");
    for n in 0..PASSES {
        file.push_str(&format!("person{n}@contoso.onmicrosoft.com,,,yes\n"));
    }
    let t = tapkiosk_tests::spawn(tapkiosk_tests::Backend::Sqlite).await;
    // The token first, so that the batch's time is the batch's.
    passes::list(&graph, "ada@contoso.onmicrosoft.com")
        .await
        .unwrap();
    let tenant = EntraTenant::new(Arc::new(graph));
    let before = fake.graph_requests();
    let started = Instant::now();
    let report = entra_batch::issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    let issued = report.issued;
    let took = started.elapsed();
    let calls = fake.graph_requests() - before;
    let minimum = PASSES.div_ceil(PASS_BATCH) + 1;
    // Each call's people and their passes are looked up first: two
    // requests a person, 20 to a call.
    let look_ups = (2 * PASSES).div_ceil(PASS_BATCH);
    let throttled = match throttle_every {
        0 => "none throttled".to_string(),
        n => format!("1 request in {n} throttled (Retry-After: 1 s)"),
    };
    println!(
        "batch of {PASSES} Entra passes, {throttled}: {issued} issued in {:.1} s; \
         {calls} Graph calls (the fewest with $batch: {}, the policy's read and {} calls to issue \
         and {look_ups} to look the people and their passes up first; one by one: {}; \
         each call's rows stored in an SQLite directory)",
        took.as_secs_f64(),
        minimum + look_ups,
        minimum - 1,
        1 + 3 * PASSES
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
