//! Location mutations (admin): create, update, archive.

use async_graphql::{Context, ID, Object, Result};

use crate::graphql::context::ContextExt;
use crate::graphql::types::{CreateLocationInput, Location, UpdateLocationInput, parse_id};

/// Managing locations.
#[derive(Default)]
pub struct LocationMutation;

#[Object]
impl LocationMutation {
    /// Creates a location. Errors: `BAD_USER_INPUT` (empty or too long code or name, a code
    /// another location has regardless of case).
    async fn create_location(
        &self,
        ctx: &Context<'_>,
        input: CreateLocationInput,
    ) -> Result<Option<Location>> {
        let new = input.parse()?;
        Ok(Some(Location(ctx.services()?.locations.create(new).await?)))
    }

    /// Changes a location's code, name or priority. Errors: `BAD_USER_INPUT` (unknown id, a
    /// code another location has; `MAIN` keeps its code).
    async fn update_location(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateLocationInput,
    ) -> Result<Option<Location>> {
        let id = parse_id("id", &id)?;
        let changes = input.parse()?;
        Ok(Some(Location(
            ctx.services()?.locations.update(id, changes).await?,
        )))
    }

    /// Archives a location: it takes no more stock and is listed only with
    /// `includeArchived`. Errors: `LOCATION_NOT_EMPTY` while it holds stock or reserved units,
    /// `BAD_USER_INPUT` (unknown id, `MAIN`).
    async fn archive_location(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Location>> {
        let id = parse_id("id", &id)?;
        Ok(Some(Location(ctx.services()?.locations.archive(id).await?)))
    }
}
