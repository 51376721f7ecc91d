//! Daily totals: per-day counters that claim their events in the same write.

use super::*;

/// One event's milliseconds per day and status, and the contact-centre
/// figures it claims (each with its day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution<'a> {
    pub event: &'a AgentEvent,
    /// The status whose period the event ends ("" when none ends).
    pub status: &'a str,
    /// That status period's milliseconds per day (empty when none ends).
    pub days: Vec<(NaiveDate, i64)>,
    /// Contact-centre counters: (day, attribute, amount), e.g.
    /// (`2026-11-20`, `handle_ms`, 1200).
    pub metrics: Vec<(NaiveDate, &'static str, i64)>,
}

impl Contribution<'_> {
    /// Every day the contribution writes to.
    pub fn touched_days(&self) -> BTreeSet<NaiveDate> {
        self.days
            .iter()
            .map(|(d, _)| *d)
            .chain(self.metrics.iter().map(|(d, _, _)| *d))
            .collect()
    }
}

/// The daily contact-centre counters (attributes of a `DAY#` item).
pub const HANDLE_MS: &str = "handle_ms";
pub const HOLD_MS: &str = "hold_ms";
pub const ACW_MS: &str = "acw_ms";
pub const ROUTABLE_MS: &str = "routable_ms";
pub const NPT_MS: &str = "npt_ms";
pub const CONTACTS_HANDLED: &str = "contacts_handled";
pub const CONTACTS_MISSED: &str = "contacts_missed";
/// Every contact-centre counter, in display order.
pub const METRICS: &[&str] = &[
    HANDLE_MS,
    HOLD_MS,
    ACW_MS,
    ROUTABLE_MS,
    NPT_MS,
    CONTACTS_HANDLED,
    CONTACTS_MISSED,
];

fn add_split(
    out: &mut Vec<(NaiveDate, &'static str, i64)>,
    attr: &'static str,
    start: i64,
    end: i64,
) {
    out.extend(
        split_by_day(start, end)
            .into_iter()
            .map(|(d, ms)| (d, attr, ms)),
    );
}

/// The contact-centre figures an event claims, from its previous snapshot
/// and the current one: the contact states that end at this event (a state
/// runs from the previous snapshot's `StateStartTimestamp` until the
/// contact's state differs or the contact is gone), the status period that
/// ends (ROUTABLE and CUSTOM time), and the contacts connected or missed at
/// it (counted on the event's day).
pub fn contact_metrics(ev: &AgentEvent) -> Vec<(NaiveDate, &'static str, i64)> {
    let mut out = Vec::new();
    if let Some(p) = ended_period(ev) {
        let attr = match p.status.kind.as_deref() {
            Some("ROUTABLE") => Some(ROUTABLE_MS),
            Some("CUSTOM") => Some(NPT_MS),
            _ => None,
        };
        if let Some(attr) = attr {
            add_split(&mut out, attr, p.start.epoch_millis(), p.end.epoch_millis());
        }
    }
    let prev = ev.previous.as_ref();
    if let Some(prev) = prev {
        for pc in &prev.contacts {
            let cur = ev.current.contact(&pc.id);
            if cur.is_some_and(|c| c.state == pc.state) {
                continue;
            }
            let Some(start) = pc.state_since else {
                continue;
            };
            let end = cur
                .and_then(|c| c.state_since)
                .filter(|s| *s >= start && *s <= ev.at)
                .unwrap_or(ev.at);
            let (s, e) = (start.epoch_millis(), end.epoch_millis());
            match pc.state.as_deref() {
                Some("CONNECTED") => add_split(&mut out, HANDLE_MS, s, e),
                Some("CONNECTED_ONHOLD") => {
                    add_split(&mut out, HANDLE_MS, s, e);
                    add_split(&mut out, HOLD_MS, s, e);
                }
                Some("ENDED") => add_split(&mut out, ACW_MS, s, e),
                _ => {}
            }
        }
    }
    let day = ev.at.date();
    for c in &ev.current.contacts {
        let before = prev.and_then(|p| p.contact(&c.id));
        let before_state = before.and_then(|b| b.state.as_deref());
        match c.state.as_deref() {
            Some("CONNECTED") if before.is_none() || before_state == Some("CONNECTING") => {
                out.push((day, CONTACTS_HANDLED, 1));
            }
            Some("MISSED") if before_state != Some("MISSED") => {
                out.push((day, CONTACTS_MISSED, 1));
            }
            _ => {}
        }
    }
    out
}

/// The event's contribution to the daily totals, if it ends a period or
/// claims a contact-centre figure.
pub fn contribution(ev: &AgentEvent) -> Option<Contribution<'_>> {
    let p = ended_period(ev);
    let days = p
        .as_ref()
        .map(|p| split_by_day(p.start.epoch_millis(), p.end.epoch_millis()))
        .unwrap_or_default();
    let metrics: Vec<_> = contact_metrics(ev)
        .into_iter()
        .filter(|(_, _, v)| *v > 0)
        .collect();
    (!days.is_empty() || !metrics.is_empty()).then_some(Contribution {
        event: ev,
        status: p.map_or("", |p| p.status.name.as_str()),
        days,
        metrics,
    })
}

/// The name of a status's millisecond counter on a daily item.
pub fn status_attr(status: &str) -> String {
    format!("{STATUS_MS_PREFIX}{status}")
}

/// Counter updates of a set of contributions, one per day, each claiming
/// the contributing events: `ADD` the milliseconds and the event ids to the
/// `claimed` set, on condition that none of them is in it yet. The updates
/// must commit together (an event split over midnight claims on both days).
pub fn plan_daily(agent: &AgentId, contributions: &[Contribution<'_>]) -> Vec<GuardedUpdate> {
    type PerDay<'s> = (
        BTreeMap<&'s str, i64>,
        BTreeMap<&'static str, i64>,
        BTreeSet<&'s str>,
    );
    let mut per_day: BTreeMap<NaiveDate, PerDay<'_>> = BTreeMap::new();
    for c in contributions {
        for (day, ms) in &c.days {
            let entry = per_day.entry(*day).or_default();
            *entry.0.entry(c.status).or_insert(0) += ms;
            entry.2.insert(c.event.id.as_str());
        }
        for (day, attr, v) in &c.metrics {
            let entry = per_day.entry(*day).or_default();
            *entry.1.entry(attr).or_insert(0) += v;
            entry.2.insert(c.event.id.as_str());
        }
    }
    per_day
        .into_iter()
        .map(|(day, (statuses, metrics, events))| {
            let total: i64 = statuses.values().sum();
            let mut expr = Expr::default()
                .name("#t", "type")
                .name("#d", "date")
                .s(":type", "daily")
                .s(":agent", agent.as_str())
                .s(":date", day.format("%Y-%m-%d").to_string())
                .value(
                    ":ids",
                    AttributeValue::Ss(events.iter().map(|e| (*e).to_owned()).collect()),
                );
            let mut adds = vec!["claimed :ids".to_owned()];
            if !statuses.is_empty() {
                // Only when used: DynamoDB refuses an unused value.
                expr = expr.value(":total", nv(total));
                adds.push("total_ms :total".to_owned());
            }
            for (i, (attr, v)) in metrics.iter().enumerate() {
                expr = expr.value(&format!(":m{i}"), nv(v));
                adds.push(format!("{attr} :m{i}"));
            }
            for (i, (status, ms)) in statuses.iter().enumerate() {
                expr = expr
                    .name(&format!("#s{i}"), &status_attr(status))
                    .value(&format!(":s{i}"), nv(ms));
                adds.push(format!("#s{i} :s{i}"));
            }
            let mut conds = Vec::new();
            for (i, e) in events.iter().enumerate() {
                expr = expr.s(&format!(":e{i}"), *e);
                conds.push(format!("NOT contains(claimed, :e{i})"));
            }
            let update = Expr {
                text: format!(
                    "SET #t = :type, agent_id = :agent, #d = :date ADD {}",
                    adds.join(", ")
                ),
                ..expr
            };
            GuardedUpdate {
                key: Key::Daily {
                    agent: agent.clone(),
                    day,
                },
                update,
                condition: Expr::new(conds.join(" AND ")),
            }
        })
        .collect()
}

/// The UTC midnight starting a day, in epoch milliseconds.
pub fn day_start_ms(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}
