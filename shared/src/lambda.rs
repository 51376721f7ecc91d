//! The Lambda adapter: a DynamoDB Streams (or Kinesis) event in, the engine, a
//! `ReportBatchItemFailures` answer out. The SDK client is built once, at
//! init, and reused by every invocation.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{LambdaEvent, service_fn};
use tracing::warn;

use crate::config;
use crate::deadletter::{self, DeadLetter};
use crate::engine::{BatchReport, Context, Processor, run_batch};
use crate::executor::Executor;
use crate::record::StreamRecord;

/// Builds the processor context from the environment (once per cold start).
pub async fn context_from_env() -> Result<Context, lambda_runtime::Error> {
    let sdk = config::load_sdk_config().await;
    config::require_region(&sdk)?;
    let client = config::dynamodb_client(&sdk, None);
    Ok(Context::new(Executor::new(client, config::table_name())))
}

/// The `batchItemFailures` answer for a report.
pub fn dynamodb_response(report: &BatchReport) -> DynamoDbEventResponse {
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

/// Handles one Lambda DynamoDB Streams event.
pub async fn handle_dynamodb_event<P>(
    processor: &P,
    ctx: &Context,
    event: DynamoDbEvent,
) -> DynamoDbEventResponse
where
    P: Processor<Record = StreamRecord>,
{
    let mut records = Vec::with_capacity(event.records.len());
    let mut unreadable = Vec::new();
    for record in event.records {
        let raw = serde_json::to_string(&record).unwrap_or_default();
        let id = record.event_id.clone();
        match StreamRecord::from_lambda(record) {
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
        // Without a sequence number these cannot be retried, only kept.
        for (letter, result) in unreadable.iter().zip(
            deadletter::write_all(&ctx.exec, unreadable.clone().into_iter(), ctx.concurrency).await,
        ) {
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
    let report = run_batch(processor, ctx, &records).await;
    dynamodb_response(&report)
}

/// Runs a DynamoDB Streams processor as a Lambda function.
pub async fn serve_dynamodb<P>(processor: P) -> Result<(), lambda_runtime::Error>
where
    P: Processor<Record = StreamRecord> + 'static,
{
    crate::telemetry::init_lambda();
    let ctx = context_from_env().await?;
    let shared = Arc::new((processor, ctx));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<DynamoDbEvent>| {
        let shared = shared.clone();
        async move {
            let (processor, ctx) = &*shared;
            Ok::<_, lambda_runtime::Error>(
                handle_dynamodb_event(processor, ctx, event.payload).await,
            )
        }
    }))
    .await
}

/// The `batchItemFailures` answer of a Kinesis batch.
pub fn kinesis_response(
    report: &BatchReport,
) -> aws_lambda_events::event::streams::KinesisEventResponse {
    let mut response = aws_lambda_events::event::streams::KinesisEventResponse::default();
    response.set_failures(report.failures.iter().cloned());
    response
}

/// Handles one Lambda Kinesis event.
pub async fn handle_kinesis_event<P>(
    processor: &P,
    ctx: &Context,
    event: aws_lambda_events::event::kinesis::KinesisEvent,
) -> aws_lambda_events::event::streams::KinesisEventResponse
where
    P: Processor<Record = crate::kinesis::KinesisRecord>,
{
    use crate::kinesis::KinesisRecord;
    let mut records = Vec::with_capacity(event.records.len());
    let mut unreadable = Vec::new();
    for record in event.records {
        let raw = serde_json::to_string(&record).unwrap_or_default();
        let id = record.event_id.clone().unwrap_or_default();
        match KinesisRecord::from_lambda(record) {
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
        // Without a sequence number these cannot be retried, only kept.
        for (letter, result) in unreadable.iter().zip(
            deadletter::write_all(&ctx.exec, unreadable.clone().into_iter(), ctx.concurrency).await,
        ) {
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
    let report = run_batch(processor, ctx, &records).await;
    kinesis_response(&report)
}

/// Runs a Kinesis processor as a Lambda function.
pub async fn serve_kinesis<P>(processor: P) -> Result<(), lambda_runtime::Error>
where
    P: Processor<Record = crate::kinesis::KinesisRecord> + 'static,
{
    crate::telemetry::init_lambda();
    let ctx = context_from_env().await?;
    let shared = Arc::new((processor, ctx));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::kinesis::KinesisEvent>| {
            let shared = shared.clone();
            async move {
                let (processor, ctx) = &*shared;
                Ok::<_, lambda_runtime::Error>(
                    handle_kinesis_event(processor, ctx, event.payload).await,
                )
            }
        },
    ))
    .await
}
