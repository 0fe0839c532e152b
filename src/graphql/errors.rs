//! How domain errors become GraphQL errors: every error a client sees carries one of the
//! API's documented `extensions.code` values (README, Errors), and internal details never
//! leave the server.
//!
//! Resolvers return domain [`Error`]s with `?`; async-graphql keeps the original error as the
//! `source` of the GraphQL error, and [`ErrorCodes`] reads it back to set the code.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::{Response, ServerError};
use std::sync::Arc;

use crate::error::Error;
use crate::events::SubscriptionLost;

/// Sets `extensions.code` on every error of every response: the domain error's code when a
/// resolver failed, else `BAD_USER_INPUT` (what remains are async-graphql's own parse,
/// validation and input-coercion errors, which all mean the request itself was wrong).
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

/// A response carrying only `error`, with its code set like every other error's.
pub fn response_with_error(error: async_graphql::Error) -> Response {
    let mut server_error = ServerError::new(error.message, None);
    server_error.source = error.source;
    server_error.extensions = error.extensions;
    with_codes(Response::from_errors(vec![server_error]))
}

fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        set_code(error);
    }
    response
}

/// Codes of errors that refuse a request before any of it runs: when every error of a response
/// has one of these and no path, nothing was executed.
pub const REQUEST_ERROR_CODES: [&str; 5] = [
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
];

/// Marks errors of a document that does not parse, or does not validate, with their code.
pub fn mark_document_errors(errors: &mut [ServerError], code: &str) {
    for error in errors {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}

/// Codes of failures of the system, whose errors name the request so that an operator can find
/// the log line with the cause.
pub const SYSTEM_FAILURE_CODES: [&str; 3] = ["INTERNAL", "UNAVAILABLE", "TIMEOUT"];

fn set_code(error: &mut ServerError) {
    let source = error.source.clone();
    let domain_error = source
        .as_deref()
        .and_then(|source| source.downcast_ref::<Error>());
    if let Some(domain_error) = domain_error {
        // The full story goes to the log; the client sees only the fixed message.
        domain_error.log_cause();
    }
    let lost = source
        .as_deref()
        .and_then(|source| source.downcast_ref::<SubscriptionLost>());
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if let Some(lost) = lost {
        // Not a failure of the request: the client must subscribe again to stay current.
        extensions.set("code", "SUBSCRIPTION_INTERRUPTED");
        extensions.set("resubscribe", true);
        let reason = match lost {
            SubscriptionLost::Lagged(_) => "LAGGED",
            SubscriptionLost::Interrupted => "INTERRUPTED",
        };
        extensions.set("reason", reason);
        return;
    }
    let Some(domain_error) = domain_error else {
        if extensions.get("code").is_none() {
            // A persisted query this instance does not know: the client sends the text again
            // (Apollo's links look for this code).
            let code = if error.message == "PersistedQueryNotFound" {
                "PERSISTED_QUERY_NOT_FOUND"
            } else {
                "BAD_USER_INPUT"
            };
            extensions.set("code", code);
        }
        return;
    };
    extensions.set("code", domain_error.code());
    match domain_error {
        Error::InsufficientStock {
            available,
            requested,
        } => {
            extensions.set("available", *available);
            extensions.set("requested", *requested);
        }
        Error::VersionConflict { actual, .. } => extensions.set("currentVersion", *actual),
        Error::BadUserInput { field, .. } if !field.is_empty() => {
            extensions.set("field", field.clone());
        }
        _ => {}
    }
}
