use super::*;
use proptest::prelude::*;
use streamfold_shared::testing::fixture;

fn lines() -> Vec<String> {
    fixture("connect-agent-events.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON path of a value (object keys and array indexes).
fn paths(v: &serde_json::Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let mut p = at.clone();
                p.push(k.clone());
                out.push(p.clone());
                paths(x, p, out);
            }
        }
        serde_json::Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                let mut p = at.clone();
                p.push(i.to_string());
                out.push(p.clone());
                paths(x, p, out);
            }
        }
        _ => {}
    }
}

fn set(v: &mut serde_json::Value, path: &[String], value: serde_json::Value) {
    let mut cur = v;
    for part in path {
        cur = match cur {
            serde_json::Value::Object(m) => match m.get_mut(part) {
                Some(x) => x,
                None => return,
            },
            serde_json::Value::Array(xs) => {
                match part.parse::<usize>().ok().and_then(|i| xs.get_mut(i)) {
                    Some(x) => x,
                    None => return,
                }
            }
            _ => return,
        };
    }
    *cur = value;
}

/// Found by the `agent_event` fuzz target: a payload that is one JSON
/// string with escaped quotes in it was echoed into the refusal
/// (1,263 bytes of it), past the redaction of quoted values.
#[test]
fn a_string_with_escaped_quotes_is_refused_without_its_text() {
    let payload = serde_json::json!("Maria \"Mia\" Garcia, arn:aws:connect:x:1:instance/i/agent/a");
    let why = match decode_event(payload.to_string().as_bytes()) {
        Err(e) => e.0,
        Ok(_) => panic!("a string is not an agent event"),
    };
    assert!(!why.contains("Mia") && !why.contains("arn:"), "{why}");
    assert_eq!(fuzz::agent_event(payload.to_string().as_bytes()), Ok(()));
    let crash = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/seeds/agent_event/regress-escaped-quotes.json"
    ))
    .unwrap_or_default();
    assert!(!crash.is_empty());
    assert_eq!(fuzz::agent_event(&crash), Ok(()));
}

#[test]
fn the_fixture_events_pass_the_fuzz_body() {
    for line in lines() {
        assert!(decode_event(line.as_bytes()).is_ok());
        assert_eq!(fuzz::agent_event(line.as_bytes()), Ok(()));
    }
    let variant = fixture("connect-agent-event-variant.json");
    assert_eq!(fuzz::agent_event(variant.as_bytes()), Ok(()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        fuzz::agent_event(&data).map_err(TestCaseError::fail)?;
    }

    /// A fixture event cut anywhere, or with one byte changed, never
    /// panics the decoder.
    #[test]
    fn damaged_events_never_panic(which in 0usize..12, cut in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let lines = lines();
        prop_assume!(!lines.is_empty());
        let mut data = lines[which % lines.len()].clone().into_bytes();
        let i = at.index(data.len().max(1));
        if let Some(b) = data.get_mut(i) {
            *b = byte;
        }
        fuzz::agent_event(&data).map_err(TestCaseError::fail)?;
        data.truncate(cut.index(data.len().max(1)));
        fuzz::agent_event(&data).map_err(TestCaseError::fail)?;
    }

    /// Any field of a fixture event replaced by any JSON value: the
    /// decoder never panics, an accepted event has a valid key, and a
    /// refusal never quotes the agent's name.
    #[test]
    fn any_field_replaced_never_panics_or_leaks(which in 0usize..12, path_at in any::<prop::sample::Index>(), value in any_json()) {
        let lines = lines();
        prop_assume!(!lines.is_empty());
        let mut v: serde_json::Value = serde_json::from_str(&lines[which % lines.len()]).unwrap_or_default();
        let mut all = Vec::new();
        paths(&v, Vec::new(), &mut all);
        prop_assume!(!all.is_empty());
        set(&mut v, &all[path_at.index(all.len())], value);
        fuzz::agent_event(v.to_string().as_bytes()).map_err(TestCaseError::fail)?;
        match decode_event(v.to_string().as_bytes()) {
            Ok(e) => {
                prop_assert!(AgentId::new(e.agent.as_str()).is_ok());
                prop_assert!(EventId::new(e.id.as_str()).is_ok());
            }
            Err(why) => {
                prop_assert!(!why.0.contains("Maria") && !why.0.contains("Garcia"), "{}", why.0);
            }
        }
    }
}
