//! The extensions benchmark: agents assigned per second and DynamoDB
//! requests per assignment, against the endpoint in AWS_ENDPOINT_URL.
//!
//!     cargo run -p streamfold-tests --bin extensions_bench --release -- [AGENTS] [BATCH] [POOL]
//!
//! Defaults: 2,000 arrivals in batches of 100 on a pool of AGENTS + 10 %.
//! It creates its own table, writes waiting profiles, reads their INSERT
//! records from the table stream, runs them through the processor batch by
//! batch, counts every request (retries included) and checks the pool's
//! invariants, then deletes the table.

#![recursion_limit = "256"]

use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use extensions::init::{self as pool, PoolSpec};
use extensions::model::{AGENTS, WAITING};
use streamfold_shared::engine::{Outcome, run_batch};
use streamfold_shared::executor::Item;
use streamfold_shared::ids::Timestamp;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn sv(v: String) -> AttributeValue {
    AttributeValue::S(v)
}

#[tokio::main]
async fn main() {
    let agents = arg(1, 2_000).max(1);
    let batch = arg(2, 100).max(1);
    let pool_size = arg(3, agents + agents / 10).clamp(agents, 10_000);
    let tt = streamfold_tests::table("ext-bench").await;
    let spec = PoolSpec::new(
        4,
        &if pool_size < 10_000 {
            format!("{pool_size:04}-9999")
        } else {
            String::new()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    pool::init(tt.exec(), &spec, 8, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let skip = tt.stream_records().await.len();
    let now = Timestamp::now();
    let items: Vec<Item> = (0..agents)
        .map(|i| {
            let id = format!("bench-{i:06}");
            Item::from([
                ("pk".to_owned(), sv(format!("AGENT#{id}"))),
                ("sk".to_owned(), sv("PROFILE".to_owned())),
                ("type".to_owned(), sv("agent".to_owned())),
                (
                    "agent_arn".to_owned(),
                    sv(format!("arn:aws:connect:us-east-1:1:instance/i/agent/{id}")),
                ),
                ("username".to_owned(), sv(format!("u{i}"))),
                ("gsi2pk".to_owned(), sv(AGENTS.to_owned())),
                ("gsi2sk".to_owned(), sv(format!("u{i}"))),
                ("gsi1pk".to_owned(), sv(WAITING.to_owned())),
                ("gsi1sk".to_owned(), sv(format!("{now}#{id}"))),
            ])
        })
        .collect();
    tt.exec()
        .batch_put(items)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let records = tt.stream_records().await.split_off(skip);
    tt.counter().reset();
    let started = Instant::now();
    let mut assigned = 0u64;
    for chunk in records.chunks(batch) {
        let report = run_batch(&extensions::Extensions, tt.ctx(), chunk).await;
        for o in &report.outcomes {
            match o {
                Outcome::Applied => assigned += 1,
                Outcome::Failed(e) | Outcome::DeadLettered(e) => panic!("record failed: {e}"),
                _ => {}
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let requests = tt.counter().snapshot();
    let total: u64 = requests.values().sum();
    let census = extensions::census::census(tt.exec())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "endpoint          {}",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into())
    );
    println!("arrivals          {agents} in batches of {batch}, pool {pool_size}");
    println!(
        "assigned          {assigned} in {secs:.1} s = {:.1} agents/s",
        assigned as f64 / secs
    );
    println!(
        "requests          {total} = {:.3} per assignment",
        total as f64 / assigned.max(1) as f64
    );
    for (op, n) in &requests {
        println!("  {op:<20}{n}");
    }
    println!(
        "invariants        {} (free {} + assigned {} = pool {})",
        if census.violations.is_empty() {
            "hold"
        } else {
            "BROKEN"
        },
        census.free,
        census.assigned,
        census.pool_size
    );
    tt.drop_table().await;
}
