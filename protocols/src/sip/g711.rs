//! G.711 μ-law (PCMU) and A-law (PCMA) companding, the classic segment algorithm (ITU-T
//! G.711, as in the public-domain Sun reference `g711.c`), on 16-bit linear PCM.

/// μ-law bias (0x84) added before segment search.
const BIAS: i32 = 0x84;
/// Largest magnitude μ-law can represent before the bias.
const CLIP: i32 = 32635;

/// Encodes one 16-bit sample as μ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let mask: i32 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(CLIP) + BIAS;
    // Segment: position of the highest set bit above bit 7.
    let seg = (0..8).find(|&s| pcm < (0x100 << s)).unwrap_or(8);
    let uval = if seg >= 8 {
        0x7F
    } else {
        (seg << 4) | ((pcm >> (seg + 3)) & 0xF)
    };
    ((uval ^ mask) & 0xFF) as u8
}

/// Decodes one μ-law byte to a 16-bit sample.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = i32::from(!code);
    let t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
}

/// Encodes one 16-bit sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = (0..8).find(|&s| pcm < (0x20 << s)).unwrap_or(8);
    let aval = if seg >= 8 {
        0x7F
    } else if seg < 2 {
        (seg << 4) | ((pcm >> 1) & 0xF)
    } else {
        (seg << 4) | ((pcm >> seg) & 0xF)
    };
    ((aval ^ mask) & 0xFF) as u8
}

/// Decodes one A-law byte to a 16-bit sample.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = i32::from(code ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// Encodes PCM samples as μ-law bytes.
pub fn encode_ulaw(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| linear_to_ulaw(s)).collect()
}

/// Decodes μ-law bytes to PCM samples.
pub fn decode_ulaw(data: &[u8]) -> Vec<i16> {
    data.iter().map(|&b| ulaw_to_linear(b)).collect()
}

/// Encodes PCM samples as A-law bytes.
pub fn encode_alaw(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| linear_to_alaw(s)).collect()
}

/// Decodes A-law bytes to PCM samples.
pub fn decode_alaw(data: &[u8]) -> Vec<i16> {
    data.iter().map(|&b| alaw_to_linear(b)).collect()
}
