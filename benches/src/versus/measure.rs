//! What the versus bench measures: wall time, requests and consumed
//! capacity (WRU/RRU, as the endpoint answers `ConsumedCapacity`) of a
//! side, CPU time of the pure decode + plan step, and the bench process's
//! peak RSS.

use std::collections::BTreeMap;
use std::time::Instant;

use streamfold_shared::metrics::{RequestCounter, Units};

/// Wall time, DynamoDB requests and capacity of one side of a workload.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// Seconds spent processing records (source writes excluded).
    pub seconds: f64,
    /// Requests per operation (every HTTP attempt, retries included).
    pub requests: BTreeMap<String, u64>,
    /// Consumed capacity per operation (tables and indexes).
    pub capacity: BTreeMap<String, Units>,
    /// Write units per operation and part: `TransactWriteItems table`,
    /// `TransactWriteItems gsi2` (the table's name left out: each side has
    /// its own).
    pub writes_by_part: BTreeMap<String, f64>,
    /// What the side reported about its records (outcomes, skips).
    pub outcome: String,
}

impl Side {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// `BatchGetItem 100, TransactWriteItems 4,023`.
    pub fn by_operation(&self) -> String {
        self.requests
            .iter()
            .map(|(op, n)| format!("{op} {}", thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// All consumed capacity.
    pub fn units(&self) -> Units {
        self.capacity
            .values()
            .fold(Units::default(), |a, u| a.plus(*u))
    }

    /// `TransactWriteItems 4,023.0 WRU, BatchGetItem 50.5 RRU`.
    pub fn capacity_by_operation(&self) -> String {
        let mut parts = Vec::new();
        for (op, u) in &self.capacity {
            if u.write > 0.0 {
                parts.push(format!("{op} {:.1} WRU", u.write));
            }
            if u.read > 0.0 {
                parts.push(format!("{op} {:.1} RRU", u.read));
            }
        }
        if parts.is_empty() {
            "none reported".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// `TransactWriteItems table 3,120.0, TransactWriteItems gsi2 800.0`.
    pub fn writes_by_part(&self) -> String {
        let parts: Vec<String> = self
            .writes_by_part
            .iter()
            .map(|(part, w)| format!("{part} {w:.1}"))
            .collect();
        if parts.is_empty() {
            "none reported".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Accumulates a side's processing time and requests over several phases.
#[derive(Debug)]
pub struct Stopwatch {
    counter: RequestCounter,
    seconds: f64,
    requests: BTreeMap<String, u64>,
    capacity: BTreeMap<String, Units>,
    writes_by_part: BTreeMap<String, f64>,
}

impl Stopwatch {
    /// Watches the requests of `counter` (reset at each phase).
    pub fn new(counter: RequestCounter) -> Self {
        Self {
            counter,
            seconds: 0.0,
            requests: BTreeMap::new(),
            capacity: BTreeMap::new(),
            writes_by_part: BTreeMap::new(),
        }
    }

    /// Times one phase and adds its requests.
    pub async fn phase<T>(&mut self, work: impl Future<Output = T>) -> T {
        self.counter.reset();
        let started = Instant::now();
        let out = work.await;
        self.seconds += started.elapsed().as_secs_f64();
        for (op, n) in self.counter.snapshot() {
            *self.requests.entry(op).or_default() += n;
        }
        for (op, u) in self.counter.consumed_by_operation() {
            let e = self.capacity.entry(op).or_default();
            *e = e.plus(u);
        }
        for (key, u) in self.counter.capacity() {
            if u.write > 0.0 {
                let part = if key.index.is_empty() {
                    "table"
                } else {
                    key.index.as_str()
                };
                *self
                    .writes_by_part
                    .entry(format!("{} {part}", key.operation))
                    .or_default() += u.write;
            }
        }
        out
    }

    /// The side's figures.
    pub fn finish(self, outcome: String) -> Side {
        Side {
            seconds: self.seconds,
            requests: self.requests,
            capacity: self.capacity,
            writes_by_part: self.writes_by_part,
            outcome,
        }
    }
}

use streamfold_shared::metrics::thread_cpu_ns;

/// Records per CPU-second of `work` over `records` records: the best of at
/// least three runs (and as many as fit in about a CPU-second), timed by the
/// thread's time on a CPU so a busy machine does not hide the figure. Wall
/// time stands in where the CPU time cannot be read.
pub fn records_per_cpu_second(records: usize, mut work: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    let mut spent = 0.0;
    let mut runs = 0;
    while runs < 3 || (spent < 1.0 && runs < 50) {
        let cpu0 = thread_cpu_ns();
        let started = Instant::now();
        std::hint::black_box(work());
        let wall = started.elapsed().as_secs_f64();
        let secs = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => wall,
        };
        best = best.min(secs.max(1e-9));
        spent += secs;
        runs += 1;
    }
    records as f64 / best
}

/// The peak resident set size (VmHWM) of this process, in kB.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current RSS (`5` into `/proc/self/clear_refs`), so
/// the next reading is the peak of one workload; `false` if the kernel
/// refused (the reading is then the peak since the process started).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `12345678` as `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
