//! The subcommands besides `serve`: `schema`, `token` and `verify`.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::auth;
use crate::config::Config;
use crate::database::Database;
use crate::domain::Role;
use crate::graphql;
use crate::service::LedgerService;

/// `stockroom schema`: prints the SDL.
pub fn schema() -> ExitCode {
    print!("{}", graphql::sdl());
    ExitCode::SUCCESS
}

/// `stockroom token`: prints a bearer token signed with the configured secret.
pub fn token(config: &Config, role: Role, subject: &str, ttl: Duration) -> ExitCode {
    match auth::mint(&config.auth(), role, subject, ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("stockroom token: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `stockroom verify`: prints every product whose stock or reserved units disagree with the
/// ledger and exits with 1 if there is any (2 if the check could not run). With `as_of`,
/// prints every product's stock at that instant instead.
pub async fn verify(config: &Config, as_of: Option<DateTime<Utc>>) -> ExitCode {
    let database = match Database::connect(&config.database()).await {
        Ok(database) => database,
        Err(error) => {
            eprintln!("stockroom verify: cannot connect to the database: {error}");
            return ExitCode::from(2);
        }
    };
    let ledger = LedgerService::new(database);
    if let Some(at) = as_of {
        let by_bucket = match ledger.bucket_stock_as_of(at).await {
            Ok(buckets) => buckets,
            Err(error) => {
                eprintln!("stockroom verify: {error:?}");
                return ExitCode::from(2);
            }
        };
        return match ledger.stock_as_of(at).await {
            Ok(products) => {
                println!("stock as of {}", at.to_rfc3339());
                for product in products {
                    println!("{}\t{}\t{}", product.product_id, product.sku, product.stock);
                }
                println!("by location and lot (lot '-' is stock without a lot)");
                for bucket in by_bucket {
                    let lot = if bucket.lot_code.is_empty() {
                        "-"
                    } else {
                        bucket.lot_code.as_str()
                    };
                    println!(
                        "{}\t{}\t{}\t{lot}\t{}",
                        bucket.product_id, bucket.sku, bucket.location, bucket.stock
                    );
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("stockroom verify: {error:?}");
                ExitCode::from(2)
            }
        };
    }
    match ledger.verify().await {
        Ok(report) if report.is_clean() => {
            println!(
                "ok: {} products, every stock equals its ledger and its buckets, every bucket its allocations, every movement its allocations, and every reserved count its active reservations",
                report.products_checked
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for mismatch in &report.mismatches {
                println!(
                    "MISMATCH {} {}: stock {} but ledger {} and buckets {}; reserved {} but active reservations {} and buckets {}; expired {} but buckets {}",
                    mismatch.product_id,
                    mismatch.sku,
                    mismatch.stock,
                    mismatch.ledger_stock,
                    mismatch.bucket_stock,
                    mismatch.reserved,
                    mismatch.active_reserved,
                    mismatch.bucket_reserved,
                    mismatch.expired,
                    mismatch.bucket_expired
                );
            }
            for bucket in &report.bucket_mismatches {
                println!(
                    "MISMATCH bucket {} (product {}, location {}, lot '{}'): stock {} but allocations {}; reserved {} but held {}",
                    bucket.bucket_id,
                    bucket.product_id,
                    bucket.location_id,
                    bucket.lot_code,
                    bucket.stock,
                    bucket.allocated,
                    bucket.reserved,
                    bucket.held
                );
            }
            for movement in &report.movement_mismatches {
                println!(
                    "MISMATCH movement {}: quantity {} but allocations {}",
                    movement.movement_id, movement.delta, movement.allocated
                );
            }
            println!(
                "{} of {} products, {} buckets and {} movements disagree with the ledger",
                report.mismatches.len(),
                report.products_checked,
                report.bucket_mismatches.len(),
                report.movement_mismatches.len()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("stockroom verify: {error:?}");
            ExitCode::from(2)
        }
    }
}
