//! Each subsystem (capture, recorder, SFTP, TURN, web, broker) runs as a supervised service.
//!
//! A service is a function from a [`ServiceContext`] to a future. When that future returns an
//! error, returns early or panics, the failure is logged (the whole error chain, once, here),
//! counted, and the service is started again after a backoff that doubles up to a ceiling and
//! starts over once a run has stayed up for a while. The other services keep serving.
//!
//! On shutdown every service sees its context's token cancelled and has
//! [`RestartPolicy::drain_timeout`] to finish what it holds (finalise recordings, close
//! sessions); a service still running then is aborted and the fact is logged.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The error a service returns: opaque to the supervisor, which only logs it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

type ServiceFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type Factory = Arc<dyn Fn(ServiceContext) -> ServiceFuture + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Wait before the first restart; doubles with each failure in a row.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A run that lasted this long counts as healthy: the next failure backs off from the start.
    pub stable_after: Duration,
    /// How long services get to finish their work on shutdown.
    pub drain_timeout: Duration,
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            // Below systemd's default TimeoutStopSec (90 s) and the unit's own (30 s).
            drain_timeout: Duration::from_secs(20),
        }
    }
}

impl RestartPolicy {
    fn backoff(&self, failures_in_a_row: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures_in_a_row);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Running; see [`ServiceStatus::ready`] for whether it has bound what it serves.
    Running,
    /// Failed; waiting to be started again.
    Backoff,
    /// Shutdown asked it to finish.
    Stopping,
    Stopped,
}

#[derive(Debug, Clone)]
pub struct ServiceStatus {
    pub name: &'static str,
    pub state: ServiceState,
    /// The current run has said it is ready (its listeners are bound).
    pub ready: bool,
    pub restarts: u64,
    /// Why the last run failed, if one did.
    pub last_error: Option<String>,
    /// What the current run serves, e.g. `https://127.0.0.1:443/`, as it told us when ready.
    pub endpoints: Vec<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

/// State shared by the supervisor, its services' contexts and any number of handles.
#[derive(Debug)]
struct Shared {
    statuses: Mutex<Vec<ServiceStatus>>,
    /// Bumped on every status change, so watchers wake up.
    changes: watch::Sender<u64>,
    restarts: Family<ServiceLabels, Counter>,
    up: Family<ServiceLabels, Gauge>,
}

impl Shared {
    fn update(&self, index: usize, change: impl FnOnce(&mut ServiceStatus)) {
        // Statuses are plain values replaced whole, so a poisoned lock holds nothing torn.
        let mut statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        let status = &mut statuses[index];
        change(status);
        let up = i64::from(status.state == ServiceState::Running && status.ready);
        self.up.get_or_create(&labels(status.name)).set(up);
        drop(statuses);
        self.changes.send_modify(|generation| *generation += 1);
    }

    fn statuses(&self) -> Vec<ServiceStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn labels(name: &str) -> ServiceLabels {
    ServiceLabels {
        service: name.to_owned(),
    }
}

/// What a running service gets from the supervisor.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    name: &'static str,
    index: usize,
    shutdown: CancellationToken,
    shared: Arc<Shared>,
}

impl ServiceContext {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Cancelled when the daemon is shutting down: finish up and return `Ok(())`.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Says the service has bound its listeners and serves. The daemon tells systemd it is
    /// ready once every service has said so.
    pub fn set_ready(&self) {
        self.set_ready_at(Vec::new());
    }

    /// [`set_ready`](Self::set_ready), naming what the service now serves (URLs, ports), so
    /// the daemon can tell the operator where to find it.
    pub fn set_ready_at(&self, endpoints: Vec<String>) {
        self.shared.update(self.index, |status| {
            status.ready = true;
            status.endpoints = endpoints;
        });
    }
}

struct Spec {
    name: &'static str,
    factory: Factory,
}

/// Runs services; see the module documentation.
pub struct Supervisor {
    policy: RestartPolicy,
    specs: Vec<Spec>,
    shared: Arc<Shared>,
}

impl Supervisor {
    /// A supervisor whose metrics (`service_restarts_total`, `service_up`) are registered in
    /// `registry`.
    pub fn new(policy: RestartPolicy, registry: &mut Registry) -> Supervisor {
        let shared = Shared {
            statuses: Mutex::new(Vec::new()),
            changes: watch::Sender::new(0),
            restarts: Family::default(),
            up: Family::default(),
        };
        registry.register(
            "service_restarts",
            "Times a service failed and was started again",
            shared.restarts.clone(),
        );
        registry.register(
            "service_up",
            "1 while a service runs and is ready, 0 otherwise",
            shared.up.clone(),
        );
        Supervisor {
            policy,
            specs: Vec::new(),
            shared: Arc::new(shared),
        }
    }

    /// Adds a service. `run` is called again for every restart.
    pub fn add<F, Fut>(&mut self, name: &'static str, run: F)
    where
        F: Fn(ServiceContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let factory: Factory = Arc::new(move |ctx| Box::pin(run(ctx)));
        self.specs.push(Spec { name, factory });
        let mut statuses = self
            .shared
            .statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        statuses.push(ServiceStatus {
            name,
            state: ServiceState::Stopped,
            ready: false,
            restarts: 0,
            last_error: None,
            endpoints: Vec::new(),
        });
        // Create the series now so they read 0 rather than being absent.
        let _ = self.shared.restarts.get_or_create(&labels(name));
        let _ = self.shared.up.get_or_create(&labels(name));
    }

    pub fn handle(&self) -> SupervisorHandle {
        SupervisorHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs every service until `shutdown` is cancelled and all of them have stopped.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, spec) in self.specs.into_iter().enumerate() {
            let ctx = ServiceContext {
                name: spec.name,
                index,
                shutdown: shutdown.clone(),
                shared: self.shared.clone(),
            };
            tasks.spawn(supervise(ctx, spec.factory, self.policy));
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(err) = joined {
                // supervise() itself does not panic; this is only reachable through abort.
                tracing::error!(error = %err, "supervision task ended abnormally");
            }
        }
    }
}

async fn supervise(ctx: ServiceContext, factory: Factory, policy: RestartPolicy) {
    let (name, index, shared) = (ctx.name, ctx.index, ctx.shared.clone());
    let mut failures_in_a_row = 0u32;
    while !ctx.shutdown.is_cancelled() {
        shared.update(index, |s| {
            s.state = ServiceState::Running;
            s.ready = false;
            s.endpoints.clear();
        });
        let started = Instant::now();
        let mut task = tokio::spawn(factory(ctx.clone()));
        let ended = tokio::select! {
            ended = &mut task => ended,
            () = ctx.shutdown.cancelled() => {
                drain(&ctx, task, policy.drain_timeout).await;
                break;
            }
        };
        if ctx.shutdown.is_cancelled() {
            // It saw the shutdown and finished before we did: the same as a drain.
            log_stopped(name, ended);
            break;
        }
        let reason = match ended {
            Ok(Ok(())) => "stopped by itself while it should be running".to_owned(),
            Ok(Err(err)) => error_chain(err.as_ref()),
            Err(err) => join_failure(err),
        };
        if started.elapsed() >= policy.stable_after {
            failures_in_a_row = 0;
        }
        let delay = policy.backoff(failures_in_a_row);
        failures_in_a_row = failures_in_a_row.saturating_add(1);
        tracing::error!(
            service = name,
            error = %reason,
            retry_in_ms = delay.as_millis() as u64,
            "service failed; restarting it after a pause"
        );
        shared.restarts.get_or_create(&labels(name)).inc();
        shared.update(index, |s| {
            s.state = ServiceState::Backoff;
            s.ready = false;
            s.restarts += 1;
            s.last_error = Some(reason);
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = ctx.shutdown.cancelled() => break,
        }
    }
    shared.update(index, |s| {
        s.state = ServiceState::Stopped;
        s.ready = false;
    });
}

/// Gives a running service `timeout` to finish after shutdown was asked for.
async fn drain(
    ctx: &ServiceContext,
    mut task: tokio::task::JoinHandle<Result<(), BoxError>>,
    timeout: Duration,
) {
    ctx.shared
        .update(ctx.index, |s| s.state = ServiceState::Stopping);
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(ended) => log_stopped(ctx.name, ended),
        Err(_) => {
            tracing::error!(
                service = ctx.name,
                timeout_s = timeout.as_secs_f64(),
                "service did not stop in time; aborting it"
            );
            task.abort();
        }
    }
}

/// Logs how a service ended after shutdown was asked for.
fn log_stopped(name: &'static str, ended: Result<Result<(), BoxError>, JoinError>) {
    match ended {
        Ok(Ok(())) => tracing::info!(service = name, "service stopped"),
        Ok(Err(err)) => tracing::error!(
            service = name,
            error = %error_chain(err.as_ref()),
            "service failed while stopping"
        ),
        Err(err) => tracing::error!(
            service = name,
            error = %join_failure(err),
            "service failed while stopping"
        ),
    }
}

/// The error and all its causes on one line, outermost first.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn join_failure(err: JoinError) -> String {
    if !err.is_panic() {
        return "cancelled".to_owned();
    }
    let payload: Box<dyn Any + Send> = err.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a value that is not a message".to_owned());
    format!("panicked: {message}")
}

/// A view of the supervisor for health checks and status lines.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    shared: Arc<Shared>,
}

impl SupervisorHandle {
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        self.shared.statuses()
    }

    /// Every service is running and ready.
    pub fn all_up(&self) -> bool {
        self.statuses()
            .iter()
            .all(|s| s.state == ServiceState::Running && s.ready)
    }

    /// Resolves once every service has said it is ready (or at once when there are none).
    pub async fn wait_all_ready(&self) {
        self.wait_until(|s| s.ready).await;
    }

    /// Resolves once every service has had its first go: it is ready, or it has failed and
    /// is being restarted. The daemon reports itself started at this point, so that one
    /// service that cannot start (a missing capture interface, say) does not hold the others
    /// hostage; it shows as restarting in the status line and in `/health` instead.
    pub async fn wait_started(&self) {
        self.wait_until(|s| s.ready || s.restarts > 0).await;
    }

    async fn wait_until(&self, done: impl Fn(&ServiceStatus) -> bool) {
        let mut changes = self.shared.changes.subscribe();
        while !self.statuses().iter().all(&done) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// A receiver that wakes at every change of any service's status.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// One line for `systemctl status`, e.g. "serving: web, capture; restarting: turn".
    pub fn summary(&self) -> String {
        let statuses = self.statuses();
        let names = |want: fn(&ServiceStatus) -> bool| {
            statuses
                .iter()
                .filter(|s| want(s))
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        let serving = names(|s| s.state == ServiceState::Running && s.ready);
        let starting = names(|s| s.state == ServiceState::Running && !s.ready);
        let failing = names(|s| s.state == ServiceState::Backoff);
        let stopping = names(|s| matches!(s.state, ServiceState::Stopping | ServiceState::Stopped));
        for (label, list) in [
            ("serving", serving),
            ("starting", starting),
            ("restarting", failing),
            ("stopping", stopping),
        ] {
            if !list.is_empty() {
                parts.push(format!("{label}: {list}"));
            }
        }
        if parts.is_empty() {
            "no services".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

#[cfg(test)]
mod tests;
