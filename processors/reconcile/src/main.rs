//! The reconcile Lambda function, run on a schedule. Settings from the
//! environment: `CONNECT_INSTANCE_ID` (required), `EXPORT_S3_URL`
//! (optional, `s3://bucket/key`), `RECONCILE_MAX_DELETES` (default 100),
//! and the table from `STREAMFOLD_TABLE`.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use streamfold_shared::config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    streamfold_shared::telemetry::init_lambda();
    let sdk = config::load_sdk_config().await;
    // The table client, built once and warmed during init.
    let ctx = streamfold_shared::lambda::context_from_sdk(&sdk).await?;
    let instance = std::env::var("CONNECT_INSTANCE_ID")
        .map_err(|_| "CONNECT_INSTANCE_ID is not set: the Connect instance id or ARN")?;
    let mut opts = reconcile::Options::new(instance);
    if let Some(n) = std::env::var("RECONCILE_MAX_DELETES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        opts.max_deletes = n;
    }
    let export = std::env::var("EXPORT_S3_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let connect = reconcile::connect_client(&sdk, None);
    let s3 = reconcile::s3_client(&sdk);
    let shared = std::sync::Arc::new((ctx, connect, s3, opts, export));
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let shared = shared.clone();
        async move {
            let (ctx, connect, s3, opts, export) = &*shared;
            let mut report = reconcile::reconcile(ctx, connect, opts).await?;
            if let Some(url) = export {
                let rows = reconcile::export(ctx, s3, url).await?;
                report.exported = Some((rows, url.clone()));
            }
            tracing::info!(
                users = report.users,
                created = report.created,
                deleted = report.deleted,
                renamed = report.renamed,
                unchanged = report.unchanged,
                "reconcile done"
            );
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(&report)?)
        }
    }))
    .await
}
