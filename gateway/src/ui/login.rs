//! `/ui/login` and `/ui/logout`.
//!
//! The login form is protected against cross-site posting before any session exists by a
//! token of its own: `GET /ui/login` sets it in a `SameSite=Strict` cookie and in the form, and
//! the POST must carry both, equal. A key is accepted as the API accepts it: an operator key,
//! or a tenant's key with the `read` scope. Success opens a session and replaces the login
//! cookie by the session cookie. Unknown keys count against the client's address
//! ([`super::throttle`]): past the limit the form answers 429 with `Retry-After`.

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::session::{self, csrf_matches, random_token};
use super::{layout, set_cookie, UiError, UiState, Viewer, Who, LOGIN_COOKIE, SESSION_COOKIE};
use crate::api::listener::Peer;
use crate::api::Scope;
use crate::domain::now_ms;
use switchyard_ops::config::ApiKeyHash;

/// The login form's lifetime (its cookie's `Max-Age`), seconds.
const LOGIN_FORM_S: u64 = 3600;
/// Sign-ins by outcome: `signed_in`, `unknown_key`, `throttled` (refused by the limit).
const SIGN_INS: &str = "switchyard_ui_sign_ins_total";

/// `GET /ui/login`: the form.
pub(crate) async fn form(State(state): State<UiState>) -> Response {
    let token = random_token();
    login_page(&state, StatusCode::OK, &token, None)
}

fn login_page(state: &UiState, status: StatusCode, token: &str, error: Option<&str>) -> Response {
    let body: Markup = html! {
        div.login {
            p { "Sign in with an API key: a tenant's key (with the read scope) or an operator key." }
            @if let Some(e) = error {
                p.error role="alert" #login-error { (e) }
            }
            form method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(token);
                label for="key" { "API key" }
                input #key type="password" name="key" required autocomplete="off"
                    spellcheck="false" autofocus[error.is_none()];
                button type="submit" { "Sign in" }
            }
        }
    };
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, token, LOGIN_FORM_S, state.secure),
        )],
        layout::bare("Sign in", body),
    )
        .into_response()
}

/// The login form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    /// The API key.
    key: String,
    /// The login form's token (missing reads as empty, which never matches).
    #[serde(default)]
    csrf: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginForm { .. }")
    }
}

/// `POST /ui/login`.
pub(crate) async fn submit(
    State(state): State<UiState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = super::cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    let fresh = random_token();
    let client = peer.map(|p| p.0 .0.ip());
    if let Err(wait) = state.throttle.check(client, Instant::now()) {
        metrics::counter!(SIGN_INS, "outcome" => "throttled").increment(1);
        let mut response = login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &fresh,
            Some("Too many failed sign-ins from this address; try again later."),
        );
        // Whole seconds, rounded up, so the client never comes back early.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return response;
    }
    if !csrf_matches(expected, &form.csrf) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            &fresh,
            Some("The sign-in form expired or did not come from this page; try again."),
        );
    }
    let key = ApiKeyHash::of_key(form.key.trim());
    match super::who(&state.app, &key) {
        None => {
            metrics::counter!(SIGN_INS, "outcome" => "unknown_key").increment(1);
            state.throttle.failed(client, Instant::now());
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &fresh,
                Some("This API key is not known."),
            )
        }
        Some(Who::Tenant { scopes, .. }) if !scopes.contains(Scope::Read) => login_page(
            &state,
            StatusCode::FORBIDDEN,
            &fresh,
            Some("This API key lacks the read scope, which the dashboard needs."),
        ),
        Some(_) => match state.sessions.open(&key, now_ms()).await {
            Ok(id) => {
                metrics::counter!(SIGN_INS, "outcome" => "signed_in").increment(1);
                let mut headers = HeaderMap::new();
                headers.append(
                    header::SET_COOKIE,
                    set_cookie(
                        SESSION_COOKIE,
                        &id,
                        session::ABSOLUTE.as_secs(),
                        state.secure,
                    ),
                );
                headers.append(
                    header::SET_COOKIE,
                    set_cookie(LOGIN_COOKIE, "", 0, state.secure),
                );
                (headers, Redirect::to("/ui")).into_response()
            }
            Err(e) => login_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                &fresh,
                Some(&format!("Cannot sign in now ({e}); try again later.")),
            ),
        },
    }
}

/// The logout form's field.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    /// The session's token (missing reads as empty, which never matches).
    #[serde(default)]
    pub(crate) csrf: String,
}

/// `POST /ui/logout`: ends the session (read-only keys may too).
pub(crate) async fn logout(
    State(state): State<UiState>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    if !csrf_matches(&viewer.csrf, &form.csrf) {
        return Err(UiError::Forbidden(
            "this form has expired or did not come from this dashboard; reload the page",
        ));
    }
    state.sessions.close(&viewer.session).await?;
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", 0, state.secure),
        )],
        Redirect::to("/ui/login"),
    )
        .into_response())
}
