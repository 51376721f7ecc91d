//! Replay of Kinesis records alone (agent events from files), as
//! `agents` and the tests use it.

use std::path::PathBuf;

use anyhow::Result;
use streamfold_shared::engine::Counts;
use tokio_util::sync::CancellationToken;

use super::ReplayOptions;
use crate::input::{Format, detect_format};
use crate::pipeline::{Pipeline, ProcessorKind};

/// True when `replay` should read these files as Kinesis records (agent
/// events): the processors asked for read Kinesis, the format is a Kinesis
/// one, or every file looks like one.
pub fn is_kinesis_replay(
    files: &[PathBuf],
    format: Format,
    processors: &[ProcessorKind],
) -> Result<bool> {
    if !processors.is_empty() {
        let kinesis = processors.iter().all(|p| p.reads_kinesis());
        let table = processors.iter().all(|p| p.reads_table_stream());
        if kinesis || table {
            return Ok(kinesis);
        }
    }
    if format != Format::Auto {
        return Ok(format.is_kinesis());
    }
    for f in files {
        if !detect_format(f, format)?.is_kinesis() {
            return Ok(false);
        }
    }
    Ok(!files.is_empty())
}

/// Replays files of Kinesis records (Lambda Kinesis events, JSON Lines of
/// agent events) through the Kinesis processors, in batches, with Lambda's
/// failure semantics: [`crate::replay::run`] with these files read as
/// Kinesis records (no progress bar, no stop handling).
pub async fn replay_kinesis(
    pipeline: &Pipeline,
    files: &[PathBuf],
    format: Format,
    batch_size: usize,
    max_retries: u32,
) -> Result<Counts> {
    let mut kinesis_only = pipeline.clone();
    kinesis_only.kinds.retain(|k| k.reads_kinesis());
    let format = if format == Format::Auto {
        // As before the unified replay: a file that is not a Lambda Kinesis
        // event is read as JSON Lines of agent events.
        let mut formats = Vec::with_capacity(files.len());
        for f in files {
            formats.push(detect_format(f, Format::Auto)?);
        }
        if formats.iter().all(|f| f.is_kinesis()) {
            Format::Auto
        } else {
            Format::AgentEventsJsonl
        }
    } else {
        format
    };
    let opts = ReplayOptions {
        files: files.to_vec(),
        format,
        batch_size,
        max_retries,
        restore_sources: false,
        progress: false,
    };
    Ok(super::run(&kinesis_only, &opts, &CancellationToken::new())
        .await?
        .counts)
}
