//! A PostgreSQL server of a test's own, to stop and start again: the shared
//! test server must stay up for every other test.

use std::path::PathBuf;
use std::process::Command;

/// A private server on a free port of 127.0.0.1, its data in a temporary
/// folder. Stopped (immediately, as a crash would) when dropped.
pub struct PrivatePostgres {
    folder: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// Initialises and starts a server with PostgreSQL's programs from
    /// `TAPKIOSK_TEST_PG_BIN` (scripts/test sets it).
    pub fn start() -> Self {
        let folder = tempfile::tempdir().unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let server = Self { folder, port };
        if running_as_root() {
            // PostgreSQL refuses to run as root: its own account does.
            let status = Command::new("chown")
                .args(["postgres:", &server.folder.path().display().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        server.run(
            "initdb",
            &["-U", "tapkiosk", "--auth=trust", "--no-sync", "-E", "UTF8"],
        );
        server.resume();
        server
    }

    /// The URL of `database` (created by [`Self::create_database`]).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://tapkiosk@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database`.
    pub fn create_database(&self, database: &str) {
        let bin = bin();
        let status = Command::new(format!("{bin}/createdb"))
            .args(["--maintenance-db", &self.url("postgres"), database])
            .status()
            .unwrap();
        assert!(status.success(), "createdb {database}");
    }

    /// Stops the server at once, as a crash or a power cut would: open
    /// transactions are lost, connections cut without goodbye.
    pub fn crash(&self) {
        self.run("pg_ctl", &["-m", "immediate", "stop"]);
    }

    /// Starts the server again (recovering from its log after a crash) and
    /// waits until it takes connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data().display()
        );
        let log = self.folder.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-w",
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.folder.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = format!("{}/{program}", bin());
        let data = self.data().display().to_string();
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(&path)
        };
        let output = command.arg("-D").arg(&data).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let path = format!("{}/pg_ctl", bin());
        let data = self.data().display().to_string();
        let args = ["-D", &data, "-m", "immediate", "stop"];
        let _ = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--", &path])
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

fn bin() -> String {
    std::env::var("TAPKIOSK_TEST_PG_BIN").expect(
        "TAPKIOSK_TEST_PG_BIN names PostgreSQL's bin folder: run the tests with scripts/test",
    )
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
