//! Opus (RFC 6716) in RTP (RFC 7587), decoded by the reference libopus through the `opus`
//! crate.
//!
//! RTP carries Opus at a 48 kHz clock whatever the audio bandwidth, and may carry it in
//! stereo; a recording holds one channel per party, so each stream is decoded to mono at
//! 48 kHz. A packet libopus refuses is replaced by its loss concealment, so a damaged packet
//! costs a few milliseconds of audio, never a panic or a gap in the timing.

/// Opus's RTP clock and decoded sample rate.
pub const OPUS_RATE: u32 = 48_000;

/// The longest Opus packet: 120 ms at 48 kHz.
const MAX_FRAME: usize = 5_760;

pub struct OpusDecoder {
    decoder: Option<opus::Decoder>,
    buffer: Vec<i16>,
    /// Samples in the last good packet, used for the length of concealment.
    last_len: usize,
    /// Packets libopus refused and concealment replaced.
    pub concealed: u64,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("concealed", &self.concealed)
            .finish_non_exhaustive()
    }
}

impl Default for OpusDecoder {
    fn default() -> OpusDecoder {
        OpusDecoder::new()
    }
}

impl OpusDecoder {
    pub fn new() -> OpusDecoder {
        OpusDecoder {
            // Creating a mono 48 kHz decoder fails only when libopus cannot allocate; then
            // every packet is concealed as silence below rather than the call dropped.
            decoder: opus::Decoder::new(OPUS_RATE, opus::Channels::Mono).ok(),
            buffer: vec![0; MAX_FRAME],
            last_len: 960,
            concealed: 0,
        }
    }

    /// Decodes one RTP payload, appending mono samples at 48 kHz.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let decoded = self
            .decoder
            .as_mut()
            .map(|d| d.decode(payload, &mut self.buffer, false));
        match decoded {
            Some(Ok(samples)) => {
                let samples = samples.min(self.buffer.len());
                self.last_len = samples.max(1);
                out.extend_from_slice(&self.buffer[..samples]);
            }
            Some(Err(_)) | None => {
                self.concealed += 1;
                let len = self.last_len.min(self.buffer.len());
                // An empty packet asks libopus for its loss concealment.
                let concealed = self
                    .decoder
                    .as_mut()
                    .and_then(|d| d.decode(&[], &mut self.buffer[..len], false).ok());
                match concealed {
                    Some(samples) => out.extend_from_slice(&self.buffer[..samples.min(len)]),
                    None => out.extend(std::iter::repeat_n(0, len)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_frames(hz: f64, frames: usize) -> Vec<Vec<u8>> {
        let mut encoder =
            opus::Encoder::new(OPUS_RATE, opus::Channels::Mono, opus::Application::Voip).unwrap();
        (0..frames)
            .map(|f| {
                let pcm: Vec<i16> = (0..960)
                    .map(|i| {
                        let t = (f * 960 + i) as f64 / f64::from(OPUS_RATE);
                        ((t * hz * std::f64::consts::TAU).sin() * 8000.0) as i16
                    })
                    .collect();
                encoder.encode_vec(&pcm, 4000).unwrap()
            })
            .collect()
    }

    #[test]
    fn packets_decode_to_20_ms_of_mono_48k_audio_with_the_tone() {
        let mut decoder = OpusDecoder::new();
        let mut out = Vec::new();
        for packet in tone_frames(440.0, 50) {
            decoder.decode(&packet, &mut out);
        }
        assert_eq!(out.len(), 50 * 960);
        // After the codec's start-up, the signal is a 440 Hz tone of about the same level.
        let steady = &out[9600..];
        let peak = steady.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((6000..=10000).contains(&peak), "peak {peak}");
        let crossings = steady
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        let hz = crossings as f64 / 2.0 / (steady.len() as f64 / 48_000.0);
        assert!((hz - 440.0).abs() < 10.0, "{hz} Hz");
        assert_eq!(decoder.concealed, 0);
    }

    #[test]
    fn garbage_is_concealed_not_fatal() {
        let mut decoder = OpusDecoder::new();
        let mut out = Vec::new();
        decoder.decode(&tone_frames(440.0, 1)[0], &mut out);
        let mut seed = 0x9E3779B97F4A7C15u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 1500) as usize;
            let packet: Vec<u8> = (0..len).map(|i| (seed >> (i % 56)) as u8).collect();
            decoder.decode(&packet, &mut out);
        }
        assert!(out.len() >= 2001 * 120, "every packet produced audio");
    }
}
