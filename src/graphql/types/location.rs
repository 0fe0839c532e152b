//! `Location`, `Lot`, `LocationStock`, `StockAllocation` and the `Date` scalar.

use async_graphql::{
    Context, ID, InputObject, InputValueError, InputValueResult, Object, Result, Scalar,
    ScalarType, Value,
};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use uuid::Uuid;

use super::{Product, to_int};
use crate::domain::{LocationCode, LocationName, LotCode};
use crate::entity::{location, stock_allocation, stock_bucket};
use crate::error::Error;
use crate::graphql::context::ContextExt;
use crate::service::{LocationChanges, LotInput as ServiceLotInput, NewLocation};

/// A calendar date, `YYYY-MM-DD` (ISO 8601).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

/// A calendar date, `YYYY-MM-DD` (ISO 8601).
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            // Four-digit years only (0001 to 9999): every backend stores and compares those.
            Value::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .filter(|date| text.len() == 10 && (1..=9999).contains(&date.year()))
                .map(Date)
                .ok_or_else(|| {
                    InputValueError::custom(format!("'{text}' is not a date (YYYY-MM-DD)"))
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

/// A place where stock is kept: a warehouse, a store, a returns shelf.
#[derive(Clone)]
pub struct Location(pub location::Model);

/// A place where stock is kept: a warehouse, a store, a returns shelf.
#[Object]
impl Location {
    /// Its id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Its code, unique regardless of case (`MAIN` always exists).
    async fn code(&self) -> &str {
        &self.0.code
    }

    /// Its name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Reductions and reservations without a location take from locations in ascending
    /// priority (`MAIN` is 0).
    async fn priority(&self) -> i32 {
        self.0.priority
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was archived; null while it is in use.
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at
    }
}

/// Loads a location by id (archived ones too).
pub async fn load_location(ctx: &Context<'_>, id: Uuid) -> Result<Location> {
    let loader = ctx
        .data::<async_graphql::dataloader::DataLoader<crate::graphql::loaders::LocationLoader>>()
        .map_err(|_| Error::internal("the schema was built without a location loader"))?;
    let location = loader
        .load_one(id)
        .await
        .map_err(|error| Error::clone(&error))?
        .ok_or_else(|| Error::internal(format!("location {id} is referenced but missing")))?;
    Ok(Location(location))
}

/// Namespace of `LocationStock` ids (UUID v5 of product id and location id).
const LOCATION_STOCK_NAMESPACE: Uuid = Uuid::from_u128(0xf1447728_6863_4f5a_a10d_302e35f7e492);
/// Namespace of `StockAllocation` ids (UUID v5 of movement id and bucket id).
const STOCK_ALLOCATION_NAMESPACE: Uuid = Uuid::from_u128(0x6a20c658_ab3e_4f94_8ab9_f165105ffdbf);

/// The UUID v5 of two ids in `namespace`: distinct pairs get distinct ids, no id of one
/// namespace is another's, and none is a stored row's id (those are v7).
fn derived_id(namespace: &Uuid, first: Uuid, second: Uuid) -> Uuid {
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(first.as_bytes());
    name[16..].copy_from_slice(second.as_bytes());
    Uuid::new_v5(namespace, &name)
}

/// A product's stock in one location, over its lots.
pub struct LocationStock {
    /// The product's id.
    pub product_id: Uuid,
    /// The location's id.
    pub location_id: Uuid,
    /// Units on hand.
    pub stock: i64,
    /// Units held by reservations.
    pub reserved: i64,
    /// Units in expired lots.
    pub expired: i64,
}

/// A product's stock in one location, over its lots.
#[Object]
impl LocationStock {
    /// A stable id for client caches, derived from the product and the location (the same
    /// pair always has the same id). Not an argument of `node`: read it through its product.
    async fn id(&self) -> ID {
        ID(derived_id(&LOCATION_STOCK_NAMESPACE, self.product_id, self.location_id).to_string())
    }

    /// The location.
    async fn location(&self, ctx: &Context<'_>) -> Result<Location> {
        load_location(ctx, self.location_id).await
    }

    /// Units on hand there.
    async fn stock(&self) -> Result<i32> {
        Ok(to_int(self.stock)?)
    }

    /// Units there held by reservations.
    async fn reserved(&self) -> Result<i32> {
        Ok(to_int(self.reserved)?)
    }

    /// Units there that can be taken: `stock - reserved - expired`.
    async fn available(&self) -> Result<i32> {
        Ok(to_int(self.stock - self.reserved - self.expired)?)
    }

    /// Units there in lots past their date.
    async fn expired(&self) -> Result<i32> {
        Ok(to_int(self.expired)?)
    }
}

impl LocationStock {
    /// One entry per location of `buckets`, in order of the locations' first bucket.
    pub fn of(buckets: &[stock_bucket::Model]) -> Vec<Self> {
        let mut stocks: Vec<Self> = Vec::new();
        for bucket in buckets {
            let entry = match stocks
                .iter_mut()
                .position(|stock| stock.location_id == bucket.location_id)
            {
                Some(index) => &mut stocks[index],
                None => {
                    stocks.push(Self {
                        product_id: bucket.product_id,
                        location_id: bucket.location_id,
                        stock: 0,
                        reserved: 0,
                        expired: 0,
                    });
                    stocks.last_mut().expect("just pushed")
                }
            };
            entry.stock += bucket.stock;
            entry.reserved += bucket.reserved;
            entry.expired += bucket.expired_units();
        }
        stocks
    }
}

/// A lot (batch) of a product in one location. A lot is good through its `expiresOn` date
/// (UTC); from the next day its units are expired: on hand, never available.
#[derive(Clone)]
pub struct Lot(pub stock_bucket::Model);

/// A lot (batch) of a product in one location. A lot is good through its `expiresOn` date
/// (UTC); from the next day its units are expired: on hand, never available.
#[Object]
impl Lot {
    /// Its id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The product.
    async fn product(&self, ctx: &Context<'_>) -> Result<Product> {
        Ok(Product::from(ctx.load_product(self.0.product_id).await?))
    }

    /// The location it is kept in.
    async fn location(&self, ctx: &Context<'_>) -> Result<Location> {
        load_location(ctx, self.0.location_id).await
    }

    /// Its code; the same lot may sit in several locations, always with the same date.
    async fn code(&self) -> &str {
        &self.0.lot_code
    }

    /// Its last good day; null for a lot that never expires.
    async fn expires_on(&self) -> Option<Date> {
        self.0.expires_on.map(Date)
    }

    /// Units of it on hand in this location.
    async fn stock(&self) -> Result<i32> {
        Ok(to_int(self.0.stock)?)
    }

    /// Whether it has passed its date (its units are then never available).
    async fn expired(&self) -> bool {
        self.0.expired
    }

    /// When units first arrived in this lot and location.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One bucket's part of a movement: the units it took from or added to one location and lot.
pub struct StockAllocation(pub stock_allocation::Model);

/// One bucket's part of a movement: the units it took from or added to one location and lot.
#[Object]
impl StockAllocation {
    /// A stable id for client caches, derived from the movement and the bucket (an allocation
    /// never changes). Not an argument of `node`: read it through its movement.
    async fn id(&self) -> ID {
        ID(derived_id(
            &STOCK_ALLOCATION_NAMESPACE,
            self.0.movement_id,
            self.0.bucket_id,
        )
        .to_string())
    }

    /// The location.
    async fn location(&self, ctx: &Context<'_>) -> Result<Location> {
        load_location(ctx, self.0.location_id).await
    }

    /// The lot's code; null for the location's lot-less stock.
    async fn lot(&self) -> Option<&str> {
        (!self.0.lot_code.is_empty()).then_some(self.0.lot_code.as_str())
    }

    /// Signed: negative when units left the bucket.
    async fn quantity(&self) -> Result<i32> {
        Ok(to_int(self.0.quantity)?)
    }

    /// The bucket's stock before.
    async fn stock_before(&self) -> Result<i32> {
        Ok(to_int(self.0.stock_before)?)
    }

    /// The bucket's stock after.
    async fn stock_after(&self) -> Result<i32> {
        Ok(to_int(self.0.stock_after)?)
    }
}

/// The lot units arrive in.
#[derive(InputObject)]
pub struct LotInput {
    /// The lot's code (1 to 64 characters); created on first use.
    pub code: String,
    /// Its last good day; omit for a lot that never expires. Must match the date the code
    /// already has for this product.
    pub expires_on: Option<Date>,
}

impl LotInput {
    /// The lot, validated.
    pub fn parse(self) -> crate::error::Result<ServiceLotInput> {
        Ok(ServiceLotInput {
            code: LotCode::parse(&self.code)?,
            expires_on: self.expires_on.map(|date| date.0),
        })
    }
}

/// A new location.
#[derive(InputObject)]
pub struct CreateLocationInput {
    /// Its code: 1 to 32 characters, unique regardless of case.
    pub code: String,
    /// Its name: 1 to 200 characters.
    pub name: String,
    /// Lower is taken from first; 0 when omitted.
    pub priority: Option<i32>,
}

impl CreateLocationInput {
    /// The location, validated.
    pub fn parse(self) -> crate::error::Result<NewLocation> {
        Ok(NewLocation {
            code: LocationCode::parse(&self.code).map_err(|error| error.under("input"))?,
            name: LocationName::parse(&self.name).map_err(|error| error.under("input"))?,
            priority: self.priority.unwrap_or(0),
        })
    }
}

/// Changes to a location; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateLocationInput {
    /// A new code.
    pub code: Option<String>,
    /// A new name.
    pub name: Option<String>,
    /// A new priority.
    pub priority: Option<i32>,
}

impl UpdateLocationInput {
    /// The changes, validated.
    pub fn parse(self) -> crate::error::Result<LocationChanges> {
        Ok(LocationChanges {
            code: self
                .code
                .as_deref()
                .map(LocationCode::parse)
                .transpose()
                .map_err(|error| error.under("input"))?,
            name: self
                .name
                .as_deref()
                .map(LocationName::parse)
                .transpose()
                .map_err(|error| error.under("input"))?,
            priority: self.priority,
        })
    }
}
