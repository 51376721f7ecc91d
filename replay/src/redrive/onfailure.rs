//! Lambda's on-failure records (`DDBStreamBatchInfo`, `KinesisBatchInfo`),
//! wherever they sit in a file, an SQS message body or an S3 object.

use serde::Serialize;
use serde_json::Value;

use crate::pipeline::ProcessorKind;

/// Which stream a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    DynamoDb,
    Kinesis,
}

/// One on-failure record: the place of a batch Lambda gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchInfo {
    pub kind: StreamKind,
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub batch_size: u64,
    pub first_arrival: Option<String>,
    pub last_arrival: Option<String>,
    /// The function that gave up (requestContext.functionArn).
    pub function_arn: Option<String>,
    /// Why (RetryAttemptsExhausted, RecordAgeExceeded, ...).
    pub condition: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl BatchInfo {
    fn from_record(record: &Value) -> Option<Self> {
        let (kind, info) = if let Some(i) = record.get("DDBStreamBatchInfo") {
            (StreamKind::DynamoDb, i)
        } else if let Some(i) = record.get("KinesisBatchInfo") {
            (StreamKind::Kinesis, i)
        } else {
            return None;
        };
        Some(Self {
            kind,
            stream_arn: text(info, "streamArn")?,
            shard_id: text(info, "shardId")?,
            start_sequence_number: text(info, "startSequenceNumber")?,
            end_sequence_number: text(info, "endSequenceNumber")?,
            batch_size: info.get("batchSize").and_then(Value::as_u64).unwrap_or(0),
            first_arrival: text(info, "approximateArrivalOfFirstRecord"),
            last_arrival: text(info, "approximateArrivalOfLastRecord"),
            function_arn: record
                .get("requestContext")
                .and_then(|c| text(c, "functionArn")),
            condition: record
                .get("requestContext")
                .and_then(|c| text(c, "condition")),
        })
    }

    /// The processors to run: `chosen` if given, else the one the failed
    /// function's name names, else every processor of the stream.
    pub fn processors(&self, chosen: &[ProcessorKind]) -> Vec<ProcessorKind> {
        let reads = |k: &ProcessorKind| match self.kind {
            StreamKind::DynamoDb => k.reads_table_stream(),
            StreamKind::Kinesis => k.reads_kinesis(),
        };
        if !chosen.is_empty() {
            return chosen.iter().copied().filter(reads).collect();
        }
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let function = self
            .function_arn
            .as_deref()
            .and_then(|a| a.rsplit(':').next())
            .map(norm)
            .unwrap_or_default();
        let named: Vec<ProcessorKind> = ProcessorKind::ALL
            .iter()
            .copied()
            .filter(reads)
            .filter(|k| !function.is_empty() && function.contains(&norm(k.name())))
            .collect();
        if named.is_empty() {
            ProcessorKind::ALL.iter().copied().filter(reads).collect()
        } else {
            named
        }
    }
}

/// Every on-failure record in a JSON value, wherever it sits (a record, an
/// array of them, an object holding them, an SQS message body as a string).
pub fn batch_infos(value: &Value) -> Vec<BatchInfo> {
    let mut out = Vec::new();
    walk(value, &mut out, 0);
    out
}

fn walk(value: &Value, out: &mut Vec<BatchInfo>, depth: usize) {
    if depth > 16 {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(info) = BatchInfo::from_record(value) {
                out.push(info);
                return;
            }
            for v in map.values() {
                walk(v, out, depth + 1);
            }
        }
        Value::Array(items) => {
            for v in items {
                walk(v, out, depth + 1);
            }
        }
        Value::String(s) if s.trim_start().starts_with('{') => {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                walk(&inner, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// The on-failure records of a text: one JSON document, or JSON Lines.
pub fn parse_text(text: &str) -> Vec<BatchInfo> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return batch_infos(&v);
    }
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| batch_infos(&v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Value {
        let path = streamfold_shared::testing::fixtures_dir().join("lambda-stream-onfailure.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn both_on_failure_shapes_are_read_wherever_they_sit() {
        let infos = batch_infos(&fixture());
        assert_eq!(infos.len(), 2);
        let d = &infos[0];
        assert_eq!(d.kind, StreamKind::DynamoDb);
        assert_eq!(d.shard_id, "shardId-00000001763640000000-a1b2c3d4");
        assert_eq!(d.start_sequence_number, "4100000000012345678901");
        assert_eq!(d.end_sequence_number, "4100000000012345678999");
        assert_eq!(d.batch_size, 7);
        assert_eq!(d.condition.as_deref(), Some("RetryAttemptsExhausted"));
        assert_eq!(d.processors(&[]), [ProcessorKind::MessageGroups]);
        let k = &infos[1];
        assert_eq!(k.kind, StreamKind::Kinesis);
        assert_eq!(k.batch_size, 100);
        assert_eq!(k.processors(&[]), [ProcessorKind::AgentActivity]);
        // An SQS body is the record as a string; JSON Lines of records.
        let record = fixture()["dynamodb"].clone();
        let body = Value::String(record.to_string());
        assert_eq!(batch_infos(&body), vec![d.clone()]);
        let lines = format!("{}\n{}\n", record, fixture()["kinesis"]);
        assert_eq!(parse_text(&lines).len(), 2);
        assert!(parse_text("{\"eventID\": \"1\"}").is_empty());
    }

    #[test]
    fn a_function_name_that_names_no_processor_runs_every_one_of_the_stream() {
        let mut v = fixture()["dynamodb"].clone();
        v["requestContext"]["functionArn"] =
            "arn:aws:lambda:us-east-1:1:function:stack-ExtensionsFunction-AB12".into();
        let info = parse_text(&v.to_string()).remove(0);
        assert_eq!(info.processors(&[]), [ProcessorKind::Extensions]);
        v["requestContext"]["functionArn"] = "arn:aws:lambda:us-east-1:1:function:other".into();
        let info = parse_text(&v.to_string()).remove(0);
        let table_stream: Vec<ProcessorKind> = ProcessorKind::ALL
            .iter()
            .copied()
            .filter(|k| k.reads_table_stream())
            .collect();
        assert_eq!(info.processors(&[]), table_stream);
        assert_eq!(
            info.processors(&[ProcessorKind::AgentActivity, ProcessorKind::Extensions]),
            [ProcessorKind::Extensions]
        );
    }
}
