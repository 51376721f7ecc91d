//! What a redrive came to, per batch and in all.

use serde::Serialize;
use streamfold_shared::engine::Counts;

use super::BatchInfo;

/// What redriving one batch came to.
#[derive(Debug, Clone, Serialize)]
pub struct BatchResult {
    /// Where the on-failure record came from (file, queue message, object).
    pub source: String,
    #[serde(flatten)]
    pub info: BatchInfo,
    pub processors: Vec<&'static str>,
    pub fetched: u64,
    pub unreadable: u64,
    #[serde(flatten)]
    pub counts: Counts,
    /// Why the range could not be read (then nothing was applied).
    pub lost: Option<String>,
}

impl BatchResult {
    /// Every record of it settled (applied, no-op, ignored, dead-lettered).
    pub fn settled(&self) -> bool {
        self.lost.is_none() && self.unreadable == 0 && self.counts.failed == 0
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveReport {
    pub dry_run: bool,
    pub batches: Vec<BatchResult>,
    /// Inputs with no on-failure record in them (file, message or object).
    pub not_on_failure_records: Vec<String>,
    pub messages_deleted: u64,
    pub messages_kept: u64,
    pub totals: Counts,
}

impl RedriveReport {
    pub fn lost(&self) -> impl Iterator<Item = &BatchResult> {
        self.batches.iter().filter(|b| b.lost.is_some())
    }

    pub fn ok(&self) -> bool {
        self.batches.iter().all(BatchResult::settled) && self.not_on_failure_records.is_empty()
    }

    pub fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .batches
            .iter()
            .map(|b| {
                vec![
                    b.info.shard_id.clone(),
                    format!(
                        "{}..{}",
                        b.info.start_sequence_number, b.info.end_sequence_number
                    ),
                    b.processors.join(","),
                    b.fetched.to_string(),
                    b.counts.applied.to_string(),
                    b.counts.no_op.to_string(),
                    b.counts.dead_lettered.to_string(),
                    b.counts.failed.to_string(),
                    if b.lost.is_some() { "LOST" } else { "" }.to_owned(),
                ]
            })
            .collect();
        let mut out = crate::render::table(
            &[
                "SHARD",
                "RANGE",
                "PROCESSORS",
                "FETCHED",
                "APPLIED",
                "NO-OP",
                "DEAD",
                "FAILED",
                "",
            ],
            &rows,
        );
        let t = &self.totals;
        out.push_str(&format!(
            "{} batches{}: {} records, {} applied, {} no-op, {} ignored, {} dead-lettered, {} failed\n",
            self.batches.len(),
            if self.dry_run { " (dry run)" } else { "" },
            t.records,
            t.applied,
            t.no_op,
            t.ignored,
            t.dead_lettered,
            t.failed
        ));
        if self.messages_deleted + self.messages_kept > 0 {
            out.push_str(&format!(
                "queue: {} messages deleted, {} kept\n",
                self.messages_deleted, self.messages_kept
            ));
        }
        for b in self.lost() {
            out.push_str(&format!(
                "LOST: shard {} of {}: {} records that arrived {} .. {}: {}. \
                 Their changes never reached the views: run `streamfold rebuild check --repair`.\n",
                b.info.shard_id,
                b.info.stream_arn,
                b.info.batch_size,
                b.info.first_arrival.as_deref().unwrap_or("?"),
                b.info.last_arrival.as_deref().unwrap_or("?"),
                b.lost.as_deref().unwrap_or_default(),
            ));
        }
        for s in &self.not_on_failure_records {
            out.push_str(&format!(
                "{s}: no DDBStreamBatchInfo or KinesisBatchInfo (not a Lambda on-failure record); left\n"
            ));
        }
        out
    }
}
