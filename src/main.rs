//! `poolguard`: the thin command line over the library.
//!
//! `poolguard --config PATH` serves in the foreground until SIGTERM/SIGINT (SIGHUP reloads
//! feeds). `poolguard check --config PATH` loads the config and every feed and prints each
//! problem as `file:line: reason`, exiting 1 if there is any, so CI and operators can vet an
//! edit before a reload. `poolguard store migrate --from <sqlite> --to <postgres url>` copies
//! a node's evidence into the PostgreSQL several nodes share (docs/SEVERAL-NODES.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use poolguard::config::{Config, Role};

#[derive(Parser)]
#[command(
    version,
    about = "DNS sinkhole resolver that blocks crypto-mining pools"
)]
struct Cli {
    /// Path to config.toml.
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config and every feed; print each problem; exit 1 if any.
    Check,
    /// Make a new API token: prints the token on the first line, then the TOML to append to
    /// the config (only the token's SHA-256 is stored there).
    Token {
        /// viewer, investigator, feeds or admin.
        #[arg(long)]
        role: Role,
        /// Who holds the token (shown in the audit log).
        #[arg(long)]
        name: String,
    },
    /// Make a staff-console account: reads the password from standard input (one line),
    /// prints the `[[console.users]]` TOML to append to the config (only a salted PBKDF2 hash
    /// of the password is stored there).
    ConsoleUser {
        /// viewer, investigator, feeds or admin.
        #[arg(long)]
        role: Role,
        /// The sign-in name (shown in the audit log).
        #[arg(long)]
        name: String,
    },
    /// The evidence store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a node's SQLite evidence (hits, incidents, notes, quarantine, audit, alert
    /// deliveries) into the group's PostgreSQL; resumable, prints the counts. Stop the node
    /// first. The password comes from `--password-file` or the config's `[store]`.
    Migrate {
        /// The node's SQLite store (`[store] path`).
        #[arg(long)]
        from: PathBuf,
        /// `postgres://user@host:port/db` (no password in it).
        #[arg(long)]
        to: String,
        /// File holding the database password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The node name the copied rows carry: the `[store] node` the node will run with
        /// (default: the config's, else the host name).
        #[arg(long)]
        node: Option<String>,
        /// Copy at most this many rows per table in this run (whole hit blocks); the next run
        /// continues.
        #[arg(long)]
        limit: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check) => check(&cli.config),
        Some(Command::Token { role, name }) => poolguard::api::token::cli_output(&name, role)
            .map(|out| {
                println!("{out}");
                true
            })
            .map_err(anyhow::Error::from),
        Some(Command::ConsoleUser { role, name }) => console_user(&name, role).map(|()| true),
        Some(Command::Store {
            command:
                StoreCommand::Migrate {
                    from,
                    to,
                    password_file,
                    node,
                    limit,
                },
        }) => migrate(&cli.config, &from, &to, password_file, node, limit),
        None => serve(&cli.config).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("poolguard: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once. Our errors put their cause in their own message
/// (logs show only the message), and some also return it as their source; anyhow's `{:#}`
/// then printed it twice. A cause the message already holds is not repeated.
fn message(error: &anyhow::Error) -> String {
    let mut out = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// `poolguard console-user`: one line of password from stdin → the config entry.
fn console_user(name: &str, role: Role) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 12 {
        anyhow::bail!("the password must be at least 12 characters");
    }
    let hash = poolguard::console::password::hash(
        password,
        poolguard::console::password::DEFAULT_ITERATIONS,
    );
    let role = format!("{role:?}").to_lowercase();
    println!("[[console.users]]\nname = {name:?}\nrole = \"{role}\"\npassword = \"{hash}\"");
    Ok(())
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .with_context(|| format!("log.level `{}` is not a valid filter", config.log.level))?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // The control plane (reloads, signals, later the API) is light: two threads are plenty.
    // DNS runs on its own per-core current_thread runtimes started by app::start.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("poolguard-ctl")
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;
    runtime.block_on(async {
        let running = poolguard::app::start(config).await?;
        running.run_until_signal().await?;
        Ok(())
    })
}

/// Returns Ok(true) when everything is clean.
fn check(path: &Path) -> anyhow::Result<bool> {
    let config = match Config::load(path) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            println!("{e}");
            return Ok(false);
        }
    };
    let problems = poolguard::feeds::check::check(&config);
    for p in &problems {
        println!("{p}");
    }
    let mut clean = problems.is_empty();
    for problem in poolguard::incidents::config::walled_garden_problems(&config) {
        println!("{}: {problem}", config.path.display());
        clean = false;
    }
    if let Err(e) = poolguard::dns::zones::LocalZones::load(&config) {
        println!("{e}");
        clean = false;
    }
    match poolguard::app::shared::check(&config) {
        Some(Ok(line)) => println!("store: {line}"),
        Some(Err(e)) => {
            println!("store: {e}");
            clean = false;
        }
        None => {}
    }
    if clean {
        println!("ok: {} feeds, no problems", config.feeds.len());
    }
    Ok(clean)
}

/// `poolguard store migrate`; the config file is read when it exists (for `[store]`).
fn migrate(
    config: &Path,
    from: &Path,
    to: &str,
    password_file: Option<PathBuf>,
    node: Option<String>,
    limit: Option<u64>,
) -> anyhow::Result<bool> {
    let config = if config.is_file() {
        Some(Config::load(config)?)
    } else {
        None
    };
    let report = poolguard::app::shared::migrate_store(
        config.as_ref(),
        from,
        to,
        password_file,
        node,
        limit,
    )?;
    if report.id_offset != 0 {
        println!(
            "incident ids: the database had incidents; this node's are shifted by {} (incident N is now N + {})",
            report.id_offset, report.id_offset
        );
    }
    for t in &report.tables {
        println!(
            "{}: {} in SQLite, {} in PostgreSQL ({} there already), {} copied by this run",
            t.table, t.source, t.copied, t.skipped, t.this_run
        );
    }
    if report.complete() {
        println!("complete: every row is in PostgreSQL once");
    } else {
        println!("incomplete (stopped at --limit): run it again to continue");
    }
    Ok(true)
}
