//! The RabbitMQ sink: events published to a durable topic exchange, persistent, with publisher
//! confirms, routed by event type. The connection is made on first use and made again after
//! any failure (the relay backs off between tries).

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::entity::outbox_event;
use crate::events::outbox::envelope;

/// How long connecting (and declaring the exchange) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long publishing a batch may take, the broker's confirms included.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a batch was not published (it stays in the outbox and is tried again).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot reach the broker: {0}")]
    Connect(String),
    #[error("the broker did not confirm the batch: {0}")]
    Unconfirmed(String),
}

/// Publishes outbox events to one exchange.
pub struct AmqpSink {
    url: String,
    exchange: String,
    link: Option<(Connection, Channel)>,
}

impl AmqpSink {
    /// A sink for `url` (`amqp://user:password@host:port/vhost`) and `exchange`; connects on
    /// first use.
    pub fn new(url: String, exchange: String) -> Self {
        Self {
            url,
            exchange,
            link: None,
        }
    }

    /// Connects, opens a confirming channel and declares the exchange, unless already done
    /// and still connected.
    pub async fn connect(&mut self) -> Result<(), PublishError> {
        if let Some((connection, channel)) = &self.link
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(());
        }
        self.link = None;
        let link = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let connection = Connection::connect(&self.url, ConnectionProperties::default())
                .await
                .map_err(|error| PublishError::Connect(error.to_string()))?;
            let channel = connection
                .create_channel()
                .await
                .map_err(|error| PublishError::Connect(error.to_string()))?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|error| PublishError::Connect(error.to_string()))?;
            channel
                .exchange_declare(
                    self.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|error| PublishError::Connect(error.to_string()))?;
            Ok::<_, PublishError>((connection, channel))
        })
        .await
        .map_err(|_| PublishError::Connect("timed out".into()))??;
        tracing::info!(exchange = %self.exchange, "connected to the AMQP broker");
        self.link = Some(link);
        Ok(())
    }

    /// Publishes `events` in order and waits until the broker has confirmed every one, all
    /// within [`CONFIRM_TIMEOUT`]: a broker that stops answering is an error, not a hang.
    pub async fn publish(&mut self, events: &[outbox_event::Model]) -> Result<(), PublishError> {
        self.connect().await?;
        let result = tokio::time::timeout(CONFIRM_TIMEOUT, self.publish_connected(events))
            .await
            .unwrap_or_else(|_| Err(PublishError::Unconfirmed("timed out".into())));
        if result.is_err() {
            // Whatever went wrong, the next batch starts on a fresh connection. The old one is
            // closed on the side, briefly: a silent broker must not hold up the relay.
            if let Some((connection, _)) = self.link.take() {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        connection.close(0, "reconnecting".into()),
                    )
                    .await;
                });
            }
        }
        result
    }

    async fn publish_connected(&self, events: &[outbox_event::Model]) -> Result<(), PublishError> {
        let (_, channel) = self
            .link
            .as_ref()
            .ok_or_else(|| PublishError::Connect("not connected".into()))?;
        let unconfirmed = |error: lapin::Error| PublishError::Unconfirmed(error.to_string());
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let body = envelope(
                event.id,
                &event.event_type,
                event.occurred_at,
                event.product_id,
                event.sequence,
                &event.data,
            );
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(event.id.to_string().into())
                .with_type(event.event_type.as_str().into())
                .with_timestamp(event.occurred_at.timestamp().max(0) as u64);
            confirms.push(
                channel
                    .basic_publish(
                        self.exchange.as_str().into(),
                        event.event_type.as_str().into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        properties,
                    )
                    .await
                    .map_err(unconfirmed)?,
            );
        }
        for confirm in confirms {
            let confirmation = confirm.await.map_err(unconfirmed)?;
            if !confirmation.is_ack() {
                return Err(PublishError::Unconfirmed(
                    "the broker refused a message".into(),
                ));
            }
        }
        Ok(())
    }
}
