//! The drivers: one per stream, starting shard readers in lineage order;
//! and [`run_readers`], which runs them all until a stop.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use streamfold_shared::executor::Executor;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::reader::{Abandoned, Busy, Reader, ReaderEnd, RunState, pause};
use super::{ReadOptions, Sink, Source, StreamStats};
use crate::app::App;
use crate::checkpoint::Checkpoints;
use crate::shutdown::Shutdown;

/// Reads one stream: starts shard readers in lineage order until stopped.
async fn drive<S: Sink>(
    source: Source,
    checkpoints: Option<Checkpoints>,
    sink: Arc<S>,
    opts: Arc<ReadOptions>,
    state: Arc<RunState>,
    stats: Arc<StreamStats>,
) -> Result<()> {
    let mut discovering = Busy::new(&state);
    let saved = match &checkpoints {
        Some(c) => c.load().await?,
        None => HashMap::new(),
    };
    let mut done: HashSet<String> = saved
        .iter()
        .filter(|(_, c)| c.ended)
        .map(|(s, _)| s.clone())
        .collect();
    let mut started: HashSet<String> = HashSet::new();
    let mut readers: JoinSet<(String, (Result<ReaderEnd>, Busy))> = JoinSet::new();
    let stop = &state.stop;
    let mut first = true;
    let endings: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    info!(stream = %source.arn(), kind = source.kind(), "reading stream");
    loop {
        if state.stopping() {
            break;
        }
        match source.shards().await {
            Ok(shards) => {
                let known: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
                if let Ok(mut e) = endings.lock() {
                    for s in &shards {
                        if let Some(end) = &s.ending {
                            e.insert(s.id.clone(), end.clone());
                        }
                    }
                }
                for shard in &shards {
                    if started.contains(&shard.id) || done.contains(&shard.id) {
                        continue;
                    }
                    let ready = shard
                        .parents
                        .iter()
                        .all(|p| done.contains(p) || !known.contains(p.as_str()));
                    if !ready {
                        continue;
                    }
                    started.insert(shard.id.clone());
                    let reader = Reader {
                        source: source.clone(),
                        shard: shard.clone(),
                        checkpoints: checkpoints.clone(),
                        sink: sink.clone(),
                        opts: opts.clone(),
                        state: state.clone(),
                        stats: stats.clone(),
                        endings: endings.clone(),
                    };
                    let start = saved.get(&shard.id).and_then(|c| c.sequence_number.clone());
                    let busy = Busy::new(&state);
                    let id = shard.id.clone();
                    readers.spawn(async move { (id, reader.run(start, busy).await) });
                }
                if readers.is_empty() && shards.iter().all(|s| done.contains(&s.id)) {
                    info!(stream = %source.arn(), "every shard was read to its end");
                    break;
                }
            }
            Err(e) if first => return Err(e),
            Err(e) => warn!(stream = %source.arn(), error = %e, "listing shards failed; retrying"),
        }
        first = false;
        discovering.set(false);
        tokio::select! {
            joined = readers.join_next(), if !readers.is_empty() => {
                let Some(joined) = joined else { continue };
                let (shard, (result, busy)) = joined.map_err(|e| anyhow!("shard reader: {e}"))?;
                // Rediscover before letting go of the reader's busy mark,
                // so --until-idle cannot stop between a parent and its
                // children.
                discovering = busy;
                match result {
                    Ok(ReaderEnd::Ended) => {
                        done.insert(shard);
                    }
                    Ok(ReaderEnd::Stopped) => {}
                    Err(e) if e.is::<Abandoned>() => {}
                    Err(e) => {
                        warn!(shard = %shard, error = %e, "shard reader failed; restarting it from its checkpoint");
                        started.remove(&shard);
                        if !pause(stop, Duration::from_secs(1)).await {
                            break;
                        }
                    }
                }
            }
            () = stop.cancelled() => {}
            _ = tokio::time::sleep(opts.refresh) => {}
        }
    }
    // Let the readers finish their batch in flight.
    while let Some(joined) = readers.join_next().await {
        if let Ok((shard, (Err(e), _))) = joined
            && !e.is::<Abandoned>()
        {
            warn!(shard = %shard, error = %e, "shard reader failed");
        }
    }
    Ok(())
}

/// What a run of the readers read.
#[derive(Debug, Default)]
pub struct RunStats {
    pub streams: Vec<Arc<StreamStats>>,
    /// Stopped by Ctrl-C (rather than idle or the end of every shard).
    pub interrupted: bool,
}

/// Reads `sources` concurrently into `sink` until stopped (`shutdown`, or
/// `--until-idle`), or until every shard ended.
pub async fn run_readers<S: Sink>(
    app: &App,
    sources: Vec<Source>,
    sink: Arc<S>,
    opts: &ReadOptions,
    shutdown: &Shutdown,
) -> Result<RunStats> {
    read_until_stopped(&app.ctx.exec, sources, sink, opts, shutdown).await
}

/// [`run_readers`] stopped by `interrupt` instead (tests): the first
/// completed future asks to stop, the second to leave at once.
pub async fn run_readers_with<S: Sink, I>(
    exec: &Executor,
    sources: Vec<Source>,
    sink: Arc<S>,
    opts: &ReadOptions,
    interrupt: I,
) -> Result<RunStats>
where
    I: FnMut() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static,
{
    let shutdown = Shutdown::new();
    let interrupts = shutdown.spawn_interrupts(interrupt);
    let run = read_until_stopped(exec, sources, sink, opts, &shutdown).await;
    interrupts.abort();
    run
}

async fn read_until_stopped<S: Sink>(
    exec: &Executor,
    sources: Vec<Source>,
    sink: Arc<S>,
    opts: &ReadOptions,
    shutdown: &Shutdown,
) -> Result<RunStats> {
    // Cancelled with the shutdown, and on its own by idleness or an error.
    let stop = shutdown.stop_token().child_token();
    let bar = if opts.progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {pos} records ({per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let state = Arc::new(RunState {
        stop: stop.clone(),
        busy: AtomicUsize::new(0),
        last_activity: Mutex::new(Instant::now()),
        bar: bar.clone(),
    });
    let opts = Arc::new(opts.clone());
    let mut drivers = JoinSet::new();
    let mut stats = RunStats::default();
    for source in sources {
        let checkpoints = if opts.checkpoints {
            Some(Checkpoints::new(exec.clone(), source.arn())?)
        } else {
            None
        };
        let st = Arc::new(StreamStats {
            kind: source.kind(),
            arn: source.arn().to_owned(),
            ..StreamStats::default()
        });
        stats.streams.push(st.clone());
        drivers.spawn(drive(
            source,
            checkpoints,
            sink.clone(),
            opts.clone(),
            state.clone(),
            st,
        ));
    }
    let mut first_error: Option<anyhow::Error> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            // The requests first: the readers stop on the same token, so a
            // driver may end before this loop sees the request.
            biased;
            () = shutdown.forced() => {
                stats.interrupted = true;
                warn!("leaving at once; the batches in flight will be read again next time");
                drivers.abort_all();
                break;
            }
            () = shutdown.stopping(), if !stats.interrupted => {
                stats.interrupted = true;
                info!("stopping: finishing the batches in flight (Ctrl-C again to leave at once)");
                bar.set_message("stopping…");
            }
            joined = drivers.join_next() => {
                match joined {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        stop.cancel();
                        first_error.get_or_insert(e);
                    }
                    Some(Err(e)) => {
                        stop.cancel();
                        first_error.get_or_insert(anyhow!("stream driver: {e}"));
                    }
                }
            }
            _ = tick.tick() => {
                let msg = stats
                    .streams
                    .iter()
                    .map(|s| format!(
                        "{}: {} records, {} shards",
                        s.kind,
                        s.records.load(Ordering::Relaxed),
                        s.shards_read.load(Ordering::Relaxed)
                    ))
                    .collect::<Vec<_>>()
                    .join("; ");
                bar.set_message(msg);
                if opts.until_idle
                    && state.busy.load(Ordering::SeqCst) == 0
                    && state.quiet_for() >= opts.idle
                    && !stop.is_cancelled()
                {
                    info!("idle: every shard is caught up");
                    stop.cancel();
                }
            }
        }
    }
    bar.finish_and_clear();
    match first_error {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}
