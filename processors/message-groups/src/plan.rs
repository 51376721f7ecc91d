//! Plan: a group's events against the message its previews show.

use streamfold_shared::engine::Step;

use crate::decode::{Event, Message, MessageKey};

/// What a group's events come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Nothing to change.
    Keep,
    /// Show this message.
    Project(&'a Message),
    /// The shown message went away: show the newest remaining one.
    Resolve,
}

/// Coalesces a group's events (oldest first) against the message the
/// previews show now. Pure.
///
/// A newer post moves the view; an older or duplicate post is a no-op; an
/// edit of the shown message (or of a newer one) re-projects it; deleting
/// the shown message means resolving from the table.
pub fn plan<'a>(current: Option<&MessageKey>, events: &[&'a Event]) -> (Target<'a>, Vec<Step>) {
    let mut view: Option<MessageKey> = current.cloned();
    let mut target = Target::Keep;
    // The events that decide the final target; the others were coalesced.
    let mut deciding: Vec<usize> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Posted(m) if view.as_ref().is_none_or(|v| m.key > *v) => {
                view = Some(m.key.clone());
                if target != Target::Resolve {
                    target = Target::Project(m);
                    deciding.clear();
                }
                deciding.push(i);
            }
            Event::Edited(m) if view.as_ref().is_none_or(|v| m.key >= *v) => {
                view = Some(m.key.clone());
                if target != Target::Resolve {
                    target = Target::Project(m);
                    deciding.clear();
                }
                deciding.push(i);
            }
            Event::Deleted { key, .. } if view.as_ref() == Some(key) => {
                // The table decides from here on; later events are read back.
                view = None;
                target = Target::Resolve;
                deciding.clear();
                deciding.push(i);
            }
            _ => {}
        }
    }
    let steps = (0..events.len())
        .map(|i| {
            if deciding.contains(&i) {
                Step::Applied
            } else {
                Step::NoOp
            }
        })
        .collect();
    (target, steps)
}
