//! `streamfold extensions init|list|show|stats`: the extension pool.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use extensions::census::census;
use extensions::init::{self as pool, PoolSpec};
use extensions::model::{ExtItem, ExtState, FREE, GSI1, Profile};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use streamfold_shared::attrs::{s, sv};
use streamfold_shared::executor::Item;
use streamfold_shared::ids::AgentId;
use streamfold_shared::keys::Key;

use crate::app::App;
use crate::render::{table, when};

#[derive(Debug, Subcommand)]
pub enum ExtensionsCmd {
    /// Create every free extension of the pool (idempotent: existing ones,
    /// assigned or free, are left as they are), then hand new extensions
    /// to agents that are waiting.
    Init {
        /// Extension length: 4 gives 0000 to 9999.
        #[arg(long, default_value_t = 4)]
        digits: u8,
        /// Numbers never to hand out: comma-separated numbers and ranges,
        /// zero-padded to --digits (e.g. 0000,911,9000-9099).
        #[arg(long, default_value = "")]
        reserve: String,
        /// Chunks of 100 written at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long)]
        json: bool,
    },
    /// List extensions, lowest first.
    List {
        /// Only free ones.
        #[arg(long, conflicts_with = "assigned")]
        free: bool,
        /// Only assigned ones.
        #[arg(long)]
        assigned: bool,
        /// At most this many rows (0: all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One extension: free, or who has it and their status.
    Show {
        /// The extension ("42" is 0042 with --digits 4).
        extension: String,
        #[arg(long, default_value_t = 4)]
        digits: u8,
        #[arg(long)]
        json: bool,
    },
    /// Free, assigned, waiting agents, pool size, and the invariant check
    /// (exit status 1 when an invariant is broken).
    Stats {
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `extensions` command.
pub async fn run(app: &App, cmd: ExtensionsCmd) -> Result<ExitCode> {
    match cmd {
        ExtensionsCmd::Init {
            digits,
            reserve,
            concurrency,
            json,
        } => init(app, digits, &reserve, concurrency, json).await,
        ExtensionsCmd::List {
            free,
            assigned,
            limit,
            json,
        } => list(app, free, assigned, limit, json).await,
        ExtensionsCmd::Show {
            extension,
            digits,
            json,
        } => show(app, &extension, digits, json).await,
        ExtensionsCmd::Stats { json } => stats(app, json).await,
    }
}

async fn init(
    app: &App,
    digits: u8,
    reserve: &str,
    concurrency: usize,
    json: bool,
) -> Result<ExitCode> {
    let spec = PoolSpec::new(digits, reserve).map_err(|e| anyhow!(e))?;
    let wanted = spec.extensions().map_err(|e| anyhow!(e))?.len() as u64;
    let bar = ProgressBar::new(wanted);
    if json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} extensions {per_sec} eta {eta}")
            .map_err(|e| anyhow!(e))?,
    );
    let started = Instant::now();
    app.counter.reset();
    let report = pool::init(&app.ctx.exec, &spec, concurrency, &|n| bar.inc(n)).await?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let settled = extensions::settle(&app.ctx).await?;
    let requests = app.counter.total();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "report": report,
                "settled": settled,
                "seconds": elapsed.as_secs_f64(),
                "requests": requests,
            }))?
        );
    } else {
        println!(
            "pool of {} extensions ({} digits, {} reserved): {} created, {} already there, in {:.1} s ({} requests)",
            report.wanted,
            digits,
            spec.reserved.len(),
            report.created,
            report.existing,
            elapsed.as_secs_f64(),
            requests
        );
        if report.reserved_removed > 0 {
            println!(
                "{} reserved extensions taken out of the pool",
                report.reserved_removed
            );
        }
        if !report.reserved_assigned.is_empty() {
            println!(
                "reserved but assigned, left to their agents: {}",
                report.reserved_assigned.join(", ")
            );
        }
        if settled.assigned > 0 || settled.still_waiting > 0 {
            println!(
                "{} waiting agents got an extension; {} still waiting",
                settled.assigned, settled.still_waiting
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Free extensions in order (gsi1 `EXT#FREE`).
async fn free_items(app: &App, limit: usize) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let page = app
            .ddb()
            .query()
            .table_name(&app.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :q")
            .expression_attribute_values(":q", sv(FREE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        out.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() || (limit > 0 && out.len() >= limit) {
            return Ok(out);
        }
    }
}

/// Every ext item (paginated Scan).
async fn all_items(app: &App) -> Result<Vec<Item>> {
    let (exts, _) = extensions::census::scan_pool(&app.ctx.exec).await?;
    Ok(exts)
}

async fn list(app: &App, free: bool, assigned: bool, limit: usize, json: bool) -> Result<ExitCode> {
    let items = if free {
        free_items(app, limit).await?
    } else {
        all_items(app).await?
    };
    let mut exts: Vec<ExtItem> = items
        .iter()
        .filter_map(|i| ExtItem::from_item(i).ok())
        .filter(|x| !assigned || matches!(x.state, ExtState::Assigned { .. }))
        .collect();
    exts.sort_by(|a, b| a.extension.cmp(&b.extension));
    if limit > 0 {
        exts.truncate(limit);
    }
    // The assigned items from the census scan carry no username; read them
    // for the rows shown.
    let usernames = if assigned || !free {
        usernames(app, &exts).await?
    } else {
        Default::default()
    };
    if json {
        let rows: Vec<_> = exts
            .iter()
            .map(|x| match &x.state {
                ExtState::Free => json!({"extension": x.extension.as_str(), "status": "free"}),
                ExtState::Assigned {
                    agent, assigned_at, ..
                } => json!({
                    "extension": x.extension.as_str(),
                    "status": "assigned",
                    "agent_id": agent,
                    "username": usernames.get(agent),
                    "assigned_at": assigned_at,
                }),
                ExtState::Reserved { username } => json!({
                    "extension": x.extension.as_str(),
                    "status": "reserved",
                    "username": username,
                }),
                ExtState::Broken(why) => {
                    json!({"extension": x.extension.as_str(), "status": "broken", "error": why})
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let rows: Vec<Vec<String>> = exts
            .iter()
            .map(|x| match &x.state {
                ExtState::Free => vec![
                    x.extension.to_string(),
                    "free".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
                ExtState::Assigned {
                    agent, assigned_at, ..
                } => vec![
                    x.extension.to_string(),
                    "assigned".into(),
                    agent.clone(),
                    usernames.get(agent).cloned().unwrap_or_default(),
                    assigned_at.as_deref().map(when).unwrap_or_default(),
                ],
                ExtState::Reserved { username } => vec![
                    x.extension.to_string(),
                    "reserved".into(),
                    String::new(),
                    username.clone(),
                    String::new(),
                ],
                ExtState::Broken(why) => vec![
                    x.extension.to_string(),
                    format!("BROKEN: {why}"),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            })
            .collect();
        print!(
            "{}",
            table(
                &["EXTENSION", "STATUS", "AGENT", "USERNAME", "ASSIGNED"],
                &rows
            )
        );
        eprintln!("{} extensions", rows.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Usernames of the agents of assigned extensions (BatchGetItem).
async fn usernames(
    app: &App,
    exts: &[ExtItem],
) -> Result<std::collections::HashMap<String, String>> {
    let keys: Vec<Key> = exts
        .iter()
        .filter_map(|x| match &x.state {
            ExtState::Assigned { agent, .. } => AgentId::new(agent.as_str()).ok().map(Key::Profile),
            _ => None,
        })
        .collect();
    let items = app.ctx.exec.batch_get(&keys, false).await?;
    Ok(items
        .iter()
        .filter_map(|i| {
            let id = s(i, "pk")?.strip_prefix("AGENT#")?.to_owned();
            Some((id, s(i, "username")?.to_owned()))
        })
        .collect())
}

async fn show(app: &App, extension: &str, digits: u8, json: bool) -> Result<ExitCode> {
    let Some(x) = pool::normalise(extension, digits) else {
        bail!("{extension:?} is not an extension of 1 to {digits} digits");
    };
    let Some(item) = app.ctx.exec.get(&Key::Extension(x.clone()), true).await? else {
        if json {
            println!("{}", json!({"extension": x.as_str(), "status": "unknown"}));
        } else {
            println!("extension {x} is not in the pool");
        }
        return Ok(ExitCode::FAILURE);
    };
    let ext = ExtItem::from_item(&item).map_err(|e| anyhow!(e))?;
    let (agent, assigned_at) = match &ext.state {
        ExtState::Free => {
            if json {
                println!("{}", json!({"extension": x.as_str(), "status": "free"}));
            } else {
                println!("extension {x} is free");
            }
            return Ok(ExitCode::SUCCESS);
        }
        ExtState::Reserved { username } => {
            if json {
                println!(
                    "{}",
                    json!({"extension": x.as_str(), "status": "reserved", "username": username})
                );
            } else {
                println!("extension {x} is reserved for {username} (no profile yet)");
            }
            return Ok(ExitCode::SUCCESS);
        }
        ExtState::Broken(why) => bail!("extension {x} is inconsistent: {why}"),
        ExtState::Assigned {
            agent, assigned_at, ..
        } => (agent.clone(), assigned_at.clone()),
    };
    let profile = match AgentId::new(agent.as_str()) {
        Ok(a) => app.ctx.exec.get(&Key::Profile(a), true).await?,
        Err(_) => None,
    };
    let holds = profile
        .as_ref()
        .and_then(|p| Profile::from_item(p).ok())
        .is_some_and(|p| p.extension.as_ref() == Some(&x));
    let text = |n: &str| {
        profile
            .as_ref()
            .and_then(|p| s(p, n))
            .unwrap_or("")
            .to_owned()
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "extension": x.as_str(),
                "status": if holds { "assigned" } else { "releasing" },
                "agent_id": agent,
                "agent_arn": text("agent_arn"),
                "username": text("username"),
                "agent_status": text("status"),
                "assigned_at": assigned_at,
            }))?
        );
    } else {
        println!("extension   {x}");
        println!("agent       {agent}");
        if holds {
            println!("username    {}", text("username"));
            println!("agent arn   {}", text("agent_arn"));
            println!("status      {}", text("status"));
        } else {
            println!("note        the agent's profile is gone; the extensions processor frees it");
        }
        if let Some(at) = assigned_at {
            println!("assigned    {}", when(&at));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn stats(app: &App, json: bool) -> Result<ExitCode> {
    let c = census(&app.ctx.exec).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        println!("pool size        {}", c.pool_size);
        println!("free             {}", c.free);
        println!("assigned         {}", c.assigned);
        if c.reserved > 0 || c.pending_reservations > 0 {
            println!(
                "reserved         {} (kept for usernames with no profile yet; {} arriving)",
                c.reserved, c.pending_reservations
            );
        }
        println!("agents           {}", c.agents);
        println!("waiting agents   {}", c.waiting);
        if c.pending_release > 0 {
            println!(
                "pending release  {} (profiles deleted; the stream frees them)",
                c.pending_release
            );
        }
        if c.unqueued > 0 {
            println!(
                "unqueued         {} (profiles with no extension and not waiting)",
                c.unqueued
            );
        }
        if c.violations.is_empty() {
            println!(
                "invariants       hold (free + assigned + reserved = pool size; no extension or agent twice; every reservation matches its item)"
            );
        } else {
            println!("invariants       BROKEN:");
            for v in &c.violations {
                println!("  {v}");
            }
        }
    }
    Ok(if c.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
