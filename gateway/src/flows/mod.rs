//! Flows: one message to a person over several channels (`mode` on `POST /v1/messages`:
//! `cascade`, `primary_backup`, `all_channels`, `staged`, `smart`). Each step is an ordinary message (a delivery)
//! that names its flow; the rules deciding when the next step starts are
//! [`crate::domain::decide`], a pure function of the flow, its deliveries and the time.
//!
//! ```text
//! API: flow + first deliveries ──► one commit ──► Flows::track
//! runner: a delivery's status changed (from the update sink) ─┐
//!         a time limit or stage delay passed (timers) ────────┼─► read the flow ─► decide
//!         start: every running flow ──────────────────────────┘
//!   decide ─► start step k: its request ─► draft ─► submit (the delivery names flow and step)
//!          ─► a step refused: Update::Flow(Skip) ─► decide again
//!          ─► succeeded / failed: Update::Flow(End) (the flow's own event is written with it)
//!   a cascade's step started after an earlier RCS step's time limit passed unmet ─► that
//!     RCS message is withdrawn (still queued, here or through the store on another node) or
//!     revoked (sent) ([`Supersede`]), so it does not arrive after the fallback
//! ```
//!
//! A delivery's move to `queued` or `submitting` changes no decision
//! ([`crate::domain::may_decide`]): the runner does not read the flow for it.
//!
//! The store is the state: a step has started exactly when its delivery exists, so after a
//! crash the runner reads the running flows and decides again, starting no step twice and
//! skipping none. Deliveries themselves are recovered like any message.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::admission::Refusal;
use crate::domain::{
    decide, may_decide, now_ms, Applied, Decision, FlowLink, FlowRecord, FlowState, FlowWrite,
    MessageId, Status, UnixMs, Update,
};
use crate::store::Store;
use crate::submit::{Draft, Placement, SubmitError, Submitter};
use crate::updates::UpdateSink;

/// Turns a step's stored request into a draft for `tenant` (the API's checks, done again when
/// the step starts).
pub(crate) type DraftBuilder =
    dyn Fn(Arc<str>, &serde_json::Value) -> Result<Draft, String> + Send + Sync;

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

/// The flow engine's handle: the API tells it about new flows.
#[derive(Clone, Debug)]
pub(crate) struct Flows {
    tx: mpsc::UnboundedSender<Event>,
}

/// What wakes the runner.
#[derive(Debug)]
enum Event {
    /// A new flow (committed with its first deliveries).
    Track { id: MessageId, tenant: Arc<str> },
}

/// The runner's memory: which message belongs to which flow, and the time limits.
struct Runner {
    store: Arc<dyn Store>,
    submit: Submitter,
    build: Arc<DraftBuilder>,
    updates: UpdateSink,
    /// Revokes superseded RCS deliveries; `None`: they are left to their TTL.
    supersede: Option<Arc<Supersede>>,
    /// Running flows by id: their tenant and the deliveries seen so far.
    flows: HashMap<MessageId, (Arc<str>, Vec<MessageId>)>,
    /// Deliveries of running flows → their flow.
    deliveries: HashMap<MessageId, MessageId>,
    /// (when, flow): a time limit to look at.
    timers: BTreeSet<(UnixMs, MessageId)>,
    /// Where the tasks waiting for a flow's end to commit report an end not stored.
    unended_tx: mpsc::UnboundedSender<(MessageId, Arc<str>)>,
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
        let (unended_tx, unended_rx) = mpsc::unbounded_channel();
        let runner = Runner {
            store,
            submit,
            build,
            updates,
            supersede,
            flows: HashMap::new(),
            deliveries: HashMap::new(),
            timers: BTreeSet::new(),
            unended_tx,
        };
        tokio::spawn(runner.run(rx, applied, unended_rx, shutdown));
        Flows { tx }
    }

    /// A flow was accepted (its first deliveries are stored): follow it.
    pub(crate) fn track(&self, id: MessageId, tenant: Arc<str>) {
        let _ = self.tx.send(Event::Track { id, tenant });
    }
}

impl Runner {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Event>,
        mut applied: mpsc::UnboundedReceiver<Applied>,
        mut unended: mpsc::UnboundedReceiver<(MessageId, Arc<str>)>,
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
                event = rx.recv() => match event {
                    Some(Event::Track { id, tenant }) => {
                        self.flows.insert(id, (tenant, Vec::new()));
                        self.evaluate(id).await;
                    }
                    None => return,
                },
                moved = applied.recv() => match moved {
                    Some(Applied::Moved { id, status, .. }) if may_decide(status) => {
                        if let Some(flow) = self.deliveries.get(&id).copied() {
                            self.evaluate(flow).await;
                        }
                    }
                    Some(_) => {}
                    None => return,
                },
                // A flow's end was not stored: follow it again, and decide again a little later.
                Some((id, tenant)) = unended.recv() => {
                    self.flows.insert(id, (tenant, Vec::new()));
                    self.timers
                        .insert((now_ms() + STORE_RETRY.as_millis() as i64, id));
                }
                _ = tokio::time::sleep(sleep) => {
                    let now = now_ms();
                    while let Some(&(at, id)) = self.timers.first() {
                        if at > now {
                            break;
                        }
                        self.timers.pop_first();
                        self.evaluate(id).await;
                    }
                }
                // The guard `wait_for` gives is not `Send`: drop it inside.
                _ = async { drop(shutdown.wait_for(|s| *s).await) } => return,
            }
        }
    }

    /// Reads every running flow (retrying while the store fails) and decides for each.
    async fn recover(&mut self, shutdown: &mut watch::Receiver<bool>) {
        let flows = loop {
            match self.store.running_flows().await {
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
            self.flows
                .insert(f.id, (f.tenant.as_str().into(), Vec::new()));
            self.act(f).await;
        }
    }

    /// Reads flow `id` and acts on the rules' decision.
    async fn evaluate(&mut self, id: MessageId) {
        let Some(tenant) = self.flows.get(&id).map(|(t, _)| t.clone()) else {
            return;
        };
        match self.store.flow(&tenant, id).await {
            Ok(Some(f)) => self.act(f).await,
            Ok(None) => {
                self.forget(id);
            }
            Err(e) => {
                tracing::warn!(flow = %id, "flows: reading the flow failed: {e}");
                self.timers
                    .insert((now_ms() + STORE_RETRY.as_millis() as i64, id));
            }
        }
    }

    /// Decides for `f` and does it, deciding again after each step it starts or skips.
    async fn act(&mut self, mut f: FlowRecord) {
        // Bounded: each round starts or skips at least one step, or returns.
        for _ in 0..=f.steps.len() * 2 + 1 {
            if f.state != FlowState::Running {
                self.forget(f.id);
                return;
            }
            for d in &f.deliveries {
                if self.deliveries.insert(d.id, f.id).is_none() {
                    if let Some((_, seen)) = self.flows.get_mut(&f.id) {
                        seen.push(d.id);
                    }
                }
            }
            let now = now_ms();
            match decide(&f, now) {
                Decision::WaitUntil(at) => {
                    if let Some(at) = at {
                        self.timers.insert((at, f.id));
                    }
                    return;
                }
                Decision::Succeed => return self.end(&f, FlowState::Succeeded).await,
                Decision::Fail => return self.end(&f, FlowState::Failed).await,
                Decision::Start(steps) => {
                    for step in steps {
                        match self.start_step(&f, step, now).await {
                            Ok(()) => self.superseded_by(&f, step),
                            Err(StepError::Later(wait)) => {
                                self.timers.insert((now + wait.as_millis() as i64, f.id));
                                return;
                            }
                            Err(StepError::Skip(reason)) => {
                                tracing::info!(flow = %f.id, step, "flow step not started: {reason}");
                                let write = FlowWrite::Skip {
                                    id: f.id,
                                    step,
                                    reason,
                                    at: now,
                                };
                                let done = self.updates.send_durable(Update::Flow(write)).await;
                                if !matches!(done.await, Ok(Ok(_))) {
                                    self.timers
                                        .insert((now + STORE_RETRY.as_millis() as i64, f.id));
                                    return;
                                }
                            }
                        }
                    }
                    f = match self.store.flow(&f.tenant, f.id).await {
                        Ok(Some(next)) => next,
                        _ => {
                            self.timers
                                .insert((now + STORE_RETRY.as_millis() as i64, f.id));
                            return;
                        }
                    };
                }
            }
        }
    }

    /// Sends step `step` of `f`: its request through the accept pipeline, as a delivery of
    /// the flow.
    async fn start_step(&self, f: &FlowRecord, step: u8, now: UnixMs) -> Result<(), StepError> {
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
        Ok(())
    }

    /// Ends `f`: the end is queued to the store and the flow forgotten at once, so the runner
    /// goes on deciding for other flows while the commit is under way (the ends of many flows
    /// then share one commit). An end the store did not take comes back through `unended`
    /// and the flow is decided again after [`STORE_RETRY`].
    async fn end(&mut self, f: &FlowRecord, state: FlowState) {
        let write = FlowWrite::End {
            id: f.id,
            state,
            step: f.succeeded_step().filter(|_| state == FlowState::Succeeded),
            at: now_ms(),
        };
        let done = self.updates.send_durable(Update::Flow(write)).await;
        let (id, tenant) = (f.id, Arc::<str>::from(f.tenant.as_str()));
        let unended = self.unended_tx.clone();
        tokio::spawn(async move {
            if matches!(done.await, Ok(Ok(_))) {
                tracing::debug!(flow = %id, state = state.as_str(), "flow ended");
            } else {
                let _ = unended.send((id, tenant));
            }
        });
        self.forget(f.id);
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

    fn forget(&mut self, id: MessageId) {
        if let Some((_, seen)) = self.flows.remove(&id) {
            for d in seen {
                self.deliveries.remove(&d);
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
