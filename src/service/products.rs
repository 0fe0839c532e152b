//! The product catalogue: look-ups, listing, and create / update / delete / restore.

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use super::locations::main_location_id;
use super::locked::{bump, lock_live_product, lock_product};
use super::{Actor, PageDirection, now};
use crate::database::Database;
use crate::domain::{ProductName, Sku, StockLevel, fold_case};
use crate::entity::product::{self, Column};
use crate::entity::stock_movement::{self, MovementKind};
use crate::entity::{stock_allocation, stock_bucket};
use crate::error::{Error, Result};
use crate::events::{EventBus, StockEvent};

/// A product to create, already validated.
#[derive(Clone, Debug)]
pub struct NewProduct {
    /// Its name.
    pub name: ProductName,
    /// Its SKU.
    pub sku: Sku,
    /// Units on hand at creation; recorded as the product's first movement.
    pub stock: StockLevel,
    /// At or below this, the product is `LOW_STOCK`.
    pub reorder_level: StockLevel,
}

/// The fields an update may change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProductChanges {
    /// A new name.
    pub name: Option<ProductName>,
    /// A new SKU.
    pub sku: Option<Sku>,
    /// A new reorder level.
    pub reorder_level: Option<StockLevel>,
}

impl NewProduct {
    /// Validates raw fields as both transports receive them.
    pub fn parse(name: &str, sku: &str, stock: i64, reorder_level: i64) -> Result<Self> {
        Ok(Self {
            name: ProductName::parse(name)?,
            sku: Sku::parse(sku)?,
            stock: StockLevel::parse("stock", stock)?,
            reorder_level: StockLevel::parse("reorderLevel", reorder_level)?,
        })
    }
}

impl ProductChanges {
    fn is_empty(&self) -> bool {
        self.name.is_none() && self.sku.is_none() && self.reorder_level.is_none()
    }
}

/// Whether a product needs reordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockStatus {
    /// Stock is above the reorder level.
    InStock,
    /// Stock is at or below the reorder level.
    LowStock,
}

impl StockStatus {
    /// The documented name for the status, as GraphQL and REST show it.
    pub fn as_str(self) -> &'static str {
        match self {
            StockStatus::InStock => "IN_STOCK",
            StockStatus::LowStock => "LOW_STOCK",
        }
    }

    /// The status of a product as stored.
    pub fn of(product: &product::Model) -> Self {
        if product.is_low_stock() {
            StockStatus::LowStock
        } else {
            StockStatus::InStock
        }
    }
}

/// Which products a listing returns.
#[derive(Clone, Debug, Default)]
pub struct ProductFilter {
    /// Matches name or SKU, case-insensitively, anywhere in the text.
    pub search: Option<String>,
    /// Only products with this status.
    pub status: Option<StockStatus>,
    /// Whether soft-deleted products are listed too.
    pub include_deleted: bool,
}

impl ProductFilter {
    fn apply(&self, mut query: Select<product::Entity>) -> Select<product::Entity> {
        if !self.include_deleted {
            query = query.filter(Column::DeletedAt.is_null());
        }
        if let Some(search) = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let pattern = format!("%{}%", escape_like(&fold_case(search)));
            query = query.filter(
                Condition::any()
                    .add(Column::NameKey.like(LikeExpr::new(pattern.clone()).escape('\\')))
                    .add(Column::SkuKey.like(LikeExpr::new(pattern).escape('\\'))),
            );
        }
        match self.status {
            Some(StockStatus::LowStock) => {
                query = query.filter(available_units().lte(Expr::col(Column::ReorderLevel)))
            }
            Some(StockStatus::InStock) => {
                query = query.filter(available_units().gt(Expr::col(Column::ReorderLevel)))
            }
            None => {}
        }
        query
    }
}

/// `stock - reserved - expired`, the units a product has available.
fn available_units() -> Expr {
    Expr::col(Column::Stock)
        .sub(Expr::col(Column::Reserved))
        .sub(Expr::col(Column::Expired))
}

/// Makes `%`, `_` and `\` in user text match themselves in a `LIKE ... ESCAPE '\'` pattern.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Reads and writes products.
#[derive(Clone, Debug)]
pub struct ProductService {
    database: Database,
    events: EventBus,
}

impl ProductService {
    pub(super) fn new(database: Database, events: EventBus) -> Self {
        Self { database, events }
    }

    /// A live product by id; `None` when missing or deleted.
    pub async fn find(&self, id: Uuid) -> Result<Option<product::Model>> {
        let cache = self.events.product_cache();
        if let Some(known) = cache.get(id) {
            return Ok(known.map(|product| product::Model::clone(&product)));
        }
        let found = product::Entity::find_by_id(id)
            .one(self.database.connection())
            .await?;
        if let Some(product) = &found {
            cache.fill(product);
        }
        Ok(found.filter(|product| !product.is_deleted()))
    }

    /// Live products by id, in one query (missing and deleted ones are simply absent).
    pub async fn find_many(&self, ids: &[Uuid]) -> Result<Vec<product::Model>> {
        Ok(product::Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .filter(Column::DeletedAt.is_null())
            .all(self.database.connection())
            .await?)
    }

    /// Products by id, deleted or not, in one query (missing ids are simply absent).
    pub async fn find_many_including_deleted(&self, ids: &[Uuid]) -> Result<Vec<product::Model>> {
        Ok(product::Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .all(self.database.connection())
            .await?)
    }

    /// The live product with this SKU, compared case-insensitively.
    pub async fn find_by_sku(&self, sku: &str) -> Result<Option<product::Model>> {
        let key = fold_case(sku.trim());
        let cache = self.events.product_cache();
        if let Some(product) = cache.get_by_sku(&key) {
            return Ok(Some(product::Model::clone(&product)));
        }
        let found = product::Entity::find()
            .filter(Column::SkuKey.eq(key))
            .filter(Column::DeletedAt.is_null())
            .one(self.database.connection())
            .await?;
        if let Some(product) = &found {
            cache.fill(product);
        }
        Ok(found)
    }

    /// Up to `limit` products matching `filter` in id order (creation order, as ids are
    /// UUIDv7): forward, the ones after the product `cursor`; backward, the ones before it,
    /// nearest first. Keyset pagination: a page costs the same at any depth and never skips or
    /// repeats a product when others are inserted meanwhile.
    pub async fn list(
        &self,
        filter: &ProductFilter,
        cursor: Option<Uuid>,
        direction: PageDirection,
        limit: u64,
    ) -> Result<Vec<product::Model>> {
        let mut query = filter.apply(product::Entity::find());
        query = match direction {
            PageDirection::Forward => {
                if let Some(after) = cursor {
                    query = query.filter(Column::Id.gt(after));
                }
                query.order_by_asc(Column::Id)
            }
            PageDirection::Backward => {
                if let Some(before) = cursor {
                    query = query.filter(Column::Id.lt(before));
                }
                query.order_by_desc(Column::Id)
            }
        };
        Ok(query.limit(limit).all(self.database.connection()).await?)
    }

    /// How many products match `filter`.
    pub async fn count(&self, filter: &ProductFilter) -> Result<u64> {
        Ok(filter
            .apply(product::Entity::find())
            .count(self.database.connection())
            .await?)
    }

    /// Creates a product and records its initial stock as its first movement, in one
    /// transaction. Fails with `SKU_CONFLICT` when a live product has the SKU in any case.
    pub async fn create(&self, new: NewProduct, actor: &Actor) -> Result<product::Model> {
        let created_at = now();
        let product = product::Model {
            id: Uuid::now_v7(),
            name: new.name.as_str().to_owned(),
            name_key: new.name.search_key(),
            sku: new.sku.as_str().to_owned(),
            sku_key: new.sku.key(),
            stock: new.stock.get(),
            reorder_level: new.reorder_level.get(),
            version: 1,
            created_at,
            updated_at: created_at,
            deleted_at: None,
            reserved: 0,
            expired: 0,
        };
        let transaction = self.database.begin_write().await?;
        let product = product
            .into_active_model()
            .reset_all()
            .insert(&*transaction)
            .await
            .map_err(|error| Error::from_sku_write(error, new.sku.as_str()))?;
        // Its stock starts in MAIN, as a lot-less bucket.
        let bucket = stock_bucket::Model {
            id: Uuid::now_v7(),
            product_id: product.id,
            location_id: main_location_id(),
            lot_code: String::new(),
            expires_on: None,
            stock: product.stock,
            reserved: 0,
            expired: false,
            created_at,
        }
        .into_active_model()
        .reset_all()
        .insert(&*transaction)
        .await?;
        let movement = stock_movement::Model {
            id: Uuid::now_v7(),
            product_id: product.id,
            kind: MovementKind::Initial,
            delta: product.stock,
            stock_before: 0,
            stock_after: product.stock,
            product_version: product.version,
            reason: None,
            idempotency_key: None,
            actor: actor.subject.clone(),
            created_at,
        }
        .into_active_model()
        .reset_all()
        .insert(&*transaction)
        .await?;
        stock_allocation::Model {
            movement_id: movement.id,
            bucket_id: bucket.id,
            product_id: product.id,
            location_id: bucket.location_id,
            lot_code: String::new(),
            quantity: product.stock,
            stock_before: 0,
            stock_after: product.stock,
            created_at,
        }
        .into_active_model()
        .reset_all()
        .insert(&*transaction)
        .await?;
        let event = StockEvent::new(None, &product, Some(movement));
        self.events.commit(transaction, vec![event]).await?;
        Ok(product)
    }

    /// Changes name, SKU and/or reorder level. With `expected_version`, fails with
    /// `VERSION_CONFLICT` unless it is the stored version. A new reorder level that leaves the
    /// product `LOW_STOCK` is published as a `lowStock` event.
    pub async fn update(
        &self,
        id: Uuid,
        changes: ProductChanges,
        expected_version: Option<i32>,
    ) -> Result<product::Model> {
        if changes.is_empty() {
            return Err(Error::bad_input(
                "nothing to update: give at least one of name, sku, reorderLevel",
            ));
        }
        let transaction = self.database.begin_write().await?;
        let current = lock_live_product(&*transaction, id).await?;
        check_version(&current, expected_version)?;
        let new_sku = changes.sku.as_ref().map(|sku| sku.as_str().to_owned());
        let reorder_level_changed = changes.reorder_level.is_some();
        let mut row = bump(current.clone())?;
        if let Some(name) = changes.name {
            row.name_key = Set(name.search_key());
            row.name = Set(name.as_str().to_owned());
        }
        if let Some(sku) = changes.sku {
            row.sku_key = Set(sku.key());
            row.sku = Set(sku.as_str().to_owned());
        }
        if let Some(level) = changes.reorder_level {
            row.reorder_level = Set(level.get());
        }
        let updated = row
            .update(&*transaction)
            .await
            .map_err(|error| match &new_sku {
                Some(sku) => Error::from_sku_write(error, sku),
                None => Error::from(error),
            })?;
        let event = if reorder_level_changed && updated.is_low_stock() {
            StockEvent::new(Some(&current), &updated, None)
        } else {
            StockEvent::catalogue(&current, &updated)
        };
        self.events.commit(transaction, vec![event]).await?;
        Ok(updated)
    }

    /// Soft-deletes a product: it reads as missing and its SKU is free again. Its ledger stays.
    pub async fn delete(&self, id: Uuid, expected_version: Option<i32>) -> Result<product::Model> {
        let transaction = self.database.begin_write().await?;
        let current = lock_live_product(&*transaction, id).await?;
        check_version(&current, expected_version)?;
        let mut row = bump(current.clone())?;
        row.deleted_at = Set(Some(now()));
        let deleted = row.update(&*transaction).await?;
        self.events
            .commit(transaction, vec![StockEvent::catalogue(&current, &deleted)])
            .await?;
        Ok(deleted)
    }

    /// Brings a soft-deleted product back; `SKU_CONFLICT` when a live product took its SKU
    /// meanwhile. Restoring a product that is not deleted changes nothing.
    pub async fn restore(&self, id: Uuid) -> Result<product::Model> {
        let transaction = self.database.begin_write().await?;
        let current = lock_product(&*transaction, id)
            .await?
            .ok_or(Error::NotFound)?;
        if !current.is_deleted() {
            return Ok(current);
        }
        let sku = current.sku.clone();
        let mut row = bump(current.clone())?;
        row.deleted_at = Set(None);
        let restored = row
            .update(&*transaction)
            .await
            .map_err(|error| Error::from_sku_write(error, &sku))?;
        self.events
            .commit(
                transaction,
                vec![StockEvent::catalogue(&current, &restored)],
            )
            .await?;
        Ok(restored)
    }
}

/// `VERSION_CONFLICT` unless `expected` is absent or equals the stored version.
fn check_version(current: &product::Model, expected: Option<i32>) -> Result<()> {
    match expected {
        Some(expected) if expected != current.version => Err(Error::VersionConflict {
            expected,
            actual: current.version,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_in_search_text_match_literally() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(escape_like("plain"), "plain");
    }
}
