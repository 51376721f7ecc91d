//! Reading captured records, as forgivingly as Lambda reads events.
//!
//! A file may be a Lambda DynamoDB or Kinesis event (`{"Records": [...]}`,
//! also a Streams API GetRecords page), a JSON array of records, JSON Lines
//! (one record, agent event or whole event per line) or one JSON record,
//! also pretty-printed over several lines. Its kind is detected from the
//! content or named with `--format`. JSON Lines are streamed (read line by
//! line, batch by batch); other documents are read whole (Lambda caps an
//! event at 6 MB).
//!
//! A record that cannot be decoded never stops the file: it is set aside as
//! an [`Undecodable`] naming its file and line (or index), for the caller to
//! dead-letter, and the rest of the file is read. Every record shape the
//! Lambda adapter accepts (`aws_lambda_events`, e.g. `"Keys": null`) is
//! accepted here too. Only a file that is none of the kinds above is an
//! error, of one line naming the kinds accepted.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use streamfold_shared::deadletter::DeadLetter;
use streamfold_shared::ids::Timestamp;
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

/// What a file must be, for the one-line error about one that is not.
pub const ACCEPTED: &str = "replay reads Lambda DynamoDB or Kinesis event files ({\"Records\": [...]}), \
     a JSON array of records, JSON Lines (one record or Connect agent event per line), \
     or one JSON record";

/// How long a dead letter of an undecodable record keeps its raw text: the
/// rest is cut (a DynamoDB item holds at most 400 KB).
const RAW_MAX: usize = 200 * 1024;

/// A record of a file that could not be decoded: where it is, its text and
/// why. It becomes a dead letter ([`Undecodable::dead_letter`]); the rest of
/// the file is read on.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    /// `FILE:LINE`, with `, record N` (1-based) inside a document of several.
    pub place: String,
    pub raw: String,
    pub error: String,
    /// When the file was last written: the dead letter's arrival time, so
    /// that replaying the same file again keeps one dead letter, not two.
    pub file_time: Option<Timestamp>,
}

impl Undecodable {
    fn new(
        place: String,
        raw: &str,
        error: impl Into<String>,
        file_time: Option<Timestamp>,
    ) -> Self {
        let raw = if raw.len() > RAW_MAX {
            let mut end = RAW_MAX;
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes in all)", &raw[..end], raw.len())
        } else {
            raw.to_owned()
        };
        Self {
            place,
            raw,
            error: error.into(),
            file_time,
        }
    }

    /// The dead letter a processor keeps of it.
    pub fn dead_letter(&self, processor: &str, retention_days: i64) -> DeadLetter {
        DeadLetter::new(
            processor,
            &self.place,
            "",
            self.file_time,
            self.raw.clone(),
            format!("{}: {}", self.place, self.error),
            retention_days,
        )
    }
}

/// The concrete format of a file: `format` itself unless it is `Auto`, else
/// what the content looks like (any of the four formats). A file none of
/// whose first lines is JSON is no capture: one line says what is accepted.
pub fn detect_format(path: &Path, format: Format) -> Result<Format> {
    if format != Format::Auto {
        return Ok(format);
    }
    let shown = path.display().to_string();
    let mut file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let mut head = vec![0u8; 1 << 16];
    let n = file
        .read(&mut head)
        .with_context(|| format!("cannot read {shown}"))?;
    let text = String::from_utf8_lossy(&head[..n]);
    let trimmed = text.trim_start();
    if !trimmed.is_empty()
        && !trimmed
            .lines()
            .map(str::trim_start)
            .any(|l| l.starts_with('{') || l.starts_with('['))
    {
        bail!("{shown} is not a capture file: {ACCEPTED}");
    }
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
        || (pretty && trimmed.contains("\"AgentARN\""))
        || (trimmed.starts_with('[') && trimmed.contains("\"AgentARN\""))
        || (!trimmed.is_empty() && !trimmed.starts_with('{') && !trimmed.starts_with('['))
    {
        Format::AgentEventsJsonl
    } else {
        Format::DynamodbJsonl
    })
}

/// When a file was last modified, as a timestamp.
fn file_time(path: &Path) -> Option<Timestamp> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let ms = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    Timestamp::from_epoch_millis(i64::try_from(ms).ok()?)
}

/// The name a file goes by in places and synthesised record ids.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// One record's JSON as the file holds it, with where it is.
struct Entry {
    /// 1-based line where the record (or its document) starts.
    line: usize,
    /// 1-based position inside a document of several records.
    index: Option<usize>,
    value: Value,
}

/// The JSON documents of a file, record by record: JSON Lines streamed line
/// by line (a line that is not JSON is set aside, and the next line read),
/// any other content read whole as a sequence of documents. A document that
/// is an array, or an object with a `Records` array, gives its elements.
struct Documents {
    name: String,
    file_time: Option<Timestamp>,
    source: Source,
    pending: VecDeque<Entry>,
    /// Lines and documents that are not JSON.
    bad: Vec<Undecodable>,
}

enum Source {
    Lines {
        reader: BufReader<File>,
        line: usize,
    },
    Done,
}

impl Documents {
    fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let head = reader
            .fill_buf()
            .with_context(|| format!("cannot read {shown}"))?;
        let head = String::from_utf8_lossy(head);
        let first = head.trim_start().lines().next().unwrap_or_default().trim();
        // JSON Lines when the first line is a whole document; else (a
        // pretty-printed record or event, an array over several lines) the
        // file is read whole.
        let lines =
            !first.is_empty() && serde_json::from_str::<serde::de::IgnoredAny>(first).is_ok();
        if lines {
            let mut docs = Self::empty(path);
            docs.source = Source::Lines { reader, line: 0 };
            Ok(docs)
        } else {
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read {shown}"))?;
            Self::whole(path, &text)
        }
    }

    fn empty(path: &Path) -> Self {
        Self {
            name: file_name(path),
            file_time: file_time(path),
            source: Source::Done,
            pending: VecDeque::new(),
            bad: Vec::new(),
        }
    }

    /// The records of a file's whole text.
    fn whole(path: &Path, text: &str) -> Result<Self> {
        let mut docs = Self::empty(path);
        docs.read_whole(text, &path.display().to_string())?;
        Ok(docs)
    }

    fn place(&self, line: usize, index: Option<usize>) -> String {
        match index {
            Some(i) => format!("{}:{line}, record {i}", self.name),
            None => format!("{}:{line}", self.name),
        }
    }

    /// Splits one document into its records.
    fn push_document(&mut self, line: usize, value: Value) {
        match value {
            Value::Array(items) => self.push_all(line, items),
            Value::Object(mut map) if map.get("Records").is_some_and(Value::is_array) => {
                if let Some(Value::Array(items)) = map.remove("Records") {
                    self.push_all(line, items);
                }
            }
            value => self.pending.push_back(Entry {
                line,
                index: None,
                value,
            }),
        }
    }

    fn push_all(&mut self, line: usize, items: Vec<Value>) {
        for (i, value) in items.into_iter().enumerate() {
            self.pending.push_back(Entry {
                line,
                index: Some(i + 1),
                value,
            });
        }
    }

    /// A whole text: one or more JSON documents. Where the text stops being
    /// JSON, the rest is set aside as one undecodable record (nothing
    /// before it is lost); a text with no JSON document at all is no
    /// capture.
    fn read_whole(&mut self, text: &str, shown: &str) -> Result<()> {
        let line_at = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut documents = 0;
        loop {
            let start = stream.byte_offset();
            match stream.next() {
                None => break,
                Some(Ok(value)) => {
                    documents += 1;
                    // The document starts after the white space skipped.
                    let skipped = text[start..].len() - text[start..].trim_start().len();
                    self.push_document(line_at(start + skipped), value);
                }
                Some(Err(e)) => {
                    if documents == 0 {
                        bail!(
                            "{shown} is not a capture file (not JSON at line {}, column {}): {ACCEPTED}",
                            e.line(),
                            e.column()
                        );
                    }
                    let rest = &text[start..];
                    let skipped = rest.len() - rest.trim_start().len();
                    let place = self.place(line_at(start + skipped), None);
                    self.bad.push(Undecodable::new(
                        place,
                        rest.trim(),
                        format!("not JSON from here to the end of the file: {e}"),
                        self.file_time,
                    ));
                    break;
                }
            }
        }
        Ok(())
    }

    /// The next record's JSON, or `None` at the end of the file. Lines that
    /// are not JSON are set aside in `bad` on the way.
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        loop {
            if let Some(entry) = self.pending.pop_front() {
                return Ok(Some(entry));
            }
            let Source::Lines { reader, line } = &mut self.source else {
                return Ok(None);
            };
            let mut buf = String::new();
            if reader
                .read_line(&mut buf)
                .with_context(|| format!("cannot read {}", self.name))?
                == 0
            {
                self.source = Source::Done;
                return Ok(None);
            }
            *line += 1;
            let at = *line;
            let text = buf.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(text) {
                Ok(value) => self.push_document(at, value),
                Err(e) => {
                    let place = self.place(at, None);
                    self.bad.push(Undecodable::new(
                        place,
                        text,
                        format!("not JSON: {e}"),
                        self.file_time,
                    ));
                }
            }
        }
    }
}

/// An event file read whole: `T` when every record of it reads (the fast
/// path), else its records one by one.
fn event_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Result<T, Documents>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
    Ok(match serde_json::from_str::<T>(&text) {
        Ok(event) => Ok(event),
        Err(_) => Err(Documents::whole(path, &text)?),
    })
}

/// Kinesis records from one file, in batches: a Lambda Kinesis event file,
/// or JSON Lines (or an array, or one document) where each record is a
/// Lambda Kinesis record (it has `kinesis`) or a raw Connect agent event,
/// for which a record is synthesised. A raw payload that is not JSON
/// becomes a record too (agent-activity dead-letters it, as the Lambda
/// function would): agent events are outside input. A Lambda record that
/// cannot be read is set aside as [`Undecodable`].
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
                                        e.to_string(),
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
                                docs.bad.push(Undecodable::new(
                                    place,
                                    &raw,
                                    e.to_string(),
                                    docs.file_time,
                                ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sf-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join(name);
        let mut f = File::create(&path).unwrap_or_else(|e| panic!("{e}"));
        f.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        path
    }

    fn record(id: &str, seq: &str) -> Value {
        serde_json::json!({
            "eventID": id, "eventName": "INSERT",
            "dynamodb": {"Keys": {"pk": {"S": "MSG#g"}, "sk": {"S": id}},
                         "NewImage": {"pk": {"S": "MSG#g"}, "sk": {"S": id}},
                         "SequenceNumber": seq}
        })
    }

    fn read_all(path: &Path, format: Format) -> (Vec<StreamRecord>, Vec<Undecodable>) {
        let mut reader = RecordReader::open(path, format).unwrap_or_else(|e| panic!("{e:#}"));
        let mut records = Vec::new();
        let mut bad = Vec::new();
        loop {
            let batch = reader.next_batch(2).unwrap_or_else(|e| panic!("{e:#}"));
            bad.extend(reader.take_undecodable());
            if batch.is_empty() {
                break;
            }
            records.extend(batch);
        }
        (records, bad)
    }

    #[test]
    fn an_on_failure_record_is_set_aside_with_the_advice_to_redrive_it() {
        let on_failure = serde_json::json!({
            "requestContext": {"condition": "RetryAttemptsExhausted"},
            "DDBStreamBatchInfo": {
                "shardId": "shardId-1", "startSequenceNumber": "1", "endSequenceNumber": "9",
                "batchSize": 9, "streamArn": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"
            }
        });
        let text = format!("{}\n{on_failure}\n", record("a", "1"));
        let path = file("onfailure.jsonl", &text);
        let (records, bad) = read_all(&path, Format::Auto);
        assert_eq!(records.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].error.contains("streamfold redrive"),
            "{}",
            bad[0].error
        );
    }

    #[test]
    fn a_bad_line_is_set_aside_with_its_line_and_the_rest_is_read() {
        let text = format!(
            "{}\n{{\"eventID\": \"broken\n{}\n{}\n",
            record("a", "1"),
            serde_json::json!({"eventID": "x", "dynamodb": {}}),
            record("c", "3")
        );
        let path = file("lines.jsonl", &text);
        let (records, bad) = read_all(&path, Format::Auto);
        let ids: Vec<&str> = records.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        let places: Vec<&str> = bad.iter().map(|b| b.place.as_str()).collect();
        assert_eq!(places, ["lines.jsonl:2", "lines.jsonl:3"]);
        assert!(bad[0].error.contains("not JSON"), "{}", bad[0].error);
        assert!(
            bad[1].error.contains("not a DynamoDB stream record"),
            "{}",
            bad[1].error
        );
        let letter = bad[1].dead_letter("message-groups", 14);
        assert!(
            letter.error.starts_with("lines.jsonl:3: "),
            "{}",
            letter.error
        );
        assert_eq!(letter.record_id, "lines.jsonl:3");
    }

    #[test]
    fn an_event_file_with_one_bad_record_gives_the_others() {
        let event =
            serde_json::json!({"Records": [record("a", "1"), {"eventID": "b"}, record("c", "3")]});
        let path = file(
            "event.json",
            &serde_json::to_string_pretty(&event).unwrap_or_default(),
        );
        assert_eq!(
            detect_format(&path, Format::Auto).ok(),
            Some(Format::LambdaDynamodb)
        );
        let (records, bad) = read_all(&path, Format::Auto);
        assert_eq!(records.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].place, "event.json:1, record 2");
    }

    #[test]
    fn null_keys_and_images_read_as_lambda_reads_them() {
        let mut r = record("n", "9");
        r["dynamodb"]["Keys"] = Value::Null;
        r["dynamodb"]["NewImage"] = Value::Null;
        let path = file("nulls.jsonl", &format!("{r}\n{}\n", record("a", "1")));
        let (records, bad) = read_all(&path, Format::Auto);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(records.len(), 2);
        assert!(records[0].dynamodb.keys.is_empty());
        assert!(records[0].dynamodb.new_image.is_none());
    }

    #[test]
    fn a_pretty_printed_record_and_an_array_are_read() {
        let one = file(
            "one.json",
            &serde_json::to_string_pretty(&record("p", "1")).unwrap_or_default(),
        );
        let (records, bad) = read_all(&one, Format::Auto);
        assert_eq!((records.len(), bad.len()), (1, 0));
        let arr = serde_json::json!([record("a", "1"), record("b", "2"), 7]);
        let many = file(
            "many.json",
            &serde_json::to_string_pretty(&arr).unwrap_or_default(),
        );
        let (records, bad) = read_all(&many, Format::Auto);
        assert_eq!((records.len(), bad.len()), (2, 1));
        assert_eq!(bad[0].place, "many.json:1, record 3");
    }

    #[test]
    fn text_after_the_last_document_is_set_aside_not_lost() {
        let text = format!(
            "{}\n{{ broken",
            serde_json::to_string_pretty(&record("p", "1")).unwrap_or_default()
        );
        let path = file("tail.json", &text);
        let (records, bad) = read_all(&path, Format::Auto);
        assert_eq!((records.len(), bad.len()), (1, 1));
        assert!(bad[0].raw.contains("broken"));
    }

    #[test]
    fn a_file_that_is_no_capture_says_what_is_accepted_in_one_line() {
        let path = file("users.csv", "user,extension\nbob,0042\n");
        let e = detect_format(&path, Format::Auto)
            .map(|_| ())
            .err()
            .map(|e| format!("{e:#}"));
        let e = e.unwrap_or_default();
        assert!(
            e.contains("is not a capture file") && e.contains("JSON Lines"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let broken = file("broken.json", "{\n  \"Records\": [\n");
        let e = RecordReader::open(&broken, Format::Auto)
            .map(|_| ())
            .err()
            .map(|e| format!("{e:#}"));
        assert!(e.unwrap_or_default().contains("not a capture file"));
    }

    #[test]
    fn a_kinesis_event_with_a_bad_record_gives_the_others() {
        let good = serde_json::json!({"eventID": "s:1", "kinesis": {"partitionKey": "a", "sequenceNumber": "1", "data": "e30="}});
        let bad = serde_json::json!({"eventID": "s:2", "kinesis": {"partitionKey": "a", "sequenceNumber": "2", "data": "%%%"}});
        let event = serde_json::json!({"Records": [good, bad]});
        let path = file("kin.json", &event.to_string());
        let mut reader =
            KinesisReader::open(&path, Format::Auto).unwrap_or_else(|e| panic!("{e:#}"));
        let batch = reader.next_batch(10).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(batch.len(), 1);
        let set_aside = reader.take_undecodable();
        assert_eq!(set_aside.len(), 1);
        assert_eq!(set_aside[0].place, "kin.json:1, record 2");
    }
}
