//! The reader thread of `replay`: files in order, parsed into batches a
//! few ahead of the one being applied.

use std::path::{Path, PathBuf};

use anyhow::Result;
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;
use tokio::sync::mpsc;

use crate::input::{Format, KinesisReader, RecordReader, Undecodable, detect_format};
use crate::pipeline::Pipeline;

/// A batch of one file's records.
pub(super) enum Batch {
    Table(Vec<StreamRecord>),
    Kinesis(Vec<KinesisRecord>),
}

/// What the reader thread sends.
pub(super) enum Read {
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
pub(super) fn read_files(
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
