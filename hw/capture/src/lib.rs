//! Packet sources for the recorder.
//!
//! - [`CaptureFile`] reads pcap and pcapng files (through the `pcap-file` crate), for
//!   `tapline record --pcap` and for replay.
//! - [`replay`] plays a capture file in a loop, in real time, as if it were arriving on the
//!   SPAN port: the demo runs on it, and so can a test rig with no switch.
//! - [`LiveCapture`] captures every frame on a network interface, the SPAN port itself,
//!   through a memory-mapped `AF_PACKET` ring.
//!
//! Every source yields [`Frame`]s: the link-layer bytes, the link type they are framed in, and
//! the time the frame was seen, which is the only clock the recorder's core uses.

mod file;
mod live;
mod replay;

pub use file::{CaptureError, CaptureFile};
pub use live::{LiveCapture, LiveError, LiveOptions, LiveStats};
pub use replay::{LOOP_GAP, replay};

use std::time::SystemTime;

/// One captured link-layer frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// When it was seen on the wire.
    pub timestamp: SystemTime,
    /// The pcap LINKTYPE_ value its bytes are framed in (1 = Ethernet, 113 = Linux SLL, ...).
    pub link_type: u32,
    /// The frame as captured (possibly cut short by the capture's snap length).
    pub data: &'a [u8],
}
