//! message-groups: keeps every user's conversation list (pattern B) showing
//! the newest existing message of each of their message groups.
//!
//! - **decode**: a `message` record of the table stream becomes
//!   [`Event::Posted`], [`Event::Edited`] or [`Event::Deleted`], ordered by its
//!   group. Everything else (its own `preview` writes, `group` items, agents,
//!   extensions, TTL deletions) is ignored; a malformed message is refused.
//! - **load**: one consistent BatchGetItem of the batch's group items.
//! - **plan** ([`plan`]): coalesces a group's events into one target: keep,
//!   project one message, or resolve from the source of truth.
//! - **apply**: one TransactWriteItems per group: guard on the group's
//!   `last_message_key`, delete the old previews, put the new ones, and check
//!   that the projected message still exists with that text. A failed
//!   condition means the view is stale: re-read and converge on the truth.

mod apply;
mod decode;
mod plan;

pub use apply::{Expected, MessageGroups, Preview, expected_previews, resolve};
pub use decode::{Event, GroupState, Message, MessageKey, Participant, decode};
pub use plan::{Target, plan};

/// The processor's name.
pub const NAME: &str = "message-groups";

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
