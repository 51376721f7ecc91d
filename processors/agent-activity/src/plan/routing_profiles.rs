//! Routing profiles: each one's newest view, written only over an older one.

use super::*;

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
