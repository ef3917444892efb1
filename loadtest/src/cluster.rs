//! The local cluster that `scripts/cluster.sh start DIR` leaves running:
//! its state file (ports, pids, the parley binary) and the script's chaos
//! commands, which only signal processes the script itself started.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::clock::now_ns;

use clap::ValueEnum;

/// Where the load goes in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// nginx in front: cut clients reconnect to a surviving node.
    Nginx,
    /// Every node directly: cut clients wait for their node's restart.
    Nodes,
}

pub struct Cluster {
    dir: PathBuf,
    script: PathBuf,
    state: HashMap<String, String>,
}

impl Cluster {
    /// Reads `DIR/state`, written by `cluster.sh start DIR`.
    pub fn load(dir: &Path, script: &Path) -> Result<Cluster, String> {
        if !script.is_file() {
            return Err(format!("{}: no such script", script.display()));
        }
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            script: script.to_path_buf(),
            state: HashMap::new(),
        };
        cluster.reload()?;
        Ok(cluster)
    }

    /// Reads the state file again (a restart records a new pid).
    pub fn reload(&mut self) -> Result<(), String> {
        let path = self.dir.join("state");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e} (start the cluster first)", path.display()))?;
        self.state = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(())
    }

    /// The recorded pid of a component (`node1`, `redis`).
    pub fn pid(&self, component: &str) -> Result<u32, String> {
        self.get(&format!("{component}_pid"))?
            .parse()
            .map_err(|e| format!("cluster state: {component}_pid: {e}"))
    }

    fn get(&self, key: &str) -> Result<&str, String> {
        self.state
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("cluster state has no {key}"))
    }

    pub fn nodes(&self) -> Result<usize, String> {
        self.get("nodes")?
            .parse()
            .map_err(|e| format!("cluster state: nodes: {e}"))
    }

    /// The WebSocket URLs to load, per `via`.
    pub fn urls(&self, via: Via) -> Result<Vec<String>, String> {
        let url = |port: &str| format!("ws://127.0.0.1:{port}/ws");
        match via {
            Via::Nginx => Ok(vec![url(self.get("nginx_port")?)]),
            Via::Nodes => (1..=self.nodes()?)
                .map(|n| self.get(&format!("node{n}_port")).map(url))
                .collect(),
        }
    }

    /// Runs `cluster.sh ARGS... DIR`, with the binary the cluster was
    /// started with (a restarted node must be the same program). With
    /// `victim`, also watches that pid and calls `died` with the time it
    /// died, at once: the script returns only once the process has been
    /// reaped, which can be seconds later where nothing reaps orphans
    /// promptly.
    pub fn run(
        &self,
        args: &[&str],
        victim: Option<u32>,
        mut died: impl FnMut(u64),
    ) -> Result<(), String> {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script).args(args).arg(&self.dir);
        if let Ok(bin) = self.get("parley_bin") {
            cmd.env("PARLEY_BIN", bin);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let what = || format!("cluster.sh {}", args.join(" "));
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", what()))?;
        let mut watching = victim;
        let status = loop {
            if watching.is_some_and(|pid| !alive(pid)) {
                died(now_ns());
                watching = None;
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(format!("{}: {e}", what())),
            }
        };
        if status.success() {
            return Ok(());
        }
        let mut err = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut err);
        }
        Err(format!("{}: {}", what(), err.trim()))
    }
}

/// Whether `pid` runs: neither gone nor a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}
