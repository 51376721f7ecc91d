//! One decoded DynamoDB stream record, whatever delivered it.
//!
//! [`StreamRecord`] is fed from the Lambda event shape
//! ([`aws_lambda_events::event::dynamodb::EventRecord`]), from the DynamoDB
//! Streams API (`aws_sdk_dynamodbstreams::types::Record`) and from JSON (a
//! Lambda event file or JSON Lines of Streams records, camelCase or PascalCase
//! `userIdentity`). Its own JSON form is the Streams API record, so a dead
//! letter or a capture file can be replayed as it is.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};

use crate::engine::SourceRecord;
use crate::ids::Timestamp;

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// Who made the change; present for TTL deletions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdentity {
    #[serde(rename = "type", alias = "Type", default)]
    pub kind: String,
    #[serde(rename = "principalId", alias = "PrincipalId", default)]
    pub principal_id: String,
}

/// The `dynamodb` part of a stream record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamData {
    /// Epoch seconds (fractional) at which the stream received the change.
    #[serde(
        rename = "ApproximateCreationDateTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub approximate_creation: Option<f64>,
    /// Lambda's own types accept `"Keys": null`; so does this.
    #[serde(rename = "Keys", default, deserialize_with = "null_as_empty")]
    pub keys: Item,
    #[serde(rename = "NewImage", default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<Item>,
    #[serde(rename = "OldImage", default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<Item>,
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
    #[serde(rename = "SizeBytes", default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(
        rename = "StreamViewType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_view_type: Option<String>,
}

/// `null` as an empty item (as `aws_lambda_events` reads it).
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
    Ok(Option::<Item>::deserialize(d)?.unwrap_or_default())
}

/// A change record of the table's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventID")]
    pub event_id: String,
    #[serde(rename = "eventName")]
    pub kind: ChangeKind,
    #[serde(
        rename = "eventVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_version: Option<String>,
    #[serde(
        rename = "eventSource",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_source: Option<String>,
    #[serde(rename = "awsRegion", default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    #[serde(
        rename = "eventSourceARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_source_arn: Option<String>,
    #[serde(
        rename = "userIdentity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_identity: Option<UserIdentity>,
    pub dynamodb: StreamData,
}

/// A source shape that could not become a [`StreamRecord`].
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("stream record {event_id} has no SequenceNumber")]
    NoSequenceNumber { event_id: String },
    #[error("stream record {event_id} has an unknown eventName {name:?}")]
    UnknownEventName { event_id: String, name: String },
    #[error("stream record {event_id}: {reason}")]
    Image { event_id: String, reason: String },
    /// JSON that has neither record shape (the error of the first shape
    /// tried, serde's text).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl StreamRecord {
    /// The image that describes the item: the new one, else the old one.
    pub fn image(&self) -> Option<&Item> {
        self.dynamodb
            .new_image
            .as_ref()
            .or(self.dynamodb.old_image.as_ref())
    }

    /// The item's `type` attribute, from the new image, else the old one,
    /// else `None`.
    pub fn item_type(&self) -> Option<&str> {
        match self.image()?.get("type")? {
            AttributeValue::S(s) => Some(s),
            _ => None,
        }
    }

    /// A string attribute of the keys (`pk` or `sk`).
    pub fn key_str(&self, name: &str) -> Option<&str> {
        match self.dynamodb.keys.get(name)? {
            AttributeValue::S(s) => Some(s),
            _ => None,
        }
    }

    /// True for a deletion made by DynamoDB's time-to-live process.
    pub fn is_ttl_deletion(&self) -> bool {
        self.kind == ChangeKind::Remove
            && self
                .user_identity
                .as_ref()
                .is_some_and(|u| u.kind == "Service" && u.principal_id == "dynamodb.amazonaws.com")
    }

    /// Decodes an image into a domain type with serde_dynamo.
    pub fn decode_image<T: DeserializeOwned>(image: &Item) -> Result<T, serde_dynamo::Error> {
        serde_dynamo::from_item(image.clone())
    }

    /// From the Lambda event shape.
    pub fn from_lambda(
        record: aws_lambda_events::event::dynamodb::EventRecord,
    ) -> Result<Self, RecordError> {
        let kind = match record.event_name.as_str() {
            "INSERT" => ChangeKind::Insert,
            "MODIFY" => ChangeKind::Modify,
            "REMOVE" => ChangeKind::Remove,
            other => {
                return Err(RecordError::UnknownEventName {
                    event_id: record.event_id,
                    name: other.to_owned(),
                });
            }
        };
        let change = record.change;
        let sequence_number =
            change
                .sequence_number
                .ok_or_else(|| RecordError::NoSequenceNumber {
                    event_id: record.event_id.clone(),
                })?;
        let secs = change.approximate_creation_date_time.timestamp_micros() as f64 / 1e6;
        let non_empty = |item: Item| (!item.is_empty()).then_some(item);
        Ok(Self {
            event_id: record.event_id,
            kind,
            event_version: record.event_version,
            event_source: record.event_source,
            aws_region: Some(record.aws_region).filter(|r| !r.is_empty()),
            event_source_arn: record.event_source_arn,
            user_identity: record.user_identity.map(|u| UserIdentity {
                kind: u.type_,
                principal_id: u.principal_id,
            }),
            dynamodb: StreamData {
                approximate_creation: (secs > 0.0).then_some(secs),
                keys: change.keys,
                new_image: non_empty(change.new_image),
                old_image: non_empty(change.old_image),
                sequence_number,
                size_bytes: Some(change.size_bytes),
                stream_view_type: change.stream_view_type.map(|v| {
                    serde_json::to_value(v)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                }),
            },
        })
    }

    /// From one record's JSON as a file holds it: the Streams API shape
    /// (what `capture` and dead letters write), else the Lambda shape as
    /// `aws_lambda_events` reads it, so that every record the Lambda
    /// adapter accepts is accepted here too. The error is the first shape's.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Self, RecordError> {
        let plain = match Self::deserialize(value) {
            Ok(record) => return Ok(record),
            Err(e) => e,
        };
        match aws_lambda_events::event::dynamodb::EventRecord::deserialize(value) {
            Ok(lambda) => Self::from_lambda(lambda),
            Err(_) => Err(plain.into()),
        }
    }

    /// From the DynamoDB Streams API (`GetRecords`).
    pub fn from_sdk(record: aws_sdk_dynamodbstreams::types::Record) -> Result<Self, RecordError> {
        use aws_sdk_dynamodbstreams::types::OperationType;
        let event_id = record.event_id.unwrap_or_default();
        let kind = match record.event_name {
            Some(OperationType::Insert) => ChangeKind::Insert,
            Some(OperationType::Modify) => ChangeKind::Modify,
            Some(OperationType::Remove) => ChangeKind::Remove,
            other => {
                return Err(RecordError::UnknownEventName {
                    event_id,
                    name: format!("{other:?}"),
                });
            }
        };
        let data = record.dynamodb.ok_or_else(|| RecordError::Image {
            event_id: event_id.clone(),
            reason: "no dynamodb section".to_owned(),
        })?;
        let sequence_number =
            data.sequence_number
                .ok_or_else(|| RecordError::NoSequenceNumber {
                    event_id: event_id.clone(),
                })?;
        Ok(Self {
            kind,
            event_version: record.event_version,
            event_source: record.event_source,
            aws_region: record.aws_region,
            event_source_arn: None,
            user_identity: record.user_identity.map(|u| UserIdentity {
                kind: u.r#type.unwrap_or_default(),
                principal_id: u.principal_id.unwrap_or_default(),
            }),
            dynamodb: StreamData {
                approximate_creation: data.approximate_creation_date_time.map(|t| t.as_secs_f64()),
                keys: data.keys.map(Item::from).unwrap_or_default(),
                new_image: data.new_image.map(Item::from),
                old_image: data.old_image.map(Item::from),
                sequence_number,
                size_bytes: data.size_bytes,
                stream_view_type: data.stream_view_type.map(|v| v.as_str().to_owned()),
            },
            event_id,
        })
    }
}

impl SourceRecord for StreamRecord {
    fn sequence_number(&self) -> &str {
        &self.dynamodb.sequence_number
    }

    fn record_id(&self) -> &str {
        &self.event_id
    }

    fn received_at(&self) -> Option<Timestamp> {
        self.dynamodb
            .approximate_creation
            .and_then(Timestamp::from_epoch_seconds_f64)
    }

    fn raw_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"unserialisable\":\"{e}\"}}"))
    }
}

/// A Lambda DynamoDB event (`{"Records": [...]}`) read straight into
/// [`StreamRecord`]s; used for event files.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamEventFile {
    #[serde(rename = "Records")]
    pub records: Vec<StreamRecord>,
}

/// Fuzz bodies: the cargo-fuzz target `stream_record` (fuzz/) and the
/// proptests below run exactly these. An `Err` is a broken invariant (the
/// fuzz target panics with it); a panic inside is a decoder bug.
#[doc(hidden)]
pub mod fuzz {
    use super::*;
    use crate::error::BrokenInvariant;

    /// Arbitrary bytes as every JSON shape a stream record arrives in: a
    /// Lambda event (through `aws_lambda_events` and [`StreamRecord::from_lambda`]),
    /// a Lambda event file read straight into [`StreamRecord`]s, and one
    /// plain Streams API record (a JSON Lines capture or dead letter).
    pub fn stream_record(data: &[u8]) -> Result<(), BrokenInvariant> {
        if let Ok(event) = serde_json::from_slice::<aws_lambda_events::event::dynamodb::Event>(data)
        {
            for record in event.records {
                if let Ok(record) = StreamRecord::from_lambda(record) {
                    decoded(&record)?;
                }
            }
        }
        if let Ok(file) = serde_json::from_slice::<StreamEventFile>(data) {
            for record in &file.records {
                decoded(record)?;
            }
        }
        if let Ok(record) = serde_json::from_slice::<StreamRecord>(data) {
            decoded(&record)?;
        }
        Ok(())
    }

    /// What processors ask of a record never panics, and its JSON form (what
    /// dead letters and captures store) reads back as the same record.
    fn decoded(record: &StreamRecord) -> Result<(), BrokenInvariant> {
        let _ = (
            record.item_type(),
            record.key_str("pk"),
            record.key_str("sk"),
        );
        let _ = (record.is_ttl_deletion(), record.received_at());
        let json = record.raw_json();
        let back: StreamRecord = serde_json::from_str(&json).map_err(|e| {
            BrokenInvariant(format!(
                "the JSON form of a decoded record does not read back: {e}"
            ))
        })?;
        let same_time = match (
            back.dynamodb.approximate_creation,
            record.dynamodb.approximate_creation,
        ) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= b.abs() * 1e-15,
            (a, b) => a == b,
        };
        let mut back = back;
        back.dynamodb.approximate_creation = record.dynamodb.approximate_creation;
        if back != *record || !same_time {
            return Err(BrokenInvariant(format!(
                "the JSON form of record {:?} reads back differently",
                record.event_id
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixture;

    #[test]
    fn lambda_fixture_decodes_through_aws_lambda_events() {
        let text = fixture("lambda-dynamodb-event.json");
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let records: Vec<StreamRecord> = event
            .records
            .into_iter()
            .map(StreamRecord::from_lambda)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 8);
        let kinds: Vec<_> = records.iter().map(|r| r.kind).collect();
        use ChangeKind::*;
        assert_eq!(
            kinds,
            [
                Insert, Insert, Insert, Insert, Modify, Remove, Remove, Insert
            ]
        );
        let types: Vec<_> = records.iter().map(|r| r.item_type()).collect();
        assert_eq!(
            types,
            [
                Some("group"),
                Some("message"),
                Some("preview"),
                Some("message"),
                Some("message"),
                Some("message"),
                Some("activity"),
                Some("message")
            ]
        );
        let ttl: Vec<_> = records.iter().map(|r| r.is_ttl_deletion()).collect();
        assert_eq!(ttl, [false, false, false, false, false, false, true, false]);
        assert_eq!(records[0].sequence_number(), "4421584500000000017450439092");
        assert_eq!(
            records[0].received_at().map(|t| t.to_string()).as_deref(),
            Some("2025-11-20T10:00:01.000000Z")
        );
        // The REMOVE carries only the old image.
        assert!(records[5].dynamodb.new_image.is_none());
        assert!(records[5].dynamodb.old_image.is_some());
    }

    #[test]
    fn lambda_fixture_decodes_the_same_as_plain_json() {
        let text = fixture("lambda-dynamodb-event.json");
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let plain: StreamEventFile = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        for (lambda, plain) in event.records.into_iter().zip(plain.records) {
            let lambda = StreamRecord::from_lambda(lambda).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(lambda, plain);
        }
    }

    #[test]
    fn every_record_the_lambda_types_accept_reads_from_json_too() {
        // Null `Keys` and images, optional fields missing, and a record the
        // Lambda adapter accepts but cannot convert (an unknown eventName).
        let text = fixture("lambda-dynamodb-forgiving.json");
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}"));
        let raw = value["Records"].as_array().cloned().unwrap_or_default();
        assert_eq!(event.records.len(), raw.len());
        let mut converted = 0;
        for (lambda, raw) in event.records.into_iter().zip(&raw) {
            let from_json = StreamRecord::from_json_value(raw);
            match StreamRecord::from_lambda(lambda) {
                Ok(r) => {
                    converted += 1;
                    assert_eq!(from_json.as_ref().ok(), Some(&r), "{raw}");
                }
                Err(_) => assert!(from_json.is_err(), "{raw}"),
            }
        }
        assert_eq!(converted, 4);
        let nulls = StreamRecord::from_json_value(&raw[2]).unwrap_or_else(|e| panic!("{e}"));
        assert!(nulls.dynamodb.keys.is_empty() && nulls.image().is_none());
    }

    #[test]
    fn getrecords_fixture_decodes_like_the_lambda_shape() {
        let api: serde_json::Value =
            serde_json::from_str(&fixture("dynamodbstreams-getrecords.json"))
                .unwrap_or_else(|e| panic!("{e}"));
        let api: Vec<StreamRecord> =
            serde_json::from_value(api["Records"].clone()).unwrap_or_else(|e| panic!("{e}"));
        let lambda: StreamEventFile = serde_json::from_str(&fixture("lambda-dynamodb-event.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(api.len(), 3);
        for record in &api {
            assert!(record.event_source_arn.is_none());
            let twin = lambda
                .records
                .iter()
                .find(|l| l.event_id == record.event_id)
                .unwrap_or_else(|| panic!("no twin for {}", record.event_id));
            assert_eq!(twin.kind, record.kind);
            assert_eq!(twin.dynamodb.keys, record.dynamodb.keys);
            assert_eq!(twin.dynamodb.new_image, record.dynamodb.new_image);
            assert_eq!(twin.dynamodb.old_image, record.dynamodb.old_image);
            assert_eq!(twin.is_ttl_deletion(), record.is_ttl_deletion());
            assert_eq!(twin.user_identity, record.user_identity);
        }
    }

    #[test]
    fn sdk_records_convert() {
        use aws_sdk_dynamodbstreams::types::{
            AttributeValue as Av, Identity, OperationType, Record, StreamRecord as Sr,
        };
        let record = Record::builder()
            .event_id("e1")
            .event_name(OperationType::Remove)
            .user_identity(
                Identity::builder()
                    .r#type("Service")
                    .principal_id("dynamodb.amazonaws.com")
                    .build(),
            )
            .dynamodb(
                Sr::builder()
                    .keys("pk", Av::S("AGENT#a".into()))
                    .keys("sk", Av::S("PROFILE".into()))
                    .old_image("type", Av::S("agent".into()))
                    .sequence_number("100")
                    .build(),
            )
            .build();
        let record = StreamRecord::from_sdk(record).unwrap_or_else(|e| panic!("{e}"));
        assert!(record.is_ttl_deletion());
        assert_eq!(record.item_type(), Some("agent"));
        assert_eq!(record.key_str("pk"), Some("AGENT#a"));
        assert_eq!(record.sequence_number(), "100");
        // Its JSON form reads back as itself.
        let back: StreamRecord =
            serde_json::from_str(&record.raw_json()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, record);
    }
}

/// The decoder under arbitrary input. Each property runs the fuzz body
/// ([`fuzz::stream_record`]) that `fuzz/` runs for long under libFuzzer.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::testing::fixture;
    use proptest::prelude::*;

    const FIXTURES: [&str; 2] = [
        "lambda-dynamodb-event.json",
        "dynamodbstreams-getrecords.json",
    ];

    fn holds(data: &[u8]) -> Result<(), TestCaseError> {
        fuzz::stream_record(data).map_err(|e| TestCaseError::fail(e.0))
    }

    /// A Streams API record with arbitrary keys and string, number and
    /// binary attributes.
    fn any_record() -> impl Strategy<Value = serde_json::Value> {
        let value = prop_oneof![
            ".{0,30}".prop_map(|s| serde_json::json!({ "S": s })),
            any::<i64>().prop_map(|n| serde_json::json!({ "N": n.to_string() })),
            any::<bool>().prop_map(|b| serde_json::json!({ "BOOL": b })),
            prop::collection::vec(".{0,8}", 0..3).prop_map(|l| serde_json::json!({ "L": l.into_iter().map(|s| serde_json::json!({"S": s})).collect::<Vec<_>>() })),
        ];
        let image = prop::collection::btree_map(".{1,10}", value, 0..5);
        (
            ".{0,20}",
            prop::sample::select(vec!["INSERT", "MODIFY", "REMOVE"]),
            ".{0,20}",
            ".{0,20}",
            prop::option::of(image.clone()),
            prop::option::of(image),
            prop::option::of(0.0f64..4.0e9),
        )
            .prop_map(|(id, name, pk, seq, new, old, at)| {
                let mut data = serde_json::json!({
                    "Keys": { "pk": { "S": pk }, "sk": { "S": "GROUP" } },
                    "SequenceNumber": seq,
                });
                if let Some(new) = new {
                    data["NewImage"] = serde_json::json!(new);
                }
                if let Some(old) = old {
                    data["OldImage"] = serde_json::json!(old);
                }
                if let Some(at) = at {
                    data["ApproximateCreationDateTime"] = serde_json::json!(at);
                }
                serde_json::json!({ "eventID": id, "eventName": name, "dynamodb": data })
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes as a stream record, an event file or a Lambda
        /// event never panic the decoder.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            holds(&bytes)?;
        }

        /// A real event (Lambda shape, Streams API shape) with one byte
        /// changed, then cut anywhere, never panics the decoder.
        #[test]
        fn damaged_events_never_panic(which in 0usize..2, at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let mut bytes = fixture(FIXTURES[which]).into_bytes();
            let i = at.index(bytes.len().max(1));
            if let Some(b) = bytes.get_mut(i) {
                *b = byte;
            }
            holds(&bytes)?;
            bytes.truncate(cut.index(bytes.len().max(1)));
            holds(&bytes)?;
        }

        /// Well-formed records with arbitrary content decode, and their JSON
        /// form reads back as the same record.
        #[test]
        fn arbitrary_records_decode_and_read_back(record in any_record()) {
            let text = record.to_string();
            prop_assert!(serde_json::from_str::<StreamRecord>(&text).is_ok(), "{}", text);
            holds(text.as_bytes())?;
            let file = serde_json::json!({ "Records": [record] }).to_string();
            holds(file.as_bytes())?;
        }
    }

    #[test]
    fn the_fixtures_pass_the_fuzz_body() {
        for name in FIXTURES {
            let text = fixture(name);
            assert_eq!(fuzz::stream_record(text.as_bytes()), Ok(()), "{name}");
        }
    }
}
