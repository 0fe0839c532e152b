//! CSV import and export of the inventory: `POST /imports/inventory`,
//! `GET /exports/inventory.csv`, `GET /exports/movements.csv`.

use std::io::Write;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::auth::Caller;
use crate::auth::policy::authorize;
use crate::error::Error;
use crate::service::{
    CsvPieces, FailedRow, ImportOptions, ImportSummary, MovementRange, Services, SyncErrorPolicy,
};

/// `POST /imports/inventory`'s query.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    error_policy: SyncErrorPolicy,
    #[serde(default)]
    source: Option<String>,
}

/// The JSON answer to an import.
#[derive(Serialize)]
pub struct ImportBody {
    summary: ImportSummary,
    /// The rows that failed.
    rows: Vec<FailedRow>,
}

/// Imports a CSV file (`Content-Type: text/csv`). The whole upload is stored in a temporary
/// file before anything is applied, so an upload that breaks off or passes the size limit
/// changes nothing. Answers `200` with `{ summary, rows }` (the failed rows), or, with
/// `Accept: text/csv`, the file with `status,error_code,error` added to each row.
pub async fn import(
    State(services): State<Services>,
    caller: Caller,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let actor = authorize(&caller, "importInventory")?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!("invalid query: {}", rejection.body_text()))
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !matches!(essence.as_str(), "text/csv" | "application/csv") {
        return Err(ApiError::bad_request(
            "expected a CSV body with `Content-Type: text/csv`",
        ));
    }
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    let upload = spool(body).await?;
    let report = services
        .imports
        .import(
            upload.path(),
            ImportOptions {
                source: query.source,
                error_policy: query.error_policy,
                dry_run: query.dry_run,
            },
            actor,
        )
        .await?;
    if !wants_csv {
        return Ok(Json(ImportBody {
            summary: report.summary.clone(),
            rows: report.failed_rows.clone(),
        })
        .into_response());
    }
    // The report is as long as the file: it is written to disk too, then streamed from there.
    // Whether it was committed (on a dry run: would be) travels in a header, as the rows
    // cannot say it.
    let committed = report.summary.committed;
    let path = upload.path().to_path_buf();
    let written = tokio::task::spawn_blocking(move || -> Result<tempfile::NamedTempFile, Error> {
        let mut out = tempfile::NamedTempFile::new().map_err(Error::internal)?;
        report.write_csv(&path, out.as_file_mut())?;
        out.as_file_mut().flush().map_err(Error::internal)?;
        Ok(out)
    })
    .await
    .map_err(|error| ApiError::from(Error::internal(error)))??;
    drop(upload);
    let file = tokio::fs::File::open(written.path())
        .await
        .map_err(|error| ApiError::from(Error::internal(error)))?;
    // On Unix the open file stays readable after its name is removed with `written`.
    drop(written);
    let stream = tokio_util::io::ReaderStream::new(file);
    let mut response = csv_response(Body::from_stream(stream), "import-report.csv");
    response.headers_mut().insert(
        "x-import-committed",
        HeaderValue::from_static(if committed { "true" } else { "false" }),
    );
    Ok(response)
}

/// Stores the request body in a temporary file. A body over the route's limit is a `413`.
async fn spool(body: Body) -> Result<tempfile::NamedTempFile, ApiError> {
    let file = tempfile::NamedTempFile::new().map_err(Error::internal)?;
    let mut out = tokio::fs::File::from_std(file.reopen().map_err(Error::internal)?);
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>())
                || error.to_string().contains("length limit");
            if too_large {
                ApiError::payload_too_large()
            } else {
                ApiError::bad_request("the upload broke off before its end")
            }
        })?;
        tokio::io::AsyncWriteExt::write_all(&mut out, &piece)
            .await
            .map_err(Error::internal)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut out)
        .await
        .map_err(Error::internal)?;
    Ok(file)
}

/// The inventory as CSV, one line per bucket (the import's columns).
pub async fn export_inventory(
    State(services): State<Services>,
    caller: Caller,
) -> Result<Response, ApiError> {
    authorize(&caller, "exportInventory")?;
    Ok(csv_response(
        pieces_body(services.exports.inventory()),
        "inventory.csv",
    ))
}

/// `GET /exports/movements.csv`'s query: RFC 3339 instants or `YYYY-MM-DD` (midnight UTC).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovementsQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// The ledger as CSV: movements created at or after `from` and before `to`, one line per
/// bucket each touched.
pub async fn export_movements(
    State(services): State<Services>,
    caller: Caller,
    query: Result<Query<MovementsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&caller, "exportMovements")?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!("invalid query: {}", rejection.body_text()))
    })?;
    let range = MovementRange {
        from: query
            .from
            .as_deref()
            .map(|raw| instant("from", raw))
            .transpose()?,
        to: query
            .to
            .as_deref()
            .map(|raw| instant("to", raw))
            .transpose()?,
    };
    Ok(csv_response(
        pieces_body(services.exports.movements(range)),
        "movements.csv",
    ))
}

fn instant(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(raw) {
        return Ok(instant.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(ApiError::bad_request(format!(
        "{name} must be an RFC 3339 instant (2026-12-07T10:00:00Z) or a date (2026-12-07), not '{raw}'"
    )))
}

/// A body that sends an export's pieces as they are written; an error breaks the download off
/// (the status line has gone already), so a client never mistakes a partial file for a whole.
fn pieces_body(pieces: CsvPieces) -> Body {
    let stream = futures::stream::unfold(pieces, |mut pieces| async move {
        let piece = pieces.recv().await?;
        Some((piece.map_err(std::io::Error::other), pieces))
    });
    Body::from_stream(stream)
}

fn csv_response(body: Body, filename: &str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}
