use super::*;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use streamfold_shared::attrs::sv;
use streamfold_shared::engine::Decoded;
use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::Extension;
use streamfold_shared::record::{ChangeKind, StreamRecord};
use streamfold_shared::record::{StreamData, UserIdentity};

fn agent(id: &str) -> AgentId {
    AgentId::new(id).unwrap_or_else(|e| panic!("{e}"))
}

fn ext(x: &str) -> Extension {
    Extension::new(x).unwrap_or_else(|e| panic!("{e}"))
}

fn image(pairs: &[(&str, &str)]) -> serde_dynamo::Item {
    let map: HashMap<String, AttributeValue> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), sv(*v)))
        .collect();
    serde_dynamo::Item::from(map)
}

fn record(
    kind: ChangeKind,
    pk: &str,
    new: Option<&[(&str, &str)]>,
    old: Option<&[(&str, &str)]>,
) -> StreamRecord {
    StreamRecord {
        event_id: "e1".into(),
        kind,
        event_version: None,
        event_source: None,
        aws_region: None,
        event_source_arn: None,
        user_identity: None,
        dynamodb: StreamData {
            approximate_creation: None,
            keys: image(&[("pk", pk), ("sk", "PROFILE")]),
            new_image: new.map(image),
            old_image: old.map(image),
            sequence_number: "1".into(),
            size_bytes: None,
            stream_view_type: None,
        },
    }
}

const WAITING_PROFILE: &[(&str, &str)] = &[
    ("pk", "AGENT#a1"),
    ("sk", "PROFILE"),
    ("type", "agent"),
    ("first_name", "Ada"),
    ("gsi1pk", WAITING),
];

#[test]
fn insert_of_a_waiting_profile_is_an_arrival() {
    let r = record(ChangeKind::Insert, "AGENT#a1", Some(WAITING_PROFILE), None);
    assert!(matches!(
        decode(&r),
        Decoded::Event { key, event: Event::Arrived { prior: None, .. } } if key == "a1"
    ));
}

#[test]
fn own_assignment_and_other_types_are_ignored() {
    let with_ext = [("type", "agent"), ("extension", "0001")];
    let r = record(
        ChangeKind::Modify,
        "AGENT#a1",
        Some(&with_ext),
        Some(WAITING_PROFILE),
    );
    assert!(matches!(decode(&r), Decoded::Ignore));
    let ext_item = [("type", "ext"), ("extension", "0001")];
    let mut r = record(ChangeKind::Modify, "EXT#0001", Some(&ext_item), None);
    r.dynamodb.keys = image(&[("pk", "EXT#0001"), ("sk", "EXT")]);
    assert!(matches!(decode(&r), Decoded::Ignore));
    // A waiting agent leaving frees nothing.
    let r = record(ChangeKind::Remove, "AGENT#a1", None, Some(WAITING_PROFILE));
    assert!(matches!(decode(&r), Decoded::Ignore));
}

#[test]
fn a_keys_only_profile_image_is_ignored_and_a_typeless_one_refused() {
    let keys = [("pk", "AGENT#a1"), ("sk", "PROFILE")];
    let r = record(ChangeKind::Insert, "AGENT#a1", Some(&keys), None);
    assert!(matches!(decode(&r), Decoded::Ignore));
    let typeless = [("pk", "AGENT#a1"), ("sk", "PROFILE"), ("first_name", "Ada")];
    let r = record(ChangeKind::Insert, "AGENT#a1", Some(&typeless), None);
    assert!(matches!(decode(&r), Decoded::Invalid(why) if why.contains("no type")));
}

#[test]
fn removal_and_ttl_removal_are_departures() {
    let old = [("type", "agent"), ("extension", "0042")];
    let mut r = record(ChangeKind::Remove, "AGENT#a1", None, Some(&old));
    assert!(matches!(
        decode(&r),
        Decoded::Event { event: Event::Departed { ttl: false, ref extension, .. }, .. }
            if extension.as_str() == "0042"
    ));
    r.user_identity = Some(UserIdentity {
        kind: "Service".into(),
        principal_id: "dynamodb.amazonaws.com".into(),
    });
    assert!(matches!(
        decode(&r),
        Decoded::Event {
            event: Event::Departed { ttl: true, .. },
            ..
        }
    ));
}

#[test]
fn overwritten_profile_remembers_its_extension() {
    let old = [("type", "agent"), ("extension", "0042")];
    let new = [("type", "agent"), ("status", "Available")];
    let r = record(ChangeKind::Modify, "AGENT#a1", Some(&new), Some(&old));
    assert!(matches!(
        decode(&r),
        Decoded::Event { event: Event::Arrived { prior: Some(ref x), .. }, .. } if x.as_str() == "0042"
    ));
}

#[test]
fn malformed_records_are_refused_without_names() {
    let bad = [
        ("type", "agent"),
        ("first_name", "Ada"),
        ("extension", "x1"),
    ];
    let r = record(ChangeKind::Insert, "AGENT#a1", Some(&bad), None);
    match decode(&r) {
        Decoded::Invalid(why) => assert!(why.contains("a1") && !why.contains("Ada"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let r = record(ChangeKind::Insert, "AGENT#a#1", Some(WAITING_PROFILE), None);
    assert!(matches!(decode(&r), Decoded::Invalid(_)));
    let r = record(ChangeKind::Insert, "AGENT#a1", None, None);
    assert!(matches!(decode(&r), Decoded::Invalid(_)));
    let untyped = [("pk", "AGENT#a1"), ("status", "Available")];
    let r = record(ChangeKind::Insert, "AGENT#a1", Some(&untyped), None);
    assert!(matches!(decode(&r), Decoded::Invalid(_)));
}

fn profile(id: &str, x: Option<&str>) -> Profile {
    Profile {
        agent: agent(id),
        agent_arn: None,
        username: None,
        extension: x.map(ext),
        waiting: x.is_none(),
        queue_key: x
            .is_none()
            .then(|| format!("2026-11-20T08:00:00.000000Z#{id}")),
    }
}

#[test]
fn plan_assigns_once_and_only_to_existing_waiting_profiles() {
    let a = Event::Arrived {
        agent: agent("a1"),
        prior: None,
    };
    let actions = plan(Some(&profile("a1", None)), &[&a, &a]);
    assert_eq!(actions.len(), 1);
    // It answers the first arrival (where a cut batch would serve it).
    assert!(matches!(actions[0], (0, Action::Assign { .. })));
    assert!(plan(Some(&profile("a1", Some("0001"))), &[&a]).is_empty());
    assert!(plan(None, &[&a]).is_empty());
}

#[test]
fn plan_releases_each_extension_once_unless_held_again() {
    let d = Event::Departed {
        agent: agent("a1"),
        extension: ext("0007"),
        ttl: false,
    };
    let a = Event::Arrived {
        agent: agent("a1"),
        prior: None,
    };
    let actions = plan(None, &[&d, &d]);
    assert_eq!(actions.len(), 1);
    // Left, came back and is waiting: release first, then assign.
    let actions = plan(Some(&profile("a1", None)), &[&d, &a]);
    assert!(matches!(
        actions.as_slice(),
        [(0, Action::Release { .. }), (1, Action::Assign { .. })]
    ));
    // Came back and holds the same extension again: a late REMOVE of the
    // old profile must not take it away.
    assert!(plan(Some(&profile("a1", Some("0007"))), &[&d]).is_empty());
}
