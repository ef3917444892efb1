//! Runs a scenario's workers: spreads connection numbers over threads,
//! steps the shared phase, prints the progress line and enforces the hard
//! timeout. Scenarios supply a behaviour per thread and the conditions.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::Common;
use crate::credentials::Credentials;
use crate::shared::{Phase, Shared};
use crate::target::Targets;
use crate::worker::{Behaviour, Worker, WorkerSetup};

pub struct Run<B> {
    pub shared: Arc<Shared>,
    handles: Vec<JoinHandle<B>>,
    started: Instant,
    hard_deadline: Instant,
    quiet: bool,
    last_progress: Instant,
    pub timed_out: bool,
}

/// How long to wait between checks of a condition.
const STEP: Duration = Duration::from_millis(5);

impl<B: Behaviour + Send + 'static> Run<B> {
    /// Gets the clients' credentials (with `--signup`, from the server),
    /// then starts one worker per thread; connection `g` of `total` goes
    /// to thread `g % threads` and is opened at once if `open_all`.
    pub fn start(
        common: &Common,
        total: usize,
        expected_secs: u64,
        open_all: bool,
        make: impl Fn(&Arc<Shared>, &[usize]) -> B,
    ) -> Result<Run<B>, String> {
        let targets = Arc::new(Targets::new(&common.urls, common.source_addrs)?);
        let credentials = Arc::new(Credentials::new(common, &targets, total)?);
        let shared = Arc::new(Shared::default());
        let threads = common.thread_count().min(total.max(1));
        let mut handles = Vec::new();
        for t in 0..threads {
            let global: Vec<usize> = (t..total).step_by(threads).collect();
            let initial = if open_all {
                (0..global.len()).collect()
            } else {
                Vec::new()
            };
            let behaviour = make(&shared, &global);
            let setup = WorkerSetup {
                global,
                targets: targets.clone(),
                credentials: credentials.clone(),
                shared: shared.clone(),
                max_in_flight: common.max_in_flight,
                connect_timeout: Duration::from_secs(common.connect_timeout),
            };
            let worker = Worker::new(setup, behaviour).map_err(|e| e.to_string())?;
            let handle = std::thread::Builder::new()
                .name(format!("worker-{t}"))
                .spawn(move || worker.run(initial))
                .map_err(|e| e.to_string())?;
            handles.push(handle);
        }
        let hard = if common.timeout > 0 {
            common.timeout
        } else {
            expected_secs + 60
        };
        let started = Instant::now();
        Ok(Run {
            shared,
            handles,
            started,
            hard_deadline: started + Duration::from_secs(hard),
            quiet: common.quiet,
            last_progress: started,
            timed_out: false,
        })
    }

    /// Waits until `done` holds or `limit` passes (then false). Prints
    /// `progress` once a second.
    pub fn wait(
        &mut self,
        limit: Duration,
        done: impl Fn(&Shared) -> bool,
        progress: impl Fn(&Shared) -> String,
    ) -> bool {
        let until = (Instant::now() + limit).min(self.hard_deadline);
        loop {
            if done(&self.shared) {
                return true;
            }
            let now = Instant::now();
            if now >= self.hard_deadline {
                self.timed_out = true;
                return false;
            }
            if now >= until {
                return false;
            }
            if now.duration_since(self.last_progress) >= Duration::from_secs(1) {
                self.last_progress = now;
                if !self.quiet {
                    let t = now.duration_since(self.started).as_secs();
                    eprintln!("[{t:>4}s] {}", progress(&self.shared));
                }
            }
            std::thread::sleep(STEP);
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.shared.set_phase(phase);
    }

    /// Stops the workers and returns their behaviours.
    pub fn finish(self) -> Vec<B> {
        self.shared.set_phase(Phase::Stop);
        self.handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect()
    }
}
