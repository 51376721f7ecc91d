use super::*;
use proptest::prelude::*;
use streamfold_shared::engine::Decoded;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::record::{StreamEventFile, StreamRecord};
use streamfold_shared::testing::fixture;

fn records() -> Vec<StreamRecord> {
    serde_json::from_str::<StreamEventFile>(&fixture("lambda-dynamodb-event.json"))
        .map(|f| f.records)
        .unwrap_or_default()
}

fn any_attr() -> impl Strategy<Value = serde_dynamo::AttributeValue> {
    use serde_dynamo::AttributeValue as A;
    prop_oneof![
        ".{0,40}".prop_map(A::S),
        "[0-9.e-]{0,10}".prop_map(A::N),
        any::<bool>().prop_map(A::Bool),
        Just(A::Null(true)),
        prop::collection::vec(".{0,10}".prop_map(A::S), 0..3).prop_map(A::L),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any attribute of any fixture record replaced by any value: decode
    /// never panics, and a refusal never quotes the message text.
    #[test]
    fn decode_never_panics(which in 0usize..8, name in prop::sample::select(vec![
        "pk", "sk", "type", "message_uuid", "message", "user_uuid", "created_at", "participants",
    ]), value in any_attr(), in_keys in any::<bool>()) {
        let mut all = records();
        prop_assume!(!all.is_empty());
        let mut r = all.swap_remove(which % all.len());
        if in_keys {
            r.dynamodb.keys.insert(name.to_owned(), value.clone());
        }
        if let Some(img) = r.dynamodb.new_image.as_mut() {
            img.insert(name.to_owned(), value);
        }
        if let Decoded::Invalid(why) = decode(&r) {
            prop_assert!(!why.contains("Hey, are you coming"));
        }
    }

    /// Coalescing: whatever the order and duplication of posts, the
    /// projection is the newest post.
    #[test]
    fn plan_projects_the_newest_post(times in prop::collection::vec(0u32..50, 1..40), dup in 0usize..3) {
        let events: Vec<Event> = times
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                let m = Message {
                    group: GroupId::new("g").unwrap_or_else(|e| panic!("{e}")),
                    key: MessageKey {
                        created_at: Timestamp::from_epoch_millis(1_763_632_800_000 + i64::from(*t) * 1000)
                            .unwrap_or_else(Timestamp::now),
                        id: MessageId::new(format!("m{i}")).unwrap_or_else(|e| panic!("{e}")),
                    },
                    text: format!("t{i}"),
                    sender: UserId::new("u").unwrap_or_else(|e| panic!("{e}")),
                };
                std::iter::repeat_n(Event::Posted(m), dup + 1)
            })
            .collect();
        let refs: Vec<&Event> = events.iter().collect();
        let newest = events.iter().filter_map(|e| match e {
            Event::Posted(m) => Some(&m.key),
            _ => None,
        }).max();
        let (target, _) = plan(None, &refs);
        match target {
            Target::Project(m) => prop_assert_eq!(Some(&m.key), newest),
            other => prop_assert!(false, "expected a projection, got {:?}", other),
        }
        let mut rev = refs.clone();
        rev.reverse();
        let (target, _) = plan(None, &rev);
        prop_assert!(matches!(target, Target::Project(m) if Some(&m.key) == newest));
    }
}
