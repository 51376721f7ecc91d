//! One shard's reader: GetRecords in a loop, batches settled through the
//! sink, a checkpoint after each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::sources::{Page, Position, Start, seq_ge};
use super::{Batch, MIN_GET_INTERVAL, ShardInfo, Sink, SinkError, Source};
use crate::checkpoint::{Checkpoint, Checkpoints};
use crate::pipeline::batch_backoff;

/// How the readers run.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub until_idle: bool,
    pub idle: Duration,
    pub poll: Duration,
    pub batch_size: i32,
    pub refresh: Duration,
    /// Keep checkpoints in the table (tail), or read from the trim horizon
    /// without them (capture).
    pub checkpoints: bool,
    pub progress: bool,
}

/// Counts of one stream.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub kind: &'static str,
    pub arn: String,
    pub shards_read: AtomicU64,
    pub shards_ended: AtomicU64,
    pub records: AtomicU64,
    pub checkpoint_records: AtomicU64,
    pub unreadable: AtomicU64,
    pub batches: AtomicU64,
    pub retried_batches: AtomicU64,
    pub checkpoints_written: AtomicU64,
}

impl StreamStats {
    pub fn to_json(&self) -> serde_json::Value {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "stream": self.kind,
            "arn": self.arn,
            "shards_read": n(&self.shards_read),
            "shards_ended": n(&self.shards_ended),
            "records": n(&self.records),
            "checkpoint_records_skipped": n(&self.checkpoint_records),
            "unreadable": n(&self.unreadable),
            "batches": n(&self.batches),
            "retried_batches": n(&self.retried_batches),
            "checkpoints_written": n(&self.checkpoints_written),
        })
    }
}

/// The state of one run that every reader and driver shares.
pub(super) struct RunState {
    /// Cancelled by a stop request, by `--until-idle` or by a failed driver.
    pub(super) stop: CancellationToken,
    /// Readers not yet caught up, and drivers still discovering.
    pub(super) busy: AtomicUsize,
    pub(super) last_activity: Mutex<Instant>,
    pub(super) bar: ProgressBar,
}

impl RunState {
    fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
    }

    pub(super) fn quiet_for(&self) -> Duration {
        self.last_activity
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// Marks a reader or driver busy (not caught up) while held.
pub(super) struct Busy {
    state: Arc<RunState>,
    held: bool,
}

impl Busy {
    pub(super) fn new(state: &Arc<RunState>) -> Self {
        state.busy.fetch_add(1, Ordering::SeqCst);
        Self {
            state: state.clone(),
            held: true,
        }
    }

    pub(super) fn set(&mut self, busy: bool) {
        if busy && !self.held {
            self.state.busy.fetch_add(1, Ordering::SeqCst);
        } else if !busy && self.held {
            self.state.busy.fetch_sub(1, Ordering::SeqCst);
        }
        self.held = busy;
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Sleeps unless asked to stop; `false` when stopping.
pub(super) async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    if stop.is_cancelled() {
        return false;
    }
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(d) => !stop.is_cancelled(),
    }
}

/// How a reader ended.
pub(super) enum ReaderEnd {
    /// Read to its end (its children may start).
    Ended,
    /// Asked to stop.
    Stopped,
}

pub(super) struct Reader<S: Sink> {
    pub(super) source: Source,
    pub(super) shard: ShardInfo,
    pub(super) checkpoints: Option<Checkpoints>,
    pub(super) sink: Arc<S>,
    pub(super) opts: Arc<ReadOptions>,
    pub(super) state: Arc<RunState>,
    pub(super) stats: Arc<StreamStats>,
    /// Ending sequence numbers of closed shards, as the driver last listed
    /// them.
    pub(super) endings: Arc<Mutex<HashMap<String, String>>>,
}

impl<S: Sink> Reader<S> {
    async fn open(&self, after: Option<&str>) -> Result<Option<String>> {
        match self
            .source
            .iterator(&self.shard.id, Position::after(after))
            .await?
        {
            Start::At(it) => Ok(Some(it)),
            Start::Gone => Ok(None),
            Start::Trimmed => {
                warn!(shard = %self.shard.id, after, "the checkpoint is older than the stream's retention; records in between are lost; restarting at TRIM_HORIZON");
                match self
                    .source
                    .iterator(&self.shard.id, Position::TrimHorizon)
                    .await?
                {
                    Start::At(it) => Ok(Some(it)),
                    _ => Ok(None),
                }
            }
        }
    }

    /// The shard's last sequence number once it is closed, as last listed.
    fn ending(&self) -> Option<String> {
        self.endings
            .lock()
            .ok()
            .and_then(|e| e.get(&self.shard.id).cloned())
            .or_else(|| self.shard.ending.clone())
    }

    async fn save(&self, cp: Checkpoint) -> Result<()> {
        if let Some(c) = &self.checkpoints {
            c.save(&self.shard.id, &cp).await?;
            self.stats
                .checkpoints_written
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reads the shard from `start` (a checkpoint) until its end or a stop.
    pub(super) async fn run(
        self,
        start: Option<String>,
        mut busy: Busy,
    ) -> (Result<ReaderEnd>, Busy) {
        let r = self.read(start, &mut busy).await;
        (r, busy)
    }

    async fn read(&self, start: Option<String>, busy: &mut Busy) -> Result<ReaderEnd> {
        let stop = &self.state.stop;
        let shard = self.shard.id.as_str();
        self.stats.shards_read.fetch_add(1, Ordering::Relaxed);
        debug!(shard, after = ?start, "reading shard");
        let mut last = start;
        let Some(mut iterator) = self.open(last.as_deref()).await? else {
            return Ok(ReaderEnd::Ended);
        };
        let mut errors = 0u32;
        let mut last_call: Option<Instant> = None;
        loop {
            if self.state.stopping() {
                return Ok(ReaderEnd::Stopped);
            }
            if let Some(t) = last_call {
                let wait = MIN_GET_INTERVAL.saturating_sub(t.elapsed());
                if !wait.is_zero() && !pause(stop, wait).await {
                    return Ok(ReaderEnd::Stopped);
                }
            }
            last_call = Some(Instant::now());
            let page = tokio::select! {
                p = self.source.page(shard, &iterator, self.opts.batch_size) => p,
                () = stop.cancelled() => return Ok(ReaderEnd::Stopped),
            };
            let (mut batch, next, behind_ms, unreadable) = match page {
                Ok(Page::Records {
                    batch,
                    next,
                    behind_ms,
                    unreadable,
                }) => (batch, next, behind_ms, unreadable),
                Ok(Page::Expired) => {
                    debug!(shard, "shard iterator expired; fetching a new one");
                    match self.open(last.as_deref()).await? {
                        Some(it) => iterator = it,
                        None => return Ok(ReaderEnd::Ended),
                    }
                    continue;
                }
                Ok(Page::Trimmed) => {
                    match self.open(last.as_deref()).await? {
                        Some(it) => iterator = it,
                        None => return Ok(ReaderEnd::Ended),
                    }
                    continue;
                }
                Ok(Page::Gone) => return Ok(ReaderEnd::Ended),
                Err(e) => {
                    errors += 1;
                    warn!(shard, error = %e, attempt = errors, "GetRecords failed; retrying");
                    if !pause(stop, batch_backoff().delay(errors.min(8))).await {
                        return Ok(ReaderEnd::Stopped);
                    }
                    if errors.is_multiple_of(5) {
                        // The iterator itself may be bad: start again from
                        // the last record read.
                        if let Some(it) = self.open(last.as_deref()).await? {
                            iterator = it;
                        }
                    }
                    continue;
                }
            };
            errors = 0;
            self.stats
                .unreadable
                .fetch_add(unreadable, Ordering::Relaxed);
            let read = batch.len() + unreadable as usize;
            let page_last = batch.last_sequence_number();
            let own = batch.drop_checkpoints();
            self.stats
                .checkpoint_records
                .fetch_add(own as u64, Ordering::Relaxed);
            if read > 0 {
                busy.set(true);
                self.state.touch();
            }
            if !batch.is_empty() {
                self.settle(&batch, stop).await?;
                self.save(Checkpoint {
                    sequence_number: page_last.clone(),
                    ended: false,
                })
                .await?;
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .records
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.state.bar.inc(batch.len() as u64);
                self.state.touch();
            }
            if page_last.is_some() {
                last = page_last;
            }
            let ended = match &next {
                None => true,
                // Some endpoints keep answering a closed shard with empty
                // pages: it ended once its last record was read.
                Some(_) => {
                    read == 0
                        && self
                            .ending()
                            .is_some_and(|end| last.as_deref().is_none_or(|l| seq_ge(l, &end)))
                }
            };
            if ended {
                // Busy until the driver has started the children.
                busy.set(true);
                self.save(Checkpoint {
                    sequence_number: last.clone(),
                    ended: true,
                })
                .await?;
                self.stats.shards_ended.fetch_add(1, Ordering::Relaxed);
                debug!(shard, "shard read to its end");
                return Ok(ReaderEnd::Ended);
            }
            if let Some(n) = next {
                iterator = n;
            }
            if read == 0 {
                if behind_ms.unwrap_or(0) == 0 {
                    busy.set(false);
                }
                if !pause(stop, self.opts.poll).await {
                    return Ok(ReaderEnd::Stopped);
                }
            }
        }
    }

    /// Runs one batch until it settles; a stop while it keeps failing
    /// abandons it (its checkpoint does not move).
    async fn settle(&self, batch: &Batch, stop: &CancellationToken) -> Result<()> {
        let mut attempt = 0u32;
        loop {
            match self
                .sink
                .handle(self.source.arn(), &self.shard.id, batch)
                .await
            {
                Ok(()) => return Ok(()),
                Err(SinkError::Fatal(e)) => return Err(e),
                Err(SinkError::Retry(e)) => {
                    self.stats.retried_batches.fetch_add(1, Ordering::Relaxed);
                    warn!(shard = %self.shard.id, error = %e, "batch not settled; running it again");
                    if !pause(stop, batch_backoff().delay(attempt.min(8))).await {
                        self.sink.abandoned(batch);
                        return Err(anyhow!(Abandoned));
                    }
                    attempt += 1;
                }
            }
        }
    }
}

/// A batch left unsettled by a stop (not an error of the run).
#[derive(Debug)]
pub(super) struct Abandoned;

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped while a batch was failing")
    }
}

impl std::error::Error for Abandoned {}
