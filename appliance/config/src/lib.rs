//! Tapline's configuration: one TOML file, read once at start.
//!
//! The file is parsed into a plain TOML table first and then read section by section against
//! the schema in [`read`], so that every problem can name its key, the value it found and why
//! the value cannot be used. All problems in a file are reported together, so an administrator
//! fixes a file in one pass instead of one restart per mistake.
//!
//! [`Config::parse`] is pure apart from the time-zone database lookup; [`Config::load`] adds the
//! checks that need the file system (is the data directory usable, the replay file readable?).

mod error;
mod read;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Problem};
pub use values::PortRange;

/// Where `tapline` looks for its configuration unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/tapline/tapline.toml";

/// The whole configuration, with every default filled in and every value checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub tenant: TenantConfig,
    pub storage: StorageConfig,
    pub capture: CaptureConfig,
    pub recording: RecordingConfig,
    pub web: WebConfig,
    pub sftp: SftpConfig,
    pub turn: TurnConfig,
}

#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// The tenant's name; also the SFTP login name.
    pub name: String,
    /// Local tenant time, used for reports and the daily index.
    pub timezone: jiff::tz::TimeZone,
    /// The IANA name the time zone was given as, for display.
    pub timezone_name: String,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Absolute path of the data directory (a relative path in the file is taken relative to
    /// the file's own directory).
    pub data_dir: PathBuf,
    /// Days a recording is kept after its local tenant day, before the daily retention job
    /// removes it; 0 keeps recordings for ever. Legal holds exempt calls and days.
    pub retention_days: u32,
}

#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// SPAN-port network interfaces to capture on; empty means no live capture.
    pub interfaces: Vec<String>,
    /// A pcap or pcapng file replayed in a loop, in real time, as if it arrived on the SPAN
    /// port. Used by the demo and by test rigs; absent in production.
    pub replay: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// Sample format of new recordings.
    pub format: RecordingFormat,
    /// Share of calls recorded automatically, decided when a call is answered.
    pub percentage: u8,
    /// Which SIP header of the INVITE fills which field of a recording's metadata.
    pub headers: HeaderMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingFormat {
    /// 16-bit linear PCM.
    Pcm16,
    /// G.711 µ-law, 8 bits a sample: half the size.
    MuLaw,
    /// G.711 A-law, 8 bits a sample.
    ALaw,
}

impl RecordingFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingFormat::Pcm16 => "pcm16",
            RecordingFormat::MuLaw => "mulaw",
            RecordingFormat::ALaw => "alaw",
        }
    }
}

/// Metadata fields filled from SIP headers, and the header each comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    fields: Vec<(&'static str, String)>,
}

impl HeaderMap {
    /// Every field, with its default header.
    pub const FIELDS: &'static [(&'static str, &'static str)] = &[
        ("agent_name", "X-Agent-Name"),
        ("call_type", "X-Call-Type"),
        ("queue", "X-Queue"),
        ("queue_name", "X-Queue-Name"),
        ("case_id", "X-Case-Id"),
        ("account", "X-Account"),
        ("phone_channel", "X-Phone-Channel"),
        ("external_variable_1", "X-External-Variable-1"),
        ("external_variable_2", "X-External-Variable-2"),
        ("outdial_code", "X-Outdial-Code"),
        ("wrap_up_code", "X-Wrap-Up-Code"),
    ];

    pub(crate) fn set(&mut self, field: &'static str, header: String) {
        self.fields.retain(|(f, _)| *f != field);
        self.fields.push((field, header));
    }

    /// The header a field comes from.
    pub fn header(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, h)| h.as_str())
    }

    /// (field, header) pairs, in the order of [`Self::FIELDS`].
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.fields.iter().map(|(f, h)| (*f, h.as_str()))
    }
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// A signed-in session unused for this long is signed out.
    pub idle_timeout_minutes: u32,
    /// A session ends this long after sign-in, however busy.
    pub session_lifetime_hours: u32,
    /// Plain HTTP (usually port 80) that only redirects to HTTPS; none unless set.
    pub http_redirect_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub listen: SocketAddr,
    /// Sessions open at once, all accounts together.
    pub max_connections: u32,
    /// Sessions open at once for one login name.
    pub max_connections_per_account: u32,
    /// A session with no request for this long is closed.
    pub idle_timeout_seconds: u32,
    /// Failed logins in a row, per login name, before the name is locked out.
    pub failures_before_lockout: u32,
    /// How long a lockout lasts unless an administrator lifts it sooner.
    pub lockout_minutes: u32,
}

#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// UDP and TCP.
    pub listen: SocketAddr,
    /// TURN over TLS, with the web UI's certificate; none unless set.
    pub tls_listen: Option<SocketAddr>,
    /// The address relayed sockets are bound to and clients are told (XOR-RELAYED-ADDRESS).
    /// When unset: `listen`'s address, or, when that is unspecified (`0.0.0.0`, `::`), the
    /// address of the interface holding the default route, chosen at start.
    pub relay_address: Option<std::net::IpAddr>,
    pub relay_ports: PortRange,
    pub realm: String,
    /// The TURN REST API shared secret, if one is set.
    pub secret: Option<Secret>,
    /// Static long-term users, for clients that do not use the REST API.
    pub users: Vec<TurnUser>,
    /// Networks that may be relayed to; loopback, link-local and the like are refused
    /// whatever this says.
    pub allowed_peers: Vec<tapline_turn::Network>,
    /// Lets loopback peers through, for test rigs and benchmarks only; logged as a warning.
    pub danger_allow_loopback_peers: bool,
    /// Allocations alive at once, in total (486 or 508 beyond) and per user name (a REST
    /// name counts by its whole `expiry:user` text). Relay ports are a limit too.
    pub max_allocations: u32,
    pub max_allocations_per_user: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnUser {
    pub name: String,
    pub password: Secret,
}

/// A value that must not be shown: its `Debug` form is redacted, so printing a config (or an
/// error holding one) never reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Config {
    /// Reads, parses and checks the file at `path`, including that the data directory is
    /// usable by this process.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let base_dir = std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
        let config = Config::parse(&text, &path.display().to_string(), &base_dir)?;
        config.check_environment(&path.display().to_string())?;
        Ok(config)
    }

    /// Parses and checks configuration text. `origin` names the text in messages (usually the
    /// file's path); relative paths in it are resolved against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|err: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_owned(),
                    message: err.to_string().trim_end().to_owned(),
                })?;
        read::config(&table, base_dir).map_err(|problems| ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        })
    }

    /// The checks that look at this machine rather than at the text: that the data
    /// directory is (or can be made) a directory this process may read and write, and that a
    /// replay file can be read.
    pub fn check_environment(&self, origin: &str) -> Result<(), ConfigError> {
        let path_value = |path: &Path| Some(toml::Value::String(path.display().to_string()));
        let mut problems = Vec::new();
        if let Err(reason) = values::usable_directory(&self.storage.data_dir) {
            problems.push(Problem {
                key: "storage.data_dir".to_owned(),
                value: path_value(&self.storage.data_dir),
                reason,
            });
        }
        if let Some(replay) = &self.capture.replay
            && let Err(reason) = values::readable_file(replay)
        {
            problems.push(Problem {
                key: "capture.replay".to_owned(),
                value: path_value(replay),
                reason,
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems,
            })
        }
    }

    /// The configuration in force, defaults included, as TOML. `tapline check-config` prints
    /// it so an administrator sees what the daemon will actually do.
    pub fn effective_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let list = |items: &[String]| {
            toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect()).to_string()
        };
        let mut out = String::new();
        out += &format!(
            "[tenant]\nname = {}\ntimezone = {}\n\n",
            quote(&self.tenant.name),
            quote(&self.tenant.timezone_name)
        );
        out += &format!(
            "[storage]\ndata_dir = {}\nretention_days = {}\n\n",
            quote(&self.storage.data_dir.display().to_string()),
            self.storage.retention_days
        );
        out += &format!(
            "[capture]\ninterfaces = {}\n",
            list(&self.capture.interfaces)
        );
        if let Some(replay) = &self.capture.replay {
            out += &format!("replay = {}\n", quote(&replay.display().to_string()));
        }
        out += &format!(
            "\n[recording]\nformat = {}\npercentage = {}\n\n[recording.headers]\n",
            quote(self.recording.format.as_str()),
            self.recording.percentage
        );
        for (field, header) in self.recording.headers.iter() {
            out += &format!("{field} = {}\n", quote(header));
        }
        out += &format!(
            "\n[web]\nlisten = {}\nidle_timeout_minutes = {}\nsession_lifetime_hours = {}\n",
            quote(&self.web.listen.to_string()),
            self.web.idle_timeout_minutes,
            self.web.session_lifetime_hours
        );
        match self.web.http_redirect_listen {
            Some(addr) => {
                out += &format!("http_redirect_listen = {}\n\n", quote(&addr.to_string()))
            }
            None => out += "# http_redirect_listen: not set (no plain HTTP listener)\n\n",
        }
        out += &format!(
            "[sftp]\nlisten = {}\nmax_connections = {}\nmax_connections_per_account = {}\n\
             idle_timeout_seconds = {}\nfailures_before_lockout = {}\nlockout_minutes = {}\n\n",
            quote(&self.sftp.listen.to_string()),
            self.sftp.max_connections,
            self.sftp.max_connections_per_account,
            self.sftp.idle_timeout_seconds,
            self.sftp.failures_before_lockout,
            self.sftp.lockout_minutes
        );
        out += &format!(
            "[turn]\nlisten = {}\nrelay_ports = {}\nrealm = {}\n",
            quote(&self.turn.listen.to_string()),
            quote(&self.turn.relay_ports.to_string()),
            quote(&self.turn.realm)
        );
        if let Some(tls_listen) = self.turn.tls_listen {
            out += &format!("tls_listen = {}\n", quote(&tls_listen.to_string()));
        }
        if let Some(relay_address) = self.turn.relay_address {
            out += &format!("relay_address = {}\n", quote(&relay_address.to_string()));
        }
        let peers: Vec<String> = self
            .turn
            .allowed_peers
            .iter()
            .map(ToString::to_string)
            .collect();
        out += &format!(
            "allowed_peers = {}\ndanger_allow_loopback_peers = {}\nmax_allocations = {}\n\
             max_allocations_per_user = {}\n",
            list(&peers),
            self.turn.danger_allow_loopback_peers,
            self.turn.max_allocations,
            self.turn.max_allocations_per_user
        );
        // Secrets are never printed: only whether they are set, as comments.
        out += match self.turn.secret {
            Some(_) => "# secret: set in the file (not shown)\n",
            None => "# secret: not set\n",
        };
        if !self.turn.users.is_empty() {
            let names: Vec<&str> = self.turn.users.iter().map(|u| u.name.as_str()).collect();
            out += &format!("# users: {} (passwords not shown)\n", names.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests;
