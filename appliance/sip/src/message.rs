//! SIP messages (RFC 3261) as captured off the wire: framing, the start line, and the header
//! fields a call recorder reads.
//!
//! [`parse`] finds where a message ends, so one function serves both transports: over UDP the
//! input is one datagram, over TCP it is whatever the stream has delivered so far and
//! [`SipError::Incomplete`] means "wait for more".
//!
//! Header values are unfolded and trimmed. They borrow from the input unless they had to be
//! rewritten: a folded value is joined into one line, and bytes that are not UTF-8 (a Latin-1
//! display name from an old phone, say) are replaced with U+FFFD rather than refused, so that
//! one odd byte does not cost the whole call. The start line is the exception: a method or
//! Request-URI that is not UTF-8 is refused, and a reason phrase is cut where its valid
//! UTF-8 ends.

use std::borrow::Cow;
use std::fmt;

mod address;

pub use address::{NameAddr, Replaces, host_ip, user_part};

/// The most header fields one message may have. Real messages carry a few dozen; the cap
/// bounds what a hostile or broken sender can make the recorder hold per message.
pub const MAX_HEADERS: usize = 256;

/// Reads one SIP message from the start of `data`.
///
/// Returns the message and the number of bytes it took, including any empty keep-alive lines
/// before it, so that a stream reader can continue after it. When `Content-Length` is present
/// it decides where the body ends; without it the body is the rest of `data`, which is right
/// for a UDP datagram (RFC 3261 section 18.3 makes the header mandatory only on streams).
pub fn parse(data: &[u8]) -> Result<(Message<'_>, usize), SipError> {
    let mut lines = Lines {
        data,
        pos: skip_keep_alives(data),
    };
    let start = parse_start_line(lines.next().ok_or(SipError::Incomplete { needed: 1 })?)?;
    let headers = parse_headers(&mut lines)?;
    let rest = data.get(lines.pos..).unwrap_or_default();
    let body = match header_value(&headers, "Content-Length") {
        None => rest,
        Some(value) => {
            let length = parse_content_length(value)?;
            rest.get(..length).ok_or_else(|| SipError::Incomplete {
                needed: length - rest.len(),
            })?
        }
    };
    let consumed = lines.pos + body.len();
    let message = Message {
        start,
        headers,
        body,
    };
    Ok((message, consumed))
}

/// One SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub start: StartLine<'a>,
    /// Each field's name as written and its value, unfolded and trimmed, in message order.
    headers: Vec<(&'a str, Cow<'a, str>)>,
    /// Exactly `Content-Length` bytes, or the rest of the datagram when that is absent.
    pub body: &'a [u8],
}

/// Header lookups take a name in any case, and a full name and its compact form (RFC 3261
/// section 7.3.3 and later RFCs) find the same fields: `header("Call-ID")` finds `i:` too.
impl<'a> Message<'a> {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request's method; `None` for a response (see [`Message::cseq`] for the method a
    /// response answers).
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The response's status code; `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Request { .. } => None,
            StartLine::Response { code, .. } => Some(code),
        }
    }

    /// The first field called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// Every field called `name`, in message order. Values are as written: a field holding a
    /// comma-separated list is one item here.
    pub fn headers(&self, name: &str) -> impl Iterator<Item = &str> {
        let name = full_header_name(name);
        self.headers
            .iter()
            .filter(move |(field, _)| full_header_name(field).eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }

    /// Every field as `(name as written, value)`, in message order.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, &str)> {
        self.headers
            .iter()
            .map(|(name, value)| (*name, value.as_ref()))
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID").filter(|id| !id.is_empty())
    }

    /// The sequence number and method of `CSeq`, which a response needs to say what it answers.
    pub fn cseq(&self) -> Option<(u32, Method<'_>)> {
        let mut words = self.header("CSeq")?.split_whitespace();
        let number = words.next()?.parse().ok()?;
        Some((number, Method::from_token(words.next()?)))
    }

    pub fn from(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header("From")?)
    }

    pub fn to(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header("To")?)
    }

    /// The URI of the first `Contact`: where the sender wants later requests of the dialog.
    pub fn contact_uri(&self) -> Option<&str> {
        let first = address::split_list(self.header("Contact")?).next()?;
        Some(NameAddr::parse(first)?.uri)
    }

    /// `Refer-To` of a REFER (RFC 3515): whom a transfer sends the call to. An attended
    /// transfer carries the call being replaced in its URI; see [`NameAddr::embedded_replaces`].
    pub fn refer_to(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header("Refer-To")?)
    }

    /// The `Replaces` header of an INVITE (RFC 3891): the dialog this call takes over.
    pub fn replaces(&self) -> Option<Replaces<'_>> {
        Replaces::parse(self.header("Replaces")?)
    }

    /// The branch of the top `Via`, which names the transaction this message belongs to.
    pub fn via_branch(&self) -> Option<&str> {
        self.via_branches().next()
    }

    /// The branch of every `Via` hop, top first, across fields and comma-separated values.
    /// A hop without a branch is skipped.
    pub fn via_branches(&self) -> impl Iterator<Item = &str> {
        self.headers("Via")
            .flat_map(address::split_list)
            .filter_map(|hop| address::param(hop.split_once(';')?.1, "branch"))
    }

    /// The media type of the body without parameters, as written (`application/sdp`).
    pub fn content_type(&self) -> Option<&str> {
        let value = self.header("Content-Type")?;
        let media_type = value.split(';').next().unwrap_or(value).trim();
        (!media_type.is_empty()).then_some(media_type)
    }

    /// Whether the body is a session description.
    pub fn is_sdp(&self) -> bool {
        self.content_type()
            .is_some_and(|media_type| media_type.eq_ignore_ascii_case("application/sdp"))
    }

    /// `Content-Length` as a number; `None` when absent or not a number.
    pub fn content_length(&self) -> Option<usize> {
        parse_content_length(self.header("Content-Length")?).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request {
        method: Method<'a>,
        uri: &'a str,
    },
    /// `reason` may be empty; devices are free to send any text or none.
    Response {
        code: u16,
        reason: &'a str,
    },
}

/// A SIP method. RFC 3261 makes methods case-sensitive, but a method name that differs only in
/// case from a standard one is read as that method: no device means anything else by `invite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Info,
    Refer,
    Message,
    Update,
    /// Any other method, as written.
    Other(&'a str),
}

impl<'a> Method<'a> {
    const STANDARD: [Method<'static>; 14] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Register,
        Method::Options,
        Method::Prack,
        Method::Subscribe,
        Method::Notify,
        Method::Publish,
        Method::Info,
        Method::Refer,
        Method::Message,
        Method::Update,
    ];

    pub fn from_token(token: &'a str) -> Self {
        Self::STANDARD
            .into_iter()
            .find(|method| method.as_str().eq_ignore_ascii_case(token))
            .unwrap_or(Method::Other(token))
    }

    /// The standard upper-case name, or the name as written for [`Method::Other`].
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Other(name) => name,
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes could not be read as a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// The message is cut short. On a stream, more bytes may complete it; in a datagram it is
    /// truncated for good. `needed` is a lower bound: exact when only body bytes are missing,
    /// 1 while the header section has not ended.
    #[error("incomplete SIP message: at least {needed} more byte(s) needed")]
    Incomplete { needed: usize },
    #[error("not a SIP message: the first line is neither a SIP request nor a SIP status line")]
    NotSip,
    #[error("malformed SIP start line: {reason}")]
    BadStartLine { reason: &'static str },
    #[error("SIP message has more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("SIP Content-Length is not a decimal number of bytes")]
    BadContentLength,
}

/// Compact header names and the full names they stand for (RFC 3261 section 7.3.3, RFC 3265,
/// RFC 3515, RFC 3892, RFC 4028).
const COMPACT_NAMES: [(&str, &str); 15] = [
    ("i", "Call-ID"),
    ("f", "From"),
    ("t", "To"),
    ("v", "Via"),
    ("m", "Contact"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("k", "Supported"),
    ("s", "Subject"),
    ("e", "Content-Encoding"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("x", "Session-Expires"),
    ("u", "Allow-Events"),
];

fn full_header_name(name: &str) -> &str {
    COMPACT_NAMES
        .iter()
        .find(|(compact, _)| compact.eq_ignore_ascii_case(name))
        .map_or(name, |(_, full)| full)
}

fn header_value<'h>(headers: &'h [(&str, Cow<'_, str>)], name: &str) -> Option<&'h str> {
    let name = full_header_name(name);
    headers
        .iter()
        .find(|(field, _)| full_header_name(field).eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_ref())
}

fn parse_content_length(value: &str) -> Result<usize, SipError> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SipError::BadContentLength);
    }
    value.parse().map_err(|_| SipError::BadContentLength)
}

/// Complete lines of `data` from `pos` on, without their CRLF or bare LF. A last line without
/// its line end is not yielded: on a stream, the rest of it may still be coming.
struct Lines<'a> {
    data: &'a [u8],
    /// Where the next line starts; after the last line yielded, where the body starts.
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        let len = rest.iter().position(|&b| b == b'\n')?;
        let line = rest.get(..len)?;
        self.pos += len + 1;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

/// Where the first line that is not empty starts. Peers keep NAT bindings and TCP connections
/// alive with bare CRLFs between messages (RFC 5626 section 4.4.1).
fn skip_keep_alives(data: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        match data.get(pos..) {
            Some([b'\r', b'\n', ..]) => pos += 2,
            Some([b'\n', ..]) => pos += 1,
            _ => return pos,
        }
    }
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, SipError> {
    let line = line.trim_ascii();
    if starts_with_ignore_case(line, b"SIP/") {
        parse_status_line(line)
    } else {
        parse_request_line(line)
    }
}

/// `SIP/2.0 SP Status-Code SP Reason-Phrase`.
fn parse_status_line(line: &[u8]) -> Result<StartLine<'_>, SipError> {
    let (version, rest) = split_word(line);
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(SipError::BadStartLine {
            reason: "unsupported SIP version",
        });
    }
    let (code, reason) = split_word(rest);
    let code = match *code {
        [
            hundreds @ b'1'..=b'6',
            tens @ b'0'..=b'9',
            units @ b'0'..=b'9',
        ] => {
            u16::from(hundreds - b'0') * 100 + u16::from(tens - b'0') * 10 + u16::from(units - b'0')
        }
        _ => {
            return Err(SipError::BadStartLine {
                reason: "status code is not three digits from 100 to 699",
            });
        }
    };
    Ok(StartLine::Response {
        code,
        reason: utf8_prefix(reason),
    })
}

/// `Method SP Request-URI SP SIP/2.0`.
fn parse_request_line(line: &[u8]) -> Result<StartLine<'_>, SipError> {
    let Some(version_at) = line.iter().rposition(|b| b.is_ascii_whitespace()) else {
        return Err(SipError::NotSip);
    };
    let version = line.get(version_at + 1..).unwrap_or_default();
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(if starts_with_ignore_case(version, b"SIP/") {
            SipError::BadStartLine {
                reason: "unsupported SIP version",
            }
        } else {
            SipError::NotSip
        });
    }
    let head = line.get(..version_at).unwrap_or_default();
    let head = std::str::from_utf8(head).map_err(|_| SipError::BadStartLine {
        reason: "method or Request-URI is not UTF-8",
    })?;
    let Some((method, uri)) = head.trim().split_once([' ', '\t']) else {
        return Err(SipError::BadStartLine {
            reason: "no Request-URI",
        });
    };
    if !method.bytes().all(is_token_byte) {
        return Err(SipError::BadStartLine {
            reason: "method is not a token",
        });
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.trim(),
    })
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Splits off the first word and the whitespace after it.
fn split_word(text: &[u8]) -> (&[u8], &[u8]) {
    let end = text
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    (word, rest.trim_ascii_start())
}

/// The longest prefix of `bytes` that is UTF-8.
fn utf8_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default(),
    }
}

/// Reads header fields up to and including the empty line that ends them.
///
/// A line that is not `name: value` is skipped together with its continuation lines: one
/// mangled field should not lose the message.
fn parse_headers<'a>(lines: &mut Lines<'a>) -> Result<Vec<(&'a str, Cow<'a, str>)>, SipError> {
    let mut headers: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
    let mut last_line_kept = false;
    loop {
        let line = lines.next().ok_or(SipError::Incomplete { needed: 1 })?;
        match line.first() {
            None => return Ok(headers),
            Some(b' ' | b'\t') => {
                if let (true, Some((_, value))) = (last_line_kept, headers.last_mut()) {
                    unfold(value, line);
                }
            }
            Some(_) => {
                let Some(field) = split_field(line) else {
                    last_line_kept = false;
                    continue;
                };
                if headers.len() == MAX_HEADERS {
                    return Err(SipError::TooManyHeaders);
                }
                headers.push(field);
                last_line_kept = true;
            }
        }
    }
}

/// `name: value`, allowing whitespace on both sides of the colon.
fn split_field(line: &[u8]) -> Option<(&str, Cow<'_, str>)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = line.split_at(colon);
    let name = std::str::from_utf8(name).ok()?.trim();
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return None;
    }
    let value = match String::from_utf8_lossy(value.get(1..).unwrap_or_default()) {
        Cow::Borrowed(value) => Cow::Borrowed(value.trim()),
        Cow::Owned(value) => Cow::Owned(value.trim().to_owned()),
    };
    Some((name, value))
}

/// Joins a continuation line onto `value` with one space, as RFC 3261 section 7.3.1 reads
/// folded lines.
fn unfold(value: &mut Cow<'_, str>, continuation: &[u8]) {
    let continuation = String::from_utf8_lossy(continuation);
    let continuation = continuation.trim();
    if continuation.is_empty() {
        return;
    }
    let value = value.to_mut();
    if !value.is_empty() {
        value.push(' ');
    }
    value.push_str(continuation);
}

/// `token` of RFC 3261 section 25.1.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::robustness::assert_never_panics;

    /// Parses `input` message after message, as a stream reader would, and compares a dump of
    /// everything read with `expect`, line by line, ignoring indentation and blank lines.
    /// "consumed all" says a message took the rest of the input.
    #[track_caller]
    fn check(input: impl AsRef<[u8]>, expect: &str) {
        let actual = render(input.as_ref());
        let actual: Vec<&str> = actual.lines().map(str::trim).collect();
        let expect: Vec<&str> = expect
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        assert_eq!(actual, expect, "\nactual:\n{}\n", actual.join("\n"),);
    }

    fn render(mut data: &[u8]) -> String {
        let mut out = String::new();
        loop {
            match parse(data) {
                Ok((message, consumed)) => {
                    describe(&message, &mut out);
                    if consumed == data.len() {
                        writeln!(out, "consumed all").unwrap();
                    } else {
                        writeln!(out, "consumed {consumed}").unwrap();
                    }
                    data = &data[consumed..];
                    if data.is_empty() || consumed == 0 {
                        return out;
                    }
                    writeln!(out, "---").unwrap();
                }
                Err(error) => {
                    writeln!(out, "error: {error}").unwrap();
                    return out;
                }
            }
        }
    }

    /// Exercises every accessor, so that the robustness test reaches them too.
    fn describe(message: &Message<'_>, out: &mut String) {
        match message.start {
            StartLine::Request { method, uri } => writeln!(out, "request {method} {uri}"),
            StartLine::Response { code, reason } => writeln!(out, "response {code} {reason}"),
        }
        .unwrap();
        assert_eq!(message.is_request(), message.method().is_some());
        assert_eq!(message.is_request(), message.status().is_none());
        for (name, value) in message.fields() {
            writeln!(out, "| {name}: {value}").unwrap();
        }
        if let Some(call_id) = message.call_id() {
            writeln!(out, "call-id {call_id}").unwrap();
        }
        if let Some((number, method)) = message.cseq() {
            writeln!(out, "cseq {number} {method}").unwrap();
        }
        for (role, address) in [
            ("from", message.from()),
            ("to", message.to()),
            ("refer-to", message.refer_to()),
        ] {
            if let Some(address) = address {
                writeln!(out, "{role} {}", describe_address(&address)).unwrap();
            }
        }
        if let Some(uri) = message.contact_uri() {
            writeln!(out, "contact {uri}").unwrap();
        }
        if let Some(replaces) = message.replaces() {
            writeln!(out, "replaces {}", describe_replaces(&replaces)).unwrap();
        }
        let branches: Vec<&str> = message.via_branches().collect();
        assert_eq!(message.via_branch(), branches.first().copied());
        if !branches.is_empty() {
            writeln!(out, "via branches {}", branches.join(" ")).unwrap();
        }
        if let Some(media_type) = message.content_type() {
            let sdp = if message.is_sdp() { " (sdp)" } else { "" };
            writeln!(out, "content-type {media_type}{sdp}").unwrap();
        }
        if message.is_sdp() {
            match crate::sdp::parse(message.body) {
                Ok(session) => writeln!(out, "sdp with {} media", session.media.len()),
                Err(error) => writeln!(out, "sdp error: {error}"),
            }
            .unwrap();
        }
        if let Some(length) = message.content_length() {
            writeln!(out, "content-length {length}").unwrap();
        }
        writeln!(out, "body {} bytes", message.body.len()).unwrap();
    }

    fn describe_address(address: &NameAddr<'_>) -> String {
        let mut out = String::new();
        if let Some(name) = &address.display_name {
            write!(out, "{name:?} ").unwrap();
        }
        write!(out, "<{}>", address.uri).unwrap();
        if let Some(user) = address.user() {
            write!(out, " user={user}").unwrap();
        }
        if let Some(tag) = address.tag {
            write!(out, " tag={tag}").unwrap();
        }
        if let Some(replaces) = address.embedded_replaces() {
            write!(out, " replaces {}", describe_replaces(&replaces)).unwrap();
        }
        out
    }

    fn describe_replaces(replaces: &Replaces<'_>) -> String {
        let early = if replaces.early_only {
            " early-only"
        } else {
            ""
        };
        format!(
            "call-id={} to-tag={} from-tag={}{early}",
            replaces.call_id, replaces.to_tag, replaces.from_tag
        )
    }

    const SDP_OFFER: &str = "\
v=0\r
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r
s=-\r
c=IN IP4 192.0.2.10\r
t=0 0\r
m=audio 49170 RTP/AVP 0 8 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:20\r
a=sendrecv\r
";

    const INVITE: &str = "\
INVITE sip:+15550100@pbx.example.com;user=phone SIP/2.0\r
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r
Max-Forwards: 70\r
From: \"Alice Smith\" <sip:1001@pbx.example.com>;tag=9fxced76sl\r
To: <sip:+15550100@pbx.example.com;user=phone>\r
Call-ID: 3848276298220188511@192.0.2.10\r
CSeq: 314159 INVITE\r
Contact: <sip:1001@192.0.2.10:5060;transport=udp>\r
User-Agent: Yealink SIP-T46S 66.86.0.15\r
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, UPDATE, PRACK\r
Content-Type: application/sdp\r
Content-Length: 238\r
\r
";

    const OK: &str = "\
SIP/2.0 200 OK\r
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport=5060;received=192.0.2.10\r
From: \"Alice Smith\" <sip:1001@pbx.example.com>;tag=9fxced76sl\r
To: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d\r
Call-ID: 3848276298220188511@192.0.2.10\r
CSeq: 314159 INVITE\r
Contact: <sip:+15550100@198.51.100.7:5060>\r
Content-Type: application/sdp\r
Content-Length: 192\r
\r
v=0\r
o=- 1696 1696 IN IP4 198.51.100.7\r
s=Asterisk\r
c=IN IP4 198.51.100.7\r
t=0 0\r
m=audio 16384 RTP/AVP 0 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:101 telephone-event/8000\r
a=ptime:20\r
a=sendrecv\r
";

    const RINGING: &str = "\
SIP/2.0 180 Ringing\r
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport=5060\r
From: \"Alice Smith\" <sip:1001@pbx.example.com>;tag=9fxced76sl\r
To: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d\r
Call-ID: 3848276298220188511@192.0.2.10\r
CSeq: 314159 INVITE\r
Content-Length: 0\r
\r
";

    const ACK: &str = "\
ACK sip:+15550100@198.51.100.7:5060 SIP/2.0\r
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK5d0e1\r
Max-Forwards: 70\r
From: \"Alice Smith\" <sip:1001@pbx.example.com>;tag=9fxced76sl\r
To: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d\r
Call-ID: 3848276298220188511@192.0.2.10\r
CSeq: 314159 ACK\r
Content-Length: 0\r
\r
";

    const BYE: &str = "\
BYE sip:1001@192.0.2.10:5060;transport=udp SIP/2.0\r
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK2a1b3c\r
Max-Forwards: 70\r
From: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d\r
To: \"Alice Smith\" <sip:1001@pbx.example.com>;tag=9fxced76sl\r
Call-ID: 3848276298220188511@192.0.2.10\r
CSeq: 102 BYE\r
Content-Length: 0\r
\r
";

    const REFER: &str = "\
REFER sip:1001@192.0.2.10 SIP/2.0\r
Via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bKnashds9\r
From: <sip:1002@pbx.example.com>;tag=a6c85cf\r
To: <sip:1001@pbx.example.com>;tag=1928301774\r
Call-ID: a84b4c76e66710\r
CSeq: 314160 REFER\r
Refer-To: <sip:1003@pbx.example.com?Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3Bfrom-tag%3D6472>\r
Referred-By: <sip:1002@pbx.example.com>\r
Content-Length: 0\r
\r
";

    fn invite() -> String {
        format!("{INVITE}{SDP_OFFER}")
    }

    #[test]
    fn invite_with_sdp() {
        check(
            invite(),
            r#"
            request INVITE sip:+15550100@pbx.example.com;user=phone
            | Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport
            | Max-Forwards: 70
            | From: "Alice Smith" <sip:1001@pbx.example.com>;tag=9fxced76sl
            | To: <sip:+15550100@pbx.example.com;user=phone>
            | Call-ID: 3848276298220188511@192.0.2.10
            | CSeq: 314159 INVITE
            | Contact: <sip:1001@192.0.2.10:5060;transport=udp>
            | User-Agent: Yealink SIP-T46S 66.86.0.15
            | Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, UPDATE, PRACK
            | Content-Type: application/sdp
            | Content-Length: 238
            call-id 3848276298220188511@192.0.2.10
            cseq 314159 INVITE
            from "Alice Smith" <sip:1001@pbx.example.com> user=1001 tag=9fxced76sl
            to <sip:+15550100@pbx.example.com;user=phone> user=+15550100
            contact sip:1001@192.0.2.10:5060;transport=udp
            via branches z9hG4bK74bf9
            content-type application/sdp (sdp)
            sdp with 1 media
            content-length 238
            body 238 bytes
            consumed all
            "#,
        );
    }

    #[test]
    fn responses_and_in_dialog_requests() {
        check(
            OK,
            r#"
            response 200 OK
            | Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport=5060;received=192.0.2.10
            | From: "Alice Smith" <sip:1001@pbx.example.com>;tag=9fxced76sl
            | To: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d
            | Call-ID: 3848276298220188511@192.0.2.10
            | CSeq: 314159 INVITE
            | Contact: <sip:+15550100@198.51.100.7:5060>
            | Content-Type: application/sdp
            | Content-Length: 192
            call-id 3848276298220188511@192.0.2.10
            cseq 314159 INVITE
            from "Alice Smith" <sip:1001@pbx.example.com> user=1001 tag=9fxced76sl
            to <sip:+15550100@pbx.example.com;user=phone> user=+15550100 tag=as6c1a2b3d
            contact sip:+15550100@198.51.100.7:5060
            via branches z9hG4bK74bf9
            content-type application/sdp (sdp)
            sdp with 1 media
            content-length 192
            body 192 bytes
            consumed all
            "#,
        );
        check(
            RINGING,
            r#"
            response 180 Ringing
            | Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport=5060
            | From: "Alice Smith" <sip:1001@pbx.example.com>;tag=9fxced76sl
            | To: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d
            | Call-ID: 3848276298220188511@192.0.2.10
            | CSeq: 314159 INVITE
            | Content-Length: 0
            call-id 3848276298220188511@192.0.2.10
            cseq 314159 INVITE
            from "Alice Smith" <sip:1001@pbx.example.com> user=1001 tag=9fxced76sl
            to <sip:+15550100@pbx.example.com;user=phone> user=+15550100 tag=as6c1a2b3d
            via branches z9hG4bK74bf9
            content-length 0
            body 0 bytes
            consumed all
            "#,
        );
        check(
            ACK,
            r#"
            request ACK sip:+15550100@198.51.100.7:5060
            | Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK5d0e1
            | Max-Forwards: 70
            | From: "Alice Smith" <sip:1001@pbx.example.com>;tag=9fxced76sl
            | To: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d
            | Call-ID: 3848276298220188511@192.0.2.10
            | CSeq: 314159 ACK
            | Content-Length: 0
            call-id 3848276298220188511@192.0.2.10
            cseq 314159 ACK
            from "Alice Smith" <sip:1001@pbx.example.com> user=1001 tag=9fxced76sl
            to <sip:+15550100@pbx.example.com;user=phone> user=+15550100 tag=as6c1a2b3d
            via branches z9hG4bK5d0e1
            content-length 0
            body 0 bytes
            consumed all
            "#,
        );
        check(
            BYE,
            r#"
            request BYE sip:1001@192.0.2.10:5060;transport=udp
            | Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK2a1b3c
            | Max-Forwards: 70
            | From: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d
            | To: "Alice Smith" <sip:1001@pbx.example.com>;tag=9fxced76sl
            | Call-ID: 3848276298220188511@192.0.2.10
            | CSeq: 102 BYE
            | Content-Length: 0
            call-id 3848276298220188511@192.0.2.10
            cseq 102 BYE
            from <sip:+15550100@pbx.example.com;user=phone> user=+15550100 tag=as6c1a2b3d
            to "Alice Smith" <sip:1001@pbx.example.com> user=1001 tag=9fxced76sl
            via branches z9hG4bK2a1b3c
            content-length 0
            body 0 bytes
            consumed all
            "#,
        );
    }

    #[test]
    fn compact_forms_and_odd_casing_find_the_same_fields() {
        check(
            "\
BYE sip:bob@192.0.2.4 SIP/2.0\r
v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r
f: Alice <sip:alice@example.com>;tag=1\r
t: sip:bob@example.com;tag=2\r
i: abc@192.0.2.1\r
CSEQ: 7 bye\r
m: sip:alice@192.0.2.1;expires=60\r
c: Application/SDP; charset=utf-8\r
l: 0\r
\r
",
            r#"
            request BYE sip:bob@192.0.2.4
            | v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1
            | f: Alice <sip:alice@example.com>;tag=1
            | t: sip:bob@example.com;tag=2
            | i: abc@192.0.2.1
            | CSEQ: 7 bye
            | m: sip:alice@192.0.2.1;expires=60
            | c: Application/SDP; charset=utf-8
            | l: 0
            call-id abc@192.0.2.1
            cseq 7 BYE
            from "Alice" <sip:alice@example.com> user=alice tag=1
            to <sip:bob@example.com> user=bob tag=2
            contact sip:alice@192.0.2.1
            via branches z9hG4bK1
            content-type Application/SDP (sdp)
            sdp error: not a session description: no v=, o= or m= line
            content-length 0
            body 0 bytes
            consumed all
            "#,
        );
        check(
            "\
OPTIONS sip:pbx.example.com SIP/2.0\n\
via : SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2\n\
call-id:x1\n\
CONTENT-LENGTH :   0  \n\
\n",
            "
            request OPTIONS sip:pbx.example.com
            | via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2
            | call-id: x1
            | CONTENT-LENGTH: 0
            call-id x1
            via branches z9hG4bK2
            content-length 0
            body 0 bytes
            consumed all
            ",
        );
    }

    #[test]
    fn folded_lines_are_unfolded_with_one_space() {
        check(
            "\
INVITE sip:bob@example.com SIP/2.0\r
Subject: lunch\r
   tomorrow\r
\tat noon\r
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa,\r
 SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb\r
Via: SIP/2.0/UDP 192.0.2.3;rport\r
Content-Length: 0\r
\r
",
            "
            request INVITE sip:bob@example.com
            | Subject: lunch tomorrow at noon
            | Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb
            | Via: SIP/2.0/UDP 192.0.2.3;rport
            | Content-Length: 0
            via branches z9hG4bKa z9hG4bKb
            content-length 0
            body 0 bytes
            consumed all
            ",
        );
    }

    #[test]
    fn body_framing() {
        // Without Content-Length, as UDP allows, the body is the rest of the datagram.
        check(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n",
            "
            request MESSAGE sip:bob@example.com
            | Content-Type: text/plain
            content-type text/plain
            body 7 bytes
            consumed all
            ",
        );
        // Content-Length is authoritative: a longer body is someone else's bytes.
        check(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nl: 3\r\n\r\nhello",
            "
            request MESSAGE sip:bob@example.com
            | l: 3
            content-length 3
            body 3 bytes
            consumed 48
            ---
            error: incomplete SIP message: at least 1 more byte(s) needed
            ",
        );
        check(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nContent-Length: 10\r\n\r\nhello",
            "error: incomplete SIP message: at least 5 more byte(s) needed",
        );
        check(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "error: SIP Content-Length is not a decimal number of bytes",
        );
        check(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            "error: SIP Content-Length is not a decimal number of bytes",
        );
    }

    #[test]
    fn unfinished_header_sections_wait_for_more() {
        for input in [
            "",
            "\r\n\r\n",
            "INVITE sip:bob@example.com SIP/2.0",
            "INVITE sip:bob@example.com SIP/2.0\r\n",
            "INVITE sip:bob@example.com SIP/2.0\r\nContent-Length: 0\r\n",
            "INVITE sip:bob@example.com SIP/2.0\r\nContent-Length: 0\r\n\r",
        ] {
            check(
                input,
                "error: incomplete SIP message: at least 1 more byte(s) needed",
            );
        }
    }

    #[test]
    fn a_stream_of_messages_with_keep_alives() {
        let stream = format!("\r\n\r\n{RINGING}\r\n{}\n{BYE}", invite());
        check(
            stream,
            "
            response 180 Ringing
            | Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport=5060
            | From: \"Alice Smith\" <sip:1001@pbx.example.com>;tag=9fxced76sl
            | To: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d
            | Call-ID: 3848276298220188511@192.0.2.10
            | CSeq: 314159 INVITE
            | Content-Length: 0
            call-id 3848276298220188511@192.0.2.10
            cseq 314159 INVITE
            from \"Alice Smith\" <sip:1001@pbx.example.com> user=1001 tag=9fxced76sl
            to <sip:+15550100@pbx.example.com;user=phone> user=+15550100 tag=as6c1a2b3d
            via branches z9hG4bK74bf9
            content-length 0
            body 0 bytes
            consumed 299
            ---
            request INVITE sip:+15550100@pbx.example.com;user=phone
            | Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport
            | Max-Forwards: 70
            | From: \"Alice Smith\" <sip:1001@pbx.example.com>;tag=9fxced76sl
            | To: <sip:+15550100@pbx.example.com;user=phone>
            | Call-ID: 3848276298220188511@192.0.2.10
            | CSeq: 314159 INVITE
            | Contact: <sip:1001@192.0.2.10:5060;transport=udp>
            | User-Agent: Yealink SIP-T46S 66.86.0.15
            | Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, UPDATE, PRACK
            | Content-Type: application/sdp
            | Content-Length: 238
            call-id 3848276298220188511@192.0.2.10
            cseq 314159 INVITE
            from \"Alice Smith\" <sip:1001@pbx.example.com> user=1001 tag=9fxced76sl
            to <sip:+15550100@pbx.example.com;user=phone> user=+15550100
            contact sip:1001@192.0.2.10:5060;transport=udp
            via branches z9hG4bK74bf9
            content-type application/sdp (sdp)
            sdp with 1 media
            content-length 238
            body 238 bytes
            consumed 766
            ---
            request BYE sip:1001@192.0.2.10:5060;transport=udp
            | Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK2a1b3c
            | Max-Forwards: 70
            | From: <sip:+15550100@pbx.example.com;user=phone>;tag=as6c1a2b3d
            | To: \"Alice Smith\" <sip:1001@pbx.example.com>;tag=9fxced76sl
            | Call-ID: 3848276298220188511@192.0.2.10
            | CSeq: 102 BYE
            | Content-Length: 0
            call-id 3848276298220188511@192.0.2.10
            cseq 102 BYE
            from <sip:+15550100@pbx.example.com;user=phone> user=+15550100 tag=as6c1a2b3d
            to \"Alice Smith\" <sip:1001@pbx.example.com> user=1001 tag=9fxced76sl
            via branches z9hG4bK2a1b3c
            content-length 0
            body 0 bytes
            consumed all
            ",
        );
    }

    #[test]
    fn transfers() {
        check(
            REFER,
            "
            request REFER sip:1001@192.0.2.10
            | Via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bKnashds9
            | From: <sip:1002@pbx.example.com>;tag=a6c85cf
            | To: <sip:1001@pbx.example.com>;tag=1928301774
            | Call-ID: a84b4c76e66710
            | CSeq: 314160 REFER
            | Refer-To: <sip:1003@pbx.example.com?Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3Bfrom-tag%3D6472>
            | Referred-By: <sip:1002@pbx.example.com>
            | Content-Length: 0
            call-id a84b4c76e66710
            cseq 314160 REFER
            from <sip:1002@pbx.example.com> user=1002 tag=a6c85cf
            to <sip:1001@pbx.example.com> user=1001 tag=1928301774
            refer-to <sip:1003@pbx.example.com?Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3Bfrom-tag%3D6472> user=1003 replaces call-id=425928@bobster.example.org to-tag=7743 from-tag=6472
            via branches z9hG4bKnashds9
            content-length 0
            body 0 bytes
            consumed all
            ",
        );
        check(
            "\
INVITE sip:1003@192.0.2.30 SIP/2.0\r
Call-ID: 98732@sip.example.com\r
Replaces: 425928@bobster.example.org;from-tag=6472;to-tag=7743;early-only\r
\r
",
            "
            request INVITE sip:1003@192.0.2.30
            | Call-ID: 98732@sip.example.com
            | Replaces: 425928@bobster.example.org;from-tag=6472;to-tag=7743;early-only
            call-id 98732@sip.example.com
            replaces call-id=425928@bobster.example.org to-tag=7743 from-tag=6472 early-only
            body 0 bytes
            consumed all
            ",
        );
    }

    #[test]
    fn start_lines() {
        check(
            "SIP/2.0 100 \r\n\r\n",
            "
            response 100
            body 0 bytes
            consumed all
            ",
        );
        check(
            "sip/2.0 486  Busy Here \nl:0\n\n",
            "
            response 486 Busy Here
            | l: 0
            content-length 0
            body 0 bytes
            consumed all
            ",
        );
        check(
            "invite sip:bob@example.com sip/2.0\n\n",
            "
            request INVITE sip:bob@example.com
            body 0 bytes
            consumed all
            ",
        );
        check(
            "NOTIFY-X sip:bob@example.com SIP/2.0\n\n",
            "
            request NOTIFY-X sip:bob@example.com
            body 0 bytes
            consumed all
            ",
        );
        for (input, expect) in [
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                "error: not a SIP message: the first line is neither a SIP request nor a SIP status line",
            ),
            (
                "GET / HTTP/1.1\r\n\r\n",
                "error: not a SIP message: the first line is neither a SIP request nor a SIP status line",
            ),
            (
                "\x16\x03\x01\x02\x00\r\n\r\n",
                "error: not a SIP message: the first line is neither a SIP request nor a SIP status line",
            ),
            (
                "SIP/3.0 200 OK\r\n\r\n",
                "error: malformed SIP start line: unsupported SIP version",
            ),
            (
                "SIP/2.0 2000 OK\r\n\r\n",
                "error: malformed SIP start line: status code is not three digits from 100 to 699",
            ),
            (
                "SIP/2.0 099 Odd\r\n\r\n",
                "error: malformed SIP start line: status code is not three digits from 100 to 699",
            ),
            (
                "SIP/2.0\r\n\r\n",
                "error: malformed SIP start line: status code is not three digits from 100 to 699",
            ),
            (
                "INVITE SIP/2.0\r\n\r\n",
                "error: malformed SIP start line: no Request-URI",
            ),
            (
                "INVITE sip:bob@example.com SIP/1.0\r\n\r\n",
                "error: malformed SIP start line: unsupported SIP version",
            ),
            (
                "IN<VITE sip:bob@example.com SIP/2.0\r\n\r\n",
                "error: malformed SIP start line: method is not a token",
            ),
        ] {
            check(input, expect);
        }
        // A garbled start line is refused before the rest of the header section arrives, so a
        // stream reader does not wait for an end that will never make sense.
        check(
            "GET / HTTP/1.1\r\nHost: x",
            "error: not a SIP message: the first line is neither a SIP request nor a SIP status line",
        );
    }

    #[test]
    fn bytes_that_are_not_utf8() {
        check(
            b"SIP/2.0 200 Caf\xe9\r\nFrom: \"Ren\xe9\" <sip:rene@example.com>;tag=1\r\n\r\n",
            "
            response 200 Caf
            | From: \"Ren\u{fffd}\" <sip:rene@example.com>;tag=1
            from \"Ren\u{fffd}\" <sip:rene@example.com> user=rene tag=1
            body 0 bytes
            consumed all
            ",
        );
        check(
            b"INVITE sip:b\xffb@example.com SIP/2.0\r\n\r\n",
            "error: malformed SIP start line: method or Request-URI is not UTF-8",
        );
        check(
            b"INVITE sip:bob@example.com SIP/2.0\r\n\xff\xfe: junk\r\nCall-ID: 1\r\n\r\n",
            "
            request INVITE sip:bob@example.com
            | Call-ID: 1
            call-id 1
            body 0 bytes
            consumed all
            ",
        );
    }

    #[test]
    fn lines_that_are_not_fields_are_skipped() {
        check(
            "\
INVITE sip:bob@example.com SIP/2.0\r
this line has no colon\r
 and a continuation\r
Bad Name: value\r
: no name\r
Call-ID: kept\r
\r
",
            "
            request INVITE sip:bob@example.com
            | Call-ID: kept
            call-id kept
            body 0 bytes
            consumed all
            ",
        );
    }

    #[test]
    fn header_count_is_capped() {
        let many = |count: usize| {
            let mut message = String::from("OPTIONS sip:x@example.com SIP/2.0\r\n");
            for n in 0..count {
                writeln!(message, "X-N: {n}\r").unwrap();
            }
            message + "\r\n"
        };
        let at_the_cap = many(MAX_HEADERS);
        let (message, _) = parse(at_the_cap.as_bytes()).unwrap();
        assert_eq!(message.headers("x-n").count(), MAX_HEADERS);
        check(
            many(MAX_HEADERS + 1),
            "error: SIP message has more than 256 header fields",
        );
    }

    #[test]
    fn header_lookup() {
        let data = invite();
        let (message, _) = parse(data.as_bytes()).unwrap();
        assert_eq!(message.header("max-forwards"), Some("70"));
        assert_eq!(message.header("v"), message.header("VIA"));
        assert_eq!(message.header("Subject"), None);
        assert_eq!(message.headers("Allow").count(), 1);
        assert_eq!(message.method(), Some(Method::Invite));
        assert_eq!(message.status(), None);
        assert_eq!(message.body, SDP_OFFER.as_bytes());
    }

    #[test]
    fn never_panics() {
        let invite = invite();
        let stream = format!("\r\n{RINGING}{OK}");
        let samples: Vec<&[u8]> = [
            invite.as_str(),
            OK,
            RINGING,
            ACK,
            BYE,
            REFER,
            stream.as_str(),
        ]
        .map(str::as_bytes)
        .to_vec();
        assert_never_panics(&samples, |data| {
            let _ = render(data);
            let _ = crate::sdp::parse(data);
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = user_part(text);
                let _ = host_ip(text);
                let _ = NameAddr::parse(text).map(|address| address.embedded_replaces());
                let _ = Replaces::parse(text);
            }
        });
    }
}
