//! The built Lambda binaries, started as Lambda starts them against a local
//! Runtime API, invoked with real event JSON; the table is the local endpoint.
//! Every function binary is here: message-groups and extensions (table
//! stream), agent-activity (Kinesis), extension-lookup (contact flow) and
//! reconcile (schedule, against the local Connect stub). Transient failures
//! are provoked by data (a message before its group) or by the fault proxy
//! (DynamoDB answering 500), and the exact `batchItemFailures` is checked.

use std::time::Duration;

use agent_activity::synth;
use extensions::model::{AGENTS, WAITING};
use serde_json::{Value, json};
use streamfold::chat::NewMessage;
use streamfold::pipeline::restore_sources;
use streamfold_shared::attrs::sv;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::record::{StreamEventFile, StreamRecord};
use streamfold_tests::connect_stub::ConnectStub;
use streamfold_tests::runtime_api::{
    Answer, Fault, FaultProxy, Function, RuntimeApi, build_binary, function_env,
    kinesis_lambda_records,
};
use streamfold_tests::{TestTable, fixture, table};

const WAIT: Duration = Duration::from_secs(120);
const STREAM_ARN: &str =
    "arn:aws:dynamodb:us-east-1:012345678901:table/t/stream/2026-11-20T00:00:00.000";

fn response_json(answer: Answer) -> Value {
    match answer {
        Answer::Response(body) => serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {body}")),
        Answer::Error(body) => panic!("the function answered an error: {body}"),
    }
}

/// A function binary running against its own Runtime API.
struct Running {
    api: RuntimeApi,
    function: Function,
}

impl Running {
    /// Builds (debug) and starts `package`'s binary with the table's
    /// environment, `AWS_ENDPOINT_URL` replaced by `endpoint` if given, and
    /// `extra` variables.
    async fn start(
        package: &str,
        t: &TestTable,
        endpoint: Option<&str>,
        extra: &[(&'static str, String)],
    ) -> Self {
        let binary = build_binary(package, false).unwrap_or_else(|e| panic!("{e}"));
        let api = RuntimeApi::start().await.unwrap_or_else(|e| panic!("{e}"));
        let mut env = function_env(&t.name);
        if let Some(url) = endpoint {
            env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
            env.push(("AWS_ENDPOINT_URL", url.to_owned()));
        }
        env.extend(extra.iter().cloned());
        let function = Function::start(&binary, &api, &env).unwrap_or_else(|e| panic!("{e}"));
        Self { api, function }
    }

    async fn invoke(&self, event: &str) -> Value {
        response_json(
            self.api
                .invoke(event, WAIT)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    async fn stop(mut self) {
        let _ = self.function.child.kill().await;
    }
}

/// The Lambda DynamoDB Streams event of `records`.
fn table_event(records: &[&StreamRecord]) -> String {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["eventSourceARN"] = json!(STREAM_ARN);
            v
        })
        .collect();
    json!({ "Records": records }).to_string()
}

fn kinesis_event(records: &[Value]) -> String {
    json!({ "Records": records }).to_string()
}

fn failures(seqs: &[&str]) -> Value {
    let items: Vec<Value> = seqs.iter().map(|s| json!({"itemIdentifier": s})).collect();
    json!({ "batchItemFailures": items })
}

fn no_failures() -> Value {
    json!({"batchItemFailures": []})
}

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL is not set"))
}

#[tokio::test]
async fn message_groups_binary_answers_batch_item_failures() {
    let t = table("rt-mg").await;
    let event_text = fixture("lambda-dynamodb-event.json");
    let file: StreamEventFile = serde_json::from_str(&event_text).unwrap_or_else(|e| panic!("{e}"));
    restore_sources(t.exec(), &file.records)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = Running::start("message-groups", &t, None, &[]).await;

    // The fixture: everything processed, the broken record dead-lettered.
    assert_eq!(run.invoke(&event_text).await, no_failures());
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
    let seq = orphan_record.dynamodb.sequence_number.clone();
    assert_eq!(
        run.invoke(&table_event(&[orphan_record])).await,
        failures(&[seq.as_str()])
    );

    // An empty batch is a success.
    assert_eq!(run.invoke(r#"{"Records": []}"#).await, no_failures());
    run.stop().await;
    t.drop_table().await;
}

/// The EMF documents (lines with `_aws`) a function wrote on its stdout.
fn emf_lines(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

#[tokio::test]
async fn stream_functions_write_emf_metrics_of_every_batch() {
    let t = table("rt-emf").await;
    let event_text = fixture("lambda-dynamodb-event.json");
    let file: StreamEventFile = serde_json::from_str(&event_text).unwrap_or_else(|e| panic!("{e}"));
    restore_sources(t.exec(), &file.records)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let delivered = serde_json::from_str::<Value>(&event_text)
        .ok()
        .and_then(|v| v["Records"].as_array().map(Vec::len))
        .unwrap_or_default();
    let log = std::env::temp_dir().join(format!("{}-stdout.log", t.name));
    let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let binary = build_binary("message-groups", false).unwrap_or_else(|e| panic!("{e}"));
    let api = RuntimeApi::start().await.unwrap_or_else(|e| panic!("{e}"));
    let env = function_env(&t.name);
    let mut function = Function::start_with_stdout(&binary, &api, &env, Some(out))
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = api
        .invoke(&event_text, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response_json(answer), no_failures());

    // One EMF document per batch, written before the answer.
    let docs = emf_lines(&log);
    assert_eq!(docs.len(), 1, "{docs:?}");
    let doc = &docs[0];
    let cw = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(cw["Namespace"], "Streamfold");
    assert_eq!(cw["Dimensions"], json!([["Function", "Processor"]]));
    assert_eq!(doc["Function"], "message-groups");
    assert_eq!(doc["Processor"], "message-groups");
    let names: Vec<&str> = cw["Metrics"]
        .as_array()
        .map(|m| m.iter().filter_map(|d| d["Name"].as_str()).collect())
        .unwrap_or_default();
    for name in [
        "Records",
        "RecordsApplied",
        "RecordsNoOp",
        "RecordsIgnored",
        "RecordsDeadLettered",
        "RecordsFailed",
        "BatchDuration",
        "DynamoDBRequests",
        "DynamoDBReadRequests",
        "DynamoDBWriteRequests",
        "OldestRecordAge",
    ] {
        assert!(names.contains(&name), "{name} is not declared: {names:?}");
        assert!(doc[name].is_number(), "{name} has no value");
    }
    let n = |name: &str| doc[name].as_f64().unwrap_or(-1.0);
    assert_eq!(n("Records"), delivered as f64);
    let outcomes = n("RecordsApplied")
        + n("RecordsNoOp")
        + n("RecordsIgnored")
        + n("RecordsDeadLettered")
        + n("RecordsFailed");
    assert_eq!(outcomes, n("Records"), "every record has one outcome");
    assert_eq!(n("RecordsDeadLettered"), 1.0);
    assert_eq!(n("RecordsFailed"), 0.0);
    assert!(n("RecordsApplied") >= 1.0, "{doc}");
    assert!(n("DynamoDBWriteRequests") >= 1.0);
    assert!(n("DynamoDBReadRequests") >= 1.0);
    assert_eq!(
        n("DynamoDBRequests"),
        n("DynamoDBReadRequests") + n("DynamoDBWriteRequests")
    );
    // The fixture's records arrived in the stream long before now.
    assert!(n("OldestRecordAge") > 86_400_000.0);
    assert!(n("BatchDuration") > 0.0);

    // A second batch that fails: its own document, the failure counted.
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
    let _ = api
        .invoke(&table_event(&[orphan_record]), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let docs = emf_lines(&log);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["Records"], 1.0);
    assert_eq!(docs[1]["RecordsFailed"], 1.0);
    // No data in the dimensions or values: only the declared figures.
    let keys: Vec<&String> = docs[1]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert!(
        keys.iter().all(|k| *k == "_aws"
            || *k == "Function"
            || *k == "Processor"
            || names.contains(&k.as_str())),
        "{keys:?}"
    );
    let _ = function.child.kill().await;
    let _ = std::fs::remove_file(&log);
    t.drop_table().await;
}

/// A waiting agent profile, as reconcile or agent-activity write it.
fn waiting_profile(id: &str, since: &str) -> Item {
    Item::from([
        ("pk".to_owned(), sv(format!("AGENT#{id}"))),
        ("sk".to_owned(), sv("PROFILE")),
        ("type".to_owned(), sv("agent")),
        (
            "agent_arn".to_owned(),
            sv(format!(
                "arn:aws:connect:us-east-1:012345678901:instance/aaaaaaaa-bbbb-cccc-dddd-111111111111/agent/{id}"
            )),
        ),
        ("username".to_owned(), sv(format!("user-{id}"))),
        ("gsi1pk".to_owned(), sv(WAITING)),
        ("gsi1sk".to_owned(), sv(format!("{since}#{id}"))),
        ("gsi2pk".to_owned(), sv(AGENTS)),
        ("gsi2sk".to_owned(), sv(format!("user-{id}"))),
    ])
}

async fn extension_of(t: &TestTable, agent: &str) -> Option<String> {
    t.items_of_type("agent")
        .await
        .iter()
        .find(|p| p["pk"] == format!("AGENT#{agent}"))
        .and_then(|p| p["extension"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn extensions_binary_assigns_and_reports_the_agent_whose_write_failed() {
    let t = table("rt-ext").await;
    // Extensions 1 to 9.
    let spec = extensions::init::PoolSpec::new(1, "0").unwrap_or_else(|e| panic!("{e}"));
    extensions::init::init(t.exec(), &spec, 4, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = t.stream_records().await.len();
    t.exec()
        .batch_put(vec![
            waiting_profile("rt-a", "2026-11-20T08:00:00.000000Z"),
            waiting_profile("rt-b", "2026-11-20T08:00:01.000000Z"),
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let all = t.stream_records().await;
    let fresh: Vec<&StreamRecord> = all[seen..].iter().collect();
    seen = all.len();
    assert_eq!(fresh.len(), 2);
    let b_seq = fresh
        .iter()
        .find(|r| r.key_str("pk") == Some("AGENT#rt-b"))
        .map(|r| r.dynamodb.sequence_number.clone())
        .unwrap_or_else(|| panic!("no record of rt-b"));

    // DynamoDB fails every write of agent rt-b: its record is reported, rt-a's is not.
    let proxy = FaultProxy::start(&endpoint())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    proxy.set_fault(Some(Fault::on_body("TransactWriteItems", "AGENT#rt-b")));
    let run = Running::start(
        "extensions",
        &t,
        Some(&proxy.url),
        &[("AWS_MAX_ATTEMPTS", "1".to_owned())],
    )
    .await;
    // Records of the pool (ext items) are not its business: ignored, no failure.
    let pool_records: Vec<&StreamRecord> = all[..3.min(all.len())].iter().collect();
    assert_eq!(run.invoke(&table_event(&pool_records)).await, no_failures());

    let event = table_event(&fresh);
    assert_eq!(run.invoke(&event).await, failures(&[b_seq.as_str()]));
    assert!(proxy.injected() > 0);
    let a_first = extension_of(&t, "rt-a").await;
    assert!(a_first.is_some());
    assert_eq!(extension_of(&t, "rt-b").await, None);

    // Lambda retries the batch; DynamoDB is well again.
    proxy.set_fault(None);
    assert_eq!(run.invoke(&event).await, no_failures());
    // rt-a keeps its extension; rt-b gets the other of the two lowest.
    let a = extension_of(&t, "rt-a").await;
    let b = extension_of(&t, "rt-b").await;
    assert_eq!(a, a_first);
    let mut both = [a.unwrap_or_default(), b.unwrap_or_default()];
    both.sort();
    assert_eq!(both, ["1", "2"]);

    // Its own assignments come back through the stream: ignored.
    let all = t.stream_records().await;
    let own: Vec<&StreamRecord> = all[seen..].iter().collect();
    assert!(!own.is_empty());
    let before = t.snapshot().await;
    assert_eq!(run.invoke(&table_event(&own)).await, no_failures());
    assert_eq!(t.snapshot().await, before);
    run.stop().await;
    t.drop_table().await;
}

#[tokio::test]
async fn agent_activity_binary_folds_the_fixture_and_generated_batches() {
    let t = table("rt-aa").await;
    let proxy = FaultProxy::start(&endpoint())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = Running::start(
        "agent-activity",
        &t,
        Some(&proxy.url),
        &[("AWS_MAX_ATTEMPTS", "1".to_owned())],
    )
    .await;

    // The fixture: three events folded, the fourth (not JSON) dead-lettered.
    assert_eq!(
        run.invoke(&fixture("lambda-kinesis-event.json")).await,
        no_failures()
    );
    assert_eq!(t.items_of_type("activity").await.len(), 3);
    assert_eq!(t.items_of_type("deadletter").await.len(), 1);

    // A generated day of 3 agents, in Lambda batches of 100.
    let day_start = 1_795_046_400_000; // 2026-11-19T00:00:00Z
    let events = synth::day(3, 7, day_start);
    let records = kinesis_lambda_records(&events, 1_000);
    let history = events
        .iter()
        .filter(|e| e["EventType"] != "HEART_BEAT")
        .count();
    for batch in records.chunks(100) {
        assert_eq!(run.invoke(&kinesis_event(batch)).await, no_failures());
    }
    assert_eq!(t.items_of_type("activity").await.len(), 3 + history);
    let after_day = t.snapshot().await;

    // The next day's first batch while DynamoDB cannot load state: every
    // record fails, reported by sequence number in delivery order.
    let next = synth::day(3, 8, day_start + 86_400_000);
    let next_records = kinesis_lambda_records(&next[..next.len().min(40)], 100_000);
    let seqs: Vec<String> = next_records
        .iter()
        .map(|r| {
            r["kinesis"]["sequenceNumber"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let seq_refs: Vec<&str> = seqs.iter().map(String::as_str).collect();
    proxy.set_fault(Some(Fault::on("BatchGetItem")));
    let event = kinesis_event(&next_records);
    assert_eq!(run.invoke(&event).await, failures(&seq_refs));
    assert_eq!(
        t.snapshot().await,
        after_day,
        "a failed batch writes nothing"
    );

    // Retried when DynamoDB is well: all folded.
    proxy.set_fault(None);
    assert_eq!(run.invoke(&event).await, no_failures());
    assert!(t.items_of_type("activity").await.len() > 3 + history);
    run.stop().await;
    t.drop_table().await;
}

#[tokio::test]
async fn extension_lookup_binary_answers_connect_a_flat_string_map() {
    let t = table("rt-lookup").await;
    let agent = "rt-agent-1";
    let arn = format!(
        "arn:aws:connect:us-east-1:012345678901:instance/aaaaaaaa-bbbb-cccc-dddd-111111111111/agent/{agent}"
    );
    let ext = Item::from([
        ("pk".to_owned(), sv("EXT#0042")),
        ("sk".to_owned(), sv("EXT")),
        ("type".to_owned(), sv("ext")),
        ("extension".to_owned(), sv("0042")),
        ("agent_id".to_owned(), sv(agent)),
        ("agent_arn".to_owned(), sv(arn.as_str())),
        ("username".to_owned(), sv("ada")),
        ("assigned_at".to_owned(), sv("2026-11-20T08:00:00.000000Z")),
    ]);
    let profile = Item::from([
        ("pk".to_owned(), sv(format!("AGENT#{agent}"))),
        ("sk".to_owned(), sv("PROFILE")),
        ("type".to_owned(), sv("agent")),
        ("agent_arn".to_owned(), sv(arn.as_str())),
        ("username".to_owned(), sv("ada")),
        ("extension".to_owned(), sv("0042")),
        ("status".to_owned(), sv("Available")),
    ]);
    t.exec()
        .batch_put(vec![ext, profile])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = Running::start("extension-lookup", &t, None, &[]).await;

    // The contact flow's event asks for "42": agent found.
    let answer = run
        .invoke(&fixture("connect-contact-flow-event.json"))
        .await;
    assert_eq!(
        answer,
        json!({
            "found": "true",
            "extension": "0042",
            "agent_id": agent,
            "agent_arn": arn,
            "username": "ada",
            "status": "Available",
            "pk": "0042",
            "sk": "agentID",
            "sk_value": "ada"
        })
    );
    // A flow built for the awsconnect-extensions Lambda: `pk` in, the
    // username as `sk_value` out.
    let old_flow = json!({
        "Details": {
            "ContactData": {"ContactId": "c-1", "Channel": "VOICE"},
            "Parameters": {"pk": "0042"}
        },
        "Name": "ContactFlowEvent"
    });
    let old_answer = run.invoke(&old_flow.to_string()).await;
    assert_eq!(old_answer["sk_value"], json!("ada"), "{old_answer}");
    assert_eq!(old_answer["pk"], json!("0042"), "{old_answer}");
    // Connect needs a flat map of strings.
    let flat = answer
        .as_object()
        .is_some_and(|m| m.values().all(Value::is_string));
    assert!(flat, "{answer}");

    // Unknown and malformed extensions: found=false with a reason, no error.
    let ask = |x: Value| {
        json!({"Details": {"Parameters": {"extension": x}}, "Name": "ContactFlowEvent"}).to_string()
    };
    assert_eq!(
        run.invoke(&ask(json!("43"))).await,
        json!({"found": "false", "reason": "unknown", "extension": "0043"})
    );
    assert_eq!(
        run.invoke(&ask(json!("4x"))).await,
        json!({"found": "false", "reason": "malformed"})
    );
    assert_eq!(
        run.invoke(r#"{"Name": "ContactFlowEvent"}"#).await,
        json!({"found": "false", "reason": "missing"})
    );
    run.stop().await;
    t.drop_table().await;
}

#[tokio::test]
async fn reconcile_binary_runs_on_a_scheduled_event_against_connect() {
    let t = table("rt-reconcile").await;
    let pages: Vec<Value> =
        serde_json::from_str(&fixture("connect-list-users.json")).unwrap_or_else(|e| panic!("{e}"));
    let stub = ConnectStub::start(pages, 1).await;
    let run = Running::start(
        "reconcile",
        &t,
        None,
        &[
            (
                "CONNECT_INSTANCE_ID",
                "arn:aws:connect:us-east-1:012345678901:instance/aaaaaaaa-bbbb-cccc-dddd-111111111111"
                    .to_owned(),
            ),
            // The SDK's service-specific endpoint: Connect is the local stub.
            ("AWS_ENDPOINT_URL_CONNECT", stub.url.clone()),
        ],
    )
    .await;
    let scheduled = json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "012345678901",
        "time": "2026-11-20T08:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:012345678901:rule/streamfold-reconcile"],
        "detail": {}
    })
    .to_string();
    let report = run.invoke(&scheduled).await;
    assert_eq!(
        (&report["users"], &report["created"], &report["deleted"]),
        (&json!(3), &json!(3), &json!(0)),
        "{report}"
    );
    assert_eq!(t.items_of_type("agent").await.len(), 3);
    // Throttled once, then both pages.
    let statuses: Vec<u16> = stub.seen().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [429, 200, 200]);

    // The next run changes nothing.
    let again = run.invoke(&scheduled).await;
    assert_eq!(
        (&again["created"], &again["unchanged"]),
        (&json!(0), &json!(3)),
        "{again}"
    );
    run.stop().await;
    t.drop_table().await;
}
