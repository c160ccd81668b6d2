//! SIP (RFC 3261) and SDP (RFC 8866) parsing for passive call recording.
//!
//! Tapline never takes part in a call: it watches a copy of the traffic on a SPAN port and
//! rebuilds each call from what the PBXs and phones said to each other. It cannot ask a peer
//! to resend or refuse a malformed message, so these parsers accept what real devices send
//! (bare LF line ends, odd header casing, compact header names, folded lines, a missing
//! `Content-Length` over UDP, a missing `v=` line) instead of what the RFCs strictly allow.
//! A message the phones could understand should not become a lost recording here.
//!
//! [`message::parse`] frames and reads one SIP message; [`sdp::parse`] reads a session
//! description, usually the body of such a message. Both are pure functions from bytes to
//! values: no I/O, no clock, no state between calls. Values borrow from the input and copy
//! only where the text has to be rewritten (an unfolded header line, a lossy UTF-8
//! conversion, a percent-decoded URI header).
//!
//! **Invariant:** no input makes either parser panic, loop without progress or allocate more
//! than a small multiple of the input's size. Every byte here comes off the wire from devices
//! we do not control, so a panic would be a remote crash of the recorder. The unit tests feed
//! every prefix and many corruptions of the sample messages and thousands of random inputs;
//! `fuzz/` holds the cargo-fuzz targets for longer runs.

pub mod message;
pub mod sdp;

#[cfg(test)]
mod robustness;

pub use message::{Message, Method, NameAddr, Replaces, SipError, StartLine, host_ip, user_part};
pub use sdp::{Direction, Media, Origin, RtpMap, SdpError, SessionDescription};
