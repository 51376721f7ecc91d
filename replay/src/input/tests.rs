use serde_json::Value;
use streamfold_shared::record::StreamRecord;

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
    let mut reader = KinesisReader::open(&path, Format::Auto).unwrap_or_else(|e| panic!("{e:#}"));
    let batch = reader.next_batch(10).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(batch.len(), 1);
    let set_aside = reader.take_undecodable();
    assert_eq!(set_aside.len(), 1);
    assert_eq!(set_aside[0].place, "kin.json:1, record 2");
}
