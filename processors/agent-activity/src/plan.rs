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

// ---- profile ---------------------------------------------------------------

/// What the processor knows of a stored profile.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileState {
    pub last_event_at: Option<String>,
    pub last_event_id: Option<String>,
    pub first_event_at: Option<String>,
    /// `gsi1pk = EXT#WAITING`: no extension yet.
    pub waiting: bool,
    pub item: Item,
}

impl ProfileState {
    pub fn from_item(item: Item) -> Self {
        Self {
            last_event_at: s(&item, "last_event_at").map(str::to_owned),
            last_event_id: s(&item, "last_event_id").map(str::to_owned),
            first_event_at: s(&item, "first_event_at").map(str::to_owned),
            waiting: s(&item, "gsi1pk") == Some(WAITING),
            item,
        }
    }

    /// True when the stored profile reflects `(at, id)` or something newer.
    fn is_at_or_after(&self, at: &str, id: &str) -> bool {
        match (&self.last_event_at, &self.last_event_id) {
            (Some(a), Some(i)) => (a.as_str(), i.as_str()) >= (at, id),
            (Some(a), None) => a.as_str() > at,
            _ => false,
        }
    }
}

/// What an agent is doing, derived from a snapshot (the profile's `state`):
/// `offline`, `available`, `on_contact`, `on_hold`, `acw`, `missed` or the
/// custom status's name; since when, and the contact's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedState<'a> {
    pub state: &'a str,
    pub since: Option<Timestamp>,
    pub channel: Option<&'a str>,
}

/// The derived state of an event's current snapshot. A contact decides
/// over the status (the status stays "Available" on a contact): one
/// CONNECTED or CONNECTING is `on_contact`, else one on hold is `on_hold`,
/// else one ENDED still on the snapshot is `acw`, else one MISSED is
/// `missed`; without contacts the status's type decides.
pub fn derived_state(ev: &AgentEvent) -> DerivedState<'_> {
    let cur = &ev.current;
    let offline = |since| DerivedState {
        state: "offline",
        since,
        channel: None,
    };
    let status = cur.status.as_ref();
    if ev.kind == EventType::Logout {
        return offline(status.and_then(|s| s.since).or(Some(ev.at)));
    }
    let groups: [(&[&str], &str); 4] = [
        (&["CONNECTED", "CONNECTING"], "on_contact"),
        (&["CONNECTED_ONHOLD"], "on_hold"),
        (&["ENDED"], "acw"),
        (&["MISSED"], "missed"),
    ];
    for (states, name) in groups {
        let found = cur
            .contacts
            .iter()
            .filter(|c| c.state.as_deref().is_some_and(|s| states.contains(&s)))
            .min_by_key(|c| (c.state.as_deref() != Some(states[0]), c.state_since));
        if let Some(c) = found {
            return DerivedState {
                state: name,
                since: c.state_since,
                channel: c.channel.as_deref(),
            };
        }
    }
    let Some(st) = status else {
        return offline(None);
    };
    let state = match st.kind.as_deref() {
        Some("ROUTABLE") => "available",
        Some("CUSTOM") => st.name.as_str(),
        _ => "offline",
    };
    DerivedState {
        state,
        since: st.since,
        channel: None,
    }
}

/// The profile attributes an event's current snapshot sets, and those it
/// removes (absent in the snapshot). Never `extension`, never the gsi1 keys.
pub fn profile_fields(ev: &AgentEvent) -> (Vec<(&'static str, AttributeValue)>, Vec<&'static str>) {
    let cur = &ev.current;
    let mut set: Vec<(&'static str, AttributeValue)> = vec![
        ("type", sv("agent")),
        ("agent_id", sv(ev.agent.as_str())),
        ("agent_arn", sv(ev.agent_arn.as_str())),
    ];
    let mut remove: Vec<&'static str> = Vec::new();
    let mut put = |name: &'static str, value: Option<AttributeValue>| match value {
        Some(v) => set.push((name, v)),
        None => remove.push(name),
    };
    put("username", cur.username.as_deref().map(sv));
    put("gsi2pk", cur.username.as_ref().map(|_| sv(DIRECTORY)));
    put("gsi2sk", cur.username.as_deref().map(sv));
    put("first_name", cur.first_name.as_deref().map(sv));
    put("last_name", cur.last_name.as_deref().map(sv));
    let rp = cur.routing_profile.as_ref();
    put("routing_profile", rp.map(|r| sv(r.name.as_str())));
    put(
        "routing_profile_arn",
        rp.and_then(|r| r.arn.as_deref()).map(sv),
    );
    let st = cur.status.as_ref();
    put("status", st.map(|s| sv(s.name.as_str())));
    put("status_arn", st.and_then(|s| s.arn.as_deref()).map(sv));
    put("status_type", st.and_then(|s| s.kind.as_deref()).map(sv));
    put(
        "status_since",
        st.and_then(|s| s.since).map(|t| sv(t.to_string())),
    );
    let next = cur.next_status.as_ref();
    put("next_status", next.map(|n| sv(n.name.as_str())));
    put(
        "next_status_at",
        next.and_then(|n| n.enqueued_at).map(|t| sv(t.to_string())),
    );
    let derived = derived_state(ev);
    put("state", Some(sv(derived.state)));
    put("state_since", derived.since.map(|t| sv(t.to_string())));
    put("state_channel", derived.channel.map(sv));
    put(
        "contacts",
        Some(AttributeValue::L(
            cur.contacts.iter().map(contact_map).collect(),
        )),
    );
    (set, remove)
}

/// One guarded update of an item.
#[derive(Debug, Clone)]
pub struct GuardedUpdate {
    pub key: Key,
    pub update: Expr,
    pub condition: Expr,
}

/// The profile update for an agent's events (oldest first, any order is
/// fine): the newest event's snapshot when it is newer than the stored one
/// and changes something, and the agent's first-seen time when an event is
/// older than it. `None` when nothing would change.
///
/// `first_event_at` is the earliest event seen; while the agent waits for an
/// extension, `gsi1sk = {first_event_at}#{agent_id}`. The waiting keys are
/// set only when this creates the profile (the extensions processor removes
/// them), so the final item does not depend on the order events arrive in.
pub fn plan_profile(
    agent: &AgentId,
    state: Option<&ProfileState>,
    events: &[&AgentEvent],
) -> Option<(GuardedUpdate, Option<usize>)> {
    let (newest_idx, newest) = events
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| a.order().cmp(&b.order()))?;
    let oldest = events.iter().map(|e| e.at).min()?;
    let newest_at = newest.at.to_string();
    let oldest_at = oldest.to_string();
    let key = Key::Profile(agent.clone());
    let waiting_sk = format!("{oldest_at}#{agent}");

    let mut sets: Vec<String> = Vec::new();
    let mut removes: Vec<String> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let mut expr = Expr::default();
    let mut n = 0usize;
    let mut set = |sets: &mut Vec<String>, expr: &mut Expr, name: &str, value: AttributeValue| {
        let (pn, pv) = (format!("#f{n}"), format!(":f{n}"));
        n += 1;
        sets.push(format!("{pn} = {pv}"));
        let e = std::mem::take(expr).name(&pn, name).value(&pv, value);
        *expr = e;
    };

    let snapshot_newer = state.is_none_or(|s| !s.is_at_or_after(&newest_at, newest.id.as_str()));
    let mut from_event = None;
    if snapshot_newer {
        let (fields, absent) = profile_fields(newest);
        // Every newer event is recorded, even one (a heartbeat, a LOGOUT)
        // that repeats the stored snapshot: `last_event_*` is then the
        // newest event whatever the order and batching of the deliveries
        // (skipping "no change" events made it depend on both). It costs no
        // request of its own: the update rides in the batch's shared
        // transactions.
        {
            for (name, value) in fields {
                set(&mut sets, &mut expr, name, value);
            }
            for (i, name) in absent.iter().enumerate() {
                let pn = format!("#r{i}");
                removes.push(pn.clone());
                expr = expr.name(&pn, name);
            }
            set(
                &mut sets,
                &mut expr,
                "last_event_at",
                sv(newest_at.as_str()),
            );
            set(
                &mut sets,
                &mut expr,
                "last_event_id",
                sv(newest.id.as_str()),
            );
            set(
                &mut sets,
                &mut expr,
                "last_event_type",
                sv(newest.kind.as_str()),
            );
            expr = expr
                .s(":newest_at", newest_at.as_str())
                .s(":newest_id", newest.id.as_str());
            from_event = Some(newest_idx);
        }
    }

    match state {
        None => {
            // Creating the profile: the agent has no extension yet.
            set(
                &mut sets,
                &mut expr,
                "first_event_at",
                sv(oldest_at.as_str()),
            );
            set(&mut sets, &mut expr, "gsi1pk", sv(WAITING));
            set(&mut sets, &mut expr, "gsi1sk", sv(waiting_sk.as_str()));
            from_event?;
            conds.push("attribute_not_exists(pk)".to_owned());
        }
        Some(st) => {
            conds.push("attribute_exists(pk)".to_owned());
            if from_event.is_some() {
                conds.push(
                    "(attribute_not_exists(last_event_at) OR last_event_at < :newest_at \
                     OR (last_event_at = :newest_at AND last_event_id < :newest_id))"
                        .to_owned(),
                );
            }
            let earlier = st
                .first_event_at
                .as_deref()
                .is_none_or(|f| oldest_at.as_str() < f);
            if earlier {
                set(
                    &mut sets,
                    &mut expr,
                    "first_event_at",
                    sv(oldest_at.as_str()),
                );
                expr = expr.s(":first", oldest_at.as_str());
                match &st.first_event_at {
                    Some(_) => {
                        conds.push("first_event_at > :first".to_owned());
                        if st.waiting {
                            // Only a profile this processor created and that
                            // still waits moves up the queue.
                            set(&mut sets, &mut expr, "gsi1sk", sv(waiting_sk.as_str()));
                            expr = expr.s(":waiting", WAITING);
                            conds.push("gsi1pk = :waiting".to_owned());
                        }
                    }
                    None => conds.push("attribute_not_exists(first_event_at)".to_owned()),
                }
            }
            if from_event.is_none() && !earlier {
                return None;
            }
        }
    }
    let mut text = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        text.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    // Split the placeholders: the executor merges update and condition.
    let update = Expr {
        text,
        names: expr.names,
        values: expr.values,
    };
    let condition = Expr::new(conds.join(" AND "));
    Some((
        GuardedUpdate {
            key,
            update,
            condition,
        },
        from_event,
    ))
}

// ---- routing profiles ------------------------------------------------------

fn queue_map(q: &crate::event::Queue) -> AttributeValue {
    let mut m = HashMap::new();
    opt(&mut m, "arn", q.arn.as_deref());
    opt(&mut m, "name", q.name.as_deref());
    m.insert(
        "channels".to_owned(),
        AttributeValue::L(q.channels.iter().map(|c| sv(c.as_str())).collect()),
    );
    AttributeValue::M(m)
}

/// The routing-profile items (`RP#{id}` / `RP`) a set of events shows: per
/// routing profile, the newest event's (by EventTimestamp, EventId) view of
/// it (name, ARN, inbound queues, default outbound queue), written only
/// over an older view, so any order and any redelivery end the same. With
/// the indexes (into `events`) of the events that carried it.
pub fn plan_routing_profiles(events: &[&AgentEvent]) -> Vec<(GuardedUpdate, Vec<usize>)> {
    let mut newest: BTreeMap<&str, (usize, Vec<usize>)> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let Some(id) = e.current.routing_profile.as_ref().and_then(|r| r.id()) else {
            continue;
        };
        let slot = newest.entry(id).or_insert((i, Vec::new()));
        if e.order() > events[slot.0].order() {
            slot.0 = i;
        }
        slot.1.push(i);
    }
    newest
        .into_iter()
        .filter_map(|(id, (i, carriers))| {
            let ev = events[i];
            let rp = ev.current.routing_profile.as_ref()?;
            let rp_id = streamfold_shared::ids::RoutingProfileId::new(id).ok()?;
            let mut sets = vec![
                "#t = :type",
                "routing_profile_id = :id",
                "#n = :name",
                "inbound_queues = :in",
                "last_event_at = :at",
                "last_event_id = :eid",
                "gsi2pk = :dir",
                "gsi2sk = :id",
            ];
            let mut expr = Expr::default()
                .name("#t", "type")
                .name("#n", "name")
                .s(":type", "routing_profile")
                .s(":dir", ROUTING_PROFILES)
                .s(":id", id)
                .s(":name", rp.name.as_str())
                .value(
                    ":in",
                    AttributeValue::L(rp.inbound_queues.iter().map(queue_map).collect()),
                )
                .s(":at", ev.at.to_string())
                .s(":eid", ev.id.as_str());
            let mut removes = Vec::new();
            if let Some(arn) = &rp.arn {
                sets.push("arn = :arn");
                expr = expr.s(":arn", arn.as_str());
            }
            match &rp.default_outbound_queue {
                Some(q) => {
                    sets.push("default_outbound_queue = :out");
                    expr = expr.value(":out", queue_map(q));
                }
                None => removes.push("default_outbound_queue"),
            }
            let mut text = format!("SET {}", sets.join(", "));
            if !removes.is_empty() {
                text.push_str(&format!(" REMOVE {}", removes.join(", ")));
            }
            let update = Expr {
                text,
                names: expr.names,
                values: expr.values,
            };
            let condition = Expr::new(
                "attribute_not_exists(pk) OR last_event_at < :gat \
                 OR (last_event_at = :gat AND last_event_id < :geid)",
            )
            .s(":gat", ev.at.to_string())
            .s(":geid", ev.id.as_str());
            Some((
                GuardedUpdate {
                    key: Key::RoutingProfile(rp_id),
                    update,
                    condition,
                },
                carriers,
            ))
        })
        .collect()
}

// ---- daily totals ------------------------------------------------------------

/// One event's milliseconds per day and status, and the contact-centre
/// figures it claims (each with its day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution<'a> {
    pub event: &'a AgentEvent,
    /// The status whose period the event ends ("" when none ends).
    pub status: &'a str,
    /// That status period's milliseconds per day (empty when none ends).
    pub days: Vec<(NaiveDate, i64)>,
    /// Contact-centre counters: (day, attribute, amount), e.g.
    /// (`2026-11-20`, `handle_ms`, 1200).
    pub metrics: Vec<(NaiveDate, &'static str, i64)>,
}

impl Contribution<'_> {
    /// Every day the contribution writes to.
    pub fn touched_days(&self) -> BTreeSet<NaiveDate> {
        self.days
            .iter()
            .map(|(d, _)| *d)
            .chain(self.metrics.iter().map(|(d, _, _)| *d))
            .collect()
    }
}

/// The daily contact-centre counters (attributes of a `DAY#` item).
pub const HANDLE_MS: &str = "handle_ms";
pub const HOLD_MS: &str = "hold_ms";
pub const ACW_MS: &str = "acw_ms";
pub const ROUTABLE_MS: &str = "routable_ms";
pub const NPT_MS: &str = "npt_ms";
pub const CONTACTS_HANDLED: &str = "contacts_handled";
pub const CONTACTS_MISSED: &str = "contacts_missed";
/// Every contact-centre counter, in display order.
pub const METRICS: &[&str] = &[
    HANDLE_MS,
    HOLD_MS,
    ACW_MS,
    ROUTABLE_MS,
    NPT_MS,
    CONTACTS_HANDLED,
    CONTACTS_MISSED,
];

fn add_split(
    out: &mut Vec<(NaiveDate, &'static str, i64)>,
    attr: &'static str,
    start: i64,
    end: i64,
) {
    out.extend(
        split_by_day(start, end)
            .into_iter()
            .map(|(d, ms)| (d, attr, ms)),
    );
}

/// The contact-centre figures an event claims, from its previous snapshot
/// and the current one: the contact states that end at this event (a state
/// runs from the previous snapshot's `StateStartTimestamp` until the
/// contact's state differs or the contact is gone), the status period that
/// ends (ROUTABLE and CUSTOM time), and the contacts connected or missed at
/// it (counted on the event's day).
pub fn contact_metrics(ev: &AgentEvent) -> Vec<(NaiveDate, &'static str, i64)> {
    let mut out = Vec::new();
    if let Some(p) = ended_period(ev) {
        let attr = match p.status.kind.as_deref() {
            Some("ROUTABLE") => Some(ROUTABLE_MS),
            Some("CUSTOM") => Some(NPT_MS),
            _ => None,
        };
        if let Some(attr) = attr {
            add_split(&mut out, attr, p.start.epoch_millis(), p.end.epoch_millis());
        }
    }
    let prev = ev.previous.as_ref();
    if let Some(prev) = prev {
        for pc in &prev.contacts {
            let cur = ev.current.contact(&pc.id);
            if cur.is_some_and(|c| c.state == pc.state) {
                continue;
            }
            let Some(start) = pc.state_since else {
                continue;
            };
            let end = cur
                .and_then(|c| c.state_since)
                .filter(|s| *s >= start && *s <= ev.at)
                .unwrap_or(ev.at);
            let (s, e) = (start.epoch_millis(), end.epoch_millis());
            match pc.state.as_deref() {
                Some("CONNECTED") => add_split(&mut out, HANDLE_MS, s, e),
                Some("CONNECTED_ONHOLD") => {
                    add_split(&mut out, HANDLE_MS, s, e);
                    add_split(&mut out, HOLD_MS, s, e);
                }
                Some("ENDED") => add_split(&mut out, ACW_MS, s, e),
                _ => {}
            }
        }
    }
    let day = ev.at.date();
    for c in &ev.current.contacts {
        let before = prev.and_then(|p| p.contact(&c.id));
        let before_state = before.and_then(|b| b.state.as_deref());
        match c.state.as_deref() {
            Some("CONNECTED") if before.is_none() || before_state == Some("CONNECTING") => {
                out.push((day, CONTACTS_HANDLED, 1));
            }
            Some("MISSED") if before_state != Some("MISSED") => {
                out.push((day, CONTACTS_MISSED, 1));
            }
            _ => {}
        }
    }
    out
}

/// The event's contribution to the daily totals, if it ends a period or
/// claims a contact-centre figure.
pub fn contribution(ev: &AgentEvent) -> Option<Contribution<'_>> {
    let p = ended_period(ev);
    let days = p
        .as_ref()
        .map(|p| split_by_day(p.start.epoch_millis(), p.end.epoch_millis()))
        .unwrap_or_default();
    let metrics: Vec<_> = contact_metrics(ev)
        .into_iter()
        .filter(|(_, _, v)| *v > 0)
        .collect();
    (!days.is_empty() || !metrics.is_empty()).then_some(Contribution {
        event: ev,
        status: p.map_or("", |p| p.status.name.as_str()),
        days,
        metrics,
    })
}

/// The name of a status's millisecond counter on a daily item.
pub fn status_attr(status: &str) -> String {
    format!("{STATUS_MS_PREFIX}{status}")
}

/// Counter updates of a set of contributions, one per day, each claiming
/// the contributing events: `ADD` the milliseconds and the event ids to the
/// `claimed` set, on condition that none of them is in it yet. The updates
/// must commit together (an event split over midnight claims on both days).
pub fn plan_daily(agent: &AgentId, contributions: &[Contribution<'_>]) -> Vec<GuardedUpdate> {
    type PerDay<'s> = (
        BTreeMap<&'s str, i64>,
        BTreeMap<&'static str, i64>,
        BTreeSet<&'s str>,
    );
    let mut per_day: BTreeMap<NaiveDate, PerDay<'_>> = BTreeMap::new();
    for c in contributions {
        for (day, ms) in &c.days {
            let entry = per_day.entry(*day).or_default();
            *entry.0.entry(c.status).or_insert(0) += ms;
            entry.2.insert(c.event.id.as_str());
        }
        for (day, attr, v) in &c.metrics {
            let entry = per_day.entry(*day).or_default();
            *entry.1.entry(attr).or_insert(0) += v;
            entry.2.insert(c.event.id.as_str());
        }
    }
    per_day
        .into_iter()
        .map(|(day, (statuses, metrics, events))| {
            let total: i64 = statuses.values().sum();
            let mut expr = Expr::default()
                .name("#t", "type")
                .name("#d", "date")
                .s(":type", "daily")
                .s(":agent", agent.as_str())
                .s(":date", day.format("%Y-%m-%d").to_string())
                .value(":total", nv(total))
                .value(
                    ":ids",
                    AttributeValue::Ss(events.iter().map(|e| (*e).to_owned()).collect()),
                );
            let mut adds = vec!["claimed :ids".to_owned()];
            if !statuses.is_empty() {
                adds.push("total_ms :total".to_owned());
            }
            for (i, (attr, v)) in metrics.iter().enumerate() {
                expr = expr.value(&format!(":m{i}"), nv(v));
                adds.push(format!("{attr} :m{i}"));
            }
            for (i, (status, ms)) in statuses.iter().enumerate() {
                expr = expr
                    .name(&format!("#s{i}"), &status_attr(status))
                    .value(&format!(":s{i}"), nv(ms));
                adds.push(format!("#s{i} :s{i}"));
            }
            let mut conds = Vec::new();
            for (i, e) in events.iter().enumerate() {
                expr = expr.s(&format!(":e{i}"), *e);
                conds.push(format!("NOT contains(claimed, :e{i})"));
            }
            let update = Expr {
                text: format!(
                    "SET #t = :type, agent_id = :agent, #d = :date ADD {}",
                    adds.join(", ")
                ),
                ..expr
            };
            GuardedUpdate {
                key: Key::Daily {
                    agent: agent.clone(),
                    day,
                },
                update,
                condition: Expr::new(conds.join(" AND ")),
            }
        })
        .collect()
}

/// The UTC midnight starting a day, in epoch milliseconds.
pub fn day_start_ms(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode_event;
    use streamfold_shared::testing::fixture;

    fn day() -> Vec<AgentEvent> {
        fixture("connect-agent-events.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| decode_event(l.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{e}"))
    }

    fn ms(item: &Item, name: &str) -> Option<i64> {
        streamfold_shared::attrs::n(item, name)
    }

    #[test]
    fn eleven_history_items_none_for_the_heartbeat() {
        let items: Vec<Item> = day().iter().filter_map(|e| activity_item(e, 90)).collect();
        assert_eq!(items.len(), 11);
        assert!(
            items
                .iter()
                .all(|i| s(i, "event_type") != Some("HEART_BEAT"))
        );
        let first = &items[0];
        assert_eq!(
            s(first, "pk"),
            Some("AGENT#4c1f6ad5-0b5e-4d0e-9f53-2b7b1e8f3a10")
        );
        assert_eq!(
            s(first, "sk"),
            Some("ACT#2026-11-20T14:00:01.001000Z#0d7a2b6e-1f0c-4e1a-9c51-0a1b2c3d4e01")
        );
        // 90 days after the event, not after "now".
        assert_eq!(ms(first, "expires_at"), Some(1802959201));
        // No names in history.
        assert!(items.iter().all(|i| !i.contains_key("first_name")));
    }

    #[test]
    fn durations_of_the_day_are_right() {
        let events = day();
        let durations: Vec<(String, Option<String>, Option<i64>)> = events
            .iter()
            .filter_map(|e| activity_item(e, 90))
            .map(|i| {
                (
                    s(&i, "event_type").unwrap_or_default().to_owned(),
                    s(&i, "previous_status").map(str::to_owned),
                    ms(&i, "previous_status_ms"),
                )
            })
            .collect();
        let with: Vec<_> = durations.iter().filter(|d| d.2.is_some()).collect();
        assert_eq!(with.len(), 4, "{durations:?}");
        // Offline from 2026-11-19T22:10:00 to 14:00:05.310 next day.
        assert_eq!(with[0].1.as_deref(), Some("Offline"));
        assert_eq!(with[0].2, Some(15 * 3_600_000 + 50 * 60_000 + 5_310));
        assert_eq!(with[1].1.as_deref(), Some("Available"));
        assert_eq!(with[1].2, Some(5_394_690));
        assert_eq!(with[2].1.as_deref(), Some("Lunch"));
        assert_eq!(with[2].2, Some(1_812_000));
        assert_eq!(with[3].1.as_deref(), Some("Available"));
        assert_eq!(with[3].2, Some(6_288_000));
    }

    #[test]
    fn contacts_and_after_contact_work() {
        let events = day();
        let items: Vec<Item> = events.iter().filter_map(|e| activity_item(e, 90)).collect();
        let changes = |i: &Item| match i.get("contacts") {
            Some(AttributeValue::L(l)) => l
                .iter()
                .filter_map(|m| match m {
                    AttributeValue::M(m) => Some(format!(
                        "{}:{}->{}",
                        s(m, "change").unwrap_or_default(),
                        s(m, "from").unwrap_or("-"),
                        s(m, "to").unwrap_or("-")
                    )),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(changes(&items[2]), ["appeared:-->CONNECTING"]);
        assert_eq!(changes(&items[3]), ["changed:CONNECTING->CONNECTED"]);
        assert_eq!(changes(&items[4]), ["changed:CONNECTED->ENDED"]);
        assert_eq!(changes(&items[5]), ["gone:ENDED->-"]);
        assert!(matches!(items[4].get("acw_started"), Some(AttributeValue::L(l)) if l.len() == 1));
        match items[5].get("acw_ended") {
            Some(AttributeValue::L(l)) => match &l[0] {
                // 14:09:27.027 → 14:10:02.002
                AttributeValue::M(m) => assert_eq!(ms(m, "acw_ms"), Some(34_975)),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        // Routing profile change Basic → Sales.
        assert_eq!(s(&items[6], "routing_profile"), Some("Sales"));
        assert_eq!(
            s(&items[6], "previous_routing_profile"),
            Some("Basic Routing Profile")
        );
        assert!(!items[7].contains_key("previous_routing_profile"));
    }

    #[test]
    fn periods_split_at_utc_midnight() {
        let start = day_start_ms(date("2026-11-19")) + 22 * 3_600_000 + 600_000;
        let end = day_start_ms(date("2026-11-20")) + 14 * 3_600_000 + 5_310;
        let parts = split_by_day(start, end);
        assert_eq!(
            parts,
            [
                (date("2026-11-19"), 6_600_000),
                (date("2026-11-20"), 50_405_310)
            ]
        );
        assert_eq!(parts.iter().map(|p| p.1).sum::<i64>(), end - start);
        // Exactly at midnight: nothing on the next day.
        let m = day_start_ms(date("2026-11-20"));
        assert_eq!(split_by_day(m - 10, m), [(date("2026-11-19"), 10)]);
        assert_eq!(split_by_day(m, m + 10), [(date("2026-11-20"), 10)]);
        assert!(split_by_day(m, m).is_empty());
        assert!(split_by_day(m, m - 5).is_empty());
        // A very long period keeps only the last days.
        let long = split_by_day(m - 400 * DAY_MS, m);
        assert_eq!(long.len(), MAX_SPLIT_DAYS);
    }

    #[test]
    fn daily_plan_counts_each_status_once_per_day() {
        let events = day();
        let contributions: Vec<_> = events.iter().filter_map(contribution).collect();
        assert_eq!(contributions.len(), 7);
        let agent = events[0].agent.clone();
        let updates = plan_daily(&agent, &contributions);
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0].key.sk(), "DAY#2026-11-19");
        assert_eq!(updates[1].key.sk(), "DAY#2026-11-20");
        let day20 = &updates[1].update;
        let value_of = |status: &str| {
            let ph = day20
                .names
                .iter()
                .find(|(_, v)| v.as_str() == status_attr(status))
                .map(|(k, _)| k.replace('#', ":"))
                .unwrap_or_default();
            match day20.values.get(&ph) {
                Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
                _ => None,
            }
        };
        assert_eq!(value_of("Offline"), Some(50_405_310));
        assert_eq!(value_of("Available"), Some(5_394_690 + 6_288_000));
        assert_eq!(value_of("Lunch"), Some(1_812_000));
        // Every contributing event is claimed in the same write.
        // (the four status periods, and the contact's CONNECTING, CONNECTED
        // and ENDED states that end at 14:03:04.5, 14:09:27 and 14:10:02).
        assert_eq!(updates[1].condition.text.matches("NOT contains").count(), 7);
        assert_eq!(updates[0].condition.text.matches("NOT contains").count(), 1);
    }

    /// Every contact-centre figure of a set of events, by (day, attribute).
    fn metric_totals(events: &[AgentEvent]) -> BTreeMap<(String, &'static str), i64> {
        let mut out = BTreeMap::new();
        for c in events.iter().filter_map(contribution) {
            for (d, attr, v) in &c.metrics {
                *out.entry((d.to_string(), *attr)).or_insert(0) += v;
            }
        }
        out
    }

    #[test]
    fn contact_centre_totals_of_the_fixture_day() {
        let t = metric_totals(&day());
        let get = |attr| t.get(&("2026-11-20".to_owned(), attr)).copied();
        // CONNECTED 14:03:04.500 → ENDED 14:09:27.027.
        assert_eq!(get(HANDLE_MS), Some(382_527));
        assert_eq!(get(HOLD_MS), None);
        // ENDED 14:09:27.027 → gone 14:10:02.002.
        assert_eq!(get(ACW_MS), Some(34_975));
        assert_eq!(get(ROUTABLE_MS), Some(5_394_690 + 6_288_000));
        assert_eq!(get(NPT_MS), Some(1_812_000));
        assert_eq!(get(CONTACTS_HANDLED), Some(1));
        assert_eq!(get(CONTACTS_MISSED), None);
        // Nothing but Offline on the 19th.
        assert!(t.keys().all(|(d, _)| d == "2026-11-20"), "{t:?}");
    }

    fn night() -> Vec<AgentEvent> {
        let midnight = day_start_ms(date("2026-11-21"));
        crate::synth::night_shift(midnight)
            .iter()
            .map(|v| decode_event(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn contact_centre_totals_across_midnight_with_holds_and_overlapping_chats() {
        let t = metric_totals(&night());
        let expected: BTreeMap<(String, &str), i64> = [
            // chat A 23:55-24:00, chat B 23:58:10-24:00
            (("2026-11-20", HANDLE_MS), 300_000 + 110_000),
            (("2026-11-20", ROUTABLE_MS), 600_000),
            (("2026-11-20", CONTACTS_HANDLED), 2),
            // A 00:00-00:02, B 00:00-00:03, on hold 00:03-00:04, 00:04-00:05
            (
                ("2026-11-21", HANDLE_MS),
                120_000 + 180_000 + 60_000 + 60_000,
            ),
            (("2026-11-21", HOLD_MS), 60_000),
            // A 00:02-00:03, B 00:05-00:05:30
            (("2026-11-21", ACW_MS), 60_000 + 30_000),
            (("2026-11-21", ROUTABLE_MS), 380_000),
            (("2026-11-21", NPT_MS), 1_800_000),
            (("2026-11-21", CONTACTS_MISSED), 1),
        ]
        .into_iter()
        .map(|((d, a), v)| ((d.to_owned(), a), v))
        .collect();
        assert_eq!(t, expected);
    }

    #[test]
    fn derived_state_follows_contacts_before_status() {
        let states: Vec<(String, Option<String>)> = night()
            .iter()
            .map(|e| {
                let d = derived_state(e);
                (d.state.to_owned(), d.channel.map(str::to_owned))
            })
            .collect();
        let names: Vec<&str> = states.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "on_contact",
                "on_contact",
                "on_contact",
                "on_contact",
                "on_hold",
                "on_contact",
                "acw",
                "available",
                "missed",
                "Lunch",
                "offline"
            ]
        );
        assert_eq!(states[0].1.as_deref(), Some("CHAT"));
        let fixture = day();
        assert_eq!(derived_state(&fixture[0]).state, "offline");
        assert_eq!(derived_state(&fixture[1]).state, "available");
        let logout = derived_state(&fixture[11]);
        assert_eq!(logout.state, "offline");
        // Still on the first chat since it connected.
        let n = night();
        let d = derived_state(&n[2]);
        assert_eq!(
            d.since.map(|t| t.to_string()).as_deref(),
            Some("2026-11-20T23:55:00.000000Z")
        );
    }

    #[test]
    fn routing_profiles_take_the_newest_view_whatever_the_order() {
        let events = day();
        let mut refs: Vec<&AgentEvent> = events.iter().collect();
        refs.reverse();
        let ups = plan_routing_profiles(&refs);
        let keys: Vec<String> = ups.iter().map(|(u, _)| u.key.pk()).collect();
        assert_eq!(keys, ["RP#rp-basic", "RP#rp-sales"]);
        assert!(string_values(&ups[0].0).contains(&events[6].id.as_str().to_owned()));
        assert!(string_values(&ups[1].0).contains(&events[11].id.as_str().to_owned()));
        assert_eq!(ups[0].1.len(), 7);
        let rp = events[0].current.routing_profile.as_ref();
        let queues: Vec<Option<&str>> = rp
            .map(|r| r.inbound_queues.iter().map(|q| q.name.as_deref()).collect())
            .unwrap_or_default();
        assert_eq!(queues, [Some("BasicQueue")], "no agent queue");
        assert!(ups[0].0.condition.text.contains("last_event_at < :gat"));
    }

    /// The string values an update sets.
    fn string_values(u: &GuardedUpdate) -> Vec<String> {
        u.update
            .values
            .values()
            .filter_map(|v| v.as_s().ok().cloned())
            .collect()
    }

    #[test]
    fn profile_is_the_newest_snapshot_and_records_the_newest_event_whatever_the_batching() {
        let events = day();
        let refs: Vec<&AgentEvent> = events.iter().collect();
        let agent = events[0].agent.clone();
        let (u, from) = plan_profile(&agent, None, &refs).unwrap_or_else(|| panic!("a write"));
        assert_eq!(from, Some(11));
        assert_eq!(u.condition.text, "attribute_not_exists(pk)");
        assert!(!u.update.text.contains("extension"));
        assert!(!u.update.names.values().any(|n| n == "extension"));
        let vals = string_values(&u);
        assert!(vals.contains(&"Sales".to_owned()));
        assert!(vals.contains(&"Offline".to_owned()));
        assert!(vals.contains(&"EXT#WAITING".to_owned()));
        assert!(vals.contains(&format!("2026-11-20T14:00:01.001000Z#{agent}")));

        // The stored profile reflects the heartbeat's snapshot already.
        let hb = &events[6];
        let (fields, _) = profile_fields(hb);
        let mut item: Item = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        item.insert("last_event_at".into(), sv("2026-11-20T14:10:02.002000Z"));
        item.insert("last_event_id".into(), sv(events[5].id.as_str()));
        item.insert("first_event_at".into(), sv("2026-11-20T14:00:01.001000Z"));
        let state = ProfileState::from_item(item.clone());
        // A newer heartbeat repeating the snapshot is still recorded as the
        // newest event, so one delivery per event and one batch of all of
        // them end with the same `last_event_*`.
        let (u, _) = plan_profile(&agent, Some(&state), &[hb]).unwrap_or_else(|| panic!("write"));
        let vals = string_values(&u);
        assert!(vals.contains(&hb.id.as_str().to_owned()));
        assert!(vals.contains(&"HEART_BEAT".to_owned()));
        // Delivered again, it costs nothing.
        let mut seen = item;
        seen.insert("last_event_at".into(), sv(hb.at.to_string()));
        seen.insert("last_event_id".into(), sv(hb.id.as_str()));
        let seen = ProfileState::from_item(seen);
        assert!(plan_profile(&agent, Some(&seen), &[hb]).is_none());
        // An older event changes nothing either.
        assert!(plan_profile(&agent, Some(&state), &[&events[3]]).is_none());
        // A newer state change does, guarded by the stored order.
        let (u, from) =
            plan_profile(&agent, Some(&state), &[&events[7]]).unwrap_or_else(|| panic!("write"));
        assert_eq!(from, Some(0));
        assert!(u.condition.text.contains("last_event_at < :newest_at"));
        assert!(!u.update.text.contains("gsi1"));
    }

    #[test]
    fn an_earlier_event_moves_the_waiting_position_only_while_waiting() {
        let events = day();
        let agent = events[0].agent.clone();
        let mut item = Item::new();
        item.insert("last_event_at".into(), sv("2026-11-20T17:45:01.000000Z"));
        item.insert("last_event_id".into(), sv(events[11].id.as_str()));
        item.insert("first_event_at".into(), sv("2026-11-20T15:00:00.000000Z"));
        item.insert("gsi1pk".into(), sv(WAITING));
        let state = ProfileState::from_item(item.clone());
        let (u, from) =
            plan_profile(&agent, Some(&state), &[&events[0]]).unwrap_or_else(|| panic!("write"));
        assert_eq!(from, None);
        assert!(u.condition.text.contains("gsi1pk = :waiting"));
        item.remove("gsi1pk");
        let state = ProfileState::from_item(item);
        let (u, _) =
            plan_profile(&agent, Some(&state), &[&events[0]]).unwrap_or_else(|| panic!("write"));
        assert!(!u.update.names.values().any(|n| n.starts_with("gsi1")));
    }
}
