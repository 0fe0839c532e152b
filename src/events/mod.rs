//! The event bus: stock events leave the services only after commit, and reach every
//! subscriber of every server instance.
//!
//! - **PostgreSQL**: events are sent with `pg_notify` *inside* the transaction that makes the
//!   change. PostgreSQL delivers a notification only when its transaction commits, and delivers
//!   them in commit order, so a rolled-back change never produces an event and every instance's
//!   listener (see [`postgres`]) sees one product's events in the order they happened.
//! - **SQLite** (one process): events are broadcast in-process right after commit, while a lock
//!   keeps commit-and-publish in the same order for every writer.
//!
//! Either way, subscribers read from one in-process `broadcast` channel: a slow subscriber never
//! holds up the others, and one that falls more than the channel's capacity behind is told so
//! (its stream ends with [`SubscriptionLost::Lagged`]) rather than silently skipped.

pub mod outbox;
mod payload;
mod postgres;

pub use payload::{LotSnapshot, MovementSnapshot, ProductSnapshot, StockEvent};

#[cfg(test)]
pub(crate) use payload::tests::sample_event;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures::Stream;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use tokio::sync::{Mutex, broadcast, watch};

use crate::cache::ProductCache;
use crate::database::WriteTransaction;
use crate::error::{Error, Result};

/// The PostgreSQL channel events travel on.
pub const CHANNEL: &str = "stockroom_events";

/// What the in-process channel carries.
#[derive(Clone, Debug)]
enum BusMessage {
    /// A committed change, with its position: how many events this instance's channel had
    /// carried when it sent this one.
    Event(u64, Arc<StockEvent>),
    /// Events may have been lost (the PostgreSQL listener lost its connection).
    Gap,
}

/// The in-process channel, numbering every event it carries.
#[derive(Clone, Debug)]
struct Channel {
    sender: broadcast::Sender<BusMessage>,
    published: Arc<AtomicU64>,
}

impl Channel {
    fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
            published: Arc::default(),
        }
    }

    /// Sends `event`, numbered after every event sent before it. Events are sent one at a
    /// time (under the commit-order lock, or by the one listener task), so the numbers follow
    /// the channel's order.
    fn publish(&self, event: Arc<StockEvent>) {
        let position = self.published.fetch_add(1, Ordering::AcqRel) + 1;
        // An error only means nobody is subscribed right now.
        let _ = self.sender.send(BusMessage::Event(position, event));
    }

    /// Tells every subscriber that events may have been lost.
    fn gap(&self) {
        let _ = self.sender.send(BusMessage::Gap);
    }
}

/// Why a subscription ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionLost {
    /// The subscriber read too slowly and this many events passed it by.
    #[error("this subscription fell {0} events behind and was closed; subscribe again")]
    Lagged(u64),
    /// The server's connection to the event source dropped; events may have been missed.
    #[error("the event stream was interrupted and events may have been missed; subscribe again")]
    Interrupted,
}

/// Publishes committed changes and hands out subscriptions.
#[derive(Clone, Debug)]
pub struct EventBus {
    channel: Channel,
    /// Subscriptions clients hold open (several may share one receiver of the bus).
    subscribers: Arc<AtomicUsize>,
    delivery: Delivery,
    /// Kept current by every event, before subscribers see it.
    cache: ProductCache,
    /// Whether commits write their events to the outbox.
    outbox: bool,
    /// Counts commits seen (this instance's, and on PostgreSQL every instance's): the relay
    /// wakes on it.
    commits: watch::Sender<u64>,
}

#[derive(Clone, Debug)]
enum Delivery {
    /// Broadcast after commit; the mutex keeps publish order equal to commit order.
    InProcess { commit_order: Arc<Mutex<()>> },
    /// `pg_notify` inside the transaction; the listener task broadcasts what arrives.
    Postgres,
}

impl EventBus {
    /// A bus for a single process (SQLite). `capacity` is how many events a subscriber may
    /// fall behind before it is cut off.
    pub fn in_process(capacity: usize, cache: ProductCache) -> Self {
        Self {
            channel: Channel::new(capacity),
            delivery: Delivery::InProcess {
                commit_order: Arc::new(Mutex::new(())),
            },
            cache,
            outbox: true,
            commits: watch::channel(0).0,
            subscribers: Arc::default(),
        }
    }

    /// A bus shared by every instance on one PostgreSQL database. Starts listening before it
    /// returns, so no event committed after that is missed.
    pub async fn postgres(
        database_url: &str,
        capacity: usize,
        cache: ProductCache,
    ) -> Result<Self, DbErr> {
        let channel = Channel::new(capacity);
        let commits = watch::channel(0).0;
        postgres::start_listener(
            database_url,
            channel.clone(),
            cache.clone(),
            commits.clone(),
        )
        .await?;
        Ok(Self {
            channel,
            delivery: Delivery::Postgres,
            cache,
            outbox: true,
            commits,
            subscribers: Arc::default(),
        })
    }

    /// Turns writing to the outbox off (`false`) or on: without it, events reach only live
    /// subscriptions.
    pub fn with_outbox(mut self, enabled: bool) -> Self {
        self.outbox = enabled;
        self
    }

    /// Whether commits write their events to the outbox.
    pub fn writes_outbox(&self) -> bool {
        self.outbox
    }

    /// Changes each time a commit is seen, here or (on PostgreSQL) on another instance.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The product cache the events keep current.
    pub fn product_cache(&self) -> &ProductCache {
        &self.cache
    }

    /// Commits `transaction` and publishes `events`, which describe what it changed. Events are
    /// published only if the commit succeeds.
    pub async fn commit(
        &self,
        transaction: WriteTransaction,
        events: Vec<StockEvent>,
    ) -> Result<()> {
        match &self.delivery {
            Delivery::Postgres => {
                let exported = if self.outbox {
                    outbox::outbox_events(&events)
                } else {
                    Vec::new()
                };
                if !events.is_empty() {
                    // One statement for all of the transaction's events, however many: a batch
                    // of reductions holds its row lock for one round trip, not one per event.
                    // `WITH ORDINALITY ... ORDER BY` keeps them in the order they happened.
                    let payloads: Vec<String> = events.iter().map(StockEvent::to_payload).collect();
                    if exported.is_empty() {
                        let payloads = serde_json::to_string(&payloads).map_err(Error::internal)?;
                        transaction
                            .execute_raw(Statement::from_sql_and_values(
                                DbBackend::Postgres,
                                "SELECT pg_notify($1, payload) \
                                 FROM json_array_elements_text($2::json) WITH ORDINALITY AS event(payload, position) \
                                 ORDER BY position",
                                [CHANNEL.into(), payloads.into()],
                            ))
                            .await?;
                    } else {
                        // The outbox rows and the notifications travel in the same statement.
                        outbox::write(&*transaction, &exported, CHANNEL, &payloads).await?;
                    }
                }
                transaction.commit().await?;
                // This instance reads its own writes at once; the listener brings the same
                // events to every instance (this one again: an older version never wins).
                self.cache.observe_all(&events);
                if !exported.is_empty() {
                    self.commits.send_modify(|count| *count += 1);
                }
                Ok(())
            }
            Delivery::InProcess { commit_order } => {
                let exported = if self.outbox {
                    outbox::outbox_events(&events)
                } else {
                    Vec::new()
                };
                outbox::write(&*transaction, &exported, CHANNEL, &[]).await?;
                transaction.claim_commit()?;
                let commit_order = commit_order.clone();
                let channel = self.channel.clone();
                let cache = self.cache.clone();
                let commits = self.commits.clone();
                // The commit and its broadcast run as a task of their own: a caller that stops
                // waiting (its client hung up) must not leave a committed change without its
                // events.
                tokio::spawn(async move {
                    let _in_order = commit_order.lock().await;
                    transaction.commit_claimed().await?;
                    cache.observe_all(&events);
                    if !exported.is_empty() {
                        commits.send_modify(|count| *count += 1);
                    }
                    for event in events {
                        channel.publish(Arc::new(event));
                    }
                    Ok(())
                })
                .await
                .map_err(Error::internal)?
            }
        }
    }

    /// Every event from now on, in commit order per product. The stream ends with an error if
    /// the subscriber falls too far behind or events may have been lost.
    pub fn subscribe(
        &self,
    ) -> impl Stream<Item = Result<Arc<StockEvent>, SubscriptionLost>> + use<> {
        use futures::StreamExt;
        self.subscribe_with_positions()
            .map(|item| item.map(|(_, event)| event))
    }

    /// Like [`subscribe`](Self::subscribe), each event with its [`position`](Self::position).
    pub fn subscribe_with_positions(
        &self,
    ) -> impl Stream<Item = Result<(u64, Arc<StockEvent>), SubscriptionLost>> + use<> {
        let receiver = self.channel.sender.subscribe();
        futures::stream::unfold(Some(receiver), |receiver| async move {
            let mut receiver = receiver?;
            let item = match receiver.recv().await {
                Ok(BusMessage::Event(position, event)) => Ok((position, event)),
                Ok(BusMessage::Gap) => Err(SubscriptionLost::Interrupted),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Err(SubscriptionLost::Lagged(missed))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            // After an error the stream ends: the subscriber must know it has a hole.
            let next = item.is_ok().then_some(receiver);
            Some((item, next))
        })
    }

    /// How many events this instance has sent to its subscribers so far: an event whose
    /// position is at most this one was sent before now.
    pub fn position(&self) -> u64 {
        self.channel.published.load(Ordering::Acquire)
    }

    /// How many subscriptions clients hold open on this instance.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Acquire)
    }

    /// Counts one client's subscription for as long as the guard lives.
    pub fn track_subscriber(&self) -> SubscriberGuard {
        self.subscribers.fetch_add(1, Ordering::AcqRel);
        SubscriberGuard(self.subscribers.clone())
    }

    /// How many receivers of the bus exist: one per execution of a subscription, whatever
    /// the number of clients that share it.
    pub fn receiver_count(&self) -> usize {
        self.channel.sender.receiver_count()
    }
}

/// One client's open subscription, counted by [`EventBus::subscriber_count`] until dropped.
#[derive(Debug)]
pub struct SubscriberGuard(Arc<AtomicUsize>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn event(stock: i64) -> Arc<StockEvent> {
        Arc::new(payload::tests::sample_event(stock))
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_and_its_stream_ends() {
        let bus = EventBus::in_process(4, ProductCache::new(0));
        let mut slow = Box::pin(bus.subscribe());
        let mut keeping_up = Box::pin(bus.subscribe());

        for stock in 0..10 {
            bus.channel.publish(event(stock));
            // The other subscriber reads as events come and misses nothing.
            assert_eq!(
                keeping_up.next().await.unwrap().unwrap().product.stock,
                stock
            );
        }

        assert_eq!(slow.next().await, Some(Err(SubscriptionLost::Lagged(6))));
        assert_eq!(slow.next().await, None);
    }

    #[tokio::test]
    async fn a_gap_ends_every_subscription_with_an_interruption() {
        let bus = EventBus::in_process(8, ProductCache::new(0));
        let mut subscription = Box::pin(bus.subscribe());

        bus.channel.gap();

        assert_eq!(
            subscription.next().await,
            Some(Err(SubscriptionLost::Interrupted))
        );
        assert_eq!(subscription.next().await, None);
    }

    #[tokio::test]
    async fn dropping_a_subscription_frees_its_receiver() {
        let bus = EventBus::in_process(8, ProductCache::new(0));
        let subscription = bus.subscribe();
        assert_eq!(bus.receiver_count(), 1);

        drop(subscription);

        assert_eq!(bus.receiver_count(), 0);
    }
}
