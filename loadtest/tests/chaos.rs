//! `chaos` against the real local cluster of `scripts/cluster.sh` (Redis
//! with AOF, three parley nodes, nginx), started in a temporary directory:
//! a node and then Redis are killed and restarted mid-run, and the run
//! must recover with no acknowledged message lost or duplicated, while
//! counting the sends Redis's absence refused. Bounded to well under a
//! minute.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use parley_loadtest::cli::Cli;
use parley_loadtest::run_scenario;

/// The workspace root (the load tester is one of its members).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The parley binary: `PARLEY_BIN`, or this profile's build, brought up
/// to date first (the load tester only links the library).
fn parley_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PARLEY_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--quiet", "-p", "parley", "--bin", "parley"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building parley failed");
    // target/debug/deps/chaos-HASH -> target/debug/parley
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe.parent().and_then(Path::parent).expect("target dir");
    profile.join("parley")
}

/// A cluster in a temporary directory, stopped when dropped.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!("parley-lt-chaos-{}", std::process::id()));
        let cluster = Cluster {
            dir,
            bin: parley_bin(),
        };
        let out = cluster.script("start");
        assert!(
            out.status.success(),
            "cluster.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn script(&self, command: &str) -> std::process::Output {
        Command::new("bash")
            .arg(root().join("scripts/cluster.sh"))
            .arg(command)
            .arg(&self.dir)
            .env("PARLEY_BIN", &self.bin)
            .env("CLUSTER_LOG_LEVEL", "warn")
            .env("CLUSTER_ALLOW_GUESTS", "1")
            .env(
                "CLUSTER_PARLEY_ARGS",
                "--redis @REDIS_URL@ --message-rate 100000",
            )
            .env("CLUSTER_WAIT_SECS", "20")
            .output()
            .expect("cluster.sh")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script("stop");
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[test]
fn a_node_and_a_redis_restart_lose_no_acked_message() {
    let cluster = Cluster::start();
    let dir = cluster.dir.to_string_lossy().into_owned();
    let script = root().join("scripts/cluster.sh");
    let script = script.to_string_lossy();
    let cli = Cli::parse_from([
        "parley-loadtest",
        "--quiet",
        "--threads",
        "2",
        "--timeout",
        "45",
        "--connect-timeout",
        "5",
        "chaos",
        "--cluster-dir",
        &dir,
        "--cluster-script",
        &script,
        "--rooms",
        "2",
        "--members",
        "12",
        "--publishers",
        "4",
        "--rate",
        "100",
        "--duration",
        "8",
        "--grace",
        "15",
        "--kill-node-at",
        "1.5",
        "--node-down-for",
        "1.5",
        "--kill-redis-at",
        "4",
        "--redis-down-for",
        "1.5",
    ]);
    let report = run_scenario(&cli.common, &cli.scenario).expect("run");
    let table = report.table();
    assert!(report.ok(), "{table}");
    let figure = |key: &str| {
        report
            .figure(key)
            .unwrap_or_else(|| panic!("no {key}\n{table}"))
    };
    assert_eq!(figure("lost"), 0.0, "{table}");
    assert_eq!(figure("duplicated"), 0.0, "{table}");
    assert_eq!(figure("acked"), figure("sent"), "{table}");
    assert!(figure("refused_unavailable") > 0.0, "{table}");
    assert!(figure("node_members_cut") > 0.0, "{table}");
    assert!(figure("redis_caught_up_after") > 0.0, "{table}");
}
