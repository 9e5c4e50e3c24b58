//! The UDP transport: one tokio task owns the socket and the [`Proxy`], reads the clock
//! (`Instant::now()`) for it, sends what it queues and sleeps until its next deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use switchyard_ops::config::Config;
use switchyard_routing::Router;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::access::AllowList;
use super::cdr::WallClock;
use super::limits::Limits;
use super::proxy::{Proxy, ProxySettings};
use super::trunks::Trunks;
use crate::model::{now_ms, CallRecord, Update};
use crate::store::Store;

/// Largest datagram read (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Call records waiting for the store (a few seconds of calls at thousands per second).
const RECORD_QUEUE: usize = 65_536;

/// Records written per store request.
const RECORD_BATCH: usize = 512;

/// Binds the `[sip]` listener and spawns the proxy task; returns the bound address and the
/// task, which ends when `shutdown` turns true. `None` when there is no `[sip]` table.
pub async fn start(
    config: &Config,
    router: Arc<Router>,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    let Some(sip) = &config.sip else {
        return Ok(None);
    };
    let socket = UdpSocket::bind(sip.listen)
        .await
        .with_context(|| format!("binding the SIP listener on udp {}", sip.listen))?;
    let me = socket.local_addr()?;
    let now = Instant::now();
    let settings = ProxySettings {
        me,
        no_answer_timeout: sip.no_answer_timeout,
        allow: AllowList::from_config(config),
        trunks: Trunks::resolve(config)?,
        limits: Limits::from_config(config, now),
        options_interval: sip.options_interval,
        max_call_duration: sip.max_call_duration,
        clock: WallClock::new(now, now_ms()),
    };
    let mut proxy = Proxy::new(settings, router, now);
    let (records, rx) = tokio::sync::mpsc::channel(RECORD_QUEUE);
    let writer = tokio::spawn(write_records(store, rx));
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            flush(&socket, &mut proxy).await;
            while let Some(r) = proxy.poll_record() {
                log_record(&r);
                if records.try_send(r).is_err() {
                    tracing::error!("CDR queue full or closed: a call record was dropped");
                }
            }
            let wake = proxy.poll_timeout();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let datagram = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        proxy.handle_datagram(datagram, from, Instant::now());
                    }
                    // ICMP port unreachable from an earlier send surfaces here on Linux;
                    // the transaction's timer B/F still fails the branch over.
                    Err(e) => tracing::debug!(error = %e, "SIP socket receive error"),
                },
                _ = sleep => proxy.handle_timeout(Instant::now()),
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        tracing::info!(calls_in_setup = proxy.calls_in_setup(), "SIP proxy stopped");
        drop(records);
        let _ = writer.await;
    });
    Ok(Some((me, task)))
}

/// Sends everything the proxy queued; a failed send fails its transaction (failover).
async fn flush(socket: &UdpSocket, proxy: &mut Proxy) {
    while let Some(t) = proxy.poll_transmit() {
        if let Err(e) = socket.send_to(&t.message, t.destination).await {
            tracing::debug!(error = %e, to = %t.destination, "SIP send failed");
            if let Some(id) = t.transaction {
                proxy.transport_error(id, Instant::now());
            }
        }
    }
}

/// One `cdr` log line per call (numbers masked), next to the stored record.
fn log_record(r: &CallRecord) {
    let attempts: Vec<String> = r.attempts.iter().map(|(n, c)| format!("{n}:{c}")).collect();
    let callee = switchyard_routing::E164::parse(&r.callee)
        .map(|n| n.masked(6).to_string())
        .unwrap_or_default();
    tracing::info!(
        target: "cdr",
        tenant = %r.tenant,
        to = %callee,
        disposition = r.disposition,
        code = r.code,
        tried = %attempts.join(","),
        duration_ms = r.duration_ms,
        "call"
    );
}

/// Writes call records to the store in batches; a failed write is retried with back-off
/// (records wait in the queue meanwhile), so a store hiccup loses none.
async fn write_records(store: Arc<dyn Store>, mut rx: tokio::sync::mpsc::Receiver<CallRecord>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let updates: Vec<Update> = batch.drain(..).map(|r| Update::Call(Box::new(r))).collect();
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            match store.apply(updates.clone()).await {
                Ok(_) => break,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "storing call records failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, records = updates.len(), "call records lost: the store refused them");
                    break;
                }
            }
        }
    }
}
