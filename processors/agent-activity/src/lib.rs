//! agent-activity: folds Amazon Connect's agent event stream (Kinesis,
//! partition key = AgentARN) into three item types of the table
//! (DESIGN.md): the agent's profile, their activity history and their daily
//! totals per status.
//!
//! - **decode** ([`event`]): a Kinesis record's data becomes an
//!   [`AgentEvent`], ordered by its agent. Non-JSON data, a missing
//!   AgentARN/EventId/EventTimestamp, or an unknown Version or EventType is
//!   refused (dead-lettered with a clear message; no names in it).
//! - **load**: one consistent BatchGetItem of the batch's profiles.
//! - **plan** ([`plan`]): pure. History items (none for heartbeats); the one
//!   profile update of the agent's batch (the newest event, only if it
//!   changes something); the status periods the events close, split at UTC
//!   midnight, as per-day counter updates that claim their events.
//! - **apply**: per agent, concurrently: history through BatchWriteItem; the
//!   profile through a conditional update on (last_event_at, last_event_id),
//!   so redelivery and reordering never roll it back; the daily counters and
//!   their per-event claims in one TransactWriteItems (the claim is the event
//!   id joining the day's `claimed` set, on condition it is not in it yet), so
//!   each event's time is counted exactly once however often it is delivered.
//!   A failed condition is an answer: re-read, re-plan, retry.

pub mod event;
pub mod plan;
pub mod synth;

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use streamfold_shared::engine::{Context, Decoded, Processor, Step};
use streamfold_shared::executor::{ExecError, Expr, Item, TxOutcome, token};
use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::Key;
use streamfold_shared::kinesis::KinesisRecord;

pub use event::{AgentEvent, EventType, decode_event};
pub use plan::ProfileState;

use plan::{Contribution, GuardedUpdate, contribution, plan_daily, plan_profile};

/// The processor's name.
pub const NAME: &str = "agent-activity";
/// How long history items are kept by default (days after the event).
pub const DEFAULT_RETENTION_DAYS: i64 = 90;
/// The environment variable that overrides [`DEFAULT_RETENTION_DAYS`].
pub const RETENTION_ENV: &str = "STREAMFOLD_ACTIVITY_RETENTION_DAYS";
/// How many times a write is re-planned when its condition keeps failing.
const MAX_CONVERGE: usize = 5;
/// Events claimed by one daily transaction (its condition names each one).
const DAILY_EVENTS_PER_TX: usize = 40;
/// Actions in one transaction.
const TX_ACTIONS: usize = streamfold_shared::executor::TRANSACT_MAX;

/// The processor.
#[derive(Debug, Clone, Copy)]
pub struct AgentActivity {
    /// History items expire this many days after their event.
    pub retention_days: i64,
}

impl Default for AgentActivity {
    fn default() -> Self {
        Self {
            retention_days: DEFAULT_RETENTION_DAYS,
        }
    }
}

impl AgentActivity {
    /// With the retention from `STREAMFOLD_ACTIVITY_RETENTION_DAYS`, if set
    /// to a positive number of days.
    pub fn from_env() -> Self {
        let retention_days = std::env::var(RETENTION_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|d| *d > 0)
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        Self { retention_days }
    }
}

/// Decodes one Kinesis record (pure).
pub fn decode(record: &KinesisRecord) -> Decoded<AgentEvent> {
    match decode_event(&record.data) {
        Ok(event) => Decoded::Event {
            key: event.agent.to_string(),
            event,
        },
        Err(e) => Decoded::Invalid(e.0),
    }
}

impl Processor for AgentActivity {
    type Record = KinesisRecord;
    type Event = AgentEvent;
    type State = ProfileState;

    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&self, record: &KinesisRecord) -> Decoded<AgentEvent> {
        decode(record)
    }

    async fn load(
        &self,
        ctx: &Context,
        keys: &[&str],
    ) -> Result<HashMap<String, ProfileState>, ExecError> {
        let profile_keys: Vec<Key> = keys
            .iter()
            .filter_map(|k| AgentId::new(*k).ok().map(Key::Profile))
            .collect();
        let items = ctx.exec.batch_get(&profile_keys, true).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let pk = streamfold_shared::attrs::s(&item, "pk")?;
                let id = pk.strip_prefix("AGENT#")?.to_owned();
                Some((id, ProfileState::from_item(item)))
            })
            .collect())
    }

    async fn apply(
        &self,
        ctx: &Context,
        _key: &str,
        state: Option<&ProfileState>,
        events: &[&AgentEvent],
    ) -> Vec<Step> {
        let Some(first) = events.first() else {
            return Vec::new();
        };
        let agent = first.agent.clone();
        // A redelivered event may sit twice in one batch: count it once.
        let mut seen = HashSet::with_capacity(events.len());
        let unique: Vec<usize> = (0..events.len())
            .filter(|&i| seen.insert(events[i].id.as_str()))
            .collect();
        let distinct: Vec<&AgentEvent> = unique.iter().map(|&i| events[i]).collect();

        let history: Vec<Item> = distinct
            .iter()
            .filter_map(|e| plan::activity_item(e, self.retention_days))
            .collect();
        let contributions: Vec<Contribution<'_>> =
            distinct.iter().filter_map(|e| contribution(e)).collect();

        let (history, profile, daily) = futures::join!(
            async {
                if history.is_empty() {
                    Ok(0)
                } else {
                    ctx.exec.batch_put(history).await
                }
            },
            write_profile(ctx, &agent, state.cloned(), &distinct),
            write_daily(ctx, &agent, &contributions),
        );
        let profile_from = match (history, profile, daily) {
            (Ok(_), Ok(from), Ok(())) => from,
            (h, p, d) => {
                let e = [h.err(), p.err(), d.err()].into_iter().flatten();
                let mut permanent = None;
                let mut transient = None;
                for e in e {
                    match e {
                        ExecError::Transient(m) => transient = transient.or(Some(m)),
                        ExecError::Permanent(m) => permanent = permanent.or(Some(m)),
                    }
                }
                // Transient first: a retry may get past it; the rest is
                // idempotent and is simply redone.
                return match (transient, permanent) {
                    (Some(m), _) => vec![Step::Failed(format!("agent {agent}: {m}")); events.len()],
                    (None, Some(m)) => {
                        vec![Step::Invalid(format!("agent {agent}: {m}")); events.len()]
                    }
                    (None, None) => vec![Step::Failed("unknown failure".to_owned()); events.len()],
                };
            }
        };
        let profile_event = profile_from.map(|i| distinct[i].id.as_str());
        let mut steps = vec![Step::NoOp; events.len()];
        for &i in &unique {
            let e = events[i];
            let applied = e.kind != EventType::HeartBeat || profile_event == Some(e.id.as_str());
            if applied {
                steps[i] = Step::Applied;
            }
        }
        steps
    }
}

/// A deterministic fingerprint of an expression (for idempotency tokens).
fn material(e: &Expr) -> String {
    let mut names: Vec<_> = e.names.iter().collect();
    names.sort();
    let mut values: Vec<_> = e.values.iter().collect();
    values.sort_by(|a, b| a.0.cmp(b.0));
    format!("{}|{names:?}|{values:?}", e.text)
}

fn tx_token(updates: &[GuardedUpdate]) -> String {
    let parts: Vec<String> = updates
        .iter()
        .map(|u| {
            format!(
                "{}|{}|{}",
                u.key,
                material(&u.update),
                material(&u.condition)
            )
        })
        .collect();
    let refs: Vec<&str> = std::iter::once(NAME)
        .chain(parts.iter().map(String::as_str))
        .collect();
    token(&refs)
}

async fn commit(ctx: &Context, updates: Vec<GuardedUpdate>) -> Result<TxOutcome, ExecError> {
    let token = tx_token(&updates);
    let mut tx = ctx.exec.tx();
    for u in updates {
        tx.update(&u.key, u.update, Some(u.condition))?;
    }
    ctx.exec.transact(tx, &token).await
}

/// Writes the profile (at most one update); returns the index of the event
/// whose snapshot it now shows, if it was written from one.
async fn write_profile(
    ctx: &Context,
    agent: &AgentId,
    mut state: Option<ProfileState>,
    events: &[&AgentEvent],
) -> Result<Option<usize>, ExecError> {
    for _ in 0..MAX_CONVERGE {
        let Some((update, from)) = plan_profile(agent, state.as_ref(), events) else {
            return Ok(None);
        };
        match commit(ctx, vec![update]).await? {
            TxOutcome::Committed => return Ok(from),
            TxOutcome::ConditionFailed(_) => {
                // Someone else wrote it (a newer event, reconcile,
                // extensions): re-read and plan again.
                state = ctx
                    .exec
                    .get(&Key::Profile(agent.clone()), true)
                    .await?
                    .map(ProfileState::from_item);
            }
        }
    }
    Err(ExecError::Transient(format!(
        "profile of agent {agent} kept changing; gave up after {MAX_CONVERGE} attempts"
    )))
}

/// Splits contributions into transactions: at most
/// [`DAILY_EVENTS_PER_TX`] events and [`TX_ACTIONS`] days each.
fn daily_chunks<'a, 'b>(contributions: &'b [Contribution<'a>]) -> Vec<Vec<Contribution<'a>>> {
    let mut chunks: Vec<Vec<Contribution<'a>>> = Vec::new();
    let mut days: HashSet<chrono::NaiveDate> = HashSet::new();
    let mut current: Vec<Contribution<'a>> = Vec::new();
    for c in contributions {
        let new_days = c.days.iter().filter(|(d, _)| !days.contains(d)).count();
        if !current.is_empty()
            && (current.len() >= DAILY_EVENTS_PER_TX || days.len() + new_days > TX_ACTIONS)
        {
            chunks.push(std::mem::take(&mut current));
            days.clear();
        }
        days.extend(c.days.iter().map(|(d, _)| *d));
        current.push(c.clone());
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Adds the contributions to the daily totals, each event exactly once.
async fn write_daily(
    ctx: &Context,
    agent: &AgentId,
    contributions: &[Contribution<'_>],
) -> Result<(), ExecError> {
    for mut pending in daily_chunks(contributions) {
        let mut done = false;
        for _ in 0..MAX_CONVERGE {
            if pending.is_empty() {
                done = true;
                break;
            }
            let updates = plan_daily(agent, &pending);
            let keys: Vec<Key> = updates.iter().map(|u| u.key.clone()).collect();
            match commit(ctx, updates).await? {
                TxOutcome::Committed => {
                    done = true;
                    break;
                }
                TxOutcome::ConditionFailed(_) => {
                    // Some events were counted already (a redelivery): drop
                    // those and count the rest.
                    let claimed = claimed_events(ctx, &keys).await?;
                    let before = pending.len();
                    pending.retain(|c| !claimed.contains(c.event.id.as_str()));
                    if pending.len() == before {
                        return Err(ExecError::Transient(format!(
                            "daily totals of agent {agent}: a claim failed but no event was claimed yet"
                        )));
                    }
                }
            }
        }
        if !done {
            return Err(ExecError::Transient(format!(
                "daily totals of agent {agent} kept changing; gave up after {MAX_CONVERGE} attempts"
            )));
        }
    }
    Ok(())
}

/// The event ids claimed by the given daily items.
async fn claimed_events(ctx: &Context, keys: &[Key]) -> Result<HashSet<String>, ExecError> {
    let items = ctx.exec.batch_get(keys, true).await?;
    Ok(items
        .into_iter()
        .filter_map(|mut i| match i.remove("claimed") {
            Some(AttributeValue::Ss(ids)) => Some(ids),
            _ => None,
        })
        .flatten()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamfold_shared::kinesis::KinesisEventFile;
    use streamfold_shared::testing::fixture;

    #[test]
    fn lambda_fixture_records_decode_and_the_bad_one_is_refused() {
        let file: KinesisEventFile = serde_json::from_str(&fixture("lambda-kinesis-event.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        let decoded: Vec<_> = file.records.iter().map(decode).collect();
        for d in &decoded[..3] {
            assert!(
                matches!(d, Decoded::Event { key, .. } if key == "4c1f6ad5-0b5e-4d0e-9f53-2b7b1e8f3a10"),
                "{d:?}"
            );
        }
        assert!(matches!(&decoded[3], Decoded::Invalid(why) if why.contains("not JSON")));
    }

    #[test]
    fn every_line_of_the_day_decodes_as_a_record() {
        for (n, line) in fixture("connect-agent-events.jsonl").lines().enumerate() {
            let r = KinesisRecord::from_payload_line("day", n + 1, line);
            assert!(
                matches!(decode(&r), Decoded::Event { .. }),
                "line {}",
                n + 1
            );
        }
    }

    #[test]
    fn daily_chunks_respect_the_limits() {
        let events: Vec<AgentEvent> = fixture("connect-agent-events.jsonl")
            .lines()
            .map(|l| decode_event(l.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let one = events
            .iter()
            .find_map(contribution)
            .unwrap_or_else(|| panic!("a contribution"));
        let many: Vec<Contribution<'_>> = (0..100).map(|_| one.clone()).collect();
        let chunks = daily_chunks(&many);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= DAILY_EVENTS_PER_TX));
    }

    #[test]
    fn retention_comes_from_the_environment_or_defaults() {
        assert_eq!(AgentActivity::default().retention_days, 90);
    }
}
