//! Workload 2, one agent day: `--agents` agents' synthetic Connect agent
//! events (`agent_activity::synth`: logins, status changes, contacts with
//! after-contact work, lunch, logout, heartbeats), all agents interleaved by
//! time as one Kinesis shard carries them. No source items: agent-activity
//! and the naive way build the profiles, history and daily totals.

use std::collections::HashMap;

use agent_activity::plan::{activity_item, contribution, plan_daily, plan_profile};
use agent_activity::{AgentActivity, AgentEvent, decode};
use anyhow::{Context as _, Result};
use streamfold::pipeline::{Pipeline, ProcessorKind};
use streamfold_shared::engine::Decoded;
use streamfold_shared::kinesis::KinesisRecord;

use super::chat::outcomes;
use super::compare::compare_tables;
use super::measure::{Stopwatch, records_per_cpu_second, thousands};
use super::naive::{Tally, agent_batch};
use super::{Report, Tables, VersusArgs, streamfold_side};

/// 2026-11-18T00:00:00Z, the day the agents work.
const DAY_START_MS: i64 = 1_795_132_800_000;

/// Differences the per-record way has by design.
const EXPECTED: &[(&str, &str)] = &[
    (
        "claimed",
        "streamfold's daily items keep the ids of the events they counted, to count each \
         exactly once under redelivery; the naive ADD keeps none (a redelivered event \
         would be counted twice)",
    ),
    (
        "last_event_at",
        "streamfold records each agent's newest event, also a heartbeat or LOGOUT that \
         repeats the stored snapshot, so any order or batching of deliveries ends the \
         same; the naive side skips events that change nothing (to be cheaper), so its \
         stamp is the last event that changed the snapshot (the snapshot itself is the \
         same)",
    ),
    ("last_event_id", "as last_event_at"),
    ("last_event_type", "as last_event_at"),
];

/// Decode (JSON included) and plan of agent-activity, batch by batch, as
/// `cargo bench -p agent-activity` measures it.
fn decode_plan(records: &[KinesisRecord], batch: usize, retention: i64) -> usize {
    let mut writes = 0;
    for chunk in records.chunks(batch) {
        let mut agents: HashMap<streamfold_shared::ids::AgentId, Vec<AgentEvent>> = HashMap::new();
        for r in chunk {
            if let Decoded::Event { key, event } = decode(r) {
                agents.entry(key).or_default().push(event);
            }
        }
        for events in agents.values() {
            let refs: Vec<&AgentEvent> = events.iter().collect();
            writes += refs
                .iter()
                .filter_map(|e| activity_item(e, retention))
                .count();
            let periods: Vec<_> = refs.iter().filter_map(|e| contribution(e)).collect();
            writes += plan_daily(&refs[0].agent, &periods).len();
            writes += usize::from(plan_profile(&refs[0].agent, None, &refs).is_some());
        }
    }
    writes
}

/// Lambda's synchronous invocation payload limit (6 MB).
const LAMBDA_PAYLOAD: usize = 6 * 1024 * 1024;

/// Runs the agent day through both sides.
pub async fn run(args: &VersusArgs, t: &Tables) -> Result<Report> {
    let events = agent_activity::synth::shifts(
        args.agents,
        args.seed,
        DAY_START_MS,
        args.shift_hours * 3_600_000,
    );
    let beats = events
        .iter()
        .filter(|e| e["EventType"] == "HEART_BEAT")
        .count();
    let records: Vec<KinesisRecord> = events
        .iter()
        .enumerate()
        .map(|(i, v)| KinesisRecord::from_payload_line("synth", i + 1, &v.to_string()))
        .collect();
    drop(events);
    let bytes: usize = records.iter().map(|r| r.data.len()).sum();
    super::measure::reset_peak_rss();
    // Lambda also ends a batch at its 6 MB invocation payload: a Kinesis
    // record carries its data base64-encoded plus about 300 bytes of
    // envelope, so batches of agent events hold at most that many.
    let lambda_bytes: usize = records
        .iter()
        .map(|r| r.data.len().div_ceil(3) * 4 + 300)
        .sum();
    let per_payload = (LAMBDA_PAYLOAD * records.len()) / lambda_bytes.max(1);
    let bs = args.batch_size.min(per_payload).max(1);
    let retention = AgentActivity::from_env().retention_days;

    let pipeline = Pipeline::new(t.streamfold.ctx.clone(), &[ProcessorKind::AgentActivity]);
    let mut watch = Stopwatch::new(t.streamfold.counter.clone());
    let counts = streamfold_side(&pipeline, &mut watch, &records, bs).await;
    let streamfold = watch.finish(outcomes(&counts));

    let mut watch = Stopwatch::new(t.naive.counter.clone());
    let mut tally = Tally::default();
    for batch in records.chunks(bs) {
        watch
            .phase(agent_batch(
                t.naive.ddb(),
                &t.naive.table,
                batch,
                retention,
                &mut tally,
            ))
            .await
            .context("naive agent day")?;
    }
    let naive = watch.finish(tally.describe());

    let views = compare_tables(
        &t.streamfold_src,
        &t.naive_src,
        &["agent", "activity", "daily"],
        &[],
        EXPECTED,
    )
    .await?;
    let rate = records_per_cpu_second(records.len(), || decode_plan(&records, bs, retention));
    Ok(Report {
        name: "agent day",
        what: format!(
            "{} agents, {}-hour shifts: {} Connect agent events ({} heartbeats, {:.0} MB of JSON), agent-activity",
            args.agents,
            args.shift_hours,
            thousands(records.len() as u64),
            thousands(beats as u64),
            bytes as f64 / 1e6
        ),
        records: records.len(),
        streamfold,
        naive,
        views,
        cpu: vec![("agent-activity", rate)],
        peak_rss_kb: None,
        notes: (bs < args.batch_size)
            .then(|| {
                format!(
                    "batches of {bs} agent events, not {}: Lambda's 6 MB payload holds no more",
                    args.batch_size
                )
            })
            .into_iter()
            .collect(),
    })
}
