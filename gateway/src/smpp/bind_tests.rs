//! One bind driven over an in-process pipe, in tokio's paused clock: the test plays the
//! carrier's SMSC with the protocols crate's SMSC session on the other end of a
//! `tokio::io::duplex`, and watches what the bind sends, what it writes to the update sink (a
//! store that hands every update to the test) and what it hands back to the carrier queue.
//!
//! The routing table is empty: outcomes are recorded nowhere, and a message that fails over
//! finds no other carrier, so it fails (`Update::Status` failed).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use switchyard_ops::config::QueueSettings;
use switchyard_protocols::dlr::{format_text_receipt, receipt_tlvs, Receipt, ReceiptState};
use switchyard_protocols::smpp::codec::SmppCodec;
use switchyard_protocols::smpp::pdu::{
    Address, Bind, Body, CommandId, DataSm, MessageIdResp, Pdu, SubmitSm,
};
use switchyard_protocols::smpp::session::{BindType, CloseReason, Event, Session, SessionConfig};
use switchyard_protocols::smpp::tlv::{tag, Tlv, Tlvs};
use switchyard_protocols::smpp::CommandStatus;
use switchyard_protocols::text::ReassemblyConfig;
use switchyard_routing::{Currency, Priority, Router, RoutingConfig, RoutingTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder};

use super::bind::{serve_connection, BindContext, BindStatus};
use super::mo::MoParts;
use super::{supervisor, BindSettings, LongMessages};
use crate::admission::optout::OptOuts;
use crate::dispatch::{CarrierQueue, Dispatcher, Job};
use crate::domain::{
    now_ms, Applied, BatchSummary, CallFilter, CallRecord, Directory, HeldPart, IdempotencyRecord,
    InboundMessage, ListFilter, MessageId, MessageRecord, NewMessage, Status, UnixMs, Update,
};
use crate::inbound::Inbound;
use crate::store::{Store, StoreError};
use crate::updates::{UpdateSink, UpdateTask};

const CARRIER: &str = "acme-mobile";
/// A number the directory gives to tenant `acme`.
const TENANT_NUMBER: &str = "447000000001";
/// A mobile sending MO messages.
const MOBILE: &str = "447911000001";
/// Longest a test waits for something it expects (virtual time: costs nothing when it comes).
const PATIENCE: Duration = Duration::from_secs(300);

/// The runtime's clock as the session takes it (virtual under the paused clock).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

// ---- the store -----------------------------------------------------------------------------

/// A store that only applies updates: each one goes to the test as the commit starts. Commits
/// succeed, fail when `fail` is set, and wait for a permit of `commits` (plenty unless a test
/// holds them back).
struct FakeStore {
    /// Every update applied, in order.
    applied: mpsc::UnboundedSender<Update>,
    /// Makes every commit fail (not retryable).
    fail: AtomicBool,
    /// One permit per commit; a test that takes them all holds commits back.
    commits: Semaphore,
}

fn not_used<T: Send + 'static>() -> BoxFuture<'static, Result<T, StoreError>> {
    Box::pin(async { Err(StoreError::Internal("not used by a bind".into())) })
}

impl Store for FakeStore {
    fn insert(&self, _: Vec<NewMessage>) -> BoxFuture<'_, Result<(), StoreError>> {
        not_used()
    }

    fn apply(&self, updates: Vec<Update>) -> BoxFuture<'_, Result<Vec<Applied>, StoreError>> {
        Box::pin(async move {
            let n = updates.len();
            for u in updates {
                let _ = self.applied.send(u);
            }
            if let Ok(permit) = self.commits.acquire().await {
                permit.forget();
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Internal("refused by the test".into()));
            }
            Ok(vec![Applied::NoChange; n])
        })
    }

    fn get(
        &self,
        _: &str,
        _: MessageId,
    ) -> BoxFuture<'_, Result<Option<MessageRecord>, StoreError>> {
        not_used()
    }

    fn list(
        &self,
        _: &str,
        _: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        not_used()
    }

    fn unfinished(&self) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        not_used()
    }

    fn unfinished_page(
        &self,
        _: Option<MessageId>,
        _: MessageId,
        _: usize,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        not_used()
    }

    fn scheduled(
        &self,
        _: (UnixMs, MessageId),
        _: usize,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        not_used()
    }

    fn still_accepted(
        &self,
        _: Vec<MessageId>,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        not_used()
    }

    fn max_id(&self) -> BoxFuture<'_, Result<Option<MessageId>, StoreError>> {
        not_used()
    }

    fn unmatched_receipts(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        not_used()
    }

    fn held_mo_parts(&self) -> BoxFuture<'_, Result<Vec<(String, HeldPart)>, StoreError>> {
        not_used()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        not_used()
    }

    fn accepted_since(&self, _: &str, _: UnixMs) -> BoxFuture<'_, Result<u64, StoreError>> {
        not_used()
    }

    fn idempotency(
        &self,
        _: &str,
        _: &str,
    ) -> BoxFuture<'_, Result<Option<IdempotencyRecord>, StoreError>> {
        not_used()
    }

    fn batch(&self, _: &str, _: &str) -> BoxFuture<'_, Result<Option<BatchSummary>, StoreError>> {
        not_used()
    }

    fn calls(&self, _: &str, _: CallFilter) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>> {
        not_used()
    }

    fn message_rollups(
        &self,
        _: crate::domain::analytics::RollupQuery,
    ) -> BoxFuture<
        '_,
        Result<
            crate::domain::analytics::Grouped<crate::domain::analytics::MessageTotals>,
            StoreError,
        >,
    > {
        not_used()
    }

    fn call_rollups(
        &self,
        _: crate::domain::analytics::RollupQuery,
    ) -> BoxFuture<
        '_,
        Result<crate::domain::analytics::Grouped<crate::domain::analytics::CallTotals>, StoreError>,
    > {
        not_used()
    }

    fn contacts_by_id(
        &self,
        _: &str,
        _: Vec<crate::domain::ContactId>,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::Contact>, StoreError>> {
        not_used()
    }

    fn contacts(
        &self,
        _: &str,
        _: crate::domain::ContactFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::Contact>, StoreError>> {
        not_used()
    }

    fn dashboard_session(
        &self,
        _: crate::domain::Sha256Hash,
    ) -> BoxFuture<'_, Result<Option<crate::domain::DashboardSession>, StoreError>> {
        not_used()
    }

    fn flow(
        &self,
        _: &str,
        _: MessageId,
    ) -> BoxFuture<'_, Result<Option<crate::domain::FlowRecord>, StoreError>> {
        not_used()
    }

    fn running_flows(&self) -> BoxFuture<'_, Result<Vec<crate::domain::FlowRecord>, StoreError>> {
        not_used()
    }
    fn recipient_history(
        &self,
        _: &str,
        _: Vec<String>,
        _: UnixMs,
        _: u32,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::PastMessage>, StoreError>> {
        not_used()
    }
}

// ---- the SMSC ------------------------------------------------------------------------------

/// The carrier's end of the pipe: an SMSC session, driven only while the test waits on it.
struct Smsc {
    session: Session,
    codec: SmppCodec,
    rd: ReadHalf<DuplexStream>,
    wr: WriteHalf<DuplexStream>,
    rbuf: BytesMut,
    /// Every PDU the bind sent, in order, until a test takes them.
    pdus: VecDeque<Pdu>,
    /// The session's events, in order, until a test takes them.
    events: VecDeque<Event>,
    /// The bind has closed its end.
    eof: bool,
}

impl Smsc {
    fn new(stream: DuplexStream) -> Self {
        let mut config = SessionConfig::smsc("smsc");
        // Keep-alive is the bind's business in these tests.
        config.enquire_link_interval = None;
        config.bind_timeout = PATIENCE;
        let (rd, wr) = tokio::io::split(stream);
        Smsc {
            session: Session::new(config, now()),
            codec: SmppCodec::new(),
            rd,
            wr,
            rbuf: BytesMut::new(),
            pdus: VecDeque::new(),
            events: VecDeque::new(),
            eof: false,
        }
    }

    /// Writes what the session has to send (ignoring a closed pipe: the bind may be gone).
    async fn flush(&mut self) {
        let mut buf = BytesMut::new();
        while let Some(pdu) = self.session.poll_transmit() {
            self.codec.encode(&pdu, &mut buf).unwrap();
        }
        if !buf.is_empty() {
            let _ = self.wr.write_all(&buf).await;
        }
    }

    /// Writes raw bytes, as a sloppy SMSC would.
    async fn send_raw(&mut self, bytes: &[u8]) {
        self.flush().await;
        self.wr.write_all(bytes).await.unwrap();
    }

    /// Waits for the next input: bytes from the bind (logged, then given to the session) or
    /// the session's next timer. False once the bind has closed its end.
    async fn step(&mut self) -> bool {
        self.flush().await;
        if self.eof {
            return false;
        }
        let wake = self.session.poll_timeout();
        let timer = async move {
            match wake {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = self.rd.read_buf(&mut self.rbuf) => match read {
                Ok(0) | Err(_) => {
                    self.eof = true;
                    self.session.connection_lost(now());
                }
                Ok(_) => loop {
                    match self.codec.decode(&mut self.rbuf) {
                        Ok(Some(Ok(pdu))) => {
                            self.pdus.push_back(pdu.clone());
                            self.session.handle_pdu(pdu, now());
                        }
                        Ok(Some(Err(bad))) => panic!("the bind sent a malformed PDU: {bad}"),
                        Ok(None) => break,
                        Err(e) => panic!("the bind broke the framing: {e}"),
                    }
                },
            },
            _ = timer => self.session.handle_timeout(now()),
        }
        while let Some(e) = self.session.poll_event() {
            self.events.push_back(e);
        }
        self.flush().await;
        !self.eof
    }

    /// Steps until `take` finds what it looks for (at most [`PATIENCE`] of virtual time).
    async fn until<T>(&mut self, what: &str, mut take: impl FnMut(&mut Smsc) -> Option<T>) -> T {
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(t) = take(self) {
                    return t;
                }
                if !self.step().await {
                    return take(self)
                        .unwrap_or_else(|| panic!("the bind closed the connection before {what}"));
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
    }

    /// Runs for `d` of virtual time, answering what the session answers by itself.
    async fn idle(&mut self, d: Duration) {
        let _ = tokio::time::timeout(d, async { while self.step().await {} }).await;
    }

    /// The next PDU the bind sent.
    async fn next_pdu(&mut self) -> Pdu {
        self.until("PDU", |s| s.pdus.pop_front()).await
    }

    /// The next event of the SMSC session.
    async fn next_event(&mut self) -> Event {
        self.until("event", |s| s.events.pop_front()).await
    }

    /// Waits for the bind request and accepts it.
    async fn accept_bind(&mut self) -> (BindType, Bind) {
        let (bind_type, bind) = match self.next_event().await {
            Event::BindRequest { bind_type, bind } => (bind_type, bind),
            other => panic!("expected a bind, got {other:?}"),
        };
        self.session.accept_bind(now()).unwrap();
        assert!(matches!(
            self.session.poll_event(),
            Some(Event::Bound { .. })
        ));
        self.flush().await;
        (bind_type, bind)
    }

    /// The next submit_sm, with its sequence number.
    async fn submit(&mut self) -> (u32, SubmitSm) {
        match self.next_event().await {
            Event::Request {
                sequence_number,
                body: Body::SubmitSm(sm),
            } => (sequence_number, sm),
            other => panic!("expected a submit_sm, got {other:?}"),
        }
    }

    /// Answers submit_sm `seq`.
    async fn answer(&mut self, seq: u32, status: CommandStatus, message_id: &str) {
        let resp = Body::SubmitSmResp(MessageIdResp {
            message_id: message_id.to_owned().into(),
        });
        self.session.respond(seq, status, resp, now()).unwrap();
        self.flush().await;
    }

    /// Sends a deliver_sm; returns its sequence number.
    async fn deliver(&mut self, sm: SubmitSm) -> u32 {
        let seq = self
            .session
            .send_request(Body::DeliverSm(sm), now())
            .unwrap();
        self.flush().await;
        seq
    }

    /// The response to our deliver_sm `seq`.
    async fn deliver_resp(&mut self, seq: u32) -> CommandStatus {
        match self.next_event().await {
            Event::Response {
                sequence_number,
                command_id: CommandId::DELIVER_SM,
                status,
                body: Body::DeliverSmResp(_),
            } if sequence_number == seq => status,
            other => panic!("expected the deliver_sm_resp of {seq}, got {other:?}"),
        }
    }
}

// ---- the gateway side ----------------------------------------------------------------------

/// One bind under test, its SMSC and what the test watches.
struct Harness {
    smsc: Smsc,
    /// Updates as the store receives them.
    updates: mpsc::UnboundedReceiver<Update>,
    /// To hold commits back or make them fail.
    store: Arc<FakeStore>,
    /// The carrier's queue: jobs go in here, and come back here when the bind drops.
    queue: Arc<CarrierQueue>,
    /// What the bind reports about itself.
    status: Arc<BindStatus>,
    /// Flip to true to drain and stop the bind.
    shutdown: watch::Sender<bool>,
    /// The bind; its output says whether it ever bound.
    bind: JoinHandle<bool>,
    /// Kept so the update sink stays open.
    _update_task: UpdateTask,
}

/// Settings the tests start from: the built-in sandbox carrier's, renamed, with recognisable
/// credentials, a window of 10 and the timers and limits the tests count on spelled out.
fn settings() -> BindSettings {
    let config = switchyard_ops::config::Config::embedded_default();
    let carrier = &config.carriers[0];
    let smpp = carrier.smpp.as_ref().unwrap();
    let somewhere = Some("127.0.0.1:2775".parse().unwrap());
    let mut s = supervisor::bind_settings(carrier, smpp, somewhere, std::path::Path::new("."))
        .unwrap()
        .unwrap();
    s.carrier = CARRIER.into();
    s.mo_parts = Arc::new(MoParts::new(CARRIER, ReassemblyConfig::default()));
    s.system_id = "esme_acme".into();
    s.password = "pw123".into();
    s.system_type = "gw".into();
    s.bind_type = BindType::Transceiver;
    s.window = 10;
    s.tps = None;
    s.enquire_link = Duration::from_secs(30);
    s.response_timeout = Duration::from_secs(10);
    s.max_retries = 2;
    s.registered_delivery = 1;
    s.long_messages = LongMessages::Udh8;
    (s.source_ton, s.source_npi, s.dest_ton, s.dest_npi) = (1, 1, 1, 1);
    s
}

fn inbound() -> Inbound {
    let mut d = Directory::default();
    d.numbers.insert(TENANT_NUMBER.into(), "acme".into());
    Inbound {
        directory: Arc::new(arc_swap::ArcSwap::from_pointee(d)),
        opt_outs: Arc::new(OptOuts::load(Vec::new())),
        replies: None,
    }
}

/// Starts a bind with `settings` over a fresh pipe, with a drain timeout of 5 s (not bound yet:
/// the SMSC has the bind request to answer).
fn start(settings: BindSettings) -> Harness {
    start_with(settings, Duration::from_secs(5))
}

fn start_with(settings: BindSettings, drain_timeout: Duration) -> Harness {
    let (applied, updates) = mpsc::unbounded_channel();
    let store = Arc::new(FakeStore {
        applied,
        fail: AtomicBool::new(false),
        commits: Semaphore::new(Semaphore::MAX_PERMITS),
    });
    let (sink, update_task) = UpdateSink::start(store.clone(), 1024, None);
    let routing = RoutingConfig::new(Currency::parse("EUR").unwrap());
    let table = RoutingTable::build(Arc::new(routing), 0, Instant::now(), None).unwrap();
    let dispatcher = Arc::new(Dispatcher::new(
        Arc::new(Router::new(table)),
        &[CARRIER.to_owned()],
        &QueueSettings::default(),
        sink.clone(),
    ));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let ctx = BindContext {
        dispatcher: dispatcher.clone(),
        updates: sink,
        shutdown: shutdown_rx,
        drain_timeout,
        inbound: inbound(),
        mo_reassembly: ReassemblyConfig::default(),
        shared_store: None,
    };
    let queue = dispatcher.queue(CARRIER);
    let status = Arc::new(BindStatus::default());
    let (esme_end, smsc_end) = tokio::io::duplex(1 << 20);
    let bind = tokio::spawn({
        let (queue, status) = (queue.clone(), status.clone());
        async move {
            let (rd, wr) = tokio::io::split(esme_end);
            serve_connection(&settings, &ctx, &queue, &status, rd, wr).await
        }
    });
    Harness {
        smsc: Smsc::new(smsc_end),
        updates,
        store,
        queue,
        status,
        shutdown,
        bind,
        _update_task: update_task,
    }
}

/// Starts a bind with `settings` and accepts its bind.
async fn bound(settings: BindSettings) -> Harness {
    let mut h = start(settings);
    h.smsc.accept_bind().await;
    h.smsc.pdus.clear();
    h
}

impl Harness {
    /// Queues `job` on the carrier's queue.
    fn queue(&self, job: &Arc<Job>) {
        self.queue.push(job.clone(), 1).unwrap();
    }

    /// The next update the store receives.
    async fn update(&mut self) -> Update {
        tokio::time::timeout(PATIENCE, self.updates.recv())
            .await
            .expect("an update")
            .expect("the sink is open")
    }

    /// Asserts that the store received nothing more (so far).
    fn no_more_updates(&mut self) {
        if let Ok(u) = self.updates.try_recv() {
            panic!("unexpected update {u:?}");
        }
    }

    /// Waits for the bind to end; returns whether it ever bound.
    async fn ended(&mut self) -> bool {
        tokio::time::timeout(PATIENCE, &mut self.bind)
            .await
            .expect("the bind ends")
            .unwrap()
    }
}

/// A one-segment SMS to +447700900123 from "Switchyard".
fn job() -> Arc<Job> {
    Arc::new(Job::new_for_test(
        MessageId::generate(now_ms()),
        Priority::Normal,
    ))
}

fn job_with_body(body: &str) -> Arc<Job> {
    let mut j = Job::new_for_test(MessageId::generate(now_ms()), Priority::Normal);
    j.body = body.into();
    Arc::new(j)
}

/// A delivery receipt for `carrier_id` in the text and TLV forms.
fn receipt(carrier_id: &str, state: ReceiptState) -> SubmitSm {
    let mut r = Receipt::new(carrier_id, state);
    r.submitted = Some(1);
    r.delivered = Some(u32::from(state == ReceiptState::Delivered));
    SubmitSm {
        source: Address::international("447700900123"),
        dest: Address::alphanumeric("Switchyard"),
        esm_class: SubmitSm::ESM_CLASS_RECEIPT,
        short_message: Bytes::from(format_text_receipt(&r)),
        tlvs: receipt_tlvs(&r),
        ..SubmitSm::default()
    }
}

/// An MO text from [`MOBILE`] to [`TENANT_NUMBER`].
fn mo(short_message: &[u8], esm_class: u8) -> SubmitSm {
    SubmitSm {
        source: Address::international(MOBILE),
        dest: Address::international(TENANT_NUMBER),
        esm_class,
        short_message: Bytes::copy_from_slice(short_message),
        ..SubmitSm::default()
    }
}

fn sent(u: Update) -> (MessageId, u16, String) {
    match u {
        Update::SegmentSent {
            id,
            index,
            carrier,
            carrier_message_id,
            ..
        } => {
            assert_eq!(carrier, CARRIER);
            (id, index, carrier_message_id)
        }
        other => panic!("expected SegmentSent, got {other:?}"),
    }
}

fn inbound_message(u: Update) -> InboundMessage {
    match u {
        Update::Inbound(m) => m,
        other => panic!("expected Inbound, got {other:?}"),
    }
}

/// Asserts that `got` is `want`, give or take the timer wheel's millisecond ticks.
#[track_caller]
fn assert_near(got: Duration, want: Duration) {
    assert!(
        got >= want && got < want + Duration::from_millis(20),
        "{got:?}, expected {want:?}"
    );
}

/// How long after `since` the next submit_sm came (virtual time), with it.
async fn next_submit_after(
    smsc: &mut Smsc,
    since: tokio::time::Instant,
) -> (Duration, u32, SubmitSm) {
    let (seq, sm) = smsc.submit().await;
    (tokio::time::Instant::now() - since, seq, sm)
}

// ---- bind ----------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn binds_as_transceiver_with_the_configured_credentials() {
    let mut h = start(settings());
    let (bind_type, bind) = h.smsc.accept_bind().await;
    assert_eq!(bind_type, BindType::Transceiver);
    assert_eq!(bind.system_id.as_bytes(), b"esme_acme");
    assert_eq!(bind.password.as_bytes(), b"pw123");
    assert_eq!(bind.system_type.as_bytes(), b"gw");
    assert_eq!(bind.interface_version, 0x34);
    // Once the bind_resp is read, the bind reports itself bound.
    h.smsc.idle(Duration::from_millis(10)).await;
    assert!(h.status.bound.load(Ordering::Relaxed));
    assert_eq!(h.status.binds.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn the_bind_type_follows_the_settings() {
    let mut s = settings();
    s.bind_type = BindType::Transmitter;
    let mut h = start(s);
    let (bind_type, _) = h.smsc.accept_bind().await;
    assert_eq!(bind_type, BindType::Transmitter);
}

#[tokio::test(start_paused = true)]
async fn a_refused_bind_ends_the_connection_unbound() {
    let mut h = start(settings());
    assert!(matches!(
        h.smsc.next_event().await,
        Event::BindRequest { .. }
    ));
    h.smsc
        .session
        .reject_bind(CommandStatus::ESME_RINVPASWD, now())
        .unwrap();
    h.smsc.flush().await;
    assert!(!h.ended().await, "never bound");
    assert!(!h.status.bound.load(Ordering::Relaxed));
    assert_eq!(h.status.binds.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_bind_without_answer_times_out() {
    let mut h = start(settings());
    let at = tokio::time::Instant::now();
    assert!(!h.ended().await, "never bound");
    // The session's bind timeout (10 s).
    assert_near(tokio::time::Instant::now() - at, Duration::from_secs(10));
    assert!(!h.status.bound.load(Ordering::Relaxed));
}

#[tokio::test(start_paused = true)]
async fn nothing_is_submitted_before_the_bind_is_accepted() {
    let mut h = start(settings());
    h.queue(&job());
    assert!(matches!(
        h.smsc.next_event().await,
        Event::BindRequest { .. }
    ));
    // The SMSC keeps the bind waiting: only the bind request has come.
    h.smsc.idle(Duration::from_secs(5)).await;
    assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
    h.smsc.session.accept_bind(now()).unwrap();
    let _ = h.smsc.session.poll_event();
    h.smsc.flush().await;
    h.smsc.submit().await;
}

/// Counts the warnings logged by the bind (on the thread that installs it).
struct BindWarnings(Arc<std::sync::atomic::AtomicUsize>);

impl tracing::Subscriber for BindWarnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let m = event.metadata();
        if *m.level() == tracing::Level::WARN && m.target().ends_with("smpp::bind") {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(start_paused = true)]
async fn a_receiver_bind_takes_no_jobs() {
    let warnings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let _log = tracing::subscriber::set_default(BindWarnings(warnings.clone()));
    let mut s = settings();
    s.bind_type = BindType::Receiver;
    let mut h = start(s);
    h.smsc.accept_bind().await;
    let j = job();
    h.queue(&j);
    // No virtual time passes while the bind spins, so this counts turns, not time.
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    let refused = warnings.load(Ordering::Relaxed);
    assert!(refused <= 1, "{refused} warnings");
    assert_eq!(
        h.queue.len(),
        1,
        "the job waits for a bind that can send it"
    );
}

// ---- submit --------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_queued_job_is_submitted_and_the_carrier_id_recorded() {
    let mut h = bound(settings()).await;
    let j = job();
    h.queue(&j);
    let (seq, sm) = h.smsc.submit().await;
    assert_eq!(sm.dest, Address::international("447700900123"));
    assert_eq!(sm.source, Address::alphanumeric("Switchyard"));
    assert_eq!(sm.registered_delivery, 1);
    assert_eq!(&sm.short_message[..], b"hi");
    assert!(!sm.has_udh());
    h.smsc.answer(seq, CommandStatus::ESME_ROK, "abc123").await;
    assert_eq!(sent(h.update().await), (j.id, 0, "abc123".to_owned()));
    assert_eq!(h.status.submitted.load(Ordering::Relaxed), 1);
    assert!(h.queue.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_long_message_goes_as_one_submit_per_segment_with_a_concatenation_udh() {
    let mut h = bound(settings()).await;
    // 200 GSM characters: two segments of at most 153.
    let j = job_with_body(&"a".repeat(200));
    h.queue(&j);
    let (seq1, first) = h.smsc.submit().await;
    let (seq2, second) = h.smsc.submit().await;
    for (sm, part) in [(&first, 1u8), (&second, 2u8)] {
        assert!(sm.has_udh(), "part {part}");
        // UDHL 5, IE 0x00 (8-bit reference), length 3, reference, 2 parts, this part.
        assert_eq!(&sm.short_message[..3], &[5, 0, 3]);
        assert_eq!(sm.short_message[4..6], [2, part]);
    }
    assert_eq!(
        first.short_message[3], second.short_message[3],
        "one reference"
    );
    assert_eq!(
        first.short_message.len() - 6 + second.short_message.len() - 6,
        200
    );
    // Answered out of order: each id goes with its own segment.
    h.smsc.answer(seq2, CommandStatus::ESME_ROK, "id-2").await;
    h.smsc.answer(seq1, CommandStatus::ESME_ROK, "id-1").await;
    assert_eq!(sent(h.update().await), (j.id, 1, "id-2".to_owned()));
    assert_eq!(sent(h.update().await), (j.id, 0, "id-1".to_owned()));
    h.smsc.idle(Duration::from_secs(1)).await;
    assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
}

#[tokio::test(start_paused = true)]
async fn no_more_than_the_window_awaits_responses() {
    let mut s = settings();
    s.window = 3;
    let mut h = bound(s).await;
    let jobs: Vec<_> = (0..7).map(|_| job()).collect();
    for j in &jobs {
        h.queue(j);
    }
    let mut outstanding = VecDeque::new();
    for _ in 0..3 {
        outstanding.push_back(h.smsc.submit().await.0);
    }
    let mut submitted = 3;
    // A full window: nothing more until an answer comes.
    h.smsc.idle(Duration::from_secs(2)).await;
    assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
    while let Some(seq) = outstanding.pop_front() {
        h.smsc.answer(seq, CommandStatus::ESME_ROK, "x").await;
        if submitted < jobs.len() {
            // Each answer frees one slot, taken by the next job, and no more.
            outstanding.push_back(h.smsc.submit().await.0);
            submitted += 1;
            h.smsc.idle(Duration::from_millis(100)).await;
            assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
        }
        assert_eq!(h.smsc.session.awaiting_response(), outstanding.len());
    }
    let mut ids: Vec<MessageId> = Vec::new();
    for _ in 0..jobs.len() {
        ids.push(sent(h.update().await).0);
    }
    ids.sort();
    let mut want: Vec<MessageId> = jobs.iter().map(|j| j.id).collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(h.status.submitted.load(Ordering::Relaxed), 7);
}

#[tokio::test(start_paused = true)]
async fn the_carriers_max_tps_paces_its_binds_together() {
    // The carrier allows 4/s over two binds: the bind running here holds half of it, and the
    // bucket is shared with the carrier's other binds in this process.
    let s = settings();
    s.rate.configure(Some(4), 2, now());
    s.rate.slot_running(true, now());
    let other = s.rate.clone();
    let mut h = bound(s).await;
    for _ in 0..5 {
        h.queue(&job());
    }
    let since = tokio::time::Instant::now();
    let mut at = Vec::new();
    for _ in 0..5 {
        let (after, seq, _) = next_submit_after(&mut h.smsc, since).await;
        h.smsc.answer(seq, CommandStatus::ESME_ROK, "x").await;
        at.push(after);
    }
    // A burst of the share (2), then one every half second.
    assert!(at[1] < Duration::from_millis(20), "{at:?}");
    assert_near(at[2], Duration::from_millis(500));
    assert_near(at[3], Duration::from_millis(1000));
    // Another bind of the carrier taking tokens slows this one down.
    h.queue(&job());
    h.smsc.idle(Duration::from_secs(2)).await;
    h.smsc.events.clear();
    let since = tokio::time::Instant::now();
    assert!(other.try_take(now()).is_ok() && other.try_take(now()).is_ok());
    h.queue(&job());
    let (after, _, _) = next_submit_after(&mut h.smsc, since).await;
    assert!(after >= Duration::from_millis(480), "{after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_throttled_segment_is_retried_on_this_bind_however_often() {
    for throttled in [CommandStatus::ESME_RTHROTTLED, CommandStatus::ESME_RMSGQFUL] {
        let mut h = bound(settings()).await;
        let j = job();
        h.queue(&j);
        let (mut seq, first) = h.smsc.submit().await;
        // More throttled answers than `max_retries`: throttling never uses up retries.
        for _ in 0..5 {
            h.smsc.answer(seq, throttled, "").await;
            let at = tokio::time::Instant::now();
            let (after, next_seq, again) = next_submit_after(&mut h.smsc, at).await;
            assert!(
                after >= Duration::from_millis(50),
                "{throttled}: resent after {after:?}"
            );
            assert!(
                after < Duration::from_secs(1),
                "{throttled}: resent after {after:?}"
            );
            assert_eq!(again, first, "{throttled}: the same segment");
            seq = next_seq;
        }
        h.no_more_updates();
        h.smsc.answer(seq, CommandStatus::ESME_ROK, "ok-1").await;
        assert_eq!(sent(h.update().await), (j.id, 0, "ok-1".to_owned()));
        h.no_more_updates();
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_rejects_the_segment() {
    let mut h = bound(settings()).await;
    let j = job();
    h.queue(&j);
    let (seq, _) = h.smsc.submit().await;
    h.smsc.answer(seq, CommandStatus::ESME_RINVDSTADR, "").await;
    match h.update().await {
        Update::SegmentRejected {
            id,
            index,
            carrier,
            error,
            ..
        } => {
            assert_eq!((id, index, carrier.as_str()), (j.id, 0, CARRIER));
            assert!(error.contains("ESME_RINVDSTADR"), "{error}");
        }
        other => panic!("expected SegmentRejected, got {other:?}"),
    }
    // Not sent again.
    h.smsc.idle(Duration::from_secs(5)).await;
    assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
    h.no_more_updates();
}

/// The UDH part number of a concatenated segment.
fn part_number(sm: &SubmitSm) -> u8 {
    assert!(sm.has_udh());
    sm.short_message[5]
}

/// Starts a three-part message on a window of one and rejects its first part; returns the
/// part numbers of the submits that came after the rejection.
async fn submits_after_rejecting_the_first_of_three() -> Vec<u8> {
    let mut s = settings();
    s.window = 1;
    let mut h = bound(s).await;
    // 400 GSM characters: three segments; with a window of one they go one at a time.
    let j = job_with_body(&"b".repeat(400));
    h.queue(&j);
    let (seq, sm) = h.smsc.submit().await;
    assert_eq!(part_number(&sm), 1);
    h.smsc.answer(seq, CommandStatus::ESME_RINVSRCADR, "").await;
    assert!(matches!(
        h.update().await,
        Update::SegmentRejected { index: 0, .. }
    ));
    let mut parts = Vec::new();
    loop {
        h.smsc.idle(Duration::from_secs(5)).await;
        let Some(event) = h.smsc.events.pop_front() else {
            return parts;
        };
        match event {
            Event::Request {
                sequence_number,
                body: Body::SubmitSm(sm),
            } => {
                parts.push(part_number(&sm));
                h.smsc
                    .answer(sequence_number, CommandStatus::ESME_ROK, "x")
                    .await;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_part_is_submitted_after_another_part_was_rejected() {
    assert_eq!(
        submits_after_rejecting_the_first_of_three().await,
        Vec::<u8>::new()
    );
}

#[tokio::test(start_paused = true)]
async fn transient_errors_retry_with_back_off_then_fail_over() {
    let mut h = bound(settings()).await;
    let j = job();
    h.queue(&j);
    let (mut seq, first) = h.smsc.submit().await;
    // max_retries = 2: two retries, 100 ms then 200 ms after the error.
    for backoff in [100, 200] {
        h.smsc.answer(seq, CommandStatus::ESME_RSYSERR, "").await;
        let at = tokio::time::Instant::now();
        let (after, next, again) = next_submit_after(&mut h.smsc, at).await;
        assert!(after >= Duration::from_millis(backoff), "{after:?}");
        assert!(after < Duration::from_millis(backoff + 50), "{after:?}");
        assert_eq!(again, first);
        seq = next;
    }
    h.no_more_updates();
    h.smsc.answer(seq, CommandStatus::ESME_RSYSERR, "").await;
    // Failed over; no other carrier in this routing table, so the message fails.
    match h.update().await {
        Update::Status {
            id,
            status: Status::Failed,
            detail: Some(detail),
            ..
        } => {
            assert_eq!(id, j.id);
            assert!(detail.contains("ESME_RSYSERR"), "{detail}");
        }
        other => panic!("expected the message failed, got {other:?}"),
    }
    h.smsc.idle(Duration::from_secs(5)).await;
    assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_submit_sm_resp_counts_by_its_header_status() {
    let mut h = bound(settings()).await;
    let j = job();
    h.queue(&j);
    let (seq, _) = h.smsc.submit().await;
    h.smsc.session.ignore_request(seq).unwrap();
    // submit_sm_resp, ESME_ROK, with a 70-octet message_id and no NUL (at most 65 allowed).
    let mut frame = Vec::new();
    frame.extend_from_slice(&(16u32 + 70).to_be_bytes());
    frame.extend_from_slice(&0x8000_0004u32.to_be_bytes());
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&[b'7'; 70]);
    h.smsc.send_raw(&frame).await;
    // Taken by the carrier, but its id is lost: no receipt will match it.
    assert_eq!(sent(h.update().await), (j.id, 0, String::new()));
    h.smsc.idle(Duration::from_secs(5)).await;
    assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
}

// ---- timeouts and keep-alive ---------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_submit_without_response_is_sent_again_after_the_response_timeout() {
    let mut h = bound(settings()).await;
    let j = job();
    h.queue(&j);
    let (first_seq, first) = h.smsc.submit().await;
    let at = tokio::time::Instant::now();
    h.smsc.session.ignore_request(first_seq).unwrap();
    // response_timeout 10 s, then the first retry's 100 ms back-off.
    let (after, seq, again) = next_submit_after(&mut h.smsc, at).await;
    assert!(after >= Duration::from_millis(10_100), "{after:?}");
    assert!(after < Duration::from_millis(10_200), "{after:?}");
    assert_eq!(again, first);
    assert!(h.status.bound.load(Ordering::Relaxed), "still bound");
    // A late answer to the first attempt matches nothing (the carrier may have taken the
    // message twice: at least once); the second attempt's answer counts.
    let late = Pdu::response(
        first_seq,
        CommandStatus::ESME_ROK,
        Body::SubmitSmResp(MessageIdResp {
            message_id: "late".into(),
        }),
    );
    let mut frame = BytesMut::new();
    SmppCodec::new().encode(&late, &mut frame).unwrap();
    h.smsc.send_raw(&frame).await;
    h.smsc.answer(seq, CommandStatus::ESME_ROK, "second").await;
    assert_eq!(sent(h.update().await), (j.id, 0, "second".to_owned()));
    h.smsc.idle(Duration::from_secs(1)).await;
    h.no_more_updates();
}

#[tokio::test(start_paused = true)]
async fn an_enquire_link_from_the_smsc_is_answered() {
    let mut h = bound(settings()).await;
    // enquire_link, sequence 4242, sent by hand (the test SMSC's session sends none).
    let mut frame = Vec::new();
    for word in [16u32, 0x0000_0015, 0, 4242] {
        frame.extend_from_slice(&word.to_be_bytes());
    }
    h.smsc.send_raw(&frame).await;
    let pdu = h.smsc.next_pdu().await;
    assert_eq!(
        pdu,
        Pdu::response(4242, CommandStatus::ESME_ROK, Body::EnquireLinkResp)
    );
}

#[tokio::test(start_paused = true)]
async fn the_bind_sends_enquire_link_after_the_interval_without_traffic() {
    let mut h = start(settings());
    h.smsc.accept_bind().await;
    let bound_at = tokio::time::Instant::now();
    h.smsc.pdus.clear();
    let pdu = h.smsc.next_pdu().await;
    assert_eq!(pdu.body, Body::EnquireLink);
    assert_near(
        tokio::time::Instant::now() - bound_at,
        Duration::from_secs(30),
    );
    // Answered (by the SMSC session): the next one comes 30 s after that answer.
    let pdu = h.smsc.next_pdu().await;
    assert_eq!(pdu.body, Body::EnquireLink);
    assert_near(
        tokio::time::Instant::now() - bound_at,
        Duration::from_secs(60),
    );
    assert!(h.status.bound.load(Ordering::Relaxed));
}

#[tokio::test(start_paused = true)]
async fn traffic_from_the_smsc_postpones_the_enquire_link() {
    let mut h = bound(settings()).await;
    let start = tokio::time::Instant::now();
    h.smsc.pdus.clear();
    h.smsc.idle(Duration::from_secs(20)).await;
    let seq = h.smsc.deliver(mo(b"hello", 0)).await;
    assert_eq!(h.smsc.deliver_resp(seq).await, CommandStatus::ESME_ROK);
    h.smsc
        .pdus
        .retain(|p| p.body != Body::DeliverSmResp(MessageIdResp::default()));
    let pdu = h.smsc.next_pdu().await;
    assert_eq!(pdu.body, Body::EnquireLink);
    assert_near(tokio::time::Instant::now() - start, Duration::from_secs(50));
}

#[tokio::test(start_paused = true)]
async fn an_smsc_that_stops_answering_is_dropped_and_what_was_in_flight_requeued() {
    let mut s = settings();
    // Enough retries that the job stays on this bind until the link is declared dead.
    s.max_retries = 100;
    let mut h = bound(s).await;
    let j = job();
    h.queue(&j);
    let _ = h.smsc.submit().await;
    // From here the SMSC reads nothing and answers nothing.
    let started = tokio::time::Instant::now();
    assert!(h.ended().await, "it had bound");
    // enquire_link at 30 s, unanswered within 10 s; another, unanswered: closed at 50 s.
    assert_near(
        tokio::time::Instant::now() - started,
        Duration::from_secs(50),
    );
    assert!(!h.status.bound.load(Ordering::Relaxed));
    // The job is back in the carrier queue for the next bind; nothing was stored as failed.
    assert_eq!(h.queue.len(), 1);
    assert_eq!(h.queue.pop().map(|q| q.id), Some(j.id));
    h.no_more_updates();
    // What the bind sent meanwhile: submits (the retries) and two enquire_links.
    h.smsc.idle(Duration::from_secs(1)).await;
    let links = h
        .smsc
        .pdus
        .iter()
        .filter(|p| p.body == Body::EnquireLink)
        .count();
    assert_eq!(links, 2);
    assert!(h.smsc.eof);
}

// ---- deliver_sm: receipts and MO -----------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_receipt_is_stored_before_it_is_acknowledged() {
    let mut h = bound(settings()).await;
    // Hold commits back.
    let held = h.store.commits.forget_permits(Semaphore::MAX_PERMITS);
    assert!(held > 0);
    let seq = h
        .smsc
        .deliver(receipt("abc123", ReceiptState::Delivered))
        .await;
    match h.update().await {
        Update::Receipt(r) => {
            assert_eq!(r.carrier, CARRIER);
            assert_eq!(r.carrier_message_id, "abc123");
            assert_eq!(r.status, Some(Status::Delivered));
            assert_eq!(r.error, None);
        }
        other => panic!("expected a receipt, got {other:?}"),
    }
    // Not committed yet: not acknowledged.
    h.smsc.idle(Duration::from_secs(5)).await;
    assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
    h.store.commits.add_permits(1);
    assert_eq!(h.smsc.deliver_resp(seq).await, CommandStatus::ESME_ROK);
    assert_eq!(h.status.receipts.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failure_receipt_carries_its_state() {
    let mut h = bound(settings()).await;
    let seq = h
        .smsc
        .deliver(receipt("77", ReceiptState::Undeliverable))
        .await;
    match h.update().await {
        Update::Receipt(r) => {
            assert_eq!(r.carrier_message_id, "77");
            assert_eq!(r.status, Some(Status::Undeliverable));
        }
        other => panic!("expected a receipt, got {other:?}"),
    }
    assert_eq!(h.smsc.deliver_resp(seq).await, CommandStatus::ESME_ROK);
}

#[tokio::test(start_paused = true)]
async fn what_the_store_cannot_take_is_answered_with_a_temporary_error() {
    let mut h = bound(settings()).await;
    h.store.fail.store(true, Ordering::SeqCst);
    let seq = h
        .smsc
        .deliver(receipt("abc123", ReceiptState::Delivered))
        .await;
    assert!(matches!(h.update().await, Update::Receipt(_)));
    // The SMSC will deliver it again.
    assert_eq!(
        h.smsc.deliver_resp(seq).await,
        CommandStatus::ESME_RX_T_APPN
    );
    let seq = h.smsc.deliver(mo(b"hello", 0)).await;
    assert!(matches!(h.update().await, Update::Inbound(_)));
    assert_eq!(
        h.smsc.deliver_resp(seq).await,
        CommandStatus::ESME_RX_T_APPN
    );
}

#[tokio::test(start_paused = true)]
async fn an_mo_message_is_stored_as_inbound_then_acknowledged() {
    let mut h = bound(settings()).await;
    let seq = h.smsc.deliver(mo(b"Hello there", 0)).await;
    let m = inbound_message(h.update().await);
    assert_eq!(m.carrier, CARRIER);
    assert_eq!(m.from, format!("+{MOBILE}"));
    assert_eq!(m.to, TENANT_NUMBER);
    assert_eq!(m.body, "Hello there");
    assert_eq!(m.tenant.as_deref(), Some("acme"));
    assert_eq!(m.partial, None);
    assert_eq!(h.smsc.deliver_resp(seq).await, CommandStatus::ESME_ROK);
    assert_eq!(h.status.receipts.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn an_mo_message_in_data_sm_is_answered_with_data_sm_resp() {
    let mut h = bound(settings()).await;
    let data_sm = DataSm {
        source: Address::international(MOBILE),
        dest: Address::international(TENANT_NUMBER),
        tlvs: Tlvs(vec![Tlv::new(
            tag::MESSAGE_PAYLOAD,
            Bytes::from_static(b"sent as data sm"),
        )]),
        ..DataSm::default()
    };
    let seq = h
        .smsc
        .session
        .send_request(Body::DataSm(data_sm), now())
        .unwrap();
    h.smsc.flush().await;
    let m = inbound_message(h.update().await);
    assert_eq!(m.body, "sent as data sm");
    assert_eq!(m.from, format!("+{MOBILE}"));
    match h.smsc.next_event().await {
        Event::Response {
            sequence_number,
            status,
            body: Body::DataSmResp(_),
            ..
        } => assert_eq!((sequence_number, status), (seq, CommandStatus::ESME_ROK)),
        other => panic!("expected the data_sm_resp, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_multipart_mo_is_held_until_its_last_part() {
    let mut h = bound(settings()).await;
    let udh = |part: u8| [5u8, 0, 3, 0x2A, 2, part];
    let second = [&udh(2)[..], b"world"].concat();
    let first = [&udh(1)[..], b"Hello "].concat();
    // The second part first: held.
    let seq = h.smsc.deliver(mo(&second, SubmitSm::ESM_CLASS_UDHI)).await;
    match h.update().await {
        Update::Mo(w) => {
            assert_eq!(w.carrier, CARRIER);
            assert!(w.finished.is_empty());
            let held = w.hold.expect("the part is held");
            assert_eq!(held.seq, 2);
            assert_eq!(&held.payload[..], b"world");
        }
        other => panic!("expected an MO write, got {other:?}"),
    }
    assert_eq!(h.smsc.deliver_resp(seq).await, CommandStatus::ESME_ROK);
    // The first part completes the message.
    let seq = h.smsc.deliver(mo(&first, SubmitSm::ESM_CLASS_UDHI)).await;
    match h.update().await {
        Update::Mo(w) => {
            assert!(w.hold.is_none());
            assert_eq!(w.finished.len(), 1);
            let m = &w.finished[0].1;
            assert_eq!(m.body, "Hello world");
            assert_eq!(m.from, format!("+{MOBILE}"));
            assert_eq!(m.tenant.as_deref(), Some("acme"));
        }
        other => panic!("expected an MO write, got {other:?}"),
    }
    assert_eq!(h.smsc.deliver_resp(seq).await, CommandStatus::ESME_ROK);
}

// ---- malformed input -----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_malformed_deliver_sm_costs_one_frame_not_the_session() {
    let mut h = bound(settings()).await;
    // A deliver_sm whose short_message is cut short: sm_length says 5 octets, 2 follow, and
    // command_length agrees with what was sent.
    let mut frame = BytesMut::new();
    let pdu = Pdu::request(900, Body::DeliverSm(mo(b"hello", 0)));
    SmppCodec::new().encode(&pdu, &mut frame).unwrap();
    frame.truncate(frame.len() - 3);
    let len = u32::try_from(frame.len()).unwrap();
    frame[..4].copy_from_slice(&len.to_be_bytes());
    h.smsc.send_raw(&frame).await;
    let answer = h.smsc.next_pdu().await;
    assert_eq!(answer.sequence_number, 900);
    assert_eq!(answer.command_id(), CommandId::DELIVER_SM_RESP);
    assert!(
        !answer.command_status.is_ok(),
        "{:?}",
        answer.command_status
    );
    // (The test SMSC's session sees that answer as unexpected: it sent frame 900 by hand.)
    h.smsc.events.clear();
    h.no_more_updates();
    // The stream is still in step: the next deliver_sm is handled as usual.
    let seq = h.smsc.deliver(mo(b"again", 0)).await;
    assert_eq!(inbound_message(h.update().await).body, "again");
    assert_eq!(h.smsc.deliver_resp(seq).await, CommandStatus::ESME_ROK);
    assert!(h.status.bound.load(Ordering::Relaxed));
}

#[tokio::test(start_paused = true)]
async fn an_unknown_command_is_answered_with_generic_nack() {
    let mut h = bound(settings()).await;
    let mut frame = Vec::new();
    for word in [16u32, 0x0000_0077, 0, 555] {
        frame.extend_from_slice(&word.to_be_bytes());
    }
    h.smsc.send_raw(&frame).await;
    let answer = h.smsc.next_pdu().await;
    assert_eq!(answer.body, Body::GenericNack);
    assert_eq!(answer.sequence_number, 555);
    assert_eq!(answer.command_status, CommandStatus::ESME_RINVCMDID);
    h.smsc.events.clear();
    // Still serving.
    let j = job();
    h.queue(&j);
    let (seq, _) = h.smsc.submit().await;
    h.smsc.answer(seq, CommandStatus::ESME_ROK, "n1").await;
    assert_eq!(sent(h.update().await), (j.id, 0, "n1".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn an_impossible_command_length_closes_the_connection() {
    let mut h = bound(settings()).await;
    let j = job();
    h.queue(&j);
    let _ = h.smsc.submit().await;
    // command_length 8: shorter than a header, so the stream cannot be followed any further.
    let mut frame = Vec::new();
    for word in [8u32, 0x0000_0005, 0, 901] {
        frame.extend_from_slice(&word.to_be_bytes());
    }
    h.smsc.send_raw(&frame).await;
    assert!(h.ended().await);
    assert!(!h.status.bound.load(Ordering::Relaxed));
    // The submit in flight has an unknown outcome: back to the queue.
    assert_eq!(h.queue.pop().map(|q| q.id), Some(j.id));
    h.no_more_updates();
}

// ---- unbind and shutdown -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_unbind_from_the_smsc_is_answered_and_ends_the_bind() {
    let mut h = bound(settings()).await;
    let j = job();
    h.queue(&j);
    let _ = h.smsc.submit().await;
    h.smsc.session.unbind(now()).unwrap();
    h.smsc.pdus.clear();
    h.smsc.flush().await;
    match h.smsc.next_event().await {
        Event::Closed { reason, .. } => {
            assert_eq!(reason, CloseReason::Unbound { by_peer: false });
        }
        other => panic!("expected the unbind answered, got {other:?}"),
    }
    assert_eq!(
        h.smsc.pdus.pop_front().map(|p| p.body),
        Some(Body::UnbindResp)
    );
    assert!(h.ended().await);
    assert!(!h.status.bound.load(Ordering::Relaxed));
    // Its submit was never answered: back to the queue for the next bind.
    assert_eq!(h.queue.pop().map(|q| q.id), Some(j.id));
    h.no_more_updates();
}

#[tokio::test(start_paused = true)]
async fn the_smsc_hanging_up_ends_the_bind_and_requeues_what_it_held() {
    let mut s = settings();
    s.window = 1;
    let mut h = bound(s).await;
    let (a, b) = (job(), job());
    h.queue(&a);
    h.queue(&b);
    let _ = h.smsc.submit().await;
    drop(h.smsc);
    assert!(tokio::time::timeout(PATIENCE, &mut h.bind)
        .await
        .unwrap()
        .unwrap());
    assert!(!h.status.bound.load(Ordering::Relaxed));
    // The job in flight is back in front; the one never taken is still behind it.
    assert_eq!(h.queue.pop().map(|q| q.id), Some(a.id));
    assert_eq!(h.queue.pop().map(|q| q.id), Some(b.id));
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_nothing_in_flight_unbinds_at_once() {
    let mut h = bound(settings()).await;
    let at = tokio::time::Instant::now();
    h.shutdown.send(true).unwrap();
    let j = job();
    h.queue(&j);
    match h.smsc.next_event().await {
        Event::Closed { reason, .. } => assert_eq!(reason, CloseReason::Unbound { by_peer: true }),
        other => panic!("expected the bind to unbind, got {other:?}"),
    }
    assert_near(tokio::time::Instant::now() - at, Duration::ZERO);
    assert_eq!(h.smsc.pdus.pop_front().map(|p| p.body), Some(Body::Unbind));
    assert!(h.ended().await);
    // Not taken: it waits for the next bind.
    assert_eq!(h.queue.pop().map(|q| q.id), Some(j.id));
}

/// Shuts a bind down with one submit in flight, checks that it takes nothing new meanwhile,
/// answers the submit after a second; returns how long after that answer the unbind came.
async fn unbind_after_draining() -> Duration {
    let mut h = bound(settings()).await;
    let (a, b) = (job(), job());
    h.queue(&a);
    let (seq, _) = h.smsc.submit().await;
    h.shutdown.send(true).unwrap();
    h.queue(&b);
    h.smsc.idle(Duration::from_secs(1)).await;
    // Draining: nothing new is taken, the one in flight is waited for.
    assert!(h.smsc.events.is_empty(), "{:?}", h.smsc.events);
    h.smsc.answer(seq, CommandStatus::ESME_ROK, "last").await;
    let answered = tokio::time::Instant::now();
    assert_eq!(sent(h.update().await), (a.id, 0, "last".to_owned()));
    match h.smsc.next_event().await {
        Event::Closed { reason, .. } => assert_eq!(reason, CloseReason::Unbound { by_peer: true }),
        other => panic!("expected the bind to unbind, got {other:?}"),
    }
    let unbound = tokio::time::Instant::now() - answered;
    assert!(h.smsc.pdus.iter().any(|p| p.body == Body::Unbind));
    assert!(h.ended().await);
    assert_eq!(h.queue.pop().map(|q| q.id), Some(b.id));
    unbound
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_the_window_then_unbinds() {
    // How long after the last response it unbinds: see
    // `shutdown_unbinds_as_soon_as_the_last_response_arrives`.
    let _ = unbind_after_draining().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_unbinds_as_soon_as_the_last_response_arrives() {
    assert_near(unbind_after_draining().await, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn shutdown_unbinds_at_the_drain_timeout_when_a_response_does_not_come() {
    let mut h = start_with(settings(), Duration::from_secs(1));
    h.smsc.accept_bind().await;
    let j = job();
    h.queue(&j);
    let (seq, _) = h.smsc.submit().await;
    h.smsc.session.ignore_request(seq).unwrap();
    let at = tokio::time::Instant::now();
    h.shutdown.send(true).unwrap();
    h.smsc.pdus.clear();
    assert!(matches!(h.smsc.next_event().await, Event::Closed { .. }));
    assert_eq!(h.smsc.pdus.pop_front().map(|p| p.body), Some(Body::Unbind));
    let after = tokio::time::Instant::now() - at;
    assert!(
        after <= Duration::from_millis(1_100),
        "unbound {after:?} after the shutdown"
    );
}

/// A part the tenant cut itself goes out as one submit_sm with the tenant's UDH and its text
/// behind it; towards a SAR carrier the concatenation IE becomes the sar_* TLVs.
#[test]
fn a_tenants_part_keeps_its_header() {
    let mut part = Job::new_for_test(MessageId::generate(now_ms()), Priority::Normal);
    part.body = "part two".into();
    part.udh = Some(bytes::Bytes::from_static(&[5, 0, 3, 0x2A, 3, 2]));
    let udh = super::submit::segments(&part, &settings(), 7).unwrap();
    assert_eq!(udh.len(), 1);
    let pdu = &udh[0].pdu;
    assert_eq!(
        pdu.esm_class & SubmitSm::ESM_CLASS_UDHI,
        SubmitSm::ESM_CLASS_UDHI
    );
    assert_eq!(&pdu.short_message[..6], &[5, 0, 3, 0x2A, 3, 2]);
    assert_eq!(&pdu.short_message[6..], b"part two");
    let mut sar = settings();
    sar.long_messages = LongMessages::Sar;
    let out = super::submit::segments(&part, &sar, 7).unwrap();
    let pdu = &out[0].pdu;
    assert_eq!(pdu.esm_class & SubmitSm::ESM_CLASS_UDHI, 0);
    assert_eq!(&pdu.short_message[..], b"part two");
    let tlv = |t| pdu.tlvs.get(t).map(|v| v.value.to_vec());
    assert_eq!(tlv(tag::SAR_MSG_REF_NUM), Some(vec![0, 0x2A]));
    assert_eq!(tlv(tag::SAR_TOTAL_SEGMENTS), Some(vec![3]));
    assert_eq!(tlv(tag::SAR_SEGMENT_SEQNUM), Some(vec![2]));
}

/// A data_coding kept from the tenant (a flash message, class 0) goes to the carrier as is.
#[test]
fn a_kept_data_coding_goes_out_as_is() {
    let mut flash = Job::new_for_test(MessageId::generate(now_ms()), Priority::Normal);
    flash.body = "Flash!".into();
    flash.data_coding = Some(0xF0);
    let out = super::submit::segments(&flash, &settings(), 7).unwrap();
    assert_eq!(out[0].pdu.data_coding, 0xF0);
    assert_eq!(&out[0].pdu.short_message[..], b"Flash!");
}

/// A binary message goes out octet for octet with its data_coding: whole, in parts of 134
/// octets behind a concatenation UDH; a tenant's part, behind the tenant's UDH.
#[test]
fn binary_goes_out_octet_for_octet() {
    use switchyard_protocols::text::{binary, Encoding, EncodingPreference};
    let mut wap = Job::new_for_test(MessageId::generate(now_ms()), Priority::Normal);
    let octets: Vec<u8> = (0..=255u8).collect();
    wap.body = binary::encode(&octets);
    wap.encoding = EncodingPreference::Force(Encoding::Binary);
    let out = super::submit::segments(&wap, &settings(), 7).unwrap();
    assert_eq!(out.len(), 2);
    let sent: Vec<u8> = out
        .iter()
        .flat_map(|seg| seg.pdu.short_message[6..].to_vec())
        .collect();
    assert_eq!(sent, octets);
    assert!(out
        .iter()
        .all(|seg| seg.pdu.data_coding == 4 && seg.pdu.esm_class & SubmitSm::ESM_CLASS_UDHI != 0));
    let mut part = Job::new_for_test(MessageId::generate(now_ms()), Priority::Normal);
    part.body = "00ff0b".into();
    part.encoding = EncodingPreference::Force(Encoding::Binary);
    part.data_coding = Some(0xF5);
    part.udh = Some(bytes::Bytes::from_static(&[
        6, 5, 4, 0x0B, 0x84, 0x23, 0xF0,
    ]));
    let out = super::submit::segments(&part, &settings(), 7).unwrap();
    assert_eq!(out[0].pdu.data_coding, 0xF5);
    assert_eq!(
        &out[0].pdu.short_message[..],
        &[6, 5, 4, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0xFF, 0x0B]
    );
}

/// The parts of one message route alike: the salt comes from the destination and the
/// reference, not the message id.
#[test]
fn parts_of_one_message_share_a_routing_salt() {
    let mut a = Job::new_for_test(MessageId::generate(now_ms()), Priority::Normal);
    a.udh = Some(bytes::Bytes::from_static(&[5, 0, 3, 0x2A, 3, 1]));
    let mut b = Job::new_for_test(MessageId(a.id.0 + 1), Priority::Normal);
    b.udh = Some(bytes::Bytes::from_static(&[5, 0, 3, 0x2A, 3, 2]));
    assert_eq!(a.salt(), b.salt());
    let whole = job();
    assert_eq!(whole.salt(), whole.id.0 as u64);
}
