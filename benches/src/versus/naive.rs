//! The straightforward way: every record on its own, in order, with one
//! read (GetItem or Query) and single-item writes (PutItem, UpdateItem,
//! DeleteItem): no BatchGetItem/BatchWriteItem, no transactions, no
//! conditions, no coalescing. The shape of the original bootcamp
//! message-groups Lambda and of a first extension-pool Lambda, with the
//! final semantics of streamfold's processors for in-order, once-only
//! delivery: the same items with the same attributes (the pure item
//! builders of the processors are reused where they are public, so the
//! sides differ only in how they talk to DynamoDB).

use std::collections::HashMap;

use agent_activity::AgentEvent;
use agent_activity::plan::{
    Contribution, activity_item, contribution, profile_fields, status_attr,
};
use anyhow::{Result, anyhow, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use extensions::model::{ExtItem, FREE, GSI1, Profile, WAITING, Waiter, free_item};
use message_groups::{GroupState, Message, Preview};
use streamfold_shared::attrs::{nv, s, sv};
use streamfold_shared::engine::Decoded;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{AgentId, Timestamp};
use streamfold_shared::keys::{Extension, Key};
use streamfold_shared::kinesis::KinesisRecord;
use streamfold_shared::record::StreamRecord;

/// What the naive way did with its records.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Records that wrote something.
    pub applied: u64,
    /// Records that needed no write (an unchanged heartbeat, an arrival
    /// that found the pool empty, an older message).
    pub no_write: u64,
    /// Records of no concern to the processor.
    pub ignored: u64,
}

impl Tally {
    /// `applied 9,800, no write 200, ignored 0`.
    pub fn describe(&self) -> String {
        format!(
            "applied {}, no write {}, ignored {}",
            self.applied, self.no_write, self.ignored
        )
    }

    fn count(&mut self, wrote: bool) {
        if wrote {
            self.applied += 1;
        } else {
            self.no_write += 1;
        }
    }
}

/// An SDK error with its service message.
fn sdk<E, R>(op: &'static str) -> impl FnOnce(SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |e| anyhow!("{op}: {}", DisplayErrorContext(e))
}

// ---- message-groups ---------------------------------------------------------

/// A batch of table stream records, one message at a time.
pub async fn chat_batch(
    c: &Client,
    table: &str,
    records: &[StreamRecord],
    tally: &mut Tally,
) -> Result<()> {
    for r in records {
        match message_groups::decode(r) {
            Decoded::Event {
                event: message_groups::Event::Posted(m),
                ..
            } => tally.count(post_message(c, table, &m).await?),
            Decoded::Event { .. } => bail!(
                "record {}: the naive chat handles new messages only",
                r.event_id
            ),
            Decoded::Ignore => tally.ignored += 1,
            Decoded::Invalid(why) => bail!("record {}: {why}", r.event_id),
        }
    }
    Ok(())
}

/// GetItem the group (participants, the message shown now); DeleteItem
/// both old previews; PutItem both new ones; UpdateItem the group's
/// `last_message_key`. `false` when the message is not newer than the one
/// shown (never, in order).
async fn post_message(c: &Client, table: &str, m: &Message) -> Result<bool> {
    let group_key = Key::Group(m.group.clone());
    let item = c
        .get_item()
        .table_name(table)
        .set_key(Some(group_key.to_key_map()))
        .consistent_read(true)
        .send()
        .await
        .map_err(sdk("GetItem"))?
        .item
        .ok_or_else(|| anyhow!("group {} does not exist", m.group))?;
    let state = GroupState::from_item(item).map_err(|e| anyhow!(e))?;
    if state.last.as_ref().is_some_and(|shown| m.key <= *shown) {
        return Ok(false);
    }
    let [a, b] = &state.participants;
    if let Some(old) = state
        .last
        .as_ref()
        .filter(|o| o.created_at != m.key.created_at)
    {
        for owner in [a, b] {
            let stale = Key::Preview {
                owner: owner.user_uuid.clone(),
                last_message_at: old.created_at,
                group: m.group.clone(),
            };
            c.delete_item()
                .table_name(table)
                .set_key(Some(stale.to_key_map()))
                .send()
                .await
                .map_err(sdk("DeleteItem"))?;
        }
    }
    for (owner, other) in [(a, b), (b, a)] {
        c.put_item()
            .table_name(table)
            .set_item(Some(Preview::item(owner, other, m)))
            .send()
            .await
            .map_err(sdk("PutItem"))?;
    }
    c.update_item()
        .table_name(table)
        .set_key(Some(group_key.to_key_map()))
        .update_expression("SET last_message_key = :k, last_message_at = :at")
        .expression_attribute_values(":k", sv(m.key.render()))
        .expression_attribute_values(":at", sv(m.key.created_at.to_string()))
        .send()
        .await
        .map_err(sdk("UpdateItem"))?;
    Ok(true)
}

// ---- agent-activity -----------------------------------------------------------

/// A batch of Kinesis records, one agent event at a time.
pub async fn agent_batch(
    c: &Client,
    table: &str,
    records: &[KinesisRecord],
    retention_days: i64,
    tally: &mut Tally,
) -> Result<()> {
    for r in records {
        match agent_activity::decode(r) {
            Decoded::Event { event, .. } => {
                tally.count(agent_event(c, table, &event, retention_days).await?);
            }
            Decoded::Ignore => tally.ignored += 1,
            Decoded::Invalid(why) => bail!("record {}: {why}", r.event_id),
        }
    }
    Ok(())
}

/// GetItem the profile; PutItem it when the event changes it; PutItem the
/// history entry (not for heartbeats); UpdateItem (ADD) the daily totals
/// of the status period the event ends, once per UTC day it spans.
async fn agent_event(c: &Client, table: &str, ev: &AgentEvent, retention: i64) -> Result<bool> {
    let stored = c
        .get_item()
        .table_name(table)
        .set_key(Some(Key::Profile(ev.agent.clone()).to_key_map()))
        .consistent_read(true)
        .send()
        .await
        .map_err(sdk("GetItem"))?
        .item;
    let mut wrote = false;
    if let Some(profile) = next_profile(stored, ev) {
        put(c, table, profile).await?;
        wrote = true;
    }
    if let Some(history) = activity_item(ev, retention) {
        put(c, table, history).await?;
        wrote = true;
    }
    if let Some(period) = contribution(ev) {
        for day in period.touched_days() {
            add_daily(c, table, &ev.agent, day, &period).await?;
            wrote = true;
        }
    }
    Ok(wrote)
}

async fn put(c: &Client, table: &str, item: Item) -> Result<()> {
    c.put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(sdk("PutItem"))?;
    Ok(())
}

/// The profile after `ev` (read, modify, write back whole), or `None` when
/// the event is not newer than the stored one or changes nothing (a
/// heartbeat repeating the stored snapshot), as streamfold decides it.
fn next_profile(stored: Option<Item>, ev: &AgentEvent) -> Option<Item> {
    let at = ev.at.to_string();
    if let Some(p) = &stored
        && let (Some(a), Some(i)) = (s(p, "last_event_at"), s(p, "last_event_id"))
        && (a, i) >= (at.as_str(), ev.id.as_str())
    {
        return None;
    }
    let (set, absent) = profile_fields(ev);
    if let Some(p) = &stored {
        let unchanged = set.iter().all(|(k, v)| p.get(*k) == Some(v))
            && absent.iter().all(|k| !p.contains_key(*k));
        if unchanged {
            return None;
        }
    }
    let mut item = stored.unwrap_or_else(|| new_profile(&ev.agent, &at));
    item.extend(set.into_iter().map(|(k, v)| (k.to_owned(), v)));
    for k in absent {
        item.remove(k);
    }
    item.insert("last_event_at".to_owned(), sv(at));
    item.insert("last_event_id".to_owned(), sv(ev.id.as_str()));
    item.insert("last_event_type".to_owned(), sv(ev.kind.as_str()));
    Some(item)
}

/// A profile seen for the first time: waiting for an extension since now.
fn new_profile(agent: &AgentId, at: &str) -> Item {
    let key = Key::Profile(agent.clone());
    HashMap::from([
        ("pk".to_owned(), sv(key.pk())),
        ("sk".to_owned(), sv(key.sk())),
        ("first_event_at".to_owned(), sv(at)),
        ("gsi1pk".to_owned(), sv(agent_activity::plan::WAITING)),
        ("gsi1sk".to_owned(), sv(format!("{at}#{agent}"))),
    ])
}

/// One UpdateItem (ADD) of a day's totals: the status period's
/// milliseconds that fall on the day and the contact-centre counters the
/// event claims on it.
async fn add_daily(
    c: &Client,
    table: &str,
    agent: &AgentId,
    day: NaiveDate,
    period: &Contribution<'_>,
) -> Result<()> {
    let key = Key::Daily {
        agent: agent.clone(),
        day,
    };
    let mut adds = Vec::new();
    let mut req = c
        .update_item()
        .table_name(table)
        .set_key(Some(key.to_key_map()))
        .expression_attribute_names("#t", "type")
        .expression_attribute_names("#d", "date")
        .expression_attribute_values(":type", sv("daily"))
        .expression_attribute_values(":agent", sv(agent.as_str()))
        .expression_attribute_values(":date", sv(day.format("%Y-%m-%d").to_string()));
    let ms: i64 = period
        .days
        .iter()
        .filter(|(d, _)| *d == day)
        .map(|(_, ms)| ms)
        .sum();
    if period.days.iter().any(|(d, _)| *d == day) {
        adds.push("total_ms :ms, #s :ms".to_owned());
        req = req
            .expression_attribute_names("#s", status_attr(period.status))
            .expression_attribute_values(":ms", nv(ms));
    }
    // One ADD per counter (an event may claim one twice on a day).
    let mut counters: std::collections::BTreeMap<&str, i64> = Default::default();
    for (_, attr, v) in period.metrics.iter().filter(|(d, _, _)| *d == day) {
        *counters.entry(attr).or_default() += v;
    }
    for (i, (attr, v)) in counters.into_iter().enumerate() {
        adds.push(format!("#m{i} :m{i}"));
        req = req
            .expression_attribute_names(format!("#m{i}"), attr)
            .expression_attribute_values(format!(":m{i}"), nv(v));
    }
    req.update_expression(format!(
        "SET #t = :type, agent_id = :agent, #d = :date ADD {}",
        adds.join(", ")
    ))
    .send()
    .await
    .map_err(sdk("UpdateItem"))?;
    Ok(())
}

// ---- extensions -----------------------------------------------------------------

/// A batch of table stream records (agent profiles), one at a time.
pub async fn extension_batch(
    c: &Client,
    table: &str,
    records: &[StreamRecord],
    tally: &mut Tally,
) -> Result<()> {
    for r in records {
        match extensions::decode(r) {
            Decoded::Event {
                event: extensions::Event::Arrived { agent, .. },
                ..
            } => {
                let w = waiter(agent, r.dynamodb.new_image.as_ref());
                tally.count(arrive(c, table, &w).await?);
            }
            Decoded::Event {
                event:
                    extensions::Event::Departed {
                        agent, extension, ..
                    },
                ..
            } => {
                depart(c, table, &agent, &extension).await?;
                tally.applied += 1;
            }
            Decoded::Ignore => tally.ignored += 1,
            Decoded::Invalid(why) => bail!("record {}: {why}", r.event_id),
        }
    }
    Ok(())
}

/// The arriving agent as its record's new image describes it.
fn waiter(agent: AgentId, image: Option<&serde_dynamo::Item>) -> Waiter {
    let text = |name: &str| match image.and_then(|i| i.get(name)) {
        Some(serde_dynamo::AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    Waiter {
        agent_arn: text("agent_arn"),
        username: text("username"),
        agent,
    }
}

/// The first item of a gsi1 queue (lowest free extension, longest-waiting
/// agent).
async fn head(c: &Client, table: &str, queue: &str) -> Result<Option<Item>> {
    let out = c
        .query()
        .table_name(table)
        .index_name(GSI1)
        .key_condition_expression("gsi1pk = :q")
        .expression_attribute_values(":q", sv(queue))
        .scan_index_forward(true)
        .limit(1)
        .send()
        .await
        .map_err(sdk("Query"))?;
    Ok(out.items.unwrap_or_default().into_iter().next())
}

/// Query the lowest free extension and give it to the agent; `false` when
/// the pool is empty (the profile stays in the waiting queue) or the agent
/// has one already (a departure earlier in the stream handed it over while
/// the arrival's record was still on its way: one GetItem tells).
async fn arrive(c: &Client, table: &str, w: &Waiter) -> Result<bool> {
    let profile = c
        .get_item()
        .table_name(table)
        .set_key(Some(Key::Profile(w.agent.clone()).to_key_map()))
        .consistent_read(true)
        .send()
        .await
        .map_err(sdk("GetItem"))?
        .item;
    if profile.is_some_and(|p| p.contains_key("extension")) {
        return Ok(false);
    }
    let Some(free) = head(c, table, FREE).await? else {
        return Ok(false);
    };
    let x = ExtItem::from_item(&free).map_err(|e| anyhow!(e))?.extension;
    give(c, table, w, &x).await?;
    Ok(true)
}

/// Query the longest-waiting agent and hand the departed agent's
/// extension over, or put it back in the pool.
async fn depart(c: &Client, table: &str, from: &AgentId, x: &Extension) -> Result<()> {
    match head(c, table, WAITING).await? {
        Some(p) => {
            let w = Waiter::from(&Profile::from_item(&p).map_err(|e| anyhow!(e))?);
            give(c, table, &w, x).await
        }
        None => {
            let mut item = free_item(x);
            item.insert("freed_at".to_owned(), sv(Timestamp::now().to_string()));
            put(c, table, item)
                .await
                .map_err(|e| anyhow!("freeing {x} of agent {from}: {e}"))
        }
    }
}

/// PutItem the ext item as assigned to `w`; UpdateItem the profile with the
/// extension, out of the waiting queue.
async fn give(c: &Client, table: &str, w: &Waiter, x: &Extension) -> Result<()> {
    let key = Key::Extension(x.clone());
    let mut item: Item = HashMap::from([
        ("pk".to_owned(), sv(key.pk())),
        ("sk".to_owned(), sv(key.sk())),
        ("type".to_owned(), sv("ext")),
        ("extension".to_owned(), sv(x.as_str())),
        ("agent_id".to_owned(), sv(w.agent.as_str())),
        ("assigned_at".to_owned(), sv(Timestamp::now().to_string())),
    ]);
    for (name, value) in [("agent_arn", &w.agent_arn), ("username", &w.username)] {
        if let Some(v) = value {
            item.insert(name.to_owned(), AttributeValue::S(v.clone()));
        }
    }
    put(c, table, item).await?;
    c.update_item()
        .table_name(table)
        .set_key(Some(Key::Profile(w.agent.clone()).to_key_map()))
        .update_expression("SET extension = :x REMOVE gsi1pk, gsi1sk")
        .expression_attribute_values(":x", sv(x.as_str()))
        .send()
        .await
        .map_err(sdk("UpdateItem"))?;
    Ok(())
}
