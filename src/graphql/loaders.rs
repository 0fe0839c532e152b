//! DataLoaders: nested look-ups that many nodes of one response share are batched into one
//! query (a page of 50 movements loads its products with one `WHERE id IN (...)`, not 50; a
//! page of 50 products loads their `movements` pages with one statement, not 50).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::dataloader::{DataLoader, Loader};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::entity::{location, product, stock_allocation, stock_bucket, stock_movement};
use crate::error::{Error, Result as ServiceResult};
use crate::service::{LocationService, PageDirection, ProductService, StockService};

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

/// One product's page of movements, as `Product.movements` asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MovementPageKey {
    /// The product.
    pub product_id: Uuid,
    /// The product version the page starts past (from the cursor), if any.
    pub cursor_version: Option<i32>,
    /// Which way the page goes from the cursor.
    pub direction: PageDirection,
    /// How many movements to fetch.
    pub limit: u64,
}

/// Loads products' movement pages: every key with the same cursor, direction and size (a list
/// of products asking for their last few movements) is one statement.
pub struct MovementPageLoader {
    stock: StockService,
}

impl MovementPageLoader {
    /// A batching loader over `stock`, spawning its batches on tokio.
    pub fn data_loader(stock: StockService) -> DataLoader<Self> {
        DataLoader::new(Self { stock }, tokio::spawn)
    }
}

impl Loader<MovementPageKey> for MovementPageLoader {
    type Value = Vec<stock_movement::Model>;
    type Error = Arc<Error>;

    async fn load(
        &self,
        keys: &[MovementPageKey],
    ) -> Result<HashMap<MovementPageKey, Self::Value>, Self::Error> {
        let mut groups: HashMap<(Option<i32>, PageDirection, u64), Vec<Uuid>> = HashMap::new();
        for key in keys {
            groups
                .entry((key.cursor_version, key.direction, key.limit))
                .or_default()
                .push(key.product_id);
        }
        let mut pages: HashMap<MovementPageKey, Self::Value> = HashMap::new();
        for ((cursor_version, direction, limit), product_ids) in groups {
            for product_id in &product_ids {
                pages.insert(
                    MovementPageKey {
                        product_id: *product_id,
                        cursor_version,
                        direction,
                        limit,
                    },
                    Vec::new(),
                );
            }
            let movements = self
                .stock
                .movements_of_products(&product_ids, cursor_version, direction, limit)
                .await
                .map_err(Arc::new)?;
            for movement in movements {
                let key = MovementPageKey {
                    product_id: movement.product_id,
                    cursor_version,
                    direction,
                    limit,
                };
                pages.entry(key).or_default().push(movement);
            }
        }
        Ok(pages)
    }
}

/// Counts products' movements (`totalCount` of `Product.movements`), one statement per batch.
pub struct MovementCountLoader {
    stock: StockService,
}

impl MovementCountLoader {
    /// A batching loader over `stock`, spawning its batches on tokio.
    pub fn data_loader(stock: StockService) -> DataLoader<Self> {
        DataLoader::new(Self { stock }, tokio::spawn)
    }
}

impl Loader<Uuid> for MovementCountLoader {
    type Value = u64;
    type Error = Arc<Error>;

    async fn load(&self, product_ids: &[Uuid]) -> Result<HashMap<Uuid, u64>, Self::Error> {
        let mut counts = self
            .stock
            .count_movements_of_products(product_ids)
            .await
            .map_err(Arc::new)?;
        for product_id in product_ids {
            counts.entry(*product_id).or_insert(0);
        }
        Ok(counts)
    }
}

/// A page of movements as every product of a listing asks for it.
type MovementPageArguments = (Option<i32>, PageDirection, u64);

/// Products returned together (a page of `products`, the products of `nodes`). The first of
/// them to ask for a nested connection loads it for all of them in one statement, so a page of
/// products with their movements costs the same few statements however long the page is
/// (a [`DataLoader`] batches by time, which a slow or busy server can split).
#[derive(Debug)]
pub struct ProductListing {
    product_ids: Vec<Uuid>,
    movement_pages: Mutex<HashMap<MovementPageArguments, Arc<MovementPages>>>,
    movement_counts: OnceCell<HashMap<Uuid, u64>>,
}

type MovementPages = OnceCell<HashMap<Uuid, Vec<stock_movement::Model>>>;

impl ProductListing {
    /// The listing of these products.
    pub fn new(product_ids: Vec<Uuid>) -> Self {
        Self {
            product_ids,
            movement_pages: Mutex::default(),
            movement_counts: OnceCell::new(),
        }
    }

    /// `key.product_id`'s page of movements, loaded with the same page of every product listed.
    pub async fn movement_page(
        &self,
        stock: &StockService,
        key: MovementPageKey,
    ) -> ServiceResult<Vec<stock_movement::Model>> {
        let cell = self
            .movement_pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((key.cursor_version, key.direction, key.limit))
            .or_default()
            .clone();
        let pages = cell
            .get_or_try_init(|| async {
                let mut pages: HashMap<Uuid, Vec<stock_movement::Model>> = HashMap::new();
                for movement in stock
                    .movements_of_products(
                        &self.product_ids,
                        key.cursor_version,
                        key.direction,
                        key.limit,
                    )
                    .await?
                {
                    pages.entry(movement.product_id).or_default().push(movement);
                }
                Ok::<_, Error>(pages)
            })
            .await?;
        Ok(pages.get(&key.product_id).cloned().unwrap_or_default())
    }

    /// How many movements `product_id` has, counted with every product listed.
    pub async fn movement_count(
        &self,
        stock: &StockService,
        product_id: Uuid,
    ) -> ServiceResult<u64> {
        let counts = self
            .movement_counts
            .get_or_try_init(|| stock.count_movements_of_products(&self.product_ids))
            .await?;
        Ok(counts.get(&product_id).copied().unwrap_or(0))
    }
}

/// Loads locations by id, archived ones included.
pub struct LocationLoader {
    locations: LocationService,
}

impl LocationLoader {
    /// A batching loader over `locations`, spawning its batches on tokio.
    pub fn data_loader(locations: LocationService) -> DataLoader<Self> {
        DataLoader::new(Self { locations }, tokio::spawn)
    }
}

impl Loader<Uuid> for LocationLoader {
    type Value = location::Model;
    type Error = Arc<Error>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, location::Model>, Self::Error> {
        let locations = self.locations.find_many(ids).await.map_err(Arc::new)?;
        Ok(locations
            .into_iter()
            .map(|location| (location.id, location))
            .collect())
    }
}

/// What a bucket loader is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BucketsOf {
    /// A product's buckets (`stockByLocation`, `lots`).
    Product(Uuid),
    /// A movement's allocations (`allocations`).
    Movement(Uuid),
}

/// Loads products' buckets and movements' allocations, each kind in one query per batch.
pub struct StockDetailLoader {
    stock: StockService,
}

/// A product's buckets or a movement's allocations.
#[derive(Clone, Debug)]
pub enum StockDetail {
    /// Buckets, oldest first.
    Buckets(Vec<stock_bucket::Model>),
    /// Allocations, in the order they were written.
    Allocations(Vec<stock_allocation::Model>),
}

impl StockDetailLoader {
    /// A batching loader over `stock`, spawning its batches on tokio.
    pub fn data_loader(stock: StockService) -> DataLoader<Self> {
        DataLoader::new(Self { stock }, tokio::spawn)
    }
}

impl Loader<BucketsOf> for StockDetailLoader {
    type Value = StockDetail;
    type Error = Arc<Error>;

    async fn load(
        &self,
        keys: &[BucketsOf],
    ) -> Result<HashMap<BucketsOf, StockDetail>, Self::Error> {
        let mut products = Vec::new();
        let mut movements = Vec::new();
        for key in keys {
            match key {
                BucketsOf::Product(id) => products.push(*id),
                BucketsOf::Movement(id) => movements.push(*id),
            }
        }
        let mut details: HashMap<BucketsOf, StockDetail> = HashMap::new();
        if !products.is_empty() {
            for id in &products {
                details.insert(BucketsOf::Product(*id), StockDetail::Buckets(Vec::new()));
            }
            for bucket in self
                .stock
                .buckets_of_products(&products)
                .await
                .map_err(Arc::new)?
            {
                if let Some(StockDetail::Buckets(buckets)) =
                    details.get_mut(&BucketsOf::Product(bucket.product_id))
                {
                    buckets.push(bucket);
                }
            }
        }
        if !movements.is_empty() {
            for id in &movements {
                details.insert(
                    BucketsOf::Movement(*id),
                    StockDetail::Allocations(Vec::new()),
                );
            }
            let mut allocations = self
                .stock
                .allocations_of(&movements)
                .await
                .map_err(Arc::new)?;
            // Taken first, then added (a transfer), each in bucket order.
            allocations.sort_by_key(|allocation| (allocation.quantity > 0, allocation.bucket_id));
            for allocation in allocations {
                if let Some(StockDetail::Allocations(list)) =
                    details.get_mut(&BucketsOf::Movement(allocation.movement_id))
                {
                    list.push(allocation);
                }
            }
        }
        Ok(details)
    }
}
