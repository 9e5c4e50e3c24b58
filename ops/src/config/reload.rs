//! What a reload (SIGHUP) may change while traffic flows, and what needs a restart.
//!
//! Live: tenants (keys, plans, limits, SIP access), carriers (binds are reconnected as needed,
//! SIP trunks), decks, routing settings, `[sip]` timers, realm, probing and limits,
//! `server.shutdown_timeout_s`, operator keys. Restart: `server.listen`, `server.data_dir`,
//! `server.max_body_bytes` and the other listener settings (`ops_listen`, `max_connections`,
//! the timeouts, `tls_*`: baked into the HTTP stack), everything under `[store]`, `[voice]`,
//! `[queues]`, `[inbound]`, `[retention]`, `[egress]` and `[sse]`, the SIP listeners (`sip.listen`, `sip.tls_*`, adding or
//! removing `[sip]`) and `sip.max_transactions`.

use super::model::Config;

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
}
