//! Addresses inside header values: `From`, `To`, `Contact` and `Refer-To` (RFC 3261 section
//! 20.10), the `Replaces` of an attended transfer (RFC 3891), the user part of a URI, which
//! is where caller and called numbers live, and a URI's host when it is an address.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as `From`, `To`, `Contact` or `Refer-To` write it: `"Name" <sip:x@y>;tag=abc`, or
/// without angle brackets `sip:x@y;tag=abc`, where the parameters after the URI belong to the
/// header and not to the URI (RFC 3261 section 20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Unquoted, with backslash escapes resolved; `None` when absent or empty.
    pub display_name: Option<Cow<'a, str>>,
    pub uri: &'a str,
    /// The `tag` parameter, which with the Call-ID names a dialog.
    pub tag: Option<&'a str>,
}

impl<'a> NameAddr<'a> {
    /// Reads one address. `None` when there is no URI, or when a quoted display name never
    /// ends, since then nothing says where the URI starts.
    pub fn parse(value: &'a str) -> Option<Self> {
        let value = value.trim();
        let (display_name, rest) = match value.strip_prefix('"') {
            Some(quoted) => {
                let (name, rest) = split_quoted(quoted)?;
                (Some(name), rest.trim_start())
            }
            None => match value.find('<') {
                Some(open) => {
                    let (name, rest) = value.split_at(open);
                    (Some(Cow::Borrowed(name.trim())), rest)
                }
                None => (None, value),
            },
        };
        let (uri, params) = match rest.strip_prefix('<') {
            Some(bracketed) => bracketed.split_once('>').unwrap_or((bracketed, "")),
            None => rest.split_once(';').unwrap_or((rest, "")),
        };
        let uri = uri.trim();
        if uri.is_empty() {
            return None;
        }
        Some(NameAddr {
            display_name: display_name.filter(|name| !name.is_empty()),
            uri,
            tag: param(params, "tag").filter(|tag| !tag.is_empty()),
        })
    }

    /// The user part of the URI: usually the extension or phone number.
    pub fn user(&self) -> Option<&'a str> {
        user_part(self.uri)
    }

    /// The `Replaces` carried as a header of the URI, as an attended transfer's `Refer-To`
    /// writes it: `<sip:bob@example.com?Replaces=id%40host%3Bto-tag%3Da%3Bfrom-tag%3Db>`.
    /// Percent-decoded, so it owns its text. Devices that forget to escape `;` and `=` are
    /// read too.
    pub fn embedded_replaces(&self) -> Option<Replaces<'static>> {
        let (_, uri_headers) = self.uri.split_once('?')?;
        let encoded = uri_headers.split('&').find_map(|header| {
            let (name, value) = header.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("Replaces")
                .then_some(value)
        })?;
        let decoded = percent_decode(encoded);
        Replaces::parse(&decoded).map(Replaces::into_owned)
    }
}

/// The dialog a new INVITE takes over (RFC 3891): `call-id;to-tag=x;from-tag=y`, as the
/// `Replaces` header or embedded in a `Refer-To` URI. It is how an attended transfer ties the
/// new call to the one it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces<'a> {
    pub call_id: Cow<'a, str>,
    pub to_tag: Cow<'a, str>,
    pub from_tag: Cow<'a, str>,
    /// Replace the dialog only if it is not yet confirmed.
    pub early_only: bool,
}

impl<'a> Replaces<'a> {
    /// `None` when the Call-ID or either tag is missing: RFC 3891 requires all three, and
    /// without them the replaced dialog cannot be told apart from its forks.
    pub fn parse(value: &'a str) -> Option<Self> {
        let (call_id, params) = value.split_once(';').unwrap_or((value, ""));
        let call_id = call_id.trim();
        let tag = |name| param(params, name).filter(|tag| !tag.is_empty());
        if call_id.is_empty() {
            return None;
        }
        Some(Replaces {
            call_id: Cow::Borrowed(call_id),
            to_tag: Cow::Borrowed(tag("to-tag")?),
            from_tag: Cow::Borrowed(tag("from-tag")?),
            early_only: params_of(params).any(|(name, _)| name.eq_ignore_ascii_case("early-only")),
        })
    }

    pub fn into_owned(self) -> Replaces<'static> {
        Replaces {
            call_id: Cow::Owned(self.call_id.into_owned()),
            to_tag: Cow::Owned(self.to_tag.into_owned()),
            from_tag: Cow::Owned(self.from_tag.into_owned()),
            early_only: self.early_only,
        }
    }
}

/// The user of a `sip:`, `sips:` or `tel:` URI, which for calls is the extension or number:
/// `sip:+15550100@10.0.0.1:5060;user=phone` gives `+15550100`, `tel:+15550100;ext=12` gives
/// `+15550100`. Parameters of a telephone-subscriber user (`;phone-context=...`) and a password
/// are left out, as is anything in angle brackets around the URI. `None` for other schemes and
/// for URIs without a user. Percent escapes are left as written.
pub fn user_part(uri: &str) -> Option<&str> {
    let uri = uri.trim();
    let uri = uri.strip_prefix('<').unwrap_or(uri);
    let uri = uri.strip_suffix('>').unwrap_or(uri);
    let (scheme, rest) = uri.split_once(':')?;
    let user = if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        // A user may hold `;` (telephone-subscriber parameters) but neither `?` nor `@`.
        let before_headers = rest.split('?').next().unwrap_or(rest);
        let (userinfo, _host) = before_headers.split_once('@')?;
        userinfo.split(':').next().unwrap_or(userinfo)
    } else if scheme.eq_ignore_ascii_case("tel") {
        rest
    } else {
        return None;
    };
    let user = user.split([';', '?']).next().unwrap_or(user).trim();
    (!user.is_empty()).then_some(user)
}

/// The host of a `sip:` or `sips:` URI when it is an IP address literal:
/// `sip:1001@10.0.0.12:5060;transport=udp` gives 10.0.0.12, `sip:[2001:db8::7]` gives
/// 2001:db8::7. `None` for a host name, another scheme or a malformed host: a phone's
/// Contact names where it can be reached, which is how it is recognised by address.
pub fn host_ip(uri: &str) -> Option<IpAddr> {
    let uri = uri.trim();
    let uri = uri.strip_prefix('<').unwrap_or(uri);
    let uri = uri.strip_suffix('>').unwrap_or(uri);
    let (scheme, rest) = uri.split_once(':')?;
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return None;
    }
    let before_headers = rest.split('?').next().unwrap_or(rest);
    let host_port = before_headers
        .rsplit_once('@')
        .map_or(before_headers, |(_, host)| host);
    let host_port = host_port.split(';').next().unwrap_or(host_port);
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return bracketed
            .split(']')
            .next()?
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    let host = host_port.split(':').next().unwrap_or(host_port);
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The value of parameter `name` in `;`-separated `params` (`tag=1;lr;branch=z9`), without
/// surrounding quotes. A parameter without `=` has the empty value.
pub(super) fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params_of(params)
        .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn params_of(params: &str) -> impl Iterator<Item = (&str, &str)> {
    split_outside_quotes(params, b';').filter_map(|param| {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let name = name.trim();
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!name.is_empty()).then_some((name, value))
    })
}

/// The elements of a comma-separated header value (`Via`, `Contact`), trimmed, ignoring commas
/// in quoted strings and angle brackets.
pub(super) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    split_outside_quotes(value, b',')
        .map(str::trim)
        .filter(|element| !element.is_empty())
}

/// Splits `text` at each `separator` that is neither inside a quoted string nor inside angle
/// brackets. The separator must be ASCII, so every split falls on a character boundary.
fn split_outside_quotes(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut in_quotes = false;
        let mut escaped = false;
        let mut in_brackets = false;
        for (index, byte) in current.bytes().enumerate() {
            match byte {
                _ if escaped => escaped = false,
                b'\\' if in_quotes => escaped = true,
                b'"' => in_quotes = !in_quotes,
                b'<' if !in_quotes => in_brackets = true,
                b'>' if !in_quotes => in_brackets = false,
                _ if byte == separator && !in_quotes && !in_brackets => {
                    let (element, after) = current.split_at(index);
                    rest = after.get(1..);
                    return Some(element);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
}

/// Reads a quoted string whose opening quote is already consumed: returns its content,
/// trimmed and with backslash escapes resolved, and the text after the closing quote. `None`
/// when it never closes.
fn split_quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut unescaped: Option<String> = None;
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => {
                let content = match unescaped {
                    Some(owned) => Cow::Owned(owned.trim().to_owned()),
                    None => Cow::Borrowed(text.get(..index)?.trim()),
                };
                return Some((content, text.get(index + 1..)?));
            }
            '\\' => {
                let owned = unescaped
                    .get_or_insert_with(|| text.get(..index).unwrap_or_default().to_owned());
                if let Some((_, escaped)) = chars.next() {
                    owned.push(escaped);
                }
            }
            _ => {
                if let Some(owned) = &mut unescaped {
                    owned.push(c);
                }
            }
        }
    }
    None
}

/// Resolves `%XX` escapes (RFC 3986 section 2.1). A `%` not followed by two hex digits is kept
/// as written; decoded bytes that are not UTF-8 become U+FFFD.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex_digit = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match (byte, hex_digit(at + 1), hex_digit(at + 2)) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits make at most 0xFF.
                decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                at += 3;
            }
            _ => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// Reads `value` as a name-addr and compares what was found with `expect`.
    #[track_caller]
    fn check(value: &str, expect: &str) {
        assert_eq!(render(value), expect, "for {value:?}");
    }

    fn render(value: &str) -> String {
        let Some(address) = NameAddr::parse(value) else {
            return "none".to_owned();
        };
        let mut out = String::new();
        if let Some(name) = &address.display_name {
            write!(out, "{name:?} ").unwrap();
        }
        write!(out, "<{}>", address.uri).unwrap();
        for (label, part) in [("user", address.user()), ("tag", address.tag)] {
            if let Some(part) = part {
                write!(out, " {label}={part}").unwrap();
            }
        }
        if let Some(replaces) = address.embedded_replaces() {
            let Replaces {
                call_id,
                to_tag,
                from_tag,
                early_only,
            } = replaces;
            write!(
                out,
                " replaces={call_id} to-tag={to_tag} from-tag={from_tag} early-only={early_only}"
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn name_addr_forms() {
        for (value, expect) in [
            (
                r#""Alice Smith" <sip:alice@example.com>;tag=1928301774"#,
                r#""Alice Smith" <sip:alice@example.com> user=alice tag=1928301774"#,
            ),
            (
                "Alice <sip:alice@example.com;transport=tcp> ; tag = x1",
                r#""Alice" <sip:alice@example.com;transport=tcp> user=alice tag=x1"#,
            ),
            (
                "<sip:alice@example.com>",
                "<sip:alice@example.com> user=alice",
            ),
            // Without angle brackets, parameters after the URI are the header's.
            (
                "sip:+15550100@10.0.0.1:5060;user=phone;tag=abc",
                "<sip:+15550100@10.0.0.1:5060> user=+15550100 tag=abc",
            ),
            (
                "tel:+15550100;tag=9",
                "<tel:+15550100> user=+15550100 tag=9",
            ),
            // Real devices put commas and brackets in display names, quoted or not.
            (
                r#"Smith, John <sip:1001@pbx>;tag=5"#,
                r#""Smith, John" <sip:1001@pbx> user=1001 tag=5"#,
            ),
            (
                r#""Reception <Main>" <sip:100@pbx>"#,
                r#""Reception <Main>" <sip:100@pbx> user=100"#,
            ),
            (
                r#""Say \"hi\" \\ bye" <sip:1@pbx>"#,
                r#""Say \"hi\" \\ bye" <sip:1@pbx> user=1"#,
            ),
            (r#""" <sip:1@pbx>;tag="#, "<sip:1@pbx> user=1"),
            (
                r#""Alice" sip:alice@pbx;tag=7"#,
                r#""Alice" <sip:alice@pbx> user=alice tag=7"#,
            ),
            ("<sip:alice@pbx", "<sip:alice@pbx> user=alice"),
            (r#""Unterminated <sip:alice@pbx>"#, "none"),
            ("Alice <>", "none"),
            ("", "none"),
            ("*", "<*>"),
        ] {
            check(value, expect);
        }
    }

    #[test]
    fn replaces_embedded_in_refer_to() {
        for (value, expect) in [
            (
                "<sip:1003@pbx?Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3Bfrom-tag%3D6472>",
                "<sip:1003@pbx?Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3Bfrom-tag%3D6472> user=1003 replaces=425928@bobster.example.org to-tag=7743 from-tag=6472 early-only=false",
            ),
            (
                "<sip:1003@pbx?Subject=x&replaces=a%40b%3bfrom-tag%3d2%3bto-tag%3d1%3Bearly-only>",
                "<sip:1003@pbx?Subject=x&replaces=a%40b%3bfrom-tag%3d2%3bto-tag%3d1%3Bearly-only> user=1003 replaces=a@b to-tag=1 from-tag=2 early-only=true",
            ),
            // Left unescaped by the sender.
            (
                "<sip:1003@pbx?Replaces=a@b;to-tag=1;from-tag=2>",
                "<sip:1003@pbx?Replaces=a@b;to-tag=1;from-tag=2> user=1003 replaces=a@b to-tag=1 from-tag=2 early-only=false",
            ),
            (
                "<sip:1003@pbx?Replaces=a%40b%3Bto-tag%3D1>",
                "<sip:1003@pbx?Replaces=a%40b%3Bto-tag%3D1> user=1003",
            ),
            (
                "<sip:1003@pbx?Replaces=a%4%3Bto-tag%3D1%3Bfrom-tag%3D%E9>",
                "<sip:1003@pbx?Replaces=a%4%3Bto-tag%3D1%3Bfrom-tag%3D%E9> user=1003 replaces=a%4 to-tag=1 from-tag=\u{fffd} early-only=false",
            ),
        ] {
            check(value, expect);
        }
    }

    #[test]
    fn replaces_header() {
        let header = |call_id: &'static str, to_tag: &'static str, from_tag: &'static str| {
            Some(Replaces {
                call_id: Cow::Borrowed(call_id),
                to_tag: Cow::Borrowed(to_tag),
                from_tag: Cow::Borrowed(from_tag),
                early_only: false,
            })
        };
        for (value, expect) in [
            (
                "98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff",
                header("98732@sip.example.com", "ff87ff", "r33th4x0r"),
            ),
            (" x ; TO-TAG = a ; From-Tag=b ", header("x", "a", "b")),
            ("x;to-tag=a", None),
            ("x;to-tag=a;from-tag=", None),
            (";to-tag=a;from-tag=b", None),
            ("", None),
        ] {
            assert_eq!(Replaces::parse(value), expect, "for {value:?}");
        }
    }

    #[test]
    fn host_ips() {
        for (uri, ip) in [
            ("sip:1001@10.0.0.12:5060;transport=udp", Some("10.0.0.12")),
            ("<sip:1001@10.0.0.12>", Some("10.0.0.12")),
            ("SIPS:alice@192.0.2.7", Some("192.0.2.7")),
            ("sip:10.0.0.3", Some("10.0.0.3")),
            ("sip:bob@[2001:db8::7]:5070", Some("2001:db8::7")),
            ("sip:alice:p@ss@10.1.1.1", Some("10.1.1.1")),
            ("sip:1001@pbx.example.com", None),
            ("sip:1001@10.0.0", None),
            ("sip:1001@[10.0.0.1]", None),
            ("tel:+15550100", None),
            ("sip:", None),
            ("", None),
        ] {
            assert_eq!(
                host_ip(uri),
                ip.map(|ip| ip.parse().unwrap()),
                "for {uri:?}"
            );
        }
    }

    #[test]
    fn user_parts() {
        for (uri, user) in [
            ("sip:+15550100@10.0.0.1:5060;user=phone", Some("+15550100")),
            ("sips:alice@example.com", Some("alice")),
            ("SIP:1001@pbx", Some("1001")),
            ("<sip:1001@pbx>", Some("1001")),
            ("sip:alice:secret@example.com", Some("alice")),
            (
                "sip:+1555;phone-context=example.com@pbx;user=phone",
                Some("+1555"),
            ),
            ("tel:+15550100", Some("+15550100")),
            ("tel:5550100;phone-context=+1", Some("5550100")),
            ("sip:pbx.example.com", None),
            ("sip:[2001:db8::1]:5060", None),
            ("sip:pbx?Replaces=a@b", None),
            ("sip:@pbx", None),
            ("tel:", None),
            ("mailto:alice@example.com", None),
            ("alice", None),
            ("", None),
        ] {
            assert_eq!(user_part(uri), user, "for {uri:?}");
        }
    }

    #[test]
    fn list_splitting_respects_quotes_and_brackets() {
        let elements: Vec<&str> =
            split_list(r#" "A, B" <sip:a@x;p="1,2">;q=1 , <sip:b@y?h=a,b>,, sip:c@z "#).collect();
        assert_eq!(
            elements,
            [
                r#""A, B" <sip:a@x;p="1,2">;q=1"#,
                "<sip:b@y?h=a,b>",
                "sip:c@z"
            ]
        );
    }
}
