//! `streamfold redrive` against the local endpoint: a batch the real
//! message-groups function fails on (DynamoDB refusing its transactions),
//! the on-failure message Lambda then sends (the local endpoint has no event
//! source mappings, so the test writes it as Lambda does: a
//! `DDBStreamBatchInfo` in an SQS message and in an S3 object), redriven
//! from the queue, a file and S3; the table ends exactly as a run that never
//! failed, a second redrive changes nothing, and a range the stream does not
//! hold is reported as lost.

use std::time::Duration;

use serde_json::{Value, json};
use streamfold::chat::{self, NewMessage};
use streamfold::pipeline::{Pipeline, batch_backoff};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp};
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;
use streamfold_tests::builders::user;
use streamfold_tests::runtime_api::{
    Answer, Fault, FaultProxy, Function, RuntimeApi, build_binary, function_env, table_event,
};
use streamfold_tests::{TestTable, endpoint_url, fixture, kinesis, table};

use streamfold_tests::cli::run;

const GROUP: &str = "redrive-group";

/// A conversation of five messages, written as the app writes it.
async fn write_sources(t: &TestTable) {
    let (a, b) = (user("rd-u1", "one"), user("rd-u2", "two"));
    let base = Timestamp::parse("2026-11-20T09:00:00Z").expect("the timestamp parses");
    let message = |i: usize| NewMessage {
        group: GroupId::new(GROUP).expect("the group id is valid"),
        id: MessageId::new(format!("rd-m{i}")).expect("the message id is valid"),
        at: base.plus_seconds(i as i64 * 60),
        sender: if i.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        },
        text: format!("message {i}"),
    };
    chat::create_group(t.exec(), [a.clone(), b.clone()], base, &message(0))
        .await
        .expect("the group is created");
    for i in 1..5 {
        chat::post(t.exec(), &message(i))
            .await
            .expect("the message is posted");
    }
}

/// The views of a table (dead letters left out).
async fn views(t: &TestTable) -> Vec<Value> {
    t.snapshot_without(&["deadletter"])
        .await
        .into_values()
        .collect()
}

/// What the event source mapping sends its on-failure destination when it
/// gives up on `records` of `shard`.
fn on_failure_message(records: &[StreamRecord], shard: &str, arn: &str) -> Value {
    let first = &records[0];
    let last = &records[records.len() - 1];
    let at = |r: &StreamRecord| {
        r.dynamodb
            .approximate_creation
            .and_then(Timestamp::from_epoch_seconds_f64)
            .map(|t| t.to_string())
    };
    json!({
        "requestContext": {
            "requestId": "5e7a0c1d-2f3b-4a5c-9d6e-7f8091a2b3c4",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:streamfold-message-groups",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 11
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "version": "1.0",
        "timestamp": Timestamp::now().to_string(),
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": first.dynamodb.sequence_number,
            "endSequenceNumber": last.dynamodb.sequence_number,
            "approximateArrivalOfFirstRecord": at(first),
            "approximateArrivalOfLastRecord": at(last),
            "batchSize": records.len(),
            "streamArn": arn
        }
    })
}

#[tokio::test]
async fn redriving_lambdas_on_failure_messages_restores_what_a_failure_free_run_gives() {
    // The run that never failed.
    let reference = table("redrive-ref").await;
    write_sources(&reference).await;
    let records = reference.stream_records().await;
    Pipeline::new(reference.ctx().clone(), &[])
        .run_table_batch_retrying(&records, 3, batch_backoff())
        .await;
    let want = views(&reference).await;
    assert_eq!(
        want.iter().filter(|v| v["type"] == "preview").count(),
        2,
        "{want:?}"
    );
    drop(reference);

    // The same sources; the function fails on its batch, every attempt.
    let t = table("redrive").await;
    write_sources(&t).await;
    let arn = t.app.stream_arn().await.expect("the table has a stream");
    let shards = streamfold::tail::list_shards(&t.app.streams(), &arn)
        .await
        .expect("the shards are listed");
    assert_eq!(shards.len(), 1);
    let records = t.stream_records().await;
    let proxy = FaultProxy::start(&endpoint_url())
        .await
        .expect("the proxy starts");
    proxy.set_fault(Some(Fault::on("TransactWriteItems")));
    let binary = build_binary("message-groups", false).expect("the binary builds");
    let api = RuntimeApi::start()
        .await
        .expect("the local Runtime API starts");
    let mut env = function_env(&t.name);
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", proxy.url.clone()));
    env.push(("AWS_MAX_ATTEMPTS", "1".to_owned()));
    let mut function = Function::start(&binary, &api, &env).expect("the function binary starts");
    let answer = api
        .invoke(&table_event(&records, &arn), Duration::from_secs(120))
        .await
        .expect("the function answers");
    let Answer::Response(body) = answer else {
        panic!("the function answered an error")
    };
    let failed: Value = serde_json::from_str(&body).expect("the text is JSON of that shape");
    let first_failed = failed["batchItemFailures"][0]["itemIdentifier"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing failed: {failed}"))
        .to_owned();
    let _ = function.child.kill().await;
    assert_eq!(
        views(&t)
            .await
            .iter()
            .filter(|v| v["type"] == "preview")
            .count(),
        0
    );

    // Lambda retries from the first failure until it gives up, then sends
    // the range from there to the end of the batch.
    let from = records
        .iter()
        .position(|r| r.dynamodb.sequence_number == first_failed)
        .unwrap_or_else(|| panic!("{first_failed} is not in the batch"));
    let message = on_failure_message(&records[from..], &shards[0], &arn);

    // The failure queue, as the template creates it.
    let sqs = aws_sdk_sqs::Client::new(&t.app.sdk);
    let queue = sqs
        .create_queue()
        .queue_name(format!("{}-failures", t.name))
        .send()
        .await
        .expect("CreateQueue is answered")
        .queue_url
        .unwrap_or_default();
    sqs.send_message()
        .queue_url(&queue)
        .message_body(message.to_string())
        .send()
        .await
        .expect("SendMessage is answered");

    // A dry run: what would be fetched, the writes on stdout, nothing written,
    // the message kept.
    let (code, stdout, stderr) = run(&t.name, &["redrive", "--queue", &queue, "--dry-run"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("would fetch"), "{stderr}");
    assert!(stdout.contains("TransactWriteItems"), "{stdout}");
    assert_eq!(
        views(&t)
            .await
            .iter()
            .filter(|v| v["type"] == "preview")
            .count(),
        0
    );

    // The redrive: every record settled, the message deleted, the table as
    // the run that never failed.
    let (code, stdout, stderr) = run(&t.name, &["redrive", "--queue", &queue, "--json"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["messages_deleted"], 1, "{report}");
    assert_eq!(report["messages_kept"], 0, "{report}");
    let batch = &report["batches"][0];
    assert_eq!(batch["fetched"], records.len() - from, "{report}");
    assert_eq!(batch["processors"], json!(["message-groups"]), "{report}");
    assert_eq!(batch["failed"], 0, "{report}");
    assert!(batch["lost"].is_null(), "{report}");
    assert_eq!(views(&t).await, want);
    let left = sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("ReceiveMessage is answered");
    assert!(left.messages.unwrap_or_default().is_empty());

    // The same range again, from a file and from S3: nothing changes.
    let file = std::env::temp_dir().join(format!("{}-onfailure.json", t.name));
    std::fs::write(&file, message.to_string()).expect("the file is written");
    let f = file.display().to_string();
    let (code, stdout, stderr) = run(&t.name, &["redrive", f.as_str()]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(views(&t).await, want);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&t.app.sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("{}-failures", t.name).to_ascii_lowercase();
    streamfold_tests::s3::put_object(
        &s3,
        &bucket,
        "onfailure/2026/11/20/batch-1.json",
        message.to_string().into_bytes(),
    )
    .await;
    let url = format!("s3://{bucket}/onfailure/");
    let (code, stdout, stderr) = run(&t.name, &["redrive", "--s3", &url, "--json"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["batches"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["totals"]["applied"], 0, "{report}");
    assert_eq!(views(&t).await, want);

    // A range the stream does not hold (the local endpoint never trims: a
    // range past its records stands for one): reported lost, with the advice.
    let mut lost = message.clone();
    lost["DDBStreamBatchInfo"]["startSequenceNumber"] = json!("999999999999999999999990");
    lost["DDBStreamBatchInfo"]["endSequenceNumber"] = json!("999999999999999999999999");
    std::fs::write(&file, lost.to_string()).expect("the file is written");
    let (code, stdout, stderr) = run(&t.name, &["redrive", f.as_str()]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("LOST"), "{stdout}");
    assert!(
        stdout.contains(&format!("{} records", records.len() - from)),
        "{stdout}"
    );
    assert!(stdout.contains("rebuild check --repair"), "{stdout}");
    // A replay capture is no on-failure record: said so, exit 1.
    std::fs::write(
        &file,
        serde_json::to_string(&records[0]).unwrap_or_default(),
    )
    .expect("it serialises to JSON");
    let (code, stdout, _) = run(&t.name, &["redrive", f.as_str()]).await;
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("not a Lambda on-failure record"),
        "{stdout}"
    );
    let _ = std::fs::remove_file(&file);
}

/// Every record of a one-shard Kinesis stream, from the trim horizon: its
/// shard and the records.
async fn kinesis_records(
    k: &aws_sdk_kinesis::Client,
    stream: &str,
) -> (String, Vec<KinesisRecord>) {
    let shard = kinesis::shards(k, stream).await[0].shard_id.clone();
    let arn = kinesis::stream_arn(k, stream).await;
    let records = kinesis::shard_records(k, stream, &shard, Some(&arn)).await;
    (shard, records)
}

#[tokio::test]
async fn a_kinesis_batch_info_is_redriven_from_the_agent_event_stream() {
    let t = table("redrive-kin").await;
    let k = aws_sdk_kinesis::Client::new(&t.app.sdk);
    let stream = t.name.clone();
    kinesis::create_stream(&k, &stream, 1).await;
    kinesis::put_agent_events(&k, &stream, &fixture("connect-agent-events.jsonl")).await;
    let (shard, records) = kinesis_records(&k, &stream).await;
    assert!(records.len() > 4);
    let agents = [streamfold::pipeline::ProcessorKind::AgentActivity];

    // The run that never failed: every record, in a table of its own.
    let reference = table("redrive-kin-ref").await;
    Pipeline::new(reference.ctx().clone(), &agents)
        .run_kinesis_batch_retrying(&records, 3, batch_backoff())
        .await;
    let want = views(&reference).await;
    drop(reference);

    // The function processed the first batch; Lambda gave up on the second.
    let split = 3;
    Pipeline::new(t.ctx().clone(), &agents)
        .run_kinesis_batch_retrying(&records[..split], 3, batch_backoff())
        .await;
    assert_ne!(views(&t).await, want);
    let failed = &records[split..];
    let at = |r: &KinesisRecord| r.approximate_arrival.map(|t| t.to_string());
    let message = json!({
        "requestContext": {
            "requestId": "7b2c3d4e-1111-4f60-9bac-1d2e3f4a5b6c",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:stack-AgentActivityFunction-1A2B3C",
            "condition": "RecordAgeExceeded",
            "approximateInvokeCount": 3
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": Timestamp::now().to_string(),
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": failed[0].sequence_number,
            "endSequenceNumber": failed[failed.len() - 1].sequence_number,
            "approximateArrivalOfFirstRecord": at(&failed[0]),
            "approximateArrivalOfLastRecord": at(&failed[failed.len() - 1]),
            "batchSize": failed.len(),
            "streamArn": failed[0].event_source_arn
        }
    });
    let file = std::env::temp_dir().join(format!("{}-kinesis-onfailure.json", t.name));
    std::fs::write(&file, message.to_string()).expect("the file is written");
    let f = file.display().to_string();
    let (code, stdout, stderr) = run(&t.name, &["redrive", f.as_str(), "--json"]).await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        report["batches"][0]["processors"],
        json!(["agent-activity"]),
        "{report}"
    );
    assert_eq!(report["batches"][0]["fetched"], failed.len(), "{report}");
    assert_eq!(views(&t).await, want);

    // status sees the agent event stream's shard: no tail checkpoint there
    // (Lambda read it), every record after the trim horizon.
    let (_, stdout, stderr) =
        run(&t.name, &["status", "--json", "--kinesis-stream", &stream]).await;
    let status: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let kinesis: Vec<&Value> = status["shards"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["stream"] == "kinesis").collect())
        .unwrap_or_default();
    assert_eq!(kinesis.len(), 1, "{status}");
    assert_eq!(kinesis[0]["shard"], shard.as_str());
    assert_eq!(kinesis[0]["records_behind"], records.len(), "{status}");
    assert!(kinesis[0]["oldest_age_seconds"].is_i64(), "{status}");
    let _ = k.delete_stream().stream_name(&stream).send().await;
}
