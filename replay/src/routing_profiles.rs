//! `streamfold routing-profiles list|show`: the routing profiles
//! agent-activity keeps from the agent events (`RP#{id}` / `RP` items in
//! the gsi2 directory `ROUTING_PROFILES`: name, inbound queues, default
//! outbound queue, as the newest event showed them), with the agents on
//! each: the profiles whose `routing_profile_arn` ends in its id, with their
//! derived state (so the roster is exactly the profiles, which move only
//! forward).

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Subcommand;
use serde_json::{Value, json};
use streamfold_shared::attrs::s;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::Timestamp;

use crate::agents::{DEFAULT_STALE_AFTER_SECS, WallboardRow, list, wallboard};
use crate::app::App;
use crate::render::{table, when};

/// `streamfold routing-profiles …`
#[derive(Debug, Subcommand)]
pub enum RoutingProfilesCmd {
    /// Every routing profile the events showed, with its agents by state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One routing profile (id or name): queues and agents.
    Show {
        /// Routing profile id (the end of its ARN) or name.
        rp: String,
        #[arg(long)]
        json: bool,
    },
}

/// A routing profile and the agents on it.
#[derive(Debug, Clone)]
pub struct Roster {
    pub id: String,
    pub name: String,
    pub arn: Option<String>,
    /// (name, arn, channels)
    pub inbound_queues: Vec<(String, String, Vec<String>)>,
    pub default_outbound_queue: Option<String>,
    pub last_event_at: Option<String>,
    pub agents: Vec<WallboardRow>,
}

fn queue(v: &AttributeValue) -> Option<(String, String, Vec<String>)> {
    let m = v.as_m().ok()?;
    let channels = match m.get("channels") {
        Some(AttributeValue::L(l)) => l.iter().filter_map(|c| c.as_s().ok().cloned()).collect(),
        _ => Vec::new(),
    };
    Some((
        s(m, "name").unwrap_or("-").to_owned(),
        s(m, "arn").unwrap_or("-").to_owned(),
        channels,
    ))
}

/// The routing-profile items of the directory.
pub async fn items(app: &App) -> Result<Vec<Item>> {
    crate::agents::read::directory_items(app, agent_activity::plan::ROUTING_PROFILES)
        .await
        .context("reading the routing profiles")
}

/// Every routing profile with its agents (now, for `stale`).
pub async fn rosters(app: &App) -> Result<Vec<Roster>> {
    let rps = items(app).await?;
    let profiles = list(app).await?;
    let rows = wallboard(
        &profiles,
        Timestamp::now().epoch_millis(),
        DEFAULT_STALE_AFTER_SECS * 1000,
        None,
    );
    Ok(build(&rps, &profiles, &rows))
}

/// The rosters from the items, the agent profiles and their wallboard rows.
pub fn build(rps: &[Item], profiles: &[Item], rows: &[WallboardRow]) -> Vec<Roster> {
    let rp_of = |agent_id: &str| -> Option<String> {
        profiles
            .iter()
            .find(|p| s(p, "agent_id") == Some(agent_id))
            .and_then(|p| s(p, "routing_profile_arn"))
            .and_then(|a| a.rsplit_once("/routing-profile/"))
            .map(|(_, id)| id.to_owned())
    };
    let mut out: Vec<Roster> = rps
        .iter()
        .map(|rp| {
            let id = s(rp, "routing_profile_id").unwrap_or("-").to_owned();
            Roster {
                name: s(rp, "name").unwrap_or("-").to_owned(),
                arn: s(rp, "arn").map(str::to_owned),
                inbound_queues: match rp.get("inbound_queues") {
                    Some(AttributeValue::L(l)) => l.iter().filter_map(queue).collect(),
                    _ => Vec::new(),
                },
                default_outbound_queue: rp
                    .get("default_outbound_queue")
                    .and_then(queue)
                    .map(|q| q.0),
                last_event_at: s(rp, "last_event_at").map(str::to_owned),
                agents: rows
                    .iter()
                    .filter(|r| rp_of(&r.agent_id).as_deref() == Some(id.as_str()))
                    .cloned()
                    .collect(),
                id,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    out
}

fn shown(r: &WallboardRow) -> String {
    if r.stale {
        "stale".to_owned()
    } else {
        r.state.clone()
    }
}

fn by_state(r: &Roster) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in &r.agents {
        *m.entry(shown(a)).or_insert(0) += 1;
    }
    m
}

/// A roster as JSON.
pub fn roster_json(r: &Roster) -> Value {
    json!({
        "routing_profile_id": r.id,
        "name": r.name,
        "arn": r.arn,
        "inbound_queues": r.inbound_queues.iter().map(|(n, a, c)| json!({"name": n, "arn": a, "channels": c})).collect::<Vec<_>>(),
        "default_outbound_queue": r.default_outbound_queue,
        "last_event_at": r.last_event_at,
        "agents_by_state": by_state(r),
        "agents": r.agents,
    })
}

/// The list as text.
pub fn render_list(rs: &[Roster]) -> String {
    let rows: Vec<Vec<String>> = rs
        .iter()
        .map(|r| {
            let states: Vec<String> = by_state(r)
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            vec![
                r.id.clone(),
                r.name.clone(),
                r.inbound_queues
                    .iter()
                    .map(|q| q.0.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                r.default_outbound_queue.clone().unwrap_or_default(),
                r.agents.len().to_string(),
                states.join(", "),
            ]
        })
        .collect();
    format!(
        "{}{} routing profiles\n",
        table(
            &[
                "ID",
                "NAME",
                "INBOUND QUEUES",
                "OUTBOUND",
                "AGENTS",
                "BY STATE"
            ],
            &rows
        ),
        rs.len()
    )
}

/// One roster as text.
pub fn render_show(r: &Roster) -> String {
    let queues: Vec<Vec<String>> = r
        .inbound_queues
        .iter()
        .map(|(n, a, c)| vec![n.clone(), c.join(", "), a.clone()])
        .collect();
    let agents: Vec<Vec<String>> = r
        .agents
        .iter()
        .map(|a| {
            vec![
                a.username.clone(),
                shown(a),
                a.state_since.as_deref().map(when).unwrap_or_default(),
                a.channel.clone().unwrap_or_default(),
            ]
        })
        .collect();
    format!(
        "{} ({})\n  arn: {}\n  default outbound queue: {}\n  as of the event at {}\n{}{}{} agents\n",
        r.name,
        r.id,
        r.arn.as_deref().unwrap_or("-"),
        r.default_outbound_queue.as_deref().unwrap_or("-"),
        r.last_event_at.as_deref().map(when).unwrap_or_default(),
        table(&["INBOUND QUEUE", "CHANNELS", "ARN"], &queues),
        table(&["USERNAME", "STATE", "SINCE", "CHANNEL"], &agents),
        r.agents.len()
    )
}

/// Runs a `routing-profiles` command.
pub async fn run(app: &App, cmd: RoutingProfilesCmd) -> Result<ExitCode> {
    let all = rosters(app).await?;
    match cmd {
        RoutingProfilesCmd::List { json } => {
            if json {
                let v: Vec<Value> = all.iter().map(roster_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_list(&all));
            }
        }
        RoutingProfilesCmd::Show { rp, json } => {
            let Some(r) = all.iter().find(|r| r.id == rp || r.name == rp) else {
                bail!("no routing profile {rp} (neither an id nor a name the agent events showed)");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&roster_json(r))?);
            } else {
                print!("{}", render_show(r));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
