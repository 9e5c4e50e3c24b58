//! Length limits of SMPP 3.4 §4 and §5.3.2, shared by the decoder and the encoder.

use std::fmt;

use crate::smpp::status::CommandStatus;
use crate::smpp::tlv::tag;

/// A C-octet string field of a mandatory PDU body. Each has a maximum length (SMPP 3.4 §4); the
/// decoder refuses longer strings and the encoder refuses to produce them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StringField {
    /// system_id of bind, bind_resp and outbind (16 with the NUL).
    SystemId,
    /// password of bind and outbind (9 with the NUL).
    Password,
    /// system_type of bind (13 with the NUL).
    SystemType,
    /// address_range of bind (41 with the NUL).
    AddressRange,
    /// service_type (6 with the NUL).
    ServiceType,
    /// source_addr of submit_sm, deliver_sm, submit_multi, query_sm, cancel_sm, replace_sm
    /// (21 with the NUL).
    SourceAddr,
    /// destination_addr of submit_sm, deliver_sm, cancel_sm, a submit_multi SME destination and
    /// an unsuccess_sme (21 with the NUL).
    DestAddr,
    /// source_addr of data_sm and alert_notification (65 with the NUL).
    WideSourceAddr,
    /// destination_addr of data_sm (65 with the NUL).
    WideDestAddr,
    /// esme_addr of alert_notification (65 with the NUL).
    EsmeAddr,
    /// schedule_delivery_time (17 with the NUL: empty or a 16-character SMPP time).
    ScheduleDeliveryTime,
    /// validity_period (17 with the NUL).
    ValidityPeriod,
    /// final_date of query_sm_resp (17 with the NUL).
    FinalDate,
    /// message_id (65 with the NUL).
    MessageId,
    /// dl_name of a submit_multi destination (21 with the NUL).
    DlName,
}

impl StringField {
    /// Maximum length in octets, *without* the NUL terminator.
    pub const fn max_len(self) -> usize {
        match self {
            StringField::SystemId => 15,
            StringField::Password => 8,
            StringField::SystemType => 12,
            StringField::AddressRange => 40,
            StringField::ServiceType => 5,
            StringField::SourceAddr | StringField::DestAddr | StringField::DlName => 20,
            StringField::WideSourceAddr | StringField::WideDestAddr | StringField::EsmeAddr => 64,
            StringField::ScheduleDeliveryTime
            | StringField::ValidityPeriod
            | StringField::FinalDate => 16,
            StringField::MessageId => 64,
        }
    }

    /// The field's name in the specification.
    pub const fn name(self) -> &'static str {
        match self {
            StringField::SystemId => "system_id",
            StringField::Password => "password",
            StringField::SystemType => "system_type",
            StringField::AddressRange => "address_range",
            StringField::ServiceType => "service_type",
            StringField::SourceAddr | StringField::WideSourceAddr => "source_addr",
            StringField::DestAddr | StringField::WideDestAddr => "destination_addr",
            StringField::EsmeAddr => "esme_addr",
            StringField::ScheduleDeliveryTime => "schedule_delivery_time",
            StringField::ValidityPeriod => "validity_period",
            StringField::FinalDate => "final_date",
            StringField::MessageId => "message_id",
            StringField::DlName => "dl_name",
        }
    }

    /// The command_status for a value of this field that is too long (SMPP 3.4 §5.1.3): the
    /// field-specific one where the spec has it, ESME_RINVPARLEN otherwise.
    pub const fn status(self) -> CommandStatus {
        match self {
            StringField::SystemId => CommandStatus::ESME_RINVSYSID,
            StringField::Password => CommandStatus::ESME_RINVPASWD,
            StringField::SystemType => CommandStatus::ESME_RINVSYSTYP,
            StringField::ServiceType => CommandStatus::ESME_RINVSERTYP,
            StringField::SourceAddr | StringField::WideSourceAddr => CommandStatus::ESME_RINVSRCADR,
            StringField::DestAddr | StringField::WideDestAddr | StringField::EsmeAddr => {
                CommandStatus::ESME_RINVDSTADR
            }
            StringField::ScheduleDeliveryTime => CommandStatus::ESME_RINVSCHED,
            StringField::ValidityPeriod => CommandStatus::ESME_RINVEXPIRY,
            StringField::MessageId => CommandStatus::ESME_RINVMSGID,
            StringField::DlName => CommandStatus::ESME_RINVDLNAME,
            StringField::AddressRange | StringField::FinalDate => CommandStatus::ESME_RINVPARLEN,
        }
    }
}

impl fmt::Display for StringField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value length SMPP 3.4 §5.3.2 (and SMPP 5.0 §4.8.4) fixes for a well-known integer TLV, or
/// `None` for variable-length and unknown tags (which are carried verbatim, any length).
///
/// Both the decoder and the encoder enforce these: a message_state of two octets is refused
/// with ESME_RINVPARLEN rather than silently misread. source_telematics_id is left out on
/// purpose: SMPP 3.4 gives it one octet and SMPP 5.0 two.
pub const fn fixed_tlv_len(tag: u16) -> Option<usize> {
    match tag {
        tag::DEST_ADDR_SUBUNIT
        | tag::DEST_NETWORK_TYPE
        | tag::DEST_BEARER_TYPE
        | tag::SOURCE_ADDR_SUBUNIT
        | tag::SOURCE_NETWORK_TYPE
        | tag::SOURCE_BEARER_TYPE
        | tag::PAYLOAD_TYPE
        | tag::MS_MSG_WAIT_FACILITIES
        | tag::PRIVACY_INDICATOR
        | tag::USER_RESPONSE_CODE
        | tag::LANGUAGE_INDICATOR
        | tag::SAR_TOTAL_SEGMENTS
        | tag::SAR_SEGMENT_SEQNUM
        | tag::SC_INTERFACE_VERSION
        | tag::CALLBACK_NUM_PRES_IND
        | tag::NUMBER_OF_MESSAGES
        | tag::DPF_RESULT
        | tag::SET_DPF
        | tag::MS_AVAILABILITY_STATUS
        | tag::DELIVERY_FAILURE_REASON
        | tag::MORE_MESSAGES_TO_SEND
        | tag::MESSAGE_STATE
        | tag::CONGESTION_STATE
        | tag::USSD_SERVICE_OP
        | tag::DISPLAY_TIME
        | tag::ITS_REPLY_TYPE => Some(1),
        tag::DEST_TELEMATICS_ID
        | tag::USER_MESSAGE_REFERENCE
        | tag::SOURCE_PORT
        | tag::DESTINATION_PORT
        | tag::SAR_MSG_REF_NUM
        | tag::SMS_SIGNAL
        | tag::ITS_SESSION_INFO => Some(2),
        tag::NETWORK_ERROR_CODE => Some(3),
        tag::QOS_TIME_TO_LIVE => Some(4),
        _ => None,
    }
}
