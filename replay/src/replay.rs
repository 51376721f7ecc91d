//! `streamfold replay FILE...`: captured records through the processors, in
//! batches, with a progress bar and a summary.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use streamfold_shared::engine::Counts;

use crate::app::App;
use crate::input::{Format, RecordReader};
use crate::pipeline::{Pipeline, batch_backoff, restore_sources};

/// How `replay` runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub batch_size: usize,
    pub max_retries: u32,
    pub restore_sources: bool,
    pub progress: bool,
}

/// Replays every file, in order; returns the counts.
pub async fn replay(app: &App, pipeline: &Pipeline, opts: &ReplayOptions) -> Result<Counts> {
    let bar = if opts.progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} records ({per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut counts = Counts::default();
    for file in &opts.files {
        bar.set_message(file.display().to_string());
        let mut reader = RecordReader::open(file, opts.format)?;
        loop {
            let batch = reader.next_batch(opts.batch_size.max(1))?;
            if batch.is_empty() {
                break;
            }
            if opts.restore_sources {
                restore_sources(&app.ctx.exec, &batch).await?;
            }
            let c = pipeline
                .run_table_batch_retrying(&batch, opts.max_retries, batch_backoff())
                .await;
            counts.add(c);
            bar.inc(batch.len() as u64);
        }
    }
    bar.finish_and_clear();
    tracing::info!(
        records = counts.records,
        seconds = started.elapsed().as_secs_f64(),
        "replay finished"
    );
    Ok(counts)
}
