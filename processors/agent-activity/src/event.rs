//! Decoding: a Connect agent event (the JSON payload of a Kinesis record)
//! into a typed [`AgentEvent`]. Pure, no I/O.
//!
//! Accepted: every documented shape (LOGIN without `PreviousAgentSnapshot`,
//! `null` snapshots and fields, channel `TASK` or `TASKS`,
//! `NextAgentStatus.EnqueuedTimestamp` or `EnqueueTimestamp`, queues with a
//! `null` Name) and unknown fields, which are ignored. Refused (dead-lettered):
//! data that is not a JSON object, a missing or invalid `AgentARN`, `EventId`
//! or `EventTimestamp`, an unknown `Version` or `EventType`.
//!
//! Error messages name fields and ids, never values that can be a person's
//! name (serde's quoted values are redacted).

use std::borrow::Cow;

use serde::Deserialize;
use streamfold_shared::attrs::redact;
use streamfold_shared::ids::{AgentId, EventId, Timestamp};

/// The agent event stream versions this decoder knows.
pub const KNOWN_VERSIONS: &[&str] = &["2017-10-01"];

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Login,
    Logout,
    StateChange,
    HeartBeat,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Login => "LOGIN",
            EventType::Logout => "LOGOUT",
            EventType::StateChange => "STATE_CHANGE",
            EventType::HeartBeat => "HEART_BEAT",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "LOGIN" => EventType::Login,
            "LOGOUT" => EventType::Logout,
            "STATE_CHANGE" => EventType::StateChange,
            "HEART_BEAT" => EventType::HeartBeat,
            _ => return None,
        })
    }
}

/// An agent status (`AgentStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub arn: Option<String>,
    /// ROUTABLE, CUSTOM or OFFLINE.
    pub kind: Option<String>,
    pub since: Option<Timestamp>,
}

/// The status the agent will move to when their contacts end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextStatus {
    pub name: String,
    pub arn: Option<String>,
    pub enqueued_at: Option<Timestamp>,
}

/// A routing profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingProfile {
    pub name: String,
    pub arn: Option<String>,
    /// Its inbound queues, without the agents' own queues
    /// (`…/queue/agent/{id}`), in the event's order.
    pub inbound_queues: Vec<Queue>,
    pub default_outbound_queue: Option<Queue>,
}

impl RoutingProfile {
    /// The id ending its ARN (`…/routing-profile/{id}`).
    pub fn id(&self) -> Option<&str> {
        self.arn
            .as_deref()
            .and_then(|a| a.rsplit_once("/routing-profile/"))
            .map(|(_, id)| id)
            .filter(|id| !id.is_empty())
    }

    /// The same profile (name and ARN), whatever the queues.
    pub fn same(&self, other: &RoutingProfile) -> bool {
        self.name == other.name && self.arn == other.arn
    }
}

/// A queue of a routing profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub arn: Option<String>,
    pub name: Option<String>,
    pub channels: Vec<String>,
}

/// A contact the agent has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    /// VOICE, CHAT or TASK (`TASKS` is read as `TASK`).
    pub channel: Option<String>,
    /// INCOMING, PENDING, CONNECTING, CONNECTED, CONNECTED_ONHOLD, MISSED,
    /// ERROR, ENDED, REJECTED, …
    pub state: Option<String>,
    pub state_since: Option<Timestamp>,
    pub initiation_method: Option<String>,
    pub queue: Option<String>,
}

/// `CurrentAgentSnapshot` / `PreviousAgentSnapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub status: Option<Status>,
    pub next_status: Option<NextStatus>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub routing_profile: Option<RoutingProfile>,
    pub contacts: Vec<Contact>,
}

impl Snapshot {
    pub fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id == id)
    }
}

/// A decoded agent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEvent {
    pub agent: AgentId,
    pub agent_arn: String,
    pub id: EventId,
    pub at: Timestamp,
    pub kind: EventType,
    pub current: Snapshot,
    pub previous: Option<Snapshot>,
}

impl AgentEvent {
    /// The order of an agent's events: (EventTimestamp, EventId).
    pub fn order(&self) -> (Timestamp, &str) {
        (self.at, self.id.as_str())
    }
}

// ---- the wire shape -------------------------------------------------------

/// A string field that borrows from the payload when it has no escapes.
type Str<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "AgentARN", borrow)]
    agent_arn: Str<'a>,
    #[serde(rename = "EventId", borrow)]
    event_id: Str<'a>,
    #[serde(rename = "EventTimestamp", borrow)]
    event_timestamp: Str<'a>,
    #[serde(rename = "EventType", borrow)]
    event_type: Str<'a>,
    #[serde(rename = "Version", borrow)]
    version: Str<'a>,
    #[serde(rename = "CurrentAgentSnapshot", borrow)]
    current: Option<WireSnapshot<'a>>,
    #[serde(rename = "PreviousAgentSnapshot", borrow)]
    previous: Option<WireSnapshot<'a>>,
}

#[derive(Deserialize)]
struct WireSnapshot<'a> {
    #[serde(rename = "AgentStatus", borrow)]
    status: Option<WireStatus<'a>>,
    #[serde(rename = "NextAgentStatus", borrow)]
    next_status: Option<WireNextStatus<'a>>,
    #[serde(rename = "Configuration", borrow)]
    configuration: Option<WireConfiguration<'a>>,
    #[serde(rename = "Contacts", borrow)]
    contacts: Option<Vec<WireContact<'a>>>,
}

#[derive(Deserialize)]
struct WireStatus<'a> {
    #[serde(rename = "Name", borrow)]
    name: Str<'a>,
    #[serde(rename = "ARN", borrow)]
    arn: Str<'a>,
    #[serde(rename = "Type", borrow)]
    kind: Str<'a>,
    #[serde(rename = "StartTimestamp", borrow)]
    start: Str<'a>,
}

#[derive(Deserialize)]
struct WireNextStatus<'a> {
    #[serde(rename = "Name", borrow)]
    name: Str<'a>,
    #[serde(rename = "ARN", borrow)]
    arn: Str<'a>,
    #[serde(rename = "EnqueuedTimestamp", alias = "EnqueueTimestamp", borrow)]
    enqueued: Str<'a>,
}

#[derive(Deserialize)]
struct WireConfiguration<'a> {
    #[serde(rename = "Username", borrow)]
    username: Str<'a>,
    #[serde(rename = "FirstName", borrow)]
    first_name: Str<'a>,
    #[serde(rename = "LastName", borrow)]
    last_name: Str<'a>,
    #[serde(rename = "RoutingProfile", borrow)]
    routing_profile: Option<WireRoutingProfile<'a>>,
}

#[derive(Deserialize)]
struct WireRoutingProfile<'a> {
    #[serde(rename = "Name", borrow)]
    name: Str<'a>,
    #[serde(rename = "ARN", borrow)]
    arn: Str<'a>,
    #[serde(rename = "InboundQueues", borrow, default)]
    inbound_queues: Option<Vec<WireRpQueue<'a>>>,
    #[serde(rename = "DefaultOutboundQueue", borrow, default)]
    default_outbound_queue: Option<WireRpQueue<'a>>,
}

#[derive(Deserialize)]
struct WireRpQueue<'a> {
    #[serde(rename = "Name", borrow, default)]
    name: Str<'a>,
    #[serde(rename = "ARN", borrow, default)]
    arn: Str<'a>,
    #[serde(rename = "Channels", default)]
    channels: Option<Vec<Option<String>>>,
}

fn rp_queue(q: WireRpQueue<'_>) -> Queue {
    Queue {
        arn: non_empty(q.arn),
        name: non_empty(q.name),
        channels: q
            .channels
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .filter_map(|c| channel(Some(Cow::Owned(c))))
            .collect(),
    }
}

#[derive(Deserialize)]
struct WireContact<'a> {
    #[serde(rename = "ContactId", borrow)]
    id: Str<'a>,
    #[serde(rename = "Channel", borrow)]
    channel: Str<'a>,
    #[serde(rename = "State", borrow)]
    state: Str<'a>,
    #[serde(rename = "StateStartTimestamp", borrow)]
    state_start: Str<'a>,
    #[serde(rename = "InitiationMethod", borrow)]
    initiation_method: Str<'a>,
    #[serde(rename = "Queue", borrow)]
    queue: Option<WireQueue<'a>>,
}

#[derive(Deserialize)]
struct WireQueue<'a> {
    #[serde(rename = "Name", borrow)]
    name: Str<'a>,
}

/// Why an agent event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> DecodeError {
    DecodeError(msg.into())
}

/// The agent id: the last path segment of `…/agent/{agent_id}`.
pub fn agent_id_of(arn: &str) -> Result<AgentId, DecodeError> {
    let (_, id) = arn
        .rsplit_once("/agent/")
        .ok_or_else(|| err("AgentARN is not a Connect agent ARN (…/agent/{agent_id})"))?;
    AgentId::new(id).map_err(|e| err(format!("AgentARN: {e}")))
}

/// A timestamp field that may be absent; a present but unreadable one is
/// dropped (it never decides anything the event is refused for).
fn opt_ts(value: Str<'_>) -> Option<Timestamp> {
    value.and_then(|v| Timestamp::parse(&v).ok())
}

/// A present, non-blank field, still borrowed.
fn present(value: Str<'_>) -> Option<Cow<'_, str>> {
    value.filter(|v| !v.trim().is_empty())
}

fn non_empty(value: Str<'_>) -> Option<String> {
    present(value).map(Cow::into_owned)
}

/// An upper-cased code (a contact state, a channel).
fn code(value: Str<'_>) -> Option<String> {
    present(value).map(|c| c.to_ascii_uppercase())
}

fn channel(value: Str<'_>) -> Option<String> {
    code(value).map(|c| if c == "TASKS" { "TASK".to_owned() } else { c })
}

fn owned(value: Str<'_>) -> Option<String> {
    value.map(Cow::into_owned)
}

fn snapshot(w: WireSnapshot<'_>) -> Snapshot {
    let config = w.configuration;
    let (username, first_name, last_name, routing_profile) = match config {
        Some(c) => (
            non_empty(c.username),
            owned(c.first_name),
            owned(c.last_name),
            c.routing_profile.and_then(|r| {
                let inbound_queues = r
                    .inbound_queues
                    .unwrap_or_default()
                    .into_iter()
                    .map(rp_queue)
                    .filter(|q| {
                        !q.arn
                            .as_deref()
                            .is_some_and(|a| a.contains("/queue/agent/"))
                    })
                    .collect();
                let default_outbound_queue = r.default_outbound_queue.map(rp_queue);
                non_empty(r.name).map(|name| RoutingProfile {
                    name,
                    arn: owned(r.arn),
                    inbound_queues,
                    default_outbound_queue,
                })
            }),
        ),
        None => (None, None, None, None),
    };
    Snapshot {
        status: w.status.and_then(|s| {
            non_empty(s.name).map(|name| Status {
                name,
                arn: owned(s.arn),
                kind: non_empty(s.kind),
                since: opt_ts(s.start),
            })
        }),
        next_status: w.next_status.and_then(|n| {
            non_empty(n.name).map(|name| NextStatus {
                name,
                arn: owned(n.arn),
                enqueued_at: opt_ts(n.enqueued),
            })
        }),
        username,
        first_name,
        last_name,
        routing_profile,
        contacts: w
            .contacts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| {
                let id = non_empty(c.id)?;
                Some(Contact {
                    id,
                    channel: channel(c.channel),
                    state: code(c.state),
                    state_since: opt_ts(c.state_start),
                    initiation_method: non_empty(c.initiation_method),
                    queue: c.queue.and_then(|q| non_empty(q.name)),
                })
            })
            .collect(),
    }
}

/// Decodes one agent event payload.
pub fn decode_event(data: &[u8]) -> Result<AgentEvent, DecodeError> {
    // UTF-8 is checked once for the whole payload (fast), not per string.
    let text = std::str::from_utf8(data)
        .map_err(|e| err(format!("data is not JSON: it is not UTF-8 ({e})")))?;
    let wire: WireEvent = serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            err(format!("data is not JSON: {}", redact(e)))
        } else {
            err(format!("not a Connect agent event: {}", redact(e)))
        }
    })?;
    let arn = non_empty(wire.agent_arn).ok_or_else(|| err("agent event has no AgentARN"))?;
    let agent = agent_id_of(&arn)?;
    let id = non_empty(wire.event_id).ok_or_else(|| err("agent event has no EventId"))?;
    let id = EventId::new(id).map_err(|e| err(format!("EventId: {e}")))?;
    let at = present(wire.event_timestamp)
        .ok_or_else(|| err(format!("agent event {id} has no EventTimestamp")))?;
    let at =
        Timestamp::parse(&at).map_err(|e| err(format!("agent event {id}: EventTimestamp: {e}")))?;
    match wire.version.as_deref() {
        Some(v) if KNOWN_VERSIONS.contains(&v) => {}
        Some(v) => {
            return Err(err(format!(
                "agent event {id} has Version {}, which this processor does not know (it knows {})",
                shown(v),
                KNOWN_VERSIONS.join(", ")
            )));
        }
        None => {
            return Err(err(format!(
                "agent event {id} has no Version (expected {})",
                KNOWN_VERSIONS.join(", ")
            )));
        }
    }
    let kind = match wire.event_type.as_deref() {
        Some(t) => EventType::parse(t).ok_or_else(|| {
            err(format!(
                "agent event {id} has an unknown EventType {} (expected LOGIN, LOGOUT, STATE_CHANGE or HEART_BEAT)",
                shown(t)
            ))
        })?,
        None => return Err(err(format!("agent event {id} has no EventType"))),
    };
    let current = wire
        .current
        .ok_or_else(|| err(format!("agent event {id} has no CurrentAgentSnapshot")))?;
    Ok(AgentEvent {
        agent,
        agent_arn: arn,
        id,
        at,
        kind,
        current: snapshot(current),
        previous: wire.previous.map(snapshot),
    })
}

/// At most 40 characters of a value that is not personal (a version, a type).
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(40).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    format!("{out:?}")
}

/// Fuzz bodies: the cargo-fuzz target `agent_event` (fuzz/) and the
/// proptests below run exactly these. An `Err` is a broken invariant (the
/// fuzz target panics with it); a panic inside is a decoder bug.
#[doc(hidden)]
pub mod fuzz {
    use super::*;
    use crate::plan;

    /// Arbitrary bytes as a Kinesis record's payload: decoding never panics;
    /// an accepted event has valid ids and its agent id is the ARN's last
    /// `/agent/` segment; the pure planning of an accepted event never
    /// panics; a refusal is short (it never echoes a long value back).
    pub fn agent_event(data: &[u8]) -> Result<(), String> {
        let event = match decode_event(data) {
            Ok(event) => event,
            Err(why) if why.0.len() > 1024 => {
                return Err(format!("a refusal of {} bytes", why.0.len()));
            }
            Err(_) => return Ok(()),
        };
        if AgentId::new(event.agent.as_str()).is_err() || EventId::new(event.id.as_str()).is_err() {
            return Err("an accepted event has an invalid id".to_owned());
        }
        if event.agent_arn.rsplit_once("/agent/").map(|(_, id)| id) != Some(event.agent.as_str()) {
            return Err("the agent id is not the ARN's last /agent/ segment".to_owned());
        }
        let _ = plan::activity_item(&event, 30);
        let _ = plan::profile_fields(&event);
        let _ = plan::contact_changes(event.previous.as_ref(), &event.current);
        let _ = plan::acw(&event);
        if let Some(c) = plan::contribution(&event) {
            if c.days.len() > plan::MAX_SPLIT_DAYS || c.days.iter().any(|(_, ms)| *ms <= 0) {
                return Err("a contribution splits into too many or empty days".to_owned());
            }
            let _ = plan::plan_daily(&event.agent, &[c]);
        }
        let _ = plan::plan_profile(&event.agent, None, &[&event]);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// The decoder under arbitrary input (proptest, which runs in CI). Each
/// property runs the fuzz body ([`fuzz::agent_event`]) that `fuzz/` runs for
/// long under libFuzzer.
#[cfg(test)]
mod properties;
