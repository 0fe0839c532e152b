//! Parse once: documents parsed before are kept by their text, so a query a client repeats
//! (every product page, every stock board refresh) costs no parsing. Automatic persisted
//! queries (`extensions.persistedQuery`) go further: the client sends only the query's hash.
//!
//! The cache sits innermost among the extensions: every other check (limits, authorization)
//! still runs on every request, on a copy of the cached document.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};
use moka::sync::Cache;

/// Longest query text kept, in bytes: longer ones are parsed each time (they are rare, and
/// must not crowd out the common ones).
const MAX_CACHED_QUERY_BYTES: usize = 16 * 1024;

/// How much query text the cache holds in all, in bytes (a parsed document takes a few times
/// its text).
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Keeps parsed documents by query text.
#[derive(Clone)]
pub struct DocumentCache {
    documents: Cache<Arc<str>, Arc<ExecutableDocument>>,
}

impl Default for DocumentCache {
    fn default() -> Self {
        Self {
            documents: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|query: &Arc<str>, _| u32::try_from(query.len()).unwrap_or(u32::MAX))
                .build(),
        }
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentCache {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // An empty text is a persisted query's: its document came with the request.
        if query.is_empty() || query.len() > MAX_CACHED_QUERY_BYTES {
            return next.run(ctx, query, variables).await;
        }
        if let Some(document) = self.documents.get(query) {
            return Ok(ExecutableDocument::clone(&document));
        }
        // Only documents that parse are kept: a broken one is reported afresh each time.
        let document = next.run(ctx, query, variables).await?;
        self.documents
            .insert(Arc::from(query), Arc::new(document.clone()));
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn value(&self) -> i32 {
            7
        }
    }

    fn held(cache: &DocumentCache) -> u64 {
        cache.documents.run_pending_tasks();
        cache.documents.entry_count()
    }

    #[tokio::test]
    async fn a_repeated_query_is_parsed_once_and_answers_the_same() {
        let cache = DocumentCache::default();
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(cache.clone())
            .finish();
        let first = schema.execute("{ value }").await;
        let second = schema.execute("{ value }").await;
        assert_eq!(first.data, second.data);
        assert!(second.errors.is_empty());
        assert_eq!(held(&cache), 1);
        // Documents that do not parse are not kept, and keep failing.
        for _ in 0..2 {
            assert!(!schema.execute("{ value ").await.errors.is_empty());
        }
        assert_eq!(held(&cache), 1);
        // Nor are huge ones.
        let huge = format!("{{ value {} }}", " ".repeat(MAX_CACHED_QUERY_BYTES));
        assert!(schema.execute(huge.as_str()).await.errors.is_empty());
        assert_eq!(held(&cache), 1);
    }
}
