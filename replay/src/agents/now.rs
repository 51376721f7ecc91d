//! `agents now`: the wallboard.

use std::collections::BTreeMap;

use serde_json::Value;
use streamfold_shared::attrs::s;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::Timestamp;

use crate::render::{table, when};

/// The default of `agents now --stale-after`: twice the heartbeat
/// interval (120 s) plus a minute.
pub const DEFAULT_STALE_AFTER_SECS: i64 = 300;

/// One agent on the wallboard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WallboardRow {
    pub agent_id: String,
    pub username: String,
    pub routing_profile: String,
    /// The derived state (`offline`, `available`, `on_contact`, `on_hold`,
    /// `acw`, `missed` or a custom status's name).
    pub state: String,
    pub state_since: Option<String>,
    pub channel: Option<String>,
    /// Logged in, but no event for longer than the threshold.
    pub stale: bool,
    pub last_event_at: Option<String>,
}

/// The derived state of a stored profile (a profile written before
/// `state` existed falls back to its status).
pub fn profile_state(p: &Item) -> String {
    if let Some(st) = s(p, "state") {
        return st.to_owned();
    }
    match s(p, "status_type") {
        Some("ROUTABLE") => "available".to_owned(),
        Some("CUSTOM") => s(p, "status").unwrap_or("custom").to_owned(),
        _ => "offline".to_owned(),
    }
}

/// True when the agent is logged in (not offline) and its newest event is
/// older than `stale_ms` at `now_ms`. Computed when read, never written.
pub fn is_stale(p: &Item, now_ms: i64, stale_ms: i64) -> bool {
    if profile_state(p) == "offline" {
        return false;
    }
    match s(p, "last_event_at").and_then(|t| Timestamp::parse(t).ok()) {
        Some(last) => now_ms - last.epoch_millis() > stale_ms,
        None => true,
    }
}

/// The wallboard's rows, by routing profile then username; only the
/// routing profile given (by name or by the id ending its ARN), if any.
pub fn wallboard(
    profiles: &[Item],
    now_ms: i64,
    stale_ms: i64,
    routing_profile: Option<&str>,
) -> Vec<WallboardRow> {
    let mut rows: Vec<WallboardRow> = profiles
        .iter()
        .filter(|p| {
            routing_profile.is_none_or(|rp| {
                s(p, "routing_profile") == Some(rp)
                    || s(p, "routing_profile_arn")
                        .and_then(|a| a.rsplit('/').next())
                        .is_some_and(|id| id == rp)
            })
        })
        .map(|p| WallboardRow {
            agent_id: s(p, "agent_id").unwrap_or("-").to_owned(),
            username: s(p, "username").unwrap_or("-").to_owned(),
            routing_profile: s(p, "routing_profile").unwrap_or("-").to_owned(),
            state: profile_state(p),
            state_since: s(p, "state_since")
                .or(s(p, "status_since"))
                .map(str::to_owned),
            channel: s(p, "state_channel").map(str::to_owned),
            stale: is_stale(p, now_ms, stale_ms),
            last_event_at: s(p, "last_event_at").map(str::to_owned),
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.routing_profile, &a.username, &a.agent_id).cmp(&(
            &b.routing_profile,
            &b.username,
            &b.agent_id,
        ))
    });
    rows
}

/// The state a wallboard counts an agent under: `stale` wins.
pub(super) fn shown(r: &WallboardRow) -> &str {
    if r.stale { "stale" } else { r.state.as_str() }
}

/// Counts by shown state per routing profile.
pub fn wallboard_counts(rows: &[WallboardRow]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for r in rows {
        *out.entry(r.routing_profile.clone())
            .or_default()
            .entry(shown(r).to_owned())
            .or_insert(0) += 1;
    }
    out
}

pub(super) fn wallboard_json(rows: &[WallboardRow]) -> Value {
    serde_json::json!({
        "counts": wallboard_counts(rows),
        "agents": rows,
    })
}

/// The wallboard as text.
pub fn render_wallboard(rows: &[WallboardRow]) -> String {
    let counts: Vec<Vec<String>> = wallboard_counts(rows)
        .into_iter()
        .map(|(rp, by)| {
            let total: usize = by.values().sum();
            let parts: Vec<String> = by.iter().map(|(st, n)| format!("{st} {n}")).collect();
            vec![rp, total.to_string(), parts.join(", ")]
        })
        .collect();
    let agents: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.routing_profile.clone(),
                r.username.clone(),
                if r.stale {
                    format!("{} (stale)", r.state)
                } else {
                    r.state.clone()
                },
                r.state_since.as_deref().map(when).unwrap_or_default(),
                r.channel.clone().unwrap_or_default(),
                r.last_event_at.as_deref().map(when).unwrap_or_default(),
            ]
        })
        .collect();
    format!(
        "{}{}{} agents\n",
        table(&["ROUTING PROFILE", "AGENTS", "BY STATE"], &counts),
        table(
            &[
                "ROUTING PROFILE",
                "USERNAME",
                "STATE",
                "SINCE",
                "CHANNEL",
                "LAST EVENT"
            ],
            &agents
        ),
        rows.len()
    )
}
