//! Rebuilding calls from what a SPAN port mirrors: the sans-IO core of the recorder.
//!
//! Input is a captured frame and the time it was captured; output is [`Event`]s: a call was
//! answered, here is its next stretch of stereo audio, a call ended (with everything known
//! about it). The same core serves live capture, `tapline record --pcap` and the benchmarks,
//! so a capture file always replays to the same recordings.
//!
//! - [`tracker`]: SIP dialogs and their SDP, RTP matched to calls, the drive loop.
//! - `stream`: one direction's accounting (loss, jitter, duplicates, SSRC changes) and decoding.
//! - `timeline`: both directions laid on the call's clock, gaps filled with silence.
//! - [`synth`]: frames of made-up calls, for tests and benchmarks.
//!
//! **Architecture Invariant:** the core does no I/O and reads no clock; the capture time of
//! each frame is the only time it knows.
//!
//! **Architecture Invariant:** no input panics the core or grows it without bound: calls,
//! fragments and buffered audio are all capped.

mod stream;
pub mod synth;
mod timeline;
pub mod tracker;

pub use stream::{Codec, StreamStats};
pub use timeline::Direction;
pub use tracker::{CallSummary, EndReason, Event, Party, Stats, Tracker};
