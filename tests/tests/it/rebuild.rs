//! `streamfold rebuild` against the local endpoint: previews recomputed from
//! their sources after they were lost, orphans removed, and `check` clean
//! on a table the pipeline made.

use message_groups::MessageGroups;
use streamfold::chat;
use streamfold::rebuild::{self, RebuildScope};
use streamfold_shared::attrs::sv;
use streamfold_shared::engine::run_batch;
use streamfold_shared::executor::Item;
use streamfold_shared::keys::Key;
use streamfold_tests::table;

const CHECK: RebuildScope = RebuildScope {
    previews: true,
    extensions: true,
    daily: true,
    repair: false,
};

#[tokio::test]
async fn rebuild_after_deleting_all_previews_gives_identical_previews() {
    let t = table("rebuild").await;
    chat::seed(t.exec())
        .await
        .expect("the demo conversations are seeded");
    let records = t.stream_records().await;
    let report = run_batch(&MessageGroups, t.ctx(), &records).await;
    assert!(report.failures.is_empty(), "{:?}", report.outcomes);
    let before = t.items_of_type("preview").await;
    assert!(!before.is_empty());

    let clean = rebuild::run(&t.app, CHECK, false)
        .await
        .expect("the rebuild runs");
    assert!(clean.is_clean(), "{clean:?}");
    assert!(clean.groups >= 3);

    // Lose every preview, and add one no group shows.
    let keys: Vec<Key> = before
        .iter()
        .map(|p| {
            Key::parse(
                p["pk"].as_str().unwrap_or_default(),
                p["sk"].as_str().unwrap_or_default(),
            )
            .expect("the key parses")
        })
        .collect();
    t.exec()
        .batch_delete(&keys)
        .await
        .expect("the items are deleted");
    let group = before[0]["message_group_uuid"].as_str().unwrap_or_default();
    let orphan = Item::from([
        (
            "pk".to_owned(),
            sv("GRP#ffffffff-0000-4000-8000-000000000001"),
        ),
        (
            "sk".to_owned(),
            sv(format!("2020-01-01T00:00:00.000000Z#{group}")),
        ),
        ("type".to_owned(), sv("preview")),
        ("message_group_uuid".to_owned(), sv(group)),
        (
            "last_message_at".to_owned(),
            sv("2020-01-01T00:00:00.000000Z"),
        ),
        ("message".to_owned(), sv("stale")),
    ]);
    t.exec()
        .batch_put(vec![orphan])
        .await
        .expect("the items are written");

    let found = rebuild::run(&t.app, CHECK, false)
        .await
        .expect("the rebuild runs");
    assert_eq!(found.previews_wrong.len() as u64, found.groups, "{found:?}");
    assert_eq!(found.orphans.len(), 1, "{found:?}");
    assert_eq!(found.repaired, 0);

    let fixed = rebuild::run(
        &t.app,
        RebuildScope {
            repair: true,
            ..CHECK
        },
        false,
    )
    .await
    .expect("the rebuild runs");
    assert!(fixed.repair_failed.is_empty(), "{fixed:?}");
    assert_eq!(fixed.repaired, found.groups + 1);
    assert_eq!(t.items_of_type("preview").await, before);

    let again = rebuild::run(&t.app, CHECK, false)
        .await
        .expect("the rebuild runs");
    assert!(again.is_clean(), "{again:?}");
}
