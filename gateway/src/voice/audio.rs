//! Audio for a call: WAV bytes → 16-bit mono PCM at 8 kHz ([`Pcm8k`]) → G.711 frames.
//!
//! WAV is decoded with `hound` (PCM 8/16/24/32-bit integer or 32-bit float, any channel
//! count: channels are averaged). A WAV written to a pipe (`espeak-ng --stdout`) has
//! placeholder sizes in its RIFF and data headers; they are clamped to the bytes present
//! before decoding.
//!
//! # Resampling
//! Any rate is converted to 8 kHz by a windowed-sinc interpolator (Blackman window, 16 zero
//! crossings each side, cut-off at 0.9 × the lower Nyquist frequency so that 22,050 Hz speech
//! does not alias into the telephone band). A resampling crate (`rubato`) would bring FFT
//! machinery for what is, here, one short offline conversion per text; this direct form costs
//! ≈ 35 multiply-adds per output sample (≈ 3 M for a 10 s message) and is tested below for
//! its pass band and stop band.

use std::io::Cursor;

use switchyard_protocols::sip::g711;
use switchyard_protocols::sip::sdp::Codec;

use super::AudioError;

/// Telephone sample rate.
pub(crate) const RATE: u32 = 8000;
/// Longest audio a call plays, seconds (longer files are refused, not cut).
pub(crate) const MAX_SECONDS: usize = 600;

/// Mono 16-bit PCM at 8 kHz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pcm8k(pub Vec<i16>);

impl Pcm8k {
    /// Length in milliseconds.
    pub(crate) fn duration_ms(&self) -> u64 {
        self.0.len() as u64 * 1000 / u64::from(RATE)
    }

    /// G.711 bytes for `codec`, one per sample.
    pub(crate) fn encode(&self, codec: Codec) -> Vec<u8> {
        match codec {
            Codec::Pcmu => g711::encode_ulaw(&self.0),
            Codec::Pcma => g711::encode_alaw(&self.0),
        }
    }
}

/// Decodes a WAV file and converts it to 8 kHz mono.
pub(crate) fn decode_wav(bytes: &[u8]) -> Result<Pcm8k, AudioError> {
    let fixed = clamp_sizes(bytes);
    let mut reader = hound::WavReader::new(Cursor::new(fixed.as_ref()))
        .map_err(|e| AudioError::Format(format!("not a WAV file: {e}")))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    if spec.sample_rate < 4000 || spec.sample_rate > 192_000 {
        return Err(AudioError::Format(format!(
            "unsupported sample rate {} Hz",
            spec.sample_rate
        )));
    }
    let max = MAX_SECONDS * spec.sample_rate as usize * channels;
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .take(max + 1)
            .collect::<Result<_, _>>()
            .map_err(|e| AudioError::Format(format!("bad samples: {e}")))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .take(max + 1)
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| AudioError::Format(format!("bad samples: {e}")))?
        }
    };
    if interleaved.len() > max {
        return Err(AudioError::Format(format!(
            "longer than {MAX_SECONDS} seconds"
        )));
    }
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    if mono.is_empty() {
        return Err(AudioError::Format("no audio samples".into()));
    }
    let out = resample(&mono, spec.sample_rate, RATE);
    Ok(Pcm8k(
        out.into_iter()
            .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
            .collect(),
    ))
}

/// Copies `bytes` with the RIFF size and the `data` chunk size clamped to what is present
/// (streamed WAVs carry 0x7FFFF000-style placeholders). Untouched when they already fit.
fn clamp_sizes(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let (Some(riff), Some(wave)) = (bytes.get(0..4), bytes.get(8..12)) else {
        return bytes.into();
    };
    if riff != b"RIFF" || wave != b"WAVE" {
        return bytes.into();
    }
    let mut out = bytes.to_vec();
    let len = out.len();
    let riff_size = (len.saturating_sub(8)) as u32;
    out.splice(4..8, riff_size.to_le_bytes());
    let mut pos = 12;
    while let (Some(id), Some(size)) = (out.get(pos..pos + 4), out.get(pos + 4..pos + 8)) {
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let body = pos + 8;
        if id == b"data" {
            let present = len.saturating_sub(body);
            if size > present {
                // Whole samples only: an even count of bytes.
                let fixed = (present & !1) as u32;
                out.splice(pos + 4..pos + 8, fixed.to_le_bytes());
            }
            break;
        }
        pos = body.saturating_add(size).saturating_add(size & 1);
    }
    out.into()
}

/// Windowed-sinc resampling of `input` from `from` Hz to `to` Hz (see the module doc).
pub(crate) fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to {
        return input.to_vec();
    }
    const ZEROS: f64 = 16.0;
    let ratio = f64::from(to) / f64::from(from);
    // Cut-off relative to the input rate's Nyquist frequency.
    let cutoff = ratio.min(1.0) * 0.9;
    let half_width = ZEROS / cutoff;
    let out_len = (input.len() as f64 * ratio).floor() as usize;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let t = n as f64 / ratio;
        let first = (t - half_width).ceil().max(0.0) as usize;
        let last = ((t + half_width).floor() as usize).min(input.len().saturating_sub(1));
        let mut acc = 0.0f64;
        for (k, &x) in input.iter().enumerate().take(last + 1).skip(first) {
            let d = t - k as f64;
            let w = 0.42
                + 0.5 * (std::f64::consts::PI * d / half_width).cos()
                + 0.08 * (2.0 * std::f64::consts::PI * d / half_width).cos();
            acc += f64::from(x) * cutoff * sinc(cutoff * d) * w;
        }
        out.push(acc as f32);
    }
    out
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, secs: f64) -> Vec<f32> {
        (0..(f64::from(rate) * secs) as usize)
            .map(|i| {
                (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32 * 0.5
            })
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        // Skip the edges, where the filter sees zeros.
        let mid = &x[x.len() / 10..x.len() * 9 / 10];
        (mid.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt()
    }

    #[test]
    fn keeps_the_voice_band_and_removes_what_would_alias() {
        let pass = resample(&tone(1000.0, 22050, 0.5), 22050, 8000);
        assert_eq!(pass.len(), 4000);
        let r = rms(&pass);
        assert!((0.33..0.38).contains(&r), "1 kHz rms {r}");
        // 6 kHz is above 4 kHz: it must not fold back into the band.
        let stop = resample(&tone(6000.0, 22050, 0.5), 22050, 8000);
        assert!(rms(&stop) < 0.01, "6 kHz leaked: {}", rms(&stop));
    }

    fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_8k_as_is_and_streamed_headers() {
        let samples: Vec<i16> = (0..1600).map(|i| (i % 100) as i16 * 100).collect();
        let pcm = decode_wav(&wav(8000, 1, &samples)).unwrap();
        assert_eq!(pcm.0.len(), 1600);
        assert_eq!(pcm.duration_ms(), 200);
        // A streamed header: sizes set to the placeholder espeak-ng writes.
        let mut streamed = wav(16000, 2, &[0; 3200]);
        streamed[4..8].copy_from_slice(&0x7FFF_F024u32.to_le_bytes());
        streamed[40..44].copy_from_slice(&0x7FFF_F000u32.to_le_bytes());
        let pcm = decode_wav(&streamed).unwrap();
        assert_eq!(pcm.0.len(), 800);
        assert!(decode_wav(b"not a wav").is_err());
        assert_eq!(pcm.encode(Codec::Pcmu).len(), 800);
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors_not_panics() {
        // Tenants' files are untrusted: every prefix, and every single-byte corruption of the
        // header, must decode or fail cleanly.
        let good = wav(11025, 2, &[1000; 400]);
        for len in 0..good.len() {
            let _ = decode_wav(&good[..len]);
        }
        for i in 0..44 {
            for v in [0u8, 0x7F, 0xFF] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = decode_wav(&bad);
            }
        }
    }
}
