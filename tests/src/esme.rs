//! A small blocking ESME for tests: raw PDUs over a `std::net::TcpStream`, using the protocols
//! crate's codec (not its session, so tests can also send what a session never would).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use switchyard_protocols::smpp::codec::{self, SmppCodec};
use switchyard_protocols::smpp::pdu::{Bind, Body, MessageIdResp, Pdu};
use switchyard_protocols::smpp::CommandStatus;
use tokio_util::codec::Decoder;

/// One connection to an SMSC.
#[derive(Debug)]
pub struct TestEsme {
    stream: TcpStream,
    codec: SmppCodec,
    buf: BytesMut,
    next_seq: u32,
}

impl TestEsme {
    /// Connects (bounded wait).
    pub fn connect(addr: &str) -> anyhow::Result<Self> {
        let addr: std::net::SocketAddr = addr.parse()?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        Ok(TestEsme {
            stream,
            codec: SmppCodec::new(),
            buf: BytesMut::with_capacity(8192),
            next_seq: 1,
        })
    }

    /// Sends a request with the next sequence number; returns that number.
    pub fn send(&mut self, body: Body) -> anyhow::Result<u32> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.send_pdu(&Pdu::request(seq, body))?;
        Ok(seq)
    }

    /// Sends any PDU.
    pub fn send_pdu(&mut self, pdu: &Pdu) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        codec::encode(pdu, &mut out)?;
        self.send_raw(&out)
    }

    /// Sends raw bytes (for malformed-input tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Receives the next PDU within `timeout`. Frames that fail to decode are an error.
    pub fn recv(&mut self, timeout: Duration) -> anyhow::Result<Pdu> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return frame.map_err(|e| anyhow::anyhow!("undecodable PDU from the SMSC: {e}"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no PDU within {timeout:?}");
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 8192];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                bail!("connection closed by the SMSC");
            }
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// Receives PDUs until one answers `seq`; deliver_sm met on the way are acknowledged and
    /// returned in `delivered`.
    pub fn recv_response(&mut self, seq: u32, delivered: &mut Vec<Pdu>) -> anyhow::Result<Pdu> {
        loop {
            let pdu = self.recv(Duration::from_secs(10))?;
            if pdu.command_id().is_response() && pdu.sequence_number == seq {
                return Ok(pdu);
            }
            self.ack_if_deliver(&pdu)?;
            if matches!(pdu.body, Body::DeliverSm(_)) {
                delivered.push(pdu);
            }
        }
    }

    /// Answers a deliver_sm with ESME_ROK.
    pub fn ack_if_deliver(&mut self, pdu: &Pdu) -> anyhow::Result<()> {
        if matches!(pdu.body, Body::DeliverSm(_)) {
            let resp = Pdu::response(
                pdu.sequence_number,
                CommandStatus::ESME_ROK,
                Body::DeliverSmResp(MessageIdResp::default()),
            );
            self.send_pdu(&resp)?;
        }
        Ok(())
    }

    /// Binds as a transceiver and returns the bind response's status.
    pub fn bind_transceiver(
        &mut self,
        system_id: &str,
        password: &str,
    ) -> anyhow::Result<CommandStatus> {
        let bind = Bind {
            system_id: system_id.to_owned().into(),
            password: password.to_owned().into(),
            interface_version: 0x34,
            ..Bind::default()
        };
        let seq = self.send(Body::BindTransceiver(bind))?;
        let resp = self
            .recv_response(seq, &mut Vec::new())
            .context("waiting for bind_transceiver_resp")?;
        Ok(resp.command_status)
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.remaining()
    }
}
