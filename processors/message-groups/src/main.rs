//! The message-groups Lambda function: DynamoDB Streams events of the table
//! in, `batchItemFailures` out.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    streamfold_shared::lambda::serve_table_stream(message_groups::MessageGroups).await
}
