//! CSV exports: the inventory (one line per bucket, in the import's columns, so an export
//! imported again changes nothing) and the ledger (one line per allocation of each movement).
//!
//! Both are read page by page with keyset queries, each short, and written out as they are
//! read: memory stays the same whatever the size of the database, no statement runs for as
//! long as a slow download takes, and a download that is abandoned stops the reading.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition};
use sea_orm::{
    ColumnTrait, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::import::COLUMNS;
use crate::database::Database;
use crate::entity::{location, product, stock_allocation, stock_bucket, stock_movement};
use crate::error::{Error, Result};

/// Rows read per query.
const PAGE_ROWS: u64 = 1_000;

/// Bytes gathered before a piece of the file is sent.
const PIECE_BYTES: usize = 64 * 1024;

/// The columns of the movements export.
pub const MOVEMENT_COLUMNS: [&str; 16] = [
    "movement_id",
    "created_at",
    "sku",
    "kind",
    "delta",
    "stock_before",
    "stock_after",
    "product_version",
    "reason",
    "actor",
    "idempotency_key",
    "location",
    "lot",
    "quantity",
    "lot_stock_before",
    "lot_stock_after",
];

/// The pieces of a CSV file as they are written; an `Err` ends it early.
pub type CsvPieces = mpsc::Receiver<Result<Vec<u8>>>;

/// Writes the exports.
#[derive(Clone, Debug)]
pub struct ExportService {
    database: Database,
}

/// Which movements an export holds: created at or after `from`, before `to`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MovementRange {
    /// The first instant included.
    pub from: Option<DateTime<Utc>>,
    /// The first instant no longer included.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, FromQueryResult)]
struct InventoryLine {
    bucket_id: Uuid,
    sku: String,
    sku_key: String,
    name: String,
    reorder_level: i64,
    location: String,
    on_hand: i64,
    lot: String,
    expires_on: Option<chrono::NaiveDate>,
}

impl ExportService {
    pub(super) fn new(database: Database) -> Self {
        Self { database }
    }

    /// The inventory of live products in unarchived locations, by SKU (then bucket).
    pub fn inventory(&self) -> CsvPieces {
        let (sender, receiver) = mpsc::channel(4);
        let database = self.database.clone();
        tokio::spawn(async move {
            if let Err(error) = write_inventory(&database, &sender).await {
                tracing::warn!(error = %crate::error::CauseChain(&error), "an inventory export stopped");
                let _ = sender.send(Err(error)).await;
            }
        });
        receiver
    }

    /// The ledger in `range`, oldest first: one line per bucket each movement touched.
    pub fn movements(&self, range: MovementRange) -> CsvPieces {
        let (sender, receiver) = mpsc::channel(4);
        let database = self.database.clone();
        tokio::spawn(async move {
            if let Err(error) = write_movements(&database, range, &sender).await {
                tracing::warn!(error = %crate::error::CauseChain(&error), "a movements export stopped");
                let _ = sender.send(Err(error)).await;
            }
        });
        receiver
    }
}

/// A CSV writer over a buffer that is sent on whenever it holds a piece.
struct Pieces<'a> {
    writer: csv::Writer<Vec<u8>>,
    sender: &'a mpsc::Sender<Result<Vec<u8>>>,
}

impl<'a> Pieces<'a> {
    fn new(sender: &'a mpsc::Sender<Result<Vec<u8>>>) -> Self {
        Self {
            writer: csv::Writer::from_writer(Vec::with_capacity(PIECE_BYTES * 2)),
            sender,
        }
    }

    /// Writes one record; `false` when the download was abandoned.
    async fn write<I, T>(&mut self, record: I) -> Result<bool>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.writer.write_record(record).map_err(Error::internal)?;
        if self.writer.get_ref().len() >= PIECE_BYTES {
            return self.send().await;
        }
        Ok(true)
    }

    /// Sends what is gathered; `false` when the download was abandoned.
    async fn send(&mut self) -> Result<bool> {
        let writer = std::mem::replace(
            &mut self.writer,
            csv::Writer::from_writer(Vec::with_capacity(PIECE_BYTES * 2)),
        );
        let piece = writer.into_inner().map_err(Error::internal)?;
        if piece.is_empty() {
            return Ok(true);
        }
        Ok(self.sender.send(Ok(piece)).await.is_ok())
    }
}

async fn write_inventory(
    database: &Database,
    sender: &mpsc::Sender<Result<Vec<u8>>>,
) -> Result<()> {
    // Every page from one snapshot: a product renamed meanwhile appears once, as it was.
    let snapshot = read_snapshot(database).await?;
    let mut pieces = Pieces::new(sender);
    if !pieces.write(COLUMNS).await? {
        return Ok(());
    }
    let mut after: Option<(String, Uuid)> = None;
    loop {
        let mut query = stock_bucket::Entity::find()
            .select_only()
            .column_as(stock_bucket::Column::Id, "bucket_id")
            .column_as(product::Column::Sku, "sku")
            .column_as(product::Column::SkuKey, "sku_key")
            .column_as(product::Column::Name, "name")
            .column_as(product::Column::ReorderLevel, "reorder_level")
            .column_as(location::Column::Code, "location")
            .column_as(stock_bucket::Column::Stock, "on_hand")
            .column_as(stock_bucket::Column::LotCode, "lot")
            .column_as(stock_bucket::Column::ExpiresOn, "expires_on")
            .join(JoinType::InnerJoin, stock_bucket::Relation::Product.def())
            .join(JoinType::InnerJoin, stock_bucket::Relation::Location.def())
            .filter(product::Column::DeletedAt.is_null())
            .filter(location::Column::ArchivedAt.is_null());
        if let Some((sku_key, bucket_id)) = &after {
            query = query.filter(
                Expr::tuple([
                    Expr::col((product::Entity, product::Column::SkuKey)),
                    Expr::col((stock_bucket::Entity, stock_bucket::Column::Id)),
                ])
                .gt(Expr::tuple([
                    Expr::value(sku_key.clone()),
                    Expr::value(*bucket_id),
                ]))
                .into_condition(),
            );
        }
        let page: Vec<InventoryLine> = query
            .order_by_asc(product::Column::SkuKey)
            .order_by_asc(stock_bucket::Column::Id)
            .limit(PAGE_ROWS)
            .into_model::<InventoryLine>()
            .all(&snapshot)
            .await?;
        let full = page.len() as u64 == PAGE_ROWS;
        for line in &page {
            let expires_on = line
                .expires_on
                .map(|day| day.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let record = [
                line.sku.clone(),
                line.name.clone(),
                line.reorder_level.to_string(),
                line.location.clone(),
                line.on_hand.to_string(),
                line.lot.clone(),
                expires_on,
            ];
            if !pieces.write(&record).await? {
                return Ok(());
            }
        }
        match page.last() {
            Some(last) if full => after = Some((last.sku_key.clone(), last.bucket_id)),
            _ => break,
        }
    }
    pieces.send().await?;
    Ok(())
}

#[derive(Debug, FromQueryResult)]
struct MovementLine {
    id: Uuid,
    created_at: DateTime<Utc>,
    sku: String,
    kind: stock_movement::MovementKind,
    delta: i64,
    stock_before: i64,
    stock_after: i64,
    product_version: i32,
    reason: Option<String>,
    actor: String,
    idempotency_key: Option<String>,
}

async fn write_movements(
    database: &Database,
    range: MovementRange,
    sender: &mpsc::Sender<Result<Vec<u8>>>,
) -> Result<()> {
    use stock_movement::Column;
    let mut pieces = Pieces::new(sender);
    if !pieces.write(MOVEMENT_COLUMNS).await? {
        return Ok(());
    }
    let codes: HashMap<Uuid, String> = location::Entity::find()
        .all(database.connection())
        .await?
        .into_iter()
        .map(|location| (location.id, location.code))
        .collect();
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = stock_movement::Entity::find()
            .select_only()
            .column(Column::Id)
            .column(Column::CreatedAt)
            .column_as(product::Column::Sku, "sku")
            .column(Column::Kind)
            .column(Column::Delta)
            .column(Column::StockBefore)
            .column(Column::StockAfter)
            .column(Column::ProductVersion)
            .column(Column::Reason)
            .column(Column::Actor)
            .column(Column::IdempotencyKey)
            .join(JoinType::InnerJoin, stock_movement::Relation::Product.def());
        if let Some(from) = range.from {
            query = query.filter(Column::CreatedAt.gte(from));
        }
        if let Some(to) = range.to {
            query = query.filter(Column::CreatedAt.lt(to));
        }
        if let Some(after) = after {
            query = query.filter(Column::Id.gt(after));
        }
        let page: Vec<MovementLine> = query
            .order_by_asc(Column::Id)
            .limit(PAGE_ROWS)
            .into_model::<MovementLine>()
            .all(database.connection())
            .await?;
        let full = page.len() as u64 == PAGE_ROWS;
        let ids: Vec<Uuid> = page.iter().map(|movement| movement.id).collect();
        let mut allocations: HashMap<Uuid, Vec<stock_allocation::Model>> = HashMap::new();
        if !ids.is_empty() {
            for allocation in stock_allocation::Entity::find()
                .filter(stock_allocation::Column::MovementId.is_in(ids))
                .order_by_asc(stock_allocation::Column::BucketId)
                .all(database.connection())
                .await?
            {
                allocations
                    .entry(allocation.movement_id)
                    .or_default()
                    .push(allocation);
            }
        }
        for movement in &page {
            let common = [
                movement.id.to_string(),
                movement.created_at.to_rfc3339(),
                movement.sku.clone(),
                kind_name(movement.kind).to_owned(),
                movement.delta.to_string(),
                movement.stock_before.to_string(),
                movement.stock_after.to_string(),
                movement.product_version.to_string(),
                movement.reason.clone().unwrap_or_default(),
                movement.actor.clone(),
                movement.idempotency_key.clone().unwrap_or_default(),
            ];
            let parts = allocations.remove(&movement.id).unwrap_or_default();
            if parts.is_empty() {
                let mut record = common.to_vec();
                record.extend(std::iter::repeat_n(String::new(), 5));
                if !pieces.write(&record).await? {
                    return Ok(());
                }
            }
            for part in parts {
                let mut record = common.to_vec();
                record.extend([
                    codes.get(&part.location_id).cloned().unwrap_or_default(),
                    part.lot_code,
                    part.quantity.to_string(),
                    part.stock_before.to_string(),
                    part.stock_after.to_string(),
                ]);
                if !pieces.write(&record).await? {
                    return Ok(());
                }
            }
        }
        match page.last() {
            Some(last) if full => after = Some(last.id),
            _ => break,
        }
    }
    pieces.send().await?;
    Ok(())
}

/// A read-only transaction whose reads all see one moment (PostgreSQL `REPEATABLE READ`;
/// SQLite's read transaction keeps its snapshot from the first read).
async fn read_snapshot(database: &Database) -> Result<sea_orm::DatabaseTransaction> {
    use sea_orm::{AccessMode, IsolationLevel, TransactionTrait};
    let connection = database.connection();
    Ok(if database.is_postgres() {
        connection
            .begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
    } else {
        connection.begin().await?
    })
}

/// A movement kind as GraphQL and the ledger name it.
fn kind_name(kind: stock_movement::MovementKind) -> &'static str {
    use stock_movement::MovementKind;
    match kind {
        MovementKind::Initial => "INITIAL",
        MovementKind::Add => "ADD",
        MovementKind::Reduce => "REDUCE",
        MovementKind::ReservationCommit => "RESERVATION_COMMIT",
        MovementKind::Transfer => "TRANSFER",
        MovementKind::WriteOff => "WRITE_OFF",
        MovementKind::Adjustment => "ADJUSTMENT",
    }
}
