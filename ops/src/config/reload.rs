//! What a reload (SIGHUP) may change while traffic flows, and what needs a restart.
//!
//! Live: tenants (keys, plans, limits, SIP access, SMPP logins and `mo_delivery`), carriers
//! (binds are reconnected as needed, SIP trunks), decks, routing settings, `[sip]` timers,
//! realm, probing and limits, `server.shutdown_timeout_s`, operator keys. Restart:
//! `server.listen`, `server.data_dir`, `server.max_body_bytes` and the other listener settings
//! (`ops_listen`, `max_connections`, the timeouts, `tls_*`: baked into the HTTP stack),
//! everything under `[store]`, `[voice]`, `[queues]`, `[inbound]`, `[retention]`, `[egress]`,
//! `[sse]`, `[node]`, `[log]` and `[smpp_server]` (including adding or removing it), the SIP listeners
//! (`sip.listen`, `sip.tls_*`, adding or removing `[sip]`) and `sip.max_transactions`.

use super::model::Config;
use super::smpp_server::SmppServerSettings;

/// `Ok(())` when every difference between `old` and `new` can be applied live; otherwise an
/// error naming each setting that needs a restart, e.g.
/// `restart needed: server.listen (127.0.0.1:8080 → 0.0.0.0:8080)`. A reload that gets `Err`
/// should keep running on `old` and say so.
pub fn reloadable_diff(old: &Config, new: &Config) -> Result<(), String> {
    let mut needs = Vec::new();
    let (a, b) = (&old.server, &new.server);
    if a.listen != b.listen {
        needs.push(format!("server.listen ({} → {})", a.listen, b.listen));
    }
    if a.data_dir != b.data_dir {
        needs.push(format!(
            "server.data_dir ({} → {})",
            a.data_dir.display(),
            b.data_dir.display()
        ));
    }
    if a.max_body_bytes != b.max_body_bytes {
        needs.push(format!(
            "server.max_body_bytes ({} → {})",
            a.max_body_bytes, b.max_body_bytes
        ));
    }
    if a.ops_listen != b.ops_listen {
        needs.push("server.ops_listen".into());
    }
    if a.max_connections != b.max_connections {
        needs.push(format!(
            "server.max_connections ({} → {})",
            a.max_connections, b.max_connections
        ));
    }
    if (a.header_read_timeout, a.request_timeout, a.idle_timeout)
        != (b.header_read_timeout, b.request_timeout, b.idle_timeout)
    {
        needs.push("server.header_read_timeout_s, request_timeout_s or idle_timeout_s".into());
    }
    if a.tls != b.tls {
        needs.push("server.tls_cert, tls_key or tls_client_ca".into());
    }
    // The SIP listeners are bound at start; everything else under [sip], the trunks and the
    // tenants' SIP access and limits are applied live.
    match (&old.sip, &new.sip) {
        (Some(a), Some(b)) => {
            if a.listen != b.listen {
                needs.push(format!("sip.listen ({} → {})", a.listen, b.listen));
            }
            if a.tls != b.tls {
                needs.push("sip.tls_listen, sip.tls_cert or sip.tls_key".into());
            }
            if a.max_transactions != b.max_transactions {
                needs.push(format!(
                    "sip.max_transactions ({} → {})",
                    a.max_transactions, b.max_transactions
                ));
            }
        }
        (None, None) => {}
        _ => needs.push("[sip] (added or removed)".into()),
    }
    match (&old.smpp_server, &new.smpp_server) {
        (Some(a), Some(b)) => smpp_server(a, b, &mut needs),
        (None, None) => {}
        _ => needs.push("[smpp_server] (added or removed)".into()),
    }
    if old.voice != new.voice {
        needs.push("voice (read by the notification caller at start)".into());
    }
    if old.inbound != new.inbound {
        needs.push("inbound (read by the MO reassemblers and keyword replies at start)".into());
    }
    if old.retention != new.retention {
        needs.push("retention (read by the store at start)".into());
    }
    if old.queues != new.queues {
        needs.push("queues (the carrier queues are sized at start)".into());
    }
    if old.egress != new.egress {
        needs.push("egress (read by the webhook and audio clients at start)".into());
    }
    if old.node != new.node {
        needs.push("node (the node registers at start)".into());
    }
    if old.log != new.log {
        needs.push("log (the log writer is set up at start)".into());
    }
    if old.sse != new.sse {
        needs.push("sse (read by the event stream at start)".into());
    }
    let (a, b) = (&old.store, &new.store);
    if a.kind != b.kind {
        needs.push(format!("store.kind ({:?} → {:?})", a.kind, b.kind));
    }
    if old.sqlite_path() != new.sqlite_path() {
        needs.push(format!(
            "store.path ({} → {})",
            old.sqlite_path().display(),
            new.sqlite_path().display()
        ));
    }
    if a.url != b.url || a.pool_size != b.pool_size || a.tls_ca != b.tls_ca {
        needs.push(
            "store.url / store.pool_size / store.tls_ca (the database is opened at start)".into(),
        );
    }
    if a.group_commit_linger != b.group_commit_linger {
        needs.push(format!(
            "store.group_commit_linger_ms ({} → {})",
            a.group_commit_linger.as_millis(),
            b.group_commit_linger.as_millis()
        ));
    }
    if needs.is_empty() {
        Ok(())
    } else {
        Err(format!("restart needed: {}", needs.join(", ")))
    }
}

/// Every `[smpp_server]` setting is read when the SMPP listeners start.
fn smpp_server(a: &SmppServerSettings, b: &SmppServerSettings, needs: &mut Vec<String>) {
    // Destructured so that a new setting must be placed here to compile.
    let SmppServerSettings {
        listen,
        tls,
        max_connections,
        bind_timeout,
        idle_timeout,
        enquire_link_interval,
        response_timeout,
        max_pdu_len,
        receipt_window,
        receipt_validity,
        system_id,
    } = a;
    if *listen != b.listen {
        needs.push(format!("smpp_server.listen ({listen} → {})", b.listen));
    }
    if *tls != b.tls {
        needs.push("smpp_server.tls_listen, tls_cert or tls_key".into());
    }
    if *max_connections != b.max_connections {
        needs.push(format!(
            "smpp_server.max_connections ({max_connections} → {})",
            b.max_connections
        ));
    }
    // Seconds as written in the file (0: off).
    let secs = |d: Option<&std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64());
    for (key, old, new) in [
        ("bind_timeout_s", Some(bind_timeout), Some(&b.bind_timeout)),
        ("idle_timeout_s", Some(idle_timeout), Some(&b.idle_timeout)),
        (
            "enquire_link_interval_s",
            enquire_link_interval.as_ref(),
            b.enquire_link_interval.as_ref(),
        ),
        (
            "response_timeout_s",
            Some(response_timeout),
            Some(&b.response_timeout),
        ),
        (
            "receipt_validity_s",
            Some(receipt_validity),
            Some(&b.receipt_validity),
        ),
    ] {
        if old != new {
            needs.push(format!("smpp_server.{key} ({} → {})", secs(old), secs(new)));
        }
    }
    if *max_pdu_len != b.max_pdu_len {
        needs.push(format!(
            "smpp_server.max_pdu_len ({max_pdu_len} → {})",
            b.max_pdu_len
        ));
    }
    if *receipt_window != b.receipt_window {
        needs.push(format!(
            "smpp_server.receipt_window ({receipt_window} → {})",
            b.receipt_window
        ));
    }
    if *system_id != b.system_id {
        needs.push(format!(
            "smpp_server.system_id ({system_id:?} → {:?})",
            b.system_id
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_restart_changes() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        assert_eq!(reloadable_diff(&old, &new), Ok(()));
        new.carriers[0].priority = 3;
        new.tenants[0].max_tps = Some(10);
        new.routing.breaker.consecutive_failures = 9;
        new.server.shutdown_timeout = std::time::Duration::from_secs(1);
        assert_eq!(reloadable_diff(&old, &new), Ok(()));
        new.server.listen = "0.0.0.0:9000".parse().unwrap();
        new.store.path = Some("other.db".into());
        let err = reloadable_diff(&old, &new).unwrap_err();
        assert!(
            err.contains("server.listen (127.0.0.1:8080 → 0.0.0.0:9000)"),
            "{err}"
        );
        assert!(err.contains("store.path"), "{err}");
    }

    #[test]
    fn smpp_server_needs_a_restart_and_smpp_logins_are_live() {
        use crate::config::smpp_server::{MoDelivery, SmppSecret, SmppServerSettings, SmppUser};
        use std::time::Duration;

        let mut old = Config::embedded_default();
        old.smpp_server = Some(SmppServerSettings::new("0.0.0.0:2775".parse().unwrap()));
        let mut new = old.clone();
        new.tenants[0].smpp.users.push(SmppUser {
            system_id: "esme".into(),
            secret: SmppSecret::Password("pw".into()),
            max_binds: 1,
            window: 1,
            max_tps: None,
            allowed_ips: Vec::new(),
            system_type: None,
            mo_numbers: None,
        });
        new.tenants[0].smpp.mo_delivery = MoDelivery::Both;
        assert_eq!(reloadable_diff(&old, &new), Ok(()));

        let s = new.smpp_server.as_mut().unwrap();
        s.listen = "0.0.0.0:2776".parse().unwrap();
        s.idle_timeout = Duration::from_secs(30);
        s.enquire_link_interval = None;
        s.system_id = "other".into();
        let err = reloadable_diff(&old, &new).unwrap_err();
        for want in [
            "smpp_server.listen (0.0.0.0:2775 → 0.0.0.0:2776)",
            "smpp_server.idle_timeout_s (120 → 30)",
            "smpp_server.enquire_link_interval_s (30 → 0)",
            "smpp_server.system_id (\"switchyard\" → \"other\")",
        ] {
            assert!(err.contains(want), "{want} not in {err}");
        }
        assert!(!err.contains("max_connections"), "{err}");

        new.smpp_server = None;
        let err = reloadable_diff(&old, &new).unwrap_err();
        assert!(err.contains("[smpp_server] (added or removed)"), "{err}");
        let err = reloadable_diff(&new, &old).unwrap_err();
        assert!(err.contains("[smpp_server] (added or removed)"), "{err}");
    }
}
