//! The dashboard's static files, embedded in the binary: the style sheet, htmx, the live-update
//! script, and Swagger UI with its starter script for the API reference (pinned releases, vendored under
//! `gateway/assets/` with their licences).
//!
//! Each is served at `/ui/assets/<hash>/<file>`, `<hash>` being the first 16 hex digits of
//! its SHA-256, with a year's `Cache-Control: immutable`: a browser fetches a file once per
//! content, and a changed file has another URL. A URL with a stale hash is not found.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    /// Its name in URLs.
    file: &'static str,
    /// Its bytes.
    body: &'static [u8],
    /// Its `Content-Type`.
    content_type: &'static str,
}

/// The style sheet.
pub(crate) const CSS: &str = "ui.css";
/// htmx 2.0.11 (0BSD), from the `htmx.org` npm package's `dist/htmx.min.js`.
pub(crate) const HTMX: &str = "htmx-2.0.11.min.js";

/// Swagger UI 5.36.0 (Apache-2.0), from the `swagger-ui-dist` npm package's
/// `swagger-ui-bundle.js`.
pub(crate) const SWAGGER_JS: &str = "swagger-ui-5.36.0-bundle.min.js";
/// Its style sheet (`swagger-ui.css`).
pub(crate) const SWAGGER_CSS: &str = "swagger-ui-5.36.0.css";
/// Starts Swagger UI on `/openapi.json` (hand-written).
pub(crate) const API_REFERENCE_JS: &str = "api-reference.js";

/// Live updates over Server-Sent Events (hand-written).
pub(crate) const LIVE_JS: &str = "live.js";

/// How many files there are.
const COUNT: usize = 6;

const ASSETS: [Asset; COUNT] = [
    Asset {
        file: CSS,
        body: include_bytes!("../../assets/ui.css"),
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        file: HTMX,
        body: include_bytes!("../../assets/htmx-2.0.11.min.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        file: SWAGGER_JS,
        body: include_bytes!("../../assets/swagger-ui-5.36.0-bundle.min.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        file: SWAGGER_CSS,
        body: include_bytes!("../../assets/swagger-ui-5.36.0.css"),
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        file: API_REFERENCE_JS,
        body: include_bytes!("../../assets/api-reference.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        file: LIVE_JS,
        body: include_bytes!("../../assets/live.js"),
        content_type: "text/javascript; charset=utf-8",
    },
];

/// Each asset's content hash, in [`ASSETS`] order (computed once).
fn hashes() -> &'static [String; COUNT] {
    static HASHES: OnceLock<[String; COUNT]> = OnceLock::new();
    HASHES.get_or_init(|| ASSETS.map(|a| hex::encode(&Sha256::digest(a.body)[..8])))
}

/// The URL of the asset `file` (one of the constants above).
pub(crate) fn url(file: &str) -> String {
    let hash = ASSETS
        .iter()
        .zip(hashes())
        .find(|(a, _)| a.file == file)
        .map_or("", |(_, h)| h.as_str());
    format!("/ui/assets/{hash}/{file}")
}

/// `GET /ui/assets/{hash}/{file}`.
pub(crate) async fn serve(Path((hash, file)): Path<(String, String)>) -> Response {
    let found = ASSETS
        .iter()
        .zip(hashes())
        .find(|(a, h)| a.file == file && **h == hash);
    match found {
        Some((asset, _)) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        let css = url(CSS);
        let expected = hex::encode(&Sha256::digest(include_bytes!("../../assets/ui.css"))[..8]);
        assert_eq!(css, format!("/ui/assets/{expected}/ui.css"));
        assert!(url(HTMX).ends_with("/htmx-2.0.11.min.js"));
        for file in [SWAGGER_JS, SWAGGER_CSS, API_REFERENCE_JS, LIVE_JS] {
            let url = url(file);
            assert_eq!(url.split('/').nth(3).map(str::len), Some(16), "{url}");
        }
        assert_ne!(url(CSS).len(), "/ui/assets//ui.css".len());
    }

    #[tokio::test]
    async fn a_stale_hash_is_not_found_and_a_current_one_is_cached_for_a_year() {
        let stale = serve(Path(("0000000000000000".into(), CSS.into()))).await;
        assert_eq!(stale.status(), StatusCode::NOT_FOUND);
        let hash = url(CSS).split('/').nth(3).unwrap().to_owned();
        let ok = serve(Path((hash, CSS.into()))).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ok.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
    }
}
