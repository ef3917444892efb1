//! Server figures from `/proc`: resident memory and CPU time of the
//! processes under test (and of this one, to tell when the load generator
//! itself is the bottleneck).

use std::fs;

use crate::report::{ratio, Report};

/// Kernel clock ticks per second in `/proc/PID/stat`: USER_HZ, fixed at
/// 100 on Linux's user-visible ABI whatever the kernel's internal HZ.
const TICKS_PER_SEC: u64 = 100;

/// Resident set size in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let status = read(pid, "status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("pid {pid}: no VmRSS"))
}

/// User plus system CPU time in microseconds, all threads.
pub fn cpu_us(pid: u32) -> Result<u64, String> {
    let stat = read(pid, "stat")?;
    // The command name may hold spaces and parentheses: fields are
    // counted from the last ')'. utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("pid {pid}: odd stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Ok((u + s) * 1_000_000 / TICKS_PER_SEC),
        _ => Err(format!("pid {pid}: no utime/stime")),
    }
}

fn read(pid: u32, file: &str) -> Result<String, String> {
    fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|e| format!("pid {pid}: {e}"))
}

/// Sums `f` over `pids`.
pub fn total(pids: &[u32], f: fn(u32) -> Result<u64, String>) -> Result<u64, String> {
    pids.iter().map(|&p| f(p)).sum()
}

/// CPU time of the servers and of this process over a measured window.
pub struct CpuWindow {
    pids: Vec<u32>,
    start: Option<(u64, u64)>,
    end: Option<(u64, u64)>,
}

impl CpuWindow {
    pub fn open(pids: &[u32]) -> CpuWindow {
        CpuWindow {
            pids: pids.to_vec(),
            start: Self::sample(pids),
            end: None,
        }
    }

    fn sample(pids: &[u32]) -> Option<(u64, u64)> {
        let server = if pids.is_empty() {
            0
        } else {
            total(pids, cpu_us).ok()?
        };
        Some((server, cpu_us(std::process::id()).ok()?))
    }

    pub fn close(mut self) -> CpuWindow {
        self.end = Self::sample(&self.pids);
        self
    }

    /// Adds server and load-generator CPU, and server CPU per `unit`.
    pub fn report(&self, report: &mut Report, unit: &str, count: u64) {
        let (Some(a), Some(b)) = (self.start, self.end) else {
            report
                .notes
                .push("could not read CPU times from /proc".into());
            return;
        };
        report.add("loadtest_cpu_us", b.1.saturating_sub(a.1), "µs");
        if self.pids.is_empty() {
            report
                .notes
                .push("no --server-pid: server CPU not measured".into());
            return;
        }
        let server = b.0.saturating_sub(a.0);
        report.add("server_cpu_us", server, "µs");
        let key = format!("server_cpu_us_per_{unit}");
        report.add(&key, ratio(server as f64, count as f64), "µs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_us(me).is_ok());
        assert!(rss_bytes(u32::MAX).is_err());
    }
}
