//! `streamfold-bench versus`: the same workload through streamfold's
//! processors and through a straightforward per-record implementation of
//! the same semantics (one read and a few single-item writes per record, no
//! batching, no transactions, no coalescing: the shape of the original
//! bootcamp and extension Lambdas), against the same endpoint in one run.
//!
//! Each side has its own table (same schema, no stream: the records are
//! built here and fed to both sides identically, in the same order and in
//! batches of `--batch-size`, as Lambda delivers them). Source items (groups,
//! messages, agent profiles, the extension pool) are written to both tables
//! by an uncounted client; only the processing is timed and counted, with
//! the project's `RequestCounter` on each side's client. Afterwards the two
//! tables' projection items are compared.

mod agents;
mod chat;
mod compare;
pub mod cost;
mod extensions;
mod measure;
mod naive;
mod zipf;

use std::collections::HashMap;

use anyhow::{Context as _, Result, anyhow};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use streamfold::app::App;
use streamfold::pipeline::{Pipeline, batch_backoff};
use streamfold_shared::engine::Counts;
use streamfold_shared::executor::{Executor, Item};
use streamfold_shared::record::{ChangeKind, StreamData, StreamRecord};

use compare::Verdict;
use cost::{Cost, Prices};
use measure::{Side, thousands};

/// `streamfold-bench versus …`
#[derive(clap::Args, Debug, Clone)]
pub struct VersusArgs {
    /// Messages of the chat burst.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Conversations the chat burst goes to.
    #[arg(long, default_value_t = 200)]
    pub groups: usize,
    /// Exponent of the Zipf distribution of messages over conversations.
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Messages of the sparse chat (uniform over `--sparse-groups`: about
    /// one message per conversation per batch, the worst case for
    /// coalescing).
    #[arg(long, default_value_t = 4_000)]
    pub sparse_messages: usize,
    /// Conversations of the sparse chat.
    #[arg(long, default_value_t = 2_000)]
    pub sparse_groups: usize,
    /// Agents of the agent day (synthetic Connect agent events).
    #[arg(long, default_value_t = 500)]
    pub agents: usize,
    /// Shift length of the agent day, in hours.
    #[arg(long, default_value_t = 8)]
    pub shift_hours: i64,
    /// Agents of the extension churn (the pool has 10 % more extensions).
    #[arg(long, default_value_t = 2_000)]
    pub extension_agents: usize,
    /// Records per batch (Lambda's batch size; the template's
    /// `StreamBatchSize` default). Agent events: at most what Lambda's 6 MB
    /// payload holds.
    #[arg(long, default_value_t = 2000)]
    pub batch_size: usize,
    /// Ordering keys streamfold applies at once (1: the local endpoint
    /// answers concurrent transactions with 500s the SDK retries).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Seed of the generated workloads.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Run one workload only.
    #[arg(long, value_enum)]
    pub only: Option<Workload>,
    /// Keep the tables (their names are printed).
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub prices: Prices,
    /// Instead of the workloads: streamfold's cost per message of the chat
    /// burst (`--sweep-messages` of it) by batch size and batching window
    /// at `--sweep-rate`, and the wait each setting adds.
    #[arg(long)]
    pub sweep: bool,
    /// Messages of each sweep run.
    #[arg(long, default_value_t = 2_000)]
    pub sweep_messages: usize,
    /// Messages per second the sweep assumes arrive (the window fills a
    /// batch with rate × window records, at most the batch size).
    #[arg(long, default_value_t = 100.0)]
    pub sweep_rate: f64,
}

/// Lambda polls a stream shard about four times a second: without a
/// batching window a batch holds what arrived in a quarter second.
const POLL_SECONDS: f64 = 0.25;

/// Batch sizes and batching windows (s) of the sweep.
const SWEEP: &[(usize, f64)] = &[
    (100, 0.0),
    (100, 1.0),
    (1000, 0.0),
    (1000, 1.0),
    (1000, 2.0),
    (1000, 5.0),
    (1000, 10.0),
    (2000, 1.0),
    (5000, 1.0),
];

/// The sweep: per setting, the records of one batch at `--sweep-rate`, what
/// streamfold's side costs per message with batches that size, and the
/// time a record waits for its batch to fill.
async fn sweep(args: &VersusArgs, sdk: &SdkConfig) -> Result<()> {
    let mut shape = chat::Shape::burst(args);
    shape.messages = args.sweep_messages;
    println!(
        "\nsweep: {} messages into {} conversations (Zipf s = {}) at {} messages/s, streamfold's side only",
        shape.messages, shape.groups, shape.zipf, args.sweep_rate
    );
    println!(
        "\n| batch size | window | records per batch | WRU per message | RRU per message | DynamoDB $ per million messages | wait for the batch | processing per batch |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let pid = std::process::id();
    let mut schema = streamfold::table::Schema::builtin()?;
    schema.stream_specification.stream_enabled = false;
    for (k, &(size, window)) in SWEEP.iter().enumerate() {
        let fill = (args.sweep_rate * window.max(POLL_SECONDS)).round() as usize;
        let batch = fill.clamp(1, size);
        let wait = if window > 0.0 {
            window.min(size as f64 / args.sweep_rate.max(1e-9))
        } else {
            POLL_SECONDS
        };
        let name = format!("versus-sweep-{k}-{pid}");
        let app = App::new(sdk.clone(), &name)?;
        streamfold::table::create(app.ddb(), &name, &schema).await?;
        let src = Executor::new(aws_sdk_dynamodb::Client::new(sdk), name.clone());
        let side = chat::streamfold_only(args, &shape, &app, &src, batch).await;
        streamfold::table::delete(app.ddb(), &name).await?;
        let side = side?;
        let u = side.units();
        let n = shape.messages.max(1) as f64;
        let cost = args.prices.cost(&side, shape.messages, batch);
        let batches = shape.messages.div_ceil(batch).max(1) as f64;
        println!(
            "| {size} | {window} s | {batch} | {:.2} | {:.2} | {} | {wait:.2} s | {:.0} ms |",
            u.write / n,
            u.read / n,
            dollars(cost.dynamodb),
            side.seconds / batches * 1000.0
        );
    }
    Ok(())
}

/// The workloads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A chat burst into Zipf-distributed conversations (message-groups).
    Chat,
    /// Many conversations, about one message each per batch (message-groups).
    SparseChat,
    /// One day of Connect agent events (agent-activity).
    Agents,
    /// Extension churn: arrivals, departures, re-arrivals, then both mixed
    /// in batches (extensions).
    Extensions,
}

/// The two tables of a workload, each with a counted client for its side
/// and an uncounted one for the source writes and the read-backs.
pub struct Tables {
    pub streamfold: App,
    pub naive: App,
    pub streamfold_src: Executor,
    pub naive_src: Executor,
}

impl Tables {
    /// Creates `versus-{workload}-{side}-{pid}` for both sides.
    async fn create(sdk: &SdkConfig, workload: &str, concurrency: usize) -> Result<Self> {
        let pid = std::process::id();
        let mut schema = streamfold::table::Schema::builtin()?;
        schema.stream_specification.stream_enabled = false;
        let mut apps = Vec::with_capacity(2);
        for side in ["streamfold", "naive"] {
            let name = format!("versus-{workload}-{side}-{pid}");
            let mut app = App::new(sdk.clone(), &name)?;
            app.ctx.concurrency = concurrency.max(1);
            streamfold::table::create(app.ddb(), &name, &schema)
                .await
                .with_context(|| format!("creating table {name}"))?;
            apps.push(app);
        }
        let naive = apps.pop().context("no naive table")?;
        let streamfold = apps.pop().context("no streamfold table")?;
        let plain = aws_sdk_dynamodb::Client::new(sdk);
        Ok(Self {
            streamfold_src: Executor::new(plain.clone(), streamfold.table.clone()),
            naive_src: Executor::new(plain, naive.table.clone()),
            streamfold,
            naive,
        })
    }

    /// The uncounted writers of both tables.
    pub fn sources(&self) -> [&Executor; 2] {
        [&self.streamfold_src, &self.naive_src]
    }

    /// Puts the same source items into both tables (uncounted).
    pub async fn put_sources(&self, items: Vec<Item>) -> Result<()> {
        for exec in self.sources() {
            exec.batch_put(items.clone())
                .await
                .map_err(|e| anyhow!("writing source items to {}: {e}", exec.table()))?;
        }
        Ok(())
    }

    /// Deletes both tables, or says where they are.
    async fn finish(self, keep: bool) -> Result<()> {
        for app in [&self.streamfold, &self.naive] {
            if keep {
                println!("  kept table {}", app.table);
            } else {
                streamfold::table::delete(app.ddb(), &app.table).await?;
            }
        }
        Ok(())
    }
}

/// What one workload came to.
pub struct Report {
    pub name: &'static str,
    /// What was run, in words.
    pub what: String,
    pub records: usize,
    pub streamfold: Side,
    pub naive: Side,
    pub views: Verdict,
    /// Decode + plan throughput per processor (records per CPU-second).
    pub cpu: Vec<(&'static str, f64)>,
    /// Peak RSS of the bench process during the workload (kB).
    pub peak_rss_kb: Option<u64>,
    /// More lines to print (invariants, notes).
    pub notes: Vec<String>,
}

/// `x / y`, or `-` when `y` is zero.
fn ratio(x: f64, y: f64) -> String {
    if y > 0.0 {
        format!("{:.1}x", x / y)
    } else {
        "-".to_owned()
    }
}

fn per_record(side: &Side, records: usize) -> f64 {
    side.total() as f64 / records.max(1) as f64
}

/// `$0.0123`.
fn dollars(x: f64) -> String {
    format!("${x:.4}")
}

impl Report {
    /// Dollars per million records of each side (streamfold, naive).
    fn costs(&self, prices: &Prices, batch: usize) -> (Cost, Cost) {
        (
            prices.cost(&self.streamfold, self.records, batch),
            prices.cost(&self.naive, self.records, batch),
        )
    }

    /// The side-by-side block of one workload.
    fn print(&self, prices: &Prices, batch: usize) {
        let (s, n) = (&self.streamfold, &self.naive);
        println!("\n== {}: {}", self.name, self.what);
        println!(
            "  {:<22}{:>14}{:>14}{:>18}",
            "", "streamfold", "naive", "naive/streamfold"
        );
        println!(
            "  {:<22}{:>14}{:>14}{:>18}",
            "wall time",
            format!("{:.1} s", s.seconds),
            format!("{:.1} s", n.seconds),
            ratio(n.seconds, s.seconds)
        );
        println!(
            "  {:<22}{:>14}{:>14}{:>18}",
            "DynamoDB requests",
            thousands(s.total()),
            thousands(n.total()),
            ratio(n.total() as f64, s.total() as f64)
        );
        let (sp, np) = (per_record(s, self.records), per_record(n, self.records));
        println!(
            "  {:<22}{:>14}{:>14}{:>18}",
            "requests per record",
            format!("{sp:.3}"),
            format!("{np:.3}"),
            ratio(np, sp)
        );
        let (su, nu) = (s.units(), n.units());
        let row = |label: &str, a: String, b: String, r: String| {
            println!("  {label:<22}{a:>14}{b:>14}{r:>18}");
        };
        row(
            "WRU",
            format!("{:.1}", su.write),
            format!("{:.1}", nu.write),
            ratio(nu.write, su.write),
        );
        row(
            "RRU",
            format!("{:.1}", su.read),
            format!("{:.1}", nu.read),
            ratio(nu.read, su.read),
        );
        let records = self.records.max(1) as f64;
        row(
            "RU per record",
            format!("{:.2}", su.total() / records),
            format!("{:.2}", nu.total() / records),
            ratio(nu.total(), su.total()),
        );
        let (sc, nc) = self.costs(prices, batch);
        row(
            "DynamoDB $ / M records",
            dollars(sc.dynamodb),
            dollars(nc.dynamodb),
            ratio(nc.dynamodb, sc.dynamodb),
        );
        row(
            "Lambda GB-s / M rec.",
            format!("{:.0}", sc.gb_seconds),
            format!("{:.0}", nc.gb_seconds),
            ratio(nc.gb_seconds, sc.gb_seconds),
        );
        row(
            "Lambda $ / M records",
            dollars(sc.lambda),
            dollars(nc.lambda),
            ratio(nc.lambda, sc.lambda),
        );
        row(
            "total $ / M records",
            dollars(sc.dynamodb + sc.lambda),
            dollars(nc.dynamodb + nc.lambda),
            ratio(nc.dynamodb + nc.lambda, sc.dynamodb + sc.lambda),
        );
        println!("  streamfold requests: {}", s.by_operation());
        println!("  naive requests:      {}", n.by_operation());
        println!("  streamfold capacity: {}", s.capacity_by_operation());
        println!("  naive capacity:      {}", n.capacity_by_operation());
        println!("  streamfold WRU by part: {}", s.writes_by_part());
        println!("  naive WRU by part:      {}", n.writes_by_part());
        println!("  streamfold records:  {}", s.outcome);
        println!("  naive records:       {}", n.outcome);
        for line in self.views.lines() {
            println!("  {line}");
        }
        for (processor, rate) in &self.cpu {
            println!(
                "  decode+plan, {processor}: {} records per CPU-second",
                thousands(*rate as u64)
            );
        }
        println!(
            "  peak RSS (VmHWM) of the bench process: {}",
            rss(self.peak_rss_kb)
        );
        for note in &self.notes {
            println!("  {note}");
        }
    }

    /// One row of the cost table (Markdown).
    fn cost_row(&self, prices: &Prices, batch: usize) -> String {
        let (s, n) = (&self.streamfold, &self.naive);
        let (su, nu) = (s.units(), n.units());
        let records = self.records.max(1) as f64;
        let (sc, nc) = self.costs(prices, batch);
        format!(
            "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {:.2} / {:.2} | {} / {} ({}) | {} / {} ({}) | {} |",
            self.name,
            su.write,
            nu.write,
            su.read,
            nu.read,
            su.total() / records,
            nu.total() / records,
            dollars(sc.dynamodb),
            dollars(nc.dynamodb),
            ratio(nc.dynamodb, sc.dynamodb),
            dollars(sc.lambda),
            dollars(nc.lambda),
            ratio(nc.lambda, sc.lambda),
            ratio(n.total() as f64, s.total() as f64),
        )
    }

    /// One row of the summary table (Markdown).
    fn row(&self) -> String {
        let (s, n) = (&self.streamfold, &self.naive);
        let (sp, np) = (per_record(s, self.records), per_record(n, self.records));
        let cpu: Vec<String> = self
            .cpu
            .iter()
            .map(|(p, r)| format!("{p} {}", thousands(*r as u64)))
            .collect();
        format!(
            "| {} ({} records) | {:.1} s / {:.1} s ({}) | {} / {} ({}) | {sp:.3} / {np:.3} | {} | {} | {} |",
            self.name,
            thousands(self.records as u64),
            s.seconds,
            n.seconds,
            ratio(n.seconds, s.seconds),
            thousands(s.total()),
            thousands(n.total()),
            ratio(n.total() as f64, s.total() as f64),
            self.views.short(),
            cpu.join("; "),
            rss(self.peak_rss_kb)
        )
    }
}

fn rss(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.1} MB", k as f64 / 1024.0))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Runs the chosen workloads and prints each side by side, then a summary.
pub async fn run(args: VersusArgs) -> Result<()> {
    let sdk = streamfold_shared::config::load_sdk_config().await;
    println!(
        "versus: streamfold vs a per-record implementation, endpoint {}, batches of {}, streamfold concurrency {}",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS (no AWS_ENDPOINT_URL)".into()),
        args.batch_size,
        args.concurrency
    );
    if args.sweep {
        return sweep(&args, &sdk).await;
    }
    let chosen = |w: Workload| args.only.is_none_or(|o| o == w);
    let mut reports = Vec::new();
    for w in [
        Workload::Chat,
        Workload::SparseChat,
        Workload::Agents,
        Workload::Extensions,
    ] {
        if !chosen(w) {
            continue;
        }
        let resettable = measure::reset_peak_rss();
        let name = match w {
            Workload::Chat => "chat",
            Workload::SparseChat => "sparse",
            Workload::Agents => "agents",
            Workload::Extensions => "extensions",
        };
        let tables = Tables::create(&sdk, name, args.concurrency).await?;
        let result = match w {
            Workload::Chat => chat::run(&args, &chat::Shape::burst(&args), &tables).await,
            Workload::SparseChat => chat::run(&args, &chat::Shape::sparse(&args), &tables).await,
            Workload::Agents => agents::run(&args, &tables).await,
            Workload::Extensions => extensions::run(&args, &tables).await,
        };
        let finished = tables.finish(args.keep).await;
        let mut report = result?;
        finished?;
        report.peak_rss_kb = measure::peak_rss_kb();
        if !resettable {
            report
                .notes
                .push("(VmHWM could not be reset: the peak is since the bench started)".into());
        }
        report.print(&args.prices, args.batch_size);
        reports.push(report);
    }
    println!(
        "\n| workload | wall time streamfold / naive | DynamoDB requests streamfold / naive | requests per record streamfold / naive | views | decode+plan (records per CPU-second) | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &reports {
        println!("{}", r.row());
    }
    println!(
        "\n| workload | WRU streamfold / naive | RRU streamfold / naive | RU per record streamfold / naive | DynamoDB $ per million records streamfold / naive (naive/streamfold) | Lambda $ per million records streamfold / naive | requests naive/streamfold |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &reports {
        println!("{}", r.cost_row(&args.prices, args.batch_size));
    }
    println!(
        "(prices: ${} per million WRU, ${} per million RRU, ${} per GB-second at {} MB, ${} per million invocations, one per batch of {})",
        args.prices.wru_price,
        args.prices.rru_price,
        args.prices.lambda_gb_second_price,
        args.prices.lambda_memory_mb,
        args.prices.lambda_request_price,
        args.batch_size
    );
    Ok(())
}

/// The stream ARN the generated records name.
const STREAM_ARN: &str =
    "arn:aws:dynamodb:us-east-1:012345678901:table/streamfold/stream/2026-11-20T00:00:00.000";

/// A record kind the pipeline takes in batches, Lambda-style (retrying the
/// failed rest of a batch).
pub trait PipelineRecord: Sized {
    fn run<'a>(pipeline: &'a Pipeline, batch: &'a [Self]) -> impl Future<Output = Counts> + 'a;
}

impl PipelineRecord for StreamRecord {
    fn run<'a>(pipeline: &'a Pipeline, batch: &'a [Self]) -> impl Future<Output = Counts> + 'a {
        pipeline.run_table_batch_retrying(batch, 3, batch_backoff())
    }
}

impl PipelineRecord for streamfold_shared::kinesis::KinesisRecord {
    fn run<'a>(pipeline: &'a Pipeline, batch: &'a [Self]) -> impl Future<Output = Counts> + 'a {
        pipeline.run_kinesis_batch_retrying(batch, 3, batch_backoff())
    }
}

/// streamfold's side of a workload: `records` through the pipeline in
/// batches of `batch`, each timed and counted by `watch`.
pub async fn streamfold_side<R: PipelineRecord>(
    pipeline: &Pipeline,
    watch: &mut measure::Stopwatch,
    records: &[R],
    batch: usize,
) -> Counts {
    let mut counts = Counts::default();
    for b in records.chunks(batch.max(1)) {
        counts.add(watch.phase(R::run(pipeline, b)).await);
    }
    counts
}

/// Record `i` of the table's stream (NEW_AND_OLD_IMAGES), as the Streams
/// API returns it: its keys are the image's `pk` and `sk`.
pub fn stream_record(
    i: usize,
    kind: ChangeKind,
    new: Option<Item>,
    old: Option<Item>,
) -> StreamRecord {
    let image = new.as_ref().or(old.as_ref());
    let keys: HashMap<String, AttributeValue> = ["pk", "sk"]
        .iter()
        .filter_map(|k| {
            image
                .and_then(|i| i.get(*k))
                .map(|v| ((*k).to_owned(), v.clone()))
        })
        .collect();
    StreamRecord {
        event_id: format!("{i:032}"),
        kind,
        event_version: Some("1.1".to_owned()),
        event_source: Some("aws:dynamodb".to_owned()),
        aws_region: Some("us-east-1".to_owned()),
        event_source_arn: Some(STREAM_ARN.to_owned()),
        user_identity: None,
        dynamodb: StreamData {
            approximate_creation: Some(1_763_632_800.0 + i as f64 / 1000.0),
            keys: serde_dynamo::Item::from(keys),
            new_image: new.map(serde_dynamo::Item::from),
            old_image: old.map(serde_dynamo::Item::from),
            sequence_number: format!("{}", 100_000_000_000_000_000_000u128 + i as u128),
            size_bytes: Some(300),
            stream_view_type: Some("NEW_AND_OLD_IMAGES".to_owned()),
        },
    }
}
