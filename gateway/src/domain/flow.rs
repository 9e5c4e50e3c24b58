//! Flows: one message to a person over several channels (`mode` on `POST /v1/messages`), each
//! step a delivery (an ordinary message) on one channel, and the rules that start the next
//! step. The rules are a pure function ([`decide`]) of the flow, its deliveries and the time,
//! so a restart re-reads the deliveries and decides again.

use serde::{Deserialize, Serialize};

use super::{MessageId, Status, UnixMs};

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
}

impl FlowMode {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowMode::Cascade => "cascade",
            FlowMode::PrimaryBackup => "primary_backup",
            FlowMode::AllChannels => "all_channels",
        }
    }
}

/// What counts as success for a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Success {
    /// The carrier or provider took it (`sent` or beyond, not a failure).
    Sent,
    /// It reached the person (`delivered`).
    Delivered,
}

impl Success {
    /// Whether a delivery in `status` meets it.
    pub fn met_by(self, status: Status) -> bool {
        match self {
            Success::Sent => matches!(status, Status::Sent | Status::Delivered),
            Success::Delivered => status == Status::Delivered,
        }
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
    /// How long the step may take to succeed before the next starts (cascade), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// The request this step sends.
    pub request: serde_json::Value,
}

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
    /// The flow ended.
    End {
        /// The flow.
        id: MessageId,
        /// Succeeded or failed.
        state: FlowState,
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
/// - `cascade`: the next step starts when the last started one failed, or when its
///   `timeout_s` passed; `primary_backup` ignores time limits.
/// - The flow fails when the last step failed (or was skipped) and no delivery can still
///   succeed.
pub fn decide(flow: &FlowRecord, now: UnixMs) -> Decision {
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
    // A step is done when it failed, was skipped, or (for success conditions beyond `sent`)
    // can no longer reach its condition.
    let done = |step: usize| {
        skipped(step)
            || delivery(step).is_some_and(|d| failed(d.status) || d.status == Status::Delivered)
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
    // Cascade and primary/backup: the furthest step reached so far.
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
        (FlowMode::Cascade, Some(d), Some(step)) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn step(success: Success, timeout_s: Option<u32>) -> FlowStep {
        FlowStep {
            channel: "sms".into(),
            success,
            timeout_s,
            request: serde_json::json!({}),
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
