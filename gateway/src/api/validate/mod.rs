//! Parse, don't validate: turns the JSON of `POST /v1/messages` into a [`ValidSms`] that cannot
//! be invalid, or a [`Problem`] naming the field at fault. Nothing is stored before this passes.
//! A voice notification call (`"channel": "voice"`) shares every check but the SMS encoding
//! and segments; its `voice` options are checked by [`voice`].

pub(crate) mod voice;

use std::sync::Arc;

use serde::Deserialize;
use switchyard_ops::config::EgressPolicy;
use switchyard_protocols::text::{
    count_segments_behind, Concat, EncodeOptions, Encoding, EncodingPreference, SegmentInfo,
};
use switchyard_routing::{Channel, Priority};

use super::problem::Problem;
use crate::domain::{now_ms, UnixMs};

/// The request body of `POST /v1/messages` (SMS).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    /// `"+447700900123"` or `{"phone": "+447700900123"}`; for email `"ana@example.org"` or
    /// `{"email": "ana@example.org"}`; for a webhook the endpoint's URL,
    /// `"https://hooks.example.com/in"` or `{"webhook": "https://…"}`; for any channel a
    /// stored contact, `{"contact": "ct_…"}` (its address for the channel; refused with 422
    /// `consent_denied` when it denied consent on the channel).
    pub(crate) to: Recipient,
    /// `"sms"` (the default), `"voice"` (a notification call), `"email"`, `"rcs"`,
    /// `"whatsapp"`, `"telegram"`, `"messenger"` or `"webhook"` (a signed POST to the
    /// recipient system's endpoint).
    pub(crate) channel: Option<String>,
    /// `"single"` (the default: one channel). `"cascade"` (or `"failover"`),
    /// `"primary_backup"`, `"all_channels"`, `"staged"` and `"smart"` send one message over
    /// several channels: `channels` is then a list of 1 to 8 steps, each
    /// `{"channel": …, "success": "sent" | "delivered" | "read", "timeout_s": …}` plus the
    /// step's own fields; a `staged` step has `"delay_s"` (seconds after the previous stage
    /// started; none for the first) instead of `timeout_s`; `smart` orders the steps by the
    /// recipient's history with the tenant and shows the order and scores on
    /// `GET /v1/messages/{id}` (see the flows documentation).
    pub(crate) mode: Option<String>,
    /// E.164 number, short code, or alphanumeric sender id (≤ 11 characters); the caller id
    /// (E.164) of a voice call; the sender's email address for email (optional there: the
    /// relay's `from` when left out). Required for SMS and voice.
    #[serde(default)]
    pub(crate) from: Option<String>,
    /// Email only: the subject line (required).
    pub(crate) subject: Option<String>,
    /// Email only: an HTML alternative to the plain-text `body`.
    pub(crate) html: Option<String>,
    /// Email only: where replies go.
    pub(crate) reply_to: Option<String>,
    /// The text (spoken by text-to-speech for a voice call; may be left out when the call
    /// plays an `audio_url`). Required for SMS.
    #[serde(default)]
    pub(crate) body: Option<String>,
    /// `auto` (default), `gsm7`, `ucs2`, or `binary`: 8-bit data, `body` then being its octets
    /// as hex (two digits each, as `GET /v1/messages/{id}` shows them), with optional `udh`
    /// and `data_coding`.
    pub(crate) encoding: Option<String>,
    /// Binary SMS only: a user data header as hex, its length octet (UDHL) included, e.g.
    /// `027000` for a SIM toolkit command packet. Its IEs go in every segment (after the
    /// concatenation IE the gateway adds when the body needs several); with a concatenation IE
    /// of its own the message is one part the sender cut, sent as exactly one segment.
    #[schema(example = "027000")]
    pub(crate) udh: Option<String>,
    /// SMS only, text or binary: application port addressing, the destination port (0–65535;
    /// 2948 for a WAP push), sent as the 16-bit port IE (0x05) in every segment's user data
    /// header (a long text's segments are counted behind it).
    #[schema(example = 2948)]
    pub(crate) destination_port: Option<i64>,
    /// SMS only, with `destination_port`: the originator port (0–65535, default 0).
    #[schema(example = 9200)]
    pub(crate) source_port: Option<i64>,
    /// Binary SMS only: the SMPP data_coding, an 8-bit value: 4 (the default), 2, 0x14–0x17,
    /// 0xF4–0xF7 (message classes 0–3; 0xF6 for SIM data download) or 0xFC–0xFF.
    #[schema(example = 245)]
    pub(crate) data_coding: Option<i64>,
    /// `critical`, `high`, `normal` (default) or `low`.
    pub(crate) priority: Option<String>,
    /// ISO 8601 duration (`PT1H`) or whole seconds: give up if not sent within it.
    #[schema(value_type = Option<String>, example = "PT1H")]
    pub(crate) validity_period: Option<serde_json::Value>,
    /// RFC 3339 time to send at.
    pub(crate) scheduled_at: Option<String>,
    /// Status webhook for this message.
    pub(crate) callback_url: Option<String>,
    /// Labels.
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// Free-form JSON object.
    #[schema(value_type = Option<Object>)]
    pub(crate) metadata: Option<serde_json::Value>,
    /// Voice call options (only with `"channel": "voice"`): `tts` and `language`, or
    /// `audio_url`; `dtmf` (`max_digits`, `timeout_s`); `max_duration_s`.
    #[schema(value_type = Option<Object>)]
    pub(crate) voice: Option<serde_json::Value>,
    /// Messenger only: a message tag (`CONFIRMED_EVENT_UPDATE`, `POST_PURCHASE_UPDATE`,
    /// `ACCOUNT_UPDATE`, `HUMAN_AGENT`), which lets a page write outside 24 hours of the
    /// person's last message.
    pub(crate) tag: Option<String>,
    /// WhatsApp only: a pre-approved template instead of free text (`name`, `language`,
    /// `parameters` for the body's placeholders), the only kind of message WhatsApp allows
    /// outside 24 hours of the person's last message.
    #[schema(value_type = Option<Object>)]
    pub(crate) template: Option<serde_json::Value>,
}

/// A recipient in either accepted shape.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Recipient {
    /// `"+447700900123"`.
    Phone(String),
    /// `{"phone": "+447700900123"}`.
    Object {
        /// The number.
        phone: String,
    },
    /// `{"email": "ana@example.org"}`.
    Email {
        /// The address.
        email: String,
    },
    /// `{"telegram": "123456789"}` (a chat id or `@channelusername`).
    Telegram {
        /// The chat.
        telegram: String,
    },
    /// `{"messenger": "1254477777772919"}` (a page-scoped id).
    Messenger {
        /// The person's page-scoped id.
        messenger: String,
    },
    /// `{"webhook": "https://hooks.example.com/in"}` (the recipient system's endpoint).
    Webhook {
        /// The URL.
        webhook: String,
    },
    /// `{"contact": "ct_…"}`: a stored contact of the tenant, whose address for the channel
    /// is used (see `/v1/contacts`). A flow takes every address the contact has and leaves
    /// out the steps on channels it denied consent for or has no address on.
    Contact {
        /// The contact's id (read from the JSON before this type: a send resolves it to the
        /// contact's address first).
        #[allow(dead_code)]
        contact: String,
    },
}

/// Limits the API enforces on every message.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Most segments a message may need.
    pub(crate) max_segments: usize,
    /// Longest voice call a request may ask for (`[voice] max_duration_s`).
    pub(crate) max_call_s: u32,
    /// Longest validity period accepted.
    pub(crate) max_validity_s: u64,
    /// How far ahead a message may be scheduled.
    pub(crate) max_schedule_ahead_s: u64,
    /// Where tenants' URLs may point (`[egress]`): a `callback_url` or `audio_url` whose host
    /// is a refused address literal is refused at once (names are judged when connecting).
    pub(crate) egress: Arc<EgressPolicy>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_segments: 10,
            max_call_s: 300,
            max_validity_s: 7 * 24 * 3600,
            max_schedule_ahead_s: 90 * 24 * 3600,
            egress: Arc::default(),
        }
    }
}

/// A send request that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct ValidSms {
    /// Destination: a number, or an address for email.
    pub(crate) to: crate::submit::Recipient,
    /// ISO 3166 region of the destination.
    pub(crate) country: Option<String>,
    /// Sender.
    pub(crate) from: String,
    /// Text.
    pub(crate) body: String,
    /// Encoding asked for.
    pub(crate) preference: EncodingPreference,
    /// Encoding that will be used.
    pub(crate) encoding: Encoding,
    /// Segments needed.
    pub(crate) segments: u16,
    /// Priority.
    pub(crate) priority: Priority,
    /// Send at.
    pub(crate) scheduled_at: Option<UnixMs>,
    /// Give up at.
    pub(crate) expires_at: Option<UnixMs>,
    /// Webhook.
    pub(crate) callback_url: Option<String>,
    /// Labels.
    pub(crate) tags: Vec<String>,
    /// JSON text.
    pub(crate) metadata: Option<String>,
    /// What a voice call plays and captures; `None` for SMS.
    pub(crate) voice: Option<crate::voice::VoiceSpec>,
    /// An email's subject, HTML part and reply-to; `None` for SMS and voice.
    pub(crate) email: Option<crate::domain::EmailSpec>,
    /// A chat or webhook message's channel and template; `None` for the other channels.
    pub(crate) chat: Option<crate::domain::ChatSpec>,
    /// A binary SMS's user data header (UDHL included): its ports and other IEs.
    pub(crate) udh: Option<Vec<u8>>,
    /// A binary SMS's data_coding when not 4.
    pub(crate) data_coding: Option<u8>,
}

impl ValidSms {
    /// How an answer shows it: channel, encoding (the channel's name but for SMS), segments.
    pub(crate) fn shown(&self) -> (&'static str, &'static str, u16) {
        match self.channel() {
            Channel::Sms => (
                "sms",
                crate::domain::encoding_name(Some(self.encoding)),
                self.segments,
            ),
            other => (other.as_str(), other.as_str(), 1),
        }
    }

    /// The channel it goes over.
    pub(crate) fn channel(&self) -> Channel {
        match (&self.voice, &self.email, &self.chat) {
            (Some(_), _, _) => Channel::Voice,
            (None, Some(_), _) => Channel::Email,
            (None, None, Some(chat)) => chat.channel.channel(),
            (None, None, None) => Channel::Sms,
        }
    }

    /// The message for the accept pipeline, sent by `tenant`.
    pub(crate) fn into_draft(self, tenant: std::sync::Arc<str>) -> crate::submit::Draft {
        use crate::submit::{Content, Draft, Origin};
        // Calls are placed at once: `scheduled_at` applies to SMS.
        let scheduled_at = self.scheduled_at.filter(|_| self.voice.is_none());
        let content = match (self.voice, self.email, self.chat) {
            (Some(spec), _, _) => Content::Voice(spec),
            (None, Some(spec), _) => Content::Email(spec),
            (None, None, Some(spec)) => Content::Chat(spec),
            (None, None, None) => Content::Sms {
                preference: self.preference,
                encoding: self.encoding,
                segments: self.segments,
            },
        };
        Draft {
            tenant,
            to: self.to,
            country: self.country,
            from: self.from,
            body: self.body,
            content,
            priority: self.priority,
            scheduled_at,
            expires_at: self.expires_at,
            callback_url: self.callback_url,
            tags: self.tags,
            metadata: self.metadata,
            batch_id: None,
            origin: Origin::Tenant,
            smpp: None,
            udh: self.udh,
            data_coding: self.data_coding,
            flow: None,
            withdrawable: false,
        }
    }
}

/// Checks everything; the first problem found is returned.
pub(crate) fn validate(req: SendRequest, limits: &Limits) -> Result<ValidSms, Problem> {
    no_nul(&req)?;
    binary_options_need_binary(&req)?;
    if req.mode.as_deref().is_some_and(|m| m != "single") {
        return Err(Problem::invalid(
            "mode",
            "invalid_mode",
            "a step of a flow is sent on one channel: mode is \"single\" there",
        ));
    }
    let chat_channel = req
        .channel
        .as_deref()
        .and_then(|c| c.parse::<Channel>().ok())
        .and_then(crate::domain::ChatChannel::of);
    if chat_channel == Some(crate::domain::ChatChannel::Webhook) {
        return webhook(req, limits);
    }
    if let Some(channel) = chat_channel {
        return chat(req, channel, limits);
    }
    if req.channel.as_deref() == Some("email") {
        return email(req, limits);
    }
    if req.tag.is_some() {
        return Err(Problem::invalid(
            "tag",
            "tag_without_messenger",
            "tag needs \"channel\": \"messenger\"",
        ));
    }
    if req.template.is_some() {
        return Err(Problem::invalid(
            "template",
            "template_without_whatsapp",
            "template needs \"channel\": \"whatsapp\"",
        ));
    }
    if let Some(field) = [
        ("subject", req.subject.is_some()),
        ("html", req.html.is_some()),
        ("reply_to", req.reply_to.is_some()),
    ]
    .iter()
    .find_map(|(f, given)| given.then_some(*f))
    {
        return Err(Problem::invalid(
            field,
            "email_option_without_email_channel",
            format!("{field} needs \"channel\": \"email\""),
        ));
    }
    let Some(from) = req.from.as_deref() else {
        return Err(missing_field("from"));
    };
    let channel = match req.channel.as_deref().unwrap_or("sms") {
        "voice" => Channel::Voice,
        _ => Channel::Sms,
    };
    let voice = match req.channel.as_deref().unwrap_or("sms") {
        "sms" if req.voice.is_some() => {
            return Err(Problem::invalid(
                "voice",
                "voice_options_without_voice_channel",
                "voice options need \"channel\": \"voice\"",
            ))
        }
        "sms" => None,
        "voice" => Some(voice::parse(&req, limits)?),
        channel => {
            return Err(Problem::invalid(
                "channel",
                "unsupported_channel",
                format!(
                    "channel {channel:?} is not available; use \"sms\", \"voice\", \"email\", \"rcs\", \"whatsapp\", \"telegram\", \"messenger\" or \"webhook\""
                ),
            ))
        }
    };
    if let Some(crate::voice::VoiceSpec {
        audio: crate::voice::AudioSource::Url { url },
        ..
    }) = &voice
    {
        if let Ok(parsed) = url::Url::parse(url) {
            check_destination(&limits.egress, "voice.audio_url", &parsed)?;
        }
    }
    let body = match (req.body, &voice) {
        (Some(b), _) => b,
        (None, Some(_)) => String::new(),
        // The same answer serde gave when `body` was a required field.
        (None, None) => return Err(missing_field("body")),
    };
    let raw_to = match &req.to {
        Recipient::Phone(p) | Recipient::Object { phone: p } => p.trim(),
        Recipient::Email { .. }
        | Recipient::Telegram { .. }
        | Recipient::Messenger { .. }
        | Recipient::Webhook { .. }
        | Recipient::Contact { .. } => {
            return Err(Problem::invalid(
                "to",
                "invalid_number",
                format!("the {channel} channel needs a phone number in \"to\""),
            ))
        }
    };
    let (to, country) = crate::number::parse_e164(raw_to)
        .map_err(|d| Problem::invalid("to", "invalid_number", d))?;
    let common = common(
        CommonFields {
            from,
            encoding: req.encoding.as_deref(),
            priority: req.priority.as_deref(),
            validity_period: req.validity_period.as_ref(),
            scheduled_at: req.scheduled_at.as_deref(),
            callback_url: req.callback_url,
            tags: req.tags,
            metadata: req.metadata,
        },
        channel,
        limits,
    )?;
    // Voice refuses any `encoding` (see `voice::parse`): a binary message is an SMS.
    let binary = common.preference == EncodingPreference::Force(Encoding::Binary);
    // A call's text is spoken, not encoded into segments (its length is checked with the
    // voice options).
    let (body, encoding, segments, udh, data_coding) = if binary {
        let sms = binary_body(
            &body,
            BinaryFields {
                udh: req.udh.as_deref(),
                destination_port: req.destination_port,
                source_port: req.source_port,
                data_coding: req.data_coding,
            },
            limits,
        )?;
        (
            sms.body,
            Encoding::Binary,
            sms.segments,
            sms.udh,
            sms.data_coding,
        )
    } else if voice.is_some() {
        let info = segments("", common.preference, limits)?;
        (body, info.encoding, info.segments, None, None)
    } else {
        non_empty(&body)?;
        let udh = text_ports(req.destination_port, req.source_port)?;
        let info = segments_behind(&body, common.preference, udh.as_deref(), limits)?;
        (body, info.encoding, info.segments, udh, None)
    };
    Ok(ValidSms {
        to: to.into(),
        country,
        from: common.from,
        body,
        preference: common.preference,
        encoding,
        segments: segments as u16,
        priority: common.priority,
        scheduled_at: common.scheduled_at,
        expires_at: common.expires_at,
        callback_url: common.callback_url,
        tags: common.tags,
        metadata: common.metadata,
        voice,
        email: None,
        chat: None,
        udh,
        data_coding,
    })
}

/// 422 when a binary SMS's option (`udh`, `data_coding`) comes without `"encoding":
/// "binary"`, or an SMS's ports come on another channel.
fn binary_options_need_binary(req: &SendRequest) -> Result<(), Problem> {
    sms_options_need_sms(
        req.channel.as_deref(),
        req.destination_port,
        req.source_port,
    )?;
    binary_options_given(
        req.encoding.as_deref(),
        req.udh.is_some(),
        req.data_coding.is_some(),
    )
}

/// 422 `binary_option_without_binary_encoding` when `udh` or `data_coding` is given for a
/// text (a text's data_coding follows its encoding; its header holds only the ports).
pub(crate) fn binary_options_given(
    encoding: Option<&str>,
    udh: bool,
    data_coding: bool,
) -> Result<(), Problem> {
    if encoding == Some("binary") {
        return Ok(());
    }
    match [("udh", udh), ("data_coding", data_coding)]
        .iter()
        .find_map(|(f, given)| given.then_some(*f))
    {
        Some(field) => Err(Problem::invalid(
            field,
            "binary_option_without_binary_encoding",
            format!("{field} needs \"encoding\": \"binary\" (an SMS of 8-bit data)"),
        )),
        None => Ok(()),
    }
}

/// 422 `sms_option_without_sms_channel` when application ports are asked for on a channel
/// other than SMS (they address an application on the phone, in an SMS's user data header).
fn sms_options_need_sms(
    channel: Option<&str>,
    destination_port: Option<i64>,
    source_port: Option<i64>,
) -> Result<(), Problem> {
    let channel = channel.unwrap_or("sms");
    if channel == "sms" {
        return Ok(());
    }
    match [
        ("destination_port", destination_port.is_some()),
        ("source_port", source_port.is_some()),
    ]
    .iter()
    .find_map(|(f, given)| given.then_some(*f))
    {
        Some(field) => Err(Problem::invalid(
            field,
            "sms_option_without_sms_channel",
            format!("{field} addresses an application on the phone: SMS only, not {channel}"),
        )),
        None => Ok(()),
    }
}

/// Application port addressing as asked: the destination port and the originator port (0
/// when not given). 422 `invalid_port` outside 0–65535 or for a source_port alone.
fn ports(
    destination_port: Option<i64>,
    source_port: Option<i64>,
) -> Result<Option<(u16, u16)>, Problem> {
    let port = |field: &'static str, v: i64| {
        u16::try_from(v)
            .map_err(|_| Problem::invalid(field, "invalid_port", format!("{field} is 0 to 65535")))
    };
    match (destination_port, source_port) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Problem::invalid(
            "source_port",
            "invalid_port",
            "source_port needs destination_port",
        )),
        (Some(d), s) => Ok(Some((
            port("destination_port", d)?,
            s.map(|s| port("source_port", s)).transpose()?.unwrap_or(0),
        ))),
    }
}

/// A text's user data header: the 16-bit port IE when ports are asked for, which every
/// segment carries (after the concatenation IE of a long text).
pub(crate) fn text_ports(
    destination_port: Option<i64>,
    source_port: Option<i64>,
) -> Result<Option<Vec<u8>>, Problem> {
    Ok(ports(destination_port, source_port)?
        .and_then(|(dest, source)| switchyard_protocols::text::with_ports(dest, source, None)))
}

/// The options of a binary SMS, as received.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BinaryFields<'a> {
    /// A user data header, hex, UDHL included.
    pub(crate) udh: Option<&'a str>,
    /// Application port addressing: destination port.
    pub(crate) destination_port: Option<i64>,
    /// Application port addressing: originator port.
    pub(crate) source_port: Option<i64>,
    /// The data_coding.
    pub(crate) data_coding: Option<i64>,
}

/// A binary SMS's body (hex octets) and options, checked and counted by
/// [`crate::domain::binary_sms`], the check a binary submit_sm gets too: 422 naming the
/// field at fault.
pub(crate) fn binary_body(
    body: &str,
    f: BinaryFields<'_>,
    limits: &Limits,
) -> Result<crate::domain::BinarySms, Problem> {
    use crate::domain::{binary_sms, BinaryError, DEFAULT_BINARY_DATA_CODING};
    let data_coding = match f.data_coding {
        None => DEFAULT_BINARY_DATA_CODING,
        Some(dc) => u8::try_from(dc)
            .ok()
            .filter(|dc| crate::domain::is_binary_data_coding(*dc))
            .ok_or_else(|| {
                Problem::invalid(
                    "data_coding",
                    "invalid_data_coding",
                    format!(
                        "data_coding {dc} is not an 8-bit binary one: 4 (the default), 2, \
                         0x14–0x17, 0xF4–0xF7 or 0xFC–0xFF"
                    ),
                )
            })?,
    };
    let ports = ports(f.destination_port, f.source_port)?;
    let bad_udh = |d: String| Problem::invalid("udh", "invalid_udh", d);
    let given = match f.udh {
        None => None,
        Some(hex) => {
            let octets = switchyard_protocols::text::binary::decode(hex)
                .map_err(|e| bad_udh(format!("udh is not hex octets: {e}")))?;
            if octets.is_empty() {
                return Err(bad_udh("udh is empty; leave it out for no header".into()));
            }
            let (parsed, rest) = switchyard_protocols::text::parse_udh(&octets)
                .map_err(|e| bad_udh(format!("the user data header is malformed: {e}")))?;
            if !rest.is_empty() {
                return Err(bad_udh(format!(
                    "the length octet says {} octets, {} follow",
                    octets.len() - rest.len() - 1,
                    octets.len() - 1
                )));
            }
            if parsed.ports.is_some() && ports.is_some() {
                return Err(bad_udh(
                    "udh has a port IE already: give the ports there or in \
                     destination_port/source_port, not both"
                        .into(),
                ));
            }
            Some(octets)
        }
    };
    // The port IE first, then the given header's IEs.
    let udh = match (ports, given) {
        (None, given) => given,
        (Some((dest, source)), given) => Some(
            switchyard_protocols::text::with_ports(dest, source, given.as_deref()).ok_or_else(
                || bad_udh("the user data header and the port IE exceed 255 octets".into()),
            )?,
        ),
    };
    binary_sms(body, udh, data_coding, limits.max_segments).map_err(|e| match e {
        BinaryError::NotHex(..) => Problem::invalid(
            "body",
            "invalid_binary_body",
            format!("{e}; a binary body is hex, as GET /v1/messages/{{id}} shows it"),
        ),
        BinaryError::DataCoding(_) => {
            Problem::invalid("data_coding", "invalid_data_coding", e.to_string())
        }
        BinaryError::Udh(_) | BinaryError::HeaderTooLong(_) | BinaryError::PartTooLong(_) => {
            bad_udh(e.to_string())
        }
        BinaryError::TooManySegments { .. } => {
            Problem::invalid("body", "body_too_long", e.to_string())
        }
        BinaryError::Empty => Problem::invalid("body", "empty_body", "body must not be empty"),
    })
}

/// Refuses U+0000 in the texts a message stores: no channel can carry it, and PostgreSQL's
/// text columns cannot hold it.
fn no_nul(req: &SendRequest) -> Result<(), Problem> {
    let texts = [
        ("body", req.body.as_deref()),
        ("from", req.from.as_deref()),
        ("subject", req.subject.as_deref()),
        ("html", req.html.as_deref()),
        ("reply_to", req.reply_to.as_deref()),
        ("tag", req.tag.as_deref()),
    ];
    let tags = req.tags.iter().map(|t| ("tags", Some(t.as_str())));
    match texts
        .into_iter()
        .chain(tags)
        .find(|(_, t)| t.is_some_and(|t| t.contains('\0')))
    {
        Some((field, _)) => Err(Problem::invalid(
            field,
            "invalid_text",
            "text must not contain the NUL character (U+0000)",
        )),
        None => Ok(()),
    }
}

/// The answer serde gives for a required field that is missing.
fn missing_field(field: &str) -> Problem {
    Problem::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
        format!(
            "Failed to deserialize the JSON body into the target type: missing field `{field}`"
        ),
    )
}

/// Longest subject line (RFC 5322's line limit).
const MAX_SUBJECT: usize = 998;
/// Largest plain-text or HTML part of an email, in bytes.
const MAX_EMAIL_PART: usize = 256 * 1024;

/// Checks an email (`"channel": "email"`): addresses, subject, parts, and the fields every
/// message shares.
fn email(req: SendRequest, limits: &Limits) -> Result<ValidSms, Problem> {
    for (field, given) in [
        ("voice", req.voice.is_some()),
        ("encoding", req.encoding.is_some()),
    ] {
        if given {
            return Err(Problem::invalid(
                field,
                "option_not_for_email",
                format!("{field} does not apply to email"),
            ));
        }
    }
    let to = match &req.to {
        Recipient::Phone(a) | Recipient::Email { email: a } => email_address("to", a)?,
        Recipient::Object { .. }
        | Recipient::Telegram { .. }
        | Recipient::Messenger { .. }
        | Recipient::Webhook { .. }
        | Recipient::Contact { .. } => {
            return Err(Problem::invalid(
                "to",
                "invalid_email",
                "the email channel needs an email address in \"to\"",
            ))
        }
    };
    let from = match req.from.as_deref().map(str::trim) {
        None | Some("") => String::new(),
        Some(a) => email_address("from", a)?,
    };
    let reply_to = req
        .reply_to
        .as_deref()
        .map(|a| email_address("reply_to", a))
        .transpose()?;
    let subject = req.subject.unwrap_or_default();
    if subject.trim().is_empty() {
        return Err(Problem::invalid(
            "subject",
            "invalid_subject",
            "an email needs a subject",
        ));
    }
    if subject.len() > MAX_SUBJECT || subject.chars().any(|c| c == '\r' || c == '\n') {
        return Err(Problem::invalid(
            "subject",
            "invalid_subject",
            format!("one line of at most {MAX_SUBJECT} bytes"),
        ));
    }
    let body = req.body.unwrap_or_default();
    if body.trim().is_empty() && req.html.is_none() {
        return Err(Problem::invalid(
            "body",
            "empty_body",
            "an email needs a body or html",
        ));
    }
    for (field, part) in [("body", Some(&body)), ("html", req.html.as_ref())] {
        if part.is_some_and(|p| p.len() > MAX_EMAIL_PART) {
            return Err(Problem::invalid(
                field,
                "email_too_large",
                format!("at most {} KiB", MAX_EMAIL_PART / 1024),
            ));
        }
    }
    let common = common(
        CommonFields {
            from: &from,
            encoding: None,
            priority: req.priority.as_deref(),
            validity_period: req.validity_period.as_ref(),
            scheduled_at: req.scheduled_at.as_deref(),
            callback_url: req.callback_url,
            tags: req.tags,
            metadata: req.metadata,
        },
        Channel::Email,
        limits,
    )?;
    Ok(ValidSms {
        to: crate::submit::Recipient::Email(to),
        country: None,
        from: common.from,
        body,
        preference: common.preference,
        encoding: Encoding::Gsm7,
        segments: 1,
        priority: common.priority,
        scheduled_at: None,
        expires_at: common.expires_at,
        callback_url: common.callback_url,
        tags: common.tags,
        metadata: common.metadata,
        voice: None,
        email: Some(crate::domain::EmailSpec {
            subject,
            html: req.html,
            reply_to,
        }),
        chat: None,
        udh: None,
        data_coding: None,
    })
}

/// Longest RCS text (the RBM API's limit).
const MAX_RCS_TEXT: usize = 3072;
/// Longest WhatsApp and Telegram text (the APIs' limit).
const MAX_WHATSAPP_TEXT: usize = 4096;
/// Longest Messenger text (the Send API's limit).
const MAX_MESSENGER_TEXT: usize = 2000;

/// The recipient of a chat message: a phone number for RCS and WhatsApp; a chat id (an
/// integer, or `@` and a channel's username) for Telegram; a page-scoped id (digits) for
/// Messenger. A plain string serves every channel; an object names its channel's key.
pub(crate) fn chat_recipient(
    to: &Recipient,
    channel: crate::domain::ChatChannel,
) -> Result<(crate::submit::Recipient, Option<String>), Problem> {
    use crate::domain::ChatChannel;
    let name = channel.channel().as_str();
    let wrong = || {
        Problem::invalid(
            "to",
            "invalid_recipient",
            format!(
                "the {name} channel needs {} in \"to\"",
                match channel {
                    ChatChannel::Rcs | ChatChannel::Whatsapp => "a phone number",
                    ChatChannel::Telegram => "a chat id (or {\"telegram\": …})",
                    ChatChannel::Messenger => "a page-scoped id (or {\"messenger\": …})",
                    ChatChannel::Webhook => "an http(s) URL (or {\"webhook\": …})",
                }
            ),
        )
    };
    let raw = match (to, channel) {
        (Recipient::Phone(s), _) => s.trim(),
        (Recipient::Object { phone }, ChatChannel::Rcs | ChatChannel::Whatsapp) => phone.trim(),
        (Recipient::Telegram { telegram }, ChatChannel::Telegram) => telegram.trim(),
        (Recipient::Messenger { messenger }, ChatChannel::Messenger) => messenger.trim(),
        _ => return Err(wrong()),
    };
    match channel {
        ChatChannel::Rcs | ChatChannel::Whatsapp => {
            let (n, country) = crate::number::parse_e164(raw)
                .map_err(|d| Problem::invalid("to", "invalid_number", d))?;
            Ok((n.into(), country))
        }
        ChatChannel::Telegram => {
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            let id = !digits.is_empty()
                && digits.len() <= 20
                && digits.bytes().all(|b| b.is_ascii_digit());
            let username = raw.strip_prefix('@').is_some_and(|u| {
                (5..=32).contains(&u.len())
                    && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
            if id || username {
                Ok((crate::submit::Recipient::Account(raw.to_owned()), None))
            } else {
                Err(wrong())
            }
        }
        ChatChannel::Messenger => {
            if !raw.is_empty() && raw.len() <= 32 && raw.bytes().all(|b| b.is_ascii_digit()) {
                Ok((crate::submit::Recipient::Account(raw.to_owned()), None))
            } else {
                Err(wrong())
            }
        }
        // Checked by `webhook_url`.
        ChatChannel::Webhook => Err(wrong()),
    }
}

/// Longest webhook URL.
pub(crate) const MAX_WEBHOOK_URL: usize = 2048;
/// Longest webhook text, in bytes.
const MAX_WEBHOOK_TEXT: usize = 64 * 1024;
/// Longest `from` of a webhook message, in characters.
const MAX_WEBHOOK_FROM: usize = 128;

/// The endpoint of a webhook message: an `http://` or `https://` URL with a host, without
/// credentials, at most [`MAX_WEBHOOK_URL`] bytes once normalised, whose host is not an
/// address literal `[egress]` refuses. A plain string or `{"webhook": …}`.
fn webhook_url(to: &Recipient, limits: &Limits) -> Result<String, Problem> {
    let raw = match to {
        Recipient::Phone(s) | Recipient::Webhook { webhook: s } => s.trim(),
        _ => {
            return Err(Problem::invalid(
                "to",
                "invalid_recipient",
                "the webhook channel needs an http(s) URL in \"to\" (or {\"webhook\": …})",
            ))
        }
    };
    let bad = |d: String| Problem::invalid("to", "invalid_url", d);
    if raw.len() > MAX_WEBHOOK_URL {
        return Err(bad(format!("at most {MAX_WEBHOOK_URL} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("must be an http or https URL with a host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials (user:password@); the request is signed instead".into(),
        ));
    }
    let normalised = url.to_string();
    if normalised.len() > MAX_WEBHOOK_URL {
        return Err(bad(format!("at most {MAX_WEBHOOK_URL} bytes")));
    }
    // What the HTTP client will be given: refused now rather than failing at every attempt.
    if normalised.parse::<hyper::Uri>().is_err() {
        return Err(bad(
            "has characters an HTTP request line cannot carry".into()
        ));
    }
    check_destination(&limits.egress, "to", &url)?;
    Ok(normalised)
}

/// Checks a webhook message (`"channel": "webhook"`): the endpoint's URL, a text, an optional
/// free-form sender name, and the fields every message shares.
fn webhook(req: SendRequest, limits: &Limits) -> Result<ValidSms, Problem> {
    use crate::domain::{ChatChannel, ChatSpec};
    for (field, given) in [
        ("voice", req.voice.is_some()),
        ("encoding", req.encoding.is_some()),
        ("subject", req.subject.is_some()),
        ("html", req.html.is_some()),
        ("reply_to", req.reply_to.is_some()),
        ("scheduled_at", req.scheduled_at.is_some()),
        ("template", req.template.is_some()),
        ("tag", req.tag.is_some()),
    ] {
        if given {
            return Err(Problem::invalid(
                field,
                "option_not_for_channel",
                format!("{field} does not apply to webhook"),
            ));
        }
    }
    let to = webhook_url(&req.to, limits)?;
    let from = req.from.as_deref().map(str::trim).unwrap_or_default();
    if from.chars().count() > MAX_WEBHOOK_FROM || from.chars().any(char::is_control) {
        return Err(Problem::invalid(
            "from",
            "invalid_sender",
            format!("a webhook's from is at most {MAX_WEBHOOK_FROM} characters of one line"),
        ));
    }
    let body = req.body.unwrap_or_default();
    non_empty(&body)?;
    if body.len() > MAX_WEBHOOK_TEXT {
        return Err(Problem::invalid(
            "body",
            "body_too_long",
            format!("webhook texts are at most {} KiB", MAX_WEBHOOK_TEXT / 1024),
        ));
    }
    let common = common(
        CommonFields {
            from,
            encoding: None,
            priority: req.priority.as_deref(),
            validity_period: req.validity_period.as_ref(),
            scheduled_at: None,
            callback_url: req.callback_url,
            tags: req.tags,
            metadata: req.metadata,
        },
        Channel::Webhook,
        limits,
    )?;
    Ok(ValidSms {
        to: crate::submit::Recipient::Url(to),
        country: None,
        from: common.from,
        body,
        preference: common.preference,
        encoding: Encoding::Gsm7,
        segments: 1,
        priority: common.priority,
        scheduled_at: None,
        expires_at: common.expires_at,
        callback_url: common.callback_url,
        tags: common.tags,
        metadata: common.metadata,
        voice: None,
        email: None,
        chat: Some(ChatSpec {
            channel: ChatChannel::Webhook,
            template: None,
            tag: None,
        }),
        udh: None,
        data_coding: None,
    })
}

/// Checks a chat message (`"channel": "rcs"` or `"whatsapp"`): a phone number, a text (or a
/// WhatsApp template), and the fields every message shares. The provider account is the
/// sender: `from` is not used.
fn chat(
    req: SendRequest,
    channel: crate::domain::ChatChannel,
    limits: &Limits,
) -> Result<ValidSms, Problem> {
    use crate::domain::{ChatChannel, ChatSpec};
    let name = channel.channel().as_str();
    for (field, given) in [
        ("voice", req.voice.is_some()),
        ("encoding", req.encoding.is_some()),
        ("subject", req.subject.is_some()),
        ("html", req.html.is_some()),
        ("reply_to", req.reply_to.is_some()),
        ("scheduled_at", req.scheduled_at.is_some()),
        (
            "template",
            req.template.is_some() && channel != ChatChannel::Whatsapp,
        ),
    ] {
        if given {
            return Err(Problem::invalid(
                field,
                "option_not_for_channel",
                format!("{field} does not apply to {name}"),
            ));
        }
    }
    let (to, country) = chat_recipient(&req.to, channel)?;
    if req.tag.is_some() && channel != ChatChannel::Messenger {
        return Err(Problem::invalid(
            "tag",
            "option_not_for_channel",
            format!("tag does not apply to {name}"),
        ));
    }
    let tag = match req.tag.as_deref() {
        None => None,
        Some(
            t @ ("CONFIRMED_EVENT_UPDATE"
            | "POST_PURCHASE_UPDATE"
            | "ACCOUNT_UPDATE"
            | "HUMAN_AGENT"),
        ) => Some(t.to_owned()),
        Some(other) => {
            return Err(Problem::invalid(
                "tag",
                "invalid_tag",
                format!(
                    "{other:?} is not one of CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE, \
                     ACCOUNT_UPDATE, HUMAN_AGENT"
                ),
            ))
        }
    };
    let template = req.template.as_ref().map(template).transpose()?;
    let body = req.body.unwrap_or_default();
    if template.is_some() && !body.is_empty() {
        return Err(Problem::invalid(
            "body",
            "body_with_template",
            "a template message carries its text in the template; leave body out",
        ));
    }
    if template.is_none() {
        non_empty(&body)?;
    }
    let max = match channel {
        ChatChannel::Rcs => MAX_RCS_TEXT,
        ChatChannel::Whatsapp | ChatChannel::Telegram => MAX_WHATSAPP_TEXT,
        ChatChannel::Messenger => MAX_MESSENGER_TEXT,
        ChatChannel::Webhook => MAX_WEBHOOK_TEXT,
    };
    if body.chars().count() > max {
        return Err(Problem::invalid(
            "body",
            "body_too_long",
            format!("{name} texts are at most {max} characters"),
        ));
    }
    let common = common(
        CommonFields {
            from: "",
            encoding: None,
            priority: req.priority.as_deref(),
            validity_period: req.validity_period.as_ref(),
            scheduled_at: None,
            callback_url: req.callback_url,
            tags: req.tags,
            metadata: req.metadata,
        },
        channel.channel(),
        limits,
    )?;
    Ok(ValidSms {
        to,
        country,
        from: String::new(),
        body,
        preference: common.preference,
        encoding: Encoding::Gsm7,
        segments: 1,
        priority: common.priority,
        scheduled_at: None,
        expires_at: common.expires_at,
        callback_url: common.callback_url,
        tags: common.tags,
        metadata: common.metadata,
        voice: None,
        email: None,
        chat: Some(ChatSpec {
            channel,
            template,
            tag,
        }),
        udh: None,
        data_coding: None,
    })
}

/// A WhatsApp template: `{"name", "language", "parameters": [strings]}`.
fn template(v: &serde_json::Value) -> Result<crate::domain::ChatTemplate, Problem> {
    let bad = |d: &str| Problem::invalid("template", "invalid_template", d.to_owned());
    let o = v
        .as_object()
        .ok_or_else(|| bad("an object with name and language"))?;
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "name" | "language" | "parameters"))
    {
        return Err(bad(&format!("unknown field {k:?}")));
    }
    let word = |k: &str| {
        o.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 512
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
            .map(str::to_owned)
            .ok_or_else(|| {
                bad(&format!(
                    "{k} must be a template {k} (letters, digits, _ and -)"
                ))
            })
    };
    let parameters = match o.get("parameters") {
        None => Vec::new(),
        Some(serde_json::Value::Array(a)) if a.len() <= 100 => a
            .iter()
            .map(|p| {
                p.as_str()
                    .filter(|s| !s.is_empty() && s.chars().count() <= 1024)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        bad("parameters are non-empty strings of at most 1024 characters")
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("parameters is an array of at most 100 strings")),
    };
    Ok(crate::domain::ChatTemplate {
        name: word("name")?,
        language: word("language")?,
        parameters,
    })
}

/// A checked email address, lower-cased.
pub(crate) fn email_address(field: &'static str, a: &str) -> Result<String, Problem> {
    let a = a.trim();
    if switchyard_ops::config::is_email_address(a) {
        Ok(a.to_lowercase())
    } else {
        Err(Problem::invalid(
            field,
            "invalid_email",
            format!("{a:?} is not an email address"),
        ))
    }
}

/// The fields of a send that do not depend on the recipient or the text, as received.
#[derive(Debug)]
pub(crate) struct CommonFields<'a> {
    /// Sender.
    pub(crate) from: &'a str,
    /// `auto`, `gsm7`, `ucs2` or `binary`.
    pub(crate) encoding: Option<&'a str>,
    /// `critical`, `high`, `normal` or `low`.
    pub(crate) priority: Option<&'a str>,
    /// Whole seconds or an ISO 8601 duration.
    pub(crate) validity_period: Option<&'a serde_json::Value>,
    /// RFC 3339 time.
    pub(crate) scheduled_at: Option<&'a str>,
    /// Status webhook.
    pub(crate) callback_url: Option<String>,
    /// Labels.
    pub(crate) tags: Vec<String>,
    /// Free-form JSON object.
    pub(crate) metadata: Option<serde_json::Value>,
}

/// The fields every message of a request shares, checked (once per batch).
#[derive(Debug, Clone)]
pub(crate) struct Common {
    /// Sender.
    pub(crate) from: String,
    /// Encoding asked for.
    pub(crate) preference: EncodingPreference,
    /// Priority.
    pub(crate) priority: Priority,
    /// Send at.
    pub(crate) scheduled_at: Option<UnixMs>,
    /// Give up at.
    pub(crate) expires_at: Option<UnixMs>,
    /// Webhook.
    pub(crate) callback_url: Option<String>,
    /// Labels.
    pub(crate) tags: Vec<String>,
    /// JSON text.
    pub(crate) metadata: Option<String>,
}

/// Checks the fields that do not depend on the recipient or the text on `channel`: a
/// notification call's caller id must be E.164, an email's sender is an address checked by
/// the caller (or empty), and neither can be scheduled.
pub(crate) fn common(
    f: CommonFields<'_>,
    channel: Channel,
    limits: &Limits,
) -> Result<Common, Problem> {
    let voice = channel == Channel::Voice;
    // SMS and voice senders are numbers or ids the carrier shows; email's is checked by the
    // caller, and chat providers send as their account.
    let from = if !matches!(channel, Channel::Sms | Channel::Voice) {
        f.from.to_owned()
    } else {
        crate::number::validate_sender(f.from.trim())
            .map_err(|d| Problem::invalid("from", "invalid_sender", d))?
    };
    if voice && !from.starts_with('+') {
        return Err(Problem::invalid(
            "from",
            "invalid_sender",
            "the caller id of a voice call is an E.164 number with +",
        ));
    }
    let preference = match f.encoding.unwrap_or("auto") {
        "auto" => EncodingPreference::Auto,
        "gsm7" => EncodingPreference::Force(Encoding::Gsm7),
        "ucs2" => EncodingPreference::Force(Encoding::Ucs2),
        "binary" => EncodingPreference::Force(Encoding::Binary),
        other => {
            return Err(Problem::invalid(
                "encoding",
                "invalid_encoding",
                format!("encoding {other:?} is not one of auto, gsm7, ucs2, binary"),
            ))
        }
    };
    let priority = match f.priority.unwrap_or("normal") {
        "critical" => Priority::Critical,
        "high" => Priority::High,
        "normal" => Priority::Normal,
        "low" => Priority::Low,
        other => {
            return Err(Problem::invalid(
                "priority",
                "invalid_priority",
                format!("priority {other:?} is not one of critical, high, normal, low"),
            ))
        }
    };
    let now = now_ms();
    let scheduled_at = match f.scheduled_at {
        None => None,
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    Problem::invalid(
                        "scheduled_at",
                        "invalid_time",
                        format!("{s:?} is not an RFC 3339 time: {e}"),
                    )
                })?;
            let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
            if ms > now + (limits.max_schedule_ahead_s as i64) * 1000 {
                return Err(Problem::invalid(
                    "scheduled_at",
                    "schedule_too_far",
                    format!("at most {} days ahead", limits.max_schedule_ahead_s / 86400),
                ));
            }
            (ms > now).then_some(ms)
        }
    };
    if voice && scheduled_at.is_some() {
        return Err(Problem::invalid(
            "scheduled_at",
            "unsupported_for_voice",
            "voice calls cannot be scheduled yet; send them when they are due",
        ));
    }
    if channel == Channel::Email && scheduled_at.is_some() {
        return Err(Problem::invalid(
            "scheduled_at",
            "unsupported_for_email",
            "email cannot be scheduled yet; send it when it is due",
        ));
    }
    let expires_at = match f.validity_period {
        None => None,
        Some(v) => {
            let secs = parse_validity(v)
                .map_err(|d| Problem::invalid("validity_period", "invalid_validity", d))?;
            if secs == 0 || secs > limits.max_validity_s {
                return Err(Problem::invalid(
                    "validity_period",
                    "invalid_validity",
                    format!(
                        "must be between 1 second and {} hours",
                        limits.max_validity_s / 3600
                    ),
                ));
            }
            Some(scheduled_at.unwrap_or(now) + secs as i64 * 1000)
        }
    };
    let callback_url = match f.callback_url {
        None => None,
        Some(u) => {
            let parsed = url::Url::parse(&u)
                .map_err(|e| Problem::invalid("callback_url", "invalid_url", format!("{e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Problem::invalid(
                    "callback_url",
                    "invalid_url",
                    "must be an http or https URL",
                ));
            }
            check_destination(&limits.egress, "callback_url", &parsed)?;
            Some(u)
        }
    };
    if f.tags.len() > 20 || f.tags.iter().any(|t| t.is_empty() || t.len() > 64) {
        return Err(Problem::invalid(
            "tags",
            "invalid_tags",
            "at most 20 tags of 1 to 64 characters",
        ));
    }
    let metadata = match f.metadata {
        None => None,
        Some(v @ serde_json::Value::Object(_)) => {
            let text = v.to_string();
            if text.len() > 4096 {
                return Err(Problem::invalid(
                    "metadata",
                    "metadata_too_large",
                    "metadata is limited to 4096 bytes of JSON",
                ));
            }
            Some(text)
        }
        Some(_) => {
            return Err(Problem::invalid(
                "metadata",
                "invalid_metadata",
                "metadata must be a JSON object",
            ))
        }
    };
    Ok(Common {
        from,
        preference,
        priority,
        scheduled_at,
        expires_at,
        callback_url,
        tags: f.tags,
        metadata,
    })
}

/// The encoding and segments an SMS text needs: 422 (`body`) when it cannot be encoded as
/// asked or needs more than `limits.max_segments` segments.
pub(crate) fn segments(
    body: &str,
    preference: EncodingPreference,
    limits: &Limits,
) -> Result<SegmentInfo, Problem> {
    segments_behind(body, preference, None, limits)
}

/// [`segments`] for a text whose every segment carries the IEs of `udh` (UDHL included: the
/// ports) besides the concatenation IE.
pub(crate) fn segments_behind(
    body: &str,
    preference: EncodingPreference,
    udh: Option<&[u8]>,
    limits: &Limits,
) -> Result<SegmentInfo, Problem> {
    let opts = EncodeOptions {
        encoding: preference,
        concat: Concat::Udh8,
        ..EncodeOptions::default()
    };
    let ies = udh.map_or(0, |h| h.len().saturating_sub(1));
    let info = count_segments_behind(body, ies, &opts).map_err(|e| {
        Problem::invalid(
            "body",
            "unencodable_body",
            format!("the body cannot be sent as asked: {e}"),
        )
    })?;
    if info.segments > limits.max_segments {
        return Err(Problem::invalid(
            "body",
            "body_too_long",
            format!(
                "the body needs {} segments; at most {} are allowed",
                info.segments, limits.max_segments
            ),
        ));
    }
    Ok(info)
}

/// 422 `empty_body` for an empty SMS text.
pub(crate) fn non_empty(body: &str) -> Result<(), Problem> {
    if body.is_empty() {
        return Err(Problem::invalid(
            "body",
            "empty_body",
            "body must not be empty",
        ));
    }
    Ok(())
}

/// 422 `destination_not_allowed` when `url`'s host is an address literal the egress policy
/// refuses. The answer is the same whatever the address: which range it is in goes to the
/// log only.
fn check_destination(
    egress: &EgressPolicy,
    field: &'static str,
    url: &url::Url,
) -> Result<(), Problem> {
    let refusal = match url.host() {
        Some(url::Host::Ipv4(ip)) => egress.check_ip(ip.into()).err(),
        Some(url::Host::Ipv6(ip)) => egress.check_ip(ip.into()).err(),
        Some(url::Host::Domain(_)) | None => None,
    };
    match refusal {
        None => Ok(()),
        Some(r) => {
            tracing::info!(field, "URL refused at acceptance: {r}");
            Err(Problem::invalid(
                field,
                "destination_not_allowed",
                "this URL's address is not one the gateway may connect to",
            ))
        }
    }
}

/// 422 `signing_secret_required` when `tenant` has no webhook signing secret: webhooks are
/// only sent signed, so a `callback_url` could never be served.
pub(crate) fn check_callback_signing(
    directory: &crate::domain::SharedDirectory,
    tenant: &str,
    callback_url: Option<&str>,
) -> Result<(), Problem> {
    if callback_url.is_none() {
        return Ok(());
    }
    let signed = directory
        .load()
        .tenants
        .get(tenant)
        .is_some_and(|e| !e.webhook_secrets.is_empty());
    if signed {
        Ok(())
    } else {
        Err(Problem::invalid(
            "callback_url",
            "signing_secret_required",
            "webhooks are only sent signed, and this account has no webhook signing secret \
             (webhook_secrets); ask the operator to configure one",
        ))
    }
}

/// 422 `signing_secret_required` (field `to`) for a webhook message of a tenant without a
/// webhook signing secret: the channel posts only signed requests.
pub(crate) fn check_webhook_signing(
    directory: &crate::domain::SharedDirectory,
    tenant: &str,
    valid: &ValidSms,
) -> Result<(), Problem> {
    if valid.channel() != Channel::Webhook {
        return Ok(());
    }
    let signed = directory
        .load()
        .tenants
        .get(tenant)
        .is_some_and(|e| !e.webhook_secrets.is_empty());
    if signed {
        Ok(())
    } else {
        Err(Problem::invalid(
            "to",
            "signing_secret_required",
            "webhook messages are only posted signed, and this account has no webhook signing \
             secret (webhook_secrets); ask the operator to configure one",
        ))
    }
}

/// Whole seconds, or an ISO 8601 duration of days, hours, minutes and seconds (`P1DT2H`, `PT30M`).
fn parse_validity(v: &serde_json::Value) -> Result<u64, String> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    let s = v
        .as_str()
        .ok_or("must be whole seconds or an ISO 8601 duration such as PT1H")?;
    let rest = s
        .strip_prefix('P')
        .ok_or_else(|| format!("{s:?} is not an ISO 8601 duration (PT1H)"))?;
    let (mut total, mut in_time, mut number, mut parts) = (0u64, false, String::new(), 0);
    for c in rest.chars() {
        match c {
            'T' if !in_time && number.is_empty() => in_time = true,
            '0'..='9' => number.push(c),
            unit => {
                let n: u64 = number
                    .parse()
                    .map_err(|_| format!("{s:?} is not an ISO 8601 duration"))?;
                number.clear();
                let factor = match (in_time, unit) {
                    (false, 'D') => 86400,
                    (false, 'W') => 7 * 86400,
                    (true, 'H') => 3600,
                    (true, 'M') => 60,
                    (true, 'S') => 1,
                    _ => return Err(format!("{s:?}: unsupported unit {unit:?} (use D, H, M, S)")),
                };
                total = total.saturating_add(n.saturating_mul(factor));
                parts += 1;
            }
        }
    }
    if !number.is_empty() || parts == 0 {
        return Err(format!("{s:?} is not an ISO 8601 duration"));
    }
    Ok(total)
}

/// The property the `api_send` fuzz target checks (`fuzz/fuzz_targets/api_send.rs`), and the
/// corpus replay test runs on stable: any bytes either are not a request, or fail validation
/// with a client error that has a code, or give a message valid by construction (an E.164
/// recipient, a sender, no more segments than allowed, metadata that is JSON). Never a panic.
#[doc(hidden)]
#[allow(clippy::expect_used)]
pub fn check_request_bytes(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<SendRequest>(data) else {
        return;
    };
    let limits = Limits::default();
    match validate(req, &limits) {
        Err(p) => {
            assert!((400..500).contains(&p.status), "{p:?}");
            assert!(!p.code.is_empty());
            serde_json::to_string(&p).expect("a problem serializes");
        }
        Ok(v) => {
            assert!(usize::from(v.segments) <= limits.max_segments);
            assert!(v.voice.is_some() || v.segments >= 1);
            match &v.to {
                crate::submit::Recipient::Phone(n) => {
                    assert!(n.as_str().bytes().all(|b| b.is_ascii_digit()), "{n}");
                    // Chat providers send as their account: only SMS and voice have a sender.
                    assert_eq!(v.from.is_empty(), v.chat.is_some());
                }
                crate::submit::Recipient::Email(a) => {
                    assert!(switchyard_ops::config::is_email_address(a), "{a}");
                    assert!(v.email.is_some());
                }
                crate::submit::Recipient::Account(id) => {
                    assert!(!id.is_empty() && id.len() <= 33, "{id}");
                    assert!(v.chat.is_some());
                }
                crate::submit::Recipient::Url(u) => {
                    assert!(u.len() <= MAX_WEBHOOK_URL, "{u}");
                    let parsed = url::Url::parse(u).expect("a webhook URL parses");
                    assert!(matches!(parsed.scheme(), "http" | "https"), "{u}");
                    assert!(u.parse::<hyper::Uri>().is_ok(), "{u}");
                    assert_eq!(v.channel(), Channel::Webhook);
                }
            }
            if let Some(m) = &v.metadata {
                serde_json::from_str::<serde_json::Value>(m).expect("metadata is JSON");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: serde_json::Value) -> SendRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn accepts_a_plain_message() {
        let v = validate(
            req(serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "Hello"})),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(v.to.stored(), "+447400123456");
        assert_eq!(v.country.as_deref(), Some("GB"));
        assert_eq!(v.segments, 1);
        assert_eq!(v.encoding, Encoding::Gsm7);
    }

    #[test]
    fn nul_characters_are_refused_where_they_would_be_stored() {
        for (json, field) in [
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "a\0b"}),
                "body",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "x",
                                   "tags": ["ok", "n\0"]}),
                "tags",
            ),
        ] {
            let p = validate(req(json), &Limits::default()).unwrap_err();
            assert_eq!((p.code, p.field), ("invalid_text", Some(field)));
        }
    }

    #[test]
    fn names_the_field_at_fault() {
        let cases = [
            (
                serde_json::json!({"to": "447700900123", "from": "Acme", "body": "x"}),
                "to",
            ),
            (
                serde_json::json!({"to": "+44123", "from": "Acme", "body": "x"}),
                "to",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "ThisIsTooLongForASender", "body": "x"}),
                "from",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": ""}),
                "body",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "x".repeat(2000)}),
                "body",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "😀", "encoding": "gsm7"}),
                "body",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "x", "priority": "urgent"}),
                "priority",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "x", "validity_period": "1 hour"}),
                "validity_period",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "x", "scheduled_at": "tomorrow"}),
                "scheduled_at",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "x", "callback_url": "ftp://x"}),
                "callback_url",
            ),
            (
                serde_json::json!({"to": "+447400123456", "from": "Acme", "body": "x", "metadata": [1]}),
                "metadata",
            ),
        ];
        for (json, field) in cases {
            let p = validate(req(json.clone()), &Limits::default()).unwrap_err();
            assert_eq!(p.field, Some(field), "{json}: {p:?}");
            assert_eq!(p.status, 422);
        }
    }

    #[test]
    fn webhook_messages_take_a_url_and_refuse_what_does_not_apply() {
        let ok = validate(
            req(
                serde_json::json!({"channel": "webhook", "to": "https://Hooks.Example.com/in?a=1",
                                   "body": "order 42", "from": "shop", "tags": ["t"],
                                   "metadata": {"k": 1}}),
            ),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(ok.channel(), Channel::Webhook);
        assert_eq!(ok.to.stored(), "https://hooks.example.com/in?a=1");
        assert_eq!(ok.from, "shop");
        assert_eq!(ok.shown(), ("webhook", "webhook", 1));
        let object = validate(
            req(serde_json::json!({"channel": "webhook", "body": "x",
                                   "to": {"webhook": "http://hooks.example.com/"}})),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(object.to.stored(), "http://hooks.example.com/");
        assert_eq!(object.from, "");
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL));
        for (json, field, code) in [
            (
                serde_json::json!({"to": "ftp://example.com/x"}),
                "to",
                "invalid_url",
            ),
            (serde_json::json!({"to": "not a url"}), "to", "invalid_url"),
            (
                serde_json::json!({"to": "https://u:p@example.com/"}),
                "to",
                "invalid_url",
            ),
            (serde_json::json!({"to": long}), "to", "invalid_url"),
            (
                serde_json::json!({"to": {"phone": "+447400123456"}}),
                "to",
                "invalid_recipient",
            ),
            (
                serde_json::json!({"to": "http://169.254.169.254/latest"}),
                "to",
                "destination_not_allowed",
            ),
            (
                serde_json::json!({"to": "http://[::1]:8080/"}),
                "to",
                "destination_not_allowed",
            ),
            (
                serde_json::json!({"scheduled_at": "2099-01-01T00:00:00Z"}),
                "scheduled_at",
                "option_not_for_channel",
            ),
            (
                serde_json::json!({"subject": "s"}),
                "subject",
                "option_not_for_channel",
            ),
            (
                serde_json::json!({"encoding": "gsm7"}),
                "encoding",
                "option_not_for_channel",
            ),
            (
                serde_json::json!({"tag": "ACCOUNT_UPDATE"}),
                "tag",
                "option_not_for_channel",
            ),
            (serde_json::json!({"body": ""}), "body", "empty_body"),
            (serde_json::json!({"body": "a\0b"}), "body", "invalid_text"),
            (
                serde_json::json!({"from": "two\nlines"}),
                "from",
                "invalid_sender",
            ),
        ] {
            let mut full = serde_json::json!({"channel": "webhook",
                                              "to": "https://hooks.example.com/in", "body": "x"});
            for (k, v) in json.as_object().unwrap() {
                full[k] = v.clone();
            }
            let p = validate(req(full.clone()), &Limits::default()).unwrap_err();
            assert_eq!((p.field, p.code), (Some(field), code), "{full}: {p:?}");
        }
    }

    #[test]
    fn binary_messages_take_hex_octets_ports_a_header_and_a_data_coding() {
        let base = serde_json::json!({"to": "+447400123456", "from": "Acme",
                                      "encoding": "binary", "body": "C0DE"});
        let with = |extra: serde_json::Value| {
            let mut full = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                full[k] = v.clone();
            }
            validate(req(full), &Limits::default())
        };
        let plain = with(serde_json::json!({})).unwrap();
        assert_eq!(
            (plain.body.as_str(), plain.encoding, plain.segments),
            ("c0de", Encoding::Binary, 1)
        );
        assert_eq!((plain.udh.as_deref(), plain.data_coding), (None, None));
        assert_eq!(plain.shown(), ("sms", "binary", 1));
        // Ports first, then the given header's IEs; the data_coding kept when not 4.
        let ported = with(
            serde_json::json!({"destination_port": 2948, "source_port": 9200,
                                             "udh": "027000", "data_coding": 0xF6}),
        )
        .unwrap();
        assert_eq!(
            ported.udh.as_deref(),
            Some(&[8, 5, 4, 0x0B, 0x84, 0x23, 0xF0, 0x70, 0][..])
        );
        assert_eq!(ported.data_coding, Some(0xF6));
        let draft = ported.into_draft(Arc::from("acme"));
        assert_eq!(draft.udh.as_deref().map(<[u8]>::len), Some(9));
        // 131 octets fit one segment behind the 9-octet header; 132 need two (126 + 6).
        let count = |n: usize| {
            with(serde_json::json!({"body": "ab".repeat(n), "udh": "027000",
                                    "destination_port": 1}))
            .unwrap()
            .segments
        };
        assert_eq!(
            (count(131), count(132), count(252), count(253)),
            (1, 2, 2, 3)
        );
        for (extra, field, code) in [
            (
                serde_json::json!({"body": "abc"}),
                "body",
                "invalid_binary_body",
            ),
            (
                serde_json::json!({"body": "0x12"}),
                "body",
                "invalid_binary_body",
            ),
            (serde_json::json!({"body": ""}), "body", "empty_body"),
            (
                serde_json::json!({"body": "00".repeat(1341)}),
                "body",
                "body_too_long",
            ),
            (serde_json::json!({"udh": "0570"}), "udh", "invalid_udh"),
            (serde_json::json!({"udh": "02700000"}), "udh", "invalid_udh"),
            (serde_json::json!({"udh": "0g"}), "udh", "invalid_udh"),
            (serde_json::json!({"udh": ""}), "udh", "invalid_udh"),
            (
                serde_json::json!({"udh": format!("8b7089{}", "00".repeat(137))}),
                "udh",
                "invalid_udh",
            ),
            (
                serde_json::json!({"udh": "0605040b8423f0", "destination_port": 1}),
                "udh",
                "invalid_udh",
            ),
            (
                serde_json::json!({"udh": "050003010201", "body": "00".repeat(135)}),
                "udh",
                "invalid_udh",
            ),
            (
                serde_json::json!({"data_coding": 0}),
                "data_coding",
                "invalid_data_coding",
            ),
            (
                serde_json::json!({"data_coding": 0xF0}),
                "data_coding",
                "invalid_data_coding",
            ),
            (
                serde_json::json!({"data_coding": 300}),
                "data_coding",
                "invalid_data_coding",
            ),
            (
                serde_json::json!({"destination_port": -1}),
                "destination_port",
                "invalid_port",
            ),
            (
                serde_json::json!({"destination_port": 65536}),
                "destination_port",
                "invalid_port",
            ),
            (
                serde_json::json!({"source_port": 1}),
                "source_port",
                "invalid_port",
            ),
            (
                serde_json::json!({"encoding": "auto", "data_coding": 4}),
                "data_coding",
                "binary_option_without_binary_encoding",
            ),
            (
                serde_json::json!({"channel": "email", "to": "a@example.org", "subject": "s",
                                   "encoding": null, "destination_port": 1}),
                "destination_port",
                "sms_option_without_sms_channel",
            ),
            (
                serde_json::json!({"encoding": "gsm7", "udh": "027000"}),
                "udh",
                "binary_option_without_binary_encoding",
            ),
            (
                serde_json::json!({"channel": "voice", "to": "+447400123456", "from": "+447400000001"}),
                "encoding",
                "unsupported_for_voice",
            ),
            (
                serde_json::json!({"channel": "whatsapp"}),
                "encoding",
                "option_not_for_channel",
            ),
        ] {
            let p = with(extra.clone()).unwrap_err();
            assert_eq!((p.field, p.code), (Some(field), code), "{extra}: {p:?}");
            assert_eq!(p.status, 422);
        }
    }

    #[test]
    fn a_text_takes_application_ports_in_every_segment() {
        let text = |body: String, ports: serde_json::Value| {
            let mut full = serde_json::json!({"to": "+447400123456", "from": "Acme",
                                              "body": body});
            for (k, v) in ports.as_object().unwrap() {
                full[k] = v.clone();
            }
            validate(req(full), &Limits::default())
        };
        let ported = text(
            "PING".into(),
            serde_json::json!({"destination_port": 16001}),
        )
        .unwrap();
        assert_eq!(
            ported.udh.as_deref(),
            Some(&[6, 5, 4, 0x3E, 0x81, 0, 0][..])
        );
        assert_eq!((ported.encoding, ported.segments), (Encoding::Gsm7, 1));
        assert_eq!(ported.data_coding, None);
        // 152 GSM septets fit one segment behind the ports, 146 each behind concatenation too;
        // UCS-2: 66 characters, then 63 each.
        let count = |body: String| {
            text(
                body,
                serde_json::json!({"destination_port": 1, "source_port": 2}),
            )
            .unwrap()
            .segments
        };
        assert_eq!(
            (
                count("a".repeat(152)),
                count("a".repeat(153)),
                count("a".repeat(292)),
                count("a".repeat(293))
            ),
            (1, 2, 2, 3)
        );
        assert_eq!((count("é€ж".repeat(22)), count("é€ж".repeat(23))), (1, 2));
        let p = text(
            "PING".into(),
            serde_json::json!({"destination_port": 65536}),
        )
        .unwrap_err();
        assert_eq!(
            (p.field, p.code),
            (Some("destination_port"), "invalid_port")
        );
    }

    #[test]
    fn parses_validity_periods() {
        assert_eq!(parse_validity(&serde_json::json!("PT1H")).unwrap(), 3600);
        assert_eq!(
            parse_validity(&serde_json::json!("P1DT30M")).unwrap(),
            86400 + 1800
        );
        assert_eq!(parse_validity(&serde_json::json!(90)).unwrap(), 90);
        assert!(parse_validity(&serde_json::json!("PT")).is_err());
        assert!(parse_validity(&serde_json::json!("P1X")).is_err());
    }

    #[test]
    fn fuzz_corpus_replays_cleanly() {
        crate::replay_fuzz_corpus("api_send", check_request_bytes);
    }
}
