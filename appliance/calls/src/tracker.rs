//! The tracker: frames in, calls out.
//!
//! Drive it like this (capture time is the only clock):
//!
//! ```text
//! for each frame:  tracker.handle_frame(t, link_type, bytes)
//!                  while let Some(event) = tracker.poll_event() { ... }
//! every so often:  tracker.handle_timeout(t)   (t = latest capture time, or now when idle)
//!                  while let Some(event) = tracker.poll_event() { ... }
//! at the end:      tracker.finish(t)           (every open call ends)
//! ```
//!
//! A call is found by its SIP Call-ID. Its media is found through the SDP of its offers and
//! answers: an RTP packet sent *to* the address a party advertised carries the other party's
//! voice; one sent *from* it (symmetric RTP) carries that party's. Matching by destination
//! first means a phone behind NAT, whose source port differs from its SDP, is still matched.

use std::collections::{HashMap, VecDeque};

/// The maps looked up for every packet. foldhash, seeded per map from the process's random
/// state, hashes a socket address or a Call-ID several times faster than the standard
/// library's SipHash; the maps it serves are capped ([`MAX_CALLS`]), which bounds what
/// crafted collisions could cost.
type FastMap<K, V> = foldhash::HashMap<K, V>;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tapline_packet::stream::{Chunk, StreamKey, StreamReassembler};
use tapline_packet::{PacketError, ip, link, rtp, transport};
use tapline_sip::{message, sdp};

use crate::stream::{Codec, Stream, StreamStats, Verdict};
use crate::timeline::{Direction, Timeline};

/// Audio is held back this long before it is handed out, so that reordered packets still
/// land in place.
pub const JITTER_ALLOWANCE: Duration = Duration::from_millis(200);

/// An answered call with no SIP or RTP for this long is over (its BYE was lost, or the
/// mirror missed it).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// An INVITE that is neither answered nor refused within this long is forgotten.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// How often [`Tracker::handle_timeout`] has work to do.
pub const TICK: Duration = Duration::from_secs(1);

/// Calls tracked at once; beyond this, new INVITEs are counted and ignored so that a flood
/// cannot exhaust memory.
pub const MAX_CALLS: usize = 50_000;

/// Headers of an INVITE kept for metadata.
pub const MAX_KEPT_HEADERS: usize = 64;

/// SIP over TCP waiting for the rest of its message, per stream; a "message" longer than
/// this is not SIP worth waiting for.
pub const MAX_SIP_MESSAGE: usize = 64 * 1024;

/// What the tracker tells its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A call was answered: recording starts now.
    Answered(CallSummary),
    /// The next stretch of a call's audio: interleaved stereo frames at the call's rate, left
    /// the caller, right the callee, starting where the previous stretch ended.
    Audio { call: u64, samples: Vec<i16> },
    /// A call ended; no more events for it follow.
    Ended(CallSummary),
    /// An RTP packet of a call in a codec Tapline does not decode (G.729, say), as it was
    /// captured, so that it can be kept beside the recording and decoded later.
    RawMedia {
        call: u64,
        at: Duration,
        link_type: u32,
        frame: Vec<u8>,
    },
    /// A call that cannot be recorded passively (its media is encrypted), listed so that it
    /// is not silently missing.
    Unrecordable {
        summary: CallSummary,
        reason: &'static str,
    },
    /// A connection carrying SIP over TLS (to port [`SIPS_PORT`]) was first seen: the calls
    /// signalled on it cannot be followed passively, so none of them can be recorded. Given
    /// once per connection, so that they are listed rather than silently missing.
    EncryptedSignalling {
        client: SocketAddr,
        server: SocketAddr,
        at: Duration,
    },
}

/// The port of SIP over TLS (RFC 3261, `sips:`).
pub const SIPS_PORT: u16 = 5061;

/// TLS connections remembered at once; beyond this, the stalest is forgotten (and would be
/// listed again if it went on).
const MAX_TLS_CONNECTIONS: usize = 4096;

/// How long after a REFER an INVITE to its target is taken as the transferred call: RFC
/// 3515's transferee acts at once, and a REFER's own transaction times out after 32 s.
pub const TRANSFER_WINDOW: Duration = Duration::from_secs(32);

/// Blind transfers remembered at once; beyond this, the oldest is forgotten.
const MAX_PENDING_TRANSFERS: usize = 1024;

/// Everything known about a call, as of the event that carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    /// Unique within this tracker's life.
    pub id: u64,
    pub sip_call_id: String,
    pub caller: Party,
    pub callee: Party,
    /// The user part of the INVITE's Request-URI: the number dialled.
    pub dialled: Option<String>,
    pub invited_at: Duration,
    pub answered_at: Option<Duration>,
    pub ended_at: Option<Duration>,
    pub end_reason: Option<EndReason>,
    /// The call's sample rate (that of its widest codec).
    pub sample_rate: u32,
    /// Codec seen on each direction (caller's, callee's).
    pub codecs: [Option<String>; 2],
    pub streams: [StreamStats; 2],
    /// The INVITE's headers, in order (at most [`MAX_KEPT_HEADERS`]): metadata such as
    /// the queue or case id travels in them, and which header means what is configuration.
    pub invite_headers: Vec<(String, String)>,
    /// The Call-ID this call replaces (RFC 3891), linking the legs of an attended transfer.
    pub replaces: Option<String>,
    /// The Call-ID of the call whose REFER (without Replaces) sent this call to its target:
    /// a blind transfer's new leg. Its INVITE goes to the REFER's target within
    /// [`TRANSFER_WINDOW`]; when several wait for the same target, one that carries
    /// `Referred-By` is matched to the referrer named there, else to the latest REFER.
    pub transferred_from: Option<String>,
    /// Where this call was referred to (REFER), if it was transferred.
    pub referred_to: Option<String>,
    /// Times the call was put on hold after it was answered.
    pub holds: u32,
    /// Time spent on hold, up to the end of the call.
    pub on_hold: Duration,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Party {
    pub uri: String,
    /// The user part of the URI: usually the number.
    pub user: Option<String>,
    pub display_name: Option<String>,
    /// Where its SIP came from. The callee's is that of its latest message before the
    /// answer, so with a forked INVITE it is the phone that answered.
    pub signalling: Option<IpAddr>,
    /// Its Contact's host, when an address: the phone itself even when its SIP came
    /// through a proxy.
    pub contact: Option<IpAddr>,
    /// Where it receives audio, from its SDP (the latest before the answer).
    pub media: Option<IpAddr>,
    /// The Ethernet source address of its SIP, taken like `signalling`.
    pub mac: Option<link::Mac>,
}

impl Party {
    /// Each address the party was seen at, once: signalling, Contact, media.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut addresses = Vec::with_capacity(3);
        for ip in [self.signalling, self.contact, self.media]
            .into_iter()
            .flatten()
        {
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
        addresses
    }

    /// Notes where a message of this party came from.
    fn seen_at(&mut self, ip: IpAddr, contact: Option<&str>, mac: Option<link::Mac>) {
        self.signalling = Some(ip);
        if let Some(contact) = contact.and_then(message::host_ip) {
            self.contact = Some(contact);
        }
        if mac.is_some() {
            self.mac = mac;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    ByeFromCaller,
    ByeFromCallee,
    /// No SIP or RTP for [`IDLE_TIMEOUT`].
    Idle,
    /// The capture ended while the call was up.
    CaptureEnded,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ByeFromCaller => "bye from caller",
            EndReason::ByeFromCallee => "bye from callee",
            EndReason::Idle => "no signalling or media",
            EndReason::CaptureEnded => "capture ended",
        }
    }
}

/// Counts of everything seen, by kind; for metrics.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub frames: u64,
    pub sip_messages: u64,
    pub rtp_packets: u64,
    /// RTP to or from no known call.
    pub unmatched_udp: u64,
    /// RTP of a call that is not answered yet (early media).
    pub early_media_packets: u64,
    pub tcp_segments: u64,
    /// TCP segments of SIP over TLS, which cannot be read passively.
    pub tls_segments: u64,
    /// Frames or messages that could not be taken apart, by reason.
    pub malformed: HashMap<&'static str, u64>,
    pub calls_answered: u64,
    pub calls_unanswered: u64,
    pub calls_dropped_at_limit: u64,
}

impl Stats {
    fn malformed(&mut self, reason: &'static str) {
        *self.malformed.entry(reason).or_default() += 1;
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Tracker {
    calls: Calls,
    /// RTP address to (the call's slot in `calls`, the party that receives there).
    routes: FastMap<SocketAddr, (usize, Side)>,
    reassembler: ip::Reassembler,
    tcp: StreamReassembler,
    /// Bytes of SIP over TCP not yet framed into messages, per stream direction.
    sip_streams: FastMap<StreamKey, Vec<u8>>,
    /// SIP-over-TLS connections already listed, (client, server), with when each was last
    /// seen.
    tls_connections: FastMap<(SocketAddr, SocketAddr), Duration>,
    /// Blind transfers whose new call has not been seen yet, oldest first.
    pending_transfers: VecDeque<PendingTransfer>,
    events: VecDeque<Event>,
    next_id: u64,
    last_tick: Duration,
    /// Decoded samples of the packet at hand, and the same at the call's rate: reused.
    scratch: Vec<i16>,
    resampled: Vec<i16>,
    /// Audio buffers the driver gave back ([`Tracker::recycle_audio`]), reused for the next
    /// [`Event::Audio`]. Every open call is flushed at each tick; fresh buffers each time,
    /// freed together, made the allocator hand the memory back to the kernel and fault it in
    /// again a second later.
    spare_audio: Vec<Vec<i16>>,
    pub stats: Stats,
}

/// A REFER without Replaces, waiting for the INVITE it asked for.
#[derive(Debug)]
struct PendingTransfer {
    /// The referring call's Call-ID.
    call_id: String,
    /// The Refer-To URI's user: the number the transferee will call.
    target_user: String,
    /// The user of the REFER's sender (its From), which a `Referred-By` names.
    referrer_user: Option<String>,
    at: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Callee,
}

impl Side {
    /// The direction of the voice of a packet sent *to* this party.
    fn voice_towards(self) -> Direction {
        match self {
            Side::Caller => Direction::FromCallee,
            Side::Callee => Direction::FromCaller,
        }
    }

    /// The direction of this party's own voice.
    fn voice_of(self) -> Direction {
        match self {
            Side::Caller => Direction::FromCaller,
            Side::Callee => Direction::FromCallee,
        }
    }
}

#[derive(Debug)]
struct Call {
    summary: CallSummary,
    caller_tag: Option<String>,
    /// Payload-type maps from each party's SDP (caller's, callee's).
    payload_types: [Vec<(u8, Codec, u32)>; 2],
    routes: Vec<SocketAddr>,
    streams: [Stream; 2],
    timeline: Option<Timeline>,
    encrypted: bool,
    last_activity: Duration,
    /// Whether each party's latest SDP holds the call (caller's, callee's).
    holding: [bool; 2],
    /// When the current hold began, while the call is on hold.
    hold_started: Option<Duration>,
}

impl Call {
    /// Follows hold and resume through each party's SDP: the call is on hold while either
    /// party's latest description holds it. `None` (a `recvonly` answer accepting a hold)
    /// leaves that party's state as it was, so accepting a hold does not end it.
    fn note_hold(&mut self, sender: Side, holds: Option<bool>, now: Duration) {
        let Some(holds) = holds else {
            return;
        };
        let was_on_hold = self.holding.contains(&true);
        self.holding[sender as usize] = holds;
        let on_hold = self.holding.contains(&true);
        // Only the answered part of a call is recorded, so only it counts.
        if self.summary.answered_at.is_none() {
            return;
        }
        match (was_on_hold, on_hold) {
            (false, true) => {
                self.summary.holds += 1;
                self.hold_started = Some(now);
            }
            (true, false) => {
                if let Some(started) = self.hold_started.take() {
                    self.summary.on_hold += now.saturating_sub(started);
                }
            }
            _ => {}
        }
    }
}

/// The calls being tracked, found by Call-ID for SIP and by slot for RTP: a packet's route
/// leads straight to its call, without hashing and comparing the Call-ID again for every
/// packet. A slot is reused only after its call is forgotten, and forgetting a call removes
/// the routes that lead to it.
#[derive(Debug, Default)]
struct Calls {
    slots: Vec<Option<Call>>,
    free: Vec<usize>,
    by_call_id: FastMap<String, usize>,
}

impl Calls {
    fn len(&self) -> usize {
        self.by_call_id.len()
    }

    fn contains_key(&self, call_id: &str) -> bool {
        self.by_call_id.contains_key(call_id)
    }

    fn slot(&self, call_id: &str) -> Option<usize> {
        self.by_call_id.get(call_id).copied()
    }

    fn get(&self, call_id: &str) -> Option<&Call> {
        self.slots.get(self.slot(call_id)?)?.as_ref()
    }

    fn get_mut(&mut self, call_id: &str) -> Option<&mut Call> {
        let slot = self.slot(call_id)?;
        self.at_mut(slot)
    }

    fn at_mut(&mut self, slot: usize) -> Option<&mut Call> {
        self.slots.get_mut(slot)?.as_mut()
    }

    fn keys(&self) -> impl Iterator<Item = &String> {
        self.by_call_id.keys()
    }

    fn insert(&mut self, call_id: String, call: Call) {
        // Callers look first; a Call-ID inserted twice would replace its call, as in a map.
        self.remove(&call_id);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(call);
                slot
            }
            None => {
                self.slots.push(Some(call));
                self.slots.len() - 1
            }
        };
        self.by_call_id.insert(call_id, slot);
    }

    fn remove(&mut self, call_id: &str) -> Option<(usize, Call)> {
        let slot = self.by_call_id.remove(call_id)?;
        let call = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some((slot, call))
    }
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Takes in one captured frame, seen at `now` (capture time since the Unix epoch).
    pub fn handle_frame(&mut self, now: Duration, link_type: u32, frame: &[u8]) {
        self.stats.frames += 1;
        if let Err(err) = self.frame(now, link_type, frame) {
            self.stats.malformed(err.reason());
        }
        if now >= self.last_tick + TICK {
            self.handle_timeout(now);
        }
    }

    fn frame(&mut self, now: Duration, link_type: u32, frame: &[u8]) -> Result<(), PacketError> {
        let network = link::network(link_type, frame)?;
        let mac = network.source_mac;
        let packet = ip::parse(network.packet)?;
        let Some(payload) = self.reassembler.handle(now, &packet) else {
            return Ok(());
        };
        match packet.protocol {
            ip::PROTO_UDP => {
                let udp = transport::udp(&payload)?;
                let src = SocketAddr::new(packet.src, udp.src_port);
                let dst = SocketAddr::new(packet.dst, udp.dst_port);
                self.udp(now, (src, mac), dst, udp.payload, (link_type, frame));
                Ok(())
            }
            ip::PROTO_TCP => {
                let segment = transport::tcp(&payload)?;
                self.stats.tcp_segments += 1;
                let key = StreamKey {
                    src: SocketAddr::new(packet.src, segment.src_port),
                    dst: SocketAddr::new(packet.dst, segment.dst_port),
                };
                if is_tls_record(segment.payload)
                    && (segment.dst_port == SIPS_PORT || segment.src_port == SIPS_PORT)
                {
                    self.tls_segment(now, key);
                } else {
                    self.tcp_segment(now, key, mac, &segment);
                }
                Ok(())
            }
            other => Err(PacketError::NotUdpOrTcp(other)),
        }
    }

    /// `raw` is the frame as captured, kept for media that cannot be decoded.
    fn udp(
        &mut self,
        now: Duration,
        (src, mac): (SocketAddr, Option<link::Mac>),
        dst: SocketAddr,
        payload: &[u8],
        raw: (u32, &[u8]),
    ) {
        if looks_like_sip(payload) {
            self.sip(now, src, mac, payload);
        } else {
            self.rtp(now, src, dst, payload, raw);
        }
    }

    /// Ends calls that went quiet, forgets INVITEs nobody answered, hands out audio that has
    /// waited long enough. Call at least every [`TICK`] of capture time.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.last_tick = now;
        self.reassembler.expire(now);
        self.tcp.expire(now);
        let tcp = &self.tcp;
        self.sip_streams.retain(|key, _| tcp.contains(key));
        self.tls_connections
            .retain(|_, seen| now.saturating_sub(*seen) < IDLE_TIMEOUT);
        while self
            .pending_transfers
            .front()
            .is_some_and(|t| now.saturating_sub(t.at) > TRANSFER_WINDOW)
        {
            self.pending_transfers.pop_front();
        }
        // By slot, so that the usual case, audio handed out, copies no Call-ID; a call ended
        // here frees its slot, which no later slot of this loop can take.
        for slot in 0..self.calls.slots.len() {
            let Some(call) = self.calls.slots[slot].as_ref() else {
                continue;
            };
            let quiet = now.saturating_sub(call.last_activity);
            match call.summary.answered_at {
                Some(_) if quiet >= IDLE_TIMEOUT => {
                    let (id, end) = (call.summary.sip_call_id.clone(), call.last_activity);
                    self.end_call(&id, end, EndReason::Idle);
                }
                Some(_) => self.flush_slot(slot, now.saturating_sub(JITTER_ALLOWANCE)),
                None if quiet >= SETUP_TIMEOUT => {
                    let id = call.summary.sip_call_id.clone();
                    self.stats.calls_unanswered += 1;
                    self.forget(&id);
                }
                None => {}
            }
        }
    }

    /// Ends every open call at `now`: the capture is over.
    pub fn finish(&mut self, now: Duration) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            if self
                .calls
                .get(&id)
                .is_some_and(|c| c.summary.answered_at.is_some())
            {
                self.end_call(&id, now, EndReason::CaptureEnded);
            } else {
                self.stats.calls_unanswered += 1;
                self.forget(&id);
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, in capture time.
    pub fn poll_timeout(&self) -> Duration {
        self.last_tick + TICK
    }

    /// Calls being tracked (answered or not).
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// A segment of SIP over TLS: its connection is listed once, and its bytes are not kept.
    fn tls_segment(&mut self, now: Duration, key: StreamKey) {
        let (client, server) = if key.dst.port() == SIPS_PORT {
            (key.src, key.dst)
        } else {
            (key.dst, key.src)
        };
        self.stats.tls_segments += 1;
        if let Some(seen) = self.tls_connections.get_mut(&(client, server)) {
            *seen = now;
            return;
        }
        if self.tls_connections.len() >= MAX_TLS_CONNECTIONS
            && let Some(stalest) = self
                .tls_connections
                .iter()
                .min_by_key(|(_, seen)| **seen)
                .map(|(connection, _)| *connection)
        {
            self.tls_connections.remove(&stalest);
        }
        self.tls_connections.insert((client, server), now);
        self.events.push_back(Event::EncryptedSignalling {
            client,
            server,
            at: now,
        });
    }

    /// One TCP segment: its bytes join the stream, and every whole SIP message in the stream
    /// is handled. Streams that do not start like SIP are not buffered.
    fn tcp_segment(
        &mut self,
        now: Duration,
        key: StreamKey,
        mac: Option<link::Mac>,
        segment: &transport::Tcp<'_>,
    ) {
        let mut buffer = self.sip_streams.remove(&key).unwrap_or_default();
        let mut closed = false;
        self.tcp.handle(now, key, segment, |chunk| match chunk {
            Chunk::Data(bytes) => {
                if !buffer.is_empty() || looks_like_sip(bytes) {
                    buffer.extend_from_slice(bytes);
                }
            }
            // What follows a hole starts mid-message; resynchronise on the next start line.
            Chunk::Gap => buffer.clear(),
            Chunk::Closed => closed = true,
        });
        loop {
            match message::parse(&buffer) {
                Ok((message, consumed)) => {
                    self.sip_message(now, key.src, mac, &message);
                    buffer.drain(..consumed.min(buffer.len()));
                }
                Err(message::SipError::Incomplete { .. }) if buffer.len() <= MAX_SIP_MESSAGE => {
                    break;
                }
                Err(_) if buffer.is_empty() => break,
                Err(_) => {
                    self.stats.malformed("sip_stream");
                    let next = next_start_line(&buffer).unwrap_or(buffer.len());
                    buffer.drain(..next);
                }
            }
        }
        if !closed && !buffer.is_empty() {
            self.sip_streams.insert(key, buffer);
        }
    }

    fn sip(&mut self, now: Duration, src: SocketAddr, mac: Option<link::Mac>, data: &[u8]) {
        match message::parse(data) {
            Ok((message, _)) => self.sip_message(now, src, mac, &message),
            Err(_) => self.stats.malformed("sip"),
        }
    }

    /// `mac` is the Ethernet source address of the frame that completed the message.
    fn sip_message(
        &mut self,
        now: Duration,
        src: SocketAddr,
        mac: Option<link::Mac>,
        message: &message::Message<'_>,
    ) {
        self.stats.sip_messages += 1;
        let (Some(call_id), Some((_, cseq_method))) = (message.call_id(), message.cseq()) else {
            self.stats.malformed("sip_missing_call_id_or_cseq");
            return;
        };
        let call_id = call_id.to_owned();
        let from_tag = message.from().and_then(|f| f.tag.map(str::to_owned));
        let to_tag = message.to().and_then(|t| t.tag.map(str::to_owned));

        if let message::StartLine::Request { method, uri } = &message.start
            && *method == message::Method::Invite
            && to_tag.is_none()
            && !self.calls.contains_key(&call_id)
        {
            self.new_call(now, &call_id, (src, mac), uri, message, from_tag.clone());
        }
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        call.last_activity = now;
        // Who sent this message: a request comes from the party whose tag is in From; a
        // response from the other one.
        let from_caller = from_tag.is_some() && from_tag == call.caller_tag;
        let sender = match (&message.start, from_caller) {
            (message::StartLine::Request { .. }, true)
            | (message::StartLine::Response { .. }, false) => Side::Caller,
            _ => Side::Callee,
        };
        // Until the answer, the callee is whoever responds for it last: with a forked INVITE,
        // the phone that answers.
        if sender == Side::Callee
            && matches!(message.start, message::StartLine::Response { .. })
            && call.summary.answered_at.is_none()
        {
            call.summary
                .callee
                .seen_at(src.ip(), message.contact_uri(), mac);
        }

        if message.is_sdp() && !message.body.is_empty() {
            if let Ok(description) = sdp::parse(message.body) {
                self.apply_sdp(&call_id, sender, &description, now);
            } else {
                self.stats.malformed("sdp");
            }
        }

        match &message.start {
            message::StartLine::Response { code, .. } if cseq_method == message::Method::Invite => {
                let code = *code;
                let answered = self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| c.summary.answered_at.is_some());
                if (200..300).contains(&code) && !answered {
                    self.answer(&call_id, now);
                } else if code >= 300 && !answered {
                    self.stats.calls_unanswered += 1;
                    self.forget(&call_id);
                }
            }
            message::StartLine::Request {
                method: message::Method::Bye,
                ..
            } => {
                let answered = self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| c.summary.answered_at.is_some());
                if answered {
                    let reason = if sender == Side::Caller {
                        EndReason::ByeFromCaller
                    } else {
                        EndReason::ByeFromCallee
                    };
                    self.end_call(&call_id, now, reason);
                } else {
                    self.stats.calls_unanswered += 1;
                    self.forget(&call_id);
                }
            }
            message::StartLine::Request {
                method: message::Method::Cancel,
                ..
            } => {
                let answered = self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| c.summary.answered_at.is_some());
                if !answered {
                    self.stats.calls_unanswered += 1;
                    self.forget(&call_id);
                }
            }
            message::StartLine::Request {
                method: message::Method::Refer,
                ..
            } => {
                if let (Some(call), Some(target)) =
                    (self.calls.get_mut(&call_id), message.refer_to())
                {
                    // Without its URI headers: an attended transfer's carry the Replaces.
                    let uri = target.uri.split('?').next().unwrap_or(target.uri);
                    call.summary.referred_to = Some(uri.to_owned());
                    let blind = target.embedded_replaces().is_none();
                    if let (true, Some(target_user)) = (blind, message::user_part(target.uri)) {
                        let referrer_user = message
                            .from()
                            .and_then(|from| message::user_part(from.uri).map(str::to_owned));
                        self.note_transfer(PendingTransfer {
                            call_id: call_id.clone(),
                            target_user: target_user.to_owned(),
                            referrer_user,
                            at: now,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn new_call(
        &mut self,
        now: Duration,
        call_id: &str,
        (src, mac): (SocketAddr, Option<link::Mac>),
        request_uri: &str,
        invite: &message::Message<'_>,
        caller_tag: Option<String>,
    ) {
        if self.calls.len() >= MAX_CALLS {
            self.stats.calls_dropped_at_limit += 1;
            return;
        }
        let party = |addr: Option<message::NameAddr<'_>>| match addr {
            Some(a) => Party {
                uri: a.uri.to_owned(),
                user: message::user_part(a.uri).map(str::to_owned),
                display_name: a
                    .display_name
                    .as_deref()
                    .map(str::to_owned)
                    .filter(|n| !n.is_empty()),
                ..Party::default()
            },
            None => Party::default(),
        };
        let mut caller = party(invite.from());
        caller.seen_at(src.ip(), invite.contact_uri(), mac);
        let invite_headers = invite
            .fields()
            .take(MAX_KEPT_HEADERS)
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let transferred_from = match invite.replaces() {
            Some(_) => None,
            None => self.take_transfer(
                [
                    message::user_part(request_uri),
                    invite.to().and_then(|to| message::user_part(to.uri)),
                ],
                invite.header("Referred-By"),
                now,
            ),
        };
        self.next_id += 1;
        let summary = CallSummary {
            id: self.next_id,
            sip_call_id: call_id.to_owned(),
            caller,
            callee: party(invite.to()),
            dialled: message::user_part(request_uri).map(str::to_owned),
            invited_at: now,
            answered_at: None,
            ended_at: None,
            end_reason: None,
            sample_rate: 8000,
            codecs: [None, None],
            streams: [StreamStats::default(); 2],
            invite_headers,
            replaces: invite.replaces().map(|r| r.call_id.to_string()),
            transferred_from,
            referred_to: None,
            holds: 0,
            on_hold: Duration::ZERO,
        };
        self.calls.insert(
            call_id.to_owned(),
            Call {
                summary,
                caller_tag,
                payload_types: [Vec::new(), Vec::new()],
                routes: Vec::new(),
                streams: [Stream::default(), Stream::default()],
                timeline: None,
                encrypted: false,
                last_activity: now,
                holding: [false; 2],
                hold_started: None,
            },
        );
    }

    /// Records where `sender` wants to receive audio and what its payload types mean.
    fn apply_sdp(
        &mut self,
        call_id: &str,
        sender: Side,
        description: &sdp::SessionDescription<'_>,
        now: Duration,
    ) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(audio) = description
            .media
            .iter()
            .find(|m| m.kind.eq_ignore_ascii_case("audio"))
        else {
            return;
        };
        call.note_hold(sender, audio.hold_state(description), now);
        if audio.is_srtp() {
            call.encrypted = true;
        }
        let side_index = match sender {
            Side::Caller => 0,
            Side::Callee => 1,
        };
        call.payload_types[side_index] = audio
            .formats
            .iter()
            .filter_map(|&pt| {
                audio
                    .encoding(pt)
                    .map(|(name, rate)| (pt, Codec::from_name(name), rate))
            })
            .collect();
        if let Some(ip) = audio.effective_connection(description)
            && !ip.is_unspecified()
            && audio.port != 0
        {
            if call.summary.answered_at.is_none() {
                match sender {
                    Side::Caller => call.summary.caller.media = Some(ip),
                    Side::Callee => call.summary.callee.media = Some(ip),
                }
            }
            let addr = SocketAddr::new(ip, audio.port);
            if !call.routes.contains(&addr) {
                call.routes.push(addr);
            }
            if let Some(slot) = self.calls.slot(call_id) {
                self.routes.insert(addr, (slot, sender));
            }
        }
    }

    fn answer(&mut self, call_id: &str, now: Duration) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.summary.answered_at = Some(now);
        // The widest codec either party offered sets the recording's rate.
        let rate = call
            .payload_types
            .iter()
            .flatten()
            .filter_map(|(_, codec, _)| codec.sample_rate())
            .max()
            .unwrap_or(8000);
        call.summary.sample_rate = rate;
        call.timeline = Some(Timeline::new(rate));
        self.stats.calls_answered += 1;
        if call.encrypted {
            let summary = call.summary.clone();
            self.events.push_back(Event::Unrecordable {
                summary,
                reason: "media is encrypted (SRTP)",
            });
            self.forget(call_id);
            return;
        }
        self.events.push_back(Event::Answered(call.summary.clone()));
    }

    fn rtp(
        &mut self,
        now: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        data: &[u8],
        raw: (u32, &[u8]),
    ) {
        // Borrow the fields apart: the route leads to the call's slot, on this path that runs
        // for every packet.
        let Tracker {
            calls,
            routes,
            stats,
            scratch,
            resampled,
            events,
            ..
        } = self;
        // The source is looked up only when the destination is unknown: one lookup for
        // nearly every packet.
        let (slot, direction) = if let Some(&(slot, receiver)) = routes.get(&dst) {
            (slot, receiver.voice_towards())
        } else if let Some(&(slot, sender)) = routes.get(&src) {
            (slot, sender.voice_of())
        } else {
            stats.unmatched_udp += 1;
            return;
        };
        let packet = match rtp::parse(data) {
            Ok(packet) => packet,
            Err(err) => {
                stats.malformed(err.reason());
                return;
            }
        };
        stats.rtp_packets += 1;
        let Some(call) = calls.at_mut(slot) else {
            stats.unmatched_udp += 1;
            return;
        };
        call.last_activity = now;
        let Some(answered_at) = call.summary.answered_at else {
            stats.early_media_packets += 1;
            return;
        };
        let d = direction.index();
        // Payload types are those of the receiver's SDP; fall back on the sender's.
        let receiver = 1 - d;
        let mapping = call.payload_types[receiver]
            .iter()
            .chain(call.payload_types[d].iter())
            .find(|(pt, _, _)| *pt == packet.payload_type)
            .map(|(_, codec, clock)| (codec, *clock));
        let fallback;
        let (codec, clock_rate) = match mapping {
            Some(found) => found,
            None => match static_payload_type(packet.payload_type) {
                Some((codec, clock)) => {
                    fallback = codec;
                    (&fallback, clock)
                }
                None => {
                    stats.malformed("unknown_payload_type");
                    return;
                }
            },
        };
        let stream = &mut call.streams[d];
        let arrival = now.saturating_sub(answered_at).as_secs_f64();
        if let Verdict::Duplicate = stream.account(
            packet.ssrc,
            packet.sequence,
            packet.timestamp,
            clock_rate,
            arrival,
        ) {
            return;
        }
        let Some(codec_rate) = codec.sample_rate() else {
            stream.decode(codec, packet.payload, scratch);
            if let Codec::Other(_) = codec {
                // Nothing is lost: what cannot be decoded now is kept to be decoded later.
                stream.codec = Some(codec.clone());
                let (link_type, frame) = raw;
                events.push_back(Event::RawMedia {
                    call: call.summary.id,
                    at: now,
                    link_type,
                    frame: frame.to_vec(),
                });
            }
            return;
        };
        if stream.codec.as_ref() != Some(codec) {
            stream.codec = Some(codec.clone());
        }
        let Some(timeline) = call.timeline.as_mut() else {
            return;
        };
        scratch.clear();
        stream.decode(codec, packet.payload, scratch);
        let samples: &[i16] = if codec_rate == timeline.rate() {
            scratch
        } else {
            resample(scratch, codec_rate, timeline.rate(), resampled);
            resampled
        };
        let capture_position = position(now, answered_at, timeline.rate());
        timeline.place(
            direction,
            packet.ssrc,
            packet.timestamp,
            clock_rate,
            capture_position,
            samples,
        );
    }

    /// Hands out the call's audio up to capture time `until`.
    fn flush(&mut self, call_id: &str, until: Duration) {
        if let Some(slot) = self.calls.slot(call_id) {
            self.flush_slot(slot, until);
        }
    }

    /// Hands out the audio of the call in `slot` up to capture time `until`.
    fn flush_slot(&mut self, slot: usize, until: Duration) {
        let Some(call) = self.calls.at_mut(slot) else {
            return;
        };
        let (Some(answered_at), Some(timeline)) =
            (call.summary.answered_at, call.timeline.as_mut())
        else {
            return;
        };
        let mut samples = self.spare_audio.pop().unwrap_or_default();
        samples.clear();
        timeline.take_until(position(until, answered_at, timeline.rate()), &mut samples);
        if samples.is_empty() {
            self.spare_audio.push(samples);
        } else {
            self.events.push_back(Event::Audio {
                call: call.summary.id,
                samples,
            });
        }
    }

    /// Takes back the buffer of an [`Event::Audio`] once its samples are written, to carry
    /// later audio. Optional: a driver that keeps its buffers loses only the reuse. At most
    /// one buffer per open call is kept, so the spares shrink with the calls.
    pub fn recycle_audio(&mut self, samples: Vec<i16>) {
        if self.spare_audio.len() <= self.calls.len() {
            self.spare_audio.push(samples);
        }
    }

    fn end_call(&mut self, call_id: &str, at: Duration, reason: EndReason) {
        self.flush(call_id, at);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.summary.ended_at = Some(at);
        call.summary.end_reason = Some(reason);
        if let Some(started) = call.hold_started.take() {
            call.summary.on_hold += at.saturating_sub(started);
        }
        for (d, stream) in call.streams.iter().enumerate() {
            let mut stats = stream.stats;
            stats.lost = stream.lost();
            call.summary.streams[d] = stats;
            call.summary.codecs[d] = stream.codec.as_ref().map(|c| c.name().to_owned());
        }
        self.events.push_back(Event::Ended(call.summary.clone()));
        self.forget(call_id);
    }

    /// Remembers a blind transfer until its new call is seen or [`TRANSFER_WINDOW`] passes.
    fn note_transfer(&mut self, transfer: PendingTransfer) {
        if self.pending_transfers.len() >= MAX_PENDING_TRANSFERS {
            self.pending_transfers.pop_front();
        }
        self.pending_transfers.push_back(transfer);
    }

    /// The Call-ID of the call that referred a new INVITE addressed to one of `targets`, if
    /// such a transfer waits: the one its `Referred-By` names, else the latest.
    fn take_transfer(
        &mut self,
        targets: [Option<&str>; 2],
        referred_by: Option<&str>,
        now: Duration,
    ) -> Option<String> {
        let referrer = referred_by
            .and_then(message::NameAddr::parse)
            .and_then(|address| message::user_part(address.uri).map(str::to_owned));
        let waiting = |transfer: &PendingTransfer| {
            now.saturating_sub(transfer.at) <= TRANSFER_WINDOW
                && targets
                    .iter()
                    .flatten()
                    .any(|user| *user == transfer.target_user)
        };
        let named = |transfer: &PendingTransfer| {
            referrer.is_some() && transfer.referrer_user == referrer && waiting(transfer)
        };
        let position = self
            .pending_transfers
            .iter()
            .rposition(named)
            .or_else(|| self.pending_transfers.iter().rposition(waiting))?;
        self.pending_transfers
            .remove(position)
            .map(|transfer| transfer.call_id)
    }

    fn forget(&mut self, call_id: &str) {
        if let Some((slot, call)) = self.calls.remove(call_id) {
            for addr in call.routes {
                if self.routes.get(&addr).is_some_and(|(to, _)| *to == slot) {
                    self.routes.remove(&addr);
                }
            }
        }
    }
}

/// Whether a TCP payload starts with a TLS record header: a content type from
/// change_cipher_spec (20) to application_data (23) and a 3.x protocol version.
fn is_tls_record(payload: &[u8]) -> bool {
    matches!(payload, [20..=23, 3, 0..=4, ..]) && payload.len() >= 5
}

/// A SIP message starts with a method token and a space, or with "SIP/2.0 "; RTP starts with
/// version bits 10, which no method's first letter has. (Leading CRLF keep-alives are SIP.)
fn looks_like_sip(payload: &[u8]) -> bool {
    let trimmed = payload
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(&[][..], |i| &payload[i..]);
    trimmed.starts_with(b"SIP/2.0 ")
        || trimmed
            .iter()
            .take(17)
            .position(|&b| b == b' ')
            .is_some_and(|space| space > 0 && trimmed[..space].iter().all(u8::is_ascii_uppercase))
}

/// Where the next SIP start line begins in `buffer` (after its first byte), if anywhere.
fn next_start_line(buffer: &[u8]) -> Option<usize> {
    buffer
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .find(|&start| looks_like_sip(&buffer[start..]) && !buffer[start..].starts_with(b"\r"))
}

/// RFC 3551's static payload types for the codecs we know.
fn static_payload_type(pt: u8) -> Option<(Codec, u32)> {
    match pt {
        0 => Some((Codec::Pcmu, 8000)),
        8 => Some((Codec::Pcma, 8000)),
        9 => Some((Codec::G722, 8000)),
        13 => Some((Codec::ComfortNoise, 8000)),
        18 => Some((Codec::Other("G729".to_owned()), 8000)),
        _ => None,
    }
}

/// Samples since the answer, at `rate`, for capture time `at`.
fn position(at: Duration, answered_at: Duration, rate: u32) -> i64 {
    let since = at.as_nanos() as i128 - answered_at.as_nanos() as i128;
    (since * i128::from(rate) / 1_000_000_000) as i64
}

/// Linear resampling between the two rates we mix (8 and 16 kHz), into `out`.
fn resample(samples: &[i16], from: u32, to: u32, out: &mut Vec<i16>) {
    out.clear();
    if samples.is_empty() {
        return;
    }
    let out_len = samples.len() * to as usize / from as usize;
    out.extend((0..out_len).map(|i| {
        let exact = i as f64 * f64::from(from) / f64::from(to);
        let left = exact.floor() as usize;
        let frac = exact - left as f64;
        let a = f64::from(samples[left.min(samples.len() - 1)]);
        let b = f64::from(samples[(left + 1).min(samples.len() - 1)]);
        (a + (b - a) * frac).round() as i16
    }));
}
