//! Planning: what an agent's events come to, as items and guarded updates.
//! Pure: no I/O, no clock (every value is derived from the events, so a
//! replay writes the very same items).
//!
//! - [`activity_item`]: the history item of a LOGIN, LOGOUT or STATE_CHANGE
//!   (none for a HEART_BEAT).
//! - [`ended_period`] and [`split_by_day`]: the status period an event ends,
//!   and its milliseconds per UTC day.
//! - [`plan_profile`]: the one profile update of a batch (the newest event),
//!   guarded by (last_event_at, last_event_id).
//! - [`plan_daily`]: per-day counter updates that claim their events in the
//!   same write.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{NaiveDate, NaiveTime};
use streamfold_shared::attrs::{nv, s, sv};
use streamfold_shared::executor::{Expr, Item};
use streamfold_shared::ids::{AgentId, Timestamp};
use streamfold_shared::keys::Key;

use crate::event::{AgentEvent, Contact, EventType, Snapshot, Status};

mod daily;
mod profile;
mod routing_profiles;

pub use daily::*;
pub use profile::*;
pub use routing_profiles::*;

/// The `gsi1pk` of agents waiting for an extension.
pub const WAITING: &str = "EXT#WAITING";
/// The `gsi2pk` of the agent directory.
pub const DIRECTORY: &str = "AGENTS";
/// The `gsi2pk` of the routing-profile directory (`gsi2sk` = its id).
pub const ROUTING_PROFILES: &str = "ROUTING_PROFILES";
/// A status period is split over at most this many UTC days (the most recent
/// ones); a longer one counts only its last days (one transaction holds at
/// most 100 actions).
pub const MAX_SPLIT_DAYS: usize = 90;
/// Prefix of the per-status millisecond counters of a daily item.
pub const STATUS_MS_PREFIX: &str = "ms_";
const DAY_MS: i64 = 86_400_000;

/// The status period an event closes: the previous status, from its start
/// to the start of the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period<'a> {
    pub status: &'a Status,
    pub start: Timestamp,
    pub end: Timestamp,
    pub ms: i64,
}

fn same_status(a: &Status, b: &Status) -> bool {
    a.name == b.name && a.arn == b.arn && a.since == b.since
}

/// The period an event ends: when it has a previous snapshot whose status
/// differs from the current one (name, ARN or start). It ends where the new
/// status starts (or at the event, if that is missing or out of range).
pub fn ended_period(ev: &AgentEvent) -> Option<Period<'_>> {
    let prev = ev.previous.as_ref()?.status.as_ref()?;
    let cur = ev.current.status.as_ref();
    if cur.is_some_and(|c| same_status(c, prev)) {
        return None;
    }
    let start = prev.since?;
    let end = cur
        .and_then(|c| c.since)
        .filter(|s| *s >= start && *s <= ev.at)
        .unwrap_or(ev.at);
    let ms = (end.epoch_millis() - start.epoch_millis()).max(0);
    Some(Period {
        status: prev,
        start,
        end,
        ms,
    })
}

/// Milliseconds of `[start_ms, end_ms)` per UTC day, oldest first; at most
/// the [`MAX_SPLIT_DAYS`] last days.
pub fn split_by_day(start_ms: i64, end_ms: i64) -> Vec<(NaiveDate, i64)> {
    let mut out = Vec::new();
    if end_ms <= start_ms {
        return out;
    }
    let mut cursor = end_ms;
    while cursor > start_ms && out.len() < MAX_SPLIT_DAYS {
        // The day of the last millisecond before the cursor.
        let day_start = (cursor - 1).div_euclid(DAY_MS) * DAY_MS;
        let from = day_start.max(start_ms);
        let Some(day) = Timestamp::from_epoch_millis(day_start).map(|t| t.date()) else {
            break;
        };
        out.push((day, cursor - from));
        cursor = from;
    }
    out.reverse();
    out
}

/// What happened to a contact between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactChange<'a> {
    pub contact: &'a Contact,
    /// `appeared`, `changed` or `gone`.
    pub change: &'static str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
}

/// Contacts that appeared, changed state or went away.
pub fn contact_changes<'a>(
    prev: Option<&'a Snapshot>,
    cur: &'a Snapshot,
) -> Vec<ContactChange<'a>> {
    let mut out = Vec::new();
    for c in &cur.contacts {
        match prev.and_then(|p| p.contact(&c.id)) {
            None => out.push(ContactChange {
                contact: c,
                change: "appeared",
                from: None,
                to: c.state.as_deref(),
            }),
            Some(p) if p.state != c.state => out.push(ContactChange {
                contact: c,
                change: "changed",
                from: p.state.as_deref(),
                to: c.state.as_deref(),
            }),
            Some(_) => {}
        }
    }
    if let Some(prev) = prev {
        for p in &prev.contacts {
            if cur.contact(&p.id).is_none() {
                out.push(ContactChange {
                    contact: p,
                    change: "gone",
                    from: p.state.as_deref(),
                    to: None,
                });
            }
        }
    }
    out
}

/// After-contact work that started (a contact became ENDED) and ended (the
/// AWS rule: the current snapshot no longer has a contact the previous one
/// had ENDED), with the milliseconds of the ended ones.
pub fn acw(ev: &AgentEvent) -> (Vec<&Contact>, Vec<(&Contact, Option<i64>)>) {
    let Some(prev) = ev.previous.as_ref() else {
        return (Vec::new(), Vec::new());
    };
    let ended = |c: &Contact| c.state.as_deref() == Some("ENDED");
    let started = ev
        .current
        .contacts
        .iter()
        .filter(|c| ended(c) && !prev.contact(&c.id).is_some_and(ended))
        .collect();
    let finished = prev
        .contacts
        .iter()
        .filter(|p| ended(p) && ev.current.contact(&p.id).is_none())
        .map(|p| {
            let ms = p
                .state_since
                .map(|s| (ev.at.epoch_millis() - s.epoch_millis()).max(0));
            (p, ms)
        })
        .collect();
    (started, finished)
}

fn opt(item: &mut Item, name: &str, value: Option<impl Into<String>>) {
    if let Some(v) = value {
        item.insert(name.to_owned(), sv(v));
    }
}

fn contact_map(c: &Contact) -> AttributeValue {
    let mut m = HashMap::from([("contact_id".to_owned(), sv(c.id.as_str()))]);
    opt(&mut m, "channel", c.channel.as_deref());
    opt(&mut m, "state", c.state.as_deref());
    opt(&mut m, "state_since", c.state_since.map(|t| t.to_string()));
    opt(&mut m, "initiation_method", c.initiation_method.as_deref());
    opt(&mut m, "queue", c.queue.as_deref());
    AttributeValue::M(m)
}

/// The history item of an event; `None` for a HEART_BEAT.
pub fn activity_item(ev: &AgentEvent, retention_days: i64) -> Option<Item> {
    if ev.kind == EventType::HeartBeat {
        return None;
    }
    let key = Key::Activity {
        agent: ev.agent.clone(),
        at: ev.at,
        event: ev.id.clone(),
    };
    // Room for every attribute an item can have: no rehash while it grows.
    let mut item = Item::with_capacity(24);
    item.extend([
        ("pk".to_owned(), sv(key.pk())),
        ("sk".to_owned(), sv(key.sk())),
        ("type".to_owned(), sv("activity")),
        ("agent_id".to_owned(), sv(ev.agent.as_str())),
        ("event_id".to_owned(), sv(ev.id.as_str())),
        ("event_type".to_owned(), sv(ev.kind.as_str())),
        ("at".to_owned(), sv(ev.at.to_string())),
        (
            "expires_at".to_owned(),
            nv(ev
                .at
                .plus_seconds(retention_days.saturating_mul(86_400))
                .epoch_seconds()),
        ),
    ]);
    let cur = &ev.current;
    if let Some(st) = &cur.status {
        item.insert("status".to_owned(), sv(st.name.as_str()));
        opt(&mut item, "status_type", st.kind.as_deref());
        opt(&mut item, "status_since", st.since.map(|t| t.to_string()));
    }
    if let Some(p) = ended_period(ev) {
        item.insert("previous_status".to_owned(), sv(p.status.name.as_str()));
        opt(&mut item, "previous_status_type", p.status.kind.as_deref());
        item.insert("previous_status_since".to_owned(), sv(p.start.to_string()));
        item.insert("previous_status_ms".to_owned(), nv(p.ms));
    }
    if let Some(rp) = &cur.routing_profile {
        item.insert("routing_profile".to_owned(), sv(rp.name.as_str()));
    }
    let prev_rp = ev
        .previous
        .as_ref()
        .and_then(|p| p.routing_profile.as_ref());
    if let Some(prev_rp) = prev_rp
        && !cur
            .routing_profile
            .as_ref()
            .is_some_and(|c| c.same(prev_rp))
    {
        item.insert(
            "previous_routing_profile".to_owned(),
            sv(prev_rp.name.as_str()),
        );
    }
    if let Some(next) = &cur.next_status {
        item.insert("next_status".to_owned(), sv(next.name.as_str()));
    }
    let changes = contact_changes(ev.previous.as_ref(), cur);
    if !changes.is_empty() {
        let list = changes
            .iter()
            .map(|ch| {
                let mut m = HashMap::from([
                    ("contact_id".to_owned(), sv(ch.contact.id.as_str())),
                    ("change".to_owned(), sv(ch.change)),
                ]);
                opt(&mut m, "channel", ch.contact.channel.as_deref());
                opt(&mut m, "from", ch.from);
                opt(&mut m, "to", ch.to);
                AttributeValue::M(m)
            })
            .collect();
        item.insert("contacts".to_owned(), AttributeValue::L(list));
    }
    let (started, ended) = acw(ev);
    if !started.is_empty() {
        item.insert(
            "acw_started".to_owned(),
            AttributeValue::L(started.iter().map(|c| sv(c.id.as_str())).collect()),
        );
    }
    if !ended.is_empty() {
        let list = ended
            .iter()
            .map(|(c, ms)| {
                let mut m = HashMap::from([("contact_id".to_owned(), sv(c.id.as_str()))]);
                if let Some(ms) = ms {
                    m.insert("acw_ms".to_owned(), nv(ms));
                }
                AttributeValue::M(m)
            })
            .collect();
        item.insert("acw_ended".to_owned(), AttributeValue::L(list));
    }
    Some(item)
}

#[cfg(test)]
mod tests;
