//! `streamfold tail`: its arguments, the pipeline sink over the live
//! streams, and the summary.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use streamfold_shared::engine::Counts;
use tracing::warn;

use super::metrics::Figures;
use super::{AGENT_STREAM_ENV, PipelineSink, ReadOptions, RunStats, Source, run_readers};
use crate::app::App;
use crate::pipeline::{Pipeline, ProcessorKind};
use crate::shutdown::Shutdown;

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

/// Runs the pipeline over the live streams until stopped (`shutdown`), idle
/// (`until_idle`) or every shard ended.
pub async fn run_tail(
    app: &App,
    pipeline: &Pipeline,
    opts: &TailOptions,
    shutdown: &Shutdown,
) -> Result<TailSummary> {
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
    let run = run_readers(app, sources, sink.clone(), &read, shutdown).await?;
    Ok(TailSummary {
        run,
        processors: sink.counts(),
        unsettled: sink.unsettled(),
        metrics: sink.metrics.figures(),
    })
}

/// Runs the pipeline over the table stream (and the Kinesis stream when
/// `opts` names one) until idle or every shard ended; returns the totals.
pub async fn tail(app: &App, pipeline: &Pipeline, opts: &TailOptions) -> Result<Counts> {
    Ok(run_tail(app, pipeline, opts, &Shutdown::new())
        .await?
        .totals())
}

/// `streamfold tail`: stops on Ctrl-C or SIGTERM after the batches in
/// flight settled, with its summary.
pub async fn run_cli(app: &App, args: TailArgs, shutdown: &Shutdown) -> Result<ExitCode> {
    shutdown.listen()?;
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
    let summary = run_tail(app, &pipeline, &opts, shutdown).await?;
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
