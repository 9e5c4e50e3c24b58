//! The page shell: head (style sheet, htmx, the live-update script), a skip link, the navigation, who is logged in
//! with the logout button, and the operator's tenant picker.

use maud::{html, Markup, DOCTYPE};

use super::{assets, Viewer, Who};
use crate::api::AppState;

/// The navigation entries; the current page is marked `aria-current="page"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    /// `/ui`.
    Overview,
    /// `/ui/messages`.
    Messages,
    /// `/ui/calls`.
    Calls,
    /// `/ui/opt-outs`.
    OptOuts,
    /// `/ui/carriers` (operator keys only).
    Carriers,
    /// `/ui/webhooks`.
    Webhooks,
    /// `/ui/settings`.
    Settings,
    /// `/ui/api`: the API reference.
    Api,
}

/// A full page for a logged-in viewer.
pub(crate) fn page(viewer: &Viewer, current: Nav, title: &str, body: Markup) -> Markup {
    let entries: &[(Nav, &str, &str)] = &[
        (Nav::Overview, "/ui", "Overview"),
        (Nav::Messages, "/ui/messages", "Messages"),
        (Nav::Calls, "/ui/calls", "Calls"),
        (Nav::OptOuts, "/ui/opt-outs", "Opt-outs"),
        (Nav::Carriers, "/ui/carriers", "Carriers"),
        (Nav::Webhooks, "/ui/webhooks", "Webhooks"),
        (Nav::Settings, "/ui/settings", "Settings"),
        (Nav::Api, "/ui/api", "API reference"),
    ];
    let who = match &viewer.who {
        Who::Operator => "operator".to_owned(),
        Who::Tenant { name, .. } if viewer.read_only() => format!("tenant {name} (read-only)"),
        Who::Tenant { name, .. } => format!("tenant {name}"),
    };
    shell(
        title,
        html! {
            a.skip href="#main" { "Skip to content" }
            header {
                a.brand href="/ui" { "Switchyard" }
                nav aria-label="Main" {
                    ul {
                        @for (nav, href, label) in entries {
                            @if *nav != Nav::Carriers || viewer.is_operator() {
                                li {
                                    @if *nav == current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                div.who {
                    span { "Signed in as " strong { (who) } }
                    form method="post" action="/ui/logout" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        button.secondary type="submit" { "Log out" }
                    }
                }
            }
            main #main tabindex="-1" {
                h1 { (title) }
                (body)
            }
        },
    )
}

/// A page without navigation (login, errors).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    shell(
        title,
        html! {
            main #main {
                h1 { (title) }
                (body)
            }
        },
    )
}

fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx would otherwise insert an inline style, which the CSP refuses.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false}"#;
                title { (title) " · Switchyard" }
                link rel="stylesheet" href=(assets::url(assets::CSS));
                script src=(assets::url(assets::HTMX)) defer {}
                script src=(assets::url(assets::LIVE_JS)) defer {}
            }
            body { (body) }
        }
    }
}

/// For an operator, a form choosing the tenant a page shows (`?tenant=`); nothing for a
/// tenant. `action` is the page's path.
pub(crate) fn tenant_picker(
    state: &AppState,
    viewer: &Viewer,
    action: &str,
    shown: &str,
) -> Markup {
    if !viewer.is_operator() {
        return html! {};
    }
    let tenants = super::tenants(state);
    html! {
        form.filters method="get" action=(action) {
            div {
                label for="tenant" { "Tenant" }
                select #tenant name="tenant" {
                    @for t in &tenants {
                        option value=(t) selected[**t == *shown] { (t) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
    }
}

/// A status as a labelled badge (the text carries the meaning; colour only repeats it).
pub(crate) fn status(name: &str) -> Markup {
    html! { span class={ "status status-" (name) } { (name) } }
}
