//! One execution per subscription selection. Every WebSocket subscriber that sends the same
//! subscription (document, operation name, variables and extensions) with the same role shares
//! one execution of it: each event is resolved, passed through the schema's extensions and
//! serialized to JSON once, and every subscriber receives the same bytes.
//!
//! What differs per subscriber (its connection's subscription slot, the expiry of its token,
//! how far behind it is) is kept by the subscriber, not by the shared execution.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_graphql::{Data, Request};
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::AppSchema;
use crate::auth::Caller;
use crate::domain::Role;
use crate::events::EventBus;

/// The most rendered events a subscriber of a shared execution may fall behind before it is
/// cut off (with a `LAGGED` error): each distinct selection holds a buffer this long.
pub const MAX_SHARED_BUFFER: usize = 256;

/// The running shared executions of one server instance.
#[derive(Clone)]
pub struct SubscriptionFanout {
    inner: Arc<Registry>,
    events: EventBus,
}

/// Where a shared execution's resolver notes the bus position of the event it passed on
/// last, so that the response made of it can be numbered by it (async-graphql resolves a
/// subscription's events one at a time, in order).
#[derive(Clone, Debug, Default)]
pub struct RenderPosition(Arc<AtomicU64>);

impl RenderPosition {
    /// Notes that the next response is made of the event at `position`.
    pub fn set(&self, position: u64) {
        self.0.store(position, Ordering::Release);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

struct Registry {
    executions: Mutex<HashMap<SelectionKey, Weak<Execution>>>,
    buffer: usize,
}

/// What makes two subscriptions the same: the request as sent, and the role it runs as
/// (the only thing about a caller that can change what a subscription resolves).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SelectionKey {
    query: String,
    operation_name: Option<String>,
    variables: String,
    extensions: String,
    role: Option<Role>,
}

/// One event of a shared execution, serialized once for all its subscribers.
#[derive(Debug)]
pub enum Rendered {
    /// A response, as JSON, numbered from 1 in the order the execution produced them.
    Next {
        /// Its number.
        sequence: u64,
        /// The bus position of the event it was made of (none for a response without data: a
        /// failure of the whole subscription, which every subscriber gets).
        position: Option<u64>,
        /// The response as JSON.
        payload: Box<str>,
    },
    /// The execution ended. When its last response carried errors, that response is repeated
    /// here for subscribers that joined after it was sent and before the end.
    End {
        /// The last response, when it carried errors.
        last_error: Option<(u64, Box<str>)>,
    },
}

/// A shared execution: its task, and the channel its rendered events go out on. Dropped when
/// its last subscriber leaves, which stops the task.
struct Execution {
    key: SelectionKey,
    sender: broadcast::Sender<Arc<Rendered>>,
    task: AbortHandle,
    registry: Weak<Registry>,
}

impl Drop for Execution {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(registry) = self.registry.upgrade() {
            registry.forget(&self.key, None);
        }
    }
}

/// One subscriber's share of an execution: its receiver of rendered events. The execution runs
/// for as long as any subscriber holds one.
pub struct SharedSubscription {
    _execution: Arc<Execution>,
    receiver: broadcast::Receiver<Arc<Rendered>>,
    /// The bus position when this subscriber joined: responses made of events up to it were
    /// committed before it subscribed, and are not its to see.
    joined_at: u64,
}

impl SharedSubscription {
    /// Whether this subscriber subscribed only after the event at `position` was sent.
    pub fn joined_after(&self, position: Option<u64>) -> bool {
        position.is_some_and(|position| position <= self.joined_at)
    }

    /// The next rendered event; `Err(n)` when this subscriber fell `n` events behind (its
    /// share is over then).
    pub async fn next(&mut self) -> Result<Arc<Rendered>, u64> {
        match self.receiver.recv().await {
            Ok(rendered) => Ok(rendered),
            Err(broadcast::error::RecvError::Lagged(missed)) => Err(missed),
            // The execution holds a sender for as long as this share exists.
            Err(broadcast::error::RecvError::Closed) => {
                Ok(Arc::new(Rendered::End { last_error: None }))
            }
        }
    }
}

impl SubscriptionFanout {
    /// An empty registry; each selection's buffer holds `buffer` events (at most
    /// [`MAX_SHARED_BUFFER`]).
    pub fn new(buffer: usize, events: EventBus) -> Self {
        Self {
            inner: Arc::new(Registry {
                executions: Mutex::default(),
                buffer: buffer.clamp(1, MAX_SHARED_BUFFER),
            }),
            events,
        }
    }

    /// Joins the running execution of `request` for `caller`'s role, or starts one. The caller
    /// is kept without its token's expiry: each subscriber ends at its own.
    pub fn join(
        &self,
        schema: &AppSchema,
        request: Request,
        caller: &Caller,
    ) -> SharedSubscription {
        let key = SelectionKey {
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: canonical_json(&request.variables),
            extensions: canonical_json(&request.extensions),
            role: caller.actor().ok().map(|actor| actor.role),
        };
        let mut executions = self.inner.lock();
        if let Some(execution) = executions.get(&key).and_then(Weak::upgrade) {
            // Subscribed first, then the position read: every event sent after that position
            // is rendered after this receiver exists.
            let receiver = execution.sender.subscribe();
            return SharedSubscription {
                _execution: execution,
                receiver,
                joined_at: self.events.position(),
            };
        }
        // One more than the buffer: the end of an execution never pushes its last response
        // out of reach of a subscriber that kept within the buffer.
        let (sender, receiver) = broadcast::channel(self.inner.buffer + 1);
        let position = RenderPosition::default();
        let mut data = Data::default();
        data.insert(caller.without_expiry());
        data.insert(position.clone());
        let responses = schema.execute_stream_with_session_data(request, Arc::new(data));
        let execution = Arc::new_cyclic(|me: &Weak<Execution>| {
            let task = tokio::spawn(render(
                responses,
                position,
                sender.clone(),
                me.clone(),
                Arc::downgrade(&self.inner),
                key.clone(),
            ));
            Execution {
                key: key.clone(),
                sender,
                task: task.abort_handle(),
                registry: Arc::downgrade(&self.inner),
            }
        });
        executions.insert(key, Arc::downgrade(&execution));
        metrics::gauge!("stockroom_subscription_executions").set(executions.len() as f64);
        SharedSubscription {
            _execution: execution,
            receiver,
            joined_at: self.events.position(),
        }
    }

    /// How many shared executions run now.
    pub fn execution_count(&self) -> usize {
        self.inner
            .lock()
            .values()
            .filter(|execution| execution.strong_count() > 0)
            .count()
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SelectionKey, Weak<Execution>>> {
        self.executions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes `key`'s entry if it is `only` (when given) or no longer alive, so that the next
    /// subscriber starts a fresh execution.
    fn forget(&self, key: &SelectionKey, only: Option<&Weak<Execution>>) {
        let mut executions = self.lock();
        let remove = executions.get(key).is_some_and(|entry| match only {
            Some(only) => Weak::ptr_eq(entry, only),
            None => entry.strong_count() == 0,
        });
        if remove {
            executions.remove(key);
        }
        metrics::gauge!("stockroom_subscription_executions").set(executions.len() as f64);
    }
}

/// Runs one shared execution: serializes each response once and sends it to every subscriber.
/// At the end (or should rendering panic) the execution leaves the registry before its
/// subscribers hear of the end, so that nobody joins an execution that has ended.
async fn render(
    responses: impl Stream<Item = async_graphql::Response> + Send + 'static,
    position: RenderPosition,
    sender: broadcast::Sender<Arc<Rendered>>,
    me: Weak<Execution>,
    registry: Weak<Registry>,
    key: SelectionKey,
) {
    let mut last_error = None;
    let rendering = AssertUnwindSafe(async {
        let mut responses = std::pin::pin!(responses);
        let mut sequence = 0;
        while let Some(response) = responses.next().await {
            sequence += 1;
            let payload: Box<str> = serde_json::to_string(&response)
                .unwrap_or_else(|_| FAILED.to_owned())
                .into();
            last_error = response.is_err().then(|| (sequence, payload.clone()));
            // A response without data (a failure of the whole subscription) goes to everyone.
            let position = (response.data != async_graphql::Value::Null).then(|| position.get());
            // No subscriber listening is fine: one may join before the next event.
            let _ = sender.send(Arc::new(Rendered::Next {
                sequence,
                position,
                payload,
            }));
        }
    })
    .catch_unwind()
    .await;
    if rendering.is_err() {
        tracing::error!("a shared subscription failed while rendering an event");
        last_error = Some((u64::MAX, FAILED.into()));
    }
    if let Some(registry) = registry.upgrade() {
        registry.forget(&key, Some(&me));
    }
    let _ = sender.send(Arc::new(Rendered::End { last_error }));
}

/// What subscribers get when an event could not be rendered.
const FAILED: &str = r#"{"data":null,"errors":[{"message":"the event could not be rendered","extensions":{"code":"INTERNAL"}}]}"#;

/// `value` as JSON with every object's keys in order, so that equal requests make equal keys.
fn canonical_json(value: &impl serde::Serialize) -> String {
    // serde_json's own map keeps its keys sorted.
    serde_json::to_value(value)
        .map(|value| value.to_string())
        .unwrap_or_default()
}
