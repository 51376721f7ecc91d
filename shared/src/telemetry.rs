//! Logging: `tracing` events, JSON in Lambda, human text in the CLI.
//! `RUST_LOG` filters (default `info`). Message bodies and names are never
//! logged by streamfold: only ids, counts and error kinds.
//!
//! The AWS SDK, its HTTP stack and the Lambda runtime log whole request and
//! response bodies (items, names, message text) at TRACE and error details
//! at DEBUG, so they are held at INFO whatever `RUST_LOG` says. Setting
//! `STREAMFOLD_SDK_LOG=1` lifts that cap for debugging the wire; the logs
//! then contain the table's data.

use tracing_subscriber::EnvFilter;

/// The crates whose verbose levels show payloads.
const PAYLOAD_LOGGERS: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_connect",
    "aws_sdk_dynamodb",
    "aws_sdk_dynamodbstreams",
    "aws_sdk_kinesis",
    "aws_sdk_s3",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "aws_sdk_sts",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "h2",
    "hyper",
    "hyper_util",
    "lambda_runtime",
    "lambda_runtime_api_client",
    "rustls",
];

/// `filter` with the payload-logging crates held at INFO, unless
/// `STREAMFOLD_SDK_LOG` is set.
pub fn without_payloads(mut filter: EnvFilter) -> EnvFilter {
    if std::env::var_os("STREAMFOLD_SDK_LOG").is_some() {
        return filter;
    }
    for target in PAYLOAD_LOGGERS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

fn filter(default: &str) -> EnvFilter {
    without_payloads(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
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
    init_cli_verbose(default, 0);
}

/// The crates whose warnings, in a CLI run, repeat what the command's own
/// error says (IMDS look-ups when no region or credentials are set, the
/// SDK's retries): held at ERROR unless `-v` or `RUST_LOG` asks for more.
const CLI_QUIET: &[&str] = &["aws_config", "aws_smithy_runtime", "aws_runtime"];

/// Whether stderr gets colour: only on a terminal, and never with
/// `NO_COLOR` set (<https://no-color.org>).
pub fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Human text on stderr, with `verbose` (the count of `-v`): 0 gives
/// `default` with the SDK's warnings held back, 1 debug logs of
/// streamfold, 2 and more the SDK's too. `RUST_LOG` overrides all of it.
pub fn init_cli_verbose(default: &str, verbose: u8) {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(f) => without_payloads(f),
        Err(_) => {
            let level = match verbose {
                0 => default,
                _ => "debug",
            };
            let mut f = without_payloads(EnvFilter::new(level));
            if verbose < 2 {
                for target in CLI_QUIET {
                    if let Ok(directive) = format!("{target}=error").parse() {
                        f = f.add_directive(directive);
                    }
                }
            }
            f
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_colour())
        .with_target(false)
        .compact()
        .try_init();
}
