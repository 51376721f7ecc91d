//! The batch engine: what every processor does with a whole batch.
//!
//! 1. every record is decoded (pure, no I/O) into an event with an ordering
//!    key, ignored (not this processor's), or refused (permanent error);
//! 2. events are grouped by ordering key, keeping their order;
//! 3. the processor loads the state the keys need in one batched read;
//! 4. keys are applied concurrently (bounded) or group-committed by the
//!    processor ([`Processor::apply_batch`]), each key's events in order;
//!    a key stops at its first transient failure and the rest of its records
//!    fail with it;
//! 5. refused records are dead-lettered (and logged); the failed ones make the
//!    `ReportBatchItemFailures` answer (item identifier = sequence number).

use std::collections::HashMap;
use std::future::Future;

use futures::StreamExt;
use tracing::{Instrument, info, warn};

use crate::deadletter::DeadLetter;
use crate::executor::{ExecError, Executor};
use crate::ids::{AgentId, Timestamp};
use crate::keys::Key;

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

/// The result of decoding one record.
#[derive(Debug)]
pub enum Decoded<E> {
    /// Not this processor's record (another type, its own write, a TTL delete).
    Ignore,
    /// A domain event, ordered with the other events of `key`.
    Event { key: String, event: E },
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
    type Event: Send + Sync;
    type State: Send + Sync;

    /// The processor's name (dead-letter keys, logs, routing).
    fn name(&self) -> &'static str;

    /// Decodes one record. Pure: no I/O.
    fn decode(&self, record: &Self::Record) -> Decoded<Self::Event>;

    /// Loads the state the given ordering keys need, in as few requests as it
    /// can. A key missing from the answer has no state.
    fn load(
        &self,
        ctx: &Context,
        keys: &[&str],
    ) -> impl Future<Output = Result<HashMap<String, Self::State>, ExecError>> + Send;

    /// Applies the events of one ordering key, oldest first, and says per
    /// event what happened. A missing step counts as `Failed`.
    fn apply(
        &self,
        ctx: &Context,
        key: &str,
        state: Option<&Self::State>,
        events: &[&Self::Event],
    ) -> impl Future<Output = Vec<Step>> + Send;

    /// Applies every ordering key of a batch and gives one step list per
    /// key, in the order of `work`. The default runs [`Processor::apply`]
    /// for each key, `ctx.concurrency` keys at a time; a processor whose
    /// writes for different keys can share requests (group commit) overrides
    /// it, keeping each key's guarantees.
    fn apply_batch(
        &self,
        ctx: &Context,
        work: &[KeyWork<'_, Self::State, Self::Event>],
    ) -> impl Future<Output = Vec<Vec<Step>>> + Send {
        async move {
            // The futures are made before they are streamed: a `map`
            // closure inside the stream would defeat the `Send` proof.
            let mut futures = Vec::with_capacity(work.len());
            for (slot, w) in work.iter().enumerate() {
                futures
                    .push(async move { (slot, self.apply(ctx, w.key, w.state, &w.events).await) });
            }
            let mut results: Vec<(usize, Vec<Step>)> = futures::stream::iter(futures)
                .buffer_unordered(ctx.concurrency.max(1))
                .collect()
                .await;
            results.sort_by_key(|(slot, _)| *slot);
            results.into_iter().map(|(_, steps)| steps).collect()
        }
    }
}

/// One ordering key's share of a batch: its loaded state and its events,
/// oldest first.
#[derive(Debug)]
pub struct KeyWork<'a, S, E> {
    pub key: &'a str,
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

impl<'a, S, E> KeyWork<'a, S, E> {
    /// One key's work as a batch of its own, for a processor whose `apply`
    /// is its `apply_batch` of one key.
    pub fn alone(key: &'a str, state: Option<&'a S>, events: &[&'a E]) -> [Self; 1] {
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

    /// The profiles (`AGENT#{id}` / `PROFILE`) of these agent ids, by id,
    /// read consistently with BatchGetItem; a missing profile, or a key that
    /// is no valid agent id, is absent from the answer.
    pub async fn agent_profiles(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, crate::executor::Item>, ExecError> {
        let keys: Vec<Key> = ids
            .iter()
            .filter_map(|k| AgentId::new(*k).ok().map(Key::Profile))
            .collect();
        let items = self.exec.batch_get(&keys, true).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let id = crate::attrs::s(&item, "pk")?.strip_prefix("AGENT#")?;
                Some((id.to_owned(), item))
            })
            .collect())
    }
}

/// What a batch came to.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// One outcome per input record, in input order.
    pub outcomes: Vec<Outcome>,
    /// Sequence numbers of the failed records, in input order.
    pub failures: Vec<String>,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub records: u64,
    pub applied: u64,
    pub no_op: u64,
    pub ignored: u64,
    pub dead_lettered: u64,
    pub failed: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.records += other.records;
        self.applied += other.applied;
        self.no_op += other.no_op;
        self.ignored += other.ignored;
        self.dead_lettered += other.dead_lettered;
        self.failed += other.failed;
    }
}

impl BatchReport {
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            records: self.outcomes.len() as u64,
            ..Counts::default()
        };
        for o in &self.outcomes {
            match o {
                Outcome::Applied => c.applied += 1,
                Outcome::NoOp => c.no_op += 1,
                Outcome::Ignored => c.ignored += 1,
                Outcome::DeadLettered(_) => c.dead_lettered += 1,
                Outcome::Failed(_) => c.failed += 1,
            }
        }
        c
    }

    /// Index of the first failed record, where a retry has to start.
    pub fn first_failure(&self) -> Option<usize> {
        self.outcomes
            .iter()
            .position(|o| matches!(o, Outcome::Failed(_)))
    }
}

/// A batch decoded and grouped by ordering key (no I/O yet).
#[derive(Debug)]
pub struct Grouped<E> {
    /// Per record: `Some(Ignored)` for ignored records, `None` otherwise.
    pub outcomes: Vec<Option<Outcome>>,
    /// Refused records: (index, why).
    pub invalid: Vec<(usize, String)>,
    /// Events per ordering key, keys in first-seen order, events in order.
    pub groups: KeyedEvents<E>,
}

/// Events per ordering key: `(key, [(record index, event)])`.
pub type KeyedEvents<E> = Vec<(String, Vec<(usize, E)>)>;

/// Step 1 and 2 of a batch: decode every record and group the events by
/// ordering key, keeping their order. Pure; benchmarks call it directly.
pub fn decode_and_group<P: Processor>(processor: &P, records: &[P::Record]) -> Grouped<P::Event> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
    let mut invalid: Vec<(usize, String)> = Vec::new();
    let mut slot_of: HashMap<String, usize> = HashMap::new();
    let mut groups: KeyedEvents<P::Event> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        match processor.decode(record) {
            Decoded::Ignore => outcomes[i] = Some(Outcome::Ignored),
            Decoded::Invalid(why) => invalid.push((i, why)),
            Decoded::Event { key, event } => {
                let slot = match slot_of.get(&key) {
                    Some(&slot) => slot,
                    None => {
                        slot_of.insert(key.clone(), groups.len());
                        groups.push((key, Vec::new()));
                        groups.len() - 1
                    }
                };
                groups[slot].1.push((i, event));
            }
        }
    }
    Grouped {
        outcomes,
        invalid,
        groups,
    }
}

/// Runs one whole batch through a processor. Never panics on input; never
/// drops a record: every record ends applied, no-op, ignored, dead-lettered
/// or failed.
pub async fn run_batch<P: Processor>(
    processor: &P,
    ctx: &Context,
    records: &[P::Record],
) -> BatchReport {
    let span = tracing::info_span!("batch", processor = processor.name(), size = records.len());
    run_batch_inner(processor, ctx, records)
        .instrument(span)
        .await
}

async fn run_batch_inner<P: Processor>(
    processor: &P,
    ctx: &Context,
    records: &[P::Record],
) -> BatchReport {
    let Grouped {
        mut outcomes,
        mut invalid,
        groups,
    } = decode_and_group(processor, records);

    if !groups.is_empty() {
        let keys: Vec<&str> = groups.iter().map(|(k, _)| k.as_str()).collect();
        match processor.load(ctx, &keys).await {
            Err(e) => {
                let why = format!("loading state failed: {e}");
                for (_, events) in &groups {
                    for (i, _) in events {
                        outcomes[*i] = Some(Outcome::Failed(why.clone()));
                    }
                }
            }
            Ok(states) => {
                let work: Vec<KeyWork<'_, P::State, P::Event>> = groups
                    .iter()
                    .map(|(key, events)| KeyWork {
                        key,
                        state: states.get(key),
                        events: events.iter().map(|(_, e)| e).collect(),
                        positions: events.iter().map(|(i, _)| *i).collect(),
                        sources: events
                            .iter()
                            .map(|(i, _)| Source {
                                sequence_number: records[*i].sequence_number(),
                                record_id: records[*i].record_id(),
                            })
                            .collect(),
                    })
                    .collect();
                let results = processor.apply_batch(ctx, &work).await;
                for (slot, (_, events)) in groups.iter().enumerate() {
                    let steps = results.get(slot).map(Vec::as_slice).unwrap_or_default();
                    let mut failed: Option<String> = None;
                    for (n, (i, _)) in events.iter().enumerate() {
                        let step = match &failed {
                            Some(why) => Step::Failed(why.clone()),
                            None => steps.get(n).cloned().unwrap_or_else(|| {
                                Step::Failed("the processor gave no outcome".to_owned())
                            }),
                        };
                        match step {
                            Step::Applied => outcomes[*i] = Some(Outcome::Applied),
                            Step::NoOp => outcomes[*i] = Some(Outcome::NoOp),
                            Step::Invalid(why) => invalid.push((*i, why)),
                            Step::Failed(why) => {
                                failed = Some(why.clone());
                                outcomes[*i] = Some(Outcome::Failed(why));
                            }
                        }
                    }
                }
            }
        }
    }

    // Dead-letter the refused records; a dead letter that cannot be written
    // is a transient failure of its record, so nothing is lost.
    if !invalid.is_empty() {
        let letters = invalid.iter().map(|(i, why)| {
            let record = &records[*i];
            DeadLetter::new(
                processor.name(),
                record.record_id(),
                record.sequence_number(),
                record.received_at(),
                record.raw_json(),
                why.clone(),
                ctx.deadletter_retention_days,
            )
        });
        let written = crate::deadletter::write_all(&ctx.exec, letters, ctx.concurrency).await;
        for ((i, why), result) in invalid.into_iter().zip(written) {
            let record = &records[i];
            outcomes[i] = Some(match result {
                Ok(()) => {
                    warn!(
                        processor = processor.name(),
                        record_id = record.record_id(),
                        sequence_number = record.sequence_number(),
                        error = %why,
                        "record dead-lettered"
                    );
                    Outcome::DeadLettered(why)
                }
                Err(e) => Outcome::Failed(format!("dead letter not written: {e} (for: {why})")),
            });
        }
    }

    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Failed("no outcome".to_owned())))
        .collect();
    let failures = records
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .map(|(r, _)| r.sequence_number().to_owned())
        .collect();
    let report = BatchReport { outcomes, failures };
    let c = report.counts();
    if let Some(first) = report.first_failure()
        && let Outcome::Failed(why) = &report.outcomes[first]
    {
        warn!(
            processor = processor.name(),
            failed = c.failed,
            first_failure = %why,
            "batch has failed records; they will be retried"
        );
    }
    info!(
        processor = processor.name(),
        size = c.records,
        succeeded = c.applied + c.no_op + c.ignored,
        applied = c.applied,
        failed = c.failed,
        dead_lettered = c.dead_lettered,
        "batch processed"
    );
    report
}
