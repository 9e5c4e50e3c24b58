//! `smart` flows: the order of the steps from the recipient's history with the tenant.
//!
//! When a `smart` flow is accepted, the store reads the tenant's recent messages to the
//! recipient's addresses ([`PastMessage`], at most [`HISTORY_LIMIT`] from the last
//! [`HISTORY_DAYS`] days); [`rank`] scores each step's channel from them and orders the steps
//! by score, best first, ties in the order given. Each step keeps its place in the request and
//! its score ([`StepScore`]), so `GET /v1/messages/{id}` shows the order and why. The flow
//! then runs as a cascade.
//!
//! A channel's score, from 0 to 1, weighs four terms, each from 0 to 1 and 0.5 when the
//! history says nothing about it:
//!
//! | term | weight | from the channel's past messages |
//! | --- | --- | --- |
//! | delivery | 0.5 | (reached + 1) / (ended + 2): delivered or read, out of those that ended |
//! | read | 0.2 | (read + 1) / (reached + 2), for channels that report reads (RCS, WhatsApp) |
//! | speed | 0.2 | 1 / (1 + median seconds from acceptance to delivery / 60) |
//! | cost | 0.1 | the cheapest channel's average price / this channel's average price |
//!
//! The +1/+2 (Laplace's rule) keeps one lucky or unlucky message from deciding alone and
//! makes a channel without history score 0.5 on delivery. Scores are kept in thousandths,
//! so the order is exactly what the stored scores say.

use serde::{Deserialize, Serialize};

use super::{Status, UnixMs};

/// How far back the history goes, days.
pub const HISTORY_DAYS: i64 = 90;
/// Most past messages read for one recipient (the newest).
pub const HISTORY_LIMIT: u32 = 200;

/// One past message of the tenant to one of the recipient's addresses, as [`rank`] needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct PastMessage {
    /// Its channel (`sms`, `email`, `whatsapp`, …).
    pub channel: String,
    /// Its status now.
    pub status: Status,
    /// When it was accepted.
    pub created_at: UnixMs,
    /// When it was delivered (or read, when no delivery was reported first).
    pub reached_at: Option<UnixMs>,
    /// What it cost, in the tenant's currency.
    pub price: Option<f64>,
}

/// Why a `smart` step is where it is. Rates and the score are in thousandths (0–1000).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepScore {
    /// The step's place in the request (0-based).
    pub given: u8,
    /// The channel's score: what the order follows.
    pub score: u16,
    /// The channel's past messages to the recipient that ended (the evidence).
    pub messages: u32,
    /// Delivered or read, out of those that ended; `None` without history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_rate: Option<u16>,
    /// Read, out of those delivered; `None` when the channel reports no reads or none was
    /// delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_rate: Option<u16>,
    /// Median time from acceptance to delivery, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// Average price, in millionths of the tenant's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micros: Option<u64>,
}

/// Whether `channel` reports reads.
fn reports_reads(channel: &str) -> bool {
    matches!(channel, "rcs" | "whatsapp")
}

/// What the history says about one channel.
struct Facts {
    ended: u32,
    reached: u32,
    read: u32,
    latency_ms: Option<i64>,
    cost: Option<f64>,
}

fn facts(channel: &str, history: &[PastMessage]) -> Facts {
    let mine = || history.iter().filter(|m| m.channel == channel);
    let ended = mine().filter(|m| m.status.is_final()).count() as u32;
    let reached = mine().filter(|m| m.status.reached()).count() as u32;
    let read = mine().filter(|m| m.status == Status::Read).count() as u32;
    let mut latencies: Vec<i64> = mine()
        .filter_map(|m| m.reached_at.map(|at| (at - m.created_at).max(0)))
        .collect();
    latencies.sort_unstable();
    let latency_ms = latencies.get(latencies.len() / 2).copied();
    let prices: Vec<f64> = mine().filter_map(|m| m.price).collect();
    let cost = (!prices.is_empty()).then(|| prices.iter().sum::<f64>() / prices.len() as f64);
    Facts {
        ended,
        reached,
        read,
        latency_ms,
        cost,
    }
}

fn thousandths(x: f64) -> u16 {
    (x.clamp(0.0, 1.0) * 1000.0).round() as u16
}

/// Scores the channels of `channels` (a flow's steps, in the order given) from `history` and
/// returns the order to run them in (indices into `channels`), each with its score.
pub fn rank(channels: &[&str], history: &[PastMessage]) -> Vec<(usize, StepScore)> {
    let facts: Vec<Facts> = channels.iter().map(|c| facts(c, history)).collect();
    let cheapest = facts
        .iter()
        .filter_map(|f| f.cost)
        .filter(|c| *c > 0.0)
        .fold(None, |min: Option<f64>, c| {
            Some(min.map_or(c, |m| m.min(c)))
        });
    let mut ranked: Vec<(usize, StepScore)> = channels
        .iter()
        .zip(&facts)
        .enumerate()
        .map(|(i, (channel, f))| {
            let delivery = f64::from(f.reached + 1) / f64::from(f.ended + 2);
            let read = if reports_reads(channel) {
                f64::from(f.read + 1) / f64::from(f.reached + 2)
            } else {
                0.5
            };
            let speed = f
                .latency_ms
                .map_or(0.5, |ms| 1.0 / (1.0 + ms as f64 / 60_000.0));
            let cost = match (cheapest, f.cost) {
                (Some(min), Some(c)) if c > 0.0 => min / c,
                (_, Some(_)) => 1.0,
                _ => 0.5,
            };
            let score = 0.5 * delivery + 0.2 * read + 0.2 * speed + 0.1 * cost;
            let score = StepScore {
                given: i as u8,
                score: thousandths(score),
                messages: f.ended,
                delivery_rate: (f.ended > 0)
                    .then(|| thousandths(f64::from(f.reached) / f64::from(f.ended))),
                read_rate: (reports_reads(channel) && f.reached > 0)
                    .then(|| thousandths(f64::from(f.read) / f64::from(f.reached))),
                latency_ms: f.latency_ms,
                cost_micros: f.cost.map(|c| (c * 1e6).round() as u64),
            };
            (i, score)
        })
        .collect();
    // Stable: equal scores keep the order given.
    ranked.sort_by_key(|(_, s)| std::cmp::Reverse(s.score));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(channel: &str, status: Status, latency_ms: Option<i64>, price: f64) -> PastMessage {
        PastMessage {
            channel: channel.into(),
            status,
            created_at: 1_000,
            reached_at: latency_ms.map(|l| 1_000 + l),
            price: Some(price),
        }
    }

    fn order(channels: &[&str], history: &[PastMessage]) -> Vec<usize> {
        rank(channels, history)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn without_history_the_given_order_stands() {
        assert_eq!(order(&["sms", "whatsapp", "email"], &[]), vec![0, 1, 2]);
        let ranked = rank(&["sms", "whatsapp"], &[]);
        assert_eq!(ranked[0].1.score, ranked[1].1.score);
        assert_eq!(ranked[0].1.score, 500);
        assert_eq!(ranked[0].1.delivery_rate, None);
    }

    #[test]
    fn a_channel_that_reaches_the_person_goes_first() {
        let reads = vec![
            past("whatsapp", Status::Read, Some(2_000), 0.005),
            past("whatsapp", Status::Read, Some(3_000), 0.005),
            past("sms", Status::Undeliverable, None, 0.04),
        ];
        assert_eq!(order(&["sms", "whatsapp"], &reads), vec![1, 0]);
        let ranked = rank(&["sms", "whatsapp"], &reads);
        let wa = &ranked[0].1;
        assert_eq!((wa.given, wa.messages), (1, 2));
        assert_eq!(wa.delivery_rate, Some(1000));
        assert_eq!(wa.read_rate, Some(1000));
        assert_eq!(wa.latency_ms, Some(3_000));
        assert_eq!(wa.cost_micros, Some(5_000));
        assert_eq!(ranked[1].1.delivery_rate, Some(0));
        assert_eq!(ranked[1].1.read_rate, None, "SMS reports no reads");

        let fails = vec![
            past("whatsapp", Status::Undeliverable, None, 0.005),
            past("whatsapp", Status::Undeliverable, None, 0.005),
        ];
        assert_eq!(order(&["whatsapp", "sms"], &fails), vec![1, 0]);
    }

    #[test]
    fn reads_speed_and_price_break_even_delivery() {
        let history = vec![
            past("rcs", Status::Delivered, Some(1_000), 0.01),
            past("whatsapp", Status::Read, Some(1_000), 0.01),
        ];
        assert_eq!(order(&["rcs", "whatsapp"], &history), vec![1, 0]);
        let history = vec![
            past("sms", Status::Delivered, Some(600_000), 0.01),
            past("voice", Status::Delivered, Some(1_000), 0.01),
        ];
        assert_eq!(order(&["sms", "voice"], &history), vec![1, 0]);
        let history = vec![
            past("sms", Status::Delivered, Some(1_000), 0.04),
            past("voice", Status::Delivered, Some(1_000), 0.01),
        ];
        assert_eq!(order(&["sms", "voice"], &history), vec![1, 0]);
    }

    #[test]
    fn messages_still_on_their_way_count_only_for_speed_and_price() {
        let history = vec![past("sms", Status::Sent, None, 0.01)];
        let ranked = rank(&["sms"], &history);
        assert_eq!(ranked[0].1.messages, 0);
        assert_eq!(ranked[0].1.delivery_rate, None);
    }
}
