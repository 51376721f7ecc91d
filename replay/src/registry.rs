//! Every projection the CLI runs: one line each. `replay`, `tail`,
//! `capture`, `deadletters retry`, `redrive` and the benchmarks find them
//! here and nowhere else; a processor's source (table stream or Kinesis)
//! says which records it gets. `--processor` takes the names.

use streamfold_shared::engine::{EventSource, StreamProjection};

/// One projection and the line `--help` shows for it.
#[derive(Clone, Copy)]
pub struct Registered {
    pub projection: &'static dyn StreamProjection,
    pub help: &'static str,
}

/// The projections, in the order reports list them.
#[rustfmt::skip]
pub static PROJECTIONS: &[Registered] = &[
    Registered::new(&message_groups::MessageGroups, "Conversation previews, from the table stream"),
    Registered::new(&agent_activity::FROM_ENV, "Agent profiles, history and daily totals, from Connect's agent event stream (Kinesis)"),
    Registered::new(&extensions::Extensions, "Agent extensions (claim, release, hand-over), from the table stream"),
];

impl Registered {
    pub const fn new(projection: &'static dyn StreamProjection, help: &'static str) -> Self {
        Self { projection, help }
    }
}

/// A projection of [`PROJECTIONS`], by its place there: what the CLI's
/// commands, reports and tests pass around (`Copy`, ordered as listed).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessorKind(usize);

#[allow(non_upper_case_globals)]
impl ProcessorKind {
    /// Every projection, in the order of [`PROJECTIONS`].
    pub const ALL: &'static [ProcessorKind] = &{
        let mut all = [ProcessorKind(0); PROJECTIONS.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = ProcessorKind(i);
            i += 1;
        }
        all
    };

    /// The built-in projections by name, for tests and benchmarks (their
    /// places in [`PROJECTIONS`]; a unit test holds them to their names).
    pub const MessageGroups: ProcessorKind = ProcessorKind(0);
    pub const AgentActivity: ProcessorKind = ProcessorKind(1);
    pub const Extensions: ProcessorKind = ProcessorKind(2);

    fn entry(self) -> &'static Registered {
        // Only `ALL` and the constants above make kinds, all in range.
        &PROJECTIONS[self.0]
    }

    /// The projection this kind names.
    pub fn projection(self) -> &'static dyn StreamProjection {
        self.entry().projection
    }

    /// Its name: the `--processor` value, dead-letter keys, reports.
    pub fn name(self) -> &'static str {
        self.projection().name()
    }

    /// Where its records come from.
    pub fn source(self) -> EventSource {
        self.projection().source()
    }

    /// Processors fed by the table's DynamoDB stream.
    pub fn reads_table_stream(self) -> bool {
        self.source() == EventSource::TableStream
    }

    /// Processors fed by a Kinesis stream (Connect agent events).
    pub fn reads_kinesis(self) -> bool {
        self.source() == EventSource::Kinesis
    }

    /// The kind named `name`, if there is one.
    pub fn named(name: &str) -> Option<ProcessorKind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl std::fmt::Debug for ProcessorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl clap::ValueEnum for ProcessorKind {
    fn value_variants<'a>() -> &'a [Self] {
        Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.entry().help))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_kinds_are_their_projections() {
        assert_eq!(ProcessorKind::MessageGroups.name(), message_groups::NAME);
        assert_eq!(ProcessorKind::AgentActivity.name(), agent_activity::NAME);
        assert_eq!(ProcessorKind::Extensions.name(), extensions::NAME);
        assert!(ProcessorKind::MessageGroups.reads_table_stream());
        assert!(ProcessorKind::AgentActivity.reads_kinesis());
        assert!(ProcessorKind::Extensions.reads_table_stream());
    }

    #[test]
    fn names_are_unique_and_every_kind_reads_one_source() {
        let mut names: Vec<&str> = ProcessorKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROJECTIONS.len());
        for k in ProcessorKind::ALL {
            assert!(k.reads_table_stream() != k.reads_kinesis(), "{k:?}");
        }
    }
}
