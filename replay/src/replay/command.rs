//! `streamfold replay`: its arguments and the command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::{EXIT_INTERRUPTED, ReplayOptions};
use crate::app::App;
use crate::input::Format;
use crate::pipeline::{Pipeline, ProcessorKind};
use crate::shutdown::Shutdown;

/// `streamfold replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Files to replay, in order; each is detected on its own (kinds may be
    /// mixed) unless --format names one for all.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Only these processors (default: every one that owns the records).
    #[arg(long = "processor", value_enum)]
    pub processors: Vec<ProcessorKind>,
    /// The format of every file (default: detected per file).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Records per batch.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Retries of a failed record before it is dead-lettered.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// Also write the records' source items (groups, messages) first: for
    /// replaying a capture into a new table.
    #[arg(long)]
    pub restore_sources: bool,
    /// Write nothing: print every write a real run would send now, one JSON
    /// line per request, on stdout (reads still go to the table; the
    /// summary goes to stderr).
    #[arg(long, conflicts_with = "restore_sources")]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `streamfold replay`: every file through the processors that own its
/// records, one summary. Exit code: 0, 1 when a record failed or could not
/// be decoded,
/// [`EXIT_INTERRUPTED`] after Ctrl-C or SIGTERM (2 on an error).
pub async fn run_cli(app: &App, args: ReplayArgs, shutdown: &Shutdown) -> Result<ExitCode> {
    app.require_table().await?;
    let mut ctx = app.ctx.clone();
    if args.dry_run {
        let recorder = std::sync::Arc::new(streamfold_shared::executor::DryRun::stdout());
        ctx.exec = ctx.exec.dry_run(recorder);
    }
    let pipeline = Pipeline::new(ctx, &args.processors);
    let opts = ReplayOptions {
        files: args.files,
        format: args.format,
        batch_size: args.batch_size,
        max_retries: args.max_retries,
        restore_sources: args.restore_sources,
        progress: !args.json,
    };
    shutdown.listen()?;
    let announce = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.stopping().await;
            eprintln!("stopping after the batch in flight (Ctrl-C again to leave at once)");
        })
    };
    let s = tokio::select! {
        s = super::run(&pipeline, &opts, shutdown.stop_token()) => s,
        // A second signal: leave at once, the batch in flight unsettled.
        () = shutdown.forced() => return Ok(ExitCode::from(EXIT_INTERRUPTED)),
    };
    announce.abort();
    let s = s?;
    // A dry run's stdout holds only its writes: the summary goes to stderr.
    let text = if args.json {
        format!("{}\n", serde_json::to_string(&s.to_json())?)
    } else {
        s.render()
    };
    if args.dry_run {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(if s.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if s.counts.failed > 0 || s.undecodable > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
