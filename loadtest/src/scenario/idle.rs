//! `idle`: open N connections, each joins one of `--rooms` rooms, hold
//! them, and report the server's resident memory per connection and every
//! connection that failed or was closed by the server.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Common, IdleArgs};
use crate::clock::now_ns;
use crate::procfs;
use crate::proto::{Incoming, Protocol};
use crate::report::{ratio, Report};
use crate::run::Run;
use crate::shared::{Phase, Shared};
use crate::worker::{Behaviour, End, Out};

pub struct Idle {
    shared: Arc<Shared>,
    proto: Arc<Protocol>,
    rooms: Arc<Vec<String>>,
    /// Room of each slot.
    room_of: Vec<usize>,
    joined: Vec<bool>,
    closed_while_held: u64,
}

impl Behaviour for Idle {
    fn on_open(&mut self, i: usize, _ns: u64, out: &mut Out) {
        let room = &self.rooms[self.room_of[i]];
        out.sends.push((i, self.proto.join(room, None)));
    }

    fn on_text(&mut self, i: usize, text: &str, _out: &mut Out) {
        if let Incoming::Joined { .. } = self.proto.parse(text) {
            if !std::mem::replace(&mut self.joined[i], true) {
                Shared::add(&self.shared.joined, 1);
            }
        }
    }

    fn on_end(&mut self, i: usize, how: End, _out: &mut Out) {
        if self.shared.phase() != Phase::Stop && self.joined[i] {
            self.closed_while_held += 1;
            Shared::add(&self.shared.server_closes, 1);
            log::debug!("conn slot={i} ended while held: {how:?}");
        }
    }

    fn tick(&mut self, _out: &mut Out) {}
}

pub fn run(common: &Common, args: &IdleArgs) -> Result<Report, String> {
    let total = args.connections;
    let rooms = args.rooms.max(1);
    let run_id = now_ns();
    let names: Arc<Vec<String>> =
        Arc::new((0..rooms).map(|r| format!("idle-{run_id:x}-{r}")).collect());
    let proto = Arc::new(common.protocol());
    let pids = &common.server_pids;
    let rss_before = procfs::total(pids, procfs::rss_bytes);

    let secs = common.connect_timeout * 3 + args.hold;
    let mut run = Run::start(common, total, secs, true, |shared, global| Idle {
        shared: shared.clone(),
        proto: proto.clone(),
        rooms: names.clone(),
        room_of: global.iter().map(|g| g % rooms).collect(),
        joined: vec![false; global.len()],
        closed_while_held: 0,
    })?;
    let mut report = Report::new("idle");
    let started = now_ns();
    let all_in = |s: &Shared| Shared::get(&s.joined) + Shared::get(&s.failed) >= total as u64;
    let progress = |s: &Shared| {
        format!(
            "open {} joined {} failed {} closed {}",
            Shared::get(&s.opened),
            Shared::get(&s.joined),
            Shared::get(&s.failed),
            Shared::get(&s.server_closes)
        )
    };
    run.wait(
        Duration::from_secs(common.connect_timeout * 3),
        all_in,
        progress,
    );
    let connect_s = (now_ns() - started) as f64 / 1e9;
    let joined = Shared::get(&run.shared.joined);
    // Measured twice: just after the storm of joins (what a burst leaves
    // resident), and at the end of the hold, when the connections have
    // been idle for `hold` seconds: the cost of an idle connection.
    run.set_phase(Phase::Run);
    run.wait(Duration::from_millis(500), |_| false, progress);
    let rss_joined = procfs::total(pids, procfs::rss_bytes);
    run.wait(Duration::from_secs(args.hold), |_| false, progress);
    let rss_after = procfs::total(pids, procfs::rss_bytes);
    let timed_out = run.timed_out;
    let shared = run.shared.clone();
    let workers = run.finish();

    let failed = Shared::get(&shared.failed);
    let closed: u64 = workers.iter().map(|w| w.closed_while_held).sum();
    report.add("connections", total as u64, "");
    report.add("joined", joined, "");
    report.add("connect_errors", failed, "");
    report.add("closed_while_held", closed, "");
    report.add("connect_time", connect_s, "s");
    report.add("connects_per_sec", ratio(joined as f64, connect_s), "1/s");
    match (rss_before, rss_joined, rss_after) {
        (Ok(a), Ok(j), Ok(b)) if !pids.is_empty() => {
            let per = |rss: u64| ratio(rss.saturating_sub(a) as f64, joined as f64);
            report.add("server_rss_before", a, "B");
            report.add("server_rss_joined", j, "B");
            report.add("server_rss_after", b, "B");
            report.add("server_rss_per_conn_joined", per(j), "B");
            report.add("server_rss_per_conn", per(b), "B");
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => report.notes.push(format!("RSS: {e}")),
        _ => report
            .notes
            .push("no --server-pid: server RSS not measured".into()),
    }
    report.check_joined(joined, total as u64, &shared.connect_errors());
    if closed > 0 {
        report.fail(format!("{closed} connections ended while held"));
    }
    if timed_out {
        report.fail("hard timeout reached".into());
    }
    Ok(report)
}
