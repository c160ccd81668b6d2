//! One direction of a call's RTP: who sends it, what was lost, how much it jittered, and how
//! its payloads become samples.

use tapline_media::g711;
use tapline_media::g722::G722Decoder;
use tapline_media::opus::OpusDecoder;

/// Packet counts and quality of one direction, as RFC 3550 defines them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamStats {
    pub packets: u64,
    /// Expected minus received, from the sequence numbers (never negative).
    pub lost: u64,
    pub duplicates: u64,
    /// Interarrival jitter in milliseconds (RFC 3550 §6.4.1).
    pub jitter_ms: f64,
    /// Telephone-event (RFC 4733) packets: DTMF, recognised and not written as audio.
    pub dtmf_packets: u64,
    /// Comfort-noise packets: silence.
    pub comfort_noise_packets: u64,
    /// Packets in a codec Tapline cannot decode (kept raw instead).
    pub undecodable_packets: u64,
    pub ssrc_changes: u64,
}

/// What a payload type means for recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
    G722,
    Opus,
    TelephoneEvent,
    ComfortNoise,
    /// Anything else, by its SDP name (G729, opus, ...).
    Other(String),
}

impl Codec {
    /// From an SDP encoding name (case-insensitive).
    pub fn from_name(name: &str) -> Codec {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Codec::Pcmu,
            "PCMA" => Codec::Pcma,
            "G722" => Codec::G722,
            "OPUS" => Codec::Opus,
            "TELEPHONE-EVENT" => Codec::TelephoneEvent,
            "CN" => Codec::ComfortNoise,
            _ => Codec::Other(name.to_owned()),
        }
    }

    /// The sample rate of the decoded audio, for codecs we decode.
    pub fn sample_rate(&self) -> Option<u32> {
        match self {
            Codec::Pcmu | Codec::Pcma => Some(8000),
            Codec::G722 => Some(16000),
            Codec::Opus => Some(tapline_media::OPUS_RATE),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
            Codec::TelephoneEvent => "telephone-event",
            Codec::ComfortNoise => "CN",
            Codec::Other(name) => name,
        }
    }
}

/// The receiving state of one direction.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub(crate) stats: StreamStats,
    pub(crate) codec: Option<Codec>,
    ssrc: Option<u32>,
    /// Extended (wrap-counted) highest sequence number, and the first one.
    highest: Option<u64>,
    base: u64,
    /// Packets received from earlier sources, so loss is counted per source.
    packets_before_source: u64,
    /// Recently seen sequence numbers, for spotting duplicates.
    recent: [Option<u16>; 16],
    recent_at: usize,
    /// Last packet's transit time (arrival minus RTP time), in RTP units, for jitter.
    last_transit: Option<f64>,
    jitter_units: f64,
    g722: Option<G722Decoder>,
    opus: Option<OpusDecoder>,
}

/// Is this packet worth placing, after bookkeeping?
pub(crate) enum Verdict {
    Place,
    Duplicate,
}

impl Stream {
    /// Updates counts, loss and jitter for a packet that arrived at `arrival_s` seconds.
    pub(crate) fn account(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        clock_rate: u32,
        arrival_s: f64,
    ) -> Verdict {
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_changes += 1;
            }
            // A new source starts its own numbering: loss is counted per source and summed.
            self.fold_loss();
            self.ssrc = Some(ssrc);
            self.highest = None;
            self.recent = [None; 16];
            self.last_transit = None;
        }
        if self.recent.contains(&Some(sequence)) {
            self.stats.duplicates += 1;
            return Verdict::Duplicate;
        }
        self.recent[self.recent_at] = Some(sequence);
        self.recent_at = (self.recent_at + 1) % self.recent.len();
        self.stats.packets += 1;

        let extended = match self.highest {
            None => {
                self.base = u64::from(sequence);
                u64::from(sequence)
            }
            Some(highest) => {
                let cycles = highest & !0xFFFF;
                let candidates = [cycles.wrapping_sub(0x1_0000), cycles, cycles + 0x1_0000];
                candidates
                    .into_iter()
                    .map(|c| c.wrapping_add(u64::from(sequence)))
                    .min_by_key(|e| e.abs_diff(highest))
                    .unwrap_or(highest)
            }
        };
        self.highest = Some(self.highest.map_or(extended, |h| h.max(extended)));

        let transit = arrival_s * f64::from(clock_rate) - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // Large steps are timestamp jumps (hold, new talk spurt after silence), not jitter.
            if d < f64::from(clock_rate) {
                self.jitter_units += (d - self.jitter_units) / 16.0;
                self.stats.jitter_ms = self.jitter_units * 1000.0 / f64::from(clock_rate.max(1));
            }
        }
        self.last_transit = Some(transit);
        Verdict::Place
    }

    /// Loss so far for the current source, plus what earlier sources lost.
    pub(crate) fn lost(&self) -> u64 {
        self.stats.lost + self.current_source_loss()
    }

    fn current_source_loss(&self) -> u64 {
        match self.highest {
            Some(highest) => {
                let expected = highest.saturating_sub(self.base) + 1;
                let received_this_source = self.received_this_source();
                expected.saturating_sub(received_this_source)
            }
            None => 0,
        }
    }

    fn received_this_source(&self) -> u64 {
        self.stats.packets - self.packets_before_source
    }

    fn fold_loss(&mut self) {
        self.stats.lost += self.current_source_loss();
        self.packets_before_source = self.stats.packets;
    }

    /// Decodes `payload` in `codec`, appending samples at the codec's own rate.
    pub(crate) fn decode(&mut self, codec: &Codec, payload: &[u8], out: &mut Vec<i16>) {
        match codec {
            Codec::Pcmu => out.extend(payload.iter().map(|&b| g711::ulaw_to_linear(b))),
            Codec::Pcma => out.extend(payload.iter().map(|&b| g711::alaw_to_linear(b))),
            Codec::G722 => self
                .g722
                .get_or_insert_with(G722Decoder::new)
                .decode(payload, out),
            Codec::Opus => self
                .opus
                .get_or_insert_with(OpusDecoder::new)
                .decode(payload, out),
            Codec::TelephoneEvent => self.stats.dtmf_packets += 1,
            Codec::ComfortNoise => self.stats.comfort_noise_packets += 1,
            Codec::Other(_) => self.stats.undecodable_packets += 1,
        }
    }
}
