//! The dashboard: server-rendered HTML at `/ui`, served by the API's listener.
//!
//! ## Layout
//! - [`session`]: sessions (random id in a cookie; in the store, shared by every node, under
//!   the id's hash with the key's hash; idle and absolute expiry) and CSRF tokens.
//! - [`login`]: `/ui/login` (an API key, tenant's or operator's), `/ui/logout`;
//!   [`throttle`]: the limit on failed sign-ins per client address.
//! - [`overview`]: counts by status over the last hour and day, the last minutes' throughput,
//!   binds up and queue depths; the counters refresh every few seconds (htmx polling).
//! - [`messages`]: search by id, number and status with paging; a message with its history
//!   and per-segment states.
//! - [`calls`]: call detail records with filters (time, number, disposition, trunk) and paging;
//!   one call with the trunks tried.
//! - [`optouts`]: the opt-out list by number and channel, with adding and removing.
//! - [`carriers`]: each carrier's binds, queue, health and breaker, and a route explanation
//!   for a number (operator keys only).
//! - [`webhooks`]: each endpoint's health, dead letters and their replay.
//! - [`settings`]: the tenant's limits, quotas, keys' scopes, numbers, SMPP users, webhook.
//! - [`live`]: `/ui/events`, the Server-Sent Events the overview and messages pages follow.
//! - [`api_reference`]: the API's interactive reference (Swagger UI over `/openapi.json`).
//! - [`layout`]: the page shell (navigation, who is logged in, the operator's tenant picker).
//! - [`assets`]: the style sheet, htmx and Swagger UI, embedded and served under content-hashed URLs.
//!
//! ## Templates
//! Pages are written with `maud`: the templates are Rust expressions checked when the gateway
//! compiles, every interpolated value is HTML-escaped unless marked otherwise, and there is no
//! template file to ship or find at run time. It is small and maintained, and brings in only
//! `itoa` and its proc-macro crate (plus `axum-core` and `http`, which axum already has), where
//! askama would add a template directory and a configuration of its own. htmx adds the little
//! behaviour there is (polling), and `live.js` a few lines more (refreshing a part of a page
//! when `/ui/events` says something changed); every page works without JavaScript.
//!
//! ## Who sees what
//! A session re-authenticates its key (by the key's hash, which is all it keeps) on every
//! request against the keys the API accepts now ([`crate::api::Authenticator`]). A tenant's
//! key sees its own tenant only and needs the `read`
//! scope; without `send` and `admin` it is read-only: no form that changes anything is shown,
//! and such POSTs are refused (403). Dead letters and changes to the opt-out list need
//! `admin`, as in the API. An operator key sees every tenant, one at a time (`?tenant=`), and
//! the carriers page with the route explanation; message bodies stay hidden from it. The live
//! updates (`/ui/events`) carry the session's tenant's event types only, never a message. Every POST carries the session's CSRF token; the session cookie is
//! `HttpOnly; SameSite=Strict; Path=/ui`, and `Secure` when the API serves TLS.

pub(crate) mod api_reference;
pub(crate) mod assets;
pub(crate) mod calls;
pub(crate) mod carriers;
pub(crate) mod layout;
pub(crate) mod live;
pub(crate) mod login;
pub(crate) mod messages;
pub(crate) mod optouts;
pub(crate) mod overview;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod throttle;
pub(crate) mod webhooks;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use crate::api::{AppState, Scope, Scopes};
use crate::domain::now_ms;
use crate::store::StoreError;
use session::Sessions;
use switchyard_ops::config::ApiKeyHash;
use throttle::LoginThrottle;

/// The session cookie's name.
const SESSION_COOKIE: &str = "switchyard_session";
/// The login form's own CSRF cookie (before there is a session).
const LOGIN_COOKIE: &str = "switchyard_login";

/// What the dashboard's handlers reach.
#[derive(Clone, Debug)]
pub(crate) struct UiState {
    /// The API's state: store, dispatcher, binds, keys.
    pub(crate) app: AppState,
    /// Sessions (in the store) and this node's live-update streams of each.
    pub(crate) sessions: Sessions,
    /// Failed sign-ins per client address, on this node.
    pub(crate) throttle: Arc<LoginThrottle>,
    /// The API is served over TLS: cookies get `Secure`.
    pub(crate) secure: bool,
}

/// The dashboard's routes, merged into the API's router (see [`crate::api::router`]).
pub(crate) fn router(app: AppState, secure: bool) -> Router {
    let state = UiState {
        sessions: Sessions::new(app.store.clone()),
        throttle: Arc::new(LoginThrottle::default()),
        app,
        secure,
    };
    Router::new()
        .route("/ui", get(overview::page))
        .route("/ui/overview/live", get(overview::live))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/messages", get(messages::list))
        .route("/ui/messages/{id}", get(messages::detail))
        .route("/ui/events", get(live::stream))
        .route("/ui/calls", get(calls::list))
        .route("/ui/calls/{id}", get(calls::detail))
        .route("/ui/opt-outs", get(optouts::list))
        .route("/ui/opt-outs/add", post(optouts::add_one))
        .route("/ui/opt-outs/remove", post(optouts::remove_one))
        .route("/ui/settings", get(settings::page))
        .route("/ui/carriers", get(carriers::page))
        .route("/ui/webhooks", get(webhooks::page))
        .route("/ui/webhooks/replay", post(webhooks::replay_all))
        .route("/ui/webhooks/{id}/replay", post(webhooks::replay_one))
        .route("/ui/api", get(api_reference::page))
        .route("/ui/assets/{hash}/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers on every dashboard response: no framing, no inline scripts, and pages (not
/// assets, which set their own) never cached.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Who a session belongs to, as its key authenticates now.
#[derive(Debug, Clone)]
pub(crate) enum Who {
    /// A tenant's key and its scopes.
    Tenant {
        /// The tenant.
        name: Arc<str>,
        /// What the key may do.
        scopes: Scopes,
    },
    /// An operator key: every tenant, the carriers.
    Operator,
}

/// Authenticates the key whose hash is `key` as the API would the key; `None` for an unknown
/// key.
pub(crate) fn who(state: &AppState, key: &ApiKeyHash) -> Option<Who> {
    let auth = state.auth.load();
    if auth.is_operator_hash(key) {
        return Some(Who::Operator);
    }
    auth.authenticate_hash(key)
        .map(|(name, scopes)| Who::Tenant { name, scopes })
}

/// True when `who` may use the dashboard: an operator, or a tenant's key with `read`.
pub(crate) fn may_view(who: &Who) -> bool {
    match who {
        Who::Operator => true,
        Who::Tenant { scopes, .. } => scopes.contains(Scope::Read),
    }
}

/// A request with an open session.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The session's id (for logout and its live-update streams).
    pub(crate) session: String,
    /// The token its forms carry.
    pub(crate) csrf: Arc<str>,
    /// Who it is.
    pub(crate) who: Who,
}

impl Viewer {
    /// True for an operator key.
    pub(crate) fn is_operator(&self) -> bool {
        matches!(self.who, Who::Operator)
    }

    /// True for a tenant's key with neither `send` nor `admin`: nothing may change.
    pub(crate) fn read_only(&self) -> bool {
        match &self.who {
            Who::Operator => false,
            Who::Tenant { scopes, .. } => {
                !scopes.contains(Scope::Send) && !scopes.contains(Scope::Admin)
            }
        }
    }

    /// True when the key may see and replay dead letters (`admin`, or an operator key).
    pub(crate) fn can_admin(&self) -> bool {
        match &self.who {
            Who::Operator => true,
            Who::Tenant { scopes, .. } => scopes.contains(Scope::Admin),
        }
    }

    /// The tenant whose data a page shows: a tenant's own, whatever it asks for; for an
    /// operator the one asked for (it must exist), else the first configured.
    pub(crate) fn tenant(
        &self,
        state: &AppState,
        asked: Option<&str>,
    ) -> Result<Arc<str>, UiError> {
        match &self.who {
            Who::Tenant { name, .. } => Ok(name.clone()),
            Who::Operator => {
                let tenants = tenants(state);
                match asked.filter(|t| !t.is_empty()) {
                    Some(t) => tenants
                        .into_iter()
                        .find(|n| **n == *t)
                        .ok_or(UiError::NotFound("tenant")),
                    None => tenants
                        .into_iter()
                        .next()
                        .ok_or(UiError::NotFound("tenant")),
                }
            }
        }
    }

    /// Checks a form's CSRF token, and that the key may change things.
    pub(crate) fn check_post(&self, csrf: &str) -> Result<(), UiError> {
        if !session::csrf_matches(&self.csrf, csrf) {
            return Err(UiError::Forbidden(
                "this form has expired or did not come from this dashboard; reload the page",
            ));
        }
        if self.read_only() {
            return Err(UiError::Forbidden("this API key is read-only"));
        }
        Ok(())
    }
}

pub(crate) use crate::api::tenants;

impl FromRequestParts<UiState> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &UiState,
    ) -> Result<Self, Self::Rejection> {
        let missing = if parts.method == Method::GET {
            UiError::Login
        } else {
            UiError::Forbidden("not logged in, or the session has ended")
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(missing);
        };
        let Some(session) = state.sessions.touch(id, now_ms()).await? else {
            return Err(missing);
        };
        match who(&state.app, &session.key) {
            Some(who) if may_view(&who) => Ok(Viewer {
                session: id.to_owned(),
                csrf: session.csrf,
                who,
            }),
            _ => {
                // The key was removed by a reload or lost `read`: the session ends with it.
                state.sessions.close(id).await?;
                Err(missing)
            }
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value scoped to `/ui`: `HttpOnly; SameSite=Strict`, `Secure` on TLS.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
    // Names are constants and values hex digits: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Why a dashboard request was not answered with its page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UiError {
    /// No session: to the login page.
    #[error("not logged in")]
    Login,
    /// The key may not do this, or a form's token is wrong.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such thing for this viewer (another tenant's message is "not found" too).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// A filter that cannot be read.
    #[error("{0}")]
    BadRequest(String),
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An API function the page reuses refused, with its status and reason.
    #[error("{}", .0.detail)]
    Api(crate::api::problem::Problem),
}

impl From<crate::api::problem::Problem> for UiError {
    fn from(p: crate::api::problem::Problem) -> Self {
        UiError::Api(p)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match &self {
            UiError::Login => return Redirect::to("/ui/login").into_response(),
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Store(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            UiError::Api(p) => {
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html! {
            p.error role="alert" { (self.to_string()) }
            p { a href="/ui" { "Back to the overview" } }
        };
        (status, layout::bare(title, body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let req = axum::http::Request::builder()
            .header(header::COOKIE, "a=1; switchyard_session=abc ; b=2")
            .header(header::COOKIE, "switchyard_login=xyz")
            .body(())
            .unwrap();
        let h = req.headers();
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(h, LOGIN_COOKIE), Some("xyz"));
        assert_eq!(cookie(h, "switchyard"), None);
    }

    fn viewer(who: Who) -> Viewer {
        Viewer {
            session: "s".repeat(32),
            csrf: Arc::from("c".repeat(32)),
            who,
        }
    }

    fn tenant(scopes: &[Scope]) -> Who {
        Who::Tenant {
            name: Arc::from("acme"),
            scopes: Scopes::of(scopes),
        }
    }

    #[test]
    fn a_post_needs_the_session_token_and_a_key_that_may_change_things() {
        let token = "c".repeat(32);
        for who in [
            tenant(&[Scope::Read, Scope::Send]),
            tenant(&[Scope::Read, Scope::Admin]),
            Who::Operator,
        ] {
            let v = viewer(who);
            assert!(!v.read_only());
            assert!(v.check_post(&token).is_ok());
            assert!(matches!(v.check_post(""), Err(UiError::Forbidden(_))));
            assert!(matches!(
                v.check_post(&"d".repeat(32)),
                Err(UiError::Forbidden(_))
            ));
        }
        let read_only = viewer(tenant(&[Scope::Read]));
        assert!(read_only.read_only());
        assert!(matches!(
            read_only.check_post(&token),
            Err(UiError::Forbidden("this API key is read-only"))
        ));
    }

    #[test]
    fn dead_letters_need_admin_or_an_operator_key() {
        assert!(viewer(tenant(&[Scope::Read, Scope::Admin])).can_admin());
        assert!(viewer(Who::Operator).can_admin());
        assert!(!viewer(tenant(&[Scope::Read, Scope::Send])).can_admin());
        assert!(!viewer(tenant(&[Scope::Read])).can_admin());
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_on_tls() {
        let plain = set_cookie(SESSION_COOKIE, "ab12", 60, false);
        assert_eq!(
            plain,
            "switchyard_session=ab12; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let tls = set_cookie(SESSION_COOKIE, "ab12", 60, true);
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }
}
