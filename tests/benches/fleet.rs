//! A fleet of kiosks signing people in on one PostgreSQL directory across
//! a network: N kiosks, each with a pool of its own, each signing in people
//! of its own one after another, through a proxy that delays every packet
//! by half a round trip each way. Prints sign-ins a second and the
//! latency of one sign-in (p50, p99) for each round trip and N; then the
//! latency of kiosks' sign-ins while IT issues a batch of 10,000 passes to
//! others (`-- batch` runs only that). `scripts/bench` starts the
//! PostgreSQL server it needs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::disallowed_methods)] // wall-clock timing and delays are the point here

use std::sync::Arc;
use std::time::{Duration, Instant};
use tapkiosk_core::directory::{IssueRequest, Location, Settings};
use tapkiosk_core::user::NewUser;
use tapkiosk_core::{Directory, Email};
use tapkiosk_tests::{Backend, TestDirectory};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUND_TRIPS_MS: [u64; 3] = [0, 2, 20];
const KIOSKS: [usize; 4] = [1, 4, 16, 64];
/// Sign-ins each kiosk makes in one run.
const EACH: usize = 8;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let t = tapkiosk_tests::spawn(Backend::Postgres).await;
    let Location::Postgres(url) = &t.location else {
        unreachable!("a PostgreSQL directory")
    };
    let people = KIOSKS.iter().max().unwrap() * EACH;
    let codes = hire(&t, people, "hire").await;
    if std::env::args().any(|arg| arg == "batch") {
        during_a_batch(&t, url, &codes).await;
        return;
    }
    println!("| round trip | kiosks | sign-ins/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for rtt in ROUND_TRIPS_MS {
        let proxy = Proxy::start(url, Duration::from_millis(rtt) / 2).await;
        let mut one_kiosk = 0.0;
        for kiosks in KIOSKS {
            let (rate, mut took) = fleet(&t, &proxy.url, kiosks, &codes).await;
            took.sort();
            if kiosks == 1 {
                one_kiosk = rate;
            }
            println!(
                "| {rtt} ms | {kiosks} | {rate:.1} ({:.1}×) | {:.1} ms | {:.1} ms |",
                rate / one_kiosk,
                ms(took[took.len() / 2]),
                ms(took[(took.len() * 99).div_ceil(100) - 1]),
            );
        }
    }
    during_a_batch(&t, url, &codes).await;
}

/// People in the batch IT issues while the kiosks sign others in.
const BATCH: usize = 10_000;
/// Kiosks signing in during the batch, straight to the server.
const KIOSKS_DURING_BATCH: usize = 4;

/// Kiosks sign people in, one after another and over again, while IT
/// issues a batch of [`BATCH`] passes to others on the same directory: the
/// latency of the sign-ins that started while the batch ran.
async fn during_a_batch(t: &TestDirectory, url: &str, codes: &[(Email, String)]) {
    let users = people(BATCH, "batch");
    t.directory.import_users(&users).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut running = Vec::new();
    for n in 0..KIOSKS_DURING_BATCH {
        let directory = kiosk(t, url, n).await;
        let mine = codes[n * EACH..(n + 1) * EACH].to_vec();
        let done = done.clone();
        running.push(tokio::spawn(async move {
            let mut took = Vec::new();
            for (email, code) in mine.iter().cycle() {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let asked = Instant::now();
                directory.redeem(email.as_str(), code).await.unwrap();
                took.push(asked.elapsed());
            }
            took
        }));
    }
    let started = Instant::now();
    let requests: Vec<(u64, IssueRequest)> = users
        .iter()
        .map(|(line, user)| (*line, IssueRequest::new(user.email.clone())))
        .collect();
    t.directory
        .issue_batch(&requests, |_| Ok::<(), String>(()))
        .await
        .unwrap();
    let batch = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut took = Vec::new();
    for kiosk in running {
        took.extend(kiosk.await.unwrap());
    }
    took.sort();
    println!();
    println!("| batch of {BATCH} passes | kiosks | sign-ins during it | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.2} s | {KIOSKS_DURING_BATCH} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
        batch.as_secs_f64(),
        took.len(),
        ms(took[took.len() / 2]),
        ms(took[(took.len() * 99).div_ceil(100) - 1]),
        ms(*took.last().unwrap()),
    );
}

/// A kiosk's own `Directory` (a pool of its own) through `url`.
async fn kiosk(t: &TestDirectory, url: &str, n: usize) -> Directory {
    let settings = Settings {
        kiosk: format!("kiosk-{n}"),
        ..Settings::default()
    };
    let location = Location::Postgres(url.to_string());
    let clock = Arc::new(t.clock.clone());
    Directory::open(&location, t.key(), clock, settings)
        .await
        .unwrap()
}

/// `count` new people, `prefix0@example.com` on, with their lines.
fn people(count: usize, prefix: &str) -> Vec<(u64, NewUser)> {
    (0..count)
        .map(|i| {
            let email = Email::parse(&format!("{prefix}{i}@example.com")).unwrap();
            (i as u64 + 1, NewUser::new(email, None, &[]).unwrap())
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `people` people, each with a multi-use pass (so that every run can sign
/// them in again); their passes, in order.
async fn hire(t: &TestDirectory, count: usize, prefix: &str) -> Vec<(Email, String)> {
    let users = people(count, prefix);
    t.directory.import_users(&users).await.unwrap();
    let requests: Vec<(u64, IssueRequest)> = users
        .iter()
        .map(|(line, user)| {
            let request = IssueRequest {
                one_time: Some(false),
                ..IssueRequest::new(user.email.clone())
            };
            (*line, request)
        })
        .collect();
    let issued = t
        .directory
        .issue_batch(&requests, |_| Ok::<(), String>(()))
        .await
        .unwrap();
    users
        .iter()
        .zip(issued)
        .map(|((_, user), pass)| (user.email.clone(), pass.code.expose().to_string()))
        .collect()
}

/// `kiosks` kiosks through `url` sign in `EACH` people each, all at once:
/// sign-ins a second, and how long each took.
async fn fleet(
    t: &TestDirectory,
    url: &str,
    kiosks: usize,
    codes: &[(Email, String)],
) -> (f64, Vec<Duration>) {
    let mut opened = Vec::new();
    for n in 0..kiosks {
        opened.push(kiosk(t, url, n).await);
    }
    let started = Instant::now();
    let mut running = Vec::new();
    for (n, directory) in opened.into_iter().enumerate() {
        let mine = codes[n * EACH..(n + 1) * EACH].to_vec();
        running.push(tokio::spawn(async move {
            let mut took = Vec::new();
            for (email, code) in mine {
                let asked = Instant::now();
                directory.redeem(email.as_str(), &code).await.unwrap();
                took.push(asked.elapsed());
            }
            took
        }));
    }
    let mut took = Vec::new();
    for kiosk in running {
        took.extend(kiosk.await.unwrap());
    }
    let rate = took.len() as f64 / started.elapsed().as_secs_f64();
    (rate, took)
}

/// A TCP proxy to the PostgreSQL server that holds every chunk of bytes
/// for `delay` before passing it on, each way, so that each round trip
/// takes twice `delay` more, without limiting how much is in flight.
struct Proxy {
    url: String,
}

impl Proxy {
    async fn start(url: &str, delay: Duration) -> Self {
        let parsed = url::Url::parse(url).unwrap();
        let server = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let upstream = TcpStream::connect(&server).await.unwrap();
                client.set_nodelay(true).unwrap();
                upstream.set_nodelay(true).unwrap();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = upstream.into_split();
                tokio::spawn(delayed(client_read, server_write, delay));
                tokio::spawn(delayed(server_read, client_write, delay));
            }
        });
        let mut proxied = parsed.clone();
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied.set_port(Some(port)).unwrap();
        Self {
            url: proxied.to_string(),
        }
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (send, mut receive) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = from.read(&mut buffer).await {
            if read == 0
                || send
                    .send((Instant::now() + delay, buffer[..read].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    while let Some((due, bytes)) = receive.recv().await {
        // Tokio's timer ticks in milliseconds: even a due time already
        // past would cost up to one.
        if !delay.is_zero() {
            tokio::time::sleep_until(due.into()).await;
        }
        if to.write_all(&bytes).await.is_err() {
            break;
        }
    }
}
