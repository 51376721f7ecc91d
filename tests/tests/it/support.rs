//! What the CLI tests share: the `streamfold` binary and a command for it.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use streamfold_tests::runtime_api::{build_binary, function_env};

/// The `streamfold` binary, built once per test run.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build_binary("streamfold", false))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
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
        .unwrap_or_else(|e| panic!("running streamfold {args:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
