//! The email channel: accepted emails go to SMTP relays (`[carriers.smtp]`), each relay a
//! carrier with its flat price, health and breaker.
//!
//! The queue, failover and retries are [`crate::handoff`]'s; this module ranks the relays
//! (`route_flat`: by price, health, breakers; ≤ `max_connections` emails per relay at once) and
//! judges one SMTP dialogue:
//! ```text
//! 250 ──► sent (the relay's queue id is the carrier id)
//! 5xx on the recipient or content ──► rejected
//! 4xx, connection, TLS, AUTH or timeout ──► the next relay, then again after a back-off
//! ```
//!
//! SMTP ends at the relay: `sent` is the last status an email reaches (bounces arrive later,
//! by mail, and are not read). lettre speaks SMTP (pooled connections, STARTTLS or implicit
//! TLS over rustls, AUTH); this module decides what its outcomes mean.

mod message;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use switchyard_ops::config::{Config, SmtpRelay, SmtpSecurity};
use switchyard_routing::{Channel, FailureClass, FlatRouteRequest, RouteBuf, Router};
use tokio::sync::{watch, Semaphore};

use crate::domain::{EmailJob, MessageId, MessageRecord, Money, UnixMs};
use crate::handoff::{self, Carriers, Engine, HandoffJob, Verdict};
use crate::submit::{Connector, SubmitError};
use crate::updates::UpdateSink;

/// One relay: its connection pool and how many emails it carries at once.
struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    permits: Arc<Semaphore>,
    default_from: Option<String>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("permits", &self.permits.available_permits())
            .field("default_from", &self.default_from)
            .finish_non_exhaustive()
    }
}

/// Relays built for a reload, not yet in use ([`Email::plan`], [`Email::commit`]).
#[derive(Debug)]
pub(crate) struct Relays(HashMap<String, Arc<Relay>>);

/// The email channel's carriers: the SMTP relays.
#[derive(Debug)]
pub(crate) struct SmtpRelays {
    /// Relays by carrier name (replaced on reload).
    relays: ArcSwap<HashMap<String, Arc<Relay>>>,
    /// Routes, health and breakers (shared with every channel).
    router: Arc<Router>,
}

/// The email engine.
pub(crate) type Email = Engine<SmtpRelays>;

impl HandoffJob for EmailJob {
    fn id(&self) -> MessageId {
        self.id
    }

    fn expires_at(&self) -> Option<UnixMs> {
        self.expires_at
    }

    fn quoted(&self) -> &str {
        &self.carrier
    }
}

/// Starts the email engine with the relays of `config` (none is fine: email is refused until
/// a reload adds one).
pub(crate) fn start(
    config: &Config,
    base_dir: &std::path::Path,
    router: Arc<Router>,
    updates: UpdateSink,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Arc<Email>> {
    let relays = SmtpRelays {
        relays: ArcSwap::from_pointee(relays(config, base_dir)?),
        router: router.clone(),
    };
    Ok(Engine::start(Arc::new(relays), router, updates, shutdown))
}

/// The relays of a configuration being reloaded (checked before anything changes).
pub(crate) fn plan(config: &Config, base_dir: &std::path::Path) -> anyhow::Result<Relays> {
    Ok(Relays(relays(config, base_dir)?))
}

/// Takes the relays of a reloaded configuration (emails in flight finish on the old ones).
pub(crate) fn commit(email: &Email, relays: Relays) {
    email.carriers().relays.store(Arc::new(relays.0));
}

/// Hands an email left unfinished by the last run to a relay again.
pub(crate) fn recover(email: &Email, record: &MessageRecord) {
    let m = &record.message;
    let Some(spec) = m.email.clone() else { return };
    email.place(EmailJob {
        id: m.id,
        tenant: m.tenant.clone(),
        to: m.to.clone(),
        from: Some(m.from.clone()).filter(|f| !f.is_empty()),
        body: m.body.clone(),
        spec,
        priority: m.priority,
        expires_at: m.expires_at,
        carrier: m.carrier.clone().unwrap_or_default(),
    });
}

impl Carriers for SmtpRelays {
    type Job = EmailJob;
    const NAME: &'static str = "email";

    fn unavailable(_: &EmailJob) -> SubmitError {
        SubmitError::EmailUnavailable
    }

    fn full(_: &EmailJob) -> SubmitError {
        SubmitError::EmailsFull
    }

    fn any(&self, _: &EmailJob) -> bool {
        !self.relays.load().is_empty()
    }

    /// The tenant's relays for `job`, best first; only relays with a default sender when the
    /// email has none.
    fn ranked(&self, job: &EmailJob) -> Result<Vec<(String, Money)>, SubmitError> {
        let table = self.router.load();
        let req = FlatRouteRequest {
            channel: Channel::Email,
            tenant: handoff::tenant_id(&table, &job.tenant)?,
            priority: job.priority,
            salt: job.id.0 as u64,
            now: Instant::now(),
        };
        let mut buf = RouteBuf::new();
        let ranked = table
            .route_flat(&req, &mut buf)
            .map_err(crate::dispatch::DispatchError::Route)?;
        let relays = self.relays.load();
        let order = handoff::priced(&table, ranked, |name| {
            relays
                .get(name)
                .is_some_and(|r| job.from.is_some() || r.default_from.is_some())
        });
        if order.is_empty() && job.from.is_none() {
            return Err(SubmitError::SenderRequired);
        }
        Ok(order)
    }

    fn attempt<'a>(&'a self, carrier: &'a str, job: &'a EmailJob) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let Some(relay) = self.relays.load().get(carrier).cloned() else {
                return Verdict::Retry("relay removed".into(), FailureClass::TransportDown);
            };
            attempt(&relay, job).await
        })
    }
}

/// One SMTP attempt on one relay.
async fn attempt(relay: &Relay, job: &EmailJob) -> Verdict {
    let message = match message::build(job, relay.default_from.as_deref()) {
        Ok(m) => m,
        Err(e) => return Verdict::Rejected(format!("invalid_message: {e}")),
    };
    let Ok(_permit) = relay.permits.acquire().await else {
        return Verdict::Retry("relay closed".into(), FailureClass::TransportDown);
    };
    match relay.transport.send(message.email).await {
        Ok(response) => Verdict::Sent(
            queue_id(response.message()).unwrap_or_else(|| message.message_id.clone()),
        ),
        Err(e) => judge(&e),
    }
}

/// What an SMTP error means for the email and the relay. 5xx answers to AUTH (530, 534, 535,
/// 538) are the relay account's fault, not the email's: another relay may take it.
fn judge(e: &lettre::transport::smtp::Error) -> Verdict {
    let code = e.status().map(u16::from);
    let text = e.to_string();
    if e.is_timeout() {
        return Verdict::Retry(text, FailureClass::Timeout);
    }
    match code {
        Some(530 | 534 | 535 | 538) => Verdict::Retry(text, FailureClass::TransportDown),
        Some(421) => Verdict::Retry(text, FailureClass::Throttled),
        Some(c) if (400..500).contains(&c) => Verdict::Retry(text, FailureClass::Throttled),
        Some(c) if (500..600).contains(&c) => Verdict::Rejected(text),
        _ => Verdict::Retry(text, FailureClass::TransportDown),
    }
}

/// The relay's id for an accepted message, from the usual forms of its 250 answer
/// ("2.0.0 Ok: queued as 4F9Kx1", "OK id=1rXyz-000", "Ok <id>"): the last word after
/// "queued as" or "id=". `None` when the answer names none.
fn queue_id<'a>(lines: impl Iterator<Item = &'a str>) -> Option<String> {
    for line in lines {
        let lower = line.to_ascii_lowercase();
        for marker in ["queued as ", "id="] {
            if let Some(at) = lower.find(marker) {
                let rest = line.get(at + marker.len()..)?.trim();
                let id: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != ';' && *c != ',')
                    .filter(|c| !matches!(c, '<' | '>'))
                    .take(64)
                    .collect();
                if !id.is_empty() {
                    return Some(id);
                }
            }
        }
    }
    None
}

/// A transport per relay of `config`.
fn relays(
    config: &Config,
    base_dir: &std::path::Path,
) -> anyhow::Result<HashMap<String, Arc<Relay>>> {
    let mut out = HashMap::new();
    for c in &config.carriers {
        let Some(smtp) = c
            .smtp
            .as_ref()
            .filter(|_| c.channels.contains(&Channel::Email))
        else {
            continue;
        };
        let transport = transport(smtp, base_dir)
            .map_err(|e| anyhow::anyhow!("carrier {:?}: SMTP relay: {e}", c.name))?;
        out.insert(
            c.name.clone(),
            Arc::new(Relay {
                transport,
                permits: Arc::new(Semaphore::new(smtp.max_connections as usize)),
                default_from: smtp.default_from.clone(),
            }),
        );
    }
    Ok(out)
}

fn transport(
    smtp: &SmtpRelay,
    base_dir: &std::path::Path,
) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
        .port(smtp.port)
        .timeout(Some(smtp.timeout))
        .pool_config(PoolConfig::new().max_size(smtp.max_connections));
    if smtp.security != SmtpSecurity::None {
        let mut params = TlsParameters::builder(smtp.host.clone());
        if let Some(ca) = &smtp.tls_ca {
            let pem = std::fs::read(Config::resolve(base_dir, ca))?;
            params = params.add_root_certificate(Certificate::from_pem(&pem)?);
        }
        let params = params.build_rustls()?;
        builder = builder.tls(match smtp.security {
            SmtpSecurity::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let Some(c) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(c.username.clone(), c.password.clone()));
    }
    if let Some(name) = &smtp.hello_name {
        builder = builder.hello_name(ClientId::Domain(name.clone()));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::queue_id;

    #[test]
    fn relay_ids_are_read_from_the_usual_answers() {
        let id = |s: &str| queue_id(std::iter::once(s));
        assert_eq!(id("2.0.0 Ok: queued as 4F9Kx1ZQ"), Some("4F9Kx1ZQ".into()));
        assert_eq!(id("OK id=1rXyz-000AbC-2x"), Some("1rXyz-000AbC-2x".into()));
        assert_eq!(
            id("2.0.0 OK queued as <abc@relay>"),
            Some("abc@relay".into())
        );
        assert_eq!(id("2.0.0 Ok"), None);
    }
}
