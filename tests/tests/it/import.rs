//! `streamfold import extensions|cruddur` against the local endpoint: the
//! old systems' tables created with their own key schemas and indexes and
//! filled the way they wrote them, defects included; imported, then
//! checked (assignments kept, reservations honoured on arrival, pool
//! invariants, the old contact flow's event, every conversation for both
//! users), and imported again without a change.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use extensions::census::census;
use extensions::init::{self as pool, PoolSpec};
use extensions::model::{AGENTS, WAITING};
use indicatif::ProgressBar;
use message_groups::MessageGroups;
use serde_json::Value;
use streamfold::chat;
use streamfold::import::{cruddur, extensions as import_ext};
use streamfold::rebuild::{self, RebuildScope};
use streamfold_shared::attrs::sv;
use streamfold_shared::engine::{Outcome, run_batch};
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{GroupId, Timestamp, UserId};
use streamfold_shared::record::StreamRecord;
use streamfold_tests::{TestTable, table};

use crate::support::cli;

/// Runs the `streamfold` binary; its exit code and stdout parsed as JSON.
async fn streamfold_json(table: &str, args: &[&str]) -> (i32, Value) {
    let out = cli(table, args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running streamfold {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "streamfold {args:?}: {e}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// Creates a table of the old system: `pk` + `sk` and one GSI.
async fn old_table(tt: &TestTable, suffix: &str, gsi: &str, gsi_keys: [&str; 2]) -> String {
    let name = format!("{}-{suffix}", tt.name);
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut defs = vec![attr("pk"), attr("sk")];
    for k in gsi_keys {
        if k != "pk" && k != "sk" {
            defs.push(attr(k));
        }
    }
    tt.app
        .ddb()
        .create_table()
        .table_name(&name)
        .set_attribute_definitions(Some(defs))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(gsi)
                .key_schema(key(gsi_keys[0], KeyType::Hash))
                .key_schema(key(gsi_keys[1], KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)));
    name
}

/// PutItem one row, as the old systems wrote them.
async fn put(tt: &TestTable, table: &str, attrs: &[(&str, &str)]) {
    let item: Item = attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), sv(*v)))
        .collect();
    tt.app
        .ddb()
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)));
}

async fn drop_old(tt: &TestTable, table: &str) {
    let _ = tt.app.ddb().delete_table().table_name(table).send().await;
}

fn agent_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A waiting profile as reconcile or agent-activity creates it.
fn profile(n: usize, username: &str, since: Timestamp) -> Item {
    let id = agent_id(n);
    Item::from([
        ("pk".to_owned(), sv(format!("AGENT#{id}"))),
        ("sk".to_owned(), sv("PROFILE")),
        ("type".to_owned(), sv("agent")),
        (
            "agent_arn".to_owned(),
            sv(format!(
                "arn:aws:connect:us-east-1:012345678901:instance/i/agent/{id}"
            )),
        ),
        ("username".to_owned(), sv(username)),
        ("first_name".to_owned(), sv("Grace")),
        ("status".to_owned(), sv("Available")),
        ("gsi2pk".to_owned(), sv(AGENTS)),
        ("gsi2sk".to_owned(), sv(username)),
        ("gsi1pk".to_owned(), sv(WAITING)),
        ("gsi1sk".to_owned(), sv(format!("{since}#{id}"))),
    ])
}

async fn arrive(tt: &TestTable, agents: &[(usize, &str)]) {
    let base = Timestamp::now();
    let items = agents
        .iter()
        .enumerate()
        .map(|(i, (n, u))| profile(*n, u, base.plus_seconds(i as i64)))
        .collect();
    tt.exec()
        .batch_put(items)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn new_records(tt: &TestTable, seen: &mut usize) -> Vec<StreamRecord> {
    let all = tt.stream_records().await;
    let fresh = all[(*seen).min(all.len())..].to_vec();
    *seen = all.len();
    fresh
}

/// The extensions processor over `records`, twice (a redelivery).
async fn pipeline(tt: &TestTable, records: &[StreamRecord]) {
    for _ in 0..2 {
        for batch in records.chunks(25) {
            let report = run_batch(&extensions::Extensions, tt.ctx(), batch).await;
            for o in &report.outcomes {
                assert!(
                    matches!(o, Outcome::Applied | Outcome::NoOp | Outcome::Ignored),
                    "{o:?}"
                );
            }
        }
    }
}

async fn extension_of(tt: &TestTable, n: usize) -> Option<String> {
    let snap = tt.snapshot().await;
    snap.get(&(format!("AGENT#{}", agent_id(n)), "PROFILE".to_owned()))
        .and_then(|p| p["extension"].as_str().map(str::to_owned))
}

async fn clean_census(tt: &TestTable) -> extensions::census::Census {
    let c = census(tt.exec()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(c.violations.is_empty(), "{:#?}", c.violations);
    assert_eq!(c.free + c.assigned + c.reserved, c.pool_size, "{c:?}");
    c
}

async fn import_table(tt: &TestTable, old: &str, dry_run: bool) -> import_ext::Summary {
    let rows = import_ext::read_table(&tt.app, old)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let plan = import_ext::plan(&rows, 4);
    import_ext::import(&tt.app, plan, dry_run, 4, &ProgressBar::hidden())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_extensions_keeps_every_assignment_and_honours_reservations() {
    let tt = table("import-ext").await;
    let spec = PoolSpec::new(4, "0010-9999").unwrap_or_else(|e| panic!("{e}"));
    pool::init(tt.exec(), &spec, 8, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = 0;
    let _ = new_records(&tt, &mut seen).await;
    // The pipeline already runs: zed and ada arrived and got 0000 and 0001.
    arrive(&tt, &[(1, "zed"), (2, "ada")]).await;
    let r = new_records(&tt, &mut seen).await;
    pipeline(&tt, &r).await;
    assert_eq!(extension_of(&tt, 1).await.as_deref(), Some("0000"));
    assert_eq!(extension_of(&tt, 2).await.as_deref(), Some("0001"));

    // The old table, as awsconnect-extensions wrote it, defects included.
    let old = old_table(&tt, "connect-ext", "skIndex", ["sk", "sk_value"]).await;
    let rows: &[&[(&str, &str)]] = &[
        &[("pk", "0000"), ("sk", "agentID"), ("sk_value", "bob")],
        &[("pk", "0005"), ("sk", "agentID"), ("sk_value", "ada")],
        &[("pk", "0002"), ("sk", "nu"), ("sk_value", "0002")],
        // released without sk_value: fell out of the GSI
        &[("pk", "0004"), ("sk", "nu")],
        // crash between delete and put: free and assigned
        &[("pk", "0006"), ("sk", "nu"), ("sk_value", "0006")],
        &[("pk", "0006"), ("sk", "agentID"), ("sk_value", "cy")],
        // one username on two extensions
        &[("pk", "0008"), ("sk", "agentID"), ("sk_value", "dee")],
        &[("pk", "0007"), ("sk", "agentID"), ("sk_value", "dee")],
        // outside the pool's digits
        &[("pk", "12345"), ("sk", "agentID"), ("sk_value", "eve")],
    ];
    for row in rows {
        put(&tt, &old, row).await;
    }

    // --dry-run lists everything and writes nothing.
    let before = tt.snapshot().await;
    let dry = import_table(&tt, &old, true).await;
    assert_eq!(tt.snapshot().await, before, "a dry run wrote");
    assert_eq!(
        (dry.assigned, dry.reserved, dry.displaced),
        (1, 3, 1),
        "{dry:#?}"
    );
    assert_eq!(dry.plan.outside_pool, vec!["12345"]);
    assert_eq!(dry.plan.free_without_sk_value, vec!["0004"]);
    assert_eq!(dry.plan.free_and_assigned, vec!["0006"]);
    assert_eq!(dry.plan.usernames_on_two.len(), 1);
    assert_eq!(dry.plan.usernames_on_two[0].kept, "0007");
    let text = dry.render();
    assert!(text.contains("dry run") && text.contains("12345"), "{text}");

    // The command line, with --dry-run: the same decisions, nothing written.
    let (code, json) = streamfold_json(
        &tt.name,
        &[
            "import",
            "extensions",
            "--from-table",
            &old,
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        (json["reserved"].as_u64(), json["assigned"].as_u64()),
        (Some(3), Some(1)),
        "{json}"
    );
    assert_eq!(json["outside_pool"], serde_json::json!(["12345"]));
    assert_eq!(tt.snapshot().await, before, "a dry run wrote");

    let s = import_table(&tt, &old, false).await;
    assert!(s.errors.is_empty() && s.conflicts.is_empty(), "{s:#?}");
    assert_eq!((s.assigned, s.reserved, s.displaced), (1, 3, 1), "{s:#?}");
    // ada has her old extension; zed, who had bob's, moved to a free one.
    assert_eq!(extension_of(&tt, 2).await.as_deref(), Some("0005"));
    let zed = extension_of(&tt, 1).await.unwrap_or_default();
    assert!(
        !["0000", "0005", "0006", "0007"].contains(&zed.as_str()) && !zed.is_empty(),
        "zed has {zed}"
    );
    let c = clean_census(&tt).await;
    assert_eq!(c.reserved, 3, "{c:?}");
    let (code, stats) = streamfold_json(&tt.name, &["extensions", "stats", "--json"]).await;
    assert_eq!(code, 0, "{stats}");
    assert_eq!(stats["reserved"].as_u64(), Some(3), "{stats}");

    // The pipeline sees the import's writes: nothing moves.
    let r = new_records(&tt, &mut seen).await;
    pipeline(&tt, &r).await;
    let after = tt.snapshot().await;
    // A second import changes nothing.
    let again = import_table(&tt, &old, false).await;
    assert_eq!((again.kept, again.already_reserved), (1, 3), "{again:#?}");
    assert!(again.changes.is_empty(), "{again:#?}");
    assert_eq!(tt.snapshot().await, after);

    // The reserved usernames arrive, with a newcomer: each gets its old
    // extension, the newcomer the lowest free one (never a reserved one).
    arrive(&tt, &[(3, "bob"), (4, "fay"), (5, "cy"), (6, "dee")]).await;
    let r = new_records(&tt, &mut seen).await;
    pipeline(&tt, &r).await;
    assert_eq!(extension_of(&tt, 3).await.as_deref(), Some("0000"));
    assert_eq!(extension_of(&tt, 5).await.as_deref(), Some("0006"));
    assert_eq!(extension_of(&tt, 6).await.as_deref(), Some("0007"));
    let fay = extension_of(&tt, 4).await.unwrap_or_default();
    assert!(
        !["0000", "0005", "0006", "0007", zed.as_str()].contains(&fay.as_str()) && !fay.is_empty(),
        "fay has {fay}"
    );
    let c = clean_census(&tt).await;
    assert_eq!(
        (c.reserved, c.pending_reservations, c.waiting),
        (0, 0, 0),
        "{c:?}"
    );
    assert!(c.is_settled(), "{c:?}");
    let again = import_table(&tt, &old, false).await;
    assert_eq!(again.kept, 4, "{again:#?}");

    // The old contact flow's event (Details.Parameters.pk) gets bob.
    let event: Value = serde_json::json!({
        "Details": {
            "ContactData": {"ContactId": "c-1", "Channel": "VOICE"},
            "Parameters": {"pk": "0000"}
        },
        "Name": "ContactFlowEvent"
    });
    let answer = extension_lookup::lookup(tt.exec(), 4, &event).await;
    assert_eq!(answer.get("found").map(String::as_str), Some("true"));
    assert_eq!(answer.get("pk").map(String::as_str), Some("0000"));
    assert_eq!(answer.get("sk").map(String::as_str), Some("agentID"));
    assert_eq!(answer.get("sk_value").map(String::as_str), Some("bob"));
    assert_eq!(answer.get("username").map(String::as_str), Some("bob"));
    drop_old(&tt, &old).await;
    tt.drop_table().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_extensions_from_a_csv_file_and_from_s3() {
    let tt = table("import-csv").await;
    let spec = PoolSpec::new(4, "0010-9999").unwrap_or_else(|e| panic!("{e}"));
    pool::init(tt.exec(), &spec, 8, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let csv = "user,extension\nada,5\nbob,0001\nbob,0009\neve,12345\n";
    let dir = std::env::temp_dir().join(format!("{}.csv", tt.name));
    std::fs::write(&dir, csv).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.to_string_lossy().into_owned();
    let run = |source: String, dry_run: bool| {
        let app = tt.app.clone();
        async move {
            let text = import_ext::read_csv(&app, &source)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            let plan = import_ext::plan_csv(&text, 4).unwrap_or_else(|e| panic!("{e}"));
            import_ext::import(&app, plan, dry_run, 2, &ProgressBar::hidden())
                .await
                .unwrap_or_else(|e| panic!("{e:#}"))
        }
    };
    let s = run(path.clone(), false).await;
    assert_eq!(s.reserved, 2, "{s:#?}");
    assert_eq!(s.plan.outside_pool, vec!["12345"]);
    assert_eq!(s.plan.usernames_on_two[0].freed, vec!["0009"]);
    let c = clean_census(&tt).await;
    assert_eq!((c.reserved, c.free), (2, 8));

    // The same export from S3 (the local endpoint serves it): nothing new.
    let s3 = reconcile::s3_client(&tt.app.sdk);
    let bucket = format!("import-{}", std::process::id());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", aws_sdk_s3::error::DisplayErrorContext(e)));
    s3.put_object()
        .bucket(&bucket)
        .key("export/extensions.csv")
        .body(aws_sdk_s3::primitives::ByteStream::from(
            csv.as_bytes().to_vec(),
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", aws_sdk_s3::error::DisplayErrorContext(e)));
    let before = tt.snapshot().await;
    let s = run(format!("s3://{bucket}/export/extensions.csv"), false).await;
    assert_eq!((s.already_reserved, s.reserved), (2, 0), "{s:#?}");
    assert_eq!(tt.snapshot().await, before);
    let _ = s3
        .delete_object()
        .bucket(&bucket)
        .key("export/extensions.csv")
        .send()
        .await;
    let _ = s3.delete_bucket().bucket(&bucket).send().await;
    let _ = std::fs::remove_file(&dir);
    tt.drop_table().await;
}

/// A user of the old chat app.
struct U(&'static str, &'static str, &'static str);

const ANDREW: U = U(
    "a0000000-0000-4000-8000-000000000001",
    "andrew",
    "Andrew Brown",
);
const BAYKO: U = U(
    "b0000000-0000-4000-8000-000000000002",
    "bayko",
    "Andrew Bayko",
);
const CAROL: U = U("c0000000-0000-4000-8000-000000000003", "carol", "Carol");
const DARA: U = U("d0000000-0000-4000-8000-000000000004", "dara", "Dara");

/// A conversation-list row: `owner`'s, showing `other`.
async fn grp(tt: &TestTable, t: &str, owner: &U, other: &U, group: &str, at: &str, text: &str) {
    put(
        tt,
        t,
        &[
            ("pk", &format!("GRP#{}", owner.0)),
            ("sk", at),
            ("message_group_uuid", group),
            ("message", text),
            ("user_uuid", other.0),
            ("user_display_name", other.2),
            ("user_handle", other.1),
        ],
    )
    .await;
}

async fn msg(tt: &TestTable, t: &str, from: &U, group: &str, id: &str, at: &str, text: &str) {
    put(
        tt,
        t,
        &[
            ("pk", &format!("MSG#{group}")),
            ("sk", at),
            ("message_group_uuid", group),
            ("message_uuid", id),
            ("message", text),
            ("user_uuid", from.0),
            ("user_display_name", from.2),
            ("user_handle", from.1),
        ],
    )
    .await;
}

const G1: &str = "5ae290ed-55d1-47a0-bc6d-fe2bc2700399";
const G2: &str = "6bf390ed-55d1-47a0-bc6d-fe2bc2700400";
const G3: &str = "7cf490ed-55d1-47a0-bc6d-fe2bc2700401";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_cruddur_keeps_every_conversation() {
    let tt = table("import-chat").await;
    let old = old_table(
        &tt,
        "cruddur-messages",
        "message-group-sk-index",
        ["message_group_uuid", "sk"],
    )
    .await;
    // g1: andrew and bayko, both rows, plus a stale andrew row the stream
    // Lambda's delete-then-put left behind.
    msg(
        &tt,
        &old,
        &ANDREW,
        G1,
        "m1",
        "2023-03-01T10:00:00.000001+00:00",
        "hi",
    )
    .await;
    msg(
        &tt,
        &old,
        &BAYKO,
        G1,
        "m2",
        "2023-03-01T10:05:00.250000+00:00",
        "hello",
    )
    .await;
    msg(
        &tt,
        &old,
        &ANDREW,
        G1,
        "m3",
        "2023-03-02T08:00:00.999999+00:00",
        "newest g1",
    )
    .await;
    grp(
        &tt,
        &old,
        &ANDREW,
        &BAYKO,
        G1,
        "2023-03-01T10:05:00.250000+00:00",
        "hello",
    )
    .await;
    grp(
        &tt,
        &old,
        &ANDREW,
        &BAYKO,
        G1,
        "2023-03-02T08:00:00.999999+00:00",
        "newest g1",
    )
    .await;
    grp(
        &tt,
        &old,
        &BAYKO,
        &ANDREW,
        G1,
        "2023-03-02T08:00:00.999999+00:00",
        "newest g1",
    )
    .await;
    // g2: andrew and carol; andrew's row is missing (carol sent a message).
    msg(
        &tt,
        &old,
        &CAROL,
        G2,
        "m4",
        "2022-12-31T23:59:59.500000+00:00",
        "old year",
    )
    .await;
    msg(
        &tt,
        &old,
        &ANDREW,
        G2,
        "m5",
        "2023-01-01T00:00:01.000000+00:00",
        "newest g2",
    )
    .await;
    grp(
        &tt,
        &old,
        &CAROL,
        &ANDREW,
        G2,
        "2023-01-01T00:00:01.000000+00:00",
        "newest g2",
    )
    .await;
    // g3: only dara's row, and dara never wrote anything anywhere.
    msg(
        &tt,
        &old,
        &ANDREW,
        G3,
        "m6",
        "2023-02-01T00:00:00.000000+00:00",
        "lonely",
    )
    .await;
    grp(
        &tt,
        &old,
        &DARA,
        &ANDREW,
        G3,
        "2023-02-01T00:00:00.000000+00:00",
        "lonely",
    )
    .await;

    let dry = cruddur::import(&tt.app, &old, true, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(tt.snapshot().await.is_empty(), "a dry run wrote");
    assert_eq!(
        (dry.groups_written, dry.messages_written),
        (2, 5),
        "{dry:#?}"
    );
    assert_eq!(dry.unresolved.len(), 1, "{dry:#?}");
    assert!(dry.unresolved[0].starts_with(G3));

    let s = cruddur::import(&tt.app, &old, false, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (
            s.rows,
            s.groups_written,
            s.messages_written,
            s.messages_skipped,
            s.collapsed_rows
        ),
        (11, 2, 5, 1, 1),
        "{s:#?}"
    );
    assert!(s.malformed.is_empty(), "{s:#?}");
    // The pipeline makes the previews from the new messages.
    let records = tt.stream_records().await;
    let report = run_batch(&MessageGroups, tt.ctx(), &records).await;
    assert!(report.failures.is_empty(), "{:?}", report.outcomes);

    let user = |u: &U| UserId::new(u.0).unwrap_or_else(|e| panic!("{e}"));
    let list = |u: UserId| {
        let exec = tt.exec().clone();
        async move {
            chat::list_conversations(&exec, &u, 20, None)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"))
                .0
        }
    };
    let andrew = list(user(&ANDREW)).await;
    let shown: Vec<(String, String, String)> = andrew
        .iter()
        .map(|p| {
            (
                p.message_group_uuid.to_string(),
                p.message.clone(),
                p.user_handle.clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (G1.to_owned(), "newest g1".to_owned(), "bayko".to_owned()),
            (G2.to_owned(), "newest g2".to_owned(), "carol".to_owned()),
        ]
    );
    let bayko = list(user(&BAYKO)).await;
    assert_eq!(bayko.len(), 1);
    assert_eq!(
        (bayko[0].message.as_str(), bayko[0].user_handle.as_str()),
        ("newest g1", "andrew")
    );
    assert_eq!(bayko[0].user_display_name, "Andrew Brown");
    let carol = list(user(&CAROL)).await;
    assert_eq!(carol.len(), 1);
    assert_eq!(
        (carol[0].message.as_str(), carol[0].user_handle.as_str()),
        ("newest g2", "andrew")
    );
    assert!(list(user(&DARA)).await.is_empty());

    // Messages in order, as many as the old table had.
    let group = |g: &str| GroupId::new(g).unwrap_or_else(|e| panic!("{e}"));
    let (m, _) = chat::get_conversation(tt.exec(), &group(G1), 20, None)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let ids: Vec<&str> = m.iter().map(|m| m.message_uuid.as_str()).collect();
    assert_eq!(ids, vec!["m1", "m2", "m3"]);
    assert_eq!(m[0].created_at, "2023-03-01T10:00:00.000001Z");
    let (m, _) = chat::get_conversation(tt.exec(), &group(G2), 20, None)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(m.len(), 2);

    let clean = rebuild::run(
        &tt.app,
        RebuildScope {
            previews: true,
            extensions: false,
            daily: false,
            repair: false,
        },
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(clean.is_clean(), "{clean:?}");

    // A second import (a rerun after a crash converges the same way).
    let before: BTreeMap<_, _> = tt.snapshot().await;
    let again = cruddur::import(&tt.app, &old, false, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (
            again.groups_written,
            again.messages_written,
            again.messages_existing
        ),
        (0, 0, 5),
        "{again:#?}"
    );
    assert_eq!(tt.snapshot().await, before);

    // A crash half-way through the messages (the groups are all written
    // before the first message): the rerun writes exactly the missing ones
    // and ends where a whole run ends.
    let lost = [
        streamfold_shared::keys::Key::parse(&format!("MSG#{G1}"), "2023-03-02T08:00:00.999999Z#m3")
            .unwrap_or_else(|e| panic!("{e}")),
        streamfold_shared::keys::Key::parse(&format!("MSG#{G2}"), "2022-12-31T23:59:59.500000Z#m4")
            .unwrap_or_else(|e| panic!("{e}")),
    ];
    tt.exec()
        .batch_delete(&lost)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = tt.stream_records().await.len();
    let rerun = cruddur::import(&tt.app, &old, false, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    // The pipeline sees the rerun's writes (the group's view state comes
    // back from its messages).
    let records = tt.stream_records().await;
    let report = run_batch(
        &MessageGroups,
        tt.ctx(),
        &records[seen.min(records.len())..],
    )
    .await;
    assert!(report.failures.is_empty(), "{:?}", report.outcomes);
    assert_eq!(
        (
            rerun.groups_written,
            rerun.messages_written,
            rerun.messages_existing
        ),
        (0, 2, 3),
        "{rerun:#?}"
    );
    assert_eq!(tt.snapshot().await, before);

    // The command line: unresolved groups make the exit status 1.
    let (code, json) = streamfold_json(
        &tt.name,
        &[
            "import",
            "cruddur",
            "--from-table",
            &old,
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["messages_existing"].as_u64(), Some(5), "{json}");
    assert_eq!(
        json["unresolved"].as_array().map(Vec::len),
        Some(1),
        "{json}"
    );
    drop_old(&tt, &old).await;
    tt.drop_table().await;
}

/// The import while the pipeline runs: profiles of the old usernames and
/// newcomers arrive and are processed before, during and after it. Whatever
/// ran first, every old username ends on its old extension, no newcomer on
/// one of them, and the pool's invariants hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_extensions_while_the_pipeline_runs() {
    let tt = table("import-live").await;
    let spec = PoolSpec::new(4, "0050-9999").unwrap_or_else(|e| panic!("{e}"));
    pool::init(tt.exec(), &spec, 8, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let old = old_table(&tt, "connect-ext", "skIndex", ["sk", "sk_value"]).await;
    let usernames: Vec<String> = (0..16).map(|i| format!("old-{i:02}")).collect();
    for (i, u) in usernames.iter().enumerate() {
        let x = format!("{:04}", 30 + i);
        put(&tt, &old, &[("pk", &x), ("sk", "agentID"), ("sk_value", u)]).await;
    }
    let mut seen = tt.stream_records().await.len();
    // Some old agents and a newcomer are there before the import.
    let early: Vec<(usize, &str)> = vec![(100, "new-a"), (0, &usernames[0]), (1, &usernames[1])];
    arrive(&tt, &early).await;
    let r = new_records(&tt, &mut seen).await;
    pipeline(&tt, &r).await;

    // The import, while the rest arrive and the pipeline keeps up.
    let importer = async {
        let rows = import_ext::read_table(&tt.app, &old)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        import_ext::import(
            &tt.app,
            import_ext::plan(&rows, 4),
            false,
            4,
            &ProgressBar::hidden(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let late: Vec<(usize, String)> = (2..16)
        .map(|i| (i, usernames[i].clone()))
        .chain((101..104).map(|n| (n, format!("new-{n}"))))
        .collect();
    let arrivals = async {
        let mut seen = seen;
        for chunk in late.chunks(3) {
            let refs: Vec<(usize, &str)> = chunk.iter().map(|(n, u)| (*n, u.as_str())).collect();
            arrive(&tt, &refs).await;
            let r = new_records(&tt, &mut seen).await;
            pipeline(&tt, &r).await;
        }
        seen
    };
    let (s, seen_now) = tokio::join!(importer, arrivals);
    seen = seen_now;
    assert!(s.errors.is_empty() && s.conflicts.is_empty(), "{s:#?}");
    // The pipeline catches up with the import's own writes.
    loop {
        let r = new_records(&tt, &mut seen).await;
        if r.is_empty() {
            break;
        }
        pipeline(&tt, &r).await;
    }
    for (i, u) in usernames.iter().enumerate() {
        assert_eq!(
            extension_of(&tt, i).await,
            Some(format!("{:04}", 30 + i)),
            "{u} after {s:#?}"
        );
    }
    for n in 100..104 {
        let x = extension_of(&tt, n).await.unwrap_or_default();
        let num: usize = x.parse().unwrap_or(usize::MAX);
        assert!(num < 30, "newcomer {n} has {x:?}");
    }
    let c = clean_census(&tt).await;
    assert!(c.is_settled(), "{c:?}");
    assert_eq!((c.assigned, c.reserved, c.waiting), (20, 0, 0), "{c:?}");
    // And again: nothing to do.
    let again = import_table(&tt, &old, false).await;
    assert_eq!(again.kept, 16, "{again:#?}");
    drop_old(&tt, &old).await;
    tt.drop_table().await;
}
