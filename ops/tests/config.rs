//! Loading the example, the embedded default, and broken configurations.

use std::path::{Path, PathBuf};

use switchyard_ops::config::{
    self, hash_api_key, Config, ConfigErrorKind, ConfigErrors, Durability, SmppEndpoint, StoreKind,
};

/// The example keys whose hashes are in `examples/switchyard.toml` (they exist only here).
const ACME_PRIMARY: &str = "sk_example_acme_primary";
const ACME_ROTATED: &str = "sk_example_acme_rotated";
const BLUE: &str = "sk_example_blue_retail";
/// The password of the example's SMPP login `acme_bulk` (its SHA-256 is in the file).
const ACME_SMPP_PASSWORD: &[u8] = b"Acm3bulk";

fn example() -> PathBuf {
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("../examples/switchyard.toml")
}

fn examples_dir() -> PathBuf {
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("../examples")
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    config::parse_str(text, "switchyard.toml", Some(&examples_dir()))
}

fn errors(text: &str) -> ConfigErrors {
    match parse(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e,
    }
}

/// Line and column of the error at `path`, or panics listing what was reported.
fn pos(errs: &ConfigErrors, path: &str) -> (u32, Option<u32>) {
    let e = errs
        .at(path)
        .unwrap_or_else(|| panic!("no error at {path}; got:\n{errs}"));
    let l = e.location.unwrap_or_else(|| panic!("no location for {e}"));
    (l.line, l.column)
}

#[test]
fn example_loads_and_builds_a_routing_table() {
    let (cfg, rc) = config::check(example()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.tenants.len(), 2);
    assert_eq!(cfg.carriers.len(), 3);
    assert_eq!(cfg.decks.len(), 3);
    assert_eq!(rc.decks.len(), 3);
    assert_eq!(rc.carriers.len(), 3);
    let relay = cfg.carrier("Postbox Relay").unwrap();
    assert_eq!(relay.smtp.as_ref().unwrap().port, 587);
    assert_eq!(rc.plans.len(), 2);
    assert_eq!(rc.fx.len(), 2);
    let nw = cfg.carrier("Northwind Telecom").unwrap();
    let smpp = nw.smpp.as_ref().unwrap();
    assert_eq!(smpp.binds, 4);
    assert_eq!(smpp.window, 50);
    // TLS stays off in the example until SMPP-over-TLS lands (the gateway refuses it).
    assert!(smpp.tls.is_none());
    assert_eq!(
        smpp.endpoint,
        SmppEndpoint::Remote {
            host: "smsc.northwind.example".into(),
            port: 3550
        }
    );
    let acme = cfg.tenant("acme-bank").unwrap();
    assert_eq!(acme.route.markup.basis_points, 1500);
    assert_eq!(
        cfg.tenant("blue-retail").unwrap().route.markup.basis_points,
        2250
    );
    assert_eq!(cfg.sqlite_path(), PathBuf::from("./data/switchyard.db"));
}

#[test]
fn embedded_default_validates_and_routes() {
    let cfg = Config::embedded_default();
    cfg.validate(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.sqlite_path(), PathBuf::from("./data/switchyard.db"));
    assert_eq!(cfg.store.kind, StoreKind::Sqlite);
    let sandbox = cfg.carrier("sandbox").unwrap();
    assert_eq!(
        sandbox.smpp.as_ref().unwrap().endpoint,
        SmppEndpoint::Sandbox
    );
    // The built-in deck needs no file.
    let rc = cfg
        .routing_config(Path::new("/nonexistent"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rc.decks.len(), 1);
    assert_eq!(rc.decks[0].rates.len(), 9);
    let table = switchyard_routing::RoutingTable::build(
        std::sync::Arc::new(rc),
        1_750_000_000,
        std::time::Instant::now(),
        None,
    )
    .unwrap();
    let n = switchyard_routing::E164::parse("+447700900123").unwrap();
    assert!(table
        .lookup(switchyard_routing::Channel::Sms, &n)
        .candidates
        .iter()
        .next()
        .is_some());
    assert_eq!(
        cfg.find_tenant(config::SANDBOX_API_KEY)
            .map(|t| t.name.as_str()),
        Some("sandbox")
    );
}

#[test]
fn key_verification() {
    let cfg = config::load(example()).unwrap_or_else(|e| panic!("{e}"));
    let name = |k: &str| cfg.find_tenant(k).map(|t| t.name.clone());
    assert_eq!(name(ACME_PRIMARY).as_deref(), Some("acme-bank"));
    assert_eq!(name(ACME_ROTATED).as_deref(), Some("acme-bank"));
    assert_eq!(name(BLUE).as_deref(), Some("blue-retail"));
    assert_eq!(name("sk_example_acme_primarY"), None);
    assert_eq!(name(""), None);
    // The stored hash itself is not a key.
    assert_eq!(name(&hash_api_key(ACME_PRIMARY)), None);
    // Tenant A's keys never yield tenant B, and vice versa.
    for k in [ACME_PRIMARY, ACME_ROTATED] {
        assert_ne!(name(k).as_deref(), Some("blue-retail"));
    }
    assert_ne!(name(BLUE).as_deref(), Some("acme-bank"));
    let fresh = config::generate_api_key();
    assert_eq!(name(&fresh), None);
}

#[test]
fn unknown_key_is_reported_with_position_and_suggestion() {
    let text = std::fs::read_to_string(example()).unwrap().replace(
        "enquire_link_s = 30",
        "enquire_link_s = 30\nenquire_lnk_s = 31",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs}");
    let e = errs.at("carriers[0].smpp.enquire_lnk_s").unwrap();
    assert!(
        matches!(
            e.kind,
            ConfigErrorKind::UnknownKey {
                suggestion: Some("enquire_link_s")
            }
        ),
        "{e}"
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("enquire_lnk_s"))
        .unwrap() as u32
        + 1;
    assert_eq!(
        pos(&errs, "carriers[0].smpp.enquire_lnk_s"),
        (line, Some(1))
    );
}

#[test]
fn plaintext_api_key_is_refused_without_echoing_it() {
    let text = std::fs::read_to_string(example()).unwrap().replace(
        "\"sha256:273b677b00fd4e5c0818bef2edc74eb45a25d004ba1a8c3774c9aee72f090ed1\"",
        "\"sk_live_TOPSECRET\"",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs}");
    let e = errs.at("tenants[1].api_keys[0]").unwrap();
    assert!(matches!(e.kind, ConfigErrorKind::PlaintextApiKey));
    let shown = errs.to_string();
    assert!(!shown.contains("TOPSECRET"), "{shown}");
    assert!(shown.contains("sha256sum"), "{shown}");
    // A truncated hash is a different message.
    let text = text.replace("\"sk_live_TOPSECRET\"", "\"sha256:abc123\"");
    let errs = errors(&text);
    assert!(matches!(
        errs.at("tenants[1].api_keys[0]").unwrap().kind,
        ConfigErrorKind::Invalid(_)
    ));
}

const BROKEN: &str = r#"[server]
listen = "localhost"
max_body_bytes = 10

[store]
kind = "postgres"

[[tenants]]
name = "acme"
api_keys = ["hunter2"]

[[tenants]]
name = "acme"
api_keys = ["sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
allowed_carriers = ["Nobody"]

[[carriers]]
name = "alpha"
channels = ["sms"]
priority = "high"

[[carriers]]
name = "beta"
channels = ["sms", "fax"]
[carriers.smpp]
host = "smsc.example"
port = 2775
system_id = "sy"
window = 0
bind_type = "both"
colour = "blue"

[[decks]]
carrier = "gamma"
channel = "sms"
path = "decks/missing.csv"
"#;

#[test]
fn broken_config_reports_every_mistake() {
    let errs = errors(BROKEN);
    let text = errs.to_string();
    println!("{text}");
    let expect = [
        ("server.listen", (2, Some(10))),
        ("server.max_body_bytes", (3, Some(18))),
        ("store.url", (5, Some(2))), // a missing key points at its table
        ("tenants[0].api_keys[0]", (10, Some(13))),
        ("tenants[1].name", (13, Some(1))),
        ("tenants[1].allowed_carriers[0]", (15, Some(21))),
        ("carriers[0].priority", (20, Some(12))),
        ("carriers[0].channels", (19, Some(1))), // sms without an smpp section
        ("carriers[1].channels[1]", (24, Some(20))),
        ("carriers[1].smpp.window", (29, Some(10))),
        ("carriers[1].smpp.bind_type", (30, Some(13))),
        ("carriers[1].smpp.colour", (31, Some(1))),
        ("decks[0].carrier", (34, Some(1))),
        ("decks[0].path", (36, Some(1))),
    ];
    for (path, at) in expect {
        assert_eq!(pos(&errs, path), at, "{path} in\n{text}");
    }
    assert_eq!(errs.len(), expect.len(), "{text}");
    // One error per line, in file order, in the documented format.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expect.len());
    assert!(lines.contains(
        &"switchyard.toml:29:10: carriers[1].smpp.window: must be between 1 and 10000 (got 0)"
    ));
    assert!(lines.contains(
        &"switchyard.toml:5:2: store.url: the postgres store needs url (or url_env): where the database is"
    ));
    assert!(text.contains("tenant \"acme\" is defined twice (first at tenants[0].name)"));
    assert!(text.contains("expected an integer, found string"));
    assert!(text.contains("unknown carrier \"gamma\""));
    assert!(!text.contains("hunter2"));
}

#[test]
fn syntax_errors_have_positions() {
    let errs = errors("[server]\nlisten = \"127.0.0.1:8080\n");
    let e = errs.iter().next().unwrap();
    assert!(matches!(e.kind, ConfigErrorKind::Syntax(_)), "{errs}");
    assert_eq!(e.location.unwrap().line, 2, "{errs}");
}

#[test]
fn deck_errors_carry_file_and_line() {
    let dir = std::env::temp_dir().join(format!("sy-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.csv"),
        "prefix,price,currency,effective_date\n44,0.01,EUR,2025-01-01\n0x,zero,EUR,2025-01-01\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("decks/kestrel_sms.csv", "bad.csv")
        .replace(
            "decks/northwind_sms.csv",
            &examples_dir()
                .join("decks/northwind_sms.csv")
                .display()
                .to_string(),
        )
        .replace(
            "decks/northwind_voice.csv",
            &examples_dir()
                .join("decks/northwind_voice.csv")
                .display()
                .to_string(),
        );
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    let errs = config::check(&path).map(|_| ()).unwrap_err();
    let text = errs.to_string();
    assert!(errs.len() >= 2, "{text}");
    for e in &errs {
        assert_eq!(e.path, "decks[2]", "{text}");
        assert!(e.file.ends_with("bad.csv"), "{text}");
        assert_eq!(e.location.unwrap().line, 3, "{text}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_file_is_one_error() {
    let errs = config::load("/nonexistent/switchyard.toml").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(matches!(
        errs.iter().next().unwrap().kind,
        ConfigErrorKind::Io(_)
    ));
}

#[test]
fn minimal_file_gets_defaults() {
    let cfg = parse(
        r#"
[[tenants]]
name = "t"
api_keys = ["sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
[[carriers]]
name = "c"
channels = ["sms"]
smpp = { sandbox = true, system_id = "x" }
[[decks]]
carrier = "c"
channel = "sms"
sandbox = true
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let d = Config::embedded_default();
    assert_eq!(cfg.server, d.server);
    assert_eq!(cfg.store, d.store);
    assert_eq!(cfg.routing, d.routing);
    assert_eq!(cfg.carriers[0].smpp.as_ref().unwrap().window, 10);
    assert_eq!(cfg.find_tenant("abc").map(|t| t.name.as_str()), Some("t"));
}

/// The embedded default shown in docs/configuration.md is the real one.
#[test]
fn documented_embedded_default_matches() {
    let doc = std::fs::read_to_string(
        Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
        )
        .join("../docs/configuration.md"),
    )
    .unwrap();
    let section = doc.split("## The embedded default").nth(1).unwrap();
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let text = block.replace("sha256:…", &hash_api_key(config::SANDBOX_API_KEY));
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg, Config::embedded_default());
}

#[test]
fn key_scopes_and_tenant_limits() {
    let read_only = hash_api_key("sk_read_only");
    let text = format!(
        r#"
[[tenants]]
name = "t"
api_keys = [
  "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  {{ hash = "{read_only}", scopes = ["read"] }},
]
max_tps = 5
daily_quota = 1000
monthly_quota = 20000
max_segments = 3
allowed_channels = ["sms"]
allowed_countries = ["gb", "IE"]
blocked_countries = ["US"]
[[carriers]]
name = "c"
channels = ["sms"]
smpp = {{ sandbox = true, system_id = "x" }}
[[decks]]
carrier = "c"
channel = "sms"
sandbox = true
"#
    );
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let (t, all) = cfg.find_key("abc").unwrap();
    assert_eq!(all, config::Scopes::ALL);
    let (_, ro) = cfg.find_key("sk_read_only").unwrap();
    assert!(ro.contains(config::Scope::Read));
    assert!(!ro.contains(config::Scope::Send));
    assert!(!ro.contains(config::Scope::Admin));
    // By the key's hash (what a dashboard session keeps), the same answers.
    let (_, by_hash) = cfg
        .find_key_hash(&config::ApiKeyHash::of_key("sk_read_only"))
        .unwrap();
    assert_eq!(by_hash, ro);
    assert!(cfg
        .find_key_hash(&config::ApiKeyHash::of_key("sk_unknown"))
        .is_none());
    assert_eq!(t.limits.daily_quota, Some(1000));
    assert_eq!(t.limits.monthly_quota, Some(20000));
    assert_eq!(t.limits.max_segments, Some(3));
    assert_eq!(
        t.limits.allowed_countries.as_deref(),
        Some(&["GB".to_owned(), "IE".to_owned()][..])
    );
    assert_eq!(t.limits.blocked_countries, vec!["US".to_owned()]);

    let bad = text
        .replace(r#"scopes = ["read"]"#, r#"scopes = ["write"]"#)
        .replace(r#"["US"]"#, r#"["USA"]"#);
    let e = errors(&bad).to_string();
    assert!(e.contains("scope \"write\""), "{e}");
    assert!(e.contains("\"USA\" is not an ISO 3166"), "{e}");
}

#[test]
fn sip_proxy_settings_trunks_and_allow_lists() {
    let cfg = config::check(example()).unwrap_or_else(|e| panic!("{e}")).0;
    let sip = cfg.sip.as_ref().expect("the example has [sip]");
    assert_eq!(sip.listen, "192.0.2.1:5060".parse().unwrap());
    assert_eq!(
        sip.no_answer_timeout,
        std::time::Duration::from_millis(5000)
    );
    let trunk = cfg
        .carrier("Northwind Telecom")
        .unwrap()
        .sip
        .clone()
        .unwrap();
    assert_eq!((trunk.host.as_str(), trunk.port), ("192.0.2.50", 5060));
    assert_eq!(trunk.rewrite.tech_prefix, "7781");
    assert_eq!(cfg.tenants[0].sip.allow.len(), 2);

    let base = "[sip]\nlisten = \"127.0.0.1:5060\"\n\n\
                [[tenants]]\nname = \"a\"\nsip_allow = [\"10.0.0.1\"]\n\n\
                [[tenants]]\nname = \"b\"\nsip_allow = [\"10.0.0.1\", \"nope\"]\n\n\
                [[carriers]]\nname = \"v\"\nchannels = [\"voice\"]\n\n\
                [[carriers]]\nname = \"s\"\nchannels = [\"sms\"]\n\n\
                [carriers.smpp]\nsandbox = true\nsystem_id = \"s\"\n\n\
                [carriers.sip]\nhost = \"h\"\n";
    let errs = errors(base);
    for path in [
        "tenants[1].sip_allow[0]",
        "tenants[1].sip_allow[1]",
        "carriers[0].channels",
        "carriers[1].sip",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
    let errs = errors("[sip]\nlisten = \"0.0.0.0:5060\"\nno_answer_timeout_ms = 5\n");
    assert!(errs.at("sip.listen").is_some(), "{errs}");
    assert!(errs.at("sip.no_answer_timeout_ms").is_some(), "{errs}");
    assert!(errors("[sip]\n").at("sip.listen").is_some());
    let errs =
        errors("[[carriers]]\nname = \"v\"\nchannels = [\"voice\"]\n\n[carriers.sip]\nport = 0\n");
    assert!(errs.at("carriers[0].sip.host").is_some(), "{errs}");
    assert!(errs.at("carriers[0].sip.port").is_some(), "{errs}");

    // Digest logins, call limits, probing, credentials towards the trunk.
    let ok = config::parse_str(
        &format!("[sip]\nlisten = \"127.0.0.1:5060\"\nrealm = \"voice.example\"\n\
         options_interval_ms = 0\nmax_call_duration_s = 600\n\n\
         [[tenants]]\nname = \"a\"\napi_keys = [{:?}]\nsip_max_cps = 5\nsip_max_calls = 20\n\
         sip_users = [{{ username = \"pbx\", password = \"long-enough\" }}]\n\n\
         [[carriers]]\nname = \"v\"\nchannels = [\"voice\"]\nmax_cps = 30\n\n\
         [carriers.sip]\nhost = \"127.0.0.1\"\nmax_calls = 100\nusername = \"u\"\npassword = \"p\"\n", hash_api_key("k")),
        "t.toml",
        None,
    )
    .unwrap();
    let sip = ok.sip.as_ref().unwrap();
    assert_eq!(sip.realm, "voice.example");
    assert_eq!(sip.options_interval, None);
    assert_eq!(sip.max_call_duration, std::time::Duration::from_secs(600));
    let t = &ok.tenants[0].sip;
    assert_eq!((t.max_cps, t.max_calls), (Some(5), Some(20)));
    assert_eq!(t.users[0].username, "pbx");
    assert!(
        !format!("{:?}", t.users[0]).contains("long-enough"),
        "passwords stay out of logs"
    );
    let trunk = ok.carriers[0].sip.as_ref().unwrap();
    assert_eq!(trunk.max_calls, Some(100));
    assert_eq!(trunk.credentials.as_ref().unwrap().username, "u");
    let errs = errors(
        "[sip]\nlisten = \"127.0.0.1:5060\"\noptions_interval_ms = 100\n\n\
         [[tenants]]\nname = \"a\"\nsip_users = [{ username = \"pbx\", password = \"short\" }]\n\n\
         [[tenants]]\nname = \"b\"\nsip_users = [{ username = \"pbx\", password = \"long-enough\" }]\n\n\
         [[carriers]]\nname = \"v\"\nchannels = [\"voice\"]\n\n\
         [carriers.sip]\nhost = \"h\"\nusername = \"u\"\n",
    );
    for path in [
        "sip.options_interval_ms",
        "tenants[0].sip_users[0].password",
        "tenants[1].sip_users[0].username",
        "carriers[0].sip.password",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }

    // Without [sip], voice carriers need no trunk and nothing listens.
    if let Err(errs) = parse("[[carriers]]\nname = \"v\"\nchannels = [\"voice\"]\n") {
        assert!(errs.at("carriers[0].channels").is_none(), "{errs}");
        assert!(errs.at("carriers[0].sip").is_none(), "{errs}");
    }
}

#[test]
fn sip_allow_entries_pin_transport_and_port_and_logins_may_store_ha1() {
    use config::{SipAllow, SipSecret, SipTransport};
    let sha = "ab".repeat(32);
    let ok = config::parse_str(
        &format!(
            "[sip]\nlisten = \"127.0.0.1:5060\"\ndigest_algorithms = [\"SHA-256\"]\n\
             max_outgoing_connections = 8\nunauthenticated_max_rate = 100\n\
             unauthenticated_max_rate_per_source = 5\nmax_transactions = 1000\n\n\
             [[tenants]]\nname = \"a\"\napi_keys = [{:?}]\n\
             sip_allow = [\"192.0.2.10\", \"udp:192.0.2.11:5060\", \"TCP:192.0.2.12\", \
             \"tls:[2001:db8::1]:5061\", \"192.0.2.13:5070\"]\n\
             sip_users = [{{ username = \"pbx\", ha1_sha256 = \"{}\" }}]\n\n\
             [[carriers]]\nname = \"v\"\nchannels = [\"voice\"]\n\n\
             [carriers.sip]\nhost = \"127.0.0.1\"\n",
            hash_api_key("k"),
            sha.to_uppercase()
        ),
        "t.toml",
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sip = ok.sip.as_ref().unwrap();
    assert_eq!(sip.max_outgoing_connections, 8);
    assert_eq!(sip.unauthenticated_max_rate, 100);
    assert_eq!(sip.unauthenticated_max_rate_per_source, 5);
    assert_eq!(sip.max_transactions, 1000);
    let t = &ok.tenants[0].sip;
    let ip = |s: &str| s.parse().unwrap();
    assert_eq!(
        t.allow,
        [
            SipAllow {
                ip: ip("192.0.2.10"),
                transport: None,
                port: None
            },
            SipAllow {
                ip: ip("192.0.2.11"),
                transport: Some(SipTransport::Udp),
                port: Some(5060)
            },
            SipAllow {
                ip: ip("192.0.2.12"),
                transport: Some(SipTransport::Tcp),
                port: None
            },
            SipAllow {
                ip: ip("2001:db8::1"),
                transport: Some(SipTransport::Tls),
                port: Some(5061)
            },
            SipAllow {
                ip: ip("192.0.2.13"),
                transport: None,
                port: Some(5070)
            },
        ]
    );
    assert_eq!(t.allow[1].to_string(), "udp:192.0.2.11:5060");
    assert_eq!(
        t.users[0].secret,
        SipSecret::Ha1 {
            sha256: Some(sha.clone()),
            md5: None
        }
    );
    assert!(
        !format!("{:?}", t.users[0]).contains(&sha),
        "hashes stay out of logs"
    );

    let errs = errors(&format!(
        "[sip]\nlisten = \"127.0.0.1:5060\"\ndigest_algorithms = [\"SHA-256\"]\n\n\
         [[tenants]]\nname = \"a\"\n\
         sip_allow = [\"sctp:192.0.2.1\", \"udp:192.0.2.1:0\", \"udp:host\"]\n\
         sip_users = [\
         {{ username = \"u0\", password = \"long-enough\", ha1_sha256 = \"{sha}\" }}, \
         {{ username = \"u1\", ha1_sha256 = \"abc\" }}, \
         {{ username = \"u3\" }}]\n",
    ));
    for path in [
        "tenants[0].sip_allow[0]",
        "tenants[0].sip_allow[1]",
        "tenants[0].sip_allow[2]",
        "tenants[0].sip_users[0].password",
        "tenants[0].sip_users[1].ha1_sha256",
        "tenants[0].sip_users[2].password",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
    // Only an MD5 hash while only SHA-256 is offered: this login could never succeed.
    let errs = errors(&format!(
        "[sip]\nlisten = \"127.0.0.1:5060\"\ndigest_algorithms = [\"SHA-256\"]\n\n\
         [[tenants]]\nname = \"a\"\napi_keys = [{:?}]\n\
         sip_users = [{{ username = \"u\", ha1_md5 = \"{}\" }}]\n\n\
         [[carriers]]\nname = \"v\"\nchannels = [\"voice\"]\n\n\
         [carriers.sip]\nhost = \"127.0.0.1\"\n",
        hash_api_key("k"),
        "cd".repeat(16)
    ));
    assert!(errs.at("tenants[0].sip_users[0]").is_some(), "{errs}");
}

#[test]
fn example_smpp_server_and_logins() {
    let cfg = config::check(example()).unwrap_or_else(|e| panic!("{e}")).0;
    let server = cfg
        .smpp_server
        .as_ref()
        .expect("the example has [smpp_server]");
    assert_eq!(server.listen, "0.0.0.0:2775".parse().unwrap());
    assert_eq!(server.tls, None);
    let acme = &cfg.tenant("acme-bank").unwrap().smpp;
    assert_eq!(acme.mo_delivery, config::MoDelivery::Both);
    let login = &acme.users[0];
    assert_eq!(login.system_id, "acme_bulk");
    assert_eq!(
        (login.max_binds, login.window, login.max_tps),
        (2, 100, Some(100))
    );
    assert!(login.secret.matches(ACME_SMPP_PASSWORD));
    assert!(!login.secret.matches(b"acm3bulk"));
    let blue = &cfg.tenant("blue-retail").unwrap().smpp;
    assert_eq!(*blue, config::TenantSmpp::default());
}

#[test]
fn voice_settings_default_and_are_checked() {
    let d = config::VoiceSettings::default();
    assert_eq!(Config::embedded_default().voice, d);
    assert_eq!(d.max_concurrent_calls, 50);
    assert!(d.listen.is_none());
    let base = "[[tenants]]\nname = \"t\"\napi_keys = [\"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"]\n\
                [[carriers]]\nname = \"c\"\nchannels = [\"sms\"]\nsmpp = { sandbox = true, system_id = \"x\" }\n\
                [[decks]]\ncarrier = \"c\"\nchannel = \"sms\"\nsandbox = true\n";
    let cfg = parse(&format!(
        "{base}[voice]\nlisten = \"127.0.0.1:5070\"\nmax_concurrent_calls = 3\nring_timeout_s = 20\n\
         rtp_port_min = 20000\nrtp_port_max = 20100\ntts_cache_entries = 0\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.voice.listen, Some("127.0.0.1:5070".parse().unwrap()));
    assert_eq!(cfg.voice.max_concurrent_calls, 3);
    assert_eq!(cfg.voice.ring_timeout, std::time::Duration::from_secs(20));
    assert_eq!(cfg.voice.rtp_ports, (20000, 20100));
    assert_eq!(cfg.voice.tts_cache_entries, 0);
    let errs = errors(&format!(
        "{base}[voice]\nlisten = \"0.0.0.0:0\"\nrtp_port_min = 30000\nrtp_port_max = 20000\n\
         max_concurrent_calls = 0\nspeed = 2\n"
    ));
    for path in [
        "voice.listen",
        "voice.rtp_port_max",
        "voice.max_concurrent_calls",
        "voice.speed",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
}

#[test]
fn server_listener_settings_and_operator_keys() {
    let tenant_key = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let operator_key = hash_api_key("sk_operator");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:8443"
ops_listen = "127.0.0.1:9090"
max_connections = 64
header_read_timeout_s = 5
request_timeout_s = 20
idle_timeout_s = 40
tls_cert = "switchyard.toml"
tls_key = "switchyard.toml"
tls_client_ca = "switchyard.toml"
[operator]
api_keys = ["{operator_key}"]
[[tenants]]
name = "t"
api_keys = ["{tenant_key}"]
[[carriers]]
name = "c"
channels = ["sms"]
smpp = {{ sandbox = true, system_id = "x" }}
[[decks]]
carrier = "c"
channel = "sms"
sandbox = true
"#
    );
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let s = &cfg.server;
    assert_eq!(s.ops_listen, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(s.max_connections, 64);
    assert_eq!(s.header_read_timeout.as_secs(), 5);
    assert_eq!(s.request_timeout.as_secs(), 20);
    assert_eq!(s.idle_timeout.as_secs(), 40);
    let tls = s.tls.as_ref().expect("tls");
    assert!(tls.client_ca.is_some());
    assert!(cfg.is_operator_key("sk_operator"));
    assert!(
        !cfg.is_operator_key("abc"),
        "a tenant key is not an operator key"
    );
    assert!(cfg.find_tenant("sk_operator").is_none());
    assert!(cfg.is_operator_key_hash(&config::ApiKeyHash::of_key("sk_operator")));
    assert!(!cfg.is_operator_key_hash(&config::ApiKeyHash::of_key("abc")));

    // Safe defaults when the keys are absent.
    let d = config::ServerConfig::default();
    assert!(d.tls.is_none() && d.ops_listen.is_none());
    assert_eq!(d.max_connections, 512);
    assert_eq!(d.header_read_timeout.as_secs(), 10);

    let bad = text
        .replace(
            "ops_listen = \"127.0.0.1:9090\"",
            "ops_listen = \"127.0.0.1:8443\"",
        )
        .replace("idle_timeout_s = 40", "idle_timeout_s = 25")
        .replace("request_timeout_s = 20", "request_timeout_s = 30")
        .replace("tls_key = \"switchyard.toml\"\n", "")
        .replace(
            "tls_client_ca = \"switchyard.toml\"",
            "tls_client_ca = \"nope.pem\"",
        )
        .replace(&operator_key, tenant_key);
    let errs = errors(&bad);
    for path in [
        "server.ops_listen",
        "server.idle_timeout_s",
        "server.tls_key",
        "operator.api_keys[0]",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
}

/// `Debug` of the configuration (what a `{:?}` in a log line would print) carries no SMPP
/// password and no webhook signing secret.
#[test]
fn debug_output_has_no_secrets() {
    let text = r#"
[[tenants]]
name = "t"
api_keys = ["sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
webhook_url = "https://hooks.example.com/sms"
webhook_secrets = ["whsec_TOPSECRET_one", "whsec_TOPSECRET_two"]
[[carriers]]
name = "c"
channels = ["sms"]
[carriers.smpp]
host = "127.0.0.1"
port = 2775
system_id = "esme"
password = "PW_S3CRT"
[[decks]]
carrier = "c"
channel = "sms"
sandbox = true
"#;
    let cfg = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let smpp = cfg.carriers[0].smpp.as_ref().unwrap();
    assert_eq!(smpp.password, "PW_S3CRT");
    let printed = format!("{cfg:?} {smpp:?} {:#?}", cfg.tenants[0].events);
    assert!(!printed.contains("PW_S3CRT"), "{printed}");
    assert!(!printed.contains("TOPSECRET"), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
    assert!(printed.contains("esme") && printed.contains("hooks.example.com"));
}

#[test]
fn inbound_and_retention_settings_default_and_are_checked() {
    use std::time::Duration;
    let day = Duration::from_secs(86_400);
    let d = config::RetentionSettings::default();
    assert_eq!(Config::embedded_default().retention, d);
    assert_eq!(
        (d.messages, d.unmatched_receipts, d.idempotency),
        (Some(day * 90), Some(day * 3), Some(day))
    );
    assert_eq!(
        Config::embedded_default().inbound,
        config::InboundSettings::default()
    );
    let base = "[[tenants]]\nname = \"t\"\napi_keys = [\"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"]\n\
                [[carriers]]\nname = \"c\"\nchannels = [\"sms\"]\nsmpp = { sandbox = true, system_id = \"x\" }\n\
                [[decks]]\ncarrier = \"c\"\nchannel = \"sms\"\nsandbox = true\n";
    let cfg = parse(&format!(
        "{base}[retention]\nmessages_days = 0\ninbound_days = 0.5\ncdrs_days = 7\npurge_batch = 10\n\
         [inbound]\nreassembly_max_bytes = 8192\nkeyword_replies_per_number = 2\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.retention.messages, None, "0 keeps forever");
    assert_eq!(cfg.retention.inbound, Some(day / 2));
    assert_eq!(cfg.retention.cdrs, Some(day * 7));
    assert_eq!(cfg.retention.dead_letters, d.dead_letters);
    assert_eq!(cfg.retention.purge_batch, 10);
    assert_eq!(cfg.inbound.reassembly_max_bytes, 8192);
    assert_eq!(cfg.inbound.keyword_replies_per_number, 2);
    assert_eq!(cfg.inbound.reassembly_timeout, Duration::from_secs(180));
    let errs = errors(&format!(
        "{base}[retention]\nmessages_days = -1\ninbound_days = \"90\"\npurge_interval_s = 0\nkeep = 1\n\
         [inbound]\nreassembly_max_bytes = 10\nkeyword_replies_per_number = 0\n"
    ));
    for path in [
        "retention.messages_days",
        "retention.inbound_days",
        "retention.purge_interval_s",
        "retention.keep",
        "inbound.reassembly_max_bytes",
        "inbound.keyword_replies_per_number",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
}

#[test]
fn smtp_relays_carry_email_at_a_flat_price() {
    let tenant = format!(
        "[[tenants]]\nname = \"a\"\napi_keys = [{:?}]\n\n",
        hash_api_key("k")
    );
    std::env::set_var("SWITCHYARD_TEST_SMTP_PASSWORD", "from-the-environment");
    let ok = parse(&format!(
        "{tenant}[[carriers]]\nname = \"Relay\"\nchannels = [\"email\"]\n\n\
         [carriers.smtp]\nhost = \"smtp.example.net\"\nusername = \"apikey\"\n\
         password_env = \"SWITCHYARD_TEST_SMTP_PASSWORD\"\nprice = \"0.0004\"\ncurrency = \"USD\"\n\
         from = \"noreply@acme.example\"\nmax_connections = 8\n\n\
         [routing]\nbase_currency = \"EUR\"\n\n[routing.fx]\nUSD = \"0.9\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let smtp = ok.carriers[0].smtp.as_ref().unwrap();
    assert_eq!(smtp.security, config::SmtpSecurity::StartTls);
    assert_eq!(smtp.port, 587, "the submission port with STARTTLS");
    assert_eq!(smtp.max_connections, 8);
    assert_eq!(smtp.default_from.as_deref(), Some("noreply@acme.example"));
    let creds = smtp.credentials.as_ref().unwrap();
    assert_eq!(creds.password, "from-the-environment");
    assert!(
        !format!("{smtp:?}").contains("from-the-environment"),
        "secrets stay out of logs"
    );
    let rc = ok
        .routing_config(&examples_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    let table = switchyard_routing::RoutingTable::build(
        std::sync::Arc::new(rc),
        1_750_000_000,
        std::time::Instant::now(),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let email = table.flat_candidates(switchyard_routing::Channel::Email);
    assert_eq!(email.len(), 1);
    assert_eq!(
        email[0].cost.to_string(),
        "0.00036",
        "converted to the base currency"
    );

    let errs = errors(&format!(
        "{tenant}[[carriers]]\nname = \"NoRelay\"\nchannels = [\"email\"]\n\n\
         [[carriers]]\nname = \"Bad\"\nchannels = [\"email\"]\n\n\
         [carriers.smtp]\nhost = \"h\"\nsecurity = \"ssl\"\nfrom = \"not an address\"\n\
         password_env = \"SWITCHYARD_TEST_UNSET_VARIABLE\"\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\nsmpp = {{ sandbox = true, system_id = \"x\" }}\n\n\
         [carriers.smtp]\nhost = \"h\"\nprice = \"0.1\"\n\n\
         [[decks]]\ncarrier = \"Bad\"\nchannel = \"email\"\nsandbox = true\n"
    ));
    for path in [
        "carriers[0].channels",
        "carriers[1].smtp.price",
        "carriers[1].smtp.security",
        "carriers[1].smtp.from",
        "carriers[1].smtp.password_env",
        "carriers[2].smtp",
        "decks[0].channel",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
}

#[test]
fn rbm_agents_and_whatsapp_numbers_carry_their_channels_with_secrets_kept_out_of_logs() {
    let tenant = format!(
        "[[tenants]]\nname = \"a\"\napi_keys = [{:?}]\n\n",
        hash_api_key("k")
    );
    std::env::set_var("SWITCHYARD_TEST_RBM_TOKEN", "token-from-the-environment");
    let ok = parse(&format!(
        "{tenant}[[carriers]]\nname = \"Rcs\"\nchannels = [\"rcs\"]\n\n\
         [carriers.rbm]\nagent_id = \"acme-agent\"\ntoken_env = \"SWITCHYARD_TEST_RBM_TOKEN\"\n\
         webhook_token = \"client-token\"\n\n\
         [[carriers]]\nname = \"Wa\"\nchannels = [\"whatsapp\"]\n\n\
         [carriers.whatsapp]\nphone_number_id = \"106540352242922\"\naccess_token = \"wa-token\"\n\
         app_secret = \"wa-secret\"\n\n\
         [[carriers]]\nname = \"Tg\"\nchannels = [\"telegram\"]\n\n\
         [carriers.telegram]\nbot_token = \"123:abc\"\nprice = \"0.001\"\n\n\
         [[carriers]]\nname = \"Fb\"\nchannels = [\"messenger\"]\n\n\
         [carriers.messenger]\npage_access_token = \"fb-token\"\nprice = \"0.002\"\n\n\
         [[decks]]\ncarrier = \"Rcs\"\nchannel = \"rcs\"\nsandbox = true\n\n\
         [[decks]]\ncarrier = \"Wa\"\nchannel = \"whatsapp\"\nsandbox = true\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let rbm = ok.carriers[0].rbm.as_ref().unwrap();
    assert_eq!(rbm.http.base_url, config::RbmAgent::DEFAULT_BASE_URL);
    assert_eq!(rbm.token.expose(), "token-from-the-environment");
    assert!(
        !rbm.capability_check,
        "the agent message's 404 says it by default"
    );
    let wa = ok.carriers[1].whatsapp.as_ref().unwrap();
    assert_eq!(wa.api_version, config::WhatsappAccount::DEFAULT_API_VERSION);
    assert!(wa.verify_token.is_none());
    let shown = format!("{ok:?}");
    for secret in [
        "token-from-the-environment",
        "client-token",
        "wa-token",
        "wa-secret",
        "123:abc",
        "fb-token",
    ] {
        assert!(!shown.contains(secret), "{secret} is in the Debug output");
    }
    let rc = ok
        .routing_config(&examples_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    let table = switchyard_routing::RoutingTable::build(
        std::sync::Arc::new(rc),
        1_750_000_000,
        std::time::Instant::now(),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let stats = table.stats();
    let at = |c: switchyard_routing::Channel| {
        switchyard_routing::Channel::ALL
            .iter()
            .position(|&x| x == c)
            .unwrap()
    };
    assert!(stats.prefixes[at(switchyard_routing::Channel::Rcs)] > 0);
    assert!(stats.prefixes[at(switchyard_routing::Channel::Whatsapp)] > 0);
    for (channel, cost) in [
        (switchyard_routing::Channel::Telegram, "0.0010"),
        (switchyard_routing::Channel::Messenger, "0.0020"),
    ] {
        let flat = table.flat_candidates(channel);
        assert_eq!(flat.len(), 1, "{channel}");
        assert_eq!(flat[0].cost.to_string(), cost);
    }

    let errs = errors(&format!(
        "{tenant}[[carriers]]\nname = \"NoAgent\"\nchannels = [\"rcs\"]\n\n\
         [[carriers]]\nname = \"Bad\"\nchannels = [\"rcs\"]\n\n\
         [carriers.rbm]\nbase_url = \"ftp://x\"\ntoken = \"t\"\ntoken_env = \"X\"\n\
         capability_check = \"yes\"\n\n\
         [[carriers]]\nname = \"Wa\"\nchannels = [\"whatsapp\"]\n\n\
         [carriers.whatsapp]\nphone_number_id = \"../me\"\napp_secret_env = \"SWITCHYARD_TEST_UNSET_VARIABLE\"\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\nsmpp = {{ sandbox = true, system_id = \"x\" }}\n\n\
         [carriers.whatsapp]\nphone_number_id = \"1\"\naccess_token = \"t\"\n\n\
         [[carriers]]\nname = \"Two\"\nchannels = [\"telegram\", \"messenger\"]\n\n\
         [carriers.telegram]\nbot_token = \"a b\"\n\n\
         [carriers.messenger]\npage_access_token = \"p\"\nprice = \"0.1\"\n"
    ));
    for path in [
        "carriers[0].channels",
        "carriers[1].rbm.agent_id",
        "carriers[1].rbm.base_url",
        "carriers[1].rbm.token_env",
        "carriers[1].rbm.capability_check",
        "carriers[2].whatsapp.phone_number_id",
        "carriers[2].whatsapp.access_token",
        "carriers[2].whatsapp.app_secret_env",
        "carriers[3].whatsapp",
        "carriers[4].channels",
        "carriers[4].telegram.bot_token",
        "carriers[4].telegram.price",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
}

#[test]
fn webhook_carriers_are_priced_per_message_with_their_client_settings() {
    let tenant = format!(
        "[[tenants]]\nname = \"a\"\napi_keys = [{:?}]\n\n",
        hash_api_key("k")
    );
    let ok = parse(&format!(
        "{tenant}[[carriers]]\nname = \"Hooks\"\nchannels = [\"webhook\"]\n\n\
         [carriers.webhook]\nprice = \"0.0002\"\n\n\
         [[carriers]]\nname = \"Hooks2\"\nchannels = [\"webhook\"]\n\n\
         [carriers.webhook]\nprice = \"0.0003\"\ntimeout_s = 3\nmax_connections = 8\n\
         max_body_bytes = 4096\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let defaults = ok.carriers[0].webhook.as_ref().unwrap();
    assert_eq!(
        defaults.timeout,
        std::time::Duration::from_secs(config::WebhookSender::DEFAULT_TIMEOUT_S)
    );
    assert_eq!(
        defaults.max_connections,
        config::WebhookSender::DEFAULT_MAX_CONNECTIONS
    );
    assert_eq!(
        defaults.max_body_bytes,
        config::WebhookSender::DEFAULT_MAX_BODY_BYTES
    );
    assert!(defaults.tls_ca.is_none());
    let set = ok.carriers[1].webhook.as_ref().unwrap();
    assert_eq!(set.timeout, std::time::Duration::from_secs(3));
    assert_eq!((set.max_connections, set.max_body_bytes), (8, 4096));
    let rc = ok
        .routing_config(&examples_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    let table = switchyard_routing::RoutingTable::build(
        std::sync::Arc::new(rc),
        1_750_000_000,
        std::time::Instant::now(),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let flat = table.flat_candidates(switchyard_routing::Channel::Webhook);
    let costs: Vec<String> = flat.iter().map(|f| f.cost.to_string()).collect();
    assert_eq!(costs, ["0.0002", "0.0003"]);

    let errs = errors(&format!(
        "{tenant}[[carriers]]\nname = \"NoSection\"\nchannels = [\"webhook\"]\n\n\
         [[carriers]]\nname = \"Bad\"\nchannels = [\"webhook\"]\n\n\
         [carriers.webhook]\ntimeout_s = 0\nmax_body_bytes = 10\nbase_url = \"http://x\"\n\
         tls_ca = \"no-such-ca.pem\"\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\nsmpp = {{ sandbox = true, system_id = \"x\" }}\n\n\
         [carriers.webhook]\nprice = \"0.1\"\n\n\
         [[carriers]]\nname = \"Two\"\nchannels = [\"telegram\", \"webhook\"]\n\n\
         [carriers.telegram]\nbot_token = \"1:a\"\nprice = \"0.1\"\n\n\
         [carriers.webhook]\nprice = \"0.1\"\n"
    ));
    for path in [
        "carriers[0].channels",
        "carriers[1].webhook.price",
        "carriers[1].webhook.timeout_s",
        "carriers[1].webhook.max_body_bytes",
        "carriers[1].webhook.base_url",
        "carriers[1].webhook.tls_ca",
        "carriers[2].webhook",
        "carriers[3].channels",
    ] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
}

#[test]
fn the_postgres_store_needs_a_url_and_keeps_it_secret() {
    let tenant = format!(
        "[[tenants]]\nname = \"a\"\napi_keys = [{:?}]\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\nsmpp = {{ sandbox = true, system_id = \"x\" }}\n\n\
         [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\nsandbox = true\n\n",
        hash_api_key("k")
    );
    std::env::set_var(
        "SWITCHYARD_TEST_PG_URL",
        "host=db1 user=switchyard password=pg-secret dbname=switchyard",
    );
    let ok = parse(&format!(
        "{tenant}[store]\nkind = \"postgres\"\nurl_env = \"SWITCHYARD_TEST_PG_URL\"\npool_size = 16\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.store.kind, StoreKind::Postgres);
    assert_eq!(ok.store.pool_size, 16);
    assert!(ok
        .store
        .url
        .as_ref()
        .unwrap()
        .expose()
        .contains("pg-secret"));
    assert!(
        !format!("{ok:?}").contains("pg-secret"),
        "the url stays out of logs"
    );
    for (store, at) in [
        (
            "kind = \"postgres\"\npath = \"x.db\"\nurl = \"host=db1\"\n",
            "store.path",
        ),
        ("url = \"host=db1\"\n", "store.url"),
        (
            "kind = \"postgres\"\npool_size = 1\nurl = \"host=db1\"\n",
            "store.pool_size",
        ),
        ("durability = \"fast\"\n", "store.durability"),
    ] {
        let errs = errors(&format!("{tenant}[store]\n{store}"));
        assert!(errs.at(at).is_some(), "no error at {at}:\n{errs}");
    }
    assert_eq!(ok.store.durability, Durability::Fsync, "the default");
    let os = parse(&format!("{tenant}[store]\ndurability = \"os\"\n")).unwrap();
    assert_eq!(os.store.durability, Durability::Os);
}

#[test]
fn node_settings_and_their_limits() {
    let base = r#"
[[tenants]]
name = "t"
api_keys = ["sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
[[carriers]]
name = "c"
channels = ["sms"]
smpp = { sandbox = true, system_id = "x" }
[[decks]]
carrier = "c"
channel = "sms"
sandbox = true
"#;
    let cfg = parse(base).unwrap();
    assert_eq!(cfg.node, config::NodeSettings::default());
    assert_eq!(cfg.node.id, None);
    let cfg = parse(&format!(
        "{base}\n[node]\nid = 7\nheartbeat_s = 1\nlease_s = 3\n"
    ))
    .unwrap();
    assert_eq!(cfg.node.id, Some(7));
    assert_eq!(cfg.node.heartbeat, std::time::Duration::from_secs(1));
    assert_eq!(cfg.node.lease, std::time::Duration::from_secs(3));
    let errs = errors(&format!("{base}\n[node]\nid = 256\n"));
    assert!(errs.at("node.id").is_some(), "{errs}");
    let errs = errors(&format!("{base}\n[node]\nheartbeat_s = 5\nlease_s = 10\n"));
    let e = errs.at("node.lease_s").unwrap_or_else(|| panic!("{errs}"));
    assert!(e.to_string().contains("three heartbeats"), "{e}");
}

#[test]
fn store_tls_ca_is_for_postgres_only() {
    let base = r#"
[[tenants]]
name = "t"
api_keys = ["sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
[[carriers]]
name = "c"
channels = ["sms"]
smpp = { sandbox = true, system_id = "x" }
[[decks]]
carrier = "c"
channel = "sms"
sandbox = true
"#;
    let cfg = parse(&format!(
        "[store]\nkind = \"postgres\"\nurl = \"host=db sslmode=require\"\ntls_ca = \"db-ca.pem\"\n{base}"
    ))
    .unwrap();
    assert_eq!(cfg.store.tls_ca, Some(PathBuf::from("db-ca.pem")));
    let errs = errors(&format!("[store]\ntls_ca = \"db-ca.pem\"\n{base}"));
    assert!(errs.at("store.tls_ca").is_some(), "{errs}");
}

#[test]
fn log_format_is_text_by_default_json_on_request_and_nothing_else() {
    assert_eq!(
        Config::embedded_default().log.format,
        config::LogFormat::Text
    );
    let base = "[[tenants]]\nname = \"t\"\napi_keys = [\"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"]\n\
                [[carriers]]\nname = \"c\"\nchannels = [\"sms\"]\nsmpp = { sandbox = true, system_id = \"x\" }\n\
                [[decks]]\ncarrier = \"c\"\nchannel = \"sms\"\nsandbox = true\n";
    let cfg = parse(base).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.log.format, config::LogFormat::Text);
    let cfg = parse(&format!("{base}[log]\nformat = \"json\"\n")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.log.format, config::LogFormat::Json);
    let errs = errors(&format!(
        "{base}[log]\nformat = \"xml\"\nlevel = \"debug\"\n"
    ));
    for path in ["log.format", "log.level"] {
        assert!(errs.at(path).is_some(), "no error at {path}:\n{errs}");
    }
}
