//! Shapes several answers share: a delivery in a 202, times as RFC 3339.

use serde::Serialize;

/// One delivery in a 202: a message on one channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Delivery {
    /// The message id (a flow's deliveries each have their own).
    pub(crate) id: String,
    /// "sms", "voice" or "email".
    pub(crate) channel: &'static str,
    /// Destination.
    pub(crate) to: String,
    /// Carrier chosen at acceptance (failover may change it).
    pub(crate) carrier: Option<String>,
    /// Segments.
    pub(crate) segments: u16,
    /// "gsm7", "ucs2", "latin1", "binary" (SMPP only); "voice" for a call, "email" for an email.
    pub(crate) encoding: &'static str,
    /// Estimated price for the tenant, decimal.
    pub(crate) estimated_cost: Option<String>,
    /// Its currency.
    pub(crate) currency: Option<String>,
}

/// A unix-milliseconds time as RFC 3339 (UTC); empty if out of range.
pub(crate) use crate::domain::rfc3339;
