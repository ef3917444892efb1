//! `fanout`: R rooms of M members, P of whom publish at a total rate.
//!
//! Connection `g` is a member of room `g % R`; connections `0..P` also
//! publish. Each text carries a marker (publisher, number, send time), so
//! latency is measured end to end and, for targets without seqs, delivery
//! is checked per publisher. With Parley, every member must receive every
//! acknowledged seq of its room exactly once and in order; a member the
//! server cuts off (1013) reconnects and resumes with `since` unless told
//! not to, and then must miss nothing either. Sends are retried with
//! the same cid until acked (see [`super::publisher`]). The last
//! `--slow-members` connections stop reading instead and are judged apart
//! (see [`super::slow`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::publisher::{retryable, Publisher};
use super::slow::{self, SlowMembers};
use crate::check::{Seen, SeqSet};
use crate::cli::{Common, FanoutArgs};
use crate::clock::now_ns;
use crate::histogram::Histogram;
use crate::procfs::CpuWindow;
use crate::proto::{Incoming, Marker, Protocol};
use crate::report::{ratio, Report, Series};
use crate::run::Run;
use crate::shared::{Phase, Shared, MARKS};
use crate::worker::{Behaviour, End, Out};

/// What every thread knows about the run.
struct Plan {
    rooms: Vec<String>,
    /// Members per room that read normally: those owed each delivery.
    normal: Vec<u64>,
    /// Connections from this number on are slow members.
    slow_from: usize,
    publishers: usize,
    /// Seconds between two messages of one publisher.
    interval: f64,
    size: usize,
    reconnect: bool,
    proto: Protocol,
}

/// Longest wait between two reconnect attempts of one member.
const RECONNECT_CAP_NS: u64 = 1_000_000_000;

pub(crate) struct Member {
    room: usize,
    /// A slow member: stalls once joined (see [`super::slow`]).
    pub(crate) slow: bool,
    joined: bool,
    pub(crate) ever_joined: bool,
    /// Cut off by the server and not (yet) resumed.
    pub(crate) cut: bool,
    /// Failed reconnects since the member was last joined.
    attempts: u32,
    /// When the server ended the member's joined connection.
    pub(crate) cuts: Vec<u64>,
    /// Per mark in [`Shared::marks`]: when the member first received a
    /// message sent after the mark (0: not yet).
    pub(crate) first_after: [u64; MARKS],
    /// Key 0: the room's seqs; otherwise publisher id → its numbers.
    streams: HashMap<u32, SeqSet>,
}

pub struct Fanout {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    members: Vec<Member>,
    pubs: Vec<Publisher>,
    /// Reconnects waiting for their back-off: (due, slot).
    later: Vec<(u64, usize)>,
    /// Publisher index by slot.
    pub_of: HashMap<usize, usize>,
    slow: SlowMembers,
    latency: Histogram,
    per_second: Vec<Histogram>,
    /// Acknowledged seqs per room, from this thread's publishers.
    acked: Vec<Vec<u64>>,
    cut_1013: u64,
    other_closes: u64,
    reconnects: u64,
    resets: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Fanout {
    fn new(plan: Arc<Plan>, shared: Arc<Shared>, global: &[usize]) -> Fanout {
        let rooms = plan.rooms.len();
        let mut pubs = Vec::new();
        let mut pub_of = HashMap::new();
        let members = global
            .iter()
            .enumerate()
            .map(|(slot, &g)| {
                if g < plan.publishers {
                    pub_of.insert(slot, pubs.len());
                    pubs.push(Publisher::new(slot, g as u32));
                }
                Member {
                    room: g % rooms,
                    slow: g >= plan.slow_from,
                    joined: false,
                    ever_joined: false,
                    cut: false,
                    attempts: 0,
                    cuts: Vec::new(),
                    first_after: [0; MARKS],
                    streams: HashMap::new(),
                }
            })
            .collect();
        Fanout {
            plan,
            shared,
            members,
            pubs,
            later: Vec::new(),
            pub_of,
            slow: SlowMembers::default(),
            latency: Histogram::default(),
            per_second: Vec::new(),
            acked: vec![Vec::new(); rooms],
            cut_1013: 0,
            other_closes: 0,
            reconnects: 0,
            resets: 0,
            errors: BTreeMap::new(),
        }
    }

    fn on_joined(&mut self, i: usize, seq: Option<u64>, reset: bool, out: &mut Out) {
        let m = &mut self.members[i];
        m.joined = true;
        m.attempts = 0;
        if !m.ever_joined {
            m.ever_joined = true;
            if m.slow {
                self.slow.joined(i, &self.shared, out);
            }
            if let Some(seq) = seq {
                m.streams.insert(0, SeqSet::starting_after(seq));
            }
            Shared::add(&self.shared.joined, 1);
        } else {
            m.cut = false;
            self.reconnects += 1;
            self.resets += u64::from(reset);
        }
    }

    fn on_message(&mut self, i: usize, seq: Option<u64>, marker: Option<Marker>) {
        let m = &mut self.members[i];
        let seen = match (seq, marker) {
            (Some(seq), _) => m.streams.entry(0).or_default().insert(seq),
            (None, Some(mk)) => m.streams.entry(mk.publisher).or_default().insert(mk.n),
            (None, None) => return,
        };
        let run_start = Shared::get(&self.shared.run_start_ns);
        if seen != Seen::New || run_start == 0 {
            return;
        }
        Shared::add(&self.shared.delivered, 1);
        if let Some(mk) = marker {
            let now = now_ns();
            for (first, mark) in m.first_after.iter_mut().zip(&self.shared.marks) {
                let mark = Shared::get(mark);
                if *first == 0 && mark > 0 && mk.sent_ns > mark {
                    *first = now;
                }
            }
            let latency = now.saturating_sub(mk.sent_ns);
            self.latency.record(latency);
            let second = (mk.sent_ns.saturating_sub(run_start) / 1_000_000_000) as usize;
            if second < 3600 {
                if self.per_second.len() <= second {
                    self.per_second.resize_with(second + 1, Histogram::default);
                }
                self.per_second[second].record(latency);
            }
        }
    }

    fn on_ack(&mut self, i: usize, n: Option<u64>, seq: Option<u64>) {
        let Some(&p) = self.pub_of.get(&i) else {
            return;
        };
        let room = self.members[i].room;
        match seq {
            Some(seq) => {
                // A retried send may be acked twice; count it once.
                if n.is_some_and(|n| !self.pubs[p].acked(n)) {
                    return;
                }
                self.acked[room].push(seq);
                Shared::add(&self.shared.expected, self.plan.normal[room]);
            }
            None => {
                self.pubs[p].unacked.pop_front();
            }
        }
        Shared::add(&self.shared.acked, 1);
    }

    pub(crate) fn members(&self) -> &[Member] {
        &self.members
    }

    fn on_error(&mut self, i: usize, code: String, n: Option<u64>, out: &mut Out) {
        Shared::add(&self.shared.send_errors, 1);
        // A rejoin refused while storage is away: reconnect later.
        let m = &self.members[i];
        if n.is_none() && !m.joined && m.ever_joined && retryable(&code) {
            out.closes.push(i);
        }
        if let (Some(&p), Some(n)) = (self.pub_of.get(&i), n) {
            if self.pubs[p].refused(n, &code, now_ns()) {
                Shared::add(&self.shared.abandoned, 1);
            }
        }
        *self.errors.entry(code).or_default() += 1;
    }

    /// Resends what is due on every joined publisher.
    fn retry(&mut self, out: &mut Out) {
        let now = now_ns();
        for p in &mut self.pubs {
            if self.members[p.slot].joined {
                let slot = p.slot;
                p.due(now, |frame| out.sends.push((slot, frame)));
            }
        }
    }

    /// Queues a reconnect of slot `i`: at once the first time, then with
    /// a doubling delay, so a node that is down is not hammered.
    fn reconnect(&mut self, i: usize, out: &mut Out) {
        let m = &mut self.members[i];
        let attempts = m.attempts;
        m.attempts += 1;
        if attempts == 0 {
            out.connects.push(i);
            return;
        }
        let delay = (20_000_000u64 << attempts.min(10)).min(RECONNECT_CAP_NS);
        self.later.push((now_ns() + delay, i));
    }

    fn publish(&mut self, out: &mut Out) {
        let start = Shared::get(&self.shared.run_start_ns);
        let now = now_ns();
        let interval_ns = self.plan.interval * 1e9;
        for p in &mut self.pubs {
            let offset = interval_ns * f64::from(p.id) / self.plan.publishers as f64;
            loop {
                let due = start as f64 + offset + p.slots as f64 * interval_ns;
                if due > now as f64 {
                    break;
                }
                p.slots += 1;
                let m = &self.members[p.slot];
                if !m.joined {
                    p.skipped += 1;
                    continue;
                }
                p.sent += 1;
                let marker = Marker {
                    publisher: p.id,
                    n: p.sent,
                    sent_ns: now_ns(),
                };
                let room = &self.plan.rooms[m.room];
                let frame = self.plan.proto.send(room, &marker, self.plan.size);
                if self.plan.proto.has_seq() {
                    p.track(p.sent, frame.clone(), marker.sent_ns);
                }
                out.sends.push((p.slot, frame));
                if !self.plan.proto.has_seq() {
                    Shared::add(&self.shared.expected, self.plan.normal[m.room]);
                }
                if self.plan.proto.has_ack() && !self.plan.proto.has_seq() {
                    p.unacked.push_back(p.sent);
                }
                Shared::add(&self.shared.sent, 1);
            }
        }
    }
}

impl Behaviour for Fanout {
    fn on_open(&mut self, i: usize, _handshake_ns: u64, out: &mut Out) {
        let m = &self.members[i];
        let since = if m.ever_joined && self.plan.proto.has_seq() {
            m.streams.get(&0).map(|s| s.last)
        } else {
            None
        };
        let room = &self.plan.rooms[m.room];
        out.sends.push((i, self.plan.proto.join(room, since)));
    }

    fn on_text(&mut self, i: usize, text: &str, out: &mut Out) {
        let m = &self.members[i];
        if m.slow && m.ever_joined {
            return; // a backlog read: only its end matters
        }
        match self.plan.proto.parse(text) {
            Incoming::Message { seq, marker } => self.on_message(i, seq, marker),
            Incoming::Ack { n, seq, .. } => self.on_ack(i, n, seq),
            Incoming::Joined { seq, reset } => self.on_joined(i, seq, reset, out),
            Incoming::Error { code, n, .. } => self.on_error(i, code, n, out),
            Incoming::Other => {}
        }
    }

    fn on_end(&mut self, i: usize, how: End, out: &mut Out) {
        let m = &mut self.members[i];
        let was_joined = std::mem::replace(&mut m.joined, false);
        let phase = self.shared.phase();
        if phase == Phase::Stop || !m.ever_joined {
            if let End::Failed(e) = how {
                log::debug!("conn slot={i} failed: {e}");
            }
            return;
        }
        if m.slow {
            return self.slow.ended(i, how, &self.shared);
        }
        if was_joined {
            Shared::add(&self.shared.server_closes, 1);
            m.cuts.push(now_ns());
            match how {
                End::Closed(Some(1013)) => self.cut_1013 += 1,
                _ => self.other_closes += 1,
            }
        }
        m.cut = true;
        if let Some(&p) = self.pub_of.get(&i) {
            self.pubs[p].disconnected();
        }
        if self.plan.reconnect {
            self.reconnect(i, out);
        }
    }

    fn tick(&mut self, out: &mut Out) {
        let phase = self.shared.phase();
        if phase == Phase::Run {
            self.publish(out);
        }
        self.slow.tick(phase, now_ns(), out);
        if phase <= Phase::Drain && self.plan.proto.has_seq() {
            self.retry(out);
        }
        if !self.later.is_empty() {
            let now = now_ns();
            self.later.retain(|&(due, i)| {
                if due <= now {
                    out.connects.push(i);
                }
                due > now
            });
        }
    }
}

/// Runs the scenario and returns the report.
pub fn run(common: &Common, args: &FanoutArgs) -> Result<Report, String> {
    let publish = |run: &mut Run<Fanout>| {
        run.wait(Duration::from_secs(args.duration), |_| false, run_progress);
    };
    run_with(common, args, publish).map(|(report, _)| report)
}

/// Runs the scenario with `publish` in charge of the measured window
/// (it returns when publishing should stop); returns the report and the
/// workers' behaviours for a caller that wants more figures.
pub(crate) fn run_with(
    common: &Common,
    args: &FanoutArgs,
    publish: impl FnOnce(&mut Run<Fanout>),
) -> Result<(Report, Vec<Fanout>), String> {
    if args.rooms == 0 || args.members == 0 || args.rate <= 0.0 {
        return Err("--rooms, --members and --rate must be positive".into());
    }
    let total = args.rooms * args.members;
    let publishers = if args.publishers == 0 {
        args.rooms
    } else {
        args.publishers
    };
    if publishers < args.rooms || publishers > total {
        return Err(format!("--publishers must be {}..={total}", args.rooms));
    }
    if args.slow_members > total - publishers {
        let most = total - publishers;
        return Err(format!(
            "--slow-members must be at most {most}: publishers read"
        ));
    }
    let run_id = now_ns() ^ u64::from(std::process::id()) << 40;
    let plan = Arc::new(Plan {
        rooms: (0..args.rooms)
            .map(|r| format!("lt-{run_id:x}-{r}"))
            .collect(),
        normal: slow::normal_per_room(args.rooms, args.members, args.slow_members),
        slow_from: total - args.slow_members,
        publishers,
        interval: publishers as f64 / args.rate,
        size: args.size,
        reconnect: !args.no_reconnect,
        proto: common.protocol(),
    });
    let secs = common.connect_timeout * 3 + args.duration + args.grace;
    let mut run = Run::start(common, total, secs, true, |shared, global| {
        Fanout::new(plan.clone(), shared.clone(), global)
    })?;
    let mut report = Report::new("fanout");

    let connect_limit = Duration::from_secs(common.connect_timeout * 3);
    let all_in = |s: &Shared| Shared::get(&s.joined) + Shared::get(&s.failed) >= total as u64;
    run.wait(connect_limit, all_in, connect_progress);
    let joined = Shared::get(&run.shared.joined);
    report.check_joined(joined, total as u64, &run.shared.connect_errors());

    let cpu = CpuWindow::open(&common.server_pids);
    let t0 = now_ns();
    run.shared.run_start_ns.store(t0.max(1), Relaxed);
    run.set_phase(Phase::Run);
    // With nobody in, the failure above says why; waiting out the window
    // would only make a refused run look like a hung one.
    if joined > 0 {
        publish(&mut run);
    }
    run.set_phase(Phase::Drain);
    let drained = |s: &Shared| {
        let answered = if plan.proto.has_seq() {
            Shared::get(&s.acked) + Shared::get(&s.abandoned)
        } else {
            Shared::get(&s.acked) + Shared::get(&s.send_errors)
        };
        let acks_in = !plan.proto.has_ack() || answered >= Shared::get(&s.sent);
        acks_in && Shared::get(&s.delivered) >= Shared::get(&s.expected)
    };
    run.wait(Duration::from_secs(args.grace), drained, run_progress);
    let window_s = (now_ns() - t0) as f64 / 1e9;
    let cpu = cpu.close();
    if args.slow_members > 0 {
        run.wait(slow::SETTLE, slow::all_ended, run_progress);
    }
    let timed_out = run.timed_out;
    let shared = run.shared.clone();
    let workers = run.finish();

    let delivered = Shared::get(&shared.delivered);
    let sent = Shared::get(&shared.sent);
    report.add("members", total as u64, "");
    report.add("joined", joined, "");
    report.add("publishers", publishers as u64, "");
    report.add("offered_rate", args.rate, "msg/s");
    report.add("sent", sent, "msg");
    report.add("acked", Shared::get(&shared.acked), "msg");
    report.add("send_errors", Shared::get(&shared.send_errors), "");
    report.add(
        "send_retries",
        sum(&workers, |w| w.pubs.iter().map(|p| p.retries).sum()),
        "",
    );
    report.add("sends_abandoned", Shared::get(&shared.abandoned), "msg");
    report.add(
        "skipped_while_cut",
        sum(&workers, |w| w.pubs.iter().map(|p| p.skipped).sum()),
        "msg",
    );
    report.add("delivered", delivered, "msg");
    report.add("window", window_s, "s");
    report.add(
        "deliveries_per_sec",
        ratio(delivered as f64, window_s),
        "1/s",
    );
    let mut latency = Histogram::default();
    let mut per_second: Vec<Histogram> = Vec::new();
    for w in &workers {
        latency.merge(&w.latency);
        if per_second.len() < w.per_second.len() {
            per_second.resize_with(w.per_second.len(), Histogram::default);
        }
        for (a, b) in per_second.iter_mut().zip(&w.per_second) {
            a.merge(b);
        }
    }
    report.add_latency("latency", &latency);
    cpu.report(&mut report, "delivery", delivered);
    tally(&plan, &workers, &mut report);
    if args.slow_members > 0 {
        let joined = Shared::get(&shared.slow_joined);
        let threads = workers.iter().map(|w| &w.slow);
        slow::report(args.slow_members, joined, threads, &mut report);
    }
    report.latency = Some(Series {
        title: "end-to-end latency".into(),
        total: latency,
        per_second,
    });
    let unanswered = sum(&workers, |w| {
        w.pubs.iter().map(|p| p.outstanding() as u64).sum()
    });
    if plan.proto.has_seq() && unanswered > 0 {
        report.notes.push(format!("{unanswered} sends never acked"));
    }
    if timed_out {
        report.fail("hard timeout reached".into());
    }
    Ok((report, workers))
}

fn connect_progress(s: &Shared) -> String {
    format!(
        "connecting: open {} joined {} failed {}",
        Shared::get(&s.opened),
        Shared::get(&s.joined),
        Shared::get(&s.failed)
    )
}

pub(crate) fn run_progress(s: &Shared) -> String {
    let mut line = format!(
        "sent {} acked {} delivered {}/{} server-closes {} errors {}",
        Shared::get(&s.sent),
        Shared::get(&s.acked),
        Shared::get(&s.delivered),
        Shared::get(&s.expected),
        Shared::get(&s.server_closes),
        Shared::get(&s.send_errors)
    );
    let slow = Shared::get(&s.slow_joined);
    if slow > 0 {
        line.push_str(&format!(
            " slow-ended {}/{slow}",
            Shared::get(&s.slow_ended)
        ));
    }
    line
}

fn sum(workers: &[Fanout], f: impl Fn(&Fanout) -> u64) -> u64 {
    workers.iter().map(f).sum()
}

/// Compares what every member received with what it had to receive.
fn tally(plan: &Plan, workers: &[Fanout], report: &mut Report) {
    let rooms = plan.rooms.len();
    // Expected numbers per stream: a room's acked seqs (key 0), or each
    // publisher's 1..=sent.
    let mut acked: Vec<Vec<u64>> = vec![Vec::new(); rooms];
    let mut by_pub: Vec<Vec<(u32, u64)>> = vec![Vec::new(); rooms];
    for w in workers {
        for (r, seqs) in w.acked.iter().enumerate() {
            acked[r].extend(seqs);
        }
        for p in &w.pubs {
            by_pub[p.id as usize % rooms].push((p.id, p.sent));
        }
    }
    let (mut lost, mut cut_missing, mut dups, mut reordered, mut cut_now) = (0, 0, 0, 0, 0);
    for w in workers {
        for m in w.members.iter().filter(|m| m.ever_joined && !m.slow) {
            let empty = SeqSet::default();
            let missing = if plan.proto.has_seq() {
                m.streams.get(&0).unwrap_or(&empty).missing(&acked[m.room])
            } else {
                by_pub[m.room]
                    .iter()
                    .map(|&(id, sent)| {
                        let expected: Vec<u64> = (1..=sent).collect();
                        m.streams.get(&id).unwrap_or(&empty).missing(&expected)
                    })
                    .sum()
            };
            if m.cut {
                cut_now += 1;
                cut_missing += missing;
            } else {
                lost += missing;
            }
            for s in m.streams.values() {
                dups += s.duplicates;
                reordered += s.reordered;
            }
        }
    }
    report.add("lost", lost, "deliveries");
    report.add("duplicated", dups, "deliveries");
    report.add("reordered", reordered, "deliveries");
    report.add("cut_off_members", cut_now, "");
    report.add("cut_off_missing", cut_missing, "deliveries");
    report.add("closed_1013", sum(workers, |w| w.cut_1013), "");
    report.add("closed_other", sum(workers, |w| w.other_closes), "");
    report.add("resumed", sum(workers, |w| w.reconnects), "");
    report.add("resumed_with_reset", sum(workers, |w| w.resets), "");
    for (what, n) in [
        ("lost", lost),
        ("duplicated", dups),
        ("reordered", reordered),
    ] {
        if n > 0 {
            report.fail(format!("{n} deliveries {what}"));
        }
    }
    let mut errors = BTreeMap::new();
    for w in workers {
        for (code, n) in &w.errors {
            *errors.entry(code.clone()).or_insert(0u64) += n;
        }
    }
    for (code, n) in errors {
        report.notes.push(format!("server error {code}: {n}"));
    }
    if !plan.proto.has_seq() {
        report.notes.push(
            "target has no seqs: order and exactly-once checked per publisher by marker; \
             loss judged against every sent message"
                .into(),
        );
    }
    if !plan.proto.has_ack() {
        report
            .notes
            .push("target sends no acks: ack checks skipped".into());
    }
}
