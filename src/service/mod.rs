//! The business rules and every transaction. Transports call these; these call the entities.
//! No service knows about HTTP or GraphQL.

mod buckets;
mod coalescing;
mod export;
mod idempotency;
mod import;
mod ledger;
mod locations;
mod locked;
mod products;
mod reservations;
mod statements;
mod stock;
mod sync;
mod webhooks;

pub use buckets::LotInput;
pub use export::{CsvPieces, ExportService, MovementRange};
pub use idempotency::{IdempotentRequest, prune as prune_idempotency_keys};
pub use import::{
    DEFAULT_MAX_IMPORT_ROWS, FailedRow, ImportOptions, ImportReport, ImportRowStatus,
    ImportService, ImportSummary,
};
pub use ledger::{
    BucketMismatch, BucketStockAtTime, LedgerMismatch, LedgerReport, LedgerService,
    MovementMismatch, StockAtTime,
};
pub use locations::{LocationChanges, LocationService, NewLocation, main_location_id};
pub use locked::StockChange;
pub use products::{NewProduct, ProductChanges, ProductFilter, ProductService, StockStatus};
pub use reservations::{ReservationService, ReserveRequest, Resolution};
pub use stock::{
    MovementFilter, MovementPosition, StockChangeRequest, StockDirection, StockService,
    TransferRequest, WriteOffRequest,
};
pub use sync::{
    DEFAULT_MAX_SYNC_ROWS, SyncErrorPolicy, SyncLot, SyncRequest, SyncResult, SyncRow,
    SyncRowResult, SyncRowStatus, SyncService,
};

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};

pub use webhooks::{NewWebhook, WebhookChanges, WebhookService};

pub use crate::domain::Actor;

use crate::clock::Clock;
use crate::database::Database;
use crate::events::EventBus;

/// Which way a keyset page goes from its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageDirection {
    /// The items after the cursor, in listing order.
    Forward,
    /// The items before the cursor, nearest first (the caller reverses them into listing
    /// order).
    Backward,
}

/// Every service, built once at start and shared by all transports. Cloning it (every request
/// does, through the router's state) is one reference count.
#[derive(Clone, Debug)]
pub struct Services(Arc<ServiceSet>);

/// The services behind [`Services`].
#[derive(Debug)]
pub struct ServiceSet {
    /// Products: catalogue reads and writes.
    pub products: ProductService,
    /// Stock changes and the ledger.
    pub stock: StockService,
    /// Checking the ledger against the products.
    pub ledger: LedgerService,
    /// Holding stock for checkouts.
    pub reservations: ReservationService,
    /// Where stock is kept.
    pub locations: LocationService,
    /// Warehouse sync: many rows in one call.
    pub sync: SyncService,
    /// CSV inventory imports.
    pub imports: ImportService,
    /// CSV exports of the inventory and the ledger.
    pub exports: ExportService,
    /// Webhooks and their delivery log.
    pub webhooks: WebhookService,
    database: Database,
    events: EventBus,
    clock: Clock,
}

impl std::ops::Deref for Services {
    type Target = ServiceSet;

    fn deref(&self) -> &ServiceSet {
        &self.0
    }
}

impl Services {
    /// Builds the services over one database, publishing committed changes on `events`.
    pub fn new(database: Database, events: EventBus) -> Self {
        let clock = Clock::default();
        Self(Arc::new(ServiceSet {
            products: ProductService::new(database.clone(), events.clone()),
            stock: StockService::new(database.clone(), events.clone(), clock.clone()),
            ledger: LedgerService::new(database.clone()),
            reservations: ReservationService::new(database.clone(), events.clone(), clock.clone()),
            locations: LocationService::new(database.clone()),
            sync: SyncService::new(database.clone(), events.clone(), clock.clone()),
            imports: ImportService::new(database.clone(), events.clone(), clock.clone()),
            exports: ExportService::new(database.clone()),
            webhooks: WebhookService::new(database.clone()),
            database,
            events,
            clock,
        }))
    }

    /// Adjusts the services at start, before anything shares them.
    pub fn configure(mut self, configure: impl FnOnce(&mut ServiceSet)) -> Self {
        let set =
            Arc::get_mut(&mut self.0).expect("services are configured before they are shared");
        configure(set);
        self
    }
}

impl ServiceSet {
    /// The date lots are judged by (tests move it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The database underneath, for readiness checks.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The event bus, for subscriptions.
    pub fn events(&self) -> &EventBus {
        &self.events
    }
}

/// The current time at the precision both databases store (microseconds), so a value returned
/// from a write equals the value read back later.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A timestamp for a change to a row last changed at `previous`: now, but always strictly later
/// than `previous`, so `updatedAt` moves on every change even within one clock tick.
pub(crate) fn next_change_time(previous: DateTime<Utc>) -> DateTime<Utc> {
    now().max(previous + chrono::Duration::microseconds(1))
}
