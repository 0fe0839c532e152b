//! One execution per subscription selection. Every WebSocket subscriber that sends the same
//! subscription (document, operation name, variables and extensions) with the same role shares
//! one execution of it: each event is resolved, passed through the schema's extensions and
//! serialized to JSON once, and every subscriber receives the same bytes.
//!
//! What differs per subscriber (its connection's subscription slot, the expiry of its token,
//! how far behind it is) is kept by the subscriber, not by the shared execution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_graphql::{Data, Request};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::AppSchema;
use crate::auth::Caller;
use crate::domain::Role;

/// The most rendered events a subscriber of a shared execution may fall behind before it is
/// cut off (with a `LAGGED` error): each distinct selection holds a buffer this long.
pub const MAX_SHARED_BUFFER: usize = 256;

/// The running shared executions of one server instance.
#[derive(Clone)]
pub struct SubscriptionFanout {
    inner: Arc<Registry>,
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
}

impl SharedSubscription {
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
    pub fn new(buffer: usize) -> Self {
        Self {
            inner: Arc::new(Registry {
                executions: Mutex::default(),
                buffer: buffer.clamp(1, MAX_SHARED_BUFFER),
            }),
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
            variables: serde_json::to_string(&request.variables).unwrap_or_default(),
            extensions: serde_json::to_string(&request.extensions).unwrap_or_default(),
            role: caller.actor().ok().map(|actor| actor.role),
        };
        let mut executions = self.inner.lock();
        if let Some(execution) = executions.get(&key).and_then(Weak::upgrade) {
            let receiver = execution.sender.subscribe();
            return SharedSubscription {
                _execution: execution,
                receiver,
            };
        }
        let (sender, receiver) = broadcast::channel(self.inner.buffer);
        let mut data = Data::default();
        data.insert(caller.without_expiry());
        let responses = schema.execute_stream_with_session_data(request, Arc::new(data));
        let execution = Arc::new_cyclic(|me: &Weak<Execution>| {
            let task = tokio::spawn(render(
                responses,
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
/// At the end the execution leaves the registry before its subscribers hear of the end, so
/// that nobody joins an execution that has ended.
async fn render(
    responses: impl Stream<Item = async_graphql::Response> + Send + 'static,
    sender: broadcast::Sender<Arc<Rendered>>,
    me: Weak<Execution>,
    registry: Weak<Registry>,
    key: SelectionKey,
) {
    let mut responses = std::pin::pin!(responses);
    let mut sequence = 0;
    let mut last_error = None;
    while let Some(response) = responses.next().await {
        sequence += 1;
        let payload: Box<str> = serde_json::to_string(&response)
            .unwrap_or_else(|_| {
                r#"{"data":null,"errors":[{"message":"the event could not be encoded","extensions":{"code":"INTERNAL"}}]}"#
                    .to_owned()
            })
            .into();
        last_error = response.is_err().then(|| (sequence, payload.clone()));
        // No subscriber listening is fine: one may join before the next event.
        let _ = sender.send(Arc::new(Rendered::Next { sequence, payload }));
    }
    if let Some(registry) = registry.upgrade() {
        registry.forget(&key, Some(&me));
    }
    let _ = sender.send(Arc::new(Rendered::End { last_error }));
}
