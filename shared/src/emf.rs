//! CloudWatch metrics in the Embedded Metric Format: one JSON line per batch
//! on the function's log stream (stdout), which CloudWatch Logs turns into
//! metrics without any API call from the function.
//!
//! The figures of a batch ([`BatchMetrics`]): records by outcome, the batch
//! duration, the DynamoDB requests it sent (reads and writes), and the age
//! of its oldest record at the start of the batch (now minus the record's
//! stream arrival time). Dimensions are the function and the processor only:
//! never an id or a name from the data.
//!
//! `STREAMFOLD_METRICS_NAMESPACE` sets the namespace (default `Streamfold`);
//! `STREAMFOLD_METRICS=off` turns the lines off.
//!
//! Consumed capacity (WRU/RRU, what DynamoDB on demand bills) comes from
//! the answers' `ConsumedCapacity` ([`crate::metrics::RequestCounter`] asks
//! for it on every request): [`BatchMetrics::consumed`] carries the batch's
//! total as `ConsumedWriteCapacity` and `ConsumedReadCapacity`, and its
//! breakdown by operation, table and index in the JSON lines.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::engine::Counts;
use crate::ids::Timestamp;
use crate::metrics::{CapacityKey, Units};

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "Streamfold";

/// The metric names, as the template's alarms and dashboard use them.
pub mod names {
    pub const RECORDS: &str = "Records";
    pub const APPLIED: &str = "RecordsApplied";
    pub const NO_OP: &str = "RecordsNoOp";
    pub const IGNORED: &str = "RecordsIgnored";
    pub const DEAD_LETTERED: &str = "RecordsDeadLettered";
    pub const FAILED: &str = "RecordsFailed";
    pub const BATCH_DURATION: &str = "BatchDuration";
    pub const OLDEST_RECORD_AGE: &str = "OldestRecordAge";
    pub const DYNAMODB_REQUESTS: &str = "DynamoDBRequests";
    pub const DYNAMODB_READ_REQUESTS: &str = "DynamoDBReadRequests";
    pub const DYNAMODB_WRITE_REQUESTS: &str = "DynamoDBWriteRequests";
    pub const CONSUMED_WRU: &str = "ConsumedWriteCapacity";
    pub const CONSUMED_RRU: &str = "ConsumedReadCapacity";
}

/// Consumed capacity of a batch (write and read request units), in total
/// and by operation, table and index.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Capacity {
    pub write_units: f64,
    pub read_units: f64,
    /// Where it was consumed.
    pub by: Vec<CapacityEntry>,
}

/// The capacity one operation consumed on one table or index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityEntry {
    pub operation: String,
    pub table: String,
    /// Empty for the table itself.
    pub index: String,
    pub write_units: f64,
    pub read_units: f64,
}

impl Capacity {
    /// From a counter's figures ([`crate::metrics::RequestCounter::capacity`]).
    pub fn from_entries(entries: &BTreeMap<CapacityKey, Units>) -> Self {
        let total = entries.values().fold(Units::default(), |a, u| a.plus(*u));
        Capacity {
            write_units: total.write,
            read_units: total.read,
            by: entries
                .iter()
                .map(|(k, u)| CapacityEntry {
                    operation: k.operation.clone(),
                    table: k.table.clone(),
                    index: k.index.clone(),
                    write_units: u.write,
                    read_units: u.read,
                })
                .collect(),
        }
    }

    /// The capacity consumed between two readings of one counter.
    pub fn between(
        before: &BTreeMap<CapacityKey, Units>,
        after: &BTreeMap<CapacityKey, Units>,
    ) -> Self {
        let delta: BTreeMap<CapacityKey, Units> = after
            .iter()
            .map(|(k, u)| {
                let b = before.get(k).copied().unwrap_or_default();
                (k.clone(), u.minus(b))
            })
            .filter(|(_, u)| u.total() > 0.0)
            .collect();
        Self::from_entries(&delta)
    }
}

/// What one batch came to, as metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchMetrics {
    /// The function (Lambda function name, or `tail`).
    pub function: String,
    /// The processor's name.
    pub processor: String,
    pub counts: Counts,
    pub duration_ms: f64,
    /// DynamoDB requests by operation (every attempt).
    pub requests: BTreeMap<String, u64>,
    /// Milliseconds between the oldest record's arrival in the stream and the
    /// start of the batch; none for an empty batch or records without times.
    pub oldest_record_age_ms: Option<i64>,
    /// Consumed capacity, when measured.
    pub consumed: Option<Capacity>,
}

impl BatchMetrics {
    /// Requests that read.
    pub fn read_requests(&self) -> u64 {
        crate::executor::read_requests(&self.requests)
    }

    /// All requests.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// The figures as `(name, value, unit)`, in a fixed order.
    pub fn values(&self) -> Vec<(&'static str, f64, &'static str)> {
        let c = &self.counts;
        let total = self.total_requests();
        let reads = self.read_requests();
        let mut v = vec![
            (names::RECORDS, c.records as f64, "Count"),
            (names::APPLIED, c.applied as f64, "Count"),
            (names::NO_OP, c.no_op as f64, "Count"),
            (names::IGNORED, c.ignored as f64, "Count"),
            (names::DEAD_LETTERED, c.dead_lettered as f64, "Count"),
            (names::FAILED, c.failed as f64, "Count"),
            (names::BATCH_DURATION, self.duration_ms, "Milliseconds"),
            (names::DYNAMODB_REQUESTS, total as f64, "Count"),
            (names::DYNAMODB_READ_REQUESTS, reads as f64, "Count"),
            (
                names::DYNAMODB_WRITE_REQUESTS,
                total.saturating_sub(reads) as f64,
                "Count",
            ),
        ];
        if let Some(age) = self.oldest_record_age_ms {
            v.push((names::OLDEST_RECORD_AGE, age.max(0) as f64, "Milliseconds"));
        }
        if let Some(cap) = &self.consumed {
            v.push((names::CONSUMED_WRU, cap.write_units, "Count"));
            v.push((names::CONSUMED_RRU, cap.read_units, "Count"));
        }
        v
    }

    /// The EMF document of these figures at `timestamp_ms` in `namespace`.
    pub fn to_emf(&self, namespace: &str, timestamp_ms: i64) -> Value {
        let values = self.values();
        let definitions: Vec<Value> = values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Function", "Processor"]],
                    "Metrics": definitions,
                }],
            }),
        );
        doc.insert("Function".into(), json!(self.function));
        doc.insert("Processor".into(), json!(self.processor));
        for (name, value, _) in values {
            doc.insert(name.into(), json!(value));
        }
        Value::Object(doc)
    }

    /// The figures as one flat JSON object (what `tail --metrics` writes).
    pub fn to_json_line(&self, timestamp: Timestamp) -> Value {
        let mut doc = Map::new();
        doc.insert("timestamp".into(), json!(timestamp.to_string()));
        doc.insert("function".into(), json!(self.function));
        doc.insert("processor".into(), json!(self.processor));
        for (name, value, _) in self.values() {
            doc.insert(name.into(), json!(value));
        }
        doc.insert("requests".into(), json!(self.requests));
        if let Some(cap) = &self.consumed {
            doc.insert("consumed".into(), json!(cap.by));
        }
        Value::Object(doc)
    }
}

/// The age in milliseconds of the oldest of `arrivals` at `now`.
pub fn oldest_age_ms(
    arrivals: impl IntoIterator<Item = Option<Timestamp>>,
    now: Timestamp,
) -> Option<i64> {
    arrivals
        .into_iter()
        .flatten()
        .map(|t| t.epoch_millis())
        .min()
        .map(|oldest| now.epoch_millis().saturating_sub(oldest))
}

/// Whether EMF lines are written (`STREAMFOLD_METRICS` is not `off`).
pub fn enabled() -> bool {
    !matches!(
        std::env::var("STREAMFOLD_METRICS").as_deref(),
        Ok("off" | "0" | "false")
    )
}

/// The namespace from `STREAMFOLD_METRICS_NAMESPACE`, or the default.
pub fn namespace() -> String {
    std::env::var("STREAMFOLD_METRICS_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Writes the EMF line of `metrics` on stdout as one write (so it never
/// interleaves with a log line), unless turned off.
pub fn emit(metrics: &BatchMetrics) {
    if !enabled() {
        return;
    }
    let mut line = metrics
        .to_emf(&namespace(), Timestamp::now().epoch_millis())
        .to_string();
    line.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_emf_document_declares_every_value_it_carries() {
        let m = BatchMetrics {
            function: "f".into(),
            processor: "message-groups".into(),
            counts: Counts {
                records: 3,
                applied: 1,
                no_op: 1,
                ignored: 0,
                dead_lettered: 1,
                failed: 0,
            },
            duration_ms: 12.5,
            requests: BTreeMap::from([
                ("BatchGetItem".into(), 1),
                ("TransactWriteItems".into(), 2),
            ]),
            oldest_record_age_ms: Some(1500),
            consumed: None,
        };
        let doc = m.to_emf("NS", 1_700_000_000_000);
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "NS");
        assert_eq!(cw["Dimensions"], json!([["Function", "Processor"]]));
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        let declared = cw["Metrics"].as_array().cloned().unwrap_or_default();
        for d in &declared {
            let name = d["Name"].as_str().unwrap_or_default();
            assert!(doc[name].is_number(), "{name} has no value");
        }
        assert_eq!(declared.len(), 11);
        assert_eq!(doc["RecordsDeadLettered"], 1.0);
        assert_eq!(doc["DynamoDBRequests"], 3.0);
        assert_eq!(doc["DynamoDBReadRequests"], 1.0);
        assert_eq!(doc["DynamoDBWriteRequests"], 2.0);
        assert_eq!(doc["OldestRecordAge"], 1500.0);
        assert_eq!(doc["Function"], "f");
        assert!(doc.get("ConsumedWriteCapacity").is_none());
    }

    #[test]
    fn consumed_capacity_is_emitted_in_total_and_in_the_json_line_by_table() {
        let before = BTreeMap::from([(
            CapacityKey {
                operation: "TransactWriteItems".into(),
                table: "t".into(),
                index: String::new(),
            },
            Units {
                write: 4.0,
                read: 0.0,
            },
        )]);
        let mut after = before.clone();
        after.insert(
            CapacityKey {
                operation: "TransactWriteItems".into(),
                table: "t".into(),
                index: "gsi1".into(),
            },
            Units {
                write: 2.0,
                read: 0.0,
            },
        );
        after.insert(
            CapacityKey {
                operation: "BatchGetItem".into(),
                table: "t".into(),
                index: String::new(),
            },
            Units {
                write: 0.0,
                read: 1.5,
            },
        );
        let m = BatchMetrics {
            consumed: Some(Capacity::between(&before, &after)),
            ..Default::default()
        };
        let doc = m.to_emf("NS", 0);
        assert_eq!(doc["ConsumedWriteCapacity"], 2.0);
        assert_eq!(doc["ConsumedReadCapacity"], 1.5);
        let line = m.to_json_line(ts("2026-12-02T00:00:00Z"));
        let by = line["consumed"].as_array().cloned().unwrap_or_default();
        assert_eq!(by.len(), 2, "{line}");
        assert_eq!(by[1]["index"], "gsi1");
        assert_eq!(by[1]["write_units"], 2.0);
    }

    #[test]
    fn the_oldest_age_is_from_the_earliest_arrival() {
        let now = ts("2026-11-20T12:00:10Z");
        let age = oldest_age_ms(
            [
                Some(ts("2026-11-20T12:00:05Z")),
                None,
                Some(ts("2026-11-20T12:00:00Z")),
            ],
            now,
        );
        assert_eq!(age, Some(10_000));
        assert_eq!(oldest_age_ms([None], now), None);
    }
}
