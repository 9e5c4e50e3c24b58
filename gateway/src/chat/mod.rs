//! The chat channels over provider HTTP APIs: `rcs` through Google's RCS Business Messaging
//! ([`rbm`]), `whatsapp` through the WhatsApp Business Cloud API ([`whatsapp`]), `telegram`
//! through the Bot API ([`telegram`]) and `messenger` through the Send API ([`messenger`]);
//! and `webhook`, a signed POST to the recipient system's own endpoint ([`webhook`]).
//! Each provider account (`[carriers.rbm]`, `[carriers.whatsapp]`, `[carriers.telegram]`,
//! `[carriers.messenger]`, `[carriers.webhook]`) is a carrier with health and a breaker, priced
//! by prefix decks (RCS, WhatsApp: phone numbers) or per message (Telegram, Messenger,
//! webhook); [`crate::handoff`] queues, fails over and retries; this module ranks the accounts
//! and makes one API request per attempt.
//!
//! # Layout
//! - this file: the accounts (built from the configuration, replaced on reload), ranking.
//! - [`rbm`]: capability check, agent message, what RBM's answers mean, its events.
//! - [`whatsapp`]: text and template messages, what Graph API errors mean.
//! - [`telegram`]: `sendMessage`; [`messenger`]: the Send API with message tags.
//! - [`webhook`]: the signed POST, what the endpoint's answer means.
//! - [`webhooks`]: the status webhooks' verification and what they change (`api` serves them).
//!
//! # Statuses
//! The provider's answer to the send is `sent` (its message id is the carrier id) or
//! `rejected`; its events later move the message on through the store's receipt matching
//! (carrier + id): delivered (and read) → `delivered`, WhatsApp `failed` → `undeliverable`,
//! an RCS message whose TTL passed undelivered → `expired`. Telegram reports nothing after the
//! send: its messages end at `sent`. A webhook endpoint's 2xx is the delivery itself
//! (`delivered` at once); its answers do not feed the carrier's health or breaker. An RCS phone that is not
//! RCS-capable is `rejected` with `not_rcs_capable`, which is what a cascade to SMS waits for.

pub(crate) mod messenger;
pub(crate) mod rbm;
pub(crate) mod telegram;
pub(crate) mod webhook;
pub(crate) mod webhooks;
pub(crate) mod whatsapp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use switchyard_ops::config::egress::Cidr;
use switchyard_ops::config::{Config, EgressPolicy, ProviderHttp};
use switchyard_routing::{Channel, FailureClass, FlatRouteRequest, RouteBuf, RouteRequest, Router};
use tokio::sync::{watch, Semaphore};

use crate::domain::{
    ChatChannel, ChatJob, ChatTo, MessageId, MessageRecord, Money, SharedDirectory, Status, UnixMs,
};
use crate::handoff::{self, Carriers, Engine, HandoffJob, Verdict};
use crate::submit::{Connector, SubmitError};
use crate::updates::UpdateSink;

/// The largest provider answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// The detail of an RCS message revoked because its flow's next step started.
pub(crate) const REVOKED: &str = "revoked: the flow's next step started";
/// The detail of a message withdrawn before any provider had it, because its flow's next step
/// started.
pub(crate) const WITHDRAWN: &str = "withdrawn: the flow's next step started";

/// The HTTP client of one provider account.
type HttpClient = Client<HttpsConnector<crate::egress::Connector>, Full<Bytes>>;

/// One provider account.
#[derive(Debug)]
pub(crate) enum Account {
    /// An RBM agent.
    Rbm(rbm::Agent),
    /// A WhatsApp Business number.
    Whatsapp(whatsapp::Number),
    /// A Telegram bot.
    Telegram(telegram::Bot),
    /// A Facebook Page on Messenger.
    Messenger(messenger::Page),
    /// The gateway's client posting to recipients' endpoints.
    Webhook(webhook::Poster),
}

impl Account {
    fn channel(&self) -> ChatChannel {
        match self {
            Account::Rbm(_) => ChatChannel::Rcs,
            Account::Whatsapp(_) => ChatChannel::Whatsapp,
            Account::Telegram(_) => ChatChannel::Telegram,
            Account::Messenger(_) => ChatChannel::Messenger,
            Account::Webhook(_) => ChatChannel::Webhook,
        }
    }
}

/// What every account has: its API, client and request slots.
pub(crate) struct Api {
    /// Base URL without a trailing `/`.
    pub(crate) base_url: String,
    /// The client (TLS with the system's roots and the account's CA).
    client: HttpClient,
    /// Longest wait for one request.
    timeout: Duration,
    /// One permit per request in flight.
    permits: Semaphore,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base_url", &self.base_url)
            .field("in_flight_free", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

/// A provider's answer: status and body (at most [`MAX_ANSWER`] bytes).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    /// The `Retry-After` header's wait, when there was one.
    pub(crate) retry_after: Option<Duration>,
}

impl Answer {
    /// How long the provider asked to be left alone, from the answer's `Retry-After` header
    /// or, in its body (`parsed`), Telegram's `parameters.retry_after` (seconds) or a Google
    /// API error's `RetryInfo` detail (`retryDelay`, e.g. `"30s"`).
    pub(crate) fn wait_hint(&self, parsed: &serde_json::Value) -> Option<Duration> {
        if self.retry_after.is_some() {
            return self.retry_after;
        }
        if let Some(seconds) = parsed["parameters"]["retry_after"].as_u64() {
            return Some(Duration::from_secs(seconds));
        }
        parsed["error"]["details"]
            .as_array()?
            .iter()
            .filter(|d| {
                d["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
            })
            .find_map(|d| google_duration(d["retryDelay"].as_str()?))
    }
}

/// A `google.protobuf.Duration` in its JSON form: seconds with up to nine decimals and an
/// `s` (`"30s"`, `"1.5s"`).
fn google_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (0.0..1e9)
        .contains(&seconds)
        .then(|| Duration::from_secs_f64(seconds))
}

impl Api {
    /// A client for `http` (operator-configured: any address is allowed).
    fn new(http: &ProviderHttp, base_dir: &std::path::Path) -> anyhow::Result<Api> {
        let anywhere = Arc::new(EgressPolicy {
            allow_nets: ["0.0.0.0/0", "::/0"]
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
            allow_hosts: Vec::new(),
        });
        let ca = http.tls_ca.as_ref().map(|ca| Config::resolve(base_dir, ca));
        let client = crate::egress::client(
            anywhere,
            http.timeout,
            ca.as_deref(),
            http.max_connections as usize,
        )?;
        Ok(Api {
            base_url: http.base_url.clone(),
            client,
            timeout: http.timeout,
            permits: Semaphore::new(http.max_connections as usize),
        })
    }

    /// Sends `method` to `url` with a bearer token (if any) and an optional JSON body; `Err`
    /// with the failure class when no answer came (connection, TLS, timeout).
    pub(crate) async fn call(
        &self,
        method: hyper::Method,
        url: &str,
        bearer: Option<&str>,
        json: Option<Vec<u8>>,
    ) -> Result<Answer, (String, FailureClass)> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ("account closed".to_owned(), FailureClass::TransportDown))?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header(hyper::header::USER_AGENT, "switchyard");
        if let Some(token) = bearer {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if json.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| (format!("request: {e}"), FailureClass::TransportDown))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| (format!("connection: {e}"), FailureClass::TransportDown))?;
            let status = resp.status().as_u16();
            let retry_after =
                crate::events::webhook::retry_after(resp.headers(), std::time::SystemTime::now());
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| {
                    (
                        format!("reading the answer: {e}"),
                        FailureClass::TransportDown,
                    )
                })?
                .to_bytes();
            Ok(Answer {
                status,
                body,
                retry_after,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err((
                format!("no answer within {:?}", self.timeout),
                FailureClass::Timeout,
            )),
        }
    }
}

/// Accounts built for a reload, not yet in use ([`plan`], [`commit`]).
#[derive(Debug)]
pub(crate) struct Accounts(HashMap<String, Arc<Account>>);

/// The chat channels' carriers: the provider accounts.
#[derive(Debug)]
pub(crate) struct ChatCarriers {
    /// Accounts by carrier name (replaced on reload).
    accounts: ArcSwap<HashMap<String, Arc<Account>>>,
    /// Routes, health and breakers (shared with every channel).
    router: Arc<Router>,
}

/// The chat engine.
pub(crate) type Chat = Engine<ChatCarriers>;

impl ChatCarriers {
    /// The account of carrier `name`, if it has one.
    pub(crate) fn account(&self, name: &str) -> Option<Arc<Account>> {
        self.accounts.load().get(name).cloned()
    }

    /// Revokes RCS message `id` that agent `carrier` sent to `to` (E.164, with or without
    /// `+`); `None` when `carrier` is no RBM agent.
    pub(crate) async fn revoke_rcs(
        &self,
        carrier: &str,
        to: &str,
        id: MessageId,
    ) -> Option<rbm::Revoked> {
        let account = self.account(carrier)?;
        let Account::Rbm(agent) = account.as_ref() else {
            return None;
        };
        let digits = to.trim().trim_start_matches('+');
        Some(agent.revoke(digits, &id.to_string()).await)
    }

    /// Revokes RCS message `id` that agent `carrier` sent to `to`, superseded by its flow's
    /// next step, and counts the outcome (`switchyard_rcs_revokes_total{outcome}`). Returns
    /// the status the message then has when it was revoked (`expired`, it will never be
    /// delivered); too late (delivered already), its delivery is reported when the event
    /// comes, as a late success.
    pub(crate) async fn revoke_superseded(
        &self,
        carrier: &str,
        to: &str,
        id: MessageId,
    ) -> Option<(Status, String)> {
        let revoked = self.revoke_rcs(carrier, to, id).await?;
        let outcome = match &revoked {
            rbm::Revoked::Yes => "revoked",
            rbm::Revoked::TooLate => "too_late",
            rbm::Revoked::Failed(e) => {
                tracing::warn!(message = %id, %carrier, "revoking a superseded RCS message failed: {e}");
                "failed"
            }
        };
        metrics::counter!("switchyard_rcs_revokes_total", "outcome" => outcome).increment(1);
        matches!(revoked, rbm::Revoked::Yes).then(|| (Status::Expired, REVOKED.to_owned()))
    }
}

impl HandoffJob for ChatJob {
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

/// Starts the chat engine with the accounts of `config` (none is fine: the channels are
/// refused until a reload adds one); webhook messages are signed with the secrets of
/// `directory`.
pub(crate) fn start(
    config: &Config,
    base_dir: &std::path::Path,
    directory: &SharedDirectory,
    router: Arc<Router>,
    updates: UpdateSink,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Arc<Chat>> {
    let carriers = ChatCarriers {
        accounts: ArcSwap::from_pointee(accounts(config, base_dir, directory)?),
        router: router.clone(),
    };
    Ok(Engine::start(Arc::new(carriers), router, updates, shutdown))
}

/// The accounts of a configuration being reloaded (checked before anything changes).
pub(crate) fn plan(
    config: &Config,
    base_dir: &std::path::Path,
    directory: &SharedDirectory,
) -> anyhow::Result<Accounts> {
    Ok(Accounts(accounts(config, base_dir, directory)?))
}

/// Takes the accounts of a reloaded configuration (messages in flight finish on the old ones).
pub(crate) fn commit(chat: &Chat, accounts: Accounts) {
    chat.carriers().accounts.store(Arc::new(accounts.0));
}

/// Hands a chat message left unfinished by the last run to its provider again.
pub(crate) fn recover(chat: &Chat, record: &MessageRecord) {
    let m = &record.message;
    let Some(spec) = m.chat.clone() else { return };
    let to = if spec.channel.channel().is_phone() {
        match crate::number::parse_e164(&m.to) {
            Ok((n, _)) => ChatTo::Phone(n),
            Err(_) => return,
        }
    } else if spec.channel == ChatChannel::Webhook {
        ChatTo::Url(m.to.clone())
    } else {
        ChatTo::Id(m.to.clone())
    };
    chat.place(ChatJob {
        id: m.id,
        tenant: m.tenant.clone(),
        to,
        body: m.body.clone(),
        from: m.from.clone(),
        tags: m.tags.clone(),
        metadata: m.metadata.clone(),
        created_at: m.created_at,
        spec,
        priority: m.priority,
        expires_at: m.expires_at,
        carrier: m.carrier.clone().unwrap_or_default(),
        // The flow's mode is not stored with its steps: any step is taken as one a later step
        // may withdraw, which costs a claim per attempt and is right for every mode.
        withdrawable: m.flow.is_some(),
    });
}

impl Carriers for ChatCarriers {
    type Job = ChatJob;
    const NAME: &'static str = "chat";

    fn unavailable(job: &ChatJob) -> SubmitError {
        SubmitError::ChatUnavailable(job.spec.channel.channel())
    }

    fn full(job: &ChatJob) -> SubmitError {
        SubmitError::ChatsFull(job.spec.channel.channel())
    }

    fn any(&self, job: &ChatJob) -> bool {
        let channel = job.spec.channel;
        self.accounts
            .load()
            .values()
            .any(|a| a.channel() == channel)
    }

    /// The tenant's accounts of the job's channel for its destination, best first.
    fn ranked(&self, job: &ChatJob) -> Result<Vec<(String, Money)>, SubmitError> {
        let table = self.router.load();
        let tenant = handoff::tenant_id(&table, &job.tenant)?;
        let channel: Channel = job.spec.channel.channel();
        let mut buf = RouteBuf::new();
        let ranked = match &job.to {
            ChatTo::Phone(number) => table.route(
                &RouteRequest {
                    channel,
                    number,
                    tenant,
                    priority: job.priority,
                    salt: job.id.0 as u64,
                    now: Instant::now(),
                },
                &mut buf,
            ),
            ChatTo::Id(_) | ChatTo::Url(_) => table.route_flat(
                &FlatRouteRequest {
                    channel,
                    tenant,
                    priority: job.priority,
                    salt: job.id.0 as u64,
                    now: Instant::now(),
                },
                &mut buf,
            ),
        }
        .map_err(crate::dispatch::DispatchError::Route)?;
        let accounts = self.accounts.load();
        Ok(handoff::priced(&table, ranked, |name| {
            accounts
                .get(name)
                .is_some_and(|a| a.channel() == job.spec.channel)
        }))
    }

    /// An RCS message the agent took while it was being withdrawn is revoked; the other
    /// channels cannot take a message back.
    fn recall<'a>(
        &'a self,
        carrier: &'a str,
        job: &'a ChatJob,
        _carrier_id: &'a str,
    ) -> BoxFuture<'a, Option<(Status, String)>> {
        Box::pin(async move {
            match (&job.to, job.spec.channel) {
                (ChatTo::Phone(number), ChatChannel::Rcs) => {
                    self.revoke_superseded(carrier, number.as_str(), job.id)
                        .await
                }
                _ => None,
            }
        })
    }

    /// An RCS step of a cascade or smart flow: the flow's next step may start on another
    /// node, which withdraws it through the store.
    fn withdrawable_elsewhere(&self, job: &ChatJob) -> bool {
        job.withdrawable && job.spec.channel == ChatChannel::Rcs
    }

    /// A webhook endpoint's answers are about the recipient, not the carrier.
    fn feeds_health(&self, job: &ChatJob) -> bool {
        job.spec.channel != ChatChannel::Webhook
    }

    /// A webhook endpoint's `Retry-After` pauses that endpoint (scheme, host, port), not the
    /// carrier that posts to every tenant's endpoints.
    fn pause_key(&self, carrier: &str, job: &ChatJob) -> String {
        match &job.to {
            ChatTo::Url(url) if job.spec.channel == ChatChannel::Webhook => {
                let origin = url
                    .parse::<hyper::Uri>()
                    .ok()
                    .map(|u| {
                        format!(
                            "{}://{}:{}",
                            u.scheme_str().unwrap_or(""),
                            u.host().unwrap_or(""),
                            u.port_u16().map_or(String::new(), |p| p.to_string())
                        )
                    })
                    .unwrap_or_else(|| url.clone());
                format!("{carrier} {origin}")
            }
            _ => carrier.to_owned(),
        }
    }

    fn attempt<'a>(&'a self, carrier: &'a str, job: &'a ChatJob) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match self.account(carrier).as_deref() {
                Some(Account::Rbm(agent)) => agent.send(job).await,
                Some(Account::Whatsapp(number)) => number.send(job).await,
                Some(Account::Telegram(bot)) => bot.send(job).await,
                Some(Account::Messenger(page)) => page.send(job).await,
                Some(Account::Webhook(poster)) => poster.send(job).await,
                None => Verdict::Retry("account removed".into(), FailureClass::TransportDown),
            }
        })
    }
}

/// An account per provider section (`[carriers.rbm]`, `[carriers.whatsapp]`, …,
/// `[carriers.webhook]`) of `config`.
fn accounts(
    config: &Config,
    base_dir: &std::path::Path,
    directory: &SharedDirectory,
) -> anyhow::Result<HashMap<String, Arc<Account>>> {
    let egress = Arc::new(config.egress.clone());
    let mut out = HashMap::new();
    for c in &config.carriers {
        let account = if let Some(rbm) = c
            .rbm
            .as_ref()
            .filter(|_| c.channels.contains(&Channel::Rcs))
        {
            let api = Api::new(&rbm.http, base_dir)
                .map_err(|e| anyhow::anyhow!("carrier {:?}: RBM API: {e}", c.name))?;
            Account::Rbm(rbm::Agent::new(rbm.clone(), api))
        } else if let Some(wa) = c
            .whatsapp
            .as_ref()
            .filter(|_| c.channels.contains(&Channel::Whatsapp))
        {
            let api = Api::new(&wa.http, base_dir)
                .map_err(|e| anyhow::anyhow!("carrier {:?}: WhatsApp API: {e}", c.name))?;
            Account::Whatsapp(whatsapp::Number::new(wa.clone(), api))
        } else if let Some(tg) = c
            .telegram
            .as_ref()
            .filter(|_| c.channels.contains(&Channel::Telegram))
        {
            let api = Api::new(&tg.http, base_dir)
                .map_err(|e| anyhow::anyhow!("carrier {:?}: Telegram Bot API: {e}", c.name))?;
            Account::Telegram(telegram::Bot::new(tg.clone(), api))
        } else if let Some(page) = c
            .messenger
            .as_ref()
            .filter(|_| c.channels.contains(&Channel::Messenger))
        {
            let api = Api::new(&page.http, base_dir)
                .map_err(|e| anyhow::anyhow!("carrier {:?}: Messenger Send API: {e}", c.name))?;
            Account::Messenger(messenger::Page::new(page.clone(), api))
        } else if let Some(hook) = c
            .webhook
            .as_ref()
            .filter(|_| c.channels.contains(&Channel::Webhook))
        {
            let poster =
                webhook::Poster::new(hook.clone(), egress.clone(), base_dir, directory.clone())
                    .map_err(|e| anyhow::anyhow!("carrier {:?}: webhook client: {e}", c.name))?;
            Account::Webhook(poster)
        } else {
            continue;
        };
        out.insert(c.name.clone(), Arc::new(account));
    }
    Ok(out)
}

/// What an HTTP status that is not a success means when the body does not say more: 401/403
/// are the account's fault (another account may work), 429 is a throttle, 5xx and 408 are the
/// provider's trouble, other 4xx refuse the message.
pub(crate) fn judge_status(status: u16, what: String) -> Verdict {
    match status {
        401 | 403 => Verdict::Retry(what, FailureClass::TransportDown),
        408 => Verdict::Retry(what, FailureClass::Timeout),
        429 => Verdict::Retry(what, FailureClass::Throttled),
        500..=599 => Verdict::Retry(what, FailureClass::TransportDown),
        _ => Verdict::Rejected(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(retry_after: Option<u64>) -> Answer {
        Answer {
            status: 429,
            body: Bytes::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn waits_come_from_the_header_telegram_or_google_retry_info() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        // The header wins over the body.
        let telegram = json!({"ok": false, "error_code": 429, "parameters": {"retry_after": 9}});
        assert_eq!(answer(Some(4)).wait_hint(&telegram), secs(4));
        assert_eq!(answer(None).wait_hint(&telegram), secs(9));
        let google = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}
        ]}});
        assert_eq!(
            answer(None).wait_hint(&google),
            Some(Duration::from_millis(1500))
        );
        // Graph API errors carry no wait; nor do malformed delays.
        let graph = json!({"error": {"code": 130429, "message": "Rate limit hit"}});
        assert_eq!(answer(None).wait_hint(&graph), None);
        let bad = json!({"error": {"details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "-3s"},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"}
        ]}});
        assert_eq!(answer(None).wait_hint(&bad), None);
        assert_eq!(answer(None).wait_hint(&serde_json::Value::Null), None);
    }
}
