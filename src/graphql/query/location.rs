//! Location and lot queries.

use async_graphql::{Context, ID, Object, Result};

use crate::domain::DaysAhead;
use crate::graphql::context::ContextExt;
use crate::graphql::types::{Location, Lot, parse_id};

/// Reading locations and lots.
#[derive(Default)]
pub struct LocationQuery;

#[Object]
impl LocationQuery {
    /// Every location, by priority then code.
    async fn locations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Also archived locations (false when omitted).")] include_archived: Option<
            bool,
        >,
    ) -> Result<Vec<Location>> {
        Ok(ctx
            .services()?
            .locations
            .list(include_archived.unwrap_or(false))
            .await?
            .into_iter()
            .map(Location)
            .collect())
    }

    /// A location by id (archived ones too); null when there is none.
    async fn location(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Location>> {
        let id = parse_id("id", &id)?;
        Ok(ctx.services()?.locations.find(id).await?.map(Location))
    }

    /// A location by code, regardless of case; null when there is none.
    async fn location_by_code(&self, ctx: &Context<'_>, code: String) -> Result<Option<Location>> {
        Ok(ctx
            .services()?
            .locations
            .find_by_code(&code)
            .await?
            .map(Location))
    }

    /// Lots with units on hand that are still good but expire within `withinDays` days (0:
    /// their last good day is today), soonest first; at most 500.
    async fn expiring_lots(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many days ahead to look: 0 to 3650.")] within_days: i32,
        #[graphql(desc = "Only lots in this location.")] location_id: Option<ID>,
    ) -> Result<Vec<Lot>> {
        let within = DaysAhead::parse(within_days.into())?;
        let location_id =
            crate::graphql::mutation::parse_optional_id("locationId", location_id.as_ref())?;
        Ok(ctx
            .services()?
            .stock
            .expiring_lots(within, location_id)
            .await?
            .into_iter()
            .map(Lot)
            .collect())
    }
}
