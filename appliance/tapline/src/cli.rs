//! The command line. `--config` is global: it may stand before or after the subcommand.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use tapline_config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "tapline",
    version,
    about = "Tapline: on-prem call recording and live monitoring.",
    long_about = "Tapline is an on-prem call-recording and live-monitoring appliance for contact \
                  centres. This one binary is its daemon (`tapline run`) and its tools."
)]
pub(crate) struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "TAPLINE_CONFIG",
        default_value = tapline_config::DEFAULT_PATH
    )]
    pub(crate) config: PathBuf,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run every service until stopped (the systemd entry point).
    ///
    /// Starts capture, the web listener and the other services under one supervisor, tells
    /// systemd when every listener is bound (READY=1), feeds its watchdog while healthy, and on
    /// SIGTERM or SIGINT finishes open work, checkpoints the database and exits 0.
    Run,

    /// Run a self-contained demo appliance with embedded defaults.
    ///
    /// Keeps everything under one directory (./var/demo unless --dir says otherwise): a config
    /// file (written once; edit it freely), the data directory with SQLite and a self-signed
    /// certificate, and a bundled capture of real SIP/RTP calls replayed in a loop as the SPAN
    /// source. Listens on loopback only, and prints a one-time password for the `admin`
    /// account and every URL it serves. With --config, that file is used instead.
    Demo(DemoArgs),

    /// Check the configuration file and print the configuration in force.
    ///
    /// Prints every problem, each naming its key, the value found and why it cannot be used,
    /// and exits non-zero; otherwise prints the configuration with every default filled in.
    CheckConfig,

    /// Record the calls in a capture file, as if its packets had come from the SPAN port.
    ///
    /// Reads a pcap or pcapng file through the same path as live traffic (as fast as it
    /// reads, timed by the capture's own timestamps), writes recordings and their rows into the
    /// configured data directory, and prints a summary: calls, recorded, skipped with reasons,
    /// packets. A truncated or unreadable file exits non-zero after keeping every call it
    /// could complete.
    Record(RecordArgs),

    /// Manage local accounts, the tenant login's SFTP password and lockouts.
    #[command(subcommand)]
    Account(crate::account::AccountCommand),

    /// Check the activity audit log's hash chain.
    #[command(subcommand)]
    Audit(crate::audit_cmd::AuditCommand),

    /// Write (or rewrite) the daily index files of one local tenant day.
    ///
    /// Writes `Index/Iyyyymmdd.csv` and its detailed companion, and their copies in the
    /// day's `S` directory, atomically; running it again gives the same files.
    Index(IndexArgs),

    /// Run the STUN/TURN relay alone (for benchmarks and test rigs).
    ///
    /// Serves `[turn]` over UDP and nothing else: no capture, web listener or database.
    /// Prints a `listening:` line once bound, and stops on SIGTERM or SIGINT. Without
    /// `turn.secret`, the TURN REST secret is generated once and kept in the data directory.
    Turn,
}

#[derive(Debug, Args)]
pub(crate) struct IndexArgs {
    /// The local tenant day, YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub(crate) date: jiff::civil::Date,
}

#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// The capture file (pcap or pcapng).
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Directory for the demo's config, data and capture.
    #[arg(long, value_name = "DIR", default_value = tapline_provisioning::demo::DEFAULT_DIR)]
    pub(crate) dir: PathBuf,
}

pub(crate) fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    println!(
        "# {}: OK. The configuration in force, defaults included:\n",
        path.display()
    );
    print!("{}", config.effective_toml());
    Ok(())
}

/// Whether `--config` was given (on the command line or in the environment).
pub(crate) fn config_given(cli: &Cli) -> bool {
    cli.config != Path::new(tapline_config::DEFAULT_PATH)
}
