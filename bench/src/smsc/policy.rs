//! What the simulator does with each request: the outcome mix of delivery receipts and the
//! faults it injects. Pure decisions from a seeded random source, so a run can be replayed.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use switchyard_protocols::smpp::CommandStatus;

/// The final state a simulated delivery receipt reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// DELIVRD.
    Delivrd,
    /// UNDELIV.
    Undeliv,
    /// EXPIRED.
    Expired,
    /// REJECTD.
    Rejectd,
}

impl Outcome {
    /// The `stat:` word of a text receipt.
    pub fn stat(self) -> &'static str {
        match self {
            Outcome::Delivrd => "DELIVRD",
            Outcome::Undeliv => "UNDELIV",
            Outcome::Expired => "EXPIRED",
            Outcome::Rejectd => "REJECTD",
        }
    }

    /// The message_state TLV value (SMPP 3.4 §5.2.28).
    pub fn message_state(self) -> u8 {
        match self {
            Outcome::Delivrd => 2,
            Outcome::Expired => 3,
            Outcome::Undeliv => 5,
            Outcome::Rejectd => 8,
        }
    }

    /// The `err:` code a receipt with this outcome carries.
    pub fn error_code(self) -> u16 {
        match self {
            Outcome::Delivrd => 0,
            Outcome::Undeliv => 1,
            Outcome::Expired => 27,
            Outcome::Rejectd => 11,
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        match s.to_ascii_uppercase().as_str() {
            "DELIVRD" | "DELIVERED" => Some(Outcome::Delivrd),
            "UNDELIV" | "UNDELIVERABLE" => Some(Outcome::Undeliv),
            "EXPIRED" => Some(Outcome::Expired),
            "REJECTD" | "REJECTED" => Some(Outcome::Rejectd),
            _ => None,
        }
    }
}

/// How receipts are encoded in the deliver_sm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DlrStyle {
    /// The text format in short_message only.
    Text,
    /// receipted_message_id / message_state / network_error_code TLVs only.
    Tlv,
    /// Both (what most SMSCs send).
    Both,
}

/// How message ids appear in receipts relative to submit_sm_resp (to exercise id matching).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IdFormat {
    /// The same string as in submit_sm_resp.
    Same,
    /// The id's number in decimal (with `--id-style clock` or `hex`: hex in the response and
    /// decimal in the receipt, a common carrier quirk).
    Decimal,
    /// The id's number in lower-case hex, no padding (with `--id-style decimal`: decimal in the
    /// response and hex in the receipt).
    Hex,
    /// Upper-case hex with leading zeros (20 digits).
    UpperHex,
}

/// How the simulator numbers the ids it gives in submit_sm_resp, as real SMSCs do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IdStyle {
    /// Lower-case hex of a counter seeded from the clock (unique across restarts).
    Clock,
    /// 1, 2, 3, … in decimal.
    Decimal,
    /// 1, 2, …, 9, a, b, … in lower-case hex.
    Hex,
    /// Decimal from 1, zero-padded to 10 digits (`0000000001`).
    Padded,
    /// A UUID derived from a counter (`xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx`).
    Uuid,
}

impl IdStyle {
    /// The first number of the counter (`clock`: from the time, so ids stay unique across
    /// restarts; the others from 1, as those SMSCs do).
    pub fn first(self, unix_secs: u64) -> u64 {
        match self {
            IdStyle::Clock => unix_secs << 24,
            _ => 1,
        }
    }

    /// The submit_sm_resp id of counter value `n`.
    pub fn text(self, n: u64) -> String {
        match self {
            IdStyle::Clock | IdStyle::Hex => format!("{n:x}"),
            IdStyle::Decimal => n.to_string(),
            IdStyle::Padded => format!("{n:010}"),
            IdStyle::Uuid => {
                // A fixed mix of the counter's bits, so ids look random but never repeat.
                let a = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let b = (a ^ (a >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xfff,
                    (b >> 52) & 0xfff,
                    n & 0xffff_ffff_ffff
                )
            }
        }
    }

    /// The receipt's id for counter value `n` and submit_sm_resp id `text`, per `format`. A
    /// UUID has no number to rewrite: it keeps its text (upper-cased for `upperhex`).
    pub fn receipt_text(self, n: u64, text: &str, format: IdFormat) -> String {
        match (self, format) {
            (_, IdFormat::Same) => text.to_owned(),
            (IdStyle::Uuid, IdFormat::UpperHex) => text.to_ascii_uppercase(),
            (IdStyle::Uuid, _) => text.to_owned(),
            (_, IdFormat::Decimal) => n.to_string(),
            (_, IdFormat::Hex) => format!("{n:x}"),
            (_, IdFormat::UpperHex) => format!("{n:020X}"),
        }
    }
}

/// A weighted outcome mix, parsed from `DELIVRD=90,UNDELIV=5,EXPIRED=3,REJECTD=2`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutcomeMix(pub Vec<(Outcome, u32)>);

impl Default for OutcomeMix {
    fn default() -> Self {
        OutcomeMix(vec![(Outcome::Delivrd, 100)])
    }
}

impl std::str::FromStr for OutcomeMix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let outcome = Outcome::parse(name.trim()).ok_or_else(|| {
                format!("unknown outcome {name:?} (DELIVRD, UNDELIV, EXPIRED, REJECTD)")
            })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight {weight:?} of {name} is not a whole number"))?;
            mix.push((outcome, weight));
        }
        if mix.iter().map(|(_, w)| *w as u64).sum::<u64>() == 0 {
            return Err("the outcome mix needs at least one positive weight".into());
        }
        Ok(OutcomeMix(mix))
    }
}

/// Error statuses injected at given rates, parsed from `0x45=0.01,8=0.005`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorRates(pub Vec<(u32, f64)>);

impl std::str::FromStr for ErrorRates {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rates = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (status, rate) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected STATUS=RATE, e.g. 0x58=0.01"))?;
            let status = status.trim();
            let status = match status
                .strip_prefix("0x")
                .or_else(|| status.strip_prefix("0X"))
            {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => status.parse(),
            }
            .map_err(|_| format!("{status:?} is not a command_status number"))?;
            let rate: f64 = rate
                .trim()
                .parse()
                .map_err(|_| format!("rate {rate:?} is not a number"))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("rate {rate} is outside 0..=1"));
            }
            rates.push((status, rate));
        }
        Ok(ErrorRates(rates))
    }
}

/// The simulator's behaviour; can be replaced at run time through the control port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Delay between a submit and its receipt.
    #[serde(with = "millis")]
    pub dlr_delay: Duration,
    /// The receipt outcomes and their weights.
    pub dlr_mix: OutcomeMix,
    /// How receipts are encoded.
    pub dlr_style: DlrStyle,
    /// How the receipt's id relates to the submit_sm_resp's.
    pub dlr_id_format: IdFormat,
    /// Answer ESME_RTHROTTLED to submits above this rate per bind (None: never).
    pub throttle_tps: Option<u32>,
    /// Error statuses returned instead of ESME_ROK, with their rates.
    pub error_rates: ErrorRates,
    /// Delay before each response.
    #[serde(with = "millis")]
    pub response_delay: Duration,
    /// Fraction of submit responses never sent.
    pub drop_rate: f64,
    /// Per received submit, the probability that the simulator drops the connection.
    pub disconnect_rate: f64,
    /// Refuse every bind with ESME_RBINDFAIL (a carrier that is down).
    pub reject_binds: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            dlr_delay: Duration::from_millis(100),
            dlr_mix: OutcomeMix::default(),
            dlr_style: DlrStyle::Both,
            dlr_id_format: IdFormat::Same,
            throttle_tps: None,
            error_rates: ErrorRates::default(),
            response_delay: Duration::ZERO,
            drop_rate: 0.0,
            disconnect_rate: 0.0,
            reject_binds: false,
        }
    }
}

/// What to do with one submit_sm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitDecision {
    /// Accept it; send a receipt with this outcome if one was asked for.
    Accept(Outcome),
    /// Answer with this error status.
    Reject(CommandStatus),
    /// Never answer.
    Drop,
    /// Drop the connection.
    Disconnect,
}

/// Per-connection decision maker: a seeded RNG plus the per-bind throttle window.
#[derive(Debug)]
pub struct Decider {
    rng: SmallRng,
    /// Start of the current one-second throttle window and submits seen in it.
    window_start: Option<std::time::Instant>,
    window_count: u32,
}

impl Decider {
    /// A decider seeded for reproducible runs.
    pub fn new(seed: u64) -> Self {
        Decider {
            rng: SmallRng::seed_from_u64(seed),
            window_start: None,
            window_count: 0,
        }
    }

    /// Decides the fate of one submit received at `now`.
    pub fn submit(&mut self, b: &Behaviour, now: std::time::Instant) -> SubmitDecision {
        if b.disconnect_rate > 0.0 && self.rng.random_bool(b.disconnect_rate.min(1.0)) {
            return SubmitDecision::Disconnect;
        }
        if let Some(tps) = b.throttle_tps {
            let start = *self.window_start.get_or_insert(now);
            if now.duration_since(start) >= Duration::from_secs(1) {
                self.window_start = Some(now);
                self.window_count = 0;
            }
            if self.window_count >= tps {
                return SubmitDecision::Reject(CommandStatus::ESME_RTHROTTLED);
            }
            self.window_count += 1;
        }
        if b.drop_rate > 0.0 && self.rng.random_bool(b.drop_rate.min(1.0)) {
            return SubmitDecision::Drop;
        }
        for &(status, rate) in &b.error_rates.0 {
            if rate > 0.0 && self.rng.random_bool(rate) {
                return SubmitDecision::Reject(CommandStatus(status));
            }
        }
        SubmitDecision::Accept(self.outcome(&b.dlr_mix))
    }

    fn outcome(&mut self, mix: &OutcomeMix) -> Outcome {
        let total: u64 = mix.0.iter().map(|(_, w)| *w as u64).sum();
        if total == 0 {
            return Outcome::Delivrd;
        }
        let mut pick = self.rng.random_range(0..total);
        for &(outcome, weight) in &mix.0 {
            if pick < weight as u64 {
                return outcome;
            }
            pick -= weight as u64;
        }
        Outcome::Delivrd
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_outcome_mix() {
        let mix: OutcomeMix = "DELIVRD=90, undeliv=5,EXPIRED=3,REJECTD=2".parse().unwrap();
        assert_eq!(mix.0.len(), 4);
        assert_eq!(mix.0[1], (Outcome::Undeliv, 5));
        assert!("DELIVRD=0".parse::<OutcomeMix>().is_err());
        assert!("BOGUS=1"
            .parse::<OutcomeMix>()
            .unwrap_err()
            .contains("BOGUS"));
    }

    #[test]
    fn parses_error_rates() {
        let rates: ErrorRates = "0x58=0.5,8=0.25".parse().unwrap();
        assert_eq!(rates.0, vec![(0x58, 0.5), (8, 0.25)]);
        assert!("0x58".parse::<ErrorRates>().is_err());
        assert!("0x58=2".parse::<ErrorRates>().is_err());
    }

    #[test]
    fn outcome_mix_is_respected() {
        let b = Behaviour {
            dlr_mix: "DELIVRD=3,UNDELIV=1".parse().unwrap(),
            ..Behaviour::default()
        };
        let mut d = Decider::new(7);
        let now = std::time::Instant::now();
        let delivered = (0..4000)
            .filter(|_| d.submit(&b, now) == SubmitDecision::Accept(Outcome::Delivrd))
            .count();
        assert!(
            (2800..3200).contains(&delivered),
            "{delivered} of 4000 delivered"
        );
    }

    #[test]
    fn throttle_caps_each_second() {
        let b = Behaviour {
            throttle_tps: Some(10),
            ..Behaviour::default()
        };
        let mut d = Decider::new(1);
        let t0 = std::time::Instant::now();
        let accepted = (0..25)
            .filter(|_| matches!(d.submit(&b, t0), SubmitDecision::Accept(_)))
            .count();
        assert_eq!(accepted, 10);
        let t1 = t0 + Duration::from_millis(1000);
        let accepted = (0..25)
            .filter(|_| matches!(d.submit(&b, t1), SubmitDecision::Accept(_)))
            .count();
        assert_eq!(accepted, 10);
    }
}
