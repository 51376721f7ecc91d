//! Consumed capacity as the metrics see it: the request counter asks for
//! `ReturnConsumedCapacity=INDEXES` and adds up the answers, per
//! operation, table and index, as the local endpoint computes them by
//! DynamoDB's rules (docs/testing.md, "The local endpoint's consumed
//! capacity").

use message_groups::{MessageGroups, Participant};
use streamfold::chat::{self, NewMessage};
use streamfold_shared::emf::Capacity;
use streamfold_shared::engine::run_batch;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp};
use streamfold_shared::metrics::{CapacityKey, Units};
use streamfold_tests::builders::user;
use streamfold_tests::table;

fn message(id: &str, at: &str, sender: &Participant, text: &str) -> NewMessage {
    NewMessage {
        group: GroupId::new("cap-group").expect("the group id is valid"),
        id: MessageId::new(id).expect("the message id is valid"),
        at: Timestamp::parse(at).expect("the timestamp parses"),
        sender: sender.clone(),
        text: text.to_owned(),
    }
}

/// One preview move, items all under 1 KB: a transaction of six actions
/// (two old previews deleted, two new ones put, the group's guarded update,
/// the check of the shown message), each billed twice its 1 WRU, and no
/// index entry (previews and groups carry no index key): 12 WRU; the
/// group read before it, one strongly consistent BatchGetItem key: 1 RRU.
#[tokio::test]
async fn a_preview_move_costs_twelve_wru_and_one_rru() {
    let t = table("cap-move").await;
    let (a, b) = (user("cap-user-a", "ann"), user("cap-user-b", "bob"));
    let first = message("m1", "2026-11-20T10:00:00Z", &a, "hi");
    chat::create_group(t.exec(), [a.clone(), b.clone()], first.at, &first)
        .await
        .expect("the group is created");
    let records = t.stream_records().await;
    let report = run_batch(&MessageGroups, t.ctx(), &records).await;
    assert!(report.failures.is_empty(), "{:?}", report.outcomes);

    let second = message("m2", "2026-11-20T10:00:05Z", &b, "hello");
    chat::post(t.exec(), &second)
        .await
        .expect("the second message is posted");
    let all = t.stream_records().await;
    // The new message and the first batch's own writes, which
    // message-groups ignores.
    let new = &all[records.len()..];
    t.counter().reset();
    let report = run_batch(&MessageGroups, t.ctx(), new).await;
    assert!(report.failures.is_empty(), "{:?}", report.outcomes);
    assert_eq!(report.counts().applied, 1);

    let capacity = t.counter().capacity();
    let on_table = |op: &str| {
        capacity
            .get(&CapacityKey {
                operation: op.to_owned(),
                table: t.name.clone(),
                index: String::new(),
            })
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(
        on_table("TransactWriteItems"),
        Units {
            write: 12.0,
            read: 0.0
        },
        "{capacity:?}"
    );
    assert_eq!(
        on_table("BatchGetItem"),
        Units {
            write: 0.0,
            read: 1.0
        },
        "{capacity:?}"
    );
    assert_eq!(capacity.len(), 2, "no index touched: {capacity:?}");
    assert_eq!(
        t.counter().consumed(),
        Units {
            write: 12.0,
            read: 1.0
        }
    );
    // The EMF figures of such a batch carry the same totals.
    let emf = Capacity::from_entries(&capacity);
    assert_eq!((emf.write_units, emf.read_units), (12.0, 1.0));
}
