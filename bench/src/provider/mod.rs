//! `provider-sim`: simulators of the chat-channel provider APIs the gateway's connectors talk
//! to — WhatsApp Business Cloud API, Telegram Bot API, Messenger Send API and Google RCS
//! Business Messaging — written from their public documentation (each module cites its
//! pages), with scripted failures, status webhooks signed as each provider signs them, and a
//! control port that shows exactly what arrived.
//!
//! # Layout
//! - this file: command-line options, the state behind one lock, request routing by path.
//! - [`exchange`]: the sans-IO boundary — [`exchange::Request`] in, [`exchange::Reply`]
//!   (answer, delay, webhooks to send later) out; `now` is passed in.
//! - [`whatsapp`], [`telegram`], [`messenger`], [`rbm`]: one file per provider: request
//!   validation, answers, errors and webhook bodies, as plain functions.
//! - [`graph`]: the Graph API error shape WhatsApp and Messenger share; [`sign`]: webhook
//!   signatures.
//! - [`script`]: scripted behaviour per provider and recipient; [`stats`]: counters and the
//!   capped lists of received requests and sent webhooks.
//! - [`server`]: the tokio/axum driver (provider API, delayed answers, webhook delivery);
//!   [`control`]: the HTTP control port.
//!
//! # Data flow
//! A request to the provider port is routed by path ([`State::route`]), handled under the
//! lock by the provider's `handle`, counted, and answered after the scripted delay. The
//! reply's scheduled webhooks run in one task per request, in order: at each deadline the
//! provider's `fire` builds the body (or cancels it, e.g. an RBM message revoked meanwhile),
//! and the driver POSTs it to the configured callback URL once, without retries.

pub mod control;
pub mod exchange;
pub mod graph;
pub mod messenger;
pub mod rbm;
pub mod script;
pub mod server;
#[cfg(test)]
mod shape;
pub mod sign;
pub mod stats;
pub mod telegram;
pub mod whatsapp;

use std::net::SocketAddr;
use std::time::SystemTime;

use rand::SeedableRng;

use exchange::{Action, Inbound, Provider, Reply, Request, Scheduled, Webhook};
use script::Script;
use stats::Stats;

/// Command-line options of `provider-sim`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "provider-sim",
    version,
    about = "WhatsApp, Telegram, Messenger and RBM API simulator for Switchyard's tests"
)]
pub struct Options {
    /// Address of the provider APIs (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8095")]
    pub listen: SocketAddr,
    /// HTTP control port (config, behaviour, inbound messages, stats). Off when absent.
    #[arg(long)]
    pub control: Option<SocketAddr>,
    /// Seed of the id generator (wamids, trace ids): the same seed gives the same ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many received requests, and how many sent webhooks, `GET /stats` keeps.
    #[arg(long, default_value_t = 1000)]
    pub max_stored: usize,
    /// How long a webhook POST may take before it counts as failed, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub webhook_timeout_ms: u64,
    /// WhatsApp callback URL (also settable with `PUT /whatsapp/config`).
    #[arg(long)]
    pub whatsapp_webhook: Option<String>,
    /// Telegram webhook URL.
    #[arg(long)]
    pub telegram_webhook: Option<String>,
    /// Messenger callback URL.
    #[arg(long)]
    pub messenger_webhook: Option<String>,
    /// RBM webhook URL.
    #[arg(long)]
    pub rbm_webhook: Option<String>,
}

/// Everything the simulator knows, behind one lock (requests are few; simplicity wins).
#[derive(Debug)]
pub struct State {
    /// The WhatsApp Business account.
    pub whatsapp: whatsapp::State,
    /// The Telegram bot.
    pub telegram: telegram::State,
    /// The Facebook Page.
    pub messenger: messenger::State,
    /// The RBM agent.
    pub rbm: rbm::State,
    /// Generates ids; seeded so runs repeat.
    pub rng: rand::rngs::StdRng,
    /// Counters and what arrived.
    pub stats: Stats,
}

impl State {
    /// Default credentials, every recipient accepted, `max_stored` kept in the lists.
    pub fn new(seed: u64, max_stored: usize) -> State {
        State {
            whatsapp: whatsapp::State::default(),
            telegram: telegram::State::default(),
            messenger: messenger::State::default(),
            rbm: rbm::State::default(),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            stats: Stats::new(max_stored),
        }
    }

    /// From the command line.
    pub fn from_options(o: &Options) -> State {
        let mut s = State::new(o.seed, o.max_stored);
        s.whatsapp.config.webhook_url = o.whatsapp_webhook.clone();
        s.telegram.config.webhook_url = o.telegram_webhook.clone();
        s.messenger.config.webhook_url = o.messenger_webhook.clone();
        s.rbm.config.webhook_url = o.rbm_webhook.clone();
        s
    }

    /// Which provider's API `req` is for, by path: `/v1/phones/…` RBM, `/bot<token>/<method>`
    /// Telegram, `/{version}/me/messages` and `/{version}/{page_id}/messages` Messenger, any
    /// other `/{version}/{id}/messages` WhatsApp.
    pub fn route(&self, req: &Request) -> Option<Provider> {
        let s = req.segments();
        match s.as_slice() {
            ["v1", "phones", _, ..] => Some(Provider::Rbm),
            [bot, _] if bot.starts_with("bot") => Some(Provider::Telegram),
            [_, id, "messages"] if *id == "me" || *id == self.messenger.config.page_id => {
                Some(Provider::Messenger)
            }
            [_, _, "messages"] => Some(Provider::Whatsapp),
            _ => None,
        }
    }

    /// Whether `req` must wait before it is handled: an RBM request about a phone whose
    /// behaviour holds it (`hold`).
    pub fn holds(&self, req: &Request) -> bool {
        match req.segments().as_slice() {
            ["v1", "phones", phone, ..] => self.rbm.script.for_recipient(phone).hold,
            _ => false,
        }
    }

    /// Handles and counts one request; `None` when no provider serves its path.
    pub fn handle(&mut self, req: &Request, now: SystemTime) -> Option<(Provider, Reply)> {
        let provider = self.route(req)?;
        let reply = match provider {
            Provider::Whatsapp => whatsapp::handle(&mut self.whatsapp, &mut self.rng, req, now),
            Provider::Telegram => telegram::handle(&mut self.telegram, req, now),
            Provider::Messenger => messenger::handle(&mut self.messenger, &mut self.rng, req, now),
            Provider::Rbm => rbm::handle(&mut self.rbm, req, now),
        };
        self.stats.record(provider, req, &reply);
        Some((provider, reply))
    }

    /// Builds the webhook `action` stands for, now; `None` (counted as skipped) when it no
    /// longer applies.
    pub fn fire(&mut self, action: &Action, now: SystemTime) -> Option<Webhook> {
        let (provider, webhook) = match action {
            Action::Whatsapp(e) => (
                Provider::Whatsapp,
                Some(whatsapp::fire(&self.whatsapp, e, now)),
            ),
            Action::Telegram(e) => (Provider::Telegram, Some(telegram::fire(&self.telegram, e))),
            Action::Messenger(e) => (
                Provider::Messenger,
                Some(messenger::fire(&self.messenger, e, now)),
            ),
            Action::Rbm(e) => (
                Provider::Rbm,
                rbm::fire(&mut self.rbm, &mut self.rng, e, now),
            ),
        };
        if webhook.is_none() {
            self.stats.of(provider).events_skipped += 1;
        }
        webhook
    }

    /// A message from a user (control API); the error says why it cannot be simulated.
    pub fn inbound(
        &mut self,
        provider: Provider,
        msg: &Inbound,
        now: SystemTime,
    ) -> Result<Vec<Scheduled>, String> {
        if msg.from.is_empty() {
            return Err("from is required".into());
        }
        let once = match provider {
            Provider::Whatsapp => whatsapp::inbound(&mut self.whatsapp, &mut self.rng, msg, now),
            Provider::Telegram => telegram::inbound(&mut self.telegram, msg, now)?,
            Provider::Messenger => messenger::inbound(&mut self.messenger, &mut self.rng, msg, now),
            Provider::Rbm => rbm::inbound(&mut self.rng, msg, now),
        };
        // Sent in order, each after the previous one's answer (see `server::deliver`).
        let copies = usize::from(msg.resend) + 1;
        Ok(std::iter::repeat_n(once, copies).flatten().collect())
    }

    /// The script of `provider`.
    pub fn script(&mut self, provider: Provider) -> &mut Script {
        match provider {
            Provider::Whatsapp => &mut self.whatsapp.script,
            Provider::Telegram => &mut self.telegram.script,
            Provider::Messenger => &mut self.messenger.script,
            Provider::Rbm => &mut self.rbm.script,
        }
    }

    /// Forgets what happened (counters, lists, windows, chats, RBM messages); keeps
    /// configuration and scripts.
    pub fn reset(&mut self) {
        self.stats = Stats::new(self.stats.cap);
        self.whatsapp.windows.clear();
        self.telegram.chats.clear();
        self.messenger.windows.clear();
        self.rbm.messages.clear();
        self.rbm.order.clear();
    }
}

/// Runs the simulator until SIGTERM or Ctrl-C, then prints the counters as JSON.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let api = tokio::net::TcpListener::bind(options.listen).await?;
    let control = match options.control {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    println!("provider-sim listening on {}", api.local_addr()?);
    if let Some(c) = &control {
        println!("provider-sim control on {}", c.local_addr()?);
    }
    let shared = server::Shared::new(
        State::from_options(&options),
        std::time::Duration::from_millis(options.webhook_timeout_ms),
    );
    if let Some(c) = control {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = control::serve(c, shared).await {
                tracing::error!("control port failed: {e:#}");
            }
        });
    }
    tokio::select! {
        r = server::serve(api, shared.clone()) => r?,
        r = shutdown_signal() => r?,
    }
    let counters = shared.state.lock().stats.providers.clone();
    println!("{}", serde_json::to_string(&counters)?);
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(path: &str) -> Request {
        Request {
            method: "POST".into(),
            path: path.into(),
            ..Request::default()
        }
    }

    #[test]
    fn only_rbm_requests_about_a_held_phone_wait() {
        let mut s = State::new(1, 10);
        let held = script::Behaviour {
            hold: true,
            ..script::Behaviour::default()
        };
        s.rbm.script.recipients.insert("+4477".into(), held);
        assert!(s.holds(&at("/v1/phones/+4477/agentMessages")));
        assert!(s.holds(&at("/v1/phones/+4477/capabilities")));
        assert!(!s.holds(&at("/v1/phones/+4478/agentMessages")));
        assert!(!s.holds(&at("/v23.0/106540352242922/messages")));
        s.rbm.script.recipients.clear();
        assert!(!s.holds(&at("/v1/phones/+4477/agentMessages")));
    }

    #[test]
    fn routes_by_path() {
        let s = State::new(1, 10);
        assert_eq!(
            s.route(&at("/v23.0/106540352242922/messages")),
            Some(Provider::Whatsapp)
        );
        assert_eq!(
            s.route(&at("/v23.0/me/messages")),
            Some(Provider::Messenger)
        );
        assert_eq!(
            s.route(&at("/v23.0/112233445566778/messages")),
            Some(Provider::Messenger)
        );
        assert_eq!(
            s.route(&at("/bot1:x/sendMessage")),
            Some(Provider::Telegram)
        );
        assert_eq!(
            s.route(&at("/v1/phones/+4477/agentMessages")),
            Some(Provider::Rbm)
        );
        assert_eq!(
            s.route(&at("/v1/phones/+4477/capabilities")),
            Some(Provider::Rbm)
        );
        assert_eq!(s.route(&at("/stats")), None);
        assert_eq!(s.route(&at("/")), None);
    }

    #[test]
    fn unknown_paths_are_not_counted_and_reset_keeps_config() {
        let mut s = State::new(1, 10);
        assert!(s.handle(&at("/nothing"), SystemTime::now()).is_none());
        let (p, reply) = s
            .handle(&at("/bot1:x/sendMessage"), SystemTime::now())
            .unwrap();
        assert_eq!((p, reply.status), (Provider::Telegram, 401));
        assert_eq!(s.stats.providers["telegram"].requests, 1);
        s.whatsapp.config.token = "kept".into();
        s.reset();
        assert_eq!(s.stats.providers["telegram"].requests, 0);
        assert_eq!(s.whatsapp.config.token, "kept");
    }
}
