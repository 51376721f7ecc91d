//! `streamfold import extensions|cruddur`: adopting the data of the two
//! systems streamfold replaces (docs/migrating.md), each source in its own
//! module with its own arguments.

pub mod cruddur;
pub mod extensions;

use std::process::ExitCode;

use anyhow::Result;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use clap::Subcommand;

use crate::app::App;

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Adopt the awsconnect-extensions assignments (its DynamoDB table, or
    /// its `user,extension` CSV export from a file or s3://): every agent
    /// keeps its extension; usernames with no profile yet get it reserved.
    Extensions(extensions::ExtensionsArgs),
    /// Adopt the Cruddur chat table (`cruddur-messages`): one group per
    /// conversation with its two participants, every message in
    /// streamfold's key format; previews come from the pipeline or
    /// `rebuild previews`.
    Cruddur(cruddur::CruddurArgs),
}

/// Runs one `import` command.
pub async fn run(app: &App, cmd: ImportCmd) -> Result<ExitCode> {
    match cmd {
        ImportCmd::Extensions(args) => extensions::run_cli(app, args).await,
        ImportCmd::Cruddur(args) => cruddur::run_cli(app, args).await,
    }
}

/// A DynamoDB error on the old table, as one readable line: the table, the
/// error code and its message, and what to do about a missing table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OldTableError {
    #[error("table {table} does not exist here (check --from-table, AWS_REGION and the account)")]
    Missing { table: String },
    #[error("reading table {table}: {code}: {message}")]
    Service {
        table: String,
        code: String,
        message: String,
    },
    #[error("reading table {table}: {detail}")]
    Other { table: String, detail: String },
}

/// The [`OldTableError`] of an SDK error on `table`.
pub(crate) fn old_table_error<E, R>(table: &str, e: SdkError<E, R>) -> OldTableError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let table = table.to_owned();
    match (e.code(), e.message()) {
        (Some("ResourceNotFoundException"), _) => OldTableError::Missing { table },
        (Some(code), Some(message)) => OldTableError::Service {
            table,
            code: code.to_owned(),
            message: message.to_owned(),
        },
        _ => OldTableError::Other {
            table,
            detail: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
        },
    }
}
