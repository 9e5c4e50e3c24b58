//! Text encodings for SMS: GSM 03.38, UCS-2, Latin-1; segmentation and reassembly.
