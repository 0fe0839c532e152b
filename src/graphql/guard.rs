//! The guard on every root field: it asks the policy table whether the caller may run it.

use async_graphql::{Context, Guard, Result};

use crate::auth::policy;
use crate::graphql::context::ContextExt;

/// Lets the caller through only if its role allows the named operation (see
/// [`policy::POLICY`]).
pub struct Requires(pub &'static str);

impl Guard for Requires {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        policy::authorize(ctx.caller()?, self.0)?;
        Ok(())
    }
}
