//! `streamfold tail`: the pipeline live against the table's DynamoDB stream.
//!
//! Reads every shard from its start (TRIM_HORIZON), converts each GetRecords
//! page to [`StreamRecord`]s and runs them through the [`Pipeline`] with
//! Lambda's failure semantics. `--until-idle` stops once no shard has
//! returned a record for the idle period.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
pub use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use streamfold_shared::engine::Counts;
use streamfold_shared::record::StreamRecord;
use tracing::{info, warn};

use crate::app::App;
use crate::pipeline::{Pipeline, batch_backoff};

/// How `tail` runs.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub until_idle: bool,
    pub idle: Duration,
    pub poll: Duration,
    pub max_retries: u32,
}

impl Default for TailOptions {
    fn default() -> Self {
        Self {
            until_idle: false,
            idle: Duration::from_secs(2),
            poll: Duration::from_millis(250),
            max_retries: 3,
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

/// Every shard id of a stream.
pub async fn list_shards(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
) -> Result<Vec<String>> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = streams
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.clone())
            .send()
            .await
            .map_err(|e| sdk_err("DescribeStream", e))?;
        let Some(desc) = out.stream_description else {
            break;
        };
        shards.extend(
            desc.shards
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.shard_id),
        );
        start = desc.last_evaluated_shard_id;
        if start.is_none() {
            break;
        }
    }
    Ok(shards)
}

/// Runs the pipeline over the table stream until stopped (Ctrl-C) or idle.
pub async fn tail(app: &App, pipeline: &Pipeline, opts: &TailOptions) -> Result<Counts> {
    let streams = app.streams();
    let arn = app.stream_arn().await?;
    let mut iterators: BTreeMap<String, String> = BTreeMap::new();
    for shard in list_shards(&streams, &arn).await? {
        let it = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| sdk_err("GetShardIterator", e))?;
        if let Some(it) = it.shard_iterator {
            iterators.insert(shard, it);
        }
    }
    info!(stream = %arn, shards = iterators.len(), "tailing the table stream");
    let mut counts = Counts::default();
    let mut last_record = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let mut got = 0usize;
        let shard_ids: Vec<String> = iterators.keys().cloned().collect();
        for shard in shard_ids {
            let Some(it) = iterators.get(&shard).cloned() else {
                continue;
            };
            let out = match streams
                .get_records()
                .shard_iterator(it)
                .limit(1000)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    warn!(shard = %shard, error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e), "GetRecords failed; retrying");
                    continue;
                }
            };
            let mut records = Vec::new();
            for r in out.records.unwrap_or_default() {
                match StreamRecord::from_sdk(r) {
                    Ok(r) => records.push(r),
                    Err(e) => warn!(shard = %shard, error = %e, "unreadable stream record skipped"),
                }
            }
            if !records.is_empty() {
                got += records.len();
                let c = pipeline
                    .run_table_batch_retrying(&records, opts.max_retries, batch_backoff())
                    .await;
                counts.add(c);
            }
            match out.next_shard_iterator {
                Some(next) => {
                    iterators.insert(shard, next);
                }
                None => {
                    info!(shard = %shard, "shard closed and read to its end");
                    iterators.remove(&shard);
                }
            }
        }
        if got > 0 {
            last_record = Instant::now();
            continue;
        }
        if iterators.is_empty() || (opts.until_idle && last_record.elapsed() >= opts.idle) {
            break;
        }
        tokio::select! {
            _ = &mut ctrl_c => { info!("stopping on Ctrl-C"); break; }
            _ = tokio::time::sleep(opts.poll) => {}
        }
    }
    Ok(counts)
}
