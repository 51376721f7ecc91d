//! The built Lambda binaries, started as Lambda starts them against a local
//! Runtime API, invoked with real event JSON; the table is the local endpoint.

use std::time::Duration;

use serde_json::{Value, json};
use streamfold::chat::NewMessage;
use streamfold::pipeline::restore_sources;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::record::StreamEventFile;
use streamfold_tests::runtime_api::{Answer, Function, RuntimeApi, build_binary, function_env};
use streamfold_tests::{fixture, table};

const WAIT: Duration = Duration::from_secs(60);

fn response_json(answer: Answer) -> Value {
    match answer {
        Answer::Response(body) => serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {body}")),
        Answer::Error(body) => panic!("the function answered an error: {body}"),
    }
}

#[tokio::test]
async fn message_groups_binary_answers_batch_item_failures() {
    let binary = build_binary("message-groups", false).unwrap_or_else(|e| panic!("{e}"));
    let t = table("rt-mg").await;
    let event_text = fixture("lambda-dynamodb-event.json");
    let file: StreamEventFile = serde_json::from_str(&event_text).unwrap_or_else(|e| panic!("{e}"));
    restore_sources(t.exec(), &file.records)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let api = RuntimeApi::start().await.unwrap_or_else(|e| panic!("{e}"));
    let mut function =
        Function::start(&binary, &api, &function_env(&t.name)).unwrap_or_else(|e| panic!("{e}"));

    // The fixture: everything processed, the broken record dead-lettered.
    let answer = api
        .invoke(&event_text, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first_response = function.started.elapsed();
    assert_eq!(response_json(answer), json!({"batchItemFailures": []}));
    assert_eq!(t.items_of_type("preview").await.len(), 2);
    assert_eq!(t.items_of_type("deadletter").await.len(), 1);

    // A batch whose message has no group yet: a transient failure, reported
    // by sequence number so Lambda retries from it.
    let orphan = NewMessage {
        group: GroupId::new("no-such-group").unwrap_or_else(|e| panic!("{e}")),
        id: MessageId::new("m1").unwrap_or_else(|e| panic!("{e}")),
        at: Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or_else(|e| panic!("{e}")),
        sender: message_groups::Participant {
            user_uuid: UserId::new("u1").unwrap_or_else(|e| panic!("{e}")),
            user_handle: "u1".into(),
            user_display_name: "U".into(),
        },
        text: "hello".into(),
    };
    t.exec()
        .batch_put(vec![orphan.item()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let records = t.stream_records().await;
    let orphan_record = records
        .iter()
        .find(|r| r.key_str("pk") == Some("MSG#no-such-group"))
        .unwrap_or_else(|| panic!("no stream record for the orphan"));
    let mut lambda_record = serde_json::to_value(orphan_record).unwrap_or_default();
    lambda_record["eventSourceARN"] =
        json!("arn:aws:dynamodb:us-east-1:012345678901:table/t/stream/2026-11-20T00:00:00.000");
    let event = json!({ "Records": [lambda_record] }).to_string();
    let answer = api
        .invoke(&event, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        response_json(answer),
        json!({"batchItemFailures": [{"itemIdentifier": orphan_record.dynamodb.sequence_number}]})
    );

    // An empty batch is a success.
    let answer = api
        .invoke(r#"{"Records": []}"#, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response_json(answer), json!({"batchItemFailures": []}));

    eprintln!(
        "message-groups (debug build): first response {:?} after start, peak RSS {:?} kB",
        first_response,
        function.peak_rss_kb()
    );
    let _ = function.child.kill().await;
    t.drop_table().await;
}
