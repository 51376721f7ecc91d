//! `streamfold status [--json] [--full]`: one look at the pipeline's health.
//!
//! - the table (status) and its stream;
//! - each shard of the table's stream (and, with `--kinesis-stream`, of the
//!   agent event stream) with the lag of `tail`'s checkpoint:
//!   the records after it (one read of up to `--scan-limit` records, checkpoint
//!   items left out) and the age of the oldest of them;
//! - dead letters per processor;
//! - the extension pool's invariants (the census);
//! - a projection check: previews (and with `--full` the daily totals), as
//!   `rebuild check` does, without repairing.
//!
//! Exit code 0 when healthy, 1 when something needs attention: a dead letter,
//! a broken pool invariant, a projection that disagrees, or a checkpoint
//! whose oldest unprocessed record is older than `--max-lag`.

use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde::Serialize;
use streamfold_shared::ids::Timestamp;

use crate::app::App;
use crate::checkpoint::Checkpoints;
use crate::deadletters;
use crate::rebuild::{self, RebuildScope};
use crate::tail::{Page, Position, Source, Start};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
    /// Check every projection (daily totals too), not only previews and
    /// the extension pool.
    #[arg(long)]
    pub full: bool,
    /// A checkpoint whose oldest unprocessed record is older than this many
    /// seconds needs attention.
    #[arg(long, default_value_t = 300)]
    pub max_lag: u64,
    /// Records read per shard to measure the lag.
    #[arg(long, default_value_t = 1000)]
    pub scan_limit: usize,
    /// The Connect agent event stream (Kinesis), by name or ARN: its shards
    /// and tail's checkpoints in it too.
    #[arg(long, env = crate::tail::AGENT_STREAM_ENV)]
    pub kinesis_stream: Option<String>,
}

/// One shard of the table's stream and `tail`'s place in it.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    /// `table` or `kinesis`.
    pub stream: &'static str,
    pub shard: String,
    pub closed: bool,
    /// `tail` has a checkpoint in this shard.
    pub checkpoint: bool,
    /// The shard was read to its end.
    pub ended: bool,
    /// Records after the checkpoint (at most the scan limit).
    pub records_behind: u64,
    /// `records_behind` reached the scan limit: there are at least that many.
    pub at_least: bool,
    /// Seconds since the oldest unprocessed record reached the stream.
    pub oldest_age_seconds: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub table: String,
    pub table_status: String,
    pub stream_arn: Option<String>,
    /// The agent event stream, when given.
    pub kinesis_stream_arn: Option<String>,
    pub shards: Vec<ShardStatus>,
    /// Whether `tail` has ever checkpointed this stream (Lambda does not).
    pub tail_checkpoints: bool,
    pub deadletters: std::collections::BTreeMap<String, u64>,
    pub projections: rebuild::RebuildReport,
    /// Why the pipeline needs attention (empty when healthy).
    pub attention: Vec<String>,
    pub healthy: bool,
}

/// Records of `shard` after `after` (its checkpoint), counted up to `limit`
/// (tail's own checkpoint writes left out): (behind, at least that many,
/// age in seconds of the oldest).
async fn shard_lag(
    source: &Source,
    shard: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(u64, bool, Option<i64>)> {
    let mut iterator = match source.iterator(shard, Position::after(after)).await? {
        Start::At(it) => Some(it),
        Start::Trimmed => {
            bail!(
                "GetShardIterator of shard {shard}: its checkpoint is past the stream's retention"
            )
        }
        Start::Gone => bail!("GetShardIterator of shard {shard}: the stream or the shard is gone"),
    };
    // The table's stream pages by 1000 at most; Kinesis by up to the limit.
    let per_page = match source {
        Source::Table { .. } => 1000,
        Source::Kinesis { .. } => i32::try_from(limit.min(10_000)).unwrap_or(10_000),
    };
    let mut behind = 0u64;
    let mut oldest: Option<Timestamp> = None;
    let mut pages = 0;
    while let Some(it) = iterator.take() {
        let Page::Records {
            mut batch,
            next,
            behind_ms,
            unreadable,
        } = source.page(shard, &it, per_page).await?
        else {
            bail!("GetRecords of shard {shard}: the iterator expired or the shard is gone");
        };
        let empty = batch.is_empty() && unreadable == 0;
        batch.drop_checkpoints();
        behind += batch.len() as u64 + unreadable;
        if oldest.is_none() {
            oldest = batch.first_received_at();
        }
        pages += 1;
        if empty || behind_ms == Some(0) || behind as usize >= limit || pages >= 20 {
            break;
        }
        iterator = next;
    }
    let age = oldest.map(|t| Timestamp::now().epoch_seconds() - t.epoch_seconds());
    Ok((behind, behind as usize >= limit, age))
}

/// Each shard of `source` with its lag behind tail's checkpoint, and what
/// needs attention; whether tail keeps checkpoints of the stream.
async fn stream_shards(
    app: &App,
    source: &Source,
    args: &StatusArgs,
    shards: &mut Vec<ShardStatus>,
    attention: &mut Vec<String>,
) -> Result<bool> {
    let checkpoints = Checkpoints::new(app.ctx.exec.clone(), source.arn())?
        .load()
        .await?;
    let has_checkpoints = !checkpoints.is_empty();
    let (stream, label) = match source {
        Source::Table { .. } => ("table", "shard"),
        Source::Kinesis { .. } => ("kinesis", "Kinesis shard"),
    };
    for shard in source.shards().await? {
        let cp = checkpoints.get(&shard.id);
        let ended = cp.is_some_and(|c| c.ended);
        let (behind, at_least, age) = if ended {
            (0, false, None)
        } else {
            shard_lag(
                source,
                &shard.id,
                cp.and_then(|c| c.sequence_number.as_deref()),
                args.scan_limit.max(1),
            )
            .await?
        };
        if has_checkpoints && age.is_some_and(|a| a > args.max_lag as i64) {
            attention.push(format!(
                "{label} {}: {}{} records behind tail's checkpoint, the oldest {}s old",
                shard.id,
                if at_least { "at least " } else { "" },
                behind,
                age.unwrap_or_default()
            ));
        }
        shards.push(ShardStatus {
            stream,
            shard: shard.id.clone(),
            closed: shard.ending.is_some(),
            checkpoint: cp.is_some(),
            ended,
            records_behind: behind,
            at_least,
            oldest_age_seconds: age,
        });
    }
    Ok(has_checkpoints)
}

/// Gathers the status (read-only).
pub async fn status(app: &App, args: &StatusArgs) -> Result<Status> {
    let desc = app
        .ddb()
        .describe_table()
        .table_name(&app.table)
        .send()
        .await
        .map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))
        .map_err(|e| anyhow!("table {}: {e}", app.table))?;
    let table = desc.table;
    let table_status = table
        .as_ref()
        .and_then(|t| t.table_status.as_ref())
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let stream_arn = table.and_then(|t| t.latest_stream_arn);
    let mut attention = Vec::new();
    let mut shards = Vec::new();
    let mut tail_checkpoints = false;
    match &stream_arn {
        None => attention.push("the table has no stream: no processor can run".to_owned()),
        Some(arn) => {
            let source = Source::from_arn(app, false, arn);
            tail_checkpoints =
                stream_shards(app, &source, args, &mut shards, &mut attention).await?;
        }
    }
    let mut kinesis_stream_arn = None;
    if let Some(stream) = args
        .kinesis_stream
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        let source = Source::kinesis(app, stream).await?;
        tail_checkpoints |= stream_shards(app, &source, args, &mut shards, &mut attention).await?;
        kinesis_stream_arn = Some(source.arn().to_owned());
    }
    let mut dead = std::collections::BTreeMap::new();
    for (kind, n) in deadletters::count(app).await? {
        if n > 0 {
            attention.push(format!(
                "{n} dead letters of {} (`streamfold deadletters list --processor {}`)",
                kind.name(),
                kind.name()
            ));
        }
        dead.insert(kind.name().to_owned(), n);
    }
    let projections = rebuild::run(
        app,
        RebuildScope {
            previews: true,
            extensions: true,
            daily: args.full,
            repair: false,
        },
        false,
    )
    .await?;
    for v in &projections.extension_violations {
        attention.push(format!("extension pool: {v}"));
    }
    let wrong = projections.previews_wrong.len()
        + projections.orphans.len()
        + projections.daily_wrong.len();
    if wrong > 0 {
        attention.push(format!(
            "{wrong} projections disagree with their sources (`streamfold rebuild check --repair`)"
        ));
    }
    Ok(Status {
        table: app.table.clone(),
        table_status,
        stream_arn,
        kinesis_stream_arn,
        shards,
        tail_checkpoints,
        deadletters: dead,
        projections,
        healthy: attention.is_empty(),
        attention,
    })
}

impl Status {
    pub fn render(&self) -> String {
        let mut out = format!("table {} ({})\n", self.table, self.table_status);
        match &self.stream_arn {
            Some(arn) => out.push_str(&format!("stream {arn}\n")),
            None => out.push_str("no stream\n"),
        }
        if let Some(arn) = &self.kinesis_stream_arn {
            out.push_str(&format!("agent event stream {arn}\n"));
        }
        if !self.tail_checkpoints {
            out.push_str("  no tail checkpoints (Lambda reads the stream, or tail has not run)\n");
        }
        let rows: Vec<Vec<String>> = self
            .shards
            .iter()
            .map(|s| {
                vec![
                    s.stream.to_owned(),
                    s.shard.clone(),
                    if s.closed { "closed" } else { "open" }.to_owned(),
                    if s.ended {
                        "ended".to_owned()
                    } else if s.checkpoint {
                        "yes".to_owned()
                    } else {
                        "-".to_owned()
                    },
                    format!("{}{}", if s.at_least { ">=" } else { "" }, s.records_behind),
                    s.oldest_age_seconds
                        .map(|a| format!("{a}s"))
                        .unwrap_or_else(|| "-".to_owned()),
                ]
            })
            .collect();
        out.push_str(&crate::render::table(
            &["STREAM", "SHARD", "STATE", "CHECKPOINT", "BEHIND", "OLDEST"],
            &rows,
        ));
        let dead: Vec<String> = self
            .deadletters
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        out.push_str(&format!("dead letters: {}\n", dead.join(", ")));
        let p = &self.projections;
        out.push_str(&format!(
            "projections: {} groups, {} previews disagree, {} orphans; extension pool: {} violations, {} agents waiting\n",
            p.groups,
            p.previews_wrong.len(),
            p.orphans.len(),
            p.extension_violations.len(),
            p.agents_waiting
        ));
        if self.healthy {
            out.push_str("healthy\n");
        } else {
            out.push_str("needs attention:\n");
            for a in &self.attention {
                out.push_str(&format!("  {a}\n"));
            }
        }
        out
    }
}

pub async fn run_cli(app: &App, args: StatusArgs) -> Result<ExitCode> {
    let s = status(app, &args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.render());
    }
    Ok(if s.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
