//! Logs go through `tracing`: to the systemd journal, with structured fields, when systemd
//! started us with the journal as our output; to stderr otherwise. `TAPLINE_LOG` (or
//! `RUST_LOG`) filters, e.g. `TAPLINE_LOG=debug` or `TAPLINE_LOG=tapline_web=debug`.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

pub(crate) fn init() -> anyhow::Result<()> {
    let filter = std::env::var("TAPLINE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter)
        .with_context(|| format!("TAPLINE_LOG/RUST_LOG filter {filter:?} is not valid"))?;
    // systemd sets JOURNAL_STREAM when our stderr is connected to the journal.
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        tracing_subscriber::registry()
            .with(filter)
            .with(journald.with_syslog_identifier("tapline".to_owned()))
            .init();
        return Ok(());
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .init();
    Ok(())
}
