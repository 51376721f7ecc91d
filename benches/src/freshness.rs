//! `streamfold-bench freshness`: write-to-view latency through the real
//! `streamfold tail` binary against the endpoint: a message is written (the
//! app's pattern C transaction) until both participants' previews show it
//! or a newer message of its conversation (the group's `last_message_key`
//! moves in the same transaction as both previews, so one consistent read of
//! the group tells). First at a steady rate, then in a burst; p50, p99 and
//! the largest latency of each.
//!
//! `tail` reads the stream as Lambda's poller does, without a batching
//! window: on Lambda, add up to `MaximumBatchingWindowInSeconds` for a
//! partial batch (a full batch goes at once).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use message_groups::Participant;
use streamfold::chat::{self, NewMessage};
use streamfold_shared::attrs::s;
use streamfold_shared::executor::Executor;
use streamfold_shared::ids::{GroupId, MessageId, Timestamp, UserId};
use streamfold_shared::keys::Key;

/// `streamfold-bench freshness …`
#[derive(clap::Args, Debug, Clone)]
pub struct FreshnessArgs {
    /// Conversations the messages go to (round robin while steady).
    #[arg(long, default_value_t = 100)]
    pub groups: usize,
    /// Messages per second of the steady phase.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of the steady phase.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Messages of the burst (written as fast as the endpoint takes them).
    #[arg(long, default_value_t = 1_000)]
    pub burst: usize,
    /// `tail --batch-size` (records per GetRecords call).
    #[arg(long, default_value_t = 1_000)]
    pub batch_size: u32,
    /// `tail --poll-ms` (pause of a caught-up shard; Lambda polls a shard
    /// four times a second).
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
    /// The `streamfold` binary (default: next to this one).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Agents of the agent-event phases (0: messages only).
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Agent events per second of the steady phase (for `--seconds`).
    #[arg(long, default_value_t = 10.0)]
    pub agent_rate: f64,
    /// Agent events of the burst (put 500 per PutRecords as fast as the
    /// endpoint takes them).
    #[arg(long, default_value_t = 1_000)]
    pub agent_burst: usize,
    /// Skip the message phases (agent events only).
    #[arg(long)]
    pub agents_only: bool,
}

fn user(i: usize) -> Result<Participant> {
    Ok(Participant {
        user_uuid: UserId::new(format!("fresh-user-{i:05}"))?,
        user_handle: format!("fresh{i}"),
        user_display_name: format!("Fresh {i}"),
    })
}

fn group(g: usize) -> Result<GroupId> {
    Ok(GroupId::new(format!("fresh-group-{g:05}"))?)
}

/// A write not yet seen in its view: its order key (the view shows it once
/// it shows this key or a greater one) and when it was sent.
pub(crate) struct Pending<O> {
    pub(crate) key: O,
    pub(crate) sent: Instant,
}

/// Latencies of one phase (milliseconds), sorted.
pub(crate) fn summary(name: &str, mut ms: Vec<f64>, lost: usize) -> String {
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if ms.is_empty() {
            f64::NAN
        } else {
            ms[((ms.len() as f64 - 1.0) * p).round() as usize]
        }
    };
    format!(
        "| {name} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {lost} |",
        ms.len(),
        q(0.5),
        q(0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

/// Polls the views of `pending` (one consistent BatchGetItem of `item_key`
/// for each open view) until every write is seen (or `until` passes),
/// adding each latency in milliseconds to `out`; `shown` reads a view's id
/// and the order key it shows.
pub(crate) async fn watch<K, O>(
    exec: &Executor,
    pending: &mut HashMap<K, Vec<Pending<O>>>,
    out: &mut Vec<f64>,
    until: Option<Instant>,
    item_key: impl Fn(&K) -> Result<Key>,
    shown: impl Fn(&streamfold_shared::executor::Item) -> Option<(K, O)>,
) -> Result<()>
where
    K: std::hash::Hash + Eq,
    O: PartialOrd,
{
    loop {
        let open: Vec<Key> = pending
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| item_key(k))
            .collect::<Result<_>>()?;
        if open.is_empty() || until.is_some_and(|u| Instant::now() >= u) {
            return Ok(());
        }
        let items = exec
            .batch_get(&open, true)
            .await
            .map_err(|e| anyhow!("reading the views: {e}"))?;
        let now = Instant::now();
        for item in items {
            let Some((id, at)) = shown(&item) else {
                continue;
            };
            if let Some(list) = pending.get_mut(&id) {
                list.retain(|p| {
                    if p.key <= at {
                        out.push(now.duration_since(p.sent).as_secs_f64() * 1000.0);
                        false
                    } else {
                        true
                    }
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Watches `pending` for at most `secs` seconds more; how many writes were
/// never seen.
pub(crate) async fn settle<K, O>(
    exec: &Executor,
    pending: &mut HashMap<K, Vec<Pending<O>>>,
    out: &mut Vec<f64>,
    secs: u64,
    item_key: impl Fn(&K) -> Result<Key>,
    shown: impl Fn(&streamfold_shared::executor::Item) -> Option<(K, O)>,
) -> Result<usize>
where
    K: std::hash::Hash + Eq,
    O: PartialOrd,
{
    let until = Instant::now() + Duration::from_secs(secs);
    watch(exec, pending, out, Some(until), item_key, shown).await?;
    Ok(pending.values().map(Vec::len).sum())
}

/// The group of a group item and the message key it shows.
fn group_shown(item: &streamfold_shared::executor::Item) -> Option<(usize, String)> {
    let id = s(item, "message_group_uuid")
        .and_then(|g| g.strip_prefix("fresh-group-"))
        .and_then(|n| n.parse::<usize>().ok())?;
    Some((
        id,
        s(item, "last_message_key").unwrap_or_default().to_owned(),
    ))
}

fn group_key(g: &usize) -> Result<Key> {
    Ok(Key::Group(group(*g)?))
}

async fn post(exec: &Executor, g: usize, n: usize) -> Result<Pending<String>> {
    let (a, b) = (user(2 * g)?, user(2 * g + 1)?);
    let m = NewMessage {
        group: group(g)?,
        id: MessageId::new(format!("f{n:07}"))?,
        at: Timestamp::now(),
        sender: if n.is_multiple_of(2) { a } else { b },
        text: format!("fresh {n}"),
    };
    let sent = Instant::now();
    chat::post(exec, &m).await?;
    Ok(Pending {
        key: format!("{}#{}", m.at, m.id),
        sent,
    })
}

/// Runs the phases (messages, then agent events) and prints the table.
pub async fn run(args: FreshnessArgs) -> Result<()> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("streamfold"))
            .context("no directory of this binary")?,
    };
    let mut rows = Vec::new();
    if !args.agents_only {
        rows.extend(messages(&args, &bin).await?);
    }
    if args.agents > 0 {
        rows.extend(crate::freshness_agents::run(&args, &bin).await?);
    }
    println!(
        "freshness: streamfold tail --batch-size {} --poll-ms {}, endpoint {}",
        args.batch_size,
        args.poll_ms,
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
    );
    println!("\n| phase | records | p50 | p99 | max | not seen |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// Starts `streamfold tail` on table `table` with `extra` arguments, the
/// batch size and poll pause of `args`, its output discarded.
pub(crate) fn spawn_tail(
    bin: &std::path::Path,
    table: &str,
    args: &FreshnessArgs,
    extra: &[&str],
) -> Result<tokio::process::Child> {
    tokio::process::Command::new(bin)
        .arg("tail")
        .args(extra)
        .args([
            "--batch-size",
            &args.batch_size.to_string(),
            "--poll-ms",
            &args.poll_ms.to_string(),
            "--json",
        ])
        .env("STREAMFOLD_TABLE", table)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// The message phases: a steady rate, then a burst; their table rows.
async fn messages(args: &FreshnessArgs, bin: &std::path::Path) -> Result<Vec<String>> {
    let sdk = streamfold_shared::config::load_sdk_config().await;
    let name = format!("freshness-{}", std::process::id());
    let app = streamfold::app::App::new(sdk, &name)?;
    let schema = streamfold::table::Schema::builtin()?;
    streamfold::table::create(app.ddb(), &name, &schema).await?;
    let exec = &app.ctx.exec;
    let groups = args.groups.max(1);
    let start = Timestamp::parse("2026-11-20T00:00:00Z")?;
    for g in 0..groups {
        let first = NewMessage {
            group: group(g)?,
            id: MessageId::new("first")?,
            at: start,
            sender: user(2 * g)?,
            text: "first".into(),
        };
        chat::create_group(exec, [user(2 * g)?, user(2 * g + 1)?], start, &first).await?;
    }
    let mut child = spawn_tail(bin, &name, args, &["--processor", "message-groups"])?;
    // The groups' first messages shown: tail is running and caught up.
    let mut warm: HashMap<usize, Vec<Pending<String>>> = (0..groups)
        .map(|g| {
            let p = Pending {
                key: format!("{start}#first"),
                sent: Instant::now(),
            };
            (g, vec![p])
        })
        .collect();
    let mut ignore = Vec::new();
    watch(
        exec,
        &mut warm,
        &mut ignore,
        Some(Instant::now() + Duration::from_secs(120)),
        group_key,
        group_shown,
    )
    .await?;

    // Steady: one message every 1/rate seconds, round robin.
    let mut pending: HashMap<usize, Vec<Pending<String>>> = HashMap::new();
    let mut steady = Vec::new();
    let total = (args.rate * args.seconds as f64).round() as usize;
    let every = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
    let began = Instant::now();
    let mut n = 0;
    while n < total {
        let due = began + every * n as u32;
        if Instant::now() >= due {
            let g = n % groups;
            let p = post(exec, g, n).await?;
            pending.entry(g).or_default().push(p);
            n += 1;
        } else {
            let next = Instant::now() + Duration::from_millis(20);
            watch(
                exec,
                &mut pending,
                &mut steady,
                Some(next.min(due)),
                group_key,
                group_shown,
            )
            .await?;
            tokio::time::sleep(due.saturating_duration_since(Instant::now())).await;
        }
    }
    let steady_lost = settle(exec, &mut pending, &mut steady, 60, group_key, group_shown).await?;

    // Burst: as fast as the endpoint takes them, over all groups.
    let mut pending: HashMap<usize, Vec<Pending<String>>> = HashMap::new();
    let mut burst = Vec::new();
    let posted = Instant::now();
    for k in 0..args.burst {
        let g = k % groups;
        let p = post(exec, g, total + k).await?;
        pending.entry(g).or_default().push(p);
    }
    let burst_secs = posted.elapsed().as_secs_f64();
    let burst_lost = settle(exec, &mut pending, &mut burst, 120, group_key, group_shown).await?;
    let _ = child.kill().await;
    streamfold::table::delete(app.ddb(), &name).await?;

    Ok(vec![
        summary(
            &format!("steady, {} messages/s for {} s", args.rate, args.seconds),
            steady,
            steady_lost,
        ),
        summary(
            &format!(
                "burst, {} messages in {burst_secs:.1} s into {groups} conversations",
                args.burst
            ),
            burst,
            burst_lost,
        ),
    ])
}
