//! Flows: one message to a person over several channels (`mode` on `POST /v1/messages`:
//! `cascade`, `primary_backup`, `all_channels`, `staged`, `smart`). Each step is an ordinary message (a delivery)
//! that names its flow; the rules deciding when the next step starts are
//! [`crate::domain::decide`], a pure function of the flow, its deliveries and the time.
//!
//! ```text
//! API: flow + first deliveries ──► one commit ──► Flows::track (the flow's rules)
//! runner: a delivery's status changed (from the update sink) ─┐   decide on the rules kept:
//!         a time limit or stage delay passed (timers) ────────┼─► wait: nothing more; else
//!         start: every running flow ──────────────────────────┘   a task for that flow:
//!                                                   (read the flow unless it succeeded) ─► decide
//!   decide ─► start step k: its request ─► draft ─► submit (the delivery names flow and step)
//!          ─► a step refused: Update::Flow(Skip) ─► decide again
//!          ─► succeeded / failed: Update::Flow(End) (the flow's own event is written with it)
//!   a cascade's step started after an earlier RCS step's time limit passed unmet ─► that
//!     RCS message is withdrawn (still queued, here or through the store on another node) or
//!     revoked (sent) ([`Supersede`]), so it does not arrive after the fallback
//! ```
//!
//! **One task per flow at a time, many flows at once.** The runner itself never waits for the
//! store: it hands a flow to be decided to a task of its own (at most [`MAX_TASKS`] at once,
//! further flows wait their turn in order) and goes on. While a flow's task runs, what happens
//! to that flow is only noted, and the flow is decided once more when its task is done, so
//! decisions about one flow never overlap and none is lost. The steps and ends of many flows
//! thus share the store's group commits instead of waiting for one commit each, in turn.
//! A delivery's status change names its flow (the store reads it with the message), so it
//! finds the flow even while the flow's task is still starting that delivery.
//!
//! A delivery's move to `queued` or `submitting` changes no decision, nor does its move to
//! `sent` unless a step of the flow succeeds on `sent` ([`crate::domain::may_decide`]; the
//! runner learns that from the flow's steps at its first read): the runner does not read the
//! flow for those.
//!
//! **What the rules look at is kept in memory.** The API hands the runner each new flow as
//! committed, with the requests of the steps not started yet
//! ([`FlowRecord::with_unstarted_requests`]; the rules alone are a few hundred bytes, kept for
//! at most [`MAX_VIEWS`] flows, the requests for as many as [`MAX_HELD_REQUESTS`] bytes
//! allow); the status changes of its deliveries are applied to it as they come (those that
//! come before the flow is handed over are kept for it a while). When the rules say from that
//! view that nothing is to be done, nothing is read and no task starts; when they say the flow
//! succeeded (a committed status change met a step's condition), it is ended without a read;
//! when they say to start a step whose request the view holds (a cascade's second step after
//! the first was refused), it is started without a read. Starting a step whose request was
//! not kept needs a read of the flow, and failing must not miss a success the view has not
//! seen yet: both decide again on the flow read from the store. Once a step was started, the
//! view keeps the rules only. A change the view cannot place (a delivery it does not know)
//! drops the view, and the flow is read from then on.
//!
//! The store is the state: a step has started exactly when its delivery exists, so after a
//! crash the runner reads the running flows and decides again, starting no step twice and
//! skipping none. Deliveries themselves are recovered like any message.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::admission::Refusal;
use crate::domain::{
    decide, may_decide, now_ms, succeeds_on_sent, Applied, Decision, FlowDelivery, FlowLink,
    FlowRecord, FlowState, FlowWrite, MessageId, Status, UnixMs, Update,
};
use crate::store::Store;
use crate::submit::{Draft, Placement, SubmitError, Submitter};
use crate::updates::UpdateSink;

/// Turns a step's stored request into a draft for `tenant` (the API's checks, done again when
/// the step starts).
pub(crate) type DraftBuilder =
    dyn Fn(Arc<str>, &crate::domain::StepRequest) -> Result<Draft, String> + Send + Sync;

/// What the runner calls, on its own task, for an RCS delivery whose step's time limit passed
/// and whose flow started the next step (cascade, smart): it withdraws the message if the
/// gateway has not handed it to the platform yet, else revokes it where the platform still
/// can. Arguments: the tenant and the delivery.
pub(crate) type Supersede =
    dyn Fn(Arc<str>, MessageId) -> futures::future::BoxFuture<'static, ()> + Send + Sync;

/// How long a step refused for the tenant's rate waits before it is tried again.
const RATE_RETRY: Duration = Duration::from_secs(1);
/// How long to wait before reading a flow again after the store failed, or before starting a
/// step again that full queues or open breakers refused.
const STORE_RETRY: Duration = Duration::from_secs(2);
/// Flows whose rules the runner keeps in memory ([`Tracked::view`]), at most: about 300 bytes
/// each. Beyond that, flows are read from the store each time they are decided.
const MAX_VIEWS: usize = 65_536;
/// Bytes of steps' requests (their JSON) the views hold over all flows, at most. A new flow
/// whose requests would pass it is kept with its rules only.
const MAX_HELD_REQUESTS: usize = 16 << 20;
/// How long the status change of a delivery whose flow is not followed yet is kept for it
/// (the API follows a flow once its commit returned; its first deliveries may move before).
const EARLY_KEEP_MS: UnixMs = 10_000;
/// Flows decided at once. Each task mostly waits for the store (a read, a commit), so this
/// bounds the reads and commits in flight for flows, not CPU: enough for the store's group
/// commits to carry thousands of flows per second.
const MAX_TASKS: usize = 256;
/// How long the runner gathers a flow's status changes before it decides: the deliveries of
/// one flow tend to move together (an `all_channels` flow's three `sent` come within a few
/// milliseconds), and one read of the flow then serves them all.
const GATHER: Duration = Duration::from_millis(20);

/// The flow engine's handle: the API tells it about new flows.
#[derive(Clone, Debug)]
pub(crate) struct Flows {
    tx: mpsc::UnboundedSender<Event>,
}

/// What wakes the runner.
#[derive(Debug)]
enum Event {
    /// A new flow (committed with its first deliveries), and the flow as committed when the
    /// caller has it.
    Track {
        id: MessageId,
        tenant: Arc<str>,
        flow: Option<Box<FlowRecord>>,
    },
}

/// What a flow's task tells the runner when it is done: where `flow` stands.
#[derive(Debug)]
struct Done {
    flow: MessageId,
    outcome: Outcome,
}

/// Where a flow stands after its task.
#[derive(Debug)]
enum Outcome {
    /// Still running; when to look at it again, if its deliveries say nothing before.
    Running {
        wake_at: Option<UnixMs>,
        /// Whether a step succeeds on `sent` (`None`: the flow could not be read).
        sent_succeeds: Option<bool>,
        /// The flow's rules as the task left them ([`FlowRecord::rules_only`]); `None`
        /// when it could not be read or ending it failed.
        view: Option<Box<FlowRecord>>,
    },
    /// Ended (the end committed) or gone: forget it.
    Finished,
}

/// What the tasks share: everything deciding and starting steps needs.
struct Steps {
    store: Arc<dyn Store>,
    submit: Submitter,
    build: Arc<DraftBuilder>,
    updates: UpdateSink,
    /// Revokes superseded RCS deliveries; `None`: they are left to their TTL.
    supersede: Option<Arc<Supersede>>,
}

/// A running flow in the runner's memory.
struct Tracked {
    tenant: Arc<str>,
    task: Task,
    /// Whether a delivery's `sent` may decide something ([`succeeds_on_sent`]); true until
    /// the flow's steps were read.
    sent_succeeds: bool,
    /// The flow as far as the rules look at it ([`FlowRecord::rules_only`]), with the
    /// requests of steps not started yet while it is new, brought up to date by its
    /// deliveries' status changes; lent to the flow's task while one runs. `None`: the flow
    /// is read from the store when it is decided.
    view: Option<Box<FlowRecord>>,
    /// Whether this flow counts against [`MAX_VIEWS`] (it has a view, here or lent).
    viewed: bool,
    /// Bytes of requests its view holds (here or lent), counted against
    /// [`MAX_HELD_REQUESTS`].
    held: usize,
    /// Status changes of its deliveries that came while a task decided for it: applied to
    /// the view the task gives back.
    pending: Vec<(MessageId, Status)>,
}

impl Tracked {
    /// Forgets the flow's view (it is read from the store from now on) and gives back its
    /// [`MAX_VIEWS`] slot and the bytes of requests it held.
    fn drop_view(&mut self, kept: &mut Kept) {
        self.view = None;
        if self.viewed {
            self.viewed = false;
            kept.views -= 1;
        }
        kept.bytes -= std::mem::take(&mut self.held);
    }

    /// Counts the bytes of requests of the view given back by the flow's task in place of
    /// those it held.
    fn recount(&mut self, kept: &mut Kept) {
        let held = self.view.as_ref().map_or(0, |v| v.request_bytes());
        kept.bytes = kept.bytes - self.held + held;
        self.held = held;
    }
}

/// What the views hold over all flows.
#[derive(Default)]
struct Kept {
    /// Flows with a view (at most [`MAX_VIEWS`]).
    views: usize,
    /// Bytes of steps' requests (at most [`MAX_HELD_REQUESTS`]).
    bytes: usize,
}

/// What a flow's task starts from.
enum Known {
    /// Nothing: it reads the flow.
    Nothing,
    /// The flow just read from the store (whole).
    Read(FlowRecord),
    /// The runner's view ([`Tracked::view`]): enough to see that nothing is to be done or
    /// that the flow succeeded, and to start steps whose requests it holds; anything else is
    /// decided again on the flow read afresh.
    View(Box<FlowRecord>),
}

/// Whether a flow is being decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    /// No task: the next change starts one.
    Idle,
    /// New, or a delivery's status changed: a task starts [`GATHER`] later (in
    /// `Runner::timers`).
    Soon,
    /// Waiting for a free task (in `Runner::waiting`).
    Waiting,
    /// A task is deciding for it.
    Running,
    /// A task is deciding for it and something changed meanwhile: decide again after it.
    Again,
}

/// The runner's memory: the running flows, the time limits, the tasks.
struct Runner {
    steps: Arc<Steps>,
    /// Running flows by id.
    flows: HashMap<MessageId, Tracked>,
    /// (when, flow): a time limit to look at.
    timers: BTreeSet<(UnixMs, MessageId)>,
    /// Flows to decide once a task is free, in order.
    waiting: VecDeque<MessageId>,
    /// Tasks running.
    tasks: usize,
    reports: mpsc::UnboundedSender<Done>,
    /// Flows counting against [`MAX_VIEWS`], bytes against [`MAX_HELD_REQUESTS`].
    kept: Kept,
    /// Status changes of deliveries whose flow is not followed, by flow, with when the first
    /// came: kept [`EARLY_KEEP_MS`] for a flow about to be followed (its first deliveries may
    /// move before the API hands it over). Changes that come after a flow ended pass through
    /// here too and are dropped with age.
    early: HashMap<MessageId, (UnixMs, Vec<(MessageId, Status)>)>,
    /// The flows in `early`, oldest first.
    early_order: VecDeque<(UnixMs, MessageId)>,
    /// `switchyard_flows_running`, `switchyard_flows_views`, `switchyard_flows_held_request_bytes`.
    gauges: [metrics::Gauge; 3],
}

impl Flows {
    /// Starts the runner: reads the running flows and decides for each, then follows status
    /// changes (`applied`, from the update sink) and time limits until shutdown.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        submit: Submitter,
        build: Arc<DraftBuilder>,
        updates: UpdateSink,
        supersede: Option<Arc<Supersede>>,
        applied: mpsc::UnboundedReceiver<Applied>,
        shutdown: watch::Receiver<bool>,
    ) -> Flows {
        let (tx, rx) = mpsc::unbounded_channel();
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let runner = Runner {
            steps: Arc::new(Steps {
                store,
                submit,
                build,
                updates,
                supersede,
            }),
            flows: HashMap::new(),
            timers: BTreeSet::new(),
            waiting: VecDeque::new(),
            tasks: 0,
            reports,
            kept: Kept::default(),
            early: HashMap::new(),
            early_order: VecDeque::new(),
            gauges: [
                metrics::gauge!("switchyard_flows_running"),
                metrics::gauge!("switchyard_flows_views"),
                metrics::gauge!("switchyard_flows_held_request_bytes"),
            ],
        };
        tokio::spawn(runner.run(rx, applied, reports_rx, shutdown));
        Flows { tx }
    }

    /// A flow was accepted (its first deliveries are stored): follow it. `view` is the flow
    /// as committed ([`FlowRecord::with_unstarted_requests`]) when the caller has it: the
    /// runner then need not read the flow to see that nothing is to be done, that it
    /// succeeded, or to start its next step.
    pub(crate) fn track(&self, id: MessageId, tenant: Arc<str>, view: Option<FlowRecord>) {
        let flow = view.map(Box::new);
        let _ = self.tx.send(Event::Track { id, tenant, flow });
    }
}

impl Runner {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Event>,
        mut applied: mpsc::UnboundedReceiver<Applied>,
        mut reports: mpsc::UnboundedReceiver<Done>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.recover(&mut shutdown).await;
        loop {
            let next = self.timers.first().map(|(at, _)| *at);
            let sleep = match next {
                Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                Some(done) = reports.recv() => self.done(done),
                event = rx.recv() => match event {
                    Some(Event::Track { id, tenant, flow }) => self.track(id, tenant, flow),
                    None => return,
                },
                moved = applied.recv() => match moved {
                    Some(Applied::Moved { id, status, flow: Some(flow), .. }) => {
                        self.moved(flow, id, status);
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = tokio::time::sleep(sleep) => {
                    let now = now_ms();
                    while let Some(&(at, id)) = self.timers.first() {
                        if at > now {
                            break;
                        }
                        self.timers.pop_first();
                        self.decide(id, None);
                    }
                }
                // The guard `wait_for` gives is not `Send`: drop it inside.
                _ = async { drop(shutdown.wait_for(|s| *s).await) } => return,
            }
            self.report();
        }
    }

    /// Sets the runner's gauges: the flows followed, those with a view, the requests held.
    fn report(&self) {
        let [running, views, held] = &self.gauges;
        running.set(self.flows.len() as f64);
        views.set(self.kept.views as f64);
        held.set(self.kept.bytes as f64);
    }

    /// Reads every running flow (retrying while the store fails) and decides for each.
    async fn recover(&mut self, shutdown: &mut watch::Receiver<bool>) {
        let flows = loop {
            match self.steps.store.running_flows().await {
                Ok(f) => break f,
                Err(e) => {
                    tracing::warn!("flows: reading the running flows failed: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_RETRY) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                }
            }
        };
        if !flows.is_empty() {
            tracing::info!(flows = flows.len(), "following the flows left running");
        }
        for f in flows {
            let id = f.id;
            self.flows.insert(
                id,
                Tracked {
                    tenant: f.tenant.as_str().into(),
                    task: Task::Idle,
                    sent_succeeds: succeeds_on_sent(&f.steps),
                    view: None,
                    viewed: false,
                    held: 0,
                    pending: Vec::new(),
                },
            );
            self.decide(id, Some(f));
        }
    }

    /// A new flow to follow, with its rules (and the requests of the steps not started yet)
    /// when the caller had them.
    fn track(&mut self, id: MessageId, tenant: Arc<str>, flow: Option<Box<FlowRecord>>) {
        if self.flows.contains_key(&id) {
            self.soon(id);
            return;
        }
        let early = self.early.remove(&id).map(|(_, moves)| moves);
        let mut view = flow.filter(|_| self.kept.views < MAX_VIEWS);
        if let (Some(v), Some(moves)) = (&mut view, &early) {
            if !moves.iter().all(|&(d, s)| v.moved(d, s)) {
                view = None;
            }
        }
        let mut held = view.as_ref().map_or(0, |v| v.request_bytes());
        if held > 0 && self.kept.bytes + held > MAX_HELD_REQUESTS {
            view = view.map(|v| Box::new(v.rules_only()));
            held = 0;
        }
        let viewed = view.is_some();
        self.kept.views += usize::from(viewed);
        self.kept.bytes += held;
        self.flows.insert(
            id,
            Tracked {
                tenant,
                task: Task::Idle,
                sent_succeeds: view.as_ref().is_none_or(|v| succeeds_on_sent(&v.steps)),
                view,
                viewed,
                held,
                pending: Vec::new(),
            },
        );
        // Its first deliveries move within milliseconds (sent, or an RCS step rejected):
        // one decision after them serves both.
        self.soon(id);
    }

    /// Delivery `delivery` of flow `flow` moved to `status`.
    fn moved(&mut self, flow: MessageId, delivery: MessageId, status: Status) {
        let Some(tracked) = self.flows.get_mut(&flow) else {
            if may_decide(status, true) {
                self.keep_early(flow, delivery, status);
            }
            return;
        };
        match tracked.task {
            Task::Running | Task::Again => tracked.pending.push((delivery, status)),
            Task::Idle | Task::Soon | Task::Waiting => {
                let known = tracked
                    .view
                    .as_mut()
                    .is_none_or(|v| v.moved(delivery, status));
                if !known {
                    // Not a delivery the view knows (started elsewhere): read the flow.
                    tracked.drop_view(&mut self.kept);
                }
            }
        }
        if may_decide(status, tracked.sent_succeeds) {
            self.soon(flow);
        }
    }

    /// Keeps a status change of a delivery whose flow is not followed, for [`EARLY_KEEP_MS`].
    fn keep_early(&mut self, flow: MessageId, delivery: MessageId, status: Status) {
        let now = now_ms();
        while let Some(&(at, f)) = self.early_order.front() {
            if now - at < EARLY_KEEP_MS {
                break;
            }
            self.early_order.pop_front();
            if self.early.get(&f).is_some_and(|(since, _)| *since == at) {
                self.early.remove(&f);
            }
        }
        let order = &mut self.early_order;
        self.early
            .entry(flow)
            .or_insert_with(|| {
                order.push_back((now, flow));
                (now, Vec::new())
            })
            .1
            .push((delivery, status));
    }

    /// Flow `id` may have something to decide: its view says to wait (no task, no read), or
    /// a task decides for it now, after its running task, or once a task is free. `record` is
    /// the flow as just read, if it was.
    fn decide(&mut self, id: MessageId, record: Option<FlowRecord>) {
        let Some(tracked) = self.flows.get_mut(&id) else {
            return;
        };
        match tracked.task {
            Task::Idle | Task::Soon => {}
            Task::Running => {
                tracked.task = Task::Again;
                return;
            }
            Task::Waiting | Task::Again => return,
        }
        if record.is_none() {
            let now = now_ms();
            if let Some(Decision::WaitUntil(at)) = tracked.view.as_deref().map(|v| decide(v, now)) {
                tracked.task = Task::Idle;
                if let Some(at) = at {
                    self.timers.insert((at, id));
                }
                return;
            }
        }
        if self.tasks < MAX_TASKS {
            tracked.task = Task::Running;
            let tenant = tracked.tenant.clone();
            let known = match record {
                Some(f) => Known::Read(f),
                None => tracked.view.take().map_or(Known::Nothing, Known::View),
            };
            self.spawn(id, tenant, known);
        } else {
            tracked.task = Task::Waiting;
            self.waiting.push_back(id);
        }
    }

    /// Flow `id` is new or a delivery of it moved: decide [`GATHER`] from now (or after the
    /// running task), with whatever else moved meanwhile.
    fn soon(&mut self, id: MessageId) {
        let Some(tracked) = self.flows.get_mut(&id) else {
            return;
        };
        match tracked.task {
            Task::Idle => {
                tracked.task = Task::Soon;
                self.timers
                    .insert((now_ms() + GATHER.as_millis() as i64, id));
            }
            Task::Running => tracked.task = Task::Again,
            Task::Soon | Task::Waiting | Task::Again => {}
        }
    }

    fn spawn(&mut self, id: MessageId, tenant: Arc<str>, known: Known) {
        self.tasks += 1;
        let steps = self.steps.clone();
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let outcome = steps.settle(id, tenant, known).await;
            let _ = reports.send(Done { flow: id, outcome });
        });
    }

    /// A flow's task is done: forget the flow if it ended, note its next time limit, decide
    /// again if something changed meanwhile, and start the tasks waiting for a free one.
    fn done(&mut self, Done { flow, outcome }: Done) {
        self.tasks -= 1;
        match outcome {
            Outcome::Finished => {
                if let Some(mut tracked) = self.flows.remove(&flow) {
                    tracked.drop_view(&mut self.kept);
                }
            }
            Outcome::Running {
                wake_at,
                sent_succeeds,
                mut view,
            } => {
                if let Some(at) = wake_at {
                    self.timers.insert((at, flow));
                }
                if let Some(tracked) = self.flows.get_mut(&flow) {
                    let again = tracked.task == Task::Again;
                    tracked.task = Task::Idle;
                    if let Some(sent_succeeds) = sent_succeeds {
                        tracked.sent_succeeds = sent_succeeds;
                    }
                    let pending = std::mem::take(&mut tracked.pending);
                    if let Some(v) = &mut view {
                        if !pending.iter().all(|&(d, s)| v.moved(d, s)) {
                            view = None;
                        }
                    }
                    if view.is_some() && !tracked.viewed && self.kept.views < MAX_VIEWS {
                        tracked.viewed = true;
                        self.kept.views += 1;
                    }
                    match view {
                        Some(v) if tracked.viewed => {
                            tracked.view = Some(v);
                            tracked.recount(&mut self.kept);
                        }
                        _ => tracked.drop_view(&mut self.kept),
                    }
                    if again {
                        self.decide(flow, None);
                    }
                }
            }
        }
        while self.tasks < MAX_TASKS {
            let Some(id) = self.waiting.pop_front() else {
                break;
            };
            if let Some(tracked) = self.flows.get_mut(&id) {
                tracked.task = Task::Running;
                let tenant = tracked.tenant.clone();
                let known = tracked.view.take().map_or(Known::Nothing, Known::View);
                self.spawn(id, tenant, known);
            }
        }
    }
}

impl Steps {
    /// Acts on the rules' decision for flow `id`, deciding again after each step it starts
    /// or skips. The runner's view of the flow suffices to wait, to end it as succeeded (a
    /// delivery's committed move met its step's condition), and to start steps whose requests
    /// it holds; starting another step needs the step's request, and failing must not miss a
    /// success the view has not seen yet, so both decide again on the flow read from the
    /// store.
    async fn settle(&self, id: MessageId, tenant: Arc<str>, known: Known) -> Outcome {
        let retry = |sent_succeeds| Outcome::Running {
            wake_at: Some(now_ms() + STORE_RETRY.as_millis() as i64),
            sent_succeeds,
            view: None,
        };
        let record = match known {
            Known::Nothing => None,
            Known::Read(f) => Some(f),
            Known::View(view) => match decide(&view, now_ms()) {
                Decision::WaitUntil(wake_at) => {
                    return Outcome::Running {
                        wake_at,
                        sent_succeeds: Some(succeeds_on_sent(&view.steps)),
                        view: Some(view),
                    }
                }
                Decision::Succeed => return self.end(&view, FlowState::Succeeded).await,
                Decision::Start(steps) if view.can_start(&steps) => Some(*view),
                Decision::Start(_) | Decision::Fail => None,
            },
        };
        let mut f = match record {
            Some(f) => f,
            None => match self.store.flow(&tenant, id).await {
                Ok(Some(f)) => f,
                Ok(None) => return Outcome::Finished,
                Err(e) => {
                    tracing::warn!(flow = %id, "flows: reading the flow failed: {e}");
                    return retry(None);
                }
            },
        };
        let sent_succeeds = Some(succeeds_on_sent(&f.steps));
        // Bounded: each round starts or skips at least one step, or returns.
        for _ in 0..=f.steps.len() * 2 + 1 {
            if f.state != FlowState::Running {
                return Outcome::Finished;
            }
            let now = now_ms();
            match decide(&f, now) {
                Decision::WaitUntil(at) => {
                    return Outcome::Running {
                        wake_at: at,
                        sent_succeeds,
                        view: Some(Box::new(f.rules_only())),
                    }
                }
                Decision::Succeed => return self.end(&f, FlowState::Succeeded).await,
                Decision::Fail => return self.end(&f, FlowState::Failed).await,
                Decision::Start(steps) => {
                    for step in steps {
                        match self.start_step(&f, step, now).await {
                            Ok(id) => {
                                self.superseded_by(&f, step);
                                f.deliveries.push(FlowDelivery {
                                    step,
                                    id,
                                    status: Status::Accepted,
                                    started_at: now,
                                });
                            }
                            Err(StepError::Later(wait)) => {
                                return Outcome::Running {
                                    wake_at: Some(now + wait.as_millis() as i64),
                                    sent_succeeds,
                                    view: Some(Box::new(f.rules_only())),
                                };
                            }
                            Err(StepError::Skip(reason)) => {
                                tracing::info!(flow = %f.id, step, "flow step not started: {reason}");
                                let write = FlowWrite::Skip {
                                    id: f.id,
                                    step,
                                    reason: reason.clone(),
                                    at: now,
                                };
                                let done = self.updates.send_durable(Update::Flow(write)).await;
                                if !matches!(done.await, Ok(Ok(_))) {
                                    return retry(sent_succeeds);
                                }
                                if !f.skipped.iter().any(|(s, _)| *s == step) {
                                    f.skipped.push((step, reason));
                                }
                            }
                        }
                    }
                    // The flow as the store now has it, short of status changes committed
                    // meanwhile: the runner notes those while this task runs and applies
                    // them to the view this task gives back, then decides again.
                    f.deliveries.sort_by_key(|d| (d.step, d.id));
                }
            }
        }
        Outcome::Running {
            wake_at: None,
            sent_succeeds,
            view: Some(Box::new(f.rules_only())),
        }
    }

    /// Sends step `step` of `f`: its request through the accept pipeline, as a delivery of
    /// the flow.
    /// Returns the delivery's id.
    async fn start_step(
        &self,
        f: &FlowRecord,
        step: u8,
        now: UnixMs,
    ) -> Result<MessageId, StepError> {
        let spec = f
            .steps
            .get(usize::from(step))
            .ok_or_else(|| StepError::Skip("no such step".into()))?;
        let tenant: Arc<str> = f.tenant.as_str().into();
        let mut draft = (self.build)(tenant.clone(), &spec.request).map_err(StepError::Skip)?;
        draft.flow = Some(FlowLink { flow: f.id, step });
        draft.withdrawable = f.mode.supersedes();
        let id = MessageId::generate(now);
        let prepared = self
            .submit
            .prepare(draft, id, now, Placement::Later)
            .map_err(StepError::from)?;
        let reservation = self
            .submit
            .admit(&tenant, 1, now)
            .map_err(StepError::from)?;
        self.submit
            .commit(
                vec![prepared],
                None,
                reservation,
                crate::submit::Queueing::Bulk,
            )
            .await
            .map_err(StepError::from)?;
        Ok(id)
    }

    /// Ends `f` (its end committed, with the flow's own event), or says when to try again.
    async fn end(&self, f: &FlowRecord, state: FlowState) -> Outcome {
        let write = FlowWrite::End {
            id: f.id,
            state,
            step: f.succeeded_step().filter(|_| state == FlowState::Succeeded),
            at: now_ms(),
        };
        let done = self.updates.send_durable(Update::Flow(write)).await;
        if matches!(done.await, Ok(Ok(_))) {
            tracing::debug!(flow = %f.id, state = state.as_str(), "flow ended");
            Outcome::Finished
        } else {
            Outcome::Running {
                wake_at: Some(now_ms() + STORE_RETRY.as_millis() as i64),
                sent_succeeds: Some(succeeds_on_sent(&f.steps)),
                view: None,
            }
        }
    }

    /// Step `step` of `f` started: in a cascade (or smart flow) that means the earlier
    /// steps' time limits passed unmet, so their RCS messages still on their way are taken
    /// back: withdrawn while still queued in the gateway (not yet handed to the platform, on
    /// this node or another), revoked once `sent`. Staged flows keep every stage's chance; other modes start no step
    /// while an earlier one is pending.
    fn superseded_by(&self, f: &FlowRecord, step: u8) {
        let Some(supersede) = &self.supersede else {
            return;
        };
        if !f.mode.supersedes() {
            return;
        }
        for d in &f.deliveries {
            let rcs = f
                .steps
                .get(usize::from(d.step))
                .is_some_and(|s| s.channel == "rcs");
            let on_its_way = matches!(
                d.status,
                Status::Accepted | Status::Queued | Status::Submitting | Status::Sent
            );
            if d.step < step && rcs && on_its_way {
                tokio::spawn(supersede(f.tenant.as_str().into(), d.id));
            }
        }
    }
}
/// Why a step did not start.
#[derive(Debug)]
enum StepError {
    /// Not now (the tenant's rate, the store): try again after this long.
    Later(Duration),
    /// Not at all: the step is skipped with this reason.
    Skip(String),
}

impl From<SubmitError> for StepError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Refused(Refusal::RateLimited { .. }) => StepError::Later(RATE_RETRY),
            e if e.is_transient() => StepError::Later(STORE_RETRY),
            other => StepError::Skip(other.to_string()),
        }
    }
}
