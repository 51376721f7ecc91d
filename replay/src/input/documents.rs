//! The JSON documents of a file, record by record, with where each is.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use streamfold_shared::ids::Timestamp;

use super::{ACCEPTED, Undecodable, file_name, file_time};

/// One record's JSON as the file holds it, with where it is.
pub(super) struct Entry {
    /// 1-based line where the record (or its document) starts.
    pub(super) line: usize,
    /// 1-based position inside a document of several records.
    pub(super) index: Option<usize>,
    pub(super) value: Value,
}

/// The JSON documents of a file, record by record: JSON Lines streamed line
/// by line (a line that is not JSON is set aside, and the next line read),
/// any other content read whole as a sequence of documents. A document that
/// is an array, or an object with a `Records` array, gives its elements.
pub(super) struct Documents {
    pub(super) name: String,
    pub(super) file_time: Option<Timestamp>,
    rest: Rest,
    pub(super) pending: VecDeque<Entry>,
    /// Lines and documents that are not JSON.
    pub(super) bad: Vec<Undecodable>,
}

/// What is left to read of a file streamed line by line.
enum Rest {
    Lines {
        reader: BufReader<File>,
        line: usize,
    },
    Done,
}

impl Documents {
    pub(super) fn open(path: &Path) -> Result<Self> {
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
            docs.rest = Rest::Lines { reader, line: 0 };
            Ok(docs)
        } else {
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read {shown}"))?;
            Self::whole(path, &text)
        }
    }

    pub(super) fn empty(path: &Path) -> Self {
        Self {
            name: file_name(path),
            file_time: file_time(path),
            rest: Rest::Done,
            pending: VecDeque::new(),
            bad: Vec::new(),
        }
    }

    /// The records of a file's whole text.
    pub(super) fn whole(path: &Path, text: &str) -> Result<Self> {
        let mut docs = Self::empty(path);
        docs.read_whole(text, &path.display().to_string())?;
        Ok(docs)
    }

    pub(super) fn place(&self, line: usize, index: Option<usize>) -> String {
        match index {
            Some(i) => format!("{}:{line}, record {i}", self.name),
            None => format!("{}:{line}", self.name),
        }
    }

    /// Splits one document into its records.
    pub(super) fn push_document(&mut self, line: usize, value: Value) {
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

    pub(super) fn push_all(&mut self, line: usize, items: Vec<Value>) {
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
    pub(super) fn read_whole(&mut self, text: &str, shown: &str) -> Result<()> {
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
    pub(super) fn next_entry(&mut self) -> Result<Option<Entry>> {
        loop {
            if let Some(entry) = self.pending.pop_front() {
                return Ok(Some(entry));
            }
            let Rest::Lines { reader, line } = &mut self.rest else {
                return Ok(None);
            };
            let mut buf = String::new();
            if reader
                .read_line(&mut buf)
                .with_context(|| format!("cannot read {}", self.name))?
                == 0
            {
                self.rest = Rest::Done;
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
pub(super) fn event_file<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Result<T, Documents>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
    Ok(match serde_json::from_str::<T>(&text) {
        Ok(event) => Ok(event),
        Err(_) => Err(Documents::whole(path, &text)?),
    })
}
