//! Starts the real kiosk app under a virtual X display, driven through
//! tauri-driver and Debian's WebKitWebDriver, on a fresh SQLite directory
//! that the test can also reach through the core (to seed people and
//! passes).
//!
//! Needs: Xvfb, WebKitWebDriver, tauri-driver on PATH, and the app built
//! with `--features test-clock` (scripts/test does all of this). The app
//! binary is `TAPKIOSK_E2E_APP`, by default target/debug/tapkiosk.

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::OsRng;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tapkiosk_core::crash::CRASH_AT_ENV;
use tapkiosk_core::directory::{IssueRequest, Settings};
use tapkiosk_core::user::NewUser;
use tapkiosk_core::{
    Clock, Directory, DirectoryKey, Email, KeyStore, Location, ManualClock, SystemClock,
};
use tapkiosk_tests::Backend;
use thirtyfour::prelude::*;

/// Where the test build copies its log, in the test's folder.
const APP_LOG: &str = "app.log";

/// The file the app appends audit checkpoints to, in the test's folder.
const CHECKPOINTS: &str = "audit-checkpoints.log";

/// How long to wait for the app to show something.
pub const PATIENCE: Duration = Duration::from_secs(10);

struct Display {
    number: String,
    _process: Child,
    /// Held open until the process exits; then the display ends.
    _stdin: Option<std::process::ChildStdin>,
}

/// The screen the kiosk runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// 1024×768, a small kiosk.
    Small,
    /// 1920×1080.
    FullHd,
}

/// One virtual display per screen size for the whole run.
fn display(screen: Screen) -> &'static str {
    static SMALL: OnceLock<Display> = OnceLock::new();
    static FULL_HD: OnceLock<Display> = OnceLock::new();
    let (cell, size) = match screen {
        Screen::Small => (&SMALL, "1024x768x24"),
        Screen::FullHd => (&FULL_HD, "1920x1080x24"),
    };
    &cell
        .get_or_init(|| {
            // A display outlives no test run: the shell ends its Xvfb when
            // our end of its standard input closes, as it does when this
            // process exits (statics are never dropped).
            let script = format!(
                "Xvfb -displayfd 1 -screen 0 {size} -nolisten tcp 2>/dev/null & x=$!; read _; kill $x"
            );
            let mut process = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb must be installed (scripts/test installs it)");
            let mut number = String::new();
            let stdout = process.stdout.as_mut().expect("piped stdout");
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut number)
                .expect("Xvfb prints its display");
            let stdin = process.stdin.take();
            Display {
                number: format!(":{}", number.trim()),
                _process: process,
                _stdin: stdin,
            }
        })
        .number
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits for a process of ours to listen: there is no clock to move here.
#[allow(clippy::disallowed_methods)]
fn wait_for_port(port: u16, process: &str) {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{process} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the app of the last test has exited: the kiosk is a single
/// instance, so the next test's app would otherwise hand over to it and quit.
#[allow(clippy::disallowed_methods)] // waiting for another process; no clock to move
pub fn wait_for_app_exit() {
    let app = app_path();
    let deadline = Instant::now() + PATIENCE;
    while Command::new("pgrep")
        .arg("-f")
        .arg(&app)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            Instant::now() < deadline,
            "the last test's app is still running: {}",
            app.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the app is started with (tauri-driver passes it on): the test's
/// display, directory, key, configuration and clock, all in `folder`, and
/// its software key (`1`: CTAP 2.0, `2.1`: CTAP 2.1).
fn app_environment(
    folder: &std::path::Path,
    screen: Screen,
    soft_key: &'static str,
) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("DISPLAY", display(screen).into()),
        ("WEBKIT_DISABLE_DMABUF_RENDERER", "1".into()),
        ("TAPKIOSK_KEY_FILE", folder.join("directory.key")),
        ("TAPKIOSK_DIRECTORY", folder.join("directory.sqlite3")),
        ("TAPKIOSK_CONFIG", folder.join("config.toml")),
        ("TAPKIOSK_TEST_CLOCK", folder.join("clock-offset")),
        ("TAPKIOSK_TEST_SOFT_KEY", soft_key.into()),
        // As much as the app would ever log, so that the test of its log
        // (see `assert_log_holds_none`) has the most to look at.
        ("RUST_LOG", "debug".into()),
        ("TAPKIOSK_TEST_LOG", folder.join(APP_LOG)),
        // The kiosk's instance lock, and anything else kept per session.
        ("XDG_RUNTIME_DIR", folder.into()),
    ]
}

/// The `directory` setting that names `location`.
fn directory_setting(location: &Location) -> String {
    match location {
        Location::Sqlite(path) => path.display().to_string(),
        Location::Postgres(url) => url.clone(),
    }
}

fn app_path() -> PathBuf {
    let path = std::env::var_os("TAPKIOSK_E2E_APP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/tapkiosk")
        });
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p tapkiosk --features test-clock,test-keys`",
        path.display()
    );
    path
}

/// One app at a time: the kiosk is a single-instance app, and two kiosks
/// fighting over one virtual display prove nothing.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running kiosk and its directory.
pub struct Kiosk {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    /// The WebDriver session on the app.
    pub driver: WebDriver,
    /// The directory, for seeding (its clock is the wall clock).
    pub directory: Directory,
    location: Location,
    driver_process: DriverProcess,
    /// The language the test speaks at the kiosk and the admin pane.
    pub language: &'static str,
    screen: Screen,
    soft_key: &'static str,
    clock_file: PathBuf,
    offset: i64,
    folder: tempfile::TempDir,
    key: DirectoryKey,
}

impl Kiosk {
    /// Starts the app on a fresh directory, in English on a small screen.
    pub async fn start() -> Self {
        Self::start_with("en", Screen::Small).await
    }

    /// Starts the app on a fresh directory whose first language (the
    /// admin pane's) is `language`, on `screen`.
    pub async fn start_with(language: &'static str, screen: Screen) -> Self {
        Self::start_configured(language, screen, "1", |_| String::new()).await
    }

    /// Starts the app on a fresh directory and the fake Entra tenant at
    /// `fake` (its app's client secret in a 0600 file).
    pub async fn start_on_tenant(language: &'static str, fake: &str, app: &str) -> Self {
        Self::start_on_tenant_with_key(language, fake, app, "1").await
    }

    /// As [`Kiosk::start_on_tenant`], with the software key `soft_key`
    /// (`1`: CTAP 2.0, `2.1`: CTAP 2.1).
    pub async fn start_on_tenant_with_key(
        language: &'static str,
        fake: &str,
        app: &str,
        soft_key: &'static str,
    ) -> Self {
        let entra = |folder: &std::path::Path| {
            let secret = folder.join("entra-secret");
            std::fs::write(&secret, "s3cret").unwrap();
            std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            format!(
                "[entra]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{app}\"\n\
                 client_secret_file = \"{}\"\nauthority = \"{fake}\"\ngraph = \"{fake}\"\n\
                 security_info = \"{fake}/security-info\"\n",
                secret.display()
            )
        };
        Self::start_configured(language, Screen::Small, soft_key, entra).await
    }

    /// Starts the app on a fresh directory, with the configuration's
    /// sections that `extra` writes (given the test's folder).
    async fn start_configured(
        language: &'static str,
        screen: Screen,
        soft_key: &'static str,
        extra: impl FnOnce(&std::path::Path) -> String,
    ) -> Self {
        let kiosk = Self::start_at(language, screen, soft_key, None, extra, |_| {}, None).await;
        kiosk.wait_for_step("welcome").await;
        kiosk
    }

    /// Starts the app, in `language`, on a fresh directory in the PostgreSQL
    /// database at `url`, with `[database]` timeouts short enough for a test
    /// of outages. `before` runs once the directory is made and before the
    /// app starts (to make it unreachable, say). Returns without waiting for
    /// a first screen.
    pub async fn start_on_postgres(
        language: &'static str,
        url: String,
        before: impl FnOnce(&Directory),
    ) -> Self {
        let database = |_: &std::path::Path| "[database]\nconnect_timeout = \"1s\"\n".to_string();
        let location = Location::Postgres(url);
        Self::start_at(
            language,
            Screen::Small,
            "1",
            Some(location),
            database,
            before,
            None,
        )
        .await
    }

    /// Starts the app in English on a fresh directory on `backend`, told to
    /// stop at the [crash point](tapkiosk_core::crash) `point` (the test
    /// build has them) for [`Kiosk::kill_at`].
    pub async fn start_to_crash(backend: Backend, point: &'static str) -> Self {
        let location = match backend {
            Backend::Sqlite => None,
            // A database of its own; the folder is for SQLite's file only.
            Backend::Postgres => {
                Some(tapkiosk_tests::new_location(backend, &tempfile::tempdir().unwrap()).await)
            }
        };
        let none = |_: &std::path::Path| String::new();
        let kiosk = Self::start_at(
            "en",
            Screen::Small,
            "1",
            location,
            none,
            |_| {},
            Some(point),
        )
        .await;
        kiosk.wait_for_step("welcome").await;
        kiosk
    }

    /// Starts the app on a fresh directory at `location` (else an SQLite
    /// file in the test's folder), with the configuration's sections that
    /// `extra` writes (given the test's folder).
    async fn start_at(
        language: &'static str,
        screen: Screen,
        soft_key: &'static str,
        location: Option<Location>,
        extra: impl FnOnce(&std::path::Path) -> String,
        before: impl FnOnce(&Directory),
        crash_at: Option<&'static str>,
    ) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let folder = tempfile::tempdir().unwrap();
        let key_file = folder.path().join("directory.key");
        let key = DirectoryKey::generate(&mut OsRng);
        KeyStore::File(key_file.clone()).save(&key).unwrap();
        let location =
            location.unwrap_or_else(|| Location::Sqlite(folder.path().join("directory.sqlite3")));
        let settings = Settings {
            actor: "e2e-seed".into(),
            ..Settings::default()
        };
        let (directory, _) =
            Directory::init(&location, key.clone(), Arc::new(SystemClock), settings)
                .await
                .unwrap();
        let config = folder.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "organisation = \"Example Ltd\"\nkiosk_name = \"lobby\"\nlanguages = {}\n[audit]\ncheckpoint_file = \"{}\"\n",
                if language == "fr" {
                    "[\"fr\", \"en\"]"
                } else {
                    "[\"en\", \"fr\"]"
                },
                folder.path().join(CHECKPOINTS).display()
            ) + extra(folder.path()).as_str(),
        )
        .unwrap();
        let clock_file = folder.path().join("clock-offset");
        std::fs::write(&clock_file, "0").unwrap();
        before(&directory);

        let (port, native_port) = (free_port(), free_port());
        let driver_process = Command::new("tauri-driver")
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .args(["--native-driver", "/usr/bin/WebKitWebDriver"])
            .envs(app_environment(folder.path(), screen, soft_key))
            .env("TAPKIOSK_DIRECTORY", directory_setting(&location))
            .env_remove("TAPKIOSK_TEST_POSTGRES")
            .env_remove("TAPKIOSK_TEST_PG_BIN")
            .env_remove("TAPKIOSK_TEST_PYTHON")
            .env_remove("TAPKIOSK_E2E_APP")
            .env_remove("TAPKIOSK_SCREENSHOTS")
            .envs(crash_at.map(|point| (CRASH_AT_ENV, point)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(folder.path().join("tauri-driver.log")).unwrap())
            .spawn()
            .expect("tauri-driver must be installed (scripts/test installs it)");
        // Ended however this start fails: a panic in WebDriver::new (seen:
        // its HTTP client's TLS set-up) once left one tauri-driver and
        // WebKitWebDriver per test running.
        let driver_process = DriverProcess(Some(driver_process));
        wait_for_port(port, "tauri-driver");
        // tauri-driver listens before the WebKitWebDriver it starts does,
        // and drops a request it cannot pass on: a busy machine lost the
        // new session that way.
        wait_for_port(native_port, "WebKitWebDriver");
        let mut capabilities = thirtyfour::Capabilities::new();
        capabilities.set("browserName", "wry").unwrap();
        capabilities
            .set(
                "tauri:options",
                serde_json::json!({ "application": app_path() }),
            )
            .unwrap();
        tapkiosk_tests::install_tls_provider();
        let driver = match WebDriver::new(format!("http://127.0.0.1:{port}"), capabilities).await {
            Ok(driver) => driver,
            Err(error) => {
                let log = std::fs::read_to_string(folder.path().join("tauri-driver.log"));
                panic!("no WebDriver session: {error}\ntauri-driver said: {log:?}")
            }
        };
        Self {
            _turn: turn,
            driver,
            directory,
            location,
            driver_process,
            language,
            screen,
            soft_key,
            clock_file,
            offset: 0,
            folder,
            key,
        }
    }

    /// The app's time (the wall clock plus what the test moved it by).
    pub fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + TimeDelta::seconds(self.offset)
    }

    /// Moves the app's clock forward.
    pub fn advance(&mut self, by: TimeDelta) {
        self.offset += by.num_seconds();
        std::fs::write(&self.clock_file, self.offset.to_string()).unwrap();
    }

    /// The directory as it was at `at` (to seed a pass that has expired by now).
    pub async fn directory_at(&self, at: DateTime<Utc>) -> Directory {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at));
        Directory::open(&self.location, self.key.clone(), clock, Settings::default())
            .await
            .unwrap()
    }

    /// A connection of the test's own to the app's directory, to break it
    /// on purpose.
    pub async fn raw_directory(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        <sqlx::AnyConnection as sqlx::Connection>::connect(&self.location.connection_url())
            .await
            .unwrap()
    }

    /// Adds a person and issues them a pass; returns its value.
    pub async fn person_with_pass(&self, email: &str, name: &str, one_time: bool) -> String {
        let email = Email::parse(email).unwrap();
        self.directory
            .add_user(&NewUser::new(email.clone(), Some(name), &[]).unwrap())
            .await
            .unwrap();
        if !one_time {
            tapkiosk_tests::allow_multi_use(&self.directory).await;
        }
        let request = IssueRequest {
            one_time: Some(one_time),
            ..IssueRequest::new(email)
        };
        self.directory
            .issue_pass(&request)
            .await
            .unwrap()
            .code
            .grouped()
    }

    /// Waits until the kiosk shows the step `kind`.
    pub async fn wait_for_step(&self, kind: &str) {
        let selector = format!("body[data-step='{kind}']");
        self.find(By::Css(&selector), false)
            .await
            .unwrap_or_else(|e| panic!("the kiosk never showed `{kind}`: {e}"));
    }

    /// Waits until the kiosk shows its out-of-service screen, and returns
    /// its text.
    pub async fn wait_for_out_of_service(&self) -> String {
        let screen = self
            .wait_for(By::Css("body[data-out-of-service] #out-of-service h1"))
            .await;
        assert!(screen.is_displayed().await.unwrap());
        let section = self.driver.find(By::Id("out-of-service")).await.unwrap();
        section.text().await.unwrap()
    }

    /// Waits until the out-of-service screen has gone.
    pub async fn wait_for_service(&self) {
        self.wait_for(By::Css(
            "body:not([data-out-of-service]) #out-of-service[hidden]",
        ))
        .await;
    }

    /// Waits until the notice with `code` shows, and returns its text.
    pub async fn wait_for_notice(&self, code: &str) -> String {
        let selector = format!("#notice[data-code='{code}']");
        let notice = self
            .find(By::Css(&selector), false)
            .await
            .unwrap_or_else(|e| panic!("the notice `{code}` never showed: {e}"));
        notice.text().await.unwrap()
    }

    /// Waits for the element `by` and returns it.
    pub async fn wait_for(&self, by: By) -> WebElement {
        self.find(by, false).await.unwrap()
    }

    /// Waits for the element `by` (and for it to be clickable if asked).
    /// A page that is being replaced (the kiosk opening the tenant's
    /// sign-in page, say) makes WebDriver fail the search with "no such
    /// frame" instead of finding nothing: that is waited out like any
    /// element not there yet.
    async fn find(&self, by: By, clickable: bool) -> WebDriverResult<WebElement> {
        use thirtyfour::error::WebDriverErrorInner;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let query = self.driver.query(by.clone());
            let query = if clickable {
                query.and_clickable()
            } else {
                query
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match query.wait(left, Duration::from_millis(100)).first().await {
                // The next search's round trip is the pause.
                Err(error)
                    if matches!(error.as_inner(), WebDriverErrorInner::NoSuchFrame(_))
                        && Instant::now() < deadline => {}
                found => return found,
            }
        }
    }

    /// Types into the field `id` and presses Enter.
    pub async fn enter(&self, id: &str, text: &str) {
        let field = self.find(By::Id(id), false).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(format!("{text}\u{E007}")).await.unwrap();
    }

    /// The element `selector`, once it is there and clickable.
    async fn clickable(&self, selector: &str) -> WebElement {
        self.find(By::Css(selector), true).await.unwrap()
    }

    /// Clicks the element `selector` once it is there.
    pub async fn click(&self, selector: &str) {
        self.clickable(selector).await.click().await.unwrap();
    }

    /// Clicks a button that ends the app. The click is made by the page a
    /// moment later, so that WebDriver is not left waiting for an answer
    /// from an app that is gone.
    pub async fn click_to_quit(&self, selector: &str) {
        self.clickable(selector).await;
        let script = format!(
            "setTimeout(() => document.querySelector({}).click(), 50)",
            serde_json::to_string(selector).unwrap()
        );
        self.driver.execute(&script, Vec::new()).await.unwrap();
    }

    /// Clicks a button that closes its own window: the window may be gone
    /// before WebDriver answers the click, which is then no failure.
    pub async fn click_to_close(&self, selector: &str) {
        use thirtyfour::error::WebDriverErrorInner;
        if let Err(error) = self.clickable(selector).await.click().await {
            assert!(
                matches!(error.as_inner(), WebDriverErrorInner::NoSuchWindow(_)),
                "clicking {selector}: {error}"
            );
        }
    }

    /// Checks that the app's log (a copy the test build writes) holds none
    /// of `secrets`, in any case or grouping.
    pub fn assert_log_holds_none(&self, secrets: &[&str]) {
        let log = std::fs::read_to_string(self.folder.path().join(APP_LOG)).unwrap();
        assert!(
            log.contains("tapkiosk-audit-checkpoint-v1"),
            "the app's log is not where the test looks"
        );
        let plain = |text: &str| -> String {
            text.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_lowercase()
        };
        let log = plain(&log);
        for secret in secrets {
            assert!(
                !log.contains(&plain(secret)),
                "the app's log holds {secret}"
            );
        }
    }

    /// Waits until the app's log holds `text`.
    #[allow(clippy::disallowed_methods)] // waiting for the app; no clock to move
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        let path = self.folder.path().join(APP_LOG);
        while !std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains(text)
        {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!("the app never logged {text:?}; it ended with {tail:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the app stops at the crash point `point`, in the middle
    /// of its write, and kills it there (SIGKILL), as a power cut would.
    #[allow(clippy::disallowed_methods)] // waiting for the kernel; no clock to move
    pub fn kill_at(&self, point: &str) {
        self.wait_for_log(&format!("crash point: {point}"));
        let app = app_path().canonicalize().unwrap();
        let driver = self.driver_process.0.as_ref().unwrap().id();
        let is_app =
            |pid: &u32| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == app);
        let apps: Vec<u32> = descendants(driver).into_iter().filter(is_app).collect();
        assert_eq!(apps.len(), 1, "one app runs under tauri-driver: {apps:?}");
        let killed = Command::new("kill")
            .args(["-KILL", &apps[0].to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        // A killed process is a zombie until its parent reaps it, and a
        // zombie has no executable.
        let deadline = Instant::now() + PATIENCE;
        while is_app(&apps[0]) {
            assert!(Instant::now() < deadline, "the app outlived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the app a second time, as the first was started, and returns
    /// how it ended and what it said; it must end within [`PATIENCE`].
    #[allow(clippy::disallowed_methods)] // waiting for a process; no clock to move
    pub fn start_again(&self) -> (std::process::ExitStatus, String) {
        let mut second = Command::new(app_path())
            .envs(app_environment(
                self.folder.path(),
                self.screen,
                self.soft_key,
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = second.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = second.kill();
                let _ = second.wait();
                panic!("a second app kept running beside the first");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut said = String::new();
        std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut said).unwrap();
        (status, said)
    }

    /// The first line the app wrote to its audit checkpoint file.
    #[allow(clippy::disallowed_methods)] // waiting for the app; no clock to move
    pub fn first_checkpoint(&self) -> String {
        let path = self.folder.path().join(CHECKPOINTS);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(line) = text.lines().next() {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "the checkpoint file is private");
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "the app wrote no checkpoint");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The words of `key` in the test's language, from ui/i18n.
    pub fn words(&self, key: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../ui/i18n/{}.json", self.language));
        let catalogue: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        key.split('.')
            .fold(&catalogue, |node, part| &node[part])
            .as_str()
            .unwrap_or_else(|| panic!("no words for {key}"))
            .to_string()
    }

    /// Asserts that `text` is the message `key` (up to its first parameter).
    pub fn assert_says(&self, text: &str, key: &str) {
        let words = self.words(key);
        let fixed = words.split('{').next().unwrap_or_default();
        assert!(
            !fixed.is_empty() && text.starts_with(fixed),
            "expected {key} ({words}), got: {text}"
        );
    }

    /// Asserts what every kiosk screen must be: every control at least
    /// 44 px both ways, and (on the kiosk itself) nothing to scroll to.
    pub async fn assert_layout(&self, name: &str) {
        let check = "const small = [...document.querySelectorAll('button, input:not([type=checkbox]), select, a[href]')]\
              .filter((e) => e.offsetParent !== null)\
              .map((e) => [e.id || e.textContent.trim(), e.getBoundingClientRect()])\
              .filter(([, r]) => r.height < 44 || r.width < 44)\
              .map(([n, r]) => `${n}: ${r.width}x${r.height}`);\
            const kiosk = document.body.hasAttribute('data-step');\
            const root = document.documentElement;\
            const overflow = kiosk && (root.scrollHeight > innerHeight || root.scrollWidth > innerWidth);\
            return { small, overflow, size: [root.scrollWidth, root.scrollHeight, innerWidth, innerHeight] };";
        let answer = self.driver.execute(check, vec![]).await.unwrap();
        let answer = answer.json();
        assert_eq!(
            answer["small"],
            serde_json::json!([]),
            "{name}: controls under 44 px"
        );
        assert_eq!(
            answer["overflow"], false,
            "{name}: the screen scrolls (content and window: {})",
            answer["size"]
        );
    }

    /// Checks the layout, then saves a screenshot of the virtual display
    /// (the fullscreen kiosk) as `<language>-name.png` (`<language>-1080-…`
    /// on the Full HD screen) in the folder named by `TAPKIOSK_SCREENSHOTS`,
    /// when set.
    /// Taken with xwd rather than WebDriver: WebKitWebDriver's screenshots
    /// hang on a page that has not repainted since the last one.
    pub async fn screenshot(&self, name: &str) {
        self.assert_layout(name).await;
        self.capture(name).await;
    }

    /// A screenshot of a page that is not the kiosk's own (the tenant's
    /// sign-in page), whose layout is not the kiosk's to check.
    pub async fn screenshot_of_page(&self, name: &str) {
        self.capture(name).await;
    }

    async fn capture(&self, name: &str) {
        let Some(folder) = std::env::var_os("TAPKIOSK_SCREENSHOTS") else {
            return;
        };
        // Let the last change reach the screen: the backend answers and the
        // UI draws within one animation frame.
        let frame = "const done = arguments[arguments.length - 1];\
            requestAnimationFrame(() => requestAnimationFrame(() => done(true)));";
        self.driver.execute_async(frame, vec![]).await.unwrap();
        let size = match self.screen {
            Screen::Small => "",
            Screen::FullHd => "-1080",
        };
        let file = format!("{}{size}-{name}.png", self.language);
        let path = PathBuf::from(folder).join(file);
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "xwd -root -display {} | xwdtopnm 2>/dev/null | pnmtopng > '{}'",
                display(self.screen),
                path.display()
            ))
            .status()
            .expect("xwd and netpbm must be installed (scripts/test installs them)");
        assert!(status.success(), "screenshot {name} failed");
    }

    /// Ends the session, then (as a test that fails does, on drop) the
    /// driver and everything it started.
    pub async fn stop(self) {
        let _ = self.driver.clone().quit().await;
    }
}

impl Drop for Kiosk {
    /// Ends tauri-driver and what it started (WebKitWebDriver, the app),
    /// by process id: a test that fails leaves nothing running either.
    fn drop(&mut self) {
        self.driver_process.end();
    }
}

/// tauri-driver, ended with what it started when dropped.
struct DriverProcess(Option<Child>);

impl DriverProcess {
    fn end(&mut self) {
        if let Some(mut child) = self.0.take() {
            end_driver(&mut child);
        }
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        self.end();
    }
}

/// Ends tauri-driver and everything it started, by process id.
fn end_driver(driver_process: &mut Child) {
    let family = descendants(driver_process.id());
    let _ = driver_process.kill();
    let _ = driver_process.wait();
    for pid in &family {
        // Those that ended by themselves are gone already: say nothing.
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    wait_for_app_exit();
}

/// The processes started under `pid`, at any depth.
fn descendants(pid: u32) -> Vec<u32> {
    let children: Vec<u32> = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|line| line.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    children
        .iter()
        .flat_map(|&child| std::iter::once(child).chain(descendants(child)))
        .collect()
}

/// The `otpauth://` URI in the QR code image on screen.
pub async fn read_qr(kiosk: &Kiosk) -> String {
    let qr = kiosk.driver.find(By::Id("qr")).await.unwrap();
    let png = qr.screenshot_as_png().await.unwrap();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "expected one QR code on screen");
    grids[0].decode().unwrap().1
}

/// The code an authenticator app shows at `at`, from oathtool (an
/// implementation we did not write).
pub fn oathtool_code(secret_base32: &str, at: DateTime<Utc>) -> String {
    let output = Command::new("oathtool")
        .args([
            "--totp=sha1",
            "--digits=6",
            "--time-step-size=30s",
            "--base32",
        ])
        .arg(format!("--now={}", at.format("%Y-%m-%d %H:%M:%S UTC")))
        .arg(secret_base32)
        .output()
        .expect("oathtool must be installed (scripts/test installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}
