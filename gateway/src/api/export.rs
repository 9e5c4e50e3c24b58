//! Streamed exports (`GET /v1/messages.csv`, `/v1/messages.ndjson`, `/v1/calls.csv`, … and the
//! operator's): the rows are read from the store one page at a time and each page is written
//! to the response as soon as it is read, so an export of any size holds one page in memory.
//!
//! The status line and headers go out before the first page is read: a store error after that
//! cuts the body short (the connection is closed without the final chunk, so the client sees
//! an incomplete transfer rather than a truncated file that looks whole).

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::stream::{BoxStream, StreamExt};

use crate::store::StoreError;

/// Rows read from the store per page.
pub(crate) const PAGE: usize = 1000;

/// How the rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// CSV with a header line (RFC 4180 quoting).
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// A row of an export: its CSV fields (in the order of the header given to [`response`]) and
/// its JSON object.
pub(crate) trait Exportable: Send + 'static {
    /// The CSV fields.
    fn fields(&self) -> Vec<String>;
    /// The NDJSON object.
    fn json(&self) -> serde_json::Value;
}

/// A stream of pages, each a `Vec` of rows, ending when the store has no more.
pub(crate) type Pages<T> = BoxStream<'static, Result<Vec<T>, StoreError>>;

/// Pages read by `fetch(cursor)` until it answers a page without a next cursor. `fetch`
/// returns the page and the cursor the next page starts from.
pub(crate) fn paginate<T, C, F, Fut>(first: C, fetch: F) -> Pages<T>
where
    T: Send + 'static,
    C: Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<C>), StoreError>> + Send + 'static,
{
    futures::stream::unfold((Some(first), fetch), |(cursor, fetch)| async move {
        let cursor = cursor?;
        match fetch(cursor).await {
            Ok((rows, next)) => Some((Ok(rows), (next, fetch))),
            Err(e) => Some((Err(e), (None, fetch))),
        }
    })
    .boxed()
}

/// The response: `pages` written in `format` (CSV under the line `header`), as an attachment
/// named `name`.`ext`.
pub(crate) fn response<T: Exportable>(
    format: Format,
    name: &str,
    header: &'static [&'static str],
    pages: Pages<T>,
) -> Response {
    let mut first = true;
    let body = pages.map(move |page| {
        let rows = page.map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut out = Vec::with_capacity(rows.len() * 160 + 1);
        match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                if std::mem::take(&mut first) {
                    w.write_record(header).map_err(std::io::Error::other)?;
                }
                for r in &rows {
                    w.write_record(r.fields()).map_err(std::io::Error::other)?;
                }
                w.flush()?;
            }
            Format::Ndjson => {
                for r in &rows {
                    serde_json::to_writer(&mut out, &r.json()).map_err(std::io::Error::other)?;
                    out.push(b'\n');
                }
            }
        }
        Ok::<_, std::io::Error>(Bytes::from(out))
    });
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{}\"", format.extension()),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
