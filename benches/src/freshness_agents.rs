//! `streamfold-bench freshness --agents N`: an agent event put into the
//! Connect agent stream (Kinesis) until the agent's profile shows it or a
//! newer event (`last_event_at`/`last_event_id` move forward only), through
//! the real `streamfold tail --processor agent-activity --kinesis-stream`.
//! The events are a synthetic working day's (`synth::shifts`), in the order
//! one shard carries them, put at a steady rate and then in a burst.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use serde_json::Value;
use streamfold_shared::attrs::s;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{AgentId, Timestamp};
use streamfold_shared::keys::Key;

use crate::freshness::{FreshnessArgs, Pending, settle, spawn_tail, summary, watch};

/// One event to put: its agent, order key, partition key and JSON.
struct Event {
    agent: AgentId,
    order: Order,
    partition: String,
    json: String,
}

fn events(agents: usize, count: usize) -> Result<Vec<Event>> {
    let day_start = 1_795_132_800_000; // 2026-11-18T00:00:00Z
    let day = agent_activity::synth::shifts(agents, 21, day_start, 8 * 3_600_000);
    day.iter()
        .take(count)
        .map(|e: &Value| {
            let text = |k: &str| e[k].as_str().map(str::to_owned).context(k.to_owned());
            let arn = text("AgentARN")?;
            let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
            Ok(Event {
                agent: AgentId::new(id)?,
                order: (
                    Timestamp::parse(&text("EventTimestamp")?)?,
                    text("EventId")?,
                ),
                partition: arn,
                json: e.to_string(),
            })
        })
        .collect()
}

type Order = (Timestamp, String);

fn profile_key(a: &AgentId) -> Result<Key> {
    Ok(Key::Profile(a.clone()))
}

/// The agent of a profile and the newest event it shows.
fn profile_shown(item: &Item) -> Option<(AgentId, Order)> {
    let agent = AgentId::new(s(item, "agent_id")?).ok()?;
    let at = Timestamp::parse(s(item, "last_event_at")?).ok()?;
    let id = s(item, "last_event_id").unwrap_or_default().to_owned();
    Some((agent, (at, id)))
}

async fn put_all(
    k: &aws_sdk_kinesis::Client,
    stream: &str,
    chunk: &[Event],
    pending: &mut HashMap<AgentId, Vec<Pending<Order>>>,
) -> Result<()> {
    let entries = chunk
        .iter()
        .map(|e| {
            PutRecordsRequestEntry::builder()
                .partition_key(&e.partition)
                .data(Blob::new(e.json.as_bytes().to_vec()))
                .build()
                .map_err(|e| anyhow!("a Kinesis record: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let sent = Instant::now();
    let out = k
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .map_err(|e| anyhow!("PutRecords: {e}"))?;
    if out.failed_record_count.unwrap_or(0) > 0 {
        return Err(anyhow!("PutRecords: some records were refused"));
    }
    for e in chunk {
        pending.entry(e.agent.clone()).or_default().push(Pending {
            key: e.order.clone(),
            sent,
        });
    }
    Ok(())
}

/// Runs the steady phase and the burst for agent events; the two table rows.
pub async fn run(args: &FreshnessArgs, bin: &std::path::Path) -> Result<Vec<String>> {
    let sdk = streamfold_shared::config::load_sdk_config().await;
    let name = format!("freshness-agents-{}", std::process::id());
    let app = streamfold::app::App::new(sdk.clone(), &name)?;
    let schema = streamfold::table::Schema::builtin()?;
    streamfold::table::create(app.ddb(), &name, &schema).await?;
    let k = aws_sdk_kinesis::Client::new(&sdk);
    k.create_stream()
        .stream_name(&name)
        .shard_count(1)
        .send()
        .await
        .map_err(|e| anyhow!("creating the Kinesis stream: {e}"))?;
    for _ in 0..300 {
        let d = k.describe_stream_summary().stream_name(&name).send().await;
        let active = d
            .ok()
            .and_then(|d| d.stream_description_summary)
            .is_some_and(|s| s.stream_status == StreamStatus::Active);
        if active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exec = &app.ctx.exec;
    let steady_n = (args.agent_rate * args.seconds as f64).round() as usize;
    let all = events(args.agents, 1 + steady_n + args.agent_burst)?;
    let mut child = spawn_tail(
        bin,
        &name,
        args,
        &["--processor", "agent-activity", "--kinesis-stream", &name],
    )?;
    // The first event shown: tail is running and reads the stream.
    let (first, rest) = all.split_at(1.min(all.len()));
    let mut warm = HashMap::new();
    put_all(&k, &name, first, &mut warm).await?;
    watch(
        exec,
        &mut warm,
        &mut Vec::new(),
        Some(Instant::now() + Duration::from_secs(120)),
        profile_key,
        profile_shown,
    )
    .await?;

    let (steady_events, burst_events) = rest.split_at(steady_n.min(rest.len()));
    let mut pending = HashMap::new();
    let mut steady = Vec::new();
    let every = Duration::from_secs_f64(1.0 / args.agent_rate.max(0.01));
    let began = Instant::now();
    for (n, e) in steady_events.iter().enumerate() {
        let due = began + every * n as u32;
        while Instant::now() < due {
            let next = (Instant::now() + Duration::from_millis(20)).min(due);
            watch(
                exec,
                &mut pending,
                &mut steady,
                Some(next),
                profile_key,
                profile_shown,
            )
            .await?;
            tokio::time::sleep(due.saturating_duration_since(Instant::now())).await;
        }
        put_all(&k, &name, std::slice::from_ref(e), &mut pending).await?;
    }
    let steady_lost = settle(
        exec,
        &mut pending,
        &mut steady,
        60,
        profile_key,
        profile_shown,
    )
    .await?;

    let mut pending = HashMap::new();
    let mut burst = Vec::new();
    let posted = Instant::now();
    for chunk in burst_events.chunks(500) {
        put_all(&k, &name, chunk, &mut pending).await?;
    }
    let burst_secs = posted.elapsed().as_secs_f64();
    let burst_lost = settle(
        exec,
        &mut pending,
        &mut burst,
        120,
        profile_key,
        profile_shown,
    )
    .await?;
    let _ = child.kill().await;
    let _ = k.delete_stream().stream_name(&name).send().await;
    streamfold::table::delete(app.ddb(), &name).await?;
    Ok(vec![
        summary(
            &format!(
                "agent events, steady, {} events/s for {} s ({} agents)",
                args.agent_rate, args.seconds, args.agents
            ),
            steady,
            steady_lost,
        ),
        summary(
            &format!(
                "agent events, burst, {} events put in {burst_secs:.1} s",
                burst_events.len()
            ),
            burst,
            burst_lost,
        ),
    ])
}
