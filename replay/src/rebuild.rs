//! `streamfold rebuild previews|check [--repair]`: projections recomputed
//! from their sources, the way back when a view is lost or wrong.
//!
//! - previews: each group's newest message (consistent read) gives the two
//!   preview items it should have; a group that disagrees is rewritten with
//!   the processor's own guarded transaction, and a preview no group shows
//!   (an orphan) is deleted under the condition that its group still does
//!   not show it. Both are safe while the pipeline runs: a concurrent
//!   processor write either wins the condition or is converged to.
//! - extensions: the pool census (no extension on two agents, no agent with
//!   two, free + assigned = pool); repair hands free extensions to waiting
//!   agents.
//! - daily totals: per agent and UTC day, the history's status durations
//!   (split at midnight) against the DAY item's counters; repair rewrites
//!   the DAY item from the history under the condition that its claims did
//!   not change meanwhile. Days whose history has expired are skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context as _, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use streamfold_shared::attrs::{n, nv, s, sv};
use streamfold_shared::engine::Context;
use streamfold_shared::executor::{Conditional, ExecError, Expr, Item, TxOutcome, nonce};
use streamfold_shared::ids::Timestamp;
use streamfold_shared::keys::Key;

use crate::app::App;
use crate::table;

/// What to look at, and whether to fix what disagrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildScope {
    pub previews: bool,
    pub extensions: bool,
    pub daily: bool,
    pub repair: bool,
}

/// What a check (and repair) found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildReport {
    pub groups: u64,
    /// Groups whose previews (or `last_message_key`) disagreed.
    pub previews_wrong: Vec<String>,
    /// Preview items that no group shows.
    pub orphans: Vec<String>,
    /// Extension invariants broken (from the census).
    pub extension_violations: Vec<String>,
    pub agents_waiting: u64,
    pub agents_days: u64,
    /// Agent days whose counters disagree with the history.
    pub daily_wrong: Vec<String>,
    /// What was written to fix the above.
    pub repaired: u64,
    /// Repairs that failed (their message).
    pub repair_failed: Vec<String>,
}

impl RebuildReport {
    /// True when nothing disagreed (before repair).
    pub fn is_clean(&self) -> bool {
        self.previews_wrong.is_empty()
            && self.orphans.is_empty()
            && self.extension_violations.is_empty()
            && self.daily_wrong.is_empty()
    }
}

fn spinner(show: bool, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Runs the checks (and repairs) of `scope`.
pub async fn run(app: &App, scope: RebuildScope, progress: bool) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    if scope.previews {
        previews(app, scope.repair, progress, &mut report).await?;
    }
    if scope.extensions {
        extensions(app, scope.repair, &mut report).await?;
    }
    if scope.daily {
        daily(app, scope.repair, progress, &mut report).await?;
    }
    Ok(report)
}

/// Every item of one type (paginated Scan).
async fn scan_type(app: &App, item_type: &str) -> Result<Vec<Item>> {
    Ok(table::scan(app.ddb(), &app.table, Some(item_type))
        .await?
        .into_iter()
        .map(|i| i.into_iter().collect())
        .collect())
}

fn key_of(item: &Item) -> Option<(String, String)> {
    Some((s(item, "pk")?.to_owned(), s(item, "sk")?.to_owned()))
}

/// Attributes of `expected` that `actual` lacks or holds otherwise.
fn differs(expected: &Item, actual: Option<&Item>) -> bool {
    match actual {
        None => true,
        Some(a) => expected.iter().any(|(k, v)| a.get(k) != Some(v)),
    }
}

async fn previews(
    app: &App,
    repair: bool,
    progress: bool,
    report: &mut RebuildReport,
) -> Result<()> {
    let ctx = &app.ctx;
    let groups = scan_type(app, "group").await?;
    let stored: HashMap<(String, String), Item> = scan_type(app, "preview")
        .await?
        .into_iter()
        .filter_map(|i| Some((key_of(&i)?, i)))
        .collect();
    let bar = spinner(progress, "groups checked");
    let checks: Vec<_> = groups
        .into_iter()
        .map(|item| {
            let stored = &stored;
            let bar = &bar;
            async move {
                let r = check_group(ctx, item, stored, repair).await;
                bar.inc(1);
                r
            }
        })
        .collect();
    let results: Vec<Result<GroupCheck, ExecError>> = futures::stream::iter(checks)
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    let mut shown: BTreeSet<(String, String)> = BTreeSet::new();
    for r in results {
        let c = r.context("checking a group's previews")?;
        report.groups += 1;
        shown.extend(c.expected_keys);
        if let Some(why) = c.wrong {
            report.previews_wrong.push(why);
        }
        match c.repaired {
            Some(Ok(())) => report.repaired += 1,
            Some(Err(e)) => report.repair_failed.push(format!("{}: {e}", c.label)),
            None => {}
        }
    }
    for (key, item) in &stored {
        if shown.contains(key) {
            continue;
        }
        report.orphans.push(format!("{} / {}", key.0, key.1));
        if repair {
            match delete_orphan(ctx, item).await {
                Ok(true) => report.repaired += 1,
                Ok(false) => {}
                Err(e) => report
                    .repair_failed
                    .push(format!("{} / {}: {e}", key.0, key.1)),
            }
        }
    }
    Ok(())
}

struct GroupCheck {
    /// The group's pk, as its findings name it.
    label: String,
    expected_keys: Vec<(String, String)>,
    wrong: Option<String>,
    /// The repair's outcome, when one was made.
    repaired: Option<Result<(), ExecError>>,
}

async fn check_group(
    ctx: &Context,
    item: Item,
    stored: &HashMap<(String, String), Item>,
    repair: bool,
) -> Result<GroupCheck, ExecError> {
    let label = s(&item, "pk").unwrap_or("?").to_owned();
    let state = match message_groups::GroupState::from_item(item) {
        Ok(state) => state,
        Err(why) => {
            return Ok(GroupCheck {
                wrong: Some(format!("{label}: unreadable group ({why})")),
                label,
                expected_keys: Vec::new(),
                repaired: None,
            });
        }
    };
    let expected = message_groups::expected_previews(ctx, state).await?;
    let expected_keys: Vec<(String, String)> =
        expected.previews.iter().filter_map(key_of).collect();
    let last_ok = expected.state.last.as_ref() == expected.newest.as_ref().map(|m| &m.key);
    let wrong_previews = expected
        .previews
        .iter()
        .filter(|p| differs(p, key_of(p).and_then(|k| stored.get(&k))))
        .count();
    let wrong = (!last_ok || wrong_previews > 0).then(|| {
        format!(
            "{label}: {wrong_previews} of {} previews missing or stale{}",
            expected.previews.len(),
            if last_ok {
                ""
            } else {
                "; last_message_key is not the newest message"
            }
        )
    });
    let repaired = if wrong.is_some() && repair {
        Some(message_groups::resolve(ctx, expected.state).await)
    } else {
        None
    };
    Ok(GroupCheck {
        label,
        expected_keys,
        wrong,
        repaired,
    })
}

/// Deletes a preview its group does not show, on condition that the group
/// still does not show it (gone, or moved to another time).
async fn delete_orphan(ctx: &Context, preview: &Item) -> Result<bool, ExecError> {
    let (Some(pk), Some(sk), Some(group), Some(at)) = (
        s(preview, "pk"),
        s(preview, "sk"),
        s(preview, "message_group_uuid"),
        s(preview, "last_message_at"),
    ) else {
        return Err(ExecError::Permanent(
            "preview without its key, group or time".to_owned(),
        ));
    };
    let key = Key::parse(pk, sk).map_err(|e| ExecError::Permanent(e.to_string()))?;
    let group_key = Key::parse(&format!("GROUP#{group}"), "GROUP")
        .map_err(|e| ExecError::Permanent(e.to_string()))?;
    let mut tx = ctx.exec.tx();
    tx.delete(&key, None)?;
    tx.check(
        &group_key,
        Expr::new("attribute_not_exists(pk) OR attribute_not_exists(last_message_at) OR last_message_at <> :at")
            .s(":at", at),
    )?;
    // The same orphan can come back (written again, then orphaned again):
    // each repair is its own write, named by a nonce.
    let run = nonce();
    let parts = ["rebuild", "orphan", pk, sk, at, &run];
    Ok(ctx.exec.transact_planned(tx, &parts).await? == TxOutcome::Committed)
}

async fn extensions(app: &App, repair: bool, report: &mut RebuildReport) -> Result<()> {
    let census = extensions::census::census(&app.ctx.exec).await?;
    report.extension_violations = census.violations.clone();
    report.agents_waiting = census.waiting;
    if repair && census.waiting > 0 {
        let settled = extensions::settle(&app.ctx).await?;
        report.repaired += settled.assigned;
    }
    Ok(())
}

/// Per (agent, day): milliseconds per status, and the contributing events.
type DayTotals = BTreeMap<(String, String), (BTreeMap<String, i64>, BTreeSet<String>)>;

/// The daily totals the history implies.
fn totals_from_history(history: &[Item]) -> DayTotals {
    let mut out: DayTotals = BTreeMap::new();
    for h in history {
        let (Some(agent), Some(event), Some(status), Some(since), Some(ms)) = (
            s(h, "agent_id"),
            s(h, "event_id"),
            s(h, "previous_status"),
            s(h, "previous_status_since").and_then(|t| Timestamp::parse(t).ok()),
            n(h, "previous_status_ms"),
        ) else {
            continue;
        };
        let start = since.epoch_millis();
        for (day, part) in agent_activity::plan::split_by_day(start, start + ms) {
            let entry = out
                .entry((agent.to_owned(), day.format("%Y-%m-%d").to_string()))
                .or_default();
            *entry.0.entry(status.to_owned()).or_default() += part;
            entry.1.insert(event.to_owned());
        }
    }
    out
}

async fn daily(app: &App, repair: bool, progress: bool, report: &mut RebuildReport) -> Result<()> {
    let bar = spinner(progress, "reading history");
    let history = scan_type(app, "activity").await?;
    let days = scan_type(app, "daily").await?;
    bar.finish_and_clear();
    let expected = totals_from_history(&history);
    let stored: HashMap<(String, String), &Item> = days
        .iter()
        .filter_map(|d| Some(((s(d, "agent_id")?.to_owned(), s(d, "date")?.to_owned()), d)))
        .collect();
    let prefix = agent_activity::plan::STATUS_MS_PREFIX;
    for ((agent, day), (statuses, events)) in &expected {
        report.agents_days += 1;
        let item = stored.get(&(agent.clone(), day.clone())).copied();
        let actual: BTreeMap<String, i64> = item
            .map(|i| {
                i.keys()
                    .filter_map(|k| {
                        Some((k.strip_prefix(prefix)?.to_owned(), n(i, k).unwrap_or(0)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let nonzero: BTreeMap<String, i64> = statuses
            .iter()
            .filter(|(_, ms)| **ms != 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let actual_nonzero: BTreeMap<String, i64> =
            actual.into_iter().filter(|(_, ms)| *ms != 0).collect();
        // Counters at or above the history are right: a period closed by a
        // heartbeat counts time without a history item.
        if nonzero
            .iter()
            .all(|(k, ms)| actual_nonzero.get(k).is_some_and(|a| a >= ms))
        {
            continue;
        }
        report.daily_wrong.push(format!(
            "agent {agent} on {day}: counters {actual_nonzero:?}, history {nonzero:?}"
        ));
        if repair {
            match rewrite_day(app, agent, day, statuses, events, item).await {
                Ok(true) => report.repaired += 1,
                Ok(false) => report.repair_failed.push(format!(
                    "agent {agent} on {day}: changed meanwhile; run again"
                )),
                Err(e) => report
                    .repair_failed
                    .push(format!("agent {agent} on {day}: {e}")),
            }
        }
    }
    Ok(())
}

/// Rewrites a DAY item from the history, on condition that its claims are
/// still those read (else the pipeline moved it meanwhile).
async fn rewrite_day(
    app: &App,
    agent: &str,
    day: &str,
    statuses: &BTreeMap<String, i64>,
    events: &BTreeSet<String>,
    current: Option<&Item>,
) -> Result<bool, ExecError> {
    let exec = &app.ctx.exec;
    let mut item = Item::from([
        ("pk".to_owned(), sv(format!("AGENT#{agent}"))),
        ("sk".to_owned(), sv(format!("DAY#{day}"))),
        ("type".to_owned(), sv("daily")),
        ("agent_id".to_owned(), sv(agent)),
        ("date".to_owned(), sv(day)),
    ]);
    // The claims keep every event already counted (older history may have
    // expired) plus the history's.
    let mut claimed: BTreeSet<String> = events.clone();
    if let Some(AttributeValue::Ss(ids)) = current.and_then(|c| c.get("claimed")) {
        claimed.extend(ids.iter().cloned());
    }
    item.insert(
        "claimed".to_owned(),
        AttributeValue::Ss(claimed.into_iter().collect()),
    );
    // Never take counted time away: a period closed by a heartbeat has no
    // history item, so the history can fall short of a correct counter.
    let mut total = 0;
    for (status, ms) in statuses {
        let attr = agent_activity::plan::status_attr(status);
        let ms = (*ms).max(current.and_then(|c| n(c, &attr)).unwrap_or(0));
        total += ms;
        item.insert(attr, nv(ms));
    }
    if let Some(c) = current {
        for (k, v) in c {
            if k.starts_with(agent_activity::plan::STATUS_MS_PREFIX) && !item.contains_key(k) {
                total += n(c, k).unwrap_or(0);
                item.insert(k.clone(), v.clone());
            }
            // The contact-centre counters are kept as the pipeline counted
            // them (their claims are kept too).
            if agent_activity::plan::METRICS.contains(&k.as_str()) {
                item.insert(k.clone(), v.clone());
            }
        }
    }
    item.insert("total_ms".to_owned(), nv(total));
    let (condition, values) = match current.and_then(|c| c.get("claimed")) {
        Some(AttributeValue::Ss(ids)) => (
            "size(claimed) = :n",
            Item::from([(":n".to_owned(), nv(ids.len()))]),
        ),
        _ => ("attribute_not_exists(claimed)", Item::new()),
    };
    let done = exec
        .conditional("PutItem", || {
            exec.client()
                .put_item()
                .table_name(exec.table())
                .set_item(Some(item.clone()))
                .condition_expression(condition)
                .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
                .send()
        })
        .await?;
    Ok(matches!(done, Conditional::Done(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(agent: &str, event: &str, status: &str, since: &str, ms: i64) -> Item {
        Item::from([
            ("agent_id".to_owned(), sv(agent)),
            ("event_id".to_owned(), sv(event)),
            ("previous_status".to_owned(), sv(status)),
            ("previous_status_since".to_owned(), sv(since)),
            ("previous_status_ms".to_owned(), nv(ms)),
        ])
    }

    #[test]
    fn history_totals_split_at_midnight() {
        let h = vec![
            history(
                "a1",
                "e1",
                "Available",
                "2026-11-20T23:00:00Z",
                2 * 3_600_000,
            ),
            history("a1", "e2", "Lunch", "2026-11-21T01:00:00Z", 1_800_000),
        ];
        let t = totals_from_history(&h);
        let d20 = &t[&("a1".to_owned(), "2026-11-20".to_owned())];
        let d21 = &t[&("a1".to_owned(), "2026-11-21".to_owned())];
        assert_eq!(d20.0["Available"], 3_600_000);
        assert_eq!(d21.0["Available"], 3_600_000);
        assert_eq!(d21.0["Lunch"], 1_800_000);
        assert_eq!(d21.1.len(), 2);
    }
}

/// `streamfold rebuild ...`
#[derive(Debug, clap::Subcommand)]
pub enum RebuildCmd {
    /// Recompute every conversation preview from the group and message
    /// items, rewrite those that disagree and delete orphans. Safe while the
    /// pipeline runs.
    Previews {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Report projections that disagree with their sources (previews vs
    /// newest messages, profile extensions vs ext items, daily totals vs
    /// history); `--repair` fixes them. Exits non-zero when something
    /// disagreed and was not repaired.
    Check {
        /// Fix what disagrees.
        #[arg(long)]
        repair: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `rebuild` command line.
pub async fn run_cli(app: &App, cmd: RebuildCmd) -> Result<std::process::ExitCode> {
    let (scope, json) = match cmd {
        RebuildCmd::Previews { json } => (
            RebuildScope {
                previews: true,
                extensions: false,
                daily: false,
                repair: true,
            },
            json,
        ),
        RebuildCmd::Check { repair, json } => (
            RebuildScope {
                previews: true,
                extensions: true,
                daily: true,
                repair,
            },
            json,
        ),
    };
    let report = run(app, scope, !json).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, scope);
    }
    let fixed = scope.repair && report.repair_failed.is_empty();
    let unresolved_extensions = !report.extension_violations.is_empty();
    Ok(if report.is_clean() || (fixed && !unresolved_extensions) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

fn print_report(r: &RebuildReport, scope: RebuildScope) {
    let list = |title: &str, lines: &[String]| {
        if lines.is_empty() {
            return;
        }
        println!("{title} ({}):", lines.len());
        for l in lines.iter().take(20) {
            println!("  {l}");
        }
        if lines.len() > 20 {
            println!("  ... and {} more (--json lists all)", lines.len() - 20);
        }
    };
    if scope.previews {
        println!(
            "previews: {} groups, {} disagreeing, {} orphans",
            r.groups,
            r.previews_wrong.len(),
            r.orphans.len()
        );
        list("groups whose previews disagree", &r.previews_wrong);
        list("orphan previews", &r.orphans);
    }
    if scope.extensions {
        println!(
            "extensions: {} invariant violations, {} agents waiting",
            r.extension_violations.len(),
            r.agents_waiting
        );
        list(
            "violations (not repaired automatically)",
            &r.extension_violations,
        );
    }
    if scope.daily {
        println!(
            "daily totals: {} agent days with history, {} short of it",
            r.agents_days,
            r.daily_wrong.len()
        );
        list("daily totals short of the history", &r.daily_wrong);
    }
    if scope.repair {
        println!("repaired: {} writes", r.repaired);
        list("repairs that failed", &r.repair_failed);
    } else if !r.is_clean() {
        println!("run `streamfold rebuild check --repair` to fix them");
    }
}
