//! agent-activity: folds Amazon Connect's agent event stream (Kinesis,
//! partition key = AgentARN) into three item types of the table
//! (docs/design.md): the agent's profile, their activity history and their daily
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

mod commit;

use commit::{
    AgentPlan, AgentResult, Unit, UnitKind, UnitState, commit_units, converge_unit, daily_chunks,
    write_history, write_routing_profile,
};

use std::collections::HashMap;

use futures::StreamExt;
use streamfold_shared::engine::{Context, Decoded, FromEnv, KeyWork, Processor, Step, load_items};
use streamfold_shared::executor::{ExecError, Item};
use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::Key;
use streamfold_shared::kinesis::KinesisRecord;

pub use event::{AgentEvent, EventType, decode_event};
pub use plan::ProfileState;

use plan::{Contribution, contribution, plan_daily, plan_profile};

/// The processor's name.
pub const NAME: &str = "agent-activity";
/// How long history items are kept by default (days after the event).
pub const DEFAULT_RETENTION_DAYS: i64 = 90;
/// The environment variable that overrides [`DEFAULT_RETENTION_DAYS`].
pub const RETENTION_ENV: &str = "STREAMFOLD_ACTIVITY_RETENTION_DAYS";

/// The environment variable that picks the [`CommitMode`].
pub const COMMIT_ENV: &str = "STREAMFOLD_ACTIVITY_COMMIT";

/// How the group commit sends each agent's guarded updates (its profile
/// update, its daily claims). Both keep every guarantee: each update carries
/// its own condition, and a repeat of an applied one fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// `single` (the default): an update of one item is one conditional
    /// UpdateItem, atomic on its own and billed once; only a claim spanning
    /// midnight (two daily items) is a transaction. About one request per
    /// agent per batch.
    #[default]
    Single,
    /// `shared`: every agent's updates packed into shared
    /// TransactWriteItems of up to 100 actions, each action billed twice:
    /// the fewest requests (about 3 per 100 events), about twice the
    /// write units.
    Shared,
}

impl CommitMode {
    /// `single` or `shared`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "single" => Some(Self::Single),
            "shared" => Some(Self::Shared),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Shared => "shared",
        }
    }
}

/// The processor.
#[derive(Debug, Clone, Copy)]
pub struct AgentActivity {
    /// History items expire this many days after their event.
    pub retention_days: i64,
    /// How guarded updates are sent.
    pub commit: CommitMode,
}

impl Default for AgentActivity {
    fn default() -> Self {
        Self {
            retention_days: DEFAULT_RETENTION_DAYS,
            commit: CommitMode::default(),
        }
    }
}

/// The processor as the CLI runs it: [`AgentActivity::from_env`], built on
/// first use.
pub static FROM_ENV: FromEnv<AgentActivity> = FromEnv::new(AgentActivity::from_env);

impl AgentActivity {
    /// With the retention from `STREAMFOLD_ACTIVITY_RETENTION_DAYS`, if set
    /// to a positive number of days.
    pub fn from_env() -> Self {
        let retention_days = std::env::var(RETENTION_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|d| *d > 0)
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        let commit = match std::env::var(COMMIT_ENV) {
            Ok(v) => CommitMode::parse(&v).unwrap_or_else(|| {
                tracing::warn!(
                    "{COMMIT_ENV}={v:?} is neither \"single\" nor \"shared\"; using \"single\""
                );
                CommitMode::default()
            }),
            Err(_) => CommitMode::default(),
        };
        Self {
            retention_days,
            commit,
        }
    }
}

/// Decodes one Kinesis record (pure).
pub fn decode(record: &KinesisRecord) -> Decoded<AgentId, AgentEvent> {
    match decode_event(&record.data) {
        Ok(event) => Decoded::Event {
            key: event.agent.clone(),
            event,
        },
        Err(e) => Decoded::Invalid(e.0),
    }
}

impl Processor for AgentActivity {
    type Record = KinesisRecord;
    type Key = AgentId;
    type Event = AgentEvent;
    type State = ProfileState;

    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&self, record: &KinesisRecord) -> Decoded<AgentId, AgentEvent> {
        decode(record)
    }

    async fn load(
        &self,
        ctx: &Context,
        keys: &[&AgentId],
    ) -> Result<HashMap<AgentId, ProfileState>, ExecError> {
        Ok(load_items(ctx, keys, |a| Key::Profile(a.clone()))
            .await?
            .into_iter()
            .map(|(id, item)| (id, ProfileState::from_item(item)))
            .collect())
    }

    /// Group commit: the whole batch's history in shared BatchWriteItem
    /// requests, and every agent's profile update and daily claims as one
    /// conditional UpdateItem each ([`CommitMode::Single`]) or packed
    /// together into as few TransactWriteItems as the limits allow
    /// ([`CommitMode::Shared`]). Each
    /// agent's writes keep their own conditions; an agent whose condition
    /// fails is taken out of the shared transaction, re-read and converged
    /// on its own, so one agent's conflict never costs another's write.
    async fn apply_batch(
        &self,
        ctx: &Context,
        work: &[KeyWork<'_, AgentId, ProfileState, AgentEvent>],
    ) -> Vec<Vec<Step>> {
        let plans: Vec<AgentPlan<'_>> = work
            .iter()
            .enumerate()
            .filter_map(|(slot, w)| AgentPlan::at(slot, w))
            .collect();
        let mut results: Vec<AgentResult> = plans.iter().map(|_| AgentResult::default()).collect();

        // History: every agent's items together, 25 per request.
        let history: Vec<(usize, Item)> = plans
            .iter()
            .enumerate()
            .flat_map(|(a, p)| {
                p.distinct
                    .iter()
                    .filter_map(move |e| plan::activity_item(e, self.retention_days))
                    .map(move |item| (a, item))
            })
            .collect();

        // Guarded updates: one unit per agent profile and per daily chunk.
        let mut units: Vec<Unit<'_>> = Vec::new();
        for (a, p) in plans.iter().enumerate() {
            if let Some((update, from)) = plan_profile(&p.agent, p.state.as_ref(), &p.distinct) {
                units.push(Unit {
                    agent: a,
                    kind: UnitKind::Profile(from),
                    updates: vec![update],
                });
            }
            let contributions: Vec<Contribution<'_>> =
                p.distinct.iter().filter_map(|e| contribution(e)).collect();
            for chunk in daily_chunks(&contributions) {
                let updates = plan_daily(&p.agent, &chunk);
                units.push(Unit {
                    agent: a,
                    kind: UnitKind::Daily(chunk),
                    updates,
                });
            }
        }

        let (written, committed) = futures::join!(
            write_history(ctx, history),
            commit_units(ctx, self.commit, &units)
        );
        for (a, r) in written {
            if let Err(e) = r {
                results[a].fail(e);
            }
        }
        // Units whose condition failed converge one by one, from a re-read.
        let conflicted: Vec<usize> = committed
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, UnitState::Conflict))
            .map(|(u, _)| u)
            .collect();
        let converging: Vec<_> = conflicted
            .into_iter()
            .map(|u| {
                let unit = &units[u];
                let plan = &plans[unit.agent];
                async move { (u, converge_unit(ctx, self.commit, plan, unit).await) }
            })
            .collect();
        let resolved: Vec<(usize, Result<Option<usize>, ExecError>)> =
            futures::stream::iter(converging)
                .buffer_unordered(ctx.concurrency.max(1))
                .collect()
                .await;
        let mut outcome: Vec<Result<Option<usize>, ExecError>> = committed
            .into_iter()
            .map(|r| match r {
                UnitState::Done(from) => Ok(from),
                UnitState::Error(e) => Err(e),
                UnitState::Conflict => Err(ExecError::Transient("not converged".to_owned())),
            })
            .collect();
        for (u, r) in resolved {
            outcome[u] = r;
        }
        for (unit, r) in units.iter().zip(outcome) {
            match (r, &unit.kind) {
                (Ok(from), UnitKind::Profile(_)) => results[unit.agent].profile_from = from,
                (Ok(_), UnitKind::Daily(_)) => {}
                (Err(e), _) => results[unit.agent].fail(e),
            }
        }

        // The routing profiles the batch shows, newest view each; an error
        // fails the agents whose events carried it (a retry rewrites it).
        let all: Vec<(usize, &AgentEvent)> = plans
            .iter()
            .enumerate()
            .flat_map(|(a, p)| p.distinct.iter().map(move |e| (a, *e)))
            .collect();
        let refs: Vec<&AgentEvent> = all.iter().map(|(_, e)| *e).collect();
        let rp_writes: Vec<_> = plan::plan_routing_profiles(&refs)
            .into_iter()
            .map(|(update, carriers)| async move {
                (
                    write_routing_profile(ctx, self.commit, &update).await,
                    carriers,
                )
            })
            .collect();
        let rp_done: Vec<_> = futures::stream::iter(rp_writes)
            .buffer_unordered(ctx.concurrency.max(1))
            .collect()
            .await;
        for (r, carriers) in rp_done {
            if let Err(e) = r {
                let mut agents: Vec<usize> = carriers.iter().map(|&i| all[i].0).collect();
                agents.dedup();
                for a in agents {
                    results[a].fail(e.clone());
                }
            }
        }

        let mut steps: Vec<Vec<Step>> = work
            .iter()
            .map(|w| vec![Step::NoOp; w.events.len()])
            .collect();
        for (p, r) in plans.iter().zip(results) {
            steps[p.slot] = p.steps(r);
        }
        steps
    }
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
    fn retention_comes_from_the_environment_or_defaults() {
        assert_eq!(AgentActivity::default().retention_days, 90);
    }
}
