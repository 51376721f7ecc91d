//! `streamfold tail` and `streamfold capture` against the local endpoint:
//! resume after a real `kill -9`, shard lineage order (a Kinesis stream
//! with a split and a merge), and capture → replay into a fresh table.
//!
//! The CLI tests run the real `streamfold` binary (built with the cargo that
//! runs the tests). Tables stay small: the endpoint copies a whole table on
//! every transaction action.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use message_groups::Participant;
use serde_json::Value;
use streamfold::chat::{self, NewMessage};
use streamfold::tail::{Batch, ReadOptions, Sink, SinkError, Source};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp};
use streamfold_tests::builders::user;
use streamfold_tests::cli::{cli, run_ok, summary};
use streamfold_tests::{TestTable, fixture, kinesis, table};

fn users() -> [Participant; 3] {
    [
        user("b4c1a6e2-2d1f-4f6a-9a3e-6d7b8c9d0e1f", "andrew"),
        user("e2f3a4b5-c6d7-4e8f-9a0b-1c2d3e4f5a6b", "bayko"),
        user("7c3e9f11-4a2b-4c5d-8e6f-0a1b2c3d4e5f", "londo"),
    ]
}

/// Writes messages `from..to` of each of three conversations (message 0
/// creates the group), with fixed ids and times, so two tables get the
/// same sources.
async fn write_messages(t: &TestTable, from: usize, to: usize) {
    let [a, b, c] = users();
    let pairs = [(a.clone(), b.clone()), (a, c.clone()), (b, c)];
    let base = Timestamp::parse("2026-11-20T10:00:00Z").expect("the timestamp parses");
    for (g, (x, y)) in pairs.iter().enumerate() {
        let group = GroupId::new(format!("tail-group-{g}")).expect("the group id is valid");
        for n in from..to {
            let message = NewMessage {
                group: group.clone(),
                id: MessageId::new(format!("m-{g}-{n:03}")).expect("the message id is valid"),
                at: base.plus_seconds((n * 60 + g) as i64),
                sender: if n % 2 == 0 { x.clone() } else { y.clone() },
                text: format!("message {n} of conversation {g}"),
            };
            let wrote = if n == 0 {
                chat::create_group(t.exec(), [x.clone(), y.clone()], message.at, &message).await
            } else {
                chat::post(t.exec(), &message).await
            };
            assert!(wrote.expect("the write is answered"));
        }
    }
}

/// Waits (polling) until the table holds a checkpoint item.
async fn wait_for_checkpoint(t: &TestTable) {
    for _ in 0..1200 {
        if !t.items_of_type("checkpoint").await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("tail wrote no checkpoint into {}", t.name);
}

#[tokio::test]
async fn tail_killed_with_sigkill_and_restarted_leaves_the_same_table() {
    streamfold_tests::init_logs();
    let live = table("tail-kill").await;
    let reference = table("tail-ref").await;
    write_messages(&live, 0, 6).await;
    write_messages(&reference, 0, 6).await;

    // A tail that never idles out, killed for real once it checkpointed.
    let mut child = cli(
        &live.name,
        &["tail", "--batch-size", "3", "--poll-ms", "100", "--json"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("the command starts");
    wait_for_checkpoint(&live).await;
    child.start_kill().expect("the child is signalled");
    let status = child.wait().await.expect("the command ends");
    assert_eq!(status.signal(), Some(9), "{status}");

    // More happens while it is down; then it resumes.
    write_messages(&live, 6, 10).await;
    write_messages(&reference, 6, 10).await;
    let resumed = summary(
        &run_ok(
            &live.name,
            &[
                "tail",
                "--until-idle",
                "--idle-ms",
                "1000",
                "--batch-size",
                "3",
                "--poll-ms",
                "100",
                "--json",
            ],
        )
        .await
        .0,
    );
    let uninterrupted = summary(
        &run_ok(
            &reference.name,
            &[
                "tail",
                "--until-idle",
                "--idle-ms",
                "1000",
                "--batch-size",
                "3",
                "--poll-ms",
                "100",
                "--json",
            ],
        )
        .await
        .0,
    );
    assert_eq!(resumed["failed"], 0, "{resumed}");
    assert_eq!(uninterrupted["failed"], 0, "{uninterrupted}");
    // It resumed from its checkpoint rather than from the trim horizon.
    let total = live
        .stream_records()
        .await
        .iter()
        .filter(|r| r.item_type() != Some("checkpoint"))
        .count() as u64;
    let read = resumed["records"].as_u64().unwrap_or(u64::MAX);
    assert!(read < total, "resumed run read {read} of {total} records");

    let got = live.snapshot_without(&["checkpoint"]).await;
    let want = reference.snapshot_without(&["checkpoint"]).await;
    assert_eq!(got, want);
    assert_eq!(live.items_of_type("preview").await.len(), 6);
    assert!(live.items_of_type("deadletter").await.is_empty());
}

// ---- Kinesis -------------------------------------------------------------

/// 2^127: the middle of the hash key range.
const MIDDLE: &str = "170141183460469231731687303715884105728";
/// A hash key of the upper half.
const HIGH: &str = "170141183460469231731687303715884105729";

/// Splits the stream's only shard in two at [`MIDDLE`]; returns (parent,
/// low child, high child).
async fn split(k: &aws_sdk_kinesis::Client, stream: &str) -> (String, String, String) {
    let parent = kinesis::shards(k, stream).await[0].shard_id.clone();
    k.split_shard()
        .stream_name(stream)
        .shard_to_split(&parent)
        .new_starting_hash_key(MIDDLE)
        .send()
        .await
        .expect("SplitShard is answered");
    kinesis::wait_active(k, stream).await;
    let children: Vec<_> = kinesis::shards(k, stream)
        .await
        .into_iter()
        .filter(|s| s.parent_shard_id.as_deref() == Some(parent.as_str()))
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    let low = children
        .iter()
        .find(|s| {
            s.hash_key_range
                .as_ref()
                .is_some_and(|r| r.starting_hash_key == "0")
        })
        .map(|s| s.shard_id.clone())
        .unwrap_or_else(|| panic!("no low child in {children:?}"));
    let high = children
        .iter()
        .map(|s| s.shard_id.clone())
        .find(|s| *s != low)
        .unwrap_or_else(|| panic!("no high child in {children:?}"));
    (parent, low, high)
}

/// Records (shard, sequence number, data) in the order handled.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String, String)>>);

impl Sink for Recorder {
    async fn handle(&self, _stream: &str, shard: &str, batch: &Batch) -> Result<(), SinkError> {
        let Batch::Kinesis(records) = batch else {
            return Err(SinkError::Fatal(anyhow::anyhow!("not a Kinesis batch")));
        };
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for r in records {
            seen.push((
                shard.to_owned(),
                r.sequence_number.clone(),
                r.data_str().unwrap_or_default().to_owned(),
            ));
        }
        Ok(())
    }
}

fn read_options() -> ReadOptions {
    ReadOptions {
        until_idle: true,
        idle: Duration::from_millis(1000),
        poll: Duration::from_millis(100),
        batch_size: 2,
        refresh: Duration::from_millis(500),
        checkpoints: true,
        progress: false,
    }
}

async fn read_all(t: &TestTable, source: Source) -> Vec<(String, String, String)> {
    let recorder = Arc::new(Recorder::default());
    streamfold::tail::run_readers_with(
        t.exec(),
        vec![source],
        recorder.clone(),
        &read_options(),
        || Box::pin(std::future::pending()),
    )
    .await
    .expect("the readers run");
    recorder.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[tokio::test]
async fn kinesis_children_are_read_only_after_their_parents() {
    streamfold_tests::init_logs();
    let t = table("tail-lineage").await;
    let k = kinesis::client().await;
    let stream = t.name.clone();
    kinesis::create_stream(&k, &stream, 2).await;
    // Two shards (the low and the high half of the hash keys), merged into
    // one: the merged shard has a parent and an adjacent parent.
    let shards = kinesis::shards(&k, &stream).await;
    let low = shards
        .iter()
        .find(|s| {
            s.hash_key_range
                .as_ref()
                .is_some_and(|r| r.starting_hash_key == "0")
        })
        .map(|s| s.shard_id.clone())
        .unwrap_or_else(|| panic!("no low shard in {shards:?}"));
    let high = shards
        .iter()
        .map(|s| s.shard_id.clone())
        .find(|s| *s != low)
        .unwrap_or_else(|| panic!("no high shard in {shards:?}"));
    for n in 0..3 {
        kinesis::put(&k, &stream, "k", Some("1"), &format!("a{n}")).await;
        kinesis::put(&k, &stream, "k", Some(HIGH), &format!("b{n}")).await;
    }
    k.merge_shards()
        .stream_name(&stream)
        .shard_to_merge(&low)
        .adjacent_shard_to_merge(&high)
        .send()
        .await
        .expect("MergeShards is answered");
    kinesis::wait_active(&k, &stream).await;
    let merged = kinesis::shards(&k, &stream)
        .await
        .into_iter()
        .find(|s| s.adjacent_parent_shard_id.is_some())
        .map(|s| s.shard_id)
        .expect("the merged shard exists");
    for n in 0..3 {
        kinesis::put(&k, &stream, "k", None, &format!("m{n}")).await;
    }

    let source = Source::kinesis(&t.app, &stream)
        .await
        .expect("the Kinesis source opens");
    let seen = read_all(&t, source.clone()).await;

    // Every record put was handed over; each shard's records in its order.
    let data: HashSet<&str> = seen.iter().map(|(_, _, d)| d.as_str()).collect();
    for n in 0..3 {
        for prefix in ["a", "b", "m"] {
            assert!(data.contains(format!("{prefix}{n}").as_str()), "{seen:?}");
        }
    }
    for shard in [&low, &high, &merged] {
        // Decimal sequence numbers, compared as numbers.
        let seqs: Vec<(usize, &str)> = seen
            .iter()
            .filter(|(s, _, _)| s == shard)
            .map(|(_, q, _)| (q.len(), q.as_str()))
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{shard}: {seen:?}");
    }
    // No record of the merged shard before the last record of each of its
    // parents. (The local endpoint copies the parents' records into the
    // merged shard, and routes later puts to the closed parents: whichever
    // shards hold records, the order between them is what is checked.)
    let positions = |shard: &str| -> Vec<usize> {
        seen.iter()
            .enumerate()
            .filter(|(_, (s, _, _))| s == shard)
            .map(|(i, _)| i)
            .collect()
    };
    let first_merged = positions(&merged).into_iter().min();
    let mut checked = 0;
    for parent in [&low, &high] {
        let last = positions(parent).into_iter().max();
        if let (Some(last), Some(first)) = (last, first_merged) {
            assert!(
                last < first,
                "{merged} started before {parent} ended: {seen:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 2,
        "the parents and the merged shard should all hold records: {seen:?}"
    );

    // Checkpoints: the closed shards are marked ended, and a second run
    // has nothing left to read.
    let checkpoints = t.items_of_type("checkpoint").await;
    let ended: HashSet<&str> = checkpoints
        .iter()
        .filter(|c| c["ended"] == Value::Bool(true))
        .filter_map(|c| c["shard_id"].as_str())
        .collect();
    assert_eq!(ended, HashSet::from([low.as_str(), high.as_str()]));
    let again = read_all(&t, source).await;
    assert!(again.is_empty(), "{again:?}");

    let _ = k.delete_stream().stream_name(&stream).send().await;
}

// ---- capture → replay ----------------------------------------------------

/// The projections of a table: previews, groups, and agent-activity's
/// profiles, history and daily totals (claimed ids sorted).
async fn projections(t: &TestTable) -> BTreeMap<(String, String), Value> {
    let mut snap = t.snapshot().await;
    snap.retain(|_, v| {
        matches!(
            v["type"].as_str(),
            Some("preview" | "group" | "agent" | "activity" | "daily")
        )
    });
    for v in snap.values_mut() {
        if let Some(Value::Array(ids)) = v.get_mut("claimed") {
            ids.sort_by_key(|x| x.to_string());
        }
    }
    snap
}

#[tokio::test]
async fn capture_then_replay_into_a_fresh_table_gives_the_live_projections() {
    streamfold_tests::init_logs();
    let live = table("cap-live").await;
    let k = kinesis::client().await;
    let stream = live.name.clone();
    kinesis::create_stream(&k, &stream, 1).await;
    write_messages(&live, 0, 5).await;
    // Half of an agent's day, a shard split, the other half.
    let events: Vec<String> = fixture("connect-agent-events.jsonl")
        .lines()
        .map(str::to_owned)
        .collect();
    let arn = |line: &str| -> String {
        let v: Value = serde_json::from_str(line).expect("the text is JSON of that shape");
        v["AgentARN"].as_str().unwrap_or_default().to_owned()
    };
    let (first, second) = events.split_at(events.len() / 2);
    for line in first {
        kinesis::put(&k, &stream, &arn(line), None, line).await;
    }
    split(&k, &stream).await;
    for line in second {
        kinesis::put(&k, &stream, &arn(line), None, line).await;
    }

    // The live run: both streams at once.
    let live_run = summary(
        &run_ok(
            &live.name,
            &[
                "tail",
                "--until-idle",
                "--idle-ms",
                "1000",
                "--poll-ms",
                "100",
                "--kinesis-stream",
                &stream,
                "--json",
            ],
        )
        .await
        .0,
    );
    assert_eq!(live_run["failed"], 0, "{live_run}");
    assert_eq!(
        live_run["processors"]["agent-activity"]["records"], 12,
        "{live_run}"
    );

    // Capture both streams, then replay the files into a fresh table.
    let dir = std::env::temp_dir().join(format!("streamfold-capture-{}", live.name));
    std::fs::create_dir_all(&dir).expect("the directory is created");
    let table_file = dir.join("table.jsonl");
    let agents_file = dir.join("agents.jsonl");
    let path = |p: &PathBuf| p.display().to_string();
    let captured = summary(
        &run_ok(
            &live.name,
            &[
                "capture",
                "--out",
                &path(&table_file),
                "--until-idle",
                "--idle-ms",
                "1000",
                "--poll-ms",
                "100",
                "--json",
            ],
        )
        .await
        .0,
    );
    assert!(captured["records"].as_u64().unwrap_or(0) > 0, "{captured}");
    let captured = summary(
        &run_ok(
            &live.name,
            &[
                "capture",
                "--out",
                &path(&agents_file),
                "--kinesis-stream",
                &stream,
                "--until-idle",
                "--idle-ms",
                "1000",
                "--poll-ms",
                "100",
                "--json",
            ],
        )
        .await
        .0,
    );
    assert_eq!(captured["records"], 12, "{captured}");
    // Capture writes no checkpoints and keeps none of tail's.
    let text = std::fs::read_to_string(&table_file).expect("the file is readable");
    assert!(!text.contains("\"checkpoint\""));

    let fresh = table("cap-fresh").await;
    let replayed = summary(
        &run_ok(&fresh.name, &["replay", &path(&agents_file), "--json"])
            .await
            .0,
    );
    assert_eq!(replayed["failed"], 0, "{replayed}");
    let replayed = summary(
        &run_ok(
            &fresh.name,
            &["replay", &path(&table_file), "--restore-sources", "--json"],
        )
        .await
        .0,
    );
    assert_eq!(replayed["failed"], 0, "{replayed}");
    let want = projections(&live).await;
    assert!(!want.is_empty());
    assert_eq!(projections(&fresh).await, want);

    let _ = std::fs::remove_dir_all(&dir);
    let _ = k.delete_stream().stream_name(&stream).send().await;
}
