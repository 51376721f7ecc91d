//! The integration-test harness: a fresh table on the local endpoint
//! (`AWS_ENDPOINT_URL`, started by `scripts/endpoint start`) per test, with
//! the real SDK clients, and helpers to read it back. The table is deleted
//! when its [`TestTable`] drops, whether the test passed or failed
//! ([`guard`]).
//!
//! What tests build their inputs from is in [`builders`]; the real
//! `streamfold` binary in [`cli`]; Kinesis streams in [`kinesis`], S3
//! objects in [`s3`]; the Lambda functions as Lambda runs them in
//! [`runtime_api`].

// Tests say why they expect a value: `.expect("the table is created")`
// (the workspace denies `expect` outside tests, and `unwrap` everywhere).
#![allow(clippy::expect_used)]

pub mod builders;
pub mod chaos;
pub mod chaos_proxy;
pub mod cli;
pub mod connect_stub;
pub mod guard;
pub mod kinesis;
pub mod runtime_api;
pub mod s3;
pub mod serial_proxy;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::Value;
use streamfold::app::App;
use streamfold::table::{self, Schema};
use streamfold_shared::engine::Context;
use streamfold_shared::executor::Executor;
use streamfold_shared::metrics::RequestCounter;
use streamfold_shared::record::StreamRecord;

use crate::guard::TableGuard;

pub use streamfold_shared::testing::{fixture, fixtures_dir};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A table of its own for one test, deleted when this drops (pass or fail).
pub struct TestTable {
    pub app: App,
    pub name: String,
    _guard: TableGuard,
}

/// Panics with the fix when no endpoint is configured.
pub fn require_endpoint() {
    endpoint_url();
}

/// The local endpoint's URL (`AWS_ENDPOINT_URL`); panics with the fix when
/// it is not set.
pub fn endpoint_url() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) => url,
        Err(_) => panic!(
            "AWS_ENDPOINT_URL is not set: run the tests with scripts/test, or \
             `scripts/endpoint start && eval \"$(scripts/endpoint env)\"` first"
        ),
    }
}

/// Creates a fresh, uniquely named table from schemas/table.json.
pub async fn table(prefix: &str) -> TestTable {
    table_with(prefix, true).await
}

/// Like [`table`] without the table's stream: for benchmarks of processors
/// that do not read it (the local endpoint copies the stream's records with
/// the table on every transaction action).
pub async fn table_without_stream(prefix: &str) -> TestTable {
    table_with(prefix, false).await
}

async fn table_with(prefix: &str, stream: bool) -> TestTable {
    require_endpoint();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("t-{prefix}-{}-{n}-{nanos}", std::process::id());
    let sdk = streamfold_shared::config::load_sdk_config().await;
    let app = App::new(sdk, &name).expect("the app is configured");
    let mut schema = Schema::builtin().expect("the built-in schema loads");
    schema.stream_specification.stream_enabled = stream;
    // Guarded before it is created: a creation that fails half-way leaves
    // nothing either.
    let guard = TableGuard::new(&name);
    table::create(app.ddb(), &name, &schema)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e:#}"));
    TestTable {
        app,
        name,
        _guard: guard,
    }
}

impl TestTable {
    pub fn ctx(&self) -> &Context {
        &self.app.ctx
    }

    pub fn exec(&self) -> &Executor {
        &self.app.ctx.exec
    }

    /// Counts every request this table's client sends.
    pub fn counter(&self) -> &RequestCounter {
        &self.app.counter
    }

    /// Every item as plain JSON, keyed by (pk, sk).
    pub async fn snapshot(&self) -> BTreeMap<(String, String), Value> {
        let items = table::scan(self.app.ddb(), &self.name, None)
            .await
            .expect("the table is scanned");
        items
            .iter()
            .map(|i| {
                let v = table::to_json(i);
                let key = (
                    v["pk"].as_str().unwrap_or_default().to_owned(),
                    v["sk"].as_str().unwrap_or_default().to_owned(),
                );
                (key, v)
            })
            .collect()
    }

    /// The snapshot without the items of the given types.
    pub async fn snapshot_without(&self, types: &[&str]) -> BTreeMap<(String, String), Value> {
        let mut snap = self.snapshot().await;
        snap.retain(|_, v| !types.contains(&v["type"].as_str().unwrap_or_default()));
        snap
    }

    /// Items of one type, ordered by key.
    pub async fn items_of_type(&self, item_type: &str) -> Vec<Value> {
        let items = table::scan(self.app.ddb(), &self.name, Some(item_type))
            .await
            .expect("the table is scanned");
        items.iter().map(table::to_json).collect()
    }

    /// The stream's records after the first `seen` ones; `seen` moves on to
    /// all of them.
    pub async fn new_stream_records(&self, seen: &mut usize) -> Vec<StreamRecord> {
        let all = self.stream_records().await;
        let fresh = all[(*seen).min(all.len())..].to_vec();
        *seen = all.len();
        fresh
    }

    /// Every record the table's stream holds now, from the start.
    pub async fn stream_records(&self) -> Vec<StreamRecord> {
        let streams = self.app.streams();
        let arn = self.app.stream_arn().await.expect("the table has a stream");
        let mut out = Vec::new();
        for shard in streamfold::tail::list_shards(&streams, &arn)
            .await
            .expect("the shards are listed")
        {
            let mut it = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(&shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("GetShardIterator is answered")
                .shard_iterator;
            while let Some(i) = it {
                let page = streams
                    .get_records()
                    .shard_iterator(i)
                    .send()
                    .await
                    .expect("GetRecords is answered");
                let records = page.records.unwrap_or_default();
                if records.is_empty() {
                    break;
                }
                out.extend(
                    records
                        .into_iter()
                        .map(|r| StreamRecord::from_sdk(r).expect("the stream record converts")),
                );
                it = page.next_shard_iterator;
            }
        }
        out
    }
}

/// Parses a JSON string; panics with the error and the text (tests only).
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Sends `tracing` output to the test's captured output (`RUST_LOG`).
pub fn init_logs() {
    streamfold_shared::telemetry::init_cli("warn");
}
