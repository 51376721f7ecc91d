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

mod fetch;
mod inputs;
mod onfailure;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use streamfold_shared::engine::Counts;
use streamfold_shared::executor::DryRun;

use crate::app::App;
use crate::pipeline::{Pipeline, ProcessorKind, batch_backoff};
use crate::tail::Batch;
/// Sequence numbers compare as numbers: the readers' comparison.
pub use crate::tail::cmp_seq;
use fetch::{Fetched, fetch};
pub use onfailure::{BatchInfo, StreamKind, batch_infos, parse_text};
pub use report::{BatchResult, RedriveReport};

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
        let fetched = fetch(self.app, info, &self.bar).await?;
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
            Fetched::Records { batch, unreadable } => {
                result.fetched = batch.len() as u64 + unreadable;
                result.unreadable = unreadable;
                match &batch {
                    Batch::Table(records) => {
                        for chunk in records.chunks(size) {
                            result.counts.add(
                                pipeline
                                    .run_table_batch_retrying(chunk, self.args.max_retries, backoff)
                                    .await,
                            );
                        }
                    }
                    Batch::Kinesis(records) => {
                        for chunk in records.chunks(size) {
                            result.counts.add(
                                pipeline
                                    .run_kinesis_batch_retrying(
                                        chunk,
                                        self.args.max_retries,
                                        backoff,
                                    )
                                    .await,
                            );
                        }
                    }
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
