//! `streamfold import extensions`: the awsconnect-extensions table (or its
//! hourly `user,extension` CSV export) into the pool, every assignment kept.
//!
//! The old table is keyed `pk` (the extension) + `sk`: `nu` for a free
//! extension, `agentID` for an assigned one, whose `sk_value` is the Connect
//! username. Its defects are each handled by one rule ([`plan`], pure) and
//! listed in the summary:
//!
//! - an extension of another length than the pool's: not imported;
//! - `nu` without `sk_value` (a release that fell out of its index): free;
//! - both `nu` and `agentID` (a crash between delete and put): assigned;
//! - one username on two extensions: the lower is kept, the other is free.
//!
//! Each kept pair is then adopted by [`extensions::adopt`] (conditional
//! writes, safe while the pipeline runs, idempotent).

mod plan;
mod read;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use extensions::adopt::{Adopted, adopt};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::app::App;

pub use plan::{CsvError, ExtensionError, OldRow, Plan, TwoExtensions, plan, plan_csv};
pub use read::{read_csv, read_table};
pub use summary::{PairOutcome, Summary};

#[derive(Debug, Args)]
pub struct ExtensionsArgs {
    /// The awsconnect-extensions DynamoDB table (keys pk + sk).
    #[arg(
        long,
        conflicts_with = "from_csv",
        required_unless_present = "from_csv"
    )]
    pub from_table: Option<String>,
    /// Its `user,extension` CSV export: a file, or s3://bucket/key.
    #[arg(long)]
    pub from_csv: Option<String>,
    /// The pool's extension length (as given to `extensions init`).
    #[arg(long, default_value_t = 4)]
    pub digits: u8,
    /// Decide and list everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Pairs adopted at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Adopts every pair of `plan` (concurrently), then looks again at the
/// reservations made (a profile may have arrived meanwhile) and hands
/// extensions the import freed to waiting agents.
pub async fn import(
    app: &App,
    plan: Plan,
    dry_run: bool,
    concurrency: usize,
    bar: &ProgressBar,
) -> Result<Summary> {
    let ctx = &app.ctx;
    bar.set_length(plan.pairs.len() as u64);
    let results: Vec<(usize, Result<Adopted, String>)> =
        futures::stream::iter(plan.pairs.iter().enumerate())
            .map(|(i, (u, x))| async move {
                let r = adopt(ctx, u, x, dry_run).await;
                bar.inc(1);
                (i, r)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let mut results: BTreeMap<usize, Result<Adopted, String>> = results.into_iter().collect();
    if !dry_run {
        // A profile that arrived while its reservation was written, and was
        // served before it, gets its own extension now.
        for (i, r) in results.iter_mut() {
            if let Ok(Adopted::Reserved { .. }) = r
                && let Some((u, x)) = plan.pairs.get(*i)
                && let Ok(a @ Adopted::Assigned { .. }) = adopt(ctx, u, x, false).await
            {
                *r = Ok(a);
            }
        }
    }
    let mut s = Summary {
        dry_run,
        ..Summary::default()
    };
    for (i, r) in results {
        if let Some((u, x)) = plan.pairs.get(i) {
            s.add(u, x, r);
        }
    }
    s.plan = plan;
    if !dry_run && (s.assigned > 0 || s.displaced > 0) {
        s.settled = extensions::settle(ctx).await?.assigned;
    }
    Ok(s)
}

/// `streamfold import extensions`. Exit status 1 when a pair failed,
/// conflicted or names an extension streamfold's pool does not have (the
/// rest is done; rerun after fixing).
pub async fn run_cli(app: &App, args: ExtensionsArgs) -> Result<ExitCode> {
    if !(1..=8).contains(&args.digits) {
        bail!("--digits must be 1 to 8, not {}", args.digits);
    }
    let plan = match (&args.from_table, &args.from_csv) {
        (Some(table), None) => plan(&read_table(app, table).await?, args.digits),
        (None, Some(csv)) => plan_csv(&read_csv(app, csv).await?, args.digits)?,
        _ => bail!("give --from-table NAME or --from-csv FILE|s3://bucket/key"),
    };
    let bar = ProgressBar::new(plan.pairs.len() as u64);
    if args.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} assignments {per_sec} eta {eta}")
            .map_err(|e| anyhow!(e))?,
    );
    let started = std::time::Instant::now();
    app.counter.reset();
    let mut s = import(app, plan, args.dry_run, args.concurrency, &bar).await?;
    bar.finish_and_clear();
    s.seconds = started.elapsed().as_secs_f64();
    s.requests = app.counter.total();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.render());
    }
    Ok(
        if s.errors.is_empty() && s.conflicts.is_empty() && s.not_in_pool.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}
