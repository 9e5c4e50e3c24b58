//! One tenant connection: the protocols crate's SMSC session over a socket, the bind checks,
//! submits through the accept pipeline, and deliver_sm (receipts) towards the ESME.
//!
//! ```text
//! bytes ─► codec ─► Session ─► BindRequest ─► users: system_id, password, system_type, IP
//!                                           ─► binds: max_binds ─► bind_resp
//!                          ─► submit_sm / data_sm ─► user's max_tps ─► convert ─► Submitter::accept
//!                                                      (in flight, at most `window`) ─► *_resp
//!                          ─► query_sm ─► store
//! receipt sender ─► Outgoing::Deliver ─► deliver_sm (window) ─► deliver_sm_resp ─► done
//! ```
//! A submit's response goes out only once the pipeline stored the message (or refused it), and
//! responses may leave in a different order than the requests came (SMPP allows it; ESMEs match
//! by sequence number). When the connection ends, submits still in the pipeline are driven to
//! their end before the task stops, so nothing accepted waits for crash recovery.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use switchyard_protocols::smpp::codec::SmppCodec;
use switchyard_protocols::smpp::pdu::{
    Address, Body, CommandId, DataSmResp, MessageIdResp, MultiDest, QuerySm, QuerySmResp,
    SubmitMulti, SubmitMultiResp, SubmitSm, UnsuccessSme,
};
use switchyard_protocols::smpp::session::{BindType, Event, Session, SessionConfig, State};
use switchyard_protocols::smpp::tlv::message_state;
use switchyard_protocols::smpp::{time, CommandStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{Decoder, Encoder};

use super::convert::{self, Submission};
use super::users::{OpenBind, Outgoing, User};
use super::Server;
use crate::domain::{MessageId, Status};

/// A submit's end: the sequence number, the status and the response body.
type Answer = (u32, CommandStatus, Body);

/// Serves one accepted connection until it closes.
pub(crate) async fn serve<S>(
    server: Arc<Server>,
    stream: S,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = server.next_connection_id();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let settings = server.settings.clone();
    let mut codec = SmppCodec::with_max_pdu_len(settings.max_pdu_len as usize);
    let (mut rbuf, mut wbuf) = (BytesMut::with_capacity(8192), BytesMut::with_capacity(8192));
    let mut config = SessionConfig::smsc(settings.system_id.clone());
    config.window = settings.receipt_window.max(1);
    // Until the bind says who this is, one request at a time.
    config.peer_window = 1;
    config.response_timeout = settings.response_timeout;
    config.enquire_link_interval = settings.enquire_link_interval;
    config.inactivity_timeout = Some(settings.idle_timeout);
    config.bind_timeout = settings.bind_timeout;
    let mut session = Session::new(config, now());
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(settings.receipt_window.max(1));
    let mut c = Conn {
        server: server.clone(),
        id,
        peer,
        user: None,
        metrics: None,
        out_tx,
        waiting: VecDeque::new(),
        delivering: HashMap::new(),
        accepts: FuturesUnordered::new(),
    };
    let mut draining = false;
    loop {
        let at = now();
        c.send_deliveries(&mut session, at);
        while let Some(event) = session.poll_event() {
            c.on_event(&mut session, event, at).await;
        }
        while let Some(pdu) = session.poll_transmit() {
            if let Err(e) = codec.encode(&pdu, &mut wbuf) {
                tracing::error!(conn = id, "cannot encode {:?}: {e}", pdu.command_id());
            }
        }
        if !wbuf.is_empty() {
            if wr.write_all(&wbuf).await.is_err() {
                session.connection_lost(now());
            }
            wbuf.clear();
        }
        if session.is_closed() {
            // Flush what the last events produced (the final unbind_resp or bind_resp).
            while let Some(event) = session.poll_event() {
                c.on_event(&mut session, event, now()).await;
            }
            while let Some(pdu) = session.poll_transmit() {
                let _ = codec.encode(&pdu, &mut wbuf);
            }
            let _ = wr.write_all(&wbuf).await;
            break;
        }
        let wake = session
            .poll_timeout()
            .unwrap_or_else(|| now() + Duration::from_secs(3600));
        let can_take = c.user.is_some() && c.waiting.len() < server.settings.receipt_window;
        tokio::select! {
            read = rd.read_buf(&mut rbuf) => {
                let at = now();
                match read {
                    Ok(0) | Err(_) => session.connection_lost(at),
                    Ok(_) => loop {
                        match codec.decode(&mut rbuf) {
                            Ok(Some(Ok(pdu))) => session.handle_pdu(pdu, at),
                            Ok(Some(Err(bad))) => {
                                tracing::info!(conn = id, %peer, "malformed PDU: {bad}");
                                session.handle_decode_error(&bad, at);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!(conn = id, %peer, "closing: {e}");
                                session.connection_lost(at);
                                break;
                            }
                        }
                    },
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => session.handle_timeout(now()),
            Some(answer) = c.accepts.next(), if !c.accepts.is_empty() => {
                c.answer(&mut session, answer);
                while let Some(Some(answer)) = futures::FutureExt::now_or_never(c.accepts.next()) {
                    c.answer(&mut session, answer);
                }
            }
            Some(out) = out_rx.recv(), if can_take => match out {
                Outgoing::Deliver { pdu, done } => c.waiting.push_back((*pdu, done)),
                Outgoing::Unbind => {
                    tracing::info!(conn = id, %peer, "unbinding: the user was removed or changed");
                    let _ = session.unbind(now());
                }
            },
            _ = shutdown.changed(), if !draining => {
                draining = true;
                if matches!(session.state(), State::Bound(_)) {
                    let _ = session.unbind(now());
                } else {
                    session.abort(now());
                }
            }
        }
    }
    // Submits still in the pipeline finish: their messages are stored and handed over even
    // though their responses can no longer be sent.
    while c.accepts.next().await.is_some() {
        if let Some(m) = &c.metrics {
            m.window.decrement(1.0);
        }
    }
    if let Some(user) = &c.user {
        server.binds.unregister(&user.config.system_id, id);
        tracing::info!(conn = id, %peer, system_id = %user.config.system_id, "unbound");
    }
}

/// What one connection holds beside its session.
struct Conn {
    server: Arc<Server>,
    id: u64,
    peer: SocketAddr,
    /// Who bound, once bound.
    user: Option<Arc<User>>,
    /// The bound user's submit metrics.
    metrics: Option<SubmitMetrics>,
    /// Given to the bind registry so receipt senders reach this connection.
    out_tx: mpsc::Sender<Outgoing>,
    /// deliver_sm waiting for a window slot.
    waiting: VecDeque<(SubmitSm, oneshot::Sender<Result<(), String>>)>,
    /// deliver_sm sent, by sequence number.
    delivering: HashMap<u32, oneshot::Sender<Result<(), String>>>,
    /// Submits in the accept pipeline.
    accepts: FuturesUnordered<BoxFuture<'static, Answer>>,
}

impl Conn {
    async fn on_event(&mut self, session: &mut Session, event: Event, now: Instant) {
        match event {
            Event::BindRequest { bind_type, bind } => self.on_bind(session, bind_type, &bind, now),
            Event::Bound {
                bind_type,
                interface_version,
                ..
            } => {
                if let Some(user) = &self.user {
                    tracing::info!(
                        conn = self.id,
                        peer = %self.peer,
                        system_id = %user.config.system_id,
                        tenant = %user.tenant,
                        ?bind_type,
                        interface_version = interface_version.unwrap_or(0),
                        "bound"
                    );
                }
            }
            Event::Request {
                sequence_number,
                body,
            } => self.on_request(session, sequence_number, body, now).await,
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
                if let Some(done) = self.delivering.remove(&sequence_number) {
                    let outcome = if status.is_ok() {
                        Ok(())
                    } else {
                        Err(format!("deliver_sm_resp {status}"))
                    };
                    let _ = done.send(outcome);
                }
            }
            Event::ResponseTimeout {
                sequence_number, ..
            } => {
                if let Some(done) = self.delivering.remove(&sequence_number) {
                    let _ = done.send(Err("no deliver_sm_resp in time".into()));
                }
            }
            Event::Closed { reason, .. } => {
                tracing::debug!(conn = self.id, peer = %self.peer, ?reason, "session closed");
                // Undelivered deliver_sm: their senders learn it from the dropped `done`.
                self.delivering.clear();
                self.waiting.clear();
            }
            _ => {}
        }
    }

    fn on_bind(
        &mut self,
        session: &mut Session,
        bind_type: BindType,
        bind: &switchyard_protocols::smpp::pdu::Bind,
        now: Instant,
    ) {
        let users = self.server.users.load();
        let checked = users.authenticate(bind, self.peer.ip()).and_then(|user| {
            self.server
                .binds
                .register(
                    &user.config.system_id,
                    user.config.max_binds,
                    OpenBind {
                        id: self.id,
                        bind_type,
                        peer: self.peer,
                        interface_version: bind.interface_version,
                        since: crate::domain::now_ms(),
                        outgoing: self.out_tx.clone(),
                    },
                )
                .map(|()| user)
        });
        match checked {
            Ok(user) => {
                session.set_peer_window(user.config.window.max(1) as usize);
                self.metrics = Some(SubmitMetrics::new(&user.config.system_id));
                self.user = Some(user);
                let _ = session.accept_bind(now);
            }
            Err(refused) => {
                tracing::info!(
                    conn = self.id,
                    peer = %self.peer,
                    system_id = %bind.system_id.to_str_lossy(),
                    status = %refused.status,
                    "bind refused: {}",
                    refused.reason
                );
                let _ = session.reject_bind(refused.status, now);
            }
        }
    }

    async fn on_request(&mut self, session: &mut Session, seq: u32, body: Body, now: Instant) {
        let Some(user) = self.user.clone() else {
            // The session only lets bound requests through; nothing to do otherwise.
            return;
        };
        let command = body.command_id();
        match body {
            Body::SubmitSm(sm) => self.submit(
                session,
                seq,
                command,
                &user,
                Submission::submit_sm(&sm),
                now,
            ),
            Body::DataSm(sm) => {
                self.submit(session, seq, command, &user, Submission::data_sm(&sm), now)
            }
            Body::SubmitMulti(sm) => self.submit_multi(session, seq, &user, &sm, now),
            Body::QuerySm(q) => {
                let server = self.server.clone();
                let (status, resp) = query(&server, &user, &q).await;
                let _ = session.respond(seq, status, resp, now);
            }
            Body::ReplaceSm(r) => {
                let server = self.server.clone();
                let status = replace(&server, &user, &r).await;
                let _ = session.respond(seq, status, Body::ReplaceSmResp, now);
            }
            Body::CancelSm(c) => {
                let server = self.server.clone();
                let status = if c.message_id.is_empty() {
                    cancel_matching(&server, &user, &c).await
                } else {
                    cancel(&server, &user, &c.message_id.to_str_lossy()).await
                };
                let _ = session.respond(seq, status, Body::CancelSmResp, now);
            }
            other => {
                tracing::info!(conn = self.id, command = ?other.command_id(), "operation not offered");
                let _ = session.respond(seq, CommandStatus::ESME_RINVCMDID, Body::GenericNack, now);
            }
        }
    }

    fn submit(
        &mut self,
        session: &mut Session,
        seq: u32,
        command: CommandId,
        user: &Arc<User>,
        s: Submission<'_>,
        now: Instant,
    ) {
        let refuse = |session: &mut Session, status: CommandStatus| {
            count_submit(&user.config.system_id, status);
            let _ = session.respond(seq, status, empty_resp(command), now);
        };
        if !user.take(now) {
            return refuse(session, CommandStatus::ESME_RTHROTTLED);
        }
        let draft = match convert::draft(&s, user, &self.server.limits, crate::domain::now_ms()) {
            Ok(d) => d,
            Err(reject) => {
                tracing::debug!(conn = self.id, system_id = %user.config.system_id, status = %reject.status, "submit refused: {}", reject.reason);
                return refuse(session, reject.status);
            }
        };
        let submit = self.server.submit.clone();
        let system_id = user.config.system_id.clone();
        if let Some(m) = &self.metrics {
            m.window.increment(1.0);
        }
        self.accepts.push(Box::pin(async move {
            let result = submit
                .accept(draft, |_, _, _| Ok::<_, crate::submit::SubmitError>(None))
                .await;
            match result {
                Ok((id, _)) => (
                    seq,
                    CommandStatus::ESME_ROK,
                    id_resp(command, &id.to_string()),
                ),
                Err(e) => {
                    let status = convert::status_of(&e);
                    tracing::debug!(%system_id, %status, "submit refused: {e}");
                    (seq, status, empty_resp(command))
                }
            }
        }));
    }

    /// submit_multi: one message per SME destination through the pipeline, the first one's
    /// id answered and reported in every destination's receipt (each receipt comes from its
    /// own destination address); destinations refused are listed in unsuccess_sme, and
    /// distribution lists are not offered (ESME_RINVDLNAME).
    fn submit_multi(
        &mut self,
        session: &mut Session,
        seq: u32,
        user: &Arc<User>,
        sm: &SubmitMulti,
        now: Instant,
    ) {
        let refuse = |session: &mut Session, status: CommandStatus| {
            count_submit(&user.config.system_id, status);
            let _ = session.respond(
                seq,
                status,
                Body::SubmitMultiResp(SubmitMultiResp::default()),
                now,
            );
        };
        if sm.dests.is_empty() {
            return refuse(session, CommandStatus::ESME_RINVNUMDESTS);
        }
        if !user.take_n(now, u32::try_from(sm.dests.len()).unwrap_or(u32::MAX)) {
            return refuse(session, CommandStatus::ESME_RTHROTTLED);
        }
        let at = crate::domain::now_ms();
        let drafts: Vec<(Address, Result<crate::submit::Draft, CommandStatus>)> = sm
            .dests
            .iter()
            .map(|d| match d {
                MultiDest::Sme(a) => (
                    a.clone(),
                    convert::draft(
                        &Submission::submit_multi(sm, a),
                        user,
                        &self.server.limits,
                        at,
                    )
                    .map_err(|r| r.status),
                ),
                MultiDest::DistributionList(name) => (
                    Address {
                        ton: 0,
                        npi: 0,
                        addr: name.clone(),
                    },
                    Err(CommandStatus::ESME_RINVDLNAME),
                ),
            })
            .collect();
        let submit = self.server.submit.clone();
        if let Some(m) = &self.metrics {
            m.window.increment(1.0);
        }
        self.accepts.push(Box::pin(async move {
            let mut first: Option<MessageId> = None;
            let mut unsuccess = Vec::new();
            for (address, draft) in drafts {
                let status = match draft {
                    Err(status) => status,
                    Ok(mut draft) => {
                        if let (Some(origin), Some(id)) = (draft.smpp.as_mut(), first) {
                            origin.reported_id = Some(id);
                        }
                        let accepted = submit
                            .accept(draft, |_, _, _| Ok::<_, crate::submit::SubmitError>(None))
                            .await;
                        match accepted {
                            Ok((id, _)) => {
                                first.get_or_insert(id);
                                continue;
                            }
                            Err(e) => convert::status_of(&e),
                        }
                    }
                };
                unsuccess.push(UnsuccessSme {
                    address,
                    error_status_code: status,
                });
            }
            match first {
                Some(id) => (
                    seq,
                    CommandStatus::ESME_ROK,
                    Body::SubmitMultiResp(SubmitMultiResp {
                        message_id: id.to_string().into(),
                        unsuccess,
                    }),
                ),
                None => (
                    seq,
                    unsuccess
                        .first()
                        .map_or(CommandStatus::ESME_RSUBMITFAIL, |u| u.error_status_code),
                    Body::SubmitMultiResp(SubmitMultiResp {
                        message_id: Default::default(),
                        unsuccess,
                    }),
                ),
            }
        }));
    }

    fn answer(&mut self, session: &mut Session, (seq, status, body): Answer) {
        let now = now();
        if let (Some(user), Some(m)) = (&self.user, &self.metrics) {
            if status == CommandStatus::ESME_ROK {
                m.accepted.increment(1);
            } else {
                count_submit(&user.config.system_id, status);
            }
            m.window.decrement(1.0);
        }
        let _ = session.respond(seq, status, body, now);
    }
}

/// cancel_sm of one message by its id: a scheduled message that is not due yet is cancelled
/// (its receipt, if asked for, says DELETED); anything else is ESME_RCANCELFAIL.
async fn cancel(server: &Server, user: &User, message_id: &str) -> CommandStatus {
    use crate::submit::CancelError;
    let Ok(id) = message_id.parse::<MessageId>() else {
        return CommandStatus::ESME_RINVMSGID;
    };
    match server.submit.cancel(&user.tenant, id).await {
        Ok(()) => CommandStatus::ESME_ROK,
        Err(CancelError::NotFound | CancelError::NotCancellable(_)) => {
            CommandStatus::ESME_RCANCELFAIL
        }
        Err(CancelError::Store(e)) => {
            tracing::warn!("cancel_sm: {e}");
            CommandStatus::ESME_RSYSERR
        }
    }
}

/// cancel_sm without a message_id: the tenant's scheduled messages from source_addr to
/// dest_addr (of service_type, when given) that are not due yet are cancelled, at most
/// [`crate::submit::MAX_CANCEL_MATCHING`] per cancel_sm, each with its DELETED receipt if it
/// asked for one. ESME_ROK when at least one was; ESME_RCANCELFAIL when none could be;
/// ESME_RINVDSTADR / ESME_RINVSRCADR for addresses a submit could not have used.
async fn cancel_matching(
    server: &Server,
    user: &User,
    c: &switchyard_protocols::smpp::pdu::CancelSm,
) -> CommandStatus {
    let named = match convert::cancel_match(c, user) {
        Ok(m) => m,
        Err(reject) => return reject.status,
    };
    let max = crate::submit::MAX_CANCEL_MATCHING;
    match server
        .submit
        .cancel_matching(&user.tenant, &named, max)
        .await
    {
        Ok(0) => CommandStatus::ESME_RCANCELFAIL,
        Ok(n) => {
            tracing::debug!(system_id = %user.config.system_id, n, "cancel_sm by addresses");
            CommandStatus::ESME_ROK
        }
        Err(e) => {
            tracing::warn!("cancel_sm: {e}");
            CommandStatus::ESME_RSYSERR
        }
    }
}

/// replace_sm of a scheduled message that is not due yet: new text (in its encoding), times
/// and receipt request; anything else is ESME_RREPLACEFAIL, or the status naming what is
/// wrong with the new content.
async fn replace(
    server: &Server,
    user: &User,
    r: &switchyard_protocols::smpp::pdu::ReplaceSm,
) -> CommandStatus {
    use crate::submit::{ReplaceError, SubmitError};
    let raw = r.message_id.to_str_lossy();
    let Ok(id) = raw.parse::<MessageId>() else {
        return CommandStatus::ESME_RINVMSGID;
    };
    let now = crate::domain::now_ms();
    let result = server
        .submit
        .replace(&user.tenant, id, |record| {
            convert::replacement(r, record, user, &server.limits, now)
        })
        .await;
    match result {
        Ok(()) => CommandStatus::ESME_ROK,
        Err(ReplaceError::NotFound | ReplaceError::NotReplaceable(_)) => {
            CommandStatus::ESME_RREPLACEFAIL
        }
        Err(ReplaceError::Invalid(reject)) => reject.status,
        Err(ReplaceError::Refused(refusal)) => convert::status_of(&SubmitError::Refused(refusal)),
        Err(ReplaceError::Store(e)) => {
            tracing::warn!("replace_sm: {e}");
            CommandStatus::ESME_RSYSERR
        }
    }
}

/// query_sm: the message's state, if it is this tenant's.
async fn query(server: &Server, user: &User, q: &QuerySm) -> (CommandStatus, Body) {
    let raw = q.message_id.to_str_lossy();
    let not_found = (
        CommandStatus::ESME_RQUERYFAIL,
        Body::QuerySmResp(QuerySmResp::default()),
    );
    let Ok(id) = raw.parse::<MessageId>() else {
        return (
            CommandStatus::ESME_RINVMSGID,
            Body::QuerySmResp(QuerySmResp::default()),
        );
    };
    let record = match server.store.get(&user.tenant, id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found,
        Err(e) => {
            tracing::warn!("query_sm: {e}");
            return (
                CommandStatus::ESME_RSYSERR,
                Body::QuerySmResp(QuerySmResp::default()),
            );
        }
    };
    let final_date = if record.status.is_final() {
        time::format_absolute(record.updated_at).into()
    } else {
        Default::default()
    };
    (
        CommandStatus::ESME_ROK,
        Body::QuerySmResp(QuerySmResp {
            message_id: raw.into_owned().into(),
            final_date,
            message_state: state_of(record.status),
            error_code: 0,
        }),
    )
}

impl Conn {
    /// Moves waiting deliver_sm into the window.
    fn send_deliveries(&mut self, session: &mut Session, now: Instant) {
        while session.window_available() > 0 {
            let Some((pdu, done)) = self.waiting.pop_front() else {
                return;
            };
            if done.is_closed() {
                continue;
            }
            match session.send_request(Body::DeliverSm(pdu), now) {
                Ok(seq) => {
                    self.delivering.insert(seq, done);
                }
                Err(e) => {
                    let _ = done.send(Err(format!("cannot send: {e}")));
                }
            }
        }
    }
}

/// The metrics every submit of a bound user updates, looked up once at bind.
struct SubmitMetrics {
    /// `switchyard_smpp_server_submits_total{system_id, status="ESME_ROK"}`.
    accepted: metrics::Counter,
    /// `switchyard_smpp_server_window_in_use{system_id}`.
    window: metrics::Gauge,
}

impl SubmitMetrics {
    fn new(system_id: &str) -> Self {
        SubmitMetrics {
            accepted: metrics::counter!("switchyard_smpp_server_submits_total", "system_id" => system_id.to_owned(), "status" => "ESME_ROK"),
            window: window_gauge(system_id),
        }
    }
}

/// `switchyard_smpp_server_submits_total{system_id, status}`: submits answered, by
/// command_status (`ESME_ROK`, `ESME_RTHROTTLED`, …).
fn count_submit(system_id: &str, status: CommandStatus) {
    let name = status
        .name()
        .map_or_else(|| format!("0x{:08X}", status.0), str::to_owned);
    metrics::counter!("switchyard_smpp_server_submits_total", "system_id" => system_id.to_owned(), "status" => name)
        .increment(1);
}

/// `switchyard_smpp_server_window_in_use{system_id}`: submits in the accept pipeline, not yet
/// answered, across the user's binds.
fn window_gauge(system_id: &str) -> metrics::Gauge {
    metrics::gauge!("switchyard_smpp_server_window_in_use", "system_id" => system_id.to_owned())
}

/// The message_state of a message in `status` (query_sm_resp, receipts).
pub(crate) fn state_of(status: Status) -> u8 {
    match status {
        Status::Accepted | Status::Queued => message_state::SCHEDULED,
        Status::Submitting | Status::Sent => message_state::ENROUTE,
        Status::Delivered | Status::Read => message_state::DELIVERED,
        Status::Expired => message_state::EXPIRED,
        Status::Cancelled => message_state::DELETED,
        Status::Undeliverable | Status::Failed => message_state::UNDELIVERABLE,
        Status::Rejected => message_state::REJECTED,
    }
}

/// The success response of `command` carrying `id`.
fn id_resp(command: CommandId, id: &str) -> Body {
    if command == CommandId::DATA_SM {
        Body::DataSmResp(DataSmResp {
            message_id: id.to_owned().into(),
            ..DataSmResp::default()
        })
    } else {
        Body::SubmitSmResp(MessageIdResp {
            message_id: id.to_owned().into(),
        })
    }
}

/// The error response of `command` (no message id).
fn empty_resp(command: CommandId) -> Body {
    if command == CommandId::DATA_SM {
        Body::DataSmResp(DataSmResp::default())
    } else {
        Body::SubmitSmResp(MessageIdResp::default())
    }
}

/// The runtime's clock as a std `Instant` (virtual in paused-time tests).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
