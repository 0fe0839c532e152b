//! DataLoaders: nested look-ups that many nodes of one response share are batched into one
//! query (a page of 50 movements loads its products with one `WHERE id IN (...)`, not 50).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use uuid::Uuid;

use crate::entity::product;
use crate::error::Error;
use crate::service::ProductService;

/// Loads products by id, deleted ones included (the ledger keeps pointing at them).
pub struct ProductLoader {
    products: ProductService,
}

impl ProductLoader {
    /// A batching loader over `products`, spawning its batches on tokio.
    pub fn data_loader(products: ProductService) -> DataLoader<Self> {
        DataLoader::new(Self { products }, tokio::spawn)
    }
}

impl Loader<Uuid> for ProductLoader {
    type Value = product::Model;
    type Error = Arc<Error>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, product::Model>, Self::Error> {
        let products = self
            .products
            .find_many_including_deleted(ids)
            .await
            .map_err(Arc::new)?;
        Ok(products
            .into_iter()
            .map(|product| (product.id, product))
            .collect())
    }
}
