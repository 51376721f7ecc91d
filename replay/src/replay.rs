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
//! Ctrl-C stops after the batch in flight: its records settle (applied,
//! retried, dead-lettered), the summary is printed with `interrupted`, and
//! the command exits with [`EXIT_INTERRUPTED`]. A second Ctrl-C leaves at
//! once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use streamfold_shared::engine::Counts;
use streamfold_shared::executor::DryRunStats;
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;
use tokio::sync::{mpsc, watch};

use crate::app::App;
use crate::input::{Format, KinesisReader, RecordReader, Undecodable, detect_format};
use crate::pipeline::{Pipeline, batch_backoff, restore_sources};

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

/// What a replay came to.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// `records` = records read from the files; `ignored` = records no
    /// selected processor owns; the other columns add up the processors'
    /// outcomes.
    pub counts: Counts,
    /// Files read (to their end, or to the stop).
    pub files: usize,
    /// Records of the files that could not be decoded (dead-lettered with
    /// their file and line; counted in `records` too). The run exits 1.
    pub undecodable: u64,
    /// Stopped by Ctrl-C after the batch in flight.
    pub interrupted: bool,
    pub seconds: f64,
    /// What a dry run recorded (`None` for a real run).
    pub dry_run: Option<DryRunStats>,
}

impl ReplaySummary {
    pub fn records_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.counts.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The summary as one JSON object: the counts' fields, plus
    /// `interrupted`, `files`, `seconds`, `records_per_second` and, for a
    /// dry run, `dry_run`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.counts).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("interrupted".to_owned(), self.interrupted.into());
            obj.insert("files".to_owned(), self.files.into());
            obj.insert("undecodable".to_owned(), self.undecodable.into());
            obj.insert("seconds".to_owned(), self.seconds.into());
            obj.insert(
                "records_per_second".to_owned(),
                self.records_per_second().round().into(),
            );
            if let Some(d) = &self.dry_run {
                obj.insert(
                    "dry_run".to_owned(),
                    serde_json::to_value(d).unwrap_or_default(),
                );
            }
        }
        v
    }

    /// The summary as text.
    pub fn render(&self) -> String {
        let c = &self.counts;
        let mut out = format!(
            "records {}  applied {}  no-op {}  ignored {}  dead-lettered {}  failed {}\n",
            c.records, c.applied, c.no_op, c.ignored, c.dead_lettered, c.failed
        );
        out.push_str(&format!(
            "{} files in {:.2} s ({:.0} records/s){}\n",
            self.files,
            self.seconds,
            self.records_per_second(),
            if self.interrupted {
                "; interrupted by Ctrl-C after the batch in flight"
            } else {
                ""
            }
        ));
        if self.undecodable > 0 {
            out.push_str(&format!(
                "{} records could not be decoded: dead-lettered with their file and line (streamfold deadletters list)\n",
                self.undecodable
            ));
        }
        if let Some(d) = &self.dry_run {
            let requests: Vec<String> = d
                .requests
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect();
            out.push_str(&format!(
                "dry run, nothing written: would send {} ({} puts, {} updates, {} deletes, {} condition checks); {} keys read, {} reads from the cache\n",
                if requests.is_empty() {
                    "no write".to_owned()
                } else {
                    requests.join(", ")
                },
                d.puts,
                d.updates,
                d.deletes,
                d.condition_checks,
                d.keys_read,
                d.cache_hits
            ));
        }
        out
    }
}

/// A batch of one file's records.
enum Batch {
    Table(Vec<StreamRecord>),
    Kinesis(Vec<KinesisRecord>),
}

/// What the reader thread sends.
enum Read {
    /// The next file starts.
    File(String),
    Batch(Batch),
    /// Records of the file that could not be decoded (`kinesis`: of a
    /// Kinesis file), to be dead-lettered.
    Undecodable {
        records: Vec<Undecodable>,
        kinesis: bool,
    },
}

/// The concrete format a file is read in: `--format`, else detected; a file
/// that only looks like JSON Lines of stream records (detection's fallback)
/// is read as agent events when only Kinesis processors were asked for.
pub fn file_format(path: &Path, format: Format, pipeline: &Pipeline) -> Result<Format> {
    let detected = detect_format(path, format)?;
    let table = pipeline.kinds.iter().any(|k| k.reads_table_stream());
    let kinesis = pipeline.kinds.iter().any(|k| k.reads_kinesis());
    Ok(
        if format == Format::Auto && detected == Format::DynamodbJsonl && kinesis && !table {
            Format::AgentEventsJsonl
        } else {
            detected
        },
    )
}

/// Reads every file in order into `tx`, batch by batch; stops quietly when
/// the receiver is gone (a stop). Batches the pipeline is done with come
/// back on `done` and are dropped here: freeing memory in the thread that
/// allocated it is cheaper (and off the pipeline's thread).
fn read_files(
    files: Vec<(PathBuf, Format)>,
    batch_size: usize,
    tx: mpsc::Sender<Result<Read>>,
    done: std::sync::mpsc::Receiver<Batch>,
) {
    let send = |msg: Result<Read>| {
        while let Ok(batch) = done.try_recv() {
            drop(batch);
        }
        tx.blocking_send(msg).is_ok()
    };
    for (path, format) in files {
        if !send(Ok(Read::File(path.display().to_string()))) {
            return;
        }
        let kinesis = format.is_kinesis();
        let whole = if kinesis {
            KinesisReader::open(&path, format).and_then(|mut reader| {
                pump(
                    |n| {
                        let batch = reader.next_batch(n)?;
                        Ok((batch, reader.take_undecodable()))
                    },
                    Batch::Kinesis,
                    kinesis,
                    batch_size,
                    &send,
                )
            })
        } else {
            RecordReader::open(&path, format).and_then(|mut reader| {
                pump(
                    |n| {
                        let batch = reader.next_batch(n)?;
                        Ok((batch, reader.take_undecodable()))
                    },
                    Batch::Table,
                    kinesis,
                    batch_size,
                    &send,
                )
            })
        };
        match whole {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                send(Err(e));
                return;
            }
        }
    }
}

/// Sends one file's batches, and the records it could not decode, until it
/// ends (`Ok(true)`) or the receiver is gone (`Ok(false)`); a read error is
/// returned for the caller to send.
fn pump<T>(
    mut next_batch: impl FnMut(usize) -> Result<(Vec<T>, Vec<Undecodable>)>,
    wrap: impl Fn(Vec<T>) -> Batch,
    kinesis: bool,
    batch_size: usize,
    send: &impl Fn(Result<Read>) -> bool,
) -> Result<bool> {
    loop {
        let (batch, records) = next_batch(batch_size)?;
        if !records.is_empty() && !send(Ok(Read::Undecodable { records, kinesis })) {
            return Ok(false);
        }
        if batch.is_empty() {
            return Ok(true);
        }
        if !send(Ok(Read::Batch(wrap(batch)))) {
            return Ok(false);
        }
    }
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

/// A stop request: set by the first Ctrl-C.
pub type Stop = watch::Receiver<bool>;

/// Installs the Ctrl-C handling of `replay`: the first one asks to stop
/// after the batch in flight, a second one exits at once with
/// [`EXIT_INTERRUPTED`]. The handler is registered before this returns.
pub fn ctrl_c_stop() -> Result<Stop> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            if sigint.recv().await.is_none() {
                return;
            }
            let _ = tx.send(true);
            eprintln!("stopping after the batch in flight (Ctrl-C again to leave at once)");
            if sigint.recv().await.is_some() {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        let _ = tx.send(true);
        eprintln!("stopping after the batch in flight (Ctrl-C again to leave at once)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    Ok(rx)
}

/// Completes once a stop is asked for (never if the sender is gone
/// without asking).
async fn stopped(stop: &mut Stop) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A stop that never comes.
pub fn no_stop() -> Stop {
    let (tx, rx) = watch::channel(false);
    // Keep the sender alive so `changed()` waits forever.
    std::mem::forget(tx);
    rx
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
    mut stop: Stop,
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
        if *stop.borrow() {
            summary.interrupted = true;
            break;
        }
        let next = tokio::select! {
            biased;
            () = stopped(&mut stop) => {
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

/// Replays every file, in order; returns the counts (no Ctrl-C handling).
pub async fn replay(_app: &App, pipeline: &Pipeline, opts: &ReplayOptions) -> Result<Counts> {
    Ok(run(pipeline, opts, no_stop()).await?.counts)
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
