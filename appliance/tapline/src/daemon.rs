//! `tapline run`: every service under one supervisor, for as long as systemd wants us.
//!
//! The lifecycle, in order:
//! 1. Read the config, prepare the data directory, open (and migrate) the database, load or
//!    make the TLS certificate. A failure here exits non-zero before anything listens.
//! 2. Start the services. When every one has bound its listeners (or, failing that, is being
//!    restarted, which the status line then says): `READY=1` to systemd, one `listening:` line
//!    per endpoint on stdout, and the watchdog loop starts.
//! 3. `STATUS=` follows every change of a service's state.
//! 4. SIGTERM or SIGINT: `STOPPING=1`, every service drains (open recordings are finalised,
//!    connections finish), the database is checkpointed into one file, exit 0.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tapline_config::Config;
use tapline_runtime::{CancellationToken, Notifier, RestartPolicy, Supervisor, SupervisorHandle};
use tapline_store::Store;
use tapline_web::{Web, WebOptions, WebState};
use tokio::signal::unix::{SignalKind, signal};

use crate::recording;

pub(crate) fn run_from_file(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    run(config, |_| {})
}

/// Runs the daemon; `on_ready` is called once, when every service is ready.
pub(crate) fn run(config: Config, on_ready: impl FnOnce(&SupervisorHandle)) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tapline")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, on_ready))
}

async fn serve(config: Config, on_ready: impl FnOnce(&SupervisorHandle)) -> anyhow::Result<()> {
    let notifier = Notifier::from_env();
    let data_dir = config.storage.data_dir.clone();
    tapline_provisioning::prepare_data_dir(&data_dir)?;
    let store = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || Store::open_in(&data_dir)).await??
    };
    let store = Arc::new(store);

    let mut registry = Registry::with_prefix("tapline");
    registry.register(
        "build",
        "Version of the running Tapline",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    let mut supervisor = Supervisor::new(RestartPolicy::default(), &mut registry);

    let setup = recording::RecorderSetup {
        store: store.clone(),
        data_dir: data_dir.clone(),
        recording: config.recording.clone(),
    };
    if let Some(path) = config.capture.replay.clone() {
        let metrics = recording::Metrics::register(&mut registry, "replay");
        let setup = setup.clone();
        supervisor.add("capture", move |ctx| {
            recording::replay(ctx, path.clone(), setup.clone(), metrics.clone())
        });
    }
    if !config.capture.interfaces.is_empty() {
        let metrics = recording::LiveMetrics::register(&mut registry);
        let interfaces = config.capture.interfaces.clone();
        supervisor.add("span", move |ctx| {
            recording::live(ctx, interfaces.clone(), setup.clone(), metrics.clone())
        });
    }

    let turn_metrics = tapline_turn::shell::Metrics::register(&mut registry);

    let cert_paths = tapline_web::tls::CertPaths::in_data_dir(&data_dir);
    let (tls, certificate, _) = tapline_web::tls::load_reloadable(
        &cert_paths,
        &tapline_web::tls::default_names(config.web.listen),
    )?;
    let turn_tls = tls.clone();
    let mut web_state = WebState::new(
        supervisor.handle(),
        store.clone(),
        Arc::new(registry),
        WebOptions::from_config(&config),
    );
    web_state.certificate = Some(certificate);
    // Scope as the agent directory decides it, for every route that names an agent.
    web_state.scopes = Arc::new(tapline_web::scope::DirectoryScopes::new(store.clone()));
    let web = Web {
        listen: config.web.listen,
        http_redirect_listen: config.web.http_redirect_listen,
        tls,
        state: web_state,
    };
    supervisor.add("web", move |ctx| tapline_web::run(ctx, web.clone()));

    let sftp =
        tapline_sftp::SftpServer::new(&config.sftp, &config.tenant.name, &data_dir, store.clone());
    supervisor.add("sftp", move |ctx| tapline_sftp::run(ctx, sftp.clone()));
    let index_job = tapline_index::IndexJob::new(store.clone(), &config);
    supervisor.add("index", move |ctx| {
        tapline_index::run(ctx, index_job.clone())
    });
    let audit_store = store.clone();
    supervisor.add("audit-head", move |ctx| {
        crate::audit_cmd::log_chain_head(ctx, audit_store.clone())
    });
    // The STUN/TURN relay, with the web UI's certificate for `turn.tls_listen`; each ended
    // allocation becomes a `turn_allocations` row, written in batches off its path.
    let (turn_records, turn_record_writer) = crate::turn_cmd::record_allocations(store.clone());
    let turn =
        crate::turn_cmd::shell_config(&config, Some(turn_tls), turn_metrics, Some(turn_records))?;
    supervisor.add("turn", move |ctx| {
        tapline_turn::shell::run(ctx, turn.clone())
    });

    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let services = tokio::spawn(supervisor.run(shutdown.clone()));
    let mut stop = StopSignals::new()?;
    notifier.status("starting");

    let ready = tokio::select! {
        () = handle.wait_started() => true,
        name = stop.recv() => {
            tracing::info!(signal = name, "asked to stop while starting");
            false
        }
    };
    if ready {
        announce(&handle, &notifier);
        on_ready(&handle);
        spawn_status_updates(handle.clone(), notifier.clone(), shutdown.clone());
        if let Some(interval) = notifier.watchdog_interval() {
            spawn_watchdog(interval, store.clone(), notifier.clone(), shutdown.clone());
        }
        let name = stop.recv().await;
        tracing::info!(signal = name, "stopping: finishing open work");
    }

    notifier.stopping("stopping: finishing open work");
    shutdown.cancel();
    services.await.context("the supervisor failed")?;
    // The relay is gone with the supervisor, so its rows are all queued: write them.
    turn_record_writer
        .await
        .context("the TURN allocation writer failed")?;
    let checkpoint_store = store.clone();
    tokio::task::spawn_blocking(move || checkpoint_store.checkpoint())
        .await?
        .context("cannot checkpoint the database")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// READY=1 and the endpoints, for systemd and for whoever started us by hand.
fn announce(handle: &SupervisorHandle, notifier: &Notifier) {
    let summary = handle.summary();
    notifier.ready(&summary);
    for status in handle.statuses() {
        for endpoint in &status.endpoints {
            println!("listening: {} {endpoint}", status.name);
        }
    }
    tracing::info!(status = %summary, "ready");
}

fn spawn_status_updates(handle: SupervisorHandle, notifier: Notifier, shutdown: CancellationToken) {
    let mut changes = handle.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
            notifier.status(&handle.summary());
        }
    });
}

fn spawn_watchdog(
    interval: std::time::Duration,
    store: Arc<Store>,
    notifier: Notifier,
    shutdown: CancellationToken,
) {
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog enabled"
    );
    // A check still waiting on the database when the next one is due counts as a failure,
    // and does not start another: checks never pile up behind a stuck lock.
    let in_flight = Arc::new(AtomicBool::new(false));
    let check = move || {
        let store = store.clone();
        let in_flight = in_flight.clone();
        async move {
            if in_flight.swap(true, Ordering::AcqRel) {
                return Err("the previous health check is still waiting".to_owned());
            }
            let done = in_flight.clone();
            let result = tokio::task::spawn_blocking(move || {
                let result = store.check_writable();
                done.store(false, Ordering::Release);
                result
            })
            .await;
            match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(format!("the database cannot be written: {err}")),
                Err(err) => Err(format!("the database check failed: {err}")),
            }
        }
    };
    tokio::spawn(tapline_runtime::watchdog::run(
        interval,
        check,
        move || notifier.watchdog(),
        shutdown,
    ));
}

/// SIGTERM (systemd's stop) and SIGINT (Ctrl-C) both mean: drain and exit.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
