//! Routing records to the processors that own them, the same code whichever
//! source (replay file, live tail) feeds it.

use std::time::Duration;

use futures::future::join_all;
use streamfold_shared::deadletter::{self, DeadLetter};
use streamfold_shared::engine::{BatchReport, Context, Counts, Outcome, SourceRecord, run_batch};
use streamfold_shared::executor::{ExecError, Executor, Item, RetryPolicy};
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::{ChangeKind, StreamRecord};
use tracing::warn;

/// A processor the CLI can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum ProcessorKind {
    /// Conversation previews, from the table stream.
    MessageGroups,
    /// Agent profiles, history and daily totals, from Connect's agent event
    /// stream (Kinesis).
    AgentActivity,
    /// Agent extensions (claim, release, hand-over), from the table stream.
    Extensions,
}

impl ProcessorKind {
    pub const ALL: &'static [ProcessorKind] = &[
        ProcessorKind::MessageGroups,
        ProcessorKind::AgentActivity,
        ProcessorKind::Extensions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProcessorKind::MessageGroups => message_groups::NAME,
            ProcessorKind::AgentActivity => agent_activity::NAME,
            ProcessorKind::Extensions => extensions::NAME,
        }
    }

    /// Processors fed by the table's DynamoDB stream.
    pub fn reads_table_stream(self) -> bool {
        match self {
            ProcessorKind::MessageGroups => true,
            ProcessorKind::AgentActivity => false,
            ProcessorKind::Extensions => true,
        }
    }

    /// Processors fed by a Kinesis stream (Connect agent events).
    pub fn reads_kinesis(self) -> bool {
        matches!(self, ProcessorKind::AgentActivity)
    }
}

/// Runs table-stream records through a set of processors.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub ctx: Context,
    pub kinds: Vec<ProcessorKind>,
}

impl Pipeline {
    /// `kinds` empty means every processor.
    pub fn new(ctx: Context, kinds: &[ProcessorKind]) -> Self {
        let mut kinds = if kinds.is_empty() {
            ProcessorKind::ALL.to_vec()
        } else {
            kinds.to_vec()
        };
        kinds.sort();
        kinds.dedup();
        Self { ctx, kinds }
    }

    fn table_kinds(&self) -> impl Iterator<Item = ProcessorKind> + '_ {
        self.kinds
            .iter()
            .copied()
            .filter(|k| k.reads_table_stream())
    }

    /// One batch through each table-stream processor (concurrently: they are
    /// independent). One report per processor.
    pub async fn run_table_batch(
        &self,
        records: &[StreamRecord],
    ) -> Vec<(ProcessorKind, BatchReport)> {
        join_all(self.table_kinds().map(|kind| async move {
            let report = match kind {
                ProcessorKind::MessageGroups => {
                    run_batch(&message_groups::MessageGroups, &self.ctx, records).await
                }
                ProcessorKind::Extensions => {
                    run_batch(&extensions::Extensions, &self.ctx, records).await
                }
                // Not a table-stream processor: filtered out above.
                ProcessorKind::AgentActivity => BatchReport::default(),
            };
            (kind, report)
        }))
        .await
    }

    /// One batch with Lambda's failure semantics: a processor's failed
    /// records are retried from its first failure with backoff, up to
    /// `max_retries` times; what still fails is dead-lettered, so the stream
    /// moves on and nothing is lost.
    pub async fn run_table_batch_retrying(
        &self,
        records: &[StreamRecord],
        max_retries: u32,
        backoff: RetryPolicy,
    ) -> Counts {
        let mut total = Counts::default();
        for (kind, mut report) in self.run_table_batch(records).await {
            let mut offset = 0;
            let mut attempt = 0;
            while let Some(first) = report.first_failure() {
                if attempt >= max_retries {
                    let failed: Vec<(&StreamRecord, String)> = records[offset + first..]
                        .iter()
                        .zip(&report.outcomes[first..])
                        .filter_map(|(r, o)| match o {
                            Outcome::Failed(why) => Some((r, why.clone())),
                            _ => None,
                        })
                        .collect();
                    let n = failed.len() as u64;
                    let dead = give_up(&self.ctx, kind.name(), &failed, max_retries).await;
                    let mut c = report.counts();
                    c.failed -= dead;
                    c.dead_lettered += dead;
                    let _ = n;
                    total.add(c);
                    report = BatchReport::default();
                    break;
                }
                let mut head = report.clone();
                head.outcomes.truncate(first);
                total.add(head.counts());
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
                offset += first;
                let single = Pipeline {
                    ctx: self.ctx.clone(),
                    kinds: vec![kind],
                };
                report = single
                    .run_table_batch(&records[offset..])
                    .await
                    .pop()
                    .map(|(_, r)| r)
                    .unwrap_or_default();
            }
            total.add(report.counts());
        }
        total
    }
}

impl Pipeline {
    fn kinesis_kinds(&self) -> impl Iterator<Item = ProcessorKind> + '_ {
        self.kinds.iter().copied().filter(|k| k.reads_kinesis())
    }

    /// One batch of Kinesis records through each Kinesis processor. One
    /// report per processor.
    pub async fn run_kinesis_batch(
        &self,
        records: &[KinesisRecord],
    ) -> Vec<(ProcessorKind, BatchReport)> {
        let mut out = Vec::new();
        for kind in self.kinesis_kinds() {
            out.push((kind, self.run_kinesis_kind(kind, records).await));
        }
        out
    }

    async fn run_kinesis_kind(
        &self,
        kind: ProcessorKind,
        records: &[KinesisRecord],
    ) -> BatchReport {
        match kind {
            ProcessorKind::AgentActivity => {
                let processor = agent_activity::AgentActivity::from_env();
                run_batch(&processor, &self.ctx, records).await
            }
            // Not Kinesis processors: filtered out by `kinesis_kinds`.
            _ => BatchReport::default(),
        }
    }

    /// One Kinesis batch with Lambda's failure semantics, like
    /// [`Pipeline::run_table_batch_retrying`]: failed records are retried
    /// from the first failure with backoff, up to `max_retries` times; what
    /// still fails is dead-lettered.
    pub async fn run_kinesis_batch_retrying(
        &self,
        records: &[KinesisRecord],
        max_retries: u32,
        backoff: RetryPolicy,
    ) -> Counts {
        let mut total = Counts::default();
        for (kind, mut report) in self.run_kinesis_batch(records).await {
            let mut offset = 0;
            let mut attempt = 0;
            while let Some(first) = report.first_failure() {
                if attempt >= max_retries {
                    let failed: Vec<(&KinesisRecord, String)> = records[offset + first..]
                        .iter()
                        .zip(&report.outcomes[first..])
                        .filter_map(|(r, o)| match o {
                            Outcome::Failed(why) => Some((r, why.clone())),
                            _ => None,
                        })
                        .collect();
                    let dead = give_up(&self.ctx, kind.name(), &failed, max_retries).await;
                    let mut c = report.counts();
                    c.failed -= dead;
                    c.dead_lettered += dead;
                    total.add(c);
                    report = BatchReport::default();
                    break;
                }
                let mut head = report.clone();
                head.outcomes.truncate(first);
                total.add(head.counts());
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
                offset += first;
                report = self.run_kinesis_kind(kind, &records[offset..]).await;
            }
            total.add(report.counts());
        }
        total
    }
}

/// Dead-letters records whose retries ran out; returns how many were kept.
async fn give_up<R: SourceRecord>(
    ctx: &Context,
    processor: &str,
    failed: &[(&R, String)],
    retries: u32,
) -> u64 {
    let letters = failed.iter().map(|(r, why)| {
        DeadLetter::new(
            processor,
            r.record_id(),
            r.sequence_number(),
            r.received_at(),
            r.raw_json(),
            format!("gave up after {retries} retries: {why}"),
            ctx.deadletter_retention_days,
        )
    });
    let results = deadletter::write_all(&ctx.exec, letters, ctx.concurrency).await;
    let mut kept = 0;
    for ((r, why), res) in failed.iter().zip(results) {
        match res {
            Ok(()) => {
                kept += 1;
                warn!(processor, record_id = r.record_id(), error = %why, "retries exhausted; record dead-lettered");
            }
            Err(e) => {
                warn!(processor, record_id = r.record_id(), error = %e, "retries exhausted and the dead letter failed")
            }
        }
    }
    kept
}

/// Item types written by applications (not by processors): what
/// [`restore_sources`] re-creates.
pub const SOURCE_TYPES: &[&str] = &["group", "message"];

/// Applies the source changes the records describe (put the new image, or
/// delete) to a table, for replaying captured records into a new table.
/// Only application-written types ([`SOURCE_TYPES`]) are touched.
pub async fn restore_sources(exec: &Executor, records: &[StreamRecord]) -> Result<(), ExecError> {
    for r in records {
        if !r.item_type().is_some_and(|t| SOURCE_TYPES.contains(&t)) {
            continue;
        }
        match r.kind {
            ChangeKind::Remove => {
                let key: Item = r.dynamodb.keys.clone().into();
                exec.retrying("DeleteItem", || {
                    exec.client()
                        .delete_item()
                        .table_name(exec.table())
                        .set_key(Some(key.clone()))
                        .send()
                })
                .await?;
            }
            _ => {
                if let Some(image) = &r.dynamodb.new_image {
                    let item: Item = image.clone().into();
                    exec.retrying("PutItem", || {
                        exec.client()
                            .put_item()
                            .table_name(exec.table())
                            .set_item(Some(item.clone()))
                            .send()
                    })
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// The default backoff between retries of a failed batch.
pub fn batch_backoff() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
    }
}
