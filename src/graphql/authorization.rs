//! Default-deny authorization of every GraphQL operation, before anything of it runs.
//!
//! When a document has been parsed and validated (so that unknown fields are reported as
//! such), [`RootFieldPolicy`] finds the operation that will run and asks the policy table ([`policy::authorize`]) about each of its root fields, looking through
//! fragments. A root field the table does not name is refused to everyone, so a resolver added
//! without a policy entry cannot run at all. Queries, mutations and subscriptions (over HTTP and
//! WebSocket) all pass here; introspection fields (`__schema`, `__type`, `__typename`) are
//! governed by `--no-introspection` instead.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError, ServerResult, ValidationResult, Variables};

use super::document::{root_fields, selected_operation};
use super::errors::mark_document_errors;
use crate::auth::{Caller, policy};

/// Refuses an operation unless the caller may run every one of its root fields.
pub struct RootFieldPolicy;

impl ExtensionFactory for RootFieldPolicy {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RootFieldPolicyExtension::default())
    }
}

#[derive(Default)]
struct RootFieldPolicyExtension {
    /// The operation the request names, if it names one.
    operation_name: Mutex<Option<String>>,
    /// The root fields of the operation that will run, once the document is parsed.
    root_fields: Mutex<Vec<String>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for RootFieldPolicyExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        *lock(&self.operation_name) = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let operation_name = lock(&self.operation_name).clone();
        // A document whose operation cannot be found runs nothing: execution reports that.
        if let Some(operation) = selected_operation(&document, operation_name.as_deref()) {
            *lock(&self.root_fields) = root_fields(operation, &document)
                .into_iter()
                .map(|field| field.name.to_owned())
                .collect();
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|mut errors| {
            mark_document_errors(&mut errors, "GRAPHQL_VALIDATION_FAILED");
            errors
        })?;
        let anonymous = Caller::anonymous();
        let caller = ctx.data_opt::<Caller>().unwrap_or(&anonymous);
        for field in lock(&self.root_fields).iter() {
            if field.starts_with("__") {
                continue;
            }
            if let Err(refusal) = policy::authorize(caller, field) {
                let mut error = ServerError::new(refusal.to_string(), None);
                error.source = Some(Arc::new(refusal) as Arc<_>);
                return Err(vec![error]);
            }
        }
        Ok(result)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;
    use crate::domain::Role;
    use crate::error::Error;

    struct TestQuery;

    #[Object]
    impl TestQuery {
        /// A field the policy table names (viewers may read it).
        async fn product(&self) -> i32 {
            1
        }

        /// A field someone forgot to add to the policy table.
        async fn forgotten_field(&self) -> i32 {
            2
        }
    }

    fn schema() -> Schema<TestQuery, EmptyMutation, EmptySubscription> {
        Schema::build(TestQuery, EmptyMutation, EmptySubscription)
            .extension(RootFieldPolicy)
            .finish()
    }

    fn admin() -> Caller {
        crate::auth::Authenticator::new(&crate::auth::AuthSettings::default())
            .authenticate(None)
            .unwrap()
    }

    #[tokio::test]
    async fn a_root_field_missing_from_the_policy_cannot_run_even_for_an_admin() {
        assert_eq!(admin().actor().unwrap().role, Role::Admin);
        let response = schema()
            .execute(Request::new("{ product forgottenField }").data(admin()))
            .await;
        assert!(response.data.into_json().unwrap().is_null());
        assert!(response.errors[0].message.contains("forgottenField"));

        let through_a_fragment = schema()
            .execute(
                Request::new("query { ...F } fragment F on TestQuery { forgottenField }")
                    .data(admin()),
            )
            .await;
        assert_eq!(through_a_fragment.errors.len(), 1);
    }

    #[tokio::test]
    async fn declared_fields_run_for_callers_with_the_role_and_not_for_anonymous_ones() {
        let allowed = schema()
            .execute(Request::new("{ product __typename }").data(admin()))
            .await;
        assert!(allowed.errors.is_empty(), "{:?}", allowed.errors);

        let anonymous = schema()
            .execute(Request::new("{ product }").data(Caller::anonymous()))
            .await;
        assert_eq!(anonymous.errors.len(), 1);
        let source = anonymous.errors[0].source.as_ref().unwrap();
        assert_eq!(
            source.downcast_ref::<Error>().unwrap().code(),
            "UNAUTHENTICATED"
        );
    }

    #[tokio::test]
    async fn only_the_operation_that_runs_is_judged() {
        let response = schema()
            .execute(
                Request::new("query A { product } query B { forgottenField }")
                    .operation_name("A")
                    .data(admin()),
            )
            .await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
    }
}
