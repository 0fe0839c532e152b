//! Hot-SKU coalescing: concurrent reductions of one product become a few shared transactions.
//!
//! A flash sale sends thousands of reductions at one product; each needs the product's row lock,
//! so they run one after another and the lock, not the work, sets the pace. Here reductions of
//! the same product queue up in this process, and one leader task per product takes the row
//! lock once for up to [`MAX_BATCH`] of them: it applies them in arrival order (each that fits
//! succeeds, the rest get `INSUFFICIENT_STOCK`), writes one `UPDATE` of the product and one of
//! each bucket touched, the movements and their allocations in multi-row `INSERT`s, and the
//! events in one statement, and commits. Every request still gets its own answer, movement and event, exactly as without
//! batching. Across server instances the row lock still serializes the batches.
//!
//! Bounds: a batch takes at most [`MAX_BATCH`] reductions (the rest wait for the next batch), and
//! at most [`MAX_QUEUED`] reductions of one product wait in its queue; more wait for room, and a
//! request whose time runs out while it waits has changed nothing.
//!
//! A reduction whose caller has gone (its request timed out or its client hung up) is skipped,
//! never applied: right before a reduction joins the batch's write, the leader claims it through
//! the request's [`CommitGate`], and a request that was given up cannot be claimed.
//!
//! Only reductions without an idempotency key are batched; keyed requests take the single path
//! so that their claim-and-replay semantics stay exactly as documented.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use uuid::Uuid;

use super::buckets::Source;
use super::locked::{LockedProduct, MovementNote, StockChange};
use crate::clock::Clock;
use crate::database::Database;
use crate::deadline::CommitGate;
use crate::domain::{Actor, Quantity, Reason};
use crate::entity::stock_movement::MovementKind;
use crate::error::{Error, Result};
use crate::events::EventBus;

/// Most reductions one transaction applies. Larger batches gain little (the lock is taken once
/// either way) and hold the row lock, and every waiting caller, longer.
pub(super) const MAX_BATCH: usize = 256;

/// Most reductions of one product waiting in its queue; further callers wait for room.
pub(super) const MAX_QUEUED: usize = 4096;

/// One queued reduction.
struct Reduction {
    /// Only from this location (from all, by priority, when `None`).
    location_id: Option<Uuid>,
    quantity: Quantity,
    reason: Option<Reason>,
    actor: Actor,
}

/// A queued reduction, where its answer goes, and the gate of the request it belongs to.
struct Pending {
    reduction: Reduction,
    reply: oneshot::Sender<Result<StockChange>>,
    gate: CommitGate,
    /// Its place in the product's queue, given back once it is answered.
    _place: OwnedSemaphorePermit,
}

/// The reductions of one product waiting for its leader. A product has a lane exactly while a
/// leader runs for it.
struct Lane {
    pending: VecDeque<Pending>,
    /// Places in the queue ([`MAX_QUEUED`]).
    places: Arc<Semaphore>,
}

type Lanes = Arc<Mutex<HashMap<Uuid, Lane>>>;

/// Queues reductions per product and runs one leader per product.
#[derive(Clone, Default)]
pub(super) struct Coalescer {
    lanes: Lanes,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coalescer")
    }
}

/// The lanes, also after a panic elsewhere: nothing inside the lock can leave them half-changed.
fn lock(lanes: &Lanes) -> MutexGuard<'_, HashMap<Uuid, Lane>> {
    lanes.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Coalescer {
    /// Queues a reduction of `product_id` and waits for its answer, starting the product's
    /// leader if none runs. Dropping the returned future before the answer arrives gives the
    /// request up: the reduction is then never applied, unless the leader had already claimed
    /// it for a commit.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn reduce(
        &self,
        database: &Database,
        events: &EventBus,
        clock: &Clock,
        product_id: Uuid,
        location_id: Option<Uuid>,
        quantity: Quantity,
        reason: Option<Reason>,
        actor: &Actor,
    ) -> Result<StockChange> {
        let gate = CommitGate::current_or_unbounded();
        let places = lock(&self.lanes).get(&product_id).map_or_else(
            || Arc::new(Semaphore::new(MAX_QUEUED)),
            |lane| lane.places.clone(),
        );
        // Waits while the product's queue is full (back-pressure); a request that times out
        // here has queued nothing.
        let place = places
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("a reduction queue was closed"))?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            reduction: Reduction {
                location_id,
                quantity,
                reason,
                actor: actor.clone(),
            },
            reply,
            gate: gate.clone(),
            _place: place,
        };
        let start_leader = {
            let mut lanes = lock(&self.lanes);
            match lanes.get_mut(&product_id) {
                Some(lane) => {
                    lane.pending.push_back(pending);
                    false
                }
                None => {
                    lanes.insert(
                        product_id,
                        Lane {
                            pending: VecDeque::from([pending]),
                            places,
                        },
                    );
                    true
                }
            }
        };
        if start_leader {
            // A task of its own: a client that hangs up must not stop the batch it leads.
            let leader = Leader {
                lanes: self.lanes.clone(),
                database: database.clone(),
                events: events.clone(),
                clock: clock.clone(),
                product_id,
            };
            tokio::spawn(leader.run());
        }
        let mut give_up = GiveUpOnDrop(Some(gate));
        let outcome = answer
            .await
            .map_err(|_| Error::internal("the reduction's batch stopped without an answer"));
        give_up.0 = None;
        outcome?
    }
}

/// Gives the request up if the caller stops waiting for its reduction's answer (the future is
/// dropped: a timeout or a client that left). The leader then skips the reduction.
struct GiveUpOnDrop(Option<CommitGate>);

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.abandon();
        }
    }
}

/// Removes a product's lane when its leader stops without doing so itself; the queued
/// requests' reply channels are dropped with it, so their callers get an error, not a hang.
struct LaneGuard {
    lanes: Lanes,
    product_id: Uuid,
    armed: bool,
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.lanes).remove(&self.product_id);
            tracing::error!(product = %self.product_id, "a reduction batch leader stopped abnormally");
        }
    }
}

struct Leader {
    lanes: Lanes,
    database: Database,
    events: EventBus,
    clock: Clock,
    product_id: Uuid,
}

impl Leader {
    /// Runs batches of at most [`MAX_BATCH`] until the product's queue is empty, then removes
    /// the product's lane.
    async fn run(self) {
        // Should this task end any other way (a panic), the lane must go too: otherwise every
        // later reduction of the product would queue behind a leader that no longer exists.
        let mut guard = LaneGuard {
            lanes: self.lanes.clone(),
            product_id: self.product_id,
            armed: true,
        };
        loop {
            let batch: Vec<Pending> = {
                let mut lanes = lock(&self.lanes);
                match lanes.get_mut(&self.product_id) {
                    Some(lane) if !lane.pending.is_empty() => {
                        let size = lane.pending.len().min(MAX_BATCH);
                        lane.pending.drain(..size).collect()
                    }
                    _ => {
                        lanes.remove(&self.product_id);
                        guard.armed = false;
                        return;
                    }
                }
            };
            metrics::histogram!("stockroom_reduce_batch_size").record(batch.len() as f64);
            self.run_batch(batch).await;
        }
    }

    /// Applies one batch in one transaction and answers every request in it.
    async fn run_batch(&self, mut batch: Vec<Pending>) {
        let outcomes = match self.apply(&mut batch).await {
            Ok(outcomes) => outcomes,
            // The transaction rolled back: nothing changed for anyone in the batch, and each
            // gets the same answer, cause and all (logged at the edge with its request).
            Err(error) => batch.iter().map(|_| Err(error.clone())).collect(),
        };
        for (pending, outcome) in batch.into_iter().zip(outcomes) {
            let outcome_label = outcome.as_ref().map_or_else(Error::code, |_| "success");
            metrics::counter!("stockroom_stock_changes_total", "operation" => "reduceStock", "outcome" => outcome_label)
                .increment(1);
            // The requester may have hung up; its answer is then simply dropped.
            let _ = pending.reply.send(outcome);
        }
    }

    /// Locks the product once and applies the reductions in order; commits the ones that fit.
    /// Returns one outcome per reduction, in order.
    async fn apply(&self, batch: &mut [Pending]) -> Result<Vec<Result<StockChange>>> {
        let transaction = self.database.begin_write().await?;
        let mut locked =
            LockedProduct::lock_live(&*transaction, self.product_id, &self.clock).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut applied = 0;
        for pending in batch.iter_mut() {
            let wanted = pending.reduction.quantity.get();
            let source = pending
                .reduction
                .location_id
                .map_or(Source::Anywhere, Source::Location);
            let available = locked.buckets.available(source);
            if available < wanted {
                outcomes.push(Err(Error::InsufficientStock {
                    available,
                    requested: wanted,
                }));
                continue;
            }
            // The last moment to skip a reduction whose caller has gone: once claimed, the
            // request waits for this batch's outcome, whatever its deadline.
            if pending.reply.is_closed() || !pending.gate.enter_commit() {
                outcomes.push(Err(Error::Timeout));
                continue;
            }
            let allocations = locked.buckets.take(source, wanted)?;
            outcomes.push(Ok(locked.record(
                allocations,
                MovementNote {
                    kind: MovementKind::Reduce,
                    reason: pending.reduction.reason.take(),
                    idempotency_key: None,
                    actor: &pending.reduction.actor,
                },
            )?));
            applied += 1;
        }
        if applied == 0 {
            // Nothing to write (dropping rolls back, and with it any sweep, which the next
            // change will redo).
            return Ok(outcomes);
        }
        let events = locked.save(&*transaction).await?;
        self.events.commit(transaction, events).await?;
        Ok(outcomes)
    }
}
