//! Reading captured records: a Lambda DynamoDB event file (`{"Records":
//! [...]}`) or JSON Lines of DynamoDB Streams records, detected from the
//! content or named with `--format`. JSON Lines are streamed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
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
        let mut file = File::open(path).with_context(|| format!("opening {shown}"))?;
        let format = match format {
            Format::Auto => detect(&mut file).with_context(|| format!("reading {shown}"))?,
            f => f,
        };
        let file = File::open(path).with_context(|| format!("opening {shown}"))?;
        let inner = match format {
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
                    if reader.read_line(&mut buf).with_context(|| format!("reading {}", self.path))? == 0 {
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

fn detect(file: &mut File) -> Result<Format> {
    let mut head = [0u8; 4096];
    let n = file.read(&mut head)?;
    let text = String::from_utf8_lossy(&head[..n]);
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(Format::DynamodbJsonl);
    }
    if !trimmed.starts_with('{') {
        bail!("neither a Lambda event nor JSON Lines of stream records");
    }
    // A Lambda event starts with "Records"; a JSON line has eventID etc.
    let first_key = trimmed[1..].trim_start();
    if first_key.starts_with("\"Records\"") {
        Ok(Format::LambdaDynamodb)
    } else {
        Ok(Format::DynamodbJsonl)
    }
}
