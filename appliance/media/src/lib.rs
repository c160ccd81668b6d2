//! Audio codecs and the WAV format of Tapline's recordings.
//!
//! - [`g711`]: G.711 µ-law and A-law, both ways, by table.
//! - [`g722`]: the G.722 decoder (64 kbit/s), 8 kHz of RTP timestamps to 16 kHz of PCM.
//! - [`opus`]: Opus decoded by the reference libopus, mono at 48 kHz, with loss concealment
//!   for packets it refuses.
//! - [`wav`]: [`WavWriter`], which writes a recording while the call runs, and [`repair`],
//!   which makes a file left open by a crash valid again at start-up.
//!
//! **Architecture Invariant:** the codecs are pure functions of their input and state: no I/O,
//! no clock, no allocation beyond the output buffer.
//!
//! **Architecture Invariant:** no input makes a decoder panic or misbehave: every byte
//! sequence is a valid G.711 or G.722 stream, the G.722 state stays within the 16-bit
//! ranges of the Recommendation whatever it is fed, and an Opus packet libopus refuses is
//! concealed.
//!
//! **Architecture Invariant:** a recording's WAV header is valid after every
//! [`WavWriter::sync_header`]: a reader, or a crash, at any moment after a sync sees a
//! well-formed file holding all audio up to that sync.

pub mod g711;
pub mod g722;
pub mod opus;
pub mod wav;

pub use g711::{
    ALAW_SILENCE, ULAW_SILENCE, alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear,
};
pub use g722::G722Decoder;
pub use opus::{OPUS_RATE, OpusDecoder};
pub use wav::{
    RepairOutcome, SampleFormat, WavError, WavInfo, WavSpec, WavWriter, read_info, repair,
};
