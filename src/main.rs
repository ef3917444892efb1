//! The `parley` binary: read the configuration, start the server, and turn
//! SIGINT/SIGTERM into a graceful shutdown (a second signal exits at once).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use parley::config::{self, Config, ConfigError, FileSettings, FlagSettings};
use parley::server::Server;

/// A horizontally scalable live chat server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML; see conf/parley.toml for every key).
    #[arg(long, env = "PARLEY_CONFIG")]
    config: Option<PathBuf>,

    #[command(flatten)]
    settings: FlagSettings,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print a session token for USER, signed with the configured
    /// session key (for scripts and the load tester).
    MintToken {
        user: String,
        /// Seconds the token stays valid.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let command = cli.command.take();
    let config = match load(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("parley: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = simple_logger::SimpleLogger::new()
        .with_level(config.level())
        .with_utc_timestamps()
        .init()
    {
        eprintln!("parley: cannot start logging: {e}");
    }
    match command {
        None => run(config),
        Some(Command::MintToken { user, ttl_secs }) => mint_token(&config, &user, ttl_secs),
    }
}

fn mint_token(config: &Config, user: &str, ttl_secs: u64) -> ExitCode {
    if !parley::chat::names::is_valid_user(user) {
        eprintln!("parley: {user:?} is not a valid user name");
        return ExitCode::from(2);
    }
    let secret = match config.session_secret() {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            eprintln!("parley: no session_key configured; the token would match no server");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("parley: {e}");
            return ExitCode::from(2);
        }
    };
    let expires = parley::auth::unix_now().saturating_add(ttl_secs);
    let (token, _) = parley::auth::token::Signer::new(&secret).issue(user, expires);
    println!("{token}");
    ExitCode::SUCCESS
}

fn load(cli: Cli) -> Result<Config, ConfigError> {
    let file = match &cli.config {
        Some(path) => config::read_file(path)?,
        None => FileSettings::default(),
    };
    let config = Config::layered(file, cli.settings);
    config.validate()?;
    Ok(config)
}

fn run(config: Config) -> ExitCode {
    let reactors = config.reactor_count();
    let echo = config.echo;
    let broker = if config.redis.is_empty() {
        "embedded broker".to_string()
    } else {
        format!("redis broker at {}", redacted(&config.redis))
    };
    let server = match Server::start(config) {
        Ok(server) => server,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "listening on {} with {reactors} reactors ({broker}{})",
        server.local_addr(),
        if echo { ", /echo enabled" } else { "" }
    );

    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            log::error!("cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = server.shutdown_handle();
    std::thread::spawn(move || {
        let mut seen = 0;
        for signal in signals.forever() {
            seen += 1;
            if seen > 1 {
                log::warn!("second signal {signal}: exiting now");
                std::process::exit(1);
            }
            log::info!("signal {signal}: shutting down");
            shutdown.shutdown();
        }
    });
    server.join();
    log::info!("stopped");
    ExitCode::SUCCESS
}

/// A Redis URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}
