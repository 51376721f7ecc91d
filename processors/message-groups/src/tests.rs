use super::*;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use streamfold_shared::attrs::sv;
use streamfold_shared::engine::{Decoded, Step};
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::record::{StreamEventFile, StreamRecord};
use streamfold_shared::testing::fixture;

fn fixture_records() -> Vec<StreamRecord> {
    let file: StreamEventFile = serde_json::from_str(&fixture("lambda-dynamodb-event.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    file.records
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn msg(at: &str, id: &str, text: &str) -> Message {
    Message {
        group: GroupId::new("g").unwrap_or_else(|e| panic!("{e}")),
        key: MessageKey {
            created_at: ts(at),
            id: MessageId::new(id).unwrap_or_else(|e| panic!("{e}")),
        },
        text: text.to_owned(),
        sender: UserId::new("u").unwrap_or_else(|e| panic!("{e}")),
    }
}

#[test]
fn decodes_every_fixture_record() {
    let decoded: Vec<Decoded<GroupId, Event>> = fixture_records().iter().map(decode).collect();
    assert_eq!(decoded.len(), 8);
    assert!(matches!(decoded[0], Decoded::Ignore), "group item");
    assert!(matches!(
        &decoded[1],
        Decoded::Event { key, event: Event::Posted(m) }
            if key == "5ae290ed-55d1-47a0-bc6d-fe2bc2700399"
            && m.key.id.as_str() == "11111111-1111-4111-8111-111111111111"
            && m.text == "Hey, are you coming to the review?"
    ));
    assert!(matches!(decoded[2], Decoded::Ignore), "own preview write");
    assert!(
        matches!(&decoded[3], Decoded::Event { event: Event::Posted(m), .. } if m.text == "Yes, five minutes.")
    );
    assert!(
        matches!(&decoded[4], Decoded::Event { event: Event::Edited(m), .. } if m.text == "Yes, ten minutes.")
    );
    assert!(matches!(
        &decoded[5],
        Decoded::Event { event: Event::Deleted { key, .. }, .. }
            if key.id.as_str() == "22222222-2222-4222-8222-222222222222"
    ));
    assert!(
        matches!(decoded[6], Decoded::Ignore),
        "TTL delete of an activity"
    );
    match &decoded[7] {
        Decoded::Invalid(why) => assert!(why.contains("contains '#'"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn missing_attributes_are_refused_without_leaking_values() {
    let mut records = fixture_records();
    let mut r = records.swap_remove(1);
    if let Some(img) = r.dynamodb.new_image.as_mut() {
        img.remove("message_uuid");
    }
    match decode(&r) {
        Decoded::Invalid(why) => {
            assert!(why.contains("message_uuid"), "{why}");
            assert!(!why.contains("review"), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn ttl_deletion_of_a_message_is_ignored() {
    let mut records = fixture_records();
    let mut r = records.swap_remove(5);
    r.user_identity = Some(streamfold_shared::record::UserIdentity {
        kind: "Service".into(),
        principal_id: "dynamodb.amazonaws.com".into(),
    });
    assert!(matches!(decode(&r), Decoded::Ignore));
}

#[test]
fn plan_coalesces_to_the_newest_post() {
    let m: Vec<Event> = (0..1000)
        .map(|i| {
            Event::Posted(msg(
                &format!("2026-11-20T10:00:00.{:06}Z", (i * 7919) % 1000),
                &format!("m{i:04}"),
                "t",
            ))
        })
        .collect();
    let refs: Vec<&Event> = m.iter().collect();
    let (target, steps) = plan(None, &refs);
    let Target::Project(newest) = target else {
        panic!("expected a projection")
    };
    let max = m
        .iter()
        .filter_map(|e| match e {
            Event::Posted(m) => Some(&m.key),
            _ => None,
        })
        .max();
    assert_eq!(Some(&newest.key), max);
    assert_eq!(steps.len(), 1000);
}

#[test]
fn plan_ignores_older_and_duplicate_posts() {
    let a = Event::Posted(msg("2026-11-20T10:00:00Z", "a", "x"));
    let b = Event::Posted(msg("2026-11-20T10:00:01Z", "b", "y"));
    let (t, steps) = plan(
        match &b {
            Event::Posted(m) => Some(&m.key),
            _ => None,
        },
        &[&a, &b],
    );
    assert_eq!(t, Target::Keep);
    assert_eq!(steps, [Step::NoOp, Step::NoOp]);
}

#[test]
fn plan_edit_of_shown_message_reprojects_and_old_edit_is_noop() {
    let a = msg("2026-11-20T10:00:00Z", "a", "x");
    let b = msg("2026-11-20T10:00:01Z", "b", "y");
    let edit_b = Event::Edited(Message {
        text: "y2".into(),
        ..b.clone()
    });
    let edit_a = Event::Edited(Message {
        text: "x2".into(),
        ..a.clone()
    });
    let (t, steps) = plan(Some(&b.key), &[&edit_a, &edit_b]);
    assert!(matches!(t, Target::Project(m) if m.text == "y2"));
    assert_eq!(steps, [Step::NoOp, Step::Applied]);
}

#[test]
fn plan_delete_of_shown_message_resolves() {
    let a = msg("2026-11-20T10:00:00Z", "a", "x");
    let b = msg("2026-11-20T10:00:01Z", "b", "y");
    let post_b = Event::Posted(b.clone());
    let del_b = Event::Deleted {
        group: b.group.clone(),
        key: b.key.clone(),
    };
    let del_a = Event::Deleted {
        group: a.group.clone(),
        key: a.key.clone(),
    };
    let (t, _) = plan(Some(&a.key), &[&post_b, &del_b]);
    assert_eq!(t, Target::Resolve);
    // Deleting a message that is not shown changes nothing.
    let (t, steps) = plan(Some(&b.key), &[&del_a]);
    assert_eq!(t, Target::Keep);
    assert_eq!(steps, [Step::NoOp]);
}

#[test]
fn group_items_decode() {
    let item: Item = HashMap::from([
        ("pk".to_owned(), sv("GROUP#g1")),
        ("sk".to_owned(), sv("GROUP")),
        (
            "participants".to_owned(),
            AttributeValue::L(vec![
                AttributeValue::M(HashMap::from([
                    ("user_uuid".to_owned(), sv("u1")),
                    ("user_handle".to_owned(), sv("a")),
                    ("user_display_name".to_owned(), sv("A")),
                ])),
                AttributeValue::M(HashMap::from([
                    ("user_uuid".to_owned(), sv("u2")),
                    ("user_handle".to_owned(), sv("b")),
                    ("user_display_name".to_owned(), sv("B")),
                ])),
            ]),
        ),
        (
            "last_message_key".to_owned(),
            sv("2026-11-20T10:00:00.000000Z#m1"),
        ),
    ]);
    let state = GroupState::from_item(item.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.group.as_str(), "g1");
    assert_eq!(
        state.last.map(|k| k.render()).as_deref(),
        Some("2026-11-20T10:00:00.000000Z#m1")
    );
    let mut one = item;
    one.insert("participants".to_owned(), AttributeValue::L(vec![]));
    assert!(GroupState::from_item(one).is_err());
}
