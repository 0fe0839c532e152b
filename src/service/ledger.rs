//! Proving every unit is accounted for: each product's stock must equal the sum of its ledger
//! and of its buckets, and its reserved units the sum of its active reservations; each bucket's
//! stock the sum of its allocations; each movement's quantity the sum of its allocations.

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, FromQueryResult, Statement};
use uuid::Uuid;

use crate::database::Database;
use crate::error::Result;

/// A product whose stored figures disagree with its ledger or its reservations.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct LedgerMismatch {
    /// The product.
    pub product_id: Uuid,
    /// Its SKU.
    pub sku: String,
    /// Stock as stored.
    pub stock: i64,
    /// Stock as the ledger adds it up.
    pub ledger_stock: i64,
    /// Reserved units as stored.
    pub reserved: i64,
    /// Units held by its active reservations.
    pub active_reserved: i64,
    /// Stock as its buckets add it up.
    pub bucket_stock: i64,
    /// Reserved units as its buckets add them up.
    pub bucket_reserved: i64,
    /// Expired units as stored.
    pub expired: i64,
    /// Units in its expired buckets.
    pub bucket_expired: i64,
}

/// A bucket (a product's stock in one location and lot) that disagrees with its allocations or
/// with the reservations holding it.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct BucketMismatch {
    /// The bucket.
    pub bucket_id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// Its location.
    pub location_id: Uuid,
    /// Its lot code ('' for lot-less stock).
    pub lot_code: String,
    /// Stock as stored.
    pub stock: i64,
    /// The sum of its allocations.
    pub allocated: i64,
    /// Reserved units as stored.
    pub reserved: i64,
    /// Units active reservations hold in it.
    pub held: i64,
}

/// A movement whose signed quantity is not the sum of its allocations.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct MovementMismatch {
    /// The movement.
    pub movement_id: Uuid,
    /// Its signed quantity.
    pub delta: i64,
    /// The sum of its allocations.
    pub allocated: i64,
}

/// The result of a full check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerReport {
    /// How many products (deleted ones included) were checked.
    pub products_checked: u64,
    /// Every product that disagrees; empty when all is well.
    pub mismatches: Vec<LedgerMismatch>,
    /// Every bucket that disagrees.
    pub bucket_mismatches: Vec<BucketMismatch>,
    /// Every movement that disagrees with its allocations.
    pub movement_mismatches: Vec<MovementMismatch>,
}

impl LedgerReport {
    /// Whether everything agrees.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
            && self.bucket_mismatches.is_empty()
            && self.movement_mismatches.is_empty()
    }
}

/// A product's stock at some past instant, rebuilt from the ledger.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct StockAtTime {
    /// The product.
    pub product_id: Uuid,
    /// Its SKU (as it is now).
    pub sku: String,
    /// The sum of its movements up to the instant.
    pub stock: i64,
}

/// A product's stock in one location and lot at some past instant, from its allocations.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct BucketStockAtTime {
    /// The product.
    pub product_id: Uuid,
    /// Its SKU (as it is now).
    pub sku: String,
    /// The location's code (as it is now).
    pub location: String,
    /// The lot's code ('' for lot-less stock).
    pub lot_code: String,
    /// The sum of the bucket's allocations up to the instant.
    pub stock: i64,
}

#[derive(FromQueryResult)]
struct Count {
    count: i64,
}

/// Checks the ledger against the products.
#[derive(Clone, Debug)]
pub struct LedgerService {
    database: Database,
}

impl LedgerService {
    /// Checks the ledger of `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Checks every product; each disagreement is reported.
    pub async fn verify(&self) -> Result<LedgerReport> {
        let connection = self.database.connection();
        let backend = connection.get_database_backend();
        let mismatches = LedgerMismatch::find_by_statement(Statement::from_string(
            backend,
            "SELECT p.id AS product_id, p.sku, p.stock, \
                    CAST(COALESCE(m.total, 0) AS BIGINT) AS ledger_stock, p.reserved, \
                    CAST(COALESCE(r.total, 0) AS BIGINT) AS active_reserved, \
                    CAST(COALESCE(b.stock, 0) AS BIGINT) AS bucket_stock, \
                    CAST(COALESCE(b.reserved, 0) AS BIGINT) AS bucket_reserved, p.expired, \
                    CAST(COALESCE(b.expired, 0) AS BIGINT) AS bucket_expired \
             FROM products p \
             LEFT JOIN (SELECT product_id, SUM(delta) AS total FROM stock_movements \
                        GROUP BY product_id) m ON m.product_id = p.id \
             LEFT JOIN (SELECT product_id, SUM(quantity) AS total FROM reservations \
                        WHERE status = 'ACTIVE' GROUP BY product_id) r ON r.product_id = p.id \
             LEFT JOIN (SELECT product_id, SUM(stock) AS stock, SUM(reserved) AS reserved, \
                               SUM(CASE WHEN expired THEN stock ELSE 0 END) AS expired \
                        FROM stock_buckets GROUP BY product_id) b ON b.product_id = p.id \
             WHERE p.stock <> COALESCE(m.total, 0) OR p.reserved <> COALESCE(r.total, 0) \
                OR p.stock <> COALESCE(b.stock, 0) OR p.reserved <> COALESCE(b.reserved, 0) \
                OR p.expired <> COALESCE(b.expired, 0) \
             ORDER BY p.id",
        ))
        .all(connection)
        .await?;
        // Every bucket's stock is the sum of its allocations, and its reserved units what
        // active reservations hold in it (none in an expired lot).
        let bucket_mismatches = BucketMismatch::find_by_statement(Statement::from_string(
            backend,
            "SELECT b.id AS bucket_id, b.product_id, b.location_id, b.lot_code, b.stock, \
                    CAST(COALESCE(a.total, 0) AS BIGINT) AS allocated, b.reserved, \
                    CAST(COALESCE(h.total, 0) AS BIGINT) AS held \
             FROM stock_buckets b \
             LEFT JOIN (SELECT bucket_id, SUM(quantity) AS total FROM stock_allocations \
                        GROUP BY bucket_id) a ON a.bucket_id = b.id \
             LEFT JOIN (SELECT h.bucket_id, SUM(h.quantity) AS total FROM reservation_holds h \
                        JOIN reservations r ON r.id = h.reservation_id AND r.status = 'ACTIVE' \
                        GROUP BY h.bucket_id) h ON h.bucket_id = b.id \
             WHERE b.stock <> COALESCE(a.total, 0) OR b.reserved <> COALESCE(h.total, 0) \
                OR (b.expired AND b.reserved <> 0) \
             ORDER BY b.id",
        ))
        .all(connection)
        .await?;
        // Every movement's signed quantity is the sum of its allocations.
        let movement_mismatches = MovementMismatch::find_by_statement(Statement::from_string(
            backend,
            "SELECT m.id AS movement_id, m.delta, CAST(COALESCE(a.total, 0) AS BIGINT) AS allocated \
             FROM stock_movements m \
             LEFT JOIN (SELECT movement_id, SUM(quantity) AS total FROM stock_allocations \
                        GROUP BY movement_id) a ON a.movement_id = m.id \
             WHERE m.delta <> COALESCE(a.total, 0) \
             ORDER BY m.id",
        ))
        .all(connection)
        .await?;
        let checked = Count::find_by_statement(Statement::from_string(
            backend,
            "SELECT CAST(COUNT(*) AS BIGINT) AS count FROM products",
        ))
        .one(connection)
        .await?
        .map_or(0, |row| row.count);
        Ok(LedgerReport {
            products_checked: u64::try_from(checked).unwrap_or(0),
            mismatches,
            bucket_mismatches,
            movement_mismatches,
        })
    }

    /// Every bucket's stock at `at` (per product, location and lot), from the allocations
    /// committed up to then.
    pub async fn bucket_stock_as_of(&self, at: DateTime<Utc>) -> Result<Vec<BucketStockAtTime>> {
        let connection = self.database.connection();
        let backend = connection.get_database_backend();
        let moved = if backend == DbBackend::Postgres {
            "a.created_at <= $1"
        } else {
            "julianday(a.created_at) <= julianday(?1)"
        };
        Ok(
            BucketStockAtTime::find_by_statement(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT a.product_id, p.sku, l.code AS location, a.lot_code, \
                            CAST(SUM(a.quantity) AS BIGINT) AS stock \
                     FROM stock_allocations a \
                     JOIN products p ON p.id = a.product_id \
                     JOIN locations l ON l.id = a.location_id \
                     WHERE {moved} \
                     GROUP BY a.product_id, p.sku, l.code, a.lot_code \
                     ORDER BY a.product_id, l.code, a.lot_code"
                ),
                [at.into()],
            ))
            .all(connection)
            .await?,
        )
    }

    /// Every product's stock at `at`, from the movements committed up to then.
    pub async fn stock_as_of(&self, at: DateTime<Utc>) -> Result<Vec<StockAtTime>> {
        let connection = self.database.connection();
        let backend = connection.get_database_backend();
        // SQLite keeps timestamps as text whose format need not match a bound parameter's,
        // so it compares them as Julian days.
        let (moved, created) = if backend == DbBackend::Postgres {
            ("m.created_at <= $1", "p.created_at <= $1")
        } else {
            (
                "julianday(m.created_at) <= julianday(?1)",
                "julianday(p.created_at) <= julianday(?1)",
            )
        };
        Ok(StockAtTime::find_by_statement(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT p.id AS product_id, p.sku, CAST(COALESCE(SUM(m.delta), 0) AS BIGINT) AS stock \
                 FROM products p \
                 LEFT JOIN stock_movements m ON m.product_id = p.id AND {moved} \
                 WHERE {created} \
                 GROUP BY p.id, p.sku ORDER BY p.id"
            ),
            [at.into()],
        ))
        .all(connection)
        .await?)
    }
}
