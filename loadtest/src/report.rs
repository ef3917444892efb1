//! What a run found: named figures with units, failures that fail the run,
//! notes (checks skipped, caveats), and latency series for `--plot`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::histogram::Histogram;

#[derive(Default)]
pub struct Report {
    pub scenario: &'static str,
    rows: Vec<(String, Value, &'static str)>,
    pub failures: Vec<String>,
    pub notes: Vec<String>,
    pub latency: Option<Series>,
}

/// One latency measure over the run, for the charts.
pub struct Series {
    pub title: String,
    pub total: Histogram,
    /// One histogram per second of the measured window.
    pub per_second: Vec<Histogram>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            ..Report::default()
        }
    }

    pub fn add(&mut self, key: &str, value: impl Into<Value>, unit: &'static str) {
        self.rows.push((key.to_string(), value.into(), unit));
    }

    /// Adds p50/p99/p999/max (in microseconds) of `h` under `prefix`.
    pub fn add_latency(&mut self, prefix: &str, h: &Histogram) {
        for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
            self.add(&format!("{prefix}_{name}_us"), us(h.quantile(q)), "µs");
        }
        self.add(&format!("{prefix}_max_us"), us(h.max()), "µs");
    }

    pub fn fail(&mut self, why: String) {
        self.failures.push(why);
    }

    /// A note saying why connects failed, if any did.
    pub fn note_connect_errors(&mut self, errors: &BTreeMap<String, u64>) {
        if !errors.is_empty() {
            self.notes
                .push(format!("connect errors: {}", reasons(errors)));
        }
    }

    /// Fails the run for clients that never joined, with the reasons
    /// their connects failed; otherwise notes any connect errors (of
    /// reconnects, say).
    pub fn check_joined(&mut self, joined: u64, total: u64, errors: &BTreeMap<String, u64>) {
        if joined >= total {
            return self.note_connect_errors(errors);
        }
        let mut why = format!("{} of {total} never joined", total - joined);
        if !errors.is_empty() {
            why.push_str(&format!("; connect errors: {}", reasons(errors)));
        }
        self.fail(why);
    }

    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// A figure by key, as a number (for tests and callers).
    pub fn figure(&self, key: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|(k, _, _)| k == key)
            .and_then(|(_, v, _)| v.as_f64())
    }

    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("scenario".into(), self.scenario.into());
        map.insert("ok".into(), self.ok().into());
        map.insert("failures".into(), self.failures.clone().into());
        map.insert("notes".into(), self.notes.clone().into());
        for (k, v, _) in &self.rows {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }

    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
        let mut s = format!("{} summary\n", self.scenario);
        for (k, v, unit) in &self.rows {
            let v = match v {
                Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
                v => v.to_string(),
            };
            s.push_str(&format!("  {k:<width$}  {v:>14} {unit}\n"));
        }
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        for f in &self.failures {
            s.push_str(&format!("  FAILED: {f}\n"));
        }
        s.push_str(if self.ok() {
            "result: ok\n"
        } else {
            "result: FAILED\n"
        });
        s
    }
}

/// Characters of peer-sent text kept in a report line.
const EXCERPT: usize = 120;

/// Text a peer sent, fit for one report line: lossy UTF-8, control
/// characters as spaces, trimmed and cut to [`EXCERPT`] characters.
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line: String = text
        .trim()
        .chars()
        .take(EXCERPT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line
}

/// Failure reasons and their counts as one phrase, most frequent first:
/// `3× connect timeout; 1× upgrade refused: ...`.
pub fn reasons(counts: &BTreeMap<String, u64>) -> String {
    let mut sorted: Vec<_> = counts.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1));
    let phrases: Vec<String> = sorted
        .iter()
        .map(|(why, n)| format!("{n}× {why}"))
        .collect();
    phrases.join("; ")
}

/// Nanoseconds to microseconds, rounded to 0.1.
pub fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// `num / den`, or 0 when `den` is 0.
pub fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(
            excerpt(b"  401 Unauthorized: no\r\nmore\n"),
            "401 Unauthorized: no  more"
        );
        assert_eq!(excerpt(&[b'x'; 500]).len(), EXCERPT);
        assert_eq!(excerpt(b"\xff ok"), "\u{fffd} ok");
    }

    #[test]
    fn reasons_come_most_frequent_first() {
        let counts = BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 3)]);
        assert_eq!(reasons(&counts), "3× b; 1× a");
    }
}
