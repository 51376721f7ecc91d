//! Synthetic agent days for tests and benchmarks: realistic Connect agent
//! events (login, status changes, contacts with after-contact work, holds
//! and missed contacts, a lunch break, logout, and a heartbeat after every
//! 120 s of silence, also for an hour after logout; of three or more agents
//! the last one's CCP closes without a logout), deterministic for a seed.

use serde_json::{Value, json};
use streamfold_shared::ids::Timestamp;

const INSTANCE: &str =
    "arn:aws:connect:us-east-1:012345678901:instance/aaaaaaaa-bbbb-cccc-dddd-111111111111";

struct Agent {
    id: String,
    username: String,
    status: (String, String, i64),
    profile: &'static str,
    contacts: Vec<Value>,
    seq: u64,
}

fn ts(ms: i64) -> String {
    Timestamp::from_epoch_millis(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Agent {
    fn snapshot(&self) -> Value {
        let (name, kind, since) = &self.status;
        json!({
            "AgentStatus": {
                "ARN": format!("{INSTANCE}/agent-state/{}", name.to_lowercase()),
                "Name": name, "StartTimestamp": ts(*since), "Type": kind
            },
            "Configuration": {
                "AgentHierarchyGroups": null,
                "FirstName": "Synthetic", "LastName": format!("Agent {}", self.username),
                "RoutingProfile": {
                    "ARN": format!("{INSTANCE}/routing-profile/{}", self.profile.to_lowercase()),
                    "Name": self.profile,
                    "Concurrency": [{"AvailableSlots": 1, "Channel": "VOICE", "MaximumSlots": 1}],
                    "InboundQueues": [{"ARN": format!("{INSTANCE}/queue/q-basic"), "Channels": ["VOICE"], "Name": "BasicQueue"}]
                },
                "Username": self.username
            },
            "Contacts": self.contacts
        })
    }

    fn event(&mut self, kind: &str, at: i64, previous: Option<Value>) -> Value {
        self.seq += 1;
        let mut e = json!({
            "AWSAccountId": "012345678901",
            "AgentARN": format!("{INSTANCE}/agent/{}", self.id),
            "CurrentAgentSnapshot": self.snapshot(),
            "EventId": format!("{}-{:06}", self.id, self.seq),
            "EventTimestamp": ts(at),
            "EventType": kind,
            "InstanceARN": INSTANCE,
            "Version": "2017-10-01"
        });
        if let Some(p) = previous {
            e["PreviousAgentSnapshot"] = p;
        }
        e
    }
}

/// One day of `agents` agents from `day_start_ms` (UTC midnight), every
/// agent's events in time order, all agents interleaved by time (as one
/// Kinesis shard would carry them). Each value is one agent event.
pub fn day(agents: usize, seed: u64, day_start_ms: i64) -> Vec<Value> {
    shifts(agents, seed, day_start_ms, 8 * 3_600_000)
}

/// Like [`day`] with shifts of `shift_ms` (lunch halfway through).
pub fn shifts(agents: usize, seed: u64, day_start_ms: i64, shift_ms: i64) -> Vec<Value> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut all: Vec<(i64, usize, Value)> = Vec::new();
    for a in 0..agents {
        let mut agent = Agent {
            id: format!("synth-{seed:x}-{a:05}"),
            username: format!("agent{a:05}"),
            status: (
                "Offline".into(),
                "OFFLINE".into(),
                day_start_ms - 8 * 3_600_000,
            ),
            profile: if a % 3 == 0 { "Sales" } else { "Support" },
            contacts: Vec::new(),
            seq: 0,
        };
        let mut out: Vec<(i64, Value)> = Vec::new();
        // Of three or more agents, the last one's CCP closes three quarters
        // into the shift without a logout (no more events, not even
        // heartbeats).
        let closes_ccp = agents >= 3 && a == agents - 1;
        // Shifts start between 06:00 and 10:00 and last 8 hours.
        let start = day_start_ms + 6 * 3_600_000 + rng.i64(0..4 * 3_600_000);
        let end = start + shift_ms;
        let lunch = start + shift_ms / 2;
        let mut t = start;
        out.push((t, agent.event("LOGIN", t, None)));
        let mut last = t;
        let change =
            |agent: &mut Agent, out: &mut Vec<(i64, Value)>, t: i64, f: &dyn Fn(&mut Agent)| {
                let prev = agent.snapshot();
                f(agent);
                out.push((t, agent.event("STATE_CHANGE", t, Some(prev))));
            };
        t += 4_000;
        change(&mut agent, &mut out, t, &|ag| {
            ag.status = ("Available".into(), "ROUTABLE".into(), t)
        });
        last = last.max(t);
        let mut lunched = false;
        let mut c = 0u32;
        while t < end {
            // Silence until the next contact: heartbeats every 120 s.
            let gap = rng.i64(30_000..600_000);
            let mut hb = last + 120_000;
            while hb < t + gap {
                let prev = agent.snapshot();
                out.push((hb, agent.event("HEART_BEAT", hb, Some(prev))));
                hb += 120_000;
            }
            t += gap;
            if !lunched && t >= lunch {
                lunched = true;
                change(&mut agent, &mut out, t, &|ag| {
                    ag.status = ("Lunch".into(), "CUSTOM".into(), t)
                });
                t += 1_800_000 + rng.i64(0..600_000);
                change(&mut agent, &mut out, t, &|ag| {
                    ag.status = ("Available".into(), "ROUTABLE".into(), t)
                });
                last = t;
                continue;
            }
            c += 1;
            let id = format!("{}-c{c:04}", agent.id);
            let contact = |state: &str, at: i64| {
                json!({
                    "Channel": if c.is_multiple_of(4) { "CHAT" } else { "VOICE" },
                    "ConnectedToAgentTimestamp": null, "ContactId": id, "InitialContactId": null,
                    "InitiationMethod": "INBOUND",
                    "Queue": {"ARN": format!("{INSTANCE}/queue/q-basic"), "Name": "BasicQueue", "Channels": ["VOICE"]},
                    "QueueTimestamp": ts(at - 20_000), "State": state, "StateStartTimestamp": ts(at)
                })
            };
            // One contact in ten is missed, one in five put on hold.
            let steps: Vec<(&str, i64)> = match rng.u8(0..10) {
                0 => vec![
                    ("CONNECTING", 0),
                    ("MISSED", rng.i64(15_000..20_000)),
                    ("", rng.i64(2_000..5_000)),
                ],
                1 | 2 => vec![
                    ("CONNECTING", 0),
                    ("CONNECTED", rng.i64(2_000..10_000)),
                    ("CONNECTED_ONHOLD", rng.i64(30_000..200_000)),
                    ("CONNECTED", rng.i64(20_000..120_000)),
                    ("ENDED", rng.i64(30_000..300_000)),
                    ("", rng.i64(10_000..90_000)),
                ],
                _ => vec![
                    ("CONNECTING", 0),
                    ("CONNECTED", rng.i64(2_000..10_000)),
                    ("ENDED", rng.i64(60_000..600_000)),
                    ("", rng.i64(10_000..90_000)),
                ],
            };
            for (state, d) in steps {
                t += d;
                let value = (!state.is_empty()).then(|| contact(state, t));
                change(&mut agent, &mut out, t, &|ag| {
                    ag.contacts = value.clone().into_iter().collect();
                });
            }
            last = t;
            if closes_ccp && t >= start + shift_ms * 3 / 4 {
                break;
            }
        }
        if closes_ccp {
            // The CCP closed without a logout: the events just stop.
            all.extend(out.into_iter().map(|(t, v)| (t, a, v)));
            continue;
        }
        change(&mut agent, &mut out, t, &|ag| {
            ag.status = ("Offline".into(), "OFFLINE".into(), t)
        });
        t += 1_000;
        out.push((t, agent.event("LOGOUT", t, None)));
        // Heartbeats for an hour after logout.
        let mut hb = t + 120_000;
        while hb < t + 3_600_000 {
            let prev = agent.snapshot();
            out.push((hb, agent.event("HEART_BEAT", hb, Some(prev))));
            hb += 120_000;
        }
        all.extend(out.into_iter().map(|(t, v)| (t, a, v)));
    }
    all.sort_by_key(|(t, a, _)| (*t, *a));
    all.into_iter().map(|(_, _, v)| v).collect()
}

fn contact(id: &str, channel: &str, state: &str, at: i64) -> Value {
    json!({
        "Channel": channel,
        "ConnectedToAgentTimestamp": null, "ContactId": id, "InitialContactId": null,
        "InitiationMethod": "INBOUND",
        "Queue": {"ARN": format!("{INSTANCE}/queue/q-basic"), "Name": "BasicQueue", "Channels": [channel]},
        "QueueTimestamp": ts(at - 20_000), "State": state, "StateStartTimestamp": ts(at)
    })
}

/// A hand-checked night across `midnight_ms` (a UTC midnight) for one
/// agent: two overlapping chats (one put on hold after midnight), their
/// after-contact work, a missed voice contact, then lunch and offline.
/// The expected daily totals are in the tests of `plan` and `it`.
pub fn night_shift(midnight_ms: i64) -> Vec<Value> {
    const MIN: i64 = 60_000;
    let m = midnight_ms;
    let mut ag = Agent {
        id: "synth-night-00001".into(),
        username: "night01".into(),
        status: ("Available".into(), "ROUTABLE".into(), m - 10 * MIN),
        profile: "Support",
        contacts: Vec::new(),
        seq: 0,
    };
    let (a, b, v) = ("night-chat-a", "night-chat-b", "night-voice-v");
    type Step<'a> = (i64, Vec<Value>, Option<(&'a str, &'a str)>);
    let steps: Vec<Step<'_>> = vec![
        (
            m - 5 * MIN,
            vec![contact(a, "CHAT", "CONNECTED", m - 5 * MIN)],
            None,
        ),
        (
            m - 2 * MIN,
            vec![
                contact(a, "CHAT", "CONNECTED", m - 5 * MIN),
                contact(b, "CHAT", "CONNECTING", m - 2 * MIN),
            ],
            None,
        ),
        (
            m - 110_000,
            vec![
                contact(a, "CHAT", "CONNECTED", m - 5 * MIN),
                contact(b, "CHAT", "CONNECTED", m - 110_000),
            ],
            None,
        ),
        (
            m + 2 * MIN,
            vec![
                contact(a, "CHAT", "ENDED", m + 2 * MIN),
                contact(b, "CHAT", "CONNECTED", m - 110_000),
            ],
            None,
        ),
        (
            m + 3 * MIN,
            vec![contact(b, "CHAT", "CONNECTED_ONHOLD", m + 3 * MIN)],
            None,
        ),
        (
            m + 4 * MIN,
            vec![contact(b, "CHAT", "CONNECTED", m + 4 * MIN)],
            None,
        ),
        (
            m + 5 * MIN,
            vec![contact(b, "CHAT", "ENDED", m + 5 * MIN)],
            None,
        ),
        (m + 5 * MIN + 30_000, vec![], None),
        (
            m + 6 * MIN,
            vec![contact(v, "VOICE", "MISSED", m + 6 * MIN)],
            None,
        ),
        (m + 6 * MIN + 20_000, vec![], Some(("Lunch", "CUSTOM"))),
        (m + 36 * MIN + 20_000, vec![], Some(("Offline", "OFFLINE"))),
    ];
    let mut out = Vec::new();
    for (at, contacts, status) in steps {
        let prev = ag.snapshot();
        ag.contacts = contacts;
        if let Some((name, kind)) = status {
            ag.status = (name.into(), kind.into(), at);
        }
        out.push(ag.event("STATE_CHANGE", at, Some(prev)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, decode_event};

    #[test]
    fn synthetic_days_decode_and_look_real() {
        let events = day(3, 7, 1_795_132_800_000);
        assert!(events.len() > 300, "{}", events.len());
        let decoded: Vec<_> = events
            .iter()
            .map(|v| decode_event(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let beats = decoded
            .iter()
            .filter(|e| e.kind == EventType::HeartBeat)
            .count();
        assert!(beats > decoded.len() / 10, "{beats} of {}", decoded.len());
        assert_eq!(
            decoded
                .iter()
                .filter(|e| e.kind == EventType::Login)
                .count(),
            3
        );
        assert_eq!(day(3, 7, 1_795_132_800_000), events, "deterministic");
        let states: Vec<&str> = decoded
            .iter()
            .flat_map(|e| e.current.contacts.iter().filter_map(|c| c.state.as_deref()))
            .collect();
        assert!(states.contains(&"CONNECTED_ONHOLD") && states.contains(&"MISSED"));
        // Two logouts: the third agent's CCP closes without one.
        let logouts = decoded.iter().filter(|e| e.kind == EventType::Logout);
        assert_eq!(logouts.count(), 2);
    }
}
