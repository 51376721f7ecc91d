//! `streamfold-bench`: prints figures, asserts nothing.
//!
//! - `decode-plan`: decode + plan throughput of the pure part of a
//!   processor (no I/O), on one core, for a generated Lambda event file.
//! - `requests`: DynamoDB requests per record for a burst of messages into a
//!   few groups, against the endpoint in `AWS_ENDPOINT_URL`.
//! - `replay`: throughput (records/s) and peak RSS of the release
//!   `streamfold replay` binary on generated JSON Lines files: `--dry-run`
//!   on 1,000,000 records (and on a tenth of it, to show memory does not
//!   grow with the file), and a real run against the endpoint on as many
//!   records as it can bear.
//! - `versus`: the same workloads (a chat burst, an agent day, extension
//!   churn) through streamfold and through a straightforward per-record
//!   implementation, side by side: wall time, requests, requests per record,
//!   whether the views agree, WRU, RRU and dollars per million records at
//!   on-demand prices, decode+plan CPU throughput and peak RSS.
//! - `freshness`: write-to-view latency (p50, p99) through the real
//!   `streamfold tail`, at a steady rate and in a burst.
//!
//! Run with `cargo run --release -p streamfold-bench -- <command>`.

// Needed: computing the layout of `versus::agents::run`'s future (SDK
// futures nested in it) goes 130 queries deep, past the default limit of 128.
#![recursion_limit = "256"]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use message_groups::{MessageGroups, Participant, plan};
use streamfold_shared::engine::{decode_and_group, run_batch};
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::record::StreamRecord;

mod freshness;
mod freshness_agents;
mod versus;

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
    /// `streamfold replay` throughput and peak RSS (needs an endpoint and
    /// the release binary: `cargo build --release -p streamfold`).
    Replay(ReplayBench),
    /// streamfold side by side with a per-record implementation of the same
    /// semantics, on the same endpoint (needs `AWS_ENDPOINT_URL`).
    Versus(versus::VersusArgs),
    /// Write-to-view latency through the real `streamfold tail` (needs an
    /// endpoint and the `streamfold` binary next to this one).
    Freshness(freshness::FreshnessArgs),
}

#[derive(clap::Args)]
struct ReplayBench {
    /// Records of the dry-run file.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Records of the file replayed for real against the endpoint (0: skip).
    #[arg(long, default_value_t = 50_000)]
    endpoint_records: usize,
    /// Conversations the messages go to.
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Consecutive messages of one conversation in the file (a chat burst).
    #[arg(long, default_value_t = 20)]
    burst: usize,
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// The binary (default: target/release/streamfold of this workspace).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Keep the generated files (in the temp directory) and the table.
    #[arg(long)]
    keep: bool,
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

/// The time of bench message `i`: one millisecond apart, canonical and
/// increasing.
fn bench_at(i: usize) -> String {
    format!(
        "2026-11-20T{:02}:{:02}:{:02}.{:06}Z",
        (i / 3_600_000) % 24,
        (i / 60_000) % 60,
        (i / 1000) % 60,
        (i % 1000) * 1000
    )
}

/// A bench user.
fn bench_user(i: usize) -> String {
    format!("user-{i:06}")
}

/// Writes `n` message INSERT records (JSON Lines, one stream record per
/// line) into `groups` conversations, `burst` consecutive messages per
/// conversation; streamed to disk, never held whole.
fn write_messages_file(path: &Path, n: usize, groups: usize, burst: usize) -> Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let (groups, burst) = (groups.max(1), burst.max(1));
    for i in 0..n {
        let g = (i / burst) % groups;
        let sender = bench_user(2 * g + i % 2);
        let at = bench_at(i);
        let id = format!("m{i:09}");
        let pk = format!("MSG#bench-group-{g:06}");
        let sk = format!("{at}#{id}");
        writeln!(
            w,
            r#"{{"eventID":"{i:032}","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{{"ApproximateCreationDateTime":1763632801,"Keys":{{"pk":{{"S":"{pk}"}},"sk":{{"S":"{sk}"}}}},"NewImage":{{"pk":{{"S":"{pk}"}},"sk":{{"S":"{sk}"}},"type":{{"S":"message"}},"message_uuid":{{"S":"{id}"}},"message":{{"S":"Hey, are you coming to the review at four?"}},"user_uuid":{{"S":"{sender}"}},"user_handle":{{"S":"h-{sender}"}},"user_display_name":{{"S":"User {sender}"}},"created_at":{{"S":"{at}"}}}},"SequenceNumber":"{seq}","SizeBytes":300,"StreamViewType":"NEW_AND_OLD_IMAGES"}},"eventSourceARN":"arn:aws:dynamodb:us-east-1:012345678901:table/streamfold/stream/2026-11-20T00:00:00.000"}}"#,
            seq = 4421584500000000017450439092u128 + i as u128,
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Writes the message items of the file (as the app would have) into the
/// table, so a real replay finds its sources (a replay after a fix).
async fn preload_messages(
    app: &streamfold::app::App,
    n: usize,
    groups: usize,
    burst: usize,
) -> Result<()> {
    let (groups, burst) = (groups.max(1), burst.max(1));
    let mut items = Vec::with_capacity(1000);
    for i in 0..n {
        let g = (i / burst) % groups;
        let sender = bench_user(2 * g + i % 2);
        let m = streamfold::chat::NewMessage {
            group: GroupId::new(format!("bench-group-{g:06}"))?,
            id: MessageId::new(format!("m{i:09}"))?,
            at: Timestamp::parse(&bench_at(i))?,
            sender: Participant {
                user_uuid: UserId::new(sender.as_str())?,
                user_handle: format!("h-{sender}"),
                user_display_name: format!("User {sender}"),
            },
            text: "Hey, are you coming to the review at four?".into(),
        };
        items.push(m.item());
        if items.len() == 1000 {
            app.ctx.exec.batch_put(std::mem::take(&mut items)).await?;
        }
    }
    app.ctx.exec.batch_put(items).await?;
    Ok(())
}

/// A table without a stream (the endpoint would copy stream records on
/// every write) holding the bench's conversations.
async fn bench_table(name: &str, groups: usize) -> Result<streamfold::app::App> {
    let sdk = streamfold_shared::config::load_sdk_config().await;
    let app = streamfold::app::App::new(sdk, name)?;
    let mut schema = streamfold::table::Schema::builtin()?;
    schema.stream_specification.stream_enabled = false;
    streamfold::table::create(app.ddb(), name, &schema).await?;
    let user = |i: usize| -> Result<Participant> {
        let u = bench_user(i);
        Ok(Participant {
            user_uuid: UserId::new(u.as_str())?,
            user_handle: format!("h-{u}"),
            user_display_name: format!("User {u}"),
        })
    };
    let at = Timestamp::parse("2026-11-19T23:00:00Z")?;
    for g in 0..groups.max(1) {
        let first = streamfold::chat::NewMessage {
            group: GroupId::new(format!("bench-group-{g:06}"))?,
            id: MessageId::new("first")?,
            at,
            sender: user(2 * g)?,
            text: "first".into(),
        };
        streamfold::chat::create_group(&app.ctx.exec, [user(2 * g)?, user(2 * g + 1)?], at, &first)
            .await?;
    }
    Ok(app)
}

/// CPU seconds (user + system) a process used so far (clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Peak RSS (VmHWM) of a process, in kB, while it runs.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct RunFigures {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_kb: u64,
    summary: serde_json::Value,
    stdout_bytes: u64,
}

/// Runs `streamfold replay ARGS FILE` against `table`; wall time, peak RSS
/// (VmHWM, polled every 20 ms) and the JSON summary.
async fn run_replay(bin: &Path, table: &str, args: &[&str], file: &Path) -> Result<RunFigures> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("replay")
        .args(args)
        .arg("--json")
        .arg(file)
        .env("STREAMFOLD_TABLE", table)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    let pid = child.id().unwrap_or_default();
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    // stdout (a dry run's writes) is counted, not kept.
    let counting = tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        let mut last = Vec::new();
        loop {
            match tokio::io::AsyncReadExt::read(&mut stdout, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    last.extend_from_slice(&buf[..n]);
                    let keep = last.len().saturating_sub(4096);
                    last.drain(..keep);
                }
            }
        }
        (total, last)
    });
    let errors = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut text).await;
        text
    });
    let mut peak = 0;
    let mut cpu = 0.0f64;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(c) = cpu_seconds(pid) {
            cpu = cpu.max(c);
        }
        match tokio::time::timeout(Duration::from_millis(20), child.wait()).await {
            Ok(status) => break status?,
            Err(_) => continue,
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let (stdout_bytes, tail) = counting.await?;
    let err_text = String::from_utf8_lossy(&errors.await?).into_owned();
    let tail = String::from_utf8_lossy(&tail).into_owned();
    // The JSON summary: on stderr for a dry run, on stdout otherwise.
    let summary = err_text
        .lines()
        .chain(tail.lines())
        .rev()
        .find(|l| l.starts_with('{') && l.contains("\"records\""))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    if !status.success() {
        println!(
            "  ({} exited with {status}; stderr: {})",
            bin.display(),
            err_text.trim()
        );
    }
    Ok(RunFigures {
        seconds,
        cpu_seconds: cpu,
        peak_rss_kb: peak,
        summary,
        stdout_bytes,
    })
}

fn print_run(label: &str, records: usize, file_bytes: u64, r: &RunFigures) {
    let s = &r.summary;
    println!(
        "  {label}: {records} records ({:.1} MB file) in {:.2} s = {:.0} records/s (CPU {:.2} s = {:.0} records per CPU-second); peak RSS {:.1} MB; applied {} no-op {} ignored {} dead-lettered {} failed {}{}",
        file_bytes as f64 / 1e6,
        r.seconds,
        records as f64 / r.seconds,
        r.cpu_seconds,
        records as f64 / r.cpu_seconds.max(0.01),
        r.peak_rss_kb as f64 / 1024.0,
        s["applied"],
        s["no_op"],
        s["ignored"],
        s["dead_lettered"],
        s["failed"],
        if s.get("dry_run").is_some() {
            format!(
                "; would send {} ({:.1} MB of JSON Lines)",
                s["dry_run"]["requests"],
                r.stdout_bytes as f64 / 1e6
            )
        } else {
            String::new()
        }
    );
}

async fn replay_bench(o: ReplayBench) -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = o
        .bin
        .clone()
        .unwrap_or_else(|| root.join("target/release/streamfold"));
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: cargo build --release -p streamfold",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!("streamfold-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let args = ["--batch-size", &o.batch_size.to_string()].map(str::to_owned);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    println!(
        "replay: message INSERTs in {} conversations, bursts of {}, batches of {}",
        o.groups, o.burst, o.batch_size
    );

    let table = format!("bench-replay-{}", std::process::id());
    let app = bench_table(&table, o.groups).await?;

    // Dry run: a tenth of the file, then the whole one (same peak RSS if the
    // input is streamed).
    let mut dry = args.clone();
    dry.push("--dry-run");
    for n in [o.records / 10, o.records] {
        if n == 0 {
            continue;
        }
        let file = dir.join(format!("messages-{n}.jsonl"));
        let bytes = write_messages_file(&file, n, o.groups, o.burst)?;
        let r = run_replay(&bin, &table, &dry, &file).await?;
        print_run("--dry-run", n, bytes, &r);
        if !o.keep {
            let _ = std::fs::remove_file(&file);
        }
    }
    let scanned = streamfold::table::scan(app.ddb(), &table, None)
        .await?
        .len();
    println!(
        "  table after the dry runs: {scanned} items (the {} groups)",
        o.groups
    );

    if o.endpoint_records > 0 {
        let n = o.endpoint_records;
        let file = dir.join(format!("messages-endpoint-{n}.jsonl"));
        let bytes = write_messages_file(&file, n, o.groups, o.burst)?;
        preload_messages(&app, n, o.groups, o.burst).await?;
        let r = run_replay(&bin, &table, &args, &file).await?;
        print_run("against the endpoint", n, bytes, &r);
        if !o.keep {
            let _ = std::fs::remove_file(&file);
        }
    }
    if o.keep {
        println!("  kept table {table} and {}", dir.display());
    } else {
        streamfold::table::delete(app.ddb(), &table).await?;
        let _ = std::fs::remove_dir_all(&dir);
    }
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
        Cmd::Replay(o) => replay_bench(o).await,
        Cmd::Versus(args) => versus::run(args).await,
        Cmd::Freshness(args) => freshness::run(args).await,
    }
}
