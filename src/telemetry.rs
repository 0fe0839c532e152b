//! Logging and tracing: one `tracing` subscriber for the whole process.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// The header that carries each request's id: set on the way in (or taken from the client),
/// named in every log line of the request, and sent back with the response.
pub const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Installs the global subscriber, writing to `sink` in `format`, filtered by `RUST_LOG` or
/// else `default_filter`. Tests pass a sink that drops everything unless `TEST_LOG` is set.
/// A second call does nothing (the first subscriber stays).
pub fn init<W>(format: LogFormat, default_filter: &str, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    let _already_set = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
