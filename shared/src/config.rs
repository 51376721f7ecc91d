//! Configuration: the AWS SDK's own (region, credentials, `AWS_ENDPOINT_URL`
//! through aws-config) plus the table name from `STREAMFOLD_TABLE`.

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

/// A DynamoDB Streams client.
pub fn streams_client(config: &SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(config)
}
