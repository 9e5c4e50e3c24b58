//! Finding the NUL that ends a C-octet string, eight octets at a time.
//!
//! SMPP strings are short (5 to 64 octets) and most are empty, so a call into a vectorised
//! `memchr` costs more than it saves; comparing one 64-bit word at a time (the classic "has a
//! zero byte" test) needs no dispatch and about a third of the instructions of a byte loop.

/// 0x01 in every octet.
const LO: u64 = u64::from_ne_bytes([0x01; 8]);
/// 0x80 in every octet.
const HI: u64 = u64::from_ne_bytes([0x80; 8]);

/// The offset of the first NUL in `s`, if it is at most `max`.
///
/// Octets after `max` may be read but never change the answer, so callers pass everything left
/// of the body and the field's maximum length rather than cutting a window first.
#[inline]
pub(super) fn find_nul(s: &[u8], max: usize) -> Option<usize> {
    let mut off = 0;
    let mut rest = s;
    while let Some(word) = rest.first_chunk::<8>() {
        // Little-endian, so the lowest flagged octet is the first in memory. The test can flag
        // an octet above a real zero (a borrow runs upwards), never one below it, so the lowest
        // flag is exact.
        let w = u64::from_le_bytes(*word);
        let zeros = w.wrapping_sub(LO) & !w & HI;
        if zeros != 0 {
            // trailing_zeros() <= 63, so the octet index fits any usize.
            let at = off + (zeros.trailing_zeros() / 8) as usize;
            return (at <= max).then_some(at);
        }
        off += 8;
        if off > max {
            return None;
        }
        rest = rest.get(8..).unwrap_or_default();
    }
    rest.iter()
        .position(|&b| b == 0)
        .map(|i| off + i)
        .filter(|&at| at <= max)
}

/// True when `s` holds a NUL anywhere.
#[inline]
pub(super) fn has_nul(s: &[u8]) -> bool {
    find_nul(s, usize::MAX).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &[u8], max: usize) -> Option<usize> {
        s.iter().position(|&b| b == 0).filter(|&at| at <= max)
    }

    #[test]
    fn matches_a_byte_loop() {
        // Every position of one NUL (and none) in strings up to 40 octets, with fillers that
        // stress the borrow (0x01, 0x80, 0xFF), and every limit around it.
        for filler in [b'a', 0x01, 0x80, 0xFF] {
            for len in 0..40 {
                for nul in (0..len).map(Some).chain([None]) {
                    let mut s = vec![filler; len];
                    if let Some(at) = nul {
                        s[at] = 0;
                        // A second NUL later must not matter.
                        if at + 3 < len {
                            s[at + 3] = 0;
                        }
                    }
                    for max in 0..len + 2 {
                        assert_eq!(find_nul(&s, max), naive(&s, max), "{s:?} max {max}");
                    }
                    assert_eq!(has_nul(&s), nul.is_some());
                }
            }
        }
    }

    #[test]
    fn borrow_above_a_zero_is_ignored() {
        // 0x00 followed by 0x01: the word test flags both; the first one wins.
        let s = [b'x', 0, 1, b'y', b'z', 1, 1, 1, 1];
        assert_eq!(find_nul(&s, 20), Some(1));
        let s = [1, 1, 1, 1, 1, 1, 0, 1, 0];
        assert_eq!(find_nul(&s, 20), Some(6));
    }
}
