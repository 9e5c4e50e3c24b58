//! Accepting messages: the one pipeline every entry point calls (the API's single send, batch
//! and voice calls, keyword replies to MO messages).
//!
//! ```text
//! Draft (validated by the entry point)
//!   ──► tenant policy (channel, country, segments, priority)      admission::limits
//!   ──► opt-out                                                    admission::optout
//!   ──► route and quote (carrier now, price × segments)           dispatch / voice trunks
//!   ──► admit (rate, quota: a Reservation)                         admission::limits
//!   ──► NewMessage (built here and nowhere else)
//!   ──► store.insert (durable, with the request's records)         store
//!   ──► reservation kept ──► hand over (carrier queue / call queue)
//! ```
//!
//! [`Submitter::accept`] runs it for one message. A batch runs the same steps in bulk: one
//! [`Submitter::admit`] for every recipient, [`Submitter::prepare`] per recipient, one
//! [`Submitter::commit`]. Refusals are [`SubmitError`]s; each entry point turns them into its
//! protocol's answer.

use std::sync::Arc;
use std::time::Instant;

use switchyard_protocols::text::{Encoding, EncodingPreference};
use switchyard_routing::{
    Channel, Price, Priority, RouteBuf, RouteError, RouteRequest, Router, E164,
};

use crate::admission::limits::{Reservation, TenantLimiter};
use crate::admission::optout::OptOuts;
use crate::admission::windows::Windows;
use crate::admission::Refusal;
use crate::dispatch::{DispatchError, Dispatcher, Job};
use crate::domain::{
    BatchRow, ChatChannel, ChatJob, ChatSpec, ChatTo, EmailJob, EmailSpec, MessageId, Money,
    NewBatch, NewMessage, RequestRecord, SmppOrigin, UnixMs, VoiceJob, VoiceSpec,
};
use crate::store::{Store, StoreError};

/// What a message is: SMS text (already counted) or a notification call.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// An SMS.
    Sms {
        /// Encoding asked for.
        preference: EncodingPreference,
        /// Encoding that will be used.
        encoding: Encoding,
        /// Segments it needs.
        segments: u16,
    },
    /// A notification call: what it plays and captures.
    Voice(VoiceSpec),
    /// An email: subject, HTML part, reply-to (the body is its plain-text part).
    Email(EmailSpec),
    /// A chat message (RCS, WhatsApp, Telegram, Messenger) or a webhook message: its channel
    /// and template.
    Chat(ChatSpec),
}

/// Where a message goes: a phone number (SMS, voice, RCS, WhatsApp), an email address, a
/// chat platform's id for the person, or the recipient system's endpoint (webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipient {
    /// E.164.
    Phone(E164),
    /// A checked email address, lower-cased (see [`switchyard_ops::config::is_email_address`]).
    Email(String),
    /// The id a chat platform gives the person (a Telegram chat id, a Messenger page-scoped id).
    Account(String),
    /// An `http://` or `https://` URL the webhook channel posts to (checked: scheme, host,
    /// length, no credentials).
    Url(String),
}

impl From<E164> for Recipient {
    fn from(n: E164) -> Self {
        Recipient::Phone(n)
    }
}

impl Recipient {
    /// The stored form: `+` and the digits, or the address.
    pub(crate) fn stored(&self) -> String {
        match self {
            Recipient::Phone(n) => format!("+{}", n.as_str()),
            Recipient::Email(a) | Recipient::Account(a) | Recipient::Url(a) => a.clone(),
        }
    }

    /// How opt-out lists name it: the digits, or the address.
    fn opt_out_key(&self) -> &str {
        match self {
            Recipient::Phone(n) => n.as_str(),
            Recipient::Email(a) | Recipient::Account(a) | Recipient::Url(a) => a,
        }
    }
}

/// Who asked for the message, which decides the checks that are the tenant's to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The tenant (API, batch): every check applies.
    Tenant,
    /// The gateway answering a keyword (STOP, START, HELP) on the tenant's behalf: the reply
    /// confirms an opt-out, so the opt-out list does not stop it, and its priority is the
    /// gateway's, not the tenant's.
    KeywordReply,
}

/// A message an entry point has validated, before the tenant's policy, routing and limits.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    /// The tenant sending it.
    pub(crate) tenant: Arc<str>,
    /// Destination: a number for SMS and voice, an address for email.
    pub(crate) to: Recipient,
    /// ISO 3166 region of the destination, when known.
    pub(crate) country: Option<String>,
    /// Sender: E.164 with `+`, a short code or an alphanumeric id; an email address (empty:
    /// the relay's default sender).
    pub(crate) from: String,
    /// The text (spoken by text-to-speech for a call; the plain-text part of an email; for a
    /// binary SMS, its octets in hex).
    pub(crate) body: String,
    /// SMS or call.
    pub(crate) content: Content,
    /// Queue lane and routing weights.
    pub(crate) priority: Priority,
    /// Send no earlier than this (SMS only).
    pub(crate) scheduled_at: Option<UnixMs>,
    /// Give up if not sent by then.
    pub(crate) expires_at: Option<UnixMs>,
    /// Per-message status webhook.
    pub(crate) callback_url: Option<String>,
    /// Tenant's labels.
    pub(crate) tags: Vec<String>,
    /// Tenant's free-form data, as JSON text.
    pub(crate) metadata: Option<String>,
    /// The batch it is part of.
    pub(crate) batch_id: Option<String>,
    /// Who asked for it.
    pub(crate) origin: Origin,
    /// The tenant's SMPP bind it came from, if any (where its receipt goes).
    pub(crate) smpp: Option<SmppOrigin>,
    /// A user data header (UDHL included): with a concatenation IE, one part of a longer
    /// message as the tenant cut it (the body goes out as exactly one segment behind it);
    /// without, IEs every segment carries (see [`crate::domain::NewMessage::udh`]).
    pub(crate) udh: Option<Vec<u8>>,
    /// An SMPP data_coding to send as is (message class, message waiting, auto-deletion, binary
    /// 2).
    pub(crate) data_coding: Option<u8>,
    /// The flow this message is a step of.
    pub(crate) flow: Option<crate::domain::FlowLink>,
    /// A later step of its flow may withdraw it, from any node (a cascade's or smart flow's
    /// step: [`crate::domain::FlowMode::supersedes`]).
    pub(crate) withdrawable: bool,
}

impl Draft {
    fn channel(&self) -> Channel {
        match self.content {
            Content::Sms { .. } => Channel::Sms,
            Content::Voice(_) => Channel::Voice,
            Content::Email(_) => Channel::Email,
            Content::Chat(ref spec) => spec.channel.channel(),
        }
    }

    fn segments(&self) -> u16 {
        match self.content {
            Content::Sms { segments, .. } => segments,
            Content::Voice(_) | Content::Email(_) | Content::Chat(_) => 1,
        }
    }
}

/// How routing must find a carrier for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// A carrier whose queue has room now (a single send is refused with 503 otherwise).
    Now,
    /// The best carrier by route, room or not: the message waits for room (batches).
    Later,
}

/// The carrier chosen at acceptance and the tenant's estimated price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quote {
    /// Carrier name (the dispatcher may fail over later).
    pub(crate) carrier: String,
    /// Estimated price for the whole message (every segment). For a call: the price of its
    /// first billing increment.
    pub(crate) price: Option<Money>,
}

/// A message ready to be stored: what the store keeps and what is handed over once durable.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The stored form.
    pub(crate) message: NewMessage,
    /// The carrier quote given at acceptance.
    pub(crate) quote: Quote,
    /// What goes to a carrier queue or the call queue.
    pub(crate) hand_over: HandOver,
}

/// How [`Submitter::commit`] hands SMS to the dispatcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queueing {
    /// One message that found room when it was checked before its commit: queued even if the
    /// queue filled since.
    Admitted,
    /// Any number (a batch, a flow's step): queued while the queues have room; the rest waits
    /// in the store, only its ids in memory, and is read back as the queues take it.
    Bulk,
}

/// Where a durable message goes.
#[derive(Debug)]
pub(crate) enum HandOver {
    /// A carrier queue (via the dispatcher).
    Sms(Arc<Job>),
    /// The call queue.
    Voice(VoiceJob),
    /// The email engine.
    Email(EmailJob),
    /// The chat engine.
    Chat(ChatJob),
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubmitError {
    /// The tenant's plan, limits or opt-outs refuse it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// No carrier can take it (no route, blocked, breakers open, queues full).
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// A voice route exists but none of its carriers has a SIP trunk.
    #[error("no voice carrier with a SIP trunk serves this destination")]
    NoTrunk,
    /// So many messages are waiting for carriers that a batch must wait (the backlog).
    #[error("{0} messages are waiting for carriers")]
    Backlog(usize),
    /// Too many calls are waiting to be placed.
    #[error("too many calls are waiting")]
    CallsFull,
    /// Voice calls are not available (no voice carrier has a SIP trunk).
    #[error("voice calls are not available")]
    VoiceUnavailable,
    /// Email is not available (no carrier has an SMTP relay).
    #[error("email is not available")]
    EmailUnavailable,
    /// Too many emails are waiting for a relay.
    #[error("too many emails are waiting")]
    EmailsFull,
    /// No carrier has a provider account for this chat channel.
    #[error("the {0} channel is not available")]
    ChatUnavailable(Channel),
    /// Too many chat messages are waiting for a provider.
    #[error("too many {0} messages are waiting")]
    ChatsFull(Channel),
    /// An email without a sender, and no relay that could take it has a default one.
    #[error("an email needs a sender: give \"from\" (the relays have no default sender)")]
    SenderRequired,
    /// The message's channel and its recipient do not go together (a number for email, an
    /// address for SMS or voice).
    #[error("{0} needs {1}")]
    WrongRecipient(Channel, &'static str),
    /// The store did not take it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// True when the same message may be taken in a moment: the tenant's rate, full queues,
    /// breakers all open, a store that cannot write now. The rest (plan, opt-out, no route,
    /// a channel that is not available) stands until something is reconfigured.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            SubmitError::Refused(r) => matches!(r, Refusal::RateLimited { .. }),
            SubmitError::Dispatch(d) => d.is_retryable(),
            SubmitError::Backlog(_)
            | SubmitError::CallsFull
            | SubmitError::EmailsFull
            | SubmitError::ChatsFull(_) => true,
            SubmitError::Store(s) => s.is_retryable(),
            SubmitError::NoTrunk
            | SubmitError::VoiceUnavailable
            | SubmitError::EmailUnavailable
            | SubmitError::ChatUnavailable(_)
            | SubmitError::SenderRequired
            | SubmitError::WrongRecipient(..) => false,
        }
    }
}

/// Why a message could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CancelError {
    /// No such message of this tenant.
    #[error("no such message")]
    NotFound,
    /// Only a scheduled SMS that is not due yet can be cancelled; this one is in this status
    /// (or due already).
    #[error("only scheduled messages that are not due yet can be cancelled; this one is {0}")]
    NotCancellable(crate::domain::Status),
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a cancel by addresses (SMPP cancel_sm without a message_id) names: the messages the
/// same SMPP user submitted from this sender to this recipient, and of this service_type when
/// given (as an SMSC cancels only what the cancelling ESME submitted: never the tenant's API
/// traffic or another user's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CancelMatch {
    /// The SMPP user (system_id) that submitted them.
    pub(crate) system_id: String,
    /// The sender, in its stored form.
    pub(crate) from: String,
    /// The recipient, in its stored form (`+` and the digits).
    pub(crate) to: String,
    /// The service_type the submits gave, when the cancel names one.
    pub(crate) service_type: Option<String>,
}

impl CancelMatch {
    /// Whether `record` is named, and could be cancelled by id too: a scheduled SMS still
    /// `accepted`, from and to these addresses (with this service_type, when named). Whether
    /// it is due yet is the scheduler's to say.
    pub(crate) fn matches(&self, record: &crate::domain::MessageRecord) -> bool {
        let m = &record.message;
        record.status == crate::domain::Status::Accepted
            && m.channel() == Channel::Sms
            && m.scheduled_at.is_some()
            && m.from == self.from
            && m.to == self.to
            && m.smpp
                .as_ref()
                .is_some_and(|o| o.system_id == self.system_id)
            && self.service_type.as_ref().is_none_or(|want| {
                m.smpp
                    .as_ref()
                    .and_then(|o| o.service_type.as_ref())
                    .is_some_and(|st| st == want)
            })
    }
}

/// Messages one cancel by addresses cancels at most; the ESME sends it again for the rest.
pub(crate) const MAX_CANCEL_MATCHING: usize = 100;

/// Messages a cancel by addresses reads at most to find them (pages of the tenant's accepted
/// messages to the recipient, newest first).
const CANCEL_SCAN: usize = 10_000;

/// What replaces a scheduled message's content (SMPP replace_sm).
#[derive(Debug, Clone)]
pub(crate) struct ReplaceWith {
    /// The new text.
    pub(crate) body: String,
    /// Segments it needs (within the tenant's plan).
    pub(crate) segments: u16,
    /// When to send it (`None`: now).
    pub(crate) scheduled_at: Option<UnixMs>,
    /// When to give up.
    pub(crate) expires_at: Option<UnixMs>,
    /// The SMPP user and the receipt asked for.
    pub(crate) smpp: Option<SmppOrigin>,
}

/// Why a message could not be replaced.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplaceError<E> {
    /// No such message of this tenant.
    #[error("no such message")]
    NotFound,
    /// Only a scheduled SMS (not a part) that is not due yet can be replaced.
    #[error("only scheduled messages that are not due yet can be replaced; this one is {0}")]
    NotReplaceable(crate::domain::Status),
    /// The new content is refused.
    #[error("the new content is refused")]
    Invalid(E),
    /// The tenant's plan refuses the new content.
    #[error(transparent)]
    Refused(Refusal),
    /// The store did not answer.
    #[error(transparent)]
    Store(StoreError),
}

/// What the pipeline needs from a channel's delivery engine (voice calls, email): a carrier
/// and a price now, and the message once durable. `J` is the channel's job.
pub(crate) trait Connector<J>: Send + Sync + std::fmt::Debug {
    /// The carrier that would take `job` now and the tenant's price (for a call: of its
    /// first billing increment).
    fn quote(&self, job: &J) -> Result<Quote, SubmitError>;
    /// Queues the durable message.
    fn place(&self, job: J);
}

/// The voice engine as the pipeline sees it.
pub(crate) type CallPlacer = dyn Connector<VoiceJob>;

/// The email engine as the pipeline sees it.
pub(crate) type Mailer = dyn Connector<EmailJob>;

/// The chat engine as the pipeline sees it.
pub(crate) type ChatSender = dyn Connector<ChatJob>;

/// The accept pipeline, shared by every entry point.
#[derive(Clone)]
pub(crate) struct Submitter {
    store: Arc<dyn Store>,
    dispatcher: Arc<Dispatcher>,
    limits: Arc<TenantLimiter>,
    opt_outs: Arc<OptOuts>,
    calls: Option<Arc<CallPlacer>>,
    mail: Option<Arc<Mailer>>,
    chat: Option<Arc<ChatSender>>,
    /// The WhatsApp and Messenger 24-hour windows; `None`: not checked here (the platform's
    /// error decides).
    windows: Option<Arc<Windows>>,
    /// Several nodes share the store: a scheduled message may be held by another node, so
    /// cancel and replace decide by the stored state (see [`Submitter::cancel`]).
    shared: bool,
    /// Where the status changes this pipeline commits itself (cancellations) are told, as the
    /// update sink tells its own (to the flows).
    applied: Option<crate::updates::AppliedTx>,
}

/// On a shared store, how long before its time a scheduled message can still be cancelled or
/// replaced: its owner reads it again from the store when it comes due, so a change committed
/// this early always wins.
const SHARED_CHANGE_MARGIN_MS: i64 = 1000;

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter")
            .field("voice", &self.calls.is_some())
            .field("email", &self.mail.is_some())
            .field("chat", &self.chat.is_some())
            .finish_non_exhaustive()
    }
}

impl Submitter {
    /// The pipeline over these parts; `calls` is `None` when voice is not available.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        dispatcher: Arc<Dispatcher>,
        limits: Arc<TenantLimiter>,
        opt_outs: Arc<OptOuts>,
        calls: Option<Arc<CallPlacer>>,
    ) -> Self {
        Submitter {
            store,
            dispatcher,
            limits,
            opt_outs,
            calls,
            mail: None,
            chat: None,
            windows: None,
            shared: false,
            applied: None,
        }
    }

    /// The same pipeline placing calls through `calls`.
    pub(crate) fn with_calls(mut self, calls: Option<Arc<CallPlacer>>) -> Self {
        self.calls = calls;
        self
    }

    /// The same pipeline sending email through `mail`.
    pub(crate) fn with_mail(mut self, mail: Option<Arc<Mailer>>) -> Self {
        self.mail = mail;
        self
    }

    /// The same pipeline sending chat messages (RCS, WhatsApp) through `chat`.
    pub(crate) fn with_chat(mut self, chat: Option<Arc<ChatSender>>) -> Self {
        self.chat = chat;
        self
    }

    /// The same pipeline refusing WhatsApp free text and untagged Messenger messages outside
    /// the person's 24-hour window ([`Windows::check`]).
    pub(crate) fn with_windows(mut self, windows: Option<Arc<Windows>>) -> Self {
        self.windows = windows;
        self
    }

    /// The store is shared with other nodes.
    pub(crate) fn with_shared_store(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// The same pipeline telling `applied` of the status changes it commits itself.
    pub(crate) fn with_applied(mut self, applied: crate::updates::AppliedTx) -> Self {
        self.applied = Some(applied);
        self
    }

    /// Tells whoever follows status changes of the moves in `applied`.
    fn tell_moved(&self, applied: &[crate::domain::Applied]) {
        let Some(tx) = &self.applied else {
            return;
        };
        for a in applied {
            if matches!(a, crate::domain::Applied::Moved { .. }) {
                let _ = tx.send(a.clone());
            }
        }
    }

    /// Takes the scheduled message `id` due at `at` out of the scheduler so it can be
    /// cancelled or replaced: on one node, if the scheduler has not released it; on a shared
    /// store (where another node may hold it), if it is due more than
    /// [`SHARED_CHANGE_MARGIN_MS`] from now.
    ///
    /// Returns `None` when it cannot be taken; else whether this node held it (and so
    /// schedules a replacement itself).
    fn take_scheduled(&self, id: MessageId, at: UnixMs) -> Option<bool> {
        if !self.shared {
            return self.dispatcher.cancel_scheduled(id, at).then_some(true);
        }
        if at <= crate::domain::now_ms() + SHARED_CHANGE_MARGIN_MS {
            return None;
        }
        // A copy held here is dropped; whichever node holds it reads it again when due.
        let held = self.dispatcher.holds_scheduled(id, at);
        let _ = self.dispatcher.cancel_scheduled(id, at);
        Some(held)
    }

    /// The tenant's checks that concern the request as a whole: the priority it asks for.
    pub(crate) fn check_priority(
        &self,
        tenant: &str,
        priority: Priority,
    ) -> Result<(), SubmitError> {
        Ok(self.limits.priority(tenant, priority)?)
    }

    /// The checks of a batch of `n` messages as a whole: the tenant has a routing plan, the
    /// backlog waiting for carriers leaves room for it (at most `max_backlog`), and the
    /// tenant's rate and quotas take all `n` (shrink the reservation to what is stored).
    pub(crate) fn open_batch(
        &self,
        tenant: &str,
        n: usize,
        max_backlog: usize,
        now: UnixMs,
    ) -> Result<Reservation, SubmitError> {
        if self.dispatcher.router.load().tenant_id(tenant).is_none() {
            return Err(DispatchError::Route(RouteError::UnknownTenant).into());
        }
        let backlog = self.dispatcher.queued() + self.dispatcher.held();
        if backlog + n > max_backlog {
            return Err(SubmitError::Backlog(backlog));
        }
        self.admit(tenant, u32::try_from(n).unwrap_or(u32::MAX), now)
    }

    /// Takes `n` messages from the tenant's rate and quotas (a batch takes all its recipients
    /// at once and shrinks the reservation to what it stored).
    pub(crate) fn admit(
        &self,
        tenant: &str,
        n: u32,
        now: UnixMs,
    ) -> Result<Reservation, SubmitError> {
        Ok(self.limits.admit(tenant, n, now, Instant::now())?)
    }

    /// Policy, opt-out, route and quote for one message, and its stored form: everything but
    /// the tenant's rate and quota ([`Submitter::admit`]) and the store.
    pub(crate) fn prepare(
        &self,
        draft: Draft,
        id: MessageId,
        now: UnixMs,
        placement: Placement,
    ) -> Result<Prepared, SubmitError> {
        if matches!(draft.content, Content::Voice(_)) && self.calls.is_none() {
            return Err(SubmitError::VoiceUnavailable);
        }
        if matches!(draft.content, Content::Email(_)) && self.mail.is_none() {
            return Err(SubmitError::EmailUnavailable);
        }
        if matches!(draft.content, Content::Chat(_)) && self.chat.is_none() {
            return Err(SubmitError::ChatUnavailable(draft.channel()));
        }
        if draft.origin == Origin::Tenant {
            self.limits.priority(&draft.tenant, draft.priority)?;
        }
        self.limits.policy(
            &draft.tenant,
            draft.channel(),
            draft.country.as_deref(),
            draft.segments(),
        )?;
        if draft.origin == Origin::Tenant {
            // A chat channel's opt-outs are the channel's (`whatsapp:*`), its senders being
            // the platform's accounts, not numbers the person wrote to.
            let channel_sender;
            let sender = match &draft.content {
                Content::Chat(spec) => {
                    channel_sender = crate::domain::channel_sender(spec.channel.channel());
                    channel_sender.as_str()
                }
                _ => draft.from.as_str(),
            };
            self.opt_outs
                .check(&draft.tenant, draft.to.opt_out_key(), sender)?;
        }
        if let (Content::Chat(spec), Some(windows)) = (&draft.content, &self.windows) {
            let needs_window = match spec.channel {
                ChatChannel::Whatsapp => spec.template.is_none(),
                ChatChannel::Messenger => spec.tag.is_none(),
                _ => false,
            };
            if needs_window {
                windows.check(
                    &draft.tenant,
                    spec.channel.channel(),
                    draft.to.opt_out_key(),
                    now,
                )?;
            }
        }
        match (&draft.content, &draft.to) {
            (Content::Sms { preference, .. }, Recipient::Phone(to)) => {
                let job = Job {
                    id,
                    tenant: draft.tenant.clone(),
                    to: *to,
                    from: draft.from.clone(),
                    body: draft.body.clone(),
                    encoding: *preference,
                    priority: draft.priority,
                    scheduled_at: draft.scheduled_at,
                    expires_at: draft.expires_at,
                    sent_segments: Vec::new(),
                    tried: Vec::new(),
                    udh: draft.udh.clone().map(bytes::Bytes::from),
                    data_coding: draft.data_coding,
                };
                let quote = self.quote_sms(&job, draft.segments(), placement)?;
                let message = message(draft, id, now, &quote)?;
                Ok(Prepared {
                    message,
                    quote,
                    hand_over: HandOver::Sms(Arc::new(job)),
                })
            }
            (Content::Voice(spec), Recipient::Phone(to)) => {
                let calls = self.calls.as_ref().ok_or(SubmitError::VoiceUnavailable)?;
                let job = VoiceJob {
                    id,
                    tenant: draft.tenant.to_string(),
                    to: *to,
                    from: draft.from.clone(),
                    body: draft.body.clone(),
                    spec: spec.clone(),
                    priority: draft.priority,
                    expires_at: draft.expires_at,
                };
                let quote = calls.quote(&job)?;
                let message = message(draft, id, now, &quote)?;
                Ok(Prepared {
                    message,
                    quote,
                    hand_over: HandOver::Voice(job),
                })
            }
            (Content::Email(spec), Recipient::Email(to)) => {
                let mail = self.mail.as_ref().ok_or(SubmitError::EmailUnavailable)?;
                let mut job = EmailJob {
                    id,
                    tenant: draft.tenant.to_string(),
                    to: to.clone(),
                    from: Some(draft.from.clone()).filter(|f| !f.is_empty()),
                    body: draft.body.clone(),
                    spec: spec.clone(),
                    priority: draft.priority,
                    expires_at: draft.expires_at,
                    carrier: String::new(),
                };
                let quote = mail.quote(&job)?;
                job.carrier = quote.carrier.clone();
                let message = message(draft, id, now, &quote)?;
                Ok(Prepared {
                    message,
                    quote,
                    hand_over: HandOver::Email(job),
                })
            }
            (Content::Chat(spec), to) => {
                let channel = spec.channel.channel();
                let webhook = spec.channel == crate::domain::ChatChannel::Webhook;
                let to = match to {
                    Recipient::Phone(n) if channel.is_phone() => ChatTo::Phone(*n),
                    Recipient::Url(url) if webhook => ChatTo::Url(url.clone()),
                    Recipient::Account(id) if !channel.is_phone() && !webhook => {
                        ChatTo::Id(id.clone())
                    }
                    _ if channel.is_phone() => {
                        return Err(SubmitError::WrongRecipient(channel, "a phone number"))
                    }
                    _ if webhook => {
                        return Err(SubmitError::WrongRecipient(channel, "an http(s) URL"))
                    }
                    _ => {
                        return Err(SubmitError::WrongRecipient(
                            channel,
                            "the platform's id for the person",
                        ))
                    }
                };
                let chat = self
                    .chat
                    .as_ref()
                    .ok_or(SubmitError::ChatUnavailable(channel))?;
                let mut job = ChatJob {
                    id,
                    tenant: draft.tenant.to_string(),
                    to,
                    body: draft.body.clone(),
                    from: draft.from.clone(),
                    tags: draft.tags.clone(),
                    metadata: draft.metadata.clone(),
                    created_at: now,
                    spec: spec.clone(),
                    priority: draft.priority,
                    expires_at: draft.expires_at,
                    carrier: String::new(),
                    withdrawable: draft.withdrawable,
                };
                let quote = chat.quote(&job)?;
                job.carrier = quote.carrier.clone();
                let message = message(draft, id, now, &quote)?;
                Ok(Prepared {
                    message,
                    quote,
                    hand_over: HandOver::Chat(job),
                })
            }
            (Content::Email(_), _) => Err(SubmitError::WrongRecipient(
                Channel::Email,
                "an email address",
            )),
            (content, _) => Err(SubmitError::WrongRecipient(
                match content {
                    Content::Voice(_) => Channel::Voice,
                    _ => Channel::Sms,
                },
                "a phone number",
            )),
        }
    }

    /// Stores prepared messages in one commit (the first carries `request`: its idempotency
    /// record and batch), keeps `reservation`, then hands each message over, SMS as
    /// `queueing` says.
    pub(crate) async fn commit(
        &self,
        prepared: Vec<Prepared>,
        request: Option<Arc<RequestRecord>>,
        reservation: Reservation,
        queueing: Queueing,
    ) -> Result<(), SubmitError> {
        let mut messages = Vec::with_capacity(prepared.len());
        let mut hand_overs = Vec::with_capacity(prepared.len());
        for (i, p) in prepared.into_iter().enumerate() {
            let mut m = p.message;
            if i == 0 {
                m.request = request.clone();
            }
            messages.push(m);
            hand_overs.push(p.hand_over);
        }
        self.store.insert(messages).await?;
        reservation.keep();
        // Durable now. Queue what fits; the rest waits for room (it is safe in the store).
        let mut full = false;
        for h in hand_overs {
            match h {
                HandOver::Voice(job) => {
                    if let Some(calls) = &self.calls {
                        calls.place(job);
                    }
                }
                HandOver::Email(job) => {
                    if let Some(mail) = &self.mail {
                        mail.place(job);
                    }
                }
                HandOver::Chat(job) => {
                    if let Some(chat) = &self.chat {
                        chat.place(job);
                    }
                }
                // Beyond the queues' room the rest of a bulk accept waits in the store (its
                // order kept), read back as the queues take it.
                HandOver::Sms(job) if full => self.dispatcher.leave_in_store(&job),
                HandOver::Sms(job) if queueing == Queueing::Bulk => full = !self.queue_bulk(job),
                // Admitted one by one, each after a room check: queued even if the queue
                // filled since.
                HandOver::Sms(job) => match self.dispatcher.enqueue_admitted(job.clone()) {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(id = %job.id, "accepted but not queued yet: {e}");
                        let d = self.dispatcher.clone();
                        tokio::spawn(async move { d.enqueue_with_retry(job).await });
                    }
                },
            }
        }
        Ok(())
    }

    /// The whole pipeline for one message: returns its id and quote once it is durable and
    /// handed over. `record` gives the request's records (idempotency) from the id and quote,
    /// before the store write; its errors, like the pipeline's, are the caller's type.
    pub(crate) async fn accept<R, E>(
        &self,
        draft: Draft,
        record: R,
    ) -> Result<(MessageId, Quote), E>
    where
        R: FnOnce(MessageId, &Quote, UnixMs) -> Result<Option<Arc<RequestRecord>>, E>,
        E: From<SubmitError>,
    {
        let now = crate::domain::now_ms();
        let id = MessageId::generate(now);
        let tenant = draft.tenant.clone();
        // Refuse before storing anything, and before taking quota, when no carrier can take it.
        let prepared = self.prepare(draft, id, now, Placement::Now)?;
        let reservation = self.admit(&tenant, 1, now)?;
        let request = record(id, &prepared.quote, now)?;
        let quote = prepared.quote.clone();
        self.commit(vec![prepared], request, reservation, Queueing::Admitted)
            .await?;
        Ok((id, quote))
    }

    /// Cancels `tenant`'s message `id` if it is a scheduled SMS not due yet: the scheduler
    /// drops it and the store records it `cancelled` (API cancel, SMPP cancel_sm).
    pub(crate) async fn cancel(&self, tenant: &str, id: MessageId) -> Result<(), CancelError> {
        use crate::domain::{Status, Update};
        let record = self
            .store
            .get(tenant, id)
            .await?
            .ok_or(CancelError::NotFound)?;
        let cancelled = record.status == Status::Accepted
            && record.message.voice.is_none()
            && record
                .message
                .scheduled_at
                .is_some_and(|at| self.take_scheduled(id, at).is_some());
        if !cancelled {
            return Err(CancelError::NotCancellable(record.status));
        }
        let update = Update::Status {
            id,
            status: Status::Cancelled,
            at: crate::domain::now_ms(),
            detail: Some("cancelled by the tenant".into()),
        };
        // Until this commits, the scheduler remembers the cancellation (and never sends it).
        let applied = self.store.apply(vec![update]).await?;
        self.dispatcher.cancel_committed(id);
        self.tell_moved(&applied);
        match applied.first() {
            Some(crate::domain::Applied::Moved { .. }) => Ok(()),
            // It moved on first (released by the node that holds it).
            _ => Err(CancelError::NotCancellable(record.status)),
        }
    }

    /// Cancels `tenant`'s scheduled SMS that `m` names and that are not due yet, at most
    /// `max` of them, in one commit (SMPP cancel_sm by addresses). Returns how many were
    /// cancelled; 0 when none could be.
    pub(crate) async fn cancel_matching(
        &self,
        tenant: &str,
        m: &CancelMatch,
        max: usize,
    ) -> Result<usize, StoreError> {
        use crate::domain::{ListFilter, Status, Update};
        let mut taken = Vec::new();
        let mut before = None;
        let mut scanned = 0;
        while taken.len() < max && scanned < CANCEL_SCAN {
            let filter = ListFilter {
                status: Some(Status::Accepted),
                to: Some(m.to.clone()),
                before,
                limit: 1000,
                ..ListFilter::default()
            };
            let page = self.store.list(tenant, filter).await?;
            scanned += page.len();
            before = page.last().map(|r| r.message.id);
            for record in page.iter().filter(|r| m.matches(r)) {
                let (id, at) = (record.message.id, record.message.scheduled_at);
                if at.is_some_and(|at| self.take_scheduled(id, at).is_some()) {
                    taken.push(id);
                    if taken.len() == max {
                        break;
                    }
                }
            }
            if page.len() < 1000 {
                break;
            }
        }
        if taken.is_empty() {
            return Ok(0);
        }
        let at = crate::domain::now_ms();
        let updates = taken
            .iter()
            .map(|&id| Update::Status {
                id,
                status: Status::Cancelled,
                at,
                detail: Some("cancelled by the tenant".into()),
            })
            .collect();
        // Until this commits, the scheduler remembers the cancellations (and never sends them).
        let applied = self.store.apply(updates).await?;
        for &id in &taken {
            self.dispatcher.cancel_committed(id);
        }
        self.tell_moved(&applied);
        Ok(applied
            .iter()
            .filter(|a| matches!(a, crate::domain::Applied::Moved { .. }))
            .count())
    }

    /// Replaces the content of `tenant`'s message `id` if it is a scheduled SMS (not a part)
    /// not due yet: `make` builds the new content from the stored message (its encoding, its
    /// addresses); the tenant's plan checks it; the scheduler releases the new content at its
    /// time, never the old. The price quoted at acceptance stays.
    pub(crate) async fn replace<E>(
        &self,
        tenant: &str,
        id: MessageId,
        make: impl FnOnce(&crate::domain::MessageRecord) -> Result<ReplaceWith, E>,
    ) -> Result<(), ReplaceError<E>> {
        use crate::domain::{Replacement, Status, Update};
        let record = match self.store.get(tenant, id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(ReplaceError::NotFound),
            Err(e) => return Err(ReplaceError::Store(e)),
        };
        let m = &record.message;
        let not_replaceable = || ReplaceError::NotReplaceable(record.status);
        let scheduled = match m.scheduled_at {
            Some(at)
                if record.status == Status::Accepted && m.voice.is_none() && m.udh.is_none() =>
            {
                at
            }
            _ => return Err(not_replaceable()),
        };
        let with = make(&record).map_err(ReplaceError::Invalid)?;
        self.limits
            .policy(tenant, Channel::Sms, m.country.as_deref(), with.segments)
            .map_err(ReplaceError::Refused)?;
        let (Some(mut job), Some(old)) = (Job::from_record(&record), Job::from_record(&record))
        else {
            return Err(not_replaceable());
        };
        let Some(held_here) = self.take_scheduled(id, scheduled) else {
            return Err(not_replaceable());
        };
        let old = Arc::new(old);
        job.body = with.body.clone();
        job.scheduled_at = with.scheduled_at;
        job.expires_at = with.expires_at;
        let update = Update::Replace(Box::new(Replacement {
            id,
            body: with.body,
            segments: with.segments,
            scheduled_at: with.scheduled_at,
            expires_at: with.expires_at,
            smpp: with.smpp,
            at: crate::domain::now_ms(),
        }));
        // Held by another node (a shared store): that node reads the replacement when the
        // old time comes, and sends it then or holds it until its new, later time.
        let here = |job: Arc<Job>| {
            if held_here {
                self.dispatcher.replace_committed(job);
            }
        };
        match self.store.apply(vec![update]).await {
            Ok(applied)
                if matches!(
                    applied.first(),
                    Some(crate::domain::Applied::UnknownMessage(_))
                ) =>
            {
                // It moved on first (released by the node that holds it).
                here(old);
                Err(not_replaceable())
            }
            Ok(_) => {
                here(Arc::new(job));
                Ok(())
            }
            Err(e) => {
                // Not replaced: the old content goes back to its time.
                here(old);
                Err(ReplaceError::Store(e))
            }
        }
    }

    /// The SMS carrier for `job` and the tenant's price for its segments there.
    fn quote_sms(
        &self,
        job: &Job,
        segments: u16,
        placement: Placement,
    ) -> Result<Quote, SubmitError> {
        if placement == Placement::Later {
            let (carrier, price) = self.route_later(
                &job.tenant,
                &job.to,
                job.priority,
                job.salt(),
                segments,
                str::to_owned,
            )?;
            return Ok(Quote {
                carrier,
                price: Some(price),
            });
        }
        let table = self.dispatcher.router.load();
        let tenant = table
            .tenant_id(&job.tenant)
            .ok_or(DispatchError::Route(RouteError::UnknownTenant))?;
        let currency = table.config().base_currency;
        let req = RouteRequest {
            channel: Channel::Sms,
            number: &job.to,
            tenant,
            priority: job.priority,
            salt: job.salt(),
            now: Instant::now(),
        };
        let carrier = self.dispatcher.quote(job, job.salt())?;
        let price = price_on(&self.dispatcher.router, &req, &carrier, segments);
        Ok(Quote {
            carrier,
            price: price.map(|amount| Money { amount, currency }),
        })
    }
}

impl Submitter {
    /// The best SMS carrier for a message to `to` by route, room or not ([`Placement::Later`]),
    /// given to `name` as the routing table names it, and the tenant's price for `segments`
    /// segments there.
    fn route_later<T>(
        &self,
        tenant: &str,
        to: &E164,
        priority: Priority,
        salt: u64,
        segments: u16,
        name: impl FnOnce(&str) -> T,
    ) -> Result<(T, Money), SubmitError> {
        let table = self.dispatcher.router.load();
        let tenant = table
            .tenant_id(tenant)
            .ok_or(DispatchError::Route(RouteError::UnknownTenant))?;
        let currency = table.config().base_currency;
        let mut buf = RouteBuf::new();
        let req = RouteRequest {
            channel: Channel::Sms,
            number: to,
            tenant,
            priority,
            salt,
            now: Instant::now(),
        };
        let ranked = table.route(&req, &mut buf).map_err(DispatchError::Route)?;
        let (carrier, per_segment) = ranked
            .first()
            .and_then(|c| Some((table.carrier(c.carrier)?.name.as_str(), c.price)))
            .ok_or(DispatchError::Route(RouteError::NoRoute(Channel::Sms)))?;
        Ok((
            name(carrier),
            Money {
                amount: total(per_segment, segments),
                currency,
            },
        ))
    }

    /// [`Submitter::prepare`] for one SMS of a tenant's batch: the same checks (the tenant's
    /// policy for its country and segments, the opt-out list) and route ([`Placement::Later`]),
    /// giving its [`BatchRow`] (its carrier named in `carriers`, added there when new). The
    /// priority, the same for every message of the batch, is checked once for all
    /// ([`Submitter::check_priority`]); nothing but the row is built: the message is stored as
    /// part of its [`NewBatch`], and its job made once it is durable
    /// ([`Submitter::commit_batch`]).
    pub(crate) fn prepare_batch_sms(
        &self,
        shared: &BatchSms<'_>,
        recipient: BatchSmsTo,
        id: MessageId,
        carriers: &mut Vec<String>,
    ) -> Result<BatchRow, SubmitError> {
        let BatchSmsTo {
            to,
            country,
            body,
            encoding,
            segments,
        } = recipient;
        self.limits
            .policy(shared.tenant, Channel::Sms, country.as_deref(), segments)?;
        self.opt_outs
            .check(shared.tenant, to.as_str(), shared.from)?;
        let salt = crate::dispatch::salt(id, &to, shared.udh);
        let (carrier, price) = self.route_later(
            shared.tenant,
            &to,
            shared.priority,
            salt,
            segments,
            |name| match carriers.iter().position(|c| c == name) {
                Some(i) => i,
                None => {
                    carriers.push(name.to_owned());
                    carriers.len() - 1
                }
            },
        )?;
        Ok(BatchRow {
            id,
            to,
            country,
            body,
            encoding,
            segments,
            carrier: u16::try_from(carrier).unwrap_or(u16::MAX),
            price: Some(price),
        })
    }

    /// Stores a batch's messages in one commit (`batch.common.request` carries the request's
    /// records), keeps `reservation`, then hands each message over as [`Queueing::Bulk`] does:
    /// queued while the queues have room, the rest left in the store (only its id held).
    /// Each job is built only as it is queued.
    pub(crate) async fn commit_batch(
        &self,
        batch: Arc<NewBatch>,
        tenant: &Arc<str>,
        preference: EncodingPreference,
        reservation: Reservation,
    ) -> Result<(), SubmitError> {
        self.store.insert_batch(batch.clone()).await?;
        reservation.keep();
        // Durable now. Queue what fits; the rest waits for room (it is safe in the store).
        let c = &batch.common;
        let udh = c.udh.clone().map(bytes::Bytes::from);
        let mut full = false;
        for row in &batch.rows {
            if full {
                self.dispatcher.leave_id_in_store(tenant, row.id);
                continue;
            }
            let job = Arc::new(Job {
                id: row.id,
                tenant: tenant.clone(),
                to: row.to,
                from: c.from.clone(),
                body: batch.body(row).to_owned(),
                encoding: preference,
                priority: c.priority,
                scheduled_at: c.scheduled_at,
                expires_at: c.expires_at,
                sent_segments: Vec::new(),
                tried: Vec::new(),
                udh: udh.clone(),
                data_coding: c.data_coding,
            });
            full = !self.queue_bulk(job);
        }
        Ok(())
    }

    /// Queues durable `job` of a bulk accept. False when the queues had no room: the job is
    /// left in the store (only its id held), and so must the rest of the accept be, in order.
    fn queue_bulk(&self, job: Arc<Job>) -> bool {
        match self.dispatcher.enqueue(job.clone()) {
            Ok(_) => true,
            Err(e) if e.is_retryable() => {
                self.dispatcher.leave_in_store(&job);
                false
            }
            Err(e) => {
                tracing::warn!(id = %job.id, "accepted but not queued yet: {e}");
                let d = self.dispatcher.clone();
                tokio::spawn(async move { d.enqueue_with_retry(job).await });
                true
            }
        }
    }
}

/// What every SMS of a batch shares, for [`Submitter::prepare_batch_sms`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchSms<'a> {
    /// The tenant sending them.
    pub(crate) tenant: &'a str,
    /// Their sender (opt-out lists name it).
    pub(crate) from: &'a str,
    /// Their priority (routing weights).
    pub(crate) priority: Priority,
    /// Their user data header (a binary body's may tie routing to its concatenation reference).
    pub(crate) udh: Option<&'a [u8]>,
}

/// One recipient's SMS of a batch, checked and counted, for [`Submitter::prepare_batch_sms`].
#[derive(Debug)]
pub(crate) struct BatchSmsTo {
    /// The number.
    pub(crate) to: E164,
    /// Its country, when known.
    pub(crate) country: Option<Box<str>>,
    /// The recipient's own text; `None`: the batch's.
    pub(crate) body: Option<Box<str>>,
    /// The encoding the text takes.
    pub(crate) encoding: Encoding,
    /// The segments it needs.
    pub(crate) segments: u16,
}

/// The tenant's price for a message of `segments` segments at `per_segment`, exactly.
fn total(per_segment: Price, segments: u16) -> Price {
    per_segment.mul_int(u64::from(segments))
}

/// The tenant's price for `segments` segments on `carrier`, as the router ranks it now.
fn price_on(
    router: &Router,
    req: &RouteRequest<'_>,
    carrier: &str,
    segments: u16,
) -> Option<Price> {
    let table = router.load();
    let mut buf = RouteBuf::new();
    let ranked = table.route(req, &mut buf).ok()?;
    let id = table.carrier_id(carrier)?;
    let r = ranked.iter().find(|r| r.carrier == id)?;
    Some(total(r.price, segments))
}

/// The stored form of a message: the only place a [`NewMessage`] is built for an accepted
/// message.
fn message(
    draft: Draft,
    id: MessageId,
    now: UnixMs,
    quote: &Quote,
) -> Result<NewMessage, SubmitError> {
    let (encoding, segments) = match draft.content {
        Content::Sms {
            encoding, segments, ..
        } => (Some(encoding), segments),
        _ => (None, 1),
    };
    let (voice, email, chat) = match draft.content {
        Content::Voice(spec) => (Some(spec), None, None),
        Content::Email(spec) => (None, Some(spec), None),
        Content::Chat(spec) => (None, None, Some(spec)),
        Content::Sms { .. } => (None, None, None),
    };
    Ok(NewMessage {
        id,
        tenant: draft.tenant.to_string(),
        to: draft.to.stored(),
        country: draft.country,
        from: draft.from,
        body: draft.body,
        encoding,
        segments,
        priority: draft.priority,
        scheduled_at: draft.scheduled_at,
        expires_at: draft.expires_at,
        callback_url: draft.callback_url,
        tags: draft.tags,
        metadata: draft.metadata,
        carrier: Some(quote.carrier.clone()),
        price: quote.price,
        created_at: now,
        batch_id: draft.batch_id,
        voice,
        email,
        chat,
        flow: draft.flow,
        request: None,
        smpp: draft.smpp,
        udh: draft.udh,
        data_coding: draft.data_coding,
    })
}

#[cfg(test)]
mod tests {
    use switchyard_routing::Price;

    #[test]
    fn a_cancel_by_addresses_names_scheduled_sms_between_them() {
        use crate::domain::{MessageRecord, SmppOrigin, Status};
        let mut m = crate::store::suite::fixtures::message("acme", 1, 1);
        m.from = "+447700900001".into();
        m.to = "+447911123456".into();
        m.scheduled_at = Some(m.created_at + 3_600_000);
        m.smpp = Some(SmppOrigin {
            system_id: "acme01".into(),
            receipt: 1,
            reported_id: None,
            service_type: Some("WAP".into()),
        });
        let record = |m: &crate::domain::NewMessage, status| MessageRecord {
            message: m.clone(),
            status,
            updated_at: m.created_at,
            segment_states: Vec::new(),
            history: Vec::new(),
            call: None,
        };
        let named = super::CancelMatch {
            system_id: "acme01".into(),
            from: "+447700900001".into(),
            to: "+447911123456".into(),
            service_type: None,
        };
        assert!(named.matches(&record(&m, Status::Accepted)));
        assert!(!named.matches(&record(&m, Status::Queued)), "on its way");
        let wap = super::CancelMatch {
            service_type: Some("WAP".into()),
            ..named.clone()
        };
        let cmt = super::CancelMatch {
            service_type: Some("CMT".into()),
            ..named.clone()
        };
        assert!(wap.matches(&record(&m, Status::Accepted)));
        assert!(!cmt.matches(&record(&m, Status::Accepted)));
        let other = super::CancelMatch {
            from: "Acme".into(),
            ..named.clone()
        };
        assert!(!other.matches(&record(&m, Status::Accepted)));
        let another_user = super::CancelMatch {
            system_id: "acme02".into(),
            ..named.clone()
        };
        assert!(!another_user.matches(&record(&m, Status::Accepted)));
        let from_the_api = crate::domain::NewMessage {
            smpp: None,
            ..m.clone()
        };
        assert!(!named.matches(&record(&from_the_api, Status::Accepted)));
        let now = crate::domain::NewMessage {
            scheduled_at: None,
            ..m.clone()
        };
        assert!(
            !named.matches(&record(&now, Status::Accepted)),
            "not scheduled"
        );
    }

    #[test]
    fn prices_multiply_exactly() {
        let p = |s| Price::parse(s).unwrap();
        assert_eq!(super::total(p("0.0079"), 3).to_string(), "0.0237");
        assert_eq!(super::total(p("2"), 3).to_string(), "6.0000");
        assert_eq!(super::total(p("0.5"), 3).to_string(), "1.5000");
        assert_eq!(super::total(p("0.000001"), 7).to_string(), "0.000007");
    }
}
