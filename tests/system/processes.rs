//! Kiosks as a fleet runs them: separate processes, each with a pool of its
//! own on the one directory. They race for one-time passes, and they are
//! killed (SIGKILL) in the middle of each write that a kiosk or a batch
//! makes; what was committed stays, what was not leaves no trace, and the
//! audit chain verifies.
//!
//! Each kiosk is this test binary started again on [`kiosk_process`], told
//! what to do through the environment. It opens the directory, says
//! `ready`, waits for a line on its standard input (so that racers start
//! together), does its job and says how it went; told to stop at a
//! [crash point](tapkiosk_core::crash), it says so there and waits to be
//! killed.

use crate::{add, audit_kinds};
use chrono::TimeDelta;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use tapkiosk_core::crash::CRASH_AT_ENV;
use tapkiosk_core::directory::{IssueRequest, Settings};
use tapkiosk_core::fido::ceremony::KeySource;
use tapkiosk_core::keys::{KEY_FILE_ENV, KeyStore};
use tapkiosk_core::kiosk::{Kiosk, KioskSettings, Language};
use tapkiosk_core::redeem::RedeemError;
use tapkiosk_core::user::NewUser;
use tapkiosk_core::{Directory, Email, Location, ManualClock};
use tapkiosk_tests::{TestDirectory, on_both_backends};

on_both_backends!(
    kiosk_processes_race_for_one_time_passes,
    a_kiosk_killed_after_its_claim_burns_no_pass,
    a_kiosk_killed_before_its_events_are_chained_loses_none,
    a_kiosk_killed_while_it_stores_an_app_leaves_no_method,
    a_kiosk_killed_while_it_stores_a_key_leaves_no_key,
    a_batch_killed_halfway_issues_nothing,
    an_import_killed_halfway_adds_no_one,
    no_write_waits_while_an_admin_pin_is_checked,
);

const JOB: &str = "TAPKIOSK_TEST_JOB";
const LOCATION: &str = "TAPKIOSK_TEST_LOCATION";
const AT: &str = "TAPKIOSK_TEST_AT";
const EMAIL: &str = "TAPKIOSK_TEST_EMAIL";
const PASS: &str = "TAPKIOSK_TEST_PASS";
/// How many people a batch or an import is about.
const PEOPLE: usize = 300;

/// A kiosk process, killed when dropped.
struct KioskProcess {
    child: Child,
    said: BufReader<ChildStdout>,
}

impl KioskProcess {
    /// Starts a kiosk on `t`'s directory that does `job` (about `email`
    /// with `pass`), stopping at `crash_at` if given.
    fn start(t: &TestDirectory, job: &str, login: (&str, &str), crash_at: Option<&str>) -> Self {
        let key_file = t.folder.path().join("directory.key");
        if !key_file.exists() {
            KeyStore::File(key_file.clone()).save(&t.key()).unwrap();
        }
        let location = match &t.location {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => url.clone(),
        };
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "processes::kiosk_process", "--ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(JOB, job)
            .env(LOCATION, location)
            .env(KEY_FILE_ENV, key_file)
            .env(
                AT,
                t.clock.now_plus(TimeDelta::zero()).timestamp().to_string(),
            )
            .env(EMAIL, login.0)
            .env(PASS, login.1)
            .env_remove(CRASH_AT_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(point) = crash_at {
            command.env(CRASH_AT_ENV, point);
        }
        let mut child = command.spawn().unwrap();
        let said = BufReader::new(child.stdout.take().unwrap());
        let mut process = Self { child, said };
        assert_eq!(process.next_word(), "ready");
        process
    }

    /// The next thing the kiosk says (the test harness's own lines left
    /// out).
    fn next_word(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            if self.said.read_line(&mut line).unwrap() == 0 {
                let status = self.child.wait().unwrap();
                panic!("the kiosk process ended ({status}) without saying anything");
            }
            // The harness's "test ... " is not ended by a newline until
            // the test is, so a word can follow it on its line.
            let line = line.trim_end();
            if let Some((_, word)) = line.split_once("kiosk: ") {
                return word.to_string();
            }
            if let Some((_, point)) = line.split_once("crash point: ") {
                return format!("at {point}");
            }
        }
    }

    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Lets the kiosk do its job until it stops at `point`.
    fn stop_at(&mut self, point: &str) {
        self.go();
        assert_eq!(self.next_word(), format!("at {point}"));
    }

    /// Lets the kiosk do its job and kills it, SIGKILL, where it stops at
    /// `point`.
    fn kill_at(mut self, point: &str) {
        self.stop_at(point);
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for KioskProcess {
    fn drop(&mut self) {
        // An error only says the process is gone already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a kiosk process runs: `JOB` on the directory at `LOCATION`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a kiosk process that the tests of this module start themselves"]
async fn kiosk_process() {
    let var = |name| std::env::var(name).unwrap();
    let location = Location::parse(&var(LOCATION)).unwrap();
    let key = KeyStore::from_env().require().unwrap();
    let at = tapkiosk_core::clock::from_seconds(var(AT).parse().unwrap());
    let clock = ManualClock::new(at);
    let settings = Settings {
        actor: "kiosk".into(),
        kiosk: format!("kiosk-{}", std::process::id()),
        ..Settings::default()
    };
    let directory = Directory::open(&location, key, Arc::new(clock.clone()), settings)
        .await
        .unwrap();
    say("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let (email, pass) = (var(EMAIL), var(PASS));
    match var(JOB).as_str() {
        "sign in" => match directory.redeem(&email, &pass).await {
            Ok(_) => say("signed in"),
            Err(RedeemError::InUse { .. }) => say("in use"),
            Err(other) => panic!("{other:?}"),
        },
        "app" => enrol_an_app(directory, &clock, &email, &pass).await,
        "key" => {
            let session = directory.redeem(&email, &pass).await.unwrap();
            let key = crate::security_keys::a_new_key(&directory, &session).await;
            directory
                .add_security_key(&session, "Key", &key)
                .await
                .unwrap();
        }
        "admin sign in" => {
            let name = tapkiosk_core::directory::AdminName::parse(&email).unwrap();
            directory.sign_in_admin(&name, &pass).await.unwrap();
        }
        "import" => {
            directory.import_users(&people()).await.unwrap();
        }
        "batch" => {
            let requests: Vec<_> = people()
                .into_iter()
                .map(|(line, user)| (line, IssueRequest::new(user.email)))
                .collect();
            directory
                .issue_batch(&requests, |_| Ok::<(), String>(()))
                .await
                .unwrap();
        }
        other => panic!("no job {other}"),
    }
    say("done");
}

fn say(word: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "kiosk: {word}").unwrap();
    out.flush().unwrap();
}

/// The kiosk's authenticator-app path, up to the code that registers it.
async fn enrol_an_app(directory: Directory, clock: &ManualClock, email: &str, pass: &str) {
    let mut kiosk = Kiosk::new(
        directory,
        KioskSettings {
            organisation: "Example Ltd".into(),
            languages: vec![Language::En],
            idle_timeout: TimeDelta::minutes(5),
            relying_party: None,
            keys: KeySource::Nowhere,
            tenant: None,
        },
    );
    kiosk.start(Language::En).await.unwrap();
    kiosk.submit_email(email).await.unwrap();
    kiosk.submit_pass(pass).await.unwrap();
    let setup = kiosk.add_authenticator().await.unwrap();
    let secret = crate::kiosk::secret_of(&setup);
    let code = secret
        .code_at(clock.now_plus(TimeDelta::zero()).timestamp())
        .unwrap();
    kiosk.confirm_authenticator(&code).await.unwrap();
}

/// The people of a batch or an import, with their lines in the file.
fn people() -> Vec<(u64, NewUser)> {
    (0..PEOPLE)
        .map(|i| {
            let email = Email::parse(&format!("person{i}@example.com")).unwrap();
            (i as u64 + 2, NewUser::new(email, None, &[]).unwrap())
        })
        .collect()
}

/// A one-time pass for a new person `email`.
async fn one_time_pass(t: &TestDirectory, email: &str) -> String {
    let email = add(t, email).await;
    let request = IssueRequest {
        one_time: Some(true),
        ..IssueRequest::new(email)
    };
    let pass = t.directory.issue_pass(&request).await.unwrap();
    pass.code.expose().to_string()
}

async fn chain_holds(t: &TestDirectory) {
    let verification = t.directory.verify_audit().await.unwrap();
    assert_eq!(verification.broken, None);
    assert!(verification.events > 0);
}

/// Eight kiosk processes, released at once, type the same one-time pass:
/// exactly one signs in, in each of three rounds.
async fn kiosk_processes_race_for_one_time_passes(t: TestDirectory) {
    for round in 0..3 {
        let email = format!("racer{round}@example.com");
        let pass = one_time_pass(&t, &email).await;
        let mut kiosks: Vec<_> = (0..8)
            .map(|_| KioskProcess::start(&t, "sign in", (&email, &pass), None))
            .collect();
        for kiosk in &mut kiosks {
            kiosk.go();
        }
        let words: Vec<String> = kiosks.iter_mut().map(KioskProcess::next_word).collect();
        let winners = words.iter().filter(|w| *w == "signed in").count();
        assert_eq!(winners, 1, "round {round}: {words:?}");
        assert!(words.iter().all(|w| w == "signed in" || w == "in use"));
    }
    let redeemed = audit_kinds(&t).await;
    assert_eq!(redeemed.iter().filter(|k| *k == "pass_redeemed").count(), 3);
    chain_holds(&t).await;
}

/// The pass that a killed kiosk had claimed is in use until its lease
/// ends, then works again: nothing burned it.
async fn usable_again_after_the_lease(t: &TestDirectory, email: &str, pass: &str) {
    match t.directory.redeem(email, pass).await {
        Err(RedeemError::InUse { until }) => {
            assert_eq!(until, t.clock.now_plus(TimeDelta::minutes(15)));
        }
        other => panic!("expected the pass to be in use, got {other:?}"),
    }
    t.clock.advance(TimeDelta::minutes(15));
    let session = t.directory.redeem(email, pass).await.unwrap();
    t.directory.commit_session(&session).await.unwrap();
}

async fn killed_at(t: &TestDirectory, job: &str, point: &str) -> (String, String) {
    let email = "ada@example.com".to_string();
    let pass = one_time_pass(t, &email).await;
    KioskProcess::start(t, job, (&email, &pass), Some(point)).kill_at(point);
    (email, pass)
}

async fn a_kiosk_killed_after_its_claim_burns_no_pass(t: TestDirectory) {
    let (email, pass) = killed_at(&t, "sign in", "claimed").await;
    usable_again_after_the_lease(&t, &email, &pass).await;
    chain_holds(&t).await;
}

/// Killed between its commit and the chaining of its events (PostgreSQL
/// chains after the commit): the next reader chains them.
async fn a_kiosk_killed_before_its_events_are_chained_loses_none(t: TestDirectory) {
    let (email, pass) = killed_at(&t, "sign in", "committed_before_chaining").await;
    let kinds = audit_kinds(&t).await;
    assert_eq!(kinds.last().map(String::as_str), Some("pass_redeemed"));
    usable_again_after_the_lease(&t, &email, &pass).await;
    chain_holds(&t).await;
}

async fn methods_of(t: &TestDirectory, email: &str) -> usize {
    let email = Email::parse(email).unwrap();
    let person = t.directory.show_user(&email).await.unwrap();
    person.methods.len()
}

async fn a_kiosk_killed_while_it_stores_an_app_leaves_no_method(t: TestDirectory) {
    let (email, pass) = killed_at(&t, "app", "storing_app").await;
    assert_eq!(methods_of(&t, &email).await, 0);
    assert!(!audit_kinds(&t).await.contains(&"method_added".to_string()));
    usable_again_after_the_lease(&t, &email, &pass).await;
    chain_holds(&t).await;
}

async fn a_kiosk_killed_while_it_stores_a_key_leaves_no_key(t: TestDirectory) {
    let (email, pass) = killed_at(&t, "key", "storing_key").await;
    assert_eq!(methods_of(&t, &email).await, 0);
    assert!(!audit_kinds(&t).await.contains(&"method_added".to_string()));
    usable_again_after_the_lease(&t, &email, &pass).await;
    chain_holds(&t).await;
}

async fn passes_issued(t: &TestDirectory) -> usize {
    let mut issued = 0;
    for (_, user) in people() {
        issued += t.directory.passes(&user.email).await.unwrap().len();
    }
    issued
}

async fn a_batch_killed_halfway_issues_nothing(t: TestDirectory) {
    t.directory.import_users(&people()).await.unwrap();
    KioskProcess::start(&t, "batch", ("", ""), Some("issuing_batch")).kill_at("issuing_batch");
    assert_eq!(passes_issued(&t).await, 0);
    assert!(!audit_kinds(&t).await.contains(&"pass_issued".to_string()));
    chain_holds(&t).await;
    // Its passes were written, waiting to be shown, and never work; once
    // their lease has passed they no longer count as the people's passes,
    // and the same batch, run again to the end, issues every pass.
    t.clock
        .advance(tapkiosk_core::directory::PENDING_LEASE + TimeDelta::seconds(1));
    let mut again = KioskProcess::start(&t, "batch", ("", ""), None);
    again.go();
    assert_eq!(again.next_word(), "done");
    assert_eq!(passes_issued(&t).await, PEOPLE);
    chain_holds(&t).await;
}

async fn an_import_killed_halfway_adds_no_one(t: TestDirectory) {
    KioskProcess::start(&t, "import", ("", ""), Some("importing")).kill_at("importing");
    assert!(t.directory.list_users().await.unwrap().is_empty());
    assert!(!audit_kinds(&t).await.contains(&"user_added".to_string()));
    let mut again = KioskProcess::start(&t, "import", ("", ""), None);
    again.go();
    assert_eq!(again.next_word(), "done");
    assert_eq!(t.directory.list_users().await.unwrap().len(), PEOPLE);
    chain_holds(&t).await;
}

/// A kiosk checking an admin's PIN (Argon2, tens of milliseconds) holds no
/// write meanwhile: stopped in the middle of the check, it holds up neither
/// a sign-in's nor another admin's write (admin writes take the
/// directory's one write turn, on PostgreSQL too).
async fn no_write_waits_while_an_admin_pin_is_checked(t: TestDirectory) {
    let it = tapkiosk_core::directory::AdminName::parse("it").unwrap();
    let other = tapkiosk_core::directory::AdminName::parse("other").unwrap();
    for name in [&it, &other] {
        t.directory.add_admin(name).await.unwrap();
        t.directory.set_admin_pin(name, "135792").await.unwrap();
    }
    let point = "checking_admin_pin";
    let mut kiosk = KioskProcess::start(&t, "admin sign in", ("it", "135792"), Some(point));
    kiosk.stop_at(point);
    t.directory.set_admin_pin(&other, "246801").await.unwrap();
    add(&t, "ada@example.com").await;
    drop(kiosk); // SIGKILL, in the middle of the check
    t.directory.sign_in_admin(&other, "246801").await.unwrap();
    chain_holds(&t).await;
}
