//! Reads from memory: live products by id (and by SKU), kept up to date by the commit stream.
//!
//! Every committed change to a product travels as an event (see [`crate::events`]) to every
//! instance; each instance puts the product as the event left it into its cache *before* the
//! event reaches its subscribers, and the instance that made the change does so as soon as its
//! commit returns, so it reads its own writes. Entries are only ever replaced by a later
//! version of the product: a read that fetched an older row from the database while a change
//! committed cannot put the older row back. When events may have been missed (the PostgreSQL
//! listener reconnected), the whole cache is emptied.
//!
//! Only reads use the cache (`product`, `productBySku`, `productStatus`, the REST GETs); stock
//! decisions always lock the row in the database.

use std::sync::Arc;

use moka::ops::compute::Op;
use moka::sync::Cache;
use uuid::Uuid;

use crate::entity::product;
use crate::events::StockEvent;

/// What the cache knows of a product.
#[derive(Clone, Debug)]
enum Entry {
    /// The product at a version.
    Live(Arc<product::Model>),
    /// The product was deleted at this version.
    Deleted(i32),
}

impl Entry {
    fn version(&self) -> i32 {
        match self {
            Entry::Live(product) => product.version,
            Entry::Deleted(version) => *version,
        }
    }
}

/// A bounded cache of products; with capacity 0 it holds nothing and every read goes to the
/// database.
#[derive(Clone, Debug)]
pub struct ProductCache {
    inner: Option<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    products: Cache<Uuid, Entry>,
    /// Case-folded SKU to product id (checked against the product on every use).
    skus: Cache<String, Uuid>,
}

impl ProductCache {
    /// A cache of at most `capacity` products (0: no cache).
    pub fn new(capacity: u64) -> Self {
        if capacity == 0 {
            return Self { inner: None };
        }
        Self {
            inner: Some(Inner {
                products: Cache::new(capacity),
                skus: Cache::new(capacity),
            }),
        }
    }

    /// Whether caching is on.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The product with `id`: `Some(Some(_))` live, `Some(None)` deleted, `None` unknown here.
    pub fn get(&self, id: Uuid) -> Option<Option<Arc<product::Model>>> {
        let inner = self.inner.as_ref()?;
        let found = inner.products.get(&id).map(|entry| match entry {
            Entry::Live(product) => Some(product),
            Entry::Deleted(_) => None,
        });
        count(found.is_some());
        found
    }

    /// The live product whose case-folded SKU is `sku_key`, if known here.
    pub fn get_by_sku(&self, sku_key: &str) -> Option<Arc<product::Model>> {
        let inner = self.inner.as_ref()?;
        let found = inner
            .skus
            .get(sku_key)
            .and_then(|id| match inner.products.get(&id) {
                Some(Entry::Live(product)) if product.sku_key == sku_key => Some(product),
                _ => None,
            });
        count(found.is_some());
        found
    }

    /// Keeps a product read from the database, unless a later version is known already.
    pub fn fill(&self, product: &product::Model) {
        let entry = if product.is_deleted() {
            Entry::Deleted(product.version)
        } else {
            Entry::Live(Arc::new(product.clone()))
        };
        self.put(product.id, &product.sku_key, entry);
    }

    /// Takes in committed changes; only each product's last one matters.
    pub fn observe_all(&self, events: &[StockEvent]) {
        if self.inner.is_none() {
            return;
        }
        let mut seen = std::collections::HashSet::with_capacity(events.len());
        for event in events.iter().rev() {
            if seen.insert(event.product.id) {
                self.observe(event);
            }
        }
    }

    /// Takes in a committed change.
    pub fn observe(&self, event: &StockEvent) {
        let Some(inner) = &self.inner else {
            return;
        };
        // Most events reach an instance twice (its own commit, then the listener): the second
        // time the entry is current already.
        if inner
            .products
            .get(&event.product.id)
            .is_some_and(|entry| entry.version() >= event.product.version)
        {
            return;
        }
        let product = event.product.to_model();
        let entry = if event.deleted {
            Entry::Deleted(product.version)
        } else {
            Entry::Live(Arc::new(product.clone()))
        };
        self.put(product.id, &product.sku_key, entry);
    }

    /// Forgets everything (events may have been missed).
    pub fn clear(&self) {
        if let Some(inner) = &self.inner {
            inner.products.invalidate_all();
            inner.skus.invalidate_all();
        }
    }

    fn put(&self, id: Uuid, sku_key: &str, entry: Entry) {
        let Some(inner) = &self.inner else {
            return;
        };
        let live = matches!(entry, Entry::Live(_));
        let version = entry.version();
        // Atomic per key: a version only ever replaces an older one.
        inner.products.entry(id).and_compute_with(|current| {
            if current.is_none_or(|current| current.value().version() < version) {
                Op::Put(entry)
            } else {
                Op::Nop
            }
        });
        if live {
            inner.skus.insert(sku_key.to_owned(), id);
        }
    }
}

fn count(hit: bool) {
    let outcome = if hit { "hit" } else { "miss" };
    metrics::counter!("stockroom_product_cache_reads_total", "outcome" => outcome).increment(1);
}
