//! The chaos suite: a workload's sources are written into two tables; the
//! real `streamfold tail` processes one of them through a clean proxy and
//! the other through the [`ChaosProxy`] (throttling, 500s, answers past the
//! timeout, connections dropped after the write, cancelled transactions),
//! killed with SIGKILL at random points and restarted, and then every record
//! is delivered again from the start (checkpoints deleted, other batch
//! size), again under faults and kills. The two tables must end identical,
//! item for item, projections included.
//!
//! Used by the integration test `it::chaos` (small workloads, CI) and by the
//! `chaos` binary (thousands of records per workload, the report).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use extensions::init::{self as pool, PoolSpec};
use extensions::model::{AGENTS, WAITING};
use message_groups::Participant;
use serde_json::Value;
use streamfold::chat::{self, NewMessage};
use streamfold_shared::executor::Item;
use streamfold_shared::ids::{AgentId, GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::keys::Key;

use crate::chaos_proxy::{ChaosProxy, FaultCounts};
use crate::runtime_api::function_env;
use crate::{TestTable, table};

/// Attributes written with the processing time (`Timestamp::now()`), which
/// two runs cannot share: the extensions' `assigned_at` / `freed_at`. They
/// are left out of the comparison; everything else must match.
pub const PROCESSING_TIME_ATTRIBUTES: &[&str] = &["assigned_at", "freed_at"];

/// What the sources are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `messages` posts over `groups` conversations, then a twentieth of
    /// them edited and a twentieth deleted (previews must follow).
    Messaging { groups: usize, messages: usize },
    /// A synthetic working day of `agents` Connect agents, published to a
    /// Kinesis stream of two shards.
    Agents { agents: usize },
    /// `agents` profiles arrive on a pool of `pool` extensions (the rest
    /// wait), a quarter of them leave, then a quarter more arrive.
    Extensions { agents: usize, pool: usize },
}

impl Workload {
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Messaging { .. } => "messaging",
            Workload::Agents { .. } => "agent-activity",
            Workload::Extensions { .. } => "extensions",
        }
    }

    fn processor(&self) -> &'static str {
        match self {
            Workload::Messaging { .. } => "message-groups",
            Workload::Agents { .. } => "agent-activity",
            Workload::Extensions { .. } => "extensions",
        }
    }

    fn phases(&self) -> usize {
        match self {
            Workload::Messaging { .. } => 2,
            Workload::Agents { .. } => 1,
            Workload::Extensions { .. } => 3,
        }
    }
}

/// How hard the run is.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    /// The share of requests that fail (0 to 1).
    pub rate: f64,
    /// SIGKILLs per pass (the first pass and the redelivery pass), each at a
    /// random point of a run; fewer when the work ends first.
    pub kills: u32,
    /// Seeds the faults, the kill points and the sources.
    pub seed: u64,
    /// The SDK's attempt timeout in the processes (slow answers come after
    /// it).
    pub attempt_timeout: Duration,
    /// The longest a kill waits after a start (drawn from 0.2 s up to it).
    pub max_kill_delay: Duration,
}

/// What one scenario came to.
#[derive(Debug, Clone)]
pub struct Report {
    pub workload: &'static str,
    pub rate: f64,
    /// Stream records of the sources (read by the clean run).
    pub records: u64,
    /// Requests of the clean run.
    pub clean_requests: u64,
    /// What the proxy did during the chaos run.
    pub faults: FaultCounts,
    /// Processes killed with SIGKILL.
    pub kills: u32,
    /// Processes started in the chaos run.
    pub runs: u32,
    /// Dead letters in the chaos table.
    pub dead_letters: usize,
    /// Items compared (checkpoints left out).
    pub items: usize,
    /// What differs from the clean table (empty: identical).
    pub diff: Vec<String>,
    /// The extension pool's invariants after the chaos run, when checked.
    pub invariants: Option<String>,
    pub seconds: f64,
}

impl Report {
    /// True when nothing was lost, nothing applied twice and nothing
    /// dead-lettered.
    pub fn clean(&self) -> bool {
        self.diff.is_empty()
            && self.dead_letters == 0
            && self.invariants.as_deref().is_none_or(|i| i == "hold")
    }
}

/// The report table's header.
pub fn header() -> String {
    format!(
        "{:<15} {:>5} {:>7} {:>8} {:>8} {:>7} {:>6} {:>6} {:>7} {:>5} {:>6} {:>8} {:>6} {:>5} {:>5} {:>6} {:>6}",
        "workload",
        "rate",
        "records",
        "req clean",
        "req chaos",
        "faults",
        "thrott",
        "500",
        "slow",
        "drop",
        "cancel",
        "repeated",
        "kills",
        "runs",
        "dead",
        "items",
        "diff"
    )
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.faults;
        write!(
            f,
            "{:<15} {:>4.0}% {:>7} {:>9} {:>8} {:>7} {:>6} {:>6} {:>7} {:>5} {:>6} {:>8} {:>6} {:>5} {:>5} {:>6} {:>6}",
            self.workload,
            self.rate * 100.0,
            self.records,
            self.clean_requests,
            c.requests,
            c.faults(),
            c.throttled,
            c.server_errors,
            c.slow,
            c.dropped_after_write,
            c.cancelled,
            c.repeated,
            self.kills,
            self.runs,
            self.dead_letters,
            self.items,
            if self.diff.is_empty() {
                "empty".to_owned()
            } else {
                self.diff.len().to_string()
            }
        )
    }
}

/// One scenario's setting: the binary, the endpoint, where logs go.
pub struct Runner {
    /// The `streamfold` binary.
    pub bin: PathBuf,
    /// The local endpoint (`AWS_ENDPOINT_URL`).
    pub upstream: String,
    /// The processes' stderr is appended here.
    pub log: PathBuf,
}

/// What a tail run works on.
#[derive(Clone, Copy)]
struct Run<'a> {
    table: &'a TestTable,
    proxy: &'a ChaosProxy,
    workload: Workload,
    /// The agent event stream, for agent-activity.
    kinesis: Option<&'a str>,
    chaos: Chaos,
}

/// A tail run's end.
enum Ended {
    Killed,
    Finished(Value),
}

impl Runner {
    /// Runs one workload clean and under `chaos`; the report.
    pub async fn scenario(&self, workload: Workload, chaos: Chaos) -> Result<Report> {
        let started = Instant::now();
        let mut rng = fastrand::Rng::with_seed(chaos.seed);
        let proxy = ChaosProxy::start(&self.upstream, 0.0, chaos.seed, slow(chaos)).await?;
        let clean = table(&format!("chaos-clean-{}", workload.name())).await;
        let dirty = table(&format!("chaos-{}", workload.name())).await;
        let kinesis = match workload {
            Workload::Agents { agents } => Some(self.publish(&clean, agents, chaos.seed).await?),
            _ => None,
        };

        // The clean run: each phase's sources, then one tail to idle.
        let mut records = 0;
        for phase in 0..workload.phases() {
            write_sources(&clean, workload, phase, chaos.seed).await?;
            let run = Run {
                table: &clean,
                proxy: &proxy,
                workload,
                kinesis: kinesis.as_deref(),
                chaos,
            };
            let summary = self.tail_to_end(run, 100).await?;
            records += summary["records"].as_u64().unwrap_or(0);
        }
        let clean_requests = proxy.counts().requests;

        // The chaos run: the same phases under faults and kills, then every
        // record again from the start.
        proxy.set_rate(chaos.rate);
        let before = proxy.counts();
        let (mut kills, mut runs) = (0, 0);
        let run = Run {
            table: &dirty,
            proxy: &proxy,
            workload,
            kinesis: kinesis.as_deref(),
            chaos,
        };
        for phase in 0..workload.phases() {
            write_sources(&dirty, workload, phase, chaos.seed).await?;
            let (k, r) = self.tail_with_kills(run, 100, &mut rng).await?;
            kills += k;
            runs += r;
        }
        delete_checkpoints(&dirty).await?;
        let (k, r) = self.tail_with_kills(run, 37, &mut rng).await?;
        kills += k;
        runs += r;
        let faults = proxy.counts().since(&before);

        let want = comparable(&clean).await;
        let got = comparable(&dirty).await;
        if let Some(dir) = std::env::var_os(DUMP_ENV) {
            dump(&PathBuf::from(dir), workload, chaos, &want, &got)?;
        }
        let dead_letters = dirty.items_of_type("deadletter").await.len();
        let invariants = match workload {
            Workload::Extensions { .. } => {
                let c = extensions::census::census(dirty.exec()).await?;
                Some(if c.violations.is_empty() {
                    "hold".to_owned()
                } else {
                    format!("broken: {:?}", c.violations)
                })
            }
            _ => None,
        };
        let report = Report {
            workload: workload.name(),
            rate: chaos.rate,
            records,
            clean_requests,
            faults,
            kills,
            runs,
            dead_letters,
            items: want.len(),
            diff: diff(&want, &got),
            invariants,
            seconds: started.elapsed().as_secs_f64(),
        };
        if let Some(stream) = kinesis {
            let k =
                aws_sdk_kinesis::Client::new(&streamfold_shared::config::load_sdk_config().await);
            let _ = k.delete_stream().stream_name(stream).send().await;
        }
        clean.drop_table().await;
        dirty.drop_table().await;
        Ok(report)
    }

    /// Publishes a synthetic day of `agents` agents to a new Kinesis stream
    /// of two shards (directly, not through the proxy); its name.
    async fn publish(&self, t: &TestTable, agents: usize, seed: u64) -> Result<String> {
        let stream = format!("{}-agents", t.name);
        let out = self
            .command(&t.name, &self.upstream)
            .args(["publish", "--stream", &stream, "--shards", "2"])
            .args(["--synth-agents", &agents.to_string()])
            .args(["--seed", &seed.to_string(), "--date", "2026-11-20"])
            .stdout(Stdio::null())
            .output()
            .await
            .context("running streamfold publish")?;
        if !out.status.success() {
            bail!(
                "streamfold publish failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stream)
    }

    fn command(&self, table: &str, endpoint: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.env_remove("STREAMFOLD_AGENT_STREAM")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in function_env(table) {
            cmd.env(k, v);
        }
        cmd.env("AWS_ENDPOINT_URL", endpoint);
        cmd
    }

    /// Starts `tail --until-idle` through the proxy and waits for its end,
    /// or kills it with SIGKILL after `kill_after`.
    async fn tail(
        &self,
        run: Run<'_>,
        batch: usize,
        kill_after: Option<Duration>,
    ) -> Result<Ended> {
        let Run {
            table: t,
            proxy,
            workload,
            kinesis,
            chaos,
        } = run;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut cmd = self.command(&t.name, &proxy.url);
        cmd.args([
            "tail",
            "--until-idle",
            "--idle-ms",
            "1500",
            "--poll-ms",
            "100",
        ])
        .args(["--batch-size", &batch.to_string(), "--json"])
        .args(["--processor", workload.processor()])
        .env(
            streamfold_shared::config::ATTEMPT_TIMEOUT_ENV,
            chaos.attempt_timeout.as_millis().to_string(),
        )
        .stdout(Stdio::piped())
        .stderr(log);
        if let Some(k) = kinesis {
            cmd.args(["--kinesis-stream", k]);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().context("starting streamfold tail")?;
        let mut stdout = child.stdout.take().context("tail's stdout")?;
        let read = tokio::spawn(async move {
            let mut s = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s).await;
            s
        });
        let limit = kill_after.unwrap_or(Duration::from_secs(1800));
        let status = match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status.context("waiting for tail")?,
            Err(_) => {
                child.start_kill().context("killing tail")?;
                let _ = child.wait().await;
                // Its requests still in flight land before anything else.
                proxy.drain(Duration::from_secs(120)).await;
                if kill_after.is_some() {
                    eprintln!(
                        "chaos: {} tail killed after {:.1} s",
                        t.name,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(Ended::Killed);
                }
                bail!("tail did not finish within {limit:?}");
            }
        };
        let stdout = read.await.unwrap_or_default();
        eprintln!(
            "chaos: {} tail ended ({status}) after {:.1} s",
            t.name,
            started.elapsed().as_secs_f64()
        );
        let summary = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or(Value::Null);
        // 0: all settled; 1: some record failed (dead-lettered or not).
        if !(status.success() || status.code() == Some(1)) {
            bail!(
                "tail ended with {status} (log: {}); summary {summary}",
                self.log.display()
            );
        }
        Ok(Ended::Finished(summary))
    }

    /// One tail without faults or kills, to its end; its summary.
    async fn tail_to_end(&self, run: Run<'_>, batch: usize) -> Result<Value> {
        match self.tail(run, batch, None).await? {
            Ended::Finished(summary) => Ok(summary),
            Ended::Killed => bail!("a tail without a kill point was killed"),
        }
    }

    /// Tails, killing the process at random points up to `chaos.kills`
    /// times, then once more to the end. (kills, runs).
    async fn tail_with_kills(
        &self,
        run: Run<'_>,
        batch: usize,
        rng: &mut fastrand::Rng,
    ) -> Result<(u32, u32)> {
        let (mut kills, mut runs) = (0, 0);
        let max = run.chaos.max_kill_delay.as_millis().max(201) as u64;
        for _ in 0..run.chaos.kills {
            let after = Duration::from_millis(rng.u64(200..max));
            runs += 1;
            match self.tail(run, batch, Some(after)).await? {
                Ended::Killed => kills += 1,
                Ended::Finished(_) => return Ok((kills, runs)),
            }
        }
        runs += 1;
        self.tail_to_end(run, batch).await?;
        Ok((kills, runs))
    }
}

/// A slow answer comes half a second after the client gave up on it.
fn slow(chaos: Chaos) -> Duration {
    chaos.attempt_timeout + Duration::from_millis(500)
}

/// A directory to write both tables into, as JSON, for a look at a diff
/// (`{workload}-{seed}-clean.json`, `…-chaos.json`).
pub const DUMP_ENV: &str = "STREAMFOLD_CHAOS_DUMP";

fn dump(
    dir: &std::path::Path,
    workload: Workload,
    chaos: Chaos,
    want: &BTreeMap<(String, String), Value>,
    got: &BTreeMap<(String, String), Value>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, items) in [("clean", want), ("chaos", got)] {
        let path = dir.join(format!("{}-{}-{name}.json", workload.name(), chaos.seed));
        let list: Vec<&Value> = items.values().collect();
        let text = serde_json::to_string_pretty(&list)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The table's items without checkpoints (positions in a table's own
/// stream) and without processing-time attributes.
async fn comparable(t: &TestTable) -> BTreeMap<(String, String), Value> {
    let mut items = t.snapshot_without(&["checkpoint"]).await;
    for v in items.values_mut() {
        if let Some(o) = v.as_object_mut() {
            for a in PROCESSING_TIME_ATTRIBUTES {
                o.remove(*a);
            }
            // A string set has no order (DynamoDB, and the endpoint, give
            // its members in any order): compare it sorted.
            if let Some(Value::Array(ids)) = o.get_mut("claimed") {
                ids.sort_by_key(|x| x.to_string());
            }
        }
    }
    items
}

/// What differs, one line per item (keys and attribute names only: the
/// values may hold names and message text).
pub fn diff(
    want: &BTreeMap<(String, String), Value>,
    got: &BTreeMap<(String, String), Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for ((pk, sk), w) in want {
        match got.get(&(pk.clone(), sk.clone())) {
            None => out.push(format!("missing {pk} / {sk}")),
            Some(g) if g != w => {
                let mut line = format!("changed {pk} / {sk}:");
                let (wo, go) = (w.as_object(), g.as_object());
                if let (Some(wo), Some(go)) = (wo, go) {
                    let mut names: Vec<&String> = wo.keys().chain(go.keys()).collect();
                    names.sort();
                    names.dedup();
                    for n in names {
                        if wo.get(n) != go.get(n) {
                            let _ = write!(line, " {n}");
                        }
                    }
                }
                out.push(line);
            }
            Some(_) => {}
        }
    }
    for ((pk, sk), g) in got {
        if !want.contains_key(&(pk.clone(), sk.clone())) {
            let kind = g["type"].as_str().unwrap_or("?");
            out.push(format!("extra {pk} / {sk} ({kind})"));
        }
    }
    out
}

async fn delete_checkpoints(t: &TestTable) -> Result<()> {
    let exec = t.exec();
    for item in t.items_of_type("checkpoint").await {
        let key = |k: &str| AttributeValue::S(item[k].as_str().unwrap_or_default().to_owned());
        exec.retrying("DeleteItem", || {
            exec.client()
                .delete_item()
                .table_name(exec.table())
                .key("pk", key("pk"))
                .key("sk", key("sk"))
                .send()
        })
        .await
        .context("deleting a checkpoint")?;
    }
    Ok(())
}

/// Writes phase `phase` of the workload's sources (directly, no faults).
async fn write_sources(t: &TestTable, w: Workload, phase: usize, seed: u64) -> Result<()> {
    match w {
        Workload::Messaging { groups, messages } => {
            messaging(t, groups, messages, phase, seed).await
        }
        Workload::Agents { .. } => Ok(()),
        Workload::Extensions { agents, pool } => extension_churn(t, agents, pool, phase).await,
    }
}

fn participant(i: usize) -> Result<Participant> {
    Ok(Participant {
        user_uuid: UserId::new(format!("00000000-0000-4000-9000-{i:012}"))?,
        user_handle: format!("user{i}"),
        user_display_name: format!("User {i}"),
    })
}

/// A message of the workload: the same id, time, sender and text in every
/// table (`n`-th of group `g`).
fn message(g: usize, n: usize, sender: &Participant) -> Result<NewMessage> {
    let base = Timestamp::parse("2026-11-20T08:00:00Z")?;
    Ok(NewMessage {
        group: GroupId::new(format!("chaos-group-{g:04}"))?,
        id: MessageId::new(format!("m-{g:04}-{n:05}"))?,
        at: base.plus_seconds((n * 97 + g) as i64),
        sender: sender.clone(),
        text: format!("message {n} of conversation {g}"),
    })
}

/// Phase 0: every group with its first message, then the other posts
/// (a seeded shuffle over the groups); phase 1: a twentieth of the
/// messages edited, a twentieth deleted.
async fn messaging(
    t: &TestTable,
    groups: usize,
    messages: usize,
    phase: usize,
    seed: u64,
) -> Result<()> {
    let groups = groups.max(1);
    let users: Vec<Participant> = (0..groups + 1).map(participant).collect::<Result<_>>()?;
    let pair = |g: usize| [users[g].clone(), users[(g + 1) % users.len()].clone()];
    let mut rng = fastrand::Rng::with_seed(seed);
    // Message n goes to a group drawn with a skew (low groups are busier).
    let mut counts = vec![0usize; groups];
    let mut all = Vec::with_capacity(messages);
    for i in 0..messages.max(groups) {
        let g = if i < groups {
            i
        } else {
            let a = rng.usize(0..groups);
            rng.usize(0..=a)
        };
        let [x, y] = pair(g);
        let sender = if counts[g].is_multiple_of(2) { x } else { y };
        all.push((g, message(g, counts[g], &sender)?));
        counts[g] += 1;
    }
    match phase {
        0 => {
            let mut rest = Vec::new();
            for (g, m) in all {
                if m.id.as_str().ends_with("-00000") {
                    chat::create_group(t.exec(), pair(g), m.at, &m).await?;
                } else {
                    rest.push(m.item());
                }
            }
            t.exec().batch_put(rest).await?;
        }
        _ => {
            for (i, (_, m)) in all.iter().enumerate() {
                let key = Key::Message {
                    group: m.group.clone(),
                    created_at: m.at,
                    message: m.id.clone(),
                }
                .to_key_map();
                let exec = t.exec();
                if i % 20 == 7 {
                    let text = AttributeValue::S(format!("{} (edited)", m.text));
                    exec.retrying("UpdateItem", || {
                        exec.client()
                            .update_item()
                            .table_name(exec.table())
                            .set_key(Some(key.clone()))
                            .update_expression("SET message = :m")
                            .expression_attribute_values(":m", text.clone())
                            .send()
                    })
                    .await
                    .context("editing a message")?;
                } else if i % 20 == 13 {
                    exec.retrying("DeleteItem", || {
                        exec.client()
                            .delete_item()
                            .table_name(exec.table())
                            .set_key(Some(key.clone()))
                            .send()
                    })
                    .await
                    .context("deleting a message")?;
                }
            }
        }
    }
    Ok(())
}

fn agent_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A profile waiting for an extension since `since`.
fn waiting_profile(id: &str, since: Timestamp) -> Item {
    let s = |v: String| AttributeValue::S(v);
    Item::from([
        ("pk".to_owned(), s(format!("AGENT#{id}"))),
        ("sk".to_owned(), s("PROFILE".to_owned())),
        ("type".to_owned(), s("agent".to_owned())),
        (
            "agent_arn".to_owned(),
            s(format!(
                "arn:aws:connect:us-east-1:012345678901:instance/chaos/agent/{id}"
            )),
        ),
        ("username".to_owned(), s(format!("agent-{id}"))),
        ("gsi2pk".to_owned(), s(AGENTS.to_owned())),
        ("gsi2sk".to_owned(), s(format!("agent-{id}"))),
        ("gsi1pk".to_owned(), s(WAITING.to_owned())),
        ("gsi1sk".to_owned(), s(format!("{since}#{id}"))),
    ])
}

/// Phase 0: the pool and `agents` arrivals; phase 1: every fourth agent
/// leaves; phase 2: a quarter more arrive.
async fn extension_churn(
    t: &TestTable,
    agents: usize,
    pool_size: usize,
    phase: usize,
) -> Result<()> {
    let base = Timestamp::parse("2026-11-20T08:00:00Z")?;
    let quarter = (agents / 4).max(1);
    let arrive = |range: std::ops::Range<usize>| {
        range
            .map(|i| waiting_profile(&agent_id(i), base.plus_seconds(i as i64)))
            .collect::<Vec<_>>()
    };
    match phase {
        0 => {
            let spec = PoolSpec::new(4, &format!("{:04}-9999", pool_size.clamp(1, 9999)))
                .map_err(anyhow::Error::msg)?;
            pool::init(t.exec(), &spec, 8, &|_| {}).await?;
            t.exec().batch_put(arrive(0..agents)).await?;
        }
        1 => {
            for i in (0..agents).step_by(4) {
                reconcile::remove_profile(t.ctx(), &AgentId::new(agent_id(i))?).await?;
            }
        }
        _ => {
            t.exec().batch_put(arrive(agents..agents + quarter)).await?;
        }
    }
    Ok(())
}

/// The scenarios' table as text: a header, one line per report, and the
/// differing items of any report whose diff is not empty.
pub fn render(reports: &[Report]) -> String {
    let mut out = header();
    out.push('\n');
    for r in reports {
        let _ = writeln!(out, "{r}");
    }
    for r in reports {
        if let Some(i) = &r.invariants {
            let _ = writeln!(
                out,
                "{} at {:.0}%: extension invariants {i}",
                r.workload,
                r.rate * 100.0
            );
        }
        for d in r.diff.iter().take(20) {
            let _ = writeln!(out, "  {} at {:.0}%: {d}", r.workload, r.rate * 100.0);
        }
    }
    out
}

/// Where a binary's logs go by default: the system temp directory.
pub fn default_log(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "streamfold-chaos-{name}-{}.log",
        std::process::id()
    ))
}
