//! The TLV form of a receipt (SMPP 3.4 §5.3.2.12, .28, .31): receipted_message_id,
//! message_state and network_error_code.

use super::{id, DlrError, ErrorCode, Receipt, ReceiptState};
use crate::smpp::tlv::{tag, Tlv, Tlvs};

/// Reads a receipt from TLVs alone: receipted_message_id and message_state are required,
/// network_error_code is optional.
pub fn receipt_from_tlvs(tlvs: &Tlvs) -> Result<Receipt, DlrError> {
    let raw_id = tlvs
        .receipted_message_id()
        .map(id::trim)
        .filter(|v| !v.is_empty())
        .ok_or(DlrError::MissingField("receipted_message_id"))?;
    let state = tlvs
        .message_state()
        .ok_or(DlrError::MissingField("message_state"))?;
    let mut r = Receipt::new(
        String::from_utf8_lossy(raw_id).into_owned(),
        ReceiptState::from_message_state(state),
    );
    r.error_code = tlvs
        .network_error_code()
        .map(|(kind, code)| ErrorCode::from_network(kind, code));
    Ok(r)
}

/// Network type written when the error code did not come from a TLV: 3 (GSM).
pub const DEFAULT_NETWORK_TYPE: u8 = 3;

/// The TLVs carrying this receipt: receipted_message_id, message_state, and network_error_code
/// when the error code is numeric and fits 16 bits (network type from the receipt, else GSM).
pub fn receipt_tlvs(r: &Receipt) -> Tlvs {
    let mut tlvs = Tlvs::new();
    tlvs.push(Tlv::cstring(
        tag::RECEIPTED_MESSAGE_ID,
        r.message_id.as_bytes(),
    ));
    tlvs.push(Tlv::u8(tag::MESSAGE_STATE, r.state.message_state()));
    if let Some(e) = &r.error_code {
        if let Some(code) = e.code.and_then(|c| u16::try_from(c).ok()) {
            let [a, b] = code.to_be_bytes();
            let kind = e.network_type.unwrap_or(DEFAULT_NETWORK_TYPE);
            tlvs.push(Tlv::new(tag::NETWORK_ERROR_CODE, vec![kind, a, b]));
        }
    }
    tlvs
}
