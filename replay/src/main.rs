//! The `streamfold` command.

#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = streamfold::cli::Cli::parse();
    streamfold_shared::telemetry::init_cli("warn");
    match streamfold::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
