//! The long-running shape of the `tapline` daemon, independent of what its services do.
//!
//! - [`batch`]: rows written in batches by one task, retried when the database refuses.
//! - [`supervisor`]: runs each subsystem as a named task, restarts it with backoff when it
//!   fails or panics, and drains them all on shutdown.
//! - [`notify`]: tells systemd (when it is our manager) that we are ready, what we are doing,
//!   that we are alive, and that we are stopping.
//! - [`watchdog`]: the health-checked loop that feeds systemd's watchdog only while healthy.

pub mod batch;
pub mod notify;
pub mod supervisor;
pub mod watchdog;

pub use notify::Notifier;
pub use supervisor::{
    BoxError, RestartPolicy, ServiceContext, ServiceState, ServiceStatus, Supervisor,
    SupervisorHandle,
};
pub use tokio_util::sync::CancellationToken;
