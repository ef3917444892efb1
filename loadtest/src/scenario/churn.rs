//! `churn`: C loops, each connect + upgrade (+ join) + close, over and
//! over for `--duration`. Reports handshakes per second and the latency
//! from connect to upgrade response.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{ChurnArgs, Common};
use crate::clock::now_ns;
use crate::histogram::Histogram;
use crate::procfs::CpuWindow;
use crate::proto::{Incoming, Protocol};
use crate::report::{ratio, Report, Series};
use crate::run::Run;
use crate::shared::{Phase, Shared};
use crate::worker::{Behaviour, End, Out};

pub struct Churn {
    shared: Arc<Shared>,
    proto: Arc<Protocol>,
    room: String,
    join: bool,
    max: u64,
    latency: Histogram,
    per_second: Vec<Histogram>,
    cycles: u64,
    failures: u64,
}

impl Churn {
    fn measuring(&self) -> bool {
        self.shared.phase() == Phase::Run
    }
}

impl Behaviour for Churn {
    fn on_open(&mut self, i: usize, ns: u64, out: &mut Out) {
        if self.measuring() {
            let total = self
                .shared
                .handshakes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.max == 0 || total < self.max {
                self.latency.record(ns);
                let start = Shared::get(&self.shared.run_start_ns);
                let second = (now_ns().saturating_sub(start) / 1_000_000_000) as usize;
                if second < 3600 {
                    if self.per_second.len() <= second {
                        self.per_second.resize_with(second + 1, Histogram::default);
                    }
                    self.per_second[second].record(ns);
                }
            }
        }
        if self.join {
            out.sends.push((i, self.proto.join(&self.room, None)));
        } else {
            out.closes.push(i);
        }
    }

    fn on_text(&mut self, i: usize, text: &str, out: &mut Out) {
        if let Incoming::Joined { .. } = self.proto.parse(text) {
            Shared::add(&self.shared.joined, 1);
            out.closes.push(i);
        }
    }

    fn on_end(&mut self, i: usize, how: End, out: &mut Out) {
        if !matches!(how, End::Closed(_)) && self.measuring() {
            self.failures += 1;
        }
        self.cycles += 1;
        let limit_hit = self.max > 0 && Shared::get(&self.shared.handshakes) >= self.max;
        if self.shared.phase() <= Phase::Run && !limit_hit {
            out.connects.push(i);
        }
    }

    fn tick(&mut self, _out: &mut Out) {}
}

pub fn run(common: &Common, args: &ChurnArgs) -> Result<Report, String> {
    let proto = Arc::new(common.protocol());
    let room = format!("churn-{:x}", now_ns());
    let secs = common.connect_timeout + args.duration;
    let mut run = Run::start(common, args.concurrency, secs, true, |shared, _| Churn {
        shared: shared.clone(),
        proto: proto.clone(),
        room: room.clone(),
        join: !args.no_join,
        max: args.max_handshakes,
        latency: Histogram::default(),
        per_second: Vec::new(),
        cycles: 0,
        failures: 0,
    })?;
    let cpu = CpuWindow::open(&common.server_pids);
    let t0 = now_ns();
    run.shared
        .run_start_ns
        .store(t0, std::sync::atomic::Ordering::Relaxed);
    run.set_phase(Phase::Run);
    let max = args.max_handshakes;
    let done = |s: &Shared| max > 0 && Shared::get(&s.handshakes) >= max;
    let progress = |s: &Shared| {
        format!(
            "handshakes {} joined {} failed {}",
            Shared::get(&s.handshakes),
            Shared::get(&s.joined),
            Shared::get(&s.failed)
        )
    };
    run.wait(Duration::from_secs(args.duration), done, progress);
    run.set_phase(Phase::Drain);
    let window_s = (now_ns() - t0) as f64 / 1e9;
    let cpu = cpu.close();
    let timed_out = run.timed_out;
    let errors = run.shared.connect_errors();
    let workers = run.finish();

    let mut report = Report::new("churn");
    report.note_connect_errors(&errors);
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
    let handshakes = latency.count();
    let failures: u64 = workers.iter().map(|w| w.failures).sum();
    report.add("concurrency", args.concurrency as u64, "");
    report.add("handshakes", handshakes, "");
    report.add("failures", failures, "");
    report.add("window", window_s, "s");
    report.add(
        "handshakes_per_sec",
        ratio(handshakes as f64, window_s),
        "1/s",
    );
    report.add_latency("handshake", &latency);
    cpu.report(&mut report, "handshake", handshakes);
    report.latency = Some(Series {
        title: "handshake latency".into(),
        total: latency,
        per_second,
    });
    if handshakes == 0 {
        report.fail("no handshake completed".into());
    }
    if timed_out {
        report.fail("hard timeout reached".into());
    }
    Ok(report)
}
