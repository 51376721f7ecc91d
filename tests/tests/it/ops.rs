//! Operating the pipeline, through the real binary against the local
//! endpoint: `deadletters show/retry/purge` (a dead letter whose cause was
//! fixed becomes an applied record, a second retry changes nothing, a dead
//! letter that is no record is reported and left) and `status` (exit 1
//! while dead letters are there).

use std::path::PathBuf;

use serde_json::Value;
use streamfold::chat::{self, NewMessage};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp};
use streamfold_tests::builders::{json_lines, message, user};
use streamfold_tests::json;
use streamfold_tests::{TestTable, fixtures_dir, table};

use streamfold_tests::cli::run;

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("streamfold-it-ops-{name}-{}", std::process::id()))
}

const GROUP: &str = "ops-late-group";

/// A message written before its group exists: message-groups cannot place
/// it (a transient failure) and, retries run out, dead-letters it.
async fn orphan_dead_lettered(t: &TestTable) -> NewMessage {
    let orphan = message(
        GROUP,
        "late-m2",
        "2026-11-20T12:00:00Z",
        &user("ops-u1", "one"),
        "arrived before its group",
    );
    t.exec()
        .batch_put(vec![orphan.item()])
        .await
        .expect("the items are written");
    let records = t.stream_records().await;
    let file = temp_file(&format!("{}-orphan.jsonl", t.name));
    std::fs::write(&file, json_lines(&records)).expect("the capture is written");
    let f = file.display().to_string();
    let (_, stdout, stderr) = run(
        &t.name,
        &["replay", "--json", "--max-retries", "0", f.as_str()],
    )
    .await;
    let _ = std::fs::remove_file(&file);
    assert!(stdout.contains("\"dead_lettered\":1"), "{stdout}\n{stderr}");
    orphan
}

/// Fixes the dead letters' cause: creates the group the orphan message
/// belongs to, with a first message of its own.
async fn create_the_missing_group(t: &TestTable, group: &GroupId) {
    let first = NewMessage {
        group: group.clone(),
        id: MessageId::new("late-m1").expect("the message id is valid"),
        at: Timestamp::parse("2026-11-20T11:00:00Z").expect("the timestamp parses"),
        sender: user("ops-u2", "two"),
        text: "the first".into(),
    };
    chat::create_group(
        t.exec(),
        [user("ops-u1", "one"), user("ops-u2", "two")],
        first.at,
        &first,
    )
    .await
    .expect("the group is created");
}

#[tokio::test]
async fn a_retried_dead_letter_whose_cause_was_fixed_is_applied_once() {
    let t = table("ops-retry").await;
    // A dead letter that is no record (replay could not read it).
    let forgiving = fixtures_dir()
        .join("lambda-dynamodb-forgiving.json")
        .display()
        .to_string();
    let _ = run(
        &t.name,
        &["replay", "--restore-sources", forgiving.as_str()],
    )
    .await;
    let orphan = orphan_dead_lettered(&t).await;
    let letters = t.items_of_type("deadletter").await;
    assert_eq!(letters.len(), 3, "{letters:?}");

    // status: dead letters need attention.
    let (code, stdout, stderr) = run(&t.name, &["status", "--json"]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let status = json(&stdout);
    assert_eq!(status["healthy"], false, "{status}");
    assert_eq!(status["deadletters"]["message-groups"], 2, "{status}");

    // show: the record decoded, and the error.
    let (code, stdout, _) = run(
        &t.name,
        &[
            "deadletters",
            "show",
            "--json",
            orphan_id(&t).await.as_str(),
        ],
    )
    .await;
    assert_eq!(code, Some(0));
    let shown = json(&stdout);
    assert_eq!(shown[0]["decoded"]["decoded"], true, "{shown}");
    assert!(
        shown[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("gave up"),
        "{shown}"
    );

    // The cause is not fixed yet: the dead letter stays, one attempt more.
    let (code, stdout, _) = run(
        &t.name,
        &[
            "deadletters",
            "retry",
            "--processor",
            "message-groups",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, Some(1));
    let report = json(&stdout);
    let results: Vec<&str> = report["rows"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["result"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(results.len(), 2, "{report}");
    assert!(results.contains(&"still_failing"), "{report}");
    assert!(results.contains(&"undecodable"), "{report}");
    let attempts: Vec<Value> = t
        .items_of_type("deadletter")
        .await
        .into_iter()
        .filter(|l| l["pk"] == "DEADLETTER#message-groups")
        .map(|l| l["attempts"].clone())
        .collect();
    assert!(attempts.contains(&Value::from(1)), "{attempts:?}");
    assert!(
        t.items_of_type("preview")
            .await
            .iter()
            .all(|p| p["message_group_uuid"] != GROUP)
    );

    // A dry run writes nothing.
    let before = t.snapshot().await;
    let (_, _, stderr) = run(
        &t.name,
        &[
            "deadletters",
            "retry",
            "--processor",
            "message-groups",
            "--dry-run",
        ],
    )
    .await;
    assert!(stderr.contains("dry run"), "{stderr}");
    assert_eq!(t.snapshot().await, before);

    // The group is created (the cause fixed): the retry applies the record
    // and deletes its dead letter; the undecodable one is left.
    create_the_missing_group(&t, &orphan.group).await;
    let (code, stdout, _) = run(
        &t.name,
        &[
            "deadletters",
            "retry",
            "--processor",
            "message-groups",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, Some(1), "the undecodable one is left: {stdout}");
    let report = json(&stdout);
    let results: Vec<&str> = report["rows"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["result"].as_str()).collect())
        .unwrap_or_default();
    assert!(results.contains(&"applied"), "{report}");
    let previews: Vec<Value> = t
        .items_of_type("preview")
        .await
        .into_iter()
        .filter(|p| p["message_group_uuid"] == GROUP)
        .collect();
    assert_eq!(previews.len(), 2, "{previews:?}");
    for p in &previews {
        assert_eq!(p["message"], orphan.text.as_str(), "{p}");
    }
    let mg_letters: Vec<Value> = t
        .items_of_type("deadletter")
        .await
        .into_iter()
        .filter(|l| l["pk"] == "DEADLETTER#message-groups")
        .collect();
    assert_eq!(mg_letters.len(), 1, "{mg_letters:?}");
    assert!(
        mg_letters[0]["record_id"]
            .as_str()
            .unwrap_or_default()
            .contains("record 4")
    );

    // A second retry changes nothing.
    let before = t.snapshot().await;
    let (_, stdout, _) = run(
        &t.name,
        &[
            "deadletters",
            "retry",
            "--processor",
            "message-groups",
            "--json",
        ],
    )
    .await;
    let report = json(&stdout);
    assert_eq!(report["rows"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(report["rows"][0]["result"], "undecodable");
    assert_eq!(t.snapshot().await, before);

    // purge: refused without --yes; a dry run deletes nothing; then gone.
    let (code, _, stderr) = run(&t.name, &["deadletters", "purge", "--older-than", "0s"]).await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--yes"), "{stderr}");
    let (code, _, _) = run(
        &t.name,
        &["deadletters", "purge", "--older-than", "0s", "--dry-run"],
    )
    .await;
    assert_eq!(code, Some(0));
    assert_eq!(t.items_of_type("deadletter").await.len(), 2);
    let (code, _, _) = run(
        &t.name,
        &["deadletters", "purge", "--older-than", "30d", "--yes"],
    )
    .await;
    assert_eq!(code, Some(0));
    assert_eq!(
        t.items_of_type("deadletter").await.len(),
        2,
        "none is that old"
    );
    let (code, stdout, _) = run(
        &t.name,
        &["deadletters", "purge", "--older-than", "0s", "--yes"],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(t.items_of_type("deadletter").await.is_empty());
}

/// The record id of the orphan's dead letter.
async fn orphan_id(t: &TestTable) -> String {
    t.items_of_type("deadletter")
        .await
        .into_iter()
        .find(|l| l["raw"].as_str().unwrap_or_default().contains(GROUP))
        .and_then(|l| l["record_id"].as_str().map(str::to_owned))
        .expect("the orphan is dead-lettered")
}

#[tokio::test]
async fn tail_shows_the_functions_figures_and_status_sees_its_checkpoints() {
    let t = table("ops-tail").await;
    chat::seed(t.exec())
        .await
        .expect("the demo conversations are seeded");
    // Before tail: the stream holds records no checkpoint covers and the
    // previews are not there yet: needs attention.
    let (code, stdout, stderr) = run(&t.name, &["status", "--json"]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let status = json(&stdout);
    assert_eq!(status["tail_checkpoints"], false);
    assert_eq!(
        status["projections"]["previews_wrong"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{status}"
    );
    let behind: u64 = status["shards"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["records_behind"].as_u64()).sum())
        .unwrap_or_default();
    assert!(behind > 0, "{status}");

    let file = temp_file(&format!("{}-metrics.jsonl", t.name));
    let f = file.display().to_string();
    let (code, stdout, stderr) = run(
        &t.name,
        &[
            "tail",
            "--until-idle",
            "--idle-ms",
            "500",
            "--processor",
            "message-groups",
            "--json",
            "--metrics",
            f.as_str(),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let summary = json(stdout.trim());
    let mg = &summary["processors"]["message-groups"];
    let figures = &summary["metrics"]["message-groups"];
    assert!(figures["batches"].as_u64().unwrap_or(0) >= 1, "{summary}");
    let requests: u64 = figures["requests"]
        .as_object()
        .map(|o| o.values().filter_map(Value::as_u64).sum())
        .unwrap_or_default();
    assert!(requests > 0, "{summary}");
    assert!(figures["oldest_record_age_ms_max"].as_i64().unwrap_or(-1) >= 0);

    // The JSON lines: the EMF figures per batch, adding up to the summary.
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .map(json)
        .collect();
    let _ = std::fs::remove_file(&file);
    assert_eq!(lines.len() as u64, figures["batches"].as_u64().unwrap_or(0));
    let sum = |name: &str| -> f64 { lines.iter().filter_map(|l| l[name].as_f64()).sum() };
    assert_eq!(
        sum("RecordsApplied"),
        mg["applied"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(
        sum("RecordsIgnored"),
        mg["ignored"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(sum("DynamoDBRequests"), requests as f64);
    for l in &lines {
        assert_eq!(l["function"], "tail");
        assert_eq!(l["processor"], "message-groups");
        assert!(l["BatchDuration"].is_number() && l["OldestRecordAge"].is_number());
    }

    // After tail: its checkpoints, nothing behind them, healthy.
    let (code, stdout, stderr) = run(&t.name, &["status"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("healthy"), "{stdout}");
    let (_, stdout, _) = run(&t.name, &["status", "--json"]).await;
    let status = json(&stdout);
    assert_eq!(status["tail_checkpoints"], true, "{status}");
    assert!(
        status["shards"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["records_behind"] == 0)),
        "{status}"
    );
}

#[tokio::test]
async fn a_retry_racing_the_live_pipeline_ends_as_either_alone() {
    let t = table("ops-race").await;
    let orphan = orphan_dead_lettered(&t).await;
    let record = t
        .stream_records()
        .await
        .into_iter()
        .find(|r| r.key_str("pk") == Some(&format!("MSG#{GROUP}")))
        .expect("the orphan has a stream record");
    create_the_missing_group(&t, &orphan.group).await;
    // The live pipeline gets the record again (a redelivery) while the
    // operator retries its dead letter.
    let pipeline = streamfold::pipeline::Pipeline::new(
        t.ctx().clone(),
        &[streamfold::pipeline::ProcessorKind::MessageGroups],
    );
    let records = [record];
    let live =
        pipeline.run_table_batch_retrying(&records, 3, streamfold::pipeline::batch_backoff());
    let retry = run(
        &t.name,
        &[
            "deadletters",
            "retry",
            "--processor",
            "message-groups",
            "--json",
        ],
    );
    let (counts, (code, stdout, stderr)) = tokio::join!(live, retry);
    assert_eq!(counts.failed, 0);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let previews: Vec<Value> = t
        .items_of_type("preview")
        .await
        .into_iter()
        .filter(|p| p["message_group_uuid"] == GROUP)
        .collect();
    assert_eq!(previews.len(), 2, "{previews:?}");
    for p in &previews {
        assert_eq!(p["message"], orphan.text.as_str(), "{p}");
    }
    assert!(t.items_of_type("deadletter").await.is_empty());
    // And again: nothing to do, nothing changes.
    let before = t.snapshot().await;
    let (code, _, _) = run(&t.name, &["deadletters", "retry"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(t.snapshot().await, before);
}
