//! The agent-activity Lambda function: Kinesis events of Connect's agent
//! event stream in, `batchItemFailures` out.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    streamfold_shared::lambda::serve_kinesis(agent_activity::AgentActivity::from_env()).await
}
