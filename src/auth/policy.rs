//! The one place that says which role each operation needs. GraphQL guards and REST handlers
//! both ask [`authorize`]; an operation missing from the table is refused to everyone.

use crate::domain::{Actor, Role};
use crate::error::{Error, Result};

use super::Caller;

/// Every GraphQL root field (queries, mutations, subscriptions) and the least role that may
/// use it. REST endpoints use the name of the GraphQL operation they stand for.
pub const POLICY: &[(&str, Role)] = &[
    // Queries
    ("product", Role::Viewer),
    ("productBySku", Role::Viewer),
    ("products", Role::Viewer),
    ("productStatus", Role::Viewer),
    ("stockMovements", Role::Viewer),
    ("verifyLedger", Role::Admin),
    ("reservation", Role::Viewer),
    ("node", Role::Viewer),
    ("nodes", Role::Viewer),
    ("locations", Role::Viewer),
    ("location", Role::Viewer),
    ("locationByCode", Role::Viewer),
    ("expiringLots", Role::Viewer),
    ("webhooks", Role::Admin),
    ("webhookDeliveries", Role::Admin),
    // Mutations
    ("createProduct", Role::Manager),
    ("updateProduct", Role::Manager),
    ("addStock", Role::Manager),
    ("reduceStock", Role::Manager),
    ("deleteProduct", Role::Admin),
    ("restoreProduct", Role::Admin),
    ("reserveStock", Role::Manager),
    ("commitReservation", Role::Manager),
    ("releaseReservation", Role::Manager),
    ("transferStock", Role::Manager),
    ("writeOffStock", Role::Manager),
    ("syncStock", Role::Manager),
    ("createLocation", Role::Admin),
    ("updateLocation", Role::Admin),
    ("archiveLocation", Role::Admin),
    ("createWebhook", Role::Admin),
    ("updateWebhook", Role::Admin),
    ("deleteWebhook", Role::Admin),
    ("redeliverWebhookEvent", Role::Admin),
    // Subscriptions
    ("lowStock", Role::Viewer),
    ("stockChanged", Role::Viewer),
    ("lotExpired", Role::Viewer),
];

/// REST endpoints that stand for no GraphQL field, and the least role each needs.
pub const REST_ONLY: &[(&str, Role)] = &[
    ("importInventory", Role::Manager),
    ("exportInventory", Role::Viewer),
    ("exportMovements", Role::Viewer),
];

/// The declared name equal to `operation`, as a `'static` label for metrics.
pub fn declared_operation(operation: &str) -> Option<&'static str> {
    POLICY
        .iter()
        .chain(REST_ONLY)
        .find(|(name, _)| *name == operation)
        .map(|(name, _)| *name)
}

/// The least role `operation` needs, if it is declared.
pub fn required_role(operation: &str) -> Option<Role> {
    POLICY
        .iter()
        .chain(REST_ONLY)
        .find(|(name, _)| *name == operation)
        .map(|(_, role)| *role)
}

/// The caller's actor if it may run `operation`: `UNAUTHENTICATED` without credentials,
/// `FORBIDDEN` when its role is too low (or the operation has no declared role).
pub fn authorize<'a>(caller: &'a Caller, operation: &str) -> Result<&'a Actor> {
    let actor = caller.actor()?;
    let Some(required) = required_role(operation) else {
        return Err(Error::Forbidden(format!(
            "'{operation}' has no declared role and is refused"
        )));
    };
    if actor.role < required {
        return Err(Error::Forbidden(format!(
            "'{operation}' needs the {required:?} role or higher",
        )));
    }
    Ok(actor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Caller {
        Caller::authenticated(
            Actor {
                subject: "someone".into(),
                role,
            },
            None,
        )
    }

    #[test]
    fn roles_include_the_ones_below_them() {
        assert!(authorize(&caller(Role::Viewer), "products").is_ok());
        assert_eq!(
            authorize(&caller(Role::Viewer), "addStock")
                .unwrap_err()
                .code(),
            "FORBIDDEN"
        );
        assert!(authorize(&caller(Role::Manager), "addStock").is_ok());
        assert_eq!(
            authorize(&caller(Role::Manager), "deleteProduct")
                .unwrap_err()
                .code(),
            "FORBIDDEN"
        );
        assert!(authorize(&caller(Role::Admin), "deleteProduct").is_ok());
    }

    #[test]
    fn undeclared_operations_are_refused_and_anonymous_callers_are_unauthenticated() {
        assert_eq!(
            authorize(&caller(Role::Admin), "dropDatabase")
                .unwrap_err()
                .code(),
            "FORBIDDEN"
        );
        assert_eq!(
            authorize(&Caller::anonymous(), "products")
                .unwrap_err()
                .code(),
            "UNAUTHENTICATED"
        );
    }
}
