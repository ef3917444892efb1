//! Entry point: flags, logging, one scenario, the report. Exit status 0
//! when every check passed, 1 when a check failed, 2 when the run could
//! not be carried out.

use std::process::ExitCode;

use clap::Parser;
use parley_loadtest::cli::Cli;
use parley_loadtest::{plot, run_scenario};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = std::env::var("LOADTEST_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    if let Err(e) = simple_logger::SimpleLogger::new().with_level(level).init() {
        eprintln!("logging: {e}");
    }

    let report = match run_scenario(&cli.common, &cli.scenario) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("parley-loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    if let (Some(path), Some(series)) = (&cli.common.plot, &report.latency) {
        if let Err(e) = plot::write(path, series) {
            eprintln!("parley-loadtest: plot: {e}");
        }
    }
    if cli.common.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
