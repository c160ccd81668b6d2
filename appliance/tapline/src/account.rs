//! `tapline account …`: local accounts, the tenant login's SFTP password and lockouts, from
//! the console. Every change is audited as the console user who made it.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tapline_accounts::{Permission, Role, keys, lockout, login};
use tapline_audit::{Actor, events};
use tapline_config::Config;
use tapline_store::Store;
use tapline_store::rusqlite;

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Create an account, or replace the role and password of an existing one.
    ///
    /// Without --password-stdin a one-time password is generated and printed; the account
    /// must change it at its first sign-in.
    Add(AddArgs),
    /// Let an account log in to SFTP with an SSH public key.
    ///
    /// FILE holds the key in OpenSSH's one-line form, as in `id_ed25519.pub`; `-` reads it
    /// from standard input. Ed25519, ECDSA and RSA of at least 2048 bits are accepted.
    AddKey(AddKeyArgs),
    /// Remove one of an account's SSH public keys, by its fingerprint (SHA256:…).
    RemoveKey(RemoveKeyArgs),
    /// Set the SFTP password of the tenant login (user name = `[tenant] name`).
    SftpPassword(SftpPasswordArgs),
    /// List accounts, the tenant login, lockouts and the SSH host key fingerprint.
    List,
    /// Lift the lockout on a login name.
    Unlock(UnlockArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Account name: 1 to 64 letters, digits, '.', '_', '-' or '@'.
    pub(crate) name: String,
    /// Administrator, Supervisor, Auditor or Agent (any case).
    #[arg(long)]
    pub(crate) role: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AddKeyArgs {
    pub(crate) name: String,
    #[arg(long, value_name = "FILE")]
    pub(crate) public_key: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RemoveKeyArgs {
    pub(crate) name: String,
    #[arg(long, value_name = "SHA256:…")]
    pub(crate) fingerprint: String,
}

#[derive(Debug, Args)]
pub(crate) struct SftpPasswordArgs {
    /// Read the password from the first line of standard input (required: the password is
    /// never taken from the command line, where other users could see it).
    #[arg(long, required = true)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UnlockArgs {
    pub(crate) name: String,
}

pub(crate) fn run(config_path: &Path, command: &AccountCommand) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    tapline_provisioning::prepare_data_dir(&config.storage.data_dir)?;
    let store = Store::open_in(&config.storage.data_dir)?;
    // The web UI's Settings may have renamed the tenant; its login is the one SFTP uses.
    let tenant =
        store.read(|conn| tapline_store::settings::tenant_name(conn, &config.tenant.name))?;
    let console = Console::current();
    let actor = console.actor();
    match command {
        AccountCommand::Add(args) => add(&tenant, &store, args, &actor),
        AccountCommand::AddKey(args) => {
            let line = if args.public_key == Path::new("-") {
                std::io::read_to_string(std::io::stdin())
                    .context("cannot read the public key from standard input")?
            } else {
                std::fs::read_to_string(&args.public_key).with_context(|| {
                    format!("cannot read public key file {}", args.public_key.display())
                })?
            };
            let fingerprint = keys::add_key(&store, &args.name, &line, &actor)?;
            println!("Key {fingerprint} may now log in as \"{}\".", args.name);
            Ok(())
        }
        AccountCommand::RemoveKey(args) => {
            if keys::remove_key(&store, &args.name, &args.fingerprint, &actor)? {
                println!("Key {} removed from \"{}\".", args.fingerprint, args.name);
            } else {
                bail!("\"{}\" has no key {}", args.name, args.fingerprint);
            }
            Ok(())
        }
        AccountCommand::SftpPassword(_) => {
            let password = read_password()?;
            login::set_tenant_password(&store, &tenant, &password, &actor)?;
            println!("SFTP password set for the tenant login \"{tenant}\".");
            Ok(())
        }
        AccountCommand::List => list(&config, &tenant, &store),
        AccountCommand::Unlock(args) => unlock(&store, &args.name, &actor),
    }
}

fn add(tenant: &str, store: &Store, args: &AddArgs, actor: &Actor<'_>) -> anyhow::Result<()> {
    let role: Role = args.role.parse()?;
    if args.name.eq_ignore_ascii_case(tenant) {
        bail!(
            "\"{}\" is the tenant login's name (the tenant name of Settings, else `tenant.name`); \
             set its password with `tapline account sftp-password --password-stdin`",
            args.name
        );
    }
    let (password, generated) = if args.password_stdin {
        (read_password()?, false)
    } else {
        (tapline_accounts::generate_password()?, true)
    };
    tapline_accounts::upsert(store, &args.name, role, &password, generated, actor)?;
    println!("Account \"{}\" saved with role {role}.", args.name);
    if generated {
        println!("One-time password (must be changed at first sign-in): {password}");
    }
    Ok(())
}

fn list(config: &Config, tenant: &str, store: &Store) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    let accounts: Vec<(String, String, u32)> = store.read(|conn| {
        let mut statement = conn.prepare(
            "SELECT a.name, a.role, (SELECT count(*) FROM account_keys k WHERE k.account_id = a.id)
             FROM accounts a ORDER BY a.name",
        )?;
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<rusqlite::Result<_>>()
    })?;
    let lockouts = store.read(|conn| lockout::locked(conn, now))?;
    let locked_until = |name: &str| {
        lockouts
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(name))
            .map(|l| l.locked_until.to_string())
    };

    println!(
        "{:<24} {:<14} {:<5} {:<5} LOCKED UNTIL",
        "NAME", "ROLE", "SFTP", "KEYS"
    );
    let tenant_set = login::tenant_password_set(store)?;
    println!(
        "{:<24} {:<14} {:<5} {:<5} {}",
        tenant,
        "(tenant login)",
        if tenant_set { "yes" } else { "no" },
        "-",
        locked_until(tenant).unwrap_or_default()
    );
    for (name, role, keys) in &accounts {
        let sftp = role
            .parse::<Role>()
            .is_ok_and(|role| role.has(Permission::Sftp));
        println!(
            "{:<24} {:<14} {:<5} {:<5} {}",
            name,
            role,
            if sftp { "yes" } else { "no" },
            keys,
            locked_until(name).unwrap_or_default()
        );
    }
    for lockout in lockouts.iter().filter(|l| {
        !l.name.eq_ignore_ascii_case(tenant)
            && !accounts
                .iter()
                .any(|(name, _, _)| name.eq_ignore_ascii_case(&l.name))
    }) {
        println!(
            "{:<24} {:<14} {:<5} {:<5} {}",
            lockout.name, "(no account)", "-", "-", lockout.locked_until
        );
    }
    if !tenant_set {
        println!(
            "\nThe tenant login has no SFTP password yet: set one with \
             `tapline account sftp-password --password-stdin`."
        );
    }
    match tapline_sftp::host_key_fingerprint(&config.storage.data_dir)? {
        Some(fingerprint) => println!("\nSSH host key: {fingerprint}"),
        None => {
            println!("\nSSH host key: not made yet (it is made when the SFTP service first starts)")
        }
    }
    Ok(())
}

fn unlock(store: &Store, name: &str, actor: &Actor<'_>) -> anyhow::Result<()> {
    let lifted = store.write(|tx| {
        let lifted = lockout::lift(tx, name)?;
        if lifted {
            let entry = actor.entry(
                events::ACCOUNT,
                events::LOCKOUT_LIFTED,
                name,
                "",
                serde_json::json!({}),
            );
            tapline_audit::append(tx, &entry)?;
        }
        Ok::<_, rusqlite::Error>(lifted)
    })?;
    if lifted {
        println!("Lockout on \"{name}\" lifted.");
    } else {
        println!("\"{name}\" is not locked out.");
    }
    Ok(())
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

/// The console user a command runs as, for the audit log.
pub(crate) struct Console {
    username: String,
    command_line: String,
}

impl Console {
    pub(crate) fn current() -> Console {
        // Through sudo, the person is SUDO_USER; LOGNAME/USER otherwise. Neither is proof
        // (the console user is root or tapline already), but it is what an auditor needs.
        let user = ["SUDO_USER", "LOGNAME", "USER"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()));
        // The arguments, which never hold a secret: passwords come on standard input.
        let command_line = std::iter::once("tapline".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        Console {
            username: format!("{user} (console)"),
            command_line,
        }
    }

    pub(crate) fn actor(&self) -> Actor<'_> {
        Actor {
            username: &self.username,
            user_ip: "",
            request_uri: &self.command_line,
        }
    }
}
