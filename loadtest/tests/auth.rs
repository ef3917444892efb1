//! Accounts in the load tester, against a real in-process Parley that
//! refuses guests: tokens minted from the server's key get every member
//! in and lose nothing; a wrong key fails the run at once with 401s, not
//! after its window; sign-up, then log-in on a second run, get tokens from
//! the account API, and a wrong password stops the run before it starts.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::run::{assert_delivered_once, figure, loadtest, parley, stop, try_loadtest};
use parley::server::Server;

/// The server's session key, hex; a test key, never a real one.
const KEY: &str = "5e55105e55105e55105e55105e55105e55105e55105e55105e55105e55105e55";
const OTHER_KEY: &str = "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de";

/// Parley with accounts only: no `allow_guests`.
fn accounts_only() -> Server {
    parley(|c| {
        c.allow_guests = false;
        c.session_key = KEY.into();
        // Hashes cost what the test can afford, not what production needs.
        c.password_iterations = 1_000;
    })
}

/// A key file holding `hex`, unique to this test process and `name`.
fn key_file(name: &str, hex: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("lt-{name}-{}.key", std::process::id()));
    std::fs::write(&path, format!("{hex}\n")).expect("write key file");
    path
}

/// 2 rooms of 10 members, 4 publishing for `secs` seconds, with `auth`.
fn fanout_args<'a>(auth: &[&'a str], secs: &'a str) -> Vec<&'a str> {
    let mut args = auth.to_vec();
    args.extend_from_slice(&["fanout", "--rooms", "2", "--members", "10"]);
    args.extend_from_slice(&["--publishers", "4", "--rate", "100"]);
    args.extend_from_slice(&["--duration", secs, "--grace", "5"]);
    args
}

#[test]
fn minted_tokens_get_every_member_in_and_lose_nothing() {
    let server = accounts_only();
    let key = key_file("minted", KEY);
    let args = fanout_args(&["--session-key-file", key.to_str().unwrap()], "1");
    let report = loadtest(server.local_addr(), &args);
    std::fs::remove_file(&key).ok();
    stop(server);

    assert_eq!(figure(&report, "joined"), 20, "{}", report.table());
    assert_delivered_once(&report, 10, 50);
}

#[test]
fn a_wrong_key_fails_at_once_with_401s() {
    let server = accounts_only();
    let key = key_file("wrong", OTHER_KEY);
    // A window the run must not wait out.
    let args = fanout_args(&["--session-key-file", key.to_str().unwrap()], "20");
    let started = Instant::now();
    let report = loadtest(server.local_addr(), &args);
    let took = started.elapsed();
    std::fs::remove_file(&key).ok();
    stop(server);

    let table = report.table();
    assert!(!report.ok(), "{table}");
    assert_eq!(figure(&report, "joined"), 0, "{table}");
    let refused = report
        .failures
        .iter()
        .any(|f| f.contains("20 of 20 never joined") && f.contains("20× upgrade refused: 401"));
    assert!(refused, "{table}");
    assert!(took < Duration::from_secs(10), "took {took:?}\n{table}");
}

#[test]
fn signup_then_login_get_tokens_and_a_wrong_password_stops_the_run() {
    let server = accounts_only();
    let addr = server.local_addr();
    let small: &[&str] = &[
        "--signup",
        "correct horse battery",
        "--name-prefix",
        "lt-signup-",
        "fanout",
        "--rooms",
        "1",
        "--members",
        "4",
        "--rate",
        "20",
        "--duration",
        "1",
        "--grace",
        "3",
    ];
    // First run: new accounts (201); second run: taken names, log-in.
    for round in ["signup", "login"] {
        let report = loadtest(addr, small);
        let table = report.table();
        assert!(report.ok(), "{round}: {table}");
        assert_eq!(figure(&report, "joined"), 4, "{round}: {table}");
        assert_eq!(figure(&report, "lost"), 0, "{round}: {table}");
    }
    let mut wrong = small.to_vec();
    wrong[1] = "not the password";
    let err = try_loadtest(addr, &wrong).err().expect("a refused log-in");
    stop(server);
    assert!(err.contains("HTTP 401 invalid_credentials"), "{err}");
}
