//! The dashboard's sessions and sign-in over HTTP, across processes: a session opened on one
//! gateway node is served by another node on the same PostgreSQL database, and a logout on
//! that node ends it on the first; a session outlives a restart of a single node on SQLite;
//! an address that tried ten unknown keys is refused with 429 and `Retry-After`, even with a
//! right key, while other sign-ins go on.

use switchyard_tests::gateway::{hash_key, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir};
use switchyard_tests::http::{Client, Response};

const KEY: &str = "sk_e2e_ui_sessions_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A node with tenant "one" and the simulator's carrier; on PostgreSQL when `url` is given.
fn node(dir: &TempDir, sim: &Sim, url: Option<&str>, id: u8) -> Gateway {
    let (store_extra, node) = match url {
        Some(url) => (
            format!("kind = \"postgres\"\nurl = {url:?}\n"),
            format!("[node]\nid = {id}\nheartbeat_s = 1\nlease_s = 3\n"),
        ),
        None => (String::new(), String::new()),
    };
    let config = GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 8)],
        store_extra,
        extra: format!(
            "[[tenants]]\nname = \"one\"\napi_keys = [{:?}]\n\n{node}",
            hash_key(KEY).unwrap(),
        ),
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    Gateway::start(&config).unwrap()
}

/// The value of cookie `name` among the response's `Set-Cookie` headers.
fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `value` of the first hidden `csrf` field of a page.
fn csrf_field(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\"")?;
    let tag_start = page[..at].rfind('<')?;
    let tag = &page[tag_start..at + page[at..].find('>')?];
    let value = tag.split("value=\"").nth(1)?;
    Some(value.split('"').next()?.to_owned())
}

/// Signs in on `api` with `key` (the form's token and cookie first); the response.
fn sign_in(api: &str, key: &str) -> Response {
    let mut client = Client::new(api);
    let form = client.get("/ui/login").unwrap();
    assert_eq!(form.status, 200, "{}", form.text());
    let token = set_cookie(&form, "switchyard_login").expect("the login form's cookie");
    assert_eq!(csrf_field(&form.text()).as_deref(), Some(token.as_str()));
    let cookie = format!("switchyard_login={token}");
    let body = format!("csrf={token}&key={key}");
    client
        .request(
            "POST",
            "/ui/login",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(body.as_bytes()),
        )
        .unwrap()
}

/// Signs in and returns the session cookie's value.
fn session(api: &str) -> String {
    let r = sign_in(api, KEY);
    assert_eq!(r.status, 303, "{}", r.text());
    set_cookie(&r, "switchyard_session").expect("a session cookie")
}

/// `GET path` on `api` with the session cookie.
fn get(api: &str, path: &str, session: &str) -> Response {
    let cookie = format!("switchyard_session={session}");
    Client::new(api)
        .request("GET", path, &[("Cookie", &cookie)], None)
        .unwrap()
}

/// True when the overview is shown with `session` (not the redirect to the login form).
fn signed_in(api: &str, session: &str) -> bool {
    let r = get(api, "/ui", session);
    match r.status {
        200 => {
            assert!(r.text().contains("/ui/logout"), "{}", r.text());
            true
        }
        303 => {
            assert_eq!(r.header("location"), Some("/ui/login"));
            false
        }
        other => panic!("GET /ui: {other} {}", r.text()),
    }
}

#[test]
fn a_session_opened_on_one_node_is_served_and_ended_by_another() {
    let url = switchyard_tests::postgres::create_database("e2e").unwrap();
    let sim = Sim::start(&[], None).unwrap();
    let (dir_a, dir_b) = (
        TempDir::new("ui-node-a").unwrap(),
        TempDir::new("ui-node-b").unwrap(),
    );
    let a = node(&dir_a, &sim, Some(&url), 1);
    let b = node(&dir_b, &sim, Some(&url), 2);
    let s = session(&a.api);
    assert!(signed_in(&a.api, &s));
    assert!(signed_in(&b.api, &s), "node B serves node A's session");
    // The same CSRF token on both nodes: a form rendered by one posts to the other.
    let page_a = get(&a.api, "/ui/messages", &s).text();
    let page_b = get(&b.api, "/ui/messages", &s).text();
    let csrf = csrf_field(&page_a).expect("a csrf field");
    assert_eq!(csrf_field(&page_b).as_deref(), Some(csrf.as_str()));
    // Logout through node B ends the session on node A at once.
    let cookie = format!("switchyard_session={s}");
    let r = Client::new(&b.api)
        .request(
            "POST",
            "/ui/logout",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(format!("csrf={csrf}").as_bytes()),
        )
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(!signed_in(&a.api, &s), "logged out on every node");
    assert!(!signed_in(&b.api, &s));
}

#[test]
fn a_session_outlives_a_restart_of_a_single_sqlite_node() {
    let sim = Sim::start(&[], None).unwrap();
    let dir = TempDir::new("ui-restart").unwrap();
    let mut first = node(&dir, &sim, None, 0);
    let s = session(&first.api);
    assert!(signed_in(&first.api, &s));
    let status = first.process.terminate().unwrap();
    assert!(status.success(), "{status}");
    let second = node(&dir, &sim, None, 0);
    assert!(
        signed_in(&second.api, &s),
        "the session survived the restart"
    );
}

#[test]
fn ten_unknown_keys_from_one_address_are_answered_429_with_retry_after() {
    let sim = Sim::start(&[], None).unwrap();
    let dir = TempDir::new("ui-throttle").unwrap();
    let gw = node(&dir, &sim, None, 0);
    let before = session(&gw.api);
    for i in 0..10 {
        let r = sign_in(&gw.api, &format!("sk_wrong_{i}"));
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text());
    }
    for key in ["sk_wrong_10", KEY] {
        let r = sign_in(&gw.api, key);
        assert_eq!(r.status, 429, "{}", r.text());
        let retry: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=300).contains(&retry), "Retry-After: {retry}");
        assert!(
            r.text().contains("Too many failed sign-ins"),
            "{}",
            r.text()
        );
        assert!(set_cookie(&r, "switchyard_session").is_none());
    }
    let metrics = switchyard_tests::http_get(&gw.api, "/metrics").unwrap();
    for (outcome, n) in [("signed_in", 1), ("unknown_key", 10), ("throttled", 2)] {
        let series = format!("switchyard_ui_sign_ins_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.lines().any(|l| l == series), "no {series}");
    }
    // A session opened before goes on; the API (another door) is not affected.
    assert!(signed_in(&gw.api, &before));
    let mut api = Client::new(&gw.api).with_bearer(KEY);
    assert_eq!(api.get("/v1/messages").unwrap().status, 200);
}
