//! Group commit: every agent's writes of a batch packed into shared
//! requests (history in BatchWriteItem, profile updates and daily claims in
//! TransactWriteItems), and a unit whose condition fails converging alone.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use streamfold_shared::engine::{Context, KeyWork, Step};
use streamfold_shared::executor::{ExecError, Expr, Item, TxOutcome, token};
use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::Key;

use crate::plan::{Contribution, GuardedUpdate, plan_daily, plan_profile};
use crate::{AgentEvent, CommitMode, EventType, NAME, ProfileState};

/// How many times a write is re-planned when its condition keeps failing.
const MAX_CONVERGE: usize = 5;
/// Events claimed by one daily transaction (its condition names each one).
const DAILY_EVENTS_PER_TX: usize = 40;
/// Actions in one transaction.
const TX_ACTIONS: usize = streamfold_shared::executor::TRANSACT_MAX;

/// One agent's events of a batch, before any write (pure).
pub(crate) struct AgentPlan<'a> {
    /// The agent's position in the batch's work.
    pub(crate) slot: usize,
    pub(crate) agent: AgentId,
    pub(crate) events: usize,
    /// Indexes (into the agent's events) of each event's first delivery.
    pub(crate) unique: Vec<usize>,
    /// The events without in-batch duplicates, oldest first.
    pub(crate) distinct: Vec<&'a AgentEvent>,
    pub(crate) state: Option<ProfileState>,
}

impl<'a> AgentPlan<'a> {
    pub(crate) fn at(
        slot: usize,
        work: &KeyWork<'a, AgentId, ProfileState, AgentEvent>,
    ) -> Option<Self> {
        let first = work.events.first()?;
        // A redelivered event may sit twice in one batch: count it once.
        let mut seen = HashSet::with_capacity(work.events.len());
        let unique: Vec<usize> = (0..work.events.len())
            .filter(|&i| seen.insert(work.events[i].id.as_str()))
            .collect();
        let distinct = unique.iter().map(|&i| work.events[i]).collect();
        Some(Self {
            slot,
            agent: first.agent.clone(),
            events: work.events.len(),
            unique,
            distinct,
            state: work.state.cloned(),
        })
    }

    /// The steps of the agent's events once its writes are done.
    pub(crate) fn steps(&self, result: AgentResult) -> Vec<Step> {
        let agent = &self.agent;
        match (result.transient, result.permanent) {
            // Transient first: a retry may get past it; the rest is
            // idempotent and is simply redone.
            (Some(m), _) => return vec![Step::Failed(format!("agent {agent}: {m}")); self.events],
            (None, Some(m)) => {
                return vec![Step::Invalid(format!("agent {agent}: {m}")); self.events];
            }
            (None, None) => {}
        }
        let profile_event = result.profile_from.map(|i| self.distinct[i].id.as_str());
        let mut steps = vec![Step::NoOp; self.events];
        for (&i, e) in self.unique.iter().zip(&self.distinct) {
            if e.kind != EventType::HeartBeat || profile_event == Some(e.id.as_str()) {
                steps[i] = Step::Applied;
            }
        }
        steps
    }
}

/// What one agent's writes came to.
#[derive(Debug, Default)]
pub(crate) struct AgentResult {
    /// The event (index into `distinct`) whose snapshot the profile shows,
    /// if this batch wrote it.
    pub(crate) profile_from: Option<usize>,
    pub(crate) transient: Option<String>,
    pub(crate) permanent: Option<String>,
}

impl AgentResult {
    pub(crate) fn fail(&mut self, e: ExecError) {
        if e.is_transient() {
            self.transient.get_or_insert(e.to_string());
        } else {
            self.permanent.get_or_insert(e.to_string());
        }
    }
}

/// A set of guarded updates that must commit together: an agent's profile
/// update, or one chunk of its daily claims.
pub(crate) struct Unit<'a> {
    /// Index into the batch's agent plans.
    pub(crate) agent: usize,
    pub(crate) kind: UnitKind<'a>,
    pub(crate) updates: Vec<GuardedUpdate>,
}

pub(crate) enum UnitKind<'a> {
    /// The profile update, and the event it shows.
    Profile(Option<usize>),
    /// Daily counters claiming these contributions.
    Daily(Vec<Contribution<'a>>),
}

/// Where a unit stands after the shared transactions.
pub(crate) enum UnitState {
    Done(Option<usize>),
    /// Its condition failed: converge it alone from a re-read.
    Conflict,
    Error(ExecError),
}

/// Writes history items in BatchWriteItem requests of 25, concurrently;
/// an error is reported for every agent of its request.
pub(crate) async fn write_history(
    ctx: &Context,
    items: Vec<(usize, Item)>,
) -> Vec<(usize, Result<(), ExecError>)> {
    let chunks: Vec<Vec<(usize, Item)>> = items
        .chunks(streamfold_shared::executor::BATCH_WRITE_MAX)
        .map(<[_]>::to_vec)
        .collect();
    let writes: Vec<_> = chunks
        .into_iter()
        .map(|chunk| async move {
            let agents: Vec<usize> = chunk.iter().map(|(a, _)| *a).collect();
            let r = ctx
                .exec
                .batch_put(chunk.into_iter().map(|(_, i)| i).collect())
                .await
                .map(|_| ());
            agents
                .into_iter()
                .map(|a| (a, r.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let done: Vec<Vec<(usize, Result<(), ExecError>)>> = futures::stream::iter(writes)
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    done.into_iter().flatten().collect()
}

/// Packs units into transactions (first fit: at most [`TX_ACTIONS`]
/// actions, never two actions on one item), or in [`CommitMode::Single`]
/// sends each one-item unit alone, and commits them concurrently.
/// A unit whose condition fails is taken out and the rest is committed
/// again.
pub(crate) async fn commit_units(
    ctx: &Context,
    mode: CommitMode,
    units: &[Unit<'_>],
) -> Vec<UnitState> {
    // In single mode a one-item unit is a request of its own (a conditional
    // UpdateItem, see `commit`): a group nothing else joins.
    let alone = |unit: &Unit<'_>| mode == CommitMode::Single && unit.updates.len() == 1;
    let mut alone_groups: Vec<Vec<usize>> = Vec::new();
    let mut txs: Vec<(Vec<usize>, HashSet<&Key>, usize)> = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        if alone(unit) {
            alone_groups.push(vec![u]);
            continue;
        }
        let keys: Vec<&Key> = unit.updates.iter().map(|g| &g.key).collect();
        let fits = |(_, taken, actions): &(Vec<usize>, HashSet<&Key>, usize)| {
            actions + keys.len() <= TX_ACTIONS && keys.iter().all(|k| !taken.contains(k))
        };
        match txs.iter_mut().find(|t| fits(t)) {
            Some(tx) => {
                tx.0.push(u);
                tx.1.extend(keys.iter().copied());
                tx.2 += keys.len();
            }
            None => txs.push((vec![u], keys.iter().copied().collect(), keys.len())),
        }
    }
    // The futures are made before they are streamed: a `map` closure over
    // borrowed keys inside the stream would defeat the `Send` proof.
    let commits: Vec<_> = txs
        .into_iter()
        .map(|(members, _, _)| members)
        .chain(alone_groups)
        .map(|members| commit_shared(ctx, mode, units, members))
        .collect();
    let done: Vec<Vec<(usize, UnitState)>> = futures::stream::iter(commits)
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    let mut states: Vec<UnitState> = units.iter().map(|_| UnitState::Conflict).collect();
    for (u, state) in done.into_iter().flatten() {
        states[u] = state;
    }
    states
}

/// Commits the member units in one transaction, taking out those whose
/// condition fails until the rest commits.
pub(crate) async fn commit_shared(
    ctx: &Context,
    mode: CommitMode,
    units: &[Unit<'_>],
    mut members: Vec<usize>,
) -> Vec<(usize, UnitState)> {
    let mut out = Vec::with_capacity(members.len());
    while !members.is_empty() {
        let updates: Vec<&GuardedUpdate> = members
            .iter()
            .flat_map(|&u| units[u].updates.iter())
            .collect();
        match commit(ctx, mode, &updates).await {
            Ok(TxOutcome::Committed) => {
                out.extend(members.drain(..).map(|u| {
                    let from = match units[u].kind {
                        UnitKind::Profile(from) => from,
                        UnitKind::Daily(_) => None,
                    };
                    (u, UnitState::Done(from))
                }));
            }
            Ok(TxOutcome::PlanAgain(_)) => {
                // Nothing known to be written: every member re-reads and
                // converges alone.
                out.extend(members.drain(..).map(|u| (u, UnitState::Conflict)));
            }
            Ok(TxOutcome::ConditionFailed(actions)) => {
                // Map the failed actions back to their units.
                let mut owner = Vec::with_capacity(updates.len());
                for &u in &members {
                    owner.extend(std::iter::repeat_n(u, units[u].updates.len()));
                }
                let failed: HashSet<usize> = actions
                    .iter()
                    .filter_map(|a| owner.get(*a).copied())
                    .collect();
                if failed.is_empty() {
                    // Nothing to take out: let every member converge alone.
                    out.extend(members.drain(..).map(|u| (u, UnitState::Conflict)));
                } else {
                    members.retain(|u| !failed.contains(u));
                    out.extend(failed.into_iter().map(|u| (u, UnitState::Conflict)));
                }
            }
            Err(e) => {
                out.extend(members.drain(..).map(|u| (u, UnitState::Error(e.clone()))));
            }
        }
    }
    out
}

/// Converges one unit whose shared commit hit a failed condition.
pub(crate) async fn converge_unit(
    ctx: &Context,
    mode: CommitMode,
    plan: &AgentPlan<'_>,
    unit: &Unit<'_>,
) -> Result<Option<usize>, ExecError> {
    match &unit.kind {
        UnitKind::Profile(_) => {
            // Someone else wrote it (a newer event, reconcile, extensions).
            let state = ctx
                .exec
                .get(&Key::Profile(plan.agent.clone()), true)
                .await?
                .map(ProfileState::from_item);
            write_profile(ctx, mode, &plan.agent, state, &plan.distinct).await
        }
        UnitKind::Daily(chunk) => {
            // Some events were counted already (a redelivery).
            let keys: Vec<Key> = unit.updates.iter().map(|u| u.key.clone()).collect();
            let claimed = claimed_events(ctx, &keys).await?;
            let pending: Vec<Contribution<'_>> = chunk
                .iter()
                .filter(|c| !claimed.contains(c.event.id.as_str()))
                .cloned()
                .collect();
            write_daily_chunk(ctx, mode, &plan.agent, pending).await?;
            Ok(None)
        }
    }
}

/// A deterministic fingerprint of an expression (for idempotency tokens).
pub(crate) fn material(e: &Expr) -> String {
    let mut names: Vec<_> = e.names.iter().collect();
    names.sort();
    let mut values: Vec<_> = e.values.iter().collect();
    values.sort_by(|a, b| a.0.cmp(b.0));
    format!("{}|{names:?}|{values:?}", e.text)
}

pub(crate) fn tx_token(updates: &[&GuardedUpdate]) -> String {
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

/// Commits guarded updates that must go together. One update alone is, in
/// [`CommitMode::Single`], one conditional UpdateItem (atomic on its own, at
/// half the write units); otherwise one TransactWriteItems with a token
/// naming its updates.
pub(crate) async fn commit(
    ctx: &Context,
    mode: CommitMode,
    updates: &[&GuardedUpdate],
) -> Result<TxOutcome, ExecError> {
    if let (CommitMode::Single, [one]) = (mode, updates) {
        let applied = ctx
            .exec
            .update_if(&one.key, one.update.clone(), Some(one.condition.clone()))
            .await?;
        return Ok(if applied {
            TxOutcome::Committed
        } else {
            TxOutcome::ConditionFailed(vec![0])
        });
    }
    let token = tx_token(updates);
    let mut tx = ctx.exec.tx();
    for u in updates {
        tx.update(&u.key, u.update.clone(), Some(u.condition.clone()))?;
    }
    ctx.exec.transact(tx, &token).await
}

/// Writes one routing-profile view; a failed condition means the item
/// shows this event or a newer one already: done.
pub(crate) async fn write_routing_profile(
    ctx: &Context,
    mode: CommitMode,
    update: &GuardedUpdate,
) -> Result<(), ExecError> {
    for _ in 0..MAX_CONVERGE {
        match commit(ctx, mode, &[update]).await? {
            TxOutcome::Committed | TxOutcome::ConditionFailed(_) => return Ok(()),
            TxOutcome::PlanAgain(_) => {}
        }
    }
    Err(ExecError::Transient(format!(
        "routing profile {} kept changing; gave up after {MAX_CONVERGE} attempts",
        update.key
    )))
}

/// Writes the profile (at most one update); returns the index of the event
/// whose snapshot it now shows, if it was written from one.
pub(crate) async fn write_profile(
    ctx: &Context,
    mode: CommitMode,
    agent: &AgentId,
    mut state: Option<ProfileState>,
    events: &[&AgentEvent],
) -> Result<Option<usize>, ExecError> {
    for _ in 0..MAX_CONVERGE {
        let Some((update, from)) = plan_profile(agent, state.as_ref(), events) else {
            return Ok(None);
        };
        match commit(ctx, mode, &[&update]).await? {
            TxOutcome::Committed => return Ok(from),
            TxOutcome::ConditionFailed(_) | TxOutcome::PlanAgain(_) => {
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
pub(crate) fn daily_chunks<'a, 'b>(
    contributions: &'b [Contribution<'a>],
) -> Vec<Vec<Contribution<'a>>> {
    let mut chunks: Vec<Vec<Contribution<'a>>> = Vec::new();
    let mut days: HashSet<chrono::NaiveDate> = HashSet::new();
    let mut current: Vec<Contribution<'a>> = Vec::new();
    for c in contributions {
        let touched = c.touched_days();
        let new_days = touched.iter().filter(|d| !days.contains(d)).count();
        if !current.is_empty()
            && (current.len() >= DAILY_EVENTS_PER_TX || days.len() + new_days > TX_ACTIONS)
        {
            chunks.push(std::mem::take(&mut current));
            days.clear();
        }
        days.extend(touched);
        current.push(c.clone());
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Adds one chunk of contributions to the daily totals, each event exactly
/// once: commit, and on a failed claim drop the events already counted (a
/// redelivery) and commit the rest.
pub(crate) async fn write_daily_chunk(
    ctx: &Context,
    mode: CommitMode,
    agent: &AgentId,
    mut pending: Vec<Contribution<'_>>,
) -> Result<(), ExecError> {
    for _ in 0..MAX_CONVERGE {
        if pending.is_empty() {
            return Ok(());
        }
        let updates = plan_daily(agent, &pending);
        let refs: Vec<&GuardedUpdate> = updates.iter().collect();
        match commit(ctx, mode, &refs).await? {
            TxOutcome::Committed => return Ok(()),
            TxOutcome::PlanAgain(_) => {
                // Nothing known to be written: read the claims again.
                let keys: Vec<Key> = updates.iter().map(|u| u.key.clone()).collect();
                let claimed = claimed_events(ctx, &keys).await?;
                pending.retain(|c| !claimed.contains(c.event.id.as_str()));
            }
            TxOutcome::ConditionFailed(_) => {
                let keys: Vec<Key> = updates.iter().map(|u| u.key.clone()).collect();
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
    Err(ExecError::Transient(format!(
        "daily totals of agent {agent} kept changing; gave up after {MAX_CONVERGE} attempts"
    )))
}

/// The event ids claimed by the given daily items.
pub(crate) async fn claimed_events(
    ctx: &Context,
    keys: &[Key],
) -> Result<HashSet<String>, ExecError> {
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
    use crate::decode_event;
    use crate::plan::contribution;
    use streamfold_shared::testing::fixture;

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
}
