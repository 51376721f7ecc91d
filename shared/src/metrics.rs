//! Counting the requests a client sends, by operation (every HTTP attempt,
//! retries included), the capacity DynamoDB says they consumed (write and
//! read request units, by operation, table and index), and the CPU time a
//! thread spent. Used by tests, benchmarks, summaries and the EMF lines.
//!
//! [`RequestCounter`] is an SDK interceptor: before serialization it asks
//! for `ReturnConsumedCapacity=INDEXES` on every DynamoDB data-plane
//! request (one place for the executor, the processors' reads and the
//! benchmark's per-record side), and after deserialization it adds the
//! answer's `ConsumedCapacity`. A request that ends in an error reports no
//! capacity (DynamoDB's error answers carry none).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

/// The operation of a JSON-protocol request (`DynamoDB_20120810.PutItem` →
/// `PutItem`), from its `x-amz-target` header; `unknown` without one.
pub fn operation_of<'a>(context: &'a BeforeTransmitInterceptorContextRef<'_>) -> &'a str {
    context
        .request()
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("unknown")
}

/// Request units: what DynamoDB on demand bills (WRU and RRU).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Units {
    /// Write request units.
    pub write: f64,
    /// Read request units.
    pub read: f64,
}

impl Units {
    /// Both kinds together.
    pub fn total(&self) -> f64 {
        self.write + self.read
    }

    /// `self + other`.
    pub fn plus(self, other: Units) -> Units {
        Units {
            write: self.write + other.write,
            read: self.read + other.read,
        }
    }

    /// `self - other`, never below zero.
    pub fn minus(self, other: Units) -> Units {
        Units {
            write: (self.write - other.write).max(0.0),
            read: (self.read - other.read).max(0.0),
        }
    }
}

/// Where capacity was consumed: the operation, the table and the index
/// (empty for the table itself).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CapacityKey {
    pub operation: String,
    pub table: String,
    pub index: String,
}

impl std::fmt::Display for CapacityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.index.is_empty() {
            write!(f, "{} {}", self.operation, self.table)
        } else {
            write!(f, "{} {}/{}", self.operation, self.table, self.index)
        }
    }
}

/// Whether `op` reads (its capacity units are RRU, not WRU).
fn reads(op: &str) -> bool {
    matches!(
        op,
        "GetItem" | "BatchGetItem" | "Query" | "Scan" | "TransactGetItems"
    )
}

/// The units of one `Capacity` (or `ConsumedCapacity`) figure: its read and
/// write units when given, else its capacity units as reads or writes by
/// the operation.
fn units_of(op: &str, read: Option<f64>, write: Option<f64>, total: Option<f64>) -> Units {
    if read.is_some() || write.is_some() {
        return Units {
            write: write.unwrap_or(0.0),
            read: read.unwrap_or(0.0),
        };
    }
    let t = total.unwrap_or(0.0);
    if reads(op) {
        Units {
            write: 0.0,
            read: t,
        }
    } else {
        Units {
            write: t,
            read: 0.0,
        }
    }
}

/// One `ConsumedCapacity` as entries per table and index: the table's own
/// share and each index's when the answer breaks it down (INDEXES), else
/// the whole on the table.
pub fn capacity_entries(op: &str, c: &ConsumedCapacity) -> Vec<(CapacityKey, Units)> {
    let table = c.table_name().unwrap_or("unknown").to_owned();
    let key = |index: &str| CapacityKey {
        operation: op.to_owned(),
        table: table.clone(),
        index: index.to_owned(),
    };
    let mut out = Vec::new();
    let indexes = c
        .global_secondary_indexes()
        .into_iter()
        .chain(c.local_secondary_indexes())
        .flatten();
    match c.table() {
        Some(t) => {
            out.push((
                key(""),
                units_of(
                    op,
                    t.read_capacity_units(),
                    t.write_capacity_units(),
                    t.capacity_units(),
                ),
            ));
            for (name, i) in indexes {
                out.push((
                    key(name),
                    units_of(
                        op,
                        i.read_capacity_units(),
                        i.write_capacity_units(),
                        i.capacity_units(),
                    ),
                ));
            }
        }
        None => out.push((
            key(""),
            units_of(
                op,
                c.read_capacity_units(),
                c.write_capacity_units(),
                c.capacity_units(),
            ),
        )),
    }
    out
}

#[derive(Debug, Default)]
struct Tally {
    requests: BTreeMap<String, u64>,
    capacity: BTreeMap<CapacityKey, Units>,
}

/// A shared tally of requests per operation name, and of the capacity they
/// consumed per operation, table and index.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<Tally>>);

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests per operation so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .map(|t| t.requests.clone())
            .unwrap_or_default()
    }

    /// All requests so far.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    /// Requests of one operation so far (e.g. `TransactWriteItems`).
    pub fn get(&self, op: &str) -> u64 {
        self.snapshot().get(op).copied().unwrap_or(0)
    }

    /// Consumed capacity so far, per operation, table and index.
    pub fn capacity(&self) -> BTreeMap<CapacityKey, Units> {
        self.0
            .lock()
            .map(|t| t.capacity.clone())
            .unwrap_or_default()
    }

    /// All consumed capacity so far (tables and indexes).
    pub fn consumed(&self) -> Units {
        self.capacity()
            .values()
            .fold(Units::default(), |a, u| a.plus(*u))
    }

    /// Consumed capacity so far per operation (tables and indexes).
    pub fn consumed_by_operation(&self) -> BTreeMap<String, Units> {
        by_operation(&self.capacity())
    }

    pub fn reset(&self) {
        if let Ok(mut t) = self.0.lock() {
            t.requests.clear();
            t.capacity.clear();
        }
    }

    fn add(&self, op: &str, consumed: &[ConsumedCapacity]) {
        if consumed.is_empty() {
            return;
        }
        if let Ok(mut t) = self.0.lock() {
            for c in consumed {
                for (key, units) in capacity_entries(op, c) {
                    let e = t.capacity.entry(key).or_default();
                    *e = e.plus(units);
                }
            }
        }
    }
}

/// Capacity per operation (summed over tables and indexes).
pub fn by_operation(capacity: &BTreeMap<CapacityKey, Units>) -> BTreeMap<String, Units> {
    let mut out: BTreeMap<String, Units> = BTreeMap::new();
    for (k, u) in capacity {
        let e = out.entry(k.operation.clone()).or_default();
        *e = e.plus(*u);
    }
    out
}

/// Sets `ReturnConsumedCapacity=INDEXES` on a data-plane input, unless the
/// caller asked for something itself.
macro_rules! ask_capacity {
    ($input:expr, $($t:ty),+) => {
        $(
            if let Some(i) = $input.downcast_mut::<$t>() {
                if i.return_consumed_capacity.is_none() {
                    i.return_consumed_capacity = Some(ReturnConsumedCapacity::Indexes);
                }
                return;
            }
        )+
    };
}

fn ask_for_capacity(input: &mut aws_smithy_runtime_api::client::interceptors::context::Input) {
    ask_capacity!(
        input,
        GetItemInput,
        PutItemInput,
        UpdateItemInput,
        DeleteItemInput,
        QueryInput,
        ScanInput,
        BatchGetItemInput,
        BatchWriteItemInput,
        TransactGetItemsInput,
        TransactWriteItemsInput
    );
}

/// The operation and `ConsumedCapacity` of a data-plane output.
fn consumed_of(
    output: &aws_smithy_runtime_api::client::interceptors::context::Output,
) -> Option<(&'static str, Vec<ConsumedCapacity>)> {
    macro_rules! one {
        ($($t:ty => $op:literal),+) => {
            $(
                if let Some(o) = output.downcast_ref::<$t>() {
                    return Some(($op, o.consumed_capacity.iter().cloned().collect()));
                }
            )+
        };
    }
    macro_rules! many {
        ($($t:ty => $op:literal),+) => {
            $(
                if let Some(o) = output.downcast_ref::<$t>() {
                    return Some(($op, o.consumed_capacity.clone().unwrap_or_default()));
                }
            )+
        };
    }
    one!(
        GetItemOutput => "GetItem",
        PutItemOutput => "PutItem",
        UpdateItemOutput => "UpdateItem",
        DeleteItemOutput => "DeleteItem",
        QueryOutput => "Query",
        ScanOutput => "Scan"
    );
    many!(
        BatchGetItemOutput => "BatchGetItem",
        BatchWriteItemOutput => "BatchWriteItem",
        TransactGetItemsOutput => "TransactGetItems",
        TransactWriteItemsOutput => "TransactWriteItems"
    );
    None
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        ask_for_capacity(context.input_mut());
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation_of(context).to_owned();
        if let Ok(mut t) = self.0.lock() {
            *t.requests.entry(op).or_insert(0) += 1;
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(output) = context.output_or_error()
            && let Some((op, consumed)) = consumed_of(output)
        {
            self.add(op, &consumed);
        }
        Ok(())
    }
}

/// Nanoseconds this thread has spent on a CPU (Linux), if readable: what a
/// benchmark times so that a busy machine does not hide its figure.
pub fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::Capacity;
    use std::collections::HashMap;

    #[test]
    fn indexes_are_their_own_entries_and_units_follow_the_operation() {
        let c = ConsumedCapacity::builder()
            .table_name("t")
            .capacity_units(4.0)
            .table(Capacity::builder().capacity_units(2.0).build())
            .set_global_secondary_indexes(Some(HashMap::from([(
                "gsi1".to_owned(),
                Capacity::builder().capacity_units(2.0).build(),
            )])))
            .build();
        let e = capacity_entries("TransactWriteItems", &c);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0.index, "");
        assert_eq!(
            e[0].1,
            Units {
                write: 2.0,
                read: 0.0
            }
        );
        assert_eq!(e[1].0.to_string(), "TransactWriteItems t/gsi1");
        let q = ConsumedCapacity::builder()
            .table_name("t")
            .capacity_units(0.5)
            .build();
        assert_eq!(
            capacity_entries("Query", &q)[0].1,
            Units {
                write: 0.0,
                read: 0.5
            }
        );
        let explicit = ConsumedCapacity::builder()
            .table_name("t")
            .capacity_units(3.0)
            .read_capacity_units(1.0)
            .write_capacity_units(2.0)
            .build();
        assert_eq!(
            capacity_entries("TransactWriteItems", &explicit)[0].1,
            Units {
                write: 2.0,
                read: 1.0
            }
        );
    }

    #[test]
    fn a_counter_sums_capacity_and_resets() {
        let counter = RequestCounter::new();
        let c = ConsumedCapacity::builder()
            .table_name("t")
            .capacity_units(1.0)
            .build();
        counter.add("PutItem", &[c.clone(), c]);
        assert_eq!(
            counter.consumed(),
            Units {
                write: 2.0,
                read: 0.0
            }
        );
        assert_eq!(counter.consumed_by_operation()["PutItem"].write, 2.0);
        counter.reset();
        assert_eq!(counter.consumed(), Units::default());
    }
}
