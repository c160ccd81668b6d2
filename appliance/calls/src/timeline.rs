//! Two directions of audio laid out on one clock: the call's.
//!
//! Position 0 is the moment the call was answered; position `n` is `n` samples later at the
//! call's rate. Each direction places its packets by RTP timestamp, anchored to capture time
//! when it starts (and again when its timestamps jump: a new SSRC, a resume from hold, a
//! sender whose clock has drifted too far). Whatever no packet covers is silence, so a
//! recording is exactly as long as the call.
//!
//! Frames are handed out only once they are older than the jitter allowance: a packet that
//! arrives later than that is too late and is dropped (and counted), never written out of
//! place.

use std::collections::VecDeque;

/// Which way the audio flows. The caller is the party that sent the INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The caller's voice (caller to callee).
    FromCaller,
    /// The callee's voice.
    FromCallee,
}

impl Direction {
    pub fn index(self) -> usize {
        match self {
            Direction::FromCaller => 0,
            Direction::FromCallee => 1,
        }
    }
}

/// How far a stream's RTP clock may wander from capture time before it is re-anchored on
/// capture time. Network jitter moves capture time by tens of milliseconds, so the limit sits
/// well above that; a sender clock 100 ppm off takes 50 minutes to reach it.
const REANCHOR_MS: i64 = 300;

/// Audio further ahead of the capture clock than this is not believed.
const FUTURE_LIMIT_MS: i64 = 10_000;

#[derive(Debug)]
pub(crate) struct Timeline {
    rate: u32,
    /// Samples before this position have been handed out.
    emitted: u64,
    /// Samples from `emitted` on, one queue per direction.
    pending: [VecDeque<i16>; 2],
    anchors: [Option<Anchor>; 2],
    pub(crate) late_samples: [u64; 2],
    pub(crate) reanchors: [u64; 2],
}

/// Where a stream's RTP clock sits on the call's clock.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    rtp_timestamp: u32,
    /// RTP timestamp units per second.
    clock_rate: u32,
    position: i64,
}

impl Timeline {
    pub(crate) fn new(rate: u32) -> Timeline {
        Timeline {
            rate,
            emitted: 0,
            pending: [VecDeque::new(), VecDeque::new()],
            anchors: [None, None],
            late_samples: [0, 0],
            reanchors: [0, 0],
        }
    }

    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Places decoded `samples` (at the call's rate) from an RTP packet with `timestamp` and
    /// `ssrc`, seen at `capture_position` (samples since the answer, by capture time).
    pub(crate) fn place(
        &mut self,
        direction: Direction,
        ssrc: u32,
        timestamp: u32,
        clock_rate: u32,
        capture_position: i64,
        samples: &[i16],
    ) {
        let d = direction.index();
        let limit = i64::from(self.rate) * REANCHOR_MS / 1000;
        let position = match self.anchors[d] {
            Some(anchor) if anchor.ssrc == ssrc => {
                // Wrapping difference: RTP timestamps roll over every 2^32 units.
                let units = i64::from(timestamp.wrapping_sub(anchor.rtp_timestamp) as i32);
                let position = anchor.position
                    + units * i64::from(self.rate) / i64::from(anchor.clock_rate.max(1));
                ((position - capture_position).abs() <= limit).then_some(position)
            }
            _ => None,
        };
        let position = position.unwrap_or_else(|| {
            if self.anchors[d].is_some() {
                self.reanchors[d] += 1;
            }
            self.anchors[d] = Some(Anchor {
                ssrc,
                rtp_timestamp: timestamp,
                clock_rate,
                position: capture_position,
            });
            capture_position
        });
        if position - capture_position > i64::from(self.rate) * FUTURE_LIMIT_MS / 1000 {
            return;
        }
        self.write(d, position, samples);
    }

    fn write(&mut self, d: usize, position: i64, samples: &[i16]) {
        let emitted = self.emitted as i64;
        let (start, samples) = if position < emitted {
            let late = usize::try_from(emitted - position)
                .unwrap_or(usize::MAX)
                .min(samples.len());
            self.late_samples[d] += late as u64;
            (emitted, &samples[late..])
        } else {
            (position, samples)
        };
        if samples.is_empty() {
            return;
        }
        let offset = (start - emitted) as usize;
        let queue = &mut self.pending[d];
        if queue.len() < offset + samples.len() {
            queue.resize(offset + samples.len(), 0);
        }
        let slots = &mut queue.make_contiguous()[offset..offset + samples.len()];
        slots.copy_from_slice(samples);
    }

    /// Hands out every frame before `position` (left: caller, right: callee), as interleaved
    /// stereo samples; what no packet covered is silence.
    pub(crate) fn take_until(&mut self, position: i64, out: &mut Vec<i16>) {
        let Ok(end) = u64::try_from(position) else {
            return;
        };
        if end <= self.emitted {
            return;
        }
        let count = (end - self.emitted) as usize;
        for queue in &mut self.pending {
            // What no packet covered is silence.
            if queue.len() < count {
                queue.resize(count, 0);
            }
        }
        let [left, right] = &mut self.pending;
        // Interleave from contiguous slices: a loop the compiler can unroll, instead of a
        // push per sample.
        let base = out.len();
        out.resize(base + count * 2, 0);
        let pairs = left.make_contiguous()[..count]
            .iter()
            .zip(&right.make_contiguous()[..count]);
        for (frame, (&l, &r)) in out[base..].chunks_exact_mut(2).zip(pairs) {
            frame[0] = l;
            frame[1] = r;
        }
        left.drain(..count);
        right.drain(..count);
        self.emitted = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(t: &mut Timeline, until: i64) -> Vec<(i16, i16)> {
        let mut out = Vec::new();
        t.take_until(until, &mut out);
        out.chunks(2).map(|c| (c[0], c[1])).collect()
    }

    #[test]
    fn directions_are_aligned_and_gaps_are_silence() {
        let mut t = Timeline::new(8000);
        // Caller's first packet at 0 ms (ts 1000), callee's at 10 ms (ts 5000).
        t.place(Direction::FromCaller, 1, 1000, 8000, 0, &[1; 4]);
        t.place(Direction::FromCallee, 2, 5000, 8000, 80, &[2; 4]);
        // Next caller packet: 8 samples later by RTP, though it arrived late by capture.
        t.place(Direction::FromCaller, 1, 1008, 8000, 30, &[3; 4]);
        let out = frames(&mut t, 90);
        assert_eq!(out[..4], [(1, 0); 4]);
        assert_eq!(out[4..8], [(0, 0); 4], "a lost packet is silence");
        assert_eq!(out[8..12], [(3, 0); 4]);
        assert_eq!(out[80..84], [(0, 2); 4]);
        assert_eq!(out.len(), 90);
    }

    #[test]
    fn a_timestamp_jump_or_new_ssrc_reanchors_on_capture_time() {
        let mut t = Timeline::new(8000);
        t.place(Direction::FromCaller, 7, 0, 8000, 0, &[1; 2]);
        // Resume after hold: timestamps jumped by an hour's worth.
        t.place(Direction::FromCaller, 7, 8000 * 3600, 8000, 800, &[2; 2]);
        // A new SSRC (a transfer to another phone), placed by capture time.
        t.place(Direction::FromCaller, 8, 12345, 8000, 1600, &[3; 2]);
        let out = frames(&mut t, 1602);
        assert_eq!((out[0], out[800], out[1600]), ((1, 0), (2, 0), (3, 0)));
        assert_eq!(t.reanchors[0], 2);
    }

    #[test]
    fn late_packets_are_dropped_not_misplaced() {
        let mut t = Timeline::new(8000);
        t.place(Direction::FromCallee, 1, 0, 8000, 0, &[5; 160]);
        assert_eq!(frames(&mut t, 100).len(), 100);
        // Sample 80..240 arrives after 0..100 was handed out: only 100..240 is kept.
        t.place(Direction::FromCallee, 1, 80, 8000, 80, &[6; 160]);
        let out = frames(&mut t, 240);
        assert_eq!(out[0], (0, 6));
        assert_eq!(t.late_samples[1], 20);
    }

    #[test]
    fn wideband_timestamps_scale_to_the_call_rate() {
        // G.722: 16 kHz audio, 8 kHz RTP clock (RFC 3551).
        let mut t = Timeline::new(16000);
        t.place(Direction::FromCaller, 1, 0, 8000, 0, &[1; 320]);
        t.place(Direction::FromCaller, 1, 160, 8000, 320, &[2; 320]);
        let out = frames(&mut t, 640);
        assert_eq!((out[319], out[320]), ((1, 0), (2, 0)));
    }

    #[test]
    fn timestamps_wrap_around() {
        let mut t = Timeline::new(8000);
        t.place(Direction::FromCaller, 1, u32::MAX - 79, 8000, 0, &[1; 80]);
        t.place(Direction::FromCaller, 1, 0, 8000, 80, &[2; 80]);
        let out = frames(&mut t, 160);
        assert_eq!((out[79], out[80]), ((1, 0), (2, 0)));
        assert_eq!(t.reanchors[0], 0);
    }
}
