//! Cold start and footprint of every Lambda function binary, measured as
//! Lambda runs them: each release binary is started against the local
//! Runtime API (`streamfold_tests::runtime_api`) with the first event already
//! queued, on a fresh table of the local endpoint (AWS_ENDPOINT_URL).
//!
//!     eval "$(scripts/endpoint env)"
//!     cargo run --release -p streamfold-tests --bin lambda_figures -- [RUNS]
//!
//! Per function, the median of RUNS (default 3) cold starts:
//! - init: process start → the function's first `GET /invocation/next`
//!   (logging, SDK config, client, the warm-up DescribeTable);
//! - first: that first invocation (a 100-record batch for the stream
//!   functions, one contact-flow lookup, one reconcile run);
//! - start → response: the two together, the goal being < 50 ms;
//! - warm: the next invocation (another 100 records);
//! - of which function CPU: the user + system time the function's process
//!   used until its first response (/proc, 10 ms ticks): the rest is waiting,
//!   almost all of it for the endpoint;
//! - peak RSS: VmHWM of the process after both;
//! - zip: `target/lambda/<name>/bootstrap.zip` of the arm64 build
//!   (`scripts/package`), if it is there.
//!
//! The binaries are x86_64 release builds of this machine (built first with
//! `cargo build --release -p FUNCTION`, or taken as they are from
//! target/release with STREAMFOLD_FIGURES_PREBUILT=1); the local endpoint is
//! moto on loopback, so DynamoDB's own latency is moto's.

#![recursion_limit = "256"]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_activity::synth;
use anyhow::{Context as _, Result, anyhow, bail};
use extensions::model::{AGENTS, WAITING};
use serde_json::{Value, json};
use streamfold::chat::{NewMessage, create_group};
use streamfold_shared::attrs::sv;
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::record::StreamRecord;
use streamfold_tests::TestTable;
use streamfold_tests::connect_stub::ConnectStub;
use streamfold_tests::runtime_api::{
    Answer, Function, RuntimeApi, build_binary, function_env, kinesis_lambda_records,
};

const WAIT: Duration = Duration::from_secs(120);
/// `=1`: measure the release binaries already in target/release instead of
/// building them first (each `cargo build -p FUNCTION` may rebuild shared
/// crates for its own feature set, minutes on two cores).
const PREBUILT: &str = "STREAMFOLD_FIGURES_PREBUILT";
const STREAM_ARN: &str =
    "arn:aws:dynamodb:us-east-1:012345678901:table/t/stream/2026-11-20T00:00:00.000";
const INSTANCE: &str =
    "arn:aws:connect:us-east-1:012345678901:instance/aaaaaaaa-bbbb-cccc-dddd-111111111111";

/// One cold start's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    init: Duration,
    first: Duration,
    start_to_response: Duration,
    warm: Duration,
    rss_kb: u64,
    /// CPU time the function's process used up to its first response
    /// (the rest of start → response is waiting, mostly for the endpoint).
    cpu_cold: Duration,
}

/// CPU time (user + system) of a process so far, from /proc (Linux; clock
/// ticks of 10 ms, USER_HZ = 100).
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// What a function is invoked with: the cold event, the warm event, and
/// extra environment.
struct Setup {
    cold: String,
    warm: String,
    env: Vec<(&'static str, String)>,
    /// Kept alive for the run (the Connect stub).
    _stub: Option<ConnectStub>,
}

fn table_event(records: &[StreamRecord]) -> String {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["eventSourceARN"] = json!(STREAM_ARN);
            v
        })
        .collect();
    json!({ "Records": records }).to_string()
}

fn kinesis_event(events: &[Value], first_seq: usize) -> String {
    json!({ "Records": kinesis_lambda_records(events, first_seq) }).to_string()
}

/// The stream records written since `skip`.
async fn records_after(t: &TestTable, skip: usize) -> Vec<StreamRecord> {
    let all = t.stream_records().await;
    all.into_iter().skip(skip).collect()
}

fn participant(i: usize) -> Result<message_groups::Participant> {
    Ok(message_groups::Participant {
        user_uuid: UserId::new(format!("user-{i:03}"))?,
        user_handle: format!("u{i}"),
        user_display_name: format!("User {i}"),
    })
}

/// 10 groups, then two batches of 100 message records.
async fn setup_message_groups(t: &TestTable) -> Result<Setup> {
    let groups = 10;
    for g in 0..groups {
        let first = NewMessage {
            group: GroupId::new(format!("group-{g:02}"))?,
            id: MessageId::new("first")?,
            at: Timestamp::parse("2026-11-20T08:00:00Z")?,
            sender: participant(2 * g)?,
            text: "first".into(),
        };
        create_group(
            t.exec(),
            [participant(2 * g)?, participant(2 * g + 1)?],
            first.at,
            &first,
        )
        .await?;
    }
    let message = |i: usize| -> Result<Item> {
        let g = i % groups;
        Ok(NewMessage {
            group: GroupId::new(format!("group-{g:02}"))?,
            id: MessageId::new(format!("m{i:04}"))?,
            at: Timestamp::parse("2026-11-20T10:00:00Z")?.plus_seconds(i as i64),
            sender: participant(2 * g)?,
            text: format!("message {i}"),
        }
        .item())
    };
    let items = (0..200).map(message).collect::<Result<Vec<_>>>()?;
    t.exec().batch_put(items).await?;
    let messages: Vec<StreamRecord> = records_after(t, 0)
        .await
        .into_iter()
        .filter(|r| r.key_str("pk").is_some_and(|pk| pk.starts_with("MSG#")))
        .filter(|r| r.key_str("sk").is_some_and(|sk| !sk.ends_with("#first")))
        .collect();
    if messages.len() < 200 {
        bail!("expected 200 message records, got {}", messages.len());
    }
    Ok(Setup {
        cold: table_event(&messages[..100]),
        warm: table_event(&messages[100..200]),
        env: Vec::new(),
        _stub: None,
    })
}

fn waiting_profile(i: usize) -> Item {
    let id = format!("agent-{i:04}");
    Item::from([
        ("pk".to_owned(), sv(format!("AGENT#{id}"))),
        ("sk".to_owned(), sv("PROFILE")),
        ("type".to_owned(), sv("agent")),
        ("agent_arn".to_owned(), sv(format!("{INSTANCE}/agent/{id}"))),
        ("username".to_owned(), sv(format!("user{i:04}"))),
        ("gsi1pk".to_owned(), sv(WAITING)),
        (
            "gsi1sk".to_owned(),
            sv(format!("2026-11-20T08:00:00.{i:06}Z#{id}")),
        ),
        ("gsi2pk".to_owned(), sv(AGENTS)),
        ("gsi2sk".to_owned(), sv(format!("user{i:04}"))),
    ])
}

/// A pool of 200 extensions, then two batches of 100 arriving agents.
async fn setup_extensions(t: &TestTable) -> Result<Setup> {
    let spec = extensions::init::PoolSpec::new(3, "200-999").map_err(|e| anyhow!(e))?;
    extensions::init::init(t.exec(), &spec, 4, &|_| {}).await?;
    let skip = t.stream_records().await.len();
    t.exec()
        .batch_put((0..200).map(waiting_profile).collect())
        .await?;
    let arrivals = records_after(t, skip).await;
    if arrivals.len() < 200 {
        bail!("expected 200 profile records, got {}", arrivals.len());
    }
    Ok(Setup {
        cold: table_event(&arrivals[..100]),
        warm: table_event(&arrivals[100..200]),
        env: Vec::new(),
        _stub: None,
    })
}

/// Two batches of 100 Connect agent events of 10 agents.
async fn setup_agent_activity(_t: &TestTable) -> Result<Setup> {
    let events = synth::day(10, 11, 1_795_046_400_000);
    if events.len() < 200 {
        bail!("the synthetic day has only {} events", events.len());
    }
    Ok(Setup {
        cold: kinesis_event(&events[..100], 1),
        warm: kinesis_event(&events[100..200], 101),
        env: Vec::new(),
        _stub: None,
    })
}

/// An assigned extension and its agent; the contact flow asks for it twice.
async fn setup_extension_lookup(t: &TestTable) -> Result<Setup> {
    let agent = "agent-0042";
    let arn = format!("{INSTANCE}/agent/{agent}");
    t.exec()
        .batch_put(vec![
            Item::from([
                ("pk".to_owned(), sv("EXT#0042")),
                ("sk".to_owned(), sv("EXT")),
                ("type".to_owned(), sv("ext")),
                ("extension".to_owned(), sv("0042")),
                ("agent_id".to_owned(), sv(agent)),
                ("agent_arn".to_owned(), sv(arn.as_str())),
                ("assigned_at".to_owned(), sv("2026-11-20T08:00:00.000000Z")),
            ]),
            Item::from([
                ("pk".to_owned(), sv(format!("AGENT#{agent}"))),
                ("sk".to_owned(), sv("PROFILE")),
                ("type".to_owned(), sv("agent")),
                ("agent_arn".to_owned(), sv(arn.as_str())),
                ("username".to_owned(), sv("agent42")),
                ("extension".to_owned(), sv("0042")),
                ("status".to_owned(), sv("Available")),
            ]),
        ])
        .await?;
    let event = streamfold_tests::fixture("connect-contact-flow-event.json");
    Ok(Setup {
        cold: event.clone(),
        warm: event,
        env: Vec::new(),
        _stub: None,
    })
}

/// Connect's users (one page of the fixture) through the local stub.
async fn setup_reconcile(_t: &TestTable) -> Result<Setup> {
    let pages: Vec<Value> =
        serde_json::from_str(&streamfold_tests::fixture("connect-list-users.json"))?;
    let mut first = pages
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("connect-list-users.json has no page"))?;
    if let Some(o) = first.as_object_mut() {
        o.remove("NextToken");
    }
    let stub = ConnectStub::start(vec![first], 0).await;
    let event = json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "012345678901", "time": "2026-11-20T08:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}
    })
    .to_string();
    Ok(Setup {
        cold: event.clone(),
        warm: event,
        env: vec![
            ("CONNECT_INSTANCE_ID", INSTANCE.to_owned()),
            ("AWS_ENDPOINT_URL_CONNECT", stub.url.clone()),
        ],
        _stub: Some(stub),
    })
}

fn check(answer: Answer, what: &str) -> Result<Value> {
    match answer {
        Answer::Response(body) => {
            let v: Value = serde_json::from_str(&body)
                .with_context(|| format!("{what}: the answer is not JSON: {body}"))?;
            if v.get("batchItemFailures")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
            {
                bail!("{what}: records failed: {body}");
            }
            Ok(v)
        }
        Answer::Error(body) => bail!("{what}: the function answered an error: {body}"),
    }
}

async fn one_run(package: &str, binary: &Path, n: usize) -> Result<Run> {
    let t = streamfold_tests::table(&format!("fig-{package}")).await;
    let setup = match package {
        "message-groups" => setup_message_groups(&t).await,
        "extensions" => setup_extensions(&t).await,
        "agent-activity" => setup_agent_activity(&t).await,
        "extension-lookup" => setup_extension_lookup(&t).await,
        "reconcile" => setup_reconcile(&t).await,
        other => Err(anyhow!("unknown function {other}")),
    };
    let result = async {
        let setup = setup?;
        let api = RuntimeApi::start().await?;
        let mut env = function_env(&t.name);
        env.extend(setup.env.iter().cloned());
        let mut function = Function::start(binary, &api, &env)?;
        let started = function.started;
        // Queued at once (before the process can ask for it), as a cold
        // start with a waiting event is.
        let cold = api
            .invoke(&setup.cold, WAIT)
            .await
            .map_err(|e| anyhow!(e))?;
        let start_to_response = started.elapsed();
        let cpu_cold = cpu_time(function.child.id()).unwrap_or_default();
        check(cold, &format!("{package} run {n}, cold"))?;
        let ready = api
            .ready_at()
            .ok_or_else(|| anyhow!("{package}: the function never polled"))?;
        let init = ready.saturating_duration_since(started);
        let w = Instant::now();
        let warm = api
            .invoke(&setup.warm, WAIT)
            .await
            .map_err(|e| anyhow!(e))?;
        let warm_took = w.elapsed();
        check(warm, &format!("{package} run {n}, warm"))?;
        let rss_kb = function.peak_rss_kb().unwrap_or(0);
        let _ = function.child.kill().await;
        Ok(Run {
            init,
            first: start_to_response.saturating_sub(init),
            start_to_response,
            warm: warm_took,
            rss_kb,
            cpu_cold,
        })
    }
    .await;
    t.drop_table().await;
    result
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    streamfold_tests::require_endpoint();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3)
        .max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let prebuilt = std::env::var(PREBUILT).is_ok_and(|v| v == "1");
    let functions = [
        ("message-groups", "100 table-stream records (10 groups)"),
        ("extensions", "100 arriving agents (pool of 200)"),
        ("agent-activity", "100 Connect agent events (10 agents)"),
        ("extension-lookup", "one contact-flow lookup"),
        ("reconcile", "one run: 2 Connect users"),
    ];
    println!(
        "| function | first invocation is | init | first invocation | start → first response | of which function CPU | warm invocation | peak RSS | arm64 zip |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (package, what) in functions {
        let binary = if prebuilt {
            let path = target.join("release").join(package);
            if !path.exists() {
                bail!("{} is not built ({PREBUILT} is set)", path.display());
            }
            path
        } else {
            build_binary(package, true).map_err(|e| anyhow!(e))?
        };
        let mut all = Vec::with_capacity(runs);
        for n in 0..runs {
            all.push(one_run(package, &binary, n).await?);
        }
        let zip = target.join("lambda").join(package).join("bootstrap.zip");
        let zip = std::fs::metadata(&zip)
            .map(|m| format!("{:.2} MB", m.len() as f64 / 1e6))
            .unwrap_or_else(|_| "— (run scripts/package)".to_owned());
        let rss = all.iter().map(|r| r.rss_kb).max().unwrap_or(0);
        println!(
            "| {package} | {what} | {} ms | {} ms | {} ms | {:.0} ms | {} ms | {:.1} MB | {zip} |",
            ms(median(all.iter().map(|r| r.init).collect())),
            ms(median(all.iter().map(|r| r.first).collect())),
            ms(median(all.iter().map(|r| r.start_to_response).collect())),
            median(all.iter().map(|r| r.cpu_cold).collect()).as_secs_f64() * 1000.0,
            ms(median(all.iter().map(|r| r.warm).collect())),
            rss as f64 / 1024.0,
        );
    }
    println!(
        "\nmedian of {runs} cold starts each; x86_64 release binaries on this machine, local endpoint {}",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
    );
    Ok(())
}
