//! Dead letters: records that can never be processed, kept in the table with
//! the raw record and a clear message (`DEADLETTER#{processor}` /
//! `{received_at}#{record id}`).
//!
//! The key is derived from the record (its stream arrival time and id), and
//! the put is conditional, so a redelivered bad record is written once.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::executor::{ExecError, Executor, Item, token};
use crate::ids::{EventId, ProcessorName, Timestamp};
use crate::keys::Key;

/// A dead letter, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub processor: String,
    pub record_id: String,
    pub sequence_number: String,
    pub received_at: Timestamp,
    pub error: String,
    /// The record as JSON.
    pub raw: String,
    pub dead_lettered_at: Timestamp,
    pub expires_at: i64,
}

impl DeadLetter {
    pub fn new(
        processor: &str,
        record_id: &str,
        sequence_number: &str,
        received_at: Option<Timestamp>,
        raw: String,
        error: String,
        retention_days: i64,
    ) -> Self {
        let now = Timestamp::now();
        Self {
            processor: processor.to_owned(),
            record_id: record_id.to_owned(),
            sequence_number: sequence_number.to_owned(),
            received_at: received_at.unwrap_or(now),
            error,
            raw,
            dead_lettered_at: now,
            expires_at: now
                .plus_seconds(retention_days.saturating_mul(86_400))
                .epoch_seconds(),
        }
    }

    /// The item key. A record id that is not a valid key part is replaced
    /// by a digest of it, so every bad record can be kept.
    pub fn key(&self) -> Key {
        let processor = ProcessorName::new(self.processor.as_str())
            .or_else(|_| ProcessorName::new(token(&[&self.processor])))
            .unwrap_or_else(|_| unreachable_name());
        let material = format!("{}|{}", self.record_id, self.sequence_number);
        let record = EventId::new(self.record_id.as_str())
            .or_else(|_| EventId::new(format!("sha-{}", token(&[&material]))))
            .unwrap_or_else(|_| unreachable_event());
        Key::DeadLetter {
            processor,
            received_at: self.received_at,
            record,
        }
    }

    pub fn to_item(&self) -> Item {
        let key = self.key();
        let s = |v: &str| AttributeValue::S(v.to_owned());
        Item::from([
            ("pk".to_owned(), s(&key.pk())),
            ("sk".to_owned(), s(&key.sk())),
            ("type".to_owned(), s("deadletter")),
            ("processor".to_owned(), s(&self.processor)),
            ("record_id".to_owned(), s(&self.record_id)),
            ("sequence_number".to_owned(), s(&self.sequence_number)),
            ("received_at".to_owned(), s(&self.received_at.to_string())),
            ("error".to_owned(), s(&self.error)),
            ("raw".to_owned(), s(&self.raw)),
            (
                "dead_lettered_at".to_owned(),
                s(&self.dead_lettered_at.to_string()),
            ),
            (
                "expires_at".to_owned(),
                AttributeValue::N(self.expires_at.to_string()),
            ),
        ])
    }

    pub fn from_item(item: Item) -> Result<Self, serde_dynamo::Error> {
        serde_dynamo::from_item(item)
    }
}

// A hex digest always makes a valid id; these exist only to avoid a panic path.
fn unreachable_name() -> ProcessorName {
    ProcessorName::new("unknown").unwrap_or_else(|_| unreachable_name())
}
fn unreachable_event() -> EventId {
    EventId::new("unknown").unwrap_or_else(|_| unreachable_event())
}

/// Writes dead letters concurrently; one result per letter, in order.
pub async fn write_all(
    exec: &Executor,
    letters: impl Iterator<Item = DeadLetter>,
    concurrency: usize,
) -> Vec<Result<(), ExecError>> {
    // Items are built and the futures made before they are streamed, so the
    // stream holds no closure over borrowed letters (that would keep callers'
    // futures from being `Send`).
    let writes: Vec<_> = letters
        .map(|l| {
            let item = l.to_item();
            async move { exec.put_if_absent(item).await.map(|_| ()) }
        })
        .collect();
    futures::stream::iter(writes)
        .buffered(concurrency.max(1))
        .collect()
        .await
}
