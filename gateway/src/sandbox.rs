//! The built-in sandbox carrier: a real SMSC on a loopback port, inside the gateway process,
//! so `switchyard serve` works with no configuration at all. It speaks SMPP through the same
//! protocols crate (SMSC role), accepts every bind and every message, and returns a DELIVRD
//! receipt (text and TLV forms) shortly after each submit that asked for one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use switchyard_protocols::dlr::{format_text_receipt, receipt_tlvs, Receipt, ReceiptState};
use switchyard_protocols::smpp::codec::SmppCodec;
use switchyard_protocols::smpp::pdu::{Body, COctet, MessageIdResp, SubmitSm};
use switchyard_protocols::smpp::session::{Event, Session, SessionConfig};
use switchyard_protocols::smpp::CommandStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder};

/// How long the sandbox waits before "delivering" a message.
const RECEIPT_DELAY: Duration = Duration::from_millis(20);

/// Starts the sandbox SMSC on an ephemeral loopback port; returns its address.
pub(crate) async fn start() -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let ids = Arc::new(AtomicU64::new(crate::domain::now_ms() as u64));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream, ids.clone()));
        }
    });
    Ok(addr)
}

async fn serve(stream: TcpStream, ids: Arc<AtomicU64>) {
    let (mut rd, mut wr) = stream.into_split();
    let mut codec = SmppCodec::new();
    let (mut rbuf, mut wbuf) = (
        BytesMut::with_capacity(16 * 1024),
        BytesMut::with_capacity(16 * 1024),
    );
    let mut config = SessionConfig::smsc(COctet::from("sandbox"));
    config.window = 256;
    config.peer_window = 1 << 16;
    config.enquire_link_interval = None;
    let mut session = Session::new(config, Instant::now());
    let mut receipts: VecDeque<(Instant, SubmitSm)> = VecDeque::new();
    loop {
        let now = Instant::now();
        while receipts.front().is_some_and(|r| r.0 <= now) && session.window_available() > 0 {
            if let Some((_, pdu)) = receipts.pop_front() {
                let _ = session.send_request(Body::DeliverSm(pdu), now);
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::BindRequest { .. } => {
                    let _ = session.accept_bind(now);
                }
                Event::Request {
                    sequence_number,
                    body: Body::SubmitSm(sm),
                } => {
                    let id = format!("{:x}", ids.fetch_add(1, Ordering::Relaxed));
                    if sm.registered_delivery & 0x03 == 1 {
                        receipts.push_back((now + RECEIPT_DELAY, receipt(&sm, &id)));
                    }
                    let resp = Body::SubmitSmResp(MessageIdResp {
                        message_id: id.into(),
                    });
                    let _ = session.respond(sequence_number, CommandStatus::ESME_ROK, resp, now);
                }
                Event::Request {
                    sequence_number,
                    body,
                } => {
                    let resp = body
                        .command_id()
                        .empty_response()
                        .unwrap_or(Body::GenericNack);
                    let _ =
                        session.respond(sequence_number, CommandStatus::ESME_RINVCMDID, resp, now);
                }
                Event::Closed { .. } => {
                    // Send the final unbind_resp before hanging up.
                    while let Some(pdu) = session.poll_transmit() {
                        let _ = codec.encode(&pdu, &mut wbuf);
                    }
                    let _ = wr.write_all(&wbuf).await;
                    return;
                }
                _ => {}
            }
        }
        while let Some(pdu) = session.poll_transmit() {
            let _ = codec.encode(&pdu, &mut wbuf);
        }
        if !wbuf.is_empty() {
            if wr.write_all(&wbuf).await.is_err() {
                return;
            }
            wbuf.clear();
        }
        let mut wake = session
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(3600));
        if let Some(r) = receipts.front() {
            if session.window_available() > 0 {
                wake = wake.min(r.0);
            }
        }
        tokio::select! {
            read = rd.read_buf(&mut rbuf) => match read {
                Ok(0) | Err(_) => session.connection_lost(Instant::now()),
                Ok(_) => {
                    let now = Instant::now();
                    loop {
                        match codec.decode(&mut rbuf) {
                            Ok(Some(Ok(pdu))) => session.handle_pdu(pdu, now),
                            Ok(Some(Err(bad))) => session.handle_decode_error(&bad, now),
                            Ok(None) => break,
                            Err(_) => {
                                session.connection_lost(now);
                                break;
                            }
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => session.handle_timeout(Instant::now()),
        }
    }
}

fn receipt(sm: &SubmitSm, id: &str) -> SubmitSm {
    let mut r = Receipt::new(id, ReceiptState::Delivered);
    r.submitted = Some(1);
    r.delivered = Some(1);
    SubmitSm {
        source: sm.dest.clone(),
        dest: sm.source.clone(),
        esm_class: SubmitSm::ESM_CLASS_RECEIPT,
        short_message: Bytes::from(format_text_receipt(&r)),
        tlvs: receipt_tlvs(&r),
        ..SubmitSm::default()
    }
}
