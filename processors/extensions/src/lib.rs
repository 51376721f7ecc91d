//! extensions: every Connect agent profile gets the lowest free extension,
//! keeps it while the profile exists, and gives it back when the profile
//! goes away, straight to the longest-waiting agent if there is one.
//!
//! - **decode**: an `agent` profile record of the table stream becomes
//!   [`Event::Arrived`] (an INSERT, or a MODIFY whose new image still has no
//!   extension) or [`Event::Departed`] (a REMOVE, TTL deletions included,
//!   whose old image had an extension), ordered by agent. Everything else
//!   (its own `ext` writes, the MODIFY its own assignment causes, activity
//!   items, messages) is ignored; a malformed profile record is refused.
//! - **load**: one consistent BatchGetItem of the batch's profiles.
//! - **plan** ([`plan`]): coalesces an agent's events against its current
//!   profile into releases and at most one assignment.
//! - **schedule** ([`schedule::schedule`]): the agents of a batch share the
//!   pool, so the whole batch's actions are walked in stream order against
//!   one view of it (the owners of the released extensions, the lowest free
//!   extensions, the longest-waiting agents) and each is given its
//!   transaction before anything is written. Who gets which extension is a
//!   function of the stream, whatever ran first, crashed or was delivered
//!   again.
//! - **apply**: each action is one TransactWriteItems with conditions:
//!   claim = ext item still free + profile exists without extension; release =
//!   ext item still assigned to the departed agent + that agent does not hold
//!   it again, and, in the same transaction, hand-over to a waiting agent or
//!   back to the pool; agents run concurrently. A race with another writer
//!   (the view was stale) moves on to the next spare candidate. The
//!   conditions, not the (eventually consistent) index reads, are what keep
//!   the invariants: no extension assigned twice, no agent with two, and
//!   free + assigned + reserved = pool size.
//! - **reservations** (`streamfold import extensions`): an extension kept
//!   for a Connect username with no profile yet (`RESERVATION#{username}`,
//!   its ext item `reserved_for` the username). The batch reads the
//!   reservations of its arriving and waiting usernames; such an agent gets
//!   its reserved extension (claim = ext item still reserved for it +
//!   profile without extension + the reservation deleted), never the lowest
//!   free one and never a hand-over.

pub mod adopt;
pub mod census;
pub mod model;
pub mod pool;
pub mod schedule;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures::StreamExt as _;
use schedule::{Op, View};
use streamfold_shared::engine::{Context, Decoded, KeyWork, Processor, Step};
use streamfold_shared::executor::{ExecError, Expr, Item, MAX_PLAN_AGAIN, TxOutcome, token};
use streamfold_shared::ids::{AgentId, Timestamp, Username};
use streamfold_shared::keys::{Extension, Key};
use streamfold_shared::record::{ChangeKind, StreamRecord};
use tokio::sync::Mutex;
use tracing::{info, warn};

pub use model::{
    AGENTS, ExtItem, ExtState, FREE, GSI1, GSI2, Profile, RESERVED, Reservation, WAITING, Waiter,
};

/// The processor's name.
pub const NAME: &str = "extensions";

/// How many candidates one action tries before it gives up for this
/// delivery (the record then fails and is retried by the stream).
const MAX_TRIES: usize = 64;

/// A domain event of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The profile exists and has no extension (INSERT, or a MODIFY that
    /// still waits). `prior` is the extension the old image had, when a
    /// writer overwrote the profile without it.
    Arrived {
        agent: AgentId,
        prior: Option<Extension>,
    },
    /// The profile holding `extension` was deleted (by reconcile, an
    /// operator, or TTL when `ttl`).
    Departed {
        agent: AgentId,
        extension: Extension,
        ttl: bool,
    },
}

fn image_ext(image: &serde_dynamo::Item, agent: &AgentId) -> Result<Option<Extension>, String> {
    match image.get("extension") {
        None | Some(serde_dynamo::AttributeValue::Null(_)) => Ok(None),
        Some(serde_dynamo::AttributeValue::S(x)) => Extension::new(x)
            .map(Some)
            .map_err(|e| format!("profile of agent {agent}: {e}")),
        Some(_) => Err(format!(
            "profile of agent {agent}: extension is not a string"
        )),
    }
}

/// Decodes one stream record (pure).
pub fn decode(record: &StreamRecord) -> Decoded<Event> {
    let pk = record.key_str("pk").unwrap_or_default();
    let sk = record.key_str("sk").unwrap_or_default();
    match record.item_type() {
        Some("agent") => {}
        None if pk.starts_with("AGENT#") && sk == "PROFILE" => {
            // An image of the key alone carries nothing to act on (the
            // local endpoint's UpdateItem of a new item emits one before
            // the record with the attributes, which follows): ignored.
            let image = record
                .dynamodb
                .new_image
                .as_ref()
                .or(record.dynamodb.old_image.as_ref());
            if image.is_some_and(|i| i.keys().all(|k| k == "pk" || k == "sk")) {
                return Decoded::Ignore;
            }
            return Decoded::Invalid("agent profile record has no type attribute".to_owned());
        }
        _ => return Decoded::Ignore,
    }
    let agent = match Key::parse(pk, sk) {
        Ok(Key::Profile(a)) => a,
        Ok(other) => return Decoded::Invalid(format!("an agent item under key {other}")),
        Err(e) => return Decoded::Invalid(format!("agent profile key: {e}")),
    };
    let key = agent.to_string();
    match record.kind {
        ChangeKind::Remove => {
            let Some(old) = &record.dynamodb.old_image else {
                return Decoded::Invalid(
                    "profile REMOVE has no OldImage (the stream must be NEW_AND_OLD_IMAGES)"
                        .to_owned(),
                );
            };
            match image_ext(old, &agent) {
                // A waiting agent left: there is nothing to free.
                Ok(None) => Decoded::Ignore,
                Ok(Some(extension)) => Decoded::Event {
                    key,
                    event: Event::Departed {
                        agent,
                        extension,
                        ttl: record.is_ttl_deletion(),
                    },
                },
                Err(e) => Decoded::Invalid(e),
            }
        }
        ChangeKind::Insert | ChangeKind::Modify => {
            let Some(new) = &record.dynamodb.new_image else {
                return Decoded::Invalid(
                    "profile record has no NewImage (the stream must be NEW_AND_OLD_IMAGES)"
                        .to_owned(),
                );
            };
            match image_ext(new, &agent) {
                // It has one (our own assignment, or any later change).
                Ok(Some(_)) => Decoded::Ignore,
                Ok(None) => {
                    let prior = match record.dynamodb.old_image.as_ref() {
                        Some(old) => image_ext(old, &agent).ok().flatten(),
                        None => None,
                    };
                    Decoded::Event {
                        key,
                        event: Event::Arrived { agent, prior },
                    }
                }
                Err(e) => Decoded::Invalid(e),
            }
        }
    }
}

/// What has to be done for one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Free this extension of the departed agent (or hand it over).
    Release {
        agent: AgentId,
        extension: Extension,
    },
    /// Give the agent an extension; try `prior` first.
    Assign {
        profile: Profile,
        prior: Option<Extension>,
    },
}

/// Coalesces an agent's events (oldest first) against its profile as the
/// table holds it now. Pure. Returns the actions with the index of the event
/// each one answers; every other event is a no-op.
///
/// - each extension the agent departed with is released once, unless the
///   (re-created) profile holds it again;
/// - one assignment, if any event says the agent arrived and the profile
///   exists now without an extension; it comes after the releases.
pub fn plan(current: Option<&Profile>, events: &[&Event]) -> Vec<(usize, Action)> {
    let mut actions = Vec::new();
    let mut released: HashSet<&Extension> = HashSet::new();
    let mut arrival: Option<(usize, Option<Extension>)> = None;
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Departed {
                agent, extension, ..
            } => {
                let held_again = current.is_some_and(|p| p.extension.as_ref() == Some(extension));
                if !held_again && released.insert(extension) {
                    actions.push((
                        i,
                        Action::Release {
                            agent: agent.clone(),
                            extension: extension.clone(),
                        },
                    ));
                }
            }
            Event::Arrived { prior, .. } => {
                // The assignment answers the first arrival: a batch cut
                // after it would have served the agent there (the profile
                // read is the same), so the schedule's order must not
                // depend on where the batch ends.
                arrival = Some(match arrival {
                    None => (i, prior.clone()),
                    Some((first, p)) => (first, p.or_else(|| prior.clone())),
                });
            }
        }
    }
    if let (Some((i, prior)), Some(p)) = (arrival, current)
        && p.extension.is_none()
    {
        actions.push((
            i,
            Action::Assign {
                profile: p.clone(),
                prior,
            },
        ));
    }
    actions
}

/// A batch-wide view of one gsi1 queue: candidates not yet handed out in
/// this batch, in index order.
#[derive(Debug)]
struct Queue<T> {
    items: VecDeque<T>,
    tried: HashSet<String>,
    exhausted: bool,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            tried: HashSet::new(),
            exhausted: false,
        }
    }
}

/// The two queues of a batch, behind one lock so that "no free extension,
/// so wait" and "no waiting agent, so free it" cannot miss each other
/// within a batch.
#[derive(Debug, Default)]
struct Pools {
    free: Queue<Extension>,
    waiting: Queue<Waiter>,
    /// How many assignments the batch is expected to need (prefetch size).
    want: usize,
}

impl Pools {
    async fn next_free(&mut self, ctx: &Context) -> Result<Option<Extension>, ExecError> {
        loop {
            if let Some(x) = self.free.items.pop_front() {
                return Ok(Some(x));
            }
            if self.free.exhausted {
                return Ok(None);
            }
            let want = self.want.clamp(1, 500);
            let found = refill(ctx, FREE, want, &self.free.tried, |item| {
                let x = ExtItem::from_item(item).ok()?;
                matches!(x.state, ExtState::Free).then_some(x.extension)
            })
            .await?;
            if found.is_empty() {
                self.free.exhausted = true;
            }
            for x in found {
                self.free.tried.insert(x.to_string());
                self.free.items.push_back(x);
            }
        }
    }

    async fn next_waiter(&mut self, ctx: &Context) -> Result<Option<Waiter>, ExecError> {
        loop {
            if let Some(w) = self.waiting.items.pop_front() {
                return Ok(Some(w));
            }
            if self.waiting.exhausted {
                return Ok(None);
            }
            let found = refill(ctx, WAITING, 25, &self.waiting.tried, |item| {
                let p = Profile::from_item(item).ok()?;
                (p.extension.is_none()).then(|| Waiter::from(&p))
            })
            .await?;
            if found.is_empty() {
                self.waiting.exhausted = true;
            }
            for w in found {
                self.waiting.tried.insert(w.agent.to_string());
                self.waiting.items.push_back(w);
            }
        }
    }

    /// The spare candidates a batch's schedule left (`self` holds what was
    /// read, so that a refill skips it).
    fn with_spares(mut self, free: Vec<Extension>, waiting: Vec<Waiter>) -> Self {
        self.free.items = free.into();
        self.waiting.items = waiting.into();
        self
    }

    /// An agent of this batch that found no free extension: a later release
    /// in the batch hands it one.
    fn enqueue_waiter(&mut self, w: Waiter) {
        if self.waiting.tried.insert(w.agent.to_string()) {
            self.waiting.items.push_back(w);
        }
    }
}

/// Reads a gsi1 queue from its start until `want` new candidates (not in
/// `tried`) are found or the queue ends.
async fn refill<T>(
    ctx: &Context,
    queue: &str,
    want: usize,
    tried: &HashSet<String>,
    parse: impl Fn(&Item) -> Option<T>,
) -> Result<Vec<T>, ExecError>
where
    T: ToString,
{
    let mut found = Vec::new();
    let mut start = None;
    loop {
        let limit = i32::try_from((want + tried.len()).min(1000)).unwrap_or(1000);
        let (items, next) = model::queue_page(ctx, queue, limit, start).await?;
        for item in &items {
            if let Some(c) = parse(item)
                && !tried.contains(&c.to_string())
            {
                found.push(c);
            }
        }
        if found.len() >= want || next.is_none() {
            return Ok(found);
        }
        start = next;
    }
}

impl std::fmt::Display for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.agent.as_str())
    }
}

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
    type Event = Event;
    type State = AgentState;

    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&self, record: &StreamRecord) -> Decoded<Event> {
        decode(record)
    }

    async fn load(
        &self,
        ctx: &Context,
        keys: &[&str],
    ) -> Result<HashMap<String, AgentState>, ExecError> {
        let mut profiles: HashMap<String, Result<Profile, String>> = ctx
            .agent_profiles(keys)
            .await?
            .into_iter()
            .map(|(id, item)| (id, Profile::from_item(&item)))
            .collect();
        Ok(keys
            .iter()
            .map(|k| {
                let state = AgentState {
                    profile: profiles.remove(*k),
                };
                ((*k).to_owned(), state)
            })
            .collect())
    }

    async fn apply(
        &self,
        ctx: &Context,
        key: &str,
        state: Option<&AgentState>,
        events: &[&Event],
    ) -> Vec<Step> {
        let work = KeyWork::alone(key, state, events);
        self.apply_batch(ctx, &work).await.pop().unwrap_or_default()
    }

    /// Plans every agent, schedules the whole batch against one view of the
    /// pool in stream order ([`schedule`]), then runs each agent's
    /// transactions, agents concurrently.
    async fn apply_batch(
        &self,
        ctx: &Context,
        work: &[KeyWork<'_, AgentState, Event>],
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
        let (view, pools) = match read_view(ctx, &actions, holding).await {
            Ok(v) => v,
            Err(e) => {
                let step = match e {
                    e if e.is_transient() => Step::Failed(format!("reading the pool: {e}")),
                    e => Step::Invalid(format!("reading the pool: {e}")),
                };
                for (_, slot, i, _) in &planned {
                    steps[*slot][*i] = step.clone();
                }
                return steps;
            }
        };
        let sched = schedule::schedule(&actions, view);
        let pools = Arc::new(Mutex::new(
            pools.with_spares(sched.spare_free, sched.spare_waiting),
        ));

        // Each agent's ops in stream order; agents concurrently.
        let mut by_slot: Vec<Vec<(usize, Op)>> = vec![Vec::new(); work.len()];
        for ((_, slot, i, _), op) in planned.iter().zip(sched.ops) {
            by_slot[*slot].push((*i, op));
        }
        let pools = &pools;
        let futures: Vec<_> = by_slot
            .into_iter()
            .enumerate()
            .filter(|(_, ops)| !ops.is_empty())
            .map(|(slot, ops)| async move {
                let mut out = Vec::with_capacity(ops.len());
                for (i, op) in ops {
                    let step = match run(ctx, pools, op).await {
                        Ok(true) => Step::Applied,
                        Ok(false) => Step::NoOp,
                        Err(e) if e.is_transient() => Step::Failed(e.to_string()),
                        Err(e) => Step::Invalid(e.to_string()),
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
/// Also the spare pools, marked with what was read.
async fn read_view(
    ctx: &Context,
    actions: &[&Action],
    holding: HashSet<AgentId>,
) -> Result<(View, Pools), ExecError> {
    let mut view = View {
        holding,
        ..View::default()
    };
    let mut pools = Pools::default();
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
        pools.free.exhausted = free.len() < want;
        pools.want = want;
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
        pools.waiting.exhausted = waiting.len() < want;
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
                pools.free.tried.insert(r.extension.to_string());
                view.reserved
                    .insert(r.username.to_string(), r.extension.clone());
            }
        }
    }
    for x in &view.free {
        pools.free.tried.insert(x.to_string());
    }
    for x in &wanted {
        pools.free.tried.insert(x.to_string());
    }
    for (_, w) in &view.waiting {
        pools.waiting.tried.insert(w.agent.to_string());
    }
    for a in actions {
        if let Action::Assign { profile, .. } = a {
            pools.waiting.tried.insert(profile.agent.to_string());
        }
    }
    Ok((view, pools))
}

/// Runs one scheduled op. A race the view could not see (another writer
/// took the extension, or served the agent) falls back to the batch's
/// spare candidates.
async fn run(ctx: &Context, pools: &Arc<Mutex<Pools>>, op: Op) -> Result<bool, ExecError> {
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
                pools.lock().await.free.items.push_front(x);
                Ok(false)
            }
            Claim::ExtTaken => assign(ctx, pools, &agent, None).await,
        },
        Op::Restore { agent, x } => assign(ctx, pools, &agent, Some(&x)).await,
        Op::Reserved { agent, x, username } => {
            match claim_reserved(ctx, &agent, &x, &username).await? {
                Claim::Done => {
                    info!(agent_id = %agent.agent, extension = %x, "reserved extension assigned");
                    Ok(true)
                }
                Claim::AgentDone => Ok(false),
                // The reservation was cancelled or used meanwhile.
                Claim::ExtTaken => assign(ctx, pools, &agent, None).await,
            }
        }
        Op::Handover { from, x, to } => match claim(ctx, &to, &x, Some(&from), "handover").await? {
            Claim::Done => {
                info!(agent_id = %to.agent, extension = %x, released_by = %from, "extension handed over to the longest-waiting agent");
                Ok(true)
            }
            // The waiter was served meanwhile, or left: the next one.
            Claim::AgentDone => release(ctx, pools, &from, &x).await,
            // `x` is no longer the departed agent's: `to` did not get it
            // and is first in line for a spare.
            Claim::ExtTaken => {
                pools.lock().await.waiting.items.push_front(to);
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

/// The SET/REMOVE expression that makes an ext item assigned to `w`.
fn assigned_update(w: &Waiter, at: Timestamp) -> Expr {
    let mut set = vec!["agent_id = :agent", "assigned_at = :at"];
    let mut remove = vec!["gsi1pk", "gsi1sk", "reserved_for", "reserved_at"];
    let mut e = Expr::new("")
        .s(":agent", w.agent.as_str())
        .s(":at", at.to_string());
    match &w.agent_arn {
        Some(arn) => {
            set.push("agent_arn = :arn");
            e = e.s(":arn", arn.as_str());
        }
        None => remove.push("agent_arn"),
    }
    match &w.username {
        Some(u) => {
            set.push("username = :user");
            e = e.s(":user", u.as_str());
        }
        None => remove.push("username"),
    }
    e.text = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
    e
}

/// The profile update that records the extension and leaves the queue.
fn profile_takes(x: &Extension) -> (Expr, Expr) {
    (
        Expr::new("SET extension = :x REMOVE gsi1pk, gsi1sk").s(":x", x.as_str()),
        Expr::new("attribute_exists(pk) AND attribute_not_exists(extension)"),
    )
}

/// What a claim transaction came to.
enum Claim {
    Done,
    /// The ext item was no longer free (or no longer ours to hand over).
    ExtTaken,
    /// The agent is gone or already has an extension.
    AgentDone,
}

/// One transaction: the profile takes `x` (index 0), and the ext item moves
/// from free (or from `from`, the departed agent, who must not hold it
/// again) to the agent. An answer that says to plan again builds the
/// transaction again (a new time, so a new token), a few times: its
/// conditions decide, as for a retried commit whose answer was lost.
async fn claim(
    ctx: &Context,
    w: &Waiter,
    x: &Extension,
    from: Option<&AgentId>,
    purpose: &str,
) -> Result<Claim, ExecError> {
    let mut last = String::new();
    for _ in 0..MAX_PLAN_AGAIN {
        match claim_once(ctx, w, x, from, purpose).await? {
            Ok(claim) => return Ok(claim),
            Err(why) => last = why,
        }
    }
    Err(ExecError::Transient(format!(
        "agent {}: planned the claim of {x} again {MAX_PLAN_AGAIN} times: {last}",
        w.agent
    )))
}

/// One attempt of [`claim`]; `Ok(Err(why))` to plan again.
///
/// The token names this one planned transaction: the agent, the extension,
/// where it comes from and the attempt's own time (`assigned_at`, part of
/// the parameters), so no other claim ever has it and the executor's
/// retries of this one share it.
async fn claim_once(
    ctx: &Context,
    w: &Waiter,
    x: &Extension,
    from: Option<&AgentId>,
    purpose: &str,
) -> Result<Result<Claim, String>, ExecError> {
    let at = Timestamp::now();
    let mut tx = ctx.exec.tx();
    let (set, cond) = profile_takes(x);
    tx.update(&Key::Profile(w.agent.clone()), set, Some(cond))?;
    let guard = match from {
        None => Expr::new("gsi1pk = :free").s(":free", FREE),
        Some(a) => Expr::new("agent_id = :from").s(":from", a.as_str()),
    };
    tx.update(
        &Key::Extension(x.clone()),
        assigned_update(w, at),
        Some(guard),
    )?;
    if let Some(a) = from
        && *a != w.agent
    {
        tx.check(&Key::Profile(a.clone()), not_holding(x))?;
    }
    let from_s = from.map(AgentId::as_str).unwrap_or("pool");
    let t = token(&[
        NAME,
        purpose,
        w.agent.as_str(),
        x.as_str(),
        from_s,
        &at.to_string(),
        w.agent_arn.as_deref().unwrap_or(""),
        w.username.as_deref().unwrap_or(""),
    ]);
    Ok(match ctx.exec.transact(tx, &t).await? {
        TxOutcome::Committed => Ok(Claim::Done),
        TxOutcome::ConditionFailed(failed) if failed.contains(&0) => Ok(Claim::AgentDone),
        TxOutcome::ConditionFailed(_) => Ok(Claim::ExtTaken),
        TxOutcome::PlanAgain(why) => Err(why),
    })
}

/// One transaction: the profile takes `x` (index 0), the ext item moves
/// from reserved-for-`username` to the agent, and the reservation item is
/// deleted. An answer that says to plan again builds it again (a new time,
/// so a new token), a few times, as [`claim`] does.
async fn claim_reserved(
    ctx: &Context,
    w: &Waiter,
    x: &Extension,
    username: &str,
) -> Result<Claim, ExecError> {
    let mut last = String::new();
    for _ in 0..MAX_PLAN_AGAIN {
        match claim_reserved_once(ctx, w, x, username).await? {
            Ok(claim) => return Ok(claim),
            Err(why) => last = why,
        }
    }
    Err(ExecError::Transient(format!(
        "agent {}: planned the claim of reserved {x} again {MAX_PLAN_AGAIN} times: {last}",
        w.agent
    )))
}

/// One attempt of [`claim_reserved`]; `Ok(Err(why))` to plan again.
async fn claim_reserved_once(
    ctx: &Context,
    w: &Waiter,
    x: &Extension,
    username: &str,
) -> Result<Result<Claim, String>, ExecError> {
    let user = Username::new(username).map_err(|e| ExecError::Permanent(e.to_string()))?;
    let at = Timestamp::now();
    let mut tx = ctx.exec.tx();
    let (set, cond) = profile_takes(x);
    tx.update(&Key::Profile(w.agent.clone()), set, Some(cond))?;
    tx.update(
        &Key::Extension(x.clone()),
        assigned_update(w, at),
        Some(Expr::new("reserved_for = :user").s(":user", username)),
    )?;
    tx.delete(
        &Key::Reservation(user),
        Some(Expr::new("extension = :x").s(":x", x.as_str())),
    )?;
    let t = token(&[
        NAME,
        "reserved",
        w.agent.as_str(),
        x.as_str(),
        username,
        &at.to_string(),
        w.agent_arn.as_deref().unwrap_or(""),
    ]);
    Ok(match ctx.exec.transact(tx, &t).await? {
        TxOutcome::Committed => Ok(Claim::Done),
        TxOutcome::ConditionFailed(failed) if failed.contains(&0) => Ok(Claim::AgentDone),
        TxOutcome::ConditionFailed(_) => Ok(Claim::ExtTaken),
        TxOutcome::PlanAgain(why) => Err(why),
    })
}

/// The reservation of `w`'s username, if any (a consistent read).
async fn reservation_of(ctx: &Context, w: &Waiter) -> Result<Option<Reservation>, ExecError> {
    let Some(user) = w.username.as_deref().and_then(|u| Username::new(u).ok()) else {
        return Ok(None);
    };
    Ok(ctx
        .exec
        .get(&Key::Reservation(user), true)
        .await?
        .and_then(|item| Reservation::from_item(&item).ok()))
}

/// "This agent does not hold `x`": true for a deleted profile too.
fn not_holding(x: &Extension) -> Expr {
    Expr::new("attribute_not_exists(extension) OR extension <> :held").s(":held", x.as_str())
}

/// Gives the agent an extension: `prior` if the ext item still names it,
/// else the lowest free one, moving on after a lost race. `Ok(false)` when
/// nothing changed: the agent already had one or is gone, or the pool is
/// exhausted (the agent stays waiting; a release hands it one).
async fn assign(
    ctx: &Context,
    pools: &Arc<Mutex<Pools>>,
    w: &Waiter,
    prior: Option<&Extension>,
) -> Result<bool, ExecError> {
    if let Some(x) = prior {
        // The profile was overwritten without its extension: give it back.
        if let Claim::Done = claim(ctx, w, x, Some(&w.agent), "restore").await? {
            info!(agent_id = %w.agent, extension = %x, "extension restored to its agent");
            return Ok(true);
        }
    }
    // Kept for this username by an import (settle, or a fallback).
    if let Some(r) = reservation_of(ctx, w).await? {
        match claim_reserved(ctx, w, &r.extension, r.username.as_str()).await? {
            Claim::Done => {
                info!(agent_id = %w.agent, extension = %r.extension, "reserved extension assigned");
                return Ok(true);
            }
            Claim::AgentDone => return Ok(false),
            Claim::ExtTaken => {}
        }
    }
    for _ in 0..MAX_TRIES {
        let candidate = {
            let mut p = pools.lock().await;
            match p.next_free(ctx).await? {
                Some(x) => x,
                None => {
                    p.enqueue_waiter(w.clone());
                    warn!(
                        agent_id = %w.agent,
                        "extension pool exhausted: the agent stays waiting until an extension is freed"
                    );
                    return Ok(false);
                }
            }
        };
        match claim(ctx, w, &candidate, None, "claim").await? {
            Claim::Done => {
                info!(agent_id = %w.agent, extension = %candidate, "extension assigned");
                return Ok(true);
            }
            Claim::AgentDone => {
                // The agent had one already (or left): `candidate` was not
                // used, the batch's next agent gets it (a retried commit
                // whose answer was lost ends here too, and the next claim
                // of it then finds it taken).
                pools.lock().await.free.items.push_front(candidate);
                return Ok(false);
            }
            Claim::ExtTaken => continue,
        }
    }
    Err(ExecError::Transient(format!(
        "agent {}: {MAX_TRIES} free extensions in a row were taken by others; retrying later",
        w.agent
    )))
}

/// Frees `x` of the departed agent and, in the same transaction, hands it to
/// the longest-waiting agent if there is one. `Ok(false)` when it was
/// already released (a duplicate or late record).
async fn release(
    ctx: &Context,
    pools: &Arc<Mutex<Pools>>,
    from: &AgentId,
    x: &Extension,
) -> Result<bool, ExecError> {
    for _ in 0..MAX_TRIES {
        let waiter = { pools.lock().await.next_waiter(ctx).await? };
        // A waiter with a reservation gets its reserved extension, not this.
        if let Some(w) = &waiter
            && reservation_of(ctx, w).await?.is_some()
        {
            continue;
        }
        match waiter {
            Some(w) => match claim(ctx, &w, x, Some(from), "handover").await? {
                Claim::Done => {
                    info!(agent_id = %w.agent, extension = %x, released_by = %from, "extension handed over to the longest-waiting agent");
                    return Ok(true);
                }
                // The waiter got one meanwhile, or left: the next one.
                Claim::AgentDone => continue,
                // `x` is no longer the departed agent's: `w` did not get
                // it and stays first in line for the batch's next release.
                Claim::ExtTaken => {
                    pools.lock().await.waiting.items.push_front(w);
                    return Ok(false);
                }
            },
            None => {
                if !free(ctx, from, x).await? {
                    return Ok(false);
                }
                info!(agent_id = %from, extension = %x, "extension freed");
                // An agent of this batch may have started waiting meanwhile.
                let late = {
                    let mut p = pools.lock().await;
                    p.free.items.push_front(x.clone());
                    p.free.exhausted = false;
                    p.waiting.items.pop_front()
                };
                if let Some(w) = late
                    && let Err(e) = assign(ctx, pools, &w, None).await
                {
                    warn!(agent_id = %w.agent, error = %e, "a waiting agent could not take a freed extension yet");
                }
                return Ok(true);
            }
        }
    }
    Err(ExecError::Transient(format!(
        "extension {x}: {MAX_TRIES} waiting agents in a row could not take it; retrying later"
    )))
}

/// One transaction: the ext item goes back to the pool if it is still
/// assigned to `from` and `from` does not hold it again. Planned again (a
/// new time, a new token) a few times if the answer says so.
async fn free(ctx: &Context, from: &AgentId, x: &Extension) -> Result<bool, ExecError> {
    let mut last = String::new();
    for _ in 0..MAX_PLAN_AGAIN {
        match free_once(ctx, from, x).await? {
            Ok(freed) => return Ok(freed),
            Err(why) => last = why,
        }
    }
    Err(ExecError::Transient(format!(
        "extension {x}: planned its release again {MAX_PLAN_AGAIN} times: {last}"
    )))
}

/// One attempt of [`free`]; `Ok(Err(why))` to plan again. Its token: the
/// agent, the extension and the attempt's own time (`freed_at`).
async fn free_once(
    ctx: &Context,
    from: &AgentId,
    x: &Extension,
) -> Result<Result<bool, String>, ExecError> {
    let at = Timestamp::now();
    let mut tx = ctx.exec.tx();
    tx.update(
        &Key::Extension(x.clone()),
        Expr::new(
            "SET gsi1pk = :free, gsi1sk = :x, freed_at = :at \
             REMOVE agent_id, agent_arn, username, assigned_at",
        )
        .s(":free", FREE)
        .s(":x", x.as_str())
        .s(":at", at.to_string()),
        Some(Expr::new("agent_id = :from").s(":from", from.as_str())),
    )?;
    tx.check(&Key::Profile(from.clone()), not_holding(x))?;
    let t = token(&[NAME, "free", from.as_str(), x.as_str(), &at.to_string()]);
    Ok(match ctx.exec.transact(tx, &t).await? {
        TxOutcome::Committed => Ok(true),
        TxOutcome::ConditionFailed(_) => Ok(false),
        TxOutcome::PlanAgain(why) => Err(why),
    })
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
    let pools = Arc::new(Mutex::new(Pools {
        want: waiters.len() + 1,
        ..Pools::default()
    }));
    let mut done = Settled::default();
    for profile in &waiters {
        if assign(ctx, &pools, &Waiter::from(profile), None).await? {
            done.assigned += 1;
        } else if pools.lock().await.free.exhausted {
            done.still_waiting = (waiters.len() as u64).saturating_sub(done.assigned);
            break;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use streamfold_shared::attrs::sv;
    use streamfold_shared::record::{StreamData, UserIdentity};

    fn agent(id: &str) -> AgentId {
        AgentId::new(id).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ext(x: &str) -> Extension {
        Extension::new(x).unwrap_or_else(|e| panic!("{e}"))
    }

    fn image(pairs: &[(&str, &str)]) -> serde_dynamo::Item {
        let map: HashMap<String, AttributeValue> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), sv(*v)))
            .collect();
        serde_dynamo::Item::from(map)
    }

    fn record(
        kind: ChangeKind,
        pk: &str,
        new: Option<&[(&str, &str)]>,
        old: Option<&[(&str, &str)]>,
    ) -> StreamRecord {
        StreamRecord {
            event_id: "e1".into(),
            kind,
            event_version: None,
            event_source: None,
            aws_region: None,
            event_source_arn: None,
            user_identity: None,
            dynamodb: StreamData {
                approximate_creation: None,
                keys: image(&[("pk", pk), ("sk", "PROFILE")]),
                new_image: new.map(image),
                old_image: old.map(image),
                sequence_number: "1".into(),
                size_bytes: None,
                stream_view_type: None,
            },
        }
    }

    const WAITING_PROFILE: &[(&str, &str)] = &[
        ("pk", "AGENT#a1"),
        ("sk", "PROFILE"),
        ("type", "agent"),
        ("first_name", "Ada"),
        ("gsi1pk", WAITING),
    ];

    #[test]
    fn insert_of_a_waiting_profile_is_an_arrival() {
        let r = record(ChangeKind::Insert, "AGENT#a1", Some(WAITING_PROFILE), None);
        assert!(matches!(
            decode(&r),
            Decoded::Event { key, event: Event::Arrived { prior: None, .. } } if key == "a1"
        ));
    }

    #[test]
    fn own_assignment_and_other_types_are_ignored() {
        let with_ext = [("type", "agent"), ("extension", "0001")];
        let r = record(
            ChangeKind::Modify,
            "AGENT#a1",
            Some(&with_ext),
            Some(WAITING_PROFILE),
        );
        assert!(matches!(decode(&r), Decoded::Ignore));
        let ext_item = [("type", "ext"), ("extension", "0001")];
        let mut r = record(ChangeKind::Modify, "EXT#0001", Some(&ext_item), None);
        r.dynamodb.keys = image(&[("pk", "EXT#0001"), ("sk", "EXT")]);
        assert!(matches!(decode(&r), Decoded::Ignore));
        // A waiting agent leaving frees nothing.
        let r = record(ChangeKind::Remove, "AGENT#a1", None, Some(WAITING_PROFILE));
        assert!(matches!(decode(&r), Decoded::Ignore));
    }

    #[test]
    fn a_keys_only_profile_image_is_ignored_and_a_typeless_one_refused() {
        let keys = [("pk", "AGENT#a1"), ("sk", "PROFILE")];
        let r = record(ChangeKind::Insert, "AGENT#a1", Some(&keys), None);
        assert!(matches!(decode(&r), Decoded::Ignore));
        let typeless = [("pk", "AGENT#a1"), ("sk", "PROFILE"), ("first_name", "Ada")];
        let r = record(ChangeKind::Insert, "AGENT#a1", Some(&typeless), None);
        assert!(matches!(decode(&r), Decoded::Invalid(why) if why.contains("no type")));
    }

    #[test]
    fn removal_and_ttl_removal_are_departures() {
        let old = [("type", "agent"), ("extension", "0042")];
        let mut r = record(ChangeKind::Remove, "AGENT#a1", None, Some(&old));
        assert!(matches!(
            decode(&r),
            Decoded::Event { event: Event::Departed { ttl: false, ref extension, .. }, .. }
                if extension.as_str() == "0042"
        ));
        r.user_identity = Some(UserIdentity {
            kind: "Service".into(),
            principal_id: "dynamodb.amazonaws.com".into(),
        });
        assert!(matches!(
            decode(&r),
            Decoded::Event {
                event: Event::Departed { ttl: true, .. },
                ..
            }
        ));
    }

    #[test]
    fn overwritten_profile_remembers_its_extension() {
        let old = [("type", "agent"), ("extension", "0042")];
        let new = [("type", "agent"), ("status", "Available")];
        let r = record(ChangeKind::Modify, "AGENT#a1", Some(&new), Some(&old));
        assert!(matches!(
            decode(&r),
            Decoded::Event { event: Event::Arrived { prior: Some(ref x), .. }, .. } if x.as_str() == "0042"
        ));
    }

    #[test]
    fn malformed_records_are_refused_without_names() {
        let bad = [
            ("type", "agent"),
            ("first_name", "Ada"),
            ("extension", "x1"),
        ];
        let r = record(ChangeKind::Insert, "AGENT#a1", Some(&bad), None);
        match decode(&r) {
            Decoded::Invalid(why) => assert!(why.contains("a1") && !why.contains("Ada"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let r = record(ChangeKind::Insert, "AGENT#a#1", Some(WAITING_PROFILE), None);
        assert!(matches!(decode(&r), Decoded::Invalid(_)));
        let r = record(ChangeKind::Insert, "AGENT#a1", None, None);
        assert!(matches!(decode(&r), Decoded::Invalid(_)));
        let untyped = [("pk", "AGENT#a1"), ("status", "Available")];
        let r = record(ChangeKind::Insert, "AGENT#a1", Some(&untyped), None);
        assert!(matches!(decode(&r), Decoded::Invalid(_)));
    }

    fn profile(id: &str, x: Option<&str>) -> Profile {
        Profile {
            agent: agent(id),
            agent_arn: None,
            username: None,
            extension: x.map(ext),
            waiting: x.is_none(),
            queue_key: x
                .is_none()
                .then(|| format!("2026-11-20T08:00:00.000000Z#{id}")),
        }
    }

    #[test]
    fn plan_assigns_once_and_only_to_existing_waiting_profiles() {
        let a = Event::Arrived {
            agent: agent("a1"),
            prior: None,
        };
        let actions = plan(Some(&profile("a1", None)), &[&a, &a]);
        assert_eq!(actions.len(), 1);
        // It answers the first arrival (where a cut batch would serve it).
        assert!(matches!(actions[0], (0, Action::Assign { .. })));
        assert!(plan(Some(&profile("a1", Some("0001"))), &[&a]).is_empty());
        assert!(plan(None, &[&a]).is_empty());
    }

    #[test]
    fn plan_releases_each_extension_once_unless_held_again() {
        let d = Event::Departed {
            agent: agent("a1"),
            extension: ext("0007"),
            ttl: false,
        };
        let a = Event::Arrived {
            agent: agent("a1"),
            prior: None,
        };
        let actions = plan(None, &[&d, &d]);
        assert_eq!(actions.len(), 1);
        // Left, came back and is waiting: release first, then assign.
        let actions = plan(Some(&profile("a1", None)), &[&d, &a]);
        assert!(matches!(
            actions.as_slice(),
            [(0, Action::Release { .. }), (1, Action::Assign { .. })]
        ));
        // Came back and holds the same extension again: a late REMOVE of the
        // old profile must not take it away.
        assert!(plan(Some(&profile("a1", Some("0007"))), &[&d]).is_empty());
    }
}
