//! One SMPP connection: a tokio task driving a sans-IO SMSC [`Session`].
//!
//! The loop reads whatever the socket has, decodes every complete frame, lets the session and
//! the simulator's policy answer each one, and writes all responses in one go: one read and one
//! write system call per batch of PDUs, which is what lets one bind reach 100k+ submit_sm/s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use switchyard_protocols::dlr::{
    format_text_receipt, receipt_tlvs, ErrorCode, Receipt, ReceiptDate, ReceiptState,
};
use switchyard_protocols::smpp::codec::SmppCodec;
use switchyard_protocols::smpp::pdu::{
    Body, COctet, DataSmResp, MessageIdResp, QuerySmResp, SubmitMultiResp, SubmitSm,
};
use switchyard_protocols::smpp::session::{BindType, Event, Session, SessionConfig, State};
use switchyard_protocols::smpp::tlv::Tlvs;
use switchyard_protocols::smpp::CommandStatus;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use super::counters::Counters;
use super::mailbox::{Delivery, Kind, Mailbox};
use super::policy::{Decider, DlrStyle, Outcome, SubmitDecision};
use super::Shared;

/// How long a deliver_sm the ESME refused waits before it is sent again.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// A receipt waiting for its time.
#[derive(Debug)]
struct Scheduled {
    due: Instant,
    /// Tie-breaker keeping receipts of one instant in submit order.
    order: u64,
    delivery: Delivery,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// The simulator's side of one connection, next to its session.
struct Conn {
    shared: Arc<Shared>,
    decider: Decider,
    /// The bound ESME's system_id and mailbox (set once bound).
    mailbox: Option<Arc<Mailbox>>,
    system_id: Bytes,
    /// True for receiver and transceiver binds: deliver_sm may flow to the ESME.
    can_receive: bool,
    /// Receipts not yet due, earliest first.
    receipts: BinaryHeap<Reverse<Scheduled>>,
    receipt_order: u64,
    /// Responses held back by the response-delay fault: (due, sequence, status, body).
    delayed: VecDeque<(Instant, u32, CommandStatus, Body)>,
    /// deliver_sm awaiting deliver_sm_resp, by sequence number.
    in_flight: HashMap<u32, Delivery>,
    /// The session ended.
    closed: bool,
}

/// Serves one accepted connection until it closes.
pub async fn serve<R, W>(
    mut rd: R,
    mut wr: W,
    shared: Arc<Shared>,
    conn_no: u64,
) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut codec = SmppCodec::new();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut wbuf = BytesMut::with_capacity(64 * 1024);

    let mut config = SessionConfig::smsc(COctet::from(shared.options.smsc_id.clone()));
    config.window = shared.options.window.max(1);
    // Large enough never to throttle a well-behaved ESME ourselves: throttling is a fault the
    // policy injects on purpose.
    config.peer_window = 1 << 20;
    config.response_timeout = Duration::from_secs(10);
    config.enquire_link_interval = match shared.options.enquire_link_s {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let mut session = Session::new(config, Instant::now());
    let mut conn = Conn {
        decider: Decider::new(
            shared
                .options
                .seed
                .wrapping_add(conn_no.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        ),
        shared,
        mailbox: None,
        system_id: Bytes::new(),
        can_receive: false,
        receipts: BinaryHeap::new(),
        receipt_order: 0,
        delayed: VecDeque::new(),
        in_flight: HashMap::new(),
        closed: false,
    };
    let mut pulled = Vec::new();
    let mut kick = conn.shared.kick.subscribe();

    let result = loop {
        let now = Instant::now();
        conn.fire_due(&mut session, now, &mut pulled);
        conn.drain(&mut session, now);
        while let Some(pdu) = session.poll_transmit() {
            if let Err(e) = codec.encode(&pdu, &mut wbuf) {
                tracing::warn!("cannot encode {:?}: {e}", pdu.command_id());
            }
        }
        if !wbuf.is_empty() {
            if let Err(e) = wr.write_all(&wbuf).await {
                session.connection_lost(Instant::now());
                conn.drain(&mut session, Instant::now());
                break Err(e.into());
            }
            wbuf.clear();
        }
        if conn.closed {
            break Ok(());
        }

        let deadline = conn.next_deadline(&session);
        let mailbox = conn.mailbox.clone();
        let want_mail = conn.can_receive && session.window_available() > 0;
        tokio::select! {
            read = rd.read_buf(&mut rbuf) => {
                let now = Instant::now();
                match read {
                    Ok(0) | Err(_) => session.connection_lost(now),
                    Ok(_) => loop {
                        match codec.decode(&mut rbuf) {
                            Ok(Some(Ok(pdu))) => session.handle_pdu(pdu, now),
                            Ok(Some(Err(bad))) => {
                                Counters::inc(&conn.shared.counters.bad_pdus);
                                session.handle_decode_error(&bad, now);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!("closing: {e}");
                                session.connection_lost(now);
                                break;
                            }
                        }
                        // Answer as we go so the session's table of unanswered requests stays short.
                        conn.drain(&mut session, now);
                    },
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                session.handle_timeout(Instant::now());
            }
            Ok(()) = kick.changed() => {
                // `POST /disconnect`: the connection drops as if the network failed.
                Counters::inc(&conn.shared.counters.disconnects);
                session.abort(Instant::now());
            }
            _ = async { match &mailbox { Some(m) => m.notify.notified().await, None => std::future::pending().await } }, if want_mail => {}
        }
    };
    conn.release();
    result
}

impl Conn {
    /// Handles every pending session event.
    fn drain(&mut self, session: &mut Session, now: Instant) {
        while let Some(event) = session.poll_event() {
            self.on_event(session, event, now);
        }
    }

    fn on_event(&mut self, session: &mut Session, event: Event, now: Instant) {
        let counters = &self.shared.counters;
        match event {
            Event::BindRequest { bind, .. } => {
                let opts = &self.shared.options;
                let status = if self.shared.behaviour.load().reject_binds {
                    CommandStatus::ESME_RBINDFAIL
                } else if opts
                    .system_id
                    .as_deref()
                    .is_some_and(|id| id.as_bytes() != bind.system_id.as_bytes())
                {
                    CommandStatus::ESME_RINVSYSID
                } else if opts
                    .password
                    .as_deref()
                    .is_some_and(|pw| pw.as_bytes() != bind.password.as_bytes())
                {
                    CommandStatus::ESME_RINVPASWD
                } else {
                    CommandStatus::ESME_ROK
                };
                let result = if status.is_ok() {
                    session.accept_bind(now)
                } else {
                    Counters::inc(&counters.binds_refused);
                    session.reject_bind(status, now)
                };
                if let Err(e) = result {
                    tracing::warn!("bind decision refused by the session: {e}");
                }
            }
            Event::Bound {
                bind_type,
                system_id,
                ..
            } => {
                Counters::inc(&counters.binds);
                let active = counters
                    .binds_active
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                counters
                    .binds_peak
                    .fetch_max(active + 1, std::sync::atomic::Ordering::Relaxed);
                self.system_id = system_id.to_bytes();
                let mailbox = self.shared.mailboxes.get(&self.system_id);
                self.can_receive = matches!(bind_type, BindType::Receiver | BindType::Transceiver);
                if self.can_receive {
                    mailbox
                        .receivers
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                self.mailbox = Some(mailbox);
            }
            Event::Request {
                sequence_number,
                body,
            } => self.on_request(session, sequence_number, body, now),
            Event::Response {
                sequence_number,
                status,
                ..
            }
            | Event::MalformedResponse {
                sequence_number,
                status,
                ..
            } => {
                if let Some(d) = self.in_flight.remove(&sequence_number) {
                    if status.is_ok() {
                        Counters::inc(match d.kind {
                            Kind::Receipt => &counters.dlrs_acked,
                            Kind::Mo => &counters.mo_acked,
                        });
                    } else {
                        // The ESME could not take it now: try again a little later, as SMSCs
                        // do (at once would turn a throttling ESME into a resend storm).
                        self.retry_later(d, now);
                    }
                }
            }
            Event::ResponseTimeout {
                sequence_number, ..
            } => {
                if let Some(d) = self.in_flight.remove(&sequence_number) {
                    self.requeue(d);
                }
            }
            Event::Closed { reason, .. } => {
                tracing::debug!(?reason, "session closed");
                self.closed = true;
            }
            _ => {}
        }
    }

    fn on_request(&mut self, session: &mut Session, seq: u32, body: Body, now: Instant) {
        let counters = &self.shared.counters;
        let (status, resp) = match body {
            Body::SubmitSm(sm) => {
                Counters::inc(&counters.submits);
                let behaviour = self.shared.behaviour.load();
                match self.decider.submit(&behaviour, now) {
                    SubmitDecision::Accept(outcome) => {
                        let (id, id_text) = self.shared.message_id();
                        self.accepted(&sm, id, &id_text, outcome, now);
                        // After the record line: whoever sees the count finds the line.
                        Counters::inc(&self.shared.counters.submits_ok);
                        let resp = Body::SubmitSmResp(MessageIdResp {
                            message_id: COctet::from(id_text),
                        });
                        if !behaviour.response_delay.is_zero() {
                            self.delayed.push_back((
                                now + behaviour.response_delay,
                                seq,
                                CommandStatus::ESME_ROK,
                                resp,
                            ));
                            return;
                        }
                        (CommandStatus::ESME_ROK, resp)
                    }
                    SubmitDecision::Reject(status) => {
                        if status == CommandStatus::ESME_RTHROTTLED {
                            Counters::inc(&counters.throttled);
                        } else {
                            Counters::inc(&counters.submit_errors);
                        }
                        (status, Body::SubmitSmResp(MessageIdResp::default()))
                    }
                    SubmitDecision::Drop => {
                        Counters::inc(&counters.dropped);
                        let _ = session.ignore_request(seq);
                        return;
                    }
                    SubmitDecision::Disconnect => {
                        Counters::inc(&counters.disconnects);
                        session.abort(now);
                        return;
                    }
                }
            }
            Body::DataSm(_) => {
                Counters::inc(&counters.other_requests);
                let (_, id) = self.shared.message_id();
                (
                    CommandStatus::ESME_ROK,
                    Body::DataSmResp(DataSmResp {
                        message_id: id.into(),
                        tlvs: Tlvs::new(),
                    }),
                )
            }
            Body::SubmitMulti(_) => {
                Counters::inc(&counters.other_requests);
                let (_, id) = self.shared.message_id();
                (
                    CommandStatus::ESME_ROK,
                    Body::SubmitMultiResp(SubmitMultiResp {
                        message_id: id.into(),
                        unsuccess: vec![],
                    }),
                )
            }
            Body::QuerySm(q) => {
                Counters::inc(&counters.other_requests);
                let resp = QuerySmResp {
                    message_id: q.message_id,
                    final_date: COctet::empty(),
                    message_state: Outcome::Delivrd.message_state(),
                    error_code: 0,
                };
                (CommandStatus::ESME_ROK, Body::QuerySmResp(resp))
            }
            Body::CancelSm(_) => (CommandStatus::ESME_ROK, Body::CancelSmResp),
            Body::ReplaceSm(_) => (CommandStatus::ESME_ROK, Body::ReplaceSmResp),
            _ => (CommandStatus::ESME_RINVCMDID, Body::GenericNack),
        };
        if let Err(e) = session.respond(seq, status, resp, now) {
            tracing::warn!("cannot respond to {seq}: {e}");
        }
    }

    /// Records an accepted submit and schedules its receipt.
    fn accepted(&mut self, sm: &SubmitSm, id: u64, id_text: &str, outcome: Outcome, now: Instant) {
        let opts = &self.shared.options;
        if opts.count_destinations {
            *self
                .shared
                .counters
                .per_destination
                .lock()
                .entry(sm.dest.addr.to_str_lossy().into_owned())
                .or_default() += 1;
        }
        if self.shared.recording() {
            self.shared.record(&serde_json::json!({
                "system_id": String::from_utf8_lossy(&self.system_id),
                "message_id": id_text,
                "outcome": outcome.stat(),
                "source": sm.source.addr.to_str_lossy(),
                "source_ton": sm.source.ton,
                "dest": sm.dest.addr.to_str_lossy(),
                "dest_ton": sm.dest.ton,
                "esm_class": sm.esm_class,
                "data_coding": sm.data_coding,
                "registered_delivery": sm.registered_delivery,
                "short_message": hex::encode(&sm.short_message),
                "tlvs": sm.tlvs.iter().map(|t| serde_json::json!({"tag": t.tag, "value": hex::encode(&t.value)})).collect::<Vec<_>>(),
            }));
        }
        // registered_delivery bits 0–1: 1 = receipt on success or failure, 2 = on failure only.
        let wanted = match sm.registered_delivery & 0x03 {
            1 => true,
            2 => outcome != Outcome::Delivrd,
            _ => false,
        };
        if !wanted {
            return;
        }
        let behaviour = self.shared.behaviour.load();
        let receipt_id =
            self.shared
                .options
                .id_style
                .receipt_text(id, id_text, behaviour.dlr_id_format);
        let pdu = receipt_pdu(sm, receipt_id, outcome, behaviour.dlr_style);
        self.receipt_order += 1;
        self.receipts.push(Reverse(Scheduled {
            due: now + behaviour.dlr_delay,
            order: self.receipt_order,
            delivery: Delivery {
                kind: Kind::Receipt,
                pdu,
            },
        }));
    }

    /// Sends what is due: delayed responses, receipts, mailbox deliveries.
    fn fire_due(&mut self, session: &mut Session, now: Instant, pulled: &mut Vec<Delivery>) {
        while self.delayed.front().is_some_and(|d| d.0 <= now) {
            if let Some((_, seq, status, body)) = self.delayed.pop_front() {
                let _ = session.respond(seq, status, body, now);
            }
        }
        if !matches!(session.state(), State::Bound(_)) {
            return;
        }
        while self.receipts.peek().is_some_and(|r| r.0.due <= now) {
            if self.can_receive && session.window_available() == 0 {
                break;
            }
            let Some(Reverse(s)) = self.receipts.pop() else {
                break;
            };
            if self.can_receive {
                self.send(session, s.delivery, now);
            } else if let Some(m) = &self.mailbox {
                m.push(s.delivery);
            }
        }
        if self.can_receive {
            if let Some(m) = self.mailbox.clone() {
                let room = session.window_available();
                if room > 0 {
                    m.take(room, pulled);
                    for d in pulled.drain(..) {
                        self.send(session, d, now);
                    }
                }
            }
        }
    }

    fn send(&mut self, session: &mut Session, d: Delivery, now: Instant) {
        match session.send_request(Body::DeliverSm(d.pdu.clone()), now) {
            Ok(seq) => {
                let c = &self.shared.counters;
                Counters::inc(match d.kind {
                    Kind::Receipt => &c.dlrs_sent,
                    Kind::Mo => &c.mo_sent,
                });
                self.in_flight.insert(seq, d);
            }
            Err(_) => self.requeue(d),
        }
    }

    fn retry_later(&mut self, d: Delivery, now: Instant) {
        self.receipt_order += 1;
        self.receipts.push(Reverse(Scheduled {
            due: now + RETRY_DELAY,
            order: self.receipt_order,
            delivery: d,
        }));
    }

    fn requeue(&self, d: Delivery) {
        if let Some(m) = &self.mailbox {
            m.push(d);
        }
    }

    /// When to wake up next (session timers, due receipts, delayed responses).
    fn next_deadline(&self, session: &Session) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut at = session.poll_timeout().unwrap_or(far);
        if let Some(d) = self.delayed.front() {
            at = at.min(d.0);
        }
        // A due receipt only wakes us when it can be sent (else the response that frees the
        // window will).
        if let Some(r) = self.receipts.peek() {
            if !self.can_receive || session.window_available() > 0 {
                at = at.min(r.0.due);
            }
        }
        at
    }

    /// The connection is gone: hand everything undelivered to the mailbox.
    fn release(&mut self) {
        let counters = &self.shared.counters;
        if let Some(m) = self.mailbox.take() {
            counters
                .binds_active
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            if self.can_receive {
                m.receivers
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            let mut in_flight: Vec<(u32, Delivery)> = self.in_flight.drain().collect();
            in_flight.sort_by_key(|(seq, _)| *seq);
            m.push_front_all(in_flight.into_iter().map(|(_, d)| d));
            let mut receipts: Vec<_> = std::mem::take(&mut self.receipts).into_sorted_vec();
            receipts.reverse(); // into_sorted_vec of Reverse is latest first
            for Reverse(s) in receipts {
                m.push(s.delivery);
            }
        }
    }
}

/// The deliver_sm carrying a receipt for `sm`.
fn receipt_pdu(sm: &SubmitSm, message_id: String, outcome: Outcome, style: DlrStyle) -> SubmitSm {
    let state = match outcome {
        Outcome::Delivrd => ReceiptState::Delivered,
        Outcome::Undeliv => ReceiptState::Undeliverable,
        Outcome::Expired => ReceiptState::Expired,
        Outcome::Rejectd => ReceiptState::Rejected,
    };
    let date = now_date();
    let mut receipt = Receipt::new(message_id, state);
    receipt.submitted = Some(1);
    receipt.delivered = Some(u32::from(outcome == Outcome::Delivrd));
    receipt.submit_date = Some(date);
    receipt.done_date = Some(date);
    receipt.error_code = Some(ErrorCode::from_text(&format!(
        "{:03}",
        outcome.error_code()
    )));
    // The first 20 characters of the text, as carriers echo them (printable ASCII only).
    let body = if sm.has_udh() {
        let udh_len = sm.short_message.first().map_or(0, |l| *l as usize + 1);
        sm.short_message.get(udh_len..).unwrap_or_default()
    } else {
        &sm.short_message[..]
    };
    let text: Vec<u8> = body
        .iter()
        .take(20)
        .map(|&b| if (0x20..0x7F).contains(&b) { b } else { b'?' })
        .collect();
    receipt.text = Some(text);
    let short_message = match style {
        DlrStyle::Text | DlrStyle::Both => Bytes::from(format_text_receipt(&receipt)),
        DlrStyle::Tlv => Bytes::new(),
    };
    let tlvs = match style {
        DlrStyle::Tlv | DlrStyle::Both => receipt_tlvs(&receipt),
        DlrStyle::Text => Tlvs::new(),
    };
    SubmitSm {
        source: sm.dest.clone(),
        dest: sm.source.clone(),
        esm_class: SubmitSm::ESM_CLASS_RECEIPT,
        short_message,
        tlvs,
        ..SubmitSm::default()
    }
}

fn now_date() -> ReceiptDate {
    let t = time::OffsetDateTime::now_utc();
    ReceiptDate {
        year: t.year().clamp(0, 9999) as u16,
        month: u8::from(t.month()),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: None,
    }
}
