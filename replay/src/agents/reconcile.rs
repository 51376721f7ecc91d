//! `streamfold agents remove AGENT` and `streamfold agents reconcile`: the
//! agent-lifecycle side of the extension pool. The variants live in
//! [`super::AgentsCmd`]; the work is here and in the `reconcile` crate
//! (written `::reconcile` here, this module having the same name).

use std::process::ExitCode;

use ::reconcile::{Options, ReconcileError};
use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::json;
use streamfold_shared::ids::AgentId;

use crate::app::App;

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The agent id (last segment of its Connect ARN).
    pub agent: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The Connect instance (id or ARN).
    #[arg(long, env = "CONNECT_INSTANCE_ID")]
    pub instance_id: String,
    /// Also write the extension directory as CSV to s3://bucket/key.
    #[arg(long)]
    pub export: Option<String>,
    /// Report what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop rather than delete more profiles than this.
    #[arg(long, default_value_t = 100)]
    pub max_deletes: usize,
    /// Delete even past --max-deletes, or when Connect lists no user.
    #[arg(long)]
    pub force: bool,
    /// Milliseconds at least between two Connect requests.
    #[arg(long, default_value_t = 500)]
    pub min_interval_ms: u64,
    /// Do not hand free extensions to waiting agents afterwards.
    #[arg(long)]
    pub no_settle: bool,
    #[arg(long)]
    pub json: bool,
}

/// Deletes an agent's profile. Its extension is freed (and handed to the
/// longest-waiting agent) by the extensions processor from the stream.
pub async fn remove(app: &App, args: RemoveArgs) -> Result<ExitCode> {
    let agent = AgentId::new(args.agent.as_str())?;
    let removed = ::reconcile::remove_profile(&app.ctx, &agent).await?;
    if args.json {
        println!(
            "{}",
            json!({
                "agent_id": agent.as_str(),
                "removed": removed.is_some(),
                "extension": removed.clone().flatten(),
            })
        );
    } else {
        match &removed {
            None => println!("agent {agent} has no profile; nothing removed"),
            Some(None) => println!("removed the profile of agent {agent} (it had no extension)"),
            Some(Some(x)) => println!(
                "removed the profile of agent {agent}; extension {x} is freed by the extensions \
                 processor (Lambda, or `streamfold tail`)"
            ),
        }
    }
    Ok(if removed.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One reconcile run against the Connect instance.
pub async fn reconcile(app: &App, args: ReconcileArgs) -> Result<ExitCode> {
    let mut opts = Options::new(args.instance_id.as_str());
    opts.dry_run = args.dry_run;
    opts.max_deletes = args.max_deletes;
    opts.force = args.force;
    opts.settle = !args.no_settle;
    opts.min_interval = std::time::Duration::from_millis(args.min_interval_ms);
    let connect = ::reconcile::connect_client(&app.sdk, None);
    run(app, &connect, &opts, args.export.as_deref(), args.json).await
}

/// The run itself, with a given Connect client (tests pass one that talks
/// to a local stub).
pub async fn run(
    app: &App,
    connect: &aws_sdk_connect::Client,
    opts: &Options,
    export: Option<&str>,
    json_out: bool,
) -> Result<ExitCode> {
    if let Some(url) = export {
        ::reconcile::parse_s3_url(url).map_err(|e| anyhow!(e))?;
    }
    let mut report = match ::reconcile::reconcile(&app.ctx, connect, opts).await {
        Ok(r) => r,
        Err(e @ (ReconcileError::TooManyDeletes { .. } | ReconcileError::NoUsers(_))) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if let (Some(url), false) = (export, opts.dry_run) {
        let s3 = ::reconcile::s3_client(&app.sdk);
        let rows = ::reconcile::export(&app.ctx, &s3, url).await?;
        report.exported = Some((rows, url.to_owned()));
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let dry = if report.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        };
        println!(
            "{} Connect users ({} pages, {} throttled), {} profiles{dry}",
            report.users, report.connect.pages, report.connect.throttled, report.profiles
        );
        println!(
            "created {}  deleted {}  renamed {}  unchanged {}  other instances {}",
            report.created, report.deleted, report.renamed, report.unchanged, report.foreign
        );
        if let Some(s) = report.settled
            && (s.assigned > 0 || s.still_waiting > 0)
        {
            println!(
                "{} waiting agents got an extension; {} still waiting",
                s.assigned, s.still_waiting
            );
        }
        if let Some((rows, url)) = &report.exported {
            println!("exported {rows} extensions to {url}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
