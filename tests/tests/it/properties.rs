//! Property tests of the projections against the local endpoint: for random
//! event logs, delivering them in any order, in any batches, with any
//! duplication gives the same projections as applying them once in order
//! (docs/design.md, "Idempotent and order-insensitive").
//!
//! Seeded: every case prints its seed; `STREAMFOLD_PROPERTY_SEED=<seed>`
//! replays exactly that log and that delivery. Small on purpose (a few cases
//! of ~40 events) so the file stays well under a minute on moto.

use std::collections::BTreeMap;

use agent_activity::AgentActivity;
use message_groups::{MessageGroups, Participant};
use serde_json::{Value, json};
use streamfold::chat::{self, NewMessage};
use streamfold_shared::engine::{Outcome, Processor, SourceRecord, run_batch};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_tests::{TestTable, table};

use crate::agent_activity::normalised;

/// Cases per processor, and events per log.
const CASES: u64 = 6;
const EVENTS: usize = 40;
/// A failed record is redelivered (as Lambda would) at most this often.
const REDELIVERIES: usize = 5;

/// The seeds of this run: the one given, or fresh ones (printed either way).
fn seeds(what: &str) -> Vec<u64> {
    let given = std::env::var("STREAMFOLD_PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let seeds: Vec<u64> = match given {
        Some(seed) => vec![seed],
        None => (0..CASES).map(|_| fastrand::u64(..)).collect(),
    };
    for seed in &seeds {
        println!("{what}: seed {seed} (rerun: STREAMFOLD_PROPERTY_SEED={seed})");
    }
    seeds
}

/// Any delivery of a log: every record one to three times, all shuffled,
/// cut into batches of random sizes (one record up to all of them).
fn scramble<R: Clone>(rng: &mut fastrand::Rng, log: &[R]) -> Vec<Vec<R>> {
    let mut all: Vec<R> = Vec::new();
    for r in log {
        for _ in 0..rng.usize(1..=3) {
            all.push(r.clone());
        }
    }
    rng.shuffle(&mut all);
    let mut batches = Vec::new();
    while !all.is_empty() {
        let size = match rng.u8(0..4) {
            0 => 1,
            1 => all.len(),
            _ => rng.usize(1..=12),
        };
        let rest = all.split_off(size.min(all.len()));
        batches.push(std::mem::replace(&mut all, rest));
    }
    batches
}

/// Runs one batch through the processor's engine, redelivering the records
/// it reports as failed (transient errors, e.g. the endpoint's occasional
/// 500s under concurrent transactions) like Lambda would. Nothing may end
/// dead-lettered or still failing.
async fn deliver<P>(processor: &P, t: &TestTable, batch: &[P::Record], seed: u64)
where
    P: Processor,
    P::Record: SourceRecord + Clone,
{
    let mut pending = batch.to_vec();
    for _ in 0..=REDELIVERIES {
        let report = run_batch(processor, t.ctx(), &pending).await;
        let dead = report
            .outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::DeadLettered(_)))
            .count();
        assert_eq!(dead, 0, "seed {seed}: {:?}", report.outcomes);
        if report.failures.is_empty() {
            return;
        }
        // Lambda retries from the first failure on.
        let first = pending
            .iter()
            .position(|r| report.failures.iter().any(|f| f == r.sequence_number()))
            .unwrap_or(0);
        pending.drain(..first);
    }
    panic!("seed {seed}: records still failing after {REDELIVERIES} redeliveries");
}

/// Asserts two table snapshots are equal, naming only the items that differ.
fn assert_same(
    got: &BTreeMap<(String, String), Value>,
    want: &BTreeMap<(String, String), Value>,
    seed: u64,
) {
    let keys: std::collections::BTreeSet<_> = got.keys().chain(want.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| format!("{k:?}:\n  got  {:?}\n  want {:?}", got.get(k), want.get(k)))
        .collect();
    assert!(
        differ.is_empty(),
        "seed {seed}: {} items differ from the in-order run:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

// ---- message-groups ----------------------------------------------------------

const DAY: &str = "2026-11-20";

fn participant(n: usize) -> Participant {
    Participant {
        user_uuid: UserId::new(format!("user-{n}")).unwrap_or_else(|e| panic!("{e}")),
        user_handle: format!("u{n}"),
        user_display_name: format!("User {n}"),
    }
}

/// A random chat: 2 to 4 groups of 5 users, `EVENTS` messages in all at
/// times chosen from a few minutes, so equal timestamps are common.
fn chat_log(rng: &mut fastrand::Rng) -> Vec<([Participant; 2], Vec<NewMessage>)> {
    let users: Vec<Participant> = (0..5).map(participant).collect();
    let groups = rng.usize(2..=4);
    let mut log: Vec<([Participant; 2], Vec<NewMessage>)> = (0..groups)
        .map(|_| {
            let a = rng.usize(0..users.len());
            let b = (a + rng.usize(1..users.len())) % users.len();
            ([users[a].clone(), users[b].clone()], Vec::new())
        })
        .collect();
    for n in 0..EVENTS {
        let g = if n < groups { n } else { rng.usize(0..groups) };
        let (pair, messages) = &mut log[g];
        let at = format!(
            "{DAY}T10:{:02}:{:02}{}Z",
            rng.u8(0..4),
            [0u8, 30][rng.usize(0..2)],
            if rng.bool() { "" } else { ".5" }
        );
        messages.push(NewMessage {
            group: GroupId::new(format!("group-{g}")).unwrap_or_else(|e| panic!("{e}")),
            id: MessageId::new(format!("m{:08x}", rng.u32(..))).unwrap_or_else(|e| panic!("{e}")),
            at: Timestamp::parse(&at).unwrap_or_else(|e| panic!("{e}")),
            sender: pair[rng.usize(0..2)].clone(),
            text: format!("text {n}"),
        });
    }
    log
}

/// Writes the chat like the app does (each group with its first message,
/// then the others) and returns the table stream's records.
async fn write_chat(
    t: &TestTable,
    log: &[([Participant; 2], Vec<NewMessage>)],
) -> Vec<streamfold_shared::record::StreamRecord> {
    let mut rest = Vec::new();
    for (pair, messages) in log {
        let Some((first, others)) = messages.split_first() else {
            continue;
        };
        chat::create_group(t.exec(), pair.clone(), first.at, first)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        rest.extend(others.iter().map(NewMessage::item));
    }
    t.exec()
        .batch_put(rest)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    t.stream_records().await
}

#[tokio::test]
async fn message_groups_any_order_batching_and_duplication_give_the_same_previews() {
    streamfold_tests::init_logs();
    for seed in seeds("message-groups") {
        let mut rng = fastrand::Rng::with_seed(seed);
        let log = chat_log(&mut rng);

        // Once, in order.
        let reference = table("prop-mg-ref").await;
        let records = write_chat(&reference, &log).await;
        deliver(&MessageGroups, &reference, &records, seed).await;
        let want = reference.snapshot().await;
        let groups = log.len();
        // Each group shows its newest message to both of its participants.
        let previews: Vec<&Value> = want.values().filter(|v| v["type"] == "preview").collect();
        assert_eq!(previews.len(), 2 * groups, "seed {seed}");
        for (pair, messages) in &log {
            let newest = messages
                .iter()
                .max_by_key(|m| (m.at, m.id.as_str().to_owned()))
                .unwrap_or_else(|| panic!("seed {seed}: empty group"));
            let group = newest.group.as_str();
            for owner in pair {
                let key = (
                    format!("GRP#{}", owner.user_uuid.as_str()),
                    format!("{}#{group}", newest.at),
                );
                let shown = want
                    .get(&key)
                    .unwrap_or_else(|| panic!("seed {seed}: no preview {key:?}"));
                assert_eq!(shown["message"], newest.text.as_str(), "seed {seed}");
                assert_eq!(
                    shown["last_message_uuid"],
                    newest.id.as_str(),
                    "seed {seed}"
                );
            }
        }

        // Any order, any batches, every record one to three times.
        let t = table("prop-mg").await;
        let records = write_chat(&t, &log).await;
        for batch in scramble(&mut rng, &records) {
            deliver(&MessageGroups, &t, &batch, seed).await;
        }
        assert_same(&t.snapshot().await, &want, seed);
        reference.drop_table().await;
        t.drop_table().await;
    }
}

// ---- agent-activity ----------------------------------------------------------

const INSTANCE: &str = "arn:aws:connect:us-east-1:012345678901:instance/prop";
/// 2026-11-18T00:00:00Z
const DAY_START_MS: i64 = 1_795_132_800_000;

fn ts(ms: i64) -> String {
    Timestamp::from_epoch_millis(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// One agent as the generator moves it along.
struct Agent {
    id: String,
    clock: i64,
    logged_in: bool,
    status: (&'static str, &'static str, i64),
    profile: &'static str,
    contacts: Vec<(String, &'static str, i64)>,
}

impl Agent {
    fn snapshot(&self) -> Value {
        let (name, kind, since) = self.status;
        json!({
            "AgentStatus": {"ARN": format!("{INSTANCE}/agent-state/{name}"), "Name": name,
                            "StartTimestamp": ts(since), "Type": kind},
            "Configuration": {
                "FirstName": "Prop", "LastName": "Agent", "Username": format!("user-{}", self.id),
                "RoutingProfile": {"ARN": format!("{INSTANCE}/routing-profile/{}", self.profile),
                                   "Name": self.profile}
            },
            "Contacts": self.contacts.iter().map(|(id, state, since)| json!({
                "ContactId": id, "Channel": "VOICE", "InitiationMethod": "INBOUND",
                "State": state, "StateStartTimestamp": ts(*since),
                "Queue": {"Name": "BasicQueue"}
            })).collect::<Vec<_>>()
        })
    }
}

/// A random log of `EVENTS` Connect agent events of 2 or 3 agents: logins,
/// status and routing-profile changes, contacts, heartbeats and logouts,
/// each with the previous snapshot Connect would send; gaps from none (equal
/// timestamps, ordered by EventId) to most of a day (periods over midnight).
fn agent_log(rng: &mut fastrand::Rng) -> Vec<Value> {
    const STATUSES: [(&str, &str); 4] = [
        ("Available", "ROUTABLE"),
        ("Lunch", "CUSTOM"),
        ("Training", "CUSTOM"),
        ("Offline", "OFFLINE"),
    ];
    let mut agents: Vec<Agent> = (0..rng.usize(2..=3))
        .map(|a| Agent {
            id: format!("prop-agent-{a}"),
            clock: DAY_START_MS + rng.i64(0..3_600_000),
            logged_in: false,
            status: ("Offline", "OFFLINE", DAY_START_MS - 3_600_000),
            profile: "Sales",
            contacts: Vec::new(),
        })
        .collect();
    let mut log = Vec::new();
    for n in 0..EVENTS {
        let which = rng.usize(0..agents.len());
        let agent = &mut agents[which];
        agent.clock += match rng.u8(0..10) {
            0 => 0,
            1..=5 => rng.i64(1..120_000),
            6..=8 => rng.i64(120_000..3 * 3_600_000),
            _ => rng.i64(3 * 3_600_000..20 * 3_600_000),
        };
        let now = agent.clock;
        let previous = agent.snapshot();
        let kind = if !agent.logged_in {
            agent.logged_in = true;
            "LOGIN"
        } else {
            match rng.u8(0..10) {
                0 => {
                    agent.logged_in = false;
                    "LOGOUT"
                }
                1 | 2 => "HEART_BEAT",
                _ => {
                    match rng.u8(0..4) {
                        0 | 1 => {
                            let (name, kind) = STATUSES[rng.usize(0..STATUSES.len())];
                            agent.status = (name, kind, now);
                        }
                        2 => agent.profile = ["Sales", "Support"][rng.usize(0..2)],
                        _ => {
                            if agent.contacts.is_empty() {
                                agent.contacts.push((format!("c-{n}"), "CONNECTING", now));
                            } else if agent.contacts[0].1 == "CONNECTING" {
                                agent.contacts[0].1 = "CONNECTED";
                                agent.contacts[0].2 = now;
                            } else {
                                agent.contacts.clear();
                            }
                        }
                    }
                    "STATE_CHANGE"
                }
            }
        };
        let mut event = json!({
            "AgentARN": format!("{INSTANCE}/agent/{}", agent.id),
            "EventId": format!("{:08x}-{n:02}", rng.u32(..)),
            "EventTimestamp": ts(now),
            "EventType": kind,
            "InstanceARN": INSTANCE,
            "Version": "2017-10-01",
            "CurrentAgentSnapshot": agent.snapshot(),
        });
        if !matches!(kind, "LOGIN" | "LOGOUT") {
            event["PreviousAgentSnapshot"] = previous;
        }
        log.push(event);
    }
    log
}

#[tokio::test]
async fn agent_activity_any_order_batching_and_duplication_give_the_same_projections() {
    streamfold_tests::init_logs();
    let processor = AgentActivity::default();
    for seed in seeds("agent-activity") {
        let mut rng = fastrand::Rng::with_seed(seed);
        let log = agent_log(&mut rng);
        let records: Vec<KinesisRecord> = log
            .iter()
            .enumerate()
            .map(|(i, v)| KinesisRecord::from_payload_line("properties", i + 1, &v.to_string()))
            .collect();

        // Once, in order.
        let reference = table("prop-aa-ref").await;
        deliver(&processor, &reference, &records, seed).await;
        let want = normalised(&reference).await;
        let of_type =
            |kind: &str| -> Vec<&Value> { want.values().filter(|v| v["type"] == kind).collect() };
        // Every agent has a profile showing its newest event by
        // (EventTimestamp, EventId); every event but heartbeats has one
        // history entry; the daily totals are the history's durations.
        let mut newest: BTreeMap<String, (String, String)> = BTreeMap::new();
        for e in &log {
            let agent = e["AgentARN"].as_str().unwrap_or_default();
            let agent = agent.rsplit('/').next().unwrap_or_default().to_owned();
            let order = (
                e["EventTimestamp"].as_str().unwrap_or_default().to_owned(),
                e["EventId"].as_str().unwrap_or_default().to_owned(),
            );
            let slot = newest.entry(agent).or_default();
            if order > *slot {
                *slot = order;
            }
        }
        let profiles = of_type("agent");
        assert_eq!(profiles.len(), newest.len(), "seed {seed}");
        for p in &profiles {
            let pk = p["pk"].as_str().unwrap_or_default();
            let agent = pk.strip_prefix("AGENT#").unwrap_or(pk);
            let (at, id) = newest
                .get(agent)
                .unwrap_or_else(|| panic!("seed {seed}: a profile of no agent: {pk}"));
            assert_eq!(p["last_event_id"], id.as_str(), "seed {seed}");
            assert_eq!(p["last_event_at"], at.as_str(), "seed {seed}");
        }
        let non_heartbeats = log
            .iter()
            .filter(|e| e["EventType"] != "HEART_BEAT")
            .count();
        let history = of_type("activity");
        assert_eq!(history.len(), non_heartbeats, "seed {seed}");
        let history_ms: i64 = history
            .iter()
            .map(|h| h["previous_status_ms"].as_i64().unwrap_or(0))
            .sum();
        let daily_ms: i64 = of_type("daily")
            .iter()
            .map(|d| d["total_ms"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(daily_ms, history_ms, "seed {seed}");

        // Any order, any batches, every record one to three times.
        let t = table("prop-aa").await;
        for batch in scramble(&mut rng, &records) {
            deliver(&processor, &t, &batch, seed).await;
        }
        // Everything, `last_event_*` included: a profile records the newest
        // event even when it repeats the stored snapshot (plan_profile).
        assert_same(&normalised(&t).await, &want, seed);
        reference.drop_table().await;
        t.drop_table().await;
    }
}

// ---- extensions ----------------------------------------------------------------
//
// Which agent gets which extension may depend on the order records arrive
// in (docs/design.md promises no particular assignment), so only what is
// promised is compared: the pool's invariants (no extension on two agents,
// no agent with two, free + assigned = pool size, nothing pending), every
// present agent holding one or waiting for one, nobody waiting while the
// pool has room, the counts of the in-order run, and redelivery changing
// nothing.

fn agent_profile(id: &str, since: Timestamp) -> streamfold_shared::executor::Item {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let s = |v: String| Av::S(v);
    streamfold_shared::executor::Item::from([
        ("pk".to_owned(), s(format!("AGENT#{id}"))),
        ("sk".to_owned(), s("PROFILE".to_owned())),
        ("type".to_owned(), s("agent".to_owned())),
        ("agent_arn".to_owned(), s(format!("{INSTANCE}/agent/{id}"))),
        ("username".to_owned(), s(format!("user-{id}"))),
        ("gsi2pk".to_owned(), s(extensions::model::AGENTS.to_owned())),
        ("gsi2sk".to_owned(), s(format!("user-{id}"))),
        (
            "gsi1pk".to_owned(),
            s(extensions::model::WAITING.to_owned()),
        ),
        ("gsi1sk".to_owned(), s(format!("{since}#{id}"))),
    ])
}

/// A random history of the agent directory: `agents` arrivals and some
/// departures (a departed agent may come back), interleaved.
fn directory_log(rng: &mut fastrand::Rng, agents: usize) -> Vec<(usize, bool)> {
    let mut present = vec![false; agents];
    let mut log = Vec::new();
    for _ in 0..EVENTS / 2 {
        let a = rng.usize(0..agents);
        // Arrive when absent; when present, leave one time in two.
        if !present[a] || rng.bool() {
            present[a] = !present[a];
            log.push((a, present[a]));
        }
    }
    log
}

/// Writes the directory history like agent-activity and reconcile do, after
/// a pool of `pool` one-digit extensions; returns the stream's records of
/// the profiles (the pool's own inserts are left out).
async fn write_directory(
    t: &TestTable,
    pool: usize,
    log: &[(usize, bool)],
) -> Vec<streamfold_shared::record::StreamRecord> {
    let spec =
        extensions::init::PoolSpec::new(1, &format!("{pool}-9")).unwrap_or_else(|e| panic!("{e}"));
    extensions::init::init(t.exec(), &spec, 4, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let skip = t.stream_records().await.len();
    let base = Timestamp::parse("2026-11-20T08:00:00Z").unwrap_or_else(|e| panic!("{e}"));
    for (i, (a, arrives)) in log.iter().enumerate() {
        let id = format!("prop-agent-{a:02}");
        if *arrives {
            t.exec()
                .batch_put(vec![agent_profile(&id, base.plus_seconds(i as i64))])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        } else {
            let agent =
                streamfold_shared::ids::AgentId::new(id.as_str()).unwrap_or_else(|e| panic!("{e}"));
            reconcile::remove_profile(t.ctx(), &agent)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let mut records = t.stream_records().await;
    records.drain(..skip.min(records.len()));
    records
}

/// The census, checked: every invariant holds and nothing is pending.
/// Which agent holds which extension.
async fn assignments(t: &TestTable) -> BTreeMap<String, String> {
    t.items_of_type("ext")
        .await
        .iter()
        .filter_map(|x| {
            let agent = x["agent_id"].as_str()?;
            Some((x["extension"].as_str()?.to_owned(), agent.to_owned()))
        })
        .collect()
}

async fn pool_census(t: &TestTable, seed: u64) -> extensions::census::Census {
    let c = extensions::census::census(t.exec())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.violations.is_empty(), "seed {seed}: {:#?}", c.violations);
    assert_eq!(
        (c.pending_release, c.unqueued),
        (0, 0),
        "seed {seed}: {c:?}"
    );
    assert_eq!(c.free + c.assigned, c.pool_size, "seed {seed}: {c:?}");
    assert_eq!(c.assigned + c.waiting, c.agents, "seed {seed}: {c:?}");
    if c.agents <= c.pool_size {
        assert_eq!(c.waiting, 0, "seed {seed}: {c:?}");
    } else {
        assert_eq!(c.free, 0, "seed {seed}: {c:?}");
    }
    c
}

#[tokio::test]
async fn extensions_any_order_batching_and_duplication_keep_the_pool_invariants() {
    streamfold_tests::init_logs();
    for seed in seeds("extensions") {
        let mut rng = fastrand::Rng::with_seed(seed);
        let agents = rng.usize(4..=9);
        let pool = rng.usize(3..=8);
        let log = directory_log(&mut rng, agents);

        // Once, in order.
        let reference = table("prop-ext-ref").await;
        let records = write_directory(&reference, pool, &log).await;
        deliver(&extensions::Extensions, &reference, &records, seed).await;
        let want = pool_census(&reference, seed).await;
        assert_eq!(want.pool_size, pool as u64, "seed {seed}");

        // In stream order, cut anywhere, some batches twice: the same
        // agents hold the same extensions (the pool is served in stream
        // order, whatever the batches).
        let cut = table("prop-ext-cut").await;
        let records = write_directory(&cut, pool, &log).await;
        let mut rest = records.as_slice();
        while !rest.is_empty() {
            let (batch, more) = rest.split_at(rng.usize(1..=rest.len().min(5)));
            for _ in 0..rng.usize(1..=2) {
                deliver(&extensions::Extensions, &cut, batch, seed).await;
            }
            rest = more;
        }
        assert_eq!(
            assignments(&cut).await,
            assignments(&reference).await,
            "seed {seed}"
        );
        cut.drop_table().await;

        // Any order, any batches, every record one to three times.
        let t = table("prop-ext").await;
        let records = write_directory(&t, pool, &log).await;
        for batch in scramble(&mut rng, &records) {
            deliver(&extensions::Extensions, &t, &batch, seed).await;
        }
        let got = pool_census(&t, seed).await;
        assert_eq!(got, want, "seed {seed}");
        // Everything again: nothing moves.
        let before = t.snapshot().await;
        deliver(&extensions::Extensions, &t, &records, seed).await;
        assert_eq!(t.snapshot().await, before, "seed {seed}");
        reference.drop_table().await;
        t.drop_table().await;
    }
}
