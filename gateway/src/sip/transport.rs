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
use super::proxy::{Proxy, ProxySettings};
use super::trunks::Trunks;

/// Largest datagram read (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Binds the `[sip]` listener and spawns the proxy task; returns the bound address and the
/// task, which ends when `shutdown` turns true. `None` when there is no `[sip]` table.
pub async fn start(
    config: &Config,
    router: Arc<Router>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    let Some(sip) = &config.sip else {
        return Ok(None);
    };
    let socket = UdpSocket::bind(sip.listen)
        .await
        .with_context(|| format!("binding the SIP listener on udp {}", sip.listen))?;
    let me = socket.local_addr()?;
    let settings = ProxySettings {
        me,
        no_answer_timeout: sip.no_answer_timeout,
        allow: AllowList::from_config(config),
        trunks: Trunks::resolve(config)?,
    };
    let mut proxy = Proxy::new(settings, router);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            flush(&socket, &mut proxy).await;
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
