//! Flows: one message to a person over several channels (`mode` on `POST /v1/messages`), each
//! step a delivery (an ordinary message) on one channel, and the rules that start the next
//! step. The rules are a pure function ([`decide`]) of the flow, its deliveries and the time,
//! so a restart re-reads the deliveries and decides again. A `smart` flow's order is chosen
//! once, when it is accepted ([`super::rank`]), and stored with its steps.

use serde::{Deserialize, Serialize};

use super::{MessageId, Status, StepScore, UnixMs};

/// How steps follow each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowMode {
    /// One step after the other: the next starts when the current one fails or its time limit
    /// passes without success.
    Cascade,
    /// The second step only when the first fails outright (no time limit).
    PrimaryBackup,
    /// Every step at once.
    AllChannels,
    /// Stages on a schedule: each starts `delay_s` after the previous stage started, unless an
    /// earlier stage succeeded; at once when every started stage failed.
    Staged,
    /// A cascade whose order comes from the recipient's history with the tenant, chosen when
    /// the flow is accepted.
    Smart,
}

impl FlowMode {
    /// Whether a step starting supersedes the earlier steps still on their way (cascade,
    /// smart: their time limits passed unmet), so their RCS messages are withdrawn or revoked.
    /// In the other modes no step is ever taken back.
    pub fn supersedes(self) -> bool {
        matches!(self, FlowMode::Cascade | FlowMode::Smart)
    }

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowMode::Cascade => "cascade",
            FlowMode::PrimaryBackup => "primary_backup",
            FlowMode::AllChannels => "all_channels",
            FlowMode::Staged => "staged",
            FlowMode::Smart => "smart",
        }
    }

    /// Reads [`FlowMode::as_str`]'s form (and `failover`, the other name of `cascade`).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "cascade" | "failover" => FlowMode::Cascade,
            "primary_backup" => FlowMode::PrimaryBackup,
            "all_channels" => FlowMode::AllChannels,
            "staged" => FlowMode::Staged,
            "smart" => FlowMode::Smart,
            _ => return None,
        })
    }
}

/// What counts as success for a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Success {
    /// The carrier or provider took it (`sent` or beyond, not a failure).
    Sent,
    /// It reached the person (`delivered`, or `read`).
    Delivered,
    /// The person opened it (`read`; RCS and WhatsApp report reads).
    Read,
}

impl Success {
    /// Whether a delivery in `status` meets it.
    pub fn met_by(self, status: Status) -> bool {
        match self {
            Success::Sent => status == Status::Sent || status.reached(),
            Success::Delivered => status.reached(),
            Success::Read => status == Status::Read,
        }
    }

    /// Whether a delivery in `status` can no longer meet it (it failed, or it ended short of
    /// the condition; a delivered message may still be read).
    pub fn out_of_reach(self, status: Status) -> bool {
        status.is_final() && !self.met_by(status) && !(self == Success::Read && status.reached())
    }
}

/// One step as stored: its rules and the single-channel request it sends (the JSON of a
/// `POST /v1/messages` body, checked when the flow was accepted and again when it starts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStep {
    /// `sms`, `voice`, `email`.
    pub channel: String,
    /// What counts as success.
    pub success: Success,
    /// How long the step may take to succeed before the next starts (cascade, smart), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// How long after the previous stage started this one starts (staged), seconds; `None`
    /// for the first stage and in other modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<u32>,
    /// Why the step is at this place (smart): its place in the request and its score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart: Option<StepScore>,
    /// The request this step sends.
    pub request: StepRequest,
}

/// A step's single-channel request as stored: its JSON text, kept as it is (reading a flow
/// copies each step's request without building a tree of it; it is parsed into a request only
/// when the step starts).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepRequest(Box<serde_json::value::RawValue>);

impl StepRequest {
    /// The request `value` (a JSON object) as a step stores it.
    pub fn new(value: &serde_json::Value) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(StepRequest)
    }

    /// Its JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// `null`: the request left out of a record kept in memory.
    fn null() -> Self {
        StepRequest(serde_json::value::RawValue::NULL.to_owned())
    }

    /// Whether this is the request left out ([`StepRequest::null`]).
    pub fn is_null(&self) -> bool {
        self.json() == "null"
    }
}

impl PartialEq for StepRequest {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for StepRequest {}

/// A flow as stored (`flows`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Its id (ids share the message id space; `GET /v1/messages/{id}` shows either).
    pub id: MessageId,
    /// The tenant.
    pub tenant: String,
    /// How steps follow each other.
    pub mode: FlowMode,
    /// The steps, in order.
    pub steps: Vec<FlowStep>,
    /// `running`, or the final outcome.
    pub state: FlowState,
    /// Steps that could not start (refused when their turn came), with why.
    pub skipped: Vec<(u8, String)>,
    /// When it was accepted.
    pub created_at: UnixMs,
    /// Last change.
    pub updated_at: UnixMs,
    /// Its deliveries, by step.
    pub deliveries: Vec<FlowDelivery>,
}

impl FlowRecord {
    /// The flow as far as [`decide`] looks at it: this record with each step's request
    /// `null` and without smart scores. The flow runner keeps such a record in memory
    /// between reads of the flow; a step is never started from it.
    pub fn rules_only(&self) -> FlowRecord {
        self.keeping_requests(|_| false)
    }

    /// The flow as far as [`decide`] looks at it plus what starting its remaining steps
    /// needs: [`FlowRecord::rules_only`] with the requests of the steps that have neither
    /// started (a delivery) nor been skipped. The flow runner can start those steps from it
    /// without reading the flow.
    pub fn with_unstarted_requests(&self) -> FlowRecord {
        self.keeping_requests(|step| {
            !self.deliveries.iter().any(|d| d.step == step)
                && !self.skipped.iter().any(|(s, _)| *s == step)
        })
    }

    /// Bytes of the steps' requests this record holds (none in [`FlowRecord::rules_only`]).
    pub fn request_bytes(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| !s.request.is_null())
            .map(|s| s.request.json().len())
            .sum()
    }

    /// Whether this record holds the requests of every step in `steps`: they can be started
    /// from it.
    pub fn can_start(&self, steps: &[u8]) -> bool {
        steps.iter().all(|&step| {
            self.steps
                .get(usize::from(step))
                .is_some_and(|s| !s.request.is_null())
        })
    }

    /// This record without smart scores, with the requests of the steps `keep` says yes to
    /// and `null` for the others.
    fn keeping_requests(&self, keep: impl Fn(u8) -> bool) -> FlowRecord {
        FlowRecord {
            id: self.id,
            tenant: self.tenant.clone(),
            mode: self.mode,
            steps: self
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| FlowStep {
                    channel: s.channel.clone(),
                    success: s.success,
                    timeout_s: s.timeout_s,
                    delay_s: s.delay_s,
                    smart: None,
                    request: if u8::try_from(i).is_ok_and(&keep) {
                        s.request.clone()
                    } else {
                        StepRequest::null()
                    },
                })
                .collect(),
            state: self.state,
            skipped: self.skipped.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            deliveries: self.deliveries.clone(),
        }
    }

    /// Notes that delivery `id` moved to `status` (if that is forwards). False when `id` is
    /// none of this flow's deliveries.
    pub fn moved(&mut self, id: MessageId, status: Status) -> bool {
        match self.deliveries.iter_mut().find(|d| d.id == id) {
            Some(d) => {
                if d.status.can_become(status) {
                    d.status = status;
                }
                true
            }
            None => false,
        }
    }

    /// The first step whose delivery met its success condition, if one did.
    pub fn succeeded_step(&self) -> Option<u8> {
        self.deliveries
            .iter()
            .filter(|d| {
                self.steps
                    .get(usize::from(d.step))
                    .is_some_and(|s| s.success.met_by(d.status))
            })
            .map(|d| d.step)
            .min()
    }
}

/// A flow's outcome so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// Steps may still start or succeed.
    Running,
    /// A step succeeded (its delivery says which); no further step starts.
    Succeeded,
    /// Every step failed or could not start.
    Failed,
}

impl FlowState {
    /// The status of the event written when a flow ends in this state (`flow_succeeded`,
    /// `flow_failed`); `None` while running.
    pub fn event_status(self) -> Option<&'static str> {
        match self {
            FlowState::Running => None,
            FlowState::Succeeded => Some("flow_succeeded"),
            FlowState::Failed => Some("flow_failed"),
        }
    }

    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Running => "running",
            FlowState::Succeeded => "succeeded",
            FlowState::Failed => "failed",
        }
    }

    /// Reads [`FlowState::as_str`]'s form.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "running" => FlowState::Running,
            "succeeded" => FlowState::Succeeded,
            "failed" => FlowState::Failed,
            _ => return None,
        })
    }
}

/// One delivery of a flow: the message a step sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowDelivery {
    /// The step.
    pub step: u8,
    /// Its message.
    pub id: MessageId,
    /// Its status.
    pub status: Status,
    /// When the step started.
    pub started_at: UnixMs,
}

/// A flow written with the request that starts it, or a flow change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowWrite {
    /// A new flow (with its first deliveries in the same commit).
    Insert(Box<FlowRecord>),
    /// A step could not start: recorded so it is not tried again.
    Skip {
        /// The flow.
        id: MessageId,
        /// The step.
        step: u8,
        /// Why.
        reason: String,
        /// When.
        at: UnixMs,
    },
    /// The flow ended; its event (`flow_succeeded` or `flow_failed`) is written with it.
    End {
        /// The flow.
        id: MessageId,
        /// Succeeded or failed.
        state: FlowState,
        /// The step whose delivery met its success condition (a succeeded flow).
        step: Option<u8>,
        /// When.
        at: UnixMs,
    },
}

/// What to do with a running flow now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start these steps.
    Start(Vec<u8>),
    /// The flow succeeded.
    Succeed,
    /// The flow failed.
    Fail,
    /// Nothing until this time (a step's time limit), or until a delivery changes.
    WaitUntil(Option<UnixMs>),
}

/// True for statuses that end a delivery without success on any condition.
fn failed(status: Status) -> bool {
    matches!(
        status,
        Status::Undeliverable
            | Status::Expired
            | Status::Rejected
            | Status::Failed
            | Status::Cancelled
    )
}

/// The rules: what a running flow does now, given its deliveries (and skipped steps).
///
/// - A delivery meeting its step's success condition ends the flow as succeeded (a success
///   after the next step started counts too; no further step starts).
/// - `all_channels`: every step not started starts; the flow fails when every step failed.
/// - `cascade` and `smart`: the next step starts when the last started one failed, or when
///   its `timeout_s` passed; `primary_backup` ignores time limits.
/// - `staged`: a stage starts `delay_s` after the previous one started, or at once when every
///   started stage failed (`decide_staged` has the details).
/// - The flow fails when the last step failed (or was skipped) and no delivery can still
///   succeed. A delivered message may still be read, but a `read` step waits for that at most
///   [`READ_WAIT_MS`] after it started: then it counts as failed.
pub fn decide(flow: &FlowRecord, now: UnixMs) -> Decision {
    // When a delivered, unread `read` step stops counting as pending: a time to look again.
    let read_deadline = flow
        .deliveries
        .iter()
        .filter(|d| {
            d.status == Status::Delivered
                && flow
                    .steps
                    .get(usize::from(d.step))
                    .is_some_and(|s| s.success == Success::Read)
        })
        .map(|d| d.started_at + READ_WAIT_MS)
        .filter(|at| *at > now)
        .min();
    match (rules(flow, now), read_deadline) {
        (Decision::WaitUntil(None), Some(at)) => Decision::WaitUntil(Some(at)),
        (Decision::WaitUntil(Some(t)), Some(at)) => Decision::WaitUntil(Some(t.min(at))),
        (decision, _) => decision,
    }
}

/// Whether a delivery moving to `status` can change what [`decide`] says, in a flow where
/// `sent_succeeds` ([`succeeds_on_sent`]) says whether some step succeeds on `sent`.
/// `accepted`, `queued` and `submitting` are alike to the rules: none meets a success
/// condition, none is final, and time limits count from the step's start, not from its
/// status. `sent` is one more of them unless a step succeeds on it: it is not final, and a
/// `delivered` or `read` condition is still within reach. A move the rules cannot tell apart
/// from the status before changes no decision, so the runner need not read the flow for it.
pub fn may_decide(status: Status, sent_succeeds: bool) -> bool {
    match status {
        Status::Accepted | Status::Queued | Status::Submitting => false,
        Status::Sent => sent_succeeds,
        _ => true,
    }
}

/// Whether some step of a flow succeeds on `sent` (so a delivery's `sent` may end the flow).
pub fn succeeds_on_sent(steps: &[FlowStep]) -> bool {
    steps.iter().any(|s| s.success == Success::Sent)
}

/// How long a `read` step's delivered message may stay unread and still count as pending
/// (7 days, the longest time limit).
pub const READ_WAIT_MS: UnixMs = 7 * 24 * 3_600_000;

/// [`decide`]'s rules, without the look again for a `read` step's wait.
fn rules(flow: &FlowRecord, now: UnixMs) -> Decision {
    let n = flow.steps.len();
    let delivery = |step: usize| flow.deliveries.iter().find(|d| usize::from(d.step) == step);
    let skipped = |step: usize| flow.skipped.iter().any(|(s, _)| usize::from(*s) == step);
    for d in &flow.deliveries {
        if let Some(step) = flow.steps.get(usize::from(d.step)) {
            if step.success.met_by(d.status) {
                return Decision::Succeed;
            }
        }
    }
    // A step is done when it failed, was skipped, or can no longer reach its condition (or
    // waited for a read as long as it may).
    let done = |step: usize| {
        skipped(step)
            || delivery(step).is_some_and(|d| {
                failed(d.status)
                    || flow.steps.get(step).is_some_and(|s| {
                        s.success.out_of_reach(d.status)
                            || (s.success == Success::Read
                                && d.status == Status::Delivered
                                && now >= d.started_at + READ_WAIT_MS)
                    })
            })
    };
    if flow.mode == FlowMode::AllChannels {
        let missing: Vec<u8> = (0..n)
            .filter(|&s| delivery(s).is_none() && !skipped(s))
            .map(|s| s as u8)
            .collect();
        if !missing.is_empty() {
            return Decision::Start(missing);
        }
        return if (0..n).all(done) {
            Decision::Fail
        } else {
            Decision::WaitUntil(None)
        };
    }
    if flow.mode == FlowMode::Staged {
        return decide_staged(flow, now, &done);
    }
    // Cascade, smart and primary/backup: the furthest step reached so far.
    let Some(current) = (0..n).rev().find(|&s| delivery(s).is_some() || skipped(s)) else {
        return Decision::Start(vec![0]);
    };
    let next = current + 1;
    if done(current) {
        if next < n {
            return Decision::Start(vec![next as u8]);
        }
        return if (0..n).all(done) {
            Decision::Fail
        } else {
            Decision::WaitUntil(None)
        };
    }
    let limit = match (flow.mode, delivery(current), flow.steps.get(current)) {
        (FlowMode::Cascade | FlowMode::Smart, Some(d), Some(step)) => {
            step.timeout_s.map(|t| d.started_at + i64::from(t) * 1000)
        }
        _ => None,
    };
    match limit {
        Some(at) if now >= at && next < n => Decision::Start(vec![next as u8]),
        Some(at) if next < n => Decision::WaitUntil(Some(at)),
        _ => Decision::WaitUntil(None),
    }
}

/// `staged` (no stage has succeeded; `done` says which stages failed or were skipped):
///
/// - Stages start in order. The first starts with the flow; stage k is due `delay_s` after
///   stage k-1 started (its delivery's `started_at`; a skipped stage counts as started when
///   it was due), whether the earlier stages are still pending or failed.
/// - When every started stage has failed before the next is due, the next starts at once:
///   nothing is left to wait for, and its own delay counts from then.
/// - The flow fails when every stage started and failed.
///
/// Only stored facts enter (the deliveries' start times, the skipped stages, the delays), so
/// a restart decides the same: a stage whose delivery exists never starts again, and a due
/// time that passed while the gateway was down starts its stage at once.
fn decide_staged(flow: &FlowRecord, now: UnixMs, done: &dyn Fn(usize) -> bool) -> Decision {
    let n = flow.steps.len();
    let mut due = flow.created_at;
    for (k, step) in flow.steps.iter().enumerate() {
        if k > 0 {
            due += i64::from(step.delay_s.unwrap_or(0)) * 1000;
        }
        let delivery = flow.deliveries.iter().find(|d| usize::from(d.step) == k);
        let skipped = flow.skipped.iter().any(|(s, _)| usize::from(*s) == k);
        match delivery {
            Some(d) => due = d.started_at,
            None if skipped => {}
            None if k == 0 || (0..k).all(done) || now >= due => {
                return Decision::Start(vec![k as u8])
            }
            None => return Decision::WaitUntil(Some(due)),
        }
    }
    if (0..n).all(done) {
        Decision::Fail
    } else {
        Decision::WaitUntil(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(success: Success, timeout_s: Option<u32>) -> FlowStep {
        FlowStep {
            channel: "sms".into(),
            success,
            timeout_s,
            delay_s: None,
            smart: None,
            request: StepRequest::new(&serde_json::json!({})).unwrap(),
        }
    }

    fn stage(success: Success, delay_s: Option<u32>) -> FlowStep {
        FlowStep {
            delay_s,
            ..step(success, None)
        }
    }

    fn flow(mode: FlowMode, steps: Vec<FlowStep>, deliveries: &[(u8, Status, i64)]) -> FlowRecord {
        FlowRecord {
            id: MessageId(1),
            tenant: "t".into(),
            mode,
            steps,
            state: FlowState::Running,
            skipped: Vec::new(),
            created_at: 0,
            updated_at: 0,
            deliveries: deliveries
                .iter()
                .map(|&(step, status, started_at)| FlowDelivery {
                    step,
                    id: MessageId(100 + i64::from(step)),
                    status,
                    started_at,
                })
                .collect(),
        }
    }

    #[test]
    fn the_rules_alone_decide_as_the_whole_flow() {
        let mut whole = flow(
            FlowMode::Cascade,
            vec![
                step(Success::Delivered, Some(60)),
                step(Success::Sent, None),
            ],
            &[(0, Status::Sent, 1_000)],
        );
        whole.steps[0].request = StepRequest::new(&serde_json::json!({"to": "+4479"})).unwrap();
        whole.skipped.push((1, "refused".into()));
        let view = whole.rules_only();
        assert_eq!(view.steps[0].request.json(), "null");
        assert_eq!(view.deliveries, whole.deliveries);
        assert_eq!(view.skipped, whole.skipped);
        for now in [1_000, 60_999, 61_000] {
            assert_eq!(decide(&view, now), decide(&whole, now), "at {now}");
        }
    }

    #[test]
    fn a_view_with_unstarted_requests_starts_only_those_steps() {
        let request = |to: &str| StepRequest::new(&serde_json::json!({ "to": to })).unwrap();
        let mut whole = flow(
            FlowMode::Cascade,
            vec![
                step(Success::Delivered, Some(60)),
                step(Success::Delivered, Some(60)),
                step(Success::Sent, None),
            ],
            &[(0, Status::Accepted, 1_000)],
        );
        for (i, s) in whole.steps.iter_mut().enumerate() {
            s.request = request(&format!("+44790000000{i}"));
        }
        whole.skipped.push((1, "refused".into()));
        let view = whole.with_unstarted_requests();
        // Step 0 started and step 1 was skipped: only step 2's request is kept.
        assert!(view.steps[0].request.is_null());
        assert!(view.steps[1].request.is_null());
        assert_eq!(view.steps[2].request, whole.steps[2].request);
        assert_eq!(view.request_bytes(), whole.steps[2].request.json().len());
        assert!(view.can_start(&[2]));
        assert!(!view.can_start(&[1, 2]));
        assert!(!view.rules_only().can_start(&[2]));
        assert_eq!(view.rules_only().request_bytes(), 0);
        for now in [1_000, 60_999, 61_000] {
            assert_eq!(decide(&view, now), decide(&whole, now), "at {now}");
        }
        // A refused first step: the view decides to start what it holds.
        let mut view = view;
        assert!(view.moved(MessageId(100), Status::Rejected));
        assert_eq!(decide(&view, 1_001), Decision::Start(vec![2]));
        assert!(view.can_start(&[2]));
    }

    #[test]
    fn a_view_takes_forward_moves_of_its_own_deliveries() {
        let mut view = flow(
            FlowMode::AllChannels,
            vec![
                step(Success::Delivered, None),
                step(Success::Delivered, None),
            ],
            &[(0, Status::Accepted, 0), (1, Status::Accepted, 0)],
        );
        assert!(view.moved(MessageId(100), Status::Delivered));
        // A late `sent` (its commit told after the receipt's) does not move it back.
        assert!(view.moved(MessageId(100), Status::Sent));
        assert_eq!(view.deliveries[0].status, Status::Delivered);
        assert_eq!(decide(&view, 0), Decision::Succeed);
        assert!(
            !view.moved(MessageId(7), Status::Failed),
            "not a delivery of the flow"
        );
    }

    #[test]
    fn moves_before_sent_decide_nothing() {
        let early = [Status::Accepted, Status::Queued, Status::Submitting];
        for status in Status::ALL {
            assert_eq!(
                may_decide(status, true),
                !early.contains(&status),
                "{status:?}"
            );
            let alike = early.contains(&status) || status == Status::Sent;
            assert_eq!(may_decide(status, false), !alike, "{status:?}");
        }
        let success = [Success::Sent, Success::Delivered, Success::Read];
        for mode in [
            FlowMode::Cascade,
            FlowMode::PrimaryBackup,
            FlowMode::AllChannels,
            FlowMode::Staged,
            FlowMode::Smart,
        ] {
            for first in success {
                for second in success {
                    let steps = || vec![stage(first, None), stage(second, Some(30))];
                    let sent_succeeds = succeeds_on_sent(&steps());
                    assert_eq!(
                        sent_succeeds,
                        first == Success::Sent || second == Success::Sent
                    );
                    // The statuses `may_decide` calls alike must decide alike, whichever
                    // step is in one of them and whatever the other step's status is.
                    let alike: Vec<Status> = Status::ALL
                        .into_iter()
                        .filter(|&s| !may_decide(s, sent_succeeds))
                        .collect();
                    for now in [1_000, 40_000, 100_000] {
                        for other in [Status::Queued, Status::Sent, Status::Delivered] {
                            for moving in [0u8, 1] {
                                let decisions: Vec<Decision> = alike
                                    .iter()
                                    .map(|&s| {
                                        let (a, b) =
                                            if moving == 0 { (s, other) } else { (other, s) };
                                        let f = flow(mode, steps(), &[(0, a, 0), (1, b, 0)]);
                                        decide(&f, now)
                                    })
                                    .collect();
                                assert!(
                                    decisions.windows(2).all(|w| w[0] == w[1]),
                                    "{mode:?} {first:?} {second:?} step {moving} at {now} \
                                     beside {other:?}: {decisions:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn cascade_moves_on_after_failure_or_its_time_limit() {
        let steps = || {
            vec![
                step(Success::Delivered, Some(60)),
                step(Success::Sent, None),
            ]
        };
        let f = flow(FlowMode::Cascade, steps(), &[]);
        assert_eq!(decide(&f, 0), Decision::Start(vec![0]));
        let f = flow(FlowMode::Cascade, steps(), &[(0, Status::Sent, 1_000)]);
        assert_eq!(decide(&f, 2_000), Decision::WaitUntil(Some(61_000)));
        assert_eq!(decide(&f, 61_000), Decision::Start(vec![1]));
        let f = flow(FlowMode::Cascade, steps(), &[(0, Status::Rejected, 1_000)]);
        assert_eq!(decide(&f, 2_000), Decision::Start(vec![1]));
        let f = flow(
            FlowMode::Cascade,
            steps(),
            &[(0, Status::Sent, 0), (1, Status::Queued, 61_000)],
        );
        assert_eq!(decide(&f, 70_000), Decision::WaitUntil(None));
        let f = flow(
            FlowMode::Cascade,
            steps(),
            &[(0, Status::Delivered, 0), (1, Status::Queued, 61_000)],
        );
        assert_eq!(
            decide(&f, 70_000),
            Decision::Succeed,
            "a late success counts"
        );
        let f = flow(
            FlowMode::Cascade,
            steps(),
            &[(0, Status::Expired, 0), (1, Status::Failed, 61_000)],
        );
        assert_eq!(decide(&f, 70_000), Decision::Fail);
        let f = flow(
            FlowMode::Cascade,
            steps(),
            &[(0, Status::Sent, 0), (1, Status::Failed, 61_000)],
        );
        assert_eq!(
            decide(&f, 70_000),
            Decision::WaitUntil(None),
            "the first step may still be delivered"
        );
    }

    #[test]
    fn primary_backup_waits_for_a_hard_failure() {
        let steps = || vec![step(Success::Delivered, Some(1)), step(Success::Sent, None)];
        let f = flow(FlowMode::PrimaryBackup, steps(), &[(0, Status::Sent, 0)]);
        assert_eq!(decide(&f, 3_600_000), Decision::WaitUntil(None));
        let f = flow(
            FlowMode::PrimaryBackup,
            steps(),
            &[(0, Status::Undeliverable, 0)],
        );
        assert_eq!(decide(&f, 10), Decision::Start(vec![1]));
    }

    #[test]
    fn all_channels_start_together_and_fail_together() {
        let steps = || vec![step(Success::Sent, None), step(Success::Sent, None)];
        let f = flow(FlowMode::AllChannels, steps(), &[]);
        assert_eq!(decide(&f, 0), Decision::Start(vec![0, 1]));
        let f = flow(
            FlowMode::AllChannels,
            steps(),
            &[(0, Status::Failed, 0), (1, Status::Submitting, 0)],
        );
        assert_eq!(decide(&f, 0), Decision::WaitUntil(None));
        let f = flow(
            FlowMode::AllChannels,
            steps(),
            &[(0, Status::Failed, 0), (1, Status::Sent, 0)],
        );
        assert_eq!(decide(&f, 0), Decision::Succeed);
    }

    /// WhatsApp → 5 min → SMS → 30 min → voice, each stage succeeding when read (WhatsApp)
    /// or delivered.
    fn staged() -> Vec<FlowStep> {
        vec![
            stage(Success::Read, None),
            stage(Success::Delivered, Some(300)),
            stage(Success::Delivered, Some(1_800)),
        ]
    }

    #[test]
    fn staged_starts_each_stage_after_its_delay_from_the_previous_start() {
        const MIN: i64 = 60_000;
        let f = flow(FlowMode::Staged, staged(), &[]);
        assert_eq!(decide(&f, 0), Decision::Start(vec![0]));
        // Delivered but not read: still pending, the next stage waits for its delay.
        let f = flow(FlowMode::Staged, staged(), &[(0, Status::Delivered, 0)]);
        assert_eq!(decide(&f, MIN), Decision::WaitUntil(Some(5 * MIN)));
        assert_eq!(decide(&f, 5 * MIN), Decision::Start(vec![1]));
        // The third stage counts from when the second actually started.
        let f = flow(
            FlowMode::Staged,
            staged(),
            &[(0, Status::Delivered, 0), (1, Status::Sent, 5 * MIN + 700)],
        );
        assert_eq!(
            decide(&f, 6 * MIN),
            Decision::WaitUntil(Some(35 * MIN + 700))
        );
        assert_eq!(decide(&f, 35 * MIN + 700), Decision::Start(vec![2]));
        // One stage failing while another is pending does not hurry the next.
        let f = flow(
            FlowMode::Staged,
            staged(),
            &[
                (0, Status::Delivered, 0),
                (1, Status::Undeliverable, 5 * MIN),
            ],
        );
        assert_eq!(decide(&f, 6 * MIN), Decision::WaitUntil(Some(35 * MIN)));
        // A read ends it: no further stage.
        let f = flow(FlowMode::Staged, staged(), &[(0, Status::Read, 0)]);
        assert_eq!(decide(&f, 60 * MIN), Decision::Succeed);
    }

    #[test]
    fn staged_moves_on_at_once_when_every_started_stage_failed() {
        const MIN: i64 = 60_000;
        let f = flow(FlowMode::Staged, staged(), &[(0, Status::Rejected, 0)]);
        assert_eq!(decide(&f, 1_000), Decision::Start(vec![1]));
        // The next delay counts from that early start.
        let f = flow(
            FlowMode::Staged,
            staged(),
            &[(0, Status::Rejected, 0), (1, Status::Sent, 1_000)],
        );
        assert_eq!(
            decide(&f, 2_000),
            Decision::WaitUntil(Some(30 * MIN + 1_000))
        );
        let mut f = flow(FlowMode::Staged, staged(), &[(0, Status::Expired, 0)]);
        f.skipped.push((1, "no route".into()));
        assert_eq!(decide(&f, 1_000), Decision::Start(vec![2]));
        let f = flow(
            FlowMode::Staged,
            staged(),
            &[
                (0, Status::Rejected, 0),
                (1, Status::Undeliverable, 1_000),
                (2, Status::Failed, 2_000),
            ],
        );
        assert_eq!(decide(&f, 3_000), Decision::Fail);
        // The last stage started and failed, an earlier one may still be read.
        let f = flow(
            FlowMode::Staged,
            staged(),
            &[
                (0, Status::Delivered, 0),
                (1, Status::Undeliverable, 5 * MIN),
                (2, Status::Failed, 35 * MIN),
            ],
        );
        assert_ne!(decide(&f, 36 * MIN), Decision::Fail);
    }

    #[test]
    fn staged_a_late_success_ends_the_flow_and_recovery_repeats_nothing() {
        const MIN: i64 = 60_000;
        // The first stage is read after the second started: succeeded, the third never
        // starts, both deliveries stay.
        let f = flow(
            FlowMode::Staged,
            staged(),
            &[(0, Status::Read, 0), (1, Status::Sent, 5 * MIN)],
        );
        assert_eq!(decide(&f, 90 * MIN), Decision::Succeed);
        // After a crash the same record decides the same: a started stage is not started
        // again, and a due time that passed while down starts its stage at once, once.
        let f = flow(
            FlowMode::Staged,
            staged(),
            &[(0, Status::Delivered, 0), (1, Status::Sent, 5 * MIN)],
        );
        assert_eq!(decide(&f, 10 * MIN), Decision::WaitUntil(Some(35 * MIN)));
        assert_eq!(decide(&f, 300 * MIN), Decision::Start(vec![2]));
        let f = flow(FlowMode::Staged, staged(), &[(0, Status::Sent, 0)]);
        assert_eq!(decide(&f, 300 * MIN), Decision::Start(vec![1]));
    }

    #[test]
    fn read_is_a_success_condition_of_its_own() {
        assert!(Success::Read.met_by(Status::Read));
        assert!(!Success::Read.met_by(Status::Delivered));
        assert!(Success::Delivered.met_by(Status::Read));
        assert!(Success::Sent.met_by(Status::Read));
        assert!(!Success::Read.out_of_reach(Status::Delivered));
        assert!(Success::Read.out_of_reach(Status::Undeliverable));
        // A cascade waits on a delivered, unread step until its time limit.
        let steps = || vec![step(Success::Read, Some(60)), step(Success::Sent, None)];
        let f = flow(FlowMode::Cascade, steps(), &[(0, Status::Delivered, 0)]);
        assert_eq!(decide(&f, 1_000), Decision::WaitUntil(Some(60_000)));
        assert_eq!(decide(&f, 60_000), Decision::Start(vec![1]));
    }

    #[test]
    fn a_read_step_waits_for_its_read_a_bounded_time() {
        const MIN: i64 = 60_000;
        // Every stage started; the WhatsApp message is delivered, not read; the others failed.
        let f = flow(
            FlowMode::Staged,
            staged(),
            &[
                (0, Status::Delivered, 0),
                (1, Status::Undeliverable, 5 * MIN),
                (2, Status::Failed, 35 * MIN),
            ],
        );
        assert_eq!(
            decide(&f, 36 * MIN),
            Decision::WaitUntil(Some(READ_WAIT_MS))
        );
        assert_eq!(decide(&f, READ_WAIT_MS), Decision::Fail);
        // A time limit that comes first stays the time to look again.
        let steps = vec![step(Success::Read, Some(60)), step(Success::Sent, None)];
        let f = flow(FlowMode::Cascade, steps, &[(0, Status::Delivered, 0)]);
        assert_eq!(decide(&f, 1_000), Decision::WaitUntil(Some(60_000)));
    }

    #[test]
    fn smart_runs_its_stored_order_as_a_cascade() {
        let steps = || {
            vec![
                step(Success::Delivered, Some(60)),
                step(Success::Delivered, None),
            ]
        };
        let f = flow(FlowMode::Smart, steps(), &[]);
        assert_eq!(decide(&f, 0), Decision::Start(vec![0]));
        let f = flow(FlowMode::Smart, steps(), &[(0, Status::Sent, 0)]);
        assert_eq!(decide(&f, 1_000), Decision::WaitUntil(Some(60_000)));
        assert_eq!(decide(&f, 60_000), Decision::Start(vec![1]));
        let f = flow(
            FlowMode::Smart,
            steps(),
            &[(0, Status::Delivered, 0), (1, Status::Sent, 60_000)],
        );
        assert_eq!(
            decide(&f, 61_000),
            Decision::Succeed,
            "a late success counts"
        );
    }

    #[test]
    fn skipped_steps_count_as_failed() {
        let mut f = flow(
            FlowMode::Cascade,
            vec![step(Success::Sent, None), step(Success::Sent, None)],
            &[],
        );
        f.skipped.push((0, "no route".into()));
        assert_eq!(decide(&f, 0), Decision::Start(vec![1]));
        f.skipped.push((1, "no route".into()));
        assert_eq!(decide(&f, 0), Decision::Fail);
    }
}
