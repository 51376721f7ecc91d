//! What every command runs with: the SDK configuration from the environment,
//! the table name, and the processor context.

use anyhow::{Context as _, Result, anyhow};
use aws_config::SdkConfig;
use streamfold_shared::config;
use streamfold_shared::engine::Context;
use streamfold_shared::executor::Executor;
use streamfold_shared::metrics::RequestCounter;

/// Clients and settings for one CLI run.
#[derive(Clone, Debug)]
pub struct App {
    pub sdk: SdkConfig,
    pub table: String,
    pub ctx: Context,
    pub counter: RequestCounter,
}

impl App {
    /// From the environment (aws-config) and the table name.
    pub async fn from_env(table: &str) -> Result<Self> {
        let sdk = config::load_sdk_config().await;
        Self::new(sdk, table)
    }

    pub fn new(sdk: SdkConfig, table: &str) -> Result<Self> {
        config::require_region(&sdk).map_err(|e| anyhow!(e))?;
        let counter = RequestCounter::new();
        let client = config::dynamodb_client(&sdk, Some(&counter));
        let ctx = Context::new(Executor::new(client, table));
        Ok(Self {
            sdk,
            table: table.to_owned(),
            ctx,
            counter,
        })
    }

    pub fn ddb(&self) -> &aws_sdk_dynamodb::Client {
        self.ctx.exec.client()
    }

    pub fn streams(&self) -> aws_sdk_dynamodbstreams::Client {
        config::streams_client(&self.sdk)
    }

    /// Fails with the table's name when it does not exist (one
    /// `DescribeTable`, no capacity): for commands that would otherwise
    /// retry every record against a missing table before saying so.
    pub async fn require_table(&self) -> Result<()> {
        self.ddb()
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))
            .with_context(|| format!("describing table {}", self.table))?;
        Ok(())
    }

    /// The table's current stream ARN.
    pub async fn stream_arn(&self) -> Result<String> {
        let out = streamfold_shared::executor::send_retrying(
            crate::tail::request_backoff(),
            "DescribeTable",
            || self.ddb().describe_table().table_name(&self.table).send(),
        )
        .await
        .with_context(|| format!("describing table {}", self.table))?;
        out.table.and_then(|t| t.latest_stream_arn).ok_or_else(|| {
            anyhow!(
                "table {} has no stream; create it with `streamfold table create`",
                self.table
            )
        })
    }
}
