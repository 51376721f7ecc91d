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

/// The placeholders (`:v`, `#n`) an expression text uses.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '#'))
        .filter(|t| t.starts_with(':') || t.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// DynamoDB refuses a value or name that neither expression uses (a
/// ValidationException for UpdateItem; a transaction is refused too).
fn assert_every_placeholder_used(u: &GuardedUpdate) {
    let used: BTreeSet<String> = placeholders(&u.update.text)
        .union(&placeholders(&u.condition.text))
        .cloned()
        .collect();
    let given = u
        .update
        .values
        .keys()
        .chain(u.update.names.keys())
        .chain(u.condition.values.keys())
        .chain(u.condition.names.keys());
    for p in given {
        assert!(
            used.contains(p),
            "{p} unused in {:?} / {:?}",
            u.update.text,
            u.condition.text
        );
    }
}

#[test]
fn every_planned_placeholder_is_used() {
    let events = day();
    let refs: Vec<&AgentEvent> = events.iter().collect();
    let agent = events[0].agent.clone();
    // Creating the profile.
    let (u, _) = plan_profile(&agent, None, &refs).unwrap_or_else(|| panic!("a write"));
    assert_every_placeholder_used(&u);
    // Updating it: newer events, an earlier first event, with and without a
    // stored first_event_at, waiting or not.
    let mut item = Item::new();
    item.insert("last_event_at".into(), sv("2026-11-20T14:30:00.000000Z"));
    item.insert("last_event_id".into(), sv(events[2].id.as_str()));
    for first in [Some("2026-11-20T15:00:00.000000Z"), None] {
        for waiting in [true, false] {
            let mut it = item.clone();
            if let Some(f) = first {
                it.insert("first_event_at".into(), sv(f));
            }
            if waiting {
                it.insert("gsi1pk".into(), sv(WAITING));
            }
            let state = ProfileState::from_item(it);
            for batch in [&refs[..], &refs[..1], &refs[8..]] {
                if let Some((u, _)) = plan_profile(&agent, Some(&state), batch) {
                    assert_every_placeholder_used(&u);
                }
            }
        }
    }
    // Daily claims, one event at a time and all together, day and night.
    for evs in [day(), night()] {
        let contributions: Vec<Contribution<'_>> = evs.iter().filter_map(contribution).collect();
        assert!(!contributions.is_empty());
        for c in &contributions {
            for u in plan_daily(&evs[0].agent, std::slice::from_ref(c)) {
                assert_every_placeholder_used(&u);
            }
        }
        for u in plan_daily(&evs[0].agent, &contributions) {
            assert_every_placeholder_used(&u);
        }
    }
    // Routing profiles.
    for (u, _) in plan_routing_profiles(&refs) {
        assert_every_placeholder_used(&u);
    }
}
