//! Locations: where stock is kept. Listing and look-ups, and create / update / archive.
//!
//! A write that puts units into a location locks the location's row for share
//! ([`receiving_location`]) and archiving locks it for update, so an archive and a receipt of
//! the same location serialize: a location is never archived while it holds stock.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use super::now;
use crate::database::Database;
use crate::domain::{LocationCode, LocationName};
use crate::entity::{location, stock_bucket};
use crate::error::{Error, Result};

/// The id of location `MAIN`, which always exists and cannot be archived.
pub fn main_location_id() -> Uuid {
    Uuid::parse_str(migration::MAIN_LOCATION_ID).expect("a valid constant")
}

/// A location to create, validated.
#[derive(Clone, Debug)]
pub struct NewLocation {
    /// Its code, unique regardless of case.
    pub code: LocationCode,
    /// Its name.
    pub name: LocationName,
    /// Lower goes first when units are taken without naming a location.
    pub priority: i32,
}

/// The fields an update may change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct LocationChanges {
    /// A new code.
    pub code: Option<LocationCode>,
    /// A new name.
    pub name: Option<LocationName>,
    /// A new priority.
    pub priority: Option<i32>,
}

/// Lists, creates, updates and archives locations.
#[derive(Clone, Debug)]
pub struct LocationService {
    database: Database,
}

impl LocationService {
    pub(super) fn new(database: Database) -> Self {
        Self { database }
    }

    /// Every location by priority then code; archived ones only when asked.
    pub async fn list(&self, include_archived: bool) -> Result<Vec<location::Model>> {
        let mut query = location::Entity::find();
        if !include_archived {
            query = query.filter(location::Column::ArchivedAt.is_null());
        }
        Ok(query
            .order_by_asc(location::Column::Priority)
            .order_by_asc(location::Column::CodeKey)
            .all(self.database.connection())
            .await?)
    }

    /// A location by id, archived or not.
    pub async fn find(&self, id: Uuid) -> Result<Option<location::Model>> {
        Ok(location::Entity::find_by_id(id)
            .one(self.database.connection())
            .await?)
    }

    /// Locations by id, in one query (missing ones are simply absent).
    pub async fn find_many(&self, ids: &[Uuid]) -> Result<Vec<location::Model>> {
        Ok(location::Entity::find()
            .filter(location::Column::Id.is_in(ids.iter().copied()))
            .all(self.database.connection())
            .await?)
    }

    /// A location by code, regardless of case.
    pub async fn find_by_code(&self, code: &str) -> Result<Option<location::Model>> {
        let Ok(code) = LocationCode::parse(code) else {
            return Ok(None);
        };
        Ok(location::Entity::find()
            .filter(location::Column::CodeKey.eq(code.key()))
            .one(self.database.connection())
            .await?)
    }

    /// Creates a location. `BAD_USER_INPUT` when another location has the code (regardless of
    /// case).
    pub async fn create(&self, new: NewLocation) -> Result<location::Model> {
        let transaction = self.database.begin_write().await?;
        ensure_code_free(&*transaction, &new.code, None).await?;
        let created = location::Model {
            id: Uuid::now_v7(),
            code: new.code.as_str().to_owned(),
            code_key: new.code.key(),
            name: new.name.as_str().to_owned(),
            priority: new.priority,
            created_at: now(),
            archived_at: None,
        }
        .into_active_model()
        .reset_all()
        .insert(&*transaction)
        .await
        .map_err(|error| code_taken_or(error, &new.code))?;
        transaction.commit().await?;
        Ok(created)
    }

    /// Changes a location's code, name or priority. `BAD_USER_INPUT` for an unknown id or a
    /// code another location has.
    pub async fn update(&self, id: Uuid, changes: LocationChanges) -> Result<location::Model> {
        let transaction = self.database.begin_write().await?;
        let current = lock_location(&*transaction, id).await?;
        let mut row = current.clone().into_active_model();
        if let Some(code) = &changes.code {
            if id == main_location_id() && code.key() != current.code_key {
                return Err(Error::bad_field("code", "location MAIN keeps its code").under("input"));
            }
            ensure_code_free(&*transaction, code, Some(id)).await?;
            row.code = Set(code.as_str().to_owned());
            row.code_key = Set(code.key());
        }
        if let Some(name) = &changes.name {
            row.name = Set(name.as_str().to_owned());
        }
        if let Some(priority) = changes.priority {
            row.priority = Set(priority);
        }
        let updated = if row.is_changed() {
            row.update(&*transaction)
                .await
                .map_err(|error| match &changes.code {
                    Some(code) => code_taken_or(error, code),
                    None => error.into(),
                })?
        } else {
            current
        };
        transaction.commit().await?;
        Ok(updated)
    }

    /// Archives a location: it takes no new stock and is listed only on request.
    /// `LOCATION_NOT_EMPTY` while any bucket there holds stock or reserved units;
    /// `BAD_USER_INPUT` for `MAIN` or an unknown id. Archiving an archived location returns it
    /// unchanged.
    pub async fn archive(&self, id: Uuid) -> Result<location::Model> {
        #[derive(FromQueryResult)]
        struct Held {
            stock: Option<i64>,
            reserved: Option<i64>,
        }
        if id == main_location_id() {
            return Err(Error::bad_field("id", "location MAIN cannot be archived"));
        }
        let transaction = self.database.begin_write().await?;
        let current = lock_location(&*transaction, id).await?;
        if current.is_archived() {
            return Ok(current);
        }
        let held = stock_bucket::Entity::find()
            .select_only()
            .column_as(Expr::cust("CAST(SUM(stock) AS BIGINT)"), "stock")
            .column_as(Expr::cust("CAST(SUM(reserved) AS BIGINT)"), "reserved")
            .filter(stock_bucket::Column::LocationId.eq(id))
            .into_model::<Held>()
            .one(&*transaction)
            .await?;
        let (stock, reserved) = held.map_or((0, 0), |held| {
            (held.stock.unwrap_or(0), held.reserved.unwrap_or(0))
        });
        if stock > 0 || reserved > 0 {
            return Err(Error::LocationNotEmpty(format!(
                "location {} still holds {stock} units ({reserved} reserved); move or write them off first",
                current.code
            )));
        }
        let mut row = current.into_active_model();
        row.archived_at = Set(Some(now()));
        let archived = row.update(&*transaction).await?;
        transaction.commit().await?;
        Ok(archived)
    }
}

/// Locks a location for update (`BAD_USER_INPUT` on `id` when there is none).
async fn lock_location(transaction: &impl ConnectionTrait, id: Uuid) -> Result<location::Model> {
    location::Entity::find_by_id(id)
        .lock_exclusive()
        .one(transaction)
        .await?
        .ok_or_else(|| Error::bad_field("id", format!("no location has the id '{id}'")))
}

/// The location units of a write go to, locked for share until commit (so it cannot be
/// archived meanwhile): `MAIN` when `id` is `None`. `BAD_USER_INPUT` on `field` when it does not
/// exist or is archived.
pub(super) async fn receiving_location(
    transaction: &impl ConnectionTrait,
    id: Option<Uuid>,
    field: &str,
) -> Result<location::Model> {
    let id = id.unwrap_or_else(main_location_id);
    let location = location::Entity::find_by_id(id)
        .lock_shared()
        .one(transaction)
        .await?
        .ok_or_else(|| Error::bad_field(field, format!("no location has the id '{id}'")))?;
    if location.is_archived() {
        return Err(Error::bad_field(
            field,
            format!("location {} is archived and takes no stock", location.code),
        ));
    }
    Ok(location)
}

/// A location units are taken from: `BAD_USER_INPUT` on `field` when it does not exist or is
/// archived.
pub(super) async fn existing_location(
    connection: &impl ConnectionTrait,
    id: Uuid,
    field: &str,
) -> Result<location::Model> {
    let location = location::Entity::find_by_id(id)
        .one(connection)
        .await?
        .ok_or_else(|| Error::bad_field(field, format!("no location has the id '{id}'")))?;
    if location.is_archived() {
        return Err(Error::bad_field(
            field,
            format!("location {} is archived", location.code),
        ));
    }
    Ok(location)
}

async fn ensure_code_free(
    transaction: &impl ConnectionTrait,
    code: &LocationCode,
    except: Option<Uuid>,
) -> Result<()> {
    let mut query = location::Entity::find().filter(location::Column::CodeKey.eq(code.key()));
    if let Some(id) = except {
        query = query.filter(location::Column::Id.ne(id));
    }
    if query.one(transaction).await?.is_some() {
        return Err(code_taken(code));
    }
    Ok(())
}

fn code_taken(code: &LocationCode) -> Error {
    Error::bad_field(
        "code",
        format!("another location has the code '{}'", code.as_str()),
    )
    .under("input")
}

/// A unique-index violation on the code (a concurrent create) as [`code_taken`].
fn code_taken_or(error: sea_orm::DbErr, code: &LocationCode) -> Error {
    if matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    ) {
        code_taken(code)
    } else {
        error.into()
    }
}
