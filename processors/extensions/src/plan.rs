//! Plan: one agent's events against its profile, as actions.

use std::collections::HashSet;

use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::Extension;

use crate::decode::Event;
use crate::model::Profile;

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
