//! The API's route table: every operation the router serves, as a method, a path and a
//! handler, in one list. [`super::router`] and [`super::ops_router`] are built from it, and the
//! OpenAPI test (`openapi.rs`) reads the same list, so a handler added here without its
//! `#[utoipa::path]` in `/openapi.json` fails that test.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};

use super::{
    analytics, batches, calls, contacts, events, inbound, message_log, messages, openapi, ops,
    optouts, providers, smpp, webhooks, AppState,
};

/// An HTTP method the API serves (the ones it uses, so the table stays typed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// `GET` (axum answers `HEAD` with it too).
    Get,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
    /// `PATCH`.
    Patch,
}

impl Verb {
    /// The method's name as OpenAPI spells it (a path item's key).
    pub(crate) fn openapi_key(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Delete => "delete",
            Verb::Patch => "patch",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
            Verb::Patch => MethodFilter::PATCH,
        }
    }
}

/// One operation: a method on a path, and what answers it.
pub(crate) struct Endpoint {
    /// The method, kept beside the handler so the table can be listed.
    pub(crate) verb: Verb,
    /// The path in axum's syntax, which is OpenAPI's too (`/v1/messages/{id}`).
    pub(crate) path: &'static str,
    /// The handler, routed for `verb` only.
    pub(crate) router: MethodRouter<AppState>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb.openapi_key(), self.path)
    }
}

/// `handler` for `verb` on `path`.
fn at<H, T>(verb: Verb, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint {
        verb,
        path,
        router: axum::routing::on(verb.filter(), handler),
    }
}

/// The operator's endpoints: on the API's listener, or on `server.ops_listen` when set.
pub(crate) fn ops() -> Vec<Endpoint> {
    use Verb::Get;
    vec![
        at(Get, "/readyz", ops::readyz),
        at(Get, "/metrics", ops::metrics),
    ]
}

/// Every endpoint of the API's listener but [`ops`]. `batch_body_limit` is the body limit of
/// `POST /v1/messages/batch`, larger than the others'.
pub(crate) fn api(batch_body_limit: usize) -> Vec<Endpoint> {
    use Verb::{Delete, Get, Patch, Post};
    let mut batch = at(Post, "/v1/messages/batch", batches::send);
    batch.router = batch
        .router
        .layer(axum::extract::DefaultBodyLimit::max(batch_body_limit));
    vec![
        at(Post, "/v1/messages", messages::send),
        at(Get, "/v1/messages", messages::list),
        batch,
        at(Get, "/v1/batches/{id}", batches::get),
        at(Get, "/v1/messages/{id}", messages::get),
        at(Post, "/v1/messages/{id}/cancel", messages::cancel),
        at(Get, "/v1/events", events::stream),
        at(Get, "/v1/inbound", inbound::list),
        at(Get, "/v1/calls", calls::list),
        at(Get, "/v1/calls.csv", calls::export_csv),
        at(Get, "/v1/calls.ndjson", calls::export_ndjson),
        at(Get, "/v1/messages.csv", message_log::csv),
        at(Get, "/v1/messages.ndjson", message_log::ndjson),
        at(Get, "/v1/analytics/messages", analytics::messages),
        at(Get, "/v1/analytics/calls", analytics::calls),
        at(
            Get,
            "/v1/operator/analytics/messages",
            analytics::operator_messages,
        ),
        at(
            Get,
            "/v1/operator/analytics/calls",
            analytics::operator_calls,
        ),
        at(Get, "/v1/operator/messages.csv", message_log::operator_csv),
        at(
            Get,
            "/v1/operator/messages.ndjson",
            message_log::operator_ndjson,
        ),
        at(Get, "/v1/opt-outs", optouts::list),
        at(Post, "/v1/opt-outs", optouts::create),
        at(Post, "/v1/opt-outs/import", optouts::import),
        at(Delete, "/v1/opt-outs/{number}", optouts::remove),
        at(Post, "/v1/contacts", contacts::create),
        at(Get, "/v1/contacts", contacts::list),
        at(Post, "/v1/contacts/import", contacts::import::import),
        at(Get, "/v1/contacts/{id}", contacts::get),
        at(Patch, "/v1/contacts/{id}", contacts::patch),
        at(Delete, "/v1/contacts/{id}", contacts::remove),
        at(Get, "/v1/webhooks/dead-letters", webhooks::list),
        at(
            Post,
            "/v1/webhooks/dead-letters/replay",
            webhooks::replay_all,
        ),
        at(
            Post,
            "/v1/webhooks/dead-letters/{id}/replay",
            webhooks::replay_one,
        ),
        at(Get, "/v1/routes/explain", ops::explain),
        at(Get, "/v1/smpp/binds", smpp::binds),
        at(Get, "/v1/providers/{carrier}/webhook", providers::subscribe),
        at(Post, "/v1/providers/{carrier}/webhook", providers::webhook),
        at(Get, "/healthz", ops::healthz),
        at(Get, "/openapi.json", openapi::serve),
    ]
}

/// A router serving `endpoints` (several on one path are merged into one method router).
pub(crate) fn router(endpoints: Vec<Endpoint>) -> axum::Router<AppState> {
    endpoints
        .into_iter()
        .fold(axum::Router::new(), |r, e| r.route(e.path, e.router))
}
