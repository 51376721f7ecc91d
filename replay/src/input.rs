//! Reading captured records: a Lambda DynamoDB or Kinesis event file
//! (`{"Records": [...]}`, also a Streams API GetRecords page), JSON Lines of
//! DynamoDB Streams records, of Lambda Kinesis records or of raw Connect agent
//! events, detected from the content or named with `--format`. JSON Lines
//! are streamed (read line by line, batch by batch); event files are read
//! whole (Lambda caps them at 6 MB).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use streamfold_shared::kinesis::{KinesisEventFile, KinesisRecord};
use streamfold_shared::record::{StreamEventFile, StreamRecord};

/// The file formats `replay` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Look at the content.
    Auto,
    /// A Lambda DynamoDB Streams event: `{"Records": [...]}`.
    LambdaDynamodb,
    /// One DynamoDB Streams record (Lambda or Streams API shape) per line.
    DynamodbJsonl,
    /// A Lambda Kinesis event: `{"Records": [{"kinesis": ...}]}`.
    LambdaKinesis,
    /// One Connect agent event (raw JSON) or Lambda Kinesis record per line.
    AgentEventsJsonl,
}

impl Format {
    /// Formats of Kinesis records (agent events).
    pub fn is_kinesis(self) -> bool {
        matches!(self, Format::LambdaKinesis | Format::AgentEventsJsonl)
    }
}

/// The concrete format of a file: `format` itself unless it is `Auto`, else
/// what the content looks like (any of the four formats).
pub fn detect_format(path: &Path, format: Format) -> Result<Format> {
    if format != Format::Auto {
        return Ok(format);
    }
    let shown = path.display().to_string();
    let mut file = File::open(path).with_context(|| format!("opening {shown}"))?;
    let mut head = vec![0u8; 1 << 16];
    let n = file
        .read(&mut head)
        .with_context(|| format!("reading {shown}"))?;
    let text = String::from_utf8_lossy(&head[..n]);
    let trimmed = text.trim_start();
    let first_line = trimmed.lines().next().unwrap_or_default();
    let first_key = trimmed.get(1..).unwrap_or_default().trim_start();
    // An event file: `{"Records": ...` on one line, or a pretty-printed
    // document (its first line is `{`) with a `Records` array (a Lambda
    // event, or a GetRecords page with `NextShardIterator` first).
    let pretty = first_line.trim() == "{";
    let event_file = first_key.starts_with("\"Records\"")
        || (pretty && trimmed.contains("\"Records\"") && !trimmed.contains("\"AgentARN\""));
    Ok(if event_file {
        // The first record says which stream it came from.
        let kinesis = trimmed.find("\"kinesis\"");
        let dynamodb = trimmed.find("\"dynamodb\"");
        match (kinesis, dynamodb) {
            (Some(k), Some(d)) if k < d => Format::LambdaKinesis,
            (Some(_), None) => Format::LambdaKinesis,
            _ => Format::LambdaDynamodb,
        }
    } else if first_line.contains("\"AgentARN\"")
        || first_line.contains("\"kinesis\"")
        || (first_line.trim() == "{" && trimmed.contains("\"AgentARN\""))
        || (!trimmed.is_empty() && !trimmed.starts_with('{'))
    {
        Format::AgentEventsJsonl
    } else {
        Format::DynamodbJsonl
    })
}

/// Kinesis records from one file, in batches: a Lambda Kinesis event file,
/// or JSON Lines where each line is a Lambda Kinesis record (it has
/// `kinesis`) or a raw Connect agent event, for which a record is
/// synthesised. A line that is not JSON becomes a record too (its processor
/// dead-letters it): agent events are outside input, not our own capture.
pub struct KinesisReader {
    inner: KinesisInner,
    source: String,
    line: usize,
}

enum KinesisInner {
    Whole(std::vec::IntoIter<KinesisRecord>),
    Lines(BufReader<File>),
}

impl KinesisReader {
    pub fn open(path: &Path, format: Format) -> Result<Self> {
        let shown = path.display().to_string();
        let format = detect_format(path, format)?;
        let file = File::open(path).with_context(|| format!("opening {shown}"))?;
        let inner = match format {
            Format::LambdaKinesis => {
                let event: KinesisEventFile = serde_json::from_reader(BufReader::new(file))
                    .with_context(|| format!("{shown} is not a Lambda Kinesis event"))?;
                KinesisInner::Whole(event.records.into_iter())
            }
            Format::AgentEventsJsonl => {
                let mut reader = BufReader::with_capacity(1 << 16, file);
                let head = reader
                    .fill_buf()
                    .with_context(|| format!("reading {shown}"))?;
                let head = String::from_utf8_lossy(head);
                let first = head.trim_start().lines().next().unwrap_or_default().trim();
                if first == "{" || first == "[" {
                    // Pretty-printed JSON (one event, several, or an array of
                    // them): read the documents one by one.
                    let mut text = String::new();
                    reader
                        .read_to_string(&mut text)
                        .with_context(|| format!("reading {shown}"))?;
                    let mut values = Vec::new();
                    for value in
                        serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>()
                    {
                        match value.with_context(|| format!("{shown} is not JSON"))? {
                            serde_json::Value::Array(items) => values.extend(items),
                            v => values.push(v),
                        }
                    }
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let records: Vec<KinesisRecord> = values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            KinesisRecord::from_payload_line(&name, i + 1, &v.to_string())
                        })
                        .collect();
                    KinesisInner::Whole(records.into_iter())
                } else {
                    KinesisInner::Lines(reader)
                }
            }
            other => {
                bail!("{shown}: {other:?} files hold DynamoDB stream records, not Kinesis records")
            }
        };
        let source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(shown);
        Ok(Self {
            inner,
            source,
            line: 0,
        })
    }

    /// Up to `n` records; an empty batch at the end.
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
                        .with_context(|| format!("reading {}", self.source))?
                        == 0
                    {
                        break;
                    }
                    self.line += 1;
                    let text = buf.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let lambda_record = text
                        .contains("\"kinesis\"")
                        .then(|| serde_json::from_str::<KinesisRecord>(text).ok())
                        .flatten();
                    batch.push(lambda_record.unwrap_or_else(|| {
                        KinesisRecord::from_payload_line(&self.source, self.line, text)
                    }));
                }
            }
        }
        Ok(batch)
    }
}

/// Records from one file, in batches.
pub struct RecordReader {
    inner: Inner,
    path: String,
    line: usize,
}

enum Inner {
    Whole(std::vec::IntoIter<StreamRecord>),
    Lines(BufReader<File>),
}

impl RecordReader {
    pub fn open(path: &Path, format: Format) -> Result<Self> {
        let shown = path.display().to_string();
        let format = detect_format(path, format)?;
        let file = File::open(path).with_context(|| format!("opening {shown}"))?;
        let inner = match format {
            Format::LambdaKinesis | Format::AgentEventsJsonl => {
                bail!("{shown}: {format:?} files hold Kinesis records, not DynamoDB stream records")
            }
            Format::LambdaDynamodb => {
                let event: StreamEventFile = serde_json::from_reader(BufReader::new(file))
                    .with_context(|| format!("{shown} is not a Lambda DynamoDB event"))?;
                Inner::Whole(event.records.into_iter())
            }
            _ => Inner::Lines(BufReader::with_capacity(1 << 16, file)),
        };
        Ok(Self {
            inner,
            path: shown,
            line: 0,
        })
    }

    /// Up to `n` records; an empty batch at the end. A line that is not a
    /// stream record stops the replay with its line number: a capture file
    /// is the project's own output, so a bad line means a damaged file.
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<StreamRecord>> {
        let mut batch = Vec::with_capacity(n);
        match &mut self.inner {
            Inner::Whole(it) => batch.extend(it.by_ref().take(n)),
            Inner::Lines(reader) => {
                let mut buf = String::new();
                while batch.len() < n {
                    buf.clear();
                    if reader
                        .read_line(&mut buf)
                        .with_context(|| format!("reading {}", self.path))?
                        == 0
                    {
                        break;
                    }
                    self.line += 1;
                    let text = buf.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let record: StreamRecord = serde_json::from_str(text).with_context(|| {
                        format!("{}:{}: not a DynamoDB stream record", self.path, self.line)
                    })?;
                    batch.push(record);
                }
            }
        }
        Ok(batch)
    }
}
