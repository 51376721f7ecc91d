//! Logging: `tracing` events, JSON in Lambda, human text in the CLI.
//! `RUST_LOG` filters (default `info`). Message bodies and names are never
//! logged by streamfold: only ids, counts and error kinds.

use tracing_subscriber::EnvFilter;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// JSON lines on stdout, as CloudWatch wants them.
pub fn init_lambda() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter("info"))
        .with_current_span(true)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Human text on stderr.
pub fn init_cli(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .try_init();
}
