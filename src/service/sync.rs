//! Warehouse sync: many stock rows from one source (a warehouse, an ERP, a CSV file) applied in
//! one transaction, each row either setting a bucket's on-hand (`onHand`, an `ADJUSTMENT`
//! movement) or changing it (`delta`, an `ADD` or `REDUCE` movement).
//!
//! How a call runs:
//! - Rows are checked one by one; a bad row fails alone (its result says why) and never fails
//!   the call. Only the call itself can be refused: a bad source, too many rows, a bad key.
//! - Locations named by the rows are locked for share (so none is archived meanwhile), then the
//!   products in ascending id order (so two syncs over overlapping products, in any row order,
//!   cannot deadlock), each with its buckets.
//! - Rows are evaluated in input order against the locked state, in memory. A row whose
//!   `sourceSequence` is not newer than the last one applied from its source to its bucket
//!   (product, location, lot) is `STALE`. Under `REJECT_EVERYTHING` any failed row means nothing is written.
//! - The writes go out together, with the new sequences; events follow the commit.
//!
//! A dry run is this same code: it evaluates, writes, and then rolls back instead of
//! committing, so its result is what the real call returns on the same state.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::buckets::{Allocation, LotInput, Source};
use super::idempotency::{IdempotentRequest, Replayable, peek, run_write};
use super::locations::main_location_id;
use super::locked::{INSERT_CHUNK, LockedProduct, MovementNote, columns};
use super::products::StockStatus;
use super::statements::Writes;
use super::{Actor, now};
use crate::clock::Clock;
use crate::database::Database;
use crate::domain::{
    IdempotencyKey, LocationCode, LotCode, MAX_STOCK, ProductName, Reason, Sku, fold_case,
};
use crate::entity::stock_movement::MovementKind;
use crate::entity::{location, product, sync_sequence};
use crate::error::{Error, Result};
use crate::events::{EventBus, StockEvent};

/// The most rows one call takes unless configured otherwise.
pub const DEFAULT_MAX_SYNC_ROWS: usize = 10_000;

/// The largest `sourceSequence`: a GraphQL `Int`, so both transports take the same ones.
pub const MAX_SEQUENCE: i64 = i32::MAX as i64;

/// The longest source name accepted, in characters.
pub const MAX_SOURCE_CHARS: usize = 64;

/// What happens to the good rows when some fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncErrorPolicy {
    /// Any failed row: nothing is applied.
    #[default]
    RejectEverything,
    /// Good rows are applied, failed ones reported.
    RejectFailedRows,
}

/// A lot named by a sync row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncLot {
    /// The lot's code.
    pub code: String,
    /// Its last good day; none for a lot that never expires.
    #[serde(default)]
    pub expires_on: Option<NaiveDate>,
}

/// One row as the source sent it. Checked by the sync itself, so a bad row fails alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRow {
    /// The product's SKU, in any case.
    pub sku: String,
    /// The location's code, in any case; `MAIN` when `None`.
    #[serde(default)]
    pub location_code: Option<String>,
    /// Set the bucket's on-hand to this (exactly one of `on_hand` and `delta`).
    #[serde(default)]
    pub on_hand: Option<i64>,
    /// Change the bucket's on-hand by this.
    #[serde(default)]
    pub delta: Option<i64>,
    /// The lot; the location's lot-less stock when `None`.
    #[serde(default)]
    pub lot: Option<SyncLot>,
    /// The source's sequence number for this row; rows without one are never stale.
    #[serde(default)]
    pub source_sequence: Option<i64>,
    /// Why, for the ledger (after the source's name).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A sync call as a transport receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    /// Who sends the rows (`WH-2`, `erp`): 1 to 64 characters.
    pub source: String,
    /// The rows, applied in this order.
    pub rows: Vec<SyncRow>,
    /// What happens to the good rows when some fail.
    #[serde(default)]
    pub error_policy: SyncErrorPolicy,
    /// Evaluate and roll back: nothing is written, no event is sent.
    #[serde(default)]
    pub dry_run: bool,
    /// Makes a retried call safe.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What became of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncRowStatus {
    /// The row changed the bucket.
    Applied,
    /// The bucket already held what the row asked for.
    Unchanged,
    /// The row's sequence is not newer than the last one applied: nothing changed.
    Stale,
    /// The row was refused (see its code and message).
    Failed,
}

/// One row's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRowResult {
    /// The row's position in the call, from 0.
    pub index: usize,
    /// The SKU as sent.
    pub sku: String,
    /// The location code as sent (`MAIN` when omitted).
    pub location_code: String,
    /// What became of the row.
    pub status: SyncRowStatus,
    /// The error code of a failed row.
    pub code: Option<String>,
    /// Why a row failed or was stale.
    pub message: Option<String>,
    /// The bucket's on-hand before the row, when the product and location are known.
    pub stock_before: Option<i64>,
    /// The bucket's on-hand after the row.
    pub stock_after: Option<i64>,
    /// Whether the row took the product from `IN_STOCK` to `LOW_STOCK`.
    pub crossed_threshold: bool,
}

/// A call's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// This result's id: each call (and each dry run) gets its own; a replay answers the
    /// original's.
    pub id: Uuid,
    /// Whether the changes were committed (on a dry run: whether they would be).
    pub committed: bool,
    /// Whether this was a dry run (then nothing was written).
    pub dry_run: bool,
    /// Rows that changed stock.
    pub applied: usize,
    /// Rows that found the bucket as asked.
    pub unchanged: usize,
    /// Rows older than what was applied already.
    pub stale: usize,
    /// Rows refused.
    pub failed: usize,
    /// Every row's result, in input order.
    pub rows: Vec<SyncRowResult>,
}

impl Replayable for SyncResult {
    type Stored = SyncResult;

    fn to_stored(&self) -> SyncResult {
        self.clone()
    }

    fn from_stored(stored: SyncResult) -> Self {
        stored
    }
}

/// Applies sync calls.
#[derive(Clone, Debug)]
pub struct SyncService {
    database: Database,
    events: EventBus,
    clock: Clock,
    max_rows: usize,
}

/// A row that passed its checks.
#[derive(Clone, Debug)]
pub(super) struct CheckedRow {
    pub sku: Sku,
    pub location: LocationCode,
    /// What the row asks of its bucket; `None` when it changes no stock (an import row that
    /// only names or renames a product).
    pub change: Option<RowChange>,
    pub lot: Option<LotInput>,
    pub sequence: Option<i64>,
    pub reason: Reason,
    /// The product's name and reorder level, as an import row gives them: a row with a name
    /// creates its product when no live product has the SKU.
    pub catalogue: Option<Catalogue>,
}

/// What a row asks of its bucket.
#[derive(Clone, Copy, Debug)]
pub(super) enum RowChange {
    SetOnHand(i64),
    Delta(i64),
}

/// The catalogue part of an import row.
#[derive(Clone, Debug, Default)]
pub(super) struct Catalogue {
    pub name: Option<ProductName>,
    pub reorder_level: Option<i64>,
}

/// What became of one row, before a transport shapes it.
#[derive(Clone, Debug)]
pub(super) struct RowOutcome {
    pub status: SyncRowStatus,
    /// The row created its product.
    pub created: bool,
    /// Why a row failed.
    pub error: Option<Error>,
    /// Why a row was stale.
    pub note: Option<String>,
    pub stock_before: Option<i64>,
    pub stock_after: Option<i64>,
    pub crossed_threshold: bool,
}

/// What a sequence is kept for: one bucket (product, location, lot code; empty for the
/// lot-less stock).
type SequenceKey = (Uuid, Uuid, String);

/// A call that passed its checks.
struct CheckedCall {
    source: String,
    rows: Vec<(SyncRow, Result<CheckedRow>)>,
    error_policy: SyncErrorPolicy,
}

/// What evaluating rows produced: each row's outcome, whether the rows commit, and (when they
/// do) the writes and events.
pub(super) struct Evaluation {
    pub outcomes: Vec<RowOutcome>,
    pub committed: bool,
    pub writes: Writes,
    pub events: Vec<StockEvent>,
}

impl SyncService {
    pub(super) fn new(database: Database, events: EventBus, clock: Clock) -> Self {
        Self {
            database,
            events,
            clock,
            max_rows: DEFAULT_MAX_SYNC_ROWS,
        }
    }

    /// The same service, taking at most `max_rows` rows per call.
    #[must_use]
    pub fn with_max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = max_rows;
        self
    }

    /// Applies a sync call (or, with `dry_run`, evaluates it and rolls back). Per-row problems
    /// are row results; the call itself fails only with `BAD_USER_INPUT` (source, row count,
    /// key), `IDEMPOTENCY_KEY_REUSED`, or a failure of the system.
    pub async fn sync(&self, request: SyncRequest, actor: &Actor) -> Result<SyncResult> {
        let key = IdempotencyKey::parse(request.idempotency_key.as_deref())
            .map_err(|error| error.on_field("idempotencyKey"))?;
        let dry_run = request.dry_run;
        let call = self.check(request)?;
        let fingerprint = fingerprint(&call);
        let clock = self.clock.clone();
        let idempotency = key.map(|key| IdempotentRequest {
            key,
            operation: "syncStock",
            fingerprint,
        });
        if dry_run {
            let transaction = self.database.begin_write().await?;
            // A call already made with this key would replay: so does its dry run.
            if let Some(request) = &idempotency
                && let Some(outcome) =
                    peek::<SyncResult>(&transaction, &actor.subject, request).await?
            {
                let mut result = outcome?;
                result.dry_run = true;
                return Ok(result);
            }
            let evaluation = evaluate_call(&*transaction, &call, actor, &clock).await?;
            let mut result = sync_result(&call, evaluation.committed, &evaluation.outcomes);
            evaluation.writes.execute(&*transaction).await?;
            // Dropping the transaction rolls every write back; the events are never sent.
            drop(transaction);
            result.dry_run = true;
            return Ok(result);
        }
        let author = actor.clone();
        run_write(
            &self.database,
            &self.events,
            actor,
            idempotency.as_ref(),
            move |transaction| {
                Box::pin(async move {
                    let evaluation = evaluate_call(transaction, &call, &author, &clock).await?;
                    let result = sync_result(&call, evaluation.committed, &evaluation.outcomes);
                    evaluation.writes.execute(transaction).await?;
                    Ok((result, evaluation.events))
                })
            },
        )
        .await
    }

    /// Checks the call as a whole and each row on its own.
    fn check(&self, request: SyncRequest) -> Result<CheckedCall> {
        let source = request.source.trim().to_owned();
        let source_chars = source.chars().count();
        if source.is_empty()
            || source_chars > MAX_SOURCE_CHARS
            || source.chars().any(char::is_control)
        {
            return Err(Error::bad_field(
                "source",
                format!(
                    "source must be 1 to {MAX_SOURCE_CHARS} characters without control characters"
                ),
            ));
        }
        if request.rows.len() > self.max_rows {
            return Err(Error::bad_field(
                "rows",
                format!(
                    "a sync takes at most {} rows (got {}); send the rest in further calls",
                    self.max_rows,
                    request.rows.len()
                ),
            ));
        }
        let rows = request
            .rows
            .into_iter()
            .map(|row| {
                let checked = check_row(&source, &row);
                (row, checked)
            })
            .collect();
        Ok(CheckedCall {
            source,
            rows,
            error_policy: request.error_policy,
        })
    }
}

/// The SHA-256 of the call as checked (all but `dryRun` and the key): what the rows mean, not
/// how they were spelled, so the same call over GraphQL and REST, with defaults written out
/// or left out and codes in any case, is the same request. The stored fingerprint stays small
/// however many rows the call had.
fn fingerprint(call: &CheckedCall) -> String {
    let rows: Vec<serde_json::Value> = call
        .rows
        .iter()
        .map(|(raw, checked)| match checked {
            Ok(row) => serde_json::json!([
                row.sku.key(),
                row.location.key(),
                match row.change {
                    Some(RowChange::SetOnHand(count)) => serde_json::json!({ "onHand": count }),
                    Some(RowChange::Delta(delta)) => serde_json::json!({ "delta": delta }),
                    None => serde_json::Value::Null,
                },
                row.lot.as_ref().map(|lot| lot.code.as_str()),
                row.lot.as_ref().and_then(|lot| lot.expires_on),
                row.sequence,
                row.reason.as_str(),
            ]),
            // A row that fails its checks is the same request only when it is the same row.
            Err(_) => serde_json::json!({ "unchecked": raw }),
        })
        .collect();
    let arguments = serde_json::json!([fold_case(&call.source), call.error_policy, rows]);
    Sha256::digest(arguments.to_string().as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Checks one row on its own: the values, not whether its product or location exist.
fn check_row(source: &str, row: &SyncRow) -> Result<CheckedRow> {
    let sku = Sku::parse(&row.sku)?;
    let location_code = row.location_code.as_deref().unwrap_or("MAIN");
    let location = LocationCode::parse(location_code).map_err(|_| {
        Error::bad_field(
            "locationCode",
            format!(
                "locationCode must be 1 to {} characters without control characters",
                LocationCode::MAX_CHARS
            ),
        )
    })?;
    let change = match (row.on_hand, row.delta) {
        (Some(on_hand), None) => {
            if !(0..=MAX_STOCK).contains(&on_hand) {
                return Err(Error::bad_field(
                    "onHand",
                    format!("onHand must be 0 to {MAX_STOCK} (got {on_hand})"),
                ));
            }
            RowChange::SetOnHand(on_hand)
        }
        (None, Some(delta)) => {
            if !(-MAX_STOCK..=MAX_STOCK).contains(&delta) {
                return Err(Error::bad_field(
                    "delta",
                    format!("delta must be -{MAX_STOCK} to {MAX_STOCK} (got {delta})"),
                ));
            }
            RowChange::Delta(delta)
        }
        _ => {
            return Err(Error::bad_input(
                "a row gives exactly one of onHand (the count) or delta (the change)",
            ));
        }
    };
    let lot = row
        .lot
        .as_ref()
        .map(|lot| {
            if let Some(day) = lot.expires_on
                && !(1..=9999).contains(&day.year())
            {
                return Err(Error::bad_field(
                    "lot",
                    format!("expiresOn must be a date from year 1 to 9999 (got {day})"),
                ));
            }
            Ok::<_, Error>(LotInput {
                code: LotCode::parse(&lot.code)?,
                expires_on: lot.expires_on,
            })
        })
        .transpose()?;
    if let Some(sequence) = row.source_sequence
        && !(0..=MAX_SEQUENCE).contains(&sequence)
    {
        return Err(Error::bad_field(
            "sourceSequence",
            format!("sourceSequence must be 0 to {MAX_SEQUENCE} (got {sequence})"),
        ));
    }
    let note = match row.reason.as_deref().map(str::trim) {
        Some(reason) if !reason.is_empty() => format!("{source}: {reason}"),
        _ => source.to_owned(),
    };
    let reason = Reason::parse(Some(&note))?
        .ok_or_else(|| Error::internal("a sync's reason came out empty"))?;
    Ok(CheckedRow {
        sku,
        location,
        change: Some(change),
        lot,
        sequence: row.source_sequence,
        reason,
        catalogue: None,
    })
}

/// A failed row's message: the error's, with the figures of a shortage.
pub(super) fn describe(error: &Error) -> String {
    match error {
        Error::InsufficientStock {
            available,
            requested,
        } => format!("{error} ({available} available, {requested} needed)"),
        other => other.to_string(),
    }
}

/// Evaluates a sync call's rows.
async fn evaluate_call(
    transaction: &impl ConnectionTrait,
    call: &CheckedCall,
    actor: &Actor,
    clock: &Clock,
) -> Result<Evaluation> {
    let rows: Vec<Result<CheckedRow>> = call
        .rows
        .iter()
        .map(|(_, checked)| checked.clone())
        .collect();
    evaluate(
        transaction,
        &call.source,
        &rows,
        call.error_policy,
        actor,
        clock,
    )
    .await
}

/// A sync call's result, from its rows' outcomes.
fn sync_result(call: &CheckedCall, committed: bool, outcomes: &[RowOutcome]) -> SyncResult {
    let mut result = SyncResult {
        id: Uuid::now_v7(),
        committed,
        dry_run: false,
        applied: 0,
        unchanged: 0,
        stale: 0,
        failed: 0,
        rows: Vec::with_capacity(call.rows.len()),
    };
    for (index, ((raw, _), outcome)) in call.rows.iter().zip(outcomes).enumerate() {
        match outcome.status {
            SyncRowStatus::Applied => result.applied += 1,
            SyncRowStatus::Unchanged => result.unchanged += 1,
            SyncRowStatus::Stale => result.stale += 1,
            SyncRowStatus::Failed => result.failed += 1,
        }
        result.rows.push(SyncRowResult {
            index,
            sku: raw.sku.clone(),
            location_code: raw
                .location_code
                .clone()
                .unwrap_or_else(|| "MAIN".to_owned()),
            status: outcome.status,
            code: outcome.error.as_ref().map(|error| error.code().to_owned()),
            message: outcome
                .error
                .as_ref()
                .map(describe)
                .or_else(|| outcome.note.clone()),
            stock_before: outcome.stock_before,
            stock_after: outcome.stock_after,
            crossed_threshold: outcome.crossed_threshold,
        });
    }
    result
}

/// Reads and locks what the rows name, evaluates every row in input order, and, when the rows
/// commit, gathers their writes and events. Writes nothing itself.
///
/// Rows that would create a product (import rows with a name, for a SKU no live product has)
/// need location `MAIN`, which always exists.
pub(super) async fn evaluate(
    transaction: &impl ConnectionTrait,
    source: &str,
    rows: &[Result<CheckedRow>],
    error_policy: SyncErrorPolicy,
    actor: &Actor,
    clock: &Clock,
) -> Result<Evaluation> {
    let checked: Vec<&CheckedRow> = rows.iter().filter_map(|row| row.as_ref().ok()).collect();
    let mut locations = lock_locations(transaction, &checked).await?;
    let mut product_ids = find_products(transaction, &checked).await?;
    let ids: Vec<Uuid> = product_ids.values().copied().collect();
    let mut products: HashMap<Uuid, LockedProduct> =
        LockedProduct::lock_many_live(transaction, &ids, clock)
            .await?
            .into_iter()
            .map(|locked| (locked.product.id, locked))
            .collect();
    // Sources are names people type: `WH-2` and `wh-2` are one sequence.
    let source_key = fold_case(source.trim());
    let mut last_sequences = read_sequences(transaction, &source_key, &ids).await?;
    if checked.iter().any(|row| row.catalogue.is_some()) && !locations.contains_key(MAIN_KEY) {
        let main = location::Entity::find_by_id(main_location_id())
            .lock_shared()
            .one(transaction)
            .await?
            .ok_or_else(|| Error::internal("location MAIN is missing"))?;
        locations.insert(MAIN_KEY.to_owned(), main);
    }
    let today = clock.today();

    let mut engine = Engine {
        product_ids: &mut product_ids,
        locations: &locations,
        products: &mut products,
        last_sequences: &mut last_sequences,
        new_sequences: HashMap::new(),
        actor,
        today,
    };
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        let mut outcome = RowOutcome {
            status: SyncRowStatus::Failed,
            created: false,
            error: None,
            note: None,
            stock_before: None,
            stock_after: None,
            crossed_threshold: false,
        };
        let status = match row {
            Err(error) => Err(error.clone()),
            Ok(row) => engine.apply(row, &mut outcome),
        };
        match status {
            Ok(status) => outcome.status = status,
            Err(error) => {
                outcome.status = SyncRowStatus::Failed;
                outcome.error = Some(error);
            }
        }
        outcomes.push(outcome);
    }
    let new_sequences = std::mem::take(&mut engine.new_sequences);
    let failed = outcomes
        .iter()
        .any(|outcome| outcome.status == SyncRowStatus::Failed);
    let committed = !(error_policy == SyncErrorPolicy::RejectEverything && failed);

    let mut writes = Writes::default();
    let mut events = Vec::new();
    if committed {
        let mut locked: Vec<LockedProduct> = products.into_values().collect();
        locked.sort_unstable_by_key(|locked| locked.product.id);
        for product in locked {
            events.extend(product.save_into(&mut writes));
        }
        push_sequences(&mut writes, &source_key, new_sequences);
    }
    Ok(Evaluation {
        outcomes,
        committed,
        writes,
        events,
    })
}

/// The case-folded code of location `MAIN`.
const MAIN_KEY: &str = "main";

/// The state rows are evaluated against, changed in memory row by row.
struct Engine<'a> {
    product_ids: &'a mut HashMap<String, Uuid>,
    locations: &'a HashMap<String, location::Model>,
    products: &'a mut HashMap<Uuid, LockedProduct>,
    last_sequences: &'a mut HashMap<SequenceKey, i64>,
    /// The newest sequence applied per (product, location) by these rows: stored at the end.
    new_sequences: HashMap<SequenceKey, i64>,
    actor: &'a Actor,
    today: NaiveDate,
}

impl Engine<'_> {
    /// Evaluates one checked row; fills in its stock figures and returns its status (or the
    /// error that fails it, having changed nothing).
    fn apply(&mut self, row: &CheckedRow, outcome: &mut RowOutcome) -> Result<SyncRowStatus> {
        let sku_key = row.sku.key();
        let existing = self.product_ids.get(&sku_key).copied().filter(|id| {
            self.products
                .get(id)
                .is_some_and(|locked| locked.product.sku_key == sku_key)
        });
        let location = self.locations.get(&row.location.key());
        let Some(id) = existing else {
            // No live product has the SKU: a row with a name creates it.
            let Some(name) = row.catalogue.as_ref().and_then(|part| part.name.as_ref()) else {
                return Err(Error::NotFound);
            };
            let main = self
                .locations
                .get(MAIN_KEY)
                .ok_or_else(|| Error::internal("location MAIN was not read"))?;
            let reorder_level = row
                .catalogue
                .as_ref()
                .and_then(|part| part.reorder_level)
                .unwrap_or(0);
            let mut created =
                LockedProduct::create(&row.sku, name, reorder_level, main, self.actor, self.today);
            if let Some(change) = row.change {
                let location = usable(location, row)?;
                self.change_stock(&mut created, row, change, location, outcome)?;
                self.record_sequence(&created, location, row);
            }
            outcome.created = true;
            self.product_ids.insert(sku_key, created.product.id);
            self.products.insert(created.product.id, created);
            return Ok(SyncRowStatus::Applied);
        };
        let mut locked = self
            .products
            .remove(&id)
            .ok_or_else(|| Error::internal("a locked product went missing"))?;
        let status = self.apply_to(&mut locked, row, location, outcome);
        self.products.insert(id, locked);
        status
    }

    /// [`Engine::apply`] for a product that exists.
    fn apply_to(
        &mut self,
        locked: &mut LockedProduct,
        row: &CheckedRow,
        location: Option<&location::Model>,
        outcome: &mut RowOutcome,
    ) -> Result<SyncRowStatus> {
        let status_before = StockStatus::of(&locked.product);
        let mut status = SyncRowStatus::Unchanged;
        if let Some(change) = row.change {
            let location = usable(location, row)?;
            let lot_code = row.lot.as_ref().map_or("", |lot| lot.code.as_str());
            let before = locked.buckets.on_hand(location.id, lot_code);
            outcome.stock_before = Some(before);
            outcome.stock_after = Some(before);
            let sequence_key = (locked.product.id, location.id, lot_code.to_owned());
            if let Some(sequence) = row.sequence
                && let Some(&last) = self.last_sequences.get(&sequence_key)
                && sequence <= last
            {
                outcome.note = Some(format!(
                    "sourceSequence {sequence} is not newer than {last}, the last one applied to this product's stock in this location and lot"
                ));
                return Ok(SyncRowStatus::Stale);
            }
            if self.change_stock(locked, row, change, location, outcome)? {
                status = SyncRowStatus::Applied;
            }
            self.record_sequence(locked, location, row);
        }
        if let Some(catalogue) = &row.catalogue
            && locked.update_catalogue(catalogue.name.as_ref(), catalogue.reorder_level)?
        {
            status = SyncRowStatus::Applied;
        }
        outcome.crossed_threshold = status_before == StockStatus::InStock
            && StockStatus::of(&locked.product) == StockStatus::LowStock;
        Ok(status)
    }

    /// Applies the row's stock change to its bucket and records the movement; `false` when
    /// the bucket already held what the row asked. Changes nothing when it fails.
    fn change_stock(
        &self,
        locked: &mut LockedProduct,
        row: &CheckedRow,
        change: RowChange,
        location: &location::Model,
        outcome: &mut RowOutcome,
    ) -> Result<bool> {
        let lot_code = row.lot.as_ref().map_or("", |lot| lot.code.as_str());
        let before = locked.buckets.on_hand(location.id, lot_code);
        outcome.stock_before = Some(before);
        outcome.stock_after = Some(before);
        let today = self.today;
        let (kind, allocation) = match change {
            RowChange::SetOnHand(target) => {
                if target > before {
                    locked.ensure_room(target - before)?;
                }
                let allocation =
                    locked
                        .buckets
                        .set_on_hand(location, row.lot.as_ref(), target, today, now())?;
                (MovementKind::Adjustment, allocation)
            }
            RowChange::Delta(0) => (MovementKind::Add, None),
            RowChange::Delta(delta) if delta > 0 => {
                locked.ensure_room(delta)?;
                let allocation =
                    locked
                        .buckets
                        .add(location, row.lot.as_ref(), delta, today, now())?;
                (MovementKind::Add, Some(allocation))
            }
            RowChange::Delta(delta) => {
                let mut taken = locked
                    .buckets
                    .take(Source::Bucket(location.id, lot_code), -delta)?;
                let allocation: Option<Allocation> = taken.pop();
                (MovementKind::Reduce, allocation)
            }
        };
        let Some(allocation) = allocation else {
            return Ok(false);
        };
        outcome.stock_after = Some(allocation.stock_after);
        locked.record(
            vec![allocation],
            MovementNote {
                kind,
                reason: Some(row.reason.clone()),
                idempotency_key: None,
                actor: self.actor,
            },
        )?;
        Ok(true)
    }

    /// Remembers the row's sequence: later rows for the same product and location must be
    /// newer still, and the newest is stored.
    fn record_sequence(
        &mut self,
        locked: &LockedProduct,
        location: &location::Model,
        row: &CheckedRow,
    ) {
        if let Some(sequence) = row.sequence {
            let lot_code = row.lot.as_ref().map_or("", |lot| lot.code.as_str());
            let key = (locked.product.id, location.id, lot_code.to_owned());
            self.last_sequences.insert(key.clone(), sequence);
            let newest = self.new_sequences.entry(key).or_insert(sequence);
            *newest = (*newest).max(sequence);
        }
    }
}

/// The row's location, if it exists and takes stock.
fn usable<'a>(
    location: Option<&'a location::Model>,
    row: &CheckedRow,
) -> Result<&'a location::Model> {
    let location = location.ok_or_else(|| {
        Error::bad_field(
            "locationCode",
            format!("no location has the code '{}'", row.location.as_str()),
        )
    })?;
    if location.is_archived() {
        return Err(Error::bad_field(
            "locationCode",
            format!("location {} is archived and takes no stock", location.code),
        ));
    }
    Ok(location)
}

/// The locations the rows name (archived ones too, so their rows say so), by case-folded code, locked for
/// share until commit so none is archived while the call puts units in it.
async fn lock_locations(
    transaction: &impl ConnectionTrait,
    rows: &[&CheckedRow],
) -> Result<HashMap<String, location::Model>> {
    let keys: Vec<String> = distinct(rows.iter().map(|row| row.location.key()));
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(INSERT_CHUNK) {
        let locations = location::Entity::find()
            .filter(location::Column::CodeKey.is_in(chunk.iter().cloned()))
            .lock_shared()
            .all(transaction)
            .await?;
        found.extend(
            locations
                .into_iter()
                .map(|location| (location.code_key.clone(), location)),
        );
    }
    Ok(found)
}

/// The ids of the live products the rows name, by case-folded SKU (read without locks: the
/// products are locked next, and checked again then).
async fn find_products(
    transaction: &impl ConnectionTrait,
    rows: &[&CheckedRow],
) -> Result<HashMap<String, Uuid>> {
    let keys: Vec<String> = distinct(rows.iter().map(|row| row.sku.key()));
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(INSERT_CHUNK) {
        let products: Vec<(Uuid, String)> = product::Entity::find()
            .select_only()
            .column(product::Column::Id)
            .column(product::Column::SkuKey)
            .filter(product::Column::SkuKey.is_in(chunk.iter().cloned()))
            .filter(product::Column::DeletedAt.is_null())
            .into_tuple()
            .all(transaction)
            .await?;
        found.extend(products.into_iter().map(|(id, key)| (key, id)));
    }
    Ok(found)
}

/// The last sequence applied from `source` per (product, location), for the products given.
async fn read_sequences(
    transaction: &impl ConnectionTrait,
    source: &str,
    product_ids: &[Uuid],
) -> Result<HashMap<SequenceKey, i64>> {
    use sync_sequence::Column;
    let mut found = HashMap::new();
    for chunk in product_ids.chunks(INSERT_CHUNK) {
        let rows = sync_sequence::Entity::find()
            .filter(Column::Source.eq(source))
            .filter(Column::ProductId.is_in(chunk.iter().copied()))
            .all(transaction)
            .await?;
        found.extend(rows.into_iter().map(|row| {
            (
                (row.product_id, row.location_id, row.lot_code),
                row.last_sequence,
            )
        }));
    }
    Ok(found)
}

/// Stores the newest sequence per (product, location), replacing older ones.
fn push_sequences(writes: &mut Writes, source: &str, sequences: HashMap<SequenceKey, i64>) {
    use sync_sequence::Column;
    let updated_at = now();
    let mut rows: Vec<sync_sequence::ActiveModel> = sequences
        .into_iter()
        .map(
            |((product_id, location_id, lot_code), last_sequence)| sync_sequence::ActiveModel {
                source: sea_orm::ActiveValue::Set(source.to_owned()),
                product_id: sea_orm::ActiveValue::Set(product_id),
                location_id: sea_orm::ActiveValue::Set(location_id),
                lot_code: sea_orm::ActiveValue::Set(lot_code),
                last_sequence: sea_orm::ActiveValue::Set(last_sequence),
                updated_at: sea_orm::ActiveValue::Set(updated_at),
            },
        )
        .collect();
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(INSERT_CHUNK));
        let chunk = std::mem::replace(&mut rows, rest);
        let binds = chunk.len() * columns::<sync_sequence::Entity>();
        writes.push(
            sync_sequence::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([
                        Column::Source,
                        Column::ProductId,
                        Column::LocationId,
                        Column::LotCode,
                    ])
                    .update_columns([Column::LastSequence, Column::UpdatedAt])
                    .to_owned(),
                )
                .into_query(),
            binds,
        );
    }
}

/// The distinct values, in first-seen order.
fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    values.filter(|value| seen.insert(value.clone())).collect()
}
