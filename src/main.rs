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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    run(config)
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
