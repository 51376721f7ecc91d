//! Workload 1, the chat burst: `--messages` new messages into `--groups`
//! two-person conversations, Zipf-distributed over the conversations, one
//! millisecond apart, as table stream INSERT records. The groups and the
//! message items are written to both tables first (the app's writes);
//! message-groups and the naive way then project the previews.

use std::collections::HashMap;

use anyhow::{Context as _, Result, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use message_groups::{MessageGroups, Participant, Target, plan};
use streamfold::chat::NewMessage;
use streamfold::pipeline::{Pipeline, ProcessorKind};
use streamfold_shared::attrs::sv;
use streamfold_shared::engine::{Counts, decode_and_group};
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::keys::Key;
use streamfold_shared::record::{ChangeKind, StreamRecord};

use super::compare::compare_tables;
use super::measure::{Stopwatch, records_per_cpu_second};
use super::naive::{Tally, chat_batch};
use super::zipf::Zipf;
use super::{Report, Tables, VersusArgs, stream_record, streamfold_side};

/// The two participants of bench conversation `g`.
fn participants(g: usize) -> Result<[Participant; 2]> {
    let user = |u: usize| -> Result<Participant> {
        Ok(Participant {
            user_uuid: UserId::new(format!("chat-user-{u:05}"))?,
            user_handle: format!("handle{u}"),
            user_display_name: format!("User {u}"),
        })
    };
    Ok([user(2 * g)?, user(2 * g + 1)?])
}

fn group_id(g: usize) -> Result<GroupId> {
    Ok(GroupId::new(format!("chat-group-{g:05}"))?)
}

/// The group item as the app creates it (pattern D), without a message yet.
fn group_item(g: usize, created_at: Timestamp) -> Result<Item> {
    let group = group_id(g)?;
    let key = Key::Group(group.clone());
    let people = participants(g)?
        .iter()
        .map(|p| {
            AttributeValue::M(HashMap::from([
                ("user_uuid".to_owned(), sv(p.user_uuid.as_str())),
                ("user_handle".to_owned(), sv(p.user_handle.as_str())),
                (
                    "user_display_name".to_owned(),
                    sv(p.user_display_name.as_str()),
                ),
            ]))
        })
        .collect();
    Ok(HashMap::from([
        ("pk".to_owned(), sv(key.pk())),
        ("sk".to_owned(), sv(key.sk())),
        ("type".to_owned(), sv("group")),
        ("message_group_uuid".to_owned(), sv(group.as_str())),
        ("participants".to_owned(), AttributeValue::L(people)),
        ("created_at".to_owned(), sv(created_at.to_string())),
    ]))
}

/// The shape of a chat workload.
pub struct Shape {
    pub name: &'static str,
    pub messages: usize,
    pub groups: usize,
    /// Zipf exponent (0: uniform).
    pub zipf: f64,
}

impl Shape {
    /// The chat burst (`--messages`, `--groups`, `--zipf`).
    pub fn burst(args: &VersusArgs) -> Self {
        Self {
            name: "chat burst",
            messages: args.messages,
            groups: args.groups,
            zipf: args.zipf,
        }
    }

    /// The sparse chat (`--sparse-messages` uniform over `--sparse-groups`).
    pub fn sparse(args: &VersusArgs) -> Self {
        Self {
            name: "sparse chat",
            messages: args.sparse_messages,
            groups: args.sparse_groups,
            zipf: 0.0,
        }
    }
}

/// The burst's messages, in stream order.
fn messages(args: &VersusArgs, shape: &Shape) -> Result<Vec<NewMessage>> {
    let zipf = Zipf::new(shape.groups.max(1), shape.zipf);
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let start = Timestamp::parse("2026-11-20T10:00:00Z")?.epoch_millis();
    (0..shape.messages)
        .map(|i| {
            let g = zipf.sample(&mut rng);
            let [a, b] = participants(g)?;
            Ok(NewMessage {
                group: group_id(g)?,
                id: MessageId::new(format!("m{i:07}"))?,
                at: Timestamp::from_epoch_millis(start + i as i64)
                    .ok_or_else(|| anyhow!("message {i}: time out of range"))?,
                sender: if rng.bool() { a } else { b },
                text: format!("message {i} of the burst"),
            })
        })
        .collect()
}

/// Counts of streamfold's outcomes in words.
pub fn outcomes(c: &Counts) -> String {
    format!(
        "applied {}, no-op {}, ignored {}, dead-lettered {}, failed {}",
        c.applied, c.no_op, c.ignored, c.dead_lettered, c.failed
    )
}

/// Decode (JSON included) and plan of message-groups, batch by batch.
fn decode_plan(batches: &[String]) -> usize {
    let mut projected = 0;
    for text in batches {
        let records: Vec<StreamRecord> = serde_json::from_str(text).unwrap_or_default();
        let grouped = decode_and_group(&MessageGroups, &records);
        for (_, events) in &grouped.groups {
            let refs: Vec<_> = events.iter().map(|(_, e)| e).collect();
            let (target, _) = plan(None, &refs);
            projected += usize::from(target != Target::Keep);
        }
    }
    projected
}

/// Messages per conversation that has any in a batch, on average.
fn per_conversation_per_batch(records: &[StreamRecord], batch: usize) -> f64 {
    let (mut messages, mut touched) = (0usize, 0usize);
    for b in records.chunks(batch.max(1)) {
        let groups: std::collections::HashSet<_> = b
            .iter()
            .filter_map(|r| r.dynamodb.keys.get("pk").cloned())
            .map(|v| format!("{v:?}"))
            .collect();
        messages += b.len();
        touched += groups.len();
    }
    messages as f64 / touched.max(1) as f64
}

/// The source items (groups and messages) and the stream records of a
/// chat workload.
fn workload(args: &VersusArgs, shape: &Shape) -> Result<(Vec<Item>, Vec<StreamRecord>)> {
    let created = Timestamp::parse("2026-11-20T09:00:00Z")?;
    let burst = messages(args, shape)?;
    let mut sources: Vec<Item> = (0..shape.groups.max(1))
        .map(|g| group_item(g, created))
        .collect::<Result<_>>()?;
    sources.extend(burst.iter().map(NewMessage::item));
    let records = burst
        .iter()
        .enumerate()
        .map(|(i, m)| stream_record(i, ChangeKind::Insert, Some(m.item()), None))
        .collect();
    Ok((sources, records))
}

/// streamfold's side alone of a chat workload in batches of `batch`, on
/// `app`'s table (its sources written by the uncounted `src` first): what
/// the batch-size sweep measures.
pub async fn streamfold_only(
    args: &VersusArgs,
    shape: &Shape,
    app: &streamfold::app::App,
    src: &streamfold_shared::executor::Executor,
    batch: usize,
) -> Result<super::measure::Side> {
    let (sources, records) = workload(args, shape)?;
    src.batch_put(sources)
        .await
        .map_err(|e| anyhow!("writing source items to {}: {e}", src.table()))?;
    let pipeline = Pipeline::new(app.ctx.clone(), &[ProcessorKind::MessageGroups]);
    let mut watch = Stopwatch::new(app.counter.clone());
    let counts = streamfold_side(&pipeline, &mut watch, &records, batch).await;
    Ok(watch.finish(outcomes(&counts)))
}

/// Runs a chat workload through both sides.
pub async fn run(args: &VersusArgs, shape: &Shape, t: &Tables) -> Result<Report> {
    let groups = shape.groups.max(1);
    let (sources, records) = workload(args, shape)?;
    t.put_sources(sources).await?;
    super::measure::reset_peak_rss();
    let bs = args.batch_size.max(1);

    let pipeline = Pipeline::new(t.streamfold.ctx.clone(), &[ProcessorKind::MessageGroups]);
    let mut watch = Stopwatch::new(t.streamfold.counter.clone());
    let counts = streamfold_side(&pipeline, &mut watch, &records, bs).await;
    let streamfold = watch.finish(outcomes(&counts));

    let mut watch = Stopwatch::new(t.naive.counter.clone());
    let mut tally = Tally::default();
    for batch in records.chunks(bs) {
        watch
            .phase(chat_batch(t.naive.ddb(), &t.naive.table, batch, &mut tally))
            .await
            .context("naive chat")?;
    }
    let naive = watch.finish(tally.describe());

    let views = compare_tables(
        &t.streamfold_src,
        &t.naive_src,
        &["preview", "group"],
        &[],
        &[],
    )
    .await?;
    let batches: Vec<String> = records
        .chunks(bs)
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    let rate = records_per_cpu_second(records.len(), || decode_plan(&batches));
    let per_batch = per_conversation_per_batch(&records, bs);
    Ok(Report {
        name: shape.name,
        what: format!(
            "{} messages into {groups} conversations (Zipf s = {}; {per_batch:.2} messages per conversation per batch), message-groups",
            records.len(),
            shape.zipf
        ),
        records: records.len(),
        streamfold,
        naive,
        views,
        cpu: vec![("message-groups", rate)],
        peak_rss_kb: None,
        notes: Vec::new(),
    })
}
