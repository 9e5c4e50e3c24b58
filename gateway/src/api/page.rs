//! Cursor pagination shared by the list endpoints: the query they all take, and its checks.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use serde::Deserialize;

use super::problem::Problem;

/// Page size when the request names none.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Largest page.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Query of a list endpoint that only pages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub(crate) limit: Option<usize>,
}

/// The query, or 400 `invalid_query` saying what was wrong with it.
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    query
        .map(|Query(q)| q)
        .map_err(|e| Problem::bad_request("invalid_query", e.body_text()))
}

/// The page size asked for (default [`DEFAULT_LIMIT`]), or 422 `invalid_limit`.
pub(crate) fn limit(limit: Option<usize>) -> Result<usize, Problem> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::invalid(
            "limit",
            "invalid_limit",
            "limit must be between 1 and 1000",
        ))
    }
}
