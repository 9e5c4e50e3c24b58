//! Inbound (MO) messages: which tenant owns them, the opt-out keywords they carry, and the
//! replies those keywords get.
//!
//! ```text
//! bind: deliver_sm (MO) ──► classify: owner by destination number, keyword ──► opt-out list in
//!   memory updated at once ──► store: inbound row + event + opt-out row (one commit) ──► ack
//!   ──► keyword: KeywordReplies ──► budgets (per mobile number, per tenant) ──► tenant quota
//!       and rate ──► priced, stored, queued like any message, from the tenant's number
//! pump: inbound event ──► webhook / SSE
//! ```
//! The in-memory list changes before the commit: if the commit fails the carrier sends the MO
//! again, and until then we err on the side of not sending (STOP) — or of the stored list
//! (START), which still holds the opt-out.
//!
//! Chat providers' webhooks change it after the commit instead, and only for the messages the
//! commit stored: a provider resends webhooks (the same message, recognised by its platform
//! id and stored once), and a stale resend must not undo what came after it.
//!
//! Keyword replies are messages of the tenant like any other: priced by the route and counted
//! against its rate and quotas. They also have budgets of their own: a mobile number gets at
//! most `keyword_replies_per_number` replies from one tenant per `keyword_replies_window_s`
//! (two auto-responders answering each other, or one sender repeating HELP, stop there), and a
//! tenant sends at most `keyword_replies_per_tenant_per_minute` over all numbers (many spoofed
//! senders). A reply over a budget is not sent and is counted in
//! `switchyard_keyword_replies_total{outcome}`; the MO itself is always stored and reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard_ops::config::InboundSettings;
use switchyard_protocols::text::EncodingPreference;
use switchyard_routing::{Priority, E164};

use crate::admission::optout::OptOuts;
use crate::domain::number_key;
use crate::domain::SharedDirectory;
use crate::domain::{InboundMessage, Keyword, OptOutChange};
use crate::submit::{Content, Draft, Origin, SubmitError, Submitter};

/// What the binds need to classify MO messages and answer their keywords.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    /// Number → tenant, replies (swapped on reload).
    pub(crate) directory: SharedDirectory,
    /// The opt-out list in memory.
    pub(crate) opt_outs: Arc<OptOuts>,
    /// Sends keyword replies; `None`: keywords get none.
    pub(crate) replies: Option<Arc<KeywordReplies>>,
}

/// A reply a keyword asks for, to send once its MO is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplyRequest {
    /// The tenant owning the number the MO was sent to.
    pub(crate) tenant: String,
    /// The mobile's number (the reply's destination).
    pub(crate) mo_from: String,
    /// The tenant's number the MO was sent to (the reply's sender).
    pub(crate) mo_to: String,
    /// The keyword.
    pub(crate) keyword: Keyword,
}

impl Inbound {
    /// Fills in the owner of `m` (by its destination number) and applies its keyword to the
    /// in-memory opt-out list. Called by the bind before the MO is stored. Returns the reply
    /// its keyword asks for. A partial message (some parts never came) carries no keyword: its
    /// text is not what the mobile sent.
    pub(crate) fn classify(&self, m: &mut InboundMessage) -> Option<ReplyRequest> {
        let to = number_key(&m.to);
        let directory = self.directory.load();
        m.tenant = directory.numbers.get(&to).cloned();
        let Some(tenant) = &m.tenant else {
            metrics::counter!("switchyard_inbound_messages_total", "owner" => "none").increment(1);
            return None;
        };
        metrics::counter!("switchyard_inbound_messages_total", "owner" => "tenant").increment(1);
        if m.partial.is_some() {
            return None;
        }
        let keyword = Keyword::parse(&m.body)?;
        self.apply_keyword(tenant, m);
        Some(ReplyRequest {
            tenant: tenant.clone(),
            mo_from: m.from.clone(),
            mo_to: m.to.clone(),
            keyword,
        })
    }

    /// Fills in the owner of `m`, a message a person sent to a chat provider account (the
    /// tenant whose `accounts` list the account). Called before the message is stored.
    pub(crate) fn classify_chat(&self, m: &mut InboundMessage) {
        let directory = self.directory.load();
        m.tenant = directory.accounts.get(&m.carrier).map(|(t, _)| t.clone());
    }

    /// Counts `m`, a chat message [`Self::classify_chat`] gave its owner, and applies its
    /// keyword to the in-memory opt-out list: on a chat channel STOP blocks that channel to
    /// the sender, START lifts it. Called once the message is stored, and only if it was: a
    /// webhook the provider sent again (a STOP that a START followed since, say) must not
    /// change the list the store no longer agrees with. Keywords on chat channels get no
    /// automatic reply.
    pub(crate) fn chat_stored(&self, m: &InboundMessage) {
        let Some(tenant) = &m.tenant else {
            metrics::counter!("switchyard_inbound_messages_total", "owner" => "none").increment(1);
            return;
        };
        metrics::counter!("switchyard_inbound_messages_total", "owner" => "tenant").increment(1);
        self.apply_keyword(tenant, m);
    }

    /// Applies the opt-out change `m`'s keyword asks for to the in-memory list.
    fn apply_keyword(&self, tenant: &str, m: &InboundMessage) {
        match m.opt_out_change() {
            Some(OptOutChange::Add { recipient, sender }) => {
                self.opt_outs.add(tenant, &recipient, &sender);
            }
            Some(OptOutChange::Remove { recipient, senders }) => {
                let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
                self.opt_outs.remove(tenant, &recipient, &senders);
            }
            None => {}
        }
    }

    /// Sends the reply `request` asks for, within its budgets (see the module doc). Called once
    /// the MO is stored; returns at once (the reply is stored and queued on its own task).
    pub(crate) fn reply(&self, request: ReplyRequest) {
        if let Some(replies) = &self.replies {
            replies.send(request);
        }
    }
}

/// Why a keyword reply was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The mobile number had its replies for the window.
    NumberBudget,
    /// The tenant had its replies for the minute.
    TenantBudget,
    /// Too many numbers are tracked to start tracking another one.
    TooManyNumbers,
}

impl Refused {
    /// Its `outcome` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refused::NumberBudget => "number_limited",
            Refused::TenantBudget => "tenant_limited",
            Refused::TooManyNumbers => "numbers_full",
        }
    }
}

/// Most (tenant, number) budgets tracked at once. Budgets that are full again (their number
/// has not asked for a while) are forgotten first; past this, replies to numbers not tracked
/// yet are refused.
const MAX_TRACKED_NUMBERS: usize = 100_000;

/// A token bucket: `capacity` tokens, refilled at `capacity` per `window`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens now.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl Bucket {
    fn full(capacity: u32, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(capacity),
            last: now,
        }
    }

    fn refill(&mut self, capacity: u32, window: Duration, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let rate = f64::from(capacity) / window.as_secs_f64().max(1e-3);
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(capacity));
        self.last = now;
    }

    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The keyword-reply budgets, per (tenant, mobile number) and per tenant. Sans-IO: every call
/// takes `now`.
#[derive(Debug)]
pub(crate) struct ReplyBudgets {
    /// Replies per number per window.
    per_number: u32,
    /// That window.
    window: Duration,
    /// Replies per tenant per minute.
    per_tenant: u32,
    /// (tenant, number digits) → its bucket.
    numbers: HashMap<(String, String), Bucket>,
    /// Tenant → its bucket.
    tenants: HashMap<String, Bucket>,
}

impl ReplyBudgets {
    /// Empty budgets with these limits.
    pub(crate) fn new(per_number: u32, window: Duration, per_tenant_per_minute: u32) -> Self {
        ReplyBudgets {
            per_number: per_number.max(1),
            window,
            per_tenant: per_tenant_per_minute.max(1),
            numbers: HashMap::new(),
            tenants: HashMap::new(),
        }
    }

    /// Takes one reply from `tenant`'s budget for `number` and from its own, or says which
    /// budget is spent (nothing is taken then).
    pub(crate) fn admit(
        &mut self,
        tenant: &str,
        number: &str,
        now: Instant,
    ) -> Result<(), Refused> {
        let (per_number, window) = (self.per_number, self.window);
        let key = (tenant.to_owned(), number.to_owned());
        if !self.numbers.contains_key(&key) && self.numbers.len() >= MAX_TRACKED_NUMBERS {
            self.numbers.retain(|_, b| {
                b.refill(per_number, window, now);
                b.tokens < f64::from(per_number)
            });
            if self.numbers.len() >= MAX_TRACKED_NUMBERS {
                return Err(Refused::TooManyNumbers);
            }
        }
        let number_bucket = self
            .numbers
            .entry(key)
            .or_insert_with(|| Bucket::full(per_number, now));
        number_bucket.refill(per_number, window, now);
        if number_bucket.tokens < 1.0 {
            return Err(Refused::NumberBudget);
        }
        let per_tenant = self.per_tenant;
        let tenant_bucket = self
            .tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| Bucket::full(per_tenant, now));
        tenant_bucket.refill(per_tenant, Duration::from_secs(60), now);
        if !tenant_bucket.take() {
            return Err(Refused::TenantBudget);
        }
        number_bucket.take();
        Ok(())
    }
}

/// Sends keyword replies: within their budgets, counted against the tenant's quota and rate,
/// priced and stored like any message.
pub(crate) struct KeywordReplies {
    /// Reply texts per tenant.
    directory: SharedDirectory,
    /// The accept pipeline (policy, route, price, limits, store, queue).
    submit: Submitter,
    /// Per number and per tenant.
    budgets: Mutex<ReplyBudgets>,
}

impl std::fmt::Debug for KeywordReplies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywordReplies").finish_non_exhaustive()
    }
}

impl KeywordReplies {
    /// Replies within the `[inbound]` limits of `settings`.
    pub(crate) fn new(
        settings: &InboundSettings,
        directory: SharedDirectory,
        submit: Submitter,
    ) -> Self {
        KeywordReplies {
            directory,
            submit,
            budgets: Mutex::new(ReplyBudgets::new(
                settings.keyword_replies_per_number,
                settings.keyword_replies_window,
                settings.keyword_replies_per_tenant_per_minute,
            )),
        }
    }

    /// Sends the reply `r` asks for if the tenant has one configured and the budgets allow;
    /// the store write and the queueing run on their own task.
    pub(crate) fn send(self: &Arc<Self>, r: ReplyRequest) {
        let Some(text) = self.text(&r.tenant, r.keyword) else {
            return;
        };
        let refused = self
            .budgets
            .lock()
            .admit(&r.tenant, &number_key(&r.mo_from), Instant::now());
        if let Err(why) = refused {
            metrics::counter!("switchyard_keyword_replies_total", "outcome" => why.as_str())
                .increment(1);
            tracing::debug!(tenant = %r.tenant, keyword = r.keyword.as_str(), "keyword reply not sent: {}", why.as_str());
            return;
        }
        let me = self.clone();
        tokio::spawn(async move { me.send_now(r, text).await });
    }

    /// The tenant's reply text for `keyword`; `None` when it has none (or it is empty).
    fn text(&self, tenant: &str, keyword: Keyword) -> Option<String> {
        let d = self.directory.load();
        let t = d.tenants.get(tenant)?;
        let (configured, default) = match keyword {
            Keyword::Stop | Keyword::StopAll => (
                &t.stop_reply,
                switchyard_ops::config::TenantEvents::DEFAULT_STOP_REPLY,
            ),
            Keyword::Start => (
                &t.start_reply,
                switchyard_ops::config::TenantEvents::DEFAULT_START_REPLY,
            ),
            Keyword::Help => (
                &t.help_reply,
                switchyard_ops::config::TenantEvents::DEFAULT_HELP_REPLY,
            ),
        };
        let text = configured.clone().unwrap_or_else(|| default.to_owned());
        (!text.is_empty()).then_some(text)
    }

    /// Stores and queues one reply that passed its budgets: a normal outbound SMS from the
    /// number the MO was sent to, priced by the route and admitted by the tenant's limits.
    async fn send_now(&self, r: ReplyRequest, text: String) {
        let outcome = self.try_send(&r, text).await;
        metrics::counter!("switchyard_keyword_replies_total", "outcome" => outcome).increment(1);
    }

    async fn try_send(&self, r: &ReplyRequest, text: String) -> &'static str {
        let tenant = r.tenant.as_str();
        let Ok(to) = E164::parse(&r.mo_from) else {
            return "bad_number";
        };
        // The country, for the tenant's policy, when the number is a valid one.
        let country = crate::number::parse_e164(&format!("+{}", to.as_str()))
            .ok()
            .and_then(|(_, c)| c);
        let digits = number_key(&r.mo_to);
        // Long numbers go out in E.164 form, short codes as they are.
        let from = if digits.len() > 8 {
            format!("+{digits}")
        } else {
            digits
        };
        let opts = switchyard_protocols::text::EncodeOptions {
            concat: switchyard_protocols::text::Concat::Udh8,
            ..Default::default()
        };
        let Ok(info) = switchyard_protocols::text::count_segments(&text, &opts) else {
            return "bad_text";
        };
        let draft = Draft {
            tenant: Arc::from(tenant),
            to: to.into(),
            country,
            from,
            body: text,
            content: Content::Sms {
                preference: EncodingPreference::Auto,
                encoding: info.encoding,
                segments: u16::try_from(info.segments).unwrap_or(u16::MAX),
            },
            priority: Priority::High,
            scheduled_at: None,
            expires_at: None,
            callback_url: None,
            tags: vec![format!("keyword:{}", r.keyword.as_str())],
            metadata: None,
            batch_id: None,
            origin: Origin::KeywordReply,
            smpp: None,
            udh: None,
            data_coding: None,
            flow: None,
            withdrawable: false,
        };
        match self
            .submit
            .accept(draft, |_, _, _| Ok::<_, SubmitError>(None))
            .await
        {
            Ok(_) => "sent",
            Err(SubmitError::Refused(why)) => {
                tracing::debug!(
                    tenant,
                    "keyword reply refused by the tenant's plan or limits: {}",
                    why.code()
                );
                "tenant_limits"
            }
            Err(SubmitError::Store(e)) => {
                tracing::warn!(tenant, "keyword reply not stored: {e}");
                "store_error"
            }
            Err(e) => {
                tracing::warn!(tenant, "no carrier for a keyword reply: {e}");
                "no_route"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Keyword, Refused, ReplyBudgets};

    #[test]
    fn replies_are_bounded_per_number_and_per_tenant() {
        let t0 = Instant::now();
        let mut b = ReplyBudgets::new(3, Duration::from_secs(3600), 10);
        for _ in 0..3 {
            assert_eq!(b.admit("acme", "447400111111", t0), Ok(()));
        }
        for _ in 0..50 {
            assert_eq!(
                b.admit("acme", "447400111111", t0),
                Err(Refused::NumberBudget)
            );
        }
        // Another tenant's budget for the same number is its own.
        assert_eq!(b.admit("other", "447400111111", t0), Ok(()));
        // The tenant's 10 a minute: 3 spent, 7 left over all numbers.
        let ok = (0..20)
            .filter(|n| b.admit("acme", &format!("4474002{n:05}"), t0).is_ok())
            .count();
        assert_eq!(ok, 7);
        assert_eq!(
            b.admit("acme", "447400999999", t0),
            Err(Refused::TenantBudget)
        );
        // A refusal by the tenant's budget takes nothing from the number's.
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(b.admit("acme", "447400999999", t1), Ok(()));
        // The number's budget refills evenly over its window: one reply per 20 minutes here.
        let t2 = t0 + Duration::from_secs(1200);
        assert_eq!(b.admit("acme", "447400111111", t2), Ok(()));
        assert_eq!(
            b.admit("acme", "447400111111", t2),
            Err(Refused::NumberBudget)
        );
    }

    #[test]
    fn keywords_are_whole_trimmed_and_case_insensitive() {
        for w in [
            "STOP",
            "stop",
            " Stop\n",
            "UNSUBSCRIBE",
            "end",
            "Quit",
            "CANCEL",
            "revoke",
            "OptOut",
        ] {
            assert_eq!(Keyword::parse(w), Some(Keyword::Stop), "{w:?}");
        }
        assert_eq!(Keyword::parse("stopall"), Some(Keyword::StopAll));
        assert_eq!(Keyword::parse(" START "), Some(Keyword::Start));
        assert_eq!(Keyword::parse("unstop"), Some(Keyword::Start));
        assert_eq!(Keyword::parse("Help"), Some(Keyword::Help));
        for w in [
            "",
            "stop please",
            "STOPP",
            "please stop",
            "s t o p",
            "STOP!",
        ] {
            assert_eq!(Keyword::parse(w), None, "{w:?}");
        }
    }
}
