//! The record readers `replay` pulls batches from: Kinesis records and
//! DynamoDB stream records, from any of the formats of [`Format`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use streamfold_shared::ids::Timestamp;
use streamfold_shared::kinesis::{KinesisEventFile, KinesisRecord};
use streamfold_shared::record::{StreamEventFile, StreamRecord};

use super::documents::{Documents, event_file};
use super::{Format, Undecodable, detect_format, file_name, file_time};

/// cannot be read is set aside as [`Undecodable`].
/// Kinesis records from one file, in batches: a Lambda Kinesis event file,
/// or JSON Lines (or an array, or one document) where each record is a
/// Lambda Kinesis record (it has `kinesis`) or a raw Connect agent event,
/// for which a record is synthesised. A raw payload that is not JSON
/// becomes a record too (agent-activity dead-letters it, as the Lambda
/// function would): agent events are outside input. A Lambda record that
pub struct KinesisReader {
    inner: KinesisInner,
    source: String,
    line: usize,
    file_time: Option<Timestamp>,
    bad: Vec<Undecodable>,
}

enum KinesisInner {
    /// A Lambda Kinesis event file that read in one go.
    Whole(std::vec::IntoIter<KinesisRecord>),
    /// Raw lines: an agent event, or a Lambda record, per line.
    Lines(BufReader<File>),
    /// Documents read whole, record by record.
    Documents(Documents),
}

impl KinesisReader {
    pub fn open(path: &Path, format: Format) -> Result<Self> {
        let shown = path.display().to_string();
        let format = detect_format(path, format)?;
        let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
        let inner = match format {
            Format::LambdaKinesis => match event_file::<KinesisEventFile>(path)? {
                Ok(event) => KinesisInner::Whole(event.records.into_iter()),
                Err(docs) => KinesisInner::Documents(docs),
            },
            Format::AgentEventsJsonl => {
                let mut reader = BufReader::with_capacity(1 << 16, file);
                let head = reader
                    .fill_buf()
                    .with_context(|| format!("cannot read {shown}"))?;
                let head = String::from_utf8_lossy(head);
                let first = head.trim_start().lines().next().unwrap_or_default().trim();
                if first == "{" || first.starts_with('[') {
                    // Pretty-printed JSON (one event, several, or an array of
                    // them): the documents one by one.
                    KinesisInner::Documents(Documents::open(path)?)
                } else {
                    KinesisInner::Lines(reader)
                }
            }
            other => {
                bail!("{shown}: {other:?} files hold DynamoDB stream records, not Kinesis records")
            }
        };
        Ok(Self {
            inner,
            source: file_name(path),
            line: 0,
            file_time: file_time(path),
            bad: Vec::new(),
        })
    }

    /// Up to `n` records; an empty batch at the end. Records that could not
    /// be decoded on the way wait in [`Self::take_undecodable`].
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<KinesisRecord>> {
        let mut batch = Vec::with_capacity(n);
        match &mut self.inner {
            KinesisInner::Whole(it) => batch.extend(it.by_ref().take(n)),
            KinesisInner::Lines(reader) => {
                let mut buf = String::new();
                while batch.len() < n {
                    buf.clear();
                    if reader
                        .read_line(&mut buf)
                        .with_context(|| format!("cannot read {}", self.source))?
                        == 0
                    {
                        break;
                    }
                    self.line += 1;
                    let text = buf.trim();
                    if text.is_empty() {
                        continue;
                    }
                    if text.contains("\"kinesis\"") {
                        match serde_json::from_str::<Value>(text) {
                            Ok(value) if value.get("kinesis").is_some() => {
                                match KinesisRecord::from_json_value(&value) {
                                    Ok(r) => batch.push(r),
                                    Err(e) => self.bad.push(Undecodable::new(
                                        format!("{}:{}", self.source, self.line),
                                        text,
                                        e,
                                        self.file_time,
                                    )),
                                }
                                continue;
                            }
                            _ => {}
                        }
                    }
                    batch.push(KinesisRecord::from_payload_line(
                        &self.source,
                        self.line,
                        text,
                    ));
                }
            }
            KinesisInner::Documents(docs) => {
                while batch.len() < n {
                    let Some(entry) = docs.next_entry()? else {
                        break;
                    };
                    if entry.value.get("kinesis").is_some() {
                        match KinesisRecord::from_json_value(&entry.value) {
                            Ok(r) => batch.push(r),
                            Err(e) => {
                                let place = docs.place(entry.line, entry.index);
                                let raw = entry.value.to_string();
                                docs.bad
                                    .push(Undecodable::new(place, &raw, e, docs.file_time));
                            }
                        }
                    } else {
                        // A raw agent event: its record number in the file
                        // (line, else position) names it.
                        let at = entry.index.unwrap_or(entry.line);
                        batch.push(KinesisRecord::from_payload_line(
                            &docs.name,
                            at,
                            &entry.value.to_string(),
                        ));
                    }
                }
                self.bad.append(&mut docs.bad);
            }
        }
        Ok(batch)
    }

    /// The records set aside since the last call.
    pub fn take_undecodable(&mut self) -> Vec<Undecodable> {
        std::mem::take(&mut self.bad)
    }
}

/// DynamoDB stream records from one file, in batches.
pub struct RecordReader {
    inner: Inner,
    bad: Vec<Undecodable>,
}

enum Inner {
    /// An event file that read in one go.
    Whole(std::vec::IntoIter<StreamRecord>),
    /// JSON Lines or documents, record by record.
    Documents(Documents),
}

impl RecordReader {
    pub fn open(path: &Path, format: Format) -> Result<Self> {
        let shown = path.display().to_string();
        let format = detect_format(path, format)?;
        let inner = match format {
            Format::LambdaKinesis | Format::AgentEventsJsonl => {
                bail!("{shown}: {format:?} files hold Kinesis records, not DynamoDB stream records")
            }
            Format::LambdaDynamodb => match event_file::<StreamEventFile>(path)? {
                Ok(event) => Inner::Whole(event.records.into_iter()),
                Err(docs) => Inner::Documents(docs),
            },
            _ => Inner::Documents(Documents::open(path)?),
        };
        Ok(Self {
            inner,
            bad: Vec::new(),
        })
    }

    /// Up to `n` records; an empty batch at the end. Records that could not
    /// be decoded on the way wait in [`Self::take_undecodable`].
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<StreamRecord>> {
        let mut batch = Vec::with_capacity(n);
        match &mut self.inner {
            Inner::Whole(it) => batch.extend(it.by_ref().take(n)),
            Inner::Documents(docs) => {
                while batch.len() < n {
                    let Some(entry) = docs.next_entry()? else {
                        break;
                    };
                    match StreamRecord::from_json_value(&entry.value) {
                        Ok(r) => batch.push(r),
                        Err(e) => {
                            let place = docs.place(entry.line, entry.index);
                            let raw = entry.value.to_string();
                            docs.bad.push(Undecodable::new(
                                place,
                                &raw,
                                if crate::redrive::batch_infos(&entry.value).is_empty() {
                                    format!("not a DynamoDB stream record: {e}")
                                } else {
                                    "not a DynamoDB stream record but a Lambda on-failure record \
                                     (the place of a failed batch, not its records): \
                                     use `streamfold redrive FILE`"
                                        .to_owned()
                                },
                                docs.file_time,
                            ));
                        }
                    }
                }
                self.bad.append(&mut docs.bad);
            }
        }
        Ok(batch)
    }

    /// The records set aside since the last call.
    pub fn take_undecodable(&mut self) -> Vec<Undecodable> {
        std::mem::take(&mut self.bad)
    }
}
