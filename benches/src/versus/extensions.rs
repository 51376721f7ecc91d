//! Workload 3, extension churn on a pool of `--extension-agents` + 10 %
//! extensions, in four phases (each phase's profile writes happen before
//! its records are processed, as a stream lags behind its table):
//!
//! 1. every agent arrives (a waiting profile is inserted): all get one;
//! 2. every fourth agent departs (its profile is deleted): extensions freed;
//! 3. those agents come back and a quarter as many new ones arrive, more
//!    than the pool holds: the lowest free extensions go, the rest wait;
//! 4. a fifth of the agents depart: their extensions are handed over to the
//!    longest-waiting agents, and freed once nobody waits;
//! 5. mixed: a tenth of the agents (assigned since phase 1) depart and as
//!    many new ones arrive, one after the other in the same batches.
//!
//! In phases 1 to 4 each batch holds arrivals only or departures only, and
//! the two tables are compared after phase 4. (Within one batch
//! streamfold hands a just-freed extension to the batch's next arrival, and
//! an agent that found the pool empty to the batch's next departure, before
//! older candidates; the per-record way always takes the lowest free number
//! and the longest waiter. Mixed batches would make the two sides pick other
//! numbers, with the same invariants: so after phase 5 only the census is
//! checked, on both sides.) The departure records carry the
//! profile as streamfold's table held it; the naive table is checked to
//! hold the same extension, so both sides get identical, truthful records.

use std::collections::HashMap;

use anyhow::{Context as _, Result, anyhow, bail};
use extensions::census::{Census, census};
use extensions::init::{self as pool, PoolSpec};
use extensions::model::{AGENTS, Profile, WAITING};
use extensions::{Extensions, plan};
use streamfold::pipeline::{Pipeline, ProcessorKind};
use streamfold_shared::attrs::{s, sv};
use streamfold_shared::engine::{Counts, decode_and_group};
use streamfold_shared::executor::{Executor, Item};
use streamfold_shared::ids::{AgentId, Timestamp};
use streamfold_shared::keys::Key;
use streamfold_shared::record::{ChangeKind, StreamRecord};

use super::chat::outcomes;
use super::compare::compare_tables;
use super::measure::{Stopwatch, records_per_cpu_second};
use super::naive::{Tally, extension_batch};
use super::{Report, Tables, VersusArgs, stream_record, streamfold_side};

/// Attributes that are the time of processing, not a fact of the source.
const STAMPS: &[&str] = &["assigned_at", "freed_at"];

fn agent_id(i: usize) -> String {
    format!("churn-{i:06}")
}

/// A waiting profile, as agent-activity or reconcile creates it.
fn profile_item(i: usize, since: Timestamp) -> Item {
    let id = agent_id(i);
    let username = format!("agent{i:06}");
    HashMap::from([
        ("pk".to_owned(), sv(format!("AGENT#{id}"))),
        ("sk".to_owned(), sv("PROFILE")),
        ("type".to_owned(), sv("agent")),
        ("agent_id".to_owned(), sv(id.as_str())),
        (
            "agent_arn".to_owned(),
            sv(format!(
                "arn:aws:connect:us-east-1:012345678901:instance/i/agent/{id}"
            )),
        ),
        ("username".to_owned(), sv(username.as_str())),
        ("status".to_owned(), sv("Available")),
        ("gsi2pk".to_owned(), sv(AGENTS)),
        ("gsi2sk".to_owned(), sv(username)),
        ("gsi1pk".to_owned(), sv(WAITING)),
        ("gsi1sk".to_owned(), sv(format!("{since}#{id}"))),
    ])
}

/// The churn as it goes: source writes, records, and both sides' figures.
struct Churn<'a> {
    t: &'a Tables,
    pipeline: Pipeline,
    batch: usize,
    /// Records made so far (the next record's number).
    made: usize,
    /// Arrivals so far (the next waiting position).
    arrived: i64,
    start: Timestamp,
    streamfold: Stopwatch,
    naive: Stopwatch,
    counts: Counts,
    tally: Tally,
    /// Departing agents whose extension differs between the two tables.
    mismatched: usize,
}

impl<'a> Churn<'a> {
    fn new(t: &'a Tables, batch: usize) -> Result<Self> {
        Ok(Self {
            t,
            pipeline: Pipeline::new(t.streamfold.ctx.clone(), &[ProcessorKind::Extensions]),
            batch: batch.max(1),
            made: 0,
            arrived: 0,
            start: Timestamp::parse("2026-11-20T08:00:00Z")?,
            streamfold: Stopwatch::new(t.streamfold.counter.clone()),
            naive: Stopwatch::new(t.naive.counter.clone()),
            counts: Counts::default(),
            tally: Tally::default(),
            mismatched: 0,
        })
    }

    /// Waiting profiles are inserted into both tables; their INSERT records.
    async fn arrive(&mut self, agents: &[usize]) -> Result<Vec<StreamRecord>> {
        let items: Vec<Item> = agents
            .iter()
            .map(|&i| {
                self.arrived += 1;
                profile_item(i, self.start.plus_seconds(self.arrived))
            })
            .collect();
        self.t.put_sources(items.clone()).await?;
        Ok(items
            .into_iter()
            .map(|item| {
                self.made += 1;
                stream_record(self.made, ChangeKind::Insert, Some(item), None)
            })
            .collect())
    }

    /// Profiles are deleted from both tables; their REMOVE records, whose
    /// old image is the profile as streamfold's table held it.
    async fn depart(&mut self, agents: &[usize]) -> Result<Vec<StreamRecord>> {
        let keys: Vec<Key> = agents
            .iter()
            .map(|&i| Ok(Key::Profile(AgentId::new(agent_id(i))?)))
            .collect::<Result<_>>()?;
        let held = profiles(&self.t.streamfold_src, &keys).await?;
        let naive = profiles(&self.t.naive_src, &keys).await?;
        for exec in self.t.sources() {
            exec.batch_delete(&keys)
                .await
                .map_err(|e| anyhow!("deleting profiles in {}: {e}", exec.table()))?;
        }
        let mut records = Vec::with_capacity(keys.len());
        for key in &keys {
            let pk = key.pk();
            let Some(old) = held.get(&pk) else {
                bail!("{pk} is not in streamfold's table");
            };
            let theirs = naive.get(&pk).and_then(|p| s(p, "extension"));
            self.mismatched += usize::from(s(old, "extension") != theirs);
            self.made += 1;
            records.push(stream_record(
                self.made,
                ChangeKind::Remove,
                None,
                Some(old.clone()),
            ));
        }
        Ok(records)
    }

    /// Both sides process the records, batch by batch.
    async fn process(&mut self, records: &[StreamRecord]) -> Result<()> {
        let counts =
            streamfold_side(&self.pipeline, &mut self.streamfold, records, self.batch).await;
        self.counts.add(counts);
        let (c, table) = (self.t.naive.ddb(), self.t.naive.table.as_str());
        for batch in records.chunks(self.batch) {
            self.naive
                .phase(extension_batch(c, table, batch, &mut self.tally))
                .await
                .context("naive extension churn")?;
        }
        Ok(())
    }
}

/// Profiles by pk (consistent BatchGetItem, uncounted).
async fn profiles(exec: &Executor, keys: &[Key]) -> Result<HashMap<String, Item>> {
    let items = exec
        .batch_get(keys, true)
        .await
        .map_err(|e| anyhow!("reading profiles of {}: {e}", exec.table()))?;
    Ok(items
        .into_iter()
        .map(|i| (s(&i, "pk").unwrap_or_default().to_owned(), i))
        .collect())
}

/// Decode (JSON included) and plan of extensions, batch by batch, against
/// profiles that wait (arrivals) or are gone (departures).
fn decode_plan(batches: &[String]) -> usize {
    let mut actions = 0;
    for text in batches {
        let records: Vec<StreamRecord> = serde_json::from_str(text).unwrap_or_default();
        let grouped = decode_and_group(&Extensions, &records);
        for (_, events) in &grouped.groups {
            let refs: Vec<_> = events.iter().map(|(_, e)| e).collect();
            let current = refs.iter().find_map(|e| match e {
                extensions::Event::Arrived { agent, .. } => Some(Profile {
                    agent: agent.clone(),
                    agent_arn: None,
                    username: None,
                    extension: None,
                    waiting: true,
                    queue_key: None,
                }),
                extensions::Event::Departed { .. } => None,
            });
            actions += plan(current.as_ref(), &refs).len();
        }
    }
    actions
}

fn describe(c: &Census) -> String {
    format!(
        "free {} + assigned {} = pool {}; {} agents, {} waiting; invariants {}",
        c.free,
        c.assigned,
        c.pool_size,
        c.agents,
        c.waiting,
        if c.violations.is_empty() {
            "hold".to_owned()
        } else {
            format!("BROKEN ({})", c.violations.join("; "))
        }
    )
}

/// Runs the churn through both sides.
pub async fn run(args: &VersusArgs, t: &Tables) -> Result<Report> {
    let n = args.extension_agents.max(4);
    let pool_size = (n + n / 10).min(10_000);
    let reserve = if pool_size < 10_000 {
        format!("{pool_size:04}-9999")
    } else {
        String::new()
    };
    let spec = PoolSpec::new(4, &reserve).map_err(|e| anyhow!(e))?;
    for exec in t.sources() {
        pool::init(exec, &spec, 8, &|_| {})
            .await
            .map_err(|e| anyhow!("extensions init in {}: {e}", exec.table()))?;
    }
    super::measure::reset_peak_rss();
    let mut churn = Churn::new(t, args.batch_size)?;
    let everyone: Vec<usize> = (0..n).collect();
    let leaving: Vec<usize> = (0..n).step_by(4).collect();
    let mut returning = Vec::with_capacity(2 * leaving.len());
    for (k, &i) in leaving.iter().enumerate() {
        returning.push(i);
        returning.push(n + k);
    }
    let later: Vec<usize> = (1..n).step_by(4).take(n / 5).collect();

    let mut all: Vec<StreamRecord> = Vec::new();
    for (arrivals, agents) in [
        (true, &everyone),
        (false, &leaving),
        (true, &returning),
        (false, &later),
    ] {
        let records = if arrivals {
            churn.arrive(agents).await?
        } else {
            churn.depart(agents).await?
        };
        churn.process(&records).await?;
        all.extend(records);
    }

    let views = compare_tables(
        &t.streamfold_src,
        &t.naive_src,
        &["ext", "agent"],
        STAMPS,
        &[],
    )
    .await?;

    // Phase 5: departures and arrivals alternate within each batch.
    let mixed_out: Vec<usize> = (2..n).step_by(4).take((n / 10).max(1)).collect();
    let mixed_in: Vec<usize> = (0..mixed_out.len()).map(|k| 2 * n + k).collect();
    let leaving_records = churn.depart(&mixed_out).await?;
    let arriving_records = churn.arrive(&mixed_in).await?;
    let mixed: Vec<StreamRecord> = leaving_records
        .into_iter()
        .zip(arriving_records)
        .flat_map(|(d, a)| [d, a])
        .collect();
    churn.process(&mixed).await?;
    all.extend(mixed);

    let mut notes = vec![format!(
        "views compared after phase 4; phase 5 mixed {} departures and {} arrivals in the same batches (census only)",
        mixed_out.len(),
        mixed_in.len()
    )];
    for (side, exec) in [("streamfold", &t.streamfold_src), ("naive", &t.naive_src)] {
        let c = census(exec)
            .await
            .map_err(|e| anyhow!("census of {}: {e}", exec.table()))?;
        notes.push(format!("census, {side}: {}", describe(&c)));
    }
    if churn.mismatched > 0 {
        notes.push(format!(
            "{} departing agents held a different extension in the naive table (their REMOVE records carry streamfold's)",
            churn.mismatched
        ));
    }
    let batches: Vec<String> = all
        .chunks(churn.batch)
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    let rate = records_per_cpu_second(all.len(), || decode_plan(&batches));
    Ok(Report {
        name: "extension churn",
        what: format!(
            "{n} agents arrive, {} leave, {} return with {} new ones, {} leave, then {} leave and {} arrive mixed in batches, on a pool of {pool_size}; extensions",
            leaving.len(),
            leaving.len(),
            returning.len() - leaving.len(),
            later.len(),
            mixed_out.len(),
            mixed_out.len()
        ),
        records: all.len(),
        streamfold: churn.streamfold.finish(outcomes(&churn.counts)),
        naive: churn.naive.finish(churn.tally.describe()),
        views,
        cpu: vec![("extensions", rate)],
        peak_rss_kb: None,
        notes,
    })
}
