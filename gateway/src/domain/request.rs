//! What a request leaves in the store besides its messages: its idempotency record and its batch.

use super::UnixMs;

/// What a request leaves in the store besides its messages, written in the same transaction
/// (carried by the request's first [`NewMessage`](crate::domain::NewMessage)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestRecord {
    /// The response to replay for this `Idempotency-Key`, if the request had one.
    pub idempotency: Option<IdempotencyRecord>,
    /// The batch, for `POST /v1/messages/batch`.
    pub batch: Option<BatchRecord>,
    /// The flows the request starts (one for a send, one per recipient for a batch of flows;
    /// their first deliveries are the request's messages).
    pub flows: Vec<super::FlowWrite>,
}

/// A response kept for an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Whose key (keys are per tenant).
    pub tenant: String,
    /// The header's value.
    pub key: String,
    /// Hex SHA-256 of the method, path and body: the same key with another body is refused.
    pub body_hash: String,
    /// HTTP status of the original response.
    pub status: u16,
    /// Its JSON body.
    pub response: String,
    /// When it was given; honoured for 24 h, deleted by retention (`[retention]`).
    pub created_at: UnixMs,
}

/// A batch send, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    /// `bat_` and the first message's id digits.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// When it was accepted.
    pub created_at: UnixMs,
    /// Recipients in the request.
    pub recipients: u32,
    /// Messages stored.
    pub accepted: u32,
    /// Recipients refused (listed in the response).
    pub rejected: u32,
}

/// A batch with its messages counted by status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchSummary {
    /// The batch.
    pub batch: BatchRecord,
    /// Messages per status name, only statuses with at least one message.
    pub counts: Vec<(String, u64)>,
}
