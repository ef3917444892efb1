//! Command-line flags. Flags shared by every scenario are global, so they
//! may come before or after the subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cluster::Via;
use crate::proto::{Protocol, Templates};

#[derive(Debug, Parser)]
#[command(name = "parley-loadtest", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Server WebSocket URL; repeat to spread connections over nodes.
    #[arg(long = "url", global = true, default_value = "ws://127.0.0.1:8080/ws")]
    pub urls: Vec<String>,
    /// Event-loop threads; 0 means one per core.
    #[arg(long, global = true, default_value_t = 0)]
    pub threads: usize,
    /// Loopback source addresses 127.0.0.1..=127.0.0.N to connect from.
    #[arg(long, global = true, default_value_t = 16)]
    pub source_addrs: u8,
    /// Server process to measure (RSS, CPU); repeat for several.
    #[arg(long = "server-pid", global = true)]
    pub server_pids: Vec<u32>,
    /// Prefix of client names: guest `?name=PREFIXN`, or user PREFIXN
    /// with --session-key-file or --signup (then lower case only).
    #[arg(long, global = true, default_value = "lt")]
    pub name_prefix: String,
    /// Connect as users, with tokens minted here from the server's session
    /// key (a file of hex, as the server's session_key_file); sent as
    /// `Authorization: Bearer`. The server need not allow guests.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "signup")]
    pub session_key_file: Option<PathBuf>,
    /// Connect as users that sign up (POST /api/signup, or /api/login if
    /// the name is taken) with this password before the run, each within
    /// --connect-timeout. Slow: the server hashes every password.
    #[arg(long, global = true, value_name = "PASSWORD")]
    pub signup: Option<String>,
    /// Seconds a connect plus upgrade may take.
    #[arg(long, global = true, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Upgrades in progress at once, per thread.
    #[arg(long, global = true, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Hard limit on the whole run in seconds (0: phases plus 60 s).
    #[arg(long, global = true, default_value_t = 0)]
    pub timeout: u64,
    /// Print one JSON object with every figure instead of the table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Write latency charts to this SVG file.
    #[arg(long, global = true)]
    pub plot: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long, global = true)]
    pub quiet: bool,
    #[arg(long, global = true, value_enum, default_value_t = ProtocolKind::Parley)]
    pub protocol: ProtocolKind,
    /// Custom protocol: the join frame; `{room}` is substituted.
    #[arg(
        long,
        global = true,
        default_value = r#"{"type":"join","room":"{room}"}"#
    )]
    pub join_template: String,
    /// Custom protocol: the send frame; `{room}` and `{text}` are
    /// substituted.
    #[arg(
        long,
        global = true,
        default_value = r#"{"type":"msg","room":"{room}","text":"{text}"}"#
    )]
    pub send_template: String,
    /// Custom protocol: a substring of the frame that confirms a join.
    #[arg(long, global = true, default_value = r#""type":"joined""#)]
    pub joined_pattern: String,
    /// Custom protocol: a substring of the frame that acks a send.
    #[arg(long, global = true)]
    pub ack_pattern: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolKind {
    Parley,
    Custom,
}

impl Common {
    pub fn protocol(&self) -> Protocol {
        match self.protocol {
            ProtocolKind::Parley => Protocol::Parley,
            ProtocolKind::Custom => Protocol::Custom(Templates {
                join: self.join_template.clone(),
                send: self.send_template.clone(),
                joined: self.joined_pattern.clone(),
                ack: self.ack_pattern.clone(),
            }),
        }
    }

    pub fn thread_count(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Open connections, join rooms, hold them; server RSS per connection.
    Idle(IdleArgs),
    /// Rooms of members and publishers at a rate; latency and correctness.
    Fanout(FanoutArgs),
    /// Connect, upgrade, join and close in loops; handshakes per second.
    Churn(ChurnArgs),
    /// `fanout` on the local cluster while a node and then Redis are
    /// killed and restarted; time to recover, and nothing acked lost.
    Chaos(ChaosArgs),
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Connections to open.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: usize,
    /// Rooms the connections are spread over (one room each).
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Seconds to hold the connections once all have joined.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Members per room (publishers included).
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Publishers in all (spread over the rooms; at least one per room).
    #[arg(long, default_value_t = 0)]
    pub publishers: usize,
    /// Messages per second, all publishers together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds to wait after publishing for deliveries in flight.
    #[arg(long, default_value_t = 5)]
    pub grace: u64,
    /// Message text size in bytes (the marker is at least ~30).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Do not reconnect members the server cut off.
    #[arg(long)]
    pub no_reconnect: bool,
    /// Members that stop reading once joined, so the server's cap on their
    /// queue cuts them (Parley: close 1013): the last N connections,
    /// spread over the rooms, never publishers. They read what piled up
    /// only after publishing (to see the cut), never reconnect, and count
    /// apart (slow_*), outside loss, order and latency.
    #[arg(long, default_value_t = 0)]
    pub slow_members: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// Concurrent connect/close loops.
    #[arg(long, short = 'c', default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds of churning.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Close right after the upgrade instead of joining a room first.
    #[arg(long)]
    pub no_join: bool,
    /// Stop after this many handshakes (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_handshakes: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Run directory of `scripts/cluster.sh start DIR` (its `state`).
    #[arg(long)]
    pub cluster_dir: PathBuf,
    /// The cluster script that kills and restarts.
    #[arg(long, default_value = "scripts/cluster.sh")]
    pub cluster_script: PathBuf,
    /// Load the nodes through nginx or directly.
    #[arg(long, value_enum, default_value_t = Via::Nginx)]
    pub via: Via,
    /// Node to kill (1-based).
    #[arg(long, default_value_t = 1)]
    pub node: usize,
    /// Seconds into publishing when the node is killed (kill -9).
    #[arg(long, default_value_t = 2.0)]
    pub kill_node_at: f64,
    /// Seconds after the kill when the node is started again.
    #[arg(long, default_value_t = 2.0)]
    pub node_down_for: f64,
    /// Seconds into publishing when Redis is killed (kill -9).
    #[arg(long, default_value_t = 6.0)]
    pub kill_redis_at: f64,
    /// Seconds after the kill when Redis is started again (from its AOF).
    #[arg(long, default_value_t = 2.0)]
    pub redis_down_for: f64,
}
