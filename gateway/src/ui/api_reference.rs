//! `/ui/api`: the API's interactive reference, Swagger UI (vendored, see [`super::assets`])
//! rendering the gateway's own `/openapi.json`. Its "Try it out" calls the API from the
//! browser, with the key given to its "Authorize" button (the session's key stays on the
//! server).

use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{self, Nav};
use super::{assets, Viewer};

/// `GET /ui/api`.
pub(crate) async fn page(viewer: Viewer) -> Response {
    let body = html! {
        p {
            "Every operation of the HTTP API, from " a href="/openapi.json" { "/openapi.json" }
            " (OpenAPI 3.1). To try one, choose “Authorize” and give an API key: requests go \
             from this browser to the API with that key."
        }
        link rel="stylesheet" href=(assets::url(assets::SWAGGER_CSS));
        div #swagger-ui {}
        script src=(assets::url(assets::SWAGGER_JS)) defer {}
        script src=(assets::url(assets::API_REFERENCE_JS)) defer {}
    };
    layout::page(&viewer, Nav::Api, "API reference", body).into_response()
}
