//! Running the load tester in process against an address, and reading
//! the figures of its report.

use std::net::SocketAddr;

use clap::Parser;
use parley_loadtest::cli::Cli;
use parley_loadtest::report::Report;
use parley_loadtest::run_scenario;

/// Runs `extra` (global flags, a scenario and its flags) against
/// `ws://ADDR/ws` on two threads, within 30 s; `Err` when the run could
/// not be carried out.
pub fn try_loadtest(addr: SocketAddr, extra: &[&str]) -> Result<Report, String> {
    let url = format!("ws://{addr}/ws");
    let mut args = vec![
        "parley-loadtest",
        "--url",
        &url,
        "--quiet",
        "--threads",
        "2",
        "--timeout",
        "30",
        "--connect-timeout",
        "5",
    ];
    args.extend_from_slice(extra);
    let cli = Cli::parse_from(args);
    run_scenario(&cli.common, &cli.scenario)
}

/// [`try_loadtest`] for runs that must be carried out.
pub fn loadtest(addr: SocketAddr, extra: &[&str]) -> Report {
    try_loadtest(addr, extra).expect("run")
}

/// A figure of the report, which must have it.
pub fn figure(r: &Report, key: &str) -> u64 {
    r.figure(key).unwrap_or_else(|| panic!("no {key}")) as u64
}
