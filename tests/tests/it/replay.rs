//! `streamfold replay` against the local endpoint, through the real binary:
//! `--dry-run` writes nothing and prints the writes a real run then does;
//! files of mixed kinds in one command; Ctrl-C (SIGINT) stops after the
//! batch in flight with a summary and exit code 130.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use message_groups::Participant;
use serde_json::Value;
use streamfold::chat::{self, NewMessage};
use streamfold_shared::ids::MessageId;
use streamfold_tests::builders::{arg as path, at, group_id, json_lines, temp_dir, user};
use streamfold_tests::cli::{cli, run, run_ok, summary};
use streamfold_tests::{TestTable, fixtures_dir, table};

use tokio::io::AsyncBufReadExt;

/// A group of `a` and `b` with `n` messages (the first creates it), written
/// through the app's own patterns; the newest message.
async fn conversation(
    t: &TestTable,
    group: &str,
    a: &Participant,
    b: &Participant,
    n: usize,
) -> NewMessage {
    let base = at("2026-11-20T09:00:00Z");
    let mut last = None;
    for i in 0..n {
        let message = NewMessage {
            group: group_id(group),
            id: MessageId::new(format!("{group}-m{i}")).expect("the message id is valid"),
            at: base.plus_seconds(i as i64 * 30),
            sender: if i % 2 == 0 { a.clone() } else { b.clone() },
            text: format!("message {i} of {group}"),
        };
        let wrote = if i == 0 {
            chat::create_group(t.exec(), [a.clone(), b.clone()], message.at, &message).await
        } else {
            chat::post(t.exec(), &message).await
        };
        assert!(wrote.expect("the write is answered"));
        last = Some(message);
    }
    last.expect("the conversation has a message")
}

/// The table's stream so far, as JSON Lines (a capture).
async fn capture(t: &TestTable, path: &Path) -> usize {
    let records = t.stream_records().await;
    std::fs::write(path, json_lines(&records)).expect("the capture is written");
    records.len()
}

/// (action, pk, sk) of every action of every recorded request of `op`.
fn actions(lines: &[Value], op: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for l in lines.iter().filter(|l| l["op"] == op) {
        let list = l["actions"]
            .as_array()
            .or_else(|| l["requests"].as_array())
            .cloned()
            .unwrap_or_else(|| vec![l.clone()]);
        for a in list {
            out.push((
                a["action"].as_str().unwrap_or("Put").to_owned(),
                a["key"]["pk"].as_str().unwrap_or_default().to_owned(),
                a["key"]["sk"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

const AGENT_EVENTS: &str = "connect-agent-events.jsonl";

#[tokio::test]
async fn dry_run_writes_nothing_and_prints_the_writes_a_real_run_then_does() {
    let t = table("replay-dry").await;
    let (a, b) = (
        user("b4c1a6e2-2d1f-4f6a-9a3e-6d7b8c9d0e1f", "andrew"),
        user("e2f3a4b5-c6d7-4e8f-9a0b-1c2d3e4f5a6b", "bayko"),
    );
    let newest = conversation(&t, "dry-group", &a, &b, 4).await;
    let dir = temp_dir("dry");
    let table_file = dir.join("table.jsonl");
    let n_table = capture(&t, &table_file).await;
    let agents = fixtures_dir().join(AGENT_EVENTS);

    let before = t.snapshot().await;
    let (stdout, stderr) = run_ok(
        &t.name,
        &[
            "replay",
            "--dry-run",
            "--json",
            &path(&table_file),
            &path(&agents),
        ],
    )
    .await;
    assert_eq!(t.snapshot().await, before, "a dry run wrote to the table");

    // stdout: only the writes, one JSON request per line.
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["op"].is_string()), "{stdout}");
    let s = summary(&stderr);
    assert_eq!(s["records"], (n_table + 12) as u64, "{s}");
    assert_eq!(
        (s["failed"].as_u64(), s["dead_lettered"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(s["interrupted"], false);
    assert!(
        s["dry_run"]["requests"]["TransactWriteItems"].as_u64() >= Some(2),
        "{s}"
    );

    // message-groups: the group's four messages coalesced into one
    // transaction that shows the newest one to both participants.
    let group_txs: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["op"] == "TransactWriteItems"
                && l["actions"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["key"]["pk"] == "GROUP#dry-group"))
        })
        .collect();
    assert_eq!(group_txs.len(), 1, "{stdout}");
    let tx = &group_txs[0]["actions"];
    let update = tx
        .as_array()
        .and_then(|a| a.iter().find(|x| x["action"] == "Update"))
        .unwrap_or_else(|| panic!("no update in {tx}"));
    assert_eq!(update["key"]["sk"], "GROUP");
    assert!(
        update["update"]
            .as_str()
            .is_some_and(|u| u.contains("last_message_key")),
        "{update}"
    );
    assert_eq!(
        update["condition"], "attribute_not_exists(last_message_key)",
        "{update}"
    );
    let preview_sk = format!("{}#dry-group", newest.at);
    let planned = actions(&lines, "TransactWriteItems");
    for owner in [&a, &b] {
        let key = (
            "Put".to_owned(),
            format!("GRP#{}", owner.user_uuid),
            preview_sk.clone(),
        );
        assert!(planned.contains(&key), "{key:?} not in {planned:?}");
    }
    let check = (
        "ConditionCheck".to_owned(),
        "MSG#dry-group".to_owned(),
        format!("{}#{}", newest.at, newest.id),
    );
    assert!(planned.contains(&check), "{check:?} not in {planned:?}");

    // agent-activity: 11 history items (none for the heartbeat) in batch
    // writes, the profile one conditional UpdateItem (the default commit
    // mode, `single`).
    let history: BTreeSet<(String, String)> = actions(&lines, "BatchWriteItem")
        .into_iter()
        .filter(|(act, _, sk)| act == "Put" && sk.starts_with("ACT#"))
        .map(|(_, pk, sk)| (pk, sk))
        .collect();
    assert_eq!(history.len(), 11, "{history:?}");
    let profile_updates: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["op"] == "UpdateItem"
                && l["key"]["pk"]
                    .as_str()
                    .is_some_and(|pk| pk.starts_with("AGENT#"))
                && l["key"]["sk"] == "PROFILE"
        })
        .collect();
    assert_eq!(profile_updates.len(), 1, "{stdout}");
    assert!(
        profile_updates[0]["condition"]
            .as_str()
            .is_some_and(|c| c.contains("attribute_not_exists(pk)")),
        "{}",
        profile_updates[0]
    );

    // The real run writes what the dry run printed.
    let (stdout, _) = run_ok(
        &t.name,
        &["replay", "--json", &path(&table_file), &path(&agents)],
    )
    .await;
    let real = summary(&stdout);
    assert_eq!(real["failed"], 0, "{real}");
    let previews: BTreeSet<(String, String)> = t
        .items_of_type("preview")
        .await
        .iter()
        .map(|v| {
            (
                v["pk"].as_str().unwrap_or_default().to_owned(),
                v["sk"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let planned_previews: BTreeSet<(String, String)> = planned
        .iter()
        .filter(|(act, pk, _)| act == "Put" && pk.starts_with("GRP#"))
        .map(|(_, pk, sk)| (pk.clone(), sk.clone()))
        .collect();
    assert_eq!(previews, planned_previews);
    let written_history: BTreeSet<(String, String)> = t
        .items_of_type("activity")
        .await
        .iter()
        .map(|v| {
            (
                v["pk"].as_str().unwrap_or_default().to_owned(),
                v["sk"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(written_history, history);

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn mixed_files_replay_in_one_command_with_one_summary() {
    let t = table("replay-mixed").await;
    let (a, b, c) = (
        user("b4c1a6e2-2d1f-4f6a-9a3e-6d7b8c9d0e1f", "andrew"),
        user("e2f3a4b5-c6d7-4e8f-9a0b-1c2d3e4f5a6b", "bayko"),
        user("7c3e9f11-4a2b-4c5d-8e6f-0a1b2c3d4e5f", "londo"),
    );
    conversation(&t, "mixed-1", &a, &b, 3).await;
    conversation(&t, "mixed-2", &a, &c, 2).await;
    let records = t.stream_records().await;
    let dir = temp_dir("mixed");
    // The capture as two kinds of file: a Lambda DynamoDB event with the
    // first half, JSON Lines with the rest.
    let half = records.len() / 2;
    let lambda_file = dir.join("lambda-event.json");
    std::fs::write(
        &lambda_file,
        serde_json::json!({ "Records": &records[..half] }).to_string(),
    )
    .expect("the file is written");
    let jsonl_file = dir.join("rest.jsonl");
    let mut f = std::fs::File::create(&jsonl_file).expect("the file is created");
    for r in &records[half..] {
        writeln!(f, "{}", serde_json::to_string(r).unwrap_or_default())
            .expect("the line is written");
    }
    drop(f);
    // Agent events: raw JSON Lines and a Lambda Kinesis event.
    let agents = fixtures_dir().join(AGENT_EVENTS);
    let kinesis = fixtures_dir().join("lambda-kinesis-event.json");
    let kinesis_records = serde_json::from_str::<Value>(
        &std::fs::read_to_string(&kinesis).expect("the file is readable"),
    )
    .expect("the text is JSON of that shape")["Records"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();

    let (stdout, _) = run_ok(
        &t.name,
        &[
            "replay",
            "--json",
            &path(&lambda_file),
            &path(&agents),
            &path(&jsonl_file),
            &path(&kinesis),
        ],
    )
    .await;
    let s = summary(&stdout);
    assert_eq!(
        s["records"],
        (records.len() + 12 + kinesis_records) as u64,
        "{s}"
    );
    assert_eq!(s["files"], 4, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    assert!(s["applied"].as_u64() > Some(0), "{s}");
    // Both kinds went to their processors: two previews per conversation,
    // and the agent's profile.
    assert_eq!(t.items_of_type("preview").await.len(), 4);
    let profile = streamfold::agents::find_profile(&t.app, "mgarcia")
        .await
        .expect("the profile is read");
    assert!(profile.is_some(), "no agent profile after the replay");

    // Replaying the same files again changes nothing.
    let snap = t.snapshot_without(&["deadletter"]).await;
    let (stdout, _) = run_ok(
        &t.name,
        &[
            "replay",
            "--json",
            &path(&kinesis),
            &path(&jsonl_file),
            &path(&agents),
            &path(&lambda_file),
        ],
    )
    .await;
    assert_eq!(summary(&stdout)["failed"], 0);
    assert_eq!(t.snapshot_without(&["deadletter"]).await, snap);

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ctrl_c_stops_after_the_batch_in_flight_with_a_summary_and_exit_130() {
    let t = table("replay-sigint").await;
    let groups = 20;
    let users: Vec<Participant> = (0..2 * groups)
        .map(|i| user(&format!("sigint-user-{i:03}"), &format!("u{i}")))
        .collect();
    let first_at = at("2026-11-19T23:00:00Z");
    for g in 0..groups {
        let first = NewMessage {
            group: group_id(&format!("sigint-{g:02}")),
            id: MessageId::new("first").expect("the message id is valid"),
            at: first_at,
            sender: users[2 * g].clone(),
            text: "first".to_owned(),
        };
        let [x, y] = [users[2 * g].clone(), users[2 * g + 1].clone()];
        assert!(
            chat::create_group(t.exec(), [x, y], first_at, &first)
                .await
                .expect("the group is created")
        );
    }
    // A large file: 20,000 messages, ten at a time per conversation.
    let dir = temp_dir("sigint");
    let file = dir.join("large.jsonl");
    let total = 20_000usize;
    let mut w = std::io::BufWriter::new(std::fs::File::create(&file).expect("the file is created"));
    let base = at("2026-11-20T00:00:00Z");
    for i in 0..total {
        let g = (i / 10) % groups;
        let sender = &users[2 * g + i % 2];
        let m = NewMessage {
            group: group_id(&format!("sigint-{g:02}")),
            id: MessageId::new(format!("m{i:06}")).expect("the message id is valid"),
            at: base.plus_seconds(i as i64),
            sender: sender.clone(),
            text: format!("message {i}"),
        };
        let item = streamfold::table::to_json(&m.item().into_iter().collect());
        let typed: serde_json::Map<String, Value> = item
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), serde_json::json!({ "S": v })))
                    .collect()
            })
            .unwrap_or_default();
        let record = serde_json::json!({
            "eventID": format!("{i:032}"),
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1763632801,
                "Keys": {"pk": typed["pk"], "sk": typed["sk"]},
                "NewImage": typed,
                "SequenceNumber": format!("{}", 4421584500000000017450439092u128 + i as u128),
                "SizeBytes": 300,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        });
        writeln!(w, "{record}").expect("the line is written");
    }
    w.flush().expect("the line is written");
    drop(w);

    let batch = 10u64;
    let mut child = cli(
        &t.name,
        &[
            "replay",
            "--json",
            "--batch-size",
            &batch.to_string(),
            &path(&file),
        ],
    )
    // Each batch logs a line at info: the sign that one was processed.
    .env("RUST_LOG", "info")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("the command starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(l)) if l.contains("batch processed") => break,
            Ok(Some(_)) => continue,
            other => panic!("replay ended before a batch was processed: {other:?}"),
        }
    }
    let pid = child.id().expect("the child has a pid");
    // Drain stderr so the child never blocks on it.
    let drain = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            rest.push(l);
        }
        rest
    });
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let out = child.wait_with_output().await.expect("the child ends");
    let rest = drain.await.unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}: {stdout}\n{}",
        out.status,
        rest.join("\n")
    );
    let s = summary(&stdout);
    assert_eq!(s["interrupted"], true, "{s}");
    let records = s["records"].as_u64().unwrap_or_default();
    assert!(records > 0 && records < total as u64, "{s}");
    // Stopped between batches: whole batches only, every record settled.
    assert_eq!(records % batch, 0, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    assert!(
        rest.iter()
            .any(|l| l.contains("stopping after the batch in flight")),
        "{rest:?}"
    );

    let _ = std::fs::remove_dir_all(&dir);
}

const FORGIVING: &str = "lambda-dynamodb-forgiving.json";
const FORGIVING_GROUP: &str = "7c1d9e2a-4b3f-4e5d-8a6b-0c1d2e3f4a5b";

#[tokio::test]
async fn a_capture_with_one_broken_record_replays_the_others_and_exits_1() {
    let t = table("replay-forgiving").await;
    let file = path(&fixtures_dir().join(FORGIVING));
    let args = ["replay", "--json", "--restore-sources", file.as_str()];
    let (code, stdout, stderr) = run(&t.name, &args).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let s = summary(&stdout);
    // Five records: the group (a source), two messages applied, the null
    // record ignored, the UPSERT record dead-lettered with its place.
    assert_eq!(s["records"], 5, "{s}");
    assert_eq!(s["undecodable"], 1, "{s}");
    assert_eq!(s["dead_lettered"], 1, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    let letters = t.items_of_type("deadletter").await;
    let places: BTreeSet<(String, String)> = letters
        .iter()
        .map(|l| {
            (
                l["processor"].as_str().unwrap_or_default().to_owned(),
                l["record_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let place = format!("{FORGIVING}:1, record 4");
    // As the Lambda adapter does: each table-stream processor keeps it.
    assert_eq!(
        places,
        BTreeSet::from([
            ("extensions".to_owned(), place.clone()),
            ("message-groups".to_owned(), place.clone()),
        ])
    );
    assert!(
        letters
            .iter()
            .all(|l| l["raw"].as_str().unwrap_or_default().contains("UPSERT")),
        "{letters:?}"
    );
    // Both previews show the newest message.
    let previews = t.items_of_type("preview").await;
    assert_eq!(previews.len(), 2, "{previews:?}");
    for p in &previews {
        assert_eq!(p["message_group_uuid"], FORGIVING_GROUP);
        assert_eq!(p["message"], "See you there.", "{p}");
    }
    // Again: nothing changes, the dead letter is kept once, and it exits 1 again.
    let before = t.snapshot().await;
    let (code, stdout, _) = run(&t.name, &args).await;
    assert_eq!(code, Some(1));
    assert_eq!(summary(&stdout)["undecodable"], 1);
    let after = t.snapshot().await;
    let changed: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(before.len(), after.len());
    // Dead letters carry the time they were written; nothing else may move.
    assert!(
        changed.iter().all(|(pk, _)| pk.starts_with("DEADLETTER#")),
        "{changed:?}"
    );
}

#[tokio::test]
async fn a_pretty_printed_record_a_json_array_and_an_unknown_file_are_each_read_as_they_are() {
    let t = table("replay-shapes").await;
    let dir = temp_dir("shapes");
    // The forgiving event's group and first message as a pretty-printed
    // JSON array of Streams records.
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join(FORGIVING)).expect("the file is readable"),
    )
    .expect("the text is JSON of that shape");
    let first_two: Vec<Value> = event["Records"]
        .as_array()
        .map(|r| r[..2].to_vec())
        .unwrap_or_default();
    let array = dir.join("array.json");
    std::fs::write(
        &array,
        serde_json::to_string_pretty(&first_two).unwrap_or_default(),
    )
    .expect("it serialises to JSON");
    let (stdout, _) = run_ok(
        &t.name,
        &["replay", "--json", "--restore-sources", &path(&array)],
    )
    .await;
    let s = summary(&stdout);
    assert_eq!(
        (s["records"].as_u64(), s["undecodable"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );
    // One record pretty-printed over many lines: the newer message.
    let pretty = path(&fixtures_dir().join("dynamodb-record-pretty.json"));
    let (stdout, _) = run_ok(&t.name, &["replay", "--json", "--restore-sources", &pretty]).await;
    let s = summary(&stdout);
    assert_eq!(
        (s["records"].as_u64(), s["applied"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let previews = t.items_of_type("preview").await;
    assert!(
        previews.iter().all(|p| p["message"] == "See you there."),
        "{previews:?}"
    );
    // A file that is no capture at all: one line naming what is accepted.
    let csv = dir.join("users.csv");
    std::fs::write(&csv, "user,extension\nmgarcia,0042\n").expect("the file is written");
    let (code, _, stderr) = run(&t.name, &["replay", &path(&csv)]).await;
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 3, "{stderr}");
    assert!(
        lines[0].contains("users.csv is not a capture file") && lines[0].contains("JSON Lines"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
