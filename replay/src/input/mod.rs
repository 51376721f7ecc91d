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

mod documents;
mod readers;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use streamfold_shared::deadletter::DeadLetter;
use streamfold_shared::ids::Timestamp;

pub use readers::{KinesisReader, RecordReader};

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
        error: impl std::fmt::Display,
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
            error: error.to_string(),
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
pub(super) fn file_time(path: &Path) -> Option<Timestamp> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let ms = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    Timestamp::from_epoch_millis(i64::try_from(ms).ok()?)
}

/// The name a file goes by in places and synthesised record ids.
pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
