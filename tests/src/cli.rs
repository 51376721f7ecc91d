//! The real `streamfold` binary for the CLI tests: built once per test run
//! (with the cargo that runs the tests), started against a table of the
//! local endpoint, its output read back.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use serde_json::Value;

use crate::runtime_api::{build_binary, function_env};

/// The `streamfold` binary, built once per test run.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build_binary("streamfold", false))
        .clone()
        .expect("the streamfold binary builds")
}

/// A `streamfold` command against a table of the local endpoint.
pub fn cli(table: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(args)
        .env_remove("STREAMFOLD_AGENT_STREAM")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in function_env(table) {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a `streamfold` command to its end: (exit code, stdout, stderr).
pub async fn run(table: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = cli(table, args)
        .output()
        .await
        .expect("the streamfold binary starts");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command to its end; panics (with both outputs) unless it
/// succeeded. (stdout, stderr)
pub async fn run_ok(table: &str, args: &[&str]) -> (String, String) {
    let (code, stdout, stderr) = run(table, args).await;
    assert!(
        code == Some(0),
        "streamfold {args:?} failed ({code:?}):\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// The JSON summary of a `--json` command: its last line that is a JSON
/// object with `records`.
pub fn summary(text: &str) -> Value {
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{') && l.contains("\"records\""));
    serde_json::from_str(line.unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON summary in {text:?}: {e}"))
}
