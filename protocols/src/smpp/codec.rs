//! Encoding, decoding and framing of SMPP PDUs.
