//! The administrative ledger check.

use async_graphql::{Context, ID, Object, Result, SimpleObject};

use crate::graphql::context::ContextExt;
use crate::service::LedgerMismatch;

/// Checking the books.
#[derive(Default)]
pub struct LedgerQuery;

#[Object]
impl LedgerQuery {
    /// Checks that every product's stock equals the sum of its movements and of its buckets,
    /// its reserved units the sum of its active reservations, every bucket's stock the sum of
    /// its allocations and every movement's quantity the sum of its allocations (admin only;
    /// `stockroom verify` does the same).
    async fn verify_ledger(&self, ctx: &Context<'_>) -> Result<LedgerReport> {
        let report = ctx.services()?.ledger.verify().await?;
        Ok(LedgerReport {
            id: new_id(),
            ok: report.is_clean(),
            products_checked: report.products_checked,
            bucket_mismatches: report.bucket_mismatches.len() as u64,
            movement_mismatches: report.movement_mismatches.len() as u64,
            mismatches: report
                .mismatches
                .into_iter()
                .map(LedgerDiscrepancy::from)
                .collect(),
        })
    }
}

/// A fresh id: every check is a report of its own, and so is each discrepancy in it.
fn new_id() -> ID {
    ID(uuid::Uuid::now_v7().to_string())
}

/// The outcome of a ledger check.
#[derive(SimpleObject)]
pub struct LedgerReport {
    /// This check's id (each check is a new report), so that a normalized client cache can
    /// store it.
    pub id: ID,
    /// True when nothing disagrees.
    pub ok: bool,
    /// How many products were checked (deleted ones included).
    pub products_checked: u64,
    /// Every product that disagrees.
    pub mismatches: Vec<LedgerDiscrepancy>,
    /// How many buckets (a product's stock in one location and lot) disagree with their
    /// allocations or the reservations holding them (`stockroom verify` lists them).
    pub bucket_mismatches: u64,
    /// How many movements disagree with their allocations (`stockroom verify` lists them).
    pub movement_mismatches: u64,
}

/// A product whose stored figures disagree with its ledger or reservations.
#[derive(SimpleObject)]
pub struct LedgerDiscrepancy {
    /// This finding's id (new with each check; not the product's, which `productId` is).
    pub id: ID,
    /// The product.
    pub product_id: ID,
    /// Its SKU.
    pub sku: String,
    /// Stock as stored.
    pub stock: i64,
    /// Stock as the ledger adds it up.
    pub ledger_stock: i64,
    /// Reserved units as stored.
    pub reserved: i64,
    /// Units held by active reservations.
    pub active_reserved: i64,
}

impl From<LedgerMismatch> for LedgerDiscrepancy {
    fn from(mismatch: LedgerMismatch) -> Self {
        Self {
            id: new_id(),
            product_id: ID(mismatch.product_id.to_string()),
            sku: mismatch.sku,
            stock: mismatch.stock,
            ledger_stock: mismatch.ledger_stock,
            reserved: mismatch.reserved,
            active_reserved: mismatch.active_reserved,
        }
    }
}
