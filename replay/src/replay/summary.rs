//! What a replay came to, as text and as JSON.

use streamfold_shared::engine::Counts;
use streamfold_shared::executor::DryRunStats;

/// What a replay came to.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// `records` = records read from the files; `ignored` = records no
    /// selected processor owns; the other columns add up the processors'
    /// outcomes.
    pub counts: Counts,
    /// Files read (to their end, or to the stop).
    pub files: usize,
    /// Records of the files that could not be decoded (dead-lettered with
    /// their file and line; counted in `records` too). The run exits 1.
    pub undecodable: u64,
    /// Stopped by Ctrl-C after the batch in flight.
    pub interrupted: bool,
    pub seconds: f64,
    /// What a dry run recorded (`None` for a real run).
    pub dry_run: Option<DryRunStats>,
}

impl ReplaySummary {
    pub fn records_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.counts.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The summary as one JSON object: the counts' fields, plus
    /// `interrupted`, `files`, `seconds`, `records_per_second` and, for a
    /// dry run, `dry_run`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.counts).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("interrupted".to_owned(), self.interrupted.into());
            obj.insert("files".to_owned(), self.files.into());
            obj.insert("undecodable".to_owned(), self.undecodable.into());
            obj.insert("seconds".to_owned(), self.seconds.into());
            obj.insert(
                "records_per_second".to_owned(),
                self.records_per_second().round().into(),
            );
            if let Some(d) = &self.dry_run {
                obj.insert(
                    "dry_run".to_owned(),
                    serde_json::to_value(d).unwrap_or_default(),
                );
            }
        }
        v
    }

    /// The summary as text.
    pub fn render(&self) -> String {
        let c = &self.counts;
        let mut out = format!(
            "records {}  applied {}  no-op {}  ignored {}  dead-lettered {}  failed {}\n",
            c.records, c.applied, c.no_op, c.ignored, c.dead_lettered, c.failed
        );
        out.push_str(&format!(
            "{} files in {:.2} s ({:.0} records/s){}\n",
            self.files,
            self.seconds,
            self.records_per_second(),
            if self.interrupted {
                "; interrupted by Ctrl-C after the batch in flight"
            } else {
                ""
            }
        ));
        if self.undecodable > 0 {
            out.push_str(&format!(
                "{} records could not be decoded: dead-lettered with their file and line (streamfold deadletters list)\n",
                self.undecodable
            ));
        }
        if let Some(d) = &self.dry_run {
            let requests: Vec<String> = d
                .requests
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect();
            out.push_str(&format!(
                "dry run, nothing written: would send {} ({} puts, {} updates, {} deletes, {} condition checks); {} keys read, {} reads from the cache\n",
                if requests.is_empty() {
                    "no write".to_owned()
                } else {
                    requests.join(", ")
                },
                d.puts,
                d.updates,
                d.deletes,
                d.condition_checks,
                d.keys_read,
                d.cache_hits
            ));
        }
        out
    }
}
