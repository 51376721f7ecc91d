//! agent-activity against the local endpoint (DynamoDB and Kinesis).

use std::collections::BTreeMap;

use agent_activity::AgentActivity;
use serde_json::Value;
use streamfold::agents;
use streamfold::input::{Format, KinesisReader};
use streamfold::pipeline::{Pipeline, ProcessorKind, batch_backoff};
use streamfold_shared::engine::{Outcome, run_batch};
use streamfold_shared::executor::Executor;
use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::Key;
use streamfold_shared::kinesis::{KinesisEventFile, KinesisRecord};
use streamfold_tests::{TestTable, fixture, fixtures_dir, kinesis, table};

const AGENT: &str = "4c1f6ad5-0b5e-4d0e-9f53-2b7b1e8f3a10";

fn day_records() -> Vec<KinesisRecord> {
    fixture("connect-agent-events.jsonl")
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| KinesisRecord::from_payload_line("day.jsonl", n + 1, l))
        .collect()
}

async fn run(t: &TestTable, records: &[KinesisRecord]) -> streamfold_shared::engine::Counts {
    let pipeline = Pipeline::new(t.ctx().clone(), &[ProcessorKind::AgentActivity]);
    pipeline
        .run_kinesis_batch_retrying(records, 3, batch_backoff())
        .await
}

/// The table without dead letters, with string sets sorted (DynamoDB gives
/// sets in no particular order).
pub(crate) async fn normalised(t: &TestTable) -> BTreeMap<(String, String), Value> {
    let mut snap = t.snapshot_without(&["deadletter"]).await;
    for v in snap.values_mut() {
        if let Some(Value::Array(ids)) = v.get_mut("claimed") {
            ids.sort_by_key(|x| x.to_string());
        }
    }
    snap
}

fn agent() -> AgentId {
    AgentId::new(AGENT).expect("the agent id is valid")
}

#[tokio::test]
async fn fixture_day_shows_offline_on_sales_with_eleven_entries_and_totals_that_add_up() {
    let t = table("aa-day").await;
    let path = fixtures_dir().join("connect-agent-events.jsonl");
    let pipeline = Pipeline::new(t.ctx().clone(), &[ProcessorKind::AgentActivity]);
    let c = agents::replay_kinesis(&pipeline, &[path], Format::Auto, 100, 3)
        .await
        .expect("the Kinesis replay runs");
    assert_eq!((c.records, c.failed, c.dead_lettered), (12, 0, 0), "{c:?}");

    // Through the CLI functions: by username, via gsi2.
    let profile = agents::find_profile(&t.app, "mgarcia")
        .await
        .expect("the profile is read")
        .expect("the profile exists");
    let p = streamfold::table::to_json(&profile.clone().into_iter().collect());
    assert_eq!(p["status"], "Offline");
    assert_eq!(p["routing_profile"], "Sales");
    assert_eq!(p["gsi2pk"], "AGENTS");
    assert_eq!(p["gsi2sk"], "mgarcia");
    assert_eq!(p["gsi1pk"], "EXT#WAITING");
    assert_eq!(p["gsi1sk"], format!("2026-11-20T14:00:01.001000Z#{AGENT}"));
    assert_eq!(p["last_event_type"], "LOGOUT");
    assert!(p.get("extension").is_none());
    let text = agents::render_profile(&profile);
    assert!(text.contains("Offline") && text.contains("Sales"), "{text}");

    let history = agents::history(&t.app, &agent(), None, None)
        .await
        .expect("the history is read");
    assert_eq!(history.len(), 11);
    let durations: Vec<i64> = history
        .iter()
        .filter_map(|i| streamfold_shared::attrs::n(i, "previous_status_ms"))
        .collect();
    assert_eq!(durations, [57_005_310, 5_394_690, 1_812_000, 6_288_000]);
    // Bounds: the afternoon only.
    let afternoon = agents::history(
        &t.app,
        &agent(),
        Some("2026-11-20T15:00:00Z"),
        Some("2026-11-20T17:45:00Z"),
    )
    .await
    .expect("the history is read");
    assert_eq!(afternoon.len(), 3);

    let days = agents::daily(&t.app, &agent(), None)
        .await
        .expect("the daily totals are read");
    assert_eq!(days.len(), 2);
    let d20 = &days[1];
    assert_eq!(d20.date, "2026-11-20");
    assert_eq!(d20.statuses.get("Available"), Some(&11_682_690));
    assert_eq!(d20.statuses.get("Lunch"), Some(&1_812_000));
    assert_eq!(d20.statuses.get("Offline"), Some(&50_405_310));
    assert_eq!(d20.total_ms, d20.statuses.values().sum::<i64>());
    assert_eq!(days[0].statuses.get("Offline"), Some(&6_600_000));
    // Daily totals are the history's durations, split at midnight.
    let daily_sum: i64 = days.iter().map(|d| d.total_ms).sum();
    assert_eq!(daily_sum, durations.iter().sum::<i64>());
    // The contact-centre totals, by hand from the fixture.
    assert_eq!(d20.metric("handle_ms"), 382_527);
    assert_eq!(d20.metric("hold_ms"), 0);
    assert_eq!(d20.metric("acw_ms"), 34_975);
    assert_eq!(d20.metric("routable_ms"), 11_682_690);
    assert_eq!(d20.metric("npt_ms"), 1_812_000);
    assert_eq!(d20.metric("contacts_handled"), 1);
    assert_eq!(d20.metric("contacts_missed"), 0);
    let occ = d20.occupancy().unwrap_or_default();
    assert!((occ - 417_502.0 / 11_682_690.0).abs() < 1e-12, "{occ}");
    assert!(days[0].metrics.values().all(|v| *v == 0), "{:?}", days[0]);
    assert_eq!(p["state"], "offline");
}

fn night_records() -> Vec<KinesisRecord> {
    let midnight = 1_795_219_200_000; // 2026-11-21T00:00:00Z
    agent_activity::synth::night_shift(midnight)
        .iter()
        .enumerate()
        .map(|(i, v)| KinesisRecord::from_payload_line("night", i + 1, &v.to_string()))
        .collect()
}

/// The hand-computed night (see `synth::night_shift`): two overlapping
/// chats across midnight, a hold, ACW, a missed contact.
async fn assert_night_totals(t: &TestTable) {
    let agent = AgentId::new("synth-night-00001").expect("the agent id is valid");
    let days = agents::daily(&t.app, &agent, None)
        .await
        .expect("the daily totals are read");
    let got: Vec<(String, Vec<i64>)> = days
        .iter()
        .map(|d| {
            (
                d.date.clone(),
                agent_activity::plan::METRICS
                    .iter()
                    .map(|m| d.metric(m))
                    .collect(),
            )
        })
        .collect();
    // handle, hold, acw, routable, npt, handled, missed
    assert_eq!(
        got,
        [
            (
                "2026-11-20".to_owned(),
                vec![410_000, 0, 0, 600_000, 0, 2, 0]
            ),
            (
                "2026-11-21".to_owned(),
                vec![420_000, 60_000, 90_000, 380_000, 1_800_000, 0, 1]
            ),
        ]
    );
    assert_eq!(days[1].occupancy(), Some(1.0), "at most 1");
    assert_eq!(days[1].statuses.get("Lunch"), Some(&1_800_000));
}

#[tokio::test]
async fn contact_centre_totals_across_midnight_once_under_redelivery_shuffle_and_batch_sizes() {
    let reference = table("aa-night-ref").await;
    let c = run(&reference, &night_records()).await;
    assert_eq!(c.failed + c.dead_lettered, 0, "{c:?}");
    assert_night_totals(&reference).await;
    let want = normalised(&reference).await;

    let t = table("aa-night").await;
    let mut rng = fastrand::Rng::with_seed(18);
    for size in [1usize, 3, 100] {
        for _ in 0..2 {
            let mut records = night_records();
            rng.shuffle(&mut records);
            for batch in records.chunks(size) {
                let c = run(&t, batch).await;
                assert_eq!(c.failed + c.dead_lettered, 0, "{c:?}");
            }
            assert_eq!(normalised(&t).await, want, "batches of {size}");
        }
    }
    assert_night_totals(&t).await;
    let profile = agents::find_profile(&t.app, "night01")
        .await
        .expect("the profile is read")
        .expect("the profile exists");
    assert_eq!(
        streamfold_shared::attrs::s(&profile, "state"),
        Some("offline")
    );
}

#[tokio::test]
async fn the_day_twice_shuffled_in_batches_of_1_7_and_100_leaves_the_same_table() {
    let reference = table("aa-ref").await;
    run(&reference, &day_records()).await;
    let want = normalised(&reference).await;
    assert!(!want.is_empty());

    let t = table("aa-shuffled").await;
    let mut rng = fastrand::Rng::with_seed(42);
    for size in [1usize, 7, 100] {
        for _ in 0..2 {
            let mut records = day_records();
            rng.shuffle(&mut records);
            for batch in records.chunks(size) {
                let c = run(&t, batch).await;
                assert_eq!(c.failed + c.dead_lettered, 0, "{c:?}");
            }
            assert_eq!(normalised(&t).await, want, "batches of {size}");
        }
    }
}

#[tokio::test]
async fn lambda_kinesis_event_processes_three_and_dead_letters_the_fourth() {
    let t = table("aa-lambda").await;
    let event: aws_lambda_events::event::kinesis::KinesisEvent =
        serde_json::from_str(&fixture("lambda-kinesis-event.json"))
            .expect("the text is JSON of that shape");
    let response = streamfold_shared::lambda::handle_kinesis_event(
        &AgentActivity::default(),
        t.ctx(),
        event.clone(),
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let letters = t.items_of_type("deadletter").await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("data is not JSON"))
    );
    assert_eq!(letters[0]["processor"], "agent-activity");
    assert_eq!(t.items_of_type("activity").await.len(), 3);
    // Delivered again: nothing changes, still one dead letter.
    let before = t.snapshot().await;
    streamfold_shared::lambda::handle_kinesis_event(&AgentActivity::default(), t.ctx(), event)
        .await;
    assert_eq!(t.snapshot().await, before);
}

#[tokio::test]
async fn the_spelling_variant_folds_like_the_canonical_spelling() {
    let variant = fixture("connect-agent-event-variant.json");
    let canonical = variant
        .replace("\"EnqueueTimestamp\"", "\"EnqueuedTimestamp\"")
        .replace("\"TASKS\"", "\"TASK\"");
    let a = table("aa-variant").await;
    let b = table("aa-canonical").await;
    let ca = run(&a, &[KinesisRecord::from_payload_line("v", 1, &variant)]).await;
    let cb = run(&b, &[KinesisRecord::from_payload_line("v", 1, &canonical)]).await;
    assert_eq!((ca.applied, cb.applied), (1, 1));
    let snap = normalised(&a).await;
    assert_eq!(snap, normalised(&b).await);
    let profile = &snap[&(format!("AGENT#{AGENT}"), "PROFILE".to_owned())];
    assert_eq!(profile["next_status"], "Break");
    assert_eq!(profile["contacts"][0]["channel"], "TASK");
}

#[tokio::test]
async fn malformed_records_are_dead_lettered_without_names_and_never_block() {
    let t = table("aa-bad").await;
    let good = fixture("connect-agent-events.jsonl")
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut v: Value = serde_json::from_str(&good).expect("the text is JSON of that shape");
    v["EventId"] = "bad-base".into();
    let mut variants = vec![
        "not json at all".to_owned(),
        "{\"AgentARN\": \"Maria Garcia".to_owned(),
    ];
    for (field, value) in [
        ("AgentARN", Value::Null),
        ("EventId", Value::Null),
        ("EventTimestamp", Value::Null),
        ("Version", Value::from("2099-12-31")),
    ] {
        let mut bad = v.clone();
        if value.is_null() {
            bad.as_object_mut().map(|o| o.remove(field));
        } else {
            bad[field] = value;
        }
        variants.push(bad.to_string());
    }
    let mut records: Vec<KinesisRecord> = variants
        .iter()
        .enumerate()
        .map(|(i, l)| KinesisRecord::from_payload_line("bad.jsonl", i + 1, l))
        .collect();
    records.push(KinesisRecord::from_payload_line("bad.jsonl", 99, &good));
    let report = run_batch(&AgentActivity::default(), t.ctx(), &records).await;
    assert!(report.failures.is_empty(), "{report:?}");
    let dead: Vec<&String> = report
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::DeadLettered(why) => Some(why),
            _ => None,
        })
        .collect();
    assert_eq!(dead.len(), 6, "{:?}", report.outcomes);
    for why in &dead {
        assert!(!why.contains("Maria") && !why.contains("Garcia"), "{why}");
    }
    for needle in [
        "not JSON",
        "AgentARN",
        "EventId",
        "EventTimestamp",
        "Version \"2099-12-31\"",
    ] {
        assert!(
            dead.iter().any(|w| w.contains(needle)),
            "{needle}: {dead:?}"
        );
    }
    assert_eq!(report.outcomes.last(), Some(&Outcome::Applied));
    assert_eq!(t.items_of_type("deadletter").await.len(), 6);
    assert_eq!(t.items_of_type("agent").await.len(), 1);
}

#[tokio::test]
async fn fixture_events_through_a_kinesis_stream_fold_like_the_file() {
    let t = table("aa-kinesis").await;
    let kinesis = kinesis::client().await;
    let stream = t.name.clone();
    kinesis::create_stream(&kinesis, &stream, 1).await;
    kinesis::put_agent_events(&kinesis, &stream, &fixture("connect-agent-events.jsonl")).await;
    let mut records = Vec::new();
    for shard in kinesis::shards(&kinesis, &stream).await {
        records.extend(kinesis::shard_records(&kinesis, &stream, &shard.shard_id, None).await);
    }
    assert_eq!(records.len(), 12);
    run(&t, &records).await;
    let reference = table("aa-kinesis-ref").await;
    run(&reference, &day_records()).await;
    assert_eq!(normalised(&t).await, normalised(&reference).await);
    let _ = kinesis.delete_stream().stream_name(&stream).send().await;
}

#[tokio::test]
async fn lambda_event_files_replay_like_the_lambda_handler() {
    let t = table("aa-file").await;
    let path = fixtures_dir().join("lambda-kinesis-event.json");
    let mut reader = KinesisReader::open(&path, Format::Auto).expect("the file opens");
    let batch = reader.next_batch(100).expect("the next batch is read");
    let file: KinesisEventFile = serde_json::from_str(&fixture("lambda-kinesis-event.json"))
        .expect("the text is JSON of that shape");
    assert_eq!(batch, file.records);
    let c = run(&t, &batch).await;
    assert_eq!((c.records, c.dead_lettered, c.failed), (4, 1, 0));
}

#[tokio::test]
async fn a_day_of_20_agents_adds_up() {
    day_of_agents(20).await;
}

/// The 200 agents: minutes on moto, which copies a whole table on
/// every transaction. `cargo test -p streamfold-tests -- --ignored a_day_of_200`.
#[tokio::test]
#[ignore = "slow on the local endpoint; run with --ignored"]
async fn a_day_of_200_agents_adds_up() {
    day_of_agents(200).await;
}

async fn day_of_agents(n: usize) {
    let t = table("aa-day").await;
    let day_start = 1_795_132_800_000; // 2026-11-18T00:00:00Z
    // Short shifts keep the test quick on the local endpoint (moto copies a
    // whole table on every transaction); the 500-agent benchmark below runs
    // whole days.
    let events = agent_activity::synth::shifts(n, 3, day_start, 20 * 60_000);
    let records: Vec<KinesisRecord> = events
        .iter()
        .enumerate()
        .map(|(i, v)| KinesisRecord::from_payload_line("synth", i + 1, &v.to_string()))
        .collect();
    t.counter().reset();
    let mut applied = 0;
    for batch in records.chunks(1000) {
        let c = run(&t, batch).await;
        assert_eq!(c.failed + c.dead_lettered, 0, "{c:?}");
        applied += c.applied;
    }
    let requests = t.counter().total();
    println!(
        "{n} agents: {} events, {applied} applied, {requests} requests ({:.3} per event): {:?}",
        records.len(),
        requests as f64 / records.len() as f64,
        t.counter().snapshot()
    );
    let agents_list = agents::list(&t.app).await.expect("the agents are listed");
    assert_eq!(agents_list.len(), n);
    let non_heartbeats = events
        .iter()
        .filter(|e| e["EventType"] != "HEART_BEAT")
        .count();
    let history = t.items_of_type("activity").await;
    assert_eq!(history.len(), non_heartbeats);
    // Per agent: the daily totals are the sum of the history's durations.
    let mut from_history: BTreeMap<String, i64> = BTreeMap::new();
    for h in &history {
        *from_history
            .entry(h["agent_id"].as_str().unwrap_or_default().to_owned())
            .or_default() += h["previous_status_ms"].as_i64().unwrap_or(0);
    }
    let mut from_daily: BTreeMap<String, i64> = BTreeMap::new();
    for d in t.items_of_type("daily").await {
        *from_daily
            .entry(d["agent_id"].as_str().unwrap_or_default().to_owned())
            .or_default() += d["total_ms"].as_i64().unwrap_or(0);
    }
    assert_eq!(from_history.len(), n);
    assert_eq!(from_daily, from_history);
    // Everyone logged out but the last agent, whose CCP closed: shown
    // stale from five minutes after its last event on.
    let closed = format!("agent{:05}", n - 1);
    for p in &agents_list {
        let user = streamfold_shared::attrs::s(p, "username").unwrap_or_default();
        if user == closed {
            assert_ne!(streamfold_shared::attrs::s(p, "state"), Some("offline"));
            let last = streamfold_shared::attrs::s(p, "last_event_at")
                .and_then(|t| streamfold_shared::ids::Timestamp::parse(t).ok())
                .map(|t| t.epoch_millis())
                .unwrap_or_default();
            assert!(!agents::is_stale(p, last + 299_000, 300_000));
            assert!(agents::is_stale(p, last + 301_000, 300_000));
        } else {
            assert_eq!(streamfold_shared::attrs::s(p, "status"), Some("Offline"));
            assert_eq!(streamfold_shared::attrs::s(p, "state"), Some("offline"));
        }
    }
    // Holds and missed contacts were counted.
    let daily = t.items_of_type("daily").await;
    let sum = |name: &str| -> i64 { daily.iter().map(|d| d[name].as_i64().unwrap_or(0)).sum() };
    assert!(sum("hold_ms") > 0 && sum("contacts_missed") > 0 && sum("acw_ms") > 0);
    assert!(sum("handle_ms") >= sum("hold_ms"));
}

/// The benchmark of requests per event (issue 3): one day of 500 agents,
/// heartbeats included, in Lambda-sized batches. Prints figures, asserts
/// nothing about them. Run with
/// `cargo test -p streamfold-tests -- --ignored requests_per_event --nocapture`
/// (`AA_BENCH_BATCHES=100,1000` picks the batch sizes).
///
/// Run it against `STREAMFOLD_MOTO_TXN=items scripts/endpoint start`: moto
/// as pinned copies the whole table for every action of a transaction and
/// runs out of memory at this scale. To keep the endpoint small the table
/// has no stream, and each batch's history items are deleted after the
/// batch by a separate, uncounted client (history is append-only; no later
/// write reads it). The requests counted are exactly the processor's.
#[tokio::test]
#[ignore = "benchmark: slow; prints figures"]
async fn requests_per_event_for_a_day_of_500_agents() {
    // `AA_BENCH_SHIFT_HOURS` shortens the shifts (default a full 8-hour
    // day): shorter shifts are a denser mix (more logins, logouts and
    // contacts per heartbeat), so their figure bounds the day's from above.
    let shift_hours: i64 = std::env::var("AA_BENCH_SHIFT_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(8);
    // `AA_BENCH_AGENTS` changes the number of agents (default 500).
    let agents: usize = std::env::var("AA_BENCH_AGENTS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(500);
    let events =
        agent_activity::synth::shifts(agents, 11, 1_795_132_800_000, shift_hours * 3_600_000);
    let records: Vec<KinesisRecord> = events
        .iter()
        .enumerate()
        .map(|(i, v)| KinesisRecord::from_payload_line("synth", i + 1, &v.to_string()))
        .collect();
    let beats = events
        .iter()
        .filter(|e| e["EventType"] == "HEART_BEAT")
        .count();
    let batch_sizes: Vec<usize> = std::env::var("AA_BENCH_BATCHES")
        .ok()
        .map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000]);
    for batch_size in batch_sizes {
        let t = streamfold_tests::table_without_stream("aa-500b").await;
        // One request at a time: the local endpoint answers concurrent
        // transactions with 500s that the SDK retries, which would count.
        let mut ctx = t.ctx().clone();
        ctx.concurrency = 1;
        let pipeline = Pipeline::new(ctx, &[ProcessorKind::AgentActivity]);
        let cleaner = Executor::new(
            aws_sdk_dynamodb::Client::new(&streamfold_shared::config::load_sdk_config().await),
            t.name.clone(),
        );
        let mut requests = 0u64;
        let mut by_op: BTreeMap<String, u64> = BTreeMap::new();
        let started = std::time::Instant::now();
        for batch in records.chunks(batch_size) {
            t.counter().reset();
            let c = pipeline
                .run_kinesis_batch_retrying(batch, 3, batch_backoff())
                .await;
            assert_eq!(c.failed + c.dead_lettered, 0, "{c:?}");
            requests += t.counter().total();
            for (op, n) in t.counter().snapshot() {
                *by_op.entry(op).or_default() += n;
            }
            let history: Vec<Key> = batch
                .iter()
                .filter_map(|r| agent_activity::decode_event(&r.data).ok())
                .filter(|e| e.kind != agent_activity::EventType::HeartBeat)
                .map(|e| Key::Activity {
                    agent: e.agent.clone(),
                    at: e.at,
                    event: e.id.clone(),
                })
                .collect();
            cleaner
                .batch_delete(&history)
                .await
                .expect("the items are deleted");
        }
        let days = t.items_of_type("daily").await.len();
        println!(
            "{agents} agents, {shift_hours}-hour shifts, {} events ({beats} heartbeats), batches of {batch_size}: {requests} requests = {:.3} per event in {:.1} s; {days} daily items; {by_op:?}",
            records.len(),
            requests as f64 / records.len() as f64,
            started.elapsed().as_secs_f64(),
        );
    }
}

#[tokio::test]
async fn roster_follows_routing_profile_changes_and_logouts_in_any_order() {
    use streamfold::routing_profiles;
    let t = table("aa-roster").await;
    let records = day_records();
    // Up to the heartbeat: on the Basic Routing Profile, available.
    run(&t, &records[..7]).await;
    let rps = routing_profiles::rosters(&t.app)
        .await
        .expect("the rosters are read");
    let names: Vec<(&str, usize)> = rps
        .iter()
        .map(|r| (r.id.as_str(), r.agents.len()))
        .collect();
    assert_eq!(names, [("rp-basic", 1)]);
    let basic = &rps[0];
    assert_eq!(basic.name, "Basic Routing Profile");
    // The agent's own queue is not the profile's.
    let queues: Vec<&str> = basic.inbound_queues.iter().map(|q| q.0.as_str()).collect();
    assert_eq!(queues, ["BasicQueue"]);
    assert_eq!(basic.default_outbound_queue.as_deref(), Some("BasicQueue"));
    assert_eq!(basic.agents[0].state, "available");
    // The rest, newest first and twice: moved to Sales, logged out.
    let mut rest: Vec<KinesisRecord> = records[7..].iter().rev().cloned().collect();
    rest.extend(records.iter().cloned());
    for batch in rest.chunks(2) {
        run(&t, batch).await;
    }
    let rps = routing_profiles::rosters(&t.app)
        .await
        .expect("the rosters are read");
    let names: Vec<(&str, usize)> = rps
        .iter()
        .map(|r| (r.id.as_str(), r.agents.len()))
        .collect();
    assert_eq!(names, [("rp-basic", 0), ("rp-sales", 1)]);
    assert_eq!(rps[1].name, "Sales");
    assert_eq!(rps[1].agents[0].state, "offline");
    assert!(!rps[1].agents[0].stale, "offline is never stale");
    let item = t
        .ctx()
        .exec
        .get(
            &Key::RoutingProfile(
                streamfold_shared::ids::RoutingProfileId::new("rp-sales")
                    .expect("the routing profile id is valid"),
            ),
            true,
        )
        .await
        .expect("the routing profile id is valid")
        .expect("the rp-sales item exists");
    // The newest event that showed it: the LOGOUT.
    assert_eq!(
        streamfold_shared::attrs::s(&item, "last_event_at"),
        Some("2026-11-20T17:45:01.000000Z")
    );
    let text = routing_profiles::render_list(&rps);
    assert!(text.contains("offline 1"), "{text}");
}

/// Write units of `op` on the table itself (no index), as the endpoint
/// answered them.
fn table_units(t: &TestTable, op: &str) -> f64 {
    t.counter()
        .capacity()
        .iter()
        .filter(|(k, _)| k.operation == op && k.index.is_empty())
        .map(|(_, u)| u.write)
        .sum()
}

/// The two commit modes (`STREAMFOLD_ACTIVITY_COMMIT`) leave the same
/// table. `single` sends each one-item update as its own conditional
/// UpdateItem, billed once; `shared` packs them into TransactWriteItems,
/// billed twice: exactly twice the table's write units for the same
/// updates. Claims spanning midnight (two daily items) are a transaction
/// in both.
#[tokio::test]
async fn single_and_shared_commits_leave_the_same_table_at_half_the_write_units() {
    let day_start = 1_795_132_800_000; // 2026-11-18T00:00:00Z
    let events = agent_activity::synth::shifts(12, 5, day_start, 20 * 60_000);
    let mut records: Vec<KinesisRecord> = events
        .iter()
        .enumerate()
        .map(|(i, v)| KinesisRecord::from_payload_line("synth", i + 1, &v.to_string()))
        .collect();
    let night = night_records();
    let night_len = night.len();
    records.extend(night);
    let mut tables = Vec::new();
    for mode in [
        agent_activity::CommitMode::Single,
        agent_activity::CommitMode::Shared,
    ] {
        let processor = AgentActivity {
            commit: mode,
            ..AgentActivity::default()
        };
        let t = table(&format!("aa-commit-{}", mode.as_str())).await;
        t.counter().reset();
        for batch in records.chunks(100) {
            let report = run_batch(&processor, t.ctx(), batch).await;
            assert!(
                report.failures.is_empty(),
                "{mode:?}: {:?}",
                report.outcomes
            );
        }
        let requests = t.counter().snapshot();
        let transacted = table_units(&t, "TransactWriteItems");
        let updated = table_units(&t, "UpdateItem");
        let history = table_units(&t, "BatchWriteItem");
        tables.push((
            mode,
            normalised(&t).await,
            requests,
            transacted,
            updated,
            history,
            t,
        ));
    }
    let (_, single, single_req, single_tx, single_upd, single_hist, _) = &tables[0];
    let (_, shared, shared_req, shared_tx, shared_upd, shared_hist, _) = &tables[1];
    assert_eq!(single, shared, "the modes leave the same items");
    assert_eq!(single_hist, shared_hist, "history is written alike");
    assert_eq!(
        *shared_upd, 0.0,
        "shared sends no UpdateItem: {shared_req:?}"
    );
    assert!(*single_upd > 0.0, "{single_req:?}");
    // Single's transactions are the midnight claims only (the night's
    // events); shared packs everything.
    assert!(
        single_req.get("TransactWriteItems").copied().unwrap_or(0) <= night_len as u64,
        "{single_req:?}"
    );
    assert!(
        single_req.get("TransactWriteItems").copied().unwrap_or(0)
            < shared_req.get("TransactWriteItems").copied().unwrap_or(0),
        "{single_req:?} {shared_req:?}"
    );
    // Every update costs the same units in both, twice inside a transaction.
    assert_eq!(
        2.0 * (single_upd + single_tx / 2.0),
        *shared_tx,
        "single {single_upd} + {single_tx} (tx), shared {shared_tx} (tx)"
    );
}
