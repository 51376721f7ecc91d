//! What a batch came to: one outcome per record, and their counts.

use super::Outcome;

/// What a batch came to.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// One outcome per input record, in input order.
    pub outcomes: Vec<Outcome>,
    /// Sequence numbers of the failed records, in input order.
    pub failures: Vec<String>,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub records: u64,
    pub applied: u64,
    pub no_op: u64,
    pub ignored: u64,
    pub dead_lettered: u64,
    pub failed: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.records += other.records;
        self.applied += other.applied;
        self.no_op += other.no_op;
        self.ignored += other.ignored;
        self.dead_lettered += other.dead_lettered;
        self.failed += other.failed;
    }
}

impl BatchReport {
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            records: self.outcomes.len() as u64,
            ..Counts::default()
        };
        for o in &self.outcomes {
            match o {
                Outcome::Applied => c.applied += 1,
                Outcome::NoOp => c.no_op += 1,
                Outcome::Ignored => c.ignored += 1,
                Outcome::DeadLettered(_) => c.dead_lettered += 1,
                Outcome::Failed(_) => c.failed += 1,
            }
        }
        c
    }

    /// Index of the first failed record, where a retry has to start.
    pub fn first_failure(&self) -> Option<usize> {
        self.outcomes
            .iter()
            .position(|o| matches!(o, Outcome::Failed(_)))
    }
}
