//! Configuration: the AWS SDK's own (region, credentials, `AWS_ENDPOINT_URL`
//! through aws-config) plus the table name from `STREAMFOLD_TABLE`.

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};

use crate::metrics::RequestCounter;

/// The environment variable naming the table.
pub const TABLE_ENV: &str = "STREAMFOLD_TABLE";
/// The table used when `STREAMFOLD_TABLE` is unset or empty.
pub const DEFAULT_TABLE: &str = "streamfold";

/// The table name from the environment.
pub fn table_name() -> String {
    std::env::var(TABLE_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TABLE.to_owned())
}

/// Loads the SDK configuration from the environment.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Fails clearly when no region is configured (the SDK would fail later,
/// on the first request, with a less helpful message).
pub fn require_region(config: &SdkConfig) -> Result<(), String> {
    match config.region() {
        Some(_) => Ok(()),
        None => Err(
            "no AWS region is configured: set AWS_REGION (for the local endpoint \
                     any region works, e.g. AWS_REGION=us-east-1)"
                .to_owned(),
        ),
    }
}

/// A DynamoDB client, optionally counting its requests.
pub fn dynamodb_client(
    config: &SdkConfig,
    counter: Option<&RequestCounter>,
) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(config);
    if let Some(c) = counter {
        builder = builder.interceptor(c.clone());
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// How long [`warm_up`] may take before init goes on without it.
pub const WARM_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens the client's connection to the table's endpoint (DNS, TCP, TLS,
/// credentials, endpoint resolution) during a Lambda function's init, where
/// it is cheaper than in the first invocation: one `DescribeTable`, which
/// reads no item and costs no capacity. Returns how long it took. A failure
/// (throttling, a network error, a missing table) is logged and returned,
/// never fatal: the first invocation then connects itself and reports any
/// real error per record as usual.
pub async fn warm_up(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let sent = tokio::time::timeout(
        WARM_UP_TIMEOUT,
        client.describe_table().table_name(table).send(),
    )
    .await;
    let result = match sent {
        Ok(Ok(_)) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()),
        Err(_) => Err(format!("no answer within {WARM_UP_TIMEOUT:?}")),
    };
    match &result {
        Ok(took) => tracing::debug!(took_ms = took.as_millis() as u64, "table connection warmed"),
        Err(e) => {
            tracing::warn!(error = %e, "warming the table connection failed; the first invocation connects")
        }
    }
    result
}

/// A DynamoDB Streams client.
pub fn streams_client(config: &SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(config)
}
