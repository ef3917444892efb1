//! `idle` and `churn` against a real in-process Parley: short, bounded
//! runs that must complete without errors and report their figures.

mod common;

use clap::Parser;
use common::run::{parley, stop};
use parley_loadtest::cli::Cli;
use parley_loadtest::report::Report;
use parley_loadtest::run_scenario;

fn against_parley(scenario: &[&str]) -> Report {
    let server = parley(|c| c.reactors = 1);
    let url = format!("ws://{}/ws", server.local_addr());
    let pid = std::process::id().to_string();
    let mut args = vec!["parley-loadtest", "--url", &url, "--quiet"];
    args.extend_from_slice(&["--threads", "2", "--timeout", "30", "--server-pid", &pid]);
    args.extend_from_slice(scenario);
    let cli = Cli::parse_from(args);
    let report = run_scenario(&cli.common, &cli.scenario).expect("run");
    stop(server);
    report
}

#[test]
fn idle_holds_every_connection() {
    let r = against_parley(&["idle", "-n", "200", "--rooms", "7", "--hold", "1"]);
    let table = r.table();
    assert!(r.ok(), "{table}");
    assert_eq!(r.figure("joined"), Some(200.0), "{table}");
    assert_eq!(r.figure("connect_errors"), Some(0.0), "{table}");
    assert!(r.figure("server_rss_per_conn").is_some(), "{table}");
    assert!(r.figure("server_rss_per_conn_joined").is_some(), "{table}");
}

#[test]
fn churn_completes_handshakes_and_stops_at_the_limit() {
    let r = against_parley(&[
        "churn",
        "-c",
        "4",
        "--duration",
        "5",
        "--max-handshakes",
        "300",
    ]);
    let table = r.table();
    assert!(r.ok(), "{table}");
    let n = r.figure("handshakes").unwrap_or(0.0);
    assert!((300.0..=304.0).contains(&n), "{table}");
    assert!(r.figure("handshake_p99_us").unwrap_or(0.0) > 0.0, "{table}");
    assert!(r.figure("server_cpu_us_per_handshake").is_some(), "{table}");
}
