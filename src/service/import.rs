//! CSV inventory import: a file of `sku,name,reorder_level,location,on_hand,lot,expires_on`
//! rows that creates missing products, updates names and reorder levels, and sets on-hand
//! through the sync engine ([`super::sync`]), so a row means exactly what the same `syncStock`
//! row means.
//!
//! The file is read twice from disk, never held in memory: a first pass checks its shape (the
//! header, CSV syntax, the row limit) before anything is applied, so a broken file changes
//! nothing; the second pass applies it in chunks. Under `REJECT_FAILED_ROWS` each chunk of
//! [`IMPORT_CHUNK_ROWS`] rows is one transaction. Under `REJECT_EVERYTHING`, and for a dry run,
//! the whole file is one evaluation in one transaction (that is what makes it all or nothing,
//! and what makes a dry run show exactly what the import will do), so those take at most
//! `--max-sync-rows` rows: one transaction holds the row lock of every product it touches until
//! it ends, and a larger one would stall every sale of those products meanwhile.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;
use tokio::sync::mpsc;

use super::Actor;
use super::sync::{
    Catalogue, CheckedRow, Evaluation, RowChange, RowOutcome, SyncErrorPolicy, SyncRowStatus,
    describe, evaluate,
};
use crate::clock::Clock;
use crate::database::Database;
use crate::domain::{LocationCode, LotCode, MAX_STOCK, ProductName, Reason, Sku};
use crate::error::{Error, Result};
use crate::events::EventBus;

use super::buckets::LotInput;

/// How often a chunk runs before its error is the answer.
const CHUNK_ATTEMPTS: u64 = 5;

/// The most failed rows an import reports with their messages (the CSV report gives every
/// failed row its code); the count of all is in the summary.
pub const MAX_REPORTED_FAILURES: usize = 1_000;

/// Errors after which a chunk is worth running again.
fn retryable(error: &Error) -> bool {
    error.is_sku_taken() || matches!(error, Error::Unavailable(_))
}

/// Rows per transaction of a `REJECT_FAILED_ROWS` import.
pub const IMPORT_CHUNK_ROWS: usize = 1_000;

/// The most rows one import takes unless configured otherwise.
pub const DEFAULT_MAX_IMPORT_ROWS: usize = 1_000_000;

/// The columns, in the order exports write them.
pub const COLUMNS: [&str; 7] = [
    "sku",
    "name",
    "reorder_level",
    "location",
    "on_hand",
    "lot",
    "expires_on",
];

/// The columns of the CSV report, after the input's.
pub const REPORT_COLUMNS: [&str; 3] = ["status", "error_code", "error"];

/// How an import runs.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The movements' reason (`csv-import` when not given).
    pub source: Option<String>,
    /// What happens to the good rows when some fail.
    pub error_policy: SyncErrorPolicy,
    /// Evaluate and roll back.
    pub dry_run: bool,
}

/// What became of one row of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImportRowStatus {
    /// The row created its product.
    Created,
    /// The row changed its product (stock, name or reorder level).
    Updated,
    /// The product already was as the row says.
    Unchanged,
    /// The row was refused.
    Failed,
}

impl ImportRowStatus {
    /// The status as the CSV report writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportRowStatus::Created => "CREATED",
            ImportRowStatus::Updated => "UPDATED",
            ImportRowStatus::Unchanged => "UNCHANGED",
            ImportRowStatus::Failed => "FAILED",
        }
    }
}

/// A failed row, named by its line in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRow {
    /// The row's first line in the file (the header is line 1).
    pub line: u64,
    /// The SKU as written.
    pub sku: String,
    /// The error code.
    pub code: String,
    /// Why, naming the column where one is at fault.
    pub error: String,
}

/// The counts of an import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Data rows in the file.
    pub rows: usize,
    /// Rows that created their product.
    pub created: usize,
    /// Rows that changed their product.
    pub updated: usize,
    /// Rows that changed nothing.
    pub unchanged: usize,
    /// Rows refused.
    pub failed: usize,
    /// Whether the changes were committed (on a dry run: whether they would be). Under
    /// `REJECT_FAILED_ROWS` every chunk commits its good rows.
    pub committed: bool,
    /// Whether this was a dry run: then nothing was written.
    pub dry_run: bool,
    /// Transactions the import ran in.
    pub transactions: usize,
}

/// An import's result: the counts, the failed rows, and every row's status (for the report).
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// The counts.
    pub summary: ImportSummary,
    /// The rows that failed, in file order.
    pub failed_rows: Vec<FailedRow>,
    /// Every data row's status and, for a failed row, its code, in file order.
    statuses: Vec<(ImportRowStatus, Option<&'static str>)>,
    /// The messages of the reported failed rows, by row index.
    messages: HashMap<usize, String>,
}

/// Imports inventory files.
#[derive(Clone, Debug)]
pub struct ImportService {
    database: Database,
    events: EventBus,
    clock: Clock,
    max_rows: usize,
    max_transaction_rows: usize,
}

/// Which input column each known column is, by position.
#[derive(Clone, Debug)]
struct ColumnMap {
    /// For each of [`COLUMNS`], its position in the file, if present.
    positions: [Option<usize>; 7],
    /// How many columns the header has.
    width: usize,
}

impl ColumnMap {
    fn field<'r>(&self, record: &'r csv::StringRecord, column: usize) -> Option<&'r str> {
        self.positions[column]
            .and_then(|position| record.get(position))
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }
}

/// One data row, read and checked on its own.
struct ParsedRow {
    line: u64,
    checked: Result<CheckedRow>,
}

impl ImportService {
    pub(super) fn new(database: Database, events: EventBus, clock: Clock) -> Self {
        Self {
            database,
            events,
            clock,
            max_rows: DEFAULT_MAX_IMPORT_ROWS,
            max_transaction_rows: super::DEFAULT_MAX_SYNC_ROWS,
        }
    }

    /// The same service with other limits: at most `max_rows` rows per file, and at most
    /// `max_transaction_rows` in a file that runs as one transaction.
    #[must_use]
    pub fn with_limits(mut self, max_rows: usize, max_transaction_rows: usize) -> Self {
        self.max_rows = max_rows;
        self.max_transaction_rows = max_transaction_rows;
        self
    }

    /// Imports the CSV file at `path`. A file that is not CSV as described (no header, an
    /// unknown or repeated column, no `sku` column, broken quoting, not UTF-8, too many rows)
    /// is `BAD_USER_INPUT` naming the line and column, and changes nothing; a bad row fails
    /// alone and is reported.
    pub async fn import(
        &self,
        path: &Path,
        options: ImportOptions,
        actor: &Actor,
    ) -> Result<ImportReport> {
        let source = match options.source.as_deref().map(str::trim) {
            None | Some("") => "csv-import".to_owned(),
            Some(source) => source.to_owned(),
        };
        let reason = Reason::parse(Some(&source))
            .map_err(|error| error.on_field("source"))?
            .ok_or_else(|| Error::internal("an import's reason came out empty"))?;
        let owned = path.to_path_buf();
        let (columns, rows) = tokio::task::spawn_blocking(move || check_file(&owned))
            .await
            .map_err(Error::internal)??;
        if rows > self.max_rows {
            return Err(Error::bad_input(format!(
                "an import takes at most {} rows (the file has {rows})",
                self.max_rows
            )));
        }
        let one_transaction =
            options.dry_run || options.error_policy == SyncErrorPolicy::RejectEverything;
        if one_transaction && rows > self.max_transaction_rows {
            let what = if options.dry_run {
                "a dry run"
            } else {
                "an import under REJECT_EVERYTHING"
            };
            return Err(Error::bad_input(format!(
                "{what} is one transaction and takes at most {} rows (the file has {rows}): it \
                 holds every product's lock until it ends. Import larger files with \
                 errorPolicy=REJECT_FAILED_ROWS (chunks of {IMPORT_CHUNK_ROWS} rows, each its \
                 own transaction), or split the file",
                self.max_transaction_rows
            )));
        }
        let chunk_rows = if one_transaction {
            rows.max(1)
        } else {
            IMPORT_CHUNK_ROWS.min(self.max_transaction_rows)
        };
        let (sender, mut receiver) = mpsc::channel::<Result<Vec<ParsedRow>>>(2);
        let owned = path.to_path_buf();
        let reader_reason = reason.clone();
        let reader_columns = columns.clone();
        let reader = tokio::task::spawn_blocking(move || {
            read_rows(&owned, &reader_columns, &reader_reason, chunk_rows, &sender);
        });

        let mut report = ImportReport {
            summary: ImportSummary {
                rows,
                committed: true,
                dry_run: options.dry_run,
                ..ImportSummary::default()
            },
            failed_rows: Vec::new(),
            statuses: Vec::with_capacity(rows),
            messages: HashMap::new(),
        };
        // Set when a chunk failed after earlier ones committed: the rest is reported, not applied.
        let mut stopped: Option<Error> = None;
        while let Some(chunk) = receiver.recv().await {
            let chunk = chunk?;
            if let Some(error) = &stopped {
                report.add_not_applied(&chunk, error);
                continue;
            }
            let checked: Vec<Result<CheckedRow>> =
                chunk.iter().map(|row| row.checked.clone()).collect();
            let evaluation = match self.apply_chunk(&source, &checked, &options, actor).await {
                Ok(evaluation) => evaluation,
                // Nothing committed yet: the error is the whole answer, and it is true.
                Err(error) if report.summary.transactions == 0 => return Err(error),
                // Earlier chunks stay committed: say so, and which rows were not applied.
                Err(error) => {
                    report.add_not_applied(&chunk, &error);
                    stopped = Some(error);
                    continue;
                }
            };
            report.summary.transactions += 1;
            report.summary.committed &= evaluation.committed;
            for (row, outcome) in chunk.iter().zip(&evaluation.outcomes) {
                report.add(row, outcome, &columns);
            }
        }
        reader.await.map_err(Error::internal)?;
        Ok(report)
    }

    /// Evaluates one chunk in its own transaction and commits it (or rolls it back on a dry
    /// run). A product created meanwhile by someone else (its SKU now taken) makes the chunk
    /// run once more, finding it.
    async fn apply_chunk(
        &self,
        source: &str,
        rows: &[Result<CheckedRow>],
        options: &ImportOptions,
        actor: &Actor,
    ) -> Result<Evaluation> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let transaction = self.database.begin_write().await?;
            let mut evaluation = evaluate(
                &*transaction,
                source,
                rows,
                options.error_policy,
                actor,
                &self.clock,
            )
            .await?;
            let writes = std::mem::take(&mut evaluation.writes);
            match writes.execute(&*transaction).await {
                Ok(()) => {}
                // Someone created one of these SKUs meanwhile, or two imports crossed (a
                // deadlock, which PostgreSQL breaks): the chunk runs again from the start and
                // finds what is there now.
                Err(error) if retryable(&error) && attempts < CHUNK_ATTEMPTS => {
                    drop(transaction);
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempts)).await;
                    continue;
                }
                Err(error) if error.is_sku_taken() => {
                    return Err(Error::unavailable(
                        "products with these SKUs kept being created meanwhile; try again",
                    ));
                }
                Err(error) => return Err(error),
            }
            if options.dry_run {
                drop(transaction);
            } else {
                let events = std::mem::take(&mut evaluation.events);
                self.events.commit(transaction, events).await?;
            }
            return Ok(evaluation);
        }
    }
}

impl ImportReport {
    fn add(&mut self, row: &ParsedRow, outcome: &RowOutcome, columns: &ColumnMap) {
        let status = match outcome.status {
            SyncRowStatus::Failed => ImportRowStatus::Failed,
            _ if outcome.created => ImportRowStatus::Created,
            SyncRowStatus::Applied => ImportRowStatus::Updated,
            SyncRowStatus::Unchanged | SyncRowStatus::Stale => ImportRowStatus::Unchanged,
        };
        match status {
            ImportRowStatus::Created => self.summary.created += 1,
            ImportRowStatus::Updated => self.summary.updated += 1,
            ImportRowStatus::Unchanged => self.summary.unchanged += 1,
            ImportRowStatus::Failed => self.summary.failed += 1,
        }
        let index = self.statuses.len();
        self.statuses
            .push((status, outcome.error.as_ref().map(Error::code)));
        if self.failed_rows.len() >= MAX_REPORTED_FAILURES {
            return;
        }
        if let Some(error) = &outcome.error {
            let sku = match &row.checked {
                Ok(checked) => checked.sku.as_str().to_owned(),
                Err(_) => String::new(),
            };
            let message = match error {
                Error::NotFound => format!(
                    "line {}: no product has the SKU '{sku}'; give a name to create it",
                    row.line
                ),
                Error::BadUserInput { .. } if error.to_string().starts_with("line ") => {
                    error.to_string()
                }
                other => {
                    // The sync engine's errors name its fields; the file's columns say it better.
                    let column = match other {
                        Error::BadUserInput { field, .. } => {
                            match field.first().map(String::as_str) {
                                Some("locationCode") => Some(3),
                                Some("lot") => Some(5),
                                _ => None,
                            }
                        }
                        Error::InsufficientStock { .. } | Error::StockLimitExceeded => Some(4),
                        _ => None,
                    };
                    let text = describe(other);
                    match column.and_then(|column| Some((column, columns.positions[column]?))) {
                        Some((column, position)) => format!(
                            "line {}, column {} ({}): {text}",
                            row.line,
                            position + 1,
                            COLUMNS[column]
                        ),
                        None => format!("line {}: {text}", row.line),
                    }
                }
            };
            self.messages.insert(index, message.clone());
            self.failed_rows.push(FailedRow {
                line: row.line,
                sku,
                code: error.code().to_owned(),
                error: message,
            });
        }
    }

    /// Reports `chunk`'s rows as not applied because the import stopped with `error`.
    fn add_not_applied(&mut self, chunk: &[ParsedRow], error: &Error) {
        for row in chunk {
            let outcome = RowOutcome {
                status: SyncRowStatus::Failed,
                created: false,
                error: Some(error.clone()),
                note: None,
                stock_before: None,
                stock_after: None,
                crossed_threshold: false,
            };
            let index = self.statuses.len();
            self.add_with_message(
                row,
                &outcome,
                index,
                format!(
                    "line {}: not applied: the import stopped here ({error}); the rows before were applied",
                    row.line
                ),
            );
        }
    }

    fn add_with_message(
        &mut self,
        row: &ParsedRow,
        outcome: &RowOutcome,
        index: usize,
        message: String,
    ) {
        self.summary.failed += 1;
        let code = outcome.error.as_ref().map_or("INTERNAL", Error::code);
        self.statuses.push((ImportRowStatus::Failed, Some(code)));
        if self.failed_rows.len() >= MAX_REPORTED_FAILURES {
            return;
        }
        self.messages.insert(index, message.clone());
        self.failed_rows.push(FailedRow {
            line: row.line,
            sku: row
                .checked
                .as_ref()
                .map(|checked| checked.sku.as_str().to_owned())
                .unwrap_or_default(),
            code: code.to_owned(),
            error: message,
        });
    }

    /// Writes the CSV report: the input file's rows as they were, each followed by its
    /// `status,error_code,error` (short rows padded to the header's width), into `out`.
    pub fn write_csv(&self, input: &Path, out: &mut impl Write) -> Result<()> {
        let mut reader = csv_reader(File::open(input).map_err(Error::internal)?);
        let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(out);
        let header = reader.headers().map_err(Error::internal)?.clone();
        let width = header.len();
        let mut heading: Vec<String> = header.iter().map(str::to_owned).collect();
        if let Some(first) = heading.first_mut() {
            *first = first.trim_start_matches('\u{feff}').to_owned();
        }
        heading.extend(REPORT_COLUMNS.iter().map(|column| (*column).to_owned()));
        writer.write_record(&heading).map_err(Error::internal)?;
        let mut record = csv::StringRecord::new();
        let mut index = 0;
        while reader.read_record(&mut record).map_err(Error::internal)? {
            if is_blank(&record) {
                continue;
            }
            let (status, code) = self
                .statuses
                .get(index)
                .copied()
                .unwrap_or((ImportRowStatus::Failed, Some("INTERNAL")));
            let message = self.messages.get(&index).map_or_else(
                || {
                    if code.is_some() {
                        format!("(only the first {MAX_REPORTED_FAILURES} failures are described)")
                    } else {
                        String::new()
                    }
                },
                Clone::clone,
            );
            index += 1;
            let mut fields: Vec<&str> = record.iter().collect();
            fields.resize(width.max(fields.len()), "");
            fields.push(status.as_str());
            fields.push(code.unwrap_or(""));
            fields.push(&message);
            writer.write_record(&fields).map_err(Error::internal)?;
        }
        writer.flush().map_err(Error::internal)?;
        Ok(())
    }
}

/// Finds the line a record starts on. The csv reader's own record positions point at the line
/// break before a record when lines end in CRLF (and skipped blank lines shift them further),
/// so lines are counted here, on a second reader of the same file that follows the first.
struct LineFinder {
    bytes: std::io::Bytes<BufReader<File>>,
    /// Bytes consumed so far.
    offset: u64,
    /// Line breaks among them.
    breaks: u64,
    /// The first byte after them, when it was read ahead.
    ahead: Option<u8>,
    /// The last byte counted was a `\r`.
    after_cr: bool,
}

impl LineFinder {
    fn open(path: &Path) -> Result<Self> {
        use std::io::Read;
        let file = File::open(path).map_err(Error::internal)?;
        Ok(Self {
            bytes: BufReader::new(file).bytes(),
            offset: 0,
            breaks: 0,
            ahead: None,
            after_cr: false,
        })
    }

    /// Counts a line break: `\n`, or a `\r` not followed by `\n` (as the csv reader ends
    /// records at either).
    fn count(&mut self, byte: u8) {
        match byte {
            b'\n' => self.breaks += 1,
            b'\r' => self.after_cr = true,
            _ => {}
        }
        if byte != b'\r' && self.after_cr {
            self.after_cr = false;
            if byte != b'\n' {
                self.breaks += 1;
            }
        }
    }

    fn next_byte(&mut self) -> Result<Option<u8>> {
        if let Some(byte) = self.ahead.take() {
            return Ok(Some(byte));
        }
        match self.bytes.next() {
            Some(byte) => Ok(Some(byte.map_err(Error::internal)?)),
            None => Ok(None),
        }
    }

    /// The line (from 1) of the first character at or after byte `start` that is not a line
    /// break. `start` never goes back.
    fn line_of(&mut self, start: u64) -> Result<u64> {
        while self.offset < start {
            match self.next_byte()? {
                Some(byte) => {
                    self.offset += 1;
                    self.count(byte);
                }
                None => break,
            }
        }
        loop {
            match self.next_byte()? {
                Some(byte @ (b'\r' | b'\n')) => {
                    self.offset += 1;
                    self.count(byte);
                }
                Some(byte) => {
                    self.ahead = Some(byte);
                    // A lone `\r` just before is a line break not counted yet.
                    return Ok(self.breaks + 1 + u64::from(self.after_cr));
                }
                None => return Ok(self.breaks + 1),
            }
        }
    }
}

/// A CSV reader as imports read files: RFC 4180, a header row, rows of any width (a row of the
/// wrong width fails alone).
fn csv_reader<R: std::io::Read>(input: R) -> csv::Reader<BufReader<R>> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::new(input))
}

/// A row with nothing in it (a trailing empty line of a spreadsheet export).
fn is_blank(record: &csv::StringRecord) -> bool {
    record.iter().all(|field| field.trim().is_empty())
}

/// The first pass: the header's columns and how many data rows there are. Fails on anything
/// that makes the file unreadable as a whole.
fn check_file(path: &Path) -> Result<(ColumnMap, usize)> {
    let file = File::open(path).map_err(Error::internal)?;
    let mut reader = csv_reader(file);
    let columns = column_map(&mut reader, path)?;
    let mut lines = LineFinder::open(path)?;
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    let mut last_start = 0;
    let mut last_start_byte = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => return Err(csv_error(&error, &mut lines)),
        }
        last_start_byte = record.position().map_or(0, csv::Position::byte);
        last_start = lines.line_of(last_start_byte)?;
        if !is_blank(&record) {
            rows += 1;
        }
    }
    // A quote opened and never closed runs to the end of the file: the csv format shows it
    // only as a last record that ends inside quotes.
    let mut file = reader.into_inner().into_inner();
    if ends_inside_quotes(&mut file, last_start_byte)? {
        return Err(Error::bad_input(format!(
            "line {last_start}: a quoted field is not closed before the end of the file"
        )));
    }
    Ok((columns, rows))
}

/// Whether the text from byte `start` (a record's start) to the end of the file ends inside a
/// quoted field, by RFC 4180: a quote opens a field only at its start, `""` inside quotes is a
/// quote, and any other quote closes the field.
fn ends_inside_quotes(file: &mut File, start: u64) -> Result<bool> {
    use std::io::Read;
    file.seek(SeekFrom::Start(start)).map_err(Error::internal)?;
    let mut at_field_start = true;
    let mut in_quotes = false;
    // Inside quotes, a quote was just seen: it closes the field unless another follows.
    let mut quote_pending = false;
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(Error::internal)?;
        if read == 0 {
            break;
        }
        for &byte in &buffer[..read] {
            if in_quotes {
                if quote_pending {
                    quote_pending = false;
                    if byte == b'"' {
                        continue;
                    }
                    in_quotes = false;
                } else {
                    quote_pending = byte == b'"';
                    continue;
                }
            }
            match byte {
                b',' | b'\n' | b'\r' => at_field_start = true,
                b'"' if at_field_start => {
                    in_quotes = true;
                    at_field_start = false;
                }
                _ => at_field_start = false,
            }
        }
    }
    Ok(in_quotes && !quote_pending)
}

/// The header's columns, by name or alias.
fn column_map<R: std::io::Read>(reader: &mut csv::Reader<R>, path: &Path) -> Result<ColumnMap> {
    let header = match reader.headers() {
        Ok(header) => header.clone(),
        Err(error) => return Err(csv_error(&error, &mut LineFinder::open(path)?)),
    };
    if header.is_empty() || is_blank(&header) {
        return Err(Error::bad_input(
            "line 1: the file needs a header row naming its columns (sku,name,reorder_level,location,on_hand,lot,expires_on)",
        ));
    }
    let mut positions = [None; 7];
    for (position, name) in header.iter().enumerate() {
        let normal = name
            .trim_start_matches('\u{feff}')
            .trim()
            .to_lowercase()
            .replace([' ', '-'], "_");
        let column = column_of(&normal).ok_or_else(|| {
            Error::bad_input(format!(
                "line 1, column {}: unknown column '{}' (the columns are {})",
                position + 1,
                name.trim(),
                COLUMNS.join(", ")
            ))
        })?;
        if positions[column].is_some() {
            return Err(Error::bad_input(format!(
                "line 1, column {}: column '{}' appears twice",
                position + 1,
                COLUMNS[column]
            )));
        }
        positions[column] = Some(position);
    }
    if positions[0].is_none() {
        return Err(Error::bad_input("line 1: the file has no sku column"));
    }
    Ok(ColumnMap {
        positions,
        width: header.len(),
    })
}

/// Which of [`COLUMNS`] a normalized header names.
fn column_of(header: &str) -> Option<usize> {
    let column = match header {
        "sku" | "product_sku" | "item_sku" | "article" | "item_code" => "sku",
        "name" | "product" | "product_name" | "title" | "description" => "name",
        "reorder_level" | "reorder_point" | "reorder" | "min_stock" | "minimum_stock" => {
            "reorder_level"
        }
        "location" | "location_code" | "warehouse" | "store" => "location",
        "on_hand" | "onhand" | "quantity" | "qty" | "stock" | "count" => "on_hand",
        "lot" | "lot_code" | "batch" | "batch_code" => "lot",
        "expires_on" | "expiry" | "expiry_date" | "expires" | "best_before" | "use_by" => {
            "expires_on"
        }
        _ => return None,
    };
    COLUMNS.iter().position(|known| *known == column)
}

/// A csv error, as the file's fault, naming where.
fn csv_error(error: &csv::Error, lines: &mut LineFinder) -> Error {
    let place = match error
        .position()
        .map(|position| lines.line_of(position.byte()))
    {
        Some(Ok(line)) => format!("line {line}"),
        _ => "the file".to_owned(),
    };
    match error.kind() {
        csv::ErrorKind::Utf8 { err, .. } => Error::bad_input(format!(
            "{place}, column {}: the text is not UTF-8",
            err.field() + 1
        )),
        csv::ErrorKind::Io(_) => Error::internal("the uploaded file could not be read"),
        _ => Error::bad_input(format!("{place}: {error}")),
    }
}

/// The second pass: reads the rows, checks each on its own, and sends them in chunks.
fn read_rows(
    path: &PathBuf,
    columns: &ColumnMap,
    reason: &Reason,
    chunk_rows: usize,
    sender: &mpsc::Sender<Result<Vec<ParsedRow>>>,
) {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) => {
            let _ = sender.blocking_send(Err(Error::internal(error)));
            return;
        }
    };
    let mut reader = csv_reader(file);
    let mut lines = match LineFinder::open(path) {
        Ok(lines) => lines,
        Err(error) => {
            let _ = sender.blocking_send(Err(error));
            return;
        }
    };
    // The header was checked by the first pass.
    if let Err(error) = reader.headers() {
        let _ = sender.blocking_send(Err(csv_error(&error, &mut lines)));
        return;
    }
    let mut chunk = Vec::with_capacity(chunk_rows.min(IMPORT_CHUNK_ROWS));
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                let _ = sender.blocking_send(Err(csv_error(&error, &mut lines)));
                return;
            }
        }
        if is_blank(&record) {
            continue;
        }
        let line = match lines.line_of(record.position().map_or(0, csv::Position::byte)) {
            Ok(line) => line,
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                return;
            }
        };
        chunk.push(ParsedRow {
            line,
            checked: check_record(&record, line, columns, reason),
        });
        if chunk.len() == chunk_rows {
            // The receiver is gone only when the import stopped: nothing more to do.
            if sender
                .blocking_send(Ok(std::mem::take(&mut chunk)))
                .is_err()
            {
                return;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = sender.blocking_send(Ok(chunk));
    }
}

/// Checks one record's values; errors name the line and column.
fn check_record(
    record: &csv::StringRecord,
    line: u64,
    columns: &ColumnMap,
    reason: &Reason,
) -> Result<CheckedRow> {
    if record.len() != columns.width {
        return Err(Error::bad_input(format!(
            "line {line}: the row has {} fields, the header has {}",
            record.len(),
            columns.width
        )));
    }
    let at = |column: usize, problem: String| {
        let position = columns.positions[column].map_or(0, |position| position + 1);
        Error::bad_field(
            COLUMNS[column],
            format!(
                "line {line}, column {position} ({}): {problem}",
                COLUMNS[column]
            ),
        )
    };
    let text = |column: usize| columns.field(record, column);
    let sku = Sku::parse(text(0).unwrap_or_default())
        .map_err(|_| at(0, "a SKU of 1 to 64 characters is required".to_owned()))?;
    let name = text(1)
        .map(|name| ProductName::parse(name).map_err(|error| at(1, error.to_string())))
        .transpose()?;
    let reorder_level = text(2)
        .map(|raw| whole_number(raw).map_err(|problem| at(2, problem)))
        .transpose()?;
    let location = LocationCode::parse(text(3).unwrap_or("MAIN")).map_err(|_| {
        at(
            3,
            format!(
                "a location code of 1 to {} characters",
                LocationCode::MAX_CHARS
            ),
        )
    })?;
    let on_hand = text(4)
        .map(|raw| whole_number(raw).map_err(|problem| at(4, problem)))
        .transpose()?;
    let expires_on = text(6)
        .map(|raw| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .filter(|day| {
                    raw.len() == 10
                        && raw.as_bytes()[0].is_ascii_digit()
                        && (1..=9999).contains(&chrono::Datelike::year(day))
                })
                .ok_or_else(|| at(6, format!("'{raw}' is not a date (YYYY-MM-DD)")))
        })
        .transpose()?;
    let lot = match text(5) {
        Some(code) => Some(LotInput {
            code: LotCode::parse(code).map_err(|error| at(5, error.to_string()))?,
            expires_on,
        }),
        None if expires_on.is_some() => {
            return Err(at(6, "an expiry date needs a lot".to_owned()));
        }
        None => None,
    };
    let catalogue = (name.is_some() || reorder_level.is_some()).then_some(Catalogue {
        name,
        reorder_level,
    });
    Ok(CheckedRow {
        sku,
        location,
        change: on_hand.map(RowChange::SetOnHand),
        lot,
        sequence: None,
        reason: reason.clone(),
        catalogue,
    })
}

/// A count or level: a whole number from 0 to [`MAX_STOCK`].
fn whole_number(raw: &str) -> std::result::Result<i64, String> {
    let value: i64 = raw
        .parse()
        .map_err(|_| format!("'{raw}' is not a whole number"))?;
    if !(0..=MAX_STOCK).contains(&value) {
        return Err(format!("{value} is outside 0 to {MAX_STOCK}"));
    }
    Ok(value)
}
