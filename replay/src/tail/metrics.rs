//! The figures `tail` measures per processor, the same the Lambda functions
//! write as EMF metrics (`streamfold_shared::emf`): records by outcome,
//! batch duration, DynamoDB requests, the age of the oldest record at the
//! start of a batch. They go into `tail`'s summary and, with
//! `--metrics FILE`, one JSON line per batch and processor.
//!
//! Each processor's requests are counted by its own interceptor on a copy
//! of the client (the run's own counter still sees them). A batch's request
//! figure is the processor's count over the batch: exact when one shard is
//! read at a time, shared between batches of shards read concurrently.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use streamfold_shared::emf::{self, BatchMetrics, Capacity};
use streamfold_shared::engine::{Context, Counts};
use streamfold_shared::executor::Executor;
use streamfold_shared::ids::Timestamp;
use streamfold_shared::metrics::{CapacityKey, RequestCounter, Units};

use crate::pipeline::{Pipeline, ProcessorKind};

/// The `Function` of `tail`'s figures.
pub const FUNCTION: &str = "tail";

/// A processor's figures over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub batches: u64,
    pub duration_ms_total: f64,
    pub duration_ms_max: f64,
    /// The oldest record's age at the start of its batch, the largest seen.
    pub oldest_record_age_ms_max: Option<i64>,
    /// DynamoDB requests by operation.
    pub requests: BTreeMap<String, u64>,
    /// Consumed write request units (tables and indexes).
    pub write_units: f64,
    /// Consumed read request units.
    pub read_units: f64,
}

impl Figures {
    pub fn read_requests(&self) -> u64 {
        streamfold_shared::executor::read_requests(&self.requests)
    }

    pub fn write_requests(&self) -> u64 {
        self.requests.values().sum::<u64>() - self.read_requests()
    }
}

/// A batch being measured.
pub struct Started {
    at: Instant,
    now: Timestamp,
    requests: BTreeMap<String, u64>,
    capacity: BTreeMap<CapacityKey, Units>,
}

/// Per-processor contexts with their counters, and what they measured.
#[derive(Debug)]
pub struct TailMetrics {
    contexts: BTreeMap<ProcessorKind, (Context, RequestCounter)>,
    figures: Mutex<BTreeMap<ProcessorKind, Figures>>,
    out: Option<Mutex<BufWriter<File>>>,
}

impl TailMetrics {
    /// One counted copy of the pipeline's context per processor.
    pub fn new(pipeline: &Pipeline) -> Self {
        let contexts = pipeline
            .kinds
            .iter()
            .map(|kind| {
                let counter = RequestCounter::new();
                let exec = &pipeline.ctx.exec;
                let conf = exec
                    .client()
                    .config()
                    .to_builder()
                    .interceptor(counter.clone())
                    .build();
                let mut ctx = pipeline.ctx.clone();
                ctx.exec = Executor::new(aws_sdk_dynamodb::Client::from_conf(conf), exec.table())
                    .with_retry(exec.retry_policy());
                (*kind, (ctx, counter))
            })
            .collect();
        Self {
            contexts,
            figures: Mutex::new(BTreeMap::new()),
            out: None,
        }
    }

    /// Also writes one JSON line per batch and processor to `file`.
    pub fn with_file(mut self, file: File) -> Self {
        self.out = Some(Mutex::new(BufWriter::new(file)));
        self
    }

    /// The context `kind` runs with.
    pub fn ctx(&self, kind: ProcessorKind, fallback: &Context) -> Context {
        self.contexts
            .get(&kind)
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| fallback.clone())
    }

    pub fn start(&self, kind: ProcessorKind) -> Started {
        Started {
            at: Instant::now(),
            now: Timestamp::now(),
            requests: self
                .contexts
                .get(&kind)
                .map(|(_, c)| c.snapshot())
                .unwrap_or_default(),
            capacity: self
                .contexts
                .get(&kind)
                .map(|(_, c)| c.capacity())
                .unwrap_or_default(),
        }
    }

    /// Records a settled batch of `kind`.
    pub fn record(
        &self,
        kind: ProcessorKind,
        started: Started,
        counts: Counts,
        arrivals: impl IntoIterator<Item = Option<Timestamp>>,
    ) {
        let after = self
            .contexts
            .get(&kind)
            .map(|(_, c)| c.snapshot())
            .unwrap_or_default();
        let requests: BTreeMap<String, u64> = after
            .into_iter()
            .map(|(op, n)| {
                let before = started.requests.get(&op).copied().unwrap_or(0);
                (op, n.saturating_sub(before))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let batch = BatchMetrics {
            function: FUNCTION.to_owned(),
            processor: kind.name().to_owned(),
            counts,
            duration_ms: started.at.elapsed().as_secs_f64() * 1000.0,
            requests,
            oldest_record_age_ms: emf::oldest_age_ms(arrivals, started.now),
            consumed: self
                .contexts
                .get(&kind)
                .map(|(_, c)| Capacity::between(&started.capacity, &c.capacity())),
        };
        if let Some(out) = &self.out
            && let Ok(mut w) = out.lock()
        {
            let _ = writeln!(w, "{}", batch.to_json_line(Timestamp::now()));
            let _ = w.flush();
        }
        if let Ok(mut all) = self.figures.lock() {
            let f = all.entry(kind).or_default();
            f.batches += 1;
            f.duration_ms_total += batch.duration_ms;
            f.duration_ms_max = f.duration_ms_max.max(batch.duration_ms);
            f.oldest_record_age_ms_max =
                match (f.oldest_record_age_ms_max, batch.oldest_record_age_ms) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            if let Some(cap) = &batch.consumed {
                f.write_units += cap.write_units;
                f.read_units += cap.read_units;
            }
            for (op, n) in batch.requests {
                *f.requests.entry(op).or_insert(0) += n;
            }
        }
    }

    /// Figures per processor so far.
    pub fn figures(&self) -> BTreeMap<ProcessorKind, Figures> {
        self.figures.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
