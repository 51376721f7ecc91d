//! Agents as text and JSON.

use std::collections::BTreeMap;

use agent_activity::plan::{
    ACW_MS, CONTACTS_HANDLED, CONTACTS_MISSED, HANDLE_MS, HOLD_MS, NPT_MS, ROUTABLE_MS,
};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use streamfold_shared::attrs::{n, s};
use streamfold_shared::executor::Item;

use super::DailyTotals;
use crate::render::{table, when};

/// `3723004` as `1:02:03.004`.
pub fn duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    format!(
        "{sign}{}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

pub(super) fn full_name(p: &Item) -> String {
    let name = format!(
        "{} {}",
        s(p, "first_name").unwrap_or_default(),
        s(p, "last_name").unwrap_or_default()
    );
    let name = name.trim();
    if name.is_empty() {
        "-".to_owned()
    } else {
        name.to_owned()
    }
}

pub(super) fn list_of_maps(item: &Item, name: &str) -> Vec<Item> {
    match item.get(name) {
        Some(AttributeValue::L(l)) => l
            .iter()
            .filter_map(|v| match v {
                AttributeValue::M(m) => Some(m.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The profile as text.
pub fn render_profile(p: &Item) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = |k: &str, v: String| rows.push(vec![k.to_owned(), v]);
    row("agent", s(p, "agent_id").unwrap_or("-").to_owned());
    row("username", s(p, "username").unwrap_or("-").to_owned());
    row("name", full_name(p));
    let status = match (s(p, "status"), s(p, "status_type")) {
        (Some(st), Some(t)) => format!("{st} ({t})"),
        (Some(st), None) => st.to_owned(),
        _ => "-".to_owned(),
    };
    row("status", status);
    row(
        "since",
        s(p, "status_since")
            .map(when)
            .unwrap_or_else(|| "-".to_owned()),
    );
    if let Some(next) = s(p, "next_status") {
        row("next status", next.to_owned());
    }
    row(
        "routing profile",
        s(p, "routing_profile").unwrap_or("-").to_owned(),
    );
    row("extension", s(p, "extension").unwrap_or("none").to_owned());
    let contacts: Vec<String> = list_of_maps(p, "contacts")
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                s(c, "channel").unwrap_or("?"),
                s(c, "state").unwrap_or("?"),
                s(c, "contact_id").unwrap_or("?")
            )
        })
        .collect();
    row(
        "contacts",
        if contacts.is_empty() {
            "none".to_owned()
        } else {
            contacts.join("; ")
        },
    );
    row(
        "last event",
        format!(
            "{} {} ({})",
            s(p, "last_event_at")
                .map(when)
                .unwrap_or_else(|| "-".to_owned()),
            s(p, "last_event_type").unwrap_or("-"),
            s(p, "last_event_id").unwrap_or("-")
        ),
    );
    table(&["FIELD", "VALUE"], &rows)
}

/// History items as a table.
pub fn render_history(items: &[Item]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let status = match (s(i, "previous_status"), s(i, "status")) {
                (Some(p), Some(c)) => format!("{p} → {c}"),
                (None, Some(c)) => c.to_owned(),
                _ => "-".to_owned(),
            };
            let spent = n(i, "previous_status_ms").map(duration).unwrap_or_default();
            let profile = match (s(i, "previous_routing_profile"), s(i, "routing_profile")) {
                (Some(p), Some(c)) => format!("{p} → {c}"),
                (None, Some(c)) => c.to_owned(),
                _ => "-".to_owned(),
            };
            let mut contacts: Vec<String> = list_of_maps(i, "contacts")
                .iter()
                .map(|c| {
                    format!(
                        "{} {}→{}",
                        s(c, "channel").unwrap_or("?"),
                        s(c, "from").unwrap_or("·"),
                        s(c, "to").unwrap_or("gone")
                    )
                })
                .collect();
            if i.contains_key("acw_started") {
                contacts.push("ACW start".to_owned());
            }
            for e in list_of_maps(i, "acw_ended") {
                contacts.push(format!(
                    "ACW end ({})",
                    n(&e, "acw_ms")
                        .map(duration)
                        .unwrap_or_else(|| "?".to_owned())
                ));
            }
            vec![
                s(i, "at").map(when).unwrap_or_default(),
                s(i, "event_type").unwrap_or("-").to_owned(),
                status,
                spent,
                profile,
                contacts.join(", "),
            ]
        })
        .collect();
    table(
        &[
            "AT",
            "EVENT",
            "STATUS",
            "IN PREVIOUS",
            "ROUTING PROFILE",
            "CONTACTS",
        ],
        &rows,
    )
}

/// One day's totals as a table.
pub fn render_daily(d: &DailyTotals) -> String {
    let mut rows: Vec<Vec<String>> = d
        .statuses
        .iter()
        .map(|(name, ms)| vec![name.clone(), duration(*ms), ms.to_string()])
        .collect();
    rows.push(vec![
        "TOTAL".to_owned(),
        duration(d.total_ms),
        d.total_ms.to_string(),
    ]);
    let mut centre: Vec<Vec<String>> = [
        ("handling contacts", HANDLE_MS),
        ("  of which on hold", HOLD_MS),
        ("after-contact work", ACW_MS),
        ("routable", ROUTABLE_MS),
        ("non-productive", NPT_MS),
    ]
    .iter()
    .map(|(label, m)| {
        let ms = d.metric(m);
        vec![(*label).to_owned(), duration(ms), ms.to_string()]
    })
    .collect();
    centre.push(vec![
        "contacts handled".to_owned(),
        d.metric(CONTACTS_HANDLED).to_string(),
        String::new(),
    ]);
    centre.push(vec![
        "contacts missed".to_owned(),
        d.metric(CONTACTS_MISSED).to_string(),
        String::new(),
    ]);
    centre.push(vec![
        "occupancy".to_owned(),
        d.occupancy()
            .map(|o| format!("{:.1}%", o * 100.0))
            .unwrap_or_else(|| "-".to_owned()),
        String::new(),
    ]);
    format!(
        "{} (agent {}, {} events counted)\n{}{}",
        d.date,
        d.agent_id,
        d.events,
        table(&["STATUS", "TIME", "MS"], &rows),
        table(&["CONTACT CENTRE", "TIME", "MS"], &centre)
    )
}

pub(super) fn daily_json(d: &DailyTotals) -> Value {
    serde_json::json!({
        "agent_id": d.agent_id,
        "date": d.date,
        "status_ms": d.statuses,
        "total_ms": d.total_ms,
        "events": d.events,
        "metrics": d.metrics,
        "occupancy": d.occupancy(),
    })
}

pub(super) fn to_json(item: &Item) -> Value {
    let sorted: BTreeMap<String, AttributeValue> =
        item.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    crate::table::to_json(&sorted)
}
