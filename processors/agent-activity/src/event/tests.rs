use super::*;
use streamfold_shared::testing::fixture;

pub(crate) fn day() -> Vec<AgentEvent> {
    fixture("connect-agent-events.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| decode_event(l.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn every_line_of_the_day_decodes() {
    let events = day();
    assert_eq!(events.len(), 12);
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    use EventType::*;
    assert_eq!(
        kinds,
        [
            Login,
            StateChange,
            StateChange,
            StateChange,
            StateChange,
            StateChange,
            HeartBeat,
            StateChange,
            StateChange,
            StateChange,
            StateChange,
            Logout
        ]
    );
    for e in &events {
        assert_eq!(e.agent.as_str(), "4c1f6ad5-0b5e-4d0e-9f53-2b7b1e8f3a10");
        assert_eq!(e.current.username.as_deref(), Some("mgarcia"));
    }
    // LOGIN and LOGOUT come without a previous snapshot.
    assert!(events[0].previous.is_none());
    assert!(events[11].previous.is_none());
    assert_eq!(events[0].at.to_string(), "2026-11-20T14:00:01.001000Z");
    let login = &events[0].current;
    let status = login.status.as_ref().unwrap_or_else(|| panic!("status"));
    assert_eq!(status.name, "Offline");
    assert_eq!(status.kind.as_deref(), Some("OFFLINE"));
    assert_eq!(
        status.since.map(|t| t.to_string()).as_deref(),
        Some("2026-11-19T22:10:00.000000Z")
    );
    assert_eq!(
        login.routing_profile.as_ref().map(|r| r.name.as_str()),
        Some("Basic Routing Profile")
    );
    // The contact: CONNECTING with a null ConnectedToAgentTimestamp.
    let c = &events[2].current.contacts[0];
    assert_eq!(c.state.as_deref(), Some("CONNECTING"));
    assert_eq!(c.channel.as_deref(), Some("VOICE"));
    assert_eq!(c.queue.as_deref(), Some("BasicQueue"));
    assert_eq!(
        events[10]
            .current
            .routing_profile
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("Sales")
    );
}

#[test]
fn the_variant_decodes_like_the_canonical_spelling() {
    let e = decode_event(fixture("connect-agent-event-variant.json").as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.kind, EventType::StateChange);
    let next = e
        .current
        .next_status
        .as_ref()
        .unwrap_or_else(|| panic!("next status"));
    assert_eq!(next.name, "Break");
    assert_eq!(
        next.enqueued_at.map(|t| t.to_string()).as_deref(),
        Some("2026-11-20T16:20:00.000000Z")
    );
    assert_eq!(e.current.contacts[0].channel.as_deref(), Some("TASK"));
    // The canonical spelling gives the same event.
    let canonical = fixture("connect-agent-event-variant.json")
        .replace("\"EnqueueTimestamp\"", "\"EnqueuedTimestamp\"")
        .replace("\"TASKS\"", "\"TASK\"");
    let c = decode_event(canonical.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c, e);
}

#[test]
fn the_lambda_fixture_payloads_decode_and_the_last_is_refused() {
    let event: aws_lambda_events::event::kinesis::KinesisEvent =
        serde_json::from_str(&fixture("lambda-kinesis-event.json"))
            .unwrap_or_else(|e| panic!("{e}"));
    let results: Vec<_> = event
        .records
        .iter()
        .map(|r| decode_event(&r.kinesis.data.0))
        .collect();
    assert_eq!(results.len(), 4);
    assert!(results[..3].iter().all(Result::is_ok));
    match &results[3] {
        Err(e) => assert!(e.0.starts_with("data is not JSON"), "{e}"),
        Ok(_) => panic!("not JSON must be refused"),
    }
}

fn first_line() -> serde_json::Value {
    let line = fixture("connect-agent-events.jsonl");
    serde_json::from_str(line.lines().nth(1).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(v: &serde_json::Value) -> String {
    match decode_event(v.to_string().as_bytes()) {
        Err(e) => e.0,
        Ok(_) => panic!("expected a refusal"),
    }
}

#[test]
fn hostile_ids_can_never_become_a_key() {
    let long = "a".repeat(10 * 1024);
    let hostile = [
        "a#b",
        "AGENT#other",
        "a\u{0}b",
        "a\nb",
        "a\u{1b}[31m",
        long.as_str(),
        "",
    ];
    for id in hostile {
        let mut v = first_line();
        v["AgentARN"] = format!("arn:aws:connect:x:1:instance/i/agent/{id}").into();
        let why = refused(&v);
        assert!(why.contains("AgentARN"), "{id:?}: {why}");
        // The refusal never echoes a 10 KB value back.
        assert!(why.len() < 300, "{why}");
        let mut v = first_line();
        v["EventId"] = id.into();
        assert!(refused(&v).contains("EventId"), "{id:?}");
    }
}

#[test]
fn missing_required_fields_are_refused_clearly() {
    for field in ["AgentARN", "EventId", "EventTimestamp"] {
        let mut v = first_line();
        v.as_object_mut().map(|o| o.remove(field));
        let why = refused(&v);
        assert!(why.contains(field), "{field}: {why}");
        let mut v = first_line();
        v[field] = serde_json::Value::Null;
        assert!(refused(&v).contains(field));
    }
    let mut v = first_line();
    v["Version"] = "2099-01-01".into();
    let why = refused(&v);
    assert!(
        why.contains("Version \"2099-01-01\"") && why.contains("2017-10-01"),
        "{why}"
    );
    let mut v = first_line();
    v["EventType"] = "DANCE".into();
    assert!(refused(&v).contains("unknown EventType"));
    let mut v = first_line();
    v["AgentARN"] = "arn:aws:connect:x:1:instance/i/agent/a#b".into();
    assert!(refused(&v).contains("'#'"));
    let mut v = first_line();
    v["EventTimestamp"] = "yesterday".into();
    assert!(refused(&v).contains("EventTimestamp"));
}

#[test]
fn errors_never_show_names() {
    // A wrongly typed field whose neighbour is a name: serde's message
    // must not carry the values.
    let mut v = first_line();
    v["CurrentAgentSnapshot"]["Configuration"]["FirstName"] = serde_json::json!({"x": 1});
    let why = refused(&v);
    assert!(!why.contains("Maria") && !why.contains("Garcia"), "{why}");
    let why = match decode_event(b"{\"AgentARN\": \"Maria Garcia") {
        Err(e) => e.0,
        Ok(_) => panic!("refusal"),
    };
    assert!(!why.contains("Maria"), "{why}");
    let why = match decode_event(b"[\"Maria Garcia\"]") {
        Err(e) => e.0,
        Ok(_) => panic!("refusal"),
    };
    assert!(!why.contains("Maria"), "{why}");
}

#[test]
fn nulls_and_unknown_fields_are_accepted() {
    let mut v = first_line();
    v["PreviousAgentSnapshot"] = serde_json::Value::Null;
    v["SomethingNew"] = serde_json::json!({"a": [1, 2]});
    v["CurrentAgentSnapshot"]["Contacts"] = serde_json::Value::Null;
    v["CurrentAgentSnapshot"]["NextAgentStatus"] = serde_json::Value::Null;
    v["CurrentAgentSnapshot"]["Configuration"]["RoutingProfile"]["Brand"] = "new".into();
    let e = decode_event(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert!(e.previous.is_none());
    assert!(e.current.contacts.is_empty());
}
