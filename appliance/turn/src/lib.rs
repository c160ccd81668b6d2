//! The sans-IO core of Tapline's STUN/TURN relay, which lets live-monitoring media cross
//! NAT: bytes, client and peer addresses and the time go in; replies, relay actions and
//! accounting events come out.
//!
//! - [`stun`]: STUN messages (RFC 8489, RFC 5389 compatible): decoding, encoding,
//!   MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256, FINGERPRINT, long-term keys.
//! - [`framing`]: ChannelData and cutting a TCP stream into frames.
//! - [`auth`]: static users, the TURN REST API scheme, stateless nonces, the 401 budget.
//! - [`policy`]: which peers may be reached, after normalising IPv6 spellings of IPv4.
//! - [`ports`]: which relayed port an allocation gets.
//! - [`allocation`]: permissions, channels, bandwidth and the end-of-allocation summary.
//! - [`server`]: the state machine; its module docs show the drive loop.
//!
//! The drive loop, in short: `handle_client`, `handle_peer_data`, `handle_timeout` (and
//! `handle_relay_failed`, `handle_wall_clock`, `finish`, and for TCP allocations
//! `handle_peer_connection`, `handle_peer_connected`, `handle_peer_connect_failed`,
//! `handle_connection_bytes`) take input; `poll_action`,
//! `poll_event` and `poll_timeout` say what to send, what happened and when to wake.
//!
//! **Invariant:** no I/O, no clock, no randomness but the [`entropy::Entropy`] passed in. The
//! same inputs give the same outputs.
//!
//! **Invariant:** no input panics the core or grows it without bound: allocations, their
//! permissions and channels are capped by configuration, unauthenticated requests keep no
//! state, and the 401 budget lives in a fixed table.
//!
//! TCP allocations (RFC 6062) are decided here too: Connect, ConnectionAttempt and
//! ConnectionBind hand out CONNECTION-IDs and ask the shell to dial, accept and pipe.
//!
//! Not here yet: ICMP attributes.

pub mod allocation;
pub mod auth;
pub mod entropy;
pub mod framing;
pub mod policy;
pub mod ports;
pub mod server;
pub mod shell;
pub mod stun;

pub use allocation::{AllocationId, EndReason, FiveTuple, Flow, Summary, Transport};
pub use auth::{Credentials, StaticUser};
pub use entropy::{Entropy, SeededEntropy};
pub use policy::{Network, PeerPolicy, Refusal};
pub use ports::{PortParity, PortPool, RelayPorts};
pub use server::{Action, Bandwidth, ConnectionId, Event, Server, ServerConfig, Stats};
