//! A batch's schedule: which agent gets which extension, decided before
//! anything is written.
//!
//! The agents of a batch share one resource, the pool, so who gets what must
//! not depend on which transaction happens to run first. [`schedule`] walks
//! the batch's actions in stream order against one view of the pool (the
//! lowest free extensions, the longest-waiting agents, the current owner of
//! every extension the batch gives back) and names, for each action, the one
//! transaction that serves it, as if the records had been applied one by one.
//!
//! That makes the outcome a function of the stream alone: a redelivery after
//! a crash that committed any subset of the transactions schedules the rest
//! exactly as before (the committed ones drop out: their agents hold an
//! extension, their releases no longer own one), and so does a batch cut at
//! another record. Only a real race with another writer (a conditional
//! write that finds the view stale) leaves the schedule, to the next spare
//! candidate.
//!
//! Pure: the unit tests below replay batches cut and crashed at every point.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::Extension;

use crate::Action;
use crate::model::Waiter;

/// The transaction that serves one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `agent` takes the free extension `x`.
    Claim { agent: Waiter, x: Extension },
    /// The profile was overwritten without its extension, which still names
    /// it: give it back.
    Restore { agent: Waiter, x: Extension },
    /// `x` of the departed `from` goes straight to the waiting `to`.
    Handover {
        from: AgentId,
        x: Extension,
        to: Waiter,
    },
    /// `agent` takes `x`, reserved for its username by an import.
    Reserved {
        agent: Waiter,
        x: Extension,
        username: String,
    },
    /// `x` of the departed `from` goes back to the pool.
    Free { from: AgentId, x: Extension },
    /// No free extension: the agent waits for a release.
    Wait { agent: AgentId },
    /// Already done (a redelivered release, or an agent served earlier in
    /// the batch).
    Nothing,
}

/// The pool as a batch sees it before it writes.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// The agent each released or restored extension names now (`None`:
    /// free, or no such item).
    pub owners: HashMap<Extension, Option<AgentId>>,
    /// The lowest free extensions, ascending: a prefix of the free queue
    /// at least as long as the batch has assignments.
    pub free: Vec<Extension>,
    /// The longest-waiting agents with their queue keys, oldest first: a
    /// prefix of the waiting queue at least as long as the batch has
    /// releases and assignments together.
    pub waiting: Vec<(String, Waiter)>,
    /// Agents of the batch that hold an extension already (a consistent
    /// read): a queue entry of theirs is stale.
    pub holding: HashSet<AgentId>,
    /// Reservations of the arriving and the waiting agents' usernames (a
    /// consistent read): username → the extension kept for it.
    pub reserved: HashMap<String, Extension>,
}

/// The ops, one per action in the order given, and what is left of the
/// view for races (spares).
#[derive(Debug, Default)]
pub struct Schedule {
    pub ops: Vec<Op>,
    /// Free extensions no op uses, ascending.
    pub spare_free: Vec<Extension>,
    /// Waiting agents no op serves, oldest first.
    pub spare_waiting: Vec<Waiter>,
}

/// Where an agent stands in line: queue entries by their key, then agents
/// of the batch that wait without one, in stream order.
type Place = (u8, String);

/// Schedules `actions` (stream order) against `view`. Each arrival takes
/// the lowest extension free at its turn (its own, if the profile lost it
/// to an overwrite); each release hands its extension to the agent waiting
/// longest at its turn, or frees it; an arrival that finds nothing free
/// joins the line.
pub fn schedule(actions: &[&Action], view: View) -> Schedule {
    let View {
        mut owners,
        free,
        waiting,
        holding,
        mut reserved,
    } = view;
    let mut free: BTreeSet<Extension> = free.into_iter().collect();
    let mut line: BTreeMap<Place, Waiter> = BTreeMap::new();
    let mut place_of: HashMap<AgentId, Place> = HashMap::new();
    for (key, w) in waiting {
        // A waiting agent with a reservation is served by its own arrival
        // (or `settle`) with its reserved extension, never by a hand-over.
        let reserved_for = w
            .username
            .as_ref()
            .is_some_and(|u| reserved.contains_key(u.as_str()));
        if holding.contains(&w.agent) || place_of.contains_key(&w.agent) || reserved_for {
            continue;
        }
        let place = (0, key);
        place_of.insert(w.agent.clone(), place.clone());
        line.insert(place, w);
    }
    let mut served: HashSet<AgentId> = HashSet::new();
    let mut ops = Vec::with_capacity(actions.len());
    for (n, action) in actions.iter().enumerate() {
        let op = match action {
            Action::Release { agent, extension } => {
                if owners.get(extension) != Some(&Some(agent.clone())) {
                    Op::Nothing
                } else {
                    owners.insert(extension.clone(), None);
                    match line.pop_first() {
                        Some((_, to)) => {
                            place_of.remove(&to.agent);
                            served.insert(to.agent.clone());
                            Op::Handover {
                                from: agent.clone(),
                                x: extension.clone(),
                                to,
                            }
                        }
                        None => {
                            free.insert(extension.clone());
                            Op::Free {
                                from: agent.clone(),
                                x: extension.clone(),
                            }
                        }
                    }
                }
            }
            Action::Assign { profile, prior } => {
                let w = Waiter::from(profile);
                if served.contains(&w.agent) {
                    Op::Nothing
                } else {
                    if let Some(place) = place_of.remove(&w.agent) {
                        line.remove(&place);
                    }
                    let restore = prior
                        .as_ref()
                        .filter(|x| owners.get(*x) == Some(&Some(w.agent.clone())));
                    if let Some(x) = restore {
                        served.insert(w.agent.clone());
                        Op::Restore {
                            agent: w,
                            x: x.clone(),
                        }
                    } else if let Some((username, x)) = profile
                        .username
                        .as_ref()
                        .and_then(|u| reserved.remove_entry(u.as_str()))
                    {
                        // Kept for this username by an import: never the
                        // lowest free one, and it is not in `free`.
                        served.insert(w.agent.clone());
                        Op::Reserved {
                            agent: w,
                            x,
                            username,
                        }
                    } else if let Some(x) = free.pop_first() {
                        served.insert(w.agent.clone());
                        Op::Claim { agent: w, x }
                    } else {
                        let place = match &profile.queue_key {
                            Some(k) => (0, k.clone()),
                            None => (1, format!("{n:012}")),
                        };
                        place_of.insert(w.agent.clone(), place.clone());
                        line.insert(place, w.clone());
                        Op::Wait { agent: w.agent }
                    }
                }
            }
        };
        ops.push(op);
    }
    Schedule {
        ops,
        spare_free: free.into_iter().collect(),
        spare_waiting: line.into_values().collect(),
    }
}

#[cfg(test)]
mod tests;
