//! `GET /graphql/ws`: GraphQL subscriptions over WebSocket, in both the `graphql-transport-ws`
//! and the legacy `graphql-ws` subprotocol. The bearer token travels in the `connection_init`
//! payload; without a valid one (when authentication is on) the connection is closed before
//! any subscription starts.
//!
//! A connection must send `connection_init` within the init timeout (else it is closed with
//! `4408`), is pinged every ping interval (a peer that answers nothing for three intervals is
//! closed), may run at most a set number of subscriptions at once, and each of its
//! subscriptions ends when the token it was opened with expires.
//!
//! The protocol is spoken here rather than by async-graphql's transport so that a subscription
//! can join a shared execution ([`super::fanout`]): a subscriber's frame is its id around
//! bytes serialized once for all subscribers of the same selection.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, ClientMessage, WebSocketProtocols};
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Data, Request};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::StreamMap;

use super::AppSchema;
use super::errors::response_with_error;
use super::fanout::{Rendered, SharedSubscription, SubscriptionFanout};
use crate::auth::{Authenticator, Caller};
use crate::error::{Error, Result};
use crate::events::{EventBus, SubscriberGuard, SubscriptionLost};
use crate::service::Services;

/// Limits of WebSocket connections.
#[derive(Clone, Copy, Debug)]
pub struct WebSocketSettings {
    /// How long a new connection may take to send `connection_init`.
    pub init_timeout: Duration,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// Most subscriptions one connection may run at once.
    pub max_subscriptions: usize,
}

/// A connection's subscription slots: a subscription takes one while it runs.
#[derive(Clone)]
pub struct SubscriptionSlots(Arc<Semaphore>, usize);

impl SubscriptionSlots {
    fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)), max)
    }

    /// Takes a slot, or refuses when the connection runs its maximum already.
    pub fn take(&self) -> Result<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().map_err(|_| {
            Error::bad_input(format!(
                "a connection may run at most {} subscriptions at once; stop one or open another connection",
                self.1
            ))
        })
    }
}

/// Upgrades to a WebSocket and serves subscriptions on it until the client leaves; every
/// operation it started ends with the connection.
pub async fn graphql_ws(
    State(schema): State<AppSchema>,
    State(authenticator): State<Authenticator>,
    State(settings): State<WebSocketSettings>,
    State(fanout): State<SubscriptionFanout>,
    State(services): State<Services>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = subprotocol(&headers) else {
        return super::error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "ask for the `graphql-transport-ws` (or legacy `graphql-ws`) subprotocol",
        );
    };
    let connection = Connection {
        schema,
        authenticator,
        fanout,
        events: services.events().clone(),
        protocol,
        settings,
        session: None,
        operations: StreamMap::new(),
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Subscribers send only small control messages, and thousands of them may be connected:
        // small buffers keep each connection to a few KiB instead of tungstenite's 128 KiB
        // default, and a small message limit refuses anything else.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| connection.serve(socket))
}

/// Most frames written to a socket before it is flushed, when several are ready at once.
const FRAMES_PER_FLUSH: usize = 64;

/// One WebSocket connection speaking `graphql-transport-ws` or the legacy `graphql-ws`.
struct Connection {
    schema: AppSchema,
    authenticator: Authenticator,
    fanout: SubscriptionFanout,
    events: EventBus,
    protocol: WebSocketProtocols,
    settings: WebSocketSettings,
    /// Set by an accepted `connection_init`.
    session: Option<Session>,
    /// The running operations by client-chosen id; each yields its frames, `complete` last.
    operations: StreamMap<String, Frames>,
}

/// What an accepted `connection_init` established.
struct Session {
    caller: Caller,
    slots: SubscriptionSlots,
    data: Arc<Data>,
}

/// What a client message asks the connection to do.
enum Reply {
    Nothing,
    Send(Message),
    /// Send these, then close.
    Close(Vec<Message>),
}

impl Connection {
    /// Runs the connection: client messages, the operations' frames, the init timeout and the
    /// pings, until either side closes.
    async fn serve(mut self, socket: WebSocket) {
        let (mut sink, mut incoming) = socket.split();
        let mut last_heard = Instant::now();
        let init_deadline = tokio::time::sleep(self.settings.init_timeout);
        let mut init_deadline = std::pin::pin!(init_deadline);
        let ping_interval = self.settings.ping_interval;
        let mut pings = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        loop {
            let (outgoing, closing) = tokio::select! {
                message = incoming.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                            match self.handle(&message.into_data()) {
                                Reply::Nothing => continue,
                                Reply::Send(message) => (vec![message], false),
                                Reply::Close(messages) => (messages, true),
                            }
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => continue,
                    }
                }
                Some((id, (frame, last))) = self.operations.next(), if !self.operations.is_empty() => {
                    self.forget_completed(&id, last);
                    // Frames that are ready together go out in one write.
                    let mut frames = vec![Message::Text(frame.into())];
                    while frames.len() < FRAMES_PER_FLUSH {
                        match self.operations.next().now_or_never() {
                            Some(Some((id, (frame, last)))) => {
                                self.forget_completed(&id, last);
                                frames.push(Message::Text(frame.into()));
                            }
                            _ => break,
                        }
                    }
                    (frames, false)
                }
                () = &mut init_deadline, if self.session.is_none() => {
                    (vec![close(4408, "Connection initialisation timeout")], true)
                }
                _ = pings.tick() => {
                    if last_heard.elapsed() > ping_interval * 3 {
                        (vec![close(1001, "no answer to keep-alive pings")], true)
                    } else {
                        (vec![Message::Ping(Default::default())], false)
                    }
                }
            };
            // A peer that takes nothing for a whole ping interval (its receive window full: it
            // stopped reading) is gone as far as this server is concerned; waiting on it forever
            // would also stop the pings and the init timeout from ever being checked again.
            let sent = tokio::time::timeout(ping_interval, async {
                for message in outgoing {
                    sink.feed(message).await?;
                }
                sink.flush().await
            })
            .await;
            if !matches!(sent, Ok(Ok(()))) || closing {
                break;
            }
        }
    }

    /// Drops operation `id` once its `complete` is out, so that the id is free again at once.
    fn forget_completed(&mut self, id: &str, completed: bool) {
        if completed {
            self.operations.remove(id);
        }
    }

    /// Answers one client message.
    fn handle(&mut self, bytes: &[u8]) -> Reply {
        let message = match ClientMessage::from_bytes(bytes) {
            Ok(message) => message,
            Err(error) => {
                return Reply::Close(vec![close(4400, &format!("invalid message: {error}"))]);
            }
        };
        match message {
            ClientMessage::ConnectionInit { payload } => self.init(payload.unwrap_or_default()),
            ClientMessage::Start { id, payload } => self.start(id, payload),
            ClientMessage::Stop { id } => match self.operations.remove(&id) {
                Some(_) => Reply::Send(Message::Text(
                    Framer::new(self.protocol, &id).complete.into(),
                )),
                None => Reply::Nothing,
            },
            ClientMessage::ConnectionTerminate => Reply::Close(Vec::new()),
            ClientMessage::Ping { .. } => Reply::Send(Message::Text(r#"{"type":"pong"}"#.into())),
            ClientMessage::Pong { .. } => Reply::Nothing,
        }
    }

    /// `connection_init`: authenticates the caller once for the whole connection.
    fn init(&mut self, payload: serde_json::Value) -> Reply {
        if self.session.is_some() {
            return Reply::Close(vec![close(4429, "Too many initialisation requests")]);
        }
        let caller = self
            .authenticator
            .authenticate(authorization(&payload))
            // Every subscription needs an authenticated caller: refuse the connection now
            // rather than each subscription later.
            .and_then(|caller| caller.actor().map(|_| ()).map(|()| caller));
        match caller {
            Ok(caller) => {
                let mut data = Data::default();
                data.insert(caller.clone());
                self.session = Some(Session {
                    caller,
                    slots: SubscriptionSlots::new(self.settings.max_subscriptions),
                    data: Arc::new(data),
                });
                Reply::Send(Message::Text(r#"{"type":"connection_ack"}"#.into()))
            }
            Err(refused) => match self.protocol {
                WebSocketProtocols::GraphQLWS => {
                    Reply::Close(vec![close(4403, &refused.to_string())])
                }
                WebSocketProtocols::SubscriptionsTransportWS => {
                    let error = serde_json::json!({
                        "type": "connection_error",
                        "payload": { "message": refused.to_string() },
                    });
                    Reply::Close(vec![Message::Text(error.to_string().into())])
                }
            },
        }
    }

    /// `subscribe` (or the legacy `start`): runs the operation, sharing the execution of a
    /// subscription with every other subscriber of the same selection and role.
    fn start(&mut self, id: String, request: Request) -> Reply {
        let Some(session) = &self.session else {
            return Reply::Close(vec![close(4401, "Unauthorized")]);
        };
        if self.operations.contains_key(&id) {
            return Reply::Close(vec![close(
                4409,
                &format!("Subscriber for {id} already exists"),
            )]);
        }
        let framer = Arc::new(Framer::new(self.protocol, &id));
        let expires_at = session.caller.expires_at();
        let expired = expires_at.is_some_and(|at| at <= SystemTime::now());
        let frames = match session.slots.take() {
            // A token past its expiry (but within the verifier's leeway at `connection_init`)
            // runs nothing more.
            Ok(_) if expired => refusal(&framer, expired_error()),
            Ok(slot) if is_subscription(&request) => {
                let held = Held {
                    _slot: slot,
                    _counted: Some(self.events.track_subscriber()),
                };
                let shared = self.fanout.join(&self.schema, request, &session.caller);
                until_complete(
                    shared_frames(shared, framer.clone()),
                    framer,
                    expires_at,
                    held,
                )
            }
            Ok(slot) => {
                // A query or mutation runs to its end, token expiry or not: cutting a mutation
                // short could leave it applied with the client told otherwise.
                let held = Held {
                    _slot: slot,
                    _counted: None,
                };
                let responses = {
                    let framer = framer.clone();
                    self.schema
                        .execute_stream_with_session_data(request, session.data.clone())
                        .map(move |response| framer.frame(&serialize(&response)))
                        .boxed()
                };
                until_complete(responses, framer, None, held)
            }
            Err(refused) => refusal(&framer, refused),
        };
        self.operations.insert(id, frames);
        Reply::Nothing
    }
}

/// An operation's frames: its payloads, each marked whether it is the last (`complete`).
type Frames = BoxStream<'static, (String, bool)>;

/// The frames of an operation refused before it ran: one error, then `complete`.
fn refusal(framer: &Framer, error: Error) -> Frames {
    let refused = framer.frame(&serialize(&response_with_error(error.into())));
    stream::iter([(refused, false), (framer.complete.clone(), true)]).boxed()
}

fn expired_error() -> Error {
    Error::Unauthenticated(
        "the token this connection was opened with expired; reconnect with a fresh token".into(),
    )
}

/// Whether `request` runs a subscription (and can share its execution). A request that does
/// not parse is not: it runs alone and gets its own error.
fn is_subscription(request: &Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let operation = match &document.operations {
        DocumentOperations::Single(operation) => Some(operation),
        DocumentOperations::Multiple(operations) => request
            .operation_name
            .as_deref()
            .and_then(|name| operations.get(name)),
    };
    operation.is_some_and(|operation| operation.node.ty == OperationType::Subscription)
}

/// A response as JSON.
fn serialize(response: &async_graphql::Response) -> String {
    serde_json::to_string(response).unwrap_or_else(|_| {
        r#"{"data":null,"errors":[{"message":"the response could not be encoded","extensions":{"code":"INTERNAL"}}]}"#
            .to_owned()
    })
}

/// Wraps payloads in one operation's frames.
struct Framer {
    /// Everything of a `next` (or legacy `data`) frame before its payload.
    prefix: String,
    /// The operation's `complete` frame.
    complete: String,
}

impl Framer {
    fn new(protocol: WebSocketProtocols, id: &str) -> Self {
        let id = serde_json::Value::from(id).to_string();
        let kind = match protocol {
            WebSocketProtocols::GraphQLWS => "next",
            WebSocketProtocols::SubscriptionsTransportWS => "data",
        };
        Self {
            prefix: format!(r#"{{"id":{id},"type":"{kind}","payload":"#),
            complete: format!(r#"{{"id":{id},"type":"complete"}}"#),
        }
    }

    /// The frame carrying `payload` (a response as JSON).
    fn frame(&self, payload: &str) -> String {
        let mut frame = String::with_capacity(self.prefix.len() + payload.len() + 1);
        frame.push_str(&self.prefix);
        frame.push_str(payload);
        frame.push('}');
        frame
    }
}

/// A subscriber's frames of a shared execution: each rendered event in one frame, until the
/// execution ends or this subscriber falls too far behind. Events committed before it joined
/// are skipped.
fn shared_frames(shared: SharedSubscription, framer: Arc<Framer>) -> BoxStream<'static, String> {
    // The state: the share, the number of the last event received, and whether it is over.
    stream::unfold(
        (shared, 0_u64, false),
        move |(mut shared, mut received, over)| {
            let framer = framer.clone();
            async move {
                if over {
                    return None;
                }
                loop {
                    let rendered = match shared.next().await {
                        Ok(rendered) => rendered,
                        Err(missed) => {
                            let lost = response_with_error(async_graphql::Error::from(
                                SubscriptionLost::Lagged(missed),
                            ));
                            return Some((
                                framer.frame(&serialize(&lost)),
                                (shared, received, true),
                            ));
                        }
                    };
                    match &*rendered {
                        Rendered::Next {
                            sequence, position, ..
                        } if shared.joined_after(*position) => received = *sequence,
                        Rendered::Next {
                            sequence, payload, ..
                        } => return Some((framer.frame(payload), (shared, *sequence, false))),
                        // The failure that ended the execution, if this subscriber joined too
                        // late to receive it.
                        Rendered::End {
                            last_error: Some((sequence, payload)),
                        } if *sequence > received => {
                            return Some((framer.frame(payload), (shared, received, true)));
                        }
                        Rendered::End { .. } => return None,
                    }
                }
            }
        },
    )
    .boxed()
}

/// What one running operation holds until it completes.
struct Held {
    _slot: OwnedSemaphorePermit,
    /// Subscriptions are counted while they run.
    _counted: Option<SubscriberGuard>,
}

/// `frames`, ended early with an `UNAUTHENTICATED` error when `expires_at` passes, and then
/// `complete` (the one frame marked last); `held` is given back as soon as `complete` is out.
fn until_complete(
    frames: BoxStream<'static, String>,
    framer: Arc<Framer>,
    expires_at: Option<SystemTime>,
    held: Held,
) -> Frames {
    struct Running {
        frames: BoxStream<'static, String>,
        expiry: Option<std::pin::Pin<Box<Sleep>>>,
        held: Option<Held>,
        framer: Arc<Framer>,
        /// Set once the last frame before `complete` went out.
        finished: bool,
    }
    let expiry = expires_at.map(|at| {
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    });
    let running = Running {
        frames,
        expiry,
        held: Some(held),
        framer,
        finished: false,
    };
    stream::unfold(running, |mut running| async move {
        running.held.as_ref()?;
        if !running.finished {
            // `None`: the token expired before the next frame.
            let next = match running.expiry.as_mut() {
                Some(timer) => tokio::select! {
                    frame = running.frames.next() => Some(frame),
                    () = timer.as_mut() => None,
                },
                None => Some(running.frames.next().await),
            };
            match next {
                Some(Some(frame)) => return Some(((frame, false), running)),
                Some(None) => {}
                None => {
                    running.finished = true;
                    let frame = running
                        .framer
                        .frame(&serialize(&response_with_error(expired_error().into())));
                    return Some(((frame, false), running));
                }
            }
        }
        running.held = None;
        running.frames = stream::empty().boxed();
        let complete = running.framer.complete.clone();
        Some(((complete, true), running))
    })
    .boxed()
}

/// The first GraphQL subprotocol the client offers in `Sec-WebSocket-Protocol`.
fn subprotocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|offered| offered.trim().parse().ok())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The `Authorization` entry of a `connection_init` payload, in any letter case.
fn authorization(payload: &serde_json::Value) -> Option<&str> {
    payload
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
}
