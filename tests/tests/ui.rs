//! The dashboard (`/ui`) in a real browser: `switchyard serve` with its sandbox SMSC, Debian's
//! headless Chromium driven over WebDriver (`chromedriver`, with `fantoccini`).
//!
//! [`a_tenant_sees_its_message_delivered_and_another_tenant_does_not`]: log in with a tenant's
//! key, send a message through the API, see the overview count it as delivered (htmx polling, no
//! reload) and the messages page show it delivered, open its page (history, segments), replay
//! one of its dead webhooks from the webhooks page and see it delivered, log out; a second
//! tenant, signing in from the keyboard (Enter, then Tab to the skip link and the navigation),
//! gets "not found" for that id; a read-only key sees no dead letters and its POSTs are refused,
//! as is a POST with a wrong CSRF token; an operator key sees the carriers page and the API
//! reference (Swagger UI rendering `/openapi.json`).
//! [`a_notification_call_is_listed_on_the_calls_page_with_its_trunk`]: a gateway with a voice
//! trunk (`sip-uas-sim`) places a notification call; the calls page lists its record and the
//! call's page shows its disposition and trunks. A screenshot of
//! each page is saved under the test's temp folder (its path is printed; set
//! `SWITCHYARD_KEEP_TEMP=1` to keep it).
//!
//! The test fails, saying so, when chromedriver or Chromium is missing (`.ci/install` installs
//! Debian's `chromium` and `chromium-driver`). Every wait is bounded by [`WAIT`].

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use switchyard_tests::gateway::{hash_key, Gateway, TempDir, ALLOW_LOOPBACK, OPERATOR_KEY};
use switchyard_tests::http;
use switchyard_tests::sink::Sink;
use switchyard_tests::{binary, Process};

/// Longest wait for anything.
const WAIT: Duration = Duration::from_secs(30);
/// The WebDriver server.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Tenant "acme"'s key (every scope).
const ACME: &str = "sk_ui_acme_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// Tenant "acme"'s read-only key.
const ACME_READ: &str = "sk_ui_acme_read_rrrrrrrrrrrrrrrrrrrrrrrrrrrr";
/// Tenant "beta"'s key.
const BETA: &str = "sk_ui_beta_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A gateway with two tenants and the sandbox SMS carrier "Sms". Acme's webhooks go to
/// `webhook_url` and are given up after a second.
fn write_config(dir: &TempDir, webhook_url: &str) -> anyhow::Result<PathBuf> {
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [operator]\napi_keys = [{:?}]\n\n\
         [webhooks]\nretry_initial_ms = 100\nretry_max_ms = 300\ngive_up_after_s = 1\n\
         timeout_ms = 1000\n\n{ALLOW_LOOPBACK}\n\
         [[tenants]]\nname = \"acme\"\n\
         api_keys = [{:?}, {{ hash = {:?}, scopes = [\"read\"] }}]\n\
         webhook_url = {webhook_url:?}\nwebhook_secrets = [\"whsec_dashboard_test_secret\"]\n\n\
         [[tenants]]\nname = \"beta\"\napi_keys = [{:?}]\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\n\
         smpp = {{ sandbox = true, system_id = \"acme\" }}\n\n\
         [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\nsandbox = true\n",
        dir.join("data").display().to_string(),
        hash_key(OPERATOR_KEY)?,
        hash_key(ACME)?,
        hash_key(ACME_READ)?,
        hash_key(BETA)?,
    )?;
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}

/// A running chromedriver in a process group of its own, which holds the browsers it starts:
/// the whole group is killed (by the group's id, the driver's PID) when dropped, so a test
/// that fails before closing its session leaves no browser behind.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port of 127.0.0.1 and waits (bounded) until it accepts
/// connections. Fails, naming the package, when it or the browser is missing.
fn chromedriver() -> anyhow::Result<Driver> {
    for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
        if !Path::new(path).exists() {
            bail!(
                "{path} is missing: install Debian's {package} package \
                 (`apt-get install -y chromium chromium-driver`; .ci/install does)"
            );
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {CHROMEDRIVER}"))?;
    let driver = Driver { child, port };
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            bail!("chromedriver did not listen on port {port} within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(driver)
}

/// A headless Chromium session with a fresh profile in `profile`, and no network beyond
/// what the pages ask for.
async fn browser(driver: &Driver, profile: &Path) -> anyhow::Result<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .context("opening a WebDriver session with Chromium")
}

/// Saves a screenshot of the current page as `shots/<name>.png` and prints its path.
async fn shot(client: &Client, shots: &Path, name: &str) -> anyhow::Result<()> {
    let png = client.screenshot().await?;
    let path = shots.join(format!("{name}.png"));
    std::fs::write(&path, png)?;
    println!("screenshot: {}", path.display());
    Ok(())
}

/// Logs in on `/ui/login` with `key`; waits until the overview shows.
async fn login(client: &Client, base: &str, key: &str) -> anyhow::Result<()> {
    client.goto(&format!("{base}/ui/login")).await?;
    client
        .find(Locator::Id("key"))
        .await?
        .send_keys(key)
        .await?;
    client
        .find(Locator::Css("form[action='/ui/login'] button[type=submit]"))
        .await?
        .click()
        .await?;
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("nav[aria-label=Main]"))
        .await?;
    Ok(())
}

/// Clicks "Log out" and waits for the login form.
async fn logout(client: &Client) -> anyhow::Result<()> {
    client
        .find(Locator::Css("form[action='/ui/logout'] button"))
        .await?
        .click()
        .await?;
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("key"))
        .await?;
    Ok(())
}

/// The text of the element `locator` finds, or "" when there is none or the page replaced
/// it meanwhile (live updates swap parts of pages).
async fn text_of(client: &Client, locator: Locator<'_>) -> String {
    match client.find(locator).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits for the page's notice (`#done`) to say `text`: the page after a form's POST says
/// what it did, and the previous page's notice may still be on screen for a moment.
async fn wait_notice(client: &Client, text: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let done = text_of(client, Locator::Id("done")).await;
        if done.contains(text) {
            return;
        }
        assert!(Instant::now() < deadline, "no notice of {text:?}: {done:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the page's `<main>`.
async fn main_text(client: &Client) -> anyhow::Result<String> {
    Ok(client.find(Locator::Css("main")).await?.text().await?)
}

/// The session cookie and CSRF token of the browser's current session, for raw POSTs.
async fn session_of(client: &Client) -> anyhow::Result<(String, String)> {
    let cookie = client
        .get_named_cookie("switchyard_session")
        .await
        .context("no session cookie")?;
    let csrf = client
        .find(Locator::Css("form[action='/ui/logout'] input[name=csrf]"))
        .await?
        .attr("value")
        .await?
        .context("no csrf field")?;
    Ok((cookie.value().to_owned(), csrf))
}

/// Opens `/ui/events` with the session's cookie (`Connection: close`, so the socket ends
/// with the stream): the socket, past the answer's head, and the head.
fn open_events(api: &str, session: &str) -> anyhow::Result<(TcpStream, String)> {
    let mut socket = TcpStream::connect(api)?;
    socket.set_read_timeout(Some(WAIT))?;
    write!(
        socket,
        "GET /ui/events HTTP/1.1\r\nHost: {api}\r\nCookie: switchyard_session={session}\r\n\
         Accept: text/event-stream\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte)? == 0 {
            bail!("/ui/events closed before its head: {head:?}");
        }
        head.push(byte[0]);
    }
    Ok((socket, String::from_utf8_lossy(&head).into_owned()))
}

/// `POST path` with the session cookie and a form body; the status.
fn raw_post(api: &str, path: &str, session: &str, body: &str) -> anyhow::Result<u16> {
    let cookie = format!("switchyard_session={session}");
    let r = http::Client::new(api).request(
        "POST",
        path,
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(body.as_bytes()),
    )?;
    Ok(r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_its_message_delivered_and_another_tenant_does_not() -> anyhow::Result<()> {
    let dir = TempDir::new("ui")?;
    let shots = dir.join("shots");
    std::fs::create_dir_all(&shots)?;
    let sink = Sink::start()?;
    let config = write_config(&dir, &sink.url)?;
    let gateway = Gateway::start(&config)?;
    gateway.wait_ready(WAIT)?;
    let base = format!("http://{}", gateway.api);
    let driver = chromedriver()?;
    let client = browser(&driver, &dir.join("profile")).await?;
    let outcome = scenario(&client, &gateway.api, &base, &shots, &sink).await;
    client.close().await?;
    outcome
}

async fn scenario(
    client: &Client,
    api: &str,
    base: &str,
    shots: &Path,
    sink: &Sink,
) -> anyhow::Result<()> {
    // Without a session, every page leads to the login form.
    client.goto(&format!("{base}/ui/messages")).await?;
    assert_eq!(client.current_url().await?.path(), "/ui/login");
    shot(client, shots, "login").await?;

    // A wrong key is refused on the form.
    client
        .find(Locator::Id("key"))
        .await?
        .send_keys("sk_wrong")
        .await?;
    client
        .find(Locator::Css("form[action='/ui/login'] button"))
        .await?
        .click()
        .await?;
    let error = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("login-error"))
        .await?;
    assert!(error.text().await?.contains("not known"));

    login(client, base, ACME).await?;
    assert_eq!(client.current_url().await?.path(), "/ui");
    let overview = main_text(client).await?;
    assert!(overview.contains("SMPP binds up"), "{overview}");

    // A message through the API, while acme's webhook endpoint fails (dead letters below).
    sink.set_failing(true);
    let mut acme = http::Client::new(api).with_bearer(ACME);
    let sent = acme.post_json(
        "/v1/messages",
        &json!({"to": "+447911123456", "from": "Acme", "body": "Hello from the dashboard test"}),
    )?;
    assert_eq!(sent.status, 202, "{}", sent.text());
    let id = sent.json()?["id"].as_str().context("no id")?.to_owned();
    // The overview's counters refresh by themselves (live updates, htmx polling), without a
    // reload.
    let deadline = Instant::now() + WAIT;
    loop {
        let live = text_of(client, Locator::Id("live")).await;
        if live.contains("delivered") {
            break;
        }
        if Instant::now() >= deadline {
            bail!("the overview did not show the delivered message within {WAIT:?}: {live}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(client.current_url().await?.path(), "/ui");
    shot(client, shots, "overview").await?;

    // On the messages page, delivered.
    let deadline = Instant::now() + WAIT;
    loop {
        client.goto(&format!("{base}/ui/messages")).await?;
        let row = text_of(
            client,
            Locator::XPath(&format!("//table[@id='messages']//tr[td/a[text()='{id}']]")),
        )
        .await;
        if row.contains("delivered") {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "{id} not shown as delivered within {WAIT:?}: {}",
                main_text(client).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shot(client, shots, "messages").await?;

    // Live updates: with the messages page open (no reload: a marker set in the page
    // survives), a message sent through the API appears and turns delivered by itself.
    client.goto(&format!("{base}/ui/messages")).await?;
    client
        .execute("window.switchyardMarker = 42;", vec![])
        .await?;
    let live = acme.post_json(
        "/v1/messages",
        &json!({"to": "+447911123457", "from": "Acme", "body": "Live on the messages page"}),
    )?;
    assert_eq!(live.status, 202, "{}", live.text());
    let live_id = live.json()?["id"].as_str().context("no id")?.to_owned();
    let deadline = Instant::now() + WAIT;
    loop {
        let row = text_of(
            client,
            Locator::XPath(&format!(
                "//table[@id='messages']//tr[td/a[text()='{live_id}']]"
            )),
        )
        .await;
        if row.contains("delivered") {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "{live_id} not shown as delivered without a reload within {WAIT:?}: {}",
                main_text(client).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let marker = client
        .execute("return window.switchyardMarker;", vec![])
        .await?;
    assert_eq!(marker, json!(42), "the page was reloaded");
    shot(client, shots, "messages-live").await?;

    // Its page: status, the segment's carrier id, the history from accepted to delivered.
    client.find(Locator::LinkText(&id)).await?.click().await?;
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("history"))
        .await?;
    assert_eq!(
        client.current_url().await?.path(),
        format!("/ui/messages/{id}")
    );
    let status = client.find(Locator::Id("status")).await?.text().await?;
    assert_eq!(status, "delivered");
    let history = client.find(Locator::Id("history")).await?.text().await?;
    for s in ["accepted", "sent", "delivered"] {
        assert!(history.contains(s), "no {s} in the history: {history}");
    }
    let page = main_text(client).await?;
    assert!(page.contains("Hello from the dashboard test"), "{page}");
    assert!(page.contains("Sms"), "the segment's carrier: {page}");
    shot(client, shots, "message").await?;

    // Its webhooks were given up: dead letters, one replayed from the page.
    let deadline = Instant::now() + WAIT;
    let rows = loop {
        client.goto(&format!("{base}/ui/webhooks")).await?;
        let rows = client
            .find_all(Locator::Css("#dead-letters tbody tr"))
            .await?;
        if !rows.is_empty() {
            break rows;
        }
        if Instant::now() >= deadline {
            bail!(
                "no dead letter within {WAIT:?}: {}",
                main_text(client).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    shot(client, shots, "webhooks").await?;
    let first = rows[0].find(Locator::Css("td")).await?.text().await?;
    assert!(first.starts_with("dl_"), "{first}");
    sink.set_failing(false);
    let before = sink.delivered().len();
    client
        .find(Locator::Css(&format!(
            "button[aria-label='Replay {first}']"
        )))
        .await?
        .click()
        .await?;
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("h1"))
        .await?;
    assert_eq!(client.current_url().await?.path(), "/ui/webhooks");
    assert!(!main_text(client).await?.contains(&format!("{first} ")));
    let deadline = Instant::now() + WAIT;
    while sink.delivered().len() == before {
        if Instant::now() >= deadline {
            bail!("the replayed {first} was not delivered within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The endpoint's health: the sink's URL, its failures and the one success since.
    client.goto(&format!("{base}/ui/webhooks")).await?;
    let endpoints = client.find(Locator::Id("endpoints")).await?.text().await?;
    assert!(endpoints.contains(&sink.url), "{endpoints}");
    assert!(
        endpoints.contains("HTTP"),
        "the last failure's reason: {endpoints}"
    );
    shot(client, shots, "webhooks-health").await?;

    // Opt-outs: add one with the form, see it, remove it with its button; add another that
    // the other tenant must not see.
    client.goto(&format!("{base}/ui/opt-outs")).await?;
    assert!(main_text(client).await?.contains("No opt-outs match"));
    for number in ["+447911000111", "+447911000222"] {
        let field = client.find(Locator::Id("add-number")).await?;
        field.send_keys(number).await?;
        client
            .find(Locator::Css("#add-opt-out button[type=submit]"))
            .await?
            .click()
            .await?;
        wait_notice(client, number).await;
        let list = client.find(Locator::Id("opt-outs")).await?.text().await?;
        assert!(list.contains(number), "{list}");
    }
    // A Telegram channel's username (no number) for the whole Telegram channel; it is no
    // number for every sender.
    client
        .find(Locator::Id("add-number"))
        .await?
        .send_keys("@switchyard_news")
        .await?;
    client
        .find(Locator::Css("#add-scope option[value='telegram:*']"))
        .await?
        .click()
        .await?;
    client
        .find(Locator::Css("#add-opt-out button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_notice(client, "Added @switchyard_news.").await;
    let list = client.find(Locator::Id("opt-outs")).await?.text().await?;
    assert!(
        list.contains("@switchyard_news") && list.contains("telegram"),
        "{list}"
    );
    let (session, csrf) = session_of(client).await?;
    assert_eq!(
        raw_post(
            api,
            "/ui/opt-outs/add",
            &session,
            &format!("csrf={csrf}&number=%40switchyard_news&scope=*")
        )?,
        400,
        "a chat id is no number for every sender"
    );
    shot(client, shots, "opt-outs").await?;
    client
        .find(Locator::Css(
            "button[aria-label='Remove +447911000111 (*)']",
        ))
        .await?
        .click()
        .await?;
    wait_notice(client, "Removed +447911000111").await;
    let list = client.find(Locator::Id("opt-outs")).await?.text().await?;
    assert!(!list.contains("+447911000111"), "{list}");
    assert!(list.contains("+447911000222"), "{list}");
    // The API sees the same list.
    let listed = acme.get("/v1/opt-outs")?;
    assert!(listed.text().contains("+447911000222"), "{}", listed.text());
    assert!(
        !listed.text().contains("+447911000111"),
        "{}",
        listed.text()
    );
    // Search by number.
    client
        .goto(&format!("{base}/ui/opt-outs?number=%2B447911000222"))
        .await?;
    let list = client.find(Locator::Id("opt-outs")).await?.text().await?;
    assert!(list.contains("+447911000222"), "{list}");

    // Calls: none yet; the filters are there, labelled.
    client.goto(&format!("{base}/ui/calls")).await?;
    assert!(main_text(client).await?.contains("No calls match"));
    for id in ["since", "until", "number", "disposition", "trunk"] {
        client
            .find(Locator::Css(&format!("label[for='{id}']")))
            .await?;
    }
    shot(client, shots, "calls").await?;
    client
        .goto(&format!(
            "{base}/ui/calls?disposition=answered&number=%2B44"
        ))
        .await?;
    assert!(main_text(client).await?.contains("No calls match"));

    // Settings: the keys' scopes (no key), the webhook, no secret.
    client.goto(&format!("{base}/ui/settings")).await?;
    let settings = main_text(client).await?;
    assert!(settings.contains(&sink.url), "{settings}");
    assert!(settings.contains("read"), "{settings}");
    assert!(!settings.contains(ACME) && !settings.contains(ACME_READ));
    assert!(!settings.contains("whsec_dashboard_test_secret"));
    shot(client, shots, "settings").await?;

    // A POST with the session's cookie but not its token is refused.
    let (session, csrf) = session_of(client).await?;
    assert_eq!(
        raw_post(
            api,
            "/ui/opt-outs/add",
            &session,
            "csrf=0000&number=%2B447911000333&scope=*"
        )?,
        403
    );
    assert_eq!(raw_post(api, "/ui/logout", &session, "csrf=0000")?, 403);
    assert_eq!(raw_post(api, "/ui/logout", &session, "")?, 403);

    logout(client).await?;
    // The session is over: its cookie no longer opens pages, its token no longer posts.
    assert_eq!(
        raw_post(api, "/ui/logout", &session, &format!("csrf={csrf}"))?,
        403
    );
    client.goto(&format!("{base}/ui/messages/{id}")).await?;
    assert_eq!(client.current_url().await?.path(), "/ui/login");

    // Another tenant, signing in from the keyboard alone: the key and Enter; then Tab from the
    // top of the page reaches the skip link first, then the navigation.
    client.goto(&format!("{base}/ui/login")).await?;
    let enter = char::from(Key::Enter);
    client
        .find(Locator::Id("key"))
        .await?
        .send_keys(&format!("{BETA}{enter}"))
        .await?;
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("nav[aria-label=Main]"))
        .await?;
    let tab = char::from(Key::Tab);
    let press = |n: usize| {
        let mut keys = KeyActions::new("keyboard".to_owned());
        for _ in 0..n {
            keys = keys
                .then(KeyAction::Down { value: tab })
                .then(KeyAction::Up { value: tab });
        }
        keys
    };
    client.perform_actions(press(1)).await?;
    let focused = client.active_element().await?;
    assert_eq!(focused.text().await?, "Skip to content");
    client.perform_actions(press(2)).await?;
    let focused = client.active_element().await?;
    assert_eq!(focused.attr("href").await?.as_deref(), Some("/ui"));
    assert_eq!(focused.text().await?, "Overview");

    // That tenant: the id is not found, and its list does not show it.
    client.goto(&format!("{base}/ui/messages/{id}")).await?;
    let page = main_text(client).await?;
    assert!(page.contains("no such message"), "{page}");
    shot(client, shots, "other-tenant").await?;
    client.goto(&format!("{base}/ui/messages")).await?;
    let page = main_text(client).await?;
    assert!(!page.contains(&id), "{page}");
    assert!(page.contains("No messages match"), "{page}");
    // Nor may it pick the tenant: a tenant's key always sees its own.
    client
        .goto(&format!("{base}/ui/messages?tenant=acme"))
        .await?;
    assert!(!main_text(client).await?.contains(&id));
    // Nor acme's opt-outs, settings or calls.
    for path in [
        "/ui/opt-outs",
        "/ui/opt-outs?tenant=acme&number=%2B447911000222",
    ] {
        client.goto(&format!("{base}{path}")).await?;
        let page = main_text(client).await?;
        assert!(!page.contains("+447911000222"), "{path}: {page}");
        assert!(page.contains("No opt-outs match"), "{path}: {page}");
    }
    client
        .goto(&format!("{base}/ui/settings?tenant=acme"))
        .await?;
    let page = main_text(client).await?;
    assert!(!page.contains(&sink.url), "{page}");
    assert!(page.contains("No numbers"), "{page}");
    client.goto(&format!("{base}/ui/calls?tenant=acme")).await?;
    assert!(main_text(client).await?.contains("No calls match"));
    client
        .goto(&format!("{base}/ui/calls/call_0000000000000001"))
        .await?;
    assert!(main_text(client).await?.contains("no such call"));
    client.goto(&format!("{base}/ui")).await?;
    logout(client).await?;

    // A read-only key: no dead letters (they need admin), and its POSTs are refused even with
    // its own token.
    login(client, base, ACME_READ).await?;
    assert!(client
        .find(Locator::Css("header"))
        .await?
        .text()
        .await?
        .contains("(read-only)"));
    let (session, csrf) = session_of(client).await?;
    client.goto(&format!("{base}/ui/webhooks")).await?;
    assert!(main_text(client).await?.contains("admin scope"));
    assert_eq!(
        raw_post(
            api,
            "/ui/webhooks/replay",
            &session,
            &format!("csrf={csrf}")
        )?,
        403
    );
    // Nor the opt-outs (as /v1/opt-outs), and its opt-out POSTs are refused.
    client.goto(&format!("{base}/ui/opt-outs")).await?;
    let page = main_text(client).await?;
    assert!(page.contains("admin scope"), "{page}");
    assert!(!page.contains("+447911000222"), "{page}");
    assert_eq!(
        raw_post(
            api,
            "/ui/opt-outs/add",
            &session,
            &format!("csrf={csrf}&number=%2B447911000333&scope=*")
        )?,
        403
    );
    client.goto(&format!("{base}/ui")).await?;
    logout(client).await?;

    // An operator key: the carriers page, and acme's message among acme's.
    login(client, base, OPERATOR_KEY).await?;
    client.goto(&format!("{base}/ui/carriers")).await?;
    let carriers = client.find(Locator::Id("carriers")).await?.text().await?;
    assert!(carriers.contains("Sms"), "{carriers}");
    assert!(carriers.contains("closed"), "the breaker: {carriers}");
    shot(client, shots, "carriers").await?;
    // Route explanation for a number, from the form.
    client
        .find(Locator::Id("to"))
        .await?
        .send_keys("+447911123456")
        .await?;
    client
        .find(Locator::Css("#explain button[type=submit]"))
        .await?
        .click()
        .await?;
    let winner = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("winner"))
        .await?;
    assert_eq!(winner.text().await?, "Sms");
    let candidates = client.find(Locator::Id("candidates")).await?.text().await?;
    assert!(candidates.contains("Sms"), "{candidates}");
    shot(client, shots, "route-explanation").await?;
    client
        .goto(&format!("{base}/ui/carriers?tenant=acme&to=not-a-number"))
        .await?;
    assert!(client
        .find(Locator::Id("explain-error"))
        .await?
        .text()
        .await?
        .contains("not an E.164 number"));
    client
        .goto(&format!("{base}/ui/opt-outs?tenant=acme"))
        .await?;
    assert!(main_text(client).await?.contains("+447911000222"));
    client
        .goto(&format!("{base}/ui/opt-outs?tenant=beta"))
        .await?;
    assert!(!main_text(client).await?.contains("+447911000222"));
    client
        .goto(&format!("{base}/ui/settings?tenant=acme"))
        .await?;
    assert!(main_text(client).await?.contains(&sink.url));
    client.goto(&format!("{base}/ui/calls?tenant=beta")).await?;
    assert!(main_text(client).await?.contains("No calls match"));
    // The API reference, from the navigation: Swagger UI (the page's own scripts only, under
    // the CSP) renders every operation of /openapi.json.
    client
        .find(Locator::LinkText("API reference"))
        .await?
        .click()
        .await?;
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#swagger-ui .opblock"))
        .await?;
    assert_eq!(client.current_url().await?.path(), "/ui/api");
    let operations = client
        .find_all(Locator::Css("#swagger-ui .opblock"))
        .await?;
    assert!(operations.len() >= 25, "{} operations", operations.len());
    let reference = client.find(Locator::Id("swagger-ui")).await?.text().await?;
    for path in [
        "/v1/messages/{id}",
        "/v1/calls.csv",
        "/v1/opt-outs/{number}",
    ] {
        assert!(reference.contains(path), "{path} not shown: {reference}");
    }
    shot(client, shots, "api-reference").await?;
    client
        .goto(&format!("{base}/ui/messages?tenant=acme"))
        .await?;
    assert!(main_text(client).await?.contains(&id));
    client
        .goto(&format!("{base}/ui/webhooks?tenant=beta"))
        .await?;
    assert!(main_text(client).await?.contains("No dead letters"));
    // The session's live-update stream ends when the session does.
    let (session, _) = session_of(client).await?;
    let (mut events, head) = open_events(api, &session)?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    logout(client).await?;
    let mut rest = Vec::new();
    events
        .read_to_end(&mut rest)
        .context("the live-update stream did not end at logout")?;
    Ok(())
}

/// A notification call through a SIP trunk (the `sip-uas-sim` answering): its detail record
/// is listed on the calls page, and its page shows the disposition and the trunk tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_call_is_listed_on_the_calls_page_with_its_trunk() -> anyhow::Result<()> {
    let dir = TempDir::new("ui-calls")?;
    let shots = dir.join("shots");
    std::fs::create_dir_all(&shots)?;
    let sim = Process::start(
        &binary("switchyard-bench", "sip-uas-sim")?,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
        2,
    )?;
    let trunk: std::net::SocketAddr = sim.address("listening")?.parse()?;
    std::fs::write(
        dir.join("voice.csv"),
        "prefix,rate,currency,effective_date,connection_fee,billing,country,description\n\
         44,0.0100,EUR,2025-01-01,0.0000,6/6,United Kingdom,All\n",
    )?;
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n{ALLOW_LOOPBACK}\n\
         [voice]\nring_timeout_s = 2\ntrunk_timeout_ms = 1500\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\n\n\
         [[carriers]]\nname = \"Voice\"\nchannels = [\"voice\"]\n\n[carriers.sip]\n\
         host = \"127.0.0.1\"\nport = {}\n\n\
         [[decks]]\ncarrier = \"Voice\"\nchannel = \"voice\"\npath = \"voice.csv\"\n",
        dir.join("data").display().to_string(),
        hash_key(ACME)?,
        trunk.port(),
    )?;
    let config = dir.join("switchyard.toml");
    std::fs::write(&config, toml)?;
    // Two addresses announced: the API and where calls are placed from.
    let gateway = Process::start(
        &binary("switchyard-gateway", "switchyard")?,
        &["serve", "--config", &config.display().to_string()],
        2,
    )?;
    let api = gateway.address("listening")?;
    let base = format!("http://{api}");

    let mut tenant = http::Client::new(&api).with_bearer(ACME);
    let r = tenant.post_json(
        "/v1/messages",
        &json!({"to": "+447400123456", "from": "+15550001111", "channel": "voice",
                "body": "Hi", "voice": {"tts": true, "language": "en"}}),
    )?;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()?["id"].as_str().context("no id")?.to_owned();
    let deadline = Instant::now() + WAIT;
    loop {
        let m = tenant.get(&format!("/v1/messages/{id}"))?.json()?;
        if m["status"] == "delivered" {
            break;
        }
        if Instant::now() >= deadline || m["status"] == "failed" {
            bail!("the call did not end answered within {WAIT:?}: {m}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let driver = chromedriver()?;
    let client = browser(&driver, &dir.join("profile")).await?;
    let outcome = async {
        login(&client, &base, ACME).await?;
        client.goto(&format!("{base}/ui/calls")).await?;
        let table = client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("table#calls tbody tr"))
            .await?
            .text()
            .await?;
        for part in ["447400123456", "answered", "200", "Voice"] {
            anyhow::ensure!(
                table.contains(part),
                "{part:?} not in the calls table: {table}"
            );
        }
        shot(&client, &shots, "calls-one").await?;
        client
            .find(Locator::Css("table#calls tbody tr a"))
            .await?
            .click()
            .await?;
        client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Id("facts"))
            .await?;
        let disposition = text_of(&client, Locator::Id("disposition")).await;
        anyhow::ensure!(
            disposition.contains("answered"),
            "disposition: {disposition}"
        );
        let facts = text_of(&client, Locator::Id("facts")).await;
        anyhow::ensure!(facts.contains("Voice"), "the answering trunk: {facts}");
        let attempts = text_of(&client, Locator::Id("attempts")).await;
        anyhow::ensure!(
            attempts.contains("Voice") && attempts.contains("200"),
            "trunks tried: {attempts}"
        );
        shot(&client, &shots, "call-detail").await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    client.close().await?;
    outcome
}

/// Pages link their assets by content hash; assets are cached for a year, a stale hash is not
/// found; a page without a session sends to the login form, and so do the overview's counters.
#[test]
fn the_assets_are_served_with_long_cache_headers() -> anyhow::Result<()> {
    let dir = TempDir::new("ui-assets")?;
    let config = write_config(&dir, "http://127.0.0.1:9/")?;
    let gateway = Gateway::start(&config)?;
    let mut client = http::Client::new(&gateway.api);
    let login = client.get("/ui/login")?;
    assert_eq!(login.status, 200);
    let html = login.text();
    let mut urls = html
        .split('"')
        .filter(|s| s.starts_with("/ui/assets/"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    urls.sort();
    assert_eq!(urls.len(), 3, "{html}");
    for url in &urls {
        let r = client.get(url)?;
        assert_eq!(r.status, 200, "{url}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
    }
    let stale = urls[0].replacen("/ui/assets/", "/ui/assets/0", 1);
    assert_eq!(client.get(&stale)?.status, 404);
    let page = client.get("/ui/messages")?;
    assert_eq!(page.status, 303);
    assert_eq!(page.header("location"), Some("/ui/login"));
    // The overview's polled counters tell htmx to load the login page instead.
    let live = client.get("/ui/overview/live")?;
    assert_eq!(live.status, 200);
    assert_eq!(live.header("hx-redirect"), Some("/ui/login"));
    // The live-update stream answers 204 (EventSource does not reconnect).
    assert_eq!(client.get("/ui/events")?.status, 204);
    Ok(())
}
