//! `streamfold tail`: the pipeline live against the table's DynamoDB stream
//! and, when configured, the Connect agent Kinesis stream. The shard
//! reading machinery here is shared with `streamfold capture`.
//!
//! How it reads:
//!
//! - **Every shard, parents first.** Each stream has a driver that lists its
//!   shards (DescribeStream / ListShards, every page) and starts a reader for
//!   a shard only once its parents (`ParentShardId`, and for Kinesis merges
//!   `AdjacentParentShardId`) were read to their end. A parent that is no
//!   longer listed (trimmed) counts as read. The list is refreshed
//!   periodically and whenever a shard ends, so children of a split or of a
//!   DynamoDB shard rollover start as soon as they may.
//! - **Checkpoints per shard** in the table (`CHECKPOINT#{stream arn}` /
//!   `{shard_id}`, see [`crate::checkpoint`]), written after every batch that
//!   settled. A reader resumes `AFTER_SEQUENCE_NUMBER` of its checkpoint,
//!   else at `TRIM_HORIZON`; a shard whose checkpoint says `ended` is not
//!   read again. A crash or `kill -9` loses at most the batch in flight,
//!   which is read again on restart (at least once; the processors are
//!   idempotent, so there is no double effect).
//! - **No self-feeding.** Checkpoint writes are themselves table stream
//!   records: readers drop them before the pipeline sees them, and a page
//!   holding nothing else moves no checkpoint, so they die out.
//! - **Lambda's failure semantics** per batch (retry from the first failed
//!   record with backoff, `--max-retries`, then dead-letter: see
//!   [`Pipeline`]). A batch whose dead letters could not even be written is
//!   not settled: it is run again (from its start) with backoff, and the
//!   checkpoint does not move past it.
//! - **At most 2 readers per DynamoDB Streams shard.** One process runs
//!   exactly one reader task per shard (a shard is started once, tracked by
//!   id) and that task has at most one GetRecords call in flight, spaced at
//!   least [`MIN_GET_INTERVAL`] apart. So one `tail` (or one `capture`) is
//!   one reader per shard; with the deployed Lambda event source mapping (a
//!   second reader) that is two, DynamoDB Streams' limit. Do not run `tail`
//!   and `capture` on the same stream while Lambda also reads it.
//! - **Iterator expiry.** An expired iterator (they last 15 minutes) is
//!   fetched again after the last record read; a position that was trimmed
//!   restarts at `TRIM_HORIZON` with a warning.
//! - **Stopping.** Ctrl-C stops reading: a batch in flight finishes and is
//!   checkpointed, a GetRecords in flight is abandoned (it had no effect);
//!   a second Ctrl-C leaves at once (the checkpoint is still consistent,
//!   being one PutItem after its batch). `--until-idle` stops once every
//!   reader is caught up and no record arrived for the idle period.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
pub use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use futures::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use streamfold_shared::engine::{Counts, SourceRecord};
use streamfold_shared::executor::{Executor, RetryPolicy, send_retrying};
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::app::App;
use crate::checkpoint::{CHECKPOINT_TYPE, Checkpoint, Checkpoints};
use crate::pipeline::{Pipeline, ProcessorKind, batch_backoff};
use crate::tail_metrics::{Figures, TailMetrics};

/// Retries of a request outside the pipeline (describing a stream, listing
/// shards) that failed transiently, on top of the SDK's own: about 10 s of
/// backoff in all before the error is reported.
pub fn request_backoff() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(4),
    }
}

/// The environment variable naming the Connect agent event stream.
pub const AGENT_STREAM_ENV: &str = "STREAMFOLD_AGENT_STREAM";

/// The shortest time between two GetRecords calls of one reader (5 per
/// second: Kinesis' per-shard limit, and DynamoDB Streams' advice).
pub const MIN_GET_INTERVAL: Duration = Duration::from_millis(200);

/// `streamfold tail` arguments.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Stop once every shard is caught up and no record has arrived for
    /// --idle-ms.
    #[arg(long)]
    pub until_idle: bool,
    #[arg(long, default_value_t = 2000)]
    pub idle_ms: u64,
    /// Retries of a failed record before it is dead-lettered.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    #[arg(long = "processor", value_enum)]
    pub processors: Vec<ProcessorKind>,
    /// The Connect agent event stream (Kinesis), by name or ARN: tailed
    /// alongside the table's stream.
    #[arg(long, env = AGENT_STREAM_ENV)]
    pub kinesis_stream: Option<String>,
    /// Records per GetRecords call (a batch).
    #[arg(long, default_value_t = 1000)]
    pub batch_size: i32,
    /// Pause between GetRecords calls of a caught-up shard.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Print the summary as JSON (and no progress).
    #[arg(long)]
    pub json: bool,
    /// Also write the figures of every batch (per processor: records by
    /// outcome, duration, DynamoDB requests, oldest record age; the Lambda
    /// functions' EMF metrics) as JSON lines to FILE.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<std::path::PathBuf>,
}

/// How `tail` runs.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub until_idle: bool,
    pub idle: Duration,
    pub poll: Duration,
    pub max_retries: u32,
    /// Records per GetRecords call.
    pub batch_size: i32,
    /// The Kinesis stream of agent events (name or ARN), if any.
    pub kinesis_stream: Option<String>,
    /// Read the table's stream (when some processor reads it).
    pub table_stream: bool,
    /// Show a progress line.
    pub progress: bool,
    /// How often the shard lists are refreshed.
    pub refresh: Duration,
    /// Where to write the figures of every batch (JSON lines), if anywhere.
    pub metrics_file: Option<std::path::PathBuf>,
}

impl Default for TailOptions {
    fn default() -> Self {
        Self {
            until_idle: false,
            idle: Duration::from_secs(2),
            poll: Duration::from_millis(500),
            max_retries: 3,
            batch_size: 1000,
            kinesis_stream: None,
            table_stream: true,
            progress: false,
            refresh: Duration::from_secs(10),
            metrics_file: None,
        }
    }
}

fn sdk_err<
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
    op: &str,
    e: aws_sdk_dynamodbstreams::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow!(
        "{op}: {}",
        aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)
    )
}

/// Every shard id of a table stream.
pub async fn list_shards(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
) -> Result<Vec<String>> {
    Ok(table_shards(streams, arn)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

// ---- sources --------------------------------------------------------------

/// A shard and its lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    /// `ParentShardId`, and `AdjacentParentShardId` of a Kinesis merge.
    pub parents: Vec<String>,
    /// The last sequence number of a closed shard.
    pub ending: Option<String>,
}

async fn table_shards(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
) -> Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = send_retrying(request_backoff(), "DescribeStream", || {
            streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
        })
        .await
        .map_err(|e| sdk_err("DescribeStream", e))?;
        let Some(desc) = out.stream_description else {
            break;
        };
        for s in desc.shards.unwrap_or_default() {
            let Some(id) = s.shard_id else { continue };
            shards.push(ShardInfo {
                id,
                parents: s.parent_shard_id.into_iter().collect(),
                ending: s
                    .sequence_number_range
                    .and_then(|r| r.ending_sequence_number),
            });
        }
        start = desc.last_evaluated_shard_id;
        if start.is_none() {
            break;
        }
    }
    Ok(shards)
}

/// A live stream.
#[derive(Debug, Clone)]
pub enum Source {
    /// The table's DynamoDB stream.
    Table {
        client: aws_sdk_dynamodbstreams::Client,
        arn: String,
    },
    /// A Kinesis stream (Connect agent events).
    Kinesis {
        client: aws_sdk_kinesis::Client,
        name: String,
        arn: String,
    },
}

/// Where a reader starts.
enum Start {
    At(String),
    Trimmed,
    Gone,
}

/// One GetRecords answer.
enum Page {
    Records {
        batch: Batch,
        next: Option<String>,
        behind_ms: Option<i64>,
        unreadable: u64,
    },
    Expired,
    Trimmed,
    Gone,
}

impl Source {
    /// The table's stream.
    pub async fn table(app: &App) -> Result<Self> {
        Ok(Source::Table {
            client: app.streams(),
            arn: app.stream_arn().await?,
        })
    }

    /// A Kinesis stream by name or ARN (`arn:…:stream/NAME`).
    pub async fn kinesis(app: &App, stream: &str) -> Result<Self> {
        let client = aws_sdk_kinesis::Client::new(&app.sdk);
        let name = match stream.split_once(":stream/") {
            Some((_, name)) if stream.starts_with("arn:") => name.to_owned(),
            _ => stream.to_owned(),
        };
        let out = send_retrying(request_backoff(), "DescribeStreamSummary", || {
            client.describe_stream_summary().stream_name(&name).send()
        })
        .await
        .map_err(|e| {
            anyhow!(
                "Kinesis stream {stream}: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(e)
            )
        })?;
        let arn = out
            .stream_description_summary
            .map(|s| s.stream_arn)
            .ok_or_else(|| anyhow!("Kinesis stream {stream}: no description"))?;
        Ok(Source::Kinesis { client, name, arn })
    }

    pub fn arn(&self) -> &str {
        match self {
            Source::Table { arn, .. } | Source::Kinesis { arn, .. } => arn,
        }
    }

    /// "table" or "kinesis".
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Table { .. } => "table",
            Source::Kinesis { .. } => "kinesis",
        }
    }

    /// Every shard with its lineage.
    pub async fn shards(&self) -> Result<Vec<ShardInfo>> {
        match self {
            Source::Table { client, arn } => table_shards(client, arn).await,
            Source::Kinesis { client, name, .. } => {
                let mut shards = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let out = send_retrying(request_backoff(), "ListShards", || {
                        let req = client.list_shards();
                        match &token {
                            Some(t) => req.next_token(t),
                            None => req.stream_name(name),
                        }
                        .send()
                    })
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "ListShards: {}",
                            aws_sdk_kinesis::error::DisplayErrorContext(e)
                        )
                    })?;
                    for s in out.shards.unwrap_or_default() {
                        shards.push(ShardInfo {
                            parents: s
                                .parent_shard_id
                                .into_iter()
                                .chain(s.adjacent_parent_shard_id)
                                .collect(),
                            ending: s
                                .sequence_number_range
                                .and_then(|r| r.ending_sequence_number),
                            id: s.shard_id,
                        });
                    }
                    token = out.next_token;
                    if token.is_none() {
                        break;
                    }
                }
                Ok(shards)
            }
        }
    }

    /// An iterator after `after`, else at the trim horizon.
    async fn iterator(&self, shard: &str, after: Option<&str>) -> Result<Start> {
        match self {
            Source::Table { client, arn } => {
                use aws_sdk_dynamodbstreams::types::ShardIteratorType as T;
                let out = client
                    .get_shard_iterator()
                    .stream_arn(arn)
                    .shard_id(shard)
                    .shard_iterator_type(if after.is_some() {
                        T::AfterSequenceNumber
                    } else {
                        T::TrimHorizon
                    })
                    .set_sequence_number(after.map(str::to_owned))
                    .send()
                    .await;
                match out {
                    Ok(o) => Ok(o.shard_iterator.map_or(Start::Gone, Start::At)),
                    Err(e) => match e.as_service_error() {
                        Some(s) if s.is_trimmed_data_access_exception() => Ok(Start::Trimmed),
                        Some(s) if s.is_resource_not_found_exception() => Ok(Start::Gone),
                        _ => Err(sdk_err("GetShardIterator", e)),
                    },
                }
            }
            Source::Kinesis { client, name, .. } => {
                use aws_sdk_kinesis::types::ShardIteratorType as T;
                let out = client
                    .get_shard_iterator()
                    .stream_name(name)
                    .shard_id(shard)
                    .shard_iterator_type(if after.is_some() {
                        T::AfterSequenceNumber
                    } else {
                        T::TrimHorizon
                    })
                    .set_starting_sequence_number(after.map(str::to_owned))
                    .send()
                    .await;
                match out {
                    Ok(o) => Ok(o.shard_iterator.map_or(Start::Gone, Start::At)),
                    Err(e) => match e.as_service_error() {
                        Some(s) if s.is_resource_not_found_exception() => Ok(Start::Gone),
                        // A sequence number outside the retained records.
                        Some(s) if s.is_invalid_argument_exception() && after.is_some() => {
                            Ok(Start::Trimmed)
                        }
                        _ => Err(anyhow!(
                            "GetShardIterator: {}",
                            aws_sdk_kinesis::error::DisplayErrorContext(e)
                        )),
                    },
                }
            }
        }
    }

    /// One GetRecords call.
    async fn page(&self, shard: &str, iterator: &str, limit: i32) -> Result<Page> {
        match self {
            Source::Table { client, .. } => {
                let out = client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(limit.clamp(1, 1000))
                    .send()
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) => {
                        return match e.as_service_error() {
                            Some(s) if s.is_expired_iterator_exception() => Ok(Page::Expired),
                            Some(s) if s.is_trimmed_data_access_exception() => Ok(Page::Trimmed),
                            Some(s) if s.is_resource_not_found_exception() => Ok(Page::Gone),
                            _ => Err(sdk_err("GetRecords", e)),
                        };
                    }
                };
                let mut records = Vec::new();
                let mut unreadable = 0;
                for r in out.records.unwrap_or_default() {
                    match StreamRecord::from_sdk(r) {
                        Ok(r) => records.push(r),
                        Err(e) => {
                            unreadable += 1;
                            warn!(shard, error = %e, "unreadable stream record skipped");
                        }
                    }
                }
                Ok(Page::Records {
                    batch: Batch::Table(records),
                    next: out.next_shard_iterator,
                    behind_ms: None,
                    unreadable,
                })
            }
            Source::Kinesis { client, arn, .. } => {
                let out = client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(limit.clamp(1, 10_000))
                    .send()
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) => {
                        return match e.as_service_error() {
                            Some(s) if s.is_expired_iterator_exception() => Ok(Page::Expired),
                            Some(s) if s.is_resource_not_found_exception() => Ok(Page::Gone),
                            _ => Err(anyhow!(
                                "GetRecords: {}",
                                aws_sdk_kinesis::error::DisplayErrorContext(e)
                            )),
                        };
                    }
                };
                let records = out
                    .records
                    .into_iter()
                    .map(|r| KinesisRecord::from_sdk(r, shard, Some(arn)))
                    .collect();
                Ok(Page::Records {
                    batch: Batch::Kinesis(records),
                    next: out.next_shard_iterator,
                    behind_ms: out.millis_behind_latest,
                    unreadable: 0,
                })
            }
        }
    }
}

/// The records of one GetRecords page.
#[derive(Debug, Clone)]
pub enum Batch {
    Table(Vec<StreamRecord>),
    Kinesis(Vec<KinesisRecord>),
}

impl Batch {
    pub fn len(&self) -> usize {
        match self {
            Batch::Table(r) => r.len(),
            Batch::Kinesis(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sequence number of the last record.
    pub fn last_sequence_number(&self) -> Option<String> {
        match self {
            Batch::Table(r) => r.last().map(|r| r.dynamodb.sequence_number.clone()),
            Batch::Kinesis(r) => r.last().map(|r| r.sequence_number.clone()),
        }
    }

    /// Drops the records of checkpoint items (our own bookkeeping);
    /// returns how many there were.
    pub fn drop_checkpoints(&mut self) -> usize {
        match self {
            Batch::Table(r) => {
                let before = r.len();
                r.retain(|r| r.item_type() != Some(CHECKPOINT_TYPE));
                before - r.len()
            }
            Batch::Kinesis(_) => 0,
        }
    }
}

/// Compares two decimal sequence numbers numerically (`a >= b`).
fn seq_ge(a: &str, b: &str) -> bool {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    (a.len(), a) >= (b.len(), b)
}

// ---- sinks ----------------------------------------------------------------

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

// ---- the readers ----------------------------------------------------------

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

/// What every reader shares.
struct Shared {
    stop: watch::Receiver<bool>,
    /// Readers not yet caught up, and drivers still discovering.
    busy: AtomicUsize,
    last_activity: Mutex<Instant>,
    bar: ProgressBar,
}

impl Shared {
    fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
    }

    fn quiet_for(&self) -> Duration {
        self.last_activity
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Marks a reader or driver busy (not caught up) while held.
struct Busy {
    shared: Arc<Shared>,
    held: bool,
}

impl Busy {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.busy.fetch_add(1, Ordering::SeqCst);
        Self {
            shared: shared.clone(),
            held: true,
        }
    }

    fn set(&mut self, busy: bool) {
        if busy && !self.held {
            self.shared.busy.fetch_add(1, Ordering::SeqCst);
        } else if !busy && self.held {
            self.shared.busy.fetch_sub(1, Ordering::SeqCst);
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
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = stop.changed() => false,
        _ = tokio::time::sleep(d) => !*stop.borrow(),
    }
}

/// How a reader ended.
enum ReaderEnd {
    /// Read to its end (its children may start).
    Ended,
    /// Asked to stop.
    Stopped,
}

struct Reader<S: Sink> {
    source: Source,
    shard: ShardInfo,
    checkpoints: Option<Checkpoints>,
    sink: Arc<S>,
    opts: Arc<ReadOptions>,
    shared: Arc<Shared>,
    stats: Arc<StreamStats>,
    /// Ending sequence numbers of closed shards, as the driver last listed
    /// them.
    endings: Arc<Mutex<HashMap<String, String>>>,
}

impl<S: Sink> Reader<S> {
    async fn open(&self, after: Option<&str>) -> Result<Option<String>> {
        match self.source.iterator(&self.shard.id, after).await? {
            Start::At(it) => Ok(Some(it)),
            Start::Gone => Ok(None),
            Start::Trimmed => {
                warn!(shard = %self.shard.id, after, "the checkpoint is older than the stream's retention; records in between are lost; restarting at TRIM_HORIZON");
                match self.source.iterator(&self.shard.id, None).await? {
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
    async fn run(self, start: Option<String>, mut busy: Busy) -> (Result<ReaderEnd>, Busy) {
        let r = self.read(start, &mut busy).await;
        (r, busy)
    }

    async fn read(&self, start: Option<String>, busy: &mut Busy) -> Result<ReaderEnd> {
        let mut stop = self.shared.stop.clone();
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
            if self.shared.stopping() {
                return Ok(ReaderEnd::Stopped);
            }
            if let Some(t) = last_call {
                let wait = MIN_GET_INTERVAL.saturating_sub(t.elapsed());
                if !wait.is_zero() && !pause(&mut stop, wait).await {
                    return Ok(ReaderEnd::Stopped);
                }
            }
            last_call = Some(Instant::now());
            let page = tokio::select! {
                p = self.source.page(shard, &iterator, self.opts.batch_size) => p,
                _ = stop.changed() => return Ok(ReaderEnd::Stopped),
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
                    if !pause(&mut stop, batch_backoff().delay(errors.min(8))).await {
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
                self.shared.touch();
            }
            if !batch.is_empty() {
                self.settle(&batch, &mut stop).await?;
                self.save(Checkpoint {
                    sequence_number: page_last.clone(),
                    ended: false,
                })
                .await?;
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .records
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.shared.bar.inc(batch.len() as u64);
                self.shared.touch();
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
                if !pause(&mut stop, self.opts.poll).await {
                    return Ok(ReaderEnd::Stopped);
                }
            }
        }
    }

    /// Runs one batch until it settles; a stop while it keeps failing
    /// abandons it (its checkpoint does not move).
    async fn settle(&self, batch: &Batch, stop: &mut watch::Receiver<bool>) -> Result<()> {
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
struct Abandoned;

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped while a batch was failing")
    }
}

impl std::error::Error for Abandoned {}

/// Reads one stream: starts shard readers in lineage order until stopped.
async fn drive<S: Sink>(
    source: Source,
    checkpoints: Option<Checkpoints>,
    sink: Arc<S>,
    opts: Arc<ReadOptions>,
    shared: Arc<Shared>,
    stats: Arc<StreamStats>,
) -> Result<()> {
    let mut discovering = Busy::new(&shared);
    let saved = match &checkpoints {
        Some(c) => c.load().await?,
        None => HashMap::new(),
    };
    let mut done: HashSet<String> = saved
        .iter()
        .filter(|(_, c)| c.ended)
        .map(|(s, _)| s.clone())
        .collect();
    let mut started: HashSet<String> = HashSet::new();
    let mut readers: JoinSet<(String, (Result<ReaderEnd>, Busy))> = JoinSet::new();
    let mut stop = shared.stop.clone();
    let mut first = true;
    let endings: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    info!(stream = %source.arn(), kind = source.kind(), "reading stream");
    loop {
        if shared.stopping() {
            break;
        }
        match source.shards().await {
            Ok(shards) => {
                let known: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
                if let Ok(mut e) = endings.lock() {
                    for s in &shards {
                        if let Some(end) = &s.ending {
                            e.insert(s.id.clone(), end.clone());
                        }
                    }
                }
                for shard in &shards {
                    if started.contains(&shard.id) || done.contains(&shard.id) {
                        continue;
                    }
                    let ready = shard
                        .parents
                        .iter()
                        .all(|p| done.contains(p) || !known.contains(p.as_str()));
                    if !ready {
                        continue;
                    }
                    started.insert(shard.id.clone());
                    let reader = Reader {
                        source: source.clone(),
                        shard: shard.clone(),
                        checkpoints: checkpoints.clone(),
                        sink: sink.clone(),
                        opts: opts.clone(),
                        shared: shared.clone(),
                        stats: stats.clone(),
                        endings: endings.clone(),
                    };
                    let start = saved.get(&shard.id).and_then(|c| c.sequence_number.clone());
                    let busy = Busy::new(&shared);
                    let id = shard.id.clone();
                    readers.spawn(async move { (id, reader.run(start, busy).await) });
                }
                if readers.is_empty() && shards.iter().all(|s| done.contains(&s.id)) {
                    info!(stream = %source.arn(), "every shard was read to its end");
                    break;
                }
            }
            Err(e) if first => return Err(e),
            Err(e) => warn!(stream = %source.arn(), error = %e, "listing shards failed; retrying"),
        }
        first = false;
        discovering.set(false);
        tokio::select! {
            joined = readers.join_next(), if !readers.is_empty() => {
                let Some(joined) = joined else { continue };
                let (shard, (result, busy)) = joined.map_err(|e| anyhow!("shard reader: {e}"))?;
                // Rediscover before letting go of the reader's busy mark,
                // so --until-idle cannot stop between a parent and its
                // children.
                discovering = busy;
                match result {
                    Ok(ReaderEnd::Ended) => {
                        done.insert(shard);
                    }
                    Ok(ReaderEnd::Stopped) => {}
                    Err(e) if e.is::<Abandoned>() => {}
                    Err(e) => {
                        warn!(shard = %shard, error = %e, "shard reader failed; restarting it from its checkpoint");
                        started.remove(&shard);
                        if !pause(&mut stop, Duration::from_secs(1)).await {
                            break;
                        }
                    }
                }
            }
            _ = stop.changed() => {}
            _ = tokio::time::sleep(opts.refresh) => {}
        }
    }
    // Let the readers finish their batch in flight.
    while let Some(joined) = readers.join_next().await {
        if let Ok((shard, (Err(e), _))) = joined
            && !e.is::<Abandoned>()
        {
            warn!(shard = %shard, error = %e, "shard reader failed");
        }
    }
    Ok(())
}

/// What a run of the readers read.
#[derive(Debug, Default)]
pub struct RunStats {
    pub streams: Vec<Arc<StreamStats>>,
    /// Stopped by Ctrl-C (rather than idle or the end of every shard).
    pub interrupted: bool,
}

/// Reads `sources` concurrently into `sink` until stopped (Ctrl-C, or
/// `--until-idle`), or until every shard ended.
pub async fn run_readers<S: Sink>(
    app: &App,
    sources: Vec<Source>,
    sink: Arc<S>,
    opts: &ReadOptions,
) -> Result<RunStats> {
    run_readers_with(&app.ctx.exec, sources, sink, opts, ctrl_c()).await
}

/// A future that completes on each Ctrl-C.
fn ctrl_c() -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    || {
        Box::pin(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// [`run_readers`] with another interrupt (tests).
pub async fn run_readers_with<S: Sink, I>(
    exec: &Executor,
    sources: Vec<Source>,
    sink: Arc<S>,
    opts: &ReadOptions,
    mut interrupt: I,
) -> Result<RunStats>
where
    I: FnMut() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let bar = if opts.progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {pos} records ({per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let shared = Arc::new(Shared {
        stop: stop_rx,
        busy: AtomicUsize::new(0),
        last_activity: Mutex::new(Instant::now()),
        bar: bar.clone(),
    });
    let opts = Arc::new(opts.clone());
    let mut drivers = JoinSet::new();
    let mut stats = RunStats::default();
    for source in sources {
        let checkpoints = if opts.checkpoints {
            Some(Checkpoints::new(exec.clone(), source.arn())?)
        } else {
            None
        };
        let st = Arc::new(StreamStats {
            kind: source.kind(),
            arn: source.arn().to_owned(),
            ..StreamStats::default()
        });
        stats.streams.push(st.clone());
        drivers.spawn(drive(
            source,
            checkpoints,
            sink.clone(),
            opts.clone(),
            shared.clone(),
            st,
        ));
    }
    let mut interrupts = 0;
    let mut first_error: Option<anyhow::Error> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut on_interrupt = interrupt();
    loop {
        tokio::select! {
            _ = &mut on_interrupt => {
                on_interrupt = interrupt();
                interrupts += 1;
                stats.interrupted = true;
                if interrupts == 1 {
                    info!("stopping: finishing the batches in flight (Ctrl-C again to leave at once)");
                    bar.set_message("stopping…");
                    let _ = stop_tx.send(true);
                } else {
                    warn!("leaving at once; the batches in flight will be read again next time");
                    drivers.abort_all();
                    break;
                }
            }
            joined = drivers.join_next() => {
                match joined {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        let _ = stop_tx.send(true);
                        first_error.get_or_insert(e);
                    }
                    Some(Err(e)) => {
                        let _ = stop_tx.send(true);
                        first_error.get_or_insert(anyhow!("stream driver: {e}"));
                    }
                }
            }
            _ = tick.tick() => {
                let msg = stats
                    .streams
                    .iter()
                    .map(|s| format!(
                        "{}: {} records, {} shards",
                        s.kind,
                        s.records.load(Ordering::Relaxed),
                        s.shards_read.load(Ordering::Relaxed)
                    ))
                    .collect::<Vec<_>>()
                    .join("; ");
                bar.set_message(msg);
                if opts.until_idle
                    && shared.busy.load(Ordering::SeqCst) == 0
                    && shared.quiet_for() >= opts.idle
                    && !*stop_tx.borrow()
                {
                    info!("idle: every shard is caught up");
                    let _ = stop_tx.send(true);
                }
            }
        }
    }
    bar.finish_and_clear();
    match first_error {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

// ---- tail ------------------------------------------------------------------

/// What `tail` did.
#[derive(Debug, Default)]
pub struct TailSummary {
    pub run: RunStats,
    pub processors: BTreeMap<ProcessorKind, Counts>,
    /// Records left unsettled by a stop.
    pub unsettled: u64,
    /// Per processor: batches, duration, DynamoDB requests, oldest record age.
    pub metrics: BTreeMap<ProcessorKind, Figures>,
}

impl TailSummary {
    /// Totals over the processors (`records` = records read from the
    /// streams; `failed` includes records left unsettled by a stop).
    pub fn totals(&self) -> Counts {
        let mut c = Counts::default();
        for p in self.processors.values() {
            c.add(*p);
        }
        c.records = self
            .run
            .streams
            .iter()
            .map(|s| s.records.load(Ordering::Relaxed))
            .sum();
        c.failed += self.unsettled;
        c
    }

    pub fn to_json(&self) -> serde_json::Value {
        let totals = self.totals();
        let mut v = serde_json::to_value(totals).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "processors".to_owned(),
                self.processors
                    .iter()
                    .map(|(k, c)| {
                        (
                            k.name().to_owned(),
                            serde_json::to_value(c).unwrap_or_default(),
                        )
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            );
            obj.insert(
                "streams".to_owned(),
                self.run.streams.iter().map(|s| s.to_json()).collect(),
            );
            obj.insert("interrupted".to_owned(), self.run.interrupted.into());
            obj.insert(
                "metrics".to_owned(),
                self.metrics
                    .iter()
                    .map(|(k, f)| {
                        (
                            k.name().to_owned(),
                            serde_json::to_value(f).unwrap_or_default(),
                        )
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            );
        }
        v
    }

    /// The summary as text: one line per stream, one row per processor.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.run.streams {
            let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
            out.push_str(&format!(
                "{} stream {}: {} records in {} batches from {} shards ({} read to their end), {} checkpoints written\n",
                s.kind,
                s.arn,
                n(&s.records),
                n(&s.batches),
                n(&s.shards_read),
                n(&s.shards_ended),
                n(&s.checkpoints_written),
            ));
        }
        let mut rows: Vec<Vec<String>> = self
            .processors
            .iter()
            .map(|(k, c)| counts_row(k.name(), c))
            .collect();
        let totals = self.totals();
        rows.push(counts_row("total", &totals));
        out.push_str(&crate::render::table(
            &[
                "PROCESSOR",
                "RECORDS",
                "APPLIED",
                "NO-OP",
                "IGNORED",
                "DEAD-LETTERED",
                "FAILED",
            ],
            &rows,
        ));
        if !self.metrics.is_empty() {
            let rows: Vec<Vec<String>> = self
                .metrics
                .iter()
                .map(|(k, f)| {
                    vec![
                        k.name().to_owned(),
                        f.batches.to_string(),
                        format!("{:.1}", f.duration_ms_total / (f.batches.max(1) as f64)),
                        format!("{:.1}", f.duration_ms_max),
                        f.read_requests().to_string(),
                        f.write_requests().to_string(),
                        format!("{:.1}", f.write_units),
                        format!("{:.1}", f.read_units),
                        f.oldest_record_age_ms_max
                            .map(|a| format!("{:.1}s", a as f64 / 1000.0))
                            .unwrap_or_else(|| "-".to_owned()),
                    ]
                })
                .collect();
            out.push_str(&crate::render::table(
                &[
                    "PROCESSOR",
                    "BATCHES",
                    "AVG MS",
                    "MAX MS",
                    "READS",
                    "WRITES",
                    "WRU",
                    "RRU",
                    "OLDEST RECORD",
                ],
                &rows,
            ));
        }
        if self.unsettled > 0 {
            out.push_str(&format!(
                "{} records were left unsettled by the stop; they are read again next time\n",
                self.unsettled
            ));
        }
        out
    }
}

fn counts_row(name: &str, c: &Counts) -> Vec<String> {
    vec![
        name.to_owned(),
        c.records.to_string(),
        c.applied.to_string(),
        c.no_op.to_string(),
        c.ignored.to_string(),
        c.dead_lettered.to_string(),
        c.failed.to_string(),
    ]
}

/// The streams `tail` reads.
pub async fn tail_sources(
    app: &App,
    pipeline: &Pipeline,
    opts: &TailOptions,
) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    let table = pipeline.kinds.iter().any(|k| k.reads_table_stream());
    let kinesis = pipeline.kinds.iter().any(|k| k.reads_kinesis());
    if opts.table_stream && table {
        sources.push(Source::table(app).await?);
    }
    match &opts.kinesis_stream {
        Some(stream) if kinesis => sources.push(Source::kinesis(app, stream).await?),
        Some(stream) => {
            warn!(stream = %stream, "no selected processor reads the Kinesis stream; not reading it")
        }
        None if kinesis && !table => {
            return Err(anyhow!(
                "agent-activity reads the Connect agent event stream: give --kinesis-stream NAME|ARN (or {AGENT_STREAM_ENV})"
            ));
        }
        None => {}
    }
    if sources.is_empty() {
        return Err(anyhow!(
            "nothing to read: no selected processor reads a configured stream"
        ));
    }
    Ok(sources)
}

/// Runs the pipeline over the live streams until stopped (Ctrl-C), idle
/// (`until_idle`) or every shard ended.
pub async fn run_tail(app: &App, pipeline: &Pipeline, opts: &TailOptions) -> Result<TailSummary> {
    let sources = tail_sources(app, pipeline, opts).await?;
    let mut sink = PipelineSink::new(pipeline.clone(), opts.max_retries);
    if let Some(path) = &opts.metrics_file {
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow!("writing metrics to {}: {e}", path.display()))?;
        sink = sink.with_metrics_file(file);
    }
    let sink = Arc::new(sink);
    let read = ReadOptions {
        until_idle: opts.until_idle,
        idle: opts.idle,
        poll: opts.poll,
        batch_size: opts.batch_size,
        refresh: opts.refresh,
        checkpoints: true,
        progress: opts.progress,
    };
    let run = run_readers(app, sources, sink.clone(), &read).await?;
    Ok(TailSummary {
        run,
        processors: sink.counts(),
        unsettled: sink.unsettled(),
        metrics: sink.metrics.figures(),
    })
}

/// Runs the pipeline over the table stream (and the Kinesis stream when
/// `opts` names one); returns the totals.
pub async fn tail(app: &App, pipeline: &Pipeline, opts: &TailOptions) -> Result<Counts> {
    Ok(run_tail(app, pipeline, opts).await?.totals())
}

/// `streamfold tail`.
pub async fn run_cli(app: &App, args: TailArgs) -> Result<ExitCode> {
    let pipeline = Pipeline::new(app.ctx.clone(), &args.processors);
    let opts = TailOptions {
        until_idle: args.until_idle,
        idle: Duration::from_millis(args.idle_ms),
        poll: Duration::from_millis(args.poll_ms),
        max_retries: args.max_retries,
        batch_size: args.batch_size,
        kinesis_stream: args.kinesis_stream.filter(|s| !s.trim().is_empty()),
        table_stream: true,
        progress: !args.json,
        metrics_file: args.metrics,
        ..TailOptions::default()
    };
    let summary = run_tail(app, &pipeline, &opts).await?;
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.render());
    }
    Ok(if summary.totals().failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq_ge("10", "9"));
        assert!(seq_ge("9", "9"));
        assert!(!seq_ge("9", "10"));
        assert!(seq_ge("0010", "9"));
        assert!(seq_ge(
            "49590338271490256608559692538361571095921575989136588801",
            "49590338271490256608559692538361571095921575989136588800"
        ));
        assert!(seq_ge("0", ""));
    }
}
