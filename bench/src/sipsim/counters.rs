//! What the simulator saw and did, as lock-free counters and a JSON snapshot for `GET /stats`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Counters shared by the SIP loop and the control port.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`Counters`].
        #[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
        pub struct Snapshot {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Counters {
            /// A copy for reporting (each counter read once; not one atomic instant).
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Initial INVITEs received (retransmissions absorbed by the transaction layer).
    invites,
    /// INVITEs answered with a 2xx.
    answered,
    /// INVITEs answered with a 3xx–6xx chosen by the behaviour.
    rejected,
    /// 180 Ringing sent.
    ringing_sent,
    /// 183 Session Progress sent.
    progress_sent,
    /// ACKs received for our 2xx.
    acks,
    /// BYEs received in a known dialog (answered 200).
    byes_received,
    /// BYEs we sent (hang-up behaviour).
    byes_sent,
    /// Our BYEs answered with a 2xx.
    byes_answered,
    /// CANCELs received (answered 200, or 481 if nothing to cancel).
    cancels,
    /// INVITEs ended with 487 after a CANCEL.
    cancelled,
    /// re-INVITEs in a dialog (answered 200 with SDP).
    reinvites,
    /// OPTIONS received (answered 200).
    options,
    /// Other requests (answered 200 in a dialog, 501 or 481 otherwise).
    other_requests,
    /// Requests in an unknown dialog (answered 481).
    unknown_dialog,
    /// Offers we could not answer (488).
    sdp_failures,
    /// Datagrams that did not parse as SIP.
    malformed,
    /// Malformed requests answered 400 (the rest were dropped).
    malformed_answered,
    /// Client transactions that timed out (our BYE unanswered) or server ones without ACK.
    timeouts,
    /// Calls in progress (INVITE received, not yet ended).
    active_calls,
    /// RTP packets received on the media port for a known call.
    rtp_packets,
    /// RTP payload bytes received for a known call.
    rtp_bytes,
    /// RTP packets from an address no call negotiated, or that did not decode.
    rtp_unmatched,
    /// DTMF digits decoded from RFC 4733 events.
    dtmf_digits,
    /// DTMF digits sent as RFC 4733 events (`send_dtmf`).
    dtmf_sent,
}

impl Counters {
    /// Adds one.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Adds `n`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Subtracts one (saturating at zero).
    pub fn dec(counter: &AtomicU64) {
        let _ = counter.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
    }
}
