//! `streamfold agents show|list|history|daily`: what agent-activity folded
//! out of Connect's agent events, read back from the table; `agents now`
//! (the wallboard), `agents report`, `agents remove` and `agents reconcile`.
//!
//! An AGENT argument is an agent id (the last segment of the AgentARN) or a
//! username, found through the agent directory (gsi2: `gsi2pk = AGENTS`,
//! `gsi2sk = {username}`).

mod now;
pub(crate) mod read;
mod reconcile;
mod render;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use serde_json::Value;
use streamfold_shared::attrs::s;
use streamfold_shared::ids::Timestamp;

use crate::app::App;
use crate::render::table;

/// Kinesis replay moved to [`crate::replay::kinesis`]; kept here too.
pub use crate::replay::kinesis::{is_kinesis_replay, replay_kinesis};
use now::wallboard_json;
pub use now::*;
use read::parse_day;
pub use read::*;
pub use reconcile::{ReconcileArgs, RemoveArgs};
pub use render::*;
use render::{daily_json, full_name, to_json};

/// `streamfold agents …`
#[derive(Debug, Subcommand)]
pub enum AgentsCmd {
    /// One agent's profile: status, routing profile, contacts, extension.
    Show {
        /// Agent id or username.
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// Every agent of the directory, by username.
    List {
        #[arg(long)]
        json: bool,
    },
    /// An agent's history, oldest first.
    History {
        /// Agent id or username.
        agent: String,
        /// From this time (RFC 3339) or day (yyyy-mm-dd), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// Up to this time (RFC 3339, exclusive) or day (yyyy-mm-dd, inclusive).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// An agent's time per status per UTC day.
    Daily {
        /// Agent id or username.
        agent: String,
        /// One day (yyyy-mm-dd); default every day.
        #[arg(long)]
        date: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A wallboard: agents by derived state per routing profile, then each
    /// agent with state, since, contact channel (`stale` when logged in
    /// and silent for longer than --stale-after).
    Now {
        /// Only this routing profile (name or id).
        #[arg(long = "routing-profile")]
        routing_profile: Option<String>,
        /// An agent logged in whose newest event is older than this many
        /// seconds is shown `stale` (twice the 120 s heartbeat, plus margin).
        #[arg(long, default_value_t = DEFAULT_STALE_AFTER_SECS, env = "STREAMFOLD_STALE_AFTER")]
        stale_after: i64,
        /// Evaluate at this time (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A picture of one day: one self-contained HTML file (inline SVG and
    /// CSS) with each agent's timeline and totals, and the routing
    /// profiles' occupancy.
    Report {
        /// The UTC day (yyyy-mm-dd).
        #[arg(long)]
        date: String,
        /// Only the agents on this routing profile (name or id).
        #[arg(long = "routing-profile")]
        routing_profile: Option<String>,
        /// The HTML file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Delete an agent's profile; the extensions processor frees its
    /// extension (and hands it to the longest-waiting agent).
    Remove(reconcile::RemoveArgs),
    /// Bring the profiles in line with the Connect instance's users
    /// (create new, delete gone); optionally export the extension
    /// directory as CSV to S3.
    Reconcile(reconcile::ReconcileArgs),
}

/// Runs an `agents` command.
pub async fn run(app: &App, cmd: AgentsCmd) -> Result<ExitCode> {
    match cmd {
        AgentsCmd::Remove(args) => return reconcile::remove(app, args).await,
        AgentsCmd::Reconcile(args) => return reconcile::reconcile(app, args).await,
        AgentsCmd::Show { agent, json } => {
            let Some(profile) = find_profile(app, &agent).await? else {
                bail!("no agent {agent} (neither an agent id nor a username in the directory)");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&to_json(&profile))?);
            } else {
                print!("{}", render_profile(&profile));
            }
        }
        AgentsCmd::List { json } => {
            let agents = list(app).await?;
            if json {
                let all: Vec<Value> = agents.iter().map(to_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                let rows: Vec<Vec<String>> = agents
                    .iter()
                    .map(|p| {
                        vec![
                            s(p, "username").unwrap_or("-").to_owned(),
                            full_name(p),
                            s(p, "status").unwrap_or("-").to_owned(),
                            s(p, "routing_profile").unwrap_or("-").to_owned(),
                            s(p, "extension").unwrap_or("-").to_owned(),
                            s(p, "agent_id").unwrap_or("-").to_owned(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "USERNAME",
                            "NAME",
                            "STATUS",
                            "ROUTING PROFILE",
                            "EXT",
                            "AGENT ID"
                        ],
                        &rows
                    )
                );
                println!("{} agents", agents.len());
            }
        }
        AgentsCmd::History {
            agent,
            from,
            to,
            json,
        } => {
            let id = resolve(app, &agent).await?;
            let items = history(app, &id, from.as_deref(), to.as_deref()).await?;
            if json {
                let all: Vec<Value> = items.iter().map(to_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", render_history(&items));
                println!("{} entries", items.len());
            }
        }
        AgentsCmd::Now {
            routing_profile,
            stale_after,
            at,
            json,
        } => {
            let now = match at.as_deref() {
                Some(a) => Timestamp::parse(a)
                    .map_err(|e| anyhow!("--at {a:?} is not a time (RFC 3339): {e}"))?,
                None => Timestamp::now(),
            };
            let profiles = list(app).await?;
            let rows = wallboard(
                &profiles,
                now.epoch_millis(),
                stale_after.saturating_mul(1000),
                routing_profile.as_deref(),
            );
            if json {
                println!("{}", serde_json::to_string_pretty(&wallboard_json(&rows))?);
            } else {
                print!("{}", render_wallboard(&rows));
            }
        }
        AgentsCmd::Report {
            date,
            routing_profile,
            out,
        } => {
            let day = parse_day(&date)?;
            let html = report(app, day, routing_profile.as_deref()).await?;
            std::fs::write(&out, html)
                .with_context(|| format!("writing the report to {}", out.display()))?;
            println!("wrote {}", out.display());
        }
        AgentsCmd::Daily { agent, date, json } => {
            let id = resolve(app, &agent).await?;
            let day = date.as_deref().map(parse_day).transpose()?;
            let days = daily(app, &id, day).await?;
            if json {
                let all: Vec<Value> = days.iter().map(daily_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if days.is_empty() {
                println!("no daily totals for agent {id}");
            } else {
                for d in &days {
                    print!("{}", render_daily(d));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
