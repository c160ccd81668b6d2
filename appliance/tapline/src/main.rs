//! `tapline`: the appliance daemon (`tapline run`) and the tools around it.

mod account;
mod audit_cmd;
mod cli;
mod daemon;
mod demo;
mod index_cmd;
mod logging;
mod recording;
mod turn_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit status for a problem that restarting will not fix (bad config, a database from a newer
/// release): sysexits' EX_CONFIG. The systemd unit lists it in RestartPreventExitStatus=, so a
/// broken appliance says so once instead of restarting in a loop.
pub(crate) const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run => logging::init().and_then(|()| daemon::run_from_file(&cli.config)),
        Command::Demo(args) => logging::init().and_then(|()| demo::run(&cli, args)),
        Command::CheckConfig => cli::check_config(&cli.config),
        Command::Record(args) => {
            logging::init().and_then(|()| recording::record_file(&cli.config, &args.pcap))
        }
        Command::Account(command) => account::run(&cli.config, command),
        Command::Audit(command) => audit_cmd::run(&cli.config, command),
        Command::Index(args) => logging::init().and_then(|()| {
            let config = tapline_config::Config::load(&cli.config)?;
            index_cmd::run(&config, args.date)
        }),
        Command::Turn => logging::init().and_then(|()| turn_cmd::run_from_file(&cli.config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole chain, once, here where it is handled.
            eprintln!("tapline: {err:#}");
            if err.chain().any(is_config_problem) {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn is_config_problem(err: &(dyn std::error::Error + 'static)) -> bool {
    err.is::<tapline_config::ConfigError>()
        || matches!(
            err.downcast_ref::<tapline_store::StoreError>(),
            Some(
                tapline_store::StoreError::NewerSchema { .. }
                    | tapline_store::StoreError::ForeignDatabase { .. }
            )
        )
}
