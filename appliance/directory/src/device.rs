//! Device associations: what identifies a phone or a USB telephony port, and the one spelling
//! each identity is stored and looked up in.
//!
//! Values are normalised before they are stored and before they are looked up, so a lookup is
//! an equality: a SIP URI becomes `user@host` in lower case, without scheme, display name,
//! port or parameters; an IP address its canonical text (an IPv4-mapped IPv6 address its IPv4
//! form); a MAC address lower-case hex pairs joined by colons.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// What kind of identity a device association maps to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    Extension,
    SipUri,
    PhoneIp,
    Mac,
    UsbPort,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 5] = [
        DeviceKind::Extension,
        DeviceKind::SipUri,
        DeviceKind::PhoneIp,
        DeviceKind::Mac,
        DeviceKind::UsbPort,
    ];

    /// As stored and as written in CSV files.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Extension => "extension",
            DeviceKind::SipUri => "sip_uri",
            DeviceKind::PhoneIp => "phone_ip",
            DeviceKind::Mac => "mac",
            DeviceKind::UsbPort => "usb_port",
        }
    }

    /// The one spelling of `value` for this kind, or why it is not one.
    pub fn normalise(self, value: &str) -> Result<String, &'static str> {
        match self {
            DeviceKind::Extension => normalise_extension(value),
            DeviceKind::SipUri => normalise_sip_uri(value),
            DeviceKind::PhoneIp => normalise_ip(value),
            DeviceKind::Mac => normalise_mac(value),
            DeviceKind::UsbPort => normalise_usb_port(value),
        }
    }

    /// How a device of this kind is recorded when the administrator does not say: a USB port
    /// by its USB tap, everything else from the SPAN port.
    pub fn default_recording_type(self) -> RecordingType {
        match self {
            DeviceKind::UsbPort => RecordingType::Usb,
            _ => RecordingType::Span,
        }
    }

    /// Whether a device of this kind can be recorded that way. Identities only seen on the
    /// network (SIP URI, IP and MAC address) can only be recorded from the SPAN port, and a
    /// USB port only through USB; an extension may be a phone on either.
    pub fn can_be_recorded_by(self, recording_type: RecordingType) -> bool {
        match self {
            DeviceKind::Extension => true,
            DeviceKind::UsbPort => recording_type == RecordingType::Usb,
            DeviceKind::SipUri | DeviceKind::PhoneIp | DeviceKind::Mac => {
                recording_type == RecordingType::Span
            }
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceKind {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<DeviceKind, &'static str> {
        DeviceKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or("must be one of extension, sip_uri, phone_ip, mac, usb_port")
    }
}

/// How a device's calls reach the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordingType {
    /// Mirrored to the SPAN port.
    Span,
    /// A USB telephony adapter on the appliance.
    Usb,
}

impl RecordingType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingType::Span => "SPAN",
            RecordingType::Usb => "USB",
        }
    }
}

impl fmt::Display for RecordingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordingType {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<RecordingType, &'static str> {
        match s.trim() {
            t if t.eq_ignore_ascii_case("SPAN") => Ok(RecordingType::Span),
            t if t.eq_ignore_ascii_case("USB") => Ok(RecordingType::Usb),
            _ => Err("must be SPAN or USB"),
        }
    }
}

/// Digits, letters and the dialling characters `* # +`, with `.`, `_` and `-`; letters in
/// lower case.
pub fn normalise_extension(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    let ok = (1..=32).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '#' | '+' | '.' | '_' | '-'));
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err("use 1 to 32 digits, letters or * # + . _ -")
    }
}

/// `user@host` in lower case from any of `sip:user@host`, `sips:user:password@host:5061;
/// transport=tls`, `"Name" <sip:user@host>` or a bare `user@host`.
pub fn normalise_sip_uri(value: &str) -> Result<String, &'static str> {
    let mut text = value.trim();
    if let Some(open) = text.find('<') {
        let inner = &text[open + 1..];
        text = inner.split('>').next().unwrap_or(inner);
    }
    let lower = text.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("sips:")
        .or_else(|| lower.strip_prefix("sip:"))
        .unwrap_or(&lower);
    let Some((user, host_port)) = rest.split_once('@') else {
        return Err("needs a user and a host: user@host");
    };
    // User parameters (`;phone-context=`) and a password belong to the user part only.
    let user = user.split([';', ':']).next().unwrap_or_default();
    let host_port = host_port.split([';', '?']).next().unwrap_or_default();
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        let address = bracketed.split(']').next().unwrap_or_default();
        match address.parse::<IpAddr>() {
            Ok(ip) => match canonical_ip(ip) {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            },
            Err(_) => return Err("has a bracketed host that is not an IPv6 address"),
        }
    } else {
        let host = host_port.split(':').next().unwrap_or_default();
        match host.parse::<IpAddr>() {
            Ok(ip) => canonical_ip(ip).to_string(),
            Err(_) => host.to_owned(),
        }
    };
    let user_ok = !user.is_empty()
        && user.len() <= 128
        && user
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | ','));
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !user_ok {
        return Err("has no valid user part");
    }
    if !host_ok {
        return Err("has no valid host");
    }
    Ok(format!("{user}@{host}"))
}

pub fn normalise_ip(value: &str) -> Result<String, &'static str> {
    value
        .trim()
        .parse::<IpAddr>()
        .map(|ip| canonical_ip(ip).to_string())
        .map_err(|_| "is not an IPv4 or IPv6 address")
}

/// An IPv4 address seen through an IPv6 socket is still that IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// `aa:bb:cc:dd:ee:ff` from colon, hyphen, Cisco dotted (`aabb.ccdd.eeff`) or bare hex forms.
pub fn normalise_mac(value: &str) -> Result<String, &'static str> {
    let hex: String = value
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("is not a MAC address (six hex pairs, such as 00:1a:2b:3c:4d:5e)");
    }
    let hex = hex.to_ascii_lowercase();
    let pairs: Vec<&str> = (0..6).map(|i| &hex[i * 2..i * 2 + 2]).collect();
    Ok(pairs.join(":"))
}

/// The name of a USB telephony port as the appliance lists it (`usb1`, `1-1.2`): printable
/// ASCII without spaces or commas, kept as written.
pub fn normalise_usb_port(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    let ok =
        (1..=64).contains(&value.len()) && value.chars().all(|c| c.is_ascii_graphic() && c != ',');
    if ok {
        Ok(value.to_owned())
    } else {
        Err("use 1 to 64 printable characters without spaces or commas")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: DeviceKind, input: &str, expected: Result<&str, &str>) {
        assert_eq!(
            kind.normalise(input).as_deref().map_err(|e| *e),
            expected,
            "{kind} {input:?}"
        );
    }

    #[test]
    fn sip_uris_become_lower_case_user_at_host() {
        use DeviceKind::SipUri;
        check(
            SipUri,
            "sip:Alice@PBX.Example.com",
            Ok("alice@pbx.example.com"),
        );
        check(
            SipUri,
            "  alice@pbx.example.com ",
            Ok("alice@pbx.example.com"),
        );
        check(
            SipUri,
            "\"Alice\" <sips:alice:secret@pbx.example.com:5061;transport=tls>;tag=1",
            Ok("alice@pbx.example.com"),
        );
        check(
            SipUri,
            "sip:1001;phone-context=+44@10.0.0.5:5060?subject=x",
            Ok("1001@10.0.0.5"),
        );
        check(
            SipUri,
            "sip:1001@[2001:DB8::0:1]:5060",
            Ok("1001@[2001:db8::1]"),
        );
        check(SipUri, "sip:1001@[::ffff:10.0.0.5]", Ok("1001@10.0.0.5"));
        check(
            SipUri,
            "sip:pbx.example.com",
            Err("needs a user and a host: user@host"),
        );
        check(SipUri, "sip:@pbx", Err("has no valid user part"));
        check(SipUri, "sip:a@", Err("has no valid host"));
        check(SipUri, "sip:a@ho st", Err("has no valid host"));
        check(
            SipUri,
            "sip:a@[nonsense]",
            Err("has a bracketed host that is not an IPv6 address"),
        );
    }

    #[test]
    fn ips_are_canonical() {
        use DeviceKind::PhoneIp;
        check(PhoneIp, " 10.0.0.7 ", Ok("10.0.0.7"));
        check(PhoneIp, "2001:0DB8:0000::0001", Ok("2001:db8::1"));
        check(PhoneIp, "::ffff:192.0.2.1", Ok("192.0.2.1"));
        check(PhoneIp, "10.0.0.256", Err("is not an IPv4 or IPv6 address"));
        check(PhoneIp, "phone7", Err("is not an IPv4 or IPv6 address"));
    }

    #[test]
    fn macs_become_lower_case_colon_pairs() {
        use DeviceKind::Mac;
        let expected = Ok("00:1a:2b:3c:4d:5e");
        check(Mac, "00:1A:2B:3C:4D:5E", expected);
        check(Mac, "00-1a-2b-3c-4d-5e", expected);
        check(Mac, "001a.2b3c.4d5e", expected);
        check(Mac, "001A2B3C4D5E", expected);
        let bad = Err("is not a MAC address (six hex pairs, such as 00:1a:2b:3c:4d:5e)");
        check(Mac, "00:1a:2b:3c:4d", bad);
        check(Mac, "00:1a:2b:3c:4d:5g", bad);
    }

    #[test]
    fn extensions_and_usb_ports() {
        check(DeviceKind::Extension, " 1001 ", Ok("1001"));
        check(DeviceKind::Extension, "*55#", Ok("*55#"));
        check(DeviceKind::Extension, "Desk-A", Ok("desk-a"));
        check(
            DeviceKind::Extension,
            "10 01",
            Err("use 1 to 32 digits, letters or * # + . _ -"),
        );
        check(
            DeviceKind::Extension,
            "",
            Err("use 1 to 32 digits, letters or * # + . _ -"),
        );
        check(DeviceKind::UsbPort, "1-1.2", Ok("1-1.2"));
        check(
            DeviceKind::UsbPort,
            "usb 1",
            Err("use 1 to 64 printable characters without spaces or commas"),
        );
    }

    #[test]
    fn kinds_and_recording_types_parse_and_pair() {
        for kind in DeviceKind::ALL {
            assert_eq!(kind.as_str().parse::<DeviceKind>(), Ok(kind));
            assert!(kind.can_be_recorded_by(kind.default_recording_type()));
        }
        assert_eq!("SIP_URI".parse::<DeviceKind>(), Ok(DeviceKind::SipUri));
        assert!("phone".parse::<DeviceKind>().is_err());
        assert_eq!("span".parse::<RecordingType>(), Ok(RecordingType::Span));
        assert_eq!(" USB".parse::<RecordingType>(), Ok(RecordingType::Usb));
        assert_eq!("TAP".parse::<RecordingType>(), Err("must be SPAN or USB"));
        assert!(!DeviceKind::UsbPort.can_be_recorded_by(RecordingType::Span));
        assert!(!DeviceKind::SipUri.can_be_recorded_by(RecordingType::Usb));
        assert!(DeviceKind::Extension.can_be_recorded_by(RecordingType::Usb));
    }

    /// Device values reach these functions from SIP messages off the wire: no input may
    /// panic them, and whatever they accept is already in its one spelling.
    #[test]
    fn hostile_values_never_panic_and_accepted_ones_are_fixed_points() {
        let mut inputs: Vec<String> = [
            "",
            "<",
            ">",
            "<>",
            "<<>>",
            "@",
            "@@",
            "sip:",
            "sip:@",
            "sips:a@",
            "sip:a@[",
            "sip:a@[::1",
            "sip:a@[]",
            "sip:a@:5060",
            "a@b@c",
            "\"x\" <sip:ü@ñ.example>",
            "sip:😀@host",
            "é",
            "::",
            "1.2.3.4:5",
            "aa:bb:cc:dd:ee:ff:00",
            "ÿÿÿÿÿÿÿÿÿÿÿÿ",
            "\u{0}",
            "sip:a\u{0}@host",
            "sip:a@host;",
            "sip:a;b@c;d?e",
        ]
        .map(str::to_owned)
        .to_vec();
        // Every prefix of a busy name-addr.
        let busy = "\"Ann\" <sips:ann;x=1:pw@[2001:db8::1]:5061;transport=tls?h=v>;tag=9";
        inputs.extend((0..=busy.len()).filter_map(|n| busy.get(..n).map(str::to_owned)));
        for input in &inputs {
            for kind in DeviceKind::ALL {
                if let Ok(value) = kind.normalise(input) {
                    assert_eq!(
                        kind.normalise(&value).as_ref(),
                        Ok(&value),
                        "{kind} {input:?}"
                    );
                }
            }
        }
    }
}
