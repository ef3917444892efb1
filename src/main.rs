//! The `parley` binary: read the configuration, start the server, and turn
//! SIGTERM into a drain and SIGINT into a quick graceful shutdown (a second
//! signal exits at once). `check-config` and `print-config` inspect a
//! configuration without starting anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use parley::auth::username;
use parley::config::{self, Config, ConfigError, FileSettings, FlagSettings};
use parley::server::Server;

/// A horizontally scalable live chat server.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Config file (TOML; see conf/parley.toml for every key).
    #[arg(long, env = "PARLEY_CONFIG")]
    config: Option<PathBuf>,

    #[command(flatten)]
    settings: FlagSettings,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and print "ok", or the error naming the key
    /// (exit status 2); starts nothing.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Print the effective configuration (file, then PARLEY_* variables,
    /// then flags) as TOML, with secrets redacted; starts nothing.
    PrintConfig {
        /// Config file (TOML).
        #[arg(long, env = "PARLEY_CONFIG")]
        config: Option<PathBuf>,

        // Boxed: the flag table is large next to the other variant.
        #[command(flatten)]
        settings: Box<FlagSettings>,
    },
    /// Print a session token for USER, signed with the configured session
    /// key (for scripts and the load tester); starts nothing. USER follows
    /// the sign-up rules and is lower-cased as sign-up does.
    MintToken {
        user: String,
        /// Seconds the token stays valid (at least 1).
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// Config file (TOML).
        #[arg(long, env = "PARLEY_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<FlagSettings>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli_error(&e),
    };
    let (config, settings) = match cli.command {
        Some(Command::CheckConfig { file }) => return check_config(&file),
        Some(Command::PrintConfig { config, settings }) => return print_config(config, *settings),
        Some(Command::MintToken {
            user,
            ttl_secs,
            config,
            settings,
        }) => {
            return match load(config, *settings) {
                Ok(config) => mint_token(&config, &user, ttl_secs),
                Err(e) => {
                    eprintln!("parley: configuration error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        None => (cli.config, cli.settings),
    };
    let config = match load(config, settings) {
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
    run(config)
}

/// Reports a command-line error; a bad `PARLEY_*` value is a configuration
/// error naming its variable (clap would name the flag).
fn cli_error(e: &clap::Error) -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    match config::flags::env_value_error(e, &args, |var| std::env::var_os(var)) {
        Some(message) => {
            eprintln!("parley: configuration error: {message}");
            ExitCode::from(2)
        }
        None => e.exit(),
    }
}

/// Signs a token for `raw` as sign-up would name it: a name nobody could
/// sign up with gets no token either.
fn mint_token(config: &Config, raw: &str, ttl_secs: u64) -> ExitCode {
    let Some(user) = username::for_new_account(raw) else {
        eprintln!(
            "parley: {raw:?} is not a valid user name: {}",
            username::RULE
        );
        return ExitCode::from(2);
    };
    if user != raw {
        eprintln!("parley: minting for {user:?} (user names are lower case)");
    }
    if ttl_secs == 0 {
        eprintln!(
            "parley: --ttl-secs must be at least 1; a 0-second token is expired when printed"
        );
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
    let (token, _) = parley::auth::token::Signer::new(&secret).issue(&user, expires);
    println!("{token}");
    ExitCode::SUCCESS
}

fn load(path: Option<PathBuf>, flags: FlagSettings) -> Result<Config, ConfigError> {
    let file = match &path {
        Some(path) => config::read_file(path)?,
        None => FileSettings::default(),
    };
    let config = Config::layered(file, flags);
    config.validate()?;
    Ok(config)
}

/// The file alone over the defaults: what it would start with.
fn check_config(path: &std::path::Path) -> ExitCode {
    let checked = config::read_file(path).and_then(|file| {
        let config = Config::layered(file, FlagSettings::default());
        config.validate()
    });
    match checked {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parley: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_config(path: Option<PathBuf>, flags: FlagSettings) -> ExitCode {
    let shown = load(path, flags)
        .and_then(|config| parley::print_config::to_toml(&config).map_err(ConfigError));
    match shown {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parley: configuration error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(config: Config) -> ExitCode {
    let reactors = config.reactor_count();
    let workers = config.auth_worker_count();
    let echo = config.echo;
    let broker = if config.redis.is_empty() {
        "embedded broker".to_string()
    } else {
        format!("redis broker at {}", redacted(&config.redis))
    };
    // Before the listeners open: once clients arrive they may take every
    // descriptor, and the signal pipe needs two.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            log::error!("cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::start(config) {
        Ok(server) => server,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "listening on {} with {reactors} reactors, {workers} auth workers ({broker}{})",
        server.local_addr(),
        if echo { ", /echo enabled" } else { "" }
    );

    let shutdown = server.shutdown_handle();
    std::thread::spawn(move || {
        let mut seen = 0;
        for signal in signals.forever() {
            seen += 1;
            if seen > 1 {
                log::warn!("second signal {signal}: exiting now");
                std::process::exit(1);
            }
            if signal == SIGTERM {
                log::info!("SIGTERM: draining");
                shutdown.drain();
            } else {
                log::info!("signal {signal}: shutting down");
                shutdown.shutdown();
            }
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
