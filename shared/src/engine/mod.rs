//! The batch engine: what every processor does with a whole batch.
//!
//! 1. every record is decoded (pure, no I/O) into an event with an ordering
//!    key, ignored (not this processor's), or refused (permanent error);
//! 2. events are grouped by ordering key, keeping their order;
//! 3. the processor loads the state the keys need in one batched read
//!    ([`load_items`] reads one item per key);
//! 4. the processor applies the whole batch ([`Processor::apply_batch`]):
//!    each key on its own ([`each_key`], bounded concurrency) or
//!    group-committed, each key's events in order; a key stops at its first
//!    transient failure and the rest of its records fail with it;
//! 5. refused records are dead-lettered (and logged); the failed ones make the
//!    `ReportBatchItemFailures` answer (item identifier = sequence number).
//!
//! - `mod.rs`: the [`Processor`] trait and what it works with;
//! - `batch.rs`: [`decode_and_group`] and [`run_batch`];
//! - `report.rs`: [`BatchReport`] and [`Counts`];
//! - `projection.rs`: [`StreamProjection`], a processor with its types
//!   erased, for registries that run any of them.

mod batch;
mod projection;
mod report;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;

use futures::StreamExt;

use crate::executor::{ExecError, Executor, Item};
use crate::ids::Timestamp;
use crate::keys::Key;

pub use batch::{Grouped, KeyedEvents, decode_and_group, run_batch};
pub use projection::{BatchRecord, EventSource, FromEnv, Records, StreamProjection};
pub use report::{BatchReport, Counts};

/// What the engine needs to know of a source record.
pub trait SourceRecord: Send + Sync {
    /// The identifier Lambda wants in `batchItemFailures`.
    fn sequence_number(&self) -> &str;
    /// A stable id of the record (`eventID`).
    fn record_id(&self) -> &str;
    /// When the stream received the record, if the source says.
    fn received_at(&self) -> Option<Timestamp>;
    /// The record as JSON, for dead letters.
    fn raw_json(&self) -> String;
}

/// What orders a processor's events: the events of one key are applied in
/// order, keys independently. A validated id (`GroupId`, `AgentId`), never
/// free text.
pub trait OrderingKey: Clone + Eq + Hash + fmt::Display + fmt::Debug + Send + Sync {}

impl<T: Clone + Eq + Hash + fmt::Display + fmt::Debug + Send + Sync> OrderingKey for T {}

/// The result of decoding one record.
#[derive(Debug)]
pub enum Decoded<K, E> {
    /// Not this processor's record (another type, its own write, a TTL delete).
    Ignore,
    /// A domain event, ordered with the other events of `key`.
    Event { key: K, event: E },
    /// The record can never be processed; the message says why.
    Invalid(String),
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It changed the table.
    Applied,
    /// It was already reflected, older than what is reflected, or coalesced
    /// into a newer event of the same batch.
    NoOp,
    /// A permanent error found while applying; the record is dead-lettered.
    Invalid(String),
    /// A transient error; this record and the later ones of its key fail.
    Failed(String),
}

impl From<ExecError> for Step {
    /// A transient error fails the record (it is retried); a permanent one
    /// dead-letters it.
    fn from(e: ExecError) -> Self {
        if e.is_transient() {
            Step::Failed(e.to_string())
        } else {
            Step::Invalid(e.to_string())
        }
    }
}

impl Step {
    /// [`Step::from`] an error met while `doing` something, which its
    /// message names first (`"{doing}: {e}"`).
    pub fn during(doing: &str, e: ExecError) -> Step {
        match Step::from(e) {
            Step::Failed(m) => Step::Failed(format!("{doing}: {m}")),
            Step::Invalid(m) => Step::Invalid(format!("{doing}: {m}")),
            other => other,
        }
    }
}

/// The final outcome of one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    NoOp,
    Ignored,
    DeadLettered(String),
    Failed(String),
}

/// A stream processor: decode, load, apply. See the module docs.
pub trait Processor: Send + Sync {
    type Record: SourceRecord;
    /// What orders the events ([`OrderingKey`]).
    type Key: OrderingKey;
    type Event: Send + Sync;
    type State: Send + Sync;

    /// The processor's name (dead-letter keys, logs, routing).
    fn name(&self) -> &'static str;

    /// Decodes one record. Pure: no I/O.
    fn decode(&self, record: &Self::Record) -> Decoded<Self::Key, Self::Event>;

    /// Loads the state the given ordering keys need, in as few requests as it
    /// can ([`load_items`]). A key missing from the answer has no state.
    fn load(
        &self,
        ctx: &Context,
        keys: &[&Self::Key],
    ) -> impl Future<Output = Result<HashMap<Self::Key, Self::State>, ExecError>> + Send;

    /// Applies every ordering key of a batch and gives one step list per
    /// key, in the order of `work`, one step per event (a missing step
    /// counts as `Failed`). A processor whose keys are independent runs
    /// them with [`each_key`]; one whose writes for different keys can share
    /// requests (group commit) or a resource (a pool served in stream order)
    /// sees the whole batch here, keeping each key's guarantees.
    fn apply_batch(
        &self,
        ctx: &Context,
        work: &[KeyWork<'_, Self::Key, Self::State, Self::Event>],
    ) -> impl Future<Output = Vec<Vec<Step>>> + Send;
}

/// Runs `apply` for each key of a batch, `ctx.concurrency` keys at a time,
/// and gives the step lists in the order of `work`: the
/// [`Processor::apply_batch`] of a processor whose keys are independent.
pub async fn each_key<'w, K, S, E, F, Fut>(
    ctx: &Context,
    work: &'w [KeyWork<'w, K, S, E>],
    apply: F,
) -> Vec<Vec<Step>>
where
    F: Fn(&'w KeyWork<'w, K, S, E>) -> Fut,
    Fut: Future<Output = Vec<Step>>,
{
    // The futures are made before they are streamed: a `map` closure
    // inside the stream would defeat the `Send` proof.
    let mut futures = Vec::with_capacity(work.len());
    for (slot, w) in work.iter().enumerate() {
        let applied = apply(w);
        futures.push(async move { (slot, applied.await) });
    }
    let mut results: Vec<(usize, Vec<Step>)> = futures::stream::iter(futures)
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(slot, _)| *slot);
    results.into_iter().map(|(_, steps)| steps).collect()
}

/// Reads the item of each ordering key (`item_key` says which), consistently
/// and in as few BatchGetItem requests as the limits allow. An item comes
/// back to its ordering key through its own `pk`/`sk` ([`Key::from_item`]);
/// a missing item is absent from the answer.
pub async fn load_items<K: OrderingKey>(
    ctx: &Context,
    keys: &[&K],
    item_key: impl Fn(&K) -> Key,
) -> Result<HashMap<K, Item>, ExecError> {
    let mut wanted: HashMap<Key, K> = HashMap::with_capacity(keys.len());
    for k in keys {
        wanted.insert(item_key(k), (*k).clone());
    }
    let table_keys: Vec<Key> = wanted.keys().cloned().collect();
    let items = ctx.exec.batch_get(&table_keys, true).await?;
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let key = wanted.get(&Key::from_item(&item).ok()?)?.clone();
            Some((key, item))
        })
        .collect())
}

/// One ordering key's share of a batch: its loaded state and its events,
/// oldest first.
#[derive(Debug)]
pub struct KeyWork<'a, K, S, E> {
    pub key: &'a K,
    pub state: Option<&'a S>,
    pub events: Vec<&'a E>,
    /// Where each event's record sits in the batch (stream order), for a
    /// processor whose keys share a resource and must be served in the
    /// order the stream gives.
    pub positions: Vec<usize>,
    /// Each event's source record, by identity (its sequence number and
    /// record id), for idempotency tokens that name the records a write
    /// applies ([`crate::executor::token`]). Empty for work that no record
    /// carries ([`KeyWork::alone`]).
    pub sources: Vec<Source<'a>>,
}

/// The identity of a source record: what an idempotency token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    pub sequence_number: &'a str,
    pub record_id: &'a str,
}

impl Source<'_> {
    /// The identity as token parts: sequence number, record id.
    pub fn parts(&self) -> [&str; 2] {
        [self.sequence_number, self.record_id]
    }
}

impl<'a, K, S, E> KeyWork<'a, K, S, E> {
    /// One key's work as a batch of its own, carried by no record (a
    /// rebuild, a direct call).
    pub fn alone(key: &'a K, state: Option<&'a S>, events: &[&'a E]) -> [Self; 1] {
        [Self {
            key,
            state,
            events: events.to_vec(),
            positions: (0..events.len()).collect(),
            sources: Vec::new(),
        }]
    }
}

/// What every processor runs with.
#[derive(Clone, Debug)]
pub struct Context {
    pub exec: Executor,
    /// How many ordering keys are applied at once.
    pub concurrency: usize,
    /// How long dead letters are kept (days).
    pub deadletter_retention_days: i64,
}

impl Context {
    pub fn new(exec: Executor) -> Self {
        Self {
            exec,
            concurrency: 16,
            deadletter_retention_days: 30,
        }
    }
}
