//! Background upkeep: expiring reservations whose time ran out and lots that passed their
//! date, and forgetting old idempotency keys.

use std::time::Duration;

use crate::service::{Services, prune_idempotency_keys};

/// How often upkeep runs and how long keys are kept.
#[derive(Clone, Copy, Debug)]
pub struct MaintenanceSettings {
    /// How often expired reservations are swept.
    pub reservation_sweep_interval: Duration,
    /// How long idempotency keys are kept.
    pub idempotency_retention: Duration,
    /// How often lots past their date are looked for.
    pub lot_expiry_interval: Duration,
}

/// Starts the upkeep tasks on the current runtime. Failures are logged and retried on the next
/// round; they never stop the server.
pub fn spawn(services: Services, settings: MaintenanceSettings) {
    let lots = services.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(settings.lot_expiry_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match lots.stock.expire_lots().await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "lots passed their date and expired"),
                Err(error) => tracing::warn!(?error, "the lot expiry check failed; retrying"),
            }
        }
    });
    let sweeper = services.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(settings.reservation_sweep_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match sweeper.reservations.expire_due().await {
                Ok(0) => {}
                Ok(expired) => {
                    tracing::info!(expired, "expired reservations gave their units back")
                }
                Err(error) => tracing::warn!(?error, "the reservation sweep failed; retrying"),
            }
        }
    });
    tokio::spawn(async move {
        // Pruning a little more often than the retention keeps the table near its minimum.
        let period = (settings.idempotency_retention / 24).max(Duration::from_secs(60));
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Ok(retention) = chrono::Duration::from_std(settings.idempotency_retention) else {
                return;
            };
            let cutoff = chrono::Utc::now() - retention;
            match prune_idempotency_keys(services.database(), cutoff).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "forgot old idempotency keys"),
                Err(error) => tracing::warn!(?error, "pruning idempotency keys failed; retrying"),
            }
        }
    });
}
