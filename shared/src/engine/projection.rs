//! A processor with its types erased: what a registry of projections holds
//! and runs, whichever processor an entry is.
//!
//! Every [`Processor`] whose record type is one of the two sources
//! ([`BatchRecord`]: table stream records, Kinesis records) is a
//! [`StreamProjection`], so a new processor is one line in a registry
//! (`&my_crate::MyProcessor`); a processor configured from the environment
//! is a [`FromEnv`] static of its crate.

use std::sync::LazyLock;

use futures::FutureExt as _;
use futures::future::BoxFuture;

use super::{BatchReport, Context, Processor, SourceRecord, run_batch};
use crate::kinesis::KinesisRecord;
use crate::record::StreamRecord;

/// Where a projection's records come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventSource {
    /// The table's DynamoDB stream.
    TableStream,
    /// A Kinesis stream (Connect's agent events).
    Kinesis,
}

/// A batch of records of one source.
#[derive(Debug, Clone, Copy)]
pub enum Records<'a> {
    TableStream(&'a [StreamRecord]),
    Kinesis(&'a [KinesisRecord]),
}

impl Records<'_> {
    /// Which source the records come from.
    pub fn source(&self) -> EventSource {
        match self {
            Records::TableStream(_) => EventSource::TableStream,
            Records::Kinesis(_) => EventSource::Kinesis,
        }
    }
}

/// A record type of one of the sources.
pub trait BatchRecord: SourceRecord + Sized + 'static {
    const SOURCE: EventSource;
    /// The records, if they are of this type.
    fn of(records: Records<'_>) -> Option<&[Self]>;
}

impl BatchRecord for StreamRecord {
    const SOURCE: EventSource = EventSource::TableStream;
    fn of(records: Records<'_>) -> Option<&[Self]> {
        match records {
            Records::TableStream(r) => Some(r),
            Records::Kinesis(_) => None,
        }
    }
}

impl BatchRecord for KinesisRecord {
    const SOURCE: EventSource = EventSource::Kinesis;
    fn of(records: Records<'_>) -> Option<&[Self]> {
        match records {
            Records::Kinesis(r) => Some(r),
            Records::TableStream(_) => None,
        }
    }
}

/// A projection as a registry runs it: its name, its source, and a batch
/// of raw records through it ([`run_batch`]).
pub trait StreamProjection: Send + Sync {
    /// The processor's name (CLI flag value, dead-letter keys, logs).
    fn name(&self) -> &'static str;
    /// Where its records come from.
    fn source(&self) -> EventSource;
    /// Runs one batch. Records of another source are none of its business:
    /// the report is empty.
    fn run_batch<'a>(
        &'a self,
        ctx: &'a Context,
        records: Records<'a>,
    ) -> BoxFuture<'a, BatchReport>;
}

impl<P> StreamProjection for P
where
    P: Processor,
    P::Record: BatchRecord,
{
    fn name(&self) -> &'static str {
        Processor::name(self)
    }

    fn source(&self) -> EventSource {
        <P::Record as BatchRecord>::SOURCE
    }

    fn run_batch<'a>(
        &'a self,
        ctx: &'a Context,
        records: Records<'a>,
    ) -> BoxFuture<'a, BatchReport> {
        match <P::Record as BatchRecord>::of(records) {
            Some(records) => run_batch(self, ctx, records).boxed(),
            None => futures::future::ready(BatchReport::default()).boxed(),
        }
    }
}

/// A processor built from the environment on first use, for a registry
/// (`pub static MINE: FromEnv<Mine> = FromEnv::new(Mine::from_env);`).
pub struct FromEnv<P>(LazyLock<P>);

impl<P> FromEnv<P> {
    pub const fn new(build: fn() -> P) -> Self {
        Self(LazyLock::new(build))
    }

    /// The processor (built now if it was not yet).
    pub fn get(&self) -> &P {
        &self.0
    }
}

impl<P> StreamProjection for FromEnv<P>
where
    P: Processor,
    P::Record: BatchRecord,
{
    fn name(&self) -> &'static str {
        StreamProjection::name(self.get())
    }

    fn source(&self) -> EventSource {
        StreamProjection::source(self.get())
    }

    fn run_batch<'a>(
        &'a self,
        ctx: &'a Context,
        records: Records<'a>,
    ) -> BoxFuture<'a, BatchReport> {
        StreamProjection::run_batch(self.get(), ctx, records)
    }
}
