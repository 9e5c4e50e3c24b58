//! Delivery receipts and MO messages to tenants' SMPP binds: one sender per SMPP user,
//! reading the event log.
//!
//! A message submitted over SMPP stores its system_id and the receipt it asked for
//! ([`crate::domain::SmppOrigin`]). Its final status is an event in the store's log, so the log
//! is the durable queue of receipts:
//!
//! ```text
//! history (seq) ─► sender of system_id X: the tenant's final and inbound events after its cursor
//!   └─ final status of a message from X that wants a receipt ─► deliver_sm to one of X's
//!      receiver or transceiver binds (round robin) ─► deliver_sm_resp OK ─► done
//!      error / timeout / bind lost ─► again after a back-off (1 s doubling to 60 s), any bind
//! cursor `smpp:X` = the highest seq below which every receipt was taken, saved every 500 ms
//! ```
//! With no receiver bind up the sender reads nothing and the cursor stays: receipts wait in
//! the log and flow when the ESME binds, for `receipt_validity_s` (72 h by default; older ones
//! are dropped and counted, never sent late) or as long as `[retention]` keeps history. After
//! a restart the sender resumes from its cursor: receipts sent but not yet covered by a saved
//! cursor are sent again (at least once; ESMEs match receipts by message id). One receipt per
//! message: the first final status (a message never leaves a final status).
//!
//! MO messages to a tenant whose `mo_delivery` is `smpp` or `both` take the same road: the
//! inbound event becomes a deliver_sm (esm_class 0) to the binds of one SMPP user, the one
//! that names the number in `mo_numbers` or else the tenant's first user without
//! `mo_numbers`, with the same retries and cursor. A text longer than one SMS goes whole in
//! message_payload; a binary MO keeps its data_coding and user data header (UDHI).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use switchyard_protocols::dlr::{
    format_text_receipt, receipt_tlvs, ErrorCode, Receipt, ReceiptDate, ReceiptState,
};
use switchyard_protocols::smpp::pdu::{Address, COctet, SubmitSm};
use tokio::sync::{oneshot, watch};

use super::users::Outgoing;
use super::Server;
use crate::domain::{Event, EventWrite, Status, UnixMs, Update};

/// Events read per store round trip.
const PAGE: usize = 500;
/// Receipts sent and not yet answered, at most (across the user's binds).
const MAX_OUTSTANDING: usize = 2048;
/// How long after a read that reached the end of the log the next read waits (the sender
/// sleeps this long when idle). Under load, receipts taken wake the sender many times in this
/// span; reading the log at each of those wake-ups cost a store round trip per handful of
/// receipts, and one read per span reads them all.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// How often the cursor is saved.
const CURSOR_EVERY: Duration = Duration::from_millis(500);
/// First retry delay, doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The cursor's name in the store.
pub(crate) fn cursor_name(system_id: &str) -> String {
    format!("smpp:{system_id}")
}

/// A receipt on its way.
struct Pending {
    seq: i64,
    pdu: SubmitSm,
    attempts: u32,
    not_before: Instant,
}

/// Runs the receipt sender of `system_id` from `cursor` until the user is removed or the
/// gateway stops.
pub(crate) async fn run(
    server: Arc<Server>,
    system_id: String,
    cursor: i64,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = cursor_name(&system_id);
    let receiver_up = server.binds.receiver_up(&system_id);
    // On a shared store one node at a time sends this user's receipts and MO: one with a
    // receiver bind of the user, holding the lease.
    let lease = server.leases.lease(&name);
    let mut holding = false;
    let mut read = cursor;
    let mut saved = cursor;
    let mut saved_at = Instant::now();
    // Receipts not yet taken by the ESME, by seq: sent (awaiting) or queued (waiting to send).
    let mut open: BTreeMap<i64, ()> = BTreeMap::new();
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut sent = FuturesUnordered::new();
    let mut rr = 0usize;
    // No read before this (the runtime's clock): IDLE_POLL after a read that reached the end
    // of the log.
    let mut next_read = tokio::time::Instant::now();
    // Counted for every receipt: the handles are looked up once.
    let taken = metrics::counter!("switchyard_smpp_server_deliveries_total", "system_id" => system_id.clone(), "outcome" => "taken");
    let pending_gauge = metrics::gauge!("switchyard_smpp_server_deliveries_pending", "system_id" => system_id.clone());
    loop {
        if *shutdown.borrow() {
            break;
        }
        let user = {
            // Checked and given up under the registry's lock, so a reload that adds the user
            // back either sees this sender still running or starts a new one, never both.
            let mut senders = server.senders.lock();
            match server.users.load().get(&system_id).cloned() {
                Some(user) => user,
                None => {
                    senders.remove(&system_id);
                    tracing::info!(%system_id, "receipt sender stops: the user was removed");
                    break;
                }
            }
        };
        let receivers = server.binds.receivers(&system_id);
        lease.want(!receivers.is_empty());
        if !lease.held() {
            // Another node sends them (or nobody, until a receiver binds here): what this
            // node read and did not see taken is that node's to send again.
            if holding {
                tracing::info!(%system_id, "receipts are sent by another node now");
                holding = false;
            }
            open.clear();
            queue.clear();
            tokio::select! {
                _ = receiver_up.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if !holding {
            // Taken over (or started): from the cursor the last holder saved.
            match server.events.named_cursor(&name).await {
                Ok(Some(c)) => {
                    read = c;
                    saved = c;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%system_id, "reading the receipt cursor: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            holding = true;
        }
        let now = Instant::now();
        let clock = tokio::time::Instant::now();
        // Read more of the log while there is room and someone to send to.
        let mut caught_up = true;
        if !receivers.is_empty() && open.len() < MAX_OUTSTANDING && clock >= next_read {
            match server
                .events
                .final_events_after(read, &user.tenant, PAGE)
                .await
            {
                Ok((page, reached)) => {
                    caught_up = page.len() < PAGE;
                    if caught_up {
                        next_read = clock + IDLE_POLL;
                    }
                    let oldest = crate::domain::now_ms()
                        - i64::try_from(server.settings.receipt_validity.as_millis())
                            .unwrap_or(i64::MAX / 2);
                    for event in page {
                        if event.at < oldest {
                            metrics::counter!("switchyard_smpp_server_deliveries_total", "system_id" => system_id.clone(), "outcome" => "expired").increment(1);
                            continue;
                        }
                        let pdu = if event.is_inbound() {
                            // Only SMS MO goes over SMPP: chat inbound is for webhooks and SSE.
                            (event.channel.as_deref() == Some("sms") && user.takes_mo(&event.to))
                                .then(|| mo_for(&event))
                                .flatten()
                        } else {
                            receipt_for(&event, &system_id)
                        };
                        if let Some(pdu) = pdu {
                            open.insert(event.seq, ());
                            queue.push_back(Pending {
                                seq: event.seq,
                                pdu,
                                attempts: 0,
                                not_before: now,
                            });
                        }
                    }
                    read = read.max(reached);
                }
                Err(e) => {
                    tracing::warn!(%system_id, "reading events for receipts: {e}");
                    next_read = clock + IDLE_POLL;
                }
            }
        }
        // Hand what is due to the binds, round robin, until every bind in a row has no room:
        // what is left waits for receipts taken (which wake this loop) without being looked
        // at again, nor copied, at each wake-up.
        let mut refused = 0;
        let mut i = 0;
        while i < queue.len() && refused < receivers.len() {
            if queue[i].not_before > now {
                i += 1;
                continue;
            }
            let target = &receivers[rr % receivers.len()];
            rr = rr.wrapping_add(1);
            let Ok(room) = target.try_reserve() else {
                refused += 1;
                continue;
            };
            refused = 0;
            let Some(p) = queue.remove(i) else { break };
            let (done, outcome) = oneshot::channel();
            room.send(Outgoing::Deliver {
                pdu: Box::new(p.pdu.clone()),
                done,
            });
            sent.push(async move { (p, outcome.await) });
        }
        let binds_full = !receivers.is_empty() && refused >= receivers.len();
        pending_gauge.set(open.len() as f64);
        // The cursor: everything below the oldest open receipt was taken.
        let mark = open.keys().next().map_or(read, |first| first - 1);
        if mark > saved && (saved_at.elapsed() >= CURSOR_EVERY || open.is_empty()) {
            save(&server, &name, mark).await;
            saved = mark;
            saved_at = Instant::now();
        }
        // Receipts held because every bind was full go out when receipts are taken (or at the
        // next poll); only those waiting for a retry time set a wake-up.
        let wake = queue
            .iter()
            .map(|p| p.not_before)
            .filter(|t| !binds_full || *t > now)
            .min()
            .map_or(IDLE_POLL, |t| {
                t.saturating_duration_since(now)
                    .max(Duration::from_millis(1))
            });
        let wait = if caught_up || receivers.is_empty() {
            wake.min(if receivers.is_empty() {
                Duration::from_secs(1)
            } else {
                next_read
                    .saturating_duration_since(clock)
                    .clamp(Duration::from_millis(1), IDLE_POLL)
            })
        } else {
            Duration::ZERO
        };
        tokio::select! {
            Some((p, outcome)) = sent.next(), if !sent.is_empty() => {
                let mut settle = |p: Pending, outcome: Result<Result<(), String>, oneshot::error::RecvError>| {
                    match outcome {
                        Ok(Ok(())) => {
                            open.remove(&p.seq);
                            taken.increment(1);
                        }
                        failure => {
                            let why = match failure {
                                Ok(Err(why)) => why,
                                _ => "the bind closed first".to_owned(),
                            };
                            metrics::counter!("switchyard_smpp_server_deliveries_total", "system_id" => system_id.clone(), "outcome" => "retried").increment(1);
                            let attempts = p.attempts + 1;
                            let delay = FIRST_BACKOFF
                                .saturating_mul(1 << attempts.min(6))
                                .min(MAX_BACKOFF);
                            tracing::debug!(%system_id, seq = p.seq, attempts, "receipt not taken ({why}); again in {delay:?}");
                            queue.push_back(Pending { attempts, not_before: Instant::now() + delay, ..p });
                        }
                    }
                };
                settle(p, outcome);
                while let Some(Some((q, o))) = futures::FutureExt::now_or_never(sent.next()) {
                    settle(q, o);
                }
            }
            _ = receiver_up.notified() => next_read = tokio::time::Instant::now(),
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    let mark = open.keys().next().map_or(read, |first| first - 1);
    if holding && mark > saved {
        save(&server, &name, mark).await;
    }
    lease.want(false);
}

async fn save(server: &Server, name: &str, seq: i64) {
    let write = Update::Events(EventWrite::NamedCursor {
        name: name.to_owned(),
        seq,
    });
    if let Err(e) = server.store.apply(vec![write]).await {
        tracing::warn!(cursor = name, "saving the receipt cursor: {e}");
    }
}

/// The deliver_sm receipt for `event`, if it is the final status of a message `system_id`
/// submitted and asked a receipt for.
pub(crate) fn receipt_for(event: &Event, system_id: &str) -> Option<SubmitSm> {
    let origin = event.smpp.as_ref().filter(|o| o.system_id == system_id)?;
    let status: Status = event.status.parse().ok()?;
    if !origin.wants_receipt(status) {
        return None;
    }
    let state = match status {
        Status::Delivered => ReceiptState::Delivered,
        Status::Expired => ReceiptState::Expired,
        Status::Cancelled => ReceiptState::Deleted,
        Status::Rejected => ReceiptState::Rejected,
        _ => ReceiptState::Undeliverable,
    };
    let delivered = u32::from(status == Status::Delivered);
    let receipt = Receipt {
        message_id: origin.reported_id.unwrap_or(event.message_id).to_string(),
        state,
        unrecognized_stat: None,
        error_code: Some(
            event
                .error
                .as_deref()
                .map_or_else(|| ErrorCode::from_text("000"), ErrorCode::from_text),
        ),
        submit_date: receipt_date(event.created_at),
        done_date: receipt_date(event.at),
        submitted: Some(1),
        delivered: Some(delivered),
        // The standard form ends with the text field; the body is not repeated in receipts.
        text: Some(Vec::new()),
        extra: Vec::new(),
    };
    let short_message = format_text_receipt(&receipt);
    Some(SubmitSm {
        source: number_address(&event.to),
        dest: sender_address(&event.from),
        esm_class: SubmitSm::ESM_CLASS_RECEIPT,
        short_message: short_message.into(),
        tlvs: receipt_tlvs(&receipt),
        ..SubmitSm::default()
    })
}

/// The deliver_sm carrying the MO message of `event`: from the handset to the tenant's
/// number, GSM 7-bit when the text allows, UCS-2 otherwise; in message_payload when longer
/// than one SMS. A binary MO goes as it came: its data_coding, its octets behind its user
/// data header (esm_class UDHI), all in message_payload when they exceed 140 octets.
pub(crate) fn mo_for(event: &Event) -> Option<SubmitSm> {
    use switchyard_protocols::smpp::tlv::{tag, Tlv, Tlvs};
    use switchyard_protocols::text::{binary, encode_message, Concat, EncodeOptions};
    let body = event.body.as_deref().unwrap_or_default();
    if let Some(coding) = &event.binary {
        let mut octets = coding.udh.clone().unwrap_or_default();
        binary::decode_into(body, &mut octets).ok()?;
        let mut pdu = SubmitSm {
            source: sender_address(&event.from),
            dest: sender_address(&event.to),
            data_coding: coding.data_coding,
            ..SubmitSm::default()
        };
        if coding.udh.is_some() {
            pdu.esm_class |= SubmitSm::ESM_CLASS_UDHI;
        }
        if octets.len() <= 140 {
            pdu.short_message = octets.into();
        } else {
            pdu.tlvs = Tlvs(vec![Tlv::new(
                tag::MESSAGE_PAYLOAD,
                bytes::Bytes::from(octets),
            )]);
        }
        return Some(pdu);
    }
    let encoded = encode_message(
        body,
        &EncodeOptions {
            concat: Concat::Udh8,
            ..EncodeOptions::default()
        },
    )
    .ok()?;
    let payload: Vec<u8> = encoded
        .segments
        .iter()
        .flat_map(|s| s.payload().iter().copied())
        .collect();
    let mut pdu = SubmitSm {
        source: sender_address(&event.from),
        dest: sender_address(&event.to),
        data_coding: encoded.data_coding,
        ..SubmitSm::default()
    };
    if payload.len() <= 140 && encoded.segments.len() == 1 {
        pdu.short_message = payload.into();
    } else {
        pdu.tlvs = Tlvs(vec![Tlv::new(
            tag::MESSAGE_PAYLOAD,
            bytes::Bytes::from(payload),
        )]);
    }
    Some(pdu)
}

/// `+447…` as an international address.
fn number_address(e164: &str) -> Address {
    Address::international(COctet::from(
        e164.strip_prefix('+').unwrap_or(e164).to_owned(),
    ))
}

/// An address as stored: international (`+` and digits, or more than 8 digits), a short code
/// (fewer digits) or alphanumeric.
fn sender_address(from: &str) -> Address {
    let long_number = from.len() > 8 && from.bytes().all(|b| b.is_ascii_digit());
    match from.strip_prefix('+') {
        Some(digits) => Address::international(COctet::from(digits.to_owned())),
        None if long_number => Address::international(COctet::from(from.to_owned())),
        None if from.bytes().all(|b| b.is_ascii_digit()) => Address {
            ton: 3,
            npi: 1,
            addr: COctet::from(from.to_owned()),
        },
        None => Address::alphanumeric(COctet::from(from.to_owned())),
    }
}

/// A receipt date (`YYMMDDhhmmss`, UTC) for a unix-ms time.
fn receipt_date(ms: UnixMs) -> Option<ReceiptDate> {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()?;
    Some(ReceiptDate {
        year: u16::try_from(t.year()).ok()?,
        month: u8::from(t.month()),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: Some(t.second()),
    })
}

#[cfg(test)]
mod tests {
    use switchyard_protocols::dlr::{parse_text_receipt, receipt_from_tlvs, ReceiptState};
    use switchyard_protocols::smpp::pdu::SubmitSm;

    use super::{mo_for, receipt_for};
    use crate::domain::{Event, MessageId, SmppOrigin};

    fn event(status: &str, receipt: u8) -> Event {
        Event {
            seq: 7,
            message_id: MessageId(0x0123_4567_89ab_cdef),
            tenant: Some("acme".into()),
            status: status.into(),
            at: 1_743_505_260_000,
            detail: None,
            carrier: Some("alpha".into()),
            error: None,
            price: None,
            currency: None,
            to: "+447911123456".into(),
            from: "Acme".into(),
            body: None,
            binary: None,
            channel: None,
            callback_url: None,
            segments: Some(1),
            created_at: 1_743_505_200_000,
            call: None,
            smpp: Some(SmppOrigin {
                system_id: "acme01".into(),
                receipt,
                reported_id: None,
                service_type: None,
            }),
            flow: None,
        }
    }

    #[test]
    fn a_final_status_becomes_a_standard_receipt() {
        let pdu = receipt_for(&event("delivered", 1), "acme01").unwrap();
        assert_eq!(pdu.esm_class, SubmitSm::ESM_CLASS_RECEIPT);
        assert_eq!(pdu.source.addr.to_str_lossy(), "447911123456");
        assert_eq!(
            (pdu.dest.ton, pdu.dest.addr.to_str_lossy().as_ref()),
            (5, "Acme")
        );
        let text = std::str::from_utf8(&pdu.short_message).unwrap();
        assert_eq!(
            text,
            "id:msg_0123456789abcdef sub:001 dlvrd:001 submit date:250401110000 \
             done date:250401110100 stat:DELIVRD err:000 text:"
        );
        let parsed = parse_text_receipt(&pdu.short_message).unwrap();
        assert_eq!(parsed.state, ReceiptState::Delivered);
        let tlv = receipt_from_tlvs(&pdu.tlvs).unwrap();
        assert_eq!(tlv.message_id, "msg_0123456789abcdef");
        assert_eq!(tlv.state, ReceiptState::Delivered);
        let failed = receipt_for(&event("undeliverable", 1), "acme01").unwrap();
        assert!(std::str::from_utf8(&failed.short_message)
            .unwrap()
            .contains("dlvrd:000 "));
    }

    #[test]
    fn registered_delivery_decides_which_states_get_one() {
        let wants = |status, bits| receipt_for(&event(status, bits), "acme01").is_some();
        assert!(!wants("sent", 1), "not final");
        assert!(!wants("delivered", 0));
        assert!(!wants("delivered", 2) && wants("rejected", 2) && wants("expired", 2));
        assert!(wants("delivered", 3) && !wants("undeliverable", 3));
        assert!(receipt_for(&event("delivered", 1), "someone_else").is_none());
    }

    #[test]
    fn mo_goes_short_or_whole_in_message_payload() {
        let mut mo = event("inbound", 0);
        mo.from = "+447400123456".into();
        mo.to = "447000000002".into();
        mo.body = Some("STOP".into());
        let short = mo_for(&mo).unwrap();
        assert_eq!(&short.short_message[..], b"STOP");
        assert_eq!((short.dest.ton, short.source.ton), (1, 1));
        assert_eq!(short.esm_class, 0);
        mo.body = Some("x".repeat(300));
        let long = mo_for(&mo).unwrap();
        assert!(long.short_message.is_empty());
        assert_eq!(long.tlvs.message_payload().map(|p| p.len()), Some(300));
        mo.body = Some("Привет".into());
        assert_eq!(mo_for(&mo).unwrap().data_coding, 8);
    }

    #[test]
    fn a_binary_mo_goes_as_it_came() {
        let mut mo = event("inbound", 0);
        mo.from = "+447400123456".into();
        mo.to = "447000000002".into();
        mo.body = Some("00ff7f80".into());
        mo.binary = Some(crate::domain::BinaryCoding {
            data_coding: 0xF6,
            udh: Some(vec![6, 5, 4, 0x0B, 0x84, 0x23, 0xF0]),
        });
        let pdu = mo_for(&mo).unwrap();
        assert_eq!(pdu.data_coding, 0xF6);
        assert_eq!(pdu.esm_class, SubmitSm::ESM_CLASS_UDHI);
        assert_eq!(
            &pdu.short_message[..],
            &[6, 5, 4, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0xFF, 0x7F, 0x80]
        );
        // No header: no UDHI; over 140 octets: whole in message_payload.
        mo.binary = Some(crate::domain::BinaryCoding {
            data_coding: 4,
            udh: None,
        });
        mo.body = Some("ab".repeat(141));
        let pdu = mo_for(&mo).unwrap();
        assert_eq!((pdu.esm_class, pdu.data_coding), (0, 4));
        assert!(pdu.short_message.is_empty());
        assert_eq!(pdu.tlvs.message_payload().map(|p| p.len()), Some(141));
    }
}
