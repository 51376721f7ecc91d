//! `streamfold capture --out FILE`: a live stream written to JSON Lines that
//! `streamfold replay` reads back (format detection included).
//!
//! - The table's stream becomes one DynamoDB Streams record per line: the
//!   [`StreamRecord`](streamfold_shared::record::StreamRecord) JSON form,
//!   which is the Streams API shape (`replay --format dynamodb-jsonl`).
//! - A Kinesis stream (`--kinesis-stream`) becomes one Lambda Kinesis record
//!   per line (`{"eventID", "kinesis": {"partitionKey", "sequenceNumber",
//!   "data" (base64), …}}`), the [`KinesisRecord`] JSON form
//!   (`replay --format agent-events-jsonl`).
//!
//! Capture reads every shard from its trim horizon, parents before children
//! (the same readers as `tail`, see [`crate::tail`]), and keeps no
//! checkpoints: each run captures everything the stream still holds.
//! Checkpoint items of `tail` are bookkeeping and are not captured. Lines
//! of one shard keep their order; the file is flushed after every batch, so
//! a stopped capture leaves whole lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;
use streamfold_shared::kinesis::KinesisRecord;

use crate::app::App;
use crate::shutdown::Shutdown;
use crate::tail::{Batch, ReadOptions, RunStats, Sink, SinkError, Source};

/// `streamfold capture` arguments.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// The JSON Lines file to write (replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Capture this Kinesis stream (name or ARN) instead of the table's
    /// stream.
    #[arg(long)]
    pub kinesis_stream: Option<String>,
    /// Stop once every shard is caught up and no record has arrived for
    /// --idle-ms.
    #[arg(long)]
    pub until_idle: bool,
    #[arg(long, default_value_t = 2000)]
    pub idle_ms: u64,
    /// Records per GetRecords call.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: i32,
    /// Pause between GetRecords calls of a caught-up shard.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Print the summary as JSON (and no progress).
    #[arg(long)]
    pub json: bool,
}

/// Writes batches to a JSON Lines file.
#[derive(Debug)]
pub struct FileSink {
    out: Mutex<BufWriter<File>>,
    written: AtomicU64,
}

impl FileSink {
    /// Creates (or truncates) the file.
    pub fn create(path: &std::path::Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            out: Mutex::new(BufWriter::with_capacity(1 << 16, file)),
            written: AtomicU64::new(0),
        })
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn write_all<T: Serialize>(&self, records: &[T]) -> Result<()> {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| anyhow!("the capture file's writer was poisoned"))?;
        out.write_all(text.as_bytes())?;
        out.flush()?;
        self.written
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl Sink for FileSink {
    async fn handle(&self, _stream: &str, _shard: &str, batch: &Batch) -> Result<(), SinkError> {
        let written = match batch {
            Batch::Table(r) => self.write_all(r),
            Batch::Kinesis(r) => self.write_all::<KinesisRecord>(r),
        };
        written.map_err(|e| SinkError::Fatal(e.context("writing the capture file")))
    }
}

/// What a capture did.
#[derive(Debug)]
pub struct CaptureSummary {
    pub out: PathBuf,
    pub written: u64,
    pub run: RunStats,
}

impl CaptureSummary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "out": self.out.display().to_string(),
            "records": self.written,
            "streams": self.run.streams.iter().map(|s| s.to_json()).collect::<Vec<_>>(),
            "interrupted": self.run.interrupted,
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.run.streams {
            let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
            out.push_str(&format!(
                "{} stream {}: {} records from {} shards ({} read to their end), {} checkpoint records skipped\n",
                s.kind,
                s.arn,
                n(&s.records),
                n(&s.shards_read),
                n(&s.shards_ended),
                n(&s.checkpoint_records),
            ));
        }
        out.push_str(&format!(
            "captured {} records into {}\n",
            self.written,
            self.out.display()
        ));
        out
    }
}

/// Captures one stream into `out` until stopped, idle, or every shard ended.
pub async fn capture(
    app: &App,
    source: Source,
    out: PathBuf,
    opts: &ReadOptions,
    shutdown: &Shutdown,
) -> Result<CaptureSummary> {
    let sink = std::sync::Arc::new(FileSink::create(&out)?);
    let opts = ReadOptions {
        checkpoints: false,
        ..opts.clone()
    };
    let run = crate::tail::run_readers(app, vec![source], sink.clone(), &opts, shutdown).await?;
    Ok(CaptureSummary {
        out,
        written: sink.written(),
        run,
    })
}

/// `streamfold capture`: stops on Ctrl-C or SIGTERM after the batch in
/// flight was written.
pub async fn run_cli(app: &App, args: CaptureArgs, shutdown: &Shutdown) -> Result<ExitCode> {
    shutdown.listen()?;
    let source = match args
        .kinesis_stream
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        Some(stream) => Source::kinesis(app, stream).await?,
        None => Source::table(app).await?,
    };
    let opts = ReadOptions {
        until_idle: args.until_idle,
        idle: Duration::from_millis(args.idle_ms),
        poll: Duration::from_millis(args.poll_ms),
        batch_size: args.batch_size,
        refresh: Duration::from_secs(10),
        checkpoints: false,
        progress: !args.json,
    };
    let summary = capture(app, source, args.out, &opts, shutdown).await?;
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.render());
    }
    Ok(ExitCode::SUCCESS)
}
