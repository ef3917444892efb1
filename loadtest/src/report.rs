//! What a run found: named figures with units, failures that fail the run,
//! notes (checks skipped, caveats), and latency series for `--plot`.

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
