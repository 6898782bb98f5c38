//! The real `tapctl` binary, every command, good and bad input. Each test
//! has its own SQLite directory and key file; a few run on PostgreSQL too
//! when the test server is there (scripts/test starts it).

// Helpers outside #[test] fns unwrap too: a broken set-up should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;

struct Kiosk {
    folder: tempfile::TempDir,
    directory: String,
}

impl Kiosk {
    fn new() -> Self {
        let folder = tempfile::tempdir().unwrap();
        let directory = folder
            .path()
            .join("directory.sqlite3")
            .display()
            .to_string();
        let kiosk = Self { folder, directory };
        std::fs::write(
            kiosk.path("config.toml"),
            "organisation = \"Example Ltd\"\nkiosk_name = \"lobby\"\n",
        )
        .unwrap();
        kiosk
    }

    fn initialised() -> Self {
        let kiosk = Self::new();
        kiosk.ok(&["init"]);
        kiosk
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    fn std_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("tapctl"));
        // Only what the test sets: the test runner's own TAPKIOSK_* variables
        // would be refused as unknown settings.
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TAPKIOSK_")) {
            command.env_remove(name);
        }
        command
            .args(args)
            .env("HOME", self.folder.path())
            .env("USER", "it-admin")
            .env("TAPKIOSK_CONFIG", self.path("config.toml"))
            .env("TAPKIOSK_KEY_FILE", self.path("directory.key"))
            .env("TAPKIOSK_DIRECTORY", &self.directory)
            .env("TZ", "UTC");
        command
    }

    fn tapctl(&self, args: &[&str]) -> Command {
        Command::from_std(self.std_command(args))
    }

    /// Runs and expects success; returns standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self
            .tapctl(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(output).unwrap()
    }

    /// Runs and expects failure with one line on standard error containing `message`.
    fn fails(&self, args: &[&str], message: &str) {
        self.tapctl(args)
            .assert()
            .failure()
            .code(1)
            .stdout(predicate::str::is_empty())
            .stderr(contains(message).and(predicate::str::starts_with("tapctl: ")));
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

#[test]
fn init_creates_a_private_key_and_is_safe_to_repeat() {
    let kiosk = Kiosk::new();
    let first = kiosk.ok(&["init"]);
    assert!(first.contains("Created a new directory key"), "{first}");
    let mode = std::fs::metadata(kiosk.path("directory.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(&kiosk.directory)
            .unwrap()
            .permissions()
            .mode()
            & 0o077,
        0
    );
    assert!(kiosk.ok(&["init"]).contains("is ready; its key matches"));

    std::fs::remove_file(kiosk.path("directory.key")).unwrap();
    kiosk.fails(
        &["init"],
        "already exists with its own key: bring that key here with `tapctl key import`",
    );
    assert!(
        !kiosk.path("directory.key").exists(),
        "a useless key was stored"
    );
    kiosk.fails(&["user", "list"], "no directory key");
}

#[test]
fn the_key_file_folder_is_created_private() {
    let kiosk = Kiosk::new();
    let nested = kiosk.path("config/tapkiosk/directory.key");
    kiosk
        .tapctl(&["init"])
        .env("TAPKIOSK_KEY_FILE", &nested)
        .assert()
        .success();
    let folder = nested.parent().unwrap();
    assert_eq!(
        std::fs::metadata(folder).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(nested.exists());
}

#[test]
fn commands_need_an_initialised_directory() {
    let kiosk = Kiosk::new();
    kiosk.fails(&["user", "list"], "no directory key in the key file");
    kiosk.ok(&["init"]);
    let other = kiosk.path("other.sqlite3").display().to_string();
    kiosk.fails(
        &["--directory", &other, "user", "list"],
        "is not initialised: run `tapctl init`",
    );
    kiosk.fails(
        &["--directory", "mysql://x", "user", "list"],
        "is neither a file path nor a postgres:// URL",
    );
}

#[test]
fn users_are_added_shown_disabled_enabled_and_removed() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&[
        "user",
        "add",
        "Ada@Example.com",
        "--name",
        "Ada Lovelace",
        "--group",
        "staff",
    ]);
    kiosk.fails(
        &["user", "add", "ada@example.com"],
        "ada@example.com is already in the directory",
    );
    kiosk.fails(
        &["user", "add", "not-an-email"],
        "is not a valid email address",
    );
    kiosk.fails(
        &["user", "add", "bob@example.com", "--group", "bad/group"],
        "is not a group name",
    );

    let shown = kiosk.json(&["user", "show", "ada@example.com", "--json"]);
    assert_eq!(shown["displayName"], "Ada Lovelace");
    assert_eq!(shown["groups"][0], "staff");
    assert!(kiosk.ok(&["user", "list"]).contains("ada@example.com"));
    assert_eq!(
        kiosk
            .json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    kiosk.ok(&["user", "disable", "ada@example.com"]);
    assert_eq!(
        kiosk.json(&["user", "show", "ada@example.com", "--json"])["enabled"],
        false
    );
    kiosk.fails(&["pass", "issue", "ada@example.com"], "is disabled");
    kiosk.ok(&["user", "enable", "ada@example.com"]);
    kiosk.ok(&["user", "remove", "ada@example.com"]);
    kiosk.fails(
        &["user", "show", "ada@example.com"],
        "is not in the directory",
    );
    kiosk.fails(
        &["user", "remove", "ada@example.com"],
        "is not in the directory",
    );
}

#[test]
fn imports_report_every_bad_row_and_apply_nothing() {
    let kiosk = Kiosk::initialised();
    std::fs::write(
        kiosk.path("bad.csv"),
        "email,display_name,groups\nada@example.com,Ada,staff\nnope,No,\nbob@example.com,Bob,a/b\n",
    )
    .unwrap();
    kiosk
        .tapctl(&["user", "import", kiosk.path("bad.csv").to_str().unwrap()])
        .assert()
        .failure()
        .stderr(
            contains("2 rows with problems; nothing was applied")
                .and(contains("line 3:"))
                .and(contains("line 4:")),
        );
    assert_eq!(
        kiosk
            .json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    std::fs::write(
        kiosk.path("good.csv"),
        "email,display_name,groups\nada@example.com,Ada,staff;new-hires\nbob@example.com,Bob,\n",
    )
    .unwrap();
    assert_eq!(
        kiosk.json(&[
            "user",
            "import",
            kiosk.path("good.csv").to_str().unwrap(),
            "--json"
        ])["imported"],
        2
    );
    kiosk.fails(
        &[
            "user",
            "import",
            kiosk.path("missing.csv").to_str().unwrap(),
        ],
        "cannot read",
    );
}

/// HR files as Excel exports them in most of Europe: a byte-order mark,
/// `;` between cells, CRLF line ends, a header with its own names.
#[test]
fn imports_take_files_as_excel_writes_them() {
    let kiosk = Kiosk::initialised();
    std::fs::write(
        kiosk.path("excel.csv"),
        "\u{feff}Mail;Name\r\nada@example.com;Ada Lovelace\r\n\r\nnope;No\r\n",
    )
    .unwrap();
    let file = kiosk.path("excel.csv");
    kiosk
        .tapctl(&["user", "import", file.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(contains("1 row with problems").and(contains("line 4: ")));
    std::fs::write(
        &file,
        "\u{feff}Mail;Name\r\nada@example.com;Ada Lovelace\r\n",
    )
    .unwrap();
    kiosk
        .tapctl(&["user", "import", file.to_str().unwrap()])
        .assert()
        .success()
        .stdout(contains("Imported 1 person from"));
    let ada = kiosk.json(&["user", "show", "ada@example.com", "--json"]);
    assert_eq!(ada["displayName"], "Ada Lovelace", "{ada}");
    std::fs::write(&file, "email;department\r\nbob@example.com;R&D\r\n").unwrap();
    kiosk
        .tapctl(&["user", "import", file.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(contains(
            "line 1: `department` is not a column of this file (its columns are email, display_name, groups)",
        ));
}

#[test]
fn policy_is_shown_changed_and_bad_values_are_refused() {
    let kiosk = Kiosk::initialised();
    let policy = kiosk.json(&["policy", "show", "--json"]);
    assert_eq!(
        (
            policy["min_lifetime"].as_i64(),
            policy["max_lifetime"].as_i64(),
            policy["length"].as_i64()
        ),
        (Some(60), Some(480), Some(12))
    );
    let changed = kiosk.json(&[
        "policy",
        "set",
        "--min-lifetime",
        "1h",
        "--max-lifetime",
        "8h",
        "--default-lifetime",
        "1h",
        "--length",
        "12",
        "--one-time",
        "required",
        "--json",
    ]);
    assert_eq!(changed["one_time"], "required");
    kiosk.fails(
        &["policy", "set", "--length", "7"],
        "the pass length must be between 8 and 48",
    );
    kiosk.fails(
        &["policy", "set", "--max-lifetime", "31d"],
        "lifetimes must be between 10m and 30d",
    );
    kiosk.fails(
        &["policy", "set", "--default-lifetime", "9h"],
        "must lie between the minimum",
    );
    kiosk.fails(
        &["policy", "set", "--max-lifetime", "eight hours"],
        "is not a duration",
    );
    kiosk.fails(
        &["policy", "set", "--target", "groups"],
        "needs at least one --group",
    );
    // A refused change leaves the policy as it was.
    assert_eq!(kiosk.json(&["policy", "show", "--json"])["length"], 12);
    kiosk.ok(&["policy", "set", "--group", "new-hires"]);
    assert!(kiosk.ok(&["policy", "show"]).contains("groups new-hires"));
}

#[test]
fn a_pass_is_issued_once_with_graph_fields_and_revoked() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com"]);
    let pass = kiosk.json(&[
        "pass",
        "issue",
        "ada@example.com",
        "--lifetime",
        "90m",
        "--one-time",
        "--json",
    ]);
    for field in [
        "id",
        "temporaryAccessPass",
        "createdDateTime",
        "startDateTime",
        "lifetimeInMinutes",
        "isUsableOnce",
        "isUsable",
        "methodUsabilityReason",
    ] {
        assert!(pass.get(field).is_some(), "missing {field} in {pass}");
    }
    assert_eq!(pass["lifetimeInMinutes"], 90);
    assert_eq!(pass["isUsableOnce"], true);
    assert_eq!(pass["methodUsabilityReason"], "EnabledByPolicy");
    let value = pass["temporaryAccessPass"].as_str().unwrap().to_string();
    assert_eq!(value.len(), 14, "12 characters in groups of four: {value}");

    kiosk.fails(
        &["pass", "issue", "ada@example.com"],
        "already has a usable pass: add --replace",
    );
    let status = kiosk.json(&["pass", "status", "ada@example.com", "--json"]);
    assert!(
        status["value"][0].get("temporaryAccessPass").is_none(),
        "the value is shown only once"
    );
    assert!(
        !kiosk
            .ok(&["user", "show", "ada@example.com"])
            .contains(&value)
    );
    let replaced = kiosk.json(&["pass", "issue", "ada@example.com", "--replace", "--json"]);
    assert_ne!(replaced["temporaryAccessPass"], value.as_str());
    let status = kiosk.json(&["pass", "status", "ada@example.com", "--json"]);
    assert_eq!(status["value"][1]["methodUsabilityReason"], "Revoked");

    kiosk.ok(&["pass", "revoke", "ada@example.com"]);
    kiosk.fails(
        &["pass", "revoke", "ada@example.com"],
        "has no live pass to revoke",
    );
    kiosk.fails(
        &["pass", "issue", "ada@example.com", "--lifetime", "9h"],
        "outside the policy",
    );
    kiosk.fails(
        &["pass", "issue", "ada@example.com", "--start", "next monday"],
        "is not a date and time",
    );
    kiosk.fails(
        &[
            "pass",
            "issue",
            "ada@example.com",
            "--start",
            "2020-01-01T09:00:00Z",
        ],
        "is in the past",
    );
    kiosk.fails(
        &["pass", "issue", "nobody@example.com"],
        "is not in the directory",
    );
    kiosk
        .tapctl(&[
            "pass",
            "issue",
            "ada@example.com",
            "--one-time",
            "--multi-use",
        ])
        .assert()
        .failure()
        .code(2);
}

#[test]
fn a_pass_whose_value_cannot_be_shown_is_not_issued() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com"]);
    // Standard output is closed before the value can be written.
    let mut child = kiosk
        .std_command(&["pass", "issue", "ada@example.com"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert!(!child.wait().unwrap().success());
    let passes = kiosk.json(&["pass", "status", "ada@example.com", "--json"]);
    assert!(
        passes["value"].as_array().unwrap().is_empty(),
        "a pass nobody saw was issued: {passes}"
    );
}

/// The kiosk's directory, opened through the core as the app opens it.
fn open_directory(kiosk: &Kiosk) -> (tokio::runtime::Runtime, tapkiosk_core::Directory) {
    use tapkiosk_core::directory::Settings;
    use tapkiosk_core::{Directory, KeyStore, Location, SystemClock};
    let key = KeyStore::File(kiosk.path("directory.key"))
        .load()
        .unwrap()
        .unwrap();
    let location = Location::Sqlite(kiosk.directory.clone().into());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clock = std::sync::Arc::new(SystemClock);
    let directory = runtime
        .block_on(Directory::open(&location, key, clock, Settings::default()))
        .unwrap();
    (runtime, directory)
}

/// Locks `email` out the way a guesser at the kiosk does: five wrong passes.
fn lock_out(kiosk: &Kiosk, email: &str) -> bool {
    use tapkiosk_core::redeem::RedeemError;
    let (runtime, directory) = open_directory(kiosk);
    runtime.block_on(async {
        let mut last = None;
        for _ in 0..5 {
            last = directory.redeem(email, "ZZZZ-ZZZZ-ZZZZ").await.err();
        }
        directory.close().await;
        matches!(last, Some(RedeemError::LockedOut { .. }))
    })
}

#[test]
fn it_lifts_a_lockout_with_tapctl() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com"]);
    let said = kiosk.ok(&["user", "unlock", "ada@example.com"]);
    assert!(said.contains("was not locked out"), "{said}");
    assert!(lock_out(&kiosk, "ada@example.com"));
    let said = kiosk.ok(&["user", "unlock", "ADA@example.com"]);
    assert!(
        said.contains("Lifted the lockout of ada@example.com"),
        "{said}"
    );
    let said = kiosk.ok(&["user", "unlock", "ada@example.com"]);
    assert!(said.contains("was not locked out"), "{said}");
    kiosk.fails(&["user", "unlock", "not an email"], "email");
}

/// Registers an authenticator app for `email` the way the kiosk does,
/// through the core, so that there is a method to remove.
fn register_a_method(kiosk: &Kiosk, email: &str) {
    use tapkiosk_core::totp::TotpSecret;
    let pass = kiosk.json(&["pass", "issue", email, "--json"]);
    let pass = pass["temporaryAccessPass"].as_str().unwrap().to_string();
    let (runtime, directory) = open_directory(kiosk);
    runtime.block_on(async {
        let session = directory.redeem(email, &pass).await.unwrap();
        let secret = TotpSecret::generate(&mut rand::rngs::OsRng);
        directory
            .add_totp_method(&session, "Phone", &secret, 1)
            .await
            .unwrap();
        directory.close().await;
    });
}

#[test]
fn a_lost_method_is_removed_and_key_models_are_restricted() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com"]);
    register_a_method(&kiosk, "ada@example.com");
    let shown = kiosk.json(&["user", "show", "ada@example.com", "--json"]);
    let id = shown["methods"][0]["id"].as_str().unwrap().to_string();
    assert!(kiosk.ok(&["user", "show", "ada@example.com"]).contains(&id));
    kiosk.fails(
        &["user", "remove-method", "ada@example.com", "no-such-method"],
        "not registered to this person",
    );
    kiosk.ok(&["user", "remove-method", "ada@example.com", &id]);
    let shown = kiosk.json(&["user", "show", "ada@example.com", "--json"]);
    assert_eq!(shown["methods"], serde_json::json!([]));
    assert!(kiosk.ok(&["audit"]).contains("method_removed"));

    let yubikey = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
    let set = kiosk
        .tapctl(&["policy", "set", "--allow-key", yubikey])
        .assert()
        .success()
        .stderr(contains("no webauthn.attestation_roots are configured"));
    let set = String::from_utf8(set.get_output().stdout.clone()).unwrap();
    assert!(set.contains(&format!("only models {yubikey}")), "{set}");
    let policy = kiosk.json(&["policy", "show", "--json"]);
    assert_eq!(policy["keys"]["kind"], "allow_list");
    assert_eq!(policy["keys"]["aaguids"][0], yubikey);
    // Other changes keep the allow-list.
    kiosk.ok(&["policy", "set", "--length", "14"]);
    assert!(kiosk.ok(&["policy", "show"]).contains("only models"));
    kiosk
        .tapctl(&["policy", "set", "--allow-key", "not-a-model"])
        .assert()
        .failure()
        .stderr(contains("AAGUID"));
    kiosk
        .tapctl(&["policy", "set", "--any-key"])
        .assert()
        .success()
        .stdout(contains("any model"))
        .stderr(predicate::str::is_empty());
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com"]);
    for args in [
        &["user", "list"][..],
        &["audit", "--json"],
        &["policy", "show"],
    ] {
        let mut child = kiosk
            .std_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(141), "{args:?}: {stderr}");
    }
}

#[test]
fn a_delayed_pass_shows_as_not_yet_valid() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com"]);
    let pass = kiosk.json(&[
        "pass",
        "issue",
        "ada@example.com",
        "--start",
        "2099-12-07 09:00",
        "--json",
    ]);
    assert_eq!(pass["startDateTime"], "2099-12-07T09:00:00Z");
    assert_eq!(pass["methodUsabilityReason"], "NotYetValid");
    assert_eq!(pass["isUsable"], false);
}

#[test]
fn batches_write_the_letters_once_or_issue_nothing() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com", "--name", "Ada"]);
    kiosk.ok(&["user", "add", "bob@example.com"]);
    let hires = kiosk.path("hires.csv");
    let letters = kiosk.path("letters.csv");
    let (hires_arg, letters_arg) = (hires.to_str().unwrap(), letters.to_str().unwrap());

    std::fs::write(&hires, "email,start,lifetime,one_time\nada@example.com,2099-01-04 09:00,8h,yes\ncarol@example.com,,,\n").unwrap();
    kiosk.fails(
        &["pass", "issue-batch", hires_arg, "--out", letters_arg],
        "line 3: carol@example.com is not in the directory",
    );
    assert!(!letters.exists());
    assert!(
        kiosk.json(&["pass", "status", "ada@example.com", "--json"])["value"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    std::fs::write(&hires, "email,start,lifetime,one_time\nada@example.com,2099-01-04 09:00,8h,yes\nbob@example.com,,,\n").unwrap();
    assert!(
        kiosk
            .ok(&["pass", "issue-batch", hires_arg, "--out", letters_arg])
            .contains("Issued 2 passes")
    );
    assert_eq!(
        std::fs::metadata(&letters).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&letters).unwrap();
    assert!(
        text.starts_with("email,displayName,temporaryAccessPass,startDateTime,endDateTime"),
        "{text}"
    );
    assert!(text.contains("ada@example.com,Ada,") && text.contains("2099-01-04T09:00:00+00:00"));

    // Never overwrite letters, and issue nothing when they cannot be written.
    std::fs::write(&hires, "ada@example.com,,,\n").unwrap();
    kiosk.fails(
        &[
            "pass",
            "issue-batch",
            hires_arg,
            "--out",
            letters_arg,
            "--replace",
        ],
        "nothing was issued",
    );
    assert_eq!(
        kiosk.json(&["pass", "status", "ada@example.com", "--json"])["value"][0]["methodUsabilityReason"],
        "NotYetValid"
    );
    let json_out = kiosk.path("letters.json");
    kiosk.ok(&[
        "pass",
        "issue-batch",
        hires_arg,
        "--out",
        json_out.to_str().unwrap(),
        "--replace",
    ]);
    let letters: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json_out).unwrap()).unwrap();
    assert!(letters[0]["temporaryAccessPass"].is_string());
}

#[test]
fn the_audit_log_is_listed_filtered_and_verified() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com"]);
    kiosk.ok(&["user", "add", "bob@example.com"]);
    kiosk.ok(&["pass", "issue", "ada@example.com"]);
    let all = kiosk.json(&["audit", "--json"]);
    let kinds: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "directory_initialised",
            "user_added",
            "user_added",
            "pass_issued"
        ]
    );
    assert_eq!(all[1]["actor"], "tapctl:it-admin");
    assert_eq!(all[1]["kiosk"], "lobby");
    assert_eq!(
        kiosk
            .json(&["audit", "--user", "ada@example.com", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        kiosk
            .json(&["audit", "--since", "1h", "--json"])
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        kiosk
            .json(&["audit", "--since", "2099-01-01 00:00", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    kiosk.fails(&["audit", "--since", "yesterday"], "neither a time");
    assert!(kiosk.ok(&["audit", "verify"]).contains("intact: 4 events"));
    assert!(
        !kiosk.ok(&["audit"]).contains(
            &kiosk
                .json(&["pass", "status", "ada@example.com", "--json"])
                .to_string()
        )
    );
}

#[test]
fn a_tampered_audit_log_fails_verification() {
    let kiosk = Kiosk::initialised();
    kiosk.ok(&["user", "add", "ada@example.com", "--name", "Ada Marker"]);
    kiosk.ok(&["user", "add", "bob@example.com"]);
    let db = edit_file(&kiosk.directory);
    assert!(db, "could not edit the directory file");
    kiosk
        .tapctl(&["audit", "verify"])
        .assert()
        .failure()
        .code(1)
        .stdout(contains("BROKEN at event 2"));
}

/// Changes Ada's display name in the SQLite file itself (the user row and
/// the `user_added` event), as someone with the file but not the key could.
fn edit_file(path: &str) -> bool {
    let mut bytes = std::fs::read(path).unwrap();
    let needle = b"Ada Marker";
    let positions: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    for position in &positions {
        bytes[*position..*position + needle.len()].copy_from_slice(b"Eve Marker");
    }
    std::fs::write(path, bytes).unwrap();
    !positions.is_empty()
}

#[test]
fn config_show_prints_values_and_their_origins() {
    let kiosk = Kiosk::initialised();
    let shown = kiosk.json(&["config", "show", "--json"]);
    assert_eq!(shown["organisation"]["value"], "Example Ltd");
    assert!(
        shown["organisation"]["source"]
            .as_str()
            .unwrap()
            .starts_with("config file")
    );
    assert_eq!(
        shown["directory"]["source"],
        "environment variable TAPKIOSK_DIRECTORY"
    );
    assert_eq!(shown["idle_timeout"]["source"], "default");
    let other = kiosk.path("elsewhere.sqlite3").display().to_string();
    let flagged = kiosk.json(&["--directory", &other, "config", "show", "--json"]);
    assert_eq!(flagged["directory"]["source"], "flag --directory");
    assert!(kiosk.ok(&["config", "show"]).contains("lockout.threshold"));
    let set = kiosk.json(&[
        "--set",
        "lockout.threshold=3",
        "--set",
        "idle_timeout=90s",
        "config",
        "show",
        "--json",
    ]);
    assert_eq!(set["lockout.threshold"]["value"], "3");
    assert_eq!(set["lockout.threshold"]["source"], "flag --set");
    assert_eq!(set["idle_timeout"]["value"], "90s");
    kiosk.fails(
        &["--set", "lockout.threshold=0", "config", "show"],
        "flag --set: key `lockout.threshold`: must be a whole number from 1 to 100",
    );
    kiosk.fails(
        &["--set", "colour=blue", "config", "show"],
        "--set: unknown key `colour`",
    );
    kiosk.fails(&["--set", "colour", "config", "show"], "has no `=`");

    std::fs::write(kiosk.path("config.toml"), "[lockout]\nthreshhold = 3\n").unwrap();
    kiosk.fails(&["config", "show"], "unknown key `lockout.threshhold`");
    std::fs::write(kiosk.path("config.toml"), "idle_timeout = \"forever\"\n").unwrap();
    kiosk.fails(
        &["config", "show"],
        "key `idle_timeout`: `forever` is not a duration",
    );
    std::fs::write(kiosk.path("config.toml"), "organisation = \n").unwrap();
    kiosk.fails(&["config", "show"], "config.toml");
}

#[test]
fn keys_move_to_another_kiosk_under_a_passphrase() {
    let first = Kiosk::initialised();
    first.ok(&["user", "add", "ada@example.com"]);
    std::fs::write(first.path("passphrase"), "a long fleet passphrase\n").unwrap();
    std::fs::write(first.path("short"), "short\n").unwrap();
    let export = first.path("fleet.key");
    let (export_arg, pass_arg) = (
        export.to_str().unwrap(),
        first.path("passphrase").display().to_string(),
    );
    first.fails(
        &[
            "key",
            "export",
            "--out",
            export_arg,
            "--passphrase-file",
            first.path("short").to_str().unwrap(),
        ],
        "at least 12 characters",
    );
    first.ok(&[
        "key",
        "export",
        "--out",
        export_arg,
        "--passphrase-file",
        &pass_arg,
    ]);
    assert_eq!(
        std::fs::metadata(&export).unwrap().permissions().mode() & 0o777,
        0o600
    );
    first.fails(
        &[
            "key",
            "export",
            "--out",
            export_arg,
            "--passphrase-file",
            &pass_arg,
        ],
        "cannot create",
    );

    // A second kiosk on the same directory.
    let second = Kiosk {
        folder: tempfile::tempdir().unwrap(),
        directory: first.directory.clone(),
    };
    std::fs::write(second.path("config.toml"), "").unwrap();
    second.fails(&["user", "list"], "no directory key");
    std::fs::write(second.path("wrong"), "not the passphrase\n").unwrap();
    second.fails(
        &[
            "key",
            "import",
            export_arg,
            "--passphrase-file",
            second.path("wrong").to_str().unwrap(),
        ],
        "passphrase is wrong",
    );
    second
        .tapctl(&["key", "import", export_arg])
        .write_stdin("a long fleet passphrase\n")
        .assert()
        .success();
    assert!(second.ok(&["user", "list"]).contains("ada@example.com"));

    // A key from another directory is refused.
    let stranger = Kiosk::initialised();
    std::fs::write(stranger.path("passphrase"), "a long fleet passphrase\n").unwrap();
    let foreign = stranger.path("foreign.key");
    stranger.ok(&[
        "key",
        "export",
        "--out",
        foreign.to_str().unwrap(),
        "--passphrase-file",
        stranger.path("passphrase").to_str().unwrap(),
    ]);
    let third = Kiosk {
        folder: tempfile::tempdir().unwrap(),
        directory: first.directory.clone(),
    };
    std::fs::write(third.path("config.toml"), "").unwrap();
    third.fails(
        &[
            "key",
            "import",
            foreign.to_str().unwrap(),
            "--passphrase-file",
            &pass_arg,
        ],
        "does not belong to the directory",
    );
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let kiosk = Kiosk::initialised();
    std::fs::set_permissions(
        kiosk.path("directory.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    kiosk.fails(
        &["user", "list"],
        "can be read by other users: run `chmod 600",
    );
}

#[test]
fn without_a_credential_store_the_error_names_the_key_file_alternative() {
    let kiosk = Kiosk::new();
    let mut command = kiosk.tapctl(&["init"]);
    command
        .env_remove("TAPKIOSK_KEY_FILE")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("XDG_RUNTIME_DIR", kiosk.folder.path());
    command.assert().failure().stderr(
        contains("no OS credential store is available").and(contains("TAPKIOSK_KEY_FILE=")),
    );
    assert!(
        !std::path::Path::new(&kiosk.directory).exists(),
        "init went ahead without a key"
    );
}

#[test]
fn db_status_reports_what_the_sqlite_file_enforces() {
    let kiosk = Kiosk::initialised();
    let status = kiosk.json(&[
        "--set",
        "database.lock_timeout=3s",
        "db",
        "status",
        "--json",
    ]);
    assert_eq!(status["settings"]["busy_timeout"], "3000");
    assert_eq!(status["settings"]["journal_mode"], "wal");
    assert!(kiosk.ok(&["db", "status"]).contains("answers"));
}

#[test]
fn the_same_commands_work_on_postgresql() {
    let Ok(admin) = std::env::var("TAPKIOSK_TEST_POSTGRES") else {
        panic!(
            "TAPKIOSK_TEST_POSTGRES is not set: run the tests with scripts/test, which starts PostgreSQL"
        );
    };
    let name = format!("cli_{}", std::process::id());
    let status = std::process::Command::new(format!(
        "{}/createdb",
        std::env::var("TAPKIOSK_TEST_PG_BIN").unwrap()
    ))
    .args(["--maintenance-db", &admin, &name])
    .status()
    .unwrap();
    assert!(status.success());
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let mut kiosk = Kiosk::new();
    kiosk.directory = url;
    kiosk.ok(&["init"]);
    kiosk.ok(&["user", "add", "ada@example.com"]);
    let pass = kiosk.json(&["pass", "issue", "ada@example.com", "--json"]);
    assert_eq!(pass["methodUsabilityReason"], "EnabledByPolicy");
    assert!(kiosk.ok(&["audit", "verify"]).contains("intact: 3 events"));
    let shown = kiosk.json(&["config", "show", "--json"]);
    assert!(
        shown["directory"]["value"]
            .as_str()
            .unwrap()
            .starts_with("postgres://tapkiosk@127.0.0.1")
    );
    the_database_enforces_the_configured_limits(&kiosk);
    an_unreachable_database_is_named_in_one_line(kiosk);
}

/// What PostgreSQL itself reports for a tapctl connection: the configured
/// timeouts and the keepalives derived from `database.keepalive`.
fn the_database_enforces_the_configured_limits(kiosk: &Kiosk) {
    let status = kiosk.json(&[
        "--set",
        "database.statement_timeout=20s",
        "--set",
        "database.keepalive=45s",
        "db",
        "status",
        "--json",
    ]);
    let settings = &status["settings"];
    assert_eq!(settings["statement_timeout"], "20s");
    assert_eq!(settings["lock_timeout"], "10s");
    assert_eq!(settings["idle_in_transaction_session_timeout"], "1min");
    assert_eq!(settings["tcp_keepalives_idle"], "45");
    assert_eq!(settings["tcp_keepalives_interval"], "15");
    assert_eq!(settings["tcp_keepalives_count"], "3");
    assert_eq!(settings["tcp_user_timeout"], "90000");
}

/// A database that is down, or a `directory` setting with a wrong name:
/// one line that says which, at once (not after the connect timeout).
fn an_unreachable_database_is_named_in_one_line(mut kiosk: Kiosk) {
    let one_line = |kiosk: &Kiosk, message: &str| {
        let output = kiosk.tapctl(&["user", "list"]).assert().failure().code(1);
        let stderr = String::from_utf8(output.get_output().stderr.clone()).unwrap();
        assert!(stderr.contains(message), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("at line"), "{stderr}");
        stderr
    };
    let url = kiosk.directory.clone();
    let (server, name) = url.rsplit_once('/').unwrap();
    kiosk.directory = format!("{server}/{name}_missing");
    one_line(
        &kiosk,
        "does not exist: create it, or fix the database name",
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    kiosk.directory = format!("postgres://tapkiosk@127.0.0.1:{port}/{name}");
    let said = one_line(&kiosk, "the database refused the connection");
    assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");
}

/// The default key store: the OS credential store (here the Secret Service
/// of gnome-keyring), with no key file anywhere.
#[test]
#[ignore = "needs an unlocked Secret Service: scripts/test runs it inside dbus-run-session with gnome-keyring"]
fn the_key_lives_in_the_os_credential_store() {
    let kiosk = Kiosk::new();
    let in_os_store = |args: &[&str]| {
        let mut command = kiosk.tapctl(args);
        command.env_remove("TAPKIOSK_KEY_FILE");
        command
    };
    in_os_store(&["init"]).assert().success().stdout(contains(
        "Created a new directory key in the OS credential store",
    ));
    assert!(!kiosk.path("directory.key").exists());
    in_os_store(&["user", "add", "ada@example.com"])
        .assert()
        .success();
    in_os_store(&["pass", "issue", "ada@example.com"])
        .assert()
        .success();

    // Export from the OS store; a kiosk without one imports into a key file.
    std::fs::write(kiosk.path("passphrase"), "a long fleet passphrase\n").unwrap();
    let export = kiosk.path("fleet.key").display().to_string();
    let passphrase = kiosk.path("passphrase").display().to_string();
    in_os_store(&[
        "key",
        "export",
        "--out",
        &export,
        "--passphrase-file",
        &passphrase,
    ])
    .assert()
    .success();
    let second = Kiosk {
        folder: tempfile::tempdir().unwrap(),
        directory: kiosk.directory.clone(),
    };
    std::fs::write(second.path("config.toml"), "").unwrap();
    second.ok(&["key", "import", &export, "--passphrase-file", &passphrase]);
    assert!(second.ok(&["user", "list"]).contains("ada@example.com"));
}

/// The enrolment code in `tapctl admin add`'s text answer.
fn enrolment_code(output: &str) -> String {
    output
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 19 && line.matches('-').count() == 3)
        .unwrap_or_else(|| panic!("no code in {output}"))
        .to_string()
}

#[test]
fn init_names_the_first_admin_and_admins_are_managed_with_tapctl() {
    let kiosk = Kiosk::new();
    let first = kiosk.ok(&["init", "--admin", "Alice"]);
    assert!(
        first.contains("Enrolment code for the admin alice"),
        "{first}"
    );
    let code = enrolment_code(&first);
    // Again: the directory has an admin now, so no second code.
    let again = kiosk.ok(&["init", "--admin", "mallory"]);
    assert!(!again.contains("Enrolment code"), "{again}");
    let listed = kiosk.json(&["admin", "list", "--json"]);
    assert_eq!(listed[0]["name"], "alice");
    assert_eq!(listed[0]["enrolled"], false);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let added = kiosk.json(&["admin", "add", "bob", "--json"]);
    assert_ne!(added["enrolmentCode"].as_str().unwrap(), code);
    kiosk.fails(&["admin", "add", "bob"], "already an admin called bob");
    kiosk.fails(&["admin", "add", "bob smith"], "an admin name has");
    // A PIN from standard input, refused until it has 6 to 12 digits.
    kiosk
        .tapctl(&["admin", "set-pin", "bob"])
        .write_stdin("12345\n")
        .assert()
        .failure()
        .stderr(contains("6 to 12 digits"));
    kiosk
        .tapctl(&["admin", "set-pin", "bob"])
        .write_stdin("135792\n")
        .assert()
        .success();
    let listed = kiosk.ok(&["admin", "list"]);
    assert!(listed.contains("PIN set"), "{listed}");
    assert!(listed.contains("enrolment code valid until"), "{listed}");

    let reset = kiosk.ok(&["admin", "reset", "bob"]);
    assert_ne!(enrolment_code(&reset), added["enrolmentCode"]);
    kiosk.ok(&["admin", "remove", "bob"]);
    kiosk.fails(&["admin", "remove", "alice"], "only admin");
    kiosk.fails(&["admin", "remove", "bob"], "no admin called bob");
    let audit = kiosk.ok(&["audit"]);
    for kind in [
        "admin_added",
        "admin_pin_set",
        "admin_reset",
        "admin_removed",
    ] {
        assert!(audit.contains(kind), "{kind} in {audit}");
    }
}

#[test]
fn migrate_upgrades_and_grant_kiosk_names_its_grants() {
    let kiosk = Kiosk::initialised();
    assert!(kiosk.ok(&["migrate"]).contains("is up to date"));
    let grants = kiosk.ok(&["db", "grant-kiosk", "tapkiosk_kiosk", "--print"]);
    assert!(
        grants.contains("GRANT SELECT, INSERT ON audit_events TO tapkiosk_kiosk;"),
        "{grants}"
    );
    assert!(!grants.contains("UPDATE ON audit_events"), "{grants}");
    kiosk.fails(
        &["db", "grant-kiosk", "tapkiosk_kiosk"],
        "an SQLite directory is protected by its file's permissions",
    );
    kiosk.fails(
        &["db", "grant-kiosk", "Robert'); DROP"],
        "is not a role name",
    );
}

#[test]
fn audit_checkpoints_are_written_and_checked() {
    let kiosk = Kiosk::initialised();
    let file = kiosk.path("checkpoints.log");
    let file = file.to_str().unwrap();
    let line = kiosk.ok(&["audit", "checkpoint", "--out", file]);
    assert!(
        line.starts_with("tapkiosk-audit-checkpoint-v1 events=1 "),
        "{line}"
    );
    kiosk.ok(&["user", "add", "ada@example.com"]);
    let mode = std::fs::metadata(file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let said = kiosk.ok(&["audit", "verify", "--checkpoint", file]);
    assert!(said.contains("Every checkpoint matches the log"), "{said}");
    // An edited checkpoint fails the check.
    std::fs::write(file, line.replace("events=1 ", "events=2 ")).unwrap();
    kiosk
        .tapctl(&["audit", "verify", "--checkpoint", file])
        .assert()
        .code(1)
        .stdout(contains("does NOT match"));
    std::fs::write(file, "no checkpoint here\n").unwrap();
    kiosk.fails(
        &["audit", "verify", "--checkpoint", file],
        "holds no audit checkpoint",
    );
}
