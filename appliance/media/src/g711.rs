//! ITU-T G.711: µ-law and A-law companding between 8-bit codes and 16-bit linear PCM.
//!
//! Decoding reads a 256-entry table built at compile time, so it is one load per sample and
//! cannot fail. The tables follow the classic reference decoders: µ-law gives the 14-bit
//! reconstruction levels scaled to 16 bits (0x00 → -32124, 0xFF → 0), A-law the 13-bit levels
//! scaled to 16 bits (0xD5 → 8, 0x55 → -8).
//!
//! Encoding follows the ITU-T G.191 reference (STL) encoders: negative samples are coded from
//! their one's complement, so the two halves of the code space are exact mirror images
//! (`encode(!x) == encode(x) ^ 0x80`) and every decoded value encodes back to its own code.

/// The µ-law code for zero. Used to fill gaps in a µ-law recording.
pub const ULAW_SILENCE: u8 = 0xFF;
/// The A-law code for the smallest positive level. Used to fill gaps in an A-law recording.
pub const ALAW_SILENCE: u8 = 0xD5;

/// Decodes one µ-law code to 16-bit linear PCM.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    ULAW_TABLE[usize::from(byte)]
}

/// Decodes one A-law code to 16-bit linear PCM.
pub fn alaw_to_linear(byte: u8) -> i16 {
    ALAW_TABLE[usize::from(byte)]
}

/// Encodes one 16-bit linear sample to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // The 14-bit magnitude, taken from the one's complement for negative samples so that the
    // code space is symmetric. Code bytes are stored inverted; the sign bit set means positive.
    let (magnitude, mask) = if sample >= 0 {
        (i32::from(sample) >> 2, 0xFF)
    } else {
        (i32::from(!sample) >> 2, 0x7F)
    };
    // The bias moves the segment boundaries to powers of two; clamping to the top of the last
    // segment saturates overloads to the largest code.
    let biased = (magnitude + ULAW_BIAS_14).min(0x1FFF);
    let segment = segment_of(biased, &ULAW_SEGMENT_ENDS);
    let step = (biased >> (segment + 1)) & 0x0F;
    // Both values are under 16, so the code fits in seven bits.
    let code = ((segment << 4) | step) as u8;
    code ^ mask
}

/// Encodes one 16-bit linear sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    // The 13-bit magnitude, from the one's complement for negative samples (A-law has no
    // zero level: the smallest levels are ±8). Even bits are inverted on the line (0x55).
    let (magnitude, mask) = if sample >= 0 {
        (i32::from(sample) >> 3, 0xD5)
    } else {
        (i32::from(!sample) >> 3, 0x55)
    };
    let segment = segment_of(magnitude, &ALAW_SEGMENT_ENDS);
    // The first two segments share one step size.
    let step = (magnitude >> segment.max(1)) & 0x0F;
    // Segment is at most 7 because a 13-bit magnitude is at most 0xFFF.
    let code = ((segment << 4) | step) as u8;
    code ^ mask
}

/// The 16-bit bias of the µ-law reference decoder (33 in 14-bit units, shifted by two).
const ULAW_BIAS: i32 = 0x84;
/// The same bias in the 14-bit units the encoder works in.
const ULAW_BIAS_14: i32 = ULAW_BIAS >> 2;

/// Upper bounds of the eight µ-law segments, on the biased 14-bit magnitude.
const ULAW_SEGMENT_ENDS: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper bounds of the eight A-law segments, on the 13-bit magnitude.
const ALAW_SEGMENT_ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// The index of the first segment whose end is at or above `value`; 7 for anything larger,
/// which callers prevent by clamping.
fn segment_of(value: i32, ends: &[i32; 8]) -> i32 {
    let mut segment = 0;
    while segment < 7 && value > ends[segment as usize] {
        segment += 1;
    }
    segment
}

static ULAW_TABLE: [i16; 256] = build_ulaw_table();
static ALAW_TABLE: [i16; 256] = build_alaw_table();

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode(i as u8);
        i += 1;
    }
    table
}

/// The reference µ-law expansion: step bits and segment of the inverted code give a biased
/// magnitude, from which the bias is removed.
const fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let magnitude = ((((u & 0x0F) as i32) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    // At most (15 * 8 + 132) << 7 = 32256, so the result fits in i16.
    if u & 0x80 != 0 {
        (ULAW_BIAS - magnitude) as i16
    } else {
        (magnitude - ULAW_BIAS) as i16
    }
}

/// The reference A-law expansion: the level is the middle of the quantisation interval.
const fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let step = ((a & 0x0F) as i32) << 4;
    let magnitude = match (a & 0x70) >> 4 {
        0 => step + 8,
        1 => step + 0x108,
        segment => (step + 0x108) << (segment - 1),
    };
    // At most (240 + 264) << 6 = 32256, so the result fits in i16.
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// µ-law expansion written the way ITU-T G.191 describes it, from exponent and mantissa
    /// with an explicit step size, independent of the table builder above.
    fn g191_ulaw_expand(code: u8) -> i16 {
        let sign = if code < 0x80 { -1 } else { 1 };
        let inverted = i32::from(!code);
        let exponent = (inverted >> 4) & 0x07;
        let mantissa = inverted & 0x0F;
        let step = 4 << (exponent + 1);
        let value = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
        i16::try_from(sign * value).unwrap()
    }

    /// A-law expansion as in ITU-T G.191: the mantissa gains the implicit leading one above
    /// segment zero, then moves to the middle of its interval.
    fn g191_alaw_expand(code: u8) -> i16 {
        let ix = i32::from(code ^ 0x55) & 0x7F;
        let exponent = ix >> 4;
        let mut mantissa = ix & 0x0F;
        if exponent > 0 {
            mantissa += 16;
        }
        mantissa = (mantissa << 4) + 8;
        if exponent > 1 {
            mantissa <<= exponent - 1;
        }
        i16::try_from(if code > 127 { mantissa } else { -mantissa }).unwrap()
    }

    /// µ-law compression as in ITU-T G.191, counting the segment by shifting.
    fn g191_ulaw_compress(sample: i16) -> u8 {
        let magnitude = if sample < 0 { !sample } else { sample };
        let absno = ((i32::from(magnitude) >> 2) + 33).min(0x1FFF);
        let mut i = absno >> 6;
        let mut segno = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high = 8 - segno;
        let low = 0x0F - ((absno >> segno) & 0x0F);
        let code = u8::try_from((high << 4) | low).unwrap();
        if sample >= 0 { code | 0x80 } else { code }
    }

    /// A-law compression as in ITU-T G.191, normalising the 12-bit magnitude by shifting.
    fn g191_alaw_compress(sample: i16) -> u8 {
        let magnitude = if sample < 0 { !sample } else { sample };
        let mut ix = i32::from(magnitude) >> 4;
        if ix > 15 {
            let mut exponent = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                exponent += 1;
            }
            ix -= 16;
            ix += exponent << 4;
        }
        if sample >= 0 {
            ix |= 0x80;
        }
        u8::try_from(ix ^ 0x55).unwrap()
    }

    fn all_codes() -> impl Iterator<Item = u8> {
        0..=u8::MAX
    }

    fn all_samples() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    #[test]
    fn decoders_match_the_g191_formulas_for_every_code() {
        for code in all_codes() {
            assert_eq!(
                ulaw_to_linear(code),
                g191_ulaw_expand(code),
                "µ-law {code:#04x}"
            );
            assert_eq!(
                alaw_to_linear(code),
                g191_alaw_expand(code),
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn encoders_match_the_g191_formulas_for_every_sample() {
        for sample in all_samples() {
            assert_eq!(
                linear_to_ulaw(sample),
                g191_ulaw_compress(sample),
                "µ-law {sample}"
            );
            assert_eq!(
                linear_to_alaw(sample),
                g191_alaw_compress(sample),
                "A-law {sample}"
            );
        }
    }

    #[test]
    fn known_values() {
        // (code, µ-law level, A-law level)
        let decode_cases: &[(u8, i16, i16)] = &[
            (0x00, -32124, -5504),
            (0x7F, 0, -848),
            (0x7E, -8, -880),
            (0x80, 32124, 5504),
            (0xFF, 0, 848),
            (0xD5, 716, 8),
            (0x55, -716, -8),
            (0xAA, 5372, 32256),
            (0x2A, -5372, -32256),
        ];
        for &(code, ulaw, alaw) in decode_cases {
            assert_eq!(ulaw_to_linear(code), ulaw, "µ-law {code:#04x}");
            assert_eq!(alaw_to_linear(code), alaw, "A-law {code:#04x}");
        }

        // (sample, µ-law code, A-law code)
        let encode_cases: &[(i16, u8, u8)] = &[
            (0, 0xFF, 0xD5),
            (-1, 0x7F, 0x55),
            (1, 0xFF, 0xD5),
            (8, 0xFE, 0xD5),
            (-9, 0x7E, 0x55),
            (16, 0xFD, 0xD4),
            (i16::MAX, 0x80, 0xAA),
            (i16::MIN, 0x00, 0x2A),
            (32124, 0x80, 0xAA),
            (-32124, 0x00, 0x2A),
        ];
        for &(sample, ulaw, alaw) in encode_cases {
            assert_eq!(linear_to_ulaw(sample), ulaw, "µ-law {sample}");
            assert_eq!(linear_to_alaw(sample), alaw, "A-law {sample}");
        }

        assert_eq!(ulaw_to_linear(ULAW_SILENCE), 0);
        assert_eq!(alaw_to_linear(ALAW_SILENCE), 8);
    }

    #[test]
    fn every_level_encodes_back_to_itself() {
        for code in all_codes() {
            let level = ulaw_to_linear(code);
            assert_eq!(
                ulaw_to_linear(linear_to_ulaw(level)),
                level,
                "µ-law {code:#04x}"
            );
            let level = alaw_to_linear(code);
            assert_eq!(
                alaw_to_linear(linear_to_alaw(level)),
                level,
                "A-law {code:#04x}"
            );
        }
        // The only µ-law code that is not its own image is negative zero.
        for code in all_codes().filter(|&c| c != 0x7F) {
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(code)),
                code,
                "µ-law {code:#04x}"
            );
        }
        for code in all_codes() {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn encoders_are_symmetric_and_monotonic() {
        let mut previous = (i16::MIN, i16::MIN);
        for sample in all_samples() {
            assert_eq!(
                linear_to_ulaw(!sample),
                linear_to_ulaw(sample) ^ 0x80,
                "{sample}"
            );
            assert_eq!(
                linear_to_alaw(!sample),
                linear_to_alaw(sample) ^ 0x80,
                "{sample}"
            );
            let levels = (
                ulaw_to_linear(linear_to_ulaw(sample)),
                alaw_to_linear(linear_to_alaw(sample)),
            );
            assert!(levels.0 >= previous.0 && levels.1 >= previous.1, "{sample}");
            previous = levels;
        }
    }

    #[test]
    fn quantisation_error_is_at_most_half_a_step() {
        // Step sizes grow with the segment; below the overload point the decoded level is
        // never further than half a step from the input.
        for sample in all_samples() {
            let x = i32::from(sample);
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(sample)));
            let ulaw_step = if x.abs() < 32124 {
                ulaw_step_at(u)
            } else {
                i32::MAX
            };
            assert!((u - x).abs() <= ulaw_step / 2, "µ-law {sample} -> {u}");
            let a = i32::from(alaw_to_linear(linear_to_alaw(sample)));
            let alaw_step = if x.abs() < 32256 {
                alaw_step_at(a)
            } else {
                i32::MAX
            };
            assert!((a - x).abs() <= alaw_step / 2, "A-law {sample} -> {a}");
        }
    }

    /// The distance between neighbouring µ-law levels around `level`.
    fn ulaw_step_at(level: i32) -> i32 {
        let magnitude = level.abs() + ULAW_BIAS;
        8 << (31 - magnitude.leading_zeros()).saturating_sub(7)
    }

    /// The distance between neighbouring A-law levels around `level`.
    fn alaw_step_at(level: i32) -> i32 {
        let magnitude = level.abs();
        16 << (31 - magnitude.leading_zeros()).saturating_sub(8)
    }
}
