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

/// A Parley in this process on a free loopback port: two reactors,
/// guests allowed, no message rate limit, then `tweak` applied.
pub fn parley(tweak: impl FnOnce(&mut parley::config::Config)) -> parley::server::Server {
    let mut config = parley::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        reactors: 2,
        log_level: "warn".into(),
        allow_guests: true,
        message_rate: 1_000_000,
        ..Default::default()
    };
    tweak(&mut config);
    parley::server::Server::start(config).expect("start parley")
}

/// Shuts a [`parley`] server down and waits for it.
pub fn stop(server: parley::server::Server) {
    server.shutdown_handle().shutdown();
    server.join();
}

/// Asserts that the run passed and that at least `min_acked` messages were
/// acked, each delivered to `members` members exactly once and in order.
pub fn assert_delivered_once(report: &Report, members: u64, min_acked: u64) {
    let table = report.table();
    assert!(report.ok(), "{table}");
    assert_eq!(figure(report, "lost"), 0, "{table}");
    assert_eq!(figure(report, "duplicated"), 0, "{table}");
    assert_eq!(figure(report, "reordered"), 0, "{table}");
    let acked = figure(report, "acked");
    assert!(acked >= min_acked, "{table}");
    assert_eq!(figure(report, "delivered"), acked * members, "{table}");
}
