//! `streamfold-bench`: prints figures, asserts nothing.
//!
//! - `decode-plan`: decode + plan throughput of the pure part of a
//!   processor (no I/O), on one core, for a generated Lambda event file.
//! - `requests`: DynamoDB requests per record for a burst of messages into a
//!   few groups, against the endpoint in `AWS_ENDPOINT_URL`.
//!
//! Run with `cargo run --release -p streamfold-bench -- <command>`.

#![recursion_limit = "256"]

use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use message_groups::{MessageGroups, Participant, plan};
use streamfold_shared::engine::{decode_and_group, run_batch};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::record::StreamRecord;

#[derive(Parser)]
#[command(name = "streamfold-bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Decode + plan throughput (records/s) of a generated Lambda event.
    DecodePlan {
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        #[arg(long, default_value_t = 1_000)]
        groups: usize,
        /// Repeat and report the best run.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// DynamoDB requests per record for a message burst (needs an endpoint).
    Requests {
        #[arg(long, default_value_t = 1_000)]
        messages: usize,
        #[arg(long, default_value_t = 50)]
        groups: usize,
    },
}

/// A Lambda DynamoDB event of `n` message INSERTs spread over `groups`.
fn lambda_event(n: usize, groups: usize) -> String {
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let g = format!("group-{:05}", i % groups.max(1));
        let at = format!(
            "2026-11-20T{:02}:{:02}:{:02}.{:06}Z",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            i % 1_000_000
        );
        let id = format!("m{i:08}");
        let image = serde_json::json!({
            "pk": {"S": format!("MSG#{g}")},
            "sk": {"S": format!("{at}#{id}")},
            "type": {"S": "message"},
            "message_uuid": {"S": id},
            "message": {"S": "Hey, are you coming to the review?"},
            "user_uuid": {"S": "b4c1a6e2-2d1f-4f6a-9a3e-6d7b8c9d0e1f"},
            "user_handle": {"S": "andrewbrown"},
            "user_display_name": {"S": "Andrew Brown"},
            "created_at": {"S": at},
        });
        records.push(serde_json::json!({
            "eventID": format!("{i:032}"),
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1763632801,
                "Keys": {"pk": image["pk"], "sk": image["sk"]},
                "NewImage": image,
                "SequenceNumber": format!("{}", 4421584500000000017450439092u128 + i as u128),
                "SizeBytes": 300,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:012345678901:table/streamfold/stream/2026-11-20T00:00:00.000"
        }));
    }
    serde_json::json!({ "Records": records }).to_string()
}

fn decode_plan(n: usize, groups: usize, runs: usize) -> Result<()> {
    let text = lambda_event(n, groups);
    println!(
        "decode+plan, message-groups: {n} records in {groups} groups ({:.1} MB of Lambda event JSON), one core",
        text.len() as f64 / 1e6
    );
    let mut best = f64::MAX;
    for run in 1..=runs.max(1) {
        let started = Instant::now();
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&text).context("parsing the event")?;
        let parsed = started.elapsed().as_secs_f64();
        let records: Vec<StreamRecord> = event
            .records
            .into_iter()
            .filter_map(|r| StreamRecord::from_lambda(r).ok())
            .collect();
        let grouped = decode_and_group(&MessageGroups, &records);
        let mut projected = 0usize;
        for (_, events) in &grouped.groups {
            let refs: Vec<_> = events.iter().map(|(_, e)| e).collect();
            let (target, _) = plan(None, &refs);
            projected += usize::from(target != message_groups::Target::Keep);
        }
        let secs = started.elapsed().as_secs_f64();
        best = best.min(secs);
        println!(
            "  run {run}: {:.3} s ({:.3} s JSON parse) -> {:>9.0} records/s; {} groups to project",
            secs,
            parsed,
            n as f64 / secs,
            projected
        );
    }
    println!("  best: {:.0} records/s (goal >= 200,000)", n as f64 / best);
    Ok(())
}

async fn requests(messages: usize, groups: usize) -> Result<()> {
    let table = format!("bench-requests-{}", std::process::id());
    let sdk = streamfold_shared::config::load_sdk_config().await;
    let app = streamfold::app::App::new(sdk, &table)?;
    let schema = streamfold::table::Schema::builtin()?;
    streamfold::table::create(app.ddb(), &table, &schema).await?;
    let user = |i: usize| -> Result<Participant> {
        Ok(Participant {
            user_uuid: UserId::new(format!("user-{i:03}"))?,
            user_handle: format!("u{i}"),
            user_display_name: format!("User {i}"),
        })
    };
    let mut items = Vec::with_capacity(messages);
    for g in 0..groups {
        let group = GroupId::new(format!("group-{g:03}"))?;
        let (a, b) = (user(2 * g)?, user(2 * g + 1)?);
        let first = streamfold::chat::NewMessage {
            group: group.clone(),
            id: MessageId::new("first")?,
            at: Timestamp::parse("2026-11-20T08:00:00Z")?,
            sender: a.clone(),
            text: "first".into(),
        };
        streamfold::chat::create_group(&app.ctx.exec, [a, b], first.at, &first).await?;
    }
    for i in 0..messages.saturating_sub(groups) {
        let g = i % groups.max(1);
        let m = streamfold::chat::NewMessage {
            group: GroupId::new(format!("group-{g:03}"))?,
            id: MessageId::new(format!("m{i:06}"))?,
            at: Timestamp::parse("2026-11-20T10:00:00Z")?.plus_seconds(i as i64),
            sender: user(2 * g)?,
            text: format!("message {i}"),
        };
        items.push(m.item());
    }
    app.ctx.exec.batch_put(items).await?;
    // The batch: every record of the stream so far.
    let arn = app.stream_arn().await?;
    let streams = app.streams();
    let mut records = Vec::new();
    for shard in streamfold::tail::list_shards(&streams, &arn).await? {
        let mut it = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard)
            .shard_iterator_type(aws_sdk_dynamodbstreams_iterator())
            .send()
            .await?
            .shard_iterator;
        while let Some(i) = it {
            let page = streams.get_records().shard_iterator(i).send().await?;
            let rs = page.records.unwrap_or_default();
            if rs.is_empty() {
                break;
            }
            records.extend(
                rs.into_iter()
                    .filter_map(|r| StreamRecord::from_sdk(r).ok()),
            );
            it = page.next_shard_iterator;
        }
    }
    app.counter.reset();
    let mut ctx = app.ctx.clone();
    ctx.concurrency = 1;
    let started = Instant::now();
    let report = run_batch(&MessageGroups, &ctx, &records).await;
    let secs = started.elapsed().as_secs_f64();
    let total = app.counter.total();
    let messages_in = records
        .iter()
        .filter(|r| r.item_type() == Some("message"))
        .count();
    println!(
        "requests, message-groups: one batch of {} records ({messages_in} messages, {groups} groups)",
        records.len()
    );
    for (op, n) in app.counter.snapshot() {
        println!("  {op:<20} {n}");
    }
    println!(
        "  total {total} requests = {:.4} per record (goal <= (groups+1)/records = {:.4}); {:.2} s; failed {}",
        total as f64 / records.len() as f64,
        (groups + 1) as f64 / records.len() as f64,
        secs,
        report.failures.len()
    );
    streamfold::table::delete(app.ddb(), &table).await?;
    Ok(())
}

fn aws_sdk_dynamodbstreams_iterator() -> streamfold::tail::ShardIteratorType {
    streamfold::tail::ShardIteratorType::TrimHorizon
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::DecodePlan {
            records,
            groups,
            runs,
        } => decode_plan(records, groups, runs),
        Cmd::Requests { messages, groups } => requests(messages, groups).await,
    }
}
