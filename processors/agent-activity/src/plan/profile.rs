//! The profile: one guarded update per batch, the newest event's view.

use super::*;

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
                // Only where the condition uses them: DynamoDB refuses an
                // unused value.
                expr = expr
                    .s(":newest_at", newest_at.as_str())
                    .s(":newest_id", newest.id.as_str());
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
                match &st.first_event_at {
                    Some(_) => {
                        expr = expr.s(":first", oldest_at.as_str());
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
