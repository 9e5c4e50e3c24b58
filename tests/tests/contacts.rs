//! Contacts end to end (`/v1/contacts`, and `"to": {"contact": …}` on sends), real processes
//! on 127.0.0.1: switchyard with an aiosmtpd relay (email) and its built-in sandbox SMSC (SMS,
//! delivered about 20 ms after submission). Two tenants, `acme` (a key with every scope and a
//! read-only one) and `globex`. Every wait is bounded by [`WAIT`].
//!
//! - [`crud_pages_filters_and_scopes`]: create, read, patch (set, clear, merge, consent), list
//!   with filters and cursors, delete; a taken external id is 409; bad fields are 422 naming
//!   the field; the read-only key reads but cannot write.
//! - [`csv_import_upserts_and_reports_rows`]: good and bad rows with row numbers and reasons,
//!   an upsert by external id on a second import; unknown columns, an empty body, a wrong
//!   content type, an unclosed quote and an oversized body are refused clearly.
//! - [`sending_to_a_contact`]: SMS to the contact's phone; a cascade over its email (refused
//!   by the relay) then SMS; denied consent refuses a single send (422 `consent_denied`) and
//!   drops a flow's step (422 when none is left); opt-outs still apply; batches.
//! - [`tenants_cannot_reach_each_others_contacts`]: 404 for every operation and for sends.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{hash_key, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, smtp, Process};

/// Longest wait for a status.
const WAIT: Duration = Duration::from_secs(30);
/// `acme`'s key with every scope.
const KEY: &str = "acme-contacts-key";
/// `acme`'s read-only key.
const KEY_READ: &str = "acme-contacts-read-key";
/// `globex`'s key.
const KEY_OTHER: &str = "globex-contacts-key";
/// The person's phone.
const PHONE: &str = "+447911123456";

/// A gateway with two tenants, an SMTP relay (on `relay_port`) and the sandbox SMS carrier.
fn write_config(dir: &TempDir, relay_port: u16) {
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}, {{ hash = {:?}, scopes = [\"read\"] }}]\n\n\
         [[tenants]]\nname = \"globex\"\napi_keys = [{:?}]\n\n\
         [[carriers]]\nname = \"Relay\"\nchannels = [\"email\"]\n\n\
         [carriers.smtp]\nhost = \"127.0.0.1\"\nport = {relay_port}\nsecurity = \"none\"\n\
         price = \"0.0004\"\ntimeout_s = 5\nfrom = \"noreply@acme.example\"\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\n\
         smpp = {{ sandbox = true, system_id = \"acme\" }}\n\n\
         [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\nsandbox = true\n",
        dir.join("data").display().to_string(),
        hash_key(KEY).unwrap(),
        hash_key(KEY_READ).unwrap(),
        hash_key(KEY_OTHER).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
}

/// The gateway, its address and a client with `acme`'s full key.
fn start(dir: &TempDir) -> (Process, String, Client) {
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = dir.join("switchyard.toml").display().to_string();
    let gw = Process::start(&exe, &["serve", "--config", &config], 1).unwrap();
    let addr = gw.address("listening").unwrap();
    let client = Client::new(&addr).with_bearer(KEY);
    (gw, addr, client)
}

/// A gateway with its relay, both kept alive by the caller, its address and `acme`'s client.
fn gateway(name: &str) -> (TempDir, Process, Process, String, Client) {
    let dir = TempDir::new(name).unwrap();
    let relay = smtp::relay(&dir.join("relay"), &[]).unwrap();
    write_config(&dir, smtp::port(&relay).unwrap());
    let (gw, addr, client) = start(&dir);
    (dir, relay, gw, addr, client)
}

fn call(client: &mut Client, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
    let r = client
        .request(
            method,
            path,
            &[("Content-Type", "application/json")],
            bytes.as_deref(),
        )
        .unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

fn import(client: &mut Client, csv: &[u8]) -> (u16, Value) {
    let r = client
        .request(
            "POST",
            "/v1/contacts/import",
            &[("Content-Type", "text/csv")],
            Some(csv),
        )
        .unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Polls message `id` until `done` holds (at most [`WAIT`]); returns what it read last.
fn until(client: &mut Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, v) = call(client, "GET", &format!("/v1/messages/{id}"), None);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {v:#}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn crud_pages_filters_and_scopes() {
    let (_dir, _relay, _gw, addr, mut c) = gateway("contacts-crud");
    let (status, ana) = call(
        &mut c,
        "POST",
        "/v1/contacts",
        Some(&json!({
            "external_id": "crm-1", "name": "Ana", "phone": " +44 7911 123456",
            "email": "Ana@Example.org", "telegram": "@ana_silva",
            "consent": {"sms": "granted", "email": {"state": "denied", "source": "unsubscribe"}},
            "attributes": {"tier": "gold", "city": "Leeds"}
        })),
    );
    assert_eq!(status, 201, "{ana}");
    let id = ana["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ct_"), "{id}");
    assert_eq!(ana["phone"], PHONE);
    assert_eq!(ana["email"], "ana@example.org");
    assert_eq!(ana["consent"]["sms"]["state"], "granted");
    assert_eq!(ana["consent"]["sms"]["source"], "api");
    assert_eq!(ana["consent"]["email"]["source"], "unsubscribe");
    assert_eq!(ana["attributes"]["tier"], "gold");
    let (status, got) = call(&mut c, "GET", &format!("/v1/contacts/{id}"), None);
    assert_eq!((status, &got), (200, &ana));

    // Patch: set, clear, merge; consent by channel.
    let (status, patched) = call(
        &mut c,
        "PATCH",
        &format!("/v1/contacts/{id}"),
        Some(&json!({"name": null, "whatsapp": "+447911000999",
                     "consent": {"sms": "denied"}, "attributes": {"tier": null, "n": 2}})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], Value::Null);
    assert_eq!(patched["phone"], PHONE);
    assert_eq!(patched["whatsapp"], "+447911000999");
    assert_eq!(patched["consent"]["sms"]["state"], "denied");
    assert_eq!(patched["consent"]["email"]["state"], "denied");
    assert_eq!(patched["attributes"], json!({"city": "Leeds", "n": 2}));

    // Bad input: 422 naming the field; a taken external id is 409.
    for (body, field, code) in [
        (json!({"phone": "07911123456"}), "phone", "invalid_number"),
        (json!({"email": "not-an-email"}), "email", "invalid_email"),
        (
            json!({"messenger": "abc"}),
            "messenger",
            "invalid_recipient",
        ),
        (
            json!({"consent": {"fax": "granted"}}),
            "consent",
            "invalid_consent",
        ),
        (
            json!({"consent": {"sms": "maybe"}}),
            "consent",
            "invalid_consent",
        ),
        (json!({"nickname": "x"}), "body", "unknown_field"),
        (
            json!({"attributes": [1]}),
            "attributes",
            "invalid_attributes",
        ),
        (json!({"name": "a\u{0}b"}), "name", "invalid_text"),
    ] {
        let (status, p) = call(&mut c, "POST", "/v1/contacts", Some(&body));
        assert_eq!(status, 422, "{body}: {p}");
        assert_eq!(
            (p["field"].as_str(), p["code"].as_str()),
            (Some(field), Some(code)),
            "{p}"
        );
    }
    let (status, p) = call(
        &mut c,
        "POST",
        "/v1/contacts",
        Some(&json!({"external_id": "crm-1"})),
    );
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["code"], "external_id_taken");
    let r = c
        .request(
            "POST",
            "/v1/contacts",
            &[("Content-Type", "application/json")],
            Some(b"{"),
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());

    // Pages, newest first, and filters.
    let mut ids = vec![id.clone()];
    for i in 0..4 {
        let (status, v) = call(
            &mut c,
            "POST",
            "/v1/contacts",
            Some(&json!({"external_id": format!("crm-p{i}"), "phone": format!("+44791100000{i}")})),
        );
        assert_eq!(status, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/contacts?limit=2".to_owned();
    loop {
        let (status, page) = call(&mut c, "GET", &path, None);
        assert_eq!(status, 200, "{page}");
        for v in page["data"].as_array().unwrap() {
            seen.push(v["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/contacts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    for (query, expect) in [
        ("address=%2B447911123456", 1),
        ("address=ANA%40example.org", 1),
        ("address=%2B447911000999", 1),
        ("external_id=crm-p2", 1),
        ("external_id=nobody", 0),
    ] {
        let (status, page) = call(&mut c, "GET", &format!("/v1/contacts?{query}"), None);
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            page["data"].as_array().unwrap().len(),
            expect,
            "{query}: {page}"
        );
    }
    let (status, p) = call(&mut c, "GET", "/v1/contacts?cursor=zzz", None);
    assert_eq!((status, p["code"].as_str()), (422, Some("invalid_cursor")));

    // The read-only key reads, and cannot write.
    let mut reader = Client::new(&addr).with_bearer(KEY_READ);
    let (status, _) = call(&mut reader, "GET", &format!("/v1/contacts/{id}"), None);
    assert_eq!(status, 200);
    let (status, p) = call(
        &mut reader,
        "POST",
        "/v1/contacts",
        Some(&json!({"name": "x"})),
    );
    assert_eq!(status, 403, "{p}");
    let (status, _) = call(&mut reader, "DELETE", &format!("/v1/contacts/{id}"), None);
    assert_eq!(status, 403);

    // Delete, then it is gone; unknown and malformed ids are 404.
    let (status, _) = call(&mut c, "DELETE", &format!("/v1/contacts/{id}"), None);
    assert_eq!(status, 204);
    for path in [
        format!("/v1/contacts/{id}"),
        "/v1/contacts/ct_0000000000000001".to_owned(),
        "/v1/contacts/not-an-id".to_owned(),
    ] {
        let (status, p) = call(&mut c, "GET", &path, None);
        assert_eq!(status, 404, "{path}: {p}");
    }
    let (status, _) = call(&mut c, "DELETE", &format!("/v1/contacts/{id}"), None);
    assert_eq!(status, 404);
    let (status, _) = call(
        &mut c,
        "PATCH",
        &format!("/v1/contacts/{id}"),
        Some(&json!({})),
    );
    assert_eq!(status, 404);
}

#[test]
fn csv_import_upserts_and_reports_rows() {
    let (_dir, _relay, _gw, addr, mut c) = gateway("contacts-import");
    let csv = "external_id,name,phone,email,consent_sms,consent_email,attributes.tier\n\
               crm-1,Ana,+447911123456,ana@example.org,granted,denied,gold\n\
               crm-2,\"Silva, Bo\",+447911123457,,,,\n\
               crm-3,Bad Phone,07911123457,,,,\n\
               crm-4,Bad Email,,not-an-email,,,\n\
               crm-5,Bad Consent,+447911123458,,perhaps,,\n\
               crm-6,Too Few\n\
               ,,,,,,\n\
               ,Only A Name,,,,,\n\
               crm-7,Seven,+447911123459,,,,\"silver\nplus\"\n";
    let (status, report) = import(&mut c, csv.as_bytes());
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["rows"], 9, "{report:#}");
    assert_eq!(report["created"], 3, "{report:#}");
    assert_eq!(report["updated"], 0);
    assert_eq!(report["rejected_count"], 6);
    let rejected: Vec<(u64, &str, Option<&str>)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["code"].as_str().unwrap(),
                r["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (4, "invalid_number", Some("phone")),
            (5, "invalid_email", Some("email")),
            (6, "invalid_consent", Some("consent_sms")),
            (7, "wrong_field_count", None),
            (8, "no_address", None),
            (9, "no_address", None),
        ],
        "{report:#}"
    );
    let (_, page) = call(&mut c, "GET", "/v1/contacts?external_id=crm-1", None);
    let ana = &page["data"][0];
    assert_eq!(ana["phone"], "+447911123456");
    assert_eq!(ana["consent"]["sms"]["state"], "granted");
    assert_eq!(ana["consent"]["email"]["state"], "denied");
    assert_eq!(ana["consent"]["email"]["source"], "import");
    assert_eq!(ana["attributes"], json!({"tier": "gold"}));
    let (_, page) = call(&mut c, "GET", "/v1/contacts?external_id=crm-7", None);
    assert_eq!(page["data"][0]["attributes"]["tier"], "silver\nplus");

    // Again with changes: known external ids are updated, empty cells keep what is stored,
    // the consent source column applies to the row's consent.
    let csv = b"EXTERNAL_ID,consent_sms,consent_source,whatsapp\r\n\
                crm-1,denied,call centre,+447911000111\r\n\
                crm-8,,,+447911000222\r\n";
    let (status, report) = import(&mut c, csv);
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["created"].as_u64(), report["updated"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, page) = call(&mut c, "GET", "/v1/contacts?external_id=crm-1", None);
    let ana = &page["data"][0];
    assert_eq!(ana["name"], "Ana");
    assert_eq!(ana["phone"], "+447911123456");
    assert_eq!(ana["whatsapp"], "+447911000111");
    assert_eq!(ana["consent"]["sms"]["state"], "denied");
    assert_eq!(ana["consent"]["sms"]["source"], "call centre");

    // Refused whole: unknown or repeated columns, no header, not CSV.
    for (body, code) in [
        (&b"external_id,fax\ncrm-1,123\n"[..], "invalid_csv"),
        (b"phone,Phone\n+447911123456,+447911123456\n", "invalid_csv"),
        (b"", "invalid_csv"),
    ] {
        let (status, p) = import(&mut c, body);
        assert_eq!((status, p["code"].as_str()), (422, Some(code)), "{p}");
    }
    let r = c
        .request(
            "POST",
            "/v1/contacts/import",
            &[("Content-Type", "application/json")],
            Some(b"{}"),
        )
        .unwrap();
    assert_eq!(r.status, 415, "{}", r.text());
    // A quote opened and never closed: that row is refused, the ones before kept.
    let (status, report) = import(
        &mut c,
        b"external_id,name\ncrm-9,Ok\ncrm-10,\"never closed\n",
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], 1);
    assert_eq!(report["rejected"][0]["row"], 3, "{report}");
    assert_eq!(report["rejected"][0]["code"], "invalid_csv");
    // A quote inside a field (not at its start) is text, as CSV readers take it: the rows
    // after it are read too, and old-Mac line ends (`\r`) end rows as well.
    let (status, report) = import(
        &mut c,
        b"external_id,name\ncrm-11,O\"Brien\ncrm-12,\"Ann\"e\" Marie\rcrm-13,Bo\n",
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["created"].as_u64(),
            report["rejected_count"].as_u64()
        ),
        (Some(3), Some(0)),
        "{report}"
    );
    let (_, page) = call(&mut c, "GET", "/v1/contacts?external_id=crm-11", None);
    assert_eq!(page["data"][0]["name"], "O\"Brien");
    let (_, page) = call(&mut c, "GET", "/v1/contacts?external_id=crm-12", None);
    assert_eq!(page["data"][0]["name"], "Anne\" Marie");

    // Larger than the limit: refused before a byte of the body is read.
    let mut raw = std::net::TcpStream::connect(&addr).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        raw,
        "POST /v1/contacts/import HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: text/csv\r\nContent-Length: {}\r\n\r\nexternal_id\n",
        64 << 20
    )
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = raw.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    // 50,000 rows in one import (written 500 at a time), more than `server.max_body_bytes`
    // (1 MiB), which does not apply to imports.
    let mut big = String::from("external_id,phone\n");
    for i in 0..50_000 {
        writeln!(big, "bulk-{i},+4479110{i:05}").unwrap();
    }
    assert!(big.len() > 1 << 20);
    let started = Instant::now();
    let (status, report) = import(&mut c, big.as_bytes());
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], 50_000, "{report}");
    eprintln!(
        "imported 50,000 rows ({} KiB) in {:?}",
        big.len() / 1024,
        started.elapsed()
    );
}

#[test]
fn sending_to_a_contact() {
    let (_dir, _relay, _gw, _addr, mut c) = gateway("contacts-send");
    let (status, ana) = call(
        &mut c,
        "POST",
        "/v1/contacts",
        Some(&json!({"phone": PHONE, "email": "bounce@example.org"})),
    );
    assert_eq!(status, 201, "{ana}");
    let ana_id = ana["id"].as_str().unwrap().to_owned();
    let contact = json!({"contact": ana_id});

    // SMS to the contact's phone.
    let (status, accepted) = call(
        &mut c,
        "POST",
        "/v1/messages",
        Some(&json!({"to": contact, "from": "Acme", "body": "Hello Ana"})),
    );
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["deliveries"][0]["to"], PHONE);
    let id = accepted["id"].as_str().unwrap();
    let sms = until(&mut c, id, |m| m["status"] == "delivered");
    assert_eq!(sms["to"], PHONE);

    // A cascade: the contact's email (the relay refuses it), then SMS to its phone.
    let cascade = |to: &Value| {
        json!({"mode": "cascade", "to": to, "body": "Your code is 1234",
               "channels": [{"channel": "email", "subject": "Your code", "timeout_s": 600},
                            {"channel": "sms", "from": "Acme"}]})
    };
    let (status, accepted) = call(&mut c, "POST", "/v1/messages", Some(&cascade(&contact)));
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["deliveries"][0]["channel"], "email");
    assert_eq!(accepted["deliveries"][0]["to"], "bounce@example.org");
    assert!(accepted.get("dropped").is_none(), "{accepted}");
    let flow = until(&mut c, accepted["id"].as_str().unwrap(), |f| {
        f["status"] == "succeeded"
    });
    assert_eq!(
        flow["steps"][0]["delivery"]["status"], "rejected",
        "{flow:#}"
    );
    assert_eq!(
        flow["steps"][1]["delivery"]["status"], "delivered",
        "{flow:#}"
    );

    // Email consent denied: the cascade's email step is dropped, SMS goes at once.
    let (status, _) = call(
        &mut c,
        "PATCH",
        &format!("/v1/contacts/{ana_id}"),
        Some(&json!({"consent": {"email": "denied"}})),
    );
    assert_eq!(status, 200);
    let (status, accepted) = call(&mut c, "POST", "/v1/messages", Some(&cascade(&contact)));
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["deliveries"][0]["channel"], "sms", "{accepted}");
    assert_eq!(
        accepted["dropped"],
        json!([{"step": 0, "channel": "email", "code": "consent_denied"}])
    );
    let (status, p) = call(
        &mut c,
        "POST",
        "/v1/messages",
        Some(&json!({"to": contact, "channel": "email", "subject": "s", "body": "b"})),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("consent_denied")),
        "{p}"
    );

    // SMS consent denied too: a single send and a flow with no step left are 422.
    let (status, _) = call(
        &mut c,
        "PATCH",
        &format!("/v1/contacts/{ana_id}"),
        Some(&json!({"consent": {"sms": "denied"}})),
    );
    assert_eq!(status, 200);
    let (status, p) = call(
        &mut c,
        "POST",
        "/v1/messages",
        Some(&json!({"to": contact, "from": "Acme", "body": "Hello"})),
    );
    assert_eq!(status, 422, "{p}");
    assert_eq!(
        (p["code"].as_str(), p["field"].as_str()),
        (Some("consent_denied"), Some("to"))
    );
    assert!(
        p["type"].as_str().unwrap().ends_with("/consent_denied"),
        "{p}"
    );
    let (status, p) = call(&mut c, "POST", "/v1/messages", Some(&cascade(&contact)));
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("consent_denied")),
        "{p}"
    );

    // Consent granted again, but the number opted out: the opt-out still refuses it.
    let (status, _) = call(
        &mut c,
        "PATCH",
        &format!("/v1/contacts/{ana_id}"),
        Some(&json!({"consent": {"sms": "granted"}})),
    );
    assert_eq!(status, 200);
    let (status, _) = call(
        &mut c,
        "POST",
        "/v1/opt-outs",
        Some(&json!({"number": PHONE})),
    );
    assert_eq!(status, 201);
    let (status, p) = call(
        &mut c,
        "POST",
        "/v1/messages",
        Some(&json!({"to": contact, "from": "Acme", "body": "Hello"})),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("recipient_opted_out")),
        "{p}"
    );
    let (status, _) = call(
        &mut c,
        "DELETE",
        &format!("/v1/opt-outs/{}", "%2B447911123456"),
        None,
    );
    assert_eq!(status, 204);

    // No address for the channel; unknown contacts; a contact beside another address.
    let (_, bo) = call(
        &mut c,
        "POST",
        "/v1/contacts",
        Some(&json!({"email": "bo@example.org"})),
    );
    let bo_id = bo["id"].as_str().unwrap().to_owned();
    let (status, p) = call(
        &mut c,
        "POST",
        "/v1/messages",
        Some(&json!({"to": {"contact": bo_id}, "from": "Acme", "body": "Hello"})),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("contact_has_no_address")),
        "{p}"
    );
    for to in [
        json!({"contact": "ct_0000000000000001"}),
        json!({"contact": "nope"}),
    ] {
        let (status, p) = call(
            &mut c,
            "POST",
            "/v1/messages",
            Some(&json!({"to": to, "from": "Acme", "body": "Hello"})),
        );
        assert_eq!(
            (status, p["code"].as_str()),
            (404, Some("contact_not_found")),
            "{p}"
        );
    }
    let (status, p) = call(
        &mut c,
        "POST",
        "/v1/messages",
        Some(&json!({"to": {"contact": ana_id, "phone": PHONE}, "from": "Acme", "body": "x"})),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("invalid_recipient")),
        "{p}"
    );

    // Batches: contacts beside numbers; each refusal is the recipient's.
    let (status, batch) = call(
        &mut c,
        "POST",
        "/v1/messages/batch",
        Some(&json!({"from": "Acme", "body": "Hi {{name}}",
                     "recipients": [
                         {"to": contact, "variables": {"name": "Ana"}},
                         {"to": {"contact": bo_id}, "variables": {"name": "Bo"}},
                         {"to": {"contact": "ct_0000000000000001"}, "variables": {"name": "?"}},
                         {"to": "+447911123499", "variables": {"name": "Cy"}}]})),
    );
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["accepted"], 2, "{batch:#}");
    let codes: Vec<(u64, &str)> = batch["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [(1, "contact_has_no_address"), (2, "contact_not_found")]
    );
    assert_eq!(batch["rejected"][0]["to"], json!({"contact": bo_id}));
    let first = batch["messages"][0]["id"].as_str().unwrap();
    let m = until(&mut c, first, |m| m["status"] == "delivered");
    assert_eq!(
        (m["to"].as_str(), m["body"].as_str()),
        (Some(PHONE), Some("Hi Ana"))
    );
    // A batch of flows: Bo has no phone, so only his email step runs.
    let (status, batch) = call(
        &mut c,
        "POST",
        "/v1/messages/batch",
        Some(
            &json!({"mode": "cascade", "body": "Hi {{name}}", "from": "Acme",
                     "channels": [{"channel": "sms"}, {"channel": "email", "subject": "Hi", "from": "a@acme.example"}],
                     "recipients": [{"to": contact, "variables": {"name": "Ana"}},
                                    {"to": {"contact": bo_id}, "variables": {"name": "Bo"}}]}),
        ),
    );
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["accepted"], 2, "{batch:#}");
}

#[test]
fn tenants_cannot_reach_each_others_contacts() {
    let (_dir, _relay, _gw, addr, mut acme) = gateway("contacts-tenants");
    let (status, ana) = call(
        &mut acme,
        "POST",
        "/v1/contacts",
        Some(&json!({"external_id": "crm-1", "phone": PHONE})),
    );
    assert_eq!(status, 201);
    let id = ana["id"].as_str().unwrap();
    let mut globex = Client::new(&addr).with_bearer(KEY_OTHER);
    let path = format!("/v1/contacts/{id}");
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "stolen"}))),
        ("DELETE", None),
    ] {
        let (status, p) = call(&mut globex, method, &path, body.as_ref());
        assert_eq!(status, 404, "{method}: {p}");
    }
    let (status, p) = call(
        &mut globex,
        "POST",
        "/v1/messages",
        Some(&json!({"to": {"contact": id}, "from": "Globex", "body": "hi"})),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (404, Some("contact_not_found")),
        "{p}"
    );
    let (_, page) = call(&mut globex, "GET", "/v1/contacts?external_id=crm-1", None);
    assert_eq!(page["data"], json!([]));
    // The same external id is free in another tenant.
    let (status, _) = call(
        &mut globex,
        "POST",
        "/v1/contacts",
        Some(&json!({"external_id": "crm-1", "phone": PHONE})),
    );
    assert_eq!(status, 201);
    let (status, still) = call(&mut acme, "GET", &path, None);
    assert_eq!((status, &still), (200, &ana));
}
