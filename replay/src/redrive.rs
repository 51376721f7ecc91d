//! `streamfold redrive --queue URL | --s3 s3://bucket/prefix | FILE...`: the
//! way back for batches an event source mapping gave up on.
//!
//! What Lambda sends to a stream mapping's on-failure destination is only
//! the batch's place: `DDBStreamBatchInfo` or `KinesisBatchInfo` (shard,
//! first and last sequence number, stream ARN, arrival times, size). For
//! each such record, redrive reads the range from its shard again
//! (`AT_SEQUENCE_NUMBER` of the start, up to the end sequence number), runs
//! the records through the processors that own them with the usual failure
//! semantics (retry from the first failure, then dead-letter), and deletes
//! an SQS message only after every record of it settled. A range the stream
//! no longer holds (trimmed after 24 hours, or a shard that is gone) is
//! reported as lost, with its count and time range: what it changed never
//! reached the views, and `rebuild check --repair` recomputes them from
//! the sources. Files and S3 objects are only read, never deleted.

use std::cmp::Ordering;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use streamfold_shared::engine::Counts;
use streamfold_shared::executor::DryRun;
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;

use crate::app::App;
use crate::pipeline::{Pipeline, ProcessorKind, batch_backoff};

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Files of on-failure records (a record, an array, JSON Lines, or SQS
    /// message bodies as saved).
    pub files: Vec<PathBuf>,
    /// The on-failure SQS queue (its URL): every message is read, and
    /// deleted once all its records settled.
    #[arg(long, conflicts_with = "s3")]
    pub queue: Option<String>,
    /// An S3 on-failure destination: every object under the prefix is read
    /// (and left in place).
    #[arg(long)]
    pub s3: Option<String>,
    /// Only these processors (default: the one whose function failed, by
    /// its name, else every one that reads the stream).
    #[arg(long = "processor", value_enum)]
    pub processors: Vec<ProcessorKind>,
    /// Records per batch.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Retries of a failed record before it is dead-lettered.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// Also delete the SQS messages whose ranges are lost (after
    /// `rebuild check --repair`); by default they are kept.
    #[arg(long)]
    pub drop_lost: bool,
    /// Write nothing: print what would be fetched (stderr) and the writes
    /// that would be applied (JSON lines on stdout); no message is deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which stream a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    DynamoDb,
    Kinesis,
}

/// One on-failure record: the place of a batch Lambda gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchInfo {
    pub kind: StreamKind,
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub batch_size: u64,
    pub first_arrival: Option<String>,
    pub last_arrival: Option<String>,
    /// The function that gave up (requestContext.functionArn).
    pub function_arn: Option<String>,
    /// Why (RetryAttemptsExhausted, RecordAgeExceeded, ...).
    pub condition: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl BatchInfo {
    fn from_record(record: &Value) -> Option<Self> {
        let (kind, info) = if let Some(i) = record.get("DDBStreamBatchInfo") {
            (StreamKind::DynamoDb, i)
        } else if let Some(i) = record.get("KinesisBatchInfo") {
            (StreamKind::Kinesis, i)
        } else {
            return None;
        };
        Some(Self {
            kind,
            stream_arn: text(info, "streamArn")?,
            shard_id: text(info, "shardId")?,
            start_sequence_number: text(info, "startSequenceNumber")?,
            end_sequence_number: text(info, "endSequenceNumber")?,
            batch_size: info.get("batchSize").and_then(Value::as_u64).unwrap_or(0),
            first_arrival: text(info, "approximateArrivalOfFirstRecord"),
            last_arrival: text(info, "approximateArrivalOfLastRecord"),
            function_arn: record
                .get("requestContext")
                .and_then(|c| text(c, "functionArn")),
            condition: record
                .get("requestContext")
                .and_then(|c| text(c, "condition")),
        })
    }

    /// The processors to run: `chosen` if given, else the one the failed
    /// function's name names, else every processor of the stream.
    pub fn processors(&self, chosen: &[ProcessorKind]) -> Vec<ProcessorKind> {
        let reads = |k: &ProcessorKind| match self.kind {
            StreamKind::DynamoDb => k.reads_table_stream(),
            StreamKind::Kinesis => k.reads_kinesis(),
        };
        if !chosen.is_empty() {
            return chosen.iter().copied().filter(reads).collect();
        }
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let function = self
            .function_arn
            .as_deref()
            .and_then(|a| a.rsplit(':').next())
            .map(norm)
            .unwrap_or_default();
        let named: Vec<ProcessorKind> = ProcessorKind::ALL
            .iter()
            .copied()
            .filter(reads)
            .filter(|k| !function.is_empty() && function.contains(&norm(k.name())))
            .collect();
        if named.is_empty() {
            ProcessorKind::ALL.iter().copied().filter(reads).collect()
        } else {
            named
        }
    }
}

/// Every on-failure record in a JSON value, wherever it sits (a record, an
/// array of them, an object holding them, an SQS message body as a string).
pub fn batch_infos(value: &Value) -> Vec<BatchInfo> {
    let mut out = Vec::new();
    walk(value, &mut out, 0);
    out
}

fn walk(value: &Value, out: &mut Vec<BatchInfo>, depth: usize) {
    if depth > 16 {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(info) = BatchInfo::from_record(value) {
                out.push(info);
                return;
            }
            for v in map.values() {
                walk(v, out, depth + 1);
            }
        }
        Value::Array(items) => {
            for v in items {
                walk(v, out, depth + 1);
            }
        }
        Value::String(s) if s.trim_start().starts_with('{') => {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                walk(&inner, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// The on-failure records of a text: one JSON document, or JSON Lines.
pub fn parse_text(text: &str) -> Vec<BatchInfo> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return batch_infos(&v);
    }
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| batch_infos(&v))
        .collect()
}

/// Sequence numbers are decimal strings of any length: compared as numbers.
pub fn cmp_seq(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The records of a range, or why there are none.
enum Fetched {
    Table {
        records: Vec<StreamRecord>,
        unreadable: u64,
    },
    Kinesis(Vec<KinesisRecord>),
    Lost(String),
}

/// Pages read at most per range, and empty pages in a row that end an open
/// shard's range.
const MAX_PAGES: usize = 100_000;
const EMPTY_PAGES: usize = 3;

async fn fetch_table(app: &App, info: &BatchInfo, bar: &ProgressBar) -> Result<Fetched> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let client = app.streams();
    let out = client
        .get_shard_iterator()
        .stream_arn(&info.stream_arn)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&info.start_sequence_number)
        .send()
        .await;
    let mut iterator = match out {
        Ok(o) => o.shard_iterator,
        Err(e) => {
            return match e.as_service_error() {
                Some(s) if s.is_trimmed_data_access_exception() => Ok(Fetched::Lost(
                    "the stream has trimmed the range (older than 24 hours)".into(),
                )),
                Some(s) if s.is_resource_not_found_exception() => {
                    Ok(Fetched::Lost("the stream or the shard is gone".into()))
                }
                _ => Err(anyhow!(
                    "GetShardIterator of {}: {}",
                    info.shard_id,
                    aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)
                )),
            };
        }
    };
    let mut records = Vec::new();
    let mut unreadable = 0;
    let mut empty = 0;
    let mut pages = 0;
    'pages: while let Some(it) = iterator.take() {
        pages += 1;
        let out = client
            .get_records()
            .shard_iterator(it)
            .limit(1000)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                return match e.as_service_error() {
                    Some(s) if s.is_trimmed_data_access_exception() => Ok(Fetched::Lost(
                        "the stream has trimmed the range (older than 24 hours)".into(),
                    )),
                    _ => Err(anyhow!(
                        "GetRecords of {}: {}",
                        info.shard_id,
                        aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)
                    )),
                };
            }
        };
        let page = out.records.unwrap_or_default();
        empty = if page.is_empty() { empty + 1 } else { 0 };
        for r in page {
            let seq = r
                .dynamodb
                .as_ref()
                .and_then(|d| d.sequence_number.clone())
                .unwrap_or_default();
            if cmp_seq(&seq, &info.end_sequence_number) == Ordering::Greater {
                break 'pages;
            }
            match StreamRecord::from_sdk(r) {
                Ok(r) => records.push(r),
                Err(e) => {
                    unreadable += 1;
                    tracing::warn!(shard = %info.shard_id, error = %e, "unreadable stream record");
                }
            }
            bar.inc(1);
        }
        if empty >= EMPTY_PAGES || pages >= MAX_PAGES {
            break;
        }
        iterator = out.next_shard_iterator;
    }
    if records.is_empty() && unreadable == 0 {
        return Ok(Fetched::Lost("the stream no longer holds the range".into()));
    }
    Ok(Fetched::Table {
        records,
        unreadable,
    })
}

async fn fetch_kinesis(app: &App, info: &BatchInfo, bar: &ProgressBar) -> Result<Fetched> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let client = aws_sdk_kinesis::Client::new(&app.sdk);
    let name = info
        .stream_arn
        .split_once(":stream/")
        .map(|(_, n)| n.to_owned())
        .unwrap_or_else(|| info.stream_arn.clone());
    let out = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&info.start_sequence_number)
        .send()
        .await;
    let mut iterator = match out {
        Ok(o) => o.shard_iterator,
        Err(e) => {
            return match e.as_service_error() {
                Some(s) if s.is_resource_not_found_exception() => {
                    Ok(Fetched::Lost("the stream or the shard is gone".into()))
                }
                Some(s) if s.is_invalid_argument_exception() => Ok(Fetched::Lost(
                    "the stream no longer holds the range (past its retention)".into(),
                )),
                _ => Err(anyhow!(
                    "GetShardIterator of {}: {}",
                    info.shard_id,
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )),
            };
        }
    };
    let mut records = Vec::new();
    let mut empty = 0;
    let mut pages = 0;
    'pages: while let Some(it) = iterator.take() {
        pages += 1;
        let out = client
            .get_records()
            .shard_iterator(it)
            .limit(10_000)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "GetRecords of {}: {}",
                    info.shard_id,
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            })?;
        empty = if out.records.is_empty() { empty + 1 } else { 0 };
        let caught_up = out.millis_behind_latest == Some(0);
        for r in out.records {
            if cmp_seq(&r.sequence_number, &info.end_sequence_number) == Ordering::Greater {
                break 'pages;
            }
            records.push(KinesisRecord::from_sdk(
                r,
                &info.shard_id,
                Some(&info.stream_arn),
            ));
            bar.inc(1);
        }
        if empty >= EMPTY_PAGES || pages >= MAX_PAGES || (caught_up && empty > 0) {
            break;
        }
        iterator = out.next_shard_iterator;
    }
    if records.is_empty() {
        return Ok(Fetched::Lost("the stream no longer holds the range".into()));
    }
    Ok(Fetched::Kinesis(records))
}

/// What redriving one batch came to.
#[derive(Debug, Clone, Serialize)]
pub struct BatchResult {
    /// Where the on-failure record came from (file, queue message, object).
    pub source: String,
    #[serde(flatten)]
    pub info: BatchInfo,
    pub processors: Vec<&'static str>,
    pub fetched: u64,
    pub unreadable: u64,
    #[serde(flatten)]
    pub counts: Counts,
    /// Why the range could not be read (then nothing was applied).
    pub lost: Option<String>,
}

impl BatchResult {
    /// Every record of it settled (applied, no-op, ignored, dead-lettered).
    pub fn settled(&self) -> bool {
        self.lost.is_none() && self.unreadable == 0 && self.counts.failed == 0
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveReport {
    pub dry_run: bool,
    pub batches: Vec<BatchResult>,
    /// Inputs with no on-failure record in them (file, message or object).
    pub not_on_failure_records: Vec<String>,
    pub messages_deleted: u64,
    pub messages_kept: u64,
    pub totals: Counts,
}

impl RedriveReport {
    pub fn lost(&self) -> impl Iterator<Item = &BatchResult> {
        self.batches.iter().filter(|b| b.lost.is_some())
    }

    pub fn ok(&self) -> bool {
        self.batches.iter().all(BatchResult::settled) && self.not_on_failure_records.is_empty()
    }

    pub fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .batches
            .iter()
            .map(|b| {
                vec![
                    b.info.shard_id.clone(),
                    format!(
                        "{}..{}",
                        b.info.start_sequence_number, b.info.end_sequence_number
                    ),
                    b.processors.join(","),
                    b.fetched.to_string(),
                    b.counts.applied.to_string(),
                    b.counts.no_op.to_string(),
                    b.counts.dead_lettered.to_string(),
                    b.counts.failed.to_string(),
                    if b.lost.is_some() { "LOST" } else { "" }.to_owned(),
                ]
            })
            .collect();
        let mut out = crate::render::table(
            &[
                "SHARD",
                "RANGE",
                "PROCESSORS",
                "FETCHED",
                "APPLIED",
                "NO-OP",
                "DEAD",
                "FAILED",
                "",
            ],
            &rows,
        );
        let t = &self.totals;
        out.push_str(&format!(
            "{} batches{}: {} records, {} applied, {} no-op, {} ignored, {} dead-lettered, {} failed\n",
            self.batches.len(),
            if self.dry_run { " (dry run)" } else { "" },
            t.records,
            t.applied,
            t.no_op,
            t.ignored,
            t.dead_lettered,
            t.failed
        ));
        if self.messages_deleted + self.messages_kept > 0 {
            out.push_str(&format!(
                "queue: {} messages deleted, {} kept\n",
                self.messages_deleted, self.messages_kept
            ));
        }
        for b in self.lost() {
            out.push_str(&format!(
                "LOST: shard {} of {}: {} records that arrived {} .. {}: {}. \
                 Their changes never reached the views: run `streamfold rebuild check --repair`.\n",
                b.info.shard_id,
                b.info.stream_arn,
                b.info.batch_size,
                b.info.first_arrival.as_deref().unwrap_or("?"),
                b.info.last_arrival.as_deref().unwrap_or("?"),
                b.lost.as_deref().unwrap_or_default(),
            ));
        }
        for s in &self.not_on_failure_records {
            out.push_str(&format!(
                "{s}: no DDBStreamBatchInfo or KinesisBatchInfo (not a Lambda on-failure record); left\n"
            ));
        }
        out
    }
}

struct Redriver<'a> {
    app: &'a App,
    args: &'a RedriveArgs,
    bar: ProgressBar,
}

impl Redriver<'_> {
    fn pipeline(&self, kinds: &[ProcessorKind]) -> Pipeline {
        let mut ctx = self.app.ctx.clone();
        if self.args.dry_run {
            ctx.exec = ctx.exec.dry_run(std::sync::Arc::new(DryRun::stdout()));
        }
        Pipeline::new(ctx, kinds)
    }

    async fn batch(&self, source: &str, info: BatchInfo) -> Result<BatchResult> {
        let kinds = info.processors(&self.args.processors);
        let mut result = BatchResult {
            source: source.to_owned(),
            processors: kinds.iter().map(|k| k.name()).collect(),
            info,
            fetched: 0,
            unreadable: 0,
            counts: Counts::default(),
            lost: None,
        };
        let info = &result.info;
        if self.args.dry_run {
            eprintln!(
                "would fetch {} {} {}..{} ({} records) for {}",
                info.stream_arn,
                info.shard_id,
                info.start_sequence_number,
                info.end_sequence_number,
                info.batch_size,
                result.processors.join(", ")
            );
        }
        let fetched = match info.kind {
            StreamKind::DynamoDb => fetch_table(self.app, info, &self.bar).await?,
            StreamKind::Kinesis => fetch_kinesis(self.app, info, &self.bar).await?,
        };
        if kinds.is_empty() {
            bail!(
                "no processor given reads {} (shard {})",
                info.stream_arn,
                info.shard_id
            );
        }
        let pipeline = self.pipeline(&kinds);
        let size = self.args.batch_size.max(1);
        let backoff = batch_backoff();
        match fetched {
            Fetched::Lost(why) => result.lost = Some(why),
            Fetched::Table {
                records,
                unreadable,
            } => {
                result.fetched = records.len() as u64 + unreadable;
                result.unreadable = unreadable;
                for chunk in records.chunks(size) {
                    result.counts.add(
                        pipeline
                            .run_table_batch_retrying(chunk, self.args.max_retries, backoff)
                            .await,
                    );
                }
            }
            Fetched::Kinesis(records) => {
                result.fetched = records.len() as u64;
                for chunk in records.chunks(size) {
                    result.counts.add(
                        pipeline
                            .run_kinesis_batch_retrying(chunk, self.args.max_retries, backoff)
                            .await,
                    );
                }
            }
        }
        Ok(result)
    }

    /// Every on-failure record of one input; whether all settled.
    async fn input(&self, source: &str, text: &str, report: &mut RedriveReport) -> Result<bool> {
        let infos = parse_text(text);
        if infos.is_empty() {
            report.not_on_failure_records.push(source.to_owned());
            return Ok(false);
        }
        let mut settled = true;
        for info in infos {
            let r = self.batch(source, info).await?;
            settled &= r.settled();
            report.totals.add(r.counts);
            report.batches.push(r);
        }
        Ok(settled)
    }

    async fn queue(&self, url: &str, report: &mut RedriveReport) -> Result<()> {
        let sqs = aws_sdk_sqs::Client::new(&self.app.sdk);
        let mut kept: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(900)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "reading queue {url}: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                })?;
            let messages = out.messages.unwrap_or_default();
            let fresh: Vec<_> = messages
                .into_iter()
                .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for m in fresh {
                let id = m.message_id.clone().unwrap_or_default();
                let body = m.body.clone().unwrap_or_default();
                let handle = m.receipt_handle.clone().unwrap_or_default();
                let before = report.batches.len();
                let settled = self.input(&format!("message {id}"), &body, report).await?;
                let only_lost = report.batches[before..]
                    .iter()
                    .all(|b| b.settled() || (b.lost.is_some() && self.args.drop_lost))
                    && report.batches.len() > before;
                if !self.args.dry_run && (settled || only_lost) {
                    sqs.delete_message()
                        .queue_url(url)
                        .receipt_handle(&handle)
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow!(
                                "deleting message {id}: {}",
                                aws_sdk_sqs::error::DisplayErrorContext(e)
                            )
                        })?;
                    report.messages_deleted += 1;
                } else {
                    kept.push(handle);
                    report.messages_kept += 1;
                }
            }
        }
        // What is kept is visible again at once, for the next redrive.
        for handle in kept {
            let _ = sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
        }
        Ok(())
    }

    async fn s3(&self, url: &str, report: &mut RedriveReport) -> Result<()> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| anyhow!("--s3 takes s3://BUCKET/PREFIX, not {url}"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let s3 = reconcile::s3_client(&self.app.sdk);
        let mut token: Option<String> = None;
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "listing {url}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                })?;
            for object in out.contents.unwrap_or_default() {
                let Some(key) = object.key else { continue };
                let body = s3
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "reading s3://{bucket}/{key}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(e)
                        )
                    })?
                    .body
                    .collect()
                    .await
                    .with_context(|| format!("reading s3://{bucket}/{key}"))?
                    .into_bytes();
                let text = String::from_utf8_lossy(&body);
                self.input(&format!("s3://{bucket}/{key}"), &text, report)
                    .await?;
            }
            match out.next_continuation_token {
                Some(t) if out.is_truncated == Some(true) => token = Some(t),
                _ => break,
            }
        }
        Ok(())
    }
}

/// Runs a redrive (see the module docs).
pub async fn run(app: &App, args: &RedriveArgs) -> Result<RedriveReport> {
    if args.queue.is_none() && args.s3.is_none() && args.files.is_empty() {
        bail!("give --queue URL, --s3 s3://BUCKET/PREFIX or on-failure record files");
    }
    app.require_table().await?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} redrive: {pos} records fetched ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    };
    let redriver = Redriver { app, args, bar };
    let mut report = RedriveReport {
        dry_run: args.dry_run,
        ..RedriveReport::default()
    };
    for file in &args.files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        redriver
            .input(&file.display().to_string(), &text, &mut report)
            .await?;
    }
    if let Some(url) = &args.queue {
        redriver.queue(url, &mut report).await?;
    }
    if let Some(url) = &args.s3 {
        redriver.s3(url, &mut report).await?;
    }
    redriver.bar.finish_and_clear();
    Ok(report)
}

pub async fn run_cli(app: &App, args: RedriveArgs) -> Result<ExitCode> {
    let report = run(app, &args).await?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        report.render()
    };
    // A dry run's stdout holds only its writes.
    if args.dry_run {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Value {
        let path = streamfold_shared::testing::fixtures_dir().join("lambda-stream-onfailure.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn both_on_failure_shapes_are_read_wherever_they_sit() {
        let infos = batch_infos(&fixture());
        assert_eq!(infos.len(), 2);
        let d = &infos[0];
        assert_eq!(d.kind, StreamKind::DynamoDb);
        assert_eq!(d.shard_id, "shardId-00000001763640000000-a1b2c3d4");
        assert_eq!(d.start_sequence_number, "4100000000012345678901");
        assert_eq!(d.end_sequence_number, "4100000000012345678999");
        assert_eq!(d.batch_size, 7);
        assert_eq!(d.condition.as_deref(), Some("RetryAttemptsExhausted"));
        assert_eq!(d.processors(&[]), [ProcessorKind::MessageGroups]);
        let k = &infos[1];
        assert_eq!(k.kind, StreamKind::Kinesis);
        assert_eq!(k.batch_size, 100);
        assert_eq!(k.processors(&[]), [ProcessorKind::AgentActivity]);
        // An SQS body is the record as a string; JSON Lines of records.
        let record = fixture()["dynamodb"].clone();
        let body = Value::String(record.to_string());
        assert_eq!(batch_infos(&body), vec![d.clone()]);
        let lines = format!("{}\n{}\n", record, fixture()["kinesis"]);
        assert_eq!(parse_text(&lines).len(), 2);
        assert!(parse_text("{\"eventID\": \"1\"}").is_empty());
    }

    #[test]
    fn a_function_name_that_names_no_processor_runs_every_one_of_the_stream() {
        let mut v = fixture()["dynamodb"].clone();
        v["requestContext"]["functionArn"] =
            "arn:aws:lambda:us-east-1:1:function:stack-ExtensionsFunction-AB12".into();
        let info = parse_text(&v.to_string()).remove(0);
        assert_eq!(info.processors(&[]), [ProcessorKind::Extensions]);
        v["requestContext"]["functionArn"] = "arn:aws:lambda:us-east-1:1:function:other".into();
        let info = parse_text(&v.to_string()).remove(0);
        let table_stream: Vec<ProcessorKind> = ProcessorKind::ALL
            .iter()
            .copied()
            .filter(|k| k.reads_table_stream())
            .collect();
        assert_eq!(info.processors(&[]), table_stream);
        assert_eq!(
            info.processors(&[ProcessorKind::AgentActivity, ProcessorKind::Extensions]),
            [ProcessorKind::Extensions]
        );
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(cmp_seq("999", "1000"), Ordering::Less);
        assert_eq!(cmp_seq("1000", "1000"), Ordering::Equal);
        assert_eq!(
            cmp_seq("41000000000123", "4100000000012"),
            Ordering::Greater
        );
        assert_eq!(cmp_seq("00100", "100"), Ordering::Equal);
    }
}
