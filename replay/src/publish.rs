//! `streamfold publish`: puts Connect agent events into a Kinesis stream, as
//! Connect's agent event streaming does (partition key = AgentARN). It is the
//! local stand-in for a Connect instance: the demo and manual tests feed the
//! agent event stream that `tail` (or the deployed agent-activity function)
//! reads.
//!
//! The events come from files (every Kinesis format `replay` reads: JSON
//! Lines of raw Connect agent events, Lambda Kinesis event files, JSON Lines
//! of Lambda Kinesis records) and/or are generated: `--synth-agents N` adds a
//! synthetic working day of N agents (`agent_activity::synth`).
//!
//! Publishing the same events twice puts them twice on the stream; the
//! processors key everything by the event id, so the table ends the same.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use chrono::NaiveDate;
use clap::Args;
use streamfold_shared::kinesis::KinesisRecord;

use crate::app::App;
use crate::input::{Format, KinesisReader, detect_format};
use crate::tail::AGENT_STREAM_ENV;

/// Kinesis limits of one PutRecords call.
const MAX_RECORDS: usize = 500;
const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Kinesis' longest partition key.
const MAX_KEY_CHARS: usize = 256;
/// Attempts at records Kinesis did not take (throttled) before giving up.
const ATTEMPTS: u32 = 6;

/// `streamfold publish [FILE...] --stream NAME [--synth-agents N]`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Files of agent events, in order (JSON Lines of raw Connect agent
    /// events, Lambda Kinesis event files, JSON Lines of Lambda Kinesis
    /// records).
    pub files: Vec<PathBuf>,
    /// The Kinesis stream, by name or ARN. A stream named here that does not
    /// exist is created (--shards).
    #[arg(long, env = AGENT_STREAM_ENV)]
    pub stream: String,
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Also publish a synthetic working day of this many agents (logins,
    /// status changes, contacts, lunch, logout, heartbeats).
    #[arg(long, default_value_t = 0)]
    pub synth_agents: usize,
    /// The UTC day (yyyy-mm-dd) of the synthetic events; default yesterday.
    #[arg(long)]
    pub date: Option<String>,
    /// Seed of the synthetic events (the same seed gives the same agents
    /// and events; agent ids carry it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Shards of a stream this command creates.
    #[arg(long, default_value_t = 1)]
    pub shards: i32,
}

/// Where records go: a stream by name or by ARN.
#[derive(Debug, Clone)]
enum Target {
    Name(String),
    Arn(String),
}

impl Target {
    fn parse(stream: &str) -> Result<Self> {
        let stream = stream.trim();
        if stream.is_empty() {
            bail!("give the Kinesis stream: --stream NAME|ARN (or {AGENT_STREAM_ENV})");
        }
        Ok(if stream.starts_with("arn:") {
            Target::Arn(stream.to_owned())
        } else {
            Target::Name(stream.to_owned())
        })
    }

    fn shown(&self) -> &str {
        match self {
            Target::Name(s) | Target::Arn(s) => s,
        }
    }
}

fn kinesis_error<E, R>(e: aws_sdk_kinesis::error::SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    anyhow!("{}", aws_sdk_kinesis::error::DisplayErrorContext(e))
}

/// Makes sure the stream exists and is active: a named stream that does not
/// exist is created with `shards` shards.
async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    target: &Target,
    shards: i32,
) -> Result<()> {
    let describe = || {
        let req = client.describe_stream_summary();
        match target {
            Target::Name(n) => req.stream_name(n),
            Target::Arn(a) => req.stream_arn(a),
        }
    };
    match describe().send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            let Target::Name(name) = target else {
                bail!("Kinesis stream {} does not exist", target.shown());
            };
            if shards < 1 {
                bail!("--shards must be at least 1");
            }
            match client
                .create_stream()
                .stream_name(name)
                .shard_count(shards)
                .send()
                .await
            {
                Ok(_) => println!("created Kinesis stream {name} ({shards} shards)"),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_in_use_exception()) => {}
                Err(e) => {
                    return Err(kinesis_error(e).context(format!("creating Kinesis stream {name}")));
                }
            }
        }
        Err(e) => {
            return Err(
                kinesis_error(e).context(format!("describing Kinesis stream {}", target.shown()))
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = describe()
            .send()
            .await
            .map_err(kinesis_error)
            .with_context(|| format!("describing Kinesis stream {}", target.shown()))?;
        let status = out
            .stream_description_summary
            .map(|d| d.stream_status)
            .ok_or_else(|| anyhow!("Kinesis stream {}: no description", target.shown()))?;
        match status {
            StreamStatus::Active | StreamStatus::Updating => return Ok(()),
            other if Instant::now() > deadline => {
                bail!(
                    "Kinesis stream {} is still {} after 60 s",
                    target.shown(),
                    other.as_str()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// One record to put: partition key and payload.
struct Entry {
    key: String,
    data: Vec<u8>,
}

impl Entry {
    fn from_record(r: KinesisRecord) -> Self {
        Self::new(r.partition_key, r.data, &r.event_id)
    }

    /// A payload with its partition key (the AgentARN); a record without one
    /// (not an agent event: agent-activity dead-letters it) is keyed by its
    /// record id so that it still goes somewhere.
    fn new(key: String, data: Vec<u8>, fallback: &str) -> Self {
        let key = if key.is_empty() {
            fallback.to_owned()
        } else {
            key
        };
        let mut key: String = key.chars().take(MAX_KEY_CHARS).collect();
        if key.is_empty() {
            key.push('-');
        }
        Self { key, data }
    }
}

/// Puts records with PutRecords in calls of at most 500 records / 4 MiB;
/// records Kinesis did not take are put again with backoff.
struct Publisher<'a> {
    client: &'a aws_sdk_kinesis::Client,
    target: &'a Target,
    pending: Vec<Entry>,
    pending_bytes: usize,
    published: u64,
    keys: std::collections::BTreeSet<String>,
}

impl Publisher<'_> {
    async fn push(&mut self, entry: Entry) -> Result<()> {
        let size = entry.data.len() + entry.key.len();
        if !self.pending.is_empty()
            && (self.pending.len() >= MAX_RECORDS || self.pending_bytes + size > MAX_BYTES)
        {
            self.flush().await?;
        }
        self.pending_bytes += size;
        self.keys.insert(entry.key.clone());
        self.pending.push(entry);
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let mut todo = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut attempt = 0u32;
        while !todo.is_empty() {
            attempt += 1;
            let entries = todo
                .iter()
                .map(|e| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(e.key.as_str())
                        .data(Blob::new(e.data.clone()))
                        .build()
                        .map_err(|err| anyhow!("a Kinesis record: {err}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let req = self.client.put_records().set_records(Some(entries));
            let req = match self.target {
                Target::Name(n) => req.stream_name(n),
                Target::Arn(a) => req.stream_arn(a),
            };
            let out = req
                .send()
                .await
                .map_err(kinesis_error)
                .with_context(|| format!("putting records into {}", self.target.shown()))?;
            let results = out.records;
            if results.len() != todo.len() {
                bail!(
                    "Kinesis answered {} results for {} records",
                    results.len(),
                    todo.len()
                );
            }
            let before = todo.len();
            let mut failed = Vec::new();
            let mut last_error = String::new();
            for (entry, result) in todo.into_iter().zip(results) {
                if let Some(code) = result.error_code {
                    last_error = format!("{code}: {}", result.error_message.unwrap_or_default());
                    failed.push(entry);
                }
            }
            self.published += (before - failed.len()) as u64;
            todo = failed;
            if !todo.is_empty() {
                if attempt >= ATTEMPTS {
                    bail!(
                        "{} records were not taken by {} after {attempt} attempts ({last_error})",
                        todo.len(),
                        self.target.shown()
                    );
                }
                let cap = 100u64.saturating_mul(1 << attempt.min(6));
                tokio::time::sleep(Duration::from_millis(fastrand::u64(cap / 2..=cap))).await;
            }
        }
        Ok(())
    }
}

/// UTC midnight of `date` (yyyy-mm-dd), default yesterday, in epoch ms.
fn day_start_ms(date: Option<&str>) -> Result<(NaiveDate, i64)> {
    let day = match date {
        Some(d) => NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
            .with_context(|| format!("--date {d:?} is not yyyy-mm-dd"))?,
        None => chrono::Utc::now()
            .date_naive()
            .pred_opt()
            .ok_or_else(|| anyhow!("no day before today"))?,
    };
    let ms = day
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| anyhow!("no midnight on {day}"))?
        .and_utc()
        .timestamp_millis();
    Ok((day, ms))
}

/// Runs `streamfold publish`.
pub async fn run_cli(app: &App, args: PublishArgs) -> Result<ExitCode> {
    if args.files.is_empty() && args.synth_agents == 0 {
        bail!("nothing to publish: give FILE... and/or --synth-agents N");
    }
    let target = Target::parse(&args.stream)?;
    // Check every file before anything is put.
    for path in &args.files {
        let format = detect_format(path, args.format)?;
        if !format.is_kinesis() {
            bail!(
                "{}: {format:?} files hold DynamoDB stream records, not agent events",
                path.display()
            );
        }
    }
    let client = aws_sdk_kinesis::Client::new(&app.sdk);
    ensure_stream(&client, &target, args.shards).await?;
    let started = Instant::now();
    let mut publisher = Publisher {
        client: &client,
        target: &target,
        pending: Vec::new(),
        pending_bytes: 0,
        published: 0,
        keys: Default::default(),
    };
    let mut undecodable = 0usize;
    for path in &args.files {
        let mut reader = KinesisReader::open(path, args.format)?;
        loop {
            let batch = reader.next_batch(MAX_RECORDS)?;
            for bad in reader.take_undecodable() {
                undecodable += 1;
                eprintln!("skipped {}: {}", bad.place, bad.error);
            }
            if batch.is_empty() {
                break;
            }
            for record in batch {
                publisher.push(Entry::from_record(record)).await?;
            }
        }
    }
    if args.synth_agents > 0 {
        let (day, start) = day_start_ms(args.date.as_deref())?;
        let events = agent_activity::synth::day(args.synth_agents, args.seed, start);
        println!(
            "generated {} events of {} synthetic agents on {day} (seed {})",
            events.len(),
            args.synth_agents,
            args.seed
        );
        for (i, event) in events.into_iter().enumerate() {
            let key = event
                .get("AgentARN")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let fallback = format!("synth:{}", i + 1);
            publisher
                .push(Entry::new(key, event.to_string().into_bytes(), &fallback))
                .await?;
        }
    }
    publisher.flush().await?;
    println!(
        "published {} agent events ({} agents) to Kinesis stream {} in {:.1} s",
        publisher.published,
        publisher.keys.len(),
        target.shown(),
        started.elapsed().as_secs_f64()
    );
    if undecodable > 0 {
        eprintln!(
            "{undecodable} records could not be decoded and were not published (listed above)"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
