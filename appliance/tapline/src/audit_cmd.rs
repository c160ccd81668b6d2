//! `tapline audit …`: checks on the activity audit log from the console.

use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tapline_audit::Head;
use tapline_config::Config;
use tapline_store::Store;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Walk the hash chain from the first row and name the first row that breaks it.
    ///
    /// With --head (a chain head logged earlier to the system journal, `ID:HASH`), also
    /// prove that that row is still there, unchanged: rows removed from the end of the log
    /// are found that way.
    Verify(VerifyArgs),
    /// Print the chain head (`ID:HASH`), to keep somewhere outside the appliance.
    Head,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[arg(long, value_name = "ID:HASH")]
    pub(crate) head: Option<String>,
}

pub(crate) fn run(config_path: &Path, command: &AuditCommand) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    tapline_provisioning::prepare_data_dir(&config.storage.data_dir)?;
    let store = Store::open_in(&config.storage.data_dir)?;
    match command {
        AuditCommand::Verify(args) => {
            let expected = args.head.as_deref().map(parse_head).transpose()?;
            let result = store.read(|conn| {
                tapline_audit::verify(conn, expected.as_ref()).map_err(|err| match err {
                    tapline_audit::AuditError::Store(err) => err,
                })
            })?;
            if let Some(broken) = result.broken {
                bail!(
                    "the audit log is broken at row {}: {} ({} rows checked)",
                    broken.id,
                    broken.reason,
                    result.rows
                );
            }
            match result.head {
                Some(head) => println!("audit log intact: {} rows, head {head}", result.rows),
                None => println!("audit log intact: empty"),
            }
            Ok(())
        }
        AuditCommand::Head => {
            match store.read(tapline_audit::head)? {
                Some(head) => println!("{head}"),
                None => println!("empty"),
            }
            Ok(())
        }
    }
}

fn parse_head(text: &str) -> anyhow::Result<Head> {
    let (id, hash) = text
        .split_once(':')
        .context("--head takes ID:HASH, as `tapline audit head` prints it")?;
    let id = id
        .parse()
        .with_context(|| format!("--head: \"{id}\" is not a row number"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--head: \"{hash}\" is not a SHA-256 in hex");
    }
    Ok(Head {
        id,
        row_hash: hash.to_ascii_lowercase(),
    })
}

/// How often the chain head goes to the system journal.
const HEAD_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Writes the audit log's chain head to the log (the system journal under systemd) at start,
/// every hour and at stop, so that rewriting the database later shows against a record kept
/// outside it: `tapline audit verify --head ID:HASH` with any head from the journal.
pub(crate) async fn log_chain_head(
    ctx: tapline_runtime::ServiceContext,
    store: std::sync::Arc<Store>,
) -> Result<(), tapline_runtime::BoxError> {
    ctx.set_ready();
    let mut ticks = tokio::time::interval(HEAD_LOG_INTERVAL);
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            () = ctx.shutdown().cancelled() => true,
        };
        let reader = store.clone();
        let head = tokio::task::spawn_blocking(move || reader.read(tapline_audit::head)).await??;
        // Hourly even when unchanged: the journal's own timestamps then show that the log was
        // watched throughout.
        match head {
            Some(head) => tracing::info!(audit_head = %head, "audit log chain head"),
            None => tracing::info!("audit log chain head: the log is empty"),
        }
        if stopping {
            return Ok(());
        }
    }
}
