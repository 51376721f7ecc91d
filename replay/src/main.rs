//! The `streamfold` command.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: replay and tail decode and plan
/// millions of short-lived images and items, and glibc's malloc spent ~40 %
/// of a dry run's CPU (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = streamfold::cli::Cli::parse();
    let verbose = cli.verbose;
    let table = cli.table.clone();
    streamfold_shared::telemetry::init_cli_verbose("warn", verbose);
    // The one stop mechanism: the commands that stop early listen to it.
    let shutdown = streamfold::shutdown::Shutdown::new();
    match streamfold::cli::run(cli, &shutdown).await {
        Ok(code) => code,
        Err(e) => {
            let endpoint = streamfold::problem::Endpoint::from_env();
            eprint!(
                "{}",
                streamfold::problem::report(&e, &table, &endpoint, verbose > 0)
            );
            ExitCode::from(2)
        }
    }
}
