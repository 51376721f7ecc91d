//! The first mistakes a new user makes get a short, readable error through
//! the real binary: a missing table, an endpoint that is not running, no
//! region, no credentials. At most three lines, no SDK dump, no colour on a
//! pipe, exit code 2.

use std::process::Stdio;

use streamfold_tests::cli::binary;

/// Runs the binary with a clean AWS environment plus `env`; (code, stderr).
async fn run(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        // Never the instance metadata service: this is no EC2 instance.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/streamfold-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/streamfold-credentials",
        )
        .env("STREAMFOLD_ATTEMPT_TIMEOUT_MS", "3000");
    for var in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "RUST_LOG",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("streamfold {args:?} did not end in 120 s"))
        .expect("the streamfold binary starts");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn local_env() -> Vec<(&'static str, String)> {
    let url = streamfold_tests::endpoint_url();
    vec![
        ("AWS_ENDPOINT_URL", url),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}

fn with<'a>(base: &'a [(&'static str, String)], skip: &[&str]) -> Vec<(&'static str, &'a str)> {
    base.iter()
        .filter(|(k, _)| !skip.contains(k))
        .map(|(k, v)| (*k, v.as_str()))
        .collect()
}

/// Short, no dump, no escape codes.
fn readable(stderr: &str) {
    assert!(
        stderr.lines().count() <= 3,
        "more than three lines:\n{stderr}"
    );
    for dump in [
        "ServiceError",
        "DispatchFailure",
        "ConnectorError",
        "raw: Response",
        "\u{1b}[",
    ] {
        assert!(!stderr.contains(dump), "{dump:?} in:\n{stderr}");
    }
}

#[tokio::test]
async fn a_missing_table_is_named_with_the_endpoint_and_the_command_that_makes_it() {
    let env = local_env();
    let (code, stderr) = run(
        &with(&env, &[]),
        &["--table", "no-such-table", "conversations", "list", "bob"],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    readable(&stderr);
    assert!(
        stderr.contains("table no-such-table does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&env[0].1) && stderr.contains("AWS_ENDPOINT_URL"),
        "{stderr}"
    );
    assert!(stderr.contains("streamfold table create"), "{stderr}");
    // replay says the same at once, instead of retrying every record.
    let fixture = streamfold_tests::fixtures_dir().join("lambda-dynamodb-event.json");
    let file = fixture.display().to_string();
    let (code, stderr) = run(
        &with(&env, &[]),
        &["--table", "no-such-table", "replay", &file],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    readable(&stderr);
    assert!(stderr.contains("streamfold table create"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_loopback_endpoint_suggests_starting_it() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a local port is free");
    let url = format!("http://127.0.0.1:{port}");
    let mut env = local_env();
    env[0].1 = url.clone();
    let (code, stderr) = run(&with(&env, &[]), &["agents", "list"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    readable(&stderr);
    assert!(
        stderr.contains(&url) && stderr.contains("AWS_ENDPOINT_URL"),
        "{stderr}"
    );
    assert!(stderr.contains("scripts/endpoint start"), "{stderr}");
}

#[tokio::test]
async fn no_region_says_to_set_aws_region_without_imds_noise() {
    let env = local_env();
    let (code, stderr) = run(&with(&env, &["AWS_REGION"]), &["agents", "list"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    readable(&stderr);
    assert!(stderr.contains("set AWS_REGION"), "{stderr}");
    assert!(
        !stderr.contains("IMDS") && !stderr.contains("WARN"),
        "{stderr}"
    );
}

#[tokio::test]
async fn no_credentials_say_how_to_set_them() {
    let env = local_env();
    let (code, stderr) = run(
        &with(&env, &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]),
        &["agents", "list"],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    readable(&stderr);
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
    assert!(stderr.contains("AWS_ACCESS_KEY_ID"), "{stderr}");
}

#[tokio::test]
async fn verbose_shows_the_sdk_detail() {
    let env = local_env();
    let (code, stderr) = run(
        &with(&env, &[]),
        &["-v", "--table", "no-such-table", "extensions", "stats"],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("ResourceNotFoundException"), "{stderr}");
    assert!(!stderr.contains("\u{1b}["), "colour on a pipe:\n{stderr}");
}
