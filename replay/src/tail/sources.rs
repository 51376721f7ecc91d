//! The streams `tail` and `capture` read: shard discovery with lineage, shard
//! iterators and GetRecords pages of the table's DynamoDB stream and of a
//! Kinesis stream. `redrive` and `status` read ranges of shards through the
//! same [`Source::iterator`] and [`Source::page`].

use anyhow::{Result, anyhow};
use streamfold_shared::engine::SourceRecord;
use streamfold_shared::executor::send_retrying;
use streamfold_shared::ids::Timestamp;
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;
use tracing::warn;

use super::request_backoff;
use crate::app::App;
use crate::checkpoint::CHECKPOINT_TYPE;

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

/// A shard and its lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    /// `ParentShardId`, and `AdjacentParentShardId` of a Kinesis merge.
    pub parents: Vec<String>,
    /// The last sequence number of a closed shard.
    pub ending: Option<String>,
}

pub(super) async fn table_shards(
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

/// Where in a shard an iterator starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position<'a> {
    /// The oldest record the stream holds.
    TrimHorizon,
    /// Just after this sequence number (a checkpoint).
    After(&'a str),
    /// At this sequence number (a range to read again).
    At(&'a str),
}

impl<'a> Position<'a> {
    /// After `seq` when there is one, else the trim horizon.
    pub fn after(seq: Option<&'a str>) -> Self {
        seq.map_or(Position::TrimHorizon, Position::After)
    }

    fn sequence_number(self) -> Option<String> {
        match self {
            Position::TrimHorizon => None,
            Position::After(s) | Position::At(s) => Some(s.to_owned()),
        }
    }
}

/// A shard iterator, or why there is none.
#[derive(Debug)]
pub enum Start {
    At(String),
    /// The position is older than the stream's retention.
    Trimmed,
    /// The stream or the shard is gone.
    Gone,
}

/// One GetRecords answer.
#[derive(Debug)]
pub enum Page {
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

/// A stream's name from its name or ARN (`arn:…:stream/NAME`).
fn kinesis_name(stream: &str) -> String {
    match stream.split_once(":stream/") {
        Some((_, name)) if stream.starts_with("arn:") => name.to_owned(),
        _ => stream.to_owned(),
    }
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
        let name = kinesis_name(stream);
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

    /// A stream known by its ARN (from an on-failure record or a
    /// checkpoint): no request is made.
    pub fn from_arn(app: &App, kinesis: bool, arn: &str) -> Self {
        if kinesis {
            Source::Kinesis {
                client: aws_sdk_kinesis::Client::new(&app.sdk),
                name: kinesis_name(arn),
                arn: arn.to_owned(),
            }
        } else {
            Source::Table {
                client: app.streams(),
                arn: arn.to_owned(),
            }
        }
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

    /// A shard iterator at `from`.
    pub async fn iterator(&self, shard: &str, from: Position<'_>) -> Result<Start> {
        match self {
            Source::Table { client, arn } => {
                use aws_sdk_dynamodbstreams::types::ShardIteratorType as T;
                let out = client
                    .get_shard_iterator()
                    .stream_arn(arn)
                    .shard_id(shard)
                    .shard_iterator_type(match from {
                        Position::TrimHorizon => T::TrimHorizon,
                        Position::After(_) => T::AfterSequenceNumber,
                        Position::At(_) => T::AtSequenceNumber,
                    })
                    .set_sequence_number(from.sequence_number())
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
                    .shard_iterator_type(match from {
                        Position::TrimHorizon => T::TrimHorizon,
                        Position::After(_) => T::AfterSequenceNumber,
                        Position::At(_) => T::AtSequenceNumber,
                    })
                    .set_starting_sequence_number(from.sequence_number())
                    .send()
                    .await;
                match out {
                    Ok(o) => Ok(o.shard_iterator.map_or(Start::Gone, Start::At)),
                    Err(e) => match e.as_service_error() {
                        Some(s) if s.is_resource_not_found_exception() => Ok(Start::Gone),
                        // A sequence number outside the retained records.
                        Some(s)
                            if s.is_invalid_argument_exception()
                                && from != Position::TrimHorizon =>
                        {
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

    /// One GetRecords call (`limit` is clamped to what the service takes).
    pub async fn page(&self, shard: &str, iterator: &str, limit: i32) -> Result<Page> {
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

    /// No records, of the kind a stream gives (Kinesis or not).
    pub fn empty(kinesis: bool) -> Self {
        if kinesis {
            Batch::Kinesis(Vec::new())
        } else {
            Batch::Table(Vec::new())
        }
    }

    /// Appends `more`, which comes from the same stream (a batch of the
    /// other kind cannot, and is dropped).
    pub fn append(&mut self, more: Batch) {
        match (self, more) {
            (Batch::Table(r), Batch::Table(more)) => r.extend(more),
            (Batch::Kinesis(r), Batch::Kinesis(more)) => r.extend(more),
            _ => {}
        }
    }

    /// Drops the records after `end` (a sequence number); whether there
    /// were any.
    pub fn truncate_after(&mut self, end: &str) -> bool {
        let before = self.len();
        match self {
            Batch::Table(r) => r.retain(|r| !seq_gt(&r.dynamodb.sequence_number, end)),
            Batch::Kinesis(r) => r.retain(|r| !seq_gt(&r.sequence_number, end)),
        }
        self.len() < before
    }

    /// When the first record reached the stream.
    pub fn first_received_at(&self) -> Option<Timestamp> {
        match self {
            Batch::Table(r) => r.first().and_then(SourceRecord::received_at),
            Batch::Kinesis(r) => r.first().and_then(SourceRecord::received_at),
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

/// Compares two decimal sequence numbers (strings of any length)
/// numerically.
pub fn cmp_seq(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    (a.len(), a).cmp(&(b.len(), b))
}

/// `a >= b`, as numbers.
pub(super) fn seq_ge(a: &str, b: &str) -> bool {
    cmp_seq(a, b).is_ge()
}

/// `a > b`, as numbers.
fn seq_gt(a: &str, b: &str) -> bool {
    cmp_seq(a, b).is_gt()
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
        assert_eq!(cmp_seq("999", "1000"), std::cmp::Ordering::Less);
        assert_eq!(cmp_seq("00100", "100"), std::cmp::Ordering::Equal);
        assert!(cmp_seq("41000000000123", "4100000000012").is_gt());
    }
}
