//! Session descriptions (RFC 8866, formerly RFC 4566) as used in offer/answer (RFC 3264): where
//! each side wants its media, in which codecs, and whether it is on hold.
//!
//! Only what a recorder needs is read: origin, connection addresses, media lines, `rtpmap`,
//! `rtcp`, `crypto` and the direction attributes. Every other line is skipped, as are lines
//! that do not parse (an `rtpmap` without a clock rate, a `c=` naming a host instead of an
//! address), except media lines: RFC 3264 pairs offer and answer streams by their position, so
//! a media line that cannot be read makes the whole description unreadable rather than
//! silently shifting every stream after it.

use std::net::IpAddr;

/// Reads a session description, typically the body of an INVITE, a 183 or 200 response, an ACK
/// or an UPDATE.
pub fn parse(body: &[u8]) -> Result<SessionDescription<'_>, SdpError> {
    let mut session = SessionDescription {
        origin: None,
        connection: None,
        direction: Direction::SendRecv,
        media: Vec::new(),
    };
    let mut looks_like_sdp = false;
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let Some((kind, value)) = split_line(raw) else {
            continue;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            if kind == b'm' {
                return Err(SdpError::BadMediaLine { line: index + 1 });
            }
            continue;
        };
        let value = value.trim();
        match (kind, session.media.last_mut()) {
            (b'v', _) => looks_like_sdp = true,
            (b'o', None) => {
                looks_like_sdp = true;
                session.origin = session.origin.or_else(|| Origin::parse(value));
            }
            (b'm', _) => {
                looks_like_sdp = true;
                let media =
                    Media::parse(value).ok_or(SdpError::BadMediaLine { line: index + 1 })?;
                session.media.push(media);
            }
            (b'c', None) => session.connection = session.connection.or(parse_connection(value)),
            (b'c', Some(media)) => media.connection = media.connection.or(parse_connection(value)),
            (b'a', None) => {
                if let Some(direction) = Direction::from_attribute(value) {
                    session.direction = direction;
                }
            }
            (b'a', Some(media)) => media.apply_attribute(value),
            _ => {}
        }
    }
    if looks_like_sdp {
        Ok(session)
    } else {
        Err(SdpError::NotSdp)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription<'a> {
    pub origin: Option<Origin<'a>>,
    /// The session-level `c=`, used by media that have none of their own.
    pub connection: Option<IpAddr>,
    /// The session-level direction attribute, used by media that have none of their own.
    pub direction: Direction,
    /// In the order written, which is how an answer's media pair with the offer's.
    pub media: Vec<Media<'a>>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub username: &'a str,
    pub session_id: &'a str,
    /// Changes whenever the description does. Kept as text: devices write numbers wider than
    /// 64 bits, and equality is what tells a changed re-offer from a repeated one.
    pub session_version: &'a str,
    pub address: &'a str,
}

impl<'a> Origin<'a> {
    fn parse(value: &'a str) -> Option<Self> {
        let mut fields = value.split_whitespace();
        let username = fields.next()?;
        let session_id = fields.next()?;
        let session_version = fields.next()?;
        let address = fields.nth(2)?;
        Some(Origin {
            username,
            session_id,
            session_version,
            address,
        })
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// `audio`, `video`, `image` (T.38 fax), `application`, ...
    pub kind: &'a str,
    /// 0 means the stream is rejected or disabled; it is kept so positions still pair up.
    pub port: u16,
    /// From `port/count`; 1 when absent.
    pub port_count: u16,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, `udptl`, ...
    pub proto: &'a str,
    /// RTP payload types in order of preference. Formats that are not a number up to 255 are
    /// skipped.
    pub formats: Vec<u8>,
    /// The media-level `c=`, if any; see [`Media::effective_connection`].
    pub connection: Option<IpAddr>,
    pub rtpmap: Vec<RtpMap<'a>>,
    /// The media-level direction attribute, if any; see [`Media::effective_direction`].
    pub direction: Option<Direction>,
    /// From `a=rtcp:` (RFC 3605), when RTCP is not on the port after RTP.
    pub rtcp_port: Option<u16>,
    /// Whether an `a=crypto:` line (SDES, RFC 4568) is present.
    pub crypto: bool,
}

impl<'a> Media<'a> {
    /// `m=<media> <port>[/<count>] <proto> <fmt> ...`.
    fn parse(value: &'a str) -> Option<Self> {
        let mut fields = value.split_whitespace();
        let kind = fields.next()?;
        let port = fields.next()?;
        let (port, port_count) = match port.split_once('/') {
            Some((port, count)) => (port.parse().ok()?, count.parse().unwrap_or(1)),
            None => (port.parse().ok()?, 1),
        };
        let proto = fields.next()?;
        Some(Media {
            kind,
            port,
            port_count,
            proto,
            formats: fields.filter_map(|format| format.parse().ok()).collect(),
            connection: None,
            rtpmap: Vec::new(),
            direction: None,
            rtcp_port: None,
            crypto: false,
        })
    }

    fn apply_attribute(&mut self, attribute: &'a str) {
        if let Some(direction) = Direction::from_attribute(attribute) {
            self.direction = Some(direction);
            return;
        }
        let Some((name, value)) = attribute.split_once(':') else {
            return;
        };
        let value = value.trim();
        match name.trim() {
            name if name.eq_ignore_ascii_case("rtpmap") => {
                self.rtpmap.extend(RtpMap::parse(value));
            }
            name if name.eq_ignore_ascii_case("rtcp") => {
                let port = value.split_whitespace().next().and_then(|p| p.parse().ok());
                self.rtcp_port = self.rtcp_port.or(port);
            }
            name if name.eq_ignore_ascii_case("crypto") => self.crypto = true,
            _ => {}
        }
    }

    /// Where this stream's media goes: its own `c=`, else the session's.
    pub fn effective_connection(&self, session: &SessionDescription<'_>) -> Option<IpAddr> {
        self.connection.or(session.connection)
    }

    /// This stream's direction: its own attribute, else the session's.
    pub fn effective_direction(&self, session: &SessionDescription<'_>) -> Direction {
        self.direction.unwrap_or(session.direction)
    }

    /// Whether the sender of this description is putting the stream on hold: `sendonly` or
    /// `inactive` (RFC 3264 section 8.4), or the RFC 2543 way of a connection address of
    /// 0.0.0.0 (or `::`). `recvonly` is not a hold: it is how an answer accepts one.
    pub fn is_on_hold(&self, session: &SessionDescription<'_>) -> bool {
        matches!(
            self.effective_direction(session),
            Direction::SendOnly | Direction::Inactive
        ) || self
            .effective_connection(session)
            .is_some_and(|address| address.is_unspecified())
    }

    /// What this description says about hold: `Some(true)` when it holds the stream
    /// ([`Self::is_on_hold`]), `Some(false)` when it sends and receives, and `None` for
    /// `recvonly`, which answers a hold rather than starting or ending one.
    pub fn hold_state(&self, session: &SessionDescription<'_>) -> Option<bool> {
        if self.is_on_hold(session) {
            Some(true)
        } else if self.effective_direction(session) == Direction::RecvOnly {
            None
        } else {
            Some(false)
        }
    }

    /// The encoding name and RTP clock rate of a payload type: from this stream's `rtpmap`,
    /// else from the static assignments of RFC 3551. Dynamic types (96-127) without an
    /// `rtpmap` are unknown.
    pub fn encoding(&self, payload_type: u8) -> Option<(&'a str, u32)> {
        self.rtpmap
            .iter()
            .find(|map| map.payload_type == payload_type)
            .map(|map| (map.encoding, map.clock_rate))
            .or_else(|| static_encoding(payload_type))
    }

    /// The first payload type offered for `encoding`, compared case-insensitively: for
    /// example, which type carries `telephone-event` (DTMF, RFC 4733).
    pub fn payload_type_for(&self, encoding: &str) -> Option<u8> {
        self.formats.iter().copied().find(|&payload_type| {
            self.encoding(payload_type)
                .is_some_and(|(name, _)| name.eq_ignore_ascii_case(encoding))
        })
    }

    /// Whether the stream is SRTP, so its payload cannot be decoded without keys: a secure
    /// profile (`RTP/SAVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVP`) or SDES keys in `a=crypto`.
    pub fn is_srtp(&self) -> bool {
        self.crypto
            || self.proto.split('/').any(|part| {
                part.get(..4)
                    .is_some_and(|start| start.eq_ignore_ascii_case("SAVP"))
            })
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpMap<'a> {
    pub payload_type: u8,
    /// As written; compare with [`RtpMap::encoding_is`], since case varies between devices.
    pub encoding: &'a str,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

impl<'a> RtpMap<'a> {
    fn parse(value: &'a str) -> Option<Self> {
        let (payload_type, format) = value.split_once(|c: char| c.is_ascii_whitespace())?;
        let mut parts = format.trim().split('/').map(str::trim);
        let encoding = parts.next().filter(|name| !name.is_empty())?;
        Some(RtpMap {
            payload_type: payload_type.parse().ok()?,
            encoding,
            clock_rate: parts.next()?.parse().ok()?,
            channels: parts.next().and_then(|channels| channels.parse().ok()),
        })
    }

    /// Whether this maps to `encoding`, compared case-insensitively (`PCMU`, `pcmu`).
    pub fn encoding_is(&self, encoding: &str) -> bool {
        self.encoding.eq_ignore_ascii_case(encoding)
    }
}

/// Which way media flows, from the point of view of whoever wrote the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_attribute(attribute: &str) -> Option<Self> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|direction| direction.as_str().eq_ignore_ascii_case(attribute.trim()))
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// Why a body could not be read as a session description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("not a session description: no v=, o= or m= line")]
    NotSdp,
    /// Numbered from 1, counting every line of the body.
    #[error("malformed SDP media description on line {line}")]
    BadMediaLine { line: usize },
}

/// `<type>=<value>`, tolerating whitespace around the `=` and a CR before the line end.
fn split_line(line: &[u8]) -> Option<(u8, &[u8])> {
    let line = line.trim_ascii();
    let (&kind, rest) = line.split_first()?;
    let value = rest.trim_ascii_start().strip_prefix(b"=")?;
    Some((kind.to_ascii_lowercase(), value))
}

/// `c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`. A host name in place of an address
/// (allowed, but not seen from real devices) reads as no address.
fn parse_connection(value: &str) -> Option<IpAddr> {
    let address = value.split_whitespace().nth(2)?;
    let address = address.split('/').next()?;
    let address = address.trim_start_matches('[').trim_end_matches(']');
    address.parse().ok()
}

/// Payload types assigned statically by RFC 3551 section 6. G722 is sampled at 16 kHz, but
/// its RTP clock runs at 8000 Hz for historical reasons.
fn static_encoding(payload_type: u8) -> Option<(&'static str, u32)> {
    Some(match payload_type {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        25 => ("CelB", 90000),
        26 => ("JPEG", 90000),
        28 => ("nv", 90000),
        31 => ("H261", 90000),
        32 => ("MPV", 90000),
        33 => ("MP2T", 90000),
        34 => ("H263", 90000),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::robustness::assert_never_panics;

    /// Parses `input` and compares a dump of what was read, including what each stream
    /// inherits from the session, with `expect`, line by line, ignoring indentation.
    #[track_caller]
    fn check(input: impl AsRef<[u8]>, expect: &str) {
        let actual = render(input.as_ref());
        let actual: Vec<&str> = actual.lines().map(str::trim).collect();
        let expect: Vec<&str> = expect
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        assert_eq!(actual, expect, "\nactual:\n{}\n", actual.join("\n"));
    }

    fn render(input: &[u8]) -> String {
        let session = match parse(input) {
            Ok(session) => session,
            Err(error) => return format!("error: {error}"),
        };
        let mut out = String::new();
        if let Some(Origin {
            username,
            session_id,
            session_version,
            address,
        }) = session.origin
        {
            writeln!(
                out,
                "origin {username} {session_id} {session_version} {address}"
            )
            .unwrap();
        }
        let connection =
            |address: Option<IpAddr>| address.map_or("-".to_owned(), |a| a.to_string());
        writeln!(
            out,
            "session c={} {}",
            connection(session.connection),
            session.direction.as_str()
        )
        .unwrap();
        for media in &session.media {
            let own_direction = media.direction.map_or("-", |d| d.as_str());
            writeln!(
                out,
                "m={} {}/{} {} {:?} c={} {own_direction}",
                media.kind,
                media.port,
                media.port_count,
                media.proto,
                media.formats,
                connection(media.connection),
            )
            .unwrap();
            for map in &media.rtpmap {
                let channels = map.channels.map_or(String::new(), |c| format!("/{c}"));
                writeln!(
                    out,
                    "  rtpmap {} {}/{}{channels}",
                    map.payload_type, map.encoding, map.clock_rate
                )
                .unwrap();
                assert!(map.encoding_is(&map.encoding.to_ascii_uppercase()));
            }
            let mut flags = Vec::new();
            if let Some(port) = media.rtcp_port {
                flags.push(format!("rtcp={port}"));
            }
            if media.is_on_hold(&session) {
                flags.push("hold".to_owned());
            }
            if media.is_srtp() {
                flags.push("srtp".to_owned());
            }
            if let Some(dtmf) = media.payload_type_for("telephone-event") {
                flags.push(format!("dtmf={dtmf}"));
            }
            writeln!(
                out,
                "  effective c={} {} {}",
                connection(media.effective_connection(&session)),
                media.effective_direction(&session).as_str(),
                flags.join(" ")
            )
            .unwrap();
            for &payload_type in &media.formats {
                match media.encoding(payload_type) {
                    Some((name, rate)) => writeln!(out, "  pt {payload_type} {name}/{rate}"),
                    None => writeln!(out, "  pt {payload_type} unknown"),
                }
                .unwrap();
            }
        }
        out
    }

    const OFFER: &str = "\
v=0\r
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r
s=-\r
c=IN IP4 192.0.2.10\r
t=0 0\r
m=audio 49170 RTP/AVP 96 9 0 8 101\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 useinbandfec=1\r
a=rtpmap:9 G722/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=rtcp:49171\r
a=ptime:20\r
a=sendrecv\r
";

    #[test]
    fn an_offer_with_dynamic_and_static_payload_types() {
        check(
            OFFER,
            "
            origin alice 2890844526 2890844526 192.0.2.10
            session c=192.0.2.10 sendrecv
            m=audio 49170/1 RTP/AVP [96, 9, 0, 8, 101] c=- sendrecv
              rtpmap 96 opus/48000/2
              rtpmap 9 G722/8000
              rtpmap 101 telephone-event/8000
              effective c=192.0.2.10 sendrecv rtcp=49171 dtmf=101
              pt 96 opus/48000
              pt 9 G722/8000
              pt 0 PCMU/8000
              pt 8 PCMA/8000
              pt 101 telephone-event/8000
            ",
        );
    }

    #[test]
    fn holds() {
        check(
            "v=0\nc=IN IP4 192.0.2.10\nm=audio 4000 RTP/AVP 0\na=sendonly\n",
            "
            session c=192.0.2.10 sendrecv
            m=audio 4000/1 RTP/AVP [0] c=- sendonly
              effective c=192.0.2.10 sendonly hold
              pt 0 PCMU/8000
            ",
        );
        check(
            "v=0\nc=IN IP4 192.0.2.10\na=inactive\nm=audio 4000 RTP/AVP 0\n",
            "
            session c=192.0.2.10 inactive
            m=audio 4000/1 RTP/AVP [0] c=- -
              effective c=192.0.2.10 inactive hold
              pt 0 PCMU/8000
            ",
        );
        // RFC 2543 hold: no direction at all, but nowhere to send to.
        check(
            "v=0\nc=IN IP4 0.0.0.0\nm=audio 4000 RTP/AVP 8\n",
            "
            session c=0.0.0.0 sendrecv
            m=audio 4000/1 RTP/AVP [8] c=- -
              effective c=0.0.0.0 sendrecv hold
              pt 8 PCMA/8000
            ",
        );
        // The answer to a hold is recvonly, which is not itself a hold.
        check(
            "v=0\nc=IN IP4 192.0.2.10\nm=audio 4000 RTP/AVP 0\na=recvonly\n",
            "
            session c=192.0.2.10 sendrecv
            m=audio 4000/1 RTP/AVP [0] c=- recvonly
              effective c=192.0.2.10 recvonly
              pt 0 PCMU/8000
            ",
        );
    }

    #[test]
    fn media_level_overrides_session_level() {
        check(
            "\
v=0
o=- 1 2 IN IP4 pbx.example.com
c=IN IP4 192.0.2.1/127
a=sendonly
m=audio 4000 RTP/AVP 0
c=IN IP4 192.0.2.2
a=sendrecv
m=video 4002/2 RTP/AVP 31 34
m=audio 4004 RTP/AVP 18
c=IN IP4 0.0.0.0
",
            "
            origin - 1 2 pbx.example.com
            session c=192.0.2.1 sendonly
            m=audio 4000/1 RTP/AVP [0] c=192.0.2.2 sendrecv
              effective c=192.0.2.2 sendrecv
              pt 0 PCMU/8000
            m=video 4002/2 RTP/AVP [31, 34] c=- -
              effective c=192.0.2.1 sendonly hold
              pt 31 H261/90000
              pt 34 H263/90000
            m=audio 4004/1 RTP/AVP [18] c=0.0.0.0 -
              effective c=0.0.0.0 sendonly hold
              pt 18 G729/8000
            ",
        );
    }

    #[test]
    fn srtp() {
        check(
            "\
v=0\r
c=IN IP6 2001:db8::10\r
m=audio 5004 RTP/SAVP 0\r
m=audio 5006 RTP/AVP 0\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r
m=audio 5008 UDP/TLS/RTP/SAVPF 111\r
a=rtpmap:111 OPUS/48000/2\r
m=audio 5010 RTP/AVP 0\r
",
            "
            session c=2001:db8::10 sendrecv
            m=audio 5004/1 RTP/SAVP [0] c=- -
              effective c=2001:db8::10 sendrecv srtp
              pt 0 PCMU/8000
            m=audio 5006/1 RTP/AVP [0] c=- -
              effective c=2001:db8::10 sendrecv srtp
              pt 0 PCMU/8000
            m=audio 5008/1 UDP/TLS/RTP/SAVPF [111] c=- -
              rtpmap 111 OPUS/48000/2
              effective c=2001:db8::10 sendrecv srtp
              pt 111 OPUS/48000
            m=audio 5010/1 RTP/AVP [0] c=- -
              effective c=2001:db8::10 sendrecv
              pt 0 PCMU/8000
            ",
        );
    }

    #[test]
    fn leniency() {
        // No v=, odd spacing and case, unknown and broken lines, IPv6 in brackets, formats
        // that are not payload types, a rejected stream.
        check(
            "\
o=user 1 1 IN IP6 ::1
 c = IN IP6 [2001:db8::1]
x=unknown line
not a line at all
m=audio 6000 RTP/AVP 0 98 101 300 abc
A=RTPMAP:98  iLBC / 8000 \n\
a=rtpmap:101 telephone-event
a=rtpmap:abc PCMU/8000
a=rtpmap:99
a=rtcp:notaport
a=SENDONLY
m=image 0 udptl t38
m=application 7000/x UDP/BFCP *
",
            "
            origin user 1 1 ::1
            session c=2001:db8::1 sendrecv
            m=audio 6000/1 RTP/AVP [0, 98, 101] c=- sendonly
              rtpmap 98 iLBC/8000
              effective c=2001:db8::1 sendonly hold
              pt 0 PCMU/8000
              pt 98 iLBC/8000
              pt 101 unknown
            m=image 0/1 udptl [] c=- -
              effective c=2001:db8::1 sendrecv
            m=application 7000/1 UDP/BFCP [] c=- -
              effective c=2001:db8::1 sendrecv
            ",
        );
        check(
            "v=0\nc=IN IP4 pbx.example.com\nm=audio 4000 RTP/AVP 0\n",
            "
            session c=- sendrecv
            m=audio 4000/1 RTP/AVP [0] c=- -
              effective c=- sendrecv
              pt 0 PCMU/8000
            ",
        );
    }

    #[test]
    fn unreadable_descriptions() {
        for (input, expect) in [
            ("", "error: not a session description: no v=, o= or m= line"),
            (
                "hello\r\nworld",
                "error: not a session description: no v=, o= or m= line",
            ),
            (
                "s=-\nc=IN IP4 192.0.2.1\n",
                "error: not a session description: no v=, o= or m= line",
            ),
            (
                "v=0\nm=audio\n",
                "error: malformed SDP media description on line 2",
            ),
            (
                "v=0\nm=audio 70000 RTP/AVP 0\n",
                "error: malformed SDP media description on line 2",
            ),
            (
                "v=0\r\n\r\nm=audio x RTP/AVP 0\r\n",
                "error: malformed SDP media description on line 3",
            ),
        ] {
            check(input, expect);
        }
        check(
            b"v=0\nm=audio 4000 RTP/AVP 0\nm=audio \xff 0\n",
            "error: malformed SDP media description on line 3",
        );
        // Text that is not UTF-8 elsewhere is only skipped.
        check(
            b"v=0\ns=Caf\xe9\nm=audio 4000 RTP/AVP 0\n",
            "
            session c=- sendrecv
            m=audio 4000/1 RTP/AVP [0] c=- -
              effective c=- sendrecv
              pt 0 PCMU/8000
            ",
        );
    }

    #[test]
    fn never_panics() {
        let samples: Vec<&[u8]> = [
            OFFER,
            "v=0\nc=IN IP6 2001:db8::1/3\nm=audio 4000/2 RTP/SAVP 0 101\na=crypto:1 x\na=rtcp:4001 IN IP4 192.0.2.1\na=inactive\n",
        ]
        .map(str::as_bytes)
        .to_vec();
        assert_never_panics(&samples, |data| {
            let _ = render(data);
        });
    }
}
