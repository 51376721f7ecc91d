//! What the readers hand their batches to: the [`Sink`] trait and the
//! pipeline behind `tail`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::anyhow;
use futures::future::join_all;
use streamfold_shared::engine::{Counts, SourceRecord};

use super::Batch;
use super::metrics::TailMetrics;
use crate::pipeline::{Pipeline, ProcessorKind, batch_backoff};

/// Why a sink did not settle a batch.
#[derive(Debug)]
pub enum SinkError {
    /// Try the batch again later (from its start).
    Retry(anyhow::Error),
    /// Stop everything.
    Fatal(anyhow::Error),
}

/// What readers hand their batches to.
pub trait Sink: Send + Sync + 'static {
    /// Handles one batch of a shard, in shard order. `Ok` means settled:
    /// the checkpoint may move past it.
    fn handle(
        &self,
        stream: &str,
        shard: &str,
        batch: &Batch,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// A batch that never settled because the run stopped.
    fn abandoned(&self, _batch: &Batch) {}
}

/// Runs batches through the processors, counting per processor.
#[derive(Debug)]
pub struct PipelineSink {
    pub pipeline: Pipeline,
    pub max_retries: u32,
    counts: Mutex<BTreeMap<ProcessorKind, Counts>>,
    unsettled: AtomicU64,
    /// The figures of every settled batch.
    pub metrics: TailMetrics,
}

impl PipelineSink {
    pub fn new(pipeline: Pipeline, max_retries: u32) -> Self {
        Self {
            metrics: TailMetrics::new(&pipeline),
            pipeline,
            max_retries,
            counts: Mutex::new(BTreeMap::new()),
            unsettled: AtomicU64::new(0),
        }
    }

    /// Also writes the figures of every batch as JSON lines to `file`.
    pub fn with_metrics_file(mut self, file: std::fs::File) -> Self {
        self.metrics = self.metrics.with_file(file);
        self
    }

    /// Counts per processor so far.
    pub fn counts(&self) -> BTreeMap<ProcessorKind, Counts> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Records that were never settled (the run stopped while they failed).
    pub fn unsettled(&self) -> u64 {
        self.unsettled.load(Ordering::Relaxed)
    }

    fn kinds(&self, batch: &Batch) -> Vec<ProcessorKind> {
        self.pipeline
            .kinds
            .iter()
            .copied()
            .filter(|k| match batch {
                Batch::Table(_) => k.reads_table_stream(),
                Batch::Kinesis(_) => k.reads_kinesis(),
            })
            .collect()
    }
}

impl Sink for PipelineSink {
    async fn handle(&self, _stream: &str, shard: &str, batch: &Batch) -> Result<(), SinkError> {
        let runs = self.kinds(batch).into_iter().map(|kind| {
            let single = Pipeline {
                ctx: self.metrics.ctx(kind, &self.pipeline.ctx),
                kinds: vec![kind],
            };
            async move {
                let started = self.metrics.start(kind);
                let c = match batch {
                    Batch::Table(r) => {
                        single
                            .run_table_batch_retrying(r, self.max_retries, batch_backoff())
                            .await
                    }
                    Batch::Kinesis(r) => {
                        single
                            .run_kinesis_batch_retrying(r, self.max_retries, batch_backoff())
                            .await
                    }
                };
                (kind, c, started)
            }
        });
        let results = join_all(runs).await;
        let failed: u64 = results.iter().map(|(_, c, _)| c.failed).sum();
        if failed > 0 {
            // Not even dead-lettered: the batch is not settled.
            return Err(SinkError::Retry(anyhow!(
                "{failed} records of shard {shard} failed and could not be dead-lettered"
            )));
        }
        let mut settled = Vec::with_capacity(results.len());
        for (kind, c, started) in results {
            let arrivals: Vec<_> = match batch {
                Batch::Table(r) => r.iter().map(SourceRecord::received_at).collect(),
                Batch::Kinesis(r) => r.iter().map(SourceRecord::received_at).collect(),
            };
            self.metrics.record(kind, started, c, arrivals);
            settled.push((kind, c));
        }
        if let Ok(mut all) = self.counts.lock() {
            for (kind, c) in settled {
                all.entry(kind).or_default().add(c);
            }
        }
        Ok(())
    }

    fn abandoned(&self, batch: &Batch) {
        self.unsettled
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
}
