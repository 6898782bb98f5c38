//! `tapctl entra pass issue-batch`: Entra passes for an HR file, 20 to a
//! Graph `$batch` call. Graph has no transaction, so the batch is made
//! resumable instead: each row's result (the pass for its letter, or why
//! not) is appended to the results file as soon as Graph answers, and a
//! run with the same results file skips the rows issued before. A pass is
//! never issued twice: a row is skipped once its result is written, and a
//! row whose pass Graph issued just before an interruption is refused by
//! Graph itself on the next run (a person has one pass).

use crate::print::say;
use anyhow::{Context as _, Result, bail};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::ExitCode;
use tapkiosk_core::Directory;
use tapkiosk_core::directory::entra::EntraChange;
use tapkiosk_core::import::{self, BatchRow};
use tapkiosk_entra::Graph;
use tapkiosk_entra::graph::BATCH_SIZE;
use tapkiosk_entra::passes::{self, EntraPass, PassRequest, TapPolicy};

/// The results file's columns.
const HEADER: [&str; 8] = [
    "line",
    "email",
    "result",
    "temporaryAccessPass",
    "startDateTime",
    "lifetimeInMinutes",
    "isUsableOnce",
    "reason",
];

/// Issues the passes `file` asks for; results in `out`.
pub async fn issue_batch(
    graph: &Graph,
    directory: &Directory,
    file: &Path,
    out: &Path,
) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rows = import::parse_batch(&text)?;
    let policy = TapPolicy::read(graph).await?;
    let refused: Vec<String> = rows
        .iter()
        .filter_map(|(line, row)| {
            let refusal = policy.refusal(&request_of(row))?;
            Some(format!("line {line}: {refusal}"))
        })
        .collect();
    if !refused.is_empty() {
        bail!(
            "the tenant's policy would refuse {} of the file's rows; nothing was sent:\n{}",
            refused.len(),
            refused.join("\n")
        );
    }
    let done = issued_before(out)?;
    let mut results = Results::open(out)?;
    let pending: Vec<(u64, BatchRow)> = rows
        .into_iter()
        .filter(|(_, row)| !done.contains(row.email.as_str()))
        .collect();
    let skipped = done.len();
    let (mut issued, mut refused) = (0, 0);
    for chunk in pending.chunks(BATCH_SIZE) {
        let asked: Vec<(String, PassRequest)> = chunk
            .iter()
            .map(|(_, row)| (row.email.to_string(), request_of(row)))
            .collect();
        let answers = passes::issue_batch(graph, &asked).await.with_context(|| {
            format!(
                "Graph stopped the batch after {} rows; their results are in {}: run the same command again to go on",
                issued + refused,
                out.display()
            )
        })?;
        for ((line, row), answer) in chunk.iter().zip(answers) {
            let email = row.email.as_str();
            match answer {
                Ok(pass) => {
                    results.issued(*line, email, &pass)?;
                    directory
                        .record_entra_change(
                            EntraChange::PassIssued,
                            email,
                            &pass.id,
                            pass.request_id.as_deref(),
                        )
                        .await?;
                    issued += 1;
                }
                Err(error) => {
                    results.refused(*line, email, &error.to_string())?;
                    refused += 1;
                }
            }
        }
        results.sync()?;
    }
    say!(
        "Issued {}; {} refused; {} issued by an earlier run and skipped. Results in {} (readable only by you): print the letters, then delete the file.",
        passes_word(issued),
        refused,
        skipped,
        out.display()
    );
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn passes_word(count: usize) -> String {
    format!("{count} pass{}", if count == 1 { "" } else { "es" })
}

fn request_of(row: &BatchRow) -> PassRequest {
    PassRequest {
        start: row.start,
        lifetime_minutes: row.lifetime.map(|l| l.minutes()),
        one_time: row.one_time,
    }
}

/// The emails an earlier run with this results file issued passes to.
fn issued_before(out: &Path) -> Result<BTreeSet<String>> {
    if !out.exists() {
        return Ok(BTreeSet::new());
    }
    let mut reader = csv::Reader::from_path(out)
        .with_context(|| format!("cannot read the results {}", out.display()))?;
    let mut done = BTreeSet::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{} is not a results file", out.display()))?;
        if record.get(2) == Some("issued") {
            done.extend(record.get(1).map(String::from));
        }
    }
    Ok(done)
}

/// The results file, appended to row by row.
struct Results {
    writer: csv::Writer<std::fs::File>,
    file: std::fs::File,
}

impl Results {
    /// Opens `out` to append, creating it readable only by its owner.
    fn open(out: &Path) -> Result<Self> {
        let new = !out.exists();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(out)
            .with_context(|| format!("cannot open {}", out.display()))?;
        let mut writer = csv::Writer::from_writer(file.try_clone()?);
        if new {
            writer.write_record(HEADER)?;
        }
        Ok(Self { writer, file })
    }

    fn issued(&mut self, line: u64, email: &str, pass: &EntraPass) -> Result<()> {
        let start = pass
            .start
            .map(|s| s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let value = pass.value.as_deref().map_or("", String::as_str);
        self.writer.write_record([
            &line.to_string(),
            email,
            "issued",
            value,
            &start,
            &pass.lifetime_minutes.to_string(),
            &pass.one_time.to_string(),
            "",
        ])?;
        Ok(())
    }

    fn refused(&mut self, line: u64, email: &str, reason: &str) -> Result<()> {
        self.writer
            .write_record([&line.to_string(), email, "refused", "", "", "", "", reason])?;
        Ok(())
    }

    /// Puts what was written on the disk, before the next call to Graph.
    fn sync(&mut self) -> Result<()> {
        self.writer.flush()?;
        self.file.flush()?;
        self.file.sync_data()?;
        Ok(())
    }
}
