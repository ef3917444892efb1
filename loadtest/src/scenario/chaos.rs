//! `chaos`: `fanout` against the local cluster while one node and then
//! Redis are killed (`kill -9`) and started again, through
//! `scripts/cluster.sh`.
//!
//! Recovery is timed with marks (see [`Shared::marks`]): each member
//! notes when it first received a message *sent after* a kill. For a
//! node kill, "deliveries resumed" is the first such delivery to a member
//! the kill cut off; for Redis, to any member. "Caught up" is the moment
//! the last member had one: every member is back on a live stream, and
//! since delivery is checked gap-free and in order, it has the backlog
//! too. Times count from the moment the killed process was seen dead,
//! and from the restart command's return (the process was ready). Sends refused meanwhile (`unavailable`) are retried
//! with the same cid until acked; the run fails if any acked message is
//! lost or duplicated, a member is still cut off at the end, or a send
//! was never acked.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::fanout::{self, run_progress, Fanout};
use crate::cli::{ChaosArgs, Common};
use crate::clock::now_ns;
use crate::cluster::Cluster;
use crate::report::Report;
use crate::run::Run;
use crate::shared::Shared;

/// Marks, by index into [`Shared::marks`].
const NODE_KILLED: usize = 0;
const NODE_BACK: usize = 1;
const REDIS_KILLED: usize = 2;
const REDIS_BACK: usize = 3;

/// A cut this long before a kill returned is the kill's doing.
const CUT_SLACK_NS: u64 = 1_000_000_000;

/// One step of the schedule.
struct Step {
    /// Seconds into publishing.
    at: f64,
    args: Vec<String>,
    mark: usize,
    /// The component whose death times a kill (`node1`, `redis`).
    victim: Option<String>,
}

/// When each mark was set (0: never), and what went wrong on the way.
#[derive(Default)]
struct Log {
    marks: [u64; 4],
    errors: Vec<String>,
}

pub fn run(common: &Common, args: &ChaosArgs) -> Result<Report, String> {
    let mut cluster = Cluster::load(&args.cluster_dir, &args.cluster_script)?;
    let steps = schedule(args, cluster.nodes()?)?;
    let mut common = common.clone();
    common.urls = cluster.urls(args.via)?;

    let mut log = Log::default();
    let publish = |run: &mut Run<Fanout>| {
        for step in &steps {
            wait_until(run, step.at);
            let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
            let victim = match step.victim.as_deref().map(|v| cluster.pid(v)) {
                Some(Err(e)) => {
                    log.errors.push(e);
                    continue;
                }
                Some(Ok(pid)) => Some(pid),
                None => None,
            };
            let mark = &run.shared.marks[step.mark];
            let set = |at: u64| mark.store(at, Relaxed);
            match cluster.run(&args, victim, set) {
                Ok(()) if victim.is_none() => set(now_ns()),
                Ok(()) => {}
                Err(e) => log.errors.push(e),
            }
            log.marks[step.mark] = mark.load(Relaxed);
            if let Err(e) = cluster.reload() {
                log.errors.push(e);
            }
        }
        wait_until(run, args.fanout.duration as f64);
    };
    let (mut report, workers) = fanout::run_with(&common, &args.fanout, publish)?;
    report.scenario = "chaos";
    for e in log.errors {
        report.fail(e);
    }
    recovery(&log.marks, &workers, &mut report);
    verdict(&workers, &mut report);
    Ok(report)
}

/// Node kill, node restart, Redis kill, Redis restart; checked to fit in
/// the publishing window with time left to see recovery.
fn schedule(args: &ChaosArgs, nodes: usize) -> Result<Vec<Step>, String> {
    if args.node == 0 || args.node > nodes {
        return Err(format!("--node must be 1..={nodes}"));
    }
    let node_back = args.kill_node_at + args.node_down_for;
    let redis_back = args.kill_redis_at + args.redis_down_for;
    if args.kill_node_at < 0.0 || args.kill_redis_at < node_back {
        return Err("the Redis kill must come after the node is back".into());
    }
    if redis_back + 1.0 > args.fanout.duration as f64 {
        return Err(format!(
            "--duration must outlast the Redis restart ({redis_back:.1} s) by 1 s"
        ));
    }
    let n = args.node.to_string();
    let step = |at, args: &[&str], mark, victim: Option<String>| Step {
        at,
        args: args.iter().map(|a| a.to_string()).collect(),
        mark,
        victim,
    };
    Ok(vec![
        step(
            args.kill_node_at,
            &["kill-node", &n],
            NODE_KILLED,
            Some(format!("node{n}")),
        ),
        step(node_back, &["restart-node", &n], NODE_BACK, None),
        step(
            args.kill_redis_at,
            &["kill-redis"],
            REDIS_KILLED,
            Some("redis".into()),
        ),
        step(redis_back, &["restart-redis"], REDIS_BACK, None),
    ])
}

/// Waits, printing progress, until `secs` into the publishing window.
fn wait_until(run: &mut Run<Fanout>, secs: f64) {
    let start = Shared::get(&run.shared.run_start_ns);
    let due = start + (secs * 1e9) as u64;
    let left = Duration::from_nanos(due.saturating_sub(now_ns()));
    run.wait(left, |_| false, run_progress);
}

/// Time to recover from each kill; see the module comment.
fn recovery(marks: &[u64; 4], workers: &[Fanout], report: &mut Report) {
    let members: Vec<_> = workers
        .iter()
        .flat_map(|w| w.members())
        .filter(|m| m.ever_joined && !m.slow)
        .collect();
    let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
    let events = [
        ("node", NODE_KILLED, NODE_BACK, marks[REDIS_KILLED]),
        ("redis", REDIS_KILLED, REDIS_BACK, u64::MAX),
    ];
    for (name, killed, back, next) in events {
        let (t_kill, t_back) = (marks[killed], marks[back]);
        if t_kill == 0 || t_back == 0 {
            continue;
        }
        let from = t_kill.saturating_sub(CUT_SLACK_NS);
        let was_cut = |m: &&&fanout::Member| m.cuts.iter().any(|&c| c >= from && c < next);
        let cut: Vec<_> = members.iter().filter(was_cut).collect();
        report.add(&format!("{name}_down"), ms(t_kill, t_back), "ms");
        report.add(&format!("{name}_members_cut"), cut.len() as u64, "");
        let first_cut = cut
            .iter()
            .flat_map(|m| &m.cuts)
            .filter(|&&c| c >= from)
            .min();
        if let Some(&c) = first_cut {
            let signed = (c as f64 - t_kill as f64) / 1e6;
            report.add(&format!("{name}_first_cut_after"), signed, "ms");
        }
        let first = |m: &fanout::Member| m.first_after[killed];
        let resumed = if cut.is_empty() {
            members.iter().map(|m| first(m)).filter(|&t| t > 0).min()
        } else {
            cut.iter().map(|m| first(m)).filter(|&t| t > 0).min()
        };
        if let Some(t) = members.iter().map(|m| first(m)).filter(|&t| t > 0).min() {
            report.add(&format!("{name}_first_delivery_after"), ms(t_kill, t), "ms");
        }
        let stragglers = members.iter().filter(|m| first(m) == 0).count();
        let caught_up = members.iter().map(|m| first(m)).max().unwrap_or(0);
        match resumed {
            Some(t) => report.add(&format!("{name}_resumed_after"), ms(t_kill, t), "ms"),
            None => report.fail(format!("{name}: deliveries never resumed")),
        }
        if stragglers > 0 {
            report.fail(format!(
                "{name}: {stragglers} members never received a message sent after the kill"
            ));
            continue;
        }
        report.add(
            &format!("{name}_caught_up_after"),
            ms(t_kill, caught_up),
            "ms",
        );
        let since_back = members.iter().map(|m| m.first_after[back]).max();
        if let Some(t) = since_back.filter(|&t| t > 0) {
            report.add(
                &format!("{name}_caught_up_after_restart"),
                ms(t_back, t),
                "ms",
            );
        }
    }
}

/// The chaos run's own failures, beyond fanout's loss and order checks.
fn verdict(workers: &[Fanout], report: &mut Report) {
    let errors = |code: &str| -> u64 {
        workers
            .iter()
            .filter_map(|w| w.errors.get(code))
            .sum::<u64>()
    };
    report.add("refused_unavailable", errors("unavailable"), "");
    report.add("refused_overloaded", errors("overloaded"), "");
    report.add("refused_rate_limited", errors("rate_limited"), "");
    let checks = [
        ("cut_off_members", "members still cut off at the end"),
        ("sends_abandoned", "sends refused for good"),
        ("resumed_with_reset", "rejoins reset (history lost)"),
    ];
    for (key, what) in checks {
        let n = report.figure(key).unwrap_or(0.0);
        if n > 0.0 {
            report.fail(format!("{n} {what}"));
        }
    }
    if report
        .notes
        .iter()
        .any(|n| n.ends_with("sends never acked"))
    {
        report.fail("some sends were never acked".into());
    }
}
