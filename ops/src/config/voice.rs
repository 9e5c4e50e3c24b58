//! `[voice]`: notification calls placed from the API (`POST /v1/messages` with
//! `"channel": "voice"`). Every key has a default, so voice works with no `[voice]` table as
//! soon as a carrier has the `voice` channel and a `[carriers.sip]` trunk.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::ConfigErrorKind;
use super::reader::{expect_str, Report, Table};

/// `[voice]`: the caller side of notification calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoiceSettings {
    /// UDP address of the SIP socket that places calls (`listen`). `None` (the default): an
    /// ephemeral port on the local address that routes to the first voice trunk, found when
    /// the gateway starts. Separate from `[sip] listen` so the proxy and the caller never
    /// share transactions.
    pub listen: Option<SocketAddr>,
    /// UDP ports for RTP, one per call, inclusive (`rtp_port_min`, `rtp_port_max`).
    pub rtp_ports: (u16, u16),
    /// Most calls at once (`max_concurrent_calls`); further calls wait their turn, so a
    /// campaign cannot open thousands of RTP sockets.
    pub max_concurrent_calls: usize,
    /// Calls whose audio may be prepared (text-to-speech, `audio_url` download) or wait,
    /// prepared, for a line, at once (`max_preparing_calls`; default twice
    /// `max_concurrent_calls`): the audio is ready before a call takes a line, so a slow
    /// download never holds one.
    pub max_preparing_calls: usize,
    /// Accepted calls that may wait for a line (`max_queued_calls`); beyond it the API
    /// answers 503.
    pub max_queued_calls: usize,
    /// A trunk silent this long after the INVITE (no provisional beyond 100, no final) is
    /// given up and the next trunk tried (`trunk_timeout_ms`).
    pub trunk_timeout: Duration,
    /// Ringing without an answer this long ends the call as `no_answer` (`ring_timeout_s`).
    pub ring_timeout: Duration,
    /// Longest call a request may ask for with `max_duration_s`, and the default
    /// (`max_duration_s`).
    pub max_duration: Duration,
    /// The text-to-speech program (`tts_command`), run as `<cmd> --stdout -v <lang> <text>`.
    pub tts_command: String,
    /// How long text-to-speech may run (`tts_timeout_ms`).
    pub tts_timeout: Duration,
    /// Rendered texts kept in memory per (language, text) (`tts_cache_entries`).
    pub tts_cache_entries: usize,
    /// Largest `audio_url` download, bytes (`audio_max_bytes`).
    pub audio_max_bytes: usize,
    /// Whole-download timeout of an `audio_url` (`audio_fetch_timeout_ms`).
    pub audio_fetch_timeout: Duration,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            listen: None,
            rtp_ports: (16384, 32767),
            max_concurrent_calls: 50,
            max_preparing_calls: 100,
            max_queued_calls: 10_000,
            trunk_timeout: Duration::from_secs(5),
            ring_timeout: Duration::from_secs(30),
            max_duration: Duration::from_secs(300),
            tts_command: "espeak-ng".to_owned(),
            tts_timeout: Duration::from_secs(10),
            tts_cache_entries: 256,
            audio_max_bytes: 8 << 20,
            audio_fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// Reads `[voice]`.
pub(crate) fn voice(report: &mut Report<'_>, mut t: Table<'_, '_>) -> VoiceSettings {
    let d = VoiceSettings::default();
    let listen = t.raw(report, "listen").and_then(|v| {
        let path = t.key_path("listen");
        let s = expect_str(report, v, &path)?;
        match s.parse::<SocketAddr>() {
            Ok(a) if !a.ip().is_unspecified() => Some(a),
            _ => {
                report.at_span(
                    &v.span(),
                    &path,
                    ConfigErrorKind::Invalid(format!(
                        "{s:?}: give the concrete IP address (and port, 0 for any) trunks \
                         reach; it goes into Via, Contact and SDP"
                    )),
                );
                None
            }
        }
    });
    let min = t.int_or(report, "rtp_port_min", 1024, 65535, d.rtp_ports.0);
    let max = t.int_or(report, "rtp_port_max", 1024, 65535, d.rtp_ports.1);
    if max < min {
        let path = t.key_path("rtp_port_max");
        report.at_path(
            &path,
            ConfigErrorKind::Invalid(format!("{max} is below rtp_port_min ({min})")),
        );
    }
    let max_concurrent_calls = t.int_or(
        report,
        "max_concurrent_calls",
        1,
        10_000,
        d.max_concurrent_calls,
    );
    let max_preparing_calls = t.int_or(
        report,
        "max_preparing_calls",
        1,
        20_000,
        max_concurrent_calls.saturating_mul(2),
    );
    let max_queued_calls = t.int_or(report, "max_queued_calls", 1, 1_000_000, d.max_queued_calls);
    let trunk_timeout =
        Duration::from_millis(t.int_or(report, "trunk_timeout_ms", 100, 300_000, 5000));
    let ring_timeout = Duration::from_secs(t.int_or(report, "ring_timeout_s", 1, 600, 30));
    let max_duration = Duration::from_secs(t.int_or(report, "max_duration_s", 1, 3600, 300));
    let tts_command = t.string(report, "tts_command").unwrap_or(d.tts_command);
    let tts_timeout =
        Duration::from_millis(t.int_or(report, "tts_timeout_ms", 100, 120_000, 10_000));
    let tts_cache_entries = t.int_or(report, "tts_cache_entries", 0, 100_000, d.tts_cache_entries);
    let audio_max_bytes = t.int_or(
        report,
        "audio_max_bytes",
        1024,
        256 << 20,
        d.audio_max_bytes,
    );
    let audio_fetch_timeout =
        Duration::from_millis(t.int_or(report, "audio_fetch_timeout_ms", 100, 120_000, 10_000));
    t.finish(report);
    VoiceSettings {
        listen,
        rtp_ports: (min, max.max(min)),
        max_concurrent_calls,
        max_preparing_calls,
        max_queued_calls,
        trunk_timeout,
        ring_timeout,
        max_duration,
        tts_command,
        tts_timeout,
        tts_cache_entries,
        audio_max_bytes,
        audio_fetch_timeout,
    }
}
