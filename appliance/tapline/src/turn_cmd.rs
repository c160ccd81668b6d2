//! `tapline turn`: the STUN/TURN relay alone, for benchmarks and test rigs.
//!
//! Runs the relay under the same supervisor as `tapline run`, prints one `listening:` line
//! when it is bound, and stops on SIGTERM or SIGINT. Nothing else starts: no capture, no
//! web listener, no database.

use std::path::Path;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tapline_config::{Config, TurnConfig};
use tapline_runtime::{CancellationToken, RestartPolicy, Supervisor};
use tapline_turn::StaticUser;
use tapline_turn::shell::{self, ShellConfig};
use tokio::signal::unix::{SignalKind, signal};

pub(crate) fn run_from_file(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let data_dir = &config.storage.data_dir;
    tapline_provisioning::prepare_data_dir(data_dir)?;
    let secret = match &config.turn.secret {
        Some(secret) => secret.expose().to_owned(),
        None => shell::load_or_create_secret(data_dir).with_context(|| {
            format!(
                "cannot read or create the TURN REST secret in {}",
                shell::secret_path(data_dir).display()
            )
        })?,
    };
    let shell_config = shell_config(&config.turn, secret);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tapline-turn")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(shell_config))
}

/// The shell's view of `[turn]`, with the REST secret in force.
fn shell_config(turn: &TurnConfig, rest_secret: String) -> ShellConfig {
    ShellConfig {
        listen: turn.listen,
        realm: turn.realm.clone(),
        rest_secrets: vec![rest_secret.into_bytes()],
        static_users: turn
            .users
            .iter()
            .map(|user| StaticUser {
                username: user.name.clone(),
                password: user.password.expose().to_owned(),
            })
            .collect(),
        allowed_peers: turn.allowed_peers.clone(),
        danger_allow_loopback_peers: turn.danger_allow_loopback_peers,
        relay_ports: turn.relay_ports.first..=turn.relay_ports.last,
    }
}

async fn serve(config: ShellConfig) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix("tapline");
    let mut supervisor = Supervisor::new(RestartPolicy::default(), &mut registry);
    supervisor.add("turn", move |ctx| shell::run(ctx, config.clone()));
    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let services = tokio::spawn(supervisor.run(shutdown.clone()));
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;

    let started = tokio::select! {
        () = handle.wait_started() => true,
        _ = term.recv() => false,
        _ = int.recv() => false,
    };
    if started {
        for status in handle.statuses() {
            for endpoint in &status.endpoints {
                println!("listening: {} {endpoint}", status.name);
            }
        }
        tracing::info!(status = %handle.summary(), "ready");
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping");
    }
    shutdown.cancel();
    services.await.context("the supervisor failed")?;
    tracing::info!("stopped cleanly");
    Ok(())
}
