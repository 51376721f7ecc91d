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
mod apply;
pub mod census;
mod decode;
pub mod init;
pub mod model;
mod plan;
mod queues;
pub mod schedule;
mod transactions;

pub use apply::{AgentState, Extensions, Settled, settle};
pub use decode::{Event, decode};
pub use model::{
    AGENTS, ExtItem, ExtState, FREE, GSI1, GSI2, Profile, RESERVED, Reservation, WAITING, Waiter,
};
pub use plan::{Action, plan};

/// The processor's name.
pub const NAME: &str = "extensions";

#[cfg(test)]
mod tests;
