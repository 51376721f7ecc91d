//! `streamfold agents show|list|history|daily`: what agent-activity folded
//! out of Connect's agent events, read back from the table; and the Kinesis
//! side of `streamfold replay` (agent events from files).
//!
//! An AGENT argument is an agent id (the last segment of the AgentARN) or a
//! username, found through the agent directory (gsi2: `gsi2pk = AGENTS`,
//! `gsi2sk = {username}`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use agent_activity::plan::{
    ACW_MS, CONTACTS_HANDLED, CONTACTS_MISSED, HANDLE_MS, HOLD_MS, METRICS, NPT_MS, ROUTABLE_MS,
    STATUS_MS_PREFIX,
};
use anyhow::{Context as _, Result, anyhow, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use clap::Subcommand;
use serde_json::Value;
use streamfold_shared::attrs::{n, s, sv};
use streamfold_shared::engine::Counts;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{AgentId, Timestamp};
use streamfold_shared::keys::Key;

use crate::app::App;
use crate::input::{Format, detect_format};
use crate::pipeline::{Pipeline, ProcessorKind};
use crate::render::{table, when};
use crate::replay::ReplayOptions;

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
    Remove(crate::reconcile_cmd::RemoveArgs),
    /// Bring the profiles in line with the Connect instance's users
    /// (create new, delete gone); optionally export the extension
    /// directory as CSV to S3.
    Reconcile(crate::reconcile_cmd::ReconcileArgs),
}

/// Runs an `agents` command.
pub async fn run(app: &App, cmd: AgentsCmd) -> Result<ExitCode> {
    match cmd {
        AgentsCmd::Remove(args) => return crate::reconcile_cmd::remove(app, args).await,
        AgentsCmd::Reconcile(args) => return crate::reconcile_cmd::reconcile(app, args).await,
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

fn sdk<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + Send + Sync + 'static>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e))
}

/// The agent id of an id or username.
pub async fn resolve(app: &App, agent: &str) -> Result<AgentId> {
    let profile = find_profile(app, agent).await?;
    if let Some(id) = profile.as_ref().and_then(|p| s(p, "agent_id")) {
        return Ok(AgentId::new(id)?);
    }
    // An agent without a profile may still have history.
    AgentId::new(agent).map_err(|e| anyhow!("no agent {agent}: {e}"))
}

/// The profile of an agent id or, failing that, a username (gsi2).
pub async fn find_profile(app: &App, agent: &str) -> Result<Option<Item>> {
    if let Ok(id) = AgentId::new(agent)
        && let Some(item) = app.ctx.exec.get(&Key::Profile(id), true).await?
    {
        return Ok(Some(item));
    }
    let out = app
        .ddb()
        .query()
        .table_name(&app.table)
        .index_name("gsi2")
        .key_condition_expression("gsi2pk = :p AND gsi2sk = :u")
        .expression_attribute_values(":p", sv(agent_activity::plan::DIRECTORY))
        .expression_attribute_values(":u", sv(agent))
        .send()
        .await
        .map_err(sdk)?;
    Ok(out.items.unwrap_or_default().into_iter().next())
}

/// Every profile of the directory, by username.
pub async fn list(app: &App) -> Result<Vec<Item>> {
    let mut pages = app
        .ddb()
        .query()
        .table_name(&app.table)
        .index_name("gsi2")
        .key_condition_expression("gsi2pk = :p")
        .expression_attribute_values(":p", sv(agent_activity::plan::DIRECTORY))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        out.extend(page.map_err(sdk)?.items.unwrap_or_default());
    }
    Ok(out)
}

fn parse_day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("{text:?} is not a day (yyyy-mm-dd)"))
}

/// A history bound as a sort-key prefix: a day or any RFC 3339 time
/// (normalised). `end` makes a day inclusive.
fn bound(text: &str, end: bool) -> Result<String> {
    if let Ok(day) = parse_day(text) {
        let day = if end {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        return Ok(format!("ACT#{}", day.format("%Y-%m-%d")));
    }
    let ts = Timestamp::parse(text).with_context(|| format!("--from/--to {text:?}"))?;
    Ok(format!("ACT#{ts}"))
}

/// An agent's history items, oldest first, optionally within [from, to).
pub async fn history(
    app: &App,
    agent: &AgentId,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<Item>> {
    let lo = from
        .map(|f| bound(f, false))
        .transpose()?
        .unwrap_or_else(|| "ACT#".to_owned());
    // `$` sorts right after `#`: the end of every ACT# key.
    let hi = to
        .map(|t| bound(t, true))
        .transpose()?
        .unwrap_or_else(|| "ACT$".to_owned());
    let mut pages = app
        .ddb()
        .query()
        .table_name(&app.table)
        .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
        .expression_attribute_values(":pk", sv(Key::Profile(agent.clone()).pk()))
        .expression_attribute_values(":lo", sv(lo))
        .expression_attribute_values(":hi", sv(hi.clone()))
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        out.extend(
            page.map_err(sdk)?
                .items
                .unwrap_or_default()
                .into_iter()
                // BETWEEN is inclusive; the upper bound is exclusive.
                .filter(|i| s(i, "sk").is_some_and(|sk| sk < hi.as_str())),
        );
    }
    Ok(out)
}

/// One day's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyTotals {
    pub agent_id: String,
    pub date: String,
    /// Milliseconds per status name.
    pub statuses: BTreeMap<String, i64>,
    pub total_ms: i64,
    /// How many events were counted.
    pub events: usize,
    /// The contact-centre counters (`handle_ms`, `hold_ms`, `acw_ms`,
    /// `routable_ms`, `npt_ms`, `contacts_handled`, `contacts_missed`),
    /// zero when absent.
    pub metrics: BTreeMap<&'static str, i64>,
}

impl DailyTotals {
    /// A counter of the day (zero when absent).
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics.get(name).copied().unwrap_or(0)
    }

    /// (handle_ms + acw_ms) / routable_ms, at most 1; `None` without
    /// routable time.
    pub fn occupancy(&self) -> Option<f64> {
        occupancy(
            self.metric(HANDLE_MS),
            self.metric(ACW_MS),
            self.metric(ROUTABLE_MS),
        )
    }
}

/// (handle_ms + acw_ms) / routable_ms, at most 1; `None` without routable
/// time.
pub fn occupancy(handle_ms: i64, acw_ms: i64, routable_ms: i64) -> Option<f64> {
    (routable_ms > 0).then(|| ((handle_ms + acw_ms) as f64 / routable_ms as f64).min(1.0))
}

impl DailyTotals {
    pub fn from_item(item: &Item) -> Self {
        let statuses = item
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(STATUS_MS_PREFIX)?;
                match v {
                    AttributeValue::N(n) => n.parse::<i64>().ok().map(|ms| (name.to_owned(), ms)),
                    _ => None,
                }
            })
            .collect();
        Self {
            agent_id: s(item, "agent_id").unwrap_or_default().to_owned(),
            date: s(item, "date").unwrap_or_default().to_owned(),
            statuses,
            total_ms: n(item, "total_ms").unwrap_or(0),
            events: match item.get("claimed") {
                Some(AttributeValue::Ss(ids)) => ids.len(),
                _ => 0,
            },
            metrics: METRICS
                .iter()
                .map(|m| (*m, n(item, m).unwrap_or(0)))
                .collect(),
        }
    }
}

/// An agent's daily totals: one day, or every day (oldest first).
pub async fn daily(app: &App, agent: &AgentId, day: Option<NaiveDate>) -> Result<Vec<DailyTotals>> {
    if let Some(day) = day {
        let key = Key::Daily {
            agent: agent.clone(),
            day,
        };
        return Ok(app
            .ctx
            .exec
            .get(&key, true)
            .await?
            .iter()
            .map(DailyTotals::from_item)
            .collect());
    }
    let mut pages = app
        .ddb()
        .query()
        .table_name(&app.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :day)")
        .expression_attribute_values(":pk", sv(Key::Profile(agent.clone()).pk()))
        .expression_attribute_values(":day", sv("DAY#"))
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        out.extend(
            page.map_err(sdk)?
                .items
                .unwrap_or_default()
                .iter()
                .map(DailyTotals::from_item),
        );
    }
    Ok(out)
}

/// The report of a day (`agents report`) as HTML: every agent of the
/// directory (on the routing profile given) with history or totals that day.
pub async fn report(app: &App, day: NaiveDate, routing_profile: Option<&str>) -> Result<String> {
    let profiles = list(app).await?;
    let rows = wallboard(&profiles, 0, i64::MAX, routing_profile);
    let text = day.format("%Y-%m-%d").to_string();
    let mut agents = Vec::new();
    for r in &rows {
        let Ok(id) = AgentId::new(r.agent_id.as_str()) else {
            continue;
        };
        let history = history(app, &id, Some(&text), Some(&text)).await?;
        let totals = daily(app, &id, Some(day)).await?.into_iter().next();
        if history.is_empty() && totals.is_none() {
            continue;
        }
        agents.push(crate::report::AgentDay {
            username: r.username.clone(),
            routing_profile: r.routing_profile.clone(),
            history,
            totals,
        });
    }
    Ok(crate::report::render_html(day, routing_profile, &agents))
}

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
fn shown(r: &WallboardRow) -> &str {
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

fn wallboard_json(rows: &[WallboardRow]) -> Value {
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

fn full_name(p: &Item) -> String {
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

fn list_of_maps(item: &Item, name: &str) -> Vec<Item> {
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

fn daily_json(d: &DailyTotals) -> Value {
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

fn to_json(item: &Item) -> Value {
    let sorted: BTreeMap<String, AttributeValue> =
        item.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    crate::table::to_json(&sorted)
}

// ---- replay of Kinesis records ------------------------------------------------

/// True when `replay` should read these files as Kinesis records (agent
/// events): the processors asked for read Kinesis, the format is a Kinesis
/// one, or every file looks like one.
pub fn is_kinesis_replay(
    files: &[PathBuf],
    format: Format,
    processors: &[ProcessorKind],
) -> Result<bool> {
    if !processors.is_empty() {
        let kinesis = processors.iter().all(|p| p.reads_kinesis());
        let table = processors.iter().all(|p| p.reads_table_stream());
        if kinesis || table {
            return Ok(kinesis);
        }
    }
    if format != Format::Auto {
        return Ok(format.is_kinesis());
    }
    for f in files {
        if !detect_format(f, format)?.is_kinesis() {
            return Ok(false);
        }
    }
    Ok(!files.is_empty())
}

/// Replays files of Kinesis records (Lambda Kinesis events, JSON Lines of
/// agent events) through the Kinesis processors, in batches, with Lambda's
/// failure semantics: [`crate::replay::run`] with these files read as
/// Kinesis records (no progress bar, no Ctrl-C handling).
pub async fn replay_kinesis(
    pipeline: &Pipeline,
    files: &[PathBuf],
    format: Format,
    batch_size: usize,
    max_retries: u32,
) -> Result<Counts> {
    let mut kinesis_only = pipeline.clone();
    kinesis_only.kinds.retain(|k| k.reads_kinesis());
    let format = if format == Format::Auto {
        // As before the unified replay: a file that is not a Lambda Kinesis
        // event is read as JSON Lines of agent events.
        let mut formats = Vec::with_capacity(files.len());
        for f in files {
            formats.push(detect_format(f, Format::Auto)?);
        }
        if formats.iter().all(|f| f.is_kinesis()) {
            Format::Auto
        } else {
            Format::AgentEventsJsonl
        }
    } else {
        format
    };
    let opts = ReplayOptions {
        files: files.to_vec(),
        format,
        batch_size,
        max_retries,
        restore_sources: false,
        progress: false,
    };
    Ok(
        crate::replay::run(&kinesis_only, &opts, crate::replay::no_stop())
            .await?
            .counts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(user: &str, rp: &str, state: &str, last: &str) -> Item {
        Item::from([
            ("agent_id".to_owned(), sv(format!("id-{user}"))),
            ("username".to_owned(), sv(user)),
            ("routing_profile".to_owned(), sv(rp)),
            ("state".to_owned(), sv(state)),
            ("last_event_at".to_owned(), sv(last)),
        ])
    }

    #[test]
    fn stale_is_logged_in_and_silent_past_the_threshold() {
        let now = Timestamp::parse("2026-11-20T15:00:00Z")
            .map(|t| t.epoch_millis())
            .unwrap_or_default();
        let limit = DEFAULT_STALE_AFTER_SECS * 1000;
        let fresh = profile("a", "Sales", "available", "2026-11-20T14:56:00.000000Z");
        let silent = profile("b", "Sales", "on_contact", "2026-11-20T14:54:59.000000Z");
        let gone = profile("c", "Support", "offline", "2026-11-20T09:00:00.000000Z");
        assert!(!is_stale(&fresh, now, limit));
        assert!(is_stale(&silent, now, limit));
        // Exactly at the threshold: not yet.
        let edge = profile("d", "Sales", "Lunch", "2026-11-20T14:55:00.000000Z");
        assert!(!is_stale(&edge, now, limit));
        assert!(!is_stale(&gone, now, limit), "offline is never stale");
        let rows = wallboard(&[gone, silent, fresh, edge], now, limit, None);
        let names: Vec<&str> = rows.iter().map(|r| r.username.as_str()).collect();
        assert_eq!(names, ["a", "b", "d", "c"]);
        let counts = wallboard_counts(&rows);
        assert_eq!(counts["Sales"]["stale"], 1);
        assert_eq!(counts["Sales"]["available"], 1);
        assert_eq!(counts["Support"]["offline"], 1);
        let text = render_wallboard(&rows);
        assert!(text.contains("on_contact (stale)"), "{text}");
        let only = wallboard(&rows_items(), now, limit, Some("Support"));
        assert!(only.iter().all(|r| r.routing_profile == "Support"));
    }

    fn rows_items() -> Vec<Item> {
        vec![
            profile("x", "Support", "available", "2026-11-20T14:59:00.000000Z"),
            profile("y", "Sales", "available", "2026-11-20T14:59:00.000000Z"),
        ]
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(0), "0:00:00.000");
        assert_eq!(duration(3_723_004), "1:02:03.004");
        assert_eq!(duration(50_405_310), "14:00:05.310");
    }

    #[test]
    fn history_bounds() {
        assert_eq!(
            bound("2026-11-20", false).ok().as_deref(),
            Some("ACT#2026-11-20")
        );
        assert_eq!(
            bound("2026-11-20", true).ok().as_deref(),
            Some("ACT#2026-11-21")
        );
        assert_eq!(
            bound("2026-11-20T15:00:00+01:00", false).ok().as_deref(),
            Some("ACT#2026-11-20T14:00:00.000000Z")
        );
        assert!(bound("soon", false).is_err());
    }

    #[test]
    fn daily_items_read_back() {
        let item = Item::from([
            ("agent_id".to_owned(), sv("a")),
            ("date".to_owned(), sv("2026-11-20")),
            ("ms_Available".to_owned(), AttributeValue::N("10".into())),
            ("ms_Lunch".to_owned(), AttributeValue::N("5".into())),
            ("total_ms".to_owned(), AttributeValue::N("15".into())),
            (
                "claimed".to_owned(),
                AttributeValue::Ss(vec!["e1".into(), "e2".into()]),
            ),
        ]);
        let d = DailyTotals::from_item(&item);
        assert_eq!(d.statuses.len(), 2);
        assert_eq!(d.total_ms, 15);
        assert_eq!(d.events, 2);
        assert!(render_daily(&d).contains("Lunch"));
    }
}
