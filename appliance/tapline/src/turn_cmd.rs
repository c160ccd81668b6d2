//! `tapline turn`: the STUN/TURN relay alone, for benchmarks and test rigs; and what
//! `tapline run` shares with it to run the relay as one of its services (the shell's
//! configuration, and the writer of `turn_allocations` rows).
//!
//! `tapline turn` runs the relay under the same supervisor as `tapline run`, prints one
//! `listening:` line per endpoint when it is bound, and stops on SIGTERM or SIGINT. Nothing
//! else starts: no capture, no web listener, no database (so no summary rows either; the log
//! has a line per allocation). With `turn.tls_listen` set it uses the web UI's certificate
//! from the data directory, making it on first start as the web listener would.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tapline_config::{Config, TurnConfig};
use tapline_runtime::{CancellationToken, RestartPolicy, Supervisor};
use tapline_store::{Store, rusqlite, utc_text};
use tapline_turn::StaticUser;
use tapline_turn::shell::{self, AllocationRecord, Metrics, ShellConfig, TlsListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

pub(crate) fn run_from_file(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let data_dir = &config.storage.data_dir;
    tapline_provisioning::prepare_data_dir(data_dir)?;
    let tls = match config.turn.tls_listen {
        Some(listen) => {
            let paths = tapline_web::tls::CertPaths::in_data_dir(data_dir);
            let names = tapline_web::tls::default_names(listen);
            Some(tapline_web::tls::load_or_create(&paths, &names)?.0)
        }
        None => None,
    };
    let shell_config = shell_config(&config, tls, Metrics::default(), None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tapline-turn")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(shell_config))
}

/// The shell's view of `[turn]`, with the REST secret in force (`turn.secret`, or the one
/// kept in the data directory, made on first start). `tls` is the web UI's certificate, used
/// when `turn.tls_listen` is set.
pub(crate) fn shell_config(
    config: &Config,
    tls: Option<Arc<shell::rustls::ServerConfig>>,
    metrics: Metrics,
    records: Option<mpsc::Sender<AllocationRecord>>,
) -> anyhow::Result<ShellConfig> {
    let turn: &TurnConfig = &config.turn;
    let data_dir = &config.storage.data_dir;
    let secret = match &turn.secret {
        Some(secret) => secret.expose().to_owned(),
        None => shell::load_or_create_secret(data_dir).with_context(|| {
            format!(
                "cannot read or create the TURN REST secret in {}",
                shell::secret_path(data_dir).display()
            )
        })?,
    };
    let tls = match (turn.tls_listen, tls) {
        (Some(listen), Some(web)) => {
            // The web UI's certificate and key, without its HTTP ALPN list: TURN clients
            // offer `stun.turn` or nothing, and an empty list answers either.
            let mut config = (*web).clone();
            config.alpn_protocols = Vec::new();
            Some(TlsListener {
                listen,
                config: Arc::new(config),
            })
        }
        _ => None,
    };
    Ok(ShellConfig {
        listen: turn.listen,
        tls,
        relay_address: turn.relay_address,
        realm: turn.realm.clone(),
        rest_secrets: vec![secret.into_bytes()],
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
        max_allocations: usize::try_from(turn.max_allocations).unwrap_or(usize::MAX),
        max_allocations_per_user: usize::try_from(turn.max_allocations_per_user)
            .unwrap_or(usize::MAX),
        metrics,
        records,
    })
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

/// Rows written per transaction: one `fsync` for many ended allocations.
const RECORD_BATCH: usize = 256;

/// Starts the task that writes each ended allocation's `turn_allocations` row, off the relay's
/// path and in batches. It ends once every sender is gone and the queue is written.
pub(crate) fn record_allocations(
    store: Arc<Store>,
) -> (mpsc::Sender<AllocationRecord>, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(shell::RECORD_QUEUE);
    (sender, tokio::spawn(write_records(store, receiver)))
}

async fn write_records(store: Arc<Store>, receiver: mpsc::Receiver<AllocationRecord>) {
    let write = move |rows: &[AllocationRecord]| write_batch(&store, rows);
    tapline_runtime::batch::write_in_batches(receiver, RECORD_BATCH, "TURN allocation rows", write)
        .await;
}

fn write_batch(store: &Store, rows: &[AllocationRecord]) -> Result<(), rusqlite::Error> {
    store.write(|tx| {
        let mut insert = tx.prepare_cached(
            "INSERT INTO turn_allocations (username, client, client_transport, relayed, peers,
                 permissions_created, channels_bound, bytes_to_peers, datagrams_to_peers,
                 bytes_from_peers, datagrams_from_peers, dropped_to_peers, dropped_from_peers,
                 started_at, ended_at, end_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?;
        for row in rows {
            let s = &row.summary;
            let join =
                |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(",");
            insert.execute(rusqlite::params![
                s.username,
                s.client.client.to_string(),
                s.client.transport.name(),
                join(&mut s.relayed.iter().map(ToString::to_string)),
                join(&mut s.peers.iter().map(ToString::to_string)),
                count(s.permissions_created),
                count(s.channels_bound),
                count(s.to_peers.bytes),
                count(s.to_peers.packets),
                count(s.from_peers.bytes),
                count(s.from_peers.packets),
                count(s.to_peers.dropped_packets),
                count(s.from_peers.dropped_packets),
                utc_text(timestamp(row.started)),
                utc_text(timestamp(row.ended)),
                s.reason.name(),
            ])?;
        }
        Ok(())
    })
}

/// SQLite integers are signed 64-bit; no count gets near the top.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn timestamp(at: std::time::SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
