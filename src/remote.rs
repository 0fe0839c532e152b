//! `stockroom import` and `stockroom export`: upload a CSV file to a running server with a
//! progress bar and print what became of it, or download an export.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::config::{ErrorPolicy, ExportKind, Remote};

/// `stockroom import`'s switches besides the server and the file.
#[derive(Clone, Debug)]
pub struct ImportArguments {
    /// Evaluate and report, write nothing.
    pub dry_run: bool,
    /// What happens to the good rows when some fail.
    pub error_policy: ErrorPolicy,
    /// The movements' reason.
    pub source: Option<String>,
    /// Where to write the per-row CSV report.
    pub report: Option<PathBuf>,
}

/// The most failed rows printed; the CSV report (`--report`) has them all.
const PRINTED_FAILURES: usize = 20;

/// Uploads `file`, prints the summary (and the first failed rows), and exits 0 when every row
/// was applied, 1 when rows failed or nothing was committed, 2 on any other failure.
pub async fn import(remote: &Remote, file: &Path, arguments: &ImportArguments) -> ExitCode {
    match run_import(remote, file, arguments).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("stockroom import: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run_import(
    remote: &Remote,
    file: &Path,
    arguments: &ImportArguments,
) -> Result<ExitCode, String> {
    let opened = tokio::fs::File::open(file)
        .await
        .map_err(|error| format!("cannot open {}: {error}", file.display()))?;
    let length = opened
        .metadata()
        .await
        .map_err(|error| format!("cannot read {}: {error}", file.display()))?
        .len();
    let progress = ProgressBar::new(length).with_style(
        ProgressStyle::with_template(
            "{spinner} uploading {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}, {eta} left",
        )
        .map_err(|error| error.to_string())?
        .progress_chars("=> "),
    );
    let counter = progress.clone();
    let body = tokio_util::io::ReaderStream::new(opened).inspect(move |piece| {
        if let Ok(piece) = piece {
            counter.inc(piece.len() as u64);
        }
    });
    let policy = match arguments.error_policy {
        ErrorPolicy::RejectEverything => "REJECT_EVERYTHING",
        ErrorPolicy::RejectFailedRows => "REJECT_FAILED_ROWS",
    };
    let mut query = vec![
        ("errorPolicy", policy.to_owned()),
        ("dryRun", arguments.dry_run.to_string()),
    ];
    if let Some(source) = &arguments.source {
        query.push(("source", source.clone()));
    }
    let query = serde_urlencoded::to_string(&query).map_err(|error| error.to_string())?;
    let url = format!(
        "{}/imports/inventory?{query}",
        remote.server.trim_end_matches('/')
    );
    let accept = if arguments.report.is_some() {
        "text/csv"
    } else {
        "application/json"
    };
    let mut request = reqwest::Client::new()
        .post(&url)
        .header("content-type", "text/csv")
        .header("content-length", length)
        .header("accept", accept)
        .body(reqwest::Body::wrap_stream(body));
    if let Some(token) = &remote.token {
        request = request.bearer_auth(token);
    }
    let sending = request.send();
    tokio::pin!(sending);
    // Once the file is up, the server applies it: say so while waiting.
    let response = loop {
        tokio::select! {
            response = &mut sending => break response,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if progress.position() >= length && progress.message().is_empty() {
                    progress.set_style(
                        ProgressStyle::with_template("{spinner} uploaded {total_bytes}; {msg} {elapsed}")
                            .map_err(|error| error.to_string())?,
                    );
                    progress.set_message("the server is applying it");
                    progress.enable_steady_tick(Duration::from_millis(120));
                }
            }
        }
    };
    progress.finish_and_clear();
    let response = response.map_err(|error| format!("cannot reach {url}: {error}"))?;
    let status = response.status();
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["message"].as_str().unwrap_or("no message");
        return Err(format!("the server refused the file ({status}): {message}"));
    }
    let summary = match &arguments.report {
        Some(path) => {
            let committed = response
                .headers()
                .get("x-import-committed")
                .and_then(|value| value.to_str().ok())
                .map(|value| value == "true");
            let text = response
                .text()
                .await
                .map_err(|error| format!("the report broke off: {error}"))?;
            tokio::fs::write(path, &text)
                .await
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            let mut summary = summary_of_report(&text)?;
            summary.committed = committed;
            println!("report written to {}", path.display());
            summary
        }
        None => {
            let body: Value = response
                .json()
                .await
                .map_err(|error| format!("the answer is not JSON: {error}"))?;
            print_failures(&body["rows"]);
            Summary::from_json(&body["summary"])
        }
    };
    summary.print(arguments.dry_run);
    let clean = summary.failed == 0 && summary.committed.unwrap_or(true);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What an import did, counted.
#[derive(Debug, Default)]
struct Summary {
    rows: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    failed: u64,
    /// Unknown when counted from a CSV report.
    committed: Option<bool>,
}

impl Summary {
    fn from_json(summary: &Value) -> Self {
        let count = |key: &str| summary[key].as_u64().unwrap_or(0);
        Self {
            rows: count("rows"),
            created: count("created"),
            updated: count("updated"),
            unchanged: count("unchanged"),
            failed: count("failed"),
            committed: summary["committed"].as_bool(),
        }
    }

    fn print(&self, dry_run: bool) {
        println!("rows       {:>10}", self.rows);
        println!("created    {:>10}", self.created);
        println!("updated    {:>10}", self.updated);
        println!("unchanged  {:>10}", self.unchanged);
        println!("failed     {:>10}", self.failed);
        let outcome = match (dry_run, self.committed) {
            (true, Some(true)) => "dry run: nothing was written; the import would commit",
            (true, Some(false)) => "dry run: nothing was written; the import would commit nothing",
            (true, None) => "dry run: nothing was written",
            (false, Some(false)) => "nothing was committed (a row failed under REJECT_EVERYTHING)",
            (false, _) if self.failed > 0 => "committed, except the failed rows",
            (false, _) => "committed",
        };
        println!("{outcome}");
    }
}

/// Counts the statuses of a CSV report (its third-last column).
fn summary_of_report(text: &str) -> Result<Summary, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut summary = Summary::default();
    for record in reader.records() {
        let record = record.map_err(|error| format!("the report is not CSV: {error}"))?;
        let status = record
            .len()
            .checked_sub(3)
            .and_then(|index| record.get(index));
        summary.rows += 1;
        match status {
            Some("CREATED") => summary.created += 1,
            Some("UPDATED") => summary.updated += 1,
            Some("UNCHANGED") => summary.unchanged += 1,
            _ => summary.failed += 1,
        }
    }
    Ok(summary)
}

fn print_failures(rows: &Value) {
    let Some(rows) = rows.as_array() else {
        return;
    };
    for row in rows.iter().take(PRINTED_FAILURES) {
        println!(
            "{:<20} {}",
            row["code"].as_str().unwrap_or_default(),
            row["error"].as_str().unwrap_or_default()
        );
    }
    if rows.len() > PRINTED_FAILURES {
        println!(
            "... and {} more failed rows (--report FILE writes them all)",
            rows.len() - PRINTED_FAILURES
        );
    }
}

/// Downloads an export to `output` (standard output when `None`).
pub async fn export(
    remote: &Remote,
    what: ExportKind,
    output: Option<&Path>,
    from: Option<String>,
    to: Option<String>,
) -> ExitCode {
    match run_export(remote, what, output, from, to).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stockroom export: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run_export(
    remote: &Remote,
    what: ExportKind,
    output: Option<&Path>,
    from: Option<String>,
    to: Option<String>,
) -> Result<(), String> {
    let path = match what {
        ExportKind::Inventory => "inventory.csv",
        ExportKind::Movements => "movements.csv",
    };
    let mut query = Vec::new();
    if let Some(from) = from {
        query.push(("from", from));
    }
    if let Some(to) = to {
        query.push(("to", to));
    }
    let query = serde_urlencoded::to_string(&query).map_err(|error| error.to_string())?;
    let url = format!(
        "{}/exports/{path}?{query}",
        remote.server.trim_end_matches('/')
    );
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = &remote.token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|error| format!("cannot reach {url}: {error}"))?;
    let status = response.status();
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["message"].as_str().unwrap_or("no message");
        return Err(format!("the server refused ({status}): {message}"));
    }
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match output {
        Some(path) => Box::new(
            tokio::fs::File::create(path)
                .await
                .map_err(|error| format!("cannot create {}: {error}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let progress = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {bytes} downloaded, {bytes_per_sec}")
            .map_err(|error| error.to_string())?,
    );
    if output.is_none() {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        // A download that breaks off is an error, never a shorter file passed off as whole.
        let piece = piece.map_err(|error| format!("the download broke off: {error}"))?;
        out.write_all(&piece)
            .await
            .map_err(|error| format!("cannot write: {error}"))?;
        progress.inc(piece.len() as u64);
    }
    out.flush()
        .await
        .map_err(|error| format!("cannot write: {error}"))?;
    progress.finish_and_clear();
    Ok(())
}
