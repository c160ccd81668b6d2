//! `tapline demo`: provision the demo directory, give `admin` a one-time password, run.

use anyhow::Context;
use tapline_config::Config;
use tapline_provisioning::demo;
use tapline_store::Store;

use crate::cli::{Cli, DemoArgs, config_given};

pub(crate) fn run(cli: &Cli, args: &DemoArgs) -> anyhow::Result<()> {
    let config_path = if config_given(cli) {
        cli.config.clone()
    } else {
        demo::prepare(&args.dir)
            .with_context(|| format!("cannot set up the demo in {}", args.dir.display()))?
    };
    let config = Config::load(&config_path)?;
    let data_dir = config.storage.data_dir.clone();
    tapline_provisioning::prepare_data_dir(&data_dir)?;
    let (password, sftp_password) = {
        let store = Store::open_in(&data_dir)?;
        (
            demo::reset_admin(&store)?,
            demo::reset_tenant_sftp(&store, &config.tenant.name)?,
        )
    };
    let tenant = config.tenant.name.clone();
    let replay = config.capture.replay.clone();
    crate::daemon::run(config, move |handle| {
        let endpoint = |service: &str| {
            handle
                .statuses()
                .into_iter()
                .find(|s| s.name == service)
                .and_then(|s| s.endpoints.first().cloned())
                .unwrap_or_default()
        };
        let web = endpoint("web");
        let sftp = endpoint("sftp");
        println!();
        println!("Tapline demo is running. Press Ctrl-C to stop.");
        println!("  Web (HTTPS)   {web}");
        println!("  Health        {web}health");
        println!("  Metrics       {web}metrics");
        println!(
            "  Certificate   {}",
            data_dir.join("tls/cert.pem").display()
        );
        println!("  Account       {} / {password}", demo::ADMIN);
        println!("                (one-time password: it must be changed at first sign-in)");
        println!("  SFTP          {sftp}");
        println!("  SFTP login    {tenant} / {sftp_password}");
        if let Some(replay) = &replay {
            println!("  SPAN source   {} replayed in a loop", replay.display());
        }
        println!("  Data          {}", data_dir.display());
        println!("  Config        {}", config_path.display());
        println!();
    })
}
