//! One Kinesis data record, whatever delivered it.
//!
//! [`KinesisRecord`] is fed from the Lambda event shape
//! ([`aws_lambda_events::event::kinesis::KinesisEventRecord`], whose base64
//! data that crate has already decoded), from the Kinesis API
//! (`aws_sdk_kinesis::types::Record`) and from JSON: a Lambda Kinesis event
//! file, JSON Lines of Lambda Kinesis records, or JSON Lines of raw payloads
//! (one Connect agent event per line) for which a record is synthesised.
//!
//! Its own JSON form is the Lambda record shape (`kinesis.data` in base64), so
//! a dead letter can be replayed as it is.

use aws_smithy_types::base64;
use serde::{Deserialize, Serialize};

use crate::engine::SourceRecord;
use crate::ids::Timestamp;

/// A Kinesis data record.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisRecord {
    /// The partition key (for Connect agent events, the AgentARN).
    pub partition_key: String,
    /// The record's sequence number in its shard (the batch item identifier).
    pub sequence_number: String,
    /// The payload, decoded.
    pub data: Vec<u8>,
    /// When Kinesis received the record.
    pub approximate_arrival: Option<Timestamp>,
    /// A stable id: `shardId-…:{sequence number}` for Lambda, or what the
    /// source gave.
    pub event_id: String,
    /// The stream, when the source says.
    pub event_source_arn: Option<String>,
}

/// A source shape that could not become a [`KinesisRecord`].
#[derive(Debug, thiserror::Error)]
pub enum KinesisRecordError {
    #[error("Kinesis record {event_id} has no sequenceNumber")]
    NoSequenceNumber { event_id: String },
    #[error("Kinesis record {event_id}: data is not valid base64")]
    Base64 { event_id: String },
    /// JSON that has neither record shape (the error of the first shape
    /// tried, serde's text).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl KinesisRecord {
    /// From the Lambda event shape. The record id is Lambda's `eventID`
    /// (`shardId-…:{sequence number}`), else the sequence number.
    pub fn from_lambda(
        record: aws_lambda_events::event::kinesis::KinesisEventRecord,
    ) -> Result<Self, KinesisRecordError> {
        let k = record.kinesis;
        let event_id = record
            .event_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| k.sequence_number.clone());
        if k.sequence_number.is_empty() {
            return Err(KinesisRecordError::NoSequenceNumber { event_id });
        }
        let arrival = k.approximate_arrival_timestamp.0;
        Ok(Self {
            partition_key: k.partition_key,
            sequence_number: k.sequence_number,
            data: k.data.0,
            approximate_arrival: (arrival.timestamp_micros() > 0)
                .then(|| Timestamp::from_datetime(arrival))
                .flatten(),
            event_id,
            event_source_arn: record.event_source_arn.filter(|a| !a.is_empty()),
        })
    }

    /// From one Lambda Kinesis record's JSON as a file holds it: the shape
    /// this type writes, else as `aws_lambda_events` reads it, so that every
    /// record the Lambda adapter accepts is accepted here too.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Self, KinesisRecordError> {
        let plain = match Self::deserialize(value) {
            Ok(record) => return Ok(record),
            Err(e) => e,
        };
        match aws_lambda_events::event::kinesis::KinesisEventRecord::deserialize(value) {
            Ok(lambda) => Self::from_lambda(lambda),
            Err(_) => Err(plain.into()),
        }
    }

    /// From the Kinesis API (`GetRecords`). The record id is built like
    /// Lambda's: `{shard_id}:{sequence number}`.
    pub fn from_sdk(
        record: aws_sdk_kinesis::types::Record,
        shard_id: &str,
        stream_arn: Option<&str>,
    ) -> Self {
        let approximate_arrival = record
            .approximate_arrival_timestamp
            .and_then(|t| t.to_millis().ok())
            .and_then(Timestamp::from_epoch_millis);
        Self {
            partition_key: record.partition_key.unwrap_or_default(),
            event_id: format!("{shard_id}:{}", record.sequence_number),
            sequence_number: record.sequence_number,
            data: record.data.into_inner(),
            approximate_arrival,
            event_source_arn: stream_arn.map(str::to_owned),
        }
    }

    /// Synthesises a record for one raw payload line of a file (JSON Lines
    /// of Connect agent events): the sequence number is the line number
    /// (zero-padded, so string order is line order), the record id is
    /// `{source}:{line}`, and the partition key and arrival time come from
    /// the payload's `AgentARN` and `EventTimestamp` when it has them.
    pub fn from_payload_line(source: &str, line: usize, text: &str) -> Self {
        #[derive(Deserialize)]
        struct Peek {
            #[serde(rename = "AgentARN", default)]
            agent_arn: Option<String>,
            #[serde(rename = "EventTimestamp", default)]
            event_timestamp: Option<String>,
        }
        let peek: Option<Peek> = serde_json::from_str(text).ok();
        let (partition_key, arrival) = match peek {
            Some(p) => (
                p.agent_arn.unwrap_or_default(),
                p.event_timestamp
                    .as_deref()
                    .and_then(|t| Timestamp::parse(t).ok()),
            ),
            None => (String::new(), None),
        };
        Self {
            partition_key,
            sequence_number: format!("{line:020}"),
            data: text.as_bytes().to_vec(),
            approximate_arrival: arrival,
            event_id: format!("{source}:{line}"),
            event_source_arn: None,
        }
    }

    /// The payload as UTF-8 text, if it is.
    pub fn data_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// The JSON form: the Lambda record shape.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "eventID", default, skip_serializing_if = "String::is_empty")]
    event_id: String,
    #[serde(
        rename = "eventSourceARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    event_source_arn: Option<String>,
    #[serde(
        rename = "eventSource",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    event_source: Option<String>,
    kinesis: WireData,
}

#[derive(Serialize, Deserialize)]
struct WireData {
    #[serde(rename = "partitionKey", default)]
    partition_key: String,
    #[serde(rename = "sequenceNumber")]
    sequence_number: String,
    data: String,
    #[serde(
        rename = "approximateArrivalTimestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    approximate_arrival: Option<f64>,
}

impl Serialize for KinesisRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            event_id: self.event_id.clone(),
            event_source_arn: self.event_source_arn.clone(),
            event_source: Some("aws:kinesis".to_owned()),
            kinesis: WireData {
                partition_key: self.partition_key.clone(),
                sequence_number: self.sequence_number.clone(),
                data: base64::encode(&self.data),
                approximate_arrival: self
                    .approximate_arrival
                    .map(|t| t.epoch_micros() as f64 / 1e6),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for KinesisRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(deserializer)?;
        let data = base64::decode(&w.kinesis.data)
            .map_err(|_| serde::de::Error::custom("kinesis.data is not valid base64"))?;
        Ok(Self {
            partition_key: w.kinesis.partition_key,
            event_id: if w.event_id.is_empty() {
                w.kinesis.sequence_number.clone()
            } else {
                w.event_id
            },
            sequence_number: w.kinesis.sequence_number,
            data,
            approximate_arrival: w
                .kinesis
                .approximate_arrival
                .and_then(Timestamp::from_epoch_seconds_f64),
            event_source_arn: w.event_source_arn,
        })
    }
}

impl SourceRecord for KinesisRecord {
    fn sequence_number(&self) -> &str {
        &self.sequence_number
    }

    fn record_id(&self) -> &str {
        &self.event_id
    }

    fn received_at(&self) -> Option<Timestamp> {
        self.approximate_arrival
    }

    fn raw_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"unserialisable\":\"{e}\"}}"))
    }
}

/// A Lambda Kinesis event (`{"Records": [...]}`) read straight into
/// [`KinesisRecord`]s; used for event files.
#[derive(Debug, Clone, Deserialize)]
pub struct KinesisEventFile {
    #[serde(rename = "Records")]
    pub records: Vec<KinesisRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixture;

    fn lambda_records() -> Vec<KinesisRecord> {
        let event: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_str(&fixture("lambda-kinesis-event.json"))
                .unwrap_or_else(|e| panic!("{e}"));
        event
            .records
            .into_iter()
            .map(KinesisRecord::from_lambda)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lambda_fixture_decodes() {
        let records = lambda_records();
        assert_eq!(records.len(), 4);
        assert!(
            records[0]
                .partition_key
                .ends_with("/agent/4c1f6ad5-0b5e-4d0e-9f53-2b7b1e8f3a10")
        );
        assert_eq!(
            records[0].sequence_number(),
            "49590338271490256608559692538361571095921575989136588800"
        );
        assert!(records[0].record_id().starts_with("shardId-000000000000:"));
        assert!(
            records[0]
                .data_str()
                .is_some_and(|d| d.contains("\"LOGIN\""))
        );
        assert_eq!(records[3].data, b"not json at all");
        assert_eq!(
            records[0].received_at().map(|t| t.to_string()).as_deref(),
            Some("2025-11-20T14:00:01.123000Z")
        );
    }

    #[test]
    fn plain_json_reads_like_the_lambda_shape_and_round_trips() {
        let plain: KinesisEventFile = serde_json::from_str(&fixture("lambda-kinesis-event.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        for (lambda, plain) in lambda_records().into_iter().zip(plain.records) {
            assert_eq!(lambda, plain);
            let back: KinesisRecord =
                serde_json::from_str(&plain.raw_json()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, plain);
        }
    }

    #[test]
    fn sdk_records_convert() {
        let r = aws_sdk_kinesis::types::Record::builder()
            .sequence_number("100")
            .partition_key("arn:x/agent/a1")
            .data(aws_smithy_types::Blob::new(b"{}".to_vec()))
            .approximate_arrival_timestamp(aws_smithy_types::DateTime::from_millis(1_000))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let k = KinesisRecord::from_sdk(r, "shardId-000000000001", Some("arn:stream"));
        assert_eq!(k.record_id(), "shardId-000000000001:100");
        assert_eq!(k.sequence_number(), "100");
        assert_eq!(k.data, b"{}");
        assert_eq!(k.received_at().map(|t| t.epoch_millis()), Some(1_000));
    }

    #[test]
    fn payload_lines_synthesise_records() {
        let line = fixture("connect-agent-events.jsonl")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let k = KinesisRecord::from_payload_line("day.jsonl", 1, &line);
        assert!(
            k.partition_key
                .ends_with("/agent/4c1f6ad5-0b5e-4d0e-9f53-2b7b1e8f3a10")
        );
        assert_eq!(k.sequence_number(), "00000000000000000001");
        assert_eq!(k.record_id(), "day.jsonl:1");
        assert_eq!(
            k.received_at().map(|t| t.to_string()).as_deref(),
            Some("2026-11-20T14:00:01.001000Z")
        );
        let bad = KinesisRecord::from_payload_line("day.jsonl", 2, "not json");
        assert_eq!(bad.partition_key, "");
        assert!(bad.received_at().is_none());
    }
}
