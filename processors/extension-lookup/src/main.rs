//! The extension-lookup Lambda function for Connect contact flows. Any JSON
//! in, a flat string map out; it never returns an error to Connect.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use streamfold_shared::{config, executor::Executor};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    streamfold_shared::telemetry::init_lambda();
    let sdk = config::load_sdk_config().await;
    config::require_region(&sdk)?;
    // Connect waits at most 8 s for the function: keep every read short.
    let ddb = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(Duration::from_millis(800))
                .operation_timeout(Duration::from_secs(2))
                .build(),
        )
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(ddb);
    let table = config::table_name();
    // The connection is opened during init, not in the caller's first call.
    let _ = config::warm_up(&client, &table).await;
    let exec = Executor::new(client, table).with_retry(streamfold_shared::executor::RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
    });
    let shared = Arc::new((exec, extension_lookup::digits_from_env()));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let shared = shared.clone();
        async move {
            let (exec, digits) = &*shared;
            Ok::<_, lambda_runtime::Error>(
                extension_lookup::lookup(exec, *digits, &event.payload).await,
            )
        }
    }))
    .await
}
