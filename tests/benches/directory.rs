//! Directory costs on both backends: issuing a pass, redeeming one (right
//! and wrong), issuing a batch of 10,000, importing 10,000 people, and
//! verifying an audit log of a million events. `scripts/bench` starts the
//! PostgreSQL server these need.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::TimeDelta;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use tapkiosk_core::directory::{IssueRequest, Settings};
use tapkiosk_core::lockout::LockoutSettings;
use tapkiosk_core::policy::{Lifetime, OneTime};
use tapkiosk_core::user::NewUser;
use tapkiosk_core::{Email, Policy};
use tapkiosk_tests::{Backend, TestDirectory, spawn_with};

const BACKENDS: [(Backend, &str); 2] =
    [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")];
const BATCH: usize = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A directory where wrong passes never lock out, so that failures can be
/// measured one after another.
async fn directory(backend: Backend) -> TestDirectory {
    let lockout = LockoutSettings {
        threshold: u32::MAX,
        kiosk_threshold: u32::MAX,
        window: TimeDelta::minutes(1),
        ..LockoutSettings::default()
    };
    let t = spawn_with(
        backend,
        Settings {
            lockout,
            ..Settings::default()
        },
    )
    .await;
    // Multi-use passes allowed, so that one pass can be redeemed again and
    // again (a new directory requires one-time passes).
    let policy = Policy {
        max_lifetime: Lifetime::parse("30d").unwrap(),
        one_time: OneTime::Optional,
        ..Policy::default()
    };
    t.directory.set_policy(&policy).await.unwrap();
    t
}

async fn ada(t: &TestDirectory) -> Email {
    let email = Email::parse("ada@example.com").unwrap();
    t.directory
        .add_user(&NewUser::new(email.clone(), Some("Ada"), &[]).unwrap())
        .await
        .unwrap();
    email
}

fn issue_and_redeem(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("pass");
    for (backend, name) in BACKENDS {
        let t = rt.block_on(directory(backend));
        let email = rt.block_on(ada(&t));
        let replace = IssueRequest {
            replace: true,
            ..IssueRequest::new(email.clone())
        };
        group.bench_function(BenchmarkId::new("issue", name), |b| {
            b.to_async(&rt)
                .iter(|| async { t.directory.issue_pass(&replace).await.unwrap() })
        });

        let multi = IssueRequest {
            replace: true,
            one_time: Some(false),
            lifetime: Some(Lifetime::parse("30d").unwrap()),
            ..IssueRequest::new(email)
        };
        let code = rt.block_on(t.directory.issue_pass(&multi)).unwrap().code;
        group.bench_function(BenchmarkId::new("redeem_success", name), |b| {
            b.to_async(&rt).iter(|| async {
                t.directory
                    .redeem("ada@example.com", code.expose())
                    .await
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("redeem_wrong_pass", name), |b| {
            b.to_async(&rt).iter(|| async {
                t.clock.advance(TimeDelta::seconds(1));
                t.directory
                    .redeem("ada@example.com", "ZZZZ-ZZZZ-ZZZZ")
                    .await
                    .unwrap_err()
            })
        });
    }
    group.finish();
}

fn issue_batch(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("batch");
    group.sample_size(10);
    for (backend, name) in BACKENDS {
        let t = rt.block_on(directory(backend));
        let users = people("hire");
        rt.block_on(t.directory.import_users(&users)).unwrap();
        let requests: Vec<(u64, IssueRequest)> = users
            .iter()
            .map(|(line, user)| {
                (
                    *line,
                    IssueRequest {
                        replace: true,
                        ..IssueRequest::new(user.email.clone())
                    },
                )
            })
            .collect();
        group.bench_function(BenchmarkId::new("issue_10000", name), |b| {
            b.to_async(&rt).iter(|| async {
                t.directory
                    .issue_batch(&requests, |_| Ok::<(), String>(()))
                    .await
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// An HR file's worth of new people, `{prefix}{n}@example.com`, each in a
/// group.
fn people(prefix: &str) -> Vec<(u64, NewUser)> {
    (0..BATCH)
        .map(|i| {
            let email = Email::parse(&format!("{prefix}{i}@example.com")).unwrap();
            let groups = ["staff".to_string()];
            (i as u64 + 1, NewUser::new(email, None, &groups).unwrap())
        })
        .collect()
}

fn import_users(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("batch");
    group.sample_size(10);
    for (backend, name) in BACKENDS {
        let t = rt.block_on(directory(backend));
        let t = &t;
        let mut round = 0;
        group.bench_function(BenchmarkId::new("import_10000", name), |b| {
            b.to_async(&rt).iter_batched(
                || {
                    round += 1;
                    people(&format!("round{round}-"))
                },
                |people| async move { t.directory.import_users(&people).await.unwrap() },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Events in the log `audit verify` checks.
const EVENTS: usize = 1_000_000;

fn verify_audit(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    for (backend, name) in BACKENDS {
        let t = rt.block_on(directory(backend));
        // A million events: a hundred imports of 10,000 people.
        for round in 0..EVENTS / BATCH {
            let people = people(&format!("audit{round}-"));
            rt.block_on(t.directory.import_users(&people)).unwrap();
        }
        group.bench_function(BenchmarkId::new("verify_1000000", name), |b| {
            b.to_async(&rt).iter(|| async {
                let verified = t.directory.verify_audit().await.unwrap();
                assert!(verified.broken.is_none());
                assert!(verified.events >= EVENTS as i64);
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    issue_and_redeem,
    issue_batch,
    import_users,
    verify_audit
);
criterion_main!(benches);
