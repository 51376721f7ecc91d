//! `streamfold replay FILE...`: captured records through the processors, in
//! batches, with a progress bar and one summary.
//!
//! Files may be of different kinds in one run: each is detected (or named
//! with `--format`) and its records go to the processors that own them:
//! DynamoDB stream records to the table-stream processors, Kinesis records
//! (Connect agent events) to the Kinesis ones. Files are read in order, as
//! a stream, by a reader thread that parses the next batches while the
//! current one is applied (a few batches ahead at most, so memory stays flat
//! whatever the file size). Per-key order holds: a file's records are
//! applied batch after batch, in file order.
//!
//! Ctrl-C (or SIGTERM, see [`crate::shutdown`]) stops after the batch in
//! flight: its records settle (applied, retried, dead-lettered), the summary
//! is printed with `interrupted`, and the command exits with
//! [`EXIT_INTERRUPTED`]. A second one leaves at once, with the same code.

mod command;
mod files;
pub mod kinesis;
mod summary;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use streamfold_shared::engine::Counts;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::input::{Format, Undecodable};
use crate::pipeline::{Pipeline, batch_backoff, restore_sources};
use files::{Batch, Read, read_files};

pub use command::{ReplayArgs, run_cli};
pub use files::file_format;
pub use summary::ReplaySummary;

/// The exit code of a replay stopped by Ctrl-C (128 + SIGINT, as shells
/// report a command killed by it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// How many parsed batches the reader thread may hold ahead of the one
/// being applied.
const READ_AHEAD: usize = 4;

/// How `replay` runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub batch_size: usize,
    pub max_retries: u32,
    pub restore_sources: bool,
    pub progress: bool,
}

/// Dead-letters records of a file that could not be decoded, as the Lambda
/// adapter does: under each selected processor that reads their stream.
/// Their counts: `records` and `dead_lettered` (or `failed` when no dead
/// letter could be written, or no selected processor reads them:
/// `ignored`).
async fn dead_letter_undecodable(
    pipeline: &Pipeline,
    records: &[Undecodable],
    kinesis: bool,
) -> Counts {
    let ctx = &pipeline.ctx;
    let owners: Vec<&str> = pipeline
        .kinds
        .iter()
        .filter(|k| {
            if kinesis {
                k.reads_kinesis()
            } else {
                k.reads_table_stream()
            }
        })
        .map(|k| k.name())
        .collect();
    let n = records.len() as u64;
    let mut counts = Counts {
        records: n,
        ..Counts::default()
    };
    if owners.is_empty() {
        counts.ignored = n;
        return counts;
    }
    let mut kept = vec![true; records.len()];
    for owner in &owners {
        let letters = records
            .iter()
            .map(|r| r.dead_letter(owner, ctx.deadletter_retention_days));
        let results =
            streamfold_shared::deadletter::write_all(&ctx.exec, letters, ctx.concurrency).await;
        for ((record, result), ok) in records.iter().zip(results).zip(kept.iter_mut()) {
            match result {
                Ok(()) => {
                    tracing::warn!(processor = owner, place = %record.place, "undecodable record dead-lettered")
                }
                Err(e) => {
                    *ok = false;
                    tracing::warn!(processor = owner, place = %record.place, error = %e, "undecodable record could not be dead-lettered");
                }
            }
        }
    }
    counts.dead_lettered = kept.iter().filter(|k| **k).count() as u64;
    counts.failed = n - counts.dead_lettered;
    counts
}

/// The outcome counts of one batch of `n` records through the `p`
/// processors that read its kind, from the sum of their counts: `records`
/// is `n`, and a record is ignored when every one of them ignored it.
fn merged(sum: Counts, n: usize, p: usize) -> Counts {
    let n = n as u64;
    let mut c = sum;
    c.records = n;
    c.ignored = match p {
        0 => n,
        p => sum.ignored.saturating_sub((p as u64 - 1) * n),
    };
    c
}

/// Replays every file, in order, through the pipeline's processors, until
/// the end or a stop; the summary.
pub async fn run(
    pipeline: &Pipeline,
    opts: &ReplayOptions,
    stop: &CancellationToken,
) -> Result<ReplaySummary> {
    let exec = &pipeline.ctx.exec;
    if opts.restore_sources && exec.is_dry_run() {
        bail!(
            "--dry-run does not model --restore-sources: the processors would read back \
             sources the dry run never wrote; replay without --restore-sources, or into a \
             scratch table"
        );
    }
    let mut files = Vec::with_capacity(opts.files.len());
    for f in &opts.files {
        files.push((f.clone(), file_format(f, opts.format, pipeline)?));
    }
    let table_procs = pipeline
        .kinds
        .iter()
        .filter(|k| k.reads_table_stream())
        .count();
    let kinesis_procs = pipeline.kinds.iter().filter(|k| k.reads_kinesis()).count();
    for (f, format) in &files {
        let readers = if format.is_kinesis() {
            kinesis_procs
        } else {
            table_procs
        };
        if readers == 0 {
            tracing::warn!(file = %f.display(), ?format, "no selected processor reads these records; they are counted as ignored");
        }
    }

    let bar = if opts.progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {pos} records ({per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let (tx, mut rx) = mpsc::channel::<Result<Read>>(READ_AHEAD);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Batch>();
    let batch_size = opts.batch_size.max(1);
    let reader = std::thread::Builder::new()
        .name("replay-reader".to_owned())
        .spawn(move || read_files(files, batch_size, tx, done_rx))?;

    let started = Instant::now();
    let mut summary = ReplaySummary::default();
    let mut failure: Option<anyhow::Error> = None;
    loop {
        if stop.is_cancelled() {
            summary.interrupted = true;
            break;
        }
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => {
                summary.interrupted = true;
                break;
            }
            next = rx.recv() => next,
        };
        let batch = match next {
            None => break,
            Some(Err(e)) => {
                failure = Some(e);
                break;
            }
            Some(Ok(Read::File(name))) => {
                summary.files += 1;
                bar.set_message(name);
                continue;
            }
            Some(Ok(Read::Undecodable { records, kinesis })) => {
                let c = dead_letter_undecodable(pipeline, &records, kinesis).await;
                summary.counts.add(c);
                summary.undecodable += records.len() as u64;
                bar.inc(records.len() as u64);
                continue;
            }
            Some(Ok(Read::Batch(b))) => b,
        };
        let n = match &batch {
            Batch::Table(records) => {
                if opts.restore_sources
                    && let Err(e) = restore_sources(exec, records).await
                {
                    failure = Some(e.into());
                    break;
                }
                let sum = pipeline
                    .run_table_batch_retrying(records, opts.max_retries, batch_backoff())
                    .await;
                summary.counts.add(merged(sum, records.len(), table_procs));
                records.len()
            }
            Batch::Kinesis(records) => {
                let sum = pipeline
                    .run_kinesis_batch_retrying(records, opts.max_retries, batch_backoff())
                    .await;
                summary
                    .counts
                    .add(merged(sum, records.len(), kinesis_procs));
                records.len()
            }
        };
        bar.inc(n as u64);
        // Back to the reader thread, which frees it.
        let _ = done_tx.send(batch);
    }
    // Let the reader see the channel closed and end.
    drop(rx);
    if summary.interrupted {
        // The reader may be blocked on a full channel: dropping the
        // receiver wakes it; it is not waited for beyond that.
        drop(reader);
    } else if reader.join().is_err() {
        failure.get_or_insert_with(|| anyhow::anyhow!("the file reader thread panicked"));
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    if let Some(dry) = exec.dry_run_recorder() {
        match dry.finish() {
            Ok(stats) => summary.dry_run = Some(stats),
            Err(e) => {
                failure.get_or_insert_with(|| anyhow::anyhow!(e));
            }
        }
    }
    tracing::info!(
        records = summary.counts.records,
        seconds = summary.seconds,
        interrupted = summary.interrupted,
        "replay finished"
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Replays every file, in order; returns the counts (no stop handling).
pub async fn replay(_app: &App, pipeline: &Pipeline, opts: &ReplayOptions) -> Result<Counts> {
    Ok(run(pipeline, opts, &CancellationToken::new()).await?.counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_counts_records_once() {
        // Two table processors, 10 records: 4 messages applied by one, the
        // 6 others ignored by both.
        let sum = Counts {
            records: 20,
            applied: 4,
            ignored: 16,
            ..Counts::default()
        };
        let c = merged(sum, 10, 2);
        assert_eq!((c.records, c.applied, c.ignored), (10, 4, 6));
        let none = merged(Counts::default(), 7, 0);
        assert_eq!((none.records, none.ignored), (7, 7));
    }
}
