//! The schema: which sections and keys exist, their defaults, and how each value is read.
//!
//! A [`Section`] hands out typed values and remembers which keys it was asked for, so that
//! whatever is left over is reported as an unknown key: a misspelt key is an error, never a
//! silently ignored setting.

use std::net::SocketAddr;
use std::path::Path;

use toml::{Table, Value};

use crate::values::{self, PortRange};
use crate::{
    CaptureConfig, Config, HeaderMap, Problem, RecordingConfig, RecordingFormat, SftpConfig,
    StorageConfig, TenantConfig, TurnConfig, WebConfig,
};

const SECTIONS: &[&str] = &[
    "tenant",
    "storage",
    "capture",
    "recording",
    "web",
    "sftp",
    "turn",
];

pub(crate) fn config(root: &Table, base_dir: &Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    for (key, value) in root {
        if !SECTIONS.contains(&key.as_str()) {
            problems.push(unknown_key(key, value, SECTIONS));
        }
    }

    let mut tenant = Section::new(root, "tenant");
    let name = tenant.required_string("name", values::tenant_name);
    let timezone = tenant.string_or(
        "timezone",
        values::time_zone("UTC").expect("UTC is in every time-zone database"),
        values::time_zone,
    );
    tenant.finish(&mut problems);

    let mut storage = Section::new(root, "storage");
    let data_dir = storage.string_or("data_dir", "/var/lib/tapline".into(), |s| {
        values::directory(s, base_dir)
    });
    let retention_days =
        storage.integer_or("retention_days", 0, |n| values::whole_number(n, 0, 36_500));
    storage.finish(&mut problems);
    let storage = match (data_dir, retention_days) {
        (Some(data_dir), Some(retention_days)) => Some(StorageConfig {
            data_dir,
            retention_days,
        }),
        _ => None,
    };

    let mut capture = Section::new(root, "capture");
    let interfaces = capture.string_list("interfaces", values::interface_name);
    let interfaces =
        interfaces.and_then(|names| capture.check("interfaces", names, |n| values::distinct(n)));
    let replay = capture.optional_string("replay", |s| values::file(s, base_dir));
    capture.finish(&mut problems);

    let mut recording = Section::new(root, "recording");
    let format = recording.string_or("format", RecordingFormat::Pcm16, values::recording_format);
    let percentage = recording.integer_or("percentage", 100, values::percentage);
    let mut headers = recording.nested("headers", "recording.headers");
    let mut header_map = Some(HeaderMap::default());
    for (field, default) in HeaderMap::FIELDS {
        let name = headers.string_or(field, (*default).to_owned(), values::header_name);
        match (name, header_map.as_mut()) {
            (Some(name), Some(map)) => map.set(field, name),
            _ => header_map = None,
        }
    }
    headers.finish(&mut problems);
    recording.finish(&mut problems);

    let mut web = Section::new(root, "web");
    let web_listen = web.string_or("listen", ([0, 0, 0, 0], 443).into(), values::socket_addr);
    let idle_timeout_minutes = web.integer_or("idle_timeout_minutes", 30, |n| {
        values::whole_number(n, 1, 24 * 60)
    });
    let session_lifetime_hours = web.integer_or("session_lifetime_hours", 12, |n| {
        values::whole_number(n, 1, 7 * 24)
    });
    let http_redirect_listen = web.optional_string("http_redirect_listen", values::socket_addr);
    web.finish(&mut problems);
    let web_rest = match (
        idle_timeout_minutes,
        session_lifetime_hours,
        http_redirect_listen,
    ) {
        (Some(idle), Some(lifetime), Some(redirect)) => Some((idle, lifetime, redirect)),
        _ => None,
    };

    let sftp = sftp(root, &mut problems);
    let sftp_listen = sftp.as_ref().map(|sftp| sftp.listen);

    let turn = turn(root, &mut problems);
    let turn_listen = turn.as_ref().map(|turn| turn.listen);
    let relay_ports = turn.as_ref().map(|turn| turn.relay_ports);

    if let (Some(web), Some(sftp), Some(turn)) = (web_listen, sftp_listen, turn_listen) {
        let listeners = [
            ("web.listen", web),
            ("sftp.listen", sftp),
            ("turn.listen", turn),
        ];
        problems.extend(listener_clashes(&listeners));
        if let Some(range) = relay_ports
            && range.contains(turn.port())
        {
            problems.push(Problem {
                key: "turn.relay_ports".to_owned(),
                value: Some(Value::String(range.to_string())),
                reason: format!(
                    "includes the TURN listening port {} (`turn.listen`)",
                    turn.port()
                ),
            });
        }
    }

    match (
        name,
        timezone,
        storage,
        interfaces,
        replay,
        (format, percentage, header_map),
        (web_listen, web_rest),
        sftp,
        turn,
    ) {
        (
            Some(name),
            Some((timezone_name, timezone)),
            Some(storage),
            Some(interfaces),
            Some(replay),
            (Some(format), Some(percentage), Some(headers)),
            (Some(web_listen), Some((idle_timeout_minutes, session_lifetime_hours, http_redirect))),
            Some(sftp),
            Some(turn),
        ) if problems.is_empty() => Ok(Config {
            tenant: TenantConfig {
                name,
                timezone,
                timezone_name,
            },
            storage,
            capture: CaptureConfig { interfaces, replay },
            recording: RecordingConfig {
                format,
                percentage,
                headers,
            },
            web: WebConfig {
                listen: web_listen,
                idle_timeout_minutes,
                session_lifetime_hours,
                http_redirect_listen: http_redirect,
            },
            sftp,
            turn,
        }),
        _ => Err(problems),
    }
}

fn turn(root: &Table, problems: &mut Vec<Problem>) -> Option<TurnConfig> {
    let mut turn = Section::new(root, "turn");
    let listen = turn.string_or("listen", ([0, 0, 0, 0], 3478).into(), values::socket_addr);
    let tls_listen = turn.optional_string("tls_listen", values::socket_addr);
    let relay_address = turn.optional_string("relay_address", relay_address);
    let relay_ports = turn.string_or(
        "relay_ports",
        PortRange {
            first: 49152,
            last: 65535,
        },
        values::port_range,
    );
    let realm = turn.string_or("realm", "tapline".to_owned(), values::turn_realm);
    let secret = turn.optional_secret("secret", values::turn_secret);
    let users = turn.secret_list("users", values::turn_user);
    let users = users.and_then(|users| match values::repeated_turn_user(&users) {
        Some(name) => {
            problems.push(Problem {
                key: "turn.users".to_owned(),
                value: None,
                reason: format!("names the user \"{name}\" twice"),
            });
            None
        }
        None => Some(users),
    });
    let allowed_peers = turn.string_list("allowed_peers", values::network);
    let danger_allow_loopback_peers = turn.bool_or("danger_allow_loopback_peers", false);
    let max_allocations = turn.integer_or("max_allocations", 16_384, |n| {
        values::whole_number(n, 1, 1_000_000)
    });
    let max_allocations_per_user = turn.integer_or("max_allocations_per_user", 16, |n| {
        values::whole_number(n, 1, 1_000_000)
    });
    turn.finish(problems);
    Some(TurnConfig {
        listen: listen?,
        tls_listen: tls_listen?,
        relay_address: relay_address?,
        relay_ports: relay_ports?,
        realm: realm?,
        secret: secret?,
        users: users?,
        allowed_peers: allowed_peers?,
        danger_allow_loopback_peers: danger_allow_loopback_peers?,
        max_allocations: max_allocations?,
        max_allocations_per_user: max_allocations_per_user?,
    })
}

/// `turn.relay_address`: an address of this machine that clients can reach. Whether it is
/// one of this machine's is checked at start, when the relay binds it.
fn relay_address(s: &str) -> Result<std::net::IpAddr, String> {
    let ip: std::net::IpAddr = s.parse().map_err(|_| {
        "expected an IP address, such as \"192.0.2.10\" or \"2001:db8::10\"".to_owned()
    })?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!(
            "{ip} cannot be relayed from: give the unicast address clients reach this \
             appliance at"
        ));
    }
    Ok(ip)
}

fn sftp(root: &Table, problems: &mut Vec<Problem>) -> Option<SftpConfig> {
    let mut sftp = Section::new(root, "sftp");
    let listen = sftp.string_or("listen", ([0, 0, 0, 0], 22).into(), values::socket_addr);
    let max_connections = sftp.integer_or("max_connections", 64, |n| {
        values::whole_number(n, 1, 10_000)
    });
    let max_connections_per_account = sftp.integer_or("max_connections_per_account", 8, |n| {
        values::whole_number(n, 1, 10_000)
    });
    let idle_timeout_seconds = sftp.integer_or("idle_timeout_seconds", 600, |n| {
        values::whole_number(n, 10, 86_400)
    });
    let failures_before_lockout = sftp.integer_or("failures_before_lockout", 5, |n| {
        values::whole_number(n, 1, 1_000)
    });
    let lockout_minutes = sftp.integer_or("lockout_minutes", 15, |n| {
        values::whole_number(n, 1, 525_600)
    });
    sftp.finish(problems);
    let per_account_over_total = matches!(
        (max_connections, max_connections_per_account),
        (Some(total), Some(per_account)) if per_account > total
    );
    if per_account_over_total {
        problems.push(Problem {
            key: "sftp.max_connections_per_account".to_owned(),
            value: max_connections_per_account.map(|n| Value::Integer(n.into())),
            reason: "is more than `sftp.max_connections`".to_owned(),
        });
        return None;
    }
    Some(SftpConfig {
        listen: listen?,
        max_connections: max_connections?,
        max_connections_per_account: max_connections_per_account?,
        idle_timeout_seconds: idle_timeout_seconds?,
        failures_before_lockout: failures_before_lockout?,
        lockout_minutes: lockout_minutes?,
    })
}

/// Two services cannot listen on the same port of overlapping addresses; TCP and UDP are not
/// told apart because TURN listens on both.
fn listener_clashes(listeners: &[(&str, SocketAddr)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, (key, addr)) in listeners.iter().enumerate() {
        let clash = listeners[..i].iter().find(|(_, earlier)| {
            addr.port() != 0
                && earlier.port() == addr.port()
                && (addr.ip().is_unspecified()
                    || earlier.ip().is_unspecified()
                    || addr.ip() == earlier.ip())
        });
        if let Some((earlier_key, _)) = clash {
            problems.push(Problem {
                key: (*key).to_owned(),
                value: Some(Value::String(addr.to_string())),
                reason: format!("uses the same port as `{earlier_key}`"),
            });
        }
    }
    problems
}

fn unknown_key(key: &str, value: &Value, known: &[&str]) -> Problem {
    Problem {
        key: key.to_owned(),
        value: Some(value.clone()),
        reason: format!(
            "unknown key (known keys here: {})",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One `[section]` of the file, read key by key.
struct Section<'t> {
    name: &'static str,
    table: Option<&'t Table>,
    asked: Vec<&'static str>,
    problems: Vec<Problem>,
    malformed: bool,
}

impl<'t> Section<'t> {
    fn new(root: &'t Table, name: &'static str) -> Section<'t> {
        let mut section = Section {
            name,
            table: None,
            asked: Vec::new(),
            problems: Vec::new(),
            malformed: false,
        };
        match root.get(name) {
            None => {}
            Some(Value::Table(table)) => section.table = Some(table),
            Some(other) => {
                section.malformed = true;
                section.problems.push(Problem {
                    key: name.to_owned(),
                    value: Some(other.clone()),
                    reason: format!("expected a table `[{name}]`, found {}", other.type_str()),
                });
            }
        }
        section
    }

    fn value(&mut self, key: &'static str) -> Option<&'t Value> {
        self.asked.push(key);
        self.table?.get(key)
    }

    fn problem(&mut self, key: &str, value: Option<&Value>, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: format!("{}.{key}", self.name),
            value: value.cloned(),
            reason: reason.into(),
        });
    }

    /// A string that must be present.
    fn required_string<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.value(key) {
            // A section that is not a table has been reported already.
            None if self.malformed => None,
            None => {
                self.problem(key, None, "is required but missing");
                None
            }
            Some(value) => self.parse_string(key, value, parse),
        }
    }

    /// A table inside this one, read the same way (`[section.key]`).
    fn nested(&mut self, key: &'static str, full_name: &'static str) -> Section<'t> {
        let mut nested = Section {
            name: full_name,
            table: None,
            asked: Vec::new(),
            problems: Vec::new(),
            malformed: self.malformed,
        };
        match self.value(key) {
            None => {}
            Some(Value::Table(table)) => nested.table = Some(table),
            Some(other) => {
                nested.malformed = true;
                let reason = format!(
                    "expected a table `[{full_name}]`, found {}",
                    other.type_str()
                );
                self.problem(key, Some(other), reason);
            }
        }
        nested
    }

    /// An integer with a default; `None` means the key was present but unusable.
    fn integer_or<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl FnOnce(i64) -> Result<T, String>,
    ) -> Option<T> {
        match self.value(key) {
            None => Some(default),
            Some(value @ Value::Integer(n)) => match parse(*n) {
                Ok(parsed) => Some(parsed),
                Err(reason) => {
                    self.problem(key, Some(value), reason);
                    None
                }
            },
            Some(other) => {
                let reason = format!("expected a whole number, found {}", other.type_str());
                self.problem(key, Some(other), reason);
                None
            }
        }
    }

    /// A string with a default; `None` means the key was present but unusable.
    fn string_or<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.value(key) {
            None => Some(default),
            Some(value) => self.parse_string(key, value, parse),
        }
    }

    /// A true or false with a default; `None` means the key was present but unusable.
    fn bool_or(&mut self, key: &'static str, default: bool) -> Option<bool> {
        match self.value(key) {
            None => Some(default),
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                let reason = format!("expected true or false, found {}", other.type_str());
                self.problem(key, Some(other), reason);
                None
            }
        }
    }

    /// A secret string that may be absent. A problem with it never repeats the value, so no
    /// secret reaches a log through an error message.
    fn optional_secret<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.value(key) {
            None => Some(None),
            Some(Value::String(text)) => match parse(text) {
                Ok(parsed) => Some(Some(parsed)),
                Err(reason) => {
                    self.problem(key, None, reason);
                    None
                }
            },
            Some(other) => {
                let reason = format!("expected a string, found {}", other.type_str());
                self.problem(key, None, reason);
                None
            }
        }
    }

    /// A list of strings holding secrets; problems name the item, never its text.
    fn secret_list<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        self.list(key, parse, false)
    }

    /// A list of strings, each parsed; with `show_values` false, problems leave the value
    /// out of their message.
    fn list<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
        show_values: bool,
    ) -> Option<Vec<T>> {
        let shown = |value| show_values.then_some(value);
        let items = match self.value(key) {
            None => return Some(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                let reason = format!("expected a list of strings, found {}", other.type_str());
                self.problem(key, shown(other), reason);
                return None;
            }
        };
        let mut parsed = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let result = match item {
                Value::String(text) => parse(text),
                other => Err(format!("expected a string, found {}", other.type_str())),
            };
            match result {
                Ok(value) => parsed.push(value),
                Err(reason) => {
                    self.problem(&format!("{key}[{index}]"), shown(item), reason);
                    ok = false;
                }
            }
        }
        ok.then_some(parsed)
    }

    /// A string that may be absent; the outer `None` means present but unusable.
    fn optional_string<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.value(key) {
            None => Some(None),
            Some(value) => self.parse_string(key, value, parse).map(Some),
        }
    }

    /// A list of strings, empty when absent.
    fn string_list<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        self.list(key, parse, true)
    }

    /// A further check on a value already read, reported against the same key.
    fn check<T>(
        &mut self,
        key: &'static str,
        value: T,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Option<T> {
        match check(&value) {
            Ok(()) => Some(value),
            Err(reason) => {
                let shown = self.table.and_then(|t| t.get(key));
                self.problem(key, shown, reason);
                None
            }
        }
    }

    fn parse_string<T>(
        &mut self,
        key: &'static str,
        value: &Value,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let Value::String(text) = value else {
            self.problem(
                key,
                Some(value),
                format!("expected a string, found {}", value.type_str()),
            );
            return None;
        };
        match parse(text) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.problem(key, Some(value), reason);
                None
            }
        }
    }

    /// Reports keys nobody asked for, and hands over every problem found in this section.
    fn finish(mut self, problems: &mut Vec<Problem>) {
        if let Some(table) = self.table {
            for (key, value) in table {
                if !self.asked.contains(&key.as_str()) {
                    let mut problem = unknown_key(key, value, &self.asked);
                    problem.key = format!("{}.{key}", self.name);
                    self.problems.push(problem);
                }
            }
        }
        problems.append(&mut self.problems);
    }
}
