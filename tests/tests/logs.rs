//! No message text and no person's name ever reaches the logs, at any level:
//! the fixtures' messages and agent names go through every table and Kinesis
//! processor (assignments, hand-overs, refusals and dead letters included)
//! with every `tracing` event of every crate, TRACE included, captured
//! through streamfold's own filter (shared/src/telemetry.rs).
//!
//! Its own test binary: `tracing` caches per call site whether anyone
//! listens, and the other tests' global subscriber (at WARN) running in the
//! same process at the same time would hide events from this capture.

// Tests say why they expect a value: `.expect("the table is created")`
// (the workspace denies `expect` outside tests, and `unwrap` everywhere).
#![allow(clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use streamfold::pipeline::{Pipeline, ProcessorKind, batch_backoff, restore_sources};
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;
use streamfold_tests::builders::stream_event_records;
use streamfold_tests::{fixture, json, table};

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut out) = self.0.lock() {
            out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// Every string value of the given attributes anywhere in a JSON value.
fn values_of(v: &serde_json::Value, names: &[&str], out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                if names.contains(&k.as_str()) {
                    match x {
                        serde_json::Value::String(s) => out.push(s.clone()),
                        // DynamoDB JSON: {"S": "…"}.
                        serde_json::Value::Object(m) => {
                            if let Some(serde_json::Value::String(s)) = m.get("S") {
                                out.push(s.clone());
                            }
                        }
                        _ => {}
                    }
                }
                values_of(x, names, out);
            }
        }
        serde_json::Value::Array(xs) => xs.iter().for_each(|x| values_of(x, names, out)),
        _ => {}
    }
}

// One thread: every task of the run is on the thread whose subscriber
// captures (a multi-thread runtime would log from other threads).
#[tokio::test(flavor = "current_thread")]
async fn no_message_text_or_name_is_logged_at_any_level() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Every level of every crate, through streamfold's own filter (which
    // holds the SDK's payload dumps back).
    let filter =
        streamfold_shared::telemetry::without_payloads(tracing_subscriber::EnvFilter::new("trace"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let t = table("logs").await;
    let pipeline = Pipeline::new(
        t.ctx().clone(),
        &[
            ProcessorKind::MessageGroups,
            ProcessorKind::Extensions,
            ProcessorKind::AgentActivity,
        ],
    );

    // The chat fixture: messages, an edit, a deletion, a refused record.
    let chat = fixture("lambda-dynamodb-event.json");
    let records: Vec<StreamRecord> = stream_event_records(&chat);
    restore_sources(t.exec(), &records)
        .await
        .expect("the sources are restored");
    pipeline
        .run_table_batch_retrying(&records, 3, batch_backoff())
        .await;

    // The agent day (names in every snapshot), plus an event whose wrongly
    // typed field sits next to the names (refused and dead-lettered).
    let day = fixture("connect-agent-events.jsonl");
    let mut lines: Vec<String> = day
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let mut broken = json(&lines[1]);
    broken["EventId"] = serde_json::json!("broken-1");
    broken["CurrentAgentSnapshot"]["Configuration"]["FirstName"] = serde_json::json!({"x": 1});
    lines.push(broken.to_string());
    let agent_records: Vec<KinesisRecord> = lines
        .iter()
        .enumerate()
        .map(|(n, l)| KinesisRecord::from_payload_line("day.jsonl", n + 1, l))
        .collect();
    let counts = pipeline
        .run_kinesis_batch_retrying(&agent_records, 3, batch_backoff())
        .await;
    assert_eq!(counts.dead_lettered, 1, "{counts:?}");

    // The profile the day created (names included) through the extensions
    // processor, which finds no pool and leaves the agent waiting.
    let profile_records = t.stream_records().await;
    pipeline
        .run_table_batch_retrying(&profile_records, 3, batch_backoff())
        .await;

    let logs = captured.text();
    assert!(
        logs.lines().count() > 20,
        "the capture saw too little to prove anything:\n{logs}"
    );

    let mut secrets = Vec::new();
    values_of(
        &serde_json::from_str(&chat).unwrap_or_default(),
        &["message", "user_display_name"],
        &mut secrets,
    );
    for line in &lines {
        values_of(&json(line), &["FirstName", "LastName"], &mut secrets);
    }
    secrets.sort();
    secrets.dedup();
    // Short values ("a") would match by chance; the fixtures' are longer.
    secrets.retain(|s| s.len() >= 4);
    assert!(
        secrets.len() >= 4,
        "too few secrets to look for: {secrets:?}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret:?} appears in the logs:\n{}",
            logs.lines()
                .filter(|l| l.contains(secret.as_str()))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
