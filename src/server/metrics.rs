//! Counters and histograms for `GET /metrics` (Prometheus text format 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds; observations are counted in the first bucket
/// whose bound holds them (cumulated when rendered).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Seconds: 50 µs … 5 s.
pub const LATENCY: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];
/// Events per batch.
pub const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Observes `v` (seconds for latencies, a count for sizes; stored as millionths).
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The number of observations and their mean.
    pub fn mean(&self) -> (u64, f64) {
        let n = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (n, if n == 0 { 0.0 } else { sum / n as f64 })
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {n}");
    }
}

pub struct Metrics {
    /// Requests by (endpoint, outcome code).
    requests: Mutex<BTreeMap<(String, String), u64>>,
    pub request_seconds: Histogram,
    pub fsync_seconds: Histogram,
    pub batch_events: Histogram,
    pub auth_coalesced: AtomicU64,
    pub events_appended: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            request_seconds: Histogram::new(LATENCY),
            fsync_seconds: Histogram::new(LATENCY),
            batch_events: Histogram::new(SIZES),
            auth_coalesced: AtomicU64::new(0),
            events_appended: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn count_request(&self, endpoint: &str, outcome: &str) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((endpoint.to_owned(), outcome.to_owned()))
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP keyledger_requests_total Requests by endpoint and outcome (HTTP status).\n# TYPE keyledger_requests_total counter\n");
        for ((e, o), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "keyledger_requests_total{{endpoint=\"{e}\",outcome=\"{o}\"}} {n}"
            );
        }
        self.request_seconds.render(
            &mut out,
            "keyledger_request_seconds",
            "Time from a request's arrival to its answer.",
        );
        self.fsync_seconds.render(
            &mut out,
            "keyledger_fsync_seconds",
            "Time of each batch's write and fdatasync.",
        );
        self.batch_events.render(
            &mut out,
            "keyledger_batch_events",
            "Events appended per group commit.",
        );
        for (name, help, v) in [
            (
                "keyledger_events_appended_total",
                "Events appended by this server.",
                &self.events_appended,
            ),
            (
                "keyledger_auth_coalesced_total",
                "Successful checks coalesced into a recorded auth-succeeded (R11).",
                &self.auth_coalesced,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out
    }
}
