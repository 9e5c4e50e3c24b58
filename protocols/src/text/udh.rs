//! User data header (3GPP TS 23.040 §9.2.3.24): the concatenation and port-addressing
//! information elements, with every other IE kept verbatim.

/// IE: concatenated short message, 8-bit reference.
pub const IE_CONCAT_8: u8 = 0x00;
/// IE: application port addressing, 8-bit ports.
pub const IE_PORTS_8: u8 = 0x04;
/// IE: application port addressing, 16-bit ports.
pub const IE_PORTS_16: u8 = 0x05;
/// IE: concatenated short message, 16-bit reference.
pub const IE_CONCAT_16: u8 = 0x08;

/// Header octets (UDHL included) of a concatenation UDH with an 8-bit reference.
pub const CONCAT_8_LEN: usize = 6;
/// Header octets (UDHL included) of a concatenation UDH with a 16-bit reference.
pub const CONCAT_16_LEN: usize = 7;

/// A parsed user data header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Udh {
    /// The concatenation IE, when present and valid (the last one wins if repeated).
    pub concat: Option<ConcatIe>,
    /// The application port addressing IE, when present.
    pub ports: Option<PortsIe>,
    /// Every other IE, in order, including a concatenation IE with invalid numbers (TS 23.040
    /// says to ignore those), so a relay can pass them on unchanged.
    pub other: Vec<InformationElement>,
    /// Header octets including the UDHL octet: where the payload starts.
    pub len: usize,
}

/// Which part of which concatenated message this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConcatIe {
    /// The reference shared by all parts (an 8-bit one widened).
    pub reference: u16,
    /// Parts in the message, 1..=255.
    pub total: u8,
    /// This part's number, 1..=total.
    pub seq: u8,
    /// True for IE 0x08 (16-bit reference), false for IE 0x00.
    pub wide_reference: bool,
}

/// Application port addressing (WAP push, vCard, SIM toolkit…).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortsIe {
    /// Destination port.
    pub dest: u16,
    /// Originator port.
    pub source: u16,
    /// True for IE 0x05 (16-bit ports), false for IE 0x04.
    pub wide: bool,
}

/// An information element this module does not interpret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InformationElement {
    /// The IE identifier.
    pub id: u8,
    /// Its data, verbatim.
    pub data: Vec<u8>,
}

/// A malformed user data header. The peer's fault; the message can still be delivered as if it
/// had no header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdhError {
    /// UDHI was set but there is no octet at all.
    #[error("UDH indicated but the user data is empty")]
    Empty,
    /// The UDHL says more octets than there are.
    #[error("UDH length {declared} exceeds the {available} octets available")]
    Truncated {
        /// Octets the UDHL declares (after itself).
        declared: usize,
        /// Octets present after the UDHL.
        available: usize,
    },
    /// An IE's length runs past the end of the header.
    #[error("information element {id:#04x} at offset {offset} runs past the header")]
    BadElement {
        /// The IE identifier.
        id: u8,
        /// Offset of the IE within the header.
        offset: usize,
    },
}

/// Splits `data` (user data starting with a UDH) into the parsed header and the payload after it.
pub fn parse_udh(data: &[u8]) -> Result<(Udh, &[u8]), UdhError> {
    let (&udhl, rest) = data.split_first().ok_or(UdhError::Empty)?;
    let udhl = usize::from(udhl);
    if udhl > rest.len() {
        return Err(UdhError::Truncated {
            declared: udhl,
            available: rest.len(),
        });
    }
    let (mut header, payload) = rest.split_at(udhl);
    let mut udh = Udh {
        len: udhl + 1,
        ..Udh::default()
    };
    let mut offset = 1;
    while let [id, len, tail @ ..] = header {
        let len = usize::from(*len);
        if len > tail.len() {
            return Err(UdhError::BadElement { id: *id, offset });
        }
        let (ie, next) = tail.split_at(len);
        match (*id, ie) {
            (IE_CONCAT_8, &[r, total, seq]) if valid_concat(total, seq) => {
                udh.concat = Some(ConcatIe {
                    reference: u16::from(r),
                    total,
                    seq,
                    wide_reference: false,
                })
            }
            (IE_CONCAT_16, &[r1, r2, total, seq]) if valid_concat(total, seq) => {
                udh.concat = Some(ConcatIe {
                    reference: u16::from_be_bytes([r1, r2]),
                    total,
                    seq,
                    wide_reference: true,
                })
            }
            (IE_PORTS_8, &[dest, source]) => {
                udh.ports = Some(PortsIe {
                    dest: u16::from(dest),
                    source: u16::from(source),
                    wide: false,
                })
            }
            (IE_PORTS_16, &[d1, d2, s1, s2]) => {
                udh.ports = Some(PortsIe {
                    dest: u16::from_be_bytes([d1, d2]),
                    source: u16::from_be_bytes([s1, s2]),
                    wide: true,
                })
            }
            (id, data) => udh.other.push(InformationElement {
                id,
                data: data.to_vec(),
            }),
        }
        offset += 2 + len;
        header = next;
    }
    if let [id] = header {
        // One stray octet: an IE identifier without its length.
        return Err(UdhError::BadElement { id: *id, offset });
    }
    Ok((udh, payload))
}

/// The user data header `header` (UDHL included) without its concatenation IEs (0x00, 0x08):
/// the other IEs verbatim and in order behind a new UDHL, or `None` when none is left or the
/// header does not read.
pub fn without_concat(header: &[u8]) -> Option<Vec<u8>> {
    let (&udhl, rest) = header.split_first()?;
    let mut ies = rest.get(..usize::from(udhl))?;
    let mut out = vec![0];
    while let [id, len, tail @ ..] = ies {
        let (data, next) = tail.split_at_checked(usize::from(*len))?;
        if !matches!(*id, IE_CONCAT_8 | IE_CONCAT_16) {
            out.extend_from_slice(&[*id, *len]);
            out.extend_from_slice(data);
        }
        ies = next;
    }
    if !ies.is_empty() || out.len() == 1 {
        return None;
    }
    // At most the 255 octets of the header read.
    let udhl = (out.len() - 1).min(255) as u8;
    if let Some(first) = out.first_mut() {
        *first = udhl;
    }
    Some(out)
}

/// A user data header (UDHL included) with the 16-bit application port IE (0x05) first, then
/// the IEs of `header` (UDHL included) if one is given; `None` when the result would exceed
/// the 255 octets a UDHL can count.
pub fn with_ports(dest: u16, source: u16, header: Option<&[u8]>) -> Option<Vec<u8>> {
    let [d1, d2] = dest.to_be_bytes();
    let [s1, s2] = source.to_be_bytes();
    let others = header.and_then(|h| h.get(1..)).unwrap_or_default();
    let udhl = u8::try_from(6 + others.len()).ok()?;
    let mut out = Vec::with_capacity(7 + others.len());
    out.extend_from_slice(&[udhl, IE_PORTS_16, 4, d1, d2, s1, s2]);
    out.extend_from_slice(others);
    Some(out)
}

fn valid_concat(total: u8, seq: u8) -> bool {
    total != 0 && seq != 0 && seq <= total
}

/// Appends a concatenation UDH (UDHL included): 6 octets with an 8-bit reference (its low byte
/// is used), 7 with a 16-bit one.
pub fn write_concat(out: &mut Vec<u8>, reference: u16, total: u8, seq: u8, wide_reference: bool) {
    if wide_reference {
        let [r1, r2] = reference.to_be_bytes();
        out.extend_from_slice(&[6, IE_CONCAT_16, 4, r1, r2, total, seq]);
    } else {
        out.extend_from_slice(&[5, IE_CONCAT_8, 3, reference as u8, total, seq]);
    }
}

impl Udh {
    /// Appends this header (UDHL included). IEs go in the order concat, ports, others.
    pub fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(0);
        if let Some(c) = self.concat {
            if c.wide_reference {
                let [r1, r2] = c.reference.to_be_bytes();
                out.extend_from_slice(&[IE_CONCAT_16, 4, r1, r2, c.total, c.seq]);
            } else {
                out.extend_from_slice(&[IE_CONCAT_8, 3, c.reference as u8, c.total, c.seq]);
            }
        }
        if let Some(p) = self.ports {
            if p.wide {
                let [d1, d2] = p.dest.to_be_bytes();
                let [s1, s2] = p.source.to_be_bytes();
                out.extend_from_slice(&[IE_PORTS_16, 4, d1, d2, s1, s2]);
            } else {
                out.extend_from_slice(&[IE_PORTS_8, 2, p.dest as u8, p.source as u8]);
            }
        }
        for ie in &self.other {
            out.push(ie.id);
            out.push(ie.data.len().min(255) as u8);
            out.extend(ie.data.iter().take(255));
        }
        let udhl = (out.len() - start - 1).min(255) as u8;
        if let Some(first) = out.get_mut(start) {
            *first = udhl;
        }
    }
}

/// Fill bits needed after a UDH of `udh_len` octets (UDHL included) so GSM-7 septets start on a
/// septet boundary: 1 for the 6-octet concat header, 0 for the 7-octet one.
pub const fn fill_bits(udh_len: usize) -> u8 {
    ((7 - (udh_len * 8) % 7) % 7) as u8
}

/// Septets a UDH of `udh_len` octets occupies in GSM-7 user data, fill bits included.
pub const fn udh_septets(udh_len: usize) -> usize {
    (udh_len * 8).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_go_first_before_the_given_ies() {
        assert_eq!(
            with_ports(2948, 9200, None),
            Some(vec![6, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0])
        );
        let header = with_ports(1, 2, Some(&[5, 0x00, 3, 9, 2, 1])).unwrap();
        assert_eq!(header, [11, 0x05, 4, 0, 1, 0, 2, 0x00, 3, 9, 2, 1]);
        let (udh, rest) = parse_udh(&header).unwrap();
        assert!(rest.is_empty());
        assert_eq!(udh.ports.map(|p| (p.dest, p.source)), Some((1, 2)));
        assert_eq!(udh.concat.map(|c| c.seq), Some(1));
        let mut full = vec![250, 0x70, 248];
        full.resize(251, 0);
        assert_eq!(with_ports(1, 2, Some(&full)), None);
    }

    #[test]
    fn concat_and_ports() {
        let data = [
            11, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0, 0x00, 3, 0x2A, 3, 2, b'h', b'i',
        ];
        let (udh, payload) = parse_udh(&data).unwrap();
        assert_eq!(payload, b"hi");
        assert_eq!(udh.len, 12);
        assert_eq!(
            udh.concat,
            Some(ConcatIe {
                reference: 0x2A,
                total: 3,
                seq: 2,
                wide_reference: false
            })
        );
        assert_eq!(
            udh.ports,
            Some(PortsIe {
                dest: 0x0B84,
                source: 0x23F0,
                wide: true
            })
        );
        let mut out = Vec::new();
        udh.write(&mut out);
        let (again, rest) = parse_udh(&out).unwrap();
        assert_eq!(again, udh);
        assert!(rest.is_empty());
    }

    #[test]
    fn sixteen_bit_and_unknown_kept() {
        let data = [9, 0x08, 4, 0x12, 0x34, 2, 1, 0x24, 1, 0x01, b'x'];
        let (udh, payload) = parse_udh(&data).unwrap();
        assert_eq!(payload, b"x");
        let c = udh.concat.unwrap();
        assert_eq!(
            (c.reference, c.total, c.seq, c.wide_reference),
            (0x1234, 2, 1, true)
        );
        assert_eq!(
            udh.other,
            vec![InformationElement {
                id: 0x24,
                data: vec![1]
            }]
        );
    }

    #[test]
    fn invalid_concat_is_ignored_not_fatal() {
        let (udh, _) = parse_udh(&[5, 0, 3, 1, 2, 3]).unwrap();
        assert_eq!(udh.concat, None);
        assert_eq!(udh.other.len(), 1);
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_udh(&[]), Err(UdhError::Empty));
        assert!(matches!(
            parse_udh(&[7, 0, 3]),
            Err(UdhError::Truncated { .. })
        ));
        assert!(matches!(
            parse_udh(&[3, 0, 3, 1]),
            Err(UdhError::BadElement { id: 0, .. })
        ));
        assert!(matches!(
            parse_udh(&[1, 0]),
            Err(UdhError::BadElement { .. })
        ));
    }

    #[test]
    fn without_concat_keeps_the_other_ies_verbatim() {
        let header = [11, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0, 0x00, 3, 0x2A, 3, 2];
        assert_eq!(
            without_concat(&header),
            Some(vec![6, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0])
        );
        assert_eq!(without_concat(&[5, 0, 3, 1, 2, 1]), None);
        assert_eq!(without_concat(&[6, 8, 4, 0, 1, 2, 1]), None);
        assert_eq!(without_concat(&[2, 0x70, 0]), Some(vec![2, 0x70, 0]));
        assert_eq!(without_concat(&[]), None);
        assert_eq!(
            without_concat(&[3, 0x70, 5, 0]),
            None,
            "runs past the header"
        );
    }

    #[test]
    fn fill() {
        assert_eq!(fill_bits(CONCAT_8_LEN), 1);
        assert_eq!(fill_bits(CONCAT_16_LEN), 0);
        assert_eq!(udh_septets(CONCAT_8_LEN), 7);
        assert_eq!(udh_septets(CONCAT_16_LEN), 8);
    }
}
