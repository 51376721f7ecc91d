//! Apply: the processor, the batch's view of the pool, and one scheduled
//! op run against it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt as _;
use streamfold_shared::engine::{Context, Decoded, KeyWork, Processor, Step, load_items};
use streamfold_shared::executor::ExecError;
use streamfold_shared::ids::{AgentId, Username};
use streamfold_shared::keys::{Extension, Key};
use streamfold_shared::record::StreamRecord;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::NAME;
use crate::decode::{Event, decode};
use crate::model::{self, ExtItem, ExtState, FREE, Profile, Reservation, WAITING, Waiter};
use crate::plan::{Action, plan};
use crate::queues::{Queues, refill};
use crate::schedule::{self, Op, View};
use crate::transactions::{Claim, assign, claim, claim_reserved, free, release};

/// The processor's per-agent state: the profile as the table holds it.
#[derive(Debug, Clone)]
pub struct AgentState {
    profile: Option<Result<Profile, String>>,
}

/// The processor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extensions;

impl Processor for Extensions {
    type Record = StreamRecord;
    type Key = AgentId;
    type Event = Event;
    type State = AgentState;

    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&self, record: &StreamRecord) -> Decoded<AgentId, Event> {
        decode(record)
    }

    async fn load(
        &self,
        ctx: &Context,
        keys: &[&AgentId],
    ) -> Result<HashMap<AgentId, AgentState>, ExecError> {
        let mut profiles = load_items(ctx, keys, |a| Key::Profile(a.clone())).await?;
        Ok(keys
            .iter()
            .map(|k| {
                let state = AgentState {
                    profile: profiles.remove(*k).map(|item| Profile::from_item(&item)),
                };
                ((*k).clone(), state)
            })
            .collect())
    }

    /// Plans every agent, schedules the whole batch against one view of the
    /// pool in stream order ([`schedule`]), then runs each agent's
    /// transactions, agents concurrently.
    async fn apply_batch(
        &self,
        ctx: &Context,
        work: &[KeyWork<'_, AgentId, AgentState, Event>],
    ) -> Vec<Vec<Step>> {
        let mut steps: Vec<Vec<Step>> = work
            .iter()
            .map(|w| vec![Step::NoOp; w.events.len()])
            .collect();
        // (stream position, slot, event index, action)
        let mut planned: Vec<(usize, usize, usize, Action)> = Vec::new();
        let mut holding: HashSet<AgentId> = HashSet::new();
        for (slot, w) in work.iter().enumerate() {
            let Some(state) = w.state else {
                let why = format!("no state was loaded for agent {}", w.key);
                steps[slot] = vec![Step::Failed(why); w.events.len()];
                continue;
            };
            let current = match &state.profile {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    steps[slot] = vec![Step::Invalid(e.clone()); w.events.len()];
                    continue;
                }
            };
            if let Some(p) = current.filter(|p| p.extension.is_some()) {
                holding.insert(p.agent.clone());
            }
            for (i, action) in plan(current, &w.events) {
                let at = w.positions.get(i).copied().unwrap_or(usize::MAX);
                planned.push((at, slot, i, action));
            }
        }
        if planned.is_empty() {
            return steps;
        }
        planned.sort_by_key(|(at, slot, i, _)| (*at, *slot, *i));
        let actions: Vec<&Action> = planned.iter().map(|(_, _, _, a)| a).collect();
        let (view, queues) = match read_view(ctx, &actions, holding).await {
            Ok(v) => v,
            Err(e) => {
                let step = Step::during("reading the pool", e);
                for (_, slot, i, _) in &planned {
                    steps[*slot][*i] = step.clone();
                }
                return steps;
            }
        };
        let sched = schedule::schedule(&actions, view);
        let queues = Arc::new(Mutex::new(
            queues.with_spares(sched.spare_free, sched.spare_waiting),
        ));

        // Each agent's ops in stream order; agents concurrently.
        let mut by_slot: Vec<Vec<(usize, Op)>> = vec![Vec::new(); work.len()];
        for ((_, slot, i, _), op) in planned.iter().zip(sched.ops) {
            by_slot[*slot].push((*i, op));
        }
        let queues = &queues;
        let futures: Vec<_> = by_slot
            .into_iter()
            .enumerate()
            .filter(|(_, ops)| !ops.is_empty())
            .map(|(slot, ops)| async move {
                let mut out = Vec::with_capacity(ops.len());
                for (i, op) in ops {
                    let step = match run(ctx, queues, op).await {
                        Ok(true) => Step::Applied,
                        Ok(false) => Step::NoOp,
                        Err(e) => Step::from(e),
                    };
                    let failed = matches!(step, Step::Failed(_));
                    out.push((i, step));
                    if failed {
                        break;
                    }
                }
                (slot, out)
            })
            .collect();
        let done: Vec<(usize, Vec<(usize, Step)>)> = futures::stream::iter(futures)
            .buffer_unordered(ctx.concurrency.max(1))
            .collect()
            .await;
        for (slot, out) in done {
            for (i, step) in out {
                steps[slot][i] = step;
            }
        }
        steps
    }
}

/// Reads what [`schedule`] needs: the owners of the extensions the batch
/// gives back or restores (one consistent BatchGetItem), the lowest free
/// extensions (as many as the batch assigns, and a quarter more for
/// races), and, when the batch releases any, the longest-waiting agents.
/// Also the spare queues, marked with what was read.
async fn read_view(
    ctx: &Context,
    actions: &[&Action],
    holding: HashSet<AgentId>,
) -> Result<(View, Queues), ExecError> {
    let mut view = View {
        holding,
        ..View::default()
    };
    let mut queues = Queues::default();
    let mut wanted: Vec<Extension> = Vec::new();
    let (mut releases, mut assigns) = (0usize, 0usize);
    for a in actions {
        match a {
            Action::Release { extension, .. } => {
                releases += 1;
                wanted.push(extension.clone());
            }
            Action::Assign { prior, .. } => {
                assigns += 1;
                wanted.extend(prior.iter().cloned());
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    if !wanted.is_empty() {
        let keys: Vec<Key> = wanted.iter().cloned().map(Key::Extension).collect();
        for x in &wanted {
            view.owners.insert(x.clone(), None);
        }
        for item in ctx.exec.batch_get(&keys, true).await? {
            if let Ok(e) = ExtItem::from_item(&item)
                && let ExtState::Assigned { agent, .. } = e.state
            {
                view.owners.insert(e.extension, AgentId::new(agent).ok());
            }
        }
    }
    if assigns > 0 {
        let want = assigns + assigns / 4 + 1;
        let free = refill(ctx, FREE, want, &HashSet::new(), |item| {
            let x = ExtItem::from_item(item).ok()?;
            matches!(x.state, ExtState::Free).then_some(x.extension)
        })
        .await?;
        queues.free.exhausted = free.len() < want;
        queues.want = want;
        view.free = free;
    }
    if releases > 0 {
        let want = releases + assigns;
        let waiting = refill(ctx, WAITING, want, &HashSet::new(), |item| {
            Profile::from_item(item)
                .ok()
                .filter(|p| p.extension.is_none())
        })
        .await?;
        queues.waiting.exhausted = waiting.len() < want;
        view.waiting = waiting
            .iter()
            .map(|p| (p.queue_key.clone().unwrap_or_default(), Waiter::from(p)))
            .collect();
    }
    // Reservations of the arriving and the waiting agents' usernames (an
    // import kept their old extension for them): one consistent
    // BatchGetItem. A reserved agent gets its own, never a hand-over.
    let usernames: Vec<Key> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Assign { profile, .. } => profile.username.as_deref(),
            Action::Release { .. } => None,
        })
        .chain(
            view.waiting
                .iter()
                .filter_map(|(_, w)| w.username.as_deref()),
        )
        .filter_map(|u| Username::new(u).ok())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(Key::Reservation)
        .collect();
    if !usernames.is_empty() {
        for item in ctx.exec.batch_get(&usernames, true).await? {
            if let Ok(r) = Reservation::from_item(&item) {
                queues.free.tried.insert(r.extension.to_string());
                view.reserved
                    .insert(r.username.to_string(), r.extension.clone());
            }
        }
    }
    for x in &view.free {
        queues.free.tried.insert(x.to_string());
    }
    for x in &wanted {
        queues.free.tried.insert(x.to_string());
    }
    for (_, w) in &view.waiting {
        queues.waiting.tried.insert(w.agent.to_string());
    }
    for a in actions {
        if let Action::Assign { profile, .. } = a {
            queues.waiting.tried.insert(profile.agent.to_string());
        }
    }
    Ok((view, queues))
}

/// Runs one scheduled op. A race the view could not see (another writer
/// took the extension, or served the agent) falls back to the batch's
/// spare candidates.
async fn run(ctx: &Context, queues: &Arc<Mutex<Queues>>, op: Op) -> Result<bool, ExecError> {
    match op {
        Op::Nothing => Ok(false),
        Op::Wait { agent } => {
            warn!(
                agent_id = %agent,
                "extension pool exhausted: the agent stays waiting until an extension is freed"
            );
            Ok(false)
        }
        Op::Claim { agent, x } => match claim(ctx, &agent, &x, None, "claim").await? {
            Claim::Done => {
                info!(agent_id = %agent.agent, extension = %x, "extension assigned");
                Ok(true)
            }
            // Served already (or gone); `x` may still be free: a spare.
            Claim::AgentDone => {
                queues.lock().await.free.items.push_front(x);
                Ok(false)
            }
            Claim::ExtTaken => assign(ctx, queues, &agent, None).await,
        },
        Op::Restore { agent, x } => assign(ctx, queues, &agent, Some(&x)).await,
        Op::Reserved { agent, x, username } => {
            match claim_reserved(ctx, &agent, &x, &username).await? {
                Claim::Done => {
                    info!(agent_id = %agent.agent, extension = %x, "reserved extension assigned");
                    Ok(true)
                }
                Claim::AgentDone => Ok(false),
                // The reservation was cancelled or used meanwhile.
                Claim::ExtTaken => assign(ctx, queues, &agent, None).await,
            }
        }
        Op::Handover { from, x, to } => match claim(ctx, &to, &x, Some(&from), "handover").await? {
            Claim::Done => {
                info!(agent_id = %to.agent, extension = %x, released_by = %from, "extension handed over to the longest-waiting agent");
                Ok(true)
            }
            // The waiter was served meanwhile, or left: the next one.
            Claim::AgentDone => release(ctx, queues, &from, &x).await,
            // `x` is no longer the departed agent's: `to` did not get it
            // and is first in line for a spare.
            Claim::ExtTaken => {
                queues.lock().await.waiting.items.push_front(to);
                Ok(false)
            }
        },
        Op::Free { from, x } => {
            if !free(ctx, &from, &x).await? {
                return Ok(false);
            }
            info!(agent_id = %from, extension = %x, "extension freed");
            Ok(true)
        }
    }
}

/// What [`settle`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Settled {
    /// Waiting agents that got an extension.
    pub assigned: u64,
    /// Agents still waiting (the pool is exhausted).
    pub still_waiting: u64,
}

/// Hands free extensions to waiting agents, oldest first, until one of the
/// two queues is empty. The processor does this as records arrive; this
/// catches up after `extensions init` grew the pool, or after a release and
/// an arrival missed each other across batches (index reads lag).
pub async fn settle(ctx: &Context) -> Result<Settled, ExecError> {
    let mut waiters = Vec::new();
    let mut start = None;
    loop {
        let (items, next) = model::queue_page(ctx, WAITING, 500, start).await?;
        waiters.extend(
            items
                .iter()
                .filter_map(|i| Profile::from_item(i).ok())
                .filter(|p| p.extension.is_none()),
        );
        start = next;
        if start.is_none() {
            break;
        }
    }
    let queues = Arc::new(Mutex::new(Queues {
        want: waiters.len() + 1,
        ..Queues::default()
    }));
    let mut done = Settled::default();
    for profile in &waiters {
        if assign(ctx, &queues, &Waiter::from(profile), None).await? {
            done.assigned += 1;
        } else if queues.lock().await.free.exhausted {
            done.still_waiting = (waiters.len() as u64).saturating_sub(done.assigned);
            break;
        }
    }
    Ok(done)
}
