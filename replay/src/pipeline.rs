//! Routing records to the processors that own them, the same code whichever
//! source (replay file, live tail) feeds it.

use std::time::Duration;

use futures::future::join_all;
use std::collections::HashMap;
use streamfold_shared::deadletter::{self, DeadLetter};
use streamfold_shared::engine::{BatchReport, Context, Counts, Outcome, Records, SourceRecord};

use aws_sdk_dynamodb::types::AttributeValue;
use streamfold_shared::attrs;
use streamfold_shared::executor::{ExecError, Executor, Expr, Item, RetryPolicy};
use streamfold_shared::keys::Extension;
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::{ChangeKind, StreamRecord};
use tracing::warn;

/// A processor the CLI can run: a handle on an entry of the registry.
pub use crate::registry::ProcessorKind;

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
        join_all(
            self.table_kinds()
                .map(|kind| async move { (kind, self.run_table_kind(kind, records).await) }),
        )
        .await
    }

    async fn run_table_kind(&self, kind: ProcessorKind, records: &[StreamRecord]) -> BatchReport {
        kind.projection()
            .run_batch(&self.ctx, Records::TableStream(records))
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
        for (kind, report) in self.run_table_batch(records).await {
            total.add(
                retry_from_first_failure(
                    &self.ctx,
                    kind,
                    records,
                    report,
                    max_retries,
                    backoff,
                    |rest| self.run_table_kind(kind, rest),
                )
                .await,
            );
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
        kind.projection()
            .run_batch(&self.ctx, Records::Kinesis(records))
            .await
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
        for (kind, report) in self.run_kinesis_batch(records).await {
            total.add(
                retry_from_first_failure(
                    &self.ctx,
                    kind,
                    records,
                    report,
                    max_retries,
                    backoff,
                    |rest| self.run_kinesis_kind(kind, rest),
                )
                .await,
            );
        }
        total
    }
}

/// Lambda's failure semantics for one processor's report on a batch: the
/// records from the first failure on are run again (`rerun`) with backoff, up
/// to `max_retries` times; what still fails is dead-lettered.
async fn retry_from_first_failure<'r, R, F, Fut>(
    ctx: &Context,
    kind: ProcessorKind,
    records: &'r [R],
    mut report: BatchReport,
    max_retries: u32,
    backoff: RetryPolicy,
    rerun: F,
) -> Counts
where
    R: SourceRecord,
    F: Fn(&'r [R]) -> Fut,
    Fut: std::future::Future<Output = BatchReport>,
{
    let mut total = Counts::default();
    let mut offset = 0;
    let mut attempt = 0;
    while let Some(first) = report.first_failure() {
        if attempt >= max_retries {
            let failed: Vec<(&R, String)> = records[offset + first..]
                .iter()
                .zip(&report.outcomes[first..])
                .filter_map(|(r, o)| match o {
                    Outcome::Failed(why) => Some((r, why.clone())),
                    _ => None,
                })
                .collect();
            let dead = give_up(ctx, kind.name(), &failed, max_retries).await;
            let mut c = report.counts();
            c.failed -= dead;
            c.dead_lettered += dead;
            total.add(c);
            return total;
        }
        let mut head = report.clone();
        head.outcomes.truncate(first);
        total.add(head.counts());
        tokio::time::sleep(backoff.delay(attempt)).await;
        attempt += 1;
        offset += first;
        report = rerun(&records[offset..]).await;
    }
    total.add(report.counts());
    total
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

/// Item types whose captured changes [`restore_sources`] re-creates: the
/// application's groups and messages, the agent profiles (the extensions
/// processor's input) and the extension pool.
pub const SOURCE_TYPES: &[&str] = &["group", "message", "agent", "ext"];

/// Attributes of a profile that are the extensions processor's projection:
/// never restored from a capture, so the new table's processor assigns them.
const PROFILE_PROJECTION: &[&str] = &["pk", "sk", "extension", "gsi1pk", "gsi1sk"];

/// Applies the source changes the records describe to a table, for
/// replaying captured records into a new table:
/// - group and message: put the new image, or delete;
/// - agent profile: created waiting for an extension (the captured
///   `extension` is a projection the new table's processor makes again),
///   later images update every other attribute, removal deletes;
/// - ext: a free extension of the pool is created if absent (assignments are
///   projections); removal deletes it if it is still free.
pub async fn restore_sources(exec: &Executor, records: &[StreamRecord]) -> Result<(), ExecError> {
    for r in records {
        match r.item_type() {
            Some("message") => restore_plain(exec, r).await?,
            Some("group") => restore_group(exec, r).await?,
            Some("agent") => restore_profile(exec, r).await?,
            Some("ext") => restore_extension(exec, r).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn delete(
    exec: &Executor,
    r: &StreamRecord,
    condition: Option<Expr>,
) -> Result<(), ExecError> {
    let key: Item = r.dynamodb.keys.clone().into();
    let (text, names, values) = match condition {
        Some(c) => (Some(c.text), c.names, c.values),
        None => (None, Default::default(), Default::default()),
    };
    exec.conditional("DeleteItem", || {
        exec.client()
            .delete_item()
            .table_name(exec.table())
            .set_key(Some(key.clone()))
            .set_condition_expression(text.clone())
            .set_expression_attribute_names((!names.is_empty()).then(|| names.clone()))
            .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
            .send()
    })
    .await?;
    Ok(())
}

async fn restore_plain(exec: &Executor, r: &StreamRecord) -> Result<(), ExecError> {
    if r.kind == ChangeKind::Remove {
        return delete(exec, r, None).await;
    }
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
    Ok(())
}

async fn restore_profile(exec: &Executor, r: &StreamRecord) -> Result<(), ExecError> {
    if r.kind == ChangeKind::Remove {
        return delete(exec, r, None).await;
    }
    let Some(image) = &r.dynamodb.new_image else {
        return Ok(());
    };
    let image: Item = image.clone().into();
    let (Some(agent), Some(since)) = (
        attrs::s(&image, "pk").and_then(|pk| pk.strip_prefix("AGENT#")),
        ["first_event_at", "last_event_at", "status_since"]
            .iter()
            .find_map(|a| attrs::s(&image, a)),
    ) else {
        warn!(record_id = %r.event_id, "profile image without agent or time; not restored");
        return Ok(());
    };
    // New here: created waiting for an extension.
    let mut waiting = image.clone();
    waiting.remove("extension");
    waiting.insert(
        "gsi1pk".to_owned(),
        attrs::sv(agent_activity::plan::WAITING),
    );
    waiting.insert("gsi1sk".to_owned(), attrs::sv(format!("{since}#{agent}")));
    if exec.put_if_absent(waiting).await? {
        return Ok(());
    }
    // Already here: every attribute but the extensions projection.
    update_sources(exec, &image, PROFILE_PROJECTION).await
}

/// Attributes of a group that are message-groups' projection.
const GROUP_PROJECTION: &[&str] = &["pk", "sk", "last_message_key", "last_message_at"];

/// A group is created without the preview pointer (the new table's
/// message-groups sets it) and later images update only what the
/// application writes.
async fn restore_group(exec: &Executor, r: &StreamRecord) -> Result<(), ExecError> {
    if r.kind == ChangeKind::Remove {
        return delete(exec, r, None).await;
    }
    let Some(image) = &r.dynamodb.new_image else {
        return Ok(());
    };
    let image: Item = image.clone().into();
    let mut fresh = image.clone();
    fresh.retain(|k, _| !GROUP_PROJECTION[2..].contains(&k.as_str()));
    if exec.put_if_absent(fresh).await? {
        return Ok(());
    }
    update_sources(exec, &image, GROUP_PROJECTION).await
}

/// Sets every attribute of `image` but the `projection` ones (which include
/// the keys) on the existing item.
async fn update_sources(
    exec: &Executor,
    image: &Item,
    projection: &[&str],
) -> Result<(), ExecError> {
    let (Some(pk), Some(sk)) = (attrs::s(image, "pk"), attrs::s(image, "sk")) else {
        return Ok(());
    };
    let fields: Vec<(&String, &AttributeValue)> = image
        .iter()
        .filter(|(k, _)| !projection.contains(&k.as_str()))
        .collect();
    if fields.is_empty() {
        return Ok(());
    }
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut sets = Vec::with_capacity(fields.len());
    for (i, (k, v)) in fields.into_iter().enumerate() {
        names.insert(format!("#a{i}"), k.clone());
        values.insert(format!(":a{i}"), v.clone());
        sets.push(format!("#a{i} = :a{i}"));
    }
    let key = Item::from([
        ("pk".to_owned(), attrs::sv(pk)),
        ("sk".to_owned(), attrs::sv(sk)),
    ]);
    let text = format!("SET {}", sets.join(", "));
    exec.retrying("UpdateItem", || {
        exec.client()
            .update_item()
            .table_name(exec.table())
            .set_key(Some(key.clone()))
            .update_expression(text.clone())
            .set_expression_attribute_names(Some(names.clone()))
            .set_expression_attribute_values(Some(values.clone()))
            .send()
    })
    .await?;
    Ok(())
}

async fn restore_extension(exec: &Executor, r: &StreamRecord) -> Result<(), ExecError> {
    let free = Expr::new("gsi1pk = :free").s(":free", extensions::model::FREE);
    if r.kind == ChangeKind::Remove {
        // `extensions init` took a free one out of the pool (reserved).
        return delete(exec, r, Some(free)).await;
    }
    let number = r
        .image()
        .map(|i| -> Item { i.clone().into() })
        .and_then(|i| attrs::s(&i, "extension").and_then(|x| Extension::new(x).ok()));
    match number {
        Some(x) => {
            exec.put_if_absent(extensions::model::free_item(&x)).await?;
        }
        None => warn!(record_id = %r.event_id, "ext image without a valid extension; not restored"),
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
