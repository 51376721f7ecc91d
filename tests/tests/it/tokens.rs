//! Idempotency tokens as DynamoDB treats them, against the local endpoint
//! that enforces them (scripts/moto_server.py): a token names one logical
//! write, so a recurring state transition is never skipped, an answer lost
//! after the write is not applied twice, and a token met with other
//! parameters means planning again, never a dead letter.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use message_groups::MessageGroups;
use streamfold::chat::{self, NewMessage};
use streamfold_shared::attrs::sv;
use streamfold_shared::engine::{BatchReport, Context, Outcome, run_batch};
use streamfold_shared::executor::{Executor, Expr, TxOutcome};
use streamfold_shared::ids::GroupId;
use streamfold_shared::keys::Key;
use streamfold_shared::record::StreamRecord;
use streamfold_tests::builders::{message, user};
use streamfold_tests::chaos_proxy::ChaosProxy;
use streamfold_tests::{TestTable, table};

const G: &str = "7d1c9a52-0b7e-4f3a-9a51-3c2f6e8b9d10";
const ANN: &str = "0a6f3c1e-5b2d-4c8e-9f7a-1d2e3f4a5b6c";
const BEN: &str = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";

fn first_message(text: &str) -> NewMessage {
    message(G, "m1", "2026-11-20T10:00:00Z", &user(ANN, "ann"), text)
}

async fn start_group(t: &TestTable, text: &str) -> NewMessage {
    let first = first_message(text);
    chat::create_group(
        t.exec(),
        [user(ANN, "ann"), user(BEN, "ben")],
        first.at,
        &first,
    )
    .await
    .expect("the group is created");
    first
}

/// Each user's previews: sk → (message, other user's display name).
async fn previews(t: &TestTable) -> BTreeMap<String, (String, String)> {
    t.items_of_type("preview")
        .await
        .into_iter()
        .map(|p| {
            (
                format!(
                    "{} {}",
                    p["pk"].as_str().unwrap_or(""),
                    p["sk"].as_str().unwrap_or("")
                ),
                (
                    p["message"].as_str().unwrap_or_default().to_owned(),
                    p["user_display_name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ),
            )
        })
        .collect()
}

fn texts(p: &BTreeMap<String, (String, String)>) -> Vec<&str> {
    p.values().map(|(m, _)| m.as_str()).collect()
}

fn assert_settled(report: &BatchReport) {
    assert!(report.failures.is_empty(), "{:?}", report.outcomes);
    assert!(
        !report
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::DeadLettered(_))),
        "{:?}",
        report.outcomes
    );
}

/// The tests of this file mean something only if the endpoint enforces
/// tokens: one transaction sent twice under one token must apply once.
async fn assert_tokens_enforced(t: &TestTable) {
    let key = Key::Group(GroupId::new("token-probe").expect("the group id is valid"));
    for _ in 0..2 {
        let mut tx = t.exec().tx();
        tx.update(
            &key,
            Expr::new("ADD n :one").value(
                ":one",
                aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
            ),
            None,
        )
        .expect("the update is answered");
        t.exec()
            .transact(tx, "token-probe")
            .await
            .expect("the transaction is answered");
    }
    let n = counter(t.exec(), &key).await;
    assert_eq!(
        n, 1,
        "the endpoint does not enforce idempotency tokens: run the tests with scripts/test \
         (STREAMFOLD_MOTO_TOKENS=off turns enforcement off)"
    );
    t.app
        .ddb()
        .delete_item()
        .table_name(&t.name)
        .set_key(Some(key.to_key_map()))
        .send()
        .await
        .expect("DeleteItem is answered");
}

async fn counter(exec: &Executor, key: &Key) -> u64 {
    exec.get(key, true)
        .await
        .expect("the item is read")
        .and_then(|i| match i.get("n") {
            Some(aws_sdk_dynamodb::types::AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        })
        .unwrap_or(0)
}

async fn set_text(t: &TestTable, message: &NewMessage, text: &str) {
    t.app
        .ddb()
        .update_item()
        .table_name(&t.name)
        .key("pk", sv(format!("MSG#{G}")))
        .key("sk", sv(format!("{}#{}", message.at, message.id)))
        .update_expression("SET message = :m")
        .expression_attribute_values(":m", sv(text))
        .send()
        .await
        .expect("UpdateItem is answered");
}

/// The example: the newest message edited "hello" → "hello!" →
/// "hello" → "hello!" within a minute, each edit its own batch. The fourth
/// edit moves the previews from the same message to the same text as the
/// second: a token made of that transition would be answered from the
/// second edit and write nothing, leaving "hello" shown.
#[tokio::test]
async fn an_edit_sequence_within_a_minute_ends_on_the_last_text() {
    let t = table("tok-edits").await;
    assert_tokens_enforced(&t).await;
    let m = start_group(&t, "hi").await;
    let mut seen = 0;
    let mut deliver = async |t: &TestTable| {
        let records: Vec<StreamRecord> = t.stream_records().await;
        let report = run_batch(&MessageGroups, t.ctx(), &records[seen..]).await;
        seen = records.len();
        assert_settled(&report);
    };
    deliver(&t).await;
    assert_eq!(texts(&previews(&t).await), ["hi", "hi"]);
    for text in ["hello", "hello!", "hello", "hello!"] {
        set_text(&t, &m, text).await;
        deliver(&t).await;
        assert_eq!(
            texts(&previews(&t).await),
            [text, text],
            "after the edit to {text:?}"
        );
    }
}

fn proxied(t: &TestTable, proxy: &ChaosProxy) -> Context {
    let conf = t
        .app
        .ddb()
        .config()
        .to_builder()
        .endpoint_url(&proxy.url)
        .build();
    Context::new(Executor::new(Client::from_conf(conf), &t.name))
}

async fn proxy() -> ChaosProxy {
    let upstream = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is set");
    ChaosProxy::start(&upstream, 0.0, 14, Duration::from_secs(5))
        .await
        .expect("the proxy starts")
}

/// A transaction that is applied but whose answer is lost (the chaos
/// proxy's "dropped after the write") is sent again under its token and
/// answered from the first call: a counter it adds to moves once.
#[tokio::test]
async fn a_transaction_whose_answer_was_lost_is_applied_once() {
    let t = table("tok-lost").await;
    assert_tokens_enforced(&t).await;
    let proxy = proxy().await;
    let ctx = proxied(&t, &proxy);
    let key = Key::Group(GroupId::new("counter").expect("the group id is valid"));
    proxy.drop_transactions(2);
    let mut tx = ctx.exec.tx();
    tx.update(
        &key,
        Expr::new("ADD n :one").value(
            ":one",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        ),
        None,
    )
    .expect("the update is answered");
    let outcome = ctx
        .exec
        .transact(tx, "one-logical-write")
        .await
        .expect("the transaction is answered");
    assert_eq!(outcome, TxOutcome::Committed);
    assert_eq!(proxy.counts().dropped_after_write, 2);
    assert_eq!(counter(&t.exec().clone(), &key).await, 1);
}

/// The preview move's answer is lost after the write, twice: the retries
/// reuse the token, the record ends applied, nothing is dead-lettered, and
/// the previews show the message.
#[tokio::test]
async fn a_preview_move_whose_answer_was_lost_is_applied_and_not_dead_lettered() {
    let t = table("tok-lost-mg").await;
    assert_tokens_enforced(&t).await;
    start_group(&t, "hello").await;
    let records = t.stream_records().await;
    let proxy = proxy().await;
    let ctx = proxied(&t, &proxy);
    proxy.drop_transactions(2);
    let report = run_batch(&MessageGroups, &ctx, &records).await;
    assert_settled(&report);
    assert!(
        report.outcomes.contains(&Outcome::Applied),
        "{:?}",
        report.outcomes
    );
    assert_eq!(proxy.counts().dropped_after_write, 2);
    assert_eq!(texts(&previews(&t).await), ["hello", "hello"]);
    // Delivered again (the batch is retried): nothing changes.
    let before = t.snapshot().await;
    let report = run_batch(&MessageGroups, &ctx, &records).await;
    assert_settled(&report);
    assert_eq!(t.snapshot().await, before);
}

/// The same preview move planned twice from the same records, with a
/// participant's display name changed in between: the second transaction
/// has the first's token and other parameters, the endpoint answers
/// IdempotentParameterMismatchException, and the processor reads again and
/// plans again (a new token) instead of dead-lettering the record.
#[tokio::test]
async fn a_mismatch_forced_by_a_participant_change_ends_applied() {
    let t = table("tok-mismatch").await;
    assert_tokens_enforced(&t).await;
    start_group(&t, "hello").await;
    let records = t.stream_records().await;
    let report = run_batch(&MessageGroups, t.ctx(), &records).await;
    assert_settled(&report);
    let shown = previews(&t).await;
    assert!(
        shown.values().any(|(_, name)| name == "ben display"),
        "{shown:?}"
    );

    // Undo the move and rename Ben: the same records plan the same move,
    // with Ben's new name in Ann's preview.
    t.app
        .ddb()
        .update_item()
        .table_name(&t.name)
        .key("pk", sv(format!("GROUP#{G}")))
        .key("sk", sv("GROUP"))
        .update_expression(
            "SET participants[1].user_display_name = :n REMOVE last_message_key, last_message_at",
        )
        .expression_attribute_values(":n", sv("Ben B."))
        .send()
        .await
        .expect("UpdateItem is answered");
    for p in t.items_of_type("preview").await {
        t.app
            .ddb()
            .delete_item()
            .table_name(&t.name)
            .key("pk", sv(p["pk"].as_str().unwrap_or_default()))
            .key("sk", sv(p["sk"].as_str().unwrap_or_default()))
            .send()
            .await
            .expect("DeleteItem is answered");
    }

    let report = run_batch(&MessageGroups, t.ctx(), &records).await;
    assert_settled(&report);
    assert!(t.items_of_type("deadletter").await.is_empty());
    let shown = previews(&t).await;
    assert_eq!(texts(&shown), ["hello", "hello"]);
    assert!(
        shown.values().any(|(_, name)| name == "Ben B."),
        "{shown:?}"
    );
    let group = t.items_of_type("group").await;
    assert_eq!(
        group[0]["last_message_key"], "2026-11-20T10:00:00.000000Z#m1",
        "{}",
        group[0]
    );
}

/// reconcile renames a profile whenever Connect's username differs. A
/// username that flips back and forth (A → B → A → B within a minute) is
/// three renames; a token made of (user, new username) would answer the
/// third from the first and leave the profile on A.
#[tokio::test]
async fn a_username_flipping_back_and_forth_is_renamed_every_time() {
    let t = table("tok-rename").await;
    assert_tokens_enforced(&t).await;
    let instance = "aaaaaaaa-bbbb-cccc-dddd-111111111111";
    let pages: Vec<serde_json::Value> =
        serde_json::from_str(&streamfold_tests::fixture("connect-list-users.json"))
            .expect("the text is JSON of that shape");
    let stub = streamfold_tests::connect_stub::ConnectStub::start(pages.clone(), 0).await;
    let connect = reconcile::connect_client(&t.app.sdk, Some(&stub.url));
    let mut opts = reconcile::Options::new(format!(
        "arn:aws:connect:us-east-1:012345678901:instance/{instance}"
    ));
    opts.min_interval = Duration::from_millis(10);
    opts.backoff.base_delay = Duration::from_millis(10);
    opts.settle = false;
    let first = reconcile::reconcile(t.ctx(), &connect, &opts)
        .await
        .expect("reconcile runs");
    assert!(first.created > 0, "{first:?}");
    let id = pages[0]["UserSummaryList"][0]["Id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let original = pages[0]["UserSummaryList"][0]["Username"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let renamed = format!("{original}-renamed");
    let agent = Key::Profile(
        streamfold_shared::ids::AgentId::new(id.as_str()).expect("the agent id is valid"),
    );
    for name in [&renamed, &original, &renamed] {
        let mut now = pages.clone();
        now[0]["UserSummaryList"][0]["Username"] = serde_json::Value::from(name.as_str());
        stub.set_pages(now);
        let report = reconcile::reconcile(t.ctx(), &connect, &opts)
            .await
            .expect("reconcile runs");
        assert_eq!(report.renamed, 1, "to {name}: {report:?}");
        let profile = t
            .exec()
            .get(&agent, true)
            .await
            .expect("the item is read")
            .unwrap_or_default();
        assert_eq!(
            streamfold_shared::attrs::s(&profile, "username"),
            Some(name.as_str()),
            "after the rename to {name}"
        );
    }
}

fn add(exec: &Executor, key: &Key, n: u32) -> streamfold_shared::executor::Tx {
    let mut tx = exec.tx();
    tx.update(
        key,
        Expr::new("ADD n :n").value(
            ":n",
            aws_sdk_dynamodb::types::AttributeValue::N(n.to_string()),
        ),
        None,
    )
    .expect("the update is answered");
    tx
}

/// The executor's side of a mismatch: the same token with other
/// parameters is the answer `PlanAgain` (never an error, so never a dead
/// letter), and a command's write (`transact_planned`) plans again under a
/// new token and ends applied.
#[tokio::test]
async fn a_mismatch_is_an_answer_to_plan_again() {
    let t = table("tok-plan-again").await;
    assert_tokens_enforced(&t).await;
    let exec = t.exec();
    let key = Key::Group(GroupId::new("counter").expect("the group id is valid"));
    let parts = ["a command", "its write"];
    let first = streamfold_shared::executor::token(&parts);
    let outcome = exec
        .transact(add(exec, &key, 1), &first)
        .await
        .expect("the transaction is answered");
    assert_eq!(outcome, TxOutcome::Committed);
    let outcome = exec
        .transact(add(exec, &key, 2), &first)
        .await
        .expect("the transaction is answered");
    assert!(
        matches!(&outcome, TxOutcome::PlanAgain(why) if why.contains("IdempotentParameterMismatch")),
        "{outcome:?}"
    );
    assert_eq!(counter(exec, &key).await, 1);
    let outcome = exec
        .transact_planned(add(exec, &key, 2), &parts)
        .await
        .expect("the transaction is answered");
    assert_eq!(outcome, TxOutcome::Committed);
    assert_eq!(counter(exec, &key).await, 3);
}
