//! Decode + plan throughput of agent-activity on one core: 100,000
//! synthetic Connect agent events (a realistic mix, heartbeats included) as
//! Kinesis records, decoded, grouped by agent in batches of 1,000 and planned
//! (history items, daily claims, the profile update). No I/O.
//!
//! `cargo bench -p agent-activity` prints the figures; nothing is asserted.
//! Each run is timed by the wall clock and by the thread's time on a CPU
//! (`/proc/thread-self/schedstat`), so a busy machine doesn't hide the
//! figure for one core.

use std::collections::HashMap;
use std::time::Instant;

use agent_activity::plan::{activity_item, contribution, plan_daily, plan_profile};
use agent_activity::{AgentEvent, decode};
use streamfold_shared::engine::Decoded;
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::metrics::thread_cpu_ns;

const EVENTS: usize = 100_000;
const BATCH: usize = 1_000;

/// Decoding alone, for the split of the figure.
fn decode_only(records: &[KinesisRecord]) -> usize {
    records
        .iter()
        .filter(|r| matches!(decode(r), Decoded::Event { .. }))
        .count()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, Option<f64>) {
    let cpu0 = thread_cpu_ns();
    let started = Instant::now();
    let out = f();
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu0.zip(thread_cpu_ns()).map(|(a, b)| (b - a) as f64 / 1e9);
    (out, wall, cpu)
}

fn run(records: &[KinesisRecord]) -> (usize, usize, usize) {
    let (mut items, mut updates, mut invalid) = (0, 0, 0);
    for batch in records.chunks(BATCH) {
        let mut groups: HashMap<streamfold_shared::ids::AgentId, Vec<AgentEvent>> = HashMap::new();
        for r in batch {
            match decode(r) {
                Decoded::Event { key, event } => groups.entry(key).or_default().push(event),
                _ => invalid += 1,
            }
        }
        for events in groups.values() {
            let refs: Vec<&AgentEvent> = events.iter().collect();
            items += refs.iter().filter_map(|e| activity_item(e, 90)).count();
            let contributions: Vec<_> = refs.iter().filter_map(|e| contribution(e)).collect();
            updates += plan_daily(&refs[0].agent, &contributions).len();
            updates += usize::from(plan_profile(&refs[0].agent, None, &refs).is_some());
        }
    }
    (items, updates, invalid)
}

fn main() {
    let day_start = 1_795_132_800_000; // 2026-11-18T00:00:00Z
    let mut events = Vec::new();
    let mut seed = 1;
    while events.len() < EVENTS {
        events.extend(agent_activity::synth::day(100, seed, day_start));
        seed += 1;
    }
    events.truncate(EVENTS);
    let records: Vec<KinesisRecord> = events
        .iter()
        .enumerate()
        .map(|(i, v)| KinesisRecord::from_payload_line("bench", i + 1, &v.to_string()))
        .collect();
    let bytes: usize = records.iter().map(|r| r.data.len()).sum();
    let beats = events
        .iter()
        .filter(|e| e["EventType"] == "HEART_BEAT")
        .count();
    println!(
        "agent-activity decode+plan: {EVENTS} events ({beats} heartbeats), {:.1} MB of JSON, batches of {BATCH}",
        bytes as f64 / 1e6
    );
    let (mut best, mut best_cpu, mut best_decode) = (f64::MAX, f64::MAX, f64::MAX);
    for run_no in 1..=5 {
        let (decoded, d_wall, d_cpu) = timed(|| decode_only(&records));
        best_decode = best_decode.min(d_cpu.unwrap_or(d_wall));
        let ((items, updates, invalid), secs, cpu) = timed(|| run(&records));
        best = best.min(secs);
        best_cpu = best_cpu.min(cpu.unwrap_or(secs));
        println!(
            "  run {run_no}: {:.3} s wall, {:.3} s on CPU: {:.0} events/s per CPU-second ({items} history items, {updates} guarded updates, {invalid} refused); decode alone {:.0} events/s ({decoded} decoded)",
            secs,
            cpu.unwrap_or(secs),
            EVENTS as f64 / cpu.unwrap_or(secs),
            EVENTS as f64 / d_cpu.unwrap_or(d_wall),
        );
    }
    println!(
        "  best: {:.0} events/s per CPU-second ({:.0} wall), {:.0} MB/s; decode alone {:.0} events/s (goal: >= 150,000 events/s on one core)",
        EVENTS as f64 / best_cpu,
        EVENTS as f64 / best,
        bytes as f64 / best_cpu / 1e6,
        EVENTS as f64 / best_decode,
    );
}
