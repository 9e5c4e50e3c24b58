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

impl VoiceSettings {
    /// Default `rtp_port_min`.
    pub const DEFAULT_RTP_PORT_MIN: u16 = 16384;
    /// Default `rtp_port_max`.
    pub const DEFAULT_RTP_PORT_MAX: u16 = 32767;
    /// Default `max_concurrent_calls`.
    pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 50;
    /// Default `max_queued_calls`.
    pub const DEFAULT_MAX_QUEUED_CALLS: usize = 10_000;
    /// Default `trunk_timeout_ms`.
    pub const DEFAULT_TRUNK_TIMEOUT_MS: u64 = 5000;
    /// Default `ring_timeout_s`.
    pub const DEFAULT_RING_TIMEOUT_S: u64 = 30;
    /// Default `max_duration_s`.
    pub const DEFAULT_MAX_DURATION_S: u64 = 300;
    /// Default `tts_command`.
    pub const DEFAULT_TTS_COMMAND: &'static str = "espeak-ng";
    /// Default `tts_timeout_ms`.
    pub const DEFAULT_TTS_TIMEOUT_MS: u64 = 10_000;
    /// Default `tts_cache_entries`.
    pub const DEFAULT_TTS_CACHE_ENTRIES: usize = 256;
    /// Default `audio_max_bytes` (8 MiB).
    pub const DEFAULT_AUDIO_MAX_BYTES: usize = 8 << 20;
    /// Default `audio_fetch_timeout_ms`.
    pub const DEFAULT_AUDIO_FETCH_TIMEOUT_MS: u64 = 10_000;

    /// Default `max_preparing_calls` for a given `max_concurrent_calls`: twice as many.
    pub const fn default_max_preparing_calls(max_concurrent_calls: usize) -> usize {
        max_concurrent_calls.saturating_mul(2)
    }
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            listen: None,
            rtp_ports: (Self::DEFAULT_RTP_PORT_MIN, Self::DEFAULT_RTP_PORT_MAX),
            max_concurrent_calls: Self::DEFAULT_MAX_CONCURRENT_CALLS,
            max_preparing_calls: Self::default_max_preparing_calls(
                Self::DEFAULT_MAX_CONCURRENT_CALLS,
            ),
            max_queued_calls: Self::DEFAULT_MAX_QUEUED_CALLS,
            trunk_timeout: Duration::from_millis(Self::DEFAULT_TRUNK_TIMEOUT_MS),
            ring_timeout: Duration::from_secs(Self::DEFAULT_RING_TIMEOUT_S),
            max_duration: Duration::from_secs(Self::DEFAULT_MAX_DURATION_S),
            tts_command: Self::DEFAULT_TTS_COMMAND.to_owned(),
            tts_timeout: Duration::from_millis(Self::DEFAULT_TTS_TIMEOUT_MS),
            tts_cache_entries: Self::DEFAULT_TTS_CACHE_ENTRIES,
            audio_max_bytes: Self::DEFAULT_AUDIO_MAX_BYTES,
            audio_fetch_timeout: Duration::from_millis(Self::DEFAULT_AUDIO_FETCH_TIMEOUT_MS),
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
        VoiceSettings::default_max_preparing_calls(max_concurrent_calls),
    );
    let max_queued_calls = t.int_or(report, "max_queued_calls", 1, 1_000_000, d.max_queued_calls);
    let trunk_timeout = Duration::from_millis(t.int_or(
        report,
        "trunk_timeout_ms",
        100,
        300_000,
        VoiceSettings::DEFAULT_TRUNK_TIMEOUT_MS,
    ));
    let ring_timeout = Duration::from_secs(t.int_or(
        report,
        "ring_timeout_s",
        1,
        600,
        VoiceSettings::DEFAULT_RING_TIMEOUT_S,
    ));
    let max_duration = Duration::from_secs(t.int_or(
        report,
        "max_duration_s",
        1,
        3600,
        VoiceSettings::DEFAULT_MAX_DURATION_S,
    ));
    let tts_command = t.string(report, "tts_command").unwrap_or(d.tts_command);
    let tts_timeout = Duration::from_millis(t.int_or(
        report,
        "tts_timeout_ms",
        100,
        120_000,
        VoiceSettings::DEFAULT_TTS_TIMEOUT_MS,
    ));
    let tts_cache_entries = t.int_or(report, "tts_cache_entries", 0, 100_000, d.tts_cache_entries);
    let audio_max_bytes = t.int_or(
        report,
        "audio_max_bytes",
        1024,
        256 << 20,
        d.audio_max_bytes,
    );
    let audio_fetch_timeout = Duration::from_millis(t.int_or(
        report,
        "audio_fetch_timeout_ms",
        100,
        120_000,
        VoiceSettings::DEFAULT_AUDIO_FETCH_TIMEOUT_MS,
    ));
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
