//! A soak: the real binary as its own process under steady load for a few minutes, with nothing
//! scraping `/metrics`. Its memory must level off after warm-up instead of growing with every
//! request. Ignored in a plain `cargo test` (it takes minutes); CI runs it with
//! `cargo test --test api soak -- --ignored --nocapture`. `STOCKROOM_SOAK_SECONDS` sets the
//! measured time (default 90).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{Backend, TestApp, fresh_database, id_of, start_process};

const PRODUCTS: usize = 500;
const CLIENTS: usize = 32;
const WARM_UP: Duration = Duration::from_secs(20);

/// The resident set size of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("a process");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmRSS")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of a few minutes; CI runs it with --ignored"]
async fn memory_levels_off_under_steady_load_with_no_metrics_scraper() {
    let measured = Duration::from_secs(
        std::env::var("STOCKROOM_SOAK_SECONDS")
            .ok()
            .and_then(|seconds| seconds.parse().ok())
            .unwrap_or(90),
    );
    let (database_url, _folder) = fresh_database(Backend::Postgres).await;
    let server = start_process(&database_url, &[]).await;
    let pid = server.child.id().expect("a running server");
    let app = TestApp::client_for(&server.address, &database_url);
    let mut products = Vec::new();
    for index in 0..PRODUCTS {
        products.push(id_of(
            &app.create_product("Soak", &format!("SOAK-{index}"), 1_000_000, 0)
                .await,
        ));
    }
    let products = Arc::new(products);
    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop = started + WARM_UP + measured;

    let client = reqwest::Client::new();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|worker| {
            let client = client.clone();
            let address = server.address.clone();
            let products = products.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut next = worker;
                while Instant::now() < stop {
                    next = (next + 7) % products.len();
                    let response = client
                        .put(format!("{address}/products/{}/reduce", products[next]))
                        .json(&json!({ "quantity": 1 }))
                        .send()
                        .await
                        .expect("an answer");
                    assert_eq!(response.status(), 200);
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    tokio::time::sleep(WARM_UP).await;
    let after_warm_up = (rss(pid), requests.load(Ordering::Relaxed));
    let mut samples = vec![after_warm_up];
    while Instant::now() < stop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        samples.push((rss(pid), requests.load(Ordering::Relaxed)));
    }
    join_all(workers).await;
    let (end_rss, end_requests) = *samples.last().unwrap();

    for (rss, requests) in &samples {
        println!(
            "soak: {requests:>8} requests, RSS {:.1} MB",
            *rss as f64 / 1e6
        );
    }
    let served = end_requests - after_warm_up.1;
    let per_request = slope(&samples);
    println!(
        "soak: {served} requests after warm-up in {measured:?} ({:.0} req/s); RSS {:.1} MB -> \
         {:.1} MB: a trend of {per_request:.2} bytes per request (a leak of 60 bytes per \
         request is the failure this guards against)",
        served as f64 / measured.as_secs_f64(),
        after_warm_up.0 as f64 / 1e6,
        end_rss as f64 / 1e6,
    );
    assert!(
        served > 10_000,
        "too little load to judge: {served} requests"
    );
    assert!(
        per_request < 20.0,
        "memory grows with every request: {per_request:.2} bytes per request"
    );
}

/// The least-squares slope of RSS over requests served: bytes the server keeps per request.
/// A trend over every sample, so one allocator step up or down does not decide the verdict.
fn slope(samples: &[(u64, u64)]) -> f64 {
    let count = samples.len() as f64;
    let mean_x = samples.iter().map(|(_, x)| *x as f64).sum::<f64>() / count;
    let mean_y = samples.iter().map(|(y, _)| *y as f64).sum::<f64>() / count;
    let covariance: f64 = samples
        .iter()
        .map(|(y, x)| (*x as f64 - mean_x) * (*y as f64 - mean_y))
        .sum();
    let variance: f64 = samples
        .iter()
        .map(|(_, x)| (*x as f64 - mean_x).powi(2))
        .sum();
    covariance / variance
}
