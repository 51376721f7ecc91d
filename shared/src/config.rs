//! Configuration: the AWS SDK's own (region, credentials, `AWS_ENDPOINT_URL`
//! through aws-config) plus the table name from `STREAMFOLD_TABLE`.

use std::time::{Duration, Instant};

use aws_config::timeout::TimeoutConfig;
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

/// The environment variable giving how long one request attempt may take
/// (milliseconds) before the SDK abandons it and retries; `0` for no limit.
pub const ATTEMPT_TIMEOUT_ENV: &str = "STREAMFOLD_ATTEMPT_TIMEOUT_MS";
/// The attempt timeout when `STREAMFOLD_ATTEMPT_TIMEOUT_MS` is unset.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The attempt timeout from the environment: `None` for no limit. A value
/// that is not a number of milliseconds is reported and the default used.
pub fn attempt_timeout() -> Option<Duration> {
    parse_attempt_timeout(std::env::var(ATTEMPT_TIMEOUT_ENV).ok().as_deref())
}

fn parse_attempt_timeout(value: Option<&str>) -> Option<Duration> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Some(DEFAULT_ATTEMPT_TIMEOUT);
    };
    match v.parse::<u64>() {
        Ok(0) => None,
        Ok(ms) => Some(Duration::from_millis(ms)),
        Err(_) => {
            tracing::warn!(
                value = v,
                "{ATTEMPT_TIMEOUT_ENV} is not a number of milliseconds; using the default"
            );
            Some(DEFAULT_ATTEMPT_TIMEOUT)
        }
    }
}

/// Loads the SDK configuration from the environment, with a connect timeout
/// and a per-attempt timeout ([`attempt_timeout`]): a request that hangs
/// (a stalled connection, an endpoint that never answers) is abandoned and
/// retried instead of holding its batch forever.
pub async fn load_sdk_config() -> SdkConfig {
    let mut timeouts = TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT);
    timeouts.set_operation_attempt_timeout(attempt_timeout());
    let timeouts = timeouts.build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

/// No AWS region is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no AWS region is configured: set AWS_REGION (for the local endpoint \
     any region works, e.g. AWS_REGION=us-east-1)"
)]
pub struct NoRegion;

/// Fails clearly when no region is configured (the SDK would fail later,
/// on the first request, with a less helpful message).
pub fn require_region(config: &SdkConfig) -> Result<(), NoRegion> {
    match config.region() {
        Some(_) => Ok(()),
        None => Err(NoRegion),
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

/// Why [`warm_up`] did not warm the connection (never fatal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarmUpError {
    /// `DescribeTable` failed (the SDK's error chain).
    #[error("{0}")]
    Failed(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
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
pub async fn warm_up(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Duration, WarmUpError> {
    let start = Instant::now();
    let sent = tokio::time::timeout(
        WARM_UP_TIMEOUT,
        client.describe_table().table_name(table).send(),
    )
    .await;
    let result = match sent {
        Ok(Ok(_)) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(WarmUpError::Failed(
            aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
        )),
        Err(_) => Err(WarmUpError::TimedOut(WARM_UP_TIMEOUT)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_region_says_what_to_set() {
        assert_eq!(
            NoRegion.to_string(),
            "no AWS region is configured: set AWS_REGION (for the local endpoint any region works, e.g. AWS_REGION=us-east-1)"
        );
        let timed_out = WarmUpError::TimedOut(WARM_UP_TIMEOUT).to_string();
        assert_eq!(timed_out, "no answer within 2s");
    }

    #[test]
    fn attempt_timeout_reads_milliseconds_zero_and_nonsense() {
        assert_eq!(parse_attempt_timeout(None), Some(DEFAULT_ATTEMPT_TIMEOUT));
        assert_eq!(
            parse_attempt_timeout(Some(" ")),
            Some(DEFAULT_ATTEMPT_TIMEOUT)
        );
        assert_eq!(
            parse_attempt_timeout(Some("1500")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_attempt_timeout(Some("0")), None);
        assert_eq!(
            parse_attempt_timeout(Some("2s")),
            Some(DEFAULT_ATTEMPT_TIMEOUT)
        );
    }
}
