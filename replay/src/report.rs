//! `streamfold agents report --date D --out FILE.html`: one agent day as a
//! picture, one self-contained HTML file (inline SVG and CSS; no scripts,
//! no fonts or anything else from the network). Per agent, a timeline of
//! the day (status bands; contacts above them, with hold and ACW) and a
//! stacked bar of the day's totals; per routing profile, its occupancy.
//! The timeline is rebuilt from the history items (`ACT#`), the totals are
//! the `DAY#` item's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use streamfold_shared::attrs::s;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::Timestamp;

use crate::agents::{DailyTotals, duration, occupancy};

/// One agent's day, as read from the table.
#[derive(Debug, Clone)]
pub struct AgentDay {
    pub username: String,
    pub routing_profile: String,
    /// The day's history items, oldest first.
    pub history: Vec<Item>,
    pub totals: Option<DailyTotals>,
}

/// A band of a timeline, in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub label: String,
    /// ROUTABLE, CUSTOM, OFFLINE for statuses; the contact state for
    /// contacts.
    pub kind: String,
    pub start: i64,
    pub end: i64,
}

fn ms(ts: &str) -> Option<i64> {
    Timestamp::parse(ts).ok().map(|t| t.epoch_millis())
}

fn maps(item: &Item, name: &str) -> Vec<Item> {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::L(l)) => {
            l.iter().filter_map(|v| v.as_m().ok().cloned()).collect()
        }
        _ => Vec::new(),
    }
}

/// The status bands and the contact bands of a day's history, clipped to
/// `[from, to)`.
pub fn timeline(history: &[Item], from: i64, to: i64) -> (Vec<Band>, Vec<Band>) {
    let mut statuses: Vec<Band> = Vec::new();
    let mut open: BTreeMap<String, Band> = BTreeMap::new();
    let mut contacts: Vec<Band> = Vec::new();
    for h in history {
        let Some(at) = s(h, "at").and_then(ms) else {
            continue;
        };
        if let (Some(name), Some(since)) = (s(h, "status"), s(h, "status_since").and_then(ms)) {
            let kind = s(h, "status_type").unwrap_or("OFFLINE");
            let start = since.max(from);
            let same = statuses
                .last()
                .is_some_and(|b| b.label == name && b.start == start);
            if !same {
                if let Some(last) = statuses.last_mut() {
                    last.end = start.max(last.start);
                }
                statuses.push(Band {
                    label: name.to_owned(),
                    kind: kind.to_owned(),
                    start,
                    end: to,
                });
            }
        }
        for c in maps(h, "contacts") {
            let id = s(&c, "contact_id").unwrap_or("?").to_owned();
            if let Some(mut b) = open.remove(&id) {
                b.end = at;
                contacts.push(b);
            }
            if let Some(state) = s(&c, "to") {
                open.insert(
                    id,
                    Band {
                        label: s(&c, "channel").unwrap_or("").to_owned(),
                        kind: state.to_owned(),
                        start: at.max(from),
                        end: to,
                    },
                );
            }
        }
    }
    contacts.extend(open.into_values());
    let clip = |v: Vec<Band>| -> Vec<Band> {
        v.into_iter()
            .map(|mut b| {
                b.start = b.start.clamp(from, to);
                b.end = b.end.clamp(from, to);
                b
            })
            .filter(|b| b.end > b.start)
            .collect()
    };
    (clip(statuses), clip(contacts))
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn status_colour(kind: &str) -> &'static str {
    match kind {
        "ROUTABLE" => "#5cb85c",
        "CUSTOM" => "#f0ad4e",
        _ => "#d9d9d9",
    }
}

fn contact_colour(state: &str) -> &'static str {
    match state {
        "CONNECTED" => "#1f77b4",
        "CONNECTED_ONHOLD" => "#9467bd",
        "ENDED" => "#e6c229",
        "MISSED" | "REJECTED" | "ERROR" => "#d62728",
        _ => "#9ecae1",
    }
}

const LABEL_W: f64 = 170.0;
const LINE_W: f64 = 700.0;
const BAR_X: f64 = LABEL_W + LINE_W + 30.0;
const BAR_W: f64 = 220.0;
const ROW_H: f64 = 46.0;

/// The report as one HTML document.
pub fn render_html(day: NaiveDate, rp: Option<&str>, agents: &[AgentDay]) -> String {
    let day_start = crate::report::day_start(day);
    let day_end = day_start + 86_400_000;
    // The window: the hours with activity (the whole day without any).
    let times: Vec<i64> = agents
        .iter()
        .flat_map(|a| a.history.iter().filter_map(|h| s(h, "at").and_then(ms)))
        .filter(|t| (day_start..day_end).contains(t))
        .collect();
    let hour = 3_600_000;
    let (from, to) = match (times.iter().min(), times.iter().max()) {
        (Some(lo), Some(hi)) => (
            day_start + (lo - day_start) / hour * hour,
            (day_start + ((hi - day_start) / hour + 1) * hour).min(day_end),
        ),
        _ => (day_start, day_end),
    };
    let span = (to - from).max(1) as f64;
    let x = |t: i64| LABEL_W + (t - from) as f64 / span * LINE_W;
    let height = 60.0 + ROW_H * agents.len().max(1) as f64 + 30.0;
    let width = BAR_X + BAR_W + 20.0;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    // Hour grid.
    let mut t = from;
    while t <= to {
        let hx = x(t);
        let label = Timestamp::from_epoch_millis(t)
            .map(|ts| ts.as_datetime().format("%H:%M").to_string())
            .unwrap_or_default();
        let _ = write!(
            svg,
            r##"<line x1="{hx:.1}" y1="30" x2="{hx:.1}" y2="{:.1}" stroke="#eee"/><text x="{hx:.1}" y="22" class="axis">{label}</text>"##,
            height - 30.0
        );
        t += hour;
    }
    let _ = write!(
        svg,
        r#"<text x="{BAR_X}" y="22" class="axis-l">totals of the day (stacked)</text>"#
    );
    for (i, a) in agents.iter().enumerate() {
        let y = 40.0 + ROW_H * i as f64;
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.1}" class="name">{}</text><text x="4" y="{:.1}" class="rp">{}</text>"#,
            y + 14.0,
            esc(&a.username),
            y + 28.0,
            esc(&a.routing_profile)
        );
        let (statuses, contacts) = timeline(&a.history, from, to);
        for b in &statuses {
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="16" fill="{}"><title>{} {}–{}</title></rect>"#,
                x(b.start),
                y + 18.0,
                (x(b.end) - x(b.start)).max(0.5),
                status_colour(&b.kind),
                esc(&b.label),
                hm(b.start),
                hm(b.end)
            );
        }
        for b in &contacts {
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="12" fill="{}"><title>{} {} {}–{}</title></rect>"#,
                x(b.start),
                y + 4.0,
                (x(b.end) - x(b.start)).max(1.0),
                contact_colour(&b.kind),
                esc(&b.label),
                esc(&b.kind),
                hm(b.start),
                hm(b.end)
            );
        }
        // Stacked bar: handling (without hold), hold, ACW, idle, NPT.
        if let Some(d) = &a.totals {
            let handle = d.metric("handle_ms");
            let hold = d.metric("hold_ms");
            let acw = d.metric("acw_ms");
            let routable = d.metric("routable_ms");
            let npt = d.metric("npt_ms");
            let idle = (routable - handle - acw).max(0);
            let parts = [
                ("handling", handle - hold, "#1f77b4"),
                ("on hold", hold, "#9467bd"),
                ("ACW", acw, "#e6c229"),
                ("available, idle", idle, "#5cb85c"),
                ("non-productive", npt, "#f0ad4e"),
            ];
            let sum: i64 = parts.iter().map(|p| p.1.max(0)).sum();
            let mut bx = BAR_X;
            for (label, v, colour) in parts {
                if v <= 0 || sum == 0 {
                    continue;
                }
                let w = v as f64 / sum as f64 * BAR_W;
                let _ = write!(
                    svg,
                    r#"<rect x="{bx:.1}" y="{:.1}" width="{w:.1}" height="16" fill="{colour}"><title>{label} {}</title></rect>"#,
                    y + 10.0,
                    duration(v)
                );
                bx += w;
            }
            let occ = d
                .occupancy()
                .map(|o| format!("occupancy {:.0}%", o * 100.0))
                .unwrap_or_else(|| "no routable time".to_owned());
            let _ = write!(
                svg,
                r#"<text x="{BAR_X}" y="{:.1}" class="rp">{} handled, {} missed, {occ}</text>"#,
                y + 40.0,
                d.metric("contacts_handled"),
                d.metric("contacts_missed")
            );
        }
    }
    svg.push_str("</svg>");

    // Occupancy per routing profile.
    let mut per_rp: BTreeMap<&str, (i64, i64, i64, usize)> = BTreeMap::new();
    for a in agents {
        let e = per_rp.entry(a.routing_profile.as_str()).or_default();
        e.3 += 1;
        if let Some(d) = &a.totals {
            e.0 += d.metric("handle_ms");
            e.1 += d.metric("acw_ms");
            e.2 += d.metric("routable_ms");
        }
    }
    let mut roster = String::new();
    for (name, (h, acw, r, n)) in &per_rp {
        let occ = occupancy(*h, *acw, *r)
            .map(|o| format!("{:.1}%", o * 100.0))
            .unwrap_or_else(|| "-".to_owned());
        let _ = write!(
            roster,
            "<tr><td>{}</td><td>{n}</td><td>{}</td><td>{}</td><td>{}</td><td>{occ}</td></tr>",
            esc(name),
            duration(*h),
            duration(*acw),
            duration(*r)
        );
    }
    let legend: String = [
        ("#5cb85c", "available (routable)"),
        ("#f0ad4e", "non-productive (custom status)"),
        ("#d9d9d9", "offline"),
        ("#9ecae1", "contact connecting"),
        ("#1f77b4", "on contact"),
        ("#9467bd", "on hold"),
        ("#e6c229", "after-contact work"),
        ("#d62728", "missed"),
    ]
    .iter()
    .map(|(c, l)| format!(r#"<span class="key"><i style="background:{c}"></i>{l}</span>"#))
    .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Agents on {day}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #222; background: #fff; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
p.sub {{ color: #666; margin: 0 0 12px; font-size: 13px; }}
.axis {{ font-size: 11px; fill: #666; text-anchor: middle; }}
.axis-l {{ font-size: 11px; fill: #666; }}
.name {{ font-size: 13px; fill: #222; }}
.rp {{ font-size: 11px; fill: #777; }}
.key {{ display: inline-block; margin-right: 14px; font-size: 12px; }}
.key i {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -2px; }}
table {{ border-collapse: collapse; margin-top: 12px; font-size: 13px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
</style></head><body>
<h1>Agents on {day} (UTC){rp}</h1>
<p class="sub">{n} agents; contacts above each status band. streamfold agents report</p>
<div>{legend}</div>
{svg}
<table><tr><th>routing profile</th><th>agents</th><th>handling</th><th>ACW</th><th>routable</th><th>occupancy</th></tr>{roster}</table>
</body></html>
"#,
        rp = rp
            .map(|r| format!(", routing profile {}", esc(r)))
            .unwrap_or_default(),
        n = agents.len(),
    )
}

fn hm(t: i64) -> String {
    Timestamp::from_epoch_millis(t)
        .map(|ts| ts.as_datetime().format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The UTC midnight starting a day, in epoch milliseconds.
pub fn day_start(day: NaiveDate) -> i64 {
    agent_activity::plan::day_start_ms(day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamfold_shared::attrs::sv;

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), sv(*v)))
            .collect()
    }

    #[test]
    fn timeline_and_html() {
        let h = vec![
            item(&[
                ("at", "2026-11-20T14:00:05.310Z"),
                ("status", "Available"),
                ("status_type", "ROUTABLE"),
                ("status_since", "2026-11-20T14:00:05.310Z"),
            ]),
            item(&[
                ("at", "2026-11-20T15:30:00Z"),
                ("status", "Lunch"),
                ("status_type", "CUSTOM"),
                ("status_since", "2026-11-20T15:30:00Z"),
            ]),
        ];
        let from = ms("2026-11-20T14:00:00Z").unwrap_or_default();
        let to = ms("2026-11-20T16:00:00Z").unwrap_or_default();
        let (st, ct) = timeline(&h, from, to);
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].end, st[1].start);
        assert_eq!(st[1].end, to);
        assert!(ct.is_empty());
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default();
        let html = render_html(
            day,
            None,
            &[AgentDay {
                username: "a<b".into(),
                routing_profile: "Sales".into(),
                history: h,
                totals: None,
            }],
        );
        assert!(html.contains("<svg") && html.contains("a&lt;b"));
        assert!(
            !html.contains("<script") && !html.contains("http://")
                || html.contains("xmlns=\"http://www.w3.org/2000/svg\"")
        );
        assert!(!html.contains("https://"));
    }
}
