//! The Lambda adapter: a stream event (DynamoDB Streams or Kinesis) in, the
//! engine, a `ReportBatchItemFailures` answer out. One entry point per event
//! source, each a function's whole `main`: [`serve_table_stream`] and
//! [`serve_kinesis`]. What differs between the two sources (the event type,
//! how a delivered record becomes the engine's record, the answer type) is
//! the [`LambdaSource`] of the processor's record type.
//!
//! The SDK client is built once, at init, and its connection warmed there
//! ([`config::warm_up`]), so the first invocation does not pay for it.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::{
    DynamoDbBatchItemFailure, DynamoDbEventResponse, KinesisEventResponse,
};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::config;
use crate::deadletter::{self, DeadLetter};
use crate::emf::{self, BatchMetrics};
use crate::engine::{BatchReport, Context, Processor, SourceRecord, run_batch};
use crate::executor::Executor;
use crate::ids::Timestamp;
use crate::kinesis::{KinesisRecord, KinesisRecordError};
use crate::metrics::RequestCounter;
use crate::record::{RecordError, StreamRecord};

/// A record type Lambda delivers in batches: the event it comes in, how one
/// delivered record becomes it, and the partial-failure answer.
pub trait LambdaSource: Sized + Send + Sync + 'static {
    /// The invocation payload.
    type Event: DeserializeOwned + Send + 'static;
    /// One record as Lambda delivers it.
    type Delivered: Serialize;
    /// The `batchItemFailures` answer.
    type Response: Serialize + Send + 'static;

    /// The event's records, in delivery order.
    fn delivered(event: Self::Event) -> Vec<Self::Delivered>;
    /// The delivered record's id (dead-letter keys), even when it is broken.
    fn delivered_id(record: &Self::Delivered) -> String;
    /// Why a delivered record is no engine record.
    type Error: std::fmt::Display;

    /// The engine's record, or why there is none.
    fn from_delivered(record: Self::Delivered) -> Result<Self, Self::Error>;
    /// The answer listing the failed records by sequence number.
    fn response(report: &BatchReport) -> Self::Response;
}

impl LambdaSource for StreamRecord {
    type Event = DynamoDbEvent;
    type Delivered = EventRecord;
    type Response = DynamoDbEventResponse;

    fn delivered(event: DynamoDbEvent) -> Vec<EventRecord> {
        event.records
    }

    fn delivered_id(record: &EventRecord) -> String {
        record.event_id.clone()
    }

    type Error = RecordError;

    fn from_delivered(record: EventRecord) -> Result<Self, RecordError> {
        StreamRecord::from_lambda(record)
    }

    fn response(report: &BatchReport) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = report
            .failures
            .iter()
            .map(|seq| {
                let mut f = DynamoDbBatchItemFailure::default();
                f.item_identifier = Some(seq.clone());
                f
            })
            .collect();
        response
    }
}

impl LambdaSource for KinesisRecord {
    type Event = KinesisEvent;
    type Delivered = KinesisEventRecord;
    type Response = KinesisEventResponse;

    fn delivered(event: KinesisEvent) -> Vec<KinesisEventRecord> {
        event.records
    }

    fn delivered_id(record: &KinesisEventRecord) -> String {
        record
            .event_id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| record.kinesis.sequence_number.clone())
    }

    type Error = KinesisRecordError;

    fn from_delivered(record: KinesisEventRecord) -> Result<Self, KinesisRecordError> {
        KinesisRecord::from_lambda(record)
    }

    fn response(report: &BatchReport) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        response.set_failures(report.failures.iter().cloned());
        response
    }
}

/// Builds the processor context from the environment (once per cold start),
/// with the table connection warmed.
pub async fn context_from_env() -> Result<Context, lambda_runtime::Error> {
    let sdk = config::load_sdk_config().await;
    context_from_sdk(&sdk).await
}

/// Builds the processor context from a loaded SDK configuration, with the
/// table connection warmed (a failed warm-up is logged, never fatal).
pub async fn context_from_sdk(sdk: &SdkConfig) -> Result<Context, lambda_runtime::Error> {
    context_from_sdk_counted(sdk, None).await
}

/// [`context_from_sdk`] with every request the client sends counted by
/// `counter` (the metrics of each batch).
pub async fn context_from_sdk_counted(
    sdk: &SdkConfig,
    counter: Option<&RequestCounter>,
) -> Result<Context, lambda_runtime::Error> {
    config::require_region(sdk)?;
    let client = config::dynamodb_client(sdk, counter);
    let table = config::table_name();
    let _ = config::warm_up(&client, &table).await;
    Ok(Context::new(Executor::new(client, table)))
}

/// Handles one Lambda event of any stream source: every record is decoded
/// and run through the engine; a record that cannot even be read has no
/// sequence number to retry from and is dead-lettered.
pub async fn handle_event<P>(
    processor: &P,
    ctx: &Context,
    event: <P::Record as LambdaSource>::Event,
) -> <P::Record as LambdaSource>::Response
where
    P: Processor,
    P::Record: LambdaSource,
{
    handle_event_measured(processor, ctx, event, None).await.0
}

/// [`handle_event`], with the batch's figures: records by outcome (an
/// unreadable record counts as dead-lettered), duration, the requests
/// `counter` saw during the batch, and the age of the oldest record.
pub async fn handle_event_measured<P>(
    processor: &P,
    ctx: &Context,
    event: <P::Record as LambdaSource>::Event,
    counter: Option<&RequestCounter>,
) -> (<P::Record as LambdaSource>::Response, BatchMetrics)
where
    P: Processor,
    P::Record: LambdaSource,
{
    let started = std::time::Instant::now();
    let now = Timestamp::now();
    if let Some(c) = counter {
        c.reset();
    }
    let delivered = <P::Record as LambdaSource>::delivered(event);
    let mut records = Vec::with_capacity(delivered.len());
    let mut unreadable = Vec::new();
    for record in delivered {
        let raw = serde_json::to_string(&record).unwrap_or_default();
        let id = <P::Record as LambdaSource>::delivered_id(&record);
        match <P::Record as LambdaSource>::from_delivered(record) {
            Ok(r) => records.push(r),
            Err(e) => unreadable.push(DeadLetter::new(
                processor.name(),
                &id,
                "",
                None,
                raw,
                e.to_string(),
                ctx.deadletter_retention_days,
            )),
        }
    }
    if !unreadable.is_empty() {
        let results =
            deadletter::write_all(&ctx.exec, unreadable.clone().into_iter(), ctx.concurrency).await;
        for (letter, result) in unreadable.iter().zip(results) {
            match result {
                Ok(()) => {
                    warn!(processor = processor.name(), record_id = %letter.record_id, error = %letter.error, "record dead-lettered")
                }
                Err(e) => {
                    warn!(processor = processor.name(), record_id = %letter.record_id, error = %e, "unreadable record could not be dead-lettered")
                }
            }
        }
    }
    let oldest_record_age_ms = emf::oldest_age_ms(records.iter().map(|r| r.received_at()), now);
    let report = run_batch(processor, ctx, &records).await;
    let mut counts = report.counts();
    counts.records += unreadable.len() as u64;
    counts.dead_lettered += unreadable.len() as u64;
    let metrics = BatchMetrics {
        function: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        processor: processor.name().to_owned(),
        counts,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        requests: counter.map(|c| c.snapshot()).unwrap_or_default(),
        oldest_record_age_ms,
        consumed: counter.map(|c| emf::Capacity::from_entries(&c.capacity())),
    };
    (<P::Record as LambdaSource>::response(&report), metrics)
}

/// The adapter behind both entry points.
async fn serve<P>(processor: P) -> Result<(), lambda_runtime::Error>
where
    P: Processor + 'static,
    P::Record: LambdaSource,
{
    crate::telemetry::init_lambda();
    let sdk = config::load_sdk_config().await;
    let counter = RequestCounter::new();
    let ctx = context_from_sdk_counted(&sdk, Some(&counter)).await?;
    let shared = Arc::new((processor, ctx, counter));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<<P::Record as LambdaSource>::Event>| {
            let shared = shared.clone();
            async move {
                let (processor, ctx, counter) = &*shared;
                let (response, metrics) =
                    handle_event_measured(processor, ctx, event.payload, Some(counter)).await;
                emf::emit(&metrics);
                Ok::<_, lambda_runtime::Error>(response)
            }
        },
    ))
    .await
}

/// A table-stream processor as a Lambda function: logging and the context
/// (client built and warmed) at init, then one [`handle_event`] per
/// invocation. A function's whole `main`.
pub async fn serve_table_stream<P>(processor: P) -> Result<(), lambda_runtime::Error>
where
    P: Processor<Record = StreamRecord> + 'static,
{
    serve(processor).await
}

/// A Kinesis processor as a Lambda function, as [`serve_table_stream`].
pub async fn serve_kinesis<P>(processor: P) -> Result<(), lambda_runtime::Error>
where
    P: Processor<Record = KinesisRecord> + 'static,
{
    serve(processor).await
}

/// [`handle_event`] for a table-stream processor.
pub async fn handle_dynamodb_event<P>(
    processor: &P,
    ctx: &Context,
    event: DynamoDbEvent,
) -> DynamoDbEventResponse
where
    P: Processor<Record = StreamRecord>,
{
    handle_event(processor, ctx, event).await
}

/// [`handle_event`] for a Kinesis processor.
pub async fn handle_kinesis_event<P>(
    processor: &P,
    ctx: &Context,
    event: KinesisEvent,
) -> KinesisEventResponse
where
    P: Processor<Record = KinesisRecord>,
{
    handle_event(processor, ctx, event).await
}

/// The `batchItemFailures` answer of a table-stream batch.
pub fn dynamodb_response(report: &BatchReport) -> DynamoDbEventResponse {
    StreamRecord::response(report)
}

/// The `batchItemFailures` answer of a Kinesis batch.
pub fn kinesis_response(report: &BatchReport) -> KinesisEventResponse {
    KinesisRecord::response(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failures: &[&str]) -> BatchReport {
        BatchReport {
            failures: failures.iter().map(|s| (*s).to_owned()).collect(),
            ..BatchReport::default()
        }
    }

    #[test]
    fn answers_are_lambdas_batch_item_failures() {
        let both = |r: &BatchReport| {
            (
                serde_json::to_value(dynamodb_response(r)).unwrap_or_default(),
                serde_json::to_value(kinesis_response(r)).unwrap_or_default(),
            )
        };
        let (d, k) = both(&report(&[]));
        assert_eq!(d, serde_json::json!({"batchItemFailures": []}));
        assert_eq!(k, d);
        let (d, k) = both(&report(&["111", "222"]));
        assert_eq!(
            d,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "111"}, {"itemIdentifier": "222"}]})
        );
        assert_eq!(k, d);
    }

    #[test]
    fn broken_delivered_records_keep_an_id() {
        let record: KinesisEventRecord = serde_json::from_value(serde_json::json!({
            "kinesis": {"partitionKey": "p", "sequenceNumber": "", "data": "", "approximateArrivalTimestamp": 1_700_000_000.0},
            "eventID": "shardId-000000000000:"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            KinesisRecord::delivered_id(&record),
            "shardId-000000000000:"
        );
        assert!(KinesisRecord::from_delivered(record).is_err());
    }
}
