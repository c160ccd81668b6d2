//! Inputs for the never-panic tests: every prefix of each sample (a stream cut anywhere), every
//! sample with one byte corrupted, and random byte strings built mostly from SIP and SDP
//! syntax so that they get past the first line. The fuzz targets go further; these run on
//! every `cargo test`.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Bytes that steer random inputs into the parsers' interesting paths.
const PIECES: &[&[u8]] = &[
    b"SIP/2.0",
    b"SIP/2.0 200 OK",
    b"INVITE sip:a@b SIP/2.0",
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"=",
    b"<",
    b">",
    b"\"",
    b"\\",
    b"%",
    b"%3B",
    b"?",
    b"&",
    b"@",
    b"/",
    b"[",
    b"]",
    b"0",
    b"65535",
    b"99999999999999999999",
    b"sip:",
    b"tel:",
    b"Via: SIP/2.0/UDP h;branch=",
    b"Content-Length: ",
    b"l:",
    b"i:",
    b"f:",
    b"Refer-To: <sip:x?Replaces=",
    b"Replaces: ",
    b";to-tag=",
    b";from-tag=",
    b";tag=",
    b"Content-Type: application/sdp",
    b"v=0",
    b"o=- 1 1 IN IP4 ",
    b"c=IN IP4 ",
    b"c=IN IP6 ::",
    b"m=audio ",
    b" RTP/SAVP ",
    b"a=rtpmap:",
    b"a=rtcp:",
    b"a=crypto:",
    b"a=sendonly",
    b"/8000/2",
    b"\xff",
    b"\xe9",
    b"\0",
];

/// Runs `parse` on every derived input, reporting the input that made it panic.
pub(crate) fn assert_never_panics(samples: &[&[u8]], parse: impl Fn(&[u8])) {
    let run = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| parse(input))).is_err() {
            panic!("panicked on input {:?}", input.escape_ascii().to_string());
        }
    };
    for sample in samples {
        for end in 0..=sample.len() {
            run(&sample[..end]);
        }
        for at in 0..sample.len() {
            for replacement in [0x00, 0xFF, b':', b'\n'] {
                let mut corrupted = sample.to_vec();
                corrupted[at] = replacement;
                run(&corrupted);
            }
        }
    }
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..5000 {
        run(&random_input(&mut random, samples));
    }
}

/// Up to 64 pieces: syntax fragments, single random bytes, or slices of the samples.
fn random_input(random: &mut XorShift, samples: &[&[u8]]) -> Vec<u8> {
    let mut input = Vec::new();
    for _ in 0..random.below(64) {
        match random.below(4) {
            0 => input.push(random.next() as u8),
            1 if !samples.is_empty() => {
                let sample = samples[random.below(samples.len())];
                let start = random.below(sample.len() + 1);
                let end = start + random.below(sample.len() - start + 1);
                input.extend_from_slice(&sample[start..end]);
            }
            _ => input.extend_from_slice(PIECES[random.below(PIECES.len())]),
        }
    }
    input
}

/// Marsaglia's xorshift64: deterministic, so a failure reproduces on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}
