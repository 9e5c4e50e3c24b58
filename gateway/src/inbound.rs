//! Inbound (MO) messages: which tenant owns them, the opt-out keywords they carry, and the
//! replies those keywords get.
//!
//! ```text
//! bind: deliver_sm (MO) ──► classify: owner by destination number, keyword ──► opt-out list in
//!   memory updated at once ──► store: inbound row + event + opt-out row (one commit) ──► ack
//! pump: inbound event ──► webhook / SSE; keyword ──► reply SMS from the tenant's number
//! ```
//! The in-memory list changes before the commit: if the commit fails the carrier sends the MO
//! again, and until then we err on the side of not sending (STOP) — or of the stored list
//! (START), which still holds the opt-out.

use std::sync::Arc;

use switchyard_protocols::text::EncodingPreference;
use switchyard_routing::{Priority, E164};

use crate::dispatch::{Dispatcher, Job};
use crate::events::SharedDirectory;
use crate::model::{now_ms, InboundMessage, MessageId, NewMessage};
use crate::optout::{number_key, OptOuts, ALL_SENDERS};
use crate::store::Store;

/// A keyword an MO message can be, after trimming, in any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    /// STOP, UNSUBSCRIBE, END, QUIT, CANCEL, REVOKE, OPTOUT: stop this sender.
    Stop,
    /// STOPALL: stop every sender of the tenant.
    StopAll,
    /// START, UNSTOP: opt in again.
    Start,
    /// HELP: answer with the help text.
    Help,
}

impl Keyword {
    /// The keyword `body` is, if it is one (the whole text, trimmed, case-insensitive).
    pub fn parse(body: &str) -> Option<Keyword> {
        let word = body.trim();
        if word.len() > 11 {
            return None;
        }
        let upper = word.to_ascii_uppercase();
        Some(match upper.as_str() {
            "STOP" | "UNSUBSCRIBE" | "END" | "QUIT" | "CANCEL" | "REVOKE" | "OPTOUT" => {
                Keyword::Stop
            }
            "STOPALL" => Keyword::StopAll,
            "START" | "UNSTOP" => Keyword::Start,
            "HELP" => Keyword::Help,
            _ => return None,
        })
    }

    /// Its name in events (`stop`, `stopall`, `start`, `help`).
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Stop => "stop",
            Keyword::StopAll => "stopall",
            Keyword::Start => "start",
            Keyword::Help => "help",
        }
    }
}

/// What the binds need to classify MO messages.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Number → tenant, replies (swapped on reload).
    pub directory: SharedDirectory,
    /// The opt-out list in memory.
    pub opt_outs: Arc<OptOuts>,
}

impl Inbound {
    /// Fills in the owner of `m` (by its destination number) and applies its keyword to the
    /// in-memory opt-out list. Called by the bind before the MO is stored.
    pub fn classify(&self, m: &mut InboundMessage) {
        let to = number_key(&m.to);
        let directory = self.directory.load();
        m.tenant = directory.numbers.get(&to).cloned();
        let Some(tenant) = &m.tenant else {
            metrics::counter!("switchyard_inbound_messages_total", "owner" => "none").increment(1);
            return;
        };
        metrics::counter!("switchyard_inbound_messages_total", "owner" => "tenant").increment(1);
        let from = number_key(&m.from);
        match Keyword::parse(&m.body) {
            Some(Keyword::Stop) => self.opt_outs.add(tenant, &from, &to),
            Some(Keyword::StopAll) => self.opt_outs.add(tenant, &from, ALL_SENDERS),
            Some(Keyword::Start) => self.opt_outs.remove(tenant, &from, &[&to, ALL_SENDERS]),
            Some(Keyword::Help) | None => {}
        }
    }
}

/// Sends the reply a keyword asks for (if the tenant has one configured), as a normal
/// outbound SMS from the number the MO was sent to. Best effort: logged on failure.
pub async fn reply(
    directory: &SharedDirectory,
    store: &Arc<dyn Store>,
    dispatcher: &Arc<Dispatcher>,
    tenant: &str,
    mo_from: &str,
    mo_to: &str,
    keyword: Keyword,
) {
    let text = {
        let d = directory.load();
        let Some(t) = d.tenants.get(tenant) else {
            return;
        };
        let (configured, default) = match keyword {
            Keyword::Stop | Keyword::StopAll => (
                &t.stop_reply,
                switchyard_ops::config::TenantEvents::DEFAULT_STOP_REPLY,
            ),
            Keyword::Start => (
                &t.start_reply,
                switchyard_ops::config::TenantEvents::DEFAULT_START_REPLY,
            ),
            Keyword::Help => (
                &t.help_reply,
                switchyard_ops::config::TenantEvents::DEFAULT_HELP_REPLY,
            ),
        };
        configured.clone().unwrap_or_else(|| default.to_owned())
    };
    if text.is_empty() {
        return;
    }
    let Ok(to) = E164::parse(mo_from) else {
        return;
    };
    let digits = number_key(mo_to);
    // Long numbers go out in E.164 form, short codes as they are.
    let from = if digits.len() > 8 {
        format!("+{digits}")
    } else {
        digits
    };
    let now = now_ms();
    let id = MessageId::generate(now);
    let opts = switchyard_protocols::text::EncodeOptions {
        concat: switchyard_protocols::text::Concat::Udh8,
        ..Default::default()
    };
    let Ok(info) = switchyard_protocols::text::count_segments(&text, &opts) else {
        return;
    };
    let encoding = match info.encoding {
        switchyard_protocols::text::Encoding::Gsm7 => "gsm7",
        switchyard_protocols::text::Encoding::Ucs2 => "ucs2",
        _ => "latin1",
    };
    let job = Job {
        id,
        tenant: Arc::from(tenant),
        to,
        from: from.clone(),
        body: text.clone(),
        encoding: EncodingPreference::Auto,
        priority: Priority::High,
        scheduled_at: None,
        expires_at: None,
        sent_segments: Vec::new(),
        tried: Vec::new(),
    };
    let carrier = match dispatcher.pick(&job, id.0 as u64) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%id, tenant, "no carrier for a keyword reply: {e}");
            return;
        }
    };
    let message = NewMessage {
        id,
        tenant: tenant.to_owned(),
        to: format!("+{}", job.to.as_str()),
        country: None,
        from,
        body: text,
        encoding: encoding.to_owned(),
        segments: u16::try_from(info.segments).unwrap_or(u16::MAX),
        priority: "high".into(),
        scheduled_at: None,
        expires_at: None,
        callback_url: None,
        tags: vec![format!("keyword:{}", keyword.as_str())],
        metadata: None,
        carrier: Some(carrier),
        price: None,
        currency: None,
        created_at: now,
        batch_id: None,
        voice: None,
        request: None,
    };
    if let Err(e) = store.insert(vec![message]).await {
        tracing::warn!(%id, tenant, "keyword reply not stored: {e}");
        return;
    }
    let job = Arc::new(job);
    if dispatcher.enqueue(job.clone()).is_err() {
        let d = dispatcher.clone();
        tokio::spawn(async move { d.enqueue_with_retry(job).await });
    }
}

#[cfg(test)]
mod tests {
    use super::Keyword;

    #[test]
    fn keywords_are_whole_trimmed_and_case_insensitive() {
        for w in [
            "STOP",
            "stop",
            " Stop\n",
            "UNSUBSCRIBE",
            "end",
            "Quit",
            "CANCEL",
            "revoke",
            "OptOut",
        ] {
            assert_eq!(Keyword::parse(w), Some(Keyword::Stop), "{w:?}");
        }
        assert_eq!(Keyword::parse("stopall"), Some(Keyword::StopAll));
        assert_eq!(Keyword::parse(" START "), Some(Keyword::Start));
        assert_eq!(Keyword::parse("unstop"), Some(Keyword::Start));
        assert_eq!(Keyword::parse("Help"), Some(Keyword::Help));
        for w in [
            "",
            "stop please",
            "STOPP",
            "please stop",
            "s t o p",
            "STOP!",
        ] {
            assert_eq!(Keyword::parse(w), None, "{w:?}");
        }
    }
}
