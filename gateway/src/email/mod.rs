//! The email channel: accepted emails go to SMTP relays (`[carriers.smtp]`), each relay a
//! carrier with its flat price, health and breaker.
//!
//! ```text
//! submit ──► Email::quote (route_flat: relays by price, health, breakers)
//!        ──► store ──► Email::place ──► queue ──► deliver (one task per email, ≤ max_connections per relay)
//!              submitting ──► SMTP dialogue ──► 250: sent (the relay's queue id is the carrier id)
//!                                          ──► 5xx on the recipient or content: rejected
//!                                          ──► 4xx, connection, TLS, AUTH or timeout: the next
//!                                              relay, then again after a back-off, until the
//!                                              attempts or the validity run out: failed / expired
//! ```
//!
//! SMTP ends at the relay: `sent` is the last status an email reaches (bounces arrive later,
//! by mail, and are not read). lettre speaks SMTP (pooled connections, STARTTLS or implicit
//! TLS over rustls, AUTH); this module decides what its outcomes mean.

mod message;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use switchyard_ops::config::{Config, SmtpRelay, SmtpSecurity};
use switchyard_routing::{Channel, FailureClass, FlatRouteRequest, Outcome, RouteBuf, Router};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::carrier::backoff::Backoff;
use crate::carrier::health;
use crate::domain::{now_ms, EmailJob, MessageRecord, Money, Status, Update};
use crate::submit::{Connector, Quote, SubmitError};
use crate::updates::UpdateSink;

/// Attempts (over all relays) before an email fails.
const MAX_ATTEMPTS: u32 = 6;
/// First wait after every relay failed once; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Accepted emails that may wait for a relay; beyond it the API answers 503.
const MAX_QUEUED: usize = 10_000;
/// Emails being delivered at once (talking to a relay, waiting for one of its connections, or
/// waiting out a back-off); the rest wait in the queue.
const MAX_IN_FLIGHT: usize = 1024;

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

/// The email engine. Shared (`Arc`) by the accept pipeline and its runner.
#[derive(Debug)]
pub(crate) struct Email {
    /// Relays by carrier name (replaced on reload).
    relays: ArcSwap<HashMap<String, Arc<Relay>>>,
    /// Routes, health and breakers (shared with every channel).
    router: Arc<Router>,
    /// Accepted emails waiting for a relay.
    queue: mpsc::Sender<EmailJob>,
    /// One permit per email being delivered ([`MAX_IN_FLIGHT`]).
    in_flight: Arc<Semaphore>,
    /// Status updates to the store.
    updates: UpdateSink,
}

/// What one SMTP attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The relay took it; its id for the message.
    Sent(String),
    /// The relay refused this message for good (recipient, sender or content): no other relay
    /// is tried.
    Rejected(String),
    /// This relay could not take it now (4xx, connection, TLS, AUTH, timeout): another relay,
    /// or later.
    Retry(String, FailureClass),
}

impl Email {
    /// Starts the engine with the relays of `config` (none is fine: email is refused until a
    /// reload adds one).
    pub(crate) fn start(
        config: &Config,
        base_dir: &std::path::Path,
        router: Arc<Router>,
        updates: UpdateSink,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Email>> {
        let relays = relays(config, base_dir)?;
        let (queue, rx) = mpsc::channel(MAX_QUEUED);
        let email = Arc::new(Email {
            relays: ArcSwap::from_pointee(relays),
            router,
            queue,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            updates,
        });
        tokio::spawn(email.clone().run(rx, shutdown));
        Ok(email)
    }

    /// The relays of a configuration being reloaded (checked before anything changes).
    pub(crate) fn plan(config: &Config, base_dir: &std::path::Path) -> anyhow::Result<Relays> {
        Ok(Relays(relays(config, base_dir)?))
    }

    /// Takes the relays of a reloaded configuration (emails in flight finish on the old ones).
    pub(crate) fn commit(&self, relays: Relays) {
        self.relays.store(Arc::new(relays.0));
    }

    /// Hands an email left unfinished by the last run to a relay again.
    pub(crate) fn recover(&self, record: &MessageRecord) {
        let m = &record.message;
        let Some(spec) = m.email.clone() else { return };
        self.place(EmailJob {
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

    /// The tenant's relays for `job`, best first.
    fn ranked(&self, job: &EmailJob) -> Result<Vec<(String, Money)>, SubmitError> {
        let table = self.router.load();
        let tenant = table
            .tenant_id(&job.tenant)
            .ok_or(crate::dispatch::DispatchError::Route(
                switchyard_routing::RouteError::UnknownTenant,
            ))?;
        let req = FlatRouteRequest {
            channel: Channel::Email,
            tenant,
            priority: job.priority,
            salt: job.id.0 as u64,
            now: Instant::now(),
        };
        let mut buf = RouteBuf::new();
        let ranked = table
            .route_flat(&req, &mut buf)
            .map_err(crate::dispatch::DispatchError::Route)?;
        let currency = table.config().base_currency;
        let relays = self.relays.load();
        // An email without a sender goes only to relays that have a default one.
        let usable = |relay: &Relay| job.from.is_some() || relay.default_from.is_some();
        let order: Vec<(String, Money)> = ranked
            .iter()
            .filter_map(|r| {
                let name = &table.carrier(r.carrier)?.name;
                relays.get(name).filter(|r| usable(r)).map(|_| {
                    (
                        name.clone(),
                        Money {
                            amount: r.price,
                            currency,
                        },
                    )
                })
            })
            .collect();
        if order.is_empty() && job.from.is_none() {
            return Err(SubmitError::SenderRequired);
        }
        Ok(order)
    }

    /// Runs until shutdown: one task per email being delivered, at most [`MAX_IN_FLIGHT`];
    /// the others wait in the queue (which, full, makes the API answer 503).
    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<EmailJob>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let permit = tokio::select! {
                p = self.in_flight.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = async { drop(shutdown.wait_for(|s| *s).await) } => return,
            };
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => {
                        let engine = self.clone();
                        tokio::spawn(async move {
                            engine.deliver(job).await;
                            drop(permit);
                        });
                    }
                    None => return,
                },
                _ = async { drop(shutdown.wait_for(|s| *s).await) } => return,
            }
        }
    }

    /// Delivers one email: relays in rank order, again after a back-off, until it is sent,
    /// rejected, expired or out of attempts.
    async fn deliver(self: Arc<Self>, job: EmailJob) {
        self.status(&job, Status::Submitting, None).await;
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        let mut attempts = 0;
        let mut last_error = String::from("no email relay can take it");
        loop {
            if job.expires_at.is_some_and(|t| now_ms() >= t) {
                self.status(&job, Status::Expired, Some(last_error)).await;
                return;
            }
            let mut order = match self.ranked(&job) {
                Ok(order) => order,
                Err(e) => {
                    last_error = e.to_string();
                    Vec::new()
                }
            };
            // The relay quoted at acceptance first, while it is still among the candidates.
            if let Some(i) = order.iter().position(|(name, _)| *name == job.carrier) {
                order[..=i].rotate_right(1);
            }
            for (carrier, _) in order {
                if attempts >= MAX_ATTEMPTS {
                    break;
                }
                attempts += 1;
                let Some(relay) = self.relays.load().get(&carrier).cloned() else {
                    continue;
                };
                let started = Instant::now();
                let verdict = attempt(&relay, &job).await;
                let now = Instant::now();
                match verdict {
                    Verdict::Sent(carrier_id) => {
                        health::record(
                            &self.router,
                            &carrier,
                            Outcome::Success {
                                latency: now - started,
                            },
                            now,
                        );
                        self.updates
                            .send(Update::SegmentSent {
                                id: job.id,
                                index: 0,
                                carrier,
                                carrier_message_id: carrier_id,
                                id_formats: Default::default(),
                                at: now_ms(),
                            })
                            .await;
                        return;
                    }
                    Verdict::Rejected(error) => {
                        health::record(
                            &self.router,
                            &carrier,
                            Outcome::Failure(FailureClass::PermanentReject),
                            now,
                        );
                        self.updates
                            .send(Update::SegmentRejected {
                                id: job.id,
                                index: 0,
                                carrier,
                                error,
                                at: now_ms(),
                            })
                            .await;
                        return;
                    }
                    Verdict::Retry(error, class) => {
                        health::record(&self.router, &carrier, Outcome::Failure(class), now);
                        tracing::info!(id = %job.id, %carrier, "email not taken: {error}");
                        last_error = format!("{carrier}: {error}");
                    }
                }
            }
            if attempts >= MAX_ATTEMPTS {
                self.status(&job, Status::Failed, Some(last_error)).await;
                return;
            }
            tokio::time::sleep(backoff.fail()).await;
        }
    }

    async fn status(&self, job: &EmailJob, status: Status, detail: Option<String>) {
        self.updates
            .send(Update::Status {
                id: job.id,
                status,
                at: now_ms(),
                detail,
            })
            .await;
    }
}

/// The accept pipeline sends email through the engine.
impl Connector<EmailJob> for Email {
    fn quote(&self, job: &EmailJob) -> Result<Quote, SubmitError> {
        if self.queue.capacity() == 0 {
            return Err(SubmitError::EmailsFull);
        }
        if self.relays.load().is_empty() {
            return Err(SubmitError::EmailUnavailable);
        }
        let (carrier, price) = self
            .ranked(job)?
            .into_iter()
            .next()
            .ok_or(SubmitError::EmailUnavailable)?;
        Ok(Quote {
            carrier,
            price: Some(price),
        })
    }

    fn place(&self, job: EmailJob) {
        if let Err(mpsc::error::TrySendError::Full(job)) = self.queue.try_send(job) {
            let queue = self.queue.clone();
            tokio::spawn(async move {
                let _ = queue.send(job).await;
            });
        }
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
