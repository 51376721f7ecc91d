//! The library every streamfold processor and the `streamfold` CLI share.
//!
//! - [`ids`] and [`keys`]: validated ids, canonical timestamps and the key
//!   codec of the single table; an invalid key cannot be built.
//! - [`record`]: one decoded DynamoDB stream record type, fed from Lambda
//!   events, the Streams API and JSON.
//! - [`engine`]: the batch engine (decode, group by ordering key, load, apply
//!   concurrently, dead-letter, report failures).
//! - [`executor`]: the only code that writes, and it knows DynamoDB's limits.
//! - [`kinesis`]: one Kinesis data record type, fed from Lambda events, the
//!   Kinesis API and JSON.
//! - [`lambda`]: the thin Lambda adapter.

pub mod attrs;
pub mod config;
pub mod deadletter;
pub mod emf;
pub mod engine;
pub mod executor;
pub mod ids;
pub mod keys;
pub mod kinesis;
pub mod lambda;
pub mod metrics;
pub mod read;
pub mod record;
pub mod telemetry;
pub mod testing;

pub use engine::{BatchReport, Context, Counts, Decoded, Outcome, Processor, Step, run_batch};
pub use executor::{ExecError, Executor, Expr, Item, Tx, TxOutcome};
pub use ids::{AgentId, EventId, GroupId, MessageId, Timestamp, UserId};
pub use keys::Key;
pub use record::{ChangeKind, StreamRecord};
