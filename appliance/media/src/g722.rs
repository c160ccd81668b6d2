//! ITU-T G.722 decoder: 64 kbit/s (mode 1) sub-band ADPCM to 16 kHz linear PCM.
//!
//! Each input byte carries one 6-bit code for the lower sub-band (bits 0–5) and one 2-bit code
//! for the higher sub-band (bits 6–7). Both sub-bands run the same adaptive predictor at
//! 8 kHz; the receive QMF then combines them into two 16 kHz output samples.
//!
//! The arithmetic is the 16-bit fixed point of the ITU reference, block by block (the block
//! names of the Recommendation appear in the comments): sums saturate where the reference
//! saturates and products are `(a * b) >> 15`. The output matches FFmpeg's decoder, which
//! passes the ITU test sequences, sample for sample (see `tests/data/README.md`). All
//! arithmetic is done in `i32` on values that stay within the 16-bit range, so no input can
//! overflow or panic.

/// A G.722 decoder for one stream. Keeps the predictor and filter state between calls, so a
/// stream may be fed in packets of any size.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    low: Band,
    high: Band,
    /// Receive QMF delay line, newest first: `[0]` holds the latest difference signal
    /// `rl - rh`, `[1]` the latest sum `rl + rh`.
    qmf: [i32; 24],
}

impl G722Decoder {
    /// A decoder in the reset state of the Recommendation.
    pub fn new() -> Self {
        G722Decoder {
            low: Band::new(LOW_INITIAL_DET),
            high: Band::new(HIGH_INITIAL_DET),
            qmf: [0; 24],
        }
    }

    /// Decodes `input` and appends two 16 kHz samples per input byte to `output`.
    pub fn decode(&mut self, input: &[u8], output: &mut Vec<i16>) {
        output.reserve(input.len().saturating_mul(2));
        for &byte in input {
            let (first, second) = self.decode_byte(byte);
            output.push(first);
            output.push(second);
        }
    }

    fn decode_byte(&mut self, byte: u8) -> (i16, i16) {
        let rl = self.decode_low(usize::from(byte & 0x3F));
        let rh = self.decode_high(usize::from(byte >> 6));
        self.synthesise(rl, rh)
    }

    /// Lower sub-band: returns the reconstructed signal `rl`.
    fn decode_low(&mut self, ilr: usize) -> i32 {
        let band = &mut self.low;
        // INVQBL and RECONS, LIMIT: the output uses all six bits...
        let dl = mult(band.det, QM6[ilr]);
        let rl = limit(add(band.s, dl));
        // ...while the predictor adapts on the four most significant bits only (INVQAL), so
        // that the 56 and 48 kbit/s modes, which drop low bits, keep the same state.
        let il4 = ilr >> 2;
        let dlt = mult(band.det, QM4[il4]);
        // LOGSCL, SCALEL
        band.nb = (mult(band.nb, 32512) + WL[RL42[il4]]).clamp(0, 18432);
        band.det = scale_factor(band.nb, 8);
        band.adapt(dlt);
        rl
    }

    /// Higher sub-band: returns the reconstructed signal `rh`.
    fn decode_high(&mut self, ih: usize) -> i32 {
        let band = &mut self.high;
        // INVQAH
        let dh = mult(QM2[ih], band.det);
        // RECONS and LIMIT use the prediction from before this sample.
        let rh = limit(add(band.s, dh));
        // LOGSCH, SCALEH
        band.nb = (mult(band.nb, 32512) + WH[RH2[ih]]).clamp(0, 22528);
        band.det = scale_factor(band.nb, 10);
        band.adapt(dh);
        rh
    }

    /// Receive QMF: the sum and difference of the sub-bands go through the 24-tap filter,
    /// even taps giving the first output sample and odd taps the second.
    fn synthesise(&mut self, rl: i32, rh: i32) -> (i16, i16) {
        self.qmf.copy_within(0..22, 2);
        self.qmf[1] = add(rl, rh);
        self.qmf[0] = sub(rl, rh);
        let mut even = 0;
        let mut odd = 0;
        for (pair, taps) in self
            .qmf
            .chunks_exact(2)
            .zip(QMF_COEFFICIENTS.chunks_exact(2))
        {
            even += pair[0] * taps[0];
            odd += pair[1] * taps[1];
        }
        // The reference keeps the upper 16 bits of the accumulator shifted left by 5, with
        // saturation: a net shift right by 11, clamped to 16 bits.
        (to_i16(even >> 11), to_i16(odd >> 11))
    }
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// The adaptive predictor state of one sub-band. All values stay within `i16`.
#[derive(Debug, Clone)]
struct Band {
    /// Signal estimate `s` (PREDIC).
    s: i32,
    /// Output of the zero section `sz` (FILTEZ).
    sz: i32,
    /// Quantiser scale factor `det` (SCALEL, SCALEH).
    det: i32,
    /// Logarithmic quantiser scale factor `nb` (LOGSCL, LOGSCH).
    nb: i32,
    /// Pole section coefficients; `[0]` is unused so the indices match the Recommendation.
    a: [i32; 3],
    /// Zero section coefficients; `[0]` is unused.
    b: [i32; 7],
    /// Quantised difference signal, newest first.
    d: [i32; 7],
    /// Partially reconstructed signal, newest first.
    p: [i32; 3],
    /// Reconstructed signal, newest first.
    r: [i32; 3],
}

impl Band {
    fn new(det: i32) -> Self {
        Band {
            s: 0,
            sz: 0,
            det,
            nb: 0,
            a: [0; 3],
            b: [0; 7],
            d: [0; 7],
            p: [0; 3],
            r: [0; 3],
        }
    }

    /// Updates the predictor with the quantised difference signal `d` of this sample and
    /// computes the signal estimate for the next one (the adaptive prediction blocks).
    fn adapt(&mut self, d: i32) {
        // PARREC, RECONS
        self.d[0] = d;
        self.p[0] = add(d, self.sz);
        self.r[0] = add(self.s, d);

        // UPZERO: sign-sign adaptation of the zero coefficients with leakage; shifts `d`.
        let step = if d == 0 { 0 } else { 128 };
        let sign0 = d >> 15;
        for i in (1..7).rev() {
            let wd = if self.d[i] >> 15 == sign0 {
                step
            } else {
                -step
            };
            self.b[i] = add(wd, mult(self.b[i], 32640));
            self.d[i] = self.d[i - 1];
        }

        // UPPOL2, then UPPOL1 with the new a2 (the stability limit of a1 depends on it).
        let sg0 = self.p[0] >> 15;
        let sg1 = self.p[1] >> 15;
        let sg2 = self.p[2] >> 15;
        let wd1 = saturate16(self.a[1] << 2);
        let wd2 = (if sg0 == sg1 { sub(0, wd1) } else { wd1 }) >> 7;
        let wd3 = if sg0 == sg2 { 128 } else { -128 };
        let a2 = add(add(wd2, wd3), mult(self.a[2], 32512)).clamp(-12288, 12288);
        self.a[2] = a2;

        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let a1 = add(wd1, mult(self.a[1], 32640));
        // a2 is within ±12288, so the bound is at least 3072.
        let bound = sub(15360, a2);
        self.a[1] = a1.clamp(-bound, bound);
        self.p[2] = self.p[1];
        self.p[1] = self.p[0];

        // FILTEZ
        self.sz = (1..7).rev().fold(0, |sz, i| {
            add(sz, mult(add(self.d[i], self.d[i]), self.b[i]))
        });

        // FILTEP
        self.r[2] = self.r[1];
        self.r[1] = self.r[0];
        let sp = add(
            mult(self.a[1], add(self.r[1], self.r[1])),
            mult(self.a[2], add(self.r[2], self.r[2])),
        );

        // PREDIC
        self.s = add(sp, self.sz);
    }
}

/// SCALEL / SCALEH: the linear scale factor from the logarithmic one. `offset` is 8 for the
/// lower sub-band and 10 for the higher, where `nb` is at most 18432 and 22528 respectively,
/// so the shift is at least -1 and the result at most 16384.
fn scale_factor(nb: i32, offset: i32) -> i32 {
    let mantissa = ILB[((nb >> 6) & 31) as usize];
    let shift = offset - (nb >> 11);
    let linear = if shift < 0 {
        mantissa << -shift
    } else {
        mantissa >> shift
    };
    linear << 2
}

fn saturate16(x: i32) -> i32 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Saturates to `i16`, for output.
fn to_i16(x: i32) -> i16 {
    // The clamp makes the conversion lossless.
    saturate16(x) as i16
}

/// Saturating 16-bit addition of the reference's basic operators.
fn add(a: i32, b: i32) -> i32 {
    saturate16(a + b)
}

/// Saturating 16-bit subtraction.
fn sub(a: i32, b: i32) -> i32 {
    saturate16(a - b)
}

/// Fractional 16-bit multiplication: `(a * b) >> 15`, saturating (only -1 × -1 overflows).
fn mult(a: i32, b: i32) -> i32 {
    saturate16((a * b) >> 15)
}

/// LIMIT: the reconstructed sub-band signals are 15-bit.
fn limit(x: i32) -> i32 {
    x.clamp(-16384, 16383)
}

const LOW_INITIAL_DET: i32 = 32;
const HIGH_INITIAL_DET: i32 = 8;

/// Lower sub-band inverse quantiser with all six bits (QM6), indexed by the code.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];

/// Lower sub-band inverse quantiser on the four most significant bits (QM4).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// Higher sub-band inverse quantiser (QM2).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];

/// Lower sub-band: 4-bit code to quantiser interval (RIL4 → WL index).
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Lower sub-band log scale factor multipliers.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// Higher sub-band: code to quantiser interval.
const RH2: [usize; 4] = [2, 1, 2, 1];
/// Higher sub-band log scale factor multipliers.
const WH: [i32; 3] = [0, -214, 798];

/// 2^(i/32) scaled by 2048: the inverse logarithm table of SCALEL and SCALEH.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// The 24 QMF coefficients h0..h23 (G.722 table 11), symmetric.
const QMF_COEFFICIENTS: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Vec<i16> {
        let mut out = Vec::new();
        G722Decoder::new().decode(input, &mut out);
        out
    }

    fn read_s16le(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    /// Fixtures encoded and decoded by FFmpeg (see tests/data/README.md); our decoder must
    /// reproduce FFmpeg's output sample for sample.
    #[test]
    fn matches_ffmpeg_exactly() {
        let fixtures: &[(&str, &[u8], &[u8])] = &[
            (
                "sine1k",
                include_bytes!("../tests/data/sine1k.g722"),
                include_bytes!("../tests/data/sine1k.s16le"),
            ),
            (
                "sweep",
                include_bytes!("../tests/data/sweep.g722"),
                include_bytes!("../tests/data/sweep.s16le"),
            ),
            (
                "square",
                include_bytes!("../tests/data/square.g722"),
                include_bytes!("../tests/data/square.s16le"),
            ),
            (
                "random",
                include_bytes!("../tests/data/random.g722"),
                include_bytes!("../tests/data/random.s16le"),
            ),
        ];
        for &(name, encoded, reference) in fixtures {
            let expected = read_s16le(reference);
            let decoded = decode_all(encoded);
            assert_eq!(decoded.len(), 2 * encoded.len(), "{name}");
            assert_eq!(decoded.len(), expected.len(), "{name}");
            if let Some(i) = decoded.iter().zip(&expected).position(|(a, b)| a != b) {
                panic!(
                    "{name}: first difference at sample {i}: {} vs {}",
                    decoded[i], expected[i]
                );
            }
        }
    }

    /// Power of `samples` at `frequency` (Goertzel), normalised by length.
    fn goertzel(samples: &[i16], frequency: f64, sample_rate: f64) -> f64 {
        let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / sample_rate).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s0 = f64::from(x) + coefficient * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / (samples.len() as f64).powi(2)
    }

    #[test]
    fn a_1khz_sine_decodes_to_1khz() {
        let decoded = decode_all(include_bytes!("../tests/data/sine1k.g722"));
        // Skip the first 20 ms while the quantiser adapts; 0.4 s is a whole number of periods.
        let steady = &decoded[320..320 + 6400];
        let at_1k = goertzel(steady, 1000.0, 16000.0);
        // A 0.5 full-scale sine has amplitude 16384: power (A/2)^2 at its bin.
        let expected = (16384.0f64 / 2.0).powi(2);
        assert!(
            (at_1k / expected - 1.0).abs() < 0.05,
            "power at 1 kHz {at_1k}, want {expected}"
        );
        for other in [250.0, 500.0, 2000.0, 3000.0, 4000.0, 6000.0, 7500.0] {
            let power = goertzel(steady, other, 16000.0);
            let db = 10.0 * (at_1k / power).log10();
            assert!(db > 40.0, "{other} Hz only {db:.1} dB below 1 kHz");
        }
    }

    #[test]
    fn packet_boundaries_do_not_matter() {
        let encoded = include_bytes!("../tests/data/sweep.g722");
        let whole = decode_all(encoded);
        for size in [1, 2, 3, 80, 160, 161, 999] {
            let mut decoder = G722Decoder::new();
            let mut out = Vec::new();
            for packet in encoded.chunks(size) {
                decoder.decode(packet, &mut out);
            }
            assert_eq!(out, whole, "packets of {size} bytes");
        }
    }

    #[test]
    fn any_input_decodes_without_panicking() {
        // xorshift64*: deterministic noise, plus runs of the extreme codes that drive the
        // scale factors and predictors to their limits.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut noise = || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        };
        let mut inputs: Vec<Vec<u8>> = vec![(0..1 << 20).map(|_| noise()).collect()];
        for byte in [0x00, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0, 0xFF, 0x04, 0x20] {
            inputs.push(vec![byte; 20_000]);
        }
        inputs.push(
            (0..40_000)
                .map(|i| if i % 2 == 0 { 0x04 } else { 0xE0 })
                .collect(),
        );
        for input in inputs {
            let mut decoder = G722Decoder::new();
            let mut out = Vec::new();
            decoder.decode(&input, &mut out);
            assert_eq!(out.len(), 2 * input.len());
            // The state never leaves the 16-bit ranges the arithmetic relies on.
            for band in [&decoder.low, &decoder.high] {
                let state = [band.s, band.sz, band.det, band.nb]
                    .into_iter()
                    .chain(band.a)
                    .chain(band.b)
                    .chain(band.d)
                    .chain(band.p)
                    .chain(band.r);
                for value in state {
                    assert!(
                        i16::try_from(value).is_ok(),
                        "{value} escaped the 16-bit range"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_input_appends_nothing() {
        let mut out = vec![7];
        G722Decoder::default().decode(&[], &mut out);
        assert_eq!(out, [7]);
    }
}
