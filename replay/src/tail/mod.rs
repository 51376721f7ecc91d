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

mod command;
mod driver;
pub mod metrics;
mod reader;
mod sink;
mod sources;

use std::time::Duration;

use anyhow::Result;
pub use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use sources::table_shards;
use streamfold_shared::executor::RetryPolicy;

pub use command::{TailArgs, TailOptions, TailSummary, run_cli, run_tail, tail, tail_sources};
pub use driver::{RunStats, run_readers, run_readers_with};
pub use reader::{ReadOptions, StreamStats};
pub use sink::{PipelineSink, Sink, SinkError};
pub use sources::{Batch, Page, Position, ShardInfo, Source, Start, cmp_seq};

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
