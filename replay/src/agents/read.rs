//! Reading what agent-activity wrote: profiles, history, daily totals.

use std::collections::BTreeMap;

use agent_activity::plan::{ACW_MS, HANDLE_MS, METRICS, ROUTABLE_MS, STATUS_MS_PREFIX};
use anyhow::{Context as _, Result, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use streamfold_shared::attrs::{n, s, sv};
use streamfold_shared::executor::{Expr, Item};
use streamfold_shared::ids::{AgentId, Timestamp};
use streamfold_shared::keys::Key;
use streamfold_shared::read::Query;

use super::wallboard;
use crate::app::App;

pub(super) fn sdk<
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
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
    directory_items(app, agent_activity::plan::DIRECTORY)
        .await
        .context("reading the agent directory")
}

/// Every item of one directory partition of `gsi2` (`gsi2pk = partition`),
/// all pages, through the executor's retries.
pub(crate) async fn directory_items(app: &App, partition: &str) -> Result<Vec<Item>> {
    let condition = Expr::new("gsi2pk = :p").s(":p", partition);
    Ok(Query::index("gsi2", condition).all(&app.ctx.exec).await?)
}

pub(super) fn parse_day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("{text:?} is not a day (yyyy-mm-dd)"))
}

/// A history bound as a sort-key prefix: a day or any RFC 3339 time
/// (normalised). `end` makes a day inclusive.
pub(super) fn bound(text: &str, end: bool) -> Result<String> {
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
