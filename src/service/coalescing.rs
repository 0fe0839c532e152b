//! Hot-SKU coalescing: concurrent reductions of one product become one transaction.
//!
//! A flash sale sends thousands of reductions at one product; each needs the product's row lock,
//! so they run one after another and the lock, not the work, sets the pace. Here reductions of
//! the same product queue up in this process, and one leader task per product takes the row
//! lock once for all of them that arrived by then: it applies them in arrival order (each that
//! fits succeeds, the rest get `INSUFFICIENT_STOCK`), then writes one `UPDATE`, one multi-row
//! `INSERT` of their movements, and one event per movement, and commits. Every request still
//! gets its own answer, its own movement and its own event, exactly as without batching. Across
//! server instances the row lock still serializes the batches.
//!
//! Only reductions without an idempotency key are batched; keyed requests take the single path
//! so that their claim-and-replay semantics stay exactly as documented.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::reservations::sweep_expired;
use super::stock::{MovementRecord, StockChange, movement_row};
use super::{lock_live_product, next_change_time};
use crate::database::Database;
use crate::domain::{Actor, Quantity, Reason};
use crate::entity::product;
use crate::entity::stock_movement::{self, MovementKind};
use crate::error::{Error, Result};
use crate::events::{EventBus, StockEvent};

/// One queued reduction.
struct Reduction {
    quantity: Quantity,
    reason: Option<Reason>,
    actor: Actor,
}

/// A queued reduction and where its answer goes.
struct Pending {
    reduction: Reduction,
    reply: oneshot::Sender<Result<StockChange>>,
}

/// The queues of reductions waiting for their product's leader. A product has an entry exactly
/// while a leader runs for it.
#[derive(Clone, Default)]
pub(super) struct Coalescer {
    queues: Arc<Mutex<HashMap<Uuid, Vec<Pending>>>>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coalescer")
    }
}

impl Coalescer {
    /// Queues a reduction of `product_id` and waits for its answer, starting the product's
    /// leader if none runs.
    pub(super) async fn reduce(
        &self,
        database: &Database,
        events: &EventBus,
        product_id: Uuid,
        quantity: Quantity,
        reason: Option<Reason>,
        actor: &Actor,
    ) -> Result<StockChange> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            reduction: Reduction {
                quantity,
                reason,
                actor: actor.clone(),
            },
            reply,
        };
        let start_leader = {
            let mut queues = self.queues.lock().map_err(|_| poisoned())?;
            match queues.get_mut(&product_id) {
                Some(queue) => {
                    queue.push(pending);
                    false
                }
                None => {
                    queues.insert(product_id, vec![pending]);
                    true
                }
            }
        };
        if start_leader {
            // A task of its own: a client that hangs up must not stop the batch it leads.
            let leader = Leader {
                queues: self.queues.clone(),
                database: database.clone(),
                events: events.clone(),
                product_id,
            };
            tokio::spawn(leader.run());
        }
        answer
            .await
            .map_err(|_| Error::internal("the reduction's batch stopped without an answer"))?
    }
}

/// A copy of a batch's failure for each of its requests (`Error` holds a boxed source, so it
/// is not `Clone`).
fn same_error(error: &Error) -> Error {
    match error {
        Error::NotFound => Error::NotFound,
        Error::Unavailable => Error::Unavailable,
        other => Error::internal(other.to_string()),
    }
}

/// Removes a product's queue entry when its leader stops without doing so itself; the queued
/// requests' reply channels are dropped with it, so their callers get an error, not a hang.
struct EntryGuard {
    queues: Arc<Mutex<HashMap<Uuid, Vec<Pending>>>>,
    product_id: Uuid,
    armed: bool,
}

impl Drop for EntryGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut queues = match self.queues.lock() {
            Ok(queues) => queues,
            Err(poisoned) => poisoned.into_inner(),
        };
        queues.remove(&self.product_id);
        tracing::error!(product = %self.product_id, "a reduction batch leader stopped abnormally");
    }
}

fn poisoned() -> Error {
    Error::internal("the reduction queues are poisoned")
}

struct Leader {
    queues: Arc<Mutex<HashMap<Uuid, Vec<Pending>>>>,
    database: Database,
    events: EventBus,
    product_id: Uuid,
}

impl Leader {
    /// Runs batches until the product's queue is empty, then removes the product's entry.
    async fn run(self) {
        // Should this task end any other way (a panic), the entry must go too: otherwise every
        // later reduction of the product would queue behind a leader that no longer exists.
        let mut guard = EntryGuard {
            queues: self.queues.clone(),
            product_id: self.product_id,
            armed: true,
        };
        loop {
            let batch = {
                let Ok(mut queues) = self.queues.lock() else {
                    return;
                };
                match queues.get_mut(&self.product_id) {
                    Some(queue) if !queue.is_empty() => std::mem::take(queue),
                    _ => {
                        queues.remove(&self.product_id);
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
    async fn run_batch(&self, batch: Vec<Pending>) {
        let (reductions, replies): (Vec<Reduction>, Vec<_>) = batch
            .into_iter()
            .map(|pending| (pending.reduction, pending.reply))
            .unzip();
        let outcomes = match self.apply(reductions).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                // The transaction rolled back: nothing changed for anyone in the batch, and
                // each gets the same answer.
                replies.iter().map(|_| Err(same_error(&error))).collect()
            }
        };
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let outcome_label = outcome.as_ref().map_or_else(Error::code, |_| "success");
            metrics::counter!("stockroom_stock_changes_total", "operation" => "reduceStock", "outcome" => outcome_label)
                .increment(1);
            // The requester may have hung up; its answer is then simply dropped.
            let _ = reply.send(outcome);
        }
    }

    /// Locks the product once and applies the reductions in order; commits the ones that fit.
    async fn apply(&self, reductions: Vec<Reduction>) -> Result<Vec<Result<StockChange>>> {
        let transaction = self.database.begin_write().await?;
        let locked = lock_live_product(&transaction, self.product_id).await?;
        let mut current = sweep_expired(&transaction, locked).await?;
        let original = current.clone();

        let mut outcomes = Vec::with_capacity(reductions.len());
        let mut movements: Vec<stock_movement::Model> = Vec::new();
        let mut events = Vec::new();
        for Reduction {
            quantity,
            reason,
            actor,
        } in reductions
        {
            let wanted = quantity.get();
            if current.available() < wanted {
                outcomes.push(Err(Error::InsufficientStock {
                    available: current.available(),
                    requested: wanted,
                }));
                continue;
            }
            let before = current.clone();
            current.stock -= wanted;
            current.version += 1;
            current.updated_at = next_change_time(before.updated_at);
            let movement = movement_row(MovementRecord {
                product: &current,
                kind: MovementKind::Reduce,
                stock_before: before.stock,
                reason,
                idempotency_key: None,
                actor: &actor,
            });
            events.push(StockEvent::new(
                Some(&before),
                &current,
                Some(movement.clone()),
            ));
            outcomes.push(Ok(StockChange {
                product: current.clone(),
                movement: movement.clone(),
            }));
            movements.push(movement);
        }
        if movements.is_empty() {
            // Every request was refused: nothing to write (dropping rolls back, and with it
            // any sweep, which the next change will redo).
            return Ok(outcomes);
        }
        store(&transaction, &original, &current, movements).await?;
        self.events.commit(transaction, events).await?;
        Ok(outcomes)
    }
}

/// One `UPDATE` of the product to its final state and one multi-row `INSERT` of the movements.
async fn store(
    transaction: &sea_orm::DatabaseTransaction,
    original: &product::Model,
    last: &product::Model,
    movements: Vec<stock_movement::Model>,
) -> Result<()> {
    let mut row = original.clone().into_active_model();
    row.stock = Set(last.stock);
    row.version = Set(last.version);
    row.updated_at = Set(last.updated_at);
    row.update(transaction).await?;
    stock_movement::Entity::insert_many(
        movements
            .into_iter()
            .map(|movement| movement.into_active_model().reset_all()),
    )
    .exec_without_returning(transaction)
    .await?;
    Ok(())
}
