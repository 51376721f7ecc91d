//! Running one batch: decode and group (pure), load, apply, dead-letter.

use std::collections::HashMap;

use tracing::{Instrument, info, warn};

use super::{
    BatchReport, Context, Decoded, KeyWork, Outcome, Processor, Source, SourceRecord, Step,
};
use crate::deadletter::DeadLetter;

/// A batch decoded and grouped by ordering key (no I/O yet).
#[derive(Debug)]
pub struct Grouped<K, E> {
    /// Per record: `Some(Ignored)` for ignored records, `None` otherwise.
    pub outcomes: Vec<Option<Outcome>>,
    /// Refused records: (index, why).
    pub invalid: Vec<(usize, String)>,
    /// Events per ordering key, keys in first-seen order, events in order.
    pub groups: KeyedEvents<K, E>,
}

/// Events per ordering key: `(key, [(record index, event)])`.
pub type KeyedEvents<K, E> = Vec<(K, Vec<(usize, E)>)>;

/// Step 1 and 2 of a batch: decode every record and group the events by
/// ordering key, keeping their order. Pure; benchmarks call it directly.
pub fn decode_and_group<P: Processor>(
    processor: &P,
    records: &[P::Record],
) -> Grouped<P::Key, P::Event> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
    let mut invalid: Vec<(usize, String)> = Vec::new();
    let mut slot_of: HashMap<P::Key, usize> = HashMap::new();
    let mut groups: KeyedEvents<P::Key, P::Event> = Vec::new();
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
        let keys: Vec<&P::Key> = groups.iter().map(|(k, _)| k).collect();
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
                let work: Vec<KeyWork<'_, P::Key, P::State, P::Event>> = groups
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
