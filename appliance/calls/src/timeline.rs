//! Two directions of audio laid out on one clock: the call's.
//!
//! Position 0 is the moment the call was answered; position `n` is `n` samples later at the
//! call's rate. Each direction places its packets by RTP timestamp, anchored to capture time
//! when it starts (and again when its timestamps jump: a new SSRC, a resume from hold).
//! Whatever no packet covers is silence, so a recording is exactly as long as the call.
//!
//! A sender's clock is never exactly the capture clock: 100 ppm fast or slow is common, so its
//! timestamps walk away from capture time by a third of a second an hour, and the two sides
//! of a call walk apart. Each direction therefore measures how late its packets arrive against
//! where they are placed (the least lateness over a window, which jitter and reordering only
//! ever raise), and slews its audio back towards where it started: single samples are dropped
//! or inserted when audio is handed out, spread out, each where the signal barely moves, so
//! that no correction is a step the signal did not make. Only a jump too large to slew
//! ([`REANCHOR_MS`]) re-anchors.
//!
//! Frames are handed out only once they are older than the jitter allowance: a packet that
//! arrives later than that is too late and is dropped (and counted), never written out of
//! place.

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

/// How far a stream's RTP clock may be from capture time before it is re-anchored on capture
/// time instead of slewed: a jump (a sender that reset its clock, a resume that kept the
/// SSRC), not drift, which slewing keeps far below this.
const REANCHOR_MS: i64 = 300;

/// Audio further ahead of the capture clock than this is not believed.
const FUTURE_LIMIT_MS: i64 = 10_000;

/// The window over which the least lateness is taken: long enough to hold packets that met
/// no queue at all, short enough to follow a clock 1000 ppm off within a millisecond.
const DRIFT_WINDOW_MS: i64 = 2_000;

/// Lateness that moves less than this from where it started is left alone: the least delay
/// of a network path wanders by a millisecond or two, and a correction nobody needs is still
/// a change to the audio.
const DRIFT_DEADBAND_MS: i64 = 5;

/// Lateness beyond the dead band is slewed away over this long; with a steady drift the
/// offset settles at the dead band plus the drift times this (6 ms at 200 ppm, 10 ms at
/// 1000 ppm). The estimate is renewed every window, well within this, so the slewing never
/// overshoots.
const SLEW_SECONDS: f64 = 5.0;

/// At most one sample in this many is dropped or inserted (5000 ppm, five times the worst
/// clocks): each correction lands on its own stretch of signal.
const MIN_CORRECTION_SPACING: usize = 200;

/// The largest stretch searched for a quiet point to correct at: two periods of a 50 Hz hum
/// at 8 kHz, so a point where the signal barely moves is always among them.
const CORRECTION_SEARCH: usize = 320;

#[derive(Debug)]
pub(crate) struct Timeline {
    rate: u32,
    /// Samples before this position have been handed out.
    emitted: u64,
    /// Samples from the head of each direction on, one queue per direction. A direction's
    /// queue is on its sender's clock: its head is at `emitted + skew` there.
    /// (Plain vectors: what is handed out is drained from the front about once a second,
    /// moving only the jitter allowance that stays, and every write and read is one slice.)
    pending: [Vec<i16>; 2],
    /// Samples dropped minus samples inserted so far, per direction: where the sender's clock
    /// is against the call's.
    skew: [i64; 2],
    anchors: [Option<Anchor>; 2],
    slew: [Slew; 2],
    /// A direction's stretch with its corrections made, while it is handed out: reused.
    corrected: [Vec<i16>; 2],
    pub(crate) late_samples: [u64; 2],
    pub(crate) reanchors: [u64; 2],
    /// Samples dropped (first) and inserted (second) to follow each direction's clock.
    pub(crate) slewed: [[u64; 2]; 2],
}

/// Where a stream's RTP clock sits on its sender's clock (positions before `skew`).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    rtp_timestamp: u32,
    /// RTP timestamp units per second.
    clock_rate: u32,
    position: i64,
}

/// The drift of one direction against capture time, and how fast it is being slewed away.
#[derive(Debug, Clone, Copy, Default)]
struct Slew {
    /// Capture position where the current window began.
    window_start: i64,
    /// The least lateness (capture position minus placed position) in the current window.
    window_least: Option<i64>,
    /// The least lateness of the first window after the anchor: the offset to keep.
    baseline: Option<i64>,
    /// Capture position of the latest packet.
    last_packet: i64,
    /// Samples to drop per sample handed out; negative, to insert.
    drop_rate: f64,
    /// The fraction of a correction not made yet.
    owed: f64,
}

impl Slew {
    fn starting_at(capture_position: i64) -> Slew {
        Slew {
            window_start: capture_position,
            last_packet: capture_position,
            ..Slew::default()
        }
    }

    /// Takes in a packet's lateness; at the end of each window, sets the rate that slews the
    /// least lateness back to the baseline, proportional to how far it strayed beyond the dead
    /// band.
    fn observe(&mut self, capture_position: i64, lateness: i64, rate: u32) {
        self.last_packet = capture_position;
        let least = self
            .window_least
            .map_or(lateness, |least| least.min(lateness));
        self.window_least = Some(least);
        let rate = i64::from(rate);
        if capture_position - self.window_start < rate * DRIFT_WINDOW_MS / 1000 {
            return;
        }
        self.window_start = capture_position;
        self.window_least = None;
        let error = least - *self.baseline.get_or_insert(least);
        let excess = error.abs() - rate * DRIFT_DEADBAND_MS / 1000;
        // Arriving ever later: the sender's clock is slow, so samples are inserted (and the
        // other way round).
        self.drop_rate = if excess > 0 {
            let limit = 1.0 / MIN_CORRECTION_SPACING as f64;
            (-(error.signum() * excess) as f64 / (SLEW_SECONDS * rate as f64)).clamp(-limit, limit)
        } else {
            0.0
        };
    }

    /// How many samples to drop (negative: insert) while `count` are handed out up to
    /// `end`. A direction that has gone quiet (hold, silence suppression) has no clock to
    /// follow, so nothing is corrected until its packets return.
    fn corrections(&mut self, count: usize, end: i64, rate: u32) -> i64 {
        if end - self.last_packet > 2 * i64::from(rate) * DRIFT_WINDOW_MS / 1000 {
            self.drop_rate = 0.0;
            self.owed = 0.0;
            return 0;
        }
        let wanted = self.owed + self.drop_rate * count as f64;
        let most = (count / MIN_CORRECTION_SPACING) as f64;
        let now = wanted.trunc().clamp(-most, most);
        // What could not be made now is made later, but never piles up.
        self.owed = (wanted - now).clamp(-1.0, 1.0);
        now as i64
    }
}

impl Timeline {
    pub(crate) fn new(rate: u32) -> Timeline {
        Timeline {
            rate,
            emitted: 0,
            pending: [Vec::new(), Vec::new()],
            skew: [0, 0],
            anchors: [None, None],
            slew: [Slew::default(), Slew::default()],
            corrected: [Vec::new(), Vec::new()],
            late_samples: [0, 0],
            reanchors: [0, 0],
            slewed: [[0, 0], [0, 0]],
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
        let skew = self.skew[d];
        let limit = i64::from(self.rate) * REANCHOR_MS / 1000;
        let position = match self.anchors[d] {
            Some(anchor) if anchor.ssrc == ssrc => {
                // Wrapping difference: RTP timestamps roll over every 2^32 units.
                let units = i64::from(timestamp.wrapping_sub(anchor.rtp_timestamp) as i32);
                let position = anchor.position
                    + units * i64::from(self.rate) / i64::from(anchor.clock_rate.max(1));
                ((position - skew - capture_position).abs() <= limit).then_some(position)
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
                position: capture_position + skew,
            });
            self.slew[d] = Slew::starting_at(capture_position);
            capture_position + skew
        });
        let placed = position - skew;
        if placed - capture_position > i64::from(self.rate) * FUTURE_LIMIT_MS / 1000 {
            return;
        }
        self.slew[d].observe(capture_position, capture_position - placed, self.rate);
        self.write(d, position, samples);
    }

    /// Writes `samples` at `position` on direction `d`'s sender clock.
    fn write(&mut self, d: usize, position: i64, samples: &[i16]) {
        let head = self.emitted as i64 + self.skew[d];
        let (start, samples) = if position < head {
            let late = usize::try_from(head - position)
                .unwrap_or(usize::MAX)
                .min(samples.len());
            self.late_samples[d] += late as u64;
            (head, &samples[late..])
        } else {
            (position, samples)
        };
        if samples.is_empty() {
            return;
        }
        let offset = (start - head) as usize;
        let queue = &mut self.pending[d];
        if offset > queue.len() {
            // What no packet covered so far is silence.
            queue.resize(offset, 0);
        }
        // Overwrite what is queued already (a reordered or repeated stretch), append the rest:
        // in order, the usual case, that is a plain append.
        let overlap = (queue.len() - offset).min(samples.len());
        queue[offset..offset + overlap].copy_from_slice(&samples[..overlap]);
        queue.extend_from_slice(&samples[overlap..]);
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
        // Each direction gives `count` samples from `consumed` of its own: more when its clock
        // is fast, fewer when slow.
        let mut consumed = [count; 2];
        for (d, consumed) in consumed.iter_mut().enumerate() {
            let corrections = self.slew[d].corrections(count, position, self.rate);
            *consumed = count.saturating_add_signed(corrections as isize);
            let queue = &mut self.pending[d];
            // What no packet covered is silence.
            if queue.len() < *consumed {
                queue.resize(*consumed, 0);
            }
            if corrections != 0 {
                let source = &queue[..*consumed];
                correct(source, corrections, &mut self.corrected[d]);
                let kind = if corrections > 0 { 0 } else { 1 };
                self.slewed[d][kind] += corrections.unsigned_abs();
                self.skew[d] += corrections;
            }
        }
        let [left, right] = &mut self.pending;
        let [left_corrected, right_corrected] = &self.corrected;
        let left_samples: &[i16] = if consumed[0] == count {
            &left[..count]
        } else {
            left_corrected
        };
        let right_samples: &[i16] = if consumed[1] == count {
            &right[..count]
        } else {
            right_corrected
        };
        // Interleave from contiguous slices: a loop the compiler can unroll, instead of a
        // push per sample.
        let base = out.len();
        out.resize(base + count * 2, 0);
        let pairs = left_samples.iter().zip(right_samples);
        for (frame, (&l, &r)) in out[base..].chunks_exact_mut(2).zip(pairs) {
            frame[0] = l;
            frame[1] = r;
        }
        left.drain(..consumed[0]);
        right.drain(..consumed[1]);
        self.emitted = end;
    }
}

/// Writes `source` into `out` with `corrections` samples dropped (negative: inserted), spread
/// evenly, one in each equal stretch of `source`, each where it changes the signal least: a
/// sample is dropped where its neighbours are closest (so the new step is no larger than the
/// signal's own), and one is inserted halfway between two neighbours where they are closest.
fn correct(source: &[i16], corrections: i64, out: &mut Vec<i16>) {
    out.clear();
    let n = corrections.unsigned_abs() as usize;
    if n == 0 || source.len() < 3 {
        out.extend_from_slice(source);
        return;
    }
    let stretch = source.len() / n;
    let mut copied = 0;
    for i in 0..n {
        // A point inside this stretch, away from the ends of `source`.
        // (Stretches are at least MIN_CORRECTION_SPACING long, so these bounds hold with
        // room to spare; they are kept anyway rather than trusted.)
        let from = (i * stretch + stretch.saturating_sub(CORRECTION_SEARCH) / 2)
            .max(copied)
            .max(1);
        let to = (from + CORRECTION_SEARCH.min(stretch)).min(source.len() - 1);
        let Some(at) = (from..to).min_by_key(|&k| {
            if corrections > 0 {
                (i32::from(source[k + 1]) - i32::from(source[k - 1])).abs()
            } else {
                (i32::from(source[k]) - i32::from(source[k - 1])).abs()
            }
        }) else {
            break;
        };
        out.extend_from_slice(&source[copied..at]);
        if corrections > 0 {
            copied = at + 1;
        } else {
            let midpoint = (i32::from(source[at - 1]) + i32::from(source[at])) / 2;
            out.push(midpoint as i16);
            copied = at;
        }
    }
    out.extend_from_slice(&source[copied..]);
    // The caller hands out exactly this many, whatever happened above.
    let expected = if corrections > 0 {
        source.len() - n
    } else {
        source.len() + n
    };
    out.resize(expected, 0);
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

    /// A tone of `hz` at 8 kHz, amplitude 8000.
    fn tone(hz: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| ((std::f64::consts::TAU * hz * n as f64 / 8000.0).sin() * 8000.0) as i16)
            .collect()
    }

    fn max_step(samples: &[i16]) -> i32 {
        samples
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn corrections_are_spread_and_never_steeper_than_the_signal() {
        for hz in [50.0, 440.0, 1020.0, 3000.0] {
            let source = tone(hz, 8000);
            let own = max_step(&source);
            for corrections in [-40, -3, -1, 1, 3, 40] {
                let mut out = Vec::new();
                correct(&source, corrections, &mut out);
                assert_eq!(
                    out.len() as i64,
                    8000 - corrections,
                    "{hz} Hz, {corrections}"
                );
                assert!(
                    max_step(&out) <= own + 2,
                    "{hz} Hz, {corrections}: step {} where the tone's own is {own}",
                    max_step(&out)
                );
            }
        }
        // Silence stays silence.
        let mut out = Vec::new();
        correct(&[0; 1000], 2, &mut out);
        assert_eq!(out, [0; 998]);
    }

    /// Feeds `seconds` of 20 ms packets from a sender whose clock is `ppm` off, each seen
    /// `delay(k)` samples late; returns the timeline and everything handed out.
    fn stream(ppm: f64, seconds: i64, delay: impl Fn(i64) -> i64) -> (Timeline, Vec<i16>) {
        let mut t = Timeline::new(8000);
        let mut out = Vec::new();
        let packets = seconds * 50;
        for k in 0..packets {
            let sent = (k * 160) as f64 / (1.0 + ppm * 1e-6);
            let capture = sent.round() as i64 + delay(k);
            t.place(
                Direction::FromCaller,
                9,
                (k * 160) as u32,
                8000,
                capture,
                &[1000; 160],
            );
            if k % 50 == 49 {
                t.take_until(capture - 1600, &mut out);
            }
        }
        (t, out)
    }

    #[test]
    fn jitter_and_reordering_without_drift_change_nothing() {
        // Every third packet 5 to 35 ms late, overtaken by the ones after it.
        let (t, out) = stream(
            0.0,
            120,
            |k| if k % 3 == 1 { 40 + (k * 37) % 240 } else { 0 },
        );
        assert_eq!(t.slewed, [[0, 0], [0, 0]]);
        assert_eq!(t.reanchors, [0, 0]);
        let left: Vec<i16> = out.chunks(2).map(|f| f[0]).collect();
        assert!(left.iter().all(|&s| s == 1000), "no sample lost or added");
    }

    #[test]
    fn a_drifting_clock_is_slewed_not_reanchored() {
        for ppm in [-1000.0, 1000.0] {
            let (t, _) = stream(ppm, 600, |k| (k * 13) % 80);
            let [dropped, inserted] = t.slewed[0];
            // 600 s at 1000 ppm is 4800 samples, less the few within the dead band.
            let (made, other) = if ppm > 0.0 {
                (dropped, inserted)
            } else {
                (inserted, dropped)
            };
            assert!((4600..=4800).contains(&made), "{ppm} ppm: {:?}", t.slewed);
            assert_eq!(other, 0, "{ppm} ppm: {:?}", t.slewed);
            assert_eq!(t.reanchors, [0, 0]);
            assert_eq!(t.skew[0].unsigned_abs(), made);
        }
    }
}
