//! message-groups against the local endpoint: every guarantee of docs/design.md
//! for the conversation previews.

use std::collections::BTreeMap;

use message_groups::{MessageGroups, Participant};
use serde_json::Value;
use streamfold::chat::{self};
use streamfold::pipeline::restore_sources;
use streamfold_shared::engine::{BatchReport, Outcome, run_batch};
use streamfold_shared::ids::UserId;
use streamfold_shared::record::StreamRecord;
use streamfold_tests::builders::{fixture_records, message, user};
use streamfold_tests::{TestTable, fixture, table};

const G1: &str = "5ae290ed-55d1-47a0-bc6d-fe2bc2700399";
const ANDREW: &str = "b4c1a6e2-2d1f-4f6a-9a3e-6d7b8c9d0e1f";
const BAYKO: &str = "e2f3a4b5-c6d7-4e8f-9a0b-1c2d3e4f5a6b";

async fn process(t: &TestTable, records: &[StreamRecord]) -> BatchReport {
    streamfold_tests::init_logs();
    run_batch(&MessageGroups, t.ctx(), records).await
}

/// The previews of one user: sk → (message, other user).
async fn previews(t: &TestTable, user: &str) -> BTreeMap<String, (String, String)> {
    t.items_of_type("preview")
        .await
        .into_iter()
        .filter(|p| p["pk"] == format!("GRP#{user}"))
        .map(|p| {
            (
                p["sk"].as_str().unwrap_or_default().to_owned(),
                (
                    p["message"].as_str().unwrap_or_default().to_owned(),
                    p["user_uuid"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

fn without_deadletters(
    mut snap: BTreeMap<(String, String), Value>,
) -> BTreeMap<(String, String), Value> {
    snap.retain(|_, v| v["type"] != "deadletter");
    snap
}

#[tokio::test]
async fn lambda_fixture_ends_with_the_first_message_shown() {
    let t = table("mg-fixture").await;
    let records = fixture_records();
    // The table holds what the records describe (the app wrote it).
    restore_sources(t.exec(), &records)
        .await
        .expect("the sources are restored");

    // Through the Lambda adapter, with the event as Lambda delivers it.
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_str(&fixture("lambda-dynamodb-event.json"))
            .expect("the text is JSON of that shape");
    let response =
        streamfold_shared::lambda::handle_dynamodb_event(&MessageGroups, t.ctx(), event).await;
    assert_eq!(
        serde_json::to_value(&response).unwrap_or_default(),
        serde_json::json!({"batchItemFailures": []})
    );

    for (owner, other) in [(ANDREW, BAYKO), (BAYKO, ANDREW)] {
        let p = previews(&t, owner).await;
        assert_eq!(
            p,
            BTreeMap::from([(
                format!("2026-11-20T10:00:00.000000Z#{G1}"),
                (
                    "Hey, are you coming to the review?".to_owned(),
                    other.to_owned()
                )
            )]),
            "previews of {owner}"
        );
    }
    let groups = t.items_of_type("group").await;
    assert_eq!(
        groups[0]["last_message_key"],
        "2026-11-20T10:00:00.000000Z#11111111-1111-4111-8111-111111111111"
    );
    // The broken message is dead-lettered with a clear reason and the raw record.
    let dead = t.items_of_type("deadletter").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["pk"], "DEADLETTER#message-groups");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("'#'"),
        "{}",
        dead[0]["error"]
    );
    let raw: StreamRecord = serde_json::from_str(dead[0]["raw"].as_str().unwrap_or_default())
        .expect("the raw record reads back");
    assert_eq!(raw.event_id, "00000000000000000000000000000008");

    // Delivered again: nothing changes, not even the dead letter.
    let before = t.snapshot().await;
    let report = process(&t, &records).await;
    assert!(report.failures.is_empty());
    assert_eq!(t.snapshot().await, before);
}

#[tokio::test]
async fn fixture_outcomes_are_classified() {
    let t = table("mg-outcomes").await;
    let records = fixture_records();
    restore_sources(t.exec(), &records)
        .await
        .expect("the sources are restored");
    let report = process(&t, &records).await;
    let kinds: Vec<&str> = report
        .outcomes
        .iter()
        .map(|o| match o {
            Outcome::Applied => "applied",
            Outcome::NoOp => "noop",
            Outcome::Ignored => "ignored",
            Outcome::DeadLettered(_) => "dead",
            Outcome::Failed(_) => "failed",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ignored", "noop", "ignored", "noop", "noop", "applied", "ignored", "dead"
        ]
    );
}

/// Writes two groups and a few messages like the app would; returns the
/// stream records that describe them.
async fn conversation_records(t: &TestTable) -> Vec<StreamRecord> {
    let (a, b, c) = (
        user(ANDREW, "andrew"),
        user(BAYKO, "bayko"),
        user("c-user", "carol"),
    );
    let exec = t.exec();
    let first = message(G1, "m1", "2026-11-20T10:00:00Z", &a, "one");
    chat::create_group(exec, [a.clone(), b.clone()], first.at, &first)
        .await
        .expect("the group is created");
    for (id, at, from, text) in [
        ("m2", "2026-11-20T10:01:00Z", &b, "two"),
        ("m3", "2026-11-20T10:02:00Z", &a, "three"),
    ] {
        chat::post(exec, &message(G1, id, at, from, text))
            .await
            .expect("the message is posted");
    }
    let g2 = "g2-0000";
    let first = message(g2, "n1", "2026-11-20T09:00:00Z", &c, "hello");
    chat::create_group(exec, [c.clone(), a.clone()], first.at, &first)
        .await
        .expect("the group is created");
    chat::post(
        exec,
        &message(g2, "n2", "2026-11-20T11:00:00Z", &a, "latest"),
    )
    .await
    .expect("the message is posted");
    t.stream_records().await
}

#[tokio::test]
async fn every_batch_twice_and_reversed_gives_the_same_table() {
    let in_order = table("mg-order").await;
    let records = conversation_records(&in_order).await;
    let report = process(&in_order, &records).await;
    assert!(report.failures.is_empty(), "{:?}", report.outcomes);
    let expected = in_order.snapshot().await;
    assert_eq!(
        previews(&in_order, ANDREW)
            .await
            .into_values()
            .collect::<Vec<_>>(),
        [
            ("three".to_owned(), BAYKO.to_owned()),
            ("latest".to_owned(), "c-user".to_owned())
        ]
    );
    // Twice more, in order: no change.
    process(&in_order, &records).await;
    process(&in_order, &records).await;
    assert_eq!(in_order.snapshot().await, expected);

    // Another table with the same source items, records reversed and in
    // single-record batches delivered twice each.
    let reversed = table("mg-reverse").await;
    conversation_records(&reversed).await;
    for r in records.iter().rev() {
        for _ in 0..2 {
            let rep = process(&reversed, std::slice::from_ref(r)).await;
            assert!(rep.failures.is_empty(), "{:?}", rep.outcomes);
        }
    }
    assert_eq!(reversed.snapshot().await, expected);
}

#[tokio::test]
async fn stale_redelivery_never_resurrects_a_deleted_or_edited_message() {
    let t = table("mg-stale").await;
    let (a, b) = (user(ANDREW, "andrew"), user(BAYKO, "bayko"));
    let exec = t.exec();
    let first = message(G1, "m1", "2026-11-20T10:00:00Z", &a, "one");
    chat::create_group(exec, [a.clone(), b.clone()], first.at, &first)
        .await
        .expect("the group is created");
    let m2 = message(G1, "m2", "2026-11-20T10:01:00Z", &b, "two");
    chat::post(exec, &m2).await.expect("the message is posted");
    let batch1 = t.stream_records().await;
    process(&t, &batch1).await;
    assert_eq!(
        previews(&t, ANDREW).await.into_values().next().map(|p| p.0),
        Some("two".to_owned())
    );
    // m2 is edited, then m1 deleted-and-irrelevant, then m2 deleted.
    t.app
        .ddb()
        .update_item()
        .table_name(&t.name)
        .key("pk", streamfold_shared::attrs::sv(format!("MSG#{G1}")))
        .key(
            "sk",
            streamfold_shared::attrs::sv("2026-11-20T10:01:00.000000Z#m2"),
        )
        .update_expression("SET message = :m")
        .expression_attribute_values(":m", streamfold_shared::attrs::sv("two, edited"))
        .send()
        .await
        .expect("UpdateItem is answered");
    let all = t.stream_records().await;
    process(&t, &all).await;
    assert_eq!(
        previews(&t, ANDREW).await.into_values().next().map(|p| p.0),
        Some("two, edited".to_owned())
    );
    // A stale redelivery of the first batch (older text) must not roll back.
    process(&t, &batch1).await;
    assert_eq!(
        previews(&t, ANDREW).await.into_values().next().map(|p| p.0),
        Some("two, edited".to_owned())
    );
    // Delete m2: previews move back to m1.
    t.app
        .ddb()
        .delete_item()
        .table_name(&t.name)
        .key("pk", streamfold_shared::attrs::sv(format!("MSG#{G1}")))
        .key(
            "sk",
            streamfold_shared::attrs::sv("2026-11-20T10:01:00.000000Z#m2"),
        )
        .send()
        .await
        .expect("DeleteItem is answered");
    let all = t.stream_records().await;
    process(&t, &all).await;
    let shown = previews(&t, ANDREW).await;
    assert_eq!(shown.len(), 1);
    assert_eq!(
        shown.into_iter().next(),
        Some((
            format!("2026-11-20T10:00:00.000000Z#{G1}"),
            ("one".to_owned(), BAYKO.to_owned())
        ))
    );
    // The insert of m2 redelivered after its deletion: still m1.
    process(&t, &batch1).await;
    assert_eq!(
        previews(&t, BAYKO).await.into_values().next().map(|p| p.0),
        Some("one".to_owned())
    );
    // Delete m1 too: no message remains, so no previews remain.
    t.app
        .ddb()
        .delete_item()
        .table_name(&t.name)
        .key("pk", streamfold_shared::attrs::sv(format!("MSG#{G1}")))
        .key(
            "sk",
            streamfold_shared::attrs::sv("2026-11-20T10:00:00.000000Z#m1"),
        )
        .send()
        .await
        .expect("DeleteItem is answered");
    let all = t.stream_records().await;
    process(&t, &all).await;
    assert!(previews(&t, ANDREW).await.is_empty());
    assert!(previews(&t, BAYKO).await.is_empty());
    let groups = t.items_of_type("group").await;
    assert!(groups[0].get("last_message_key").is_none(), "{}", groups[0]);
}

#[tokio::test]
async fn thousand_messages_into_fifty_groups_cost_one_transaction_per_group() {
    let t = table("mg-burst").await;
    let users: Vec<Participant> = (0..10)
        .map(|i| user(&format!("user-{i:02}"), &format!("u{i}")))
        .collect();
    let mut items = Vec::new();
    let mut expected_newest: BTreeMap<String, String> = BTreeMap::new();
    for g in 0..50 {
        let group = format!("group-{g:02}");
        let (a, b) = (&users[g % 10], &users[(g + 1 + g / 10) % 10]);
        let first = message(&group, "first", "2026-11-20T08:00:00Z", a, "first");
        chat::create_group(t.exec(), [a.clone(), b.clone()], first.at, &first)
            .await
            .expect("the group is created");
        for i in 0..19 {
            let n = g * 19 + i;
            // Shuffled times, so the newest is not the last written.
            let at = format!("2026-11-20T10:{:02}:{:02}Z", (n * 37) % 60, (n * 11) % 60);
            let m = message(&group, &format!("m{n:04}"), &at, a, &format!("text {n}"));
            let key = m.at.to_string();
            let e = expected_newest.entry(group.clone()).or_default();
            if key > *e {
                *e = key;
            }
            items.push(m.item());
        }
    }
    t.exec()
        .batch_put(items)
        .await
        .expect("the group is created");
    let records = t.stream_records().await;
    assert_eq!(records.len(), 50 * 20 + 50);
    t.counter().reset();
    // Keys one at a time: moto answers concurrent transactions with
    // occasional 500s (a thread-safety bug of its own) that the SDK retries,
    // and this test counts HTTP requests.
    let mut ctx = t.ctx().clone();
    ctx.concurrency = 1;
    let report = run_batch(&MessageGroups, &ctx, &records).await;
    assert!(report.failures.is_empty());
    let counts = t.counter().snapshot();
    assert_eq!(
        counts.get("TransactWriteItems").copied(),
        Some(50),
        "{counts:?}"
    );
    assert_eq!(counts.get("BatchGetItem").copied(), Some(1), "{counts:?}");
    // requests per record ≤ (distinct groups + 1) / records
    assert!(t.counter().total() <= 51, "{counts:?}");
    let shown: BTreeMap<String, String> = t
        .items_of_type("group")
        .await
        .into_iter()
        .map(|g| {
            (
                g["message_group_uuid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                g["last_message_at"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(shown, expected_newest);
    assert_eq!(t.items_of_type("preview").await.len(), 100);
}

#[tokio::test]
async fn first_message_in_the_same_batch_as_its_group() {
    let t = table("mg-first").await;
    let (a, b) = (user(ANDREW, "andrew"), user(BAYKO, "bayko"));
    let first = message(G1, "m1", "2026-11-20T10:00:00Z", &a, "hi");
    chat::create_group(t.exec(), [a, b], first.at, &first)
        .await
        .expect("the group is created");
    let records = t.stream_records().await;
    assert_eq!(records.len(), 2, "group and message in one batch");
    let report = process(&t, &records).await;
    assert!(report.failures.is_empty(), "{:?}", report.outcomes);
    assert_eq!(report.counts().applied, 1);
    assert_eq!(previews(&t, ANDREW).await.len(), 1);
    assert_eq!(previews(&t, BAYKO).await.len(), 1);
}

#[tokio::test]
async fn equal_timestamps_in_two_groups_lose_no_preview() {
    let t = table("mg-equal").await;
    let (a, b, c) = (
        user(ANDREW, "andrew"),
        user(BAYKO, "bayko"),
        user("c-user", "carol"),
    );
    for (group, other) in [("ga", &b), ("gb", &c)] {
        let m = message(group, "m1", "2026-11-20T10:00:00Z", &a, group);
        chat::create_group(t.exec(), [a.clone(), other.clone()], m.at, &m)
            .await
            .expect("the group is created");
    }
    let records = t.stream_records().await;
    process(&t, &records).await;
    let mine = previews(&t, ANDREW).await;
    assert_eq!(
        mine.keys().cloned().collect::<Vec<_>>(),
        [
            "2026-11-20T10:00:00.000000Z#ga".to_owned(),
            "2026-11-20T10:00:00.000000Z#gb".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_message_before_its_group_is_retried_not_dropped() {
    let t = table("mg-orphan").await;
    let a = user(ANDREW, "andrew");
    let m = message(G1, "m1", "2026-11-20T10:00:00Z", &a, "early");
    t.exec()
        .batch_put(vec![m.item()])
        .await
        .expect("the items are written");
    let records = t.stream_records().await;
    let report = process(&t, &records).await;
    assert_eq!(
        report.failures,
        [records[0].dynamodb.sequence_number.clone()]
    );
    assert!(t.items_of_type("deadletter").await.is_empty());
    // The Lambda answer names that record.
    let response = streamfold_shared::lambda::dynamodb_response(&report);
    assert_eq!(
        serde_json::to_value(&response).unwrap_or_default(),
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": records[0].dynamodb.sequence_number}
        ]})
    );
    // Once the group exists the retry succeeds.
    let b = user(BAYKO, "bayko");
    let g = message(G1, "m0", "2026-11-20T09:00:00Z", &b, "zero");
    chat::create_group(t.exec(), [a, b], g.at, &g)
        .await
        .expect("the group is created");
    let report = process(&t, &records).await;
    assert!(report.failures.is_empty());
    assert_eq!(
        previews(&t, ANDREW).await.into_values().next().map(|p| p.0),
        Some("early".to_owned())
    );
}

#[tokio::test]
async fn a_crash_between_batches_then_rerun_gives_the_same_table() {
    let reference = table("mg-crash-ref").await;
    let records = conversation_records(&reference).await;
    process(&reference, &records).await;
    let expected = without_deadletters(reference.snapshot().await);

    let t = table("mg-crash").await;
    conversation_records(&t).await;
    let (first, _) = records.split_at(records.len() / 2);
    // The process dies after the first half; its checkpoint was never saved,
    // so everything is delivered again from the start.
    process(&t, first).await;
    process(&t, &records).await;
    assert_eq!(without_deadletters(t.snapshot().await), expected);
}

#[tokio::test]
async fn two_processors_at_once_converge() {
    let t = table("mg-concurrent").await;
    let records = conversation_records(&t).await;
    let half: Vec<StreamRecord> = records.iter().rev().cloned().collect();
    let (r1, r2) = tokio::join!(process(&t, &records), process(&t, &half));
    assert!(r1.failures.is_empty() && r2.failures.is_empty());
    assert_eq!(
        previews(&t, ANDREW).await.into_values().collect::<Vec<_>>(),
        [
            ("three".to_owned(), BAYKO.to_owned()),
            ("latest".to_owned(), "c-user".to_owned())
        ]
    );
    assert_eq!(previews(&t, BAYKO).await.len(), 1);
}

#[tokio::test]
async fn seed_then_tail_until_idle_shows_both_lists() {
    let t = table("mg-tail").await;
    chat::seed(t.exec())
        .await
        .expect("the demo conversations are seeded");
    let pipeline = streamfold::pipeline::Pipeline::new(t.ctx().clone(), &[]);
    let opts = streamfold::tail::TailOptions {
        until_idle: true,
        idle: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let counts = streamfold::tail::tail(&t.app, &pipeline, &opts)
        .await
        .expect("tail runs to its end");
    assert_eq!(counts.failed, 0);
    let user = UserId::new(ANDREW).expect("the user id is valid");
    let (list, _) = chat::list_conversations(t.exec(), &user, 20, None)
        .await
        .expect("the conversations are listed");
    let texts: Vec<&str> = list.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Tomorrow at ten. Bring the numbers.",
            "Running late, start without me!"
        ]
    );
    // Pagination: one per page, the cursor reaches the second.
    let (page1, cursor) = chat::list_conversations(t.exec(), &user, 1, None)
        .await
        .expect("the conversations are listed");
    assert_eq!(page1.len(), 1);
    let (page2, _) = chat::list_conversations(t.exec(), &user, 1, cursor.as_deref())
        .await
        .expect("the conversations are listed");
    assert_eq!(page2[0].message, "Running late, start without me!");
    // Tail again from the start: nothing changes.
    let before = t.snapshot().await;
    streamfold::tail::tail(&t.app, &pipeline, &opts)
        .await
        .expect("tail runs to its end");
    assert_eq!(t.snapshot().await, before);
}
