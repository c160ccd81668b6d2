//! Frames of made-up but well-formed calls: Ethernet, IPv4, UDP, SIP with SDP, and RTP
//! carrying G.711 µ-law tones. Tests use them to check the tracker, and benchmarks to build
//! captures of thousands of concurrent calls.

use std::net::{Ipv4Addr, SocketAddrV4};

use tapline_media::g711;

/// One end of a made-up call.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub sip: SocketAddrV4,
    pub rtp: SocketAddrV4,
    pub user: &'static str,
}

/// The messages and media of one call between `caller` and `callee`.
#[derive(Debug, Clone)]
pub struct Call {
    pub call_id: String,
    pub caller: Endpoint,
    pub callee: Endpoint,
    pub caller_tag: String,
    pub callee_tag: String,
    /// Extra header lines for the INVITE, e.g. `X-Queue-Name: Sales`.
    pub invite_headers: Vec<String>,
}

impl Call {
    pub fn new(call_id: &str, caller: Endpoint, callee: Endpoint) -> Call {
        Call {
            call_id: call_id.to_owned(),
            caller,
            callee,
            caller_tag: format!("{call_id}-a"),
            callee_tag: format!("{call_id}-b"),
            invite_headers: Vec::new(),
        }
    }

    fn sdp(&self, at: Endpoint, direction: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na={direction}\r\n",
            ip = at.rtp.ip(),
            port = at.rtp.port()
        )
    }

    fn message(
        &self,
        start: &str,
        cseq: &str,
        to_tag: bool,
        extra: &[String],
        body: &str,
    ) -> Vec<u8> {
        let to_tag = if to_tag {
            format!(";tag={}", self.callee_tag)
        } else {
            String::new()
        };
        let mut text = format!(
            "{start}\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-{cid}-{cseq_n}\r\n\
             From: <sip:{caller}@{caller_host}>;tag={ftag}\r\nTo: <sip:{callee}@{callee_host}>{to_tag}\r\n\
             Call-ID: {cid}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n",
            via = self.caller.sip,
            cid = self.call_id,
            cseq_n = cseq.split(' ').next().unwrap_or("1"),
            caller = self.caller.user,
            caller_host = self.caller.sip.ip(),
            ftag = self.caller_tag,
            callee = self.callee.user,
            callee_host = self.callee.sip.ip(),
        );
        for line in extra {
            text.push_str(line);
            text.push_str("\r\n");
        }
        if !body.is_empty() {
            text.push_str("Content-Type: application/sdp\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text.into_bytes()
    }

    /// The INVITE, with the caller's SDP offer.
    pub fn invite(&self) -> Vec<u8> {
        let start = format!(
            "INVITE sip:{}@{} SIP/2.0",
            self.callee.user,
            self.callee.sip.ip()
        );
        let sdp = self.sdp(self.caller, "sendrecv");
        self.message(&start, "1 INVITE", false, &self.invite_headers, &sdp)
    }

    pub fn ringing(&self) -> Vec<u8> {
        self.message("SIP/2.0 180 Ringing", "1 INVITE", true, &[], "")
    }

    /// 183 Session Progress with the callee's SDP: early media (ringback, announcements) is
    /// about to flow.
    pub fn session_progress(&self) -> Vec<u8> {
        self.message(
            "SIP/2.0 183 Session Progress",
            "1 INVITE",
            true,
            &[],
            &self.sdp(self.callee, "sendrecv"),
        )
    }

    /// A 200 OK without a body, as after a 183 that already carried the answer.
    pub fn ok_without_sdp(&self) -> Vec<u8> {
        self.message("SIP/2.0 200 OK", "1 INVITE", true, &[], "")
    }

    /// The 200 OK, with the callee's SDP answer.
    pub fn ok(&self) -> Vec<u8> {
        self.message(
            "SIP/2.0 200 OK",
            "1 INVITE",
            true,
            &[],
            &self.sdp(self.callee, "sendrecv"),
        )
    }

    pub fn ack(&self) -> Vec<u8> {
        let start = format!(
            "ACK sip:{}@{} SIP/2.0",
            self.callee.user,
            self.callee.sip.ip()
        );
        self.message(&start, "1 ACK", true, &[], "")
    }

    /// A re-INVITE from the caller putting the call on hold (`a=sendonly`).
    pub fn hold(&self) -> Vec<u8> {
        let start = format!(
            "INVITE sip:{}@{} SIP/2.0",
            self.callee.user,
            self.callee.sip.ip()
        );
        self.message(
            &start,
            "2 INVITE",
            true,
            &[],
            &self.sdp(self.caller, "sendonly"),
        )
    }

    /// The callee's 200 OK accepting the hold (`a=recvonly`).
    pub fn hold_accepted(&self) -> Vec<u8> {
        self.message(
            "SIP/2.0 200 OK",
            "2 INVITE",
            true,
            &[],
            &self.sdp(self.callee, "recvonly"),
        )
    }

    /// A re-INVITE from the caller taking the call off hold (`a=sendrecv`).
    pub fn resume(&self) -> Vec<u8> {
        let start = format!(
            "INVITE sip:{}@{} SIP/2.0",
            self.callee.user,
            self.callee.sip.ip()
        );
        self.message(
            &start,
            "4 INVITE",
            true,
            &[],
            &self.sdp(self.caller, "sendrecv"),
        )
    }

    /// The callee's 200 OK to the resume.
    pub fn resume_accepted(&self) -> Vec<u8> {
        self.message(
            "SIP/2.0 200 OK",
            "4 INVITE",
            true,
            &[],
            &self.sdp(self.callee, "sendrecv"),
        )
    }

    /// A REFER in this dialog asking the other party to call `target` instead; with
    /// `replaces`, an attended transfer onto that dialog (RFC 3891, escaped into the URI).
    pub fn refer(&self, target: &str, replaces: Option<&Call>) -> Vec<u8> {
        let refer_to = match replaces {
            Some(other) => format!(
                "Refer-To: <{target}?Replaces={}%3Bto-tag%3D{}%3Bfrom-tag%3D{}>",
                other.call_id, other.callee_tag, other.caller_tag
            ),
            None => format!("Refer-To: <{target}>"),
        };
        let start = format!(
            "REFER sip:{}@{} SIP/2.0",
            self.caller.user,
            self.caller.sip.ip()
        );
        self.message(&start, "5 REFER", true, &[refer_to], "")
    }

    pub fn bye_from_caller(&self) -> Vec<u8> {
        let start = format!(
            "BYE sip:{}@{} SIP/2.0",
            self.callee.user,
            self.callee.sip.ip()
        );
        self.message(&start, "3 BYE", true, &[], "")
    }
}

/// 20 ms of a µ-law sine at `hz`, starting at sample `start` (so packets join without clicks).
pub fn ulaw_tone(hz: f64, start: u64, samples: usize) -> Vec<u8> {
    (0..samples)
        .map(|i| {
            let t = (start + i as u64) as f64 / 8000.0;
            let value = (t * hz * std::f64::consts::TAU).sin() * 8000.0;
            g711::linear_to_ulaw(value as i16)
        })
        .collect()
}

/// An RTP packet (version 2, no extensions).
pub fn rtp(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12 + payload.len());
    packet.extend_from_slice(&[0x80, payload_type]);
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// An Ethernet frame carrying an IPv4/UDP datagram from `src` to `dst`.
pub fn udp_frame(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(42 + payload.len());
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    frame.extend_from_slice(&ipv4_header(
        *src.ip(),
        *dst.ip(),
        8 + payload.len(),
        0,
        false,
        0,
    ));
    frame.extend_from_slice(&src.port().to_be_bytes());
    frame.extend_from_slice(&dst.port().to_be_bytes());
    frame.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// An Ethernet frame carrying an IPv4/TCP segment (PSH+ACK) with sequence number `seq`.
pub fn tcp_frame(src: SocketAddrV4, dst: SocketAddrV4, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(54 + payload.len());
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let mut ip = ipv4_header(*src.ip(), *dst.ip(), 20 + payload.len(), 0, false, 0);
    ip[9] = 6;
    // The checksum covered the UDP protocol number; recompute it for TCP.
    ip[10..12].copy_from_slice(&[0, 0]);
    let checksum = header_checksum(&ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&src.port().to_be_bytes());
    frame.extend_from_slice(&dst.port().to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// The same datagram as [`udp_frame`], cut into IPv4 fragments of at most `mtu` bytes.
pub fn fragmented_udp_frames(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
    mtu: usize,
    id: u16,
) -> Vec<Vec<u8>> {
    let mut datagram = Vec::with_capacity(8 + payload.len());
    datagram.extend_from_slice(&src.port().to_be_bytes());
    datagram.extend_from_slice(&dst.port().to_be_bytes());
    datagram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    let chunk = (mtu.saturating_sub(20) / 8).max(1) * 8;
    datagram
        .chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let offset = i * chunk;
            let more = offset + piece.len() < datagram.len();
            let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
            frame.extend_from_slice(&ipv4_header(
                *src.ip(),
                *dst.ip(),
                piece.len(),
                offset,
                more,
                id,
            ));
            frame.extend_from_slice(piece);
            frame
        })
        .collect()
}

fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: usize,
    offset: usize,
    more: bool,
    id: u16,
) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let field = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&field.to_be_bytes());
    h[8] = 64;
    h[9] = 17;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let checksum = header_checksum(&h);
    h[10..12].copy_from_slice(&checksum.to_be_bytes());
    h
}

/// The IPv4 header checksum (RFC 791), over a header whose checksum field is zero.
fn header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}
