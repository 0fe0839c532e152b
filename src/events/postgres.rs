//! The PostgreSQL listener: one `LISTEN` connection per instance that feeds every local
//! subscriber, and that reconnects (and says so) when the connection drops.

use std::time::Duration;

use sea_orm::DbErr;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::{CHANNEL, Channel, StockEvent};
use crate::cache::ProductCache;

/// The `application_name` of the listener's connection, so operators can find it.
pub const LISTENER_APPLICATION_NAME: &str = "stockroom-listener";

/// Connects, `LISTEN`s, and spawns the task that forwards notifications to `channel`.
pub(super) async fn start_listener(
    database_url: &str,
    channel: Channel,
    cache: ProductCache,
    commits: watch::Sender<u64>,
) -> Result<(), DbErr> {
    let separator = if database_url.contains('?') { '&' } else { '?' };
    let url = format!("{database_url}{separator}application_name={LISTENER_APPLICATION_NAME}");
    let mut listener = PgListener::connect(&url)
        .await
        .map_err(|error| DbErr::Custom(format!("cannot start the event listener: {error}")))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(|error| DbErr::Custom(format!("cannot LISTEN for events: {error}")))?;
    tokio::spawn(forward(listener, channel, cache, commits));
    Ok(())
}

async fn forward(
    mut listener: PgListener,
    channel: Channel,
    cache: ProductCache,
    commits: watch::Sender<u64>,
) {
    let mut retry_delay = Duration::from_millis(100);
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                retry_delay = Duration::from_millis(100);
                match StockEvent::from_payload(notification.payload()) {
                    Ok(event) => {
                        // The cache first: once a subscriber has seen a change, no read on
                        // this instance returns the product as it was before.
                        cache.observe(&event);
                        channel.publish(event.into());
                        // The relay, which wakes on commits of every instance.
                        commits.send_modify(|count| *count += 1);
                    }
                    Err(error) => {
                        tracing::error!(%error, "ignoring an event that does not parse");
                    }
                }
            }
            // sqlx has already reconnected and re-subscribed; what was sent meanwhile is lost,
            // so every subscriber is told.
            Ok(None) => {
                tracing::warn!(
                    "the event listener lost its PostgreSQL connection and reconnected; subscribers may have missed events and are being closed"
                );
                cache.clear();
                channel.gap();
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?retry_delay, "the event listener cannot reach PostgreSQL; retrying");
                cache.clear();
                channel.gap();
                tokio::time::sleep(retry_delay).await;
                retry_delay = (retry_delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
